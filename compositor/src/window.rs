//! The winit event loop, the egui frame, the launcher and the tile tree.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use raw_window_handle::{HasWindowHandle, RawWindowHandle};
use winit::application::ApplicationHandler;
use winit::event::{ElementState, WindowEvent};
use winit::event_loop::{ActiveEventLoop, ControlFlow, EventLoop, EventLoopProxy};
use winit::window::{Window, WindowId};

use crate::dialogs::{Consent, ConsentRequest, Resolver, ResolverRequest};
use crate::launcher::Launcher;
use crate::layout::{self, LayoutNode, Pane};
use crate::panels::{GrantRow, HealthRow, Side};
use crate::{Command, Error, FrameStats, LauncherApp, LayoutSnapshot, PxRect, TileView, UiEvent, channels, theme};

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
        let ctx = egui::Context::default();
        theme::apply(&ctx);
        let app = App {
            ctx,
            gfx: None,
            desk: Desk::new(title),
            events,
            size,
            failure: None,
            next_paint: None,
            stats: FrameStats::default(),
            present_only: false,
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

struct Gfx {
    window: Arc<Window>,
    painter: egui_wgpu::winit::Painter,
    state: egui_winit::State,
    xid: u32,
}

impl std::fmt::Debug for Gfx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gfx").field("xid", &self.xid).finish_non_exhaustive()
    }
}

/// Everything the window shows, apart from the window itself: testable without a display.
#[derive(Debug)]
pub(crate) struct Desk {
    title: String,
    tree: egui_tiles::Tree<Pane>,
    views: HashMap<u64, TileView>,
    apps: Vec<LauncherApp>,
    launcher: Launcher,
    maximized: Option<u64>,
    /// The bounds last reported per key, so only changes are sent.
    sent: HashMap<u64, Option<PxRect>>,
    /// The layout as last reported, to tell the shell when the user changed it.
    last_layout: Option<LayoutNode>,
    consents: std::collections::VecDeque<Consent>,
    resolvers: std::collections::VecDeque<Resolver>,
    health: Vec<HealthRow>,
    grants: Vec<GrantRow>,
    side: Option<Side>,
    update: Option<crate::UpdateBanner>,
}

