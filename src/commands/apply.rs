//! `fleet apply` and `fleet destroy`: plan (the definition's changes, or the
//! tear-down of everything fleet owns), show the plan, confirm, carry it out.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use super::ExitStatus;
use super::plan::{definition, plan_options, refuse_targeted_destroy};
use crate::cli::ApplyArgs;
use crate::deploy::{self, Applied};
use crate::interrupt::Interrupt;
use crate::lock;

/// `destroy`: `fleet destroy`, which plans the tear-down. A saved plan says
/// itself whether it is one.
pub(super) async fn run(args: &ApplyArgs, destroy: bool) -> anyhow::Result<ExitStatus> {
    let started = std::time::Instant::now();
    let interrupt = Interrupt::listen()?;
    let saved = match &args.plan_file {
        Some(path) => Some(deploy::read_saved_plan(path)?),
        None => None,
    };
    let saved_destroy = saved.as_ref().is_some_and(|plan| plan.destroy);
    if destroy && let Some(path) = args.plan_file.as_ref().filter(|_| !saved_destroy) {
        anyhow::bail!(
            "{} is not a destroy plan (made by `fleet plan --destroy --out`); nothing was changed. Apply it with `fleet apply {}`",
            path.display(),
            path.display()
        );
    }
    let destroy = destroy || saved_destroy;
    let verb = if destroy { "destroy" } else { "apply" };
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
        // What is left of --timeout, less a margin to say so before the
        // run's own deadline ends it.
        namespace_deadline: (!args.no_wait)
            .then(|| started + args.cluster.timeout.saturating_sub(Duration::from_secs(3))),
    };
    // A saved plan says where it goes, and was reviewed already: applying
    // it needs neither --env nor a confirmation (as `terraform apply PLAN`).
    let definition = match &args.plan_file {
        Some(path) => deploy::Definition {
            env: deploy::saved_plan_environment(path, args.cluster.definition.env.as_deref())?,
            file: args.cluster.definition.file.clone(),
            context: args.cluster.context.clone(),
        },
        None => definition(&args.cluster)?,
    };
    let approved = args.auto_approve || args.plan_file.is_some();
    let mut plan_options = deploy::PlanOptions {
        destroy,
        ..plan_options(&args.cluster)
    };
    // A saved plan carries its target too.
    if let (Some(saved), Some(path)) = (&saved, &args.plan_file) {
        let made_with = saved
            .targeting
            .as_ref()
            .map(|t| t.selection.clone())
            .unwrap_or_default();
        let given = &plan_options.selection;
        if !given.is_everything() && *given != made_with {
            anyhow::bail!(
                "{} was made {}, not with {}; nothing was changed. Apply it without targeting flags (a saved plan carries its target)",
                path.display(),
                if made_with.is_everything() {
                    "for the whole fleet".to_string()
                } else {
                    format!("with {}", made_with.flags())
                },
                given.flags()
            );
        }
        plan_options.selection = made_with;
    }
    refuse_targeted_destroy(&plan_options)?;
    let applied = deploy::apply(&definition, &plan_options, &options, |context| {
        // The prompt blocks: off the runtime's workers, which keep
        // renewing the lock and listening for signals meanwhile.
        Ok(approved || tokio::task::block_in_place(|| confirm(context, verb, &interrupt))?)
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
fn confirm(context: &str, verb: &str, interrupt: &Interrupt) -> anyhow::Result<bool> {
    if !std::io::stdin().is_terminal() {
        anyhow::bail!(
            "no terminal to confirm on: run `fleet {verb} --auto-approve` to {verb} without confirmation; nothing was changed"
        );
    }
    if verb == "destroy" {
        print!(
            "\nDo you really want to destroy everything fleet owns here, on kube context `{context}` and its NATS server?\n  There is no undo. Only 'yes' will be accepted to confirm.\n\n  Enter a value: "
        );
    } else {
        print!(
            "\nDo you want to perform these actions on kube context `{context}`?\n  Only 'yes' will be accepted to approve.\n\n  Enter a value: "
        );
    }
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
