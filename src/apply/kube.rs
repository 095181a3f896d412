//! Writes to the cluster: server-side apply with field manager `fleet`,
//! deletions, replacements, and waiting for rollouts.

use std::time::Duration;

use kube::api::{DeleteParams, Patch, PatchParams, Preconditions, PropagationPolicy};

use super::{Options, Outcome};
use crate::live::kube::{Cluster, LiveState};
use crate::plan::{Action, Change, Plan, Target};
use crate::render::ObjectRef;
use crate::{ownership, retry};

/// Carries out one change to one Kubernetes object.
pub async fn apply_change(
    cluster: &Cluster,
    live: &LiveState,
    change: &Change,
    id: &ObjectRef,
    options: &Options,
) -> anyhow::Result<&'static str> {
    let kind = live
        .kind(id)
        .ok_or_else(|| anyhow::anyhow!("{id}: the cluster does not serve {}", id.api_version))?;
    let api = kind.api(&cluster.client, id.namespace.as_deref());
    let explain =
        |action: &'static str| move |err: kube::Error| explain_read_error(err, action, id, cluster);
    let mut params = PatchParams::apply(ownership::FIELD_MANAGER);
    // Taking fields over from other managers is what these flags allow.
    params.force = options.force_conflicts || (options.adopt && live.unowned.contains_key(id));
    let body = || {
        change.desired.as_ref().ok_or_else(|| {
            anyhow::anyhow!("{id}: the plan has no object to apply (was it edited?)")
        })
    };
    match change.action {
        Action::Delete => {
            // Only the object that was planned: if it was deleted and made
            // again by someone else since, its uid differs and this fails.
            let uid = live
                .owned
                .get(id)
                .and_then(|o| o["metadata"]["uid"].as_str());
            let params = DeleteParams {
                preconditions: uid.map(|uid| Preconditions {
                    uid: Some(uid.to_string()),
                    resource_version: None,
                }),
                ..DeleteParams::background()
            };
            delete(&api, &id.name, &params)
                .await
                .map_err(explain("deleting"))?;
            Ok("destroyed")
        }
        Action::Replace => {
            let foreground = DeleteParams {
                propagation_policy: Some(PropagationPolicy::Foreground),
                ..DeleteParams::default()
            };
            delete(&api, &id.name, &foreground)
                .await
                .map_err(explain("deleting (to replace)"))?;
            wait_until_gone(&api, id).await?;
            let patch = Patch::Apply(body()?);
            retry::kube(|| api.patch(&id.name, &params, &patch))
                .await
                .map_err(explain("creating (to replace)"))?;
            Ok("replaced (destroyed, then created)")
        }
        _ => {
            let patch = Patch::Apply(body()?);
            retry::kube(|| api.patch(&id.name, &params, &patch))
                .await
                .map_err(explain("applying"))?;
            Ok(match change.action {
                Action::Create => "created",
                _ => "updated",
            })
        }
    }
}

/// Deletes, retrying transient failures; an object already gone (perhaps by
/// an earlier try whose answer was lost) is what deleting wanted.
async fn delete(
    api: &kube::Api<kube::api::DynamicObject>,
    name: &str,
    params: &DeleteParams,
) -> Result<(), kube::Error> {
    match retry::kube(|| api.delete(name, params)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(err) => Err(err),
    }
}

