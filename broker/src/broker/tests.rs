use std::sync::Arc;
use std::thread;
use std::time::Duration;

use super::*;
use crate::clock::{ManualClock, Timestamp};
use crate::config::{BreakerPolicy, RetryPolicy};
use crate::config::{HistoryRule, Replay};
use crate::dead_letter::DeadLetterReason;
use crate::ids::{MessageId, TraceId};
use crate::service_event::{ProviderEvent, ServiceEvent};
use crate::state::SendOutcome;
use crate::topic::TopicError;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn manual() -> (Broker, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(Timestamp(1_000_000_000)));
    (Broker::with_clock(BrokerConfig::default(), clock.clone()), clock)
}

fn opts() -> MessageOptions {
    MessageOptions::default()
}

fn text(d: &Delivery) -> &str {
    std::str::from_utf8(d.envelope.payload.as_bytes()).unwrap()
}

fn drain(sub: &Subscription) -> Vec<String> {
    std::iter::from_fn(|| sub.try_recv()).map(|d| text(&d).to_owned()).collect()
}

#[test]
fn routes_to_matching_subscribers_only() {
    let b = Broker::default();
    let c = b.connect(None);
    let all = c.subscribe("prices.#", SubscribeOptions::default()).unwrap();
    let aapl = c.subscribe("prices.*.aapl", SubscribeOptions::default()).unwrap();
    let news = c.subscribe("*.news.*", SubscribeOptions::default()).unwrap();
    let p = c.publish("prices.xnas.aapl", "1", opts()).unwrap();
    assert_eq!(p.delivered, 2);
    c.publish("prices.xnas.msft", "2", opts()).unwrap();
    c.publish("eq.news.aapl", "3", opts()).unwrap();
    assert_eq!(drain(&all), ["1", "2"]);
    assert_eq!(drain(&aapl), ["1"]);
    assert_eq!(drain(&news), ["3"]);
}

