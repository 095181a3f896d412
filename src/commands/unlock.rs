//! `fleet unlock`: removes the deploy lock by hand, when the apply holding
//! it is gone and waiting for the lock to expire is not wanted. Shows who
//! holds it and asks first; without a terminal only `--yes` removes it.

use std::io::{IsTerminal, Write};

use super::{ExitStatus, load_definition};
use crate::cli::UnlockArgs;
use crate::client::kube::Cluster;
use crate::lock;

pub(super) async fn run(args: &UnlockArgs) -> anyhow::Result<ExitStatus> {
    // Like plan and apply: the lock of which environment, said explicitly.
    crate::load::cluster_environment(&args.definition.file, args.definition.env.as_deref())?;
    let Some(mut fleet) = load_definition(&args.definition)? else {
        return Ok(ExitStatus::Failure);
    };
    if let Some(context) = &args.context {
        fleet.endpoints.kube_context = Some(context.clone());
    }
    let cluster = Cluster::connect(&fleet.endpoints).await?;
    let standing = lock::standing(&cluster, &fleet.name, &fleet.namespace).await?;
    let mut stdout = anstream::stdout();
    let Some(holder) = standing.holder.clone() else {
        writeln!(
            stdout,
            "No deploy lock is held for fleet {} in namespace {} (kube context `{}`); nothing to do.",
            fleet.name, fleet.namespace, cluster.context
        )?;
        return Ok(ExitStatus::Success);
    };
    writeln!(
        stdout,
        "The deploy lock of fleet {} (Lease {}, kube context `{}`) is held by {holder}.",
        fleet.name, standing.lease, cluster.context
    )?;
    if !args.yes && !confirm()? {
        writeln!(stdout, "Unlock cancelled; the lock is still held.")?;
        return Ok(ExitStatus::Failure);
    }
    lock::remove(standing).await?;
    writeln!(
        stdout,
        "Deploy lock removed. If that apply is still running, it stops at its next renewal."
    )?;
    Ok(ExitStatus::Success)
}

/// Asks on the terminal; without one, refuses (a script must say --yes).
fn confirm() -> anyhow::Result<bool> {
    if !std::io::stdin().is_terminal() {
        anyhow::bail!(
            "no terminal to confirm on: run `fleet unlock --yes` to remove the deploy lock without confirmation; nothing was changed"
        );
    }
    print!(
        "\nRemove it? Only do so if that apply is no longer running.\n  Only 'yes' will be accepted to approve.\n\n  Enter a value: "
    );
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(answer.trim() == "yes")
}
