//! The validated fleet for one environment: what `load` produces and `render`
//! consumes. Every value here has been checked (names, quantities, durations,
//! references), so later stages never re-check strings.

use std::collections::BTreeMap;
use std::ops::Range;
use std::time::Duration;

/// Index of a file in `load::source::Sources`.
pub type FileId = usize;

/// Where in the definition's files a value or key was written, for
/// messages that point at it (the loader makes these; later stages only
/// carry them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub file: FileId,
    pub span: Range<usize>,
}

/// A patch's directive key and its one value: `{ "$patch" = "delete" }`
/// removes a field fleet renders, or a named list item (strategic merge
/// patch's words). Part of the definition: the loader checks it, the
/// renderer applies it.
pub const PATCH_DIRECTIVE: &str = "$patch";
pub const PATCH_DELETE: &str = "delete";

/// A Kubernetes resource quantity, kept as written (the seed's `2000m` stays
/// `2000m` in rendered objects) with its exact value.
#[derive(Debug, Clone, PartialEq)]
pub struct Quantity {
    pub text: String,
    pub amount: crate::quantity::Amount,
}

impl Quantity {
    /// In base units (cores, bytes), for sums and ratios.
    pub fn value(&self) -> f64 {
        self.amount.to_f64()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Fleet {
    /// Names the fleet's ownership of objects, streams and consumers.
    pub name: String,
    /// The environment loaded, if any.
    pub environment: Option<String>,
    pub namespace: String,
    /// Domain of fleet's descriptive labels: `<domain>/role`, `<domain>/tier`.
    pub label_domain: String,
    /// Field managers, besides kubectl's own, whose changes to fleet's
    /// fields are hand edits to restore (drift), not conflicts.
    pub imperative_managers: Vec<String>,
    /// The Pod Security Standard the fleet's Namespace enforces (and warns
    /// and audits at); every agent's pods meet it.
    pub pod_security: PodSecurityLevel,
    /// Whether fleet renders (creates, labels) the namespace. When not, the
    /// namespace is someone else's: fleet needs no cluster-scoped rights and
    /// only checks that it exists.
    pub manage_namespace: bool,
    /// Extra labels and annotations on the fleet's Namespace (when fleet
    /// manages it); never fleet's own `name`, ownership or Pod Security labels.
    pub namespace_labels: BTreeMap<String, String>,
    pub namespace_annotations: BTreeMap<String, String>,
    pub endpoints: Endpoints,
    /// The fleet-wide ServiceMonitor; `None` when no agent exports metrics.
    pub service_monitor: Option<ServiceMonitor>,
    /// Enabled agents, by role.
    pub agents: Vec<Agent>,
    /// Streams, by name.
    pub streams: Vec<Stream>,
    /// `[rollout]`: apply's waves; `None` rolls every agent out at once.
    pub rollout: Option<Rollout>,
    /// `[nats_credentials]`: fleet mints each agent's NATS credentials;
    /// `None` leaves NATS authentication to others.
    pub nats_credentials: Option<NatsCredentials>,
}

/// How fleet mints agents' NATS users (decentralised JWT authentication).
#[derive(Debug, Clone, PartialEq)]
pub struct NatsCredentials {
    /// The public key of the account the users belong to.
    pub account: String,
    /// How long a minted user is valid.
    pub validity: Duration,
    /// A plan this close to a user's expiry mints it again.
    pub renew_before: Duration,
    /// Users superseded (by a change of permissions) or removed (with their
    /// agent) are revoked in the account JWT, which apply re-signs with the
    /// operator's key; without it they stay valid until they expire.
    pub revoke: bool,
}

/// The order apply rolls the agents out in, and its health gate.
#[derive(Debug, Clone, PartialEq)]
pub struct Rollout {
    /// Roles, wave by wave, in order; every running agent is in one.
    pub waves: Vec<Vec<String>>,
    /// How long a wave's pods must then stay ready, without a restart,
    /// before the next wave starts.
    pub soak: Duration,
    /// `on_failure = "rollback"`: a wave that fails goes back to the pod
    /// templates it ran before.
    pub roll_back: bool,
}

/// Where the environment lives: the cluster and the NATS server fleet talks to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Endpoints {
    /// kubeconfig context; `None` means the current context (or in-cluster).
    pub kube_context: Option<String>,
    /// NATS URL fleet itself connects to (not the one given to agents).
    pub nats_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServiceMonitor {
    pub name: String,
    pub interval: String,
    pub path: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Agent {
    pub role: String,
    pub tier: Option<String>,
    pub image: String,
    /// The container's entrypoint; empty keeps the image's.
    pub command: Vec<String>,
    pub args: Vec<String>,
    /// Secrets the kubelet pulls the image with, by name.
    pub image_pull_secrets: Vec<String>,
    pub priority_class: Option<String>,
    /// Environment variables after the built-in NATS_URL / AGENT_ID / AGENT_NAMESPACE.
    pub env: Vec<EnvVar>,
    /// Whole ConfigMaps and Secrets as environment variables, after `env`.
    pub env_from: Vec<EnvFrom>,
    /// Volumes from existing Secrets and ConfigMaps, after fleet's own.
    pub volumes: Vec<MountedVolume>,
    /// NATS URL the agent's pods are given.
    pub nats_url: String,
    /// Files mounted at `config_dir` from the agent's ConfigMap, by file name.
    pub config_files: BTreeMap<String, String>,
    pub config_dir: String,
    pub workspace_size: Option<Quantity>,
    /// Fixed replica count; ignored when `autoscaling` is set.
    pub replicas: u32,
    /// Rendered only when the agent runs more than one replica; `None` when
    /// switched off.
    pub disruption_budget: Option<DisruptionBudget>,
    pub security: SecurityContext,
    pub metrics_port: u16,
    pub health_port: u16,
    pub liveness: Probe,
    pub readiness: Probe,
    pub resources: Resources,
    pub placement: Placement,
    pub autoscaling: Option<Autoscaling>,
    /// The agent's own consumer, `<role>-agent` (`consumer = {...}`).
    pub consumer: Option<Consumer>,
    /// Its consumers on further streams (`consumers.<stream>`), by stream.
    pub consumers: Vec<Consumer>,
    pub network: Option<NetworkPolicy>,
    pub rbac: Vec<RbacRule>,
    /// What it may say on NATS beyond reading its consumers.
    pub messaging: Messaging,
    pub metrics: bool,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// Fields set on the agent's rendered objects after rendering.
    pub patches: Vec<Patch>,
}

/// An agent's own NATS subjects, from which (with its consumers) its
/// least-privilege NATS permissions are derived: everything else is denied.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Messaging {
    /// Subjects it publishes to (each captured by a stream of the fleet).
    pub publishes: Vec<String>,
    /// Subjects it sends requests to (core NATS request/reply).
    pub requests: Vec<String>,
    /// Subjects it answers requests on.
    pub serves: Vec<String>,
}

/// `[agents.<role>.patch.<Kind>]`: merged into the agent's object of that
/// kind after rendering (maps key by key; lists of named items by name,
/// other lists whole).
#[derive(Debug, Clone, PartialEq)]
pub struct Patch {
    pub kind: String,
    pub kind_origin: Origin,
    pub body: serde_json::Value,
    pub fields: Vec<PatchedField>,
}

/// One field a patch sets, and where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchedField {
    /// `spec.template.spec.dnsPolicy`
    pub path: String,
    pub origin: Origin,
    /// `fleet.toml:41:1`, filled in once the sources are known.
    pub at: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EnvVar {
    pub name: String,
    pub value: EnvValue,
}

#[derive(Debug, Clone, PartialEq)]
pub enum EnvValue {
    Literal(String),
    /// A key of an existing Secret; its value never passes through fleet.
    Secret {
        name: String,
        key: String,
    },
    /// A key of an existing ConfigMap.
    ConfigMap {
        name: String,
        key: String,
    },
}

/// An existing ConfigMap or Secret, by name.
#[derive(Debug, Clone, PartialEq)]
pub enum ObjectRef {
    ConfigMap(String),
    Secret(String),
}

/// Every key of a ConfigMap or Secret as a variable, named `prefix` + key.
#[derive(Debug, Clone, PartialEq)]
pub struct EnvFrom {
    pub source: ObjectRef,
    pub prefix: Option<String>,
}

/// A Secret or ConfigMap mounted into the agent's container.
#[derive(Debug, Clone, PartialEq)]
pub struct MountedVolume {
    /// The volume's name in the pod.
    pub name: String,
    pub source: ObjectRef,
    pub mount_path: String,
    pub read_only: bool,
    /// Only these keys, each at its path inside the volume; empty means all.
    pub items: BTreeMap<String, String>,
    /// Mount only this path of the volume.
    pub sub_path: Option<String>,
}

/// A number of pods, or a percentage of the agent's replicas.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PodCount {
    Count(u32),
    Percent(u32),
}

/// How many of the agent's pods voluntary disruptions (node drains) may take.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DisruptionBudget {
    MaxUnavailable(PodCount),
    MinAvailable(PodCount),
}

