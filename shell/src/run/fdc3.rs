//! The FDC3 agent's wiring: app events in, the agent's outputs carried out (messages to app
//! hosts, launches, the resolver dialog, channel chips, journal records).
//!
//! Journal records are written while the agent is still locked ([`decide`]), so the journal
//! holds them in the order the agent decided them, whichever task asked; they go straight to
//! the journal under reserved topics, never through the bus.

use std::sync::Arc;

use broker::fdc3::{Agent, Output};
use compositor::{Command as UiCommand, ResolverChoice, ResolverRequest};
use protocol::wire::ShellMsg;
use shell::host::gate::Gate as _;
use shell::host::supervisor::AppEvent;

use super::{Shell, push_tiles};

/// The agent for a manifest's apps.
pub(super) fn agent(manifest: &shell::manifest::Manifest) -> Agent {
    let seed = {
        let mut bytes = [0u8; 8];
        if getrandom::fill(&mut bytes).is_err() {
            bytes = broker::Timestamp::now().millis().to_le_bytes();
        }
        u64::from_le_bytes(bytes)
    };
    Agent::new(manifest.directory.clone(), seed, env!("CARGO_PKG_VERSION"))
}

/// The user channel a channel chip number stands for.
pub(super) fn channel_id(n: u8) -> String {
    format!("fdc3.channel.{n}")
}

fn channel_number(id: &str) -> Option<u8> {
    id.strip_prefix("fdc3.channel.")?.parse().ok()
}

/// Asks the agent something and journals the records it makes before anyone else may ask: the
/// rest of its answer is for [`exec`].
pub(super) fn decide(shell: &Shell, ask: impl FnOnce(&mut Agent, u64) -> Vec<Output>) -> Vec<Output> {
    decide_locked(shell, &mut shell.agent.lock(), ask)
}

/// [`decide`] with the agent already locked.
fn decide_locked(shell: &Shell, agent: &mut Agent, ask: impl FnOnce(&mut Agent, u64) -> Vec<Output>) -> Vec<Output> {
    let mut outputs = ask(agent, broker::Timestamp::now().millis());
    if agent.has_deadlines() {
        shell.agent_deadlines.notify_one();
    }
    outputs.retain(|o| match o {
        Output::Record { topic, body } => {
            // The commit is not awaited: a journal that fails stops and refuses what follows,
            // which is reported here.
            if let Err(e) = shell.broker.record(topic, body.to_string(), None) {
                tracing::warn!(%topic, "could not journal an FDC3 record: {e}");
            }
            // A broadcast made here goes to the linked desks (in the order made: the agent's
            // lock is held); one that came from there does not go back.
            if *topic == broker::fdc3::BROADCAST_RECORDS
                && body["remote"] != true
                && let Some(Ok(link)) = shell.link.get()
                && let Some(channel) = body["channelId"].as_str()
            {
                link.broadcast(channel, &body["context"], &body["source"]);
            }
            false
        }
        _ => true,
    });
    outputs
}

