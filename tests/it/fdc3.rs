//! FDC3 2.2 end to end: the real shell with real app hosts running `tests/fixtures/fdc3`'s
//! pages, every call made by page JavaScript through `window.fdc3` (driven with `tessera ctl
//! eval`), every answer read back from the page. The resolver dialog is answered with the
//! keyboard through X, as a person would.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::e2e::{Shell, js, running_with_page, wait_js};
use crate::layout::{display_of, layout, xdotool};

fn start(name: &str) -> Shell {
    start_in(name, None)
}

fn start_in(name: &str, profile: Option<&std::path::Path>) -> Shell {
    let shell = Shell::start_full("../fdc3/fdc3.json", profile, 2048, &[], name);
    shell.wait_for("the start-up apps load", Duration::from_secs(60), |apps| {
        apps.len() == 2 && apps.iter().all(running_with_page)
    });
    for i in instances(&shell, "a").into_iter().chain(instances(&shell, "b")) {
        wait_js(&shell, i, "typeof window.fdc3 === 'object' && typeof window.got === 'object'", "true");
    }
    shell
}

fn instances(shell: &Shell, app: &str) -> Vec<u64> {
    shell.apps().iter().filter(|a| a["app"] == app).filter_map(|a| a["instance"].as_u64()).collect()
}

fn one(shell: &Shell, app: &str) -> u64 {
    let list = instances(shell, app);
    assert_eq!(list.len(), 1, "instances of {app}: {list:?}");
    list[0]
}

/// What a promise-returning call rejects with: `rejected:<message>`, or `resolved`.
fn outcome(shell: &Shell, instance: u64, call: &str) -> String {
    let v = js(shell, instance, &format!("({call}).then(() => 'resolved', (e) => 'rejected:' + e.message)"));
    v.as_str().unwrap_or_default().to_owned()
}

fn instrument(ticker: &str) -> String {
    json!({ "type": "fdc3.instrument", "id": { "ticker": ticker } }).to_string()
}

