//! The winit event loop, the egui frame, the launcher and the tile tree.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use raw_window_handle::{HasWindowHandle, RawWindowHandle};
use winit::application::ApplicationHandler;
use winit::event::{ElementState, WindowEvent};
use winit::event_loop::{ActiveEventLoop, ControlFlow, EventLoop, EventLoopProxy};
use winit::window::{Window, WindowId};

use crate::damage::Damage;
use crate::dialogs::{Consent, ConsentRequest, Resolver, ResolverRequest};
use crate::launcher::Launcher;
use crate::layout::{self, LayoutNode, Pane};
use crate::panels::{GrantRow, HealthRow, Side};
use crate::{
    Command, Error, FrameStats, LauncherApp, LayoutSnapshot, MAIN_WINDOW, PxRect, TileView, UiEvent, WindowNo,
    WindowPlan, WindowSnapshot, channels, theme,
};

/// Sends [`Command`]s to a running [`Compositor`] from any thread.
#[derive(Debug, Clone)]
pub struct Handle(EventLoopProxy<Command>);

impl Handle {
    /// Sends a command; `false` once the window is gone.
    pub fn send(&self, command: Command) -> bool {
        self.0.send_event(command).is_ok()
    }
}

/// The shell window, before it runs. Create it on the main thread.
#[derive(Debug)]
pub struct Compositor {
    event_loop: EventLoop<Command>,
    app: App,
}

impl Compositor {
    /// Prepares a window titled `title` of `size` (physical pixels); what the user does goes to
    /// `events`.
    pub fn new(title: &str, size: (u32, u32), events: flume::Sender<UiEvent>) -> Result<(Self, Handle), Error> {
        use winit::platform::x11::EventLoopBuilderExtX11;
        let event_loop =
            EventLoop::<Command>::with_user_event().with_x11().build().map_err(|e| Error::EventLoop(e.to_string()))?;
        let handle = Handle(event_loop.create_proxy());
        let app = App {
            desk: Desk::new(title),
            windows: Vec::new(),
            spare: Vec::new(),
            events,
            size,
            failure: None,
            stats: FrameStats::default(),
            present_only: false,
            whole_frames: false,
            soft: None,
        };
        Ok((Self { event_loop, app }, handle))
    }

    /// Runs the window until [`Command::Quit`] or the window system ends it.
    pub fn run(mut self) -> Result<(), Error> {
        self.event_loop.set_control_flow(ControlFlow::Wait);
        self.event_loop.run_app(&mut self.app).map_err(|e| Error::EventLoop(e.to_string()))?;
        match self.app.failure.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// What draws a window's frames.
enum Paint {
    /// wgpu's surface: the window system's own presentation (a GPU's).
    Surface(Box<egui_wgpu::winit::Painter>),
    /// A CPU rasteriser's frames, shown through X11 shared memory.
    Soft(Box<crate::soft::Presenter>),
}

impl Paint {
    fn max_texture_side(&self) -> Option<usize> {
        match self {
            Self::Surface(p) => p.max_texture_side(),
            Self::Soft(p) => Some(p.max_texture_side()),
        }
    }
}

/// One window and what draws it.
struct Gfx {
    no: WindowNo,
    window: Arc<Window>,
    painter: Paint,
    state: egui_winit::State,
    ctx: egui::Context,
    xid: u32,
    /// When egui asked to be painted again (an animation); `None`: only on events.
    next_paint: Option<Instant>,
    /// Mouse buttons held down in this window.
    held: Vec<winit::event::MouseButton>,
    /// Frames in a row that could not be shown.
    failures: u64,
}

impl std::fmt::Debug for Gfx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gfx").field("no", &self.no).field("xid", &self.xid).finish_non_exhaustive()
    }
}

/// One window's tiles.
#[derive(Debug)]
pub(crate) struct Surface {
    pub(crate) no: WindowNo,
    tree: egui_tiles::Tree<Pane>,
    maximized: Option<u64>,
    /// The bounds last reported per key, so only changes are sent.
    sent: HashMap<u64, Option<PxRect>>,
    /// The layout as last reported, to tell the shell when the user changed it.
    last_layout: Option<LayoutNode>,
}

impl Surface {
    fn new(no: WindowNo) -> Self {
        Self { no, tree: empty_tree(), maximized: None, sent: HashMap::new(), last_layout: None }
    }

    fn panes(&self) -> HashMap<u64, egui_tiles::TileId> {
        self.tree
            .tiles
            .iter()
            .filter_map(|(id, t)| match t {
                egui_tiles::Tile::Pane(p) => Some((p.key, *id)),
                egui_tiles::Tile::Container(_) => None,
            })
            .collect()
    }

    /// The keys of the panes here.
    fn pane_keys(&self) -> impl Iterator<Item = u64> + '_ {
        self.tree.tiles.iter().filter_map(|(_, t)| match t {
            egui_tiles::Tile::Pane(p) => Some(p.key),
            egui_tiles::Tile::Container(_) => None,
        })
    }

    fn add_pane(&mut self, key: u64) {
        // Whatever was last sent for it was sent for another window (or for a tile since
        // gone): its bounds here must be sent afresh.
        self.sent.remove(&key);
        let pane = self.tree.tiles.insert_pane(Pane { key });
        let tabs = self.tree.tiles.insert_tab_tile(vec![pane]);
        match self.tree.root.and_then(|r| self.tree.tiles.get_mut(r)) {
            Some(egui_tiles::Tile::Container(c)) if c.kind() != egui_tiles::ContainerKind::Tabs => c.add_child(tabs),
            _ => {
                let children: Vec<_> = self.tree.root.into_iter().chain([tabs]).collect();
                let root = self.tree.tiles.insert_horizontal_tile(children);
                self.tree.root = Some(root);
            }
        }
    }

    /// Takes a pane out; `true` if it was here.
    fn remove_pane(&mut self, key: u64) -> bool {
        self.remove_panes(|k| k == key) > 0
    }

    /// Takes out every pane whose key `gone` picks; returns how many.
    fn remove_panes(&mut self, gone: impl Fn(u64) -> bool) -> usize {
        let ids: Vec<(u64, egui_tiles::TileId)> = self.panes().into_iter().filter(|(k, _)| gone(*k)).collect();
        for (key, id) in &ids {
            self.tree.remove_recursively(*id);
            self.sent.remove(key);
            if self.maximized == Some(*key) {
                self.maximized = None;
            }
        }
        if !ids.is_empty() {
            self.tree.simplify(&simplification());
        }
        ids.len()
    }

    fn set_tree(&mut self, node: Option<&LayoutNode>) {
        self.tree = node.map_or_else(empty_tree, |n| layout::build(egui::Id::unique("tessera-tiles"), n));
        // A pane that left this window must have its bounds sent afresh when it comes back.
        let here = self.panes();
        self.sent.retain(|k, _| here.contains_key(k));
        self.maximized = None;
        self.last_layout = layout::describe(&self.tree);
    }

    /// Shows only the maximised pane's tab group (and its ancestors), or everything.
    fn apply_maximized(&mut self) {
        let ids: Vec<egui_tiles::TileId> = self.tree.tiles.tile_ids().collect();
        for id in &ids {
            self.tree.tiles.set_visible(*id, true);
        }
        let Some(pane) = self.maximized.and_then(|k| self.panes().get(&k).copied()) else {
            self.maximized = None;
            return;
        };
        let mut path = vec![pane];
        let mut at = pane;
        while let Some(parent) = self.tree.tiles.parent_of(at) {
            path.push(parent);
            at = parent;
        }
        for id in ids {
            // Hide every tile that is neither on the path nor inside the maximised tab group.
            let inside = path.get(1).is_some_and(|group| self.is_inside(id, *group));
            if !path.contains(&id) && !inside {
                self.tree.tiles.set_visible(id, false);
            }
        }
    }

    fn is_inside(&self, id: egui_tiles::TileId, ancestor: egui_tiles::TileId) -> bool {
        let mut at = id;
        while let Some(parent) = self.tree.tiles.parent_of(at) {
            if parent == ancestor {
                return true;
            }
            at = parent;
        }
        false
    }
}

