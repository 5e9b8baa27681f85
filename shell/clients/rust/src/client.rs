//! The connection: the handshake, a reader task that hands each message to whoever waits for
//! it, a writer task that coalesces what is queued into few writes, and the bus API.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use protocol::native::{self, ENV_ENDPOINT, ENV_TOKEN, FrameReader};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, oneshot};

use crate::fdc3::Fdc3State;

/// What this client tells the shell it is.
const CLIENT: &str = concat!("tessera-client-rust/", env!("CARGO_PKG_VERSION"));

/// The app a credential hello names.
fn hello_app(hello: &str) -> String {
    serde_json::from_str::<Value>(hello)
        .ok()
        .and_then(|v| v["payload"]["credential"]["app"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// A secret key: 64 hex digits (the seed).
pub(crate) fn parse_key(text: &str) -> Result<ed25519_dalek::SigningKey, ClientError> {
    let text = text.trim();
    let bad = || ClientError::Protocol("the app's key is not 64 hex digits".to_owned());
    if text.len() != 64 || !text.is_ascii() {
        return Err(bad());
    }
    let mut seed = [0u8; 32];
    for (i, b) in seed.iter_mut().enumerate() {
        *b = u8::from_str_radix(text.get(2 * i..2 * i + 2).ok_or_else(bad)?, 16).map_err(|_| bad())?;
    }
    Ok(ed25519_dalek::SigningKey::from_bytes(&seed))
}

/// Frames queued for the writer before senders wait.
const OUTBOX: usize = 8192;
/// Most frames the writer puts into one write.
const COALESCE: usize = 512;
/// How long the shell has to answer the hello.
const WELCOME_TIMEOUT: Duration = Duration::from_secs(10);

/// What went wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// `TESSERA_ENDPOINT` or `TESSERA_LAUNCH_TOKEN` is not set: the process was not started
    /// by the shell.
    #[error("{0} is not set: a native app is started by the Tessera shell, which sets it")]
    NotLaunched(&'static str),
    /// The socket failed.
    #[error("the endpoint {path}: {source}")]
    Io {
        /// The endpoint's socket.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The shell refused the connection (its reason).
    #[error("the shell refused the connection: {0}")]
    Refused(String),
    /// The connection is closed (why).
    #[error("the connection is closed: {0}")]
    Closed(String),
    /// The shell sent something this client does not understand.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// No answer in time.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// A service call failed: the provider's error, or the broker's (no such service, timeout).
    #[error("{0}")]
    Call(String),
    /// The data given to send cannot be written as JSON (a map with keys that are not strings).
    #[error("the data cannot be written as JSON: {0}")]
    Data(String),
}

/// A message delivered to a subscription. It keeps the delivery's text as it came, and its data
/// is read when asked for ([`Message::data`], [`Message::parse`]): a subscriber that only
/// counts, or reads one field, does not pay for the rest.
#[derive(Debug, Clone)]
pub struct Message {
    /// The delivery's text (or, read the slow way, the data's).
    text: String,
    topic: TopicText,
    /// Where the data's JSON is in `text`.
    data: std::ops::Range<usize>,
    /// The broker's sequence number.
    pub seq: u64,
    /// When the broker accepted it (ms since the Unix epoch).
    pub timestamp_ms: u64,
    /// The sending connection's broker id.
    pub sender: u64,
    /// The W3C trace it travels in, if it was sent in one.
    pub trace: Option<protocol::TraceParent>,
}

/// Where a message's topic is.
#[derive(Debug, Clone)]
enum TopicText {
    /// In the delivery's text.
    In(std::ops::Range<usize>),
    /// Read out of it (it had escapes).
    Own(String),
}

impl Message {
    /// Its topic.
    pub fn topic(&self) -> &str {
        match &self.topic {
            TopicText::In(at) => self.text.get(at.clone()).unwrap_or_default(),
            TopicText::Own(topic) => topic,
        }
    }

    /// Its data as a JSON value.
    pub fn data(&self) -> Value {
        serde_json::from_str(self.json()).unwrap_or(Value::Null)
    }

    /// Its data read as `T`.
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.json())
    }

    /// Its data's JSON text.
    pub fn json(&self) -> &str {
        self.text.get(self.data.clone()).unwrap_or("null")
    }
}

/// A message sent to this app alone (`send`).
#[derive(Debug, Clone, PartialEq)]
pub struct Direct {
    /// Its topic.
    pub topic: String,
    /// Its data.
    pub data: Value,
    /// The sending app.
    pub from: Option<String>,
}

/// Something the shell refused (a publish, a subscription, a service), and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// What was refused (`publish prices.x`, `subscribe 3`).
    pub context: String,
    /// Why.
    pub error: String,
}

/// How a subscription's queue in the shell behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscribeOptions {
    /// Messages the shell queues for it (1 to 65,536).
    pub capacity: u32,
    /// `drop_oldest`, `backpressure` or `dead_letter`, when the queue is full.
    pub policy: &'static str,
    /// Messages from history first, per topic (0: live only; 1: the last value).
    pub replay: u32,
}

