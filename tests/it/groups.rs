//! Process groups in the real shell: the three apps of the test desk share one app host (the
//! desk's group: one GTK loop, one WebKit network process), each page in a web process of its
//! own. A page's web process dying, a page stuck in a loop and a page eating memory take down
//! only that app; the shared host dying takes down every app in it, and each comes back in a
//! new host with the state it saved.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::e2e::{Shell, alive, eat_memory, parent_of, pid, running_with_page, wait_gone};

fn web(a: &Value) -> Vec<u64> {
    a["web_pids"].as_array().map(|w| w.iter().filter_map(Value::as_u64).collect()).unwrap_or_default()
}

fn restarts(a: &Value) -> u64 {
    a["restarts"].as_u64().unwrap_or(0)
}

/// The instance `id` in `apps`.
fn find(apps: &[Value], id: u64) -> &Value {
    apps.iter().find(|a| a["instance"] == id).unwrap_or(&Value::Null)
}

#[test]
fn apps_in_one_process_group_share_a_host_and_fail_alone_unless_it_fails() {
    let shell = Shell::start(600);
    shell.wait_for("three apps running with their pages", Duration::from_secs(90), |apps| {
        apps.len() == 3 && apps.iter().all(running_with_page)
    });
    let apps = shell.apps();
    let ids: Vec<u64> = apps.iter().map(|a| a["instance"].as_u64().unwrap()).collect();

    // One host for the three (the desk's group), and a web process of its own for each page,
    // which the host started.
    let host = pid(&apps[0]);
    for a in &apps {
        assert_eq!(pid(a), host, "{a}");
        assert_eq!(a["group"], "desk", "{a}");
        assert_eq!(web(a).len(), 1, "{a}");
        assert_eq!(parent_of(web(a)[0]), host, "{a}");
    }
    let webs: Vec<u64> = apps.iter().map(|a| web(a)[0]).collect();
    assert_eq!(webs.iter().collect::<std::collections::HashSet<_>>().len(), 3, "{webs:?}");
    // Health lists the group: its host, its apps and what they share.
    let health: Value = serde_json::from_str(&shell.ctl_ok(&["health", "--json"])).unwrap();
    let groups = health["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1, "{health}");
    assert_eq!(
        (groups[0]["name"].as_str(), groups[0]["pid"].as_u64(), groups[0]["views"].as_u64()),
        (Some("desk"), Some(host), Some(3))
    );
    let text = shell.ctl_ok(&["health"]);
    assert!(text.contains("group desk") && text.contains("(process group desk)"), "{text}");

    // Each page answers and keeps a state.
    for id in &ids {
        assert_eq!(shell.eval(*id, "1+1"), "2");
        shell.eval(*id, &format!("tessera.workspace.setState({{mine: {id}}}), 1"));
    }
    std::thread::sleep(Duration::from_millis(300));

    // A page's web process dies: that app alone starts again, in the same host.
    assert!(Command::new("kill").args(["-9", &webs[1].to_string()]).status().unwrap().success());
    let took = shell.wait_for("beta back after its web process died", Duration::from_secs(30), |apps| {
        let b = find(apps, ids[1]);
        restarts(b) == 1 && running_with_page(b) && web(b) != [webs[1]]
    });
    eprintln!("a dead web process: its app back after {took:?}");
    let now = shell.apps();
    let beta = find(&now, ids[1]);
    assert!(beta["last_exit"].as_str().unwrap_or_default().contains("web process crashed"), "{beta}");
    for (i, id) in [(0, ids[0]), (2, ids[2])] {
        let a = find(&now, id);
        assert_eq!((restarts(a), web(a)), (0, vec![webs[i]]), "the others kept their pages: {a}");
    }
    assert!(now.iter().all(|a| pid(a) == host), "the host stayed: {now:?}");
    assert_eq!(shell.eval(ids[1], "tessera.workspace.getState()"), format!("{{\"mine\":{}}}", ids[1]));

    // A page stuck in a loop: its web process goes, nothing else.
    let stuck_web = webs[2];
    shell.eval(ids[2], "setTimeout(() => { for (;;) {} }, 20), 1");
    shell.wait_for("the stuck page restarted", Duration::from_secs(30), |apps| {
        let g = find(apps, ids[2]);
        restarts(g) == 1 && running_with_page(g)
    });
    let gamma = shell.app(ids[2]);
    assert!(gamma["last_exit"].as_str().unwrap_or_default().contains("script does not answer"), "{gamma}");
    assert!(!alive(stuck_web), "the stuck page's web process was killed");
    assert!(alive(host) && pid(&gamma) == host, "{gamma}");
    assert_eq!(restarts(&shell.app(ids[0])), 0);
    assert_eq!(shell.eval(ids[0], "1+1"), "2");

    // A page eating memory: its web process is killed at the app's limit; the host and the
    // others carry on.
    let hog = ids[0];
    let hog_web = web(&shell.app(hog))[0];
    eat_memory(&shell, hog);
    shell.wait_for("the memory hog stopped", Duration::from_secs(30), |apps| {
        find(apps, hog)["last_exit"].as_str().unwrap_or_default().contains("memory limit")
    });
    // (A process giving back 700 MB takes a moment to go.)
    wait_gone(&[hog_web], Duration::from_secs(5));
    assert!(alive(host));
    shell.wait_for("the hog back", Duration::from_secs(30), |apps| running_with_page(find(apps, hog)));
    for id in &ids {
        assert_eq!(shell.eval(*id, "1+1"), "2", "instance {id} after the hog");
    }

    // The shared host dies: every app in it starts again, in one new host, each with the state
    // it saved.
    let before: Vec<u64> = shell.apps().iter().map(restarts).collect();
    let killed = Instant::now();
    assert!(Command::new("kill").args(["-9", &host.to_string()]).status().unwrap().success());
    shell.wait_for("every app back in a new host", Duration::from_secs(60), |apps| {
        apps.len() == 3
            && apps.iter().zip(&before).all(|(a, r)| restarts(a) == r + 1 && running_with_page(a) && pid(a) != host)
    });
    eprintln!("the shared host killed: every app back after {:?}", killed.elapsed());
    let now = shell.apps();
    let new_host = pid(&now[0]);
    for a in &now {
        assert_eq!(pid(a), new_host, "{a}");
        assert!(a["last_exit"].as_str().unwrap_or_default().contains("process group desk"), "{a}");
    }
    for id in &ids {
        assert_eq!(shell.eval(*id, "tessera.workspace.getState()"), format!("{{\"mine\":{id}}}"), "instance {id}");
    }
}

#[test]
fn an_app_may_ask_for_a_host_of_its_own_or_a_group_and_the_admin_policy_decides() {
    let dir = tempfile::tempdir().unwrap();
    let fixtures = tests::workspace_root().join("tests/fixtures/e2e");
    for page in ["alpha.html", "beta.html", "gamma.html", "e2e.js"] {
        std::fs::copy(fixtures.join(page), dir.path().join(page)).unwrap();
    }
    let desk = |apps: Value, policy: Value| {
        let manifest = dir.path().join("desk.json");
        let desk = serde_json::json!({ "name": "groups", "apps": apps, "startup": ["alpha", "beta", "gamma"], "policy": policy });
        std::fs::write(&manifest, desk.to_string()).unwrap();
        manifest
    };
    let refused = |manifest: &std::path::Path| {
        let out = Command::new(tests::bin("tessera"))
            .args(["run", "--manifest", manifest.to_str().unwrap(), "--exit-after", "1"])
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    // A name that is not one, in the manifest or the policy: refused, with the app and the field.
    let bad = desk(serde_json::json!([{ "appId": "alpha", "url": "alpha.html", "processGroup": "../up" }]), json!({}));
    let err = refused(&bad);
    assert!(err.contains("alpha") && err.contains("processGroup"), "{err}");
    let bad = desk(
        serde_json::json!([{ "appId": "alpha", "url": "alpha.html" }]),
        json!({ "processes": { "groups": { "alpha": "a/b" } } }),
    );
    let err = refused(&bad);
    assert!(err.contains("processes.groups.alpha"), "{err}");

    // The manifest asks, the admin policy decides: alpha asks to be alone and beta and gamma to
    // share "quotes"; the policy puts alpha in "quotes" and gives gamma a host of its own.
    let manifest = desk(
        serde_json::json!([
            { "appId": "alpha", "url": "alpha.html", "ownProcess": true },
            { "appId": "beta", "url": "beta.html", "processGroup": "quotes" },
            { "appId": "gamma", "url": "gamma.html", "processGroup": "quotes" },
        ]),
        json!({ "processes": { "alone": ["gamma"], "groups": { "alpha": "quotes" } } }),
    );
    let shell =
        Shell::start_full(manifest.to_str().unwrap(), None, 600, &[("TESSERA_GROUP_LINGER_MS", "3000")], "groups-own");
    shell.wait_for("three apps running with their pages", Duration::from_secs(90), |apps| {
        apps.len() == 3 && apps.iter().all(running_with_page)
    });
    let apps = shell.apps();
    assert_eq!((apps[0]["group"].as_str(), apps[1]["group"].as_str()), (Some("quotes"), Some("quotes")));
    assert!(apps[2]["group"].is_null(), "{}", apps[2]);
    assert_eq!(pid(&apps[0]), pid(&apps[1]));
    assert_ne!(pid(&apps[2]), pid(&apps[1]));
    // A host of its own: its web process is under it, and counted with it.
    assert_eq!(parent_of(web(&apps[2])[0]), pid(&apps[2]));

    // A group whose apps have all closed keeps its host a while (3 s here) for the next one,
    // which opens in it; then the host goes.
    let quotes = pid(&apps[0]);
    let group = |shell: &Shell| -> Option<Value> {
        let health: Value = serde_json::from_str(&shell.ctl_ok(&["health", "--json"])).unwrap();
        health["groups"].as_array().unwrap().iter().find(|g| g["name"] == "quotes").cloned()
    };
    for a in &apps[..2] {
        shell.ctl_ok(&["close", &a["instance"].to_string()]);
    }
    shell.wait_for("the group's apps closed", Duration::from_secs(10), |apps| apps.len() == 1);
    let idle = group(&shell).expect("the group's host lingers");
    assert_eq!((idle["pid"].as_u64(), idle["views"].as_u64()), (Some(quotes), Some(0)), "{idle}");
    let again: u64 = shell.ctl_ok(&["launch", "beta"]).parse().unwrap();
    shell.wait_for("beta again", Duration::from_secs(30), |apps| {
        apps.iter().any(|a| a["instance"] == again && running_with_page(a))
    });
    assert_eq!(pid(&shell.app(again)), quotes, "it opened in the host that stayed");
    shell.ctl_ok(&["close", &again.to_string()]);
    let gone = Instant::now();
    wait_gone(&[quotes], Duration::from_secs(15));
    assert!(gone.elapsed() >= Duration::from_secs(2), "the host went after {:?}, before its time", gone.elapsed());
    assert!(group(&shell).is_none());
}

#[test]
fn a_group_host_with_no_app_left_does_not_outlive_a_frozen_shell() {
    let env = [("TESSERA_SHELL_TIMEOUT_MS", "2000"), ("TESSERA_GROUP_LINGER_MS", "600000")];
    let shell = Shell::start_full("e2e.json", None, 2048, &env, "groups-frozen");
    shell.wait_for("three apps running", Duration::from_secs(90), |apps| {
        apps.len() == 3 && apps.iter().all(running_with_page)
    });
    let apps = shell.apps();
    let host = pid(&apps[0]);
    let tessera = parent_of(host);
    for a in &apps {
        shell.ctl_ok(&["close", &a["instance"].to_string()]);
    }
    shell.wait_for("every app closed", Duration::from_secs(10), |apps| apps.is_empty());
    // Its views gone, it hears from the shell only through the group's pings.
    std::thread::sleep(Duration::from_secs(3));
    assert!(alive(host), "the host stays while the shell pings it");
    assert!(Command::new("kill").args(["-STOP", &tessera.to_string()]).status().unwrap().success());
    let took = wait_gone(&[host], Duration::from_secs(10));
    eprintln!("a host with no view left a frozen shell after {took:?}");
    assert!(Command::new("kill").args(["-CONT", &tessera.to_string()]).status().unwrap().success());
}
