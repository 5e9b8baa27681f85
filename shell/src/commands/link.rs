//! `tessera link nats-auth|nkey`: the NATS side of linked desks — the users and permissions
//! that hold each desk, on the server, to what the admin policy's link groups share, and a
//! desk's own NKey (its seed never leaves the desk's vault).

use std::io::Write as _;

use anyhow::{Context, Result, bail};

use crate::cli::LinkCommand;

pub(crate) fn run(cmd: &LinkCommand) -> Result<()> {
    match cmd {
        LinkCommand::NatsAuth { policy, desks } => nats_auth(policy.as_deref(), desks),
        LinkCommand::Nkey { args, id } => {
            let vault = super::vault::open(args)?;
            let (public, seed) = bridge::new_nkey().map_err(anyhow::Error::msg)?;
            vault.put("link", id, seed.as_bytes()).context("keeping the seed in the vault")?;
            writeln!(std::io::stdout().lock(), "{public}").context("writing to stdout")?;
            Ok(())
        }
    }
}

fn nats_auth(policy: Option<&std::path::Path>, desks: &[String]) -> Result<()> {
    let path = super::update::policy_path(policy).context("no admin policy (give --policy FILE or TESSERA_POLICY)")?;
    let admin = policy::load_file(&path, None).context("the admin policy")?;
    let rules = admin.link().with_context(|| format!("{} has no `link` section", path.display()))?;
    let desks = if desks.is_empty() {
        let mut named: Vec<String> =
            rules.groups.iter().flat_map(|g| g.desks.iter()).filter(|d| *d != "*").cloned().collect();
        named.sort();
        named.dedup();
        if named.is_empty() {
            bail!("the policy's groups name no desk (only `*`): name them with --desk");
        }
        named
    } else {
        for d in desks {
            if d.is_empty() || d.len() > 64 || !d.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
                bail!("--desk {d:?} is not a desk name (letters, digits, '-' and '_', at most 64)");
            }
        }
        desks.to_vec()
    };
    let block = bridge::permissions::authorization_block(&rules.groups, &desks);
    std::io::stdout().lock().write_all(block.as_bytes()).context("writing to stdout")?;
    Ok(())
}
