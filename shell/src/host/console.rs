//! App pages' console output in the shell's log (for apps the admin policy names in
//! `logs.consoleApps`): each line an event of target `app_console` with the app and instance
//! as fields, at the page's level, so it lands in the same JSON stream as the shell's own
//! lines. The host passes lines only for those apps; the shell checks again and holds each
//! instance to [`PER_WINDOW`] lines per [`WINDOW`], saying once how many it dropped.

use std::time::{Duration, Instant};

use parking_lot::Mutex;
use protocol::wire::ConsoleLevel;

/// The window lines are counted over.
pub(crate) const WINDOW: Duration = Duration::from_secs(10);
/// Lines logged per instance per window; past it they are counted and dropped.
pub(crate) const PER_WINDOW: u32 = 500;

/// One instance's console, as the shell logs it.
#[derive(Debug)]
pub(crate) struct ConsoleLog {
    app: String,
    instance: u64,
    wanted: bool,
    window: Mutex<(Instant, u32, u64)>,
}

impl ConsoleLog {
    /// For `app`'s `instance`; `wanted`: whether the policy has its console logged.
    pub(crate) fn new(app: &str, instance: u64, wanted: bool) -> Self {
        Self { app: app.to_owned(), instance, wanted, window: Mutex::new((Instant::now(), 0, 0)) }
    }

    /// Logs one line if wanted and within the budget; whether it was logged.
    pub(crate) fn line(&self, level: ConsoleLevel, text: &str) -> bool {
        if !self.wanted {
            return false;
        }
        let dropped = {
            let mut w = self.window.lock();
            if w.0.elapsed() >= WINDOW {
                let dropped = w.2;
                *w = (Instant::now(), 0, 0);
                dropped
            } else {
                0
            }
        };
        let (app, instance) = (self.app.as_str(), self.instance);
        if dropped > 0 {
            tracing::warn!(target: "app_console", app, instance, dropped, "the app's console wrote more than the log takes; lines were dropped");
        }
        {
            let mut w = self.window.lock();
            if w.1 >= PER_WINDOW {
                w.2 += 1;
                return false;
            }
            w.1 += 1;
        }
        match level {
            ConsoleLevel::Debug => tracing::debug!(target: "app_console", app, instance, "{text}"),
            ConsoleLevel::Info => tracing::info!(target: "app_console", app, instance, "{text}"),
            ConsoleLevel::Warn => tracing::warn!(target: "app_console", app, instance, "{text}"),
            ConsoleLevel::Error => tracing::error!(target: "app_console", app, instance, "{text}"),
        }
        true
    }
}

#[cfg(test)]
mod tests;
