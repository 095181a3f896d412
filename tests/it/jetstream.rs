//! JetStream in the plan, against real nats-servers: the pinned latest and the
//! oldest supported (2.10). Each test has its own stream (see FleetDir).

use std::time::Duration;

use crate::support::{self, FleetDir, TestEnv, control_plane};

async fn stream_info(env: &TestEnv, name: &str) -> async_nats::jetstream::stream::Info {
    env.jetstream
        .get_stream(name)
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .clone()
}

#[tokio::test]
async fn max_age_and_max_deliver_are_updated_in_place() {
    let env = TestEnv::new("js-update").await;
    let fleet = FleetDir::for_test(&env);
    fleet.apply(&[]).assert_ok("apply");
    fleet.assert_plan_empty();

    fleet.set_environment(&format!(
        "[streams.{}]\nmax_age = \"14d\"\n\n[agents.devops.consumer]\nmax_deliver = 7\n",
        fleet.stream()
    ));
    let plan = fleet.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 2, "{}{}", plan.stdout, plan.stderr);
    assert!(
        plan.stdout.contains(&format!(
            "  ~ jetstream stream {}\n      ~ max_age: 7d -> 14d\n",
            fleet.stream()
        )),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout.contains(&format!(
            "  ~ jetstream consumer {}/devops-agent\n      ~ max_deliver: 5 -> 7\n",
            fleet.stream()
        )),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout
            .contains("Plan: 0 to add, 2 to change, 0 to destroy."),
        "{}",
        plan.stdout
    );

    fleet.apply(&[]).assert_ok("apply of the update");
    fleet.assert_plan_empty();
    let info = stream_info(&env, &fleet.stream()).await;
    assert_eq!(info.config.max_age, Duration::from_secs(14 * 86_400));
}

#[tokio::test]
async fn storage_change_is_refused_while_the_stream_holds_messages() {
    let env = TestEnv::new("js-replace").await;
    let fleet = FleetDir::for_test(&env);
    fleet.apply(&[]).assert_ok("apply");
    for _ in 0..3 {
        env.jetstream
            .publish(fleet.task_subject("devops"), "task".into())
            .await
            .unwrap()
            .await
            .unwrap();
    }

    fleet.set_environment(&format!(
        "[streams.{}]\nstorage = \"memory\"\n",
        fleet.stream()
    ));
    let plan = fleet.run(&["plan"]);
    plan.assert_ok("plan");
    assert!(
        plan.stdout
            .contains(&format!("  -/+ jetstream stream {}", fleet.stream())),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout
            .contains("storage cannot change in place; holds 3 messages"),
        "{}",
        plan.stdout
    );

    let refused = fleet.apply(&[]);
    assert_eq!(refused.code, 1, "{}{}", refused.stdout, refused.stderr);
    assert!(
        refused.stderr.contains(&fleet.stream()),
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains("holds 3 messages"),
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains("--allow-destroy"),
        "{}",
        refused.stderr
    );
    assert_eq!(stream_info(&env, &fleet.stream()).await.state.messages, 3);

    let replaced = fleet.apply(&["--allow-destroy"]);
    replaced.assert_ok("apply --allow-destroy");
    assert!(replaced.stdout.contains("replaced"), "{}", replaced.stdout);
    fleet.assert_plan_empty();
    let info = stream_info(&env, &fleet.stream()).await;
    assert_eq!(
        info.config.storage,
        async_nats::jetstream::stream::StorageType::Memory
    );
    assert_eq!(info.state.messages, 0);
}

#[tokio::test]
async fn removed_consumer_is_destroyed_and_what_fleet_does_not_own_survives() {
    let env = TestEnv::new("js-prune").await;
    let fleet = FleetDir::for_test(&env);
    fleet.apply(&[]).assert_ok("apply");

    // An agent's own consumer on fleet's stream, and a stream fleet does not own.
    let stream = env.jetstream.get_stream(fleet.stream()).await.unwrap();
    stream
        .create_consumer(async_nats::jetstream::consumer::pull::Config {
            durable_name: Some("adhoc".into()),
            filter_subject: fleet.task_subject("adhoc"),
            ..Default::default()
        })
        .await
        .unwrap();
    let other = format!("{}-other", fleet.namespace);
    env.jetstream
        .create_stream(async_nats::jetstream::stream::Config {
            name: other.clone(),
            subjects: vec![format!("{}.other.>", fleet.namespace)],
            ..Default::default()
        })
        .await
        .unwrap();

    // A task waits for the observer.
    env.jetstream
        .publish(fleet.task_subject("observer"), "task".into())
        .await
        .unwrap()
        .await
        .unwrap();

    fleet.set_environment("[agents.observer.consumer]\nenabled = false\n");
    let plan = fleet.run(&["plan"]);
    plan.assert_ok("plan");
    assert!(
        plan.stdout.contains(&format!(
            "  - jetstream consumer {}/observer-agent",
            fleet.stream()
        )),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout
            .contains("Plan: 0 to add, 0 to change, 1 to destroy."),
        "{}",
        plan.stdout
    );
    assert!(
        !plan.stdout.contains("adhoc") && !plan.stdout.contains(&other),
        "{}",
        plan.stdout
    );

    assert!(
        plan.stdout.contains("1 messages pending or unacknowledged"),
        "{}",
        plan.stdout
    );

    let refused = fleet.apply(&[]);
    assert_eq!(refused.code, 1, "{}{}", refused.stdout, refused.stderr);
    assert!(
        refused.stderr.contains("--allow-destroy"),
        "{}",
        refused.stderr
    );
    fleet
        .apply(&["--allow-destroy"])
        .assert_ok("apply --allow-destroy");
    fleet.assert_plan_empty();
    let stream = env.jetstream.get_stream(fleet.stream()).await.unwrap();
    assert!(stream.consumer_info("adhoc").await.is_ok());
    assert!(stream.consumer_info("observer-agent").await.is_err());
    assert!(env.jetstream.get_stream(&other).await.is_ok());
}

