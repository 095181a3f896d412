//! The merged source tree -> a validated [`Fleet`]. Every check that needs a
//! position happens here, so the model that leaves `load` is known good.

use std::collections::BTreeMap;
use std::time::Duration;

use super::diagnostic::Diagnostic;
use super::read::{At, Reader, suggest};
use super::source::{Node, Origin, Table, Value};
use crate::model::*;

pub(super) const ROOT_KEYS: &[&str] = &[
    "fleet",
    "environment",
    "defaults",
    "profiles",
    "agents",
    "streams",
];
pub(super) const FLEET_KEYS: &[&str] = &["name", "namespace", "label_domain", "service_monitor"];
pub(super) const ENVIRONMENT_KEYS: &[&str] = &["kube_context", "namespace", "nats_url"];
pub(super) const SERVICE_MONITOR_KEYS: &[&str] = &["enabled", "name", "interval", "path"];
pub(super) const AGENT_KEYS: &[&str] = &[
    "enabled",
    "tier",
    "profile",
    "image",
    "args",
    "env",
    "nats_url",
    "config",
    "config_dir",
    "workspace_size",
    "replicas",
    "security",
    "ports",
    "liveness",
    "readiness",
    "resources",
    "placement",
    "autoscaling",
    "consumer",
    "network",
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
    "zone_spread",
];
pub(super) const RESOURCE_KEYS: &[&str] = &["cpu", "memory"];
pub(super) const RESOURCES_KEYS: &[&str] = &["requests", "limits"];
pub(super) const SECURITY_KEYS: &[&str] = &["run_as_non_root", "run_as_user", "fs_group"];
pub(super) const PORTS_KEYS: &[&str] = &["metrics", "health"];
pub(super) const PROBE_KEYS: &[&str] = &["path", "initial_delay", "period", "timeout"];
pub(super) const PLACEMENT_KEYS: &[&str] = &[
    "node_selector",
    "workload_type",
    "node_affinity",
    "zone_spread",
];
pub(super) const AUTOSCALING_KEYS: &[&str] = &[
    "enabled",
    "min",
    "max",
    "pending_per_replica",
    "memory_utilization",
    "scale_up",
    "scale_down",
];
pub(super) const SCALING_KEYS: &[&str] = &["stabilization", "pods", "period"];
pub(super) const CONSUMER_KEYS: &[&str] = &[
    "enabled",
    "stream",
    "filter_subjects",
    "ack_wait",
    "max_deliver",
    "max_ack_pending",
    "backoff",
    "description",
];
pub(super) const NETWORK_KEYS: &[&str] = &["enabled", "ingress", "egress"];
pub(super) const INGRESS_RULE_KEYS: &[&str] = &["from", "ports"];
pub(super) const EGRESS_RULE_KEYS: &[&str] = &["to", "ports"];
pub(super) const PEER_KEYS: &[&str] = &["pods", "namespaces", "agent", "cidr"];
pub(super) const RBAC_KEYS: &[&str] = &["api_groups", "resources", "verbs", "resource_names"];
pub(super) const ENV_SECRET_KEYS: &[&str] = &["secret", "key"];
pub(super) const CONFIG_FILE_KEYS: &[&str] = &["file"];
pub(super) const STREAM_KEYS: &[&str] = &[
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
];

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
    let target = Target {
        kube_context: r.string(env_table, "kube_context").map(|c| c.value),
        nats_url: r.string(env_table, "nats_url").map(|u| u.value),
    };

    let label_domain = r
        .string(fleet_table, "label_domain")
        .map(|d| d.value)
        .unwrap_or_default();
    let service_monitor = r.get_table(fleet_table, "service_monitor").and_then(|t| {
        let t = t.value;
        r.check_keys(t, "[fleet.service_monitor]", SERVICE_MONITOR_KEYS);
        if r.boolean(t, "enabled") == Some(false) {
            return None;
        }
        let name = r
            .string(t, "name")
            .and_then(|n| dns_label(r, &n, "ServiceMonitor name", 63))?;
        Some(ServiceMonitor {
            name,
            interval: r.string(t, "interval").map_or("30s".into(), |i| i.value),
            path: r.string(t, "path").map_or("/metrics".into(), |p| p.value),
        })
    });

    let streams = decode_streams(r, root_table);
    let profiles = r
        .get_table(root_table, "profiles")
        .map(|t| t.value.clone())
        .unwrap_or_default();
    for entry in &profiles.entries {
        if let Some(profile) = r.table(&entry.node) {
            r.check_keys(profile, &format!("profile `{}`", entry.key), PROFILE_KEYS);
        }
    }

    let defaults = root_table.get("defaults").map(|e| e.node.clone());
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
            merged_agents.push((entry, merged));
        }
    }
    // Network rules may name the agents the fleet runs (whether or not they
    // have problems of their own).
    let running: Vec<&str> = merged_agents
        .iter()
        .filter(|(_, merged)| !disabled(merged))
        .map(|(entry, _)| entry.key.as_str())
        .collect();
    let mut agents = Vec::new();
    for (entry, merged) in &merged_agents {
        let context = AgentContext {
            role_origin: &entry.key_origin,
            profiles: &profiles,
            streams: &streams,
            running: &running,
            label_domain: &label_domain,
            environment,
            files,
        };
        if let Some(agent) = decode_agent(r, &entry.key, merged, &context) {
            agents.push(agent);
        }
    }
    agents.sort_by(|a, b| a.role.cmp(&b.role));

    let mut streams: Vec<Stream> = streams.into_iter().map(|s| s.value).collect();
    streams.sort_by(|a, b| a.name.cmp(&b.name));

    Some(Fleet {
        name: name?,
        environment: environment.map(str::to_string),
        namespace: namespace?,
        label_domain,
        target,
        service_monitor: service_monitor.filter(|_| agents.iter().any(|a| a.metrics)),
        agents,
        streams,
    })
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

