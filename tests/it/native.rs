//! Native apps on the endpoint, end to end: the real shell launches `tessera-native-probe` (a
//! Rust program on `tessera-client`) from a manifest beside a real web app, and the two talk
//! both ways over the bus, services and FDC3 (channels and intents, with the right
//! `originatingApp`); the admin policy's permissions and prompts apply to the native app as to
//! a page; a crashed native app is restarted; a client with a forged token is refused, and
//! every refusal is in the audit log.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::e2e::{Shell, instance_of, js, prompts, running_with_page, wait_js};

fn intent(name: &str) -> Value {
    json!({ "intents": { "listensFor": { name: { "contexts": ["fdc3.instrument"] } } } })
}

/// A test desk: the web app `alpha` and the native apps `natives`, all started.
/// Starts the desk `manifest` (alpha and two native apps) and waits until all three run and
/// alpha's FDC3 is up; gives the shell and alpha's instance.
fn start_with_two_natives(manifest: &std::path::Path, name: &str) -> (Shell, u64) {
    let shell = Shell::start_full(manifest.to_str().unwrap(), None, 2048, &[], name);
    shell.wait_for("the desk starts", Duration::from_secs(60), |apps| {
        apps.len() == 3
            && apps.iter().any(|a| a["app"] == "alpha" && running_with_page(a))
            && apps.iter().filter(|a| a["kind"] == "native" && a["state"] == "running").count() == 2
    });
    let alpha = instance_of(&shell, "alpha");
    wait_js(&shell, alpha, "typeof window.fdc3", "\"object\"");
    (shell, alpha)
}

fn desk(dir: &std::path::Path, natives: &[Value]) -> std::path::PathBuf {
    let page = tests::fixture_page("e2e", "alpha.html", dir);
    let manifest = dir.join("desk.json");
    let mut apps = vec![json!({ "appId": "alpha", "title": "Alpha", "url": page, "interop": intent("ViewChart") })];
    apps.extend(natives.iter().cloned());
    let startup: Vec<&Value> = apps.iter().map(|a| &a["appId"]).collect();
    std::fs::write(
        &manifest,
        json!({
            "name": "Tessera native desk",
            "apps": apps,
            "startup": startup,
            "policy": { "rules": [
                { "apps": ["*"], "allow": ["bus.publish", "bus.subscribe", "bus.serve",
                                           "fdc3.broadcast", "fdc3.raiseIntent", "fdc3.open", "fdc3.appChannel"] },
                { "apps": ["probe"], "prompt": ["bus.publish:e2e.asked"], "deny": ["bus.publish:e2e.denied"] },
            ] },
        })
        .to_string(),
    )
    .unwrap();
    manifest
}

/// What the page has seen from the probe (on `e2e.from_native`) and elsewhere.
fn seen(shell: &Shell, alpha: u64, expr: &str) -> Value {
    js(shell, alpha, &format!("window.received.filter((m) => {expr})"))
}

