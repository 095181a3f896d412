//! Client-side comparison, for when the API server will not dry-run an
//! object for fleet (an identity without `patch`): the live object with the
//! fields fleet sets laid over it, as server-side apply would leave it as far
//! as fleet can tell without the server. Pure.
//!
//! Conservative: when unsure, it shows a change. It cannot see defaults the
//! server would add to new fields, admission webhooks, conflicts with other
//! field managers or immutable fields; the plan says so in a note.

use serde_json::{Map, Value};

use crate::managed_fields::ItemKey;
use crate::ownership;
use crate::quantity::Place;

/// `live` with `desired` laid over it. Fields fleet applied last time (its
/// managedFields entry) and no longer sets are removed; fields of other
/// managers are kept; values equal to fleet's (quantities by value: `2000m`
/// is the `2` the server stored) keep the live spelling, so an unchanged
/// object comes out equal to `live`.
pub fn expected(live: &Value, desired: &Value) -> Value {
    let owned = fleets_fields(live);
    lay_over(live, desired, owned, Place::default())
}

/// The fields fleet's last server-side apply set (`fieldsV1` of manager
/// `fleet`, operation Apply, not of a subresource).
fn fleets_fields(live: &Value) -> Option<&Value> {
    live["metadata"]["managedFields"]
        .as_array()?
        .iter()
        .find(|entry| ownership::is_fleets_entry(entry))
        .and_then(|entry| entry.get("fieldsV1"))
}

fn lay_over<'a>(live: &Value, desired: &'a Value, owned: Option<&Value>, at: Place<'a>) -> Value {
    match (live, desired) {
        (Value::Object(live), Value::Object(desired)) => {
            Value::Object(lay_over_fields(live, desired, owned, at))
        }
        (Value::Array(live), Value::Array(desired)) => lay_over_list(live, desired, owned, at),
        (live, desired) if same_value(live, desired, at) => live.clone(),
        (_, desired) => desired.clone(),
    }
}

fn lay_over_fields<'a>(
    live: &Map<String, Value>,
    desired: &'a Map<String, Value>,
    owned: Option<&Value>,
    at: Place<'a>,
) -> Map<String, Value> {
    let mut out = live.clone();
    for (key, wanted) in desired {
        let owned_here = owned.and_then(|o| o.get(format!("f:{key}")));
        match live.get(key) {
            Some(present) => {
                out.insert(
                    key.clone(),
                    lay_over(present, wanted, owned_here, at.child(key)),
                );
            }
            // The server does not store empty lists or nulls.
            None if wanted.is_null() || wanted.as_array().is_some_and(Vec::is_empty) => {}
            None => {
                out.insert(key.clone(), wanted.clone());
            }
        }
    }
    // What fleet set last time and sets no more, the apply removes.
    if let Some(owned) = owned {
        out.retain(|key, _| desired.contains_key(key) || owned.get(format!("f:{key}")).is_none());
    }
    out
}

/// Lists whose items carry a name (containers, env, volumes, ports) or a
/// mount path are merged item by item, as server-side apply merges them;
/// other lists are replaced whole unless every item already matches.
fn lay_over_list<'a>(
    live: &[Value],
    desired: &'a [Value],
    owned: Option<&Value>,
    at: Place<'a>,
) -> Value {
    let Some(key) = merge_key(desired) else {
        let unchanged = live.len() == desired.len()
            && live
                .iter()
                .zip(desired)
                .all(|(l, d)| lay_over(l, d, None, at) == *l);
        return Value::Array(if unchanged {
            live.to_vec()
        } else {
            desired.to_vec()
        });
    };
    let position = |item: &Value| desired.iter().position(|d| d[key] == item[key]);
    // Live items in live order: fleet's merged with what it wants now,
    // another manager's kept, fleet's former ones dropped (or any item
    // fleet cannot tell the owner of).
    let mut out = Vec::new();
    let mut order = Vec::new();
    for item in live {
        match position(item) {
            Some(n) => {
                out.push(lay_over(item, &desired[n], owned_item(owned, item), at));
                order.push(n);
            }
            None if owned.is_some() && owned_item(owned, item).is_none() => {
                out.push(item.clone());
            }
            None => {}
        }
    }
    // Fleet reordered its items: show its order.
    if order.windows(2).any(|w| w[0] > w[1]) {
        let mut reordered: Vec<Value> = desired
            .iter()
            .map(|d| match live.iter().find(|l| l[key] == d[key]) {
                Some(l) => lay_over(l, d, owned_item(owned, l), at),
                None => d.clone(),
            })
            .collect();
        reordered.extend(
            live.iter()
                .filter(|l| position(l).is_none() && owned.is_some())
                .filter(|l| owned_item(owned, l).is_none())
                .cloned(),
        );
        return Value::Array(reordered);
    }
    out.extend(
        desired
            .iter()
            .filter(|d| !live.iter().any(|l| l[key] == d[key]))
            .cloned(),
    );
    Value::Array(out)
}