#[test]
fn envelope_is_shared_and_stamped_by_the_broker() {
    let b = Broker::default();
    let app = AppId::new("blotter");
    let publisher = b.connect(Some(app.clone()));
    let c = b.connect(None);
    let s1 = c.subscribe("a.#", SubscribeOptions::default()).unwrap();
    let s2 = c.subscribe("a.b", SubscribeOptions::default()).unwrap();
    let trace = TraceId(42);
    let p = publisher.publish("a.b", r#"{"sender":"someone-else"}"#, opts().trace(trace).ttl(ms(60_000))).unwrap();
    let (d1, d2) = (s1.try_recv().unwrap(), s2.try_recv().unwrap());
    assert!(Arc::ptr_eq(&d1.envelope, &d2.envelope), "one envelope for all receivers");
    assert!(Payload::ptr_eq(&d1.envelope.payload, &d2.envelope.payload));
    let env = &d1.envelope;
    assert_eq!(env.id, p.id);
    assert_eq!(env.sender, Sender { client: publisher.id(), app: Some(app) });
    assert_eq!(env.trace_id, trace);
    assert!(env.expires_at.is_some_and(|at| at > env.timestamp));
    assert!(!env.durable);
    let p2 = publisher.publish("a.b", "x", opts()).unwrap();
    assert_ne!(p2.id, p.id);
    assert_eq!(s1.try_recv().unwrap().envelope.trace_id, TraceId(p2.id.0), "a new trace starts at the message id");
}

#[test]
fn message_ids_carry_the_epoch() {
    let b = Broker::new(BrokerConfig { epoch: 7, ..BrokerConfig::default() });
    let c = b.connect(None);
    let p = c.publish("a", "x", opts()).unwrap();
    assert_eq!(p.id.0 >> 64, 7);
    assert_eq!(p.id.to_string().len(), 32);
    assert_eq!(p.id.to_string().parse::<MessageId>().unwrap(), p.id);
}

#[test]
fn bad_input_is_rejected_typed_and_counted() {
    let b = Broker::new(BrokerConfig { max_payload_bytes: 8, ..BrokerConfig::default() });
    let c = b.connect(None);
    assert!(matches!(c.publish("a..b", "x", opts()), Err(Error::InvalidTopic { .. })));
    assert!(matches!(c.publish("a.#", "x", opts()), Err(Error::InvalidTopic { .. })));
    assert!(matches!(c.subscribe("a.b#", SubscribeOptions::default()), Err(Error::InvalidPattern { .. })));
    assert_eq!(c.publish("a", "123456789", opts()).unwrap_err(), Error::PayloadTooLarge { size: 9, limit: 8 });
    let long = "x".repeat(5000);
    let Err(Error::InvalidTopic { topic, .. }) = c.publish(&long, "x", opts()) else { panic!() };
    assert!(topic.len() < 100, "errors do not echo huge input back");
    let s = b.stats();
    assert_eq!((s.rejected_topic, s.rejected_payload, s.published), (4, 1, 0));
}

#[test]
fn drop_oldest_keeps_the_newest() {
    let b = Broker::default();
    let c = b.connect(None);
    let s = c.subscribe("t", SubscribeOptions::default().capacity(3).policy(QueuePolicy::DropOldest)).unwrap();
    for i in 0..10 {
        c.publish("t", i.to_string(), opts()).unwrap();
    }
    assert_eq!(drain(&s), ["7", "8", "9"]);
    let st = b.subscription_stats(s.id()).unwrap();
    assert_eq!((st.delivered, st.dropped_oldest), (10, 7));
    assert_eq!(b.stats().dropped_oldest, 7);
}

#[test]
fn dead_letter_policy_moves_overflow_to_the_dlq() {
    let b = Broker::default();
    let c = b.connect(None);
    let s = c.subscribe("t", SubscribeOptions::default().capacity(2).policy(QueuePolicy::DeadLetter)).unwrap();
    for i in 0..5 {
        c.publish("t", i.to_string(), opts()).unwrap();
    }
    assert_eq!(drain(&s), ["0", "1"]);
    let dead = b.dead_letters();
    assert_eq!(dead.len(), 3);
    assert!(dead.iter().all(|d| d.reason == DeadLetterReason::QueueFull));
    assert_eq!(dead[0].recipient, Recipient::Subscription { id: s.id() });
    // Re-queue puts it back into the same subscription.
    b.requeue_dead_letter(dead[0].id).unwrap();
    assert_eq!(drain(&s), ["2"]);
    assert_eq!(b.dead_letters().len(), 2);
    assert_eq!(b.requeue_dead_letter(dead[0].id), Err(Error::NoSuchDeadLetter { id: dead[0].id }));
    assert_eq!(b.subscription_stats(s.id()).unwrap().dead_lettered, 3);
}

#[test]
fn backpressure_refuses_the_whole_publish_then_waits() {
    let b = Broker::default();
    let publisher = b.connect(None);
    let c = b.connect(None);
    let slow = c.subscribe("t", SubscribeOptions::default().capacity(2).policy(QueuePolicy::Backpressure)).unwrap();
    let other = c.subscribe("t", SubscribeOptions::default()).unwrap();
    publisher.publish("t", "0", opts()).unwrap();
    publisher.publish("t", "1", opts()).unwrap();
    assert_eq!(publisher.publish("t", "2", opts()).unwrap_err(), Error::Backpressure { subscription: slow.id() });
    assert_eq!(other.len(), 2, "a refused publish reaches nobody");
    assert_eq!(b.subscription_stats(slow.id()).unwrap().backpressured, 1);
    // Times out while nobody reads.
    let err = publisher.publish_blocking("t", "2", opts(), ms(30)).unwrap_err();
    assert!(matches!(err, Error::Backpressure { .. }));
    // A reader on another thread makes room; the blocked publisher goes on.
    let reader = thread::spawn(move || {
        thread::sleep(ms(50));
        let mut got = Vec::new();
        while got.len() < 5 {
            if let Recv::Message(d) = slow.recv_timeout(ms(2000)) {
                got.push(text(&d).to_owned());
            } else {
                break;
            }
        }
        got
    });
    for i in 2..5 {
        publisher.publish_blocking("t", i.to_string(), opts(), ms(5000)).unwrap();
    }
    assert_eq!(reader.join().unwrap(), ["0", "1", "2", "3", "4"]);
    assert_eq!(drain(&other), ["0", "1", "2", "3", "4"]);
}

#[test]
fn backpressure_wakes_when_the_subscriber_leaves() {
    let b = Broker::default();
    let publisher = b.connect(None);
    let c = b.connect(None);
    let slow = c.subscribe("t", SubscribeOptions::default().capacity(1).policy(QueuePolicy::Backpressure)).unwrap();
    publisher.publish("t", "0", opts()).unwrap();
    let t = thread::spawn(move || {
        thread::sleep(ms(50));
        drop(slow);
    });
    publisher.publish_blocking("t", "1", opts(), ms(5000)).unwrap();
    t.join().unwrap();
}

#[test]
fn history_and_last_value_replay_to_new_subscribers() {
    let cfg = BrokerConfig {
        history_depth: 3,
        history_rules: vec![HistoryRule { pattern: Pattern::parse("ticks.#").unwrap(), depth: 0 }],
        ..BrokerConfig::default()
    };
    let b = Broker::new(cfg);
    let c = b.connect(None);
    for i in 0..5 {
        c.publish("news.a", format!("a{i}"), opts()).unwrap();
        c.publish("news.b", format!("b{i}"), opts()).unwrap();
        c.publish("ticks.x", format!("t{i}"), opts()).unwrap();
    }
    let h: Vec<_> = b.history("news.a").iter().map(|e| e.payload.as_bytes().to_vec()).collect();
    assert_eq!(h, [b"a2".to_vec(), b"a3".to_vec(), b"a4".to_vec()]);
    assert!(b.history("ticks.x").is_empty(), "rule sets depth 0");
    assert_eq!(b.last_value("ticks.x").unwrap().payload.as_bytes(), b"t4");

    let all = c.subscribe("#", SubscribeOptions::default().replay(Replay::History { per_topic: 2 })).unwrap();
    c.publish("news.a", "live", opts()).unwrap();
    let got = drain(&all);
    assert_eq!(got, ["a3", "b3", "a4", "b4", "t4", "live"], "history in publish order, then live");

    let last = c.subscribe("news.*", SubscribeOptions::default().replay(Replay::LastValue)).unwrap();
    let first = last.try_recv().unwrap();
    assert!(first.replayed);
    assert_eq!(text(&first), "b4");
    assert_eq!(drain(&last), ["live"]);

    let replay: Vec<_> = c.replay("news.b", 10).unwrap().iter().map(|e| e.payload.as_bytes().to_vec()).collect();
    assert_eq!(replay.len(), 3);
}

#[test]
fn history_is_bounded_in_topics_and_bytes() {
    let cfg = BrokerConfig { max_history_topics: 100, max_history_bytes: 10_000, ..BrokerConfig::default() };
    let b = Broker::new(cfg);
    let c = b.connect(None);
    for i in 0..1000 {
        c.publish(&format!("t.{i}"), "x", opts()).unwrap();
    }
    let s = b.stats();
    assert!(s.history_topics <= 100, "{}", s.history_topics);
    assert!(s.history_topics_evicted >= 900);
    assert!(b.last_value("t.999").is_some(), "the newest topics stay");
    for i in 0..100 {
        c.publish("big", vec![0u8; 500], opts()).unwrap();
        assert!(b.stats().history_bytes <= 10_000, "round {i}");
    }
}

#[test]
fn ttl_expiry_dead_letters_in_queue() {
    let (b, clock) = manual();
    let c = b.connect(None);
    let s = c.subscribe("t", SubscribeOptions::default()).unwrap();
    c.publish("t", "short", opts().ttl(ms(100))).unwrap();
    c.publish("t", "long", opts().ttl(ms(10_000))).unwrap();
    clock.advance(ms(500));
    assert_eq!(drain(&s), ["long"]);
    let dead = b.dead_letters();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].reason, DeadLetterReason::Expired);
    assert_eq!(b.stats().expired, 1);
}

