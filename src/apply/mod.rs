//! apply: the only writes. Carries out a [`Plan`] wave by wave: namespace;
//! configuration; JetStream (streams, then consumers); Services and
//! NetworkPolicies; workloads; autoscaling and the other policies; then
//! deletions in reverse (consumers before their stream).
//! Each step's changes run concurrently. A failure stops before the next
//! step (every error of the step is reported, and what was not started);
//! running apply again converges. Then it waits for the Deployments it wrote
//! to roll out ([`rollout`]). A signal ([`crate::interrupt`]) stops it the
//! same way: no change starts after it, those in flight finish.

pub(crate) mod autoscalers;
mod jetstream;
mod kube;
pub(crate) mod revocation;
pub(crate) mod rollback;
pub(crate) mod rollout;
pub(crate) mod soak;
pub(crate) mod teardown;
pub(crate) mod waves;

use std::cell::RefCell;
use std::fmt;
use std::time::Duration;

use futures::{StreamExt, stream};

use crate::client::jetstream::JetStream;
use crate::client::kube::Cluster;
use crate::interrupt::{Interrupt, Signal};
use crate::live::kube::LiveState;
use crate::plan::{Action, Change, Handover, Plan, Target};
use crate::render::{ObjectRef, Wave};
use crate::{ownership, provenance};

pub(crate) struct Options {
    pub concurrency: usize,
    pub force_conflicts: bool,
    pub adopt: bool,
    /// Allow changes that lose queued messages.
    pub allow_destroy: bool,
    /// How long to wait for Deployments to roll out; zero means don't wait.
    pub rollout_timeout: Duration,
    /// What the final write records on the ApplySet parent (the
    /// definition's commit, who applied, when); `None` keeps what it records.
    pub record: Option<provenance::Record>,
    /// Asks apply to stop where it stands.
    pub interrupt: Interrupt,
    /// How the agents' NATS users are minted, when the plan mints any.
    pub minting: Option<Minting>,
    /// How superseded and removed users are revoked, when the plan revokes any.
    pub revoking: Option<revocation::Revoking>,
}

/// What minting an agent's NATS user takes: the account signing key's seed
/// (never printed), the account, and how long a user is valid.
#[derive(Debug, Clone)]
pub(crate) struct Minting {
    pub signing_key: crate::redact::Sensitive,
    pub account: String,
    pub validity: Duration,
}

/// Whether a change writes an agent's NATS credentials, which apply mints.
pub(crate) fn mints(change: &Change) -> bool {
    change.action.writes()
        && change.desired.as_ref().is_some_and(|body| {
            body.sent()["metadata"]["annotations"][crate::credentials::PERMISSIONS_ANNOTATION]
                .is_string()
        })
}

/// One change carried out, as it is reported.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    pub target: Target,
    pub done: &'static str,
}

/// What apply tells its caller as it goes.
pub(crate) enum Event<'a> {
    /// A step with changes starts (`applying Workloads`, `waiting for 3
    /// rollouts`): a place to fold the log.
    Started(String),
    /// A change was carried out.
    Done(&'a Outcome),
    /// Where a Deployment's rollout stands: rolling out, rolled out, failed.
    Rollout(&'a rollout::Progress),
    /// How a wave's health gate stands (see [`waves`]).
    Gate(String),
}

/// Why apply stopped: every error of the step that failed (or of every
/// rollout that failed), or the signal that stopped it, and the changes not
/// started.
#[derive(Debug, thiserror::Error)]
pub(crate) struct Stopped {
    pub errors: Vec<anyhow::Error>,
    pub not_started: Vec<Target>,
    /// Every change was made; what failed (or was not waited for) is
    /// rollouts.
    pub in_rollout: bool,
    pub interrupted: Option<Signal>,
}

impl fmt::Display for Stopped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.interrupted, self.errors.as_slice()) {
            (Some(signal), []) => write!(
                f,
                "interrupted by {signal}: apply stopped once the changes in flight were done. Run apply again: it picks up where this left off"
            ),
            (_, [only]) => write!(f, "{only:#}"),
            (_, errors) => {
                write!(f, "{} errors:", errors.len())?;
                for (n, err) in errors.iter().enumerate() {
                    // Continuation lines line up under the first.
                    let text = format!("{err:#}").replace('\n', "\n     ");
                    write!(f, "\n  {}. {text}", n + 1)?;
                }
                Ok(())
            }
        }
    }
}

