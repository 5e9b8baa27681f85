//! The winit event loop, the egui frame, and the tile tree.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use raw_window_handle::{HasWindowHandle, RawWindowHandle};
use winit::application::ApplicationHandler;
use winit::event::{ElementState, WindowEvent};
use winit::event_loop::{ActiveEventLoop, ControlFlow, EventLoop, EventLoopProxy};
use winit::window::{Window, WindowId};

use crate::{Command, Error, PxRect, TileView, UiEvent};

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
            ctx: egui::Context::default(),
            gfx: None,
            tree: egui_tiles::Tree::empty(egui::Id::unique("tessera-tiles")),
            views: HashMap::new(),
            panes: HashMap::new(),
            sent: HashMap::new(),
            events,
            title: title.to_owned(),
            size,
            failure: None,
            next_paint: None,
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

#[derive(Debug)]
struct Pane {
    key: u64,
}

#[derive(Debug)]
struct App {
    ctx: egui::Context,
    gfx: Option<Gfx>,
    tree: egui_tiles::Tree<Pane>,
    views: HashMap<u64, TileView>,
    panes: HashMap<u64, egui_tiles::TileId>,
    /// The bounds last reported per key, so only changes are sent.
    sent: HashMap<u64, Option<PxRect>>,
    events: flume::Sender<UiEvent>,
    title: String,
    size: (u32, u32),
    failure: Option<Error>,
    /// When egui asked to be painted again (an animation); `None`: only on events.
    next_paint: Option<Instant>,
}

impl App {
    fn emit(&self, event: UiEvent) {
        if self.events.try_send(event).is_err() {
            tracing::warn!("the shell is not taking window events; one was dropped");
        }
    }

    fn create_window(&mut self, event_loop: &ActiveEventLoop) -> Result<(), Error> {
        let attributes = Window::default_attributes()
            .with_title(self.title.clone())
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
            egui_wgpu::RendererOptions::default(),
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

    fn set_tiles(&mut self, tiles: Vec<TileView>) {
        let keep: HashMap<u64, TileView> = tiles.into_iter().map(|t| (t.key, t)).collect();
        let gone: Vec<u64> = self.panes.keys().filter(|k| !keep.contains_key(k)).copied().collect();
        for key in gone {
            if let Some(id) = self.panes.remove(&key) {
                self.tree.remove_recursively(id);
            }
            self.sent.remove(&key);
        }
        let mut keys: Vec<u64> = keep.keys().copied().collect();
        keys.sort_unstable();
        for key in keys {
            if self.panes.contains_key(&key) {
                continue;
            }
            let pane = self.tree.tiles.insert_pane(Pane { key });
            let tabs = self.tree.tiles.insert_tab_tile(vec![pane]);
            match self.tree.root.and_then(|r| self.tree.tiles.get_mut(r)) {
                Some(egui_tiles::Tile::Container(c)) => c.add_child(tabs),
                _ => {
                    let root = self.tree.tiles.insert_horizontal_tile(vec![tabs]);
                    self.tree.root = Some(root);
                }
            }
            self.panes.insert(key, pane);
        }
        self.views = keep;
    }

    fn paint(&mut self) {
        let Some(gfx) = self.gfx.as_mut() else { return };
        let raw_input = gfx.state.take_egui_input(&gfx.window);
        let mut rects: HashMap<u64, egui::Rect> = HashMap::new();
        let mut closed = Vec::new();
        let views = &self.views;
        let tree = &mut self.tree;
        let title = &self.title;
        let full_output = self.ctx.run_ui(raw_input, |ui| {
            egui::Panel::top("shell-bar").show(ui, |ui| {
                ui.horizontal(|ui| {
                    ui.strong(title.as_str());
                    ui.separator();
                    let running = views.values().filter(|v| v.live).count();
                    ui.label(format!("{} apps, {running} running", views.len()));
                });
            });
            egui::CentralPanel::default().show(ui, |ui| {
                if views.is_empty() {
                    ui.centered_and_justified(|ui| ui.label("No apps are open."));
                    return;
                }
                let mut behavior = Behavior { views, rects: &mut rects, closed: &mut closed };
                tree.ui(&mut behavior, ui);
            });
        });
        gfx.state.handle_platform_output(&gfx.window, full_output.platform_output);
        let ppp = full_output.pixels_per_point;
        let primitives = self.ctx.tessellate(full_output.shapes, ppp);
        let mut textures = full_output.textures_delta;
        gfx.painter.paint_and_update_textures(
            egui::ViewportId::ROOT,
            ppp,
            [0.08, 0.09, 0.11, 1.0],
            &primitives,
            &mut textures,
            Vec::new(),
            &gfx.window,
        );
        self.next_paint = full_output
            .viewport_output
            .get(&egui::ViewportId::ROOT)
            .map(|v| v.repaint_delay)
            .filter(|d| *d < Duration::from_secs(3600))
            .map(|d| Instant::now() + d);

        for key in closed {
            self.emit(UiEvent::CloseTile { key });
        }
        let keys: Vec<u64> = self.views.keys().copied().collect();
        for key in keys {
            let rect = rects.get(&key).filter(|_| self.views.get(&key).is_some_and(|v| v.live)).map(|r| to_px(*r, ppp));
            if self.sent.get(&key) != Some(&rect) {
                self.sent.insert(key, rect);
                self.emit(UiEvent::Bounds { key, rect });
            }
        }
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
    closed: &'a mut Vec<u64>,
}

impl egui_tiles::Behavior<Pane> for Behavior<'_> {
    fn tab_title_for_pane(&mut self, pane: &Pane) -> egui::WidgetText {
        self.views.get(&pane.key).map_or_else(|| format!("#{}", pane.key), |v| v.title.clone()).into()
    }

    fn pane_ui(&mut self, ui: &mut egui::Ui, _tile: egui_tiles::TileId, pane: &mut Pane) -> egui_tiles::UiResponse {
        let rect = ui.available_rect_before_wrap();
        ui.painter().rect_filled(rect, 0.0, egui::Color32::from_rgb(24, 27, 33));
        if let Some(view) = self.views.get(&pane.key)
            && !view.live
        {
            ui.painter().text(
                rect.center(),
                egui::Align2::CENTER_CENTER,
                format!("{}: {}", view.title, view.status),
                egui::FontId::proportional(16.0),
                egui::Color32::from_rgb(200, 200, 210),
            );
        }
        self.rects.insert(pane.key, rect);
        egui_tiles::UiResponse::None
    }

    fn is_tab_closable(&self, _tiles: &egui_tiles::Tiles<Pane>, _tile: egui_tiles::TileId) -> bool {
        true
    }

    fn on_tab_close(&mut self, tiles: &mut egui_tiles::Tiles<Pane>, tile: egui_tiles::TileId) -> bool {
        if let Some(egui_tiles::Tile::Pane(p)) = tiles.get(tile) {
            self.closed.push(p.key);
        }
        // The shell closes the app, then removes the tile.
        false
    }

    fn simplification_options(&self) -> egui_tiles::SimplificationOptions {
        egui_tiles::SimplificationOptions { all_panes_must_have_tabs: true, ..Default::default() }
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
            Command::SetTiles(tiles) => self.set_tiles(tiles),
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
