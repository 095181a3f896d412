//! The autoscaler half of a wave's gate: an autoscaler of the wave that
//! worked before the wave was written must still work once its pods have
//! soaked. One that did not work before (a new agent, a metric nothing
//! serves here: the plan's wiring notes say so) is not judged, so a gate
//! fails only on what the change broke. Reads only.

use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube::{Api, Client};
use serde_json::Value;

use crate::plan::{Action, Plan, Target};
use crate::render::ObjectRef;

/// How an autoscaler says it is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Health {
    /// It reads its metrics (an HPA's ScalingActive, a ScaledObject's
    /// Ready, are True).
    Working,
    /// It says it cannot: which condition, its reason and message.
    Failing(String),
    /// Missing, or no verdict yet.
    Unknown,
}

/// The autoscalers of the agents in `plan` (a wave's part of the plan)
/// that stay: fleet's HPAs and KEDA's ScaledObjects, written or unchanged.
pub(crate) fn of_wave(plan: &Plan) -> Vec<ObjectRef> {
    plan.changes
        .iter()
        .filter(|change| change.agent.is_some() && change.action != Action::Delete)
        .filter_map(|change| match &change.target {
            Target::Kubernetes(id) if kind_of(id).is_some() => Some(id.clone()),
            _ => None,
        })
        .collect()
}

fn kind_of(id: &ObjectRef) -> Option<&'static str> {
    match (id.group(), id.kind.as_str()) {
        ("autoscaling", "HorizontalPodAutoscaler") => Some("horizontalpodautoscalers"),
        ("keda.sh", "ScaledObject") => Some("scaledobjects"),
        _ => None,
    }
}

/// Reads the health of each of `autoscalers`, in order.
pub(crate) async fn read(
    client: &Client,
    autoscalers: &[ObjectRef],
) -> anyhow::Result<Vec<Health>> {
    let mut healths = Vec::with_capacity(autoscalers.len());
    for id in autoscalers {
        let plural = kind_of(id).unwrap_or_default();
        let (group, version) = id.api_version.rsplit_once('/').unwrap_or(("", ""));
        let resource = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk(group, version, &id.kind),
            plural,
        );
        let namespace = id.namespace.as_deref().unwrap_or_default();
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
        let object =
            crate::client::retry::kube(|| crate::client::kube::get_json(client, &api, &id.name))
                .await
                .map_err(|err| anyhow::anyhow!("reading {id} to judge its wave: {err}"))?;
        healths.push(object.map_or(Health::Unknown, |object| health(&id.kind, &object)));
    }
    Ok(healths)
}

