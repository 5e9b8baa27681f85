//! Permissions end to end: the real shell with an admin policy file, real pages asking for
//! things, the consent prompt answered through `tessera ctl prompt` and with the keyboard,
//! answers remembered in the profile across a restart and revoked, and the policy file
//! changed while the shell runs.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::e2e::{Shell, instance_of, js, prompts, running_with_page, wait_js};
use crate::layout::{display_of, xdotool};

/// Waits for exactly one prompt and returns it.
fn one_prompt(shell: &Shell) -> Value {
    let start = Instant::now();
    loop {
        let list = prompts(shell);
        if list.len() == 1 {
            return list[0].clone();
        }
        assert!(start.elapsed() < Duration::from_secs(10), "prompts: {list:#?}\n{}", shell.log_tail());
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn grants(shell: &Shell) -> Vec<String> {
    let list: Value = serde_json::from_str(&shell.ctl_ok(&["grants", "list", "--json"])).unwrap();
    let mut out: Vec<String> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            let scope = g["scope"].as_str().map(|s| format!(":{s}")).unwrap_or_default();
            format!(
                "{} {}{scope} {}",
                g["app"].as_str().unwrap(),
                g["permission"].as_str().unwrap(),
                g["decision"].as_str().unwrap()
            )
        })
        .collect();
    out.sort();
    out
}

const POLICY: &str = r#"{
  "rules": [
    { "apps": ["*"], "allow": ["bus.subscribe:desk.#"], "deny": ["bus.publish:admin.#"] },
    { "apps": ["a"], "prompt": ["bus.publish:desk.orders"], "allow": ["notifications"] }
  ]
}"#;

