//! Which WebKit web process runs which view, in a host shared by several apps: WebKit starts a
//! page's web process while `load_url` runs on GTK's thread, and has no call that names it, so
//! the child that appears then is the view's. (It may not have become `WebKitWebProcess` yet:
//! the fork is done, the exec may not be, so the new children are looked at again shortly.) The
//! shell is told (`HostMsg::WebProcess`) and watches it as the app's own (memory, CPU),
//! checking that it is this host's child.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

use protocol::wire::HostMsg;

use crate::to_shell::{ViewId, Writer, send};

thread_local! {
    /// Each open view's web process, as last told to the shell.
    static CLAIMED: RefCell<HashMap<ViewId, u32>> = RefCell::new(HashMap::new());
}

/// What WebKit names its web processes (`comm` keeps 15 bytes).
const WEB_PROCESS: &str = "WebKitWebProces";

/// How often, and how many times, new children are looked at until one is a web process.
const LOOK_EVERY: Duration = Duration::from_millis(25);
const LOOKS: u32 = 200;

/// The host's children now (whatever they are yet).
pub(crate) fn children() -> HashSet<u32> {
    let mut children = HashSet::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return children };
    for task in tasks.flatten() {
        if let Ok(text) = std::fs::read_to_string(task.path().join("children")) {
            children.extend(text.split_ascii_whitespace().filter_map(|p| p.parse::<u32>().ok()));
        }
    }
    children
}

fn is_web_process(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim_end() == WEB_PROCESS)
}

/// The web processes this host has started that are running now.
fn running() -> HashSet<u32> {
    let mut children = children();
    children.retain(|pid| is_web_process(*pid));
    children
}

/// After `view`'s start page began to load: the web process among the children that were not
/// there `before` is its own (looked for until they have become what they will be).
pub(crate) fn claim_new(view: ViewId, before: &HashSet<u32>, writer: &Writer) {
    let new: Vec<u32> = children().into_iter().filter(|p| !before.contains(p)).collect();
    let (writer, mut looks) = (std::sync::Arc::clone(writer), 0);
    let look = move || {
        let claimed: HashSet<u32> = CLAIMED.with_borrow(|c| c.values().copied().collect());
        let web: Vec<u32> = new.iter().copied().filter(|p| !claimed.contains(p) && is_web_process(*p)).collect();
        looks += 1;
        match web.as_slice() {
            [pid] => {
                claim(view, *pid, &writer);
                gtk::glib::ControlFlow::Break
            }
            _ if looks >= LOOKS => {
                tracing::warn!(view, found = web.len(), "could not tell which web process runs the new view");
                gtk::glib::ControlFlow::Break
            }
            _ => gtk::glib::ControlFlow::Continue,
        }
    };
    gtk::glib::timeout_add_local(LOOK_EVERY, look);
}

/// When `view` loads a page: if its web process has gone (a page of another site may run in a
/// process of its own), the one running process no view has is its new one.
pub(crate) fn recheck(view: ViewId, writer: &Writer) {
    let running = running();
    let (mine, claimed) =
        CLAIMED.with_borrow(|c| (c.get(&view).copied(), c.values().copied().collect::<HashSet<u32>>()));
    if mine.is_some_and(|p| running.contains(&p)) {
        return;
    }
    let free: Vec<u32> = running.into_iter().filter(|p| !claimed.contains(p)).collect();
    if let [pid] = free.as_slice() {
        claim(view, *pid, writer);
    }
}

fn claim(view: ViewId, pid: u32, writer: &Writer) {
    tracing::debug!(view, pid, "the view's web process");
    CLAIMED.with_borrow_mut(|c| c.insert(view, pid));
    send(writer, &HostMsg::WebProcess { pid });
}

/// `view` has closed (a claim still being looked for goes nowhere: the shell has closed the
/// view's connection).
pub(crate) fn release(view: ViewId) {
    CLAIMED.with_borrow_mut(|c| c.remove(&view));
}
