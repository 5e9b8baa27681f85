//! The broker against a simple reference model, and the no-leak soak.

use std::collections::VecDeque;

use proptest::prelude::*;

use super::*;
use crate::topic::{Segment, Topic};

#[derive(Debug, Clone)]
enum Op {
    Subscribe { client: usize, pattern: String, policy: QueuePolicy, capacity: usize },
    Unsubscribe { sub: prop::sample::Index },
    Publish { client: usize, topic: String },
    Drain { sub: prop::sample::Index, n: usize },
}

fn seg() -> impl Strategy<Value = String> {
    prop_oneof![Just("a".to_owned()), Just("b".to_owned())]
}

fn topic() -> impl Strategy<Value = String> {
    prop::collection::vec(seg(), 1..4).prop_map(|v| v.join("."))
}

fn pattern() -> impl Strategy<Value = String> {
    prop::collection::vec(prop_oneof![3 => seg(), 1 => Just("*".to_owned()), 1 => Just("#".to_owned())], 1..4)
        .prop_map(|v| v.join("."))
}

fn policy() -> impl Strategy<Value = QueuePolicy> {
    prop_oneof![Just(QueuePolicy::DropOldest), Just(QueuePolicy::Backpressure), Just(QueuePolicy::DeadLetter)]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (0..3usize, pattern(), policy(), 1..4usize)
            .prop_map(|(client, pattern, policy, capacity)| Op::Subscribe { client, pattern, policy, capacity }),
        1 => any::<prop::sample::Index>().prop_map(|sub| Op::Unsubscribe { sub }),
        6 => (0..3usize, topic()).prop_map(|(client, topic)| Op::Publish { client, topic }),
        3 => (any::<prop::sample::Index>(), 0..4usize).prop_map(|(sub, n)| Op::Drain { sub, n }),
    ]
}

struct ModelSub {
    pattern: Pattern,
    policy: QueuePolicy,
    capacity: usize,
    queue: VecDeque<u64>,
    handle: Subscription,
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Every queue holds exactly what the model says, in the model's order, under all three
    /// policies; which also proves FIFO per publisher per topic.
    #[test]
    fn queues_match_the_model(ops in prop::collection::vec(op(), 1..120)) {
        let b = Broker::default();
        let clients: Vec<Client> = (0..3).map(|_| b.connect(None)).collect();
        let mut subs: Vec<ModelSub> = Vec::new();
        let mut next_payload = 0u64;
        let mut dead = 0usize;
        for op in ops {
            match op {
                Op::Subscribe { client, pattern, policy, capacity } => {
                    let opts = SubscribeOptions::default().policy(policy).capacity(capacity);
                    let handle = clients[client].subscribe(&pattern, opts).unwrap();
                    subs.push(ModelSub { pattern: Pattern::parse(&pattern).unwrap(), policy, capacity, queue: VecDeque::new(), handle });
                }
                Op::Unsubscribe { sub } => {
                    if !subs.is_empty() {
                        subs.remove(sub.index(subs.len()));
                    }
                }
                Op::Publish { client, topic } => {
                    let t = Topic::parse(&topic).unwrap();
                    let id = next_payload;
                    next_payload += 1;
                    let result = clients[client].publish(&topic, id.to_string(), MessageOptions::default());
                    let matching: Vec<usize> = (0..subs.len()).filter(|&i| subs[i].pattern.matches(&t)).collect();
                    let blocked = matching.iter().find(|&&i| {
                        subs[i].policy == QueuePolicy::Backpressure && subs[i].queue.len() == subs[i].capacity
                    });
                    if let Some(&i) = blocked {
                        // The broker may name any full backpressure subscriber; nothing is delivered.
                        let Err(Error::Backpressure { subscription }) = result else {
                            panic!("expected backpressure for sub {}, got {result:?}", subs[i].handle.id());
                        };
                        prop_assert!(matching.iter().any(|&j| subs[j].handle.id() == subscription));
                        continue;
                    }
                    let published = result.unwrap();
                    prop_assert_eq!(published.delivered + published.dead_lettered, matching.len());
                    for i in matching {
                        let s = &mut subs[i];
                        if s.queue.len() == s.capacity {
                            match s.policy {
                                QueuePolicy::DropOldest => {
                                    s.queue.pop_front();
                                    s.queue.push_back(id);
                                }
                                QueuePolicy::DeadLetter => dead += 1,
                                QueuePolicy::Backpressure => unreachable!(),
                            }
                        } else {
                            s.queue.push_back(id);
                        }
                    }
                }
                Op::Drain { sub, n } => {
                    if subs.is_empty() {
                        continue;
                    }
                    let idx = sub.index(subs.len());
                    let s = &mut subs[idx];
                    for _ in 0..n {
                        let expect = s.queue.pop_front().map(|v| v.to_string());
                        let got = s.handle.try_recv().map(|d| String::from_utf8(d.envelope.payload.to_vec()).unwrap());
                        prop_assert_eq!(got, expect);
                    }
                }
            }
        }
        for s in &mut subs {
            let expect: Vec<String> = s.queue.drain(..).map(|v| v.to_string()).collect();
            let got: Vec<String> = std::iter::from_fn(|| s.handle.try_recv())
                .map(|d| String::from_utf8(d.envelope.payload.to_vec()).unwrap())
                .collect();
            prop_assert_eq!(got, expect);
        }
        prop_assert_eq!(b.dead_letters().len(), dead);
    }
}

