//! The diagnostics bundle IT asks a user for (issue 20, item 5): `tessera diag bundle` beside a
//! running shell whose vault holds a link token, whose pages publish a secret and whose shell
//! panicked once (`tessera diag panic`): the tar.gz holds the versions, health, apps, the
//! policy (its check said), the log (JSON lines), the crash report and a README, and the
//! planted secrets nowhere.

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use tests::bin;

use crate::e2e::{Shell, instance_of, js, running_with_page};

const TOKEN: &str = "planted-link-token-7f3a9c";
const PAYLOAD: &str = "planted-payload-secret-41b2";

#[test]
fn a_bundle_holds_what_it_should_and_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("profile");
    tests::vault_put(&profile, "link", "nats", TOKEN);
    let page = tests::fixture_page("fdc3", "app.html", dir.path());
    let manifest = dir.path().join("desk.json");
    std::fs::write(
        &manifest,
        json!({ "name": "Diag desk", "apps": [{ "appId": "a", "url": page }], "startup": ["a"] }).to_string(),
    )
    .unwrap();
    // The link's cluster is not there: the shell keeps trying with the token, and says so.
    let policy = dir.path().join("policy.json");
    std::fs::write(
        &policy,
        json!({
            "link": {
                "desk": "diag", "servers": ["nats://127.0.0.1:9"], "tokenSecret": "nats", "replicas": 1,
                "groups": [{ "name": "g", "desks": ["diag", "other"], "bus": [{ "pattern": "orders.#" }] }],
            },
            "rules": [{ "apps": ["*"], "allow": ["bus.publish", "bus.subscribe"] }],
        })
        .to_string(),
    )
    .unwrap();
    let env = [("TESSERA_POLICY", policy.to_str().unwrap()), ("TESSERA_KEYRING", "keyutils")];
    let shell = Shell::start_full(manifest.to_str().unwrap(), Some(&profile), 600, &env, "diag");
    shell.wait_for("the app loads", Duration::from_secs(60), |a| a.len() == 1 && a.iter().all(running_with_page));
    let a = instance_of(&shell, "a");
    js(
        &shell,
        a,
        &format!(
            "tessera.bus.subscribe('orders.#', () => {{}}), tessera.bus.publish('orders.x', {{ secret: '{PAYLOAD}' }}), true"
        ),
    );

    // The shell's crash reporting, checked the way IT would: a panic on purpose.
    let panicked = Command::new(bin("tessera")).args(["diag", "panic", "--profile"]).arg(&profile).output().unwrap();
    assert_eq!(panicked.status.code(), Some(101), "{}", String::from_utf8_lossy(&panicked.stderr));

    let out = dir.path().join("bundle.tar.gz");
    let made = Command::new(bin("tessera"))
        .args(["diag", "bundle", "--out"])
        .arg(&out)
        .arg("--profile")
        .arg(&profile)
        .arg("--ctl-socket")
        .arg(&shell.socket)
        .arg("--policy")
        .arg(&policy)
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    assert_eq!(String::from_utf8_lossy(&made.stdout).trim(), out.to_str().unwrap());
    drop(shell);

    let unpacked = dir.path().join("unpacked");
    std::fs::create_dir(&unpacked).unwrap();
    assert!(Command::new("tar").arg("-xzf").arg(&out).arg("-C").arg(&unpacked).status().unwrap().success());
    let root = unpacked.join("tessera-diag");
    let read = |name: &str| std::fs::read_to_string(root.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    let json_of = |name: &str| serde_json::from_str::<Value>(&read(name)).unwrap();

    assert!(read("README.txt").contains("health.json"));
    assert_eq!(json_of("versions.json")["tessera"], env!("CARGO_PKG_VERSION"));
    let health = json_of("health.json");
    assert!(health["services"].as_array().unwrap().iter().any(|s| s["name"] == "Desk link"), "{health:#}");
    let apps = json_of("apps.json");
    assert_eq!(apps[0]["app"], "a");
    let policy = json_of("policy.json");
    assert!(policy["check"].as_str().unwrap().starts_with("valid"), "{policy:#}");
    assert_eq!(policy["policy"]["link"]["desk"], "diag");
    // The log: every line JSON, the link's trouble in it.
    let log = read("logs/tessera.log");
    assert!(log.lines().count() > 3);
    for line in log.lines() {
        serde_json::from_str::<Value>(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    }
    let crashes: Vec<_> = std::fs::read_dir(root.join("crashes")).unwrap().collect();
    assert_eq!(crashes.len(), 1);
    let crash: Value =
        serde_json::from_str(&std::fs::read_to_string(crashes[0].as_ref().unwrap().path()).unwrap()).unwrap();
    assert!(crash["message"].as_str().unwrap().contains("on purpose"), "{crash:#}");
    assert!(crash["backtrace"].as_str().unwrap().contains("diag"), "{crash:#}");

    // No secret anywhere in the bundle, nor in the profile's logs it came from.
    let grep = Command::new("grep")
        .args(["-r", "-l", "-e", TOKEN, "-e", PAYLOAD])
        .arg(&unpacked)
        .arg(profile.join("logs"))
        .output()
        .unwrap();
    assert!(grep.stdout.is_empty(), "secrets in: {}", String::from_utf8_lossy(&grep.stdout));
}
