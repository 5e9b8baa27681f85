//! The commands that are not `run` or `bench`: `tessera ctl` (a running shell's control
//! socket), and the ones that inspect and maintain a profile or an install (`journal`,
//! `vault`, `audit`, `sign`, `update`, `release`, `link`, `diag`). Each is a thin command line
//! over a library: storage, policy, update or bridge.

pub(crate) mod audit;
pub(crate) mod ctl;
pub(crate) mod diag;
pub(crate) mod journal;
pub(crate) mod link;
pub(crate) mod sign;
pub(crate) mod update;
pub(crate) mod vault;
