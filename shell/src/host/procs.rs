//! The /proc watchdog's reading: a host's process tree (the host and every process under it,
//! WebKit's web and network processes included), its memory (PSS) and CPU time summed, and the
//! whole tree killed.

/// One process as `/proc/<pid>/stat` describes it.
pub(crate) struct Proc {
    pub(crate) pid: u32,
    pub(crate) ppid: u32,
    pub(crate) comm: String,
    pub(crate) rss_pages: u64,
    /// User and system time, in clock ticks.
    pub(crate) cpu_ticks: u64,
}

pub(crate) fn read_proc(pid: u32) -> Option<Proc> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?.to_owned();
    let fields: Vec<&str> = stat.get(close + 2..)?.split_whitespace().collect();
    // After the name: state(0) ppid(1) ... utime(11) stime(12) ... rss(21).
    let number = |i: usize| fields.get(i)?.parse::<u64>().ok();
    Some(Proc {
        pid,
        ppid: u32::try_from(number(1)?).ok()?,
        comm,
        rss_pages: number(21)?,
        cpu_ticks: number(11)? + number(12)?,
    })
}

/// `root` and every process under it.
///
/// ## Platform-specific
/// Linux only (`/proc`); elsewhere just `root`, with no memory figure.
pub(crate) fn process_tree(root: u32) -> Vec<Proc> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    let all: Vec<Proc> =
        dir.flatten().filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok()).filter_map(read_proc).collect();
    let mut tree: Vec<Proc> = Vec::new();
    let mut frontier = vec![root];
    let mut rest = all;
    while let Some(p) = frontier.pop() {
        let (children, others): (Vec<Proc>, Vec<Proc>) = rest.into_iter().partition(|q| q.ppid == p);
        rest = others;
        frontier.extend(children.iter().map(|c| c.pid));
        tree.extend(children);
    }
    if let Some(me) = read_proc(root) {
        tree.insert(0, me);
    }
    tree
}

pub(crate) fn page_size() -> u64 {
    rustix::param::page_size() as u64
}

/// A process's proportional share of memory (shared pages split among their users), from
/// `/proc/<pid>/smaps_rollup`; its resident size where that file is missing. Summing RSS over
/// a host and its WebKit processes would count the shared libraries three times.
pub(crate) fn memory_of(p: &Proc) -> u64 {
    let pss_kib = std::fs::read_to_string(format!("/proc/{}/smaps_rollup", p.pid))
        .ok()
        .and_then(|t| t.lines().find(|l| l.starts_with("Pss:"))?.split_whitespace().nth(1)?.parse::<u64>().ok());
    pss_kib.map_or(p.rss_pages * page_size(), |k| k * 1024)
}

/// Kills `root`'s process group and every process under it (WebKit's helpers may have left
/// the group).
pub(crate) fn kill_tree(root: u32) {
    use rustix::process::{Pid, Signal, kill_process, kill_process_group};
    let tree = process_tree(root);
    if let Some(pid) = Pid::from_raw(root.cast_signed()) {
        let _ = kill_process_group(pid, Signal::KILL);
    }
    for p in tree {
        if let Some(pid) = Pid::from_raw(p.pid.cast_signed()) {
            let _ = kill_process(pid, Signal::KILL);
        }
    }
}
