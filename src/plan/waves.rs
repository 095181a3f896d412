//! Rollout waves (`[rollout]`): a plan cut into the batches apply carries
//! out one after another, each wave's health gate passed before the next.
//!
//! What belongs to no wave (the namespace, streams, objects and consumers of
//! no agent, what a removed agent left) goes first, on its own. The ApplySet
//! parent goes with the last batch: its record of the inventory and of the
//! commit applied is written only once every wave made it, so an apply that
//! halts leaves the previous record, and the next plan does not take the
//! waves it never started for drift. Pure.

use super::{Change, Plan, Target};
use crate::ownership;

/// One batch of a plan: the changes of a wave's agents, or of none.
#[derive(Debug, Clone)]
pub struct Batch {
    /// The wave's agents; empty for what belongs to no wave.
    pub roles: Vec<String>,
    /// Which wave it is (from 0, in the order `[rollout]` gives); `None`
    /// for what belongs to no wave.
    pub wave: Option<usize>,
    /// The plan with only this batch's changes.
    pub plan: Plan,
}

impl Batch {
    /// Whether it writes a Deployment: only then is there a rollout to
    /// wait for and pods to soak.
    pub fn rolls_out(&self) -> bool {
        self.plan.changes.iter().any(|change| {
            change.action.writes()
                && matches!(&change.target, Target::Kubernetes(id) if id.kind == "Deployment")
        })
    }
}

/// `plan` cut by `waves` (roles, wave by wave): batches with changes only,
/// in order.
pub fn split(plan: &Plan, waves: &[Vec<String>]) -> Vec<Batch> {
    let wave_of = |change: &Change| {
        let role = change.agent.as_deref()?;
        waves.iter().position(|wave| wave.iter().any(|r| r == role))
    };
    let mut shared = Vec::new();
    let mut by_wave: Vec<Vec<Change>> = vec![Vec::new(); waves.len()];
    let mut parent = Vec::new();
    for change in &plan.changes {
        if is_parent(change) {
            parent.push(change.clone());
        } else {
            match wave_of(change) {
                Some(n) => by_wave[n].push(change.clone()),
                None => shared.push(change.clone()),
            }
        }
    }
    let batch = |wave: Option<usize>, roles: Vec<String>, changes: Vec<Change>| Batch {
        roles,
        wave,
        plan: Plan {
            changes,
            ..plan.clone()
        },
    };
    let mut batches: Vec<Batch> = std::iter::once(batch(None, Vec::new(), shared))
        .chain(
            waves
                .iter()
                .zip(by_wave)
                .enumerate()
                .map(|(n, (roles, changes))| batch(Some(n), roles.clone(), changes)),
        )
        // A wave with nothing to change runs the new definition already: it
        // is neither rolled out nor soaked again.
        .filter(|b| b.plan.changes.iter().any(|c| c.action.acts()))
        .collect();
    match batches.last_mut() {
        Some(last) => last.plan.changes.extend(parent),
        None if !parent.is_empty() => batches.push(batch(None, Vec::new(), parent)),
        None => {}
    }
    batches
}

/// The plan's note of how apply will go: `apply rolls out in 3 waves: ...`.
pub fn note(rollout: &crate::model::Rollout) -> String {
    let waves: Vec<String> = rollout.waves.iter().map(|w| w.join(", ")).collect();
    let gate = if rollout.soak.is_zero() {
        "each rolled out before the next starts".to_string()
    } else {
        format!(
            "each rolled out, then its pods soaked for {}s without a restart, before the next starts",
            rollout.soak.as_secs()
        )
    };
    format!(
        "apply rolls the agents out in {} wave{} ([rollout]): {}; {gate}",
        waves.len(),
        if waves.len() == 1 { "" } else { "s" },
        waves.join("; then ")
    )
}

fn is_parent(change: &Change) -> bool {
    matches!(&change.target, Target::Kubernetes(id)
    if id.kind == "Secret" && change.desired.as_ref().is_none_or(|body| {
        body.sent()["metadata"]["labels"][ownership::APPLYSET_ID_LABEL].is_string()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Action;
    use crate::render::{ObjectRef, Wave};

    fn change(kind: &str, name: &str, agent: Option<&str>) -> Change {
        let target = Target::Kubernetes(ObjectRef {
            api_version: "v1".into(),
            kind: kind.into(),
            namespace: Some("ns".into()),
            name: name.into(),
        });
        Change {
            agent: agent.map(str::to_string),
            ..Change::new(target, Action::Update, Wave::of_kind(kind))
        }
    }

    fn plan(changes: Vec<Change>) -> Plan {
        Plan {
            format_version: 1,
            fleet: "f".into(),
            environment: None,
            namespace: "ns".into(),
            kube_context: "c".into(),
            nats_url: None,
            provenance: Default::default(),
            lock: None,
            changes,
            drift_only: false,
            destroy: false,
            targeting: None,
            notes: Vec::new(),
        }
    }

    fn names(batch: &Batch) -> Vec<String> {
        batch
            .plan
            .changes
            .iter()
            .map(|c| c.target.to_string())
            .collect()
    }

    #[test]
    fn shared_changes_first_then_each_wave_and_the_parent_last() {
        let waves = vec![
            vec!["a".to_string()],
            vec!["b".to_string(), "c".to_string()],
        ];
        let batches = split(
            &plan(vec![
                change("Secret", "parent", None),
                change("Deployment", "agent-c", Some("c")),
                change("Namespace", "ns", None),
                change("Deployment", "agent-a", Some("a")),
                change("ConfigMap", "agent-gone", Some("gone")),
            ]),
            &waves,
        );
        assert_eq!(batches.len(), 3);
        assert!(batches[0].roles.is_empty() && batches[0].wave.is_none());
        assert_eq!(
            names(&batches[0]),
            ["Namespace ns/ns", "ConfigMap ns/agent-gone"]
        );
        assert_eq!(names(&batches[1]), ["Deployment ns/agent-a"]);
        assert_eq!(batches[2].roles, ["b", "c"]);
        assert_eq!(
            names(&batches[2]),
            ["Deployment ns/agent-c", "Secret ns/parent"]
        );
        assert!(batches[1].rolls_out() && !batches[0].rolls_out());
    }

    #[test]
    fn waves_without_changes_are_left_out() {
        let waves = vec![vec!["a".to_string()], vec!["b".to_string()]];
        let batches = split(
            &plan(vec![change("Deployment", "agent-b", Some("b"))]),
            &waves,
        );
        assert_eq!(batches.len(), 1);
        assert_eq!(batches[0].roles, ["b"]);
        // It keeps its number: the second wave.
        assert_eq!(batches[0].wave, Some(1));
        assert!(split(&plan(Vec::new()), &waves).is_empty());
    }
}
