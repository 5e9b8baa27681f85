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
