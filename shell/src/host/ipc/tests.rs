use std::io::Write;
use std::os::unix::net::UnixStream as StdUnixStream;

use super::*;
use app_host::HostConnection;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// Starts `serve` for one end of a socketpair and returns the other end.
fn connect(rt: &tokio::runtime::Runtime, broker: &Broker) -> (StdUnixStream, tokio::task::JoinHandle<Result<()>>) {
    let (ours, theirs) = StdUnixStream::pair().unwrap();
    ours.set_nonblocking(true).unwrap();
    let broker = broker.clone();
    let task = rt.spawn(async move {
        let stream = UnixStream::from_std(ours).unwrap();
        serve(broker, stream, Some(AppId::new("test-app"))).await
    });
    (theirs, task)
}

#[test]
fn a_host_publishes_and_receives_through_the_broker() {
    let rt = runtime();
    let broker = Broker::default();
    let (stream, _task) = connect(&rt, &broker);
    let mut host = HostConnection::new(stream).unwrap();
    assert!(matches!(host.recv().unwrap(), Some(ShellMsg::Welcome { .. })));
    host.send(&HostMsg::Subscribe {
        sub: 7,
        pattern: "news.*".into(),
        capacity: 16,
        policy: broker::QueuePolicy::DeadLetter,
        replay: 0,
    })
    .unwrap();
    host.send(&HostMsg::Ping { nonce: 1 }).unwrap();
    host.flush().unwrap();
    assert_eq!(host.recv().unwrap(), Some(ShellMsg::Pong { nonce: 1 }), "subscribed before the pong");
    // Another client publishes; the host gets it, stamped with the sender the broker knows.
    let other = broker.connect(None);
    other.publish("news.fx", "eurusd", MessageOptions::default()).unwrap();
    let Some(ShellMsg::Deliver { sub, topic, payload, sender, .. }) = host.recv().unwrap() else { panic!() };
    assert_eq!((sub, topic.as_str(), payload.as_slice(), sender), (7, "news.fx", &b"eurusd"[..], other.id().0));
    // The host publishes; a subscriber in the shell sees the host's identity, not a claimed one.
    let seen = other.subscribe("orders.#", broker::SubscribeOptions::default()).unwrap();
    host.send(&HostMsg::Publish {
        topic: "orders.new".into(),
        payload: b"1".to_vec(),
        durable: false,
        ttl_ms: None,
        trace: None,
    })
    .unwrap();
    host.send(&HostMsg::Publish {
        topic: "bad..topic".into(),
        payload: vec![],
        durable: false,
        ttl_ms: None,
        trace: None,
    })
    .unwrap();
    host.flush().unwrap();
    let Recv::Message(d) = seen.recv_timeout(std::time::Duration::from_secs(5)) else { panic!() };
    assert_eq!(d.envelope.sender.app, Some(AppId::new("test-app")));
    let Some(ShellMsg::Refused { context, error }) = host.recv().unwrap() else { panic!() };
    assert!(context.contains("bad..topic") && error.contains("empty"), "{context}: {error}");
}

use broker::Recv;

#[test]
fn a_subscription_can_start_with_history() {
    let rt = runtime();
    let broker = Broker::default();
    let other = broker.connect(None);
    for (topic, n) in [("px.a", 1), ("px.a", 2), ("px.a", 3), ("px.b", 10)] {
        other.publish(topic, format!("{n}"), MessageOptions::default()).unwrap();
    }
    let (stream, _task) = connect(&rt, &broker);
    let mut host = HostConnection::new(stream).unwrap();
    assert!(matches!(host.recv().unwrap(), Some(ShellMsg::Welcome { .. })));
    let mut seen = |sub: u32, replay: u32, want: &[&str]| {
        let policy = broker::QueuePolicy::DropOldest;
        host.send(&HostMsg::Subscribe { sub, pattern: "px.*".into(), capacity: 16, policy, replay }).unwrap();
        host.send(&HostMsg::Ping { nonce: u64::from(sub) }).unwrap();
        host.flush().unwrap();
        // Replayed messages may come before or after the pong (the subscription forwards them
        // on its own task); once the pong is in, the subscription exists, and a live message
        // after the history marks its end.
        let mut got = Vec::new();
        let mut marked = false;
        loop {
            match host.recv().unwrap() {
                Some(ShellMsg::Pong { .. }) if !marked => {
                    marked = true;
                    other.publish("px.end", format!("{sub}"), MessageOptions::default()).unwrap();
                }
                Some(ShellMsg::Deliver { sub: s, topic, payload, .. }) if s == sub => {
                    if topic == "px.end" {
                        if payload == format!("{sub}").as_bytes() {
                            break;
                        }
                        continue; // an earlier marker, replayed
                    }
                    got.push(format!("{topic}={}", String::from_utf8_lossy(&payload)));
                }
                Some(ShellMsg::Deliver { .. }) => {} // an earlier subscription's copy
                other => panic!("{other:?}"),
            }
        }
        got.sort();
        assert_eq!(got, want, "replay {replay}");
    };
    seen(1, 0, &[]);
    seen(2, 1, &["px.a=3", "px.b=10"]);
    seen(3, 2, &["px.a=2", "px.a=3", "px.b=10"]);
}

#[test]
fn a_malformed_frame_closes_the_connection() {
    let rt = runtime();
    let broker = Broker::default();
    for garbage in [
        u32::MAX.to_le_bytes().to_vec(),                    // oversize length
        vec![6, 0, 0, 0, 9, 1, 0, 0, 0, 0],                 // unknown frame version
        vec![10, 0, 0, 0, 1, 1, 0, 0, 0, 1, 0, 0, 0, 0xff], // a message that does not decode
    ] {
        let (mut stream, task) = connect(&rt, &broker);
        stream.write_all(&garbage).unwrap();
        let result = rt.block_on(task).unwrap();
        assert!(result.is_err(), "{garbage:?} was accepted");
        assert_eq!(broker.stats().clients, 0, "the connection's client is gone");
    }
}

#[test]
fn the_host_side_sees_the_shell_hang_up() {
    let rt = runtime();
    let broker = Broker::default();
    let (stream, task) = connect(&rt, &broker);
    let mut host = HostConnection::new(stream).unwrap();
    assert!(matches!(host.recv().unwrap(), Some(ShellMsg::Welcome { .. })));
    task.abort();
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    assert_eq!(host.recv().unwrap(), None);
}
