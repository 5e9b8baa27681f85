//! Desks linked over a real three-node NATS cluster (JetStream, loopback ports): real shells,
//! each with its own profile, policy and token in its vault. What a group shares crosses, in
//! order and once; nothing else does; a desk's own messages never come back to it; a desk with
//! the wrong token gets nothing; a message over the group's limit is refused; every crossing and
//! refusal is in the audit log; a node lost mid-stream and the whole cluster down for a while
//! lose nothing and duplicate nothing.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tests::bin;

use crate::e2e::{Shell, js, wait_js};
use crate::nats::Cluster;

const TOKEN: &str = "s3cret-link-token";

/// A desk: its shell, and the directory holding its profile and policy.
struct Desk {
    shell: Shell,
    dir: tempfile::TempDir,
}

impl Desk {
    /// A shell linked as `name` to `cluster`, with `token` in its vault.
    fn start(name: &str, cluster: &Cluster, token: &str) -> Self {
        Self::start_with(name, cluster, token, false)
    }

    /// The same, with a page (the FDC3 fixture, app `chart`) on the desk.
    fn start_with(name: &str, cluster: &Cluster, token: &str, page: bool) -> Self {
        if page {
            Self::start_apps(name, cluster, token, &[json!({ "appId": "chart", "url": "app.html" })], &["chart"])
        } else {
            Self::start_apps(name, cluster, token, &[], &[])
        }
    }

    /// A linked desk with `apps` (pages of the FDC3 fixture), `startup` of them started.
    fn start_apps(name: &str, cluster: &Cluster, token: &str, apps: &[Value], startup: &[&str]) -> Self {
        Self::start_full(name, cluster, token, None, apps, startup)
    }

    /// A desk connecting as NATS user `user` with `password`.
    fn start_as(name: &str, cluster: &Cluster, user: &str, password: &str) -> Self {
        Self::start_full(name, cluster, password, Some(user), &[], &[])
    }

    fn start_full(
        name: &str,
        cluster: &Cluster,
        token: &str,
        user: Option<&str>,
        apps: &[Value],
        startup: &[&str],
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let profile = dir.path().join("profile");
        tests::vault_put(&profile, "link", "nats", token);
        Self::launch(name, dir, &desk_policy(name, &cluster.urls(), user), apps, startup)
    }

    /// Starts the shell of a desk whose profile (and vault) is in `dir`, with `policy`.
    fn launch(name: &str, dir: tempfile::TempDir, policy: &Value, apps: &[Value], startup: &[&str]) -> Self {
        let profile = dir.path().join("profile");
        let policy_file = dir.path().join("policy.json");
        std::fs::write(&policy_file, policy.to_string()).unwrap();
        let policy = policy_file;
        tests::fixture_page("fdc3", "app.html", dir.path());
        let manifest = dir.path().join("desk.json");
        std::fs::write(
            &manifest,
            json!({ "name": format!("Desk {name}"), "apps": apps, "startup": startup }).to_string(),
        )
        .unwrap();
        let env = [("TESSERA_POLICY", policy.to_str().unwrap())];
        let shell = Shell::start_full(manifest.to_str().unwrap(), Some(&profile), 600, &env, &format!("link-{name}"));
        Self { shell, dir }
    }

    fn link(&self) -> Value {
        let out = self.shell.ctl(&["link", "--json"]);
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    }

