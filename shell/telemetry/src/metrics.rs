//! The desk's metrics in the OpenMetrics text format Prometheus scrapes, through
//! `prometheus-client`. Two kinds: counters the shell bumps as things happen ([`Counters`]:
//! permission decisions, prompts, FDC3 requests and errors), and a [`Snapshot`] the shell
//! takes of what its parts already count (the broker, the journal, each app, the window's
//! frames, the updater, the desk link) at each scrape. Names follow Prometheus's conventions
//! (`tessera_` prefix, base units, `_total` on counters); labels are bounded: topic families
//! are capped by the broker, apps and FDC3 types come from the manifest and the standard.

use std::fmt::{self, Write as _};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

/// The `Content-Type` of [`encode`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A label set: (name, value) pairs.
pub type Labels = Vec<(&'static str, String)>;

/// Counters the shell bumps as things happen. Clones share the counts.
#[derive(Debug, Clone, Default)]
pub struct Counters {
    decisions: Family<Labels, Counter>,
    prompts: Family<Labels, Counter>,
    fdc3_requests: Family<Labels, Counter>,
    fdc3_errors: Family<Labels, Counter>,
    update_checks: Family<Labels, Counter>,
}

impl Counters {
    /// A permission decided without asking: `decision` allow or deny, `source` admin-policy,
    /// user, manifest or default.
    pub fn decision(&self, app: &str, decision: &str, source: &str) {
        let labels = vec![("app", app.to_owned()), ("decision", decision.to_owned()), ("source", source.to_owned())];
        self.decisions.get_or_create(&labels).inc();
    }

    /// A prompt's outcome: `asked` when shown, then allowed_once, allowed_always, denied or
    /// timed_out.
    pub fn prompt(&self, app: &str, outcome: &str) {
        self.prompts.get_or_create(&vec![("app", app.to_owned()), ("outcome", outcome.to_owned())]).inc();
    }

    /// An FDC3 request of `kind` (a DACP request type, or `malformed`).
    pub fn fdc3_request(&self, kind: &str) {
        self.fdc3_requests.get_or_create(&vec![("type", kind.to_owned())]).inc();
    }

    /// An FDC3 response of `kind` carrying the standard's `error`.
    pub fn fdc3_error(&self, kind: &str, error: &str) {
        self.fdc3_errors.get_or_create(&vec![("type", kind.to_owned()), ("error", error.to_owned())]).inc();
    }

    /// An update check's outcome (up_to_date, staged, failed...).
    pub fn update_check(&self, outcome: &str) {
        self.update_checks.get_or_create(&vec![("outcome", outcome.to_owned())]).inc();
    }
}

/// A latency histogram: per-bucket counts (not cumulative), one more than the bounds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    /// Upper bounds, in seconds.
    pub bounds: Vec<f64>,
    /// Observations per bucket; the last is past every bound.
    pub counts: Vec<u64>,
    /// The sum of the observations, in seconds.
    pub sum: f64,
}

/// One topic family's traffic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FamilySample {
    /// The family (a topic's first segment).
    pub family: String,
    /// Messages published.
    pub published: u64,
    /// Copies delivered to subscriber queues.
    pub delivered: u64,
    /// Older messages dropped by drop-oldest queues.
    pub dropped: u64,
    /// Copies dead-lettered.
    pub dead_lettered: u64,
}

/// The broker as a whole.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BrokerSample {
    /// Connected clients.
    pub clients: u64,
    /// Live subscriptions.
    pub subscriptions: u64,
    /// Publishes refused under backpressure.
    pub backpressured: u64,
    /// Messages whose time to live ran out.
    pub expired: u64,
    /// Messages refused (bad topic or payload too large).
    pub rejected: u64,
    /// Dead letters held now.
    pub dead_letters_held: u64,
    /// Service calls dispatched.
    pub calls: u64,
    /// Service calls that timed out.
    pub calls_timed_out: u64,
    /// Routing times (sampled).
    pub routing: Histogram,
    /// Publish-to-app times (sampled).
    pub delivery: Histogram,
}

