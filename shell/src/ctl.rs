//! The control socket of a running shell: what `tessera ctl` sends and gets back.
//!
//! One JSON request per connection, one line; the answer is one line
//! `{"ok": true, "result": ...}` or `{"ok": false, "error": "..."}`. `subscribe` answers, then
//! streams one JSON line per message until either side hangs up. The socket lives in a 0700
//! directory and is itself 0600: only the user who runs the shell can drive it; both ends refuse a
//! directory that is not the user's own and a peer of another uid ([`runtime_dir`]).

pub mod runtime_dir;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// A request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    /// Every app instance and its state.
    Apps,
    /// Start an instance of an app from the manifest.
    Launch {
        /// The app's id.
        app: String,
    },
    /// Close an instance.
    Close {
        /// The instance.
        instance: u64,
    },
    /// Evaluate a JavaScript expression in an instance's page (promises are awaited).
    Eval {
        /// The instance.
        instance: u64,
        /// The expression.
        js: String,
        /// How long to wait for the answer.
        timeout_ms: u64,
    },
    /// Publish a JSON value on the bus.
    Publish {
        /// The topic.
        topic: String,
        /// The value.
        data: serde_json::Value,
        /// Kept in the journal until delivered (answered once committed).
        #[serde(default)]
        durable: bool,
    },
    /// Stream every message on topics matching a pattern.
    Subscribe {
        /// The pattern.
        pattern: String,
    },
    /// Save the shell window, app views included, as a PNG.
    Screenshot {
        /// Where (absolute; the shell resolves nothing).
        path: PathBuf,
        /// Which shell window (its number in `layout get`); the main window if absent.
        #[serde(default)]
        window: Option<u32>,
    },
    /// Shut the shell down.
    Quit,
    /// The live layout: the tree, and each pane's app instance, channel and bounds.
    LayoutGet,
    /// Save the desk as a named workspace.
    LayoutSave {
        /// Its name.
        name: String,
    },
    /// Make the desk look like a saved workspace.
    LayoutRestore {
        /// Its name.
        name: String,
    },
    /// The saved workspaces.
    LayoutList,
    /// The shell's own services (the audit log, ...) and each app's state.
    Health,
    /// The desk link's state and counters.
    Link,
    Prompts,
    Prompt {
        id: u64,
        answer: String,
    },
    Grants,
    GrantsRevoke {
        app: String,
        permission: String,
    },
}

/// The answer to a request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// Whether it worked.
    pub ok: bool,
    /// What it gave.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    /// Why not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Response {
    /// Success with a value.
    pub fn ok(result: serde_json::Value) -> Self {
        Self { ok: true, result: Some(result), error: None }
    }

    /// Failure with a reason.
    pub fn err(error: impl std::fmt::Display) -> Self {
        Self { ok: false, result: None, error: Some(error.to_string()) }
    }
}

/// Longest request line the shell reads.
pub const MAX_REQUEST: usize = 1 << 20;

/// Where the native-app endpoint of the shell whose control socket is `ctl` listens: beside
/// it, in the same private directory (`ctl.sock` → `ctl-endpoint.sock`).
pub fn endpoint_socket(ctl: &std::path::Path) -> PathBuf {
    let stem = ctl.file_stem().map_or_else(|| "tessera".into(), |s| s.to_string_lossy());
    ctl.with_file_name(format!("{stem}-endpoint.sock"))
}

/// Where a shell listens by default: `$XDG_RUNTIME_DIR/tessera/ctl.sock`, or, with no runtime
/// directory, `/tmp/tessera-<uid>/ctl.sock`.
pub fn default_socket() -> PathBuf {
    let dir = match std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        Some(run) => PathBuf::from(run).join("tessera"),
        None => std::env::temp_dir().join(format!("tessera-{}", rustix::process::getuid().as_raw())),
    };
    dir.join("ctl.sock")
}
