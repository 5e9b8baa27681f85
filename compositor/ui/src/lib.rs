//! The shell window's UI, in egui alone: the desk (tiles per window with tab bars, channel
//! chips and window moves), the launcher, the dialogs and the side panels, and the view models
//! and events the shell exchanges with them. No winit, wgpu or X11 here: the `compositor`
//! crate hosts this UI in real windows, and this crate's tests draw it in a test harness.
//!
//! The compositor takes view models ([`TileView`], through [`Command`]) and returns what the user
//! did as [`UiEvent`]s; it never calls the broker or storage. App views are native X11 child
//! windows owned by other processes: the compositor only reports where each must go
//! ([`UiEvent::Bounds`], in physical pixels) and the shell forwards that to the app's host.
//!
//! It draws only when something changed: with nothing to do, the event loop sleeps.

pub mod channels;
mod desk;
pub mod dialogs;
pub mod fuzzy;
pub mod icons;
pub mod launcher;
pub mod layout;
pub mod panels;
pub mod theme;
mod tiles;

pub use desk::{Desk, Opening, Surface};
pub use dialogs::{ConsentAnswer, ConsentRequest, ResolverChoice, ResolverRequest};
pub use layout::{Direction, LayoutNode};
pub use panels::{GrantRow, GroupRow, HealthRow, ServiceRow};

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
    /// The share of the window's pixels each frame drew (0 to 1): drawing on the CPU, only
    /// what changed is drawn again.
    pub drawn: Vec<f32>,
}

/// A shell window's number. The main window ([`MAIN_WINDOW`]) has the launcher, the shell bar
/// and the dialogs; the others hold app tiles the user moved out of it, each with a layout of
/// its own. Numbers are not reused while the compositor runs.
pub type WindowNo = u32;

/// The main window's number.
pub const MAIN_WINDOW: WindowNo = 0;

/// The live layout, as `ctl layout get` reports it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LayoutSnapshot {
    /// Every shell window, the main window first.
    pub windows: Vec<WindowSnapshot>,
}

impl LayoutSnapshot {
    /// The main window's part.
    pub fn main(&self) -> Option<&WindowSnapshot> {
        self.windows.iter().find(|w| w.window == MAIN_WINDOW)
    }
}

/// One shell window's layout.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct WindowSnapshot {
    /// Its number.
    pub window: WindowNo,
    /// The tree (`None`: nothing open).
    pub tree: Option<LayoutNode>,
    /// Where each pane's view is (physical pixels, in this window), or `None` while hidden.
    pub bounds: Vec<(u64, Option<PxRect>)>,
    /// The pane shown alone, if one is maximised.
    pub maximized: Option<u64>,
    /// The window's size in physical pixels.
    pub size: (u32, u32),
    /// Where it is on the screen (its outer top-left corner), if the window system says.
    pub position: Option<(i32, i32)>,
    /// Its scale factor.
    pub scale: f64,
}

/// How a window should look, for [`Command::SetLayout`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WindowPlan {
    /// Its tiles.
    pub tree: Option<LayoutNode>,
    /// Where it goes on the screen; `None`: where the window system puts it.
    pub position: Option<(i32, i32)>,
    /// Its size in physical pixels; `None`: unchanged (the main window) or a default.
    pub size: Option<(u32, u32)>,
}

/// What the shell tells the window.
#[derive(Debug)]
pub enum Command {
    /// Replace the set of tiles: new keys get a tile, missing ones lose theirs.
    SetTiles(Vec<TileView>),
    /// Replace the launcher's list of apps.
    SetApps(Vec<LauncherApp>),
    /// Arrange the windows and their tiles as described: the first plan is the main window's
    /// (its position and size are left alone), each further one gets a window of its own.
    /// Keys not in the tiles are ignored; tiles not in any plan are added to the main window.
    SetLayout(Vec<WindowPlan>),
    /// Report the live layout.
    GetLayout(flume::Sender<LayoutSnapshot>),
    /// The health view's rows (drawn only while it is open).
    SetHealth(Vec<HealthRow>),
    /// The process groups' shared hosts the health view lists.
    SetGroups(Vec<GroupRow>),
    /// The state of the shell's own services (the audit log, ...): the health view lists them,
    /// and each that is not ok is a red bar under the shell bar.
    SetServices(Vec<ServiceRow>),
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
    /// For `tessera bench frame --whole-frames`: draw every frame whole, as if everything
    /// changed (without a GPU, frames otherwise draw only what changed).
    WholeFrames(bool),
    /// Show the updater's state in the shell bar (a download's progress, or a build ready to
    /// install), or nothing.
    SetUpdate(Option<UpdateBanner>),
    /// Close the window and end the compositor's run.
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
    /// A window exists; app views in it are placed into `xid`. The main window's comes first;
    /// a window opened later (an app moved out) comes before any bounds in it.
    WindowReady {
        /// Which window.
        window: WindowNo,
        /// The shell window's X11 id.
        xid: u64,
        /// Its scale factor.
        scale: f64,
    },
    /// Where a tile's app view goes now; `None` when it must be hidden.
    Bounds {
        /// The tile's key.
        key: u64,
        /// The window it is in (a change means the view must move to that window).
        window: WindowNo,
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
    /// The user changed the layout (dragged, resized, closed or maximised something, moved an
    /// app to another window, or moved or resized a window).
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
    /// Window `window` closed (its apps are in the main window now).
    WindowClosed {
        /// Which window.
        window: WindowNo,
    },
    /// The user closed the main window. (Closing another window moves its apps back to the
    /// main window: nothing is lost.)
    CloseRequested,
}
