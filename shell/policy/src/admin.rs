//! The admin policy (IT's rules per app and per role, permission sets, the update and signing
//! sections), read field by field, and `resolve`, which decides a request from the policy, the
//! user's remembered answers and the manifest's declared permissions.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::permission::Permission;

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
    /// How the audit log must be kept.
    #[serde(default)]
    pub audit: AuditRules,
    /// What IT's tools may read from the running shell, and where.
    #[serde(default)]
    pub telemetry: Option<TelemetryRules>,
    /// How native apps may reach the shell beyond its Unix socket.
    #[serde(default)]
    pub endpoint: Option<EndpointRules>,
    /// The NATS cluster linking this desk to others, and what crosses it.
    #[serde(default)]
    pub link: Option<crate::link::LinkRules>,
    /// What goes into the shell's log beside its own lines.
    #[serde(default)]
    pub logs: LogRules,
    /// Where the desk's traces go (an OpenTelemetry collector) and how many are kept.
    #[serde(default)]
    pub traces: Option<TraceRules>,
    /// Which web apps share app host processes, beyond what the manifest says.
    #[serde(default)]
    pub processes: crate::processes::ProcessRules,
}

/// The admin policy's trace rules: OTLP/HTTP to IT's OpenTelemetry collector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TraceRules {
    /// The collector's OTLP/HTTP address (`https://otel.corp:4318`; spans go to its
    /// `/v1/traces`). `https://`, or `http://` to a collector beside the desk.
    pub endpoint: String,
    /// The share of new traces recorded, 0 to 1 (default 0.01). A message a page sends in a
    /// trace it marked sampled is recorded whatever the share.
    #[serde(default = "default_sample_ratio")]
    pub sample_ratio: f64,
}

// The ratio is checked to be a number from 0 to 1 (never NaN), so equality is total.
impl Eq for TraceRules {}

fn default_sample_ratio() -> f64 {
    0.01
}

impl TraceRules {
    /// What is wrong with the rules, if anything.
    fn problems(&self, problems: &mut Vec<String>) {
        let shown: String = self.endpoint.chars().take(80).collect();
        match url::Url::parse(&self.endpoint) {
            Ok(u) if !u.username().is_empty() || u.password().is_some() => {
                problems
                    .push("traces.endpoint: has a user name or password; give the collector's address alone".into());
            }
            Ok(u) if u.scheme() == "https" && u.host_str().is_some() => {}
            Ok(_) if crate::urls::local_http(&self.endpoint) => {}
            _ => problems
                .push(format!("traces.endpoint: {shown:?} is not an https:// address (or http:// to this machine)")),
        }
        if !(0.0..=1.0).contains(&self.sample_ratio) {
            problems.push(format!("traces.sampleRatio: {} is not a number from 0 to 1", self.sample_ratio));
        }
    }
}

/// The admin policy's log rules.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LogRules {
    /// Apps whose pages' console output goes into the shell's log, each line with the app
    /// named (`"*"`: every app). Default: none (a page may log what it shows the user).
    #[serde(default)]
    pub console_apps: Vec<String>,
}

impl LogRules {
    /// Whether `app`'s console output is logged.
    pub fn console_of(&self, app: &str) -> bool {
        self.console_apps.iter().any(|a| a == "*" || a == app)
    }
}

/// The admin policy's rules for the native-app endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EndpointRules {
    /// A WebSocket listener for apps started outside the shell (credentials only): a loopback
    /// address and port (`127.0.0.1:7070`).
    #[serde(default)]
    pub websocket: Option<String>,
}

impl EndpointRules {
    /// The WebSocket's address, if there is one and it is a loopback one.
    pub fn websocket_address(&self) -> Option<std::net::SocketAddr> {
        self.websocket.as_ref()?.parse::<std::net::SocketAddr>().ok().filter(|a| a.ip().is_loopback())
    }
}

