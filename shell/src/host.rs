//! Running app hosts: the transport to each host ([`ipc`]: frames of `protocol` messages over
//! the host's socketpair, turned into broker calls) and the [`supervisor`] that starts each
//! host, watches it (exit, hang, stuck page, memory and CPU over budget) and restarts it.
//!
//! The files form no circle: `outbox.rs` (what a connection's writer is given) uses none of
//! the others; `instance.rs` (what an instance is) uses only it; `procs.rs` (the /proc
//! watchdog's reading), `parent_death.rs` (a native app's tie to the shell's life) and
//! `console.rs` (a page's console in the shell's log) and `traces.rs` (the spans of an app's
//! bus traffic) use none; `group.rs` (process groups' shared hosts) uses `instance.rs` and
//! `procs.rs`; `host_proc.rs` (an instance's own host, or its view in a shared one) uses those
//! and `group.rs`; `monitor.rs` (one instance's task) uses them and `ipc.rs`; `supervisor.rs`
//! (the handle the shell holds) uses all of them.

mod beats;
mod console;
pub mod endpoint;
pub mod gate;
mod group;
mod host_proc;
mod instance;
pub mod ipc;
mod monitor;
mod outbox;
mod parent_death;
pub mod procs;
pub mod supervisor;
mod traces;
