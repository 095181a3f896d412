//! One agent: its table laid over [defaults], read into an [`Agent`].

use std::collections::BTreeMap;

use super::network::{FleetNamespace, decode_network};
use super::*;
use crate::load::diagnostic::Diagnostic;
use crate::load::read::{At, Reader, suggest};
use crate::load::source::{Entry, Node, Origin, Table, Value};
use crate::model::*;

pub(super) struct AgentContext<'a> {
    pub(super) role_origin: &'a Origin,
    /// The agent's own table (fleet file and environment), without [defaults].
    pub(super) own: &'a Table,
    /// The node label `workload_type` requires.
    pub(super) workload_type_label: &'a str,
    pub(super) profiles: &'a Table,
    pub(super) streams: &'a [StreamEntry],
    /// The roles of the agents the fleet runs (not disabled).
    pub(super) running: &'a [&'a str],
    /// The level the fleet's Namespace enforces; `None` when it is invalid
    /// (reported already).
    pub(super) pod_security: Option<&'a At<PodSecurityLevel>>,
    /// The fleet's namespace, for messages; `None` when it is invalid.
    pub(super) namespace: Option<&'a str>,
    /// fleet.toml's namespace and the environment's, when they differ.
    pub(super) moved_namespace: Option<(&'a str, &'a str)>,
    /// Whether fleet renders (and labels) the namespace.
    pub(super) manage_namespace: bool,
    pub(super) environment: Option<&'a str>,
    /// `[environment] nats_monitoring` and `nats_account`, for KEDA.
    pub(super) nats_monitoring: Option<&'a At<String>>,
    pub(super) nats_account: Option<&'a At<String>>,
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
    if let (Some(url), Some((from, to))) = (&nats_url, cx.moved_namespace)
        && names_namespace(&url.value, from)
    {
        r.report(
            Diagnostic::warning(
                &url.origin,
                format!("`nats_url` names namespace `{from}`, the fleet's namespace in fleet.toml, but this environment deploys the fleet to `{to}`"),
            )
            .with_label("the agents connect to NATS in another namespace")
            .with_help(format!(
                "if NATS runs beside the fleet, set `nats_url` (under [defaults]) in the environment to its service in `{to}`; if it runs in `{from}` for every environment, ignore this"
            )),
        );
    }

    let profile = decode_profile(r, t, cx);
    let resources = decode_resources(r, t, profile, role);
    let placement = decode_placement(r, t, profile, cx.workload_type_label);
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
    let autoscaling = decode_autoscaling(r, t, &resources, profile, nats_url.as_ref(), cx);
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
    let mut env = decode_env(r, t, cx.own);
    if !consumers.is_empty() {
        env.insert(0, consumers_variable(consumer.iter().chain(&consumers)));
    }
    let env_from = decode_env_from(r, t);
    let volumes = decode_volumes(r, t, cx.own, &config_files, &security);
    let command = r
        .strings(t, "command")
        .map(|c| c.into_iter().map(|c| c.value).collect())
        .unwrap_or_default();
    let image_pull_secrets = r
        .strings(t, "image_pull_secrets")
        .unwrap_or_default()
        .iter()
        .filter_map(|name| dns_subdomain(r, name, "Secret name"))
        .collect();
    let priority_class = r
        .string(t, "priority_class")
        .and_then(|name| dns_subdomain(r, &name, "PriorityClass name"));
    let replicas = r.integer(t, "replicas", 0, 10_000);
    // The autoscaler owns the replica count: a count the agent sets itself
    // (not one from [defaults]) would be ignored without a word.
    if autoscaling.is_some()
        && let Some(own) = cx.own.get("replicas")
        && let Some(replicas) = &replicas
    {
        r.report(
            Diagnostic::warning(&own.node.origin, format!("agent `{role}` sets `replicas = {}` but is autoscaled", replicas.value))
                .with_label("ignored: the autoscaler sets the replica count")
                .with_help("remove `replicas`, or switch the autoscaler off with `autoscaling = { enabled = false }`"),
        );
    }
    let disruption_budget = decode_disruption_budget(r, t, cx.own);
    let fleet_ns = FleetNamespace {
        unlabelled: cx.namespace.filter(|_| !cx.manage_namespace),
        moved: cx.moved_namespace,
    };
    let network = decode_network(r, t, cx.running, fleet_ns);
    let rbac = decode_rbac(r, t);
    let messaging = decode_messaging(r, t, cx.streams);
    let labels = r.string_map(t, "labels").unwrap_or_default();
    let annotations = r.string_map(t, "annotations").unwrap_or_default();
    let patches = super::patch::decode_patches(r, t, &what);
    let tier = r
        .string(t, "tier")
        .and_then(|tier| dns_label(r, &tier, "tier", 63));

    Some(Agent {
        role: role_ok?,
        tier,
        image: image?.value,
        command,
        args,
        image_pull_secrets,
        priority_class,
        env,
        env_from,
        volumes,
        nats_url: nats_url?.value,
        config_dir: r
            .string(t, "config_dir")
            .map_or("/etc/agent".into(), |d| d.value),
        config_files,
        workspace_size: r.quantity(t, "workspace_size").map(|q| q.value),
        replicas: replicas.map_or(1, |v| v.value as u32),
        disruption_budget,
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
        messaging,
        metrics: r.boolean(t, "metrics").unwrap_or(true),
        labels,
        annotations,
        patches,
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
            && request.value() > limit.value()
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
    workload_type_label: &str,
) -> Placement {
    let mut placement = Placement::default();
    // The profile's placement, then the agent's laid over it: node
    // requirements key by key, lists replaced whole (as arrays are in overlays).
    let mut apply = |r: &mut Reader, source: &Table| {
        if let Some(selector) = r.string_map(source, "node_selector") {
            placement.node_selector = selector;
        }
        if let Some(workload) = r.string(source, "workload_type") {
            placement.node_affinity.insert(
                workload_type_label.to_string(),
                NodeRequirement {
                    operator: NodeOperator::In,
                    values: vec![workload.value],
                },
            );
        }
        if let Some(affinity) = r.get_table(source, "node_affinity") {
            placement
                .node_affinity
                .extend(decode_node_requirements(r, affinity.value));
        }
        if let Some(terms) = r.array(source, "preferred_node_affinity") {
            placement.preferred_node_affinity = terms
                .iter()
                .filter_map(|term| decode_preferred_term(r, term))
                .collect();
        }
        if let Some(tolerations) = r.array(source, "tolerations") {
            placement.tolerations = tolerations
                .iter()
                .filter_map(|toleration| decode_toleration(r, toleration))
                .collect();
        }
        if let Some(spread) = r.boolean(source, "zone_spread") {
            placement.zone_spread = spread;
        }
        if let Some(spread) = r.string(source, "node_spread") {
            match one_of(
                r,
                &spread,
                &["required", "preferred", "none"],
                "node spread",
            ) {
                Some("required") => placement.node_spread = Some(Spread::Required),
                Some("preferred") => placement.node_spread = Some(Spread::Preferred),
                Some(_) => placement.node_spread = None,
                None => {}
            }
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

/// `value` when it is one of `allowed`, or a diagnostic suggesting the
/// closest (case aside: `exists` means `Exists`, but Kubernetes refuses it).
pub(super) fn one_of<'a>(
    r: &mut Reader,
    value: &At<String>,
    allowed: &[&'a str],
    what: &str,
) -> Option<&'a str> {
    if let Some(found) = allowed.iter().find(|a| **a == value.value) {
        return Some(found);
    }
    let mut d = Diagnostic::error(&value.origin, format!("`{}` is not a {what}", value.value))
        .with_label(format!("not a {what}"));
    let same_but_case = allowed
        .iter()
        .find(|a| a.eq_ignore_ascii_case(&value.value));
    d = match same_but_case
        .copied()
        .or_else(|| suggest(&value.value, allowed))
    {
        Some(best) => d.with_help(format!("did you mean `{best}`?")),
        None => d.with_help(format!("use one of: {}", allowed.join(", "))),
    };
    r.report(d);
    None
}

/// Node label -> requirement: an array of values (the label is one of
/// them), or `{ operator, values }` with any of Kubernetes' operators.
fn decode_node_requirements(r: &mut Reader, table: &Table) -> BTreeMap<String, NodeRequirement> {
    let mut out = BTreeMap::new();
    for entry in &table.entries {
        let key = At {
            value: entry.key.clone(),
            origin: entry.key_origin.clone(),
        };
        let key_ok = label_key(r, &key, "node label").is_some();
        let requirement = match &entry.node.value {
            Value::Array(items) => {
                let values: Vec<At<String>> =
                    items.iter().filter_map(|n| r.node_string(n)).collect();
                node_requirement(r, NodeOperator::In, values, &entry.node.origin)
            }
            Value::Table(spec) => {
                r.check_keys(
                    spec,
                    &format!("node affinity on `{}`", entry.key),
                    NODE_REQUIREMENT_KEYS,
                );
                let operator = required_string(
                    r,
                    spec,
                    "operator",
                    &format!("node affinity on `{}`", entry.key),
                    &entry.node.origin,
                );
                let names: Vec<&str> = NodeOperator::ALL.iter().map(|o| o.as_str()).collect();
                let operator = operator.and_then(|o| {
                    one_of(r, &o, &names, "node affinity operator").and_then(|name| {
                        NodeOperator::ALL.into_iter().find(|op| op.as_str() == name)
                    })
                });
                let values = r.strings(spec, "values").unwrap_or_default();
                let at = spec
                    .get("values")
                    .map_or(&entry.node.origin, |v| &v.node.origin);
                operator.and_then(|operator| node_requirement(r, operator, values, at))
            }
            _ => {
                r.report(
                    Diagnostic::error(
                        &entry.node.origin,
                        "expected an array of label values, or { operator, values }",
                    )
                    .with_label(format!("found {}", entry.node.value.type_name()))
                    .with_help("e.g. `disktype = [\"ssd\"]`, or `gpu = { operator = \"Exists\" }`"),
                );
                None
            }
        };
        if let (true, Some(requirement)) = (key_ok, requirement) {
            out.insert(entry.key.clone(), requirement);
        }
    }
    out
}

/// The values an operator takes, as the API server checks them: some for
/// In and NotIn, none for Exists and DoesNotExist, one integer for Gt and Lt.
fn node_requirement(
    r: &mut Reader,
    operator: NodeOperator,
    values: Vec<At<String>>,
    at: &Origin,
) -> Option<NodeRequirement> {
    let op = operator.as_str();
    let problem = match operator {
        NodeOperator::In | NodeOperator::NotIn if values.is_empty() => Some((
            format!("operator `{op}` needs at least one value"),
            "add the label values, e.g. `values = [\"ssd\"]`",
        )),
        NodeOperator::Exists | NodeOperator::DoesNotExist if !values.is_empty() => Some((
            format!("operator `{op}` takes no values"),
            "remove `values`: the operator only asks whether the node has the label",
        )),
        NodeOperator::Gt | NodeOperator::Lt
            if values.len() != 1 || values[0].value.parse::<i64>().is_err() =>
        {
            Some((
                format!("operator `{op}` takes exactly one integer value"),
                "e.g. `values = [\"4\"]`: the node label's value is compared as an integer",
            ))
        }
        _ => None,
    };
    if let Some((message, help)) = problem {
        r.report(
            Diagnostic::error(at, message)
                .with_label("the API server refuses this")
                .with_help(help),
        );
        return None;
    }
    for value in &values {
        if !valid_label_value(&value.value) {
            r.report(
                Diagnostic::error(&value.origin, format!("`{}` is not a valid label value", value.value))
                    .with_label("no node label can have this value")
                    .with_help("use at most 63 letters, digits, '-', '_' and '.', starting and ending with a letter or digit"),
            );
            return None;
        }
    }
    Some(NodeRequirement {
        operator,
        values: values.into_iter().map(|v| v.value).collect(),
    })
}

/// `{ weight = 1..100, match = { label = requirement, ... } }`.
fn decode_preferred_term(r: &mut Reader, node: &Node) -> Option<PreferredNodeTerm> {
    let term = r.table(node)?;
    r.check_keys(term, "a preferred node affinity term", PREFERRED_TERM_KEYS);
    let weight = r.integer(term, "weight", 1, 100);
    if term.get("weight").is_none() {
        r.report(
            Diagnostic::error(
                &node.origin,
                "a preferred node affinity term has no `weight`",
            )
            .with_label("`weight` is required here")
            .with_help("add `weight = 1..100`: how much the scheduler favours nodes that match"),
        );
    }
    let requirements = match r.get_table(term, "match") {
        Some(m) if m.value.entries.is_empty() => {
            r.report(
                Diagnostic::error(&m.origin, "a preferred node affinity term matches nothing")
                    .with_label("empty")
                    .with_help(
                        "name at least one node label, e.g. `match = { disktype = [\"ssd\"] }`",
                    ),
            );
            None
        }
        Some(m) => Some(decode_node_requirements(r, m.value)),
        None => {
            if term.get("match").is_none() {
                r.report(
                    Diagnostic::error(
                        &node.origin,
                        "a preferred node affinity term has no `match`",
                    )
                    .with_label("`match` is required here")
                    .with_help("add `match = { label = [\"value\"] }`, the node labels to favour"),
                );
            }
            None
        }
    };
    Some(PreferredNodeTerm {
        weight: weight?.value as i32,
        requirements: requirements.filter(|r| !r.is_empty())?,
    })
}

/// One toleration, checked as the API server checks it.
fn decode_toleration(r: &mut Reader, node: &Node) -> Option<Toleration> {
    let t = r.table(node)?;
    r.check_keys(t, "a toleration", TOLERATION_KEYS);
    let key = r.string(t, "key");
    let key_ok = match &key {
        Some(key) => label_key(r, key, "taint").is_some(),
        None => true,
    };
    let operator = match r.string(t, "operator") {
        Some(op) => {
            one_of(r, &op, &["Equal", "Exists"], "toleration operator").map(|o| (o, Some(op)))
        }
        None => Some(("Equal", None)),
    };
    let value = r.string(t, "value");
    let effect = r.string(t, "effect").and_then(|e| {
        one_of(
            r,
            &e,
            &["NoSchedule", "PreferNoSchedule", "NoExecute"],
            "taint effect",
        )
        .map(|name| At {
            value: name.to_string(),
            origin: e.origin,
        })
    });
    let seconds = r.integer(t, "toleration_seconds", 0, i64::MAX);
    let (operator, operator_at) = operator?;
    let mut ok = key_ok;
    if key.is_none() && operator != "Exists" {
        ok = false;
        r.report(
            Diagnostic::error(
                operator_at.as_ref().map_or(&node.origin, |o| &o.origin),
                "a toleration without `key` must use operator `Exists`",
            )
            .with_label("only `Exists` can match every taint")
            .with_help(
                "add the taint's `key`, or set `operator = \"Exists\"` to tolerate every taint",
            ),
        );
    }
    if let (Some(value), "Exists") = (&value, operator) {
        ok = false;
        r.report(
            Diagnostic::error(
                &value.origin,
                "a toleration with operator `Exists` takes no `value`",
            )
            .with_label("the API server refuses this")
            .with_help("remove `value`, or use `operator = \"Equal\"` to match this value only"),
        );
    }
    if let Some(seconds) = &seconds
        && effect.as_ref().is_none_or(|e| e.value != "NoExecute")
    {
        ok = false;
        r.report(
            Diagnostic::error(
                &seconds.origin,
                "`toleration_seconds` needs `effect = \"NoExecute\"`",
            )
            .with_label("only a NoExecute taint evicts running pods")
            .with_help("set `effect = \"NoExecute\"`, or remove `toleration_seconds`"),
        );
    }
    if !ok
        || t.get("effect").is_some() && effect.is_none()
        || t.get("toleration_seconds").is_some() && seconds.is_none()
    {
        return None;
    }
    Some(Toleration {
        key: key.map(|k| k.value),
        operator: operator.to_string(),
        value: value.map(|v| v.value),
        effect: effect.map(|e| e.value),
        toleration_seconds: seconds.map(|s| s.value),
    })
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
    profile: Option<&Table>,
    nats_url: Option<&At<String>>,
    cx: &AgentContext<'_>,
) -> Option<Autoscaling> {
    let table = r.get_table(t, "autoscaling")?;
    let a = table.value;
    r.check_keys(a, "autoscaling", AUTOSCALING_KEYS);
    if r.boolean(a, "enabled") == Some(false) {
        return None;
    }
    let engine = decode_engine_name(r, a, cx.own, profile);
    let keda = engine.as_deref() == Some("keda");
    let min = r.integer(a, "min", 0, 10_000);
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
    if let Some(min) = &min
        && min.value == 0
    {
        if engine.is_some() && !keda {
            r.report(
                Diagnostic::error(&min.origin, "autoscaling min = 0 needs `engine = \"keda\"`")
                    .with_label("a HorizontalPodAutoscaler keeps at least 1 replica")
                    .with_help("set `engine = \"keda\"` (KEDA scales an idle agent to zero and wakes it on its first task), or `min = 1`; an HPA reaches zero only behind the alpha HPAScaleToZero feature gate"),
            );
        } else if keda && a.get("pending_per_replica").is_none() {
            r.report(
                Diagnostic::error(&min.origin, "scaling to zero needs `pending_per_replica`")
                    .with_label("nothing would wake the agent")
                    .with_help("memory and CPU are measured on running pods: at zero replicas only pending tasks can wake the agent"),
            );
        }
    }
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
    let cpu = r.integer(a, "cpu_utilization", 1, 1000);
    if let Some(cpu) = &cpu
        && resources.requests.cpu.is_none()
    {
        r.report(
            Diagnostic::error(
                &cpu.origin,
                "autoscaling on CPU utilization needs a CPU request",
            )
            .with_label("utilization of what?")
            .with_help("set resources.requests.cpu (or pick a profile that does)"),
        );
    }
    if pending.is_none()
        && memory.is_none()
        && cpu.is_none()
        && a.get("pending_per_replica").is_none()
        && a.get("memory_utilization").is_none()
        && a.get("cpu_utilization").is_none()
    {
        r.report(
            Diagnostic::error(&table.origin, "autoscaling has no metric")
                .with_label("scale on what?")
                .with_help("set `pending_per_replica` (tasks waiting on the agent's consumer), `cpu_utilization` and/or `memory_utilization`"),
        );
    }
    let engine = match engine.as_deref() {
        Some("keda") => Engine::Keda(decode_keda(r, a, nats_url, cx)?),
        Some(_) => {
            for entry in a
                .entries
                .iter()
                .filter(|e| KEDA_ONLY_KEYS.contains(&e.key.as_str()))
            {
                r.report(
                    Diagnostic::error(
                        &entry.key_origin,
                        format!("`{}` is a KEDA setting", entry.key),
                    )
                    .with_label("the agent's engine is `hpa`")
                    .with_help("set `engine = \"keda\"` in its `autoscaling`, or remove the key"),
                );
            }
            Engine::Hpa
        }
        None => return None,
    };
    Some(Autoscaling {
        engine,
        min_replicas: min.map_or(1, |m| m.value as u32),
        max_replicas: max?.value as u32,
        pending_per_replica: pending.map(|p| p.value as u32),
        memory_utilization: memory.map(|m| m.value as u32),
        cpu_utilization: cpu.map(|c| c.value as u32),
        // Scaling up may more than double the replicas in a period; scaling
        // down can remove at most all of them.
        scale_up: decode_scaling(
            r,
            a,
            "scale_up",
            ScalingRules {
                stabilization_window_seconds: 60,
                pods: Some(2),
                percent: None,
                period_seconds: 120,
            },
            1000,
        ),
        scale_down: decode_scaling(
            r,
            a,
            "scale_down",
            ScalingRules {
                stabilization_window_seconds: 300,
                pods: Some(1),
                percent: None,
                period_seconds: 300,
            },
            100,
        ),
    })
}

const ENGINES: &[&str] = &["hpa", "keda"];

/// `autoscaling.engine`: the agent's own, else its profile's, else the
/// defaults' (`hpa`, the seed's, when none says). `None` when it is not a
/// known engine (reported).
fn decode_engine_name(
    r: &mut Reader,
    merged: &Table,
    own: &Table,
    profile: Option<&Table>,
) -> Option<String> {
    let engine_in = |t: &Table| match t.get("autoscaling").map(|e| &e.node.value) {
        Some(Value::Table(a)) => a.get("engine").is_some(),
        _ => false,
    };
    let from = if engine_in(own) {
        merged
    } else {
        match profile {
            Some(profile) if engine_in(profile) => match &profile.get("autoscaling")?.node.value {
                Value::Table(a) => a,
                _ => return None,
            },
            _ => merged,
        }
    };
    let Some(engine) = r.string(from, "engine") else {
        // Not a string (reported), or not set: the seed's HPA.
        return from.get("engine").is_none().then(|| "hpa".into());
    };
    if ENGINES.contains(&engine.value.as_str()) {
        return Some(engine.value);
    }
    let mut d = Diagnostic::error(
        &engine.origin,
        format!("`{}` is not an autoscaling engine", engine.value),
    )
    .with_label("not an engine");
    d = match suggest(&engine.value.to_ascii_lowercase(), ENGINES) {
        Some(best) => d.with_help(format!("did you mean `{best}`?")),
        None => {
            d.with_help("use `hpa` (a HorizontalPodAutoscaler) or `keda` (a KEDA ScaledObject)")
        }
    };
    r.report(d);
    None
}

/// The ScaledObject's own settings, and where KEDA reads NATS: the
/// environment's `nats_monitoring`, else the agent's NATS host on the
/// monitoring port NATS and its Helm chart use (8222).
fn decode_keda(
    r: &mut Reader,
    a: &Table,
    nats_url: Option<&At<String>>,
    cx: &AgentContext<'_>,
) -> Option<Keda> {
    let activation_pending = r
        .integer(a, "activation_pending", 0, 1_000_000)
        .map_or(0, |v| v.value as u32);
    let polling_interval = r.seconds(a, "polling_interval");
    if let Some(p) = &polling_interval
        && p.value < 1
    {
        r.report(
            Diagnostic::error(&p.origin, "`polling_interval` must be at least 1s")
                .with_label("KEDA would read NATS without pause"),
        );
    }
    let cooldown = r.seconds(a, "cooldown");
    let fallback = r.integer(a, "fallback", 0, 10_000);
    if let Some(fallback) = &fallback
        && a.get("pending_per_replica").is_none()
    {
        r.report(
            Diagnostic::error(&fallback.origin, "`fallback` needs `pending_per_replica`")
                .with_label("KEDA holds fallback replicas only for a scaler it cannot read")
                .with_help("memory and CPU are read by the HPA itself, not by KEDA: scale on pending tasks too, or remove `fallback`"),
        );
    }
    let (monitoring_endpoint, monitoring_https) = match cx.nats_monitoring {
        Some(monitoring) => monitoring_endpoint(r, monitoring)?,
        None => (default_monitoring_endpoint(&nats_url?.value)?, false),
    };
    Some(Keda {
        monitoring_endpoint,
        monitoring_https,
        account: cx.nats_account.map_or("$G".into(), |a| a.value.clone()),
        activation_pending,
        polling_interval_seconds: polling_interval.map_or(30, |p| p.value),
        cooldown_seconds: cooldown.map_or(300, |c| c.value),
        fallback_replicas: fallback.map(|f| f.value as u32),
    })
}

/// `nats_monitoring`: `host:port`, optionally after `http://` or `https://`.
fn monitoring_endpoint(r: &mut Reader, at: &At<String>) -> Option<(String, bool)> {
    let (https, rest) = match at.value.split_once("://") {
        Some(("http", rest)) => (false, Some(rest)),
        Some(("https", rest)) => (true, Some(rest)),
        Some(_) => (false, None),
        None => (false, Some(at.value.as_str())),
    };
    let rest = rest.map(|r| r.trim_end_matches('/'));
    let valid = rest
        .and_then(|r| r.rsplit_once(':'))
        .is_some_and(|(host, port)| {
            !host.is_empty()
                && !host.contains(['/', '@', ' '])
                && port.parse::<u16>().is_ok_and(|p| p > 0)
        });
    match rest {
        Some(rest) if valid => Some((rest.to_string(), https)),
        _ => {
            r.report(
                Diagnostic::error(&at.origin, format!("`{}` is not a NATS monitoring endpoint", at.value))
                    .with_label("expected host:port")
                    .with_help("give the address KEDA reaches NATS's monitoring port at from inside the cluster, e.g. \"nats.nats.svc:8222\" (\"https://...\" when it serves TLS)"),
            );
            None
        }
    }
}

/// The NATS server's host from the agent's `nats_url` (its first URL,
/// without scheme, credentials or port), on port 8222.
fn default_monitoring_endpoint(nats_url: &str) -> Option<String> {
    let first = nats_url.split(',').next()?.trim();
    let without_scheme = first.split_once("://").map_or(first, |(_, rest)| rest);
    let host_port = without_scheme
        .rsplit_once('@')
        .map_or(without_scheme, |(_, h)| h);
    let host_port = host_port.split('/').next()?;
    let host = match host_port.strip_prefix('[') {
        Some(v6) => format!("[{}]", v6.split(']').next()?),
        None => host_port.split(':').next()?.to_string(),
    };
    (!host.is_empty()).then(|| format!("{host}:8222"))
}

/// A scaling direction's rules. Setting `pods` or `percent` replaces the
/// default policy; setting both keeps both (the autoscaler then takes the
/// one that allows the larger change).
pub(super) fn decode_scaling(
    r: &mut Reader,
    a: &Table,
    key: &str,
    defaults: ScalingRules,
    max_percent: i64,
) -> ScalingRules {
    let Some(rules) = r.get_table(a, key) else {
        return defaults;
    };
    let s = rules.value;
    r.check_keys(s, key, SCALING_KEYS);
    let pods = r.integer(s, "pods", 1, 10_000).map(|v| v.value as i32);
    let percent = r
        .integer(s, "percent", 1, max_percent)
        .map(|v| v.value as i32);
    let own_policy = s.get("pods").is_some() || s.get("percent").is_some();
    ScalingRules {
        stabilization_window_seconds: r
            .seconds(s, "stabilization")
            .map_or(defaults.stabilization_window_seconds, |v| v.value),
        pods: if own_policy { pods } else { defaults.pods },
        percent: if own_policy {
            percent
        } else {
            defaults.percent
        },
        period_seconds: r
            .seconds(s, "period")
            .map_or(defaults.period_seconds, |v| v.value),
    }
}

pub(super) fn decode_env(r: &mut Reader, t: &Table, own: &Table) -> Vec<EnvVar> {
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
            Value::Table(reference) => {
                let what = format!("env `{}`", entry.key);
                r.check_keys(reference, &what, ENV_REF_KEYS);
                let own = own_table(own, &["env", &entry.key]);
                let source = object_ref(r, reference, own, &what, &entry.node.origin);
                let key = required_string(r, reference, "key", &what, &entry.node.origin);
                match (source, key) {
                    (Some(ObjectRef::Secret(name)), Some(key)) => Some(EnvValue::Secret {
                        name,
                        key: key.value,
                    }),
                    (Some(ObjectRef::ConfigMap(name)), Some(key)) => Some(EnvValue::ConfigMap {
                        name,
                        key: key.value,
                    }),
                    _ => None,
                }
            }
            _ => {
                r.report(
                    Diagnostic::error(&entry.node.origin, "expected a string, or { secret = \"name\", key = \"key\" } (or config_map)")
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

/// `secret = "name"` or `config_map = "name"`: exactly one, naming an
/// existing object. When an overlay switched the source (see
/// [`overriding`]), its choice wins.
fn object_ref(
    r: &mut Reader,
    t: &Table,
    own: Option<&Table>,
    what: &str,
    origin: &Origin,
) -> Option<ObjectRef> {
    let (secret, config_map) = match (t.get("secret"), t.get("config_map")) {
        (Some(secret), Some(config_map)) => match overriding(secret, config_map, own) {
            Some(winner) if winner.key == "secret" => (r.string(t, "secret"), None),
            Some(_) => (None, r.string(t, "config_map")),
            None => {
                r.report(
                    Diagnostic::error(
                        &config_map.key_origin,
                        format!("{what} names both a Secret and a ConfigMap"),
                    )
                    .with_label("one source only")
                    .with_help("keep either `secret` or `config_map`"),
                );
                return None;
            }
        },
        _ => (r.string(t, "secret"), r.string(t, "config_map")),
    };
    match (secret, config_map) {
        (Some(secret), _) => dns_subdomain(r, &secret, "Secret name").map(ObjectRef::Secret),
        (None, Some(config_map)) => {
            dns_subdomain(r, &config_map, "ConfigMap name").map(ObjectRef::ConfigMap)
        }
        (None, None) => {
            if t.get("secret").is_none() && t.get("config_map").is_none() {
                r.report(
                    Diagnostic::error(origin, format!("{what} names no Secret or ConfigMap"))
                        .with_label("from where?")
                        .with_help("add `secret = \"name\"` or `config_map = \"name\"`, an object that exists in the namespace"),
                );
            }
            None
        }
    }
}

/// Of two settings that exclude each other but met when tables were laid
/// over each other, the one written by the overlay: the environment's over
/// the fleet file's, the agent's own table over [defaults]. `None` when one
/// place sets both.
fn overriding<'e>(a: &'e Entry, b: &'e Entry, own: Option<&Table>) -> Option<&'e Entry> {
    // Files are numbered in load order: built-in, fleet file, environment.
    if a.key_origin.file != b.key_origin.file {
        return Some(if a.key_origin.file > b.key_origin.file {
            a
        } else {
            b
        });
    }
    let own = own?;
    match (own.get(&a.key).is_some(), own.get(&b.key).is_some()) {
        (true, false) => Some(a),
        (false, true) => Some(b),
        _ => None,
    }
}

/// The table at `path` in the agent's own table, if it has one there.
fn own_table<'t>(own: &'t Table, path: &[&str]) -> Option<&'t Table> {
    let mut table = own;
    for key in path {
        match &table.get(key)?.node.value {
            Value::Table(inner) => table = inner,
            _ => return None,
        }
    }
    Some(table)
}

/// `env_from`: every key of existing ConfigMaps and Secrets as variables.
pub(super) fn decode_env_from(r: &mut Reader, t: &Table) -> Vec<EnvFrom> {
    let Some(items) = r.array(t, "env_from") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in items {
        let Some(table) = r.table(item) else { continue };
        r.check_keys(table, "an env_from source", ENV_FROM_KEYS);
        let source = object_ref(r, table, None, "an env_from source", &item.origin);
        let prefix = r.string(table, "prefix");
        if let Some(prefix) = &prefix
            && !valid_env_name(&prefix.value)
        {
            r.report(
                Diagnostic::error(
                    &prefix.origin,
                    format!("`{}` is not a valid variable name prefix", prefix.value),
                )
                .with_label("invalid prefix")
                .with_help("use letters, digits and '_', not starting with a digit, e.g. \"DB_\""),
            );
            continue;
        }
        if let Some(source) = source {
            out.push(EnvFrom {
                source,
                prefix: prefix.map(|p| p.value),
            });
        }
    }
    out
}

/// Names of the volumes fleet mounts itself.
const FLEET_VOLUMES: [&str; 3] = ["agent-config", "workspace", "tmp"];

/// `volumes`: existing Secrets and ConfigMaps mounted into the container,
/// by volume name, read-only unless said otherwise.
pub(super) fn decode_volumes(
    r: &mut Reader,
    t: &Table,
    own: &Table,
    config_files: &BTreeMap<String, String>,
    security: &SecurityContext,
) -> Vec<MountedVolume> {
    let Some(table) = r.get_table(t, "volumes") else {
        return Vec::new();
    };
    // Where fleet mounts its own volumes: the API server refuses two mounts
    // at one path.
    let config_dir = r
        .string(t, "config_dir")
        .map_or("/etc/agent".into(), |d| d.value);
    let mut taken: Vec<(String, String)> =
        vec![("/workspace".into(), "the agent's workspace".into())];
    if !config_files.is_empty() {
        taken.push((
            config_dir.trim_end_matches('/').into(),
            "the agent's config files".into(),
        ));
    }
    if security.read_only_root_filesystem {
        taken.push(("/tmp".into(), "the agent's temp directory".into()));
    }
    let mut out = Vec::new();
    for entry in &table.value.entries {
        let name = At {
            value: entry.key.clone(),
            origin: entry.key_origin.clone(),
        };
        let Some(name) = dns_label(r, &name, "volume name", 63) else {
            continue;
        };
        if FLEET_VOLUMES.contains(&name.as_str()) {
            r.report(
                Diagnostic::error(
                    &entry.key_origin,
                    format!("volume name `{name}` is fleet's own"),
                )
                .with_label("fleet names a volume of the pod this")
                .with_help(format!(
                    "use another name; fleet's volumes are {}",
                    FLEET_VOLUMES.join(", ")
                )),
            );
            continue;
        }
        let Some(v) = r.table(&entry.node) else {
            continue;
        };
        let what = format!("volume `{name}`");
        r.check_keys(v, &what, VOLUME_KEYS);
        let own = own_table(own, &["volumes", &entry.key]);
        let source = object_ref(r, v, own, &what, &entry.node.origin);
        let mount_path = required_string(r, v, "mount_path", &what, &entry.node.origin);
        let read_only = r.boolean(v, "read_only").unwrap_or(true);
        let mut ok = source.is_some() && mount_path.is_some();
        if let Some(path) = &mount_path {
            let normal = path.value.trim_end_matches('/');
            if !path.value.starts_with('/') {
                ok = false;
                r.report(
                    Diagnostic::error(
                        &path.origin,
                        format!("`{}` is not an absolute path", path.value),
                    )
                    .with_label("mount paths start with '/'")
                    .with_help("e.g. \"/etc/agent/tls\""),
                );
            } else if let Some((_, whose)) = taken.iter().find(|(p, _)| p == normal) {
                ok = false;
                r.report(
                    Diagnostic::error(
                        &path.origin,
                        format!("`{}` is where fleet mounts {whose}", path.value),
                    )
                    .with_label("already mounted")
                    .with_help("mount the volume elsewhere"),
                );
            } else {
                taken.push((normal.to_string(), format!("volume `{name}`")));
            }
        }
        let relative = |r: &mut Reader, path: &At<String>, what: &str| {
            let ok = !path.value.is_empty()
                && !path.value.starts_with('/')
                && !path.value.split('/').any(|part| part == "..");
            if !ok {
                r.report(
                    Diagnostic::error(
                        &path.origin,
                        format!("`{}` is not a relative path inside the volume", path.value),
                    )
                    .with_label(format!("{what} must be relative, without '..'"))
                    .with_help("e.g. \"tls.crt\" or \"certs/tls.crt\""),
                );
            }
            ok
        };
        let mut items = BTreeMap::new();
        if let Some(listed) = r.get_table(v, "items") {
            for (entry, path) in r.string_entries(listed.value) {
                if !valid_config_key(&entry.key) {
                    ok = false;
                    r.report(
                        Diagnostic::error(
                            &entry.key_origin,
                            format!("`{}` is not a valid key", entry.key),
                        )
                        .with_label("not a Secret or ConfigMap key")
                        .with_help("use letters, digits, '-', '_' and '.'"),
                    );
                    continue;
                }
                ok &= relative(r, &path, "an item's path");
                items.insert(entry.key.clone(), path.value);
            }
        }
        let sub_path = r.string(v, "sub_path");
        if let Some(sub_path) = &sub_path {
            ok &= relative(r, sub_path, "`sub_path`");
        }
        if let (true, Some(source), Some(mount_path)) = (ok, source, mount_path) {
            out.push(MountedVolume {
                name,
                source,
                mount_path: mount_path.value,
                read_only,
                items,
                sub_path: sub_path.map(|s| s.value),
            });
        }
    }
    out
}

/// `disruption_budget`: how many pods a node drain may take at once. The
/// default, one at a time, is what fleet has always rendered.
pub(super) fn decode_disruption_budget(
    r: &mut Reader,
    t: &Table,
    own: &Table,
) -> Option<DisruptionBudget> {
    let default = DisruptionBudget::MaxUnavailable(PodCount::Count(1));
    let Some(table) = r.get_table(t, "disruption_budget") else {
        return Some(default);
    };
    let b = table.value;
    r.check_keys(b, "disruption_budget", DISRUPTION_BUDGET_KEYS);
    if r.boolean(b, "enabled") == Some(false) {
        return None;
    }
    let (min, max) = match (b.get("min_available"), b.get("max_unavailable")) {
        (Some(min), Some(max)) => {
            match overriding(min, max, own_table(own, &["disruption_budget"])) {
                Some(winner) if winner.key == "min_available" => (Some(min), None),
                Some(_) => (None, Some(max)),
                None => {
                    r.report(
                        Diagnostic::error(&max.key_origin, "a disruption budget takes `min_available` or `max_unavailable`, not both")
                            .with_label("one of the two")
                            .with_help("keep the one you mean: the API server refuses both"),
                    );
                    return Some(default);
                }
            }
        }
        both => both,
    };
    let budget = match (min, max) {
        (Some(min), _) => DisruptionBudget::MinAvailable(pod_count(r, &min.node)?.value),
        (None, Some(max)) => DisruptionBudget::MaxUnavailable(pod_count(r, &max.node)?.value),
        (None, None) => default,
    };
    // Valid, but then no pod may ever be evicted: a node drain waits forever.
    let blocks = match budget {
        DisruptionBudget::MaxUnavailable(count) => {
            matches!(count, PodCount::Count(0) | PodCount::Percent(0))
        }
        DisruptionBudget::MinAvailable(count) => count == PodCount::Percent(100),
    };
    if blocks {
        let at = min.or(max).map_or(&table.origin, |e| &e.node.origin);
        r.report(
            Diagnostic::warning(at, "this disruption budget lets no pod be evicted")
                .with_label("node drains will wait for ever")
                .with_help("allow at least one pod to go, e.g. `max_unavailable = 1`"),
        );
    }
    Some(budget)
}

/// A number of pods (`2`) or a percentage (`"25%"`, at most 100%).
fn pod_count(r: &mut Reader, node: &Node) -> Option<At<PodCount>> {
    let count = match &node.value {
        Value::Integer(_) => {
            let n = r.node_integer(node, 0, i32::MAX.into())?;
            PodCount::Count(n.value as u32)
        }
        Value::String(text) => {
            let percent = text
                .strip_suffix('%')
                .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|n| n.parse::<u32>().ok());
            match percent {
                Some(p) if p <= 100 => PodCount::Percent(p),
                Some(_) => {
                    r.report(
                        Diagnostic::error(&node.origin, format!("`{text}` is more than 100%"))
                            .with_label("a percentage of the agent's pods")
                            .with_help("use a percentage from \"0%\" to \"100%\""),
                    );
                    return None;
                }
                None => {
                    r.report(
                        Diagnostic::error(
                            &node.origin,
                            format!("`{text}` is not a pod count or percentage"),
                        )
                        .with_label("not a count or percentage")
                        .with_help("write a number of pods (`1`) or a percentage (`\"25%\"`)"),
                    );
                    return None;
                }
            }
        }
        _ => {
            r.report(
                Diagnostic::error(
                    &node.origin,
                    format!(
                        "expected a number of pods or a percentage, found {}",
                        node.value.type_name()
                    ),
                )
                .with_label("expected e.g. 1 or \"25%\""),
            );
            return None;
        }
    };
    Some(At {
        value: count,
        origin: node.origin.clone(),
    })
}

pub(super) fn valid_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `publishes`, `requests` and `serves`: valid subjects; what an agent
/// publishes must be captured by a stream of the fleet (else the message is
/// lost, and the subject is surely a typo or a request, which `requests` says).
pub(super) fn decode_messaging(r: &mut Reader, t: &Table, streams: &[StreamEntry]) -> Messaging {
    let subjects = |r: &mut Reader, key: &str| -> Vec<At<String>> {
        let list = r.strings(t, key).unwrap_or_default();
        list.into_iter()
            .filter(|subject| {
                let valid = crate::subject::valid_subject(&subject.value);
                if !valid {
                    r.report(
                        Diagnostic::error(&subject.origin, format!("`{}` is not a NATS subject", subject.value))
                            .with_label("invalid subject")
                            .with_help("tokens separated by `.`, without spaces; `*` matches one token, `>` the rest"),
                    );
                }
                valid
            })
            .collect()
    };
    let publishes = subjects(r, "publishes");
    let requests = subjects(r, "requests");
    let serves = subjects(r, "serves");
    let captured: Vec<&str> = streams
        .iter()
        .filter_map(|entry| entry.stream.as_ref())
        .flat_map(|stream| stream.subjects.iter().map(String::as_str))
        .collect();
    for subject in &publishes {
        if !captured
            .iter()
            .any(|stream| crate::subject::subject_covers(stream, &subject.value))
        {
            let d = Diagnostic::error(
                &subject.origin,
                format!("no stream of the fleet captures `{}`", subject.value),
            )
            .with_label("a message published here would be lost")
            .with_help(format!(
                "the streams capture {}; a request/reply subject goes in `requests`",
                if captured.is_empty() {
                    "nothing".to_string()
                } else {
                    captured.join(", ")
                }
            ));
            r.report(d);
        }
    }
    let values = |list: Vec<At<String>>| list.into_iter().map(|s| s.value).collect();
    Messaging {
        publishes: values(publishes),
        requests: values(requests),
        serves: values(serves),
    }
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

/// Whether a URL's host is a service in `namespace`
/// (`nats://nats.agent-system.svc:4222`, `nats.agent-system:4222`).
fn names_namespace(url: &str, namespace: &str) -> bool {
    url.split(',').any(|one| {
        let rest = one.split_once("://").map_or(one, |(_, rest)| rest);
        let host = rest.rsplit('@').next().unwrap_or(rest);
        let host = host.split([':', '/']).next().unwrap_or(host);
        host.split('.').nth(1) == Some(namespace)
    })
}
