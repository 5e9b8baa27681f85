//! Linked desks (a desk link joins this agent to others): their apps offered for intents
//! beside this desk's, raises sent to them and their answers, and raises from them delivered
//! here. The link itself is the shell's; the agent only says what to send and takes what came.
//!
//! A raise from another desk is given a stand-in instance id (never one of this desk's): the
//! agent's usual path (resolution, launch, listener wait, result, deadlines) then runs
//! unchanged, and whatever it would tell that stand-in goes back to the desk instead.

use super::*;

/// Stand-in instance ids for raises from other desks have this bit set.
const FROM_DESK: u64 = 1 << 62;

/// How much longer than the other desk's own deadline a raise sent there waits for its
/// answer (that desk answers `IntentDeliveryFailed` itself when its app never listens).
const DESK_SLACK_MS: u64 = 5_000;

/// An app on a linked desk, as that desk offers it (only the intents the link shares).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteApp {
    /// Its id.
    pub app_id: String,
    /// Shown to people.
    pub title: String,
    /// The intents it takes from other desks.
    pub intents: Vec<IntentDecl>,
}

/// A raise crossing between desks: sent to `desk` ([`Output::RaiseOnDesk`]) or come from it
/// ([`Agent::raise_from_desk`]).
#[derive(Debug, Clone, PartialEq)]
pub struct DeskRaise {
    /// The other desk.
    pub desk: String,
    /// The request's id (the answers name it).
    pub request: String,
    /// The app on the handling desk.
    pub app: String,
    /// The intent.
    pub intent: String,
    /// The context.
    pub context: Value,
    /// The raising app (`AppIdentifier`, with its `desktopAgent`).
    pub source: Value,
}

/// A raise sent to another desk, waiting for its answers.
#[derive(Debug)]
struct Sent {
    raise: Raise,
    desk: String,
    intent: String,
    /// The other desk said where it went; the result is awaited.
    resolved: bool,
    deadline: u64,
}

/// A raise from another desk being handled here.
#[derive(Debug)]
struct Raiser {
    desk: String,
    request: String,
    source: Value,
}

/// The agent's view of the desks linked to it.
#[derive(Debug, Default)]
pub(super) struct Desks {
    /// This desk's name on the link, once linked.
    name: Option<String>,
    /// Each linked desk's apps.
    apps: BTreeMap<String, Vec<RemoteApp>>,
    /// Raises sent to other desks, by request id.
    sent: HashMap<String, Sent>,
    /// Raises from other desks, by their stand-in instance id.
    raisers: HashMap<u64, Raiser>,
}

/// The standard's error for a name another desk sent, if it is one of `allowed`.
fn known_error(name: Option<&str>, allowed: &[&'static str], otherwise: &'static str) -> &'static str {
    name.and_then(|n| allowed.iter().copied().find(|a| *a == n)).unwrap_or(otherwise)
}

impl Desks {
    /// Whether a raise sent to another desk still waits for its answer.
    pub(super) fn waiting(&self) -> bool {
        !self.sent.is_empty()
    }
}

impl Agent {
    /// Joins the agent to a desk link as desk `name`: `getInfo` says so, and app identifiers
    /// naming this desk are taken as local.
    pub fn link_as(&mut self, name: &str) {
        self.desks.name = Some(name.to_owned());
    }

    /// Whether the agent is linked to other desks.
    pub(super) fn linked(&self) -> bool {
        self.desks.name.is_some()
    }

    /// What desk `desk` offers now (nothing: it left); its apps join the intent targets.
    pub fn set_desk_apps(&mut self, desk: &str, apps: Vec<RemoteApp>) {
        if apps.is_empty() {
            self.desks.apps.remove(desk);
        } else {
            self.desks.apps.insert(desk.to_owned(), apps);
        }
    }

    /// The linked desks and how many apps each offers.
    pub fn desk_apps(&self) -> impl Iterator<Item = (&str, usize)> {
        self.desks.apps.iter().map(|(d, a)| (d.as_str(), a.len()))
    }

    /// The desk an app identifier names, if it is another desk than this one.
    pub(super) fn other_desk(&self, v: Option<&Value>) -> Option<String> {
        let desk = v?.get("desktopAgent")?.as_str()?;
        (Some(desk) != self.desks.name.as_deref()).then(|| desk.to_owned())
    }

