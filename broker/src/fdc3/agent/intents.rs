//! Intents and results: intent listeners, finding intents over the directory and live
//! listeners, raising (delivered, resolved by the user, or launched), results, and `open`.

use super::*;

impl Agent {
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

    pub(super) fn add_intent_listener(&mut self, req: &Req<'_>, out: &mut Vec<Output>) -> Answer {
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

    pub(super) fn intent_display(&self, intent: &str) -> String {
        self.directory
            .apps()
            .find_map(|a| a.intent(intent).and_then(|d| d.display_name.clone()))
            .unwrap_or_else(|| intent.to_owned())
    }

    /// Every target for `intent` (or any intent) taking `ctype` and giving `result`, optionally
    /// of one app: running instances with a listener, then new instances of directory apps
    /// that have no such instance running.
    pub(super) fn candidates(
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
                        desk: None,
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
                    desk: None,
                });
            }
        }
        out
    }

    /// Groups targets by intent as `AppIntent`s.
    pub(super) fn app_intents(&self, choices: &[Choice]) -> Vec<Value> {
        let mut by_intent: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
        for c in choices {
            by_intent.entry(c.intent.as_str()).or_default().push(self.choice_metadata(c));
        }
        by_intent
            .into_iter()
            .map(|(name, apps)| {
                json!({ "intent": { "name": name, "displayName": self.intent_display(name) }, "apps": apps })
            })
            .collect()
    }

    pub(super) fn find_intent(&self, req: &Req<'_>) -> Answer {
        let intent =
            req.payload.get("intent").and_then(Value::as_str).filter(|s| !s.is_empty()).ok_or(INVALID_ARGUMENTS)?;
        let ctype = match req.payload.get("context") {
            None | Some(Value::Null) => None,
            c => Some(context_type(valid_context(c).ok_or(MALFORMED_CONTEXT)?)),
        };
        let result = req.payload.get("resultType").and_then(Value::as_str);
        let mut choices = self.candidates(Some(intent), ctype, result, None);
        choices.extend(self.desk_candidates(Some(intent), ctype, result, None, None));
        if choices.is_empty() {
            return Err(NO_APPS_FOUND);
        }
        let apps: Vec<Value> = choices.iter().map(|c| self.choice_metadata(c)).collect();
        Ok(
            json!({ "appIntent": { "intent": { "name": intent, "displayName": self.intent_display(intent) }, "apps": apps } }),
        )
    }

    pub(super) fn find_intents_by_context(&self, req: &Req<'_>) -> Answer {
        let context = valid_context(req.payload.get("context")).ok_or(MALFORMED_CONTEXT)?;
        let result = req.payload.get("resultType").and_then(Value::as_str);
        let ctype = context_type(context);
        let mut choices = self.candidates(None, Some(ctype), result, None);
        choices.extend(self.desk_candidates(None, Some(ctype), result, None, None));
        if choices.is_empty() {
            return Err(NO_APPS_FOUND);
        }
        Ok(json!({ "appIntents": self.app_intents(&choices) }))
    }

    pub(super) fn raise_intent(&mut self, req: &Req<'_>, out: &mut Vec<Output>) -> Result<(), &'static str> {
        let intent = req
            .payload
            .get("intent")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or(INVALID_ARGUMENTS)?
            .to_owned();
        let context = valid_context(req.payload.get("context")).ok_or(MALFORMED_CONTEXT)?.clone();
        let target = self.target(req.payload.get("app"))?;
        let raise = Raise {
            from: req.from,
            request_uuid: req.uuid.clone(),
            response: "raiseIntentResponse",
            context,
            trace: Trace::of(req),
        };
        let ctype = context_type(&raise.context).to_owned();
        if let (Some((app, _)), Some(desk)) = (&target, self.other_desk(req.payload.get("app"))) {
            let choices = self.desk_candidates(Some(&intent), Some(&ctype), None, Some(app), Some(&desk));
            if choices.is_empty() {
                return Err(TARGET_APP_UNAVAILABLE);
            }
            return self.choose(raise, Some(intent), choices, out);
        }
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
            None => {
                let mut c = self.candidates(Some(&intent), Some(&ctype), None, None);
                c.extend(self.desk_candidates(Some(&intent), Some(&ctype), None, None, None));
                c
            }
        };
        self.choose(raise, Some(intent), choices, out)
    }

    pub(super) fn raise_for_context(&mut self, req: &Req<'_>, out: &mut Vec<Output>) -> Result<(), &'static str> {
        let context = valid_context(req.payload.get("context")).ok_or(MALFORMED_CONTEXT)?.clone();
        let target = self.target(req.payload.get("app"))?;
        let ctype = context_type(&context).to_owned();
        let raise = Raise {
            from: req.from,
            request_uuid: req.uuid.clone(),
            response: "raiseIntentForContextResponse",
            context,
            trace: Trace::of(req),
        };
        if let (Some((app, _)), Some(desk)) = (&target, self.other_desk(req.payload.get("app"))) {
            let choices = self.desk_candidates(None, Some(&ctype), None, Some(app), Some(&desk));
            if choices.is_empty() {
                return Err(TARGET_APP_UNAVAILABLE);
            }
            return self.choose(raise, None, choices, out);
        }
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
            None => {
                let mut c = self.candidates(None, Some(&ctype), None, None);
                c.extend(self.desk_candidates(None, Some(&ctype), None, None, None));
                c
            }
        };
        self.choose(raise, None, choices, out)
    }

    /// One target: go. Several: ask the user. None: `NoAppsFound`.
    pub(super) fn choose(
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

    pub(super) fn go(&mut self, raise: Raise, choice: &Choice, out: &mut Vec<Output>) {
        if let Some(desk) = &choice.desk {
            self.raise_on_desk(raise, choice, desk, out);
            return;
        }
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
    pub(super) fn deliver(&mut self, raise: Raise, intent: &str, target: u64, out: &mut Vec<Output>) {
        let source = self.identifier(raise.from);
        let mut event = self.event(
            "intentEvent",
            json!({
                "intent": intent,
                "context": raise.context,
                "originatingApp": source,
                "raiseIntentRequestUuid": raise.request_uuid,
            }),
        );
        raise.trace.mark(&mut event, &source);
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
            topic: super::INTENT_RECORDS,
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

    pub(super) fn intent_result(&mut self, req: &Req<'_>, out: &mut Vec<Output>) -> Answer {
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
                    } else if Self::from_desk(owed.raiser) {
                        // A channel lives on this desk: it cannot go back to another.
                        Err(NO_RESULT_RETURNED)
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

    pub(super) fn open(&mut self, req: &Req<'_>, out: &mut Vec<Output>) -> Result<(), &'static str> {
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
