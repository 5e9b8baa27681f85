//! The desk link (`bridge`), started when the admin policy has a `link` section: its token from
//! the vault, its crossings into the audit log, its state in the health view and `ctl link`.

use std::sync::Arc;

use serde_json::json;
use storage::audit::AuditEntry;

use super::Shell;

/// The vault purpose the link's token is kept under (`tessera vault put link <name>`).
pub(super) const VAULT_PURPOSE: &str = "link";

/// What the link starts with, read before the shell is up.
pub(super) struct Prepared {
    rules: policy::link::LinkRules,
    credentials: Result<bridge::Credentials, String>,
}

/// A secret of the link's from the vault, as text.
fn secret(vault: Option<&storage::Vault>, what: &str, name: &str) -> Result<String, String> {
    let Some(vault) = vault else {
        return Err(format!("its {what} {name:?} is in the vault, which cannot be opened"));
    };
    match vault.get(VAULT_PURPOSE, name) {
        Ok(Some(bytes)) => {
            String::from_utf8(bytes).map_err(|_| format!("its {what} {name:?} in the vault is not text"))
        }
        Ok(None) => Err(format!(
            "its {what} {name:?} is not in the vault (put it there with `tessera vault put --purpose {VAULT_PURPOSE} --id {name}`)"
        )),
        Err(e) => Err(format!("reading its {what} {name:?} from the vault: {e}")),
    }
}

/// The link's rules and its credentials, if the policy links this desk.
pub(super) fn prepare(admin: &policy::AdminPolicy, vault: Option<&storage::Vault>) -> Option<Prepared> {
    let rules = admin.link()?.clone();
    let credentials = match (&rules.token_secret, &rules.user, &rules.nkey_secret, &rules.creds_secret) {
        (Some(name), Some(user), _, _) => {
            secret(vault, "password", name).map(|p| bridge::Credentials::User(user.clone(), p.trim().to_owned()))
        }
        (Some(name), None, _, _) => {
            secret(vault, "token", name).map(|t| bridge::Credentials::Token(t.trim().to_owned()))
        }
        (None, _, Some(name), _) => {
            secret(vault, "NKey seed", name).map(|k| bridge::Credentials::NKey(k.trim().to_owned()))
        }
        (None, _, None, Some(name)) => secret(vault, "credentials file", name).map(bridge::Credentials::Creds),
        (None, _, None, None) => Ok(bridge::Credentials::None),
    };
    Some(Prepared { rules, credentials })
}

/// What the shell does for the link: its crossings into the audit log (a batch per
/// transaction), the other desks' broadcasts to the FDC3 agent.
struct Sink {
    permissions: Arc<super::permissions::Permissions>,
    /// The shell (not kept alive by the link it holds).
    shell: std::sync::Weak<Shell>,
}

impl bridge::Host for Sink {
    fn context(&self, rc: bridge::wire::RemoteContext) {
        let Some(shell) = self.shell.upgrade() else { return };
        let outputs =
            super::fdc3::decide(&shell, |agent, now| agent.remote_broadcast(&rc.channel, &rc.context, &rc.origin, now));
        super::fdc3::exec(&shell, outputs);
    }

    fn apps(&self) -> Vec<broker::fdc3::RemoteApp> {
        let Some(shell) = self.shell.upgrade() else { return Vec::new() };
        let agent = shell.agent.lock();
        agent
            .directory()
            .apps()
            .filter(|a| a.url.is_some() && !a.intents.is_empty())
            .map(|a| broker::fdc3::RemoteApp {
                app_id: a.app_id.clone(),
                title: a.title.clone(),
                intents: a.intents.clone(),
            })
            .collect()
    }

    fn desk_apps(&self, desk: &str, apps: Vec<broker::fdc3::RemoteApp>) {
        let Some(shell) = self.shell.upgrade() else { return };
        shell.agent.lock().set_desk_apps(desk, apps);
    }

    fn raise(&self, raise: broker::fdc3::DeskRaise) {
        let Some(shell) = self.shell.upgrade() else { return };
        let outputs = super::fdc3::decide(&shell, |agent, now| agent.raise_from_desk(raise, now));
        super::fdc3::exec(&shell, outputs);
    }

