//! `tessera journal stats|replay|verify|append`: a profile's message journal from the command
//! line.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use broker::{Broker, BrokerConfig, CommitAck, MessageOptions};
use serde_json::json;
use storage::{Journal, JournalConfig, Profile, StoredMessage, TopicStart};

use crate::cli::{JournalCommand, ProfileArg};

/// Acks a load tool keeps in flight before it waits for the oldest.
const WINDOW: usize = 16_384;

/// Opens the profile's journal; only to read unless `write` (then nothing about it changes).
fn open(arg: &ProfileArg, write: bool) -> Result<(Profile, Journal)> {
    let dir = crate::profile::dir(arg)?;
    let profile = if write { Profile::open(&dir) } else { Profile::open_read_only(&dir) }
        .with_context(|| format!("opening the profile in {}", dir.display()))?;
    let journal = Journal::open(&profile, JournalConfig::default()).context("opening the journal")?;
    Ok((profile, journal))
}

/// Runs one journal command; `Ok(false)` means it ran but found a problem (exit code 1).
pub(crate) fn run(cmd: &JournalCommand) -> Result<bool> {
    match cmd {
        JournalCommand::Stats { profile, json } => stats(profile, *json),
        JournalCommand::Replay { profile, from, topic, from_topic_seq, since, limit, json } => {
            replay(profile, *from, topic.as_deref(), *from_topic_seq, *since, *limit, *json)
        }
        JournalCommand::Verify { profile, json } => verify(profile, *json),
        JournalCommand::Append { profile, topic, count, payload, audit_key_file } => {
            append(profile, topic, *count, *payload as usize, audit_key_file.as_deref())
        }
    }
}

#[expect(clippy::print_stdout, reason = "printing the stats is this command's job")]
fn stats(arg: &ProfileArg, json: bool) -> Result<bool> {
    let (profile, journal) = open(arg, false)?;
    let s = journal.stats().with_context(|| format!("reading {}", profile.database_path().display()))?;
    if json {
        println!("{}", serde_json::to_string(&s)?);
    } else {
        println!("journal of {}", profile.database_path().display());
        println!("  records  {} ({} bytes)", s.count, s.bytes);
        let at = |seq: Option<u64>, t: Option<broker::Timestamp>| match (seq, t) {
            (Some(seq), Some(t)) => format!("{seq} at {t}"),
            _ => "none".to_owned(),
        };
        println!("  first    {}", at(s.first_seq, s.oldest));
        println!("  last     {}", at(s.last_seq, s.newest));
    }
    Ok(true)
}

fn message_json(m: &StoredMessage) -> serde_json::Value {
    let e = &m.envelope;
    let mut v = json!({
        "seq": m.seq,
        "topic_seq": m.topic_seq,
        "id": e.id.to_string(),
        "trace_id": e.trace_id.to_string(),
        "topic": e.topic.as_str(),
        "timestamp_us": e.timestamp.0,
        "time": e.timestamp.to_rfc3339(),
        "sender_client": e.sender.client.0,
        "sender_app": e.sender.app.as_ref().map(|a| a.to_string()),
        "durable": e.durable,
        "expires_at_us": e.expires_at.map(|t| t.0),
    });
    match std::str::from_utf8(e.payload.as_bytes()) {
        Ok(text) => v["payload"] = json!(text),
        Err(_) => {
            let hex: String = e.payload.iter().map(|b| format!("{b:02x}")).collect();
            v["payload_hex"] = json!(hex);
        }
    }
    v
}

fn replay(
    arg: &ProfileArg,
    from: u64,
    topic: Option<&str>,
    from_topic_seq: Option<u64>,
    since: Option<u64>,
    limit: u64,
    json: bool,
) -> Result<bool> {
    let line = |m: &StoredMessage| -> String {
        if json {
            return message_json(m).to_string();
        }
        let e = &m.envelope;
        let payload = String::from_utf8_lossy(e.payload.as_bytes());
        let shown: String = payload.chars().take(60).collect();
        let more = if payload.chars().count() > 60 { "…" } else { "" };
        format!(
            "{:>8}  {}  {}#{}  {} bytes  {shown:?}{more}",
            m.seq,
            e.timestamp,
            e.topic,
            m.topic_seq,
            e.payload.len()
        )
    };
    let (profile, journal) = open(arg, false)?;
    let reading = || format!("reading {}", profile.database_path().display());
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    match topic {
        Some(topic) => {
            broker::Topic::parse_any(topic).map_err(|e| anyhow::anyhow!("--topic {topic:?}: {e}"))?;
            let start = match (from_topic_seq, since) {
                (_, Some(us)) => TopicStart::Time(broker::Timestamp(us)),
                (seq, None) => TopicStart::Seq(seq.unwrap_or(1)),
            };
            for m in journal.replay_topic(topic, start, limit).with_context(reading)? {
                writeln!(out, "{}", line(&m))?;
            }
        }
        None => {
            let mut written = 0usize;
            let mut failure = None;
            journal
                .for_each(from, |m| {
                    if let Err(e) = writeln!(out, "{}", line(&m)) {
                        failure = Some(e);
                        return false;
                    }
                    written += 1;
                    written < limit
                })
                .with_context(reading)?;
            if let Some(e) = failure {
                return Err(e).context("writing to stdout");
            }
        }
    }
    out.flush()?;
    Ok(true)
}