fn wait_seen(shell: &Shell, alpha: u64, what: &str, expr: &str) -> Value {
    let start = Instant::now();
    loop {
        let got = seen(shell, alpha, expr);
        if got.as_array().is_some_and(|a| !a.is_empty()) {
            return got[0]["data"].clone();
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{what}: the page saw nothing\n{}", shell.log_tail());
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn probe(shell: &Shell) -> Value {
    shell.apps().into_iter().find(|a| a["app"] == "probe").unwrap_or(Value::Null)
}

fn command(shell: &Shell, alpha: u64, cmd: &Value) {
    js(shell, alpha, &format!("tessera.bus.publish('native.ctl', {cmd}), true"));
}

/// A raw client of the endpoint: the hello it is given, and the shell's answer.
fn raw_hello(endpoint: &std::path::Path, hello: &[u8]) -> Value {
    let mut s = UnixStream::connect(endpoint).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(hello).unwrap();
    let mut len = [0u8; 4];
    s.read_exact(&mut len).unwrap();
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).unwrap();
    // Then the shell closes the connection.
    assert_eq!(s.read(&mut [0u8; 16]).unwrap(), 0);
    serde_json::from_slice(&body).unwrap()
}

/// The profile's audit log, exported as JSON lines.
fn audit(profile: &std::path::Path) -> String {
    let out = std::process::Command::new(tests::bin("tessera"))
        .args(["audit", "export", "--profile"])
        .arg(profile)
        .env("TESSERA_KEYRING", "keyutils")
        .env("TESSERA_LOG", "warn")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn framed(text: &str) -> Vec<u8> {
    let mut out = u32::try_from(text.len()).unwrap().to_be_bytes().to_vec();
    out.extend_from_slice(text.as_bytes());
    out
}

#[test]
fn a_native_app_is_a_first_class_member_of_the_desk() {
    let dir = tempfile::tempdir().unwrap();
    let rust_app = json!({ "appId": "probe", "title": "Risk probe", "type": "native",
        "path": tests::bin("tessera-native-probe").to_str().unwrap(),
        "env": { "PROBE_MODE": "test" }, "interop": intent("ViewRisk") });
    let manifest = desk(dir.path(), &[rust_app]);
    let profile = dir.path().join("profile");
    let shell = Shell::start_full(manifest.to_str().unwrap(), Some(&profile), 2048, &[], "native");
    shell.wait_for("the desk starts", Duration::from_secs(60), |apps| {
        apps.len() == 2
            && apps.iter().any(|a| a["app"] == "alpha" && running_with_page(a))
            && apps.iter().any(|a| a["app"] == "probe" && a["state"] == "running")
    });
    let p = probe(&shell);
    assert_eq!(p["kind"], "native", "{p:#}");
    assert!(p["pid"].as_u64().is_some_and(|pid| pid > 0), "{p:#}");
    let alpha = instance_of(&shell, "alpha");
    wait_js(&shell, alpha, "typeof window.fdc3", "\"object\"");
    // A native app has no page: eval says so at once.
    let out = shell.ctl(&["eval", &p["instance"].to_string(), "1"]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("native app"), "{out:?}");

    // Web → native → web: the probe echoes, stamped with its own app id.
    let start = Instant::now();
    loop {
        js(&shell, alpha, "tessera.bus.publish('native.in', {n: 5}), true");
        std::thread::sleep(Duration::from_millis(200));
        if seen(&shell, alpha, "m.data.echo").as_array().is_some_and(|a| !a.is_empty()) {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "no echo from the probe\n{}", shell.log_tail());
    }
    let echo = wait_seen(&shell, alpha, "echo", "m.data.echo");
    assert_eq!(echo, json!({ "echo": { "n": 5 }, "app": "probe" }));

    // Services both ways.
    let doubled = js(&shell, alpha, "tessera.bus.request('native.svc', 'double', {n: 21})");
    assert_eq!(doubled, json!(42));
    command(
        &shell,
        alpha,
        &json!({ "cmd": "request", "service": "e2e.alpha", "action": "double", "data": { "n": 4 } }),
    );
    assert_eq!(
        wait_seen(&shell, alpha, "the probe's call", "m.data.requested !== undefined"),
        json!({ "requested": 8 })
    );

    // FDC3 on the red channel, both ways, each side named as the other sees it.
    js(
        &shell,
        alpha,
        "window.ctxs = [], fdc3.joinUserChannel('fdc3.channel.1').then(() => \
         fdc3.addContextListener(null, (c, m) => ctxs.push({c, m}))).then(() => true)",
    );
    let instrument = json!({ "type": "fdc3.instrument", "id": { "ticker": "MSFT" } });
    command(&shell, alpha, &json!({ "cmd": "broadcast", "context": instrument }));
    wait_js(&shell, alpha, "ctxs.length", "1");
    assert_eq!(js(&shell, alpha, "ctxs[0].c"), instrument);
    assert_eq!(js(&shell, alpha, "ctxs[0].m.source.appId"), json!("probe"));
    let order = json!({ "type": "fdc3.instrument", "id": { "ticker": "AAPL" } });
    js(&shell, alpha, &format!("fdc3.broadcast({order}).then(() => true)"));
    let got = wait_seen(&shell, alpha, "the probe's context", "m.data.context && m.data.context.id.ticker === 'AAPL'");
    assert_eq!(got["source"]["appId"], "alpha");

    // Intents both ways, with results.
    let r = js(
        &shell,
        alpha,
        &format!(
            "fdc3.raiseIntent('ViewRisk', {order}).then(async (res) => ({{ by: res.source.appId, result: await res.getResult() }}))"
        ),
    );
    assert_eq!(r, json!({ "by": "probe", "result": { "type": "fdc3.risk", "ticker": "AAPL", "var": 1250 } }));
    js(
        &shell,
        alpha,
        "fdc3.addIntentListener('ViewChart', (c) => ({type: 'fdc3.chart', ticker: c.id.ticker})).then(() => true)",
    );
    command(&shell, alpha, &json!({ "cmd": "raise", "intent": "ViewChart", "context": instrument, "app": "alpha" }));
    let raised = wait_seen(&shell, alpha, "the probe's intent", "m.data.raised !== undefined || m.data.raiseError");
    assert_eq!(raised["raised"], json!({ "type": "fdc3.chart", "ticker": "MSFT" }), "{raised}");
    assert_eq!(raised["by"]["appId"], "alpha");

    // The admin policy applies: denied outright, or asked of the user.
    command(&shell, alpha, &json!({ "cmd": "publish", "topic": "e2e.denied", "data": { "n": 1 } }));
    let refused = wait_seen(&shell, alpha, "the refusal", "m.data.refused");
    assert_eq!(refused["refused"], "publish e2e.denied");
    assert!(seen(&shell, alpha, "m.topic === 'e2e.denied'").as_array().unwrap().is_empty());
    command(&shell, alpha, &json!({ "cmd": "publish", "topic": "e2e.asked", "data": { "n": 2 } }));
    let start = Instant::now();
    let prompt = loop {
        if let Some(p) = prompts(&shell).into_iter().next() {
            break p;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "no prompt\n{}", shell.log_tail());
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!((prompt["app"].as_str(), prompt["permission"].as_str()), (Some("probe"), Some("bus.publish:e2e.asked")));
    shell.ctl_ok(&["prompt", &prompt["id"].to_string(), "allow-once"]);
    assert_eq!(wait_seen(&shell, alpha, "the asked publish", "m.topic === 'e2e.asked'"), json!({ "n": 2 }));

    // Strangers are refused: a forged token, a hello from before, garbage.
    let endpoint = shell.socket().with_file_name("ctl-endpoint.sock");
    let forged = raw_hello(&endpoint, &framed(r#"{"type":"hello","payload":{"protocol":1,"token":"0123abcd"}}"#));
    assert_eq!(forged["type"], "error");
    assert!(forged["payload"]["error"].as_str().unwrap().contains("not one the shell gave"), "{forged}");
    let early = raw_hello(&endpoint, &framed(r#"{"type":"bus.publish","payload":{"topic":"e2e.x","data":1}}"#));
    assert!(early["payload"]["error"].as_str().unwrap().contains("must be \"hello\""), "{early}");
    let huge = raw_hello(&endpoint, &[0x7f, 0xff, 0xff, 0xff]);
    assert!(huge["payload"]["error"].as_str().unwrap().contains("frames are 1 to"), "{huge}");

    // A flood is held to the rate limit (20,000 a second), and the page still gets its answers.
    command(&shell, alpha, &json!({ "cmd": "flood", "n": 60_000 }));
    let flood = wait_seen(&shell, alpha, "the flood", "m.data.flooded");
    assert_eq!(flood["flooded"], 60_000);
    shell.wait_for("the flood is counted", Duration::from_secs(10), |apps| {
        apps.iter().any(|a| a["app"] == "probe" && a["throttled"].as_u64().is_some_and(|t| t > 0))
    });
    assert_eq!(js(&shell, alpha, "tessera.bus.request('native.svc', 'double', {n: 2})"), json!(4));

    // The health view's figures, as for any app: its process's memory and CPU, its traffic.
    shell.wait_for("the probe's figures", Duration::from_secs(30), |apps| {
        apps.iter().any(|a| {
            a["app"] == "probe"
                && a["memory_bytes"].as_u64().is_some_and(|m| m > 0)
                && a["cpu_percent"].is_number()
                && a["messages_in"].as_u64().is_some_and(|n| n > 0)
                && a["messages_out"].as_u64().is_some_and(|n| n > 0)
        })
    });

    // A workspace keeps the native app and the state it saved: closed, then the workspace
    // restored, it is started again and given that state.
    command(&shell, alpha, &json!({ "cmd": "save", "state": { "book": "EQ-1" } }));
    wait_seen(&shell, alpha, "the probe saves its state", "m.data.saved");
    shell.ctl_ok(&["layout", "save", "with-probe"]);
    let before = probe(&shell)["instance"].as_u64().unwrap();
    js(&shell, alpha, "window.received = [], true");
    shell.ctl_ok(&["close", &before.to_string()]);
    shell.wait_for("the probe is closed", Duration::from_secs(30), |apps| !apps.iter().any(|a| a["app"] == "probe"));
    shell.ctl_ok(&["layout", "restore", "with-probe"]);
    let ready = wait_seen(&shell, alpha, "the probe is started again", "m.data.ready === 'probe'");
    assert_eq!(ready["state"], json!({ "book": "EQ-1" }), "{ready}");
    assert_ne!(ready["instance"].as_u64(), Some(before), "{ready}");
    shell.wait_for("the probe runs again", Duration::from_secs(30), |apps| {
        apps.iter().any(|a| a["app"] == "probe" && a["state"] == "running")
    });

    // A crash, then a hang (no answer to pings): each noticed, and the probe restarted in a new
    // process, back on the bus under the same app.
    for (cmd, restarts, why) in [("crash", 1, "code 3"), ("hang", 2, "hung")] {
        let old_pid = probe(&shell)["pid"].as_u64().unwrap();
        command(&shell, alpha, &json!({ "cmd": cmd }));
        shell.wait_for(&format!("the probe restarts after a {cmd}"), Duration::from_secs(30), |apps| {
            apps.iter().any(|a| {
                a["app"] == "probe"
                    && a["state"] == "running"
                    && a["restarts"].as_u64() >= Some(restarts)
                    && a["pid"].as_u64().is_some_and(|p| p != old_pid)
            })
        });
        let last_exit = probe(&shell)["last_exit"].as_str().unwrap_or_default().to_owned();
        assert!(last_exit.contains(why), "{cmd}: {last_exit}");
    }
    js(&shell, alpha, "window.received = [], true");
    let start = Instant::now();
    loop {
        js(&shell, alpha, "tessera.bus.publish('native.in', {n: 6}), true");
        std::thread::sleep(Duration::from_millis(200));
        if seen(&shell, alpha, "m.data.echo && m.data.echo.n === 6").as_array().is_some_and(|a| !a.is_empty()) {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "no echo after the restart\n{}", shell.log_tail());
    }
    drop(shell);

    // Every decision is in the audit log, the refused connections with them.
    let said: Vec<String> = audit(&profile)
        .lines()
        .map(|l| {
            let e: Value = serde_json::from_str(l).unwrap();
            format!("{} {} {} {}", e["app"].as_str().unwrap_or("-"), e["action"], e["object"], e["decision"])
        })
        .collect();
    for want in [
        r#"probe "permission.decide" "bus.publish:e2e.denied" "deny""#,
        r#"probe "permission.answer" "bus.publish:e2e.asked" "allow-once""#,
        "\"endpoint.refused\"",
    ] {
        assert!(said.iter().any(|s| s.contains(want)), "no audit entry {want:?} in:\n{}", said.join("\n"));
    }
    assert!(
        said.iter().any(|s| s.contains("endpoint.refused") && s.contains("not one the shell gave")),
        "{}",
        said.join("\n")
    );
}

#[test]
fn a_native_app_is_held_to_its_limits_and_dies_with_the_shell() {
    let dir = tempfile::tempdir().unwrap();
    let probe_app = |id: &str, limits: Value| {
        // (Apps that would live on if only their connection closed.)
        let mut app = json!({ "appId": id, "title": id, "type": "native",
            "path": tests::bin("tessera-native-probe").to_str().unwrap(), "env": { "PROBE_STAY": "1" } });
        app.as_object_mut().unwrap().extend(limits.as_object().unwrap().clone());
        app
    };
    let manifest = desk(
        dir.path(),
        &[probe_app("hog", json!({ "memoryLimitMiB": 64 })), probe_app("spinner", json!({ "cpuLimitPercent": 40 }))],
    );
    let (shell, alpha) = start_with_two_natives(&manifest, "native-limits");
    let app = |name: &str| shell.apps().into_iter().find(|a| a["app"] == name).unwrap_or(Value::Null);
    let (hog, spinner) = (app("hog")["pid"].as_u64().unwrap(), app("spinner")["pid"].as_u64().unwrap());

    // Over its memory limit, then over its CPU limit: each killed and started again, saying why.
    command(&shell, alpha, &json!({ "to": "hog", "cmd": "allocate", "mib": 200 }));
    command(&shell, alpha, &json!({ "to": "spinner", "cmd": "spin" }));
    for (name, old, why) in [("hog", hog, "memory"), ("spinner", spinner, "CPU")] {
        shell.wait_for(&format!("{name} is restarted"), Duration::from_secs(60), |apps| {
            apps.iter().any(|a| {
                a["app"] == name
                    && a["state"] == "running"
                    && a["restarts"].as_u64() >= Some(1)
                    && a["pid"].as_u64().is_some_and(|p| p != old)
            })
        });
        let last_exit = app(name)["last_exit"].as_str().unwrap_or_default().to_owned();
        assert!(last_exit.contains(why), "{name}: {last_exit}");
        assert!(!std::path::Path::new(&format!("/proc/{old}")).exists(), "{name}'s old process {old} is still there");
    }

    // The shell dies without a word (kill -9): its native apps go with it.
    let pids: Vec<u64> = ["hog", "spinner"].iter().filter_map(|n| app(n)["pid"].as_u64()).collect();
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pids[0])).unwrap();
    let ppid = stat.rsplit(") ").next().unwrap().split_whitespace().nth(1).unwrap().to_owned();
    assert!(std::process::Command::new("kill").args(["-9", &ppid]).status().unwrap().success());
    let start = Instant::now();
    // (Gone, or a zombie its new parent has not reaped yet.)
    let alive = |pid: &u64| {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|s| s.rsplit(") ").next().is_some_and(|rest| !rest.starts_with('Z')))
    };
    while pids.iter().any(alive) {
        assert!(start.elapsed() < Duration::from_secs(10), "native apps outlived the shell: {pids:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Where the client libraries were installed from the repository (packaging/dev/clients.sh).
fn installed(path: &str) -> std::path::PathBuf {
    let p = tests::workspace_root().join("target/clients").join(path);
    assert!(p.exists(), "{} is missing: run packaging/dev/clients.sh (packaging/dev/test.sh does)", p.display());
    p
}

fn node() -> String {
    let out = std::process::Command::new("sh").args(["-c", "command -v node"]).output().unwrap();
    let path = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(!path.is_empty(), "node is missing: run packaging/dev/setup.sh");
    path
}

#[test]
fn python_and_node_apps_talk_to_a_page_and_to_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let probes = tests::workspace_root().join("tests/native");
    let py = json!({ "appId": "py", "title": "Python probe", "type": "native",
        "path": installed("venv/bin/python").to_str().unwrap(),
        "args": [probes.join("probe.py").to_str().unwrap()], "interop": intent("ViewRisk") });
    let node_app = json!({ "appId": "js", "title": "Node probe", "type": "native", "path": node(),
        "args": [probes.join("probe.js").to_str().unwrap()],
        "env": { "NODE_PATH": installed("node_modules").to_str().unwrap() }, "interop": intent("ViewRisk") });
    let manifest = desk(dir.path(), &[py, node_app]);
    let (shell, alpha) = start_with_two_natives(&manifest, "native-clients");

    // Both echo the page's message, each under its own identity.
    let start = Instant::now();
    loop {
        js(&shell, alpha, "tessera.bus.publish('native.in', {n: 1}), true");
        std::thread::sleep(Duration::from_millis(250));
        let apps = js(&shell, alpha, "[...new Set(received.filter((m) => m.data.echo).map((m) => m.data.app))].sort()");
        if apps == json!(["js", "py"]) {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "echoes from {apps}\n{}", shell.log_tail());
    }

    // Services: the page calls each; each calls the other.
    assert_eq!(js(&shell, alpha, "tessera.bus.request('py.svc', 'double', {n: 21})"), json!(42));
    assert_eq!(js(&shell, alpha, "tessera.bus.request('js.svc', 'double', {n: 5})"), json!(10));
    command(
        &shell,
        alpha,
        &json!({ "to": "py", "cmd": "request", "service": "js.svc", "action": "double", "data": { "n": 7 } }),
    );
    command(
        &shell,
        alpha,
        &json!({ "to": "js", "cmd": "request", "service": "py.svc", "action": "double", "data": { "n": 8 } }),
    );
    assert_eq!(wait_seen(&shell, alpha, "py calls js", "m.data.app === 'py' && m.data.requested")["requested"], 14);
    assert_eq!(wait_seen(&shell, alpha, "js calls py", "m.data.app === 'js' && m.data.requested")["requested"], 16);

    // Contexts on the red channel: from each to all the others, named by where they came from.
    js(
        &shell,
        alpha,
        "window.ctxs = [], fdc3.joinUserChannel('fdc3.channel.1').then(() => \
         fdc3.addContextListener('fdc3.instrument', (c, m) => ctxs.push({c, m}))).then(() => true)",
    );
    let instrument = |t: &str| json!({ "type": "fdc3.instrument", "id": { "ticker": t } });
    command(&shell, alpha, &json!({ "to": "py", "cmd": "broadcast", "context": instrument("PY") }));
    command(&shell, alpha, &json!({ "to": "js", "cmd": "broadcast", "context": instrument("JS") }));
    js(&shell, alpha, &format!("fdc3.broadcast({}).then(() => true)", instrument("WEB")));
    wait_js(&shell, alpha, "ctxs.map((x) => x.c.id.ticker + ' ' + x.m.source.appId).sort().join()", "\"JS js,PY py\"");
    for (seer, ticker, from) in [("py", "JS", "js"), ("py", "WEB", "alpha"), ("js", "PY", "py"), ("js", "WEB", "alpha")]
    {
        let got = wait_seen(
            &shell,
            alpha,
            &format!("{seer} sees {ticker}"),
            &format!("m.data.app === '{seer}' && m.data.context && m.data.context.id.ticker === '{ticker}'"),
        );
        assert_eq!(got["source"]["appId"], from, "{got}");
    }

    // Intents with results: the page at each, each at the page, and one at the other.
    for target in ["py", "js"] {
        let r = js(
            &shell,
            alpha,
            &format!(
                "fdc3.raiseIntent('ViewRisk', {}, {{appId: '{target}'}}).then(async (r) => ({{by: r.source.appId, result: await r.getResult()}}))",
                instrument("IBM")
            ),
        );
        assert_eq!(r, json!({ "by": target, "result": { "type": "fdc3.risk", "ticker": "IBM", "by": target } }));
    }
    js(
        &shell,
        alpha,
        "fdc3.addIntentListener('ViewChart', (c) => ({type: 'fdc3.chart', ticker: c.id.ticker})).then(() => true)",
    );
    command(
        &shell,
        alpha,
        &json!({ "to": "py", "cmd": "raise", "intent": "ViewChart", "context": instrument("A"), "app": "alpha" }),
    );
    command(
        &shell,
        alpha,
        &json!({ "to": "js", "cmd": "raise", "intent": "ViewRisk", "context": instrument("B"), "app": "py" }),
    );

    // Both native apps are among the intent's handlers, and the resolver lists them: raised with
    // no target, the dialog asks, Enter picks the first, and that native app answers.
    let apps = js(
        &shell,
        alpha,
        &format!("fdc3.findIntent('ViewRisk', {}).then(a => a.apps.map(x => x.appId).sort())", instrument("R")),
    );
    assert_eq!(apps, json!(["js", "py"]));
    js(
        &shell,
        alpha,
        &format!(
            "(window.pick = null, fdc3.raiseIntent('ViewRisk', {}).then(async (r) => window.pick = [r.source.appId, (await r.getResult()).type], e => window.pick = e.message), true)",
            instrument("R")
        ),
    );
    std::thread::sleep(Duration::from_millis(800));
    crate::fdc3::keys_in(&shell, "Tessera native desk", &["Return"]);
    let start = Instant::now();
    let picked = loop {
        let got = js(&shell, alpha, "window.pick");
        if !got.is_null() {
            break got;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "the resolver was not answered\n{}", shell.log_tail());
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(picked[0] == "py" || picked[0] == "js", "{picked}");
    assert_eq!(picked[1], "fdc3.risk", "{picked}");
    let by_py = wait_seen(
        &shell,
        alpha,
        "py raises at the page",
        "m.data.app === 'py' && (m.data.raised || m.data.raiseError)",
    );
    assert_eq!(
        (by_py["raised"].clone(), by_py["by"]["appId"].clone()),
        (json!({ "type": "fdc3.chart", "ticker": "A" }), json!("alpha")),
        "{by_py}"
    );
    let by_js =
        wait_seen(&shell, alpha, "js raises at py", "m.data.app === 'js' && (m.data.raised || m.data.raiseError)");
    assert_eq!(by_js["raised"], json!({ "type": "fdc3.risk", "ticker": "B", "by": "py" }), "{by_js}");
    assert_eq!(by_js["by"]["appId"], "py");
}

/// `tessera sign ...` in `dir`; its standard output.
fn sign(dir: &std::path::Path, args: &[&str]) -> String {
    let out =
        std::process::Command::new(tests::bin("tessera")).arg("sign").args(args).current_dir(dir).output().unwrap();
    assert!(out.status.success(), "tessera sign {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn secret(path: &std::path::Path) -> ed25519_dalek::SigningKey {
    let text = std::fs::read_to_string(path).unwrap();
    let bytes: Vec<u8> = (0..32).map(|i| u8::from_str_radix(&text.trim()[2 * i..2 * i + 2], 16).unwrap()).collect();
    ed25519_dalek::SigningKey::from_bytes(&bytes.try_into().unwrap())
}

#[test]
fn an_app_started_elsewhere_joins_with_an_it_signed_credential() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let it_public = sign(d, &["keygen", "--out", "it.key"]).trim().to_owned();
    let rogue_public = sign(d, &["keygen", "--out", "rogue.key"]).trim().to_owned();
    assert_ne!(it_public, rogue_public);
    let page = tests::fixture_page("e2e", "alpha.html", d);
    let manifest = d.join("desk.json");
    let ws_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    std::fs::write(
        &manifest,
        json!({
            "name": "Tessera credentials desk",
            "apps": [
                { "appId": "alpha", "title": "Alpha", "url": page },
                { "appId": "oms", "title": "Order manager", "type": "native" },
            ],
            "startup": ["alpha"],
            "policy": {
                "rules": [{ "apps": ["*"], "allow": ["bus.publish", "bus.subscribe"] }],
                "signing": { "trustedKeys": [{ "id": "it", "publicKey": it_public }] },
                "endpoint": { "websocket": format!("127.0.0.1:{ws_port}") },
            },
        })
        .to_string(),
    )
    .unwrap();
    let profile = d.join("profile");
    let shell = Shell::start_full(manifest.to_str().unwrap(), Some(&profile), 2048, &[], "native-credential");
    shell.wait_for("the desk starts", Duration::from_secs(60), |apps| apps.len() == 1 && running_with_page(&apps[0]));
    let alpha = instance_of(&shell, "alpha");
    wait_js(&shell, alpha, "typeof window.tessera", "\"object\"");
    // The shell does not start an app it has no program for.
    let out = shell.ctl(&["launch", "oms"]);
    assert!(!out.status.success(), "{out:?}");

    let credential = |app: &str, key: &str, expires: &str, out: &str| -> Value {
        let id = key.trim_end_matches(".key");
        let text = sign(
            d,
            &["credential", "--app", app, "--key", key, "--key-id", id, "--expires", expires, "--app-key-out", out],
        );
        serde_json::from_str(&text).unwrap()
    };
    let good = credential("oms", "it.key", "2099-01-01T00:00:00Z", "oms.key");
    let endpoint = shell.socket().with_file_name("ctl-endpoint.sock");
    // The client's reader and writer run on the runtime's own thread, between our calls.
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let connect = |c: &Value, key: &std::path::Path| {
        rt.block_on(tessera_client::Client::connect_with_credential(&endpoint, c, &secret(key)))
    };

    // Proven: the connection is that app, an instance of its own, on the bus as itself.
    let client = connect(&good, &d.join("oms.key")).unwrap();
    assert_eq!(client.app(), "oms");
    shell.wait_for("the app joins", Duration::from_secs(10), |apps| {
        apps.iter().any(|a| a["app"] == "oms" && a["kind"] == "native" && a["pid"] == std::process::id())
    });
    rt.block_on(client.publish("e2e.from_native", &json!({ "hello": "from the oms" }))).unwrap();
    assert_eq!(wait_seen(&shell, alpha, "the oms's message", "m.data.hello"), json!({ "hello": "from the oms" }));

    // Refused, each with its reason: another key than the one the credential names, a
    // credential altered, expired, signed by a key the policy does not trust, or for an app
    // that is not one of the desk's native apps.
    let mut altered = good.clone();
    altered["app"] = json!("alpha");
    let expired = credential("oms", "it.key", "2020-01-01T00:00:00Z", "old.key");
    let rogue = credential("oms", "rogue.key", "2099-01-01T00:00:00Z", "rogue-app.key");
    // A forgery that claims IT's key id.
    let mut forged = rogue.clone();
    forged["signature"]["keyId"] = json!("it");
    let web = credential("alpha", "it.key", "2099-01-01T00:00:00Z", "alpha.key");
    let ghost = credential("ghost", "it.key", "2099-01-01T00:00:00Z", "ghost.key");
    for (c, key, want) in [
        (&good, "rogue.key", "the proof does not hold"),
        (&altered, "oms.key", "does not match its content"),
        (&expired, "old.key", "expired"),
        (&rogue, "rogue-app.key", "not trusted"),
        (&forged, "rogue-app.key", "does not match its content"),
        (&web, "alpha.key", "alpha is a web app of this desk"),
        (&ghost, "ghost.key", "ghost is not an app of this desk"),
    ] {
        let e = connect(c, &d.join(key)).unwrap_err().to_string();
        assert!(e.contains(want), "{want}: {e}");
    }

    // Gone: its instance closes (the shell does not restart what it did not start).
    drop(client);
    shell.wait_for("the app leaves", Duration::from_secs(10), |apps| apps.iter().all(|a| a["app"] != "oms"));

    // The same over the WebSocket the policy opens on loopback: a credential is good there; a
    // launch token is not (no process can be named over TCP), nor is a web page (an Origin).
    let url = format!("ws://127.0.0.1:{ws_port}");
    let remote = rt
        .block_on(tessera_client::Client::connect_websocket_with_credential(&url, &good, &secret(&d.join("oms.key"))))
        .unwrap();
    assert_eq!(remote.app(), "oms");
    shell.wait_for("the app joins over the WebSocket", Duration::from_secs(10), |apps| {
        apps.iter().any(|a| a["app"] == "oms" && a["state"] == "running" && a["pid"].is_null())
    });
    rt.block_on(remote.publish("e2e.from_native", &json!({ "over": "websocket" }))).unwrap();
    assert_eq!(wait_seen(&shell, alpha, "the WebSocket message", "m.data.over"), json!({ "over": "websocket" }));
    let ws_answer = |request: tokio_tungstenite::tungstenite::http::Request<()>, first: &str| -> String {
        rt.block_on(async {
            use futures_util::{SinkExt, StreamExt};
            let (mut ws, _) = match tokio_tungstenite::connect_async(request).await {
                Ok(ok) => ok,
                Err(e) => return e.to_string(),
            };
            ws.send(tokio_tungstenite::tungstenite::Message::text(first)).await.unwrap();
            match ws.next().await {
                Some(Ok(m)) => m.into_text().map(|t| t.to_string()).unwrap_or_default(),
                other => format!("{other:?}"),
            }
        })
    };
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let token_hello = r#"{"type":"hello","payload":{"protocol":1,"token":"0011"}}"#;
    let answer = ws_answer(url.as_str().into_client_request().unwrap(), token_hello);
    assert!(answer.contains("good on the shell's Unix socket only"), "{answer}");
    let mut from_page = url.as_str().into_client_request().unwrap();
    from_page.headers_mut().insert("Origin", "https://evil.example".parse().unwrap());
    let answer = ws_answer(from_page, token_hello);
    assert!(answer.contains("403"), "{answer}");
    // The Python and Node clients over the same WebSocket, each a process of its own.
    std::fs::write(d.join("oms.json"), good.to_string()).unwrap();
    let (credential_file, key_file) = (d.join("oms.json"), d.join("oms.key"));
    let python = "import asyncio, json, sys\n\
        from tessera_client import Client\n\
        async def main():\n\
        \x20   c = await Client.connect_websocket_with_credential(sys.argv[1], json.load(open(sys.argv[2])), open(sys.argv[3]).read())\n\
        \x20   await c.publish('e2e.from_native', {'over': 'websocket', 'client': 'python', 'app': c.app})\n\
        \x20   await asyncio.sleep(1)\n\
        \x20   await c.close()\n\
        asyncio.run(main())\n";
    let node_script = "const fs = require('fs');\n\
        const [url, cred, key] = process.argv.slice(1);\n\
        require('tessera-client').connectWebSocketWithCredential(url, JSON.parse(fs.readFileSync(cred, 'utf8')), fs.readFileSync(key, 'utf8'))\n\
        \x20 .then((c) => { c.publish('e2e.from_native', { over: 'websocket', client: 'node', app: c.app }); setTimeout(() => c.close(), 1000); })\n\
        \x20 .catch((e) => { console.error(e.message); process.exit(1); });\n";
    let runs = [
        std::process::Command::new(installed("venv/bin/python"))
            .args(["-c", python, &url])
            .args([&credential_file, &key_file])
            .output()
            .unwrap(),
        std::process::Command::new(node())
            .args(["-e", node_script, &url])
            .args([&credential_file, &key_file])
            .env("NODE_PATH", installed("node_modules"))
            .output()
            .unwrap(),
    ];
    for out in &runs {
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    for client in ["python", "node"] {
        let said = wait_seen(&shell, alpha, client, &format!("m.data.client === '{client}'"));
        assert_eq!(said["app"], "oms", "{said}");
    }
    drop(remote);
    drop(shell);
    let log = audit(&profile);
    assert!(log.lines().any(|l| l.contains("\"endpoint.attach\"") && l.contains("\"oms\"")), "{log}");
    for why in ["the proof does not hold", "expired", "not trusted", "is not an app of this desk"] {
        assert!(
            log.lines().any(|l| l.contains("\"endpoint.refused\"") && l.contains(why)),
            "no refusal {why:?} in\n{log}"
        );
    }
}
