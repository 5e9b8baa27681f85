//! A trace collector for the benches: an OTLP/HTTP endpoint on loopback that reads each request
//! whole, counts it, and answers 200 — so a bench's traced passes pay the exporter's real cost
//! (encoding, batching, the HTTP request) without a collector's own work on the same cores.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result};

/// A running sink; it stops with the process.
pub(crate) struct Sink {
    /// Its base address (`http://127.0.0.1:PORT`).
    pub(crate) url: String,
    requests: Arc<AtomicU64>,
}

impl Sink {
    pub(crate) fn start() -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").context("binding the bench's trace sink")?;
        let url = format!("http://{}", listener.local_addr()?);
        let requests = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&requests);
        std::thread::Builder::new().name("otlp-sink".into()).spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let Ok(reading) = stream.try_clone() else { continue };
                let mut reader = BufReader::new(reading);
                let mut length = 0usize;
                let mut line = String::new();
                loop {
                    line.clear();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; length.min(64 << 20)];
                if reader.read_exact(&mut body).is_ok() {
                    counted.fetch_add(1, Ordering::Relaxed);
                }
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}");
            }
        })?;
        Ok(Self { url, requests })
    }

    /// Requests taken so far.
    pub(crate) fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
}
