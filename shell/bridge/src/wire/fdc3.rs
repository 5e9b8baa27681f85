//! FDC3 across desks, on the wire: broadcasts on shared user and app channels (kept in the
//! group's stream), and, crossing at once on plain NATS subjects (never kept), intents raised
//! on another desk's app with their answers, and each desk's apps that take shared intents.
//!
//! Raises and their answers follow the FDC3 Desktop Agent Bridging shapes
//! (`raiseIntentRequest`, `raiseIntentResponse`, `raiseIntentResultResponse`: `{type, payload,
//! meta}` with `meta.source` naming the app and its `desktopAgent`). Where Bridging asks every
//! agent at each `findIntent`, desks here announce their apps instead (`tessera.deskApps`, when
//! they start and every [`APPS_EVERY_SECS`]), so that finding an intent never waits on the
//! network. Everything read from another desk is untrusted: each reader checks every part and
//! says, in one line, what was wrong; the sending desk is the one its header names, never one
//! the body claims.

use broker::fdc3::{DeskRaise, IntentDecl, RemoteApp};
use serde_json::{Map, Value, json};

use super::{APP, DESK, MSG_ID, name_ok, text_ok};

/// How often a desk announces its apps; a desk not heard from for three times as long has left.
pub const APPS_EVERY_SECS: u64 = 15;

/// Most apps one desk may announce.
const MAX_APPS: usize = 1_000;
/// Most intents one app may announce, and context types one intent may take.
const MAX_LIST: usize = 64;
/// Longest name (app id, title, intent, context type, request id) read from another desk.
const MAX_NAME: usize = 256;

/// What this desk shares in a group: what every reader checks against.
#[derive(Debug, Clone, Copy)]
pub struct Local<'a> {
    /// The group.
    pub group: &'a str,
    /// This desk.
    pub desk: &'a str,
    /// The user channels the group shares.
    pub user_channels: &'a [String],
    /// The app channels the group shares.
    pub app_channels: &'a [String],
    /// The intents the group shares.
    pub intents: &'a [String],
    /// The group's largest message.
    pub max_bytes: usize,
}

/// The subject a broadcast on user channel `channel` crosses on.
pub fn channel_subject(group: &str, channel: &str) -> String {
    format!("tessera.{group}.fdc3.user.{channel}")
}

/// The subject a broadcast on app channel `channel` crosses on.
pub fn app_channel_subject(group: &str, channel: &str) -> String {
    format!("tessera.{group}.fdc3.app.{channel}")
}

/// Where raises for `desk`'s apps go.
pub fn raise_subject(group: &str, desk: &str) -> String {
    format!("tessera.{group}.intent.{desk}")
}

/// Where the answers to `desk`'s raises go.
pub fn answer_subject(group: &str, desk: &str) -> String {
    format!("tessera.{group}.answer.{desk}")
}

/// Where the desks announce their apps.
pub fn apps_subject(group: &str) -> String {
    format!("tessera.{group}.apps")
}

/// A broadcast's body on the link: the context and the app that broadcast it.
pub fn context_body(context: &Value, source: &Value) -> Vec<u8> {
    json!({ "context": context, "source": source }).to_string().into_bytes()
}

/// A broadcast from another desk, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteContext {
    /// The user or app channel.
    pub channel: String,
    /// The context (an object with a `type`).
    pub context: Value,
    /// The app that broadcast it, with its desk (`desktopAgent`), as FDC3's `AppIdentifier`.
    pub origin: Value,
    /// Its id (for dropping duplicates).
    pub id: String,
}

/// The desk a header names, checked: `Ok(None)` when it is this one.
fn sender<'a>(
    local: &Local<'_>,
    subject: &str,
    header: impl Fn(&str) -> Option<&'a str>,
) -> Result<Option<&'a str>, String> {
    let desk = header(DESK).ok_or_else(|| format!("{subject}: no {DESK} header"))?;
    if !name_ok(desk) {
        return Err(format!("{subject}: {DESK} {desk:?} is not a desk name"));
    }
    Ok((desk != local.desk).then_some(desk))
}

