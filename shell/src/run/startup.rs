//! Start-up: the desk a run opens. The admin policy file (and the keys it must be signed with)
//! first, since its signing rules decide which manifests and App Directory records are
//! acceptable; then the manifest, and the audit log as the policy in force says (a manifest
//! refused for its signature is recorded before the shell stops); then the App Directories
//! (given on the command line, or fetched with the last good copy kept).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};

use shell::manifest::{self, Manifest};
use storage::Profile;
use storage::audit::AuditEntry;

use super::{APPD_TIMEOUT, permissions};
use crate::cli::RunArgs;

/// The manifest to open: `--manifest`, else the demo desk.
pub(super) fn manifest_path(args: &RunArgs) -> Result<PathBuf> {
    match &args.manifest {
        Some(p) => Ok(p.clone()),
        None => demo_manifest(),
    }
}

/// Finds the demo desk's manifest: beside an installed binary, or in the source tree.
fn demo_manifest() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the tessera binary")?;
    let dir = exe.parent().unwrap_or(Path::new("/"));
    let candidates = [
        dir.join("manifests/demo.json"),
        dir.join("../share/tessera/manifests/demo.json"),
        dir.join("../../manifests/demo.json"),
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../manifests/demo.json"),
    ];
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .with_context(|| format!("the demo manifest is not installed (looked for {})", candidates[0].display()))
}

/// What start-up loaded.
pub(super) struct Desk {
    pub(super) manifest: Manifest,
    pub(super) manifest_path: PathBuf,
    /// IT's policy, and the file to watch for changes (none when it came from a URL).
    pub(super) policy_from_file: Option<(policy::AdminPolicy, Option<PathBuf>)>,
    /// Where the manifest and the policy came from, and their versions.
    pub(super) sources: super::config::Sources,
    pub(super) policy_trust: Option<policy::signing::Checker>,
    pub(super) audit: Audit,
    pub(super) appd_cache: PathBuf,
}

/// Loads the policy file, opens the audit log and loads the manifest with its App
/// Directories; refusals for a signature are audited.
pub(super) fn load_desk(args: &RunArgs, profile: &Profile, profile_path: &Path) -> Result<Desk> {
    let manifest_arg = manifest_path(args)?;
    // The policy file comes first: its signing rules decide whether the manifest and the App
    // Directories' records are acceptable.
    let policy_trust = policy_trust(args)?;
    let policy_from_file = match policy_file(args, policy_trust.as_ref(), profile_path) {
        Ok(p) => p,
        Err(e) => {
            if format!("{e:#}").contains("signature: ") {
                // Recorded where IT will look, even though the shell stops here.
                if let Some(log) = audit_log(args, profile, policy::AuditRules::default()).log {
                    let _ = log.append(&AuditEntry::now("shell", "policy.reject", &format!("{e:#}"), "refused"));
                }
            }
            return Err(e);
        }
    };
    let (policy_from_file, policy_source) = match policy_from_file {
        Some((policy, watch, source)) => (Some((policy, watch)), Some(source)),
        None => (None, None),
    };
    let trust = manifest::Trust {
        checker: policy_from_file.as_ref().and_then(|(p, _)| p.signing().cloned()),
        seen_versions: profile.setting(SEEN_VERSIONS).ok().flatten().unwrap_or_default(),
        more_directories: !args.app_directories.is_empty(),
    };
    let record = |audit: &Audit, app: Option<&str>, action: &str, object: &str| {
        if let Some(log) = &audit.log {
            let entry = AuditEntry::now("shell", action, object, "refused").app(app);
            if let Err(e) = log.append(&entry) {
                tracing::error!("could not write the audit log: {e}");
            }
        }
    };
    let file_rules = policy_from_file.as_ref().map(|(p, _)| p.audit());
    let manifest_text = manifest_arg.to_string_lossy().into_owned();
    let (manifest_path, manifest_source) = if shell::remote::is_url(&manifest_text) {
        super::config::manifest_at(&manifest_text, profile_path, &trust)?
    } else {
        (manifest_arg.clone(), super::config::file_source(&manifest_arg))
    };
    let mut manifest = match manifest::load_with(&manifest_path, trust) {
        Ok(m) => m,
        Err(e) => {
            if e.to_string().contains("signature: ") {
                let audit = audit_log(args, profile, file_rules.unwrap_or_default());
                record(&audit, None, "signature.refused", &e.to_string());
            }
            return Err(e.into());
        }
    };
    // The audit rules of the policy in force: IT's file, else the manifest's.
    let rules = file_rules.or_else(|| manifest.policy.as_ref().map(policy::AdminPolicy::audit)).unwrap_or_default();
    let audit = audit_log(args, profile, rules);
    if rules.required && audit.log.is_none() {
        bail!(
            "the admin policy requires the audit log (audit.required) and it cannot be opened: {}",
            audit.status.detail
        );
    }
    for source in &args.app_directories {
        if source.starts_with("http://") || source.starts_with("https://") {
            manifest.directory_urls.push(source.clone());
        } else {
            let text =
                std::fs::read_to_string(source).with_context(|| format!("reading the App Directory {source}"))?;
            manifest.load_directory(source, &text).with_context(|| format!("the App Directory {source}"))?;
        }
    }
    let appd_cache = profile_path.join("appd");
    for url in manifest.directory_urls.clone() {
        let usable = |text: &str| manifest.clone().load_directory(&url, text).map_err(|e| e.to_string());
        match shell::appd::fetch(&url, &appd_cache, APPD_TIMEOUT, usable) {
            Ok(fetched) => {
                if let Some(why) = &fetched.stale {
                    tracing::warn!(%url, "the App Directory cannot be reached ({why}); using the copy kept from before");
                }
                if let Err(e) = manifest.load_directory(&url, &fetched.text) {
                    tracing::error!(%url, "the App Directory is unusable: {e}");
                }
            }
            Err(e) => tracing::error!("the App Directory is not loaded: {e}"),
        }
    }
    for p in &manifest.directory_problems {
        tracing::warn!("App Directory record skipped: {p}");
        if p.contains("signature: ") {
            let app = p.split("app \"").nth(1).and_then(|rest| rest.split('"').next());
            record(&audit, app, "signature.refused", p);
        }
    }
    // Start-up apps from App Directories given on the command line or by URL are known only now.
    let missing: Vec<String> = manifest.startup.iter().filter(|s| manifest.app(s).is_none()).cloned().collect();
    if !missing.is_empty() {
        if args.app_directories.is_empty() && manifest.directory_urls.is_empty() {
            bail!("startup: {missing:?} are not apps of this manifest or its App Directories");
        }
        tracing::error!(
            ?missing,
            "start-up apps not found in the manifest or its App Directories; they are not started"
        );
        manifest.startup.retain(|s| !missing.contains(s));
    }
    if let Err(e) = profile.set_setting(SEEN_VERSIONS, &manifest.trust.seen_versions) {
        tracing::warn!("could not keep the App Directory versions seen: {e}");
    }
    let sources = super::config::Sources { manifest: manifest_source, policy: policy_source };
    Ok(Desk { manifest, manifest_path, policy_from_file, sources, policy_trust, audit, appd_cache })
}