/// What an HPA's or a ScaledObject's conditions say. Pure.
pub(crate) fn health(kind: &str, object: &Value) -> Health {
    let conditions = object["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let condition = |type_: &str| conditions.iter().find(|c| c["type"] == type_);
    let failing = |c: &Value| {
        let text = |field: &str| c[field].as_str().unwrap_or_default().to_string();
        Health::Failing(format!(
            "{}={} ({}): {}",
            text("type"),
            text("status"),
            text("reason"),
            text("message")
        ))
    };
    if kind == "ScaledObject" {
        // KEDA holds the fallback replicas while it cannot read a trigger.
        if let Some(fallback) = condition("Fallback").filter(|c| c["status"] == "True") {
            return failing(fallback);
        }
        return match condition("Ready") {
            Some(ready) if ready["status"] == "True" => Health::Working,
            Some(ready)
                if ready["status"] == "False" || ready["reason"] == "PartialTriggerError" =>
            {
                failing(ready)
            }
            _ => Health::Unknown,
        };
    }
    if let Some(unable) = condition("AbleToScale").filter(|c| c["status"] == "False") {
        return failing(unable);
    }
    match condition("ScalingActive") {
        Some(active) if active["status"] == "True" => Health::Working,
        Some(active) if active["status"] == "False" => failing(active),
        _ => Health::Unknown,
    }
}

/// The first autoscaler that worked `before` and fails `after`: why, for
/// the halt report.
pub(crate) fn broken(
    autoscalers: &[ObjectRef],
    before: &[Health],
    after: &[Health],
) -> Option<String> {
    autoscalers
        .iter()
        .zip(before.iter().zip(after))
        .find_map(|(id, (before, after))| match (before, after) {
            (Health::Working, Health::Failing(why)) => Some(format!(
                "{} {} stopped working during the wave: {why}; see `kubectl describe {} {} -n {}`",
                id.kind,
                id.name,
                id.kind.to_lowercase(),
                id.name,
                id.namespace.as_deref().unwrap_or_default()
            )),
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn id(kind: &str, name: &str) -> ObjectRef {
        ObjectRef {
            api_version: if kind == "ScaledObject" {
                "keda.sh/v1alpha1".into()
            } else {
                "autoscaling/v2".into()
            },
            kind: kind.into(),
            namespace: Some("ns".into()),
            name: name.into(),
        }
    }

    #[test]
    fn conditions_say_whether_an_autoscaler_works() {
        let hpa = |status: &str| {
            json!({ "status": { "conditions": [
                { "type": "AbleToScale", "status": "True", "reason": "ReadyForNewScale" },
                { "type": "ScalingActive", "status": status, "reason": "FailedGetExternalMetric", "message": "unable to get external metric" },
            ]}})
        };
        assert_eq!(
            health("HorizontalPodAutoscaler", &hpa("True")),
            Health::Working
        );
        assert_eq!(
            health("HorizontalPodAutoscaler", &hpa("False")),
            Health::Failing(
                "ScalingActive=False (FailedGetExternalMetric): unable to get external metric"
                    .into()
            )
        );
        assert_eq!(
            health("HorizontalPodAutoscaler", &json!({})),
            Health::Unknown
        );

        let scaled_object = |ready: &str, reason: &str, fallback: &str| {
            json!({ "status": { "conditions": [
                { "type": "Ready", "status": ready, "reason": reason, "message": "Triggers defined in ScaledObject are not working correctly" },
                { "type": "Fallback", "status": fallback, "reason": "FallbackExists", "message": "At least one trigger is falling back on this scaled object" },
            ]}})
        };
        assert_eq!(
            health(
                "ScaledObject",
                &scaled_object("True", "ScaledObjectReady", "False")
            ),
            Health::Working
        );
        assert!(matches!(
            health("ScaledObject", &scaled_object("False", "TriggerError", "False")),
            Health::Failing(why) if why.starts_with("Ready=False (TriggerError)")
        ));
        assert!(matches!(
            health(
                "ScaledObject",
                &scaled_object("Unknown", "PartialTriggerError", "False")
            ),
            Health::Failing(_)
        ));
        assert!(matches!(
            health("ScaledObject", &scaled_object("True", "ScaledObjectReady", "True")),
            Health::Failing(why) if why.starts_with("Fallback=True")
        ));
        assert_eq!(
            health(
                "ScaledObject",
                &scaled_object("Unknown", "ScaledObjectCheckFailed", "False")
            ),
            Health::Unknown
        );
    }

    #[test]
    fn only_an_autoscaler_that_worked_before_fails_the_gate() {
        let ids = [
            id("ScaledObject", "agent-a"),
            id("HorizontalPodAutoscaler", "agent-b-hpa"),
        ];
        let failing = Health::Failing("Ready=False (TriggerError): x".into());
        // Never worked (a metric nothing serves here): not the change's doing.
        assert_eq!(
            broken(
                &ids,
                &[Health::Unknown, Health::Failing("y".into())],
                &[failing.clone(), failing.clone()]
            ),
            None
        );
        assert_eq!(
            broken(
                &ids,
                &[Health::Working, Health::Working],
                &[Health::Working, Health::Unknown]
            ),
            None
        );
        assert_eq!(
            broken(
                &ids,
                &[Health::Working, Health::Working],
                &[failing, Health::Working]
            )
            .unwrap(),
            "ScaledObject agent-a stopped working during the wave: Ready=False (TriggerError): x; see `kubectl describe scaledobject agent-a -n ns`"
        );
    }
}
