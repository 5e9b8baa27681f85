//! `tessera audit verify|export|append|head`: the profile's tamper-evident audit log.

use std::io::Write;

use anyhow::{Context, Result, bail};
use broker::Timestamp;
use storage::Profile;
use storage::audit::{self, AuditConfig, AuditEntry, AuditLog};

use crate::cli::{AuditCommand, ExportFormat};

/// Opens the profile; only to read unless `write` (then nothing about it changes).
fn open_profile(arg: &crate::cli::ProfileArg, write: bool) -> Result<Profile> {
    let dir = crate::profile::dir(arg)?;
    if write { Profile::open(&dir) } else { Profile::open_read_only(&dir) }
        .with_context(|| format!("opening the profile in {}", dir.display()))
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_owned() }
}

/// Runs one audit command; `Ok(false)` means verification found problems (exit code 1).
#[expect(clippy::print_stdout, reason = "printing results is these commands' job")]
pub(crate) fn run(cmd: &AuditCommand) -> Result<bool> {
    match cmd {
        AuditCommand::Verify { profile, head, public_key, json } => {
            let profile = open_profile(profile, false)?;
            let key = match public_key {
                Some(text) => {
                    let text = std::fs::read_to_string(text).unwrap_or_else(|_| text.clone());
                    audit::parse_public_key(&text).context("--public-key is neither a key file nor 64 hex digits")?
                }
                None => audit::stored_public_key(&profile)
                    .with_context(|| format!("reading {}", profile.database_path().display()))?
                    .context("this profile has no audit log yet")?,
            };
            let head = match head {
                Some(path) => Some(audit::read_head(path)?),
                None => None,
            };
            let report = audit::verify(&profile, &key, head.as_ref())
                .with_context(|| format!("reading {}", profile.database_path().display()))?;
            if *json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                println!(
                    "audit log: {} entries, root {}, {} heads checked, {} entries covered by a signed head",
                    report.entries, report.root_hash, report.heads_checked, report.covered_by_heads
                );
                for p in &report.problems {
                    println!("  problem: {p}");
                }
                if report.not_covered > 0 {
                    let s = if report.not_covered == 1 { "y is" } else { "ies are" };
                    println!(
                        "  warning: {} entr{s} not covered by any signed head (the last {}): a change to them would not be detected",
                        report.not_covered, report.not_covered
                    );
                }
                if report.is_ok() {
                    println!("  ok: the log matches every signed head");
                }
            }
            Ok(report.is_ok())
        }
        AuditCommand::Export { profile, since, format } => {
            let since = match since {
                Some(text) => Some(Timestamp::parse(text).with_context(|| {
                    format!("--since {text:?}: expected YYYY-MM-DDTHH:MM:SS[.ffffff]Z or microseconds")
                })?),
                None => None,
            };
            let profile = open_profile(profile, false)?;
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            if matches!(format, ExportFormat::Csv) {
                writeln!(out, "index,time,actor,app,action,object,decision,details")?;
            }
            let entries = audit::entries(&profile, since)
                .with_context(|| format!("reading {}", profile.database_path().display()))?;
            for (index, e) in entries {
                match format {
                    ExportFormat::Jsonl => {
                        let mut v = serde_json::to_value(&e)?;
                        v["index"] = index.into();
                        v["time"] = e.time.to_rfc3339().into();
                        writeln!(out, "{v}")?;
                    }
                    ExportFormat::Csv => writeln!(
                        out,
                        "{index},{},{},{},{},{},{},{}",
                        e.time.to_rfc3339(),
                        csv_field(&e.actor),
                        csv_field(e.app.as_deref().unwrap_or("")),
                        csv_field(&e.action),
                        csv_field(&e.object),
                        csv_field(&e.decision),
                        csv_field(&e.details.to_string())
                    )?,
                }
            }
            out.flush()?;
            Ok(true)
        }
        AuditCommand::Append { vault, actor, app, action, object, decision, details, count } => {
            let details: serde_json::Value = match details {
                Some(text) => serde_json::from_str(text).with_context(|| format!("--details {text:?} is not JSON"))?,
                None => serde_json::Value::Null,
            };
            let profile = open_profile(&vault.profile, true)?;
            let v = super::vault::open_in(&profile, vault)?;
            let log = AuditLog::open(&profile, &v, AuditConfig::default())?;
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            for _ in 0..*count {
                let entry =
                    AuditEntry::now(actor, action, object, decision).app(app.as_deref()).details(details.clone());
                let index = log.append(&entry)?;
                writeln!(out, "{index}")?;
                out.flush()?;
            }
            Ok(true)
        }
        AuditCommand::Head { vault } => {
            let profile = open_profile(&vault.profile, true)?;
            let v = super::vault::open_in(&profile, vault)?;
            let log = AuditLog::open(&profile, &v, AuditConfig::default())?;
            let head = log.sign_head()?;
            println!("{}", serde_json::to_string(&head)?);
            if head.tree_size == 0 {
                bail!("signed a head for an empty log");
            }
            Ok(true)
        }
    }
}