struct AgentContext<'a> {
    role_origin: &'a Origin,
    profiles: &'a Table,
    streams: &'a [At<Stream>],
    /// The roles of the agents the fleet runs (not disabled).
    running: &'a [&'a str],
    label_domain: &'a str,
    environment: Option<&'a str>,
    files: &'a dyn ConfigFiles,
}

// The longest suffix fleet adds to `agent-<role>` is "-network".
const MAX_ROLE_LEN: usize = 63 - "agent-".len() - "-network".len();

fn decode_agent(r: &mut Reader, role: &str, node: &Node, cx: &AgentContext<'_>) -> Option<Agent> {
    let t = r.table(node)?;
    let what = format!("agent `{role}`");
    if r.boolean(t, "enabled") == Some(false) {
        return None;
    }
    let role_at = At {
        value: role.to_string(),
        origin: cx.role_origin.clone(),
    };
    let role_ok = dns_label(r, &role_at, "agent role", MAX_ROLE_LEN);

    let image = required_string(r, t, "image", &what, cx.role_origin);
    if let (Some(image), Some(env)) = (&image, cx.environment)
        && env.starts_with("prod")
        && (image.value.ends_with(":latest")
            || !image.value.rsplit('/').next().unwrap_or("").contains(':'))
    {
        r.report(
            Diagnostic::warning(
                &image.origin,
                format!(
                    "image `{}` uses tag `latest` in environment `{env}`",
                    image.value
                ),
            )
            .with_label("a moving tag")
            .with_help("pin a version (or a digest) so a rollout is repeatable"),
        );
    }
    let nats_url = required_string(r, t, "nats_url", &what, cx.role_origin);

    let profile = decode_profile(r, t, cx);
    let resources = decode_resources(r, t, profile, role);
    let placement = decode_placement(r, t, profile, cx.label_domain);
    let config_files = decode_config(r, t, cx.files);
    let args = match r.strings(t, "args") {
        Some(args) => args.into_iter().map(|a| a.value).collect(),
        None => {
            let config_dir = r
                .string(t, "config_dir")
                .map_or("/etc/agent".into(), |d| d.value);
            let mut args = vec![format!("--role={role}")];
            if !config_files.is_empty() {
                args.push(format!("--config={config_dir}/config.yaml"));
            }
            args
        }
    };

    let security_table = r.get_table(t, "security").map(|s| s.value);
    let security = security_table.map(|s| {
        r.check_keys(s, "security", SECURITY_KEYS);
        SecurityContext {
            run_as_non_root: r.boolean(s, "run_as_non_root").unwrap_or(true),
            run_as_user: r
                .integer(s, "run_as_user", 0, i32::MAX.into())
                .map_or(1000, |v| v.value),
            fs_group: r
                .integer(s, "fs_group", 0, i32::MAX.into())
                .map_or(1000, |v| v.value),
        }
    });
    let ports = r.get_table(t, "ports").map(|p| p.value);
    let (metrics_port, health_port) = match ports {
        Some(p) => {
            r.check_keys(p, "ports", PORTS_KEYS);
            (
                r.integer(p, "metrics", 1, 65535)
                    .map_or(9090, |v| v.value as u16),
                r.integer(p, "health", 1, 65535)
                    .map_or(8080, |v| v.value as u16),
            )
        }
        None => (9090, 8080),
    };
    let liveness = decode_probe(r, t, "liveness", "/healthz");
    let readiness = decode_probe(r, t, "readiness", "/readyz");
    let autoscaling = decode_autoscaling(r, t, &resources, cx.role_origin);
    let consumer = decode_consumer(r, t, role, cx);
    // A consumer that is configured but has problems was reported already.
    let consumer_configured = matches!(t.get("consumer"), Some(c) if !disabled(&c.node));
    if let (Some(autoscaling), None) = (&autoscaling, &consumer)
        && autoscaling.pending_per_replica.is_some()
        && !consumer_configured
    {
        r.report(
            Diagnostic::error(cx.role_origin, format!("agent `{role}` scales on pending tasks but has no consumer"))
                .with_label("in this agent")
                .with_help("give the agent a `consumer` (with a `stream`), or drop `autoscaling.pending_per_replica`"),
        );
    }
    let env = decode_env(r, t);
    let network = decode_network(r, t, cx.running);
    let rbac = decode_rbac(r, t);
    let labels = r.string_map(t, "labels").unwrap_or_default();
    let annotations = r.string_map(t, "annotations").unwrap_or_default();
    let tier = r
        .string(t, "tier")
        .and_then(|tier| dns_label(r, &tier, "tier", 63));

    Some(Agent {
        role: role_ok?,
        tier,
        image: image?.value,
        args,
        env,
        nats_url: nats_url?.value,
        config_dir: r
            .string(t, "config_dir")
            .map_or("/etc/agent".into(), |d| d.value),
        config_files,
        workspace_size: r.quantity(t, "workspace_size").map(|q| q.value),
        replicas: r
            .integer(t, "replicas", 0, 10_000)
            .map_or(1, |v| v.value as u32),
        security: security.unwrap_or(SecurityContext {
            run_as_non_root: true,
            run_as_user: 1000,
            fs_group: 1000,
        }),
        metrics_port,
        health_port,
        liveness,
        readiness,
        resources,
        placement,
        autoscaling,
        consumer,
        network,
        rbac,
        metrics: r.boolean(t, "metrics").unwrap_or(true),
        labels,
        annotations,
    })
}

