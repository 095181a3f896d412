//! Reading the cluster: connection, discovery, owned objects by label
//! selector, and a GET for each desired object not among them.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use anyhow::Context as _;
use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::{ApiResource, DynamicObject, ListParams};
use kube::core::GroupVersionKind;
use kube::discovery::{ApiCapabilities, Discovery, Scope};
use serde_json::Value;

use crate::client::kube::{Cluster, Kind, KindKey, get_json, list_text};
use crate::client::retry;
use crate::ownership;
use crate::provenance::ClusterIdentity;
use crate::render::{DesiredObject, ObjectRef, Rendered, Rendering};

/// How fleet finds the live objects of a kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// One LIST by ownership label in the fleet's namespace, so that objects
    /// of a kind the definition no longer uses are still found and destroyed.
    Listed,
    /// Only a GET of each rendered object. For kinds of which fleet renders
    /// exactly one object that no other can replace: the fleet's Namespace
    /// (the ApplySet id names it, so no other namespace can be fleet's) and
    /// the ApplySet parent Secret (fleet renders no other Secret). Listing
    /// them would need a cluster-wide LIST of namespaces and a LIST of
    /// secrets, which returns every secret's value.
    ByName,
}

/// A kind fleet renders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ManagedKind {
    pub api_version: &'static str,
    pub kind: &'static str,
    /// The resource name RBAC rules use.
    pub plural: &'static str,
    /// Whether the API is cluster-scoped (only Namespace).
    pub cluster_scoped: bool,
    pub found: Found,
}

impl ManagedKind {
    const fn new(api_version: &'static str, kind: &'static str, plural: &'static str) -> Self {
        Self {
            api_version,
            kind,
            plural,
            cluster_scoped: false,
            found: Found::Listed,
        }
    }

    /// The API group ("" for the core group).
    pub fn group(&self) -> &'static str {
        self.api_version.rsplit_once('/').map_or("", |(g, _)| g)
    }
}

/// Every kind fleet renders, in the order they are applied.
pub const MANAGED_KINDS: &[ManagedKind] = &[
    ManagedKind {
        cluster_scoped: true,
        found: Found::ByName,
        ..ManagedKind::new("v1", "Namespace", "namespaces")
    },
    ManagedKind {
        found: Found::ByName,
        ..ManagedKind::new("v1", "Secret", "secrets")
    },
    ManagedKind::new("v1", "ServiceAccount", "serviceaccounts"),
    ManagedKind::new("rbac.authorization.k8s.io/v1", "Role", "roles"),
    ManagedKind::new(
        "rbac.authorization.k8s.io/v1",
        "RoleBinding",
        "rolebindings",
    ),
    ManagedKind::new("v1", "ConfigMap", "configmaps"),
    ManagedKind::new("apps/v1", "Deployment", "deployments"),
    ManagedKind::new("v1", "Service", "services"),
    ManagedKind::new(
        "autoscaling/v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
    ),
    ManagedKind::new("keda.sh/v1alpha1", "ScaledObject", "scaledobjects"),
    ManagedKind::new("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets"),
    ManagedKind::new("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies"),
    ManagedKind::new(
        "monitoring.coreos.com/v1",
        "ServiceMonitor",
        "servicemonitors",
    ),
];

/// The managed kind of an object, if fleet manages its kind.
pub fn managed_kind(api_version: &str, kind: &str) -> Option<&'static ManagedKind> {
    MANAGED_KINDS
        .iter()
        .find(|k| k.api_version == api_version && k.kind == kind)
}

/// Whether the reader's caller needs only the metadata of an owned object,
/// given the desired body (first) and the live object (second). The plan
/// passes its proof of no change: an object proven unchanged is planned
/// without a dry run and need not be held whole, so a large fleet's no-op
/// plan holds little more than its desired objects.
pub type MetadataSuffices = dyn Fn(&Value, &Value) -> bool + Sync;

/// An owned object, whole, or only what anything after reading needs of it
/// (its name, labels, annotations and uid) when `suffices` says so; and
/// which of the two.
fn kept(
    suffices: Option<&MetadataSuffices>,
    desired: Option<&DesiredObject>,
    object: Value,
) -> (Value, bool) {
    let metadata_only = match (suffices, desired) {
        (Some(suffices), Some(desired)) => suffices(&desired.body, &object),
        _ => false,
    };
    if !metadata_only {
        return (object, false);
    }
    let metadata = &object["metadata"];
    let mut kept = serde_json::Map::new();
    for key in ["name", "namespace", "uid", "labels", "annotations"] {
        if let Some(value) = metadata.get(key) {
            kept.insert(key.into(), value.clone());
        }
    }
    (serde_json::json!({ "metadata": kept }), true)
}

