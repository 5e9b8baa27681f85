//! Intents across desks: this desk's apps announced to each group that shares intents, the
//! other desks' apps handed to the shell, raises sent and taken, answers carried back. All on
//! plain NATS subjects, never kept: a raise is answered while its raiser waits or not at all
//! (the raiser's own deadline then answers it), so there is nothing to catch up on.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use broker::fdc3::DeskRaise;
use bytes::Bytes;
use futures_util::StreamExt as _;
use parking_lot::Mutex;
use policy::link::LinkGroup;
use serde_json::{Value, json};

use super::{Crossing, Ctx, Way, our_headers};
use crate::wire::{self, Local};

/// Which group each linked desk was last heard in, and when.
pub(super) type Heard = Arc<Mutex<HashMap<String, (String, Instant)>>>;

/// Something for another desk, on its way out.
pub(super) struct Outgoing {
    pub(super) subject: String,
    pub(super) body: Vec<u8>,
    pub(super) crossing: Crossing,
}

pub(super) fn local<'a>(g: &'a LinkGroup, desk: &'a str) -> Local<'a> {
    Local {
        group: &g.name,
        desk,
        user_channels: &g.user_channels,
        app_channels: &g.app_channels,
        intents: &g.intents,
        max_bytes: g.max_message_bytes as usize,
    }
}

/// The raise or answer for `desk`, ready to send, or why it cannot go.
pub(super) fn raise_out(groups: &[LinkGroup], heard: &Heard, ctx: &Ctx, raise: &DeskRaise) -> Result<Outgoing, String> {
    let group = heard.lock().get(&raise.desk).map(|(g, _)| g.clone());
    let g = group
        .and_then(|name| groups.iter().find(|g| g.name == name))
        .ok_or_else(|| format!("desk {:?} is not linked to this one", raise.desk))?;
    let body = wire::raise_body(raise, &ctx.desk);
    let topic = format!("fdc3.intent:{}@{}", raise.intent, raise.desk);
    let app = raise.source.get("appId").and_then(Value::as_str);
    if !g.intents.contains(&raise.intent) {
        return Err(format!("intent {:?} is not shared with desk {:?}", raise.intent, raise.desk));
    }
    if body.len() > g.max_message_bytes as usize {
        return Err(format!("{} bytes is over group {}'s {}-byte limit", body.len(), g.name, g.max_message_bytes));
    }
    Ok(Outgoing {
        subject: wire::fdc3::raise_subject(&g.name, &raise.desk),
        crossing: ctx.ours(Way::Out, &g.name, app, &topic, body.len(), None),
        body,
    })
}

/// An answer to a raise `desk` sent here.
pub(super) fn answer_out(
    groups: &[LinkGroup],
    heard: &Heard,
    ctx: &Ctx,
    answer: &wire::Answer,
) -> Result<Outgoing, String> {
    let group = heard.lock().get(&answer.desk).map(|(g, _)| g.clone());
    let g = group
        .and_then(|name| groups.iter().find(|g| g.name == name))
        .ok_or_else(|| format!("desk {:?} is not linked to this one", answer.desk))?;
    let mut body = wire::answer_body(&answer.request, &answer.kind, &answer.payload, &ctx.desk);
    if body.len() > g.max_message_bytes as usize {
        // Too large a result: the raiser hears there is none, rather than nothing.
        body = wire::answer_body(&answer.request, &answer.kind, &json!({ "error": "NoResultReturned" }), &ctx.desk);
    }
    let topic = format!("fdc3.{}@{}", answer.kind, answer.desk);
    Ok(Outgoing {
        subject: wire::fdc3::answer_subject(&g.name, &answer.desk),
        crossing: ctx.ours(Way::Out, &g.name, None, &topic, body.len(), None),
        body,
    })
}

/// Sends what the shell gives for other desks, in order.
pub(super) async fn send(client: async_nats::Client, mut rx: tokio::sync::mpsc::Receiver<Outgoing>, ctx: Ctx) {
    while let Some(o) = rx.recv().await {
        let headers = our_headers(&ctx, o.crossing.app.as_deref());
        match client.publish_with_headers(o.subject.clone(), headers, Bytes::from(o.body)).await {
            Ok(()) => {
                ctx.status.lock().messages_out += 1;
                ctx.audit(o.crossing).await;
            }
            Err(e) => ctx.error(format!("sending on {}: {e}", o.subject)),
        }
    }
}

/// Announces this desk's apps to the group (with `hello`, asking for the others' at once).
async fn announce(client: &async_nats::Client, g: &LinkGroup, ctx: &Ctx, hello: bool) {
    let body = wire::apps_body(&local(g, &ctx.desk), &ctx.host.apps(), hello);
    let subject = wire::fdc3::apps_subject(&g.name);
    if let Err(e) = client.publish_with_headers(subject, our_headers(ctx, None), Bytes::from(body)).await {
        ctx.error(format!("group {}: announcing this desk's apps: {e}", g.name));
    }
}

