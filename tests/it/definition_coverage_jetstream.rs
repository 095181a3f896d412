//! Issue 11, JetStream and network keys: a fleet that uses every one of them
//! validates, plans, applies and then plans empty against the local control
//! plane and nats-server (and on 2.10), and a deliver policy change is
//! planned as the replace the server demands.

use crate::support::{FleetDir, TestEnv, control_plane};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use serde_json::{Value, json};

/// Every key added for issue 11, on top of the example's `agent-tasks`
/// stream (which FleetDir makes private to the test). `P` is the test's
/// stream prefix, so the extra streams are cleaned up with it.
const DEFINITION: &str = r#"
[fleet]
name = "agent-ceo"
namespace = "agent-system"
label_domain = "agent.ceo"

[defaults]
image = "gcr.io/agent-ceo/agent-runtime:1.4.2"
nats_url = "nats://nats.agent-system.svc:4222"

[streams.agent-tasks]
subjects = ["tasks.>"]
retention = "workqueue"
max_age = "7d"
max_msgs_per_subject = 100
allow_direct = true
compression = "s2"

[streams.events]
name = "P_events"
subjects = ["P.events.>"]
max_msgs_per_subject = 10
compression = "none"

[streams.alerts]
name = "P_alerts"
subjects = ["P.alerts.>"]

[streams.audit]
name = "P_audit"
sources = ["alerts", { stream = "events", filter_subject = "P.events.audit.>" }]
allow_direct = false

[streams.retired]
name = "P_retired"
subjects = ["P.retired.>"]

[agents.devops]
tier = "operations"
profile = "executor"
autoscaling = { min = 1, max = 3, pending_per_replica = 5 }
# The server takes ack_wait from backoff[0]: a warning, and no change planned.
consumer = { stream = "agent-tasks", ack_wait = "30s", backoff = ["10s", "1m"], max_deliver = 5 }

[agents.devops.consumers.events]
filter_subjects = ["P.events.>"]
deliver_policy = "new"
inactive_threshold = "1h"

[agents.devops.consumers.audit]
filter_subjects = ["P.events.audit.>"]
deliver_policy = "last_per_subject"

[agents.devops.network]
egress = [
  { to = [{ pods = { app = "nats" }, namespaces = { name = "nats" } }], ports = [4222] },
  { to = [{ cidr = "10.0.0.0/8", except = ["10.1.0.0/16", "10.2.3.0/24"] }], ports = ["8000-8100", { port = 9000, end_port = 9100, protocol = "UDP" }] },
  { to = [{ namespaces = {} }], ports = [{ port = 53, protocol = "UDP" }, "53/tcp", "3868/sctp"] },
]

[agents.devops.network.ingress]
nats = { from = [{ namespaces = { name = "agent-system" } }], ports = [4222] }

[agents.reviewer]
tier = "engineering"
profile = "cognitive"
# A work queue's consumers deliver all: this one is on `events`.
consumer = { stream = "events", filter_subjects = ["P.events.review.>"], deliver_policy = "last", inactive_threshold = "24h" }
"#;

/// The environment: switches `retired` off, and changes one named ingress
/// rule and adds another without copying the rest.
fn overlay(namespace: &str) -> String {
    format!(
        r#"
[streams.retired]
enabled = false

[agents.devops.network.ingress.nats]
from = [{{ namespaces = {{ name = "{namespace}" }} }}]

[agents.devops.network.ingress.metrics]
from = [{{ pods = {{ app = "prometheus" }}, namespaces = {{ "kubernetes.io/metadata.name" = "monitoring" }} }}]
ports = [9090]
"#
    )
}

fn definition(env: &TestEnv) -> String {
    DEFINITION
        .replace("P_", &env.stream_prefix)
        .replace("\"P.", &format!("\"{}.", env.stream_prefix))
}

async fn raw_info(nats_url: &str, subject: String) -> Value {
    let nats = async_nats::connect(nats_url).await.unwrap();
    let answer: Value = async_nats::jetstream::new(nats)
        .request(subject, &json!({}))
        .await
        .unwrap();
    assert!(answer.get("error").is_none(), "{answer}");
    answer
}

