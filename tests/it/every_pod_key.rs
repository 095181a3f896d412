//! A fleet that uses every pod, placement, availability, scaling and
//! namespace key (tests/fixtures/every-pod-key.toml) validates, plans,
//! applies, and then plans empty on the local control plane: no key renders
//! a field the API server defaults or rewrites into a permanent diff.

use crate::support::{self, FleetDir, TestEnv};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::Api;
use serde_json::{Value, json};

#[tokio::test]
async fn a_fleet_using_every_pod_key_applies_and_then_plans_empty() {
    let env = TestEnv::new("every-pod-key").await;
    support::apply_test_priority_class();
    let fleet = FleetDir::with_definition(
        &format!("{}-f", env.namespace),
        &support::every_pod_key_fleet(),
    );

    let validate = fleet.run(&["validate"]);
    validate.assert_ok("validate");
    assert!(!validate.stderr.contains("warning"), "{}", validate.stderr);

    let plan = fleet.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 2, "{}{}", plan.stdout, plan.stderr);
    for object in [
        "Namespace {ns}",
        "Deployment {ns}/agent-worker",
        "HorizontalPodAutoscaler {ns}/agent-worker-hpa",
        "PodDisruptionBudget {ns}/agent-worker",
        "Deployment {ns}/agent-watcher",
        "PodDisruptionBudget {ns}/agent-watcher",
    ] {
        let line = format!("  + {}", object.replace("{ns}", &fleet.namespace));
        assert!(
            plan.stdout.lines().any(|l| l == line),
            "{line} not planned:\n{}",
            plan.stdout
        );
    }

    let applied = fleet.apply(&[]);
    applied.assert_ok("apply");
    assert!(applied.stdout.contains("rolled out"), "{}", applied.stdout);
    fleet.assert_plan_empty();

    // What the cluster holds is what the keys asked for.
    let kube = env.kube.clone();
    let ns = &fleet.namespace;
    let namespace = serde_json::to_value(
        Api::<Namespace>::all(kube.clone())
            .get(ns)
            .await
            .unwrap()
            .metadata,
    )
    .unwrap();
    assert_eq!(namespace["labels"]["team"], "platform");
    assert_eq!(
        namespace["labels"]["pod-security.kubernetes.io/enforce"],
        "restricted"
    );
    assert_eq!(
        namespace["annotations"]["example.com/owner"],
        "platform team <platform@example.com>"
    );

    let deployments: Api<Deployment> = Api::namespaced(kube.clone(), ns);
    let worker = deployments.get("agent-worker").await.unwrap();
    let pod = serde_json::to_value(worker.spec.template.spec.unwrap()).unwrap();
    let container = &pod["containers"][0];
    assert_eq!(container["command"], json!(["/usr/local/bin/agent"]));
    assert_eq!(pod["priorityClassName"], support::TEST_PRIORITY_CLASS);
    assert_eq!(
        pod["imagePullSecrets"],
        json!([{ "name": "registry-creds" }])
    );
    assert_eq!(pod["tolerations"].as_array().unwrap().len(), 3);
    assert_eq!(
        container["envFrom"][0],
        json!({ "configMapRef": { "name": "worker-settings" }, "prefix": "WORKER_" })
    );
    let mount = |name: &str| -> Value {
        container["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == name)
            .cloned()
            .unwrap()
    };
    assert_eq!(mount("tls")["readOnly"], true);
    assert_eq!(mount("settings")["subPath"], "settings.yaml");
    let anti = &pod["affinity"]["podAntiAffinity"];
    assert_eq!(
        anti["requiredDuringSchedulingIgnoredDuringExecution"][0]["topologyKey"],
        "kubernetes.io/hostname"
    );
    // Required anti-affinity: the two replicas run on different nodes.
    let status = deployments
        .get("agent-worker")
        .await
        .unwrap()
        .status
        .unwrap();
    assert_eq!(status.available_replicas, Some(2));

    let budgets: Api<PodDisruptionBudget> = Api::namespaced(kube.clone(), ns);
    let worker_budget = budgets.get("agent-worker").await.unwrap().spec.unwrap();
    assert_eq!(
        serde_json::to_value(worker_budget.max_unavailable).unwrap(),
        "50%"
    );
    let watcher_budget = budgets.get("agent-watcher").await.unwrap().spec.unwrap();
    assert_eq!(
        serde_json::to_value(watcher_budget.min_available).unwrap(),
        1
    );

    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(kube, ns);
    let hpa = serde_json::to_value(hpas.get("agent-worker-hpa").await.unwrap().spec).unwrap();
    let resources: Vec<&str> = hpa["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["resource"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(resources, ["memory", "cpu"]);
    assert_eq!(
        hpa["behavior"]["scaleUp"]["policies"],
        json!([
            { "type": "Pods", "value": 2, "periodSeconds": 60 },
            { "type": "Percent", "value": 100, "periodSeconds": 60 },
        ])
    );
    assert_eq!(
        hpa["behavior"]["scaleDown"]["policies"],
        json!([{ "type": "Percent", "value": 50, "periodSeconds": 300 }])
    );
}
