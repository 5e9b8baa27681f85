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
mod tests {
    use super::*;

    fn write_png(path: &Path, colour: png::ColorType, w: u32, h: u32, data: &[u8]) {
        let file = std::fs::File::create(path).unwrap();
        let mut enc = png::Encoder::new(std::io::BufWriter::new(file), w, h);
        enc.set_color(colour);
        enc.set_depth(png::BitDepth::Eight);
        enc.write_header().unwrap().write_image_data(data).unwrap();
    }

    #[test]
    fn icons_decode_to_rgba_whatever_their_colour_type() {
        let dir = tempfile::tempdir().unwrap();
        let rgb = dir.path().join("rgb.png");
        write_png(&rgb, png::ColorType::Rgb, 2, 1, &[255, 0, 0, 0, 255, 0]);
        let img = load(&rgb).unwrap();
        assert_eq!(img.size, [2, 1]);
        assert_eq!(img.pixels[0], egui::Color32::from_rgb(255, 0, 0));
        let grey = dir.path().join("grey.png");
        write_png(&grey, png::ColorType::Grayscale, 1, 1, &[128]);
        assert_eq!(load(&grey).unwrap().pixels[0], egui::Color32::from_gray(128));
    }

    #[test]
    fn bad_icons_are_refused_with_the_file_named() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.png");
        std::fs::write(&junk, b"not a png at all").unwrap();
        assert!(load(&junk).unwrap_err().contains("junk.png: not a PNG"));
        assert!(load(&dir.path().join("missing.png")).unwrap_err().contains("missing.png"));
        let big = dir.path().join("big.png");
        std::fs::write(&big, vec![0u8; (MAX_ICON_BYTES + 1) as usize]).unwrap();
        assert!(load(&big).unwrap_err().contains("1 MiB"));
    }
}
