//! What IT's tools read from the running shell: its health (the shell's own services and each
//! app instance), for `ctl health` and, where the admin policy names a loopback address
//! (`telemetry.listen`), for `GET /health/live` and `GET /health/ready` over HTTP; and, where
//! the policy also says `telemetry.metrics`, `GET /metrics` for Prometheus; and the desk's
//! traces to the OpenTelemetry collector the policy's `traces` section names.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use shell::host::supervisor::AppState;
use telemetry::metrics::{
    AppSample, BrokerSample, FamilySample, FrameSample, JournalSample, LinkSample, Snapshot, histogram_from_ns,
};
use telemetry::trace::TraceConfig;
use telemetry::{Request, Response, Routes};

use super::Shell;

/// Whether the desk is well (every required service ok, no app failed or restarting), and the
/// details: `{"status", "version", "manifest", "config", "traces", "services": [{name, ok, required,
/// detail}], "apps": [{app, instance, state, ok, group}], "groups": [{name, pid, views,
/// memory_bytes}]}` (the process groups whose shared hosts run).
pub(super) fn health(shell: &Shell) -> (bool, Value) {
    let services = super::ui::services(shell);
    let apps = shell.supervisor.status();
    let app_ok = |s: &AppState| !matches!(s, AppState::Failed | AppState::Restarting);
    // A failing update check, or IT's configuration server down (the last good copy in
    // force), is shown (and in the metrics) but the desk still works.
    let well = services.iter().all(|s| s.ok || NOT_READINESS.contains(&s.name.as_str()))
        && apps.iter().all(|a| app_ok(&a.state));
    let services: Vec<Value> = services
        .into_iter()
        .map(|s| {
            let required = !NOT_READINESS.contains(&s.name.as_str());
            json!({ "name": s.name, "ok": s.ok, "required": required, "detail": s.detail })
        })
        .collect();
    let apps: Vec<Value> = apps
        .into_iter()
        .map(|a| json!({ "app": a.app, "instance": a.instance, "state": a.state, "ok": app_ok(&a.state), "group": a.group }))
        .collect();
    let groups = shell.supervisor.groups();
    let status = if well { "ok" } else { "degraded" };
    let manifest = shell.manifest.read().name.clone();
    let tracer = telemetry::trace::global();
    let traces = tracer.installed().map(|(collector, ratio)| {
        let c = tracer.counts();
        json!({ "collector": collector, "sampleRatio": ratio, "exported": c.exported, "dropped": c.dropped, "failed": c.failed })
    });
    (
        well,
        json!({
            "status": status,
            "version": env!("CARGO_PKG_VERSION"),
            "manifest": manifest,
            "config": &*shell.config.lock(),
            "traces": traces,
            "services": services,
            "apps": apps,
            "groups": groups,
            // Frames the window has drawn: an idle desk draws none.
            "frames": frames(shell).map(|f| f.frames),
        }),
    )
}

/// Services shown in health whose trouble does not make the desk unready.
const NOT_READINESS: [&str; 2] = ["Updater", "Configuration"];

/// Sends the desk's traces where the policy in force says (its `traces` section), or stops
/// sending them; nothing changes if the collector and ratio are the ones in force.
pub(super) fn traces(shell: &Shell) {
    let tracer = telemetry::trace::global();
    let wanted = shell.permissions.trace_rules();
    let now = tracer.installed();
    match wanted {
        Some(rules) if now.as_ref() != Some(&(rules.endpoint.clone(), rules.sample_ratio)) => {
            let mut resource = vec![
                ("service.name", "tessera".to_owned()),
                ("service.version", env!("CARGO_PKG_VERSION").to_owned()),
                ("tessera.manifest", shell.manifest.read().name.clone()),
            ];
            if let Ok(host) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
                resource.push(("host.name", host.trim().to_owned()));
            }
            let config = TraceConfig { endpoint: rules.endpoint.clone(), sample_ratio: rules.sample_ratio, resource };
            match tracer.install(config) {
                Ok(()) => tracing::info!(
                    collector = %rules.endpoint,
                    ratio = rules.sample_ratio,
                    "traces go to the OpenTelemetry collector"
                ),
                Err(e) => tracing::error!("traces are off: {e}"),
            }
        }
        Some(_) => {}
        None if now.is_some() => {
            tracer.uninstall();
            tracing::info!("traces are off (the policy in force names no collector)");
        }
        None => {}
    }
}

