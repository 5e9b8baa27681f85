//! The native-app endpoint: a Unix socket in the shell's private runtime directory where
//! processes the shell launched for native apps connect (`protocol::native` frames of
//! `protocol::envelope` JSON).
//!
//! No connection is anonymous. The supervisor gives each native app it starts a one-time
//! launch token in its environment (`Endpoint::expect`); the connection whose hello carries
//! it, from that process or one under it, before the token expires, becomes that app instance
//! for good, and is served like an app host's (`ipc::serve_codec`: the same gate, rate limit,
//! counters and binding). Anything else (a wrong, reused or expired token, a stranger's process,
//! no hello in time, garbage) is told why in one `error` frame, closed, logged and audited.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use parking_lot::Mutex;
use protocol::native::{self, FrameReader, Proof};
use protocol::wire::{HostMsg, PROTOCOL, ShellMsg};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

use crate::host::instance::SharedGate;
use crate::host::ipc::{Codec, Encoder};
use crate::host::procs::read_proc;

/// How long a client has to send its hello once connected.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest hello, in bytes.
const MAX_HELLO: usize = 4096;
/// Connections waiting for their hello at once; more are refused until some finish.
const MAX_HANDSHAKES: usize = 64;

/// A connection from an app started outside the shell, proven with its IT-signed credential
/// and its answer to a challenge: handed to the shell, which checks the app is one of the
/// desk's and attaches it as an instance ([`crate::host::supervisor::Supervisor::attach`]).
#[derive(Debug)]
pub struct Attached {
    pub(crate) app: String,
    pub(crate) pid: u32,
    pub(crate) expires: String,
    pub(crate) stream: UnixStream,
    pub(crate) reader: FrameReader,
}

impl Attached {
    /// The app its credential is for.
    pub fn app(&self) -> &str {
        &self.app
    }

    /// The connecting process.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// When its credential expires (RFC 3339).
    pub fn expires(&self) -> &str {
        &self.expires
    }

    /// Turns it away, telling it why.
    pub async fn refuse(mut self, why: &str) {
        let _ = write_error(&mut self.stream, why).await;
    }
}

/// Who is at the other end of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Peer {
    /// A process of the shell's user on the Unix socket.
    Local(u32),
    /// A process of another user on the Unix socket (refused).
    Stranger,
    /// A WebSocket client: no process can be named.
    Remote,
}

/// A native app's connection, proven: handed to the monitor that launched it.
#[derive(Debug)]
pub(crate) struct Accepted {
    pub(crate) stream: UnixStream,
    /// What the client sent after its hello, already read.
    pub(crate) reader: FrameReader,
    /// The connecting process.
    pub(crate) pid: u32,
}

struct Pending {
    app: String,
    instance: u64,
    /// The launched process: the connection must come from it or a process under it.
    pid: u32,
    expires: Instant,
    tx: tokio::sync::oneshot::Sender<Accepted>,
}

/// The endpoint: where it listens, and the launches waiting for their connection.
#[derive(Default)]
pub struct Endpoint {
    path: Mutex<Option<PathBuf>>,
    /// By the SHA-256 of the token (no token is kept, and lookups do not compare secrets).
    pending: Mutex<HashMap<[u8; 32], Pending>>,
    handshakes: std::sync::atomic::AtomicUsize,
    /// Where connections proven with a credential go; none: they are refused.
    attach: Mutex<Option<flume::Sender<Attached>>>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint").field("path", &*self.path.lock()).finish_non_exhaustive()
    }
}

fn digest(token: &str) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes()).into()
}

/// A fresh launch token: 32 random bytes, hex.
fn new_token() -> Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow!("no randomness for a launch token: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Why a connection was refused, for the client, the log and the audit log.
#[derive(Debug, thiserror::Error)]
enum Refusal {
    #[error("{0}")]
    Hello(String),
    #[error("no hello within {0:?}")]
    Slow(Duration),
    #[error("the launch token is not one the shell gave (or it was used already)")]
    UnknownToken,
    #[error("the launch token expired")]
    Expired,
    #[error("the launch token was given to process {launched}, and process {peer} is not it or under it")]
    WrongProcess { launched: u32, peer: u32 },
    #[error("too many connections at once")]
    Busy,
    #[error("this desk takes no apps started outside the shell (its admin policy trusts no signing key)")]
    NoTrust,
    #[error("credential refused: {0}")]
    Credential(String),
    #[error("the proof does not hold: {0}")]
    Proof(String),
    #[error("this shell takes no apps started outside it")]
    NoAttach,
    #[error(
        "a launch token is good on the shell's Unix socket only; over a WebSocket, an app proves itself with a credential"
    )]
    TokenOverNetwork,
    #[error("{0}")]
    Io(String),
}

