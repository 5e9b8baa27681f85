//! The agent's state and its answer to each DACP request.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::{Map, Value, json};

use super::dacp::{Request, RequestType};
use super::directory::{AppRecord, Directory, IntentDecl};
use super::errors::{
    ACCESS_DENIED, APP_NOT_FOUND, APP_TIMEOUT, CREATION_FAILED, ERROR_ON_LAUNCH, INTENT_DELIVERY_FAILED,
    INTENT_HANDLER_REJECTED, INTENT_LISTENER_CONFLICT, INVALID_ARGUMENTS, MALFORMED_CONTEXT, NO_APPS_FOUND,
    NO_CHANNEL_FOUND, NO_RESULT_RETURNED, RESOLVER_TIMEOUT, TARGET_APP_UNAVAILABLE, TARGET_INSTANCE_UNAVAILABLE,
    USER_CANCELLED,
};
use super::{FDC3_VERSION, Fdc3Error, LISTENER_TIMEOUT_MS, RESOLVER_TIMEOUT_MS, RESULT_TIMEOUT_MS};
use crate::clock::Timestamp;

/// The recommended user channels: id, name, colour, glyph.
pub fn user_channels() -> [(&'static str, &'static str, &'static str, &'static str); 8] {
    [
        ("fdc3.channel.1", "Channel 1", "red", "1"),
        ("fdc3.channel.2", "Channel 2", "orange", "2"),
        ("fdc3.channel.3", "Channel 3", "yellow", "3"),
        ("fdc3.channel.4", "Channel 4", "green", "4"),
        ("fdc3.channel.5", "Channel 5", "cyan", "5"),
        ("fdc3.channel.6", "Channel 6", "blue", "6"),
        ("fdc3.channel.7", "Channel 7", "magenta", "7"),
        ("fdc3.channel.8", "Channel 8", "purple", "8"),
    ]
}

/// What the agent asks of the shell.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Deliver a DACP message to an instance.
    Send {
        /// The instance.
        to: u64,
        /// The message.
        message: Value,
    },
    /// Start a new instance of `app`, then call [`Agent::launched`] with `launch`.
    Launch {
        /// The agent's id for this launch.
        launch: u64,
        /// The app.
        app: String,
    },
    /// Ask the user which target to use; answer with [`Agent::resolved`].
    Resolve {
        /// The agent's id for the question.
        resolve: u64,
        /// The intent, when one was named (`raiseIntent`); `None` for `raiseIntentForContext`.
        intent: Option<String>,
        /// The context's type.
        context_type: String,
        /// The targets, in the order to show them.
        choices: Vec<Choice>,
    },
    /// A resolver question is void (it timed out, or who asked is gone): close its dialog.
    CloseResolver {
        /// The question.
        resolve: u64,
    },
    /// An instance's user channel changed (by the app itself or the window).
    ChannelChanged {
        /// The instance.
        instance: u64,
        /// Its channel now.
        channel: Option<String>,
    },
    /// A request refused as not allowed or forged (`AccessDenied`, an intent result from the
    /// wrong instance): for the audit log.
    Refused {
        /// Who asked.
        instance: u64,
        /// Its app.
        app: String,
        /// The request's type.
        request: String,
        /// The error it got.
        error: String,
    },
    /// Something to keep in the journal (a broadcast, an intent).
    Record {
        /// The journal topic.
        topic: String,
        /// What happened.
        body: Value,
    },
}

/// A target the resolver offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    /// The intent it would handle.
    pub intent: String,
    /// The intent's display name.
    pub intent_display: String,
    /// The app.
    pub app: String,
    /// The app's title.
    pub title: String,
    /// A running instance, or `None` for a new one.
    pub instance: Option<u64>,
}

/// How much the agent is waiting on, for diagnostics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pending {
    /// Launches not yet reported.
    pub launches: usize,
    /// Launched or targeted instances whose listener is awaited.
    pub listeners: usize,
    /// Resolver questions unanswered.
    pub resolves: usize,
    /// Intent results not yet returned.
    pub results: usize,
}

#[derive(Debug, Default)]
struct Instance {
    app: String,
    channel: Option<String>,
    /// Context listeners: uuid → (channel, or `None` to follow the user channel; type).
    context: BTreeMap<String, (Option<String>, Option<String>)>,
    /// Intent listeners: uuid → intent.
    intents: BTreeMap<String, String>,
    /// `addEventListener` listeners: uuid → event type.
    events: BTreeMap<String, Option<String>>,
    /// Private channel event listeners: uuid → (channel, event type).
    private_events: BTreeMap<String, (String, Option<String>)>,
}

#[derive(Debug)]
enum Kind {
    User,
    App,
    Private { members: BTreeSet<u64> },
}

#[derive(Debug)]
struct Channel {
    kind: Kind,
    /// The latest context of each type, most recent last.
    contexts: Vec<Value>,
}

/// A raise waiting on the user, a launch or a listener.
#[derive(Debug, Clone)]
struct Raise {
    from: u64,
    request_uuid: String,
    /// `raiseIntentResponse` or `raiseIntentForContextResponse`.
    response: &'static str,
    context: Value,
}

#[derive(Debug, Clone)]
struct OpenRequest {
    from: u64,
    request_uuid: String,
    app: String,
    context: Option<Value>,
}

#[derive(Debug)]
enum Purpose {
    Intent { raise: Raise, intent: String },
    Open(OpenRequest),
}

#[derive(Debug)]
struct Wait {
    instance: u64,
    purpose: Purpose,
    deadline: u64,
}

/// How long after its page loaded a newly opened app (opened without a context) is taken to
/// be ready, if it has not added a listener by then.
pub const OPEN_SETTLE_MS: u64 = 1_000;

#[derive(Debug)]
struct Question {
    raise: Raise,
    choices: Vec<Choice>,
    deadline: u64,
}

#[derive(Debug)]
struct Owed {
    raiser: u64,
    raise_uuid: String,
    target: u64,
    deadline: u64,
}

/// The Desktop Agent.
#[derive(Debug)]
pub struct Agent {
    directory: Directory,
    provider_version: String,
    instances: BTreeMap<u64, Instance>,
    channels: BTreeMap<String, Channel>,
    /// Launches asked of the shell: why, which app, until when.
    launches: HashMap<u64, (Purpose, String, u64)>,
    waits: Vec<Wait>,
    questions: HashMap<u64, Question>,
    /// Intent results owed, by the intent event's uuid.
    owed: HashMap<String, Owed>,
    next: u64,
    seed: u64,
    now_ms: u64,
}

/// Parsed request: who, which, and its payload.
struct Req<'a> {
    from: u64,
    kind: RequestType,
    uuid: String,
    payload: &'a Map<String, Value>,
}

type Answer = Result<Value, &'static str>;

/// `{type, payload, meta}`.
fn message(kind: &str, payload: Value, meta: Value) -> Value {
    let mut m = Map::new();
    m.insert("type".into(), Value::String(kind.to_owned()));
    m.insert("payload".into(), payload);
    m.insert("meta".into(), meta);
    Value::Object(m)
}

fn valid_context(v: Option<&Value>) -> Option<&Value> {
    let v = v?;
    let t = v.as_object()?.get("type")?.as_str()?;
    (!t.is_empty()).then_some(v)
}

