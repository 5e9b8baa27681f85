use egui_kittest::Harness;
use egui_kittest::kittest::Queryable as _;

use super::*;

fn grant(app: &str, permission: &str) -> GrantRow {
    GrantRow {
        app: app.into(),
        permission: permission.into(),
        scope: Some("prices.#".into()),
        decision: "allow".into(),
        decided_at: "2026-11-26T12:00:00Z".into(),
    }
}

#[test]
fn revoking_a_grant_returns_it() {
    let grants = vec![grant("ticker", "bus.subscribe"), grant("news", "bus.publish")];
    let mut h = Harness::new_ui_state(
        move |ui, revoked: &mut Vec<GrantRow>| {
            if let Some(g) = settings(ui, &grants) {
                revoked.push(g);
            }
        },
        Vec::new(),
    );
    h.run();
    assert!(h.query_by_label("bus.publish:prices.#").is_some());
    let buttons = h.query_all_by_label("Revoke").collect::<Vec<_>>();
    assert_eq!(buttons.len(), 2);
    buttons[1].click();
    h.run();
    assert_eq!(h.state().len(), 1);
    assert_eq!(h.state()[0].app, "news");
}

#[test]
fn the_health_view_shows_each_instance_and_the_process_groups() {
    let row = |key: u64, title: &str, pid: u32, group: Option<&str>| HealthRow {
        key,
        title: title.into(),
        state: "running".into(),
        pid: Some(pid),
        group: group.map(Into::into),
        memory_bytes: Some(120 << 20),
        cpu_percent: Some(4.6),
        messages_in: 10,
        messages_out: 700,
        restarts: 1,
        last_exit: Some("killed by signal 9".into()),
    };
    let rows = vec![row(3, "Prices", 4242, None), row(4, "News", 5151, Some("desk"))];
    let groups = vec![GroupRow { name: "desk".into(), pid: 5151, apps: 1, memory_bytes: Some(61 << 20) }];
    let mut h = Harness::new_ui(move |ui| health(ui, &[], &rows, &groups));
    h.run();
    for text in ["Prices #3", "News #4", "running", "4242", "own", "120 MiB", "5%", "700", "Process groups", "61 MiB"] {
        assert!(h.query_all_by_label(text).next().is_some(), "{text} missing");
    }
    // The group's name shows in its app's row and in the groups' list; its host's pid too.
    assert_eq!(h.query_all_by_label("desk").count(), 2);
    assert_eq!(h.query_all_by_label("5151").count(), 2);
}
