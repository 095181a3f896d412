//! Drift: changes made in the cluster or on the NATS server outside fleet.
//! A hand edit (`kubectl scale`, `kubectl patch`, ...) is drift that the
//! next apply restores without any flag; another applier declaring fleet's
//! field is a real conflict; `fleet plan --drift` reports only what moved.

use crate::support::{FleetDir, TestEnv};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use serde_json::json;

fn managers(deployment: &Deployment) -> Vec<String> {
    deployment
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter_map(|e| e.manager.clone())
        .collect()
}

#[tokio::test]
async fn hand_edits_are_drift_that_apply_restores_without_a_flag() {
    let env = TestEnv::new("drift-hand-edit").await;
    let fleet = FleetDir::for_test(&env);
    fleet.apply(&[]).assert_ok("apply");

    fleet.kubectl(&["scale", "deployment/agent-observer", "--replicas=4"]);
    fleet.kubectl(&[
        "patch",
        "configmap/agent-devops-config",
        "--type=merge",
        "-p",
        r#"{"data":{"config.yaml":"edited: by hand\n"}}"#,
    ]);

    let plan = fleet.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 2, "{}{}", plan.stdout, plan.stderr);
    assert!(
        !plan.stdout.contains("conflicts with another field manager"),
        "a hand edit is not a conflict:\n{}",
        plan.stdout
    );
    // `kubectl scale` writes as `kubectl` (the README said kubectl-scale).
    let scaled = format!(
        "  ~ Deployment {}/agent-observer (changed outside fleet by kubectl)\n",
        fleet.namespace
    );
    assert!(plan.stdout.contains(&scaled), "{}", plan.stdout);
    let patched = format!(
        "  ~ ConfigMap {}/agent-devops-config (changed outside fleet by kubectl-patch)",
        fleet.namespace
    );
    assert!(plan.stdout.contains(&patched), "{}", plan.stdout);
    assert!(plan.stdout.contains("-  replicas: 4"), "{}", plan.stdout);
    assert!(plan.stdout.contains("+  replicas: 2"), "{}", plan.stdout);
    assert!(
        plan.stdout
            .contains("Plan: 0 to add, 2 to change, 0 to destroy."),
        "{}",
        plan.stdout
    );

    fleet.apply(&[]).assert_ok("apply restoring the hand edits");
    fleet.assert_plan_empty();
    let deployments: Api<Deployment> = Api::namespaced(env.kube.clone(), &fleet.namespace);
    let observer = deployments.get("agent-observer").await.unwrap();
    assert_eq!(observer.spec.replicas, Some(2));
    assert!(
        !managers(&observer).iter().any(|m| m.starts_with("kubectl")),
        "the hand edit's claim is gone: {:?}",
        managers(&observer)
    );
    let configmaps: Api<ConfigMap> = Api::namespaced(env.kube.clone(), &fleet.namespace);
    let config = configmaps.get("agent-devops-config").await.unwrap();
    assert!(
        !config.data.unwrap()["config.yaml"].contains("edited: by hand"),
        "fleet's file is back"
    );
}

