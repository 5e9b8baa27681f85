//! Colours and the egui style of the shell: dark and quiet, so the apps stand out.

use egui::Color32;

/// Window background.
pub const BG: Color32 = Color32::from_rgb(18, 20, 25);
/// What each frame is cleared to: the panels' colour, so panels need no fill of their own.
pub const CLEAR: Color32 = PANEL;
/// Panels (launcher, bar).
pub const PANEL: Color32 = Color32::from_rgb(24, 27, 33);
/// A tile's background while its app's view is not up.
pub const TILE: Color32 = Color32::from_rgb(28, 31, 38);
/// Main text.
pub const TEXT: Color32 = Color32::from_rgb(216, 222, 233);
/// Secondary text.
pub const DIM: Color32 = Color32::from_rgb(138, 148, 166);
/// The chosen row.
pub const SELECTED: Color32 = Color32::from_rgb(38, 52, 76);
/// A row under the pointer.
pub const HOVER: Color32 = Color32::from_rgb(34, 39, 48);
/// "Running" marks.
pub const RUNNING: Color32 = Color32::from_rgb(63, 185, 80);
/// Warnings (an app restarting).
pub const WARN: Color32 = Color32::from_rgb(210, 153, 34);
/// Errors (an app failed).
pub const ERROR: Color32 = Color32::from_rgb(248, 81, 73);

/// A stable colour for an app's badge, from its id.
pub fn badge_colour(app_id: &str) -> Color32 {
    const PALETTE: [Color32; 8] = [
        Color32::from_rgb(76, 154, 255),
        Color32::from_rgb(54, 179, 126),
        Color32::from_rgb(255, 139, 0),
        Color32::from_rgb(101, 84, 192),
        Color32::from_rgb(0, 184, 217),
        Color32::from_rgb(222, 53, 11),
        Color32::from_rgb(171, 71, 188),
        Color32::from_rgb(120, 144, 156),
    ];
    // FNV-1a: stable across runs and platforms, unlike the std hasher.
    let hash = app_id.bytes().fold(0x811c_9dc5_u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193));
    PALETTE[(hash % 8) as usize]
}

/// Fonts tried, in order, as a fallback for symbols and scripts egui's own fonts lack.
const FALLBACK_FONTS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
];

/// Applies the shell's look to an egui context.
pub fn apply(ctx: &egui::Context) {
    let mut fonts = egui::FontDefinitions::default();
    if let Some(bytes) = FALLBACK_FONTS.iter().find_map(|p| std::fs::read(p).ok()) {
        fonts.font_data.insert("fallback".to_owned(), std::sync::Arc::new(egui::FontData::from_owned(bytes)));
        for family in [egui::FontFamily::Proportional, egui::FontFamily::Monospace] {
            fonts.families.entry(family).or_default().push("fallback".to_owned());
        }
    } else {
        tracing::info!("no DejaVu Sans found; some symbols may not render");
    }
    ctx.set_fonts(fonts);
    ctx.set_visuals(egui::Visuals::dark());
    ctx.global_style_mut(|style| {
        // Panels are not filled: the frame is cleared to their colour. On a software rasteriser
        // every filled pixel costs (the launcher's fill alone was a third of a 1080p frame).
        style.visuals.panel_fill = Color32::TRANSPARENT;
        style.visuals.window_fill = PANEL;
        style.visuals.extreme_bg_color = BG;
        style.visuals.override_text_color = Some(TEXT);
        style.spacing.item_spacing = egui::vec2(6.0, 4.0);
    });
}
