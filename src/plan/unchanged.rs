//! The proof of no change: when the live object shows that a server-side
//! apply of the desired body would change nothing, planning skips the dry
//! run. A no-op plan of a large fleet then costs its LISTs, not thousands of
//! dry runs.
//!
//! The argument. [`proven_unchanged`] holds only when all of these do:
//!
//! 1. The live object is not being deleted.
//! 2. Its `fleet.agent.ceo/applied-hash` equals the desired one: the last
//!    body fleet applied is the body fleet would apply now (the hash is part
//!    of the body, so a changed definition or a changed fleet version that
//!    renders differently fails here).
//! 3. Fleet's one `Apply` entry in `managedFields` (for the desired
//!    apiVersion, not a subresource) holds exactly the fields of the desired
//!    body: each of them, and nothing else. Right after fleet's apply it
//!    held exactly these. Any later write that changed or removed one of
//!    them took it out of fleet's entry: an Update (kubectl edit, patch,
//!    scale, label, a controller) takes the fields whose values it changes
//!    and removes removed fields from every manager; another applier can only
//!    change them with force, which takes them over too. So a field still in
//!    fleet's entry still holds what fleet's apply stored there.
//! 4. Every desired value equals the live one, as the API server stores it:
//!    equal JSON, or equal quantities (`2000m` is stored as `2`), and for
//!    atomic values (owned whole, like a label selector or a NetworkPolicy's
//!    rules) the desired value contained in the live one (the server fills
//!    in defaults such as a port's `protocol: TCP`). This guards against a
//!    write made under fleet's own manager name with other values.
//!
//! 5. No other writer's Update of the object itself holds a field fleet's
//!    entry does not. Such a field may be a hand addition (`kubectl set
//!    env`), which apply takes over and removes (`super::takeover`): a
//!    change no dry run shows, decided when the object is dry-run.
//!
//! Given these, applying the desired body sets every field to the value it
//! has, with fleet keeping the same fields, so no field is added, changed or
//! removed: exactly what a dry run would find. Sharing a field with another
//! manager that set the same value is no conflict either.
//!
//! Whenever anything is unsure (a list shape it does not know, a value the
//! server normalised in a way not recognised here, an index path), the answer
//! is "not proven", and the object is dry-run as before: the proof may cost a
//! dry run, never a missed change. The one thing assumed is that nobody else
//! applies as field manager `fleet` with a differently written but equal
//! quantity, which would be a cosmetic diff. Provenance annotations on the
//! ApplySet parent, which plans never compare, are left out of 3.

use std::borrow::Cow;

use serde_json::{Map, Value};

use crate::managed_fields::ItemKey;
use crate::ownership;
use crate::quantity::Place;

/// Whether a server-side apply of `desired` by fleet would leave `live`
/// exactly as it is (see the module's argument).
pub fn proven_unchanged(desired: &Value, live: &Value) -> bool {
    if !live["metadata"]["deletionTimestamp"].is_null()
        || super::takeover::updated_beyond_fleet(live, desired)
    {
        return false;
    }
    let applied = ownership::applied_hash(live);
    if applied.is_none() || applied != ownership::applied_hash(desired) {
        return false;
    }
    let (Some(fields), Some(desired)) = (
        fleet_fields(live, &desired["apiVersion"]),
        desired.as_object(),
    ) else {
        return false;
    };
    covers_exactly(
        &without_provenance(fields),
        desired,
        live,
        Level::Top,
        Place::default(),
    )
}

/// Fleet's field set without the provenance annotations apply records on
/// the ApplySet parent besides the rendered body. A dry run of the body
/// would drop them, but plans compare without them
/// ([`super::diff::comparable`]), so they are no change either way. Only the
/// parent has them, so only the parent's set is copied.
fn without_provenance(fields: &Map<String, Value>) -> Cow<'_, Map<String, Value>> {
    let provenance = |path: &str| {
        path.strip_prefix("f:")
            .is_some_and(|key| crate::provenance::ANNOTATIONS.contains(&key))
    };
    let annotations = fields["f:metadata"]["f:annotations"].as_object();
    if !annotations.is_some_and(|a| a.keys().any(|path| provenance(path))) {
        return Cow::Borrowed(fields);
    }
    let mut fields = fields.clone();
    if let Some(metadata) = fields.get_mut("f:metadata").and_then(Value::as_object_mut) {
        if let Some(annotations) = metadata
            .get_mut("f:annotations")
            .and_then(Value::as_object_mut)
        {
            annotations.retain(|path, _| !provenance(path));
        }
        if metadata["f:annotations"]
            .as_object()
            .is_some_and(Map::is_empty)
        {
            metadata.remove("f:annotations");
        }
    }
    Cow::Owned(fields)
}