    /// Waits until the link is up and group `eq` is set up (its stream and consumer).
    fn wait_ready(&self) {
        let start = Instant::now();
        loop {
            let link = self.link();
            if link["state"] == "connected" && link["ready"].as_array().is_some_and(|r| r.contains(&json!("eq"))) {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "the link did not come up: {link}\n{}",
                self.shell.log_tail()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The page's instance, once loaded.
    fn page(&self) -> u64 {
        self.page_of("chart")
    }

    /// `app`'s first instance, once its page has loaded.
    fn page_of(&self, app: &str) -> u64 {
        self.shell.wait_for(&format!("{app}'s page loads"), Duration::from_secs(60), |apps| {
            apps.iter().any(|a| a["app"] == app && crate::e2e::running_with_page(a))
        });
        crate::e2e::instance_of(&self.shell, app)
    }

    fn publish(&self, topic: &str, data: &Value) {
        self.shell.ctl_ok(&["publish", topic, &data.to_string()]);
    }

    fn subscribe(&self, pattern: &str) -> Sub {
        Sub::start(self.shell.socket(), pattern)
    }

    /// The profile's audit log and its journal's messages on `topic`, after the shell has
    /// stopped.
    fn audit_and_journal(self, topic: &str) -> (Vec<Value>, Vec<Value>) {
        let Self { shell, dir } = self;
        drop(shell);
        let profile = dir.path().join("profile");
        let audit = Self::export_audit(&profile);
        let out = Command::new(bin("tessera"))
            .args(["journal", "replay", "--json", "--topic", topic, "--profile"])
            .arg(&profile)
            .env("TESSERA_LOG", "warn")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let journal =
            String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
        (audit, journal)
    }

    fn export_audit(profile: &Path) -> Vec<Value> {
        let out = Command::new(bin("tessera"))
            .args(["audit", "export", "--profile"])
            .arg(profile)
            .env("TESSERA_KEYRING", "keyutils")
            .env("TESSERA_LOG", "warn")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
    }

    /// The profile's audit log, after the shell has stopped.
    fn audit(self) -> Vec<Value> {
        let Self { shell, dir } = self;
        drop(shell);
        Self::export_audit(&dir.path().join("profile"))
    }
}

/// A desk's admin policy: linked as `name` to `servers` (as NATS user `user`, if given).
fn desk_policy(name: &str, servers: &[String], user: Option<&str>) -> Value {
    json!({
        "link": {
            "desk": name,
            "servers": servers,
            "tokenSecret": "nats",
            "user": user,
            "replicas": 3,
            "groups": [
                {
                    "name": "eq", "desks": ["alice", "bob", "carol"], "bus": [{ "pattern": "orders.#" }],
                    "userChannels": ["fdc3.channel.1"], "appChannels": ["desk.orders"],
                    "intents": ["StartOrder", "ViewChart"], "maxMessageBytes": 1024,
                },
                { "name": "fx", "desks": ["dave"], "bus": [{ "pattern": "#" }] },
            ],
        },
        "rules": [{ "apps": ["*"], "allow": ["fdc3.broadcast", "fdc3.raiseIntent", "fdc3.appChannel"] }],
    })
}

/// `tessera ctl subscribe`, its messages collected.
struct Sub {
    child: Child,
    got: Arc<Mutex<Vec<Value>>>,
}

impl Sub {
    fn start(socket: &Path, pattern: &str) -> Self {
        let mut child = Command::new(bin("tessera"))
            .args(["ctl", "--ctl-socket"])
            .arg(socket)
            .args(["subscribe", pattern])
            .env("TESSERA_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let out = child.stdout.take().unwrap();
        let sink = Arc::clone(&got);
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    sink.lock().unwrap().push(v);
                }
            }
        });
        // The subscription is in place once the shell has answered; give it a moment.
        std::thread::sleep(Duration::from_millis(300));
        Self { child, got }
    }

    /// The `n` field of each message on `topic`, in arrival order.
    fn ns(&self, topic: &str) -> Vec<u64> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|m| m["topic"] == topic)
            .filter_map(|m| m["data"]["n"].as_u64())
            .collect()
    }

    fn topics(&self) -> Vec<String> {
        self.got.lock().unwrap().iter().filter_map(|m| m["topic"].as_str().map(str::to_owned)).collect()
    }

    /// Waits until `topic` has `n` messages (or the time is up); returns their `n`s.
    fn wait(&self, topic: &str, n: usize, limit: Duration) -> Vec<u64> {
        let start = Instant::now();
        while self.ns(topic).len() < n && start.elapsed() < limit {
            std::thread::sleep(Duration::from_millis(100));
        }
        self.ns(topic)
    }
}

impl Drop for Sub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn actions(audit: &[Value], action: &str) -> Vec<Value> {
    audit.iter().filter(|e| e["action"] == action).cloned().collect()
}