#[tokio::test]
async fn hand_additions_are_drift_that_apply_removes() {
    let env = TestEnv::new("drift-hand-addition").await;
    let fleet = FleetDir::for_test(&env);
    fleet.apply(&["--no-wait"]).assert_ok("apply");

    // Additions beside fleet's fields, which a dry run of fleet's body does
    // not show: an env var, a label, a container port.
    fleet.kubectl(&["set", "env", "deployment/agent-observer", "EXTRA=by-hand"]);
    fleet.kubectl(&["label", "configmap/agent-devops-config", "extra=by-hand"]);
    fleet.kubectl(&[
        "patch",
        "deployment/agent-reviewer",
        "--type=strategic",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"agent","ports":[{"containerPort":7070,"name":"debug"}]}]}}}}"#,
    ]);
    // Deliberate operations, not drift: a restart, and scaling an agent
    // fleet leaves to its autoscaler.
    fleet.kubectl(&["rollout", "restart", "deployment/agent-observer"]);
    fleet.kubectl(&["scale", "deployment/agent-devops", "--replicas=2"]);

    let plan = fleet.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 2, "{}{}", plan.stdout, plan.stderr);
    let ns = &fleet.namespace;
    for expected in [
        format!("  ~ Deployment {ns}/agent-observer (changed outside fleet by kubectl-set)"),
        format!("  ~ ConfigMap {ns}/agent-devops-config (changed outside fleet by kubectl-label)"),
        format!("  ~ Deployment {ns}/agent-reviewer (changed outside fleet by kubectl-patch)"),
        "-          value: by-hand".to_string(),
        "-    extra: by-hand".to_string(),
        "Plan: 0 to add, 3 to change, 0 to destroy.".to_string(),
    ] {
        assert!(
            plan.stdout.contains(&expected),
            "{expected}\n{}",
            plan.stdout
        );
    }
    assert!(
        !plan.stdout.contains("restartedAt") && !plan.stdout.contains("agent-devops ("),
        "a restart and an autoscaled agent's replicas are left alone:\n{}",
        plan.stdout
    );

    fleet
        .apply(&["--no-wait"])
        .assert_ok("apply removing the additions");
    fleet.assert_plan_empty();
    let deployments: Api<Deployment> = Api::namespaced(env.kube.clone(), ns);
    let observer = serde_json::to_value(deployments.get("agent-observer").await.unwrap()).unwrap();
    let template = &observer["spec"]["template"];
    assert!(
        !template.to_string().contains("EXTRA"),
        "the env var is gone: {template}"
    );
    assert!(
        template["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"].is_string(),
        "the restart stays: {template}"
    );
    let reviewer = serde_json::to_value(deployments.get("agent-reviewer").await.unwrap()).unwrap();
    assert!(
        !reviewer["spec"]["template"].to_string().contains("7070"),
        "the port is gone"
    );
    let devops = deployments.get("agent-devops").await.unwrap();
    assert_eq!(devops.spec.replicas, Some(2), "the scale stays");
    let configmaps: Api<ConfigMap> = Api::namespaced(env.kube.clone(), ns);
    let config = configmaps.get("agent-devops-config").await.unwrap();
    assert!(!config.metadata.labels.unwrap().contains_key("extra"));
}

#[tokio::test]
async fn a_service_port_moved_by_hand_is_restored() {
    let env = TestEnv::new("drift-port-moved").await;
    let fleet = FleetDir::for_test(&env);
    fleet.apply(&["--no-wait"]).assert_ok("apply");
    // The port's key changes: fleet's port would come back as a second one
    // named `metrics`, which the API server refuses, dry run or not.
    fleet.kubectl(&[
        "patch",
        "service/agent-devops",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/spec/ports/0/port","value":9999}]"#,
    ]);

    let plan = fleet.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 2, "{}{}", plan.stdout, plan.stderr);
    let moved = format!(
        "  ~ Service {}/agent-devops (changed outside fleet by kubectl-patch)",
        fleet.namespace
    );
    assert!(plan.stdout.contains(&moved), "{}", plan.stdout);
    assert!(
        plan.stdout.contains("-    port: 9999") && plan.stdout.contains("+    port: 9090"),
        "{}",
        plan.stdout
    );

    fleet
        .apply(&["--no-wait"])
        .assert_ok("apply restoring the port");
    fleet.assert_plan_empty();
    let services: Api<k8s_openapi::api::core::v1::Service> =
        Api::namespaced(env.kube.clone(), &fleet.namespace);
    let service = services.get("agent-devops").await.unwrap();
    let ports: Vec<i32> = service
        .spec
        .unwrap()
        .ports
        .unwrap()
        .iter()
        .map(|p| p.port)
        .collect();
    assert_eq!(ports, [9090]);
}

