//! Permissions: what an app may do beyond its own page, and who decides.
//!
//! A permission is a name and an optional scope (`bus.publish:prices.#`,
//! `fdc3.raiseIntent:ViewChart`, `navigate:https://news.example`, `clipboard.read`). A request
//! is decided by the first source that has an answer, strongest first:
//!
//! 1. the admin policy (IT): rules per app and per role that deny, require a prompt, or allow
//!    (deny wins over prompt, prompt over allow); a prompt the policy requires is answered by
//!    the user's remembered answer if there is one;
//! 2. the user's remembered answers (grants);
//! 3. what the app's manifest declares it may ask for: the user is asked;
//! 4. otherwise: denied.
//!
//! A rule's scope covers a request's when it is absent (every scope), equal, a topic pattern
//! matching the requested topic (`bus.publish`) or containing the requested pattern
//! (`bus.subscribe`), or `*` for names (intents, services, app channels). Origins are
//! compared parsed, and never by wildcard.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// How a permission's scope is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScopeKind {
    /// No scope.
    None,
    /// A topic pattern (`prices.#`); requests name a topic.
    Topic,
    /// A topic pattern; requests name a pattern, which the rule's must contain.
    Pattern,
    /// A name (an intent, a service, an app channel); `*` in a rule means any.
    Name,
    /// An origin (`https://news.example:8443`).
    Origin,
}

/// Every permission there is, with how its scope is read.
pub const PERMISSIONS: &[(&str, ScopeKind)] = &[
    ("bus.publish", ScopeKind::Topic),
    ("bus.subscribe", ScopeKind::Pattern),
    ("bus.serve", ScopeKind::Name),
    ("fdc3.broadcast", ScopeKind::None),
    ("fdc3.raiseIntent", ScopeKind::Name),
    ("fdc3.open", ScopeKind::None),
    ("fdc3.appChannel", ScopeKind::Name),
    ("navigate", ScopeKind::Origin),
    ("window.open", ScopeKind::None),
    ("clipboard.read", ScopeKind::None),
    ("clipboard.write", ScopeKind::None),
    ("notifications", ScopeKind::None),
    ("geolocation", ScopeKind::None),
    ("camera", ScopeKind::None),
    ("microphone", ScopeKind::None),
    ("secrets", ScopeKind::None),
];

fn kind_of(name: &str) -> Option<ScopeKind> {
    PERMISSIONS.iter().find(|(n, _)| *n == name).map(|(_, k)| *k)
}

/// A permission, optionally scoped.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Permission {
    /// Its name (one of [`PERMISSIONS`]).
    pub name: String,
    /// Its scope, if it has one.
    pub scope: Option<String>,
}

/// A permission that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PermissionError {
    /// Not one of [`PERMISSIONS`].
    #[error("{0:?} is not a permission")]
    Unknown(String),
    /// A scope on a permission that takes none.
    #[error("{0} takes no scope")]
    NoScope(String),
    /// A scope that does not parse for its permission.
    #[error("{name}: scope {scope:?}: {why}")]
    BadScope {
        /// The permission.
        name: String,
        /// The scope.
        scope: String,
        /// What is wrong.
        why: String,
    },
}

/// An origin as `scheme://host[:port]`, parsed and normalised (lower case, IDNA, default
/// port left out); `None` for anything that is not an http(s) origin with a host and nothing
/// else (no user info, path, query or fragment).
pub fn normal_origin(text: &str) -> Option<String> {
    let url = url::Url::parse(text).ok()?;
    if !matches!(url.scheme(), "http" | "https")
        || url.host_str().is_none_or(|h| h.is_empty() || h.ends_with('.'))
        || !url.username().is_empty()
        || url.password().is_some()
        || url.query().is_some()
        || url.fragment().is_some()
        || !(url.path() == "/" || url.path().is_empty())
        || text.contains('*')
    {
        return None;
    }
    Some(url.origin().ascii_serialization())
}

