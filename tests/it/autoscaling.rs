//! Agents scaling on their backlog of tasks, end to end on the local control
//! plane: fleet renders a KEDA ScaledObject per agent, KEDA (its operator
//! and metrics API server, built from its release's module) reads the
//! consumer's pending count from nats-server's monitoring port, and the
//! kube-controller-manager's HPA controller scales the Deployment (kwok runs
//! its pods). Nothing here is a stand-in: the replica counts are what the
//! real autoscaler chain decided.

use std::time::Duration;

use crate::support::{self, FleetDir, TestEnv, eventually};
use async_nats::jetstream::consumer::PullConsumer;
use futures::StreamExt as _;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::Api;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};

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

/// Waits until `name` has `want` replicas, printing each count it sees and
/// how long it took.
async fn until_replicas(deployments: &Api<Deployment>, name: &str, want: i32, timeout: Duration) {
    let started = tokio::time::Instant::now();
    let deadline = started + timeout;
    let mut last = -1;
    loop {
        let now = replicas(deployments, name).await;
        if now != last {
            eprintln!("{name}: {now} replicas after {:.1?}", started.elapsed());
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
    fleet.set_environment(&format!(
        "nats_monitoring = \"{}\"",
        support::nats_monitoring()
    ));
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

/// How many HPAs the namespace held, at least and at most, while watched.
struct HpaCount {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<(usize, usize)>,
}

impl HpaCount {
    /// Starts counting, and returns once the first count is in.
    fn watch(hpas: Api<HorizontalPodAutoscaler>) -> HpaCount {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, Ordering};
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let counted = Arc::new(AtomicBool::new(false));
        let first = counted.clone();
        let task = tokio::spawn(async move {
            let (mut least, mut most) = (usize::MAX, 0);
            loop {
                let count = hpas.list(&Default::default()).await.unwrap().items.len();
                least = least.min(count);
                most = most.max(count);
                first.store(true, Ordering::Relaxed);
                if *stopped.borrow() {
                    return (least, most);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        while !counted.load(Ordering::Relaxed) && !task.is_finished() {
            std::thread::sleep(Duration::from_millis(10));
        }
        HpaCount { stop, task }
    }

    async fn finish(self) -> (usize, usize) {
        self.stop.send(true).unwrap();
        self.task.await.unwrap()
    }
}

// Multi-threaded: the HPA count is watched while apply blocks the test's thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switching_engines_hands_one_hpa_over_and_back() {
    let env = TestEnv::new("keda-switch").await;
    let hpa_fleet = SCALING_FLEET
        .replace("[agents.sleeper]", "[agents.sleeper]\nenabled = false")
        .replace(
            "engine = \"keda\", min = 1, max = 4, pending_per_replica = 2, polling_interval = \"1s\",",
            "min = 1, max = 4, pending_per_replica = 2,",
        );
    assert_ne!(hpa_fleet, SCALING_FLEET);
    let keda_fleet = SCALING_FLEET.replace("[agents.sleeper]", "[agents.sleeper]\nenabled = false");
    let fleet = FleetDir::with_definition(&format!("{}-f", env.namespace), &hpa_fleet);
    fleet.set_environment(&format!(
        "nats_monitoring = \"{}\"",
        support::nats_monitoring()
    ));
    fleet.apply(&[]).assert_ok("apply with an HPA");
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(env.kube.clone(), &fleet.namespace);
    let uid = hpas.get("agent-worker-hpa").await.unwrap().metadata.uid;

    // hpa -> keda: KEDA takes fleet's HPA over; fleet deletes nothing.
    fleet.set_definition(&keda_fleet);
    let plan = fleet.run(&["plan"]);
    plan.assert_ok("plan");
    assert!(
        plan.stdout
            .contains("takes over HorizontalPodAutoscaler agent-worker-hpa in place"),
        "{}",
        plan.stdout
    );
    assert!(plan.stdout.contains(", 0 to destroy."), "{}", plan.stdout);
    let count = HpaCount::watch(hpas.clone());
    fleet.apply(&[]).assert_ok("apply switching to KEDA");
    let hpa = eventually(
        "KEDA controlling the HPA",
        Duration::from_secs(60),
        || async {
            let hpa = hpas.get("agent-worker-hpa").await.unwrap();
            let controlled = hpa
                .metadata
                .owner_references
                .iter()
                .flatten()
                .any(|r| r.kind == "ScaledObject" && r.controller == Some(true));
            controlled.then_some(hpa)
        },
    )
    .await;
    assert_eq!(count.finish().await, (1, 1), "one HPA throughout");
    assert_eq!(hpa.metadata.uid, uid, "the same HPA, updated in place");
    fleet.assert_plan_empty();

    // keda -> hpa: the ScaledObject goes first, its HPA stays for fleet's.
    fleet.set_definition(&hpa_fleet);
    let plan = fleet.run(&["plan"]);
    plan.assert_ok("plan");
    assert!(
        plan.stdout
            .contains("taken back from KEDA once ScaledObject agent-worker is deleted"),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout
            .contains("leaving its HorizontalPodAutoscaler agent-worker-hpa to fleet's"),
        "{}",
        plan.stdout
    );
    let count = HpaCount::watch(hpas.clone());
    fleet.apply(&[]).assert_ok("apply switching back to an HPA");
    assert_eq!(count.finish().await, (1, 1), "one HPA throughout");
    let hpa = hpas.get("agent-worker-hpa").await.unwrap();
    assert_eq!(hpa.metadata.uid, uid, "the same HPA, taken back");
    assert!(hpa.metadata.owner_references.unwrap_or_default().is_empty());
    let metrics = hpa.spec.metrics.unwrap_or_default();
    assert_eq!(
        metrics[0].external.as_ref().unwrap().metric.name,
        "nats_consumer_pending_messages",
        "fleet's HPA spec"
    );
    // KEDA is not fighting it: still fleet's a while later.
    tokio::time::sleep(Duration::from_secs(3)).await;
    fleet.assert_plan_empty();
}

/// The first server of the local NATS cluster, the one KEDA is told of.
const FIRST_CLUSTER_SERVER: &str = "fleet-js-1";

/// On a three-node NATS cluster, with the consumer's leader on another server
/// than the one KEDA is given: KEDA reads the cluster's servers from that
/// one's /varz and finds the leader on the same monitoring port of each.
#[tokio::test]
async fn agents_scale_on_a_nats_cluster_from_the_consumers_leader() {
    let env = TestEnv::new("keda-cluster").await;
    let definition = SCALING_FLEET.replace("[agents.sleeper]", "[agents.sleeper]\nenabled = false");
    let fleet = FleetDir::with_definition(&format!("{}-f", env.namespace), &definition);
    let cluster = &support::control_plane().nats_cluster_url;
    fleet.set_environment_with_nats(
        cluster,
        &format!(
            "nats_monitoring = \"{}\"\n\n[streams.{}]\nreplicas = 3\n",
            support::nats_cluster_monitoring(),
            fleet.stream()
        ),
    );
    fleet.apply(&[]).assert_ok("apply on the cluster");

    let nats = async_nats::connect(cluster.as_str()).await.unwrap();
    let jetstream = async_nats::jetstream::new(nats.clone());
    let stream = jetstream.get_stream(fleet.stream()).await.unwrap();
    let worker: PullConsumer = stream.get_consumer("worker-agent").await.unwrap();
    let leader = eventually(
        "the consumer's leader on another server than the first",
        Duration::from_secs(30),
        || async {
            let info = worker.get_info().await.unwrap();
            let leader = info.cluster.and_then(|c| c.leader);
            if leader.as_deref().is_some_and(|l| l != FIRST_CLUSTER_SERVER) {
                return leader;
            }
            let stepdown = format!(
                "$JS.API.CONSUMER.LEADER.STEPDOWN.{}.worker-agent",
                fleet.stream()
            );
            nats.request(stepdown, "".into()).await.unwrap();
            None
        },
    )
    .await;
    eprintln!("worker-agent's leader: {leader}");

    let deployments: Api<Deployment> = Api::namespaced(env.kube.clone(), &fleet.namespace);
    until_replicas(&deployments, "agent-worker", 1, Duration::from_secs(60)).await;
    for n in 0..7 {
        jetstream
            .publish(fleet.task_subject("worker"), format!("task {n}").into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    until_replicas(&deployments, "agent-worker", 4, Duration::from_secs(90)).await;
    ack(&worker, 7).await;
    until_replicas(&deployments, "agent-worker", 1, Duration::from_secs(90)).await;
    fleet.assert_plan_empty();
}

/// A wave's gate fails when the change breaks an autoscaler that worked
/// before it: here KEDA, pointed at a monitoring port nothing listens on,
/// can no longer read the worker's backlog.
#[tokio::test]
async fn a_wave_that_breaks_its_autoscaler_fails_its_gate() {
    let env = TestEnv::new("keda-gate").await;
    let definition = format!(
        "{}\n[rollout]\nsoak = \"12s\"\n",
        SCALING_FLEET.replace("[agents.sleeper]", "[agents.sleeper]\nenabled = false")
    );
    let fleet = FleetDir::with_definition(&format!("{}-f", env.namespace), &definition);
    fleet.set_environment(&format!(
        "nats_monitoring = \"{}\"",
        support::nats_monitoring()
    ));
    fleet.apply(&[]).assert_ok("first apply");

    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("keda.sh", "v1alpha1", "ScaledObject"),
        "scaledobjects",
    );
    let scaled_objects: Api<DynamicObject> =
        Api::namespaced_with(env.kube.clone(), &fleet.namespace, &resource);
    let ready = |object: &DynamicObject| {
        object.data["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == "Ready")
            .map(|c| c["status"].as_str().unwrap_or_default().to_string())
    };
    eventually(
        "KEDA to read the worker's consumer",
        Duration::from_secs(60),
        || async {
            let object = scaled_objects.get("agent-worker").await.ok()?;
            (ready(&object).as_deref() == Some("True")).then_some(())
        },
    )
    .await;

    // A new image, and a monitoring endpoint nothing listens on.
    fleet.set_environment(
        "nats_monitoring = \"127.0.0.1:9\"\n\n[agents.worker]\nimage = \"gcr.io/agent-ceo/agent-runtime:next\"\n",
    );
    let run = fleet.apply(&[]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains(
            "the rollout halted in wave 1 of 1 (worker): ScaledObject agent-worker stopped working during the wave: Ready=False (TriggerError)"
        ),
        "{}",
        run.stderr
    );
    // The pods themselves were healthy: the soak ran its course.
    assert!(
        run.stdout.contains("soaking 1 pod for 12s"),
        "{}",
        run.stdout
    );
}