/// The journal.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JournalSample {
    /// Records held.
    pub records: u64,
    /// Bytes held.
    pub bytes: u64,
    /// Commits since the shell started.
    pub commits: u64,
    /// Messages committed since the shell started.
    pub committed: u64,
    /// Median commit time of the latest commits, in seconds.
    pub commit_p50: Option<f64>,
    /// Their 99th percentile.
    pub commit_p99: Option<f64>,
    /// Whether it has stopped (a failed write).
    pub stopped: bool,
}

/// One app instance.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AppSample {
    /// The app.
    pub app: String,
    /// The instance number.
    pub instance: u64,
    /// Its state (one of [`APP_STATES`]).
    pub state: String,
    /// Restarts so far.
    pub restarts: u64,
    /// Memory of its processes (PSS), in bytes.
    pub memory_bytes: Option<u64>,
    /// CPU of its processes, in cores.
    pub cpu: Option<f64>,
    /// Bus messages it sent.
    pub sent: u64,
    /// Bus messages it was given.
    pub received: u64,
    /// Times it was held back by its rate limit.
    pub throttled: u64,
}

/// The states an app may be in, each reported (1 for the current one, 0 for the others).
pub const APP_STATES: [&str; 5] = ["starting", "running", "restarting", "failed", "stopped"];

/// The window's drawing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FrameSample {
    /// Frames drawn.
    pub frames: u64,
    /// Median frame time over the latest frames, in seconds.
    pub p50: f64,
    /// 99th percentile of the same.
    pub p99: f64,
}

/// The desk link.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LinkSample {
    /// Whether it is connected.
    pub connected: bool,
    /// Messages sent to other desks.
    pub sent: u64,
    /// Messages from other desks delivered here.
    pub received: u64,
    /// Messages refused either way.
    pub refused: u64,
    /// Duplicates dropped.
    pub duplicates: u64,
    /// Other desks heard from lately.
    pub desks: u64,
    /// Messages waiting on the cluster, per group.
    pub pending: Vec<(String, u64)>,
}

