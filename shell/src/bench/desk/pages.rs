//! The benches' pages: each from its own origin (its own loopback address, so its own site in
//! Chromium too), each telling the server when it has painted.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use parking_lot::{Condvar, Mutex};

/// Most pages (one loopback address each, from 127.0.0.2).
pub(crate) const MAX_PAGES: usize = 200;

/// When each page last said it had painted.
#[derive(Default)]
struct Painted {
    at: Mutex<Vec<Option<Instant>>>,
    changed: Condvar,
}

/// N pages served on loopback until dropped.
pub(crate) struct Pages {
    addrs: Vec<SocketAddr>,
    painted: Arc<Painted>,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Pages {
    /// Serves `n` pages, the i-th at `http://127.0.0.(i+2):port/`.
    pub(crate) fn serve(n: usize) -> Result<Self> {
        if n == 0 || n > MAX_PAGES {
            bail!("--apps must be 1 to {MAX_PAGES}, not {n}");
        }
        let painted = Arc::new(Painted { at: Mutex::new(vec![None; n]), changed: Condvar::new() });
        let stop = Arc::new(AtomicBool::new(false));
        let (mut addrs, mut threads) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for i in 0..n {
            let host = Ipv4Addr::new(127, 0, 0, u8::try_from(i + 2).context("too many pages")?);
            let listener = TcpListener::bind((host, 0)).with_context(|| format!("binding a page server on {host}"))?;
            addrs.push(listener.local_addr()?);
            let (painted, stop) = (Arc::clone(&painted), Arc::clone(&stop));
            threads.push(
                std::thread::Builder::new()
                    .name(format!("page-{i}"))
                    .spawn(move || serve_page(&listener, i, &painted, &stop))
                    .context("starting a page server")?,
            );
        }
        Ok(Self { addrs, painted, stop, threads })
    }

    /// The pages' URLs.
    pub(crate) fn urls(&self) -> Vec<String> {
        self.addrs.iter().map(|a| format!("http://{a}/")).collect()
    }

    /// Forgets which pages have painted (before another start).
    pub(crate) fn reset(&self) {
        self.painted.at.lock().iter_mut().for_each(|p| *p = None);
    }

    /// Waits until every page has painted; when the last one did.
    pub(crate) fn all_painted(&self, within: Duration) -> Result<Instant> {
        let deadline = Instant::now() + within;
        let mut at = self.painted.at.lock();
        loop {
            if at.iter().all(Option::is_some) {
                return at.iter().flatten().max().copied().context("no pages");
            }
            if self.painted.changed.wait_until(&mut at, deadline).timed_out() {
                let missing = at.iter().filter(|p| p.is_none()).count();
                bail!("{missing} of {} pages had not painted after {} s", at.len(), within.as_secs());
            }
        }
    }
}

impl Drop for Pages {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for a in &self.addrs {
            // Wakes the thread's accept.
            let _ = TcpStream::connect_timeout(a, Duration::from_millis(200));
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn serve_page(listener: &TcpListener, index: usize, painted: &Painted, stop: &AtomicBool) {
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        if let Err(e) = answer(stream, index, painted) {
            tracing::debug!("page {index}: {e:#}");
        }
    }
}

/// One request: the page, its paint report, or nothing.
fn answer(mut stream: TcpStream, index: usize, painted: &Painted) -> Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut chunk)?;
        if n == 0 || head.len() > 16 * 1024 {
            bail!("a request without an end to its head");
        }
        head.extend_from_slice(chunk.get(..n).unwrap_or_default());
    }
    let line = head.split(|b| *b == b'\r').next().unwrap_or_default();
    let path = line.split(|b| *b == b' ').nth(1).unwrap_or_default();
    let (status, kind, body) = match path {
        b"/" => ("200 OK", "text/html; charset=utf-8", page(index).into_bytes()),
        b"/painted" => {
            let mut at = painted.at.lock();
            if let Some(slot) = at.get_mut(index) {
                *slot = Some(Instant::now());
            }
            painted.changed.notify_all();
            ("204 No Content", "text/plain", Vec::new())
        }
        _ => ("404 Not Found", "text/plain", Vec::new()),
    };
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(&body);
    stream.write_all(&out)?;
    Ok(())
}

/// A desk app's page of modest size: a heading, a table of forty quotes and a little style;
/// after its first two frames it reports that it has painted, then does nothing.
fn page(index: usize) -> String {
    let rows: String = (0..40)
        .map(|r| {
            let px = 100.0 + ((index * 40 + r) % 97) as f64 * 1.37;
            format!("<tr><td>SYM{r:02}</td><td>{px:.2}</td><td>{:.2}</td><td>{}</td></tr>", px + 0.05, 100 * (r + 1))
        })
        .collect();
    format!(
        r#"<!doctype html><html><head><meta charset="utf-8"><title>App {index}</title>
<style>body{{font:13px sans-serif;margin:8px;background:#10151c;color:#d8dee9}}
table{{border-collapse:collapse;width:100%}}td{{padding:2px 6px;border-bottom:1px solid #2a3340}}
h1{{font-size:15px}}</style></head><body><h1>App {index}</h1>
<table><tr><th>Symbol</th><th>Bid</th><th>Ask</th><th>Size</th></tr>{rows}</table>
<script>addEventListener('load',()=>requestAnimationFrame(()=>requestAnimationFrame(()=>fetch('/painted'))));</script>
</body></html>"#
    )
}

#[cfg(test)]
mod tests;
