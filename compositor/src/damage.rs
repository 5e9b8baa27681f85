//! What changed between two frames, so that a software rasteriser redraws only that.
//!
//! egui lays out and paints its whole window every frame. On a GPU that costs nothing worth
//! counting; on the CPU (Mesa lavapipe) every pixel and every triangle rasterised does. The
//! software presenter keeps the last frame in its texture, and [`Tracker`] compares the new
//! frame's shapes with the last's: a shape added, removed, changed or moved marks where it was
//! and where it is; a shape painted in a new order relative to another marks where it is. Only
//! those areas are cleared, drawn again (every shape of the new frame, clipped to them), read
//! back and sent to the X server.
//!
//! Why that is enough: a pixel's colour depends only on the shapes that cover it, in their
//! painting order. If neither the set nor the order of those shapes changed, the pixel did not.
//! If a shape covering it appeared, went or changed, the pixel lies in that shape's bounds
//! (kept by old or new frame); if two unchanged shapes covering it swapped order, one of the two
//! is marked, and both cover the pixel.

use std::hash::{Hash as _, Hasher as _};

use egui::epaint::ClippedShape;
use egui::{Rect, Shape};

/// A rectangle of a window, in physical pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Area {
    pub(crate) x: u32,
    pub(crate) y: u32,
    pub(crate) w: u32,
    pub(crate) h: u32,
}

impl Area {
    pub(crate) fn pixels(&self) -> u64 {
        u64::from(self.w) * u64::from(self.h)
    }

    fn union(&self, o: &Self) -> Self {
        let (x, y) = (self.x.min(o.x), self.y.min(o.y));
        let right = (self.x + self.w).max(o.x + o.w);
        let bottom = (self.y + self.h).max(o.y + o.h);
        Self { x, y, w: right - x, h: bottom - y }
    }

    fn overlaps(&self, o: &Self) -> bool {
        o.x < self.x + self.w && self.x < o.x + o.w && o.y < self.y + self.h && self.y < o.y + o.h
    }
}

/// What a frame must redraw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Damage {
    /// Everything: the first frame, a new size or scale, or too much changed to bother.
    Whole,
    /// These areas, which do not overlap; none means the frame looks like the last.
    Areas(Vec<Area>),
}

/// How far past its bounds a shape may paint, in pixels: anti-aliasing feathers edges by a
/// pixel, rectangles are rounded to whole pixels, and small circles drawn from a prepared
/// texture, underlines below a text row and miter joins spill a little more. (A thick line
/// with sharp corners, or a shape scaled up after tessellation, could spill further; the
/// shell draws neither.)
const SPILL: f32 = 4.0;

/// The most areas a frame redraws separately: each costs a pass over the frame's meshes.
const MOST_AREAS: usize = 16;

/// Two areas closer than this (the pixels their union adds) are drawn as one.
const FREE_MERGE: u64 = 32 * 32;

/// Past this share of the window, the whole frame is drawn.
const WHOLE_SHARE: f64 = 0.6;

/// Remembers the last frame's shapes and tells what the next one changes.
#[derive(Debug, Default)]
pub(crate) struct Tracker {
    last: Vec<ClippedShape>,
    /// The last frame's shape keys with their indices, sorted.
    keys: Vec<(u64, u32)>,
    pixels_per_point: f32,
    size: (u32, u32),
}

impl Tracker {
    /// What a frame of `shapes` at `size` (physical pixels) redraws, relative to the frame
    /// given last.
    pub(crate) fn frame(&mut self, shapes: &[ClippedShape], pixels_per_point: f32, size: (u32, u32)) -> Damage {
        let mut keys: Vec<(u64, u32)> = shapes.iter().zip(0u32..).map(|(s, i)| (key(s), i)).collect();
        let damage = if size != self.size || pixels_per_point != self.pixels_per_point {
            Damage::Whole
        } else {
            let mut changed = Vec::new();
            let mut used = vec![false; self.last.len()];
            // The last frame's index of the latest shape found unchanged and in order.
            let mut latest: Option<usize> = None;
            for (shape, &(k, _)) in shapes.iter().zip(&keys) {
                let from = self.keys.partition_point(|(key, _)| *key < k);
                let found = self.keys[from..]
                    .iter()
                    .take_while(|(key, _)| *key == k)
                    .map(|&(_, i)| i as usize)
                    .find(|&i| !used[i] && self.last[i] == *shape);
                match found {
                    Some(i) => {
                        used[i] = true;
                        if latest.is_some_and(|l| i < l) {
                            covered(shape, &mut changed);
                        } else {
                            latest = Some(i);
                        }
                    }
                    None => covered(shape, &mut changed),
                }
            }
            for (shape, used) in self.last.iter().zip(used) {
                if !used {
                    covered(shape, &mut changed);
                }
            }
            areas(&changed, pixels_per_point, size)
        };
        keys.sort_unstable();
        self.keys = keys;
        self.last = shapes.to_vec();
        self.pixels_per_point = pixels_per_point;
        self.size = size;
        damage
    }
}