fn empty_tree() -> egui_tiles::Tree<Pane> {
    egui_tiles::Tree::empty(egui::Id::unique("tessera-tiles"))
}

/// A window the desk wants the window system to open.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Opening {
    pub(crate) no: WindowNo,
    pub(crate) position: Option<(i32, i32)>,
    pub(crate) size: Option<(u32, u32)>,
}

/// Everything the windows show, apart from the windows themselves: testable without a display.
#[derive(Debug)]
pub(crate) struct Desk {
    title: String,
    /// One per window, the main window first.
    surfaces: Vec<Surface>,
    next_window: WindowNo,
    /// Windows to open, and windows to close, since the window system last looked.
    pub(crate) opening: Vec<Opening>,
    pub(crate) closing: Vec<WindowNo>,
    /// Set when one window's change changed another's layout (a pane moved between them).
    pub(crate) redraw_all: bool,
    views: HashMap<u64, TileView>,
    apps: Vec<LauncherApp>,
    launcher: Launcher,
    consents: std::collections::VecDeque<Consent>,
    resolvers: std::collections::VecDeque<Resolver>,
    health: Vec<HealthRow>,
    grants: Vec<GrantRow>,
    side: Option<Side>,
    update: Option<crate::UpdateBanner>,
}

/// Where the user asked to move an app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MoveTo {
    NewWindow,
    Main,
}

impl Desk {
    pub(crate) fn new(title: &str) -> Self {
        Self {
            title: title.to_owned(),
            surfaces: vec![Surface::new(MAIN_WINDOW)],
            next_window: MAIN_WINDOW + 1,
            opening: Vec::new(),
            closing: Vec::new(),
            redraw_all: false,
            views: HashMap::new(),
            apps: Vec::new(),
            launcher: Launcher::default(),
            consents: std::collections::VecDeque::new(),
            resolvers: std::collections::VecDeque::new(),
            health: Vec::new(),
            grants: Vec::new(),
            side: None,
            update: None,
        }
    }

    fn main(&mut self) -> &mut Surface {
        &mut self.surfaces[0]
    }

    pub(crate) fn show_consent(&mut self, request: ConsentRequest) {
        self.consents.push_back(Consent::new(request));
    }

    pub(crate) fn show_resolver(&mut self, request: ResolverRequest) {
        self.resolvers.push_back(Resolver::new(request));
    }

    pub(crate) fn cancel_dialog(&mut self, id: u64) {
        self.consents.retain(|c| c.request.id != id);
        self.resolvers.retain(|r| r.request.id != id);
    }

    /// Shows the first pending dialog (the resolver first: the user just asked for something).
    fn dialogs(&mut self, ctx: &egui::Context, events: &mut Vec<UiEvent>) -> bool {
        // The apps' icons, where the launcher has them.
        let wanted: Vec<String> = match (self.resolvers.front(), self.consents.front()) {
            (Some(r), _) => r.request.choices.iter().map(|c| c.app_id.clone()).collect(),
            (None, Some(c)) => vec![c.request.app_id.clone()],
            (None, None) => Vec::new(),
        };
        let icons: HashMap<String, egui::TextureId> =
            wanted.into_iter().filter_map(|id| self.launcher.icon_of(ctx, &self.apps, &id).map(|t| (id, t))).collect();
        if let Some(resolver) = self.resolvers.front_mut() {
            resolver.icons.clone_from(&icons);
            if let Some(choice) = resolver.ui(ctx) {
                events.push(UiEvent::ResolverAnswered { id: resolver.request.id, choice });
                self.resolvers.pop_front();
            }
            return true;
        }
        if let Some(consent) = self.consents.front_mut() {
            consent.icons = icons;
            if let Some(answer) = consent.ui(ctx) {
                events.push(UiEvent::ConsentAnswered { id: consent.request.id, answer });
                self.consents.pop_front();
            }
            return true;
        }
        false
    }

    /// The window a pane is in.
    fn window_of(&self, key: u64) -> Option<usize> {
        self.surfaces.iter().position(|s| s.pane_keys().any(|k| k == key))
    }

    pub(crate) fn set_tiles(&mut self, tiles: Vec<TileView>) {
        let keep: HashMap<u64, TileView> = tiles.into_iter().map(|t| (t.key, t)).collect();
        for surface in &mut self.surfaces {
            surface.remove_panes(|k| !keep.contains_key(&k));
        }
        let placed: std::collections::HashSet<u64> = self.surfaces.iter().flat_map(Surface::pane_keys).collect();
        let mut keys: Vec<u64> = keep.keys().copied().filter(|k| !placed.contains(k)).collect();
        keys.sort_unstable();
        for key in keys {
            self.main().add_pane(key);
        }
        self.views = keep;
        self.close_empty();
    }

