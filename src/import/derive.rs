//! From live objects to an agent's keys: the inverse of `render::kube`, key
//! by key, for what fleet's keys can say. Pure. It may say more than it
//! needs (a key equal to its default): [`super::minimal`] drops those, and
//! what no key says, [`super::residual`] puts in the agent's `patch`.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::render::ObjectRef;

/// The live objects of the namespace, by identity (comparable: no status,
/// no server bookkeeping).
pub(crate) type Objects = BTreeMap<ObjectRef, Value>;

/// The objects an agent named `role` would have, as fleet names them.
pub(crate) fn agent_object_names(role: &str) -> Vec<(&'static str, String)> {
    let name = format!("agent-{role}");
    vec![
        ("ServiceAccount", name.clone()),
        ("Role", name.clone()),
        ("RoleBinding", name.clone()),
        ("ConfigMap", format!("{name}-config")),
        ("Deployment", name.clone()),
        ("Service", name.clone()),
        ("HorizontalPodAutoscaler", format!("{name}-hpa")),
        ("ScaledObject", name.clone()),
        ("PodDisruptionBudget", name.clone()),
        ("NetworkPolicy", format!("{name}-network")),
    ]
}

/// One live agent: its Deployment and the objects named after it.
pub(crate) struct LiveAgent<'a> {
    pub role: String,
    pub objects: BTreeMap<&'static str, &'a Value>,
}

impl LiveAgent<'_> {
    fn get(&self, kind: &str) -> Option<&Value> {
        self.objects.get(kind).copied()
    }
}

/// Finds `kind`/`name` among the objects, whatever its apiVersion.
pub(crate) fn find<'a>(
    objects: &'a Objects,
    kind: &str,
    name: &str,
) -> Option<(&'a ObjectRef, &'a Value)> {
    objects
        .iter()
        .find(|(id, _)| id.kind == kind && id.name == name)
}

/// The agents of the namespace: each Deployment named `agent-<role>`, with
/// the objects fleet would name after it.
pub(crate) fn agents(objects: &Objects) -> Vec<LiveAgent<'_>> {
    objects
        .iter()
        .filter(|(id, _)| id.kind == "Deployment")
        .filter_map(|(id, _)| id.name.strip_prefix("agent-"))
        .filter(|role| is_role(role))
        .map(|role| LiveAgent {
            role: role.to_string(),
            // What a controller made (KEDA's HPA) is the controller's.
            objects: agent_object_names(role)
                .into_iter()
                .filter_map(|(kind, name)| Some((kind, find(objects, kind, &name)?.1)))
                .filter(|(_, object)| !made_by_controller(object))
                .collect(),
        })
        .collect()
}

/// Whether a controller made the object (it names an owner).
pub(crate) fn made_by_controller(object: &Value) -> bool {
    object["metadata"]["ownerReferences"]
        .as_array()
        .is_some_and(|owners| !owners.is_empty())
}

/// A role fleet accepts: a DNS label short enough for `agent-<role>-network`.
pub(crate) fn is_role(role: &str) -> bool {
    !role.is_empty()
        && role.len() <= 63 - "agent-".len() - "-network".len()
        && role
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !role.starts_with('-')
        && !role.ends_with('-')
}

