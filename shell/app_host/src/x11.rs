//! The host's own X11 connection, for what GTK does not offer: reparenting a view into another
//! shell window (`webview.rs`) and passing keys on to the shell (`keys.rs`). One per host,
//! opened on first use, on GTK's thread.

use std::cell::RefCell;

use anyhow::{Context, Result, bail};

thread_local! {
    /// The host's own X11 connection, for what GTK does not offer (opened on first use).
    static X11: RefCell<Option<x11rb::rust_connection::RustConnection>> = const { RefCell::new(None) };
}

/// Runs `f` with the host's own X11 connection (on GTK's thread).
pub(crate) fn with_x11<T>(f: impl FnOnce(&x11rb::rust_connection::RustConnection) -> Result<T>) -> Result<T> {
    X11.with(|cell| {
        let mut cell = cell.borrow_mut();
        if cell.is_none() {
            *cell = Some(x11rb::connect(None).context("connecting to the X server")?.0);
        }
        let Some(conn) = cell.as_ref() else { bail!("no X11 connection") };
        let result = f(conn);
        // Nothing here listens for events; errors of requests not waited on are read and
        // logged, not left to pile up.
        while let Ok(Some(event)) = x11rb::connection::Connection::poll_for_event(conn) {
            if let x11rb::protocol::Event::Error(e) = event {
                tracing::debug!("X11 error: {e:?}");
            }
        }
        result
    })
}