/// Whether the fleet's namespace exists, as far as fleet may know.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum NamespaceState {
    #[default]
    Exists,
    Missing,
    /// Fleet may not read it (a 403 on a GET of the namespace: an identity
    /// confined to the namespace); the dry runs tell, by a 404.
    Unknown,
}

/// What the plan's autoscaling wiring checks read ([`crate::plan::wiring`]).
#[derive(Debug, Default)]
pub struct WiringState {
    /// The nodes, when this identity may list them.
    pub nodes: Option<Vec<k8s_openapi::api::core::v1::Node>>,
    /// Each External metric of a desired HPA, by (HPA name, metric,
    /// selector), as the external metrics API answered it: the value, or
    /// what it said instead. Left out when it could not be asked.
    pub external: BTreeMap<(String, String, String), Result<String, String>>,
}

/// Reads what the wiring checks need: the nodes (for the replicas that can
/// ever fit), and each desired HPA's External metric from the API that would
/// serve it. Nothing here fails the plan: what cannot be read is not checked.
pub async fn read_wiring(
    cluster: &Cluster,
    desired: &[DesiredObject],
    served_groups: &BTreeSet<String>,
) -> WiringState {
    let autoscaled = desired
        .iter()
        .any(|o| o.id.kind == "HorizontalPodAutoscaler" || o.id.kind == "ScaledObject");
    let nodes = async {
        if !autoscaled {
            return None;
        }
        let api: Api<k8s_openapi::api::core::v1::Node> = Api::all(cluster.client.clone());
        let params = ListParams::default();
        retry::kube(|| api.list(&params))
            .await
            .ok()
            .map(|list| list.items)
    };
    let metrics: Vec<(String, String, String, String)> = desired
        .iter()
        .filter(|_| served_groups.contains(EXTERNAL_METRICS_GROUP))
        .filter(|o| o.id.kind == "HorizontalPodAutoscaler")
        .flat_map(|o| {
            let namespace = o.id.namespace.clone().unwrap_or_default();
            o.body["spec"]["metrics"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|m| m["type"] == "External")
                .map(move |m| {
                    let metric = &m["external"]["metric"];
                    let selector = metric["selector"]["matchLabels"]
                        .as_object()
                        .into_iter()
                        .flatten()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                        .collect::<Vec<_>>()
                        .join(",");
                    (
                        namespace.clone(),
                        o.id.name.clone(),
                        metric["name"].as_str().unwrap_or_default().to_string(),
                        selector,
                    )
                })
        })
        .collect();
    let external = stream::iter(metrics)
        .map(|(namespace, hpa, metric, selector)| async move {
            let url =
                format!("/apis/{EXTERNAL_METRICS_GROUP}/v1beta1/namespaces/{namespace}/{metric}");
            let request = kube::core::Request::new(url)
                .list(&ListParams::default().labels(&selector))
                .map_err(kube::Error::BuildRequest);
            let answer = match request {
                Ok(request) => cluster.client.request_text(request).await,
                Err(err) => Err(err),
            };
            let answer = match answer {
                // Not this identity's to ask: not checked.
                Err(kube::Error::Api(status)) if status.code == 403 => return None,
                Err(kube::Error::Api(status)) => Err(status.message),
                Err(err) => Err(err.to_string()),
                Ok(text) => Ok(external_metric_value(&text)),
            };
            Some(((hpa, metric, selector), answer))
        })
        .buffer_unordered(8)
        .filter_map(|answer| async { answer })
        .collect::<BTreeMap<_, _>>();
    let (nodes, external) = tokio::join!(nodes, external);
    WiringState { nodes, external }
}

/// The API group of the metrics an HPA's External metrics read.
pub const EXTERNAL_METRICS_GROUP: &str = "external.metrics.k8s.io";

/// The values of an ExternalMetricValueList, joined (`"3"`, or `"none"`).
fn external_metric_value(text: &str) -> String {
    let list: Value = serde_json::from_str(text).unwrap_or_default();
    let values: Vec<&str> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| item["value"].as_str())
        .collect();
    if values.is_empty() {
        "none".into()
    } else {
        values.join(", ")
    }
}

/// Which cluster this is: the UID of the namespace `kube-system`, read with
/// a GET. When that is forbidden (or there is no such namespace), the
/// identity is the server URL, and says why.
pub async fn identity(cluster: &Cluster) -> anyhow::Result<ClusterIdentity> {
    let namespaces: Api<Namespace> = Api::all(cluster.client.clone());
    let mut identity = ClusterIdentity {
        kube_system_uid: None,
        server: cluster.server.clone(),
        unread: None,
    };
    match retry::kube(|| namespaces.get("kube-system")).await {
        Ok(namespace) => identity.kube_system_uid = namespace.metadata.uid,
        Err(kube::Error::Api(status)) if status.code == 403 || status.code == 404 => {
            identity.unread = Some(format!("{}: {}", status.reason, status.message));
        }
        Err(err) => {
            return Err(anyhow::Error::new(err).context(format!(
                "reading the identity of {} (namespace kube-system)",
                cluster.describe()
            )));
        }
    }
    Ok(identity)
}

