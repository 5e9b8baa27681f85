//! Bench stamps (see `protocol::stamp`): with `TESSERA_BENCH_STAMPS` set to a directory, every
//! stamp in what the page posts is noted with the machine's monotonic clock as the post
//! reaches the host (`<nanoseconds> <stamp> in` lines in `<dir>/host-<pid>.stamps`), and every
//! stamp in what the host hands the page as it does (`... out`). A thread of its own writes
//! them: the page's path only reads the clock and queues the numbers. Without the variable
//! nothing is looked for.

use std::io::Write as _;
use std::sync::OnceLock;

/// The directory variable `tessera bench e2e` sets for the shell and so for its hosts.
pub(crate) const ENV: &str = "TESSERA_BENCH_STAMPS";

/// Most notes waiting for the writer; past it they are dropped (and the bench sees them lost).
const QUEUE: usize = 1 << 16;

/// A note: when, the stamp, and whether it came from the page (or went to it).
type Note = (u64, u64, bool);

static SINK: OnceLock<Option<flume::Sender<Note>>> = OnceLock::new();

/// Notes the stamps in one post from the page, if this host notes stamps.
pub(crate) fn record(body: &str) {
    note(body, true);
}

/// Notes the stamps in what is about to be handed to the page, if this host notes stamps.
pub(crate) fn record_out(text: &str) {
    note(text, false);
}

fn note(text: &str, from_page: bool) {
    let Some(sink) = SINK.get_or_init(start) else { return };
    let now = monotonic_ns();
    for stamp in protocol::stamp::stamps(text) {
        let _ = sink.try_send((now, stamp, from_page));
    }
}

fn line(out: &mut impl std::io::Write, (at, stamp, from_page): Note) -> bool {
    writeln!(out, "{at} {stamp} {}", if from_page { "in" } else { "out" }).is_ok()
}

fn monotonic_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    u64::try_from(t.tv_sec)
        .unwrap_or(0)
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::try_from(t.tv_nsec).unwrap_or(0))
}

fn start() -> Option<flume::Sender<Note>> {
    let dir = std::env::var_os(ENV).filter(|d| !d.is_empty())?;
    let path = std::path::Path::new(&dir).join(format!("host-{}.stamps", std::process::id()));
    let file = match std::fs::File::create(&path) {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!("bench stamps not noted: creating {}: {e}", path.display());
            return None;
        }
    };
    let (tx, rx) = flume::bounded::<Note>(QUEUE);
    let spawned = std::thread::Builder::new().name("bench-stamps".into()).spawn(move || {
        let mut out = std::io::BufWriter::new(file);
        // Written out whenever the queue runs dry: the bench reads the file while the desk runs.
        while let Ok(note) = rx.recv() {
            let mut ok = line(&mut out, note);
            while let Ok(note) = rx.try_recv() {
                ok &= line(&mut out, note);
            }
            if !ok || out.flush().is_err() {
                tracing::warn!("could not write bench stamps to {}", path.display());
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
