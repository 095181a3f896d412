//! Targeting: the agents a plan covers (`--agent`, `--exclude`, `--select`).
//!
//! A targeted plan compares only the selected agents' objects, and keeps of
//! its changes those of the selected agents and what they cannot live
//! without: the Namespace and the stream of their consumers when these do
//! not exist yet, and the ApplySet parent, whose record of kinds only ever
//! grows in a targeted apply (the objects of agents left out stay in the
//! inventory). Everything else (other agents, changes of what the agents
//! share, objects and consumers of no agent) waits for an untargeted apply.
//!
//! Pure: the plan's I/O is in `deploy::plan`.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Action, Change, Target};
use crate::model::{Agent, NodeOperator};
use crate::ownership;
use crate::render::{DesiredObject, ObjectRef};

/// The targeting flags, as given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selection {
    /// `--agent ROLE`: only these agents.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub agents: Vec<String>,
    /// `--exclude ROLE`: not these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    /// `--select KEY=VALUE`: only agents with all these labels.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub select: Vec<String>,
}

impl Selection {
    /// No flag given: the whole fleet.
    pub fn is_everything(&self) -> bool {
        self.agents.is_empty() && self.exclude.is_empty() && self.select.is_empty()
    }

    /// Whether an agent with `role` and `labels` (see [`agent_labels`]) is
    /// selected.
    pub fn includes(&self, role: &str, labels: &BTreeMap<String, String>) -> bool {
        let named = |roles: &[String]| roles.iter().any(|r| r == role);
        (self.agents.is_empty() || named(&self.agents))
            && !named(&self.exclude)
            && self.select.iter().all(|pair| {
                pair.split_once('=')
                    .is_some_and(|(key, value)| labels.get(key).is_some_and(|v| v == value))
            })
    }

    /// The flags again, for messages: `--agent devops --select tier=ops`.
    pub fn flags(&self) -> String {
        let mut flags = Vec::new();
        for (flag, values) in [
            ("--agent", &self.agents),
            ("--exclude", &self.exclude),
            ("--select", &self.select),
        ] {
            flags.extend(values.iter().map(|v| format!("{flag} {v}")));
        }
        flags.join(" ")
    }
}

/// `KEY=VALUE` for `--select`, checked.
pub fn parse_select(text: &str) -> Result<String, String> {
    match text.split_once('=') {
        Some((key, _)) if !key.is_empty() => Ok(text.to_string()),
        _ => Err(format!(
            "`{text}` is not KEY=VALUE (e.g. tier=operations, role=devops)"
        )),
    }
}

/// What `--select` matches an agent by: `role`, `tier`, its own `labels`,
/// and each node label its placement requires one value of (e.g.
/// `agent.ceo/workload-type=cognitive`).
pub fn agent_labels(agent: &Agent) -> BTreeMap<String, String> {
    let mut labels = agent.labels.clone();
    for (key, requirement) in &agent.placement.node_affinity {
        if let (NodeOperator::In, [value]) = (requirement.operator, &requirement.values[..]) {
            labels.insert(key.clone(), value.clone());
        }
    }
    labels.insert("role".into(), agent.role.clone());
    if let Some(tier) = &agent.tier {
        labels.insert("tier".into(), tier.clone());
    }
    labels
}

/// Who a targeted plan covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Targeting {
    /// The flags it was made with.
    pub selection: Selection,
    /// The agents planned.
    pub agents: Vec<String>,
    /// The agents left out: of the definition, and removed ones still live.
    pub left_out: Vec<String>,
}