/// A Pod Security Standard level, as the API server's Pod Security admission
/// names them; ordered from least to most restrictive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PodSecurityLevel {
    Privileged,
    Baseline,
    Restricted,
}

impl PodSecurityLevel {
    pub const ALL: [PodSecurityLevel; 3] = [Self::Privileged, Self::Baseline, Self::Restricted];

    /// The value of the `pod-security.kubernetes.io/*` namespace labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Privileged => "privileged",
            Self::Baseline => "baseline",
            Self::Restricted => "restricted",
        }
    }
}

/// The pod's and its container's security settings. The defaults meet the
/// `restricted` Pod Security Standard and make the root filesystem read-only.
#[derive(Debug, Clone, PartialEq)]
pub struct SecurityContext {
    pub run_as_non_root: bool,
    pub run_as_user: i64,
    pub fs_group: i64,
    /// When set, fleet mounts an emptyDir at /tmp so the agent can still
    /// write temporary files.
    pub read_only_root_filesystem: bool,
    pub allow_privilege_escalation: bool,
    /// Added after dropping ALL (Kubernetes names, without `CAP_`).
    pub add_capabilities: Vec<String>,
    pub seccomp_profile: SeccompProfile,
}

impl Default for SecurityContext {
    fn default() -> Self {
        Self {
            run_as_non_root: true,
            run_as_user: 1000,
            fs_group: 1000,
            read_only_root_filesystem: true,
            allow_privilege_escalation: false,
            add_capabilities: Vec::new(),
            seccomp_profile: SeccompProfile::RuntimeDefault,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum SeccompProfile {
    RuntimeDefault,
    Unconfined,
    /// A profile file on the node, relative to the kubelet's seccomp directory.
    Localhost(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    pub path: String,
    pub initial_delay_seconds: i32,
    pub period_seconds: i32,
    pub timeout_seconds: Option<i32>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resources {
    pub requests: ResourceList,
    pub limits: ResourceList,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResourceList {
    pub cpu: Option<Quantity>,
    pub memory: Option<Quantity>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Placement {
    pub node_selector: BTreeMap<String, String>,
    /// Required node affinity: label key -> what its value must be.
    pub node_affinity: BTreeMap<String, NodeRequirement>,
    /// Preferred node affinity, one term each.
    pub preferred_node_affinity: Vec<PreferredNodeTerm>,
    pub tolerations: Vec<Toleration>,
    /// Spread the agent's tier across zones (maxSkew 1, DoNotSchedule).
    pub zone_spread: bool,
    /// Keep the agent's replicas on different nodes (pod anti-affinity on
    /// the hostname).
    pub node_spread: Option<Spread>,
}

/// What a node label must be, in Kubernetes' own terms.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeRequirement {
    pub operator: NodeOperator,
    /// None for Exists and DoesNotExist; one integer for Gt and Lt.
    pub values: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeOperator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
    Gt,
    Lt,
}

impl NodeOperator {
    pub const ALL: [NodeOperator; 6] = [
        Self::In,
        Self::NotIn,
        Self::Exists,
        Self::DoesNotExist,
        Self::Gt,
        Self::Lt,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::In => "In",
            Self::NotIn => "NotIn",
            Self::Exists => "Exists",
            Self::DoesNotExist => "DoesNotExist",
            Self::Gt => "Gt",
            Self::Lt => "Lt",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct PreferredNodeTerm {
    /// 1 to 100: how much the scheduler favours nodes that match.
    pub weight: i32,
    pub requirements: BTreeMap<String, NodeRequirement>,
}

/// A toleration of node taints, as Kubernetes takes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Toleration {
    /// `None` (with operator Exists) tolerates every taint.
    pub key: Option<String>,
    /// `Equal` or `Exists`.
    pub operator: String,
    pub value: Option<String>,
    /// `None` tolerates every effect.
    pub effect: Option<String>,
    /// How long a `NoExecute` taint leaves the pod running.
    pub toleration_seconds: Option<i64>,
}

/// How hard the scheduler keeps an agent's replicas apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spread {
    /// Never two replicas on one node (a replica beyond the node count stays pending).
    Required,
    /// Apart when the scheduler can.
    Preferred,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Autoscaling {
    /// What scales the agent: a HorizontalPodAutoscaler fleet renders (the
    /// seed's), or a KEDA ScaledObject, whose HPA KEDA makes and owns.
    pub engine: Engine,
    /// 0 only with KEDA, which wakes an idle agent on its first task.
    pub min_replicas: u32,
    pub max_replicas: u32,
    /// Target pending messages per replica on the agent's consumer.
    pub pending_per_replica: Option<u32>,
    pub memory_utilization: Option<u32>,
    pub cpu_utilization: Option<u32>,
    pub scale_up: ScalingRules,
    pub scale_down: ScalingRules,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Engine {
    Hpa,
    Keda(Keda),
}

/// What a KEDA ScaledObject needs beyond the HPA's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Keda {
    /// `host:port` of the NATS monitoring endpoint, as KEDA dials it from
    /// inside the cluster (`[environment] nats_monitoring`).
    pub monitoring_endpoint: String,
    pub monitoring_https: bool,
    /// The NATS account the streams live in (`$G` without accounts).
    pub account: String,
    /// Pending tasks above which an agent at zero replicas wakes.
    pub activation_pending: u32,
    pub polling_interval_seconds: i32,
    /// How long the last task must be gone before scaling to zero.
    pub cooldown_seconds: i32,
    /// Replicas to hold while KEDA cannot read NATS (3 failed reads).
    pub fallback_replicas: Option<u32>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ScalingRules {
    pub stabilization_window_seconds: i32,
    /// At most this many pods per period.
    pub pods: Option<i32>,
    /// At most this percentage of the current replicas per period. With
    /// `pods` too, the autoscaler takes whichever allows the larger change.
    pub percent: Option<i32>,
    pub period_seconds: i32,
}

impl Fleet {
    /// Whether the fleet defines a JetStream stream or consumer (then it
    /// needs a NATS server).
    pub fn uses_jetstream(&self) -> bool {
        !self.streams.is_empty()
            || self
                .agents
                .iter()
                .any(|a| a.all_consumers().next().is_some())
    }
}

impl Agent {
    /// Every consumer of the agent: its own first, then the others by stream.
    pub fn all_consumers(&self) -> impl Iterator<Item = &Consumer> {
        self.consumer.iter().chain(&self.consumers)
    }
}

/// A durable pull consumer of the agent's.
#[derive(Debug, Clone, PartialEq)]
pub struct Consumer {
    /// `<role>-agent`, or `<role>-agent-<stream>` for `consumers.<stream>`.
    pub name: String,
    /// The stream's name on the server.
    pub stream: String,
    pub filter_subjects: Vec<String>,
    /// `all` (the default), `last`, `new` or `last_per_subject`.
    pub deliver_policy: String,
    /// Delete the consumer after this long without a client; `None`: never.
    pub inactive_threshold: Option<Duration>,
    pub ack_wait: Duration,
    pub max_deliver: i64,
    pub max_ack_pending: i64,
    pub backoff: Vec<Duration>,
    pub description: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NetworkPolicy {
    pub ingress: Vec<NetworkRule>,
    pub egress: Vec<NetworkRule>,
}

/// One ingress or egress rule: who (any of `peers`; none means anyone) on
/// which ports (none means all).
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkRule {
    pub peers: Vec<NetworkPeer>,
    pub ports: Vec<NetworkPort>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum NetworkPeer {
    /// Pods in the fleet's namespace with these labels.
    Pods(BTreeMap<String, String>),
    /// Pods with these labels in the namespaces with those labels (both
    /// must match: one peer with a pod and a namespace selector).
    PodsInNamespaces {
        pods: BTreeMap<String, String>,
        namespaces: BTreeMap<String, String>,
    },
    /// Namespaces with these labels; empty means every namespace.
    Namespaces(BTreeMap<String, String>),
    /// Another agent of this fleet, by role.
    Agent(String),
    /// An IP block, less the blocks in `except` (each inside it).
    Cidr { cidr: String, except: Vec<String> },
}

#[derive(Debug, Clone, PartialEq)]
pub struct NetworkPort {
    pub protocol: String,
    pub port: u16,
    /// The last port of a range `port`..=`end_port`.
    pub end_port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RbacRule {
    pub api_groups: Vec<String>,
    pub resources: Vec<String>,
    pub verbs: Vec<String>,
    pub resource_names: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Stream {
    /// The stream's name on the server: its key under [streams], or its
    /// `name` (an environment may rename it).
    pub name: String,
    pub subjects: Vec<String>,
    pub retention: String,
    pub storage: String,
    pub replicas: u32,
    pub max_age: Option<Duration>,
    pub max_bytes: Option<i64>,
    pub max_msgs: Option<i64>,
    pub max_msg_size: Option<i32>,
    pub discard: String,
    pub duplicate_window: Option<Duration>,
    pub description: Option<String>,
    // Set only when the definition says; unset, fleet leaves the server's value.
    pub max_msgs_per_subject: Option<i64>,
    pub allow_direct: Option<bool>,
    /// `none` or `s2`.
    pub compression: Option<String>,
    pub sources: Option<Vec<StreamSource>>,
}

/// A stream that another sources messages from.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamSource {
    /// Its name on the server.
    pub name: String,
    pub filter_subject: Option<String>,
}
