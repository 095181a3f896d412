//! `on_failure = "rollback"`: a wave that failed its gate is put back on
//! what its Deployments ran before, as `kubectl rollout undo` does: each
//! Deployment's pod template becomes its previous ReplicaSet's again.
//!
//! Only pod templates go back. The wave's other objects (ConfigMaps, RBAC,
//! Services, network policies, autoscalers) and every JetStream change stay
//! as this apply wrote them. The rollback writes as its own field manager,
//! [`MANAGER`], which fleet counts among the imperative ones: the next plan
//! shows the definition's template as drift to restore, and the next apply
//! (after a fix) rolls it out again.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::{Value, json};

use super::rollout::{REVISION_ANNOTATION, Waited};

use crate::ownership::ROLLBACK_MANAGER as MANAGER;

/// Puts each Deployment back on its previous ReplicaSet's pod template:
/// for each, the revision it went back to, or why it could not (a new
/// Deployment has none to go back to).
pub(crate) async fn roll_back(
    client: &Client,
    deployments: &[Waited],
) -> Vec<(String, Result<String, String>)> {
    let mut outcomes = Vec::new();
    for waited in deployments {
        let name = waited.deployment.name.clone();
        outcomes.push((name, roll_back_one(client, waited).await));
    }
    outcomes
}

async fn roll_back_one(client: &Client, waited: &Waited) -> Result<String, String> {
    let namespace = waited.deployment.namespace.as_deref().unwrap_or_default();
    let name = &waited.deployment.name;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let deployment = crate::client::retry::kube(|| deployments.get(name))
        .await
        .map_err(|err| format!("reading it: {err}"))?;
    let params = ListParams::default().labels(&waited.label_selector());
    let replica_sets: Api<ReplicaSet> = Api::namespaced(client.clone(), namespace);
    let replica_sets = crate::client::retry::kube(|| replica_sets.list(&params))
        .await
        .map_err(|err| format!("reading its ReplicaSets: {err}"))?;
    let revision = |meta: &kube::api::ObjectMeta| -> Option<u64> {
        meta.annotations
            .as_ref()?
            .get(REVISION_ANNOTATION)?
            .parse()
            .ok()
    };
    let current = revision(&deployment.metadata).ok_or("it has no revision yet")?;
    let previous = replica_sets
        .items
        .iter()
        .filter_map(|rs| Some((revision(&rs.metadata)?, rs)))
        .filter(|(n, _)| *n < current)
        .max_by_key(|(n, _)| *n)
        .ok_or("it has no previous revision to go back to (it is new)")?;
    let mut template =
        serde_json::to_value(previous.1).map_err(|err| err.to_string())?["spec"]["template"].take();
    if template.is_null() {
        return Err("its previous ReplicaSet has no pod template".into());
    }
    // The ReplicaSet's own label, which the Deployment's template never has.
    if let Some(labels) = template["metadata"]["labels"].as_object_mut() {
        labels.remove("pod-template-hash");
    }
    let now = serde_json::to_value(&deployment).map_err(|err| err.to_string())?["spec"]["template"]
        .take();
    let patch = json!({ "spec": { "template": merge_patch(&now, &template) } });
    let params = PatchParams {
        field_manager: Some(MANAGER.into()),
        ..PatchParams::default()
    };
    let patch = Patch::Merge(&patch);
    crate::client::retry::kube(|| deployments.patch(name, &params, &patch))
        .await
        .map_err(|err| format!("writing its previous template: {err}"))?;
    Ok(format!("back on revision {}", previous.0))
}

/// The JSON merge patch (RFC 7386) that turns `from` into `to`: keys only
/// `from` has are removed (null), objects are patched key by key, anything
/// else is replaced.
fn merge_patch(from: &Value, to: &Value) -> Value {
    match (from, to) {
        (Value::Object(from), Value::Object(to)) => {
            let mut patch = serde_json::Map::new();
            for key in from.keys().filter(|key| !to.contains_key(*key)) {
                patch.insert(key.clone(), Value::Null);
            }
            for (key, value) in to {
                match from.get(key) {
                    Some(old) if old == value => {}
                    Some(old) => {
                        patch.insert(key.clone(), merge_patch(old, value));
                    }
                    None => {
                        patch.insert(key.clone(), value.clone());
                    }
                }
            }
            Value::Object(patch)
        }
        _ => to.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_merge_patch_removes_what_only_the_new_template_has() {
        let now = json!({ "metadata": { "labels": { "app": "a", "crash": "true" } },
                          "spec": { "containers": [{ "image": "i:2" }] } });
        let before = json!({ "metadata": { "labels": { "app": "a" } },
                             "spec": { "containers": [{ "image": "i:1" }] } });
        let patch = merge_patch(&now, &before);
        assert_eq!(
            patch,
            json!({ "metadata": { "labels": { "crash": null } },
                    "spec": { "containers": [{ "image": "i:1" }] } })
        );
    }
}