#[test]
fn prompts_remembered_answers_revocation_and_a_live_policy_change() {
    let dir = tempfile::tempdir().unwrap();
    let page = tests::fixture_page("fdc3", "app.html", dir.path());
    let manifest = dir.path().join("desk.json");
    std::fs::write(
        &manifest,
        json!({
            "name": "Tessera permissions desk",
            "apps": [
                { "appId": "a", "title": "App A", "url": page },
                { "appId": "b", "title": "App B", "url": page, "permissions": ["fdc3.broadcast", "geolocation"] },
            ],
            "startup": ["a", "b"],
        })
        .to_string(),
    )
    .unwrap();
    let policy = dir.path().join("policy.json");
    std::fs::write(&policy, POLICY).unwrap();
    let profile = dir.path().join("profile");
    let env = [("TESSERA_POLICY", policy.to_str().unwrap())];
    let start = |name: &str| {
        let shell = Shell::start_full(manifest.to_str().unwrap(), Some(&profile), 2048, &env, name);
        shell.wait_for("the apps load", Duration::from_secs(60), |apps| {
            apps.len() == 2 && apps.iter().all(running_with_page)
        });
        for app in ["a", "b"] {
            wait_js(&shell, instance_of(&shell, app), "typeof window.fdc3", "\"object\"");
        }
        shell
    };
    let shell = start("permissions");
    let (a, b) = (instance_of(&shell, "a"), instance_of(&shell, "b"));
    js(&shell, b, "window.seen = [], tessera.bus.subscribe('desk.#', (d, m) => seen.push(m.topic + ' ' + d.n)), true");
    js(&shell, a, "window.errors = [], tessera.bus.onError((e) => errors.push(e.message)), true");

    // Denied by the policy: refused at once, the page is told why; nothing is delivered.
    js(&shell, a, "tessera.bus.publish('admin.reset', {n: 0}), true");
    wait_js(&shell, a, "errors.length", "1");
    let error = js(&shell, a, "errors[0]");
    assert!(error.as_str().unwrap().contains("denied by the admin policy"), "{error}");
    // Not declared, not in the policy: denied by default.
    js(
        &shell,
        b,
        "window.errors = [], tessera.bus.onError((e) => errors.push(e.message)), tessera.bus.publish('desk.notes', {n: 1}), true",
    );
    wait_js(&shell, b, "errors.length", "1");
    assert!(js(&shell, b, "errors[0]").as_str().unwrap().contains("not allowed"));

    // The policy says to ask: the message waits for the answer; allowed always, it goes.
    js(&shell, a, "tessera.bus.publish('desk.orders', {n: 7}), true");
    let p = one_prompt(&shell);
    assert_eq!((p["app"].as_str(), p["permission"].as_str()), (Some("a"), Some("bus.publish:desk.orders")));
    assert_eq!(p["asks"], "publish messages on desk.orders");
    std::thread::sleep(Duration::from_millis(600));
    shell.ctl_ok(&["screenshot", tests::target_dir().join("e2e/consent.png").to_str().unwrap()]);
    assert_eq!(js(&shell, b, "seen.length"), 0, "held until answered");
    shell.ctl_ok(&["prompt", &p["id"].to_string(), "allow-always"]);
    wait_js(&shell, b, "seen.join()", "\"desk.orders 7\"");
    assert!(prompts(&shell).is_empty());
    js(&shell, a, "tessera.bus.publish('desk.orders', {n: 8}), true");
    wait_js(&shell, b, "seen.join()", "\"desk.orders 7,desk.orders 8\"");

    // A frame of another origin inside a's page posting to the bridge directly, as a's
    // allowed publish: the host ignores it (it lacks the page's token).
    js(
        &shell,
        a,
        r#"window.frameSaid = null, window.addEventListener('message', (e) => frameSaid = String(e.data)),
        (() => { const f = document.createElement('iframe'); f.sandbox = 'allow-scripts';
          f.srcdoc = "<script>try { window.webkit.messageHandlers.ipc.postMessage(JSON.stringify({type: 'bus.publish', payload: {topic: 'desk.orders', data: {n: 666}, durable: false, ttlMs: null}, meta: {}})); parent.postMessage('posted', '*'); } catch (e) { parent.postMessage('no bridge: ' + e, '*'); }</script>";
          document.body.appendChild(f); })(), true"#,
    );
    wait_js(&shell, a, "frameSaid !== null", "true");
    let said = js(&shell, a, "frameSaid");
    js(&shell, a, "tessera.bus.publish('desk.orders', {n: 9}), true");
    wait_js(&shell, b, "seen.join()", "\"desk.orders 7,desk.orders 8,desk.orders 9\"");
    if said == "posted" {
        let log = std::fs::read_to_string(tests::target_dir().join("e2e/permissions.log")).unwrap();
        assert!(log.contains("ignored a message without the page's token"), "the frame's message is not accounted for");
    }

    // FDC3: b declares it may broadcast, so it is asked; Esc in the dialog denies, remembered.
    js(&shell, b, "fdc3.joinUserChannel('fdc3.channel.2').then(() => true)");
    js(
        &shell,
        b,
        "(window.b1 = fdc3.broadcast({type: 'fdc3.instrument', id: {ticker: 'A'}}).then(() => 'ok', e => e.message), true)",
    );
    let p = one_prompt(&shell);
    assert_eq!(p["permission"], "fdc3.broadcast");
    std::thread::sleep(Duration::from_millis(500));
    let display = display_of(&shell);
    let out = std::process::Command::new("xdotool")
        .args(["search", "--name", "Tessera permissions desk"])
        .env("DISPLAY", &display.0)
        .env("XAUTHORITY", &display.1)
        .output()
        .unwrap();
    let window = String::from_utf8_lossy(&out.stdout).lines().next().unwrap_or_default().to_owned();
    xdotool(&display, &["windowfocus", "--sync", &window]);
    xdotool(&display, &["key", "--window", &window, "Escape"]);
    wait_js(&shell, b, "window.b1", "\"AccessDenied\"");
    assert_eq!(
        js(&shell, b, "fdc3.broadcast({type: 'fdc3.instrument', id: {ticker: 'B'}}).then(() => 'ok', e => e.message)"),
        "AccessDenied"
    );
    assert!(prompts(&shell).is_empty(), "a remembered denial asks nothing");
    assert_eq!(grants(&shell), ["a bus.publish:desk.orders allow", "b fdc3.broadcast deny"]);

    // Revoked: asked again; allowed once, for this instance only (not remembered).
    shell.ctl_ok(&["grants", "revoke", "b", "fdc3.broadcast"]);
    js(
        &shell,
        b,
        "(window.b2 = fdc3.broadcast({type: 'fdc3.instrument', id: {ticker: 'C'}}).then(() => 'ok', e => e.message), true)",
    );
    let p = one_prompt(&shell);
    shell.ctl_ok(&["prompt", &p["id"].to_string(), "allow-once"]);
    wait_js(&shell, b, "window.b2", "\"ok\"");
    assert_eq!(grants(&shell), ["a bus.publish:desk.orders allow"]);
    let out = shell.ctl(&["prompt", "999", "deny"]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("no prompt 999"));

    // WebKit's own permission requests go through the same gate: notifications allowed by the
    // policy for a, refused by default for b; b's location is asked for, and refused.
    assert_eq!(js(&shell, a, "Notification.requestPermission()"), "granted");
    assert_eq!(js(&shell, b, "Notification.requestPermission()"), "denied");
    js(
        &shell,
        b,
        "window.geo = null, navigator.geolocation.getCurrentPosition(() => geo = 'position', (e) => geo = 'error ' + e.code), true",
    );
    let p = one_prompt(&shell);
    assert_eq!((p["app"].as_str(), p["permission"].as_str()), (Some("b"), Some("geolocation")));
    assert_eq!(p["asks"], "know your location");
    shell.ctl_ok(&["prompt", &p["id"].to_string(), "deny"]);
    wait_js(&shell, b, "window.geo", "\"error 1\""); // PERMISSION_DENIED
    assert_eq!(grants(&shell), ["a bus.publish:desk.orders allow", "b geolocation deny"]);

    // IT changes the policy while the shell runs: it applies at once, over the remembered allow.
    std::fs::write(
        &policy,
        POLICY.replace(
            "\"deny\": [\"bus.publish:admin.#\"]",
            "\"deny\": [\"bus.publish:admin.#\", \"bus.publish:desk.orders\"]",
        ),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    js(&shell, a, "errors = [], tessera.bus.publish('desk.orders', {n: 90}), true");
    wait_js(&shell, a, "errors.length", "1");
    assert!(js(&shell, a, "errors[0]").as_str().unwrap().contains("denied by the admin policy"));
    // A broken policy file is refused; the one in force stays.
    std::fs::write(&policy, "{ \"rules\": [ { \"apps\": [] } ] }").unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    js(&shell, a, "errors = [], tessera.bus.publish('desk.orders', {n: 10}), true");
    wait_js(&shell, a, "errors.length", "1");
    let log = std::fs::read_to_string(tests::target_dir().join("e2e/permissions.log")).unwrap();
    assert!(log.contains("admin policy refused") && log.contains("rules[0].apps: empty"), "the refusal is logged");
    std::fs::write(&policy, POLICY).unwrap();
    drop(shell);

    // Remembered answers survive a restart.
    let shell = start("permissions-restart");
    assert_eq!(grants(&shell), ["a bus.publish:desk.orders allow", "b geolocation deny"]);
    let (a, b) = (instance_of(&shell, "a"), instance_of(&shell, "b"));
    js(&shell, b, "window.seen = [], tessera.bus.subscribe('desk.#', (d, m) => seen.push(m.topic + ' ' + d.n)), true");
    std::thread::sleep(Duration::from_millis(200));
    js(&shell, a, "tessera.bus.publish('desk.orders', {n: 11}), true");
    wait_js(&shell, b, "seen.join()", "\"desk.orders 11\"");
    assert!(prompts(&shell).is_empty());
    drop(shell);

    // Every step is in the audit log, which verifies.
    let tessera = |args: &[&str]| {
        let out = std::process::Command::new(tests::bin("tessera"))
            .args(args)
            .arg("--profile")
            .arg(&profile)
            .env("TESSERA_LOG", "warn")
            .output()
            .unwrap();
        assert!(out.status.success(), "tessera {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let report: Value = serde_json::from_str(&tessera(&["audit", "verify", "--json"])).unwrap();
    assert!(report["problems"].as_array().is_some_and(Vec::is_empty), "{report:#}");
    let entries: Vec<Value> = tessera(&["audit", "export"]).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let said: Vec<String> = entries
        .iter()
        .map(|e| {
            format!(
                "{} {} {} {} {}",
                e["actor"].as_str().unwrap_or("-"),
                e["app"].as_str().unwrap_or("-"),
                e["action"].as_str().unwrap_or("-"),
                e["object"].as_str().unwrap_or("-"),
                e["decision"].as_str().unwrap_or("-")
            )
        })
        .collect();
    for want in [
        "admin-policy a permission.decide bus.publish:admin.reset deny",
        "default b permission.decide bus.publish:desk.notes deny",
        "shell a permission.prompt bus.publish:desk.orders prompted",
        "user a permission.answer bus.publish:desk.orders allow-always",
        "user b permission.answer fdc3.broadcast deny",
        "user b permission.decide fdc3.broadcast deny",
        "user b permission.revoke fdc3.broadcast revoked",
        "user b permission.answer fdc3.broadcast allow-once",
        "admin-policy - policy.reject",
        "user a permission.decide bus.publish:desk.orders allow",
        "admin-policy a permission.decide notifications allow",
        "default b permission.decide notifications deny",
        "user b permission.answer geolocation deny",
    ] {
        assert!(said.iter().any(|s| s.starts_with(want)), "no audit entry {want:?} in:\n{}", said.join("\n"));
    }
    assert!(said.iter().filter(|s| s.contains(" policy.load ")).count() >= 2, "each reload is recorded");
}

fn tessera(args: &[&str], stdin: Option<&str>) -> std::process::Output {
    use std::io::Write;
    let mut child = std::process::Command::new(tests::bin("tessera"))
        .args(args)
        .env("TESSERA_LOG", "warn")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or_default().as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

fn ok(out: &std::process::Output) -> String {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// Waits for a shell that must refuse to start; returns its log.
fn refused(mut shell: Shell, name: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    while shell.child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the shell started");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::fs::read_to_string(tests::target_dir().join(format!("e2e/{name}.log"))).unwrap()
}

#[test]
fn signed_manifests_and_app_directories_with_a_policy_that_requires_them() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let key = d.join("it.key");
    let public = ok(&tessera(&["sign", "keygen", "--out", key.to_str().unwrap()], None)).trim().to_owned();
    let rogue = d.join("rogue.key");
    ok(&tessera(&["sign", "keygen", "--out", rogue.to_str().unwrap()], None));
    let policy = d.join("policy.json");
    std::fs::write(
        &policy,
        json!({
            "signing": { "requireSigned": true, "trustedKeys": [{ "id": "it", "publicKey": public }] },
            "rules": [{ "apps": ["*"], "allow": ["fdc3.open"] }],
        })
        .to_string(),
    )
    .unwrap();
    let record = |id: &str, version: &str| {
        json!({ "appId": id, "title": format!("Web {id}"), "type": "web", "version": version,
                "details": { "url": format!("https://{id}.example/") } })
    };
    let sign = |records: Value, key: &std::path::Path, expires: &str| -> Value {
        let out = ok(&tessera(
            &["sign", "records", "--key", key.to_str().unwrap(), "--key-id", "it", "--expires", expires],
            Some(&records.to_string()),
        ));
        serde_json::from_str(&out).unwrap()
    };
    let good = sign(json!([record("web1", "2.0")]), &key, "2099-01-01T00:00:00Z");
    let mut tampered = sign(json!([record("web3", "1.0")]), &key, "2099-01-01T00:00:00Z");
    tampered[0]["details"]["url"] = json!("https://evil.example/");
    let expired = sign(json!([record("web4", "1.0")]), &key, "2020-01-01T00:00:00Z");
    let forged = sign(json!([record("web5", "1.0")]), &rogue, "2099-01-01T00:00:00Z");
    let appd = d.join("appd.json");
    let write_appd =
        |records: Vec<Value>| std::fs::write(&appd, json!({ "applications": records }).to_string()).unwrap();
    write_appd(vec![
        good[0].clone(),
        record("web2", "1.0"),
        tampered[0].clone(),
        expired[0].clone(),
        forged[0].clone(),
    ]);
    let page = tests::fixture_page("fdc3", "app.html", d);
    let manifest = d.join("desk.json");
    std::fs::write(
        &manifest,
        json!({ "name": "Signed desk", "appDirectory": "appd.json",
                "apps": [{ "appId": "a", "title": "App A", "url": page }], "startup": ["a"] })
        .to_string(),
    )
    .unwrap();
    let profile = d.join("profile");
    let env = [("TESSERA_POLICY", policy.to_str().unwrap())];
    let start = |name: &str| Shell::start_full(manifest.to_str().unwrap(), Some(&profile), 2048, &env, name);

    // Unsigned, the manifest is refused and the shell does not start.
    let log = refused(start("signed-unsigned"), "signed-unsigned");
    assert!(log.contains("signature: it is not signed"), "{log}");
    // Signed by a key the policy does not trust: refused too.
    ok(&tessera(
        &[
            "sign",
            "manifest",
            manifest.to_str().unwrap(),
            "--key",
            rogue.to_str().unwrap(),
            "--key-id",
            "it",
            "--expires",
            "2099-01-01T00:00:00Z",
        ],
        None,
    ));
    let log = refused(start("signed-rogue"), "signed-rogue");
    assert!(log.contains("signature does not match"), "{log}");
    // Signed properly: it starts; only the App Directory's good record loads, the others are
    // named with their reason.
    ok(&tessera(
        &[
            "sign",
            "manifest",
            manifest.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
            "--key-id",
            "it",
            "--expires",
            "2099-01-01T00:00:00Z",
        ],
        None,
    ));
    {
        let shell = start("signed");
        shell.wait_for("app a loads", Duration::from_secs(60), |apps| {
            apps.len() == 1 && apps.iter().all(running_with_page)
        });
        let a = instance_of(&shell, "a");
        wait_js(&shell, a, "typeof window.fdc3", "\"object\"");
        assert_eq!(js(&shell, a, "fdc3.getAppMetadata({appId: 'web1'}).then(m => m.version)"), "2.0");
        for id in ["web2", "web3", "web4", "web5"] {
            let got =
                js(&shell, a, &format!("fdc3.getAppMetadata({{appId: '{id}'}}).then(() => 'loaded', e => e.message)"));
            assert_eq!(got, "TargetAppUnavailable", "{id}");
        }
        let log = std::fs::read_to_string(tests::target_dir().join("e2e/signed.log")).unwrap();
        for (id, why) in [
            ("web2", "it is not signed"),
            ("web3", "its signature does not match its content"),
            ("web4", "its signature expired"),
            ("web5", "its signature does not match its content"),
        ] {
            assert!(
                log.lines().any(|l| l.contains(&format!("app \\\"{id}\\\"")) && l.contains(why))
                    || log.lines().any(|l| l.contains(&format!("app \"{id}\"")) && l.contains(why)),
                "{id}: {why} not in the log:\n{log}"
            );
        }
    }
    // An older version of web1, validly signed, is a downgrade: refused; the rest still loads.
    let older = sign(json!([record("web1", "1.9"), record("web6", "1.0")]), &key, "2099-01-01T00:00:00Z");
    write_appd(older.as_array().unwrap().clone());
    {
        let shell = start("signed-downgrade");
        shell.wait_for("app a loads", Duration::from_secs(60), |apps| {
            apps.iter().any(|x| x["app"] == "a" && running_with_page(x))
        });
        let a = instance_of(&shell, "a");
        wait_js(&shell, a, "typeof window.fdc3", "\"object\"");
        assert_eq!(
            js(&shell, a, "fdc3.getAppMetadata({appId: 'web1'}).then(() => 'loaded', e => e.message)"),
            "TargetAppUnavailable"
        );
        assert_eq!(js(&shell, a, "fdc3.getAppMetadata({appId: 'web6'}).then(m => m.title)"), "Web web6");
        let log = std::fs::read_to_string(tests::target_dir().join("e2e/signed-downgrade.log")).unwrap();
        assert!(log.contains("older than version 2.0 seen before"), "{log}");
    }
    // The manifest changed after signing: refused.
    let text = std::fs::read_to_string(&manifest).unwrap().replace("App A", "App Z");
    std::fs::write(&manifest, text).unwrap();
    let log = refused(start("signed-tampered"), "signed-tampered");
    assert!(log.contains("signature does not match"), "{log}");

    // Every signature failure is in the audit log: the refused manifests and records.
    let out = tessera(&["audit", "export", "--profile", profile.to_str().unwrap()], None);
    let entries: Vec<Value> = ok(&out).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let refused_apps: Vec<&str> =
        entries.iter().filter(|e| e["action"] == "signature.refused").filter_map(|e| e["app"].as_str()).collect();
    for id in ["web2", "web3", "web4", "web5", "web1"] {
        assert!(refused_apps.contains(&id), "no signature.refused entry for {id}: {refused_apps:?}");
    }
    let manifests = entries.iter().filter(|e| e["action"] == "signature.refused" && e["app"].is_null()).count();
    assert_eq!(manifests, 3, "the unsigned, the rogue and the tampered manifest");
}

#[test]
fn a_local_app_gets_the_content_security_policy_its_manifest_gives() {
    let dir = tempfile::tempdir().unwrap();
    let page = tests::fixture_page("fdc3", "app.html", dir.path());
    let manifest = dir.path().join("desk.json");
    std::fs::write(
        &manifest,
        json!({
            "name": "Tessera CSP desk",
            "apps": [
                { "appId": "strict", "url": page, "csp": "default-src 'self'; script-src 'self'; connect-src 'none'" },
                { "appId": "open", "url": page },
            ],
            "startup": ["strict", "open"],
        })
        .to_string(),
    )
    .unwrap();
    let shell = Shell::start_full(manifest.to_str().unwrap(), None, 2048, &[], "csp");
    shell.wait_for("the apps load", Duration::from_secs(60), |a| a.len() == 2 && a.iter().all(running_with_page));
    // The page's own script (app.js, from 'self') ran in both; an inline script is blocked only
    // where the policy says so.
    let inline = "window.inline = 'no', window.violations = [], \
        document.addEventListener('securitypolicyviolation', (e) => violations.push(e.violatedDirective)), \
        (() => { const s = document.createElement('script'); s.textContent = 'window.inline = \"ran\"'; document.body.appendChild(s); })(), \
        new Promise((ok) => setTimeout(() => ok([window.inline, typeof window.got, violations.join()]), 300))";
    let strict = js(&shell, instance_of(&shell, "strict"), inline);
    assert_eq!(strict[0], "no", "{strict}");
    assert_eq!(strict[1], "object", "its own script ran");
    assert!(strict[2].as_str().unwrap().contains("script-src"), "{strict}");
    let open = js(&shell, instance_of(&shell, "open"), inline);
    assert_eq!(open[0], "ran", "{open}");
    drop(shell);
    // A remote app cannot be given one: its server sets its own.
    std::fs::write(
        &manifest,
        json!({ "apps": [{ "appId": "web", "url": "https://web.example/", "csp": "default-src 'self'" }] }).to_string(),
    )
    .unwrap();
    let out = std::process::Command::new(tests::bin("tessera"))
        .args(["run", "--manifest"])
        .arg(&manifest)
        .env("TESSERA_LOG", "warn")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("app \"web\": csp: only local apps"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_policy_file_that_must_be_signed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let key = d.join("it.key");
    let public = ok(&tessera(&["sign", "keygen", "--out", key.to_str().unwrap()], None)).trim().to_owned();
    let trust = d.join("policy-trust.json");
    std::fs::write(
        &trust,
        json!({ "requireSigned": true, "trustedKeys": [{ "id": "it", "publicKey": public }] }).to_string(),
    )
    .unwrap();
    let policy = d.join("policy.json");
    std::fs::write(&policy, json!({ "rules": [{ "apps": ["*"], "allow": ["bus.publish:desk.#"] }] }).to_string())
        .unwrap();
    let page = tests::fixture_page("fdc3", "app.html", d);
    let manifest = d.join("desk.json");
    std::fs::write(
        &manifest,
        json!({ "name": "Signed policy desk", "apps": [{ "appId": "a", "url": page }], "startup": ["a"] }).to_string(),
    )
    .unwrap();
    let profile = d.join("profile");
    let env = [("TESSERA_POLICY", policy.to_str().unwrap()), ("TESSERA_POLICY_TRUST", trust.to_str().unwrap())];
    let start = |name: &str| Shell::start_full(manifest.to_str().unwrap(), Some(&profile), 2048, &env, name);
    let sign = || {
        ok(&tessera(
            &[
                "sign",
                "file",
                policy.to_str().unwrap(),
                "--key",
                key.to_str().unwrap(),
                "--key-id",
                "it",
                "--expires",
                "2099-01-01T00:00:00Z",
            ],
            None,
        ))
    };

    // Unsigned: the shell does not start.
    let log = refused(start("policy-unsigned"), "policy-unsigned");
    assert!(log.contains("signature: it is not signed"), "{log}");
    // Signed: it runs with it.
    sign();
    let shell = start("policy-signed");
    shell.wait_for("app a loads", Duration::from_secs(60), |a| a.len() == 1 && a.iter().all(running_with_page));
    let a = instance_of(&shell, "a");
    js(
        &shell,
        a,
        "window.errors = [], tessera.bus.onError((e) => errors.push(e.message)), window.seen = [], tessera.bus.publish('desk.x', {n: 1}), true",
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(js(&shell, a, "errors.length"), 0, "allowed by the signed policy");
    // Changed without a new signature: refused while running; the signed one stays.
    std::fs::write(&policy, json!({ "rules": [{ "apps": ["*"], "deny": ["bus.publish:desk.#"] }] }).to_string())
        .unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    js(&shell, a, "tessera.bus.publish('desk.x', {n: 2}), true");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(js(&shell, a, "errors.length"), 0, "the unsigned change did not apply");
    // Signed, the change applies.
    sign();
    std::thread::sleep(Duration::from_millis(2500));
    js(&shell, a, "tessera.bus.publish('desk.x', {n: 3}), true");
    wait_js(&shell, a, "errors.length", "1");
    drop(shell);
    let out = tessera(&["audit", "export", "--profile", profile.to_str().unwrap()], None);
    let text = ok(&out);
    assert!(text.lines().any(|l| l.contains("policy.reject") && l.contains("signature")), "{text}");
}
