//! The desk: every shell window's tiles (`Surface`: an `egui_tiles` tree, the maximised pane,
//! the bounds last reported), the main window's bar, launcher, dialogs and side panels, and the
//! windows opening and closing; drawn with egui alone and reporting what the user did as
//! `UiEvent`s.

use std::collections::HashMap;

use crate::dialogs::{Consent, ConsentRequest, Resolver, ResolverRequest};
use crate::launcher::Launcher;
use crate::layout::{self, LayoutNode, Pane};
use crate::panels::{GrantRow, HealthRow, Side};
use crate::tiles::{Behavior, MoveTo, simplification, to_px};
use crate::{
    LauncherApp, LayoutSnapshot, MAIN_WINDOW, PxRect, TileView, UiEvent, WindowNo, WindowPlan, WindowSnapshot, theme,
};

/// One window's tiles.
#[derive(Debug)]
pub struct Surface {
    pub no: WindowNo,
    tree: egui_tiles::Tree<Pane>,
    maximized: Option<u64>,
    /// The bounds last reported per key, so only changes are sent.
    sent: HashMap<u64, Option<PxRect>>,
    /// The layout as last reported, to tell the shell when the user changed it.
    last_layout: Option<LayoutNode>,
}

impl Surface {
    fn new(no: WindowNo) -> Self {
        Self { no, tree: empty_tree(), maximized: None, sent: HashMap::new(), last_layout: None }
    }

    fn panes(&self) -> HashMap<u64, egui_tiles::TileId> {
        self.tree
            .tiles
            .iter()
            .filter_map(|(id, t)| match t {
                egui_tiles::Tile::Pane(p) => Some((p.key, *id)),
                egui_tiles::Tile::Container(_) => None,
            })
            .collect()
    }

    /// The keys of the panes here.
    fn pane_keys(&self) -> impl Iterator<Item = u64> + '_ {
        self.tree.tiles.iter().filter_map(|(_, t)| match t {
            egui_tiles::Tile::Pane(p) => Some(p.key),
            egui_tiles::Tile::Container(_) => None,
        })
    }

    fn add_pane(&mut self, key: u64) {
        // Whatever was last sent for it was sent for another window (or for a tile since
        // gone): its bounds here must be sent afresh.
        self.sent.remove(&key);
        let pane = self.tree.tiles.insert_pane(Pane { key });
        let tabs = self.tree.tiles.insert_tab_tile(vec![pane]);
        match self.tree.root.and_then(|r| self.tree.tiles.get_mut(r)) {
            Some(egui_tiles::Tile::Container(c)) if c.kind() != egui_tiles::ContainerKind::Tabs => c.add_child(tabs),
            _ => {
                let children: Vec<_> = self.tree.root.into_iter().chain([tabs]).collect();
                let root = self.tree.tiles.insert_horizontal_tile(children);
                self.tree.root = Some(root);
            }
        }
    }

    /// Takes a pane out; `true` if it was here.
    fn remove_pane(&mut self, key: u64) -> bool {
        self.remove_panes(|k| k == key) > 0
    }

    /// Takes out every pane whose key `gone` picks; returns how many.
    fn remove_panes(&mut self, gone: impl Fn(u64) -> bool) -> usize {
        let ids: Vec<(u64, egui_tiles::TileId)> = self.panes().into_iter().filter(|(k, _)| gone(*k)).collect();
        for (key, id) in &ids {
            self.tree.remove_recursively(*id);
            self.sent.remove(key);
            if self.maximized == Some(*key) {
                self.maximized = None;
            }
        }
        if !ids.is_empty() {
            self.tree.simplify(&simplification());
        }
        ids.len()
    }

    fn set_tree(&mut self, node: Option<&LayoutNode>) {
        self.tree = node.map_or_else(empty_tree, |n| layout::build(egui::Id::unique("tessera-tiles"), n));
        // A pane that left this window must have its bounds sent afresh when it comes back.
        let here = self.panes();
        self.sent.retain(|k, _| here.contains_key(k));
        self.maximized = None;
        self.last_layout = layout::describe(&self.tree);
    }

    /// Shows only the maximised pane's tab group (and its ancestors), or everything.
    fn apply_maximized(&mut self) {
        let ids: Vec<egui_tiles::TileId> = self.tree.tiles.tile_ids().collect();
        for id in &ids {
            self.tree.tiles.set_visible(*id, true);
        }
        let Some(pane) = self.maximized.and_then(|k| self.panes().get(&k).copied()) else {
            self.maximized = None;
            return;
        };
        let mut path = vec![pane];
        let mut at = pane;
        while let Some(parent) = self.tree.tiles.parent_of(at) {
            path.push(parent);
            at = parent;
        }
        for id in ids {
            // Hide every tile that is neither on the path nor inside the maximised tab group.
            let inside = path.get(1).is_some_and(|group| self.is_inside(id, *group));
            if !path.contains(&id) && !inside {
                self.tree.tiles.set_visible(id, false);
            }
        }
    }

    fn is_inside(&self, id: egui_tiles::TileId, ancestor: egui_tiles::TileId) -> bool {
        let mut at = id;
        while let Some(parent) = self.tree.tiles.parent_of(at) {
            if parent == ancestor {
                return true;
            }
            at = parent;
        }
        false
    }
}

