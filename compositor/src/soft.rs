//! Presenting frames drawn by a software rasteriser (Mesa lavapipe) through X11 shared memory.
//!
//! On a machine without a GPU, Mesa's Vulkan window-system code (before Mesa 23.1) sends every
//! frame to the X server through its socket: 8 MB per frame at 1920x1080, cut into some forty
//! requests that the server receives into freshly allocated buffers. Measured with
//! `tessera bench frame --present-only`, the X server then used four times the CPU of the
//! rasteriser itself, on a machine with two cores to share between them. Here the frame is
//! rendered into a texture, read back, written into a memfd the X server has mapped
//! (MIT-SHM 1.2), and shown with one `ShmPutImage` of the rows that changed.

use std::fs::File;
use std::os::unix::fs::FileExt as _;

use x11rb::connection::{Connection as _, RequestConnection as _};
use x11rb::protocol::Event;
use x11rb::protocol::shm::ConnectionExt as _;
use x11rb::protocol::xproto::{
    ChangeWindowAttributesAux, ConnectionExt as _, CreateGCAux, EventMask, ImageFormat, ImageOrder,
};
use x11rb::rust_connection::RustConnection;

use crate::Error;

fn x11<E: std::fmt::Display>(e: E) -> Error {
    Error::X11(e.to_string())
}

/// The device every window's software presenter draws with.
#[derive(Debug, Clone)]
pub(crate) struct Device {
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    pub(crate) name: String,
}

impl Device {
    /// A CPU adapter, if that is all this machine can render with; `None` when there is a GPU
    /// (its own presentation is the fast one) or no adapter at all.
    pub(crate) fn cpu() -> Option<Self> {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
            backends: wgpu::Backends::VULKAN,
            ..wgpu::InstanceDescriptor::new_without_display_handle()
        });
        let adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::VULKAN));
        if adapters.iter().any(|a| a.get_info().device_type != wgpu::DeviceType::Cpu) {
            return None;
        }
        let adapter = adapters.into_iter().next()?;
        let info = adapter.get_info();
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor::default())).ok()?;
        Some(Self { device, queue, name: info.name })
    }
}

/// The X11 side: the window, a graphics context, and the shared segment. The segment holds
/// two frames: one is written while the server may still be copying from the other.
struct Shared {
    conn: RustConnection,
    window: u32,
    gc: u32,
    seg: u32,
    file: File,
    depth: u8,
    /// The size of one half of the segment in bytes.
    len: u64,
    /// Which half the next frame goes into.
    next: usize,
    /// The halves the server has not finished copying from.
    busy: [bool; 2],
}

impl Shared {
    /// Handles one event of this connection's: a finished copy frees its half; an exposure
    /// means the whole window must be shown again (returns `true`).
    fn handle(&mut self, event: &Event) -> bool {
        match event {
            Event::ShmCompletion(done) if done.shmseg == self.seg && self.len > 0 => {
                if let Some(b) =
                    usize::try_from(u64::from(done.offset) / self.len).ok().and_then(|i| self.busy.get_mut(i))
                {
                    *b = false;
                }
                false
            }
            Event::Expose(_) => true,
            Event::Error(e) => {
                // A put that failed sends no completion: nothing is in flight any more that
                // could be waited for, and the window may be missing what it was sent.
                tracing::warn!("X11 error while presenting: {e:?}");
                self.busy = [false; 2];
                true
            }
            _ => false,
        }
    }
}

/// One window's software presenter.
pub(crate) struct Presenter {
    device: Device,
    renderer: egui_wgpu::Renderer,
    x: Shared,
    size: (u32, u32),
    /// The texture frames are drawn into, a view of it, and the buffer they are read into.
    target: Option<(wgpu::Texture, wgpu::TextureView, wgpu::Buffer)>,
    /// The last frame shown, tightly packed (4 bytes a pixel, BGRX).
    shown: Vec<u8>,
    /// The next frame must be shown whole (new size, or the window was just mapped).
    whole: bool,
}

impl std::fmt::Debug for Presenter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Presenter").field("window", &self.x.window).field("size", &self.size).finish_non_exhaustive()
    }
}