/// Runs the agent's answer to something.
pub(super) fn exec(shell: &Shell, outputs: Vec<Output>) {
    let mut queue: std::collections::VecDeque<Output> = outputs.into();
    while let Some(o) = queue.pop_front() {
        match o {
            Output::Send { to, message } => send(shell, to, &message),
            Output::Launch { launch, app } => {
                let result = match shell.launch(&app) {
                    Ok(instance) => Some(instance),
                    Err(e) => {
                        tracing::error!(%app, "could not start the app for FDC3: {e:#}");
                        None
                    }
                };
                queue.extend(decide(shell, |agent, now| agent.launched(launch, result, now)));
            }
            Output::Resolve { resolve, intent, context_type, choices } => {
                let choices = choices
                    .into_iter()
                    .map(|c| ResolverChoice {
                        description: match (intent.is_some(), c.instance, &c.desk) {
                            (true, _, Some(desk)) => format!("on desk {desk}: its running app, or a new one"),
                            (false, _, Some(desk)) => format!("{} — on desk {desk}", c.intent_display),
                            (true, Some(i), None) => format!("running (instance {i})"),
                            (true, None, None) => "opens a new window".to_owned(),
                            (false, Some(i), None) => format!("{} — running (instance {i})", c.intent_display),
                            (false, None, None) => format!("{} — opens a new window", c.intent_display),
                        },
                        app_id: c.app,
                        title: c.title,
                        instance: c.instance,
                        desk: c.desk,
                    })
                    .collect();
                shell.ui.send(UiCommand::ShowResolver(ResolverRequest {
                    id: resolve,
                    intent: intent.unwrap_or_else(|| format!("Open {context_type} with")),
                    context_type,
                    choices,
                }));
            }
            Output::CloseResolver { resolve } => {
                shell.ui.send(UiCommand::CancelDialog { id: resolve });
            }
            Output::ChannelChanged { instance, channel } => {
                {
                    let mut channels = shell.channels.lock();
                    match channel.as_deref().and_then(channel_number) {
                        Some(n) => channels.insert(instance, n),
                        None => channels.remove(&instance),
                    };
                }
                push_tiles(shell);
                shell.dirty.notify_one();
            }
            Output::Refused { instance, app, request, error } => {
                shell.permissions.refused(instance, &app, "fdc3.refused", &format!("{request}: {error}"));
            }
            Output::RaiseOnDesk(raise) => {
                let sent = match shell.link.get() {
                    Some(Ok(link)) => link.raise(&raise),
                    _ => Err("this desk is not linked".to_owned()),
                };
                if let Err(why) = sent {
                    tracing::warn!(desk = %raise.desk, intent = %raise.intent, "an intent for another desk could not go: {why}");
                    let failed = serde_json::json!({ "error": broker::fdc3::errors::INTENT_DELIVERY_FAILED });
                    let desk = raise.desk.clone();
                    queue.extend(decide(shell, |agent, now| {
                        agent.desk_answer(&desk, &raise.request, "raiseIntentResponse", &failed, now)
                    }));
                }
            }
            Output::AnswerDesk { desk, request, kind, payload } => {
                if let Some(Ok(link)) = shell.link.get() {
                    link.answer(&bridge::wire::Answer { desk, request, kind, payload });
                }
            }
            Output::Record { topic, .. } => {
                tracing::error!(%topic, "an FDC3 record bypassed the journal; it was dropped");
            }
        }
    }
}

/// Sets an instance's user channel from the window or a workspace (`None`: no channel).
pub(super) fn link(shell: &Shell, instance: u64, channel: Option<u8>) {
    let id = channel.map(channel_id);
    let outputs = decide(shell, |agent, now| agent.set_channel(instance, id.as_deref(), now));
    match channel {
        Some(c) => shell.channels.lock().insert(instance, c),
        None => shell.channels.lock().remove(&instance),
    };
    exec(shell, outputs);
}

/// Counts a response that carries one of the standard's errors, by request type.
fn count_error(shell: &Shell, message: &serde_json::Value) {
    let error = message.pointer("/payload/error").and_then(serde_json::Value::as_str);
    let kind = message.get("type").and_then(serde_json::Value::as_str).and_then(|t| t.strip_suffix("Response"));
    if let (Some(error), Some(kind)) = (error, kind) {
        shell.permissions.counters.fdc3_error(kind, error);
    }
}

/// One of the agent's messages to an app instance.
fn send(shell: &Shell, to: u64, message: &serde_json::Value) {
    count_error(shell, message);
    if !shell.supervisor.post(to, ShellMsg::Fdc3 { message: message.to_string() }) {
        tracing::debug!(instance = to, "an FDC3 message found no app host");
    }
}

/// How many pieces of work may wait for the agent's task before more are dropped.
const QUEUE: usize = 16_384;

/// What the agent's task does, in order.
enum Work {
    /// Hand the agent an app event and carry out its answer.
    Event(AppEvent),
    /// Hand the agent its deadlines.
    Sweep,
    /// Carry out the rest of an answer already decided.
    Decided(Vec<Output>),
}

