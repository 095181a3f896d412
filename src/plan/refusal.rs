//! What the API server's refusal of a dry run means for the plan: a
//! conflict with another manager, a replacement (immutable fields), a
//! write this identity may not make, one the server would refuse anyway
//! (RBAC escalation, a quota, a namespace being deleted), or an error to
//! report, with where the agent's patch set the fields it names.

use serde_json::Value;

use crate::client::explain;
use crate::client::kube::Cluster;
use crate::render::{DesiredObject, ObjectRef};

/// One field another manager owns, from a 409 FieldManagerConflict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldConflict {
    pub manager: String,
    pub field: String,
    /// The server's words: `conflict with "kubectl-edit" using apps/v1`.
    pub message: String,
}

/// What a server-side dry-run apply said about one object.
#[derive(Debug)]
pub enum DryRun {
    /// The object as it would be stored.
    Accepted(Value),
    /// 409 FieldManagerConflict.
    Conflict(Vec<FieldConflict>),
    /// 422 on immutable fields only.
    Immutable(String),
    /// The namespace does not exist yet, so there is nothing to dry-run
    /// against: the object will be created as rendered.
    NamespaceMissing,
    /// 403: this identity may not make the request (a dry run is authorised
    /// as the write itself), with the server's reason. Planned by a
    /// client-side comparison ([`super::compare`]).
    Forbidden(String),
    /// 404 for a RoleBinding: the Role it binds does not exist yet, and the
    /// server resolves it to check that fleet holds its rights (unless fleet
    /// may `bind`). Apply writes Roles first; planned client-side.
    RoleMissing,
    /// The API server would refuse the write itself, with the reason: RBAC
    /// escalation (a Role granting rights this identity does not hold), a
    /// ResourceQuota, a namespace being deleted. Planned client-side and
    /// blocked.
    Refused(String),
}

/// `User "u" cannot patch resource "deployments" in API group "apps" ...`
/// -> `patch deployments`; RBAC escalation prevention -> what it means.
pub(super) fn refused_right(message: &str) -> String {
    if message.contains("is attempting to grant RBAC permissions not currently held") {
        return "grant rules it does not hold".into();
    }
    let verb = message
        .split_once("cannot ")
        .and_then(|(_, rest)| rest.split_whitespace().next());
    let resource = message
        .split_once("resource \"")
        .and_then(|(_, rest)| rest.split('"').next());
    match (verb, resource) {
        (Some(verb), Some(resource)) => format!("{verb} {resource}"),
        _ => "forbidden".into(),
    }
}

/// The dry run's refusal as planning reports it, with where the agent's
/// patch set the fields it names.
pub(super) fn refused_error(
    cluster: &Cluster,
    object: &DesiredObject,
    status: &kube::core::Status,
) -> anyhow::Error {
    let err = explain::api_error(status, "planning", &object.id, cluster);
    match patched_here(object, status) {
        Some(hint) => anyhow::anyhow!("{err:#}\n  {hint}"),
        None => err,
    }
}

/// Pure: where the patch set the fields the server complains about
/// (`spec.template.spec.dnsPolicy: Unsupported value`, `unknown field
/// "spec.template.spec.dnsPolicyy"`), or every patched field when it names
/// none of them.
pub fn patched_here(object: &DesiredObject, status: &kube::core::Status) -> Option<String> {
    if object.patched.is_empty() {
        return None;
    }
    let mut named: Vec<String> = status
        .details
        .iter()
        .flat_map(|d| &d.causes)
        .map(|c| c.field.clone())
        .collect();
    // Quoted (`unknown field "spec.x"`) or bare (`.spec.x: field not
    // declared in schema`) in the message.
    named.extend(
        status
            .message
            .split('"')
            .skip(1)
            .step_by(2)
            .map(str::to_string),
    );
    named.extend(
        status
            .message
            .split_whitespace()
            .filter(|word| word.starts_with(".spec") || word.starts_with(".metadata"))
            .map(|word| word.trim_end_matches(':').to_string()),
    );
    // `spec.template.spec.containers[0].image` -> `spec.template.spec.containers.image`
    let plain = |path: &str| {
        let mut out = String::new();
        let mut in_index = false;
        for c in path.trim_start_matches('.').chars() {
            match c {
                '[' => in_index = true,
                ']' => in_index = false,
                c if !in_index => out.push(c),
                _ => {}
            }
        }
        out
    };
    let named: Vec<String> = named
        .iter()
        .map(|n| plain(n))
        .filter(|n| !n.is_empty())
        .collect();
    let matching: Vec<&crate::model::PatchedField> = object
        .patched
        .iter()
        .filter(|f| {
            named
                .iter()
                .any(|n| n.starts_with(&f.path) || f.path.starts_with(n.as_str()))
        })
        .collect();
    let shown = if matching.is_empty() {
        object.patched.iter().collect()
    } else {
        matching
    };
    let places: Vec<String> = shown
        .iter()
        .map(|f| format!("`{}` at {}", f.path, f.at))
        .collect();
    Some(format!(
        "{} is patched: {} (the patch's fields are checked by the API server; fix or remove them)",
        object.id,
        places.join(", ")
    ))
}

