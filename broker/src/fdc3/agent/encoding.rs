//! DACP encoding: the agent's messages (`{type, payload, meta}`) with their ids and times,
//! and how apps, instances and channels are described in them.

use super::*;

impl Agent {
    pub(super) fn id(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    /// A fresh uuid-shaped id (v4 layout; from a seeded SplitMix64 stream).
    pub(crate) fn uuid(&mut self) -> String {
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

    pub(super) fn timestamp(&self) -> String {
        Timestamp(self.now_ms.saturating_mul(1000)).to_rfc3339()
    }

    pub(super) fn identifier(&self, instance: u64) -> Value {
        if let Some(source) = self.desk_raiser(instance) {
            return source.clone();
        }
        let app = self.instances.get(&instance).map_or("", |i| i.app.as_str());
        json!({ "appId": app, "instanceId": instance.to_string() })
    }

    pub(super) fn response(&mut self, kind: &str, request_uuid: &str, payload: Value) -> Value {
        let response_uuid = self.uuid();
        let meta = json!({ "requestUuid": request_uuid, "responseUuid": response_uuid, "timestamp": self.timestamp() });
        message(kind, payload, meta)
    }

    pub(super) fn event(&mut self, kind: &str, payload: Value) -> Value {
        let meta = json!({ "eventUuid": self.uuid(), "timestamp": self.timestamp() });
        message(kind, payload, meta)
    }

    pub(super) fn reply(&mut self, out: &mut Vec<Output>, to: u64, kind: &str, request_uuid: &str, answer: Answer) {
        let payload = match answer {
            Ok(v) => v,
            Err(e) => json!({ "error": e }),
        };
        let Some(payload) = self.answer_desk(out, to, kind, payload) else { return };
        let message = self.response(kind, request_uuid, payload);
        out.push(Output::Send { to, message });
    }

    pub(super) fn metadata(&self, record: Option<&AppRecord>, app: &str, instance: Option<u64>) -> Value {
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

    pub(super) fn channel_json(&self, id: &str) -> Value {
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
}
