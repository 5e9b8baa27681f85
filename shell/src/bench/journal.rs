//! `tessera bench journal`: durable publishes through the broker into the journal, against the
//! same workload committed one message at a time, in the same run, on the same disk.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use broker::{Broker, BrokerConfig, CommitAck, MessageOptions};
use serde::Serialize;
use storage::{Journal, JournalConfig, Profile};

use crate::cli::JournalBenchArgs;
use crate::profile::run_epoch;

/// Commits a publisher keeps in flight.
const WINDOW: usize = 16_384;

#[derive(Debug, Serialize)]
struct Report {
    messages: usize,
    payload_bytes: usize,
    max_batch: usize,
    compress: bool,
    durable_msgs_per_sec: f64,
    commit_ms_p50: f64,
    commit_ms_p99: f64,
    commits: u64,
    mean_batch: f64,
    replay_msgs_per_sec: f64,
    baseline_messages: usize,
    baseline_msgs_per_sec: f64,
    speedup_vs_commit_per_message: f64,
    database_bytes: u64,
    optimized_build: bool,
}

struct Pass {
    rate: f64,
    commit_p50: f64,
    commit_p99: f64,
    commits: u64,
    committed: u64,
    journal: Journal,
    profile: Profile,
}

/// Publishes `n` durable messages with up to `WINDOW` in flight and waits for every commit.
fn publish_pass(dir: &Path, cfg: JournalConfig, n: usize, payload: usize) -> Result<Pass> {
    let profile = Profile::open(dir).with_context(|| format!("opening a bench profile in {}", dir.display()))?;
    let journal = Journal::open(&profile, cfg)?;
    let broker = Broker::new(BrokerConfig { epoch: run_epoch(), ..BrokerConfig::default() });
    broker.attach_journal(Arc::new(journal.clone()));
    let client = broker.connect(None);
    let body = broker::Payload::from(tick_payload(payload));
    let mut pending: VecDeque<CommitAck> = VecDeque::with_capacity(WINDOW);
    let wait = |ack: CommitAck| ack.wait(Duration::from_secs(60)).context("a durable publish was not committed");
    let start = Instant::now();
    let mut sent = 0;
    while sent < n {
        if pending.len() >= WINDOW
            && let Some(front) = pending.pop_front()
        {
            wait(front)?;
        }
        let topic = format!("bench.t{}", sent % 64);
        match client.publish(&topic, body.clone(), MessageOptions::default().durable()) {
            Ok(p) => {
                pending.push_back(p.commit.context("no commit for a durable publish")?);
                sent += 1;
            }
            Err(broker::Error::JournalBusy) => {
                if let Some(front) = pending.pop_front() {
                    wait(front)?;
                }
            }
            Err(e) => return Err(e).context("durable publish"),
        }
    }
    for ack in pending {
        wait(ack)?;
    }
    let elapsed = start.elapsed();
    let stats = journal.stats()?;
    Ok(Pass {
        rate: n as f64 / elapsed.as_secs_f64(),
        commit_p50: stats.commit_ms_p50.unwrap_or(0.0),
        commit_p99: stats.commit_ms_p99.unwrap_or(0.0),
        commits: stats.commits,
        committed: stats.committed,
        journal,
        profile,
    })
}

/// A payload shaped like market data: JSON price ticks with varying numbers, cut to `len`
/// bytes (compressible the way real JSON is, unlike a run of one byte).
fn tick_payload(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 128);
    let mut i = 0u64;
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    out.push(b'[');
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let bid = 10_000 + x % 90_000;
        let size = 100 * (1 + (x >> 20) % 50);
        out.extend_from_slice(
            format!(
                "{{\"sym\":\"S{:04}\",\"venue\":\"XNAS\",\"bid\":{}.{:02},\"ask\":{}.{:02},\"size\":{size},\"seq\":{i}}},",
                x % 2000,
                bid / 100,
                bid % 100,
                (bid + 3) / 100,
                (bid + 3) % 100
            )
            .as_bytes(),
        );
        i += 1;
    }
    out.truncate(len);
    out
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            tracing::warn!(error = %e, dir = %self.0.display(), "could not remove the bench directory");
        }
    }
}

pub(crate) fn run(args: &JournalBenchArgs) -> Result<()> {
    let base = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    let root = TempDir(base.join(format!("tessera-bench-journal-{}-{}", std::process::id(), run_epoch())));
    let n = args.messages as usize;
    let payload = args.payload as usize;

    let mut cfg = JournalConfig { compress: !args.no_compress, ..JournalConfig::default() };
    if let Some(b) = args.max_batch {
        cfg.max_batch = b as usize;
    }
    let grouped = publish_pass(&root.0.join("grouped"), cfg, n, payload)?;
    ensure!(grouped.committed == n as u64, "committed {} of {n}", grouped.committed);

    let start = Instant::now();
    let mut replayed = 0usize;
    grouped.journal.for_each(1, |m| {
        std::hint::black_box(&m);
        replayed += 1;
        true
    })?;
    let replay_elapsed = start.elapsed();
    ensure!(replayed == n, "replayed {replayed} of {n}");
    let database_bytes = std::fs::metadata(grouped.profile.database_path()).map(|m| m.len()).unwrap_or(0);
    let verify = grouped.journal.verify()?;
    ensure!(verify.is_ok(), "the bench journal does not verify: {:?}", verify.problems);
    drop(grouped.journal);
    drop(grouped.profile);

    let baseline_n = (args.baseline_messages as usize).min(n);
    let single = JournalConfig { max_batch: 1, ..cfg };
    let baseline = publish_pass(&root.0.join("single"), single, baseline_n, payload)?;

    let report = Report {
        messages: n,
        payload_bytes: payload,
        max_batch: cfg.max_batch,
        compress: cfg.compress,
        durable_msgs_per_sec: grouped.rate,
        commit_ms_p50: grouped.commit_p50,
        commit_ms_p99: grouped.commit_p99,
        commits: grouped.commits,
        mean_batch: grouped.committed as f64 / grouped.commits.max(1) as f64,
        replay_msgs_per_sec: replayed as f64 / replay_elapsed.as_secs_f64(),
        baseline_messages: baseline_n,
        baseline_msgs_per_sec: baseline.rate,
        speedup_vs_commit_per_message: grouped.rate / baseline.rate.max(f64::MIN_POSITIVE),
        database_bytes,
        optimized_build: !cfg!(debug_assertions),
    };
    super::report(&report, args.json, print_table)
}

#[expect(clippy::print_stdout, reason = "the table is this command's output")]
fn print_table(r: &Report) {
    println!("journal benchmark: {} durable messages of {} bytes", r.messages, r.payload_bytes);
    println!(
        "  durable publishes   {:.0} msgs/s ({} commits, {:.0} messages each)",
        r.durable_msgs_per_sec, r.commits, r.mean_batch
    );
    println!("  commit time         p50 {:.2} ms   p99 {:.2} ms", r.commit_ms_p50, r.commit_ms_p99);
    println!("  replay              {:.0} msgs/s", r.replay_msgs_per_sec);
    println!(
        "  one commit each     {:.0} msgs/s over {} messages: group commit is {:.1}x faster",
        r.baseline_msgs_per_sec, r.baseline_messages, r.speedup_vs_commit_per_message
    );
    println!("  database file       {} bytes", r.database_bytes);
    if !r.optimized_build {
        println!("  (debug build: use `cargo run --release` for figures worth comparing)");
    }
}