    /// Closes every window but the main one that has no pane left.
    fn close_empty(&mut self) {
        let (keep, gone): (Vec<Surface>, Vec<Surface>) = std::mem::take(&mut self.surfaces)
            .into_iter()
            .partition(|s| s.no == MAIN_WINDOW || s.pane_keys().next().is_some());
        self.surfaces = keep;
        for s in gone {
            self.retire(s.no);
        }
    }

    /// Window `no` is to close (and not to open, if it was still to).
    fn retire(&mut self, no: WindowNo) {
        self.opening.retain(|o| o.no != no);
        self.closing.push(no);
    }

    fn open_window(&mut self, position: Option<(i32, i32)>, size: Option<(u32, u32)>) -> usize {
        let no = self.next_window;
        self.next_window += 1;
        self.surfaces.push(Surface::new(no));
        self.opening.push(Opening { no, position, size });
        self.surfaces.len() - 1
    }

    /// Moves a pane to a new window of its own, or back to the main window.
    fn move_pane(&mut self, key: u64, to: MoveTo) {
        let Some(from) = self.window_of(key) else { return };
        let to = match to {
            MoveTo::Main if from == 0 => return,
            MoveTo::Main => 0,
            MoveTo::NewWindow => self.open_window(None, None),
        };
        self.surfaces[from].remove_pane(key);
        // An app arriving must be seen, not hidden behind a maximised one.
        self.surfaces[to].maximized = None;
        self.surfaces[to].add_pane(key);
        self.redraw_all = true;
        self.close_empty();
    }

    /// The user closed window `no`: its apps go back to the main window.
    pub(crate) fn close_window(&mut self, no: WindowNo) {
        let Some(at) = self.surfaces.iter().position(|s| s.no == no && no != MAIN_WINDOW) else { return };
        let surface = self.surfaces.remove(at);
        let mut keys: Vec<u64> = surface.panes().into_keys().collect();
        // Keep the order the user had them in.
        let order = layout::describe(&surface.tree).map(|n| n.keys()).unwrap_or_default();
        keys.sort_by_key(|k| order.iter().position(|o| o == k));
        self.main().maximized = None;
        for key in keys {
            self.main().add_pane(key);
        }
        self.closing.push(no);
        self.redraw_all = true;
    }

    pub(crate) fn set_layout(&mut self, plans: &[WindowPlan]) {
        let known = &self.views;
        let mut seen = std::collections::HashSet::new();
        let trees: Vec<Option<LayoutNode>> = plans
            .iter()
            .map(|p| {
                p.tree
                    .as_ref()
                    .and_then(|t| t.map_keys(&mut |k| (known.contains_key(&k) && seen.insert(k)).then_some(k)))
            })
            .collect();
        let main_tree = trees.first().cloned().flatten();
        self.surfaces[0].set_tree(main_tree.as_ref());
        // The other windows: reuse the open ones in order, open more, close the rest.
        let mut at = 1;
        for (plan, tree) in plans.iter().zip(&trees).skip(1) {
            let Some(tree) = tree else { continue };
            if at >= self.surfaces.len() {
                self.open_window(plan.position, plan.size);
            } else if let Some(o) = self.opening.iter_mut().find(|o| o.no == self.surfaces[at].no) {
                o.position = plan.position;
                o.size = plan.size;
            } else {
                // An open window takes the plan's place and size too.
                self.opening.push(Opening { no: self.surfaces[at].no, position: plan.position, size: plan.size });
            }
            self.surfaces[at].set_tree(Some(tree));
            at += 1;
        }
        let gone: Vec<WindowNo> = self.surfaces.drain(at..).map(|s| s.no).collect();
        for no in gone {
            self.retire(no);
        }
        let placed: std::collections::HashSet<u64> = self.surfaces.iter().flat_map(Surface::pane_keys).collect();
        let mut missing: Vec<u64> = self.views.keys().copied().filter(|k| !placed.contains(k)).collect();
        missing.sort_unstable();
        for key in missing {
            self.main().add_pane(key);
        }
        self.surfaces[0].last_layout = layout::describe(&self.surfaces[0].tree);
        self.redraw_all = true;
    }

    /// The windows' layouts; `window` gives each one's size, position and scale.
    pub(crate) fn snapshot(
        &self,
        window: impl Fn(WindowNo) -> ((u32, u32), Option<(i32, i32)>, f64),
    ) -> LayoutSnapshot {
        let windows = self
            .surfaces
            .iter()
            .map(|s| {
                let mut bounds: Vec<(u64, Option<PxRect>)> = s.sent.iter().map(|(k, v)| (*k, *v)).collect();
                bounds.sort_by_key(|(k, _)| *k);
                let (size, position, scale) = window(s.no);
                WindowSnapshot {
                    window: s.no,
                    tree: layout::describe(&s.tree),
                    bounds,
                    maximized: s.maximized,
                    size,
                    position,
                    scale,
                }
            })
            .collect();
        LayoutSnapshot { windows }
    }

    /// Builds one frame of window `no`'s UI; returns what the user did and where each view in
    /// that window goes now.
    pub(crate) fn ui(&mut self, no: WindowNo, ui: &mut egui::Ui, events: &mut Vec<UiEvent>) {
        let Some(at) = self.surfaces.iter().position(|s| s.no == no) else { return };
        let ctx = ui.ctx().clone();
        let main = at == 0;
        if main {
            self.main_chrome(ui, events);
        } else if self.window_bar(ui, at) {
            self.close_window(no);
            events.push(UiEvent::LayoutChanged);
            return;
        }
        let mut rects: HashMap<u64, egui::Rect> = HashMap::new();
        let mut moves = Vec::new();
        let surface = &mut self.surfaces[at];
        surface.apply_maximized();
        let mut behavior = Behavior {
            views: &self.views,
            rects: &mut rects,
            events,
            maximized: &mut surface.maximized,
            moves: &mut moves,
            move_to: if main { MoveTo::NewWindow } else { MoveTo::Main },
            edited: false,
        };
        // No fill: the clear colour is the background, and live views cover most of it.
        egui::CentralPanel::default().frame(egui::Frame::NONE).show(ui, |ui| {
            if surface.tree.root.is_none() {
                ui.centered_and_justified(|ui| {
                    ui.label(
                        egui::RichText::new("No apps are open. Pick one on the left (Ctrl+K to search).")
                            .color(theme::DIM),
                    );
                });
                return;
            }
            surface.tree.ui(&mut behavior, ui);
        });
        let edited = behavior.edited;
        let dialog = main && self.dialogs(&ctx, events);
        let surface = &mut self.surfaces[at];
        // Native child windows always draw above egui: while a tile is dragged or a menu or
        // dialog is open, every view in the window is hidden so nothing the user needs is
        // covered.
        let overlay = dialog || surface.tree.dragged_id(&ctx).is_some() || egui::Popup::is_any_open(&ctx);
        let ppp = ctx.pixels_per_point();
        let keys: Vec<u64> = surface.pane_keys().collect();
        for key in keys {
            let live = self.views.get(&key).is_some_and(|v| v.live);
            let rect = rects.get(&key).filter(|_| live && !overlay).map(|r| to_px(*r, ppp));
            if surface.sent.get(&key) != Some(&rect) {
                surface.sent.insert(key, rect);
                events.push(UiEvent::Bounds { key, window: no, rect });
            }
        }
        let now = layout::describe(&surface.tree);
        if edited || now != surface.last_layout {
            if now != surface.last_layout && surface.tree.dragged_id(&ctx).is_none() {
                events.push(UiEvent::LayoutChanged);
            }
            surface.last_layout = now;
        }
        for (key, to) in moves {
            self.move_pane(key, to);
            events.push(UiEvent::LayoutChanged);
        }
    }

