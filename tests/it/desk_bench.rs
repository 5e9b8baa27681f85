//! `tessera bench memory`, `tessera bench startup` and `tessera bench e2e` run a real desk of
//! pages under a display and report what they measured; their figures are for BENCHMARKS.md (release builds, with
//! Chromium beside), not checked here beyond being measured.

use std::process::{Command, Output};

use serde_json::Value;

/// `tessera bench ...` under its own X display and session bus.
fn bench(args: &[&str]) -> Output {
    Command::new("dbus-run-session")
        .args(["--", "xvfb-run", "-a", "-s", "-screen 0 1920x1080x24"])
        .arg(tests::bin("tessera"))
        .arg("bench")
        .args(args)
        .env("TESSERA_LOG", "warn")
        .output()
        .unwrap_or_else(|e| panic!("running tessera bench: {e}"))
}

fn json(o: &Output) -> Value {
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    // (Services the session bus starts, such as the accessibility registry, write to the
    // session's stdout too: the report is the last line.)
    let out = String::from_utf8_lossy(&o.stdout);
    let last = out.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"))
}

#[test]
fn bench_memory_measures_every_process_of_a_real_desk_and_an_idle_desk_draws_nothing() {
    let v = json(&bench(&["memory", "--apps", "2", "--settle-secs", "0.5", "--idle-secs", "2", "--json"]));
    let run = &v["runs"][0];
    assert_eq!(run["apps"], 2);
    let t = &run["tessera"];
    assert_eq!(t["desk"], "tessera");
    // The shell, the pages' shared host (the desk's process group) and its WebKit network
    // process, and for each page a web process of its own.
    let kinds = &t["by_kind"];
    assert_eq!(kinds["tessera"][0], 1, "{kinds}");
    assert_eq!(kinds["tessera-app-hos"][0], 1, "{kinds}");
    assert_eq!(kinds["WebKitNetworkPr"][0], 1, "{kinds}");
    assert_eq!(kinds["WebKitWebProces"][0], 2, "{kinds}");
    assert_eq!(t["processes"], 5, "{t}");
    let (total, main) = (t["total_mib"].as_f64().unwrap(), t["main_mib"].as_f64().unwrap());
    assert!(main > 10.0 && total > main, "{t}");
    assert!(t["painted_secs"].as_f64().is_some_and(|s| s > 0.0), "{t}");
    assert!(t["idle_cpu_main_percent"].as_f64().is_some_and(|c| c >= 0.0), "{t}");
    // Pages that do nothing: the shell's window draws nothing either.
    assert_eq!(t["idle_frames"], 0, "{t}");
    assert!(run["chromium"].is_null() && v["summary"][0]["ratio"].is_null(), "{v}");
}

#[test]
fn bench_startup_times_cold_and_warm_starts_and_says_what_is_missing() {
    let v = json(&bench(&["startup", "--apps", "2", "--runs", "1", "--json"]));
    for kind in ["cold", "warm"] {
        let t = v["tessera"][kind].as_array().unwrap();
        assert!(t.len() == 1 && t[0].as_f64().is_some_and(|s| s > 0.0 && s < 90.0), "{kind}: {v}");
    }
    // Asked to compare with a Chromium that is not there: one line saying what to install.
    for which in ["startup", "memory"] {
        let o = Command::new(tests::bin("tessera"))
            .args(["bench", which, "--apps", "2", "--against", "chromium"])
            .env("PATH", "/nonexistent")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains("apt install chromium") && err.lines().count() == 1, "{err}");
    }
    // Without a display: said, not a crash.
    let o = Command::new(tests::bin("tessera"))
        .args(["bench", "memory", "--apps", "2"])
        .env_remove("DISPLAY")
        .output()
        .unwrap();
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("needs an X display"));
    let o = bench(&["memory", "--apps", "0"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("--apps"), "apps 0");
}

#[test]
fn bench_e2e_times_every_kind_of_round_trip_between_two_real_pages_from_their_hosts() {
    let v = json(&bench(&["e2e", "--rounds", "80", "--runs", "1", "--json"]));
    assert_eq!(v["rounds_per_kind"], 80, "{v}");
    let kinds = v["all"].as_array().unwrap();
    let names: Vec<&str> = kinds.iter().map(|k| k["kind"].as_str().unwrap()).collect();
    assert_eq!(names, ["bus", "fdc3 user channel", "fdc3 app channel", "fdc3 intent"]);
    for k in kinds {
        let (rt, one) = (&k["round_trip"], &k["one_way"]);
        // 8 blocks of 10: 9 round trips closed in each, a one way each way per round trip.
        assert_eq!(rt["count"], 72, "{k}");
        assert_eq!(one["count"], 152, "{k}");
        assert_eq!(k["unanswered"], 0, "{k}");
        let p = |s: &Value, q: &str| s[q].as_f64().unwrap();
        assert!(
            p(rt, "p50_us") > 0.0 && p(rt, "p50_us") <= p(rt, "p99_us") && p(rt, "p99_us") <= p(rt, "p999_us"),
            "{k}"
        );
        // A one way is part of a round trip; its two parts are each part of it.
        assert!(p(one, "p50_us") < p(rt, "p50_us"), "{k}");
        assert!(p(&k["host_to_host"], "p50_us") > 0.0 && p(&k["in_page"], "p50_us") > 0.0, "{k}");
        assert_eq!(k["host_to_host"]["count"], one["count"], "every stamp was noted going into a page: {k}");
        // The hosts' mean round trip and the page's own agree (the page's clock is coarse,
        // its mean over a block is not).
        let (host, page) = (p(rt, "mean_us"), p(k, "page_mean_us"));
        assert!((host - page).abs() < host * 0.5, "host mean {host} µs, page mean {page} µs: {k}");
    }
}

#[test]
fn bench_e2e_without_a_display_says_so_in_one_line() {
    let out = std::process::Command::new(tests::bin("tessera"))
        .args(["bench", "e2e", "--runs", "1"])
        .env_remove("DISPLAY")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("display") && err.trim().lines().count() == 1, "{err}");
}