/// The agents `selection` covers, of those in the definition (`defined`, with
/// their labels) and of those only live (`removed`, by role: a removed
/// agent has no labels to select it by but its role). Fails naming the
/// agents there are when a role given is none of them, or when nothing is
/// selected.
pub fn resolve(
    selection: &Selection,
    defined: &BTreeMap<String, BTreeMap<String, String>>,
    removed: &BTreeSet<String>,
) -> anyhow::Result<Targeting> {
    let known = |role: &String| defined.contains_key(role) || removed.contains(role);
    if let Some(unknown) = selection
        .agents
        .iter()
        .chain(&selection.exclude)
        .find(|role| !known(role))
    {
        let mut roles: Vec<&str> = defined.keys().map(String::as_str).collect();
        roles.extend(removed.iter().map(|r| r.as_str()));
        roles.sort();
        anyhow::bail!(
            "there is no agent `{unknown}` in the definition or in the cluster (agents: {})",
            roles.join(", ")
        );
    }
    let mut agents = Vec::new();
    let mut left_out = Vec::new();
    let removed_labels = |role: &str| BTreeMap::from([("role".to_string(), role.to_string())]);
    let all = defined
        .iter()
        .map(|(role, labels)| (role.clone(), labels.clone()))
        .chain(
            removed
                .iter()
                .map(|role| (role.clone(), removed_labels(role))),
        );
    for (role, labels) in all {
        if selection.includes(&role, &labels) {
            agents.push(role);
        } else {
            left_out.push(role);
        }
    }
    agents.sort();
    left_out.sort();
    if agents.is_empty() {
        anyhow::bail!("{} selects no agent", selection.flags());
    }
    Ok(Targeting {
        selection: selection.clone(),
        agents,
        left_out,
    })
}

/// The desired objects a targeted plan compares: the selected agents' and
/// those of no agent (the Namespace, the ApplySet parent), with the parent's
/// kinds made the union of the definition's and the live parent's, and its
/// inventory hash the live one's (the inventory as a whole was not applied).
pub fn desired(
    desired: &[DesiredObject],
    agents: &[String],
    role_label: &str,
    live_parent: Option<&Value>,
) -> Vec<DesiredObject> {
    desired
        .iter()
        .filter(
            |o| match o.body["metadata"]["labels"][role_label].as_str() {
                Some(role) => agents.iter().any(|a| a == role),
                None => true,
            },
        )
        .map(|o| {
            if o.is_applyset_parent() {
                targeted_parent(o, live_parent)
            } else {
                o.clone()
            }
        })
        .collect()
}

