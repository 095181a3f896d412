//! The apply half of the sequence: plan with the deploy lock, check the
//! saved plan and the commit, confirm, apply with events, report.

use std::io::Write;

use anyhow::Context as _;

use super::plan::{Planned, make_plan};
use super::{ApplyOptions, Definition, PlanOptions, workflow};
use crate::apply::{self, Event, Stopped};
use crate::interrupt::Interrupted;
use crate::lock::DeployLock;
use crate::plan::{FORMAT_VERSION, Plan};
use crate::{provenance, report};

/// How an apply ended, when it did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Applied {
    /// The plan was carried out, or there was nothing to do.
    Done,
    /// The confirmation was refused; nothing was changed.
    Cancelled,
    /// The definition has errors (they are printed); nothing was changed.
    Invalid,
}

/// Plans with the deploy lock held and carries the plan out. `confirm` is
/// asked, with the kube context, before the first write; it answers whether
/// to go on.
pub(crate) async fn apply(
    definition: &Definition,
    plan_options: &PlanOptions,
    options: &ApplyOptions,
    confirm: impl FnOnce(&str) -> anyhow::Result<bool>,
) -> anyhow::Result<Applied> {
    let planned = tokio::select! {
        // Planning writes nothing but the deploy lock, which is released
        // when the dropped plan drops it.
        signal = options.interrupt.wait() => return Err(Interrupted(signal).into()),
        planned = make_plan(definition, plan_options, Some(options.lock)) => planned?,
    };
    let Some(mut planned) = planned else {
        return Ok(Applied::Invalid);
    };
    if let Some(path) = &options.plan_file {
        // The saved plan is not part of the definition.
        planned.plan.provenance.leave_out(path);
    }
    let mut lock = planned
        .lock
        .take()
        .expect("apply plans with the deploy lock");
    let result = carry_out(
        definition,
        plan_options,
        options,
        &planned,
        &mut lock,
        confirm,
    )
    .await;
    // A destroy that made the Lease only to hold the lock takes it away
    // again, whatever else it did (when it destroyed, the Lease went already).
    let released = if planned.plan.destroy && !lock.lease_existed() {
        lock.release_by_deleting().await.map(drop)
    } else {
        lock.release().await
    };
    if let Err(err) = released {
        anstream::eprintln!(
            "warning: {err:#}\n  The deploy lock expires by itself {}s after its last renewal.",
            options.lock.ttl.as_secs()
        );
    }
    result
}

