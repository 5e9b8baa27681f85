//! The permission service: the admin policy (reloaded when its file changes), the user's
//! remembered answers in the profile, what each app's manifest declares, and the consent
//! prompt. It is the supervisor's and the FDC3 wiring's [`Gate`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use compositor::{Command as UiCommand, ConsentAnswer, ConsentRequest, Handle};
use parking_lot::{Mutex, RwLock};
use policy::{AdminPolicy, Decision, Permission, Remembered, Source, Subject, resolve};
use serde::Serialize;
use shell::host::gate::{Access, Gate};
use storage::Profile;
use storage::audit::{AuditEntry, AuditLog};

/// How long the consent dialog waits before its answer is "deny".
pub(super) const PROMPT_TIMEOUT: Duration = Duration::from_secs(30);

/// A question on screen.
#[derive(Debug)]
struct Prompt {
    app: String,
    instance: u64,
    permission: Permission,
    waiters: Vec<tokio::sync::oneshot::Sender<bool>>,
    asked_at_ms: u64,
}

/// A pending prompt as `tessera ctl prompts` shows it.
#[derive(Debug, Clone, Serialize)]
pub(super) struct PromptView {
    pub(super) id: u64,
    pub(super) app: String,
    pub(super) instance: u64,
    pub(super) permission: String,
    pub(super) asks: String,
    pub(super) asked_at_ms: u64,
}

/// What the gate knows of an app.
#[derive(Debug, Clone, Default)]
pub(super) struct AppFacts {
    pub(super) title: String,
    pub(super) origin: String,
    pub(super) declared: Vec<Permission>,
}

/// The permission service.
#[derive(Debug)]
pub(super) struct Permissions {
    policy: RwLock<AdminPolicy>,
    /// The policy file and the last modification times of it and its signature, if the
    /// policy came from a file.
    policy_file: Mutex<Option<(PathBuf, Stamps)>>,
    /// The keys the policy file must be signed with, if IT requires that.
    policy_trust: Option<policy::signing::Checker>,
    subject: Subject,
    profile: Profile,
    apps: RwLock<HashMap<String, AppFacts>>,
    /// Allowed once, for the life of an instance.
    once: Mutex<HashSet<(u64, Permission)>>,
    /// Decisions already made, until the policy or the remembered answers change.
    cache: Mutex<HashMap<(u64, Permission), (bool, String)>>,
    prompts: Mutex<BTreeMap<u64, Prompt>>,
    next_prompt: AtomicU64,
    ui: Handle,
    /// Where every decision is recorded (none if the vault, which holds its key, is unusable).
    audit: Option<Arc<AuditLog>>,
    /// The desk's event counters for IT's metrics (decisions and prompts here; FDC3 requests
    /// and update checks where those happen).
    pub(super) counters: telemetry::metrics::Counters,
}

/// When a policy file and its signature were last changed.
type Stamps = (Option<SystemTime>, Option<SystemTime>);

/// When a policy file and its signature were last changed.
fn stamps(path: &std::path::Path) -> Stamps {
    let m = |p: &std::path::Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    (m(path), m(std::path::Path::new(&format!("{}.sig", path.display()))))
}

/// The permission in plain words, for the consent dialog.
pub(super) fn describe(p: &Permission) -> String {
    let scope = p.scope.as_deref().unwrap_or("*");
    match p.name.as_str() {
        "bus.publish" => format!("publish messages on {scope}"),
        "bus.subscribe" => format!("listen to messages on {scope}"),
        "bus.serve" => format!("answer calls to the service {scope}"),
        "fdc3.broadcast" => "share what it shows with linked apps (FDC3 broadcast)".to_owned(),
        "fdc3.raiseIntent" => format!("ask other apps to {scope} (FDC3 intent)"),
        "fdc3.open" => "open other apps".to_owned(),
        "fdc3.appChannel" => format!("use the app channel {scope}"),
        "navigate" => format!("go to {scope}"),
        "window.open" => "open new windows".to_owned(),
        "clipboard.read" => "read your clipboard".to_owned(),
        "clipboard.write" => "write to your clipboard".to_owned(),
        "notifications" => "show notifications".to_owned(),
        "geolocation" => "know your location".to_owned(),
        "camera" => "use your camera".to_owned(),
        "microphone" => "use your microphone".to_owned(),
        "secrets" => "keep secrets in your vault".to_owned(),
        other => other.to_owned(),
    }
}

/// The user running the shell and their groups (from the environment and `/etc/group`).
pub(super) fn current_subject() -> Subject {
    let user = std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_default();
    let gid = rustix::process::getgid().as_raw();
    let mut groups = Vec::new();
    if let Ok(text) = std::fs::read_to_string("/etc/group") {
        for line in text.lines() {
            let fields: Vec<&str> = line.split(':').collect();
            let [name, _, id, members, ..] = fields.as_slice() else { continue };
            if id.parse::<u32>().ok() == Some(gid) || members.split(',').any(|m| m == user) {
                groups.push((*name).to_owned());
            }
        }
    }
    Subject { user, groups }
}

