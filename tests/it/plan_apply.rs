//! `fleet plan` and `fleet apply` against the local control plane, each test
//! a user story. Each deploys into a namespace of its own.

use std::time::Duration;

use crate::support::{self, FleetDir, TestEnv, eventually};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;

/// As `kubectl scale` (or the autoscaler) would: through the scale subresource.
fn kubectl_scale(fleet: &FleetDir, deployment: &str, replicas: u32) {
    let scaled = support::control_plane()
        .kubectl()
        .args([
            "-n",
            &fleet.namespace,
            "scale",
            &format!("deployment/{deployment}"),
        ])
        .arg(format!("--replicas={replicas}"))
        .output()
        .unwrap();
    assert!(
        scaled.status.success(),
        "{}",
        String::from_utf8_lossy(&scaled.stderr)
    );
}

#[tokio::test]
async fn second_plan_after_apply_is_empty() {
    let env = TestEnv::new("second-plan-empty").await;
    let fleet = FleetDir::for_test(&env);

    let plan = fleet.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 2, "{}{}", plan.stdout, plan.stderr);
    let creates = plan
        .stdout
        .lines()
        .filter(|l| l.starts_with("  + "))
        .count();
    assert!(creates >= 22, "{creates} creates:\n{}", plan.stdout);
    assert!(plan.stdout.contains("  + Deployment"), "{}", plan.stdout);
    // The local control plane's external metrics API is KEDA's, which
    // serves only its own ScaledObjects' metrics: the seed's HPAs could
    // never scale, and the plan says so with KEDA's own answer.
    for agent in ["devops", "reviewer"] {
        assert!(
            plan.stdout.contains(&format!(
                "agent-{agent}-hpa will not scale on nats_consumer_pending_messages{{consumer={agent}-agent,stream={}}}: the external metrics API answered \"scaledObject name is not specified\"",
                fleet.stream()
            )),
            "{}",
            plan.stdout
        );
    }
    assert!(
        plan.stdout.contains(&format!(
            "Plan: {creates} to add, 0 to change, 0 to destroy."
        )),
        "{}",
        plan.stdout
    );

    // The namespace does not exist yet: what is in it could not be dry-run,
    // and the plan says so.
    assert!(
        plan.stdout.contains(&format!(
            "Note: namespace {} does not exist yet, so the {} objects in it could not be dry-run",
            fleet.namespace,
            plan.stdout
                .lines()
                .filter(|l| l.starts_with("  + ") && l.contains(&format!(" {}/", fleet.namespace)))
                .count()
        )),
        "{}",
        plan.stdout
    );

    let applied = fleet.apply(&[]);
    applied.assert_ok("apply");
    assert!(applied.stdout.contains("rolled out"), "{}", applied.stdout);
    assert!(
        applied
            .stdout
            .contains(&format!("Apply complete! Resources: {creates} added")),
        "{}",
        applied.stdout
    );
    // Each change once: the ApplySet parent too, although apply writes it
    // again last, to record the inventory.
    let parent = format!("Secret {}/fleet-agent-ceo: ", fleet.namespace);
    assert_eq!(
        applied.stdout.matches(&parent).count(),
        1,
        "{}",
        applied.stdout
    );

    fleet.assert_plan_empty();
    let deployments: Api<Deployment> = Api::namespaced(env.kube.clone(), &fleet.namespace);
    let devops = deployments.get("agent-devops").await.unwrap();
    assert_eq!(devops.status.unwrap().available_replicas, Some(1));
}

#[tokio::test]
async fn image_change_is_one_in_place_update() {
    let env = TestEnv::new("image-change").await;
    let fleet = FleetDir::for_test(&env);
    fleet.apply(&[]).assert_ok("apply");

    fleet.set_environment("[agents.devops]\nimage = \"gcr.io/agent-ceo/agent-runtime:1.4.3\"\n");
    let plan = fleet.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 2, "{}{}", plan.stdout, plan.stderr);
    assert!(
        plan.stdout
            .contains("Plan: 0 to add, 1 to change, 0 to destroy."),
        "{}",
        plan.stdout
    );
    let header = format!("  ~ Deployment {}/agent-devops", fleet.namespace);
    assert!(plan.stdout.contains(&header), "{}", plan.stdout);
    // Diff lines are indented six spaces, then their marker.
    let diff_lines = |marker: char| -> Vec<&str> {
        plan.stdout
            .lines()
            .filter(|l| {
                l.strip_prefix("      ")
                    .is_some_and(|rest| rest.starts_with(marker))
            })
            .collect()
    };
    let (removed, added) = (diff_lines('-'), diff_lines('+'));
    assert_eq!(removed.len(), 1, "{}", plan.stdout);
    assert_eq!(added.len(), 1, "{}", plan.stdout);
    assert!(
        removed[0].contains("image: gcr.io/agent-ceo/agent-runtime:latest"),
        "{}",
        removed[0]
    );
    assert!(
        added[0].contains("image: gcr.io/agent-ceo/agent-runtime:1.4.3"),
        "{}",
        added[0]
    );

    fleet.apply(&[]).assert_ok("apply of the new image");
    fleet.assert_plan_empty();
}

