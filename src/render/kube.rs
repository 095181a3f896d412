//! Fleet -> desired Kubernetes objects, built with k8s-openapi's typed structs
//! (the compiler checks every field name) and turned into JSON only at the end.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, ExternalMetricSource, HPAScalingPolicy, HPAScalingRules,
    HorizontalPodAutoscaler, HorizontalPodAutoscalerBehavior, HorizontalPodAutoscalerSpec,
    MetricIdentifier, MetricSpec, MetricTarget, ResourceMetricSource,
};
use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, ConfigMap, ConfigMapEnvSource, ConfigMapKeySelector,
    ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource, EnvFromSource, EnvVar,
    EnvVarSource, HTTPGetAction, KeyToPath, LocalObjectReference, Namespace, NodeAffinity,
    NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, ObjectFieldSelector, PodAffinityTerm,
    PodAntiAffinity, PodSecurityContext, PodSpec, PodTemplateSpec, PreferredSchedulingTerm, Probe,
    ResourceRequirements, SeccompProfile, SecretEnvSource, SecretKeySelector, SecretVolumeSource,
    SecurityContext, Service, ServiceAccount, ServicePort, ServiceSpec, Toleration,
    TopologySpreadConstraint, Volume, VolumeMount, WeightedPodAffinityTerm,
};
use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::{Metadata, Resource};
use serde::Serialize;
use serde_json::{Value, json};

use super::DesiredObject;
use crate::model::{self, Agent, Fleet, NetworkPeer, NetworkRule};
use crate::ownership;

/// Name of the metric the seed's NATS exporter publishes per consumer.
const PENDING_METRIC: &str = "nats_consumer_pending_messages";

/// The ScaledObject annotation naming labels KEDA must not copy onto the HPA
/// it makes.
pub const KEDA_EXCLUDED_LABELS: &str = "scaledobject.keda.sh/hpa-excluded-labels";

/// Failed reads of NATS after which KEDA holds the fallback replicas.
const KEDA_FALLBACK_FAILURES: u32 = 3;

pub fn objects(fleet: &Fleet) -> Vec<DesiredObject> {
    let r = Renderer::new(fleet);
    let mut objects = Vec::new();
    if fleet.manage_namespace {
        objects.push(r.namespace());
    }
    for agent in &fleet.agents {
        objects.push(r.service_account(agent));
        if !agent.rbac.is_empty() {
            objects.push(r.role(agent));
            objects.push(r.role_binding(agent));
        }
        if !agent.config_files.is_empty() {
            objects.push(r.config_map(agent));
        }
        objects.push(r.deployment(agent));
        if agent.metrics {
            objects.push(r.service(agent));
        }
        if agent.autoscaling.is_some() {
            objects.push(r.autoscaler(agent));
        }
        if let (true, Some(budget)) = (runs_more_than_one(agent), agent.disruption_budget) {
            objects.push(r.disruption_budget(agent, budget));
        }
        if agent.network.is_some() {
            objects.push(r.network_policy(agent));
        }
    }
    if let Some(monitor) = &fleet.service_monitor {
        objects.push(r.service_monitor(monitor));
    }
    objects.push(r.applyset_parent(&objects));
    objects.sort_by(|a, b| a.order_key().cmp(&b.order_key()));
    objects
}

/// Each agent's NATS credentials Secret `agent-<role>-nats`, without its
/// data: the permissions it holds are an annotation a plan compares and a
/// reviewer reads; apply mints the user and writes the creds file. Not
/// among [`objects`]: a dry run of it without the creds would remove them.
pub fn credential_secrets(fleet: &Fleet) -> Vec<DesiredObject> {
    if fleet.nats_credentials.is_none() {
        return Vec::new();
    }
    let r = Renderer::new(fleet);
    fleet
        .agents
        .iter()
        .map(|agent| {
            let permissions = super::permissions::of_agent(agent);
            let mut annotations = agent.annotations.clone();
            annotations.insert(
                crate::credentials::PERMISSIONS_ANNOTATION.into(),
                serde_json::to_string(&permissions).expect("permissions serialise"),
            );
            let mut meta = r.agent_meta(agent, credentials_secret_name(&agent.role));
            meta.annotations = Some(annotations);
            DesiredObject::from_json(json!({
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": meta,
                "type": "Opaque",
            }))
        })
        .collect()
}

/// Where an agent's pods find their NATS creds file.
pub const CREDS_DIR: &str = "/etc/nats";
pub const CREDS_FILE: &str = "agent.creds";

pub fn credentials_secret_name(role: &str) -> String {
    format!("{}-nats", deployment_name(role))
}

fn runs_more_than_one(agent: &Agent) -> bool {
    match &agent.autoscaling {
        Some(autoscaling) => autoscaling.min_replicas > 1,
        None => agent.replicas > 1,
    }
}

pub fn deployment_name(role: &str) -> String {
    format!("agent-{role}")
}

struct Renderer<'a> {
    fleet: &'a Fleet,
    applyset_id: String,
}

type Labels = BTreeMap<String, String>;

impl<'a> Renderer<'a> {
    fn new(fleet: &'a Fleet) -> Self {
        let parent = ownership::applyset_parent_name(&fleet.name);
        Self {
            fleet,
            applyset_id: ownership::applyset_id(&parent, &fleet.namespace),
        }
    }

    fn label(&self, name: &str) -> String {
        format!("{}/{name}", self.fleet.label_domain)
    }

    /// The marks that make an object fleet's (see [`ownership`]).
    fn ownership_labels(&self) -> Labels {
        Labels::from([
            (
                ownership::MANAGED_BY_LABEL.to_string(),
                ownership::MANAGED_BY.to_string(),
            ),
            (
                ownership::PART_OF_LABEL.to_string(),
                self.applyset_id.clone(),
            ),
        ])
    }

    /// Labels on the agent's objects: role and tier as the seed shows them,
    /// the agent's own labels, and fleet's ownership marks.
    fn agent_labels(&self, agent: &Agent) -> Labels {
        let mut labels = agent.labels.clone();
        labels.insert(self.label("role"), agent.role.clone());
        if let Some(tier) = &agent.tier {
            labels.insert(self.label("tier"), tier.clone());
        }
        labels.extend(self.ownership_labels());
        labels
    }

    fn meta(&self, name: String, labels: Labels) -> ObjectMeta {
        ObjectMeta {
            name: Some(name),
            namespace: Some(self.fleet.namespace.clone()),
            labels: Some(labels),
            ..ObjectMeta::default()
        }
    }

