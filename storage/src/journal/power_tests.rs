//! Power loss and I/O faults at every write of a small workload, through redb's storage
//! backend hook: unsynced writes are dropped, kept, kept in part or reordered; fsync fails; the
//! disk fills. Whatever happens, no acknowledged message is lost and the journal verifies.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use broker::{Broker, MessageId, MessageOptions};
use parking_lot::Mutex;

use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    /// Power is lost when this write (counting from 0) is attempted.
    PowerAt(u64),
    /// This fsync fails (and the machine then loses power).
    SyncFailsAt(u64),
    /// The disk is full from this write on.
    FullFrom(u64),
}

#[derive(Debug, Clone)]
enum Pending {
    Data(u64, Vec<u8>),
    Len(u64),
}

#[derive(Debug)]
struct Disk {
    live: Vec<u8>,
    durable: Vec<u8>,
    unsynced: Vec<Pending>,
    writes: u64,
    syncs: u64,
    fault: Fault,
    dead: bool,
    /// Writes refused because the disk was full.
    full_refusals: u64,
}

#[derive(Debug, Clone)]
struct SimBackend(Arc<Mutex<Disk>>);

impl SimBackend {
    fn new(image: Vec<u8>, fault: Fault) -> Self {
        Self(Arc::new(Mutex::new(Disk {
            live: image.clone(),
            durable: image,
            unsynced: Vec::new(),
            writes: 0,
            syncs: 0,
            fault,
            dead: false,
            full_refusals: 0,
        })))
    }
}

fn apply(image: &mut Vec<u8>, p: &Pending) {
    match p {
        Pending::Data(offset, bytes) => {
            let end = *offset as usize + bytes.len();
            if image.len() < end {
                image.resize(end, 0);
            }
            image[*offset as usize..end].copy_from_slice(bytes);
        }
        Pending::Len(len) => image.resize(*len as usize, 0),
    }
}

fn power_lost() -> io::Error {
    io::Error::other("simulated power loss")
}

impl Disk {
    /// Checks the fault plan before a write; the error to return, if any.
    fn before_write(&mut self) -> Option<io::Error> {
        if self.dead {
            return Some(power_lost());
        }
        let n = self.writes;
        self.writes += 1;
        match self.fault {
            Fault::PowerAt(at) if n >= at => {
                self.dead = true;
                Some(power_lost())
            }
            Fault::FullFrom(at) if n >= at => {
                self.full_refusals += 1;
                Some(io::Error::from_raw_os_error(28))
            }
            _ => None,
        }
    }
}

impl redb::StorageBackend for SimBackend {
    fn len(&self) -> Result<u64, io::Error> {
        Ok(self.0.lock().live.len() as u64)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        let d = self.0.lock();
        let start = offset as usize;
        let end = start + out.len();
        if end > d.live.len() {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
        }
        out.copy_from_slice(&d.live[start..end]);
        Ok(())
    }

    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        let mut d = self.0.lock();
        if let Some(e) = d.before_write() {
            return Err(e);
        }
        let p = Pending::Len(len);
        apply(&mut d.live, &p);
        d.unsynced.push(p);
        Ok(())
    }

    fn sync_data(&self) -> Result<(), io::Error> {
        let mut d = self.0.lock();
        if d.dead {
            return Err(power_lost());
        }
        let n = d.syncs;
        d.syncs += 1;
        if d.fault == Fault::SyncFailsAt(n) {
            // Like Linux after a failed fsync: the dirty pages' fate is unknown; then the
            // machine goes down.
            d.dead = true;
            return Err(io::Error::other("simulated fsync failure"));
        }
        d.durable = d.live.clone();
        d.unsynced.clear();
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        let mut d = self.0.lock();
        if let Some(e) = d.before_write() {
            return Err(e);
        }
        let p = Pending::Data(offset, data.to_vec());
        apply(&mut d.live, &p);
        d.unsynced.push(p);
        Ok(())
    }
}

/// The ways the unsynced writes can end up on the platter after power loss.
fn crash_images(d: &Disk) -> Vec<(&'static str, Vec<u8>)> {
    let with = |keep: &dyn Fn(usize) -> bool, reverse: bool| {
        let mut image = d.durable.clone();
        let mut order: Vec<usize> = (0..d.unsynced.len()).filter(|&i| keep(i)).collect();
        if reverse {
            order.reverse();
        }
        for i in order {
            apply(&mut image, &d.unsynced[i]);
        }
        image
    };
    vec![
        ("none of the unsynced writes", d.durable.clone()),
        ("all of them", with(&|_| true, false)),
        ("the first half", with(&|i| i < d.unsynced.len() / 2, false)),
        ("every other one", with(&|i| i % 2 == 0, false)),
        ("all, in reverse order", with(&|_| true, true)),
    ]
}

const WAIT: Duration = Duration::from_secs(10);
const MESSAGES: usize = 24;

