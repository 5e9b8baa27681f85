//! FDC3 through the endpoint: DACP requests (`{type, payload, meta: {requestUuid}}`) to the
//! shell's agent, matched with their responses, and the agent's events (contexts broadcast on
//! the channels listened to, intents raised at this app, channel changes).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

use crate::client::Inner;

/// How long an FDC3 request waits for the agent.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a raised intent waits (the user may be choosing in the resolver, an app starting).
const RAISE_TIMEOUT: Duration = Duration::from_secs(120);

/// An FDC3 call that failed: the standard's error string (`NoAppsFound`, `AccessDenied`, ...),
/// or why there was no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Fdc3Error {
    /// The agent's answer was an error.
    #[error("{0}")]
    Agent(String),
    /// No answer in time (`ApiTimeout`).
    #[error("ApiTimeout")]
    Timeout,
    /// The connection is closed.
    #[error("the connection is closed")]
    Closed,
}

type ContextTx = mpsc::UnboundedSender<(Value, Value)>;

/// What a request's answer sets up, registered as the answer is read (so no event that
/// follows it is missed).
enum Registers {
    Nothing,
    ContextListener { channel: Option<String>, context_type: Option<String>, tx: ContextTx },
    IntentListener { intent: String, tx: mpsc::UnboundedSender<IntentEvent> },
    Channel,
}

struct Waiter {
    tx: oneshot::Sender<Value>,
    registers: Registers,
}

#[derive(Default)]
pub(crate) struct Fdc3State {
    pending: HashMap<String, Waiter>,
    results: HashMap<String, oneshot::Sender<Value>>,
    contexts: HashMap<String, (Option<String>, Option<String>, ContextTx)>,
    intents: HashMap<String, (String, mpsc::UnboundedSender<IntentEvent>)>,
    current: Option<String>,
}

impl Fdc3State {
    pub(crate) fn close(&mut self) {
        *self = Self::default();
    }
}

static NEXT: AtomicU64 = AtomicU64::new(1);

