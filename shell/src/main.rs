//! `tessera`: the Tessera shell's command line.
//!
//! `tessera` (or `tessera run`) runs the shell: its window, the broker and one app host per app;
//! `tessera ctl` drives a running shell; the other commands measure, inspect and maintain a
//! profile. Nothing but a command's own output goes to stdout; logs go to stderr through
//! `tracing` (`TESSERA_LOG=debug` for more).

mod bench;
mod cli;
mod commands;
mod crash;
mod logging;
mod profile;
mod run;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{BenchCommand, Cli, Command};
use crate::commands::{audit, ctl, diag, journal, link, sign, update, vault};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // clap prints help and version to stdout with exit code 0, usage errors to stderr with 2.
        Err(e) => e.exit(),
    };
    let command = cli.command.unwrap_or_else(|| Command::Run(cli::RunArgs::default()));
    // The shell itself also logs into its profile, for IT; the other commands only to stderr.
    let log_dir = match &command {
        Command::Run(args) => profile::dir(&args.profile).ok().map(|d| d.join("logs")),
        _ => None,
    };
    logging::init(log_dir.as_deref());
    // A panic in the shell leaves a crash report in its profile.
    if let Some(profile) = log_dir.as_deref().and_then(std::path::Path::parent) {
        crash::install(profile);
    }
    quiet_database_panics();
    let result = match command {
        Command::Run(args) => run::run(&args),
        Command::Ctl(args) => ctl::run(&args),
        Command::Bench(BenchCommand::Broker(args)) => bench::broker::run(&args).map(|()| true),
        Command::Bench(BenchCommand::Journal(args)) => bench::journal::run(&args).map(|()| true),
        Command::Bench(BenchCommand::Ipc(args)) => bench::ipc::run(&args).map(|()| true),
        Command::Bench(BenchCommand::Frame(args)) => bench::frame::run(&args).map(|()| true),
        Command::Bench(BenchCommand::Endpoint(args)) => bench::endpoint::run(&args).map(|()| true),
        Command::Bench(BenchCommand::EndpointClient(args)) => bench::endpoint::client::run(&args).map(|()| true),
        Command::Bench(BenchCommand::Flood(args)) => bench::flood::run(&args).map(|()| true),
        Command::Bench(BenchCommand::Bridge(args)) => bench::bridge::run(&args).map(|()| true),
        Command::Bench(BenchCommand::Memory(args)) => bench::desk::memory::run(&args).map(|()| true),
        Command::Bench(BenchCommand::Startup(args)) => bench::desk::startup::run(&args).map(|()| true),
        Command::Bench(BenchCommand::E2e(args)) => bench::e2e::run(&args).map(|()| true),
        Command::Journal(cmd) => journal::run(&cmd),
        Command::Vault(cmd) => vault::run(&cmd),
        Command::Audit(cmd) => audit::run(&cmd),
        Command::Sign(cmd) => sign::run(&cmd).map(|()| true),
        Command::Update(cmd) => update::run(&cmd),
        Command::Release(cmd) => update::release(&cmd).map(|()| true),
        Command::Link(cmd) => link::run(&cmd).map(|()| true),
        Command::Diag(cmd) => diag::run(&cmd),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            // Reported once, here, for the person or script that ran the command.
            eprintln!("tessera: {}", one_line(&e));
            if is_bad_input(&e) { ExitCode::from(2) } else { ExitCode::FAILURE }
        }
    }
}

/// Most characters of one cause an error line shows.
const CAUSE_LIMIT: usize = 600;

/// The error and its causes on one line: a cause already said by the one before is not said
/// again, and a cause that quotes pages of input is cut.
pub(crate) fn one_line(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string().replace('\n', " ");
        if text.is_empty() || out.contains(&text) {
            continue;
        }
        let count = text.chars().count();
        let text = if count > CAUSE_LIMIT {
            let head: String = text.chars().take(CAUSE_LIMIT - 100).collect();
            let tail: String = text.chars().skip(count - 100).collect();
            format!("{head} … ({} characters left out) … {tail}", count - CAUSE_LIMIT)
        } else {
            text
        };
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// Whether the error is about input the user gave (a manifest, an admin policy, an App
/// Directory file): exit code 2, like bad usage.
fn is_bad_input(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<shell::manifest::ManifestError>().is_some()
            || c.downcast_ref::<policy::PolicyError>().is_some()
            || c.downcast_ref::<broker::fdc3::DirectoryError>().is_some()
    })
}

/// A damaged profile can make the database engine panic; storage turns that into an error that
/// names the file and what to do, so the panic's own report would only be noise.
fn quiet_database_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let in_redb = info.location().is_some_and(|l| {
            let file = l.file().replace('\\', "/");
            file.contains("/redb-") || file.starts_with("redb")
        });
        if !in_redb {
            default(info);
        }
    }));
}