#[test]
fn dead_letter_queue_is_bounded() {
    let b = Broker::new(BrokerConfig { dead_letter_capacity: 10, ..BrokerConfig::default() });
    let c = b.connect(None);
    for i in 0..25 {
        let _ = c.send(&Target::Client(ClientId(9999)), "x", i.to_string(), opts());
    }
    let dead = b.dead_letters();
    assert_eq!(dead.len(), 10);
    assert_eq!(dead[0].envelope.payload.as_bytes(), b"15", "oldest evicted first");
    assert!(dead.iter().all(|d| d.reason == DeadLetterReason::NoRoute));
    let s = b.stats();
    assert_eq!((s.dead_lettered, s.dead_letters_evicted), (25, 15));
}

#[test]
fn rejected_messages_are_dead_lettered() {
    let b = Broker::default();
    let c = b.connect(None);
    let s = c.subscribe("t", SubscribeOptions::default()).unwrap();
    c.publish("t", "bad", opts()).unwrap();
    s.reject(s.try_recv().unwrap(), "cannot parse");
    let dead = b.dead_letters();
    assert_eq!(dead[0].reason, DeadLetterReason::Rejected { detail: "cannot parse".into() });
    b.requeue_dead_letter(dead[0].id).unwrap();
    assert_eq!(drain(&s), ["bad"]);
}

#[test]
fn directed_sends_reach_clients_and_apps() {
    let b = Broker::default();
    let sender = b.connect(None);
    let first = b.connect(Some(AppId::new("chart")));
    let second = b.connect(Some(AppId::new("chart")));
    assert_eq!(
        sender.send(&Target::App(AppId::new("chart")), "cmd", "hi", opts()).unwrap().outcome,
        SendOutcome::Delivered(first.id())
    );
    assert_eq!(
        sender.send(&Target::Client(second.id()), "cmd", "you", opts()).unwrap().outcome,
        SendOutcome::Delivered(second.id())
    );
    let Recv::Message(d) = first.inbox().recv_timeout(ms(100)) else { panic!() };
    assert_eq!(text(&d), "hi");
    assert_eq!(d.envelope.target, Some(Target::App(AppId::new("chart"))));
    assert_eq!(text(&second.inbox().try_recv().unwrap()), "you");
    // Unknown app: no route, dead-lettered.
    let err = sender.send(&Target::App(AppId::new("nope")), "cmd", "x", opts()).unwrap_err();
    assert_eq!(err, Error::NoRoute { target: Target::App(AppId::new("nope")) });
    assert_eq!(b.dead_letters()[0].reason, DeadLetterReason::NoRoute);
}

