use egui_kittest::Harness;
use egui_kittest::kittest::Queryable as _;

use super::*;

fn app(id: &str, title: &str, running: usize, last_used: Option<u64>) -> LauncherApp {
    LauncherApp {
        app_id: id.into(),
        title: title.into(),
        description: format!("about {title}"),
        running,
        last_used,
        icon: None,
    }
}

fn desk() -> Vec<LauncherApp> {
    vec![
        app("chart", "Chart", 0, Some(10)),
        app("blotter", "Blotter", 1, Some(30)),
        app("news", "Market news", 0, None),
        app("ticket", "Order ticket", 2, Some(20)),
    ]
}

struct State {
    launcher: Launcher,
    apps: Vec<LauncherApp>,
    launched: Vec<String>,
}

fn harness() -> Harness<'static, State> {
    let state = State { launcher: Launcher::default(), apps: desk(), launched: Vec::new() };
    Harness::builder().with_size([260.0, 320.0]).build_ui_state(
        |ui, s: &mut State| {
            if let Some(id) = s.launcher.ui(ui, &s.apps) {
                s.launched.push(id);
            }
        },
        state,
    )
}

#[test]
fn recently_used_apps_come_first_and_search_is_fuzzy() {
    let apps = desk();
    let order = |q: &str| ordered(&apps, q).iter().map(|a| a.app_id.as_str()).collect::<Vec<_>>();
    assert_eq!(order(""), ["blotter", "ticket", "chart", "news"]);
    assert_eq!(order("ot")[0], "ticket");
    assert_eq!(order("mkt"), ["news"]);
    assert!(order("zzz").is_empty());
}

#[test]
fn clicking_an_app_launches_it() {
    let mut h = harness();
    h.run();
    h.get_by_label("Chart").click();
    h.run();
    assert_eq!(h.state().launched, ["chart"]);
}

#[test]
fn typing_arrows_and_enter_launch_from_the_keyboard() {
    let mut h = harness();
    h.state_mut().launcher.focus();
    h.run();
    h.get_by_role(egui::Role::TextInput).type_text("t");
    h.run();
    // "t" matches the order ticket best, then the chart and the blotter.
    h.key_press(egui::Key::ArrowDown);
    h.run();
    h.key_press(egui::Key::Enter);
    h.run();
    let launched = h.state().launched.clone();
    assert_eq!(launched.len(), 1, "{launched:?}");
    let expected = ordered(&desk(), "t").get(1).map(|a| a.app_id.clone()).unwrap();
    assert_eq!(launched[0], expected);
}

#[test]
fn escape_clears_the_search_and_no_match_says_so() {
    let mut h = harness();
    h.state_mut().launcher.focus();
    h.run();
    h.get_by_role(egui::Role::TextInput).type_text("qqq");
    h.run();
    assert!(h.query_by_label("No app matches.").is_some());
    h.key_press(egui::Key::Escape);
    h.run();
    assert!(h.query_by_label("No app matches.").is_none());
    assert!(h.query_by_label("Blotter").is_some());
}

#[test]
fn initials_are_short() {
    assert_eq!(initials("Order ticket"), "OT");
    assert_eq!(initials("chart"), "C");
    assert_eq!(initials(""), "?");
}
