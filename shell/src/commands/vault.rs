//! `tessera vault put|get|list|delete|rotate|verify|import`: a profile's encrypted vault from
//! the command line. Secrets come in on stdin, never on the command line.

use std::io::{BufRead, Read, Write};

use anyhow::{Context, Result, bail};
use storage::{KeyringKind, Profile, Vault, key_source};

use crate::cli::{KeyringArg, VaultArgs, VaultCommand};

pub(crate) fn open(args: &VaultArgs) -> Result<Vault> {
    let dir = crate::profile::dir(&args.profile)?;
    let profile = Profile::open(&dir).with_context(|| format!("opening the profile in {}", dir.display()))?;
    open_in(&profile, args)
}

/// The vault of an already open profile, with the keys `args` names.
pub(crate) fn open_in(profile: &Profile, args: &VaultArgs) -> Result<Vault> {
    let kind = match args.keyring {
        KeyringArg::SecretService => KeyringKind::SecretService,
        KeyringArg::Keyutils => KeyringKind::Keyutils,
    };
    let keys = key_source(args.key_file.as_deref(), kind)?;
    Vault::open(profile, keys).context("opening the vault")
}

/// Runs one vault command; `Ok(false)` means "not found" (exit code 1).
#[expect(clippy::print_stdout, reason = "printing results is these commands' job")]
pub(crate) fn run(cmd: &VaultCommand) -> Result<bool> {
    match cmd {
        VaultCommand::Put { args, purpose, id } => {
            let mut secret = Vec::new();
            std::io::stdin().read_to_end(&mut secret).context("reading the secret from stdin")?;
            open(args)?.put(purpose, id, &secret)?;
            Ok(true)
        }
        VaultCommand::Get { args, purpose, id } => match open(args)?.get(purpose, id)? {
            Some(secret) => {
                std::io::stdout().write_all(&secret)?;
                Ok(true)
            }
            None => {
                eprintln!("tessera: no secret {purpose}/{id}");
                Ok(false)
            }
        },
        VaultCommand::List { args, purpose } => {
            for id in open(args)?.ids(purpose)? {
                println!("{id}");
            }
            Ok(true)
        }
        VaultCommand::Delete { args, purpose, id } => Ok(open(args)?.delete(purpose, id)?),
        VaultCommand::Rotate { args } => {
            let r = open(args)?.rotate()?;
            println!("rotated from key version {} to {}: {} secrets re-encrypted", r.from, r.to, r.reencrypted);
            Ok(true)
        }
        VaultCommand::Verify { args } => {
            let vault = open(args)?;
            let n = vault.verify()?;
            println!("{n} secrets decrypt and authenticate under key version {}", vault.key_version());
            Ok(true)
        }
        VaultCommand::Import { args, purpose } => {
            let vault = open(args)?;
            let mut n = 0u64;
            for (i, line) in std::io::stdin().lock().lines().enumerate() {
                let line = line.context("reading stdin")?;
                if line.is_empty() {
                    continue;
                }
                let Some((id, secret)) = line.split_once('\t') else {
                    bail!("stdin line {}: expected ID<TAB>SECRET", i + 1);
                };
                vault.put(purpose, id, secret.as_bytes())?;
                n += 1;
            }
            println!("{n} secrets imported");
            Ok(true)
        }
    }
}
