//! `tessera diag bundle`: what IT asks a user to send when something went wrong, in one
//! tar.gz: the versions, the running shell's health, apps (with why each last exited) and link,
//! the effective admin policy (its signature checked, secrets redacted), recent logs (every
//! line redacted), the latest crash reports and the update history. Nothing in it is a
//! secret: values under secret names and anything that looks like a key, seed or token are
//! replaced (`telemetry::redact`); message payloads are never logged to begin with.
//! `tessera diag panic` checks crash reporting: it panics on purpose and leaves a report.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::{Value, json};
use shell::ctl::Request;
use telemetry::redact;

use crate::cli::{DiagBundleArgs, DiagCommand};

/// Most bytes of logs a bundle takes, newest first.
const LOG_BUDGET: u64 = 32 << 20;
/// Crash reports a bundle takes, newest first.
const CRASHES: usize = 10;

/// Runs a `diag` command.
pub(crate) fn run(cmd: &DiagCommand) -> Result<bool> {
    match cmd {
        DiagCommand::Bundle(args) => bundle(args).map(|()| true),
        DiagCommand::Panic { profile } => {
            let dir = crate::profile::dir(profile)?;
            crate::crash::install(&dir);
            // What this command is for: the hook writes its report, then the process ends.
            panic!("tessera diag panic: a panic on purpose, to check crash reporting");
        }
    }
}

/// One file of the bundle.
struct Entry {
    name: String,
    bytes: Vec<u8>,
}

fn bundle(args: &DiagBundleArgs) -> Result<()> {
    let profile = crate::profile::dir(&args.profile)?;
    let mut entries = Vec::new();
    let mut notes = Vec::new();
    entries.push(json_entry("versions.json", &versions(&profile)));
    running_shell(args, &mut entries, &mut notes);
    entries.push(json_entry("policy.json", &policy(args, &profile)));
    logs(&profile, &mut entries, &mut notes);
    crashes(&profile, &mut entries, &mut notes);
    updates(args.root.as_deref(), &mut entries, &mut notes);
    let readme = readme(&entries, &notes);
    entries.insert(0, Entry { name: "README.txt".into(), bytes: readme.into_bytes() });

    let out = args.out.clone().unwrap_or_else(|| {
        let stamp = broker::Timestamp::now().to_rfc3339().replace([':', '.'], "-");
        PathBuf::from(format!("tessera-diag-{stamp}.tar.gz"))
    });
    write_tar_gz(&out, &entries).with_context(|| format!("writing {}", out.display()))?;
    #[expect(clippy::print_stdout, reason = "the bundle's path is this command's output")]
    {
        println!("{}", out.display());
    }
    Ok(())
}

fn json_entry(name: &str, value: &Value) -> Entry {
    let mut bytes = serde_json::to_vec_pretty(value).unwrap_or_default();
    bytes.push(b'\n');
    Entry { name: name.to_owned(), bytes }
}

/// The build, the system and where things are.
fn versions(profile: &Path) -> Value {
    let read = |p: &str| std::fs::read_to_string(p).ok().map(|s| s.trim().to_owned());
    let os = read("/etc/os-release")
        .and_then(|t| t.lines().find_map(|l| l.strip_prefix("PRETTY_NAME=")).map(|v| v.trim_matches('"').to_owned()));
    json!({
        "tessera": env!("CARGO_PKG_VERSION"),
        "binary": std::env::current_exe().ok(),
        "os": os,
        "kernel": read("/proc/sys/kernel/osrelease"),
        "arch": std::env::consts::ARCH,
        "profile": profile,
        "written": broker::Timestamp::now().to_rfc3339(),
    })
}

/// What the running shell says of itself: health, apps and the desk link.
fn running_shell(args: &DiagBundleArgs, entries: &mut Vec<Entry>, notes: &mut Vec<String>) {
    for (name, request) in
        [("health.json", Request::Health), ("apps.json", Request::Apps), ("link.json", Request::Link)]
    {
        match super::ctl::ask(&args.socket, &request) {
            Ok((response, _)) if response.ok => {
                entries.push(json_entry(name, &redact::json(&response.result.unwrap_or(Value::Null))));
            }
            Ok((response, _)) => notes.push(format!("{name}: the shell said: {}", response.error.unwrap_or_default())),
            Err(e) => {
                notes.push(format!("{name}: no running shell answered ({})", crate::one_line(&e)));
                // Without a shell, the other questions have no one to answer them either.
                return;
            }
        }
    }
}

