//! The typed messages between the shell and an app host, and their binary encoding (postcard).
//! Frames around them are `frame.rs`'s; the transport is the shell's.
//!
//! These types are the wire contract: they use plain fields and externally tagged enums only,
//! which a non-self-describing format can decode (the broker's richer types, some of them
//! internally tagged for JSON, are converted at the edge).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::queue_policy::QueuePolicy;
use crate::trace::TraceParent;

/// Largest app state (`HostMsg::SaveState`) the shell keeps for a workspace, in bytes.
pub const MAX_APP_STATE: usize = 1 << 20;

/// Version of this contract; a host and shell that disagree refuse each other.
pub const PROTOCOL: u16 = 5;

/// From an app host to the shell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum HostMsg {
    /// First message: who is speaking this protocol.
    Hello {
        /// [`PROTOCOL`].
        protocol: u16,
        /// The host's process id.
        pid: u32,
    },
    /// Publish to a topic.
    Publish {
        /// The topic.
        topic: String,
        /// The bytes.
        payload: Vec<u8>,
        /// Journal before acknowledging.
        durable: bool,
        /// Time to live in milliseconds.
        ttl_ms: Option<u64>,
        /// The trace the page sends it in, if any (W3C `traceparent`).
        trace: Option<TraceParent>,
    },
    /// Subscribe; deliveries carry `sub`, the host's own number for it.
    Subscribe {
        /// The host's id for the subscription.
        sub: u32,
        /// The pattern.
        pattern: String,
        /// Queue capacity.
        capacity: u32,
        /// What happens when the queue is full.
        policy: QueuePolicy,
        /// Messages from history to deliver first, per matching topic (0: live traffic only;
        /// 1: the last value).
        replay: u32,
    },
    /// Drop a subscription.
    Unsubscribe {
        /// The host's id for it.
        sub: u32,
    },
    /// Liveness probe; answered with [`ShellMsg::Pong`].
    Ping {
        /// Echoed back.
        nonce: u64,
    },
    /// Answer to [`ShellMsg::Ping`].
    Pong {
        /// The ping's nonce.
        nonce: u64,
    },
    /// Answer to [`ShellMsg::Probe`], sent only once the page's JavaScript ran it.
    ProbeAck {
        /// The probe's nonce.
        nonce: u64,
    },
    /// The result of [`ShellMsg::Eval`].
    EvalResult {
        /// The request's id.
        id: u64,
        /// The value as JSON, or the error's message.
        result: Result<String, String>,
    },
    /// The page wants to go to `url` (in place, or in a new window); the shell answers with
    /// [`ShellMsg::NavigationDecision`].
    NavigationRequest {
        /// The host's id for the request.
        id: u64,
        /// Where to.
        url: String,
        /// A new window rather than the app's own view.
        new_window: bool,
    },
    /// Send to one app (its running instance, or its offline queue while it restarts).
    Send {
        /// The app's id.
        app: String,
        /// A topic, for the receiver to tell messages apart.
        topic: String,
        /// The bytes.
        payload: Vec<u8>,
    },
    /// Provide a service; its calls arrive as [`ShellMsg::Call`].
    Serve {
        /// The service's name.
        service: String,
        /// The actions it answers (empty: any).
        actions: Vec<String>,
    },
    /// Stop providing a service.
    Unserve {
        /// The service's name.
        service: String,
    },
    /// Call a service; answered with [`ShellMsg::Response`].
    Request {
        /// The host's id for the call.
        call: u64,
        /// The service.
        service: String,
        /// The action.
        action: String,
        /// The argument.
        payload: Vec<u8>,
        /// How long to wait for the answer.
        timeout_ms: u64,
    },
    /// The answer to a [`ShellMsg::Call`].
    Respond {
        /// The service.
        service: String,
        /// The call's id, from [`ShellMsg::Call`].
        call: u64,
        /// The answer, or why not.
        result: Result<Vec<u8>, String>,
    },
    /// The app's state for workspaces (JSON): kept by the shell, handed back when the app is
    /// restarted or its workspace restored.
    SaveState {
        /// The JSON bytes.
        state: Vec<u8>,
    },
    /// The page started (`done: false`) or finished (`done: true`) loading `url`.
    PageLoad {
        /// The page.
        url: String,
        /// Finished rather than started.
        done: bool,
    },
    /// An FDC3 DACP message from the page (`{type, payload, meta}` JSON), for the agent.
    Fdc3 {
        /// The JSON text.
        message: String,
    },
    /// The page asked to close its window (`window.close()`).
    CloseSelf,
    /// The host refused something from the page (a malformed or oversize message, a message
    /// from another frame); for the shell's record.
    PageRefused {
        /// What, and why.
        what: String,
    },
    /// WebKit asks whether the page may use something (camera, microphone, geolocation,
    /// notifications, the clipboard); answered with [`ShellMsg::PermissionDecision`].
    PermissionRequest {
        /// The host's id for the request.
        id: u64,
        /// The permissions it needs, all of them (`camera`, `microphone`, ...).
        permissions: Vec<String>,
    },
    /// A line the page wrote to its console (sent only for apps whose console the admin
    /// policy has the shell log).
    Console {
        /// How serious.
        level: ConsoleLevel,
        /// The line, at most [`MAX_CONSOLE_TEXT`] bytes.
        text: String,
    },
    /// The WebKit web process that now runs the page, in a host shared by several apps (a
    /// process group): the shell watches it (memory, CPU) as the app's own, once it has checked
    /// that it is a child of that host.
    WebProcess {
        /// Its process id.
        pid: u32,
    },
    /// The page's web process ended (it crashed, or went over WebKit's memory limit): the page
    /// is gone, and the shell restarts the app.
    WebProcessEnded {
        /// How, in words.
        reason: String,
    },
}