/// What a SelfSubjectAccessReview asks about: a verb on a resource, in a
/// namespace, maybe of one name.
pub struct Access<'a> {
    pub verb: &'a str,
    pub group: &'a str,
    pub resource: &'a str,
    pub namespace: Option<&'a str>,
    pub name: Option<&'a str>,
}

/// Whether this identity may do `access`, by a SelfSubjectAccessReview
/// (what `kubectl auth can-i` asks): for the writes a plan cannot dry-run.
/// `None` when the server would not say.
pub async fn may(cluster: &Cluster, access: &Access<'_>) -> Option<bool> {
    use k8s_openapi::api::authorization::v1::{
        ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
    };
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                group: Some(access.group.to_string()),
                resource: Some(access.resource.to_string()),
                namespace: access.namespace.map(str::to_string),
                name: access.name.map(str::to_string),
                verb: Some(access.verb.to_string()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let api: Api<SelfSubjectAccessReview> = Api::all(cluster.client.clone());
    let params = kube::api::PostParams::default();
    let answer = retry::kube(|| api.create(&params, &review)).await.ok()?;
    Some(answer.status?.allowed)
}

/// What the cluster holds for the fleet.
#[derive(Debug, Default)]
pub struct LiveState {
    /// Installed kinds, by (apiVersion, kind).
    pub kinds: BTreeMap<(String, String), Kind>,
    /// Kinds fleet renders whose API the cluster does not serve.
    pub missing_kinds: BTreeSet<(String, String)>,
    /// Kinds the identity may not list, which the definition does not render
    /// and the inventory does not record (a CRD installed for others, such as
    /// KEDA's ScaledObject): fleet has none of them to find, so they are
    /// skipped. A kind fleet does render or record fails the read instead.
    pub unlistable_kinds: BTreeSet<(String, String)>,
    /// Every API group the cluster serves (for the metrics APIs an
    /// autoscaler reads, which fleet does not manage but depends on).
    pub served_groups: BTreeSet<String>,
    /// Objects fleet owns. Of those in `metadata_only`, only the metadata
    /// (without managedFields).
    pub owned: BTreeMap<ObjectRef, Value>,
    /// Owned objects kept as metadata only, because the reader's
    /// [`MetadataSuffices`] said so of them.
    pub metadata_only: BTreeSet<ObjectRef>,
    /// Same-named objects of desired ones that fleet does not own.
    pub unowned: BTreeMap<ObjectRef, Value>,
    /// The fleet's namespace.
    pub namespace: NamespaceState,
}

impl LiveState {
    pub fn kind(&self, id: &ObjectRef) -> Option<&Kind> {
        self.kinds.get(&(id.api_version.clone(), id.kind.clone()))
    }
}

/// Whether a live object carries fleet's ownership marks for this ApplySet
/// (the parent is marked by its id label, members by `part-of`).
pub fn is_owned(object: &Value, applyset_id: &str) -> bool {
    let labels = &object["metadata"]["labels"];
    labels[ownership::PART_OF_LABEL] == applyset_id
        || labels[ownership::APPLYSET_ID_LABEL] == applyset_id
}

/// What to read and how.
pub struct ReadOptions<'a> {
    pub namespace: &'a str,
    pub applyset_id: &'a str,
    pub concurrency: usize,
    /// Which owned objects are kept as metadata only (none when `None`).
    pub metadata_suffices: Option<&'a MetadataSuffices>,
}

/// The APIs of the kinds fleet renders, and the names of every API group
/// the cluster serves. Aggregated discovery (Kubernetes 1.26 and later) takes
/// two requests, run beside the list of groups; an older server answers it
/// with a plain group list, which reads as no groups at all, so a result
/// without the core and `apps` groups falls back to discovery group by group.
/// Only fleet's groups are resolved: an aggregated API that is down (a
/// stopped metrics-server) must not fail the plan.
async fn discover(cluster: &Cluster) -> anyhow::Result<(Discovery, BTreeSet<String>)> {
    let groups: BTreeSet<&str> = MANAGED_KINDS.iter().map(ManagedKind::group).collect();
    let groups: Vec<&str> = groups.into_iter().collect();
    let aggregated = retry::kube(|| {
        Discovery::new(cluster.client.clone())
            .filter(&groups)
            .run_aggregated()
    });
    let served = retry::kube(|| cluster.client.list_api_groups());
    let context = || format!("discovering the APIs of {}", cluster.describe());
    let (aggregated, served) = tokio::join!(aggregated, served);
    let served_groups = served
        .with_context(context)?
        .groups
        .into_iter()
        .map(|g| g.name)
        .collect();
    let discovery = match aggregated {
        Ok(discovery) if discovery.has_group("") && discovery.has_group("apps") => discovery,
        _ => retry::kube(|| Discovery::new(cluster.client.clone()).filter(&groups).run())
            .await
            .with_context(context)?,
    };
    Ok((discovery, served_groups))
}

