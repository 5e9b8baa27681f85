//! App icons: PNG files named by the manifest, decoded once and kept as textures. An icon that
//! cannot be read is logged once and the app keeps its initials badge.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Largest icon file read.
const MAX_ICON_BYTES: u64 = 1 << 20;
/// Largest icon side accepted, in pixels.
const MAX_ICON_SIDE: u32 = 1024;

/// Decodes a PNG file into an egui image.
pub fn load(path: &Path) -> Result<egui::ColorImage, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if meta.len() > MAX_ICON_BYTES {
        return Err(format!("{}: {} bytes is over the 1 MiB limit for icons", path.display(), meta.len()));
    }
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut decoder = png::Decoder::new(std::io::BufReader::new(file));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().map_err(|e| format!("{}: not a PNG: {e}", path.display()))?;
    let size = reader.output_buffer_size().ok_or_else(|| format!("{}: too large", path.display()))?;
    let mut buf = vec![0; size];
    let info = reader.next_frame(&mut buf).map_err(|e| format!("{}: damaged PNG: {e}", path.display()))?;
    if info.width > MAX_ICON_SIDE || info.height > MAX_ICON_SIDE {
        return Err(format!(
            "{}: {}x{} is larger than {MAX_ICON_SIDE}x{MAX_ICON_SIDE}",
            path.display(),
            info.width,
            info.height
        ));
    }
    let pixels = &buf[..info.buffer_size()];
    let rgba: Vec<u8> = match info.color_type {
        png::ColorType::Rgba => pixels.to_vec(),
        png::ColorType::Rgb => pixels.chunks_exact(3).flat_map(|p| [p[0], p[1], p[2], 255]).collect(),
        png::ColorType::GrayscaleAlpha => pixels.chunks_exact(2).flat_map(|p| [p[0], p[0], p[0], p[1]]).collect(),
        png::ColorType::Grayscale => pixels.iter().flat_map(|g| [*g, *g, *g, 255]).collect(),
        png::ColorType::Indexed => return Err(format!("{}: palette not expanded", path.display())),
    };
    let (w, h) = (usize::try_from(info.width).unwrap_or(0), usize::try_from(info.height).unwrap_or(0));
    if rgba.len() != w * h * 4 {
        return Err(format!("{}: unexpected pixel data", path.display()));
    }
    Ok(egui::ColorImage::from_rgba_unmultiplied([w, h], &rgba))
}

/// Icons by file, loaded on first use.
#[derive(Default)]
pub struct Icons {
    textures: HashMap<PathBuf, Option<egui::TextureHandle>>,
}

impl std::fmt::Debug for Icons {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Icons").field("loaded", &self.textures.len()).finish()
    }
}

impl Icons {
    /// The texture for `path`, loading it the first time; `None` if it cannot be read.
    pub fn get(&mut self, ctx: &egui::Context, path: &Path) -> Option<egui::TextureId> {
        self.textures
            .entry(path.to_owned())
            .or_insert_with(|| match load(path) {
                Ok(image) => Some(ctx.load_texture(path.display().to_string(), image, egui::TextureOptions::LINEAR)),
                Err(e) => {
                    tracing::warn!("app icon not shown: {e}");
                    None
                }
            })
            .as_ref()
            .map(egui::TextureHandle::id)
    }
}

#[cfg(test)]
mod tests;