    /// The main window's shell bar, side panel and launcher.
    fn main_chrome(&mut self, ui: &mut egui::Ui, events: &mut Vec<UiEvent>) {
        if ui.ctx().input_mut(|i| i.consume_key(egui::Modifiers::COMMAND, egui::Key::K)) {
            self.launcher.focus();
        }
        let views = &self.views;
        let others = self.surfaces.len() - 1;
        egui::Panel::top("shell-bar").show(ui, |ui| {
            ui.horizontal(|ui| {
                ui.label(egui::RichText::new("◆").color(egui::Color32::from_rgb(76, 154, 255)));
                ui.strong(self.title.as_str());
                ui.separator();
                let count = |f: &dyn Fn(&TileView) -> bool| views.values().filter(|v| f(v)).count();
                let running = count(&|v| v.live);
                ui.label(egui::RichText::new(format!("● {running} running")).color(theme::RUNNING));
                let down = views.len() - running;
                if down > 0 {
                    ui.label(egui::RichText::new(format!("● {down} not running")).color(theme::WARN));
                }
                if others > 0 {
                    let s = if others == 1 { "" } else { "s" };
                    ui.label(egui::RichText::new(format!("{others} more window{s}")).color(theme::DIM));
                }
                ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                    for (side, label) in [(Side::Settings, "Settings"), (Side::Health, "Health")] {
                        if ui.selectable_label(self.side == Some(side), label).clicked() {
                            self.side = if self.side == Some(side) { None } else { Some(side) };
                        }
                    }
                    if let Some(update) = &self.update {
                        ui.separator();
                        if let Some(p) = update.progress {
                            ui.add(egui::ProgressBar::new(p.clamp(0.0, 1.0)).desired_width(140.0).show_percentage());
                        }
                        ui.label(egui::RichText::new(update.text.as_str()).color(theme::TEXT));
                    }
                });
            });
        });
        if let Some(side) = self.side {
            egui::Panel::right("side-panel").default_size(460.0).min_size(300.0).resizable(true).show(ui, |ui| {
                ui.add_space(6.0);
                match side {
                    Side::Health => crate::panels::health(ui, &self.health),
                    Side::Settings => {
                        if let Some(grant) = crate::panels::settings(ui, &self.grants) {
                            events.push(UiEvent::RevokeGrant(grant));
                        }
                    }
                }
            });
        }
        let mut launch = None;
        egui::Panel::left("launcher").default_size(240.0).min_size(180.0).resizable(true).show(ui, |ui| {
            launch = self.launcher.ui(ui, &self.apps);
        });
        if let Some(app_id) = launch {
            events.push(UiEvent::Launch { app_id });
        }
    }

    /// What window `no` is called (its title bar, and its own bar inside).
    pub(crate) fn window_title(&self, no: WindowNo) -> String {
        if no == MAIN_WINDOW { self.title.clone() } else { format!("{} · window {}", self.title, no + 1) }
    }

    /// Another window's bar: which window it is, and a way to send everything back (`true`
    /// when the user asked for that).
    fn window_bar(&mut self, ui: &mut egui::Ui, at: usize) -> bool {
        let no = self.surfaces[at].no;
        let mut back = false;
        egui::Panel::top("window-bar").show(ui, |ui| {
            ui.horizontal(|ui| {
                ui.label(egui::RichText::new("◆").color(egui::Color32::from_rgb(76, 154, 255)));
                ui.strong(self.window_title(no));
                ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                    back = ui
                        .button("Move all to the main window")
                        .on_hover_text("Closing this window does the same")
                        .clicked();
                });
            });
        });
        back
    }
}

fn simplification() -> egui_tiles::SimplificationOptions {
    egui_tiles::SimplificationOptions { all_panes_must_have_tabs: true, ..Default::default() }
}

#[derive(Debug)]
struct App {
    desk: Desk,
    /// One per open window, the main window first.
    windows: Vec<Gfx>,
    /// Windows the user closed, hidden and kept for the next one opened: an app view that has
    /// not yet moved out of a window (its host does that) must not lose its parent.
    spare: Vec<Gfx>,
    events: flume::Sender<UiEvent>,
    size: (u32, u32),
    failure: Option<Error>,
    stats: FrameStats,
    /// Draw nothing, only clear and present (a bench's floor).
    present_only: bool,
    /// Draw every frame whole (a bench's comparison).
    whole_frames: bool,
    /// The CPU device for shared-memory presentation: `None` until looked for, then whether
    /// there is one.
    soft: Option<Option<crate::soft::Device>>,
}

/// Frame times kept for [`Command::FrameStats`].
const FRAME_HISTORY: usize = 20_000;

/// The shortest time between two frames egui asks for itself (an animation).
const ANIMATION_FRAME: Duration = Duration::from_micros(16_667);

/// The size of a window opened for an app moved out of the main window.
const NEW_WINDOW_SIZE: (u32, u32) = (960, 720);

impl App {
    fn emit(&self, event: UiEvent) {
        if self.events.try_send(event).is_err() {
            tracing::warn!("the shell is not taking window events; one was dropped");
        }
    }

