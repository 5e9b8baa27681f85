//! `tessera bench frame`: what the shell window costs to draw. It opens the real window (1920x1080
//! unless told otherwise) with N tiles and the launcher, then changes the layout 60 times a
//! second — moving splitters, regrouping tiles into tabs, maximising one and back — and reports
//! each frame's time (building the UI, tessellating, rendering and presenting). Then it stops
//! and counts the frames drawn while nothing changes, and the CPU used meanwhile: both should be
//! zero. Needs an X display (on a headless machine: `xvfb-run`).

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use compositor::{Command as UiCommand, Compositor, Direction, FrameStats, LauncherApp, LayoutNode, TileView, UiEvent};
use serde::Serialize;

use crate::bench::stats::percentile;
use crate::cli::FrameBenchArgs;

#[derive(Debug, Serialize)]
struct Report {
    tiles: u32,
    width: u32,
    height: u32,
    layout_changes: u32,
    frames: u64,
    frame_ms_p50: f64,
    frame_ms_p99: f64,
    frame_ms_max: f64,
    build_ms_p50: f64,
    build_ms_p99: f64,
    /// The share of the window's pixels a frame drew, in percent.
    drawn_percent_p50: f64,
    drawn_percent_p99: f64,
    idle_seconds: f64,
    idle_frames_per_sec: f64,
    idle_cpu_percent: f64,
    optimized_build: bool,
    present_only: bool,
    whole_frames: bool,
}

/// The `i`th layout of a sequence that exercises splits, tabs and shares.
fn layout(i: u32, tiles: u32) -> LayoutNode {
    let pane = |k: u32| LayoutNode::Pane { key: u64::from(k) };
    let phase = (i / 60) % 3;
    let wobble = 1.0 + 0.5 * ((i as f32) / 7.0).sin();
    match phase {
        // One row of tiles, the splitters moving.
        0 => LayoutNode::Split {
            direction: Direction::Horizontal,
            children: (0..tiles).map(pane).collect(),
            shares: (0..tiles).map(|k| if k == i % tiles { wobble } else { 1.0 }).collect(),
        },
        // Two rows, the first half of the tiles grouped in tabs whose active tab changes.
        1 => {
            let half = tiles.div_ceil(2);
            let top = LayoutNode::Tabs { children: (0..half).map(pane).collect(), active: (i % half) as usize };
            let bottom = LayoutNode::Split {
                direction: Direction::Horizontal,
                children: (half..tiles).map(pane).collect(),
                shares: vec![1.0; (tiles - half) as usize],
            };
            LayoutNode::Split { direction: Direction::Vertical, children: vec![top, bottom], shares: vec![wobble, 1.0] }
        }
        // A grid of two columns of stacked tiles.
        _ => {
            let column = |range: std::ops::Range<u32>| LayoutNode::Split {
                direction: Direction::Vertical,
                shares: range.clone().map(|_| 1.0).collect(),
                children: range.map(pane).collect(),
            };
            let half = tiles.div_ceil(2);
            LayoutNode::Split {
                direction: Direction::Horizontal,
                children: vec![column(0..half), column(half..tiles)],
                shares: vec![wobble, 1.0],
            }
        }
    }
}

fn stats(handle: &compositor::Handle, reset: bool) -> Result<FrameStats> {
    let (tx, rx) = flume::bounded(1);
    if !handle.send(UiCommand::FrameStats { reply: tx, reset }) {
        bail!("the window closed");
    }
    rx.recv_timeout(Duration::from_secs(10)).context("the window did not report its frames")
}

/// This process's CPU time so far, from `/proc/self/stat`.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return 0.0 };
    let Some(after) = stat.rfind(')').and_then(|i| stat.get(i + 2..)) else { return 0.0 };
    let f: Vec<u64> = after.split_whitespace().filter_map(|v| v.parse().ok()).collect();
    // After the name: state is not numeric, so utime and stime are at 10 and 11 here.
    let ticks = f.get(10).copied().unwrap_or(0) + f.get(11).copied().unwrap_or(0);
    ticks as f64 / rustix::param::clock_ticks_per_second().max(1) as f64
}

