//! The /proc watchdog's reading: a host's process tree (the host and every process under it,
//! WebKit's web and network processes included), its memory (PSS) and CPU time summed, and the
//! whole tree killed.

/// One process as `/proc/<pid>/stat` describes it.
#[derive(Debug, Clone)]
pub struct Proc {
    /// Its id.
    pub pid: u32,
    /// Its parent's.
    pub ppid: u32,
    /// Its name (at most 15 bytes).
    pub comm: String,
    /// Its resident size, in pages.
    pub rss_pages: u64,
    /// User and system time, in clock ticks.
    pub cpu_ticks: u64,
}

pub(crate) fn read_proc(pid: u32) -> Option<Proc> {
    let stat = read_small(&format!("/proc/{pid}/stat"))?;
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

/// `root` and every process under it, read now (to kill them: nothing just forked is missed).
///
/// ## Platform-specific
/// Linux only (`/proc`); elsewhere just `root`, with no memory figure.
pub fn process_tree(root: u32) -> Vec<Proc> {
    tree_in(root, &read_all())
}

/// `root` and every process under it, from a reading of the process table at most `max_age`
/// old: the watchdogs of all the shell's apps share one reading rather than each reading all of
/// `/proc` twice a second.
pub(crate) fn process_tree_recent(root: u32, max_age: std::time::Duration) -> Vec<Proc> {
    static TABLE: std::sync::Mutex<Option<(std::time::Instant, std::sync::Arc<Vec<Proc>>)>> =
        std::sync::Mutex::new(None);
    let mut table = TABLE.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let all = match &*table {
        Some((at, all)) if at.elapsed() <= max_age => std::sync::Arc::clone(all),
        _ => {
            let all = std::sync::Arc::new(read_all());
            *table = Some((std::time::Instant::now(), std::sync::Arc::clone(&all)));
            all
        }
    };
    drop(table);
    tree_in(root, &all)
}

/// One host's process tree, followed without reading the rest of `/proc`: a known process's
/// children come from `/proc/<pid>/task/<pid>/children` (those its main thread started, which
/// is how WebKit starts its web and network processes), and the processes found before are
/// looked at again by their pids; at the first look and every [`TreeWatch::THOROUGH`] every
/// thread's `children` file of the tree's processes is read too (a child another thread
/// started). Only where the kernel has no `children` files is the whole of `/proc` read.
#[derive(Debug, Default)]
pub(crate) struct TreeWatch {
    known: Vec<u32>,
    last_thorough: Option<std::time::Instant>,
    no_children_files: Option<bool>,
}

impl TreeWatch {
    /// How often every thread's children are looked at.
    pub(crate) const THOROUGH: std::time::Duration = std::time::Duration::from_secs(30);

    /// `root` and every process under it.
    pub(crate) fn tree(&mut self, root: u32) -> Vec<Proc> {
        let no_children_files = *self
            .no_children_files
            .get_or_insert_with(|| !std::path::Path::new(&format!("/proc/{root}/task/{root}/children")).exists());
        let tree = if no_children_files {
            process_tree_recent(root, std::time::Duration::from_millis(400))
        } else {
            let thorough = self.last_thorough.is_none_or(|t| t.elapsed() >= Self::THOROUGH);
            if thorough {
                self.last_thorough = Some(std::time::Instant::now());
            }
            followed(root, &self.known, thorough)
        };
        self.known = tree.iter().map(|p| p.pid).collect();
        tree
    }
}

/// `root` and the processes under it, found from `root` through the `children` files (the
/// main thread's, or with `every_thread` every thread's) and among `known` (each kept while its
/// parent is in the tree).
fn followed(root: u32, known: &[u32], every_thread: bool) -> Vec<Proc> {
    let Some(first) = read_proc(root) else { return Vec::new() };
    let mut tree = vec![first];
    let mut frontier = vec![root];
    let mut seen: std::collections::HashSet<u32> = std::iter::once(root).collect();
    loop {
        while let Some(pid) = frontier.pop() {
            let children = if every_thread { children_of_every_thread(pid) } else { children_of(pid) };
            for child in children {
                if seen.insert(child)
                    && let Some(p) = read_proc(child)
                {
                    frontier.push(child);
                    tree.push(p);
                }
            }
        }
        // What the last look found that no `children` file names (started by another thread):
        // still in the tree while its parent is.
        let mut more = false;
        for &pid in known {
            if !seen.contains(&pid)
                && let Some(p) = read_proc(pid)
                && seen.contains(&p.ppid)
            {
                seen.insert(pid);
                frontier.push(pid);
                tree.push(p);
                more = true;
            }
        }
        if !more {
            return tree;
        }
    }
}

/// The processes any of `pid`'s threads started that are still running.
fn children_of_every_thread(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return Vec::new() };
    tasks
        .flatten()
        .filter_map(|t| read_small(&format!("/proc/{pid}/task/{}/children", t.file_name().to_str()?)))
        .flat_map(|t| t.split_whitespace().filter_map(|c| c.parse().ok()).collect::<Vec<u32>>())
        .collect()
}