    /// Tells the shell a window is up. Unlike other events this one must not be dropped (the
    /// shell could place no view in the window): a full queue is waited on, for a while.
    fn window_ready(&self, gfx: &Gfx) {
        let event = UiEvent::WindowReady { window: gfx.no, xid: u64::from(gfx.xid), scale: gfx.window.scale_factor() };
        if self.events.send_timeout(event, Duration::from_secs(5)).is_err() {
            tracing::error!(
                window = gfx.no,
                "the shell did not take the news of a new window; its apps cannot be shown"
            );
        }
    }

    fn create_window(&mut self, event_loop: &ActiveEventLoop, opening: &Opening) -> Result<Gfx, Error> {
        let title = self.desk.window_title(opening.no);
        let size = opening.size.unwrap_or(if opening.no == MAIN_WINDOW { self.size } else { NEW_WINDOW_SIZE });
        if let Some(mut gfx) = self.spare.pop() {
            gfx.no = opening.no;
            gfx.held.clear();
            gfx.window.set_title(&title);
            place(&gfx.window, Some(size), opening.position);
            gfx.window.set_visible(true);
            gfx.window.request_redraw();
            return Ok(gfx);
        }
        let mut attributes = Window::default_attributes()
            .with_title(title)
            .with_inner_size(winit::dpi::PhysicalSize::new(size.0, size.1));
        if let Some((x, y)) = opening.position {
            attributes = attributes.with_position(winit::dpi::PhysicalPosition::new(x, y));
        }
        let window = Arc::new(event_loop.create_window(attributes).map_err(|e| Error::Window(e.to_string()))?);
        let xid = match window.window_handle().map_err(|e| Error::Window(e.to_string()))?.as_raw() {
            RawWindowHandle::Xlib(h) => u32::try_from(h.window).map_err(|_| Error::NotX11)?,
            RawWindowHandle::Xcb(h) => h.window.get(),
            _ => return Err(Error::NotX11),
        };
        let ctx = egui::Context::default();
        theme::apply(&ctx);
        let painter = match self.soft_device() {
            Some(device) => match crate::soft::Presenter::new(device, xid) {
                Ok(p) => Some(Paint::Soft(Box::new(p))),
                Err(e) => {
                    tracing::warn!("presenting through the window system instead of shared memory: {e}");
                    None
                }
            },
            None => None,
        };
        let painter = match painter {
            Some(p) => p,
            None => Paint::Surface(Box::new(self.surface_painter(event_loop, &ctx, &window)?)),
        };
        let state = egui_winit::State::new(
            ctx.clone(),
            egui::ViewportId::ROOT,
            &window,
            Some(window.scale_factor() as f32),
            None,
            painter.max_texture_side(),
        );
        window.request_redraw();
        Ok(Gfx { no: opening.no, window, painter, state, ctx, xid, next_paint: None, held: Vec::new(), failures: 0 })
    }

    /// The CPU device frames are drawn with and shown through shared memory, if this machine
    /// renders on the CPU (and `TESSERA_PRESENT` is not `surface`). Looked for once.
    fn soft_device(&mut self) -> Option<crate::soft::Device> {
        let device = self.soft.get_or_insert_with(|| {
            if std::env::var("TESSERA_PRESENT").is_ok_and(|v| v == "surface") {
                return None;
            }
            let device = crate::soft::Device::cpu();
            if let Some(d) = &device {
                tracing::info!(adapter = %d.name, "rendering on the CPU; frames are shown through X11 shared memory");
            }
            device
        });
        device.clone()
    }

    fn surface_painter(
        &self,
        event_loop: &ActiveEventLoop,
        ctx: &egui::Context,
        window: &Arc<Window>,
    ) -> Result<egui_wgpu::winit::Painter, Error> {
        // Every window draws with the first one's device: one GPU (or lavapipe) context.
        let shared = self.windows.iter().find_map(|g| match &g.painter {
            Paint::Surface(p) => p.render_state(),
            Paint::Soft(_) => None,
        });
        let wgpu_setup = match shared {
            Some(rs) => egui_wgpu::WgpuSetup::Existing(egui_wgpu::WgpuSetupExisting {
                instance: rs.instance.clone(),
                adapter: rs.adapter.clone(),
                device: rs.device.clone(),
                queue: rs.queue.clone(),
            }),
            None => egui_wgpu::WgpuSetup::from_display_handle(event_loop.owned_display_handle()),
        };
        let config = egui_wgpu::WgpuConfiguration { wgpu_setup, ..Default::default() };
        let mut painter = pollster::block_on(egui_wgpu::winit::Painter::new(
            ctx.clone(),
            config,
            false,
            // Dithering costs a noise lookup per pixel, which a software rasteriser feels.
            egui_wgpu::RendererOptions { dithering: false, ..Default::default() },
        ));
        pollster::block_on(painter.set_window(egui::ViewportId::ROOT, Some(Arc::clone(window))))
            .map_err(|e| Error::Render(e.to_string()))?;
        if self.windows.is_empty()
            && let Some(rs) = painter.render_state()
        {
            let info = rs.adapter.get_info();
            tracing::info!(adapter = %info.name, backend = ?info.backend, "rendering");
        }
        Ok(painter)
    }

    /// Opens the windows the desk asked for and hides the ones it closed.
    fn sync_windows(&mut self, event_loop: &ActiveEventLoop) {
        // The main window comes first (`resumed`); other windows wait for it.
        if !self.windows.iter().any(|g| g.no == MAIN_WINDOW) {
            return;
        }
        for no in std::mem::take(&mut self.desk.closing) {
            if let Some(at) = self.windows.iter().position(|g| g.no == no && no != MAIN_WINDOW) {
                let gfx = self.windows.remove(at);
                gfx.window.set_visible(false);
                self.spare.push(gfx);
                self.emit(UiEvent::WindowClosed { window: no });
            }
        }
        for opening in std::mem::take(&mut self.desk.opening) {
            if let Some(gfx) = self.windows.iter().find(|g| g.no == opening.no) {
                // Already open: a restored workspace moves and sizes it.
                place(&gfx.window, opening.size, opening.position);
                continue;
            }
            match self.create_window(event_loop, &opening) {
                Ok(gfx) => {
                    self.window_ready(&gfx);
                    self.windows.push(gfx);
                }
                Err(e) if opening.no == MAIN_WINDOW => {
                    self.failure = Some(e);
                    event_loop.exit();
                    return;
                }
                Err(e) => {
                    // The apps stay where they are wanted, in the main window.
                    tracing::error!("could not open another window: {e}");
                    self.desk.close_window(opening.no);
                    self.desk.closing.clear();
                }
            }
        }
        if std::mem::take(&mut self.desk.redraw_all) {
            self.request_redraw();
        }
    }

