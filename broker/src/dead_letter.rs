//! The dead-letter queue: messages that could not be delivered, with the reason, bounded.

use std::collections::VecDeque;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::envelope::Envelope;
use crate::ids::{DeadLetterId, SubscriptionId, Target};

/// Why a message was dead-lettered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
#[non_exhaustive]
pub enum DeadLetterReason {
    /// A directed send had nowhere to go.
    NoRoute,
    /// Its time to live ran out before delivery.
    Expired,
    /// The recipient's queue was full and its policy is dead-letter.
    QueueFull,
    /// The recipient refused it.
    Rejected {
        /// The recipient's words.
        detail: String,
    },
}

/// Who should have received it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Recipient {
    /// A subscription.
    Subscription {
        /// Its id.
        id: SubscriptionId,
    },
    /// The target of a directed send.
    Target {
        /// The target.
        target: Target,
    },
}

/// One dead letter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// Its id in the queue.
    pub id: DeadLetterId,
    /// The message.
    pub envelope: Arc<Envelope>,
    /// Why.
    pub reason: DeadLetterReason,
    /// Who should have had it.
    pub recipient: Recipient,
    /// When it was dead-lettered.
    pub at: Timestamp,
}

#[derive(Debug)]
pub(crate) struct DeadLetters {
    entries: VecDeque<DeadLetter>,
    capacity: usize,
    next_id: u64,
    pub(crate) evicted: u64,
    pub(crate) total: u64,
}

impl DeadLetters {
    pub(crate) fn new(capacity: usize) -> Self {
        Self { entries: VecDeque::new(), capacity: capacity.max(1), next_id: 1, evicted: 0, total: 0 }
    }

    pub(crate) fn push(
        &mut self,
        envelope: Arc<Envelope>,
        reason: DeadLetterReason,
        recipient: Recipient,
        at: Timestamp,
    ) {
        if self.entries.len() == self.capacity {
            self.entries.pop_front();
            self.evicted += 1;
        }
        let id = DeadLetterId(self.next_id);
        self.next_id += 1;
        self.total += 1;
        self.entries.push_back(DeadLetter { id, envelope, reason, recipient, at });
    }

    pub(crate) fn list(&self) -> Vec<DeadLetter> {
        self.entries.iter().cloned().collect()
    }

    pub(crate) fn take(&mut self, id: DeadLetterId) -> Option<DeadLetter> {
        // Ids are increasing, so the queue is sorted by id.
        let pos = self.entries.binary_search_by_key(&id, |d| d.id).ok()?;
        self.entries.remove(pos)
    }

    /// Puts back an entry whose re-queue failed, in id order.
    pub(crate) fn restore(&mut self, letter: DeadLetter) {
        let pos = self.entries.partition_point(|d| d.id < letter.id);
        self.entries.insert(pos, letter);
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}