/// Shapes equal to each other have the same key; most shapes that differ have different ones.
fn key(s: &ClippedShape) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    std::mem::discriminant(&s.shape).hash(&mut h);
    let b = bounds(s);
    for v in [s.clip_rect.min, s.clip_rect.max, b.min, b.max] {
        h.write_u32(v.x.to_bits());
        h.write_u32(v.y.to_bits());
    }
    h.finish()
}

/// Where a shape paints, before clipping (in points).
fn bounds(s: &ClippedShape) -> Rect {
    s.transform_after_tessellation * s.shape.visual_bounding_rect()
}

/// Adds the rectangles (in points) that `shape` may paint to `out`. An outline (a stroked
/// rectangle not filled) covers only its edges, not the tile or panel it frames.
fn covered(s: &ClippedShape, out: &mut Vec<Rect>) {
    let bounds = bounds(s);
    if let Shape::Rect(r) = &s.shape
        && s.transform_after_tessellation == egui::emath::TSTransform::IDENTITY
        && r.fill == egui::Color32::TRANSPARENT
        && r.blur_width == 0.0
        && r.brush.is_none()
        && r.angle == 0.0
    {
        let c = r.corner_radius;
        let t = r.stroke.width + f32::from(c.nw.max(c.ne).max(c.sw).max(c.se));
        if 2.0 * t < bounds.width().min(bounds.height()) {
            let (min, max) = (bounds.min, bounds.max);
            for edge in [
                Rect::from_min_max(min, egui::pos2(max.x, min.y + t)),
                Rect::from_min_max(egui::pos2(min.x, max.y - t), max),
                Rect::from_min_max(min, egui::pos2(min.x + t, max.y)),
                Rect::from_min_max(egui::pos2(max.x - t, min.y), max),
            ] {
                push(edge.intersect(s.clip_rect), out);
            }
            return;
        }
    }
    push(bounds.intersect(s.clip_rect), out);
}

fn push(r: Rect, out: &mut Vec<Rect>) {
    // A rectangle of no width still marks the pixels around it: an edge on the clip's border
    // can reach into them.
    if !r.is_negative() && r.is_finite() {
        out.push(r);
    }
}

/// Turns rectangles in points into a few areas of physical pixels that cover them.
fn areas(changed: &[Rect], pixels_per_point: f32, (w, h): (u32, u32)) -> Damage {
    if changed.is_empty() || w == 0 || h == 0 {
        return Damage::Areas(Vec::new());
    }
    let px: Vec<Area> = changed
        .iter()
        .filter_map(|r| {
            let clamp = |v: f32, most: u32| v.clamp(0.0, most as f32) as u32;
            let x0 = clamp((r.min.x * pixels_per_point).floor() - SPILL, w);
            let y0 = clamp((r.min.y * pixels_per_point).floor() - SPILL, h);
            let x1 = clamp((r.max.x * pixels_per_point).ceil() + SPILL, w);
            let y1 = clamp((r.max.y * pixels_per_point).ceil() + SPILL, h);
            (x1 > x0 && y1 > y0).then_some(Area { x: x0, y: y0, w: x1 - x0, h: y1 - y0 })
        })
        .collect();
    // A grid of cells, coarser until the areas are few enough to merge by hand and merge into
    // few enough; past the coarsest, the whole window is drawn.
    let mut cell = 8;
    let found = loop {
        let mut found = gridded(&px, cell, (w, h));
        if found.len() <= 4 * MOST_AREAS && merge(&mut found) {
            break found;
        }
        if cell >= 128 {
            return Damage::Whole;
        }
        cell *= 2;
    };
    let drawn: u64 = found.iter().map(Area::pixels).sum();
    if drawn as f64 > WHOLE_SHARE * f64::from(w) * f64::from(h) {
        return Damage::Whole;
    }
    Damage::Areas(found)
}