/// Starts the health (and metrics) endpoints if the admin policy names where.
pub(super) fn start(rt: &tokio::runtime::Runtime, shell: &Arc<Shell>) {
    traces(shell);
    // Read at start-up; a policy reloaded later that moves it takes effect at the next start.
    let Some(addr) = shell.permissions.telemetry_address() else { return };
    let listener = match rt.block_on(tokio::net::TcpListener::bind(addr)) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("the telemetry endpoint cannot listen on {addr}: {e}");
            return;
        }
    };
    tracing::info!(
        metrics = shell.permissions.metrics_enabled(),
        "telemetry endpoint: http://{addr}/health/live and /health/ready"
    );
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
        // Checked at each scrape: a policy reloaded with metrics off stops them at once.
        "/metrics" if shell.permissions.metrics_enabled() => {
            match telemetry::metrics::encode(&shell.permissions.counters, snapshot(shell)) {
                Ok(text) => Some(Response::metrics(text)),
                Err(e) => {
                    tracing::error!("could not encode the metrics: {e}");
                    Some(Response::text(500, "the metrics could not be encoded\n"))
                }
            }
        }
        _ => None,
    }
}

/// What the shell's parts say now, for one scrape.
fn snapshot(shell: &Shell) -> Snapshot {
    let stats = shell.broker.stats();
    let routing = &stats.routing;
    let delivery = &stats.delivery;
    let broker = BrokerSample {
        clients: stats.clients as u64,
        subscriptions: stats.subscriptions as u64,
        backpressured: stats.backpressured,
        expired: stats.expired,
        rejected: stats.rejected_topic + stats.rejected_payload,
        dead_letters_held: stats.dead_letters_held as u64,
        calls: stats.calls,
        calls_timed_out: stats.calls_timed_out,
        routing: histogram_from_ns(&routing.bounds_ns, &routing.counts, routing.sum_ns),
        delivery: histogram_from_ns(&delivery.bounds_ns, &delivery.counts, delivery.sum_ns),
    };
    let families = stats
        .families
        .iter()
        .map(|(family, f)| FamilySample {
            family: family.clone(),
            published: f.published,
            delivered: f.delivered,
            dropped: f.dropped,
            dead_lettered: f.dead_lettered,
        })
        .collect();
    let journal = shell.journal.stats().ok().map(|j| JournalSample {
        records: j.count,
        bytes: j.bytes,
        commits: j.commits,
        committed: j.committed,
        commit_p50: j.commit_ms_p50.map(|ms| ms / 1000.0),
        commit_p99: j.commit_ms_p99.map(|ms| ms / 1000.0),
        stopped: j.stopped.is_some(),
    });
    let apps = shell
        .supervisor
        .status()
        .into_iter()
        .map(|a| AppSample {
            state: serde_json::to_value(a.state).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default(),
            app: a.app,
            instance: a.instance,
            restarts: u64::from(a.restarts),
            memory_bytes: a.memory_bytes,
            cpu: a.cpu_percent.map(|p| p / 100.0),
            sent: a.messages_out,
            received: a.messages_in,
            throttled: a.throttled,
        })
        .collect();
    let link = super::link::status(shell).map(|s| LinkSample {
        connected: s.connected(),
        sent: s.messages_out,
        received: s.messages_in,
        refused: s.refused,
        duplicates: s.duplicates,
        desks: s.desks.len() as u64,
        pending: s.pending.into_iter().collect(),
    });
    let updater = shell.updater.lock();
    let config = shell.config.lock().clone();
    let mut stale = vec![("manifest", config.manifest.stale.is_some())];
    let mut info = vec![
        ("version", env!("CARGO_PKG_VERSION").to_owned()),
        ("manifest", shell.manifest.read().name.clone()),
        ("manifest_digest", config.manifest.digest.clone()),
    ];
    if let Some(p) = &config.policy {
        info.push(("policy_digest", p.digest.clone()));
        stale.push(("policy", p.stale.is_some()));
    }
    Snapshot {
        info,
        config_stale: stale,
        shell_memory_bytes: shell_rss(),
        families,
        broker,
        journal,
        audit_recording: shell.audit.recording,
        traces: telemetry::trace::global().enabled().then(|| telemetry::trace::global().counts()),
        apps,
        frames: frames(shell),
        update_staged: updater.enabled.then_some(updater.staged.is_some()),
        link,
    }
}

/// The window's frame counts, if it answers within a moment.
fn frames(shell: &Shell) -> Option<FrameSample> {
    let (tx, rx) = flume::bounded(1);
    if !shell.ui.send(compositor::Command::FrameStats { reply: tx, reset: false }) {
        return None;
    }
    let stats = rx.recv_timeout(Duration::from_millis(250)).ok()?;
    let mut ms = stats.frame_ms;
    if ms.is_empty() {
        return Some(FrameSample { frames: stats.frames, ..FrameSample::default() });
    }
    ms.sort_unstable_by(f32::total_cmp);
    let pick = |p: f64| f64::from(ms[((p * ms.len() as f64).ceil() as usize).clamp(1, ms.len()) - 1]) / 1000.0;
    Some(FrameSample { frames: stats.frames, p50: pick(0.5), p99: pick(0.99) })
}

/// The shell process's resident memory, from `/proc/self/statm`.
fn shell_rss() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * rustix::param::page_size() as u64)
}
