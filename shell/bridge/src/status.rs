//! What the link is doing, for the shell bar, the health view and `tessera ctl link`.

use serde::Serialize;

/// The link's state and counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Status {
    /// This desk's name.
    pub desk: String,
    /// `connecting`, `connected`, `disconnected` or `closed`.
    pub state: &'static str,
    /// The server it is connected to (`host:port`), once connected.
    pub server: Option<String>,
    /// The groups this desk takes part in.
    pub groups: Vec<String>,
    /// The groups set up on the cluster (their stream, and this desk's consumer of it).
    pub ready: Vec<String>,
    /// Messages sent to the other desks.
    pub messages_out: u64,
    /// Messages from the other desks delivered here.
    pub messages_in: u64,
    /// Messages refused, either way (too large, not shared, malformed).
    pub refused: u64,
    /// Messages from the other desks dropped as already delivered.
    pub duplicates: u64,
    /// This desk's own messages read back from the cluster, not delivered again.
    pub own: u64,
    /// The other desks heard from lately (each announces itself to its groups).
    pub desks: Vec<String>,
    /// Messages on the cluster this desk has yet to read (its lag), by group.
    pub pending: std::collections::BTreeMap<String, u64>,
    /// The last problem, if any, in one line.
    pub last_error: Option<String>,
    /// What the connection last said went wrong (a refused login, a TLS failure), until it
    /// connects.
    pub connection_error: Option<String>,
    /// The cluster refused this desk's login (its credentials), until it connects.
    pub login_refused: bool,
}

impl Status {
    /// Whether the link is up.
    pub fn connected(&self) -> bool {
        self.state == "connected"
    }
}
