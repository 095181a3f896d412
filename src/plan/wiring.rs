//! The plan's autoscaling wiring checks: for each autoscaled agent, why it
//! would not scale though everything applies (the failures KEDA and
//! prometheus-adapter users report most). Notes, not refusals: fleet applies
//! what is asked and says what will not work.
//!
//! Pure: the desired objects, what the cluster serves, and what
//! [`crate::live::kube::read_wiring`] read.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{Node, PodSpec};
use serde_json::Value;

use super::fit;
use crate::live::jetstream::LiveJetStream;
use crate::live::kube::{EXTERNAL_METRICS_GROUP, WiringState};
use crate::plan::{Change, Target};
use crate::render::DesiredObject;

/// Every wiring note, in the order: metrics APIs, external metrics, KEDA,
/// room on the nodes.
pub fn notes(
    desired: &[DesiredObject],
    served_groups: &BTreeSet<String>,
    missing_kinds: &BTreeSet<(String, String)>,
    wiring: &WiringState,
) -> Vec<String> {
    let mut notes = unreadable_metrics(desired, served_groups);
    notes.extend(external_answers(wiring));
    notes.extend(keda(desired, served_groups, missing_kinds));
    if let Some(nodes) = &wiring.nodes {
        notes.extend(room(desired, nodes));
    }
    notes
}

/// Notes for autoscalers that could never read a metric: an External metric
/// (the NATS pending count of fleet's HPA) needs an adapter serving
/// `external.metrics.k8s.io`, a Resource metric (memory, CPU; KEDA's `memory`
/// and `cpu` triggers too) needs `metrics.k8s.io` (metrics-server). Without
/// them the autoscaler shows `<unknown>` for that metric, and an HPA skips
/// every scale down while any of its metrics is unreadable.
pub fn unreadable_metrics(
    desired: &[DesiredObject],
    served_groups: &BTreeSet<String>,
) -> Vec<String> {
    let mut notes = Vec::new();
    let hpas_with = |metric_type: &str| -> Vec<&str> {
        desired
            .iter()
            .filter(|o| o.id.kind == "HorizontalPodAutoscaler")
            .filter(|o| {
                o.body["spec"]["metrics"]
                    .as_array()
                    .is_some_and(|m| m.iter().any(|m| m["type"] == metric_type))
            })
            .map(|o| o.id.name.as_str())
            .collect()
    };
    if !served_groups.contains(EXTERNAL_METRICS_GROUP) {
        let hpas = hpas_with("External");
        if !hpas.is_empty() {
            notes.push(format!(
                "the cluster serves no {EXTERNAL_METRICS_GROUP} API, so {} can never read the NATS pending count and will not scale on it; install an external metrics adapter (e.g. prometheus-adapter) serving it, or use `autoscaling.engine = \"keda\"` with KEDA",
                hpas.join(", "),
            ));
        }
    }
    if !served_groups.contains("metrics.k8s.io") {
        let mut autoscalers = hpas_with("Resource");
        autoscalers.extend(
            desired
                .iter()
                .filter(|o| o.id.kind == "ScaledObject")
                .filter(|o| {
                    o.body["spec"]["triggers"].as_array().is_some_and(|t| {
                        t.iter()
                            .any(|t| t["type"] == "memory" || t["type"] == "cpu")
                    })
                })
                .map(|o| o.id.name.as_str()),
        );
        if !autoscalers.is_empty() {
            notes.push(format!(
                "the cluster serves no metrics.k8s.io API, so {} can never read memory or CPU use and will never scale down (an HPA skips a scale down while any of its metrics is unreadable); install metrics-server, or drop `memory_utilization` and `cpu_utilization`",
                autoscalers.join(", "),
            ));
        }
    }
    notes
}

