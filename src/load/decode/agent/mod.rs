//! One agent: its table laid over [defaults], read into an [`Agent`]. Each
//! sub-table has a module of its own.

mod autoscaling;
mod disruption;
mod env;
mod placement;
mod resources;
mod rights;
mod security;
mod volumes;

use autoscaling::*;
use disruption::*;
use env::*;
use placement::*;
use resources::*;
use rights::*;
use security::*;
use volumes::*;

use super::network::{FleetNamespace, decode_network};
use super::*;
use crate::load::diagnostic::Diagnostic;
use crate::load::read::{At, Reader, suggest};
use crate::load::source::{Node, Origin, Table, Value};
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
    let patches = patch::decode_patches(r, t, &what);
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

/// Loading one agent, `a`, through the real loader, for the sub-table
/// modules' tests.
#[cfg(test)]
pub(super) mod testing {
    use std::collections::BTreeMap;
    use std::path::Path;

    use crate::load::diagnostic::Severity;
    use crate::load::{MapFiles, load_str};
    use crate::model::Agent;

    /// A fleet whose agent `a` starts on line 1 of fleet.toml: the agent's
    /// lines are from line 2 on. Then `[fleet]` (`name`, `namespace`, then
    /// `fleet`'s lines) and `[defaults]` (`image`, `nats_url`, then
    /// `defaults`' lines): with a one-line agent and no `fleet`, `defaults`
    /// starts on line 10.
    #[derive(Default)]
    pub(in crate::load::decode::agent) struct Definition<'a> {
        /// Under `[agents.a]`, from line 2.
        pub agent: &'a str,
        /// More keys of `[fleet]` (which has `name` and `namespace`).
        pub fleet: &'a str,
        /// More keys of `[defaults]` (which has `image` and `nats_url`), then
        /// any further tables (`[profiles.x]`, `[streams.x]`, ...).
        pub defaults: &'a str,
        /// environments/e.toml, loaded over fleet.toml as environment `e`.
        pub environment: Option<&'a str>,
        /// Config files by path.
        pub files: &'a [(&'a str, &'a str)],
    }

    /// A stream `tasks` on `tasks.>` (a work queue), for `defaults`.
    pub(in crate::load::decode::agent) const TASKS: &str =
        "[streams.tasks]\nsubjects = [\"tasks.>\"]\nretention = \"workqueue\"\n";

    impl Definition<'_> {
        /// The agent (when the load had no error) and every diagnostic, as
        /// `line:col: message`, `line:col: warning: message`, with the
        /// file's path first when it is not fleet.toml.
        pub(in crate::load::decode::agent) fn load(&self) -> (Option<Agent>, Vec<String>) {
            let text = format!(
                "[agents.a]\n{}\n[fleet]\nname = \"f\"\nnamespace = \"ns\"\n{}\n[defaults]\nimage = \"agent:1\"\nnats_url = \"nats://nats:4222\"\n{}\n",
                self.agent, self.fleet, self.defaults
            );
            let files = self
                .files
                .iter()
                .map(|(path, text)| (path.to_string(), text.to_string()))
                .collect::<BTreeMap<_, _>>();
            let loaded = load_str(
                Path::new("fleet.toml"),
                &text,
                self.environment
                    .map(|text| (Path::new("environments/e.toml"), text)),
                self.environment.map(|_| "e"),
                &MapFiles(files),
            );
            let diagnostics = loaded
                .diagnostics
                .iter()
                .map(|d| {
                    let mut at = String::new();
                    if let Some(origin) = &d.origin {
                        let path = &loaded.sources.file(origin.file).path;
                        if path != Path::new("fleet.toml") {
                            at = format!("{}:", path.display());
                        }
                        let (line, col) = loaded.sources.line_col(origin);
                        at = format!("{at}{line}:{col}: ");
                    }
                    let severity = match d.severity {
                        Severity::Error => "",
                        Severity::Warning => "warning: ",
                    };
                    format!("{at}{severity}{}", d.message)
                })
                .collect();
            let agent = loaded
                .fleet
                .and_then(|f| f.agents.into_iter().find(|a| a.role == "a"));
            (agent, diagnostics)
        }

        /// [`Definition::load`]'s agent, or its diagnostics when there is any.
        pub(in crate::load::decode::agent) fn result(&self) -> Result<Agent, Vec<String>> {
            match self.load() {
                (Some(agent), diagnostics) if diagnostics.is_empty() => Ok(agent),
                (_, diagnostics) => Err(diagnostics),
            }
        }
    }

    /// [`agent`], with a consumer (from [defaults]) of stream `tasks`.
    pub(in crate::load::decode::agent) fn consuming(lines: &str) -> Result<Agent, Vec<String>> {
        Definition {
            agent: lines,
            defaults: &format!("consumer = {{ stream = \"tasks\" }}\n{TASKS}"),
            ..Definition::default()
        }
        .result()
    }

    /// Agent `a` with `lines` under `[agents.a]` (from line 2), or every
    /// diagnostic when there is any (a warning too).
    pub(in crate::load::decode::agent) fn agent(lines: &str) -> Result<Agent, Vec<String>> {
        Definition {
            agent: lines,
            ..Definition::default()
        }
        .result()
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{Definition, TASKS, agent};
    use crate::model::*;

    #[test]
    fn an_agent_of_its_own_takes_the_built_in_defaults() {
        let a = agent("").unwrap();
        assert_eq!(a.role, "a");
        assert_eq!(a.image, "agent:1");
        assert_eq!(a.nats_url, "nats://nats:4222");
        assert_eq!(a.args, ["--role=a"]);
        assert_eq!(a.config_dir, "/etc/agent");
        assert_eq!(a.replicas, 1);
        assert_eq!((a.metrics_port, a.health_port), (9090, 8080));
        assert_eq!(
            a.liveness,
            Probe {
                path: "/healthz".into(),
                initial_delay_seconds: 30,
                period_seconds: 60,
                timeout_seconds: Some(10),
            }
        );
        assert_eq!(
            a.readiness,
            Probe {
                path: "/readyz".into(),
                initial_delay_seconds: 10,
                period_seconds: 30,
                timeout_seconds: None,
            }
        );
        assert_eq!(a.workspace_size.map(|q| q.text).as_deref(), Some("10Gi"));
        assert_eq!(a.autoscaling, None);
        assert!(a.metrics);
    }

    #[test]
    fn config_files_add_the_config_argument_under_config_dir() {
        let a = agent("config_dir = \"/etc/a\"\nconfig = { \"config.yaml\" = \"x: 1\" }").unwrap();
        assert_eq!(a.args, ["--role=a", "--config=/etc/a/config.yaml"]);
        assert_eq!(a.config_dir, "/etc/a");
    }

    #[test]
    fn config_dir_cannot_be_where_fleet_mounts_the_temp_directory() {
        assert_eq!(
            agent("config_dir = \"/tmp\"\nconfig = { \"config.yaml\" = \"x: 1\" }").unwrap_err(),
            ["2:14: `config_dir` /tmp is where fleet mounts the agent's temp directory"]
        );
    }

    #[test]
    fn replicas_of_an_autoscaled_agent_are_a_warning() {
        let (a, diagnostics) = Definition {
            agent: "replicas = 3\nresources = { requests = { cpu = \"1\" } }\nautoscaling = { max = 4, cpu_utilization = 80 }",
            ..Definition::default()
        }
        .load();
        assert_eq!(
            diagnostics,
            ["2:12: warning: agent `a` sets `replicas = 3` but is autoscaled"]
        );
        assert_eq!(a.unwrap().replicas, 3);
    }

    #[test]
    fn scaling_on_pending_tasks_needs_a_consumer() {
        let scaled = "autoscaling = { max = 4, pending_per_replica = 5 }";
        assert_eq!(
            agent(scaled).unwrap_err(),
            ["1:9: agent `a` scales on pending tasks but has no consumer"]
        );
        let a = Definition {
            agent: &format!("{scaled}\nconsumer = {{ stream = \"tasks\" }}"),
            defaults: TASKS,
            ..Definition::default()
        }
        .result()
        .unwrap();
        assert_eq!(a.consumer.map(|c| c.name).as_deref(), Some("a-agent"));
        assert_eq!(a.autoscaling.unwrap().pending_per_replica, Some(5));
    }
}