/// Bytes per row of a texture copy: rows are padded to 256 bytes.
fn padded_row(width: u32) -> u32 {
    (width * 4).div_ceil(wgpu::COPY_BYTES_PER_ROW_ALIGNMENT) * wgpu::COPY_BYTES_PER_ROW_ALIGNMENT
}

impl Presenter {
    /// A presenter for X11 window `window`, if the server offers what it needs: MIT-SHM with
    /// file descriptors, and a 24- or 32-bit window whose pixels are stored BGRX.
    pub(crate) fn new(device: Device, window: u32) -> Result<Self, Error> {
        let (conn, _) = x11rb::connect(None).map_err(x11)?;
        if conn.extension_information(x11rb::protocol::shm::X11_EXTENSION_NAME).map_err(x11)?.is_none() {
            return Err(Error::X11("the X server has no MIT-SHM".into()));
        }
        let v = conn.shm_query_version().map_err(x11)?.reply().map_err(x11)?;
        if (v.major_version, v.minor_version) < (1, 2) {
            return Err(Error::X11(format!("MIT-SHM {}.{} cannot share a file", v.major_version, v.minor_version)));
        }
        let geometry = conn.get_geometry(window).map_err(x11)?.reply().map_err(x11)?;
        let visual = conn.get_window_attributes(window).map_err(x11)?.reply().map_err(x11)?.visual;
        let setup = conn.setup();
        let bpp = setup.pixmap_formats.iter().find(|f| f.depth == geometry.depth).map(|f| f.bits_per_pixel);
        let masks = setup
            .roots
            .iter()
            .flat_map(|s| &s.allowed_depths)
            .flat_map(|d| &d.visuals)
            .find(|v| v.visual_id == visual)
            .map(|v| (v.red_mask, v.green_mask, v.blue_mask));
        if !matches!(geometry.depth, 24 | 32)
            || bpp != Some(32)
            || setup.image_byte_order != ImageOrder::LSB_FIRST
            || masks != Some((0xff_0000, 0xff00, 0xff))
        {
            return Err(Error::X11(format!(
                "a {}-bit window with {bpp:?} bits a pixel and colour masks {masks:x?} is not BGRX",
                geometry.depth
            )));
        }
        let gc = conn.generate_id().map_err(x11)?;
        conn.create_gc(gc, window, &CreateGCAux::new().graphics_exposures(0)).map_err(x11)?;
        // The server does not keep what a covered window showed: when it is uncovered, the
        // whole frame must go again. This connection hears of that too.
        conn.change_window_attributes(window, &ChangeWindowAttributesAux::new().event_mask(EventMask::EXPOSURE))
            .map_err(x11)?;
        let seg = conn.generate_id().map_err(x11)?;
        let fd = rustix::fs::memfd_create("tessera-frame", rustix::fs::MemfdFlags::CLOEXEC).map_err(x11)?;
        let file = File::from(fd);
        let renderer = egui_wgpu::Renderer::new(
            &device.device,
            wgpu::TextureFormat::Bgra8Unorm,
            // Dithering costs a noise lookup per pixel, which a software rasteriser feels.
            egui_wgpu::RendererOptions { dithering: false, ..Default::default() },
        );
        let mut presenter = Self {
            device,
            renderer,
            x: Shared { conn, window, gc, seg, file, depth: geometry.depth, len: 0, next: 0, busy: [false; 2] },
            size: (0, 0),
            target: None,
            shown: Vec::new(),
            whole: true,
        };
        // Sharing the file is what fails on a connection that cannot pass one (X over TCP):
        // find out now, while the window can still present another way.
        presenter.resize((geometry.width.into(), geometry.height.into()))?;
        Ok(presenter)
    }

    /// The largest texture egui may make.
    pub(crate) fn max_texture_side(&self) -> usize {
        self.device.device.limits().max_texture_dimension_2d as usize
    }

