//! Hand additions: fields a hand edit (`kubectl set env`, `kubectl label`,
//! `kubectl edit` adding a port) put on an object fleet manages, beside
//! fleet's own. Server-side apply keeps another manager's fields, so a dry
//! run of fleet's body shows no change for them, yet they are drift: the
//! object is not what the definition says. Apply takes them over the way Flux
//! does (they move into fleet's managedFields entry, the hand edit's entry
//! goes) and then applies: fields fleet owns and does not send are removed.
//!
//! Pure: the field sets (managedFields `fieldsV1`) and the object without
//! the fields. Two fields are never taken, because removing them would undo
//! a deliberate operation rather than an edit: `.spec.replicas` (a scaled
//! Deployment fleet leaves to an autoscaler, or one fleet sets, which the
//! dry run already restores) and the `kubectl rollout restart` annotation
//! (removing it would restart the pods again).

use serde_json::{Map, Value};

use crate::managed_fields::ItemKey;
use crate::ownership;

/// Field paths never taken over (see the module's doc).
const KEPT: &[&[&str]] = &[
    &["f:spec", "f:replicas"],
    &[
        "f:spec",
        "f:template",
        "f:metadata",
        "f:annotations",
        "f:kubectl.kubernetes.io/restartedAt",
    ],
];

/// Managers whose Update entries record how an object was made before
/// fleet owned it (client-side `kubectl apply`, or a write before the API
/// server tracked fields): they hold every field, the server's defaults
/// included, so taking them would show defaults removed that come straight
/// back. Their claims on fleet's own fields are still released (a conflict
/// with them is drift), but nothing of theirs is taken.
const CREATION_RECORDS: &[&str] = &["before-first-apply", "kubectl-client-side-apply"];

/// Whether hand additions to objects of this kind are taken over: not to
/// the fleet's Namespace, which the platform around it labels too (Pod
/// Security admission, a service mesh's injection) and which fleet shares.
fn takes_over(kind: &Value) -> bool {
    kind != "Namespace"
}

/// The hand edits' entries of `object`: operation Update by one of
/// `imperative` managers, on the object itself (not a subresource), in the
/// apiVersion fleet applies.
fn hand_edits<'a>(
    object: &'a Value,
    imperative: &'a [String],
    api_version: &'a Value,
) -> impl Iterator<Item = &'a Value> + 'a {
    entries(object).filter(move |e| is_hand_edit(e, imperative) && &e["apiVersion"] == api_version)
}