/// A group's intents: announcements, raises from other desks, answers to this desk's raises.
pub(super) async fn run(client: async_nats::Client, g: LinkGroup, ctx: Ctx, heard: Heard) {
    let mut subjects = vec![wire::fdc3::apps_subject(&g.name)];
    // Raises and answers only where the group shares intents (a desk's NATS permissions may
    // allow no more).
    if !g.intents.is_empty() {
        subjects.push(wire::fdc3::raise_subject(&g.name, &ctx.desk));
        subjects.push(wire::fdc3::answer_subject(&g.name, &ctx.desk));
    }
    let mut subs = Vec::new();
    for s in &subjects {
        match client.subscribe(s.clone()).await {
            Ok(sub) => subs.push(sub),
            Err(e) => {
                ctx.error(format!("group {}: cannot take {s}: {e}", g.name));
                return;
            }
        }
    }
    let mut messages = futures_util::stream::select_all(subs);
    announce(&client, &g, &ctx, true).await;
    let every = Duration::from_secs(wire::fdc3::APPS_EVERY_SECS);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        tokio::select! {
            m = messages.next() => {
                let Some(m) = m else { return };
                take(&client, &g, &ctx, &heard, &m).await;
            }
            _ = tick.tick() => {
                announce(&client, &g, &ctx, false).await;
                let gone: Vec<String> = {
                    let mut heard = heard.lock();
                    let gone: Vec<String> = heard
                        .iter()
                        .filter(|(_, (group, at))| *group == g.name && at.elapsed() > every * 3)
                        .map(|(d, _)| d.clone())
                        .collect();
                    for d in &gone {
                        heard.remove(d);
                    }
                    gone
                };
                for d in gone {
                    tracing::info!(desk = %d, group = %g.name, "a linked desk left (not heard from)");
                    ctx.host.desk_apps(&d, Vec::new());
                }
            }
        }
    }
}

/// One message on the group's intent subjects.
async fn take(client: &async_nats::Client, g: &LinkGroup, ctx: &Ctx, heard: &Heard, m: &async_nats::Message) {
    let headers = m.headers.as_ref();
    let header = |name: &str| headers.and_then(|h| h.get(name)).map(async_nats::HeaderValue::as_str);
    let local = local(g, &ctx.desk);
    let subject = m.subject.as_str();
    let size = m.payload.len();
    let from = header(wire::DESK).unwrap_or("?").to_owned();
    let refused = |why: String| Crossing {
        way: Way::Refused,
        group: g.name.clone(),
        desk: from.clone(),
        user: String::new(),
        app: None,
        topic: subject.to_owned(),
        bytes: size,
        reason: Some(format!("in: {why}")),
    };
    if subject == wire::fdc3::apps_subject(&g.name) {
        match wire::inbound_apps(&local, subject, header, &m.payload) {
            Ok(None) => {}
            Ok(Some(d)) => {
                let new = heard.lock().insert(d.desk.clone(), (g.name.clone(), Instant::now())).is_none();
                if new {
                    tracing::info!(desk = %d.desk, group = %g.name, apps = d.apps.len(), "a linked desk offers its apps");
                }
                ctx.host.desk_apps(&d.desk, d.apps);
                if d.hello {
                    announce(client, g, ctx, false).await;
                }
            }
            Err(why) => ctx.audit(refused(why)).await,
        }
    } else if subject == wire::fdc3::raise_subject(&g.name, &ctx.desk) {
        match wire::inbound_raise(&local, subject, header, &m.payload) {
            Ok(None) => {}
            Ok(Some(r)) => {
                // A desk that raises is linked, even before its apps are heard.
                heard.lock().entry(r.desk.clone()).or_insert_with(|| (g.name.clone(), Instant::now()));
                ctx.status.lock().messages_in += 1;
                ctx.audit(Crossing {
                    way: Way::In,
                    group: g.name.clone(),
                    desk: r.desk.clone(),
                    user: header(wire::USER).unwrap_or_default().to_owned(),
                    app: r.source.get("appId").and_then(Value::as_str).map(str::to_owned),
                    topic: format!("fdc3.intent:{}@{}", r.intent, ctx.desk),
                    bytes: size,
                    reason: None,
                })
                .await;
                ctx.host.raise(r);
            }
            Err((why, request)) => {
                ctx.audit(refused(why)).await;
                // The raiser hears at once that nothing here takes it.
                if let Some(request) = request
                    && wire::name_ok(&from)
                {
                    let body = wire::answer_body(
                        &request,
                        "raiseIntentResponse",
                        &json!({ "error": "NoAppsFound" }),
                        &ctx.desk,
                    );
                    let subject = wire::fdc3::answer_subject(&g.name, &from);
                    let _ = client.publish_with_headers(subject, our_headers(ctx, None), Bytes::from(body)).await;
                }
            }
        }
    } else {
        match wire::inbound_answer(&local, subject, header, &m.payload) {
            Ok(None) => {}
            Ok(Some(a)) => {
                ctx.status.lock().messages_in += 1;
                ctx.audit(Crossing {
                    way: Way::In,
                    group: g.name.clone(),
                    desk: a.desk.clone(),
                    user: String::new(),
                    app: None,
                    topic: format!("fdc3.{}@{}", a.kind, ctx.desk),
                    bytes: size,
                    reason: None,
                })
                .await;
                ctx.host.answer(a);
            }
            Err(why) => ctx.audit(refused(why)).await,
        }
    }
}