#[expect(clippy::print_stdout, reason = "printing the report is this command's job")]
fn verify(arg: &ProfileArg, json: bool) -> Result<bool> {
    let (profile, journal) = open(arg, false)?;
    let report = journal.verify().with_context(|| format!("reading {}", profile.database_path().display()))?;
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "journal of {}: {} records, {} topics, {} bytes, sequences {:?}..={:?}",
            profile.database_path().display(),
            report.records,
            report.topics,
            report.bytes,
            report.first_seq,
            report.last_seq
        );
        for p in &report.problems {
            println!("  problem: {p}");
        }
        if report.is_ok() {
            println!("  ok");
        }
    }
    Ok(report.is_ok())
}

/// Acknowledged messages per audit entry in `journal append --audit-key-file`.
const AUDIT_EVERY: u64 = 1000;

fn append(
    arg: &ProfileArg,
    topic: &str,
    count: u64,
    payload_bytes: usize,
    audit_keys: Option<&std::path::Path>,
) -> Result<bool> {
    let (profile, journal) = open(arg, true)?;
    let audit = match audit_keys {
        Some(path) => {
            let keys = storage::key_source(Some(path), storage::KeyringKind::SecretService)?;
            let vault = storage::Vault::open(&profile, keys).context("opening the vault")?;
            // Heads every few entries, so a crash test has signed heads to check against.
            let cfg = storage::audit::AuditConfig { head_every_entries: 5, ..storage::audit::AuditConfig::default() };
            Some(storage::audit::AuditLog::open(&profile, &vault, cfg)?)
        }
        None => None,
    };
    let mut acked = 0u64;
    let mut audit_acked = |seq: u64| -> Result<()> {
        acked += 1;
        if let Some(log) = &audit
            && acked.is_multiple_of(AUDIT_EVERY)
        {
            log.append(
                &storage::audit::AuditEntry::now("journal-append", "journal.append", topic, "ok")
                    .details(json!({ "through_seq": seq })),
            )?;
        }
        Ok(())
    };
    let broker = Broker::new(BrokerConfig { epoch: crate::profile::run_epoch(), ..BrokerConfig::default() });
    broker.attach_journal(Arc::new(journal));
    let client = broker.connect(None);
    let payload = broker::Payload::from(vec![b'x'; payload_bytes]);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut pending: VecDeque<CommitAck> = VecDeque::new();
    let mut sent = 0u64;
    // Prints every ack at the front that has completed; with `block`, waits for the first.
    let mut drain = |pending: &mut VecDeque<CommitAck>, block: bool, out: &mut std::io::StdoutLock<'_>| -> Result<()> {
        let mut printed = false;
        while let Some(front) = pending.front() {
            let outcome = if block && !printed { Some(front.wait(Duration::from_secs(60))) } else { front.try_wait() };
            let Some(outcome) = outcome else { break };
            let seq = outcome.context("a durable publish was not committed")?;
            writeln!(out, "{seq}")?;
            audit_acked(seq)?;
            printed = true;
            pending.pop_front();
        }
        if printed {
            out.flush()?;
        }
        Ok(())
    };
    while sent < count {
        if pending.len() >= WINDOW {
            drain(&mut pending, true, &mut out)?;
        }
        match client.publish(topic, payload.clone(), MessageOptions::default().durable()) {
            Ok(p) => {
                let Some(ack) = p.commit else { bail!("the broker returned no commit for a durable publish") };
                pending.push_back(ack);
                sent += 1;
            }
            // The journal's queue is full: wait for the oldest commit, then go on.
            Err(broker::Error::JournalBusy) if !pending.is_empty() => {
                drain(&mut pending, true, &mut out)?;
            }
            Err(e) => return Err(e).with_context(|| format!("publishing to {topic}")),
        }
        drain(&mut pending, false, &mut out)?;
    }
    while !pending.is_empty() {
        drain(&mut pending, true, &mut out)?;
    }
    Ok(true)
}