#[test]
fn linked_desks_share_what_their_group_shares_once_in_order_and_nothing_else() {
    let cluster = Cluster::start(TOKEN);
    let alice = Desk::start("alice", &cluster, TOKEN);
    let bob = Desk::start("bob", &cluster, TOKEN);
    let carol = Desk::start("carol", &cluster, "not-the-token");
    // Dave's policy links it, with the right token, in another group only.
    let dave = Desk::start("dave", &cluster, TOKEN);
    alice.wait_ready();
    bob.wait_ready();

    let at_bob = bob.subscribe("#");
    let at_alice = alice.subscribe("#");
    let at_carol = carol.subscribe("#");
    let at_dave = dave.subscribe("#");
    for n in 0..20 {
        alice.publish("orders.new", &json!({ "n": n }));
    }
    alice.publish("secret.plans", &json!({ "n": 1 }));
    alice.publish("orders.big", &json!({ "n": 1, "pad": "x".repeat(2000) }));
    let got = at_bob.wait("orders.new", 20, Duration::from_secs(30));
    assert_eq!(got, (0..20).collect::<Vec<u64>>(), "bob got alice's orders out of order, twice or not at all");

    bob.publish("orders.fill", &json!({ "n": 7 }));
    assert_eq!(at_alice.wait("orders.fill", 1, Duration::from_secs(30)), [7]);
    // Nothing came back to where it started, nothing unshared or too large crossed.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(at_alice.ns("orders.new").len(), 20, "alice's own orders came back to her");
    assert_eq!(at_bob.ns("orders.fill"), [7], "bob's fill came back to him");
    assert!(!at_bob.topics().iter().any(|t| t == "secret.plans" || t == "orders.big"), "{:?}", at_bob.topics());
    // The desk with the wrong token is told why and gets nothing.
    let carols = carol.link();
    assert_ne!(carols["state"], "connected", "{carols}");
    assert!(carols["connection_error"].as_str().unwrap_or_default().contains("authorization"), "{carols}");
    assert_eq!(carols["login_refused"], true, "{carols}");
    assert!(at_carol.topics().is_empty(), "{:?}", at_carol.topics());
    let start = Instant::now();
    while dave.link()["ready"] != json!(["fx"]) {
        assert!(start.elapsed() < Duration::from_secs(30), "dave's link did not come up: {}", dave.link());
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(at_dave.topics().is_empty(), "a desk outside the group got {:?}", at_dave.topics());
    let alices = alice.link();
    assert_eq!((alices["messages_out"].as_u64(), alices["messages_in"].as_u64()), (Some(20), Some(1)), "{alices}");
    assert!(alices["refused"].as_u64().unwrap_or(0) >= 1, "{alices}");
    assert_eq!(alices["own"].as_u64(), Some(20), "{alices}");

    // A durable message stays durable across the link: in bob's journal once delivered there.
    alice.shell.ctl_ok(&["publish", "--durable", "orders.keep", &json!({ "n": 99 }).to_string()]);
    assert_eq!(at_bob.wait("orders.keep", 1, Duration::from_secs(30)), [99]);

    drop((at_alice, at_bob, at_carol, at_dave));
    let (bobs, kept) = bob.audit_and_journal("orders.keep");
    assert_eq!(kept.len(), 1, "{kept:#?}");
    assert_eq!(actions(&bobs, "link.in").len(), 21, "{bobs:#?}");
    let ins = actions(&bobs, "link.in");
    assert_eq!(ins[0]["actor"], "desk:alice");
    assert_eq!(ins[0]["object"], "orders.new");
    assert_eq!(ins[0]["details"]["group"], "eq");
    // The refused login is in carol's audit log.
    let carols = carol.audit();
    let refused = actions(&carols, "link.refused");
    assert!(
        refused
            .iter()
            .any(|e| e["object"] == "login"
                && e["details"]["reason"].as_str().unwrap_or_default().contains("authorization")),
        "{carols:#?}"
    );
    let alices = alice.audit();
    assert_eq!(actions(&alices, "link.out").len(), 21, "{alices:#?}");
    let refused = actions(&alices, "link.refused");
    assert!(
        refused.iter().any(|e| e["object"] == "orders.big"
            && e["details"]["reason"].as_str().unwrap_or_default().contains("1024-byte limit")),
        "{refused:#?}"
    );
    assert_eq!(actions(&alices, "link.in").len(), 1);
}

#[test]
fn a_lost_node_and_a_cluster_down_for_ten_seconds_lose_and_duplicate_nothing() {
    let mut cluster = Cluster::start(TOKEN);
    let alice = Desk::start("alice", &cluster, TOKEN);
    let bob = Desk::start("bob", &cluster, TOKEN);
    alice.wait_ready();
    bob.wait_ready();
    let at_bob = bob.subscribe("orders.#");

    // One node killed mid-stream.
    for n in 0..120 {
        if n == 40 {
            cluster.kill(0);
        }
        alice.publish("orders.new", &json!({ "n": n }));
    }
    let got = at_bob.wait("orders.new", 120, Duration::from_secs(60));
    assert_eq!(got, (0..120).collect::<Vec<u64>>(), "{}", alice.link());
    cluster.restart(0);

    // Every node down for ten seconds while alice keeps publishing; then back.
    for i in 0..3 {
        cluster.kill(i);
    }
    for n in 120..140 {
        alice.publish("orders.new", &json!({ "n": n }));
    }
    std::thread::sleep(Duration::from_secs(10));
    assert_eq!(at_bob.ns("orders.new").len(), 120, "something crossed with the cluster down");
    for i in 0..3 {
        cluster.restart(i);
    }
    let got = at_bob.wait("orders.new", 140, Duration::from_secs(90));
    assert_eq!(got, (0..140).collect::<Vec<u64>>(), "alice: {}\nbob: {}", alice.link(), bob.link());
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(at_bob.ns("orders.new").len(), 140, "duplicates after the cluster came back");
}

#[test]
fn a_broadcast_on_a_linked_user_channel_reaches_the_other_desk_and_a_desk_starting_takes_it() {
    let cluster = Cluster::start(TOKEN);
    let alice = Desk::start_with("alice", &cluster, TOKEN, true);
    let bob = Desk::start_with("bob", &cluster, TOKEN, true);
    alice.wait_ready();
    bob.wait_ready();
    let (a, b) = (alice.page(), bob.page());
    js(
        &bob.shell,
        b,
        "window.linked = [], fdc3.joinUserChannel('fdc3.channel.1').then(() => fdc3.addContextListener(null, (c, m) => linked.push({c, m}))).then(() => true)",
    );
    js(&alice.shell, a, "fdc3.joinUserChannel('fdc3.channel.1').then(() => true)");
    js(&alice.shell, a, "fdc3.broadcast({type: 'fdc3.instrument', id: {ticker: 'IBM'}}).then(() => true)");
    wait_js(&bob.shell, b, "linked.length", "1");
    let got = js(&bob.shell, b, "linked[0]");
    assert_eq!(got["c"]["id"]["ticker"], "IBM", "{got}");
    assert_eq!(got["m"]["source"], json!({ "appId": "chart", "desktopAgent": "alice" }), "{got}");
    // A channel the group does not share stays on its desk; nothing comes back to alice.
    js(
        &alice.shell,
        a,
        "fdc3.joinUserChannel('fdc3.channel.2').then(() => fdc3.broadcast({type: 'fdc3.instrument', id: {ticker: 'NOPE'}})).then(() => true)",
    );
    js(&bob.shell, b, "fdc3.joinUserChannel('fdc3.channel.2').then(() => true)");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(js(&bob.shell, b, "linked.length"), 1);
    let alices = alice.link();
    assert_eq!(
        (alices["messages_out"].as_u64(), alices["messages_in"].as_u64(), alices["own"].as_u64()),
        (Some(1), Some(0), Some(1)),
        "{alices}"
    );

    // A desk starting later takes the shared channel's current context.
    let carol = Desk::start_with("carol", &cluster, TOKEN, true);
    carol.wait_ready();
    let c = carol.page();
    let ticker = js(
        &carol.shell,
        c,
        "fdc3.joinUserChannel('fdc3.channel.1').then(() => fdc3.getCurrentChannel()).then(ch => ch.getCurrentContext('fdc3.instrument')).then(x => x && x.id.ticker)",
    );
    assert_eq!(ticker, "IBM");
    let bobs = bob.audit();
    let ins = actions(&bobs, "link.in");
    assert!(ins.iter().any(|e| e["object"] == "fdc3:fdc3.channel.1" && e["actor"] == "desk:alice"), "{ins:#?}");
}

#[test]
fn an_intent_raised_on_one_desk_is_handled_on_another_and_its_result_comes_back() {
    let cluster = Cluster::start(TOKEN);
    let ticket = json!({
        "appId": "ticket", "title": "Ticket", "url": "app.html",
        "interop": { "intents": { "listensFor": {
            "StartOrder": { "contexts": ["fdc3.instrument"], "resultType": "fdc3.order" },
            "StreamPrices": { "contexts": ["fdc3.instrument"], "resultType": "channel<fdc3.valuation>" },
        } } },
    });
    let alice = Desk::start_apps("alice", &cluster, TOKEN, &[json!({ "appId": "a", "url": "app.html" })], &["a"]);
    let bob = Desk::start_apps("bob", &cluster, TOKEN, &[ticket], &[]);
    alice.wait_ready();
    bob.wait_ready();
    let a = alice.page_of("a");
    // Bob's ticket is offered with the desk it runs on; the intent the group does not share is not.
    wait_js(
        &alice.shell,
        a,
        "fdc3.findIntent('StartOrder').then(ai => ai.apps.map(x => x.appId + '@' + x.desktopAgent).join(), e => e.message)",
        "\"ticket@bob\"",
    );
    assert_eq!(alice.link()["desks"], json!(["bob"]), "ctl link names the desks heard from");
    let not_shared = "fdc3.findIntent('StreamPrices').then(() => 'found', e => e.message)";
    assert_eq!(js(&alice.shell, a, not_shared), "NoAppsFound");

    // Raised at bob's ticket: bob starts it, it handles the intent, its result comes back.
    let ibm = "{type: 'fdc3.instrument', id: {ticker: 'IBM'}}";
    let r = js(
        &alice.shell,
        a,
        &format!(
            "fdc3.raiseIntent('StartOrder', {ibm}, {{appId: 'ticket', desktopAgent: 'bob'}}).then(async r => ({{source: r.source, result: await r.getResult()}}))"
        ),
    );
    assert_eq!((&r["source"]["appId"], &r["source"]["desktopAgent"]), (&json!("ticket"), &json!("bob")), "{r}");
    assert_eq!(r["result"]["id"]["orderId"], "O-IBM", "{r}");
    let t = bob.page_of("ticket");
    wait_js(&bob.shell, t, "intents.map(i => i.ctx.id.ticker).join()", "\"IBM\"");
    // Untargeted, with bob's running ticket the only target; a handler that throws is the
    // standard's error on alice's desk.
    let order = |ticker: &str| {
        js(
            &alice.shell,
            a,
            &format!(
                "fdc3.raiseIntent('StartOrder', {{type: 'fdc3.instrument', id: {{ticker: '{ticker}'}}}}).then(r => r.getResult()).then(c => c.id.orderId, e => e.message)"
            ),
        )
    };
    assert_eq!(order("MSFT"), "O-MSFT");
    assert_eq!(order("FAIL"), "IntentHandlerRejected");
    assert_eq!(bob.shell.apps().iter().filter(|x| x["app"] == "ticket").count(), 1, "the running ticket took them");

    // An app channel the group shares: alice's broadcast reaches bob's listener, with its origin.
    js(
        &bob.shell,
        t,
        "window.orders = [], fdc3.getOrCreateChannel('desk.orders').then(ch => ch.addContextListener(null, (c, m) => orders.push({c, m}))).then(() => true)",
    );
    js(
        &alice.shell,
        a,
        "fdc3.getOrCreateChannel('desk.orders').then(ch => ch.broadcast({type: 'fdc3.order', id: {orderId: 'O-1'}})).then(() => true)",
    );
    wait_js(&bob.shell, t, "orders.map(o => o.c.id.orderId + '@' + o.m.source.desktopAgent).join()", "\"O-1@alice\"");

    // The shell bar says the desk is linked (looked at by a person: target/debug/e2e/link-bar.png).
    let shot = tests::target_dir().join("e2e/link-bar.png");
    alice.shell.ctl_ok(&["screenshot", shot.to_str().unwrap()]);

    // Both sides audit the intent crossing.
    let alices = alice.audit();
    let outs = actions(&alices, "link.out");
    assert!(outs.iter().any(|e| e["object"] == "fdc3.intent:StartOrder@bob" && e["app"] == "a"), "{outs:#?}");
    let bobs = bob.audit();
    let ins = actions(&bobs, "link.in");
    assert!(ins.iter().any(|e| e["object"] == "fdc3.intent:StartOrder@bob" && e["actor"] == "desk:alice"), "{ins:#?}");
}

/// Speaks the NATS protocol as `user` to `addr`: sends `commands`, and returns the server's
/// `-ERR` lines (each permission refused is one).
fn raw_nats(addr: std::net::SocketAddr, user: &str, password: &str, commands: &[&str]) -> Vec<String> {
    use std::io::Read as _;
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let connect = json!({ "user": user, "pass": password, "verbose": false, "pedantic": false, "protocol": 1 });
    let mut text = format!("CONNECT {connect}\r\n");
    for c in commands {
        text.push_str(c);
        text.push_str("\r\n");
    }
    text.push_str("PING\r\n");
    s.write_all(text.as_bytes()).unwrap();
    let mut got = String::new();
    let mut buf = [0u8; 4096];
    let start = Instant::now();
    while !got.contains("PONG") && start.elapsed() < Duration::from_secs(10) {
        let n = s.read(&mut buf).unwrap_or(0);
        if n == 0 {
            break;
        }
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(got.contains("PONG"), "no PONG from the server: {got}");
    got.lines().filter(|l| l.starts_with("-ERR")).map(str::to_owned).collect()
}

#[test]
fn desks_held_to_their_groups_by_the_servers_permissions_link_and_can_do_no_more() {
    // The cluster's users and permissions, written by `tessera link nats-auth` from the desks'
    // own policy.
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.json");
    std::fs::write(&policy, desk_policy("alice", &["nats://127.0.0.1:1".to_owned()], Some("alice")).to_string())
        .unwrap();
    let out = Command::new(bin("tessera"))
        .args(["link", "nats-auth", "--policy"])
        .arg(&policy)
        .args(["--desk", "alice", "--desk", "bob"])
        .env("TESSERA_LOG", "warn")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let block = String::from_utf8(out.stdout).unwrap();
    let cluster =
        Cluster::start_with_auth(&block, &[("TESSERA_LINK_ALICE", "pw-alice"), ("TESSERA_LINK_BOB", "pw-bob")]);
    let alice = Desk::start_as("alice", &cluster, "alice", "pw-alice");
    let bob = Desk::start_as("bob", &cluster, "bob", "pw-bob");
    alice.wait_ready();
    bob.wait_ready();
    let at_bob = bob.subscribe("orders.#");
    for n in 0..5 {
        alice.publish("orders.new", &json!({ "n": n }));
    }
    assert_eq!(at_bob.wait("orders.new", 5, Duration::from_secs(30)), [0, 1, 2, 3, 4], "{}", alice.link());
    let start = Instant::now();
    while alice.link()["desks"] != json!(["bob"]) {
        assert!(start.elapsed() < Duration::from_secs(30), "alice never heard bob: {}", alice.link());
        std::thread::sleep(Duration::from_millis(200));
    }
    // Neither desk was refused anything it does (the servers log each refusal).
    let refused: Vec<String> = cluster.logs().lines().filter(|l| l.contains("Violation")).map(str::to_owned).collect();
    assert!(refused.is_empty(), "a desk was refused something it needs: {refused:#?}");

    // Bob's credentials, used by anything but bob's desk, can do no more than bob's desk does.
    let forbidden = [
        "SUB tessera.eq.intent.alice 1",
        "SUB _INBOX.alice.> 2",
        "SUB tessera.eq.bus.> 3",
        "PUB tessera.fx.bus.x 1\r\nx",
        "PUB tessera.eq.bus.secrets.x 1\r\nx",
        "PUB $JS.API.CONSUMER.CREATE.TESSERA_eq.desk_alice 2\r\n{}",
        "PUB $JS.API.STREAM.DELETE.TESSERA_eq 0\r\n",
    ];
    let errors = raw_nats(cluster.addr(0), "bob", "pw-bob", &forbidden);
    assert_eq!(errors.len(), forbidden.len(), "{errors:#?}");
    assert!(errors.iter().all(|e| e.contains("Permissions Violation")), "{errors:#?}");
    assert!(cluster.logs().contains("Violation"), "the servers log each refusal (what the check above relies on)");
    let allowed = ["PUB tessera.eq.bus.orders.x 1\r\nx", "SUB tessera.eq.apps 1", "SUB tessera.eq.answer.bob 2"];
    assert_eq!(raw_nats(cluster.addr(1), "bob", "pw-bob", &allowed), Vec::<String>::new());
}

/// Runs `openssl` with `args` in `dir`.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().unwrap();
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A test certificate authority and a server certificate it signed for 127.0.0.1: `ca.pem`,
/// `server.pem`, `server.key` in `dir`.
fn certificates(dir: &Path) {
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend(["-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=Tessera test CA"]);
    openssl(dir, &ca);
    let mut req = vec!["req"];
    req.extend(ec);
    req.extend(["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"]);
    openssl(dir, &req);
    std::fs::write(dir.join("ext.cnf"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n").unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
    );
}

/// A desk's profile with a new NKey made by `tessera link nkey`: the directory and the public key.
fn desk_with_nkey() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(bin("tessera"))
        .args(["link", "nkey", "--id", "nkey", "--profile"])
        .arg(dir.path().join("profile"))
        .env("TESSERA_KEYRING", "keyutils")
        .env("TESSERA_LOG", "warn")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let public = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(public.starts_with('U') && public.len() == 56, "not a user public key: {public:?}");
    (dir, public)
}

#[test]
fn desks_log_in_with_their_nkey_over_tls_and_a_desk_with_an_unknown_key_gets_nothing() {
    let certs = tempfile::tempdir().unwrap();
    certificates(certs.path());
    let (alice_dir, alice_key) = desk_with_nkey();
    let (bob_dir, bob_key) = desk_with_nkey();
    let (mallory_dir, _) = desk_with_nkey();
    let pem = |f: &str| certs.path().join(f).display().to_string();
    let auth = format!(
        "tls {{ cert_file: {:?}, key_file: {:?} }}\nauthorization {{ users: [ {{ nkey: {alice_key:?} }}, {{ nkey: {bob_key:?} }} ] }}",
        pem("server.pem"),
        pem("server.key"),
    );
    let cluster = Cluster::start_with_auth(&auth, &[]);
    let tls: Vec<String> = cluster.urls().iter().map(|u| u.replace("nats://", "tls://")).collect();
    let policy = |name: &str| {
        let mut p = desk_policy(name, &tls, None);
        let link = p["link"].as_object_mut().unwrap();
        link.remove("tokenSecret");
        link.insert("nkeySecret".into(), json!("nkey"));
        link.insert("caFile".into(), json!(pem("ca.pem")));
        p
    };
    let alice = Desk::launch("alice", alice_dir, &policy("alice"), &[], &[]);
    let bob = Desk::launch("bob", bob_dir, &policy("bob"), &[], &[]);
    let mallory = Desk::launch("carol", mallory_dir, &policy("carol"), &[], &[]);
    alice.wait_ready();
    bob.wait_ready();
    let at_bob = bob.subscribe("orders.#");
    let at_mallory = mallory.subscribe("orders.#");
    for n in 0..3 {
        alice.publish("orders.new", &json!({ "n": n }));
    }
    assert_eq!(at_bob.wait("orders.new", 3, Duration::from_secs(30)), [0, 1, 2]);
    let link = alice.link();
    assert!(link["server"].as_str().is_some_and(|s| s.starts_with("127.0.0.1:")), "{link}");
    assert!(at_mallory.ns("orders.new").is_empty());
    let m = mallory.link();
    assert_ne!(m["state"], "connected", "{m}");
    let why = m["connection_error"].as_str().unwrap_or_default().to_lowercase();
    assert!(why.contains("authorization") || why.contains("auth"), "{m}");
    // A client that does not trust the test authority is refused by TLS itself.
    let plain = raw_tls_refused(cluster.addr(0));
    assert!(plain, "the servers took a client without TLS");
}

/// Whether a client speaking plain NATS (no TLS) to a TLS-only server is refused.
fn raw_tls_refused(addr: std::net::SocketAddr) -> bool {
    use std::io::Read as _;
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 4096];
    let n = s.read(&mut buf).unwrap_or(0);
    let info = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(info.contains("\"tls_required\":true"), "{info}");
    let _ = s.write_all(b"CONNECT {\"verbose\":false}\r\nPING\r\n");
    let mut got = String::new();
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            break;
        }
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    !got.contains("PONG")
}