    fn paint(&mut self, at: usize) {
        let Some(gfx) = self.windows.get_mut(at) else { return };
        let started = Instant::now();
        let raw_input = gfx.state.take_egui_input(&gfx.window);
        let mut events = Vec::new();
        let desk = &mut self.desk;
        let no = gfx.no;
        let full_output = gfx.ctx.run_ui(raw_input, |ui| desk.ui(no, ui, &mut events));
        gfx.state.handle_platform_output(&gfx.window, full_output.platform_output);
        let ppp = full_output.pixels_per_point;
        let size = gfx.window.inner_size();
        let mut textures = full_output.textures_delta;
        let mut shapes = full_output.shapes;
        // Drawing on the CPU, only what changed is drawn again: only the shapes there are
        // tessellated, clipped to it.
        let damage = match &mut gfx.painter {
            Paint::Soft(presenter) => match presenter.plan(&shapes, ppp, (size.width, size.height), &textures) {
                _ if self.whole_frames => Damage::Whole,
                d => d,
            },
            Paint::Surface(_) => Damage::Whole,
        };
        let damage = if self.present_only {
            shapes.clear();
            Damage::Whole
        } else {
            damage
        };
        let primitives = match &damage {
            Damage::Areas(areas) => crate::damage::tessellate_within(&gfx.ctx, &shapes, areas, ppp),
            Damage::Whole => gfx.ctx.tessellate(shapes, ppp),
        };
        let built = started.elapsed();
        let bg = theme::CLEAR.to_normalized_gamma_f32();
        // The share of the window's pixels drawn: all of them, unless the presenter says less.
        let mut drawn = 1.0;
        match &mut gfx.painter {
            Paint::Surface(painter) => {
                painter.paint_and_update_textures(
                    egui::ViewportId::ROOT,
                    ppp,
                    bg,
                    &primitives,
                    &mut textures,
                    Vec::new(),
                    &gfx.window,
                );
            }
            Paint::Soft(presenter) => {
                match presenter.paint((size.width, size.height), ppp, bg, &primitives, &textures, &damage) {
                    Ok(share) => {
                        drawn = share;
                        if gfx.failures > 0 {
                            tracing::info!(window = gfx.no, after = gfx.failures, "frames are shown again");
                            gfx.failures = 0;
                        }
                    }
                    Err(e) => {
                        // Once, then now and then: a broken display must not flood the log.
                        if gfx.failures % 1000 == 0 {
                            tracing::warn!(window = gfx.no, failed = gfx.failures + 1, "could not show a frame: {e}");
                        }
                        gfx.failures += 1;
                    }
                }
                // Applied by the presenter, failure or not.
                textures.clear();
                if self.present_only {
                    // What the tracker saw was not drawn: once shapes are drawn again, all of
                    // them must be.
                    presenter.invalidate();
                }
            }
        }
        self.stats.frames += 1;
        // Past the cap, the older half goes at once: no shifting on every frame.
        if self.stats.frame_ms.len() >= FRAME_HISTORY {
            self.stats.frame_ms.drain(..FRAME_HISTORY / 2);
            self.stats.build_ms.drain(..FRAME_HISTORY / 2);
            self.stats.drawn.drain(..FRAME_HISTORY / 2);
        }
        self.stats.drawn.push(drawn);
        self.stats.frame_ms.push(started.elapsed().as_secs_f32() * 1000.0);
        self.stats.build_ms.push(built.as_secs_f32() * 1000.0);
        // An animation gets at most 60 frames a second (wgpu's surface paces itself by the
        // display; shared memory would not).
        gfx.next_paint = full_output
            .viewport_output
            .get(&egui::ViewportId::ROOT)
            .map(|v| v.repaint_delay)
            .filter(|d| *d < Duration::from_secs(3600))
            .map(|d| (Instant::now() + d).max(started + ANIMATION_FRAME));
        for e in events {
            self.emit(e);
        }
    }

    fn snapshot(&self) -> LayoutSnapshot {
        self.desk.snapshot(|no| {
            self.windows.iter().find(|g| g.no == no).map_or(((0, 0), None, 1.0), |g| {
                let s = g.window.inner_size();
                let position = g.window.outer_position().ok().map(|p| (p.x, p.y));
                ((s.width, s.height), position, g.window.scale_factor())
            })
        })
    }

    fn request_redraw(&self) {
        for gfx in &self.windows {
            gfx.window.request_redraw();
        }
    }
}

/// Sizes and moves a window, as far as it is told.
fn place(window: &Window, size: Option<(u32, u32)>, position: Option<(i32, i32)>) {
    if let Some((w, h)) = size {
        let _ = window.request_inner_size(winit::dpi::PhysicalSize::new(w, h));
    }
    if let Some((x, y)) = position {
        window.set_outer_position(winit::dpi::PhysicalPosition::new(x, y));
    }
}

fn to_px(r: egui::Rect, ppp: f32) -> PxRect {
    let px = |v: f32| (v * ppp).round();
    let (x, y) = (px(r.min.x), px(r.min.y));
    PxRect {
        x: x as i32,
        y: y as i32,
        width: (px(r.max.x) - x).max(1.0) as u32,
        height: (px(r.max.y) - y).max(1.0) as u32,
    }
}

struct Behavior<'a> {
    views: &'a HashMap<u64, TileView>,
    rects: &'a mut HashMap<u64, egui::Rect>,
    events: &'a mut Vec<UiEvent>,
    maximized: &'a mut Option<u64>,
    /// Apps the user asked to move to another window this frame.
    moves: &'a mut Vec<(u64, MoveTo)>,
    /// Where this window's move button sends an app.
    move_to: MoveTo,
    edited: bool,
}

impl Behavior<'_> {
    fn active_key(tiles: &egui_tiles::Tiles<Pane>, tabs: &egui_tiles::Tabs) -> Option<u64> {
        match tiles.get(tabs.active?)? {
            egui_tiles::Tile::Pane(p) => Some(p.key),
            egui_tiles::Tile::Container(_) => None,
        }
    }
}

/// The tab bar's small buttons, drawn rather than taken from a font.
#[derive(Debug, Clone, Copy)]
enum Icon {
    Maximise,
    Restore,
    /// Move the app to a window of its own.
    PopOut,
    /// Move the app back to the main window.
    DockBack,
    /// A channel chip: filled with the channel's colour, or hollow without one.
    Channel,
}