    /// The linked desks' targets for `intent` (or any intent) taking `ctype` and giving
    /// `result`, optionally of one app and one desk.
    pub(super) fn desk_candidates(
        &self,
        intent: Option<&str>,
        ctype: Option<&str>,
        result: Option<&str>,
        app: Option<&str>,
        desk: Option<&str>,
    ) -> Vec<Choice> {
        let mut out = Vec::new();
        for (d, apps) in &self.desks.apps {
            if desk.is_some_and(|w| w != d) {
                continue;
            }
            for a in apps.iter().filter(|a| app.is_none_or(|w| w == a.app_id)) {
                for i in a.intents.iter().filter(|i| {
                    intent.is_none_or(|n| n == i.name)
                        && ctype.is_none_or(|t| i.contexts.iter().any(|c| c == t))
                        && result_matches(i.result_type.as_deref(), result)
                }) {
                    out.push(Choice {
                        intent: i.name.clone(),
                        intent_display: i.display_name.clone().unwrap_or_else(|| i.name.clone()),
                        app: a.app_id.clone(),
                        title: a.title.clone(),
                        instance: None,
                        desk: Some(d.clone()),
                    });
                }
            }
        }
        out
    }

    /// A target's `AppMetadata`: from the directory here, or as its desk described it.
    pub(super) fn choice_metadata(&self, c: &Choice) -> Value {
        match &c.desk {
            None => self.metadata(self.directory.get(&c.app), &c.app, c.instance),
            Some(desk) => json!({ "appId": c.app, "title": c.title, "name": c.title, "desktopAgent": desk }),
        }
    }

    /// Sends a raise to the desk `choice` is on.
    pub(super) fn raise_on_desk(&mut self, raise: Raise, choice: &Choice, desk: &str, out: &mut Vec<Output>) {
        let request = self.uuid();
        let mut source = self.identifier(raise.from);
        if let (Some(o), Some(name)) = (source.as_object_mut(), &self.desks.name) {
            o.insert("desktopAgent".into(), Value::String(name.clone()));
        }
        out.push(Output::RaiseOnDesk(DeskRaise {
            desk: desk.to_owned(),
            request: request.clone(),
            app: choice.app.clone(),
            intent: choice.intent.clone(),
            context: raise.context.clone(),
            source,
        }));
        self.desks.sent.insert(
            request,
            Sent {
                raise,
                desk: desk.to_owned(),
                intent: choice.intent.clone(),
                resolved: false,
                deadline: self.now_ms + LISTENER_TIMEOUT_MS + DESK_SLACK_MS,
            },
        );
    }

    /// An answer from `desk` to raise `request` sent there: `raiseIntentResponse` (where it
    /// went, or why not) or `raiseIntentResultResponse` (the result, or why none).
    pub fn desk_answer(&mut self, desk: &str, request: &str, kind: &str, payload: &Value, now_ms: u64) -> Vec<Output> {
        self.now_ms = now_ms;
        let mut out = Vec::new();
        // Only the desk the raise went to may answer it.
        if self.desks.sent.get(request).is_none_or(|s| s.desk != desk) {
            return out;
        }
        let error = payload.get("error").and_then(Value::as_str);
        match kind {
            "raiseIntentResponse" => {
                let Some(sent) = self.desks.sent.get_mut(request).filter(|s| !s.resolved) else { return out };
                let resolved_app =
                    payload.pointer("/intentResolution/source/appId").and_then(Value::as_str).filter(|a| !a.is_empty());
                let answer = match (error, resolved_app) {
                    (None, Some(app)) => {
                        sent.resolved = true;
                        sent.deadline = now_ms + RESULT_TIMEOUT_MS;
                        let mut source = json!({ "appId": app, "desktopAgent": desk });
                        if let Some(i) = payload.pointer("/intentResolution/source/instanceId").and_then(Value::as_str)
                        {
                            source["instanceId"] = Value::String(i.to_owned());
                        }
                        Ok(json!({ "intentResolution": { "source": source, "intent": sent.intent } }))
                    }
                    (e, _) => Err(known_error(
                        e,
                        &[
                            NO_APPS_FOUND,
                            TARGET_APP_UNAVAILABLE,
                            TARGET_INSTANCE_UNAVAILABLE,
                            MALFORMED_CONTEXT,
                            USER_CANCELLED,
                        ],
                        INTENT_DELIVERY_FAILED,
                    )),
                };
                let (from, response, uuid) = (sent.raise.from, sent.raise.response, sent.raise.request_uuid.clone());
                if answer.is_err() {
                    self.desks.sent.remove(request);
                }
                self.reply(&mut out, from, response, &uuid, answer);
            }
            "raiseIntentResultResponse" => {
                if !self.desks.sent.get(request).is_some_and(|s| s.resolved) {
                    return out;
                }
                let Some(sent) = self.desks.sent.remove(request) else { return out };
                let answer = match (error, payload.get("intentResult").and_then(Value::as_object)) {
                    (Some(e), _) => Err(known_error(Some(e), &[INTENT_HANDLER_REJECTED], NO_RESULT_RETURNED)),
                    (None, Some(r)) if r.is_empty() => Ok(json!({ "intentResult": {} })),
                    // A context crosses; a channel does not (it lives on the other desk).
                    (None, Some(r)) => match valid_context(r.get("context")) {
                        Some(c) => Ok(json!({ "intentResult": { "context": c } })),
                        None => Err(NO_RESULT_RETURNED),
                    },
                    (None, None) => Ok(json!({ "intentResult": {} })),
                };
                self.reply(&mut out, sent.raise.from, "raiseIntentResultResponse", &sent.raise.request_uuid, answer);
            }
            _ => {}
        }
        out
    }

