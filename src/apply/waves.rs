//! Applying a plan in rollout waves (`[rollout]`): what belongs to no wave
//! first, then each wave's changes, its rollouts waited for and its pods
//! soaked; the first wave that fails its gate halts the apply, and what each
//! wave runs then is reported.

use std::fmt;

use super::{
    Event, Options, Stopped, Systems, apply, autoscalers, rollback, rollout_targets, soak,
};
use crate::model::Rollout;
use crate::plan::waves::{self, Batch};
use crate::plan::{Action, Plan, Target};

/// Where each wave stands when an apply in waves ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Rolled out and through its gate: it runs the new definition.
    Done,
    /// Its changes were written but its pods are not healthy: why.
    Failed(String),
    /// Some of its changes could not be written: why.
    NotWritten(String),
    /// Never started: it runs what it ran before.
    NotStarted,
    /// Nothing of it differed from the definition: not rolled out, nor
    /// soaked, again.
    Unchanged,
}

/// One wave and how it ended.
#[derive(Debug, Clone)]
pub(crate) struct WaveState {
    pub roles: Vec<String>,
    pub outcome: Outcome,
    /// Every Deployment of it is new: not started, it never ran at all.
    pub new: bool,
    /// Failed and rolled back (`on_failure = "rollback"`): how each of its
    /// Deployments went back, or why it could not.
    pub rolled_back: Option<Vec<String>>,
}

/// An apply in waves that a wave stopped (its writes, its rollout or its
/// gate failed).
#[derive(Debug, thiserror::Error)]
pub(crate) struct Halted {
    pub waves: Vec<WaveState>,
    /// What apply reported when the wave's writes or rollouts failed (with
    /// the later waves' changes as not started); none when its gate did.
    pub stopped: Option<Stopped>,
}

impl Halted {
    fn failed(&self) -> Option<(usize, &WaveState, &str)> {
        self.waves
            .iter()
            .enumerate()
            .find_map(|(n, w)| match &w.outcome {
                Outcome::Failed(why) | Outcome::NotWritten(why) => Some((n, w, why.as_str())),
                _ => None,
            })
    }

    /// The per-wave table of the step summary.
    pub(crate) fn markdown(&self) -> String {
        table_markdown(&self.waves)
    }
}

impl fmt::Display for Halted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some((n, wave, why)) = self.failed() {
            write!(
                f,
                "the rollout halted in wave {} of {} ({}): {why}",
                n + 1,
                self.waves.len(),
                wave.roles.join(", ")
            )?;
        }
        for (n, wave) in self.waves.iter().enumerate() {
            write!(
                f,
                "\n  wave {} ({}): {}",
                n + 1,
                wave.roles.join(", "),
                describe(wave)
            )?;
            if let Some(rolled_back) = &wave.rolled_back {
                write!(f, "; rolled back: {}", rolled_back.join("; "))?;
            }
        }
        write!(
            f,
            "\nNothing more was written. Fix the cause and apply again: waves that run the new definition are not rolled out or soaked again."
        )
    }
}

fn describe(wave: &WaveState) -> &'static str {
    match (&wave.outcome, wave.new) {
        (Outcome::Done, _) => "runs the new definition",
        (Outcome::Failed(_), _) => {
            "failed: its new definition is written, its pods are not healthy"
        }
        (Outcome::NotWritten(_), _) => "failed: its new definition is written in part",
        (Outcome::NotStarted, true) => "not started: never deployed",
        (Outcome::NotStarted, false) => "not started: runs the previous definition",
        (Outcome::Unchanged, _) => "nothing to change: runs the new definition",
    }
}

/// A Markdown table of the waves, for the step summary.
pub(crate) fn table_markdown(waves: &[WaveState]) -> String {
    let mut text = String::from("| wave | agents | result |\n|---|---|---|\n");
    for (n, wave) in waves.iter().enumerate() {
        let mut result = match &wave.outcome {
            Outcome::Failed(why) | Outcome::NotWritten(why) => {
                format!("halted: {}", why.replace('|', "\\|"))
            }
            _ => describe(wave).to_string(),
        };
        if let Some(rolled_back) = &wave.rolled_back {
            result.push_str(&format!("; rolled back: {}", rolled_back.join("; ")));
        }
        text.push_str(&format!(
            "| {} | {} | {result} |\n",
            n + 1,
            wave.roles.join(", ")
        ));
    }
    text
}

