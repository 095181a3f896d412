//! Planning a tear-down (`fleet plan --destroy`, `fleet destroy`): every
//! object fleet owns in the namespace is destroyed, found by its ownership
//! labels as a prune finds what the definition dropped; then the ApplySet
//! parent, the deploy lock's Lease and the namespace itself, but the
//! namespace only when fleet made it and it holds nothing fleet does not
//! own. Whatever cannot be told is left standing, and the plan says why.
//! Pure but for [`plan`], which asks the API server which deletions this
//! identity may make.

use std::collections::BTreeSet;

use serde_json::Value;

use super::diff::unified_diff;
use super::kube::{Planned, block_writes_not_allowed};
use super::{Action, Change, Target};
use crate::client::kube::Cluster;
use crate::live::kube::{LiveState, NamespaceState, Resident};
use crate::ownership;
use crate::render::{ObjectRef, Wave};

/// Objects listed in a namespace left standing, at most: the rest are counted.
const NAMED_AT_MOST: usize = 5;

/// What a tear-down plan needs besides the live state.
pub struct Teardown<'a> {
    pub namespace: &'a str,
    pub applyset_id: &'a str,
    /// Fleet renders the namespace (`[fleet] manage_namespace`).
    pub manages_namespace: bool,
    /// The deploy lock's Lease, when it exists.
    pub lease: Option<ObjectRef>,
    /// Everything the namespace holds, of every kind this identity may
    /// list, or why that cannot be known; `None` when not read (the
    /// namespace is not fleet's, or is missing).
    pub residents: Option<Result<Vec<Resident>, String>>,
}

/// The tear-down: deletions, in the order apply makes them, and notes on
/// what is left standing and why.
pub async fn plan(
    cluster: &Cluster,
    live: &LiveState,
    teardown: &Teardown<'_>,
    concurrency: usize,
) -> (Planned, Vec<String>) {
    let (mut changes, notes) = changes(live, teardown);
    block_writes_not_allowed(cluster, live, &mut changes, concurrency).await;
    (
        Planned {
            changes,
            ..Planned::default()
        },
        notes,
    )
}

/// Pure: the deletions of everything fleet owns in the namespace, and the
/// notes on what stays.
pub fn changes(live: &LiveState, teardown: &Teardown<'_>) -> (Vec<Change>, Vec<String>) {
    let mut changes = Vec::new();
    let mut notes = Vec::new();
    let namespace_id = ObjectRef {
        api_version: "v1".into(),
        kind: "Namespace".into(),
        namespace: None,
        name: teardown.namespace.to_string(),
    };
    let live_namespace = live
        .owned
        .get(&namespace_id)
        .or_else(|| live.unowned.get(&namespace_id));
    if live_namespace.is_some_and(being_deleted) {
        notes.push(format!(
            "namespace {} is being deleted already (Terminating): what is left in it goes with it, so nothing in it is planned",
            teardown.namespace
        ));
        return (changes, notes);
    }
    for (id, object) in &live.owned {
        if id == &namespace_id || being_deleted(object) {
            continue;
        }
        let mut change = Change::new(
            Target::Kubernetes(id.clone()),
            Action::Delete,
            Wave::of_kind(&id.kind),
        );
        if is_parent(id, object, teardown.applyset_id) {
            change.reason = Some(
                "the ApplySet parent, which lists what fleet owns: destroyed after everything else it lists"
                    .into(),
            );
        }
        change.diff = Some(unified_diff(&id.kind, Some(object), None));
        changes.push(change);
    }
    let namespace_goes = match namespace_verdict(live, live_namespace, teardown) {
        Ok(()) => true,
        Err(Some(why)) => {
            notes.push(format!(
                "namespace {} is left standing: {why}",
                teardown.namespace
            ));
            false
        }
        Err(None) => false,
    };
    if let Some(lease) = &teardown.lease {
        let mut change = Change::new(
            Target::Kubernetes(lease.clone()),
            Action::Delete,
            Wave::Namespace,
        );
        change.reason = Some(
            "the deploy lock: deleted once this destroy is done with it, instead of released"
                .into(),
        );
        changes.push(change);
    }
    if namespace_goes {
        let mut change = Change::new(
            Target::Kubernetes(namespace_id.clone()),
            Action::Delete,
            Wave::Namespace,
        );
        change.reason = Some(
            "fleet made it and it holds nothing else; deleted last, it is Terminating until the namespace controller has removed what is left (pods, endpoints, events)"
                .into(),
        );
        if let Some(object) = live_namespace {
            change.diff = Some(unified_diff("Namespace", Some(object), None));
        }
        changes.push(change);
    }
    (changes, notes)
}

