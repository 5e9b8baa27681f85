//! `tessera-native-probe`: a native app for the end-to-end tests, built on `tessera-client`.
//! Launched by the shell from a manifest, it joins the bus and FDC3 and does what it is told on
//! `native.ctl`, reporting on `e2e.from_native` (which the test desk's pages listen to):
//! - echoes what arrives on `native.in`;
//! - serves `native.svc` (`double`);
//! - joins the red channel and reports every context it sees there;
//! - handles the intent `ViewRisk` with a `fdc3.risk` context;
//! - commands (for every probe, or the one `to` names): `broadcast`, `raise`, `request`,
//!   `publish`, `flood`, `crash`, `hang`, `allocate` (`mib`), `spin`, `save` (`state`: its
//!   workspace state; it reports what it was given when it starts).

use std::time::Duration;

use serde_json::{Value, json};
use tessera_client::Client;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("tessera-native-probe: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let client = Client::from_env().await?;
    let fdc3 = client.fdc3();
    let mut input = client.subscribe("native.in").await?;
    let mut ctl = client.subscribe("native.ctl").await?;
    let mut svc = client.serve("native.svc", &["double"]).await?;
    let mut refusals = client.refusals();
    let mut directs = client.directs();
    fdc3.join_user_channel("fdc3.channel.1").await?;
    let mut contexts = fdc3.add_context_listener(None, None).await?;
    let mut intents = fdc3.add_intent_listener("ViewRisk").await?;
    let out = |data: Value| {
        let client = client.clone();
        async move { client.publish("e2e.from_native", &data).await }
    };
    out(json!({ "ready": client.app(), "instance": client.instance(), "state": client.state() })).await?;
    loop {
        tokio::select! {
            Some(m) = input.recv() => out(json!({ "echo": m.data(), "app": client.app() })).await?,
            Some(call) = svc.next() => {
                let n = call.data["n"].as_i64().unwrap_or(0);
                call.respond(Ok(json!(n * 2))).await?;
            }
            Some((context, meta)) = contexts.recv() => out(json!({ "context": context, "source": meta["source"] })).await?,
            Some(event) = intents.next() => {
                let ticker = event.context["id"]["ticker"].clone();
                let source = event.source.clone();
                event.respond(Ok(Some(json!({ "type": "fdc3.risk", "ticker": ticker, "var": 1250 })))).await?;
                out(json!({ "intent": "ViewRisk", "from": source })).await?;
            }
            Some(r) = refusals.recv() => out(json!({ "refused": r.context, "error": r.error })).await?,
            Some(d) = directs.recv() => out(json!({ "direct": d.data, "from": d.from })).await?,
            Some(m) = ctl.recv() => command(&client, &m.data()).await?,
            why = client.closed() => {
                // An app that does not watch its connection (`PROBE_STAY`): it lives on.
                if std::env::var_os("PROBE_STAY").is_some() {
                    std::future::pending::<()>().await;
                }
                return Err(why.into());
            }
        }
    }
}

async fn command(client: &Client, c: &Value) -> Result<(), Box<dyn std::error::Error>> {
    let fdc3 = client.fdc3();
    let report = |data: Value| async move { client.publish("e2e.from_native", &data).await };
    // A command for another app is not this one's.
    if c["to"].as_str().is_some_and(|to| to != client.app()) {
        return Ok(());
    }
    match c["cmd"].as_str() {
        Some("broadcast") => {
            if let Err(e) = fdc3.broadcast(&c["context"]).await {
                report(json!({ "broadcastError": e.to_string() })).await?;
            }
        }
        Some("raise") => {
            let result = match fdc3
                .raise_intent(c["intent"].as_str().unwrap_or_default(), &c["context"], c["app"].as_str())
                .await
            {
                Ok(resolution) => {
                    let source = resolution.source.clone();
                    match resolution.result().await {
                        Ok(r) => json!({ "raised": r, "by": source }),
                        Err(e) => json!({ "raiseError": e.to_string() }),
                    }
                }
                Err(e) => json!({ "raiseError": e.to_string() }),
            };
            report(result).await?;
        }
        Some("request") => {
            let got = client
                .request(
                    c["service"].as_str().unwrap_or_default(),
                    c["action"].as_str().unwrap_or_default(),
                    &c["data"],
                    Duration::from_secs(5),
                )
                .await;
            report(match got {
                Ok(v) => json!({ "requested": v }),
                Err(e) => json!({ "requestError": e.to_string() }),
            })
            .await?;
        }
        Some("publish") => client.publish(c["topic"].as_str().unwrap_or_default(), &c["data"]).await?,
        Some("crash") => std::process::exit(3),
        Some("save") => {
            client.save_state(&c["state"]).await?;
            report(json!({ "saved": c["state"] })).await?;
        }
        // Takes `mib` MiB, every page touched, and keeps it.
        Some("allocate") => {
            let mib = usize::try_from(c["mib"].as_u64().unwrap_or(0)).unwrap_or(0);
            std::mem::forget(vec![1u8; mib << 20]);
            report(json!({ "allocated": mib })).await?;
        }
        // Burns a core on a thread of its own (pings are still answered).
        Some("spin") => {
            std::thread::spawn(|| {
                loop {
                    std::hint::black_box(std::time::Instant::now());
                }
            });
        }
        // Blocks its only thread: it no longer answers the shell's pings.
        Some("hang") => std::thread::sleep(Duration::from_secs(120)),
        Some("flood") => {
            let n = c["n"].as_u64().unwrap_or(0);
            let start = std::time::Instant::now();
            for i in 0..n {
                client.publish("native.flood", &json!(i)).await?;
            }
            let ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
            report(json!({ "flooded": n, "ms": ms })).await?;
        }
        _ => {}
    }
    Ok(())
}
