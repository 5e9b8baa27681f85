use egui::{Color32, Stroke, StrokeKind, pos2, vec2};

use super::*;

const SIZE: (u32, u32) = (800, 600);

fn shapes(list: &[Shape]) -> Vec<ClippedShape> {
    let screen = Rect::from_min_size(pos2(0.0, 0.0), vec2(800.0, 600.0));
    list.iter().map(|s| ClippedShape::new(screen, s.clone())).collect()
}

fn fill(x: f32, y: f32, w: f32, h: f32, c: Color32) -> Shape {
    Shape::rect_filled(Rect::from_min_size(pos2(x, y), vec2(w, h)), 0.0, c)
}

fn covers(d: &Damage, x: u32, y: u32) -> bool {
    match d {
        Damage::Whole => true,
        Damage::Areas(a) => a.iter().any(|a| x >= a.x && x < a.x + a.w && y >= a.y && y < a.y + a.h),
    }
}

fn drawn(d: &Damage) -> u64 {
    match d {
        Damage::Whole => u64::from(SIZE.0 * SIZE.1),
        Damage::Areas(a) => a.iter().map(Area::pixels).sum(),
    }
}

#[test]
fn the_first_frame_a_new_size_and_a_new_scale_are_drawn_whole() {
    let mut t = Tracker::default();
    let s = shapes(&[fill(10.0, 10.0, 20.0, 20.0, Color32::RED)]);
    assert_eq!(t.frame(&s, 1.0, SIZE), Damage::Whole);
    assert_eq!(t.frame(&s, 1.0, SIZE), Damage::Areas(Vec::new()));
    assert_eq!(t.frame(&s, 1.0, (801, 600)), Damage::Whole);
    assert_eq!(t.frame(&s, 1.5, (801, 600)), Damage::Whole);
}

#[test]
fn a_moved_shape_redraws_where_it_was_and_where_it_is_and_nothing_far() {
    let mut t = Tracker::default();
    let still = fill(600.0, 400.0, 50.0, 50.0, Color32::BLUE);
    t.frame(&shapes(&[fill(10.0, 10.0, 20.0, 20.0, Color32::RED), still.clone()]), 1.0, SIZE);
    let d = t.frame(&shapes(&[fill(100.0, 10.0, 20.0, 20.0, Color32::RED), still]), 1.0, SIZE);
    for (x, y) in [(10, 10), (29, 29), (100, 10), (119, 29)] {
        assert!(covers(&d, x, y), "{x},{y} not redrawn: {d:?}");
    }
    assert!(!covers(&d, 620, 420), "the shape that stayed is redrawn: {d:?}");
    assert!(drawn(&d) < 6_000, "{d:?}");
}

#[test]
fn a_new_colour_a_removed_shape_and_a_new_clip_are_changes() {
    let mut t = Tracker::default();
    let a = fill(10.0, 10.0, 20.0, 20.0, Color32::RED);
    let b = fill(300.0, 300.0, 20.0, 20.0, Color32::RED);
    t.frame(&shapes(&[a.clone(), b.clone()]), 1.0, SIZE);
    let d = t.frame(&shapes(&[fill(10.0, 10.0, 20.0, 20.0, Color32::GREEN)]), 1.0, SIZE);
    assert!(covers(&d, 15, 15) && covers(&d, 305, 305), "{d:?}");
    let mut clipped = shapes(&[fill(10.0, 10.0, 20.0, 20.0, Color32::GREEN)]);
    clipped[0].clip_rect = Rect::from_min_size(pos2(0.0, 0.0), vec2(20.0, 20.0));
    let d = t.frame(&clipped, 1.0, SIZE);
    assert!(covers(&d, 25, 25), "{d:?}");
}

#[test]
fn two_overlapping_shapes_that_swap_order_redraw_their_overlap() {
    let mut t = Tracker::default();
    let a = fill(10.0, 10.0, 40.0, 40.0, Color32::RED);
    let b = fill(30.0, 30.0, 40.0, 40.0, Color32::BLUE);
    t.frame(&shapes(&[a.clone(), b.clone()]), 1.0, SIZE);
    let d = t.frame(&shapes(&[b, a]), 1.0, SIZE);
    assert!(covers(&d, 40, 40), "{d:?}");
}

