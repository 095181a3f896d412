//! apply: the only writes. Carries out a [`Plan`] wave by wave: namespace;
//! configuration; JetStream (streams, then consumers); workloads; autoscaling
//! and policy; then deletions in reverse (consumers before their stream).
//! Each step's changes run concurrently. A failure stops before the next
//! step; running apply again converges.

mod jetstream;
mod kube;

use std::time::Duration;

use futures::{StreamExt, stream};

use crate::live::jetstream::JetStream;
use crate::live::kube::{Cluster, LiveState};
use crate::ownership;
use crate::plan::{Action, Change, Plan, Target};
use crate::render::Wave;

pub struct Options {
    pub concurrency: usize,
    pub force_conflicts: bool,
    pub adopt: bool,
    /// Allow changes that lose queued messages.
    pub allow_destroy: bool,
    /// How long to wait for Deployments to roll out; zero means don't wait.
    pub rollout_timeout: Duration,
}

/// One change carried out, as it is reported.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub target: Target,
    pub done: &'static str,
}

/// What apply writes to.
pub struct Systems<'a> {
    pub cluster: &'a Cluster,
    pub live: &'a LiveState,
    pub jetstream: Option<&'a JetStream>,
}

/// Refuses, before any write, a plan that needs a flag it was not given.
pub fn check_allowed(plan: &Plan, options: &Options) -> anyhow::Result<()> {
    for change in &plan.changes {
        let reason = change.reason.as_deref().unwrap_or_default();
        match change.action {
            Action::Conflict if !options.force_conflicts => {
                anyhow::bail!(
                    "{} {}: {reason}. Nothing was changed.",
                    change.target,
                    change.action.verb()
                )
            }
            Action::Unowned if !options.adopt => anyhow::bail!(
                "{} exists and is not managed by fleet; nothing was changed. Apply with --adopt to take it over",
                change.target
            ),
            _ if change.loses_data && !options.allow_destroy => anyhow::bail!(
                "{} {} and would lose queued messages ({reason}). Nothing was changed; apply with --allow-destroy if that is intended",
                change.target,
                change.action.verb()
            ),
            _ => {}
        }
    }
    Ok(())
}

/// The order of writes: each step completes before the next starts.
fn steps() -> Vec<(Wave, Step)> {
    let mut steps = Vec::new();
    for wave in [Wave::Namespace, Wave::Configuration] {
        steps.push((wave, Step::Write));
    }
    steps.push((Wave::JetStream, Step::WriteStreams));
    steps.push((Wave::JetStream, Step::WriteConsumers));
    for wave in [Wave::Workloads, Wave::Policy] {
        steps.push((wave, Step::Write));
    }
    for wave in [Wave::Policy, Wave::Workloads] {
        steps.push((wave, Step::Delete));
    }
    steps.push((Wave::JetStream, Step::DeleteConsumers));
    steps.push((Wave::JetStream, Step::DeleteStreams));
    for wave in [Wave::Configuration, Wave::Namespace] {
        steps.push((wave, Step::Delete));
    }
    // Last, so a run killed before it leaves the old inventory: the next
    // plan then does not take what is still missing for drift.
    steps.push((Wave::Configuration, Step::RecordInventory));
    steps
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Write,
    Delete,
    WriteStreams,
    WriteConsumers,
    DeleteConsumers,
    DeleteStreams,
    /// The ApplySet parent applied again, with the inventory of what this
    /// apply made (see `ownership::INVENTORY_HASH_ANNOTATION`).
    RecordInventory,
}

impl Step {
    fn includes(self, change: &Change) -> bool {
        let delete = change.action == Action::Delete;
        let writes = matches!(
            change.action,
            Action::Create | Action::Update | Action::Replace | Action::Conflict | Action::Unowned
        );
        let stream = matches!(change.target, Target::Stream { .. });
        let parent = change.desired.as_ref().is_some_and(|body| {
            body.sent()["metadata"]["labels"][ownership::APPLYSET_ID_LABEL].is_string()
        });
        match self {
            Step::Write => writes,
            Step::Delete => delete,
            Step::WriteStreams => writes && stream,
            Step::WriteConsumers => writes && !stream,
            Step::DeleteConsumers => delete && !stream,
            Step::DeleteStreams => delete && stream,
            Step::RecordInventory => parent && (writes || change.action == Action::NoOp),
        }
    }
}

/// Carries out the plan. `report` is called with each outcome as it happens.
pub async fn apply(
    systems: &Systems<'_>,
    plan: &Plan,
    options: &Options,
    report: &mut dyn FnMut(&Outcome),
) -> anyhow::Result<()> {
    check_allowed(plan, options)?;
    for (wave, step) in steps() {
        let changes: Vec<&Change> = plan
            .changes
            .iter()
            .filter(|c| c.wave == wave && step.includes(c))
            .collect();
        run_step(systems, changes, options, report).await?;
    }
    if !options.rollout_timeout.is_zero() {
        kube::wait_for_rollouts(systems.cluster, plan, options.rollout_timeout, report).await?;
    }
    Ok(())
}

async fn run_step(
    systems: &Systems<'_>,
    changes: Vec<&Change>,
    options: &Options,
    report: &mut dyn FnMut(&Outcome),
) -> anyhow::Result<()> {
    let mut results = stream::iter(changes)
        .map(|change| async move { (change, apply_change(systems, change, options).await) })
        .buffer_unordered(options.concurrency.max(1));
    let mut first_error = None;
    while let Some((change, result)) = results.next().await {
        match result {
            Ok(done) => report(&Outcome {
                target: change.target.clone(),
                done,
            }),
            Err(err) => {
                first_error.get_or_insert(err);
            }
        }
    }
    match first_error {
        // The rest of this step ran; no further step starts.
        Some(err) => Err(err),
        None => Ok(()),
    }
}

async fn apply_change(
    systems: &Systems<'_>,
    change: &Change,
    options: &Options,
) -> anyhow::Result<&'static str> {
    match &change.target {
        Target::Kubernetes(id) => {
            kube::apply_change(systems.cluster, systems.live, change, id, options).await
        }
        Target::Stream { .. } | Target::Consumer { .. } => {
            let js = systems.jetstream.ok_or_else(|| {
                anyhow::anyhow!("{}: no NATS connection to apply it with", change.target)
            })?;
            jetstream::apply_change(js, change).await
        }
    }
}