/// The admin policy's telemetry rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TelemetryRules {
    /// Where the health endpoints listen: a loopback address and port (`127.0.0.1:9464`).
    pub listen: String,
    /// Also serve `/metrics` there, for Prometheus (default: off).
    #[serde(default)]
    pub metrics: bool,
}

impl TelemetryRules {
    /// The address to listen on, if it is a loopback one.
    pub fn address(&self) -> Option<std::net::SocketAddr> {
        self.listen.parse::<std::net::SocketAddr>().ok().filter(|a| a.ip().is_loopback())
    }
}

/// The admin policy's audit rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AuditRules {
    /// Refuse to start when the audit log cannot be opened (default: start, with a red bar).
    #[serde(default)]
    pub required: bool,
    /// When the chosen keyring does not answer, keep the audit log's key in the kernel's
    /// keyutils session keyring instead (it does not survive a reboot). Default: allowed.
    #[serde(default = "yes")]
    pub keyutils_fallback: bool,
}

impl Default for AuditRules {
    fn default() -> Self {
        Self { required: false, keyutils_fallback: true }
    }
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
    audit: AuditRules,
    telemetry: Option<TelemetryRules>,
    endpoint: Option<EndpointRules>,
    link: Option<crate::link::LinkRules>,
    logs: LogRules,
    traces: Option<TraceRules>,
    processes: crate::processes::ProcessRules,
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
        check_listeners(file, &mut problems);
        file.processes.problems(&mut problems);
        if let Some(t) = &file.traces {
            t.problems(&mut problems);
        }
        if let Some(link) = &file.link {
            crate::link::check(link, &mut problems);
        }
        if let Some(u) = &file.update {
            if !u.feed_url.starts_with("https://")
                && !crate::urls::local_http(&u.feed_url)
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
            Ok(Self {
                roles: file.roles.clone(),
                rules,
                signing,
                release,
                update: file.update.clone(),
                audit: file.audit,
                telemetry: file.telemetry.clone(),
                endpoint: file.endpoint.clone(),
                link: file.link.clone(),
                logs: file.logs.clone(),
                traces: file.traces.clone(),
                processes: file.processes.clone(),
            })
        } else {
            Err(PolicyError { problems })
        }
    }

    /// The update rules, if the policy has them.
    pub fn update(&self) -> Option<&UpdateRules> {
        self.update.as_ref()
    }

    /// How the audit log must be kept.
    pub fn audit(&self) -> AuditRules {
        self.audit
    }

    /// The telemetry rules, if the policy has them.
    pub fn telemetry(&self) -> Option<&TelemetryRules> {
        self.telemetry.as_ref()
    }

    /// The process rules.
    pub fn processes(&self) -> &crate::processes::ProcessRules {
        &self.processes
    }

    /// The log rules.
    pub fn logs(&self) -> &LogRules {
        &self.logs
    }

    /// The trace rules, if the policy has them.
    pub fn traces(&self) -> Option<&TraceRules> {
        self.traces.as_ref()
    }

    /// The native endpoint's rules, if the policy has them.
    pub fn endpoint(&self) -> Option<&EndpointRules> {
        self.endpoint.as_ref()
    }

    /// The desk link's rules, if the policy has them.
    pub fn link(&self) -> Option<&crate::link::LinkRules> {
        self.link.as_ref()
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

/// The loopback listeners a policy opens (telemetry, the endpoint's WebSocket), checked.
fn check_listeners(file: &PolicyFile, problems: &mut Vec<String>) {
    if let Some(t) = &file.telemetry
        && t.address().is_none()
    {
        problems.push(format!(
            "telemetry.listen: {:?} is not a loopback address and port (like 127.0.0.1:9464)",
            t.listen.chars().take(80).collect::<String>()
        ));
    }
    if let Some(EndpointRules { websocket: Some(w) }) = &file.endpoint
        && file.endpoint.as_ref().and_then(EndpointRules::websocket_address).is_none()
    {
        problems.push(format!(
            "endpoint.websocket: {:?} is not a loopback address and port (like 127.0.0.1:7070)",
            w.chars().take(80).collect::<String>()
        ));
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