fn uuid() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("rs-{}-{nanos:x}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

fn dacp(kind: &str, payload: &Value, uuid: &str) -> String {
    json!({ "type": kind, "payload": payload, "meta": { "requestUuid": uuid, "timestamp": now_iso() } }).to_string()
}

fn now_iso() -> String {
    // Seconds are enough for the agent, which only requires the field.
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Days since 1970-01-01 as a civil date (Howard Hinnant's algorithm).
fn civil(days: u64) -> (i64, u64, u64) {
    let z = days.cast_signed() + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097).cast_unsigned();
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe.cast_signed() + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// FDC3 for a native app: the Desktop Agent API's calls over the endpoint.
#[derive(Debug, Clone)]
pub struct Fdc3 {
    inner: Arc<Inner>,
}

/// Contexts broadcast where a listener listens: `(context, metadata)` with the
/// `originatingApp` as `source`.
#[derive(Debug)]
pub struct ContextListener {
    rx: mpsc::UnboundedReceiver<(Value, Value)>,
}

impl ContextListener {
    /// The next context and its metadata (`{"source": {"appId": ..., "instanceId": ...}}`, with
    /// `traceId` and `traceparent` when it came in a trace).
    pub async fn recv(&mut self) -> Option<(Value, Value)> {
        self.rx.recv().await
    }
}

/// Intents raised at this app.
#[derive(Debug)]
pub struct IntentListener {
    rx: mpsc::UnboundedReceiver<IntentEvent>,
}

impl IntentListener {
    /// The next intent raised.
    pub async fn next(&mut self) -> Option<IntentEvent> {
        self.rx.recv().await
    }
}

/// One intent raised at this app; answer it with [`IntentEvent::respond`].
#[derive(Debug)]
pub struct IntentEvent {
    /// The intent.
    pub intent: String,
    /// The context it came with.
    pub context: Value,
    /// The app that raised it.
    pub source: Value,
    event_uuid: Value,
    raise_uuid: Value,
    inner: Arc<Inner>,
}

impl IntentEvent {
    /// Answers the raiser: a context as the intent's result, nothing (void), or an error.
    pub async fn respond(self, result: Result<Option<Value>, String>) -> Result<(), Fdc3Error> {
        let mut payload = json!({ "intentEventUuid": self.event_uuid, "raiseIntentRequestUuid": self.raise_uuid });
        match result {
            Ok(Some(context)) => payload["intentResult"] = json!({ "context": context }),
            Ok(None) => payload["intentResult"] = json!({}),
            Err(error) => {
                payload["intentResult"] = json!({});
                payload["error"] = Value::String(error);
            }
        }
        Fdc3 { inner: self.inner }.request("intentResultRequest", payload).await.map(|_| ())
    }
}

/// Where a raised intent went; its result comes with [`IntentResolution::result`].
#[derive(Debug)]
pub struct IntentResolution {
    /// The app (and instance) that took it.
    pub source: Value,
    /// The intent.
    pub intent: String,
    result: oneshot::Receiver<Value>,
}

impl IntentResolution {
    /// The handler's result: a context, nothing, or its error.
    pub async fn result(self) -> Result<Option<Value>, Fdc3Error> {
        let m = match tokio::time::timeout(RAISE_TIMEOUT, self.result).await {
            Ok(Ok(m)) => m,
            Ok(Err(_)) => return Err(Fdc3Error::Closed),
            Err(_) => return Err(Fdc3Error::Timeout),
        };
        let p = &m["payload"];
        if let Some(e) = p["error"].as_str() {
            return Err(Fdc3Error::Agent(e.to_owned()));
        }
        Ok(p["intentResult"].get("context").cloned())
    }
}

impl Fdc3 {
    pub(crate) fn new(inner: Arc<Inner>) -> Self {
        Self { inner }
    }

    async fn send(
        &self,
        kind: &str,
        payload: &Value,
        registers: Registers,
        timeout: Duration,
    ) -> Result<Value, Fdc3Error> {
        let id = uuid();
        let (tx, rx) = oneshot::channel();
        self.inner.lock().fdc3.pending.insert(id.clone(), Waiter { tx, registers });
        self.inner.send(dacp(kind, payload, &id)).await.map_err(|_| Fdc3Error::Closed)?;
        let m = match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(m)) => m,
            Ok(Err(_)) => return Err(Fdc3Error::Closed),
            Err(_) => {
                self.inner.lock().fdc3.pending.remove(&id);
                return Err(Fdc3Error::Timeout);
            }
        };
        let p = m.get("payload").cloned().unwrap_or(Value::Null);
        match p.get("error").and_then(Value::as_str) {
            Some(e) => Err(Fdc3Error::Agent(e.to_owned())),
            None => Ok(p),
        }
    }

    /// Sends any DACP request (`broadcastRequest`, `findIntentRequest`, ...) and returns its
    /// response's payload; an `error` in it is an [`Fdc3Error::Agent`].
    pub async fn request(&self, kind: &str, payload: Value) -> Result<Value, Fdc3Error> {
        self.send(kind, &payload, Registers::Nothing, REQUEST_TIMEOUT).await
    }

    /// Broadcasts `context` on the user channel this app has joined.
    pub async fn broadcast(&self, context: &Value) -> Result<(), Fdc3Error> {
        let channel = self.inner.lock().fdc3.current.clone();
        self.request("broadcastRequest", json!({ "channelId": channel, "context": context })).await.map(|_| ())
    }

    /// Broadcasts `context` on the channel `channel_id` (an app channel, or a user channel).
    pub async fn broadcast_on(&self, channel_id: &str, context: &Value) -> Result<(), Fdc3Error> {
        self.request("broadcastRequest", json!({ "channelId": channel_id, "context": context })).await.map(|_| ())
    }

    /// Joins user channel `id` (`fdc3.channel.1` is red).
    pub async fn join_user_channel(&self, id: &str) -> Result<(), Fdc3Error> {
        self.send("joinUserChannelRequest", &json!({ "channelId": id }), Registers::Channel, REQUEST_TIMEOUT).await?;
        self.inner.lock().fdc3.current = Some(id.to_owned());
        Ok(())
    }

    /// Leaves the user channel.
    pub async fn leave_current_channel(&self) -> Result<(), Fdc3Error> {
        self.request("leaveCurrentChannelRequest", json!({})).await?;
        self.inner.lock().fdc3.current = None;
        Ok(())
    }

    /// The user channel this app is on.
    pub fn current_channel(&self) -> Option<String> {
        self.inner.lock().fdc3.current.clone()
    }

    /// Gets (or creates) the app channel `id`; returns its id.
    pub async fn get_or_create_channel(&self, id: &str) -> Result<String, Fdc3Error> {
        let p = self.request("getOrCreateChannelRequest", json!({ "channelId": id })).await?;
        Ok(p["channel"]["id"].as_str().unwrap_or(id).to_owned())
    }

    /// Listens for contexts (of `context_type`, or all) on `channel` (an app channel), or, with
    /// none, on whichever user channel the app is on.
    pub async fn add_context_listener(
        &self,
        channel: Option<&str>,
        context_type: Option<&str>,
    ) -> Result<ContextListener, Fdc3Error> {
        let (tx, rx) = mpsc::unbounded_channel();
        let registers = Registers::ContextListener {
            channel: channel.map(str::to_owned),
            context_type: context_type.map(str::to_owned),
            tx,
        };
        let payload = json!({ "channelId": channel, "contextType": context_type });
        self.send("addContextListenerRequest", &payload, registers, REQUEST_TIMEOUT).await?;
        Ok(ContextListener { rx })
    }

    /// Handles `intent` raised at this app.
    pub async fn add_intent_listener(&self, intent: &str) -> Result<IntentListener, Fdc3Error> {
        let (tx, rx) = mpsc::unbounded_channel();
        let registers = Registers::IntentListener { intent: intent.to_owned(), tx };
        self.send("addIntentListenerRequest", &json!({ "intent": intent }), registers, REQUEST_TIMEOUT).await?;
        Ok(IntentListener { rx })
    }

    /// Raises `intent` with `context` (at `app`, or wherever the resolver says).
    pub async fn raise_intent(
        &self,
        intent: &str,
        context: &Value,
        app: Option<&str>,
    ) -> Result<IntentResolution, Fdc3Error> {
        let mut payload = json!({ "intent": intent, "context": context });
        if let Some(app) = app {
            payload["app"] = json!({ "appId": app });
        }
        let id = uuid();
        let (result_tx, result) = oneshot::channel();
        let (tx, rx) = oneshot::channel();
        {
            let mut state = self.inner.lock();
            state.fdc3.results.insert(id.clone(), result_tx);
            state.fdc3.pending.insert(id.clone(), Waiter { tx, registers: Registers::Nothing });
        }
        self.inner.send(dacp("raiseIntentRequest", &payload, &id)).await.map_err(|_| Fdc3Error::Closed)?;
        let m = match tokio::time::timeout(RAISE_TIMEOUT, rx).await {
            Ok(Ok(m)) => m,
            Ok(Err(_)) => return Err(Fdc3Error::Closed),
            Err(_) => {
                let mut state = self.inner.lock();
                state.fdc3.pending.remove(&id);
                state.fdc3.results.remove(&id);
                return Err(Fdc3Error::Timeout);
            }
        };
        let p = &m["payload"];
        if let Some(e) = p["error"].as_str() {
            self.inner.lock().fdc3.results.remove(&id);
            return Err(Fdc3Error::Agent(e.to_owned()));
        }
        let r = &p["intentResolution"];
        Ok(IntentResolution {
            source: r["source"].clone(),
            intent: r["intent"].as_str().unwrap_or(intent).to_owned(),
            result,
        })
    }
}

/// Hands a DACP message from the agent to whoever waits for it.
pub(crate) fn dispatch(inner: &Arc<Inner>, m: Value) {
    let kind = m["type"].as_str().unwrap_or_default().to_owned();
    let uuid = m["meta"]["requestUuid"].as_str().unwrap_or_default().to_owned();
    let mut state = inner.lock();
    let s = &mut state.fdc3;
    if kind == "raiseIntentResultResponse" {
        if let Some(tx) = s.results.remove(&uuid) {
            let _ = tx.send(m);
        }
        return;
    }
    if kind.ends_with("Response") {
        let Some(waiter) = s.pending.remove(&uuid) else { return };
        let ok = m["payload"].get("error").is_none();
        let listener = m["payload"]["listenerUUID"].as_str().unwrap_or_default().to_owned();
        match waiter.registers {
            Registers::ContextListener { channel, context_type, tx } if ok => {
                s.contexts.insert(listener, (channel, context_type, tx));
            }
            Registers::IntentListener { intent, tx } if ok => {
                s.intents.insert(listener, (intent, tx));
            }
            _ => {}
        }
        let _ = waiter.tx.send(m);
        return;
    }
    let p = &m["payload"];
    match kind.as_str() {
        "broadcastEvent" => {
            let channel = p["channelId"].as_str();
            let context = &p["context"];
            let ctype = context["type"].as_str();
            let mut meta = json!({ "source": p["originatingApp"] });
            // The trace it came in, if any: FDC3 3.0's traceId and the W3C traceparent.
            if let Some(id) = p["metadata"]["traceId"].as_str() {
                meta["traceId"] = json!(id);
            }
            if let Some(t) = m["meta"]["traceparent"].as_str() {
                meta["traceparent"] = json!(t);
            }
            for (on, wants, tx) in s.contexts.values() {
                let here = match on {
                    None => channel.is_none() || channel == s.current.as_deref(),
                    Some(on) => Some(on.as_str()) == channel,
                };
                if here && wants.as_deref().is_none_or(|w| Some(w) == ctype) {
                    let _ = tx.send((context.clone(), meta.clone()));
                }
            }
        }
        "intentEvent" => {
            let intent = p["intent"].as_str().unwrap_or_default();
            let target = s.intents.values().find(|(i, _)| i == intent).map(|(_, tx)| tx.clone());
            let event = IntentEvent {
                intent: intent.to_owned(),
                context: p["context"].clone(),
                source: p["originatingApp"].clone(),
                event_uuid: m["meta"]["eventUuid"].clone(),
                raise_uuid: p["raiseIntentRequestUuid"].clone(),
                inner: Arc::clone(inner),
            };
            drop(state);
            match target {
                Some(tx) => {
                    let _ = tx.send(event);
                }
                None => {
                    tokio::spawn(event.respond(Err("no listener".to_owned())));
                }
            }
        }
        "channelChangedEvent" => {
            s.current = p["currentChannelId"].as_str().or_else(|| p["newChannelId"].as_str()).map(str::to_owned);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates_are_civil() {
        assert_eq!(super::civil(0), (1970, 1, 1));
        assert_eq!(super::civil(20_793), (2026, 12, 6));
        assert_eq!(super::civil(11_016), (2000, 2, 29));
    }
}