/// The kinds fleet renders that the cluster serves, and those it does not.
fn resolve_kinds(discovery: &Discovery) -> (BTreeMap<KindKey, Kind>, BTreeSet<KindKey>) {
    let mut kinds = BTreeMap::new();
    let mut missing = BTreeSet::new();
    for managed in MANAGED_KINDS {
        let version = managed
            .api_version
            .rsplit_once('/')
            .map_or(managed.api_version, |(_, v)| v);
        let key = (managed.api_version.to_string(), managed.kind.to_string());
        match discovery.resolve_gvk(&GroupVersionKind::gvk(
            managed.group(),
            version,
            managed.kind,
        )) {
            Some((resource, ApiCapabilities { scope, .. })) => {
                let namespaced = scope == Scope::Namespaced;
                kinds.insert(
                    key,
                    Kind {
                        resource,
                        namespaced,
                    },
                );
            }
            None => {
                missing.insert(key);
            }
        }
    }
    (kinds, missing)
}

/// The kinds fleet renders that the cluster serves, by (apiVersion, kind).
pub async fn installed_kinds(cluster: &Cluster) -> anyhow::Result<BTreeMap<KindKey, Kind>> {
    Ok(resolve_kinds(&discover(cluster).await?.0).0)
}

/// Reads what the cluster holds for the fleet. The LISTs start while
/// `rendering` may still be under way: pages that come before it is done
/// are held as text and read once it is.
pub async fn read(
    cluster: &Cluster,
    rendering: &Rendering,
    options: &ReadOptions<'_>,
) -> anyhow::Result<LiveState> {
    let &ReadOptions {
        namespace,
        applyset_id,
        concurrency,
        metadata_suffices,
    } = options;
    let mut state = LiveState::default();
    let (discovery, served_groups) = discover(cluster).await?;
    state.served_groups = served_groups;
    (state.kinds, state.missing_kinds) = resolve_kinds(&discovery);

    // One LIST per kind (in pages), by ownership label.
    let selector = format!("{}={applyset_id}", ownership::PART_OF_LABEL);
    let listed = state.kinds.values().filter(|kind| {
        managed_kind(&kind.resource.api_version, &kind.resource.kind)
            .is_some_and(|m| m.found == Found::Listed)
    });
    let lists = stream::iter(listed.cloned())
        .map(|kind| {
            let list = Listing {
                cluster,
                kind,
                namespace,
                selector: &selector,
                metadata_suffices,
            };
            async move { list.owned(rendering).await }
        })
        .buffer_unordered(concurrency.max(1))
        .try_collect::<Vec<_>>()
        .await?;
    let mut forbidden = Vec::new();
    let mut objects = Vec::new();
    for list in lists {
        match list {
            Listed::Objects(listed) => objects.extend(listed),
            Listed::Forbidden(kind, err) => forbidden.push((kind, err)),
        }
    }
    // A kind the fleet renders must be listed: fail now, before the GETs.
    let rendered = rendering.done().await?;
    if let Some(at) = forbidden.iter().position(|(kind, _)| {
        rendered
            .kubernetes
            .iter()
            .any(|d| d.id.kind == kind.resource.kind)
    }) {
        return Err(forbidden.swap_remove(at).1);
    }
    for (id, value, metadata_only) in objects {
        if metadata_only {
            state.metadata_only.insert(id.clone());
        }
        state.owned.insert(id, value);
    }

    // A GET for each desired object not found by label: is the name taken?
    // What is outside the namespace (the Namespace itself) first: when the
    // namespace does not exist, nothing in it can, and the GETs of
    // everything in it (thousands, for a large fleet) are skipped.
    let rendered = rendering.done().await?;
    let desired = &rendered.kubernetes;
    let (outside, inside): (Vec<&DesiredObject>, Vec<&DesiredObject>) = desired
        .iter()
        .filter(|d| !state.owned.contains_key(&d.id) && state.kind(&d.id).is_some())
        .partition(|d| d.id.namespace.is_none());
    get_each(cluster, &mut state, outside, options).await?;
    state.namespace = namespace_state(cluster, desired, &state, namespace).await?;
    if state.namespace != NamespaceState::Missing {
        get_each(cluster, &mut state, inside, options).await?;
    }
    for (kind, err) in forbidden {
        if recorded_in_inventory(&state, &kind) {
            return Err(err);
        }
        state.unlistable_kinds.insert((
            kind.resource.api_version.clone(),
            kind.resource.kind.clone(),
        ));
    }
    Ok(state)
}