/// Everything after planning, with the deploy lock held (or, on a first
/// apply, taken before the first write).
async fn carry_out(
    definition: &Definition,
    plan_options: &PlanOptions,
    apply_options: &ApplyOptions,
    planned: &Planned,
    lock: &mut DeployLock,
    confirm: impl FnOnce(&str) -> anyhow::Result<bool>,
) -> anyhow::Result<Applied> {
    provenance::check_committed(
        &planned.plan.provenance,
        apply_options.allow_dirty,
        &mut anstream::stderr(),
    )?;
    let plan = &planned.plan;
    if let Some(path) = &apply_options.plan_file {
        check_saved_plan(path, plan)?;
    }
    let mut text = Vec::new();
    report::plan_text(plan, &mut text)?;
    report::to_stdout(&text)?;
    let mut stdout = anstream::stdout();
    let file = &definition.file;
    let verb = if plan.destroy { "destroy" } else { "apply" };
    if !plan.has_changes() {
        let heading = if plan.destroy {
            "### fleet destroy: nothing to destroy\n\n"
        } else {
            "### fleet apply: nothing to do\n\n"
        };
        workflow::report(plan, file, None, heading, "applied=0\n")?;
        return Ok(Applied::Done);
    }
    let options = apply::Options {
        concurrency: plan_options.concurrency,
        force_conflicts: plan_options.force_conflicts,
        adopt: plan_options.adopt,
        allow_destroy: plan_options.allow_destroy,
        rollout_timeout: apply_options.rollout_timeout,
        // This apply's record: the plan's definition and targeting.
        record: Some(provenance::Record {
            definition: plan.provenance.definition.clone(),
            applied_by: provenance::applier(),
            targeted: plan.targeting.as_ref().map(|t| t.selection.flags()),
        }),
        interrupt: apply_options.interrupt.clone(),
        minting: match (
            &planned.nats_credentials,
            &plan_options.nats.account_signing_key,
        ) {
            (Some(settings), Some(key)) => Some(apply::Minting {
                signing_key: key.clone(),
                account: settings.account.clone(),
                validity: settings.validity,
            }),
            _ => None,
        },
        revoking: match (
            &planned.nats_credentials,
            &plan_options.nats.operator_signing_key,
            &plan_options.nats.system_creds,
            &planned.jetstream,
        ) {
            (Some(settings), Some(key), Some(creds), Some(js)) if settings.revoke => {
                Some(apply::revocation::Revoking {
                    operator_key: key.clone(),
                    system_creds: creds.clone(),
                    url: js.url.clone(),
                    account: settings.account.clone(),
                })
            }
            _ => None,
        },
    };
    // Refuse what needs a flag before asking anyone to confirm it.
    if let Err(err) = apply::check_allowed(plan, &options) {
        workflow::report(
            plan,
            file,
            None,
            &format!("### fleet {verb} refused: nothing was changed\n\n"),
            "applied=0\nfailed=0\n",
        )?;
        return Err(err);
    }
    // A dry run is authorised as the write itself: what this identity may
    // not dry-run, it may not apply. Refuse before the first write.
    if let Some((id, reason)) = planned.refused.first() {
        anyhow::bail!(
            "this identity may not make the planned changes: the API server refused to dry-run {} objects, e.g. {id}: {reason}\n  Nothing was changed. Grant the rights `fleet rbac --for apply` prints, or apply with an identity that has them.",
            planned.refused.len()
        );
    }
    if !confirm(&planned.cluster.context)? {
        let cancelled = if plan.destroy { "Destroy" } else { "Apply" };
        writeln!(stdout, "{cancelled} cancelled; nothing was changed.")?;
        return Ok(Applied::Cancelled);
    }
    if let Some(signal) = apply_options.interrupt.received() {
        return Err(Interrupted(signal).into());
    }

    writeln!(stdout)?;
    let mut done = 0usize;
    let mut in_group = false;
    let mut print = |event: Event<'_>| {
        let line = match event {
            Event::Started(title) => {
                if std::mem::replace(&mut in_group, true) {
                    workflow::end_group();
                }
                workflow::group(&format!("fleet: {title}"));
                return;
            }
            Event::Done(outcome) => {
                done += 1;
                format!("{}: {}", outcome.target, outcome.done)
            }
            Event::Rollout(progress) => format!("{}: {progress}", progress.deployment),
            Event::Gate(line) => line,
        };
        let _ = writeln!(anstream::stdout(), "{line}");
    };
    let systems = apply::Systems {
        cluster: &planned.cluster,
        live: &planned.live,
        jetstream: planned.jetstream.as_ref(),
    };
    lock.before_first_write().await?;
    let in_waves = planned.rollout.as_ref().filter(|_| !plan.destroy);
    let mut waves = None;
    let result = match in_waves {
        Some(rollout) => lock
            .guard(apply::waves::apply_in_waves(
                &systems, plan, rollout, &options, &mut print,
            ))
            .await
            .map(|done| waves = Some(done)),
        None => {
            lock.guard(apply::apply(&systems, plan, &options, &mut print))
                .await
        }
    };
    workflow::end_group();
    let result = match result {
        Ok(()) if plan.destroy => {
            let deadline = apply_options.namespace_deadline;
            teardown(planned, lock, deadline, &apply_options.interrupt)
                .await
                .map(|made| done += made)
        }
        result => result,
    };
    match result {
        Ok(()) => {
            let summary = plan.summary();
            let complete = if plan.destroy {
                format!(
                    "Destroy complete! Resources: {} destroyed.",
                    summary.destroy
                )
            } else {
                format!(
                    "Apply complete! Resources: {} added, {} changed, {} destroyed.",
                    summary.add, summary.change, summary.destroy
                )
            };
            writeln!(stdout, "\n{complete}")?;
            let table = waves
                .as_deref()
                .map(|waves| format!("{}\n", apply::waves::table_markdown(waves)))
                .unwrap_or_default();
            workflow::report(
                plan,
                file,
                None,
                &format!("### fleet {verb}: {complete}\n\n{table}"),
                &format!("applied={done}\nfailed=0\n"),
            )?;
            Ok(Applied::Done)
        }
        Err(err) => {
            let halted = err.downcast_ref::<apply::waves::Halted>();
            let stopped = err
                .downcast_ref::<Stopped>()
                .or_else(|| halted.and_then(|halted| halted.stopped.as_ref()));
            let (failed, interrupted) = match stopped {
                Some(stopped) => {
                    stopped_summary(stopped, done, &mut stdout)?;
                    (stopped.errors.len(), stopped.interrupted)
                }
                None => (1, None),
            };
            let table = halted
                .map(|halted| format!("{}\n", halted.markdown()))
                .unwrap_or_default();
            let heading = match interrupted {
                Some(signal) if failed == 0 => format!(
                    "### fleet apply interrupted by {signal}: {done} change(s) made\n\nRun apply again: it picks up where this left off. What was planned:\n\n"
                ),
                _ => format!(
                    "### fleet apply stopped: {done} change(s) made, {failed} failed\n\n{table}The errors are in the job's log; run apply again once fixed. What was planned:\n\n"
                ),
            };
            workflow::report(
                plan,
                file,
                None,
                &heading,
                &format!("applied={done}\nfailed={failed}\n"),
            )?;
            Err(err)
        }
    }
}

