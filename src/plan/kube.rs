//! Planning the Kubernetes side: each desired object is dry-run applied with
//! fleet's field manager and the result compared with the live object, so API
//! defaulting never shows as a change; owned objects no longer desired are
//! destroyed.

use std::collections::BTreeSet;

use futures::{StreamExt, stream};
use kube::api::{Patch, PatchParams};
use serde_json::Value;

use super::{Action, Change, Target};
use crate::live::kube::{Cluster, LiveState};
use crate::render::{DesiredObject, ObjectRef, Wave};
use crate::{ownership, retry};

pub struct Options {
    pub concurrency: usize,
    /// Plan as `apply --force-conflicts` would apply: take fields over.
    pub force_conflicts: bool,
    /// Plan as `apply --adopt` would: take over same-named unowned objects.
    pub adopt: bool,
}

/// What a server-side dry-run apply said about one object.
enum DryRun {
    /// The object as it would be stored.
    Accepted(Value),
    /// 409 FieldManagerConflict: (manager, field) pairs.
    Conflict(Vec<String>),
    /// 422 on an immutable field.
    Immutable(String),
    /// The namespace does not exist yet, so there is nothing to dry-run
    /// against: the object will be created as rendered.
    NamespaceMissing,
}

pub async fn plan(
    cluster: &Cluster,
    desired: &[DesiredObject],
    live: &LiveState,
    options: &Options,
) -> anyhow::Result<Vec<Change>> {
    let mut changes = Vec::new();
    let mut to_dry_run = Vec::new();
    // In a namespace that does not exist yet everything is new, and a dry run
    // could only answer "namespace not found": skip thousands of requests.
    let namespace_exists = |namespace: &str| {
        live.owned
            .keys()
            .chain(live.unowned.keys())
            .any(|id| id.kind == "Namespace" && id.name == namespace)
    };
    for object in desired {
        if live.kind(&object.id).is_none() {
            changes.push(Change {
                target: Target::Kubernetes(object.id.clone()),
                action: Action::NotInstalled,
                wave: object.wave(),
                reason: Some(format!(
                    "the cluster does not serve {} ({}); install its CRD, then plan again",
                    object.id.kind, object.id.api_version
                )),
                diff: None,
                desired: None,
                loses_data: false,
            });
        } else if live.unowned.contains_key(&object.id) && !options.adopt {
            changes.push(Change {
                target: Target::Kubernetes(object.id.clone()),
                action: Action::Unowned,
                wave: object.wave(),
                reason: Some("an object of this name exists without fleet's labels; apply with --adopt to take it over".into()),
                diff: None,
                desired: Some(object.body.clone()),
                loses_data: false,
            });
        } else if object
            .id
            .namespace
            .as_deref()
            .is_some_and(|ns| !namespace_exists(ns))
        {
            changes.push(classify(object, None, DryRun::NamespaceMissing));
        } else {
            to_dry_run.push(object);
        }
    }

    let planned: Vec<anyhow::Result<Change>> = stream::iter(to_dry_run)
        .map(|object| plan_object(cluster, live, object, options))
        .buffer_unordered(options.concurrency.max(1))
        .collect()
        .await;
    for change in planned {
        changes.push(change?);
    }

    // Owned, and no longer desired: destroy.
    let desired_ids: BTreeSet<&ObjectRef> = desired.iter().map(|d| &d.id).collect();
    for (id, object) in &live.owned {
        if !desired_ids.contains(id) {
            changes.push(Change {
                target: Target::Kubernetes(id.clone()),
                action: Action::Delete,
                wave: Wave::of_kind(&id.kind),
                reason: None,
                diff: Some(unified_diff(&id.kind, Some(object), None)),
                desired: None,
                loses_data: false,
            });
        }
    }
    Ok(changes)
}

/// Dry-runs one object and classifies the result against its live state.
async fn plan_object(
    cluster: &Cluster,
    live: &LiveState,
    object: &DesiredObject,
    options: &Options,
) -> anyhow::Result<Change> {
    let before = live
        .owned
        .get(&object.id)
        .or_else(|| live.unowned.get(&object.id));
    let result = dry_run(cluster, live, object, options.force_conflicts).await?;
    let conflict = matches!(result, DryRun::Conflict(_));
    let mut change = classify(object, before, result);
    // For a conflict, also show what taking the fields over would change.
    if conflict
        && let (DryRun::Accepted(after), Some(before)) =
            (dry_run(cluster, live, object, true).await?, before)
    {
        change.diff = Some(unified_diff(&object.id.kind, Some(before), Some(&after)));
    }
    Ok(change)
}

fn classify(object: &DesiredObject, before: Option<&Value>, dry_run: DryRun) -> Change {
    let change = |action, reason: Option<String>, diff: Option<String>| Change {
        target: Target::Kubernetes(object.id.clone()),
        action,
        wave: object.wave(),
        reason,
        diff,
        desired: Some(object.body.clone()),
        loses_data: false,
    };
    match dry_run {
        DryRun::NamespaceMissing => change(
            Action::Create,
            None,
            Some(unified_diff(&object.id.kind, None, Some(&object.body))),
        ),
        DryRun::Conflict(fields) => change(
            Action::Conflict,
            Some(format!(
                "{}; apply with --force-conflicts to take these fields over",
                fields.join("; ")
            )),
            None,
        ),
        DryRun::Immutable(reason) => change(
            Action::Replace,
            Some(reason),
            Some(unified_diff(&object.id.kind, before, Some(&object.body))),
        ),
        DryRun::Accepted(after) => match before {
            None => change(
                Action::Create,
                None,
                Some(unified_diff(&object.id.kind, None, Some(&after))),
            ),
            Some(before) => {
                if comparable(before) == comparable(&after) {
                    change(Action::NoOp, None, None)
                } else {
                    change(
                        Action::Update,
                        None,
                        Some(unified_diff(&object.id.kind, Some(before), Some(&after))),
                    )
                }
            }
        },
    }
}