#[test]
fn offline_queue_delivers_in_order_on_connect() {
    let (b, clock) = manual();
    let app = AppId::new("risk");
    b.register_app(app.clone());
    let sender = b.connect(None);
    let target = Target::App(app.clone());
    for i in 0..5 {
        assert_eq!(sender.send(&target, "cmd", i.to_string(), opts()).unwrap().outcome, SendOutcome::Queued);
    }
    sender.send(&target, "cmd", "stale", opts().ttl(ms(10))).unwrap();
    assert_eq!(b.stats().offline_waiting, 6);
    clock.advance(ms(20));
    let risk = b.connect(Some(app.clone()));
    // The send after connect lands after the queued ones.
    sender.send(&target, "cmd", "5", opts()).unwrap();
    let got: Vec<String> = std::iter::from_fn(|| risk.inbox().try_recv()).map(|d| text(&d).to_owned()).collect();
    assert_eq!(got, ["0", "1", "2", "3", "4", "5"]);
    assert_eq!(b.dead_letters()[0].reason, DeadLetterReason::Expired);
    drop(risk);
    // The offline queue is bounded and its default TTL applies.
    let b = Broker::with_clock(BrokerConfig { offline_capacity: 2, ..BrokerConfig::default() }, clock.clone());
    b.register_app(app.clone());
    let sender = b.connect(None);
    sender.send(&target, "cmd", "a", opts()).unwrap();
    sender.send(&target, "cmd", "b", opts()).unwrap();
    assert!(matches!(sender.send(&target, "cmd", "c", opts()), Err(Error::QueueFull { .. })));
    clock.advance(Duration::from_secs(301));
    assert!(!b.sweep(), "nothing waits once the queue has expired");
    assert_eq!(b.stats().offline_waiting, 0);
    assert_eq!(b.dead_letters().iter().filter(|d| d.reason == DeadLetterReason::Expired).count(), 2);
}

#[test]
fn full_inbox_retries_then_dead_letters_and_trips_the_breaker() {
    let clock = Arc::new(ManualClock::new(Timestamp(1_000_000_000)));
    let cfg = BrokerConfig {
        inbox_capacity: 1,
        offline_capacity: 1,
        retry: RetryPolicy { attempts: 3, base_delay: ms(1), max_delay: ms(2) },
        breaker: BreakerPolicy { failure_threshold: 3, cooldown: ms(1000) },
        ..BrokerConfig::default()
    };
    let b = Broker::with_clock(cfg, clock.clone());
    let sender = b.connect(None);
    let target_client = b.connect(None);
    let target = Target::Client(target_client.id());
    sender.send(&target, "cmd", "fills the inbox", opts()).unwrap();
    // Three tries, three failures: dead-lettered, and the breaker is now open.
    assert!(matches!(sender.send(&target, "cmd", "x", opts()), Err(Error::QueueFull { .. })));
    assert_eq!(b.dead_letters().len(), 1);
    let Err(Error::CircuitOpen { retry_in_ms, .. }) = sender.send(&target, "cmd", "y", opts()) else { panic!() };
    assert_eq!(retry_in_ms, 1000);
    // After the cool-down a probe goes through, succeeds, and closes the breaker.
    target_client.inbox().try_recv().unwrap();
    clock.advance(ms(1000));
    sender.send(&target, "cmd", "probe", opts()).unwrap();
    assert_eq!(b.stats().open_breakers, 0);
}

#[test]
fn send_retry_succeeds_when_room_appears() {
    let cfg = BrokerConfig {
        inbox_capacity: 1,
        offline_capacity: 1,
        retry: RetryPolicy { attempts: 20, base_delay: ms(2), max_delay: ms(10) },
        ..BrokerConfig::default()
    };
    let b = Broker::new(cfg);
    let sender = b.connect(None);
    let receiver = b.connect(None);
    let target = Target::Client(receiver.id());
    sender.send(&target, "cmd", "1", opts()).unwrap();
    let reader = thread::spawn(move || {
        thread::sleep(ms(20));
        let first = receiver.inbox().recv_timeout(ms(1000));
        let second = receiver.inbox().recv_timeout(ms(2000));
        (first, second)
    });
    sender.send(&target, "cmd", "2", opts()).unwrap();
    let (a, c) = reader.join().unwrap();
    assert!(matches!(a, Recv::Message(ref d) if text(d) == "1"));
    assert!(matches!(c, Recv::Message(ref d) if text(d) == "2"));
    assert!(b.dead_letters().is_empty());
}

#[test]
fn services_answer_time_out_and_fail_on_disconnect() {
    let b = Broker::default();
    let provider_client = b.connect(Some(AppId::new("pricer")));
    let provider = provider_client.serve("pricing", &["quote"]).unwrap();
    assert!(matches!(b.connect(None).serve("pricing", &[]), Err(Error::ServiceExists { .. })));
    let caller = b.connect(Some(AppId::new("blotter")));
    assert!(matches!(caller.connect_service("nope"), Err(Error::NoSuchService { .. })));
    let svc = caller.connect_service("pricing").unwrap();
    let Ok(ProviderEvent::Connected(who)) = provider.recv() else { panic!() };
    assert_eq!(who, caller.id());

    let server = thread::spawn(move || {
        // Answer the first call, ignore the second (so it times out), then leave.
        let Ok(ProviderEvent::Request(r)) = provider.recv() else { panic!() };
        assert_eq!(r.caller_app, Some(AppId::new("blotter")));
        assert_eq!(r.action, "quote");
        let mut answer = r.payload.as_bytes().to_vec();
        answer.extend_from_slice(b"=101.5");
        assert!(provider.respond(r.call, Ok(answer.into())));
        let Ok(ProviderEvent::Request(late)) = provider.recv() else { panic!() };
        thread::sleep(ms(150));
        assert!(!provider.respond(late.call, Ok("late".into())), "the caller gave up");
        let Ok(ProviderEvent::Request(_third)) = provider.recv() else { panic!() };
        drop(provider);
    });
    assert_eq!(svc.call("quote", "AAPL", ms(2000)).unwrap().as_bytes(), b"AAPL=101.5");
    assert_eq!(svc.call("quote", "MSFT", ms(50)), Err(Error::Timeout { after_ms: 50 }));
    assert!(matches!(svc.dispatch("hedge", "x", ms(50)), Err(Error::NoSuchAction { .. })));
    let pending = svc.dispatch("quote", "IBM", ms(5000)).unwrap();
    assert_eq!(pending.wait(), Err(Error::ProviderDisconnected { service: "pricing".into() }));
    server.join().unwrap();
    assert_eq!(svc.events().recv_timeout(ms(100)), Ok(ServiceEvent::ProviderDisconnected));
    assert!(matches!(svc.dispatch("quote", "x", ms(50)), Err(Error::ProviderDisconnected { .. })));
    let s = b.stats();
    assert_eq!((s.calls, s.calls_timed_out, s.late_responses, s.services), (3, 1, 1, 0));
    // The name is free again.
    let _again = provider_client.serve("pricing", &[]).unwrap();
}