    fn agent_meta(&self, agent: &Agent, name: String) -> ObjectMeta {
        let mut meta = self.meta(name, self.agent_labels(agent));
        if !agent.annotations.is_empty() {
            meta.annotations = Some(agent.annotations.clone());
        }
        meta
    }

    fn namespace(&self) -> DesiredObject {
        let mut labels = self.ownership_labels();
        // The seed's network policies select the namespace by `name`.
        labels.insert("name".into(), self.fleet.namespace.clone());
        // Pod Security admission reads these; enforce rejects pods below the
        // level, warn and audit report them.
        // https://kubernetes.io/docs/concepts/security/pod-security-admission/
        for mode in ["enforce", "warn", "audit"] {
            labels.insert(
                format!("pod-security.kubernetes.io/{mode}"),
                self.fleet.pod_security.as_str().into(),
            );
        }
        // The loader refused the labels fleet sets itself, so they still win.
        let mut labels_with_own = self.fleet.namespace_labels.clone();
        labels_with_own.extend(labels);
        let annotations = &self.fleet.namespace_annotations;
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: Some(self.fleet.namespace.clone()),
                labels: Some(labels_with_own),
                annotations: (!annotations.is_empty()).then(|| annotations.clone()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        DesiredObject::new(&namespace)
    }

    /// The ApplySet parent (KEP-3659): a Secret without data whose labels and
    /// annotations name the set and the kinds in it, so `kubectl` users can
    /// see and prune fleet's objects too.
    fn applyset_parent(&self, members: &[DesiredObject]) -> DesiredObject {
        let kinds: std::collections::BTreeSet<String> = members
            .iter()
            .map(|m| match m.id.group() {
                "" => m.id.kind.clone(),
                group => format!("{}.{group}", m.id.kind),
            })
            .collect();
        let body = json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": ownership::applyset_parent_name(&self.fleet.name),
                "namespace": self.fleet.namespace,
                "labels": {
                    ownership::APPLYSET_ID_LABEL: self.applyset_id,
                    ownership::MANAGED_BY_LABEL: ownership::MANAGED_BY,
                },
                "annotations": {
                    ownership::APPLYSET_TOOLING_ANNOTATION: format!("fleet/v{}", env!("CARGO_PKG_VERSION")),
                    ownership::APPLYSET_KINDS_ANNOTATION: kinds.into_iter().collect::<Vec<_>>().join(","),
                },
            },
            "type": "Opaque",
        });
        // The credentials Secrets it made, so that a removed agent's are found
        // (and deleted) without listing Secrets.
        let mut body = body;
        if self.fleet.nats_credentials.is_some() {
            let names: Vec<String> = self
                .fleet
                .agents
                .iter()
                .map(|agent| credentials_secret_name(&agent.role))
                .collect();
            body["metadata"]["annotations"][crate::credentials::RECORDED_ANNOTATION] =
                Value::from(names.join(","));
        }
        DesiredObject::from_json(body)
    }

    fn service_account(&self, agent: &Agent) -> DesiredObject {
        let account = ServiceAccount {
            metadata: self.agent_meta(agent, deployment_name(&agent.role)),
            ..ServiceAccount::default()
        };
        DesiredObject::new(&account)
    }

    fn role(&self, agent: &Agent) -> DesiredObject {
        let role = Role {
            metadata: self.agent_meta(agent, deployment_name(&agent.role)),
            rules: Some(
                agent
                    .rbac
                    .iter()
                    .map(|rule| PolicyRule {
                        api_groups: Some(rule.api_groups.clone()),
                        resources: Some(rule.resources.clone()),
                        verbs: rule.verbs.clone(),
                        resource_names: (!rule.resource_names.is_empty())
                            .then(|| rule.resource_names.clone()),
                        non_resource_urls: None,
                    })
                    .collect(),
            ),
        };
        DesiredObject::new(&role)
    }

    fn role_binding(&self, agent: &Agent) -> DesiredObject {
        let name = deployment_name(&agent.role);
        let binding = RoleBinding {
            metadata: self.agent_meta(agent, name.clone()),
            role_ref: RoleRef {
                api_group: Some("rbac.authorization.k8s.io".into()),
                kind: "Role".into(),
                name: name.clone(),
            },
            subjects: Some(vec![Subject {
                kind: "ServiceAccount".into(),
                name,
                namespace: Some(self.fleet.namespace.clone()),
                api_group: None,
            }]),
        };
        DesiredObject::new(&binding)
    }

    fn config_map(&self, agent: &Agent) -> DesiredObject {
        let config = ConfigMap {
            metadata: self.agent_meta(agent, config_map_name(agent)),
            data: Some(agent.config_files.clone()),
            ..ConfigMap::default()
        };
        DesiredObject::new(&config)
    }

    fn deployment(&self, agent: &Agent) -> DesiredObject {
        let name = deployment_name(&agent.role);
        let selector = Labels::from([("app".to_string(), name.clone())]);

        let mut pod_labels = agent.labels.clone();
        pod_labels.insert("app".into(), name.clone());
        pod_labels.insert(self.label("role"), agent.role.clone());
        // The zone spread selects pods by tier, so they must carry it.
        if agent.placement.zone_spread
            && let Some(tier) = &agent.tier
        {
            pod_labels.insert(self.label("tier"), tier.clone());
        }
        let mut pod_annotations = agent.annotations.clone();
        if agent.metrics {
            pod_annotations.insert("prometheus.io/scrape".into(), "true".into());
            pod_annotations.insert("prometheus.io/port".into(), agent.metrics_port.to_string());
        }

        let deployment = Deployment {
            metadata: self.agent_meta(agent, name.clone()),
            spec: DeploymentSpec {
                // With an autoscaler the replica count is the autoscaler's:
                // setting it here would fight it on every apply.
                replicas: agent.autoscaling.is_none().then_some(agent.replicas as i32),
                selector: LabelSelector {
                    match_labels: Some(selector),
                    match_expressions: None,
                },
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(pod_labels),
                        annotations: (!pod_annotations.is_empty()).then_some(pod_annotations),
                        ..ObjectMeta::default()
                    }),
                    spec: Some(self.pod_spec(agent, &name)),
                },
                ..DeploymentSpec::default()
            },
            status: None,
        };
        DesiredObject::new(&deployment)
    }

    fn pod_spec(&self, agent: &Agent, name: &str) -> PodSpec {
        let mut volumes = Vec::new();
        let mut mounts = Vec::new();
        if !agent.config_files.is_empty() {
            volumes.push(Volume {
                name: "agent-config".into(),
                config_map: Some(ConfigMapVolumeSource {
                    name: config_map_name(agent),
                    ..ConfigMapVolumeSource::default()
                }),
                ..Volume::default()
            });
            mounts.push(VolumeMount {
                name: "agent-config".into(),
                mount_path: agent.config_dir.clone(),
                ..VolumeMount::default()
            });
        }
        volumes.push(Volume {
            name: "workspace".into(),
            empty_dir: Some(EmptyDirVolumeSource {
                size_limit: agent
                    .workspace_size
                    .as_ref()
                    .map(|q| Quantity(q.text.clone())),
                ..EmptyDirVolumeSource::default()
            }),
            ..Volume::default()
        });
        mounts.push(VolumeMount {
            name: "workspace".into(),
            mount_path: "/workspace".into(),
            ..VolumeMount::default()
        });
        // A read-only root still needs somewhere for temporary files.
        if agent.security.read_only_root_filesystem {
            volumes.push(Volume {
                name: "tmp".into(),
                empty_dir: Some(EmptyDirVolumeSource::default()),
                ..Volume::default()
            });
            mounts.push(VolumeMount {
                name: "tmp".into(),
                mount_path: "/tmp".into(),
                ..VolumeMount::default()
            });
        }

        // The NATS user fleet mints for the agent, when it mints them.
        if self.fleet.nats_credentials.is_some() {
            volumes.push(Volume {
                name: "nats-credentials".into(),
                secret: Some(SecretVolumeSource {
                    secret_name: Some(credentials_secret_name(&agent.role)),
                    ..SecretVolumeSource::default()
                }),
                ..Volume::default()
            });
            mounts.push(VolumeMount {
                name: "nats-credentials".into(),
                mount_path: CREDS_DIR.into(),
                read_only: Some(true),
                ..VolumeMount::default()
            });
        }

        for volume in &agent.volumes {
            let items = (!volume.items.is_empty()).then(|| {
                volume
                    .items
                    .iter()
                    .map(|(key, path)| KeyToPath {
                        key: key.clone(),
                        path: path.clone(),
                        ..KeyToPath::default()
                    })
                    .collect()
            });
            volumes.push(match &volume.source {
                model::ObjectRef::Secret(name) => Volume {
                    name: volume.name.clone(),
                    secret: Some(SecretVolumeSource {
                        secret_name: Some(name.clone()),
                        items,
                        ..SecretVolumeSource::default()
                    }),
                    ..Volume::default()
                },
                model::ObjectRef::ConfigMap(name) => Volume {
                    name: volume.name.clone(),
                    config_map: Some(ConfigMapVolumeSource {
                        name: name.clone(),
                        items,
                        ..ConfigMapVolumeSource::default()
                    }),
                    ..Volume::default()
                },
            });
            mounts.push(VolumeMount {
                name: volume.name.clone(),
                mount_path: volume.mount_path.clone(),
                read_only: Some(volume.read_only),
                sub_path: volume.sub_path.clone(),
                ..VolumeMount::default()
            });
        }

        let container = Container {
            name: "agent".into(),
            image: Some(agent.image.clone()),
            command: (!agent.command.is_empty()).then(|| agent.command.clone()),
            args: Some(agent.args.clone()),
            ports: Some(vec![
                ContainerPort {
                    name: Some("metrics".into()),
                    container_port: agent.metrics_port.into(),
                    ..ContainerPort::default()
                },
                ContainerPort {
                    name: Some("health".into()),
                    container_port: agent.health_port.into(),
                    ..ContainerPort::default()
                },
            ]),
            env: Some(self.env(agent)),
            env_from: (!agent.env_from.is_empty()).then(|| env_from(&agent.env_from)),
            resources: resources(&agent.resources),
            liveness_probe: Some(probe(&agent.liveness)),
            readiness_probe: Some(probe(&agent.readiness)),
            volume_mounts: Some(mounts),
            security_context: Some(container_security(&agent.security)),
            ..Container::default()
        };

        PodSpec {
            service_account_name: Some(name.to_string()),
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(agent.security.run_as_non_root),
                run_as_user: Some(agent.security.run_as_user),
                fs_group: Some(agent.security.fs_group),
                seccomp_profile: Some(seccomp_profile(&agent.security.seccomp_profile)),
                ..PodSecurityContext::default()
            }),
            containers: vec![container],
            volumes: Some(volumes),
            node_selector: (!agent.placement.node_selector.is_empty())
                .then(|| agent.placement.node_selector.clone()),
            affinity: affinity(agent),
            topology_spread_constraints: self.zone_spread(agent),
            tolerations: (!agent.placement.tolerations.is_empty())
                .then(|| tolerations(&agent.placement.tolerations)),
            image_pull_secrets: (!agent.image_pull_secrets.is_empty()).then(|| {
                agent
                    .image_pull_secrets
                    .iter()
                    .map(|name| LocalObjectReference { name: name.clone() })
                    .collect()
            }),
            priority_class_name: agent.priority_class.clone(),
            ..PodSpec::default()
        }
    }

    fn env(&self, agent: &Agent) -> Vec<EnvVar> {
        let field = |path: &str| EnvVar {
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: path.into(),
                    api_version: None,
                }),
                ..EnvVarSource::default()
            }),
            ..EnvVar::default()
        };
        let mut env = vec![
            EnvVar {
                name: "NATS_URL".into(),
                value: Some(agent.nats_url.clone()),
                ..EnvVar::default()
            },
            EnvVar {
                name: "AGENT_ID".into(),
                ..field("metadata.name")
            },
            EnvVar {
                name: "AGENT_NAMESPACE".into(),
                ..field("metadata.namespace")
            },
        ];
        if self.fleet.nats_credentials.is_some() {
            env.push(EnvVar {
                name: "NATS_CREDS".into(),
                value: Some(format!("{CREDS_DIR}/{CREDS_FILE}")),
                ..EnvVar::default()
            });
            // Replies to the agent come under its own prefix, which its
            // credentials alone may subscribe to.
            env.push(EnvVar {
                name: "NATS_INBOX_PREFIX".into(),
                value: Some(super::permissions::inbox_prefix(&agent.role)),
                ..EnvVar::default()
            });
        }
        for var in &agent.env {
            env.push(match &var.value {
                model::EnvValue::Literal(value) => EnvVar {
                    name: var.name.clone(),
                    value: Some(value.clone()),
                    ..EnvVar::default()
                },
                model::EnvValue::Secret { name, key } => EnvVar {
                    name: var.name.clone(),
                    value_from: Some(EnvVarSource {
                        secret_key_ref: Some(SecretKeySelector {
                            name: name.clone(),
                            key: key.clone(),
                            optional: None,
                        }),
                        ..EnvVarSource::default()
                    }),
                    ..EnvVar::default()
                },
                model::EnvValue::ConfigMap { name, key } => EnvVar {
                    name: var.name.clone(),
                    value_from: Some(EnvVarSource {
                        config_map_key_ref: Some(ConfigMapKeySelector {
                            name: name.clone(),
                            key: key.clone(),
                            optional: None,
                        }),
                        ..EnvVarSource::default()
                    }),
                    ..EnvVar::default()
                },
            });
        }
        env
    }

    fn zone_spread(&self, agent: &Agent) -> Option<Vec<TopologySpreadConstraint>> {
        if !agent.placement.zone_spread {
            return None;
        }
        // The seed spreads a tier; an agent without one spreads its own pods.
        let match_labels = match &agent.tier {
            Some(tier) => Labels::from([(self.label("tier"), tier.clone())]),
            None => Labels::from([("app".to_string(), deployment_name(&agent.role))]),
        };
        Some(vec![TopologySpreadConstraint {
            max_skew: 1,
            topology_key: "topology.kubernetes.io/zone".into(),
            when_unsatisfiable: "DoNotSchedule".into(),
            label_selector: Some(LabelSelector {
                match_labels: Some(match_labels),
                match_expressions: None,
            }),
            ..TopologySpreadConstraint::default()
        }])
    }

    fn service(&self, agent: &Agent) -> DesiredObject {
        let name = deployment_name(&agent.role);
        let mut labels = self.agent_labels(agent);
        labels.insert("app".into(), name.clone());
        labels.insert(self.label("monitored"), "true".into());
        let service = Service {
            metadata: ObjectMeta {
                labels: Some(labels),
                ..self.agent_meta(agent, name.clone())
            },
            spec: Some(ServiceSpec {
                selector: Some(Labels::from([("app".to_string(), name)])),
                ports: Some(vec![ServicePort {
                    name: Some("metrics".into()),
                    port: agent.metrics_port.into(),
                    target_port: Some(IntOrString::String("metrics".into())),
                    ..ServicePort::default()
                }]),
                ..ServiceSpec::default()
            }),
            status: None,
        };
        DesiredObject::new(&service)
    }

    fn autoscaler(&self, agent: &Agent) -> DesiredObject {
        let autoscaling = agent
            .autoscaling
            .as_ref()
            .expect("only called for autoscaled agents");
        match &autoscaling.engine {
            model::Engine::Hpa => self.horizontal_pod_autoscaler(agent, autoscaling),
            model::Engine::Keda(keda) => self.scaled_object(agent, autoscaling, keda),
        }
    }

    fn horizontal_pod_autoscaler(
        &self,
        agent: &Agent,
        autoscaling: &model::Autoscaling,
    ) -> DesiredObject {
        let mut metrics = Vec::new();
        // One metric per consumer: the autoscaler proposes a replica count
        // for each and takes the largest, so any one backlog scales the agent.
        for consumer in agent
            .all_consumers()
            .filter(|_| autoscaling.pending_per_replica.is_some())
        {
            let pending = autoscaling.pending_per_replica.unwrap_or_default();
            metrics.push(MetricSpec {
                type_: "External".into(),
                external: Some(ExternalMetricSource {
                    metric: MetricIdentifier {
                        name: PENDING_METRIC.into(),
                        selector: Some(LabelSelector {
                            match_labels: Some(Labels::from([
                                ("consumer".to_string(), consumer.name.clone()),
                                ("stream".to_string(), consumer.stream.clone()),
                            ])),
                            match_expressions: None,
                        }),
                    },
                    target: MetricTarget {
                        type_: "AverageValue".into(),
                        average_value: Some(Quantity(pending.to_string())),
                        ..MetricTarget::default()
                    },
                }),
                ..MetricSpec::default()
            });
        }
        for (resource, utilization) in [
            ("memory", autoscaling.memory_utilization),
            ("cpu", autoscaling.cpu_utilization),
        ] {
            if let Some(utilization) = utilization {
                metrics.push(MetricSpec {
                    type_: "Resource".into(),
                    resource: Some(ResourceMetricSource {
                        name: resource.into(),
                        target: MetricTarget {
                            type_: "Utilization".into(),
                            average_utilization: Some(utilization as i32),
                            ..MetricTarget::default()
                        },
                    }),
                    ..MetricSpec::default()
                });
            }
        }
        let hpa = HorizontalPodAutoscaler {
            metadata: self.agent_meta(agent, autoscaler_name(&agent.role)),
            spec: HorizontalPodAutoscalerSpec {
                scale_target_ref: CrossVersionObjectReference {
                    api_version: Some("apps/v1".into()),
                    kind: "Deployment".into(),
                    name: deployment_name(&agent.role),
                },
                min_replicas: Some(autoscaling.min_replicas as i32),
                max_replicas: autoscaling.max_replicas as i32,
                metrics: Some(metrics),
                behavior: Some(HorizontalPodAutoscalerBehavior {
                    scale_up: Some(scaling_rules(&autoscaling.scale_up)),
                    scale_down: Some(scaling_rules(&autoscaling.scale_down)),
                }),
            },
            status: None,
        };
        DesiredObject::new(&hpa)
    }

    /// KEDA's ScaledObject (no k8s-openapi type): KEDA makes the HPA from
    /// it, named as fleet names its own, so that switching engines hands
    /// the one HPA over instead of running two or none. KEDA copies the
    /// ScaledObject's labels onto its HPA; fleet's ownership marks are
    /// excluded, so the HPA is never fleet's to plan or prune.
    fn scaled_object(
        &self,
        agent: &Agent,
        autoscaling: &model::Autoscaling,
        keda: &model::Keda,
    ) -> DesiredObject {
        let mut triggers = Vec::new();
        // One trigger per consumer, like the HPA's metrics: KEDA proposes a
        // replica count for each and the HPA takes the largest.
        if let Some(pending) = autoscaling.pending_per_replica {
            for consumer in agent.all_consumers() {
                triggers.push(json!({
                    "type": "nats-jetstream",
                    "metadata": {
                        "natsServerMonitoringEndpoint": keda.monitoring_endpoint,
                        "account": keda.account,
                        "stream": consumer.stream,
                        "consumer": consumer.name,
                        "lagThreshold": pending.to_string(),
                        "activationLagThreshold": keda.activation_pending.to_string(),
                        "useHttps": keda.monitoring_https.to_string(),
                    },
                }));
            }
        }
        for (resource, utilization) in [
            ("memory", autoscaling.memory_utilization),
            ("cpu", autoscaling.cpu_utilization),
        ] {
            if let Some(utilization) = utilization {
                triggers.push(json!({
                    "type": resource,
                    "metricType": "Utilization",
                    "metadata": { "value": utilization.to_string() },
                }));
            }
        }
        let mut annotations = agent.annotations.clone();
        annotations.insert(
            KEDA_EXCLUDED_LABELS.into(),
            [ownership::MANAGED_BY_LABEL, ownership::PART_OF_LABEL].join(","),
        );
        let behavior = HorizontalPodAutoscalerBehavior {
            scale_up: Some(scaling_rules(&autoscaling.scale_up)),
            scale_down: Some(scaling_rules(&autoscaling.scale_down)),
        };
        let mut spec = json!({
            "scaleTargetRef": {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": deployment_name(&agent.role),
            },
            "minReplicaCount": autoscaling.min_replicas,
            "maxReplicaCount": autoscaling.max_replicas,
            "pollingInterval": keda.polling_interval_seconds,
            "cooldownPeriod": keda.cooldown_seconds,
            "advanced": {
                "horizontalPodAutoscalerConfig": {
                    "name": autoscaler_name(&agent.role),
                    "behavior": behavior,
                },
            },
            "triggers": triggers,
        });
        if let Some(replicas) = keda.fallback_replicas {
            spec["fallback"] =
                json!({ "failureThreshold": KEDA_FALLBACK_FAILURES, "replicas": replicas });
        }
        DesiredObject::from_json(json!({
            "apiVersion": "keda.sh/v1alpha1",
            "kind": "ScaledObject",
            "metadata": {
                "name": deployment_name(&agent.role),
                "namespace": self.fleet.namespace,
                "labels": self.agent_labels(agent),
                "annotations": annotations,
            },
            "spec": spec,
        }))
    }

    fn disruption_budget(&self, agent: &Agent, budget: model::DisruptionBudget) -> DesiredObject {
        let name = deployment_name(&agent.role);
        let count = |count: model::PodCount| match count {
            model::PodCount::Count(n) => IntOrString::Int(n as i32),
            model::PodCount::Percent(p) => IntOrString::String(format!("{p}%")),
        };
        let (min_available, max_unavailable) = match budget {
            model::DisruptionBudget::MinAvailable(n) => (Some(count(n)), None),
            model::DisruptionBudget::MaxUnavailable(n) => (None, Some(count(n))),
        };
        let budget = PodDisruptionBudget {
            metadata: self.agent_meta(agent, name.clone()),
            spec: Some(PodDisruptionBudgetSpec {
                min_available,
                max_unavailable,
                selector: Some(LabelSelector {
                    match_labels: Some(Labels::from([("app".to_string(), name)])),
                    match_expressions: None,
                }),
                ..PodDisruptionBudgetSpec::default()
            }),
            status: None,
        };
        DesiredObject::new(&budget)
    }

    fn network_policy(&self, agent: &Agent) -> DesiredObject {
        let network = agent
            .network
            .as_ref()
            .expect("only called for agents with network rules");
        let ports = |rule: &NetworkRule| {
            (!rule.ports.is_empty()).then(|| {
                rule.ports
                    .iter()
                    .map(|p| NetworkPolicyPort {
                        protocol: Some(p.protocol.clone()),
                        port: Some(IntOrString::Int(p.port.into())),
                        end_port: p.end_port.map(i32::from),
                    })
                    .collect()
            })
        };
        let peers = |rule: &NetworkRule| {
            (!rule.peers.is_empty()).then(|| rule.peers.iter().map(|p| self.peer(p)).collect())
        };
        let policy = NetworkPolicy {
            metadata: self.agent_meta(agent, format!("{}-network", deployment_name(&agent.role))),
            spec: Some(NetworkPolicySpec {
                pod_selector: Some(LabelSelector {
                    match_labels: Some(Labels::from([(self.label("role"), agent.role.clone())])),
                    match_expressions: None,
                }),
                policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
                ingress: Some(
                    network
                        .ingress
                        .iter()
                        .map(|rule| NetworkPolicyIngressRule {
                            from: peers(rule),
                            ports: ports(rule),
                        })
                        .collect(),
                ),
                egress: Some(
                    network
                        .egress
                        .iter()
                        .map(|rule| NetworkPolicyEgressRule {
                            to: peers(rule),
                            ports: ports(rule),
                        })
                        .collect(),
                ),
            }),
        };
        DesiredObject::new(&policy)
    }

    fn peer(&self, peer: &NetworkPeer) -> NetworkPolicyPeer {
        let selector = |labels: &Labels| LabelSelector {
            match_labels: (!labels.is_empty()).then(|| labels.clone()),
            match_expressions: None,
        };
        match peer {
            NetworkPeer::Pods(labels) => NetworkPolicyPeer {
                pod_selector: Some(selector(labels)),
                ..NetworkPolicyPeer::default()
            },
            NetworkPeer::Namespaces(labels) => NetworkPolicyPeer {
                namespace_selector: Some(selector(labels)),
                ..NetworkPolicyPeer::default()
            },
            NetworkPeer::Agent(role) => NetworkPolicyPeer {
                pod_selector: Some(selector(&Labels::from([(
                    self.label("role"),
                    role.clone(),
                )]))),
                ..NetworkPolicyPeer::default()
            },
            NetworkPeer::PodsInNamespaces { pods, namespaces } => NetworkPolicyPeer {
                pod_selector: Some(selector(pods)),
                namespace_selector: Some(selector(namespaces)),
                ..NetworkPolicyPeer::default()
            },
            NetworkPeer::Cidr { cidr, except } => NetworkPolicyPeer {
                ip_block: Some(IPBlock {
                    cidr: cidr.clone(),
                    except: (!except.is_empty()).then(|| except.clone()),
                }),
                ..NetworkPolicyPeer::default()
            },
        }
    }

    /// The Prometheus operator's ServiceMonitor has no k8s-openapi type.
    fn service_monitor(&self, monitor: &model::ServiceMonitor) -> DesiredObject {
        let body = json!({
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "ServiceMonitor",
            "metadata": {
                "name": monitor.name,
                "namespace": self.fleet.namespace,
                "labels": self.ownership_labels(),
            },
            "spec": {
                "selector": { "matchLabels": { self.label("monitored"): "true" } },
                "endpoints": [{ "port": "metrics", "interval": monitor.interval, "path": monitor.path }],
            },
        });
        DesiredObject::from_json(body)
    }
}

