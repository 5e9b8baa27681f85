use crate::AdminPolicy;

fn policy(link: &serde_json::Value) -> Result<AdminPolicy, String> {
    AdminPolicy::parse(&serde_json::json!({ "link": link }).to_string()).map_err(|e| e.to_string())
}

#[test]
fn a_link_section_is_read_with_its_defaults_and_the_desk_takes_its_groups() {
    let p = policy(&serde_json::json!({
        "desk": "alice",
        "servers": ["nats://127.0.0.1:4222", "tls://nats.example:4222"],
        "tokenSecret": "nats",
        "replicas": 3,
        "groups": [
            { "name": "equities", "desks": ["alice", "bob"], "bus": [{ "pattern": "orders.#" }, { "pattern": "prices.*", "direction": "in" }], "userChannels": ["fdc3.channel.1"], "appChannels": ["desk.orders"], "intents": ["ViewChart"] },
            { "name": "fx", "desks": ["carol"] },
            { "name": "all", "desks": ["*"], "maxMessageBytes": 1024 },
        ],
    }))
    .unwrap();
    let link = p.link().unwrap();
    let mine: Vec<&str> = link.groups_of_this_desk().map(|g| g.name.as_str()).collect();
    assert_eq!(mine, ["equities", "all"]);
    let eq = &link.groups[0];
    assert_eq!(eq.max_message_bytes, 64 << 10);
    assert!(eq.bus[0].direction.outward() && eq.bus[0].direction.inward());
    assert!(!eq.bus[1].direction.outward() && eq.bus[1].direction.inward());
    assert_eq!(link.groups[2].max_message_bytes, 1024);
    assert_eq!(eq.user_channels, ["fdc3.channel.1"]);
    assert_eq!(
        (eq.app_channels.as_slice(), eq.intents.as_slice()),
        (&["desk.orders".to_owned()][..], &["ViewChart".to_owned()][..])
    );
    assert!(link.groups[1].intents.is_empty() && link.groups[1].app_channels.is_empty(), "nothing unless named");
}

#[test]
fn each_bad_field_is_named() {
    let cases = [
        (serde_json::json!({ "desk": "al ice", "servers": ["nats://a:1"] }), "link.desk"),
        (serde_json::json!({ "desk": "a", "servers": [] }), "link.servers: no server"),
        (serde_json::json!({ "desk": "a", "servers": ["http://a:1"] }), "link.servers[0]"),
        (serde_json::json!({ "desk": "a", "servers": ["nats://a:1"], "replicas": 7 }), "link.replicas"),
        (serde_json::json!({ "desk": "a", "servers": ["nats://a:1"], "tokenSecret": "../x" }), "link.tokenSecret"),
        (
            serde_json::json!({ "desk": "a", "servers": ["nats://a:1"], "groups": [{ "name": "a.b", "desks": ["a"] }] }),
            "link.groups[0].name",
        ),
        (
            serde_json::json!({ "desk": "a", "servers": ["nats://a:1"], "groups": [{ "name": "g", "desks": ["a"] }, { "name": "g", "desks": ["a"] }] }),
            "named twice",
        ),
        (
            serde_json::json!({ "desk": "a", "servers": ["nats://a:1"], "groups": [{ "name": "g", "desks": [] }] }),
            "link.groups[0].desks",
        ),
        (
            serde_json::json!({ "desk": "a", "servers": ["nats://a:1"], "groups": [{ "name": "g", "desks": ["a"], "bus": [{ "pattern": "$shell.#" }] }] }),
            "link.groups[0].bus[0].pattern",
        ),
        (
            serde_json::json!({ "desk": "a", "servers": ["nats://a:1"], "groups": [{ "name": "g", "desks": ["a"], "bus": [{ "pattern": "a.>" }] }] }),
            "link.groups[0].bus[0].pattern",
        ),
        (
            serde_json::json!({ "desk": "a", "servers": ["nats://a:1"], "groups": [{ "name": "g", "desks": ["a"], "bus": [{ "pattern": "a.b#" }] }] }),
            "link.groups[0].bus[0].pattern",
        ),
        (
            serde_json::json!({ "desk": "a", "servers": ["nats://a:1"], "groups": [{ "name": "g", "desks": ["a"], "maxMessageBytes": 10 }] }),
            "maxMessageBytes",
        ),
        (serde_json::json!({ "desk": "a", "servers": ["nats://a:1"], "colour": "red" }), "unknown field"),
        (
            serde_json::json!({ "desk": "a", "servers": ["nats://a:1"], "tokenSecret": "t", "nkeySecret": "k" }),
            "tokenSecret and nkeySecret are each a way to log in",
        ),
        (serde_json::json!({ "desk": "a", "servers": ["nats://a:1"], "credsSecret": "a b" }), "link.credsSecret"),
        (serde_json::json!({ "desk": "a", "servers": ["tls://a:1"], "caFile": "ca.pem" }), "link.caFile"),
        (
            serde_json::json!({ "desk": "a", "servers": ["nats://a:1"], "groups": [{ "name": "g", "desks": ["a"], "userChannels": ["fdc3.*"] }] }),
            "link.groups[0].userChannels[0]",
        ),
        (
            serde_json::json!({ "desk": "a", "servers": ["nats://a:1"], "groups": [{ "name": "g", "desks": ["a"], "appChannels": ["ok.one", "fdc3.channel.2"] }] }),
            "link.groups[0].appChannels[1]",
        ),
        (
            serde_json::json!({ "desk": "a", "servers": ["nats://a:1"], "groups": [{ "name": "g", "desks": ["a"], "appChannels": ["private.x"] }] }),
            "link.groups[0].appChannels[0]",
        ),
        (
            serde_json::json!({ "desk": "a", "servers": ["nats://a:1"], "groups": [{ "name": "g", "desks": ["a"], "intents": ["ViewChart", "View Chart"] }] }),
            "link.groups[0].intents[1]",
        ),
        (
            serde_json::json!({ "desk": "a", "servers": ["nats://a:1"], "groups": [{ "name": "g", "desks": ["a"], "bus": [{ "pattern": "a", "direction": "sideways" }] }] }),
            "unknown variant",
        ),
    ];
    for (link, says) in cases {
        let e = policy(&link).unwrap_err();
        assert!(e.contains(says), "{link}: {e}");
    }
}