/// The agent's profile table, or `None` (with a diagnostic when it names an
/// unknown profile).
fn decode_profile<'a>(r: &mut Reader, t: &Table, cx: &AgentContext<'a>) -> Option<&'a Table> {
    let name = r.string(t, "profile")?;
    match cx.profiles.get(&name.value) {
        Some(entry) => match &entry.node.value {
            Value::Table(profile) => Some(profile),
            _ => None,
        },
        None => {
            let known: Vec<&str> = cx.profiles.entries.iter().map(|e| e.key.as_str()).collect();
            let mut d =
                Diagnostic::error(&name.origin, format!("unknown profile `{}`", name.value))
                    .with_label("no such profile");
            d = match suggest(&name.value, &known) {
                Some(best) => d.with_help(format!("did you mean `{best}`?")),
                None => d.with_help(format!(
                    "define [profiles.{}] or use one of: {}",
                    name.value,
                    known.join(", ")
                )),
            };
            r.report(d);
            None
        }
    }
}

fn decode_resource_list(
    r: &mut Reader,
    t: &Table,
    key: &str,
) -> (ResourceList, Option<Origin>, Option<Origin>) {
    let Some(list) = r.get_table(t, key) else {
        return (ResourceList::default(), None, None);
    };
    r.check_keys(list.value, key, RESOURCE_KEYS);
    let cpu = r.quantity(list.value, "cpu");
    let memory = r.quantity(list.value, "memory");
    let origins = (
        cpu.as_ref().map(|c| c.origin.clone()),
        memory.as_ref().map(|m| m.origin.clone()),
    );
    (
        ResourceList {
            cpu: cpu.map(|c| c.value),
            memory: memory.map(|m| m.value),
        },
        origins.0,
        origins.1,
    )
}

/// The profile's requests and limits with the agent's `resources` laid over
/// them, field by field; requests must not exceed limits.
fn decode_resources(r: &mut Reader, t: &Table, profile: Option<&Table>, role: &str) -> Resources {
    let empty = Table::default();
    let profile = profile.unwrap_or(&empty);
    let own = r
        .get_table(t, "resources")
        .map(|o| o.value)
        .unwrap_or(&empty);
    r.check_keys(own, "resources", RESOURCES_KEYS);

    let (p_req, p_req_cpu, p_req_mem) = decode_resource_list(r, profile, "requests");
    let (p_lim, p_lim_cpu, p_lim_mem) = decode_resource_list(r, profile, "limits");
    let (o_req, o_req_cpu, o_req_mem) = decode_resource_list(r, own, "requests");
    let (o_lim, o_lim_cpu, o_lim_mem) = decode_resource_list(r, own, "limits");

    // The value, where it was written, and whether the agent's own
    // `resources` set it (rather than its profile).
    let pick = |own: Option<Quantity>,
                own_at: Option<Origin>,
                base: Option<Quantity>,
                base_at: Option<Origin>| {
        if own.is_some() {
            (own, own_at, true)
        } else {
            (base, base_at, false)
        }
    };
    let req_cpu = pick(o_req.cpu, o_req_cpu, p_req.cpu, p_req_cpu);
    let req_mem = pick(o_req.memory, o_req_mem, p_req.memory, p_req_mem);
    let lim_cpu = pick(o_lim.cpu, o_lim_cpu, p_lim.cpu, p_lim_cpu);
    let lim_mem = pick(o_lim.memory, o_lim_mem, p_lim.memory, p_lim_mem);

    for (resource, request, limit) in [("cpu", &req_cpu, &lim_cpu), ("memory", &req_mem, &lim_mem)]
    {
        let ((Some(request), request_at, request_own), (Some(limit), limit_at, limit_own)) =
            (request, limit)
        else {
            continue;
        };
        // Point at what the agent itself set: the request, unless only the
        // limit is its own (the request then comes from its profile, which
        // may be a built-in one).
        let at = if *limit_own && !request_own {
            limit_at
        } else {
            request_at
        };
        if let Some(at) = at
            && request.value > limit.value
        {
            r.report(
                Diagnostic::error(at, format!("agent `{role}` requests more {resource} ({}) than its limit ({})", request.text, limit.text))
                    .with_label("request above limit")
                    .with_help(format!("lower the {resource} request or raise the limit; Kubernetes refuses requests above limits")),
            );
        }
    }
    Resources {
        requests: ResourceList {
            cpu: req_cpu.0,
            memory: req_mem.0,
        },
        limits: ResourceList {
            cpu: lim_cpu.0,
            memory: lim_mem.0,
        },
    }
}

