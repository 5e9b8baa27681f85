//! The update feed: what IT publishes per channel (stable, canary), and the checks a feed
//! must pass before the updater acts on it.
//!
//! A feed is JSON signed like an App Directory record ([`policy::signing`]: ed25519 over the
//! canonical form, key id and expiry covered):
//!
//! ```json
//! { "channel": "stable", "version": "1.4.0", "url": "https://updates.example/tessera-1.4.0.tar.gz",
//!   "sha256": "…64 hex…", "size": 73400320, "minimumVersion": "1.2.0", "rolloutPercent": 25,
//!   "issuedAt": "2026-11-26T09:00:00Z", "expires": "2026-12-26T09:00:00Z",
//!   "signature": { "keyId": "release-2026", "expires": "2026-12-26T09:00:00Z", "value": "…" } }
//! ```
//!
//! Refused: a bad or missing signature, an unknown or revoked key (two keys may be trusted
//! during a rotation), an expired feed, a feed for another channel, a feed issued before the
//! newest one seen (a replay), a version that is not newer than the running one (a downgrade),
//! and a running version below the feed's minimum.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use policy::signing::{Checker, SignatureError, version_cmp};

/// A feed's content, once its signature checked out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Feed {
    /// The channel it is for.
    pub channel: String,
    /// The version it offers.
    pub version: String,
    /// Where the release archive is.
    pub url: String,
    /// The archive's SHA-256, hex.
    pub sha256: String,
    /// The archive's size in bytes.
    pub size: u64,
    /// The oldest version that may update to it directly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_version: Option<String>,
    /// Of the desks on the channel, how many (percent) get it now.
    pub rollout_percent: u8,
    /// When IT issued it (RFC 3339 UTC).
    pub issued_at: String,
    /// When it stops being valid (RFC 3339 UTC).
    pub expires: String,
}

/// What the updater should do with a feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Download and stage it.
    Update(Feed),
    /// Valid, but this desk's rollout bucket is outside the percentage for now.
    NotYet {
        /// The feed.
        feed: Feed,
        /// This desk's bucket (0–99).
        bucket: u8,
    },
    /// Valid, and nothing newer than what runs.
    UpToDate(Feed),
}

/// Why a feed is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FeedError {
    /// Its signature (or JSON) is not acceptable.
    #[error("the feed's signature: {0}")]
    Signature(#[from] SignatureError),
    /// A field is missing or wrong.
    #[error("the feed's {field}: {why}")]
    Field {
        /// Which field.
        field: &'static str,
        /// What is wrong.
        why: String,
    },
    /// For another channel than the one asked for.
    #[error("the feed is for channel {got:?}, not {want:?}")]
    Channel {
        /// The channel asked for.
        want: String,
        /// The feed's.
        got: String,
    },
    /// Past its expiry.
    #[error("the feed expired at {0}")]
    Expired(String),
    /// Older than the newest feed seen for the channel (a replay).
    #[error("the feed was issued at {got}, before the newest one seen ({seen}): a replayed feed")]
    Replayed {
        /// The newest seen.
        seen: String,
        /// This one's.
        got: String,
    },
    /// Offers a version older than the running one.
    #[error("the feed offers {offered}, older than the running {running}: a downgrade")]
    Downgrade {
        /// The running version.
        running: String,
        /// The offered one.
        offered: String,
    },
    /// The running version is too old to update to it directly.
    #[error("the running {running} is older than the feed's minimum {minimum}")]
    BelowMinimum {
        /// The running version.
        running: String,
        /// The minimum.
        minimum: String,
    },
}

/// This desk's rollout bucket (0–99) for `channel`: stable for a machine, spread evenly over
/// machines (FNV-1a of the machine id and the channel).
pub fn bucket(machine_id: &str, channel: &str) -> u8 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in machine_id.trim().bytes().chain([0]).chain(channel.bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    u8::try_from(h % 100).unwrap_or(0)
}

