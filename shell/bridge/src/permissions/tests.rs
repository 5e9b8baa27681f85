use policy::link::{Direction, LinkGroup, SharedTopics};

use super::*;

fn group(name: &str, desks: &[&str]) -> LinkGroup {
    LinkGroup {
        name: name.to_owned(),
        desks: desks.iter().map(|d| (*d).to_owned()).collect(),
        bus: vec![
            SharedTopics { pattern: "orders.#".to_owned(), direction: Direction::Both },
            SharedTopics { pattern: "prices.*".to_owned(), direction: Direction::In },
            SharedTopics { pattern: "fills.*.eu".to_owned(), direction: Direction::Out },
        ],
        user_channels: vec!["fdc3.channel.1".to_owned()],
        app_channels: vec!["desk.orders".to_owned()],
        intents: vec!["StartOrder".to_owned()],
        max_message_bytes: 1024,
        catch_up_secs: 60,
        catch_up_bytes: 1 << 20,
    }
}

#[test]
fn topic_patterns_become_the_nats_subjects_they_cover() {
    assert_eq!(pattern_subjects("p", "a.b"), ["p.a.b"]);
    assert_eq!(pattern_subjects("p", "a.*.c"), ["p.a.*.c"]);
    assert_eq!(pattern_subjects("p", "a.#"), ["p.a", "p.a.>"]);
    assert_eq!(pattern_subjects("p", "#"), ["p.>"]);
    assert_eq!(pattern_subjects("p", "a.#.z"), ["p.a", "p.a.>"], "widened, never narrowed");
}

#[test]
fn a_desk_may_publish_what_its_groups_share_outward_and_read_only_what_is_addressed_to_it() {
    let groups = [group("eq", &["alice", "bob"]), group("fx", &["carol"]), group("all", &["*"])];
    let p = desk_permissions(&groups, "alice");
    for s in [
        "tessera.eq.bus.orders",
        "tessera.eq.bus.orders.>",
        "tessera.eq.bus.fills.*.eu",
        "tessera.eq.fdc3.user.fdc3.channel.1",
        "tessera.eq.fdc3.app.desk.orders",
        "tessera.eq.intent.*",
        "$JS.API.CONSUMER.CREATE.TESSERA_eq.desk_alice",
        "$JS.ACK.TESSERA_eq.desk_alice.>",
        "tessera.all.apps",
    ] {
        assert!(p.publish.iter().any(|x| x == s), "{s} missing from {:#?}", p.publish);
    }
    for s in ["tessera.eq.bus.prices.*", "tessera.fx.bus.orders", "$JS.API.CONSUMER.CREATE.TESSERA_eq.desk_bob"] {
        assert!(!p.publish.iter().any(|x| x == s), "{s} must not be published by alice");
    }
    assert!(!p.publish.iter().any(|x| x.contains(".fx.") || x.contains("TESSERA_fx")), "{:#?}", p.publish);
    assert!(p.subscribe.contains(&"_INBOX.alice.>".to_owned()));
    assert!(p.subscribe.contains(&"tessera.eq.intent.alice".to_owned()));
    assert!(!p.subscribe.iter().any(|s| s.contains("bob") || s == "_INBOX.>"), "{:#?}", p.subscribe);
    let block = authorization_block(&groups, &["alice".to_owned(), "x-1".to_owned()]);
    assert!(block.contains("user: \"alice\", password: $TESSERA_LINK_ALICE"), "{block}");
    assert!(block.contains("$TESSERA_LINK_X_1"), "{block}");
}
