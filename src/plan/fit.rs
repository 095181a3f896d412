//! Whether a pod the scheduler could not place can ever run on one of the
//! cluster's nodes, or only waits for room. Pure: the pod and the nodes in,
//! an answer out.
//!
//! A pod waits for room when some node could hold it once other pods go
//! away: in a rolling update on a full cluster every surge pod waits for the
//! room that other rollouts free as they finish. It can never run when no
//! node passes the checks that other pods do not change: its requests
//! against the node's allocatable, its node selector and required node
//! affinity against the node's labels, its tolerations against the node's
//! taints. Anything unsure (a quantity that does not parse) counts as fitting,
//! so a rollout that might finish is waited for, never failed.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Container, Node, NodeSelectorRequirement, NodeSelectorTerm, PodSpec, Taint, Toleration,
};

/// Why no node among `nodes` can ever hold a pod of `spec`, or `None` when
/// one could once there is room.
pub fn never_fits(spec: &PodSpec, nodes: &[&Node]) -> Option<String> {
    if nodes.is_empty() {
        return None;
    }
    let requests = requests(spec);
    let mut why: BTreeMap<Misfit, usize> = BTreeMap::new();
    for node in nodes {
        match misfit(spec, &requests, node) {
            None => return None,
            Some(misfit) => *why.entry(misfit).or_default() += 1,
        }
    }
    let reasons: Vec<String> = why
        .into_iter()
        .map(|(misfit, count)| misfit.describe(count, &requests, nodes))
        .collect();
    Some(format!(
        "none of the {} node{} could ever hold it: {}",
        nodes.len(),
        plural(nodes.len()),
        reasons.join("; ")
    ))
}

/// The first check a node fails, in the scheduler's order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Misfit {
    /// A taint (as `key=value:Effect`) the pod does not tolerate.
    Taint(String),
    /// Its labels match neither the node selector nor the required affinity.
    Labels,
    /// It allocates less of this resource than the pod requests.
    TooSmall(String),
}

impl Misfit {
    fn describe(&self, count: usize, requests: &BTreeMap<String, f64>, nodes: &[&Node]) -> String {
        let (nodes_word, have) = if count == 1 {
            ("node", "has")
        } else {
            ("nodes", "have")
        };
        match self {
            Misfit::Taint(taint) => {
                format!("{count} {nodes_word} {have} the taint {taint}, which it does not tolerate")
            }
            Misfit::Labels => format!(
                "{count} {nodes_word} {} match its node selector and required node affinity",
                if count == 1 { "does not" } else { "do not" }
            ),
            Misfit::TooSmall(resource) => {
                let most = nodes
                    .iter()
                    .filter_map(|node| allocatable(node, resource))
                    .fold(0.0, f64::max);
                format!(
                    "{count} {nodes_word} {} less {resource} than it requests ({} requested, the most any node allocates is {})",
                    if count == 1 { "allocates" } else { "allocate" },
                    amount(requests[resource]),
                    amount(most)
                )
            }
        }
    }
}

/// How many pods of `spec` the nodes could hold if they ran nothing else:
/// per node it may run on, the fewest of its allocatable over each request
/// (its pod count included). An upper bound on what can ever be scheduled.
pub fn most_that_fit(spec: &PodSpec, nodes: &[&Node]) -> u64 {
    let requests = requests(spec);
    nodes
        .iter()
        .filter(|node| misfit(spec, &requests, node).is_none())
        .map(|node| {
            requests
                .iter()
                .map(|(resource, requested)| {
                    let has = allocatable(node, resource).unwrap_or(0.0);
                    // Sums of decimal fractions are not exact.
                    (has / requested + 1e-9).floor() as u64
                })
                .min()
                .unwrap_or(0)
        })
        .sum()
}

