//! The durable message journal: the broker's `Journal` port on redb.
//!
//! One writer thread owns all writes. It takes every append queued since its last commit (up
//! to `max_batch`, optionally waiting up to `max_wait` for more) and commits them in one
//! transaction with `Durability::Immediate`; each publisher's ack completes only after that
//! commit returns. A failed commit stops the journal: everything queued and everything after
//! is refused with [`Error::JournalStopped`] until the journal is reopened, so an
//! acknowledgement always means "on disk".
//!
//! Lazy appends ([`Journal::append_lazy`]: the shell's own records, whose commit nobody awaits)
//! may wait up to `lazy_linger` for company, so a stream of them costs one commit per linger
//! rather than one each; any other append or a [`Journal::flush`] commits them at once, and so
//! does closing the journal.
//!
//! Retention (by age and by size) runs in the same thread between batches, a bounded number of
//! records per step, so it never stalls writers for long.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use broker::{CommitAck, CommitSignal, Envelope, Timestamp};
use parking_lot::Mutex;
use redb::{Durability, ReadableTable, ReadableTableMetadata};
use serde::Serialize;

use crate::error::{Error, Result, db_error, shield};
use crate::profile::{Profile, Store};
use crate::record::{self, StoredMessage};
use crate::tables::{BYTES, JOURNAL, JOURNAL_META, NEXT_SEQ, TOPIC_HEAD, TOPIC_INDEX, read_table};

/// Journal settings.
#[derive(Debug, Clone, Copy)]
pub struct JournalConfig {
    /// Most messages in one commit.
    pub max_batch: usize,
    /// Most payload bytes in one commit (a batch closes once it reaches this), so large
    /// messages do not make commits long.
    pub max_batch_bytes: usize,
    /// How long a commit may wait for more messages after the first (zero: commit what is
    /// queued at once; batches still grow while the previous commit is in flight).
    pub max_wait: Duration,
    /// How long a batch of lazy appends alone may wait for more before it is committed.
    pub lazy_linger: Duration,
    /// Appends waiting for the writer before new ones are refused.
    pub queue_capacity: usize,
    /// Records older than this are removed.
    pub retention_age: Duration,
    /// The journal is trimmed, oldest first, to stay under this many record bytes.
    pub retention_bytes: u64,
    /// Most records one retention step removes.
    pub retention_step: usize,
    /// Store payloads of 1 KiB or more LZ4-compressed when that saves at least an eighth.
    pub compress: bool,
}

impl Default for JournalConfig {
    fn default() -> Self {
        Self {
            max_batch: 1024,
            max_batch_bytes: 1 << 20,
            max_wait: Duration::ZERO,
            lazy_linger: Duration::from_millis(20),
            queue_capacity: 65_536,
            retention_age: Duration::from_secs(7 * 24 * 3600),
            retention_bytes: 1 << 30,
            retention_step: 1000,
            compress: true,
        }
    }
}

/// Where a per-topic replay starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicStart {
    /// At this topic sequence number.
    Seq(u64),
    /// At the first message stamped at or after this time.
    Time(Timestamp),
}

/// What the journal holds and how it is doing.
#[derive(Debug, Clone, Default, Serialize)]
pub struct JournalStats {
    /// Records held.
    pub count: u64,
    /// Encoded bytes held.
    pub bytes: u64,
    /// Sequence of the oldest record held.
    pub first_seq: Option<u64>,
    /// Sequence of the newest record.
    pub last_seq: Option<u64>,
    /// Timestamp of the oldest record.
    pub oldest: Option<Timestamp>,
    /// Timestamp of the newest record.
    pub newest: Option<Timestamp>,
    /// Commits since this journal was opened.
    pub commits: u64,
    /// Messages committed since this journal was opened.
    pub committed: u64,
    /// Median commit time of the last 4096 commits, in milliseconds.
    pub commit_ms_p50: Option<f64>,
    /// 99th percentile of the same.
    pub commit_ms_p99: Option<f64>,
    /// Records removed by retention since open.
    pub retained_away: u64,
    /// Why the journal stopped, if it did.
    pub stopped: Option<String>,
}

