use egui::{Color32, Pos2, Rect, Stroke, StrokeKind, pos2, vec2};

use super::*;
use crate::damage::tessellate_within;

/// Frame `i` of a scene where some shapes stay, some move, change colour, size, text or
/// clip, two overlapping ones swap order, and new glyphs arrive now and then.
fn scene(ui: &mut egui::Ui, i: u32) {
    let p = ui.painter();
    let f = i as f32;
    p.text(
        pos2(10.0, 10.0),
        egui::Align2::LEFT_TOP,
        "A line that never changes",
        egui::FontId::proportional(14.0),
        Color32::LIGHT_GRAY,
    );
    p.rect_filled(
        Rect::from_min_size(pos2(20.0 + (i * 37 % 300) as f32, 60.0), vec2(80.0, 30.0)),
        6.0,
        Color32::from_rgb(40, 120, 220),
    );
    let outline = if i.is_multiple_of(2) { Color32::RED } else { Color32::GREEN };
    p.rect_stroke(
        Rect::from_min_size(pos2(30.0, 120.0), vec2(300.0, 200.0)),
        8.0,
        Stroke::new(1.5, outline),
        StrokeKind::Inside,
    );
    let a = Rect::from_min_size(pos2(360.0, 40.0), vec2(120.0, 90.0));
    let b = a.translate(vec2(50.0, 40.0));
    let (first, second) = if (i / 3).is_multiple_of(2) { (a, b) } else { (b, a) };
    p.rect_filled(first, 0.0, Color32::from_rgba_unmultiplied(200, 60, 60, 200));
    p.rect_filled(second, 0.0, Color32::from_rgba_unmultiplied(60, 200, 60, 200));
    p.circle_filled(pos2(500.0, 300.0), 10.0 + (i % 5) as f32 * 3.0, Color32::YELLOW);
    p.line_segment([pos2(10.0, 380.0), pos2(600.0, 340.0 + (i % 4) as f32 * 10.0)], Stroke::new(1.0, Color32::WHITE));
    p.text(
        pos2(40.0 + f * 13.0 % 200.0, 200.0),
        egui::Align2::LEFT_TOP,
        format!("frame {i}"),
        egui::FontId::monospace(12.0 + (i % 3) as f32),
        Color32::WHITE,
    );
    if i % 7 == 6 {
        p.text(
            pos2(200.0, 150.0),
            egui::Align2::CENTER_CENTER,
            format!("Ünïcødé {}", char::from(b'a' + (i % 26) as u8)),
            egui::FontId::proportional(22.0 + f),
            Color32::WHITE,
        );
    }
    // Small circles (drawn from a prepared texture) and an underline paint a little past
    // their bounds.
    for k in 0..6 {
        let at = pos2(420.0 + k as f32 * 9.0 + (i % 4) as f32 * 0.7, 200.0 + k as f32 * 6.0);
        p.circle_filled(at, 1.5 + k as f32 * 0.5, Color32::from_rgb(60, 200, 90));
    }
    let mut job = egui::text::LayoutJob::default();
    job.append(
        &format!("underlined {}", i % 5),
        0.0,
        egui::TextFormat {
            font_id: egui::FontId::proportional(15.0),
            color: Color32::WHITE,
            underline: Stroke::new(1.0, Color32::LIGHT_BLUE),
            ..Default::default()
        },
    );
    p.galley(pos2(420.0, 260.0 + (i % 3) as f32), p.layout_job(job), Color32::WHITE);
    let clip = Rect::from_min_size(pos2(100.0, 250.0), vec2(60.0 + (i % 6) as f32 * 20.0, 60.0));
    p.with_clip_rect(clip).circle_filled(pos2(180.0, 280.0), 70.0, Color32::from_rgb(150, 80, 200));
}

