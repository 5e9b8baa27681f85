//! The host's writing half of its connection to the shell, shared by whatever on GTK's thread
//! (a view's page, its navigations) and the host's own threads has something to say.

use std::sync::Arc;

use app_host::HostConnection;
use parking_lot::Mutex;
use protocol::wire::HostMsg;

/// The connection's writing half, behind one lock: each message (or batch) goes out whole.
pub(crate) type Writer = Arc<Mutex<HostConnection>>;

/// Writes one message to the shell at once.
pub(crate) fn send(writer: &Writer, msg: &HostMsg) {
    let mut w = writer.lock();
    if let Err(e) = w.send(msg).and_then(|()| w.flush()) {
        // The reader thread sees the same broken socket and ends the host.
        tracing::warn!("could not write to the shell: {e:#}");
    }
}

/// [`send`] for several messages, in one write.
pub(crate) fn send_all(writer: &Writer, msgs: &[HostMsg]) {
    if msgs.is_empty() {
        return;
    }
    let mut w = writer.lock();
    if let Err(e) = msgs.iter().try_for_each(|m| w.send(m)).and_then(|()| w.flush()) {
        tracing::warn!("could not write to the shell: {e:#}");
    }
}
