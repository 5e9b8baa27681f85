//! The host's writing half of a view's connection to the shell, shared by whatever on GTK's
//! thread (the view's page, its navigations) and the host's own threads has something to say.
//!
//! Nothing that says something waits for the socket: messages go to a queue, and a thread of
//! the connection's own writes them. GTK's thread may serve other views (a process group's
//! shared host), and a shell holding one app to its rate limit (by not reading its socket) must
//! not stop them. The page is held back instead: it is told (acknowledged) only what has been
//! written, and its pauses are answered only once what it posted before them has been; the
//! writer wakes GTK's thread (`wake`) when either may be due.

use std::collections::VecDeque;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use app_host::HostConnection;
use protocol::wire::HostMsg;

/// Which of the host's views a connection to the shell serves.
pub(crate) type ViewId = u64;

/// A view's connection's writing half.
pub(crate) type Writer = Arc<ToShell>;

/// Most of the page's messages queued and not yet written; past it, what the page posts is
/// refused (its preload holds it far below this: a page bypassing that is not waited for).
pub(crate) const MOST_QUEUED: u64 = 50_000;

/// Items the queue holds: every post of the page it may have waiting, and the host's own.
const QUEUE_ITEMS: usize = MOST_QUEUED as usize + 4096;

/// Messages written between two flushes at most, when many are waiting.
const COALESCE: usize = 256;

/// One item for the writer: messages, and how many of the page's own messages they carry.
struct Item {
    msgs: Vec<HostMsg>,
    from_page: u64,
}

/// The queue to a view's connection, and what has gone through it.
pub(crate) struct ToShell {
    tx: flume::Sender<Item>,
    /// The page's messages queued so far, and written so far.
    queued: AtomicU64,
    written: Arc<AtomicU64>,
    /// Whether GTK's thread wants to hear when messages have been written (a pause is waiting,
    /// or an acknowledgement is due).
    watching: Arc<AtomicBool>,
    /// For ending the connection both ways.
    stream: UnixStream,
}

impl std::fmt::Debug for ToShell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToShell").field("queued", &self.queued).field("written", &self.written).finish_non_exhaustive()
    }
}

impl ToShell {
    /// Starts the writer thread on `conn` (the connection's writing half, `stream` a clone of
    /// its socket); `wake` runs on the writer's thread when GTK's thread may have something to
    /// do (see `watch`).
    pub(crate) fn start(
        conn: HostConnection,
        stream: UnixStream,
        wake: impl Fn() + Send + 'static,
    ) -> std::io::Result<Writer> {
        // Bounded by what the page may have waiting (each of its posts is one item at least)
        // and room for the host's own messages; full, a message is dropped (see `queue`).
        let (tx, rx) = flume::bounded::<Item>(QUEUE_ITEMS);
        let written = Arc::new(AtomicU64::new(0));
        let watching = Arc::new(AtomicBool::new(false));
        {
            let (written, watching) = (Arc::clone(&written), Arc::clone(&watching));
            std::thread::Builder::new().name("shell-writer".into()).spawn(move || {
                write_all(conn, &rx, &written, &watching, &wake);
            })?;
        }
        Ok(Arc::new(Self { tx, queued: AtomicU64::new(0), written, watching, stream }))
    }

    /// Queues messages that carry `from_page` of the page's messages; `false` (nothing queued)
    /// if too many of the page's are waiting already.
    fn queue(&self, msgs: Vec<HostMsg>, from_page: u64) -> bool {
        // Refused, they are still counted through the queue: the page counts every post.
        let refused = from_page > 0 && self.waiting() >= MOST_QUEUED;
        let msgs = if refused { Vec::new() } else { msgs };
        self.queued.fetch_add(from_page, Ordering::Relaxed);
        match self.tx.try_send(Item { msgs, from_page }) {
            Ok(()) => !refused,
            // The writer only goes when the connection has: what is sent then goes nowhere.
            Err(flume::TrySendError::Disconnected(_)) => false,
            Err(flume::TrySendError::Full(item)) => {
                // Only a host whose own messages pile up gets here (the page's are refused
                // first); what it loses is counted through, or the page would wait forever.
                tracing::warn!("the queue to the shell is full; a message was dropped");
                self.written.fetch_add(item.from_page, Ordering::SeqCst);
                false
            }
        }
    }

    /// The page's messages queued so far.
    pub(crate) fn queued(&self) -> u64 {
        self.queued.load(Ordering::Relaxed)
    }

    /// The page's messages written so far.
    pub(crate) fn written(&self) -> u64 {
        self.written.load(Ordering::SeqCst)
    }

    /// The page's messages queued and not yet written.
    pub(crate) fn waiting(&self) -> u64 {
        self.queued().saturating_sub(self.written())
    }

    /// Whether GTK's thread is woken after each write.
    pub(crate) fn watch(&self, on: bool) {
        self.watching.store(on, Ordering::SeqCst);
    }

    /// Ends the connection both ways: the shell sees it close.
    pub(crate) fn shutdown(&self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }
}

/// The writer thread: writes what is queued, a batch at a time, until the connection fails or
/// every sender has gone.
fn write_all(
    mut conn: HostConnection,
    rx: &flume::Receiver<Item>,
    written: &AtomicU64,
    watching: &AtomicBool,
    wake: &dyn Fn(),
) {
    let mut batch = VecDeque::new();
    while let Ok(first) = rx.recv() {
        batch.push_back(first);
        while batch.len() < COALESCE
            && let Ok(more) = rx.try_recv()
        {
            batch.push_back(more);
        }
        let mut from_page = 0;
        let mut result = Ok(());
        for item in batch.drain(..) {
            from_page += item.from_page;
            for msg in &item.msgs {
                result = result.and_then(|()| conn.send(msg));
            }
        }
        if let Err(e) = result.and_then(|()| conn.flush()) {
            // The reader thread sees the same broken socket and closes the view.
            tracing::warn!("could not write to the shell: {e:#}");
            return;
        }
        // (Sequentially consistent with `watch`: a write is either seen by GTK's thread when it
        // turns watching on, or wakes it.)
        written.fetch_add(from_page, Ordering::SeqCst);
        if from_page > 0 && watching.load(Ordering::SeqCst) {
            wake();
        }
    }
}

/// Queues one message for the shell.
pub(crate) fn send(writer: &Writer, msg: &HostMsg) {
    writer.queue(vec![msg.clone()], 0);
}

/// Queues the page's messages (`msgs`, carrying `from_page` of them), to be written together;
/// `false` (nothing queued) if too many of the page's are waiting already.
pub(crate) fn send_page(writer: &Writer, msgs: Vec<HostMsg>, from_page: u64) -> bool {
    msgs.is_empty() || writer.queue(msgs, from_page)
}