/// Whether the live ApplySet parent records objects of `kind` (its
/// `contains-group-kinds`), so some may be left to prune.
fn recorded_in_inventory(state: &LiveState, kind: &Kind) -> bool {
    let group_kind = match kind.resource.group.as_str() {
        "" => kind.resource.kind.clone(),
        group => format!("{}.{group}", kind.resource.kind),
    };
    state
        .owned
        .values()
        .filter_map(|o| o["metadata"]["annotations"][ownership::APPLYSET_KINDS_ANNOTATION].as_str())
        .any(|kinds| kinds.split(',').any(|k| k == group_kind))
}

/// One kind's LIST: the objects, or a refusal to list them at all.
enum Listed {
    Objects(Vec<(ObjectRef, Value, bool)>),
    Forbidden(Kind, anyhow::Error),
}

/// The LIST of one kind's objects by fleet's ownership label.
struct Listing<'a> {
    cluster: &'a Cluster,
    kind: Kind,
    namespace: &'a str,
    selector: &'a str,
    metadata_suffices: Option<&'a MetadataSuffices>,
}

impl Listing<'_> {
    /// The objects, each kept as planning needs it, and whether only its
    /// metadata is kept. In pages, as kubectl does, so that a large fleet's objects are
    /// never all held at once.
    async fn owned(&self, rendering: &Rendering) -> anyhow::Result<Listed> {
        let api = self.kind.api(&self.cluster.client, Some(self.namespace));
        let mut params = ListParams::default().labels(self.selector).limit(LIST_PAGE);
        let mut pages = Pages::new(&self.kind, self.metadata_suffices);
        loop {
            let text = match retry::kube(|| list_text(&self.cluster.client, &api, &params)).await {
                Ok(text) => text,
                Err(err) => {
                    let forbidden = matches!(&err, kube::Error::Api(s) if s.code == 403);
                    let err = crate::client::explain::client_error(
                        err,
                        "listing",
                        &self.what(),
                        self.cluster,
                    );
                    if forbidden {
                        return Ok(Listed::Forbidden(self.kind.clone(), err));
                    }
                    return Err(err);
                }
            };
            let token = pages
                .take(text, rendering.now())
                .map_err(|err| self.unreadable(err))?;
            match token {
                Some(token) => params = params.continue_token(&token),
                None => break,
            }
        }
        pages
            .finish(rendering.done().await?)
            .map(Listed::Objects)
            .map_err(|err| self.unreadable(err))
    }

    fn unreadable(&self, err: serde_json::Error) -> anyhow::Error {
        anyhow::Error::new(err).context(format!(
            "reading the list of {} from {}",
            self.what(),
            self.cluster.describe()
        ))
    }

    fn what(&self) -> ObjectRef {
        ObjectRef {
            api_version: self.kind.resource.api_version.clone(),
            kind: self.kind.resource.kind.clone(),
            namespace: self.kind.namespaced.then(|| self.namespace.to_string()),
            name: "(all owned by fleet)".into(),
        }
    }
}

/// One kind's LIST pages as they come in. A page is read as soon as the
/// desired objects are known (the rendering is done); one that comes before
/// is held as text, only its continue token read, until they are.
struct Pages<'a> {
    kind: &'a Kind,
    metadata_suffices: Option<&'a MetadataSuffices>,
    desired: Option<DesiredOfKind>,
    held: Vec<String>,
    owned: Vec<(ObjectRef, Value, bool)>,
}

impl<'a> Pages<'a> {
    fn new(kind: &'a Kind, metadata_suffices: Option<&'a MetadataSuffices>) -> Pages<'a> {
        Pages {
            kind,
            metadata_suffices,
            desired: None,
            held: Vec::new(),
            owned: Vec::new(),
        }
    }

    /// Takes a page, with the rendering if it is done by now. Returns the
    /// token for the next page.
    fn take(
        &mut self,
        text: String,
        rendered: Option<Arc<Rendered>>,
    ) -> serde_json::Result<Option<String>> {
        if self.desired.is_none() {
            self.desired = rendered.map(|rendered| DesiredOfKind::new(rendered, self.kind));
        }
        if self.desired.is_none() {
            let token = super::page::continue_token(&text)?;
            self.held.push(text);
            return Ok(token);
        }
        self.read_held()?;
        self.read(&text)
    }

    /// Every page taken: the objects, in the order they were listed.
    fn finish(
        mut self,
        rendered: Arc<Rendered>,
    ) -> serde_json::Result<Vec<(ObjectRef, Value, bool)>> {
        if self.desired.is_none() {
            self.desired = Some(DesiredOfKind::new(rendered, self.kind));
        }
        self.read_held()?;
        Ok(self.owned)
    }

    fn read_held(&mut self) -> serde_json::Result<()> {
        for text in std::mem::take(&mut self.held) {
            self.read(&text)?;
        }
        Ok(())
    }

    fn read(&mut self, text: &str) -> serde_json::Result<Option<String>> {
        let desired = self
            .desired
            .as_ref()
            .expect("read once the rendering is done");
        let (kind, suffices) = (self.kind, self.metadata_suffices);
        let keep = |item: Value| {
            let value = kept_for_planning(item);
            let id = object_ref(kind, &value);
            let (value, metadata_only) = kept(suffices, desired.get(&id), value);
            (id, value, metadata_only)
        };
        let page = super::page::read(text, keep)?;
        self.owned.extend(page.items);
        Ok(page.continue_token)
    }
}