/// What `verify` found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    /// Records read and decoded.
    pub records: u64,
    /// Distinct topics among them.
    pub topics: u64,
    /// Encoded bytes.
    pub bytes: u64,
    /// First sequence.
    pub first_seq: Option<u64>,
    /// Last sequence.
    pub last_seq: Option<u64>,
    /// Every inconsistency found; empty means the journal is sound.
    pub problems: Vec<String>,
}

impl VerifyReport {
    /// Whether nothing was wrong.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

enum Job {
    /// A message to commit; `lazy`: nobody waits on its commit, so it may linger for company.
    Append(Arc<Envelope>, CommitSignal, bool),
    /// Commit what was queued before it, now.
    Flush(CommitSignal),
}

/// What the writer has taken for its next commit.
#[derive(Default)]
struct Pending {
    batch: Vec<(Arc<Envelope>, CommitSignal)>,
    flushes: Vec<CommitSignal>,
    bytes: usize,
    /// Something in it is awaited: commit within `max_wait`, not `lazy_linger`.
    urgent: bool,
}

impl Pending {
    fn take(&mut self, job: Job) {
        match job {
            Job::Append(env, signal, lazy) => {
                self.bytes += env.payload.len();
                self.urgent |= !lazy;
                self.batch.push((env, signal));
            }
            Job::Flush(signal) => {
                self.urgent = true;
                self.flushes.push(signal);
            }
        }
    }
}

#[derive(Debug, Default)]
struct Live {
    commits: u64,
    committed: u64,
    retained_away: u64,
    /// Recent commit times in µs, a ring.
    commit_us: Vec<u64>,
    next: usize,
    stopped: Option<String>,
}

const LATENCY_RING: usize = 4096;

impl Live {
    fn record_commit(&mut self, us: u64, messages: usize) {
        self.commits += 1;
        self.committed += messages as u64;
        if self.commit_us.len() < LATENCY_RING {
            self.commit_us.push(us);
        } else {
            self.commit_us[self.next] = us;
        }
        self.next = (self.next + 1) % LATENCY_RING;
    }
}

#[derive(Debug)]
struct Inner {
    tx: Option<flume::Sender<Job>>,
    live: Arc<Mutex<Live>>,
    db: Arc<Store>,
    path: PathBuf,
    capacity: usize,
    writer: Option<JoinHandle<()>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the queue lets the writer commit what is queued and exit.
        self.tx.take();
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

/// The journal. Cheap to clone; the writer stops when the last clone is dropped, after
/// committing what was queued.
#[derive(Debug, Clone)]
pub struct Journal {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Job::Append(env, _, lazy) => write!(f, "Append({}, lazy: {lazy})", env.id),
            Job::Flush(_) => f.write_str("Flush"),
        }
    }
}

impl Journal {
    /// Opens the journal of a profile and starts its writer thread.
    /// On a profile opened read-only, the journal only reads: nothing is started or written.
    pub fn open(profile: &Profile, cfg: JournalConfig) -> Result<Self> {
        let db = Arc::clone(profile.db());
        let path = profile.database_path().to_owned();
        if db.is_read_only() {
            return Ok(Self {
                inner: Arc::new(Inner {
                    tx: None,
                    live: Arc::new(Mutex::new(Live::default())),
                    db,
                    path,
                    capacity: cfg.queue_capacity.max(1),
                    writer: None,
                }),
            });
        }
        shield(&path.clone(), move || Self::open_writable(db, path, cfg))
    }

