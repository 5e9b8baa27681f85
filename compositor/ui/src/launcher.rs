//! The launcher: the desk's apps, searchable by fuzzy match, most recently used first, with a
//! mark for those running. Type to search, ↑/↓ to choose, Enter (or a click) to launch, Esc to
//! clear; Ctrl+K jumps to the search field from anywhere in the window.

use egui::{Align2, Color32, FontId, Key, Modifiers, Sense, Vec2};

use crate::LauncherApp;
use crate::theme;

/// The launcher's own state between frames.
#[derive(Debug, Default)]
pub struct Launcher {
    icons: crate::icons::Icons,
    query: String,
    selected: usize,
    focus_search: bool,
    /// The search field had the focus at the end of the last frame (egui drops it on Escape
    /// before any widget sees the key).
    was_focused: bool,
}

/// The apps in the order the launcher shows them for `query`.
pub fn ordered<'a>(apps: &'a [LauncherApp], query: &str) -> Vec<&'a LauncherApp> {
    let mut scored: Vec<(&LauncherApp, i32)> = apps
        .iter()
        .filter_map(|a| {
            let title = crate::fuzzy::score(query, &a.title);
            let id = crate::fuzzy::score(query, &a.app_id).map(|s| s - 2);
            let best = title.into_iter().chain(id).max()?;
            Some((a, best))
        })
        .collect();
    scored.sort_by(|(a, sa), (b, sb)| {
        sb.cmp(sa).then_with(|| b.last_used.cmp(&a.last_used)).then_with(|| a.title.cmp(&b.title))
    });
    scored.into_iter().map(|(a, _)| a).collect()
}

impl Launcher {
    /// Puts the keyboard focus in the search field on the next frame.
    /// The icon of `app_id` among `apps`, as a texture, if it has one.
    pub(crate) fn icon_of(
        &mut self,
        ctx: &egui::Context,
        apps: &[LauncherApp],
        app_id: &str,
    ) -> Option<egui::TextureId> {
        let path = apps.iter().find(|a| a.app_id == app_id)?.icon.clone()?;
        self.icons.get(ctx, &path)
    }

    pub fn focus(&mut self) {
        self.focus_search = true;
    }

    /// Draws the launcher; returns the app to launch, if the user chose one.
    pub fn ui(&mut self, ui: &mut egui::Ui, apps: &[LauncherApp]) -> Option<String> {
        ui.add_space(6.0);
        ui.label(egui::RichText::new("APPS").small().strong().color(theme::DIM));
        ui.add_space(2.0);
        // Keys are taken before the field sees them: it would drop its focus on Escape and Enter.
        let search_id = ui.make_persistent_id("launcher-search");
        let focused = ui.memory(|m| m.has_focus(search_id)) || self.was_focused;
        let mut launch = None;
        if focused {
            let (down, up, enter, escape) = ui.input_mut(|i| {
                (
                    i.consume_key(Modifiers::NONE, Key::ArrowDown),
                    i.consume_key(Modifiers::NONE, Key::ArrowUp),
                    i.consume_key(Modifiers::NONE, Key::Enter),
                    i.consume_key(Modifiers::NONE, Key::Escape),
                )
            });
            let list = ordered(apps, &self.query);
            if down && !list.is_empty() {
                self.selected = (self.selected + 1).min(list.len() - 1);
            }
            if up {
                self.selected = self.selected.saturating_sub(1);
            }
            if escape {
                self.query.clear();
                self.selected = 0;
                self.focus_search = true;
            }
            if enter && let Some(app) = list.get(self.selected) {
                launch = Some(app.app_id.clone());
            }
        }
        let search = ui.add(
            egui::TextEdit::singleline(&mut self.query)
                .id(search_id)
                .hint_text("Search apps (Ctrl+K)")
                .desired_width(f32::INFINITY),
        );
        if search.changed() {
            self.selected = 0;
        }
        if std::mem::take(&mut self.focus_search) {
            search.request_focus();
        }
        self.was_focused = search.has_focus();
        let list = ordered(apps, &self.query);
        self.selected = self.selected.min(list.len().saturating_sub(1));
        ui.add_space(6.0);
        if list.is_empty() {
            ui.label(egui::RichText::new("No app matches.").color(theme::DIM));
        }
        // The keyboard's choice shows while the user is searching.
        let choosing = search.has_focus() || !self.query.is_empty();
        egui::ScrollArea::vertical().auto_shrink([false, false]).show(ui, |ui| {
            for (i, app) in list.iter().enumerate() {
                let icon = app.icon.as_ref().and_then(|p| self.icons.get(ui.ctx(), p));
                if row(ui, app, icon, choosing && i == self.selected).clicked() {
                    self.selected = i;
                    launch = Some(app.app_id.clone());
                }
            }
        });
        if launch.is_some() {
            self.query.clear();
            self.selected = 0;
        }
        launch
    }
}