/// Where IT puts the admin policy on a desk.
pub(super) const SYSTEM_POLICY: &str = "/etc/tessera/policy.json";

/// The admin policy in force, and the file to watch for changes: `--policy`, else the system
/// file, else the manifest's `policy`, else an empty policy (the user and the manifests decide).
pub(super) fn admin_policy(
    file: Option<(policy::AdminPolicy, Option<PathBuf>)>,
    manifest: &Manifest,
) -> (policy::AdminPolicy, Option<PathBuf>) {
    match file {
        Some((policy, path)) => (policy, path),
        None => (manifest.policy.clone().unwrap_or_default(), None),
    }
}

/// Where IT says which keys must sign the policy file.
pub(crate) const SYSTEM_POLICY_TRUST: &str = "/etc/tessera/policy-trust.json";

/// The keys the policy file must be signed with (`--policy-trust`, else the system file), if any.
pub(super) fn policy_trust(args: &RunArgs) -> Result<Option<policy::signing::Checker>> {
    let Some(path) =
        args.policy_trust.clone().or_else(|| Some(PathBuf::from(SYSTEM_POLICY_TRUST)).filter(|p| p.is_file()))
    else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let rules: policy::signing::SigningRules =
        serde_json::from_str(&text).with_context(|| format!("{}: not signing rules", path.display()))?;
    Ok(Some(policy::signing::Checker::new(&rules).with_context(|| format!("in {}", path.display()))?))
}

/// The policy IT gave (`--policy`, a file or a URL, else the system file), read and checked
/// (its signature first, if IT requires one); with the file to watch for changes (none for a
/// URL: `config::refresh` fetches it again) and where it came from.
pub(super) fn policy_file(
    args: &RunArgs,
    trust: Option<&policy::signing::Checker>,
    profile: &Path,
) -> Result<Option<(policy::AdminPolicy, Option<PathBuf>, super::config::Source)>> {
    let Some(path) = args.policy.clone().or_else(|| Some(PathBuf::from(SYSTEM_POLICY)).filter(|p| p.is_file())) else {
        return Ok(None);
    };
    let text = path.to_string_lossy().into_owned();
    if shell::remote::is_url(&text) {
        let (policy, source) = super::config::policy_at(&text, profile, trust)?;
        return Ok(Some((policy, None, source)));
    }
    let policy = policy::load_file(&path, trust)?;
    tracing::info!(path = %path.display(), "admin policy loaded");
    let source = super::config::file_source(&path);
    Ok(Some((policy, Some(path), source)))
}