    fn open_writable(db: Arc<Store>, path: PathBuf, cfg: JournalConfig) -> Result<Self> {
        // Create the tables so readers never meet a missing one.
        let txn = db.begin_write().map_err(|e| db_error(&path, e))?;
        {
            txn.open_table(JOURNAL).map_err(|e| db_error(&path, e))?;
            txn.open_table(TOPIC_INDEX).map_err(|e| db_error(&path, e))?;
            txn.open_table(TOPIC_HEAD).map_err(|e| db_error(&path, e))?;
            txn.open_table(JOURNAL_META).map_err(|e| db_error(&path, e))?;
        }
        txn.commit().map_err(|e| db_error(&path, e))?;

        let (tx, rx) = flume::bounded(cfg.queue_capacity.max(1));
        let live = Arc::new(Mutex::new(Live::default()));
        let mut writer = Writer::new(Arc::clone(&db), path.clone(), cfg, Arc::clone(&live))?;
        let handle = std::thread::Builder::new()
            .name("journal-writer".into())
            .spawn(move || writer.run(&rx))
            .map_err(|source| Error::Io { path: path.clone(), source })?;
        Ok(Self {
            inner: Arc::new(Inner {
                tx: Some(tx),
                live,
                db,
                path,
                capacity: cfg.queue_capacity.max(1),
                writer: Some(handle),
            }),
        })
    }

    fn err(&self, e: impl Into<redb::Error>) -> Error {
        db_error(&self.inner.path, e)
    }

    /// Queues a message; the ack completes with its journal sequence after the commit.
    pub fn append(&self, envelope: &Arc<Envelope>) -> Result<CommitAck> {
        self.queue(|signal| Job::Append(Arc::clone(envelope), signal, false))
    }

    /// Queues a message whose commit nobody waits for: it may linger up to `lazy_linger` to
    /// share a commit with others. Order is kept with every other append.
    pub fn append_lazy(&self, envelope: &Arc<Envelope>) -> Result<CommitAck> {
        self.queue(|signal| Job::Append(Arc::clone(envelope), signal, true))
    }

    /// Commits everything queued so far and waits up to `timeout` for it.
    pub fn flush(&self, timeout: Duration) -> Result<()> {
        let ack = self.queue(Job::Flush)?;
        ack.wait(timeout).map(|_| ()).map_err(|e| Error::JournalStopped { reason: e.to_string() })
    }

    fn queue(&self, job: impl FnOnce(CommitSignal) -> Job) -> Result<CommitAck> {
        if let Some(reason) = self.inner.live.lock().stopped.clone() {
            return Err(Error::JournalStopped { reason });
        }
        let (signal, ack) = CommitAck::pair();
        let tx = self
            .inner
            .tx
            .as_ref()
            .ok_or(Error::JournalStopped { reason: "the profile was opened read-only".into() })?;
        match tx.try_send(job(signal)) {
            Ok(()) => Ok(ack),
            Err(flume::TrySendError::Full(_)) => Err(Error::QueueFull { capacity: self.inner.capacity }),
            Err(flume::TrySendError::Disconnected(_)) => {
                Err(Error::JournalStopped { reason: "the writer thread has exited".into() })
            }
        }
    }

    /// Calls `f` for each record from journal sequence `from` on, oldest first, until it
    /// returns `false`. Returns how many records it saw.
    pub fn for_each(&self, from: u64, f: impl FnMut(StoredMessage) -> bool) -> Result<u64> {
        shield(&self.inner.path, || self.for_each_unshielded(from, f))
    }

    fn for_each_unshielded(&self, from: u64, mut f: impl FnMut(StoredMessage) -> bool) -> Result<u64> {
        let txn = self.inner.db.begin_read().map_err(|e| self.err(e))?;
        let Some(table) = read_table(&txn, JOURNAL).map_err(|e| self.err(e))? else { return Ok(0) };
        let mut n = 0;
        for entry in table.range(from..).map_err(|e| self.err(e))? {
            let (k, v) = entry.map_err(|e| self.err(e))?;
            let seq = k.value();
            let msg = record::decode(seq, v.value()).map_err(|source| Error::Decode {
                table: "journal",
                key: seq.to_string(),
                reason: source,
            })?;
            n += 1;
            if !f(msg) {
                break;
            }
        }
        Ok(n)
    }