#[test]
fn the_resolver_offers_another_desks_app_says_where_it_runs_and_sends_the_intent_there() {
    let cluster = Cluster::start(TOKEN);
    let chart = json!({
        "appId": "chart", "title": "Chart", "url": "app.html",
        "interop": { "intents": { "listensFor": { "ViewChart": { "contexts": ["fdc3.instrument"] } } } },
    });
    let a = json!({ "appId": "a", "url": "app.html" });
    let alice = Desk::start_apps("alice", &cluster, TOKEN, &[a, chart.clone()], &["a"]);
    let bob = Desk::start_apps("bob", &cluster, TOKEN, &[chart], &[]);
    alice.wait_ready();
    bob.wait_ready();
    let a = alice.page_of("a");
    wait_js(
        &alice.shell,
        a,
        "fdc3.findIntent('ViewChart').then(ai => ai.apps.map(x => x.appId + '@' + (x.desktopAgent || 'here')).join(), e => e.message)",
        "\"chart@here,chart@bob\"",
    );
    // Two charts take it, this desk's and bob's: the resolver asks, listing bob's second.
    js(
        &alice.shell,
        a,
        "(window.pick = fdc3.raiseIntent('ViewChart', {type: 'fdc3.instrument', id: {ticker: 'AMD'}}).then(r => r.source.appId + '@' + r.source.desktopAgent, e => e.message), true)",
    );
    std::thread::sleep(Duration::from_millis(800));
    // Looked at by a person: the resolver, saying "on desk bob" (target/debug/e2e/link-resolver.png).
    let shot = tests::target_dir().join("e2e/link-resolver.png");
    alice.shell.ctl_ok(&["screenshot", shot.to_str().unwrap()]);
    crate::fdc3::keys_in(&alice.shell, "Desk alice", &["Down", "Return"]);
    wait_js(&alice.shell, a, "window.pick", "\"chart@bob\"");
    // Bob's desk started its chart, which got the intent from alice's app.
    let c = bob.page_of("chart");
    wait_js(
        &bob.shell,
        c,
        "intents.map(i => i.ctx.id.ticker + ' from ' + i.source.appId + '@' + i.source.desktopAgent).join()",
        "\"AMD from a@alice\"",
    );
    assert!(alice.shell.apps().iter().all(|x| x["app"] != "chart"), "alice's own chart was not started");
}

