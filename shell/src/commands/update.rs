//! `tessera update check|apply|status|rollback`, the start-up guard's call at `tessera run`
//! (the guard itself is `update::guard`), and `tessera release publish` for IT.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use policy::signing::Checker;
use policy::{AdminPolicy, UpdateRules};
use serde_json::{Value, json};
use update::feed::{self as update_feed, Verdict};
use update::install::{Install, Progress, UpdateError, Watch};

use crate::cli::{ReleaseCommand, UpdateArgs, UpdateCommand};

/// Where IT puts the admin policy on a desk.
const SYSTEM_POLICY: &str = "/etc/tessera/policy.json";

/// The policy file to read: `--policy`, TESSERA_POLICY, or the system file.
pub(crate) fn policy_path(explicit: Option<&Path>) -> Option<PathBuf> {
    explicit
        .map(Path::to_owned)
        .or_else(|| std::env::var_os("TESSERA_POLICY").map(PathBuf::from))
        .or_else(|| Some(PathBuf::from(SYSTEM_POLICY)).filter(|p| p.is_file()))
}

fn install(args: &UpdateArgs) -> Result<Install> {
    match &args.root {
        Some(root) => Install::at(root).with_context(|| format!("the install root {}", root.display())),
        None => Install::locate()
            .context("this build is not part of an install root (give --root DIR or TESSERA_INSTALL_ROOT)")
            .and_then(|i| Install::at(i.root()).map_err(Into::into)),
    }
}

/// The update rules and the release keys from the admin policy.
fn rules(policy: Option<&Path>) -> Result<(UpdateRules, Checker)> {
    let path = policy_path(policy).context("no admin policy: updates need its `update` and `signing` sections")?;
    let policy = policy::load_file(&path, None).context("the admin policy")?;
    rules_of(&policy).with_context(|| format!("in {}", path.display()))
}

fn rules_of(policy: &AdminPolicy) -> Result<(UpdateRules, Checker)> {
    let rules = policy.update().cloned().context("the admin policy has no `update` section")?;
    let checker = policy.release_checker().context("the admin policy names no key for releases")?;
    Ok((rules, checker))
}

/// This machine's id, for its rollout bucket.
fn machine_id() -> String {
    ["/etc/machine-id", "/var/lib/dbus/machine-id"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok().filter(|s| !s.trim().is_empty()))
        .or_else(|| rustix::system::uname().nodename().to_str().ok().map(str::to_owned))
        .unwrap_or_default()
}

/// What a check came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Updates are off.
    Disabled,
    /// Nothing newer.
    UpToDate(String),
    /// Newer, but this desk's bucket is not in the rollout yet.
    NotYet { version: String, bucket: u8, percent: u8 },
    /// Newer, but the policy pins another version.
    Pinned { version: String, pin: String },
    /// Newer, but that build failed here before.
    Refused(String),
    /// Newer and for this desk (a check only).
    Available(String),
    /// Downloaded, verified and staged for the next start.
    Staged(String),
    /// Newer, but another new build is on probation.
    Waiting { version: String, probation: String },
}

impl Outcome {
    fn json(&self) -> Value {
        match self {
            Self::Disabled => json!({ "outcome": "disabled" }),
            Self::UpToDate(v) => json!({ "outcome": "up-to-date", "version": v }),
            Self::NotYet { version, bucket, percent } => {
                json!({ "outcome": "not-yet", "version": version, "bucket": bucket, "rolloutPercent": percent })
            }
            Self::Pinned { version, pin } => json!({ "outcome": "pinned", "version": version, "pin": pin }),
            Self::Refused(v) => json!({ "outcome": "refused", "version": v }),
            Self::Available(v) => json!({ "outcome": "available", "version": v }),
            Self::Staged(v) => json!({ "outcome": "staged", "version": v }),
            Self::Waiting { version, probation } => {
                json!({ "outcome": "waiting", "version": version, "probation": probation })
            }
        }
    }

    fn text(&self) -> String {
        match self {
            Self::Disabled => "updates are turned off by the admin policy".to_owned(),
            Self::UpToDate(v) => format!("up to date ({v})"),
            Self::NotYet { version, bucket, percent } => {
                format!("{version} is rolling out to {percent}% of desks; this desk (bucket {bucket}) is not in it yet")
            }
            Self::Pinned { version, pin } => format!("{version} is available, but the admin policy pins {pin}"),
            Self::Refused(v) => {
                format!("{v} is available, but it failed on this desk before and is not installed again")
            }
            Self::Available(v) => format!("{v} is available (tessera update apply to install it)"),
            Self::Staged(v) => format!("{v} is downloaded and verified; it is installed at the next start"),
            Self::Waiting { version, probation } => {
                format!("{version} is available; it waits until {probation}, on probation, has started healthy")
            }
        }
    }
}