    /// Up to `limit` records from journal sequence `from` on.
    pub fn replay(&self, from: u64, limit: usize) -> Result<Vec<StoredMessage>> {
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        self.for_each(from, |m| {
            out.push(m);
            out.len() < limit
        })?;
        Ok(out)
    }

    /// Up to `limit` records of one topic from `start` on, in topic order.
    pub fn replay_topic(&self, topic: &str, start: TopicStart, limit: usize) -> Result<Vec<StoredMessage>> {
        shield(&self.inner.path, || self.replay_topic_unshielded(topic, start, limit))
    }

    fn replay_topic_unshielded(&self, topic: &str, start: TopicStart, limit: usize) -> Result<Vec<StoredMessage>> {
        let txn = self.inner.db.begin_read().map_err(|e| self.err(e))?;
        let Some(index) = read_table(&txn, TOPIC_INDEX).map_err(|e| self.err(e))? else { return Ok(Vec::new()) };
        let Some(journal) = read_table(&txn, JOURNAL).map_err(|e| self.err(e))? else { return Ok(Vec::new()) };
        let from_seq = match start {
            TopicStart::Seq(s) => s,
            TopicStart::Time(_) => 0,
        };
        let mut out = Vec::new();
        for entry in index.range((topic, from_seq)..=(topic, u64::MAX)).map_err(|e| self.err(e))? {
            if out.len() >= limit {
                break;
            }
            let (_, v) = entry.map_err(|e| self.err(e))?;
            let (seq, ts) = v.value();
            if let TopicStart::Time(t) = start
                && ts < t.0
            {
                continue;
            }
            let Some(rec) = journal.get(seq).map_err(|e| self.err(e))? else {
                return Err(Error::Corrupt {
                    path: self.inner.path.clone(),
                    detail: format!("topic index of {topic:?} points at missing record {seq}"),
                });
            };
            let msg = record::decode(seq, rec.value()).map_err(|source| Error::Decode {
                table: "journal",
                key: seq.to_string(),
                reason: source,
            })?;
            out.push(msg);
        }
        Ok(out)
    }

    /// What the journal holds and how its commits are doing.
    pub fn stats(&self) -> Result<JournalStats> {
        let mut stats = shield(&self.inner.path, || read_stats(&self.inner.db, &self.inner.path))?;
        let live = self.inner.live.lock();
        stats.commits = live.commits;
        stats.committed = live.committed;
        stats.retained_away = live.retained_away;
        stats.stopped = live.stopped.clone();
        if !live.commit_us.is_empty() {
            let mut v = live.commit_us.clone();
            v.sort_unstable();
            let pick = |p: f64| v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1] as f64 / 1000.0;
            stats.commit_ms_p50 = Some(pick(0.5));
            stats.commit_ms_p99 = Some(pick(0.99));
        }
        Ok(stats)
    }

    /// Reads every record and index entry and reports every inconsistency.
    pub fn verify(&self) -> Result<VerifyReport> {
        shield(&self.inner.path, || verify(&self.inner.db, &self.inner.path))
    }
}

impl broker::Journal for Journal {
    fn append(&self, envelope: &Arc<Envelope>) -> broker::Result<CommitAck> {
        Journal::append(self, envelope).map_err(port_error)
    }

    fn append_lazy(&self, envelope: &Arc<Envelope>) -> broker::Result<CommitAck> {
        Journal::append_lazy(self, envelope).map_err(port_error)
    }

    fn flush(&self, timeout: Duration) -> broker::Result<()> {
        Journal::flush(self, timeout).map_err(port_error)
    }
}

fn port_error(e: Error) -> broker::Error {
    match e {
        Error::QueueFull { .. } => broker::Error::JournalBusy,
        other => broker::Error::Journal { reason: other.to_string() },
    }
}