#[tokio::test]
async fn another_applier_on_fleets_field_is_a_conflict() {
    let env = TestEnv::new("drift-applier").await;
    let fleet = FleetDir::for_test(&env);
    fleet.apply(&[]).assert_ok("apply");

    // Another tool declares the observer's replicas with server-side apply.
    let theirs = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": { "name": "agent-observer", "namespace": fleet.namespace },
        "spec": { "replicas": 5 }
    });
    let deployments: Api<Deployment> = Api::namespaced(env.kube.clone(), &fleet.namespace);
    deployments
        .patch(
            "agent-observer",
            &kube::api::PatchParams::apply("other-tool").force(),
            &kube::api::Patch::Apply(&theirs),
        )
        .await
        .unwrap();

    let plan = fleet.run(&["plan"]);
    plan.assert_ok("plan");
    assert!(
        plan.stdout.contains("conflicts with another field manager"),
        "{}",
        plan.stdout
    );
    assert!(plan.stdout.contains("\"other-tool\""), "{}", plan.stdout);
    assert!(plan.stdout.contains(".spec.replicas"), "{}", plan.stdout);
    let refused = fleet.apply(&[]);
    assert_eq!(refused.code, 1, "{}{}", refused.stdout, refused.stderr);
    assert!(
        refused.stderr.contains("--force-conflicts"),
        "{}",
        refused.stderr
    );
    fleet
        .apply(&["--force-conflicts"])
        .assert_ok("apply --force-conflicts");
    fleet.assert_plan_empty();
}

#[tokio::test]
async fn plan_drift_reports_only_what_moved_outside_fleet() {
    let env = TestEnv::new("drift-only").await;
    let fleet = FleetDir::for_test(&env);
    fleet.apply(&[]).assert_ok("apply");

    let clean = fleet.run(&["plan", "--drift"]);
    assert_eq!(clean.code, 0, "{}{}", clean.stdout, clean.stderr);
    assert!(clean.stdout.contains("No drift."), "{}", clean.stdout);

    // A deploy is pending (a new image) and, separately, things moved by
    // hand: a scaled Deployment, a deleted ConfigMap, a stream's max_age.
    fleet.set_environment("[agents.devops]\nimage = \"gcr.io/agent-ceo/agent-runtime:1.4.3\"\n");
    fleet.kubectl(&["scale", "deployment/agent-observer", "--replicas=3"]);
    fleet.kubectl(&["delete", "configmap/agent-reviewer-config"]);
    let stream = fleet.stream();
    let mut config: serde_json::Value = env
        .nats
        .request(format!("$JS.API.STREAM.INFO.{stream}"), "".into())
        .await
        .map(|m| serde_json::from_slice::<serde_json::Value>(&m.payload).unwrap())
        .unwrap()["config"]
        .clone();
    config["max_age"] = json!(3_600_000_000_000u64);
    let updated = env
        .nats
        .request(
            format!("$JS.API.STREAM.UPDATE.{stream}"),
            serde_json::to_vec(&config).unwrap().into(),
        )
        .await
        .unwrap();
    let updated: serde_json::Value = serde_json::from_slice(&updated.payload).unwrap();
    assert!(updated.get("error").is_none(), "{updated}");

    let drift = fleet.run(&["plan", "--drift"]);
    assert_eq!(drift.code, 2, "{}{}", drift.stdout, drift.stderr);
    let ns = &fleet.namespace;
    for line in [
        format!("  ~ Deployment {ns}/agent-observer (changed outside fleet by kubectl"),
        format!("  + ConfigMap {ns}/agent-reviewer-config (changed outside fleet)"),
        format!("  ~ jetstream stream {stream} (changed outside fleet)"),
    ] {
        assert!(drift.stdout.contains(&line), "{line}:\n{}", drift.stdout);
    }
    assert!(
        !drift.stdout.contains("agent-runtime:1.4.3"),
        "the pending deploy is not drift:\n{}",
        drift.stdout
    );
    assert!(
        drift.stdout.contains("1 change of the definition"),
        "{}",
        drift.stdout
    );

    // The whole plan has both; applying it leaves neither.
    let plan = fleet.run(&["plan"]);
    assert!(
        plan.stdout.contains("agent-runtime:1.4.3"),
        "{}",
        plan.stdout
    );
    fleet.apply(&[]).assert_ok("apply");
    fleet.assert_plan_empty();
    let after = fleet.run(&["plan", "--drift"]);
    assert_eq!(after.code, 0, "{}{}", after.stdout, after.stderr);
}