/// Fleet's field set: the fieldsV1 of its only Apply entry for this
/// apiVersion on the main resource.
fn fleet_fields<'a>(live: &'a Value, api_version: &Value) -> Option<&'a Map<String, Value>> {
    let entries = live["metadata"]["managedFields"].as_array()?;
    let mut applied = entries.iter().filter(|e| ownership::is_fleets_entry(e));
    let entry = applied.next()?;
    if applied.next().is_some()
        || &entry["apiVersion"] != api_version
        || entry["fieldsType"] != "FieldsV1"
    {
        return None;
    }
    entry["fieldsV1"].as_object()
}

/// Where a map is in the object: managed fields do not track the identity
/// (apiVersion and kind, the metadata's name and namespace).
#[derive(Clone, Copy)]
enum Level {
    Top,
    Metadata,
    Below,
}

impl Level {
    fn tracks(self, key: &str) -> bool {
        match self {
            Level::Top => key != "apiVersion" && key != "kind",
            Level::Metadata => key != "name" && key != "namespace",
            Level::Below => true,
        }
    }

    fn child(self, key: &str) -> Level {
        match (self, key) {
            (Level::Top, "metadata") => Level::Metadata,
            _ => Level::Below,
        }
    }
}

/// Whether the field set `node` is exactly the tracked fields of the map
/// `desired`, each holding its desired value in `live`.
fn covers_exactly(
    node: &Map<String, Value>,
    desired: &Map<String, Value>,
    live: &Value,
    level: Level,
    place: Place<'_>,
) -> bool {
    // Each entry of fleet's set is a field fleet would still send (an apply
    // would remove any other) and holds its desired value...
    let mut covered = 0;
    for (path, child) in node {
        if path == "." {
            continue;
        }
        let key = path.strip_prefix("f:").filter(|key| level.tracks(key));
        let (Some(key), Some(child)) = (key, child.as_object()) else {
            return false;
        };
        let Some(value) = desired.get(key) else {
            return false;
        };
        if !field_holds(child, value, &live[key], level.child(key), place.child(key)) {
            return false;
        }
        covered += 1;
    }
    // ...and, entries being distinct fields, every desired field has one.
    covered == desired.keys().filter(|key| level.tracks(key)).count()
}

/// One field of fleet's set, its desired value and its live value.
fn field_holds(
    node: &Map<String, Value>,
    desired: &Value,
    live: &Value,
    level: Level,
    place: Place<'_>,
) -> bool {
    let children = node.keys().any(|k| k != ".");
    match desired {
        Value::Object(map) if !map.is_empty() && children => {
            covers_exactly(node, map, live, level, place)
        }
        Value::Array(items) if !items.is_empty() && children => {
            list_holds(node, items, live.as_array(), place)
        }
        // A leaf: a scalar, an empty map or list, or an atomic map or list
        // (owned whole, so its set entry has no children).
        _ => !children && same_stored(desired, live, place),
    }
}

/// A granular list: each desired item is one keyed (`k:`) or set (`v:`)
/// entry of fleet's set, and there is no entry for anything else.
fn list_holds(
    node: &Map<String, Value>,
    desired: &[Value],
    live: Option<&Vec<Value>>,
    place: Place<'_>,
) -> bool {
    let Some(live) = live else {
        return false;
    };
    // The keyed entries, each key read once (an unreadable one matches no
    // item, and is left over below).
    let keyed: Vec<(ItemKey, &Value)> = node
        .iter()
        .filter_map(|(path, child)| Some((ItemKey::parse(path)?, child)))
        .collect();
    let mut matched = 0;
    for item in desired {
        let holds = match item {
            Value::Object(fields) => keyed.iter().any(|(key, child)| {
                if !key.names(item) {
                    return false;
                }
                let Some(child) = child.as_object() else {
                    return false;
                };
                let live_item = live.iter().find(|l| key.names(l));
                // The item itself (".") and each of its fields.
                child.contains_key(".")
                    && live_item.is_some_and(|live_item| {
                        covers_exactly(child, fields, live_item, Level::Below, place)
                    })
            }),
            scalar => node.contains_key(&format!("v:{scalar}")) && live.iter().any(|l| l == scalar),
        };
        if !holds {
            return false;
        }
        matched += 1;
    }
    // As many entries as desired items (the ones above are distinct: keys
    // are unique within a list), so none is left over.
    matched == node.keys().filter(|k| *k != ".").count()
}

