//! Framing for the shell ↔ app-host transport: length-prefixed frames that each carry one or
//! more encoded messages, so a busy writer coalesces what is queued into one write.
//!
//! ```text
//! frame   = u32 body length (LE) | body
//! body    = u8 version (1) | u32 message count | message*
//! message = u32 length | bytes
//! ```
//!
//! This module knows bytes only; the message encoding is the transport's choice. Every length
//! is checked against [`FrameLimits`] before anything is buffered, so a peer cannot make the
//! reader allocate more than one frame's limit, and a malformed frame is a typed
//! [`FrameError`], never a panic (see the `frame` fuzz target).

use serde::{Deserialize, Serialize};

const VERSION: u8 = 1;
const LEN: usize = 4;
const HEADER: usize = 1 + 4;

/// Bounds on frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameLimits {
    /// Largest frame body, in bytes.
    pub max_frame_bytes: usize,
    /// Most messages in one frame.
    pub max_messages: usize,
}

impl Default for FrameLimits {
    fn default() -> Self {
        Self { max_frame_bytes: 4 << 20, max_messages: 65_536 }
    }
}

/// Why a frame was refused. The connection that sent it should be closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[non_exhaustive]
pub enum FrameError {
    /// A frame, or a single message, larger than the limit.
    #[error("frame of {len} bytes is over the limit of {limit}")]
    Oversize {
        /// Its length.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// More messages than the limit.
    #[error("frame holds {count} messages, more than the limit of {limit}")]
    TooManyMessages {
        /// How many it claimed.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// An unknown frame version.
    #[error("unknown frame version {0}")]
    Version(u8),
    /// The body does not add up.
    #[error("malformed frame: {reason} at byte {at} of its body")]
    Malformed {
        /// What is wrong.
        reason: String,
        /// Where.
        at: usize,
    },
}

fn u32_at(b: &[u8], at: usize) -> Option<usize> {
    let bytes: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
    Some(u32::from_le_bytes(bytes) as usize)
}

/// Collects messages into frames. Push what is queued, then [`FrameWriter::take`] the bytes for
/// one write.
#[derive(Debug)]
pub struct FrameWriter {
    limits: FrameLimits,
    /// Finished frames.
    out: Vec<u8>,
    /// The frame being filled: its body (header included), without the length prefix.
    body: Vec<u8>,
    count: usize,
}

impl FrameWriter {
    /// A writer within `limits`.
    pub fn new(limits: FrameLimits) -> Self {
        Self { limits, out: Vec::new(), body: Vec::new(), count: 0 }
    }

    /// Adds one encoded message, starting a new frame when the current one is full.
    pub fn push(&mut self, message: &[u8]) -> Result<(), FrameError> {
        let need = 4 + message.len();
        if HEADER + need > self.limits.max_frame_bytes {
            return Err(FrameError::Oversize { len: HEADER + need, limit: self.limits.max_frame_bytes });
        }
        if self.count > 0
            && (self.body.len() + need > self.limits.max_frame_bytes || self.count == self.limits.max_messages)
        {
            self.finish();
        }
        if self.count == 0 {
            self.body.clear();
            self.body.push(VERSION);
            self.body.extend_from_slice(&[0; 4]);
        }
        // Lengths fit in u32: they are under the frame limit, itself a usize below 4 GiB in
        // practice; saturate rather than wrap if a caller sets an absurd limit.
        let len = u32::try_from(message.len()).unwrap_or(u32::MAX);
        self.body.extend_from_slice(&len.to_le_bytes());
        self.body.extend_from_slice(message);
        self.count += 1;
        Ok(())
    }

    fn finish(&mut self) {
        if self.count == 0 {
            return;
        }
        let count = u32::try_from(self.count).unwrap_or(u32::MAX);
        self.body[1..5].copy_from_slice(&count.to_le_bytes());
        let len = u32::try_from(self.body.len()).unwrap_or(u32::MAX);
        self.out.extend_from_slice(&len.to_le_bytes());
        self.out.extend_from_slice(&self.body);
        self.body.clear();
        self.count = 0;
    }

    /// Messages pushed and not yet taken.
    pub fn pending(&self) -> bool {
        self.count > 0 || !self.out.is_empty()
    }

    /// All frames so far, ready for one write.
    pub fn take(&mut self) -> Vec<u8> {
        self.finish();
        std::mem::take(&mut self.out)
    }

    /// All frames so far, added to `out` (the writer's buffer, kept between writes).
    pub fn take_into(&mut self, out: &mut Vec<u8>) {
        self.finish();
        out.append(&mut self.out);
    }
}

/// Reassembles frames from a byte stream read in pieces of any size.
#[derive(Debug)]
pub struct FrameReader {
    limits: FrameLimits,
    buf: Vec<u8>,
    /// Where the unread bytes start: consumed frames are skipped, not shifted out one by one,
    /// so many small frames in one read cost linear time.
    start: usize,
}

impl FrameReader {
    /// A reader within `limits`.
    pub fn new(limits: FrameLimits) -> Self {
        Self { limits, buf: Vec::new(), start: 0 }
    }

    /// Bytes buffered, not yet a whole frame.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    fn check_next_len(&self) -> Result<(), FrameError> {
        match u32_at(&self.buf, self.start) {
            Some(len) if len > self.limits.max_frame_bytes => {
                Err(FrameError::Oversize { len, limit: self.limits.max_frame_bytes })
            }
            _ => Ok(()),
        }
    }

    /// Takes bytes from the stream. Refuses an oversize frame as soon as its length is known,
    /// before its body is buffered.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), FrameError> {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
        self.check_next_len()
    }