/// What the shell's parts say at one scrape.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// Version labels: the build, the manifest and the policy in force.
    pub info: Vec<(&'static str, String)>,
    /// Per document from IT (`manifest`, `policy`), whether the last good copy is in force
    /// because its server failed or gave something unusable.
    pub config_stale: Vec<(&'static str, bool)>,
    /// The shell process's own memory (RSS), in bytes.
    pub shell_memory_bytes: Option<u64>,
    /// Traffic per topic family.
    pub families: Vec<FamilySample>,
    /// The broker.
    pub broker: BrokerSample,
    /// The journal, if it opened.
    pub journal: Option<JournalSample>,
    /// Whether the audit log records.
    pub audit_recording: bool,
    /// Each app instance.
    pub apps: Vec<AppSample>,
    /// The window, if it answered.
    pub frames: Option<FrameSample>,
    /// Whether an update is staged, when updates are on.
    pub update_staged: Option<bool>,
    /// The desk link, if the policy has one.
    pub link: Option<LinkSample>,
    /// Spans sent to the trace collector, when the policy names one.
    pub traces: Option<crate::trace::TraceCounts>,
}

/// The text Prometheus scrapes: `counters` and `snapshot` in the OpenMetrics format.
pub fn encode(counters: &Counters, snapshot: Snapshot) -> Result<String, fmt::Error> {
    let mut registry = Registry::default();
    registry.register(
        "tessera_permission_decisions",
        "Permissions decided without asking, by app, decision and source",
        counters.decisions.clone(),
    );
    registry.register("tessera_permission_prompts", "Permission prompts by app and outcome", counters.prompts.clone());
    registry.register("tessera_fdc3_requests", "FDC3 requests from apps, by type", counters.fdc3_requests.clone());
    registry.register(
        "tessera_fdc3_errors",
        "FDC3 responses carrying an error, by request type and error",
        counters.fdc3_errors.clone(),
    );
    registry.register("tessera_update_checks", "Update checks by outcome", counters.update_checks.clone());
    registry.register_collector(Box::new(Collected(snapshot)));
    let mut text = String::with_capacity(16 * 1024);
    prometheus_client::encoding::text::encode(&mut text, &registry)?;
    Ok(text)
}

#[derive(Debug)]
struct Collected(Snapshot);

fn counter(e: &mut MetricEncoder<'_>, v: u64) -> fmt::Result {
    e.encode_counter::<NoLabelSet, _, u64>(&v, None)
}

fn histogram(e: &mut MetricEncoder<'_>, h: &Histogram) -> fmt::Result {
    // The encoder makes the counts cumulative itself.
    let buckets: Vec<(f64, u64)> =
        h.counts.iter().enumerate().map(|(i, &n)| (h.bounds.get(i).copied().unwrap_or(f64::INFINITY), n)).collect();
    e.encode_histogram::<NoLabelSet>(h.sum, h.counts.iter().sum(), &buckets, None)
}

impl Collected {
    fn desk(&self, enc: &mut DescriptorEncoder<'_>) -> fmt::Result {
        let s = &self.0;
        let info = s.info.clone();
        enc.encode_descriptor(
            "tessera_build",
            "The build, manifest and policy this desk runs",
            None,
            MetricType::Info,
        )?
        .encode_info(&info)?;
        if let Some(bytes) = s.shell_memory_bytes {
            enc.encode_descriptor("tessera_shell_memory_bytes", "The shell process's RSS", None, MetricType::Gauge)?
                .encode_gauge(&bytes)?;
        }
        enc.encode_descriptor("tessera_audit_recording", "1 while the audit log records", None, MetricType::Gauge)?
            .encode_gauge(&u64::from(s.audit_recording))?;
        let help = "1 while a document from IT is the last good copy (its server failed)";
        let mut m = enc.encode_descriptor("tessera_config_stale", help, None, MetricType::Gauge)?;
        for (document, stale) in &s.config_stale {
            m.encode_family(&[("document", *document)])?.encode_gauge(&u64::from(*stale))?;
        }
        if let Some(t) = s.traces {
            let help = "Spans for the trace collector, by outcome (exported, dropped: queue full, failed: not taken)";
            let mut m = enc.encode_descriptor("tessera_trace_spans", help, None, MetricType::Counter)?;
            for (outcome, n) in [("exported", t.exported), ("dropped", t.dropped), ("failed", t.failed)] {
                counter(&mut m.encode_family(&[("outcome", outcome)])?, n)?;
            }
        }
        if let Some(staged) = s.update_staged {
            enc.encode_descriptor(
                "tessera_update_staged",
                "1 while an update waits for a restart",
                None,
                MetricType::Gauge,
            )?
            .encode_gauge(&u64::from(staged))?;
        }
        Ok(())
    }

    fn families(&self, enc: &mut DescriptorEncoder<'_>) -> fmt::Result {
        type Pick = fn(&FamilySample) -> u64;
        let per_family: [(&str, &str, Pick); 4] = [
            ("tessera_messages_published", "Messages published, by topic family", |f| f.published),
            ("tessera_messages_delivered", "Copies put into subscriber queues, by topic family", |f| f.delivered),
            ("tessera_messages_dropped", "Messages dropped by drop-oldest queues, by topic family", |f| f.dropped),
            ("tessera_messages_dead_lettered", "Copies dead-lettered, by topic family", |f| f.dead_lettered),
        ];
        for (name, help, pick) in per_family {
            let mut m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
            for f in &self.0.families {
                let labels = [("family", f.family.as_str())];
                counter(&mut m.encode_family(&labels)?, pick(f))?;
            }
        }
        Ok(())
    }

    fn broker(&self, enc: &mut DescriptorEncoder<'_>) -> fmt::Result {
        let b = &self.0.broker;
        let gauges = [
            ("tessera_broker_clients", "Connected clients", b.clients),
            ("tessera_broker_subscriptions", "Live subscriptions", b.subscriptions),
            ("tessera_broker_dead_letters", "Dead letters held", b.dead_letters_held),
        ];
        for (name, help, v) in gauges {
            enc.encode_descriptor(name, help, None, MetricType::Gauge)?.encode_gauge(&v)?;
        }
        let counters = [
            ("tessera_broker_backpressured", "Publishes refused under backpressure", b.backpressured),
            ("tessera_broker_expired", "Messages whose time to live ran out", b.expired),
            ("tessera_broker_rejected", "Messages refused (bad topic, payload too large)", b.rejected),
            ("tessera_service_calls", "Service calls dispatched", b.calls),
            ("tessera_service_calls_timed_out", "Service calls that timed out", b.calls_timed_out),
        ];
        for (name, help, v) in counters {
            counter(&mut enc.encode_descriptor(name, help, None, MetricType::Counter)?, v)?;
        }
        let help = "Time a publish takes (checks, match, journal, history, fan-out); one in 64 timed";
        histogram(
            &mut enc.encode_descriptor("tessera_routing_seconds", help, None, MetricType::Histogram)?,
            &b.routing,
        )?;
        let help = "Time from a publish to its connection writing it to the app; one in 64 timed";
        histogram(
            &mut enc.encode_descriptor("tessera_delivery_seconds", help, None, MetricType::Histogram)?,
            &b.delivery,
        )
    }

    fn journal(&self, enc: &mut DescriptorEncoder<'_>) -> fmt::Result {
        let Some(j) = &self.0.journal else { return Ok(()) };
        enc.encode_descriptor("tessera_journal_records", "Records held", None, MetricType::Gauge)?
            .encode_gauge(&j.records)?;
        enc.encode_descriptor("tessera_journal_size_bytes", "Bytes held", None, MetricType::Gauge)?
            .encode_gauge(&j.bytes)?;
        let help = "1 while the journal is stopped (a write failed)";
        enc.encode_descriptor("tessera_journal_stopped", help, None, MetricType::Gauge)?
            .encode_gauge(&u64::from(j.stopped))?;
        counter(
            &mut enc.encode_descriptor("tessera_journal_commits", "Commits", None, MetricType::Counter)?,
            j.commits,
        )?;
        let help = "Durable messages committed";
        counter(
            &mut enc.encode_descriptor("tessera_journal_committed", help, None, MetricType::Counter)?,
            j.committed,
        )?;
        for (name, v) in
            [("tessera_journal_commit_p50_seconds", j.commit_p50), ("tessera_journal_commit_p99_seconds", j.commit_p99)]
        {
            if let Some(v) = v {
                let help = "Commit time over the latest 4096 commits";
                enc.encode_descriptor(name, help, None, MetricType::Gauge)?.encode_gauge(&v)?;
            }
        }
        Ok(())
    }

    fn apps(&self, enc: &mut DescriptorEncoder<'_>) -> fmt::Result {
        let apps = &self.0.apps;
        let id = |a: &AppSample| [("app", a.app.clone()), ("instance", a.instance.to_string())];
        let mut m =
            enc.encode_descriptor("tessera_app_state", "1 for each app's current state", None, MetricType::Gauge)?;
        for a in apps {
            for state in APP_STATES {
                let [app, instance] = id(a);
                let labels = [app, instance, ("state", state.to_owned())];
                m.encode_family(&labels)?.encode_gauge(&u64::from(a.state == state))?;
            }
        }
        type Pick = fn(&AppSample) -> u64;
        let per_app: [(&str, &str, Pick); 4] = [
            ("tessera_app_restarts", "Times the app was restarted", |a| a.restarts),
            ("tessera_app_messages_sent", "Bus messages the app sent", |a| a.sent),
            ("tessera_app_messages_received", "Bus messages given to the app", |a| a.received),
            ("tessera_app_rate_limited", "Times the app was held back by its rate limit", |a| a.throttled),
        ];
        for (name, help, pick) in per_app {
            let mut m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
            for a in apps {
                counter(&mut m.encode_family(&id(a))?, pick(a))?;
            }
        }
        let help = "Memory (PSS) of the app's processes";
        let mut m = enc.encode_descriptor("tessera_app_memory_bytes", help, None, MetricType::Gauge)?;
        for a in apps.iter().filter(|a| a.memory_bytes.is_some()) {
            m.encode_family(&id(a))?.encode_gauge(&a.memory_bytes.unwrap_or_default())?;
        }
        let help = "CPU of the app's processes over the last seconds, in cores";
        let mut m = enc.encode_descriptor("tessera_app_cpu_cores", help, None, MetricType::Gauge)?;
        for a in apps.iter().filter(|a| a.cpu.is_some()) {
            m.encode_family(&id(a))?.encode_gauge(&a.cpu.unwrap_or_default())?;
        }
        Ok(())
    }

    fn frames_and_link(&self, enc: &mut DescriptorEncoder<'_>) -> fmt::Result {
        if let Some(f) = &self.0.frames {
            counter(
                &mut enc.encode_descriptor("tessera_frames", "Frames drawn", None, MetricType::Counter)?,
                f.frames,
            )?;
            for (name, v) in [("tessera_frame_p50_seconds", f.p50), ("tessera_frame_p99_seconds", f.p99)] {
                let help = "Frame time (build, render, present) over the latest frames";
                enc.encode_descriptor(name, help, None, MetricType::Gauge)?.encode_gauge(&v)?;
            }
        }
        let Some(l) = &self.0.link else { return Ok(()) };
        enc.encode_descriptor("tessera_link_connected", "1 while the desk link is up", None, MetricType::Gauge)?
            .encode_gauge(&u64::from(l.connected))?;
        enc.encode_descriptor("tessera_link_desks", "Other desks heard from lately", None, MetricType::Gauge)?
            .encode_gauge(&l.desks)?;
        let mut m = enc.encode_descriptor(
            "tessera_link_messages",
            "Messages across the link, by direction",
            None,
            MetricType::Counter,
        )?;
        for (direction, v) in [("out", l.sent), ("in", l.received)] {
            counter(&mut m.encode_family(&[("direction", direction)])?, v)?;
        }
        let help = "Link messages refused (too large, not shared, malformed)";
        counter(&mut enc.encode_descriptor("tessera_link_refused", help, None, MetricType::Counter)?, l.refused)?;
        let help = "Messages from other desks dropped as duplicates";
        counter(&mut enc.encode_descriptor("tessera_link_duplicates", help, None, MetricType::Counter)?, l.duplicates)?;
        let help = "Messages on the cluster this desk has yet to read, by group";
        let mut m = enc.encode_descriptor("tessera_link_pending", help, None, MetricType::Gauge)?;
        for (group, v) in &l.pending {
            m.encode_family(&[("group", group.as_str())])?.encode_gauge(v)?;
        }
        Ok(())
    }
}

impl Collector for Collected {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> fmt::Result {
        self.desk(&mut enc)?;
        self.families(&mut enc)?;
        self.broker(&mut enc)?;
        self.journal(&mut enc)?;
        self.apps(&mut enc)?;
        self.frames_and_link(&mut enc)
    }
}

/// A histogram from nanosecond bounds and counts.
pub fn histogram_from_ns(bounds_ns: &[u64], counts: &[u64], sum_ns: u64) -> Histogram {
    Histogram {
        bounds: bounds_ns.iter().map(|&b| b as f64 / 1e9).collect(),
        counts: counts.to_vec(),
        sum: sum_ns as f64 / 1e9,
    }
}

/// Reads the value of one sample from exposition `text` (`name{labels}` exactly as written),
/// for tests and `ctl`.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(series)?;
        rest.strip_prefix(' ')?.split(' ').next()?.parse().ok()
    })
}

/// Writes `labels` as they appear in the exposition (`{a="x",b="y"}`), for [`sample`].
pub fn series(name: &str, labels: &[(&str, &str)]) -> String {
    let mut s = name.to_owned();
    if !labels.is_empty() {
        s.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            let _ = write!(s, "{k}=\"{v}\"");
        }
        s.push('}');
    }
    s
}

#[cfg(test)]
mod tests;
