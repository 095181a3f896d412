//! Pod Security by default: the fleet's Namespace enforces the `restricted`
//! Pod Security Standard, every agent of the example fleet rolls out in it,
//! and what falls below the level is refused, by `fleet validate` when fleet
//! knows the level, by the API server's Pod Security admission otherwise.

use std::path::Path;
use std::time::Instant;

use crate::support::{self, FleetDir, TestEnv};
use fleet::definition::load_str;
use fleet::load::DirectoryFiles;
use fleet::render::render;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod, ServiceAccount};
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

const ENFORCE: &str = "pod-security.kubernetes.io/enforce";

#[tokio::test]
async fn every_agent_rolls_out_in_a_namespace_enforcing_restricted() {
    let env = TestEnv::new("pod-security-rollout").await;
    // fleet creates and owns this namespace; its labels come from
    // `[fleet] pod_security`, here the default.
    let fleet = FleetDir::for_test(&env);

    let started = Instant::now();
    let applied = fleet.apply(&[]);
    applied.assert_ok("apply into a namespace enforcing restricted");
    eprintln!(
        "apply with rollout wait into a restricted namespace: {:.1}s",
        started.elapsed().as_secs_f64()
    );

    let namespace = Api::<Namespace>::all(env.kube.clone())
        .get(&fleet.namespace)
        .await
        .unwrap();
    let labels = namespace.metadata.labels.unwrap_or_default();
    for mode in ["enforce", "warn", "audit"] {
        assert_eq!(
            labels
                .get(&format!("pod-security.kubernetes.io/{mode}"))
                .map(String::as_str),
            Some("restricted"),
            "{labels:?}"
        );
    }

    let deployments: Api<Deployment> = Api::namespaced(env.kube.clone(), &fleet.namespace);
    let pods: Api<Pod> = Api::namespaced(env.kube.clone(), &fleet.namespace);
    for role in ["devops", "reviewer", "observer"] {
        let name = format!("agent-{role}");
        assert!(
            applied.stdout.lines().any(|l| l
                .contains(&format!("Deployment {}/{name}", fleet.namespace))
                && l.contains("rolled out")),
            "{name} did not roll out:\n{}",
            applied.stdout
        );
        let deployment = deployments.get(&name).await.unwrap();
        let wanted = deployment.spec.replicas.unwrap_or(1);
        let status = deployment.status.unwrap();
        assert_eq!(status.available_replicas, Some(wanted), "{name}");
        // The pods were admitted: they exist, hardened as rendered.
        let admitted = pods
            .list(&ListParams::default().labels(&format!("app={name}")))
            .await
            .unwrap()
            .items;
        assert_eq!(admitted.len() as i32, wanted, "pods of {name}");
        for pod in admitted {
            let spec = pod.spec.unwrap();
            let container = spec.containers[0].security_context.clone().unwrap();
            assert_eq!(container.allow_privilege_escalation, Some(false));
            assert_eq!(container.read_only_root_filesystem, Some(true));
        }
    }
    fleet.assert_plan_empty();
}

#[tokio::test]
async fn an_agent_opting_out_below_the_namespace_level_is_refused() {
    let env = TestEnv::new("pod-security-refused").await;
    let fleet = FleetDir::for_test(&env);
    fleet.set_environment("[agents.devops.security]\nallow_privilege_escalation = true\n");

    let plan = fleet.run(&["plan"]);
    assert_eq!(plan.code, 1, "{}{}", plan.stdout, plan.stderr);
    assert!(
        plan.stderr.contains(
            "agent `devops` sets `allow_privilege_escalation = true`, which Pod Security level `restricted` forbids"
        ),
        "{}",
        plan.stderr
    );
    assert!(
        plan.stderr.contains("environments/test.toml:7:30"),
        "{}",
        plan.stderr
    );
    // Nothing was created: validation stops before the cluster is read.
    let namespaces: Api<Namespace> = Api::all(env.kube.clone());
    assert!(
        namespaces
            .get_opt(&fleet.namespace)
            .await
            .unwrap()
            .is_none()
    );

    // The same opt-out where the namespace allows it is fine.
    fleet.set_environment(
        "[fleet]\npod_security = \"baseline\"\n[agents.devops.security]\nallow_privilege_escalation = true\n",
    );
    let validated = fleet.run(&["validate"]);
    validated.assert_ok("validate with the namespace at baseline");
}

