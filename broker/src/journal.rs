//! The journal port: what the broker needs from persistence. `storage` implements it and the
//! shell wires the two, so the broker never names a database.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::envelope::Envelope;
use crate::error::{Error, Result};

/// Persists durable messages.
pub trait Journal: Send + Sync + fmt::Debug {
    /// Starts persisting `envelope` and returns at once; the ack completes after the commit.
    ///
    /// Called with the broker's lock held, in acceptance order: implementations hand the
    /// envelope to their writer and must not block on I/O here.
    fn append(&self, envelope: &Arc<Envelope>) -> Result<CommitAck>;

    /// Like [`Journal::append`] for a record whose commit nobody waits on: the journal may hold
    /// it briefly to share a commit with others, keeping it in order with every other append.
    fn append_lazy(&self, envelope: &Arc<Envelope>) -> Result<CommitAck> {
        self.append(envelope)
    }

    /// Commits everything appended so far, waiting up to `timeout`.
    fn flush(&self, timeout: Duration) -> Result<()> {
        let _ = timeout;
        Ok(())
    }
}

/// The publisher's end of a pending commit.
#[derive(Debug)]
pub struct CommitAck(flume::Receiver<Result<u64>>);

/// The journal's end of a pending commit.
#[derive(Debug)]
pub struct CommitSignal(flume::Sender<Result<u64>>);

impl CommitAck {
    /// A linked pair: the journal keeps the signal, the publisher gets the ack.
    pub fn pair() -> (CommitSignal, CommitAck) {
        let (tx, rx) = flume::bounded(1);
        (CommitSignal(tx), CommitAck(rx))
    }

    /// Waits for the commit; `Ok` carries the journal's sequence number.
    pub fn wait(&self, timeout: Duration) -> Result<u64> {
        match self.0.recv_timeout(timeout) {
            Ok(r) => r,
            Err(flume::RecvTimeoutError::Timeout) => {
                Err(Error::Timeout { after_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX) })
            }
            Err(flume::RecvTimeoutError::Disconnected) => {
                Err(Error::Journal { reason: "the journal dropped the commit".into() })
            }
        }
    }

    /// The outcome if the commit has finished, without waiting.
    pub fn try_wait(&self) -> Option<Result<u64>> {
        match self.0.try_recv() {
            Ok(r) => Some(r),
            Err(flume::TryRecvError::Empty) => None,
            Err(flume::TryRecvError::Disconnected) => {
                Some(Err(Error::Journal { reason: "the journal dropped the commit".into() }))
            }
        }
    }

    /// Waits for the commit without blocking a thread.
    pub async fn wait_async(&self) -> Result<u64> {
        self.0
            .recv_async()
            .await
            .unwrap_or_else(|_| Err(Error::Journal { reason: "the journal dropped the commit".into() }))
    }
}

impl CommitSignal {
    /// Reports the outcome of the commit.
    pub fn complete(self, result: Result<u64>) {
        // The publisher may have stopped waiting; that is its choice.
        let _ = self.0.try_send(result);
    }
}
