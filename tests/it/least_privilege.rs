//! Least privilege: a CI identity holding exactly what `fleet rbac` prints.
//! Each test makes an x509 user of its own (a client certificate signed by
//! the control plane's CA), binds the printed rights as the admin, and runs
//! fleet as that user. The fleet's namespace is made by the admin and fleet
//! told not to manage it, so the identity is confined to the namespace: a
//! Role, no ClusterRole.

use std::time::Duration;

use crate::support::{self, FleetDir, TestEnv, X509User, eventually, kubectl_apply};
use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;

const UNMANAGED: &str = "[fleet]\nmanage_namespace = false\n";

/// The example fleet in the test's own namespace (made by the admin), and
/// a fresh user holding what `fleet rbac --for PURPOSE` prints, nothing more.
async fn fleet_and_user(env: &TestEnv, purpose: &str) -> (FleetDir, X509User) {
    let fleet = FleetDir::example(&env.namespace);
    fleet.set_environment(UNMANAGED);
    let user = X509User::new(&format!("{}-{purpose}", env.namespace));
    let rbac = fleet.run(&["rbac", "--for", purpose, "--user", &user.name]);
    rbac.assert_ok("fleet rbac");
    assert!(
        !rbac.stdout.contains("kind: ClusterRole"),
        "a namespace fleet does not manage needs no cluster-wide rights:\n{}",
        rbac.stdout
    );
    kubectl_apply(&rbac.stdout);
    // The authorizer sees new bindings through its cache.
    eventually(
        "the user's Role to take effect",
        Duration::from_secs(20),
        || async {
            user.can("list", "deployments.apps", &env.namespace)
                .then_some(())
        },
    )
    .await;
    (fleet, user)
}