impl Permission {
    /// A permission from its name and scope, checked.
    pub fn new(name: &str, scope: Option<&str>) -> Result<Self, PermissionError> {
        let kind = kind_of(name).ok_or_else(|| PermissionError::Unknown(name.to_owned()))?;
        let bad = |why: String| PermissionError::BadScope {
            name: name.to_owned(),
            scope: scope.unwrap_or_default().to_owned(),
            why,
        };
        let scope = match (kind, scope) {
            (_, None) => None,
            (ScopeKind::None, Some(_)) => return Err(PermissionError::NoScope(name.to_owned())),
            (ScopeKind::Topic | ScopeKind::Pattern, Some(s)) => {
                broker::Pattern::parse(s).map_err(|e| bad(e.to_string()))?;
                Some(s.to_owned())
            }
            (ScopeKind::Name, Some(s)) => {
                if s.is_empty() || s.chars().count() > 256 || s.chars().any(char::is_control) {
                    return Err(bad("not a name".to_owned()));
                }
                Some(s.to_owned())
            }
            (ScopeKind::Origin, Some(s)) => {
                Some(normal_origin(s).ok_or_else(|| bad("not an http(s) origin (scheme://host[:port])".to_owned()))?)
            }
        };
        Ok(Self { name: name.to_owned(), scope })
    }

    /// Whether this permission, as a rule or grant, covers `request`.
    pub fn covers(&self, request: &Permission) -> bool {
        if self.name != request.name {
            return false;
        }
        let (Some(mine), Some(theirs)) = (&self.scope, &request.scope) else {
            // An unscoped rule covers every scope; a scoped rule does not cover an unscoped request.
            return self.scope.is_none();
        };
        match kind_of(&self.name) {
            Some(ScopeKind::Topic) => match (broker::Pattern::parse(mine), broker::Topic::parse(theirs)) {
                (Ok(p), Ok(t)) => p.matches(&t),
                _ => false,
            },
            Some(ScopeKind::Pattern) => pattern_contains(mine, theirs),
            Some(ScopeKind::Name) => mine == "*" || mine == theirs,
            Some(ScopeKind::Origin) => normal_origin(mine).is_some() && normal_origin(mine) == normal_origin(theirs),
            Some(ScopeKind::None) | None => false,
        }
    }
}

/// Whether every topic `inner` matches is matched by `outer` (both `.`-separated patterns
/// with `*` for one segment and `#` for any number).
pub fn pattern_contains(outer: &str, inner: &str) -> bool {
    fn go(o: &[&str], i: &[&str]) -> bool {
        match (o.split_first(), i.split_first()) {
            (None, None) => true,
            // An outer `#` takes nothing more, or one more of inner's segments (an inner `#`
            // included) and stays.
            (Some((&"#", rest)), _) => go(rest, i) || i.split_first().is_some_and(|(_, irest)| go(o, irest)),
            // An inner `#` matches any number of segments, which nothing but `#` covers.
            (_, Some((&"#", _))) | (None, Some(_)) | (Some(_), None) => false,
            (Some((&"*", orest)), Some((_, irest))) => go(orest, irest),
            (Some((&a, orest)), Some((&b, irest))) => a == b && b != "*" && go(orest, irest),
        }
    }
    let (o, i): (Vec<&str>, Vec<&str>) = (outer.split('.').collect(), inner.split('.').collect());
    broker::Pattern::parse(outer).is_ok() && broker::Pattern::parse(inner).is_ok() && go(&o, &i)
}

