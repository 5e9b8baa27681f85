//! The demo desk as IT ships it (`manifests/demo.json` and its admin policy): the watchlist's
//! first StartOrder intent is something the policy says to ask about. The native dialog asks;
//! the answer is remembered across a restart, can be revoked, and the audit log holds each step.
//! The desk's native risk engine (a Python process the shell starts) turns the fill into a
//! position the blotter shows, and has it back after the restart (its state is in the session).

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::e2e::{Shell, instance_of, js, prompts, running_with_page};

fn wait_prompt(shell: &Shell) -> Value {
    let start = Instant::now();
    loop {
        if let Some(p) = prompts(shell).first() {
            return p.clone();
        }
        assert!(start.elapsed() < Duration::from_secs(15), "no prompt\n{}", shell.log_tail());
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn start(profile: &std::path::Path, name: &str) -> Shell {
    let manifest = tests::workspace_root().join("manifests/demo.json");
    let shell = Shell::start_full(manifest.to_str().unwrap(), Some(profile), 2048, &[], name);
    shell.wait_for("the demo desk loads", Duration::from_secs(90), |a| {
        a.len() == 7
            && a.iter().all(|a| if a["kind"] == "native" { a["state"] == "running" } else { running_with_page(a) })
    });
    shell
}

/// Waits until the blotter's risk bar (fed by the native risk engine) says `want`.
fn risk_shows(shell: &Shell, want: &str) -> String {
    let blotter = instance_of(shell, "blotter");
    let start = Instant::now();
    loop {
        let text = js(shell, blotter, "document.getElementById('riskText').textContent");
        let text = text.as_str().unwrap_or_default().to_owned();
        if text.contains(want) {
            return text;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the risk bar says {text:?}, not {want:?}\n{}",
            shell.log_tail()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The watchlist raises StartOrder for AAPL (as its Trade button does), without waiting.
fn trade(shell: &Shell, watchlist: u64) {
    let expr = "(window.traded = fdc3.raiseIntent('StartOrder', {type: 'fdc3.instrument', id: {ticker: 'AAPL'}}).then(r => r.source.appId, e => e.message), true)";
    js(shell, watchlist, expr);
}

fn traded(shell: &Shell, watchlist: u64) -> String {
    js(shell, watchlist, "window.traded").as_str().unwrap_or_default().to_owned()
}

#[test]
fn the_demo_desk_asks_before_the_first_trade_and_remembers() {
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("profile");
    {
        let shell = start(&profile, "demo");
        let watchlist = instance_of(&shell, "watchlist");
        trade(&shell, watchlist);
        let p = wait_prompt(&shell);
        assert_eq!(
            (p["app"].as_str(), p["permission"].as_str()),
            (Some("watchlist"), Some("fdc3.raiseIntent:StartOrder"))
        );
        std::thread::sleep(Duration::from_millis(700));
        shell.ctl_ok(&["screenshot", tests::target_dir().join("e2e/demo-consent.png").to_str().unwrap()]);
        shell.ctl_ok(&["prompt", &p["id"].to_string(), "allow-always"]);
        let start = Instant::now();
        while traded(&shell, watchlist) != "ticket" {
            assert!(start.elapsed() < Duration::from_secs(15), "the intent did not reach the ticket");
            std::thread::sleep(Duration::from_millis(50));
        }
        // The trader buys; the fill reaches the risk engine, whose figures reach the blotter.
        risk_shows(&shell, "Net");
        let ticket = instance_of(&shell, "ticket");
        js(
            &shell,
            ticket,
            "document.getElementById('qty').value = '300', document.getElementById('buy').click(), true",
        );
        let text = risk_shows(&shell, "AAPL 300");
        assert!(text.contains("VaR"), "{text}");
    }
    {
        // Remembered across a restart: no question this time; the risk engine has its book back.
        let shell = start(&profile, "demo-restart");
        risk_shows(&shell, "AAPL 300");
        let watchlist = instance_of(&shell, "watchlist");
        trade(&shell, watchlist);
        let start = Instant::now();
        while traded(&shell, watchlist) != "ticket" {
            assert!(start.elapsed() < Duration::from_secs(15), "remembered answer not used: {:?}", prompts(&shell));
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(prompts(&shell).is_empty());
        // Revoked (as Settings does): asked again; denied this time.
        shell.ctl_ok(&["grants", "revoke", "watchlist", "fdc3.raiseIntent:StartOrder"]);
        trade(&shell, watchlist);
        let p = wait_prompt(&shell);
        shell.ctl_ok(&["prompt", &p["id"].to_string(), "deny"]);
        let start = Instant::now();
        while traded(&shell, watchlist) != "AccessDenied" {
            assert!(start.elapsed() < Duration::from_secs(15), "not denied");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    // Each step is in the audit log, which verifies.
    let out = std::process::Command::new(tests::bin("tessera"))
        .args(["audit", "export", "--profile"])
        .arg(&profile)
        .env("TESSERA_LOG", "warn")
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stdout);
    for step in ["\"permission.prompt\"", "\"allow-always\"", "\"permission.revoke\"", "\"deny\""] {
        assert!(
            log.lines().any(|l| l.contains("fdc3.raiseIntent:StartOrder") && l.contains(step)),
            "no {step} in\n{log}"
        );
    }
    let verify = std::process::Command::new(tests::bin("tessera"))
        .args(["audit", "verify", "--profile"])
        .arg(&profile)
        .env("TESSERA_LOG", "warn")
        .output()
        .unwrap();
    assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stdout));
}
