//! The side panels: the health view (each app instance's state and resources) and the settings
//! view (remembered permission answers, each revocable). They open beside the tiles, which
//! make room for them, so no app view is covered.

use egui::RichText;

use crate::theme;

/// One of the shell's own services in the health view (the audit log, ...); one that is not
/// ok also shows as a red bar under the shell bar until it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRow {
    /// What it is ("Audit log").
    pub name: String,
    /// Whether it works.
    pub ok: bool,
    /// One line: its state, or what is wrong and what it means.
    pub detail: String,
    /// A few words for the shell bar, for a service that shows there (the desk link).
    pub bar: Option<String>,
}

/// One app instance in the health view.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthRow {
    /// The instance.
    pub key: u64,
    /// The app's name.
    pub title: String,
    /// Its state ("running", "restarting", "failed").
    pub state: String,
    /// Its host's pid.
    pub pid: Option<u32>,
    /// The process group whose host it shares; `None`: a host of its own.
    pub group: Option<String>,
    /// Memory of its own processes: its host and web processes, or in a process group its
    /// web process.
    pub memory_bytes: Option<u64>,
    /// CPU, in percent of one core.
    pub cpu_percent: Option<f64>,
    /// Bus messages given to it.
    pub messages_in: u64,
    /// Bus messages it sent.
    pub messages_out: u64,
    /// Restarts so far.
    pub restarts: u32,
    /// Why its last host ended.
    pub last_exit: Option<String>,
}

/// A process group's shared host in the health view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRow {
    /// The group's name.
    pub name: String,
    /// Its host's pid.
    pub pid: u32,
    /// Apps whose views it holds.
    pub apps: usize,
    /// Memory of the host and its network process, which its apps share.
    pub memory_bytes: Option<u64>,
}

/// A remembered permission answer in the settings view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRow {
    /// The app.
    pub app: String,
    /// The permission.
    pub permission: String,
    /// Its scope, if any.
    pub scope: Option<String>,
    /// "allow" or "deny".
    pub decision: String,
    /// When it was decided (RFC 3339).
    pub decided_at: String,
}

/// Which side panel is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The health view.
    Health,
    /// The settings view.
    Settings,
}

/// The health view.
pub fn health(ui: &mut egui::Ui, services: &[ServiceRow], rows: &[HealthRow], groups: &[GroupRow]) {
    ui.heading("Health");
    if !services.is_empty() {
        egui::Grid::new("services").num_columns(3).spacing([12.0, 4.0]).show(ui, |ui| {
            for s in services {
                let (mark, colour) = if s.ok { ("●", theme::RUNNING) } else { ("●", theme::ERROR) };
                ui.label(RichText::new(mark).color(colour));
                ui.label(RichText::new(&s.name).strong());
                ui.add(
                    egui::Label::new(RichText::new(&s.detail).color(if s.ok { theme::DIM } else { theme::ERROR }))
                        .wrap(),
                );
                ui.end_row();
            }
        });
        ui.add_space(6.0);
    }
    ui.label(
        RichText::new(
            "Each app's page runs in a web process of its own. Apps in a process group share a host; \
             their figures are their own web process's, the host's are listed below.",
        )
        .small()
        .color(theme::DIM),
    );
    ui.add_space(6.0);
    if rows.is_empty() {
        ui.label(RichText::new("No apps are open.").color(theme::DIM));
        return;
    }
    egui::ScrollArea::both().show(ui, |ui| {
        egui::Grid::new("health").striped(true).num_columns(9).spacing([12.0, 4.0]).show(ui, |ui| {
            for h in ["App", "State", "PID", "Group", "Memory", "CPU", "In", "Out", "Restarts"] {
                ui.label(RichText::new(h).small().strong().color(theme::DIM));
            }
            ui.end_row();
            for r in rows {
                ui.label(format!("{} #{}", r.title, r.key));
                let colour = match r.state.as_str() {
                    "running" => theme::RUNNING,
                    s if s.starts_with("failed") => theme::ERROR,
                    _ => theme::WARN,
                };
                let state = ui.label(RichText::new(&r.state).color(colour));
                if let Some(why) = &r.last_exit {
                    state.on_hover_text(format!("Last exit: {why}"));
                }
                ui.label(r.pid.map_or_else(|| "–".to_owned(), |p| p.to_string()));
                ui.label(r.group.as_deref().unwrap_or("own"));
                ui.label(r.memory_bytes.map_or_else(|| "–".to_owned(), |b| format!("{} MiB", b >> 20)));
                ui.label(r.cpu_percent.map_or_else(|| "–".to_owned(), |c| format!("{c:.0}%")));
                ui.label(r.messages_in.to_string());
                ui.label(r.messages_out.to_string());
                ui.label(r.restarts.to_string());
                ui.end_row();
            }
        });
        if !groups.is_empty() {
            ui.add_space(8.0);
            ui.label(RichText::new("Process groups").strong());
            egui::Grid::new("groups").striped(true).num_columns(4).spacing([12.0, 4.0]).show(ui, |ui| {
                for h in ["Group", "Host PID", "Apps", "Shared memory"] {
                    ui.label(RichText::new(h).small().strong().color(theme::DIM));
                }
                ui.end_row();
                for g in groups {
                    ui.label(&g.name);
                    ui.label(g.pid.to_string());
                    ui.label(g.apps.to_string());
                    ui.label(g.memory_bytes.map_or_else(|| "–".to_owned(), |b| format!("{} MiB", b >> 20)));
                    ui.end_row();
                }
            });
        }
    });
}

/// The settings view; returns the grant the user revoked, if any.
pub fn settings(ui: &mut egui::Ui, grants: &[GrantRow]) -> Option<GrantRow> {
    ui.heading("Settings");
    ui.add_space(4.0);
    ui.label(RichText::new("Remembered permissions").strong());
    ui.label(
        RichText::new("Answers you gave with \"Always allow\" or \"Deny\". Revoke one to be asked again.")
            .small()
            .color(theme::DIM),
    );
    ui.add_space(6.0);
    if grants.is_empty() {
        ui.label(RichText::new("No remembered permissions.").color(theme::DIM));
        return None;
    }
    let mut revoked = None;
    egui::ScrollArea::vertical().show(ui, |ui| {
        egui::Grid::new("grants").striped(true).num_columns(4).spacing([12.0, 4.0]).show(ui, |ui| {
            for h in ["App", "Permission", "Answer", ""] {
                ui.label(RichText::new(h).small().strong().color(theme::DIM));
            }
            ui.end_row();
            for g in grants {
                ui.label(&g.app);
                let what = match &g.scope {
                    Some(scope) => format!("{}:{scope}", g.permission),
                    None => g.permission.clone(),
                };
                ui.label(what).on_hover_text(format!("Decided {}", g.decided_at));
                let colour = if g.decision == "allow" { theme::RUNNING } else { theme::ERROR };
                ui.label(RichText::new(&g.decision).color(colour));
                if ui.small_button("Revoke").clicked() {
                    revoked = Some(g.clone());
                }
                ui.end_row();
            }
        });
    });
    revoked
}

#[cfg(test)]
mod tests;
