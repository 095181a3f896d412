//! Switching an agent between autoscaling engines without two autoscalers on
//! its Deployment, or none. Both engines end in one HorizontalPodAutoscaler
//! of the same name (`agent-<role>-hpa`): fleet's own, or the one KEDA makes
//! for a ScaledObject (`spec.advanced.horizontalPodAutoscalerConfig.name`).
//!
//! - hpa -> keda: KEDA takes an existing HPA of that name over in place (it
//!   updates it and becomes its controller), so fleet's HPA is handed over,
//!   not deleted: deleting it would leave the agent unscaled until KEDA
//!   noticed and made it again.
//! - keda -> hpa: the ScaledObject is deleted first, orphaning its HPA (the
//!   garbage collector drops KEDA's owner reference instead of the HPA), and
//!   fleet then applies its own HPA over it.
//!
//! Pure: desired objects and what was read of the live ones.

use serde_json::Value;

use crate::live::kube::LiveState;
use crate::render::{DesiredObject, ObjectRef};

const SCALED_OBJECT: &str = "ScaledObject";
const HPA: &str = "HorizontalPodAutoscaler";

/// The name of the HPA KEDA makes for a ScaledObject body.
pub fn keda_hpa_name(scaled_object: &Value) -> String {
    match scaled_object
        .pointer("/spec/advanced/horizontalPodAutoscalerConfig/name")
        .and_then(Value::as_str)
    {
        Some(name) if !name.is_empty() => name.to_string(),
        _ => format!(
            "keda-hpa-{}",
            scaled_object["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
        ),
    }
}

/// For fleet's HPA `id`, no longer desired: the desired ScaledObject that
/// takes it over.
pub fn taken_over_by<'a>(desired: &'a [DesiredObject], id: &ObjectRef) -> Option<&'a ObjectRef> {
    if id.kind != HPA {
        return None;
    }
    desired
        .iter()
        .find(|d| {
            d.id.kind == SCALED_OBJECT
                && d.id.namespace == id.namespace
                && keda_hpa_name(&d.body) == id.name
        })
        .map(|d| &d.id)
}

/// For the desired HPA `id`, found live but not fleet's: the ScaledObject of
/// fleet's that controls it and is no longer desired, which hands it back.
pub fn handed_back_by<'a>(
    live: &'a LiveState,
    desired: &[DesiredObject],
    id: &ObjectRef,
) -> Option<&'a ObjectRef> {
    if id.kind != HPA {
        return None;
    }
    let hpa = live.unowned.get(id)?;
    let controller = hpa["metadata"]["ownerReferences"]
        .as_array()?
        .iter()
        .find(|r| r["controller"] == true && r["kind"] == SCALED_OBJECT)?;
    let (scaled, _) = live.owned.iter().find(|(owned, _)| {
        owned.kind == SCALED_OBJECT
            && owned.namespace == id.namespace
            && controller["name"] == owned.name.as_str()
    })?;
    let still_desired = desired.iter().any(|d| &d.id == scaled);
    (!still_desired).then_some(scaled)
}

/// Whether the live ScaledObject `id`, which fleet deletes, leaves its HPA
/// to a desired HPA of fleet's: then it is deleted orphaning it, first.
pub fn hands_back(live: &LiveState, desired: &[DesiredObject], id: &ObjectRef) -> bool {
    id.kind == SCALED_OBJECT
        && live.owned.get(id).is_some_and(|scaled| {
            let name = keda_hpa_name(scaled);
            desired
                .iter()
                .any(|d| d.id.kind == HPA && d.id.namespace == id.namespace && d.id.name == name)
        })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn id(kind: &str, name: &str) -> ObjectRef {
        ObjectRef {
            api_version: match kind {
                HPA => "autoscaling/v2",
                _ => "keda.sh/v1alpha1",
            }
            .into(),
            kind: kind.into(),
            namespace: Some("agents".into()),
            name: name.into(),
        }
    }

    fn scaled_object(hpa_name: Option<&str>) -> Value {
        let mut body = json!({
            "apiVersion": "keda.sh/v1alpha1", "kind": SCALED_OBJECT,
            "metadata": { "name": "agent-a", "namespace": "agents" },
            "spec": {},
        });
        if let Some(name) = hpa_name {
            body["spec"]["advanced"] = json!({ "horizontalPodAutoscalerConfig": { "name": name } });
        }
        body
    }

    #[test]
    fn keda_names_the_hpa_as_told_or_after_the_scaled_object() {
        assert_eq!(
            keda_hpa_name(&scaled_object(Some("agent-a-hpa"))),
            "agent-a-hpa"
        );
        assert_eq!(keda_hpa_name(&scaled_object(None)), "keda-hpa-agent-a");
    }

    #[test]
    fn fleets_hpa_is_taken_over_only_by_a_scaled_object_naming_it() {
        let desired = [DesiredObject::from_json(scaled_object(Some("agent-a-hpa")))];
        assert_eq!(
            taken_over_by(&desired, &id(HPA, "agent-a-hpa")),
            Some(&id(SCALED_OBJECT, "agent-a"))
        );
        assert_eq!(taken_over_by(&desired, &id(HPA, "agent-b-hpa")), None);
        let unnamed = [DesiredObject::from_json(scaled_object(None))];
        assert_eq!(taken_over_by(&unnamed, &id(HPA, "agent-a-hpa")), None);
    }

    #[test]
    fn kedas_hpa_is_handed_back_only_by_a_scaled_object_of_fleets_being_deleted() {
        let hpa = id(HPA, "agent-a-hpa");
        let mut live = LiveState::default();
        live.unowned.insert(
            hpa.clone(),
            json!({ "metadata": { "ownerReferences": [
                { "kind": SCALED_OBJECT, "name": "agent-a", "controller": true },
            ]}}),
        );
        let desired_hpa = DesiredObject::from_json(json!({
            "apiVersion": "autoscaling/v2", "kind": HPA,
            "metadata": { "name": "agent-a-hpa", "namespace": "agents" },
        }));
        // KEDA's HPA, whose ScaledObject is not fleet's: not handed back.
        assert_eq!(
            handed_back_by(&live, std::slice::from_ref(&desired_hpa), &hpa),
            None
        );

        live.owned.insert(
            id(SCALED_OBJECT, "agent-a"),
            scaled_object(Some("agent-a-hpa")),
        );
        assert_eq!(
            handed_back_by(&live, std::slice::from_ref(&desired_hpa), &hpa),
            Some(&id(SCALED_OBJECT, "agent-a"))
        );
        assert!(hands_back(
            &live,
            std::slice::from_ref(&desired_hpa),
            &id(SCALED_OBJECT, "agent-a")
        ));
        // The ScaledObject still desired keeps its HPA.
        let both = [
            desired_hpa,
            DesiredObject::from_json(scaled_object(Some("agent-a-hpa"))),
        ];
        assert_eq!(handed_back_by(&live, &both, &hpa), None);
    }
}
