//! The W3C Trace Context `traceparent` a message carries on the wire: which trace it belongs to,
//! the span it was sent from, and whether that trace is being recorded.
//!
//! Text form (version `00`): `00-<trace id: 32 hex>-<parent span id: 16 hex>-<flags: 2 hex>`,
//! lowercase, 55 characters. A later version is read by its first four fields, as the
//! recommendation asks; version `ff`, upper-case hex, and all-zero ids are refused.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Length of a version-00 `traceparent`.
pub const TRACEPARENT_LEN: usize = 55;

/// Longest `traceparent` text read (a later version may append fields).
const MAX_TRACEPARENT: usize = 256;

/// A `traceparent`: the trace, the span a message was sent from, and the trace flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TraceParent {
    /// The trace id (16 bytes, never zero).
    pub trace_id: u128,
    /// The span this was sent from (8 bytes, never zero): the parent of what the receiver does.
    pub span_id: u64,
    /// Trace flags; bit 0 is "sampled" (the trace is being recorded).
    pub flags: u8,
}

/// Why a `traceparent` was refused, in one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a W3C traceparent: {0}")]
pub struct TraceParentError(&'static str);

impl TraceParent {
    /// The "sampled" flag.
    pub const SAMPLED: u8 = 1;

    /// A context for `trace_id` and `span_id` (both non-zero), sampled or not.
    pub fn new(trace_id: u128, span_id: u64, sampled: bool) -> Self {
        Self { trace_id, span_id, flags: u8::from(sampled) }
    }

    /// Reads a `traceparent` header value.
    pub fn parse(text: &str) -> Result<Self, TraceParentError> {
        let b = text.as_bytes();
        if b.len() > MAX_TRACEPARENT {
            return Err(TraceParentError("longer than 256 characters"));
        }
        if b.len() < TRACEPARENT_LEN {
            return Err(TraceParentError("shorter than 55 characters"));
        }
        let version = hex(&b[0..2]).ok_or(TraceParentError("the version is not two lowercase hex digits"))?;
        if version == 0xff {
            return Err(TraceParentError("version ff is invalid"));
        }
        if version == 0 && b.len() != TRACEPARENT_LEN {
            return Err(TraceParentError("a version-00 traceparent is 55 characters"));
        }
        if b.len() > TRACEPARENT_LEN && b[TRACEPARENT_LEN] != b'-' {
            return Err(TraceParentError("what follows the flags is not a '-'"));
        }
        if b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
            return Err(TraceParentError("the fields are not separated by '-'"));
        }
        let trace_id = hex(&b[3..35]).ok_or(TraceParentError("the trace id is not 32 lowercase hex digits"))?;
        let span_id = hex(&b[36..52]).ok_or(TraceParentError("the parent id is not 16 lowercase hex digits"))?;
        let flags = hex(&b[53..55]).ok_or(TraceParentError("the flags are not two lowercase hex digits"))?;
        if trace_id == 0 {
            return Err(TraceParentError("the trace id is all zeros"));
        }
        if span_id == 0 {
            return Err(TraceParentError("the parent id is all zeros"));
        }
        // Each value fits its field: the digits were counted above.
        Ok(Self { trace_id, span_id: span_id as u64, flags: flags as u8 })
    }

    /// Whether the trace is being recorded.
    pub fn sampled(self) -> bool {
        self.flags & Self::SAMPLED != 0
    }

    /// The same trace, sent on from span `span_id`.
    pub fn child(self, span_id: u64) -> Self {
        Self { span_id, ..self }
    }

    /// The trace id as 32 lowercase hex digits (FDC3's `traceId`, OTLP/JSON's `traceId`).
    pub fn trace_hex(self) -> String {
        format!("{:032x}", self.trace_id)
    }

    /// Appends the version-00 text to `out`.
    pub fn write(self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.to_string().as_bytes());
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "00-{:032x}-{:016x}-{:02x}", self.trace_id, self.span_id, self.flags)
    }
}

/// A trace id as 32 lowercase hex digits (FDC3's `traceId`), if it is one and not zero.
pub fn parse_trace_id(text: &str) -> Option<u128> {
    (text.len() == 32).then(|| hex(text.as_bytes())).flatten().filter(|&t| t != 0)
}

/// The number `digits` spell in lowercase hex (at most 32 of them).
fn hex(digits: &[u8]) -> Option<u128> {
    if digits.is_empty() || digits.len() > 32 {
        return None;
    }
    digits.iter().try_fold(0u128, |n, &c| {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => return None,
        };
        Some((n << 4) | u128::from(d))
    })
}

#[cfg(test)]
mod tests;