fn empty_tree() -> egui_tiles::Tree<Pane> {
    egui_tiles::Tree::empty(egui::Id::unique("tessera-tiles"))
}

/// A window the desk wants the window system to open.
#[derive(Debug, Clone, PartialEq)]
pub struct Opening {
    pub no: WindowNo,
    pub position: Option<(i32, i32)>,
    pub size: Option<(u32, u32)>,
}

/// Everything the windows show, apart from the windows themselves: testable without a display.
#[derive(Debug)]
pub struct Desk {
    title: String,
    /// One per window, the main window first.
    surfaces: Vec<Surface>,
    next_window: WindowNo,
    /// Windows to open, and windows to close, since the window system last looked.
    pub opening: Vec<Opening>,
    pub closing: Vec<WindowNo>,
    /// Set when one window's change changed another's layout (a pane moved between them).
    pub redraw_all: bool,
    views: HashMap<u64, TileView>,
    apps: Vec<LauncherApp>,
    launcher: Launcher,
    consents: std::collections::VecDeque<Consent>,
    resolvers: std::collections::VecDeque<Resolver>,
    health: Vec<HealthRow>,
    groups: Vec<crate::GroupRow>,
    grants: Vec<GrantRow>,
    side: Option<Side>,
    update: Option<crate::UpdateBanner>,
    services: Vec<crate::ServiceRow>,
}

impl Desk {
    /// The launcher's apps.
    pub fn set_apps(&mut self, apps: Vec<LauncherApp>) {
        self.apps = apps;
    }

    /// The health view's rows; whether the window must be drawn again (only an open health
    /// view needs it: idle stays idle).
    pub fn set_health(&mut self, rows: Vec<HealthRow>) -> bool {
        let before = self.background();
        self.health = rows;
        self.side == Some(Side::Health) || self.background() != before
    }

    /// The instances with no tile (native apps, which have no view): how many run, and how
    /// many do not (restarting, failed) — the shell bar counts them too.
    fn background(&self) -> (usize, usize) {
        let (mut up, mut down) = (0, 0);
        for row in self.health.iter().filter(|r| !self.views.contains_key(&r.key)) {
            match row.state.as_str() {
                "running" => up += 1,
                "stopped" => {}
                _ => down += 1,
            }
        }
        (up, down)
    }

    /// The settings view's remembered answers; whether the window must be drawn again.
    pub fn set_grants(&mut self, rows: Vec<GrantRow>) -> bool {
        self.grants = rows;
        self.side == Some(Side::Settings)
    }

    /// The shell's own services, for the health view and the red bars; whether that changed.
    /// The process groups' shared hosts; whether the window must be drawn again (only an
    /// open health view shows them).
    pub fn set_groups(&mut self, rows: Vec<crate::GroupRow>) -> bool {
        if self.groups == rows {
            return false;
        }
        self.groups = rows;
        self.side == Some(Side::Health)
    }