impl FromStr for Permission {
    type Err = PermissionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once(':') {
            Some((name, scope)) => Self::new(name, Some(scope)),
            None => Self::new(s, None),
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.scope {
            Some(s) => write!(f, "{}:{s}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

impl Serialize for Permission {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Permission {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// What was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Go ahead.
    Allow,
    /// Refused.
    Deny,
    /// Ask the user.
    Prompt,
}

/// Which source decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The admin policy.
    Policy,
    /// The user's remembered answer.
    Remembered,
    /// The app's manifest says it may ask.
    Manifest,
    /// Nothing allows it.
    Default,
}

/// A decision and where it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// What was decided.
    pub decision: Decision,
    /// Who decided.
    pub source: Source,
}

/// Who is at the desk: the user and their groups (roles are given to either).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subject {
    /// The user name.
    pub user: String,
    /// Their groups.
    pub groups: Vec<String>,
}

/// A role: who has it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Role {
    /// Users with the role.
    #[serde(default)]
    pub users: Vec<String>,
    /// Groups whose members have it.
    #[serde(default)]
    pub groups: Vec<String>,
}

/// One rule of the admin policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// The apps it applies to (`*`: all).
    pub apps: Vec<String>,
    /// The roles it applies to (none: everyone).
    #[serde(default)]
    pub roles: Vec<String>,
    /// What it allows (permissions, or `set:NAME` for a permission set).
    #[serde(default)]
    pub allow: Vec<String>,
    /// What it makes the user decide.
    #[serde(default)]
    pub prompt: Vec<String>,
    /// What it refuses.
    #[serde(default)]
    pub deny: Vec<String>,
}

/// The admin policy as IT writes it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PolicyFile {
    /// Named sets of permissions.
    #[serde(default)]
    pub permission_sets: BTreeMap<String, Vec<String>>,
    /// Roles, by name.
    #[serde(default)]
    pub roles: BTreeMap<String, Role>,
    /// The rules.
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// Which keys may sign App Directory records and manifests, and whether they must be signed.
    #[serde(default)]
    pub signing: Option<crate::signing::SigningRules>,
    /// Where updates come from and when; the release keys are the `signing` section's.
    #[serde(default)]
    pub update: Option<UpdateRules>,
}

/// The admin policy's update rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UpdateRules {
    /// Whether the shell updates itself at all.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Where the feeds are: the channel's feed is `{feedUrl}/{channel}.json`.
    pub feed_url: String,
    /// The channel this desk follows.
    #[serde(default = "stable")]
    pub channel: String,
    /// How often a running shell checks, in minutes (0: only at start-up).
    #[serde(default = "four_hours")]
    pub check_every_minutes: u64,
    /// Stay on (or go to) exactly this version.
    #[serde(default)]
    pub pin_version: Option<String>,
    /// Failed starts of a new build before the previous one is restored.
    #[serde(default = "three")]
    pub max_failed_starts: u32,
    /// Seconds a new build has to start healthy before the previous one is restored.
    #[serde(default = "sixty")]
    pub health_timeout_secs: u64,
    /// Seconds a download may take.
    #[serde(default = "half_an_hour")]
    pub download_timeout_secs: u64,
    /// The only keys that may sign feeds and release archives (default: the `signing`
    /// section's trusted keys). Its revoked keys apply to these too.
    #[serde(default)]
    pub release_keys: Vec<crate::signing::TrustedKey>,
}

fn yes() -> bool {
    true
}
fn stable() -> String {
    "stable".to_owned()
}
fn four_hours() -> u64 {
    240
}
fn three() -> u32 {
    3
}
fn sixty() -> u64 {
    60
}
fn half_an_hour() -> u64 {
    1800
}

impl UpdateRules {
    /// The URL of the channel's feed.
    pub fn feed(&self) -> String {
        format!("{}/{}.json", self.feed_url.trim_end_matches('/'), self.channel)
    }
}

/// A policy that does not hold together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the admin policy: {}", problems.join("; "))]
pub struct PolicyError {
    /// Each problem, naming where it is.
    pub problems: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct CheckedRule {
    apps: Vec<String>,
    roles: Vec<String>,
    allow: Vec<Permission>,
    prompt: Vec<Permission>,
    deny: Vec<Permission>,
}

/// The admin policy, checked.
#[derive(Debug, Clone, Default)]
pub struct AdminPolicy {
    roles: BTreeMap<String, Role>,
    rules: Vec<CheckedRule>,
    signing: Option<crate::signing::Checker>,
    /// What release feeds and archives are checked against (see [`Self::release_checker`]).
    release: Option<crate::signing::Checker>,
    update: Option<UpdateRules>,
}

impl AdminPolicy {
    /// Parses and checks a policy; every problem is named by rule and field.
    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        let file: PolicyFile =
            serde_json::from_str(text).map_err(|e| PolicyError { problems: vec![format!("not valid: {e}")] })?;
        Self::from_file(&file)
    }

