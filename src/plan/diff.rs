//! How a change is shown: the object without the server's bookkeeping, as
//! YAML, Secret values masked, and a unified diff of before and after.
//! Computed when planning, so a saved plan shows what was reviewed.

use serde_json::Value;

use crate::{ownership, redact};

/// The object without what is not the user's: server bookkeeping and status.
pub fn comparable(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(map) = object.as_object_mut() {
        // LIST items carry no apiVersion and kind; the identity is known anyway.
        // shift_remove: the others keep their order, so a diff shows only
        // what changed (swap_remove would move the last key into the hole).
        for key in ["apiVersion", "kind", "status"] {
            map.shift_remove(key);
        }
    }
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        for key in [
            "managedFields",
            "resourceVersion",
            "generation",
            "uid",
            "creationTimestamp",
            "selfLink",
        ] {
            metadata.shift_remove(key);
        }
        if let Some(annotations) = metadata
            .get_mut("annotations")
            .and_then(Value::as_object_mut)
        {
            // Written by the Deployment controller on every rollout.
            annotations.shift_remove("deployment.kubernetes.io/revision");
            // Fleet's own records of what it applied: they change with
            // every change and are no change of their own. Apply writes
            // them with the change (and records the inventory last).
            annotations.shift_remove(ownership::APPLIED_HASH_ANNOTATION);
            annotations.shift_remove(ownership::INVENTORY_HASH_ANNOTATION);
            // Where the last apply came from, recorded on the parent by
            // the apply that changes something.
            for key in crate::provenance::ANNOTATIONS {
                annotations.shift_remove(*key);
            }
            if annotations.is_empty() {
                metadata.shift_remove("annotations");
            }
        }
    }
    object
}

/// The object as a diff shows it: comparable, with Secret values masked.
fn shown(kind: &str, object: &Value) -> Value {
    let mut object = object.clone();
    // LIST items carry no kind, and masking goes by kind.
    if let Some(map) = object.as_object_mut() {
        map.insert("kind".into(), Value::from(kind));
    }
    comparable(&redact::object(&object))
}

/// Unified diff of two objects' YAML (either may be absent).
pub fn unified_diff(kind: &str, before: Option<&Value>, after: Option<&Value>) -> String {
    let yaml = |v: Option<&Value>| {
        v.map(|v| serde_saphyr::to_string(&shown(kind, v)).unwrap_or_default())
            .unwrap_or_default()
    };
    let (before, after) = (yaml(before), yaml(after));
    let diff = similar::TextDiff::from_lines(&before, &after);
    let mut out = String::new();
    for hunk in diff.unified_diff().context_radius(3).iter_hunks() {
        out.push_str(&hunk.to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn bookkeeping_is_not_a_change() {
        let live = json!({
            "metadata": { "name": "a", "resourceVersion": "1", "generation": 1, "managedFields": [],
                          "annotations": { "deployment.kubernetes.io/revision": "1" } },
            "spec": { "replicas": 2 }, "status": { "readyReplicas": 2 }
        });
        let dry_run = json!({ "metadata": { "name": "a", "resourceVersion": "1", "generation": 2 }, "spec": { "replicas": 2 } });
        assert_eq!(comparable(&live), comparable(&dry_run));
    }

    #[test]
    fn provenance_on_the_parent_is_not_a_change() {
        // The live parent records the last apply's commit; the dry run of
        // the rendered parent (which carries none) drops it.
        let annotations =
            crate::provenance::annotations(None, "octocat", "2026-01-02T03:04:05Z", None);
        let mut live = json!({ "metadata": { "name": "fleet-a", "annotations": {
            ownership::APPLYSET_TOOLING_ANNOTATION: "fleet/v0.1.0" } }, "type": "Opaque" });
        live["metadata"]["annotations"]
            .as_object_mut()
            .unwrap()
            .extend(annotations);
        live["metadata"]["annotations"][crate::provenance::COMMIT_ANNOTATION] = json!("abc");
        let dry_run = json!({ "metadata": { "name": "fleet-a", "annotations": {
            ownership::APPLYSET_TOOLING_ANNOTATION: "fleet/v0.1.0" } }, "type": "Opaque" });
        assert_eq!(comparable(&live), comparable(&dry_run));
    }

    #[test]
    fn diff_shows_the_changed_line() {
        let before = json!({ "spec": { "image": "agent:1", "replicas": 1 } });
        let after = json!({ "apiVersion": "apps/v1", "kind": "Deployment", "spec": { "image": "agent:2", "replicas": 1 } });
        let diff = unified_diff("Deployment", Some(&before), Some(&after));
        assert!(diff.contains("-  image: agent:1\n"), "{diff}");
        assert!(diff.contains("+  image: agent:2\n"), "{diff}");
    }

    #[test]
    fn key_order_survives_so_a_diff_shows_only_what_changed() {
        // A LIST item has no apiVersion and kind; a dry run's answer has.
        let live = json!({
            "metadata": { "name": "c", "resourceVersion": "7", "managedFields": [] },
            "data": { "agent.yaml": "a: 1\nb: 2\n" }
        });
        let after = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": { "name": "c", "resourceVersion": "7", "managedFields": [] },
            "data": { "agent.yaml": "a: 1\nb: 3\n" }
        });
        let diff = unified_diff("ConfigMap", Some(&live), Some(&after));
        let changed: Vec<&str> = diff
            .lines()
            .filter(|l| l.starts_with('+') || l.starts_with('-'))
            .collect();
        assert_eq!(changed.len(), 2, "{diff}");
    }

    #[test]
    fn secret_values_are_masked() {
        let secret = json!({ "kind": "Secret", "data": { "token": "c2VjcmV0" } });
        let diff = unified_diff("Secret", None, Some(&secret));
        assert!(!diff.contains("c2VjcmV0"), "{diff}");
        assert!(diff.contains("(sensitive value)"), "{diff}");
    }
}
