//! `fleet apply`: plan, show the plan, confirm, carry it out.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use super::{ExitStatus, plan::plan_options, plan::target};
use crate::cli::ApplyArgs;
use crate::deploy::{self, Applied};
use crate::interrupt::Interrupt;
use crate::lock;

pub async fn run(args: &ApplyArgs) -> anyhow::Result<ExitStatus> {
    let interrupt = Interrupt::listen()?;
    let options = deploy::ApplyOptions {
        plan_file: args.plan_file.clone(),
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
        interrupt: interrupt.clone(),
    };
    // A saved plan says where it goes, and was reviewed already: applying
    // it needs neither --env nor a confirmation (as `terraform apply PLAN`).
    let target = match &args.plan_file {
        Some(path) => deploy::Target {
            env: deploy::saved_plan_environment(path, args.cluster.definition.env.as_deref())?,
            file: args.cluster.definition.file.clone(),
            context: args.cluster.context.clone(),
        },
        None => target(&args.cluster)?,
    };
    let approved = args.auto_approve || args.plan_file.is_some();
    let applied = deploy::apply(&target, &plan_options(&args.cluster), &options, |context| {
        // The prompt blocks: off the runtime's workers, which keep
        // renewing the lock and listening for signals meanwhile.
        Ok(approved || tokio::task::block_in_place(|| confirm(context, &interrupt))?)
    })
    .await?;
    Ok(match applied {
        Applied::Done => ExitStatus::Success,
        Applied::Cancelled => ExitStatus::Failure,
        Applied::Invalid => {
            anstream::eprintln!("Nothing was changed.");
            ExitStatus::Failure
        }
    })
}

/// Asks on the terminal; without one, refuses (CI must say --auto-approve).
/// Ctrl-C while asking is a no.
fn confirm(context: &str, interrupt: &Interrupt) -> anyhow::Result<bool> {
    if !std::io::stdin().is_terminal() {
        anyhow::bail!(
            "no terminal to confirm on: run `fleet apply --auto-approve` to apply without confirmation; nothing was changed"
        );
    }
    print!(
        "\nDo you want to perform these actions on kube context `{context}`?\n  Only 'yes' will be accepted to approve.\n\n  Enter a value: "
    );
    std::io::stdout().flush()?;
    // The signal is caught, so it no longer ends a blocked read: read on a
    // thread of its own and give up on it when one comes.
    let (send, answer) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let read = std::io::stdin().read_line(&mut line).map(|_| line);
        let _ = send.send(read);
    });
    loop {
        if interrupt.received().is_some() {
            println!();
            return Ok(false);
        }
        match answer.recv_timeout(Duration::from_millis(100)) {
            Ok(line) => return Ok(line?.trim() == "yes"),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return Ok(false),
        }
    }
}