/// Pure: the refusals planning understands; `None` for an error to report.
pub fn refusal(status: &kube::core::Status, id: &ObjectRef) -> Option<DryRun> {
    let causes = status
        .details
        .as_ref()
        .map(|d| d.causes.as_slice())
        .unwrap_or_default();
    if status.code == 409
        && !causes.is_empty()
        && causes.iter().all(|c| c.reason == "FieldManagerConflict")
    {
        let mut conflicts: Vec<FieldConflict> = causes
            .iter()
            .map(|c| FieldConflict {
                manager: conflicting_manager(&c.message),
                field: c.field.clone(),
                message: c.message.clone(),
            })
            .collect();
        // The server lists them in no fixed order; a plan must read the
        // same every time it is made.
        conflicts.sort_by(|a, b| (&a.field, &a.manager).cmp(&(&b.field, &b.manager)));
        return Some(DryRun::Conflict(conflicts));
    }
    // A replace deletes the object: only when every cause is an immutable
    // field. Any other cause is an error to show, and nothing is deleted.
    let immutable = |message: &str| {
        [
            "field is immutable",
            "may not change once set",
            "cannot change roleRef",
        ]
        .iter()
        .any(|m| message.contains(m))
    };
    if status.code == 422 && !causes.is_empty() && causes.iter().all(|c| immutable(&c.message)) {
        let mut fields: Vec<String> = causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        fields.sort();
        return Some(DryRun::Immutable(format!(
            "{} forces replacement",
            fields.join("; ")
        )));
    }
    // Refusals of the write itself, not of this identity's right to ask:
    // apply would meet them whoever planned, so they block the change.
    if explain::rbac_escalation(status) {
        let who = status
            .message
            .split_once("user \"")
            .and_then(|(_, rest)| rest.split('"').next())
            .map(|user| format!("user {user}"))
            .unwrap_or_else(|| "this identity".into());
        let rights = explain::missing_rights(&status.message);
        let missing = if rights.is_empty() {
            status.message.clone()
        } else {
            rights.join("; ")
        };
        return Some(DryRun::Refused(format!(
            "{who} may not grant rights it does not hold (the API server refuses RBAC escalation, even in a dry run), and lacks: {missing}. Grant them (`fleet rbac --for apply` prints them), or plan and apply as an identity that holds them"
        )));
    }
    if explain::quota_exceeded(status) {
        return Some(DryRun::Refused(format!(
            "a ResourceQuota of namespace {} refuses it: {}. Raise the quota (`kubectl describe resourcequota -n {0}`) or remove objects",
            id.namespace.as_deref().unwrap_or_default(),
            status
                .message
                .split_once("forbidden: ")
                .map_or(status.message.as_str(), |(_, m)| m)
        )));
    }
    if explain::namespace_terminating(status) {
        return Some(DryRun::Refused(format!(
            "namespace {} is being deleted, so nothing can be created in it until it is gone (`kubectl get namespace {0}`); plan again then",
            id.namespace.as_deref().unwrap_or_default()
        )));
    }
    if explain::rbac_denied(status) {
        return Some(DryRun::Forbidden(status.message.clone()));
    }
    // Any other 403 is admission's: a webhook or a ValidatingAdmissionPolicy
    // that denies the object, in a dry run as in the write.
    if status.code == 403 {
        return Some(DryRun::Refused(format!(
            "admission refuses it: {}",
            status.message
        )));
    }
    if status.code == 404
        && id.namespace.is_some()
        && status
            .details
            .as_ref()
            .is_some_and(|d| d.kind == "namespaces")
    {
        return Some(DryRun::NamespaceMissing);
    }
    if status.code == 404 && id.kind == "RoleBinding" {
        return Some(DryRun::RoleMissing);
    }
    None
}

