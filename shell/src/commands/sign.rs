//! `tessera sign keygen|records|manifest|credential`: IT's side of signed App Directories and
//! manifests, and the credentials of native apps started outside the shell.

use std::io::{Read, Write};
use std::path::Path;

use anyhow::{Context, Result, bail};
use ed25519_dalek::SigningKey;
use policy::signing;
use serde_json::Value;

use crate::cli::SignCommand;

pub(crate) fn read_key(path: &Path) -> Result<SigningKey> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading the key {}", path.display()))?;
    let text = text.trim();
    if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("{} does not hold a secret key (64 hex digits)", path.display());
    }
    let mut seed = [0u8; 32];
    for (i, b) in seed.iter_mut().enumerate() {
        *b = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).context("hex")?;
    }
    Ok(SigningKey::from_bytes(&seed))
}

fn check_expiry(expires: &str) -> Result<()> {
    if broker::Timestamp::parse(expires).is_none() || expires.parse::<u64>().is_ok() {
        bail!("--expires {expires:?}: expected an RFC 3339 UTC time like 2027-01-31T00:00:00Z");
    }
    Ok(())
}

/// Makes a signing key and writes its secret (64 hex digits) to `out`, which must not exist
/// yet, readable by its owner alone.
fn new_key(out: &Path) -> Result<SigningKey> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).context("no randomness for the key")?;
    let key = SigningKey::from_bytes(&seed);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .with_context(|| format!("creating {} (it must not exist yet)", out.display()))?;
    let hex: String = seed.iter().map(|b| format!("{b:02x}")).collect();
    writeln!(file, "{hex}").and_then(|()| file.sync_all()).with_context(|| format!("writing {}", out.display()))?;
    Ok(key)
}

/// Runs one `sign` command.
#[expect(clippy::print_stdout, reason = "printing the public key and the signed records is these commands' job")]
pub(crate) fn run(cmd: &SignCommand) -> Result<()> {
    match cmd {
        SignCommand::Keygen { out } => {
            let key = new_key(out)?;
            println!("{}", signing::public_hex(&key));
        }
        SignCommand::Credential { app, key, key_id, expires, app_key_out } => {
            check_expiry(expires)?;
            let it = read_key(key)?;
            let app_key = new_key(app_key_out)?;
            let credential = signing::sign_credential(app, &app_key.verifying_key(), &it, key_id, expires)?;
            println!("{}", serde_json::to_string_pretty(&credential)?);
        }
        SignCommand::Records { key, key_id, expires } => {
            check_expiry(expires)?;
            let key = read_key(key)?;
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text).context("reading the records from stdin")?;
            let mut doc = signing::parse_strict(&text).context("the records")?;
            let list = match &mut doc {
                Value::Array(list) => list,
                Value::Object(o) => match o.get_mut("applications") {
                    Some(Value::Array(list)) => list,
                    _ => bail!("expected a list of records or {{\"applications\": [...]}}"),
                },
                _ => bail!("expected a list of records or {{\"applications\": [...]}}"),
            };
            for record in list.iter_mut() {
                *record = signing::sign_record(record, &key, key_id, expires)?;
            }
            println!("{}", serde_json::to_string_pretty(&doc)?);
        }
        SignCommand::File { file, key, key_id, expires } => {
            check_expiry(expires)?;
            let key = read_key(key)?;
            let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
            signing::parse_strict(std::str::from_utf8(&bytes).context("the manifest is not UTF-8")?)
                .with_context(|| format!("{}", file.display()))?;
            let sig = signing::sign_file(&bytes, &key, key_id, expires);
            let out = format!("{}.sig", file.display());
            std::fs::write(&out, format!("{sig}\n")).with_context(|| format!("writing {out}"))?;
            println!("{out}");
        }
    }
    Ok(())
}