impl Permissions {
    /// Where the policy in force lets IT's tools read from the shell, if anywhere.
    pub(super) fn telemetry_address(&self) -> Option<std::net::SocketAddr> {
        self.policy.read().telemetry().and_then(policy::TelemetryRules::address)
    }

    /// The keys the policy must be signed with, if IT requires that.
    pub(super) fn policy_trust(&self) -> Option<policy::signing::Checker> {
        self.policy_trust.clone()
    }

    /// The signing rules of the policy in force (for manifests and App Directory records).
    pub(super) fn signing(&self) -> Option<policy::signing::Checker> {
        self.policy.read().signing().cloned()
    }

    /// Puts `policy` (from `from`, already checked) in force at once, and audits it.
    pub(super) fn install(&self, policy: policy::AdminPolicy, from: &str) {
        *self.policy.write() = policy;
        self.cache.lock().clear();
        self.record("admin-policy", None, "policy.load", from, "ok", serde_json::json!({}));
    }

    /// Whether the policy in force has the shell log `app`'s console output.
    /// Where the policy in force puts `app`'s view, if it says.
    pub(super) fn process_of(&self, app: &str) -> Option<policy::processes::ProcessChoice> {
        self.policy.read().processes().of(app)
    }

    pub(super) fn console_of(&self, app: &str) -> bool {
        self.policy.read().logs().console_of(app)
    }

    /// Where the policy in force sends traces, and how many.
    pub(super) fn trace_rules(&self) -> Option<policy::TraceRules> {
        self.policy.read().traces().cloned()
    }

    /// Whether the policy in force serves metrics beside the health endpoints.
    pub(super) fn metrics_enabled(&self) -> bool {
        self.policy.read().telemetry().is_some_and(|t| t.metrics)
    }

    /// Where the native endpoint's WebSocket listens, if the policy says.
    pub(super) fn websocket_address(&self) -> Option<std::net::SocketAddr> {
        self.policy.read().endpoint().and_then(policy::EndpointRules::websocket_address)
    }

    pub(super) fn new(
        policy: AdminPolicy,
        policy_file: Option<PathBuf>,
        profile: Profile,
        ui: Handle,
        audit: Option<Arc<AuditLog>>,
        policy_trust: Option<policy::signing::Checker>,
    ) -> Self {
        let stamp = policy_file.map(|f| {
            let modified = stamps(&f);
            (f, modified)
        });
        Self {
            policy: RwLock::new(policy),
            policy_file: Mutex::new(stamp),
            subject: current_subject(),
            profile,
            apps: RwLock::new(HashMap::new()),
            once: Mutex::new(HashSet::new()),
            cache: Mutex::new(HashMap::new()),
            prompts: Mutex::new(BTreeMap::new()),
            next_prompt: AtomicU64::new(1),
            ui,
            audit,
            policy_trust,
            counters: telemetry::metrics::Counters::default(),
        }
    }

    /// Records a decision in the audit log.
    pub(super) fn record(
        &self,
        actor: &str,
        app: Option<&str>,
        action: &str,
        object: &str,
        decision: &str,
        details: serde_json::Value,
    ) {
        let Some(log) = &self.audit else { return };
        let entry = AuditEntry::now(actor, action, object, decision).app(app).details(details);
        if let Err(e) = log.append(&entry) {
            tracing::error!("could not write the audit log ({action} {object}): {e}");
        }
    }

    /// Records several entries in one transaction (a busy source, such as the desk link).
    pub(super) fn record_many(&self, entries: &[AuditEntry]) {
        let Some(log) = &self.audit else { return };
        if let Err(e) = log.append_many(entries) {
            tracing::error!("could not write {} entries to the audit log: {e}", entries.len());
        }
    }

    /// Signs a tree head when one is due.
    pub(super) fn tick_audit(&self) {
        if let Some(log) = &self.audit
            && let Err(e) = log.tick()
        {
            tracing::error!("could not sign the audit log's head: {e}");
        }
    }

    /// What the gate should know of the apps (titles, origins, declared permissions).
    pub(super) fn set_apps(&self, apps: HashMap<String, AppFacts>) {
        *self.apps.write() = apps;
        self.cache.lock().clear();
    }

