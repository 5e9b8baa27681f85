//! The NATS permissions that hold a desk to what its link groups share, on the server side:
//! derived from the same policy the desk reads, so the two cannot drift apart.
//! `tessera link nats-auth` prints them as a `nats-server` `authorization` block.
//!
//! A desk may publish only the bus topics its groups share outward, its groups' shared
//! channels, raises and answers within its groups, its own groups' announcements, and the
//! JetStream API calls its link makes on its own groups' streams and its own consumers; it may
//! read only its groups' announcements, raises and answers addressed to it, and replies under
//! its own inbox prefix.

use policy::link::LinkGroup;

use crate::wire;

/// What a desk may publish and subscribe to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Permissions {
    /// Subjects it may publish on.
    pub publish: Vec<String>,
    /// Subjects it may subscribe to.
    pub subscribe: Vec<String>,
}

/// The NATS subjects (under `prefix`) a Tessera topic pattern covers: `*` is one token, `#`
/// any number of segments (NATS' `>` needs at least one, so the prefix itself is listed too; a
/// `#` before the end widens to everything under it).
pub fn pattern_subjects(prefix: &str, pattern: &str) -> Vec<String> {
    let segments: Vec<&str> = pattern.split('.').collect();
    match segments.iter().position(|s| *s == "#") {
        None => vec![format!("{prefix}.{pattern}")],
        Some(0) => vec![format!("{prefix}.>")],
        Some(i) => {
            let head = segments[..i].join(".");
            vec![format!("{prefix}.{head}"), format!("{prefix}.{head}.>")]
        }
    }
}

/// The permissions of desk `desk` in `groups` (those naming it, or `*`).
pub fn desk_permissions(groups: &[LinkGroup], desk: &str) -> Permissions {
    let mut p = Permissions { publish: Vec::new(), subscribe: vec![format!("{}.>", wire::inbox_prefix(desk))] };
    for g in groups.iter().filter(|g| g.desks.iter().any(|d| d == "*" || d == desk)) {
        let n = &g.name;
        for t in g.bus.iter().filter(|t| t.direction.outward()) {
            p.publish.extend(pattern_subjects(&format!("tessera.{n}.bus"), &t.pattern));
        }
        p.publish.extend(g.user_channels.iter().map(|c| wire::channel_subject(n, c)));
        p.publish.extend(g.app_channels.iter().map(|c| wire::app_channel_subject(n, c)));
        p.publish.push(wire::fdc3::apps_subject(n));
        p.subscribe.push(wire::fdc3::apps_subject(n));
        if !g.intents.is_empty() {
            p.publish.extend([format!("tessera.{n}.intent.*"), format!("tessera.{n}.answer.*")]);
            p.subscribe.extend([wire::fdc3::raise_subject(n, desk), wire::fdc3::answer_subject(n, desk)]);
        }
        let (stream, consumer) = (wire::stream_name(n), wire::consumer_name(desk));
        p.publish.extend([
            format!("$JS.API.STREAM.INFO.{stream}"),
            format!("$JS.API.STREAM.CREATE.{stream}"),
            format!("$JS.API.STREAM.MSG.GET.{stream}"),
            format!("$JS.API.CONSUMER.INFO.{stream}.{consumer}"),
            format!("$JS.API.CONSUMER.CREATE.{stream}.{consumer}"),
            format!("$JS.API.CONSUMER.CREATE.{stream}.{consumer}.>"),
            format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}"),
            format!("$JS.ACK.{stream}.{consumer}.>"),
        ]);
    }
    p.publish.dedup();
    p
}

/// The environment variable a desk's password is read from in [`authorization_block`].
pub fn password_variable(desk: &str) -> String {
    format!("TESSERA_LINK_{}", desk.to_ascii_uppercase().replace('-', "_"))
}

/// A `nats-server` `authorization` block with a user per desk (named as the desk, its password
/// from the environment variable [`password_variable`] names) and its permissions.
pub fn authorization_block(groups: &[LinkGroup], desks: &[String]) -> String {
    let list = |v: &[String]| v.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>().join(", ");
    let mut out = String::from("authorization {\n  users: [\n");
    for desk in desks {
        let p = desk_permissions(groups, desk);
        out.push_str(&format!(
            "    {{ user: {desk:?}, password: ${}, permissions: {{\n        publish: [{}],\n        subscribe: [{}] }} }}\n",
            password_variable(desk),
            list(&p.publish),
            list(&p.subscribe),
        ));
    }
    out.push_str("  ]\n}\n");
    out
}

#[cfg(test)]
mod tests;