impl Default for SubscribeOptions {
    fn default() -> Self {
        Self { capacity: 8192, policy: "drop_oldest", replay: 0 }
    }
}

/// A subscription: its messages, in order, until it is dropped or the connection closes.
#[derive(Debug)]
pub struct Subscription {
    id: u32,
    rx: mpsc::Receiver<Message>,
    inner: Arc<Inner>,
}

impl Subscription {
    /// The next message; `None` once the subscription was refused or the connection closed.
    pub async fn recv(&mut self) -> Option<Message> {
        self.rx.recv().await
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.inner.lock().subs.remove(&self.id);
        let _ = self.inner.out.try_send(envelope("bus.unsubscribe", &json!({ "sub": self.id })));
    }
}

/// A service this app provides: the calls it is given.
#[derive(Debug)]
pub struct Service {
    name: String,
    rx: mpsc::Receiver<Call>,
    inner: Arc<Inner>,
}

impl Service {
    /// The next call; `None` once the connection closed.
    pub async fn next(&mut self) -> Option<Call> {
        self.rx.recv().await
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.inner.lock().services.remove(&self.name);
        let _ = self.inner.out.try_send(envelope("bus.unserve", &json!({ "service": self.name })));
    }
}

/// One call to a service this app provides; answer it with [`Call::respond`].
#[derive(Debug)]
pub struct Call {
    /// The service.
    pub service: String,
    /// The action.
    pub action: String,
    /// The argument.
    pub data: Value,
    /// The calling app.
    pub from: Option<String>,
    id: u64,
    inner: Arc<Inner>,
}

impl Call {
    /// Answers the call with a value, or an error the caller is given.
    pub async fn respond(self, result: Result<Value, String>) -> Result<(), ClientError> {
        let payload = match result {
            Ok(value) => json!({ "service": self.service, "call": self.id, "ok": true, "value": value }),
            Err(error) => json!({ "service": self.service, "call": self.id, "ok": false, "error": error }),
        };
        self.inner.send(envelope("bus.respond", &payload)).await
    }
}

#[derive(Default)]
pub(crate) struct State {
    subs: HashMap<u32, mpsc::Sender<Message>>,
    calls: HashMap<u64, oneshot::Sender<Result<Value, String>>>,
    services: HashMap<String, mpsc::Sender<Call>>,
    directs: Option<mpsc::Sender<Direct>>,
    refusals: Option<mpsc::UnboundedSender<Refusal>>,
    pub(crate) fdc3: Fdc3State,
    closed: Option<String>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    out: mpsc::Sender<String>,
    state: Mutex<State>,
    /// Set (with why) once the connection is closed.
    ended: tokio::sync::watch::Sender<Option<String>>,
    next_sub: AtomicU32,
    next_call: AtomicU64,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State").field("subs", &self.subs.len()).field("closed", &self.closed).finish_non_exhaustive()
    }
}

impl Inner {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn closed(&self) -> ClientError {
        ClientError::Closed(self.lock().closed.clone().unwrap_or_else(|| "the client was dropped".to_owned()))
    }

    pub(crate) async fn send(&self, frame: String) -> Result<(), ClientError> {
        if self.ended.borrow().is_some() {
            return Err(self.closed());
        }
        self.out.send(frame).await.map_err(|_| self.closed())
    }
}