/// The field that identifies items of a list fleet renders, if any.
fn merge_key(items: &[Value]) -> Option<&'static str> {
    ["name", "mountPath", "containerPort"]
        .into_iter()
        .find(|key| {
            !items.is_empty()
                && items
                    .iter()
                    .all(|item| item.get(key).is_some_and(|v| !v.is_null()))
        })
}

/// The part of fleet's fieldset for one list item: `k:{"name":"agent"}`
/// names an item by its key fields.
fn owned_item<'v>(owned: Option<&'v Value>, item: &Value) -> Option<&'v Value> {
    owned?
        .as_object()?
        .iter()
        .find_map(|(key, fields)| ItemKey::parse(key)?.names(item).then_some(fields))
}

/// Equal, or the same quantity spelt differently, or the same number.
fn same_value(live: &Value, desired: &Value, at: Place<'_>) -> bool {
    if live == desired {
        return true;
    }
    match (live, desired) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (Value::String(a), Value::String(b)) if at.holds_quantity() => crate::quantity::same(a, b),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// A Deployment as fleet renders it.
    fn desired() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": { "name": "agent-a", "namespace": "ns", "labels": { "app": "a" } },
            "spec": {
                "replicas": 2,
                "template": { "spec": { "containers": [{
                    "name": "agent", "image": "agent:1",
                    "args": ["--role=a"],
                    "env": [{ "name": "A", "value": "1" }, { "name": "B", "value": "2" }],
                    "resources": { "requests": { "cpu": "2000m", "memory": "1Gi" } },
                    "ports": [{ "name": "metrics", "containerPort": 9090 }],
                }] } }
            }
        })
    }

    /// As the server stores it after fleet applied `desired()`: defaults
    /// added, quantities normalised, fleet's fields recorded.
    fn live() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {
                "name": "agent-a", "namespace": "ns", "uid": "u1", "resourceVersion": "7",
                "labels": { "app": "a" },
                "managedFields": [{
                    "manager": "fleet", "operation": "Apply", "fieldsType": "FieldsV1",
                    "fieldsV1": {
                        "f:metadata": { "f:labels": { "f:app": {} } },
                        "f:spec": {
                            "f:replicas": {},
                            "f:template": { "f:spec": { "f:containers": {
                                "k:{\"name\":\"agent\"}": {
                                    ".": {}, "f:name": {}, "f:image": {}, "f:args": {},
                                    "f:env": { "k:{\"name\":\"A\"}": { ".": {}, "f:name": {}, "f:value": {} },
                                               "k:{\"name\":\"B\"}": { ".": {}, "f:name": {}, "f:value": {} } },
                                    "f:resources": { "f:requests": { "f:cpu": {}, "f:memory": {} } },
                                    "f:ports": { "k:{\"containerPort\":9090,\"protocol\":\"TCP\"}": { ".": {}, "f:name": {}, "f:containerPort": {} } },
                                }
                            } } }
                        }
                    }
                }]
            },
            "spec": {
                "replicas": 2, "revisionHistoryLimit": 10,
                "template": { "spec": {
                    "containers": [{
                        "name": "agent", "image": "agent:1", "imagePullPolicy": "IfNotPresent",
                        "args": ["--role=a"],
                        "env": [{ "name": "A", "value": "1" }, { "name": "B", "value": "2" }],
                        "resources": { "requests": { "cpu": "2", "memory": "1Gi" } },
                        "ports": [{ "name": "metrics", "containerPort": 9090, "protocol": "TCP" }],
                        "terminationMessagePath": "/dev/termination-log",
                    }],
                    "restartPolicy": "Always",
                } }
            },
            "status": { "replicas": 2 }
        })
    }

    #[test]
    fn what_fleet_applied_compares_equal_despite_defaults_and_spelling() {
        assert_eq!(expected(&live(), &desired()), live());
    }

    #[test]
    fn a_changed_image_is_the_only_difference() {
        let mut wanted = desired();
        wanted["spec"]["template"]["spec"]["containers"][0]["image"] = json!("agent:2");
        let after = expected(&live(), &wanted);
        let mut want = live();
        want["spec"]["template"]["spec"]["containers"][0]["image"] = json!("agent:2");
        assert_eq!(after, want);
    }

    #[test]
    fn a_quantity_changed_in_value_is_a_change() {
        let mut wanted = desired();
        wanted["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"] =
            json!("1500m");
        let after = expected(&live(), &wanted);
        assert_eq!(
            after["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"],
            "1500m"
        );
        // Outside a quantity field, spelling matters: an env value is text.
        let mut wanted = desired();
        wanted["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"] = json!("1.0");
        assert_ne!(expected(&live(), &wanted), live());
    }

    #[test]
    fn what_fleet_no_longer_sets_is_removed_and_others_fields_kept() {
        let mut wanted = desired();
        // fleet drops env B and its label, and no longer sets replicas.
        let container = &mut wanted["spec"]["template"]["spec"]["containers"][0];
        container["env"].as_array_mut().unwrap().pop();
        wanted["metadata"]["labels"] = json!({});
        wanted["spec"].as_object_mut().unwrap().remove("replicas");
        // Another manager added env C and a label.
        let mut present = live();
        let container = &mut present["spec"]["template"]["spec"]["containers"][0];
        container["env"]
            .as_array_mut()
            .unwrap()
            .push(json!({ "name": "C", "value": "3" }));
        present["metadata"]["labels"]["team"] = json!("x");

        let after = expected(&present, &wanted);
        let env = &after["spec"]["template"]["spec"]["containers"][0]["env"];
        assert_eq!(
            env,
            &json!([{ "name": "A", "value": "1" }, { "name": "C", "value": "3" }])
        );
        assert_eq!(after["metadata"]["labels"], json!({ "team": "x" }));
        assert!(after["spec"].get("replicas").is_none());
    }

    #[test]
    fn without_fleets_record_unmatched_items_count_as_changes() {
        // An object fleet never applied (adopting): whatever fleet does not
        // list is shown as going away, the cautious reading.
        let mut present = live();
        present["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("managedFields");
        let container = &mut present["spec"]["template"]["spec"]["containers"][0];
        container["env"]
            .as_array_mut()
            .unwrap()
            .push(json!({ "name": "C", "value": "3" }));
        assert_ne!(expected(&present, &desired()), present);
    }

    #[test]
    fn atomic_lists_are_replaced_unless_every_item_matches() {
        let mut wanted = desired();
        wanted["spec"]["template"]["spec"]["containers"][0]["args"] = json!(["--role=b"]);
        let after = expected(&live(), &wanted);
        assert_eq!(
            after["spec"]["template"]["spec"]["containers"][0]["args"],
            json!(["--role=b"])
        );
        // Items with defaults the server added still match.
        let policy_live =
            json!({ "spec": { "ingress": [{ "ports": [{ "port": 4222, "protocol": "TCP" }] }] } });
        let policy_desired = json!({ "spec": { "ingress": [{ "ports": [{ "port": 4222 }] }] } });
        assert_eq!(expected(&policy_live, &policy_desired), policy_live);
    }

    #[test]
    fn a_reorder_by_fleet_shows() {
        let mut wanted = desired();
        wanted["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_array_mut()
            .unwrap()
            .reverse();
        let after = expected(&live(), &wanted);
        assert_eq!(
            after["spec"]["template"]["spec"]["containers"][0]["env"][0]["name"],
            "B"
        );
    }
}