/// Carries `plan` out wave by wave (`waves` as `[rollout]` gives them);
/// with a rollout wait, each wave's pods are soaked for `soak` before the
/// next starts. The waves as they ended, or [`Halted`].
pub(crate) async fn apply_in_waves(
    systems: &Systems<'_>,
    plan: &Plan,
    rollout: &Rollout,
    options: &Options,
    report: &mut dyn FnMut(Event<'_>),
) -> anyhow::Result<Vec<WaveState>> {
    let (waves, soak) = (&rollout.waves, rollout.soak);
    let batches = waves::split(plan, waves);
    // Every wave of `[rollout]`, those with nothing to change included, so
    // that the numbers are the plan's and the report says what each runs.
    let mut states: Vec<WaveState> = waves
        .iter()
        .enumerate()
        .map(|(n, roles)| {
            let batch = batches.iter().find(|b| b.wave == Some(n));
            WaveState {
                roles: roles.clone(),
                outcome: match batch {
                    Some(_) => Outcome::NotStarted,
                    None => Outcome::Unchanged,
                },
                new: batch.is_some_and(|b| only_creates_deployments(&b.plan)),
                rolled_back: None,
            }
        })
        .collect();
    let count = states.len();
    // Unchanged waves before this one are checked once each.
    let mut checked = 0;
    for (n, batch) in batches.iter().enumerate() {
        // A wave with nothing to change was written by an earlier apply,
        // whose gate it may have failed: the next wave starts only once it
        // is rolled out and proven (see `still_rolled_out`).
        if let Some(wave) = batch.wave {
            for earlier in checked..wave {
                if states[earlier].outcome != Outcome::Unchanged {
                    continue;
                }
                if let Err(why) =
                    still_rolled_out(systems, plan, rollout, earlier, options, report).await?
                {
                    states[earlier].outcome = Outcome::Failed(why);
                    return Err(Halted {
                        waves: states,
                        stopped: None,
                    }
                    .into());
                }
            }
            checked = wave;
        }
        let title = match batch.wave {
            Some(wave) => format!("wave {} of {count} ({})", wave + 1, batch.roles.join(", ")),
            None => "before the waves".to_string(),
        };
        let changes = batch
            .plan
            .changes
            .iter()
            .filter(|c| c.action.acts())
            .count();
        report(Event::Gate(format!(
            "{title}: {changes} change{}",
            if changes == 1 { "" } else { "s" }
        )));
        let mut prefixed = |event: Event<'_>| match event {
            Event::Started(step) => report(Event::Started(format!("{title}: {step}"))),
            other => report(other),
        };
        // The wave's place in `states`; none for what belongs to no wave.
        let index = batch.wave;
        let gated = index.is_some()
            && !options.rollout_timeout.is_zero()
            && !soak.is_zero()
            && batch.rolls_out();
        // How the wave's autoscalers were doing before it is written.
        let autoscalers = if gated {
            autoscalers::of_wave(&batch.plan)
        } else {
            Vec::new()
        };
        let before = autoscalers::read(&systems.cluster.client, &autoscalers).await?;
        let applied = apply(systems, &batch.plan, options, &mut prefixed).await;
        if let Err(err) = applied {
            let mut stopped = match err.downcast::<Stopped>() {
                Ok(stopped) => stopped,
                Err(other) => return Err(other),
            };
            // The report also lists what the later batches never started.
            stopped.not_started.extend(
                batches[n + 1..]
                    .iter()
                    .flat_map(|later| &later.plan.changes)
                    .filter(|change| change.action.acts())
                    .map(|change| change.target.clone()),
            );
            // Stopped by a signal: an interrupted apply, not a failed wave.
            let Some(index) = index.filter(|_| stopped.interrupted.is_none()) else {
                return Err(stopped.into());
            };
            let why = stopped.to_string();
            states[index].outcome = if stopped.in_rollout {
                Outcome::Failed(why)
            } else {
                Outcome::NotWritten(why)
            };
            if rollout.roll_back {
                states[index].rolled_back = Some(roll_back(systems, batch, report).await);
            }
            return Err(Halted {
                waves: states,
                stopped: Some(stopped),
            }
            .into());
        }
        if let (true, Some(index)) = (gated, index) {
            prefixed(Event::Started(format!("soaking for {}s", soak.as_secs())));
            let mut progress = |line: String| report(Event::Gate(line));
            let soaked = soak::soak(
                &systems.cluster.client,
                &rollout_targets(&batch.plan),
                soak,
                &options.interrupt,
                &mut progress,
            )
            .await?;
            let after = autoscalers::read(&systems.cluster.client, &autoscalers).await?;
            let failed = match soaked {
                Err(unhealthy) => Some(unhealthy.to_string()),
                Ok(()) => autoscalers::broken(&autoscalers, &before, &after),
            };
            if let Some(why) = failed {
                states[index].outcome = Outcome::Failed(why);
                if rollout.roll_back {
                    states[index].rolled_back = Some(roll_back(systems, batch, report).await);
                }
                return Err(Halted {
                    waves: states,
                    stopped: None,
                }
                .into());
            }
        }
        if let Some(signal) = options.interrupt.received() {
            return Err(crate::interrupt::Interrupted(signal).into());
        }
        if let Some(index) = index {
            states[index].outcome = Outcome::Done;
        }
    }
    Ok(states)
}