fn decode_placement(
    r: &mut Reader,
    t: &Table,
    profile: Option<&Table>,
    label_domain: &str,
) -> Placement {
    let mut placement = Placement::default();
    let mut apply = |r: &mut Reader, source: &Table| {
        if let Some(selector) = r.string_map(source, "node_selector") {
            placement.node_selector = selector;
        }
        if let Some(workload) = r.string(source, "workload_type") {
            placement.node_affinity.insert(
                format!("{label_domain}/workload-type"),
                vec![workload.value],
            );
        }
        if let Some(affinity) = r.get_table(source, "node_affinity") {
            for entry in &affinity.value.entries {
                if let Value::Array(items) = &entry.node.value {
                    let values = items
                        .iter()
                        .filter_map(|n| r.node_string(n))
                        .map(|v| v.value)
                        .collect();
                    placement.node_affinity.insert(entry.key.clone(), values);
                } else {
                    r.report(
                        Diagnostic::error(&entry.node.origin, "expected an array of label values")
                            .with_label("expected an array"),
                    );
                }
            }
        }
        if let Some(spread) = r.boolean(source, "zone_spread") {
            placement.zone_spread = spread;
        }
    };
    if let Some(profile) = profile {
        apply(r, profile);
    }
    if let Some(own) = r.get_table(t, "placement") {
        r.check_keys(own.value, "placement", PLACEMENT_KEYS);
        apply(r, own.value);
    }
    placement
}

fn decode_config(r: &mut Reader, t: &Table, files: &dyn ConfigFiles) -> BTreeMap<String, String> {
    let mut config = BTreeMap::new();
    let Some(table) = r.get_table(t, "config") else {
        return config;
    };
    for entry in &table.value.entries {
        if !valid_config_key(&entry.key) {
            r.report(
                Diagnostic::error(
                    &entry.key_origin,
                    format!("`{}` is not a valid config file name", entry.key),
                )
                .with_label("not a ConfigMap key")
                .with_help("use letters, digits, '-', '_' and '.'"),
            );
            continue;
        }
        let text = match &entry.node.value {
            Value::String(text) => Some(text.clone()),
            Value::Table(file) => {
                r.check_keys(file, "a config file", CONFIG_FILE_KEYS);
                r.string(file, "file")
                    .and_then(|path| match files.read(&path.value) {
                        Ok(text) => Some(text),
                        Err(why) => {
                            r.report(
                                Diagnostic::error(
                                    &path.origin,
                                    format!("cannot read config file `{}`: {why}", path.value),
                                )
                                .with_label("this file")
                                .with_help("paths are relative to the directory of fleet.toml"),
                            );
                            None
                        }
                    })
            }
            _ => {
                r.report(
                    Diagnostic::error(
                        &entry.node.origin,
                        "expected the file's text, or { file = \"path\" }",
                    )
                    .with_label(format!("found {}", entry.node.value.type_name())),
                );
                None
            }
        };
        if let Some(text) = text {
            config.insert(entry.key.clone(), text);
        }
    }
    config
}

fn valid_config_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 253
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

fn decode_probe(r: &mut Reader, t: &Table, key: &str, default_path: &str) -> Probe {
    let defaults = Probe {
        path: default_path.into(),
        initial_delay_seconds: 0,
        period_seconds: 10,
        timeout_seconds: None,
    };
    let Some(probe) = r.get_table(t, key) else {
        return defaults;
    };
    let p = probe.value;
    r.check_keys(p, key, PROBE_KEYS);
    Probe {
        path: r.string(p, "path").map_or(defaults.path, |v| v.value),
        initial_delay_seconds: r.seconds(p, "initial_delay").map_or(0, |v| v.value),
        period_seconds: r.seconds(p, "period").map_or(10, |v| v.value),
        timeout_seconds: r.seconds(p, "timeout").map(|v| v.value),
    }
}

fn decode_autoscaling(
    r: &mut Reader,
    t: &Table,
    resources: &Resources,
    role_origin: &Origin,
) -> Option<Autoscaling> {
    let table = r.get_table(t, "autoscaling")?;
    let a = table.value;
    r.check_keys(a, "autoscaling", AUTOSCALING_KEYS);
    if r.boolean(a, "enabled") == Some(false) {
        return None;
    }
    let min = r.integer(a, "min", 1, 10_000);
    let max = r.integer(a, "max", 1, 10_000);
    if max.is_none() && a.get("max").is_none() {
        r.report(
            Diagnostic::error(&table.origin, "autoscaling has no `max`")
                .with_label("here")
                .with_help("set `max = N`, the most replicas the autoscaler may run"),
        );
    }
    if let (Some(min), Some(max)) = (&min, &max)
        && min.value > max.value
    {
        r.report(
            Diagnostic::error(
                &min.origin,
                format!(
                    "autoscaling min ({}) is above max ({})",
                    min.value, max.value
                ),
            )
            .with_label("min above max")
            .with_help("min must be at most max"),
        );
    }
    let pending = r.integer(a, "pending_per_replica", 1, 1_000_000);
    let memory = r.integer(a, "memory_utilization", 1, 1000);
    if let Some(memory) = &memory
        && resources.requests.memory.is_none()
    {
        r.report(
            Diagnostic::error(
                &memory.origin,
                "autoscaling on memory utilization needs a memory request",
            )
            .with_label("utilization of what?")
            .with_help("set resources.requests.memory (or pick a profile that does)"),
        );
    }
    if pending.is_none()
        && memory.is_none()
        && a.get("pending_per_replica").is_none()
        && a.get("memory_utilization").is_none()
    {
        r.report(
            Diagnostic::error(&table.origin, "autoscaling has no metric")
                .with_label("scale on what?")
                .with_help("set `pending_per_replica` (tasks waiting on the agent's consumer) and/or `memory_utilization`"),
        );
    }
    let _ = role_origin;
    Some(Autoscaling {
        min_replicas: min.map_or(1, |m| m.value as u32),
        max_replicas: max?.value as u32,
        pending_per_replica: pending.map(|p| p.value as u32),
        memory_utilization: memory.map(|m| m.value as u32),
        scale_up: decode_scaling(
            r,
            a,
            "scale_up",
            ScalingRules {
                stabilization_window_seconds: 60,
                pods: 2,
                period_seconds: 120,
            },
        ),
        scale_down: decode_scaling(
            r,
            a,
            "scale_down",
            ScalingRules {
                stabilization_window_seconds: 300,
                pods: 1,
                period_seconds: 300,
            },
        ),
    })
}

