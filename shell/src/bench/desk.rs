//! `tessera bench memory` and `tessera bench startup`: a desk of N pages run by Tessera and,
//! in the same run, by Chromium (`--app` windows, each page from its own site), measured the
//! same way: the pages report when they have painted ([`pages`]); memory is the PSS of every
//! process in each one's tree; CPU is read from the kernel's per-thread run times.

pub(crate) mod chromium;
pub(crate) mod memory;
pub(crate) mod pages;
pub(crate) mod startup;
pub(crate) mod tessera;

use std::time::Duration;

use anyhow::{Result, bail};

use shell::host::procs::{Proc, process_tree};

/// Which desk runs the pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Contender {
    Tessera,
    Chromium,
}

/// How long a desk may take to paint every page before the bench gives up.
pub(crate) const PAINT_TIMEOUT: Duration = Duration::from_secs(90);

/// The size of the screen the desks are shown on (each Chromium window gets one tile's share).
pub(crate) const SCREEN: (u32, u32) = (1920, 1080);

/// One window's size when `n` share the screen in a grid.
pub(crate) fn tile_size(n: usize) -> (u32, u32) {
    let n = u32::try_from(n.max(1)).unwrap_or(u32::MAX);
    let cols = n.isqrt() + u32::from(n.isqrt() * n.isqrt() < n);
    let rows = n.div_ceil(cols);
    (SCREEN.0 / cols, SCREEN.1 / rows)
}

/// The benches draw real windows: they need an X display (Xvfb will do).
pub(crate) fn need_display() -> Result<()> {
    if std::env::var_os("DISPLAY").is_none_or(|d| d.is_empty()) {
        bail!("this bench opens windows and needs an X display: run it under xvfb-run or Xvfb");
    }
    Ok(())
}

/// Every process under any of `roots` (each once).
pub(crate) fn trees(roots: &[u32]) -> Vec<Proc> {
    let mut all: Vec<Proc> = roots.iter().flat_map(|r| process_tree(*r)).collect();
    all.sort_unstable_by_key(|p| p.pid);
    all.dedup_by_key(|p| p.pid);
    all
}

/// The processes' CPU time so far (every thread's, from `schedstat`), in nanoseconds.
pub(crate) fn cpu_ns(procs: &[Proc]) -> u64 {
    procs
        .iter()
        .filter_map(|p| std::fs::read_dir(format!("/proc/{}/task", p.pid)).ok())
        .flat_map(|tasks| tasks.flatten())
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// What a process is, for reports: its name, and for Chromium's helpers their `--type`.
pub(crate) fn kind(p: &Proc) -> String {
    if p.comm != "chromium" && p.comm != "chrome" {
        return p.comm.clone();
    }
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", p.pid)).unwrap_or_default();
    // Chromium rewrites its command line as one string, its arguments apart by spaces.
    let kind = cmdline
        .split(|b| *b == 0 || *b == b' ')
        .filter_map(|a| std::str::from_utf8(a).ok())
        .find_map(|a| a.strip_prefix("--type="))
        .unwrap_or("browser")
        .to_owned();
    format!("chromium {kind}")
}

/// Megabytes (MiB) with one decimal, for reports.
pub(crate) fn mib(bytes: u64) -> f64 {
    (bytes as f64 / f64::from(1u32 << 20) * 10.0).round() / 10.0
}

/// The median of some figures (the lower middle one for an even count).
pub(crate) fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_unstable_by(f64::total_cmp);
    v.get(v.len().saturating_sub(1) / 2).copied().unwrap_or(0.0)
}

#[cfg(test)]
mod tests;