    /// Checks a parsed policy.
    pub fn from_file(file: &PolicyFile) -> Result<Self, PolicyError> {
        let mut problems = Vec::new();
        let mut rules = Vec::new();
        for (i, r) in file.rules.iter().enumerate() {
            if r.apps.is_empty() {
                problems.push(format!("rules[{i}].apps: empty (use [\"*\"] for every app)"));
            }
            for role in &r.roles {
                if !file.roles.contains_key(role) {
                    problems.push(format!("rules[{i}].roles: {role:?} is not a role"));
                }
            }
            let mut list = |field: &str, items: &[String]| -> Vec<Permission> {
                let mut out = Vec::new();
                for item in items {
                    if let Some(set) = item.strip_prefix("set:") {
                        match file.permission_sets.get(set) {
                            Some(members) => {
                                for m in members {
                                    match m.parse::<Permission>() {
                                        Ok(p) => out.push(p),
                                        Err(e) => problems.push(format!("permissionSets.{set}: {e}")),
                                    }
                                }
                            }
                            None => problems.push(format!("rules[{i}].{field}: {item:?} is not a permission set")),
                        }
                        continue;
                    }
                    match item.parse::<Permission>() {
                        Ok(p) => out.push(p),
                        Err(e) => problems.push(format!("rules[{i}].{field}: {e}")),
                    }
                }
                out
            };
            let allow = list("allow", &r.allow);
            let prompt = list("prompt", &r.prompt);
            let deny = list("deny", &r.deny);
            rules.push(CheckedRule { apps: r.apps.clone(), roles: r.roles.clone(), allow, prompt, deny });
        }
        let signing = match &file.signing {
            None => None,
            Some(s) => match crate::signing::Checker::new(s) {
                Ok(c) => Some(c),
                Err(e) => {
                    problems.push(format!("signing: {e}"));
                    None
                }
            },
        };
        if let Some(u) = &file.update {
            if !u.feed_url.starts_with("https://")
                && !crate::update_feed::local_http(&u.feed_url)
                && !u.feed_url.starts_with('/')
            {
                problems.push(format!(
                    "update.feedUrl: {:?} is not https (plain http only to this machine, or a local directory)",
                    u.feed_url
                ));
            }
            if u.channel.is_empty() || !u.channel.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                problems.push(format!("update.channel: {:?}: letters, digits and dashes only", u.channel));
            }
            if u.max_failed_starts == 0 {
                problems.push("update.maxFailedStarts: at least 1".to_owned());
            }
            if u.health_timeout_secs < 5 {
                problems.push("update.healthTimeoutSecs: at least 5".to_owned());
            }
            if u.release_keys.is_empty() && file.signing.as_ref().is_none_or(|s| s.trusted_keys.is_empty()) {
                problems.push(
                    "update: neither update.releaseKeys nor the signing section trusts a key, so no release could be accepted"
                        .to_owned(),
                );
            }
        }
        // What releases are checked against, made once: `update.releaseKeys` if set (with the
        // signing section's revoked keys), else the signing section's checker.
        let release = match &file.update {
            None => None,
            Some(u) if u.release_keys.is_empty() => signing.clone(),
            Some(u) => {
                let rules = crate::signing::SigningRules {
                    require_signed: true,
                    trusted_keys: u.release_keys.clone(),
                    revoked_keys: file.signing.as_ref().map(|s| s.revoked_keys.clone()).unwrap_or_default(),
                };
                match crate::signing::Checker::new(&rules) {
                    Ok(c) => Some(c),
                    Err(e) => {
                        problems.push(format!("update.releaseKeys: {e}"));
                        None
                    }
                }
            }
        };
        if problems.is_empty() {
            Ok(Self { roles: file.roles.clone(), rules, signing, release, update: file.update.clone() })
        } else {
            Err(PolicyError { problems })
        }
    }

    /// The update rules, if the policy has them.
    pub fn update(&self) -> Option<&UpdateRules> {
        self.update.as_ref()
    }

    /// What feeds and release archives are checked against: `update.releaseKeys` if set, else
    /// the `signing` section's keys; revoked keys are refused either way.
    pub fn release_checker(&self) -> Option<crate::signing::Checker> {
        self.release.clone()
    }

    /// How signed records and manifests are checked, if the policy says.
    pub fn signing(&self) -> Option<&crate::signing::Checker> {
        self.signing.as_ref()
    }

    fn has_role(&self, who: &Subject, role: &str) -> bool {
        self.roles
            .get(role)
            .is_some_and(|r| r.users.contains(&who.user) || r.groups.iter().any(|g| who.groups.contains(g)))
    }

    /// What the policy says about `app` asking for `request`, if anything.
    pub fn decide(&self, who: &Subject, app: &str, request: &Permission) -> Option<Decision> {
        let applies = |r: &&CheckedRule| {
            r.apps.iter().any(|a| a == "*" || a == app)
                && (r.roles.is_empty() || r.roles.iter().any(|role| self.has_role(who, role)))
        };
        let matching: Vec<&CheckedRule> = self.rules.iter().filter(applies).collect();
        let any = |pick: fn(&CheckedRule) -> &Vec<Permission>| {
            matching.iter().any(|r| pick(r).iter().any(|p| p.covers(request)))
        };
        if any(|r| &r.deny) {
            Some(Decision::Deny)
        } else if any(|r| &r.prompt) {
            Some(Decision::Prompt)
        } else if any(|r| &r.allow) {
            Some(Decision::Allow)
        } else {
            None
        }
    }
}