fn misfit(spec: &PodSpec, requests: &BTreeMap<String, f64>, node: &Node) -> Option<Misfit> {
    let taints = node.spec.as_ref().and_then(|s| s.taints.as_deref());
    let tolerations = spec.tolerations.as_deref().unwrap_or_default();
    if let Some(taint) = taints
        .unwrap_or_default()
        .iter()
        .find(|taint| blocks(taint) && !tolerations.iter().any(|t| tolerates(t, taint)))
    {
        return Some(Misfit::Taint(format!(
            "{}{}:{}",
            taint.key,
            taint
                .value
                .as_deref()
                .filter(|v| !v.is_empty())
                .map(|v| format!("={v}"))
                .unwrap_or_default(),
            taint.effect
        )));
    }
    if !labels_match(spec, node) {
        return Some(Misfit::Labels);
    }
    requests
        .iter()
        .find(|(resource, requested)| {
            let listed = node
                .status
                .as_ref()
                .and_then(|s| s.allocatable.as_ref())
                .and_then(|a| a.get(*resource));
            match listed {
                // A node that does not report a resource has none of it.
                None => true,
                // Sums of decimal fractions (`0.1` + `0.2`) are not exact.
                Some(quantity) => crate::quantity::value(&quantity.0)
                    .is_some_and(|has| has < **requested * (1.0 - 1e-9)),
            }
        })
        .map(|(resource, _)| Misfit::TooSmall(resource.clone()))
}

/// The resources one pod of `spec` needs on a node: its containers' requests
/// together, or its largest init container's if more (init containers run
/// one at a time, before the others; restartable ones, sidecars, keep
/// running beside them), plus the pod's overhead, plus one of the node's pods.
fn requests(spec: &PodSpec) -> BTreeMap<String, f64> {
    let mut sum = BTreeMap::new();
    let mut sidecars = BTreeMap::new();
    let add = |into: &mut BTreeMap<String, f64>, container: &Container| {
        for (resource, quantity) in container_requests(container) {
            *into.entry(resource).or_insert(0.0) += quantity;
        }
    };
    for container in &spec.containers {
        add(&mut sum, container);
    }
    let init = spec.init_containers.as_deref().unwrap_or_default();
    for sidecar in init
        .iter()
        .filter(|c| c.restart_policy.as_deref() == Some("Always"))
    {
        add(&mut sidecars, sidecar);
    }
    for (resource, quantity) in &sidecars {
        *sum.entry(resource.clone()).or_insert(0.0) += quantity;
    }
    for container in init
        .iter()
        .filter(|c| c.restart_policy.as_deref() != Some("Always"))
    {
        for (resource, quantity) in container_requests(container) {
            let with_sidecars = quantity + sidecars.get(&resource).copied().unwrap_or(0.0);
            let entry = sum.entry(resource).or_insert(0.0);
            *entry = entry.max(with_sidecars);
        }
    }
    for (resource, quantity) in spec.overhead.iter().flatten() {
        if let Some(value) = crate::quantity::value(&quantity.0) {
            *sum.entry(resource.clone()).or_insert(0.0) += value;
        }
    }
    sum.retain(|_, quantity| *quantity > 0.0);
    sum.insert("pods".into(), 1.0);
    sum
}

/// A container's requests that parse (the API server has checked them all).
fn container_requests(container: &Container) -> Vec<(String, f64)> {
    container
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|(resource, quantity)| {
            Some((resource.clone(), crate::quantity::value(&quantity.0)?))
        })
        .collect()
}

fn allocatable(node: &Node, resource: &str) -> Option<f64> {
    let quantity = node.status.as_ref()?.allocatable.as_ref()?.get(resource)?;
    crate::quantity::value(&quantity.0)
}

/// Whether a taint keeps pods off the node for good. The node lifecycle
/// controller sets and clears the `node.kubernetes.io/` taints with the
/// node's conditions (not ready, unreachable, under pressure) and when it is
/// cordoned, so they pass; `PreferNoSchedule` only steers the scheduler.
fn blocks(taint: &Taint) -> bool {
    (taint.effect == "NoSchedule" || taint.effect == "NoExecute")
        && !taint.key.starts_with("node.kubernetes.io/")
        && taint.key != "node.cloudprovider.kubernetes.io/uninitialized"
}

/// Kubernetes' rule: an empty key with `Exists` tolerates every taint, an
/// empty effect every effect.
fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    let effect = toleration.effect.as_deref().unwrap_or_default();
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = toleration.key.as_deref().unwrap_or_default();
    let exists = toleration.operator.as_deref() == Some("Exists");
    if key.is_empty() {
        return exists;
    }
    key == taint.key
        && (exists
            || toleration.value.as_deref().unwrap_or_default()
                == taint.value.as_deref().unwrap_or_default())
}

