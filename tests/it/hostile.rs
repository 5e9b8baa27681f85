//! The hostile-app suite: real pages in real app hosts, each trying one thing it must not be
//! able to do, under deny by default. For each: what the page saw, that nothing reached the
//! watcher app (bus, directed messages, its channel, its intent, its private channel), and an
//! entry in the audit log naming the app.

use std::time::Duration;

use serde_json::{Value, json};

use crate::e2e::{Shell, js, running_with_page, wait_js};

/// Each attack (its app id) and what its page must report.
const ATTACKS: &[(&str, &str)] = &[
    ("h-publish", "refused: publish orders.new: denied"),
    ("h-subscribe-all", "refused: subscribe"),
    ("h-subscribe-orders", "refused: subscribe"),
    ("h-subscribe-fdc3-journal", "refused: subscribe"),
    ("h-sys-snoop", "saw nothing; refused: subscribe"),
    ("h-sys-replay", "saw nothing; refused: subscribe"),
    ("h-sys-forge", "refused: publish $shell.fdc3.broadcast: topics starting with `$` are reserved"),
    ("h-serve", "refused: serve pricing: denied"),
    ("h-send-as-other", "refused: send to watcher: denied"),
    ("h-broadcast-as-other", "rejected: AccessDenied"),
    ("h-forge-dacp-source", "posted"),
    ("h-forge-intent-result", "posted"),
    ("h-private-by-id", "rejected: AccessDenied"),
    ("h-raise-intent", "rejected: AccessDenied"),
    ("h-open", "rejected: AccessDenied"),
    ("h-nav-https", "stayed"),
    ("h-nav-port", "stayed"),
    ("h-nav-http", "stayed"),
    ("h-nav-other-app", "stayed"),
    ("h-nav-userinfo", "stayed"),
    ("h-nav-protocol-relative", "stayed"),
    ("h-nav-idn", "stayed"),
    ("h-nav-trailing-dot", "stayed"),
    ("h-nav-data", "stayed"),
    ("h-nav-localhost", "stayed"),
    ("h-nav-flood", "stayed"),
    ("h-window-open", ""),
    ("h-iframe-bridge", "posted from a frame"),
    ("h-geolocation", "error 1"),
    ("h-notifications", "denied"),
    ("h-oversize", "refused: message:"),
    ("h-malformed", "refused: message:"),
    ("h-unknown-type", "refused: message:"),
    ("h-bogus-dacp", "posted"),
];

/// Attempts WebKit or the preload stops before anything reaches the shell: no effect, and
/// nothing for the shell to record.
const EXTRAS: &[(&str, &str)] = &[
    // WebKit does not load file: URLs from an app's page at all.
    ("h-nav-file", "stayed"),
    // The preload's channel to the host cannot be taken over.
    ("h-tamper-preload", "refused"),
    ("h-camera", ""),
    ("h-clipboard", ""),
];

#[test]
fn thirty_hostile_pages_each_fail_and_each_attempt_is_audited() {
    let dir = tempfile::tempdir().unwrap();
    let page = tests::fixture_page("hostile", "hostile.html", dir.path());
    let mut apps: Vec<Value> = vec![json!({ "appId": "watcher", "title": "Watcher", "url": page })];
    apps.extend(ATTACKS.iter().map(|(id, _)| json!({ "appId": id, "url": page })));
    apps.extend(EXTRAS.iter().map(|(id, _)| json!({ "appId": id, "url": page })));
    let manifest = dir.path().join("desk.json");
    std::fs::write(
        &manifest,
        json!({
            "name": "Tessera hostile desk",
            "apps": apps,
            "startup": ["watcher"],
            "policy": { "rules": [
                { "apps": ["watcher"], "allow": [
                    "bus.subscribe:#", "bus.publish", "fdc3.broadcast", "fdc3.raiseIntent", "fdc3.open", "fdc3.appChannel",
                ] },
                // Apps with every grant, to show the shell's records stay out of their reach.
                { "apps": ["h-sys-snoop", "h-sys-replay", "h-sys-forge"], "allow": [
                    "bus.subscribe:#", "bus.publish", "fdc3.broadcast", "fdc3.appChannel",
                ] },
            ] },
        })
        .to_string(),
    )
    .unwrap();
    let profile = dir.path().join("profile");
    let shell = Shell::start_full(manifest.to_str().unwrap(), Some(&profile), 2048, &[], "hostile");
    shell.wait_for("the watcher loads", Duration::from_secs(60), |a| a.len() == 1 && a.iter().all(running_with_page));
    let watcher = shell.apps()[0]["instance"].as_u64().unwrap();
    wait_js(&shell, watcher, "window.ready === true", "true");
    let private_id = js(&shell, watcher, "window.privateId");

    let mut said = Vec::new();
    for (app, want) in ATTACKS.iter().chain(EXTRAS).copied() {
        let launched = shell.ctl_ok(&["launch", app]);
        let instance: u64 = launched.trim().parse().unwrap();
        shell.wait_for(&format!("{app} loads"), Duration::from_secs(60), |a| {
            a.iter().any(|x| x["instance"] == instance && running_with_page(x))
        });
        wait_js(&shell, instance, "typeof window.attack", "\"function\"");
        let got = js(&shell, instance, &format!("attack({})", json!({ "privateId": private_id })));
        let got = got.as_str().map_or_else(|| got.to_string(), str::to_owned);
        assert!(got.starts_with(want), "{app}: the page saw {got:?}, expected {want:?}");
        said.push(format!("{app}: {got}"));
        shell.ctl_ok(&["close", &instance.to_string()]);
    }
    eprintln!("{}", said.join("\n"));
    // Nothing reached the watcher: no message, no context, no intent, nothing on its private channel.
    let seen = js(&shell, watcher, "seen");
    assert_eq!(seen, json!([]), "the watcher saw something");
    drop(shell);

    // Each attempt that reached the shell is in the audit log, under the app's name.
    let out = std::process::Command::new(tests::bin("tessera"))
        .args(["audit", "export", "--profile"])
        .arg(&profile)
        .env("TESSERA_LOG", "warn")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let entries: Vec<Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let mut missing = Vec::new();
    for (app, _) in ATTACKS {
        let mine: Vec<String> = entries
            .iter()
            .filter(|e| e["app"] == *app && matches!(e["decision"].as_str(), Some("deny" | "refused")))
            .map(|e| format!("{} {}", e["action"].as_str().unwrap_or(""), e["object"].as_str().unwrap_or("")))
            .collect();
        if mine.is_empty() {
            missing.push(*app);
        } else {
            eprintln!("{app}: {}", mine.join("; "));
        }
    }
    assert!(missing.is_empty(), "no audit entry for {missing:?}");

    // Nothing forged reached the journal's FDC3 records, and the private contexts are there
    // for the journal's owner alone.
    let out = std::process::Command::new(tests::bin("tessera"))
        .args(["journal", "replay", "--json", "--topic", "$shell.fdc3.broadcast", "--profile"])
        .arg(&profile)
        .env("TESSERA_LOG", "warn")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let records = String::from_utf8_lossy(&out.stdout);
    assert!(!records.contains("FORGED"), "a forged record reached the journal");
    assert!(records.contains("LEAKME"), "the shell's own records are journalled");
    assert!(ATTACKS.len() >= 30);
}
