//! Bench stamps (see `protocol::stamp`): with `TESSERA_BENCH_STAMPS` set to a directory, every
//! stamp in what the page posts is noted with the machine's monotonic clock as the post
//! reaches the host (`<nanoseconds> <stamp> in` lines in `<dir>/host-<pid>-<view>.stamps`, a
//! file for each of the host's views), and every
//! stamp in what the host hands the page as it does (`... out`). A thread of its own writes
//! them: the page's path only reads the clock and queues the numbers. Without the variable
//! nothing is looked for.

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::OnceLock;

use crate::to_shell::ViewId;

/// The directory variable `tessera bench e2e` sets for the shell and so for its hosts.
pub(crate) const ENV: &str = "TESSERA_BENCH_STAMPS";

/// Most notes waiting for the writer; past it they are dropped (and the bench sees them lost).
const QUEUE: usize = 1 << 16;

/// A note: when, the stamp, whether it came from the page (or went to it), and the view.
type Note = (u64, u64, bool, ViewId);

static SINK: OnceLock<Option<flume::Sender<Note>>> = OnceLock::new();

/// Notes the stamps in one post from `view`'s page, if this host notes stamps.
pub(crate) fn record(view: ViewId, body: &str) {
    note(view, body, true);
}

/// Notes the stamps in what is about to be handed to `view`'s page, if this host notes stamps.
pub(crate) fn record_out(view: ViewId, text: &str) {
    note(view, text, false);
}

fn note(view: ViewId, text: &str, from_page: bool) {
    let Some(sink) = SINK.get_or_init(start) else { return };
    let now = monotonic_ns();
    for stamp in protocol::stamp::stamps(text) {
        let _ = sink.try_send((now, stamp, from_page, view));
    }
}

fn line(out: &mut impl std::io::Write, (at, stamp, from_page, _): Note) -> bool {
    writeln!(out, "{at} {stamp} {}", if from_page { "in" } else { "out" }).is_ok()
}

/// Writes `note` to its view's file (made with the view's first note).
fn write(dir: &std::path::Path, files: &mut HashMap<ViewId, std::io::BufWriter<std::fs::File>>, note: Note) -> bool {
    let out = match files.entry(note.3) {
        std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
        std::collections::hash_map::Entry::Vacant(v) => {
            let path = dir.join(format!("host-{}-{}.stamps", std::process::id(), note.3));
            match std::fs::File::create(&path) {
                Ok(f) => v.insert(std::io::BufWriter::new(f)),
                Err(e) => {
                    tracing::warn!("bench stamps not noted: creating {}: {e}", path.display());
                    return false;
                }
            }
        }
    };
    line(out, note)
}

fn monotonic_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    u64::try_from(t.tv_sec)
        .unwrap_or(0)
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::try_from(t.tv_nsec).unwrap_or(0))
}

fn start() -> Option<flume::Sender<Note>> {
    let dir = std::path::PathBuf::from(std::env::var_os(ENV).filter(|d| !d.is_empty())?);
    let (tx, rx) = flume::bounded::<Note>(QUEUE);
    let spawned = std::thread::Builder::new().name("bench-stamps".into()).spawn(move || {
        let mut files: HashMap<ViewId, std::io::BufWriter<std::fs::File>> = HashMap::new();
        // Written out whenever the queue runs dry: the bench reads the files while the desk runs.
        while let Ok(note) = rx.recv() {
            let mut ok = write(&dir, &mut files, note);
            while let Ok(note) = rx.try_recv() {
                ok &= write(&dir, &mut files, note);
            }
            if !ok || files.values_mut().any(|f| f.flush().is_err()) {
                tracing::warn!("could not write bench stamps in {}", dir.display());
                return;
            }
        }
    });
    match spawned {
        Ok(_) => Some(tx),
        Err(e) => {
            tracing::warn!("bench stamps not noted: {e}");
            None
        }
    }
}
