//! The JSON envelopes apps speak: a web page through its preload (`window.tessera.bus`) and a
//! native app through the endpoint. One vocabulary for both: `{"type": ..., "payload": {...}}`
//! for the bus and workspace messages, and FDC3 DACP messages (`{type, payload, meta}`, a type
//! ending in `Request`) passed on as they are, for the shell's agent to parse.
//!
//! [`app_message`] turns an app's envelope into the [`HostMsg`] the shell acts on, checking every
//! field; [`shell_message`] turns what the shell sends an app into its envelope. Payloads are
//! JSON values on the app's side and their UTF-8 bytes on the bus; bytes that are not JSON reach
//! an app as a string.

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::QueuePolicy;
use crate::trace::{TRACEPARENT_LEN, TraceParent};
use crate::wire::{ConsoleLevel, HostMsg, MAX_APP_STATE, MAX_CONSOLE_TEXT, ShellMsg};

/// Largest envelope an app may send, in bytes.
pub const MAX_APP_MESSAGE: usize = 4 << 20;

/// Most envelopes one batch from a page may hold (its preload posts what one task sends as one
/// batch, at most a thousand).
pub const MAX_APP_BATCH: usize = 4096;

/// Largest batch a page may post, in bytes.
pub const MAX_APP_BATCH_BYTES: usize = 8 << 20;

/// An envelope that was refused: what was wrong with it, in one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EnvelopeError(pub String);

fn err(message: impl Into<String>) -> EnvelopeError {
    EnvelopeError(message.into())
}

/// Splits what a page posted into its envelopes: one envelope (`{...}`), or a batch of them
/// (`[{...}, ...]`, in order), each still to be read by [`app_message`].
pub fn app_batch(body: &str) -> Result<Vec<&str>, EnvelopeError> {
    if !body.trim_start().starts_with('[') {
        return Ok(vec![body]);
    }
    if body.len() > MAX_APP_BATCH_BYTES {
        return Err(err(format!("a batch of {} bytes is over the {MAX_APP_BATCH_BYTES}-byte limit", body.len())));
    }
    let items: Vec<&RawValue> =
        serde_json::from_str(body).map_err(|e| err(format!("a batch that is not a JSON array: {e}")))?;
    if items.len() > MAX_APP_BATCH {
        return Err(err(format!("a batch of {} messages is over the {MAX_APP_BATCH}-message limit", items.len())));
    }
    Ok(items.into_iter().map(RawValue::get).collect())
}