/// A desk's profile with `creds` (a NATS credentials file) in its vault as entry `creds`.
fn desk_with_creds(creds: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    tests::vault_put(&dir.path().join("profile"), "link", "creds", creds);
    dir
}

#[test]
fn desks_log_in_with_a_user_jwt_in_operator_mode_and_one_from_an_unknown_account_gets_nothing() {
    let operator = crate::nats::Operator::new();
    let cluster = Cluster::start_with_auth(&operator.config, &[]);
    let policy = |name: &str| {
        let mut p = desk_policy(name, &cluster.urls(), None);
        let link = p["link"].as_object_mut().unwrap();
        link.remove("tokenSecret");
        link.insert("credsSecret".into(), json!("creds"));
        p
    };
    let alice = Desk::launch("alice", desk_with_creds(&operator.user_creds("alice", true)), &policy("alice"), &[], &[]);
    let bob = Desk::launch("bob", desk_with_creds(&operator.user_creds("bob", true)), &policy("bob"), &[], &[]);
    let mallory =
        Desk::launch("carol", desk_with_creds(&operator.user_creds("carol", false)), &policy("carol"), &[], &[]);
    alice.wait_ready();
    bob.wait_ready();
    let at_bob = bob.subscribe("orders.#");
    let at_mallory = mallory.subscribe("orders.#");
    for n in 0..3 {
        alice.publish("orders.new", &json!({ "n": n }));
    }
    assert_eq!(at_bob.wait("orders.new", 3, Duration::from_secs(30)), [0, 1, 2], "{}", alice.link());
    assert!(at_mallory.ns("orders.new").is_empty());
    let m = mallory.link();
    assert_ne!(m["state"], "connected", "{m}");
    assert_eq!(m["login_refused"], true, "{m}");
}
