//! The shell window: winit + wgpu + egui, with one tile per app view.
//!
//! The compositor takes view models ([`TileView`], through [`Command`]) and returns what the user
//! did as [`UiEvent`]s; it never calls the broker or storage. App views are native X11 child
//! windows owned by other processes: the compositor only reports where each must go
//! ([`UiEvent::Bounds`], in physical pixels) and the shell forwards that to the app's host.
//!
//! It draws only when something changed: with nothing to do, the event loop sleeps.

pub mod channels;
pub mod dialogs;
pub mod fuzzy;
pub mod icons;
pub mod launcher;
pub mod layout;
pub mod panels;
pub mod theme;
mod window;
pub mod x11;

pub use dialogs::{ConsentAnswer, ConsentRequest, ResolverChoice, ResolverRequest};
pub use layout::{Direction, LayoutNode};
pub use panels::{GrantRow, HealthRow};
pub use window::{Compositor, Handle};

/// A rectangle in the shell window, in physical pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PxRect {
    /// Left edge.
    pub x: i32,
    /// Top edge.
    pub y: i32,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
}

/// One app view as the shell describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TileView {
    /// The shell's key for it (an app instance).
    pub key: u64,
    /// The tab's title.
    pub title: String,
    /// A short state shown under the view while it is not running ("restarting", "failed").
    pub status: String,
    /// Whether the app's own view is up (otherwise the tile shows `status`).
    pub live: bool,
    /// Its user channel (1 to 8, see [`channels::CHANNELS`]), if it has joined one.
    pub channel: Option<u8>,
}

/// An app the launcher offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LauncherApp {
    /// Its id.
    pub app_id: String,
    /// Its name.
    pub title: String,
    /// One line about it.
    pub description: String,
    /// How many instances run.
    pub running: usize,
    /// When it was last launched (ms since the epoch), for "recently used first".
    pub last_used: Option<u64>,
    /// Its icon (a PNG file), if it has one.
    pub icon: Option<std::path::PathBuf>,
}

/// How the window has been drawing.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct FrameStats {
    /// Frames drawn since the last reset.
    pub frames: u64,
    /// The time each of the latest frames took to build, render and present, in milliseconds
    /// (the latest 10,000 to 20,000).
    pub frame_ms: Vec<f32>,
    /// Of which building the UI and tessellating it, per frame.
    pub build_ms: Vec<f32>,
}

/// The live layout, as `ctl layout get` reports it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LayoutSnapshot {
    /// The tree (`None`: nothing open).
    pub tree: Option<LayoutNode>,
    /// Where each pane's view is (physical pixels), or `None` while hidden.
    pub bounds: Vec<(u64, Option<PxRect>)>,
    /// The pane shown alone, if one is maximised.
    pub maximized: Option<u64>,
    /// The window's size in physical pixels.
    pub window: (u32, u32),
    /// Its scale factor.
    pub scale: f64,
}

/// What the shell tells the window.
#[derive(Debug)]
pub enum Command {
    /// Replace the set of tiles: new keys get a tile, missing ones lose theirs.
    SetTiles(Vec<TileView>),
    /// Replace the launcher's list of apps.
    SetApps(Vec<LauncherApp>),
    /// Arrange the tiles as described (keys not in the tiles are ignored; tiles not in the
    /// description are added).
    SetLayout(LayoutNode),
    /// Report the live layout.
    GetLayout(flume::Sender<LayoutSnapshot>),
    /// The health view's rows (drawn only while it is open).
    SetHealth(Vec<HealthRow>),
    /// The remembered permission answers the settings view lists.
    SetGrants(Vec<GrantRow>),
    /// Ask the user for a permission (prompts queue up and show one at a time).
    ShowConsent(ConsentRequest),
    /// Ask the user which app should handle an intent.
    ShowResolver(ResolverRequest),
    /// Take a dialog away unanswered (its request was withdrawn).
    CancelDialog {
        /// The request's id.
        id: u64,
    },
    /// Report frame statistics (and start counting afresh if `reset`).
    FrameStats {
        /// Where to send them.
        reply: flume::Sender<FrameStats>,
        /// Clear the counters after reporting.
        reset: bool,
    },
    /// For `tessera bench frame --present-only`: clear and present each frame without drawing
    /// anything, which measures the floor of a frame's cost on this machine.
    PresentOnly(bool),
    /// Show the updater's state in the shell bar (a download's progress, or a build ready to
    /// install), or nothing.
    SetUpdate(Option<UpdateBanner>),
    /// Close the window and end [`Compositor::run`].
    Quit,
}

/// What the shell bar says about updates.
#[derive(Debug, Clone, PartialEq)]
pub struct UpdateBanner {
    /// One line, e.g. "Downloading update (12 of 40 MB)".
    pub text: String,
    /// A download's progress, 0 to 1; `None` for a plain message.
    pub progress: Option<f32>,
}

/// What happened in the window.
#[derive(Debug, Clone, PartialEq)]
pub enum UiEvent {
    /// The window exists; app views are placed into `xid`.
    WindowReady {
        /// The shell window's X11 id.
        xid: u64,
        /// Its scale factor.
        scale: f64,
    },
    /// Where a tile's app view goes now; `None` when it must be hidden.
    Bounds {
        /// The tile's key.
        key: u64,
        /// Physical pixels in the window, or hidden.
        rect: Option<PxRect>,
    },
    /// The user closed a tile.
    CloseTile {
        /// The tile's key.
        key: u64,
    },
    /// The user asked for an app from the launcher.
    Launch {
        /// The app's id.
        app_id: String,
    },
    /// The user picked a tile's channel (`None`: left its channel).
    ChannelChanged {
        /// The tile's key.
        key: u64,
        /// The channel, 1 to 8.
        channel: Option<u8>,
    },
    /// The user changed the layout (dragged, resized, closed or maximised something).
    LayoutChanged,
    /// The user revoked a remembered permission answer in the settings view.
    RevokeGrant(GrantRow),
    /// A consent prompt was answered (or timed out).
    ConsentAnswered {
        /// The request's id.
        id: u64,
        /// The answer.
        answer: ConsentAnswer,
    },
    /// The intent resolver was answered.
    ResolverAnswered {
        /// The request's id.
        id: u64,
        /// The index of the chosen handler, or `None` if cancelled.
        choice: Option<usize>,
    },
    /// The user closed the window.
    CloseRequested,
}

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