    pub fn set_services(&mut self, rows: Vec<crate::ServiceRow>) -> bool {
        if self.services == rows {
            return false;
        }
        self.services = rows;
        true
    }

    /// What the shell bar says about updates; whether that changed.
    pub fn set_update(&mut self, banner: Option<crate::UpdateBanner>) -> bool {
        if self.update == banner {
            return false;
        }
        self.update = banner;
        true
    }

    pub fn new(title: &str) -> Self {
        Self {
            title: title.to_owned(),
            surfaces: vec![Surface::new(MAIN_WINDOW)],
            next_window: MAIN_WINDOW + 1,
            opening: Vec::new(),
            closing: Vec::new(),
            redraw_all: false,
            views: HashMap::new(),
            apps: Vec::new(),
            launcher: Launcher::default(),
            consents: std::collections::VecDeque::new(),
            resolvers: std::collections::VecDeque::new(),
            health: Vec::new(),
            groups: Vec::new(),
            grants: Vec::new(),
            side: None,
            update: None,
            services: Vec::new(),
        }
    }

    fn main(&mut self) -> &mut Surface {
        &mut self.surfaces[0]
    }

    pub fn show_consent(&mut self, request: ConsentRequest) {
        self.consents.push_back(Consent::new(request));
    }

    pub fn show_resolver(&mut self, request: ResolverRequest) {
        self.resolvers.push_back(Resolver::new(request));
    }

    pub fn cancel_dialog(&mut self, id: u64) {
        self.consents.retain(|c| c.request.id != id);
        self.resolvers.retain(|r| r.request.id != id);
    }

    /// Shows the first pending dialog (the resolver first: the user just asked for something).
    fn dialogs(&mut self, ctx: &egui::Context, events: &mut Vec<UiEvent>) -> bool {
        // The apps' icons, where the launcher has them.
        let wanted: Vec<String> = match (self.resolvers.front(), self.consents.front()) {
            (Some(r), _) => r.request.choices.iter().map(|c| c.app_id.clone()).collect(),
            (None, Some(c)) => vec![c.request.app_id.clone()],
            (None, None) => Vec::new(),
        };
        let icons: HashMap<String, egui::TextureId> =
            wanted.into_iter().filter_map(|id| self.launcher.icon_of(ctx, &self.apps, &id).map(|t| (id, t))).collect();
        if let Some(resolver) = self.resolvers.front_mut() {
            resolver.icons.clone_from(&icons);
            if let Some(choice) = resolver.ui(ctx) {
                events.push(UiEvent::ResolverAnswered { id: resolver.request.id, choice });
                self.resolvers.pop_front();
            }
            return true;
        }
        if let Some(consent) = self.consents.front_mut() {
            consent.icons = icons;
            if let Some(answer) = consent.ui(ctx) {
                events.push(UiEvent::ConsentAnswered { id: consent.request.id, answer });
                self.consents.pop_front();
            }
            return true;
        }
        false
    }

    /// The window a pane is in.
    fn window_of(&self, key: u64) -> Option<usize> {
        self.surfaces.iter().position(|s| s.pane_keys().any(|k| k == key))
    }

    pub fn set_tiles(&mut self, tiles: Vec<TileView>) {
        let keep: HashMap<u64, TileView> = tiles.into_iter().map(|t| (t.key, t)).collect();
        for surface in &mut self.surfaces {
            surface.remove_panes(|k| !keep.contains_key(&k));
        }
        let placed: std::collections::HashSet<u64> = self.surfaces.iter().flat_map(Surface::pane_keys).collect();
        let mut keys: Vec<u64> = keep.keys().copied().filter(|k| !placed.contains(k)).collect();
        keys.sort_unstable();
        for key in keys {
            self.main().add_pane(key);
        }
        self.views = keep;
        self.close_empty();
    }

    /// Closes every window but the main one that has no pane left.
    fn close_empty(&mut self) {
        let (keep, gone): (Vec<Surface>, Vec<Surface>) = std::mem::take(&mut self.surfaces)
            .into_iter()
            .partition(|s| s.no == MAIN_WINDOW || s.pane_keys().next().is_some());
        self.surfaces = keep;
        for s in gone {
            self.retire(s.no);
        }
    }

