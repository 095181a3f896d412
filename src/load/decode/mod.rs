//! The merged source tree -> a validated [`Fleet`]. Every check that needs a
//! position happens here, so the model that leaves `load` is known good.
//! This file reads the fleet as a whole; `agent`, `network` and `jetstream`
//! read the parts.

mod agent;
mod jetstream;
mod network;
mod patch;
mod rollout;
#[cfg(test)]
pub(in crate::load) use self::rollout::ROLLOUT_KEYS;

use self::agent::*;
use self::jetstream::*;
use super::diagnostic::Diagnostic;
use super::read::{At, Reader};
use super::source::{Node, Origin, Table, Value};
use crate::model::*;
use std::collections::BTreeMap;

pub use self::patch::PATCHABLE_KINDS;

pub(super) const ROOT_KEYS: &[&str] = &[
    "fleet",
    "environment",
    "defaults",
    "profiles",
    "agents",
    "streams",
    "rollout",
    "nats_credentials",
];

pub(super) const NATS_CREDENTIALS_KEYS: &[&str] =
    &["enabled", "account", "validity", "renew_before", "revoke"];

pub(super) const FLEET_KEYS: &[&str] = &[
    "name",
    "namespace",
    "label_domain",
    "service_monitor",
    "imperative_managers",
    "pod_security",
    "manage_namespace",
    "namespace_labels",
    "namespace_annotations",
    "workload_type_label",
];

pub(super) const ENVIRONMENT_KEYS: &[&str] = &[
    "kube_context",
    "namespace",
    "nats_url",
    "nats_monitoring",
    "nats_account",
];

pub(super) const SERVICE_MONITOR_KEYS: &[&str] = &["enabled", "name", "interval", "path"];

/// An agent's keys, in the order of the definition reference.
pub const AGENT_KEYS: &[&str] = &[
    "enabled",
    "tier",
    "profile",
    "image",
    "command",
    "args",
    "image_pull_secrets",
    "priority_class",
    "env",
    "env_from",
    "volumes",
    "nats_url",
    "config",
    "config_dir",
    "workspace_size",
    "replicas",
    "disruption_budget",
    "security",
    "ports",
    "liveness",
    "readiness",
    "resources",
    "placement",
    "autoscaling",
    "consumer",
    "consumers",
    "network",
    "publishes",
    "requests",
    "serves",
    "patch",
    "rbac",
    "metrics",
    "labels",
    "annotations",
];

pub(super) const PROFILE_KEYS: &[&str] = &[
    "requests",
    "limits",
    "node_selector",
    "workload_type",
    "node_affinity",
    "preferred_node_affinity",
    "tolerations",
    "zone_spread",
    "node_spread",
    "autoscaling",
];

pub(super) const RESOURCE_KEYS: &[&str] = &["cpu", "memory"];

pub(super) const RESOURCES_KEYS: &[&str] = &["requests", "limits"];

pub(super) const SECURITY_KEYS: &[&str] = &[
    "run_as_non_root",
    "run_as_user",
    "fs_group",
    "read_only_root_filesystem",
    "allow_privilege_escalation",
    "add_capabilities",
    "seccomp_profile",
];

pub(super) const PORTS_KEYS: &[&str] = &["metrics", "health"];

pub(super) const PROBE_KEYS: &[&str] = &["path", "initial_delay", "period", "timeout"];

pub(super) const PLACEMENT_KEYS: &[&str] = &[
    "node_selector",
    "workload_type",
    "node_affinity",
    "preferred_node_affinity",
    "tolerations",
    "zone_spread",
    "node_spread",
];

pub(super) const NODE_REQUIREMENT_KEYS: &[&str] = &["operator", "values"];

pub(super) const PREFERRED_TERM_KEYS: &[&str] = &["weight", "match"];

pub(super) const TOLERATION_KEYS: &[&str] =
    &["key", "operator", "value", "effect", "toleration_seconds"];