/// `conflict with "kubectl-scale" with subresource "scale" using apps/v1`
/// -> `kubectl-scale`.
pub(super) fn conflicting_manager(message: &str) -> String {
    message.split('"').nth(1).unwrap_or(message).to_string()
}

#[cfg(test)]
pub(super) mod tests {
    use serde_json::json;

    use super::*;
    use crate::ownership;

    pub(in crate::plan) fn deployment(replicas: u32) -> DesiredObject {
        let mut body = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": { "name": "agent-a", "namespace": "ns" },
            "spec": { "replicas": replicas }
        });
        ownership::stamp_object(&mut body);
        DesiredObject::from_json(body)
    }

    pub(in crate::plan) fn status(code: u16, causes: Value) -> kube::core::Status {
        serde_json::from_value(json!({
            "status": "Failure", "code": code, "message": "refused", "reason": "Invalid",
            "details": { "kind": "deployments", "causes": causes }
        }))
        .unwrap()
    }

    #[test]
    fn a_replace_needs_every_cause_immutable() {
        let id = deployment(1).id;
        let immutable = status(
            422,
            json!([{ "reason": "FieldValueInvalid", "field": "spec.selector", "message": "field is immutable" }]),
        );
        assert!(matches!(
            refusal(&immutable, &id),
            Some(DryRun::Immutable(_))
        ));
        let mixed = status(
            422,
            json!([
                { "reason": "FieldValueInvalid", "field": "spec.selector", "message": "field is immutable" },
                { "reason": "FieldValueInvalid", "field": "spec.replicas", "message": "must be >= 0" },
            ]),
        );
        assert!(refusal(&mixed, &id).is_none());
    }

    #[test]
    fn a_refusal_names_the_patch_line_of_the_field_it_is_about() {
        let field = |path: &str, at: &str| crate::model::PatchedField {
            path: path.into(),
            origin: crate::load::source::Origin {
                file: 0,
                span: 0..0,
            },
            at: at.into(),
        };
        let mut object = deployment(1);
        assert_eq!(patched_here(&object, &kube::core::Status::default()), None);
        object.patched = vec![
            field("spec.minReadySeconds", "fleet.toml:40:1"),
            field("spec.template.spec.containers", "fleet.toml:43:1"),
        ];
        let status = |message: &str, cause: &str| kube::core::Status {
            message: message.into(),
            details: Some(kube::core::response::StatusDetails {
                name: "agent-a".into(),
                group: "apps".into(),
                kind: "deployments".into(),
                uid: String::new(),
                causes: vec![kube::core::response::StatusCause {
                    reason: "FieldValueInvalid".into(),
                    message: String::new(),
                    field: cause.into(),
                }],
                retry_after_seconds: 0,
            }),
            ..Default::default()
        };
        let invalid = status("invalid", "spec.template.spec.containers[0].stdin");
        let hint = patched_here(&object, &invalid).unwrap();
        assert!(
            hint.contains("`spec.template.spec.containers` at fleet.toml:43:1"),
            "{hint}"
        );
        assert!(!hint.contains("40:1"), "{hint}");
        let unknown = status(".spec.minReadySecondz: field not declared in schema", "");
        // Not the field the patch set: every patched field is shown.
        let hint = patched_here(&object, &unknown).unwrap();
        assert!(hint.contains("40:1") && hint.contains("43:1"), "{hint}");
        let unknown = status(
            "failed: .spec.minReadySeconds.x: field not declared in schema",
            "",
        );
        let hint = patched_here(&object, &unknown).unwrap();
        assert!(hint.contains("40:1") && !hint.contains("43:1"), "{hint}");
    }
}
