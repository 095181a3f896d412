//! What marks an object, stream or consumer as fleet's. `render` puts these
//! marks on everything it produces; reading live state and planning deletions
//! recognise fleet's own by them, and never touch anything without them.

use base64::Engine as _;
use sha2::{Digest, Sha256};

/// Field manager for server-side apply.
pub const FIELD_MANAGER: &str = "fleet";
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applyset_id_matches_kubectl() {
        // The example from KEP-3659 / kubectl's ApplySet implementation.
        assert_eq!(
            applyset_id("my-set", "test"),
            "applyset-0eFHV8ySqp7XoShsGvyWFQD3s96yqwHmzc4e0HR1dsY-v1"
        );
    }
}