/// The HPA's name, whichever engine makes it.
fn autoscaler_name(role: &str) -> String {
    format!("{}-hpa", deployment_name(role))
}

/// A scaling direction's rules. Setting `pods` or `percent` replaces the
/// default policy; setting both keeps both.
fn scaling_rules(r: &model::ScalingRules) -> HPAScalingRules {
    let policy = |type_: &str, value: i32| HPAScalingPolicy {
        type_: type_.into(),
        value,
        period_seconds: r.period_seconds,
    };
    let policies = [("Pods", r.pods), ("Percent", r.percent)]
        .into_iter()
        .filter_map(|(type_, value)| value.map(|v| policy(type_, v)))
        .collect();
    HPAScalingRules {
        stabilization_window_seconds: Some(r.stabilization_window_seconds),
        policies: Some(policies),
        ..HPAScalingRules::default()
    }
}

fn config_map_name(agent: &Agent) -> String {
    format!("agent-{}-config", agent.role)
}

/// The container's part of the security settings: what the `restricted` Pod
/// Security Standard checks per container, and the read-only root.
fn container_security(security: &model::SecurityContext) -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(security.allow_privilege_escalation),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            add: (!security.add_capabilities.is_empty()).then(|| security.add_capabilities.clone()),
        }),
        read_only_root_filesystem: Some(security.read_only_root_filesystem),
        ..SecurityContext::default()
    }
}

