//! `fleet status` on the local control plane: a KEDA-scaled agent with
//! tasks waiting, read as the admin and as the read-only identity of
//! `fleet rbac`, and with NATS out of reach (counts unknown, never 0).

use std::time::Duration;

use crate::support::{self, FleetDir, TestEnv, X509User, eventually, kubectl_apply};
use serde_json::Value;

/// One worker that KEDA scales 1..4 on 2 pending tasks per replica.
const STATUS_FLEET: &str = r#"
[fleet]
name = "status"
namespace = "placeholder"

[defaults]
image = "gcr.io/agent-ceo/agent-runtime:latest"
nats_url = "nats://127.0.0.1:14222"
consumer = { stream = "agent-tasks", ack_wait = "5m" }
network = { enabled = false }

[streams.agent-tasks]
subjects = ["tasks.>"]
retention = "workqueue"

[agents.worker]
autoscaling = { engine = "keda", min = 1, max = 4, pending_per_replica = 2, polling_interval = "1s" }
"#;

fn status_json(run: &support::Run) -> Value {
    run.assert_ok("fleet status");
    serde_json::from_str(&run.stdout)
        .unwrap_or_else(|err| panic!("status is not JSON ({err}):\n{}", run.stdout))
}

fn worker(status: &Value) -> &Value {
    &status["agents"][0]
}

#[tokio::test]
async fn status_shows_replicas_pending_tasks_and_the_autoscalers_metrics() {
    let env = TestEnv::new("status").await;
    // The test's own namespace (made by the admin), so that the read-only
    // identity below needs no cluster-wide rights.
    let fleet = FleetDir::with_definition(&env.namespace, STATUS_FLEET);
    fleet.set_environment(&format!(
        "nats_monitoring = \"{}\"\n\n[fleet]\nmanage_namespace = false\n",
        support::nats_monitoring()
    ));
    fleet.apply(&[]).assert_ok("apply");
    for n in 0..3 {
        env.jetstream
            .publish(fleet.task_subject("worker"), format!("task {n}").into())
            .await
            .unwrap()
            .await
            .unwrap();
    }

    let status = status_json(&fleet.run(&["status", "--format", "json"]));
    assert_eq!(status["fleet"], "status");
    assert_eq!(status["namespace"], env.namespace.as_str());
    assert!(
        status["last_applied"]["applied_at"].is_string(),
        "{status:#}"
    );
    let agent = worker(&status);
    assert_eq!(agent["role"], "worker");
    assert!(
        agent["replicas"]["desired"].as_i64().unwrap() >= 1,
        "{agent:#}"
    );
    assert_eq!(agent["consumers"][0]["pending"], 3, "{agent:#}");
    assert_eq!(agent["consumers"][0]["ack_pending"], 0, "{agent:#}");
    assert_eq!(agent["autoscaler"]["engine"], "keda");

    // KEDA makes the HPA, and the HPA controller reads the backlog through
    // KEDA's metrics server: the current value shows up.
    let agent = eventually(
        "the HPA's current pending-tasks metric",
        Duration::from_secs(90),
        || async {
            let status = status_json(&fleet.run(&["status", "--format", "json"]));
            let agent = worker(&status).clone();
            let scaler = &agent["autoscaler"];
            let external = scaler["metrics"]
                .as_array()?
                .iter()
                .find(|m| {
                    m["name"]
                        .as_str()
                        .is_some_and(|n| n.starts_with("External"))
                })?
                .clone();
            external["current"].is_string().then_some(agent)
        },
    )
    .await;
    let scaler = &agent["autoscaler"];
    assert_eq!(scaler["found"], true, "{agent:#}");
    assert_eq!(scaler["min_replicas"], 1, "{agent:#}");
    assert_eq!(scaler["max_replicas"], 4, "{agent:#}");
    assert!(
        scaler["scaled_object"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["type"] == "Ready"),
        "{agent:#}"
    );

    let text = fleet.run(&["status"]);
    text.assert_ok("fleet status");
    for line in [
        format!("Target: environment `test`, namespace `{}`", env.namespace),
        "Last applied: ".to_string(),
        "agent worker: ".to_string(),
        "autoscaler keda: min 1, max 4".to_string(),
        format!(
            "consumer {}/worker-agent: 3 pending, 0 ack pending",
            fleet.stream()
        ),
    ] {
        assert!(
            text.stdout.contains(&line),
            "no `{line}` in:\n{}",
            text.stdout
        );
    }
    let markdown = fleet.run(&["status", "--format", "markdown"]);
    markdown.assert_ok("fleet status --format markdown");
    assert!(
        markdown.stdout.contains("| `worker` |"),
        "{}",
        markdown.stdout
    );

    // With exactly the read-only rights `fleet rbac` prints.
    let user = X509User::new(&format!("{}-read-only", env.namespace));
    let rbac = fleet.run(&["rbac", "--for", "read-only", "--user", &user.name]);
    rbac.assert_ok("fleet rbac");
    kubectl_apply(&rbac.stdout);
    eventually(
        "the user's Role to take effect",
        Duration::from_secs(20),
        || async {
            user.can("list", "deployments.apps", &env.namespace)
                .then_some(())
        },
    )
    .await;
    let run = fleet.run_as(&user, &["status", "--format", "json"]);
    let status = status_json(&run);
    assert_eq!(status["notes"], serde_json::json!([]), "{status:#}");
    let agent = worker(&status);
    assert!(agent["replicas"].is_object(), "{agent:#}");
    assert_eq!(agent["autoscaler"]["found"], true, "{agent:#}");
    assert_eq!(agent["consumers"][0]["pending"], 3, "{agent:#}");
    assert!(
        status["last_applied"]["applied_at"].is_string(),
        "{status:#}"
    );

    // NATS out of reach: the counts are unknown, not 0, and status still
    // shows the cluster's side.
    let run = fleet.run(&[
        "status",
        "--format",
        "json",
        "--nats-url",
        "nats://127.0.0.1:1",
        "--timeout",
        "60s",
    ]);
    let status = status_json(&run);
    let agent = worker(&status);
    assert!(agent["consumers"][0]["pending"].is_null(), "{agent:#}");
    assert!(agent["consumers"][0]["ack_pending"].is_null(), "{agent:#}");
    assert!(agent["replicas"].is_object(), "{agent:#}");
    assert!(
        status["notes"].to_string().contains("JetStream"),
        "{status:#}"
    );
    let text = fleet.run(&["status", "--nats-url", "nats://127.0.0.1:1"]);
    text.assert_ok("fleet status without NATS");
    assert!(
        text.stdout
            .contains("worker-agent: unknown pending, unknown ack pending"),
        "{}",
        text.stdout
    );
}