pub(super) const DISRUPTION_BUDGET_KEYS: &[&str] = &["enabled", "min_available", "max_unavailable"];

pub(super) const ENV_FROM_KEYS: &[&str] = &["config_map", "secret", "prefix"];

pub(super) const VOLUME_KEYS: &[&str] = &[
    "secret",
    "config_map",
    "mount_path",
    "read_only",
    "items",
    "sub_path",
];

pub(super) const AUTOSCALING_KEYS: &[&str] = &[
    "enabled",
    "engine",
    "min",
    "max",
    "pending_per_replica",
    "memory_utilization",
    "cpu_utilization",
    "scale_up",
    "scale_down",
    "activation_pending",
    "polling_interval",
    "cooldown",
    "fallback",
];

/// Keys only a KEDA ScaledObject has.
pub(super) const KEDA_ONLY_KEYS: &[&str] = &[
    "activation_pending",
    "polling_interval",
    "cooldown",
    "fallback",
];

/// What a profile may say about autoscaling: only which engine.
pub(super) const PROFILE_AUTOSCALING_KEYS: &[&str] = &["engine"];

pub(super) const SCALING_KEYS: &[&str] = &["stabilization", "pods", "percent", "period"];

pub(super) const CONSUMER_KEYS: &[&str] = &[
    "enabled",
    "stream",
    "filter_subjects",
    "deliver_policy",
    "ack_wait",
    "max_deliver",
    "max_ack_pending",
    "backoff",
    "inactive_threshold",
    "description",
];

/// `consumers.<stream>`: a consumer's keys, less `stream` (its key).
pub(super) const CONSUMERS_ENTRY_KEYS: &[&str] = &[
    "enabled",
    "filter_subjects",
    "deliver_policy",
    "ack_wait",
    "max_deliver",
    "max_ack_pending",
    "backoff",
    "inactive_threshold",
    "description",
];

pub(super) const NETWORK_KEYS: &[&str] = &["enabled", "ingress", "egress"];

pub(super) const INGRESS_RULE_KEYS: &[&str] = &["from", "ports"];

pub(super) const EGRESS_RULE_KEYS: &[&str] = &["to", "ports"];

pub(super) const PEER_KEYS: &[&str] = &["pods", "namespaces", "agent", "cidr", "except"];

pub(super) const PORT_KEYS: &[&str] = &["port", "end_port", "protocol"];

pub(super) const RBAC_KEYS: &[&str] = &["api_groups", "resources", "verbs", "resource_names"];

pub(super) const ENV_REF_KEYS: &[&str] = &["secret", "config_map", "key"];

pub(super) const CONFIG_FILE_KEYS: &[&str] = &["file"];

pub(super) const STREAM_KEYS: &[&str] = &[
    "enabled",
    "name",
    "subjects",
    "retention",
    "storage",
    "replicas",
    "max_age",
    "max_bytes",
    "max_msgs",
    "max_msg_size",
    "discard",
    "duplicate_window",
    "description",
    "max_msgs_per_subject",
    "allow_direct",
    "compression",
    "sources",
];

pub(super) const SOURCE_KEYS: &[&str] = &["stream", "filter_subject"];

/// Reads config files that agents name by path; `load` supplies the real
/// file system, tests a map.
pub trait ConfigFiles {
    /// The file's text, or a message saying why it cannot be read.
    fn read(&self, path: &str) -> Result<String, String>;
}

pub struct Decoded {
    pub fleet: Option<Fleet>,
    pub diagnostics: Vec<Diagnostic>,
}

pub fn decode(root: &Node, environment: Option<&str>, files: &dyn ConfigFiles) -> Decoded {
    let mut r = Reader::default();
    let fleet = decode_fleet(&mut r, root, environment, files);
    let has_errors = r
        .diagnostics
        .iter()
        .any(|d| d.severity == super::diagnostic::Severity::Error);
    Decoded {
        fleet: if has_errors { None } else { fleet },
        diagnostics: r.diagnostics,
    }
}

