use proptest::prelude::*;

use super::*;

fn trace() -> impl Strategy<Value = Option<TraceParent>> {
    prop::option::of((1u128.., 1u64.., any::<u8>()).prop_map(|(t, s, f)| TraceParent {
        trace_id: t,
        span_id: s,
        flags: f,
    }))
}

fn host_msg() -> impl Strategy<Value = HostMsg> {
    prop_oneof![
        (any::<u16>(), any::<u32>()).prop_map(|(protocol, pid)| HostMsg::Hello { protocol, pid }),
        ("[a-z.]{0,30}", prop::collection::vec(any::<u8>(), 0..300), any::<bool>(), any::<Option<u64>>(), trace())
            .prop_map(|(topic, payload, durable, ttl_ms, trace)| HostMsg::Publish {
                topic,
                payload,
                durable,
                ttl_ms,
                trace
            }),
        (any::<u32>(), "[a-z.*#]{0,30}", any::<u32>(), 0..3u8, any::<u32>()).prop_map(
            |(sub, pattern, capacity, p, replay)| {
                let policy = [QueuePolicy::DropOldest, QueuePolicy::Backpressure, QueuePolicy::DeadLetter][p as usize];
                HostMsg::Subscribe { sub, pattern, capacity, policy, replay }
            }
        ),
        any::<u32>().prop_map(|sub| HostMsg::Unsubscribe { sub }),
        any::<u64>().prop_map(|nonce| HostMsg::Ping { nonce }),
        any::<u64>().prop_map(|nonce| HostMsg::ProbeAck { nonce }),
        (any::<u64>(), any::<Result<String, String>>()).prop_map(|(id, result)| HostMsg::EvalResult { id, result }),
        (any::<u64>(), ".{0,40}", any::<bool>()).prop_map(|(id, url, new_window)| HostMsg::NavigationRequest {
            id,
            url,
            new_window
        }),
        (".{0,40}", any::<bool>()).prop_map(|(url, done)| HostMsg::PageLoad { url, done }),
        prop::collection::vec(any::<u8>(), 0..100).prop_map(|state| HostMsg::SaveState { state }),
        ("[a-z]{0,10}", "[a-z.]{0,20}", prop::collection::vec(any::<u8>(), 0..100))
            .prop_map(|(app, topic, payload)| HostMsg::Send { app, topic, payload }),
        ("[a-z]{0,10}", prop::collection::vec("[a-z]{0,8}", 0..4))
            .prop_map(|(service, actions)| HostMsg::Serve { service, actions }),
        (any::<u64>(), "[a-z]{0,10}", "[a-z]{0,10}", prop::collection::vec(any::<u8>(), 0..50), any::<u64>()).prop_map(
            |(call, service, action, payload, timeout_ms)| HostMsg::Request {
                call,
                service,
                action,
                payload,
                timeout_ms
            }
        ),
        ("[a-z]{0,10}", any::<u64>(), any::<Result<Vec<u8>, String>>())
            .prop_map(|(service, call, result)| HostMsg::Respond { service, call, result }),
        ".{0,80}".prop_map(|message| HostMsg::Fdc3 { message }),
        Just(HostMsg::CloseSelf),
        ".{0,40}".prop_map(|what| HostMsg::PageRefused { what }),
        (any::<u64>(), prop::collection::vec("[a-z.]{0,12}", 0..3))
            .prop_map(|(id, permissions)| HostMsg::PermissionRequest { id, permissions }),
        (
            prop_oneof![
                Just(ConsoleLevel::Debug),
                Just(ConsoleLevel::Info),
                Just(ConsoleLevel::Warn),
                Just(ConsoleLevel::Error)
            ],
            ".{0,40}"
        )
            .prop_map(|(level, text)| HostMsg::Console { level, text }),
        any::<u32>().prop_map(|pid| HostMsg::WebProcess { pid }),
        ".{0,30}".prop_map(|reason| HostMsg::WebProcessEnded { reason }),
    ]
}

fn group_msg() -> impl Strategy<Value = GroupMsg> {
    prop_oneof![
        (".{0,20}", prop::collection::vec(".{0,30}", 0..12)).prop_map(|(label, args)| GroupMsg::Open { label, args }),
        any::<u64>().prop_map(|nonce| GroupMsg::Ping { nonce }),
    ]
}

