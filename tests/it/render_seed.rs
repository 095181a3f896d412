//! The seed's own manifests (tests/fixtures/seed/, transcribed from the
//! document fleet was born from) must come out of the example fleet field for
//! field: every field the seed sets is rendered with the seed's value. What
//! fleet adds (its ownership labels, the `restricted` Pod Security hardening)
//! and the differences it makes on purpose are listed and explained here.

use std::path::Path;

use fleet::definition::{load, load_str};
use fleet::load::DirectoryFiles;
use fleet::render::{DesiredObject, render};
use serde_json::Value;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn seed(name: &str) -> Value {
    let text = std::fs::read_to_string(repo().join("tests/fixtures/seed").join(name)).unwrap();
    serde_saphyr::from_str(&text).unwrap()
}

/// The example fleet without an environment: the seed's own values.
fn example_objects() -> Vec<DesiredObject> {
    let loaded = load(&repo().join("fleet.toml"), None).unwrap();
    assert_eq!(loaded.errors(), 0, "{:?}", loaded.diagnostics);
    render(&loaded.fleet.unwrap()).kubernetes
}

fn find<'a>(objects: &'a [DesiredObject], kind: &str, name: &str) -> &'a Value {
    &objects
        .iter()
        .find(|o| o.id.kind == kind && o.id.name == name)
        .unwrap_or_else(|| panic!("no {kind} {name} rendered"))
        .body
}

/// The `name` of every element, when each has a distinct one (containers,
/// volumes, ports, env): such lists are compared element by name, as
/// Kubernetes merges them.
fn names(items: &[Value]) -> Option<Vec<&str>> {
    let names: Vec<&str> = items
        .iter()
        .map(|item| item.get("name").and_then(Value::as_str))
        .collect::<Option<_>>()?;
    let distinct: std::collections::BTreeSet<&&str> = names.iter().collect();
    (distinct.len() == names.len()).then_some(names)
}

/// Paths where `expected` has a value that `actual` lacks or differs from.
fn missing(expected: &Value, actual: &Value, path: &str, out: &mut Vec<String>) {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (key, value) in e {
                match a.get(key) {
                    Some(actual) => missing(value, actual, &format!("{path}.{key}"), out),
                    None => out.push(format!("{path}.{key}")),
                }
            }
        }
        (Value::Array(e), Value::Array(a)) if names(e).is_some() && names(a).is_some() => {
            let actual_names = names(a).unwrap();
            for (name, e) in names(e).unwrap().into_iter().zip(e) {
                let at = format!("{path}[{name}]");
                match actual_names.iter().position(|n| *n == name) {
                    Some(i) => missing(e, &a[i], &at, out),
                    None => out.push(at),
                }
            }
        }
        (Value::Array(e), Value::Array(a)) if e.len() == a.len() => {
            for (i, (e, a)) in e.iter().zip(a).enumerate() {
                missing(e, a, &format!("{path}[{i}]"), out);
            }
        }
        _ if expected == actual => {}
        _ => out.push(format!("{path}: seed {expected}, rendered {actual}")),
    }
}

/// (missing from or different in the rendering, added by the rendering)
fn compare(seed: &Value, rendered: &Value) -> (Vec<String>, Vec<String>) {
    let mut absent = Vec::new();
    let mut added = Vec::new();
    missing(seed, rendered, "", &mut absent);
    missing(rendered, seed, "", &mut added);
    // A value that differs shows on both sides; report it once, as absent.
    added.retain(|a| !a.contains(": seed "));
    (absent, added)
}

const OWNERSHIP: [&str; 2] = [
    ".metadata.labels.app.kubernetes.io/managed-by",
    ".metadata.labels.applyset.kubernetes.io/part-of",
];

/// What fleet adds to the seed's pod so that it meets the `restricted` Pod
/// Security Standard (the seed's pod is refused in a namespace enforcing it:
/// `allowPrivilegeEscalation != false`, `unrestricted capabilities`,
/// `seccompProfile`), and a read-only root filesystem with a writable /tmp.
const HARDENING: [&str; 4] = [
    ".spec.template.spec.containers[agent].securityContext",
    ".spec.template.spec.containers[agent].volumeMounts[tmp]",
    ".spec.template.spec.securityContext.seccompProfile",
    ".spec.template.spec.volumes[tmp]",
];

