//! The residual: what an agent's `patch` must say so that fleet's object,
//! as the API server makes it, is the live one. Pure: it compares the live
//! object with the server's answer to a dry-run create of fleet's rendering
//! (its defaults included), so a field the server defaults is never taken
//! for one the user set.
//!
//! The patch it returns uses the patch's own merge rules
//! ([`crate::render::patch::merge`]): maps key by key, lists of named items
//! by name, other lists whole, and `{ "$patch" = "delete" }` for what fleet
//! renders and the live object lacks.

use serde_json::{Map, Value};

use crate::render::patch::{DELETE, DIRECTIVE, named};

/// The patch that turns `server` into `live`; `None` when they are equal.
pub(crate) fn residual(live: &Value, server: &Value) -> Option<Value> {
    match (live, server) {
        (Value::Object(live), Value::Object(server)) => {
            let mut patch = Map::new();
            for (key, value) in live {
                match server.get(key) {
                    None => {
                        patch.insert(key.clone(), value.clone());
                    }
                    Some(rendered) => {
                        if let Some(change) = residual(value, rendered) {
                            patch.insert(key.clone(), change);
                        }
                    }
                }
            }
            for key in server.keys().filter(|k| !live.contains_key(*k)) {
                patch.insert(key.clone(), deletion());
            }
            (!patch.is_empty()).then_some(Value::Object(patch))
        }
        (Value::Array(live), Value::Array(server)) if named(live) && named(server) => {
            named_residual(live, server)
        }
        (live, server) => (live != server).then(|| live.clone()),
    }
}

/// `{ "$patch" = "delete" }`.
fn deletion() -> Value {
    Value::Object(Map::from_iter([(DIRECTIVE.into(), Value::from(DELETE))]))
}

/// A named list's patch: changed items by name, new ones whole, missing
/// ones deleted. When the live order cannot come out of that (the patch
/// appends new items), every rendered item is deleted and the live items
/// given whole, in order.
fn named_residual(live: &[Value], server: &[Value]) -> Option<Value> {
    let in_server = |item: &Value| server.iter().any(|s| s["name"] == item["name"]);
    let in_live = |item: &Value| live.iter().any(|l| l["name"] == item["name"]);
    let kept_live: Vec<&Value> = live.iter().filter(|l| in_server(l)).collect();
    let kept_server: Vec<&Value> = server.iter().filter(|s| in_live(s)).collect();
    let same_order = kept_live
        .iter()
        .zip(&kept_server)
        .all(|(l, s)| l["name"] == s["name"]);
    // New items come after the kept ones, as the merge appends them.
    let new_last = live
        .iter()
        .skip_while(|l| in_server(l))
        .all(|l| !in_server(l));
    let mut items = Vec::new();
    if same_order && new_last {
        for item in server {
            match live.iter().find(|l| l["name"] == item["name"]) {
                None => items.push(named_deletion(item)),
                Some(live_item) => {
                    if let Some(Value::Object(change)) = residual(live_item, item) {
                        let mut entry = Map::from_iter([("name".into(), item["name"].clone())]);
                        entry.extend(change);
                        items.push(Value::Object(entry));
                    }
                }
            }
        }
        items.extend(live.iter().filter(|l| !in_server(l)).cloned());
    } else {
        items.extend(server.iter().map(named_deletion));
        items.extend(live.iter().cloned());
    }
    (!items.is_empty()).then_some(Value::Array(items))
}

fn named_deletion(item: &Value) -> Value {
    let mut entry = Map::from_iter([("name".into(), item["name"].clone())]);
    entry.insert(DIRECTIVE.into(), Value::from(DELETE));
    Value::Object(entry)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::render::patch::merge;

    /// The residual, merged into the rendering, gives the live object.
    fn round_trip(live: Value, server: Value) -> Option<Value> {
        let patch = residual(&live, &server);
        let mut patched = server.clone();
        if let Some(patch) = &patch {
            merge(&mut patched, patch);
        }
        assert_eq!(patched, live, "patch {patch:?}");
        patch
    }

    #[test]
    fn equal_objects_need_no_patch() {
        let object = json!({ "spec": { "replicas": 1, "ports": [{ "name": "m", "port": 1 }] } });
        assert_eq!(round_trip(object.clone(), object), None);
    }

    #[test]
    fn a_changed_value_is_set_an_added_field_given_and_a_missing_one_deleted() {
        let patch = round_trip(
            json!({ "spec": { "replicas": 2, "minReadySeconds": 5, "template": { "spec": {} } } }),
            json!({ "spec": { "replicas": 1, "template": { "spec": { "dnsPolicy": "ClusterFirst" } } } }),
        );
        assert_eq!(
            patch,
            Some(json!({ "spec": {
                "replicas": 2, "minReadySeconds": 5,
                "template": { "spec": { "dnsPolicy": { "$patch": "delete" } } }
            } }))
        );
    }

    #[test]
    fn named_items_are_patched_by_name_and_new_ones_appended() {
        let patch = round_trip(
            json!({ "env": [{ "name": "A", "value": "1" }, { "name": "B", "value": "x" }, { "name": "D", "value": "4" }] }),
            json!({ "env": [{ "name": "A", "value": "1" }, { "name": "B", "value": "2" }, { "name": "C", "value": "3" }] }),
        );
        assert_eq!(
            patch,
            Some(json!({ "env": [
                { "name": "B", "value": "x" },
                { "name": "C", "$patch": "delete" },
                { "name": "D", "value": "4" }
            ] }))
        );
    }

    #[test]
    fn a_named_list_in_another_order_is_given_whole() {
        let patch = round_trip(
            json!({ "env": [{ "name": "X", "value": "0" }, { "name": "A", "value": "1" }] }),
            json!({ "env": [{ "name": "A", "value": "1" }] }),
        );
        assert_eq!(
            patch,
            Some(json!({ "env": [
                { "name": "A", "$patch": "delete" },
                { "name": "X", "value": "0" }, { "name": "A", "value": "1" }
            ] }))
        );
    }

    #[test]
    fn other_lists_are_replaced_whole() {
        let patch = round_trip(
            json!({ "policyTypes": ["Ingress"], "ports": [{ "port": 80, "protocol": "TCP" }] }),
            json!({ "policyTypes": ["Ingress", "Egress"], "ports": [{ "port": 80, "protocol": "TCP" }] }),
        );
        assert_eq!(patch, Some(json!({ "policyTypes": ["Ingress"] })));
    }
}