fn drive(handle: &compositor::Handle, events: &flume::Receiver<UiEvent>, args: &FrameBenchArgs) -> Result<Report> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match events.recv_deadline(deadline) {
            Ok(UiEvent::WindowReady { .. }) => break,
            Ok(_) => {}
            Err(_) => bail!("the window did not open within 60 s"),
        }
    }
    // Views are drained and dropped: the bench has no app hosts.
    let drain = events.clone();
    std::thread::spawn(move || while drain.recv().is_ok() {});
    let tiles = args.tiles;
    handle.send(UiCommand::PresentOnly(args.present_only));
    handle.send(UiCommand::WholeFrames(args.whole_frames));
    handle.send(UiCommand::SetTiles(
        (0..tiles)
            .map(|k| TileView {
                key: u64::from(k),
                title: format!("App {}", k + 1),
                status: "running".into(),
                live: true,
                channel: u8::try_from(k % 9).ok().filter(|c| *c > 0),
            })
            .collect(),
    ));
    handle.send(UiCommand::SetApps(
        (0..tiles.max(8))
            .map(|k| LauncherApp {
                app_id: format!("app-{k}"),
                title: format!("App {}", k + 1),
                description: "A desk app".into(),
                running: usize::from(k < tiles),
                last_used: Some(u64::from(k)),
                icon: None,
            })
            .collect(),
    ));
    let frame = Duration::from_secs_f64(1.0 / 60.0);
    for i in 0..30 {
        handle.send(UiCommand::SetLayout(vec![compositor::WindowPlan {
            tree: Some(layout(i, tiles)),
            ..Default::default()
        }]));
        std::thread::sleep(frame);
    }
    stats(handle, true)?;
    let start = Instant::now();
    for i in 0..args.changes {
        handle.send(UiCommand::SetLayout(vec![compositor::WindowPlan {
            tree: Some(layout(i, tiles)),
            ..Default::default()
        }]));
        let due = start + frame.mul_f64(f64::from(i + 1));
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    let busy = stats(handle, true)?;
    // Idle: nothing changes, so nothing should be drawn and no CPU used.
    let idle = Duration::from_secs_f64(args.idle_secs);
    let cpu0 = cpu_seconds();
    std::thread::sleep(idle);
    let cpu1 = cpu_seconds();
    let quiet = stats(handle, false)?;
    handle.send(UiCommand::Quit);

    // Microseconds, to share the project's nearest-rank percentile.
    let sorted_us = |v: &[f32]| {
        let mut us: Vec<u64> = v.iter().map(|ms| (f64::from(*ms) * 1000.0).round() as u64).collect();
        us.sort_unstable();
        us
    };
    let (ms, build) = (sorted_us(&busy.frame_ms), sorted_us(&busy.build_ms));
    // Shares (0 to 1) in the same units: `pick` gives them back as shares.
    let drawn = sorted_us(&busy.drawn);
    let pick = |us: &[u64], p: f64| percentile(us, p) as f64 / 1000.0;
    Ok(Report {
        tiles,
        width: args.width,
        height: args.height,
        layout_changes: args.changes,
        frames: busy.frames,
        frame_ms_p50: pick(&ms, 50.0),
        frame_ms_p99: pick(&ms, 99.0),
        frame_ms_max: ms.last().map_or(0.0, |us| *us as f64 / 1000.0),
        build_ms_p50: pick(&build, 50.0),
        build_ms_p99: pick(&build, 99.0),
        drawn_percent_p50: pick(&drawn, 50.0) * 100.0,
        drawn_percent_p99: pick(&drawn, 99.0) * 100.0,
        idle_seconds: idle.as_secs_f64(),
        idle_frames_per_sec: quiet.frames as f64 / idle.as_secs_f64(),
        idle_cpu_percent: 100.0 * (cpu1 - cpu0) / idle.as_secs_f64(),
        optimized_build: !cfg!(debug_assertions),
        present_only: args.present_only,
        whole_frames: args.whole_frames,
    })
}

/// Runs the benchmark and prints its report.
#[expect(clippy::print_stdout, reason = "the table is this command's output")]
pub(crate) fn run(args: &FrameBenchArgs) -> Result<()> {
    let (tx, rx) = flume::bounded(65_536);
    let (window, handle) = Compositor::new("Tessera frame bench", (args.width, args.height), tx)?;
    let driver = {
        let handle = handle.clone();
        let args = args.clone();
        std::thread::spawn(move || {
            let report = drive(&handle, &rx, &args);
            if report.is_err() {
                handle.send(UiCommand::Quit);
            }
            report
        })
    };
    window.run()?;
    let report = driver.join().map_err(|_| anyhow::anyhow!("the bench driver panicked"))??;
    super::report(&report, args.json, |r| {
        println!(
            "tessera bench frame: {} tiles at {}x{}, {} layout changes at 60/s",
            r.tiles, r.width, r.height, r.layout_changes
        );
        println!("  frames drawn            {}", r.frames);
        println!(
            "  frame time p50 / p99    {:.2} / {:.2} ms (max {:.2})",
            r.frame_ms_p50, r.frame_ms_p99, r.frame_ms_max
        );
        println!("    of which UI build     {:.2} / {:.2} ms", r.build_ms_p50, r.build_ms_p99);
        println!("  pixels drawn p50 / p99 {:.1} / {:.1}% of the window", r.drawn_percent_p50, r.drawn_percent_p99);
        println!("  idle frames per second  {:.2} over {:.0} s", r.idle_frames_per_sec, r.idle_seconds);
        println!("  idle CPU                {:.2}%", r.idle_cpu_percent);
        if !r.optimized_build {
            println!("  (debug build: figures are not representative; use --release)");
        }
    })
}
