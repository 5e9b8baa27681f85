//! Instance lifecycle: instances added, reset (a page reload or a host restart) and removed,
//! what they were waiting for failed, apps launched for an intent or `open`, and what the agent
//! tells about apps and instances (`getInfo`, `getAppMetadata`, `findInstances`).

use super::*;

impl Agent {
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
    pub(super) fn forget(&mut self, instance: u64, gone: bool, out: &mut Vec<Output>) {
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
        self.forget_desk_raises(instance);
        let questions: Vec<u64> =
            self.questions.iter().filter(|(_, q)| q.raise.from == instance).map(|(k, _)| *k).collect();
        for q in questions {
            self.questions.remove(&q);
            out.push(Output::CloseResolver { resolve: q });
        }
    }

    /// A wait that will not be met: its requester gets the matching error (an `open` without
    /// a context has nothing to deliver: the app was opened, and that is the answer).
    pub(super) fn fail(&mut self, instance: u64, purpose: Purpose, out: &mut Vec<Output>) {
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
    pub(super) fn listener_added(&mut self, instance: u64, out: &mut Vec<Output>) {
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

    pub(super) fn get_info(&self, from: u64) -> Value {
        let app = self.instances.get(&from).map_or("", |i| i.app.as_str());
        let metadata = self.metadata(self.directory.get(app), app, Some(from));
        json!({ "implementationMetadata": {
            "fdc3Version": FDC3_VERSION,
            "provider": "Tessera",
            "providerVersion": self.provider_version,
            "optionalFeatures": {
                "OriginatingAppMetadata": true,
                "UserChannelMembershipAPIs": true,
                "DesktopAgentBridging": self.linked(),
            },
            "appMetadata": metadata,
        }})
    }

    /// `{appId, instanceId?}` from a payload field; `Err` if it is there but malformed.
    pub(super) fn app_identifier(v: Option<&Value>) -> Result<Option<(String, Option<String>)>, &'static str> {
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
    pub(super) fn target(&self, v: Option<&Value>) -> Result<Option<(String, Option<String>)>, &'static str> {
        Ok(Self::app_identifier(v)?.map(|(app, instance)| {
            if self.directory.get(&app).is_some() || self.instances.values().any(|i| i.app == app) {
                return (app, instance);
            }
            let by_name = self.directory.apps().find(|r| r.name.as_deref() == Some(app.as_str()) || r.title == app);
            (by_name.map_or(app, |r| r.app_id.clone()), instance)
        }))
    }

    /// The running instance `instance_id` names, if it is one of `app`'s.
    pub(super) fn instance_of(&self, app: &str, instance_id: &str) -> Option<u64> {
        let n = instance_id.parse::<u64>().ok()?;
        (self.instances.get(&n)?.app == app).then_some(n)
    }

    pub(super) fn get_app_metadata(&self, req: &Req<'_>) -> Answer {
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

    pub(super) fn find_instances(&self, req: &Req<'_>) -> Answer {
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
}
