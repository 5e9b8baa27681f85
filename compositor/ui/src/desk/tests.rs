use egui_kittest::Harness;
use egui_kittest::kittest::Queryable as _;

use super::*;
use crate::Direction;

fn view(key: u64, title: &str) -> TileView {
    TileView { key, title: title.into(), status: String::new(), live: true, channel: None }
}

fn desk(keys: &[u64]) -> Desk {
    let mut desk = Desk::new("Desk");
    desk.set_tiles(keys.iter().map(|k| view(*k, &format!("App {k}"))).collect());
    desk
}

/// The desk and what its windows said, as one harness state.
struct State {
    desk: Desk,
    events: Vec<UiEvent>,
    /// The shell's fonts are in (they take effect from the next frame on).
    themed: bool,
}

/// A harness drawing window `no` of the desk.
fn window(desk: Desk, no: WindowNo) -> Harness<'static, State> {
    Harness::builder().with_size([1000.0, 600.0]).build_ui_state(
        move |ui, s: &mut State| {
            if !s.themed {
                crate::theme::apply(ui.ctx());
                s.themed = true;
                return;
            }
            let State { desk, events, .. } = s;
            desk.ui(no, ui, events);
        },
        State { desk, events: Vec::new(), themed: false },
    )
}

/// The panes of each window, in order.
fn panes(desk: &Desk) -> Vec<(WindowNo, Vec<u64>)> {
    let snap = desk.snapshot(|_| ((0, 0), None, 1.0));
    snap.windows.iter().map(|w| (w.window, w.tree.as_ref().map(LayoutNode::keys).unwrap_or_default())).collect()
}

fn bounds_in(events: &[UiEvent]) -> Vec<(u64, WindowNo, bool)> {
    events
        .iter()
        .filter_map(|e| match e {
            UiEvent::Bounds { key, window, rect } => Some((*key, *window, rect.is_some())),
            _ => None,
        })
        .collect()
}

#[test]
fn an_app_moves_to_a_new_window_and_back() {
    let mut main = window(desk(&[1, 2, 3]), MAIN_WINDOW);
    main.run();
    let placed = bounds_in(&main.state().events);
    assert!(placed.iter().all(|(_, w, shown)| *w == MAIN_WINDOW && *shown), "{placed:?}");
    let buttons: Vec<_> = main.query_all_by_label("Open in a new window").collect();
    assert_eq!(buttons.len(), 3, "one per tab group");
    buttons[1].click();
    main.state_mut().events.clear();
    main.run();
    let desk = &main.state().desk;
    assert_eq!(panes(desk), [(0, vec![1, 3]), (1, vec![2])]);
    assert_eq!(desk.opening, [Opening { no: 1, position: None, size: None }], "the window system is asked for it");
    assert!(desk.redraw_all);
    assert!(main.state().events.contains(&UiEvent::LayoutChanged));

    // The new window shows app 2 and places its view in window 1.
    let mut state =
        std::mem::replace(main.state_mut(), State { desk: Desk::new(""), events: Vec::new(), themed: false });
    state.desk.opening.clear();
    let mut second = window(state.desk, 1);
    second.run();
    assert_eq!(bounds_in(&second.state().events), [(2, 1, true)]);
    assert!(second.query_by_label("Desk · window 2").is_some());
    second.get_by_label("Move to the main window").click();
    second.run();
    let desk = &second.state().desk;
    assert_eq!(panes(desk), [(0, vec![1, 3, 2])], "back in the main window, after the others");
    assert_eq!(desk.closing, [1], "the emptied window closes");
}

#[test]
fn closing_a_window_keeps_its_apps() {
    let mut d = desk(&[1, 2, 3]);
    d.move_pane(2, MoveTo::NewWindow);
    d.move_pane(3, MoveTo::NewWindow);
    assert_eq!(panes(&d), [(0, vec![1]), (1, vec![2]), (2, vec![3])]);
    d.close_window(1);
    assert_eq!(panes(&d), [(0, vec![1, 2]), (2, vec![3])]);
    assert_eq!(d.closing, [1]);
    d.close_window(MAIN_WINDOW);
    assert_eq!(panes(&d), [(0, vec![1, 2]), (2, vec![3])], "the main window is not closed this way");
    // An app that ends takes its window with it when it was the last one there.
    d.set_tiles(vec![view(1, "App 1"), view(2, "App 2")]);
    assert_eq!(panes(&d), [(0, vec![1, 2])]);
    assert_eq!(d.closing, [1, 2]);
}

