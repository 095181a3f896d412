//! An agent's `patch` laid over its rendered objects: maps merged key by key,
//! lists of named items (containers, env, volumes, ports) merged item by item
//! by name, any other list or value replaced. `{ "$patch" = "delete" }`
//! (strategic merge patch's directive, as kubectl users know it) removes a
//! field, or a named item, that fleet renders.

use serde_json::Value;

use super::DesiredObject;
use crate::model::Fleet;

/// Merges each agent's patches into its objects of the patched kinds (load
/// checked that each patched kind is rendered for the agent).
pub fn apply(fleet: &Fleet, objects: &mut [DesiredObject]) {
    let role_label = format!("{}/role", fleet.label_domain);
    for agent in &fleet.agents {
        for patch in &agent.patches {
            let own = objects.iter_mut().filter(|o| {
                o.id.kind == patch.kind && o.body["metadata"]["labels"][&role_label] == agent.role
            });
            for object in own {
                merge(&mut object.body, &patch.body);
                object.patched.extend(patch.fields.iter().cloned());
            }
        }
    }
}

pub use crate::model::{PATCH_DELETE as DELETE, PATCH_DIRECTIVE as DIRECTIVE};

/// Whether a patch value says "remove this" (`{ "$patch" = "delete" }`, or
/// a named item with it).
pub fn deletes(value: &Value) -> bool {
    value[DIRECTIVE] == DELETE
}

/// Lays `patch` over `target`.
pub fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(target), Value::Object(patch)) => {
            for (key, value) in patch {
                if deletes(value) {
                    target.shift_remove(key);
                    continue;
                }
                match target.get_mut(key) {
                    Some(existing) => merge(existing, value),
                    None => {
                        target.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        (Value::Array(target), Value::Array(patch))
            if named(target)
                && !patch.is_empty()
                && patch.iter().all(|i| i["name"].is_string()) =>
        {
            // In the patch's order: an item deleted and then given again
            // moves to the end, which is how a patch reorders a list.
            for item in patch {
                let existing = target.iter().position(|t| t["name"] == item["name"]);
                match existing {
                    Some(at) if deletes(item) => {
                        target.remove(at);
                    }
                    Some(at) => merge(&mut target[at], item),
                    None if deletes(item) => {}
                    None => target.push(item.clone()),
                }
            }
        }
        (target, patch) => *target = patch.clone(),
    }
}

/// A non-empty list whose items are all maps with a `name`, each its own:
/// a list Kubernetes merges by name.
pub fn named(items: &[Value]) -> bool {
    let mut names = std::collections::BTreeSet::new();
    !items.is_empty()
        && items
            .iter()
            .all(|i| i["name"].is_string() && names.insert(i["name"].as_str()))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_delete_directive_removes_a_field_or_a_named_item_and_a_deleted_item_given_again_moves_last()
     {
        let mut deployment = json!({ "spec": { "template": { "spec": {
            "securityContext": { "runAsUser": 1000, "seccompProfile": { "type": "RuntimeDefault" } },
            "containers": [{ "name": "agent", "env": [
                { "name": "A", "value": "1" }, { "name": "B", "value": "2" }, { "name": "C", "value": "3" }
            ] }],
            "volumes": [{ "name": "workspace", "emptyDir": {} }, { "name": "tmp", "emptyDir": {} }]
        } } } });
        merge(
            &mut deployment,
            &json!({ "spec": { "template": { "spec": {
                "securityContext": { "seccompProfile": { "$patch": "delete" } },
                "containers": [{ "name": "agent", "env": [
                    { "name": "A", "$patch": "delete" }, { "name": "A", "value": "1" },
                    { "name": "gone", "$patch": "delete" }
                ] }],
                "volumes": [{ "name": "tmp", "$patch": "delete" }],
                "nothing": { "$patch": "delete" }
            } } } }),
        );
        assert_eq!(
            deployment,
            json!({ "spec": { "template": { "spec": {
                "securityContext": { "runAsUser": 1000 },
                "containers": [{ "name": "agent", "env": [
                    { "name": "B", "value": "2" }, { "name": "C", "value": "3" }, { "name": "A", "value": "1" }
                ] }],
                "volumes": [{ "name": "workspace", "emptyDir": {} }]
            } } } })
        );
    }

    #[test]
    fn maps_merge_named_lists_merge_by_name_other_values_are_replaced() {
        let mut deployment = json!({
            "spec": { "replicas": 1, "template": { "spec": {
                "containers": [{ "name": "agent", "image": "a:1", "args": ["--x"] }],
                "volumes": [{ "name": "tmp", "emptyDir": {} }]
            } } }
        });
        merge(
            &mut deployment,
            &json!({ "spec": { "template": { "spec": {
                "dnsPolicy": "None",
                "containers": [{ "name": "agent", "stdin": true, "args": ["--y"] },
                               { "name": "sidecar", "image": "s:1" }]
            } } } }),
        );
        assert_eq!(
            deployment,
            json!({
                "spec": { "replicas": 1, "template": { "spec": {
                    "containers": [{ "name": "agent", "image": "a:1", "args": ["--y"], "stdin": true },
                                   { "name": "sidecar", "image": "s:1" }],
                    "volumes": [{ "name": "tmp", "emptyDir": {} }],
                    "dnsPolicy": "None"
                } } }
            })
        );
    }
}
