//! The native dialogs: the consent prompt (may an app do something?) and the intent resolver
//! (which app should handle this?). Each returns its answer as a value; the window turns it
//! into a [`crate::UiEvent`]. They are drawn by the shell, never by an app, so an app cannot
//! fake or restyle them; app views are hidden while one is open.

use std::time::{Duration, Instant};

use egui::{Align2, Color32, FontId, Key, RichText, Vec2};

use crate::theme;

/// A permission prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentRequest {
    /// The shell's id for it.
    pub id: u64,
    /// The asking app's id.
    pub app_id: String,
    /// Its name.
    pub app_title: String,
    /// The origin its page is served from.
    pub origin: String,
    /// What it asks, in plain words ("use your camera", "publish to prices.*").
    pub asks: String,
    /// How long the user has before the answer is "deny".
    pub timeout: Duration,
}

/// The user's answer to a [`ConsentRequest`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentAnswer {
    /// Allowed for this instance, this time.
    AllowOnce,
    /// Allowed, and remembered.
    AllowAlways,
    /// Refused (remembered); also Esc, or closing the dialog.
    Deny,
    /// Nobody answered in time: refused.
    TimedOut,
}

/// An app the resolver offers: a running instance, or the app to launch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolverChoice {
    /// The app's id.
    pub app_id: String,
    /// Its name.
    pub title: String,
    /// The running instance, or `None` to start a new one.
    pub instance: Option<u64>,
    /// The linked desk it runs on, or `None` for this one.
    pub desk: Option<String>,
    /// One line about it.
    pub description: String,
}

/// An intent with more than one possible handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolverRequest {
    /// The shell's id for it.
    pub id: u64,
    /// The intent ("ViewChart").
    pub intent: String,
    /// The context's type ("fdc3.instrument").
    pub context_type: String,
    /// What can handle it.
    pub choices: Vec<ResolverChoice>,
}

/// A consent prompt being shown.
#[derive(Debug)]
pub struct Consent {
    /// The request.
    pub request: ConsentRequest,
    deadline: Instant,
    focused: bool,
    /// App icons by app id (from the launcher), drawn instead of initials.
    pub icons: std::collections::HashMap<String, egui::TextureId>,
}

impl Consent {
    /// Starts showing `request` now.
    pub fn new(request: ConsentRequest) -> Self {
        Self::starting_at(request, Instant::now())
    }

    /// Starts showing `request`, counting from `start`.
    pub fn starting_at(request: ConsentRequest, start: Instant) -> Self {
        let deadline = start + request.timeout;
        Self { request, deadline, focused: false, icons: std::collections::HashMap::new() }
    }

    /// Draws the dialog; returns the answer once there is one.
    pub fn ui(&mut self, ctx: &egui::Context) -> Option<ConsentAnswer> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Some(ConsentAnswer::TimedOut);
        }
        // The countdown is visible: redraw when its number changes.
        ctx.request_repaint_after(Duration::from_millis(u64::try_from(left.as_millis() % 1000).unwrap_or(0) + 1));
        let mut answer = None;
        let r = &self.request;
        let modal = egui::Modal::new(egui::Id::unique(("consent", r.id))).show(ctx, |ui| {
            ui.set_width(420.0);
            ui.horizontal(|ui| {
                badge(ui, &r.app_id, &r.app_title, 40.0, self.icons.get(&r.app_id).copied());
                ui.vertical(|ui| {
                    ui.label(RichText::new(&r.app_title).size(17.0).strong());
                    ui.label(RichText::new(&r.origin).small().color(theme::DIM));
                });
            });
            ui.add_space(10.0);
            ui.label(RichText::new(format!("{} wants to {}.", r.app_title, r.asks)).size(14.0));
            ui.add_space(10.0);
            let total = self.request.timeout.as_secs_f32().max(0.001);
            ui.add(egui::ProgressBar::new(left.as_secs_f32() / total).desired_height(4.0));
            ui.label(
                RichText::new(format!("Denied automatically in {} s", left.as_secs() + 1)).small().color(theme::DIM),
            );
            ui.add_space(10.0);
            ui.horizontal(|ui| {
                if ui.button("Allow once").clicked() {
                    answer = Some(ConsentAnswer::AllowOnce);
                }
                if ui.button("Always allow").clicked() {
                    answer = Some(ConsentAnswer::AllowAlways);
                }
                let deny = ui.button(RichText::new("Deny").strong());
                // Deny is where the keyboard starts: Enter or Space on a fresh prompt refuses.
                if !std::mem::replace(&mut self.focused, true) {
                    deny.request_focus();
                }
                if deny.clicked() {
                    answer = Some(ConsentAnswer::Deny);
                }
            });
        });
        if answer.is_none() && (modal.should_close() || ctx.input(|i| i.key_pressed(Key::Escape))) {
            answer = Some(ConsentAnswer::Deny);
        }
        answer
    }
}

