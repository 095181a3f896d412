//! render: a validated [`Fleet`] -> the desired Kubernetes objects and the
//! desired JetStream streams and consumers. Pure: no I/O, and the same fleet
//! always renders to the same objects in the same order ([`Rendering`]
//! only runs it on a thread of its own).

pub mod jetstream;
pub mod kube;
pub mod patch;
pub mod permissions;
mod rendering;

pub use rendering::Rendering;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::Fleet;
use crate::ownership;

/// Everything the fleet wants to exist.
#[derive(Debug, Clone, Serialize)]
pub struct Rendered {
    pub kubernetes: Vec<DesiredObject>,
    pub jetstream: jetstream::DesiredJetStream,
    /// The agents' NATS credentials Secrets, without their data (see
    /// [`kube::credential_secrets`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub credentials: Vec<DesiredObject>,
}

pub fn render(fleet: &Fleet) -> Rendered {
    let mut kubernetes = kube::objects(fleet);
    patch::apply(fleet, &mut kubernetes);
    Rendered {
        kubernetes,
        jetstream: jetstream::desired(fleet),
        credentials: kube::credential_secrets(fleet),
    }
}

impl Rendered {
    /// The rendering as fleet applies it: each object, stream and consumer
    /// marked with the hash of itself, and the ApplySet parent with the hash
    /// of the whole inventory (see [`ownership::APPLIED_HASH_ANNOTATION`]),
    /// so the next plan can tell drift from a changed definition.
    pub fn stamped(mut self) -> Rendered {
        let mut inventory: Vec<String> = self
            .kubernetes
            .iter()
            .filter(|o| !o.is_applyset_parent())
            .map(|o| o.id.to_string())
            .collect();
        inventory.extend(
            self.jetstream
                .streams
                .iter()
                .map(|s| format!("stream {}", s.name)),
        );
        inventory.extend(
            self.jetstream
                .consumers
                .iter()
                .map(|c| format!("consumer {}/{}", c.stream, c.name)),
        );
        inventory.sort();
        let inventory_hash = ownership::hash(&Value::from(inventory));
        for object in &mut self.kubernetes {
            if object.is_applyset_parent() {
                object.body["metadata"]["annotations"][ownership::INVENTORY_HASH_ANNOTATION] =
                    Value::from(inventory_hash.clone());
            }
            ownership::stamp_object(&mut object.body);
        }
        for stream in &mut self.jetstream.streams {
            ownership::stamp_jetstream(&mut stream.config);
        }
        for consumer in &mut self.jetstream.consumers {
            ownership::stamp_jetstream(&mut consumer.config);
        }
        self
    }
}

/// Identifies one Kubernetes object.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ObjectRef {
    pub api_version: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
}

impl ObjectRef {
    /// The API group ("" for the core group).
    pub fn group(&self) -> &str {
        self.api_version
            .rsplit_once('/')
            .map_or("", |(group, _)| group)
    }
}

impl std::fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(namespace) => write!(f, "{} {namespace}/{}", self.kind, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

/// A desired object: its identity and the exact JSON fleet will apply.
#[derive(Debug, Clone, Serialize)]
pub struct DesiredObject {
    #[serde(skip)]
    pub id: ObjectRef,
    #[serde(flatten)]
    pub body: Value,
    /// The fields an agent's `patch` set on it, with where they were
    /// written: the API server's complaints about them point there.
    #[serde(skip)]
    pub patched: Vec<crate::model::PatchedField>,
}

impl DesiredObject {
    pub fn from_json(body: Value) -> Self {
        let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
        let id = ObjectRef {
            api_version: text(&body["apiVersion"]),
            kind: text(&body["kind"]),
            namespace: body["metadata"]["namespace"].as_str().map(str::to_string),
            name: text(&body["metadata"]["name"]),
        };
        Self {
            id,
            body,
            patched: Vec::new(),
        }
    }

    /// Whether this is the ApplySet parent, which marks the set.
    pub fn is_applyset_parent(&self) -> bool {
        self.id.kind == "Secret"
            && self.body["metadata"]["labels"][ownership::APPLYSET_ID_LABEL].is_string()
    }

    /// The wave this object is applied in: what others depend on goes first.
    pub fn wave(&self) -> Wave {
        Wave::of_kind(&self.id.kind)
    }

    fn order_key(&self) -> (Wave, usize, &str, &str) {
        let kind_rank = KIND_ORDER
            .iter()
            .position(|k| *k == self.id.kind)
            .unwrap_or(KIND_ORDER.len());
        (
            self.wave(),
            kind_rank,
            self.id.namespace.as_deref().unwrap_or(""),
            &self.id.name,
        )
    }
}

/// Kinds in the order they are rendered and applied within their wave.
const KIND_ORDER: &[&str] = &[
    "Namespace",
    "Secret",
    "ServiceAccount",
    "Role",
    "RoleBinding",
    "ConfigMap",
    "Deployment",
    "Service",
    "HorizontalPodAutoscaler",
    "ScaledObject",
    "PodDisruptionBudget",
    "NetworkPolicy",
    "ServiceMonitor",
];

/// Apply waves, in order; a plan lists its changes in the same order.
/// JetStream changes happen between configuration and workloads, so
/// consumers exist before the agents that read them. Services and
/// NetworkPolicies come before the workloads, so an agent's pods never run
/// without their NetworkPolicy. Autoscalers come after: an HPA made before
/// its Deployment finds no target and waits a sync period (15 s) before it
/// scales the Deployment to its minimum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Wave {
    Namespace,
    Configuration,
    JetStream,
    Network,
    Workloads,
    Policy,
}

impl Wave {
    pub fn of_kind(kind: &str) -> Wave {
        match kind {
            "Namespace" => Wave::Namespace,
            "ServiceAccount" | "Role" | "RoleBinding" | "ConfigMap" | "Secret" => {
                Wave::Configuration
            }
            "Service" | "NetworkPolicy" => Wave::Network,
            "Deployment" => Wave::Workloads,
            _ => Wave::Policy,
        }
    }
}
