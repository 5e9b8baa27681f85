//! `tessera bench memory --apps N[,M...] [--against chromium]`: the PSS of a desk of N pages once
//! every page has painted and settled, by kind of process, and the CPU the desk burns while its
//! pages do nothing; with `--against chromium`, the same pages in Chromium in the same run.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::pages::Pages;
use super::{Contender, chromium, cpu_ns, kind, median, mib, tessera};
use crate::cli::MemoryBenchArgs;

/// One desk measured once.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct DeskMemory {
    pub(crate) desk: Contender,
    /// Seconds from the start to every page painted.
    pub(crate) painted_secs: f64,
    /// PSS of every process, MiB.
    pub(crate) total_mib: f64,
    /// PSS of the shell (Tessera) or the browser process (Chromium), MiB.
    pub(crate) main_mib: f64,
    /// The rest divided by the apps, MiB.
    pub(crate) per_app_mib: f64,
    /// Processes in all.
    pub(crate) processes: usize,
    /// By kind of process: how many and their PSS (MiB).
    pub(crate) by_kind: BTreeMap<String, (usize, f64)>,
    /// CPU while the pages did nothing, percent of one core: every process, the main one, and
    /// Tessera's app hosts.
    pub(crate) idle_cpu_percent: f64,
    pub(crate) idle_cpu_main_percent: f64,
    pub(crate) idle_cpu_hosts_percent: Option<f64>,
    /// Frames the shell drew while idle (Tessera).
    pub(crate) idle_frames: Option<u64>,
}

/// One run at one app count.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct MemoryRun {
    pub(crate) run: u32,
    pub(crate) apps: usize,
    pub(crate) tessera: DeskMemory,
    pub(crate) chromium: Option<DeskMemory>,
    /// Tessera's total over Chromium's.
    pub(crate) ratio: Option<f64>,
}

/// The medians at one app count, and what each app added since the previous count.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct MemorySummary {
    pub(crate) apps: usize,
    pub(crate) tessera_total_mib: f64,
    pub(crate) chromium_total_mib: Option<f64>,
    pub(crate) ratio: Option<f64>,
    pub(crate) tessera_added_per_app_mib: Option<f64>,
    pub(crate) chromium_added_per_app_mib: Option<f64>,
    pub(crate) tessera_idle_shell_cpu_percent: f64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct MemoryReport {
    pub(crate) runs: Vec<MemoryRun>,
    pub(crate) summary: Vec<MemorySummary>,
}

pub(crate) fn run(args: &MemoryBenchArgs) -> Result<()> {
    let chromium_exe = args.against.map(|_| chromium::find()).transpose()?;
    super::need_display()?;
    let mut runs = Vec::new();
    for run in 0..args.runs {
        for &apps in &args.apps {
            let pages = Pages::serve(apps)?;
            let settle = Duration::from_secs_f64(args.settle_secs.max(0.0));
            let idle = Duration::from_secs_f64(args.idle_secs.max(0.1));
            // Which goes first alternates, so drift on a noisy machine falls on both.
            let mut tessera = None;
            let mut chromium = None;
            for turn in 0..2 {
                let chromium_turn = (turn + run) % 2 == 1;
                match (&chromium_exe, chromium_turn) {
                    (Some(exe), true) => chromium = Some(measure_chromium(exe, &pages, settle, idle)?),
                    (_, false) => tessera = Some(measure_tessera(&pages, settle, idle)?),
                    (None, true) => {}
                }
                pages.reset();
            }
            let tessera = tessera.context("Tessera was not measured")?;
            let ratio = chromium.as_ref().map(|c| tessera.total_mib / c.total_mib);
            tracing::info!(run, apps, tessera = tessera.total_mib, chromium = ?chromium.as_ref().map(|c| c.total_mib), "measured");
            runs.push(MemoryRun { run, apps, tessera, chromium, ratio });
        }
    }
    let summary = summarise(&args.apps, &runs);
    super::super::report(&MemoryReport { runs, summary }, args.json, print)
}