/// The workload: durable publishes in groups of 1 to 4, each group waited for. Returns the
/// acknowledged (sequence, id) pairs and the first refusal, if any.
fn workload(backend: SimBackend) -> (Vec<(u64, MessageId)>, Option<String>) {
    let disk = Arc::clone(&backend.0);
    let label = Path::new("/simulated/tessera.redb");
    let Ok(profile) = Profile::from_backend(label, backend) else { return (Vec::new(), Some("open".into())) };
    let cfg = JournalConfig { max_batch: 3, ..JournalConfig::default() };
    let Ok(journal) = Journal::open(&profile, cfg) else { return (Vec::new(), Some("journal open".into())) };
    let broker = Broker::default();
    broker.attach_journal(Arc::new(journal.clone()));
    let client = broker.connect(None);
    let mut acked = Vec::new();
    let mut refusal = None;
    let mut sent = 0;
    'outer: while sent < MESSAGES {
        let group = (1 + sent % 4).min(MESSAGES - sent);
        let mut acks = Vec::new();
        for _ in 0..group {
            match client.publish(&format!("t.{}", sent % 3), vec![sent as u8; 100], MessageOptions::default().durable())
            {
                Ok(p) => acks.push((p.id, p.commit.unwrap())),
                Err(e) => {
                    refusal = Some(e.to_string());
                    break 'outer;
                }
            }
            sent += 1;
        }
        for (id, ack) in acks {
            match ack.wait(WAIT) {
                Ok(seq) => acked.push((seq, id)),
                Err(e) => {
                    refusal.get_or_insert(e.to_string());
                }
            }
        }
        if refusal.is_some() {
            break;
        }
    }
    let d = disk.lock();
    IO_DURING_WORKLOAD.with(|c| c.set((d.writes, d.syncs)));
    FAULT_HIT_DURING_WORKLOAD.with(|c| c.set(d.dead || d.full_refusals > 0));
    (acked, refusal)
}

thread_local! {
    /// Writes and syncs done while publishing, before the journal and database closed.
    static IO_DURING_WORKLOAD: std::cell::Cell<(u64, u64)> = const { std::cell::Cell::new((0, 0)) };
    /// Whether the planned fault struck while publishing (batching, and so the number of
    /// writes, depends on timing).
    static FAULT_HIT_DURING_WORKLOAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn fault_hit() -> bool {
    FAULT_HIT_DURING_WORKLOAD.with(std::cell::Cell::get)
}

/// Opens a crash image and checks every acknowledged message is there, intact.
fn check_image(image: Vec<u8>, acked: &[(u64, MessageId)], what: &str) {
    let label = Path::new("/simulated/after-crash.redb");
    let profile = match Profile::from_backend(label, SimBackend::new(image, Fault::None)) {
        Ok(p) => p,
        // A crash before the database was first created leaves nothing to open; nothing was
        // acknowledged then.
        Err(e) => {
            assert!(acked.is_empty(), "{what}: cannot reopen ({e}) but {} messages were acknowledged", acked.len());
            return;
        }
    };
    let journal = Journal::open(&profile, JournalConfig::default()).unwrap_or_else(|e| panic!("{what}: {e}"));
    let stored = journal.replay(1, usize::MAX).unwrap_or_else(|e| panic!("{what}: {e}"));
    for (seq, id) in acked {
        let found = stored.iter().find(|m| m.seq == *seq);
        assert_eq!(found.map(|m| m.envelope.id), Some(*id), "{what}: acknowledged message {seq} lost or changed");
    }
    let report = journal.verify().unwrap();
    assert!(report.is_ok(), "{what}: {:?}", report.problems);
}

fn count_io() -> (u64, u64) {
    let backend = SimBackend::new(Vec::new(), Fault::None);
    let (acked, refusal) = workload(backend);
    assert_eq!(acked.len(), MESSAGES, "fault-free run: {refusal:?}");
    IO_DURING_WORKLOAD.with(std::cell::Cell::get)
}

#[test]
fn power_loss_at_every_write_loses_nothing_acknowledged() {
    let (writes, syncs) = count_io();
    eprintln!("workload: {writes} writes, {syncs} syncs; 5 crash images at each write");
    assert!(writes > 20, "the workload should take many writes, took {writes}");
    for at in 0..writes {
        let backend = SimBackend::new(Vec::new(), Fault::PowerAt(at));
        let (acked, _) = workload(backend.clone());
        let d = backend.0.lock();
        for (what, image) in crash_images(&d) {
            check_image(image, &acked, &format!("power lost at write {at}, keeping {what}"));
        }
    }
}

#[test]
fn a_failed_fsync_stops_acknowledgements_and_loses_nothing() {
    let (_, syncs) = count_io();
    for at in 0..syncs {
        let backend = SimBackend::new(Vec::new(), Fault::SyncFailsAt(at));
        let (acked, refusal) = workload(backend.clone());
        // The first syncs belong to creating the database; a failure there fails the open.
        if at >= 2 && fault_hit() {
            assert!(refusal.is_some(), "fsync {at} failed but nothing was refused");
            assert!(acked.len() < MESSAGES, "fsync {at}: acknowledged everything despite the failure");
        }
        let d = backend.0.lock();
        for (what, image) in crash_images(&d) {
            check_image(image, &acked, &format!("fsync {at} failed, keeping {what}"));
        }
    }
}

#[test]
fn a_full_disk_refuses_with_a_typed_error_and_keeps_what_was_acknowledged() {
    let (writes, _) = count_io();
    let mut full_seen = 0;
    for at in (writes / 3..writes).step_by(3) {
        let backend = SimBackend::new(Vec::new(), Fault::FullFrom(at));
        let (acked, refusal) = workload(backend.clone());
        if fault_hit() {
            let refusal = refusal.unwrap_or_else(|| panic!("disk full from write {at} but nothing was refused"));
            assert!(refusal.contains("full"), "disk full from write {at}: refused with {refusal:?}");
            full_seen += 1;
        }
        // The disk is still there: what it holds (synced or not) keeps every acknowledged message.
        let d = backend.0.lock();
        check_image(d.durable.clone(), &acked, &format!("disk full from write {at}, synced state"));
        check_image(d.live.clone(), &acked, &format!("disk full from write {at}, live state"));
    }
    assert!(full_seen > 5, "the full disk struck during publishing only {full_seen} times");
}