fn decode_scaling(r: &mut Reader, a: &Table, key: &str, defaults: ScalingRules) -> ScalingRules {
    let Some(rules) = r.get_table(a, key) else {
        return defaults;
    };
    let s = rules.value;
    r.check_keys(s, key, SCALING_KEYS);
    ScalingRules {
        stabilization_window_seconds: r
            .seconds(s, "stabilization")
            .map_or(defaults.stabilization_window_seconds, |v| v.value),
        pods: r
            .integer(s, "pods", 1, 10_000)
            .map_or(defaults.pods, |v| v.value as i32),
        period_seconds: r
            .seconds(s, "period")
            .map_or(defaults.period_seconds, |v| v.value),
    }
}

fn decode_consumer(
    r: &mut Reader,
    t: &Table,
    role: &str,
    cx: &AgentContext<'_>,
) -> Option<Consumer> {
    let table = r.get_table(t, "consumer")?;
    let c = table.value;
    r.check_keys(c, "consumer", CONSUMER_KEYS);
    if r.boolean(c, "enabled") == Some(false) {
        return None;
    }
    let stream_name = required_string(r, c, "stream", "consumer", &table.origin)?;
    let Some(stream) = cx
        .streams
        .iter()
        .find(|s| s.value.name == stream_name.value)
    else {
        let known: Vec<&str> = cx.streams.iter().map(|s| s.value.name.as_str()).collect();
        let mut d = Diagnostic::error(
            &stream_name.origin,
            format!("stream `{}` is not defined", stream_name.value),
        )
        .with_label("no such stream");
        d = match suggest(&stream_name.value, &known) {
            Some(best) => d.with_help(format!("did you mean `{best}`?")),
            None => d.with_help(format!("define it under [streams.{}]", stream_name.value)),
        };
        r.report(d);
        return None;
    };
    let filters: Vec<At<String>> = match r.strings(c, "filter_subjects") {
        Some(filters) => filters,
        None => {
            // The seed's convention: tasks for role R arrive on `<prefix>.R.>`.
            match stream
                .value
                .subjects
                .first()
                .and_then(|s| s.strip_suffix(".>"))
            {
                Some(prefix) => vec![At {
                    value: format!("{prefix}.{role}.>"),
                    origin: table.origin.clone(),
                }],
                None => {
                    r.report(
                        Diagnostic::error(
                            &table.origin,
                            format!(
                                "cannot derive the consumer's filter subject from stream `{}`",
                                stream.value.name
                            ),
                        )
                        .with_label("this consumer")
                        .with_help("set `filter_subjects = [\"...\"]`"),
                    );
                    return None;
                }
            }
        }
    };
    for filter in &filters {
        if !valid_subject(&filter.value) {
            r.report(
                Diagnostic::error(
                    &filter.origin,
                    format!("`{}` is not a valid NATS subject", filter.value),
                )
                .with_label("invalid subject"),
            );
        } else if !stream
            .value
            .subjects
            .iter()
            .any(|s| subject_covers(s, &filter.value))
        {
            r.report(
                Diagnostic::error(
                    &filter.origin,
                    format!(
                        "filter subject `{}` is not covered by any subject of stream `{}` ({})",
                        filter.value,
                        stream.value.name,
                        stream.value.subjects.join(", ")
                    ),
                )
                .with_label("the consumer would never receive a message")
                .with_help("use a subject inside the stream's subjects, or add one to the stream"),
            );
        }
    }
    let backoff: Vec<Duration> = match r.array(c, "backoff") {
        Some(items) => items
            .iter()
            .filter_map(|n| {
                let s = r.node_string(n)?;
                super::read::parse_duration(&s.value).or_else(|| {
                    r.report(
                        Diagnostic::error(&s.origin, format!("`{}` is not a duration", s.value))
                            .with_label("not a duration"),
                    );
                    None
                })
            })
            .collect(),
        None => Vec::new(),
    };
    let max_deliver = r.integer(c, "max_deliver", -1, i64::from(i32::MAX));
    if let Some(max_deliver) = &max_deliver
        && !backoff.is_empty()
        && max_deliver.value != -1
        && (max_deliver.value as usize) <= backoff.len()
    {
        r.report(
            Diagnostic::error(
                &max_deliver.origin,
                "max_deliver must be greater than the number of backoff steps",
            )
            .with_label("too small for the backoff")
            .with_help("the server refuses max_deliver <= len(backoff)"),
        );
    }
    Some(Consumer {
        name: format!("{role}-agent"),
        stream: stream.value.name.clone(),
        filter_subjects: filters.into_iter().map(|f| f.value).collect(),
        ack_wait: r
            .duration(c, "ack_wait")
            .map_or(Duration::from_secs(30), |d| d.value),
        max_deliver: max_deliver.map_or(-1, |m| m.value),
        max_ack_pending: r
            .integer(c, "max_ack_pending", -1, i64::from(i32::MAX))
            .map_or(1000, |m| m.value),
        backoff,
        description: r.string(c, "description").map(|d| d.value),
    })
}