#[test]
fn sweep_times_out_async_style_calls() {
    let (b, clock) = manual();
    let p = b.connect(None);
    let provider = p.serve("svc", &[]).unwrap();
    let c = b.connect(None);
    let svc = c.connect_service("svc").unwrap();
    // Nothing waits on a deadline yet; a call wakes whoever listened for one.
    let added = b.deadline_added();
    assert!(!b.sweep());
    let pending = svc.dispatch("any", "x", ms(100)).unwrap();
    assert!(event_listener::Listener::wait_timeout(added, std::time::Duration::from_secs(5)).is_some());
    assert!(b.sweep(), "the call waits on its deadline");
    clock.advance(ms(101));
    assert!(!b.sweep());
    // `wait` would also time out on its own; the sweep already failed it.
    assert_eq!(pending.wait(), Err(Error::Timeout { after_ms: 100 }));
    assert_eq!(b.stats().calls_in_flight, 0);
    drop(provider);
}

#[test]
fn service_clients_connecting_and_leaving_are_announced() {
    let b = Broker::default();
    let p = b.connect(None);
    let provider = p.serve("svc", &[]).unwrap();
    let c = b.connect(None);
    let svc = c.connect_service("svc").unwrap();
    drop(svc);
    let svc2 = c.connect_service("svc").unwrap();
    drop(c);
    let events: Vec<String> = std::iter::from_fn(|| provider.recv_timeout(ms(10)).ok().flatten())
        .map(|e| match e {
            ProviderEvent::Connected(_) => "connected".to_owned(),
            ProviderEvent::Disconnected(_) => "disconnected".to_owned(),
            ProviderEvent::Request(_) => "request".to_owned(),
        })
        .collect();
    assert_eq!(events, ["connected", "disconnected", "connected", "disconnected"]);
    drop(svc2);
}

#[test]
fn disconnect_removes_everything_the_client_added() {
    let b = Broker::default();
    let c = b.connect(Some(AppId::new("x")));
    let s = c.subscribe("a.*.#", SubscribeOptions::default()).unwrap();
    let _s2 = c.subscribe("b", SubscribeOptions::default().policy(QueuePolicy::Backpressure)).unwrap();
    let _svc = c.serve("svc", &[]).unwrap();
    let other = b.connect(None);
    other.publish("a.b.c", "x", opts()).unwrap();
    drop(c);
    let st = b.stats();
    assert_eq!((st.clients, st.subscriptions, st.services), (1, 0, 0));
    assert_eq!(st.router.nodes, 1);
    // The handle still drains what was queued, then reports closed.
    assert!(s.try_recv().is_some());
    assert!(matches!(s.recv_timeout(ms(10)), Recv::Closed));
    assert_eq!(other.publish("a.b.c", "x", opts()).unwrap().delivered, 0);
}

#[derive(Debug, Default)]
struct MemoryJournal {
    entries: parking_lot::Mutex<Vec<MessageId>>,
}

impl crate::journal::Journal for MemoryJournal {
    fn append(&self, envelope: &Arc<Envelope>) -> Result<crate::journal::CommitAck> {
        let (signal, ack) = crate::journal::CommitAck::pair();
        let mut entries = self.entries.lock();
        entries.push(envelope.id);
        signal.complete(Ok(entries.len() as u64));
        Ok(ack)
    }
}

#[test]
fn durable_publishes_go_through_the_journal() {
    let b = Broker::default();
    let c = b.connect(None);
    assert_eq!(c.publish("a", "x", opts().durable()).unwrap_err(), Error::NoJournal);
    let journal = Arc::new(MemoryJournal::default());
    b.attach_journal(journal.clone());
    let p = c.publish("a", "x", opts().durable()).unwrap();
    assert_eq!(p.commit.unwrap().wait(ms(1000)), Ok(1));
    assert!(c.publish("a", "y", opts()).unwrap().commit.is_none());
    assert_eq!(*journal.entries.lock(), [p.id]);
}

