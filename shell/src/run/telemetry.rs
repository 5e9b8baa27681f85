//! What IT's tools read from the running shell: its health (the shell's own services and each
//! app instance), for `ctl health` and, where the admin policy names a loopback address
//! (`telemetry.listen`), for `GET /health/live` and `GET /health/ready` over HTTP.

use std::sync::Arc;

use serde_json::{Value, json};
use shell::host::supervisor::AppState;
use telemetry::{Request, Response, Routes};

use super::Shell;

/// Whether the desk is well (every service ok, no app failed or restarting), and the details:
/// `{"status", "version", "services": [{name, ok, detail}], "apps": [{app, instance, state, ok}]}`.
pub(super) fn health(shell: &Shell) -> (bool, Value) {
    let services = super::ui::services(shell);
    let apps = shell.supervisor.status();
    let app_ok = |s: &AppState| !matches!(s, AppState::Failed | AppState::Restarting);
    let well = services.iter().all(|s| s.ok) && apps.iter().all(|a| app_ok(&a.state));
    let services: Vec<Value> =
        services.into_iter().map(|s| json!({ "name": s.name, "ok": s.ok, "detail": s.detail })).collect();
    let apps: Vec<Value> = apps
        .into_iter()
        .map(|a| json!({ "app": a.app, "instance": a.instance, "state": a.state, "ok": app_ok(&a.state) }))
        .collect();
    let status = if well { "ok" } else { "degraded" };
    (well, json!({ "status": status, "version": env!("CARGO_PKG_VERSION"), "services": services, "apps": apps }))
}

/// Starts the health endpoints if the admin policy names where.
pub(super) fn start(rt: &tokio::runtime::Runtime, shell: &Arc<Shell>) {
    // Read at start-up; a policy reloaded later that moves it takes effect at the next start.
    let Some(addr) = shell.permissions.telemetry_address() else { return };
    let listener = match rt.block_on(tokio::net::TcpListener::bind(addr)) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("the telemetry endpoint cannot listen on {addr}: {e}");
            return;
        }
    };
    tracing::info!("telemetry endpoint: http://{addr}/health/live and /health/ready");
    let shared = Arc::clone(shell);
    let routes: Routes = Arc::new(move |r: &Request| route(&shared, r));
    rt.spawn(telemetry::serve(listener, routes));
}

fn route(shell: &Shell, request: &Request) -> Option<Response> {
    match request.path.as_str() {
        // The process answers: a supervisor (systemd, a monitoring agent) need not restart it.
        "/health/live" => Some(Response::json(200, json!({ "status": "live" }).to_string())),
        // The desk works: 503 while a service is off or an app is failing.
        "/health/ready" => {
            let (well, body) = health(shell);
            Some(Response::json(if well { 200 } else { 503 }, body.to_string()))
        }
        _ => None,
    }
}
