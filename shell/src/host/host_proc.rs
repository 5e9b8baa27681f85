//! The process behind an instance: a host of its own (killed with its whole tree when the
//! instance is done with it), or its view in a process group's shared host, where only the
//! view is the instance's: closing its connection closes the view, and what is killed for it is
//! its own web process, never the host the other apps share.

use std::sync::Arc;
use std::time::Duration;

use crate::host::group::GroupHost;
use crate::host::instance::describe;
use crate::host::procs::kill_tree;

/// How long a view whose connection ended waits to see whether its shared host ended too.
const SHARED_HOST_GOING: Duration = Duration::from_millis(300);

/// An instance's process.
pub(crate) enum HostProc {
    /// A host of its own.
    Own { child: tokio::process::Child, pid: Option<u32> },
    /// A view in a shared host; `web` is its web process once the host has named it.
    Shared { group: Arc<GroupHost>, web: Option<u32> },
}

impl HostProc {
    /// The host's pid, for the status.
    pub(crate) fn pid(&self) -> Option<u32> {
        match self {
            Self::Own { pid, .. } => *pid,
            Self::Shared { group, .. } => Some(group.pid()),
        }
    }

    /// The process group, for the status.
    pub(crate) fn group(&self) -> Option<String> {
        match self {
            Self::Own { .. } => None,
            Self::Shared { group, .. } => Some(group.name().to_owned()),
        }
    }

    /// The root of the processes watched as the instance's own (memory, CPU): its host, or
    /// in a shared host its web process.
    pub(crate) fn watched(&self) -> Option<u32> {
        match self {
            Self::Own { pid, .. } => *pid,
            Self::Shared { web, .. } => *web,
        }
    }

    /// The shared host says `pid` runs the view's page: taken if it is that host's child (a
    /// host could name any process). `false` if it is not taken.
    pub(crate) fn set_web(&mut self, pid: u32) -> bool {
        match self {
            Self::Shared { group, web } if group.is_child(pid) => {
                *web = Some(pid);
                true
            }
            _ => false,
        }
    }

    /// Waits until the process ends; says how.
    pub(crate) async fn exited(&mut self) -> String {
        match self {
            Self::Own { child, pid } => {
                let status = child.wait().await;
                if let Some(pid) = *pid {
                    kill_tree(pid);
                }
                match status {
                    Ok(s) => describe(s),
                    Err(e) => format!("wait failed: {e}"),
                }
            }
            Self::Shared { group, .. } => {
                let why = group.ended().await;
                format!("the shared host of process group {} ended: {why}", group.name())
            }
        }
    }

    /// After the instance's connection ended (`why`): a host of its own is given `grace` to
    /// leave, then killed; says how it went. (A shared host's view has gone with its
    /// connection; the host stays.)
    pub(crate) async fn after_connection(&mut self, why: String, grace: Duration) -> String {
        let (child, pid) = match self {
            Self::Own { child, pid } => (child, pid),
            Self::Shared { group, .. } => {
                // A view's connection ends with its host: say so, if that is why.
                return match tokio::time::timeout(SHARED_HOST_GOING, group.ended()).await {
                    Ok(ended) => format!("the shared host of process group {} ended: {ended}", group.name()),
                    Err(_) => why,
                };
            }
        };
        let pid = *pid;
        let waited = tokio::time::timeout(grace, child.wait()).await;
        if let Some(pid) = pid {
            kill_tree(pid);
        }
        match waited {
            // A crash usually shows as the socket closing first: say how it ended.
            Ok(Ok(status)) if !status.success() => describe(status),
            Ok(Ok(status)) => format!("{why}; {}", describe(status)),
            Ok(Err(e)) => format!("{why}; wait failed: {e}"),
            Err(_) => {
                self.kill().await;
                format!("{why}; killed after the grace period")
            }
        }
    }

    /// Kills what is the instance's own: its host's whole tree, or its web process in a shared
    /// host (the caller closes the connection, which closes the view).
    pub(crate) async fn kill(&mut self) {
        match self {
            Self::Own { child, .. } => {
                if let Some(pid) = child.id() {
                    kill_tree(pid);
                }
                let _ = child.start_kill();
                let _ = child.wait().await;
            }
            Self::Shared { group, web } => {
                // Checked again: the process may have gone and its pid been reused.
                if let Some(pid) = web.take().filter(|p| group.is_child(*p))
                    && let Some(pid) = rustix::process::Pid::from_raw(pid.cast_signed())
                {
                    let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                }
            }
        }
    }

    /// The instance is closing (its connection already closed): a host of its own is given
    /// `grace` to leave, then killed.
    pub(crate) async fn stop(&mut self, grace: Duration) {
        let Self::Own { child, pid } = self else { return };
        let pid = *pid;
        if tokio::time::timeout(grace, child.wait()).await.is_err() {
            self.kill().await;
        } else if let Some(pid) = pid {
            kill_tree(pid);
        }
    }
}