#[test]
fn ordering_holds_across_threads() {
    // Four publishers on their own threads, one subscriber per policy that cannot lose
    // messages; each sees every publisher's messages in order.
    let b = Broker::default();
    let sub_client = b.connect(None);
    let subs = [
        sub_client
            .subscribe("o.#", SubscribeOptions::default().capacity(64).policy(QueuePolicy::Backpressure))
            .unwrap(),
        sub_client.subscribe("o.*", SubscribeOptions::default().capacity(100_000)).unwrap(),
    ];
    const N: u32 = 5000;
    let publishers: Vec<_> = (0..4)
        .map(|p| {
            let b = b.clone();
            thread::spawn(move || {
                let c = b.connect(None);
                for i in 0..N {
                    c.publish_blocking(&format!("o.{}", p % 2), format!("{p}:{i}"), opts(), Duration::from_secs(30))
                        .unwrap();
                }
            })
        })
        .collect();
    let mut last = [[None::<u32>; 4]; 2];
    let mut count = [0u32; 2];
    while count[0] < 4 * N {
        for (k, s) in subs.iter().enumerate() {
            while let Some(d) = s.try_recv() {
                let (p, i) = text(&d).split_once(':').unwrap();
                let (p, i): (usize, u32) = (p.parse().unwrap(), i.parse().unwrap());
                assert!(
                    last[k][p].is_none_or(|prev| prev + 1 == i),
                    "sub {k} publisher {p}: {:?} then {i}",
                    last[k][p]
                );
                last[k][p] = Some(i);
                count[k] += 1;
            }
        }
        thread::yield_now();
    }
    for h in publishers {
        h.join().unwrap();
    }
    count[1] += std::iter::from_fn(|| subs[1].try_recv()).count() as u32;
    assert_eq!(count, [4 * N, 4 * N]);
}

#[test]
fn limits_protect_the_broker_from_a_hostile_client() {
    let cfg = BrokerConfig { max_subscriptions_per_client: 3, max_calls_in_flight: 2, ..BrokerConfig::default() };
    let b = Broker::new(cfg);
    let c = b.connect(None);
    for bad in [0, (1 << 20) + 1] {
        let err = c.subscribe("a", SubscribeOptions::default().capacity(bad)).unwrap_err();
        assert!(matches!(err, Error::InvalidOption { ref reason } if reason.contains("capacity")), "{err}");
    }
    let _subs: Vec<_> = (0..3).map(|_| c.subscribe("a", SubscribeOptions::default()).unwrap()).collect();
    assert_eq!(
        c.subscribe("a", SubscribeOptions::default()).unwrap_err(),
        Error::LimitExceeded { what: "subscriptions per client".into(), limit: 3 }
    );
    // Another client is not affected.
    let other = b.connect(None);
    let _ok = other.subscribe("a", SubscribeOptions::default()).unwrap();

    let _provider = other.serve("svc", &[]).unwrap();
    let svc = c.connect_service("svc").unwrap();
    let _p1 = svc.dispatch("x", "1", ms(10_000)).unwrap();
    let _p2 = svc.dispatch("x", "2", ms(10_000)).unwrap();
    assert!(matches!(svc.dispatch("x", "3", ms(10_000)), Err(Error::LimitExceeded { .. })));
    drop(_p1);
    svc.dispatch("x", "4", ms(10_000)).unwrap();
}

#[test]
fn expired_directed_sends_are_dead_lettered_at_the_inbox() {
    let (b, clock) = manual();
    let sender = b.connect(None);
    let receiver = b.connect(None);
    let target = Target::Client(receiver.id());
    sender.send(&target, "cmd", "stale", opts().ttl(ms(10))).unwrap();
    sender.send(&target, "cmd", "fresh", opts()).unwrap();
    clock.advance(ms(20));
    assert_eq!(text(&receiver.inbox().try_recv().unwrap()), "fresh");
    let dead = b.dead_letters();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].reason, DeadLetterReason::Expired);
    assert_eq!(dead[0].recipient, Recipient::Target { target });
}

#[test]
fn spinning_subscribers_receive_like_parked_ones() {
    let b = Broker::default();
    let c = b.connect(None);
    let s = c.subscribe("t", SubscribeOptions::default().spin(ms(5))).unwrap();
    let publisher = b.connect(None);
    let t = thread::spawn(move || {
        for i in 0..100 {
            publisher.publish("t", i.to_string(), opts()).unwrap();
            if i % 10 == 0 {
                thread::sleep(ms(8));
            }
        }
    });
    let got: Vec<String> = (0..100).map(|_| text(&s.recv().unwrap()).to_owned()).collect();
    t.join().unwrap();
    assert_eq!(got, (0..100).map(|i| i.to_string()).collect::<Vec<_>>());
    assert!(matches!(s.recv_timeout(ms(20)), Recv::Timeout));
}