    fn resize(&mut self, (w, h): (u32, u32)) -> Result<(), Error> {
        let (w, h) = (w.max(1), h.max(1));
        let most = self.device.device.limits().max_texture_dimension_2d;
        if w > most || h > most {
            return Err(Error::Render(format!("a {w}x{h} window is larger than {most} pixels a side")));
        }
        let texture = self.device.device.create_texture(&wgpu::TextureDescriptor {
            label: Some("tessera-frame"),
            size: wgpu::Extent3d { width: w, height: h, depth_or_array_layers: 1 },
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format: wgpu::TextureFormat::Bgra8Unorm,
            usage: wgpu::TextureUsages::RENDER_ATTACHMENT | wgpu::TextureUsages::COPY_SRC,
            view_formats: &[],
        });
        let buffer = self.device.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("tessera-readback"),
            size: u64::from(padded_row(w)) * u64::from(h),
            usage: wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::MAP_READ,
            mapped_at_creation: false,
        });
        let len = u64::from(w) * u64::from(h) * 4;
        let x = &mut self.x;
        if len > x.len {
            if x.len > 0 {
                // Copies still under way read the file: let them finish first.
                x.conn.get_input_focus().map_err(x11)?.reply().map_err(x11)?;
                x.conn.shm_detach(x.seg).map_err(x11)?;
                x.seg = x.conn.generate_id().map_err(x11)?;
            }
            x.file.set_len(2 * len).map_err(x11)?;
            let fd = x.file.try_clone().map_err(x11)?;
            x.conn.shm_attach_fd(x.seg, std::os::fd::OwnedFd::from(fd), true).map_err(x11)?.check().map_err(x11)?;
            x.len = len;
            x.busy = [false; 2];
        }
        let view = texture.create_view(&wgpu::TextureViewDescriptor::default());
        self.target = Some((texture, view, buffer));
        self.shown = vec![0; usize::try_from(len).map_err(x11)?];
        self.size = (w, h);
        self.whole = true;
        Ok(())
    }

    /// Renders `primitives` over `clear` at `size` (physical pixels) and shows the rows that
    /// changed. The texture changes are applied whatever happens: egui sends them only once.
    pub(crate) fn paint(
        &mut self,
        size: (u32, u32),
        pixels_per_point: f32,
        clear: [f32; 4],
        primitives: &[egui::ClippedPrimitive],
        textures: &egui::TexturesDelta,
    ) -> Result<(), Error> {
        let (device, queue) = (&self.device.device, &self.device.queue);
        for (id, deltas) in &textures.set {
            for delta in deltas {
                self.renderer.update_texture(device, queue, *id, delta);
            }
        }
        let shown = self.render_and_show(size, pixels_per_point, clear, primitives);
        for id in &textures.free {
            self.renderer.free_texture(id);
        }
        shown
    }

    fn render_and_show(
        &mut self,
        size: (u32, u32),
        pixels_per_point: f32,
        clear: [f32; 4],
        primitives: &[egui::ClippedPrimitive],
    ) -> Result<(), Error> {
        let (w, h) = (size.0.max(1), size.1.max(1));
        if (w, h) != self.size {
            self.resize((w, h))?;
        }
        // The window's event loop may have asked for this frame because of an exposure that
        // this connection has not read yet: after a round trip, it has.
        self.x.conn.get_input_focus().map_err(x11)?.reply().map_err(x11)?;
        while let Some(event) = self.x.conn.poll_for_event().map_err(x11)? {
            if self.x.handle(&event) {
                self.whole = true;
            }
        }
        let Some((texture, view, buffer)) = &self.target else { return Ok(()) };
        let (device, queue) = (&self.device.device, &self.device.queue);
        let screen = egui_wgpu::ScreenDescriptor { size_in_pixels: [w, h], pixels_per_point };
        let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("tessera") });
        let mut commands = self.renderer.update_buffers(device, queue, &mut encoder, primitives, &screen);
        {
            let [r, g, b, a] = clear.map(f64::from);
            let mut pass = encoder
                .begin_render_pass(&wgpu::RenderPassDescriptor {
                    label: Some("tessera"),
                    color_attachments: &[Some(wgpu::RenderPassColorAttachment {
                        view,
                        resolve_target: None,
                        depth_slice: None,
                        ops: wgpu::Operations {
                            load: wgpu::LoadOp::Clear(wgpu::Color { r, g, b, a }),
                            store: wgpu::StoreOp::Store,
                        },
                    })],
                    ..Default::default()
                })
                .forget_lifetime();
            self.renderer.render(&mut pass, primitives, &screen);
        }
        let row = padded_row(w);
        encoder.copy_texture_to_buffer(
            wgpu::TexelCopyTextureInfo {
                texture,
                mip_level: 0,
                origin: wgpu::Origin3d::ZERO,
                aspect: wgpu::TextureAspect::All,
            },
            wgpu::TexelCopyBufferInfo {
                buffer,
                layout: wgpu::TexelCopyBufferLayout { offset: 0, bytes_per_row: Some(row), rows_per_image: Some(h) },
            },
            wgpu::Extent3d { width: w, height: h, depth_or_array_layers: 1 },
        );
        commands.push(encoder.finish());
        queue.submit(commands);
        let slice = buffer.slice(..);
        slice.map_async(wgpu::MapMode::Read, |_| {});
        device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| Error::Render(e.to_string()))?;
        // The rows that differ from what is shown: only they go to the server.
        let mut band: Option<(usize, usize)> = None;
        {
            let data = slice.get_mapped_range().map_err(|e| Error::Render(e.to_string()))?;
            let tight = w as usize * 4;
            for y in 0..h as usize {
                let src = &data[y * row as usize..][..tight];
                let dst = &mut self.shown[y * tight..][..tight];
                if self.whole || src != dst {
                    dst.copy_from_slice(src);
                    band = Some(band.map_or((y, y + 1), |(a, _)| (a, y + 1)));
                }
            }
        }
        buffer.unmap();
        self.whole = false;
        let shown = band.map_or(Ok(()), |rows| self.show(rows));
        if shown.is_err() {
            // `shown` holds rows the server may never have had.
            self.whole = true;
        }
        shown
    }

    /// Writes rows `from..to` of the frame into a free half of the shared segment and has the
    /// server copy them into the window (without waiting for it to finish).
    fn show(&mut self, (from, to): (usize, usize)) -> Result<(), Error> {
        let (w, h) = self.size;
        let tight = w as usize * 4;
        let start = from * tight;
        let bytes = &self.shown[start..to * tight];
        let x = &mut self.x;
        let half = x.next;
        x.next ^= 1;
        // The copy from this half was asked for a frame ago and is all but certainly done;
        // should the server never say so, the half is taken back after a second.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
        while x.busy[half] {
            match x.conn.poll_for_event().map_err(x11)? {
                Some(event) => {
                    if x.handle(&event) {
                        self.whole = true;
                    }
                }
                None if std::time::Instant::now() > deadline => {
                    tracing::warn!("the X server did not finish a copy within a second; going on");
                    x.busy[half] = false;
                }
                None => std::thread::sleep(std::time::Duration::from_micros(200)),
            }
        }
        let base = half as u64 * x.len;
        x.file.write_all_at(bytes, base + start as u64).map_err(x11)?;
        let short = |v: usize| u16::try_from(v).map_err(|_| Error::X11(format!("{v} pixels is too big for X11")));
        x.conn
            .shm_put_image(
                x.window,
                x.gc,
                short(w as usize)?,
                short(h as usize)?,
                0,
                short(from)?,
                short(w as usize)?,
                short(to - from)?,
                0,
                i16::try_from(from).map_err(x11)?,
                x.depth,
                ImageFormat::Z_PIXMAP.into(),
                true,
                x.seg,
                u32::try_from(base).map_err(x11)?,
            )
            .map_err(x11)?;
        x.conn.flush().map_err(x11)?;
        x.busy[half] = true;
        Ok(())
    }
}

impl Drop for Presenter {
    fn drop(&mut self) {
        let _ = self.x.conn.shm_detach(self.x.seg);
        let _ = self.x.conn.free_gc(self.x.gc);
        let _ = self.x.conn.flush();
    }
}
