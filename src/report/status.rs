//! `fleet status`: the live fleet per agent, built from what was read
//! (pure) and written as text, JSON or Markdown.

use std::collections::BTreeMap;
use std::io::Write;

use serde::Serialize;
use serde_json::Value;

use crate::model::{Engine, Fleet};
use crate::provenance::Applied;

/// What `fleet status` read, as it was read: a kind that could not be
/// read holds the reason.
#[derive(Debug)]
pub struct Read {
    pub deployments: Result<Vec<Value>, String>,
    /// Every HPA of the namespace (KEDA's carry no fleet label).
    pub hpas: Result<Vec<Value>, String>,
    pub scaled_objects: Result<Vec<Value>, String>,
    /// The ApplySet parent, `None` when fleet never applied.
    pub parent: Result<Option<Value>, String>,
    /// Consumer info by (stream, consumer); an absent entry was not read.
    pub consumers: BTreeMap<(String, String), Result<Value, String>>,
}

/// Where the fleet runs, as the plan's `Target:` line says it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Header {
    pub fleet: String,
    pub environment: Option<String>,
    pub namespace: String,
    pub kube_context: String,
    /// Without userinfo.
    pub nats_url: Option<String>,
    /// Only some agents are shown (`--agent`, `--exclude`, `--select`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub targeting: Option<crate::plan::selection::Targeting>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Status {
    #[serde(flatten)]
    pub header: Header,
    /// What fleet last applied (the ApplySet parent's annotations).
    pub last_applied: Option<Applied>,
    pub agents: Vec<AgentStatus>,
    /// What could not be read, and other things to know.
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentStatus {
    pub role: String,
    pub deployment: String,
    /// `None` when the Deployment is missing or unreadable.
    pub replicas: Option<Replicas>,
    pub autoscaler: Option<Autoscaler>,
    pub consumers: Vec<ConsumerStatus>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Replicas {
    /// `spec.replicas`.
    pub desired: Option<i64>,
    /// `status.replicas`.
    pub current: i64,
    pub ready: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Autoscaler {
    /// `hpa` or `keda`.
    pub engine: &'static str,
    pub hpa: String,
    /// Whether the HPA was found; when not, the fields below are empty.
    pub found: bool,
    pub min_replicas: Option<i64>,
    pub max_replicas: Option<i64>,
    pub metrics: Vec<Metric>,
    pub last_scale_time: Option<String>,
    /// Why the HPA cannot scale (ScalingActive=False), reason: message.
    pub cannot_scale: Option<String>,
    /// KEDA's ScaledObject conditions (Ready, Active, Fallback).
    pub scaled_object: Vec<Condition>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metric {
    /// `Resource memory`, `External s0-nats-jetstream-tasks`, ...
    pub name: String,
    /// `None` when the HPA reports no current value.
    pub current: Option<String>,
    pub target: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Condition {
    #[serde(rename = "type")]
    pub kind: String,
    pub status: String,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConsumerStatus {
    pub stream: String,
    pub name: String,
    /// `num_pending`; `None` (unknown) when it could not be read.
    pub pending: Option<u64>,
    /// `num_ack_pending`; `None` (unknown) when it could not be read.
    pub ack_pending: Option<u64>,
}

/// The status of `fleet`'s agents from what was read.
pub fn build(fleet: &Fleet, header: Header, read: &Read) -> Status {
    let mut notes = Vec::new();
    let mut unread = |what: &str, result: Option<&String>| {
        if let Some(reason) = result {
            notes.push(format!("{what} could not be read: {reason}"));
        }
    };
    unread("Deployments", read.deployments.as_ref().err());
    unread("HorizontalPodAutoscalers", read.hpas.as_ref().err());
    if fleet.agents.iter().any(|a| {
        a.autoscaling
            .as_ref()
            .is_some_and(|s| matches!(s.engine, Engine::Keda(_)))
    }) {
        unread(
            "ScaledObjects (keda.sh)",
            read.scaled_objects.as_ref().err(),
        );
    }
    unread(
        "The ApplySet parent (what fleet last applied)",
        read.parent.as_ref().err(),
    );
    let mut consumer_errors: Vec<String> = read
        .consumers
        .values()
        .filter_map(|r| r.as_ref().err().cloned())
        .collect();
    consumer_errors.dedup();
    for reason in consumer_errors {
        notes.push(format!(
            "JetStream consumer info could not be read: {reason}"
        ));
    }
    let by_name = |items: &Result<Vec<Value>, String>, name: &str| -> Option<Value> {
        items
            .as_ref()
            .ok()?
            .iter()
            .find(|o| o["metadata"]["name"] == name)
            .cloned()
    };
    let agents = fleet
        .agents
        .iter()
        .map(|agent| {
            let deployment = format!("agent-{}", agent.role);
            let replicas = by_name(&read.deployments, &deployment).map(|d| Replicas {
                desired: d["spec"]["replicas"].as_i64(),
                current: d["status"]["replicas"].as_i64().unwrap_or(0),
                ready: d["status"]["readyReplicas"].as_i64().unwrap_or(0),
            });
            let autoscaler = agent.autoscaling.as_ref().map(|scaling| {
                let hpa_name = format!("agent-{}-hpa", agent.role);
                let hpa = by_name(&read.hpas, &hpa_name);
                let keda = matches!(scaling.engine, Engine::Keda(_));
                let scaled_object = if keda {
                    by_name(&read.scaled_objects, &deployment)
                        .map(|o| conditions(&o))
                        .unwrap_or_default()
                } else {
                    Vec::new()
                };
                autoscaler(
                    if keda { "keda" } else { "hpa" },
                    hpa_name,
                    hpa.as_ref(),
                    scaled_object,
                )
            });
            let consumers = agent
                .all_consumers()
                .map(|c| {
                    let info = read
                        .consumers
                        .get(&(c.stream.clone(), c.name.clone()))
                        .and_then(|r| r.as_ref().ok());
                    ConsumerStatus {
                        stream: c.stream.clone(),
                        name: c.name.clone(),
                        pending: info.and_then(|i| i["num_pending"].as_u64()),
                        ack_pending: info.and_then(|i| i["num_ack_pending"].as_u64()),
                    }
                })
                .collect();
            AgentStatus {
                role: agent.role.clone(),
                deployment,
                replicas,
                autoscaler,
                consumers,
            }
        })
        .collect();
    Status {
        header,
        last_applied: read
            .parent
            .as_ref()
            .ok()
            .and_then(|p| p.as_ref())
            .and_then(crate::provenance::applied),
        agents,
        notes,
    }
}

fn conditions(object: &Value) -> Vec<Condition> {
    object["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| Condition {
            kind: c["type"].as_str().unwrap_or_default().to_string(),
            status: c["status"].as_str().unwrap_or_default().to_string(),
            reason: c["reason"]
                .as_str()
                .filter(|r| !r.is_empty())
                .map(str::to_string),
        })
        .collect()
}

fn autoscaler(
    engine: &'static str,
    hpa_name: String,
    hpa: Option<&Value>,
    scaled_object: Vec<Condition>,
) -> Autoscaler {
    let Some(hpa) = hpa else {
        return Autoscaler {
            engine,
            hpa: hpa_name,
            found: false,
            min_replicas: None,
            max_replicas: None,
            metrics: Vec::new(),
            last_scale_time: None,
            cannot_scale: None,
            scaled_object,
        };
    };
    let current = hpa["status"]["currentMetrics"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let metrics = hpa["spec"]["metrics"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|spec| {
            let key = metric_key(spec);
            let now = current.iter().find(|c| metric_key(c) == key);
            let source = &spec[source_field(spec)];
            Metric {
                name: format!("{} {}", key.0, key.1),
                current: now.and_then(|c| quantity(&c[source_field(c)]["current"])),
                target: quantity(&source["target"]).unwrap_or_else(|| "?".into()),
            }
        })
        .collect();
    let cannot_scale = hpa["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "ScalingActive" && c["status"] == "False")
        .map(|c| {
            format!(
                "{}: {}",
                c["reason"].as_str().unwrap_or("unknown reason"),
                c["message"].as_str().unwrap_or_default()
            )
        });
    Autoscaler {
        engine,
        hpa: hpa_name,
        found: true,
        min_replicas: Some(hpa["spec"]["minReplicas"].as_i64().unwrap_or(1)),
        max_replicas: hpa["spec"]["maxReplicas"].as_i64(),
        metrics,
        last_scale_time: hpa["status"]["lastScaleTime"].as_str().map(str::to_string),
        cannot_scale,
        scaled_object,
    }
}

/// `Resource` → `resource`, `External` → `external`, ...
fn source_field(metric: &Value) -> String {
    let kind = metric["type"].as_str().unwrap_or_default();
    let mut chars = kind.chars();
    chars
        .next()
        .map(|c| c.to_ascii_lowercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

/// (type, metric name) of a spec or current metric.
fn metric_key(metric: &Value) -> (String, String) {
    let source = &metric[source_field(metric)];
    let name = source["name"]
        .as_str()
        .or_else(|| source["metric"]["name"].as_str())
        .unwrap_or_default();
    (
        metric["type"].as_str().unwrap_or_default().to_string(),
        name.to_string(),
    )
}

/// A target or current value as people read it: `80%`, `5 avg`, `12`.
fn quantity(value: &Value) -> Option<String> {
    if let Some(percent) = value["averageUtilization"].as_i64() {
        return Some(format!("{percent}%"));
    }
    if let Some(average) = value["averageValue"].as_str() {
        return Some(format!("{average} avg"));
    }
    value["value"].as_str().map(str::to_string)
}

fn count(value: Option<u64>) -> String {
    value.map_or_else(|| "unknown".into(), |v| v.to_string())
}

fn target_line(header: &Header) -> String {
    let environment = match &header.environment {
        Some(env) => format!("environment `{env}`"),
        None => "no environment (fleet.toml alone)".into(),
    };
    let nats = match &header.nats_url {
        Some(url) => format!("NATS server {}", crate::redact::url(url)),
        None => "no NATS server".into(),
    };
    format!(
        "Target: {environment}, namespace `{}` on kube context `{}`, {nats}",
        header.namespace, header.kube_context
    )
}

fn applied_line(applied: Option<&Applied>) -> String {
    let Some(applied) = applied else {
        return "Last applied: never (no ApplySet parent)".into();
    };
    let commit = applied
        .commit
        .as_deref()
        .map(|c| {
            let dirty = if applied.dirty { " (dirty)" } else { "" };
            format!("commit {}{dirty}", crate::provenance::short(c))
        })
        .unwrap_or_else(|| "no commit".into());
    format!(
        "Last applied: {commit}, at {}, by {}",
        applied.applied_at.as_deref().unwrap_or("unknown time"),
        applied.applied_by.as_deref().unwrap_or("unknown")
    )
}

fn replicas_text(replicas: Option<&Replicas>) -> String {
    match replicas {
        Some(r) => format!(
            "{}/{} ready ({} desired)",
            r.ready,
            r.current,
            r.desired.map_or_else(|| "?".into(), |d| d.to_string())
        ),
        None => "Deployment not found".into(),
    }
}

fn autoscaler_lines(scaler: &Autoscaler) -> Vec<String> {
    if !scaler.found {
        return vec![format!(
            "autoscaler {}: HPA {} not found",
            scaler.engine, scaler.hpa
        )];
    }
    let range = |v: Option<i64>| v.map_or_else(|| "?".into(), |v| v.to_string());
    let mut lines = vec![format!(
        "autoscaler {}: min {}, max {}, last scaled {}",
        scaler.engine,
        range(scaler.min_replicas),
        range(scaler.max_replicas),
        scaler.last_scale_time.as_deref().unwrap_or("never")
    )];
    for metric in &scaler.metrics {
        lines.push(format!(
            "  {}: {} / target {}",
            metric.name,
            metric.current.as_deref().unwrap_or("unknown"),
            metric.target
        ));
    }
    if let Some(reason) = &scaler.cannot_scale {
        lines.push(format!("  cannot scale: {reason}"));
    }
    if !scaler.scaled_object.is_empty() {
        let conditions: Vec<String> = scaler
            .scaled_object
            .iter()
            .map(|c| match &c.reason {
                Some(reason) => format!("{}={} ({reason})", c.kind, c.status),
                None => format!("{}={}", c.kind, c.status),
            })
            .collect();
        lines.push(format!("  ScaledObject: {}", conditions.join(", ")));
    }
    lines
}

fn consumer_line(consumer: &ConsumerStatus) -> String {
    format!(
        "consumer {}/{}: {} pending, {} ack pending",
        consumer.stream,
        consumer.name,
        count(consumer.pending),
        count(consumer.ack_pending)
    )
}

pub fn text(status: &Status, out: &mut dyn Write) -> anyhow::Result<()> {
    writeln!(out, "{}", target_line(&status.header))?;
    if let Some(targeting) = &status.header.targeting {
        writeln!(out, "{}", super::targeted(targeting))?;
    }
    writeln!(out, "{}", applied_line(status.last_applied.as_ref()))?;
    for agent in &status.agents {
        writeln!(out)?;
        writeln!(
            out,
            "agent {}: {}",
            agent.role,
            replicas_text(agent.replicas.as_ref())
        )?;
        for line in agent.autoscaler.iter().flat_map(autoscaler_lines) {
            writeln!(out, "  {line}")?;
        }
        for consumer in &agent.consumers {
            writeln!(out, "  {}", consumer_line(consumer))?;
        }
    }
    if !status.notes.is_empty() {
        writeln!(out)?;
        for note in &status.notes {
            writeln!(out, "Note: {note}")?;
        }
    }
    Ok(())
}

pub fn json(status: &Status, out: &mut dyn Write) -> anyhow::Result<()> {
    serde_json::to_writer_pretty(&mut *out, status)?;
    writeln!(out)?;
    Ok(())
}

pub fn markdown(status: &Status, out: &mut dyn Write) -> anyhow::Result<()> {
    writeln!(out, "### fleet status: {}\n", status.header.fleet)?;
    writeln!(out, "- {}", target_line(&status.header))?;
    if let Some(targeting) = &status.header.targeting {
        writeln!(out, "- {}", super::targeted(targeting))?;
    }
    writeln!(out, "- {}\n", applied_line(status.last_applied.as_ref()))?;
    writeln!(out, "| Agent | Replicas | Autoscaler | Consumers |")?;
    writeln!(out, "|---|---|---|---|")?;
    for agent in &status.agents {
        let scaler = agent
            .autoscaler
            .as_ref()
            .map(|s| autoscaler_lines(s).join("<br>"))
            .unwrap_or_else(|| "none".into());
        let consumers: Vec<String> = agent.consumers.iter().map(consumer_line).collect();
        writeln!(
            out,
            "| `{}` | {} | {} | {} |",
            agent.role,
            replicas_text(agent.replicas.as_ref()),
            scaler.replace('|', "\\|"),
            consumers.join("<br>")
        )?;
    }
    for note in &status.notes {
        writeln!(out, "\n> {note}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use serde_json::json;

    use super::*;
    use crate::load::{MapFiles, load_str};

    const FLEET: &str = r#"
[fleet]
name = "demo"
namespace = "agents"
[environment]
nats_monitoring = "nats:8222"
[defaults]
image = "img:1"
nats_url = "nats://nats:4222"
[streams.tasks]
subjects = ["tasks.>"]
[agents.worker]
consumer = { stream = "tasks" }
autoscaling = { engine = "keda", min = 0, max = 3, pending_per_replica = 2 }
[agents.plain]
"#;

    fn fleet() -> Fleet {
        let loaded = load_str(
            Path::new("fleet.toml"),
            FLEET,
            None,
            None,
            &MapFiles(BTreeMap::new()),
        );
        assert_eq!(loaded.errors(), 0, "{:?}", loaded.diagnostics);
        loaded.fleet.unwrap()
    }

    fn header() -> Header {
        Header {
            fleet: "demo".into(),
            environment: Some("prod".into()),
            namespace: "agents".into(),
            kube_context: "prod".into(),
            nats_url: Some("nats://nats:4222".into()),
            targeting: None,
        }
    }

    fn hpa() -> Value {
        json!({
            "metadata": {"name": "agent-worker-hpa"},
            "spec": {
                "minReplicas": 1, "maxReplicas": 3,
                "metrics": [
                    {"type": "External", "external": {"metric": {"name": "s0-nats-jetstream-tasks"}, "target": {"type": "AverageValue", "averageValue": "2"}}},
                    {"type": "Resource", "resource": {"name": "memory", "target": {"type": "Utilization", "averageUtilization": 80}}}
                ]
            },
            "status": {
                "lastScaleTime": "2026-12-05T10:00:00Z",
                "currentMetrics": [
                    {"type": "External", "external": {"metric": {"name": "s0-nats-jetstream-tasks"}, "current": {"averageValue": "5"}}}
                ],
                "conditions": [
                    {"type": "ScalingActive", "status": "False", "reason": "FailedGetExternalMetric", "message": "no metrics returned"}
                ]
            }
        })
    }

    fn read(consumer: Result<Value, String>) -> Read {
        Read {
            deployments: Ok(vec![json!({
                "metadata": {"name": "agent-worker"},
                "spec": {"replicas": 2},
                "status": {"replicas": 2, "readyReplicas": 1}
            })]),
            hpas: Ok(vec![hpa()]),
            scaled_objects: Ok(vec![json!({
                "metadata": {"name": "agent-worker"},
                "status": {"conditions": [
                    {"type": "Ready", "status": "True", "reason": "ScaledObjectReady"},
                    {"type": "Active", "status": "True", "reason": ""}
                ]}
            })]),
            parent: Ok(Some(json!({"metadata": {"annotations": {
                "fleet.agent.ceo/commit": "0123456789abcdef0123456789abcdef01234567",
                "fleet.agent.ceo/applied-by": "ci@runner",
                "fleet.agent.ceo/applied-at": "2026-12-05T09:00:00Z"
            }}}))),
            consumers: BTreeMap::from([(("tasks".into(), "worker-agent".into()), consumer)]),
        }
    }

    #[test]
    fn builds_each_agent_in_the_fleets_order() {
        let status = build(
            &fleet(),
            header(),
            &read(Ok(json!({"num_pending": 7, "num_ack_pending": 1}))),
        );
        // The fleet's order of agents (by role).
        let roles: Vec<&str> = status.agents.iter().map(|a| a.role.as_str()).collect();
        assert_eq!(roles, ["plain", "worker"]);
        let worker = &status.agents[1];
        assert_eq!(worker.role, "worker");
        assert_eq!(
            worker.replicas,
            Some(Replicas {
                desired: Some(2),
                current: 2,
                ready: 1
            })
        );
        let scaler = worker.autoscaler.as_ref().unwrap();
        assert_eq!(scaler.engine, "keda");
        assert_eq!(
            (scaler.min_replicas, scaler.max_replicas),
            (Some(1), Some(3))
        );
        assert_eq!(
            scaler.metrics,
            [
                Metric {
                    name: "External s0-nats-jetstream-tasks".into(),
                    current: Some("5 avg".into()),
                    target: "2 avg".into()
                },
                Metric {
                    name: "Resource memory".into(),
                    current: None,
                    target: "80%".into()
                }
            ]
        );
        assert_eq!(
            scaler.cannot_scale.as_deref(),
            Some("FailedGetExternalMetric: no metrics returned")
        );
        assert_eq!(scaler.scaled_object[1].reason, None);
        assert_eq!(
            (worker.consumers[0].pending, worker.consumers[0].ack_pending),
            (Some(7), Some(1))
        );
        let plain = &status.agents[0];
        assert_eq!(plain.replicas, None);
        assert_eq!(plain.autoscaler, None);
        assert_eq!(
            status.last_applied.as_ref().unwrap().applied_by.as_deref(),
            Some("ci@runner")
        );
        assert!(status.notes.is_empty(), "{:?}", status.notes);
    }

    #[test]
    fn an_unreadable_count_is_unknown_never_zero() {
        let status = build(&fleet(), header(), &read(Err("no answer".into())));
        let consumer = &status.agents[1].consumers[0];
        assert_eq!((consumer.pending, consumer.ack_pending), (None, None));
        let mut out = Vec::new();
        text(&status, &mut out).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(
            out.contains("consumer tasks/worker-agent: unknown pending, unknown ack pending"),
            "{out}"
        );
        assert!(out.contains("Note: JetStream consumer info could not be read: no answer"));
        let mut out = Vec::new();
        json(&status, &mut out).unwrap();
        let value: Value = serde_json::from_slice(&out).unwrap();
        assert!(value["agents"][1]["consumers"][0]["pending"].is_null());
    }

    #[test]
    fn a_forbidden_kind_is_a_note_not_a_failure() {
        let mut read = read(Ok(json!({"num_pending": 0, "num_ack_pending": 0})));
        read.scaled_objects = Err("listing ScaledObjects: forbidden".into());
        read.parent = Err("reading Secret agents/fleet-demo: forbidden".into());
        let status = build(&fleet(), header(), &read);
        assert!(status.agents[1].autoscaler.as_ref().unwrap().found);
        assert_eq!(status.last_applied, None);
        assert_eq!(status.notes.len(), 2, "{:?}", status.notes);
        assert!(status.notes[0].starts_with("ScaledObjects (keda.sh) could not be read"));
    }

    #[test]
    fn renders_text_and_markdown() {
        let status = build(
            &fleet(),
            header(),
            &read(Ok(json!({"num_pending": 7, "num_ack_pending": 1}))),
        );
        let mut out = Vec::new();
        text(&status, &mut out).unwrap();
        let out = String::from_utf8(out).unwrap();
        for line in [
            "Target: environment `prod`, namespace `agents` on kube context `prod`, NATS server nats://nats:4222",
            "Last applied: commit 0123456789ab, at 2026-12-05T09:00:00Z, by ci@runner",
            "agent worker: 1/2 ready (2 desired)",
            "  autoscaler keda: min 1, max 3, last scaled 2026-12-05T10:00:00Z",
            "    External s0-nats-jetstream-tasks: 5 avg / target 2 avg",
            "    Resource memory: unknown / target 80%",
            "    cannot scale: FailedGetExternalMetric: no metrics returned",
            "    ScaledObject: Ready=True (ScaledObjectReady), Active=True",
            "  consumer tasks/worker-agent: 7 pending, 1 ack pending",
            "agent plain: Deployment not found",
        ] {
            assert!(out.contains(line), "no `{line}` in:\n{out}");
        }
        let mut out = Vec::new();
        markdown(&status, &mut out).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(
            out.contains("| `worker` | 1/2 ready (2 desired) |"),
            "{out}"
        );
        assert!(out.contains("- Last applied: commit 0123456789ab"), "{out}");
    }

    #[test]
    fn a_targeted_status_says_which_agents_it_left_out() {
        let selection = crate::plan::selection::Selection {
            agents: vec!["worker".into()],
            ..Default::default()
        };
        let mut header = header();
        header.targeting = Some(crate::plan::selection::Targeting {
            selection,
            agents: vec!["worker".into()],
            left_out: vec!["plain".into()],
        });
        let status = build(&fleet(), header, &read(Ok(json!({}))));
        let mut out = Vec::new();
        text(&status, &mut out).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(
            out.contains("\nTargeted (--agent worker): agents worker; left out: plain\n"),
            "{out}"
        );
    }
}