fn targeted_parent(parent: &DesiredObject, live: Option<&Value>) -> DesiredObject {
    let annotation = |body: &Value, key: &str| {
        body["metadata"]["annotations"][key]
            .as_str()
            .map(str::to_string)
    };
    let mut body = parent.body.clone();
    if let Some(annotations) = body["metadata"]["annotations"].as_object_mut() {
        annotations.remove(ownership::APPLIED_HASH_ANNOTATION);
    }
    let kinds: BTreeSet<String> = [Some(&parent.body), live]
        .into_iter()
        .flatten()
        .filter_map(|b| annotation(b, ownership::APPLYSET_KINDS_ANNOTATION))
        .flat_map(|kinds| {
            kinds
                .split(',')
                .filter(|k| !k.is_empty())
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    let annotations = &mut body["metadata"]["annotations"];
    annotations[ownership::APPLYSET_KINDS_ANNOTATION] =
        Value::from(kinds.into_iter().collect::<Vec<_>>().join(","));
    let live_hash = live.and_then(|b| annotation(b, ownership::INVENTORY_HASH_ANNOTATION));
    match (live_hash, annotations.as_object_mut()) {
        (Some(hash), _) => annotations[ownership::INVENTORY_HASH_ANNOTATION] = Value::from(hash),
        (None, Some(map)) => {
            map.remove(ownership::INVENTORY_HASH_ANNOTATION);
        }
        (None, None) => {}
    }
    // What fleet applies is this body: its hash says so, or the next
    // untargeted plan would take the parent's difference for a hand edit.
    ownership::stamp_object(&mut body);
    DesiredObject::from_json(body)
}

/// The changes a targeted plan keeps (see the module comment). `streams`
/// are those the selected agents consume from.
pub fn keep(
    changes: Vec<Change>,
    agents: &[String],
    parent: &ObjectRef,
    streams: &BTreeSet<String>,
) -> Vec<Change> {
    changes
        .into_iter()
        .filter(|change| match &change.agent {
            Some(role) => agents.contains(role),
            None => match &change.target {
                Target::Kubernetes(id) => {
                    id == parent || (id.kind == "Namespace" && change.action == Action::Create)
                }
                Target::Stream { name } => {
                    change.action == Action::Create && streams.contains(name)
                }
                Target::Consumer { .. } => false,
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::render::Wave;

    fn selection(agents: &[&str], exclude: &[&str], select: &[&str]) -> Selection {
        let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        Selection {
            agents: strings(agents),
            exclude: strings(exclude),
            select: strings(select),
        }
    }

    fn labels(role: &str, tier: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("role".to_string(), role.to_string()),
            ("tier".to_string(), tier.to_string()),
        ])
    }

    fn fleet() -> BTreeMap<String, BTreeMap<String, String>> {
        ["devops", "observer", "reviewer"]
            .into_iter()
            .zip(["operations", "operations", "engineering"])
            .map(|(role, tier)| (role.to_string(), labels(role, tier)))
            .collect()
    }

    #[test]
    fn agents_excludes_and_label_selections_combine() {
        let removed = BTreeSet::from(["gone".to_string()]);
        let agents = |s: Selection| resolve(&s, &fleet(), &removed).unwrap().agents;
        assert_eq!(agents(selection(&["devops"], &[], &[])), ["devops"]);
        assert_eq!(
            agents(selection(&[], &["devops"], &[])),
            ["gone", "observer", "reviewer"]
        );
        assert_eq!(
            agents(selection(&[], &[], &["tier=operations"])),
            ["devops", "observer"]
        );
        assert_eq!(
            agents(selection(&[], &["observer"], &["tier=operations"])),
            ["devops"]
        );
        // A removed agent is selected by its role, to prune it.
        assert_eq!(agents(selection(&["gone"], &[], &[])), ["gone"]);
        let targeting = resolve(&selection(&["devops"], &[], &[]), &fleet(), &removed).unwrap();
        assert_eq!(targeting.left_out, ["gone", "observer", "reviewer"]);
    }

    #[test]
    fn an_unknown_role_or_an_empty_selection_is_refused() {
        let none = BTreeSet::new();
        let err = resolve(&selection(&["devop"], &[], &[]), &fleet(), &none).unwrap_err();
        assert_eq!(
            err.to_string(),
            "there is no agent `devop` in the definition or in the cluster (agents: devops, observer, reviewer)"
        );
        let err = resolve(&selection(&[], &[], &["tier=nope"]), &fleet(), &none).unwrap_err();
        assert_eq!(err.to_string(), "--select tier=nope selects no agent");
        assert!(parse_select("tier").is_err());
        assert!(parse_select("=x").is_err());
        assert_eq!(parse_select("a/b=c=d").unwrap(), "a/b=c=d");
    }

    fn object(kind: &str, name: &str, role: Option<&str>) -> DesiredObject {
        let mut body = json!({
            "apiVersion": "v1", "kind": kind,
            "metadata": { "name": name, "namespace": "ns", "labels": {} },
        });
        if let Some(role) = role {
            body["metadata"]["labels"]["agent.ceo/role"] = json!(role);
        }
        DesiredObject::from_json(body)
    }

    #[test]
    fn the_parents_kinds_only_grow_and_its_inventory_stays_the_live_one() {
        let mut parent = object("Secret", "applyset-x", None);
        parent.body["metadata"]["labels"][ownership::APPLYSET_ID_LABEL] = json!("applyset-id");
        parent.body["metadata"]["annotations"] = json!({
            ownership::APPLYSET_KINDS_ANNOTATION: "ConfigMap,Deployment.apps",
            ownership::INVENTORY_HASH_ANNOTATION: "new",
        });
        let parent = DesiredObject::from_json(parent.body);
        assert!(parent.is_applyset_parent());
        let live = json!({ "metadata": { "annotations": {
            ownership::APPLYSET_KINDS_ANNOTATION: "ConfigMap,PodDisruptionBudget.policy",
            ownership::INVENTORY_HASH_ANNOTATION: "old",
        } } });
        let all = [
            parent,
            object("ConfigMap", "agent-a", Some("a")),
            object("ConfigMap", "agent-b", Some("b")),
            object("Namespace", "ns", None),
        ];
        let targeted = desired(&all, &["a".to_string()], "agent.ceo/role", Some(&live));
        let names: Vec<&str> = targeted.iter().map(|o| o.id.name.as_str()).collect();
        assert_eq!(names, ["applyset-x", "agent-a", "ns"]);
        let annotations = &targeted[0].body["metadata"]["annotations"];
        assert_eq!(
            annotations[ownership::APPLYSET_KINDS_ANNOTATION],
            "ConfigMap,Deployment.apps,PodDisruptionBudget.policy"
        );
        assert_eq!(annotations[ownership::INVENTORY_HASH_ANNOTATION], "old");
        let mut restamped = targeted[0].body.clone();
        restamped["metadata"]["annotations"]
            .as_object_mut()
            .unwrap()
            .remove(ownership::APPLIED_HASH_ANNOTATION);
        ownership::stamp_object(&mut restamped);
        assert_eq!(restamped, targeted[0].body, "stamped with its own hash");
        // A first apply has no live parent, hence no inventory yet.
        let first = desired(&all, &["a".to_string()], "agent.ceo/role", None);
        assert!(
            first[0].body["metadata"]["annotations"]
                .get(ownership::INVENTORY_HASH_ANNOTATION)
                .is_none()
        );
    }

    #[test]
    fn only_the_selected_agents_changes_and_what_they_need_are_kept() {
        let kube = |kind: &str, name: &str| {
            Target::Kubernetes(ObjectRef {
                api_version: "v1".into(),
                kind: kind.into(),
                namespace: Some("ns".into()),
                name: name.into(),
            })
        };
        let change = |target: Target, action: Action, agent: Option<&str>| Change {
            agent: agent.map(str::to_string),
            ..Change::new(target, action, Wave::Workloads)
        };
        let stream = |name: &str| Target::Stream { name: name.into() };
        let parent = ObjectRef {
            api_version: "v1".into(),
            kind: "Secret".into(),
            namespace: Some("ns".into()),
            name: "applyset-x".into(),
        };
        let changes = vec![
            change(kube("ConfigMap", "agent-a"), Action::Update, Some("a")),
            change(kube("ConfigMap", "agent-b"), Action::Update, Some("b")),
            change(
                kube("ConfigMap", "agent-gone"),
                Action::Delete,
                Some("gone"),
            ),
            change(kube("Namespace", "ns"), Action::Create, None),
            change(Target::Kubernetes(parent.clone()), Action::Update, None),
            change(kube("ConfigMap", "orphan"), Action::Delete, None),
            change(stream("tasks"), Action::Create, None),
            change(stream("audit"), Action::Create, None),
            change(stream("shared"), Action::Update, None),
            change(
                Target::Consumer {
                    stream: "old".into(),
                    name: "x".into(),
                },
                Action::Delete,
                None,
            ),
        ];
        let streams = BTreeSet::from(["tasks".to_string(), "shared".to_string()]);
        let kept = keep(changes, &["a".to_string()], &parent, &streams);
        let kept: Vec<String> = kept.iter().map(|c| c.target.to_string()).collect();
        assert_eq!(
            kept,
            [
                "ConfigMap ns/agent-a",
                "Namespace ns/ns",
                "Secret ns/applyset-x",
                "jetstream stream tasks"
            ]
        );
    }
}
