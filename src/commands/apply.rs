//! `fleet apply`: plan, show the plan, confirm, carry it out.

use std::io::{IsTerminal, Write};

use anyhow::Context as _;
use std::time::Duration;

use super::ExitStatus;
use super::plan::{Planned, make_plan};
use crate::apply::{self, Event, Stopped};
use crate::cli::ApplyArgs;
use crate::lock::{self, DeployLock};
use crate::plan::{FORMAT_VERSION, Plan};
use crate::report;

pub async fn run(args: &ApplyArgs) -> anyhow::Result<ExitStatus> {
    let options = lock::Options {
        ttl: args.lock_ttl,
        wait: args.lock_timeout,
    };
    let Some(mut planned) = make_plan(&args.cluster, Some(options)).await? else {
        return Ok(ExitStatus::Failure);
    };
    let mut lock = planned
        .lock
        .take()
        .expect("apply plans with the deploy lock");
    let result = carry_out(args, &planned, &mut lock).await;
    if let Err(err) = lock.release().await {
        anstream::eprintln!(
            "warning: {err:#}\n  The deploy lock expires by itself {}s after its last renewal.",
            args.lock_ttl.as_secs()
        );
    }
    result
}

/// Everything after planning, with the deploy lock held (or, on a first
/// apply, taken before the first write).
async fn carry_out(
    args: &ApplyArgs,
    planned: &Planned,
    lock: &mut DeployLock,
) -> anyhow::Result<ExitStatus> {
    let plan = &planned.plan;
    if let Some(path) = &args.plan_file {
        check_saved_plan(path, plan)?;
    }
    let mut stdout = anstream::stdout();
    report::plan_text(plan, &mut stdout)?;
    if !plan.has_changes() {
        return Ok(ExitStatus::Success);
    }
    let options = apply::Options {
        concurrency: usize::from(args.cluster.concurrency),
        force_conflicts: args.cluster.force_conflicts,
        adopt: args.cluster.adopt,
        allow_destroy: args.allow_destroy,
        rollout_timeout: if args.no_wait {
            Duration::ZERO
        } else {
            args.cluster.timeout
        },
    };
    // Refuse what needs a flag before asking anyone to confirm it.
    apply::check_allowed(plan, &options)?;
    if !args.auto_approve && !confirm(&planned.cluster.context)? {
        writeln!(stdout, "Apply cancelled; nothing was changed.")?;
        return Ok(ExitStatus::Failure);
    }

    writeln!(stdout)?;
    let mut done = 0usize;
    let mut print = |event: apply::Event<'_>| {
        let line = match event {
            Event::Done(outcome) => {
                done += 1;
                format!("{}: {}", outcome.target, outcome.done)
            }
            Event::Rollout(progress) => format!("{}: {progress}", progress.deployment),
        };
        let _ = writeln!(anstream::stdout(), "{line}");
    };
    let systems = apply::Systems {
        cluster: &planned.cluster,
        live: &planned.live,
        jetstream: planned.jetstream.as_ref(),
    };
    lock.before_first_write().await?;
    let result = lock
        .guard(apply::apply(&systems, plan, &options, &mut print))
        .await;
    match result {
        Ok(()) => {
            let summary = plan.summary();
            writeln!(
                stdout,
                "\nApply complete! Resources: {} added, {} changed, {} destroyed.",
                summary.add, summary.change, summary.destroy
            )?;
            Ok(ExitStatus::Success)
        }
        Err(err) => {
            if let Some(stopped) = err.downcast_ref::<Stopped>() {
                stopped_summary(stopped, done, &mut stdout)?;
            }
            Err(err)
        }
    }
}

/// What was done and what was not, when apply stopped; the errors
/// themselves follow on stderr.
fn stopped_summary(stopped: &Stopped, done: usize, out: &mut impl Write) -> std::io::Result<()> {
    let failed = stopped.errors.len();
    if stopped.in_rollout {
        writeln!(
            out,
            "\nApply stopped: every change was made, but {failed} Deployment{} did not roll out (see below).",
            if failed == 1 { "" } else { "s" }
        )?;
    } else {
        writeln!(
            out,
            "\nApply stopped: {done} change{} made, {failed} failed (see below), {} not started.",
            if done == 1 { "" } else { "s" },
            stopped.not_started.len()
        )?;
        if !stopped.not_started.is_empty() {
            writeln!(out, "Not started:")?;
            for target in &stopped.not_started {
                writeln!(out, "  {target}")?;
            }
        }
        writeln!(out, "Rollouts were not waited for.")?;
    }
    writeln!(
        out,
        "Run apply again once fixed: it picks up where this left off."
    )
}

/// A saved plan is applied only while it is still the plan: anything that
/// changed since (the definition, the cluster, JetStream) makes it stale.
fn check_saved_plan(path: &std::path::Path, fresh: &Plan) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the plan {}", path.display()))?;
    let saved: Plan = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a plan written by `fleet plan --out`",
            path.display()
        )
    })?;
    if saved.format_version != FORMAT_VERSION {
        anyhow::bail!(
            "{} has plan format {}, this fleet reads {FORMAT_VERSION}; make the plan again",
            path.display(),
            saved.format_version
        );
    }
    let same_place = (
        &saved.fleet,
        &saved.environment,
        &saved.namespace,
        &saved.kube_context,
    ) == (
        &fresh.fleet,
        &fresh.environment,
        &fresh.namespace,
        &fresh.kube_context,
    );
    if !same_place {
        anyhow::bail!(
            "{} was made for fleet {} (environment {}, namespace {}, kube context `{}`), not for this one; nothing was changed",
            path.display(),
            saved.fleet,
            saved.environment.as_deref().unwrap_or("none"),
            saved.namespace,
            saved.kube_context
        );
    }
    if serde_json::to_value(&saved.changes)? != serde_json::to_value(&fresh.changes)? {
        anyhow::bail!(
            "the plan in {} is stale: the definition, the cluster or JetStream changed since it was made. Nothing was changed; run `fleet plan --out` again",
            path.display()
        );
    }
    Ok(())
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