/// The end of a destroy, once everything else is gone: the namespace (when
/// planned) is deleted while the lock is still held, then the lock's Lease,
/// and the namespace is followed until it is gone, or `deadline`. How many
/// planned changes it made.
async fn teardown(
    planned: &Planned,
    lock: &mut DeployLock,
    deadline: Option<std::time::Instant>,
    interrupt: &crate::interrupt::Interrupt,
) -> anyhow::Result<usize> {
    let plan = &planned.plan;
    let mut made = 0;
    let mut stdout = anstream::stdout();
    let namespace = apply::teardown::namespace(plan);
    if let Some(id) = namespace {
        apply::teardown::delete_namespace(&planned.cluster, &planned.live, id).await?;
        writeln!(stdout, "{id}: deleted; terminating")?;
        made += 1;
    }
    let lease = lock.lease();
    if lock.release_by_deleting().await? && apply::teardown::lease(plan).is_some() {
        writeln!(stdout, "{lease}: destroyed (the deploy lock, released)")?;
        made += 1;
    }
    let Some(id) = namespace else {
        return Ok(made);
    };
    let Some(deadline) = deadline else {
        writeln!(
            stdout,
            "{id}: still terminating; not waited for (--no-wait). `kubectl get namespace {}` shows when it is gone",
            id.name
        )?;
        return Ok(made);
    };
    let mut say = |progress: String| {
        let _ = writeln!(anstream::stdout(), "{id}: {progress}");
    };
    let gone =
        apply::teardown::wait_until_gone(&planned.cluster, &id.name, deadline, interrupt, &mut say)
            .await?;
    match gone {
        apply::teardown::Gone::Gone => Ok(made),
        apply::teardown::Gone::StillTerminating(why) => anyhow::bail!(
            "{id} is still terminating at the end of --timeout: {why}. Everything else fleet owned is destroyed; the namespace goes once the namespace controller has removed what it holds (`kubectl get namespace {} -o yaml` shows its conditions). A second `fleet destroy` has nothing to do meanwhile",
            id.name
        ),
    }
}

/// What was done and what was not, when apply stopped; the errors
/// themselves follow on stderr.
fn stopped_summary(stopped: &Stopped, done: usize, out: &mut impl Write) -> std::io::Result<()> {
    let failed = stopped.errors.len();
    let stopped_by = match stopped.interrupted {
        Some(signal) => format!("Apply interrupted by {signal}"),
        None => "Apply stopped".to_string(),
    };
    if stopped.in_rollout {
        // In waves, the later waves' changes are not started.
        let (made, later) = match stopped.not_started.len() {
            0 => ("every change was made".to_string(), String::new()),
            later => (
                format!("{done} change{} made", if done == 1 { "" } else { "s" }),
                format!(
                    "; {later} change{} of later waves not started",
                    if later == 1 { "" } else { "s" }
                ),
            ),
        };
        if failed == 0 {
            writeln!(
                out,
                "\n{stopped_by}: {made}{later}; rollouts were not waited for."
            )?;
        } else {
            writeln!(
                out,
                "\n{stopped_by}: {made}, but {failed} Deployment{} did not roll out (see below){later}.",
                if failed == 1 { "" } else { "s" }
            )?;
        }
        list_not_started(stopped, out)?;
    } else {
        writeln!(
            out,
            "\n{stopped_by}: {done} change{} made, {failed} failed{}, {} not started.",
            if done == 1 { "" } else { "s" },
            if failed == 0 { "" } else { " (see below)" },
            stopped.not_started.len()
        )?;
        list_not_started(stopped, out)?;
        writeln!(out, "Rollouts were not waited for.")?;
    }
    let once_fixed = if failed == 0 { "" } else { " once fixed" };
    writeln!(
        out,
        "Run apply again{once_fixed}: it picks up where this left off."
    )
}

fn list_not_started(stopped: &Stopped, out: &mut impl Write) -> std::io::Result<()> {
    if !stopped.not_started.is_empty() {
        writeln!(out, "Not started:")?;
        for target in &stopped.not_started {
            writeln!(out, "  {target}")?;
        }
    }
    Ok(())
}

/// A plan `fleet plan --out` wrote, in a format this fleet reads.
pub(crate) fn read_saved_plan(path: &std::path::Path) -> anyhow::Result<Plan> {
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
    Ok(saved)
}

