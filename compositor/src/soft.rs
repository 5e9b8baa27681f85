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
use crate::damage::{Area, Damage, Tracker, textures_change_pixels};
use crate::meshes::Meshes;
use egui::epaint::ClippedShape;

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
        Self::first(true)
    }

    /// The first Vulkan adapter's device; with `only_cpu`, `None` if any adapter is not a CPU.
    fn first(only_cpu: bool) -> Option<Self> {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
            backends: wgpu::Backends::VULKAN,
            ..wgpu::InstanceDescriptor::new_without_display_handle()
        });
        let adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::VULKAN));
        if only_cpu && adapters.iter().any(|a| a.get_info().device_type != wgpu::DeviceType::Cpu) {
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

/// Where frames are drawn on the CPU device: a texture that keeps the last frame between
/// frames (so a frame redraws only the areas that changed), and a buffer it is read back into.
/// Knows nothing of X11.
pub(crate) struct Canvas {
    device: Device,
    meshes: Meshes,
    size: (u32, u32),
    /// The texture, a view of it, and the readback buffer with its size in bytes.
    target: Option<(wgpu::Texture, wgpu::TextureView, wgpu::Buffer, u64)>,
}

/// Bytes per row of a texture copy: rows are padded to 256 bytes.
fn padded_row(width: u32) -> u32 {
    (width * 4).div_ceil(wgpu::COPY_BYTES_PER_ROW_ALIGNMENT) * wgpu::COPY_BYTES_PER_ROW_ALIGNMENT
}

impl Canvas {
    pub(crate) fn new(device: Device) -> Self {
        let meshes = Meshes::new(&device.device, wgpu::TextureFormat::Bgra8Unorm);
        Self { device, meshes, size: (0, 0), target: None }
    }

    pub(crate) fn size(&self) -> (u32, u32) {
        self.size
    }

    /// A new, empty target of `w`x`h` pixels: the next frame must be drawn whole.
    pub(crate) fn resize(&mut self, (w, h): (u32, u32)) -> Result<(), Error> {
        let (w, h) = (w.max(1), h.max(1));
        let most = self.device.device.limits().max_texture_dimension_2d;
        if w > most || h > most {
            return Err(Error::Render(format!("a {w}x{h} window is larger than {most} pixels a side")));
        }
        let texture = crate::meshes::texture(
            &self.device.device,
            "tessera-frame",
            (w, h),
            wgpu::TextureFormat::Bgra8Unorm,
            wgpu::TextureUsages::RENDER_ATTACHMENT | wgpu::TextureUsages::COPY_SRC,
        );
        let view = texture.create_view(&wgpu::TextureViewDescriptor::default());
        let len = u64::from(padded_row(w)) * u64::from(h);
        self.target = Some((texture, view, self.readback(len), len));
        self.size = (w, h);
        Ok(())
    }

    /// A buffer of `len` bytes frames are read back into.
    fn readback(&self, len: u64) -> wgpu::Buffer {
        self.device.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("tessera-readback"),
            size: len,
            usage: wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::MAP_READ,
            mapped_at_creation: false,
        })
    }

    /// Applies egui's texture changes (before a frame that uses them).
    pub(crate) fn update_textures(&mut self, textures: &egui::TexturesDelta) {
        let (device, queue) = (&self.device.device, &self.device.queue);
        for (id, deltas) in &textures.set {
            for delta in deltas {
                self.meshes.update_texture(device, queue, *id, delta);
            }
        }
    }

    /// Frees the textures egui is done with (after the frame).
    pub(crate) fn free_textures(&mut self, textures: &egui::TexturesDelta) {
        for id in &textures.free {
            self.meshes.free_texture(id);
        }
    }

    /// Clears `areas` (`None`: the whole target) to `clear` and draws `primitives` over it,
    /// leaving the rest of the last frame as it was, then appends each area's pixels, row by
    /// row, 4 bytes a pixel (BGRX), to `out`. The primitives must lie within the areas (see
    /// [`crate::damage::within`]).
    pub(crate) fn draw(
        &mut self,
        pixels_per_point: f32,
        clear: [f32; 4],
        primitives: &[egui::ClippedPrimitive],
        areas: Option<&[Area]>,
        out: &mut Vec<u8>,
    ) -> Result<(), Error> {
        let (w, h) = self.size;
        let Some((_, view, _, _)) = &self.target else { return Ok(()) };
        let (device, queue) = (&self.device.device, &self.device.queue);
        let points = egui::vec2(w as f32, h as f32) / pixels_per_point;
        let uploaded = self.meshes.upload(device, queue, primitives, points);
        let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("tessera") });
        {
            let [r, g, b, a] = clear.map(f64::from);
            let colour = wgpu::Color { r, g, b, a };
            let load = if areas.is_none() { wgpu::LoadOp::Clear(colour) } else { wgpu::LoadOp::Load };
            let mut pass = encoder.begin_render_pass(&wgpu::RenderPassDescriptor {
                label: Some("tessera"),
                color_attachments: &[Some(wgpu::RenderPassColorAttachment {
                    view,
                    resolve_target: None,
                    depth_slice: None,
                    ops: wgpu::Operations { load, store: wgpu::StoreOp::Store },
                })],
                ..Default::default()
            });
            if let Some(areas) = areas {
                self.meshes.clear(&mut pass, areas, colour);
            }
            self.meshes.draw(&mut pass, primitives, &uploaded, pixels_per_point, (w, h));
        }
        let whole = [Area { x: 0, y: 0, w, h }];
        self.read(encoder, areas.unwrap_or(&whole), out)
    }

    /// Finishes `encoder` with copies of `areas` into the readback buffer, runs it, and appends
    /// the areas' pixels, row by row, to `out`.
    fn read(&mut self, mut encoder: wgpu::CommandEncoder, areas: &[Area], out: &mut Vec<u8>) -> Result<(), Error> {
        let needed: u64 = areas.iter().map(|a| u64::from(padded_row(a.w)) * u64::from(a.h)).sum();
        if self.target.as_ref().is_some_and(|t| needed > t.3) {
            let bigger = self.readback(needed);
            if let Some((_, _, buffer, len)) = &mut self.target {
                (*buffer, *len) = (bigger, needed);
            }
        }
        let Some((texture, _, buffer, _)) = &self.target else { return Ok(()) };
        let mut offset = 0;
        for a in areas {
            encoder.copy_texture_to_buffer(
                wgpu::TexelCopyTextureInfo {
                    texture,
                    mip_level: 0,
                    origin: wgpu::Origin3d { x: a.x, y: a.y, z: 0 },
                    aspect: wgpu::TextureAspect::All,
                },
                wgpu::TexelCopyBufferInfo {
                    buffer,
                    layout: wgpu::TexelCopyBufferLayout {
                        offset,
                        bytes_per_row: Some(padded_row(a.w)),
                        rows_per_image: Some(a.h),
                    },
                },
                wgpu::Extent3d { width: a.w, height: a.h, depth_or_array_layers: 1 },
            );
            offset += u64::from(padded_row(a.w)) * u64::from(a.h);
        }
        self.device.queue.submit([encoder.finish()]);
        let slice = buffer.slice(..needed.max(4));
        slice.map_async(wgpu::MapMode::Read, |_| {});
        self.device.device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| Error::Render(e.to_string()))?;
        {
            let data = slice.get_mapped_range().map_err(|e| Error::Render(e.to_string()))?;
            let mut at = 0;
            for a in areas {
                let (row, tight) = (padded_row(a.w) as usize, a.w as usize * 4);
                for y in 0..a.h as usize {
                    out.extend_from_slice(&data[at + y * row..][..tight]);
                }
                at += row * a.h as usize;
            }
        }
        buffer.unmap();
        Ok(())
    }

    /// The whole frame as it stands, 4 bytes a pixel (BGRX).
    #[cfg(test)]
    fn pixels(&mut self) -> Result<Vec<u8>, Error> {
        let (w, h) = self.size;
        let encoder = self.device.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
        let mut out = Vec::new();
        self.read(encoder, &[Area { x: 0, y: 0, w, h }], &mut out)?;
        Ok(out)
    }
}