/// One app: its badge, title, description and how many instances run.
fn row(ui: &mut egui::Ui, app: &LauncherApp, icon: Option<egui::TextureId>, selected: bool) -> egui::Response {
    let width = ui.available_width();
    let (rect, response) = ui.allocate_exact_size(Vec2::new(width, 44.0), Sense::click());
    response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Button, true, &app.title));
    if ui.is_rect_visible(rect) {
        let painter = ui.painter_at(rect);
        let bg = if selected {
            theme::SELECTED
        } else if response.hovered() {
            theme::HOVER
        } else {
            Color32::TRANSPARENT
        };
        painter.rect_filled(rect, 6.0, bg);
        let badge = egui::Rect::from_center_size(rect.left_center() + Vec2::new(22.0, 0.0), Vec2::splat(28.0));
        match icon {
            Some(texture) => {
                let uv = egui::Rect::from_min_max(egui::pos2(0.0, 0.0), egui::pos2(1.0, 1.0));
                painter.image(texture, badge, uv, Color32::WHITE);
            }
            None => {
                painter.rect_filled(badge, 7.0, theme::badge_colour(&app.app_id));
                let text = initials(&app.title);
                painter.text(badge.center(), Align2::CENTER_CENTER, text, FontId::proportional(12.0), Color32::WHITE);
            }
        }
        let text_x = badge.right() + 10.0;
        let room = (rect.right() - text_x - 28.0).max(20.0);
        let line = |text: &str, size: f32, colour: Color32| {
            // One line, cut with an ellipsis where it does not fit.
            let mut job = egui::text::LayoutJob::simple_singleline(text.to_owned(), FontId::proportional(size), colour);
            job.wrap = egui::text::TextWrapping {
                max_rows: 1,
                max_width: room,
                break_anywhere: true,
                overflow_character: Some('…'),
            };
            ui.ctx().fonts_mut(|f| f.layout_job(job))
        };
        painter.galley(egui::pos2(text_x, rect.top() + 7.0), line(&app.title, 14.0, theme::TEXT), theme::TEXT);
        painter.galley(egui::pos2(text_x, rect.top() + 26.0), line(&app.description, 11.0, theme::DIM), theme::DIM);
        if app.running > 0 {
            let mut right = rect.right() - 10.0;
            if app.running > 1 {
                let count = painter.text(
                    egui::pos2(right, rect.center().y),
                    Align2::RIGHT_CENTER,
                    app.running.to_string(),
                    FontId::proportional(11.0),
                    theme::RUNNING,
                );
                right = count.left() - 4.0;
            }
            painter.circle_filled(egui::pos2(right - 3.5, rect.center().y), 3.5, theme::RUNNING);
        }
    }
    response.on_hover_text(if app.running > 0 {
        format!("{} — running ({}); click to open another", app.title, app.running)
    } else {
        format!("{} — click or press Enter to open", app.title)
    })
}

/// Up to two letters for an app's badge: the first letters of its first two words.
pub(crate) fn initials(title: &str) -> String {
    let mut words = title.split_whitespace().filter_map(|w| w.chars().next());
    let first = words.next().unwrap_or('?');
    match words.next() {
        Some(second) => format!("{}{}", first.to_uppercase(), second.to_uppercase()),
        None => first.to_uppercase().collect(),
    }
}

#[cfg(test)]
mod tests;