/// The cells of `cell` pixels that `px` touches, as rectangles: runs of cells in a row, and
/// runs of the same columns in rows one under another joined.
fn gridded(px: &[Area], cell: u32, (w, h): (u32, u32)) -> Vec<Area> {
    let (cols, rows) = (w.div_ceil(cell) as usize, h.div_ceil(cell) as usize);
    let mut marked = vec![false; cols * rows];
    for a in px {
        let (c0, c1) = ((a.x / cell) as usize, ((a.x + a.w - 1) / cell) as usize);
        for r in (a.y / cell) as usize..=((a.y + a.h - 1) / cell) as usize {
            marked[r * cols + c0..=r * cols + c1].fill(true);
        }
    }
    // Rectangles still growing downwards, in cells: (first column, end column, first row).
    let mut open: Vec<(usize, usize, usize)> = Vec::new();
    let mut done = Vec::new();
    let mut close = |(c0, c1, r0): (usize, usize, usize), r1: usize| {
        let x = c0 as u32 * cell;
        let y = r0 as u32 * cell;
        done.push(Area { x, y, w: (c1 as u32 * cell).min(w) - x, h: (r1 as u32 * cell).min(h) - y });
    };
    for r in 0..rows {
        let row = &marked[r * cols..(r + 1) * cols];
        let mut runs = Vec::new();
        let mut c = 0;
        while c < cols {
            if row[c] {
                let start = c;
                while c < cols && row[c] {
                    c += 1;
                }
                runs.push((start, c));
            } else {
                c += 1;
            }
        }
        let mut next = Vec::with_capacity(runs.len());
        for o in open.drain(..) {
            if runs.contains(&(o.0, o.1)) {
                next.push(o);
            } else {
                close(o, r);
            }
        }
        for run in runs {
            if !next.iter().any(|o| (o.0, o.1) == run) {
                next.push((run.0, run.1, r));
            }
        }
        open = next;
    }
    for o in open {
        close(o, rows);
    }
    done
}

/// Joins areas while there are too many, or while two are nearly one: each time the pair whose
/// union adds the fewest pixels and covers no third area (areas must not overlap: a mesh drawn
/// twice blends twice). Returns whether they are now few enough.
fn merge(found: &mut Vec<Area>) -> bool {
    while found.len() > 1 {
        let mut pairs: Vec<(u64, usize, usize)> = Vec::with_capacity(found.len() * found.len() / 2);
        for i in 0..found.len() {
            for j in i + 1..found.len() {
                let u = found[i].union(&found[j]);
                pairs.push((u.pixels().saturating_sub(found[i].pixels() + found[j].pixels()), i, j));
            }
        }
        pairs.sort_unstable();
        let best = pairs.into_iter().find(|&(_, i, j)| {
            let u = found[i].union(&found[j]);
            found.iter().enumerate().all(|(k, a)| k == i || k == j || !a.overlaps(&u))
        });
        let Some((waste, i, j)) = best else { break };
        if found.len() <= MOST_AREAS && waste > FREE_MERGE {
            break;
        }
        let u = found[i].union(&found[j]);
        found.swap_remove(j);
        found.swap_remove(i);
        found.push(u);
    }
    found.len() <= MOST_AREAS
}

/// Whether egui's texture changes this frame can change pixels of shapes that did not change:
/// a texture made anew, or an image changed in place. Glyphs added to the font atlas cannot
/// (they go where nothing is drawn from yet; the shapes that use them are new).
pub(crate) fn textures_change_pixels(textures: &egui::TexturesDelta) -> bool {
    textures.set.iter().any(|(id, ds)| *id != egui::TextureId::default() || ds.iter().any(|d| d.pos.is_none()))
}

/// The frame's meshes within `areas` only: for each area, the shapes that may paint there,
/// tessellated clipped to it. (A software rasteriser sets up every triangle it is given, even
/// those its scissor then throws away.) Shapes are tessellated with their clip widened by
/// [`SPILL`], since the tessellator drops a shape or text row whose bounds miss the clip though
/// its edge may reach into it; the meshes are then clipped to the area exactly, so no pixel is
/// drawn twice.
pub(crate) fn tessellate_within(
    ctx: &egui::Context,
    shapes: &[ClippedShape],
    areas: &[Area],
    pixels_per_point: f32,
) -> Vec<egui::ClippedPrimitive> {
    let spill = SPILL / pixels_per_point;
    let bounds: Vec<Rect> = shapes.iter().map(|s| bounds(s).intersect(s.clip_rect).expand(spill)).collect();
    let mut out = Vec::new();
    for a in areas {
        let exact = Rect::from_min_max(
            egui::pos2(a.x as f32, a.y as f32) / pixels_per_point,
            egui::pos2((a.x + a.w) as f32, (a.y + a.h) as f32) / pixels_per_point,
        );
        let wide = exact.expand(spill);
        let here: Vec<ClippedShape> = shapes
            .iter()
            .zip(&bounds)
            .filter(|(_, b)| b.is_positive() && b.intersects(exact))
            .map(|(s, _)| ClippedShape {
                clip_rect: s.clip_rect.intersect(wide),
                shape: s.shape.clone(),
                transform_after_tessellation: s.transform_after_tessellation,
            })
            .collect();
        if here.is_empty() {
            continue;
        }
        out.extend(ctx.tessellate(here, pixels_per_point).into_iter().map(|mut p| {
            p.clip_rect = p.clip_rect.intersect(exact);
            p
        }));
    }
    out
}

#[cfg(test)]
mod tests;