fn seccomp_profile(profile: &model::SeccompProfile) -> SeccompProfile {
    match profile {
        model::SeccompProfile::RuntimeDefault => SeccompProfile {
            type_: "RuntimeDefault".into(),
            localhost_profile: None,
        },
        model::SeccompProfile::Unconfined => SeccompProfile {
            type_: "Unconfined".into(),
            localhost_profile: None,
        },
        model::SeccompProfile::Localhost(path) => SeccompProfile {
            type_: "Localhost".into(),
            localhost_profile: Some(path.clone()),
        },
    }
}

fn resources(resources: &model::Resources) -> Option<ResourceRequirements> {
    let list = |list: &model::ResourceList| {
        let mut out = BTreeMap::new();
        if let Some(memory) = &list.memory {
            out.insert("memory".to_string(), Quantity(memory.text.clone()));
        }
        if let Some(cpu) = &list.cpu {
            out.insert("cpu".to_string(), Quantity(cpu.text.clone()));
        }
        (!out.is_empty()).then_some(out)
    };
    let requests = list(&resources.requests);
    let limits = list(&resources.limits);
    (requests.is_some() || limits.is_some()).then(|| ResourceRequirements {
        requests,
        limits,
        ..ResourceRequirements::default()
    })
}

fn probe(probe: &model::Probe) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(probe.path.clone()),
            port: IntOrString::String("health".into()),
            ..HTTPGetAction::default()
        }),
        initial_delay_seconds: Some(probe.initial_delay_seconds),
        period_seconds: Some(probe.period_seconds),
        timeout_seconds: probe.timeout_seconds,
        ..Probe::default()
    }
}