async fn dry_run(
    cluster: &Cluster,
    live: &LiveState,
    object: &DesiredObject,
    force: bool,
) -> anyhow::Result<DryRun> {
    let kind = live
        .kind(&object.id)
        .expect("planned only for installed kinds");
    let api = kind.api(&cluster.client, object.id.namespace.as_deref());
    let mut params = PatchParams::apply(ownership::FIELD_MANAGER).dry_run();
    params.force = force;
    let patch = Patch::Apply(&object.body);
    match retry::kube(|| api.patch(&object.id.name, &params, &patch)).await {
        Ok(result) => Ok(DryRun::Accepted(serde_json::to_value(result)?)),
        Err(kube::Error::Api(status)) => {
            let causes = status
                .details
                .as_ref()
                .map(|d| d.causes.as_slice())
                .unwrap_or_default();
            if status.code == 409
                && !causes.is_empty()
                && causes.iter().all(|c| c.reason == "FieldManagerConflict")
            {
                return Ok(DryRun::Conflict(
                    causes
                        .iter()
                        .map(|c| format!("{} ({})", c.field, c.message))
                        .collect(),
                ));
            }
            let immutable: Vec<String> = causes
                .iter()
                .filter(|c| {
                    [
                        "field is immutable",
                        "may not change once set",
                        "cannot change roleRef",
                    ]
                    .iter()
                    .any(|m| c.message.contains(m))
                })
                .map(|c| format!("{}: {}", c.field, c.message))
                .collect();
            if status.code == 422 && !immutable.is_empty() {
                return Ok(DryRun::Immutable(format!(
                    "{} forces replacement",
                    immutable.join("; ")
                )));
            }
            if status.code == 404
                && object.id.namespace.is_some()
                && status
                    .details
                    .as_ref()
                    .is_some_and(|d| d.kind == "namespaces")
            {
                return Ok(DryRun::NamespaceMissing);
            }
            Err(crate::apply::explain_api_error(
                &status, "planning", &object.id, cluster,
            ))
        }
        Err(err) => Err(anyhow::Error::new(err).context(format!(
            "planning {} on {}",
            object.id,
            cluster.describe()
        ))),
    }
}

/// The object without what is not the user's: server bookkeeping and status.
pub fn comparable(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(map) = object.as_object_mut() {
        // LIST items carry no apiVersion and kind; the identity is known anyway.
        for key in ["apiVersion", "kind", "status"] {
            map.remove(key);
        }
    }
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        for key in [
            "managedFields",
            "resourceVersion",
            "generation",
            "uid",
            "creationTimestamp",
            "selfLink",
        ] {
            metadata.remove(key);
        }
        if let Some(annotations) = metadata
            .get_mut("annotations")
            .and_then(Value::as_object_mut)
        {
            // Written by the Deployment controller on every rollout.
            annotations.remove("deployment.kubernetes.io/revision");
            if annotations.is_empty() {
                metadata.remove("annotations");
            }
        }
    }
    object
}

/// Secret values never leave the cluster through fleet's output.
fn masked(kind: &str, object: &Value) -> Value {
    let mut object = comparable(object);
    if kind == "Secret" {
        for field in ["data", "stringData"] {
            if let Some(values) = object.get_mut(field).and_then(Value::as_object_mut) {
                for value in values.values_mut() {
                    *value = Value::String("(sensitive value)".into());
                }
            }
        }
    }
    object
}

/// Unified diff of two objects' YAML (either may be absent).
pub fn unified_diff(kind: &str, before: Option<&Value>, after: Option<&Value>) -> String {
    let yaml = |v: Option<&Value>| {
        v.map(|v| serde_saphyr::to_string(&masked(kind, v)).unwrap_or_default())
            .unwrap_or_default()
    };
    let (before, after) = (yaml(before), yaml(after));
    let diff = similar::TextDiff::from_lines(&before, &after);
    let mut out = String::new();
    for hunk in diff.unified_diff().context_radius(3).iter_hunks() {
        out.push_str(&hunk.to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn bookkeeping_is_not_a_change() {
        let live = json!({
            "metadata": { "name": "a", "resourceVersion": "1", "generation": 1, "managedFields": [],
                          "annotations": { "deployment.kubernetes.io/revision": "1" } },
            "spec": { "replicas": 2 }, "status": { "readyReplicas": 2 }
        });
        let dry_run = json!({ "metadata": { "name": "a", "resourceVersion": "1", "generation": 2 }, "spec": { "replicas": 2 } });
        assert_eq!(comparable(&live), comparable(&dry_run));
    }

    #[test]
    fn diff_shows_the_changed_line() {
        let before = json!({ "spec": { "image": "agent:1", "replicas": 1 } });
        let after = json!({ "apiVersion": "apps/v1", "kind": "Deployment", "spec": { "image": "agent:2", "replicas": 1 } });
        let diff = unified_diff("Deployment", Some(&before), Some(&after));
        assert!(diff.contains("-  image: agent:1\n"), "{diff}");
        assert!(diff.contains("+  image: agent:2\n"), "{diff}");
    }

    #[test]
    fn secret_values_are_masked() {
        let secret = json!({ "kind": "Secret", "data": { "token": "c2VjcmV0" } });
        let diff = unified_diff("Secret", None, Some(&secret));
        assert!(!diff.contains("c2VjcmV0"), "{diff}");
        assert!(diff.contains("(sensitive value)"), "{diff}");
    }
}
