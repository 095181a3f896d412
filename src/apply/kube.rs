//! Writes to the cluster: server-side apply with field manager `fleet`,
//! deletions and replacements. Waiting for rollouts is [`super::rollout`].

use std::time::Duration;

use kube::api::{DeleteParams, Patch, PatchParams, Preconditions, PropagationPolicy};

use super::Options;
use crate::client::kube::{Cluster, patch_text};
use crate::client::{explain, retry};
use crate::live::kube::LiveState;
use crate::ownership;
use crate::plan::{Action, Change, Handover, takeover};
use crate::redact::Body;
use crate::render::ObjectRef;

/// Carries out one change to one Kubernetes object.
pub(super) async fn apply_change(
    cluster: &Cluster,
    live: &LiveState,
    change: &Change,
    id: &ObjectRef,
    options: &Options,
    annotations: Option<&serde_json::Map<String, serde_json::Value>>,
) -> anyhow::Result<&'static str> {
    let kind = live
        .kind(id)
        .ok_or_else(|| anyhow::anyhow!("{id}: the cluster does not serve {}", id.api_version))?;
    let api = kind.api(&cluster.client, id.namespace.as_deref());
    let explained = |action: &'static str| {
        move |err: kube::Error| explain::client_error(err, action, id, cluster)
    };
    let mut params = ownership::apply_params();
    // Taking fields over from other managers is what these flags allow.
    params.force = options.force_conflicts
        || (options.adopt && live.unowned.contains_key(id))
        || change.handover == Some(Handover::TakesBack);
    // The planned body, with `annotations` added (the ApplySet parent's
    // provenance, which is not part of the plan).
    let body = || {
        let mut body = change
            .desired
            .as_ref()
            .map(Body::sent)
            .cloned()
            .ok_or_else(|| {
                anyhow::anyhow!("{id}: the plan has no object to apply (was it edited?)")
            })?;
        if let Some(extra) = annotations.filter(|a| !a.is_empty())
            && let Some(metadata) = body["metadata"].as_object_mut()
            && let Some(existing) = metadata
                .entry("annotations")
                .or_insert_with(|| serde_json::json!({}))
                .as_object_mut()
        {
            existing.extend(extra.clone());
        }
        if super::mints(change) {
            mint_into(&mut body, id, options)?;
        }
        anyhow::Ok(body)
    };
    match change.action {
        Action::Delete if change.handover == Some(Handover::Orphans) => {
            // The garbage collector drops the ScaledObject's owner reference
            // from its HPA instead of deleting it; gone means freed.
            let params = DeleteParams {
                preconditions: planned_uid(live, id),
                ..DeleteParams::orphan()
            };
            delete(&api, &id.name, &params)
                .await
                .map_err(explained("deleting"))?;
            wait_until_gone(&api, id).await?;
            Ok("destroyed (its HPA kept for fleet's)")
        }
        Action::Delete => {
            let params = DeleteParams {
                preconditions: planned_uid(live, id),
                ..DeleteParams::background()
            };
            delete(&api, &id.name, &params)
                .await
                .map_err(explained("deleting"))?;
            Ok("destroyed")
        }
        Action::Replace => {
            let body = body()?;
            let foreground = DeleteParams {
                propagation_policy: Some(PropagationPolicy::Foreground),
                preconditions: planned_uid(live, id),
                ..DeleteParams::default()
            };
            delete(&api, &id.name, &foreground)
                .await
                .map_err(explained("deleting (to replace)"))?;
            wait_until_gone(&api, id).await?;
            let patch = Patch::Apply(body);
            retry::kube(|| apply_unread(cluster, &api, &id.name, &params, &patch))
                .await
                .map_err(explained("creating (to replace)"))
                .map_err(|err| {
                    err.context(format!(
                        "{id} was deleted to be replaced and could not be created again: it is missing now. Fix the cause, then run apply again: it creates {id}"
                    ))
                })?;
            Ok("replaced (destroyed, then created)")
        }
        _ => {
            if let Some(drift) = change.drift.as_ref().filter(|d| !d.managers.is_empty()) {
                release_fields(&api, id, &drift.managers)
                    .await
                    .map_err(explained("taking back the fields of a hand edit to"))?;
            }
            let patch = Patch::Apply(body()?);
            retry::kube(|| apply_unread(cluster, &api, &id.name, &params, &patch))
                .await
                .map_err(explained("applying"))?;
            Ok(match change.action {
                Action::Create => "created",
                Action::NoOp => "inventory recorded",
                _ => "updated",
            })
        }
    }
}