pub(crate) fn envelope(kind: &str, payload: &Value) -> String {
    // A `Value` always writes.
    typed_envelope(kind, payload).unwrap_or_default()
}

/// An envelope around any payload that writes as JSON, written in one pass.
fn typed_envelope<P: Serialize + ?Sized>(kind: &str, payload: &P) -> Result<String, ClientError> {
    #[derive(Serialize)]
    struct Envelope<'a, P: ?Sized> {
        #[serde(rename = "type")]
        kind: &'a str,
        payload: &'a P,
    }
    serde_json::to_string(&Envelope { kind, payload }).map_err(|e| ClientError::Data(e.to_string()))
}

/// A message's topic and data, as `bus.publish` and `bus.send` carry them.
#[derive(Serialize)]
struct Addressed<'a, T: ?Sized> {
    #[serde(skip_serializing_if = "Option::is_none")]
    app: Option<&'a str>,
    topic: &'a str,
    data: &'a T,
    #[serde(skip_serializing_if = "Option::is_none")]
    traceparent: Option<String>,
}

/// A connection to the shell, bound to one app instance. Cheap to clone; the connection closes
/// when the last clone is dropped (or the shell closes it).
#[derive(Debug, Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
    app: Arc<str>,
    instance: u64,
    state: Arc<Value>,
}

impl Client {
    /// Connects with what the shell put in this process's environment.
    pub async fn from_env() -> Result<Self, ClientError> {
        let path = std::env::var_os(ENV_ENDPOINT).ok_or(ClientError::NotLaunched(ENV_ENDPOINT))?;
        let token = std::env::var(ENV_TOKEN).map_err(|_| ClientError::NotLaunched(ENV_TOKEN))?;
        Self::connect(Path::new(&path), &token).await
    }

    /// Connects to the endpoint at `path` with a launch token.
    pub async fn connect(path: &Path, token: &str) -> Result<Self, ClientError> {
        Self::handshake(path, &native::hello(token, CLIENT), None).await
    }

    /// Connects an app started outside the shell: `credential` is the JSON IT issued for it,
    /// `key` the secret key whose public half the credential names (it signs the shell's
    /// challenge; it never leaves this process).
    pub async fn connect_with_credential(
        path: &Path,
        credential: &Value,
        key: &ed25519_dalek::SigningKey,
    ) -> Result<Self, ClientError> {
        Self::handshake(path, &native::hello_with_credential(credential, CLIENT), Some(key)).await
    }

