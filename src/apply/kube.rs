//! Writes to the cluster: server-side apply with field manager `fleet`,
//! deletions and replacements. Waiting for rollouts is [`super::rollout`].

use std::time::Duration;

use kube::api::{DeleteParams, Patch, PatchParams, Preconditions, PropagationPolicy};

use super::Options;
use crate::live::kube::{Cluster, LiveState};
use crate::plan::{Action, Change};
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
