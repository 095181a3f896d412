//! An agent's `patch` laid over its rendered objects: maps merged key by key,
//! lists of named items (containers, env, volumes, ports) merged item by item
//! by name, any other list or value replaced.

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

/// Lays `patch` over `target`.
pub fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(target), Value::Object(patch)) => {
            for (key, value) in patch {
                match target.get_mut(key) {
                    Some(existing) => merge(existing, value),
                    None => {
                        target.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        (Value::Array(target), Value::Array(patch)) if named(target) && named(patch) => {
            for item in patch {
                match target.iter_mut().find(|t| t["name"] == item["name"]) {
                    Some(existing) => merge(existing, item),
                    None => target.push(item.clone()),
                }
            }
        }
        (target, patch) => *target = patch.clone(),
    }
}

/// A non-empty list whose items are all maps with a `name`.
fn named(items: &[Value]) -> bool {
    !items.is_empty() && items.iter().all(|i| i["name"].is_string())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

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