fn decode_fleet(
    r: &mut Reader,
    root: &Node,
    environment: Option<&str>,
    files: &dyn ConfigFiles,
) -> Option<Fleet> {
    let root_table = r.table(root)?;
    r.check_keys(root_table, "the fleet definition", ROOT_KEYS);

    let empty = Table::default();
    let fleet_at = r.get_table(root_table, "fleet");
    let fleet_table = fleet_at.as_ref().map_or(&empty, |t| t.value);
    r.check_keys(fleet_table, "[fleet]", FLEET_KEYS);
    // A missing setting of [fleet] is reported at its header in the fleet
    // file, or at the fleet file when it has none.
    let fleet_origin = fleet_at
        .map(|t| t.origin)
        .filter(|origin| origin.file == root.origin.file)
        .unwrap_or_else(|| root.origin.clone());
    let name = required_string(r, fleet_table, "name", "[fleet]", &fleet_origin)
        .and_then(|name| dns_label(r, &name, "fleet name", 63));

    let env_table = r
        .get_table(root_table, "environment")
        .map_or(&empty, |t| t.value);
    r.check_keys(env_table, "[environment]", ENVIRONMENT_KEYS);
    let namespace = r
        .string(env_table, "namespace")
        .or_else(|| r.string(fleet_table, "namespace"))
        .or_else(|| {
            r.report(
                Diagnostic::error(&fleet_origin, "the fleet has no namespace")
                    .with_label("`namespace` is required here")
                    .with_help("set `namespace` under [fleet] (or under [environment] in the environment file)"),
            );
            None
        })
        .and_then(|ns| dns_label(r, &ns, "namespace", 63));
    // fleet.toml's namespace, when the environment moves the fleet away from it.
    let base_namespace = fleet_table
        .get("namespace")
        .and_then(|entry| match &entry.node.value {
            Value::String(text) => Some(text.clone()),
            _ => None,
        });
    let moved_namespace = match (&base_namespace, &namespace) {
        (Some(from), Some(to)) if from != to => Some((from.as_str(), to.as_str())),
        _ => None,
    };
    let endpoints = Endpoints {
        kube_context: r.string(env_table, "kube_context").map(|c| c.value),
        nats_url: r.string(env_table, "nats_url").map(|u| u.value),
    };
    let nats_monitoring = r.string(env_table, "nats_monitoring");
    let nats_account = r.string(env_table, "nats_account");

    let label_domain = r
        .string(fleet_table, "label_domain")
        .map(|d| d.value)
        .unwrap_or_default();
    let pod_security = decode_pod_security(r, fleet_table);
    // The built-in defaults set it, so it is only missing when it is invalid.
    let manage_namespace = r.boolean(fleet_table, "manage_namespace").unwrap_or(true);
    // Its own setting, so that another label domain does not move the
    // cognitive profile's nodes; the built-in defaults set the seed's key.
    let workload_type_label = r
        .string(fleet_table, "workload_type_label")
        .and_then(|key| label_key(r, &key, "node label"))
        .unwrap_or_else(|| "agent.ceo/workload-type".into());
    let (namespace_labels, namespace_annotations) =
        decode_namespace_metadata(r, fleet_table, manage_namespace);
    let service_monitor = r.get_table(fleet_table, "service_monitor").and_then(|t| {
        let t = t.value;
        r.check_keys(t, "[fleet.service_monitor]", SERVICE_MONITOR_KEYS);
        if r.boolean(t, "enabled") == Some(false) {
            return None;
        }
        let name = r
            .string(t, "name")
            .and_then(|n| dns_label(r, &n, "ServiceMonitor name", 63))?;
        let interval = match r.string(t, "interval") {
            Some(interval) => scrape_interval(r, &interval)?,
            None => "30s".into(),
        };
        Some(ServiceMonitor {
            name,
            interval,
            path: r.string(t, "path").map_or("/metrics".into(), |p| p.value),
        })
    });

    let imperative_managers = r
        .strings(fleet_table, "imperative_managers")
        .unwrap_or_default()
        .into_iter()
        .map(|m| m.value)
        .collect();

    let streams = decode_streams(r, root_table);
    let profiles = r
        .get_table(root_table, "profiles")
        .map(|t| t.value.clone())
        .unwrap_or_default();
    for entry in &profiles.entries {
        if let Some(profile) = r.table(&entry.node) {
            r.check_keys(profile, &format!("profile `{}`", entry.key), PROFILE_KEYS);
            if let Some(autoscaling) = r.get_table(profile, "autoscaling") {
                let what = format!("profile `{}` autoscaling", entry.key);
                r.check_keys(autoscaling.value, &what, PROFILE_AUTOSCALING_KEYS);
            }
        }
    }

    // [defaults] of another type would be replaced by each agent's table,
    // silently: say so instead.
    let defaults = root_table
        .get("defaults")
        .filter(|e| r.table(&e.node).is_some())
        .map(|e| e.node.clone());
    // Keys are checked where they are written: [defaults] once, each agent
    // in its own table, so a typo in [defaults] is not reported per agent.
    if let Some(Value::Table(defaults)) = defaults.as_ref().map(|d| &d.value) {
        r.check_keys(defaults, "[defaults]", AGENT_KEYS);
    }
    let mut merged_agents = Vec::new();
    if let Some(agents_table) = r.get_table(root_table, "agents") {
        for entry in &agents_table.value.entries {
            let Some(own) = r.table(&entry.node) else {
                continue;
            };
            r.check_keys(own, &format!("agent `{}`", entry.key), AGENT_KEYS);
            // Each agent is its own table laid over [defaults].
            let mut merged = match &defaults {
                Some(defaults) => defaults.clone(),
                None => Node {
                    value: Value::Table(Table::default()),
                    origin: entry.node.origin.clone(),
                },
            };
            super::merge::overlay(&mut merged, &entry.node);
            merged_agents.push((entry, own, merged));
        }
    }
    // Network rules may name the agents the fleet runs (whether or not they
    // have problems of their own).
    let running: Vec<&str> = merged_agents
        .iter()
        .filter(|(_, _, merged)| !disabled(merged))
        .map(|(entry, _, _)| entry.key.as_str())
        .collect();
    let mut agents = Vec::new();
    for (entry, own, merged) in &merged_agents {
        let context = AgentContext {
            role_origin: &entry.key_origin,
            own,
            workload_type_label: &workload_type_label,
            profiles: &profiles,
            streams: &streams,
            running: &running,
            pod_security: pod_security.as_ref(),
            namespace: namespace.as_deref(),
            moved_namespace,
            manage_namespace,
            environment,
            nats_monitoring: nats_monitoring.as_ref(),
            nats_account: nats_account.as_ref(),
            files,
        };
        if let Some(agent) = decode_agent(r, &entry.key, merged, &context) {
            agents.push(agent);
        }
    }
    agents.sort_by(|a, b| a.role.cmp(&b.role));
    let declared: Vec<&str> = merged_agents
        .iter()
        .map(|(entry, _, _)| entry.key.as_str())
        .collect();
    let rollout = rollout::decode_rollout(r, root_table, &declared, &agents);
    let nats_credentials = decode_nats_credentials(r, root_table);

    let mut streams: Vec<Stream> = streams.into_iter().filter_map(|s| s.stream).collect();
    streams.sort_by(|a, b| a.name.cmp(&b.name));

    Some(Fleet {
        name: name?,
        environment: environment.map(str::to_string),
        namespace: namespace?,
        label_domain,
        imperative_managers,
        pod_security: pod_security?.value,
        manage_namespace,
        namespace_labels,
        namespace_annotations,
        endpoints,
        service_monitor: service_monitor.filter(|_| agents.iter().any(|a| a.metrics)),
        nats_credentials,
        agents,
        streams,
        rollout,
    })
}