/// Whether the live value is what the server stores for the desired one:
/// equal, an equal quantity where a quantity goes (anywhere else `1k` and
/// `1000` differ), or (maps and lists owned whole) the desired one with
/// defaults added.
fn same_stored(desired: &Value, live: &Value, place: Place<'_>) -> bool {
    match (desired, live) {
        (Value::String(d), Value::String(l)) => {
            d == l || place.holds_quantity() && crate::quantity::same(d, l)
        }
        (Value::Object(d), Value::Object(l)) => d
            .iter()
            .all(|(k, v)| l.get(k).is_some_and(|l| same_stored(v, l, place.child(k)))),
        (Value::Array(d), Value::Array(l)) => {
            d.len() == l.len() && d.iter().zip(l).all(|(d, l)| same_stored(d, l, place))
        }
        (d, l) => d == l,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// A Deployment as fleet renders it, stamped.
    fn desired() -> Value {
        let mut body = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": { "name": "agent-a", "namespace": "ns", "labels": { "app": "a" } },
            "spec": {
                "selector": { "matchLabels": { "app": "a" } },
                "template": { "spec": {
                    "containers": [{
                        "name": "agent", "image": "agent:1", "args": ["--x"],
                        "ports": [{ "name": "http", "containerPort": 8080 }],
                        "resources": { "limits": { "cpu": "2000m" } },
                        "env": [{ "name": "ID", "valueFrom": { "fieldRef": { "fieldPath": "metadata.name" } } }]
                    }]
                } }
            }
        });
        ownership::stamp_object(&mut body);
        body
    }

    /// Fleet's entry as the API server writes it for [`desired`].
    fn fleet_entry() -> Value {
        json!({
            "manager": "fleet", "operation": "Apply", "apiVersion": "apps/v1",
            "fieldsType": "FieldsV1", "time": "2026-11-29T12:00:00Z",
            "fieldsV1": {
                "f:metadata": {
                    "f:annotations": { "f:fleet.agent.ceo/applied-hash": {} },
                    "f:labels": { "f:app": {} }
                },
                "f:spec": {
                    "f:selector": {},
                    "f:template": { "f:spec": { "f:containers": {
                        "k:{\"name\":\"agent\"}": {
                            ".": {}, "f:name": {}, "f:image": {}, "f:args": {},
                            "f:ports": { "k:{\"containerPort\":8080,\"protocol\":\"TCP\"}": {
                                ".": {}, "f:name": {}, "f:containerPort": {} } },
                            "f:resources": { "f:limits": { "f:cpu": {} } },
                            "f:env": { "k:{\"name\":\"ID\"}": {
                                ".": {}, "f:name": {}, "f:valueFrom": { "f:fieldRef": {} } } }
                        }
                    } } }
                }
            }
        })
    }

    /// The object as stored after fleet's apply: defaults added, the
    /// quantity canonical, other managers' entries beside fleet's.
    fn live() -> Value {
        let mut live = desired();
        let container = &mut live["spec"]["template"]["spec"]["containers"][0];
        container["ports"][0]["protocol"] = json!("TCP");
        container["resources"]["limits"]["cpu"] = json!("2");
        container["imagePullPolicy"] = json!("IfNotPresent");
        container["env"][0]["valueFrom"]["fieldRef"]["apiVersion"] = json!("v1");
        live["spec"]["replicas"] = json!(1);
        live["metadata"]["uid"] = json!("u-1");
        live["metadata"]["managedFields"] = json!([
            fleet_entry(),
            { "manager": "kube-controller-manager", "operation": "Update", "subresource": "status",
              "apiVersion": "apps/v1", "fieldsType": "FieldsV1" }
        ]);
        live
    }

    #[test]
    fn what_fleet_applied_and_still_owns_is_unchanged() {
        assert!(proven_unchanged(&desired(), &live()));
    }

    #[test]
    fn only_a_quantity_field_compares_by_value() {
        // `2000m` stored as `2` is the same limit (live() has it so); an
        // argument `1k` where `1000` was applied is another argument.
        let mut other_argument = live();
        other_argument["spec"]["template"]["spec"]["containers"][0]["args"] = json!(["1k"]);
        let mut desired = desired();
        desired["spec"]["template"]["spec"]["containers"][0]["args"] = json!(["1000"]);
        // The same stamp on both: only the values differ.
        other_argument["metadata"]["annotations"] = desired["metadata"]["annotations"].clone();
        assert!(!proven_unchanged(&desired, &other_argument));
        other_argument["spec"]["template"]["spec"]["containers"][0]["args"] = json!(["1000"]);
        assert!(proven_unchanged(&desired, &other_argument));
    }

    #[test]
    fn a_changed_definition_is_not_proven() {
        let mut changed = desired();
        changed["metadata"]["annotations"]
            .as_object_mut()
            .unwrap()
            .clear();
        changed["spec"]["template"]["spec"]["containers"][0]["image"] = json!("agent:2");
        ownership::stamp_object(&mut changed);
        assert!(!proven_unchanged(&changed, &live()));
    }

    #[test]
    fn a_field_taken_by_another_manager_is_not_proven() {
        // kubectl edit changed the image: the field left fleet's entry.
        let mut live = live();
        let container = "k:{\"name\":\"agent\"}";
        live["metadata"]["managedFields"][0]["fieldsV1"]["f:spec"]["f:template"]["f:spec"]
            ["f:containers"][container]
            .as_object_mut()
            .unwrap()
            .remove("f:image");
        assert!(!proven_unchanged(&desired(), &live));
    }

    #[test]
    fn a_field_fleet_owns_but_would_no_longer_send_is_not_proven() {
        let mut live = live();
        live["metadata"]["managedFields"][0]["fieldsV1"]["f:spec"]["f:replicas"] = json!({});
        assert!(!proven_unchanged(&desired(), &live));
    }

    #[test]
    fn a_value_written_under_fleets_name_is_not_proven() {
        let mut live = live();
        live["spec"]["template"]["spec"]["containers"][0]["image"] = json!("agent:evil");
        assert!(!proven_unchanged(&desired(), &live));
        let mut live = self::live();
        live["spec"]["selector"]["matchLabels"]["app"] = json!("b");
        assert!(!proven_unchanged(&desired(), &live));
        let mut live = self::live();
        live["spec"]["template"]["spec"]["containers"][0]["args"] = json!(["--x", "--y"]);
        assert!(!proven_unchanged(&desired(), &live));
    }

    #[test]
    fn a_hand_addition_is_not_proven() {
        // kubectl label added a label fleet does not set; the one fleet
        // sets stays fleet's, so only the other entry tells.
        let mut live = live();
        live["metadata"]["labels"]["extra"] = json!("x");
        let entries = live["metadata"]["managedFields"].as_array_mut().unwrap();
        entries.push(json!({ "manager": "kubectl-label", "operation": "Update", "apiVersion": "apps/v1",
                             "fieldsType": "FieldsV1", "fieldsV1": { "f:metadata": { "f:labels": { "f:extra": {} } } } }));
        assert!(!proven_unchanged(&desired(), &live));
        // A rollout restart's annotation is no addition apply would remove.
        let mut restarted = self::live();
        restarted["metadata"]["managedFields"].as_array_mut().unwrap().push(json!({
            "manager": "kubectl-rollout", "operation": "Update", "apiVersion": "apps/v1", "fieldsType": "FieldsV1",
            "fieldsV1": { "f:spec": { "f:template": { "f:metadata": { "f:annotations": {
                ".": {}, "f:kubectl.kubernetes.io/restartedAt": {} } } } } } }));
        assert!(proven_unchanged(&desired(), &restarted));
    }

    #[test]
    fn a_removed_list_item_is_not_proven() {
        let mut live = live();
        live["spec"]["template"]["spec"]["containers"][0]["ports"] = json!([]);
        assert!(!proven_unchanged(&desired(), &live));
    }

    #[test]
    fn bookkeeping_that_is_not_fleets_does_not_count() {
        // No entry, two entries, another apiVersion, a subresource entry of
        // fleet's: all unsure.
        let mut none = live();
        none["metadata"]["managedFields"] = json!([]);
        assert!(!proven_unchanged(&desired(), &none));
        let mut two = live();
        two["metadata"]["managedFields"]
            .as_array_mut()
            .unwrap()
            .push(fleet_entry());
        assert!(!proven_unchanged(&desired(), &two));
        let mut other_version = live();
        other_version["metadata"]["managedFields"][0]["apiVersion"] = json!("apps/v1beta2");
        assert!(!proven_unchanged(&desired(), &other_version));
        let mut deleting = live();
        deleting["metadata"]["deletionTimestamp"] = json!("2026-11-29T12:00:00Z");
        assert!(!proven_unchanged(&desired(), &deleting));
    }
}
