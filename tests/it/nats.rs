//! A three-node NATS cluster with JetStream on loopback ports, for the linked-desk tests: real
//! `nats-server` processes (the Debian package), each with its own store in a temp dir, stopped
//! when dropped.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `n` distinct free loopback ports (all bound at once, read, released).
fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<std::net::TcpListener> =
        (0..n).map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    held.iter().map(|l| l.local_addr().unwrap().port()).collect()
}

/// Attempts at starting a cluster: another process may take a port between its choice and the
/// server's bind, and the node then exits at once; the cluster is started again on new ports.
const ATTEMPTS: usize = 3;

pub(crate) struct Cluster {
    dir: tempfile::TempDir,
    ports: Vec<u16>,
    routes: Vec<u16>,
    nodes: Vec<Option<Child>>,
    /// The servers' `authorization` block.
    auth: String,
    /// The servers' environment (what the block's `$VARIABLES` name).
    env: Vec<(String, String)>,
}

impl Cluster {
    /// Three nodes that take clients with `token`.
    pub(crate) fn start(token: &str) -> Self {
        Self::start_with_auth(&format!("authorization {{ token: {token:?} }}"), &[])
    }

    /// Three nodes with `auth` as their `authorization` block (users and their permissions),
    /// `env` in their environment.
    pub(crate) fn start_with_auth(auth: &str, env: &[(&str, &str)]) -> Self {
        assert!(
            Command::new("sh").args(["-c", "command -v nats-server"]).output().unwrap().status.success(),
            "nats-server is missing: run packaging/dev/setup.sh"
        );
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        let mut failures = Vec::new();
        for _ in 0..ATTEMPTS {
            let dir = tempfile::tempdir().unwrap();
            let mut ports = free_ports(6);
            let routes = ports.split_off(3);
            let mut cluster = Self { dir, ports, routes, nodes: Vec::new(), auth: auth.to_owned(), env: env.clone() };
            for i in 0..3 {
                let child = cluster.spawn(i);
                cluster.nodes.push(Some(child));
            }
            match (0..3).try_for_each(|i| cluster.listening(i)) {
                Ok(()) => return cluster,
                // Dropping it stops the nodes that did start.
                Err(why) => failures.push(why),
            }
        }
        panic!("the NATS cluster did not start in {ATTEMPTS} attempts: {failures:#?}");
    }

    fn config(&self, i: usize) -> PathBuf {
        let routes: Vec<String> = self.routes.iter().map(|p| format!("nats-route://127.0.0.1:{p}")).collect();
        let store = self.dir.path().join(format!("n{i}"));
        let text = format!(
            "server_name: n{i}\nlisten: 127.0.0.1:{}\njetstream {{ store_dir: {:?} }}\n\
             cluster {{ name: tessera, listen: 127.0.0.1:{}, routes: [{}] }}\n\
             {}\n",
            self.ports[i],
            store.display().to_string(),
            self.routes[i],
            routes.join(", "),
            self.auth,
        );
        let path = self.dir.path().join(format!("n{i}.conf"));
        std::fs::write(&path, text).unwrap();
        path
    }

    fn spawn(&self, i: usize) -> Child {
        let log = std::fs::File::create(self.dir.path().join(format!("n{i}.log"))).unwrap();
        Command::new("nats-server")
            .arg("-c")
            .arg(self.config(i))
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap()
    }