fn read_stats(db: &Store, path: &std::path::Path) -> Result<JournalStats> {
    let err = |e: redb::Error| db_error(path, e);
    let txn = db.begin_read().map_err(err)?;
    let (Some(journal), Some(meta)) = (
        read_table(&txn, JOURNAL).map_err(|e| err(e.into()))?,
        read_table(&txn, JOURNAL_META).map_err(|e| err(e.into()))?,
    ) else {
        return Ok(JournalStats::default());
    };
    let mut stats = JournalStats {
        count: journal.len().map_err(|e| err(e.into()))?,
        bytes: meta.get(BYTES).map_err(|e| err(e.into()))?.map_or(0, |v| v.value()),
        ..JournalStats::default()
    };
    let decode_ts = |seq: u64, bytes: &[u8]| {
        record::decode(seq, bytes).map(|m| m.envelope.timestamp).map_err(|source| Error::Decode {
            table: "journal",
            key: seq.to_string(),
            reason: source,
        })
    };
    if let Some((k, v)) = journal.first().map_err(|e| err(e.into()))? {
        stats.first_seq = Some(k.value());
        stats.oldest = Some(decode_ts(k.value(), v.value())?);
    }
    if let Some((k, v)) = journal.last().map_err(|e| err(e.into()))? {
        stats.last_seq = Some(k.value());
        stats.newest = Some(decode_ts(k.value(), v.value())?);
    }
    Ok(stats)
}

fn verify(db: &Store, path: &std::path::Path) -> Result<VerifyReport> {
    let err = |e: redb::Error| db_error(path, e);
    let txn = db.begin_read().map_err(err)?;
    let Some(journal) = read_table(&txn, JOURNAL).map_err(|e| err(e.into()))? else {
        return Ok(VerifyReport::default());
    };
    let Some(index) = read_table(&txn, TOPIC_INDEX).map_err(|e| err(e.into()))? else {
        return Ok(VerifyReport::default());
    };
    let Some(heads) = read_table(&txn, TOPIC_HEAD).map_err(|e| err(e.into()))? else {
        return Ok(VerifyReport::default());
    };
    let Some(meta) = read_table(&txn, JOURNAL_META).map_err(|e| err(e.into()))? else {
        return Ok(VerifyReport::default());
    };
    let mut report = VerifyReport::default();
    let mut last_topic_seq: HashMap<String, u64> = HashMap::new();
    let mut prev: Option<u64> = None;
    for entry in journal.iter().map_err(|e| err(e.into()))? {
        let (k, v) = entry.map_err(|e| err(e.into()))?;
        let seq = k.value();
        report.records += 1;
        report.bytes += v.value().len() as u64;
        report.first_seq.get_or_insert(seq);
        report.last_seq = Some(seq);
        if let Some(p) = prev
            && seq != p + 1
        {
            report.problems.push(format!("gap: record {p} is followed by {seq}"));
        }
        prev = Some(seq);
        let msg = match record::decode(seq, v.value()) {
            Ok(m) => m,
            Err(e) => {
                report.problems.push(format!("record {seq} does not decode: {e}"));
                continue;
            }
        };
        let topic = msg.envelope.topic.as_str().to_owned();
        match index.get((topic.as_str(), msg.topic_seq)).map_err(|e| err(e.into()))? {
            Some(v) if v.value().0 == seq => {}
            Some(v) => report.problems.push(format!(
                "topic index ({topic:?}, {}) points at {} instead of {seq}",
                msg.topic_seq,
                v.value().0
            )),
            None => report.problems.push(format!("record {seq} is missing from the topic index")),
        }
        let last = last_topic_seq.entry(topic.clone()).or_insert(0);
        if msg.topic_seq <= *last {
            report.problems.push(format!("topic {topic:?}: sequence {} after {}", msg.topic_seq, *last));
        }
        *last = msg.topic_seq;
    }
    report.topics = last_topic_seq.len() as u64;
    let index_len = index.len().map_err(|e| err(e.into()))?;
    if index_len != report.records {
        report.problems.push(format!("topic index has {index_len} entries for {} records", report.records));
    }
    for (topic, last) in &last_topic_seq {
        let head = heads.get(topic.as_str()).map_err(|e| err(e.into()))?.map_or(0, |v| v.value());
        if head < *last {
            report.problems.push(format!("topic {topic:?}: head {head} is behind its last record {last}"));
        }
    }
    let bytes = meta.get(BYTES).map_err(|e| err(e.into()))?.map_or(0, |v| v.value());
    if bytes != report.bytes {
        report.problems.push(format!("byte count says {bytes}, records hold {}", report.bytes));
    }
    let next = meta.get(NEXT_SEQ).map_err(|e| err(e.into()))?.map_or(1, |v| v.value());
    if let Some(last) = report.last_seq
        && next != last + 1
    {
        report.problems.push(format!("next sequence is {next}, last record is {last}"));
    }
    Ok(report)
}

