//! `tessera bench startup --apps N [--against chromium]`: from starting the desk to every page
//! painted, cold (the first start of a profile) and warm (the next start of the same profile);
//! with `--against chromium`, the same pages in Chromium in the same run, which goes first
//! alternating.

use std::time::Instant;

use anyhow::{Context, Result};

use super::pages::Pages;
use super::{Contender, chromium, median, tessera};
use crate::cli::StartupBenchArgs;

/// One desk's starts, in seconds, in the order run.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub(crate) struct Starts {
    pub(crate) cold: Vec<f64>,
    pub(crate) warm: Vec<f64>,
    pub(crate) cold_median: f64,
    pub(crate) warm_median: f64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct StartupReport {
    pub(crate) apps: usize,
    pub(crate) tessera: Starts,
    pub(crate) chromium: Option<Starts>,
}

pub(crate) fn run(args: &StartupBenchArgs) -> Result<()> {
    let chromium_exe = args.against.map(|_| chromium::find()).transpose()?;
    super::need_display()?;
    let pages = Pages::serve(args.apps)?;
    let (mut t, mut c) = (Starts::default(), chromium_exe.as_ref().map(|_| Starts::default()));
    for run in 0..args.runs {
        for turn in 0..2 {
            let who = if (turn + run) % 2 == 0 { Contender::Tessera } else { Contender::Chromium };
            match (who, &chromium_exe, c.as_mut()) {
                (Contender::Tessera, ..) => {
                    let (cold, warm) = tessera_starts(&pages)?;
                    t.cold.push(cold);
                    t.warm.push(warm);
                }
                (Contender::Chromium, Some(exe), Some(c)) => {
                    let (cold, warm) = chromium_starts(exe, &pages)?;
                    c.cold.push(cold);
                    c.warm.push(warm);
                }
                _ => {}
            }
        }
        tracing::info!(run, tessera = ?t.cold.last(), chromium = ?c.as_ref().and_then(|c| c.cold.last()), "cold starts");
    }
    for s in std::iter::once(&mut t).chain(c.as_mut()) {
        s.cold_median = median(&s.cold);
        s.warm_median = median(&s.warm);
    }
    super::super::report(&StartupReport { apps: args.apps, tessera: t, chromium: c }, args.json, print)
}

/// Seconds from `start` to every page painted.
fn painted(pages: &Pages, t0: Instant, who: &str) -> Result<f64> {
    let at = pages.all_painted(super::PAINT_TIMEOUT).context(who.to_owned())?;
    pages.reset();
    Ok(((at - t0).as_secs_f64() * 1000.0).round() / 1000.0)
}

fn tessera_starts(pages: &Pages) -> Result<(f64, f64)> {
    let dir = tempfile::tempdir().context("making the bench's profile folder")?;
    let manifest = tessera::manifest(dir.path(), &pages.urls())?;
    let profile = dir.path().join("profile");
    let mut times = [0.0; 2];
    for t in &mut times {
        let t0 = Instant::now();
        let desk = tessera::Desk::start(&manifest, &profile)?;
        *t = painted(pages, t0, "Tessera")?;
        desk.stop()?;
    }
    Ok((times[0], times[1]))
}

fn chromium_starts(exe: &std::path::Path, pages: &Pages) -> Result<(f64, f64)> {
    let dir = tempfile::tempdir().context("making the bench's profile folder")?;
    let profile = dir.path().join("profile");
    let mut times = [0.0; 2];
    for t in &mut times {
        let t0 = Instant::now();
        let desk = chromium::Desk::start(exe, &pages.urls(), &profile)?;
        *t = painted(pages, t0, "Chromium")?;
        desk.stop();
    }
    Ok((times[0], times[1]))
}

#[expect(clippy::print_stdout, reason = "the report is the bench's output")]
fn print(r: &StartupReport) {
    let show = |name: &str, s: &Starts| {
        let list = |v: &[f64]| v.iter().map(|x| format!("{x:.2}")).collect::<Vec<_>>().join(" ");
        println!(
            "  {name:<8} cold {:.2} s (median; {})   warm {:.2} s ({})",
            s.cold_median,
            list(&s.cold),
            s.warm_median,
            list(&s.warm)
        );
    };
    println!("{} apps, from start to every page painted:", r.apps);
    show("tessera", &r.tessera);
    if let Some(c) = &r.chromium {
        show("chromium", c);
    }
}