/// What app pages do, handed to the agent on the connection's own task: a request is decided
/// and the agent's messages to app hosts posted at once, under the agent's lock, so they go in
/// the order decided (no hop to another task on the FDC3 path). What takes longer (a launch, the
/// resolver, the tiles) goes to the agent's task ([`run`]); while anything waits there, what
/// follows waits behind it, so nothing overtakes.
struct Events {
    shell: std::sync::Weak<Shell>,
    queue: flume::Sender<Work>,
    /// Work sent to the task and not yet done (changed with the agent locked, or by the task
    /// once it is done).
    behind: std::sync::atomic::AtomicUsize,
}

impl Events {
    /// Decides `work` now if nothing waits for the task, posting the agent's messages at once;
    /// the rest of the answer, or the work itself while the task is behind, goes to the task.
    fn offer(&self, shell: &Shell, work: Work) {
        use std::sync::atomic::Ordering::SeqCst;
        let mut agent = shell.agent.lock();
        let behind = self.behind.load(SeqCst) > 0;
        let outputs = match work {
            Work::Event(event @ (AppEvent::Fdc3 { .. } | AppEvent::Fdc3Refused { .. })) if !behind => {
                decide_locked(shell, &mut agent, |agent, now| answer(shell, agent, event, now))
            }
            Work::Sweep if !behind => decide_locked(shell, &mut agent, Agent::sweep),
            other => return self.enqueue(other),
        };
        let mut outputs = outputs.into_iter().peekable();
        while let Some(Output::Send { to, message }) = outputs.next_if(|o| matches!(o, Output::Send { .. })) {
            send(shell, to, &message);
        }
        let rest: Vec<Output> = outputs.collect();
        if !rest.is_empty() {
            // Still locked: nothing decided after this can be carried out before it.
            self.enqueue(Work::Decided(rest));
        }
        drop(agent);
    }

    /// Hands `work` to the agent's task (called with the agent locked).
    fn enqueue(&self, work: Work) {
        use std::sync::atomic::Ordering::SeqCst;
        // Counted before it is sent: the task may be done with it before this returns.
        self.behind.fetch_add(1, SeqCst);
        if self.queue.try_send(work).is_err() {
            self.behind.fetch_sub(1, SeqCst);
            tracing::warn!("the FDC3 agent is behind; an app event was dropped");
        }
    }
}

impl shell::host::supervisor::AppEventSink for Events {
    fn event(&self, event: AppEvent) {
        if let Some(shell) = self.shell.upgrade() {
            self.offer(&shell, Work::Event(event));
        }
    }
}

/// Hands the agent what app pages do ([`Events`]) and starts its task ([`run`]).
pub(super) fn start(rt: &tokio::runtime::Runtime, shell: &Arc<Shell>) {
    let (queue, work) = flume::bounded(QUEUE);
    let events =
        Arc::new(Events { shell: Arc::downgrade(shell), queue, behind: std::sync::atomic::AtomicUsize::new(0) });
    shell.supervisor.set_app_events(Arc::clone(&events) as Arc<dyn shell::host::supervisor::AppEventSink>);
    rt.spawn(run(Arc::clone(shell), events, work));
}

/// The agent's task: what [`Events`] could not do on the spot, in order, and its deadlines.
async fn run(shell: Arc<Shell>, events: Arc<Events>, work: flume::Receiver<Work>) {
    // Deadlines are looked at every 250 ms while anything waits on one; an idle desk is not
    // woken for them.
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(250));
    let mut armed = false;
    loop {
        tokio::select! {
            next = work.recv_async() => {
                let Ok(next) = next else { return };
                let outputs = match next {
                    Work::Event(event) => decide(&shell, |agent, now| answer(&shell, agent, event, now)),
                    Work::Sweep => decide(&shell, Agent::sweep),
                    Work::Decided(outputs) => outputs,
                };
                exec(&shell, outputs);
                events.behind.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            }
            _ = tick.tick(), if armed => {
                events.offer(&shell, Work::Sweep);
                armed = shell.agent.lock().has_deadlines();
            }
            () = shell.agent_deadlines.notified(), if !armed => {
                armed = true;
                tick.reset();
            }
        }
    }
}