/// Turns one envelope from an app into a message for the shell.
///
/// Bus messages: `bus.publish {topic, data, durable?, ttlMs?, traceparent?}`, `bus.subscribe {sub, pattern,
/// capacity, policy, replay?}`, `bus.unsubscribe {sub}`, `bus.send {app, topic, data}`,
/// `bus.serve {service, actions}`, `bus.unserve {service}`, `bus.request {call, service,
/// action, data, timeoutMs}`, `bus.respond {service, call, ok, value | error}`; also
/// `workspace.setState {state}`, `tessera.evalResult {id, ok, value | error}`, `tessera.close`,
/// `ping {nonce}` and `pong {nonce}`. A type ending in `Request` (with no `.`) is an FDC3 DACP
/// request, passed on whole.
pub fn app_message(body: &str) -> Result<HostMsg, EnvelopeError> {
    if body.len() > MAX_APP_MESSAGE {
        return Err(err(format!("{} bytes is over the {MAX_APP_MESSAGE}-byte limit", body.len())));
    }
    if let Some(msg) = fast_path(body) {
        return Ok(msg);
    }
    let envelope: Value = serde_json::from_str(body).map_err(|e| err(format!("not JSON: {e}")))?;
    let kind = envelope.get("type").and_then(Value::as_str).ok_or_else(|| err("no \"type\""))?;
    // FDC3 DACP requests go to the agent as they are; it checks them.
    if is_dacp(kind) {
        return Ok(HostMsg::Fdc3 { message: body.to_owned() });
    }
    if kind == "tessera.close" {
        return Ok(HostMsg::CloseSelf);
    }
    let payload = envelope.get("payload").ok_or_else(|| err(format!("{kind}: no \"payload\"")))?;
    let f = Fields { kind, payload };
    let msg = match kind {
        "bus.publish" => HostMsg::Publish {
            topic: f.string("topic")?,
            payload: f.bytes("data")?,
            durable: payload.get("durable").and_then(Value::as_bool).unwrap_or(false),
            ttl_ms: payload.get("ttlMs").and_then(Value::as_u64),
            trace: f.trace()?,
        },
        "bus.subscribe" => HostMsg::Subscribe {
            sub: f.sub("sub")?,
            pattern: f.string("pattern")?,
            capacity: u32::try_from(f.number("capacity")?.clamp(1, 65_536)).unwrap_or(65_536),
            policy: serde_json::from_value::<QueuePolicy>(f.field("policy")?.clone())
                .map_err(|_| err(format!("{kind}: \"policy\" is not drop_oldest, backpressure or dead_letter")))?,
            replay: u32::try_from(payload.get("replay").and_then(Value::as_u64).unwrap_or(0).min(10_000)).unwrap_or(0),
        },
        "bus.unsubscribe" => HostMsg::Unsubscribe { sub: f.sub("sub")? },
        "bus.send" => HostMsg::Send { app: f.string("app")?, topic: f.string("topic")?, payload: f.bytes("data")? },
        "bus.serve" => HostMsg::Serve {
            service: f.string("service")?,
            actions: f
                .field("actions")?
                .as_array()
                .ok_or_else(|| err(format!("{kind}: \"actions\" is not a list")))?
                .iter()
                .map(|a| a.as_str().map(str::to_owned).ok_or_else(|| err(format!("{kind}: an action is not a string"))))
                .collect::<Result<_, _>>()?,
        },
        "bus.unserve" => HostMsg::Unserve { service: f.string("service")? },
        "bus.request" => HostMsg::Request {
            call: f.number("call")?,
            service: f.string("service")?,
            action: f.string("action")?,
            payload: f.bytes("data")?,
            timeout_ms: f.number("timeoutMs")?,
        },
        "bus.respond" => {
            let ok = f.field("ok")?.as_bool().unwrap_or(false);
            let result = if ok {
                Ok(to_bytes(payload.get("value").unwrap_or(&Value::Null)))
            } else {
                Err(payload.get("error").and_then(Value::as_str).unwrap_or("the provider failed").to_owned())
            };
            HostMsg::Respond { service: f.string("service")?, call: f.number("call")?, result }
        }
        "workspace.setState" => {
            let state = f.bytes("state")?;
            if state.len() > MAX_APP_STATE {
                return Err(err(format!("{kind}: the state is {} bytes, over the 1 MiB limit", state.len())));
            }
            HostMsg::SaveState { state }
        }
        "tessera.evalResult" => {
            let ok = f.field("ok")?.as_bool().unwrap_or(false);
            let result = if ok {
                Ok(payload.get("value").cloned().unwrap_or(Value::Null).to_string())
            } else {
                Err(payload.get("error").and_then(Value::as_str).unwrap_or("unknown error").to_owned())
            };
            HostMsg::EvalResult { id: f.number("id")?, result }
        }
        "tessera.console" => {
            let level = match f.string("level")?.as_str() {
                "debug" => ConsoleLevel::Debug,
                "log" | "info" => ConsoleLevel::Info,
                "warn" => ConsoleLevel::Warn,
                "error" => ConsoleLevel::Error,
                other => {
                    let shown: String = other.chars().take(40).collect();
                    return Err(err(format!("{kind}: {shown:?} is not a console level")));
                }
            };
            let mut text = f.string("text")?;
            if text.len() > MAX_CONSOLE_TEXT {
                let mut end = MAX_CONSOLE_TEXT;
                while !text.is_char_boundary(end) {
                    end -= 1;
                }
                text.truncate(end);
            }
            HostMsg::Console { level, text }
        }
        "ping" => HostMsg::Ping { nonce: f.number("nonce")? },
        "pong" => HostMsg::Pong { nonce: f.number("nonce")? },
        other => return Err(err(format!("unknown message type {other:?}"))),
    };
    Ok(msg)
}

