//! `tessera bench ...`: measurements on this machine, reported as p50/p99 and throughput, with
//! a baseline measured in the same run.

pub(crate) mod bridge;
pub(crate) mod broker;
pub(crate) mod desk;
pub(crate) mod e2e;
pub(crate) mod endpoint;
pub(crate) mod flood;
pub(crate) mod frame;
pub(crate) mod ipc;
pub(crate) mod journal;
mod otlp_sink;
pub(crate) mod page_desk;
pub(crate) mod stats;
mod workload;

/// Prints a benchmark's report: one JSON object with `json` (for scripts), else the table
/// `table` prints (for people).
#[expect(clippy::print_stdout, reason = "the report is a bench command's output")]
pub(crate) fn report<R: serde::Serialize>(r: &R, json: bool, table: impl FnOnce(&R)) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(r).map_err(|e| anyhow::anyhow!("serialising the report: {e}"))?);
    } else {
        table(r);
    }
    Ok(())
}
