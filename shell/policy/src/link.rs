//! The admin policy's `link` section: which NATS cluster links this desk to others, and, per
//! link group, what crosses. Deny by default: a desk shares nothing it is not named for, and a
//! group shares only the bus topics it lists, in the directions it gives.

use serde::{Deserialize, Serialize};

/// How this desk is linked to others.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LinkRules {
    /// This desk's name in the groups (letters, digits, `-` and `_`, at most 64).
    pub desk: String,
    /// The cluster's servers: `nats://host:port` or `tls://host:port`.
    pub servers: Vec<String>,
    /// The vault entry (purpose `link`) holding the token the desk connects with (or, with
    /// `user`, that user's password); none: the cluster takes connections without one.
    #[serde(default)]
    pub token_secret: Option<String>,
    /// The NATS user this desk connects as (one per desk lets the server hold each desk to its
    /// groups); its password is the `tokenSecret` entry.
    #[serde(default)]
    pub user: Option<String>,
    /// The vault entry (purpose `link`) holding this desk's NKey seed (`SU...`): the servers
    /// know the desk by its public key (`tessera link nkey` makes the pair).
    #[serde(default)]
    pub nkey_secret: Option<String>,
    /// The vault entry (purpose `link`) holding a NATS credentials file (a user JWT and its
    /// NKey seed), for servers run in operator mode.
    #[serde(default)]
    pub creds_secret: Option<String>,
    /// A PEM file of the authority that signed the servers' TLS certificates (trusted beside the
    /// system's); with it, or with `tls://` servers, the link is TLS only.
    #[serde(default)]
    pub ca_file: Option<std::path::PathBuf>,
    /// How many servers keep each group's stream (the cluster's size, at most 5).
    #[serde(default = "one")]
    pub replicas: u8,
    /// The groups this policy knows; the desk takes part in those that name it.
    #[serde(default)]
    pub groups: Vec<LinkGroup>,
}

fn one() -> u8 {
    1
}

/// Desks that share, and what they share.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LinkGroup {
    /// The group's name (letters, digits, `-` and `_`, at most 32): its subjects are
    /// `tessera.<name>.>` and its stream `TESSERA_<name>`.
    pub name: String,
    /// The desks in it, by name, or `*` for every desk using this policy.
    pub desks: Vec<String>,
    /// Bus topics shared, by pattern (`*` one segment, `#` any number).
    #[serde(default)]
    pub bus: Vec<SharedTopics>,
    /// FDC3 user channels shared both ways (`fdc3.channel.1` ...): a broadcast on one reaches
    /// the listeners on the other desks, and a desk starting takes its current context.
    #[serde(default)]
    pub user_channels: Vec<String>,
    /// FDC3 app channels shared both ways, by id: as user channels, for apps that agree on a
    /// channel's name (not `fdc3.channel.*` or `private.*`).
    #[serde(default)]
    pub app_channels: Vec<String>,
    /// FDC3 intents shared both ways, by name: this desk's apps that take one are offered to
    /// the other desks' `findIntent` and `raiseIntent`, and theirs here.
    #[serde(default)]
    pub intents: Vec<String>,
    /// Largest message that may cross, in bytes (larger ones are refused and audited).
    #[serde(default = "default_max_message")]
    pub max_message_bytes: u32,
    /// How far back a desk that was away catches up, in seconds (the stream's age limit).
    #[serde(default = "default_catch_up_secs")]
    pub catch_up_secs: u64,
    /// How much the group's stream keeps for catching up, in bytes.
    #[serde(default = "default_catch_up_bytes")]
    pub catch_up_bytes: u64,
}

fn default_max_message() -> u32 {
    64 << 10
}

fn default_catch_up_secs() -> u64 {
    24 * 3600
}

fn default_catch_up_bytes() -> u64 {
    1 << 30
}

/// Topics shared one way or both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SharedTopics {
    /// The topic pattern.
    pub pattern: String,
    /// Which way they cross.
    #[serde(default)]
    pub direction: Direction,
}

/// Which way messages cross a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Out to the other desks and in from them.
    #[default]
    Both,
    /// Only from this desk out.
    Out,
    /// Only in from the other desks.
    In,
}

impl Direction {
    /// Whether messages go out this way.
    pub fn outward(self) -> bool {
        matches!(self, Self::Both | Self::Out)
    }

    /// Whether messages come in this way.
    pub fn inward(self) -> bool {
        matches!(self, Self::Both | Self::In)
    }
}

impl LinkRules {
    /// The groups this desk takes part in.
    pub fn groups_of_this_desk(&self) -> impl Iterator<Item = &LinkGroup> {
        self.groups.iter().filter(|g| g.desks.iter().any(|d| d == "*" || *d == self.desk))
    }
}