fn now_us() -> u64 {
    u64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_micros()).unwrap_or(u64::MAX)
}

struct Writer {
    db: Arc<Store>,
    path: PathBuf,
    cfg: JournalConfig,
    live: Arc<Mutex<Live>>,
    next_seq: u64,
    bytes: u64,
    heads: HashMap<Box<str>, u64>,
    buf: Vec<u8>,
    last_retention: Instant,
    /// The last retention step removed records and the journal is still over its size limit.
    retention_behind: bool,
}

impl Writer {
    fn new(db: Arc<Store>, path: PathBuf, cfg: JournalConfig, live: Arc<Mutex<Live>>) -> Result<Self> {
        let mut w = Self {
            db,
            path,
            cfg,
            live,
            next_seq: 1,
            bytes: 0,
            heads: HashMap::new(),
            buf: Vec::new(),
            last_retention: Instant::now(),
            retention_behind: false,
        };
        w.reload()?;
        Ok(w)
    }

    /// Reads the counters back from disk (at open, and after a failed commit).
    fn reload(&mut self) -> Result<()> {
        let txn = self.db.begin_read().map_err(|e| db_error(&self.path, e))?;
        let meta = txn.open_table(JOURNAL_META).map_err(|e| db_error(&self.path, e))?;
        self.next_seq = meta.get(NEXT_SEQ).map_err(|e| db_error(&self.path, e))?.map_or(1, |v| v.value());
        self.bytes = meta.get(BYTES).map_err(|e| db_error(&self.path, e))?.map_or(0, |v| v.value());
        self.heads.clear();
        Ok(())
    }

    fn run(&mut self, rx: &flume::Receiver<Job>) {
        let mut pending = Pending { batch: Vec::with_capacity(self.cfg.max_batch), ..Pending::default() };
        loop {
            // Idle, the writer wakes every second for age retention; over the size limit it
            // keeps trimming in small steps between (and without waiting for) new messages.
            let idle_wait = if self.retention_behind { Duration::ZERO } else { Duration::from_secs(1) };
            let first = match rx.recv_timeout(idle_wait) {
                Ok(job) => job,
                Err(flume::RecvTimeoutError::Timeout) => {
                    self.retention_step();
                    continue;
                }
                Err(flume::RecvTimeoutError::Disconnected) => break,
            };
            let started = Instant::now();
            pending.take(first);
            let full = |p: &Pending| {
                p.batch.len() >= self.cfg.max_batch || p.bytes >= self.cfg.max_batch_bytes || !p.flushes.is_empty()
            };
            loop {
                while !full(&pending) {
                    match rx.try_recv() {
                        Ok(job) => pending.take(job),
                        Err(_) => break,
                    }
                }
                let wait = if pending.urgent { self.cfg.max_wait } else { self.cfg.lazy_linger };
                let deadline = started + wait;
                if full(&pending) || Instant::now() >= deadline {
                    break;
                }
                match rx.recv_deadline(deadline) {
                    Ok(job) => pending.take(job),
                    Err(_) => break,
                }
            }
            self.commit(&mut pending.batch);
            let stopped = self.live.lock().stopped.clone();
            for signal in pending.flushes.drain(..) {
                signal.complete(match &stopped {
                    Some(reason) => Err(broker::Error::Journal { reason: format!("journal stopped: {reason}") }),
                    None => Ok(0),
                });
            }
            pending.bytes = 0;
            pending.urgent = false;
            // One bounded step per commit keeps up with the inflow without stalling it.
            self.retention_step();
        }
    }

