//! A three-node NATS cluster with JetStream on loopback ports, for `bench bridge`: real
//! `nats-server` processes, each with its own store in a temporary directory, stopped (and
//! their stores removed) when dropped.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};

pub(crate) struct Cluster {
    nodes: Vec<Child>,
    ports: Vec<u16>,
    /// Kept for its removal on drop.
    _dir: tempfile::TempDir,
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl Cluster {
    /// Starts three nodes of `program` and waits until each listens.
    pub(crate) fn start(program: &Path) -> Result<Self> {
        let dir = tempfile::tempdir().context("a directory for the cluster's stores")?;
        let ports: Vec<u16> = (0..3).map(|_| free_port()).collect::<Result<_>>()?;
        let routes: Vec<u16> = (0..3).map(|_| free_port()).collect::<Result<_>>()?;
        let monitors: Vec<u16> = (0..3).map(|_| free_port()).collect::<Result<_>>()?;
        let route_urls: Vec<String> = routes.iter().map(|p| format!("nats-route://127.0.0.1:{p}")).collect();
        let mut nodes = Vec::new();
        for i in 0..3 {
            let store = dir.path().join(format!("n{i}"));
            let config = format!(
                "server_name: n{i}\nlisten: 127.0.0.1:{}\nhttp: 127.0.0.1:{}\nmax_payload: 1MB\n\
                 jetstream {{ store_dir: {:?}, max_memory_store: 256MB }}\n\
                 cluster {{ name: bench, listen: 127.0.0.1:{}, routes: [{}] }}\n",
                ports[i],
                monitors[i],
                store.display().to_string(),
                routes[i],
                route_urls.join(", "),
            );
            let path = dir.path().join(format!("n{i}.conf"));
            std::fs::write(&path, config).with_context(|| format!("writing {}", path.display()))?;
            let log = std::fs::File::create(dir.path().join(format!("n{i}.log")))?;
            let child = Command::new(program)
                .arg("-c")
                .arg(&path)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .with_context(|| format!("starting {} (install it: apt-get install nats-server)", program.display()))?;
            nodes.push(child);
        }
        let cluster = Self { nodes, ports, _dir: dir };
        // Ready once every node says JetStream is (its meta group has a leader).
        let deadline = Instant::now() + Duration::from_secs(60);
        for port in monitors {
            while !healthy(port) {
                ensure!(Instant::now() < deadline, "the NATS cluster's JetStream was not ready within 60 s");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Ok(cluster)
    }

    /// The servers, as a link's policy lists them.
    pub(crate) fn urls(&self) -> Vec<String> {
        self.ports.iter().map(|p| format!("nats://127.0.0.1:{p}")).collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            let _ = node.kill();
            let _ = node.wait();
        }
    }
}

/// Whether the node monitored on `port` answers its health check with 200.
fn healthy(port: u16) -> bool {
    use std::io::{Read as _, Write as _};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").is_err() {
        return false;
    }
    let mut reply = String::new();
    let _ = s.read_to_string(&mut reply);
    reply.starts_with("HTTP/1.0 200") || reply.starts_with("HTTP/1.1 200")
}
