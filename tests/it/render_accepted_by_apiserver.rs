//! Every object rendered from the example fleet, in every environment, is
//! accepted by the real kube-apiserver (server-side dry-run create), and
//! every agent's pod by Pod Security admission at the level the fleet's
//! Namespace enforces.

use std::path::Path;

use crate::support::{self, TestEnv};
use fleet::definition::load_str;
use fleet::load::DirectoryFiles;
use fleet::render::{DesiredObject, render};
use k8s_openapi::api::core::v1::{Namespace, Pod, ServiceAccount};
use kube::Api;
use kube::api::{ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use serde_json::{Value, json};

#[tokio::test]
async fn every_rendered_object_is_accepted_by_the_apiserver() {
    let env = TestEnv::new("render-accepted").await;
    support::install_service_monitor_crd(env.control_plane);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fleet_text = std::fs::read_to_string(root.join("fleet.toml")).unwrap();

    let mut checked = 0;
    let mut service_monitors = 0;
    // (environment, Deployment, the level its Namespace enforces)
    let mut pods: Vec<(&str, DesiredObject, Value)> = Vec::new();
    for environment in ["local", "staging", "production"] {
        let overlay_path = root.join(format!("environments/{environment}.toml"));
        // Render into the test's namespace, so the dry run has one to check against.
        let overlay: String = std::fs::read_to_string(&overlay_path)
            .unwrap()
            .lines()
            .filter(|line| !line.starts_with("namespace ="))
            .map(|line| match line {
                "[environment]" => format!("[environment]\nnamespace = \"{}\"\n", env.namespace),
                other => format!("{other}\n"),
            })
            .collect();
        let files = DirectoryFiles {
            base_dir: root.into(),
        };
        let loaded = load_str(
            &root.join("fleet.toml"),
            &fleet_text,
            Some((&overlay_path, &overlay)),
            Some(environment),
            &files,
        );
        assert_eq!(
            loaded.errors(),
            0,
            "{environment}: {:?}",
            loaded.diagnostics
        );
        let rendered = render(&loaded.fleet.unwrap());
        let namespace = rendered
            .kubernetes
            .iter()
            .find(|o| o.id.kind == "Namespace")
            .unwrap();
        let level =
            namespace.body["metadata"]["labels"]["pod-security.kubernetes.io/enforce"].clone();

        for object in rendered.kubernetes {
            if object.id.kind == "Namespace" {
                // It exists (the test created it): its labels, the Pod
                // Security ones included, must be accepted.
                Api::<Namespace>::all(env.kube.clone())
                    .patch(
                        &object.id.name,
                        &PatchParams::apply("fleet").dry_run(),
                        &Patch::Apply(&object.body),
                    )
                    .await
                    .unwrap_or_else(|err| {
                        panic!("{environment}: apply of {} refused: {err}", object.id)
                    });
                continue;
            }
            dry_run_accepted(&env, environment, &object).await;
            if object.id.kind == "ServiceMonitor" {
                service_monitors += 1;
            }
            checked += 1;
            if object.id.kind == "Deployment" {
                pods.push((environment, object, level.clone()));
            }
        }
    }
    assert!(checked > 60, "only {checked} objects checked");
    assert_eq!(service_monitors, 3, "one ServiceMonitor per environment");

    // Pod Security admission checks pods, not Deployments: dry-run each
    // agent's pod in the namespace, labelled with the level fleet gives it.
    for (environment, deployment, level) in &pods {
        assert_eq!(level, "restricted", "{environment}");
        Api::<Namespace>::all(env.kube.clone())
            .patch(
                &env.namespace,
                &PatchParams::default(),
                &Patch::Merge(json!({ "metadata": { "labels": {
                    "pod-security.kubernetes.io/enforce": level,
                }}})),
            )
            .await
            .unwrap();
        pod_accepted(&env, environment, deployment).await;
    }
    assert!(pods.len() >= 9, "only {} pods checked", pods.len());
}

/// The server accepts `object` (server-side dry-run create, and apply with
/// fleet's field manager) and keeps every field of it.
async fn dry_run_accepted(env: &TestEnv, environment: &str, object: &DesiredObject) {
    let (group, version) = match object.id.api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", object.id.api_version.as_str()),
    };
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, &object.id.kind));
    let api: Api<DynamicObject> = Api::namespaced_with(env.kube.clone(), &env.namespace, &resource);
    let dynamic: DynamicObject = serde_json::from_value(object.body.clone()).unwrap();
    // Nothing fleet renders is dropped on the way: a structural schema (the
    // ServiceMonitor's is the Prometheus operator's real one) prunes fields
    // it does not know, silently.
    let assert_kept = |how: &str, stored: DynamicObject| {
        let pruned = support::pruned_fields(&object.body, &serde_json::to_value(stored).unwrap());
        assert!(
            pruned.is_empty(),
            "{environment}: the API server dropped fields of {} on {how}: {pruned:?}",
            object.id
        );
    };
    let created = api
        .create(
            &PostParams {
                dry_run: true,
                ..PostParams::default()
            },
            &dynamic,
        )
        .await
        .unwrap_or_else(|err| panic!("{environment}: {} refused: {err}", object.id));
    assert_kept("create", created);
    // Server-side apply takes it too, with fleet's field manager.
    let applied = api
        .patch(
            &object.id.name,
            &PatchParams::apply("fleet").dry_run(),
            &Patch::Apply(&object.body),
        )
        .await
        .unwrap_or_else(|err| panic!("{environment}: apply of {} refused: {err}", object.id));
    assert_kept("apply", applied);
}

