//! Topic and pattern syntax: `.`-separated segments; in patterns `*` matches exactly one segment
//! and `#` zero or more (AMQP semantics).
//!
//! Parsing is the broker's first line of defence against untrusted input, so every rule here
//! returns a typed [`TopicError`] and nothing panics (see the `topic` fuzz target).
//!
//! Topics whose first segment starts with `$` are *reserved* for the shell's own records (as
//! MQTT keeps `$SYS` apart): no client may publish, send, subscribe or replay there, whatever its
//! grants, and no wildcard reaches them, because they never enter the router. Only
//! [`crate::Broker::record`] writes them, straight to the journal.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Most segments a topic or pattern may have.
pub const MAX_SEGMENTS: usize = 32;
/// Longest topic or pattern, in bytes.
pub const MAX_TOPIC_BYTES: usize = 1024;
/// What the first segment of a reserved topic starts with.
pub const RESERVED_PREFIX: char = '$';

/// Whether `s` names the reserved namespace (its first segment starts with `$`).
pub fn is_reserved(s: &str) -> bool {
    s.starts_with(RESERVED_PREFIX)
}

/// Why a topic or pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[non_exhaustive]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TopicError {
    /// The string was empty.
    #[error("topic is empty")]
    Empty,
    /// Longer than [`MAX_TOPIC_BYTES`].
    #[error("topic is {len} bytes long, more than the limit of {limit}")]
    TooLong {
        /// Its length in bytes.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// More than [`MAX_SEGMENTS`] segments.
    #[error("topic has {count} segments, more than the limit of {limit}")]
    TooManySegments {
        /// How many segments it had.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// Two dots in a row, or a leading or trailing dot.
    #[error("segment {index} is empty")]
    EmptySegment {
        /// Zero-based segment index.
        index: usize,
    },
    /// `*` or `#` mixed with other characters in one segment, like `foo#` or `a*b`.
    #[error("segment {index} mixes a wildcard with other characters; `*` and `#` must stand alone")]
    WildcardInsideSegment {
        /// Zero-based segment index.
        index: usize,
    },
    /// A wildcard in a topic that a message is published to.
    #[error("segment {index} is a wildcard; messages are published to concrete topics")]
    WildcardInTopic {
        /// Zero-based segment index.
        index: usize,
    },
    /// A control character or whitespace.
    #[error("segment {index} contains a control or whitespace character")]
    BadCharacter {
        /// Zero-based segment index.
        index: usize,
    },
    /// A client named the reserved namespace (`$...`), which only the shell writes.
    #[error("topics starting with `$` are reserved for the shell's own records")]
    Reserved,
    /// The shell named a record topic outside the reserved namespace.
    #[error("a record topic must start with `$`")]
    NotReserved,
}

/// One segment of a parsed pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Segment {
    /// Matches exactly this text.
    Literal(Box<str>),
    /// `*`: exactly one segment.
    Star,
    /// `#`: zero or more segments.
    Hash,
}

fn check_common(s: &str) -> Result<(), TopicError> {
    if s.is_empty() {
        return Err(TopicError::Empty);
    }
    if s.len() > MAX_TOPIC_BYTES {
        return Err(TopicError::TooLong { len: s.len(), limit: MAX_TOPIC_BYTES });
    }
    // Count before splitting so a hostile 1 KiB string of dots costs one pass.
    let count = s.bytes().filter(|&b| b == b'.').count() + 1;
    if count > MAX_SEGMENTS {
        return Err(TopicError::TooManySegments { count, limit: MAX_SEGMENTS });
    }
    Ok(())
}

fn check_segment(index: usize, seg: &str) -> Result<(), TopicError> {
    if seg.is_empty() {
        return Err(TopicError::EmptySegment { index });
    }
    if seg.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(TopicError::BadCharacter { index });
    }
    if seg.len() > 1 && seg.contains(['*', '#']) {
        return Err(TopicError::WildcardInsideSegment { index });
    }
    Ok(())
}

/// Checks a topic a client may publish to, without allocating: well formed and not reserved.
pub fn validate_topic(s: &str) -> Result<(), TopicError> {
    check_common(s)?;
    if is_reserved(s) {
        return Err(TopicError::Reserved);
    }
    check_concrete(s)
}

fn check_concrete(s: &str) -> Result<(), TopicError> {
    for (index, seg) in s.split('.').enumerate() {
        check_segment(index, seg)?;
        if seg == "*" || seg == "#" {
            return Err(TopicError::WildcardInTopic { index });
        }
    }
    Ok(())
}