fn node_selector_requirements(
    requirements: &BTreeMap<String, model::NodeRequirement>,
) -> Vec<NodeSelectorRequirement> {
    requirements
        .iter()
        .map(|(key, requirement)| NodeSelectorRequirement {
            key: key.clone(),
            operator: requirement.operator.as_str().into(),
            values: (!requirement.values.is_empty()).then(|| requirement.values.clone()),
        })
        .collect()
}

/// Node affinity (required and preferred) and the anti-affinity that keeps an
/// agent's replicas on different nodes; `None` when there is neither.
fn affinity(agent: &Agent) -> Option<Affinity> {
    let placement = &agent.placement;
    let required = (!placement.node_affinity.is_empty()).then(|| NodeSelector {
        node_selector_terms: vec![NodeSelectorTerm {
            match_expressions: Some(node_selector_requirements(&placement.node_affinity)),
            match_fields: None,
        }],
    });
    let preferred = (!placement.preferred_node_affinity.is_empty()).then(|| {
        placement
            .preferred_node_affinity
            .iter()
            .map(|term| PreferredSchedulingTerm {
                weight: term.weight,
                preference: NodeSelectorTerm {
                    match_expressions: Some(node_selector_requirements(&term.requirements)),
                    match_fields: None,
                },
            })
            .collect()
    });
    let node_affinity = (required.is_some() || preferred.is_some()).then_some(NodeAffinity {
        required_during_scheduling_ignored_during_execution: required,
        preferred_during_scheduling_ignored_during_execution: preferred,
    });
    let pod_anti_affinity = placement.node_spread.map(|spread| {
        let term = PodAffinityTerm {
            label_selector: Some(LabelSelector {
                match_labels: Some(Labels::from([(
                    "app".to_string(),
                    deployment_name(&agent.role),
                )])),
                match_expressions: None,
            }),
            topology_key: "kubernetes.io/hostname".into(),
            ..PodAffinityTerm::default()
        };
        match spread {
            model::Spread::Required => PodAntiAffinity {
                required_during_scheduling_ignored_during_execution: Some(vec![term]),
                ..PodAntiAffinity::default()
            },
            model::Spread::Preferred => PodAntiAffinity {
                preferred_during_scheduling_ignored_during_execution: Some(vec![
                    WeightedPodAffinityTerm {
                        weight: 100,
                        pod_affinity_term: term,
                    },
                ]),
                ..PodAntiAffinity::default()
            },
        }
    });
    (node_affinity.is_some() || pod_anti_affinity.is_some()).then(|| Affinity {
        node_affinity,
        pod_anti_affinity,
        ..Affinity::default()
    })
}