impl Desk {
    pub(crate) fn new(title: &str) -> Self {
        Self {
            title: title.to_owned(),
            tree: egui_tiles::Tree::empty(egui::Id::unique("tessera-tiles")),
            views: HashMap::new(),
            apps: Vec::new(),
            launcher: Launcher::default(),
            maximized: None,
            sent: HashMap::new(),
            last_layout: None,
            consents: std::collections::VecDeque::new(),
            resolvers: std::collections::VecDeque::new(),
            health: Vec::new(),
            grants: Vec::new(),
            side: None,
            update: None,
        }
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

    pub(crate) fn set_tiles(&mut self, tiles: Vec<TileView>) {
        let keep: HashMap<u64, TileView> = tiles.into_iter().map(|t| (t.key, t)).collect();
        let panes = self.panes();
        for (key, id) in &panes {
            if !keep.contains_key(key) {
                self.tree.remove_recursively(*id);
                self.sent.remove(key);
                if self.maximized == Some(*key) {
                    self.maximized = None;
                }
            }
        }
        let mut keys: Vec<u64> = keep.keys().copied().filter(|k| !panes.contains_key(k)).collect();
        keys.sort_unstable();
        for key in keys {
            self.add_pane(key);
        }
        self.views = keep;
        self.tree.simplify(&simplification());
    }

    fn add_pane(&mut self, key: u64) {
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

    pub(crate) fn set_layout(&mut self, node: &LayoutNode) {
        let known = &self.views;
        let mut seen = std::collections::HashSet::new();
        let filtered = node.map_keys(&mut |k| (known.contains_key(&k) && seen.insert(k)).then_some(k));
        self.tree = match &filtered {
            Some(n) => layout::build(egui::Id::unique("tessera-tiles"), n),
            None => egui_tiles::Tree::empty(egui::Id::unique("tessera-tiles")),
        };
        let placed = self.panes();
        let mut missing: Vec<u64> = self.views.keys().copied().filter(|k| !placed.contains_key(k)).collect();
        missing.sort_unstable();
        for key in missing {
            self.add_pane(key);
        }
        self.maximized = None;
        self.last_layout = layout::describe(&self.tree);
    }

    pub(crate) fn snapshot(&self, window: (u32, u32), scale: f64) -> LayoutSnapshot {
        let mut bounds: Vec<(u64, Option<PxRect>)> = self.sent.iter().map(|(k, v)| (*k, *v)).collect();
        bounds.sort_by_key(|(k, _)| *k);
        LayoutSnapshot { tree: layout::describe(&self.tree), bounds, maximized: self.maximized, window, scale }
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

    /// Builds one frame's UI; returns what the user did and where each view goes now.
    pub(crate) fn ui(&mut self, ui: &mut egui::Ui, events: &mut Vec<UiEvent>) {
        let ctx = ui.ctx().clone();
        if ctx.input_mut(|i| i.consume_key(egui::Modifiers::COMMAND, egui::Key::K)) {
            self.launcher.focus();
        }
        self.apply_maximized();
        let views = &self.views;
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
        let mut rects: HashMap<u64, egui::Rect> = HashMap::new();
        let mut behavior =
            Behavior { views: &self.views, rects: &mut rects, events, maximized: &mut self.maximized, edited: false };
        // No fill: the clear colour is the background, and live views cover most of it.
        egui::CentralPanel::default().frame(egui::Frame::NONE).show(ui, |ui| {
            if behavior.views.is_empty() {
                ui.centered_and_justified(|ui| {
                    ui.label(
                        egui::RichText::new("No apps are open. Pick one on the left (Ctrl+K to search).")
                            .color(theme::DIM),
                    );
                });
                return;
            }
            self.tree.ui(&mut behavior, ui);
        });
        let edited = behavior.edited;
        let dialog = self.dialogs(&ctx, events);
        // Native child windows always draw above egui: while a tile is dragged or a menu or
        // dialog is open, every view is hidden so nothing the user needs is covered.
        let overlay = dialog || self.tree.dragged_id(&ctx).is_some() || egui::Popup::is_any_open(&ctx);
        let ppp = ctx.pixels_per_point();
        let keys: Vec<u64> = self.views.keys().copied().collect();
        for key in keys {
            let live = self.views.get(&key).is_some_and(|v| v.live);
            let rect = rects.get(&key).filter(|_| live && !overlay).map(|r| to_px(*r, ppp));
            if self.sent.get(&key) != Some(&rect) {
                self.sent.insert(key, rect);
                events.push(UiEvent::Bounds { key, rect });
            }
        }
        let now = layout::describe(&self.tree);
        if edited || now != self.last_layout {
            if now != self.last_layout && self.tree.dragged_id(&ctx).is_none() {
                events.push(UiEvent::LayoutChanged);
            }
            self.last_layout = now;
        }
    }
}

fn simplification() -> egui_tiles::SimplificationOptions {
    egui_tiles::SimplificationOptions { all_panes_must_have_tabs: true, ..Default::default() }
}

#[derive(Debug)]
struct App {
    ctx: egui::Context,
    gfx: Option<Gfx>,
    desk: Desk,
    events: flume::Sender<UiEvent>,
    size: (u32, u32),
    failure: Option<Error>,
    /// When egui asked to be painted again (an animation); `None`: only on events.
    next_paint: Option<Instant>,
    stats: FrameStats,
    /// Draw nothing, only clear and present (a bench's floor).
    present_only: bool,
}

/// Frame times kept for [`Command::FrameStats`].
const FRAME_HISTORY: usize = 20_000;

impl App {
    fn emit(&self, event: UiEvent) {
        if self.events.try_send(event).is_err() {
            tracing::warn!("the shell is not taking window events; one was dropped");
        }
    }

    fn create_window(&mut self, event_loop: &ActiveEventLoop) -> Result<(), Error> {
        let attributes = Window::default_attributes()
            .with_title(self.desk.title.clone())
            .with_inner_size(winit::dpi::PhysicalSize::new(self.size.0, self.size.1));
        let window = Arc::new(event_loop.create_window(attributes).map_err(|e| Error::Window(e.to_string()))?);
        let xid = match window.window_handle().map_err(|e| Error::Window(e.to_string()))?.as_raw() {
            RawWindowHandle::Xlib(h) => u32::try_from(h.window).map_err(|_| Error::NotX11)?,
            RawWindowHandle::Xcb(h) => h.window.get(),
            _ => return Err(Error::NotX11),
        };
        let config = egui_wgpu::WgpuConfiguration {
            wgpu_setup: egui_wgpu::WgpuSetup::from_display_handle(event_loop.owned_display_handle()),
            ..Default::default()
        };
        let mut painter = pollster::block_on(egui_wgpu::winit::Painter::new(
            self.ctx.clone(),
            config,
            false,
            // Dithering costs a noise lookup per pixel, which a software rasteriser feels.
            egui_wgpu::RendererOptions { dithering: false, ..Default::default() },
        ));
        pollster::block_on(painter.set_window(egui::ViewportId::ROOT, Some(Arc::clone(&window))))
            .map_err(|e| Error::Render(e.to_string()))?;
        if let Some(rs) = painter.render_state() {
            let info = rs.adapter.get_info();
            tracing::info!(adapter = %info.name, backend = ?info.backend, "rendering");
        }
        let state = egui_winit::State::new(
            self.ctx.clone(),
            egui::ViewportId::ROOT,
            &window,
            Some(window.scale_factor() as f32),
            None,
            painter.max_texture_side(),
        );
        self.emit(UiEvent::WindowReady { xid: u64::from(xid), scale: window.scale_factor() });
        window.request_redraw();
        self.gfx = Some(Gfx { window, painter, state, xid });
        Ok(())
    }

    fn paint(&mut self) {
        let Some(gfx) = self.gfx.as_mut() else { return };
        let started = Instant::now();
        let raw_input = gfx.state.take_egui_input(&gfx.window);
        let mut events = Vec::new();
        let desk = &mut self.desk;
        let full_output = self.ctx.run_ui(raw_input, |ui| desk.ui(ui, &mut events));
        gfx.state.handle_platform_output(&gfx.window, full_output.platform_output);
        let ppp = full_output.pixels_per_point;
        let mut primitives = self.ctx.tessellate(full_output.shapes, ppp);
        if self.present_only {
            primitives.clear();
        }
        let mut textures = full_output.textures_delta;
        let built = started.elapsed();
        let bg = theme::CLEAR.to_normalized_gamma_f32();
        gfx.painter.paint_and_update_textures(
            egui::ViewportId::ROOT,
            ppp,
            bg,
            &primitives,
            &mut textures,
            Vec::new(),
            &gfx.window,
        );
        self.stats.frames += 1;
        // Past the cap, the older half goes at once: no shifting on every frame.
        if self.stats.frame_ms.len() >= FRAME_HISTORY {
            self.stats.frame_ms.drain(..FRAME_HISTORY / 2);
            self.stats.build_ms.drain(..FRAME_HISTORY / 2);
        }
        self.stats.frame_ms.push(started.elapsed().as_secs_f32() * 1000.0);
        self.stats.build_ms.push(built.as_secs_f32() * 1000.0);
        self.next_paint = full_output
            .viewport_output
            .get(&egui::ViewportId::ROOT)
            .map(|v| v.repaint_delay)
            .filter(|d| *d < Duration::from_secs(3600))
            .map(|d| Instant::now() + d);
        for e in events {
            self.emit(e);
        }
    }

    fn snapshot(&self) -> LayoutSnapshot {
        let (window, scale) = self.gfx.as_ref().map_or(((0, 0), 1.0), |g| {
            let s = g.window.inner_size();
            ((s.width, s.height), g.window.scale_factor())
        });
        self.desk.snapshot(window, scale)
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
    /// A channel chip: filled with the channel's colour, or hollow without one.
    Channel,
}

fn icon_button(ui: &mut egui::Ui, icon: Icon, fill: Option<egui::Color32>) -> egui::Response {
    let (rect, response) = ui.allocate_exact_size(egui::vec2(20.0, 18.0), egui::Sense::click());
    let label = match icon {
        Icon::Maximise => "Maximise",
        Icon::Restore => "Restore",
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
        if self.gfx.is_some() {
            return;
        }
        if let Err(e) = self.create_window(event_loop) {
            self.failure = Some(e);
            event_loop.exit();
        }
    }

    fn user_event(&mut self, event_loop: &ActiveEventLoop, command: Command) {
        match command {
            Command::SetTiles(tiles) => self.desk.set_tiles(tiles),
            Command::SetApps(apps) => self.desk.apps = apps,
            Command::SetLayout(node) => self.desk.set_layout(&node),
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
        if let Some(gfx) = &self.gfx {
            gfx.window.request_redraw();
        }
    }

    fn window_event(&mut self, event_loop: &ActiveEventLoop, _id: WindowId, event: WindowEvent) {
        let Some(gfx) = self.gfx.as_mut() else { return };
        let response = gfx.state.on_window_event(&gfx.window, &event);
        match event {
            WindowEvent::CloseRequested => {
                self.emit(UiEvent::CloseRequested);
                return;
            }
            WindowEvent::Resized(size) => {
                if let (Some(w), Some(h)) =
                    (std::num::NonZeroU32::new(size.width), std::num::NonZeroU32::new(size.height))
                {
                    gfx.painter.on_window_resized(egui::ViewportId::ROOT, w, h);
                }
                gfx.window.request_redraw();
            }
            WindowEvent::RedrawRequested => {
                self.paint();
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
            gfx.window.request_redraw();
        }
        let _ = event_loop;
    }

    fn about_to_wait(&mut self, event_loop: &ActiveEventLoop) {
        match self.next_paint {
            Some(at) if at <= Instant::now() => {
                self.next_paint = None;
                if let Some(gfx) = &self.gfx {
                    gfx.window.request_redraw();
                }
                event_loop.set_control_flow(ControlFlow::Wait);
            }
            Some(at) => event_loop.set_control_flow(ControlFlow::WaitUntil(at)),
            None => event_loop.set_control_flow(ControlFlow::Wait),
        }
    }
}