fn field<'a>(v: &'a Value, name: &'static str) -> Result<&'a str, FeedError> {
    v.get(name).and_then(Value::as_str).ok_or(FeedError::Field { field: name, why: "missing, or not a string".into() })
}

/// Checks a feed's text for `channel`, at `now` (RFC 3339), given the running version, the
/// issue time of the newest feed seen for the channel, and this desk's rollout bucket.
pub fn check(
    checker: &Checker,
    text: &str,
    channel: &str,
    running: &str,
    newest_seen: Option<&str>,
    bucket: u8,
    now: &str,
) -> Result<Verdict, FeedError> {
    let value = policy::signing::parse_strict(text)?;
    if value.get("signature").is_none() {
        return Err(SignatureError::Unsigned.into());
    }
    // Signed as a record is (it has no `details.url`, so only the signature, its key and its
    // expiry are checked there).
    checker.check_record_value(&value, None, now)?;
    let time = |name: &'static str| -> Result<broker::Timestamp, FeedError> {
        broker::Timestamp::parse(field(&value, name)?)
            .ok_or(FeedError::Field { field: name, why: "not an RFC 3339 UTC time".into() })
    };
    let (issued, expires) = (time("issuedAt")?, time("expires")?);
    let now_t = broker::Timestamp::parse(now).ok_or(FeedError::Field { field: "now", why: "not a time".into() })?;
    let sha = field(&value, "sha256")?;
    if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(FeedError::Field { field: "sha256", why: "not 64 hex digits".into() });
    }
    let url = field(&value, "url")?;
    if !url.starts_with("https://") && !policy::local_http(url) {
        return Err(FeedError::Field { field: "url", why: "not https (plain http only to this machine)".into() });
    }
    let size = value
        .get("size")
        .and_then(Value::as_u64)
        .filter(|s| *s > 0)
        .ok_or(FeedError::Field { field: "size", why: "missing, or not a positive whole number".into() })?;
    let rollout = value
        .get("rolloutPercent")
        .and_then(Value::as_u64)
        .filter(|p| *p <= 100)
        .ok_or(FeedError::Field { field: "rolloutPercent", why: "missing, or not 0 to 100".into() })?;
    let feed = Feed {
        channel: field(&value, "channel")?.to_owned(),
        version: field(&value, "version")?.to_owned(),
        url: url.to_owned(),
        sha256: sha.to_ascii_lowercase(),
        size,
        minimum_version: value.get("minimumVersion").and_then(Value::as_str).map(str::to_owned),
        rollout_percent: u8::try_from(rollout).unwrap_or(100),
        issued_at: field(&value, "issuedAt")?.to_owned(),
        expires: field(&value, "expires")?.to_owned(),
    };
    if feed.channel != channel {
        return Err(FeedError::Channel { want: channel.to_owned(), got: feed.channel });
    }
    if expires <= now_t {
        return Err(FeedError::Expired(feed.expires));
    }
    if let Some(seen) = newest_seen.and_then(broker::Timestamp::parse)
        && issued < seen
    {
        return Err(FeedError::Replayed { seen: newest_seen.unwrap_or_default().to_owned(), got: feed.issued_at });
    }
    match version_cmp(&feed.version, running) {
        Ordering::Less => {
            return Err(FeedError::Downgrade { running: running.to_owned(), offered: feed.version });
        }
        Ordering::Equal => return Ok(Verdict::UpToDate(feed)),
        Ordering::Greater => {}
    }
    if let Some(min) = &feed.minimum_version
        && version_cmp(running, min) == Ordering::Less
    {
        return Err(FeedError::BelowMinimum { running: running.to_owned(), minimum: min.clone() });
    }
    if bucket >= feed.rollout_percent {
        return Ok(Verdict::NotYet { feed, bucket });
    }
    Ok(Verdict::Update(feed))
}

#[cfg(test)]
mod tests;
