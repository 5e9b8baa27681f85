//! The native-app endpoint's transport: how a process outside the shell (Python, Node, Rust,
//! anything that can open a Unix socket) speaks to it. The messages are the JSON envelopes of
//! [`crate::envelope`], the same a web page's preload sends; this module adds the frames around
//! them and the handshake.
//!
//! ```text
//! frame = u32 length (big-endian) | that many bytes of UTF-8 JSON (one envelope)
//! ```
//!
//! The first frame a client sends is `{"type": "hello", "payload": {"protocol": 1, "token":
//! "..."}}` (the one-time launch token the shell gave the process in `TESSERA_LAUNCH_TOKEN`);
//! the shell answers `{"type": "welcome", "payload": {"protocol": 1, "app": ..., "instance": ...,
//! "state": ..., "limits": {...}}}`, or `{"type": "error", "payload": {"error": ...}}` and closes. Every
//! length is checked against [`MAX_FRAME`] before anything is buffered, and a malformed frame is
//! a typed [`NativeError`], never a panic (see the `native` fuzz target).

use serde_json::{Value, json};

use crate::envelope::MAX_APP_MESSAGE;

/// Version of the native protocol; a client that speaks another is refused with a message
/// saying which the shell speaks.
pub const NATIVE_PROTOCOL: u64 = 1;

/// Largest frame a client may send, in bytes (an envelope's limit).
pub const MAX_FRAME: usize = MAX_APP_MESSAGE;

/// The environment variable holding the endpoint's socket path for a launched native app.
pub const ENV_ENDPOINT: &str = "TESSERA_ENDPOINT";
/// The environment variable holding a launched native app's one-time launch token.
pub const ENV_TOKEN: &str = "TESSERA_LAUNCH_TOKEN";
/// The environment variable holding a launched native app's id (for its own information: the
/// token, not this, decides who it is).
pub const ENV_APP_ID: &str = "TESSERA_APP_ID";

const LEN: usize = 4;

/// Why a client's bytes were refused. The connection is closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NativeError {
    /// A frame over [`MAX_FRAME`] (or empty).
    #[error("a frame of {len} bytes; frames are 1 to {MAX_FRAME} bytes")]
    FrameSize {
        /// Its claimed length.
        len: usize,
    },
    /// A frame that is not UTF-8.
    #[error("a frame that is not UTF-8 (at byte {at})")]
    NotUtf8 {
        /// The first bad byte.
        at: usize,
    },
    /// A hello that is not one.
    #[error("bad hello: {0}")]
    Hello(String),
}

/// Splits a byte stream from a client into frames: feed what was read, then take frames until
/// there is none whole.
#[derive(Debug, Default)]
pub struct FrameReader {
    buf: Vec<u8>,
    /// Where the unread bytes start in `buf`.
    at: usize,
}

impl FrameReader {
    /// A reader with nothing buffered.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds bytes read from the client.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.at > 0 && self.at == self.buf.len() {
            self.buf.clear();
            self.at = 0;
            if self.buf.capacity() > 1 << 20 {
                // A large frame went through: do not keep its buffer for good.
                self.buf.shrink_to(1 << 16);
            }
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole frame's text, if one is buffered.
    pub fn next_frame(&mut self) -> Result<Option<&str>, NativeError> {
        let available = self.buf.len() - self.at;
        let Some(head) = self.buf.get(self.at..self.at + LEN) else { return Ok(None) };
        let mut len = [0u8; LEN];
        len.copy_from_slice(head);
        let len = u32::from_be_bytes(len) as usize;
        if len == 0 || len > MAX_FRAME {
            return Err(NativeError::FrameSize { len });
        }
        if available < LEN + len {
            // Room for the rest of the frame, once: its length was checked above.
            self.buf.reserve(LEN + len - available);
            return Ok(None);
        }
        let start = self.at + LEN;
        self.at = start + len;
        let text = &self.buf[start..start + len];
        std::str::from_utf8(text).map(Some).map_err(|e| NativeError::NotUtf8 { at: e.valid_up_to() })
    }

    /// Bytes buffered that are not yet a whole frame.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.at
    }
}

/// Appends one frame holding `json` to `out`.
pub fn push_frame(json: &str, out: &mut Vec<u8>) {
    let len = u32::try_from(json.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(json.as_bytes());
}

/// What a client proves itself with in its hello.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proof {
    /// The one-time launch token the shell gave a process it started.
    Token(String),
    /// An IT-signed credential (a JSON object, checked by the shell against the admin
    /// policy's keys) for an app started outside the shell, which then answers a challenge.
    Credential(Value),
}

/// A client's hello, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// Who it says it is.
    pub proof: Proof,
    /// The client library and its version, for the log (at most 100 characters).
    pub client: Option<String>,
}

