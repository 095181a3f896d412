//! explain: turns what the API server refused into what a person needs to
//! read: what was refused, why, and what to do next. Below `live`, `plan` and
//! `apply`, which all talk to the API server and all report its refusals.

use super::kube::Cluster;
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

/// A 403 of a ResourceQuota: the object would exceed what the namespace
/// may hold (`exceeded quota: q, requested: count/configmaps=1, ...`).
pub fn quota_exceeded(status: &kube::core::Status) -> bool {
    status.code == 403 && status.message.contains("exceeded quota")
}

/// A 403 of RBAC escalation prevention: the identity may write Roles and
/// RoleBindings, but not grant (or bind) rights it does not hold itself.
/// The API server checks it in a dry run too.
pub fn rbac_escalation(status: &kube::core::Status) -> bool {
    status.code == 403
        && status
            .message
            .contains("is attempting to grant RBAC permissions not currently held")
}

/// The rights an RBAC escalation refusal says are missing, as people write
/// them (`get, list pods`, `get secrets named db`), from the rules the
/// server prints one to a line (`{APIGroups:[""], Resources:["pods"],
/// Verbs:["get" "list"]}`); the server's own lines when they do not parse.
pub fn missing_rights(message: &str) -> Vec<String> {
    let Some((_, rules)) = message.split_once("not currently held:") else {
        return Vec::new();
    };
    rules
        .lines()
        .map(str::trim)
        .filter(|line| line.starts_with('{'))
        // The server may add `; resolution errors: ...` after the rules.
        .map(|line| line.split("; resolution errors").next().unwrap_or(line))
        .map(|rule| {
            // `Key:["a" "b"]` -> [a, b]
            let list = |key: &str| -> Option<Vec<String>> {
                let (_, rest) = rule.split_once(&format!("{key}:["))?;
                let (inside, _) = rest.split_once(']')?;
                Some(
                    inside
                        .split('"')
                        .skip(1)
                        .step_by(2)
                        .map(str::to_string)
                        .collect(),
                )
            };
            let (Some(verbs), Some(resources)) = (list("Verbs"), list("Resources")) else {
                return rule.to_string();
            };
            let group = list("APIGroups")
                .and_then(|groups| groups.into_iter().find(|g| !g.is_empty()))
                .map(|g| format!(".{g}"))
                .unwrap_or_default();
            let resources: Vec<String> = resources.iter().map(|r| format!("{r}{group}")).collect();
            let names = list("ResourceNames")
                .filter(|names| !names.is_empty())
                .map(|names| format!(" named {}", names.join(", ")))
                .unwrap_or_default();
            format!("{} {}{names}", verbs.join(", "), resources.join(", "))
        })
        .collect()
}

/// The API server refuses new objects in a namespace that is being deleted
/// with a 403 whose cause is `NamespaceTerminating`; that is no RBAC problem.
pub fn namespace_terminating(status: &kube::core::Status) -> bool {
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
    fn an_escalation_names_the_rights_missing() {
        let message = "roles.rbac.authorization.k8s.io \"agent-devops\" is forbidden: user \"ci\" (groups=[\"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:\n{APIGroups:[\"\"], Resources:[\"pods\"], Verbs:[\"get\" \"list\"]}\n{APIGroups:[\"apps\"], Resources:[\"deployments\" \"replicasets\"], ResourceNames:[\"a\"], Verbs:[\"get\"]}";
        let escalation = status(403, message, &[]);
        assert!(rbac_escalation(&escalation) && rbac_denied(&escalation));
        assert!(!quota_exceeded(&escalation));
        assert_eq!(
            missing_rights(message),
            [
                "get, list pods",
                "get deployments.apps, replicasets.apps named a"
            ]
        );
        assert!(missing_rights("forbidden").is_empty());
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