fn json_body(local: &Local<'_>, subject: &str, body: &[u8]) -> Result<Value, String> {
    if body.len() > local.max_bytes {
        return Err(format!("{subject}: {} bytes is over the group's {}-byte limit", body.len(), local.max_bytes));
    }
    serde_json::from_slice(body).map_err(|e| format!("{subject}: not JSON: {e}"))
}

/// Reads a broadcast another desk put on the group's stream, for one of its shared channels.
pub fn inbound_context<'a>(
    local: &Local<'_>,
    subject: &str,
    header: impl Fn(&str) -> Option<&'a str>,
    body: &[u8],
) -> Result<Option<RemoteContext>, String> {
    let group = local.group;
    let user = subject.strip_prefix(format!("tessera.{group}.fdc3.user.").as_str());
    let app = subject.strip_prefix(format!("tessera.{group}.fdc3.app.").as_str());
    let (channel, shared) = match (user, app) {
        (Some(c), _) => (c, local.user_channels),
        (_, Some(c)) => (c, local.app_channels),
        _ => return Err(format!("subject {subject:?} is not one of group {group:?}'s channel subjects")),
    };
    if !shared.iter().any(|c| c == channel) {
        return Err(format!("channel {channel:?} is not shared by group {group:?}"));
    }
    let Some(desk) = sender(local, subject, &header)? else { return Ok(None) };
    let id = header(MSG_ID)
        .filter(|i| !i.is_empty() && text_ok(i))
        .ok_or_else(|| format!("{subject}: no usable {MSG_ID}"))?;
    let v = json_body(local, subject, body)?;
    let context = v.get("context").filter(|c| is_context(c));
    let context = context.ok_or_else(|| format!("{subject}: no context with a type"))?.clone();
    let app = header(APP).filter(|a| !a.is_empty() && text_ok(a)).unwrap_or("unknown");
    Ok(Some(RemoteContext {
        channel: channel.to_owned(),
        context,
        origin: json!({ "appId": app, "desktopAgent": desk }),
        id: id.to_owned(),
    }))
}

fn is_context(v: &Value) -> bool {
    v.get("type").and_then(Value::as_str).is_some_and(|t| !t.is_empty())
}

/// A short string field, checked.
fn name<'v>(v: &'v Value, field: &str, at: &str) -> Result<&'v str, String> {
    v.get(field)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty() && s.len() <= MAX_NAME && text_ok(s))
        .ok_or_else(|| format!("{at}: {field} is missing, empty, too long or not text"))
}

fn now_rfc3339() -> String {
    broker::Timestamp::now().to_rfc3339()
}

/// The body of a raise sent to `raise.desk` from desk `from`.
pub fn raise_body(raise: &DeskRaise, from: &str) -> Vec<u8> {
    let mut source = raise.source.clone();
    if let Some(o) = source.as_object_mut() {
        o.insert("desktopAgent".into(), Value::String(from.to_owned()));
    }
    json!({
        "type": "raiseIntentRequest",
        "payload": {
            "intent": raise.intent,
            "context": raise.context,
            "app": { "appId": raise.app, "desktopAgent": raise.desk },
        },
        "meta": {
            "requestUuid": raise.request,
            "timestamp": now_rfc3339(),
            "source": source,
            "destination": { "appId": raise.app, "desktopAgent": raise.desk },
        },
    })
    .to_string()
    .into_bytes()
}

