//! One agent: its table laid over [defaults], read into an [`Agent`].

use std::collections::BTreeMap;

use super::network::decode_network;
use super::*;
use crate::load::diagnostic::Diagnostic;
use crate::load::read::{At, Reader, suggest};
use crate::load::source::{Node, Origin, Table, Value};
use crate::model::*;

pub(super) struct AgentContext<'a> {
    pub(super) role_origin: &'a Origin,
    pub(super) profiles: &'a Table,
    pub(super) streams: &'a [StreamEntry],
    /// The roles of the agents the fleet runs (not disabled).
    pub(super) running: &'a [&'a str],
    pub(super) label_domain: &'a str,
    /// The level the fleet's Namespace enforces; `None` when it is invalid
    /// (reported already).
    pub(super) pod_security: Option<&'a At<PodSecurityLevel>>,
    /// The fleet's namespace, for messages; `None` when it is invalid.
    pub(super) namespace: Option<&'a str>,
    /// Whether fleet renders (and labels) the namespace.
    pub(super) manage_namespace: bool,
    pub(super) environment: Option<&'a str>,
    pub(super) files: &'a dyn ConfigFiles,
}

// The longest suffix fleet adds to `agent-<role>` is "-network".
pub(super) const MAX_ROLE_LEN: usize = 63 - "agent-".len() - "-network".len();

pub(super) fn decode_agent(
    r: &mut Reader,
    role: &str,
    node: &Node,
    cx: &AgentContext<'_>,
) -> Option<Agent> {
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

    let security = decode_security(r, t, role, cx);
    if let Some(dir) = r.string(t, "config_dir")
        && !config_files.is_empty()
    {
        let taken = match dir.value.trim_end_matches('/') {
            "/workspace" => Some("the agent's workspace"),
            "/tmp" if security.read_only_root_filesystem => Some("the agent's temp directory"),
            _ => None,
        };
        if let Some(taken) = taken {
            r.report(
                Diagnostic::error(
                    &dir.origin,
                    format!("`config_dir` {} is where fleet mounts {taken}", dir.value),
                )
                .with_label("already mounted")
                .with_help("mount the config files elsewhere, e.g. \"/etc/agent\""),
            );
        }
    }
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
    let autoscaling = decode_autoscaling(r, t, &resources);
    let consumer = decode_consumer(r, t, role, cx);
    let consumers = decode_consumers(r, t, role, cx, consumer.as_ref());
    // A consumer that is configured but has problems was reported already.
    let consumer_configured = matches!(t.get("consumer"), Some(c) if !disabled(&c.node))
        || matches!(t.get("consumers"), Some(c) if matches!(&c.node.value, Value::Table(c) if !c.entries.is_empty()));
    if let Some(autoscaling) = &autoscaling
        && consumer.is_none()
        && consumers.is_empty()
        && autoscaling.pending_per_replica.is_some()
        && !consumer_configured
    {
        r.report(
            Diagnostic::error(cx.role_origin, format!("agent `{role}` scales on pending tasks but has no consumer"))
                .with_label("in this agent")
                .with_help("give the agent a `consumer` (with a `stream`), or drop `autoscaling.pending_per_replica`"),
        );
    }
    let mut env = decode_env(r, t);
    if !consumers.is_empty() {
        env.insert(0, consumers_variable(consumer.iter().chain(&consumers)));
    }
    let unlabelled = cx.namespace.filter(|_| !cx.manage_namespace);
    let network = decode_network(r, t, cx.running, unlabelled);
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
        security,
        metrics_port,
        health_port,
        liveness,
        readiness,
        resources,
        placement,
        autoscaling,
        consumer,
        consumers,
        network,
        rbac,
        metrics: r.boolean(t, "metrics").unwrap_or(true),
        labels,
        annotations,
    })
}