    /// Reloads the policy file if it changed; a bad file is refused and the policy in force
    /// stays. Returns what happened, if anything did.
    pub(super) fn reload_if_changed(&self) -> Option<Result<(), String>> {
        let mut file = self.policy_file.lock();
        let (path, stamp) = file.as_mut()?;
        let now = stamps(path);
        if now == *stamp {
            return None;
        }
        *stamp = now;
        let path = path.clone();
        let where_ = path.display().to_string();
        drop(file);
        match policy::load_file(&path, self.policy_trust.as_ref()) {
            Ok(p) => {
                *self.policy.write() = p;
                self.cache.lock().clear();
                self.record("admin-policy", None, "policy.load", &where_, "ok", serde_json::json!({}));
                Some(Ok(()))
            }
            Err(e) => {
                self.record(
                    "admin-policy",
                    None,
                    "policy.reject",
                    &where_,
                    "refused",
                    serde_json::json!({ "problems": e.problems }),
                );
                Some(Err(format!("{where_}: {e}")))
            }
        }
    }

    /// Forgets what was allowed once for an instance that is gone.
    pub(super) fn forget_instance(&self, instance: u64) {
        self.once.lock().retain(|(i, _)| *i != instance);
        self.cache.lock().retain(|(i, _), _| *i != instance);
    }

    /// The remembered answers changed (revoked in settings or by `ctl grants revoke`).
    pub(super) fn grants_changed(&self) {
        self.cache.lock().clear();
    }

    fn remembered(&self, app: &str) -> Vec<Remembered> {
        match self.profile.grants(Some(app)) {
            Ok(grants) => grants
                .into_iter()
                .filter_map(|g| {
                    let permission = Permission::new(&g.permission, g.scope.as_deref()).ok()?;
                    Some(Remembered { permission, allow: g.decision == storage::Decision::Allow })
                })
                .collect(),
            Err(e) => {
                tracing::error!(%app, "could not read remembered permissions: {e}");
                Vec::new()
            }
        }
    }

    /// The prompts on screen.
    pub(super) fn prompts(&self) -> Vec<PromptView> {
        self.prompts
            .lock()
            .iter()
            .map(|(id, p)| PromptView {
                id: *id,
                app: p.app.clone(),
                instance: p.instance,
                permission: p.permission.to_string(),
                asks: describe(&p.permission),
                asked_at_ms: p.asked_at_ms,
            })
            .collect()
    }

    /// The user answered prompt `id` (in the dialog, or `tessera ctl prompt`); whether there
    /// was such a prompt.
    pub(super) fn answer(&self, id: u64, answer: ConsentAnswer) -> bool {
        let Some(prompt) = self.prompts.lock().remove(&id) else { return false };
        let allow = matches!(answer, ConsentAnswer::AllowOnce | ConsentAnswer::AllowAlways);
        match answer {
            ConsentAnswer::AllowOnce => {
                self.once.lock().insert((prompt.instance, prompt.permission.clone()));
            }
            ConsentAnswer::AllowAlways | ConsentAnswer::Deny => {
                let grant = storage::Grant {
                    app: prompt.app.clone(),
                    permission: prompt.permission.name.clone(),
                    scope: prompt.permission.scope.clone(),
                    decision: if allow { storage::Decision::Allow } else { storage::Decision::Deny },
                    decided_at: broker::Timestamp::now(),
                };
                if let Err(e) = self.profile.put_grant(&grant) {
                    tracing::error!(app = %prompt.app, "could not remember the answer: {e}");
                }
            }
            ConsentAnswer::TimedOut => {}
        }
        self.cache.lock().clear();
        tracing::info!(app = %prompt.app, instance = prompt.instance, permission = %prompt.permission, ?answer, "permission answered");
        let said = match answer {
            ConsentAnswer::AllowOnce => "allow-once",
            ConsentAnswer::AllowAlways => "allow-always",
            ConsentAnswer::Deny => "deny",
            ConsentAnswer::TimedOut => "timed-out",
        };
        self.counters.prompt(&prompt.app, said);
        self.record(
            "user",
            Some(&prompt.app),
            "permission.answer",
            &prompt.permission.to_string(),
            said,
            serde_json::json!({ "instance": prompt.instance, "prompt": id }),
        );
        for w in prompt.waiters {
            let _ = w.send(allow);
        }
        true
    }

