//! Workspace integration tests: they run the real binaries and check the workspace's rules.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a test binary: a failed unwrap is a failed test")]
#![allow(clippy::too_many_lines, reason = "an end-to-end test is one story, told in order against one running shell")]

mod architecture;
mod audit;
mod audit_keyring;
mod cli;
mod config;
mod damaged_profile;
mod demo;
mod desk_bench;
mod diag;
mod e2e;
mod fdc3;
mod flood;
mod groups;
mod hostile;
mod journal_crash;
mod layout;
mod link;
mod metrics;
mod native;
mod nats;
mod permissions;
mod runtime_dir;
mod supervisor;
mod telemetry;
mod traces;
mod update;
mod vault;