impl Endpoint {
    /// Where the endpoint listens, once it does.
    pub fn path(&self) -> Option<PathBuf> {
        self.path.lock().clone()
    }

    /// From now on, connections proven with a credential come on the returned channel.
    pub fn attachments(&self) -> flume::Receiver<Attached> {
        let (tx, rx) = flume::bounded(64);
        *self.attach.lock() = Some(tx);
        rx
    }

    /// A token for `instance` of `app`, launched as process `pid` (set once spawned, see
    /// [`Endpoint::launched`]); the connection that presents it within `valid` comes back on
    /// the receiver.
    pub(crate) fn expect(
        &self,
        app: &str,
        instance: u64,
        valid: Duration,
    ) -> Result<(String, tokio::sync::oneshot::Receiver<Accepted>)> {
        let token = new_token()?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let now = Instant::now();
        let mut pending = self.pending.lock();
        // Launches nobody connected for are forgotten.
        pending.retain(|_, p| p.expires > now && !p.tx.is_closed());
        pending.insert(digest(&token), Pending { app: app.to_owned(), instance, pid: 0, expires: now + valid, tx });
        Ok((token, rx))
    }

    /// The process given `token` was started as `pid`.
    pub(crate) fn launched(&self, token: &str, pid: u32) {
        if let Some(p) = self.pending.lock().get_mut(&digest(token)) {
            p.pid = pid;
        }
    }

    /// Forgets a token whose process is gone.
    pub(crate) fn forget(&self, token: &str) {
        self.pending.lock().remove(&digest(token));
    }