#[test]
fn channels_contexts_and_private_channels_through_the_real_shell() {
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("profile");
    let shell = start_in("fdc3-channels", Some(&profile));
    let (a, b) = (one(&shell, "a"), one(&shell, "b"));

    // getInfo: the version, the provider, and the caller's identity as the shell assigned it.
    let info = js(&shell, a, "fdc3.getInfo()");
    assert_eq!(info["fdc3Version"], "2.2");
    assert_eq!(info["provider"], "Tessera");
    assert_eq!(info["optionalFeatures"]["UserChannelMembershipAPIs"], true);
    assert_eq!(info["appMetadata"]["appId"], "a");
    assert_eq!(info["appMetadata"]["instanceId"], a.to_string());

    // getUserChannels (and the deprecated getSystemChannels): the eight recommended channels.
    let channels =
        js(&shell, a, "fdc3.getUserChannels().then(cs => cs.map(c => [c.id, c.type, c.displayMetadata.color]))");
    assert_eq!(channels.as_array().map(Vec::len), Some(8));
    assert_eq!(channels[0], json!(["fdc3.channel.1", "user", "red"]));
    assert_eq!(channels[7], json!(["fdc3.channel.8", "user", "purple"]));
    assert_eq!(js(&shell, a, "fdc3.getSystemChannels().then(cs => cs.length)"), 8);

    // joinUserChannel, getCurrentChannel; the window's channel chip follows the app.
    assert_eq!(js(&shell, a, "fdc3.getCurrentChannel()"), Value::Null);
    assert_eq!(outcome(&shell, a, "fdc3.joinUserChannel('fdc3.channel.1')"), "resolved");
    assert_eq!(js(&shell, a, "fdc3.getCurrentChannel().then(c => c.id)"), "fdc3.channel.1");
    let tiles = layout(&shell);
    let tile = tiles["panes"].as_array().unwrap().iter().find(|t| t["instance"] == a).cloned();
    assert_eq!(tile.map(|t| t["channel"].clone()), Some(json!(1)), "layout: {tiles:#}");
    assert_eq!(outcome(&shell, a, "fdc3.joinUserChannel('fdc3.channel.99')"), "rejected:NoChannelFound");

    // addContextListener + broadcast on a user channel, with the originating app.
    js(&shell, b, "fdc3.addContextListener('fdc3.instrument', (c, m) => got.push({c, m})).then(() => true)");
    js(&shell, b, "fdc3.addEventListener('userChannelChanged', (e) => events.push(e)).then(() => true)");
    assert_eq!(outcome(&shell, b, "fdc3.joinChannel('fdc3.channel.1')"), "resolved");
    wait_js(
        &shell,
        b,
        "events.map(e => e.type + ' ' + e.details.currentChannelId).join()",
        "\"userChannelChanged fdc3.channel.1\"",
    );
    assert_eq!(outcome(&shell, a, &format!("fdc3.broadcast({})", instrument("AAPL"))), "resolved");
    wait_js(&shell, b, "got.length", "1");
    let got = js(&shell, b, "got[0]");
    assert_eq!(got["c"]["id"]["ticker"], "AAPL");
    assert_eq!(got["m"]["source"], json!({ "appId": "a", "instanceId": a.to_string() }));
    // A broadcast right after joining goes out on the new channel (the page knows its channel
    // as soon as the join is answered).
    let at_once = js(
        &shell,
        a,
        &format!(
            "fdc3.joinUserChannel('fdc3.channel.3').then(() => fdc3.broadcast({})).then(() => fdc3.getUserChannels()).then(cs => cs[2].getCurrentContext()).then(c => c && c.id.ticker)",
            instrument("NOW")
        ),
    );
    assert_eq!(at_once, "NOW");
    assert_eq!(outcome(&shell, a, "fdc3.joinUserChannel('fdc3.channel.1')"), "resolved");
    // A context of another type does not reach a typed listener; a malformed one is refused.
    js(&shell, a, "fdc3.broadcast({type: 'fdc3.contact', id: {email: 'x@example.com'}}).then(() => true)");
    assert_eq!(outcome(&shell, a, "fdc3.broadcast({id: 1})"), "rejected:MalformedContext");

    // leaveCurrentChannel: nothing more arrives; joining again hands over the current context.
    assert_eq!(outcome(&shell, b, "fdc3.leaveCurrentChannel()"), "resolved");
    assert_eq!(js(&shell, b, "fdc3.getCurrentChannel()"), Value::Null);
    js(&shell, a, &format!("fdc3.broadcast({}).then(() => true)", instrument("MSFT")));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(js(&shell, b, "got.length"), 1);
    assert_eq!(outcome(&shell, b, "fdc3.joinUserChannel('fdc3.channel.1')"), "resolved");
    wait_js(&shell, b, "got.length", "2");
    assert_eq!(js(&shell, b, "got[1].c.id.ticker"), "MSFT");

    // A listener's unsubscribe stops deliveries.
    js(
        &shell,
        b,
        "fdc3.addContextListener(null, (c) => window.untyped = (window.untyped || 0) + 1).then(l => { window.l = l; return true; })",
    );
    wait_js(&shell, b, "window.untyped", "1"); // the current context on adding it
    js(&shell, b, "window.l.unsubscribe().then(() => true)");
    js(&shell, a, &format!("fdc3.broadcast({}).then(() => true)", instrument("IBM")));
    wait_js(&shell, b, "got.length", "3");
    assert_eq!(js(&shell, b, "window.untyped"), 1);

    // App channels: getOrCreateChannel, Channel.broadcast, addContextListener, getCurrentContext.
    js(
        &shell,
        b,
        "fdc3.getOrCreateChannel('orders').then(c => c.addContextListener('fdc3.order', (o) => window.orders = (window.orders || []).concat([o]))).then(() => true)",
    );
    js(
        &shell,
        a,
        "fdc3.getOrCreateChannel('orders').then(c => c.broadcast({type: 'fdc3.order', id: {orderId: 'O-1'}})).then(() => true)",
    );
    wait_js(&shell, b, "(window.orders || []).length", "1");
    assert_eq!(
        js(
            &shell,
            b,
            "fdc3.getOrCreateChannel('orders').then(c => c.getCurrentContext('fdc3.order')).then(o => o.id.orderId)"
        ),
        "O-1"
    );
    assert_eq!(
        js(&shell, b, "fdc3.getOrCreateChannel('orders').then(c => c.getCurrentContext('fdc3.trade'))"),
        Value::Null
    );
    assert_eq!(js(&shell, b, "fdc3.getOrCreateChannel('orders').then(c => c.type)"), "app");
    assert_eq!(outcome(&shell, a, "fdc3.getOrCreateChannel('fdc3.channel.2')"), "rejected:CreationFailed");
    assert_eq!(outcome(&shell, a, "fdc3.getOrCreateChannel('')"), "rejected:InvalidArguments");
    // A user channel through the Channel interface: no automatic current context.
    assert_eq!(
        js(&shell, b, "fdc3.getUserChannels().then(cs => cs[0].getCurrentContext()).then(c => c.id.ticker)"),
        "IBM"
    );

    // The deprecated one-argument addContextListener(handler) and Channel.addContextListener(handler).
    js(&shell, b, "fdc3.addContextListener((c) => window.legacy = c.id.ticker).then(() => true)");
    wait_js(&shell, b, "window.legacy", "\"IBM\""); // the channel's current context on adding it
    js(
        &shell,
        b,
        "fdc3.getOrCreateChannel('orders').then(c => c.addContextListener((o) => window.legacyOrder = o.id.orderId)).then(() => true)",
    );
    js(
        &shell,
        a,
        "fdc3.getOrCreateChannel('orders').then(c => c.broadcast({type: 'fdc3.order', id: {orderId: 'O-2'}})).then(() => true)",
    );
    wait_js(&shell, b, "window.legacyOrder", "\"O-2\"");

    // The shell sets channels too: restoring a workspace puts each instance back on its
    // channel, and the app hears of it.
    shell.ctl_ok(&["layout", "save", "linked"]);
    assert_eq!(outcome(&shell, a, "fdc3.leaveCurrentChannel()"), "resolved");
    js(&shell, a, "fdc3.addEventListener(null, (e) => events.push(e.details.currentChannelId)).then(() => true)");
    shell.ctl_ok(&["layout", "restore", "linked"]);
    wait_js(&shell, a, "events.join()", "\"fdc3.channel.1\"");
    assert_eq!(js(&shell, a, "fdc3.getCurrentChannel().then(c => c.id)"), "fdc3.channel.1");

    // Private channels: only members get in; another app asking for it by id is refused.
    let id = js(&shell, a, "fdc3.createPrivateChannel().then(p => { window.pc = p; return p.id; })");
    let id = id.as_str().unwrap().to_owned();
    assert_eq!(js(&shell, a, "pc.type"), "private");
    assert_eq!(outcome(&shell, b, &format!("fdc3.getOrCreateChannel('{id}')")), "rejected:AccessDenied");
    js(&shell, a, "pc.broadcast({type: 'fdc3.valuation', value: 1}).then(() => true)");
    assert_eq!(js(&shell, a, "pc.getCurrentContext().then(c => c.value)"), 1);
    assert_eq!(outcome(&shell, a, "pc.disconnect()"), "resolved");
    assert_eq!(outcome(&shell, a, "pc.broadcast({type: 'fdc3.valuation', value: 2})"), "rejected:AccessDenied");

    // The bus beside FDC3: a late subscriber can start from history.
    js(
        &shell,
        a,
        "[1, 2, 3].forEach(n => tessera.bus.publish('ticks.x', {n})), tessera.bus.publish('ticks.y', {n: 9}), true",
    );
    std::thread::sleep(Duration::from_millis(300));
    js(
        &shell,
        b,
        "window.ticks = [], tessera.bus.subscribe('ticks.*', (d, m) => ticks.push(m.topic + '=' + d.n), {replay: 2}), true",
    );
    wait_js(&shell, b, "ticks.slice().sort().join()", "\"ticks.x=2,ticks.x=3,ticks.y=9\"");
    js(&shell, b, "window.last = [], tessera.bus.subscribe('ticks.x', (d) => last.push(d.n), {replay: 'last'}), true");
    wait_js(&shell, b, "last.join()", "\"3\"");

    // 300 broadcasts fired without waiting: listeners get them in order, and the journal keeps
    // them in the same order, so a replay rebuilds the right current context.
    js(&shell, b, "window.burst = [], fdc3.addContextListener('test.burst', (c) => burst.push(c.n)).then(() => true)");
    js(&shell, a, "for (let n = 0; n < 300; n++) fdc3.broadcast({type: 'test.burst', n}); true");
    wait_js(&shell, b, "burst.length", "300");
    assert_eq!(js(&shell, b, "burst.every((n, i) => n === i)"), true);
    drop(shell);

    // Every broadcast went through the journal, with who sent it, and can be replayed, under the
    // shell's reserved topic (no app can see or write it).
    let out = std::process::Command::new(tests::bin("tessera"))
        .args(["journal", "replay", "--json", "--topic", "$shell.fdc3.broadcast", "--profile"])
        .arg(&profile)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let records: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|r| serde_json::from_str(r["payload"].as_str().unwrap_or("null")).unwrap_or(Value::Null))
        .collect();
    let tickers: Vec<String> = records
        .iter()
        .filter(|r| r["channelId"] == "fdc3.channel.1" && r["context"]["type"] == "fdc3.instrument")
        .map(|r| {
            format!(
                "{} from {}",
                r["context"]["id"]["ticker"].as_str().unwrap_or("?"),
                r["source"]["appId"].as_str().unwrap_or("?")
            )
        })
        .collect();
    assert_eq!(tickers, ["AAPL from a", "MSFT from a", "IBM from a"], "{records:#?}");
    assert!(records.iter().any(|r| r["channelId"] == "orders"), "app channel broadcasts are journalled too");
    let burst: Vec<u64> = records
        .iter()
        .filter(|r| r["context"]["type"] == "test.burst")
        .filter_map(|r| r["context"]["n"].as_u64())
        .collect();
    let inversions = burst.windows(2).filter(|w| w[0] > w[1]).count();
    assert_eq!((burst.len(), inversions, burst.last()), (300, 0, Some(&299)), "journal order: {burst:?}");
}

