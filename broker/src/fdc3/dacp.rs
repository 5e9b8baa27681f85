//! DACP requests as the agent takes them: parsed once, where they enter the shell, into the
//! request's type ([`RequestType`]), its id and its payload. The agent matches on the type and
//! answers with the matching response; nothing parses the text again.

use serde_json::{Map, Value};

use super::Fdc3Error;

/// The requests an app may make of the Desktop Agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RequestType {
    /// `getInfoRequest`.
    GetInfo,
    /// `getAppMetadataRequest`.
    GetAppMetadata,
    /// `findInstancesRequest`.
    FindInstances,
    /// `getUserChannelsRequest`.
    GetUserChannels,
    /// `getCurrentChannelRequest`.
    GetCurrentChannel,
    /// `joinUserChannelRequest`.
    JoinUserChannel,
    /// `leaveCurrentChannelRequest`.
    LeaveCurrentChannel,
    /// `getOrCreateChannelRequest`.
    GetOrCreateChannel,
    /// `createPrivateChannelRequest`.
    CreatePrivateChannel,
    /// `privateChannelDisconnectRequest`.
    PrivateChannelDisconnect,
    /// `broadcastRequest`.
    Broadcast,
    /// `getCurrentContextRequest`.
    GetCurrentContext,
    /// `addContextListenerRequest`.
    AddContextListener,
    /// `contextListenerUnsubscribeRequest`.
    ContextListenerUnsubscribe,
    /// `addEventListenerRequest`.
    AddEventListener,
    /// `eventListenerUnsubscribeRequest`.
    EventListenerUnsubscribe,
    /// `privateChannelAddEventListenerRequest`.
    PrivateChannelAddEventListener,
    /// `privateChannelUnsubscribeEventListenerRequest`.
    PrivateChannelUnsubscribeEventListener,
    /// `addIntentListenerRequest`.
    AddIntentListener,
    /// `intentListenerUnsubscribeRequest`.
    IntentListenerUnsubscribe,
    /// `findIntentRequest`.
    FindIntent,
    /// `findIntentsByContextRequest`.
    FindIntentsByContext,
    /// `raiseIntentRequest`.
    RaiseIntent,
    /// `raiseIntentForContextRequest`.
    RaiseIntentForContext,
    /// `intentResultRequest`.
    IntentResult,
    /// `openRequest`.
    Open,
}

/// Each type and the stem of its name (`broadcast` for `broadcastRequest` and
/// `broadcastResponse`).
const NAMES: &[(RequestType, &str)] = &[
    (RequestType::GetInfo, "getInfo"),
    (RequestType::GetAppMetadata, "getAppMetadata"),
    (RequestType::FindInstances, "findInstances"),
    (RequestType::GetUserChannels, "getUserChannels"),
    (RequestType::GetCurrentChannel, "getCurrentChannel"),
    (RequestType::JoinUserChannel, "joinUserChannel"),
    (RequestType::LeaveCurrentChannel, "leaveCurrentChannel"),
    (RequestType::GetOrCreateChannel, "getOrCreateChannel"),
    (RequestType::CreatePrivateChannel, "createPrivateChannel"),
    (RequestType::PrivateChannelDisconnect, "privateChannelDisconnect"),
    (RequestType::Broadcast, "broadcast"),
    (RequestType::GetCurrentContext, "getCurrentContext"),
    (RequestType::AddContextListener, "addContextListener"),
    (RequestType::ContextListenerUnsubscribe, "contextListenerUnsubscribe"),
    (RequestType::AddEventListener, "addEventListener"),
    (RequestType::EventListenerUnsubscribe, "eventListenerUnsubscribe"),
    (RequestType::PrivateChannelAddEventListener, "privateChannelAddEventListener"),
    (RequestType::PrivateChannelUnsubscribeEventListener, "privateChannelUnsubscribeEventListener"),
    (RequestType::AddIntentListener, "addIntentListener"),
    (RequestType::IntentListenerUnsubscribe, "intentListenerUnsubscribe"),
    (RequestType::FindIntent, "findIntent"),
    (RequestType::FindIntentsByContext, "findIntentsByContext"),
    (RequestType::RaiseIntent, "raiseIntent"),
    (RequestType::RaiseIntentForContext, "raiseIntentForContext"),
    (RequestType::IntentResult, "intentResult"),
    (RequestType::Open, "open"),
];