#[tokio::test]
async fn every_new_key_validates_plans_applies_and_then_plans_empty() {
    let env = TestEnv::new("def-js").await;
    let fleet = FleetDir::with_definition(&format!("{}-f", env.namespace), &definition(&env));
    fleet.set_environment(&overlay(&fleet.namespace));
    let p = &env.stream_prefix;
    let nats_url = &control_plane().nats_url;

    let validate = fleet.run(&["validate"]);
    validate.assert_ok("validate");
    assert!(
        validate
            .stderr
            .contains("ack_wait differs from the first backoff step"),
        "{}",
        validate.stderr
    );

    let plan = fleet.run(&["plan"]);
    plan.assert_ok("plan");
    for expected in [
        format!("+ jetstream stream {p}events"),
        format!("+ jetstream stream {p}audit"),
        format!("+ jetstream consumer {p}events/devops-agent-events"),
        format!("+ jetstream consumer {p}audit/devops-agent-audit"),
    ] {
        assert!(
            plan.stdout.contains(&expected),
            "{expected}:\n{}",
            plan.stdout
        );
    }
    assert!(
        !plan.stdout.contains(&format!("{p}retired")),
        "{}",
        plan.stdout
    );

    fleet.apply(&["--no-wait"]).assert_ok("apply");
    fleet.assert_plan_empty();

    // What the servers hold.
    let events = raw_info(nats_url, format!("STREAM.INFO.{p}events")).await;
    assert_eq!(events["config"]["max_msgs_per_subject"], 10);
    let audit = raw_info(nats_url, format!("STREAM.INFO.{p}audit")).await;
    let mut sources: Vec<&str> = audit["config"]["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    sources.sort();
    assert_eq!(sources, [format!("{p}alerts"), format!("{p}events")]);
    let tasks = raw_info(nats_url, format!("STREAM.INFO.{}", fleet.stream())).await;
    assert_eq!(tasks["config"]["compression"], "s2");
    assert_eq!(tasks["config"]["allow_direct"], true);
    let consumer = raw_info(
        nats_url,
        format!("CONSUMER.INFO.{p}events.devops-agent-events"),
    )
    .await;
    assert_eq!(consumer["config"]["deliver_policy"], "new");
    assert_eq!(
        consumer["config"]["inactive_threshold"],
        3_600_000_000_000u64
    );
    let own = raw_info(
        nats_url,
        format!("CONSUMER.INFO.{}.devops-agent", fleet.stream()),
    )
    .await;
    assert_eq!(own["config"]["ack_wait"], 10_000_000_000u64, "backoff[0]");

    let deployment = kube::Api::<Deployment>::namespaced(env.kube.clone(), &fleet.namespace)
        .get("agent-devops")
        .await
        .unwrap();
    let container = &deployment.spec.template.spec.unwrap().containers[0];
    let consumers = container
        .env
        .as_ref()
        .unwrap()
        .iter()
        .find(|v| v.name == "NATS_CONSUMERS")
        .and_then(|v| v.value.clone());
    assert_eq!(
        consumers.as_deref(),
        Some(
            format!(
                "{}/devops-agent {p}audit/devops-agent-audit {p}events/devops-agent-events",
                fleet.stream()
            )
            .as_str()
        )
    );
    let hpa = kube::Api::<HorizontalPodAutoscaler>::namespaced(env.kube.clone(), &fleet.namespace)
        .get("agent-devops-hpa")
        .await
        .unwrap();
    assert_eq!(hpa.spec.metrics.unwrap().len(), 3, "one per consumer");

    let policy = kube::Api::<NetworkPolicy>::namespaced(env.kube.clone(), &fleet.namespace)
        .get("agent-devops-network")
        .await
        .unwrap();
    let spec = serde_json::to_value(policy.spec.unwrap()).unwrap();
    assert_eq!(
        spec["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"]["name"],
        fleet.namespace.as_str(),
        "the environment changed the named rule"
    );
    assert_eq!(
        spec["ingress"][1]["from"][0],
        json!({
            "podSelector": { "matchLabels": { "app": "prometheus" } },
            "namespaceSelector": { "matchLabels": { "kubernetes.io/metadata.name": "monitoring" } },
        })
    );
    assert_eq!(
        spec["egress"][1]["to"][0]["ipBlock"],
        json!({ "cidr": "10.0.0.0/8", "except": ["10.1.0.0/16", "10.2.3.0/24"] })
    );
    assert_eq!(
        spec["egress"][1]["ports"],
        json!([
            { "protocol": "TCP", "port": 8000, "endPort": 8100 },
            { "protocol": "UDP", "port": 9000, "endPort": 9100 },
        ])
    );
    assert_eq!(spec["egress"][2]["ports"][2]["protocol"], "SCTP");

    // The server cannot change a deliver policy: a replace, with its pending count.
    let mut changed = overlay(&fleet.namespace);
    changed.push_str("\n[agents.devops.consumers.events]\ndeliver_policy = \"all\"\n");
    fleet.set_environment(&changed);
    let plan = fleet.run(&["plan"]);
    plan.assert_ok("plan of the deliver policy change");
    assert!(
        plan.stdout.contains(&format!(
            "-/+ jetstream consumer {p}events/devops-agent-events"
        )),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout.contains(
            "deliver_policy cannot change in place; 0 messages pending or unacknowledged"
        ),
        "{}",
        plan.stdout
    );
    fleet
        .apply(&["--no-wait"])
        .assert_ok("apply of the replace");
    fleet.assert_plan_empty();
}

#[tokio::test]
async fn every_new_stream_and_consumer_key_converges_on_nats_2_10() {
    let env = TestEnv::new("def-js-2-10").await;
    let fleet = FleetDir::with_definition(&format!("{}-f", env.namespace), &definition(&env));
    let old = &control_plane().nats_old_url;
    fleet.set_environment_with_nats(old, &overlay(&fleet.namespace));
    let applied = fleet.apply(&["--no-wait"]);
    let converged = applied.code == 0 && fleet.run(&["plan", "--detailed-exitcode"]).code == 0;

    // TestEnv cleans up the pinned server only.
    let nats = async_nats::connect(old.as_str()).await.unwrap();
    let js = async_nats::jetstream::new(nats);
    for stream in [
        fleet.stream(),
        format!("{}events", env.stream_prefix),
        format!("{}alerts", env.stream_prefix),
        format!("{}audit", env.stream_prefix),
    ] {
        let _ = js.delete_stream(&stream).await;
    }
    applied.assert_ok("apply on 2.10");
    assert!(converged, "the plan after apply on 2.10 is not empty");
}
