//! The command line as a user or script meets it.

use serde_json::Value;
use tests::{bin, tessera};

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn both_binaries_report_their_version() {
    let o = tessera(&["--version"]);
    assert!(o.status.success());
    assert!(stdout(&o).starts_with("tessera "), "{}", stdout(&o));
    let o = std::process::Command::new(bin("tessera-app-host")).output().unwrap();
    assert!(o.status.success());
    assert!(stdout(&o).starts_with("tessera-app-host "));
}

#[test]
fn bad_usage_exits_2_and_names_the_problem() {
    for (args, needle) in [
        (&["bench", "broker", "--wildcard-ratio", "1.5"][..], "--wildcard-ratio"),
        (&["bench", "broker", "--subscriptions", "0"][..], "--subscriptions"),
        (&["bench", "nonsense"][..], "nonsense"),
        (&["no-such-command"][..], "no-such-command"),
    ] {
        let o = tessera(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(stderr(&o).contains(needle), "{args:?}: {}", stderr(&o));
        assert!(stdout(&o).is_empty(), "errors go to stderr");
    }
}

#[test]
fn broker_bench_prints_one_json_object_with_every_figure() {
    let o = tessera(&[
        "bench",
        "broker",
        "--subscriptions",
        "300",
        "--messages",
        "3000",
        "--latency-samples",
        "300",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert_eq!(out.lines().count(), 1, "one line: {out}");
    let v: Value = serde_json::from_str(&out).unwrap();
    for key in [
        "subscriptions",
        "messages",
        "match_ns_p50",
        "match_ns_p99",
        "deliveries_per_sec",
        "publish_to_deliver_ns_p50",
        "publish_to_deliver_ns_p99",
        "speedup_vs_linear",
        "bare_channel_wake_ns_p99",
    ] {
        assert!(v.get(key).is_some(), "missing {key} in {out}");
    }
    assert_eq!(v["subscriptions"], 300);
    assert_eq!(v["messages"], 3000);
    let wild = v["wildcard_subscriptions"].as_u64().unwrap();
    assert!((40..=110).contains(&wild), "about a quarter use wildcards: {wild}");
    assert!(v["deliveries"].as_u64().unwrap() > 0);
    assert!(v["match_ns_p50"].as_u64().unwrap() <= v["match_ns_p99"].as_u64().unwrap());
    assert!(v["speedup_vs_linear"].as_f64().unwrap() > 1.0);
}

#[test]
fn broker_bench_table_is_for_people() {
    let o = tessera(&["bench", "broker", "--subscriptions", "50", "--messages", "500", "--latency-samples", "100"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("speedup vs linear"), "{out}");
    assert!(out.contains("deliveries/s"), "{out}");
}

#[test]
fn journal_commands_report_and_refuse_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("p");
    let profile = profile.to_str().unwrap();
    let o = tessera(&[
        "journal",
        "append",
        "--profile",
        profile,
        "--topic",
        "orders.new",
        "--count",
        "50",
        "--payload",
        "16",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).lines().last(), Some("50"));

    let o = tessera(&["journal", "stats", "--profile", profile, "--json"]);
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!((v["count"].as_u64(), v["first_seq"].as_u64(), v["last_seq"].as_u64()), (Some(50), Some(1), Some(50)));

    let o = tessera(&[
        "journal",
        "replay",
        "--profile",
        profile,
        "--topic",
        "orders.new",
        "--from-topic-seq",
        "48",
        "--json",
    ]);
    let lines: Vec<Value> = stdout(&o).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.iter().map(|l| l["topic_seq"].as_u64().unwrap()).collect::<Vec<_>>(), [48, 49, 50]);
    assert_eq!(lines[0]["payload"], "x".repeat(16));

    let o = tessera(&["journal", "verify", "--profile", profile]);
    assert!(o.status.success() && stdout(&o).contains("ok"), "{}", stdout(&o));
    let o = tessera(&["journal", "replay", "--profile", profile, "--from", "50"]);
    let text = stdout(&o);
    assert!(text.starts_with("      50  20") && text.contains("orders.new#50  16 bytes"), "{text}");

    // Bad input names what is wrong and where.
    let o = tessera(&["journal", "replay", "--profile", profile, "--topic", "a..b"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("--topic"), "{}", stderr(&o));
    let not_a_db = dir.path().join("bad");
    std::fs::create_dir_all(&not_a_db).unwrap();
    std::fs::write(not_a_db.join("tessera.redb"), b"this is not a database at all, just text").unwrap();
    let o = tessera(&["journal", "stats", "--profile", not_a_db.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("tessera.redb") && err.contains("damaged") && err.contains("move the file aside"), "{err}");
    let o = tessera(&["journal", "append", "--profile", profile]);
    assert_eq!(o.status.code(), Some(2), "--topic is required");
    assert!(stderr(&o).contains("--topic"), "{}", stderr(&o));
}

#[test]
fn journal_bench_prints_every_figure() {
    let dir = tempfile::tempdir().unwrap();
    let o = tessera(&[
        "bench",
        "journal",
        "--messages",
        "3000",
        "--payload",
        "64",
        "--baseline-messages",
        "50",
        "--dir",
        dir.path().to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    for key in [
        "durable_msgs_per_sec",
        "commit_ms_p50",
        "commit_ms_p99",
        "replay_msgs_per_sec",
        "speedup_vs_commit_per_message",
    ] {
        assert!(v[key].as_f64().is_some_and(|x| x > 0.0), "{key} in {v}");
    }
    assert_eq!(v["messages"], 3000);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "the bench cleans up after itself");
}

#[test]
fn ipc_bench_runs_real_app_host_processes() {
    let o = tessera(&["bench", "ipc", "--clients", "3", "--messages", "3000", "--payload", "64", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    for key in ["msgs_per_sec", "publish_to_deliver_us_p50", "publish_to_deliver_us_p99", "speedup_vs_unbatched"] {
        assert!(v[key].as_f64().is_some_and(|x| x > 0.0), "{key} in {v}");
    }
    assert_eq!(v["clients"], 3);
}

#[test]
fn endpoint_bench_runs_native_clients_beside_nats_server() {
    // Small numbers: this checks that the bench works, not how fast.
    let mut args = vec!["bench", "endpoint", "--publishers", "2", "--subscribers", "3", "--messages", "3000"];
    args.extend(["--rate", "2000", "--secs", "0.5", "--json"]);
    let nats = std::process::Command::new("sh").args(["-c", "command -v nats-server"]).output().unwrap();
    assert!(nats.status.success(), "nats-server is missing: run packaging/dev/setup.sh");
    args.extend(["--against", "nats"]);
    let o = tessera(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    for system in ["tessera", "nats"] {
        let flat = &v[system]["flat"];
        // Every message reached every subscriber.
        assert_eq!((flat["published"].as_u64(), flat["delivered"].as_u64()), (Some(3000), Some(9000)), "{v}");
        assert!(flat["delivered_msgs_per_sec"].as_f64().is_some_and(|x| x > 0.0), "{v}");
        let paced = &v[system]["paced"];
        assert_eq!(paced["lost"], 0, "{v}");
        assert!(
            paced["latency_us_p99"].as_u64().is_some_and(|p| p >= paced["latency_us_p50"].as_u64().unwrap()),
            "{v}"
        );
    }
    assert!(v["throughput_ratio"].as_f64().is_some_and(|x| x > 0.0), "{v}");
}

/// `tessera` with no display and a private runtime directory, so `run` stops before a window.
fn tessera_in(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    let runtime = dir.join("rt");
    std::fs::create_dir_all(&runtime).unwrap();
    std::fs::set_permissions(&runtime, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    std::process::Command::new(bin("tessera"))
        .args(args)
        .env("XDG_RUNTIME_DIR", &runtime)
        .env("TESSERA_LOG", "error")
        .env_remove("DISPLAY")
        .output()
        .unwrap()
}

#[test]
fn bad_input_files_exit_2_with_one_line_that_says_each_thing_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let profile = d.join("profile");
    let p = profile.to_str().unwrap();
    let huge = "x".repeat(100_000);
    std::fs::write(d.join("bad-policy.json"), r#"{"rules": [{"apps": ["*"], "allow": ["nonsense.perm"]}]}"#).unwrap();
    std::fs::write(d.join("huge-policy.json"), format!(r#"{{"rules": "{huge}"}}"#)).unwrap();
    std::fs::write(
        d.join("huge-manifest.json"),
        format!(r#"{{"name": "x", "apps": [{{"appId": "{huge}", "url": "https://a.example"}}]}}"#),
    )
    .unwrap();
    std::fs::write(
        d.join("etc-manifest.json"),
        r#"{"name": "x", "apps": [{"appId": "a", "url": "file:///etc/passwd"}]}"#,
    )
    .unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["run".into(), "--manifest".into(), d.display().to_string()], "Is a directory"),
        (vec!["run".into(), "--manifest".into(), d.join("missing.json").display().to_string()], "No such file"),
        (
            vec!["run".into(), "--manifest".into(), d.join("etc-manifest.json").display().to_string()],
            "file:///etc/passwd",
        ),
        (vec!["run".into(), "--manifest".into(), d.join("huge-manifest.json").display().to_string()], "appId"),
        (vec!["run".into(), "--policy".into(), d.join("bad-policy.json").display().to_string()], "nonsense.perm"),
        (
            vec!["run".into(), "--policy".into(), d.join("huge-policy.json").display().to_string()],
            "expected a sequence",
        ),
        (vec!["run".into(), "--policy".into(), d.display().to_string()], "Is a directory"),
    ];
    for (args, needle) in cases {
        let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
        all.extend(["--profile", p]);
        let o = tessera_in(d, &all);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("tessera: ")).collect();
        assert_eq!(lines.len(), 1, "{args:?}: {err}");
        assert!(lines[0].len() < 2000, "{args:?}: {} bytes quoted", lines[0].len());
        for part in ["Is a directory (os error 21)", "No such file or directory (os error 2)", "the admin policy:"] {
            assert!(lines[0].matches(part).count() <= 1, "{args:?} says {part:?} twice: {}", lines[0]);
        }
    }
}

#[test]
fn a_failing_read_command_changes_nothing_in_the_profile() {
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("profile");
    let p = profile.to_str().unwrap();
    assert!(tessera(&["journal", "append", "--topic", "a", "--count", "3", "--profile", p]).status.success());
    std::fs::set_permissions(&profile, std::os::unix::fs::PermissionsExt::from_mode(0o500)).unwrap();
    let db = profile.join("tessera.redb");
    let before = std::fs::read(&db).unwrap();
    for args in [&["journal", "stats"][..], &["journal", "verify"], &["journal", "replay"], &["audit", "export"]] {
        let mut all = args.to_vec();
        all.extend(["--profile", p]);
        let _ = tessera(&all);
        let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&profile).unwrap().permissions()) & 0o777;
        assert_eq!(mode, 0o500, "{args:?} changed the profile's mode");
        assert_eq!(std::fs::read(&db).unwrap(), before, "{args:?} changed the database");
    }
    std::fs::set_permissions(&profile, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
}

#[test]
fn the_shell_logs_json_lines_into_its_profile() {
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("profile");
    // No display: the run logs its start-up, then stops at the window.
    let o = tessera_in(dir.path(), &["run", "--profile", profile.to_str().unwrap(), "--keyring", "keyutils"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let log = std::fs::read_to_string(profile.join("logs/tessera.log")).unwrap();
    let lines: Vec<Value> =
        log.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect();
    assert!(!lines.is_empty());
    for l in &lines {
        assert!(l["timestamp"].is_string() && l["level"].is_string() && l["target"].is_string(), "{l}");
        assert!(l["fields"]["message"].is_string(), "{l}");
    }
    assert!(lines.iter().any(|l| l["fields"]["message"].as_str().is_some_and(|m| m.contains("audit log"))), "{log}");
    // The terminal keeps the readable form.
    assert!(!stderr(&o).contains("\"timestamp\""));
}