fn labels_match(spec: &PodSpec, node: &Node) -> bool {
    let empty = BTreeMap::new();
    let labels = node.metadata.labels.as_ref().unwrap_or(&empty);
    let name = node.metadata.name.as_deref().unwrap_or_default();
    let selector_matches = spec
        .node_selector
        .iter()
        .flatten()
        .all(|(key, value)| labels.get(key) == Some(value));
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    // Terms are ORed; a pod with required affinity but no term fits nowhere.
    let affinity_matches = required.is_none_or(|required| {
        required
            .node_selector_terms
            .iter()
            .any(|term| term_matches(term, labels, name))
    });
    selector_matches && affinity_matches
}

/// A term's requirements are ANDed; a term with none matches nothing.
fn term_matches(term: &NodeSelectorTerm, labels: &BTreeMap<String, String>, name: &str) -> bool {
    let expressions = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if expressions.is_empty() && fields.is_empty() {
        return false;
    }
    expressions
        .iter()
        .all(|r| requirement_matches(r, labels.get(&r.key).map(String::as_str)))
        && fields.iter().all(|r| {
            // `metadata.name` is the only field a node selector may name.
            r.key != "metadata.name" || requirement_matches(r, Some(name))
        })
}

fn requirement_matches(requirement: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = requirement.values.as_deref().unwrap_or_default();
    let number = |text: &str| text.parse::<i64>().ok();
    match requirement.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|w| w == v)),
        "NotIn" => value.is_none_or(|v| values.iter().all(|w| w != v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(have), Some(bound)) = (
                value.and_then(number),
                values.first().and_then(|v| number(v)),
            ) else {
                return false;
            };
            if requirement.operator == "Gt" {
                have > bound
            } else {
                have < bound
            }
        }
        // An operator this version does not know: unsure, so it matches.
        _ => true,
    }
}

/// `0.5`, `32`, `1073741824`: a quantity's value, shortest form.
fn amount(value: f64) -> String {
    format!("{value}")
}

fn plural(count: usize) -> &'static str {
    if count == 1 { "" } else { "s" }
}