/// `[fleet] pod_security`: the level the fleet's Namespace enforces. The
/// built-in defaults set it, so it is only missing when it is invalid.
fn decode_pod_security(r: &mut Reader, fleet: &Table) -> Option<At<PodSecurityLevel>> {
    let text = r.string(fleet, "pod_security")?;
    let level = PodSecurityLevel::ALL
        .into_iter()
        .find(|level| level.as_str() == text.value);
    if let Some(level) = level {
        return Some(At {
            value: level,
            origin: text.origin,
        });
    }
    let names: Vec<&str> = PodSecurityLevel::ALL.iter().map(|l| l.as_str()).collect();
    let mut d = Diagnostic::error(
        &text.origin,
        format!("`{}` is not a Pod Security level", text.value),
    )
    .with_label("not a level");
    d = match super::read::suggest(&text.value.to_ascii_lowercase(), &names) {
        Some(best) => d.with_help(format!("did you mean `{best}`?")),
        None => d.with_help("use one of: restricted, baseline, privileged"),
    };
    r.report(d);
    None
}

/// `[fleet] namespace_labels` and `namespace_annotations`: what fleet adds
/// to the Namespace it renders. Fleet's own labels (`name`, which the seed's
/// network policies select on, its ownership marks, and the Pod Security
/// labels that `pod_security` sets) cannot be set here.
fn decode_namespace_metadata(
    r: &mut Reader,
    fleet: &Table,
    manage_namespace: bool,
) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let mut out = (BTreeMap::new(), BTreeMap::new());
    for key in ["namespace_labels", "namespace_annotations"] {
        let Some(table) = r.get_table(fleet, key) else {
            continue;
        };
        if !manage_namespace && !table.value.entries.is_empty() {
            r.report(
                // A warning: an environment may leave the namespace to its
                // administrators while the fleet file sets these for the rest.
                Diagnostic::warning(&table.origin, format!("`{key}` is ignored: fleet does not manage the namespace"))
                    .with_label("fleet renders no Namespace to put these on")
                    .with_help("the namespace's administrators label it; remove this, or set `manage_namespace = true`"),
            );
            continue;
        }
        let labels = key == "namespace_labels";
        for (entry, value) in r.string_entries(table.value) {
            let name = At {
                value: entry.key.clone(),
                origin: entry.key_origin.clone(),
            };
            let what = if labels { "label" } else { "annotation" };
            let Some(name) = label_key(r, &name, &format!("namespace {what}")) else {
                continue;
            };
            let owned = if name.starts_with("pod-security.kubernetes.io/") {
                Some("set by `pod_security` under [fleet]")
            } else if name == "kubernetes.io/metadata.name" {
                Some("the API server sets it (fleet reads it back as the namespace's name)")
            } else if name == "name" {
                Some("set by fleet to the namespace's name (network policies select on it)")
            } else if name == crate::ownership::MANAGED_BY_LABEL
                || name == crate::ownership::PART_OF_LABEL
            {
                Some("one of fleet's ownership marks")
            } else {
                None
            };
            if labels && let Some(owned) = owned {
                r.report(
                    Diagnostic::error(
                        &entry.key_origin,
                        format!("namespace label `{name}` is fleet's own"),
                    )
                    .with_label(owned)
                    .with_help("remove it from `namespace_labels`"),
                );
                continue;
            }
            if labels && !valid_label_value(&value.value) {
                r.report(
                    Diagnostic::error(&value.origin, format!("`{}` is not a valid label value", value.value))
                        .with_label("not a label value")
                        .with_help("use at most 63 letters, digits, '-', '_' and '.', starting and ending with a letter or digit (or leave it empty)"),
                );
                continue;
            }
            let map = if labels { &mut out.0 } else { &mut out.1 };
            map.insert(name, value.value);
        }
    }
    out
}

