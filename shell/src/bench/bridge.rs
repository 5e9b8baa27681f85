//! `tessera bench bridge`: desks linked over a real three-node NATS cluster with JetStream, at
//! several numbers of desks (1, 10, 100, 1000 by default), one run each on a fresh cluster.
//!
//! Each desk is simulated, not a whole shell: a broker of its own and the real link
//! (`bridge::start`) over it, with a host that answers raises at once. Desks are put in link
//! groups of `--group-size` (a team), each group sharing a bus pattern, a user channel and an
//! intent. Every desk sends `--rate` messages a second, paced: 6 in 10 on the shared bus topic
//! (a fifth of them durable), 3 broadcasts on the shared channel, 1 intent raised at another
//! desk of its group (whose result comes back). Reported per run: the time to set up every
//! desk (its group's stream, its consumer, its peers heard), messages offered and deliveries
//! made a second (a bus message or broadcast is delivered once per other desk of the group; an
//! intent counts once, when its result is back), deliveries expected but missing, and the
//! latency from send to delivery (bus, channel) and of an intent's round trip, all on one
//! clock.

mod cluster;
mod desk;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use policy::link::{Direction, LinkGroup, LinkRules, SharedTopics};
use serde::Serialize;

use self::cluster::Cluster;
use self::desk::{CHANNEL, Desk, INTENT, Tally};
use super::stats::percentile;
use crate::cli::BridgeBenchArgs;

/// How long a run's desks may take to set up.
const SETUP_LIMIT: Duration = Duration::from_secs(300);

/// One run's outcome.
#[derive(Debug, Serialize)]
struct Run {
    desks: u32,
    groups: u32,
    setup_secs: f64,
    offered_msgs_per_sec: f64,
    expected: u64,
    delivered: u64,
    /// Deliveries that had not arrived 15 s after the last one did.
    lost: u64,
    /// Expected and delivered, by kind: bus, channel, intent.
    expected_by_kind: [u64; 3],
    delivered_by_kind: [u64; 3],
    delivered_msgs_per_sec: f64,
    bus_us_p50: u64,
    bus_us_p99: u64,
    channel_us_p50: u64,
    channel_us_p99: u64,
    intent_rtt_us_p50: u64,
    intent_rtt_us_p99: u64,
    /// Messages the desks' links sent to the cluster (acknowledged), and refused.
    links_out: u64,
    links_refused: u64,
    /// Messages the desks' links delivered from the others, and what the cluster still held
    /// for them at the end (their lag).
    links_in: u64,
    links_pending: u64,
    /// The problems the desks' links last saw, with how many desks saw each.
    link_problems: std::collections::BTreeMap<String, u32>,
    /// Why the run could not be measured, if it could not.
    error: Option<String>,
}

#[derive(Debug, Serialize)]
struct Report {
    group_size: u32,
    rate_per_desk: f64,
    secs: u64,
    replicas: u8,
    runs: Vec<Run>,
}

pub(crate) fn run(args: &BridgeBenchArgs) -> Result<()> {
    ensure!(args.rate > 0.0 && args.rate <= 1_000.0, "--rate {} is not between 0 and 1000 a second", args.rate);
    ensure!((1..=600).contains(&args.secs), "--secs {} is not between 1 and 600", args.secs);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("a Tokio runtime")?;
    let mut runs = Vec::new();
    for &n in &args.desks {
        tracing::info!(desks = n, "bench bridge: starting a run");
        runs.push(one(&rt, args, n)?);
    }
    let report = Report {
        group_size: args.group_size,
        rate_per_desk: args.rate,
        secs: args.secs,
        replicas: args.replicas,
        runs,
    };
    super::report(&report, args.json, table)
}

/// The rules of desk `name`, in group `group` with `members`.
fn rules(name: &str, group: &str, members: &[String], servers: &[String], replicas: u8) -> LinkRules {
    LinkRules {
        desk: name.to_owned(),
        servers: servers.to_vec(),
        token_secret: None,
        user: None,
        nkey_secret: None,
        creds_secret: None,
        ca_file: None,
        replicas,
        groups: vec![LinkGroup {
            name: group.to_owned(),
            desks: members.to_vec(),
            bus: vec![SharedTopics { pattern: "bench.#".to_owned(), direction: Direction::Both }],
            user_channels: vec![CHANNEL.to_owned()],
            app_channels: Vec::new(),
            intents: vec![INTENT.to_owned()],
            max_message_bytes: 64 << 10,
            catch_up_secs: 600,
            catch_up_bytes: 64 << 20,
        }],
    }
}