/// Capabilities the `baseline` Pod Security Standard lets a container add.
/// https://kubernetes.io/docs/concepts/security/pod-security-standards/
const BASELINE_CAPABILITIES: &[&str] = &[
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

/// The agent's `security` table. Each setting that the namespace's Pod
/// Security level forbids is an error where it is written: the API server
/// would reject every pod of the agent, and the rollout would never finish.
pub(super) fn decode_security(
    r: &mut Reader,
    t: &Table,
    role: &str,
    cx: &AgentContext<'_>,
) -> SecurityContext {
    let mut security = SecurityContext::default();
    let Some(table) = r.get_table(t, "security") else {
        return security;
    };
    let s = table.value;
    r.check_keys(s, "security", SECURITY_KEYS);
    let origin = |key: &str| s.get(key).map(|e| e.node.origin.clone());
    // (where, the setting as written, the most restrictive level it meets)
    let mut settings: Vec<(Origin, String, PodSecurityLevel)> = Vec::new();

    if let Some(value) = r.boolean(s, "run_as_non_root") {
        security.run_as_non_root = value;
        if !value {
            settings.extend(origin("run_as_non_root").map(|o| {
                (
                    o,
                    "`run_as_non_root = false`".into(),
                    PodSecurityLevel::Baseline,
                )
            }));
        }
    }
    if let Some(user) = r.integer(s, "run_as_user", 0, i32::MAX.into()) {
        security.run_as_user = user.value;
        if user.value == 0 {
            settings.push((
                user.origin,
                "`run_as_user = 0` (root)".into(),
                PodSecurityLevel::Baseline,
            ));
        }
    }
    if let Some(group) = r.integer(s, "fs_group", 0, i32::MAX.into()) {
        security.fs_group = group.value;
    }
    if let Some(value) = r.boolean(s, "read_only_root_filesystem") {
        security.read_only_root_filesystem = value;
    }
    if let Some(value) = r.boolean(s, "allow_privilege_escalation") {
        security.allow_privilege_escalation = value;
        if value {
            settings.extend(origin("allow_privilege_escalation").map(|o| {
                (
                    o,
                    "`allow_privilege_escalation = true`".into(),
                    PodSecurityLevel::Baseline,
                )
            }));
        }
    }
    for capability in r.strings(s, "add_capabilities").unwrap_or_default() {
        let name = &capability.value;
        if let Some(bare) = name.strip_prefix("CAP_") {
            r.report(
                Diagnostic::error(&capability.origin, format!("write capability `{name}` as `{bare}`"))
                    .with_label("Kubernetes names capabilities without `CAP_`")
                    .with_help("Pod Security admission compares the names as written, so `CAP_` names are refused even where the capability is allowed"),
            );
            continue;
        }
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        {
            r.report(
                Diagnostic::error(
                    &capability.origin,
                    format!("`{name}` is not a capability name"),
                )
                .with_label("not a capability")
                .with_help(
                    "write capabilities in upper case without `CAP_`, e.g. \"NET_BIND_SERVICE\"",
                ),
            );
            continue;
        }
        let meets = if name == "NET_BIND_SERVICE" {
            PodSecurityLevel::Restricted
        } else if BASELINE_CAPABILITIES.contains(&name.as_str()) {
            PodSecurityLevel::Baseline
        } else {
            PodSecurityLevel::Privileged
        };
        settings.push((
            capability.origin.clone(),
            format!("capability `{name}`"),
            meets,
        ));
        if !security.add_capabilities.contains(name) {
            security.add_capabilities.push(name.clone());
        }
    }
    if let Some(profile) = r.string(s, "seccomp_profile") {
        let parsed = match profile.value.as_str() {
            "RuntimeDefault" => Some(SeccompProfile::RuntimeDefault),
            "Unconfined" => Some(SeccompProfile::Unconfined),
            other => other
                .strip_prefix("localhost/")
                .filter(|path| !path.is_empty())
                .map(|path| SeccompProfile::Localhost(path.to_string())),
        };
        match parsed {
            Some(parsed) => {
                if parsed == SeccompProfile::Unconfined {
                    settings.push((
                        profile.origin,
                        "`seccomp_profile = \"Unconfined\"`".into(),
                        PodSecurityLevel::Privileged,
                    ));
                }
                security.seccomp_profile = parsed;
            }
            None => r.report(
                Diagnostic::error(&profile.origin, format!("`{}` is not a seccomp profile", profile.value))
                    .with_label("not a seccomp profile")
                    .with_help("use \"RuntimeDefault\", \"Unconfined\", or \"localhost/<path>\" for a profile file in the kubelet's seccomp directory"),
            ),
        }
    }

    if let Some(enforced) = cx.pod_security {
        let namespace = cx.namespace.unwrap_or("the fleet's namespace");
        for (at, setting, meets) in settings {
            if meets >= enforced.value {
                continue;
            }
            let level = enforced.value.as_str();
            r.report(
                Diagnostic::error(
                    &at,
                    format!("agent `{role}` sets {setting}, which Pod Security level `{level}` forbids"),
                )
                .with_label(format!("namespace `{namespace}` enforces `{level}`: every pod of this agent would be rejected"))
                .with_help(format!(
                    "remove the setting, or set `pod_security = \"{}\"` under [fleet] (for the whole namespace)",
                    meets.as_str()
                )),
            );
        }
    }
    security
}

/// The agent's profile table, or `None` (with a diagnostic when it names an
/// unknown profile).
pub(super) fn decode_profile<'a>(
    r: &mut Reader,
    t: &Table,
    cx: &AgentContext<'a>,
) -> Option<&'a Table> {
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