#[test]
fn the_move_button_in_the_main_window_makes_a_window_each_time() {
    let mut main = window(desk(&[1, 2]), MAIN_WINDOW);
    main.run();
    main.query_all_by_label("Open in a new window").next().unwrap().click();
    main.run();
    main.query_all_by_label("Open in a new window").next().unwrap().click();
    main.run();
    let desk = &main.state().desk;
    assert_eq!(panes(desk), [(0, vec![]), (1, vec![1]), (2, vec![2])]);
    assert!(main.query_by_label("2 more windows").is_some());
}

fn tabs(keys: &[u64]) -> LayoutNode {
    LayoutNode::Tabs { children: keys.iter().map(|k| LayoutNode::Pane { key: *k }).collect(), active: 0 }
}

#[test]
fn a_layout_with_windows_opens_reuses_and_closes_them() {
    let mut d = desk(&[1, 2, 3, 4]);
    let split = LayoutNode::Split {
        direction: Direction::Horizontal,
        children: vec![tabs(&[1]), tabs(&[2])],
        shares: vec![1.0, 1.0],
    };
    d.set_layout(&[
        WindowPlan { tree: Some(split), ..Default::default() },
        WindowPlan { tree: Some(tabs(&[3])), position: Some((50, 60)), size: Some((800, 500)) },
        // A key twice, and one that is no tile: both dropped, and the window with nothing left
        // is not opened.
        WindowPlan { tree: Some(tabs(&[3, 99])), ..Default::default() },
    ]);
    assert_eq!(panes(&d), [(0, vec![1, 2, 4]), (1, vec![3])], "4 was in no plan: it joins the main window");
    assert_eq!(d.opening, [Opening { no: 1, position: Some((50, 60)), size: Some((800, 500)) }]);
    d.opening.clear();

    // The same window is reused for the next layout's second window and moved.
    d.set_layout(&[
        WindowPlan { tree: Some(tabs(&[1])), ..Default::default() },
        WindowPlan { tree: Some(tabs(&[2, 3])), position: Some((10, 10)), size: None },
        WindowPlan { tree: Some(tabs(&[4])), ..Default::default() },
    ]);
    assert_eq!(panes(&d), [(0, vec![1]), (1, vec![2, 3]), (2, vec![4])]);
    assert_eq!(
        d.opening,
        [Opening { no: 1, position: Some((10, 10)), size: None }, Opening { no: 2, position: None, size: None }]
    );
    d.opening.clear();

    // One window only: the others close and their apps come home.
    d.set_layout(&[WindowPlan { tree: Some(tabs(&[4, 1])), ..Default::default() }]);
    assert_eq!(panes(&d), [(0, vec![4, 1, 2, 3])]);
    assert_eq!(d.closing, [1, 2]);
}

#[test]
fn a_pane_back_in_a_window_it_left_is_placed_afresh() {
    let split = || LayoutNode::Split {
        direction: Direction::Horizontal,
        children: vec![tabs(&[1]), tabs(&[2])],
        shares: vec![1.0, 1.0],
    };
    let mut main = window(desk(&[1, 2]), MAIN_WINDOW);
    main.state_mut().desk.set_layout(&[WindowPlan { tree: Some(split()), ..Default::default() }]);
    main.run();
    let first: Vec<_> = bounds_in(&main.state().events);
    assert!(first.contains(&(2, MAIN_WINDOW, true)), "{first:?}");
    // 2 goes to a window of its own (whose frames this harness does not draw), then comes
    // back to the very same place: its host must still be told, since its view is elsewhere.
    main.state_mut().desk.set_layout(&[
        WindowPlan { tree: Some(tabs(&[1])), ..Default::default() },
        WindowPlan { tree: Some(tabs(&[2])), ..Default::default() },
    ]);
    main.run();
    main.state_mut().events.clear();
    main.state_mut().desk.set_layout(&[WindowPlan { tree: Some(split()), ..Default::default() }]);
    main.run();
    let again = bounds_in(&main.state().events);
    assert!(again.contains(&(2, MAIN_WINDOW, true)), "2's bounds were sent again: {again:?}");
    let snap = main.state().desk.snapshot(|_| ((0, 0), None, 1.0));
    let keys: Vec<u64> = snap.windows[0].bounds.iter().map(|(k, _)| *k).collect();
    assert_eq!(keys, [1, 2], "the snapshot lists only this window's panes");
}