/// The desired objects of one kind, by name.
struct DesiredOfKind {
    rendered: Arc<Rendered>,
    by_name: HashMap<String, usize>,
}

impl DesiredOfKind {
    fn new(rendered: Arc<Rendered>, kind: &Kind) -> DesiredOfKind {
        let by_name = rendered
            .kubernetes
            .iter()
            .enumerate()
            .filter(|(_, d)| {
                d.id.kind == kind.resource.kind && d.id.api_version == kind.resource.api_version
            })
            .map(|(index, d)| (d.id.name.clone(), index))
            .collect();
        DesiredOfKind { rendered, by_name }
    }

    fn get(&self, id: &ObjectRef) -> Option<&DesiredObject> {
        let index = *self.by_name.get(&id.name)?;
        Some(&self.rendered.kubernetes[index]).filter(|d| &d.id == id)
    }
}

/// Objects per LIST page (kubectl's default chunk size).
const LIST_PAGE: u32 = 250;

/// GETs each of `unlisted` by name, and files what exists as owned or not.
async fn get_each(
    cluster: &Cluster,
    state: &mut LiveState,
    unlisted: Vec<&DesiredObject>,
    options: &ReadOptions<'_>,
) -> anyhow::Result<()> {
    let found = stream::iter(unlisted)
        .map(|object| {
            let kind = state
                .kind(&object.id)
                .cloned()
                .expect("filtered on installed kinds");
            let api = kind.api(&cluster.client, object.id.namespace.as_deref());
            async move {
                let live = retry::kube(|| get_json(&cluster.client, &api, &object.id.name))
                    .await
                    .map_err(|err| {
                        let forbidden = matches!(&err, kube::Error::Api(s) if s.code == 403);
                        let err = crate::client::explain::client_error(err, "reading", &object.id, cluster);
                        if forbidden && object.id.kind == "Namespace" {
                            anyhow::anyhow!(
                                "{err:#}\n  fleet manages the namespace ([fleet] manage_namespace = true, the default), which needs rights on it (`fleet rbac --for plan` prints them). For an identity confined to the namespace, set `manage_namespace = false` under [fleet] and have an administrator create {}.",
                                object.id.name
                            )
                        } else {
                            err
                        }
                    })?;
                anyhow::Ok((object, live))
            }
        })
        .buffer_unordered(options.concurrency.max(1))
        .try_collect::<Vec<_>>()
        .await?;
    for (object, live) in found {
        let id = object.id.clone();
        if let Some(live) = live {
            let value = kept_for_planning(live);
            if is_owned(&value, options.applyset_id) {
                let (value, metadata_only) = kept(options.metadata_suffices, Some(object), value);
                if metadata_only {
                    state.metadata_only.insert(id.clone());
                }
                state.owned.insert(id, value);
            } else {
                state.unowned.insert(id, value);
            }
        }
    }
    Ok(())
}

/// What planning reads of a live object, and no more, so a large fleet's
/// live state stays small: no `status` (plans compare without it; rollouts
/// are watched apart), and of other managers' managedFields entries only who
/// wrote and how (drift is told from conflicts by the operation), not the
/// field sets. Kept are the field sets of fleet's own entry (client-side
/// comparison, the proof of no change) and of Updates of the object itself,
/// which is where a hand edit's additions show (`plan::takeover`); a
/// controller's writes go to the status subresource and are dropped.
pub fn kept_for_planning(mut object: Value) -> Value {
    if let Some(map) = object.as_object_mut() {
        map.remove("status");
    }
    if let Some(entries) = object
        .pointer_mut("/metadata/managedFields")
        .and_then(Value::as_array_mut)
    {
        for entry in entries {
            let update_of_object = entry["operation"] == "Update"
                && entry["subresource"].as_str().unwrap_or_default().is_empty();
            if entry["manager"] != ownership::FIELD_MANAGER
                && !update_of_object
                && let Some(entry) = entry.as_object_mut()
            {
                entry.remove("fieldsV1");
            }
        }
    }
    object
}