pub(super) fn decode_resource_list(
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
pub(super) fn decode_resources(
    r: &mut Reader,
    t: &Table,
    profile: Option<&Table>,
    role: &str,
) -> Resources {
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
        // limit is its own. When the profile set both, point at the one
        // written last: files are numbered in load order (built-in defaults,
        // fleet file, environment), so that is the override that made them
        // clash, never the built-in half.
        let limit_later = match (request_at, limit_at) {
            (Some(request_at), Some(limit_at)) => limit_at.file > request_at.file,
            _ => false,
        };
        let at = if (*limit_own && !request_own) || (limit_own == request_own && limit_later) {
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

pub(super) fn decode_placement(
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

pub(super) fn decode_config(
    r: &mut Reader,
    t: &Table,
    files: &dyn ConfigFiles,
) -> BTreeMap<String, String> {
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

pub(super) fn valid_config_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 253
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

pub(super) fn decode_probe(r: &mut Reader, t: &Table, key: &str, default_path: &str) -> Probe {
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

pub(super) fn decode_autoscaling(
    r: &mut Reader,
    t: &Table,
    resources: &Resources,
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

pub(super) fn decode_scaling(
    r: &mut Reader,
    a: &Table,
    key: &str,
    defaults: ScalingRules,
) -> ScalingRules {
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

pub(super) fn decode_env(r: &mut Reader, t: &Table) -> Vec<EnvVar> {
    let Some(table) = r.get_table(t, "env") else {
        return Vec::new();
    };
    let mut env = Vec::new();
    for entry in &table.value.entries {
        if ["NATS_URL", "AGENT_ID", "AGENT_NAMESPACE", "NATS_CONSUMERS"]
            .contains(&entry.key.as_str())
        {
            r.report(
                Diagnostic::error(&entry.key_origin, format!("`{}` is set by fleet and cannot be set in `env`", entry.key))
                    .with_label("reserved variable name")
                    .with_help("fleet sets NATS_URL from the agent's `nats_url`, NATS_CONSUMERS from its `consumers`, and AGENT_ID and AGENT_NAMESPACE from its pod; set `nats_url` to change the NATS server"),
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

pub(super) fn valid_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

pub(super) fn decode_rbac(r: &mut Reader, t: &Table) -> Vec<RbacRule> {
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