fn decode_env(r: &mut Reader, t: &Table) -> Vec<EnvVar> {
    let Some(table) = r.get_table(t, "env") else {
        return Vec::new();
    };
    let mut env = Vec::new();
    for entry in &table.value.entries {
        if ["NATS_URL", "AGENT_ID", "AGENT_NAMESPACE"].contains(&entry.key.as_str()) {
            r.report(
                Diagnostic::error(&entry.key_origin, format!("`{}` is set by fleet and cannot be set in `env`", entry.key))
                    .with_label("reserved variable name")
                    .with_help("fleet sets NATS_URL from the agent's `nats_url`, and AGENT_ID and AGENT_NAMESPACE from its pod; set `nats_url` to change the NATS server"),
            );
            continue;
        }
        if !valid_env_name(&entry.key) {
            r.report(
                Diagnostic::error(
                    &entry.key_origin,
                    format!("`{}` is not a valid environment variable name", entry.key),
                )
                .with_label("invalid variable name")
                .with_help("use letters, digits and '_', not starting with a digit"),
            );
            continue;
        }
        let value = match &entry.node.value {
            Value::String(s) => Some(EnvValue::Literal(s.clone())),
            Value::Table(secret) => {
                r.check_keys(secret, &format!("env `{}`", entry.key), ENV_SECRET_KEYS);
                let name = required_string(
                    r,
                    secret,
                    "secret",
                    &format!("env `{}`", entry.key),
                    &entry.node.origin,
                );
                let key = required_string(
                    r,
                    secret,
                    "key",
                    &format!("env `{}`", entry.key),
                    &entry.node.origin,
                );
                let name = name.and_then(|n| dns_subdomain(r, &n, "Secret name"));
                match (name, key) {
                    (Some(name), Some(key)) => Some(EnvValue::Secret {
                        name,
                        key: key.value,
                    }),
                    _ => None,
                }
            }
            _ => {
                r.report(
                    Diagnostic::error(&entry.node.origin, "expected a string, or { secret = \"name\", key = \"key\" }")
                        .with_label(format!("found {}", entry.node.value.type_name()))
                        .with_help("secret values never go in fleet's files: reference an existing Secret instead"),
                );
                None
            }
        };
        if let Some(value) = value {
            env.push(EnvVar {
                name: entry.key.clone(),
                value,
            });
        }
    }
    env
}

fn valid_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
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

fn decode_network(r: &mut Reader, t: &Table, running: &[&str]) -> Option<NetworkPolicy> {
    let table = r.get_table(t, "network")?;
    let n = table.value;
    r.check_keys(n, "network", NETWORK_KEYS);
    if r.boolean(n, "enabled") == Some(false) {
        return None;
    }
    Some(NetworkPolicy {
        ingress: decode_rules(r, n, "ingress", "from", INGRESS_RULE_KEYS, running),
        egress: decode_rules(r, n, "egress", "to", EGRESS_RULE_KEYS, running),
    })
}

fn decode_rules(
    r: &mut Reader,
    n: &Table,
    key: &str,
    peers_key: &str,
    keys: &[&str],
    running: &[&str],
) -> Vec<NetworkRule> {
    let Some(items) = r.array(n, key) else {
        return Vec::new();
    };
    let mut rules = Vec::new();
    for item in items {
        let Some(rule) = r.table(item) else { continue };
        r.check_keys(rule, &format!("a network {key} rule"), keys);
        let mut peers = Vec::new();
        for peer in r.array(rule, peers_key).unwrap_or_default() {
            let Some(p) = r.table(peer) else { continue };
            r.check_keys(p, "a network peer", PEER_KEYS);
            if p.entries.len() != 1 {
                r.report(
                    Diagnostic::error(
                        &peer.origin,
                        "a peer names exactly one of pods, namespaces, agent or cidr",
                    )
                    .with_label("one kind of peer per entry")
                    .with_help(
                        "write each peer as its own entry, e.g. { pods = { app = \"nats\" } }",
                    ),
                );
                continue;
            }
            if let Some(labels) = r.string_map(p, "pods") {
                peers.push(NetworkPeer::Pods(labels));
            } else if let Some(labels) = r.string_map(p, "namespaces") {
                peers.push(NetworkPeer::Namespaces(labels));
            } else if let Some(role) = r.string(p, "agent") {
                if running.contains(&role.value.as_str()) {
                    peers.push(NetworkPeer::Agent(role.value));
                } else {
                    let mut d = Diagnostic::error(
                        &role.origin,
                        format!(
                            "network rule names agent `{}`, which the fleet does not run",
                            role.value
                        ),
                    )
                    .with_label("no such agent");
                    if let Some(best) = suggest(&role.value, running) {
                        d = d.with_help(format!("did you mean `{best}`?"));
                    }
                    r.report(d);
                }
            } else if let Some(cidr) = r.string(p, "cidr") {
                if valid_cidr(&cidr.value) {
                    peers.push(NetworkPeer::Cidr(cidr.value));
                } else {
                    r.report(
                        Diagnostic::error(&cidr.origin, format!("`{}` is not a CIDR", cidr.value))
                            .with_label("not a CIDR")
                            .with_help("write an address and prefix length, e.g. \"10.0.0.1/32\""),
                    );
                }
            }
        }
        let mut ports = Vec::new();
        for port in r.array(rule, "ports").unwrap_or_default() {
            match &port.value {
                Value::Integer(_) => {
                    if let Some(p) = r.node_integer(port, 1, 65535) {
                        ports.push(NetworkPort {
                            protocol: "TCP".into(),
                            port: p.value as u16,
                        });
                    }
                }
                Value::String(s) => match parse_port(s) {
                    Some(p) => ports.push(p),
                    None => r.report(
                        Diagnostic::error(&port.origin, format!("`{s}` is not a port"))
                            .with_label("not a port")
                            .with_help(
                                "write a number (TCP), or \"53/udp\", \"443/tcp\", \"9000/sctp\"",
                            ),
                    ),
                },
                _ => r.report(
                    Diagnostic::error(&port.origin, "expected a port number or \"port/protocol\"")
                        .with_label("not a port"),
                ),
            }
        }
        rules.push(NetworkRule { peers, ports });
    }
    rules
}