/// What apply writes to.
pub(crate) struct Systems<'a> {
    pub cluster: &'a Cluster,
    pub live: &'a LiveState,
    pub jetstream: Option<&'a JetStream>,
}

/// Refuses, before any write, a plan that needs a flag it was not given,
/// or holds a change the servers would refuse (see [`Change::blocked`]).
pub(crate) fn check_allowed(plan: &Plan, options: &Options) -> anyhow::Result<()> {
    let minted: Vec<String> = plan
        .changes
        .iter()
        .filter(|c| mints(c))
        .map(|c| c.target.to_string())
        .collect();
    let revoked: Vec<String> = plan
        .changes
        .iter()
        .filter(|c| c.revokes.is_some())
        .map(|c| c.target.to_string())
        .collect();
    if !revoked.is_empty() {
        match &options.revoking {
            None => anyhow::bail!(
                "the plan revokes NATS users ({}; [nats_credentials] revoke = true), and no operator signing key or system account creds were given: set FLEET_NATS_OPERATOR_SIGNING_KEY and FLEET_NATS_SYSTEM_CREDS. Nothing was changed.",
                revoked.join(", ")
            ),
            Some(revoking) => {
                crate::credentials::operator_key(revoking.operator_key.expose())
                    .map_err(|err| err.context("Nothing was changed"))?;
            }
        }
    }
    if !minted.is_empty() {
        match &options.minting {
            None => anyhow::bail!(
                "the plan mints NATS users ({}), and no account signing key was given: set FLEET_NATS_ACCOUNT_SIGNING_KEY to the seed of a signing key of the [nats_credentials] account (a CI secret). Nothing was changed.",
                minted.join(", "),
            ),
            Some(minting) => {
                crate::credentials::account_key(minting.signing_key.expose())
                    .map_err(|err| err.context("Nothing was changed"))?;
            }
        }
    }
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
            // A refusal no flag lifts, which the plan showed.
            _ => {
                if let Some(blocked) = change.blocked.as_ref().filter(|b| b.unless.is_none()) {
                    anyhow::bail!(
                        "{} {}, but is blocked: {}. Nothing was changed.",
                        change.target,
                        change.action.verb(),
                        blocked.reason
                    )
                }
            }
        }
    }
    Ok(())
}

