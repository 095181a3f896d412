//! An agent's `patch` (the escape hatch for fields fleet has no key for):
//! planned and applied like any other change, set from an environment too,
//! and a field the API server refuses (a bad value, an unknown field) fails
//! the plan naming the line of the patch that set it. Nothing is changed.

use crate::support::{FleetDir, TestEnv};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::Api;

const PATCH: &str = r#"
[agents.devops.patch.Deployment.spec]
minReadySeconds = 7

[agents.devops.patch.Deployment.spec.template.spec]
dnsPolicy = "Default"
containers = [{ name = "agent", stdin = true }]
"#;

#[tokio::test]
async fn a_patch_is_planned_applied_and_then_unchanged() {
    let env = TestEnv::new("patch").await;
    let fleet = FleetDir::for_test(&env);
    let original = std::fs::read_to_string(fleet.dir.path().join("fleet.toml")).unwrap();
    std::fs::write(
        fleet.dir.path().join("fleet.toml"),
        format!("{original}\n{PATCH}"),
    )
    .unwrap();
    fleet.set_environment(
        "[agents.observer.patch.Service.metadata.annotations]\n\"example.com/owner\" = \"team-a\"\n",
    );
    fleet.run(&["validate"]).assert_ok("validate");

    let plan = fleet.run(&["plan"]);
    plan.assert_ok("plan");
    for expected in ["dnsPolicy: Default", "minReadySeconds: 7", "stdin: true"] {
        assert!(
            plan.stdout.contains(expected),
            "{expected}:\n{}",
            plan.stdout
        );
    }
    fleet.apply(&["--no-wait"]).assert_ok("apply");
    fleet.assert_plan_empty();

    let deployments: Api<Deployment> = Api::namespaced(env.kube.clone(), &fleet.namespace);
    let devops = deployments.get("agent-devops").await.unwrap();
    let spec = devops.spec;
    assert_eq!(spec.min_ready_seconds, Some(7));
    let pod = spec.template.spec.unwrap();
    assert_eq!(pod.dns_policy.as_deref(), Some("Default"));
    let agent = &pod.containers[0];
    assert_eq!(agent.stdin, Some(true));
    assert!(agent.image.is_some(), "the container kept fleet's fields");
    let services: Api<Service> = Api::namespaced(env.kube.clone(), &fleet.namespace);
    let observer = services.get("agent-observer").await.unwrap();
    assert_eq!(
        observer.metadata.annotations.unwrap()["example.com/owner"],
        "team-a"
    );
}

#[tokio::test]
async fn a_field_the_api_server_refuses_points_at_the_patch() {
    let env = TestEnv::new("patch-bad").await;
    let fleet = FleetDir::for_test(&env);
    fleet.apply(&["--no-wait"]).assert_ok("apply");
    let original = std::fs::read_to_string(fleet.dir.path().join("fleet.toml")).unwrap();
    let line = original.lines().count() + 3;
    for (case, patch, complaint) in [
        ("a bad value", "dnsPolicy = \"Sometimes\"", "dnsPolicy"),
        ("an unknown field", "dnsPolicyy = \"None\"", "dnsPolicyy"),
    ] {
        std::fs::write(
            fleet.dir.path().join("fleet.toml"),
            format!("{original}\n[agents.devops.patch.Deployment.spec.template.spec]\n{patch}\n"),
        )
        .unwrap();
        let plan = fleet.run(&["plan"]);
        assert_eq!(plan.code, 1, "{case}:\n{}{}", plan.stdout, plan.stderr);
        let place = format!("`spec.template.spec.{complaint}` at fleet.toml:{line}:1");
        assert!(
            plan.stderr.contains(&place),
            "{case}: no `{place}` in:\n{}",
            plan.stderr
        );
        assert!(plan.stderr.contains(complaint), "{case}:\n{}", plan.stderr);
        let applied = fleet.apply(&["--no-wait"]);
        assert_eq!(applied.code, 1, "{case}: apply refuses too");
    }
    std::fs::write(fleet.dir.path().join("fleet.toml"), &original).unwrap();
    fleet.assert_plan_empty();
}