/// Where the highest version seen of each signed app is kept, against downgrades.
pub(super) const SEEN_VERSIONS: &str = "appd.seen_versions";

/// The audit log as start-up opened it, and what to tell the user and IT about it.
pub(super) struct Audit {
    /// The log, when it could be opened.
    pub(super) log: Option<Arc<storage::audit::AuditLog>>,
    /// Whether it records, and where its key is or why it is off.
    pub(super) status: AuditStatus,
    /// The vault it was opened with (the desk link's token is kept there).
    pub(super) vault: Option<Arc<storage::Vault>>,
}

/// What the health view, the red bar and `ctl health` say about the audit log.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct AuditStatus {
    /// Decisions are being recorded.
    pub(crate) recording: bool,
    /// Where its key is kept, or why it is off.
    pub(crate) detail: String,
}

/// The profile's audit log, whose signing key is in the vault: in the chosen keyring, else
/// (where the policy allows it) in the kernel's keyutils keyring; the first where the vault
/// opens with its key (or, new, can keep one) wins. Without any the shell still runs (unless
/// the policy requires the log) and says loudly that nothing is being recorded.
pub(super) fn audit_log(args: &RunArgs, profile: &Profile, rules: policy::AuditRules) -> Audit {
    let chosen = match args.keyring {
        crate::cli::KeyringArg::SecretService => storage::KeyringKind::SecretService,
        crate::cli::KeyringArg::Keyutils => storage::KeyringKind::Keyutils,
    };
    let mut kinds = vec![chosen];
    if rules.keyutils_fallback && args.key_file.is_none() && chosen != storage::KeyringKind::Keyutils {
        kinds.push(storage::KeyringKind::Keyutils);
    }
    let mut failures = Vec::new();
    for kind in kinds {
        let mut held_by = String::new();
        let opened = storage::key_source(args.key_file.as_deref(), kind)
            .and_then(|keys| {
                held_by = keys.describe();
                storage::Vault::open(profile, keys)
            })
            .and_then(|vault| {
                storage::audit::AuditLog::open(profile, &vault, storage::audit::AuditConfig::default())
                    .map(|log| (log, vault))
            });
        match opened {
            Ok((log, vault)) => {
                if !failures.is_empty() {
                    held_by = format!("{held_by} (passed over: {})", failures.join("; "));
                }
                tracing::info!("the audit log is recording; its key is kept in {held_by}");
                if kind == storage::KeyringKind::Keyutils && args.key_file.is_none() {
                    tracing::warn!(
                        "the audit log's key is in the keyutils session keyring, which does not survive a reboot: \
                         after one, this profile's audit log and vault cannot be opened"
                    );
                }
                let status = AuditStatus { recording: true, detail: format!("key kept in {held_by}") };
                return Audit { log: Some(Arc::new(log)), status, vault: Some(Arc::new(vault)) };
            }
            Err(e) => failures.push(e.to_string()),
        }
    }
    let detail = failures.join("; then ");
    tracing::error!("the audit log cannot be opened; permission decisions are NOT being recorded: {detail}");
    Audit { log: None, status: AuditStatus { recording: false, detail }, vault: None }
}

/// What the permission service needs to know of each app.
pub(super) fn app_facts(manifest: &Manifest) -> HashMap<String, permissions::AppFacts> {
    manifest
        .apps
        .iter()
        .map(|a| {
            let origin = match &a.native {
                // What the consent dialog shows for a native app: the program it runs.
                Some(n) => Ok(n.program.as_ref().map_or_else(
                    || "native app started outside the shell (IT-signed credential)".to_owned(),
                    |p| format!("native app {}", p.display()),
                )),
                None => url::Url::parse(&a.url).map(|u| match u.scheme() {
                    "tessera" => format!("tessera://{}", u.host_str().unwrap_or_default()),
                    _ => u.origin().ascii_serialization(),
                }),
            };
            (
                a.app_id.clone(),
                permissions::AppFacts {
                    title: a.title.clone(),
                    origin: origin.unwrap_or_default(),
                    declared: a.permissions.clone(),
                },
            )
        })
        .collect()
}