/// A publish, as most of an app's traffic is.
/// The request a DACP response answers: `meta.requestUuid` of a message whose type ends in
/// `Response` (the app host matches the agent's answers to the requests it holds this way).
pub fn dacp_answered(message: &str) -> Option<std::borrow::Cow<'_, str>> {
    let m: DacpHead<'_> = serde_json::from_str(message).ok()?;
    if !m.kind.ends_with("Response") {
        return None;
    }
    m.meta?.request_uuid
}

/// A DACP message's `meta.requestUuid`, if it has one.
pub fn dacp_request_id(message: &str) -> Option<String> {
    let m: DacpHead<'_> = serde_json::from_str(message).ok()?;
    m.meta?.request_uuid.map(std::borrow::Cow::into_owned)
}

#[derive(Deserialize)]
struct DacpHead<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    meta: Option<DacpMeta<'a>>,
}

#[derive(Deserialize)]
struct DacpMeta<'a> {
    #[serde(rename = "requestUuid", borrow)]
    request_uuid: Option<std::borrow::Cow<'a, str>>,
}

/// [`app_message`]'s quick readings of the two commonest envelopes, a DACP request and a
/// well-formed publish; `None` sends the envelope down the general path, which says what is
/// wrong with it, if anything.
fn fast_path(body: &str) -> Option<HostMsg> {
    // An FDC3 request as the preload writes it (its type first) goes on whole, read once for
    // its type; the rest take the paths below as they always did.
    if body.starts_with(r#"{"type":""#)
        && !body.starts_with(r#"{"type":"bus."#)
        && let Ok(fast) = serde_json::from_str::<FastKind<'_>>(body)
        && is_dacp(&fast.kind)
    {
        return Some(HostMsg::Fdc3 { message: body.to_owned() });
    }
    // The hot path: a well-formed publish, read in one pass with its data kept as the app's
    // own JSON text. Anything else (or a publish with a problem) takes the general path, which
    // says what is wrong.
    if let Ok(fast) = serde_json::from_str::<FastPublish<'_>>(body)
        && fast.kind == "bus.publish"
    {
        let p = fast.payload;
        let trace = match p.traceparent.as_deref().map(TraceParent::parse) {
            None => Some(None),
            Some(Ok(t)) => Some(Some(t)),
            // Said by the general path.
            Some(Err(_)) => None,
        };
        if let Some(trace) = trace {
            return Some(HostMsg::Publish {
                topic: p.topic.into_owned(),
                payload: p.data.get().as_bytes().to_vec(),
                durable: p.durable.unwrap_or(false),
                ttl_ms: p.ttl_ms,
                trace,
            });
        }
    }
    None
}

/// Whether an envelope's type is an FDC3 DACP request's.
fn is_dacp(kind: &str) -> bool {
    kind.ends_with("Request") && !kind.contains('.')
}

/// An envelope's type alone (the rest skipped, though read: the text is checked to be JSON).
#[derive(Deserialize)]
struct FastKind<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
}

#[derive(Deserialize)]
struct FastPublish<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    payload: FastPublishPayload<'a>,
}

#[derive(Deserialize)]
struct FastPublishPayload<'a> {
    #[serde(borrow)]
    topic: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    data: &'a RawValue,
    #[serde(default)]
    durable: Option<bool>,
    #[serde(default, rename = "ttlMs")]
    ttl_ms: Option<u64>,
    #[serde(default, borrow)]
    traceparent: Option<std::borrow::Cow<'a, str>>,
}