    /// A raise from another desk for one of this desk's apps: delivered to a running instance
    /// listening for it, else to a new one; the answers go back as [`Output::AnswerDesk`].
    pub fn raise_from_desk(&mut self, raise: DeskRaise, now_ms: u64) -> Vec<Output> {
        self.now_ms = now_ms;
        let mut out = Vec::new();
        let stand_in = FROM_DESK | self.id();
        self.desks.raisers.insert(
            stand_in,
            Raiser { desk: raise.desk.clone(), request: raise.request.clone(), source: raise.source.clone() },
        );
        let Some(context) = valid_context(Some(&raise.context)).cloned() else {
            self.reply(&mut out, stand_in, "raiseIntentResponse", &raise.request, Err(MALFORMED_CONTEXT));
            return out;
        };
        let ctype = context_type(&context).to_owned();
        let local = Raise {
            from: stand_in,
            request_uuid: raise.request,
            response: "raiseIntentResponse",
            context,
            trace: Trace::default(),
        };
        let choices = self.candidates(Some(&raise.intent), Some(&ctype), None, Some(&raise.app));
        match choices.iter().find(|c| c.instance.is_some()).or_else(|| choices.first()) {
            Some(c) => {
                let c = c.clone();
                self.go(local, &c, &mut out);
            }
            None => self.reply(&mut out, stand_in, "raiseIntentResponse", &local.request_uuid, Err(NO_APPS_FOUND)),
        }
        out
    }

    /// The app identifier of a raiser from another desk.
    pub(super) fn desk_raiser(&self, instance: u64) -> Option<&Value> {
        self.desks.raisers.get(&instance).map(|r| &r.source)
    }

    /// What the agent tells a raiser from another desk goes back to that desk: `None` when
    /// `to` is one (the message is in `out`), `Some(payload)` back otherwise.
    pub(super) fn answer_desk(&mut self, out: &mut Vec<Output>, to: u64, kind: &str, payload: Value) -> Option<Value> {
        if to & FROM_DESK == 0 {
            return Some(payload);
        }
        let failed = payload.get("error").is_some();
        // A stand-in already answered for the last time: nothing more goes.
        let r = self.desks.raisers.get(&to)?;
        out.push(Output::AnswerDesk {
            desk: r.desk.clone(),
            request: r.request.clone(),
            kind: kind.to_owned(),
            payload,
        });
        // The last thing it will hear: the result, or a failure to deliver.
        if kind == "raiseIntentResultResponse" || failed {
            self.desks.raisers.remove(&to);
        }
        None
    }

    /// Whether `instance` stands for a raise from another desk.
    pub(super) fn from_desk(instance: u64) -> bool {
        instance & FROM_DESK != 0
    }

    /// Ends raises sent to other desks that are past their deadline, and those whose raiser
    /// is gone (`gone`).
    pub(super) fn sweep_desks(&mut self, now_ms: u64, out: &mut Vec<Output>) {
        let late: Vec<String> =
            self.desks.sent.iter().filter(|(_, s)| s.deadline <= now_ms).map(|(k, _)| k.clone()).collect();
        for k in late {
            if let Some(s) = self.desks.sent.remove(&k) {
                let r = s.raise;
                if s.resolved {
                    self.reply(out, r.from, "raiseIntentResultResponse", &r.request_uuid, Err(NO_RESULT_RETURNED));
                } else {
                    self.reply(out, r.from, r.response, &r.request_uuid, Err(INTENT_DELIVERY_FAILED));
                }
            }
        }
    }

    /// Forgets the raises `instance` sent to other desks (it is gone).
    pub(super) fn forget_desk_raises(&mut self, instance: u64) {
        self.desks.sent.retain(|_, s| s.raise.from != instance);
    }
}