    /// Waits until node `i` takes connections; why not (it exited, or not within 15 s, with
    /// its log) if it does not.
    fn listening(&mut self, i: usize) -> Result<(), String> {
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.ports[i])).is_err() {
            let exited = self.nodes[i].as_mut().and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() || start.elapsed() > Duration::from_secs(15) {
                let log = std::fs::read_to_string(self.dir.path().join(format!("n{i}.log"))).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(10).collect();
                return Err(format!("nats-server n{i} did not listen ({exited:?}): {tail:?}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    fn wait_listening(&mut self, i: usize) {
        if let Err(why) = self.listening(i) {
            panic!("{why}");
        }
    }

    /// The servers, as a link's policy lists them.
    pub(crate) fn urls(&self) -> Vec<String> {
        self.ports.iter().map(|p| format!("nats://127.0.0.1:{p}")).collect()
    }

    /// Kills node `i` (SIGKILL: no goodbye to its peers).
    pub(crate) fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// What the nodes logged so far.
    pub(crate) fn logs(&self) -> String {
        (0..self.ports.len())
            .map(|i| std::fs::read_to_string(self.dir.path().join(format!("n{i}.log"))).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Node `i`'s address.
    pub(crate) fn addr(&self, i: usize) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.ports[i]))
    }

    /// Starts node `i` again, on its old port and store.
    pub(crate) fn restart(&mut self, i: usize) {
        self.kill(i);
        self.nodes[i] = Some(self.spawn(i));
        self.wait_listening(i);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
    }
}

/// URL-safe base64 without padding (what NATS JWTs use).
fn b64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(char::from(ABC[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

/// A NATS JWT (v2) with `claims`, signed by `signer`.
fn jwt(claims: &serde_json::Value, signer: &nkeys::KeyPair) -> String {
    let head = b64(br#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
    let body = b64(claims.to_string().as_bytes());
    let signed = format!("{head}.{body}");
    let sig = signer.sign(signed.as_bytes()).unwrap();
    format!("{signed}.{}", b64(&sig))
}

fn claims(iss: &nkeys::KeyPair, sub: &str, name: &str, nats: &serde_json::Value) -> serde_json::Value {
    serde_json::json!({ "jti": format!("jti-{name}"), "iat": 1_700_000_000, "iss": iss.public_key(), "sub": sub, "name": name, "nats": nats })
}

/// Decentralised (operator mode) auth for a test cluster: an operator, its system account and
/// an account with JetStream whose users the servers trust, all made here.
pub(crate) struct Operator {
    account: nkeys::KeyPair,
    /// The servers' configuration lines (operator, system account, memory resolver).
    pub(crate) config: String,
}

impl Operator {
    pub(crate) fn new() -> Self {
        let operator = nkeys::KeyPair::new_operator();
        let system = nkeys::KeyPair::new_account();
        let account = nkeys::KeyPair::new_account();
        let op = jwt(
            &claims(
                &operator,
                &operator.public_key(),
                "test-operator",
                &serde_json::json!({ "system_account": system.public_key(), "type": "operator", "version": 2 }),
            ),
            &operator,
        );
        let limits = serde_json::json!({ "subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1, "wildcards": true, "conn": -1, "leaf": -1 });
        let sys = jwt(
            &claims(
                &operator,
                &system.public_key(),
                "SYS",
                &serde_json::json!({ "limits": limits, "type": "account", "version": 2 }),
            ),
            &operator,
        );
        let mut js_limits = limits.clone();
        for k in ["mem_storage", "disk_storage", "streams", "consumer"] {
            js_limits[k] = serde_json::json!(-1);
        }
        let app = jwt(
            &claims(
                &operator,
                &account.public_key(),
                "APP",
                &serde_json::json!({ "limits": js_limits, "type": "account", "version": 2 }),
            ),
            &operator,
        );
        let config = format!(
            "operator: {op}\nsystem_account: {}\nresolver: MEMORY\nresolver_preload: {{\n  {}: {sys}\n  {}: {app}\n}}",
            system.public_key(),
            system.public_key(),
            account.public_key(),
        );
        Self { account, config }
    }

    /// A credentials file (user JWT and seed) for a new user `name` of the account; signed by
    /// another account (one the servers do not know) with `trusted` false.
    pub(crate) fn user_creds(&self, name: &str, trusted: bool) -> String {
        let user = nkeys::KeyPair::new_user();
        let stranger = nkeys::KeyPair::new_account();
        let signer = if trusted { &self.account } else { &stranger };
        let token = jwt(
            &claims(
                signer,
                &user.public_key(),
                name,
                &serde_json::json!({ "subs": -1, "data": -1, "payload": -1, "type": "user", "version": 2 }),
            ),
            signer,
        );
        format!(
            "-----BEGIN NATS USER JWT-----\n{token}\n------END NATS USER JWT------\n\n\
             -----BEGIN USER NKEY SEED-----\n{}\n------END USER NKEY SEED------\n",
            user.seed().unwrap()
        )
    }
}