/// The fields of one envelope's payload, each read with a message naming it when wrong.
struct Fields<'a> {
    kind: &'a str,
    payload: &'a Value,
}

impl Fields<'_> {
    fn field(&self, name: &str) -> Result<&Value, EnvelopeError> {
        self.payload.get(name).ok_or_else(|| err(format!("{}: no \"{name}\"", self.kind)))
    }

    fn string(&self, name: &str) -> Result<String, EnvelopeError> {
        self.field(name)?
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| err(format!("{}: \"{name}\" is not a string", self.kind)))
    }

    fn number(&self, name: &str) -> Result<u64, EnvelopeError> {
        self.field(name)?.as_u64().ok_or_else(|| err(format!("{}: \"{name}\" is not a whole number", self.kind)))
    }

    fn sub(&self, name: &str) -> Result<u32, EnvelopeError> {
        u32::try_from(self.number(name)?).map_err(|_| err(format!("{}: \"{name}\" is too large", self.kind)))
    }

    /// The optional `traceparent`: absent or null is none; anything else must be one.
    fn trace(&self) -> Result<Option<TraceParent>, EnvelopeError> {
        match self.payload.get("traceparent") {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(t)) => {
                TraceParent::parse(t).map(Some).map_err(|e| err(format!("{}: \"traceparent\" is {e}", self.kind)))
            }
            Some(_) => Err(err(format!("{}: \"traceparent\" is not a string", self.kind))),
        }
    }

    fn bytes(&self, name: &str) -> Result<Vec<u8>, EnvelopeError> {
        Ok(to_bytes(self.field(name)?))
    }
}

fn to_bytes(v: &Value) -> Vec<u8> {
    // Serialising a `Value` cannot fail (its map keys are strings).
    serde_json::to_vec(v).unwrap_or_default()
}

/// A payload as an app sees it: the JSON value, or, for bytes that are not JSON, a string.
pub fn app_value(payload: &[u8]) -> Value {
    serde_json::from_slice::<Value>(payload)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(payload).into_owned()))
}

/// What the shell sends a native app, as its envelope's JSON text; `None` for what concerns
/// only a web view (its bounds, parent window, visibility, probes, scripts, navigation and
/// WebKit permissions) and the welcome, which the endpoint writes itself.
///
/// `bus.deliver {sub, topic, data, traceparent?, seq, timestamp, sender}`, `bus.direct {topic, data, from,
/// seq}`, `bus.call {service, call, action, data, from}`, `bus.response {call, ok, value |
/// error}`, `bus.refused {context, error}`, `ping {nonce}`, `pong {nonce}`; FDC3 DACP messages
/// from the agent as they are.
pub fn shell_message(msg: &ShellMsg) -> Option<String> {
    let mut out = Vec::new();
    // What `write_shell_message` writes is UTF-8: JSON text, and data checked to be JSON.
    write_shell_message(msg, &mut out).then(|| String::from_utf8(out).unwrap_or_default())
}

