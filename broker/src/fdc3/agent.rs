//! The agent's state and its answer to each DACP request: this file holds the state, the
//! dispatch of a request to its handler, and the deadlines; the handlers live by concern in
//! `agent/`: `channels.rs` (channels and contexts), `intents.rs` (intents and results),
//! `instances.rs` (instance lifecycle and what is told about apps), `encoding.rs` (DACP
//! messages, ids and descriptions).

mod channels;
mod encoding;
mod instances;
mod intents;
mod remote;

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

pub use remote::{DeskRaise, RemoteApp};

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
    /// Send a raise to an app on a linked desk; its answers come back through
    /// [`Agent::desk_answer`].
    RaiseOnDesk(DeskRaise),
    /// Answer a raise that came from a linked desk ([`Agent::raise_from_desk`]).
    AnswerDesk {
        /// The desk.
        desk: String,
        /// The raise's request id.
        request: String,
        /// `raiseIntentResponse` or `raiseIntentResultResponse`.
        kind: String,
        /// The answer (`{intentResolution}`, `{intentResult}` or `{error}`).
        payload: Value,
    },
    /// Something to keep in the journal (a broadcast, an intent).
    Record {
        /// The journal topic, in the reserved namespace.
        topic: &'static str,
        /// What happened.
        body: Value,
    },
}

/// Where the journal keeps the broadcasts the agent delivered: a reserved topic, so no app can
/// see the records (private channels' contexts among them) or forge one.
pub const BROADCAST_RECORDS: &str = "$shell.fdc3.broadcast";
/// Where the journal keeps the intents the agent delivered.
pub const INTENT_RECORDS: &str = "$shell.fdc3.intent";

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
    /// The linked desk the app is on, or `None` for this desk.
    pub desk: Option<String>,
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
    /// The trace the raise travels in (the request's), for the intent's event.
    trace: Trace,
}

/// The trace a request travels in, for the events made of it: the W3C context receivers are
/// told, and the trace id FDC3 3.0's context metadata carries (the app's own, or the W3C one's).
#[derive(Debug, Clone, Default)]
struct Trace {
    parent: Option<protocol::TraceParent>,
    id: Option<String>,
}

impl Trace {
    fn of(req: &Req<'_>) -> Self {
        Self { parent: req.trace, id: req.trace_id.map(str::to_owned).or_else(|| req.trace.map(|t| t.trace_hex())) }
    }

    /// Puts the trace on an event made for a receiver: `metadata.traceId` (and the source)
    /// in its payload, `traceparent` in its meta. Nothing for a request in no trace.
    fn mark(&self, event: &mut Value, source: &Value) {
        if let Some(id) = &self.id {
            event["payload"]["metadata"] = json!({ "traceId": id, "source": source });
        }
        if let Some(parent) = self.parent {
            event["meta"]["traceparent"] = json!(parent.to_string());
        }
    }
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
    /// Linked desks: this desk's name, their apps, raises sent there and raises from there.
    desks: remote::Desks,
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
    /// The trace its receivers are told ([`Request::trace`]).
    trace: Option<protocol::TraceParent>,
    /// The app's own trace id ([`Request::trace_id`]).
    trace_id: Option<&'a str>,
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
            desks: remote::Desks::default(),
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

    /// Whether anything waits on a deadline, i.e. whether [`Agent::sweep`] can have anything to
    /// do: the shell sweeps only then.
    pub fn has_deadlines(&self) -> bool {
        !(self.waits.is_empty()
            && self.launches.is_empty()
            && self.questions.is_empty()
            && self.owed.is_empty()
            && !self.desks.waiting())
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
        self.sweep_desks(now_ms, &mut out);
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
        let req = Req {
            from,
            kind: request.kind,
            uuid: request.uuid.clone(),
            payload: &request.payload,
            trace: request.trace,
            trace_id: request.trace_id.as_deref(),
        };
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
            // The answer goes before anything the request caused for the same instance (or
            // anything not a message).
            let message = {
                let payload = match answer {
                    Ok(v) => v,
                    Err(e) => json!({ "error": e }),
                };
                self.response(&response, &req.uuid, payload)
            };
            // What goes to other instances first: they wait on it, the asker on nothing more
            // than this answer.
            let at = out.iter().position(|o| !matches!(o, Output::Send { to, .. } if *to != from)).unwrap_or(out.len());
            out.insert(at, Output::Send { to: from, message });
        }
        out
    }
}