/// A label (or annotation) key: an optional DNS subdomain prefix and '/',
/// then a name of at most 63 letters, digits, '-', '_' and '.', starting and
/// ending with a letter or digit.
pub(super) fn label_key(r: &mut Reader, key: &At<String>, what: &str) -> Option<String> {
    let (prefix, name) = match key.value.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key.value.as_str()),
    };
    let prefix_ok = prefix.is_none_or(|p| {
        p.len() <= 253
            && p.split('.').all(|part| {
                !part.is_empty()
                    && part
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    && !part.starts_with('-')
                    && !part.ends_with('-')
            })
    });
    if prefix_ok && !name.is_empty() && valid_label_value(name) {
        return Some(key.value.clone());
    }
    r.report(
        Diagnostic::error(&key.origin, format!("`{}` is not a valid {what} key", key.value))
            .with_label("not a label key")
            .with_help("write an optional DNS prefix and '/', then at most 63 letters, digits, '-', '_' and '.', starting and ending with a letter or digit, e.g. \"example.com/team\""),
    );
    None
}

/// A label value: empty, or at most 63 letters, digits, '-', '_' and '.',
/// starting and ending with a letter or digit.
pub(super) fn valid_label_value(value: &str) -> bool {
    value.is_empty()
        || (value.len() <= 63
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            && value.starts_with(|c: char| c.is_ascii_alphanumeric())
            && value.ends_with(|c: char| c.is_ascii_alphanumeric()))
}