fn icon_button(ui: &mut egui::Ui, icon: Icon, fill: Option<egui::Color32>) -> egui::Response {
    let (rect, response) = ui.allocate_exact_size(egui::vec2(20.0, 18.0), egui::Sense::click());
    let label = match icon {
        Icon::Maximise => "Maximise",
        Icon::Restore => "Restore",
        Icon::PopOut => "Open in a new window",
        Icon::DockBack => "Move to the main window",
        Icon::Channel => "Channel",
    };
    response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Button, true, label));
    let painter = ui.painter_at(rect);
    if response.hovered() {
        painter.rect_filled(rect, 4.0, theme::HOVER);
    }
    let c = rect.center();
    let stroke = egui::Stroke::new(1.3, if response.hovered() { theme::TEXT } else { theme::DIM });
    match icon {
        Icon::Maximise => {
            let frame = egui::Rect::from_center_size(c, egui::vec2(10.0, 9.0));
            painter.rect_stroke(frame, 1.0, stroke, egui::StrokeKind::Inside);
        }
        Icon::Restore => {
            let back = egui::Rect::from_center_size(c + egui::vec2(2.0, -2.0), egui::vec2(8.0, 7.0));
            let front = egui::Rect::from_center_size(c + egui::vec2(-1.5, 1.5), egui::vec2(8.0, 7.0));
            painter.rect_stroke(back, 1.0, stroke, egui::StrokeKind::Inside);
            painter.rect_filled(front, 1.0, theme::PANEL);
            painter.rect_stroke(front, 1.0, stroke, egui::StrokeKind::Inside);
        }
        Icon::PopOut | Icon::DockBack => {
            // A window, with an arrow leaving it (or coming home).
            let frame = egui::Rect::from_center_size(c + egui::vec2(-1.5, 1.5), egui::vec2(9.0, 8.0));
            painter.rect_stroke(frame, 1.0, stroke, egui::StrokeKind::Inside);
            let (tail, head) = if matches!(icon, Icon::PopOut) {
                (c + egui::vec2(-0.5, 0.5), c + egui::vec2(5.0, -5.0))
            } else {
                (c + egui::vec2(5.0, -5.0), c + egui::vec2(-0.5, 0.5))
            };
            painter.line_segment([tail, head], stroke);
            // The arrowhead: two strokes back from the tip, along each axis.
            let back = egui::vec2((tail.x - head.x).signum(), (tail.y - head.y).signum()) * 3.5;
            painter.line_segment([head, head + egui::vec2(back.x, 0.0)], stroke);
            painter.line_segment([head, head + egui::vec2(0.0, back.y)], stroke);
        }
        Icon::Channel => {
            let chip = egui::Rect::from_center_size(c, egui::vec2(11.0, 11.0));
            match fill {
                Some(colour) => {
                    painter.rect_filled(chip, 2.0, colour);
                }
                None => {
                    painter.rect_stroke(chip, 2.0, stroke, egui::StrokeKind::Inside);
                }
            }
        }
    }
    response
}

impl egui_tiles::Behavior<Pane> for Behavior<'_> {
    fn tab_title_for_pane(&mut self, pane: &Pane) -> egui::WidgetText {
        let Some(view) = self.views.get(&pane.key) else { return format!("#{}", pane.key).into() };
        let mut job = egui::text::LayoutJob::default();
        let font = egui::FontId::proportional(13.0);
        if let Some(c) = view.channel.and_then(channels::channel) {
            job.append("■ ", 0.0, egui::TextFormat::simple(font.clone(), c.colour));
        }
        let colour = if view.live { theme::TEXT } else { theme::WARN };
        job.append(&view.title, 0.0, egui::TextFormat::simple(font, colour));
        job.into()
    }

    fn pane_ui(&mut self, ui: &mut egui::Ui, _tile: egui_tiles::TileId, pane: &mut Pane) -> egui_tiles::UiResponse {
        let rect = ui.available_rect_before_wrap();
        // A live app's view covers its tile: painting under it would only cost fill rate.
        if let Some(view) = self.views.get(&pane.key)
            && !view.live
        {
            ui.painter().rect_filled(rect, 0.0, theme::TILE);
            let colour = if view.status.starts_with("failed") { theme::ERROR } else { theme::WARN };
            ui.painter().text(
                rect.center(),
                egui::Align2::CENTER_CENTER,
                format!("{} — {}", view.title, view.status),
                egui::FontId::proportional(15.0),
                colour,
            );
        }
        self.rects.insert(pane.key, rect);
        egui_tiles::UiResponse::None
    }

    fn top_bar_right_ui(
        &mut self,
        tiles: &egui_tiles::Tiles<Pane>,
        ui: &mut egui::Ui,
        _tile: egui_tiles::TileId,
        tabs: &egui_tiles::Tabs,
        _scroll_offset: &mut f32,
    ) {
        let Some(key) = Self::active_key(tiles, tabs) else { return };
        let maximized = *self.maximized == Some(key);
        let toggle = icon_button(ui, if maximized { Icon::Restore } else { Icon::Maximise }, None)
            .on_hover_text(if maximized { "Restore the layout" } else { "Maximise this app" });
        if toggle.clicked() {
            *self.maximized = if maximized { None } else { Some(key) };
            self.edited = true;
        }
        let (icon, hint) = match self.move_to {
            MoveTo::NewWindow => (Icon::PopOut, "Open this app in a new window"),
            MoveTo::Main => (Icon::DockBack, "Move this app back to the main window"),
        };
        if icon_button(ui, icon, None).on_hover_text(hint).clicked() {
            self.moves.push((key, self.move_to));
        }
        let current = self.views.get(&key).and_then(|v| v.channel).and_then(channels::channel);
        let (colour, label) = current.map_or((theme::DIM, "No channel".to_owned()), |c| (c.colour, c.name.to_owned()));
        let response = icon_button(ui, Icon::Channel, current.map(|_| colour))
            .on_hover_text(format!("Channel: {label}. Click to change."));
        egui::Popup::menu(&response).show(|ui| {
            ui.set_min_width(150.0);
            for c in &channels::CHANNELS {
                let mut text = egui::text::LayoutJob::default();
                let font = egui::FontId::proportional(13.0);
                text.append("■ ", 0.0, egui::TextFormat::simple(font.clone(), c.colour));
                text.append(
                    &format!("{} ({})", c.name, c.colour_name),
                    0.0,
                    egui::TextFormat::simple(font, theme::TEXT),
                );
                if ui.selectable_label(current.map(|x| x.number) == Some(c.number), text).clicked() {
                    self.events.push(UiEvent::ChannelChanged { key, channel: Some(c.number) });
                }
            }
            ui.separator();
            if ui.selectable_label(current.is_none(), "No channel").clicked() {
                self.events.push(UiEvent::ChannelChanged { key, channel: None });
            }
        });
    }

    fn is_tab_closable(&self, _tiles: &egui_tiles::Tiles<Pane>, _tile: egui_tiles::TileId) -> bool {
        true
    }

    fn on_tab_close(&mut self, tiles: &mut egui_tiles::Tiles<Pane>, tile: egui_tiles::TileId) -> bool {
        if let Some(egui_tiles::Tile::Pane(p)) = tiles.get(tile) {
            self.events.push(UiEvent::CloseTile { key: p.key });
        }
        // The shell closes the app, then removes the tile.
        false
    }

    fn on_edit(&mut self, _action: egui_tiles::EditAction) {
        self.edited = true;
    }

    fn simplification_options(&self) -> egui_tiles::SimplificationOptions {
        simplification()
    }
}