fn entries(object: &Value) -> impl Iterator<Item = &Value> {
    object["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
}

/// An entry a hand edit wrote: an imperative manager's Update of the object
/// itself.
fn is_hand_edit(entry: &Value, imperative: &[String]) -> bool {
    entry["operation"] == "Update"
        && entry["subresource"].as_str().unwrap_or_default().is_empty()
        && entry["manager"]
            .as_str()
            .is_some_and(|m| imperative.iter().any(|i| i == m) && !CREATION_RECORDS.contains(&m))
}

/// What apply would take over and remove from `after` (a dry run's answer,
/// whose fleet entry holds exactly the fields fleet sends): the hand edits'
/// fields that neither fleet nor any other writer owns, with the managers
/// that own them. `None` when there are none.
pub fn hand_added(after: &Value, imperative: &[String]) -> Option<(Vec<String>, Value)> {
    if !takes_over(&after["kind"]) {
        return None;
    }
    let api_version = &after["apiVersion"];
    // Fields someone else also holds stay: fleet's (it sends them) and any
    // other writer's (taking a claim over does not remove what they hold).
    let mut held = Value::Object(Map::new());
    for entry in entries(after) {
        if !is_hand_edit(entry, imperative) || entry["apiVersion"] != *api_version {
            union(&mut held, &entry["fieldsV1"]);
        }
    }
    let mut managers = Vec::new();
    let mut added = Value::Object(Map::new());
    for entry in hand_edits(after, imperative, api_version) {
        let left = pruned(difference(&without_kept(&entry["fieldsV1"]), &held));
        if !is_empty(&left) {
            union(&mut added, &left);
            managers.push(entry["manager"].as_str().unwrap_or_default().to_string());
        }
    }
    if managers.is_empty() {
        return None;
    }
    managers.sort();
    managers.dedup();
    Some((managers, added))
}

/// Whether another writer's Update of the object itself holds a field
/// fleet's entry does not: a hand addition, if the writer is a hand edit.
/// For the proof of no change, which reads the live object alone: any
/// writer counts but a creation record, so the answer is yes whenever
/// [`hand_added`] could find something (the object is then dry-run and that
/// decides).
pub fn updated_beyond_fleet(live: &Value, desired: &Value) -> bool {
    if !takes_over(&desired["kind"]) {
        return false;
    }
    let api_version = &desired["apiVersion"];
    let fleets = entries(live)
        .find(|e| ownership::is_fleets_entry(e))
        .map(|e| &e["fieldsV1"]);
    entries(live)
        .filter(|e| {
            e["operation"] == "Update"
                && e["subresource"].as_str().unwrap_or_default().is_empty()
                && e["manager"] != ownership::FIELD_MANAGER
                && !e["manager"]
                    .as_str()
                    .is_some_and(|m| CREATION_RECORDS.contains(&m))
                && &e["apiVersion"] == api_version
        })
        .any(|entry| {
            let fields = without_kept(&entry["fieldsV1"]);
            let left = match fleets {
                Some(fleets) => difference(&fields, fleets),
                None => fields,
            };
            !is_empty(&pruned(left))
        })
}

/// The managedFields entries apply writes before applying: the hand edits'
/// entries of `managers` go, and their fields (but the kept ones) join
/// fleet's Apply entry for `api_version` (made if fleet has none). Entries
/// in another apiVersion are only removed: their field paths may differ.
pub fn taken_over(entries: &[Value], managers: &[String], api_version: &str) -> Vec<Value> {
    let is_taken = |e: &Value| {
        e["operation"] == "Update"
            && e["manager"]
                .as_str()
                .is_some_and(|m| managers.iter().any(|t| t == m))
    };
    let mut taken = Value::Object(Map::new());
    for entry in entries.iter().filter(|e| is_taken(e)) {
        let creation_record = entry["manager"]
            .as_str()
            .is_some_and(|m| CREATION_RECORDS.contains(&m));
        if entry["apiVersion"] == api_version
            && entry["subresource"].as_str().unwrap_or_default().is_empty()
            && !creation_record
        {
            union(&mut taken, &without_kept(&entry["fieldsV1"]));
        }
    }
    let mut kept: Vec<Value> = entries.iter().filter(|e| !is_taken(e)).cloned().collect();
    if is_empty(&taken) {
        return kept;
    }
    let fleets = kept
        .iter_mut()
        .find(|e| ownership::is_fleets_entry(e) && e["apiVersion"] == api_version);
    match fleets {
        Some(entry) => {
            let fields = entry
                .as_object_mut()
                .expect("a managedFields entry is an object")
                .entry("fieldsV1")
                .or_insert_with(|| Value::Object(Map::new()));
            union(fields, &taken);
        }
        None => kept.push(serde_json::json!({
            "manager": ownership::FIELD_MANAGER,
            "operation": "Apply",
            "apiVersion": api_version,
            "fieldsType": "FieldsV1",
            "fieldsV1": taken,
        })),
    }
    kept
}

/// `object` without the fields of `fields`: a leaf goes; a map or list item
/// whose own entry (`.`) is in the set goes once nothing else is left in it
/// (another writer's field keeps it).
pub fn without(object: &Value, fields: &Value) -> Value {
    let mut object = object.clone();
    remove(&mut object, fields);
    object
}

fn remove(object: &mut Value, fields: &Value) {
    let Some(fields) = fields.as_object() else {
        return;
    };
    for (path, node) in fields {
        if path == "." {
            continue;
        }
        let leaf = is_empty(node);
        let itself = node.get(".").is_some();
        let emptied = |child: &mut Value| {
            remove(child, node);
            itself && child.as_object().is_some_and(Map::is_empty)
        };
        if let Some(key) = path.strip_prefix("f:") {
            let Some(map) = object.as_object_mut() else {
                continue;
            };
            let gone = leaf || map.get_mut(key).is_some_and(emptied);
            if gone {
                map.shift_remove(key);
            }
            continue;
        }
        let Some(items) = object.as_array_mut() else {
            continue;
        };
        let Some(index) = item_index(items, path) else {
            continue;
        };
        if leaf || emptied(&mut items[index]) {
            items.remove(index);
        }
    }
}

/// The list item a field set path names: `k:{"name":"a"}` by its key
/// fields, `v:"x"` by its value, `i:2` by its place.
fn item_index(items: &[Value], path: &str) -> Option<usize> {
    if let Some(key) = ItemKey::parse(path) {
        return items.iter().position(|item| key.names(item));
    }
    if let Some(value) = path.strip_prefix("v:") {
        let value: Value = serde_json::from_str(value).ok()?;
        return items.iter().position(|item| *item == value);
    }
    let index: usize = path.strip_prefix("i:")?.parse().ok()?;
    (index < items.len()).then_some(index)
}

fn is_empty(fields: &Value) -> bool {
    fields.as_object().is_none_or(Map::is_empty)
}

/// `fields` without the paths in [`KEPT`].
fn without_kept(fields: &Value) -> Value {
    let mut fields = fields.clone();
    for path in KEPT {
        let (last, parents) = path.split_last().expect("a kept path is not empty");
        let mut node = Some(&mut fields);
        for key in parents {
            node = node.and_then(|n| n.get_mut(*key));
        }
        if let Some(map) = node.and_then(Value::as_object_mut) {
            map.shift_remove(*last);
        }
    }
    pruned(fields)
}

/// Drops what is no field to take: a map emptied by removing its children
/// (an empty map as a leaf is a field), and a lone `.` (a map or item whose
/// fields all stay: taking only its existence would change nothing).
fn prune(fields: &mut Value) -> bool {
    let Some(map) = fields.as_object_mut() else {
        return false;
    };
    if map.is_empty() {
        return false;
    }
    map.retain(|_, child| !prune(child));
    map.is_empty() || (map.len() == 1 && map.contains_key("."))
}

/// [`prune`]d, as a value.
fn pruned(mut fields: Value) -> Value {
    if prune(&mut fields) {
        return Value::Object(Map::new());
    }
    fields
}

/// Adds the paths of `other` to `into`.
fn union(into: &mut Value, other: &Value) {
    let (Some(into), Some(other)) = (into.as_object_mut(), other.as_object()) else {
        return;
    };
    for (path, node) in other {
        match into.get_mut(path) {
            Some(existing) => union(existing, node),
            None => {
                into.insert(path.clone(), node.clone());
            }
        }
    }
}

/// The paths of `fields` that `other` does not hold. A path `other` holds
/// with no children is the whole field: everything under it is held.
fn difference(fields: &Value, other: &Value) -> Value {
    let Some(fields) = fields.as_object() else {
        return Value::Object(Map::new());
    };
    let mut left = Map::new();
    for (path, node) in fields {
        match other.get(path) {
            None => {
                left.insert(path.clone(), node.clone());
            }
            Some(held) if is_empty(held) => {}
            Some(held) => {
                let rest = difference(node, held);
                if !is_empty(&rest) {
                    left.insert(path.clone(), rest);
                }
            }
        }
    }
    Value::Object(left)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn imperative() -> Vec<String> {
        [
            "kubectl-set",
            "kubectl-label",
            "kubectl-rollout",
            "kubectl-scale",
        ]
        .map(String::from)
        .to_vec()
    }

    /// A Deployment fleet applied, then `kubectl set env EXTRA=1`, `kubectl
    /// label extra=x`, `kubectl rollout restart` and `kubectl scale`.
    fn edited() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {
                "name": "agent-a",
                "labels": { "app": "a", "extra": "x" },
                "managedFields": [
                    { "manager": "fleet", "operation": "Apply", "apiVersion": "apps/v1", "fieldsType": "FieldsV1",
                      "fieldsV1": { "f:metadata": { "f:labels": { "f:app": {} } },
                        "f:spec": { "f:template": { "f:spec": { "f:containers": { "k:{\"name\":\"agent\"}": {
                          ".": {}, "f:name": {}, "f:env": { "k:{\"name\":\"A\"}": { ".": {}, "f:name": {}, "f:value": {} } } } } } } } } },
                    { "manager": "kubectl-set", "operation": "Update", "apiVersion": "apps/v1", "fieldsType": "FieldsV1",
                      "fieldsV1": { "f:spec": { "f:template": { "f:spec": { "f:containers": { "k:{\"name\":\"agent\"}": {
                          "f:env": { "k:{\"name\":\"EXTRA\"}": { ".": {}, "f:name": {}, "f:value": {} } } } } } } } } },
                    { "manager": "kubectl-label", "operation": "Update", "apiVersion": "apps/v1", "fieldsType": "FieldsV1",
                      "fieldsV1": { "f:metadata": { "f:labels": { "f:extra": {} } } } },
                    { "manager": "kubectl-rollout", "operation": "Update", "apiVersion": "apps/v1", "fieldsType": "FieldsV1",
                      "fieldsV1": { "f:spec": { "f:template": { "f:metadata": { "f:annotations": {
                          ".": {}, "f:kubectl.kubernetes.io/restartedAt": {} } } } } } },
                    { "manager": "kubectl-scale", "operation": "Update", "apiVersion": "apps/v1", "subresource": "scale",
                      "fieldsType": "FieldsV1", "fieldsV1": { "f:spec": { "f:replicas": {} } } },
                    { "manager": "kube-controller-manager", "operation": "Update", "apiVersion": "apps/v1", "subresource": "status",
                      "fieldsType": "FieldsV1", "fieldsV1": { "f:status": { "f:replicas": {} } } },
                ]
            },
            "spec": {
                "replicas": 3,
                "template": {
                    "metadata": { "annotations": { "kubectl.kubernetes.io/restartedAt": "2026-11-30T00:00:00Z" } },
                    "spec": { "containers": [{ "name": "agent", "env": [
                        { "name": "A", "value": "1" }, { "name": "EXTRA", "value": "1" }
                    ] }] }
                }
            }
        })
    }

    #[test]
    fn hand_added_fields_are_found_and_removed() {
        let after = edited();
        let (managers, fields) = hand_added(&after, &imperative()).expect("hand additions");
        // kubectl-rollout's only field is the restart annotation: kept (the
        // map `.` it also holds is no field of its own to remove).
        assert_eq!(managers, ["kubectl-label", "kubectl-set"]);
        let restored = without(&after, &fields);
        assert_eq!(restored["metadata"]["labels"], json!({ "app": "a" }));
        assert_eq!(
            restored["spec"]["template"]["spec"]["containers"][0]["env"],
            json!([{ "name": "A", "value": "1" }])
        );
        assert_eq!(restored["spec"]["replicas"], 3);
        assert_eq!(
            restored["spec"]["template"]["metadata"],
            after["spec"]["template"]["metadata"]
        );
        assert!(updated_beyond_fleet(&after, &after));
    }

    #[test]
    fn fields_another_writer_holds_stay() {
        let mut after = edited();
        // Another applier declares the same label: it stays theirs.
        after["metadata"]["managedFields"]
            .as_array_mut()
            .unwrap()
            .push(
                json!({ "manager": "other-tool", "operation": "Apply", "apiVersion": "apps/v1",
                          "fieldsV1": { "f:metadata": { "f:labels": { "f:extra": {} } } } }),
            );
        let (managers, fields) = hand_added(&after, &imperative()).unwrap();
        assert_eq!(managers, ["kubectl-set"]);
        assert_eq!(without(&after, &fields)["metadata"]["labels"]["extra"], "x");
    }

    #[test]
    fn only_kept_fields_are_no_hand_addition() {
        let mut after = edited();
        after["metadata"]["managedFields"]
            .as_array_mut()
            .unwrap()
            .retain(|e| e["manager"] != "kubectl-set" && e["manager"] != "kubectl-label");
        assert_eq!(hand_added(&after, &imperative()), None);
        assert!(!updated_beyond_fleet(&after, &after));
    }

    #[test]
    fn a_hand_edit_of_fleets_own_field_is_no_addition() {
        // kubectl-set changed fleet's env value A: the dry run restores it
        // (fleet's entry holds it again), nothing is left to take.
        let mut after = edited();
        after["metadata"]["managedFields"][1]["fieldsV1"] = json!({ "f:spec": { "f:template": { "f:spec": {
            "f:containers": { "k:{\"name\":\"agent\"}": { "f:env": { "k:{\"name\":\"A\"}": { "f:value": {} } } } } } } } });
        let (managers, _) = hand_added(&after, &imperative()).unwrap();
        assert_eq!(managers, ["kubectl-label"]);
    }

    #[test]
    fn apply_moves_the_hand_edits_fields_into_fleets_entry() {
        let live = edited();
        let entries = live["metadata"]["managedFields"].as_array().unwrap();
        let managers = ["kubectl-label".to_string(), "kubectl-set".to_string()];
        let written = taken_over(entries, &managers, "apps/v1");
        let names: Vec<&str> = written
            .iter()
            .map(|e| e["manager"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "fleet",
                "kubectl-rollout",
                "kubectl-scale",
                "kube-controller-manager"
            ]
        );
        let fleets = &written[0]["fieldsV1"];
        assert!(fleets["f:metadata"]["f:labels"].get("f:extra").is_some());
        assert!(fleets["f:metadata"]["f:labels"].get("f:app").is_some());
        let env = &fleets["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"agent\"}"]
            ["f:env"];
        assert!(
            env.get("k:{\"name\":\"EXTRA\"}").is_some() && env.get("k:{\"name\":\"A\"}").is_some()
        );
        // Without an entry of fleet's (adopting), one is made.
        let adopted: Vec<Value> = entries[1..].to_vec();
        let written = taken_over(&adopted, &managers, "apps/v1");
        let fleets = written.iter().find(|e| e["manager"] == "fleet").unwrap();
        assert_eq!(fleets["operation"], "Apply");
        assert!(
            fleets["fieldsV1"]["f:metadata"]["f:labels"]
                .get("f:extra")
                .is_some()
        );
    }

    #[test]
    fn the_namespace_keeps_what_others_add() {
        let mut namespace = edited();
        namespace["apiVersion"] = json!("v1");
        namespace["kind"] = json!("Namespace");
        for entry in namespace["metadata"]["managedFields"]
            .as_array_mut()
            .unwrap()
        {
            entry["apiVersion"] = json!("v1");
        }
        assert_eq!(hand_added(&namespace, &imperative()), None);
        assert!(!updated_beyond_fleet(&namespace, &namespace));
    }

    #[test]
    fn a_creation_record_is_released_but_not_taken() {
        let mut live = edited();
        live["metadata"]["managedFields"][2]["manager"] = json!("kubectl-client-side-apply");
        let mut imperative = imperative();
        imperative.push("kubectl-client-side-apply".into());
        let (managers, _) = hand_added(&live, &imperative).unwrap();
        assert_eq!(managers, ["kubectl-set"]);
        let entries = live["metadata"]["managedFields"].as_array().unwrap();
        let released = ["kubectl-client-side-apply".to_string()];
        let written = taken_over(entries, &released, "apps/v1");
        assert!(
            written
                .iter()
                .all(|e| e["manager"] != "kubectl-client-side-apply")
        );
        assert!(
            written[0]["fieldsV1"]["f:metadata"]["f:labels"]
                .get("f:extra")
                .is_none()
        );
    }

    #[test]
    fn list_items_are_named_by_key_value_or_place() {
        let object = json!({ "a": [ { "port": 80, "protocol": "TCP", "name": "x" }, { "port": 81, "protocol": "TCP" } ],
                             "b": ["x", "y"], "c": [1, 2, 3] });
        let fields = json!({
            "f:a": { "k:{\"port\":81,\"protocol\":\"TCP\"}": { ".": {}, "f:port": {}, "f:protocol": {} },
                     "k:{\"port\":80,\"protocol\":\"TCP\"}": { "f:name": {} } },
            "f:b": { "v:\"y\"": {} },
            "f:c": { "i:0": {} },
        });
        assert_eq!(
            without(&object, &fields),
            json!({ "a": [ { "port": 80, "protocol": "TCP" } ], "b": ["x"], "c": [2, 3] })
        );
    }
}
