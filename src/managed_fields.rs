//! managed_fields: the paths of a field set (`managedFields[].fieldsV1`) as
//! server-side apply writes them. Pure.
//!
//! A field set is a tree of paths: `f:<name>` a field of a map, `.` the map
//! or list item itself, and a list item by `k:<json>` (its key fields, for
//! lists merged by key: containers by `name`, ports by `containerPort` and
//! `protocol`), `v:<json>` (its value, for sets) or `i:<n>` (its place).
//! See structured-merge-diff's `fieldpath` serialisation
//! (<https://github.com/kubernetes-sigs/structured-merge-diff/blob/master/fieldpath/serialize-pe.go>).

use serde_json::{Map, Value};

/// The key of a list item, from a `k:` path: `k:{"containerPort":8080,"protocol":"TCP"}`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ItemKey(Map<String, Value>);

impl ItemKey {
    /// The key a `k:` path names; `None` for any other path, or a key that
    /// is not a JSON object.
    pub(crate) fn parse(path: &str) -> Option<ItemKey> {
        serde_json::from_str(path.strip_prefix("k:")?)
            .ok()
            .map(ItemKey)
    }

    /// Whether `item` is the list item this key names: each key field
    /// equal. A key field the item leaves out matches only the API server's
    /// default for it (`protocol: TCP` of container and Service ports), so
    /// an item as fleet renders it, before the server defaults it, is named
    /// by the key the server wrote for it.
    pub(crate) fn names(&self, item: &Value) -> bool {
        let Some(item) = item.as_object() else {
            return false;
        };
        self.0.iter().all(|(field, value)| match item.get(field) {
            Some(given) => given == value,
            None => field == "protocol" && value == "TCP",
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn only_a_k_path_with_an_object_is_a_key() {
        assert!(ItemKey::parse(r#"k:{"name":"agent"}"#).is_some());
        assert_eq!(ItemKey::parse(r#"v:"x""#), None);
        assert_eq!(ItemKey::parse("f:name"), None);
        assert_eq!(ItemKey::parse("i:0"), None);
        assert_eq!(ItemKey::parse("k:{not json"), None);
        assert_eq!(ItemKey::parse(r#"k:"name""#), None);
    }

    #[test]
    fn a_key_names_the_item_with_its_fields() {
        let key = ItemKey::parse(r#"k:{"containerPort":8080,"protocol":"TCP"}"#).unwrap();
        let stored = json!({ "containerPort": 8080, "protocol": "TCP", "name": "http" });
        assert!(key.names(&stored));
        assert!(!key.names(&json!({ "containerPort": 9090, "protocol": "TCP" })));
        assert!(!key.names(&json!({ "containerPort": 8080, "protocol": "UDP" })));
        assert!(!key.names(&json!("8080")));
    }

    #[test]
    fn a_left_out_protocol_is_the_servers_default_tcp() {
        let rendered = json!({ "containerPort": 8080, "name": "http" });
        let tcp = ItemKey::parse(r#"k:{"containerPort":8080,"protocol":"TCP"}"#).unwrap();
        let udp = ItemKey::parse(r#"k:{"containerPort":8080,"protocol":"UDP"}"#).unwrap();
        assert!(tcp.names(&rendered));
        assert!(!udp.names(&rendered));
        // Only the protocol has a default: another left-out field is not
        // matched.
        let named = ItemKey::parse(r#"k:{"containerPort":8080,"name":"http"}"#).unwrap();
        assert!(!named.names(&json!({ "containerPort": 8080 })));
    }
}