#[test]
fn an_outline_redraws_its_edges_not_what_it_frames() {
    let mut t = Tracker::default();
    let frame = |c| {
        Shape::rect_stroke(
            Rect::from_min_size(pos2(100.0, 100.0), vec2(400.0, 300.0)),
            4.0,
            Stroke::new(1.0, c),
            StrokeKind::Inside,
        )
    };
    t.frame(&shapes(&[frame(Color32::RED)]), 2.0, (1600, 1200));
    let d = t.frame(&shapes(&[frame(Color32::GREEN)]), 2.0, (1600, 1200));
    assert!(covers(&d, 200, 200) && covers(&d, 999, 799), "{d:?}");
    assert!(!covers(&d, 600, 500), "the middle is redrawn: {d:?}");
}

#[test]
fn many_small_changes_become_few_areas_and_a_big_change_the_whole_frame() {
    let mut t = Tracker::default();
    let grid = |c| -> Vec<Shape> {
        (0..200).map(|i| fill((i % 20) as f32 * 40.0, (i / 20) as f32 * 40.0, 4.0, 4.0, c)).collect()
    };
    t.frame(&shapes(&grid(Color32::RED)), 1.0, SIZE);
    let d = t.frame(&shapes(&grid(Color32::GREEN)), 1.0, SIZE);
    match &d {
        Damage::Areas(a) => assert!(a.len() <= MOST_AREAS, "{} areas", a.len()),
        Damage::Whole => {}
    }
    for i in 0..200u32 {
        assert!(covers(&d, (i % 20) * 40 + 1, (i / 20) * 40 + 1), "shape {i} not redrawn");
    }
    t.frame(&shapes(&[fill(0.0, 0.0, 10.0, 10.0, Color32::RED)]), 1.0, SIZE);
    let d = t.frame(&shapes(&[fill(0.0, 0.0, 700.0, 500.0, Color32::RED)]), 1.0, SIZE);
    assert_eq!(d, Damage::Whole);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]

    /// Whatever changed, the areas cover it, never overlap (a mesh drawn twice would blend
    /// twice), and are few.
    #[test]
    fn areas_cover_every_change_once_and_are_few(
        rects in proptest::collection::vec((0.0f32..800.0, 0.0f32..600.0, 0.1f32..300.0, 0.1f32..200.0), 1..120),
        scale in proptest::sample::select(vec![1.0f32, 1.25, 1.5, 2.0]),
    ) {
        let size = ((800.0 * scale) as u32, (600.0 * scale) as u32);
        let changed: Vec<Rect> =
            rects.iter().map(|&(x, y, w, h)| Rect::from_min_size(pos2(x, y), vec2(w, h))).collect();
        let Damage::Areas(areas) = areas(&changed, scale, size) else { return Ok(()) };
        proptest::prop_assert!(areas.len() <= MOST_AREAS, "{} areas", areas.len());
        for (i, a) in areas.iter().enumerate() {
            proptest::prop_assert!(a.x + a.w <= size.0 && a.y + a.h <= size.1, "{a:?} is outside the window");
            for b in &areas[i + 1..] {
                proptest::prop_assert!(!a.overlaps(b), "{a:?} overlaps {b:?}");
            }
        }
        let inside = |x: u32, y: u32| areas.iter().any(|a| x >= a.x && x < a.x + a.w && y >= a.y && y < a.y + a.h);
        for r in &changed {
            let x0 = ((r.min.x * scale).floor() as u32).min(size.0 - 1);
            let y0 = ((r.min.y * scale).floor() as u32).min(size.1 - 1);
            let x1 = ((r.max.x * scale).ceil() as u32).min(size.0) - 1;
            let y1 = ((r.max.y * scale).ceil() as u32).min(size.1) - 1;
            for (x, y) in [(x0, y0), (x1, y0), (x0, y1), (x1, y1), ((x0 + x1) / 2, (y0 + y1) / 2)] {
                proptest::prop_assert!(inside(x, y), "pixel {x},{y} of {r:?} is not redrawn");
            }
        }
    }
}

#[test]
fn glyphs_added_to_the_font_atlas_change_nothing_drawn_and_a_new_texture_does() {
    let image = || egui::ImageData::Color(std::sync::Arc::new(egui::ColorImage::filled([2, 2], Color32::WHITE)));
    let delta = |id, pos| {
        let mut d = egui::TexturesDelta::default();
        d.set
            .entry(id)
            .or_default()
            .push(egui::epaint::ImageDelta { pos, ..egui::epaint::ImageDelta::full(image(), Default::default()) });
        d
    };
    let font = egui::TextureId::default();
    let check = |mut d: egui::TexturesDelta| {
        let changes = textures_change_pixels(&d);
        d.clear();
        changes
    };
    assert!(!check(egui::TexturesDelta::default()));
    assert!(!check(delta(font, Some([10, 0]))));
    assert!(check(delta(font, None)));
    assert!(check(delta(egui::TextureId::Managed(7), Some([0, 0]))));
}