fn tolerations(tolerations: &[model::Toleration]) -> Vec<Toleration> {
    tolerations
        .iter()
        .map(|t| Toleration {
            key: t.key.clone(),
            operator: Some(t.operator.clone()),
            value: t.value.clone(),
            effect: t.effect.clone(),
            toleration_seconds: t.toleration_seconds,
        })
        .collect()
}

fn env_from(sources: &[model::EnvFrom]) -> Vec<EnvFromSource> {
    sources
        .iter()
        .map(|source| match &source.source {
            model::ObjectRef::ConfigMap(name) => EnvFromSource {
                config_map_ref: Some(ConfigMapEnvSource {
                    name: name.clone(),
                    optional: None,
                }),
                prefix: source.prefix.clone(),
                secret_ref: None,
            },
            model::ObjectRef::Secret(name) => EnvFromSource {
                secret_ref: Some(SecretEnvSource {
                    name: name.clone(),
                    optional: None,
                }),
                prefix: source.prefix.clone(),
                config_map_ref: None,
            },
        })
        .collect()
}

impl DesiredObject {
    fn new<K>(object: &K) -> Self
    where
        K: Resource + Metadata<Ty = ObjectMeta> + Serialize,
    {
        let mut body = serde_json::to_value(object).expect("k8s-openapi objects serialise");
        // k8s-openapi adds apiVersion and kind when serialising a typed object;
        // make sure of it for objects built field by field.
        body["apiVersion"] = Value::String(K::API_VERSION.into());
        body["kind"] = Value::String(K::KIND.into());
        Self::from_json(body)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use serde_json::json;

    use crate::load::{MapFiles, load_str};

    fn render(fleet_toml: &str) -> Vec<super::DesiredObject> {
        let loaded = load_str(
            Path::new("fleet.toml"),
            fleet_toml,
            None,
            None,
            &MapFiles(BTreeMap::new()),
        );
        assert_eq!(loaded.errors(), 0, "{:?}", loaded.diagnostics);
        super::objects(&loaded.fleet.unwrap())
    }

    #[test]
    fn an_unmanaged_namespace_is_not_rendered_nor_in_the_applyset() {
        let objects = render(
            r#"
[fleet]
name = "demo"
namespace = "agents"
manage_namespace = false
[defaults]
image = "example.com/agent:1"
nats_url = "nats://nats:4222"
[agents.builder]
"#,
        );
        assert!(objects.iter().all(|o| o.id.kind != "Namespace"));
        let parent = objects.iter().find(|o| o.is_applyset_parent()).unwrap();
        let kinds = parent.body["metadata"]["annotations"]
            [crate::ownership::APPLYSET_KINDS_ANNOTATION]
            .as_str()
            .unwrap();
        assert!(!kinds.split(',').any(|k| k == "Namespace"), "{kinds}");
        assert!(
            objects
                .iter()
                .all(|o| o.id.namespace.as_deref() == Some("agents"))
        );
    }

    #[test]
    fn an_agent_opting_out_gets_exactly_what_it_asked_for() {
        let objects = render(
            r#"
[fleet]
name = "demo"
namespace = "agents"
pod_security = "baseline"
[defaults]
image = "example.com/agent:1"
nats_url = "nats://nats:4222"
[agents.builder.security]
read_only_root_filesystem = false
allow_privilege_escalation = true
add_capabilities = ["CHOWN", "SETUID"]
seccomp_profile = "localhost/profiles/builder.json"
"#,
        );
        let namespace = objects.iter().find(|o| o.id.kind == "Namespace").unwrap();
        let labels = &namespace.body["metadata"]["labels"];
        assert_eq!(labels["pod-security.kubernetes.io/enforce"], "baseline");
        assert_eq!(labels["pod-security.kubernetes.io/warn"], "baseline");
        assert_eq!(labels["pod-security.kubernetes.io/audit"], "baseline");

        let deployment = objects.iter().find(|o| o.id.kind == "Deployment").unwrap();
        let pod = &deployment.body["spec"]["template"]["spec"];
        assert_eq!(
            pod["containers"][0]["securityContext"],
            json!({
                "allowPrivilegeEscalation": true,
                "capabilities": { "drop": ["ALL"], "add": ["CHOWN", "SETUID"] },
                "readOnlyRootFilesystem": false,
            })
        );
        assert_eq!(
            pod["securityContext"]["seccompProfile"],
            json!({ "type": "Localhost", "localhostProfile": "profiles/builder.json" })
        );
        // A writable root needs no temp directory of fleet's.
        let volumes: Vec<&str> = pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["name"].as_str().unwrap())
            .collect();
        assert_eq!(volumes, ["workspace"]);
    }

