//! Drawing egui's meshes on a software rasteriser (Mesa lavapipe).
//!
//! egui-wgpu's renderer is made for GPUs: its fragment shader carries a second, hand-written
//! bilinear filter (for reproducible snapshot images) behind a branch on a uniform. A GPU skips
//! the branch not taken; lavapipe's JIT-compiled shaders pay for both sides on every pixel, and
//! measured with `tessera bench frame` that was half the time of each frame. This renderer
//! draws the same meshes with the shader's plain path only: the vertex colour (sRGB,
//! premultiplied alpha) times the texel, blended premultiplied into a non-sRGB target, which is
//! what egui-wgpu computes for such a target.

use std::collections::HashMap;

use egui::epaint::{ImageDelta, Primitive, TextureId, Vertex, textures::TextureOptions};

use crate::damage::Area;

const SHADER: &str = "
struct Locals { screen: vec2<f32>, pad: vec2<f32> };
@group(0) @binding(0) var<uniform> locals: Locals;
@group(1) @binding(0) var tex: texture_2d<f32>;
@group(1) @binding(1) var samp: sampler;

struct Between {
    @builtin(position) position: vec4<f32>,
    @location(0) uv: vec2<f32>,
    @location(1) colour: vec4<f32>,
};

@vertex
fn vs(@location(0) pos: vec2<f32>, @location(1) uv: vec2<f32>, @location(2) colour: vec4<f32>) -> Between {
    var out: Between;
    out.position = vec4<f32>(2.0 * pos.x / locals.screen.x - 1.0, 1.0 - 2.0 * pos.y / locals.screen.y, 0.0, 1.0);
    out.uv = uv;
    out.colour = colour;
    return out;
}

@fragment
fn fs(in: Between) -> @location(0) vec4<f32> {
    return in.colour * textureSample(tex, samp, in.uv);
}
";

/// A triangle over the whole target, in whatever colour the pipeline's blend makes it.
const CLEAR_SHADER: &str = "
@vertex fn vs(@builtin(vertex_index) i: u32) -> @builtin(position) vec4<f32> {
    return vec4<f32>(f32(i & 1u) * 4.0 - 1.0, f32(i & 2u) * 2.0 - 1.0, 0.0, 1.0);
}
@fragment fn fs() -> @location(0) vec4<f32> {
    return vec4<f32>(1.0);
}
";

/// A texture egui made, with the bind group that samples it.
struct Texture {
    texture: wgpu::Texture,
    bind: wgpu::BindGroup,
    options: TextureOptions,
}

/// egui's textures on the device, and the pipeline and buffers its meshes are drawn with.
pub(crate) struct Meshes {
    pipeline: wgpu::RenderPipeline,
    /// Fills areas with one colour (the blend constant).
    clear: wgpu::RenderPipeline,
    locals: wgpu::Buffer,
    locals_bind: wgpu::BindGroup,
    texture_layout: wgpu::BindGroupLayout,
    textures: HashMap<TextureId, Texture>,
    samplers: HashMap<TextureOptions, wgpu::Sampler>,
    /// Vertex and index buffers, grown as needed, with their sizes in bytes.
    vertices: (wgpu::Buffer, u64),
    indices: (wgpu::Buffer, u64),
}

/// Where each mesh of a frame lies in the vertex and index buffers.
pub(crate) struct Uploaded {
    /// Per primitive: (first index, index count, first vertex), or `None` if it is not a mesh.
    ranges: Vec<Option<(u32, u32, i32)>>,
}

/// A pipeline of `module`'s `vs` and `fs` drawing triangle lists into `format`.
fn make_pipeline(
    device: &wgpu::Device,
    module: &wgpu::ShaderModule,
    layout: Option<&wgpu::PipelineLayout>,
    buffers: &[Option<wgpu::VertexBufferLayout<'_>>],
    blend: wgpu::BlendState,
    format: wgpu::TextureFormat,
) -> wgpu::RenderPipeline {
    device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
        label: Some("tessera"),
        layout,
        vertex: wgpu::VertexState {
            module,
            entry_point: Some("vs"),
            compilation_options: wgpu::PipelineCompilationOptions::default(),
            buffers,
        },
        primitive: wgpu::PrimitiveState::default(),
        depth_stencil: None,
        multisample: wgpu::MultisampleState::default(),
        fragment: Some(wgpu::FragmentState {
            module,
            entry_point: Some("fs"),
            compilation_options: wgpu::PipelineCompilationOptions::default(),
            targets: &[Some(wgpu::ColorTargetState { format, blend: Some(blend), write_mask: wgpu::ColorWrites::ALL })],
        }),
        multiview_mask: None,
        cache: None,
    })
}