/// Parses a client's first frame, which must be its hello in [`NATIVE_PROTOCOL`].
pub fn parse_hello(text: &str) -> Result<Hello, NativeError> {
    let bad = |m: &str| NativeError::Hello(m.to_owned());
    let v: Value = serde_json::from_str(text).map_err(|e| NativeError::Hello(format!("not JSON: {e}")))?;
    match v.get("type").and_then(Value::as_str) {
        Some("hello") => {}
        Some(other) => {
            return Err(NativeError::Hello(format!("the first message must be \"hello\", not {:?}", clip(other))));
        }
        None => return Err(bad("the first message must be {\"type\": \"hello\", ...}")),
    }
    let p = v.get("payload").ok_or_else(|| bad("no \"payload\""))?;
    match p.get("protocol").and_then(Value::as_u64) {
        Some(NATIVE_PROTOCOL) => {}
        Some(other) => {
            return Err(NativeError::Hello(format!(
                "protocol {other} is not spoken here; the shell speaks {NATIVE_PROTOCOL}"
            )));
        }
        None => return Err(bad("no \"protocol\" number")),
    }
    let client = p.get("client").and_then(Value::as_str).map(|c| clip(c).to_owned());
    match (p.get("token"), p.get("credential")) {
        (Some(_), Some(_)) => Err(bad("a hello has a \"token\" or a \"credential\", not both")),
        (Some(Value::String(t)), None) if !t.is_empty() && t.len() <= 256 => {
            Ok(Hello { proof: Proof::Token(t.clone()), client })
        }
        (Some(_), None) => Err(bad("\"token\" must be a string of 1 to 256 characters")),
        (None, Some(c @ Value::Object(_))) => Ok(Hello { proof: Proof::Credential(c.clone()), client }),
        (None, Some(_)) => Err(bad("\"credential\" must be the JSON object IT issued")),
        (None, None) => {
            Err(bad("no \"token\": an app is started by the shell, which gives it one in TESSERA_LAUNCH_TOKEN \
             (or, started elsewhere, has an IT-signed \"credential\")"))
        }
    }
}

/// The hello of an app started outside the shell, with its IT-signed credential.
pub fn hello_with_credential(credential: &Value, client: &str) -> String {
    json!({ "type": "hello", "payload": { "protocol": NATIVE_PROTOCOL, "credential": credential, "client": client } })
        .to_string()
}

/// The shell's challenge to a client with a credential: sign `nonce` with the app's key.
pub fn challenge(nonce: &str) -> String {
    json!({ "type": "challenge", "payload": { "nonce": nonce } }).to_string()
}

/// What an app signs to answer a challenge (the bytes of this text) with its key.
pub fn challenge_message(app: &str, nonce: &str) -> String {
    format!("tessera-endpoint-proof\n{app}\n{nonce}")
}

/// The client's answer to a challenge: the signature (hex) over the challenge message.
pub fn proof(signature: &str) -> String {
    json!({ "type": "proof", "payload": { "signature": signature } }).to_string()
}

/// Reads a client's answer to the challenge: its signature's text.
pub fn parse_proof(text: &str) -> Result<String, NativeError> {
    let v: Value = serde_json::from_str(text).map_err(|e| NativeError::Hello(format!("the proof is not JSON: {e}")))?;
    if v.get("type").and_then(Value::as_str) != Some("proof") {
        return Err(NativeError::Hello("the answer to a challenge must be a \"proof\"".to_owned()));
    }
    v.get("payload")
        .and_then(|p| p.get("signature"))
        .and_then(Value::as_str)
        .filter(|s| s.len() <= 256)
        .map(str::to_owned)
        .ok_or_else(|| NativeError::Hello("a proof has a \"signature\" string".to_owned()))
}

fn clip(s: &str) -> &str {
    let end = s.char_indices().nth(100).map_or(s.len(), |(i, _)| i);
    &s[..end]
}

/// The hello a client sends.
pub fn hello(token: &str, client: &str) -> String {
    json!({ "type": "hello", "payload": { "protocol": NATIVE_PROTOCOL, "token": token, "client": client } }).to_string()
}

/// The shell's answer to a good hello: who the connection now is, for good, and the state the
/// app last saved (`workspace.setState`, JSON bytes) for this instance, if any.
pub fn welcome(app: &str, instance: u64, client_id: u64, state: Option<&[u8]>) -> String {
    let state = state.and_then(|s| serde_json::from_slice::<Value>(s).ok()).unwrap_or(Value::Null);
    json!({ "type": "welcome", "payload": {
        "protocol": NATIVE_PROTOCOL, "app": app, "instance": instance, "client": client_id,
        "state": state, "limits": { "maxFrameBytes": MAX_FRAME },
    } })
    .to_string()
}

/// The shell's last word to a client it closes: why.
pub fn error(message: &str) -> String {
    json!({ "type": "error", "payload": { "error": message } }).to_string()
}

#[cfg(test)]
mod tests;