/// An intent resolver being shown.
#[derive(Debug)]
pub struct Resolver {
    /// The request.
    pub request: ResolverRequest,
    selected: usize,
    /// App icons by app id (from the launcher), drawn instead of initials.
    pub icons: std::collections::HashMap<String, egui::TextureId>,
}

impl Resolver {
    /// Starts showing `request`.
    pub fn new(request: ResolverRequest) -> Self {
        Self { request, selected: 0, icons: std::collections::HashMap::new() }
    }

    /// Draws the dialog; `Some(Some(i))` once choice `i` is picked, `Some(None)` if cancelled.
    pub fn ui(&mut self, ctx: &egui::Context) -> Option<Option<usize>> {
        let mut answer = None;
        let r = &self.request;
        let n = r.choices.len();
        let (down, up, enter) = ctx.input_mut(|i| {
            (
                i.consume_key(egui::Modifiers::NONE, Key::ArrowDown),
                i.consume_key(egui::Modifiers::NONE, Key::ArrowUp),
                i.consume_key(egui::Modifiers::NONE, Key::Enter),
            )
        });
        if down && n > 0 {
            self.selected = (self.selected + 1).min(n - 1);
        }
        if up {
            self.selected = self.selected.saturating_sub(1);
        }
        if enter && n > 0 {
            answer = Some(Some(self.selected));
        }
        let modal = egui::Modal::new(egui::Id::unique(("resolver", r.id))).show(ctx, |ui| {
            ui.set_width(440.0);
            ui.label(RichText::new(format!("Open with… ({})", r.intent)).size(17.0).strong());
            ui.label(RichText::new(format!("for {}", r.context_type)).small().color(theme::DIM));
            ui.add_space(8.0);
            if n == 0 {
                ui.label(RichText::new("No app can handle this.").color(theme::WARN));
            }
            for (i, c) in r.choices.iter().enumerate() {
                let label = match (&c.desk, c.instance) {
                    (Some(desk), _) => format!("{} (on {desk})", c.title),
                    (None, Some(inst)) => format!("{} (running, #{inst})", c.title),
                    (None, None) => format!("{} (open new)", c.title),
                };
                let row = ui.horizontal(|ui| {
                    badge(ui, &c.app_id, &c.title, 28.0, self.icons.get(&c.app_id).copied());
                    ui.vertical(|ui| {
                        let text = RichText::new(&label).size(14.0);
                        let r = ui.selectable_label(i == self.selected, text);
                        ui.label(RichText::new(&c.description).small().color(theme::DIM));
                        r
                    })
                    .inner
                });
                if row.inner.clicked() {
                    answer = Some(Some(i));
                }
            }
            ui.add_space(8.0);
            ui.horizontal(|ui| {
                if ui.button("Cancel").clicked() {
                    answer = Some(None);
                }
                if n > 0 && ui.button(RichText::new("Open").strong()).clicked() {
                    answer = Some(Some(self.selected));
                }
            });
        });
        if answer.is_none() && modal.should_close() {
            answer = Some(None);
        }
        answer
    }
}

/// An app's badge: its initials on its colour.
pub(crate) fn badge(ui: &mut egui::Ui, app_id: &str, title: &str, size: f32, icon: Option<egui::TextureId>) {
    let (rect, _) = ui.allocate_exact_size(Vec2::splat(size), egui::Sense::hover());
    let painter = ui.painter_at(rect);
    if let Some(texture) = icon {
        let uv = egui::Rect::from_min_max(egui::pos2(0.0, 0.0), egui::pos2(1.0, 1.0));
        painter.image(texture, rect, uv, Color32::WHITE);
        return;
    }
    painter.rect_filled(rect, size / 4.0, theme::badge_colour(app_id));
    painter.text(
        rect.center(),
        Align2::CENTER_CENTER,
        crate::launcher::initials(title),
        FontId::proportional(size * 0.4),
        Color32::WHITE,
    );
}

#[cfg(test)]
mod tests;