    /// Window `no` is to close (and not to open, if it was still to).
    fn retire(&mut self, no: WindowNo) {
        self.opening.retain(|o| o.no != no);
        self.closing.push(no);
    }

    fn open_window(&mut self, position: Option<(i32, i32)>, size: Option<(u32, u32)>) -> usize {
        let no = self.next_window;
        self.next_window += 1;
        self.surfaces.push(Surface::new(no));
        self.opening.push(Opening { no, position, size });
        self.surfaces.len() - 1
    }

    /// Moves a pane to a new window of its own, or back to the main window.
    fn move_pane(&mut self, key: u64, to: MoveTo) {
        let Some(from) = self.window_of(key) else { return };
        let to = match to {
            MoveTo::Main if from == 0 => return,
            MoveTo::Main => 0,
            MoveTo::NewWindow => self.open_window(None, None),
        };
        self.surfaces[from].remove_pane(key);
        // An app arriving must be seen, not hidden behind a maximised one.
        self.surfaces[to].maximized = None;
        self.surfaces[to].add_pane(key);
        self.redraw_all = true;
        self.close_empty();
    }

    /// The user closed window `no`: its apps go back to the main window.
    pub fn close_window(&mut self, no: WindowNo) {
        let Some(at) = self.surfaces.iter().position(|s| s.no == no && no != MAIN_WINDOW) else { return };
        let surface = self.surfaces.remove(at);
        let mut keys: Vec<u64> = surface.panes().into_keys().collect();
        // Keep the order the user had them in.
        let order = layout::describe(&surface.tree).map(|n| n.keys()).unwrap_or_default();
        keys.sort_by_key(|k| order.iter().position(|o| o == k));
        self.main().maximized = None;
        for key in keys {
            self.main().add_pane(key);
        }
        self.closing.push(no);
        self.redraw_all = true;
    }

    pub fn set_layout(&mut self, plans: &[WindowPlan]) {
        let known = &self.views;
        let mut seen = std::collections::HashSet::new();
        let trees: Vec<Option<LayoutNode>> = plans
            .iter()
            .map(|p| {
                p.tree
                    .as_ref()
                    .and_then(|t| t.map_keys(&mut |k| (known.contains_key(&k) && seen.insert(k)).then_some(k)))
            })
            .collect();
        let main_tree = trees.first().cloned().flatten();
        self.surfaces[0].set_tree(main_tree.as_ref());
        // The other windows: reuse the open ones in order, open more, close the rest.
        let mut at = 1;
        for (plan, tree) in plans.iter().zip(&trees).skip(1) {
            let Some(tree) = tree else { continue };
            if at >= self.surfaces.len() {
                self.open_window(plan.position, plan.size);
            } else if let Some(o) = self.opening.iter_mut().find(|o| o.no == self.surfaces[at].no) {
                o.position = plan.position;
                o.size = plan.size;
            } else {
                // An open window takes the plan's place and size too.
                self.opening.push(Opening { no: self.surfaces[at].no, position: plan.position, size: plan.size });
            }
            self.surfaces[at].set_tree(Some(tree));
            at += 1;
        }
        let gone: Vec<WindowNo> = self.surfaces.drain(at..).map(|s| s.no).collect();
        for no in gone {
            self.retire(no);
        }
        let placed: std::collections::HashSet<u64> = self.surfaces.iter().flat_map(Surface::pane_keys).collect();
        let mut missing: Vec<u64> = self.views.keys().copied().filter(|k| !placed.contains(k)).collect();
        missing.sort_unstable();
        for key in missing {
            self.main().add_pane(key);
        }
        self.surfaces[0].last_layout = layout::describe(&self.surfaces[0].tree);
        self.redraw_all = true;
    }