    fn ask(&self, instance: u64, app: &str, permission: &Permission) -> Access {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let mut prompts = self.prompts.lock();
        if let Some(p) = prompts.values_mut().find(|p| p.instance == instance && p.permission == *permission) {
            p.waiters.push(tx);
        } else {
            let id = self.next_prompt.fetch_add(1, Ordering::Relaxed);
            let facts = self.apps.read().get(app).cloned().unwrap_or_default();
            prompts.insert(
                id,
                Prompt {
                    app: app.to_owned(),
                    instance,
                    permission: permission.clone(),
                    waiters: vec![tx],
                    asked_at_ms: broker::Timestamp::now().millis(),
                },
            );
            tracing::info!(%app, instance, %permission, id, "asking the user");
            self.counters.prompt(app, "asked");
            self.record(
                "shell",
                Some(app),
                "permission.prompt",
                &permission.to_string(),
                "prompted",
                serde_json::json!({ "instance": instance, "prompt": id }),
            );
            self.ui.send(UiCommand::ShowConsent(ConsentRequest {
                id,
                app_id: app.to_owned(),
                app_title: if facts.title.is_empty() { app.to_owned() } else { facts.title },
                origin: facts.origin,
                asks: describe(permission),
                timeout: PROMPT_TIMEOUT,
            }));
        }
        Access::Ask(Box::pin(async move {
            // The dialog denies on its own at its deadline; this is the backstop.
            matches!(tokio::time::timeout(PROMPT_TIMEOUT + Duration::from_secs(5), rx).await, Ok(Ok(true)))
        }))
    }

    /// Prompts past their deadline (a dialog that never answered) are denied.
    pub(super) fn expire(&self) {
        let now = broker::Timestamp::now().millis();
        let late: Vec<u64> = self
            .prompts
            .lock()
            .iter()
            .filter(|(_, p)| {
                now.saturating_sub(p.asked_at_ms) > (PROMPT_TIMEOUT + Duration::from_secs(2)).as_millis() as u64
            })
            .map(|(id, _)| *id)
            .collect();
        for id in late {
            self.ui.send(UiCommand::CancelDialog { id });
            self.answer(id, ConsentAnswer::TimedOut);
        }
    }
}

impl Gate for Permissions {
    fn credentials(&self) -> Option<policy::signing::Checker> {
        self.policy.read().signing().cloned()
    }

    fn refused(&self, instance: u64, app: &str, action: &str, object: &str) {
        // A page may try this in a loop: at most one entry per instance, action and object
        // until the decisions are cleared.
        let key = (
            instance,
            Permission { name: format!("refused:{action}"), scope: Some(object.chars().take(512).collect()) },
        );
        if self.cache.lock().insert(key, (false, String::new())).is_none() {
            self.record(
                "shell",
                Some(app),
                action,
                &object.chars().take(512).collect::<String>(),
                "refused",
                serde_json::json!({ "instance": instance }),
            );
        }
    }

    fn check(&self, instance: u64, app: &str, permission: &Permission) -> Access {
        if self.once.lock().iter().any(|(i, p)| *i == instance && p.covers(permission)) {
            return Access::Allow;
        }
        let key = (instance, permission.clone());
        if let Some((allow, why)) = self.cache.lock().get(&key).cloned() {
            return if allow { Access::Allow } else { Access::Deny(why) };
        }
        let declared = self.apps.read().get(app).map(|f| f.declared.clone()).unwrap_or_default();
        let remembered = self.remembered(app);
        let verdict = resolve(&self.policy.read(), &self.subject, app, &remembered, &declared, permission);
        let source = match verdict.source {
            Source::Policy => "admin-policy",
            Source::Remembered => "user",
            Source::Manifest => "manifest",
            Source::Default => "default",
        };
        let why = match verdict.source {
            Source::Policy => format!("denied by the admin policy: {permission}"),
            Source::Remembered => format!("denied: you refused {permission}"),
            Source::Manifest | Source::Default => {
                format!("denied: {permission} is not allowed (the app does not declare it may ask for it)")
            }
        };
        match verdict.decision {
            Decision::Allow | Decision::Deny => {
                let decision = if verdict.decision == Decision::Allow { "allow" } else { "deny" };
                self.counters.decision(app, decision, source);
            }
            Decision::Prompt => {}
        }
        match verdict.decision {
            Decision::Allow => {
                self.record(
                    source,
                    Some(app),
                    "permission.decide",
                    &permission.to_string(),
                    "allow",
                    serde_json::json!({ "instance": instance }),
                );
                self.cache.lock().insert(key, (true, String::new()));
                Access::Allow
            }
            Decision::Deny => {
                tracing::warn!(%app, instance, %permission, source = ?verdict.source, "permission denied");
                self.record(
                    source,
                    Some(app),
                    "permission.decide",
                    &permission.to_string(),
                    "deny",
                    serde_json::json!({ "instance": instance }),
                );
                self.cache.lock().insert(key, (false, why.clone()));
                Access::Deny(why)
            }
            Decision::Prompt => self.ask(instance, app, permission),
        }
    }
}

/// Keeps the policy file in force: polls it once a second.
pub(super) async fn watch(permissions: Arc<Permissions>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        match permissions.reload_if_changed() {
            Some(Ok(())) => tracing::info!("admin policy reloaded"),
            Some(Err(e)) => tracing::error!("admin policy refused, the previous one stays: {e}"),
            None => {}
        }
        permissions.expire();
        permissions.tick_audit();
    }
}
