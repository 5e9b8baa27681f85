//! A tile's tab bar and pane as `egui_tiles` draws them: the title, the channel chip, the
//! buttons that move an app to a window of its own and back, maximise and close; and where a
//! pane's view goes, in physical pixels.

use std::collections::HashMap;

use crate::layout::Pane;
use crate::{PxRect, TileView, UiEvent, channels, theme};

pub(crate) fn to_px(r: egui::Rect, ppp: f32) -> PxRect {
    let px = |v: f32| (v * ppp).round();
    let (x, y) = (px(r.min.x), px(r.min.y));
    PxRect {
        x: x as i32,
        y: y as i32,
        width: (px(r.max.x) - x).max(1.0) as u32,
        height: (px(r.max.y) - y).max(1.0) as u32,
    }
}

pub(crate) struct Behavior<'a> {
    pub(crate) views: &'a HashMap<u64, TileView>,
    pub(crate) rects: &'a mut HashMap<u64, egui::Rect>,
    pub(crate) events: &'a mut Vec<UiEvent>,
    pub(crate) maximized: &'a mut Option<u64>,
    /// Apps the user asked to move to another window this frame.
    pub(crate) moves: &'a mut Vec<(u64, MoveTo)>,
    /// Where this window's move button sends an app.
    pub(crate) move_to: MoveTo,
    pub(crate) edited: bool,
}

impl Behavior<'_> {
    fn active_key(tiles: &egui_tiles::Tiles<Pane>, tabs: &egui_tiles::Tabs) -> Option<u64> {
        match tiles.get(tabs.active?)? {
            egui_tiles::Tile::Pane(p) => Some(p.key),
            egui_tiles::Tile::Container(_) => None,
        }
    }
}

/// The tab bar's small buttons, drawn rather than taken from a font.
#[derive(Debug, Clone, Copy)]
enum Icon {
    Maximise,
    Restore,
    /// Move the app to a window of its own.
    PopOut,
    /// Move the app back to the main window.
    DockBack,
    /// A channel chip: filled with the channel's colour, or hollow without one.
    Channel,
}

fn icon_button(ui: &mut egui::Ui, icon: Icon, fill: Option<egui::Color32>) -> egui::Response {
    let (rect, response) = ui.allocate_exact_size(egui::vec2(20.0, 18.0), egui::Sense::click());
    let label = match icon {
        Icon::Maximise => "Maximise",
        Icon::Restore => "Restore",
        Icon::PopOut => "Open in a new window",
        Icon::DockBack => "Move to the main window",
        Icon::Channel => "Channel",
    };
    response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Button, true, label));
    let painter = ui.painter_at(rect);
    if response.hovered() {
        painter.rect_filled(rect, 4.0, theme::HOVER);
    }
    let c = rect.center();
    let stroke = egui::Stroke::new(1.3, if response.hovered() { theme::TEXT } else { theme::DIM });
    match icon {
        Icon::Maximise => {
            let frame = egui::Rect::from_center_size(c, egui::vec2(10.0, 9.0));
            painter.rect_stroke(frame, 1.0, stroke, egui::StrokeKind::Inside);
        }
        Icon::Restore => {
            let back = egui::Rect::from_center_size(c + egui::vec2(2.0, -2.0), egui::vec2(8.0, 7.0));
            let front = egui::Rect::from_center_size(c + egui::vec2(-1.5, 1.5), egui::vec2(8.0, 7.0));
            painter.rect_stroke(back, 1.0, stroke, egui::StrokeKind::Inside);
            painter.rect_filled(front, 1.0, theme::PANEL);
            painter.rect_stroke(front, 1.0, stroke, egui::StrokeKind::Inside);
        }
        Icon::PopOut | Icon::DockBack => {
            // A window, with an arrow leaving it (or coming home).
            let frame = egui::Rect::from_center_size(c + egui::vec2(-1.5, 1.5), egui::vec2(9.0, 8.0));
            painter.rect_stroke(frame, 1.0, stroke, egui::StrokeKind::Inside);
            let (tail, head) = if matches!(icon, Icon::PopOut) {
                (c + egui::vec2(-0.5, 0.5), c + egui::vec2(5.0, -5.0))
            } else {
                (c + egui::vec2(5.0, -5.0), c + egui::vec2(-0.5, 0.5))
            };
            painter.line_segment([tail, head], stroke);
            // The arrowhead: two strokes back from the tip, along each axis.
            let back = egui::vec2((tail.x - head.x).signum(), (tail.y - head.y).signum()) * 3.5;
            painter.line_segment([head, head + egui::vec2(back.x, 0.0)], stroke);
            painter.line_segment([head, head + egui::vec2(0.0, back.y)], stroke);
        }
        Icon::Channel => {
            let chip = egui::Rect::from_center_size(c, egui::vec2(11.0, 11.0));
            match fill {
                Some(colour) => {
                    painter.rect_filled(chip, 2.0, colour);
                }
                None => {
                    painter.rect_stroke(chip, 2.0, stroke, egui::StrokeKind::Inside);
                }
            }
        }
    }
    response
}