fn parse_port(s: &str) -> Option<NetworkPort> {
    let (port, protocol) = s.split_once('/').unwrap_or((s, "tcp"));
    let port: u16 = port.parse().ok().filter(|p| *p > 0)?;
    let protocol = match protocol.to_ascii_lowercase().as_str() {
        "tcp" => "TCP",
        "udp" => "UDP",
        "sctp" => "SCTP",
        _ => return None,
    };
    Some(NetworkPort {
        protocol: protocol.into(),
        port,
    })
}

fn valid_cidr(s: &str) -> bool {
    let Some((address, prefix)) = s.split_once('/') else {
        return false;
    };
    let Ok(address) = address.parse::<std::net::IpAddr>() else {
        return false;
    };
    let max = if address.is_ipv4() { 32 } else { 128 };
    prefix.parse::<u8>().is_ok_and(|p| p <= max)
}

fn decode_rbac(r: &mut Reader, t: &Table) -> Vec<RbacRule> {
    let Some(items) = r.array(t, "rbac") else {
        return Vec::new();
    };
    let mut rules = Vec::new();
    for item in items {
        let Some(rule) = r.table(item) else { continue };
        r.check_keys(rule, "an rbac rule", RBAC_KEYS);
        let list = |r: &mut Reader, key: &str| {
            r.strings(rule, key)
                .map(|v| v.into_iter().map(|s| s.value).collect::<Vec<_>>())
        };
        let resources = list(r, "resources");
        let verbs = list(r, "verbs");
        if resources.as_ref().is_none_or(Vec::is_empty) || verbs.as_ref().is_none_or(Vec::is_empty)
        {
            r.report(
                Diagnostic::error(&item.origin, "an rbac rule needs `resources` and `verbs`")
                    .with_label("incomplete rule")
                    .with_help("e.g. { api_groups = [\"\"], resources = [\"pods\"], verbs = [\"get\", \"list\"] }"),
            );
            continue;
        }
        rules.push(RbacRule {
            api_groups: list(r, "api_groups").unwrap_or_else(|| vec![String::new()]),
            resources: resources.unwrap_or_default(),
            verbs: verbs.unwrap_or_default(),
            resource_names: list(r, "resource_names").unwrap_or_default(),
        });
    }
    rules
}

fn decode_streams(r: &mut Reader, root: &Table) -> Vec<At<Stream>> {
    let Some(streams) = r.get_table(root, "streams") else {
        return Vec::new();
    };
    let mut out: Vec<At<Stream>> = Vec::new();
    for entry in &streams.value.entries {
        let Some(s) = r.table(&entry.node) else {
            continue;
        };
        let what = format!("stream `{}`", entry.key);
        r.check_keys(s, &what, STREAM_KEYS);
        if !valid_stream_name(&entry.key) {
            r.report(
                Diagnostic::error(&entry.key_origin, format!("`{}` is not a valid stream name", entry.key))
                    .with_label("not a JetStream name")
                    .with_help("use letters, digits, '-' and '_' (no spaces, '.', '*', '>', '/' or '\\'), at most 255 characters"),
            );
            // Read on, so its subjects are checked and consumers naming it
            // are not told it is undefined.
        }
        let subjects = required_strings(r, s, "subjects", &what, &entry.key_origin);
        for subject in &subjects {
            if !valid_subject(&subject.value) {
                r.report(
                    Diagnostic::error(
                        &subject.origin,
                        format!("`{}` is not a valid NATS subject", subject.value),
                    )
                    .with_label("invalid subject")
                    .with_help(
                        "tokens separated by '.', with '*' for one token and '>' only at the end",
                    ),
                );
            }
            for other in &out {
                if let Some(clash) = other
                    .value
                    .subjects
                    .iter()
                    .find(|o| subjects_overlap(o, &subject.value))
                {
                    r.report(
                        Diagnostic::error(
                            &subject.origin,
                            format!(
                                "subject `{}` overlaps `{clash}` of stream `{}`",
                                subject.value, other.value.name
                            ),
                        )
                        .with_label("overlapping subjects")
                        .with_help("JetStream refuses streams whose subjects overlap"),
                    );
                }
            }
        }
        let retention = choice(
            r,
            s,
            "retention",
            &["limits", "interest", "workqueue"],
            "limits",
        );
        let storage = choice(r, s, "storage", &["file", "memory"], "file");
        let discard = choice(r, s, "discard", &["old", "new"], "old");
        out.push(At {
            value: Stream {
                name: entry.key.clone(),
                subjects: subjects.into_iter().map(|s| s.value).collect(),
                retention,
                storage,
                replicas: r.integer(s, "replicas", 1, 5).map_or(1, |v| v.value as u32),
                max_age: r.duration(s, "max_age").map(|d| d.value),
                max_bytes: size(r, s, "max_bytes"),
                max_msgs: r.integer(s, "max_msgs", -1, i64::MAX).map(|v| v.value),
                max_msg_size: size(r, s, "max_msg_size").and_then(|v| i32::try_from(v).ok()),
                discard,
                duplicate_window: r.duration(s, "duplicate_window").map(|d| d.value),
                description: r.string(s, "description").map(|d| d.value),
            },
            origin: entry.key_origin.clone(),
        });
    }
    out
}