#[test]
fn wire_types_round_trip_through_json() {
    let b = Broker::default();
    let c = b.connect(Some(AppId::new("app")));
    let s = c.subscribe("a.*", SubscribeOptions::default()).unwrap();
    c.publish("a.b", vec![0u8, 159, 255], opts().ttl(ms(5000)).trace(TraceId(u128::MAX))).unwrap();
    let env = s.try_recv().unwrap().envelope;
    let json = serde_json::to_string(&*env).unwrap();
    let back: Envelope = serde_json::from_str(&json).unwrap();
    assert_eq!(back, *env);
    let errors = [
        Error::InvalidTopic { topic: "a..b".into(), reason: crate::topic::TopicError::EmptySegment { index: 1 } },
        Error::Backpressure { subscription: SubscriptionId(3) },
        Error::CircuitOpen { target: Target::App(AppId::new("x")), retry_in_ms: 5 },
        Error::Timeout { after_ms: 10 },
    ];
    for e in errors {
        let json = serde_json::to_string(&e).unwrap();
        assert!(json.contains("\"code\""), "{json}");
        assert_eq!(serde_json::from_str::<Error>(&json).unwrap(), e);
    }
    let opts_json = serde_json::to_string(&SubscribeOptions::default().spin(ms(1))).unwrap();
    assert_eq!(serde_json::from_str::<SubscribeOptions>(&opts_json).unwrap(), SubscribeOptions::default().spin(ms(1)));
}

#[test]
fn a_failed_requeue_does_not_duplicate_the_letter() {
    let b = Broker::default();
    let sender = b.connect(None);
    let gone = b.connect(None).id();
    let _ = sender.send(&Target::Client(gone), "cmd", "x", opts());
    let letters = b.dead_letters();
    assert_eq!(letters.len(), 1);
    assert!(matches!(b.requeue_dead_letter(letters[0].id), Err(Error::NoRoute { .. })));
    assert_eq!(b.dead_letters(), letters, "restored, not copied");
}

#[test]
fn a_send_refused_by_a_breaker_that_opened_during_its_retries_is_dead_lettered() {
    let cfg = BrokerConfig {
        inbox_capacity: 1,
        offline_capacity: 1,
        retry: RetryPolicy { attempts: 3, base_delay: ms(1), max_delay: ms(1) },
        breaker: BreakerPolicy { failure_threshold: 5, cooldown: ms(60_000) },
        ..BrokerConfig::default()
    };
    let b = Broker::new(cfg);
    let sender = b.connect(None);
    let target_client = b.connect(None);
    let target = Target::Client(target_client.id());
    sender.send(&target, "cmd", "fills", opts()).unwrap();
    // First send: 3 failures, dead-lettered. Second: 2 more open the breaker mid-retry.
    assert!(matches!(sender.send(&target, "cmd", "one", opts()), Err(Error::QueueFull { .. })));
    assert!(matches!(sender.send(&target, "cmd", "two", opts()), Err(Error::CircuitOpen { .. })));
    let payloads: Vec<Vec<u8>> = b.dead_letters().iter().map(|d| d.envelope.payload.to_vec()).collect();
    assert_eq!(payloads, [b"one".to_vec(), b"two".to_vec()], "nothing vanished");
}

#[test]
fn unread_directed_messages_survive_a_disconnect() {
    let b = Broker::default();
    let app = AppId::new("risk");
    let sender = b.connect(None);
    let first = b.connect(Some(app.clone()));
    let direct = b.connect(None);
    for i in 0..3 {
        sender.send(&Target::App(app.clone()), "cmd", format!("app{i}"), opts()).unwrap();
    }
    sender.send(&Target::Client(direct.id()), "cmd", "direct", opts()).unwrap();
    // The app instance dies with three unread messages; the next instance gets them, in order.
    drop(first);
    assert_eq!(b.stats().offline_waiting, 3);
    let second = b.connect(Some(app));
    let got: Vec<String> = std::iter::from_fn(|| second.inbox().try_recv()).map(|d| text(&d).to_owned()).collect();
    assert_eq!(got, ["app0", "app1", "app2"]);
    // A message for one connection that is gone is dead-lettered, not lost.
    drop(direct);
    let dead = b.dead_letters();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].envelope.payload.as_bytes(), b"direct");
}

#[test]
fn forever_timeouts_do_not_panic() {
    let b = Broker::default();
    let p = b.connect(None);
    let _provider = p.serve("svc", &[]).unwrap();
    let c = b.connect(None);
    let svc = c.connect_service("svc").unwrap();
    let pending = svc.dispatch("a", "x", Duration::MAX).unwrap();
    drop(pending);
    let s = c.subscribe("t", SubscribeOptions::default()).unwrap();
    p.publish("t", "x", opts()).unwrap();
    assert!(matches!(s.recv_timeout(Duration::MAX), Recv::Message(_)));
    assert!(c.publish_blocking("t", "y", opts(), Duration::MAX).is_ok());
}

#[test]
fn expired_history_is_not_replayed() {
    let (b, clock) = manual();
    let c = b.connect(None);
    c.publish("t", "short-lived", opts().ttl(ms(10))).unwrap();
    c.publish("t", "lasting", opts()).unwrap();
    clock.advance(ms(50));
    let s = c.subscribe("t", SubscribeOptions::default().replay(Replay::History { per_topic: 10 })).unwrap();
    assert_eq!(drain(&s), ["lasting"]);
    assert!(b.dead_letters().is_empty(), "nothing to dead-letter: it was never replayed");
}