/// Checks the channel's feed, and with `stage` downloads, verifies and unpacks the update.
/// Every outcome and every failure is an update event (and so an audit entry).
pub(crate) fn check(
    install: &Install,
    rules: &UpdateRules,
    checker: &Checker,
    stage: bool,
    watch: &Watch,
) -> Result<Outcome, UpdateError> {
    let _lock = install.lock_now()?;
    install.settle()?;
    if !rules.enabled {
        return Ok(Outcome::Disabled);
    }
    let url = rules.feed();
    let failed = |e: UpdateError| {
        install.event("update.check", None, "failed", json!({ "feed": url, "error": e.to_string() }));
        let _ = install.record_failure(None, &e.to_string());
        e
    };
    let text = update::install::fetch_feed(&url, Duration::from_secs(30)).map_err(failed)?;
    let running = install.current()?;
    let mut state = install.state()?;
    let bucket = update_feed::bucket(&machine_id(), &rules.channel);
    let now = update::install::now();
    let seen = state.newest_feed.get(&rules.channel).cloned();
    let verdict = update_feed::check(checker, &text, &rules.channel, &running, seen.as_deref(), bucket, &now)
        .map_err(|e| failed(UpdateError::Fetch { url: url.clone(), why: e.to_string() }))?;
    let feed = match &verdict {
        Verdict::Update(f) | Verdict::UpToDate(f) | Verdict::NotYet { feed: f, .. } => f.clone(),
    };
    let newer = seen
        .as_deref()
        .and_then(broker::Timestamp::parse)
        .is_none_or(|s| broker::Timestamp::parse(&feed.issued_at).is_some_and(|t| t > s));
    if newer {
        state.newest_feed.insert(rules.channel.clone(), feed.issued_at.clone());
    }
    state.last_check_at = Some(now);
    let outcome = match verdict {
        Verdict::UpToDate(f) => Outcome::UpToDate(f.version),
        Verdict::NotYet { feed, bucket } => {
            Outcome::NotYet { version: feed.version, bucket, percent: feed.rollout_percent }
        }
        Verdict::Update(f) => match &rules.pin_version {
            Some(pin) if *pin != f.version => Outcome::Pinned { version: f.version, pin: pin.clone() },
            _ if state.refused.contains(&f.version) => Outcome::Refused(f.version),
            _ if state.staged.as_deref() == Some(f.version.as_str()) => Outcome::Staged(f.version),
            _ => Outcome::Available(f.version),
        },
    };
    state.last_check = Some(outcome.text());
    install.save_state(&state)?;
    install.event(
        "update.check",
        Some(&feed.version),
        outcome.json()["outcome"].as_str().unwrap_or("?"),
        json!({ "feed": url, "bucket": bucket }),
    );
    match outcome {
        Outcome::Available(v) if stage && state.probation.is_some() => {
            // One new build at a time: the one on probation proves itself first.
            Ok(Outcome::Waiting { version: v, probation: state.probation.map(|p| p.version).unwrap_or_default() })
        }
        Outcome::Available(v) if stage => {
            let staged = install
                .stage(&feed, &checker.release_keys(), Duration::from_secs(rules.download_timeout_secs), watch)
                .inspect_err(|e| {
                    if watch.cancel.load(std::sync::atomic::Ordering::Relaxed) {
                        install.event("update.download", Some(&v), "stopped", json!({ "url": feed.url }));
                        return;
                    }
                    install.event(
                        "update.download",
                        Some(&v),
                        "refused",
                        json!({ "url": feed.url, "error": e.to_string() }),
                    );
                    let _ = install.record_failure(Some(&v), &e.to_string());
                })?;
            Ok(Outcome::Staged(staged))
        }
        other => Ok(other),
    }
}

#[expect(clippy::print_stdout, reason = "printing the outcome is these commands' job")]
fn say(json_out: bool, v: &Value, text: &str) {
    if json_out {
        println!("{v}");
    } else {
        println!("{text}");
    }
}

/// The installed builds and the updater's state, as `update status` prints it.
pub(crate) fn status(install: &Install) -> Result<Value> {
    let state = install.state()?;
    let progress: Option<Progress> =
        std::fs::read(install.progress_path()).ok().and_then(|b| serde_json::from_slice(&b).ok());
    Ok(json!({
        "root": install.root(),
        "current": install.current().ok(),
        "previous": install.previous(),
        "staged": state.staged,
        "probation": state.probation,
        "downloading": progress,
        "refused": state.refused,
        "lastCheck": state.last_check,
        "lastCheckAt": state.last_check_at,
        "lastFailure": state.last_failure,
        "newestFeed": state.newest_feed,
        "machineBucket": null,
    }))
}