fn answer(shell: &Shell, agent: &mut Agent, event: AppEvent, now: u64) -> Vec<Output> {
    match event {
        AppEvent::Fdc3 { instance, app, request: Ok(mut request) } => {
            shell.permissions.counters.fdc3_request(request.kind.stem());
            let span = Fdc3Span::start(&mut request);
            let outputs = agent.handle_request(instance, &app, &request, now);
            if let Some(span) = span {
                span.finish(&app, &request, &outputs);
            }
            outputs
        }
        AppEvent::Fdc3 { instance, app, request: Err(e) } => {
            shell.permissions.counters.fdc3_request("malformed");
            tracing::warn!(%app, instance, "refused an FDC3 message: {e}");
            shell.permissions.refused(instance, &app, "fdc3.refused", &e.to_string());
            Vec::new()
        }
        AppEvent::Fdc3Refused { instance, request, error } => {
            shell.permissions.counters.fdc3_request(request.kind.stem());
            agent.refuse(instance, &request, error, now)
        }
        AppEvent::PageStarted { instance, app } => {
            agent.add_instance(instance, &app);
            agent.reset_instance(instance, now)
        }
        AppEvent::HostEnded { instance } => agent.reset_instance(instance, now),
        AppEvent::PageLoaded { instance } => {
            agent.page_loaded(instance, now);
            Vec::new()
        }
        AppEvent::Closed { instance } => {
            shell.permissions.forget_instance(instance);
            agent.remove_instance(instance, now)
        }
    }
}

/// The span of one FDC3 request in the agent, for IT's collector: in the trace the app sent it
/// in (`meta.traceparent`, or FDC3 3.0's `metadata.traceId` where it is a W3C trace id) or a
/// new one by the sample ratio. Its context replaces the request's, so the events the agent
/// makes of it (a broadcast's `broadcastEvent`s) carry it to the receiving apps.
struct Fdc3Span {
    context: protocol::TraceParent,
    parent: Option<u64>,
    start_ns: u64,
}

impl Fdc3Span {
    fn start(request: &mut broker::fdc3::Request) -> Option<Self> {
        use telemetry::trace;
        let tracer = trace::global();
        let parent = request.trace;
        let context = match (parent, request.trace_id.as_deref().and_then(protocol::trace::parse_trace_id)) {
            (None, Some(id)) => tracer.in_trace(id),
            (parent, _) => tracer.child_of(parent),
        }?;
        request.trace = Some(context);
        Some(Self { context, parent: parent.map(|p| p.span_id), start_ns: trace::now_ns() })
    }

    fn finish(self, app: &str, request: &broker::fdc3::Request, outputs: &[Output]) {
        use telemetry::trace::{self, Span, SpanKind, Value};
        if !trace::global().records(self.context) {
            return;
        }
        let sent = outputs.iter().filter(|o| matches!(o, Output::Send { .. })).count();
        let mut attributes = vec![
            ("fdc3.request", Value::Str(request.kind.request_name().into())),
            ("tessera.app", Value::Str(app.to_owned().into())),
            ("tessera.messages_sent", Value::Int(i64::try_from(sent).unwrap_or(i64::MAX))),
        ];
        if let Some(channel) = request.payload.get("channelId").and_then(serde_json::Value::as_str) {
            attributes.push(("fdc3.channel", Value::Str(channel.to_owned().into())));
        }
        if let Some(kind) =
            request.payload.get("context").and_then(|c| c.get("type")).and_then(serde_json::Value::as_str)
        {
            attributes.push(("fdc3.context.type", Value::Str(kind.to_owned().into())));
        }
        trace::global().record(Span {
            trace_id: self.context.trace_id,
            span_id: self.context.span_id,
            parent: self.parent,
            name: format!("fdc3 {}", request.kind.request_name()),
            kind: SpanKind::Internal,
            start_ns: self.start_ns,
            end_ns: trace::now_ns(),
            attributes,
            error: None,
        });
    }
}