/// Whether the namespace goes: `Ok` when fleet made it and it holds nothing
/// fleet does not own; else why not (`None` when there is no namespace to
/// say anything of).
fn namespace_verdict(
    live: &LiveState,
    live_namespace: Option<&Value>,
    teardown: &Teardown<'_>,
) -> Result<(), Option<String>> {
    if live.namespace == NamespaceState::Missing {
        return Err(None);
    }
    if !teardown.manages_namespace {
        return Err(Some(
            "fleet does not manage it ([fleet] manage_namespace = false)".into(),
        ));
    }
    let Some(namespace) = live_namespace else {
        return Err(Some(
            "fleet could not read it, so cannot tell it is fleet's".into(),
        ));
    };
    if !crate::live::kube::is_owned(namespace, teardown.applyset_id) {
        return Err(Some(format!(
            "it is not fleet's: it carries no `{}: {}` label, so someone else made it",
            ownership::PART_OF_LABEL,
            teardown.applyset_id
        )));
    }
    let residents = match &teardown.residents {
        Some(Ok(residents)) => residents,
        Some(Err(why)) => {
            return Err(Some(format!(
                "fleet cannot tell whether it holds objects fleet does not own ({why}), and deleting it would delete them too"
            )));
        }
        None => {
            return Err(Some(
                "what it holds was not read, so fleet cannot tell it holds nothing else".into(),
            ));
        }
    };
    let lease_name = teardown.lease.as_ref().map(|l| l.name.as_str());
    let foreign = foreign(residents, teardown.applyset_id, lease_name);
    if foreign.is_empty() {
        return Ok(());
    }
    let mut named: Vec<String> = foreign
        .iter()
        .take(NAMED_AT_MOST)
        .map(|id| id.to_string())
        .collect();
    if foreign.len() > NAMED_AT_MOST {
        named.push(format!("and {} more", foreign.len() - NAMED_AT_MOST));
    }
    Err(Some(format!(
        "it holds {} fleet does not own, which deleting it would delete too: {}. Remove {} first (or keep the namespace)",
        if foreign.len() == 1 {
            "1 object".to_string()
        } else {
            format!("{} objects", foreign.len())
        },
        named.join(", "),
        if foreign.len() == 1 { "it" } else { "them" },
    )))
}

/// The residents that are neither fleet's (its ownership labels, its
/// deploy lock) nor made from fleet's (by ownerReferences, to any depth:
/// a Deployment's ReplicaSets and pods, a Service's EndpointSlices), nor
/// what Kubernetes puts in every namespace.
pub fn foreign<'a>(
    residents: &'a [Resident],
    applyset_id: &str,
    lease: Option<&str>,
) -> Vec<&'a ObjectRef> {
    let fleets = |r: &Resident| {
        r.labels
            .get(ownership::PART_OF_LABEL)
            .and_then(Value::as_str)
            == Some(applyset_id)
            || r.labels
                .get(ownership::APPLYSET_ID_LABEL)
                .and_then(Value::as_str)
                == Some(applyset_id)
            || (r.id.kind == "Lease" && Some(r.id.name.as_str()) == lease)
            || is_kubernetes_own(&r.id)
    };
    let mut goes: BTreeSet<&str> = residents
        .iter()
        .filter(|r| fleets(r))
        .map(|r| r.uid.as_str())
        .collect();
    // Owned by what goes, it goes too (the garbage collector), to a fixpoint.
    loop {
        let before = goes.len();
        for resident in residents {
            if resident.owners.iter().any(|o| goes.contains(o.as_str())) {
                goes.insert(&resident.uid);
            }
        }
        if goes.len() == before {
            break;
        }
    }
    let mut foreign: Vec<&ObjectRef> = residents
        .iter()
        .filter(|r| !goes.contains(r.uid.as_str()))
        .map(|r| &r.id)
        .collect();
    foreign.sort();
    foreign
}