fn measure_tessera(pages: &Pages, settle: Duration, idle: Duration) -> Result<DeskMemory> {
    let dir = tempfile::tempdir().context("making the bench's profile folder")?;
    let manifest = tessera::manifest(dir.path(), &pages.urls())?;
    let t0 = Instant::now();
    let desk = tessera::Desk::start(&manifest, &dir.path().join("profile"))?;
    let painted = pages.all_painted(super::PAINT_TIMEOUT).context("Tessera")?;
    std::thread::sleep(settle);
    let procs = desk.processes();
    let hosts: Vec<_> = procs.iter().filter(|p| p.comm.starts_with("tessera-app-h")).cloned().collect();
    let main: Vec<_> = procs.iter().filter(|p| p.pid == desk.pid()).cloned().collect();
    let frames0 = desk.frames().ok();
    let [all, main, hosts] = idle_cpu(idle, [&procs, &main, &hosts]);
    let frames1 = desk.frames().ok();
    let mut m = memory(Contender::Tessera, &procs, desk.pid(), pages.urls().len(), painted - t0);
    (m.idle_cpu_percent, m.idle_cpu_main_percent, m.idle_cpu_hosts_percent) = (all, main, Some(hosts));
    // The second count is taken after the first is answered: a frame drawn for that question
    // would count, and none is.
    m.idle_frames = frames0.zip(frames1).map(|(a, b)| b.saturating_sub(a));
    desk.stop()?;
    Ok(m)
}

fn measure_chromium(exe: &std::path::Path, pages: &Pages, settle: Duration, idle: Duration) -> Result<DeskMemory> {
    let dir = tempfile::tempdir().context("making the bench's profile folder")?;
    let t0 = Instant::now();
    let mut desk = chromium::Desk::start(exe, &pages.urls(), &dir.path().join("profile"))?;
    let painted = pages.all_painted(super::PAINT_TIMEOUT).context("Chromium")?;
    std::thread::sleep(settle);
    let procs = desk.processes();
    let browser = desk.browser().unwrap_or_default();
    let main: Vec<_> = procs.iter().filter(|p| p.pid == browser).cloned().collect();
    let [all, main] = idle_cpu(idle, [&procs, &main]);
    let mut m = memory(Contender::Chromium, &procs, browser, pages.urls().len(), painted - t0);
    (m.idle_cpu_percent, m.idle_cpu_main_percent) = (all, main);
    desk.stop();
    Ok(m)
}

/// The CPU each group of processes uses over the next `idle` (percent of a core, one decimal).
fn idle_cpu<const N: usize>(idle: Duration, groups: [&[shell::host::procs::Proc]; N]) -> [f64; N] {
    let before = groups.map(cpu_ns);
    std::thread::sleep(idle);
    let after = groups.map(cpu_ns);
    std::array::from_fn(|i| {
        (after[i].saturating_sub(before[i]) as f64 / idle.as_nanos().max(1) as f64 * 1000.0).round() / 10.0
    })
}

/// The memory part of a measurement.
fn memory(
    desk: Contender,
    procs: &[shell::host::procs::Proc],
    main: u32,
    apps: usize,
    painted: Duration,
) -> DeskMemory {
    let mut by_kind: BTreeMap<String, (usize, u64)> = BTreeMap::new();
    let (mut total, mut main_pss) = (0, 0);
    for p in procs {
        let pss = shell::host::procs::memory_of(p);
        total += pss;
        if p.pid == main {
            main_pss = pss;
        }
        let k = by_kind.entry(kind(p)).or_default();
        k.0 += 1;
        k.1 += pss;
    }
    DeskMemory {
        desk,
        painted_secs: (painted.as_secs_f64() * 1000.0).round() / 1000.0,
        total_mib: mib(total),
        main_mib: mib(main_pss),
        per_app_mib: mib(total.saturating_sub(main_pss) / apps.max(1) as u64),
        processes: procs.len(),
        by_kind: by_kind.into_iter().map(|(k, (n, b))| (k, (n, mib(b)))).collect(),
        idle_cpu_percent: 0.0,
        idle_cpu_main_percent: 0.0,
        idle_cpu_hosts_percent: None,
        idle_frames: None,
    }
}

