use broker::{AppId, Broker, BrokerConfig, ClientId, Target};
use serde_json::json;

use super::*;

fn profile() -> (tempfile::TempDir, Profile) {
    let dir = tempfile::tempdir().unwrap();
    let p = Profile::open(dir.path()).unwrap();
    (dir, p)
}

#[test]
fn settings_round_trip_and_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    {
        let p = Profile::open(dir.path()).unwrap();
        assert_eq!(p.setting::<u32>("ui.scale").unwrap(), None);
        p.set_setting("ui.scale", &125u32).unwrap();
        p.set_setting("ui.theme", &"dark").unwrap();
    }
    let p = Profile::open(dir.path()).unwrap();
    assert_eq!(p.setting::<u32>("ui.scale").unwrap(), Some(125));
    assert!(p.remove_setting("ui.theme").unwrap());
    assert!(!p.remove_setting("ui.theme").unwrap());
    // Asking for the wrong type is a decode error naming table and key.
    let err = p.setting::<Vec<String>>("ui.scale").unwrap_err();
    assert!(err.to_string().contains("settings") && err.to_string().contains("ui.scale"), "{err}");
}

#[test]
fn layouts_save_list_restore_last_and_delete() {
    let (_d, p) = profile();
    assert!(p.last_layout().unwrap().is_none());
    let morning = json!({"windows": [{"tiles": ["blotter", "chart"]}]});
    let evening = json!({"windows": []});
    p.save_layout("morning", &morning, Timestamp(1)).unwrap();
    p.save_layout("evening", &evening, Timestamp(2)).unwrap();
    assert_eq!(p.layouts().unwrap().iter().map(|l| l.name.as_str()).collect::<Vec<_>>(), ["evening", "morning"]);
    assert_eq!(p.last_layout().unwrap().unwrap().layout, evening);
    assert_eq!(p.layout("morning").unwrap().unwrap().layout, morning);
    assert!(p.delete_layout("evening").unwrap());
    assert!(p.last_layout().unwrap().is_none(), "the last layout was deleted");
}

#[test]
fn grants_are_remembered_per_app_permission_and_scope() {
    let (_d, p) = profile();
    let g = |app: &str, perm: &str, scope: Option<&str>, decision| Grant {
        app: app.into(),
        permission: perm.into(),
        scope: scope.map(Into::into),
        decision,
        decided_at: Timestamp(5),
    };
    p.put_grant(&g("chart", "bus.publish", Some("prices.#"), Decision::Allow)).unwrap();
    p.put_grant(&g("chart", "clipboard.read", None, Decision::Deny)).unwrap();
    p.put_grant(&g("chartx", "notifications", None, Decision::Allow)).unwrap();
    assert_eq!(p.grant("chart", "bus.publish", Some("prices.#")).unwrap().unwrap().decision, Decision::Allow);
    assert!(p.grant("chart", "bus.publish", Some("orders.#")).unwrap().is_none());
    assert_eq!(p.grants(Some("chart")).unwrap().len(), 2, "chartx's grants are not chart's");
    assert_eq!(p.grants(None).unwrap().len(), 3);
    p.put_grant(&g("chart", "clipboard.read", None, Decision::Allow)).unwrap();
    assert_eq!(p.grants(Some("chart")).unwrap().len(), 2, "replaced, not added");
    assert!(p.revoke_grant("chart", "clipboard.read", None).unwrap());
    assert!(p.grant("chart", "clipboard.read", None).unwrap().is_none());
}

#[test]
fn dead_letters_persist_with_their_reason() {
    let (_d, p) = profile();
    let b = Broker::new(BrokerConfig::default());
    let c = b.connect(Some(AppId::new("x")));
    let _ = c.send(&Target::Client(ClientId(999)), "cmd.go", "payload", broker::MessageOptions::default());
    let letter = b.dead_letters().remove(0);
    let k1 = p.store_dead_letter(&letter).unwrap();
    let k2 = p.store_dead_letter(&letter).unwrap();
    assert_eq!(k2, k1 + 1);
    let stored = p.dead_letters().unwrap();
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[0].1, letter);
    assert!(p.remove_dead_letter(k1).unwrap());
    assert_eq!(p.dead_letters().unwrap().len(), 1);
}

#[test]
fn damaged_values_are_reported_not_panicked_on() {
    for bytes in [&b""[..], b"{", b"null", b"[1,2]", b"\xff\xfe"] {
        assert!(decode_json::<Grant>("grants", "k", bytes).is_err());
        assert!(decode_json::<SavedLayout>("layouts", "k", bytes).is_err());
    }
}