/// Whether a table (an agent, a consumer) says `enabled = false`.
fn disabled(node: &Node) -> bool {
    matches!(&node.value, Value::Table(t)
        if matches!(t.get("enabled").map(|e| &e.node.value), Some(Value::Boolean(false))))
}

fn required_string(
    r: &mut Reader,
    table: &Table,
    key: &str,
    what: &str,
    origin: &Origin,
) -> Option<At<String>> {
    let value = r.string(table, key);
    if value.is_none() && table.get(key).is_none() {
        r.report(
            Diagnostic::error(origin, format!("{what} has no `{key}`"))
                .with_label(format!("`{key}` is required here"))
                .with_help(format!("add `{key} = \"...\"` to {what}")),
        );
    }
    value
}

/// A DNS-1123 label: lower-case alphanumerics and '-', starting and ending
/// with an alphanumeric, at most `max` characters.
fn dns_label(r: &mut Reader, name: &At<String>, what: &str, max: usize) -> Option<String> {
    let s = &name.value;
    let ok = !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-');
    if ok {
        return Some(s.clone());
    }
    r.report(
        Diagnostic::error(&name.origin, format!("`{s}` is not a valid {what}"))
            .with_label("not a valid Kubernetes name")
            .with_help(format!(
                "use at most {max} lower-case letters, digits and '-', starting and ending with a letter or digit"
            )),
    );
    None
}

/// A ServiceMonitor's scrape interval, written as the Prometheus operator's
/// CRD takes it (its schema's pattern): whole numbers with units from the
/// largest to the smallest, each at most once (`30s`, `1m30s`, `2h`); the
/// API server refuses anything else (`90`, `1.5m`, `30s1m`).
fn scrape_interval(r: &mut Reader, interval: &At<String>) -> Option<String> {
    if is_prometheus_duration(&interval.value) {
        return Some(interval.value.clone());
    }
    r.report(
        Diagnostic::error(
            &interval.origin,
            format!("`{}` is not a Prometheus duration", interval.value),
        )
        .with_label("the ServiceMonitor's CRD refuses this scrape interval")
        .with_help("write whole numbers with units from largest to smallest, each at most once (y, w, d, h, m, s, ms), e.g. \"30s\", \"1m30s\""),
    );
    None
}