/// Redraws `area` of a frame of `paint` drawn whole, as if the area had changed, and counts
/// the pixels that differ from the whole frame.
fn redrawn_differs(paint: impl Fn(&egui::Painter), area: Area) -> usize {
    let device = Device::first(false).expect("a Vulkan adapter (Mesa lavapipe) to draw with");
    let (w, h) = (200, 100);
    let ctx = egui::Context::default();
    let mut canvas = Canvas::new(device);
    canvas.resize((w, h)).expect("a small target");
    let clear = crate::theme::CLEAR.to_normalized_gamma_f32();
    let input = egui::RawInput {
        screen_rect: Some(Rect::from_min_size(Pos2::ZERO, vec2(w as f32, h as f32))),
        ..Default::default()
    };
    let mut out = ctx.run_ui(input, |ui| paint(ui.painter()));
    canvas.update_textures(&out.textures_delta);
    out.textures_delta.clear();
    let mut scratch = Vec::new();
    let all = ctx.tessellate(out.shapes.clone(), 1.0);
    canvas.draw(1.0, clear, &all, None, &mut scratch).expect("drawn whole");
    let whole = canvas.pixels().expect("read back");
    let some = tessellate_within(&ctx, &out.shapes, &[area], 1.0);
    canvas.draw(1.0, clear, &some, Some(&[area]), &mut scratch).expect("drawn in part");
    let part = canvas.pixels().expect("read back");
    whole.chunks(4).zip(part.chunks(4)).filter(|(a, b)| a != b).count()
}

#[test]
fn what_paints_a_little_past_its_bounds_is_redrawn_too() {
    // Small circles and an underline just left of and above an area that is redrawn.
    let area = Area { x: 100, y: 40, w: 40, h: 40 };
    let differ = redrawn_differs(
        |p| {
            for k in 0..8 {
                let r = 1.0 + k as f32 * 0.25;
                p.circle_filled(pos2(99.9 - r, 44.0 + k as f32 * 4.5), r, Color32::WHITE);
            }
            let mut job = egui::text::LayoutJob::default();
            job.append(
                "underlined",
                0.0,
                egui::TextFormat {
                    font_id: egui::FontId::proportional(14.0),
                    color: Color32::WHITE,
                    underline: Stroke::new(2.0, Color32::WHITE),
                    ..Default::default()
                },
            );
            let galley = p.layout_job(job);
            let top = 40.0 - galley.size().y;
            p.galley(pos2(104.0, top), galley, Color32::WHITE);
        },
        area,
    );
    assert_eq!(differ, 0, "{differ} pixels differ after redrawing {area:?}");
}

#[test]
fn drawing_only_what_changed_gives_the_pixels_of_drawing_everything() {
    let device = Device::first(false).expect("a Vulkan adapter (Mesa lavapipe) to draw with");
    for ppp in [1.0, 1.5] {
        let (w, h) = ((640.0 * ppp) as u32, (400.0 * ppp) as u32);
        let ctx = egui::Context::default();
        let (mut whole, mut part) = (Canvas::new(device.clone()), Canvas::new(device.clone()));
        whole.resize((w, h)).expect("a small target");
        part.resize((w, h)).expect("a small target");
        let mut tracker = Tracker::default();
        let clear = crate::theme::CLEAR.to_normalized_gamma_f32();
        let mut partial = 0;
        for i in 0..40 {
            let input = egui::RawInput {
                screen_rect: Some(Rect::from_min_size(Pos2::ZERO, vec2(w as f32, h as f32) / ppp)),
                ..Default::default()
            };
            ctx.set_pixels_per_point(ppp);
            let out = ctx.run_ui(input, |ui| scene(ui, i));
            let mut textures = out.textures_delta;
            let damage = match tracker.frame(&out.shapes, ppp, (w, h)) {
                _ if textures_change_pixels(&textures) => Damage::Whole,
                d => d,
            };
            whole.update_textures(&textures);
            part.update_textures(&textures);
            let all = ctx.tessellate(out.shapes.clone(), ppp);
            let mut scratch = Vec::new();
            whole.draw(ppp, clear, &all, None, &mut scratch).expect("drawn whole");
            match &damage {
                Damage::Whole => part.draw(ppp, clear, &all, None, &mut scratch).expect("drawn whole"),
                Damage::Areas(areas) => {
                    partial += 1;
                    if !areas.is_empty() {
                        let some = tessellate_within(&ctx, &out.shapes, areas, ppp);
                        part.draw(ppp, clear, &some, Some(areas), &mut scratch).expect("drawn in part");
                    }
                }
            }
            whole.free_textures(&textures);
            part.free_textures(&textures);
            textures.clear();
            let (a, b) = (whole.pixels().expect("read back"), part.pixels().expect("read back"));
            let differ = a.chunks(4).zip(b.chunks(4)).filter(|(x, y)| x != y).count();
            assert_eq!(differ, 0, "frame {i} at scale {ppp}: {differ} pixels differ ({damage:?})");
        }
        assert!(partial >= 25, "only {partial} of 40 frames were drawn in part at scale {ppp}");
    }
}