/// The order of writes, in stages: each stage completes before the next
/// starts. A stage's lanes run side by side, the steps of a lane one after
/// another.
fn stages() -> Vec<Vec<Vec<(Wave, Step)>>> {
    let one = |wave, step| vec![vec![(wave, step)]];
    vec![
        one(Wave::Namespace, Step::Write),
        // The cluster's configuration and JetStream are on different servers
        // and neither needs the other; the workloads need both.
        vec![
            vec![
                (Wave::Configuration, Step::Write),
                (Wave::Configuration, Step::WriteRoleBindings),
            ],
            vec![
                (Wave::JetStream, Step::WriteStreams),
                (Wave::JetStream, Step::WriteConsumers),
            ],
        ],
        one(Wave::Network, Step::Write),
        one(Wave::Workloads, Step::Write),
        // A switch of autoscaling engine frees KEDA's HPA before fleet's
        // is applied over it (plan::handover).
        one(Wave::Policy, Step::HandBack),
        one(Wave::Policy, Step::Write),
        one(Wave::Policy, Step::Delete),
        one(Wave::Workloads, Step::Delete),
        one(Wave::Network, Step::Delete),
        one(Wave::JetStream, Step::DeleteConsumers),
        one(Wave::JetStream, Step::DeleteStreams),
        one(Wave::Configuration, Step::Delete),
        // The ApplySet parent lists what fleet owns: a tear-down removes
        // it only once all it lists is gone, so a run that stops half-way
        // leaves the rest findable. (The namespace and the deploy lock go
        // after the lock's last use: see [`teardown`].)
        one(Wave::Configuration, Step::DeleteParent),
        // Last, so a run killed before it leaves the old inventory: the next
        // plan then does not take what is still missing for drift.
        one(Wave::Configuration, Step::RecordInventory),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Creates and updates, but RoleBindings.
    Write,
    /// RoleBindings, after the Roles they bind: unless it may `bind`, the
    /// API server checks that whoever binds a Role holds its rights, and
    /// refuses the binding (404) while the Role does not exist.
    WriteRoleBindings,
    /// ScaledObjects deleted, their HPAs orphaned, for fleet's own HPAs to
    /// take back.
    HandBack,
    /// Deletions, but the ApplySet parent's and those [`teardown`] makes.
    Delete,
    DeleteParent,
    WriteStreams,
    WriteConsumers,
    DeleteConsumers,
    DeleteStreams,
    /// The ApplySet parent applied again, with the inventory of what this
    /// apply made (see `ownership::INVENTORY_HASH_ANNOTATION`).
    RecordInventory,
}

impl Step {
    fn title(self, wave: Wave, changes: usize) -> String {
        let what = match self {
            Step::Write | Step::WriteRoleBindings | Step::WriteStreams | Step::WriteConsumers => {
                "applying"
            }
            Step::Delete
            | Step::HandBack
            | Step::DeleteParent
            | Step::DeleteConsumers
            | Step::DeleteStreams => "destroying",
            Step::RecordInventory => return "recording the inventory".into(),
        };
        let which = match self {
            Step::WriteStreams | Step::DeleteStreams => "JetStream streams".to_string(),
            Step::WriteConsumers | Step::DeleteConsumers => "JetStream consumers".to_string(),
            Step::WriteRoleBindings => "role bindings".to_string(),
            Step::HandBack => "KEDA ScaledObjects, keeping their HPAs".to_string(),
            Step::DeleteParent => "the ApplySet parent".to_string(),
            _ => format!("{wave:?}").to_lowercase(),
        };
        format!(
            "{what} {which} ({changes} change{})",
            if changes == 1 { "" } else { "s" }
        )
    }

    fn includes(self, change: &Change) -> bool {
        let delete = change.action == Action::Delete;
        let writes = change.action.writes();
        let stream = matches!(change.target, Target::Stream { .. });
        let role_binding =
            matches!(&change.target, Target::Kubernetes(id) if id.kind == "RoleBinding");
        let parent = is_parent(change);
        let orphans = change.handover == Some(Handover::Orphans);
        // The only Secret fleet renders is the ApplySet parent.
        let parent_deleted =
            delete && matches!(&change.target, Target::Kubernetes(id) if id.kind == "Secret");
        match self {
            Step::Write => writes && !role_binding,
            Step::WriteRoleBindings => writes && role_binding,
            Step::HandBack => delete && orphans,
            Step::Delete => delete && !orphans && !parent_deleted && !teardown::is_last(change),
            Step::DeleteParent => parent_deleted,
            Step::WriteStreams => writes && stream,
            Step::WriteConsumers => writes && !stream,
            Step::DeleteConsumers => delete && !stream,
            Step::DeleteStreams => delete && stream,
            Step::RecordInventory => parent && (writes || change.action == Action::NoOp),
        }
    }
}

fn is_parent(change: &Change) -> bool {
    change.desired.as_ref().is_some_and(|body| {
        body.sent()["metadata"]["labels"][ownership::APPLYSET_ID_LABEL].is_string()
    })
}

/// The provenance annotations the ApplySet parent is written with: what it
/// records already, kept as it is, until the final write records this
/// apply's (a run that stops early leaves the last complete one). `None`
/// for every other object: provenance is never put anywhere else.
fn parent_annotations(
    live: &LiveState,
    change: &Change,
    id: &ObjectRef,
    step: Step,
    options: &Options,
) -> Option<serde_json::Map<String, serde_json::Value>> {
    if !is_parent(change) {
        return None;
    }
    match (&options.record, step) {
        (Some(record), Step::RecordInventory) => Some(record.annotations()),
        _ => Some(
            live.owned
                .get(id)
                .map(provenance::recorded)
                .unwrap_or_default(),
        ),
    }
}

/// Carries out the plan. `report` hears of each change and rollout as it
/// happens. When a step fails, the error is a [`Stopped`].
pub(crate) async fn apply(
    systems: &Systems<'_>,
    plan: &Plan,
    options: &Options,
    report: &mut dyn FnMut(Event<'_>),
) -> anyhow::Result<()> {
    check_allowed(plan, options)?;
    // Lanes running side by side take turns at the report (they are polled
    // by one task, so never at once).
    let report = RefCell::new(report);
    let stages: Vec<Vec<Vec<PlannedStep>>> = stages()
        .into_iter()
        .map(|stage| {
            let lane = |lane: Vec<(Wave, Step)>| {
                let planned = |(wave, step): (Wave, Step)| {
                    let changes: Vec<&Change> = plan
                        .changes
                        .iter()
                        .filter(|c| c.wave == wave && step.includes(c))
                        .collect();
                    let title = step.title(wave, changes.len());
                    PlannedStep {
                        step,
                        title,
                        changes,
                    }
                };
                lane.into_iter().map(planned).collect()
            };
            stage.into_iter().map(lane).collect()
        })
        .collect();
    for (n, stage) in stages.iter().enumerate() {
        let titles: Vec<&str> = stage
            .iter()
            .flatten()
            .filter(|step| !step.changes.is_empty())
            .map(|step| step.title.as_str())
            .collect();
        if !titles.is_empty() {
            (report.borrow_mut())(Event::Started(titles.join("; ")));
        }
        let lanes = stage
            .iter()
            .map(|lane| run_lane(systems, lane, options, &report));
        let mut errors = Vec::new();
        let mut not_started = Vec::new();
        for (lane_errors, lane_not_started) in futures::future::join_all(lanes).await {
            errors.extend(lane_errors);
            not_started.extend(lane_not_started);
        }
        let interrupted = options.interrupt.received();
        if !errors.is_empty() || interrupted.is_some() {
            // The rest of this stage ran (or, interrupted, what had started
            // finished); no further stage starts.
            not_started.extend(
                stages[n + 1..]
                    .iter()
                    .flatten()
                    .flatten()
                    .flat_map(|step| &step.changes)
                    .map(|c| c.target.clone()),
            );
            return Err(Stopped {
                errors,
                not_started,
                in_rollout: false,
                interrupted,
            }
            .into());
        }
    }
    if !options.rollout_timeout.is_zero() {
        let deployments = rollout_targets(plan);
        if !deployments.is_empty() {
            (report.borrow_mut())(Event::Started(format!(
                "waiting for {} rollout{}",
                deployments.len(),
                if deployments.len() == 1 { "" } else { "s" }
            )));
        }
        let mut progress =
            |progress: &rollout::Progress| (report.borrow_mut())(Event::Rollout(progress));
        let waiting = rollout::wait(
            &systems.cluster.client,
            &deployments,
            options.rollout_timeout,
            &mut progress,
        );
        let (errors, interrupted) = tokio::select! {
            errors = waiting => (errors, None),
            signal = options.interrupt.wait() => (Vec::new(), Some(signal)),
        };
        if !errors.is_empty() || interrupted.is_some() {
            return Err(Stopped {
                errors,
                not_started: Vec::new(),
                in_rollout: true,
                interrupted,
            }
            .into());
        }
    }
    Ok(())
}

/// The Deployments the plan writes, each with the pod selector it applies.
pub(crate) fn rollout_targets(plan: &Plan) -> Vec<rollout::Waited> {
    plan.changes
        .iter()
        .filter(|change| change.action.writes())
        .filter_map(waited)
        .collect()
}

/// The Deployment `change` is for, with the pod selector it applies; `None`
/// for any other object.
pub(crate) fn waited(change: &Change) -> Option<rollout::Waited> {
    match &change.target {
        Target::Kubernetes(id) if id.kind == "Deployment" && id.group() == "apps" => {
            let labels = change.desired.as_ref().and_then(|d| {
                d.sent()
                    .pointer("/spec/selector/matchLabels")?
                    .as_object()
                    .cloned()
            });
            Some(rollout::Waited {
                deployment: id.clone(),
                selector: labels
                    .into_iter()
                    .flatten()
                    .filter_map(|(k, v)| Some((k, v.as_str()?.to_string())))
                    .collect(),
            })
        }
        _ => None,
    }
}

/// One step of the order with the plan's changes it carries out.
struct PlannedStep<'p> {
    step: Step,
    title: String,
    changes: Vec<&'p Change>,
}

/// Runs a lane's steps in order until one fails or a signal stops it: the
/// step's errors, and the targets of the changes not started.
async fn run_lane(
    systems: &Systems<'_>,
    lane: &[PlannedStep<'_>],
    options: &Options,
    report: &RefCell<&mut dyn FnMut(Event<'_>)>,
) -> (Vec<anyhow::Error>, Vec<Target>) {
    for (n, planned) in lane.iter().enumerate() {
        let mut report = |event: Event<'_>| (report.borrow_mut())(event);
        let (errors, mut not_started) = run_step(
            systems,
            planned.step,
            &planned.changes,
            options,
            &mut report,
        )
        .await;
        if !errors.is_empty() || options.interrupt.received().is_some() {
            not_started.extend(
                lane[n + 1..]
                    .iter()
                    .flat_map(|step| &step.changes)
                    .map(|c| c.target.clone()),
            );
            return (errors, not_started);
        }
    }
    (Vec::new(), Vec::new())
}

/// Runs one step's changes concurrently, starting none once a signal has
/// stopped apply; the answer is every error, and the changes not started.
async fn run_step(
    systems: &Systems<'_>,
    step: Step,
    changes: &[&Change],
    options: &Options,
    report: &mut dyn FnMut(Event<'_>),
) -> (Vec<anyhow::Error>, Vec<Target>) {
    let interrupt = &options.interrupt;
    let mut results = stream::iter(changes.iter().enumerate())
        // Asked as each change is about to start.
        .take_while(|_| std::future::ready(interrupt.received().is_none()))
        .map(|(n, change)| async move {
            (
                n,
                change,
                apply_change(systems, step, change, options).await,
            )
        })
        .buffer_unordered(options.concurrency.max(1));
    let mut errors = Vec::new();
    let mut finished = vec![false; changes.len()];
    while let Some((n, change, result)) = results.next().await {
        finished[n] = true;
        match result {
            // The parent was reported when it was written; recording the
            // inventory on it again is no change of its own (an unchanged
            // parent is reported as the inventory recorded).
            Ok(_) if step == Step::RecordInventory && change.action != Action::NoOp => {}
            Ok(done) => report(Event::Done(&Outcome {
                target: change.target.clone(),
                done,
            })),
            Err(err) => errors.push((n, err)),
        }
    }
    // In the plan's order, whatever order they failed in.
    errors.sort_by_key(|(n, _)| *n);
    let not_started = changes
        .iter()
        .zip(finished)
        .filter(|(_, finished)| !finished)
        .map(|(change, _)| change.target.clone())
        .collect();
    (
        errors.into_iter().map(|(_, err)| err).collect(),
        not_started,
    )
}

async fn apply_change(
    systems: &Systems<'_>,
    step: Step,
    change: &Change,
    options: &Options,
) -> anyhow::Result<&'static str> {
    match &change.target {
        Target::Kubernetes(id) => {
            // The user a change supersedes (or removes) is revoked first:
            // if that fails nothing is written and the next apply, which
            // still finds it in the Secret, tries again; if the write then
            // fails, the next plan mints again and revoking twice is no harm.
            let revoked = match (&change.revokes, &options.revoking) {
                (Some(user), Some(revoking)) => {
                    revocation::revoke(revoking, std::slice::from_ref(user))
                        .await
                        .map_err(|err| {
                            err.context(format!(
                                "{}: its NATS user {user} could not be revoked, so nothing was written to it; apply again",
                                change.target
                            ))
                        })?;
                    true
                }
                _ => false,
            };
            let annotations = parent_annotations(systems.live, change, id, step, options);
            let done = kube::apply_change(
                systems.cluster,
                systems.live,
                change,
                id,
                options,
                annotations.as_ref(),
            )
            .await?;
            Ok(match (revoked, done) {
                (true, "destroyed") => "destroyed, its NATS user revoked",
                (true, _) => "updated, its previous NATS user revoked",
                (false, done) => done,
            })
        }
        Target::Stream { .. } | Target::Consumer { .. } => {
            let js = systems.jetstream.ok_or_else(|| {
                anyhow::anyhow!("{}: no NATS connection to apply it with", change.target)
            })?;
            jetstream::apply_change(js, change).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stage in which apply writes (creates or updates) a kind.
    fn write_stage(kind: &str) -> usize {
        let wave = Wave::of_kind(kind);
        stages()
            .iter()
            .position(|stage| stage.iter().flatten().any(|&w| w == (wave, Step::Write)))
            .expect("every wave is written")
    }

    #[test]
    fn pods_start_after_their_network_policy_and_before_their_autoscaler() {
        for before in ["ServiceAccount", "ConfigMap", "Service", "NetworkPolicy"] {
            assert!(write_stage(before) < write_stage("Deployment"), "{before}");
        }
        for after in [
            "HorizontalPodAutoscaler",
            "PodDisruptionBudget",
            "ServiceMonitor",
        ] {
            assert!(write_stage("Deployment") < write_stage(after), "{after}");
        }
    }

    #[test]
    fn a_plan_lists_its_writes_in_the_order_apply_makes_them() {
        let written: Vec<Wave> = stages()
            .into_iter()
            .flatten()
            .flatten()
            .filter(|&(_, step)| step == Step::Write)
            .map(|(wave, _)| wave)
            .collect();
        assert!(written.is_sorted(), "{written:?}");
    }
}
