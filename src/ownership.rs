//! What marks an object, stream or consumer as fleet's. `render` puts these
//! marks on everything it produces; reading live state and planning deletions
//! recognise fleet's own by them, and never touch anything without them.

use base64::Engine as _;
use sha2::{Digest, Sha256};

/// Field manager for server-side apply.
pub const FIELD_MANAGER: &str = "fleet";

/// The field manager a rollback writes as (apply::rollback): an imperative
/// manager to the next plan, which takes its fields back.
pub const ROLLBACK_MANAGER: &str = "fleet-rollback";

/// The parameters of every server-side apply fleet sends (and of its dry
/// runs): fleet's field manager, and no field validation beyond the schema.
///
/// Server-side apply refuses a field the schema does not know (a typo in a
/// patch: "field not declared in schema") whatever the directive says. What
/// Warn (the server's default) and Strict add to an apply is a second,
/// strict YAML parse of the body that looks for duplicate keys, and a body
/// serialised from a JSON map has none. That parse is a share of the API
/// server's CPU for every object, so fleet asks the server to skip it.
pub fn apply_params() -> kube::api::PatchParams {
    let mut params = kube::api::PatchParams::apply(FIELD_MANAGER);
    params.field_validation = Some(kube::api::ValidationDirective::Ignore);
    params
}
/// `app.kubernetes.io/managed-by` value.
pub const MANAGED_BY: &str = "fleet";
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// ApplySet (KEP-3659) membership label, so kubectl recognises the set.
pub const PART_OF_LABEL: &str = "applyset.kubernetes.io/part-of";
/// ApplySet parent's label holding the set's id.
pub const APPLYSET_ID_LABEL: &str = "applyset.kubernetes.io/id";
/// ApplySet parent annotations.
pub const APPLYSET_TOOLING_ANNOTATION: &str = "applyset.kubernetes.io/tooling";
pub const APPLYSET_KINDS_ANNOTATION: &str = "applyset.kubernetes.io/contains-group-kinds";

/// JetStream metadata key naming the fleet that owns a stream or consumer.
pub const JETSTREAM_OWNER_KEY: &str = "fleet.owner";

/// What fleet applied last, as a hash of the body it sent, kept on every
/// object (annotation) and stream or consumer (metadata). When the live hash
/// equals the hash of what fleet would send now, the definition has not
/// changed since the last apply, so any difference was made in the cluster:
/// drift. The hash is of the body without itself.
pub const APPLIED_HASH_ANNOTATION: &str = "fleet.agent.ceo/applied-hash";
pub const JETSTREAM_APPLIED_HASH_KEY: &str = "fleet.applied-hash";
/// On the ApplySet parent: a hash of the names of everything fleet applied
/// (objects, streams, consumers). While it matches, an object that is missing
/// was deleted by hand, and one that is extra was made by hand.
pub const INVENTORY_HASH_ANNOTATION: &str = "fleet.agent.ceo/inventory-hash";

/// The owner written into JetStream metadata. A NATS server may serve several
/// deployments of one fleet (one per namespace), so the namespace is part of it.
pub fn jetstream_owner(fleet: &str, namespace: &str) -> String {
    format!("{fleet}/{namespace}")
}

/// The ApplySet parent: a Secret (kubectl's default kind) in the fleet's
/// namespace, named after the fleet.
pub fn applyset_parent_name(fleet: &str) -> String {
    format!("fleet-{fleet}")
}

/// The ApplySet id of a Secret parent: `applyset-` +
/// base64url-no-pad(sha256(`name.namespace.Kind.group`)) + `-v1`.
pub fn applyset_id(parent_name: &str, namespace: &str) -> String {
    let digest = Sha256::digest(format!("{parent_name}.{namespace}.Secret.").as_bytes());
    format!(
        "applyset-{}-v1",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
    )
}

/// A short, stable hash of a JSON value (rendering is deterministic, and
/// serde_json keeps key order, so the same body always hashes the same).
pub fn hash(value: &serde_json::Value) -> String {
    // Serialized straight into the hasher: the same bytes as `to_string`,
    // without holding them.
    struct Hashing(Sha256);
    impl std::io::Write for Hashing {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.update(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut hashing = Hashing(Sha256::new());
    serde_json::to_writer(&mut hashing, value).expect("a JSON value serializes");
    let digest = hashing.0.finalize();
    digest[..10].iter().map(|b| format!("{b:02x}")).collect()
}

/// Marks a Kubernetes object's body with the hash of itself.
pub fn stamp_object(body: &mut serde_json::Value) {
    let hash = hash(body);
    if let Some(metadata) = body.get_mut("metadata").and_then(|m| m.as_object_mut()) {
        let annotations = metadata
            .entry("annotations")
            .or_insert_with(|| serde_json::json!({}));
        if let Some(annotations) = annotations.as_object_mut() {
            annotations.insert(APPLIED_HASH_ANNOTATION.into(), hash.into());
        }
    }
}

/// Marks a stream or consumer config with the hash of itself.
pub fn stamp_jetstream(config: &mut serde_json::Value) {
    let hash = hash(config);
    if let Some(config) = config.as_object_mut() {
        let metadata = config
            .entry("metadata")
            .or_insert_with(|| serde_json::json!({}));
        if let Some(metadata) = metadata.as_object_mut() {
            metadata.insert(JETSTREAM_APPLIED_HASH_KEY.into(), hash.into());
        }
    }
}

/// Whether a managedFields entry is fleet's own: its server-side apply of
/// the object itself (not of a subresource).
pub fn is_fleets_entry(entry: &serde_json::Value) -> bool {
    entry["manager"] == FIELD_MANAGER
        && entry["operation"] == "Apply"
        && entry["subresource"].as_str().unwrap_or_default().is_empty()
}

/// The hash a live object or config carries, if any.
pub fn applied_hash(live: &serde_json::Value) -> Option<&str> {
    live["metadata"]["annotations"][APPLIED_HASH_ANNOTATION]
        .as_str()
        .or_else(|| live["metadata"][JETSTREAM_APPLIED_HASH_KEY].as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_is_the_hash_of_the_body_without_it() {
        let mut body = serde_json::json!({ "kind": "ConfigMap", "metadata": { "name": "a" }, "data": { "k": "v" } });
        let before = hash(&body);
        stamp_object(&mut body);
        assert_eq!(applied_hash(&body), Some(before.as_str()));
        let mut other = serde_json::json!({ "kind": "ConfigMap", "metadata": { "name": "a" }, "data": { "k": "w" } });
        stamp_object(&mut other);
        assert_ne!(applied_hash(&body), applied_hash(&other));

        let mut config = serde_json::json!({ "name": "s", "metadata": { "fleet.owner": "f/ns" } });
        let before = hash(&config);
        stamp_jetstream(&mut config);
        assert_eq!(applied_hash(&config), Some(before.as_str()));
        assert_eq!(config["metadata"]["fleet.owner"], "f/ns");
    }

    #[test]
    fn applyset_id_matches_kubectl() {
        // The example from KEP-3659 / kubectl's ApplySet implementation.
        assert_eq!(
            applyset_id("my-set", "test"),
            "applyset-0eFHV8ySqp7XoShsGvyWFQD3s96yqwHmzc4e0HR1dsY-v1"
        );
    }
}