    /// Accepts connections on `listener` (bound at `path`) until the runtime stops.
    pub fn serve(self: &Arc<Self>, listener: UnixListener, path: PathBuf, gate: SharedGate) {
        *self.path.lock() = Some(path);
        let endpoint = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                let stream = match listener.accept().await {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        tracing::warn!("the native endpoint could not accept a connection: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let (endpoint, gate) = (Arc::clone(&endpoint), Arc::clone(&gate));
                tokio::spawn(async move {
                    // Same user only: the socket is in a private directory, and this says so again.
                    let cred = rustix::net::sockopt::socket_peercred(&stream).ok();
                    let peer = match cred {
                        Some(c) if c.uid.as_raw() == rustix::process::getuid().as_raw() => {
                            Peer::Local(c.pid.as_raw_nonzero().get().cast_unsigned())
                        }
                        _ => Peer::Stranger,
                    };
                    endpoint.handshake(stream, &gate, peer).await;
                });
            }
        });
    }

    /// Runs the handshake on `stream` (a Unix connection, or the shell's side of a WebSocket's
    /// adapter) from `peer`, and hands the connection on or turns it away.
    pub(crate) async fn handshake(&self, mut stream: UnixStream, gate: &SharedGate, peer: Peer) {
        use std::sync::atomic::Ordering::Relaxed;
        let pid = match peer {
            Peer::Local(pid) => pid,
            Peer::Stranger | Peer::Remote => 0,
        };
        let busy = self.handshakes.fetch_add(1, Relaxed) >= MAX_HANDSHAKES;
        let outcome = if busy {
            Err((Refusal::Busy, None))
        } else if peer == Peer::Stranger {
            Err((Refusal::Io("the peer's credentials are not the shell user's".to_owned()), None))
        } else {
            tokio::time::timeout(HELLO_TIMEOUT, self.negotiate(&mut stream, peer, gate))
                .await
                .unwrap_or(Err((Refusal::Slow(HELLO_TIMEOUT), None)))
        };
        self.handshakes.fetch_sub(1, Relaxed);
        match outcome {
            Ok(Bound::Launch(pending, reader, client)) => {
                tracing::info!(app = %pending.app, instance = pending.instance, pid, client = client.as_deref().unwrap_or("?"), "a native app connected");
                if let Err(Accepted { mut stream, .. }) = pending.tx.send(Accepted { stream, reader, pid }) {
                    // Its monitor gave up on it in the meantime.
                    let _ = write_error(&mut stream, "the app instance is gone").await;
                }
            }
            Ok(Bound::Credential(credential, reader, client)) => {
                tracing::info!(app = %credential.app, pid, client = client.as_deref().unwrap_or("?"), "an app started outside the shell proved its credential");
                let attached = Attached { app: credential.app, pid, expires: credential.expires, stream, reader };
                let sink = self.attach.lock().clone();
                let refused = match sink {
                    Some(tx) => tx.send_async(attached).await.err().map(|e| e.into_inner()),
                    None => Some(attached),
                };
                if let Some(attached) = refused {
                    attached.refuse(&Refusal::NoAttach.to_string()).await;
                }
            }
            Err((why, app)) => {
                tracing::warn!(pid, app = app.as_deref().unwrap_or("?"), "refused a native connection: {why}");
                if let Some(g) = gate.lock().clone() {
                    g.refused(0, app.as_deref().unwrap_or(""), "endpoint.refused", &format!("process {pid}: {why}"));
                }
                let _ = write_error(&mut stream, &why.to_string()).await;
            }
        }
    }

    /// The handshake: a hello with a launch token, bound to its launch; or one with a
    /// credential, checked against the admin policy's keys, then a challenge the app must sign.
    async fn negotiate(
        &self,
        stream: &mut UnixStream,
        peer: Peer,
        gate: &SharedGate,
    ) -> Result<Bound, (Refusal, Option<String>)> {
        let mut reader = FrameReader::new();
        let text = read_frame(stream, &mut reader).await.map_err(|e| (e, None))?;
        let hello = native::parse_hello(&text).map_err(|e| (Refusal::Hello(e.to_string()), None))?;
        let client = hello.client.clone();
        let value = match (&hello.proof, peer) {
            (Proof::Token(_), Peer::Local(pid)) => {
                let (pending, client) = self.bind(hello, pid).await?;
                return Ok(Bound::Launch(pending, reader, client));
            }
            // A launch token is bound to a process, which only the Unix socket can name.
            (Proof::Token(_), _) => return Err((Refusal::TokenOverNetwork, None)),
            (Proof::Credential(value), _) => value.clone(),
        };
        let named = value.get("app").and_then(serde_json::Value::as_str).map(|a| a.chars().take(128).collect());
        let checker = gate.lock().clone().and_then(|g| g.credentials()).ok_or((Refusal::NoTrust, named.clone()))?;
        let now = broker::Timestamp::now().to_rfc3339();
        let credential =
            checker.check_credential(&value, &now).map_err(|e| (Refusal::Credential(e.to_string()), named.clone()))?;
        let app = Some(credential.app.clone());
        // A fresh nonce: a captured hello and proof are worth nothing on another connection.
        let nonce = new_token().map_err(|e| (Refusal::Io(e.to_string()), app.clone()))?;
        let mut out = Vec::new();
        native::push_frame(&native::challenge(&nonce), &mut out);
        stream.write_all(&out).await.map_err(|e| (Refusal::Io(e.to_string()), app.clone()))?;
        let text = read_frame(stream, &mut reader).await.map_err(|e| (e, app.clone()))?;
        let signature = native::parse_proof(&text).map_err(|e| (Refusal::Proof(e.to_string()), app.clone()))?;
        policy::signing::check_proof(&credential, &nonce, &signature)
            .map_err(|e| (Refusal::Proof(e.to_string()), app.clone()))?;
        Ok(Bound::Credential(credential, reader, client))
    }

    /// Checks a hello's proof; the launch it binds to, taken (a token works once).
    async fn bind(
        &self,
        hello: native::Hello,
        peer: u32,
    ) -> Result<(Pending, Option<String>), (Refusal, Option<String>)> {
        let Proof::Token(token) = hello.proof else { return Err((Refusal::UnknownToken, None)) };
        let key = digest(&token);
        // A quick app may connect before its launcher has recorded the pid it was given.
        for _ in 0..100 {
            match self.pending.lock().get(&key).map(|p| p.pid) {
                None => return Err((Refusal::UnknownToken, None)),
                Some(0) => {}
                Some(_) => break,
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let pending = self.pending.lock().remove(&key).ok_or((Refusal::UnknownToken, None))?;
        let app = Some(pending.app.clone());
        if pending.expires <= Instant::now() {
            return Err((Refusal::Expired, app));
        }
        if !descends_from(peer, pending.pid) {
            return Err((Refusal::WrongProcess { launched: pending.pid, peer }, app));
        }
        Ok((pending, hello.client))
    }
}

/// Whether process `pid` is `root` or runs under it.
fn descends_from(mut pid: u32, root: u32) -> bool {
    if root == 0 {
        return false;
    }
    for _ in 0..64 {
        if pid == root {
            return true;
        }
        match read_proc(pid) {
            Some(p) if p.ppid > 1 && p.ppid != pid => pid = p.ppid,
            _ => return false,
        }
    }
    false
}

/// How a handshake ended well.
enum Bound {
    /// A launch token: the launch it binds to, what followed the hello, the client's name.
    Launch(Pending, FrameReader, Option<String>),
    /// A credential and the proof: who it is, what followed, the client's name.
    Credential(policy::signing::Credential, FrameReader, Option<String>),
}

/// The next frame of a handshake (at most [`MAX_HELLO`] bytes).
async fn read_frame(stream: &mut UnixStream, reader: &mut FrameReader) -> Result<String, Refusal> {
    let mut chunk = [0u8; 1024];
    loop {
        match reader.next_frame() {
            Ok(Some(text)) => return Ok(text.to_owned()),
            Ok(None) => {}
            Err(e) => return Err(Refusal::Hello(e.to_string())),
        }
        if reader.buffered() > MAX_HELLO {
            return Err(Refusal::Hello(format!("a hello is at most {MAX_HELLO} bytes")));
        }
        let n = stream.read(&mut chunk).await.map_err(|e| Refusal::Io(e.to_string()))?;
        if n == 0 {
            return Err(Refusal::Io("the client left before its hello".to_owned()));
        }
        reader.feed(&chunk[..n]);
    }
}

async fn write_error(stream: &mut UnixStream, message: &str) -> std::io::Result<()> {
    let mut out = Vec::new();
    native::push_frame(&native::error(message), &mut out);
    stream.write_all(&out).await?;
    stream.shutdown().await
}

/// A native app's codec: `protocol::native` frames of JSON envelopes. The connection starts as
/// if its hello had just come (the endpoint checked it), so the shell welcomes it.
#[derive(Debug)]
pub(crate) struct NativeCodec {
    reader: FrameReader,
    hello: Option<u32>,
    app: String,
    instance: u64,
    state: Option<Vec<u8>>,
}

impl NativeCodec {
    /// The codec of a connection the endpoint accepted (`reader` holds what followed its
    /// hello) from process `pid`, bound to `instance` of `app`, whose saved state is `state`.
    pub(crate) fn new(reader: FrameReader, pid: u32, app: &str, instance: u64, state: Option<Vec<u8>>) -> Self {
        Self { reader, hello: Some(pid), app: app.to_owned(), instance, state }
    }
}

impl Codec for NativeCodec {
    type Encoder = NativeEncoder;

    fn feed(&mut self, bytes: &[u8], into: &mut Vec<HostMsg>) -> Result<()> {
        if let Some(pid) = self.hello.take() {
            into.push(HostMsg::Hello { protocol: PROTOCOL, pid });
        }
        self.reader.feed(bytes);
        while let Some(text) = self.reader.next_frame().context("frame from the native app")? {
            let msg = protocol::envelope::app_message(text).context("message from the native app")?;
            if matches!(msg, HostMsg::EvalResult { .. }) {
                return Err(anyhow!("message from the native app: tessera.evalResult is not a native app's to send"));
            }
            into.push(msg);
        }
        Ok(())
    }

    fn encoder(&self) -> NativeEncoder {
        NativeEncoder { app: self.app.clone(), instance: self.instance, state: self.state.clone() }
    }
}

/// [`NativeCodec`]'s writer: each message one length-prefixed frame, written in place.
#[derive(Debug)]
pub(crate) struct NativeEncoder {
    app: String,
    instance: u64,
    state: Option<Vec<u8>>,
}

impl NativeEncoder {
    /// A frame whose message `write` adds to `out`; none if it adds nothing.
    fn frame(out: &mut Vec<u8>, write: impl FnOnce(&mut Vec<u8>) -> bool) {
        let at = out.len();
        out.extend_from_slice(&[0; 4]);
        if write(out) {
            let len = u32::try_from(out.len() - at - 4).unwrap_or(u32::MAX);
            out[at..at + 4].copy_from_slice(&len.to_be_bytes());
        } else {
            out.truncate(at);
        }
    }
}

impl Encoder for NativeEncoder {
    fn push(&mut self, msg: &ShellMsg, out: &mut Vec<u8>) -> Result<()> {
        if let ShellMsg::Welcome { client } = msg {
            let text = native::welcome(&self.app, self.instance, *client, self.state.take().as_deref());
            native::push_frame(&text, out);
            return Ok(());
        }
        Self::frame(out, |out| protocol::envelope::write_shell_message(msg, out));
        Ok(())
    }

    /// A delivery: the subscription number, then the rest of the envelope as the first
    /// subscriber's connection wrote it (kept in the broker's envelope for the others).
    fn deliver(&mut self, sub: u32, e: &broker::Envelope, out: &mut Vec<u8>) -> Result<()> {
        let tail = e.encoded.get_or_init(|| {
            let mut tail = Vec::with_capacity(e.topic.as_str().len() + e.payload.len() + 80);
            let delivered = protocol::envelope::Delivered {
                topic: e.topic.as_str(),
                payload: &e.payload,
                seq: e.seq,
                timestamp_us: e.timestamp.0,
                sender: e.sender.client.0,
                trace: e.trace,
            };
            protocol::envelope::write_delivery_tail(&delivered, &mut tail);
            tail
        });
        Self::frame(out, |out| {
            protocol::envelope::write_delivery_head(sub, out);
            out.extend_from_slice(tail);
            true
        });
        Ok(())
    }

    fn finish(&mut self, _: &mut Vec<u8>) {}
}

pub mod websocket;

#[cfg(test)]
mod tests;