/// Runs one `update` command; `Ok(false)` when it failed in an expected way (reported).
pub(crate) fn run(cmd: &UpdateCommand) -> Result<bool> {
    match cmd {
        UpdateCommand::Check { args } => {
            let install = install(args)?;
            let (rules, checker) = rules(args.policy.as_deref())?;
            let outcome = check(&install, &rules, &checker, false, &Watch::default())?;
            say(args.json, &outcome.json(), &outcome.text());
            Ok(true)
        }
        UpdateCommand::Apply { args, now } => {
            let install = install(args)?;
            let (rules, checker) = rules(args.policy.as_deref())?;
            let last = std::sync::Mutex::new(u64::MAX);
            let watch = Watch {
                progress: std::sync::Arc::new(move |p: Progress| {
                    let Ok(mut last) = last.lock() else { return };
                    let tenth = p.received * 10 / p.total.max(1);
                    if tenth != *last {
                        *last = tenth;
                        tracing::info!(received = p.received, total = p.total, "downloading");
                    }
                }),
                ..Watch::default()
            };
            let outcome = check(&install, &rules, &checker, true, &watch)?;
            if *now && let Outcome::Staged(v) = &outcome {
                let _lock = install.lock_now()?;
                match install.begin_probation()? {
                    Some(p) => {
                        let v = json!({ "outcome": "installed", "version": p.version, "previous": p.previous });
                        say(
                            args.json,
                            &v,
                            &format!(
                                "{} installed: the next start runs it on probation ({} stays until it has started healthy)",
                                p.version, p.previous
                            ),
                        );
                        return Ok(true);
                    }
                    None => bail!("{v} was staged but could not be installed"),
                }
            }
            say(args.json, &outcome.json(), &outcome.text());
            Ok(true)
        }
        UpdateCommand::Status { args } => {
            let install = install(args)?;
            let mut v = status(&install)?;
            if let Ok((rules, _)) = rules(args.policy.as_deref()) {
                v["channel"] = json!(rules.channel);
                v["enabled"] = json!(rules.enabled);
                v["pinVersion"] = json!(rules.pin_version);
                v["machineBucket"] = json!(update_feed::bucket(&machine_id(), &rules.channel));
            }
            let text = format!(
                "installed: {}\nprevious: {}\nstaged: {}\nprobation: {}\nlast check: {}\nlast failure: {}",
                v["current"].as_str().unwrap_or("?"),
                v["previous"].as_str().unwrap_or("none"),
                v["staged"].as_str().unwrap_or("none"),
                v["probation"]["version"].as_str().unwrap_or("none"),
                v["lastCheck"].as_str().unwrap_or("never"),
                v["lastFailure"]["reason"].as_str().unwrap_or("none"),
            );
            say(args.json, &v, &text);
            Ok(true)
        }
        UpdateCommand::Rollback { args } => {
            let install = install(args)?;
            let _lock = install.lock_now()?;
            install.settle()?;
            let from = install.current()?;
            let to = install.rollback("rolled back on command (tessera update rollback)")?;
            say(
                args.json,
                &json!({ "outcome": "rolled-back", "from": from, "to": to }),
                &format!("rolled back from {from} to {to}"),
            );
            Ok(true)
        }
    }
}

/// At `tessera run` on an installed build: runs the start-up guard (`update::guard::guard`).
/// Returns the exit code to end with when this process was the guard, or `None` to run the
/// shell here. An error here never stops the shell from starting: it is logged, and the
/// installed build runs.
pub(crate) fn guard(policy: Option<&Path>) -> Option<i32> {
    match update::guard::guard(policy_path(policy).as_deref()) {
        Ok(code) => code,
        Err(e) => {
            tracing::warn!("updates: {e:#}; starting the installed build");
            None
        }
    }
}

/// Runs one `release` command.
#[expect(clippy::print_stdout, reason = "printing the feed is this command's job")]
pub(crate) fn release(cmd: &ReleaseCommand) -> Result<()> {
    let ReleaseCommand::Publish {
        version,
        bin_dir,
        share_dir,
        feed_dir,
        base_url,
        channel,
        rollout,
        minimum_version,
        expires,
        key,
        key_id,
        level,
    } = cmd;
    let exe = std::env::current_exe().context("locating the tessera binary")?;
    let here = exe.parent().unwrap_or(Path::new("/")).to_owned();
    let bin_dir = bin_dir.clone().unwrap_or_else(|| here.clone());
    let share_dir = match share_dir {
        Some(d) => d.clone(),
        None => [here.join("../share/tessera"), PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")]
            .into_iter()
            .find(|d| d.join("manifests").is_dir() && d.join("assets").is_dir())
            .context("no manifests/ and assets/ found: give --share-dir")?,
    };
    let expires = match expires {
        Some(e) => e.clone(),
        None => broker::Timestamp::now().plus(Duration::from_secs(30 * 86_400)).to_rfc3339(),
    };
    if broker::Timestamp::parse(&expires).is_none() {
        bail!("--expires {expires:?}: expected an RFC 3339 UTC time like 2027-01-31T00:00:00Z");
    }
    let key = super::sign::read_key(key)?;
    let publish = update::release::Publish {
        contents: update::release::Contents {
            version: version.clone().unwrap_or_else(|| env!("CARGO_PKG_VERSION").to_owned()),
            bin_dir,
            share_dir,
            level: *level,
        },
        feed_dir: feed_dir.clone(),
        base_url: base_url.clone(),
        channel: channel.clone(),
        rollout_percent: *rollout,
        minimum_version: minimum_version.clone(),
        expires,
    };
    let feed = update::release::publish(&publish, &key, key_id)?;
    println!("{}", serde_json::to_string_pretty(&feed)?);
    Ok(())
}
