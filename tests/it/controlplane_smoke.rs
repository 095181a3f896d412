//! Proves the local control plane is made of real parts: a kube-apiserver that
//! does server-side apply, controllers and a scheduler that roll out
//! Deployments onto kwok nodes, RBAC that refuses, and JetStream.

use std::time::Duration;

use crate::support::{
    RESTRICTED_CONTEXT, RESTRICTED_NAMESPACE, TestEnv, control_plane, eventually,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams};
use serde_json::json;

#[tokio::test]
async fn server_side_apply_then_dry_run_changes_nothing() {
    let env = TestEnv::new("ssa-dry-run").await;
    let configmaps: Api<ConfigMap> = env.api();
    let desired = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": { "name": "smoke", "namespace": env.namespace },
        "data": { "config.yaml": "role: devops\n" }
    });
    let params = PatchParams::apply("fleet");
    let applied = configmaps
        .patch("smoke", &params, &Patch::Apply(&desired))
        .await
        .unwrap();
    let managers: Vec<_> = applied
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter_map(|f| f.manager.clone())
        .collect();
    assert_eq!(managers, ["fleet"]);

    let dry_run = configmaps
        .patch("smoke", &params.clone().dry_run(), &Patch::Apply(&desired))
        .await
        .unwrap();
    assert_eq!(
        dry_run.metadata.resource_version,
        applied.metadata.resource_version
    );
    let live = configmaps.get("smoke").await.unwrap();
    assert_eq!(
        live.metadata.resource_version,
        applied.metadata.resource_version
    );
    assert_eq!(live.data, applied.data);
}

#[tokio::test]
async fn deployment_becomes_available_on_a_kwok_node() {
    let env = TestEnv::new("deployment-available").await;
    let deployments: Api<Deployment> = env.api();
    let desired = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": "smoke", "namespace": env.namespace },
        "spec": {
            "replicas": 1,
            "selector": { "matchLabels": { "app": "smoke" } },
            "template": {
                "metadata": { "labels": { "app": "smoke" } },
                "spec": {
                    "automountServiceAccountToken": false,
                    "containers": [{ "name": "agent", "image": "example.invalid/agent:1" }]
                }
            }
        }
    });
    deployments
        .patch(
            "smoke",
            &PatchParams::apply("fleet"),
            &Patch::Apply(&desired),
        )
        .await
        .unwrap();
    eventually("availableReplicas: 1", Duration::from_secs(90), || async {
        let deployment = deployments.get("smoke").await.ok()?;
        (deployment.status?.available_replicas? == 1).then_some(())
    })
    .await;

    let pods: Api<Pod> = env.api();
    let pod = pods
        .list(&ListParams::default().labels("app=smoke"))
        .await
        .unwrap()
        .items
        .remove(0);
    let node = pod.spec.unwrap().node_name.unwrap();
    assert!(node.starts_with("kwok-node-"), "scheduled on {node}");
}

#[tokio::test]
async fn pod_with_unsatisfiable_node_selector_stays_unschedulable() {
    let env = TestEnv::new("unschedulable").await;
    let pods: Api<Pod> = env.api();
    let desired = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": { "name": "nowhere", "namespace": env.namespace },
        "spec": {
            "automountServiceAccountToken": false,
            "nodeSelector": { "agent.ceo/workload-type": "does-not-exist" },
            "containers": [{ "name": "agent", "image": "example.invalid/agent:1" }]
        }
    });
    pods.patch(
        "nowhere",
        &PatchParams::apply("fleet"),
        &Patch::Apply(&desired),
    )
    .await
    .unwrap();
    let reason = eventually(
        "a PodScheduled condition",
        Duration::from_secs(60),
        || async {
            let pod = pods.get("nowhere").await.ok()?;
            let conditions = pod.status?.conditions?;
            let scheduled = conditions.into_iter().find(|c| c.type_ == "PodScheduled")?;
            Some((scheduled.status, scheduled.reason))
        },
    )
    .await;
    assert_eq!(
        reason,
        ("False".to_string(), Some("Unschedulable".to_string()))
    );
    assert_eq!(
        pods.get("nowhere")
            .await
            .unwrap()
            .status
            .unwrap()
            .phase
            .as_deref(),
        Some("Pending")
    );
}

#[tokio::test]
async fn jetstream_stream_is_created_and_read_back() {
    let env = TestEnv::new("jetstream").await;
    let name = format!("{}tasks", env.stream_prefix);
    let subject = format!("{}tasks.>", env.stream_prefix);
    env.jetstream
        .create_stream(async_nats::jetstream::stream::Config {
            name: name.clone(),
            subjects: vec![subject],
            ..Default::default()
        })
        .await
        .unwrap();
    env.jetstream
        .publish(
            format!("{}tasks.devops.new", env.stream_prefix),
            "task".into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();

    let mut stream = env.jetstream.get_stream(&name).await.unwrap();
    let info = stream.info().await.unwrap();
    assert_eq!(info.config.name, name);
    assert_eq!(info.state.messages, 1);
}

#[tokio::test]
async fn restricted_user_is_forbidden_outside_its_namespace() {
    let env = TestEnv::new("restricted").await;
    let client = control_plane().kube_client(RESTRICTED_CONTEXT).await;

    let own: Api<ConfigMap> = Api::namespaced(client.clone(), RESTRICTED_NAMESPACE);
    own.list(&ListParams::default())
        .await
        .expect("the restricted user may list in its own namespace");

    let other: Api<ConfigMap> = Api::namespaced(client, &env.namespace);
    match other.list(&ListParams::default()).await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 403);
            assert_eq!(status.reason, "Forbidden");
        }
        other => panic!("expected 403 Forbidden, got {other:?}"),
    }
}