/// Whether the fleet's namespace exists: read above when fleet renders it,
/// else one GET, which an identity confined to the namespace may be refused
/// (a Role can grant `get` on its own namespace, and `fleet rbac` does).
async fn namespace_state(
    cluster: &Cluster,
    desired: &[DesiredObject],
    state: &LiveState,
    namespace: &str,
) -> anyhow::Result<NamespaceState> {
    let rendered = desired
        .iter()
        .find(|o| o.id.kind == "Namespace" && o.id.name == namespace);
    if let Some(object) = rendered {
        let found = state.owned.contains_key(&object.id) || state.unowned.contains_key(&object.id);
        return Ok(if found {
            NamespaceState::Exists
        } else {
            NamespaceState::Missing
        });
    }
    let api: Api<Namespace> = Api::all(cluster.client.clone());
    match retry::kube(|| api.get_opt(namespace)).await {
        Ok(Some(_)) => Ok(NamespaceState::Exists),
        Ok(None) => Ok(NamespaceState::Missing),
        Err(kube::Error::Api(status)) if status.code == 403 => Ok(NamespaceState::Unknown),
        Err(err) => {
            let id = ObjectRef {
                api_version: "v1".into(),
                kind: "Namespace".into(),
                namespace: None,
                name: namespace.to_string(),
            };
            Err(crate::client::explain::client_error(
                err, "reading", &id, cluster,
            ))
        }
    }
}

/// An object found in the fleet's namespace, of any kind (by its metadata).
#[derive(Debug, Clone)]
pub struct Resident {
    pub id: ObjectRef,
    pub uid: String,
    pub labels: serde_json::Map<String, Value>,
    /// The uids its ownerReferences name: it goes when they go.
    pub owners: Vec<String>,
}

/// Everything `namespace` holds, of every kind the cluster serves that can
/// be listed and deleted there (what deleting the namespace deletes; Events
/// aside, records that go with what they are about), read by metadata only,
/// so no Secret's value is fetched. `Err` says why that cannot be known: a
/// kind this identity may not list, an API group that does not answer.
pub async fn residents(
    cluster: &Cluster,
    namespace: &str,
    concurrency: usize,
) -> Result<Vec<Resident>, String> {
    let client = &cluster.client;
    let groups = retry::kube(|| client.list_api_groups())
        .await
        .map_err(|err| format!("listing the cluster's API groups: {err}"))?;
    let mut versions = vec![String::from("v1")];
    for group in &groups.groups {
        let version = group
            .preferred_version
            .as_ref()
            .or_else(|| group.versions.first())
            .ok_or_else(|| format!("API group {} names no version", group.name))?;
        versions.push(version.group_version.clone());
    }
    let kinds: Vec<Vec<ApiResource>> = stream::iter(versions)
        .map(|group_version| async move {
            let listed = if group_version == "v1" {
                retry::kube(|| client.list_core_api_resources("v1")).await
            } else {
                retry::kube(|| client.list_api_group_resources(&group_version)).await
            };
            let listed = listed.map_err(|err| {
                format!("the API server could not say what {group_version} serves: {err}")
            })?;
            let (group, version) = match group_version.split_once('/') {
                Some((group, version)) => (group.to_string(), version.to_string()),
                None => (String::new(), group_version.clone()),
            };
            Ok::<_, String>(
                listed
                    .resources
                    .into_iter()
                    .filter(|r| r.namespaced && !r.name.contains('/') && r.kind != "Event")
                    .filter(|r| {
                        ["list", "delete"]
                            .iter()
                            .all(|verb| r.verbs.iter().any(|v| v == verb))
                    })
                    .map(|r| ApiResource {
                        group: group.clone(),
                        version: version.clone(),
                        api_version: group_version.clone(),
                        kind: r.kind,
                        plural: r.name,
                    })
                    .collect(),
            )
        })
        .buffer_unordered(concurrency.max(1))
        .try_collect()
        .await?;
    let lists: Vec<Vec<Resident>> = stream::iter(kinds.into_iter().flatten())
        .map(|resource| async move {
            let api: Api<DynamicObject> =
                Api::namespaced_with(client.clone(), namespace, &resource);
            let params = ListParams::default();
            let list = match retry::kube(|| api.list_metadata(&params)).await {
                Ok(list) => list,
                Err(kube::Error::Api(status)) if status.code == 404 => return Ok(Vec::new()),
                Err(kube::Error::Api(status)) if status.code == 403 => {
                    return Err(format!(
                        "this identity may not list {}{} in it",
                        resource.plural,
                        if resource.group.is_empty() {
                            String::new()
                        } else {
                            format!(".{}", resource.group)
                        }
                    ));
                }
                Err(err) => return Err(format!("listing {} in it: {err}", resource.plural)),
            };
            Ok(list
                .items
                .into_iter()
                .map(|item| {
                    let metadata = item.metadata;
                    Resident {
                        id: ObjectRef {
                            api_version: resource.api_version.clone(),
                            kind: resource.kind.clone(),
                            namespace: Some(namespace.to_string()),
                            name: metadata.name.unwrap_or_default(),
                        },
                        uid: metadata.uid.unwrap_or_default(),
                        labels: metadata
                            .labels
                            .unwrap_or_default()
                            .into_iter()
                            .map(|(k, v)| (k, Value::from(v)))
                            .collect(),
                        owners: metadata
                            .owner_references
                            .unwrap_or_default()
                            .into_iter()
                            .map(|o| o.uid)
                            .collect(),
                    }
                })
                .collect())
        })
        .buffer_unordered(concurrency.max(1))
        .try_collect()
        .await?;
    Ok(lists.into_iter().flatten().collect())
}

