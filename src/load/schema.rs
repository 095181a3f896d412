//! JSON Schema of fleet.toml and environment files, for editors (Taplo, Even
//! Better TOML, IntelliJ) to complete and check them. The tests below keep it
//! in step with the keys `decode` accepts.

use serde_json::{Value, json};

fn string(description: &str) -> Value {
    json!({ "type": "string", "description": description })
}

fn integer(description: &str, minimum: i64) -> Value {
    json!({ "type": "integer", "minimum": minimum, "description": description })
}

fn boolean(description: &str) -> Value {
    json!({ "type": "boolean", "description": description })
}

fn duration(description: &str) -> Value {
    json!({ "type": "string", "pattern": "^([0-9]+(ms|s|m|h|d))+$", "description": description })
}

fn quantity(description: &str) -> Value {
    json!({ "type": "string", "pattern": "^[0-9.]+(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$", "description": description })
}

fn strings(description: &str) -> Value {
    json!({ "type": "array", "items": { "type": "string" }, "description": description })
}

fn labels(description: &str) -> Value {
    json!({ "type": "object", "additionalProperties": { "type": "string" }, "description": description })
}

fn table(description: &str, properties: Value) -> Value {
    json!({ "type": "object", "additionalProperties": false, "description": description, "properties": properties })
}

