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
