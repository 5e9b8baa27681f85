//! The metrics IT's Prometheus scrapes (issue 20, item 1): a real shell with `/metrics` on the
//! loopback address its admin policy names, scraped every second by a real Prometheus (the
//! Debian package) with a generated configuration; the series are read back through
//! Prometheus's HTTP API and seen to exist and to move as apps publish, subscribe, are refused
//! and speak FDC3.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::e2e::{Shell, instance_of, js, running_with_page, wait_js};
use crate::telemetry::{free_port, http};

/// A Prometheus server on loopback, scraping one target every second; killed on drop.
struct Prometheus {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(target_port: u16) -> Self {
        assert!(
            Command::new("sh").args(["-c", "command -v prometheus"]).output().unwrap().status.success(),
            "prometheus is missing: run packaging/dev/setup.sh"
        );
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: tessera\n    static_configs:\n      - targets: ['127.0.0.1:{target_port}']\n"
            ),
        )
        .unwrap();
        let port = free_port();
        let log = std::fs::File::create(tests::target_dir().join("e2e").join("prometheus.log")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let p = Self { child, port, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(60);
        while http_get(p.port, "/-/ready").0 != 200 {
            assert!(Instant::now() < deadline, "prometheus did not become ready (target/debug/e2e/prometheus.log)");
            std::thread::sleep(Duration::from_millis(200));
        }
        p
    }

    /// The value of an instant query that gives one series, if it gives one.
    fn value(&self, query: &str) -> Option<f64> {
        let (status, body) = http_get(self.port, &format!("/api/v1/query?query={}", encode(query)));
        assert_eq!(status, 200, "{query}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        let result = v["data"]["result"].as_array()?;
        result.first()?["value"][1].as_str()?.parse().ok()
    }

    /// Waits (up to 60 s) until `query` gives a value `ok` accepts, and returns it.
    fn wait(&self, query: &str, ok: impl Fn(f64) -> bool) -> f64 {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let v = self.value(query);
            if let Some(v) = v.filter(|v| ok(*v)) {
                return v;
            }
            assert!(Instant::now() < deadline, "{query}: {v:?} after 60 s");
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn http_get(port: u16, path: &str) -> (u16, String) {
    if std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        return (0, String::new());
    }
    http(port, format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").as_bytes())
}

/// Percent-encodes a query parameter.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[test]
fn prometheus_scrapes_a_running_desk_and_its_series_move() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let page = tests::fixture_page("fdc3", "app.html", dir.path());
    let manifest = dir.path().join("desk.json");
    std::fs::write(
        &manifest,
        json!({
            "name": "Tessera metrics desk",
            "apps": [{ "appId": "s", "url": page }, { "appId": "r", "url": page }, { "appId": "q", "url": page }],
            "startup": ["s", "r", "q"],
        })
        .to_string(),
    )
    .unwrap();
    let policy = dir.path().join("policy.json");
    std::fs::write(
        &policy,
        json!({
            "telemetry": { "listen": format!("127.0.0.1:{port}"), "metrics": true },
            "rules": [{ "apps": ["s", "r"], "allow": ["bus.publish", "bus.subscribe"] }],
        })
        .to_string(),
    )
    .unwrap();
    let env = [("TESSERA_POLICY", policy.to_str().unwrap())];
    let shell = Shell::start_full(manifest.to_str().unwrap(), None, 2048, &env, "metrics");
    shell.wait_for("three apps running", Duration::from_secs(60), |a| a.len() == 3 && a.iter().all(running_with_page));
    let (s, r, q) = (instance_of(&shell, "s"), instance_of(&shell, "r"), instance_of(&shell, "q"));

    // The endpoint itself: the OpenMetrics text, with the app states in it.
    let (status, text) = http(port, b"GET /metrics HTTP/1.1\r\n\r\n");
    assert_eq!(status, 200, "{text}");
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert!(text.contains("tessera_app_state{app=\"s\",instance=\""), "{text}");

    let prometheus = Prometheus::start(port);
    assert_eq!(prometheus.wait("up{job=\"tessera\"}", |v| v == 1.0), 1.0);
    prometheus.wait("tessera_app_state{app=\"r\",state=\"running\"}", |v| v == 1.0);
    prometheus.wait("tessera_audit_recording", |_| true);
    prometheus.wait("tessera_build_info", |v| v == 1.0);

    // Traffic: r listens, s publishes in two rounds; the family's counters move between them,
    // and some of the deliveries were timed from publish to page.
    js(&shell, r, "window.got = 0, tessera.bus.subscribe('quotes.#', () => got++), true");
    let round = "new Promise((ok) => { let i = 0; const t = setInterval(() => { tessera.bus.publish('quotes.x', { i }); if (++i === 200) { clearInterval(t); ok(true); } }, 2); })";
    js(&shell, s, round);
    wait_js(&shell, r, "got", "200");
    let first = prometheus.wait("tessera_messages_delivered_total{family=\"quotes\"}", |v| v >= 200.0);
    js(&shell, s, round);
    wait_js(&shell, r, "got", "400");
    prometheus.wait("tessera_messages_delivered_total{family=\"quotes\"}", |v| v >= first + 200.0);
    prometheus.wait("tessera_messages_published_total{family=\"quotes\"}", |v| v >= 400.0);
    prometheus.wait("tessera_routing_seconds_count", |v| v >= 1.0);
    prometheus.wait("tessera_delivery_seconds_count", |v| v >= 1.0);
    prometheus.wait("histogram_quantile(0.99, tessera_delivery_seconds_bucket)", |v| v > 0.0 && v < 10.0);
    prometheus.wait("tessera_app_messages_sent_total{app=\"s\"}", |v| v >= 400.0);

    // A refusal and FDC3 requests are counted by what they were.
    let refused = js(
        &shell,
        q,
        "new Promise((ok) => { try { tessera.bus.publish('quotes.y', {}); ok('sent'); } catch (e) { ok('refused'); } })",
    );
    assert!(refused == "refused" || refused == "sent", "{refused}");
    prometheus.wait("tessera_permission_decisions_total{app=\"q\",decision=\"deny\"}", |v| v >= 1.0);
    prometheus.wait("tessera_permission_decisions_total{app=\"s\",decision=\"allow\"}", |v| v >= 1.0);
    js(&shell, s, "fdc3.getInfo().then(() => true)");
    js(&shell, s, "fdc3.raiseIntent('NoSuchIntent', {type: 'fdc3.instrument'}).then(() => 'raised', (e) => e.message)");
    prometheus.wait("tessera_fdc3_requests_total{type=\"getInfo\"}", |v| v >= 1.0);
    prometheus.wait("tessera_fdc3_errors_total{type=\"raiseIntent\"}", |v| v >= 1.0);

    // The journal, the window and the shell itself are reported.
    prometheus.wait("tessera_journal_records", |_| true);
    prometheus.wait("tessera_frames_total", |v| v >= 1.0);
    prometheus.wait("tessera_shell_memory_bytes", |v| v > 1e6);
    prometheus.wait("tessera_app_memory_bytes{app=\"s\"}", |v| v > 1e6);
    drop(prometheus);
    drop(shell);
}