/// A plain 2D texture of `w`x`h` pixels.
pub(crate) fn texture(
    device: &wgpu::Device,
    label: &str,
    (w, h): (u32, u32),
    format: wgpu::TextureFormat,
    usage: wgpu::TextureUsages,
) -> wgpu::Texture {
    device.create_texture(&wgpu::TextureDescriptor {
        label: Some(label),
        size: wgpu::Extent3d { width: w, height: h, depth_or_array_layers: 1 },
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format,
        usage,
        view_formats: &[],
    })
}

fn buffer(device: &wgpu::Device, label: &str, usage: wgpu::BufferUsages, size: u64) -> wgpu::Buffer {
    device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size,
        usage: usage | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    })
}

impl Meshes {
    pub(crate) fn new(device: &wgpu::Device, format: wgpu::TextureFormat) -> Self {
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("tessera-meshes"),
            source: wgpu::ShaderSource::Wgsl(SHADER.into()),
        });
        let locals_layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("tessera-locals"),
            entries: &[wgpu::BindGroupLayoutEntry {
                binding: 0,
                visibility: wgpu::ShaderStages::VERTEX,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Uniform,
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            }],
        });
        let texture_layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("tessera-texture"),
            entries: &[
                wgpu::BindGroupLayoutEntry {
                    binding: 0,
                    visibility: wgpu::ShaderStages::FRAGMENT,
                    ty: wgpu::BindingType::Texture {
                        sample_type: wgpu::TextureSampleType::Float { filterable: true },
                        view_dimension: wgpu::TextureViewDimension::D2,
                        multisampled: false,
                    },
                    count: None,
                },
                wgpu::BindGroupLayoutEntry {
                    binding: 1,
                    visibility: wgpu::ShaderStages::FRAGMENT,
                    ty: wgpu::BindingType::Sampler(wgpu::SamplerBindingType::Filtering),
                    count: None,
                },
            ],
        });
        let layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("tessera-meshes"),
            bind_group_layouts: &[Some(&locals_layout), Some(&texture_layout)],
            immediate_size: 0,
        });
        let vertices = [Some(wgpu::VertexBufferLayout {
            array_stride: std::mem::size_of::<Vertex>() as u64,
            step_mode: wgpu::VertexStepMode::Vertex,
            attributes: &wgpu::vertex_attr_array![0 => Float32x2, 1 => Float32x2, 2 => Unorm8x4],
        })];
        let premultiplied = wgpu::BlendState {
            color: wgpu::BlendComponent {
                src_factor: wgpu::BlendFactor::One,
                dst_factor: wgpu::BlendFactor::OneMinusSrcAlpha,
                operation: wgpu::BlendOperation::Add,
            },
            alpha: wgpu::BlendComponent {
                src_factor: wgpu::BlendFactor::OneMinusDstAlpha,
                dst_factor: wgpu::BlendFactor::One,
                operation: wgpu::BlendOperation::Add,
            },
        };
        let pipeline = make_pipeline(device, &module, Some(&layout), &vertices, premultiplied, format);
        // The blend makes the colour of every pixel drawn the blend constant: a clear to any
        // colour, within a scissor.
        let constant = wgpu::BlendComponent {
            src_factor: wgpu::BlendFactor::Constant,
            dst_factor: wgpu::BlendFactor::Zero,
            operation: wgpu::BlendOperation::Add,
        };
        let clear_module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("tessera-clear"),
            source: wgpu::ShaderSource::Wgsl(CLEAR_SHADER.into()),
        });
        let clear = make_pipeline(
            device,
            &clear_module,
            None,
            &[],
            wgpu::BlendState { color: constant, alpha: constant },
            format,
        );
        let locals = buffer(device, "tessera-locals", wgpu::BufferUsages::UNIFORM, 16);
        let locals_bind = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("tessera-locals"),
            layout: &locals_layout,
            entries: &[wgpu::BindGroupEntry { binding: 0, resource: locals.as_entire_binding() }],
        });
        let vertices = (buffer(device, "tessera-vertices", wgpu::BufferUsages::VERTEX, 1 << 16), 1 << 16);
        let indices = (buffer(device, "tessera-indices", wgpu::BufferUsages::INDEX, 1 << 16), 1 << 16);
        Self {
            pipeline,
            clear,
            locals,
            locals_bind,
            texture_layout,
            textures: HashMap::new(),
            samplers: HashMap::new(),
            vertices,
            indices,
        }
    }

    /// Makes or updates texture `id` (before a frame that uses it).
    pub(crate) fn update_texture(
        &mut self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        id: TextureId,
        delta: &ImageDelta,
    ) {
        let egui::ImageData::Color(image) = &delta.image;
        let [w, h] = image.size.map(|v| u32::try_from(v).unwrap_or(u32::MAX));
        if w == 0 || h == 0 || image.pixels.len() != image.size[0] * image.size[1] {
            tracing::warn!(?id, "an image of {w}x{h} with {} pixels was not drawn", image.pixels.len());
            return;
        }
        let origin = match delta.pos {
            Some([x, y]) => {
                let Some(t) = self.textures.get(&id) else {
                    tracing::warn!(?id, "a change to a texture that does not exist was not drawn");
                    return;
                };
                if t.options != delta.options {
                    let texture = t.texture.clone();
                    let bind = self.bind(device, &texture, delta.options);
                    if let Some(t) = self.textures.get_mut(&id) {
                        (t.bind, t.options) = (bind, delta.options);
                    }
                }
                wgpu::Origin3d { x: x as u32, y: y as u32, z: 0 }
            }
            None => {
                let texture = texture(
                    device,
                    "tessera-egui",
                    (w, h),
                    wgpu::TextureFormat::Rgba8Unorm,
                    wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
                );
                let bind = self.bind(device, &texture, delta.options);
                self.textures.insert(id, Texture { texture, bind, options: delta.options });
                wgpu::Origin3d::ZERO
            }
        };
        let Some(t) = self.textures.get(&id) else { return };
        queue.write_texture(
            wgpu::TexelCopyTextureInfo { texture: &t.texture, mip_level: 0, origin, aspect: wgpu::TextureAspect::All },
            bytemuck::cast_slice(&image.pixels),
            wgpu::TexelCopyBufferLayout { offset: 0, bytes_per_row: Some(4 * w), rows_per_image: Some(h) },
            wgpu::Extent3d { width: w, height: h, depth_or_array_layers: 1 },
        );
    }

    fn bind(&mut self, device: &wgpu::Device, texture: &wgpu::Texture, options: TextureOptions) -> wgpu::BindGroup {
        let sampler = self.samplers.entry(options).or_insert_with(|| {
            let filter = |f| match f {
                egui::TextureFilter::Nearest => wgpu::FilterMode::Nearest,
                egui::TextureFilter::Linear => wgpu::FilterMode::Linear,
            };
            let address = match options.wrap_mode {
                egui::TextureWrapMode::ClampToEdge => wgpu::AddressMode::ClampToEdge,
                egui::TextureWrapMode::Repeat => wgpu::AddressMode::Repeat,
                egui::TextureWrapMode::MirroredRepeat => wgpu::AddressMode::MirrorRepeat,
            };
            device.create_sampler(&wgpu::SamplerDescriptor {
                label: Some("tessera-egui"),
                mag_filter: filter(options.magnification),
                min_filter: filter(options.minification),
                address_mode_u: address,
                address_mode_v: address,
                ..Default::default()
            })
        });
        device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("tessera-egui"),
            layout: &self.texture_layout,
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: wgpu::BindingResource::TextureView(
                        &texture.create_view(&wgpu::TextureViewDescriptor::default()),
                    ),
                },
                wgpu::BindGroupEntry { binding: 1, resource: wgpu::BindingResource::Sampler(sampler) },
            ],
        })
    }

    pub(crate) fn free_texture(&mut self, id: &TextureId) {
        self.textures.remove(id);
    }

    /// Copies a frame's meshes and the screen's size into the device's buffers.
    pub(crate) fn upload(
        &mut self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        primitives: &[egui::ClippedPrimitive],
        size_in_points: egui::Vec2,
    ) -> Uploaded {
        let mut vertices: Vec<Vertex> = Vec::new();
        let mut indices: Vec<u32> = Vec::new();
        let ranges = primitives
            .iter()
            .map(|p| match &p.primitive {
                Primitive::Mesh(m) if !m.indices.is_empty() => {
                    let range = (indices.len() as u32, m.indices.len() as u32, vertices.len() as i32);
                    vertices.extend_from_slice(&m.vertices);
                    indices.extend_from_slice(&m.indices);
                    Some(range)
                }
                _ => None,
            })
            .collect();
        let locals = [size_in_points.x, size_in_points.y, 0.0, 0.0];
        queue.write_buffer(&self.locals, 0, bytemuck::cast_slice(&locals));
        let grow = |(b, len): &mut (wgpu::Buffer, u64), bytes: &[u8], label, usage| {
            // Writes must be a multiple of 4 bytes long; vertices and indices always are.
            if bytes.len() as u64 > *len {
                *len = (bytes.len() as u64).next_power_of_two();
                *b = buffer(device, label, usage, *len);
            }
            if !bytes.is_empty() {
                queue.write_buffer(b, 0, bytes);
            }
        };
        grow(&mut self.vertices, bytemuck::cast_slice(&vertices), "tessera-vertices", wgpu::BufferUsages::VERTEX);
        grow(&mut self.indices, bytemuck::cast_slice(&indices), "tessera-indices", wgpu::BufferUsages::INDEX);
        Uploaded { ranges }
    }

    /// Fills `areas` (physical pixels) with `colour`.
    pub(crate) fn clear(&self, pass: &mut wgpu::RenderPass<'_>, areas: &[Area], colour: wgpu::Color) {
        pass.set_pipeline(&self.clear);
        pass.set_blend_constant(colour);
        for a in areas {
            pass.set_scissor_rect(a.x, a.y, a.w, a.h);
            pass.draw(0..3, 0..1);
        }
    }

    /// Draws the frame's meshes, each within its clip rectangle, into `pass` (of a target of
    /// `size` physical pixels).
    pub(crate) fn draw(
        &self,
        pass: &mut wgpu::RenderPass<'_>,
        primitives: &[egui::ClippedPrimitive],
        uploaded: &Uploaded,
        pixels_per_point: f32,
        (w, h): (u32, u32),
    ) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.locals_bind, &[]);
        pass.set_vertex_buffer(0, self.vertices.0.slice(..));
        pass.set_index_buffer(self.indices.0.slice(..), wgpu::IndexFormat::Uint32);
        for (p, range) in primitives.iter().zip(&uploaded.ranges) {
            let (Primitive::Mesh(mesh), Some((first, count, base))) = (&p.primitive, range) else { continue };
            let Some(texture) = self.textures.get(&mesh.texture_id) else { continue };
            // The clip rectangle in whole pixels, as egui-wgpu rounds it.
            let px = |v: f32, most: u32| ((v * pixels_per_point).round().max(0.0) as u32).min(most);
            let (x0, y0) = (px(p.clip_rect.min.x, w), px(p.clip_rect.min.y, h));
            let (x1, y1) = (px(p.clip_rect.max.x, w), px(p.clip_rect.max.y, h));
            if x1 <= x0 || y1 <= y0 {
                continue;
            }
            pass.set_scissor_rect(x0, y0, x1 - x0, y1 - y0);
            pass.set_bind_group(1, &texture.bind, &[]);
            pass.draw_indexed(*first..first + count, *base, 0..1);
        }
    }
}