/// The schema (draft 2020-12) of both files: an environment file is a fleet
/// file whose tables are laid over the fleet's.
pub fn schema() -> Value {
    let resources = table(
        "CPU and memory",
        json!({
            "cpu": quantity("CPU, e.g. \"500m\" or \"2\""),
            "memory": quantity("memory, e.g. \"512Mi\" or \"4Gi\""),
        }),
    );
    let probe = table(
        "HTTP probe on the health port",
        json!({
            "path": string("HTTP path"),
            "initial_delay": duration("delay before the first probe"),
            "period": duration("time between probes"),
            "timeout": duration("probe timeout"),
        }),
    );
    let engine = json!({ "enum": ["hpa", "keda"],
        "description": "what scales the agent: hpa (a HorizontalPodAutoscaler, the default) or keda (a KEDA ScaledObject)" });
    let scaling = table(
        "scaling behaviour; setting `pods` or `percent` replaces the default policy (both: the larger change wins)",
        json!({
            "stabilization": duration("stabilization window"),
            "pods": integer("at most this many pods per period", 1),
            "percent": integer("at most this percentage of the replicas per period (scale_down: at most 100)", 1),
            "period": duration("policy period"),
        }),
    );
    let node_requirement = json!({ "oneOf": [
        { "type": "array", "items": { "type": "string" }, "description": "the label's value is one of these (operator In)" },
        table("a node label requirement", json!({
            "operator": { "enum": ["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"] },
            "values": strings("values (In, NotIn: some; Exists, DoesNotExist: none; Gt, Lt: one integer)"),
        })),
    ]});
    let node_requirements = |description: &str| json!({ "type": "object", "additionalProperties": node_requirement.clone(), "description": description });
    let preferred_terms = json!({ "type": "array", "description": "preferred node affinity: terms the scheduler favours by weight",
    "items": table("a preferred term", json!({
        "weight": { "type": "integer", "minimum": 1, "maximum": 100, "description": "1-100" },
        "match": node_requirements("node label -> requirement"),
    }))});
    let tolerations = json!({ "type": "array", "description": "tolerations of node taints",
    "items": table("a toleration", json!({
        "key": string("taint key (none: every taint, with operator Exists)"),
        "operator": { "enum": ["Equal", "Exists"], "description": "default Equal" },
        "value": string("taint value (Equal only)"),
        "effect": { "enum": ["NoSchedule", "PreferNoSchedule", "NoExecute"], "description": "default: every effect" },
        "toleration_seconds": integer("seconds a NoExecute taint leaves the pod running", 0),
    }))});
    let node_spread = json!({ "enum": ["required", "preferred", "none"],
        "description": "keep the agent's replicas on different nodes (pod anti-affinity on kubernetes.io/hostname); default none" });
    let pod_count = json!({ "oneOf": [
        { "type": "integer", "minimum": 0 },
        { "type": "string", "pattern": "^([0-9]|[1-9][0-9]|100)%$" },
    ]});
    let object_source = |what: &str| {
        json!({
            "secret": string(&format!("{what} from this Secret")),
            "config_map": string(&format!("{what} from this ConfigMap")),
        })
    };
    let port = json!({ "oneOf": [
        { "type": "integer", "minimum": 1, "maximum": 65535 },
        { "type": "string", "pattern": "^[0-9]+(-[0-9]+)?(/(tcp|udp|sctp))?$" },
        table("a port or a range of ports", json!({
            "port": integer("port (the first of a range)", 1),
            "end_port": integer("last port of the range", 1),
            "protocol": { "enum": ["TCP", "UDP", "SCTP"], "description": "protocol (default TCP)" },
        })),
    ]});
    let peer = table(
        "one peer: pods, namespaces (both together: those pods in those namespaces), another agent or a CIDR",
        json!({
            "pods": labels("pods with these labels (in the fleet's namespace, or in `namespaces`)"),
            "namespaces": labels("namespaces with these labels ({} for all)"),
            "agent": string("another agent of this fleet, by role"),
            "cidr": string("an IP block, e.g. \"10.0.0.1/32\""),
            "except": strings("blocks inside `cidr` left out of it"),
        }),
    );
    let rule = |peers: &str| {
        table(
            "a network rule",
            json!({
                peers: { "type": "array", "items": peer.clone() },
                "ports": { "type": "array", "items": port.clone() },
            }),
        )
    };
    let rules = |peers: &str| {
        let mut named = rule(peers);
        named["properties"]["enabled"] =
            boolean("false switches the rule off (e.g. in one environment)");
        json!({ "oneOf": [
            { "type": "array", "items": rule(peers) },
            { "type": "object", "description": "named rules, which an environment can change or add one by one", "additionalProperties": named },
        ]})
    };
    let consumer_keys = json!({
        "enabled": boolean("false: no consumer"),
        "filter_subjects": strings("filter subjects (default <stream prefix>.<role>.>)"),
        "deliver_policy": { "enum": ["all", "last", "new", "last_per_subject"], "description": "where a new consumer starts (default all); changing it replaces the consumer" },
        "ack_wait": duration("ack wait (default 30s; with backoff, the server takes the first step instead)"),
        "max_deliver": integer("maximum deliveries (-1: unlimited)", -1),
        "max_ack_pending": integer("maximum unacknowledged messages", -1),
        "backoff": { "type": "array", "items": { "type": "string" }, "description": "redelivery backoff durations" },
        "inactive_threshold": duration("delete the consumer after this long without a client (default: never)"),
        "description": string("description"),
    });
    let mut consumer = table(
        "the agent's durable pull consumer, <role>-agent",
        consumer_keys.clone(),
    );
    consumer["properties"]["stream"] = string("stream name (its key under [streams])");
    let agent = table(
        "an agent (a role); [defaults] takes the same keys",
        json!({
            "enabled": boolean("false switches the agent off (e.g. in one environment)"),
            "tier": string("value of the <domain>/tier label"),
            "profile": string("resource profile: cognitive, executor, observer or one of [profiles]"),
            "image": string("container image"),
            "command": strings("container command (default: the image's entrypoint)"),
            "args": strings("container args (default: --role=<role>, --config=<config_dir>/config.yaml)"),
            "image_pull_secrets": strings("Secrets to pull the image with"),
            "priority_class": string("PriorityClass of the agent's pods"),
            "env": { "type": "object", "description": "environment variables: a value, or { secret, key } or { config_map, key }",
                     "additionalProperties": { "oneOf": [
                         { "type": "string" },
                         table("a key of an existing Secret or ConfigMap", json!({ "secret": string("Secret name"), "config_map": string("ConfigMap name"), "key": string("key in the Secret or ConfigMap") })),
                     ]}},
            "env_from": { "type": "array", "description": "every key of existing ConfigMaps and Secrets as variables",
                          "items": table("a ConfigMap or Secret", {
                              let mut keys = object_source("variables");
                              keys["prefix"] = string("prefix of every variable's name");
                              keys
                          })},
            "volumes": { "type": "object", "description": "existing Secrets and ConfigMaps mounted in the container, by volume name",
                         "additionalProperties": table("a mounted Secret or ConfigMap", {
                             let mut keys = object_source("the volume");
                             keys["mount_path"] = string("absolute path in the container");
                             keys["read_only"] = boolean("mount read-only (default true)");
                             keys["items"] = labels("only these keys, each at the given path inside the volume");
                             keys["sub_path"] = string("mount only this path of the volume");
                             keys
                         })},
            "nats_url": string("NATS URL given to the agent's pods"),
            "config": { "type": "object", "description": "files mounted at config_dir: text, or { file = \"path\" }",
                        "additionalProperties": { "oneOf": [
                            { "type": "string" },
                            table("a file beside fleet.toml", json!({ "file": string("path relative to fleet.toml") })),
                        ]}},
            "config_dir": string("where config files are mounted"),
            "workspace_size": quantity("size limit of the /workspace emptyDir"),
            "replicas": integer("replicas when not autoscaled", 0),
            "disruption_budget": table("PodDisruptionBudget, rendered when the agent runs more than one replica (default max_unavailable = 1)", json!({
                "enabled": boolean("false: no PodDisruptionBudget"),
                "min_available": pod_count.clone(),
                "max_unavailable": pod_count,
            })),
            "security": table("pod and container security context; the defaults meet the `restricted` Pod Security Standard", json!({
                "run_as_non_root": boolean("runAsNonRoot (default true)"),
                "run_as_user": integer("runAsUser (default 1000)", 0),
                "fs_group": integer("fsGroup (default 1000)", 0),
                "read_only_root_filesystem": boolean("readOnlyRootFilesystem (default true; /tmp is then an emptyDir)"),
                "allow_privilege_escalation": boolean("allowPrivilegeEscalation (default false; true needs pod_security baseline)"),
                "add_capabilities": { "type": "array", "items": { "type": "string", "pattern": "^[A-Z0-9_]+$" },
                                      "description": "capabilities added after dropping ALL, e.g. NET_BIND_SERVICE (others need pod_security baseline or privileged)" },
                "seccomp_profile": { "type": "string", "pattern": "^(RuntimeDefault|Unconfined|localhost/.+)$",
                                     "description": "RuntimeDefault (default), Unconfined (needs pod_security privileged) or localhost/<path>" },
            })),
            "ports": table("container ports", json!({
                "metrics": integer("metrics port", 1),
                "health": integer("health port", 1),
            })),
            "liveness": probe.clone(),
            "readiness": probe,
            "resources": table("overrides the profile's requests and limits", json!({
                "requests": resources.clone(),
                "limits": resources.clone(),
            })),
            "placement": table("node placement", json!({
                "node_selector": labels("nodeSelector"),
                "workload_type": string("required node affinity on [fleet] workload_type_label"),
                "node_affinity": node_requirements("required node affinity: label -> allowed values, or { operator, values }"),
                "preferred_node_affinity": preferred_terms.clone(),
                "tolerations": tolerations.clone(),
                "zone_spread": boolean("spread the tier across zones"),
                "node_spread": node_spread.clone(),
            })),
            "autoscaling": table("HorizontalPodAutoscaler or KEDA ScaledObject", json!({
                "enabled": boolean("false turns autoscaling off"),
                "engine": engine.clone(),
                "min": integer("minimum replicas (0 only with engine = \"keda\" and pending_per_replica)", 0),
                "max": integer("maximum replicas", 1),
                "pending_per_replica": integer("target pending tasks per replica on the agent's consumer", 1),
                "memory_utilization": integer("target memory utilization, percent", 1),
                "cpu_utilization": integer("target CPU utilization, percent (needs a CPU request)", 1),
                "scale_up": scaling.clone(),
                "scale_down": scaling,
                "activation_pending": integer("KEDA: pending tasks that wake an agent at zero replicas (default 0: the first)", 0),
                "polling_interval": string("KEDA: how often it reads NATS (default 30s)"),
                "cooldown": string("KEDA: how long without tasks before scaling to zero (default 5m)"),
                "fallback": integer("KEDA: replicas to hold while it cannot read NATS (3 failed reads)", 0),
            })),
            "consumer": consumer,
            "consumers": { "type": "object", "description": "consumers on further streams, by stream key: each <role>-agent-<stream>, listed to the agent in NATS_CONSUMERS",
                           "additionalProperties": table("a durable pull consumer on the stream of this key", consumer_keys) },
            "network": table("NetworkPolicy", json!({
                "enabled": boolean("false: no NetworkPolicy"),
                "ingress": rules("from"),
                "egress": rules("to"),
            })),
            "publishes": strings("NATS subjects the agent publishes to, each captured by a stream of the fleet (its NATS credentials allow these and its consumers, nothing else)"),
            "requests": strings("NATS subjects the agent sends requests to (core request/reply)"),
            "serves": strings("NATS subjects the agent answers requests on"),
            "rbac": { "type": "array", "description": "Role rules for the agent's ServiceAccount", "items": table("a rule", json!({
                "api_groups": strings("API groups (\"\" is core)"),
                "resources": strings("resources"),
                "verbs": strings("verbs"),
                "resource_names": strings("resource names"),
            }))},
            "metrics": boolean("expose the metrics port (Service, ServiceMonitor, annotations)"),
            "labels": labels("extra labels"),
            "annotations": labels("extra annotations"),
            "patch": {
                "type": "object",
                "description": "fields set on the agent's rendered objects, by kind, after rendering (checked by the API server's dry run)",
                "propertyNames": { "enum": super::decode::PATCHABLE_KINDS },
                "additionalProperties": { "type": "object" },
            },
        }),
    );
    let profile = table(
        "a resource profile",
        json!({
            "requests": resources.clone(),
            "limits": resources,
            "node_selector": labels("nodeSelector"),
            "workload_type": string("required node affinity on [fleet] workload_type_label"),
            "node_affinity": node_requirements("required node affinity: label -> allowed values, or { operator, values }"),
            "preferred_node_affinity": preferred_terms,
            "tolerations": tolerations,
            "zone_spread": boolean("spread the tier across zones"),
            "node_spread": node_spread,
            "autoscaling": table("the autoscaler of the profile's agents", json!({ "engine": engine })),
        }),
    );
    let stream = table(
        "a JetStream stream",
        json!({
            "enabled": boolean("false: no stream (e.g. in one environment); consumers of it are refused"),
            "name": string("the stream's name on the server (default: its key)"),
            "subjects": strings("subjects (may be left out when `sources` are set)"),
            "retention": { "enum": ["limits", "interest", "workqueue"] },
            "storage": { "enum": ["file", "memory"] },
            "replicas": integer("replicas (1-5)", 1),
            "max_age": duration("maximum message age"),
            "max_bytes": { "type": ["integer", "string"], "minimum": -1, "description": "maximum bytes, e.g. \"1Gi\" (-1: unlimited)" },
            "max_msgs": integer("maximum messages (-1: unlimited)", -1),
            "max_msg_size": { "type": ["integer", "string"], "minimum": -1, "maximum": 2147483647, "description": "maximum message size in bytes, at most 2147483647 (-1: unlimited)" },
            "discard": { "enum": ["old", "new"] },
            "duplicate_window": duration("duplicate detection window"),
            "description": string("description"),
            "max_msgs_per_subject": integer("maximum messages per subject (-1: unlimited; unset: the server's value is kept)", -1),
            "allow_direct": boolean("direct get of messages (unset: the server's value is kept)"),
            "compression": { "enum": ["none", "s2"], "description": "storage compression (unset: the server's value is kept)" },
            "sources": { "type": "array", "description": "streams of this fleet whose messages this one copies (unset: the server's are kept)", "items": { "oneOf": [
                { "type": "string" },
                table("a source stream", json!({ "stream": string("stream key"), "filter_subject": string("copy only these subjects") })),
            ]}},
        }),
    );
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "fleet definition (fleet.toml or environments/<env>.toml)",
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "fleet": table("the fleet", json!({
                "name": string("names fleet's ownership marks"),
                "namespace": string("namespace of every object"),
                "label_domain": string("domain of role/tier labels (default agent.ceo)"),
                "imperative_managers": strings("field managers whose changes are drift to restore, besides kubectl's"),
                "pod_security": { "enum": ["restricted", "baseline", "privileged"],
                                  "description": "Pod Security Standard the Namespace enforces, warns and audits at (default restricted)" },
                "namespace_labels": labels("extra labels on the Namespace (not name, pod-security.kubernetes.io/* or fleet's ownership labels)"),
                "namespace_annotations": labels("annotations on the Namespace"),
                "workload_type_label": string("node label that workload_type requires (default agent.ceo/workload-type)"),
                "manage_namespace": boolean("fleet creates and labels the namespace (default true); false: the namespace must exist, and fleet needs no cluster-scoped rights"),
                "service_monitor": table("the fleet's ServiceMonitor", json!({
                    "enabled": boolean("false: no ServiceMonitor"),
                    "name": string("name"),
                    "interval": { "type": "string", "pattern": "^(0|([0-9]+y)?([0-9]+w)?([0-9]+d)?([0-9]+h)?([0-9]+m)?([0-9]+s)?([0-9]+ms)?)$",
                                  "description": "scrape interval, as Prometheus writes durations (e.g. 30s, 1m30s)" },
                    "path": string("metrics path"),
                })),
            })),
            "environment": table("where an environment lives", json!({
                "kube_context": string("kubeconfig context"),
                "namespace": string("overrides [fleet] namespace"),
                "nats_url": string("the NATS server fleet connects to"),
                "nats_monitoring": string("host:port (or https://host:port) of the NATS monitoring endpoint as KEDA reaches it in the cluster (default: nats_url's host, port 8222)"),
                "nats_account": string("the NATS account of the streams, for KEDA (default $G, no accounts)"),
            })),
            "defaults": agent.clone(),
            "profiles": { "type": "object", "additionalProperties": profile },
            "agents": { "type": "object", "additionalProperties": agent },
            "streams": { "type": "object", "additionalProperties": stream },
            "rollout": table("apply's waves and the health gate between them", json!({
                "waves": { "type": "array", "items": { "type": "array", "items": { "type": "string" } },
                           "description": "waves of agent roles, in order; agents in no wave go last" },
                "by_tier": strings("waves by tier, in this order; agents of other tiers go last"),
                "one_at_a_time": boolean("each agent a wave of its own, in the order of the waves"),
                "soak": duration("how long a rolled-out wave's pods must stay ready without a restart before the next starts (default 0s)"),
                "on_failure": { "enum": ["halt", "rollback"], "description": "halt (default): stop at the failed wave; rollback: also put its Deployments back on their previous pod templates" },
            })),
            "nats_credentials": table("fleet mints each agent's NATS user (operator mode), allowed only its own subjects", json!({
                "enabled": boolean("false: fleet mints no credentials"),
                "account": string("public key of the account the agents' users belong to (A...)"),
                "validity": duration("how long a minted user is valid (default 30d)"),
                "renew_before": duration("a plan this close to a user's expiry mints it again (default a third of validity)"),
                "revoke": boolean("revoke superseded and removed users in the account JWT (apply then needs the operator signing key and system account creds; default false: they stay valid until they expire)"),
            })),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::super::decode::*;
    use super::*;

    fn properties<'a>(schema: &'a Value, path: &[&str]) -> Vec<&'a str> {
        let mut node = schema;
        for step in path {
            node = &node[*step];
        }
        let mut keys: Vec<&str> = node["properties"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort();
        keys
    }

    fn sorted(keys: &[&'static str]) -> Vec<&'static str> {
        let mut keys = keys.to_vec();
        keys.sort();
        keys
    }

    #[test]
    fn schema_knows_exactly_the_keys_the_loader_accepts() {
        let schema = schema();
        let agent = &schema["properties"]["agents"]["additionalProperties"];
        assert_eq!(properties(&schema, &[]), sorted(ROOT_KEYS));
        assert_eq!(
            properties(&schema, &["properties", "fleet"]),
            sorted(FLEET_KEYS)
        );
        assert_eq!(
            properties(&schema, &["properties", "environment"]),
            sorted(ENVIRONMENT_KEYS)
        );
        assert_eq!(properties(agent, &[]), sorted(AGENT_KEYS));
        assert_eq!(
            properties(agent, &["properties", "autoscaling"]),
            sorted(AUTOSCALING_KEYS)
        );
        assert_eq!(
            properties(agent, &["properties", "consumer"]),
            sorted(CONSUMER_KEYS)
        );
        assert_eq!(
            properties(agent, &["properties", "consumers", "additionalProperties"]),
            sorted(CONSUMERS_ENTRY_KEYS)
        );
        let rule = &agent["properties"]["network"]["properties"]["ingress"]["oneOf"][0]["items"];
        assert_eq!(
            properties(rule, &["properties", "from", "items"]),
            sorted(PEER_KEYS)
        );
        assert_eq!(
            properties(&rule["properties"]["ports"]["items"]["oneOf"][2], &[]),
            sorted(PORT_KEYS)
        );
        assert_eq!(
            properties(agent, &["properties", "placement"]),
            sorted(PLACEMENT_KEYS)
        );
        assert_eq!(
            properties(agent, &["properties", "security"]),
            sorted(SECURITY_KEYS)
        );
        assert_eq!(
            properties(agent, &["properties", "disruption_budget"]),
            sorted(DISRUPTION_BUDGET_KEYS)
        );
        assert_eq!(
            properties(agent, &["properties", "volumes", "additionalProperties"]),
            sorted(VOLUME_KEYS)
        );
        assert_eq!(
            properties(agent, &["properties", "env_from", "items"]),
            sorted(ENV_FROM_KEYS)
        );
        assert_eq!(
            properties(
                agent,
                &[
                    "properties",
                    "placement",
                    "properties",
                    "tolerations",
                    "items"
                ]
            ),
            sorted(TOLERATION_KEYS)
        );
        assert_eq!(
            properties(
                agent,
                &["properties", "autoscaling", "properties", "scale_up"]
            ),
            sorted(SCALING_KEYS)
        );
        assert_eq!(
            properties(
                &schema["properties"]["profiles"]["additionalProperties"],
                &[]
            ),
            sorted(PROFILE_KEYS)
        );
        assert_eq!(
            properties(
                &schema["properties"]["profiles"]["additionalProperties"],
                &["properties", "autoscaling"]
            ),
            sorted(PROFILE_AUTOSCALING_KEYS)
        );
        assert_eq!(
            properties(
                &schema["properties"]["streams"]["additionalProperties"],
                &[]
            ),
            sorted(STREAM_KEYS)
        );
        assert_eq!(
            properties(&schema, &["properties", "rollout"]),
            sorted(ROLLOUT_KEYS)
        );
    }
}