    fn pod_spec<'a>(objects: &'a [super::DesiredObject], name: &str) -> &'a serde_json::Value {
        let deployment = objects
            .iter()
            .find(|o| o.id.kind == "Deployment" && o.id.name == name)
            .unwrap();
        &deployment.body["spec"]["template"]["spec"]
    }

    #[test]
    fn another_label_domain_keeps_the_workload_type_node_label() {
        let objects = render(
            r#"
[fleet]
name = "demo"
namespace = "agents"
label_domain = "example.com"
[defaults]
image = "example.com/agent:1"
nats_url = "nats://nats:4222"
[agents.reviewer]
profile = "cognitive"
"#,
        );
        let pod = pod_spec(&objects, "agent-reviewer");
        let terms = &pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
            ["nodeSelectorTerms"];
        assert_eq!(
            terms[0]["matchExpressions"],
            json!([{ "key": "agent.ceo/workload-type", "operator": "In", "values": ["cognitive"] }])
        );
    }

    #[test]
    fn an_agents_node_affinity_is_laid_over_its_profiles_label_by_label() {
        let objects = render(
            r#"
[fleet]
name = "demo"
namespace = "agents"
[defaults]
image = "example.com/agent:1"
nats_url = "nats://nats:4222"
[profiles.gpu]
workload_type = "gpu"
node_affinity = { disktype = ["ssd"], "example.com/gen" = { operator = "Gt", values = ["3"] } }
tolerations = [{ key = "gpu", operator = "Exists" }]
[agents.trainer]
profile = "gpu"
placement = { node_affinity = { disktype = { operator = "NotIn", values = ["hdd"] } } }
"#,
        );
        let pod = pod_spec(&objects, "agent-trainer");
        let terms = &pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
            ["nodeSelectorTerms"];
        assert_eq!(
            terms[0]["matchExpressions"],
            json!([
                { "key": "agent.ceo/workload-type", "operator": "In", "values": ["gpu"] },
                { "key": "disktype", "operator": "NotIn", "values": ["hdd"] },
                { "key": "example.com/gen", "operator": "Gt", "values": ["3"] },
            ])
        );
        assert_eq!(
            pod["tolerations"],
            json!([{ "key": "gpu", "operator": "Exists" }])
        );
    }

    #[test]
    fn a_keda_agent_gets_a_scaled_object_in_place_of_its_hpa() {
        let objects = render(
            r#"
[fleet]
name = "demo"
namespace = "agents"
[defaults]
image = "example.com/agent:1"
nats_url = "nats://user:secret@nats.nats.svc:4222"
consumer = { stream = "tasks" }
[streams.tasks]
subjects = ["tasks.>"]
[streams.alerts]
subjects = ["alerts.>"]
[profiles.lean]
autoscaling = { engine = "keda" }
[agents.builder]
profile = "lean"
resources = { requests = { memory = "1Gi" } }
consumers.alerts = {}
autoscaling = { min = 0, max = 6, pending_per_replica = 5, memory_utilization = 80, cooldown = "2m", fallback = 2 }
"#,
        );
        assert!(
            !objects
                .iter()
                .any(|o| o.id.kind == "HorizontalPodAutoscaler"),
            "KEDA makes the HPA, not fleet"
        );
        let scaled = objects
            .iter()
            .find(|o| o.id.kind == "ScaledObject")
            .expect("a ScaledObject");
        assert_eq!(scaled.id.name, "agent-builder");
        assert_eq!(scaled.id.api_version, "keda.sh/v1alpha1");
        let body = &scaled.body;
        // Fleet's marks stay off KEDA's HPA, which is never fleet's.
        assert_eq!(
            body["metadata"]["annotations"]["scaledobject.keda.sh/hpa-excluded-labels"],
            "app.kubernetes.io/managed-by,applyset.kubernetes.io/part-of"
        );
        let nats = |stream: &str, consumer: &str| {
            json!({ "type": "nats-jetstream", "metadata": {
                // The monitoring port on nats_url's host, without its credentials.
                "natsServerMonitoringEndpoint": "nats.nats.svc:8222",
                "account": "$G", "stream": stream, "consumer": consumer,
                "lagThreshold": "5", "activationLagThreshold": "0", "useHttps": "false",
            }})
        };
        let spec = &body["spec"];
        assert_eq!(
            spec["triggers"],
            json!([
                nats("tasks", "builder-agent"),
                nats("alerts", "builder-agent-alerts"),
                { "type": "memory", "metricType": "Utilization", "metadata": { "value": "80" } },
            ])
        );
        assert_eq!(
            spec["scaleTargetRef"],
            json!({ "apiVersion": "apps/v1", "kind": "Deployment", "name": "agent-builder" })
        );
        assert_eq!(
            (
                &spec["minReplicaCount"],
                &spec["maxReplicaCount"],
                &spec["pollingInterval"],
                &spec["cooldownPeriod"]
            ),
            (&json!(0), &json!(6), &json!(30), &json!(120))
        );
        assert_eq!(
            spec["fallback"],
            json!({ "failureThreshold": 3, "replicas": 2 })
        );
        // The HPA KEDA makes has the name fleet's own has: switching engines
        // hands one HPA over.
        let hpa = &spec["advanced"]["horizontalPodAutoscalerConfig"];
        assert_eq!(hpa["name"], "agent-builder-hpa");
        assert_eq!(
            hpa["behavior"]["scaleDown"]["policies"],
            json!([{ "type": "Pods", "value": 1, "periodSeconds": 300 }])
        );
    }

    #[test]
    fn a_percent_policy_replaces_the_default_pods_policy() {
        let objects = render(
            r#"
[fleet]
name = "demo"
namespace = "agents"
[defaults]
image = "example.com/agent:1"
nats_url = "nats://nats:4222"
[agents.builder]
profile = "executor"
autoscaling = { min = 2, max = 9, cpu_utilization = 60, scale_up = { percent = 200 } }
"#,
        );
        let hpa = objects
            .iter()
            .find(|o| o.id.kind == "HorizontalPodAutoscaler")
            .unwrap();
        let behavior = &hpa.body["spec"]["behavior"];
        assert_eq!(
            behavior["scaleUp"]["policies"],
            json!([{ "type": "Percent", "value": 200, "periodSeconds": 120 }])
        );
        // The direction it does not mention keeps its default.
        assert_eq!(
            behavior["scaleDown"]["policies"],
            json!([{ "type": "Pods", "value": 1, "periodSeconds": 300 }])
        );
    }

    #[test]
    fn an_environment_may_switch_a_budget_or_an_env_source() {
        let fleet = r#"
[fleet]
name = "demo"
namespace = "agents"
[defaults]
image = "example.com/agent:1"
nats_url = "nats://nats:4222"
disruption_budget = { max_unavailable = 1 }
[agents.builder]
replicas = 3
disruption_budget = { min_available = 2 }
env = { TOKEN = { secret = "builder", key = "token" } }
"#;
        let environment = r#"
[agents.builder]
disruption_budget = { max_unavailable = "50%" }
env = { TOKEN = { config_map = "builder-settings", key = "token" } }
"#;
        let loaded = load_str(
            Path::new("fleet.toml"),
            fleet,
            Some((Path::new("environments/prod.toml"), environment)),
            Some("prod"),
            &MapFiles(BTreeMap::new()),
        );
        assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
        let objects = super::objects(&loaded.fleet.unwrap());
        let budget = objects
            .iter()
            .find(|o| o.id.kind == "PodDisruptionBudget")
            .unwrap();
        assert_eq!(
            budget.body["spec"],
            json!({ "maxUnavailable": "50%", "selector": { "matchLabels": { "app": "agent-builder" } } })
        );
        let env = &pod_spec(&objects, "agent-builder")["containers"][0]["env"][3];
        assert_eq!(
            env["valueFrom"],
            json!({ "configMapKeyRef": { "name": "builder-settings", "key": "token" } })
        );

        // Without the environment, the agent's own budget wins over [defaults].
        let loaded = load_str(
            Path::new("fleet.toml"),
            fleet,
            None,
            None,
            &MapFiles(BTreeMap::new()),
        );
        assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
        let objects = super::objects(&loaded.fleet.unwrap());
        let budget = objects
            .iter()
            .find(|o| o.id.kind == "PodDisruptionBudget")
            .unwrap();
        assert_eq!(budget.body["spec"]["minAvailable"], 2);
    }
}
