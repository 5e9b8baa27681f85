//! A window handle for an X11 window that belongs to another process: the shell's window, into
//! which this host's WebView is placed as a child. X11 window ids are global to the display, so
//! the id is all that is needed. The app host's other `unsafe` is the WebKit reply FFI in
//! `reply.rs`.

use raw_window_handle::{HandleError, HasWindowHandle, RawWindowHandle, WindowHandle, XlibWindowHandle};

/// The shell window's X11 id, passed on the command line.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ForeignXid(pub(crate) u64);

impl HasWindowHandle for ForeignXid {
    fn window_handle(&self) -> Result<WindowHandle<'_>, HandleError> {
        let xid = std::os::raw::c_ulong::try_from(self.0).map_err(|_| HandleError::Unavailable)?;
        let raw = RawWindowHandle::Xlib(XlibWindowHandle::new(xid));
        // SAFETY: `borrow_raw` requires the handle to stay valid while borrowed. An X11 window id
        // is not memory: it is a number the X server resolves. If the shell's window is gone,
        // GTK's calls on it fail with an X error (the host then exits); nothing dangles here.
        #[expect(unsafe_code, reason = "raw-window-handle offers no safe constructor for a foreign handle")]
        let handle = unsafe { WindowHandle::borrow_raw(raw) };
        Ok(handle)
    }
}