    /// The messages of the next whole frame, if one has arrived.
    pub fn next_frame(&mut self) -> Result<Option<Vec<Vec<u8>>>, FrameError> {
        let Some(len) = u32_at(&self.buf, self.start) else { return Ok(None) };
        if len > self.limits.max_frame_bytes {
            return Err(FrameError::Oversize { len, limit: self.limits.max_frame_bytes });
        }
        let body_start = self.start + LEN;
        if self.buf.len() < body_start + len {
            return Ok(None);
        }
        let messages = parse_body(&self.buf[body_start..body_start + len], &self.limits)?;
        self.start = body_start + len;
        // Check the next frame's length now, so an oversize one is refused before its body.
        self.check_next_len()?;
        Ok(Some(messages))
    }
}

fn malformed(reason: &str, at: usize) -> FrameError {
    FrameError::Malformed { reason: reason.to_owned(), at }
}

fn parse_body(body: &[u8], limits: &FrameLimits) -> Result<Vec<Vec<u8>>, FrameError> {
    let Some(&version) = body.first() else { return Err(malformed("empty body", 0)) };
    if version != VERSION {
        return Err(FrameError::Version(version));
    }
    let count = u32_at(body, 1).ok_or_else(|| malformed("truncated message count", 1))?;
    if count == 0 {
        return Err(malformed("frame without messages", 1));
    }
    if count > limits.max_messages {
        return Err(FrameError::TooManyMessages { count, limit: limits.max_messages });
    }
    // Each message takes at least 4 bytes: a count that cannot fit is refused before any
    // allocation sized by it.
    if count > (body.len() - HEADER) / 4 {
        return Err(malformed("message count larger than the body can hold", 1));
    }
    let mut out = Vec::with_capacity(count);
    let mut at = HEADER;
    for _ in 0..count {
        let len = u32_at(body, at).ok_or_else(|| malformed("truncated message length", at))?;
        let start = at + 4;
        let end = start
            .checked_add(len)
            .filter(|&e| e <= body.len())
            .ok_or_else(|| malformed("message runs past the frame", at))?;
        out.push(body[start..end].to_vec());
        at = end;
    }
    if at != body.len() {
        return Err(malformed("bytes after the last message", at));
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
