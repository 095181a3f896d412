//! `fleet apply`: plan, show the plan, confirm, carry it out.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use super::{ExitStatus, plan::plan_options, plan::target};
use crate::cli::ApplyArgs;
use crate::deploy::{self, Applied};
use crate::lock;

pub async fn run(args: &ApplyArgs) -> anyhow::Result<ExitStatus> {
    let options = deploy::ApplyOptions {
        plan_file: args.plan_file.clone(),
        allow_destroy: args.allow_destroy,
        allow_dirty: args.allow_dirty,
        rollout_timeout: if args.no_wait {
            Duration::ZERO
        } else {
            args.cluster.timeout
        },
        lock: lock::Options {
            ttl: args.lock_ttl,
            wait: args.lock_timeout,
        },
    };
    let applied = deploy::apply(
        &target(&args.cluster),
        &plan_options(&args.cluster),
        &options,
        |context| Ok(args.auto_approve || confirm(context)?),
    )
    .await?;
    Ok(match applied {
        Applied::Done => ExitStatus::Success,
        Applied::Cancelled | Applied::Invalid => ExitStatus::Failure,
    })
}

/// Asks on the terminal; without one, refuses (CI must say --auto-approve).
fn confirm(context: &str) -> anyhow::Result<bool> {
    if !std::io::stdin().is_terminal() {
        anyhow::bail!(
            "no terminal to confirm on: run `fleet apply --auto-approve` to apply without confirmation; nothing was changed"
        );
    }
    print!(
        "\nDo you want to perform these actions on kube context `{context}`?\n  Only 'yes' will be accepted to approve.\n\n  Enter a value: "
    );
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(answer.trim() == "yes")
}
