//! The shell window: winit + wgpu + egui, with one tile per app view. The UI itself (the
//! desk, launcher, dialogs, panels, and the view models and events) is `compositor_ui`'s,
//! re-exported here; this crate hosts it in real windows and draws it (`soft.rs` without a GPU).
//!
//! The compositor takes view models ([`TileView`], through [`Command`]) and returns what the user
//! did as [`UiEvent`]s; it never calls the broker or storage. App views are native X11 child
//! windows owned by other processes: the compositor only reports where each must go
//! ([`UiEvent::Bounds`], in physical pixels) and the shell forwards that to the app's host.
//!
//! It draws only when something changed: with nothing to do, the event loop sleeps.

mod damage;
mod meshes;
mod soft;
mod window;
pub mod x11;

pub use compositor_ui::*;
pub use window::{Compositor, Handle};

/// Why the window could not run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No display or event loop.
    #[error("could not start the window system (is DISPLAY set to an X11 display?): {0}")]
    EventLoop(String),
    /// The window could not be made.
    #[error("could not create the shell window: {0}")]
    Window(String),
    /// No usable GPU (or software rasteriser).
    #[error("could not start rendering: {0}")]
    Render(String),
    /// The window is not an X11 window (embedding needs X11; run Wayland sessions under XWayland).
    #[error("the shell window is not an X11 window; app views need X11 (use XWayland)")]
    NotX11,
    /// An X11 request failed.
    #[error("X11: {0}")]
    X11(String),
    /// Writing an image failed.
    #[error("writing {path}: {reason}")]
    Image {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
}
