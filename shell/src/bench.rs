//! `tessera bench ...`: measurements on this machine, reported as p50/p99 and throughput, with
//! a baseline measured in the same run.

pub(crate) mod broker;
pub(crate) mod ipc;
pub(crate) mod journal;
mod workload;