/// The admin policy file in force (for a policy from a URL, the copy kept in the profile),
/// its signature checked, its secrets redacted.
fn policy(args: &DiagBundleArgs, profile: &Path) -> Value {
    let Some(given) = super::update::policy_path(args.policy.as_deref()) else {
        return json!({ "path": null, "note": "no admin policy file: the manifest's policy, or none, is in force" });
    };
    let given_text = given.to_string_lossy().into_owned();
    let path = if shell::remote::is_url(&given_text) {
        shell::appd::cache_file(&profile.join("config"), &given_text)
    } else {
        given.clone()
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => return json!({ "path": path, "error": format!("cannot be read: {e}") }),
    };
    let trust = args
        .policy_trust
        .clone()
        .or_else(|| Some(PathBuf::from(crate::run::SYSTEM_POLICY_TRUST)).filter(|p| p.is_file()));
    let checked = match trust.as_deref().map(load_checker).transpose() {
        Ok(checker) => match policy::load_file(&path, checker.as_ref()) {
            Ok(_) if checker.is_some() => "valid, and signed by a key the trust file names".to_owned(),
            Ok(_) => "valid (no trust file: its signature is not required)".to_owned(),
            Err(e) => format!("REFUSED: {e}"),
        },
        Err(e) => format!("the trust file could not be read: {}", crate::one_line(&e)),
    };
    let content =
        serde_json::from_str::<Value>(&text).map_or_else(|e| json!(format!("not JSON: {e}")), |v| redact::json(&v));
    json!({ "from": given, "path": path, "trust": trust, "check": checked, "policy": content })
}

fn load_checker(path: &Path) -> Result<policy::signing::Checker> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let rules: policy::signing::SigningRules =
        serde_json::from_str(&text).with_context(|| format!("{}: not signing rules", path.display()))?;
    Ok(policy::signing::Checker::new(&rules)?)
}

/// The profile's log files, newest first within [`LOG_BUDGET`], each line redacted.
fn logs(profile: &Path, entries: &mut Vec<Entry>, notes: &mut Vec<String>) {
    let dir = profile.join("logs");
    let mut files = vec![dir.join("tessera.log")];
    files.extend((1..=crate::logging::KEEP).map(|n| dir.join(format!("tessera.log.{n}"))));
    let mut budget = LOG_BUDGET;
    let mut taken = 0;
    for file in files {
        let Ok(text) = std::fs::read(&file) else { continue };
        if text.len() as u64 > budget {
            notes.push(format!("{} and older logs left out: past the {} MiB budget", file.display(), LOG_BUDGET >> 20));
            break;
        }
        budget -= text.len() as u64;
        let text = String::from_utf8_lossy(&text);
        let mut out = String::with_capacity(text.len());
        for line in text.lines() {
            out.push_str(&redact::line(line));
            out.push('\n');
        }
        let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        entries.push(Entry { name: format!("logs/{name}"), bytes: out.into_bytes() });
        taken += 1;
    }
    if taken == 0 {
        notes.push(format!("logs: none in {}", dir.display()));
    }
}

/// The latest crash reports of the shell.
fn crashes(profile: &Path, entries: &mut Vec<Entry>, notes: &mut Vec<String>) {
    let all = crate::crash::list(&crate::crash::dir(profile));
    if all.is_empty() {
        notes.push("crashes: the shell has not panicked in this profile".to_owned());
    }
    for file in all.iter().rev().take(CRASHES) {
        let Ok(text) = std::fs::read_to_string(file) else { continue };
        let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        entries.push(Entry { name: format!("crashes/{name}"), bytes: redact::text(&text).into_bytes() });
    }
}

/// The update history and state of the install this build belongs to.
fn updates(root: Option<&Path>, entries: &mut Vec<Entry>, notes: &mut Vec<String>) {
    let install = match root {
        Some(r) => update::install::Install::at(r).ok(),
        None => update::install::Install::locate(),
    };
    let Some(install) = install else {
        notes.push("updates: this build is not part of an install root (no update history)".to_owned());
        return;
    };
    for (name, path) in [("updates/events.jsonl", install.events_path()), ("updates/state.json", install.state_path())]
    {
        match std::fs::read_to_string(&path) {
            Ok(text) => entries.push(Entry { name: name.to_owned(), bytes: redact::text(&text).into_bytes() }),
            Err(e) => notes.push(format!("{name}: {}: {e}", path.display())),
        }
    }
}

fn readme(entries: &[Entry], notes: &[String]) -> String {
    let mut s = format!(
        "Tessera diagnostics bundle, written {} by tessera {}.\nSecrets are redacted; message payloads are never logged.\n\nFiles:\n",
        broker::Timestamp::now().to_rfc3339(),
        env!("CARGO_PKG_VERSION")
    );
    for e in entries {
        s.push_str(&format!("  {} ({} bytes)\n", e.name, e.bytes.len()));
    }
    if !notes.is_empty() {
        s.push_str("\nLeft out or not available:\n");
        for n in notes {
            s.push_str(&format!("  {n}\n"));
        }
    }
    s
}

/// Writes the entries under one top directory, readable only by the user (a bundle may still
/// say more about the desk than others should read).
fn write_tar_gz(out: &Path, entries: &[Entry]) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let partial = out.with_extension("partial");
    let file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&partial)?;
    let gz = flate2::write::GzEncoder::new(file, flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    for e in entries {
        let mut header = tar::Header::new_gnu();
        header.set_size(e.bytes.len() as u64);
        header.set_mode(0o600);
        header.set_mtime(now);
        header.set_cksum();
        tar.append_data(&mut header, format!("tessera-diag/{}", e.name), e.bytes.as_slice())?;
    }
    let mut file = tar.into_inner()?.finish()?;
    file.flush()?;
    file.sync_all()?;
    std::fs::rename(&partial, out)?;
    Ok(())
}