#[tokio::test]
async fn apply_with_exactly_the_printed_rights_in_a_namespace_fleet_does_not_manage() {
    let env = TestEnv::new("lp-apply").await;
    let (fleet, user) = fleet_and_user(&env, "apply").await;
    assert!(!user.can("list", "namespaces", "default"));

    let plan = fleet.run_as(&user, &["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 2, "{}{}", plan.stdout, plan.stderr);
    assert!(!plan.stdout.contains("lower fidelity"), "{}", plan.stdout);
    assert!(!plan.stdout.contains("+ Namespace"), "{}", plan.stdout);
    assert!(plan.stdout.contains("  + Deployment"), "{}", plan.stdout);

    let applied = fleet.run_as(&user, &["apply", "--auto-approve", "--timeout", "90s"]);
    applied.assert_ok("apply as the CI user");
    assert!(applied.stdout.contains("rolled out"), "{}", applied.stdout);

    let again = fleet.run_as(&user, &["plan", "--detailed-exitcode"]);
    assert_eq!(again.code, 0, "{}{}", again.stdout, again.stderr);
    assert!(again.stdout.contains("No changes."), "{}", again.stdout);
}

#[tokio::test]
async fn plan_rights_plan_and_apply_is_refused_naming_the_verb() {
    let env = TestEnv::new("lp-plan").await;
    let (fleet, user) = fleet_and_user(&env, "plan").await;

    // Everything is new, and a dry run of a create needs `create`: plan
    // shows the objects as rendered and says so.
    let plan = fleet.run_as(&user, &["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 2, "{}{}", plan.stdout, plan.stderr);
    assert!(plan.stdout.contains("  + Deployment"), "{}", plan.stdout);
    assert!(
        plan.stdout.contains("Note: lower fidelity: ")
            && plan.stdout.contains("create deployments"),
        "{}",
        plan.stdout
    );

    // Plan rights are no apply rights: refused at its first write (the
    // deploy lock's Lease), naming the verb, before any object is touched.
    let refused = fleet.run_as(&user, &["apply", "--auto-approve"]);
    assert_eq!(refused.code, 1, "{}{}", refused.stdout, refused.stderr);
    assert!(
        refused
            .stderr
            .contains(&format!("User \"{}\" cannot create resource", user.name)),
        "{}",
        refused.stderr
    );
    let deployments: Api<Deployment> = Api::namespaced(env.kube.clone(), &env.namespace);
    assert!(
        deployments
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );

    // Once the admin has applied, a change is dry-run at full fidelity.
    fleet.apply(&["--no-wait"]).assert_ok("apply as the admin");
    fleet.set_environment(&format!(
        "{UNMANAGED}[agents.devops]\nimage = \"gcr.io/agent-ceo/agent-runtime:1.4.3\"\n"
    ));
    let plan = fleet.run_as(&user, &["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 2, "{}{}", plan.stdout, plan.stderr);
    assert!(!plan.stdout.contains("lower fidelity"), "{}", plan.stdout);
    assert!(
        plan.stdout
            .contains("Plan: 0 to add, 1 to change, 0 to destroy."),
        "{}",
        plan.stdout
    );
}

#[tokio::test]
async fn read_only_rights_plan_at_lower_fidelity_and_see_the_change() {
    let env = TestEnv::new("lp-read-only").await;
    let (fleet, user) = fleet_and_user(&env, "read-only").await;
    assert!(!user.can("patch", "deployments.apps", &env.namespace));
    fleet.apply(&["--no-wait"]).assert_ok("apply as the admin");

    // Right after an apply, the live objects prove themselves unchanged,
    // which needs no right to write: nothing is dry-run, and the plan is at
    // full fidelity.
    let plan = fleet.run_as(&user, &["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "{}{}", plan.stdout, plan.stderr);
    assert!(plan.stdout.contains("No changes."), "{}", plan.stdout);
    assert!(!plan.stdout.contains("lower fidelity"), "{}", plan.stdout);

    fleet.set_environment(&format!(
        "{UNMANAGED}[agents.devops]\nimage = \"gcr.io/agent-ceo/agent-runtime:1.4.3\"\n"
    ));
    let plan = fleet.run_as(&user, &["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 2, "{}{}", plan.stdout, plan.stderr);
    assert!(
        plan.stdout
            .contains("Plan: 0 to add, 1 to change, 0 to destroy."),
        "{}",
        plan.stdout
    );
    assert!(plan.stdout.contains("patch deployments"), "{}", plan.stdout);
    assert!(
        plan.stdout
            .contains(&format!("  ~ Deployment {}/agent-devops", env.namespace)),
        "{}",
        plan.stdout
    );
    let diff: Vec<&str> = plan
        .stdout
        .lines()
        .filter(|l| {
            l.strip_prefix("      ")
                .is_some_and(|rest| rest.starts_with('-') || rest.starts_with('+'))
        })
        .collect();
    assert_eq!(diff.len(), 2, "{}", plan.stdout);
    assert!(diff[0].contains("image: gcr.io/agent-ceo/agent-runtime:latest"));
    assert!(diff[1].contains("image: gcr.io/agent-ceo/agent-runtime:1.4.3"));

    // The note is in every format.
    let json = fleet.run_as(&user, &["plan", "--format", "json"]);
    json.assert_ok("plan --format json");
    let json: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert!(
        json["notes"][0]
            .as_str()
            .unwrap()
            .starts_with("lower fidelity: "),
        "{}",
        json["notes"]
    );
    let markdown = fleet.run_as(&user, &["plan", "--format", "markdown"]);
    assert!(
        markdown.stdout.contains("lower fidelity: "),
        "{}",
        markdown.stdout
    );

    // No write verb at all: refused at the first write, the deploy lock.
    let refused = fleet.run_as(&user, &["apply", "--auto-approve"]);
    assert_eq!(refused.code, 1, "{}{}", refused.stdout, refused.stderr);
    assert!(
        refused.stderr.contains("cannot update resource \"leases\""),
        "{}",
        refused.stderr
    );
}

#[tokio::test]
async fn a_missing_namespace_fleet_does_not_manage_is_a_clear_error() {
    let env = TestEnv::new("lp-missing").await;
    let fleet = FleetDir::example(&format!("{}-absent", env.namespace));
    fleet.set_environment(UNMANAGED);
    let plan = fleet.run(&["plan"]);
    assert_eq!(plan.code, 1, "{}{}", plan.stdout, plan.stderr);
    assert!(
        plan.stderr
            .contains(&format!("namespace {} does not exist", fleet.namespace))
            && plan.stderr.contains("manage_namespace = false"),
        "{}",
        plan.stderr
    );
}

#[tokio::test]
async fn a_role_granting_rights_the_identity_lacks_is_blocked_naming_them() {
    let env = TestEnv::new("lp-escalate").await;
    let (fleet, user) = fleet_and_user(&env, "apply").await;
    // The devops agent is now to read Secrets, which the CI identity may
    // not: the API server refuses to let it grant that, even in a dry run.
    fleet.set_environment(&format!(
        "{UNMANAGED}[agents.devops]\nrbac = [{{ api_groups = [\"\"], resources = [\"secrets\"], verbs = [\"get\"] }}]\n"
    ));
    let plan = fleet.run_as(&user, &["plan", "--format", "json"]);
    plan.assert_ok("plan");
    let json: serde_json::Value = serde_json::from_str(&plan.stdout).unwrap();
    let blocked: Vec<&serde_json::Value> = json["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| !c["blocked"].is_null())
        .collect();
    assert_eq!(blocked.len(), 1, "{json:#}");
    assert_eq!(blocked[0]["target"]["kind"], "Role", "{json:#}");
    assert_eq!(json["summary"]["blocked"], 1, "{json:#}");
    let reason = blocked[0]["blocked"]["reason"].as_str().unwrap();
    assert!(
        reason.contains(&format!("user {}", user.name)) && reason.contains("lacks: get secrets"),
        "{reason}"
    );
    let text = fleet.run_as(&user, &["plan"]);
    assert!(
        text.stdout.contains("  # blocked: ")
            && text
                .stdout
                .contains("1 change is blocked: 1 cannot be made as planned."),
        "{}",
        text.stdout
    );

    let refused = fleet.run_as(&user, &["apply", "--auto-approve"]);
    assert_eq!(refused.code, 1, "{}{}", refused.stdout, refused.stderr);
    assert!(refused.stderr.contains("get secrets"), "{}", refused.stderr);
    let deployments: Api<Deployment> = Api::namespaced(env.kube.clone(), &env.namespace);
    assert!(
        deployments
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty(),
        "nothing was written"
    );
}

#[tokio::test]
async fn a_destroy_the_identity_may_not_make_is_blocked() {
    let env = TestEnv::new("lp-delete").await;
    let (fleet, user) = fleet_and_user(&env, "plan").await;
    assert!(!user.can("delete", "deployments.apps", &env.namespace));
    fleet.apply(&["--no-wait"]).assert_ok("apply as the admin");
    // The observer goes: plan may dry-run every apply, but no deletion.
    fleet.set_environment(&format!("{UNMANAGED}[agents.observer]\nenabled = false\n"));
    let plan = fleet.run_as(&user, &["plan", "--format", "json"]);
    plan.assert_ok("plan");
    let json: serde_json::Value = serde_json::from_str(&plan.stdout).unwrap();
    let kubernetes_deletes: Vec<&serde_json::Value> = json["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["action"] == "delete" && c["target"]["system"] == "kubernetes")
        .collect();
    assert!(!kubernetes_deletes.is_empty(), "{json:#}");
    for delete in &kubernetes_deletes {
        let reason = delete["blocked"]["reason"].as_str().unwrap_or_default();
        assert!(
            reason.contains("this identity may not delete"),
            "{delete:#}"
        );
    }
    assert_eq!(
        json["summary"]["blocked"],
        kubernetes_deletes.len(),
        "{json:#}"
    );
    // The admin may: nothing blocked.
    let admin = fleet.run(&["plan", "--format", "json"]);
    let admin: serde_json::Value = serde_json::from_str(&admin.stdout).unwrap();
    assert_eq!(admin["summary"]["blocked"], 0, "{admin:#}");
}

#[tokio::test]
async fn a_destroy_by_the_apply_identity_blocks_what_only_a_tear_down_deletes() {
    let env = TestEnv::new("lp-destroy").await;
    let (fleet, user) = fleet_and_user(&env, "apply").await;
    fleet.apply(&["--no-wait"]).assert_ok("apply as the admin");
    let plan = fleet.run_as(&user, &["plan", "--destroy", "--format", "json"]);
    plan.assert_ok("plan --destroy");
    let json: serde_json::Value = serde_json::from_str(&plan.stdout).unwrap();
    assert_eq!(json["destroy"], true, "{json:#}");
    let changes = json["changes"].as_array().unwrap();
    let blocked: Vec<&str> = changes
        .iter()
        .filter(|c| c["blocked"].is_object())
        .map(|c| c["target"]["kind"].as_str().unwrap_or_default())
        .collect();
    // `--for apply` deletes what the definition drops, but not the ApplySet
    // parent nor the lock's Lease.
    assert_eq!(blocked, ["Secret", "Lease"], "{json:#}");
    let parent = changes
        .iter()
        .find(|c| c["target"]["kind"] == "Secret")
        .unwrap();
    assert!(
        parent["blocked"]["reason"]
            .as_str()
            .unwrap()
            .contains("this identity may not delete secrets in namespace"),
        "{parent:#}"
    );
    // The namespace is the administrator's here: never fleet's to delete.
    assert!(
        json["notes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str().unwrap().contains(&format!(
                "namespace {} is left standing: fleet does not manage it",
                env.namespace
            ))),
        "{json:#}"
    );
    assert!(!changes.iter().any(|c| c["target"]["kind"] == "Namespace"));

    let refused = fleet.run_as(&user, &["destroy", "--auto-approve"]);
    assert_eq!(refused.code, 1, "{}{}", refused.stdout, refused.stderr);
    assert!(refused.stderr.contains("is blocked"), "{}", refused.stderr);
    let deployments: Api<Deployment> = Api::namespaced(env.kube.clone(), &env.namespace);
    assert_eq!(
        deployments
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .len(),
        3,
        "nothing was written"
    );
}

#[tokio::test]
async fn a_role_granting_more_is_blocked_before_its_namespace_exists() {
    let env = TestEnv::new("lp-escalate-new").await;
    // Nothing can be dry-run in a namespace that does not exist yet: the
    // plan asks the API server what this identity holds instead.
    let fleet = FleetDir::for_test(&env);
    fleet.set_environment(
        "[agents.devops]\nrbac = [{ api_groups = [\"\"], resources = [\"secrets\"], verbs = [\"get\"] }]\n",
    );
    let user = X509User::new(&format!("{}-wide", env.namespace));
    // Everything fleet does, cluster-wide, but reading Secrets other than
    // its ApplySet parent (nor escalate or bind).
    let verbs = "[get, list, watch, create, update, patch, delete]";
    kubectl_apply(&format!(
        "apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: {name}
rules:
- apiGroups: ['', apps, rbac.authorization.k8s.io, autoscaling, policy, networking.k8s.io, coordination.k8s.io, monitoring.coreos.com]
  resources: [namespaces, serviceaccounts, configmaps, services, pods, pods/log, deployments, replicasets, roles, rolebindings, horizontalpodautoscalers, poddisruptionbudgets, networkpolicies, leases, servicemonitors]
  verbs: {verbs}
- apiGroups: ['']
  resources: [secrets]
  resourceNames: [fleet-agent-ceo]
  verbs: [get, create, patch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: {name}
roleRef: {{ apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: {name} }}
subjects:
- {{ apiGroup: rbac.authorization.k8s.io, kind: User, name: {name} }}
",
        name = user.name
    ));
    eventually(
        "the user's ClusterRole to take effect",
        Duration::from_secs(20),
        || async {
            user.can("list", "deployments.apps", "default")
                .then_some(())
        },
    )
    .await;

    let plan = fleet.run_as(&user, &["plan", "--format", "json"]);
    let _ = support::control_plane()
        .kubectl()
        .args(["delete", "clusterrole,clusterrolebinding", &user.name])
        .output();
    plan.assert_ok("plan");
    let json: serde_json::Value = serde_json::from_str(&plan.stdout).unwrap();
    let blocked: Vec<&serde_json::Value> = json["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| !c["blocked"].is_null())
        .collect();
    assert_eq!(blocked.len(), 1, "{json:#}");
    assert_eq!(blocked[0]["target"]["kind"], "Role", "{json:#}");
    let reason = blocked[0]["blocked"]["reason"].as_str().unwrap();
    assert!(reason.contains("lacks: get secrets"), "{reason}");
    // The admin holds every right: nothing blocked.
    let admin = fleet.run(&["plan", "--format", "json"]);
    let admin: serde_json::Value = serde_json::from_str(&admin.stdout).unwrap();
    assert_eq!(admin["summary"]["blocked"], 0, "{admin:#}");
}