/// Presses `keys` in the shell window (the resolver dialog takes the keyboard).
fn keys(shell: &Shell, keys: &[&str]) {
    keys_in(shell, "Tessera FDC3 test desk", keys);
}

/// Presses `keys` in the shell window titled `title`.
pub(crate) fn keys_in(shell: &Shell, title: &str, keys: &[&str]) {
    let display = display_of(shell);
    let out = std::process::Command::new("xdotool")
        .args(["search", "--name", title])
        .env("DISPLAY", &display.0)
        .env("XAUTHORITY", &display.1)
        .output()
        .unwrap();
    let window = String::from_utf8_lossy(&out.stdout).lines().next().unwrap_or_default().to_owned();
    assert!(!window.is_empty(), "the shell window was not found");
    xdotool(&display, &["windowfocus", "--sync", &window]);
    for k in keys {
        std::thread::sleep(Duration::from_millis(150));
        xdotool(&display, &["key", "--window", &window, k]);
    }
}

#[test]
fn intents_open_the_resolver_and_closing_windows_through_the_real_shell() {
    let shell = start("fdc3-intents");
    let a = one(&shell, "a");

    // findIntent / findIntentsByContext from the App Directory (the manifest and appd.json).
    let found =
        js(&shell, a, "fdc3.findIntent('ViewChart').then(ai => [ai.intent.displayName, ai.apps.map(x => x.appId)])");
    assert_eq!(found, json!(["View Chart", ["chart", "chart2"]]));
    let by_context = js(
        &shell,
        a,
        &format!("fdc3.findIntentsByContext({}).then(l => l.map(ai => ai.intent.name))", instrument("X")),
    );
    assert_eq!(by_context, json!(["StartOrder", "StreamPrices", "ViewChart", "ViewResearch"]));
    let by_result = js(&shell, a, "fdc3.findIntent('StreamPrices', undefined, 'channel').then(ai => ai.apps[0].appId)");
    assert_eq!(by_result, "ticket");
    assert_eq!(outcome(&shell, a, "fdc3.findIntent('Nope')"), "rejected:NoAppsFound");
    assert_eq!(outcome(&shell, a, "fdc3.findIntentsByContext({type: 'nobody.knows'})"), "rejected:NoAppsFound");
    // getAppMetadata from appd.json; the broken record there was skipped and named in the log.
    let remote = js(&shell, a, "fdc3.getAppMetadata({appId: 'remote'})");
    assert_eq!((remote["title"].as_str(), remote["version"].as_str()), (Some("Remote Research"), Some("3.1")));
    assert_eq!(outcome(&shell, a, "fdc3.getAppMetadata({appId: 'broken'})"), "rejected:TargetAppUnavailable");
    let log = std::fs::read_to_string(tests::target_dir().join("e2e/fdc3-intents.log")).unwrap();
    assert!(log.contains("app \\\"broken\\\"") || log.contains("app \"broken\""), "the skipped record is not named");

    // raiseIntent to an app that is not running: launched, its listener awaited, the result returned.
    let order = js(
        &shell,
        a,
        &format!(
            "fdc3.raiseIntent('StartOrder', {}).then(r => r.getResult().then(o => [r.source.appId, r.intent, o.type, o.id.orderId]))",
            instrument("IBM")
        ),
    );
    assert_eq!(order, json!(["ticket", "StartOrder", "fdc3.order", "O-IBM"]));
    let ticket = one(&shell, "ticket");
    assert_eq!(
        js(&shell, a, "fdc3.findInstances({appId: 'ticket'}).then(l => l.map(i => i.instanceId))"),
        json!([ticket.to_string()])
    );
    // Again: the running instance takes it; a handler that throws is IntentHandlerRejected.
    let again =
        js(&shell, a, &format!("fdc3.raiseIntent('StartOrder', {}).then(r => r.source.instanceId)", instrument("ABC")));
    assert_eq!(again, ticket.to_string());
    assert_eq!(instances(&shell, "ticket").len(), 1);
    let failed = js(
        &shell,
        a,
        &format!(
            "fdc3.raiseIntent('StartOrder', {}).then(r => r.getResult()).then(() => 'resolved', e => e.message)",
            instrument("FAIL")
        ),
    );
    assert_eq!(failed, "IntentHandlerRejected");
    assert_eq!(
        outcome(&shell, ticket, "fdc3.addIntentListener('StartOrder', () => {})"),
        "rejected:IntentListenerConflict"
    );
    assert_eq!(
        outcome(
            &shell,
            a,
            &format!("fdc3.raiseIntent('StartOrder', {}, {{appId: 'ticket', instanceId: '999'}})", instrument("A"))
        ),
        "rejected:TargetInstanceUnavailable"
    );
    assert_eq!(
        outcome(&shell, a, &format!("fdc3.raiseIntent('StartOrder', {}, {{appId: 'nobody'}})", instrument("A"))),
        "rejected:TargetAppUnavailable"
    );
    assert_eq!(outcome(&shell, a, "fdc3.raiseIntent('StartOrder', {ticker: 'A'})"), "rejected:MalformedContext");

    // A result that is a private channel: the raiser joins it; listeners and disconnects are announced.
    let price = js(
        &shell,
        a,
        &format!(
            "fdc3.raiseIntent('StreamPrices', {}).then(r => r.getResult()).then(ch => new Promise(ok => {{ window.stream = ch; ch.addContextListener('fdc3.valuation', v => ok([ch.type, v.value])); }}))",
            instrument("IBM")
        ),
    );
    assert_eq!(price, json!(["private", 101.5]));
    // PrivateChannel.addEventListener (2.2): the ticket hears of a second listener, typed.
    js(
        &shell,
        ticket,
        "privateChannel.addEventListener('addContextListener', (e) => events.push('event ' + e.type + ' ' + e.details.contextType)).then(() => true)",
    );
    js(&shell, a, "stream.addContextListener('fdc3.position', () => {}).then(() => true)");
    wait_js(
        &shell,
        ticket,
        "events.filter(e => e.startsWith('event')).join()",
        "\"event addContextListener fdc3.valuation,event addContextListener fdc3.position\"",
    );
    // The legacy listeners (onAddContextListener, onUnsubscribe, onDisconnect) hear the same
    // (the two unsubscribes in either order, then the disconnect).
    let legacy = "(l => l.slice(0, 2).concat(l.slice(2, 4).sort(), l.slice(4)).join())(events.filter(e => !e.startsWith('event')))";
    wait_js(&shell, ticket, legacy, "\"addContextListener fdc3.valuation,addContextListener fdc3.position\"");
    js(&shell, a, "stream.disconnect().then(() => true)");
    wait_js(
        &shell,
        ticket,
        legacy,
        "\"addContextListener fdc3.valuation,addContextListener fdc3.position,unsubscribe fdc3.position,unsubscribe fdc3.valuation,disconnect\"",
    );

    // open: launched with identity assigned by the shell, its context handed to its listener.
    let opened = js(&shell, a, &format!("fdc3.open({{appId: 'chart2'}}, {})", instrument("TSLA")));
    let chart2 = one(&shell, "chart2");
    assert_eq!(opened, json!({ "appId": "chart2", "instanceId": chart2.to_string() }));
    wait_js(&shell, chart2, "got.map(g => g.ctx.id.ticker + ' from ' + g.source.appId).join()", "\"TSLA from a\"");
    assert_eq!(outcome(&shell, a, "fdc3.open({appId: 'nope'})"), "rejected:AppNotFound");
    assert_eq!(outcome(&shell, a, "fdc3.open('chart2', {bad: true})"), "rejected:MalformedContext");

    // raiseIntent with a target app: chart is launched and gets it, with the raiser as source.
    let r = js(
        &shell,
        a,
        &format!("fdc3.raiseIntent('ViewChart', {}, {{appId: 'chart'}}).then(r => r.source.appId)", instrument("NVDA")),
    );
    assert_eq!(r, "chart");
    let chart = one(&shell, "chart");
    wait_js(&shell, chart, "intents.map(i => i.ctx.id.ticker + ' from ' + i.source.appId).join()", "\"NVDA from a\"");

    // Two running charts fit: the resolver dialog asks, listing running instances in the order
    // they started (chart2 was opened first); Down + Enter picks the second, chart.
    assert!(chart2 < chart);
    js(
        &shell,
        a,
        &format!(
            "(window.pick = fdc3.raiseIntent('ViewChart', {}).then(r => r.source.appId, e => e.message), true)",
            instrument("AMD")
        ),
    );
    std::thread::sleep(Duration::from_millis(800));
    keys(&shell, &["Down", "Return"]);
    wait_js(&shell, a, "window.pick", "\"chart\"");
    wait_js(&shell, chart, "intents.map(i => i.ctx.id.ticker).join()", "\"NVDA,AMD\"");
    // raiseIntentForContext with a target app; raiseIntent naming the app the pre-2.0 way.
    let r = js(
        &shell,
        a,
        &format!(
            "fdc3.raiseIntentForContext({}, {{appId: 'chart2'}}).then(r => [r.source.appId, r.intent])",
            instrument("QQQ")
        ),
    );
    assert_eq!(r, json!(["chart2", "ViewChart"]));
    let r = js(
        &shell,
        a,
        &format!("fdc3.raiseIntent('ViewChart', {}, 'Chart').then(r => r.source.instanceId)", instrument("SPY")),
    );
    assert_eq!(r, chart.to_string());
    wait_js(&shell, chart, "intents.map(i => i.ctx.id.ticker).join()", "\"NVDA,AMD,SPY\"");
    // Esc cancels: UserCancelledResolution.
    js(
        &shell,
        a,
        &format!(
            "(window.pick = fdc3.raiseIntentForContext({}).then(r => r.source.appId, e => e.message), true)",
            instrument("AMD")
        ),
    );
    std::thread::sleep(Duration::from_millis(800));
    keys(&shell, &["Escape"]);
    wait_js(&shell, a, "window.pick", "\"UserCancelledResolution\"");

    // window.close(): the instance goes from the agent at once, and from the shell.
    // (The close is queued so that the eval answers first: an eval still waiting when the
    // page goes only ends when the host has exited.)
    js(&shell, chart2, "setTimeout(() => window.close(), 0), true");
    let closing = Instant::now();
    wait_js(&shell, a, "fdc3.findInstances({appId: 'chart2'}).then(l => l.length)", "0");
    let gone_in = closing.elapsed();
    assert!(gone_in < Duration::from_millis(1500), "the agent still knew the closed instance after {gone_in:?}");
    shell.wait_for("chart2 closes itself", Duration::from_secs(10), |apps| !apps.iter().any(|x| x["app"] == "chart2"));
    assert_eq!(js(&shell, a, "fdc3.findInstances({appId: 'chart2'})"), json!([]));
}