#[test]
fn an_app_moved_back_is_not_hidden_behind_a_maximised_one() {
    let mut main = window(desk(&[1, 2, 3]), MAIN_WINDOW);
    main.run();
    main.state_mut().desk.move_pane(3, MoveTo::NewWindow);
    main.run();
    main.query_all_by_label("Maximise").next().unwrap().click();
    main.run();
    assert_eq!(main.state().desk.surfaces[0].maximized, Some(1));
    main.state_mut().desk.move_pane(3, MoveTo::Main);
    main.state_mut().events.clear();
    main.run();
    assert_eq!(main.state().desk.surfaces[0].maximized, None);
    let shown = bounds_in(&main.state().events);
    assert!(shown.contains(&(3, MAIN_WINDOW, true)) && shown.contains(&(2, MAIN_WINDOW, true)), "{shown:?}");
}

#[test]
fn hidden_tabs_and_an_open_menu_hide_views_and_the_chip_reports_a_channel() {
    let mut main = window(desk(&[1, 2, 3]), MAIN_WINDOW);
    let split = LayoutNode::Split {
        direction: Direction::Horizontal,
        children: vec![tabs(&[1, 2]), tabs(&[3])],
        shares: vec![1.0, 1.0],
    };
    main.state_mut().desk.set_layout(&[WindowPlan { tree: Some(split), ..Default::default() }]);
    main.run();
    let placed = bounds_in(&main.state().events);
    assert!(placed.contains(&(1, MAIN_WINDOW, true)) && placed.contains(&(3, MAIN_WINDOW, true)), "{placed:?}");
    assert!(placed.contains(&(2, MAIN_WINDOW, false)), "the tab behind is hidden: {placed:?}");

    // The channel picker open: it would be drawn under the native views, so every view hides.
    main.state_mut().events.clear();
    main.query_all_by_label("Channel").next().unwrap().click();
    main.run();
    let hidden = bounds_in(&main.state().events);
    assert!(hidden.contains(&(1, MAIN_WINDOW, false)) && hidden.contains(&(3, MAIN_WINDOW, false)), "{hidden:?}");

    main.get_by_label_contains("Channel 3 (yellow)").click();
    main.run();
    assert!(
        main.state().events.contains(&UiEvent::ChannelChanged { key: 1, channel: Some(3) }),
        "{:?}",
        main.state().events
    );
}

#[test]
fn the_shell_bar_counts_native_apps_too() {
    let row = |key: u64, state: &str| HealthRow {
        key,
        title: format!("App {key}"),
        state: state.into(),
        pid: Some(100 + u32::try_from(key).unwrap()),
        group: None,
        memory_bytes: None,
        cpu_percent: None,
        messages_in: 0,
        messages_out: 0,
        restarts: 0,
        last_exit: None,
    };
    let mut desk = desk(&[1, 2]);
    // Two tiles, and two native apps (no tile): one running, one restarting.
    assert!(desk.set_health(vec![row(1, "running"), row(2, "running"), row(7, "running"), row(8, "restarting")]));
    assert!(!desk.set_health(vec![row(1, "running"), row(2, "running"), row(7, "running"), row(8, "restarting")]));
    let mut main = window(desk, MAIN_WINDOW);
    main.run();
    main.get_by_label("● 2 running");
    main.get_by_label("+ 1 in the background");
    main.get_by_label("● 1 not running");
    // Only tiles: the bar says nothing of the background.
    main.state_mut().desk.set_health(vec![row(1, "running")]);
    main.run();
    assert!(main.query_by_label_contains("in the background").is_none());
    assert!(main.query_by_label_contains("not running").is_none());
}
