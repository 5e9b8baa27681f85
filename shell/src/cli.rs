//! The command-line grammar. Exit codes: 0 ok, 1 failure, 2 bad usage or bad input.

use clap::{Args, Parser, Subcommand};

/// Tessera: a native desktop interop shell for trading desks.
#[derive(Debug, Parser)]
#[command(name = "tessera", version, about)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Measures parts of Tessera on this machine.
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Debug, Subcommand)]
pub(crate) enum BenchCommand {
    /// Routing and delivery through the in-process broker.
    Broker(BrokerBenchArgs),
}

#[derive(Debug, Args)]
pub(crate) struct BrokerBenchArgs {
    /// Subscriptions to install.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub(crate) subscriptions: u32,
    /// Messages to publish in the throughput pass (and topics to match).
    #[arg(long, default_value_t = 200_000, value_parser = clap::value_parser!(u32).range(1..=100_000_000))]
    pub(crate) messages: u32,
    /// Share of subscriptions that use `*` or `#`, from 0 to 1.
    #[arg(long, default_value_t = 0.25, value_parser = ratio)]
    pub(crate) wildcard_ratio: f64,
    /// Latency samples in the paced pass.
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u32).range(100..=10_000_000))]
    pub(crate) latency_samples: u32,
    /// Seed of the workload generator.
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
}

fn ratio(s: &str) -> Result<f64, String> {
    let r: f64 = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
    if (0.0..=1.0).contains(&r) { Ok(r) } else { Err(format!("{r} is outside 0..=1")) }
}