/// Reads an admin policy file; with `trust`, its detached signature (`<file>.sig`, made by
/// `tessera sign file`) must be valid first. Problems name the file.
pub fn load_file(path: &std::path::Path, trust: Option<&crate::signing::Checker>) -> Result<AdminPolicy, PolicyError> {
    let fail = |why: String| PolicyError { problems: vec![format!("{}: {why}", path.display())] };
    let bytes = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
    if let Some(checker) = trust {
        let sig = std::fs::read_to_string(format!("{}.sig", path.display())).ok();
        let now = broker::Clock::now(&broker::SystemClock).to_rfc3339();
        checker.check_manifest(&bytes, sig.as_deref(), &now).map_err(|e| fail(format!("signature: {e}")))?;
    }
    let text = String::from_utf8(bytes).map_err(|e| fail(e.to_string()))?;
    AdminPolicy::parse(&text)
        .map_err(|e| PolicyError { problems: e.problems.iter().map(|p| format!("{}: {p}", path.display())).collect() })
}

/// A remembered answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remembered {
    /// What it is about.
    pub permission: Permission,
    /// Allowed (`true`) or denied.
    pub allow: bool,
}

/// Decides `app`'s `request` from the policy, the user's remembered answers for this app, and
/// the permissions its manifest declares it may ask for.
pub fn resolve(
    policy: &AdminPolicy,
    who: &Subject,
    app: &str,
    remembered: &[Remembered],
    declared: &[Permission],
    request: &Permission,
) -> Verdict {
    let answer = || {
        // A remembered denial of the exact thing asked, or a covering one, wins over an allow.
        let covering: Vec<&Remembered> = remembered.iter().filter(|r| r.permission.covers(request)).collect();
        if covering.is_empty() {
            None
        } else if covering.iter().any(|r| !r.allow) {
            Some(Decision::Deny)
        } else {
            Some(Decision::Allow)
        }
    };
    match policy.decide(who, app, request) {
        Some(Decision::Prompt) => match answer() {
            Some(d) => Verdict { decision: d, source: Source::Remembered },
            None => Verdict { decision: Decision::Prompt, source: Source::Policy },
        },
        Some(d) => Verdict { decision: d, source: Source::Policy },
        None => match answer() {
            Some(d) => Verdict { decision: d, source: Source::Remembered },
            None if declared.iter().any(|p| p.covers(request)) => {
                Verdict { decision: Decision::Prompt, source: Source::Manifest }
            }
            None => Verdict { decision: Decision::Deny, source: Source::Default },
        },
    }
}

#[cfg(test)]
mod tests;