/// A tiny HTTP/1.1 server on 127.0.0.1 for the pages in `tests/fixtures/fdc3` and an App
/// Directory (`/v2/apps`) listing them; counts the directory requests.
struct Server {
    port: u16,
    directory_hits: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Server {
    fn start() -> Self {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let directory_hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (hits, done) = (std::sync::Arc::clone(&directory_hits), std::sync::Arc::clone(&stop));
        let root = tests::workspace_root().join("tests/fixtures/fdc3");
        let page = |app: &str, intents: Value| {
            json!({
                "appId": app, "title": format!("Web {app}"), "type": "web",
                "details": { "url": format!("http://127.0.0.1:{port}/app.html?app={app}") },
                "interop": { "intents": { "listensFor": intents } },
            })
        };
        let directory = json!({ "applications": [
            page("web1", json!({})),
            page("web2", json!({ "ViewChart": { "contexts": ["fdc3.instrument"] } })),
            { "appId": "bad", "title": "Bad", "type": "web", "details": { "url": 42 } },
        ], "message": "OK" })
        .to_string();
        std::thread::spawn(move || {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let Ok((stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                stream.set_nonblocking(false).unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).map_or(true, |n| n == 0) || h == "\r\n" {
                        break;
                    }
                }
                let path = line.split_whitespace().nth(1).unwrap_or("/").split('?').next().unwrap_or("/").to_owned();
                let (status, kind, body) = match path.as_str() {
                    "/v2/apps" => {
                        hits.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        ("200 OK", "application/json", directory.clone().into_bytes())
                    }
                    "/app.html" | "/app.js" => {
                        let kind = if path.ends_with(".js") { "text/javascript" } else { "text/html" };
                        ("200 OK", kind, std::fs::read(root.join(&path[1..])).unwrap())
                    }
                    _ => ("404 Not Found", "text/plain", b"not found".to_vec()),
                };
                let mut stream = stream;
                let head = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(&body));
            }
        });
        Self { port, directory_hits, stop }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

#[test]
fn web_apps_from_an_http_app_directory_get_identity_at_launch_and_can_close_themselves() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("desk.json");
    let app_page = tests::fixture_page("fdc3", "app.html", dir.path());
    std::fs::write(
        &manifest,
        json!({
            "name": "Tessera FDC3 test desk",
            "appDirectory": format!("http://127.0.0.1:{}/v2/apps", server.port),
            "apps": [{ "appId": "a", "title": "App A", "url": app_page }],
            "startup": ["a"],
            "policy": { "rules": [{ "apps": ["*"], "allow": ["fdc3.broadcast", "fdc3.raiseIntent", "fdc3.open"] }] },
        })
        .to_string(),
    )
    .unwrap();
    let profile = dir.path().join("profile");
    let manifest_arg = manifest.to_str().unwrap();
    {
        let shell = Shell::start_full(manifest_arg, Some(&profile), 2048, &[], "fdc3-http");
        shell.wait_for("app a loads", Duration::from_secs(60), |apps| {
            apps.len() == 1 && apps.iter().all(running_with_page)
        });
        let a = one(&shell, "a");
        wait_js(&shell, a, "typeof window.fdc3", "\"object\"");
        assert_eq!(server.directory_hits.load(std::sync::atomic::Ordering::Relaxed), 1);

        // open: the shell launches the directory's URL with the preload, and says who it is.
        let opened = js(&shell, a, "fdc3.open({appId: 'web1'})");
        let web1 = one(&shell, "web1");
        assert_eq!(opened, json!({ "appId": "web1", "instanceId": web1.to_string() }));
        shell.wait_for("web1 loads", Duration::from_secs(30), |apps| {
            apps.iter().filter(|x| running_with_page(x)).count() == 2
        });
        let url = shell.app(web1)["url"].as_str().unwrap_or_default().to_owned();
        assert!(url.starts_with(&format!("http://127.0.0.1:{}/app.html", server.port)), "{url}");
        wait_js(&shell, web1, "typeof window.fdc3", "\"object\"");
        // Its identity is the one the shell gave it, whatever its URL says.
        let me = js(&shell, web1, "fdc3.getInfo().then(i => i.appMetadata)");
        assert_eq!(
            me,
            json!({ "appId": "web1", "instanceId": web1.to_string(), "title": "Web web1", "name": "Web web1" })
        );

        // raiseIntent to a directory app that is not running: launched, listener awaited.
        let r =
            js(&shell, a, &format!("fdc3.raiseIntent('ViewChart', {}).then(r => r.source.appId)", instrument("AAPL")));
        assert_eq!(r, "web2");
        let web2 = one(&shell, "web2");
        wait_js(
            &shell,
            web2,
            "intents.map(i => i.ctx.id.ticker + ' from ' + i.source.appId).join()",
            "\"AAPL from a\"",
        );

        // An app closing itself leaves the shell and the agent.
        let _ = shell.ctl(&["eval", &web1.to_string(), "window.close()"]);
        shell.wait_for("web1 closes itself", Duration::from_secs(10), |apps| !apps.iter().any(|x| x["app"] == "web1"));
        assert_eq!(js(&shell, a, "fdc3.findInstances({appId: 'web1'})"), json!([]));
        // The record with a bad URL was skipped and named.
        assert_eq!(outcome(&shell, a, "fdc3.getAppMetadata({appId: 'bad'})"), "rejected:TargetAppUnavailable");
        let log = std::fs::read_to_string(tests::target_dir().join("e2e/fdc3-http.log")).unwrap();
        assert!(log.contains("\\\"bad\\\"") || log.contains("\"bad\""), "the skipped record is not named in the log");
    }
    // With the server gone, the next start uses the copy kept in the profile.
    drop(server);
    std::thread::sleep(Duration::from_millis(100));
    let shell = Shell::start_full(manifest_arg, Some(&profile), 2048, &[], "fdc3-http-offline");
    shell.wait_for("the desk comes back", Duration::from_secs(60), |apps| {
        apps.iter().any(|x| x["app"] == "a" && running_with_page(x))
    });
    let a = instances(&shell, "a")[0];
    wait_js(&shell, a, "typeof window.fdc3", "\"object\"");
    let found = js(&shell, a, "fdc3.findIntent('ViewChart').then(ai => ai.apps.map(x => x.appId))");
    assert_eq!(found, json!(["web2"]));
}