    /// The windows' layouts; `window` gives each one's size, position and scale.
    pub fn snapshot(&self, window: impl Fn(WindowNo) -> ((u32, u32), Option<(i32, i32)>, f64)) -> LayoutSnapshot {
        let windows = self
            .surfaces
            .iter()
            .map(|s| {
                let mut bounds: Vec<(u64, Option<PxRect>)> = s.sent.iter().map(|(k, v)| (*k, *v)).collect();
                bounds.sort_by_key(|(k, _)| *k);
                let (size, position, scale) = window(s.no);
                WindowSnapshot {
                    window: s.no,
                    tree: layout::describe(&s.tree),
                    bounds,
                    maximized: s.maximized,
                    size,
                    position,
                    scale,
                }
            })
            .collect();
        LayoutSnapshot { windows }
    }

    /// Builds one frame of window `no`'s UI; returns what the user did and where each view in
    /// that window goes now.
    pub fn ui(&mut self, no: WindowNo, ui: &mut egui::Ui, events: &mut Vec<UiEvent>) {
        let Some(at) = self.surfaces.iter().position(|s| s.no == no) else { return };
        let ctx = ui.ctx().clone();
        let main = at == 0;
        if main {
            self.main_chrome(ui, events);
        } else if self.window_bar(ui, at) {
            self.close_window(no);
            events.push(UiEvent::LayoutChanged);
            return;
        }
        let mut rects: HashMap<u64, egui::Rect> = HashMap::new();
        let mut moves = Vec::new();
        let surface = &mut self.surfaces[at];
        surface.apply_maximized();
        let mut behavior = Behavior {
            views: &self.views,
            rects: &mut rects,
            events,
            maximized: &mut surface.maximized,
            moves: &mut moves,
            move_to: if main { MoveTo::NewWindow } else { MoveTo::Main },
            edited: false,
        };
        // No fill: the clear colour is the background, and live views cover most of it.
        egui::CentralPanel::default().frame(egui::Frame::NONE).show(ui, |ui| {
            if surface.tree.root.is_none() {
                ui.centered_and_justified(|ui| {
                    ui.label(
                        egui::RichText::new("No apps are open. Pick one on the left (Ctrl+K to search).")
                            .color(theme::DIM),
                    );
                });
                return;
            }
            surface.tree.ui(&mut behavior, ui);
        });
        let edited = behavior.edited;
        let dialog = main && self.dialogs(&ctx, events);
        let surface = &mut self.surfaces[at];
        // Native child windows always draw above egui: while a tile is dragged or a menu or
        // dialog is open, every view in the window is hidden so nothing the user needs is
        // covered.
        let overlay = dialog || surface.tree.dragged_id(&ctx).is_some() || egui::Popup::is_any_open(&ctx);
        let ppp = ctx.pixels_per_point();
        let keys: Vec<u64> = surface.pane_keys().collect();
        for key in keys {
            let live = self.views.get(&key).is_some_and(|v| v.live);
            let rect = rects.get(&key).filter(|_| live && !overlay).map(|r| to_px(*r, ppp));
            if surface.sent.get(&key) != Some(&rect) {
                surface.sent.insert(key, rect);
                events.push(UiEvent::Bounds { key, window: no, rect });
            }
        }
        let now = layout::describe(&surface.tree);
        if edited || now != surface.last_layout {
            if now != surface.last_layout && surface.tree.dragged_id(&ctx).is_none() {
                events.push(UiEvent::LayoutChanged);
            }
            surface.last_layout = now;
        }
        for (key, to) in moves {
            self.move_pane(key, to);
            events.push(UiEvent::LayoutChanged);
        }
    }

