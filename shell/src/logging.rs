//! Where the shell's logs go: to stderr for the person at the terminal (readable, filtered by
//! `TESSERA_LOG`, default `warn`), and, for `tessera run`, as JSON lines into the profile
//! (`logs/tessera.log`, filtered by `TESSERA_LOG_FILE`, default `info`) for IT's log shipper:
//! the file is rotated when it would pass 10 MiB, and five old ones are kept
//! (`tessera.log.1` newest). Message payloads and secrets are never logged by the shell.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// A log file is rotated when it would pass this many bytes.
pub(crate) const ROTATE_AT: u64 = 10 << 20;
/// Rotated files kept beside the current one.
pub(crate) const KEEP: usize = 5;

/// Starts logging: stderr always; JSON lines into `log_dir` when given (and usable).
pub(crate) fn init(log_dir: Option<&Path>) {
    let stderr_filter = EnvFilter::try_from_env("TESSERA_LOG").unwrap_or_else(|_| EnvFilter::new("warn"));
    let ansi = io::IsTerminal::is_terminal(&io::stderr());
    let stderr = tracing_subscriber::fmt::layer().with_writer(io::stderr).with_ansi(ansi).with_filter(stderr_filter);
    let mut file_problem = None;
    let file = log_dir.and_then(|dir| match RotatingFile::open(dir, "tessera.log", ROTATE_AT, KEEP) {
        Ok(f) => Some(f),
        Err(e) => {
            file_problem = Some(format!("{}: {e}", dir.display()));
            None
        }
    });
    let file_layer = file.map(|f| {
        let filter = EnvFilter::try_from_env("TESSERA_LOG_FILE").unwrap_or_else(|_| EnvFilter::new("info"));
        tracing_subscriber::fmt::layer().json().with_current_span(false).with_writer(f).with_filter(filter)
    });
    tracing_subscriber::registry().with(stderr).with(file_layer).init();
    if let Some(problem) = file_problem {
        tracing::warn!("the log file cannot be written ({problem}); logging to stderr only");
    }
}

use tracing_subscriber::Layer as _;

/// A log file rotated by size. Each event is written whole, under a lock, so lines from
/// several threads never interleave.
#[derive(Debug, Clone)]
pub(crate) struct RotatingFile(Arc<Mutex<State>>);

#[derive(Debug)]
struct State {
    dir: PathBuf,
    name: String,
    file: File,
    size: u64,
    limit: u64,
    keep: usize,
}

impl RotatingFile {
    /// Opens (appending to) `dir/name`, making `dir` (0700) if needed.
    pub(crate) fn open(dir: &Path, name: &str, limit: u64, keep: usize) -> io::Result<Self> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
        }
        let path = dir.join(name);
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let size = file.metadata()?.len();
        Ok(Self(Arc::new(Mutex::new(State { dir: dir.to_owned(), name: name.to_owned(), file, size, limit, keep }))))
    }
}

impl State {
    fn rotated(&self, n: usize) -> PathBuf {
        self.dir.join(format!("{}.{n}", self.name))
    }

    /// `name.(keep-1)` -> `name.keep`, ..., `name` -> `name.1`, then a fresh `name`.
    fn rotate(&mut self) -> io::Result<()> {
        for n in (1..self.keep).rev() {
            let from = self.rotated(n);
            if from.exists() {
                std::fs::rename(&from, self.rotated(n + 1))?;
            }
        }
        let current = self.dir.join(&self.name);
        if self.keep > 0 {
            std::fs::rename(&current, self.rotated(1))?;
        }
        self.file = OpenOptions::new().create(true).write(true).truncate(true).open(&current)?;
        self.size = 0;
        Ok(())
    }

    fn write_line(&mut self, buf: &[u8]) -> io::Result<()> {
        let len = buf.len() as u64;
        if self.size > 0 && self.size + len > self.limit {
            // A failed rotation keeps writing to the file it has rather than losing the line.
            let _ = self.rotate();
        }
        self.file.write_all(buf)?;
        self.size += len;
        Ok(())
    }
}

/// One event's writer: what the formatter writes is collected and written whole on drop.
pub(crate) struct EventWriter {
    file: RotatingFile,
    buf: Vec<u8>,
}

impl Write for EventWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for EventWriter {
    fn drop(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let mut state = self.file.0.lock().unwrap_or_else(PoisonError::into_inner);
        // Nowhere to report a failed log write but the log itself.
        let _ = state.write_line(&self.buf);
    }
}

impl<'a> MakeWriter<'a> for RotatingFile {
    type Writer = EventWriter;

    fn make_writer(&'a self) -> Self::Writer {
        EventWriter { file: self.clone(), buf: Vec::with_capacity(256) }
    }
}

#[cfg(test)]
mod tests;