/// [`shell_message`], appended to `out`; `false` (and nothing written) for a message a native
/// app is not sent. Deliveries, the bulk of the traffic, are written directly: their data,
/// already JSON on the bus, is copied as it is, not parsed and written again.
pub fn write_shell_message(msg: &ShellMsg, out: &mut Vec<u8>) -> bool {
    match msg {
        ShellMsg::Deliver { sub, seq, topic, payload, timestamp_us, sender, trace } => {
            write_delivery_head(*sub, out);
            write_delivery_tail(
                &Delivered { topic, payload, seq: *seq, timestamp_us: *timestamp_us, sender: *sender, trace: *trace },
                out,
            );
            true
        }
        ShellMsg::Fdc3 { message } => {
            out.extend_from_slice(message.as_bytes());
            true
        }
        other => {
            let (kind, payload) = match other {
                ShellMsg::Direct { topic, payload, sender_app, seq } => (
                    "bus.direct",
                    json!({ "topic": topic, "data": app_value(payload), "from": sender_app, "seq": seq }),
                ),
                ShellMsg::Call { service, call, action, payload, caller_app } => (
                    "bus.call",
                    json!({ "service": service, "call": call, "action": action, "data": app_value(payload), "from": caller_app }),
                ),
                ShellMsg::Response { call, result } => (
                    "bus.response",
                    match result {
                        Ok(payload) => json!({ "call": call, "ok": true, "value": app_value(payload) }),
                        Err(error) => json!({ "call": call, "ok": false, "error": error }),
                    },
                ),
                ShellMsg::Refused { context, error } => ("bus.refused", json!({ "context": context, "error": error })),
                ShellMsg::Ping { nonce } => ("ping", json!({ "nonce": nonce })),
                ShellMsg::Pong { nonce } => ("pong", json!({ "nonce": nonce })),
                _ => return false,
            };
            // Writing a `Value` into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut *out, &json!({ "type": kind, "payload": payload }));
            true
        }
    }
}

/// A message as every subscriber of it is told: what a `bus.deliver` envelope says besides
/// the subscription.
#[derive(Debug, Clone, Copy)]
pub struct Delivered<'a> {
    /// Where it was published.
    pub topic: &'a str,
    /// Its bytes (JSON, as apps publish; other bytes reach the app as a string).
    pub payload: &'a [u8],
    /// Its broker sequence number.
    pub seq: u64,
    /// When the broker accepted it, in µs since the Unix epoch (the envelope says ms).
    pub timestamp_us: u64,
    /// The sending connection.
    pub sender: u64,
    /// The trace it travels in, if any.
    pub trace: Option<TraceParent>,
}

/// The start of a `bus.deliver` envelope, up to and with its subscription number: the only
/// part that differs between the subscribers of one message. [`write_delivery_tail`] writes
/// the rest.
pub fn write_delivery_head(sub: u32, out: &mut Vec<u8>) {
    out.extend_from_slice(HEAD);
    out.extend_from_slice(itoa::Buffer::new().format(sub).as_bytes());
}