/// xorshift64*: a fixed, fast sequence so the soak is the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Trie nodes the live patterns need: the root plus every distinct prefix.
fn expected_nodes(patterns: &[Pattern]) -> usize {
    let mut prefixes: std::collections::HashSet<Vec<Segment>> = std::collections::HashSet::new();
    for p in patterns {
        for len in 1..=p.segments().len() {
            prefixes.insert(p.segments()[..len].to_vec());
        }
    }
    prefixes.len() + 1
}

#[test]
fn a_million_random_operations_leak_nothing() {
    const OPS: usize = 1_000_000;
    let words = ["prices", "orders", "news", "xnas", "xlon", "aapl", "msft", "*", "#"];
    let b = Broker::new(BrokerConfig { max_history_topics: 1000, ..BrokerConfig::default() });
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    // Clients with a slot number, and subscriptions with their client's slot and pattern.
    let mut clients: Vec<(u64, Client)> = Vec::new();
    let mut subs: Vec<(u64, Subscription, Pattern)> = Vec::new();
    let mut next_slot = 0u64;
    for i in 0..OPS {
        // Sizes drift around a working set of ~40 clients and ~400 subscriptions.
        let roll = rng.below(100);
        if clients.is_empty() || (roll < 5 && clients.len() < 40) {
            clients.push((next_slot, b.connect(None)));
            next_slot += 1;
        } else if roll < 8 || clients.len() > 60 {
            // Disconnect: the client goes first, then its subscription handles.
            let (slot, client) = clients.swap_remove(rng.below(clients.len()));
            drop(client);
            let remaining = subs.iter().filter(|(s, _, _)| *s != slot).count();
            assert_eq!(b.stats().subscriptions, remaining, "disconnect alone removes the client's subscriptions");
            subs.retain(|(s, _, _)| *s != slot);
        } else if roll < 50 && subs.len() < 400 {
            let (slot, client) = &clients[rng.below(clients.len())];
            let len = 1 + rng.below(4);
            let pattern: Vec<&str> = (0..len).map(|_| words[rng.below(words.len())]).collect();
            let pattern = pattern.join(".");
            let policy = [QueuePolicy::DropOldest, QueuePolicy::DeadLetter][rng.below(2)];
            let sub = client.subscribe(&pattern, SubscribeOptions::default().capacity(4).policy(policy)).unwrap();
            subs.push((*slot, sub, Pattern::parse(&pattern).unwrap()));
        } else if roll < 90 && !subs.is_empty() {
            subs.swap_remove(rng.below(subs.len()));
        } else {
            let (_, client) = &clients[rng.below(clients.len())];
            let topic = format!("{}.{}.{}", words[rng.below(3)], words[3 + rng.below(2)], words[5 + rng.below(2)]);
            client.publish(&topic, "x", MessageOptions::default()).unwrap();
        }
        if i % 50_000 == 0 {
            let live: Vec<Pattern> = subs.iter().map(|(_, _, p)| p.clone()).collect();
            let st = b.stats();
            assert_eq!(st.subscriptions, live.len(), "op {i}");
            assert_eq!(st.router.patterns, live.len(), "op {i}");
            assert_eq!(st.router.nodes, expected_nodes(&live), "op {i}");
            assert_eq!(st.clients, clients.len(), "op {i}");
        }
    }
    drop(subs);
    drop(clients);
    let st = b.stats();
    assert_eq!((st.clients, st.subscriptions, st.router.patterns, st.router.nodes), (0, 0, 0, 1));
}

proptest! {
    /// Envelopes survive the JSON codec byte for byte, whatever the payload and ids.
    #[test]
    fn envelopes_round_trip_through_json(
        topic in topic(),
        payload in prop::collection::vec(any::<u8>(), 0..256),
        id in any::<u128>(),
        trace in any::<u128>(),
        seq in any::<u64>(),
        ts in any::<u64>(),
        ttl in prop::option::of(any::<u64>()),
        app in prop::option::of("[a-z]{1,8}"),
    ) {
        let env = Envelope {
            id: crate::ids::MessageId(id),
            seq,
            topic: Topic::parse(&topic).unwrap(),
            payload: payload.into(),
            sender: crate::envelope::Sender { client: crate::ids::ClientId(seq ^ 1), app: app.as_deref().map(AppId::new) },
            timestamp: crate::clock::Timestamp(ts),
            trace_id: crate::ids::TraceId(trace),
            durable: seq % 2 == 0,
            expires_at: ttl.map(crate::clock::Timestamp),
            target: None,
            encoded: Default::default(),
            sampled: Default::default(),
            trace: None,
        };
        let json = serde_json::to_vec(&env).unwrap();
        let back: Envelope = serde_json::from_slice(&json).unwrap();
        prop_assert_eq!(back, env);
    }
}