    /// [`Client::connect_with_credential`] with files: the endpoint in `TESSERA_ENDPOINT`, the
    /// credential's JSON in the file `TESSERA_CREDENTIAL` names, the key (64 hex digits) in
    /// the file `TESSERA_APP_KEY` names.
    pub async fn from_credential_env() -> Result<Self, ClientError> {
        let path = std::env::var_os(ENV_ENDPOINT).ok_or(ClientError::NotLaunched(ENV_ENDPOINT))?;
        let read = |var: &'static str| -> Result<String, ClientError> {
            let file = std::env::var_os(var).ok_or(ClientError::NotLaunched(var))?;
            std::fs::read_to_string(&file).map_err(|source| ClientError::Io {
                path: std::path::PathBuf::from(&file).display().to_string(),
                source,
            })
        };
        let credential: Value = serde_json::from_str(&read("TESSERA_CREDENTIAL")?)
            .map_err(|e| ClientError::Protocol(format!("the credential is not JSON: {e}")))?;
        let key = parse_key(&read("TESSERA_APP_KEY")?)?;
        Self::connect_with_credential(Path::new(&path), &credential, &key).await
    }

    /// [`Client::connect_with_credential`] over the endpoint's WebSocket (`ws://127.0.0.1:PORT`,
    /// where the admin policy's `endpoint.websocket` opens one), for an app that cannot reach
    /// the shell's Unix socket.
    pub async fn connect_websocket_with_credential(
        url: &str,
        credential: &Value,
        key: &ed25519_dalek::SigningKey,
    ) -> Result<Self, ClientError> {
        let io = |source| ClientError::Io { path: url.to_owned(), source };
        let (ws, _) = tokio::time::timeout(WELCOME_TIMEOUT, tokio_tungstenite::connect_async(url))
            .await
            .map_err(|_| ClientError::Timeout(WELCOME_TIMEOUT))?
            .map_err(|e| ClientError::Refused(format!("{url}: {e}")))?;
        let (ours, theirs) = UnixStream::pair().map_err(io)?;
        tokio::spawn(crate::websocket::bridge(ws, theirs));
        let hello = native::hello_with_credential(credential, CLIENT);
        Self::handshake_on(ours, url, &hello, Some(key)).await
    }

    async fn handshake(path: &Path, hello: &str, key: Option<&ed25519_dalek::SigningKey>) -> Result<Self, ClientError> {
        let stream = UnixStream::connect(path)
            .await
            .map_err(|source| ClientError::Io { path: path.display().to_string(), source })?;
        Self::handshake_on(stream, &path.display().to_string(), hello, key).await
    }

    async fn handshake_on(
        mut stream: UnixStream,
        path: &str,
        hello: &str,
        key: Option<&ed25519_dalek::SigningKey>,
    ) -> Result<Self, ClientError> {
        let io = |source| ClientError::Io { path: path.to_owned(), source };
        let mut frame = Vec::new();
        native::push_frame(hello, &mut frame);
        stream.write_all(&frame).await.map_err(io)?;
        let (rd, mut wr) = stream.into_split();
        let mut incoming = Incoming { rd, reader: FrameReader::new(), chunk: vec![0u8; 16 * 1024] };
        let mut first = incoming.answer().await?;
        if first["type"] == "challenge" {
            use ed25519_dalek::Signer;
            let (Some(key), Some(nonce)) = (key, first["payload"]["nonce"].as_str()) else {
                return Err(ClientError::Protocol("a challenge this client cannot answer".to_owned()));
            };
            let message = native::challenge_message(&hello_app(hello), nonce);
            let signature: String =
                key.sign(message.as_bytes()).to_bytes().iter().map(|b| format!("{b:02x}")).collect();
            let mut frame = Vec::new();
            native::push_frame(&native::proof(&signature), &mut frame);
            wr.write_all(&frame).await.map_err(io)?;
            first = incoming.answer().await?;
        }
        let welcome = first;
        let payload = &welcome["payload"];
        match welcome["type"].as_str() {
            Some("welcome") => {}
            Some("error") => {
                return Err(ClientError::Refused(payload["error"].as_str().unwrap_or("no reason given").to_owned()));
            }
            _ => return Err(ClientError::Protocol(format!("expected a welcome, got {welcome}"))),
        }
        let app: Arc<str> = payload["app"].as_str().unwrap_or_default().into();
        let instance = payload["instance"].as_u64().unwrap_or_default();
        let state = Arc::new(payload["state"].clone());
        let (out, out_rx) = mpsc::channel(OUTBOX);
        let inner = Arc::new(Inner {
            out,
            state: Mutex::new(State::default()),
            ended: tokio::sync::watch::channel(None).0,
            next_sub: AtomicU32::new(1),
            next_call: AtomicU64::new(1),
        });
        tokio::spawn(write(wr, out_rx));
        tokio::spawn(read(incoming, Arc::downgrade(&inner), inner.out.clone()));
        Ok(Self { inner, app, instance, state })
    }

    /// The app this connection is (from the manifest).
    pub fn app(&self) -> &str {
        &self.app
    }

    /// Its instance number.
    pub fn instance(&self) -> u64 {
        self.instance
    }

    /// The state this instance last saved ([`Client::save_state`]), kept by the shell across
    /// restarts and in workspaces; `Null` if none.
    pub fn state(&self) -> &Value {
        &self.state
    }

    /// Publishes `data` on `topic`. A refusal (a permission, a bad topic) comes on
    /// [`Client::refusals`].
    /// `data` is anything that writes as JSON (a `serde_json::Value`, a struct deriving
    /// `Serialize`, a `RawValue`), written straight into the message.
    pub async fn publish<T: Serialize + ?Sized>(&self, topic: &str, data: &T) -> Result<(), ClientError> {
        self.inner.send(typed_envelope("bus.publish", &Addressed { app: None, topic, data, traceparent: None })?).await
    }

    /// [`Client::publish`] in the W3C trace `trace`: the shell's spans for it are in that
    /// trace, and its receivers are told it.
    pub async fn publish_traced<T: Serialize + ?Sized>(
        &self,
        topic: &str,
        data: &T,
        trace: protocol::TraceParent,
    ) -> Result<(), ClientError> {
        let addressed = Addressed { app: None, topic, data, traceparent: Some(trace.to_string()) };
        self.inner.send(typed_envelope("bus.publish", &addressed)?).await
    }

    /// Subscribes to `pattern` (`*` one segment, `#` any number).
    pub async fn subscribe(&self, pattern: &str) -> Result<Subscription, ClientError> {
        self.subscribe_with(pattern, SubscribeOptions::default()).await
    }

    /// [`Client::subscribe`] with a queue of its own shape.
    pub async fn subscribe_with(&self, pattern: &str, opts: SubscribeOptions) -> Result<Subscription, ClientError> {
        let id = self.inner.next_sub.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(opts.capacity.clamp(1, 65_536) as usize);
        self.inner.lock().subs.insert(id, tx);
        let payload = json!({ "sub": id, "pattern": pattern, "capacity": opts.capacity,
                              "policy": opts.policy, "replay": opts.replay });
        self.inner.send(envelope("bus.subscribe", &payload)).await?;
        Ok(Subscription { id, rx, inner: Arc::clone(&self.inner) })
    }

    /// Sends `data` to one app (its running instance, or its queue while it restarts).
    pub async fn send<T: Serialize + ?Sized>(&self, app: &str, topic: &str, data: &T) -> Result<(), ClientError> {
        self.inner
            .send(typed_envelope("bus.send", &Addressed { app: Some(app), topic, data, traceparent: None })?)
            .await
    }

    /// Messages sent to this app; the first call takes them (later calls get a receiver that
    /// stays empty).
    pub fn directs(&self) -> mpsc::Receiver<Direct> {
        let (tx, rx) = mpsc::channel(4096);
        let mut state = self.inner.lock();
        if state.directs.is_none() {
            state.directs = Some(tx);
        }
        rx
    }

    /// What the shell refuses from here on.
    pub fn refusals(&self) -> mpsc::UnboundedReceiver<Refusal> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.inner.lock().refusals = Some(tx);
        rx
    }

    /// Calls `action` of `service` and waits for the answer (at most `timeout`).
    pub async fn request(
        &self,
        service: &str,
        action: &str,
        data: &Value,
        timeout: Duration,
    ) -> Result<Value, ClientError> {
        let call = self.inner.next_call.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.inner.lock().calls.insert(call, tx);
        let ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        let payload = json!({ "call": call, "service": service, "action": action, "data": data, "timeoutMs": ms });
        self.inner.send(envelope("bus.request", &payload)).await?;
        // The shell answers a call that timed out itself; this is only in case it cannot.
        match tokio::time::timeout(timeout + Duration::from_secs(5), rx).await {
            Ok(Ok(Ok(value))) => Ok(value),
            Ok(Ok(Err(error))) => Err(ClientError::Call(error)),
            Ok(Err(_)) => Err(self.inner.closed()),
            Err(_) => {
                self.inner.lock().calls.remove(&call);
                Err(ClientError::Timeout(timeout))
            }
        }
    }

    /// Provides `service` (answering `actions`, or any if empty); its calls come on the
    /// returned [`Service`].
    pub async fn serve(&self, service: &str, actions: &[&str]) -> Result<Service, ClientError> {
        let (tx, rx) = mpsc::channel(4096);
        self.inner.lock().services.insert(service.to_owned(), tx);
        self.inner.send(envelope("bus.serve", &json!({ "service": service, "actions": actions }))).await?;
        Ok(Service { name: service.to_owned(), rx, inner: Arc::clone(&self.inner) })
    }

    /// Saves the app's state (JSON, at most 1 MiB) for workspaces.
    pub async fn save_state(&self, state: &Value) -> Result<(), ClientError> {
        self.inner.send(envelope("workspace.setState", &json!({ "state": state }))).await
    }

    /// Tells the shell this app instance is done: it is closed, not restarted.
    pub async fn close(&self) -> Result<(), ClientError> {
        self.inner.send(json!({ "type": "tessera.close" }).to_string()).await
    }

    /// FDC3 through this connection.
    pub fn fdc3(&self) -> crate::Fdc3 {
        crate::Fdc3::new(Arc::clone(&self.inner))
    }

    /// Waits until the shell closes the connection; says why.
    pub async fn closed(&self) -> String {
        let mut ended = self.inner.ended.subscribe();
        match ended.wait_for(Option::is_some).await {
            Ok(why) => why.clone().unwrap_or_default(),
            Err(_) => "the client was dropped".to_owned(),
        }
    }
}