/// `^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$`,
/// the Prometheus operator's pattern for durations, less the empty string
/// (an unset interval is written by leaving the key out).
pub(super) fn is_prometheus_duration(text: &str) -> bool {
    const UNITS: [&str; 7] = ["y", "w", "d", "h", "m", "s", "ms"];
    if text == "0" {
        return true;
    }
    let mut rest = text;
    let mut next_unit = 0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let after = &rest[digits..];
        // The longest unit that follows, among those still allowed.
        let Some(unit) = (next_unit..UNITS.len())
            .filter(|&u| after.starts_with(UNITS[u]))
            .max_by_key(|&u| UNITS[u].len())
        else {
            return false;
        };
        if digits == 0 {
            return false;
        }
        rest = &after[UNITS[unit].len()..];
        next_unit = unit + 1;
    }
    !text.is_empty()
}

fn dns_subdomain(r: &mut Reader, name: &At<String>, what: &str) -> Option<String> {
    let ok = name.value.len() <= 253
        && name.value.split('.').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        });
    if ok {
        return Some(name.value.clone());
    }
    r.report(
        Diagnostic::error(
            &name.origin,
            format!("`{}` is not a valid {what}", name.value),
        )
        .with_label("not a valid Kubernetes name"),
    );
    None
}

/// `[nats_credentials]`: fleet mints each agent's NATS user in this
/// account (by its public key), valid this long, renewed this long before
/// it expires.
fn decode_nats_credentials(r: &mut Reader, root: &Table) -> Option<NatsCredentials> {
    let table = r.get_table(root, "nats_credentials")?;
    let t = table.value;
    r.check_keys(t, "[nats_credentials]", NATS_CREDENTIALS_KEYS);
    if r.boolean(t, "enabled") == Some(false) {
        return None;
    }
    let account = required_string(r, t, "account", "[nats_credentials]", &table.origin)?;
    let is_account_key = account.value.len() == 56
        && account.value.starts_with('A')
        && account
            .value
            .bytes()
            .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b));
    if !is_account_key {
        r.report(
            Diagnostic::error(&account.origin, format!("`{}` is not a NATS account's public key", account.value))
                .with_label("expected 56 characters starting with A")
                .with_help("give the public key of the account the agents' users belong to (`nsc describe account`, the `sub` of its JWT); never its seed"),
        );
        return None;
    }
    const DAY: u64 = 86_400;
    let validity = r
        .duration_ns(t, "validity")
        .map_or(std::time::Duration::from_secs(30 * DAY), |d| d.value);
    let renew_before = r.duration_ns(t, "renew_before");
    if let Some(renew) = &renew_before
        && renew.value >= validity
    {
        r.report(
            Diagnostic::error(
                &renew.origin,
                "`renew_before` must be shorter than `validity`",
            )
            .with_label("every plan would renew the credentials")
            .with_help("e.g. validity = \"30d\", renew_before = \"10d\""),
        );
        return None;
    }
    Some(NatsCredentials {
        account: account.value,
        validity,
        renew_before: renew_before.map_or(validity / 3, |r| r.value),
        revoke: r.boolean(t, "revoke").unwrap_or(false),
    })
}

#[cfg(test)]
mod tests {
    use super::is_prometheus_duration;

    #[test]
    fn prometheus_durations_follow_the_operators_pattern() {
        for ok in [
            "30s",
            "1m30s",
            "2h",
            "1d12h",
            "1y2w3d4h5m6s7ms",
            "500ms",
            "1m5ms",
            "0",
        ] {
            assert!(is_prometheus_duration(ok), "{ok}");
        }
        for bad in [
            "", "90", "1.5m", "30s1m", "1m1m", "s", "ms", "1x", "00", " 30s", "-1s", "1sms",
        ] {
            assert!(!is_prometheus_duration(bad), "{bad}");
        }
    }
}