/// The processes `pid`'s main thread started that are still running.
fn children_of(pid: u32) -> Vec<u32> {
    read_small(&format!("/proc/{pid}/task/{pid}/children"))
        .map(|t| t.split_whitespace().filter_map(|c| c.parse().ok()).collect())
        .unwrap_or_default()
}

/// A small `/proc` file's text, read with one buffer of a page (the kernel hands such a file
/// over whole): four system calls, where `read_to_string` makes nine for a `stat` file as it
/// grows its buffer. A longer file is read again whole.
fn read_small(path: &str) -> Option<String> {
    use std::io::Read;
    let mut buf = [0u8; 4096];
    let mut file = std::fs::File::open(path).ok()?;
    let mut n = 0;
    loop {
        let got = file.read(buf.get_mut(n..)?).ok()?;
        if got == 0 {
            return String::from_utf8(buf.get(..n)?.to_vec()).ok();
        }
        n += got;
        if n == buf.len() {
            return std::fs::read_to_string(path).ok();
        }
    }
}

/// Every process in `/proc`.
fn read_all() -> Vec<Proc> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.flatten().filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok()).filter_map(read_proc).collect()
}

/// `root` (as it is now) and the processes under it in `all`.
fn tree_in(root: u32, all: &[Proc]) -> Vec<Proc> {
    let mut tree: Vec<Proc> = read_proc(root).into_iter().collect();
    let mut frontier = vec![root];
    while let Some(p) = frontier.pop() {
        for child in all.iter().filter(|q| q.ppid == p && q.pid != root) {
            frontier.push(child.pid);
            tree.push(child.clone());
        }
    }
    tree
}

/// What WebKit's web processes are called (`comm` keeps 15 bytes).
pub(crate) const WEB_PROCESS: &str = "WebKitWebProces";

pub(crate) fn page_size() -> u64 {
    rustix::param::page_size() as u64
}

/// The processes' last PSS readings: `smaps_rollup` walks a process's page tables (a sixth
/// of the shell's time with a flooding page holding 400 MB; three quarters of an idle desk's
/// when read every 2 s), so a reading is reused, scaled by the process's resident size, until it
/// is older than the caller allows or the resident size has moved by a tenth: growth toward a
/// memory limit is read at once.
#[derive(Debug, Default)]
pub(crate) struct PssCache {
    read: std::collections::HashMap<u32, (std::time::Instant, u64, u64)>,
}

impl PssCache {
    /// How old a reading may be while the tree is close to its memory limit.
    pub(crate) const NEAR_LIMIT: std::time::Duration = std::time::Duration::from_secs(2);
    /// How old a reading may be otherwise: the figure is then only shown, and the resident
    /// size it is scaled by is read at every look.
    pub(crate) const SHOWN_ONLY: std::time::Duration = std::time::Duration::from_secs(120);

    /// The tree's memory: each process's PSS, read or estimated from a reading at most
    /// `max_age` old.
    pub(crate) fn memory(&mut self, tree: &[Proc], max_age: std::time::Duration) -> u64 {
        self.read.retain(|pid, _| tree.iter().any(|p| p.pid == *pid));
        tree.iter()
            .map(|p| {
                if let Some(&(at, rss, pss)) = self.read.get(&p.pid)
                    && at.elapsed() < max_age
                    && rss > 0
                    && p.rss_pages.abs_diff(rss) * 10 < rss
                {
                    return pss.saturating_mul(p.rss_pages) / rss;
                }
                let pss = memory_of(p);
                self.read.insert(p.pid, (std::time::Instant::now(), p.rss_pages, pss));
                pss
            })
            .sum()
    }
}

/// The tree's resident size (each shared page counted in every process that maps it): never
/// less than its PSS, so a tree under a memory limit by this measure is under it by PSS too.
pub(crate) fn resident(tree: &[Proc]) -> u64 {
    tree.iter().map(|p| p.rss_pages).sum::<u64>().saturating_mul(page_size())
}

/// A process's proportional share of memory (shared pages split among their users), from
/// `/proc/<pid>/smaps_rollup`; its resident size where that file is missing. Summing RSS over
/// a host and its WebKit processes would count the shared libraries three times.
pub fn memory_of(p: &Proc) -> u64 {
    let pss_kib = std::fs::read_to_string(format!("/proc/{}/smaps_rollup", p.pid))
        .ok()
        .and_then(|t| t.lines().find(|l| l.starts_with("Pss:"))?.split_whitespace().nth(1)?.parse::<u64>().ok());
    pss_kib.map_or(p.rss_pages * page_size(), |k| k * 1024)
}

/// Kills `root`'s process group and every process under it (WebKit's helpers may have left
/// the group).
pub fn kill_tree(root: u32) {
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

#[cfg(test)]
mod tests;