impl egui_tiles::Behavior<Pane> for Behavior<'_> {
    fn tab_title_for_pane(&mut self, pane: &Pane) -> egui::WidgetText {
        let Some(view) = self.views.get(&pane.key) else { return format!("#{}", pane.key).into() };
        let mut job = egui::text::LayoutJob::default();
        let font = egui::FontId::proportional(13.0);
        if let Some(c) = view.channel.and_then(channels::channel) {
            job.append("■ ", 0.0, egui::TextFormat::simple(font.clone(), c.colour));
        }
        let colour = if view.live { theme::TEXT } else { theme::WARN };
        job.append(&view.title, 0.0, egui::TextFormat::simple(font, colour));
        job.into()
    }

    fn pane_ui(&mut self, ui: &mut egui::Ui, _tile: egui_tiles::TileId, pane: &mut Pane) -> egui_tiles::UiResponse {
        let rect = ui.available_rect_before_wrap();
        // A live app's view covers its tile: painting under it would only cost fill rate.
        if let Some(view) = self.views.get(&pane.key)
            && !view.live
        {
            ui.painter().rect_filled(rect, 0.0, theme::TILE);
            let colour = if view.status.starts_with("failed") { theme::ERROR } else { theme::WARN };
            ui.painter().text(
                rect.center(),
                egui::Align2::CENTER_CENTER,
                format!("{} — {}", view.title, view.status),
                egui::FontId::proportional(15.0),
                colour,
            );
        }
        self.rects.insert(pane.key, rect);
        egui_tiles::UiResponse::None
    }

    fn top_bar_right_ui(
        &mut self,
        tiles: &egui_tiles::Tiles<Pane>,
        ui: &mut egui::Ui,
        _tile: egui_tiles::TileId,
        tabs: &egui_tiles::Tabs,
        _scroll_offset: &mut f32,
    ) {
        let Some(key) = Self::active_key(tiles, tabs) else { return };
        let maximized = *self.maximized == Some(key);
        let toggle = icon_button(ui, if maximized { Icon::Restore } else { Icon::Maximise }, None)
            .on_hover_text(if maximized { "Restore the layout" } else { "Maximise this app" });
        if toggle.clicked() {
            *self.maximized = if maximized { None } else { Some(key) };
            self.edited = true;
        }
        let (icon, hint) = match self.move_to {
            MoveTo::NewWindow => (Icon::PopOut, "Open this app in a new window"),
            MoveTo::Main => (Icon::DockBack, "Move this app back to the main window"),
        };
        if icon_button(ui, icon, None).on_hover_text(hint).clicked() {
            self.moves.push((key, self.move_to));
        }
        let current = self.views.get(&key).and_then(|v| v.channel).and_then(channels::channel);
        let (colour, label) = current.map_or((theme::DIM, "No channel".to_owned()), |c| (c.colour, c.name.to_owned()));
        let response = icon_button(ui, Icon::Channel, current.map(|_| colour))
            .on_hover_text(format!("Channel: {label}. Click to change."));
        egui::Popup::menu(&response).show(|ui| {
            ui.set_min_width(150.0);
            for c in &channels::CHANNELS {
                let mut text = egui::text::LayoutJob::default();
                let font = egui::FontId::proportional(13.0);
                text.append("■ ", 0.0, egui::TextFormat::simple(font.clone(), c.colour));
                text.append(
                    &format!("{} ({})", c.name, c.colour_name),
                    0.0,
                    egui::TextFormat::simple(font, theme::TEXT),
                );
                if ui.selectable_label(current.map(|x| x.number) == Some(c.number), text).clicked() {
                    self.events.push(UiEvent::ChannelChanged { key, channel: Some(c.number) });
                }
            }
            ui.separator();
            if ui.selectable_label(current.is_none(), "No channel").clicked() {
                self.events.push(UiEvent::ChannelChanged { key, channel: None });
            }
        });
    }

    fn is_tab_closable(&self, _tiles: &egui_tiles::Tiles<Pane>, _tile: egui_tiles::TileId) -> bool {
        true
    }

    fn on_tab_close(&mut self, tiles: &mut egui_tiles::Tiles<Pane>, tile: egui_tiles::TileId) -> bool {
        if let Some(egui_tiles::Tile::Pane(p)) = tiles.get(tile) {
            self.events.push(UiEvent::CloseTile { key: p.key });
        }
        // The shell closes the app, then removes the tile.
        false
    }

    fn on_edit(&mut self, _action: egui_tiles::EditAction) {
        self.edited = true;
    }

    fn simplification_options(&self) -> egui_tiles::SimplificationOptions {
        simplification()
    }
}

/// Where the user asked to move an app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MoveTo {
    NewWindow,
    Main,
}

/// How the tile tree is kept tidy: every pane in a tab group of its own.
pub(crate) fn simplification() -> egui_tiles::SimplificationOptions {
    egui_tiles::SimplificationOptions { all_panes_must_have_tabs: true, ..Default::default() }
}
