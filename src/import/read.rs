//! Import's reads and dry runs: every object of the kinds fleet renders in
//! the namespace, and the API server's making of fleet's rendering (a
//! dry-run create under a generated name, which stores nothing).

use std::collections::BTreeMap;

use anyhow::Context as _;
use kube::api::{DynamicObject, ListParams, PostParams};
use serde_json::Value;

use super::derive::Objects;
use crate::client::kube::{Cluster, Kind};
use crate::client::retry;
use crate::live::kube::installed_kinds;
use crate::model::PodSecurityLevel;
use crate::ownership;
use crate::render::{DesiredObject, ObjectRef};

/// What import reads of the namespace.
pub(crate) struct LiveNamespace {
    pub objects: Objects,
    /// Installed kinds fleet renders, by (apiVersion, kind).
    pub kinds: BTreeMap<(String, String), Kind>,
    /// The level the namespace enforces (`privileged` when none).
    pub pod_security: PodSecurityLevel,
}

impl LiveNamespace {
    pub(crate) fn installed(&self, kind: &str) -> bool {
        self.kinds.keys().any(|(_, k)| k == kind)
    }
}

/// Objects every namespace has, which are nobody's to import.
const EVERY_NAMESPACE_HAS: &[(&str, &str)] = &[
    ("ConfigMap", "kube-root-ca.crt"),
    ("ServiceAccount", "default"),
];

pub(crate) async fn namespace(cluster: &Cluster, namespace: &str) -> anyhow::Result<LiveNamespace> {
    let kinds = installed_kinds(cluster).await?;
    let mut objects = Objects::new();
    for ((api_version, kind_name), kind) in &kinds {
        // The Namespace is not imported, and Secrets are never listed (a
        // LIST returns their values).
        if matches!(kind_name.as_str(), "Namespace" | "Secret") {
            continue;
        }
        let api = kind.api(&cluster.client, Some(namespace));
        let params = ListParams::default();
        let list = retry::kube(|| api.list(&params)).await.with_context(|| {
            format!(
                "listing {} in namespace {namespace} on {}",
                kind.resource.plural,
                cluster.describe()
            )
        })?;
        for item in list.items {
            let name = item.metadata.name.clone().unwrap_or_default();
            if EVERY_NAMESPACE_HAS.contains(&(kind_name.as_str(), name.as_str())) {
                continue;
            }
            let id = ObjectRef {
                api_version: api_version.clone(),
                kind: kind_name.clone(),
                namespace: Some(namespace.to_string()),
                name,
            };
            objects.insert(id, serde_json::to_value(&item)?);
        }
    }
    let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> =
        kube::Api::all(cluster.client.clone());
    // Its Pod Security level, when this identity may read it (a namespaced
    // identity may not: the level is then left `privileged`, which checks
    // nothing the cluster does not).
    let enforced = match retry::kube(|| namespaces.get_opt(namespace)).await {
        Ok(Some(live)) => live
            .metadata
            .labels
            .unwrap_or_default()
            .get("pod-security.kubernetes.io/enforce")
            .cloned(),
        Ok(None) => anyhow::bail!(
            "namespace {namespace} does not exist on {}: nothing to import",
            cluster.describe()
        ),
        Err(kube::Error::Api(status)) if status.code == 403 => None,
        Err(err) => {
            return Err(anyhow::Error::new(err).context(format!(
                "reading namespace {namespace} on {}",
                cluster.describe()
            )));
        }
    };
    let pod_security = PodSecurityLevel::ALL
        .into_iter()
        .find(|level| Some(level.as_str()) == enforced.as_deref())
        .unwrap_or(PodSecurityLevel::Privileged);
    Ok(LiveNamespace {
        objects,
        kinds,
        pod_security,
    })
}

/// The object as the API server would make it (its defaults, its
/// admission), by a dry-run create under a generated name. `None` for a
/// kind the cluster does not serve.
pub(crate) async fn as_created(
    cluster: &Cluster,
    live: &LiveNamespace,
    object: &DesiredObject,
) -> anyhow::Result<Option<Value>> {
    let Some(kind) = live
        .kinds
        .get(&(object.id.api_version.clone(), object.id.kind.clone()))
    else {
        return Ok(None);
    };
    let mut body = object.body.clone();
    let metadata = body["metadata"]
        .as_object_mut()
        .expect("rendered objects have metadata");
    metadata.shift_remove("name");
    metadata.insert(
        "generateName".into(),
        Value::from(format!("{}-import-", object.id.name)),
    );
    let body: DynamicObject = serde_json::from_value(body)?;
    let api = kind.api(&cluster.client, object.id.namespace.as_deref());
    let params = PostParams {
        dry_run: true,
        field_manager: Some(ownership::FIELD_MANAGER.into()),
    };
    let created = retry::kube(|| api.create(&params, &body))
        .await
        .with_context(|| {
            format!(
                "dry-running the creation of {} as imported, on {}",
                object.id,
                cluster.describe()
            )
        })?;
    Ok(Some(serde_json::to_value(created)?))
}

/// What import compares of an object: its labels, annotations and spec
/// (data, rules...), without what the server, a controller or fleet's
/// ownership writes. `role_label` is fleet's too: it is how fleet knows an
/// agent's objects (patches, targeting, attribution), so no patch removes it.
/// `rendered` is fleet's body: a Deployment it renders without replicas is
/// scaled by its autoscaler, whose count is none of the definition's.
pub(crate) fn importable(kind: &str, object: &Value, role_label: &str, rendered: &Value) -> Value {
    let mut object = object.clone();
    let Some(map) = object.as_object_mut() else {
        return object;
    };
    for key in ["apiVersion", "kind", "status"] {
        map.shift_remove(key);
    }
    let metadata = map.get("metadata").cloned().unwrap_or(Value::Null);
    let mut kept = serde_json::Map::new();
    for (key, dropped) in [
        (
            "labels",
            &[
                ownership::MANAGED_BY_LABEL,
                ownership::PART_OF_LABEL,
                role_label,
            ][..],
        ),
        (
            "annotations",
            &[
                "kubectl.kubernetes.io/last-applied-configuration",
                "deployment.kubernetes.io/revision",
                ownership::APPLIED_HASH_ANNOTATION,
                crate::render::kube::KEDA_EXCLUDED_LABELS,
            ][..],
        ),
    ] {
        // Kept when empty: a patch removes a label, never the whole map
        // (which holds fleet's own).
        let values: serde_json::Map<String, Value> = metadata[key]
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(k, _)| !dropped.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        kept.insert(key.into(), Value::Object(values));
    }
    map.insert("metadata".into(), Value::Object(kept));
    if kind == "Deployment"
        && rendered["spec"]["replicas"].is_null()
        && let Some(spec) = map.get_mut("spec").and_then(Value::as_object_mut)
    {
        spec.shift_remove("replicas");
    }
    // Allocated by the server, never the user's.
    if kind == "Service"
        && let Some(spec) = map.get_mut("spec").and_then(Value::as_object_mut)
    {
        spec.shift_remove("clusterIP");
        spec.shift_remove("clusterIPs");
    }
    object
}