async fn wait_until_gone(
    api: &kube::Api<kube::api::DynamicObject>,
    id: &ObjectRef,
) -> anyhow::Result<()> {
    for _ in 0..600 {
        if api.get_opt(&id.name).await?.is_none() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!(
        "{id} was deleted but is still there after 60s (a finalizer?); it was not recreated"
    )
}

/// Waits until every Deployment the plan wrote has rolled out.
pub async fn wait_for_rollouts(
    cluster: &Cluster,
    plan: &Plan,
    timeout: Duration,
    report: &mut dyn FnMut(&Outcome),
) -> anyhow::Result<()> {
    use k8s_openapi::api::apps::v1::Deployment;
    let deadline = tokio::time::Instant::now() + timeout;
    for change in &plan.changes {
        let Target::Kubernetes(id) = &change.target else {
            continue;
        };
        if id.kind != "Deployment"
            || !matches!(
                change.action,
                Action::Create
                    | Action::Update
                    | Action::Replace
                    | Action::Conflict
                    | Action::Unowned
            )
        {
            continue;
        }
        let api: kube::Api<Deployment> = kube::Api::namespaced(
            cluster.client.clone(),
            id.namespace.as_deref().unwrap_or_default(),
        );
        loop {
            let deployment = api.get(&id.name).await?;
            if rolled_out(&deployment) {
                report(&Outcome {
                    target: change.target.clone(),
                    done: "rolled out",
                });
                break;
            }
            // Pods refused by Pod Security admission never come: say why
            // now rather than after the timeout.
            if let Some(refusal) = pods_refused_by_pod_security(cluster, &deployment).await? {
                anyhow::bail!(
                    "{id} cannot roll out: the namespace's Pod Security admission refuses its pods: {refusal}\n  Its pods must meet the namespace's `pod-security.kubernetes.io/enforce` level; the containers named above do not (a container fleet does not render was added by a mutating admission, such as a sidecar injector)."
                );
            }
            if tokio::time::Instant::now() >= deadline {
                anyhow::bail!(
                    "{id} has not rolled out after {}s; see `kubectl rollout status deployment/{} -n {}`",
                    timeout.as_secs(),
                    id.name,
                    id.namespace.as_deref().unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    Ok(())
}

/// The message of a `ReplicaFailure` condition that is Pod Security
/// admission refusing pods, e.g. `pods "agent-devops-6b7f9-x2x4q" is
/// forbidden: violates PodSecurity "restricted:latest": ...`.
fn pod_security_refusal(conditions: &serde_json::Value) -> Option<String> {
    conditions.as_array()?.iter().find_map(|c| {
        let message = c["message"].as_str()?;
        (c["type"] == "ReplicaFailure"
            && c["status"] == "True"
            && message.contains("violates PodSecurity"))
        .then(|| message.to_string())
    })
}

/// Why Pod Security admission refuses the pods of the Deployment's current
/// ReplicaSet, if it does. The Deployment's own condition may be an old
/// ReplicaSet's, so the current one (same pod template) is asked.
async fn pods_refused_by_pod_security(
    cluster: &Cluster,
    deployment: &k8s_openapi::api::apps::v1::Deployment,
) -> anyhow::Result<Option<String>> {
    use k8s_openapi::api::apps::v1::ReplicaSet;
    let status = serde_json::to_value(&deployment.status)?;
    if pod_security_refusal(&status["conditions"]).is_none() {
        return Ok(None);
    }
    let namespace = deployment.metadata.namespace.as_deref().unwrap_or_default();
    let selector = deployment
        .spec
        .selector
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let sets = kube::Api::<ReplicaSet>::namespaced(cluster.client.clone(), namespace)
        .list(&kube::api::ListParams::default().labels(&selector))
        .await?;
    // The ReplicaSet controller adds this label to the template it copies.
    let template = |value: serde_json::Value| {
        let mut template = value;
        if let Some(labels) = template["metadata"]["labels"].as_object_mut() {
            labels.remove("pod-template-hash");
        }
        template
    };
    let wanted = template(serde_json::to_value(&deployment.spec.template)?);
    for set in sets.items {
        let owned = set
            .metadata
            .owner_references
            .iter()
            .flatten()
            .any(|o| Some(&o.uid) == deployment.metadata.uid.as_ref());
        if owned && template(serde_json::to_value(&set.spec.template)?) == wanted {
            let status = serde_json::to_value(&set.status)?;
            return Ok(pod_security_refusal(&status["conditions"]));
        }
    }
    Ok(None)
}

fn rolled_out(deployment: &k8s_openapi::api::apps::v1::Deployment) -> bool {
    let (Some(generation), Some(status)) = (deployment.metadata.generation, &deployment.status)
    else {
        return false;
    };
    let desired = deployment.spec.replicas.unwrap_or(1);
    status.observed_generation.unwrap_or(0) >= generation
        && status.updated_replicas.unwrap_or(0) == desired
        && status.available_replicas.unwrap_or(0) == desired
        && status.replicas.unwrap_or(0) == desired
}

/// [`explain_api_error`] for any client error: connection failures name the
/// server and the context.
pub fn explain_read_error(
    err: kube::Error,
    action: &str,
    id: &ObjectRef,
    cluster: &Cluster,
) -> anyhow::Error {
    match err {
        kube::Error::Api(status) => explain_api_error(&status, action, id, cluster),
        other => anyhow::Error::new(other).context(format!(
            "{action} {id}: cannot reach {}; is the cluster up and the context right?",
            cluster.describe()
        )),
    }
}

/// Turns an API error into what a person needs: what was refused, why, and
/// what to do.
pub fn explain_api_error(
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
        403 => anyhow::anyhow!(
            "{action} {id}: forbidden: {}\n  The identity of {} lacks this permission{namespace}; grant it (RBAC) or use a context that has it.",
            status.message,
            cluster.describe()
        ),
        422 => {
            let causes: Vec<String> = status
                .details
                .iter()
                .flat_map(|d| d.causes.iter())
                .map(|c| format!("{}: {}", c.field, c.message))
                .collect();
            anyhow::anyhow!(
                "{action} {id}: the API server refused the object as invalid: {}",
                if causes.is_empty() {
                    status.message.clone()
                } else {
                    causes.join("; ")
                }
            )
        }
        409 => anyhow::anyhow!("{action} {id}: conflict: {}", status.message),
        code => anyhow::anyhow!(
            "{action} {id} on {}: {} ({code} {})",
            cluster.describe(),
            status.message,
            status.reason
        ),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::pod_security_refusal;

    #[test]
    fn only_pod_security_refusals_stop_the_wait() {
        let refused = "pods \"agent-devops-1\" is forbidden: violates PodSecurity \"restricted:latest\": runAsUser=0";
        let conditions = json!([
            { "type": "Available", "status": "False", "message": "Deployment does not have minimum availability." },
            { "type": "ReplicaFailure", "status": "True", "reason": "FailedCreate", "message": refused },
        ]);
        assert_eq!(pod_security_refusal(&conditions).as_deref(), Some(refused));
        // A quota may free up: that failure is left to the timeout.
        let quota = json!([{ "type": "ReplicaFailure", "status": "True",
            "message": "pods \"x\" is forbidden: exceeded quota: compute" }]);
        assert_eq!(pod_security_refusal(&quota), None);
        let cleared = json!([{ "type": "ReplicaFailure", "status": "False", "message": refused }]);
        assert_eq!(pod_security_refusal(&cleared), None);
        assert_eq!(pod_security_refusal(&serde_json::Value::Null), None);
    }
}