/// Longest console line passed on, in bytes.
pub const MAX_CONSOLE_TEXT: usize = 4096;

/// A console line's level (`console.debug`, `log`/`info`, `warn`, `error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConsoleLevel {
    /// `console.debug`.
    Debug,
    /// `console.log` and `console.info`.
    Info,
    /// `console.warn`.
    Warn,
    /// `console.error`, and errors the page did not catch.
    Error,
}

/// A rectangle in the shell window, in physical pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bounds {
    /// Left edge.
    pub x: i32,
    /// Top edge.
    pub y: i32,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
}

/// From the shell to an app host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ShellMsg {
    /// Answer to `Hello`.
    Welcome {
        /// The host's broker client id.
        client: u64,
    },
    /// A message for one of the host's subscriptions.
    Deliver {
        /// The host's id for the subscription.
        sub: u32,
        /// Broker sequence number.
        seq: u64,
        /// Topic.
        topic: String,
        /// The bytes.
        payload: Vec<u8>,
        /// When the broker accepted it (µs since the epoch).
        timestamp_us: u64,
        /// Sending client.
        sender: u64,
        /// The trace it travels in, if any: the receiving page's parent span.
        trace: Option<TraceParent>,
    },
    /// A request failed; `error` is the broker's message.
    Refused {
        /// What was asked (`publish prices.x`, `subscribe 3`).
        context: String,
        /// Why.
        error: String,
    },
    /// Liveness probe; answered with [`HostMsg::Pong`].
    Ping {
        /// Echoed back.
        nonce: u64,
    },
    /// Answer to [`HostMsg::Ping`].
    Pong {
        /// The ping's nonce.
        nonce: u64,
    },
    /// Run a trivial script in the page and answer with [`HostMsg::ProbeAck`]: a page stuck in a
    /// loop never answers, though its host process does.
    Probe {
        /// Echoed back.
        nonce: u64,
    },
    /// Where the app's view goes in the shell window.
    SetBounds(Bounds),
    /// Show or hide the app's view (a hidden tab, a dialog over it).
    SetVisible(bool),
    /// Evaluate a JavaScript expression in the page, await it if it is a promise, and answer
    /// with [`HostMsg::EvalResult`].
    Eval {
        /// The request's id.
        id: u64,
        /// The expression.
        js: String,
    },
    /// A message sent to this app (see [`HostMsg::Send`]).
    Direct {
        /// Its topic.
        topic: String,
        /// The bytes.
        payload: Vec<u8>,
        /// The sending app, if it has one.
        sender_app: Option<String>,
        /// Broker sequence number.
        seq: u64,
    },
    /// A call to a service this host provides; answer with [`HostMsg::Respond`].
    Call {
        /// The service.
        service: String,
        /// The call's id.
        call: u64,
        /// The action.
        action: String,
        /// The argument.
        payload: Vec<u8>,
        /// The calling app, if it has one.
        caller_app: Option<String>,
    },
    /// The answer to a [`HostMsg::Request`].
    Response {
        /// The host's id for the call.
        call: u64,
        /// The provider's answer, or why there is none.
        result: Result<Vec<u8>, String>,
    },
    /// The answer to [`HostMsg::NavigationRequest`].
    NavigationDecision {
        /// The request's id.
        id: u64,
        /// Go ahead.
        allow: bool,
    },
    /// An FDC3 DACP message from the agent for the page (JSON).
    Fdc3 {
        /// The JSON text.
        message: String,
    },
    /// The answer to [`HostMsg::PermissionRequest`].
    PermissionDecision {
        /// The request's id.
        id: u64,
        /// Granted.
        allow: bool,
    },
    /// Move the app's view into another shell window (X11 id `xid`); [`ShellMsg::SetBounds`]
    /// follows with where in it. The user moved the app to another window, or back.
    SetParent {
        /// The shell window's X11 id.
        xid: u64,
    },
}