/// The rest of a `bus.deliver` envelope after [`write_delivery_head`]: the same bytes for every
/// subscriber of a message, so a connection can write them once and share them.
pub fn write_delivery_tail(d: &Delivered<'_>, out: &mut Vec<u8>) {
    let mut n = itoa::Buffer::new();
    out.extend_from_slice(br#","topic":"#);
    write_str(out, d.topic);
    out.extend_from_slice(br#","data":"#);
    write_data(out, d.payload);
    if let Some(t) = d.trace {
        out.extend_from_slice(br#","traceparent":""#);
        t.write(out);
        out.push(b'"');
    }
    out.extend_from_slice(br#","seq":"#);
    out.extend_from_slice(n.format(d.seq).as_bytes());
    out.extend_from_slice(br#","timestamp":"#);
    out.extend_from_slice(n.format(d.timestamp_us / 1000).as_bytes());
    out.extend_from_slice(br#","sender":"#);
    out.extend_from_slice(n.format(d.sender).as_bytes());
    out.extend_from_slice(b"}}");
}

/// A `bus.deliver` envelope read by [`read_delivery`]: where its topic and data are in the
/// text, and its numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryText {
    /// The subscription.
    pub sub: u32,
    /// Where the topic's characters are (between its quotes; it has no escapes).
    pub topic: std::ops::Range<usize>,
    /// Where the data's JSON text is.
    pub data: std::ops::Range<usize>,
    /// The broker's sequence number.
    pub seq: u64,
    /// When the broker accepted it, in ms since the Unix epoch.
    pub timestamp_ms: u64,
    /// The sending connection.
    pub sender: u64,
    /// The trace it travels in, if it said one.
    pub trace: Option<TraceParent>,
}

/// Reads a `bus.deliver` envelope exactly as [`write_delivery_head`] and [`write_delivery_tail`]
/// write it, without scanning its data: the subscription and topic from the front, the numbers
/// from the back, and the data is what lies between. This is how a client reads a delivery in
/// time that does not grow with its data. `None` for any other text, or a topic with escapes:
/// read it as JSON then. The data is not checked to be JSON here (the shell checked it when it
/// wrote it): where it is one JSON value, the whole reads exactly as a JSON reader reads it.
pub fn read_delivery(text: &str) -> Option<DeliveryText> {
    let b = text.as_bytes();
    let mut at = HEAD.len();
    if !b.starts_with(HEAD) {
        return None;
    }
    let (sub, len) = digits(&b[at..])?;
    at += len;
    let sub = u32::try_from(sub).ok()?;
    let rest = b[at..].strip_prefix(br#","topic":""#)?;
    at = b.len() - rest.len();
    // A topic with escapes, or with what JSON must escape, is the JSON reader's.
    let close = rest.iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20)?;
    if rest[close] != b'"' {
        return None;
    }
    let topic = at..at + close;
    at += close + 1;
    let data_at = at + b[at..].strip_prefix(br#","data":"#).map(|_| 8)?;
    // The numbers, from the end back.
    let mut end = b.strip_suffix(b"}}")?.len();
    let mut number = |key: &[u8]| -> Option<u64> {
        let (n, len) = digits_back(&b[..end])?;
        end = b[..end - len].strip_suffix(key).map(<[u8]>::len)?;
        Some(n)
    };
    let sender = number(br#","sender":"#)?;
    let timestamp_ms = number(br#","timestamp":"#)?;
    let seq = number(br#","seq":"#)?;
    // A traceparent, between the data and the numbers.
    let mut trace = None;
    if let Some(before) = b[..end].strip_suffix(b"\"")
        && before.len() >= TRACEPARENT_LEN
        && let Some(key) = before[..before.len() - TRACEPARENT_LEN].strip_suffix(br#","traceparent":""#)
    {
        trace = Some(TraceParent::parse(text.get(before.len() - TRACEPARENT_LEN..before.len())?).ok()?);
        end = key.len();
    }
    if end <= data_at {
        return None;
    }
    Some(DeliveryText { sub, topic, data: data_at..end, seq, timestamp_ms, sender, trace })
}

/// How every delivery envelope starts.
const HEAD: &[u8] = br#"{"type":"bus.deliver","payload":{"sub":"#;

/// The decimal number `b` starts with, and its length (at most 20 digits; `None` if none or it
/// overflows).
fn digits(b: &[u8]) -> Option<(u64, usize)> {
    let len = b.iter().take(21).take_while(|c| c.is_ascii_digit()).count();
    let n = b[..len].iter().try_fold(0u64, |n, &c| n.checked_mul(10)?.checked_add(u64::from(c - b'0')))?;
    (len > 0).then_some((n, len))
}

/// The decimal number `b` ends with, and its length.
fn digits_back(b: &[u8]) -> Option<(u64, usize)> {
    let len = b.iter().rev().take(21).take_while(|c| c.is_ascii_digit()).count();
    digits(&b[b.len() - len..]).filter(|&(_, l)| l == len)
}

/// `s` as a JSON string.
fn write_str(out: &mut Vec<u8>, s: &str) {
    // Writing a string into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// A payload as an app sees it, written: its bytes when they are JSON, else a string of them.
fn write_data(out: &mut Vec<u8>, payload: &[u8]) {
    if serde_json::from_slice::<serde::de::IgnoredAny>(payload).is_ok() {
        out.extend_from_slice(payload);
    } else {
        write_str(out, &String::from_utf8_lossy(payload));
    }
}

#[cfg(test)]
mod tests;
