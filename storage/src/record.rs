//! The on-disk encoding of one journalled message. Version 1, little-endian:
//!
//! ```text
//! u8   version (1)
//! u8   flags: bit 0 durable, bit 1 has expiry, bit 2 has app, bit 3 payload compressed
//! u128 message id        u128 trace id
//! u64  timestamp (µs)    u64 topic sequence    u64 sender client id
//! u64  expiry (µs)                       if flag bit 1
//! u16  app length, app bytes (UTF-8)     if flag bit 2
//! u16  topic length, topic bytes (UTF-8, a valid topic)
//! u32  original payload length                                 if flag bit 3
//! u32  payload length, payload bytes (an LZ4 block if flag bit 3)
//! u32  CRC-32 of everything before it
//! ```
//!
//! The checksum catches bit rot that the database engine would not notice: a flipped byte in a
//! payload still decodes, so without it `journal verify` could not tell.
//!
//! Records are read back from a file that may have been damaged, so [`decode`] checks every
//! length and string and never panics (see the `record` fuzz target).

use std::sync::Arc;

use broker::{AppId, ClientId, Envelope, MessageId, Sender, Timestamp, Topic, TraceId};

use crate::error::DecodeError;

const VERSION: u8 = 1;
const DURABLE: u8 = 1;
const HAS_EXPIRY: u8 = 2;
const HAS_APP: u8 = 4;
const COMPRESSED: u8 = 8;

/// Payloads at least this large are compressed when the journal is asked to.
pub const COMPRESS_MIN_BYTES: usize = 1024;
/// Largest payload a record may decompress to (the broker's limit is 1 MiB by default).
pub const MAX_PAYLOAD_BYTES: usize = 16 << 20;

/// A message as the journal keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// Journal-wide sequence number, in commit order, from 1.
    pub seq: u64,
    /// Sequence number within its topic, from 1.
    pub topic_seq: u64,
    /// The message; its broker `seq` field is that of the process that accepted it.
    pub envelope: Arc<Envelope>,
}

/// Whether a message can be stored: its strings fit their 16-bit lengths and its payload the
/// size a record may decompress to. [`encode`] cannot fail for a message that passes.
pub fn check(env: &Envelope) -> Result<(), DecodeError> {
    let app = env.sender.app.as_ref().map_or(0, |a| a.0.len());
    for (what, len) in [("app id", app), ("topic", env.topic.as_str().len())] {
        if len > usize::from(u16::MAX) {
            return Err(DecodeError::TooLong { what, len });
        }
    }
    if env.payload.len() > MAX_PAYLOAD_BYTES {
        return Err(DecodeError::TooLong { what: "payload", len: env.payload.len() });
    }
    Ok(())
}

fn put_u16(out: &mut Vec<u8>, len: usize) -> Result<(), DecodeError> {
    let v = u16::try_from(len).map_err(|_| DecodeError::TooLong { what: "string", len })?;
    out.extend_from_slice(&v.to_le_bytes());
    Ok(())
}

