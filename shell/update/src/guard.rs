//! The start-up guard: at `tessera run` on an installed build, a staged build is put on
//! probation and run as a child while this (proven) build watches for its healthy start. A new
//! build that does not start healthy in time, or crashes too often, is given up and the proven
//! build runs; `current` moves only after the new build wrote its healthy marker
//! (`Install::begin_probation`, `Install::abandon`).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::install::{Install, UpdateError};

type Result<T, E = UpdateError> = std::result::Result<T, E>;

/// Set in the environment of a new build started on probation by the guard.
pub const PROBATION_ENV: &str = "TESSERA_PROBATION";

/// At `tessera run` on an installed build: puts a staged build on probation and runs it as a
/// child, watching for its healthy start. Returns the exit code to end with when this process
/// was the guard, or `None` to run the shell here (with the current, proven build). An error
/// here never stops the shell from starting: it is logged, and the installed build runs.
///
/// `policy` is the admin policy file, if the desk has one. The caller logs an error and starts
/// the installed build.
pub fn guard(policy: Option<&Path>) -> Result<Option<i32>> {
    if std::env::var_os(PROBATION_ENV).is_some() {
        return Ok(None);
    }
    let Some(install) = Install::locate() else { return Ok(None) };
    guard_in(&install, policy)
}

fn guard_in(install: &Install, policy: Option<&Path>) -> Result<Option<i32>> {
    let rules = match policy {
        None => None,
        Some(path) => match policy::load_file(path, None) {
            Ok(p) => p.update().cloned(),
            Err(e) => return Err(UpdateError::Policy(e.to_string())),
        },
    };
    let max_attempts = rules.as_ref().map_or(3, |r| r.max_failed_starts);
    let health_timeout = Duration::from_secs(rules.as_ref().map_or(60, |r| r.health_timeout_secs));
    loop {
        let probation = {
            let Some(_lock) = install.try_lock()? else {
                tracing::warn!("another updater holds the install; starting without installing anything");
                return Ok(None);
            };
            install.settle()?;
            let staged = install.state()?.staged;
            // Turned off, or pinned to another version, by the admin policy: not installed.
            let allowed = rules
                .as_ref()
                .is_none_or(|r| r.enabled && r.pin_version.as_ref().is_none_or(|pin| staged.as_ref() == Some(pin)));
            if allowed {
                install.begin_probation()?;
            } else if let Some(v) = &staged {
                tracing::warn!(version = %v, "a staged build is not installed: the admin policy turned updates off or pins another version");
            }
            let mut state = install.state()?;
            let Some(p) = state.probation.as_mut() else { return Ok(None) };
            if p.attempts >= max_attempts {
                let reason = format!("{} did not start healthy in {} attempts", p.version, p.attempts);
                install.abandon(&reason)?;
                tracing::error!(%reason, "the new build was given up; the installed one runs");
                return Ok(None);
            }
            p.attempts += 1;
            let p = p.clone();
            install.save_state(&state)?;
            p
        };
        tracing::info!(version = %probation.version, attempt = probation.attempts, "starting the new build on probation");
        let exe = install.release_dir(&probation.version).join("bin/tessera");
        let mut child = match Command::new(&exe)
            .args(std::env::args_os().skip(1))
            .env(PROBATION_ENV, &probation.version)
            .spawn()
        {
            Ok(c) => c,
            Err(e) => {
                install.event("update.start", Some(&probation.version), "failed", json!({ "error": e.to_string() }));
                continue;
            }
        };
        let marker = install.healthy_marker(&probation.version);
        let healthy = || marker.exists() || install.state().is_ok_and(|s| s.probation.is_none());
        let started = Instant::now();
        loop {
            std::thread::sleep(Duration::from_millis(200));
            match child.try_wait() {
                Ok(Some(status)) if healthy() => return Ok(Some(status.code().unwrap_or(1))),
                Ok(Some(status)) if status.success() => {
                    // Quit before it was healthy: not a failure, and no attempt used up.
                    let _lock = install.lock()?;
                    let mut state = install.state()?;
                    if let Some(p) = state.probation.as_mut().filter(|p| p.version == probation.version) {
                        p.attempts = p.attempts.saturating_sub(1);
                        install.save_state(&state)?;
                    }
                    return Ok(Some(0));
                }
                Ok(Some(status)) => {
                    install.event(
                        "update.start",
                        Some(&probation.version),
                        "crashed",
                        json!({ "status": status.to_string(), "attempt": probation.attempts }),
                    );
                    break;
                }
                Ok(None) if healthy() => {
                    let status = child.wait().map_err(|source| UpdateError::Io { path: exe.clone(), source })?;
                    return Ok(Some(status.code().unwrap_or(1)));
                }
                Ok(None) if started.elapsed() > health_timeout => {
                    stop(&mut child);
                    let _lock = install.lock()?;
                    let reason =
                        format!("{} did not start healthy within {} s", probation.version, health_timeout.as_secs());
                    if install.abandon(&reason)?.is_some() {
                        tracing::error!(%reason, "the new build was given up; the installed one runs");
                        return Ok(None);
                    }
                    // It became healthy while being stopped: start it again as the installed build.
                    drop(_lock);
                    return Err(restart(install));
                }
                Ok(None) => {}
                Err(source) => return Err(UpdateError::Io { path: exe, source }),
            }
        }
    }
}

/// Stops a child shell: SIGTERM, then SIGKILL after 5 s.
fn stop(child: &mut std::process::Child) {
    if let Ok(pid) = i32::try_from(child.id())
        && let Some(pid) = rustix::process::Pid::from_raw(pid)
    {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    }
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Replaces this process with the current build's `tessera`, with the same arguments; returns
/// only the error if that fails.
fn restart(install: &Install) -> UpdateError {
    use std::os::unix::process::CommandExt;
    let exe = match install.current_binary() {
        Ok(exe) => exe,
        Err(e) => return e,
    };
    let source = Command::new(&exe).args(std::env::args_os().skip(1)).exec();
    UpdateError::Io { path: exe, source }
}
