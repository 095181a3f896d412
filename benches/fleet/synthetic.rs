//! The synthetic fleets, and the same objects as manifests for kubectl.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde_json::Value;

/// The environment every synthetic fleet is loaded with.
pub(crate) const ENV: &str = "bench";

/// The agent whose config the one-agent change edits.
pub(crate) const CHANGED_AGENT: &str = "agent0001";

/// Writes a fleet of `agents` agents to `dir`: `fleet.toml` modelled on the
/// repo's (its `[fleet]`, `[defaults]`, `[defaults.network]` and stream
/// sections) and `environments/bench.toml` for the local control plane.
/// The stream is named after the namespace, with subjects under it: the
/// shared NATS server allows one stream per name and per subject, so runs
/// would otherwise collide with each other, the demo and the tests.
/// `changed` edits one value of [`CHANGED_AGENT`]'s config.
pub(crate) fn write_fleet(
    dir: &Path,
    agents: usize,
    namespace: &str,
    nats_url: &str,
    changed: bool,
) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir.join("environments"))
        .with_context(|| format!("creating {}", dir.display()))?;
    let file = dir.join("fleet.toml");
    std::fs::write(&file, fleet_toml(agents, namespace, changed))
        .with_context(|| format!("writing {}", file.display()))?;
    let environment = format!(
        r#"# The local control plane, one namespace per fleet size and run.
[environment]
kube_context = "fleet-local"
namespace = "{namespace}"
nats_url = "{nats_url}"

[defaults]
image = "gcr.io/agent-ceo/agent-runtime:1.4.2"
"#
    );
    let env_file = dir.join("environments").join(format!("{ENV}.toml"));
    std::fs::write(&env_file, environment)
        .with_context(|| format!("writing {}", env_file.display()))?;
    Ok(file)
}

/// Agents `agent0001..`, rotating over three profiles; every second one
/// autoscaled; each with an inline config.
fn fleet_toml(agents: usize, namespace: &str, changed: bool) -> String {
    let stream = stream_name(namespace);
    let mut toml = format!(
        r#"# Synthetic fleet of {agents} agents for benches/fleet, modelled on the repo's fleet.toml.

[fleet]
name = "agent-ceo"
namespace = "agent-system"
label_domain = "agent.ceo"

[defaults]
image = "gcr.io/agent-ceo/agent-runtime:latest"
nats_url = "nats://nats.agent-system.svc:4222"
consumer = {{ stream = "{stream}", ack_wait = "5m", max_deliver = 5 }}

[defaults.network]
ingress = [
  {{ from = [{{ namespaces = {{ name = "agent-system" }} }}], ports = [4222] }},
]
egress = [
  {{ to = [{{ pods = {{ app = "nats" }} }}], ports = [4222] }},
  {{ to = [{{ cidr = "10.0.0.1/32" }}], ports = [443] }},
  {{ to = [{{ namespaces = {{}} }}], ports = [443, 80] }},
]

[streams.{stream}]
description = "Tasks delegated between agents, one subject tree per role"
subjects = ["{namespace}.tasks.>"]
retention = "workqueue"
storage = "file"
max_age = "7d"
duplicate_window = "2m"
"#
    );
    let profiles = ["executor", "cognitive", "observer"];
    let tiers = ["operations", "engineering", "operations"];
    for i in 1..=agents {
        let name = format!("agent{i:04}");
        let profile = profiles[(i - 1) % 3];
        let tier = tiers[(i - 1) % 3];
        let mut tokens = 1000 * (i % 200 + 1);
        if changed && name == CHANGED_AGENT {
            tokens += 1;
        }
        let _ = write!(
            toml,
            "\n[agents.{name}]\ntier = \"{tier}\"\nprofile = \"{profile}\"\n\
             config = {{ \"config.yaml\" = \"role: {name}\\nprofile: {profile}\\nmax_context_tokens: {tokens}\\n\" }}\n"
        );
        if i % 2 == 1 {
            toml.push_str("autoscaling = { min = 1, max = 5, pending_per_replica = 3 }\n");
        }
    }
    toml
}

pub(crate) fn stream_name(namespace: &str) -> String {
    format!("{namespace}-agent-tasks")
}

/// Multi-document YAML for `kubectl -f`.
pub(crate) fn write_manifests(path: &Path, objects: &[Value]) -> anyhow::Result<()> {
    let mut yaml = String::new();
    for object in objects {
        yaml.push_str("---\n");
        yaml.push_str(&serde_saphyr::to_string(object)?);
    }
    std::fs::write(path, yaml).with_context(|| format!("writing {}", path.display()))
}

/// The objects moved to `namespace`: the Namespace object renamed, every
/// other object's `metadata.namespace` set. References inside the objects
/// (labels, selectors) stay: they change no request kubectl makes.
pub(crate) fn in_namespace(objects: &[Value], namespace: &str) -> Vec<Value> {
    objects
        .iter()
        .map(|object| {
            let mut object = object.clone();
            if object["kind"] == "Namespace" {
                object["metadata"]["name"] = Value::from(namespace);
            } else if object["metadata"]["namespace"].is_string() {
                object["metadata"]["namespace"] = Value::from(namespace);
            }
            object
        })
        .collect()
}