/// Waits for the rollouts of the Deployments of wave `wave` (one with
/// nothing to change), and soaks them again unless their pods have run for
/// a whole soak without trouble already (an earlier apply that halted in
/// this wave, or was killed in its soak, left them unproven): `Err` with
/// why when one fails.
async fn still_rolled_out(
    systems: &Systems<'_>,
    plan: &Plan,
    rollout: &Rollout,
    wave: usize,
    options: &Options,
    report: &mut dyn FnMut(Event<'_>),
) -> anyhow::Result<Result<(), String>> {
    let roles = &rollout.waves[wave];
    let deployments: Vec<_> = plan
        .changes
        .iter()
        .filter(|change| {
            change.action != Action::Delete
                && change
                    .agent
                    .as_ref()
                    .is_some_and(|role| roles.contains(role))
        })
        .filter_map(super::waited)
        .collect();
    if deployments.is_empty() || options.rollout_timeout.is_zero() {
        return Ok(Ok(()));
    }
    report(Event::Gate(format!(
        "wave {} of {} ({}): nothing to change; its rollouts must be done before the next wave",
        wave + 1,
        rollout.waves.len(),
        roles.join(", ")
    )));
    let mut progress = |progress: &super::rollout::Progress| report(Event::Rollout(progress));
    let waiting = super::rollout::wait(
        &systems.cluster.client,
        &deployments,
        options.rollout_timeout,
        &mut progress,
    );
    let errors = tokio::select! {
        errors = waiting => errors,
        signal = options.interrupt.wait() => {
            return Err(crate::interrupt::Interrupted(signal).into());
        }
    };
    if !errors.is_empty() {
        let why: Vec<String> = errors.iter().map(|err| format!("{err:#}")).collect();
        return Ok(Err(why.join("; ")));
    }
    let period = rollout.soak;
    if period.is_zero() {
        return Ok(Ok(()));
    }
    let client = &systems.cluster.client;
    let Some(unproven) = soak::unproven(client, &deployments, period).await? else {
        return Ok(Ok(()));
    };
    report(Event::Gate(format!(
        "{unproven}: soaking wave {} again for {}s",
        wave + 1,
        period.as_secs()
    )));
    let mut progress = |line: String| report(Event::Gate(line));
    let soaked = soak::soak(
        client,
        &deployments,
        period,
        &options.interrupt,
        &mut progress,
    )
    .await?;
    Ok(soaked.map_err(|unhealthy| unhealthy.to_string()))
}

/// Puts a failed wave's Deployments back on their previous pod templates
/// (see [`rollback`]): a line for each.
async fn roll_back(
    systems: &Systems<'_>,
    batch: &Batch,
    report: &mut dyn FnMut(Event<'_>),
) -> Vec<String> {
    let deployments = rollout_targets(&batch.plan);
    report(Event::Gate(format!(
        "rolling back {} Deployment{} of the failed wave",
        deployments.len(),
        if deployments.len() == 1 { "" } else { "s" }
    )));
    rollback::roll_back(&systems.cluster.client, &deployments)
        .await
        .into_iter()
        .map(|(deployment, outcome)| {
            let line = match outcome {
                Ok(done) => format!("{deployment} {done}"),
                Err(why) => format!("{deployment} not rolled back: {why}"),
            };
            report(Event::Gate(line.clone()));
            line
        })
        .collect()
}

fn only_creates_deployments(plan: &Plan) -> bool {
    let deployments: Vec<Action> = plan
        .changes
        .iter()
        .filter(|c| matches!(&c.target, Target::Kubernetes(id) if id.kind == "Deployment"))
        .map(|c| c.action)
        .collect();
    !deployments.is_empty() && deployments.iter().all(|a| *a == Action::Create)
}