/// Pod Security admission (and the Priority admission, for a pod naming a
/// PriorityClass) checks pods, not Deployments: dry-run the pod of
/// `deployment` in the test's namespace.
async fn pod_accepted(env: &TestEnv, environment: &str, deployment: &DesiredObject) {
    let template = &deployment.body["spec"]["template"];
    let name = &deployment.id.name;
    // Admission looks the pod's ServiceAccount up first.
    let account: ServiceAccount =
        serde_json::from_value(json!({ "metadata": { "name": name } })).unwrap();
    let _ = env
        .api::<ServiceAccount>()
        .create(&PostParams::default(), &account)
        .await;
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": { "name": name, "labels": template["metadata"]["labels"] },
        "spec": template["spec"],
    }))
    .unwrap();
    env.api::<Pod>()
        .create(
            &PostParams {
                dry_run: true,
                ..PostParams::default()
            },
            &pod,
        )
        .await
        .unwrap_or_else(|err| panic!("{environment}: the pod of Deployment {name} refused: {err}"));
}

/// A fleet using every pod, placement, availability, scaling and namespace
/// key renders objects the API server takes as they are.
#[tokio::test]
async fn every_pod_key_renders_objects_the_apiserver_accepts() {
    let env = TestEnv::new("every-pod-key-accepted").await;
    support::install_service_monitor_crd(env.control_plane);
    support::apply_test_priority_class();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let overlay = format!("[environment]\nnamespace = \"{}\"\n", env.namespace);
    let loaded = load_str(
        &root.join("tests/fixtures/every-pod-key.toml"),
        &support::every_pod_key_fleet(),
        Some((&root.join("environments/test.toml"), &overlay)),
        Some("test"),
        &DirectoryFiles {
            base_dir: root.into(),
        },
    );
    assert_eq!(loaded.errors(), 0, "{:?}", loaded.diagnostics);
    assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
    let rendered = render(&loaded.fleet.unwrap()).kubernetes;
    let mut kinds = std::collections::BTreeSet::new();
    let mut pods = Vec::new();
    for object in &rendered {
        kinds.insert(object.id.kind.as_str());
        if object.id.kind == "Namespace" {
            Api::<Namespace>::all(env.kube.clone())
                .patch(
                    &object.id.name,
                    &PatchParams::apply("fleet").dry_run(),
                    &Patch::Apply(&object.body),
                )
                .await
                .unwrap_or_else(|err| panic!("apply of {} refused: {err}", object.id));
            continue;
        }
        dry_run_accepted(&env, "every-pod-key", object).await;
        if object.id.kind == "Deployment" {
            pods.push(object);
        }
    }
    // At the level fleet's Namespace enforces.
    Api::<Namespace>::all(env.kube.clone())
        .patch(
            &env.namespace,
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "labels": {
                "pod-security.kubernetes.io/enforce": "restricted",
            }}})),
        )
        .await
        .unwrap();
    for deployment in pods {
        pod_accepted(&env, "every-pod-key", deployment).await;
    }
    for kind in [
        "Namespace",
        "Deployment",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
    ] {
        assert!(kinds.contains(kind), "no {kind} rendered: {kinds:?}");
    }
}