/// A page's FDC3 requests are answered as the replies to their posts (WebKit's script messages
/// with a reply): what reaches that handler without the page's token (a page script or a frame
/// posting to it directly) is refused, its promise rejected, and nothing goes to the agent;
/// answers and the events that follow them keep their order.
#[test]
fn requests_answered_as_replies_refuse_forgeries_and_keep_their_order() {
    let shell = start("fdc3-replies");
    let (a, b) = (one(&shell, "a"), one(&shell, "b"));
    assert_eq!(js(&shell, a, "typeof window.webkit.messageHandlers.tesseraRequest"), "object");
    let ready = js(
        &shell,
        b,
        "(async () => {
            window.heard = [];
            const ch = await fdc3.getOrCreateChannel('replies');
            await ch.addContextListener('t.forged', (ctx) => heard.push(ctx.n));
            return true;
        })()",
    );
    assert_eq!(ready, true);
    let forged = |body: &str| {
        let call = format!(
            "window.webkit.messageHandlers.tesseraRequest.postMessage({body}).then((v) => 'answered: ' + v, (e) => 'refused: ' + e)"
        );
        js(&shell, a, &call).as_str().unwrap_or_default().to_owned()
    };
    let request = json!({
        "type": "broadcastRequest",
        "payload": { "channelId": "replies", "context": { "type": "t.forged", "n": 1 } },
        "meta": { "requestUuid": "forged-1", "timestamp": "2026-01-01T00:00:00.000Z" }
    })
    .to_string();
    // Without the token, as text, as an object, as nothing.
    for body in [Value::String(request.clone()).to_string(), request.clone(), "undefined".to_owned(), "''".to_owned()] {
        let said = forged(&body);
        assert!(said.starts_with("refused"), "{body}: {said}");
    }
    // The page's own requests still go, and are answered.
    assert_eq!(
        outcome(&shell, a, "fdc3.getOrCreateChannel('replies').then(c => c.broadcast({type: 't.forged', n: 2}))"),
        "resolved"
    );
    wait_js(&shell, b, "heard.join()", "\"2\"");
    let log = std::fs::read_to_string(tests::target_dir().join("e2e/fdc3-replies.log")).unwrap();
    assert!(log.contains("ignored a message without the page's token"), "the forgeries are not accounted for");

    // Order: an app opened with a context gets its listener's answer (a reply) and the context
    // (a script) from one decision of the agent; the context is not lost to a script run before
    // the page saw that answer.
    let opened = js(&shell, a, &format!("fdc3.open({{appId: 'chart'}}, {})", instrument("ORDR")));
    let chart = one(&shell, "chart");
    assert_eq!(opened["instanceId"], chart.to_string());
    wait_js(&shell, chart, "got.map(g => g.ctx.id.ticker).join()", "\"ORDR\"");

    // Order: a listener added while another app broadcasts without pause hears every
    // broadcast after its answer (a reply) came, none lost to a script run before the page saw
    // that answer, and in order.
    let streaming = js(
        &shell,
        b,
        "(window.streamed = (async () => {
            const ch = await fdc3.getOrCreateChannel('order');
            for (let i = 0; i < 6000; i++) {
                ch.broadcast({ type: 't.order', n: i });
                if (i % 10 === 9) await new Promise((r) => setTimeout(r, 1));
            }
            return 'done';
        })(), true)",
    );
    assert_eq!(streaming, true);
    let listening = js(
        &shell,
        a,
        "(async () => {
            const ch = await fdc3.getOrCreateChannel('order');
            window.got = [];
            await ch.addContextListener('t.order', (ctx) => got.push(ctx.n));
            return got.length;
        })()",
    );
    assert!(listening.as_u64().is_some(), "{listening}");
    assert_eq!(js(&shell, b, "streamed"), "done");
    wait_js(&shell, a, "got.length > 0 && got[got.length - 1] === 5999", "true");
    let gaps = js(&shell, a, "got.filter((n, i) => i > 0 && n !== got[i - 1] + 1).length");
    assert_eq!(
        gaps,
        0,
        "broadcasts after the listener's answer were lost or reordered: {}",
        js(&shell, a, "got.slice(0, 20)")
    );
}

