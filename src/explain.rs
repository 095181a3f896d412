//! explain: turns what the API server refused into what a person needs to
//! read: what was refused, why, and what to do next. Below `live`, `plan` and
//! `apply`, which all talk to the API server and all report its refusals.

use crate::live::kube::Cluster;
use crate::render::ObjectRef;

/// [`api_error`] for any client error: a connection failure names the server
/// and the context.
pub fn client_error(
    err: kube::Error,
    action: &str,
    id: &ObjectRef,
    cluster: &Cluster,
) -> anyhow::Error {
    match err {
        kube::Error::Api(status) => api_error(&status, action, id, cluster),
        other => anyhow::Error::new(other).context(format!(
            "{action} {id}: cannot reach {}; is the cluster up and the context right?",
            cluster.describe()
        )),
    }
}

/// An API refusal, explained.
pub fn api_error(
    status: &kube::core::Status,
    action: &str,
    id: &ObjectRef,
    cluster: &Cluster,
) -> anyhow::Error {
    let namespace = id
        .namespace
        .as_deref()
        .map(|ns| format!(" in namespace {ns}"))
        .unwrap_or_default();
    match status.code {
        403 if namespace_terminating(status) => anyhow::anyhow!(
            "{action} {id}: the namespace {} is being deleted, so nothing can be created in it ({})\n  Wait until it is gone (`kubectl get namespace {0}`), then apply again: fleet creates it anew.",
            id.namespace.as_deref().unwrap_or_default(),
            status.message,
        ),
        403 if status.message.contains("exceeded quota") => anyhow::anyhow!(
            "{action} {id}: the namespace's ResourceQuota refuses it: {}\n  Raise the quota (`kubectl describe resourcequota -n {}`) or lower the agents' requests.",
            status.message,
            id.namespace.as_deref().unwrap_or_default(),
        ),
        403 => anyhow::anyhow!(
            "{action} {id}: forbidden: {}\n  The identity of {} lacks this permission{namespace}; grant it (RBAC) or use a context that has it.",
            status.message,
            cluster.describe()
        ),
        422 => anyhow::anyhow!(
            "{action} {id}: the API server refused the object as invalid: {}",
            invalid_causes(status)
        ),
        409 => anyhow::anyhow!("{action} {id}: conflict: {}", status.message),
        code => anyhow::anyhow!(
            "{action} {id} on {}: {} ({code} {})",
            cluster.describe(),
            status.message,
            status.reason
        ),
    }
}

/// Each cause of a 422 as `field: message`, or the status message when the
/// server gave no causes.
pub fn invalid_causes(status: &kube::core::Status) -> String {
    let causes: Vec<String> = status
        .details
        .iter()
        .flat_map(|d| d.causes.iter())
        // An admission policy's cause names no field.
        .map(|c| match c.field.as_str() {
            "" => c.message.clone(),
            field => format!("{field}: {}", c.message),
        })
        .collect();
    if causes.is_empty() {
        status.message.clone()
    } else {
        causes.join("; ")
    }
}

/// A 403 of RBAC: the identity lacks a verb on a resource, or would grant
/// rights it does not hold (escalation prevention). Not a quota, an
/// admission webhook or a namespace being deleted, which also answer 403.
pub fn rbac_denied(status: &kube::core::Status) -> bool {
    let message = &status.message;
    status.code == 403
        && ((message.contains(" cannot ") && message.contains(" resource \""))
            || message.contains("is attempting to grant RBAC permissions not currently held"))
}

/// The API server refuses new objects in a namespace that is being deleted
/// with a 403 whose cause is `NamespaceTerminating`; that is no RBAC problem.
fn namespace_terminating(status: &kube::core::Status) -> bool {
    status
        .details
        .iter()
        .flat_map(|d| d.causes.iter())
        .any(|c| c.reason == "NamespaceTerminating")
        || status.message.contains("because it is being terminated")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16, message: &str, causes: &[(&str, &str, &str)]) -> kube::core::Status {
        serde_json::from_value(serde_json::json!({
            "status": "Failure", "code": code, "message": message, "reason": "Forbidden",
            "details": { "causes": causes.iter().map(|(reason, field, message)| serde_json::json!({
                "reason": reason, "field": field, "message": message
            })).collect::<Vec<_>>() }
        }))
        .unwrap()
    }

    #[test]
    fn a_terminating_namespace_is_recognised() {
        let terminating = status(
            403,
            "configmaps \"a\" is forbidden: unable to create new content in namespace x because it is being terminated",
            &[(
                "NamespaceTerminating",
                "",
                "namespace x is being terminated",
            )],
        );
        assert!(namespace_terminating(&terminating));
        let rbac = status(
            403,
            "configmaps is forbidden: User \"u\" cannot create resource \"configmaps\" in API group \"\" in the namespace \"x\"",
            &[],
        );
        assert!(!namespace_terminating(&rbac));
        assert!(rbac_denied(&rbac));
        assert!(!rbac_denied(&terminating));
        let quota = status(
            403,
            "deployments.apps \"a\" is forbidden: exceeded quota: q, requested: count/deployments.apps=1",
            &[],
        );
        assert!(!rbac_denied(&quota));
    }

    /// A cluster nobody listens at: explaining needs only its name.
    fn cluster() -> Cluster {
        let config = kube::Config::new("https://127.0.0.1:1".parse().unwrap());
        Cluster {
            client: kube::Client::try_from(config).unwrap(),
            context: "test".into(),
            server: "https://127.0.0.1:1".into(),
        }
    }

    fn id() -> ObjectRef {
        ObjectRef {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            namespace: Some("x".into()),
            name: "a".into(),
        }
    }

    #[tokio::test]
    async fn each_403_gets_its_own_advice() {
        let cluster = cluster();
        let explained = |status: &kube::core::Status| {
            format!("{:#}", api_error(status, "applying", &id(), &cluster))
        };
        let quota = status(
            403,
            "pods \"a\" is forbidden: exceeded quota: compute, requested: cpu=2, used: cpu=1, limited: cpu=2",
            &[],
        );
        let text = explained(&quota);
        assert!(
            text.contains("ResourceQuota") && !text.contains("RBAC"),
            "{text}"
        );
        let terminating = status(
            403,
            "unable to create new content in namespace x because it is being terminated",
            &[(
                "NamespaceTerminating",
                "",
                "namespace x is being terminated",
            )],
        );
        let text = explained(&terminating);
        assert!(
            text.contains("is being deleted") && !text.contains("RBAC"),
            "{text}"
        );
        let rbac = status(
            403,
            "deployments.apps is forbidden: User \"u\" cannot patch",
            &[],
        );
        assert!(explained(&rbac).contains("RBAC"));
    }

    #[test]
    fn invalid_causes_name_each_field() {
        let invalid = status(
            422,
            "Deployment.apps \"a\" is invalid",
            &[
                ("FieldValueInvalid", "spec.replicas", "must be >= 0"),
                ("FieldValueInvalid", "spec.selector", "field is immutable"),
            ],
        );
        assert_eq!(
            invalid_causes(&invalid),
            "spec.replicas: must be >= 0; spec.selector: field is immutable"
        );
        let policy = status(
            422,
            "denied",
            &[("FieldValueForbidden", "", "denied by policy x")],
        );
        assert_eq!(invalid_causes(&policy), "denied by policy x");
    }
}