/// From the shell to a host shared by several apps (a process group), on the control socket
/// the host got as standard input: one `SOCK_SEQPACKET` record per message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum GroupMsg {
    /// Open a view: `args` are what the shell would give a host of its own (`webview ...`);
    /// the record carries the view's own connection to the shell (a socket, as `SCM_RIGHTS`).
    /// The view lives as long as that connection.
    Open {
        /// The shell's name for it, for the host's log.
        label: String,
        /// The view's arguments.
        args: Vec<String>,
    },
    /// Liveness of the host's GTK thread (which every view in it needs): answered from it
    /// with [`GroupReply::Pong`].
    Ping {
        /// Echoed back.
        nonce: u64,
    },
}

/// From a shared host to the shell, on its control socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum GroupReply {
    /// The answer to [`GroupMsg::Ping`], from the host's GTK thread.
    Pong {
        /// The ping's nonce.
        nonce: u64,
    },
    /// A view could not be opened (its connection is closed with it).
    Refused {
        /// The view's label.
        label: String,
        /// Why.
        error: String,
    },
}

/// Largest control record, in bytes: a view's arguments are paths, a URL and a policy.
pub const MAX_GROUP_RECORD: usize = 64 * 1024;

/// A message that did not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("undecodable message: {0}")]
pub struct WireError(pub String);

/// Appends the encoding of `msg` to `out`.
pub fn encode<T: Serialize>(msg: &T, out: &mut Vec<u8>) -> Result<(), WireError> {
    let bytes = postcard::to_allocvec(msg).map_err(|e| WireError(e.to_string()))?;
    out.extend_from_slice(&bytes);
    Ok(())
}

/// Decodes one message, which must fill `bytes` exactly.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, WireError> {
    let (msg, rest) = postcard::take_from_bytes::<T>(bytes).map_err(|e| WireError(e.to_string()))?;
    if !rest.is_empty() {
        return Err(WireError(format!("{} bytes after the message", rest.len())));
    }
    Ok(msg)
}

#[cfg(test)]
mod tests;