/// Mints the agent's NATS user into its credentials Secret: the creds file
/// as its data, and the user's public key and expiry beside the
/// permissions the plan showed.
fn mint_into(
    body: &mut serde_json::Value,
    id: &ObjectRef,
    options: &Options,
) -> anyhow::Result<()> {
    use base64::Engine as _;
    let minting = options.minting.as_ref().ok_or_else(|| {
        anyhow::anyhow!(
            "{id}: minting needs the account signing key (FLEET_NATS_ACCOUNT_SIGNING_KEY)"
        )
    })?;
    let key = crate::credentials::account_key(minting.signing_key.expose())?;
    let annotations = &body["metadata"]["annotations"];
    let permissions: crate::credentials::Permissions = serde_json::from_str(
        annotations[crate::credentials::PERMISSIONS_ANNOTATION]
            .as_str()
            .unwrap_or_default(),
    )?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let expires = now + minting.validity.as_secs();
    let user = id.name.trim_end_matches("-nats");
    let minted =
        crate::credentials::mint_user(&key, &minting.account, user, &permissions, now, expires);
    body["metadata"]["annotations"][crate::credentials::USER_ANNOTATION] =
        serde_json::Value::from(minted.public_key.clone());
    body["metadata"]["annotations"][crate::credentials::EXPIRES_ANNOTATION] =
        serde_json::Value::from(expires.to_string());
    body["data"] = serde_json::json!({
        crate::render::kube::CREDS_FILE:
            base64::engine::general_purpose::STANDARD.encode(minted.creds.expose()),
    });
    Ok(())
}

/// A server-side apply whose answer is not read: only its status matters,
/// and parsing thousands of returned objects would cost CPU the API server
/// is short of during a large apply.
async fn apply_unread(
    cluster: &Cluster,
    api: &kube::Api<kube::api::DynamicObject>,
    name: &str,
    params: &PatchParams,
    patch: &Patch<serde_json::Value>,
) -> Result<(), kube::Error> {
    patch_text(&cluster.client, api, name, params, patch)
        .await
        .map(drop)
}

/// Only the object that was planned is deleted: if it was deleted and made
/// again by someone else since, its uid differs and the delete fails.
fn planned_uid(live: &LiveState, id: &ObjectRef) -> Option<Preconditions> {
    let uid = live.owned.get(id).or_else(|| live.unowned.get(id))?["metadata"]["uid"].as_str()?;
    Some(Preconditions {
        uid: Some(uid.to_string()),
        resource_version: None,
    })
}

/// Takes the fields of hand edits (`kubectl-edit`, `kubectl-scale`,
/// `kubectl set env`, ...) over before applying, as Flux does: their
/// managedFields entries go, and their fields join fleet's Apply entry
/// (`plan::takeover::taken_over`). The apply that follows then sets fleet's
/// values without forcing, and removes what a hand edit added beside
/// fleet's fields, since fleet now owns it and does not send it. Each try
/// reads the object afresh and patches only if its resourceVersion is
/// unchanged, so a concurrent writer's entry is never lost.
async fn release_fields(
    api: &kube::Api<kube::api::DynamicObject>,
    id: &ObjectRef,
    managers: &[String],
) -> Result<(), kube::Error> {
    for _ in 0..3 {
        let Some(live) = retry::kube(|| api.get_opt(&id.name)).await? else {
            return Ok(());
        };
        let entries: Vec<serde_json::Value> = live
            .metadata
            .managed_fields
            .iter()
            .flatten()
            .map(|e| serde_json::to_value(e).expect("managedFields serialise"))
            .collect();
        let written = takeover::taken_over(&entries, managers, &id.api_version);
        if written == entries {
            return Ok(());
        }
        // A list in a merge patch replaces the whole list; the
        // resourceVersion makes the patch apply only to what was read.
        let patch = serde_json::json!({
            "metadata": {
                "resourceVersion": live.metadata.resource_version,
                "managedFields": written,
            }
        });
        match api
            .patch(&id.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => return Ok(()),
            // Changed since it was read: read it again.
            Err(kube::Error::Api(status)) if status.code == 409 => continue,
            Err(err) => return Err(err),
        }
    }
    Ok(())
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
