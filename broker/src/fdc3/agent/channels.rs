//! Channels and contexts: user, app and private channels, joining and leaving, broadcasts and
//! the last context per type, context and event listeners, private channel events.

use super::*;

impl Agent {
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

    pub(super) fn change_channel(&mut self, instance: u64, channel: Option<String>, out: &mut Vec<Output>) {
        let Some(i) = self.instances.get_mut(&instance) else { return };
        if i.channel == channel {
            return;
        }
        i.channel.clone_from(&channel);
        let event = self.event("channelChangedEvent", json!({ "currentChannelId": channel }));
        out.push(Output::Send { to: instance, message: event });
        out.push(Output::ChannelChanged { instance, channel });
    }

    pub(super) fn get_user_channels(&self) -> Value {
        let list: Vec<Value> = user_channels().iter().map(|(id, ..)| self.channel_json(id)).collect();
        json!({ "userChannels": list })
    }

    pub(super) fn join(&mut self, req: &Req<'_>, out: &mut Vec<Output>) -> Answer {
        let id = req.payload.get("channelId").and_then(Value::as_str).ok_or(INVALID_ARGUMENTS)?;
        if !matches!(self.channels.get(id).map(|c| &c.kind), Some(Kind::User)) {
            return Err(NO_CHANNEL_FOUND);
        }
        self.change_channel(req.from, Some(id.to_owned()), out);
        Ok(json!({}))
    }

    pub(super) fn get_or_create(&mut self, req: &Req<'_>) -> Answer {
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

    pub(super) fn create_private(&mut self, from: u64) -> Value {
        let id = format!("private.{}", self.uuid());
        self.channels.insert(
            id.clone(),
            Channel { kind: Kind::Private { members: BTreeSet::from([from]) }, contexts: Vec::new() },
        );
        json!({ "privateChannel": self.channel_json(&id) })
    }

    /// Checks that `from` may use channel `id`.
    pub(super) fn usable(&self, from: u64, id: &str) -> Result<(), &'static str> {
        match self.channels.get(id).map(|c| &c.kind) {
            None => Err(NO_CHANNEL_FOUND),
            Some(Kind::Private { members }) if !members.contains(&from) => Err(ACCESS_DENIED),
            Some(_) => Ok(()),
        }
    }

    pub(super) fn private_disconnect(&mut self, req: &Req<'_>, out: &mut Vec<Output>) -> Answer {
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
    pub(super) fn disconnect(&mut self, instance: u64, id: &str, out: &mut Vec<Output>) {
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
    pub(super) fn private_event(&mut self, from: u64, id: &str, kind: &str, payload: &Value, out: &mut Vec<Output>) {
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

    pub(super) fn broadcast(&mut self, req: &Req<'_>, out: &mut Vec<Output>) -> Answer {
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
        let targets = self.listeners_of(&id, &ctype, Some(req.from));
        // The trace it travels in: FDC3 3.0's `metadata.traceId` and the W3C `traceparent`.
        let trace = Trace::of(req);
        for to in targets {
            let payload = json!({ "channelId": id, "context": context, "originatingApp": source });
            let mut message = self.event("broadcastEvent", payload);
            trace.mark(&mut message, &source);
            out.push(Output::Send { to, message });
        }
        out.push(Output::Record {
            topic: super::BROADCAST_RECORDS,
            body: json!({ "channelId": id, "context": context, "source": source }),
        });
        Ok(json!({}))
    }

    /// The instances (but `except`) with a context listener for `ctype` on channel `id`,
    /// explicitly or through the user channel they follow (members only, for a private one).
    fn listeners_of(&self, id: &str, ctype: &str, except: Option<u64>) -> Vec<u64> {
        let private = matches!(self.channels.get(id).map(|c| &c.kind), Some(Kind::Private { .. }));
        self.instances
            .iter()
            .filter(|(k, _)| Some(**k) != except)
            .filter(|(k, _)| {
                !private
                    || matches!(&self.channels.get(id).map(|c| &c.kind), Some(Kind::Private { members }) if members.contains(k))
            })
            .filter(|(_, i)| {
                i.context.values().any(|(c, t)| {
                    let on = match c {
                        Some(c) => c == id,
                        None => i.channel.as_deref() == Some(id),
                    };
                    on && t.as_deref().is_none_or(|t| t == ctype)
                })
            })
            .map(|(k, _)| *k)
            .collect()
    }

    /// A broadcast on user or app channel `channel_id` from another desk (through the desk link):
    /// kept as the channel's context of its type and delivered to the listeners here, with
    /// `origin` (the app and desk it came from) as the originating app. Refused (nothing
    /// happens) for a private channel or a context that is not one; an app channel not used here
    /// yet is created.
    pub fn remote_broadcast(&mut self, channel_id: &str, context: &Value, origin: &Value, now_ms: u64) -> Vec<Output> {
        self.now_ms = now_ms;
        let mut out = Vec::new();
        let Some(context) = valid_context(Some(context)).cloned() else { return out };
        // An app channel shared with other desks exists here once they use it.
        if !self.channels.contains_key(channel_id) && !channel_id.starts_with("private.") {
            self.channels.insert(channel_id.to_owned(), Channel { kind: Kind::App, contexts: Vec::new() });
        }
        let Some(ch) = self.channels.get_mut(channel_id).filter(|c| matches!(c.kind, Kind::User | Kind::App)) else {
            return out;
        };
        let ctype = context_type(&context).to_owned();
        ch.contexts.retain(|c| context_type(c) != ctype);
        ch.contexts.push(context.clone());
        for to in self.listeners_of(channel_id, &ctype, None) {
            let message = self.event(
                "broadcastEvent",
                json!({ "channelId": channel_id, "context": context, "originatingApp": origin }),
            );
            out.push(Output::Send { to, message });
        }
        out.push(Output::Record {
            topic: super::BROADCAST_RECORDS,
            body: json!({ "channelId": channel_id, "context": context, "source": origin, "remote": true }),
        });
        out
    }

    pub(super) fn current_context(&self, req: &Req<'_>) -> Answer {
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

    pub(super) fn add_context_listener(&mut self, req: &Req<'_>, out: &mut Vec<Output>) -> Answer {
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
    pub(super) fn deliver_open_context(&mut self, instance: u64, ctype: Option<&str>, out: &mut Vec<Output>) {
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

    pub(super) fn remove_context_listener(&mut self, req: &Req<'_>, out: &mut Vec<Output>) -> Answer {
        let id = req.payload.get("listenerUUID").and_then(Value::as_str).ok_or(INVALID_ARGUMENTS)?;
        let removed = self.instances.get_mut(&req.from).and_then(|i| i.context.remove(id));
        if let Some((Some(c), t)) = removed
            && matches!(self.channels.get(&c).map(|c| &c.kind), Some(Kind::Private { .. }))
        {
            self.private_event(req.from, &c, "unsubscribe", &json!({ "privateChannelId": c, "contextType": t }), out);
        }
        Ok(json!({}))
    }

    pub(super) fn add_event_listener(&mut self, req: &Req<'_>) -> Answer {
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

    pub(super) fn add_private_listener(&mut self, req: &Req<'_>, out: &mut Vec<Output>) -> Answer {
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
}