#[test]
fn records_reach_the_journal_and_nobody_else() {
    let b = Broker::default();
    let journal = Arc::new(MemoryJournal::default());
    b.attach_journal(journal.clone());
    let app = b.connect(Some(AppId::new("nosy")));
    let subs: Vec<Subscription> = ["#", "*.fdc3.broadcast", "*.*.broadcast", "shell.#"]
        .iter()
        .map(|p| app.subscribe(p, SubscribeOptions::default().replay(Replay::History { per_topic: 100 })).unwrap())
        .collect();
    let ack = b.record("$shell.fdc3.broadcast", "{\"secret\":1}", None).unwrap();
    assert_eq!(ack.wait(ms(1000)), Ok(1));
    assert_eq!(journal.entries.lock().len(), 1);
    assert_eq!(b.stats().recorded, 1);
    for s in &subs {
        assert!(s.try_recv().is_none(), "{} saw a record", s.pattern().as_str());
    }
    // Not in history: a late subscriber replaying everything finds nothing.
    let late = app.subscribe("#", SubscribeOptions::default().replay(Replay::History { per_topic: 100 })).unwrap();
    assert!(late.try_recv().is_none());
    assert!(app.replay("#", 100).unwrap().is_empty());
    assert!(b.history("$shell.fdc3.broadcast").is_empty());

    // No client may write or read the namespace, whatever it is.
    for client in [&app, &b.connect(None)] {
        let reserved = |e: Error| {
            matches!(
                e,
                Error::InvalidTopic { reason: TopicError::Reserved, .. }
                    | Error::InvalidPattern { reason: TopicError::Reserved, .. }
            )
        };
        assert!(reserved(client.publish("$shell.fdc3.broadcast", "forged", opts().durable()).unwrap_err()));
        assert!(reserved(client.subscribe("$shell.#", SubscribeOptions::default()).unwrap_err()));
        assert!(reserved(client.replay("$shell.fdc3.broadcast", 10).unwrap_err()));
        assert!(reserved(client.send(&Target::App(AppId::new("nosy")), "$shell.x", "x", opts()).unwrap_err()));
    }
    assert_eq!(journal.entries.lock().len(), 1, "nothing forged reached the journal");
    // The shell itself only writes there.
    assert!(matches!(
        b.record("fdc3.broadcast", "x", None).unwrap_err(),
        Error::InvalidTopic { reason: TopicError::NotReserved, .. }
    ));
}

#[test]
fn records_keep_the_order_of_the_calls() {
    let b = Broker::default();
    let journal = Arc::new(MemoryJournal::default());
    b.attach_journal(journal.clone());
    let acks: Vec<_> = (0..300).map(|n| b.record("$shell.t", format!("{n}"), None).unwrap()).collect();
    let seqs: Vec<u64> = acks.iter().map(|a| a.wait(ms(1000)).unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn a_record_without_a_journal_is_refused() {
    let b = Broker::default();
    assert_eq!(b.record("$shell.t", "x", None).unwrap_err(), Error::NoJournal);
}

#[test]
fn metrics_count_families_and_time_one_publish_in_sixty_four() {
    let b = Broker::default();
    let c = b.connect(None);
    let sub = c.subscribe("prices.#", SubscribeOptions::default()).unwrap();
    for i in 0..128 {
        c.publish(&format!("prices.x.s{i}"), "p", opts()).unwrap();
    }
    c.publish("orders.desk", "o", opts()).unwrap();
    let stats = b.stats();
    let prices = stats.families.iter().find(|(n, _)| n == "prices").unwrap().1;
    assert_eq!((prices.published, prices.delivered), (128, 128));
    let orders = stats.families.iter().find(|(n, _)| n == "orders").unwrap().1;
    assert_eq!((orders.published, orders.delivered), (1, 0));
    // Sequences 64 and 128 were timed; so are their deliveries, once a connection says so.
    assert_eq!(stats.routing.count, 2);
    let timed: Vec<_> = drain_deliveries(&sub).into_iter().filter(|d| d.envelope.sampled.0.is_some()).collect();
    assert_eq!(timed.len(), 2);
    let latency = b.delivery_latency();
    for d in &timed {
        latency.observe(d.envelope.sampled.0.unwrap().elapsed());
    }
    assert_eq!(b.stats().delivery.count, 2);
}

#[test]
fn metrics_off_counts_nothing_extra() {
    let b = Broker::new(BrokerConfig { metrics: false, ..BrokerConfig::default() });
    let c = b.connect(None);
    let sub = c.subscribe("prices.#", SubscribeOptions::default()).unwrap();
    for i in 0..200 {
        c.publish(&format!("prices.x.s{i}"), "p", opts()).unwrap();
    }
    let stats = b.stats();
    assert!(stats.families.is_empty());
    assert_eq!(stats.routing.count, 0);
    assert!(drain_deliveries(&sub).iter().all(|d| d.envelope.sampled.0.is_none()));
    assert_eq!(stats.published, 200);
}

fn drain_deliveries(sub: &Subscription) -> Vec<Delivery> {
    std::iter::from_fn(|| sub.try_recv()).collect()
}
