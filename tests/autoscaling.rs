//! Agents scaling on their backlog of tasks, end to end on the local control
//! plane: fleet renders a KEDA ScaledObject per agent, KEDA (its operator
//! and metrics API server, built from its release's module) reads the
//! consumer's pending count from nats-server's monitoring port, and the
//! kube-controller-manager's HPA controller scales the Deployment (kwok runs
//! its pods). Nothing here is a stand-in: the replica counts are what the
//! real autoscaler chain decided.

mod support;

use std::time::Duration;

use async_nats::jetstream::consumer::PullConsumer;
use futures::StreamExt as _;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::Api;
use support::{FleetDir, TestEnv, eventually};

/// The monitoring port of the control plane's nats-server, as KEDA reaches
/// it (`scripts/controlplane env` prints it).
fn nats_monitoring() -> String {
    std::env::var("FLEET_NATS_MONITOR").unwrap_or_else(|_| "127.0.0.1:18222".into())
}

/// A worker that scales 1..4 on 2 pending tasks per replica, and a sleeper
/// that idles at zero until a task comes. Short windows: the test waits out
/// only the HPA controller's 15 s sync period.
const SCALING_FLEET: &str = r#"
[fleet]
name = "scaling"
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
autoscaling = { engine = "keda", min = 1, max = 4, pending_per_replica = 2, polling_interval = "1s", scale_up = { stabilization = "0s", pods = 4, period = "1s" }, scale_down = { stabilization = "0s", percent = 100, period = "1s" } }

[agents.sleeper]
autoscaling = { engine = "keda", min = 0, max = 2, pending_per_replica = 1, polling_interval = "1s", cooldown = "5s", scale_down = { stabilization = "0s", percent = 100, period = "1s" } }
"#;

async fn replicas(deployments: &Api<Deployment>, name: &str) -> i32 {
    deployments
        .get(name)
        .await
        .unwrap()
        .spec
        .replicas
        .unwrap_or(1)
}

/// Waits until `name` has `want` replicas, printing each count it sees.
async fn until_replicas(deployments: &Api<Deployment>, name: &str, want: i32, timeout: Duration) {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last = -1;
    loop {
        let now = replicas(deployments, name).await;
        if now != last {
            eprintln!("{name}: {now} replicas");
            last = now;
        }
        if now == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name} still at {now} replicas, not {want}, after {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Fetches and acks up to `count` tasks from `consumer`.
async fn ack(consumer: &PullConsumer, count: usize) {
    let mut messages = consumer
        .fetch()
        .max_messages(count)
        .messages()
        .await
        .unwrap();
    while let Some(message) = messages.next().await {
        message.unwrap().ack().await.unwrap();
    }
}

#[tokio::test]
async fn agents_scale_with_their_backlog_and_back_and_wake_from_zero() {
    let env = TestEnv::new("keda-scaling").await;
    let fleet = FleetDir::with_definition(&format!("{}-f", env.namespace), SCALING_FLEET);
    fleet.set_environment(&format!("nats_monitoring = \"{}\"", nats_monitoring()));
    fleet.apply(&[]).assert_ok("apply");

    let deployments: Api<Deployment> = Api::namespaced(env.kube.clone(), &fleet.namespace);
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(env.kube.clone(), &fleet.namespace);
    // KEDA made the HPA, under fleet's name for it, and it is not fleet's.
    let hpa = eventually(
        "KEDA's HPA for the worker",
        Duration::from_secs(60),
        || async { hpas.get_opt("agent-worker-hpa").await.unwrap() },
    )
    .await;
    let labels = hpa.metadata.labels.unwrap_or_default();
    assert_eq!(
        labels
            .get("app.kubernetes.io/managed-by")
            .map(String::as_str),
        Some("keda-operator")
    );
    assert!(
        !labels.contains_key("applyset.kubernetes.io/part-of"),
        "KEDA copied fleet's ownership marks onto its HPA: {labels:?}"
    );
    fleet.assert_plan_empty();

    // The sleeper idles at zero once KEDA has read its empty consumer.
    until_replicas(&deployments, "agent-sleeper", 0, Duration::from_secs(60)).await;
    until_replicas(&deployments, "agent-worker", 1, Duration::from_secs(5)).await;

    // Seven tasks for the worker: ceil(7 / 2) = 4 replicas, its maximum.
    for n in 0..7 {
        env.jetstream
            .publish(fleet.task_subject("worker"), format!("task {n}").into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    until_replicas(&deployments, "agent-worker", 4, Duration::from_secs(90)).await;

    // Three done, four left: ceil(4 / 2) = 2. Then one left: 1.
    let stream = env.jetstream.get_stream(fleet.stream()).await.unwrap();
    let worker: PullConsumer = stream.get_consumer("worker-agent").await.unwrap();
    ack(&worker, 3).await;
    until_replicas(&deployments, "agent-worker", 2, Duration::from_secs(90)).await;
    ack(&worker, 3).await;
    until_replicas(&deployments, "agent-worker", 1, Duration::from_secs(90)).await;

    // One task wakes the sleeper; once it is done, it sleeps again.
    env.jetstream
        .publish(fleet.task_subject("sleeper"), "wake up".into())
        .await
        .unwrap()
        .await
        .unwrap();
    until_replicas(&deployments, "agent-sleeper", 1, Duration::from_secs(60)).await;
    let sleeper: PullConsumer = stream.get_consumer("sleeper-agent").await.unwrap();
    ack(&sleeper, 1).await;
    until_replicas(&deployments, "agent-sleeper", 0, Duration::from_secs(60)).await;

    // Scaling is not drift: the plan stays empty throughout.
    fleet.assert_plan_empty();
}