/// One window's software presenter.
pub(crate) struct Presenter {
    canvas: Canvas,
    x: Shared,
    /// The pixels of the areas being shown, one after another (kept to save allocating).
    pixels: Vec<u8>,
    /// What each frame changed from the last.
    tracker: Tracker,
    /// The next frame must be drawn and shown whole (new size, the window was just mapped or
    /// exposed, or a frame failed).
    whole: bool,
}

impl std::fmt::Debug for Presenter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Presenter")
            .field("window", &self.x.window)
            .field("size", &self.canvas.size)
            .finish_non_exhaustive()
    }
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
        let mut presenter = Self {
            canvas: Canvas::new(device),
            x: Shared { conn, window, gc, seg, file, depth: geometry.depth, len: 0, next: 0, busy: [false; 2] },
            pixels: Vec::new(),
            tracker: Tracker::default(),
            whole: true,
        };
        // Sharing the file is what fails on a connection that cannot pass one (X over TCP):
        // find out now, while the window can still present another way.
        presenter.resize((geometry.width.into(), geometry.height.into()))?;
        Ok(presenter)
    }

    /// The largest texture egui may make.
    pub(crate) fn max_texture_side(&self) -> usize {
        self.canvas.device.device.limits().max_texture_dimension_2d as usize
    }

    /// What a frame of `shapes` at `size` (physical pixels) must redraw: called with every
    /// frame's shapes, then [`Self::paint`] with the frame tessellated from what it says.
    /// `textures`: egui's texture changes this frame (some make shapes that did not change
    /// look different).
    pub(crate) fn plan(
        &mut self,
        shapes: &[ClippedShape],
        pixels_per_point: f32,
        size: (u32, u32),
        textures: &egui::TexturesDelta,
    ) -> Damage {
        let size = (size.0.max(1), size.1.max(1));
        if !self.sized_for(size) && self.resize(size).is_err() {
            // `paint` tries again and says why it cannot.
            self.whole = true;
        }
        // The window's event loop may have asked for this frame because of an exposure that
        // this connection has not read yet: after a round trip, it has.
        if self.sync().is_err() {
            self.whole = true;
        }
        match self.tracker.frame(shapes, pixels_per_point, size) {
            _ if self.whole || textures_change_pixels(textures) => Damage::Whole,
            d => d,
        }
    }

    /// Reads this connection's events after a round trip to the server.
    fn sync(&mut self) -> Result<(), Error> {
        self.x.conn.get_input_focus().map_err(x11)?.reply().map_err(x11)?;
        while let Some(event) = self.x.conn.poll_for_event().map_err(x11)? {
            if self.x.handle(&event) {
                self.whole = true;
            }
        }
        Ok(())
    }

    /// Makes the shared segment and the canvas `w`x`h`, the segment first: if either fails,
    /// the canvas keeps its old size and the next frame tries again.
    fn resize(&mut self, (w, h): (u32, u32)) -> Result<(), Error> {
        let (w, h) = (w.max(1), h.max(1));
        let len = u64::from(w) * u64::from(h) * 4;
        let x = &mut self.x;
        if len > x.len {
            if x.len > 0 {
                // Copies still under way read the file: let them finish first.
                x.conn.get_input_focus().map_err(x11)?.reply().map_err(x11)?;
                x.conn.shm_detach(x.seg).map_err(x11)?;
                x.len = 0;
                x.seg = x.conn.generate_id().map_err(x11)?;
            }
            x.file.set_len(2 * len).map_err(x11)?;
            let fd = x.file.try_clone().map_err(x11)?;
            x.conn.shm_attach_fd(x.seg, std::os::fd::OwnedFd::from(fd), true).map_err(x11)?.check().map_err(x11)?;
            x.len = len;
            x.busy = [false; 2];
        }
        self.whole = true;
        self.canvas.resize((w, h))
    }

    /// Whether the canvas and the shared segment are ready for frames of `w`x`h`.
    fn sized_for(&self, (w, h): (u32, u32)) -> bool {
        self.canvas.size() == (w, h) && u64::from(w) * u64::from(h) * 4 <= self.x.len
    }

    /// The next frame must be drawn whole (this one was not drawn as planned).
    pub(crate) fn invalidate(&mut self) {
        self.whole = true;
    }

    /// Draws `primitives` over `clear` at `size` (physical pixels) within what [`Self::plan`]
    /// said (`damage`), and shows those areas. The texture changes are applied whatever
    /// happens: egui sends them only once. Returns the share of the window's pixels drawn.
    pub(crate) fn paint(
        &mut self,
        size: (u32, u32),
        pixels_per_point: f32,
        clear: [f32; 4],
        primitives: &[egui::ClippedPrimitive],
        textures: &egui::TexturesDelta,
        damage: &Damage,
    ) -> Result<f32, Error> {
        self.canvas.update_textures(textures);
        let shown = self.draw_and_show(size, pixels_per_point, clear, primitives, damage);
        self.canvas.free_textures(textures);
        if shown.is_err() {
            // The target or the window may be missing part of this frame.
            self.whole = true;
        }
        shown
    }

    fn draw_and_show(
        &mut self,
        size: (u32, u32),
        pixels_per_point: f32,
        clear: [f32; 4],
        primitives: &[egui::ClippedPrimitive],
        damage: &Damage,
    ) -> Result<f32, Error> {
        let (w, h) = (size.0.max(1), size.1.max(1));
        if !self.sized_for((w, h)) {
            self.resize((w, h))?;
        }
        let whole = [Area { x: 0, y: 0, w, h }];
        let areas = match damage {
            Damage::Whole => None,
            // Planned for a frame that was not drawn whole though it had to be.
            Damage::Areas(_) if self.whole => return Err(Error::Render("a frame that must be whole was not".into())),
            Damage::Areas(a) if a.is_empty() => return Ok(0.0),
            Damage::Areas(a) => Some(a.as_slice()),
        };
        self.pixels.clear();
        self.canvas.draw(pixels_per_point, clear, primitives, areas, &mut self.pixels)?;
        self.whole = false;
        let areas = areas.unwrap_or(&whole);
        self.show(areas)?;
        let drawn: u64 = areas.iter().map(Area::pixels).sum();
        Ok((drawn as f64 / whole[0].pixels() as f64) as f32)
    }

    /// Writes the pixels of `areas` into a free half of the shared segment and has the server
    /// copy each into the window (without waiting for it to finish).
    fn show(&mut self, areas: &[Area]) -> Result<(), Error> {
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
        x.file.write_all_at(&self.pixels, base).map_err(x11)?;
        let short = |v: u32| u16::try_from(v).map_err(|_| Error::X11(format!("{v} pixels is too big for X11")));
        let mut offset = base;
        for (i, a) in areas.iter().enumerate() {
            // Each area is an image of its own in the segment; the server copies them in
            // order, so only the last needs to say when it is done.
            x.conn
                .shm_put_image(
                    x.window,
                    x.gc,
                    short(a.w)?,
                    short(a.h)?,
                    0,
                    0,
                    short(a.w)?,
                    short(a.h)?,
                    i16::try_from(a.x).map_err(x11)?,
                    i16::try_from(a.y).map_err(x11)?,
                    x.depth,
                    ImageFormat::Z_PIXMAP.into(),
                    i + 1 == areas.len(),
                    x.seg,
                    u32::try_from(offset).map_err(x11)?,
                )
                .map_err(x11)?;
            offset += a.pixels() * 4;
        }
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

#[cfg(test)]
mod tests;