#[test]
fn devops_deployment_is_the_seeds() {
    let objects = example_objects();
    let (absent, added) = compare(
        &seed("deployment.yaml"),
        find(&objects, "Deployment", "agent-devops"),
    );
    // The seed's devops agent also has an autoscaler: fleet leaves the replica
    // count to it instead of resetting it to 1 on every apply (the API
    // server still creates the Deployment with 1 replica, the seed's value).
    assert_eq!(absent, [".spec.replicas"]);
    let mut expected: Vec<&str> = OWNERSHIP.into_iter().chain(HARDENING).collect();
    expected.sort();
    let mut added = added;
    added.sort();
    assert_eq!(added, expected);
}

#[test]
fn devops_pod_is_hardened_to_the_restricted_standard() {
    let objects = example_objects();
    let pod = &find(&objects, "Deployment", "agent-devops")["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(
        container["securityContext"],
        serde_json::json!({
            "allowPrivilegeEscalation": false,
            "capabilities": { "drop": ["ALL"] },
            "readOnlyRootFilesystem": true,
        })
    );
    assert_eq!(
        pod["securityContext"]["seccompProfile"],
        serde_json::json!({ "type": "RuntimeDefault" })
    );
    // The seed's runAsNonRoot stays (restricted requires it).
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    let tmp = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "tmp")
        .unwrap();
    assert_eq!(tmp["emptyDir"], serde_json::json!({}));
    assert!(
        container["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["name"] == "tmp" && m["mountPath"] == "/tmp")
    );
}

#[test]
fn the_namespace_enforces_the_restricted_standard() {
    let objects = example_objects();
    let labels = &find(&objects, "Namespace", "agent-system")["metadata"]["labels"];
    for mode in ["enforce", "warn", "audit"] {
        assert_eq!(
            labels[format!("pod-security.kubernetes.io/{mode}")],
            "restricted"
        );
    }
}

#[test]
fn devops_autoscaler_is_the_seeds() {
    let objects = example_objects();
    let (absent, added) = compare(
        &seed("hpa.yaml"),
        find(&objects, "HorizontalPodAutoscaler", "agent-devops-hpa"),
    );
    assert!(absent.is_empty(), "{absent:#?}");
    // fleet labels every agent object with its role and tier.
    assert_eq!(added, [".metadata.labels"]);
}

#[test]
fn devops_network_policy_is_the_seeds() {
    let objects = example_objects();
    let (absent, added) = compare(
        &seed("networkpolicy.yaml"),
        find(&objects, "NetworkPolicy", "agent-devops-network"),
    );
    assert!(absent.is_empty(), "{absent:#?}");
    assert_eq!(added, [".metadata.labels"]);
}

#[test]
fn service_monitor_is_the_seeds() {
    let objects = example_objects();
    let (absent, added) = compare(
        &seed("servicemonitor.yaml"),
        find(&objects, "ServiceMonitor", "agent-metrics"),
    );
    assert!(absent.is_empty(), "{absent:#?}");
    assert_eq!(added, [".metadata.labels"]);
}

#[test]
fn services_are_selected_by_the_service_monitor() {
    let objects = example_objects();
    let service = find(&objects, "Service", "agent-devops");
    assert_eq!(service["metadata"]["labels"]["agent.ceo/monitored"], "true");
    assert_eq!(service["spec"]["ports"][0]["name"], "metrics");
    assert_eq!(service["spec"]["selector"]["app"], "agent-devops");
}

#[test]
fn cognitive_agents_get_the_seeds_affinity_and_zone_spread() {
    let fleet = r#"
[fleet]
name = "demo"
namespace = "agent-system"
[defaults]
image = "gcr.io/agent-ceo/agent-runtime:1.0.0"
nats_url = "nats://nats.agent-system.svc:4222"
[agents.architect]
tier = "operations"
profile = "cognitive"
"#;
    let files = DirectoryFiles {
        base_dir: repo().into(),
    };
    let loaded = load_str(Path::new("fleet.toml"), fleet, None, None, &files);
    assert_eq!(loaded.errors(), 0, "{:?}", loaded.diagnostics);
    let objects = render(&loaded.fleet.unwrap()).kubernetes;
    let pod = &find(&objects, "Deployment", "agent-architect")["spec"]["template"]["spec"];
    let placement = seed("placement.yaml");
    assert_eq!(pod["affinity"], placement["affinity"]);
    assert_eq!(
        pod["topologySpreadConstraints"],
        placement["topologySpreadConstraints"]
    );
    // The spread selects pods by tier, so the pods carry it.
    let labels =
        &find(&objects, "Deployment", "agent-architect")["spec"]["template"]["metadata"]["labels"];
    assert_eq!(labels["agent.ceo/tier"], "operations");
    // And the profile's requests and limits are the seed's.
    let resources = &pod["containers"][0]["resources"];
    assert_eq!(resources["requests"]["memory"], "2Gi");
    assert_eq!(resources["limits"]["cpu"], "4000m");
}