/// Every shape of network peer and port fleet takes renders a NetworkPolicy
/// the API server accepts (server-side dry-run create).
#[tokio::test]
async fn every_network_peer_and_port_shape_is_accepted_by_the_apiserver() {
    let env = TestEnv::new("render-network").await;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fleet_text = format!(
        r#"
[fleet]
name = "demo"
namespace = "{}"

[defaults]
image = "example.com/agent:1"
nats_url = "nats://nats:4222"

[agents.devops.network]
egress = [
  {{ to = [{{ pods = {{ app = "nats" }}, namespaces = {{ name = "nats" }} }}], ports = [4222] }},
  {{ to = [{{ cidr = "10.0.0.0/8", except = ["10.1.0.0/16"] }}, {{ cidr = "fd00::/8", except = ["fd12::/16"] }}], ports = ["8000-8100", "9000-9100/udp", {{ port = 7000, end_port = 7010 }}] }},
  {{ to = [{{ namespaces = {{}} }}], ports = [{{ port = 53, protocol = "UDP" }}, "53/tcp", {{ port = 3868, protocol = "SCTP" }}] }},
]

[agents.devops.network.ingress]
nats = {{ from = [{{ agent = "devops" }}, {{ pods = {{ app = "p" }}, namespaces = {{}} }}], ports = [{{ port = 9090 }}] }}
any = {{}}
"#,
        env.namespace
    );
    let files = DirectoryFiles {
        base_dir: root.into(),
    };
    let loaded = load_str(&root.join("fleet.toml"), &fleet_text, None, None, &files);
    assert_eq!(loaded.errors(), 0, "{:?}", loaded.diagnostics);
    let rendered = render(&loaded.fleet.unwrap());
    let policy = rendered
        .kubernetes
        .iter()
        .find(|o| o.id.kind == "NetworkPolicy")
        .expect("a NetworkPolicy");
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "networking.k8s.io",
        "v1",
        "NetworkPolicy",
    ));
    let object: DynamicObject = serde_json::from_value(policy.body.clone()).unwrap();
    let created =
        Api::<DynamicObject>::namespaced_with(env.kube.clone(), &env.namespace, &resource)
            .create(
                &PostParams {
                    dry_run: true,
                    ..PostParams::default()
                },
                &object,
            )
            .await
            .unwrap_or_else(|err| panic!("NetworkPolicy refused: {err}"));
    let stored = serde_json::to_value(&created).unwrap();
    assert_eq!(
        stored["spec"]["egress"][1]["ports"][1],
        json!({ "protocol": "UDP", "port": 9000, "endPort": 9100 })
    );
    assert_eq!(
        stored["spec"]["ingress"][1],
        json!({}),
        "a rule with no peers and no ports"
    );
}

/// fleet refuses exactly the scrape intervals the Prometheus operator's real
/// ServiceMonitor CRD refuses: `fleet validate` catches them, not the apply.
#[tokio::test]
async fn scrape_intervals_fleet_accepts_are_those_the_crd_accepts() {
    let env = TestEnv::new("scrape-intervals").await;
    support::install_service_monitor_crd(env.control_plane);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fleet_path = root.join("fleet.toml");
    let fleet_text = std::fs::read_to_string(&fleet_path).unwrap();
    let overlay_path = root.join("environments/test.toml");
    let files = DirectoryFiles {
        base_dir: root.into(),
    };
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "monitoring.coreos.com",
        "v1",
        "ServiceMonitor",
    ));
    let api: Api<DynamicObject> = Api::namespaced_with(env.kube.clone(), &env.namespace, &resource);
    let mut accepted = 0;
    for interval in [
        "30s",
        "1m30s",
        "2h",
        "1d12h",
        "1y2w3d4h5m6s7ms",
        "500ms",
        "0",
        "90",
        "1.5m",
        "30s1m",
        "1m1m",
        "1h30",
        "30 s",
        "30S",
    ] {
        let overlay = |interval: &str| {
            format!(
                "[environment]\nnamespace = \"{}\"\n\n[fleet.service_monitor]\ninterval = \"{interval}\"\n",
                env.namespace
            )
        };
        let loaded = load_str(
            &fleet_path,
            &fleet_text,
            Some((&overlay_path, &overlay(interval))),
            Some("test"),
            &files,
        );
        let fleet_accepts = loaded.errors() == 0;
        // The same ServiceMonitor fleet renders for a good interval, with
        // this one in its place.
        let good = load_str(
            &fleet_path,
            &fleet_text,
            Some((&overlay_path, &overlay("30s"))),
            Some("test"),
            &files,
        );
        let mut monitor = render(&good.fleet.unwrap())
            .kubernetes
            .into_iter()
            .find(|o| o.id.kind == "ServiceMonitor")
            .unwrap()
            .body;
        monitor["spec"]["endpoints"][0]["interval"] = json!(interval);
        let dynamic: DynamicObject = serde_json::from_value(monitor).unwrap();
        let server_accepts = match api
            .create(
                &PostParams {
                    dry_run: true,
                    ..PostParams::default()
                },
                &dynamic,
            )
            .await
        {
            Ok(_) => true,
            Err(kube::Error::Api(status)) if status.code == 422 => false,
            Err(err) => panic!("creating a ServiceMonitor with interval {interval:?}: {err}"),
        };
        assert_eq!(
            fleet_accepts,
            server_accepts,
            "interval {interval:?}: fleet {} it, the CRD {} it ({:?})",
            if fleet_accepts { "accepts" } else { "refuses" },
            if server_accepts { "accepts" } else { "refuses" },
            loaded.diagnostics
        );
        accepted += usize::from(fleet_accepts);
    }
    assert_eq!(accepted, 7);
}