/// What the external metrics API answered for each HPA's External metric:
/// its value, or why the HPA will never read one.
fn external_answers(wiring: &WiringState) -> Vec<String> {
    wiring
        .external
        .iter()
        .map(|((hpa, metric, selector), answer)| match answer {
            Ok(value) => format!(
                "{hpa} reads {metric}{{{selector}}} = {value} from the external metrics API"
            ),
            Err(message) => format!(
                "{hpa} will not scale on {metric}{{{selector}}}: the external metrics API answered \"{message}\". Nothing serves that metric with that selector: an adapter such as prometheus-adapter must (KEDA serves only the metrics of its own ScaledObjects: with KEDA, set the agent's `autoscaling.engine = \"keda\"`)"
            ),
        })
        .collect()
}

/// ScaledObjects that cannot work: KEDA not installed, its metrics API not
/// served, an account given by name.
fn keda(
    desired: &[DesiredObject],
    served_groups: &BTreeSet<String>,
    missing_kinds: &BTreeSet<(String, String)>,
) -> Vec<String> {
    let scaled: Vec<&DesiredObject> = desired
        .iter()
        .filter(|o| o.id.kind == "ScaledObject")
        .collect();
    if scaled.is_empty() {
        return Vec::new();
    }
    let names = scaled
        .iter()
        .map(|o| o.id.name.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let mut notes = Vec::new();
    if missing_kinds.contains(&("keda.sh/v1alpha1".into(), "ScaledObject".into())) {
        notes.push(format!(
            "{names} will not scale: KEDA is not installed (the cluster serves no ScaledObject, keda.sh/v1alpha1); install KEDA, or set `autoscaling.engine = \"hpa\"`"
        ));
    } else if !served_groups.contains(EXTERNAL_METRICS_GROUP) {
        notes.push(format!(
            "{names} will not scale on pending tasks: the cluster serves no {EXTERNAL_METRICS_GROUP} API, which KEDA's metrics API server (keda-operator-metrics-apiserver) provides; check its APIService v1beta1.{EXTERNAL_METRICS_GROUP}"
        ));
    }
    let accounts: BTreeSet<&str> = scaled
        .iter()
        .flat_map(|o| o.body["spec"]["triggers"].as_array().into_iter().flatten())
        .filter(|t| t["type"] == "nats-jetstream")
        .filter_map(|t| t["metadata"]["account"].as_str())
        .filter(|account| *account != "$G" && !is_account_id(account))
        .collect();
    for account in accounts {
        notes.push(format!(
            "KEDA finds NATS account `{account}` by the name the server's /jsz reports: a server in operator mode (JWT) reports accounts by their public key (A..., 56 characters), so give that as `nats_account` there"
        ));
    }
    notes
}

/// ScaledObjects whose trigger names a stream or consumer that will not
/// exist once this plan is applied (its creation is blocked): KEDA's scaler
/// then reads no count and the agent holds its replicas.
pub fn triggers_without_their_consumer(
    desired: &[DesiredObject],
    changes: &[Change],
    live: &LiveJetStream,
) -> Vec<String> {
    let mut notes = Vec::new();
    for scaled in desired.iter().filter(|o| o.id.kind == "ScaledObject") {
        let triggers = scaled.body["spec"]["triggers"]
            .as_array()
            .into_iter()
            .flatten();
        for metadata in triggers
            .filter(|t| t["type"] == "nats-jetstream")
            .map(|t| &t["metadata"])
        {
            let (Some(stream), Some(consumer)) =
                (metadata["stream"].as_str(), metadata["consumer"].as_str())
            else {
                continue;
            };
            let live_stream = live.get(stream);
            let missing = [
                (
                    Target::Stream {
                        name: stream.into(),
                    },
                    format!("stream {stream}"),
                    live_stream.is_some(),
                ),
                (
                    Target::Consumer {
                        stream: stream.into(),
                        name: consumer.into(),
                    },
                    format!("consumer {stream}/{consumer}"),
                    live_stream.is_some_and(|s| s.consumers.contains_key(consumer)),
                ),
            ]
            .into_iter()
            .find_map(|(target, what, exists)| {
                let change = changes.iter().find(|c| c.target == target);
                match change {
                    Some(Change {
                        blocked: Some(blocked),
                        ..
                    }) if !exists => Some(format!("{what} is not created: {}", blocked.reason)),
                    None if !exists => Some(format!("nothing creates {what}")),
                    _ => None,
                }
            });
            if let Some(why) = missing {
                notes.push(format!(
                    "{} will not scale on pending tasks: {why}, so KEDA reads no count for it",
                    scaled.id.name
                ));
            }
        }
    }
    notes
}

/// A NATS account's public key: `A` and 55 more base32 characters.
fn is_account_id(account: &str) -> bool {
    account.len() == 56
        && account.starts_with('A')
        && account
            .chars()
            .all(|c| c.is_ascii_uppercase() || ('2'..='7').contains(&c))
}

/// Autoscalers whose `max` the nodes could never hold, even empty.
fn room(desired: &[DesiredObject], nodes: &[Node]) -> Vec<String> {
    let nodes: Vec<&Node> = nodes.iter().collect();
    let mut notes = Vec::new();
    for autoscaler in desired
        .iter()
        .filter(|o| o.id.kind == "HorizontalPodAutoscaler" || o.id.kind == "ScaledObject")
    {
        let spec = &autoscaler.body["spec"];
        let (target, max) = match autoscaler.id.kind.as_str() {
            "ScaledObject" => (&spec["scaleTargetRef"], &spec["maxReplicaCount"]),
            _ => (&spec["scaleTargetRef"], &spec["maxReplicas"]),
        };
        let (Some(target), Some(max)) = (target["name"].as_str(), max.as_u64()) else {
            continue;
        };
        let Some(pod) = desired
            .iter()
            .find(|o| o.id.kind == "Deployment" && o.id.name == target)
            .and_then(|d| pod_spec(&d.body))
        else {
            continue;
        };
        let most = fit::most_that_fit(&pod, &nodes);
        if most < max {
            notes.push(format!(
                "{} may ask for {max} replicas of {target}, but the nodes could hold at most {most} of its pods even with nothing else on them (their allocatable against its requests, node selectors and taints); lower `max` or the requests, or add nodes",
                autoscaler.id.name
            ));
        }
    }
    notes
}

fn pod_spec(deployment: &Value) -> Option<PodSpec> {
    serde_json::from_value(deployment["spec"]["template"]["spec"].clone()).ok()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;
    use crate::plan::{Action, Blocked};
    use crate::render::Wave;

    #[test]
    fn autoscalers_without_their_metrics_api_get_a_note() {
        let hpa = DesiredObject::from_json(json!({
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": { "name": "agent-a", "namespace": "ns" },
            "spec": { "metrics": [{ "type": "External" }, { "type": "Resource" }] }
        }));
        let notes = unreadable_metrics(std::slice::from_ref(&hpa), &BTreeSet::new());
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(notes[0].contains("external.metrics.k8s.io"), "{notes:?}");
        assert!(notes[1].contains("never scale down"), "{notes:?}");
        let mut scaled = scaled_object("$G");
        scaled.body["spec"]["triggers"]
            .as_array_mut()
            .unwrap()
            .push(json!({ "type": "memory" }));
        let notes = unreadable_metrics(std::slice::from_ref(&scaled), &BTreeSet::new());
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(
            notes[0].contains("so agent-a can never read memory"),
            "{notes:?}"
        );
        let served = BTreeSet::from([
            "metrics.k8s.io".to_string(),
            "external.metrics.k8s.io".to_string(),
        ]);
        assert!(unreadable_metrics(&[hpa], &served).is_empty());
    }

    fn scaled_object(account: &str) -> DesiredObject {
        DesiredObject::from_json(json!({
            "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
            "metadata": { "name": "agent-a", "namespace": "ns" },
            "spec": {
                "scaleTargetRef": { "name": "agent-a" }, "maxReplicaCount": 5,
                "triggers": [{ "type": "nats-jetstream", "metadata": { "account": account } }],
            }
        }))
    }

    fn deployment(cpu: &str) -> DesiredObject {
        DesiredObject::from_json(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": { "name": "agent-a", "namespace": "ns" },
            "spec": { "template": { "spec": { "containers": [
                { "name": "agent", "resources": { "requests": { "cpu": cpu } } },
            ]}}}
        }))
    }

    #[test]
    fn keda_missing_or_without_its_metrics_api_is_said_per_scaled_object() {
        let desired = [scaled_object("$G")];
        let missing =
            BTreeSet::from([("keda.sh/v1alpha1".to_string(), "ScaledObject".to_string())]);
        let notes = keda(&desired, &BTreeSet::new(), &missing);
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(
            notes[0].starts_with("agent-a will not scale: KEDA is not installed"),
            "{notes:?}"
        );
        let notes = keda(&desired, &BTreeSet::new(), &BTreeSet::new());
        assert!(
            notes[0].contains("serves no external.metrics.k8s.io API"),
            "{notes:?}"
        );
        let served = BTreeSet::from([EXTERNAL_METRICS_GROUP.to_string()]);
        assert!(keda(&desired, &served, &BTreeSet::new()).is_empty());
    }

    #[test]
    fn an_account_by_name_is_noted_an_account_id_is_not() {
        let served = BTreeSet::from([EXTERNAL_METRICS_GROUP.to_string()]);
        let notes = keda(&[scaled_object("agents")], &served, &BTreeSet::new());
        assert!(
            notes[0].contains("NATS account `agents` by the name"),
            "{notes:?}"
        );
        let id = format!("A{}", "B".repeat(55));
        assert!(keda(&[scaled_object(&id)], &served, &BTreeSet::new()).is_empty());
    }

    #[test]
    fn a_max_the_nodes_could_never_hold_is_noted() {
        let node: Node = serde_json::from_value(json!({
            "metadata": { "name": "n" },
            "status": { "allocatable": { "cpu": "4", "pods": "110" } }
        }))
        .unwrap();
        let nodes = [node];
        // 5 replicas of 1 cpu on 4 cpu.
        let notes = room(&[scaled_object("$G"), deployment("1")], &nodes);
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(
            notes[0].contains("could hold at most 4 of its pods"),
            "{notes:?}"
        );
        assert!(room(&[scaled_object("$G"), deployment("500m")], &nodes).is_empty());
    }

    #[test]
    fn the_external_metrics_apis_answer_is_shown() {
        let mut wiring = WiringState::default();
        let key = |hpa: &str| (hpa.to_string(), "m".to_string(), "consumer=c".to_string());
        wiring.external = BTreeMap::from([
            (key("agent-a-hpa"), Ok("3".to_string())),
            (key("agent-b-hpa"), Err("no metrics for m".to_string())),
        ]);
        let notes = external_answers(&wiring);
        assert_eq!(
            notes[0],
            "agent-a-hpa reads m{consumer=c} = 3 from the external metrics API"
        );
        assert!(notes[1].starts_with("agent-b-hpa will not scale on m{consumer=c}: the external metrics API answered \"no metrics for m\""), "{notes:?}");
    }

    #[test]
    fn a_trigger_whose_consumer_is_blocked_or_never_made_is_noted() {
        let mut scaled = scaled_object("$G");
        scaled.body["spec"]["triggers"][0]["metadata"] =
            json!({ "stream": "tasks", "consumer": "a-agent" });
        let consumer = Target::Consumer {
            stream: "tasks".into(),
            name: "a-agent".into(),
        };
        let stream = Target::Stream {
            name: "tasks".into(),
        };
        let create = |target: Target| Change::new(target, Action::Create, Wave::JetStream);
        let mut blocked = create(stream.clone());
        blocked.blocked = Some(Blocked::refused("subjects overlap stream other"));
        let none = LiveJetStream::new();

        let fine = [create(stream.clone()), create(consumer.clone())];
        assert!(triggers_without_their_consumer(&[scaled.clone()], &fine, &none).is_empty());
        assert_eq!(
            triggers_without_their_consumer(&[scaled.clone()], &[blocked, create(consumer)], &none),
            [
                "agent-a will not scale on pending tasks: stream tasks is not created: subjects overlap stream other, so KEDA reads no count for it"
            ]
        );
        assert_eq!(
            triggers_without_their_consumer(&[scaled], &[create(stream)], &none),
            [
                "agent-a will not scale on pending tasks: nothing creates consumer tasks/a-agent, so KEDA reads no count for it"
            ]
        );
    }
}