fn group_reply() -> impl Strategy<Value = GroupReply> {
    prop_oneof![
        any::<u64>().prop_map(|nonce| GroupReply::Pong { nonce }),
        (".{0,20}", ".{0,40}").prop_map(|(label, error)| GroupReply::Refused { label, error }),
    ]
}

fn shell_msg() -> impl Strategy<Value = ShellMsg> {
    prop_oneof![
        any::<u64>().prop_map(|client| ShellMsg::Welcome { client }),
        any::<u64>().prop_map(|nonce| ShellMsg::Probe { nonce }),
        (any::<i32>(), any::<i32>(), any::<u32>(), any::<u32>())
            .prop_map(|(x, y, width, height)| ShellMsg::SetBounds(Bounds { x, y, width, height })),
        any::<bool>().prop_map(ShellMsg::SetVisible),
        (any::<u64>(), ".{0,60}").prop_map(|(id, js)| ShellMsg::Eval { id, js }),
        (any::<u64>(), any::<bool>()).prop_map(|(id, allow)| ShellMsg::NavigationDecision { id, allow }),
        (".{0,20}", ".{0,40}").prop_map(|(context, error)| ShellMsg::Refused { context, error }),
        ("[a-z.]{0,20}", prop::collection::vec(any::<u8>(), 0..50), any::<Option<String>>(), any::<u64>())
            .prop_map(|(topic, payload, sender_app, seq)| ShellMsg::Direct { topic, payload, sender_app, seq }),
        (
            "[a-z]{0,10}",
            any::<u64>(),
            "[a-z]{0,10}",
            prop::collection::vec(any::<u8>(), 0..50),
            any::<Option<String>>()
        )
            .prop_map(|(service, call, action, payload, caller_app)| ShellMsg::Call {
                service,
                call,
                action,
                payload,
                caller_app
            }),
        (any::<u64>(), any::<Result<Vec<u8>, String>>()).prop_map(|(call, result)| ShellMsg::Response { call, result }),
        ".{0,80}".prop_map(|message| ShellMsg::Fdc3 { message }),
        (any::<u64>(), any::<bool>()).prop_map(|(id, allow)| ShellMsg::PermissionDecision { id, allow }),
        any::<u64>().prop_map(|xid| ShellMsg::SetParent { xid }),
    ]
}

proptest! {
    #[test]
    fn host_messages_round_trip(msg in host_msg()) {
        let mut buf = Vec::new();
        encode(&msg, &mut buf).unwrap();
        prop_assert_eq!(decode::<HostMsg>(&buf).unwrap(), msg);
    }

    #[test]
    fn shell_messages_round_trip(msg in shell_msg()) {
        let mut buf = Vec::new();
        encode(&msg, &mut buf).unwrap();
        prop_assert_eq!(decode::<ShellMsg>(&buf).unwrap(), msg);
    }

    #[test]
    fn deliveries_round_trip(sub in any::<u32>(), seq in any::<u64>(), topic in "[a-z.]{1,20}",
                             payload in prop::collection::vec(any::<u8>(), 0..300), ts in any::<u64>(), sender in any::<u64>(),
                             trace in trace()) {
        let msg = ShellMsg::Deliver { sub, seq, topic, payload, timestamp_us: ts, sender, trace };
        let mut buf = Vec::new();
        encode(&msg, &mut buf).unwrap();
        prop_assert_eq!(decode::<ShellMsg>(&buf).unwrap(), msg);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = decode::<HostMsg>(&bytes);
        let _ = decode::<ShellMsg>(&bytes);
    }
}

#[test]
fn trailing_bytes_are_refused() {
    let mut buf = Vec::new();
    encode(&HostMsg::Ping { nonce: 1 }, &mut buf).unwrap();
    buf.push(0);
    assert!(decode::<HostMsg>(&buf).is_err());
}

proptest! {
    #[test]
    fn group_messages_round_trip(msg in group_msg(), reply in group_reply()) {
        let mut buf = Vec::new();
        encode(&msg, &mut buf).unwrap();
        prop_assert_eq!(decode::<GroupMsg>(&buf).unwrap(), msg);
        let mut buf = Vec::new();
        encode(&reply, &mut buf).unwrap();
        prop_assert_eq!(decode::<GroupReply>(&buf).unwrap(), reply);
    }

    #[test]
    fn group_replies_never_panic_on_garbage(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = decode::<GroupReply>(&bytes);
        let _ = decode::<GroupMsg>(&bytes);
    }
}