/// Issue 16: an FDC3 round trip between two real pages (an app channel's broadcast answered
/// by a broadcast) against a bus round trip (a publish answered by a publish), in one run, in
/// alternating blocks so both see the same machine. The figures go to
/// `target/e2e/fdc3-round-trip.json` and BENCHMARKS.md; the bound here is loose, for a path
/// that got a relay or a parse longer, not a benchmark.
#[test]
fn an_fdc3_round_trip_costs_about_what_a_bus_round_trip_costs() {
    let shell = start("fdc3-round-trip");
    let (a, b) = (one(&shell, "a"), one(&shell, "b"));
    // B answers each ping on the bus and on the app channel.
    let ready = js(
        &shell,
        b,
        "(async () => {
            tessera.bus.subscribe('rt.ping', (d) => tessera.bus.publish('rt.pong', d));
            const ch = await fdc3.getOrCreateChannel('rt');
            await ch.addContextListener('rt.ping', (ctx) => ch.broadcast({ type: 'rt.pong', n: ctx.n }));
            return true;
        })()",
    );
    assert_eq!(ready, true);
    let blocks = 8;
    let per_block = 250;
    let figures = js(
        &shell,
        a,
        &format!(
            "(async () => {{
            const ch = await fdc3.getOrCreateChannel('rt');
            let waiting = null;
            const answered = () => {{ const w = waiting; waiting = null; if (w) w(); }};
            tessera.bus.subscribe('rt.pong', answered);
            await ch.addContextListener('rt.pong', answered);
            const once = (send) => new Promise((res) => {{ waiting = res; send(); }});
            const kinds = {{
                bus: (n) => once(() => tessera.bus.publish('rt.ping', {{ n }})),
                fdc3: (n) => once(() => ch.broadcast({{ type: 'rt.ping', n }})),
            }};
            // Until both answer (the subscriptions take effect in the shell a moment later).
            const sleep = (ms) => new Promise((res) => setTimeout(res, ms));
            for (const kind of Object.keys(kinds)) {{
                let ok = 0;
                for (let i = 0; ok < 20 && i < 200; i++) {{
                    const r = await Promise.race([kinds[kind](i).then(() => true), sleep(250).then(() => false)]);
                    ok = r ? ok + 1 : 0;
                }}
                if (ok < 20) return 'no answer on ' + kind;
            }}
            const ms = {{ bus: [], fdc3: [] }};
            for (let block = 0; block < {blocks}; block++) {{
                for (const kind of (block % 2 ? ['fdc3', 'bus'] : ['bus', 'fdc3'])) {{
                    const t0 = performance.now();
                    for (let i = 0; i < {per_block}; i++) await kinds[kind](i);
                    ms[kind].push((performance.now() - t0) / {per_block});
                }}
            }}
            return ms;
        }})()"
        ),
    );
    let mean = |kind: &str| -> f64 {
        let list = figures[kind].as_array().unwrap_or_else(|| panic!("no {kind} figures: {figures}"));
        list.iter().filter_map(Value::as_f64).sum::<f64>() / list.len() as f64
    };
    let (bus, fdc3) = (mean("bus"), mean("fdc3"));
    let ratio = fdc3 / bus;
    let report = json!({
        "round_trips_each": blocks * per_block,
        "bus_ms_mean": bus,
        "fdc3_ms_mean": fdc3,
        "ratio": ratio,
        "blocks": figures,
    });
    let out = tests::target_dir().join("e2e").join("fdc3-round-trip.json");
    std::fs::write(&out, serde_json::to_vec_pretty(&report).unwrap()).unwrap();
    eprintln!("round trips between two pages: {report}");
    // Measured at 1.5-1.7x before the agent ran on the connection's task and answers became
    // replies, 1.0-1.3x since (release; BENCHMARKS.md); 2.5x is a path that grew another relay
    // or parse, not noise.
    assert!(ratio < 2.5, "an FDC3 round trip costs {ratio:.2}x a bus round trip: {report}");
}