/// Encodes a message; fails only for strings longer than 64 KiB or payloads over 4 GiB, which
/// the broker's limits rule out. With `compress`, a payload of at least
/// [`COMPRESS_MIN_BYTES`] is stored as an LZ4 block if that saves at least an eighth.
pub fn encode(env: &Envelope, topic_seq: u64, compress: bool, out: &mut Vec<u8>) -> Result<(), DecodeError> {
    out.clear();
    let payload = env.payload.as_bytes();
    let packed = (compress && payload.len() >= COMPRESS_MIN_BYTES)
        .then(|| lz4_flex::block::compress(payload))
        .filter(|c| c.len() <= payload.len() - payload.len() / 8);
    let mut flags = 0;
    if packed.is_some() {
        flags |= COMPRESSED;
    }
    if env.durable {
        flags |= DURABLE;
    }
    if env.expires_at.is_some() {
        flags |= HAS_EXPIRY;
    }
    if env.sender.app.is_some() {
        flags |= HAS_APP;
    }
    out.push(VERSION);
    out.push(flags);
    out.extend_from_slice(&env.id.0.to_le_bytes());
    out.extend_from_slice(&env.trace_id.0.to_le_bytes());
    out.extend_from_slice(&env.timestamp.0.to_le_bytes());
    out.extend_from_slice(&topic_seq.to_le_bytes());
    out.extend_from_slice(&env.sender.client.0.to_le_bytes());
    if let Some(at) = env.expires_at {
        out.extend_from_slice(&at.0.to_le_bytes());
    }
    if let Some(app) = &env.sender.app {
        put_u16(out, app.0.len())?;
        out.extend_from_slice(app.0.as_bytes());
    }
    put_u16(out, env.topic.as_str().len())?;
    out.extend_from_slice(env.topic.as_str().as_bytes());
    let len32 = |len: usize| u32::try_from(len).map_err(|_| DecodeError::TooLong { what: "payload", len });
    match &packed {
        Some(c) => {
            out.extend_from_slice(&len32(payload.len())?.to_le_bytes());
            out.extend_from_slice(&len32(c.len())?.to_le_bytes());
            out.extend_from_slice(c);
        }
        None => {
            out.extend_from_slice(&len32(payload.len())?.to_le_bytes());
            out.extend_from_slice(payload);
        }
    }
    let crc = crc32fast::hash(out);
    out.extend_from_slice(&crc.to_le_bytes());
    Ok(())
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or(DecodeError::Truncated { what, at: self.pos })?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, what)?);
        Ok(a)
    }

    fn u16(&mut self, what: &'static str) -> Result<usize, DecodeError> {
        Ok(usize::from(u16::from_le_bytes(self.array(what)?)))
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    fn u128(&mut self, what: &'static str) -> Result<u128, DecodeError> {
        Ok(u128::from_le_bytes(self.array(what)?))
    }

    fn str(&mut self, len: usize, what: &'static str) -> Result<&'a str, DecodeError> {
        let at = self.pos;
        std::str::from_utf8(self.take(len, what)?).map_err(|_| DecodeError::BadUtf8 { what, at })
    }
}

/// Decodes a record stored under journal sequence `seq`.
pub fn decode(seq: u64, buf: &[u8]) -> Result<StoredMessage, DecodeError> {
    let Some(body_len) = buf.len().checked_sub(4) else {
        return Err(DecodeError::Truncated { what: "checksum", at: 0 });
    };
    let (body, crc) = buf.split_at(body_len);
    let mut stored = [0u8; 4];
    stored.copy_from_slice(crc);
    if crc32fast::hash(body) != u32::from_le_bytes(stored) {
        return Err(DecodeError::Checksum);
    }
    let buf = body;
    let mut r = Reader { buf, pos: 0 };
    let [version, flags] = r.array::<2>("header")?;
    if version != VERSION {
        return Err(DecodeError::Version(version));
    }
    if flags & !(DURABLE | HAS_EXPIRY | HAS_APP | COMPRESSED) != 0 {
        return Err(DecodeError::Flags(flags));
    }
    let id = MessageId(r.u128("message id")?);
    let trace_id = TraceId(r.u128("trace id")?);
    let timestamp = Timestamp(r.u64("timestamp")?);
    let topic_seq = r.u64("topic sequence")?;
    let client = ClientId(r.u64("sender")?);
    let expires_at = if flags & HAS_EXPIRY != 0 { Some(Timestamp(r.u64("expiry")?)) } else { None };
    let app = if flags & HAS_APP != 0 {
        let len = r.u16("app length")?;
        Some(AppId::new(r.str(len, "app")?))
    } else {
        None
    };
    let len = r.u16("topic length")?;
    let topic_text = r.str(len, "topic")?;
    let topic = Topic::parse_any(topic_text).map_err(|e| DecodeError::BadTopic(e.to_string()))?;
    let original = if flags & COMPRESSED != 0 {
        let n = u32::from_le_bytes(r.array("original payload length")?) as usize;
        if n > MAX_PAYLOAD_BYTES {
            return Err(DecodeError::TooLong { what: "decompressed payload", len: n });
        }
        Some(n)
    } else {
        None
    };
    let len = u32::from_le_bytes(r.array("payload length")?) as usize;
    let stored = r.take(len, "payload")?;
    let payload = match original {
        Some(n) => {
            let at = r.pos - len;
            let bytes = lz4_flex::block::decompress(stored, n).map_err(|_| DecodeError::BadCompression { at })?;
            if bytes.len() != n {
                return Err(DecodeError::BadCompression { at });
            }
            bytes.into()
        }
        None => stored.to_vec().into(),
    };
    if r.pos != buf.len() {
        return Err(DecodeError::TrailingBytes { extra: buf.len() - r.pos });
    }
    let envelope = Envelope {
        id,
        seq,
        topic,
        payload,
        sender: Sender { client, app },
        timestamp,
        trace_id,
        durable: flags & DURABLE != 0,
        expires_at,
        target: None,
        encoded: Default::default(),
        sampled: Default::default(),
        trace: None,
    };
    Ok(StoredMessage { seq, topic_seq, envelope: Arc::new(envelope) })
}

#[cfg(test)]
mod tests;