/// Reads a raise another desk sent for one of this desk's apps. `Err` names what was wrong,
/// with the request id when it could be read (so the raiser can be told).
pub fn inbound_raise<'a>(
    local: &Local<'_>,
    subject: &str,
    header: impl Fn(&str) -> Option<&'a str>,
    body: &[u8],
) -> Result<Option<DeskRaise>, (String, Option<String>)> {
    if subject != raise_subject(local.group, local.desk) {
        return Err((format!("subject {subject:?} is not where this desk takes raises"), None));
    }
    let Some(desk) = sender(local, subject, &header).map_err(|e| (e, None))? else { return Ok(None) };
    let v = json_body(local, subject, body).map_err(|e| (e, None))?;
    if v.get("type").and_then(Value::as_str) != Some("raiseIntentRequest") {
        return Err((format!("{subject}: not a raiseIntentRequest"), None));
    }
    let meta = v.get("meta").unwrap_or(&Value::Null);
    let request = name(meta, "requestUuid", subject).map_err(|e| (e, None))?.to_owned();
    let fail = |why: String| (why, Some(request.clone()));
    let payload = v.get("payload").unwrap_or(&Value::Null);
    let intent = name(payload, "intent", subject).map_err(fail)?;
    if !local.intents.iter().any(|i| i == intent) {
        return Err(fail(format!("{subject}: intent {intent:?} is not shared by group {:?}", local.group)));
    }
    let app = name(payload.get("app").unwrap_or(&Value::Null), "appId", &format!("{subject}: app")).map_err(fail)?;
    let context = payload
        .get("context")
        .filter(|c| is_context(c))
        .ok_or_else(|| fail(format!("{subject}: no context with a type")))?;
    let source_app =
        name(meta.get("source").unwrap_or(&Value::Null), "appId", &format!("{subject}: source")).map_err(fail)?;
    let mut source = json!({ "appId": source_app, "desktopAgent": desk });
    if let Some(i) =
        meta.pointer("/source/instanceId").and_then(Value::as_str).filter(|i| i.len() <= MAX_NAME && text_ok(i))
    {
        source["instanceId"] = Value::String(i.to_owned());
    }
    Ok(Some(DeskRaise {
        desk: desk.to_owned(),
        request: request.clone(),
        app: app.to_owned(),
        intent: intent.to_owned(),
        context: context.clone(),
        source,
    }))
}

/// The body of an answer from desk `from` to a raise.
pub fn answer_body(request: &str, kind: &str, payload: &Value, from: &str) -> Vec<u8> {
    json!({
        "type": kind,
        "payload": payload,
        "meta": { "requestUuid": request, "timestamp": now_rfc3339(), "source": { "desktopAgent": from } },
    })
    .to_string()
    .into_bytes()
}

/// An answer from another desk to a raise this desk sent, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// The answering desk.
    pub desk: String,
    /// The raise's request id.
    pub request: String,
    /// `raiseIntentResponse` or `raiseIntentResultResponse`.
    pub kind: String,
    /// Its payload (an object).
    pub payload: Value,
}

/// Reads an answer another desk sent to one of this desk's raises.
pub fn inbound_answer<'a>(
    local: &Local<'_>,
    subject: &str,
    header: impl Fn(&str) -> Option<&'a str>,
    body: &[u8],
) -> Result<Option<Answer>, String> {
    if subject != answer_subject(local.group, local.desk) {
        return Err(format!("subject {subject:?} is not where this desk takes answers"));
    }
    let Some(desk) = sender(local, subject, &header)? else { return Ok(None) };
    let v = json_body(local, subject, body)?;
    let kind = v.get("type").and_then(Value::as_str).unwrap_or_default();
    if !matches!(kind, "raiseIntentResponse" | "raiseIntentResultResponse") {
        return Err(format!("{subject}: {kind:?} is not an answer to a raise"));
    }
    let request = name(v.get("meta").unwrap_or(&Value::Null), "requestUuid", subject)?;
    let payload = v.get("payload").filter(|p| p.is_object()).ok_or_else(|| format!("{subject}: no payload object"))?;
    Ok(Some(Answer {
        desk: desk.to_owned(),
        request: request.to_owned(),
        kind: kind.to_owned(),
        payload: payload.clone(),
    }))
}