/// Whether the scheduler's own message already says no node can ever hold
/// the pod: every node it counts is left out for a reason other pods do not
/// change (its labels, a lasting taint). For when the nodes cannot be read.
/// `0/3 nodes are available: 2 node(s) didn't match Pod's node
/// affinity/selector, 1 node(s) had untolerated taint {dedicated: gpu}.
/// preemption: ...`
pub fn scheduler_says_never(message: &str) -> bool {
    let Some((head, rest)) = message.split_once(" nodes are available: ") else {
        return false;
    };
    let Some(total) = head
        .strip_prefix("0/")
        .and_then(|n| n.trim().parse::<usize>().ok())
    else {
        return false;
    };
    let reasons = rest.split(". preemption:").next().unwrap_or(rest);
    let reasons = reasons.trim_end_matches('.');
    let mut lasting = 0;
    for reason in reasons.split(", ") {
        let Some((count, what)) = reason.split_once(' ') else {
            return false;
        };
        let Ok(count) = count.parse::<usize>() else {
            return false;
        };
        let lasts = what == "node(s) didn't match Pod's node affinity/selector"
            || what == "node(s) didn't match the requested node name"
            || what
                .strip_prefix("node(s) had untolerated taint {")
                .is_some_and(|taint| {
                    !taint.starts_with("node.kubernetes.io/")
                        && !taint.starts_with("node.cloudprovider.kubernetes.io/")
                });
        if lasts {
            lasting += count;
        }
    }
    total > 0 && lasting == total
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(value: serde_json::Value) -> Node {
        serde_json::from_value(value).unwrap()
    }

    /// Three nodes like the local control plane's kwok nodes.
    fn kwok_nodes() -> Vec<Node> {
        ["a", "b", "c"]
            .iter()
            .map(|zone| {
                let mut labels = json!({
                    "kubernetes.io/hostname": format!("kwok-node-{zone}"),
                    "topology.kubernetes.io/zone": zone,
                });
                if *zone == "a" {
                    labels["agent.ceo/workload-type"] = json!("cognitive");
                }
                node(json!({
                    "metadata": { "name": format!("kwok-node-{zone}"), "labels": labels },
                    "status": { "allocatable": { "cpu": "32", "memory": "256Gi", "pods": "110" } }
                }))
            })
            .collect()
    }

    fn pod(value: serde_json::Value) -> PodSpec {
        serde_json::from_value(value).unwrap()
    }

    fn requesting(requests: serde_json::Value) -> PodSpec {
        pod(json!({ "containers": [{ "name": "agent", "resources": { "requests": requests } }] }))
    }

    fn judge(spec: &PodSpec, nodes: &[Node]) -> Option<String> {
        let nodes: Vec<&Node> = nodes.iter().collect();
        never_fits(spec, &nodes)
    }

    #[test]
    fn a_request_that_fits_a_node_waits_for_room() {
        let spec = requesting(json!({ "cpu": "32000m", "memory": "1Gi" }));
        assert_eq!(judge(&spec, &kwok_nodes()), None);
    }

    #[test]
    fn a_request_larger_than_every_node_never_fits() {
        let spec = requesting(json!({ "cpu": "500", "memory": "1Gi" }));
        assert_eq!(
            judge(&spec, &kwok_nodes()).as_deref(),
            Some(
                "none of the 3 nodes could ever hold it: 3 nodes allocate less cpu than it requests (500 requested, the most any node allocates is 32)"
            )
        );
    }

    #[test]
    fn containers_requests_add_up_and_init_containers_take_the_larger() {
        let two = pod(json!({ "containers": [
            { "name": "a", "resources": { "requests": { "cpu": "20" } } },
            { "name": "b", "resources": { "requests": { "cpu": "20" } } }
        ] }));
        assert!(judge(&two, &kwok_nodes()).is_some(), "40 cpu together");
        let init = pod(json!({
            "initContainers": [{ "name": "i", "resources": { "requests": { "cpu": "30" } } }],
            "containers": [{ "name": "a", "resources": { "requests": { "cpu": "20" } } }]
        }));
        assert_eq!(judge(&init, &kwok_nodes()), None, "one at a time");
        let sidecar = pod(json!({
            "initContainers": [
                { "name": "s", "restartPolicy": "Always", "resources": { "requests": { "cpu": "10" } } },
                { "name": "i", "resources": { "requests": { "cpu": "25" } } }
            ],
            "containers": [{ "name": "a", "resources": { "requests": { "cpu": "10" } } }]
        }));
        assert!(
            judge(&sidecar, &kwok_nodes()).is_some(),
            "the sidecar runs beside the init container: 35"
        );
    }

    #[test]
    fn a_resource_no_node_has_never_fits_and_a_full_pod_count_waits() {
        let gpu = requesting(json!({ "nvidia.com/gpu": "1" }));
        let why = judge(&gpu, &kwok_nodes()).unwrap();
        assert!(
            why.contains("less nvidia.com/gpu than it requests"),
            "{why}"
        );
        // A node full of pods is room that other pods free.
        assert_eq!(judge(&requesting(json!({})), &kwok_nodes()), None);
    }

    #[test]
    fn node_selector_and_required_affinity_against_the_labels() {
        let selector = pod(json!({ "nodeSelector": { "disk": "ssd" }, "containers": [] }));
        assert_eq!(
            judge(&selector, &kwok_nodes()).as_deref(),
            Some(
                "none of the 3 nodes could ever hold it: 3 nodes do not match its node selector and required node affinity"
            )
        );
        let cognitive = pod(json!({
            "affinity": { "nodeAffinity": { "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{ "matchExpressions": [
                    { "key": "agent.ceo/workload-type", "operator": "In", "values": ["cognitive"] }
                ] }]
            } } },
            "containers": []
        }));
        assert_eq!(judge(&cognitive, &kwok_nodes()), None, "kwok-node-a");
        let expression = |operator: &str, values: serde_json::Value| {
            pod(json!({
                "affinity": { "nodeAffinity": { "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        { "matchExpressions": [{ "key": "topology.kubernetes.io/zone", "operator": operator, "values": values }] }
                    ]
                } } },
                "containers": []
            }))
        };
        assert!(judge(&expression("In", json!(["d"])), &kwok_nodes()).is_some());
        assert_eq!(
            judge(&expression("NotIn", json!(["a", "b"])), &kwok_nodes()),
            None
        );
        assert!(judge(&expression("NotIn", json!(["a", "b", "c"])), &kwok_nodes()).is_some());
        assert!(judge(&expression("DoesNotExist", json!([])), &kwok_nodes()).is_some());
        // One node per reason: still none fits.
        let both = pod(json!({
            "nodeSelector": { "kubernetes.io/hostname": "kwok-node-b" },
            "containers": [{ "name": "a", "resources": { "requests": { "cpu": "40" } } }]
        }));
        let why = judge(&both, &kwok_nodes()).unwrap();
        assert!(why.contains("2 nodes do not match"), "{why}");
        assert!(why.contains("1 node allocates less cpu"), "{why}");
    }

    #[test]
    fn taints_not_tolerated_never_fit_but_passing_ones_wait() {
        let tainted = |key: &str, value: &str| {
            node(json!({
                "metadata": { "name": "n", "labels": {} },
                "spec": { "taints": [{ "key": key, "value": value, "effect": "NoSchedule" }] },
                "status": { "allocatable": { "cpu": "4", "pods": "110" } }
            }))
        };
        let plain = pod(json!({ "containers": [] }));
        assert_eq!(
            judge(&plain, &[tainted("dedicated", "gpu")]).as_deref(),
            Some(
                "none of the 1 node could ever hold it: 1 node has the taint dedicated=gpu:NoSchedule, which it does not tolerate"
            )
        );
        let tolerating = pod(json!({
            "tolerations": [{ "key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule" }],
            "containers": []
        }));
        assert_eq!(judge(&tolerating, &[tainted("dedicated", "gpu")]), None);
        let everything =
            pod(json!({ "tolerations": [{ "operator": "Exists" }], "containers": [] }));
        assert_eq!(judge(&everything, &[tainted("dedicated", "gpu")]), None);
        // Cordoned, or not ready: the node lifecycle controller's taints pass.
        assert_eq!(
            judge(&plain, &[tainted("node.kubernetes.io/unschedulable", "")]),
            None
        );
        assert_eq!(
            judge(&plain, &[tainted("node.kubernetes.io/not-ready", "")]),
            None
        );
    }

    #[test]
    fn the_most_that_fit_counts_each_nodes_tightest_resource() {
        let nodes = kwok_nodes();
        let nodes: Vec<&Node> = nodes.iter().collect();
        // 32 cpu and 110 pods a node: cpu binds at 16 pods of 2 cpu.
        assert_eq!(
            most_that_fit(&requesting(json!({ "cpu": "2" })), &nodes),
            48
        );
        // Only the pod count binds a pod that requests nothing.
        assert_eq!(most_that_fit(&requesting(json!({})), &nodes), 330);
        assert_eq!(
            most_that_fit(&requesting(json!({ "cpu": "64" })), &nodes),
            0
        );
    }

    #[test]
    fn no_nodes_read_is_not_a_reason_to_fail() {
        assert_eq!(judge(&requesting(json!({ "cpu": "500" })), &[]), None);
    }

    #[test]
    fn the_schedulers_message_alone_says_never_only_for_lasting_reasons() {
        assert!(scheduler_says_never(
            "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
        ));
        assert!(scheduler_says_never(
            "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 2 node(s) didn't match Pod's node affinity/selector. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
        ));
        // Room may be made, or the node may come back.
        assert!(!scheduler_says_never(
            "0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod."
        ));
        assert!(!scheduler_says_never(
            "0/3 nodes are available: 3 Too many pods. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod."
        ));
        assert!(!scheduler_says_never(
            "0/3 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }, 2 node(s) didn't match Pod's node affinity/selector."
        ));
        assert!(!scheduler_says_never("no nodes available to schedule pods"));
    }
}