fn summarise(counts: &[usize], runs: &[MemoryRun]) -> Vec<MemorySummary> {
    let mut out: Vec<MemorySummary> = Vec::new();
    for &apps in counts {
        let at: Vec<&MemoryRun> = runs.iter().filter(|r| r.apps == apps).collect();
        let t: Vec<f64> = at.iter().map(|r| r.tessera.total_mib).collect();
        let c: Vec<f64> = at.iter().filter_map(|r| r.chromium.as_ref().map(|c| c.total_mib)).collect();
        let idle: Vec<f64> = at.iter().map(|r| r.tessera.idle_cpu_main_percent).collect();
        let (tessera_total_mib, chromium_total_mib) = (median(&t), (!c.is_empty()).then(|| median(&c)));
        let before = out.last();
        let added = |now: f64, then: Option<f64>, then_apps: usize| {
            then.filter(|_| apps > then_apps).map(|t| ((now - t) / (apps - then_apps) as f64 * 10.0).round() / 10.0)
        };
        out.push(MemorySummary {
            apps,
            tessera_total_mib,
            chromium_total_mib,
            ratio: chromium_total_mib.map(|c| (tessera_total_mib / c * 100.0).round() / 100.0),
            tessera_added_per_app_mib: before.and_then(|b| added(tessera_total_mib, Some(b.tessera_total_mib), b.apps)),
            chromium_added_per_app_mib: before
                .and_then(|b| chromium_total_mib.and_then(|now| added(now, b.chromium_total_mib, b.apps))),
            tessera_idle_shell_cpu_percent: median(&idle),
        });
    }
    out
}

#[expect(clippy::print_stdout, reason = "the report is the bench's output")]
fn print(r: &MemoryReport) {
    let show = |m: &DeskMemory| {
        let kinds: Vec<String> = m.by_kind.iter().map(|(k, (n, mb))| format!("{n} {k} {mb:.0}")).collect();
        println!(
            "  {:<8} painted {:>6.2} s  total {:>7.1} MiB  main {:>6.1}  per app {:>5.1}  idle CPU {:>5.2}% (main {:.2}%{}){}",
            format!("{:?}", m.desk).to_lowercase(),
            m.painted_secs,
            m.total_mib,
            m.main_mib,
            m.per_app_mib,
            m.idle_cpu_percent,
            m.idle_cpu_main_percent,
            m.idle_cpu_hosts_percent.map(|h| format!(", hosts {h:.2}%")).unwrap_or_default(),
            m.idle_frames.map(|f| format!(", {f} frames")).unwrap_or_default(),
        );
        println!("           {}", kinds.join(", "));
    };
    for run in &r.runs {
        println!(
            "run {} — {} apps{}",
            run.run + 1,
            run.apps,
            run.ratio.map(|x| format!(": ratio {x:.2}")).unwrap_or_default()
        );
        show(&run.tessera);
        if let Some(c) = &run.chromium {
            show(c);
        }
    }
    println!("medians:");
    for s in &r.summary {
        println!(
            "  {:>3} apps: Tessera {:.1} MiB{}{}{}; idle shell CPU {:.2}%",
            s.apps,
            s.tessera_total_mib,
            s.chromium_total_mib.map(|c| format!(", Chromium {c:.1} MiB")).unwrap_or_default(),
            s.ratio.map(|x| format!(", ratio {x:.2}")).unwrap_or_default(),
            s.tessera_added_per_app_mib
                .map(|t| format!(
                    "; each app added: Tessera {t:.1} MiB{}",
                    s.chromium_added_per_app_mib.map(|c| format!(", Chromium {c:.1}")).unwrap_or_default()
                ))
                .unwrap_or_default(),
            s.tessera_idle_shell_cpu_percent,
        );
    }
}