    /// The main window's shell bar, side panel and launcher.
    fn main_chrome(&mut self, ui: &mut egui::Ui, events: &mut Vec<UiEvent>) {
        if ui.ctx().input_mut(|i| i.consume_key(egui::Modifiers::COMMAND, egui::Key::K)) {
            self.launcher.focus();
        }
        let views = &self.views;
        let (background, background_down) = self.background();
        let others = self.surfaces.len() - 1;
        egui::Panel::top("shell-bar").show(ui, |ui| {
            ui.horizontal(|ui| {
                ui.label(egui::RichText::new("◆").color(egui::Color32::from_rgb(76, 154, 255)));
                ui.strong(self.title.as_str());
                ui.separator();
                let count = |f: &dyn Fn(&TileView) -> bool| views.values().filter(|v| f(v)).count();
                let running = count(&|v| v.live);
                ui.label(egui::RichText::new(format!("● {running} running")).color(theme::RUNNING));
                if background > 0 {
                    ui.label(egui::RichText::new(format!("+ {background} in the background")).color(theme::DIM))
                        .on_hover_text("Native apps: they have no tile; see them in the health view");
                }
                let down = views.len() - running + background_down;
                if down > 0 {
                    ui.label(egui::RichText::new(format!("● {down} not running")).color(theme::WARN));
                }
                if others > 0 {
                    let s = if others == 1 { "" } else { "s" };
                    ui.label(egui::RichText::new(format!("{others} more window{s}")).color(theme::DIM));
                }
                for s in &self.services {
                    if let Some(text) = &s.bar {
                        ui.separator();
                        let colour = if s.ok { theme::RUNNING } else { theme::WARN };
                        ui.label(egui::RichText::new(text.as_str()).color(colour)).on_hover_text(&s.detail);
                    }
                }
                ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                    for (side, label) in [(Side::Settings, "Settings"), (Side::Health, "Health")] {
                        if ui.selectable_label(self.side == Some(side), label).clicked() {
                            self.side = if self.side == Some(side) { None } else { Some(side) };
                        }
                    }
                    if let Some(update) = &self.update {
                        ui.separator();
                        if let Some(p) = update.progress {
                            ui.add(egui::ProgressBar::new(p.clamp(0.0, 1.0)).desired_width(140.0).show_percentage());
                        }
                        ui.label(egui::RichText::new(update.text.as_str()).color(theme::TEXT));
                    }
                });
            });
        });
        for (i, s) in self.services.iter().filter(|s| !s.ok).enumerate() {
            let frame = egui::Frame::new().fill(theme::ERROR).inner_margin(egui::Margin::symmetric(10, 4));
            egui::Panel::top(egui::IdSalt::new(("service-alert", i))).frame(frame).show(ui, |ui| {
                ui.horizontal(|ui| {
                    ui.label(egui::RichText::new(format!("⚠ {}:", s.name)).strong().color(egui::Color32::WHITE));
                    ui.add(egui::Label::new(egui::RichText::new(&s.detail).color(egui::Color32::WHITE)).truncate())
                        .on_hover_text(&s.detail);
                });
            });
        }
        if let Some(side) = self.side {
            egui::Panel::right("side-panel").default_size(460.0).min_size(300.0).resizable(true).show(ui, |ui| {
                ui.add_space(6.0);
                match side {
                    Side::Health => crate::panels::health(ui, &self.services, &self.health, &self.groups),
                    Side::Settings => {
                        if let Some(grant) = crate::panels::settings(ui, &self.grants) {
                            events.push(UiEvent::RevokeGrant(grant));
                        }
                    }
                }
            });
        }
        let mut launch = None;
        egui::Panel::left("launcher").default_size(240.0).min_size(180.0).resizable(true).show(ui, |ui| {
            launch = self.launcher.ui(ui, &self.apps);
        });
        if let Some(app_id) = launch {
            events.push(UiEvent::Launch { app_id });
        }
    }

    /// What window `no` is called (its title bar, and its own bar inside).
    pub fn window_title(&self, no: WindowNo) -> String {
        if no == MAIN_WINDOW { self.title.clone() } else { format!("{} · window {}", self.title, no + 1) }
    }

    /// Another window's bar: which window it is, and a way to send everything back (`true`
    /// when the user asked for that).
    fn window_bar(&mut self, ui: &mut egui::Ui, at: usize) -> bool {
        let no = self.surfaces[at].no;
        let mut back = false;
        egui::Panel::top("window-bar").show(ui, |ui| {
            ui.horizontal(|ui| {
                ui.label(egui::RichText::new("◆").color(egui::Color32::from_rgb(76, 154, 255)));
                ui.strong(self.window_title(no));
                ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                    back = ui
                        .button("Move all to the main window")
                        .on_hover_text("Closing this window does the same")
                        .clicked();
                });
            });
        });
        back
    }
}

#[cfg(test)]
mod tests;
