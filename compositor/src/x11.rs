//! Direct X11 requests the window system libraries do not offer: giving keyboard focus back to
//! the shell window, and capturing the window with the app views inside it.

use std::path::Path;
use std::sync::Mutex;

use x11rb::connection::Connection;
use x11rb::protocol::xproto::{ConnectionExt, ImageFormat, InputFocus};
use x11rb::rust_connection::RustConnection;

use crate::Error;

fn x11<E: std::fmt::Display>(e: E) -> Error {
    Error::X11(e.to_string())
}

/// The connection focus requests go through: kept open, because a request on a connection
/// closed right after it can be lost (a busy X server saw the connection gone before reading
/// it, about two times in three with the CPUs saturated).
static FOCUS: Mutex<Option<RustConnection>> = Mutex::new(None);

/// Gives the keyboard focus to `xid`.
///
/// Without a window manager, focus that went to an embedded app view (another process's X11
/// window) never comes back when the user clicks the shell's own widgets; the compositor calls
/// this on such clicks.
pub fn focus(xid: u32) -> Result<(), Error> {
    let mut conn = FOCUS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if conn.is_none() {
        *conn = Some(x11rb::connect(None).map_err(x11)?.0);
    }
    let Some(c) = conn.as_ref() else { return Err(Error::X11("no connection".into())) };
    let sent = c
        .set_input_focus(InputFocus::PARENT, xid, x11rb::CURRENT_TIME)
        .map_err(x11)
        .and_then(|_| c.flush().map_err(x11));
    // Nothing listens here: an error (the window gone) is read and dropped.
    while let Ok(Some(_)) = c.poll_for_event() {}
    if sent.is_err() {
        // A broken connection: a new one next time.
        *conn = None;
    }
    sent
}

/// Captures window `xid` as the screen shows it, child windows (the app views) included, and
/// writes it to `path` as a PNG. Returns the image's size.
pub fn capture_png(xid: u32, path: &Path) -> Result<(u32, u32), Error> {
    let (conn, screen) = x11rb::connect(None).map_err(x11)?;
    let geometry = conn.get_geometry(xid).map_err(x11)?.reply().map_err(x11)?;
    let (w, h) = (geometry.width, geometry.height);
    let image = conn.get_image(ImageFormat::Z_PIXMAP, xid, 0, 0, w, h, !0).map_err(x11)?.reply().map_err(x11)?;
    let setup = conn.setup();
    let visual_bpp = setup
        .pixmap_formats
        .iter()
        .find(|f| f.depth == image.depth)
        .map(|f| f.bits_per_pixel)
        .ok_or_else(|| Error::X11(format!("no pixmap format for depth {}", image.depth)))?;
    if visual_bpp != 32 || setup.image_byte_order != x11rb::protocol::xproto::ImageOrder::LSB_FIRST {
        return Err(Error::X11(format!(
            "unsupported image layout: {visual_bpp} bits per pixel, {:?} (screen {screen})",
            setup.image_byte_order
        )));
    }
    let (wu, hu) = (usize::from(w), usize::from(h));
    if image.data.len() < wu * hu * 4 {
        return Err(Error::X11(format!("short image: {} bytes for {w}x{h}", image.data.len())));
    }
    // Z-pixmap, 32 bits per pixel, least significant byte first: B, G, R, unused.
    let mut rgb = Vec::with_capacity(wu * hu * 3);
    for px in image.data.chunks_exact(4).take(wu * hu) {
        rgb.extend_from_slice(&[px[2], px[1], px[0]]);
    }
    let failed = |reason: String| Error::Image { path: path.display().to_string(), reason };
    let file = std::fs::File::create(path).map_err(|e| failed(e.to_string()))?;
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), u32::from(w), u32::from(h));
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(|e| failed(e.to_string()))?;
    writer.write_image_data(&rgb).map_err(|e| failed(e.to_string()))?;
    writer.finish().map_err(|e| failed(e.to_string()))?;
    Ok((u32::from(w), u32::from(h)))
}