/// A validated concrete topic, cheap to clone (shared string).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Topic(Arc<str>);

impl Topic {
    /// Parses a topic a client may publish to: no wildcards, not reserved.
    pub fn parse(s: &str) -> Result<Self, TopicError> {
        validate_topic(s)?;
        Ok(Self(Arc::from(s)))
    }

    /// Parses a topic of the reserved namespace, where the shell keeps its own records.
    pub fn reserved(s: &str) -> Result<Self, TopicError> {
        check_common(s)?;
        if !is_reserved(s) {
            return Err(TopicError::NotReserved);
        }
        check_concrete(s)?;
        Ok(Self(Arc::from(s)))
    }

    /// Parses any concrete topic, reserved or not: for reading what the journal holds.
    pub fn parse_any(s: &str) -> Result<Self, TopicError> {
        if is_reserved(s) { Self::reserved(s) } else { Self::parse(s) }
    }

    /// Whether it is in the reserved namespace.
    pub fn is_reserved(&self) -> bool {
        is_reserved(&self.0)
    }

    /// Wraps text already checked by [`validate_topic`].
    pub(crate) fn from_validated(s: &str) -> Self {
        Self(Arc::from(s))
    }

    /// The topic text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Its segments, in order.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('.')
    }
}

impl fmt::Debug for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Topic {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Topic {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Topic::parse_any(&s).map_err(serde::de::Error::custom)
    }
}

/// A validated subscription pattern.
///
/// Runs of `#` are collapsed (`a.#.#` means the same as `a.#`), which keeps the router's trie
/// small; [`Pattern::as_str`] still returns the text as given.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Pattern {
    text: Arc<str>,
    segments: Arc<[Segment]>,
}

impl Pattern {
    /// Parses a subscription pattern. Patterns never name the reserved namespace.
    pub fn parse(s: &str) -> Result<Self, TopicError> {
        check_common(s)?;
        if is_reserved(s) {
            return Err(TopicError::Reserved);
        }
        let mut segments: Vec<Segment> = Vec::new();
        for (index, seg) in s.split('.').enumerate() {
            check_segment(index, seg)?;
            let seg = match seg {
                "*" => Segment::Star,
                "#" => {
                    if segments.last() == Some(&Segment::Hash) {
                        continue;
                    }
                    Segment::Hash
                }
                lit => Segment::Literal(lit.into()),
            };
            segments.push(seg);
        }
        Ok(Self { text: Arc::from(s), segments: segments.into() })
    }

    /// The pattern text as given.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The normalised segments.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// Whether the pattern contains `*` or `#`.
    pub fn has_wildcard(&self) -> bool {
        self.segments.iter().any(|s| !matches!(s, Segment::Literal(_)))
    }

    /// Matches one topic by walking both segment lists. This is the naive matcher: the router's
    /// reference model in tests and the linear baseline in benchmarks. No pattern matches a
    /// reserved topic, not even `#`.
    pub fn matches(&self, topic: &Topic) -> bool {
        if topic.is_reserved() {
            return false;
        }
        let mut segs = [""; MAX_SEGMENTS];
        let mut len = 0;
        for s in topic.segments().take(MAX_SEGMENTS) {
            segs[len] = s;
            len += 1;
        }
        matches_at(&self.segments, &segs[..len])
    }
}

/// Iterative wildcard matching with one backtrack point per `#`, the classic glob algorithm;
/// linear in practice and never exponential.
fn matches_at(pattern: &[Segment], topic: &[&str]) -> bool {
    let (mut p, mut t) = (0usize, 0usize);
    // Where to resume after the most recent `#` if the current attempt fails.
    let mut backtrack: Option<(usize, usize)> = None;
    while t < topic.len() {
        match pattern.get(p) {
            Some(Segment::Hash) => {
                backtrack = Some((p, t));
                p += 1;
                continue;
            }
            Some(Segment::Star) => {
                p += 1;
                t += 1;
                continue;
            }
            Some(Segment::Literal(lit)) if **lit == *topic[t] => {
                p += 1;
                t += 1;
                continue;
            }
            _ => {}
        }
        match backtrack {
            Some((bp, bt)) => {
                // Let the `#` at `bp` swallow one more segment.
                backtrack = Some((bp, bt + 1));
                p = bp + 1;
                t = bt + 1;
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|s| *s == Segment::Hash)
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.text, f)
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for Pattern {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Pattern::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests;

impl std::borrow::Borrow<str> for Topic {
    fn borrow(&self) -> &str {
        &self.0
    }
}