impl RequestType {
    /// The type named `name` (`broadcastRequest`), if it is one.
    pub fn from_name(name: &str) -> Option<Self> {
        let stem = name.strip_suffix("Request")?;
        NAMES.iter().find(|(_, s)| *s == stem).map(|(t, _)| *t)
    }

    /// The stem of its name: `broadcast` for `broadcastRequest`.
    pub fn stem(self) -> &'static str {
        NAMES.iter().find(|(t, _)| *t == self).map_or("", |(_, s)| s)
    }

    /// The request's name, `broadcastRequest`.
    pub fn request_name(self) -> String {
        format!("{}Request", self.stem())
    }

    /// The name of its answer, `broadcastResponse`.
    pub fn response_name(self) -> String {
        format!("{}Response", self.stem())
    }
}

/// One DACP request (`{type, payload, meta}`), checked: a known type, a `meta.requestUuid`,
/// and a payload that is an object (or absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// What is asked.
    pub kind: RequestType,
    /// `meta.requestUuid`, which the response repeats.
    pub uuid: String,
    /// The request's arguments.
    pub payload: Map<String, Value>,
    /// The W3C trace it was sent in (`meta.traceparent`, Tessera's addition). The shell puts
    /// its own span's context here before the agent sees it: what receivers are told.
    pub trace: Option<protocol::TraceParent>,
    /// The app's own trace id for a context (`payload.metadata.traceId`, FDC3 3.0's
    /// `AppProvidableContextMetadata`), passed through to receivers as it is.
    pub trace_id: Option<String>,
}

/// Longest `metadata.traceId` passed on.
const MAX_TRACE_ID: usize = 128;

impl Request {
    /// Parses a DACP request an app sent.
    pub fn parse(text: &str) -> Result<Self, Fdc3Error> {
        let value: Value = serde_json::from_str(text).map_err(|e| Fdc3Error::Malformed(e.to_string()))?;
        let Value::Object(mut message) = value else {
            return Err(Fdc3Error::Malformed("not a JSON object".into()));
        };
        let kind = match message.get("type") {
            Some(Value::String(k)) => k.clone(),
            _ => return Err(Fdc3Error::Malformed("no \"type\"".into())),
        };
        let uuid = message
            .get("meta")
            .and_then(|m| m.get("requestUuid"))
            .and_then(Value::as_str)
            .ok_or_else(|| Fdc3Error::Malformed(format!("{}: no \"meta.requestUuid\"", crate::error::echo(&kind))))?
            .to_owned();
        let payload = match message.remove("payload") {
            Some(Value::Object(p)) => p,
            None | Some(Value::Null) => Map::new(),
            Some(_) => {
                return Err(Fdc3Error::Malformed(format!(
                    "{}: \"payload\" is not an object",
                    crate::error::echo(&kind)
                )));
            }
        };
        let trace = match message.get("meta").and_then(|m| m.get("traceparent")) {
            None | Some(Value::Null) => None,
            Some(Value::String(t)) => Some(protocol::TraceParent::parse(t).map_err(|e| {
                Fdc3Error::Malformed(format!("{}: \"meta.traceparent\" is {e}", crate::error::echo(&kind)))
            })?),
            Some(_) => {
                return Err(Fdc3Error::Malformed(format!(
                    "{}: \"meta.traceparent\" is not a string",
                    crate::error::echo(&kind)
                )));
            }
        };
        let trace_id = match payload.get("metadata").and_then(|m| m.get("traceId")) {
            None | Some(Value::Null) => None,
            Some(Value::String(t)) if !t.is_empty() && t.len() <= MAX_TRACE_ID => Some(t.clone()),
            Some(_) => {
                return Err(Fdc3Error::Malformed(format!(
                    "{}: \"payload.metadata.traceId\" is not a string of 1 to {MAX_TRACE_ID} characters",
                    crate::error::echo(&kind)
                )));
            }
        };
        let kind = RequestType::from_name(&kind).ok_or_else(|| Fdc3Error::UnknownType(crate::error::echo(&kind)))?;
        Ok(Self { kind, uuid, payload, trace, trace_id })
    }
}

#[cfg(test)]
mod tests;