/// The reading half of the connection: frames in, as JSON.
struct Incoming {
    rd: OwnedReadHalf,
    reader: FrameReader,
    chunk: Vec<u8>,
}

impl Incoming {
    async fn next(&mut self) -> Result<Option<Value>, ClientError> {
        match self.next_text().await? {
            Some(text) => serde_json::from_str(&text).map(Some).map_err(|e| ClientError::Protocol(e.to_string())),
            None => Ok(None),
        }
    }

    /// The shell's next answer during the handshake.
    async fn answer(&mut self) -> Result<Value, ClientError> {
        tokio::time::timeout(WELCOME_TIMEOUT, self.next())
            .await
            .map_err(|_| ClientError::Timeout(WELCOME_TIMEOUT))??
            .ok_or_else(|| ClientError::Refused("the shell closed the connection".to_owned()))
    }

    /// The next frame's text.
    async fn next_text(&mut self) -> Result<Option<String>, ClientError> {
        loop {
            if let Some(text) = self.reader.next_frame().map_err(|e| ClientError::Protocol(e.to_string()))? {
                return Ok(Some(text.to_owned()));
            }
            let n = self
                .rd
                .read(&mut self.chunk)
                .await
                .map_err(|source| ClientError::Io { path: "the endpoint".to_owned(), source })?;
            if n == 0 {
                return Ok(None);
            }
            self.reader.feed(&self.chunk[..n]);
        }
    }
}

