//! The winit event loop, the egui frame, the launcher and the tile tree.

use std::sync::Arc;
use std::time::{Duration, Instant};

use raw_window_handle::{HasWindowHandle, RawWindowHandle};
use winit::application::ApplicationHandler;
use winit::event::{ElementState, WindowEvent};
use winit::event_loop::{ActiveEventLoop, ControlFlow, EventLoop, EventLoopProxy};
use winit::window::{Window, WindowId};

use compositor_ui::{Desk, Opening};

use crate::damage::Damage;
use crate::{Command, Error, FrameStats, LayoutSnapshot, MAIN_WINDOW, UiEvent, WindowNo, theme};

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
            Command::SetApps(apps) => self.desk.set_apps(apps),
            Command::SetLayout(plans) => self.desk.set_layout(&plans),
            Command::SetHealth(rows) => {
                if !self.desk.set_health(rows) {
                    return;
                }
            }
            Command::SetGroups(rows) => {
                if !self.desk.set_groups(rows) {
                    return;
                }
            }
            Command::SetServices(rows) => {
                if !self.desk.set_services(rows) {
                    return;
                }
            }
            Command::SetGrants(rows) => {
                if !self.desk.set_grants(rows) {
                    return;
                }
            }
            Command::PresentOnly(on) => self.present_only = on,
            Command::WholeFrames(on) => self.whole_frames = on,
            Command::SetUpdate(banner) => {
                if !self.desk.set_update(banner) {
                    return;
                }
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
