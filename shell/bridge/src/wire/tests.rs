use super::*;

fn headers<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<&'a str> {
    move |name| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| *v)
}

#[test]
fn a_message_from_another_desk_is_read_whole() {
    let h = [(DESK, "bob"), (USER, "bob@bank"), (APP, "blotter"), (MSG_ID, "bob:01"), (DURABLE, "1")];
    let v = inbound("eq", "alice", "tessera.eq.bus.orders.new", headers(&h), 10, 100).unwrap();
    assert_eq!(
        v,
        Verdict::Deliver(Inbound {
            topic: "orders.new".into(),
            desk: "bob".into(),
            user: "bob@bank".into(),
            app: Some("blotter".into()),
            id: "bob:01".into(),
            durable: true,
        })
    );
}

#[test]
fn this_desks_own_message_is_never_delivered_again() {
    let h = [(DESK, "alice"), (MSG_ID, "alice:01")];
    assert_eq!(inbound("eq", "alice", "tessera.eq.bus.a", headers(&h), 1, 100).unwrap(), Verdict::Own);
}

#[test]
fn each_bad_part_is_named() {
    let good = [(DESK, "bob"), (MSG_ID, "bob:01")];
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, usize, &'a str);
    let cases: Vec<Case<'_>> = vec![
        ("tessera.fx.bus.a", good.to_vec(), 1, "not one of group"),
        ("tessera.eq.other.a", good.to_vec(), 1, "not one of group"),
        ("tessera.eq.bus.$shell.x", good.to_vec(), 1, "topic"),
        ("tessera.eq.bus.a..b", good.to_vec(), 1, "topic"),
        ("tessera.eq.bus.a", vec![(MSG_ID, "x")], 1, "no Tessera-Desk"),
        ("tessera.eq.bus.a", vec![(DESK, "b o b"), (MSG_ID, "x")], 1, "not a desk name"),
        ("tessera.eq.bus.a", vec![(DESK, "bob")], 1, "no Nats-Msg-Id"),
        ("tessera.eq.bus.a", vec![(DESK, "bob"), (MSG_ID, "")], 1, "Nats-Msg-Id"),
        ("tessera.eq.bus.a", vec![(DESK, "bob"), (MSG_ID, "x"), (USER, "a\nb")], 1, "Tessera-User"),
        ("tessera.eq.bus.a", good.to_vec(), 101, "over the group's 100-byte limit"),
    ];
    for (subject, h, size, says) in cases {
        let e = inbound("eq", "alice", subject, headers(&h), size, 100).unwrap_err();
        assert!(e.contains(says), "{subject} {h:?}: {e}");
    }
}

#[test]
fn topics_map_to_subjects_and_back() {
    assert_eq!(bus_subject("eq", "orders.new").unwrap(), "tessera.eq.bus.orders.new");
    assert!(bus_subject("eq", "a.>.b").is_err());
    assert_eq!(message_id("alice", 0xab), "alice:000000000000000000000000000000ab");
    assert_eq!(stream_subjects("eq"), ["tessera.eq.bus.>", "tessera.eq.fdc3.user.>", "tessera.eq.fdc3.app.>"]);
    assert_eq!(bus_subjects("eq"), "tessera.eq.bus.>");
}

proptest::proptest! {
    #[test]
    fn what_a_desk_sends_another_reads_back(topic in "[a-z0-9_-]{1,8}(\\.[a-zA-Z0-9_-]{1,8}){0,4}", id in proptest::num::u128::ANY) {
        let subject = bus_subject("eq", &topic).unwrap();
        let mid = message_id("alice", id);
        let h = [(DESK, "alice"), (MSG_ID, mid.as_str())];
        let got = inbound("eq", "bob", &subject, headers(&h), 10, 100).unwrap();
        let Verdict::Deliver(m) = got else { panic!("not delivered") };
        proptest::prop_assert_eq!(m.topic, topic);
        proptest::prop_assert_eq!(m.id, mid);
    }
}