    fn commit(&mut self, batch: &mut Vec<(Arc<Envelope>, CommitSignal)>) {
        let stopped = self.live.lock().stopped.clone();
        if let Some(reason) = stopped {
            for (_, signal) in batch.drain(..) {
                signal.complete(Err(broker::Error::Journal { reason: format!("journal stopped: {reason}") }));
            }
            return;
        }
        // A message that cannot be stored fails alone; it must not stop the journal for all.
        batch.retain_mut(|(env, signal)| match record::check(env) {
            Ok(()) => true,
            Err(e) => {
                let reason = format!("message {} cannot be journalled: {e}", env.id);
                std::mem::replace(signal, CommitAck::pair().0).complete(Err(broker::Error::Journal { reason }));
                false
            }
        });
        if batch.is_empty() {
            return;
        }
        let t0 = Instant::now();
        let first_seq = self.next_seq;
        let path = self.path.clone();
        match crate::error::shield(&path, || self.write(batch)) {
            Ok(()) => {
                let us = u64::try_from(t0.elapsed().as_micros()).unwrap_or(u64::MAX);
                self.live.lock().record_commit(us, batch.len());
                for (i, (_, signal)) in batch.drain(..).enumerate() {
                    signal.complete(Ok(first_seq + i as u64));
                }
            }
            Err(e) => {
                let reason = e.to_string();
                tracing::error!(error = %reason, "journal commit failed; refusing further durable messages");
                self.live.lock().stopped = Some(reason.clone());
                for (_, signal) in batch.drain(..) {
                    signal.complete(Err(broker::Error::Journal { reason: reason.clone() }));
                }
                // What the failed transaction counted never reached the disk.
                if let Err(e) = self.reload() {
                    tracing::error!(error = %e, "cannot re-read journal counters");
                }
            }
        }
    }

    fn write(&mut self, batch: &[(Arc<Envelope>, CommitSignal)]) -> Result<()> {
        let path = self.path.clone();
        let err = |e: redb::Error| db_error(&path, e);
        let mut txn = self.db.begin_write().map_err(err)?;
        txn.set_durability(Durability::Immediate).map_err(|e| err(e.into()))?;
        let mut seq = self.next_seq;
        let mut bytes = self.bytes;
        let mut touched: Vec<Box<str>> = Vec::new();
        {
            let mut journal = txn.open_table(JOURNAL).map_err(|e| err(e.into()))?;
            let mut index = txn.open_table(TOPIC_INDEX).map_err(|e| err(e.into()))?;
            let mut heads = txn.open_table(TOPIC_HEAD).map_err(|e| err(e.into()))?;
            for (env, _) in batch {
                let topic = env.topic.as_str();
                let head = match self.heads.get(topic) {
                    Some(h) => *h,
                    None => heads.get(topic).map_err(|e| err(e.into()))?.map_or(0, |v| v.value()),
                };
                let topic_seq = head + 1;
                if self.heads.insert(topic.into(), topic_seq).is_none() || !touched.iter().any(|t| &**t == topic) {
                    touched.push(topic.into());
                }
                record::encode(env, topic_seq, self.cfg.compress, &mut self.buf).map_err(|source| Error::Decode {
                    table: "journal",
                    key: seq.to_string(),
                    reason: source,
                })?;
                journal.insert(seq, self.buf.as_slice()).map_err(|e| err(e.into()))?;
                index.insert((topic, topic_seq), (seq, env.timestamp.0)).map_err(|e| err(e.into()))?;
                bytes += self.buf.len() as u64;
                seq += 1;
            }
            for topic in &touched {
                let head = self.heads.get(&**topic).copied().unwrap_or(0);
                heads.insert(&**topic, head).map_err(|e| err(e.into()))?;
            }
            let mut meta = txn.open_table(JOURNAL_META).map_err(|e| err(e.into()))?;
            meta.insert(NEXT_SEQ, seq).map_err(|e| err(e.into()))?;
            meta.insert(BYTES, bytes).map_err(|e| err(e.into()))?;
        }
        let result = txn.commit().map_err(|e| err(e.into()));
        if result.is_err() {
            // The cached heads may be ahead of the disk now.
            self.heads.clear();
        }
        result?;
        self.next_seq = seq;
        self.bytes = bytes;
        Ok(())
    }