/// What Kubernetes' controllers put in every namespace.
fn is_kubernetes_own(id: &ObjectRef) -> bool {
    matches!(
        (id.kind.as_str(), id.name.as_str()),
        ("ConfigMap", "kube-root-ca.crt") | ("ServiceAccount", "default")
    )
}

fn being_deleted(object: &Value) -> bool {
    object["metadata"]["deletionTimestamp"].is_string()
}

fn is_parent(id: &ObjectRef, object: &Value, applyset_id: &str) -> bool {
    id.kind == "Secret"
        && object["metadata"]["labels"][ownership::APPLYSET_ID_LABEL].as_str() == Some(applyset_id)
}

/// The order a tear-down is carried out, for the plan to read in: what
/// depends on others first (the apply waves in reverse), consumers before
/// their streams, the ApplySet parent after all it lists, then the lock's
/// Lease and the namespace.
pub fn sort(changes: &mut [Change]) {
    changes.sort_by(|a, b| rank(a).cmp(&rank(b)).then_with(|| a.target.cmp(&b.target)));
}

fn rank(change: &Change) -> u8 {
    match &change.target {
        Target::Consumer { .. } => 5,
        Target::Stream { .. } => 6,
        Target::Kubernetes(id) => match (Wave::of_kind(&id.kind), id.kind.as_str()) {
            (_, "Lease") => 9,
            (_, "Namespace") => 10,
            (_, "Secret") => 8,
            (Wave::Policy, _) => 1,
            (Wave::Workloads, _) => 2,
            (Wave::Network, _) => 3,
            (Wave::JetStream, _) => 4,
            (Wave::Configuration, _) => 7,
            (Wave::Namespace, _) => 10,
        },
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const SET: &str = "applyset-abc-v1";

    fn id(kind: &str, name: &str) -> ObjectRef {
        ObjectRef {
            api_version: if kind == "Namespace" || kind == "ConfigMap" || kind == "Secret" {
                "v1".into()
            } else {
                "apps/v1".into()
            },
            kind: kind.into(),
            namespace: (kind != "Namespace").then(|| "agents".to_string()),
            name: name.into(),
        }
    }

    fn resident(kind: &str, name: &str, fleets: bool, owners: &[&str]) -> Resident {
        let labels = if fleets {
            json!({ ownership::PART_OF_LABEL: SET })
        } else {
            json!({ "app": "x" })
        };
        Resident {
            id: id(kind, name),
            uid: format!("uid-{name}"),
            labels: labels.as_object().unwrap().clone(),
            owners: owners.iter().map(|o| format!("uid-{o}")).collect(),
        }
    }

    #[test]
    fn what_fleet_made_or_what_was_made_from_it_is_not_foreign() {
        let residents = vec![
            resident("Deployment", "agent-devops", true, &[]),
            resident("ReplicaSet", "agent-devops-5d8", false, &["agent-devops"]),
            resident("Pod", "agent-devops-5d8-x", false, &["agent-devops-5d8"]),
            resident("ConfigMap", "kube-root-ca.crt", false, &[]),
            resident("ServiceAccount", "default", false, &[]),
            resident("Lease", "fleet-agent-ceo", false, &[]),
            resident("ConfigMap", "hand-made", false, &[]),
            resident("Pod", "debug", false, &["hand-made-rs"]),
        ];
        let foreign = foreign(&residents, SET, Some("fleet-agent-ceo"));
        let names: Vec<&str> = foreign.iter().map(|id| id.name.as_str()).collect();
        assert_eq!(names, ["debug", "hand-made"]);
        // Another fleet's objects in the same namespace are not this one's.
        let other = vec![resident("Deployment", "x", false, &[])];
        assert_eq!(super::foreign(&other, SET, None).len(), 1);
    }

    fn live_with_namespace(labels: Value) -> LiveState {
        let mut live = LiveState::default();
        live.owned.insert(
            id("Deployment", "agent-devops"),
            json!({ "metadata": { "name": "agent-devops", "labels": { ownership::PART_OF_LABEL: SET } } }),
        );
        live.owned.insert(
            id("Secret", "fleet-agent-ceo"),
            json!({ "metadata": { "name": "fleet-agent-ceo", "labels": { ownership::APPLYSET_ID_LABEL: SET } } }),
        );
        let namespace = json!({ "metadata": { "name": "agents", "labels": labels } });
        if crate::live::kube::is_owned(&namespace, SET) {
            live.owned.insert(id("Namespace", "agents"), namespace);
        } else {
            live.unowned.insert(id("Namespace", "agents"), namespace);
        }
        live
    }

    fn teardown(residents: Option<Result<Vec<Resident>, String>>) -> Teardown<'static> {
        Teardown {
            namespace: "agents",
            applyset_id: SET,
            manages_namespace: true,
            lease: Some(ObjectRef {
                api_version: "coordination.k8s.io/v1".into(),
                kind: "Lease".into(),
                namespace: Some("agents".into()),
                name: "fleet-agent-ceo".into(),
            }),
            residents,
        }
    }

    fn targets(changes: &[Change]) -> Vec<String> {
        let mut changes = changes.to_vec();
        sort(&mut changes);
        changes.iter().map(|c| c.target.to_string()).collect()
    }

    #[test]
    fn an_empty_namespace_fleet_made_goes_last_after_the_parent_and_the_lease() {
        let live = live_with_namespace(json!({ ownership::PART_OF_LABEL: SET }));
        let residents = vec![resident("ConfigMap", "kube-root-ca.crt", false, &[])];
        let (changes, notes) = super::changes(&live, &teardown(Some(Ok(residents))));
        assert_eq!(
            targets(&changes),
            [
                "Deployment agents/agent-devops",
                "Secret agents/fleet-agent-ceo",
                "Lease agents/fleet-agent-ceo",
                "Namespace agents",
            ]
        );
        assert!(notes.is_empty(), "{notes:?}");
        assert!(changes.iter().all(|c| c.action == Action::Delete));
    }

    #[test]
    fn a_namespace_holding_anything_else_or_not_known_stays_and_says_why() {
        let live = live_with_namespace(json!({ ownership::PART_OF_LABEL: SET }));
        let hand_made = vec![resident("ConfigMap", "hand-made", false, &[])];
        let (changes, notes) = super::changes(&live, &teardown(Some(Ok(hand_made))));
        assert!(!targets(&changes).contains(&"Namespace agents".to_string()));
        assert_eq!(
            notes,
            [
                "namespace agents is left standing: it holds 1 object fleet does not own, which deleting it would delete too: ConfigMap agents/hand-made. Remove it first (or keep the namespace)"
            ]
        );

        let unknown = Err("this identity may not list secrets".to_string());
        let (changes, notes) = super::changes(&live, &teardown(Some(unknown)));
        assert!(!targets(&changes).contains(&"Namespace agents".to_string()));
        assert!(
            notes[0].contains("fleet cannot tell whether it holds objects fleet does not own (this identity may not list secrets)"),
            "{notes:?}"
        );

        // Made by someone else: never fleet's to delete.
        let theirs = live_with_namespace(json!({ "team": "a" }));
        let (changes, notes) = super::changes(&theirs, &teardown(Some(Ok(Vec::new()))));
        assert_eq!(targets(&changes).len(), 3, "{changes:?}");
        assert!(notes[0].contains("it is not fleet's"), "{notes:?}");

        let mut unmanaged = teardown(Some(Ok(Vec::new())));
        unmanaged.manages_namespace = false;
        let (_, notes) = super::changes(&live, &unmanaged);
        assert!(notes[0].contains("manage_namespace = false"), "{notes:?}");
    }

    #[test]
    fn nothing_is_planned_in_a_namespace_being_deleted_or_missing() {
        let mut live = live_with_namespace(json!({ ownership::PART_OF_LABEL: SET }));
        live.owned.get_mut(&id("Namespace", "agents")).unwrap()["metadata"]["deletionTimestamp"] =
            json!("2026-12-05T14:00:00Z");
        let (changes, notes) = super::changes(&live, &teardown(Some(Ok(Vec::new()))));
        assert!(changes.is_empty(), "{changes:?}");
        assert!(notes[0].contains("being deleted already"), "{notes:?}");

        let mut gone = LiveState {
            namespace: NamespaceState::Missing,
            ..LiveState::default()
        };
        gone.kinds.clear();
        let mut nothing = teardown(None);
        nothing.lease = None;
        let (changes, notes) = super::changes(&gone, &nothing);
        assert!(
            changes.is_empty() && notes.is_empty(),
            "{changes:?} {notes:?}"
        );
    }
}