/// The environment to apply the saved plan at `path` in: the one it was
/// made for, which `--env` (`given`) may only repeat. Read before planning,
/// so a plan is never made for the wrong environment only to be refused.
pub(crate) fn saved_plan_environment(
    path: &std::path::Path,
    given: Option<&str>,
) -> anyhow::Result<Option<String>> {
    let saved = read_saved_plan(path)?;
    environment_for_saved(path, saved.environment.as_deref(), given)
}

fn environment_for_saved(
    path: &std::path::Path,
    saved: Option<&str>,
    given: Option<&str>,
) -> anyhow::Result<Option<String>> {
    match (saved, given) {
        (saved, None) => Ok(saved.map(str::to_string)),
        (Some(saved), Some(given)) if saved == given => Ok(Some(saved.to_string())),
        (saved, Some(given)) => anyhow::bail!(
            "{} was made for {}, not environment `{given}`; nothing was changed. Apply it without --env (a saved plan carries its environment), or make a plan for `{given}` with `fleet plan --env {given} --out`",
            path.display(),
            saved.map_or(
                "fleet.toml alone (no environment)".to_string(),
                |s| format!("environment `{s}`")
            )
        ),
    }
}

/// A saved plan is applied only while it is still the plan: anything that
/// changed since (the definition, the cluster, JetStream) makes it stale.
fn check_saved_plan(path: &std::path::Path, fresh: &Plan) -> anyhow::Result<()> {
    let saved = read_saved_plan(path)?;
    if saved.destroy != fresh.destroy {
        anyhow::bail!(
            "{} is {}a destroy plan, and this run {}; nothing was changed",
            path.display(),
            if saved.destroy { "" } else { "not " },
            if fresh.destroy {
                "destroys"
            } else {
                "applies the definition"
            }
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
    if saved.targeting != fresh.targeting {
        anyhow::bail!(
            "{} was made for other agents than this run plans (the agents of the fleet changed since); nothing was changed. Run `fleet plan --out` again",
            path.display()
        );
    }
    if let Err(why) = provenance::check_saved(&saved.provenance, &fresh.provenance) {
        anyhow::bail!(
            "{} {why}; nothing was changed. Run `fleet plan --out` again",
            path.display()
        );
    }
    // Whether a change is blocked depends on apply's flags (a plan saved
    // without --allow-destroy, applied with it), not on what it does.
    let unblocked = |changes: &[crate::plan::Change]| {
        let mut changes = changes.to_vec();
        for change in &mut changes {
            change.blocked = None;
        }
        serde_json::to_value(changes)
    };
    if unblocked(&saved.changes)? != unblocked(&fresh.changes)? {
        anyhow::bail!(
            "the plan in {} is stale: the definition, the cluster or JetStream changed since it was made. Nothing was changed; run `fleet plan --out` again",
            path.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interrupt::Signal;
    use crate::plan::Target;

    fn summary(stopped: &Stopped, done: usize) -> String {
        let mut out = Vec::new();
        stopped_summary(stopped, done, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_saved_plan_carries_its_environment() {
        let path = std::path::Path::new("plan.json");
        assert_eq!(
            environment_for_saved(path, Some("local"), None).unwrap(),
            Some("local".to_string()),
            "without --env, the plan's own"
        );
        assert_eq!(
            environment_for_saved(path, Some("local"), Some("local")).unwrap(),
            Some("local".to_string())
        );
        let err = environment_for_saved(path, Some("local"), Some("production"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("plan.json was made for environment `local`, not environment `production`; nothing was changed. Apply it without --env"),
            "{err}"
        );
        assert_eq!(environment_for_saved(path, None, None).unwrap(), None);
    }

    #[test]
    fn an_interrupted_apply_says_what_it_did_not_start() {
        let stopped = Stopped {
            errors: Vec::new(),
            not_started: vec![Target::Stream {
                name: "tasks".into(),
            }],
            in_rollout: false,
            interrupted: Some(Signal::Interrupt),
        };
        let text = summary(&stopped, 3);
        assert!(
            text.contains("\nApply interrupted by SIGINT: 3 changes made, 0 failed, 1 not started.\nNot started:\n  "),
            "{text}"
        );
        assert!(
            text.ends_with(
                "Rollouts were not waited for.\nRun apply again: it picks up where this left off.\n"
            ),
            "{text}"
        );
        assert_eq!(
            stopped.to_string(),
            "interrupted by SIGINT: apply stopped once the changes in flight were done. Run apply again: it picks up where this left off"
        );
    }

    #[test]
    fn an_apply_interrupted_in_its_rollout_wait_made_every_change() {
        let stopped = Stopped {
            errors: Vec::new(),
            not_started: Vec::new(),
            in_rollout: true,
            interrupted: Some(Signal::Terminate),
        };
        assert!(summary(&stopped, 7).starts_with(
            "\nApply interrupted by SIGTERM: every change was made; rollouts were not waited for.\n"
        ));
    }
}
