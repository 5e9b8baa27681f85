//! What crosses the cluster, spelled out: a group's subjects (`tessera.<group>.bus.<topic>`),
//! the headers every message carries (who sent it, from which desk, its id), and the reading of
//! a message from another desk, which is untrusted input: [`inbound`] checks every part and
//! says, in one line, what was wrong.

use std::fmt::Write as _;

pub mod fdc3;

pub use fdc3::{
    Answer, DeskApps, Local, RemoteContext, answer_body, app_channel_subject, apps_body, channel_subject, context_body,
    inbound_answer, inbound_apps, inbound_context, inbound_raise, raise_body,
};

/// The header naming the desk a message comes from.
pub const DESK: &str = "Tessera-Desk";
/// The header naming the user at that desk.
pub const USER: &str = "Tessera-User";
/// The header naming the app that published it, if an app did.
pub const APP: &str = "Tessera-App";
/// The header saying the message was published durable (kept on disk until delivered).
pub const DURABLE: &str = "Tessera-Durable";
/// JetStream's de-duplication header: the message's id, unique across desks and restarts.
pub const MSG_ID: &str = "Nats-Msg-Id";

/// Longest header value read from another desk.
const MAX_HEADER: usize = 256;

/// The prefix of a group's subjects.
pub fn group_prefix(group: &str) -> String {
    format!("tessera.{group}.")
}

/// The subjects a group's stream keeps: its bus topics and its shared channels (what crosses
/// at once — intents, their answers, the desks' apps — is not kept).
pub fn stream_subjects(group: &str) -> Vec<String> {
    vec![
        format!("tessera.{group}.bus.>"),
        format!("tessera.{group}.fdc3.user.>"),
        format!("tessera.{group}.fdc3.app.>"),
    ]
}

/// The bus subjects of a group (what its desks consume).
pub fn bus_subjects(group: &str) -> String {
    format!("tessera.{group}.bus.>")
}

/// Where replies to a desk's requests (the cluster's acknowledgements and answers) come:
/// `_INBOX.<desk>`, so a server can let each desk read its own replies only.
pub fn inbox_prefix(desk: &str) -> String {
    format!("_INBOX.{desk}")
}

/// A group's stream.
pub fn stream_name(group: &str) -> String {
    format!("TESSERA_{group}")
}

/// The durable consumer a desk reads a group with: its place survives restarts of the desk and
/// of the cluster, which is what lets it catch up.
pub fn consumer_name(desk: &str) -> String {
    format!("desk_{desk}")
}

/// The subject a local topic crosses on, or why it cannot cross: each topic segment must be
/// one NATS token (no `>`, which NATS reads as a wildcard).
pub fn bus_subject(group: &str, topic: &str) -> Result<String, String> {
    if topic.split('.').any(|seg| seg == ">" || seg == "*") {
        return Err(format!("topic {topic:?} has a segment NATS reads as a wildcard"));
    }
    let mut s = String::with_capacity(16 + group.len() + topic.len());
    let _ = write!(s, "tessera.{group}.bus.{topic}");
    Ok(s)
}

/// A message's id on the cluster: the desk and the id its broker gave it (unique across the
/// desk's restarts), so a resend after a lost acknowledgement is dropped as a duplicate.
pub fn message_id(desk: &str, id: u128) -> String {
    format!("{desk}:{id:032x}")
}

/// A message from another desk, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inbound {
    /// The local topic it goes to.
    pub topic: String,
    /// The desk it came from.
    pub desk: String,
    /// The user at that desk.
    pub user: String,
    /// The app that published it there, if an app did.
    pub app: Option<String>,
    /// Its id (for dropping duplicates).
    pub id: String,
    /// Whether it was published durable.
    pub durable: bool,
}

/// What to do with a message read from a group's stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// It is this desk's own, come back: never delivered again.
    Own,
    /// Deliver it here.
    Deliver(Inbound),
}

pub(crate) fn name_ok(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

pub(crate) fn text_ok(s: &str) -> bool {
    s.len() <= MAX_HEADER && !s.chars().any(char::is_control)
}

/// Reads a message another desk put on `group`'s stream: its subject, its headers (by name,
/// through `header`) and its size. `max_bytes` is the group's limit.
pub fn inbound<'a>(
    group: &str,
    this_desk: &str,
    subject: &str,
    header: impl Fn(&str) -> Option<&'a str>,
    size: usize,
    max_bytes: usize,
) -> Result<Verdict, String> {
    let prefix = format!("tessera.{group}.bus.");
    let topic = subject
        .strip_prefix(prefix.as_str())
        .ok_or_else(|| format!("subject {subject:?} is not one of group {group:?}'s bus subjects"))?;
    broker::Topic::parse(topic).map_err(|e| format!("subject {subject:?}: topic {topic:?}: {e}"))?;
    bus_subject(group, topic).map_err(|why| format!("subject {subject:?}: {why}"))?;
    let desk = header(DESK).ok_or_else(|| format!("{subject}: no {DESK} header"))?;
    if !name_ok(desk) {
        return Err(format!("{subject}: {DESK} {desk:?} is not a desk name"));
    }
    if desk == this_desk {
        return Ok(Verdict::Own);
    }
    let id = header(MSG_ID).ok_or_else(|| format!("{subject}: no {MSG_ID} header"))?;
    if id.is_empty() || !text_ok(id) {
        return Err(format!("{subject}: {MSG_ID} is empty, too long or has control characters"));
    }
    let user = header(USER).unwrap_or_default();
    if !text_ok(user) {
        return Err(format!("{subject}: {USER} is too long or has control characters"));
    }
    let app = header(APP).filter(|a| !a.is_empty());
    if app.is_some_and(|a| !text_ok(a)) {
        return Err(format!("{subject}: {APP} is too long or has control characters"));
    }
    if size > max_bytes {
        return Err(format!("{subject}: {size} bytes is over the group's {max_bytes}-byte limit"));
    }
    Ok(Verdict::Deliver(Inbound {
        topic: topic.to_owned(),
        desk: desk.to_owned(),
        user: user.to_owned(),
        app: app.map(str::to_owned),
        id: id.to_owned(),
        durable: header(DURABLE) == Some("1"),
    }))
}

#[cfg(test)]
mod tests;