fn context_type(v: &Value) -> &str {
    v.get("type").and_then(Value::as_str).unwrap_or_default()
}

fn result_matches(declared: Option<&str>, wanted: Option<&str>) -> bool {
    match (declared, wanted) {
        (_, None) => true,
        (None, Some(_)) => false,
        (Some(d), Some(w)) => d == w || (w == "channel" && d.starts_with("channel<")),
    }
}

impl Agent {
    /// An agent over `directory`; `seed` makes its uuids unpredictable to apps, `version` is the
    /// shell's, reported by `getInfo`.
    pub fn new(directory: Directory, seed: u64, version: &str) -> Self {
        let mut channels = BTreeMap::new();
        for (id, ..) in user_channels() {
            channels.insert(id.to_owned(), Channel { kind: Kind::User, contexts: Vec::new() });
        }
        Self {
            directory,
            provider_version: version.to_owned(),
            instances: BTreeMap::new(),
            channels,
            launches: HashMap::new(),
            waits: Vec::new(),
            questions: HashMap::new(),
            owed: HashMap::new(),
            next: 1,
            seed,
            now_ms: 0,
        }
    }

    /// The directory.
    pub fn directory(&self) -> &Directory {
        &self.directory
    }

    /// Replaces the directory (a refreshed `/v2/apps`); running instances are kept.
    pub fn set_directory(&mut self, directory: Directory) {
        self.directory = directory;
    }

    /// What is outstanding.
    pub fn pending(&self) -> Pending {
        Pending {
            launches: self.launches.len(),
            listeners: self.waits.len(),
            resolves: self.questions.len(),
            results: self.owed.len(),
        }
    }

    /// The instances the agent knows, with their app.
    pub fn instances(&self) -> impl Iterator<Item = (u64, &str)> {
        self.instances.iter().map(|(k, i)| (*k, i.app.as_str()))
    }

    /// An instance's user channel.
    pub fn channel_of(&self, instance: u64) -> Option<&str> {
        self.instances.get(&instance)?.channel.as_deref()
    }