async fn write(mut wr: OwnedWriteHalf, mut rx: mpsc::Receiver<String>) {
    let mut buf = Vec::new();
    while let Some(first) = rx.recv().await {
        buf.clear();
        native::push_frame(&first, &mut buf);
        for _ in 1..COALESCE {
            match rx.try_recv() {
                Ok(next) => native::push_frame(&next, &mut buf),
                Err(_) => break,
            }
        }
        if wr.write_all(&buf).await.is_err() {
            break;
        }
    }
    // Every client was dropped: the shell sees the end, and the reader its answer.
    let _ = wr.shutdown().await;
}

/// Reads until the connection ends, handing each message to whoever waits for it. Holds the
/// client weakly: dropping every [`Client`] ends the connection.
async fn read(mut incoming: Incoming, inner: std::sync::Weak<Inner>, out: mpsc::Sender<String>) {
    let why = loop {
        let m = match incoming.next_text().await {
            Ok(Some(m)) => m,
            Ok(None) => break "the shell closed the connection".to_owned(),
            Err(e) => break e.to_string(),
        };
        let Some(inner) = inner.upgrade() else { return };
        if let Err(why) = dispatch(&inner, &out, m).await {
            break why;
        }
    };
    if let Some(inner) = inner.upgrade() {
        inner.ended.send_replace(Some(why.clone()));
        let mut state = inner.lock();
        state.closed = Some(why);
        state.subs.clear();
        state.calls.clear();
        state.services.clear();
        state.directs = None;
        state.fdc3.close();
    }
    drop(out);
}

/// Hands a message to its subscription. A full queue holds the reader: the shell's queue
/// policy then applies.
async fn deliver(inner: &Arc<Inner>, sub: u32, message: Message) {
    let (tx, message) = {
        let state = inner.lock();
        let Some(tx) = state.subs.get(&sub) else { return };
        match tx.try_send(message) {
            Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => return,
            Err(mpsc::error::TrySendError::Full(message)) => (tx.clone(), message),
        }
    };
    let _ = tx.send(message).await;
}