/// A name that is one NATS subject token and one stream-name part.
fn is_name(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// A topic pattern whose segments can each be one NATS subject token.
fn is_shared_pattern(p: &str) -> bool {
    !p.is_empty()
        && !p.starts_with('$')
        && p.split('.').all(|seg| {
            !seg.is_empty()
                && seg != ">"
                && !seg.chars().any(|c| c.is_control() || c.is_whitespace())
                && (seg.len() == 1 || !seg.contains(['*', '#']))
        })
}

/// Checks the section, naming each problem by field.
pub(crate) fn check(rules: &LinkRules, problems: &mut Vec<String>) {
    if !is_name(&rules.desk, 64) {
        problems
            .push(format!("link.desk: {:?} is not a desk name (letters, digits, '-' and '_', at most 64)", rules.desk));
    }
    if rules.servers.is_empty() {
        problems.push("link.servers: no server to connect to".to_owned());
    }
    for (i, s) in rules.servers.iter().enumerate() {
        let ok = ["nats://", "tls://"].iter().any(|scheme| {
            s.strip_prefix(scheme).is_some_and(|rest| !rest.is_empty() && !rest.contains(char::is_whitespace))
        });
        if !ok {
            problems.push(format!("link.servers[{i}]: {s:?} is not a nats:// or tls:// URL"));
        }
    }
    if let Some(t) = &rules.token_secret
        && !is_name(t, 64)
    {
        problems.push(format!("link.tokenSecret: {t:?} is not a vault entry name"));
    }
    if let Some(u) = &rules.user {
        if !is_name(u, 64) {
            problems.push(format!("link.user: {u:?} is not a user name"));
        }
        if rules.token_secret.is_none() {
            problems.push("link.user: a user needs its password in the vault (tokenSecret)".to_owned());
        }
    }
    let secrets = [
        ("tokenSecret", &rules.token_secret),
        ("nkeySecret", &rules.nkey_secret),
        ("credsSecret", &rules.creds_secret),
    ];
    for (field, name) in secrets {
        if let Some(n) = name
            && field != "tokenSecret"
            && !is_name(n, 64)
        {
            problems.push(format!("link.{field}: {n:?} is not a vault entry name"));
        }
    }
    let given: Vec<&str> = secrets.iter().filter(|(_, n)| n.is_some()).map(|(f, _)| *f).collect();
    if given.len() > 1 {
        problems.push(format!("link: {} are each a way to log in: give one", given.join(" and ")));
    }
    if let Some(ca) = &rules.ca_file
        && !ca.is_absolute()
    {
        problems.push(format!("link.caFile: {} is not an absolute path", ca.display()));
    }
    if !(1..=5).contains(&rules.replicas) {
        problems.push(format!("link.replicas: {} is not between 1 and 5", rules.replicas));
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, g) in rules.groups.iter().enumerate() {
        let at = format!("link.groups[{i}]");
        if !is_name(&g.name, 32) {
            problems.push(format!(
                "{at}.name: {:?} is not a group name (letters, digits, '-' and '_', at most 32)",
                g.name
            ));
        } else if !seen.insert(g.name.as_str()) {
            problems.push(format!("{at}.name: {:?} is named twice", g.name));
        }
        if g.desks.is_empty() {
            problems.push(format!("{at}.desks: no desk is in the group"));
        }
        for (j, d) in g.desks.iter().enumerate() {
            if d != "*" && !is_name(d, 64) {
                problems.push(format!("{at}.desks[{j}]: {d:?} is not a desk name"));
            }
        }
        for (j, t) in g.bus.iter().enumerate() {
            if !is_shared_pattern(&t.pattern) {
                problems.push(format!(
                    "{at}.bus[{j}].pattern: {:?} is not a topic pattern that can cross (no '$' topics, empty segments, spaces or '>')",
                    t.pattern
                ));
            }
        }
        for (j, c) in g.user_channels.iter().enumerate() {
            if !is_shared_pattern(c) || c.contains(['*', '#']) {
                problems.push(format!("{at}.userChannels[{j}]: {c:?} is not a channel id that can cross"));
            }
        }
        for (j, c) in g.app_channels.iter().enumerate() {
            if !is_shared_pattern(c)
                || c.contains(['*', '#'])
                || c.starts_with("fdc3.channel.")
                || c.starts_with("private.")
                || g.user_channels.contains(c)
            {
                problems.push(format!(
                    "{at}.appChannels[{j}]: {c:?} is not an app channel id that can cross (no wildcards, spaces, empty segments, user or private channel ids)"
                ));
            }
        }
        for (j, n) in g.intents.iter().enumerate() {
            if n.is_empty() || n.len() > 128 || n.chars().any(|c| c.is_control() || c.is_whitespace()) {
                problems.push(format!("{at}.intents[{j}]: {n:?} is not an intent name"));
            }
        }
        if !(64..=(8 << 20)).contains(&g.max_message_bytes) {
            problems.push(format!("{at}.maxMessageBytes: {} is not between 64 and 8 MiB", g.max_message_bytes));
        }
        if g.catch_up_secs == 0 {
            problems.push(format!("{at}.catchUpSecs: must be more than 0"));
        }
        if g.catch_up_bytes < 1 << 20 {
            problems.push(format!("{at}.catchUpBytes: {} is under 1 MiB", g.catch_up_bytes));
        }
    }
}

#[cfg(test)]
mod tests;