    fn id(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    /// A fresh uuid-shaped id (v4 layout; from a seeded SplitMix64 stream).
    pub(super) fn uuid(&mut self) -> String {
        let seed = self.seed;
        let mix = |n: u64| {
            let mut z = seed.wrapping_add(n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        let n = self.id();
        let (a, b) = (mix(2 * n), mix(2 * n + 1));
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            0x8000 | ((b >> 48) & 0x3fff),
            b & 0xffff_ffff_ffff
        )
    }

    fn timestamp(&self) -> String {
        Timestamp(self.now_ms.saturating_mul(1000)).to_rfc3339()
    }

    fn identifier(&self, instance: u64) -> Value {
        let app = self.instances.get(&instance).map_or("", |i| i.app.as_str());
        json!({ "appId": app, "instanceId": instance.to_string() })
    }

    fn response(&mut self, kind: &str, request_uuid: &str, payload: Value) -> Value {
        let response_uuid = self.uuid();
        let meta = json!({ "requestUuid": request_uuid, "responseUuid": response_uuid, "timestamp": self.timestamp() });
        message(kind, payload, meta)
    }

    fn event(&mut self, kind: &str, payload: Value) -> Value {
        let meta = json!({ "eventUuid": self.uuid(), "timestamp": self.timestamp() });
        message(kind, payload, meta)
    }

    fn reply(&mut self, out: &mut Vec<Output>, to: u64, kind: &str, request_uuid: &str, answer: Answer) {
        let payload = match answer {
            Ok(v) => v,
            Err(e) => json!({ "error": e }),
        };
        let message = self.response(kind, request_uuid, payload);
        out.push(Output::Send { to, message });
    }

    fn metadata(&self, record: Option<&AppRecord>, app: &str, instance: Option<u64>) -> Value {
        let mut m = Map::new();
        m.insert("appId".into(), Value::String(app.to_owned()));
        if let Some(i) = instance {
            m.insert("instanceId".into(), Value::String(i.to_string()));
        }
        if let Some(r) = record {
            m.insert("title".into(), Value::String(r.title.clone()));
            m.insert("name".into(), Value::String(r.name.clone().unwrap_or_else(|| r.title.clone())));
            // AppMetadata's fields only (the directory's `publisher` is not one of them).
            for (k, v) in [("description", &r.description), ("tooltip", &r.tooltip), ("version", &r.version)] {
                if let Some(v) = v {
                    m.insert(k.into(), Value::String(v.clone()));
                }
            }
            if !r.icons.is_empty() {
                m.insert("icons".into(), r.icons.iter().map(|s| json!({ "src": s })).collect());
            }
            if !r.screenshots.is_empty() {
                m.insert("screenshots".into(), r.screenshots.iter().map(|s| json!({ "src": s })).collect());
            }
        }
        Value::Object(m)
    }

    fn channel_json(&self, id: &str) -> Value {
        match self.channels.get(id).map(|c| &c.kind) {
            Some(Kind::User) => {
                let (_, name, color, glyph) =
                    user_channels().into_iter().find(|c| c.0 == id).unwrap_or(("", "", "", ""));
                json!({ "id": id, "type": "user", "displayMetadata": { "name": name, "color": color, "glyph": glyph } })
            }
            Some(Kind::Private { .. }) => json!({ "id": id, "type": "private" }),
            _ => json!({ "id": id, "type": "app" }),
        }
    }

    // ---- instances -------------------------------------------------------------------------

    /// Registers an instance the shell started (from the launcher, a workspace, or for the agent).
    pub fn add_instance(&mut self, instance: u64, app: &str) {
        self.instances.entry(instance).or_insert_with(|| Instance { app: app.to_owned(), ..Instance::default() });
    }

    /// The instance's page went away (it reloads, or its host restarts): its listeners and
    /// private channel memberships end; its registration and user channel stay.
    pub fn reset_instance(&mut self, instance: u64, now_ms: u64) -> Vec<Output> {
        self.now_ms = now_ms;
        let mut out = Vec::new();
        self.forget(instance, false, &mut out);
        if let Some(i) = self.instances.get_mut(&instance) {
            i.context.clear();
            i.intents.clear();
            i.events.clear();
            i.private_events.clear();
        }
        out
    }

    /// The instance is gone for good (closed, or crashed past its restarts).
    pub fn remove_instance(&mut self, instance: u64, now_ms: u64) -> Vec<Output> {
        self.now_ms = now_ms;
        let mut out = Vec::new();
        self.forget(instance, true, &mut out);
        self.instances.remove(&instance);
        out
    }

    /// Ends what `instance`'s page was part of: private channels, owed results, open
    /// questions; and, if the instance is `gone`, what waits for its listeners (a page that
    /// is only loading may still add them before their deadline).
    fn forget(&mut self, instance: u64, gone: bool, out: &mut Vec<Output>) {
        let private: Vec<String> = self
            .channels
            .iter()
            .filter(|(_, c)| matches!(&c.kind, Kind::Private { members } if members.contains(&instance)))
            .map(|(id, _)| id.clone())
            .collect();
        for id in private {
            self.disconnect(instance, &id, out);
        }
        let waits = std::mem::take(&mut self.waits);
        for w in waits {
            if gone && w.instance == instance {
                self.fail(w.instance, w.purpose, out);
            } else {
                self.waits.push(w);
            }
        }
        let owed: Vec<String> =
            self.owed.iter().filter(|(_, o)| o.target == instance).map(|(k, _)| k.clone()).collect();
        for k in owed {
            if let Some(o) = self.owed.remove(&k) {
                self.reply(out, o.raiser, "raiseIntentResultResponse", &o.raise_uuid, Err(NO_RESULT_RETURNED));
            }
        }
        self.owed.retain(|_, o| o.raiser != instance);
        let questions: Vec<u64> =
            self.questions.iter().filter(|(_, q)| q.raise.from == instance).map(|(k, _)| *k).collect();
        for q in questions {
            self.questions.remove(&q);
            out.push(Output::CloseResolver { resolve: q });
        }
    }

    /// A wait that will not be met: its requester gets the matching error (an `open` without
    /// a context has nothing to deliver: the app was opened, and that is the answer).
    fn fail(&mut self, instance: u64, purpose: Purpose, out: &mut Vec<Output>) {
        match purpose {
            Purpose::Intent { raise, .. } => {
                self.reply(out, raise.from, raise.response, &raise.request_uuid, Err(INTENT_DELIVERY_FAILED));
            }
            Purpose::Open(o) if o.context.is_none() && self.instances.contains_key(&instance) => {
                let id = self.identifier(instance);
                self.reply(out, o.from, "openResponse", &o.request_uuid, Ok(json!({ "appIdentifier": id })));
            }
            Purpose::Open(o) => self.reply(out, o.from, "openResponse", &o.request_uuid, Err(APP_TIMEOUT)),
        }
    }

    /// An instance's page finished loading: an `open` without a context waiting on it is
    /// answered a moment later unless a listener comes first.
    pub fn page_loaded(&mut self, instance: u64, now_ms: u64) {
        self.now_ms = now_ms;
        for w in &mut self.waits {
            if w.instance == instance && matches!(&w.purpose, Purpose::Open(o) if o.context.is_none()) {
                w.deadline = w.deadline.min(now_ms + OPEN_SETTLE_MS);
            }
        }
    }

    /// `instance` added a listener: an `open` without a context waiting on it is answered.
    fn listener_added(&mut self, instance: u64, out: &mut Vec<Output>) {
        let waits = std::mem::take(&mut self.waits);
        for w in waits {
            match w.purpose {
                Purpose::Open(o) if w.instance == instance && o.context.is_none() => {
                    let id = self.identifier(instance);
                    self.reply(out, o.from, "openResponse", &o.request_uuid, Ok(json!({ "appIdentifier": id })));
                }
                purpose => self.waits.push(Wait { instance: w.instance, purpose, deadline: w.deadline }),
            }
        }
    }

    /// Sets an instance's user channel from outside the app (the window's channel chip).
    pub fn set_channel(&mut self, instance: u64, channel: Option<&str>, now_ms: u64) -> Vec<Output> {
        self.now_ms = now_ms;
        let mut out = Vec::new();
        if channel.is_some_and(|c| !matches!(self.channels.get(c).map(|c| &c.kind), Some(Kind::User))) {
            return out;
        }
        self.change_channel(instance, channel.map(str::to_owned), &mut out);
        out
    }

    fn change_channel(&mut self, instance: u64, channel: Option<String>, out: &mut Vec<Output>) {
        let Some(i) = self.instances.get_mut(&instance) else { return };
        if i.channel == channel {
            return;
        }
        i.channel.clone_from(&channel);
        let event = self.event("channelChangedEvent", json!({ "currentChannelId": channel }));
        out.push(Output::Send { to: instance, message: event });
        out.push(Output::ChannelChanged { instance, channel });
    }

    // ---- launches, resolver, time ----------------------------------------------------------

    /// The shell launched what [`Output::Launch`] asked for (`Some(instance)`), or could not (`None`).
    pub fn launched(&mut self, launch: u64, result: Option<u64>, now_ms: u64) -> Vec<Output> {
        self.now_ms = now_ms;
        let mut out = Vec::new();
        let Some((purpose, app, _)) = self.launches.remove(&launch) else { return out };
        match (result, purpose) {
            (Some(instance), Purpose::Open(o)) => {
                // With a context: answered when a listener takes it. Without: when the app
                // is ready, i.e. it adds its first listener, or a moment after its page loaded
                // (answering at once would let the opener talk to a page not yet listening).
                self.add_instance(instance, &o.app);
                self.waits.push(Wait { instance, purpose: Purpose::Open(o), deadline: now_ms + LISTENER_TIMEOUT_MS });
            }
            (Some(instance), Purpose::Intent { raise, intent }) => {
                self.add_instance(instance, &app);
                self.waits.push(Wait {
                    instance,
                    purpose: Purpose::Intent { raise, intent },
                    deadline: now_ms + LISTENER_TIMEOUT_MS,
                });
            }
            (None, Purpose::Open(o)) => {
                self.reply(&mut out, o.from, "openResponse", &o.request_uuid, Err(ERROR_ON_LAUNCH));
            }
            (None, Purpose::Intent { raise, .. }) => {
                self.reply(&mut out, raise.from, raise.response, &raise.request_uuid, Err(INTENT_DELIVERY_FAILED));
            }
        }
        out
    }

    /// The user picked `choice` (an index into the question's choices), or cancelled (`None`).
    pub fn resolved(&mut self, resolve: u64, choice: Option<usize>, now_ms: u64) -> Vec<Output> {
        self.now_ms = now_ms;
        let mut out = Vec::new();
        let Some(q) = self.questions.remove(&resolve) else { return out };
        match choice.and_then(|i| q.choices.get(i)) {
            Some(c) => {
                let c = c.clone();
                if c.instance.is_some_and(|i| !self.instances.contains_key(&i)) {
                    let r = q.raise;
                    self.reply(&mut out, r.from, r.response, &r.request_uuid, Err(TARGET_INSTANCE_UNAVAILABLE));
                } else {
                    self.go(q.raise, &c, &mut out);
                }
            }
            None => {
                let r = q.raise;
                self.reply(&mut out, r.from, r.response, &r.request_uuid, Err(USER_CANCELLED));
            }
        }
        out
    }

    /// Ends whatever is past its deadline.
    pub fn sweep(&mut self, now_ms: u64) -> Vec<Output> {
        self.now_ms = now_ms;
        let mut out = Vec::new();
        let waits = std::mem::take(&mut self.waits);
        for w in waits {
            if w.deadline <= now_ms {
                self.fail(w.instance, w.purpose, &mut out);
            } else {
                self.waits.push(w);
            }
        }
        let late: Vec<u64> = self.launches.iter().filter(|(_, l)| l.2 <= now_ms).map(|(k, _)| *k).collect();
        for k in late {
            if let Some((purpose, ..)) = self.launches.remove(&k) {
                self.fail(0, purpose, &mut out);
            }
        }
        let late: Vec<u64> = self.questions.iter().filter(|(_, q)| q.deadline <= now_ms).map(|(k, _)| *k).collect();
        for k in late {
            if let Some(q) = self.questions.remove(&k) {
                let r = q.raise;
                self.reply(&mut out, r.from, r.response, &r.request_uuid, Err(RESOLVER_TIMEOUT));
                out.push(Output::CloseResolver { resolve: k });
            }
        }
        let late: Vec<String> =
            self.owed.iter().filter(|(_, o)| o.deadline <= now_ms).map(|(k, _)| k.clone()).collect();
        for k in late {
            if let Some(o) = self.owed.remove(&k) {
                self.reply(&mut out, o.raiser, "raiseIntentResultResponse", &o.raise_uuid, Err(NO_RESULT_RETURNED));
            }
        }
        out
    }

    // ---- requests --------------------------------------------------------------------------

    /// Refuses a DACP request from `from` with `error` (e.g. `AccessDenied` when a permission is
    /// missing): the matching response with the error.
    pub fn refuse(&mut self, from: u64, request: &Request, error: &str, now_ms: u64) -> Vec<Output> {
        self.now_ms = now_ms;
        let message = self.response(&request.kind.response_name(), &request.uuid, json!({ "error": error }));
        vec![Output::Send { to: from, message }]
    }

    /// Handles one DACP message's text from `from` (an instance of `app`, as the shell knows
    /// it): [`Request::parse`], then [`Agent::handle_request`].
    pub fn handle(&mut self, from: u64, app: &str, text: &str, now_ms: u64) -> Result<Vec<Output>, Fdc3Error> {
        let request = Request::parse(text)?;
        Ok(self.handle_request(from, app, &request, now_ms))
    }

    /// Handles one DACP request from `from` (an instance of `app`, as the shell knows it).
    pub fn handle_request(&mut self, from: u64, app: &str, request: &Request, now_ms: u64) -> Vec<Output> {
        self.now_ms = now_ms;
        let response = request.kind.response_name();
        self.add_instance(from, app);
        let req = Req { from, kind: request.kind, uuid: request.uuid.clone(), payload: &request.payload };
        let mut out = Vec::new();
        let answer = match req.kind {
            RequestType::GetInfo => Some(Ok(self.get_info(from))),
            RequestType::GetAppMetadata => Some(self.get_app_metadata(&req)),
            RequestType::FindInstances => Some(self.find_instances(&req)),
            RequestType::GetUserChannels => Some(Ok(self.get_user_channels())),
            RequestType::GetCurrentChannel => {
                let channel = self.channel_of(from).map(str::to_owned);
                Some(Ok(json!({ "channel": channel.map(|c| self.channel_json(&c)) })))
            }
            RequestType::JoinUserChannel => Some(self.join(&req, &mut out)),
            RequestType::LeaveCurrentChannel => {
                self.change_channel(from, None, &mut out);
                Some(Ok(json!({})))
            }
            RequestType::GetOrCreateChannel => Some(self.get_or_create(&req)),
            RequestType::CreatePrivateChannel => Some(Ok(self.create_private(from))),
            RequestType::PrivateChannelDisconnect => Some(self.private_disconnect(&req, &mut out)),
            RequestType::Broadcast => Some(self.broadcast(&req, &mut out)),
            RequestType::GetCurrentContext => Some(self.current_context(&req)),
            RequestType::AddContextListener => Some(self.add_context_listener(&req, &mut out)),
            RequestType::ContextListenerUnsubscribe => Some(self.remove_context_listener(&req, &mut out)),
            RequestType::AddEventListener => Some(self.add_event_listener(&req)),
            RequestType::EventListenerUnsubscribe => {
                let id = req.payload.get("listenerUUID").and_then(Value::as_str).unwrap_or_default();
                if let Some(i) = self.instances.get_mut(&from) {
                    i.events.remove(id);
                }
                Some(Ok(json!({})))
            }
            RequestType::PrivateChannelAddEventListener => Some(self.add_private_listener(&req, &mut out)),
            RequestType::PrivateChannelUnsubscribeEventListener => {
                let id = req.payload.get("listenerUUID").and_then(Value::as_str).unwrap_or_default();
                if let Some(i) = self.instances.get_mut(&from) {
                    i.private_events.remove(id);
                }
                Some(Ok(json!({})))
            }
            RequestType::AddIntentListener => Some(self.add_intent_listener(&req, &mut out)),
            RequestType::IntentListenerUnsubscribe => {
                let id = req.payload.get("listenerUUID").and_then(Value::as_str).unwrap_or_default();
                if let Some(i) = self.instances.get_mut(&from) {
                    i.intents.remove(id);
                }
                Some(Ok(json!({})))
            }
            RequestType::FindIntent => Some(self.find_intent(&req)),
            RequestType::FindIntentsByContext => Some(self.find_intents_by_context(&req)),
            RequestType::RaiseIntent => self.raise_intent(&req, &mut out).err().map(Err),
            RequestType::RaiseIntentForContext => self.raise_for_context(&req, &mut out).err().map(Err),
            RequestType::IntentResult => Some(self.intent_result(&req, &mut out)),
            RequestType::Open => self.open(&req, &mut out).err().map(Err),
        };
        let listening = matches!(
            req.kind,
            RequestType::AddContextListener
                | RequestType::AddIntentListener
                | RequestType::AddEventListener
                | RequestType::PrivateChannelAddEventListener
        );
        if listening && matches!(answer, Some(Ok(_))) {
            self.listener_added(from, &mut out);
        }
        if let Some(Err(error)) = &answer
            && (*error == ACCESS_DENIED || req.kind == RequestType::IntentResult)
        {
            out.push(Output::Refused {
                instance: from,
                app: app.to_owned(),
                request: req.kind.request_name(),
                error: (*error).to_owned(),
            });
        }
        if let Some(answer) = answer {
            // The answer goes before anything the request caused for the same instance.
            let message = {
                let payload = match answer {
                    Ok(v) => v,
                    Err(e) => json!({ "error": e }),
                };
                self.response(&response, &req.uuid, payload)
            };
            out.insert(0, Output::Send { to: from, message });
        }
        out
    }

    fn get_info(&self, from: u64) -> Value {
        let app = self.instances.get(&from).map_or("", |i| i.app.as_str());
        let metadata = self.metadata(self.directory.get(app), app, Some(from));
        json!({ "implementationMetadata": {
            "fdc3Version": FDC3_VERSION,
            "provider": "Tessera",
            "providerVersion": self.provider_version,
            "optionalFeatures": {
                "OriginatingAppMetadata": true,
                "UserChannelMembershipAPIs": true,
                "DesktopAgentBridging": false,
            },
            "appMetadata": metadata,
        }})
    }

    /// `{appId, instanceId?}` from a payload field; `Err` if it is there but malformed.
    fn app_identifier(v: Option<&Value>) -> Result<Option<(String, Option<String>)>, &'static str> {
        match v {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(o)) => {
                let app = o.get("appId").and_then(Value::as_str).filter(|s| !s.is_empty()).ok_or(INVALID_ARGUMENTS)?;
                let instance = match o.get("instanceId") {
                    None | Some(Value::Null) => None,
                    Some(Value::String(s)) => Some(s.clone()),
                    Some(_) => return Err(INVALID_ARGUMENTS),
                };
                Ok(Some((app.to_owned(), instance)))
            }
            Some(_) => Err(INVALID_ARGUMENTS),
        }
    }