impl ApplicationHandler<Command> for App {
    fn resumed(&mut self, event_loop: &ActiveEventLoop) {
        if !self.windows.is_empty() {
            return;
        }
        match self.create_window(event_loop, &Opening { no: MAIN_WINDOW, position: None, size: None }) {
            Ok(gfx) => {
                self.window_ready(&gfx);
                self.windows.push(gfx);
                self.sync_windows(event_loop);
            }
            Err(e) => {
                self.failure = Some(e);
                event_loop.exit();
            }
        }
    }

    fn user_event(&mut self, event_loop: &ActiveEventLoop, command: Command) {
        match command {
            Command::SetTiles(tiles) => self.desk.set_tiles(tiles),
            Command::SetApps(apps) => self.desk.apps = apps,
            Command::SetLayout(plans) => self.desk.set_layout(&plans),
            Command::SetHealth(rows) => {
                self.desk.health = rows;
                // Only an open health view needs drawing again: idle stays idle.
                if self.desk.side != Some(Side::Health) {
                    return;
                }
            }
            Command::SetGrants(rows) => {
                self.desk.grants = rows;
                if self.desk.side != Some(Side::Settings) {
                    return;
                }
            }
            Command::PresentOnly(on) => self.present_only = on,
            Command::WholeFrames(on) => self.whole_frames = on,
            Command::SetUpdate(banner) => {
                if self.desk.update == banner {
                    return;
                }
                self.desk.update = banner;
            }
            Command::ShowConsent(request) => self.desk.show_consent(request),
            Command::ShowResolver(request) => self.desk.show_resolver(request),
            Command::CancelDialog { id } => self.desk.cancel_dialog(id),
            Command::GetLayout(reply) => {
                let _ = reply.try_send(self.snapshot());
                return;
            }
            Command::FrameStats { reply, reset } => {
                let _ = reply.try_send(self.stats.clone());
                if reset {
                    self.stats = FrameStats::default();
                }
                return;
            }
            Command::Quit => event_loop.exit(),
        }
        self.sync_windows(event_loop);
        self.request_redraw();
    }

    fn window_event(&mut self, event_loop: &ActiveEventLoop, id: WindowId, event: WindowEvent) {
        let Some(at) = self.windows.iter().position(|g| g.window.id() == id) else { return };
        let gfx = &mut self.windows[at];
        match &event {
            WindowEvent::MouseInput { state: ElementState::Pressed, button, .. } => gfx.held.push(*button),
            WindowEvent::MouseInput { state: ElementState::Released, button, .. } => gfx.held.retain(|b| b != button),
            // X11 reports the pointer leaving when it enters a child window, and every app view
            // is one. With a button held the window keeps the pointer (the press grabbed it), but
            // egui, told the pointer is gone before a drag has been decided, forgets the press:
            // a tab pressed and pulled over the view below it would not move. Keep the pointer.
            WindowEvent::CursorLeft { .. } if !gfx.held.is_empty() => return,
            _ => {}
        }
        let response = gfx.state.on_window_event(&gfx.window, &event);
        match event {
            WindowEvent::CloseRequested if gfx.no == MAIN_WINDOW => {
                self.emit(UiEvent::CloseRequested);
                return;
            }
            WindowEvent::CloseRequested => {
                let no = gfx.no;
                self.desk.close_window(no);
                self.emit(UiEvent::LayoutChanged);
                self.sync_windows(event_loop);
                return;
            }
            WindowEvent::Resized(size) => {
                if let (Some(w), Some(h)) =
                    (std::num::NonZeroU32::new(size.width), std::num::NonZeroU32::new(size.height))
                    && let Paint::Surface(painter) = &mut gfx.painter
                {
                    painter.on_window_resized(egui::ViewportId::ROOT, w, h);
                }
                gfx.window.request_redraw();
                // A workspace keeps each window's size.
                self.emit(UiEvent::LayoutChanged);
            }
            WindowEvent::Moved(_) => self.emit(UiEvent::LayoutChanged),
            WindowEvent::RedrawRequested => {
                self.paint(at);
                self.sync_windows(event_loop);
                return;
            }
            WindowEvent::MouseInput { state: ElementState::Pressed, .. } => {
                // The click landed on the shell's own area (an app view gets its own clicks):
                // take the keyboard focus back from whichever app view had it.
                if let Err(e) = crate::x11::focus(gfx.xid) {
                    tracing::debug!("could not take the keyboard focus: {e}");
                }
            }
            _ => {}
        }
        if response.repaint {
            self.windows[at].window.request_redraw();
        }
    }

    fn about_to_wait(&mut self, event_loop: &ActiveEventLoop) {
        let now = Instant::now();
        let mut next: Option<Instant> = None;
        for gfx in &mut self.windows {
            match gfx.next_paint {
                Some(at) if at <= now => {
                    gfx.next_paint = None;
                    gfx.window.request_redraw();
                }
                Some(at) => next = Some(next.map_or(at, |n| n.min(at))),
                None => {}
            }
        }
        event_loop.set_control_flow(next.map_or(ControlFlow::Wait, ControlFlow::WaitUntil));
    }
}

#[cfg(test)]
mod tests;