/// The label domain of the agents' `<domain>/role` labels.
pub(crate) fn label_domain(agents: &[LiveAgent<'_>]) -> Option<String> {
    agents.iter().find_map(|agent| {
        let labels = agent.get("Deployment")?["metadata"]["labels"].as_object()?;
        labels.iter().find_map(|(key, value)| {
            let domain = key.strip_suffix("/role")?;
            (value == agent.role.as_str()).then(|| domain.to_string())
        })
    })
}

/// An agent's keys, in the order of the definition reference; each value
/// as it is written in TOML.
pub(crate) type Keys = Vec<(String, Value)>;

fn push(keys: &mut Keys, key: &str, value: Option<Value>) {
    if let Some(value) = value {
        keys.push((key.to_string(), value));
    }
}

/// Seconds as a fleet duration.
fn seconds(value: &Value) -> Option<Value> {
    value.as_i64().map(|s| Value::from(format!("{s}s")))
}

fn strings(value: &Value) -> Option<Value> {
    let items = value.as_array()?;
    items
        .iter()
        .all(Value::is_string)
        .then(|| Value::Array(items.clone()))
}

/// Every key fleet has for what the agent's live objects say.
pub(crate) fn keys(agent: &LiveAgent<'_>, domain: &str) -> Keys {
    let mut keys = Keys::new();
    let Some(deployment) = agent.get("Deployment") else {
        return keys;
    };
    let pod = &deployment["spec"]["template"]["spec"];
    let containers = pod["containers"].as_array().cloned().unwrap_or_default();
    let container = containers
        .iter()
        .find(|c| c["name"] == "agent")
        .or(containers.first())
        .cloned()
        .unwrap_or(Value::Null);
    let labels = &deployment["metadata"]["labels"];

    push(
        &mut keys,
        "tier",
        labels[format!("{domain}/tier")].as_str().map(Value::from),
    );
    push(
        &mut keys,
        "image",
        container["image"].as_str().map(Value::from),
    );
    push(&mut keys, "command", strings(&container["command"]));
    push(
        &mut keys,
        "args",
        strings(&container["args"]).or(Some(json!([]))),
    );
    push(
        &mut keys,
        "image_pull_secrets",
        pod["imagePullSecrets"].as_array().map(|secrets| {
            secrets
                .iter()
                .filter_map(|s| s["name"].as_str())
                .map(Value::from)
                .collect()
        }),
    );
    push(
        &mut keys,
        "priority_class",
        pod["priorityClassName"].as_str().map(Value::from),
    );
    let env = container["env"].as_array().cloned().unwrap_or_default();
    push(&mut keys, "env", extra_env(&env));
    // Required: without a NATS_URL variable, the patch removes fleet's.
    let nats_url = env
        .iter()
        .find(|e| e["name"] == "NATS_URL")
        .and_then(|e| e["value"].as_str())
        .unwrap_or("nats://nats:4222");
    push(&mut keys, "nats_url", Some(Value::from(nats_url)));
    let mounts = container["volumeMounts"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let volumes = pod["volumes"].as_array().cloned().unwrap_or_default();
    if let Some(config) = agent.get("ConfigMap") {
        push(
            &mut keys,
            "config",
            config.get("data").filter(|d| d.is_object()).cloned(),
        );
    }
    push(
        &mut keys,
        "config_dir",
        mounts
            .iter()
            .find(|m| m["name"] == "agent-config")
            .and_then(|m| m["mountPath"].as_str())
            .map(Value::from),
    );
    push(
        &mut keys,
        "workspace_size",
        volumes
            .iter()
            .find(|v| v["name"] == "workspace")
            .and_then(|v| v["emptyDir"]["sizeLimit"].as_str())
            .map(Value::from),
    );
    if agent.get("HorizontalPodAutoscaler").is_none() && agent.get("ScaledObject").is_none() {
        // An autoscaler's replica count is its own, never a key.
        push(
            &mut keys,
            "replicas",
            deployment["spec"]["replicas"].as_i64().map(Value::from),
        );
    }
    push(
        &mut keys,
        "disruption_budget",
        agent.get("PodDisruptionBudget").and_then(budget),
    );
    push(&mut keys, "security", Some(security(pod, &container)));
    push(&mut keys, "ports", ports(&container));
    for (key, probe_key) in [
        ("liveness", "livenessProbe"),
        ("readiness", "readinessProbe"),
    ] {
        push(&mut keys, key, probe(&container[probe_key]));
    }
    push(&mut keys, "resources", resources(&container["resources"]));
    push(&mut keys, "placement", placement(pod));
    if let Some(scaled) = agent.get("ScaledObject") {
        let (autoscaling, consumer) = scaled_object_keys(scaled, &agent.role);
        push(&mut keys, "autoscaling", autoscaling);
        push(&mut keys, "consumer", consumer);
    } else if let Some(hpa) = agent.get("HorizontalPodAutoscaler") {
        let (autoscaling, consumer) = hpa_keys(hpa, &agent.role);
        push(&mut keys, "autoscaling", autoscaling);
        push(&mut keys, "consumer", consumer);
    }
    push(
        &mut keys,
        "network",
        agent.get("NetworkPolicy").and_then(network),
    );
    if let Some(role) = agent.get("Role") {
        push(&mut keys, "rbac", rbac(role));
    }
    push(
        &mut keys,
        "metrics",
        Some(Value::from(agent.get("Service").is_some())),
    );
    keys
}

/// Variables beside fleet's own NATS_URL, AGENT_ID and AGENT_NAMESPACE that
/// a key can say: literal values and keys of Secrets and ConfigMaps.
fn extra_env(env: &[Value]) -> Option<Value> {
    let mut table = Map::new();
    for var in env {
        let Some(name) = var["name"].as_str() else {
            continue;
        };
        if matches!(name, "NATS_URL" | "AGENT_ID" | "AGENT_NAMESPACE") {
            continue;
        }
        let from = &var["valueFrom"];
        let value = if let Some(value) = var["value"].as_str() {
            Value::from(value)
        } else if let (Some(secret), Some(key)) = (
            from["secretKeyRef"]["name"].as_str(),
            from["secretKeyRef"]["key"].as_str(),
        ) {
            json!({ "secret": secret, "key": key })
        } else if let (Some(map), Some(key)) = (
            from["configMapKeyRef"]["name"].as_str(),
            from["configMapKeyRef"]["key"].as_str(),
        ) {
            json!({ "config_map": map, "key": key })
        } else if var.get("value").is_none() && var.get("valueFrom").is_none() {
            Value::from("")
        } else {
            continue;
        };
        table.insert(name.to_string(), value);
    }
    (!table.is_empty()).then_some(Value::Object(table))
}

fn count(value: &Value) -> Option<Value> {
    match value {
        Value::Number(n) => Some(Value::Number(n.clone())),
        Value::String(s) => Some(Value::from(s.as_str())),
        _ => None,
    }
}

fn budget(pdb: &Value) -> Option<Value> {
    let spec = &pdb["spec"];
    if let Some(min) = count(&spec["minAvailable"]) {
        return Some(json!({ "min_available": min }));
    }
    count(&spec["maxUnavailable"]).map(|max| json!({ "max_unavailable": max }))
}

/// The pod's and container's security settings. A setting the live pod
/// leaves out is given the value that renders least of what it lacks: a
/// writable root (no /tmp volume); the patch removes the rest.
fn security(pod: &Value, container: &Value) -> Value {
    let pod_security = &pod["securityContext"];
    let own = &container["securityContext"];
    let mut table = Map::new();
    table.insert(
        "run_as_non_root".into(),
        Value::from(pod_security["runAsNonRoot"].as_bool().unwrap_or(false)),
    );
    if let Some(user) = pod_security["runAsUser"].as_i64() {
        table.insert("run_as_user".into(), Value::from(user));
    }
    if let Some(group) = pod_security["fsGroup"].as_i64() {
        table.insert("fs_group".into(), Value::from(group));
    }
    table.insert(
        "read_only_root_filesystem".into(),
        Value::from(own["readOnlyRootFilesystem"].as_bool().unwrap_or(false)),
    );
    table.insert(
        "allow_privilege_escalation".into(),
        Value::from(own["allowPrivilegeEscalation"].as_bool().unwrap_or(false)),
    );
    if let Some(add) = strings(&own["capabilities"]["add"]) {
        table.insert("add_capabilities".into(), add);
    }
    let seccomp = &pod_security["seccompProfile"];
    match seccomp["type"].as_str() {
        Some("Localhost") => {
            if let Some(path) = seccomp["localhostProfile"].as_str() {
                table.insert(
                    "seccomp_profile".into(),
                    Value::from(format!("localhost/{path}")),
                );
            }
        }
        Some(kind @ ("RuntimeDefault" | "Unconfined")) => {
            table.insert("seccomp_profile".into(), Value::from(kind));
        }
        _ => {}
    }
    Value::Object(table)
}

fn ports(container: &Value) -> Option<Value> {
    let ports = container["ports"].as_array()?;
    let port = |name: &str| {
        ports
            .iter()
            .find(|p| p["name"] == name)
            .and_then(|p| p["containerPort"].as_i64())
    };
    let mut table = Map::new();
    for name in ["metrics", "health"] {
        if let Some(port) = port(name) {
            table.insert(name.into(), Value::from(port));
        }
    }
    (!table.is_empty()).then_some(Value::Object(table))
}

/// A probe's path and timings; a timing equal to the API's default (which
/// the server wrote in) is left to it.
fn probe(probe: &Value) -> Option<Value> {
    let path = probe["httpGet"]["path"].as_str()?;
    let mut table = Map::new();
    table.insert("path".into(), Value::from(path));
    for (key, field, api_default) in [
        ("initial_delay", "initialDelaySeconds", 0),
        ("period", "periodSeconds", 10),
        ("timeout", "timeoutSeconds", 1),
    ] {
        if probe[field].as_i64().is_some_and(|v| v != api_default) {
            table.insert(key.into(), seconds(&probe[field])?);
        }
    }
    Some(Value::Object(table))
}

fn resources(resources: &Value) -> Option<Value> {
    let mut table = Map::new();
    for part in ["requests", "limits"] {
        let mut list = Map::new();
        for resource in ["cpu", "memory"] {
            if let Some(quantity) = resources[part][resource].as_str() {
                list.insert(resource.into(), Value::from(quantity));
            }
        }
        if !list.is_empty() {
            table.insert(part.into(), Value::Object(list));
        }
    }
    (!table.is_empty()).then_some(Value::Object(table))
}

/// Node selector, tolerations, the seed's zone spread and required node
/// affinity; what else the pod's affinity says stays in the patch.
fn placement(pod: &Value) -> Option<Value> {
    let mut table = Map::new();
    if let Some(selector) = pod["nodeSelector"].as_object().filter(|s| !s.is_empty()) {
        table.insert("node_selector".into(), Value::Object(selector.clone()));
    }
    let terms = &pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        ["nodeSelectorTerms"];
    if let Some([term]) = terms.as_array().map(Vec::as_slice) {
        let mut required = Map::new();
        for requirement in term["matchExpressions"].as_array().into_iter().flatten() {
            let (Some(key), Some(operator)) = (
                requirement["key"].as_str(),
                requirement["operator"].as_str(),
            ) else {
                continue;
            };
            let values = requirement["values"].clone();
            let value = match (operator, values.as_array().map(Vec::len)) {
                ("In", Some(_)) => values,
                (_, Some(_)) => json!({ "operator": operator, "values": values }),
                (_, None) => json!({ "operator": operator }),
            };
            required.insert(key.to_string(), value);
        }
        if !required.is_empty() {
            table.insert("node_affinity".into(), Value::Object(required));
        }
    }
    if let Some(tolerations) = pod["tolerations"].as_array() {
        let keys: Vec<Value> = tolerations
            .iter()
            .map(|t| {
                let mut toleration = Map::new();
                for (key, field) in [
                    ("key", "key"),
                    ("operator", "operator"),
                    ("value", "value"),
                    ("effect", "effect"),
                ] {
                    if let Some(value) = t[field].as_str() {
                        toleration.insert(key.into(), Value::from(value));
                    }
                }
                if let Some(seconds) = t["tolerationSeconds"].as_i64() {
                    toleration.insert("toleration_seconds".into(), Value::from(seconds));
                }
                Value::Object(toleration)
            })
            .collect();
        if !keys.is_empty() {
            table.insert("tolerations".into(), Value::Array(keys));
        }
    }
    let spread = pod["topologySpreadConstraints"].as_array();
    if spread.is_some_and(|s| {
        s.iter()
            .any(|c| c["topologyKey"] == "topology.kubernetes.io/zone")
    }) {
        table.insert("zone_spread".into(), Value::from(true));
    }
    let anti = &pod["affinity"]["podAntiAffinity"];
    if anti["requiredDuringSchedulingIgnoredDuringExecution"].is_array() {
        table.insert("node_spread".into(), Value::from("required"));
    } else if anti["preferredDuringSchedulingIgnoredDuringExecution"].is_array() {
        table.insert("node_spread".into(), Value::from("preferred"));
    }
    (!table.is_empty()).then_some(Value::Object(table))
}

/// The seed's HPA: min and max, the pending tasks per replica of the
/// consumer its External metric names, memory and CPU targets, and its
/// behaviour; with the consumer (its stream) when it is the agent's own.
fn hpa_keys(hpa: &Value, role: &str) -> (Option<Value>, Option<Value>) {
    let spec = &hpa["spec"];
    let mut table = Map::new();
    table.insert(
        "min".into(),
        spec["minReplicas"]
            .as_i64()
            .map_or(Value::from(1), Value::from),
    );
    if let Some(max) = spec["maxReplicas"].as_i64() {
        table.insert("max".into(), Value::from(max));
    }
    let mut consumer = None;
    for metric in spec["metrics"].as_array().into_iter().flatten() {
        match metric["type"].as_str() {
            Some("External") => {
                let external = &metric["external"];
                let selector = &external["metric"]["selector"]["matchLabels"];
                let pending = external["target"]["averageValue"]
                    .as_str()
                    .and_then(|v| v.parse::<u64>().ok());
                if let (Some(pending), Some(name), Some(stream)) = (
                    pending,
                    selector["consumer"].as_str(),
                    selector["stream"].as_str(),
                ) && name == format!("{role}-agent")
                {
                    table.insert("pending_per_replica".into(), Value::from(pending));
                    consumer = Some(json!({ "stream": stream }));
                }
            }
            Some("Resource") => {
                let resource = &metric["resource"];
                if let (Some(name @ ("memory" | "cpu")), Some(utilization)) = (
                    resource["name"].as_str(),
                    resource["target"]["averageUtilization"].as_i64(),
                ) {
                    table.insert(format!("{name}_utilization"), Value::from(utilization));
                }
            }
            _ => {}
        }
    }
    for (key, field) in [("scale_up", "scaleUp"), ("scale_down", "scaleDown")] {
        if let Some(rules) = scaling_rules(&spec["behavior"][field]) {
            table.insert(key.into(), rules);
        }
    }
    (Some(Value::Object(table)), consumer)
}

/// A KEDA ScaledObject: its replica bounds, the pending tasks per replica
/// of the agent's own consumer's `nats-jetstream` trigger, memory and CPU
/// triggers, KEDA's own settings and the HPA behaviour it passes on.
fn scaled_object_keys(scaled: &Value, role: &str) -> (Option<Value>, Option<Value>) {
    let spec = &scaled["spec"];
    let mut table = Map::new();
    table.insert("engine".into(), Value::from("keda"));
    for (key, field) in [("min", "minReplicaCount"), ("max", "maxReplicaCount")] {
        if let Some(count) = spec[field].as_i64() {
            table.insert(key.into(), Value::from(count));
        }
    }
    let mut consumer = None;
    for trigger in spec["triggers"].as_array().into_iter().flatten() {
        let metadata = &trigger["metadata"];
        let number = |key: &str| metadata[key].as_str().and_then(|v| v.parse::<u64>().ok());
        match trigger["type"].as_str() {
            Some("nats-jetstream") if metadata["consumer"] == format!("{role}-agent").as_str() => {
                if let Some(pending) = number("lagThreshold") {
                    table.insert("pending_per_replica".into(), Value::from(pending));
                }
                if let Some(activation) = number("activationLagThreshold") {
                    table.insert("activation_pending".into(), Value::from(activation));
                }
                if let Some(stream) = metadata["stream"].as_str() {
                    consumer = Some(json!({ "stream": stream }));
                }
            }
            Some(resource @ ("memory" | "cpu")) => {
                if let Some(value) = number("value") {
                    table.insert(format!("{resource}_utilization"), Value::from(value));
                }
            }
            _ => {}
        }
    }
    for (key, field) in [
        ("polling_interval", "pollingInterval"),
        ("cooldown", "cooldownPeriod"),
    ] {
        if let Some(value) = seconds(&spec[field]) {
            table.insert(key.into(), value);
        }
    }
    if let Some(replicas) = spec["fallback"]["replicas"].as_i64() {
        table.insert("fallback".into(), Value::from(replicas));
    }
    let behavior = &spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"];
    for (key, field) in [("scale_up", "scaleUp"), ("scale_down", "scaleDown")] {
        if let Some(rules) = scaling_rules(&behavior[field]) {
            table.insert(key.into(), rules);
        }
    }
    (Some(Value::Object(table)), consumer)
}

/// Where KEDA reads NATS, from the agents' ScaledObjects: the
/// `[environment]` keys `nats_monitoring` and `nats_account` (when not
/// the default account), as the first trigger gives them.
pub(crate) fn keda_environment(agents: &[LiveAgent<'_>]) -> Vec<(&'static str, Value)> {
    let trigger = agents
        .iter()
        .filter_map(|a| a.get("ScaledObject"))
        .flat_map(|s| {
            s["spec"]["triggers"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .find(|t| t["type"] == "nats-jetstream");
    let Some(trigger) = trigger else {
        return Vec::new();
    };
    let metadata = &trigger["metadata"];
    let mut keys = Vec::new();
    if let Some(endpoint) = metadata["natsServerMonitoringEndpoint"].as_str() {
        let https = metadata["useHttps"] == "true";
        let endpoint = if https {
            format!("https://{endpoint}")
        } else {
            endpoint.to_string()
        };
        keys.push(("nats_monitoring", Value::from(endpoint)));
    }
    if let Some(account) = metadata["account"].as_str().filter(|a| *a != "$G") {
        keys.push(("nats_account", Value::from(account)));
    }
    keys
}

fn scaling_rules(rules: &Value) -> Option<Value> {
    let mut table = Map::new();
    if let Some(window) = seconds(&rules["stabilizationWindowSeconds"]) {
        table.insert("stabilization".into(), window);
    }
    let policies = rules["policies"].as_array().cloned().unwrap_or_default();
    for policy in &policies {
        let key = match policy["type"].as_str() {
            Some("Pods") => "pods",
            Some("Percent") => "percent",
            _ => continue,
        };
        if let Some(value) = policy["value"].as_i64() {
            table.insert(key.into(), Value::from(value));
        }
    }
    if let Some(period) = policies.first().and_then(|p| seconds(&p["periodSeconds"])) {
        table.insert("period".into(), period);
    }
    (!table.is_empty()).then_some(Value::Object(table))
}

/// The NetworkPolicy's rules in fleet's words: peers by pod and namespace
/// labels or IP block, ports as numbers (or tables for ranges and other
/// protocols).
fn network(policy: &Value) -> Option<Value> {
    let spec = &policy["spec"];
    let rules = |list: &Value, peers_key: &str, key: &str| -> Option<Vec<Value>> {
        list.as_array()
            .map(|rules| {
                rules
                    .iter()
                    .map(|rule| network_rule(rule, peers_key, key))
                    .collect::<Option<Vec<_>>>()
            })
            .unwrap_or(Some(Vec::new()))
    };
    let ingress = rules(&spec["ingress"], "from", "from")?;
    let egress = rules(&spec["egress"], "to", "to")?;
    Some(json!({ "ingress": ingress, "egress": egress }))
}

fn network_rule(rule: &Value, peers_key: &str, key: &str) -> Option<Value> {
    let mut table = Map::new();
    if let Some(peers) = rule[peers_key].as_array() {
        let peers: Vec<Value> = peers.iter().map(network_peer).collect::<Option<_>>()?;
        table.insert(key.into(), Value::Array(peers));
    }
    if let Some(ports) = rule["ports"].as_array() {
        let ports: Vec<Value> = ports
            .iter()
            .map(|port| {
                let number = port["port"].as_i64()?;
                let protocol = port["protocol"].as_str().unwrap_or("TCP");
                Some(match port["endPort"].as_i64() {
                    None if protocol == "TCP" => Value::from(number),
                    end => {
                        let mut table = json!({ "port": number, "protocol": protocol });
                        if let Some(end) = end {
                            table["end_port"] = Value::from(end);
                        }
                        table
                    }
                })
            })
            .collect::<Option<_>>()?;
        table.insert("ports".into(), Value::Array(ports));
    }
    Some(Value::Object(table))
}

fn network_peer(peer: &Value) -> Option<Value> {
    let labels = |selector: &Value| -> Option<Value> {
        let selector = selector.as_object()?;
        if selector.keys().any(|k| k != "matchLabels") {
            return None;
        }
        Some(
            selector
                .get("matchLabels")
                .cloned()
                .unwrap_or_else(|| json!({})),
        )
    };
    let mut table = Map::new();
    if let Some(block) = peer.get("ipBlock") {
        table.insert("cidr".into(), block["cidr"].clone());
        if let Some(except) = strings(&block["except"]) {
            table.insert("except".into(), except);
        }
        return Some(Value::Object(table));
    }
    if let Some(pods) = peer.get("podSelector") {
        table.insert("pods".into(), labels(pods)?);
    }
    if let Some(namespaces) = peer.get("namespaceSelector") {
        table.insert("namespaces".into(), labels(namespaces)?);
    }
    (!table.is_empty()).then_some(Value::Object(table))
}

fn rbac(role: &Value) -> Option<Value> {
    let rules = role["rules"].as_array()?;
    let rules: Vec<Value> = rules
        .iter()
        .map(|rule| {
            let mut table = Map::new();
            for (key, field) in [
                ("api_groups", "apiGroups"),
                ("resources", "resources"),
                ("verbs", "verbs"),
                ("resource_names", "resourceNames"),
            ] {
                if let Some(list) = strings(&rule[field]) {
                    table.insert(key.into(), list);
                }
            }
            Value::Object(table)
        })
        .collect();
    Some(Value::Array(rules))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_dns_labels_short_enough_for_fleets_names() {
        assert!(is_role("devops"));
        assert!(is_role("code-review2"));
        assert!(!is_role("Devops"));
        assert!(!is_role("-x"));
        assert!(!is_role(&"a".repeat(50)));
    }

    #[test]
    fn the_seeds_hpa_says_its_autoscaling_and_consumer() {
        let hpa = json!({ "spec": {
            "minReplicas": 1, "maxReplicas": 5,
            "metrics": [
                { "type": "External", "external": {
                    "metric": { "name": "nats_consumer_pending_messages",
                                "selector": { "matchLabels": { "consumer": "devops-agent", "stream": "agent-tasks" } } },
                    "target": { "type": "AverageValue", "averageValue": "3" } } },
                { "type": "Resource", "resource": { "name": "memory", "target": { "type": "Utilization", "averageUtilization": 75 } } }
            ],
            "behavior": {
                "scaleUp": { "stabilizationWindowSeconds": 60, "policies": [{ "type": "Pods", "value": 2, "periodSeconds": 120 }] },
                "scaleDown": { "stabilizationWindowSeconds": 300, "policies": [{ "type": "Pods", "value": 1, "periodSeconds": 300 }] }
            }
        } });
        let (autoscaling, consumer) = hpa_keys(&hpa, "devops");
        assert_eq!(
            autoscaling,
            Some(json!({
                "min": 1, "max": 5, "pending_per_replica": 3, "memory_utilization": 75,
                "scale_up": { "stabilization": "60s", "pods": 2, "period": "120s" },
                "scale_down": { "stabilization": "300s", "pods": 1, "period": "300s" }
            }))
        );
        assert_eq!(consumer, Some(json!({ "stream": "agent-tasks" })));
    }

    #[test]
    fn the_seeds_network_policy_in_fleets_words() {
        let policy = json!({ "spec": {
            "ingress": [{ "from": [{ "namespaceSelector": { "matchLabels": { "name": "agent-system" } } }],
                          "ports": [{ "protocol": "TCP", "port": 4222 }] }],
            "egress": [
                { "to": [{ "ipBlock": { "cidr": "10.0.0.1/32" } }], "ports": [{ "protocol": "TCP", "port": 443 }] },
                { "to": [{ "namespaceSelector": {} }], "ports": [{ "protocol": "UDP", "port": 53 }] }
            ]
        } });
        assert_eq!(
            network(&policy),
            Some(json!({
                "ingress": [{ "from": [{ "namespaces": { "name": "agent-system" } }], "ports": [4222] }],
                "egress": [
                    { "to": [{ "cidr": "10.0.0.1/32" }], "ports": [443] },
                    { "to": [{ "namespaces": {} }], "ports": [{ "port": 53, "protocol": "UDP" }] }
                ]
            }))
        );
    }
}