/// The body announcing this desk's apps (only the intents the group shares); `hello` asks
/// the other desks to announce theirs at once (a desk starting).
pub fn apps_body(local: &Local<'_>, apps: &[RemoteApp], hello: bool) -> Vec<u8> {
    let apps: Vec<Value> = apps
        .iter()
        .filter_map(|a| {
            let intents: Vec<Value> = a
                .intents
                .iter()
                .filter(|i| local.intents.contains(&i.name))
                .map(|i| {
                    let mut m = Map::new();
                    m.insert("name".into(), json!(i.name));
                    m.insert("contexts".into(), json!(i.contexts));
                    if let Some(d) = &i.display_name {
                        m.insert("displayName".into(), json!(d));
                    }
                    if let Some(r) = &i.result_type {
                        m.insert("resultType".into(), json!(r));
                    }
                    Value::Object(m)
                })
                .collect();
            (!intents.is_empty()).then(|| json!({ "appId": a.app_id, "title": a.title, "intents": intents }))
        })
        .collect();
    json!({
        "type": "tessera.deskApps",
        "payload": { "apps": apps, "hello": hello },
        "meta": { "timestamp": now_rfc3339(), "source": { "desktopAgent": local.desk } },
    })
    .to_string()
    .into_bytes()
}

/// Another desk's apps, as it announced them, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeskApps {
    /// The desk.
    pub desk: String,
    /// Its apps, with only the intents the group shares (apps left with none are dropped).
    pub apps: Vec<RemoteApp>,
    /// It asks for this desk's apps at once.
    pub hello: bool,
}

fn strings(v: Option<&Value>, at: &str) -> Result<Vec<String>, String> {
    let list = match v {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(a)) if a.len() <= MAX_LIST => a,
        Some(_) => return Err(format!("{at}: not a list of at most {MAX_LIST}")),
    };
    list.iter()
        .map(|s| {
            s.as_str()
                .filter(|s| !s.is_empty() && s.len() <= MAX_NAME && text_ok(s))
                .map(str::to_owned)
                .ok_or_else(|| format!("{at}: an entry is not a short text"))
        })
        .collect()
}

fn intent_decl(v: &Value, at: &str) -> Result<IntentDecl, String> {
    let optional = |field: &str| -> Result<Option<String>, String> {
        match v.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(_) => name(v, field, at).map(|s| Some(s.to_owned())),
        }
    };
    Ok(IntentDecl {
        name: name(v, "name", at)?.to_owned(),
        display_name: optional("displayName")?,
        contexts: strings(v.get("contexts"), &format!("{at}.contexts"))?,
        result_type: optional("resultType")?,
    })
}

/// Reads another desk's announcement of its apps.
pub fn inbound_apps<'a>(
    local: &Local<'_>,
    subject: &str,
    header: impl Fn(&str) -> Option<&'a str>,
    body: &[u8],
) -> Result<Option<DeskApps>, String> {
    if subject != apps_subject(local.group) {
        return Err(format!("subject {subject:?} is not group {:?}'s apps subject", local.group));
    }
    let Some(desk) = sender(local, subject, &header)? else { return Ok(None) };
    let v = json_body(local, subject, body)?;
    if v.get("type").and_then(Value::as_str) != Some("tessera.deskApps") {
        return Err(format!("{subject}: not a tessera.deskApps"));
    }
    let payload = v.get("payload").unwrap_or(&Value::Null);
    let list = match payload.get("apps") {
        Some(Value::Array(a)) if a.len() <= MAX_APPS => a,
        _ => return Err(format!("{subject}: payload.apps is not a list of at most {MAX_APPS}")),
    };
    let mut apps = Vec::new();
    for (i, a) in list.iter().enumerate() {
        let at = format!("{subject}: apps[{i}]");
        let intents = match a.get("intents") {
            Some(Value::Array(l)) if l.len() <= MAX_LIST => l,
            _ => return Err(format!("{at}.intents is not a list of at most {MAX_LIST}")),
        };
        let mut decls = Vec::new();
        for (j, d) in intents.iter().enumerate() {
            let d = intent_decl(d, &format!("{at}.intents[{j}]"))?;
            if local.intents.contains(&d.name) {
                decls.push(d);
            }
        }
        if !decls.is_empty() {
            apps.push(RemoteApp {
                app_id: name(a, "appId", &at)?.to_owned(),
                title: name(a, "title", &at)?.to_owned(),
                intents: decls,
            });
        }
    }
    Ok(Some(DeskApps { desk: desk.to_owned(), apps, hello: payload.get("hello") == Some(&Value::Bool(true)) }))
}

#[cfg(test)]
mod tests;