/// A delivery in a shape other than the shell's own (its topic has escapes), read as JSON.
#[derive(Deserialize)]
struct Delivery<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    payload: DeliveryPayload<'a>,
}

#[derive(Deserialize)]
struct DeliveryPayload<'a> {
    sub: u32,
    #[serde(borrow)]
    topic: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    data: &'a RawValue,
    seq: u64,
    timestamp: u64,
    sender: u64,
    #[serde(default)]
    traceparent: Option<String>,
}

async fn dispatch(inner: &Arc<Inner>, out: &mpsc::Sender<String>, text: String) -> Result<(), String> {
    // Most of what arrives is deliveries, as the shell writes them: read those without
    // scanning their data, and keep their text as the message.
    if let Some(d) = protocol::envelope::read_delivery(&text) {
        let message = Message {
            text,
            topic: TopicText::In(d.topic),
            data: d.data,
            seq: d.seq,
            timestamp_ms: d.timestamp_ms,
            sender: d.sender,
            trace: d.trace,
        };
        deliver(inner, d.sub, message).await;
        return Ok(());
    }
    if let Ok(d) = serde_json::from_str::<Delivery<'_>>(&text)
        && d.kind == "bus.deliver"
    {
        let p = d.payload;
        let data = p.data.get().to_owned();
        let message = Message {
            data: 0..data.len(),
            text: data,
            topic: TopicText::Own(p.topic.into_owned()),
            seq: p.seq,
            timestamp_ms: p.timestamp,
            sender: p.sender,
            trace: p.traceparent.as_deref().and_then(|t| protocol::TraceParent::parse(t).ok()),
        };
        deliver(inner, p.sub, message).await;
        return Ok(());
    }
    let m: Value = serde_json::from_str(&text).map_err(|e| format!("protocol error: {e}"))?;
    let kind = m["type"].as_str().unwrap_or_default();
    let p = &m["payload"];
    let text = |k: &str| p[k].as_str().map(str::to_owned);
    // (A malformed delivery falls through to here and is ignored.)
    match kind {
        "bus.direct" => {
            let tx = inner.lock().directs.clone();
            if let Some(tx) = tx {
                let _ = tx
                    .send(Direct {
                        topic: text("topic").unwrap_or_default(),
                        data: p["data"].clone(),
                        from: text("from"),
                    })
                    .await;
            }
        }
        "bus.call" => {
            let service = text("service").unwrap_or_default();
            let tx = inner.lock().services.get(&service).cloned();
            let call = Call {
                service,
                action: text("action").unwrap_or_default(),
                data: p["data"].clone(),
                from: text("from"),
                id: p["call"].as_u64().unwrap_or_default(),
                inner: Arc::clone(inner),
            };
            match tx {
                Some(tx) => {
                    let _ = tx.send(call).await;
                }
                None => {
                    let _ = call.respond(Err("the service is no longer provided".to_owned())).await;
                }
            }
        }
        "bus.response" => {
            let call = p["call"].as_u64().unwrap_or_default();
            if let Some(tx) = inner.lock().calls.remove(&call) {
                let result = if p["ok"].as_bool() == Some(true) {
                    Ok(p["value"].clone())
                } else {
                    Err(text("error").unwrap_or_else(|| "the call failed".to_owned()))
                };
                let _ = tx.send(result);
            }
        }
        "bus.refused" => {
            let refusal =
                Refusal { context: text("context").unwrap_or_default(), error: text("error").unwrap_or_default() };
            let mut state = inner.lock();
            // A refused subscription ends.
            if let Some(sub) = refusal.context.strip_prefix("subscribe ").and_then(|s| s.parse::<u32>().ok()) {
                state.subs.remove(&sub);
            }
            if let Some(tx) = &state.refusals {
                let _ = tx.send(refusal);
            }
        }
        "ping" => {
            let _ = out.send(envelope("pong", &json!({ "nonce": p["nonce"] }))).await;
        }
        "pong" => {}
        "error" => return Err(text("error").unwrap_or_else(|| "the shell closed the connection".to_owned())),
        _ => crate::fdc3::dispatch(inner, m),
    }
    Ok(())
}

#[cfg(test)]
mod tests;