fn one(rt: &tokio::runtime::Runtime, args: &BridgeBenchArgs, n: u32) -> Result<Run> {
    let cluster = Cluster::start(&args.nats_server)?;
    let servers = cluster.urls();
    let tally = Arc::new(Tally::new());
    let size = args.group_size.min(n) as usize;
    let names: Vec<String> = (0..n).map(|i| format!("d{i}")).collect();
    let groups: Vec<&[String]> = names.chunks(size).collect();
    let started = Instant::now();
    let desks: Vec<Desk> = {
        let _guard = rt.enter();
        let mut desks = Vec::new();
        for (k, members) in groups.iter().enumerate() {
            for name in *members {
                let peers = members.iter().filter(|m| *m != name).cloned().collect();
                let r = rules(name, &format!("g{k}"), members, &servers, args.replicas);
                desks.push(Desk::start(name, peers, &r, &tally));
            }
        }
        desks
    };
    let mut run = Run {
        desks: n,
        groups: u32::try_from(groups.len()).unwrap_or(u32::MAX),
        setup_secs: 0.0,
        offered_msgs_per_sec: 0.0,
        expected: 0,
        delivered: 0,
        lost: 0,
        expected_by_kind: [0; 3],
        delivered_by_kind: [0; 3],
        delivered_msgs_per_sec: 0.0,
        bus_us_p50: 0,
        bus_us_p99: 0,
        channel_us_p50: 0,
        channel_us_p99: 0,
        intent_rtt_us_p50: 0,
        intent_rtt_us_p99: 0,
        links_out: 0,
        links_refused: 0,
        links_in: 0,
        links_pending: 0,
        link_problems: std::collections::BTreeMap::new(),
        error: None,
    };
    loop {
        let ready = desks.iter().filter(|d| d.ready()).count();
        if ready == desks.len() {
            break;
        }
        if started.elapsed() > SETUP_LIMIT {
            run.error = Some(format!("{ready} of {n} desks were set up after {} s", SETUP_LIMIT.as_secs()));
            return Ok(run);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    run.setup_secs = started.elapsed().as_secs_f64();
    let (sent, by_kind, send_secs) = send(&desks, &tally, args.rate * f64::from(n), Duration::from_secs(args.secs));
    let expected: u64 = by_kind.iter().sum();
    // Until everything expected has arrived, or nothing more for 15 seconds.
    let mut last = (tally.delivered(), Instant::now());
    while last.0 < expected && last.1.elapsed() < Duration::from_secs(15) {
        std::thread::sleep(Duration::from_millis(100));
        let now = tally.delivered();
        if now != last.0 {
            last = (now, Instant::now());
        }
    }
    run.offered_msgs_per_sec = sent as f64 / send_secs;
    run.expected = expected;
    run.delivered = tally.delivered();
    run.lost = expected.saturating_sub(run.delivered);
    run.expected_by_kind = by_kind;
    run.delivered_by_kind =
        [tally.bus.lock().len() as u64, tally.channel.lock().len() as u64, tally.intents.lock().len() as u64];
    run.delivered_msgs_per_sec = run.delivered as f64 / send_secs;
    let p = |v: &parking_lot::Mutex<Vec<u64>>| {
        let mut v = v.lock();
        v.sort_unstable();
        (percentile(&v, 50.0), percentile(&v, 99.0))
    };
    (run.bus_us_p50, run.bus_us_p99) = p(&tally.bus);
    (run.channel_us_p50, run.channel_us_p99) = p(&tally.channel);
    (run.intent_rtt_us_p50, run.intent_rtt_us_p99) = p(&tally.intents);
    for status in desks.iter().filter_map(Desk::status) {
        run.links_out += status.messages_out;
        run.links_refused += status.refused;
        run.links_in += status.messages_in;
        run.links_pending += status.pending.values().sum::<u64>();
        if let Some(e) = status.last_error {
            // The same problem at each desk: named once (desk names and numbers left out).
            let key: String = e.chars().filter(|c| !c.is_ascii_digit()).collect();
            *run.link_problems.entry(key).or_default() += 1;
        }
    }
    drop(desks);
    // The desks' links close as their tasks end; then the cluster goes.
    std::thread::sleep(Duration::from_millis(500));
    drop(cluster);
    Ok(run)
}

/// Sends at `rate` a second in all, round the desks, for `secs`: how many were sent, how many
/// deliveries they should make (bus, channel, intent), and how long sending took.
fn send(desks: &[Desk], tally: &Tally, rate: f64, secs: Duration) -> (u64, [u64; 3], f64) {
    let n = desks.len() as u64;
    let begin = Instant::now();
    let (mut sent, mut expected) = (0u64, [0u64; 3]);
    while begin.elapsed() < secs {
        #[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "a count of messages due")]
        let due = (begin.elapsed().as_secs_f64() * rate) as u64;
        while sent < due {
            let d = &desks[usize::try_from(sent % n).unwrap_or(0)];
            let (kind, deliveries) = d.send(sent / n, tally);
            expected[kind as usize] += deliveries;
            sent += 1;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    (sent, expected, begin.elapsed().as_secs_f64())
}

#[expect(clippy::print_stdout, reason = "the table is the command's output")]
fn table(r: &Report) {
    println!(
        "bench bridge: groups of {}, {} msgs/s a desk for {} s, streams with {} replicas (3-node cluster)",
        r.group_size, r.rate_per_desk, r.secs, r.replicas
    );
    println!(
        "{:>6} {:>6} {:>8} {:>10} {:>12} {:>8} {:>17} {:>17} {:>17}",
        "desks",
        "groups",
        "setup s",
        "offered/s",
        "delivered/s",
        "lost",
        "bus p50/p99 ms",
        "channel p50/p99",
        "intent rtt p50/p99"
    );
    let ms = |a: u64, b: u64| format!("{:.1}/{:.1}", a as f64 / 1000.0, b as f64 / 1000.0);
    for run in &r.runs {
        if let Some(e) = &run.error {
            println!("{:>6} {:>6} {e}", run.desks, run.groups);
            continue;
        }
        println!(
            "{:>6} {:>6} {:>8.1} {:>10.0} {:>12.0} {:>8} {:>17} {:>17} {:>17}",
            run.desks,
            run.groups,
            run.setup_secs,
            run.offered_msgs_per_sec,
            run.delivered_msgs_per_sec,
            run.lost,
            ms(run.bus_us_p50, run.bus_us_p99),
            ms(run.channel_us_p50, run.channel_us_p99),
            ms(run.intent_rtt_us_p50, run.intent_rtt_us_p99),
        );
    }
}