/// The pod template of `deployment` as a Pod named `name`, for a dry run.
fn pod_from(deployment: &Value, name: &str) -> Pod {
    let template = &deployment["spec"]["template"];
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": { "name": name, "labels": template["metadata"]["labels"] },
        "spec": template["spec"],
    }))
    .unwrap()
}

/// The example fleet's devops Deployment, rendered with `overlay` as the
/// environment file.
fn devops_deployment(namespace: &str, overlay: &str) -> Value {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fleet_text = std::fs::read_to_string(root.join("fleet.toml")).unwrap();
    let overlay = format!("[environment]\nnamespace = \"{namespace}\"\n{overlay}");
    let files = DirectoryFiles {
        base_dir: root.into(),
    };
    let loaded = load_str(
        &root.join("fleet.toml"),
        &fleet_text,
        Some((Path::new("environments/test.toml"), &overlay)),
        Some("test"),
        &files,
    );
    assert_eq!(loaded.errors(), 0, "{:?}", loaded.diagnostics);
    render(&loaded.fleet.unwrap())
        .kubernetes
        .into_iter()
        .find(|o| o.id.kind == "Deployment" && o.id.name == "agent-devops")
        .unwrap()
        .body
}

/// The other side of the rollout test: this control plane does enforce
/// `restricted`, so a pod spec below it (the seed's own, or an agent's that
/// opted out) is refused, and fleet's default one is admitted.
#[tokio::test]
async fn the_api_server_refuses_pods_below_restricted() {
    let env = TestEnv::new("pod-security-admission").await;
    Api::<Namespace>::all(env.kube.clone())
        .patch(
            &env.namespace,
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "labels": { ENFORCE: "restricted" } } })),
        )
        .await
        .unwrap();
    // Admission looks the pod's ServiceAccount up before Pod Security does.
    let account: ServiceAccount =
        serde_json::from_value(json!({ "metadata": { "name": "agent-devops" } })).unwrap();
    env.api::<ServiceAccount>()
        .create(&PostParams::default(), &account)
        .await
        .unwrap();
    let pods: Api<Pod> = env.api();
    let dry_run = PostParams {
        dry_run: true,
        ..PostParams::default()
    };

    let hardened = devops_deployment(&env.namespace, "");
    pods.create(&dry_run, &pod_from(&hardened, "hardened"))
        .await
        .unwrap_or_else(|err| panic!("fleet's default pod was refused: {err}"));

    let seed_text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/seed/deployment.yaml"),
    )
    .unwrap();
    let seed: Value = serde_saphyr::from_str(&seed_text).unwrap();
    let opted_out = devops_deployment(
        &env.namespace,
        "[fleet]\npod_security = \"baseline\"\n[agents.devops.security]\nallow_privilege_escalation = true\n",
    );
    for (what, deployment, violations) in [
        (
            "the seed's pod",
            &seed,
            &[
                "allowPrivilegeEscalation != false",
                "unrestricted capabilities",
                "seccompProfile",
            ][..],
        ),
        (
            "an agent opted out to baseline",
            &opted_out,
            &["allowPrivilegeEscalation != false"][..],
        ),
    ] {
        let err = pods
            .create(&dry_run, &pod_from(deployment, "below-restricted"))
            .await
            .expect_err(&format!("{what} was admitted in a restricted namespace"));
        let kube::Error::Api(status) = err else {
            panic!("{what}: {err}")
        };
        assert_eq!(status.code, 403, "{what}: {status:?}");
        assert!(
            status
                .message
                .contains("violates PodSecurity \"restricted:"),
            "{what}: {}",
            status.message
        );
        for violation in violations {
            assert!(
                status.message.contains(violation),
                "{what}: {}",
                status.message
            );
        }
    }
}