    /// Removes up to `retention_step` of the oldest records if the journal is over its age or
    /// size limit. Runs at most once a second unless over the size limit.
    fn retention_step(&mut self) {
        let path = self.path.clone();
        let step = crate::error::shield(&path, || {
            self.retention_step_unshielded();
            Ok(())
        });
        if let Err(e) = step {
            tracing::error!(error = %e, "journal retention failed; refusing further durable messages");
            self.live.lock().stopped.get_or_insert_with(|| e.to_string());
        }
    }

    fn retention_step_unshielded(&mut self) {
        let over_size = self.bytes > self.cfg.retention_bytes;
        if !over_size && self.last_retention.elapsed() < Duration::from_secs(1) {
            return;
        }
        self.last_retention = Instant::now();
        self.retention_behind = false;
        if self.live.lock().stopped.is_some() {
            return;
        }
        let cutoff = now_us().saturating_sub(u64::try_from(self.cfg.retention_age.as_micros()).unwrap_or(u64::MAX));
        match self.trim(cutoff) {
            Ok(n) => {
                self.live.lock().retained_away += n;
                self.retention_behind = n > 0 && self.bytes > self.cfg.retention_bytes;
            }
            Err(e) => tracing::warn!(error = %e, "journal retention step failed; will retry"),
        }
    }

    fn trim(&mut self, cutoff_us: u64) -> Result<u64> {
        let path = self.path.clone();
        let err = |e: redb::Error| db_error(&path, e);
        let mut txn = self.db.begin_write().map_err(err)?;
        // Losing a retention step in a crash only means it runs again.
        txn.set_durability(Durability::None).map_err(|e| err(e.into()))?;
        let mut removed = 0u64;
        let mut bytes = self.bytes;
        {
            let mut journal = txn.open_table(JOURNAL).map_err(|e| err(e.into()))?;
            let mut index = txn.open_table(TOPIC_INDEX).map_err(|e| err(e.into()))?;
            while removed < self.cfg.retention_step as u64 {
                let Some((seq, rec)) =
                    journal.first().map_err(|e| err(e.into()))?.map(|(k, v)| (k.value(), v.value().to_vec()))
                else {
                    break;
                };
                let msg = record::decode(seq, &rec).map_err(|source| Error::Decode {
                    table: "journal",
                    key: seq.to_string(),
                    reason: source,
                })?;
                let too_old = msg.envelope.timestamp.0 < cutoff_us;
                if !too_old && bytes <= self.cfg.retention_bytes {
                    break;
                }
                journal.remove(seq).map_err(|e| err(e.into()))?;
                index.remove((msg.envelope.topic.as_str(), msg.topic_seq)).map_err(|e| err(e.into()))?;
                bytes = bytes.saturating_sub(rec.len() as u64);
                removed += 1;
            }
            let mut meta = txn.open_table(JOURNAL_META).map_err(|e| err(e.into()))?;
            meta.insert(BYTES, bytes).map_err(|e| err(e.into()))?;
        }
        if removed == 0 {
            txn.abort().map_err(|e| err(e.into()))?;
            return Ok(0);
        }
        txn.commit().map_err(|e| err(e.into()))?;
        self.bytes = bytes;
        Ok(removed)
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod power_tests;