fn required_strings(
    r: &mut Reader,
    t: &Table,
    key: &str,
    what: &str,
    origin: &Origin,
) -> Vec<At<String>> {
    match r.strings(t, key) {
        Some(values) if !values.is_empty() => values,
        _ => {
            if t.get(key).is_none()
                || matches!(t.get(key).map(|e| &e.node.value), Some(Value::Array(a)) if a.is_empty())
            {
                r.report(
                    Diagnostic::error(origin, format!("{what} has no `{key}`"))
                        .with_label(format!("`{key}` is required here"))
                        .with_help(format!("add `{key} = [\"...\"]`")),
                );
            }
            Vec::new()
        }
    }
}

/// One of `options`, or `default` when the key is absent.
fn choice(r: &mut Reader, t: &Table, key: &str, options: &[&str], default: &str) -> String {
    let Some(value) = r.string(t, key) else {
        return default.into();
    };
    if options.contains(&value.value.as_str()) {
        return value.value;
    }
    let mut d = Diagnostic::error(
        &value.origin,
        format!("`{}` is not a valid {key}", value.value),
    )
    .with_label(format!("expected one of: {}", options.join(", ")));
    if let Some(best) = suggest(&value.value, options) {
        d = d.with_help(format!("did you mean `{best}`?"));
    }
    r.report(d);
    default.into()
}

/// A byte size: an integer, or a quantity string such as "1Gi".
fn size(r: &mut Reader, t: &Table, key: &str) -> Option<i64> {
    let entry = t.get(key)?;
    match &entry.node.value {
        Value::Integer(_) => r.node_integer(&entry.node, -1, i64::MAX).map(|v| v.value),
        Value::String(_) => r.quantity(t, key).map(|q| q.value.value as i64),
        _ => {
            r.report(
                Diagnostic::error(
                    &entry.node.origin,
                    "expected a size: an integer or a string such as \"1Gi\"",
                )
                .with_label("not a size"),
            );
            None
        }
    }
}

fn valid_stream_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name
            .chars()
            .any(|c| c.is_whitespace() || ".*>/\\".contains(c))
}

fn valid_subject(subject: &str) -> bool {
    let tokens: Vec<&str> = subject.split('.').collect();
    !subject.is_empty()
        && tokens.iter().enumerate().all(|(i, token)| {
            !token.is_empty()
                && !token.chars().any(char::is_whitespace)
                && (*token != ">" || i == tokens.len() - 1)
                && (!token.contains(['*', '>']) || token.len() == 1)
        })
}

/// Whether every subject that matches `filter` also matches `subject`.
pub fn subject_covers(subject: &str, filter: &str) -> bool {
    let s: Vec<&str> = subject.split('.').collect();
    let f: Vec<&str> = filter.split('.').collect();
    for (i, token) in s.iter().enumerate() {
        match *token {
            ">" => return f.len() > i,
            _ if i >= f.len() => return false,
            "*" => {
                if f[i] == ">" {
                    return false;
                }
            }
            literal => {
                if f[i] != literal {
                    return false;
                }
            }
        }
    }
    s.len() == f.len()
}

/// Whether some subject matches both patterns.
fn subjects_overlap(a: &str, b: &str) -> bool {
    let a: Vec<&str> = a.split('.').collect();
    let b: Vec<&str> = b.split('.').collect();
    for i in 0..a.len().max(b.len()) {
        match (a.get(i), b.get(i)) {
            (Some(&">"), Some(_)) | (Some(_), Some(&">")) => return true,
            (Some(x), Some(y)) if *x == "*" || *y == "*" || x == y => continue,
            _ => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_coverage() {
        assert!(subject_covers("tasks.>", "tasks.devops.>"));
        assert!(subject_covers("tasks.>", "tasks.devops"));
        assert!(!subject_covers("tasks.>", "tasks"));
        assert!(subject_covers("tasks.*.new", "tasks.devops.new"));
        assert!(!subject_covers("tasks.*.new", "tasks.devops.>"));
        assert!(!subject_covers("jobs.>", "tasks.devops.>"));
        assert!(subject_covers("tasks.*", "tasks.*"));
    }

    #[test]
    fn subject_overlap() {
        assert!(subjects_overlap("tasks.>", "tasks.devops.new"));
        assert!(subjects_overlap("tasks.*.new", "tasks.devops.*"));
        assert!(!subjects_overlap("tasks.>", "events.>"));
        assert!(!subjects_overlap("a.b", "a.b.c"));
    }

    #[test]
    fn subjects_are_checked() {
        assert!(valid_subject("tasks.>"));
        assert!(valid_subject("tasks.*.new"));
        assert!(!valid_subject("tasks.>.new"));
        assert!(!valid_subject("tasks..new"));
        assert!(!valid_subject("tasks.de vops"));
    }
}