fn object_ref(kind: &Kind, value: &Value) -> ObjectRef {
    ObjectRef {
        api_version: kind.resource.api_version.clone(),
        kind: kind.resource.kind.clone(),
        namespace: value["metadata"]["namespace"].as_str().map(str::to_string),
        name: value["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn pages_held_until_the_rendering_is_done_read_as_pages_read_at_once() {
        let desired = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": { "name": "agent-a", "namespace": "agents" },
        });
        let live = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": { "name": "agent-a", "namespace": "agents", "uid": "1" },
            "spec": { "replicas": 1 },
        });
        let rendered = Arc::new(Rendered {
            kubernetes: vec![DesiredObject::from_json(desired)],
            jetstream: crate::render::jetstream::DesiredJetStream {
                streams: Vec::new(),
                consumers: Vec::new(),
            },
            credentials: Vec::new(),
        });
        let kind = Kind {
            resource: ApiResource::from_gvk(&GroupVersionKind::gvk("apps", "v1", "Deployment")),
            namespaced: true,
        };
        let mut other = live.clone();
        other["metadata"]["name"] = json!("agent-b");
        let first = json!({ "metadata": { "continue": "next" }, "items": [live] });
        let last = json!({ "metadata": { "continue": "" }, "items": [other] });
        let (first, last) = (first.to_string(), last.to_string());

        let suffices = |_: &Value, _: &Value| true;
        let mut pages = Pages::new(&kind, Some(&suffices));
        let token = pages.take(first.clone(), Some(rendered.clone())).unwrap();
        assert_eq!(token.as_deref(), Some("next"));
        assert_eq!(
            pages.take(last.clone(), Some(rendered.clone())).unwrap(),
            None
        );
        let at_once = pages.finish(rendered.clone()).unwrap();
        let read: Vec<(&str, bool)> = at_once
            .iter()
            .map(|(id, _, metadata_only)| (id.name.as_str(), *metadata_only))
            .collect();
        assert_eq!(read, [("agent-a", true), ("agent-b", false)]);
        // The rendering done by the second page, or only after the last.
        for done_by_the_second in [true, false] {
            let mut pages = Pages::new(&kind, Some(&suffices));
            let token = pages.take(first.clone(), None).unwrap();
            assert_eq!(token.as_deref(), Some("next"));
            let rendered_now = done_by_the_second.then(|| rendered.clone());
            assert_eq!(pages.take(last.clone(), rendered_now).unwrap(), None);
            assert_eq!(pages.finish(rendered.clone()).unwrap(), at_once);
        }
        // Without a `MetadataSuffices` (plan --dry-run-all), all is kept whole.
        let mut pages = Pages::new(&kind, None);
        pages.take(first, Some(rendered.clone())).unwrap();
        let whole = pages.finish(rendered).unwrap();
        assert!(whole.iter().all(|(_, _, metadata_only)| !metadata_only));
    }

    #[test]
    fn planning_keeps_fleets_field_sets_and_who_wrote_the_others() {
        let live = json!({
            "metadata": { "name": "a", "managedFields": [
                { "manager": "fleet", "operation": "Apply", "fieldsV1": { "f:spec": {} } },
                { "manager": "kubectl-scale", "operation": "Update", "subresource": "scale", "fieldsV1": { "f:spec": {} } },
                { "manager": "kubectl-set", "operation": "Update", "fieldsV1": { "f:spec": {} } },
                { "manager": "other-tool", "operation": "Apply", "fieldsV1": { "f:spec": {} } },
            ] },
            "spec": { "replicas": 2 },
            "status": { "replicas": 2 }
        });
        let kept = kept_for_planning(live);
        assert_eq!(kept["status"], Value::Null);
        assert_eq!(kept["spec"]["replicas"], 2);
        let entries = kept["metadata"]["managedFields"].as_array().unwrap();
        assert!(entries[0]["fieldsV1"].is_object());
        assert_eq!(
            entries[1],
            json!({ "manager": "kubectl-scale", "operation": "Update", "subresource": "scale" })
        );
        assert!(entries[2]["fieldsV1"].is_object(), "a hand edit's fields");
        assert_eq!(
            entries[3],
            json!({ "manager": "other-tool", "operation": "Apply" })
        );
    }
}