#[tokio::test]
async fn nats_down_fails_before_any_kubernetes_change() {
    let env = TestEnv::new("js-down").await;
    let fleet = FleetDir::for_test(&env);
    fleet.set_environment_with_nats("nats://127.0.0.1:1", "");
    let run = fleet.apply(&[]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stderr
            .contains("cannot connect to NATS at nats://127.0.0.1:1"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("Nothing was changed"), "{}", run.stderr);
    // fleet would have created the namespace first.
    let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> =
        kube::Api::all(env.kube.clone());
    assert!(
        namespaces
            .get_opt(&fleet.namespace)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn wrong_credentials_fail_clearly_and_right_ones_work() {
    let env = TestEnv::new("js-auth").await;
    let server = support::NatsServer::start(&["--user", "fleet", "--pass", "s3cret"]).await;
    let fleet = FleetDir::for_test(&env);
    fleet.set_environment_with_nats(&server.url, "");

    let refused = fleet.run(&[
        "apply",
        "--auto-approve",
        "--nats-user",
        "fleet",
        "--nats-password",
        "wrong",
    ]);
    assert_eq!(refused.code, 1, "{}{}", refused.stdout, refused.stderr);
    assert!(
        refused
            .stderr
            .contains(&format!("cannot connect to NATS at {}", server.url)),
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.to_lowercase().contains("authorization"),
        "{}",
        refused.stderr
    );
    assert!(
        !refused.stderr.contains("wrong"),
        "the password is never printed: {}",
        refused.stderr
    );
    let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> =
        kube::Api::all(env.kube.clone());
    assert!(
        namespaces
            .get_opt(&fleet.namespace)
            .await
            .unwrap()
            .is_none()
    );

    let plan = fleet.run(&["plan", "--nats-user", "fleet", "--nats-password", "s3cret"]);
    plan.assert_ok("plan with the right credentials");
    assert!(
        plan.stdout
            .contains(&format!("  + jetstream stream {}", fleet.stream())),
        "{}",
        plan.stdout
    );
}

#[tokio::test]
async fn example_fleet_converges_on_nats_2_10() {
    let env = TestEnv::new("js-2-10").await;
    let fleet = FleetDir::for_test(&env);
    let old = &control_plane().nats_old_url;
    fleet.set_environment_with_nats(old, "");
    fleet.apply(&[]).assert_ok("apply on 2.10");
    fleet.assert_plan_empty();

    fleet.set_environment_with_nats(
        old,
        &format!("[streams.{}]\nmax_age = \"14d\"\n", fleet.stream()),
    );
    let plan = fleet.run(&["plan"]);
    assert!(
        plan.stdout.contains("~ max_age: 7d -> 14d"),
        "{}",
        plan.stdout
    );
    fleet.apply(&[]).assert_ok("update on 2.10");
    fleet.assert_plan_empty();

    let nats = async_nats::connect(old.as_str()).await.unwrap();
    let info = async_nats::jetstream::new(nats)
        .get_stream(fleet.stream())
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .clone();
    assert_eq!(
        info.config.metadata.get("fleet.owner"),
        Some(&format!("agent-ceo/{}", fleet.namespace))
    );
}

#[tokio::test]
async fn replicated_stream_on_a_three_node_cluster() {
    let env = TestEnv::new("js-cluster").await;
    let fleet = FleetDir::for_test(&env);
    let cluster = &control_plane().nats_cluster_url;
    fleet.set_environment_with_nats(
        cluster,
        &format!("[streams.{}]\nreplicas = 3\n", fleet.stream()),
    );
    fleet.apply(&[]).assert_ok("apply on the cluster");
    fleet.assert_plan_empty();

    let nats = async_nats::connect(cluster.as_str()).await.unwrap();
    let mut stream = async_nats::jetstream::new(nats)
        .get_stream(fleet.stream())
        .await
        .unwrap();
    let info = stream.info().await.unwrap();
    assert_eq!(info.config.num_replicas, 3);
    let cluster_info = info.cluster.as_ref().expect("cluster info");
    assert_eq!(cluster_info.replicas.len(), 2, "a leader and two replicas");
}