/// A mutating admission that makes the pods fall below the namespace's
/// level: here a stand-in for a service-mesh injector adding an init
/// container that runs as root (Istio's `istio-init` does), as a
/// MutatingAdmissionPolicy bound to the given namespaces. Removed on drop.
struct MeshInjector {
    name: String,
}

impl MeshInjector {
    async fn install(env: &TestEnv, namespaces: &[&str]) -> MeshInjector {
        let name = format!("{}-mesh", env.namespace);
        let injector = MeshInjector { name: name.clone() };
        let policy = json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingAdmissionPolicy",
            "metadata": { "name": name },
            "spec": {
                "matchConstraints": { "resourceRules": [{
                    "apiGroups": [""], "apiVersions": ["v1"],
                    "operations": ["CREATE"], "resources": ["pods"],
                }]},
                "failurePolicy": "Fail",
                "reinvocationPolicy": "Never",
                "mutations": [{
                    "patchType": "ApplyConfiguration",
                    "applyConfiguration": { "expression": r#"Object{ spec: Object.spec{ initContainers: [
                        Object.spec.initContainers{ name: "mesh-init", image: "example.com/mesh-init:1",
                          securityContext: Object.spec.initContainers.securityContext{
                            allowPrivilegeEscalation: true, runAsUser: 0 } } ] } }"# },
                }],
            },
        });
        let binding = json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingAdmissionPolicyBinding",
            "metadata": { "name": name },
            "spec": {
                "policyName": name,
                "matchResources": { "namespaceSelector": { "matchExpressions": [{
                    "key": "kubernetes.io/metadata.name", "operator": "In", "values": namespaces,
                }]}},
            },
        });
        for object in [policy, binding] {
            env.control_plane
                .kubectl_stdin(&["apply", "--server-side"], &object.to_string());
        }
        // Policies take effect once the API server has loaded them: wait
        // until a dry-run pod in the test's own namespace comes back injected.
        let pods: Api<Pod> = env.api();
        let probe: Pod = serde_json::from_value(json!({
            "metadata": { "name": "probe" },
            "spec": { "containers": [{ "name": "probe", "image": "example.com/probe:1" }] },
        }))
        .unwrap();
        let dry_run = PostParams {
            dry_run: true,
            ..PostParams::default()
        };
        support::eventually(
            "the mesh injector to take effect",
            std::time::Duration::from_secs(30),
            || async {
                let pod = pods.create(&dry_run, &probe).await.ok()?;
                pod.spec?.init_containers.filter(|c| !c.is_empty())
            },
        )
        .await;
        injector
    }
}

impl Drop for MeshInjector {
    fn drop(&mut self) {
        let _ = support::control_plane()
            .kubectl()
            .args([
                "delete",
                "mutatingadmissionpolicybinding,mutatingadmissionpolicy",
                &self.name,
                "--ignore-not-found",
            ])
            .output();
    }
}

/// Pods that something fleet does not render (a mesh injector, a cluster's
/// admission policy) pushes below the namespace's level are refused by the
/// API server; the apply stops as soon as that happens, with the admission's
/// reason, instead of waiting out the rollout timeout.
#[tokio::test]
async fn pods_refused_by_pod_security_fail_the_apply_at_once() {
    let env = TestEnv::new("pod-security-injected").await;
    let fleet = FleetDir::for_test(&env);
    let _injector = MeshInjector::install(&env, &[&env.namespace, &fleet.namespace]).await;

    let started = Instant::now();
    let applied = fleet.apply(&[]);
    let took = started.elapsed();
    assert_eq!(applied.code, 1, "{}{}", applied.stdout, applied.stderr);
    assert!(
        applied
            .stderr
            .contains("did not roll out: FailedCreate: pods"),
        "{}",
        applied.stderr
    );
    assert!(
        applied
            .stderr
            .contains("runAsUser=0 (container \"mesh-init\" must not set runAsUser=0)"),
        "{}",
        applied.stderr
    );
    assert!(
        applied.stderr.contains("violates PodSecurity"),
        "{}",
        applied.stderr
    );
    eprintln!("refused rollout reported after {:.1}s", took.as_secs_f64());
}