#[tokio::test]
async fn autoscaler_scaling_is_not_a_change() {
    let env = TestEnv::new("autoscaler-scales").await;
    let fleet = FleetDir::for_test(&env);
    fleet.apply(&[]).assert_ok("apply");
    // The autoscaler moves replicas through the scale subresource.
    kubectl_scale(&fleet, "agent-devops", 3);
    fleet.assert_plan_empty();
    let deployments: Api<Deployment> = Api::namespaced(env.kube.clone(), &fleet.namespace);
    fleet.apply(&[]).assert_ok("apply with nothing to do");
    assert_eq!(
        deployments.get("agent-devops").await.unwrap().spec.replicas,
        Some(3)
    );
}

#[tokio::test]
async fn removed_agent_is_destroyed_and_unowned_objects_survive() {
    let env = TestEnv::new("agent-removed").await;
    let fleet = FleetDir::for_test(&env);
    fleet.apply(&[]).assert_ok("apply");
    let configmaps: Api<ConfigMap> = Api::namespaced(env.kube.clone(), &fleet.namespace);
    let bystander: ConfigMap = serde_json::from_value(json!({
        "metadata": { "name": "not-fleets", "labels": { "agent.ceo/role": "observer" } },
        "data": { "a": "b" }
    }))
    .unwrap();
    configmaps
        .create(&PostParams::default(), &bystander)
        .await
        .unwrap();

    fleet.set_environment("[agents.observer]\nenabled = false\n");
    let plan = fleet.run(&["plan"]);
    plan.assert_ok("plan");
    let destroyed: Vec<&str> = plan
        .stdout
        .lines()
        .filter(|l| l.starts_with("  - "))
        .collect();
    for object in [
        "ServiceAccount {ns}/agent-observer",
        "ConfigMap {ns}/agent-observer-config",
        "Deployment {ns}/agent-observer",
        "Service {ns}/agent-observer",
        "PodDisruptionBudget {ns}/agent-observer",
        "NetworkPolicy {ns}/agent-observer-network",
    ] {
        let line = format!("  - {}", object.replace("{ns}", &fleet.namespace));
        assert!(
            destroyed.contains(&line.as_str()),
            "{line} not destroyed:\n{}",
            plan.stdout
        );
    }
    // Its task consumer goes too; the stream stays, other agents use it.
    let consumer = format!("  - jetstream consumer {}/observer-agent", fleet.stream());
    assert!(destroyed.contains(&consumer.as_str()), "{}", plan.stdout);
    assert_eq!(destroyed.len(), 7, "{}", plan.stdout);
    assert!(!plan.stdout.contains("not-fleets"), "{}", plan.stdout);

    fleet.apply(&[]).assert_ok("apply");
    fleet.assert_plan_empty();
    assert!(configmaps.get_opt("not-fleets").await.unwrap().is_some());
    assert!(
        configmaps
            .get_opt("agent-observer-config")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        configmaps
            .get_opt("agent-devops-config")
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn same_named_object_is_not_taken_over_without_adopt() {
    let env = TestEnv::new("adopt").await;
    let fleet = FleetDir::for_test(&env);
    fleet.apply(&[]).assert_ok("apply");
    fleet.set_environment("[agents.observer]\nenabled = false\n");
    fleet.apply(&[]).assert_ok("apply without the observer");

    // Someone else's ConfigMap takes the observer's config name.
    let configmaps: Api<ConfigMap> = Api::namespaced(env.kube.clone(), &fleet.namespace);
    let theirs: ConfigMap = serde_json::from_value(json!({
        "metadata": { "name": "agent-observer-config" }, "data": { "theirs": "yes" }
    }))
    .unwrap();
    configmaps
        .create(&PostParams::default(), &theirs)
        .await
        .unwrap();

    fleet.set_environment("");
    let plan = fleet.run(&["plan"]);
    assert!(
        plan.stdout.contains("exists and is not managed by fleet"),
        "{}",
        plan.stdout
    );
    let refused = fleet.apply(&[]);
    assert_eq!(refused.code, 1, "{}{}", refused.stdout, refused.stderr);
    assert!(refused.stderr.contains("--adopt"), "{}", refused.stderr);
    assert!(
        configmaps
            .get("agent-observer-config")
            .await
            .unwrap()
            .data
            .unwrap()
            .contains_key("theirs")
    );

    // Planned as apply --adopt carries it out: taken over, not a conflict.
    let adopting = fleet.run(&["plan", "--adopt"]);
    adopting.assert_ok("plan --adopt");
    assert!(
        adopting.stdout.contains(&format!(
            "  ~ ConfigMap {}/agent-observer-config",
            fleet.namespace
        )),
        "{}",
        adopting.stdout
    );
    assert!(
        !adopting
            .stdout
            .contains("conflicts with another field manager")
            && !adopting.stdout.contains("needs --force-conflicts"),
        "{}",
        adopting.stdout
    );
    fleet.apply(&["--adopt"]).assert_ok("apply --adopt");
    fleet.assert_plan_empty();
}

#[tokio::test]
async fn selector_change_is_planned_and_applied_as_a_replace() {
    let env = TestEnv::new("selector-replace").await;
    let fleet = FleetDir::for_test(&env);
    fleet.apply(&[]).assert_ok("apply");

    let deployments: Api<Deployment> = Api::namespaced(env.kube.clone(), &fleet.namespace);
    support::with_old_selector(&deployments, "agent-reviewer").await;

    let plan = fleet.run(&["plan"]);
    plan.assert_ok("plan");
    assert!(
        plan.stdout.contains(&format!(
            "  -/+ Deployment {}/agent-reviewer",
            fleet.namespace
        )),
        "{}",
        plan.stdout
    );
    assert!(plan.stdout.contains("spec.selector"), "{}", plan.stdout);
    assert!(
        plan.stdout
            .contains("Plan: 1 to add, 0 to change, 1 to destroy."),
        "{}",
        plan.stdout
    );

    let applied = fleet.apply(&[]);
    applied.assert_ok("apply");
    assert!(applied.stdout.contains("replaced"), "{}", applied.stdout);
    fleet.assert_plan_empty();
    let selector = deployments
        .get("agent-reviewer")
        .await
        .unwrap()
        .spec
        .selector
        .match_labels
        .unwrap();
    assert!(!selector.contains_key("generation"));
}

#[tokio::test]
async fn a_replace_whose_create_fails_names_what_is_missing_and_the_next_apply_recreates_it() {
    let env = TestEnv::new("replace-create-fails").await;
    let fleet = FleetDir::for_test(&env);
    fleet.apply(&[]).assert_ok("apply");
    let deployments: Api<Deployment> = Api::namespaced(env.kube.clone(), &fleet.namespace);
    support::with_old_selector(&deployments, "agent-reviewer").await;
    let plan = fleet.run(&["plan"]);
    plan.assert_ok("plan");
    assert!(
        plan.stdout
            .contains("the agent's pods go away until the new Deployment's are ready"),
        "the plan says what a replace means for the agent:\n{}",
        plan.stdout
    );

    // Creating Deployments is refused (dry runs pass): the delete half of
    // the replace goes through, the create half does not.
    let policy = AdmissionPolicy::refuse_deployments(&fleet.namespace);
    wait_until_creates_are_refused(&deployments).await;
    let failed = fleet.apply(&[]);
    assert_eq!(failed.code, 1, "{}{}", failed.stdout, failed.stderr);
    let missing = format!(
        "Deployment {}/agent-reviewer was deleted to be replaced and could not be created again: it is missing now",
        fleet.namespace
    );
    assert!(failed.stderr.contains(&missing), "{}", failed.stderr);
    assert!(
        failed.stderr.contains("held back by the test"),
        "{}",
        failed.stderr
    );
    assert!(
        deployments
            .get_opt("agent-reviewer")
            .await
            .unwrap()
            .is_none()
    );

    drop(policy);
    let plan = fleet.run(&["plan"]);
    assert!(
        plan.stdout.contains(&format!(
            "  + Deployment {}/agent-reviewer",
            fleet.namespace
        )),
        "{}",
        plan.stdout
    );
    eventually("the policy to be gone", Duration::from_secs(60), || async {
        let run = fleet.apply(&[]);
        (run.code == 0).then_some(())
    })
    .await;
    fleet.assert_plan_empty();
    assert!(
        deployments
            .get_opt("agent-reviewer")
            .await
            .unwrap()
            .is_some()
    );
}

/// Waits until an [`AdmissionPolicy`] refuses to create a Deployment.
async fn wait_until_creates_are_refused(deployments: &Api<Deployment>) {
    let probe: Deployment = serde_json::from_value(json!({
        "metadata": { "name": "probe" },
        "spec": {
            "replicas": 0,
            "selector": { "matchLabels": { "app": "probe" } },
            "template": {
                "metadata": { "labels": { "app": "probe" } },
                "spec": { "containers": [{ "name": "c", "image": "example.invalid/c:1" }] }
            }
        }
    }))
    .unwrap();
    eventually(
        "the admission policy to take effect",
        Duration::from_secs(60),
        || async {
            match deployments.create(&PostParams::default(), &probe).await {
                Ok(_) => {
                    let _ = deployments.delete("probe", &Default::default()).await;
                    None
                }
                Err(_) => Some(()),
            }
        },
    )
    .await;
}

#[tokio::test]
async fn a_terminating_namespace_is_explained_as_such() {
    let env = TestEnv::new("terminating-namespace").await;
    let fleet = FleetDir::for_test(&env);
    fleet.apply(&[]).assert_ok("apply");
    // A finalizer holds the namespace in Terminating once it is deleted.
    let configmaps: Api<ConfigMap> = Api::namespaced(env.kube.clone(), &fleet.namespace);
    let held: ConfigMap = serde_json::from_value(json!({
        "metadata": { "name": "held", "finalizers": ["fleet.test/hold"] }
    }))
    .unwrap();
    configmaps
        .create(&PostParams::default(), &held)
        .await
        .unwrap();
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(env.kube.clone());
    namespaces
        .delete(&fleet.namespace, &Default::default())
        .await
        .unwrap();
    eventually(
        "fleet's objects to be deleted",
        Duration::from_secs(60),
        || async { deployments_left(&env, &fleet).await.eq(&0).then_some(()) },
    )
    .await;

    let run = fleet.run(&["plan", "--format", "json"]);
    let release = || async {
        let _ = configmaps
            .patch(
                "held",
                &PatchParams::default(),
                &Patch::Merge(json!({ "metadata": { "finalizers": null } })),
            )
            .await;
    };
    release().await;
    // Every create is blocked, saying why; apply would refuse them all.
    run.assert_ok("plan");
    let plan: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let creates: Vec<&serde_json::Value> = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["action"] == "create")
        .collect();
    assert!(!creates.is_empty(), "{plan:#}");
    for create in &creates {
        let reason = create["blocked"]["reason"].as_str().unwrap_or_default();
        assert!(
            reason.contains("is being deleted, so nothing can be created in it")
                && !reason.contains("RBAC"),
            "{create:#}"
        );
    }
    assert_eq!(plan["summary"]["blocked"], creates.len(), "{plan:#}");
}

async fn deployments_left(env: &TestEnv, fleet: &FleetDir) -> usize {
    Api::<Deployment>::namespaced(env.kube.clone(), &fleet.namespace)
        .list(&Default::default())
        .await
        .map(|l| l.items.len())
        .unwrap_or(0)
}

#[tokio::test]
async fn restricted_user_gets_a_specific_permission_error() {
    let env = TestEnv::new("restricted-apply").await;
    let fleet = FleetDir::for_test(&env);
    let run = fleet.run(&["plan", "--context", support::RESTRICTED_CONTEXT]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("forbidden"), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("User \"fleet-restricted\" cannot list resource"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("kube context `fleet-restricted`"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
}

#[tokio::test]
async fn saved_plan_is_applied_only_while_it_is_still_the_plan() {
    let env = TestEnv::new("saved-plan").await;
    let fleet = FleetDir::for_test(&env);
    let plan_file = fleet.dir.path().join("plan.json");
    let plan_path = plan_file.to_str().unwrap();
    fleet
        .run(&["plan", "--out", plan_path])
        .assert_ok("plan --out");
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&plan_file).unwrap()).unwrap();
    assert_eq!(saved["format_version"], 1);
    // Made for this cluster (outside git: no commit).
    assert!(
        saved["provenance"]["cluster"]["kube_system_uid"].is_string(),
        "{}",
        saved["provenance"]
    );
    assert!(saved["provenance"]["definition"].is_null());
    assert!(
        saved["summary"]["add"].as_u64().unwrap() >= 22,
        "{}",
        saved["summary"]
    );

    // The definition changes after the plan was made: the plan is stale.
    fleet.set_environment("[agents.devops]\nreplicas = 3\nautoscaling = { enabled = false }\n");
    let stale = fleet.run(&["apply", "--auto-approve", plan_path]);
    assert_eq!(stale.code, 1, "{}{}", stale.stdout, stale.stderr);
    assert!(stale.stderr.contains("is stale"), "{}", stale.stderr);
    env.assert_nothing_applied(&fleet).await;

    fleet.set_environment("");
    let applied = fleet.run(&["apply", "--auto-approve", "--timeout", "90s", plan_path]);
    applied.assert_ok("apply of the saved plan");
    fleet.assert_plan_empty();
}

#[tokio::test]
async fn every_error_of_a_wave_is_reported_with_what_was_not_started() {
    let env = TestEnv::new("wave-errors").await;
    let fleet = FleetDir::for_test(&env);
    fleet.set_environment(
        "[agents.devops]\nenabled = false\n\n[agents.reviewer]\nenabled = false\n",
    );
    fleet.apply(&[]).assert_ok("apply of the observer alone");

    // An admission policy that refuses to create any other Deployment in the
    // namespace, but lets dry runs through: plan passes, apply fails.
    let policy = AdmissionPolicy::refuse_deployments(&fleet.namespace);
    let deployments: Api<Deployment> = Api::namespaced(env.kube.clone(), &fleet.namespace);
    wait_until_creates_are_refused(&deployments).await;

    // Both agents in one rollout wave: its writes fail together.
    fleet.set_environment("[rollout]\nwaves = [[\"observer\", \"devops\", \"reviewer\"]]\n");
    let run = fleet.apply(&[]);
    drop(policy);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("2 errors:"), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("): failed: its new definition is written in part"),
        "{}",
        run.stderr
    );
    for deployment in ["agent-devops", "agent-reviewer"] {
        let error = format!("applying Deployment {}/{deployment}", fleet.namespace);
        assert!(run.stderr.contains(&error), "{error}:\n{}", run.stderr);
    }
    assert!(
        run.stderr.contains("held back by the test"),
        "{}",
        run.stderr
    );
    assert!(
        run.stdout.contains("failed (see below)") && run.stdout.contains("\nNot started:\n"),
        "{}",
        run.stdout
    );
    // The later waves' changes, named.
    let autoscaler = format!(
        "\n  HorizontalPodAutoscaler {}/agent-devops-hpa\n",
        fleet.namespace
    );
    assert!(run.stdout.contains(&autoscaler), "{}", run.stdout);
    assert!(
        run.stdout.contains("Rollouts were not waited for."),
        "{}",
        run.stdout
    );
}

/// A ValidatingAdmissionPolicy and its binding, removed again on drop.
struct AdmissionPolicy {
    name: String,
}

impl AdmissionPolicy {
    /// Refuses to create Deployments other than `agent-observer` in
    /// `namespace`, except in dry runs.
    fn refuse_deployments(namespace: &str) -> AdmissionPolicy {
        let name = format!("fleet-test-{namespace}");
        let objects = json!({
            "apiVersion": "v1",
            "kind": "List",
            "items": [
                {
                    "apiVersion": "admissionregistration.k8s.io/v1",
                    "kind": "ValidatingAdmissionPolicy",
                    "metadata": { "name": name },
                    "spec": {
                        "failurePolicy": "Fail",
                        "matchConstraints": { "resourceRules": [{
                            "apiGroups": ["apps"], "apiVersions": ["v1"],
                            "operations": ["CREATE"], "resources": ["deployments"]
                        }] },
                        "validations": [{
                            "expression": "request.dryRun == true || object.metadata.name == 'agent-observer'",
                            "message": "held back by the test"
                        }]
                    }
                },
                {
                    "apiVersion": "admissionregistration.k8s.io/v1",
                    "kind": "ValidatingAdmissionPolicyBinding",
                    "metadata": { "name": name },
                    "spec": {
                        "policyName": name,
                        "validationActions": ["Deny"],
                        "matchResources": { "namespaceSelector": { "matchLabels": {
                            "kubernetes.io/metadata.name": namespace
                        } } }
                    }
                }
            ]
        });
        support::control_plane().kubectl_stdin(&["apply", "--server-side"], &objects.to_string());
        AdmissionPolicy { name }
    }
}

impl Drop for AdmissionPolicy {
    fn drop(&mut self) {
        let _ = support::control_plane()
            .kubectl()
            .args([
                "delete",
                "validatingadmissionpolicybinding,validatingadmissionpolicy",
                &self.name,
                "--ignore-not-found",
            ])
            .output();
    }
}

/// What fleet leaves of `fleet` in the cluster and on NATS: its namespace
/// (if any), the objects with its ownership label, the parent Secret, the
/// deploy lock's Lease, and its stream.
#[derive(Debug, PartialEq, Eq)]
struct Left {
    namespace: bool,
    labelled: usize,
    parent: bool,
    lease: bool,
    stream: bool,
}

async fn left(env: &TestEnv, fleet: &FleetDir) -> Left {
    use k8s_openapi::api::coordination::v1::Lease;
    use k8s_openapi::api::core::v1::{Namespace, Secret, ServiceAccount};
    let ns = fleet.namespace.as_str();
    let namespace = Api::<Namespace>::all(env.kube.clone())
        .get_opt(ns)
        .await
        .unwrap()
        .is_some_and(|n| n.metadata.deletion_timestamp.is_none());
    let selector = kube::api::ListParams::default().labels("app.kubernetes.io/managed-by=fleet");
    let mut labelled = 0;
    labelled += Api::<Deployment>::namespaced(env.kube.clone(), ns)
        .list(&selector)
        .await
        .unwrap()
        .items
        .len();
    labelled += Api::<ConfigMap>::namespaced(env.kube.clone(), ns)
        .list(&selector)
        .await
        .unwrap()
        .items
        .len();
    labelled += Api::<ServiceAccount>::namespaced(env.kube.clone(), ns)
        .list(&selector)
        .await
        .unwrap()
        .items
        .len();
    let parent = Api::<Secret>::namespaced(env.kube.clone(), ns)
        .get_opt("fleet-agent-ceo")
        .await
        .unwrap()
        .is_some();
    let lease = Api::<Lease>::namespaced(env.kube.clone(), ns)
        .get_opt("fleet-agent-ceo")
        .await
        .unwrap()
        .is_some();
    let stream = env.jetstream.get_stream(fleet.stream()).await.is_ok();
    Left {
        namespace,
        labelled,
        parent,
        lease,
        stream,
    }
}

#[tokio::test]
async fn destroy_removes_everything_fleet_owns_and_a_second_destroy_has_nothing_to_do() {
    let env = TestEnv::new("destroy-all").await;
    let fleet = FleetDir::for_test(&env);
    fleet.apply(&[]).assert_ok("apply");
    let applied = left(&env, &fleet).await;
    assert!(
        applied.namespace
            && applied.labelled > 5
            && applied.parent
            && applied.lease
            && applied.stream,
        "{applied:?}"
    );

    let plan = fleet.run(&["plan", "--destroy", "--detailed-exitcode"]);
    assert_eq!(plan.code, 2, "{}{}", plan.stdout, plan.stderr);
    let ns = &fleet.namespace;
    for destroyed in [
        format!("  - Deployment {ns}/agent-devops"),
        format!("  - jetstream stream {}", fleet.stream()),
        format!("  - jetstream consumer {}/devops-agent", fleet.stream()),
        format!("  - Secret {ns}/fleet-agent-ceo"),
        format!("  - Lease {ns}/fleet-agent-ceo"),
        format!("  - Namespace {ns}"),
    ] {
        assert!(
            plan.stdout.contains(&destroyed),
            "{destroyed}:\n{}",
            plan.stdout
        );
    }
    // In the order it is carried out: the parent after what it lists, the
    // namespace last.
    let at = |what: &str| plan.stdout.find(what).unwrap();
    assert!(at("  - Deployment") < at("  - jetstream stream"));
    assert!(at("  - jetstream stream") < at("  - Secret"));
    assert!(at("  - Secret") < at("  - Lease"));
    assert!(at("  - Lease") < at("  - Namespace"));
    assert!(plan.stdout.contains(" to destroy."), "{}", plan.stdout);
    assert!(
        plan.stdout.contains("Plan: 0 to add, 0 to change, "),
        "{}",
        plan.stdout
    );

    // Without a terminal, destroy needs --auto-approve, and changes nothing.
    let refused = fleet.run(&["destroy"]);
    assert_eq!(refused.code, 1, "{}{}", refused.stdout, refused.stderr);
    assert!(
        refused.stderr.contains("fleet destroy --auto-approve"),
        "{}",
        refused.stderr
    );
    assert_eq!(left(&env, &fleet).await, applied);

    let destroyed = fleet.run(&["destroy", "--auto-approve", "--timeout", "90s"]);
    destroyed.assert_ok("destroy");
    assert!(
        destroyed.stdout.contains(&format!("Namespace {ns}: gone")),
        "{}",
        destroyed.stdout
    );
    assert!(
        destroyed.stdout.contains("Destroy complete! Resources: "),
        "{}",
        destroyed.stdout
    );
    let none = Left {
        namespace: false,
        labelled: 0,
        parent: false,
        lease: false,
        stream: false,
    };
    assert_eq!(left(&env, &fleet).await, none);
    env.assert_nothing_applied(&fleet).await;

    let again = fleet.run(&["destroy", "--auto-approve"]);
    again.assert_ok("second destroy");
    assert!(
        again.stdout.contains("Nothing to destroy."),
        "{}",
        again.stdout
    );
    env.assert_nothing_applied(&fleet).await;
    let plan = fleet.run(&["plan", "--destroy", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "{}{}", plan.stdout, plan.stderr);
}

#[tokio::test]
async fn a_destroy_losing_unread_messages_is_blocked_and_writes_nothing() {
    let env = TestEnv::new("destroy-blocked").await;
    let fleet = FleetDir::for_test(&env);
    fleet.apply(&[]).assert_ok("apply");
    env.jetstream
        .publish(fleet.task_subject("devops"), "task".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let before = left(&env, &fleet).await;

    let plan = fleet.run(&["plan", "--destroy"]);
    plan.assert_ok("plan --destroy");
    assert!(
        plan.stdout
            .contains("  # blocked: queued messages would be lost"),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout
            .contains("2 changes are blocked: 2 need --allow-destroy."),
        "{}",
        plan.stdout
    );

    let refused = fleet.run(&["destroy", "--auto-approve"]);
    assert_eq!(refused.code, 1, "{}{}", refused.stdout, refused.stderr);
    assert!(
        refused.stderr.contains("--allow-destroy"),
        "{}",
        refused.stderr
    );
    assert_eq!(left(&env, &fleet).await, before);
    let stream = env.jetstream.get_stream(fleet.stream()).await.unwrap();
    assert_eq!(stream.cached_info().state.messages, 1);
    fleet.assert_plan_empty();

    fleet
        .run(&[
            "destroy",
            "--auto-approve",
            "--allow-destroy",
            "--timeout",
            "90s",
        ])
        .assert_ok("destroy --allow-destroy");
    env.assert_nothing_applied(&fleet).await;
}

#[tokio::test]
async fn a_namespace_holding_what_fleet_does_not_own_is_left_standing_with_it() {
    let env = TestEnv::new("destroy-foreign").await;
    let fleet = FleetDir::for_test(&env);
    fleet.apply(&[]).assert_ok("apply");
    // Made by an administrator, without fleet's labels.
    let configmaps: Api<ConfigMap> = Api::namespaced(env.kube.clone(), &fleet.namespace);
    let hand_made: ConfigMap = serde_json::from_value(json!({
        "metadata": { "name": "hand-made" },
        "data": { "keep": "me" }
    }))
    .unwrap();
    configmaps
        .create(&PostParams::default(), &hand_made)
        .await
        .unwrap();

    let destroyed = fleet.run(&["destroy", "--auto-approve", "--timeout", "90s"]);
    destroyed.assert_ok("destroy");
    let ns = &fleet.namespace;
    assert!(
        destroyed.stdout.contains(&format!(
            "Note: namespace {ns} is left standing: it holds 1 object fleet does not own, which deleting it would delete too: ConfigMap {ns}/hand-made."
        )),
        "{}",
        destroyed.stdout
    );
    assert!(
        !destroyed.stdout.contains(&format!("  - Namespace {ns}")),
        "{}",
        destroyed.stdout
    );
    assert_eq!(
        left(&env, &fleet).await,
        Left {
            namespace: true,
            labelled: 0,
            parent: false,
            lease: false,
            stream: false,
        }
    );
    let kept = configmaps.get("hand-made").await.unwrap();
    assert_eq!(kept.data.unwrap()["keep"], "me");

    let again = fleet.run(&["destroy", "--auto-approve"]);
    again.assert_ok("second destroy");
    assert!(
        again.stdout.contains("Nothing to destroy."),
        "{}",
        again.stdout
    );
    assert!(
        again
            .stdout
            .contains(&format!("namespace {ns} is left standing")),
        "{}",
        again.stdout
    );
    // The lock it took to find that out is gone again.
    assert!(!left(&env, &fleet).await.lease);
    let plan = fleet.run(&["plan", "--destroy", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "{}{}", plan.stdout, plan.stderr);
}

#[tokio::test]
async fn a_saved_destroy_plan_is_applied_as_a_destroy() {
    let env = TestEnv::new("destroy-saved").await;
    let fleet = FleetDir::for_test(&env);
    fleet.apply(&[]).assert_ok("apply");
    fleet
        .run(&["plan", "--destroy", "--out", "destroy.json"])
        .assert_ok("plan --destroy --out");
    let saved: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fleet.dir.path().join("destroy.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(saved["destroy"], true, "{saved:#}");
    assert_eq!(saved["summary"]["add"], 0, "{saved:#}");

    // Not a plan of the definition: `fleet destroy` takes only destroy plans,
    // and apply of a destroy plan destroys.
    fleet
        .run(&["plan", "--out", "apply.json"])
        .assert_ok("plan --out");
    let refused = fleet.run(&["destroy", "apply.json"]);
    assert_eq!(refused.code, 1, "{}{}", refused.stdout, refused.stderr);
    assert!(
        refused.stderr.contains("is not a destroy plan"),
        "{}",
        refused.stderr
    );

    let applied = fleet.run(&["apply", "--timeout", "90s", "destroy.json"]);
    applied.assert_ok("apply destroy.json");
    assert!(
        applied.stdout.contains("Destroy complete! Resources: "),
        "{}",
        applied.stdout
    );
    env.assert_nothing_applied(&fleet).await;
    assert!(!left(&env, &fleet).await.stream);
}

/// Every object in the fleet's namespace, as `Kind/name` -> resourceVersion.
fn versions(fleet: &FleetDir) -> std::collections::BTreeMap<String, String> {
    let listed = support::control_plane()
        .kubectl()
        .args([
            "-n",
            &fleet.namespace,
            "get",
            "deployments,configmaps,services,serviceaccounts,roles,rolebindings,networkpolicies,horizontalpodautoscalers,poddisruptionbudgets,secrets",
            "-o",
            "jsonpath={range .items[*]}{.kind}/{.metadata.name}={.metadata.resourceVersion}{\"\\n\"}{end}",
        ])
        .output()
        .unwrap();
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    String::from_utf8(listed.stdout)
        .unwrap()
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(object, version)| (object.to_string(), version.to_string()))
        .collect()
}

/// The ApplySet parent's inventory: the kinds it lists and its hash.
async fn inventory(env: &TestEnv, fleet: &FleetDir) -> (String, String) {
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(env.kube.clone(), &fleet.namespace);
    let parent = secrets.get("fleet-agent-ceo").await.unwrap();
    let annotations = parent.metadata.annotations.unwrap_or_default();
    let annotation = |key: &str| annotations.get(key).cloned().unwrap_or_default();
    (
        annotation("applyset.kubernetes.io/contains-group-kinds"),
        annotation("fleet.agent.ceo/inventory-hash"),
    )
}

/// A new image for every agent.
fn bump_images(fleet: &FleetDir, tag: &str) {
    let mut environment = String::new();
    for agent in ["devops", "reviewer", "observer"] {
        environment.push_str(&format!(
            "[agents.{agent}]\nimage = \"gcr.io/agent-ceo/agent-runtime:{tag}\"\n\n"
        ));
    }
    fleet.set_environment(&environment);
}

#[tokio::test]
async fn a_targeted_apply_changes_only_its_agents_and_prunes_nothing_else() {
    let env = TestEnv::new("targeted").await;
    let fleet = FleetDir::for_test(&env);
    fleet.apply(&[]).assert_ok("first apply");
    let before = versions(&fleet);
    assert!(before.len() > 15, "{before:?}");
    let inventory_before = inventory(&env, &fleet).await;

    // Every agent's image changes; only the devops agent's is planned.
    bump_images(&fleet, "1.5.0");
    let plan = fleet.run(&["plan", "--agent", "devops"]);
    plan.assert_ok("targeted plan");
    assert!(
        plan.stdout
            .contains("Targeted (--agent devops): agents devops; left out: observer, reviewer"),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout.contains("0 to add, 1 to change, 0 to destroy"),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout
            .contains("this plan is targeted (--agent devops)"),
        "{}",
        plan.stdout
    );

    // Saved, it carries its target: another one is refused, none needed.
    let saved = fleet.dir.path().join("devops.json");
    let saved = saved.to_str().unwrap();
    fleet
        .run(&["plan", "--agent", "devops", "--out", saved])
        .assert_ok("saving the targeted plan");
    let refused = fleet.run(&["apply", saved, "--agent", "reviewer"]);
    assert_eq!(refused.code, 1, "{}{}", refused.stdout, refused.stderr);
    assert!(
        refused
            .stderr
            .contains("was made with --agent devops, not with --agent reviewer"),
        "{}",
        refused.stderr
    );
    fleet
        .run(&["apply", saved])
        .assert_ok("applying the saved targeted plan");

    let after = versions(&fleet);
    let changed: Vec<&String> = after
        .iter()
        .filter(|(object, version)| before.get(*object) != Some(*version))
        .map(|(object, _)| object)
        .collect();
    // And the ApplySet parent, whose record of the apply changed, but not
    // its inventory.
    assert_eq!(
        changed,
        ["Deployment/agent-devops", "Secret/fleet-agent-ceo"],
        "{before:?}\n{after:?}"
    );
    assert_eq!(inventory(&env, &fleet).await, inventory_before);
    let rest = fleet.run(&["plan"]);
    assert!(
        rest.stdout
            .contains(", to some agents only (--agent devops)"),
        "{}",
        rest.stdout
    );

    // The rest of the fleet still differs, and an untargeted plan says so.
    let rest = fleet.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(rest.code, 2, "{}{}", rest.stdout, rest.stderr);
    assert!(
        rest.stdout.contains("0 to add, 2 to change, 0 to destroy"),
        "{}",
        rest.stdout
    );

    // The observer leaves the definition: a targeted apply of another agent
    // does not prune it, and an apply targeted at its role does.
    fleet.set_environment(
        "[agents.devops]\nimage = \"gcr.io/agent-ceo/agent-runtime:1.5.0\"\n\n[agents.reviewer]\nimage = \"gcr.io/agent-ceo/agent-runtime:1.5.0\"\n\n[agents.observer]\nenabled = false\n",
    );
    fleet
        .apply(&["--agent", "reviewer"])
        .assert_ok("apply of the reviewer");
    let observer = versions(&fleet);
    assert!(
        observer.contains_key("Deployment/agent-observer"),
        "{observer:?}"
    );
    let unknown = fleet.run(&["plan", "--agent", "observr"]);
    assert_eq!(unknown.code, 1);
    assert!(unknown.stderr.contains("there is no agent `observr` in the definition or in the cluster (agents: devops, observer, reviewer)"), "{}", unknown.stderr);
    fleet
        .apply(&["--agent", "observer"])
        .assert_ok("apply pruning the observer");
    let pruned = versions(&fleet);
    assert!(
        !pruned
            .keys()
            .any(|object| object.ends_with("agent-observer")),
        "{pruned:?}"
    );
    // Its consumer is no agent's now, and the ApplySet parent still lists
    // its kinds: an untargeted apply removes the one and shrinks the other
    // (a change of the definition, not drift).
    let plan = fleet.run(&["plan"]);
    assert!(
        plan.stdout.contains("0 to add, 1 to change, 1 to destroy"),
        "{}",
        plan.stdout
    );
    assert!(
        !plan.stdout.contains("changed outside fleet"),
        "{}",
        plan.stdout
    );
    fleet.apply(&[]).assert_ok("untargeted apply");
    fleet.assert_plan_empty();
}

/// What `fleet init` writes is a fleet that applies as it is, and the next
/// plan is empty.
#[tokio::test]
async fn an_initialised_fleet_applies_and_converges() {
    let env = TestEnv::new("init").await;
    let started = tempfile::tempdir().unwrap();
    let namespace = format!("{}-f", env.namespace);
    let init = std::process::Command::new(env!("CARGO_BIN_EXE_fleet"))
        .args(["init", "--namespace", &namespace])
        .arg(started.path())
        .output()
        .unwrap();
    assert!(init.status.success(), "{init:?}");
    // Its stream named as the example's, which the tests make private to
    // each fleet (one NATS server holds every test's streams).
    let definition = std::fs::read_to_string(started.path().join("fleet.toml"))
        .unwrap()
        .replace("[streams.tasks]", "[streams.agent-tasks]")
        .replace("stream = \"tasks\"", "stream = \"agent-tasks\"");
    assert!(definition.contains("[streams.agent-tasks]"), "{definition}");
    let fleet = FleetDir::with_definition(&namespace, &definition);
    fleet.set_environment("");
    let plan = fleet.run(&["plan"]);
    plan.assert_ok("plan");
    assert!(
        plan.stdout
            .contains("apply rolls the agents out in 2 waves ([rollout]): triage; then coder"),
        "{}",
        plan.stdout
    );
    fleet.apply(&[]).assert_ok("apply");
    fleet.assert_plan_empty();
}