    /// [`Agent::app_identifier`], with an appId the directory does not know looked up as an
    /// app's name (the pre-2.0 forms of `open` and `raiseIntent` name apps that way).
    fn target(&self, v: Option<&Value>) -> Result<Option<(String, Option<String>)>, &'static str> {
        Ok(Self::app_identifier(v)?.map(|(app, instance)| {
            if self.directory.get(&app).is_some() || self.instances.values().any(|i| i.app == app) {
                return (app, instance);
            }
            let by_name = self.directory.apps().find(|r| r.name.as_deref() == Some(app.as_str()) || r.title == app);
            (by_name.map_or(app, |r| r.app_id.clone()), instance)
        }))
    }

    /// The running instance `instance_id` names, if it is one of `app`'s.
    fn instance_of(&self, app: &str, instance_id: &str) -> Option<u64> {
        let n = instance_id.parse::<u64>().ok()?;
        (self.instances.get(&n)?.app == app).then_some(n)
    }

    fn get_app_metadata(&self, req: &Req<'_>) -> Answer {
        let (app, instance) = self.target(req.payload.get("app"))?.ok_or(INVALID_ARGUMENTS)?;
        let record = self.directory.get(&app);
        let running = self.instances.values().any(|i| i.app == app);
        if record.is_none() && !running {
            return Err(TARGET_APP_UNAVAILABLE);
        }
        let instance = match instance {
            Some(id) => Some(self.instance_of(&app, &id).ok_or(TARGET_INSTANCE_UNAVAILABLE)?),
            None => None,
        };
        Ok(json!({ "appMetadata": self.metadata(record, &app, instance) }))
    }

    fn find_instances(&self, req: &Req<'_>) -> Answer {
        let (app, _) = self.target(req.payload.get("app"))?.ok_or(INVALID_ARGUMENTS)?;
        let list: Vec<Value> = self
            .instances
            .iter()
            .filter(|(_, i)| i.app == app)
            .map(|(k, _)| json!({ "appId": app, "instanceId": k.to_string() }))
            .collect();
        if list.is_empty() && self.directory.get(&app).is_none() {
            return Err(NO_APPS_FOUND);
        }
        Ok(json!({ "appIdentifiers": list }))
    }

    fn get_user_channels(&self) -> Value {
        let list: Vec<Value> = user_channels().iter().map(|(id, ..)| self.channel_json(id)).collect();
        json!({ "userChannels": list })
    }

    fn join(&mut self, req: &Req<'_>, out: &mut Vec<Output>) -> Answer {
        let id = req.payload.get("channelId").and_then(Value::as_str).ok_or(INVALID_ARGUMENTS)?;
        if !matches!(self.channels.get(id).map(|c| &c.kind), Some(Kind::User)) {
            return Err(NO_CHANNEL_FOUND);
        }
        self.change_channel(req.from, Some(id.to_owned()), out);
        Ok(json!({}))
    }

    fn get_or_create(&mut self, req: &Req<'_>) -> Answer {
        let id = req.payload.get("channelId").and_then(Value::as_str).ok_or(INVALID_ARGUMENTS)?;
        if id.trim().is_empty() || id.chars().count() > 256 || id.chars().any(char::is_control) {
            return Err(INVALID_ARGUMENTS);
        }
        match self.channels.get(id).map(|c| &c.kind) {
            Some(Kind::Private { .. }) => return Err(ACCESS_DENIED),
            Some(Kind::User) => return Err(CREATION_FAILED),
            Some(Kind::App) => {}
            None => {
                self.channels.insert(id.to_owned(), Channel { kind: Kind::App, contexts: Vec::new() });
            }
        }
        Ok(json!({ "channel": self.channel_json(id) }))
    }

    fn create_private(&mut self, from: u64) -> Value {
        let id = format!("private.{}", self.uuid());
        self.channels.insert(
            id.clone(),
            Channel { kind: Kind::Private { members: BTreeSet::from([from]) }, contexts: Vec::new() },
        );
        json!({ "privateChannel": self.channel_json(&id) })
    }

    /// Checks that `from` may use channel `id`.
    fn usable(&self, from: u64, id: &str) -> Result<(), &'static str> {
        match self.channels.get(id).map(|c| &c.kind) {
            None => Err(NO_CHANNEL_FOUND),
            Some(Kind::Private { members }) if !members.contains(&from) => Err(ACCESS_DENIED),
            Some(_) => Ok(()),
        }
    }

    fn private_disconnect(&mut self, req: &Req<'_>, out: &mut Vec<Output>) -> Answer {
        let id = req.payload.get("channelId").and_then(Value::as_str).ok_or(INVALID_ARGUMENTS)?;
        if !matches!(self.channels.get(id).map(|c| &c.kind), Some(Kind::Private { .. })) {
            return Err(NO_CHANNEL_FOUND);
        }
        self.usable(req.from, id)?;
        let id = id.to_owned();
        self.disconnect(req.from, &id, out);
        Ok(json!({}))
    }

    /// `instance` leaves private channel `id`: its listeners go (each an unsubscribe event to
    /// the others), then the others hear of the disconnect.
    fn disconnect(&mut self, instance: u64, id: &str, out: &mut Vec<Output>) {
        let types: Vec<Option<String>> = self.instances.get_mut(&instance).map_or_else(Vec::new, |i| {
            let gone: Vec<String> =
                i.context.iter().filter(|(_, (c, _))| c.as_deref() == Some(id)).map(|(k, _)| k.clone()).collect();
            let types = gone.iter().filter_map(|k| i.context.remove(k)).map(|(_, t)| t).collect();
            i.private_events.retain(|_, (c, _)| c != id);
            types
        });
        for t in types {
            self.private_event(instance, id, "unsubscribe", &json!({ "privateChannelId": id, "contextType": t }), out);
        }
        self.private_event(instance, id, "disconnect", &json!({ "privateChannelId": id }), out);
        if let Some(Channel { kind: Kind::Private { members }, .. }) = self.channels.get_mut(id) {
            members.remove(&instance);
        }
    }

    /// Sends a private channel event to the other members listening for `kind`.
    fn private_event(&mut self, from: u64, id: &str, kind: &str, payload: &Value, out: &mut Vec<Output>) {
        let Some(Channel { kind: Kind::Private { members }, .. }) = self.channels.get(id) else { return };
        let targets: Vec<u64> = members
            .iter()
            .copied()
            .filter(|m| *m != from)
            .filter(|m| {
                self.instances.get(m).is_some_and(|i| {
                    i.private_events.values().any(|(c, t)| c == id && t.as_deref().is_none_or(|t| t == kind))
                })
            })
            .collect();
        let message_type = match kind {
            "addContextListener" => "privateChannelOnAddContextListenerEvent",
            "unsubscribe" => "privateChannelOnUnsubscribeEvent",
            _ => "privateChannelOnDisconnectEvent",
        };
        for to in targets {
            let message = self.event(message_type, payload.clone());
            out.push(Output::Send { to, message });
        }
    }

    fn broadcast(&mut self, req: &Req<'_>, out: &mut Vec<Output>) -> Answer {
        let id = req.payload.get("channelId").and_then(Value::as_str).ok_or(INVALID_ARGUMENTS)?;
        let context = valid_context(req.payload.get("context")).ok_or(MALFORMED_CONTEXT)?.clone();
        self.usable(req.from, id)?;
        let id = id.to_owned();
        let ctype = context_type(&context).to_owned();
        if let Some(ch) = self.channels.get_mut(&id) {
            ch.contexts.retain(|c| context_type(c) != ctype);
            ch.contexts.push(context.clone());
        }
        let source = self.identifier(req.from);
        let private = matches!(self.channels.get(&id).map(|c| &c.kind), Some(Kind::Private { .. }));
        let targets: Vec<u64> = self
            .instances
            .iter()
            .filter(|(k, _)| **k != req.from)
            .filter(|(k, _)| {
                !private
                    || matches!(&self.channels.get(&id).map(|c| &c.kind), Some(Kind::Private { members }) if members.contains(k))
            })
            .filter(|(_, i)| {
                i.context.values().any(|(c, t)| {
                    let on = match c {
                        Some(c) => *c == id,
                        None => i.channel.as_deref() == Some(id.as_str()),
                    };
                    on && t.as_deref().is_none_or(|t| t == ctype)
                })
            })
            .map(|(k, _)| *k)
            .collect();
        for to in targets {
            let message =
                self.event("broadcastEvent", json!({ "channelId": id, "context": context, "originatingApp": source }));
            out.push(Output::Send { to, message });
        }
        out.push(Output::Record {
            topic: "fdc3.broadcast".to_owned(),
            body: json!({ "channelId": id, "context": context, "source": source }),
        });
        Ok(json!({}))
    }

    fn current_context(&self, req: &Req<'_>) -> Answer {
        let id = req.payload.get("channelId").and_then(Value::as_str).ok_or(INVALID_ARGUMENTS)?;
        self.usable(req.from, id)?;
        let wanted = req.payload.get("contextType").and_then(Value::as_str);
        let contexts = self.channels.get(id).map_or(&[][..], |c| c.contexts.as_slice());
        let context = match wanted {
            Some(t) => contexts.iter().rev().find(|c| context_type(c) == t),
            None => contexts.last(),
        };
        Ok(json!({ "context": context }))
    }

    fn add_context_listener(&mut self, req: &Req<'_>, out: &mut Vec<Output>) -> Answer {
        let channel = match req.payload.get("channelId") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(INVALID_ARGUMENTS),
        };
        let ctype = match req.payload.get("contextType") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(_) => return Err(INVALID_ARGUMENTS),
        };
        if let Some(c) = &channel {
            self.usable(req.from, c)?;
        }
        let uuid = self.uuid();
        if let Some(i) = self.instances.get_mut(&req.from) {
            i.context.insert(uuid.clone(), (channel.clone(), ctype.clone()));
        }
        if let Some(c) = &channel
            && matches!(self.channels.get(c).map(|c| &c.kind), Some(Kind::Private { .. }))
        {
            self.private_event(
                req.from,
                c,
                "addContextListener",
                &json!({ "privateChannelId": c, "contextType": ctype }),
                out,
            );
        }
        if channel.is_none() {
            self.deliver_open_context(req.from, ctype.as_deref(), out);
        }
        Ok(json!({ "listenerUUID": uuid }))
    }

    /// A context listener appeared on `instance`: an `open` waiting to hand it a context does.
    fn deliver_open_context(&mut self, instance: u64, ctype: Option<&str>, out: &mut Vec<Output>) {
        let waits = std::mem::take(&mut self.waits);
        for w in waits {
            let fits = w.instance == instance
                && matches!(&w.purpose, Purpose::Open(o) if o.context.as_ref().is_some_and(|c| ctype.is_none_or(|t| t == context_type(c))));
            match (fits, w.purpose) {
                (true, Purpose::Open(o)) => {
                    let context = o.context.clone().unwrap_or(Value::Null);
                    let source = self.identifier(o.from);
                    let event = self.event(
                        "broadcastEvent",
                        json!({ "channelId": null, "context": context, "originatingApp": source }),
                    );
                    out.push(Output::Send { to: instance, message: event });
                    let id = self.identifier(instance);
                    self.reply(out, o.from, "openResponse", &o.request_uuid, Ok(json!({ "appIdentifier": id })));
                }
                (_, purpose) => self.waits.push(Wait { instance: w.instance, purpose, deadline: w.deadline }),
            }
        }
    }

    fn remove_context_listener(&mut self, req: &Req<'_>, out: &mut Vec<Output>) -> Answer {
        let id = req.payload.get("listenerUUID").and_then(Value::as_str).ok_or(INVALID_ARGUMENTS)?;
        let removed = self.instances.get_mut(&req.from).and_then(|i| i.context.remove(id));
        if let Some((Some(c), t)) = removed
            && matches!(self.channels.get(&c).map(|c| &c.kind), Some(Kind::Private { .. }))
        {
            self.private_event(req.from, &c, "unsubscribe", &json!({ "privateChannelId": c, "contextType": t }), out);
        }
        Ok(json!({}))
    }

    fn add_event_listener(&mut self, req: &Req<'_>) -> Answer {
        let kind = match req.payload.get("type") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s == "USER_CHANNEL_CHANGED" => Some(s.clone()),
            Some(_) => return Err(INVALID_ARGUMENTS),
        };
        let uuid = self.uuid();
        if let Some(i) = self.instances.get_mut(&req.from) {
            i.events.insert(uuid.clone(), kind);
        }
        Ok(json!({ "listenerUUID": uuid }))
    }

    fn add_private_listener(&mut self, req: &Req<'_>, out: &mut Vec<Output>) -> Answer {
        let id = req.payload.get("privateChannelId").and_then(Value::as_str).ok_or(INVALID_ARGUMENTS)?.to_owned();
        let kind = match req.payload.get("listenerType") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if ["addContextListener", "unsubscribe", "disconnect"].contains(&s.as_str()) => {
                Some(s.clone())
            }
            Some(_) => return Err(INVALID_ARGUMENTS),
        };
        if !matches!(self.channels.get(&id).map(|c| &c.kind), Some(Kind::Private { .. })) {
            return Err(NO_CHANNEL_FOUND);
        }
        self.usable(req.from, &id)?;
        let uuid = self.uuid();
        if let Some(i) = self.instances.get_mut(&req.from) {
            i.private_events.insert(uuid.clone(), (id.clone(), kind.clone()));
        }
        // Listeners the other members added before this one was registered are announced to it
        // (after the answer), marked for this listener only.
        if kind.as_deref().is_none_or(|k| k == "addContextListener") {
            let existing: Vec<Option<String>> = self
                .instances
                .iter()
                .filter(|(k, _)| **k != req.from)
                .flat_map(|(_, i)| i.context.values().filter(|(c, _)| c.as_deref() == Some(id.as_str())))
                .map(|(_, t)| t.clone())
                .collect();
            for t in existing {
                let mut message = self.event(
                    "privateChannelOnAddContextListenerEvent",
                    json!({ "privateChannelId": id, "contextType": t }),
                );
                message["meta"]["listenerUUID"] = Value::String(uuid.clone());
                out.push(Output::Send { to: req.from, message });
            }
        }
        Ok(json!({ "listenerUUID": uuid }))
    }

    fn add_intent_listener(&mut self, req: &Req<'_>, out: &mut Vec<Output>) -> Answer {
        let intent = req
            .payload
            .get("intent")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or(INVALID_ARGUMENTS)?
            .to_owned();
        if self.instances.get(&req.from).is_none_or(|i| i.intents.values().any(|n| *n == intent)) {
            return Err(INTENT_LISTENER_CONFLICT);
        }
        let uuid = self.uuid();
        let Some(i) = self.instances.get_mut(&req.from) else { return Err(INVALID_ARGUMENTS) };
        i.intents.insert(uuid.clone(), intent.clone());
        // Raises waiting for this listener are delivered (after the answer).
        let waits = std::mem::take(&mut self.waits);
        for w in waits {
            match w.purpose {
                Purpose::Intent { raise, intent: wanted } if w.instance == req.from && wanted == intent => {
                    self.deliver(raise, &intent, req.from, out);
                }
                purpose => self.waits.push(Wait { instance: w.instance, purpose, deadline: w.deadline }),
            }
        }
        Ok(json!({ "listenerUUID": uuid }))
    }

    fn intent_display(&self, intent: &str) -> String {
        self.directory
            .apps()
            .find_map(|a| a.intent(intent).and_then(|d| d.display_name.clone()))
            .unwrap_or_else(|| intent.to_owned())
    }

    /// Every target for `intent` (or any intent) taking `ctype` and giving `result`, optionally
    /// of one app: running instances with a listener, then new instances of directory apps
    /// that have no such instance running.
    fn candidates(
        &self,
        intent: Option<&str>,
        ctype: Option<&str>,
        result: Option<&str>,
        app: Option<&str>,
    ) -> Vec<Choice> {
        let mut out = Vec::new();
        let fits_decl = |d: &IntentDecl| {
            intent.is_none_or(|n| n == d.name)
                && ctype.is_none_or(|t| d.contexts.iter().any(|c| c == t))
                && result_matches(d.result_type.as_deref(), result)
        };
        for (k, inst) in &self.instances {
            if app.is_some_and(|a| a != inst.app) {
                continue;
            }
            let record = self.directory.get(&inst.app);
            let mut names: Vec<&String> = inst.intents.values().collect();
            names.sort();
            names.dedup();
            for name in names {
                let ok = match record.and_then(|r| r.intent(name)) {
                    Some(d) => fits_decl(d),
                    // A listener the directory does not declare takes any context, returns nothing known.
                    None => intent.is_none_or(|n| n == name) && result.is_none(),
                };
                if ok {
                    out.push(Choice {
                        intent: name.clone(),
                        intent_display: self.intent_display(name),
                        app: inst.app.clone(),
                        title: record.map_or_else(|| inst.app.clone(), |r| r.title.clone()),
                        instance: Some(*k),
                    });
                }
            }
        }
        for r in self.directory.apps() {
            if app.is_some_and(|a| a != r.app_id) || r.url.is_none() {
                continue;
            }
            // A new instance is offered only where no running one already listens.
            for d in r.intents.iter().filter(|d| fits_decl(d)) {
                if out.iter().any(|c: &Choice| c.app == r.app_id && c.intent == d.name) {
                    continue;
                }
                out.push(Choice {
                    intent: d.name.clone(),
                    intent_display: d.display_name.clone().unwrap_or_else(|| d.name.clone()),
                    app: r.app_id.clone(),
                    title: r.title.clone(),
                    instance: None,
                });
            }
        }
        out
    }

    /// Groups targets by intent as `AppIntent`s.
    fn app_intents(&self, choices: &[Choice]) -> Vec<Value> {
        let mut by_intent: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
        for c in choices {
            by_intent.entry(c.intent.as_str()).or_default().push(self.metadata(
                self.directory.get(&c.app),
                &c.app,
                c.instance,
            ));
        }
        by_intent
            .into_iter()
            .map(|(name, apps)| {
                json!({ "intent": { "name": name, "displayName": self.intent_display(name) }, "apps": apps })
            })
            .collect()
    }

    fn find_intent(&self, req: &Req<'_>) -> Answer {
        let intent =
            req.payload.get("intent").and_then(Value::as_str).filter(|s| !s.is_empty()).ok_or(INVALID_ARGUMENTS)?;
        let ctype = match req.payload.get("context") {
            None | Some(Value::Null) => None,
            c => Some(context_type(valid_context(c).ok_or(MALFORMED_CONTEXT)?)),
        };
        let result = req.payload.get("resultType").and_then(Value::as_str);
        let choices = self.candidates(Some(intent), ctype, result, None);
        if choices.is_empty() {
            return Err(NO_APPS_FOUND);
        }
        let apps: Vec<Value> =
            choices.iter().map(|c| self.metadata(self.directory.get(&c.app), &c.app, c.instance)).collect();
        Ok(
            json!({ "appIntent": { "intent": { "name": intent, "displayName": self.intent_display(intent) }, "apps": apps } }),
        )
    }

    fn find_intents_by_context(&self, req: &Req<'_>) -> Answer {
        let context = valid_context(req.payload.get("context")).ok_or(MALFORMED_CONTEXT)?;
        let result = req.payload.get("resultType").and_then(Value::as_str);
        let choices = self.candidates(None, Some(context_type(context)), result, None);
        if choices.is_empty() {
            return Err(NO_APPS_FOUND);
        }
        Ok(json!({ "appIntents": self.app_intents(&choices) }))
    }

    fn raise_intent(&mut self, req: &Req<'_>, out: &mut Vec<Output>) -> Result<(), &'static str> {
        let intent = req
            .payload
            .get("intent")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or(INVALID_ARGUMENTS)?
            .to_owned();
        let context = valid_context(req.payload.get("context")).ok_or(MALFORMED_CONTEXT)?.clone();
        let target = self.target(req.payload.get("app"))?;
        let raise = Raise { from: req.from, request_uuid: req.uuid.clone(), response: "raiseIntentResponse", context };
        let ctype = context_type(&raise.context).to_owned();
        let choices = match &target {
            Some((app, Some(instance_id))) => {
                let instance = self.instance_of(app, instance_id).ok_or(TARGET_INSTANCE_UNAVAILABLE)?;
                // The app's declaration of the intent, if it has one, must take this context.
                if let Some(d) = self.directory.get(app).and_then(|r| r.intent(&intent))
                    && !d.contexts.contains(&ctype)
                {
                    return Err(NO_APPS_FOUND);
                }
                if self.instances.get(&instance).is_some_and(|i| i.intents.values().any(|n| *n == intent)) {
                    self.deliver(raise, &intent, instance, out);
                } else {
                    // It may still be loading: wait for its listener.
                    self.waits.push(Wait {
                        instance,
                        purpose: Purpose::Intent { raise, intent },
                        deadline: self.now_ms + LISTENER_TIMEOUT_MS,
                    });
                }
                return Ok(());
            }
            Some((app, None)) => {
                if self.directory.get(app).is_none() && !self.instances.values().any(|i| i.app == *app) {
                    return Err(TARGET_APP_UNAVAILABLE);
                }
                self.candidates(Some(&intent), Some(&ctype), None, Some(app))
            }
            None => self.candidates(Some(&intent), Some(&ctype), None, None),
        };
        self.choose(raise, Some(intent), choices, out)
    }

    fn raise_for_context(&mut self, req: &Req<'_>, out: &mut Vec<Output>) -> Result<(), &'static str> {
        let context = valid_context(req.payload.get("context")).ok_or(MALFORMED_CONTEXT)?.clone();
        let target = self.target(req.payload.get("app"))?;
        let ctype = context_type(&context).to_owned();
        let raise = Raise {
            from: req.from,
            request_uuid: req.uuid.clone(),
            response: "raiseIntentForContextResponse",
            context,
        };
        let choices = match &target {
            Some((app, instance)) => {
                if self.directory.get(app).is_none() && !self.instances.values().any(|i| i.app == *app) {
                    return Err(TARGET_APP_UNAVAILABLE);
                }
                let mut c = self.candidates(None, Some(&ctype), None, Some(app));
                if let Some(id) = instance {
                    let n = self.instance_of(app, id).ok_or(TARGET_INSTANCE_UNAVAILABLE)?;
                    c.retain(|c| c.instance == Some(n));
                }
                c
            }
            None => self.candidates(None, Some(&ctype), None, None),
        };
        self.choose(raise, None, choices, out)
    }

    /// One target: go. Several: ask the user. None: `NoAppsFound`.
    fn choose(
        &mut self,
        raise: Raise,
        intent: Option<String>,
        choices: Vec<Choice>,
        out: &mut Vec<Output>,
    ) -> Result<(), &'static str> {
        match choices.len() {
            0 => Err(NO_APPS_FOUND),
            1 => {
                self.go(raise, &choices[0], out);
                Ok(())
            }
            _ => {
                let resolve = self.id();
                let context_type = context_type(&raise.context).to_owned();
                out.push(Output::Resolve { resolve, intent, context_type, choices: choices.clone() });
                self.questions
                    .insert(resolve, Question { raise, choices, deadline: self.now_ms + RESOLVER_TIMEOUT_MS });
                Ok(())
            }
        }
    }

    fn go(&mut self, raise: Raise, choice: &Choice, out: &mut Vec<Output>) {
        match choice.instance {
            Some(instance) => self.deliver(raise, &choice.intent, instance, out),
            None => {
                let launch = self.id();
                out.push(Output::Launch { launch, app: choice.app.clone() });
                self.launches.insert(
                    launch,
                    (
                        Purpose::Intent { raise, intent: choice.intent.clone() },
                        choice.app.clone(),
                        self.now_ms + LISTENER_TIMEOUT_MS,
                    ),
                );
            }
        }
    }

    /// Hands the intent to `target`'s listener and tells the raiser where it went.
    fn deliver(&mut self, raise: Raise, intent: &str, target: u64, out: &mut Vec<Output>) {
        let source = self.identifier(raise.from);
        let event = self.event(
            "intentEvent",
            json!({
                "intent": intent,
                "context": raise.context,
                "originatingApp": source,
                "raiseIntentRequestUuid": raise.request_uuid,
            }),
        );
        let event_uuid = event["meta"]["eventUuid"].as_str().unwrap_or_default().to_owned();
        out.push(Output::Send { to: target, message: event });
        let resolved = self.identifier(target);
        self.reply(
            out,
            raise.from,
            raise.response,
            &raise.request_uuid,
            Ok(json!({ "intentResolution": { "source": resolved, "intent": intent } })),
        );
        out.push(Output::Record {
            topic: "fdc3.intent".to_owned(),
            body: json!({ "intent": intent, "context": raise.context, "source": source, "target": resolved }),
        });
        self.owed.insert(
            event_uuid,
            Owed {
                raiser: raise.from,
                raise_uuid: raise.request_uuid,
                target,
                deadline: self.now_ms + RESULT_TIMEOUT_MS,
            },
        );
    }

    fn intent_result(&mut self, req: &Req<'_>, out: &mut Vec<Output>) -> Answer {
        let event = req.payload.get("intentEventUuid").and_then(Value::as_str).ok_or(INVALID_ARGUMENTS)?;
        // Only the instance the intent went to may answer it.
        if self.owed.get(event).is_none_or(|o| o.target != req.from) {
            return Err(INVALID_ARGUMENTS);
        }
        let Some(owed) = self.owed.remove(event) else { return Err(INVALID_ARGUMENTS) };
        let result = req.payload.get("intentResult");
        let answer: Answer = if req.payload.get("error").is_some() {
            // Tessera's preload reports a handler that threw or rejected this way.
            Err(INTENT_HANDLER_REJECTED)
        } else {
            match result.and_then(Value::as_object) {
                None => Ok(json!({ "intentResult": {} })),
                Some(r) if r.is_empty() => Ok(json!({ "intentResult": {} })),
                Some(r) => {
                    if let Some(c) = r.get("context") {
                        match valid_context(Some(c)) {
                            Some(c) => Ok(json!({ "intentResult": { "context": c } })),
                            None => Err(NO_RESULT_RETURNED),
                        }
                    } else if let Some(id) = r.get("channel").and_then(|c| c.get("id")).and_then(Value::as_str) {
                        // A private channel handed back joins the raiser to it.
                        let id = id.to_owned();
                        match self.channels.get_mut(&id).map(|c| &mut c.kind) {
                            Some(Kind::Private { members }) if members.contains(&req.from) => {
                                members.insert(owed.raiser);
                                Ok(json!({ "intentResult": { "channel": self.channel_json(&id) } }))
                            }
                            Some(Kind::Private { .. }) | None => Err(NO_RESULT_RETURNED),
                            Some(_) => Ok(json!({ "intentResult": { "channel": self.channel_json(&id) } })),
                        }
                    } else {
                        Err(NO_RESULT_RETURNED)
                    }
                }
            }
        };
        self.reply(out, owed.raiser, "raiseIntentResultResponse", &owed.raise_uuid, answer);
        Ok(json!({}))
    }

    fn open(&mut self, req: &Req<'_>, out: &mut Vec<Output>) -> Result<(), &'static str> {
        let (app, _) = self.target(req.payload.get("app"))?.ok_or(INVALID_ARGUMENTS)?;
        let context = match req.payload.get("context") {
            None | Some(Value::Null) => None,
            c => Some(valid_context(c).ok_or(MALFORMED_CONTEXT)?.clone()),
        };
        if self.directory.get(&app).is_none_or(|r| r.url.is_none()) {
            return Err(APP_NOT_FOUND);
        }
        let launch = self.id();
        out.push(Output::Launch { launch, app: app.clone() });
        self.launches.insert(
            launch,
            (
                Purpose::Open(OpenRequest {
                    from: req.from,
                    request_uuid: req.uuid.clone(),
                    app: app.clone(),
                    context,
                }),
                app,
                self.now_ms + LISTENER_TIMEOUT_MS,
            ),
        );
        Ok(())
    }
}