    fn answer(&self, a: bridge::wire::Answer) {
        let Some(shell) = self.shell.upgrade() else { return };
        let outputs =
            super::fdc3::decide(&shell, |agent, now| agent.desk_answer(&a.desk, &a.request, &a.kind, &a.payload, now));
        super::fdc3::exec(&shell, outputs);
    }

    fn record(&self, crossings: Vec<bridge::Crossing>) {
        let entries: Vec<AuditEntry> = crossings
            .into_iter()
            .map(|c| {
                let (action, decision) = match c.way {
                    bridge::Way::Out => ("link.out", "allowed"),
                    bridge::Way::In => ("link.in", "allowed"),
                    bridge::Way::Refused => ("link.refused", "refused"),
                };
                AuditEntry::now(&format!("desk:{}", c.desk), action, &c.topic, decision)
                    .app(c.app.as_deref())
                    .details(json!({ "group": c.group, "user": c.user, "bytes": c.bytes, "reason": c.reason }))
            })
            .collect();
        self.permissions.record_many(&entries);
    }
}

/// Who is at this desk, for the other desks to see.
fn user() -> String {
    std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| format!("uid{}", rustix::process::getuid().as_raw()))
}

/// Starts the link, if the policy has one.
pub(super) fn start(rt: &tokio::runtime::Runtime, shell: &Arc<Shell>, prepared: Option<Prepared>) {
    let Some(Prepared { rules, credentials }) = prepared else { return };
    let credentials = match credentials {
        Ok(c) => c,
        Err(why) => {
            tracing::error!("the desk link is off: {why}");
            let _ = shell.link.set(Err(why));
            return;
        }
    };
    shell.agent.lock().link_as(&rules.desk);
    let bridge = {
        let _guard = rt.enter();
        let sink = Sink { permissions: Arc::clone(&shell.permissions), shell: Arc::downgrade(shell) };
        bridge::start(shell.broker.clone(), &rules, &user(), credentials, Arc::new(sink))
    };
    tracing::info!(desk = %rules.desk, servers = ?rules.servers, "the desk link is starting");
    shell.permissions.record(
        "shell",
        None,
        "link.start",
        &rules.desk,
        "ok",
        json!({ "servers": rules.servers, "groups": rules.groups_of_this_desk().map(|g| g.name.clone()).collect::<Vec<_>>() }),
    );
    let _ = shell.link.set(Ok(bridge));
}

/// The link's status, if it runs.
pub(super) fn status(shell: &Shell) -> Option<bridge::Status> {
    shell.link.get()?.as_ref().ok().map(bridge::Bridge::status)
}

/// The link's row in the health view, if the policy has a link.
pub(super) fn service_row(shell: &Shell) -> Option<compositor::ServiceRow> {
    let row = match shell.link.get()? {
        Err(why) => compositor::ServiceRow {
            name: "Desk link".to_owned(),
            ok: false,
            detail: format!("OFF: {why}"),
            bar: Some("Link off".to_owned()),
        },
        Ok(bridge) => {
            let s = bridge.status();
            let detail = match (&s.server, s.connection_error.as_ref().or(s.last_error.as_ref())) {
                (Some(server), _) if s.connected() => format!(
                    "{} as desk {} to {server}; groups {}; desks {}; out {}, in {}, refused {}",
                    s.state,
                    s.desk,
                    s.groups.join(", "),
                    if s.desks.is_empty() { "none yet".to_owned() } else { s.desks.join(", ") },
                    s.messages_out,
                    s.messages_in,
                    s.refused
                ),
                (_, Some(e)) => format!("{}: {e}", s.state),
                _ => s.state.to_owned(),
            };
            let bar = if s.connected() {
                let n = s.desks.len();
                format!("Linked: {n} desk{}", if n == 1 { "" } else { "s" })
            } else {
                format!("Link {}", s.state)
            };
            compositor::ServiceRow { name: "Desk link".to_owned(), ok: s.connected(), detail, bar: Some(bar) }
        }
    };
    Some(row)
}

/// What `ctl link` answers.
pub(super) fn describe(shell: &Shell) -> serde_json::Value {
    match shell.link.get() {
        None => json!({ "state": "off", "reason": "the admin policy has no link section" }),
        Some(Err(why)) => json!({ "state": "off", "reason": why }),
        Some(Ok(bridge)) => serde_json::to_value(bridge.status()).unwrap_or_default(),
    }
}
