//! Where one Deployment's rollout stands, judged from the Deployment, its
//! ReplicaSets and their pods: still progressing, rolled out, or failed for a
//! reason a person can act on. Pure: no I/O, no clock; the same objects always
//! give the same answer.
//!
//! "Rolled out" follows `kubectl rollout status`: the controller has seen the
//! latest generation, every replica is updated, no old replica is left and
//! every updated replica is available. Only pods of the newest ReplicaSet are
//! judged, so old pods crashing while a fix rolls out are not a failure.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{ContainerStatus, Node, Pod};

use crate::plan::fit;

/// The annotation the deployment controller puts on a Deployment and on its
/// ReplicaSet of the same revision: it names the newest ReplicaSet.
pub(crate) const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";

/// Container waiting reasons that do not pass by waiting longer.
const STUCK_CONTAINER_REASONS: &[&str] = &[
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CrashLoopBackOff",
    "CreateContainerConfigError",
    "CreateContainerError",
];

/// Replica counts as the Deployment reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub desired: i32,
    pub ready: i32,
    pub updated: i32,
    pub available: i32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Rollout {
    /// Still going; `detail` says how far, or on what it waits.
    Progressing {
        counts: Counts,
        detail: String,
    },
    RolledOut {
        counts: Counts,
    },
    /// It will not finish without someone changing something.
    Failed {
        counts: Counts,
        failure: Failure,
    },
}

impl Rollout {
    pub(crate) fn counts(&self) -> Counts {
        match self {
            Rollout::Progressing { counts, .. }
            | Rollout::RolledOut { counts }
            | Rollout::Failed { counts, .. } => *counts,
        }
    }
}

/// Why a rollout cannot finish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    /// The pod it shows on, when it is a pod's problem.
    pub pod: Option<String>,
    /// Kubernetes' own word for it: `Unschedulable`, `ImagePullBackOff`,
    /// `ProgressDeadlineExceeded`, ...
    pub reason: String,
    /// Kubernetes' message (the scheduler's, the kubelet's, the controller's).
    pub message: String,
    /// What to do about it.
    pub hint: String,
}

/// Judges `deployment` from the ReplicaSets and pods seen in its namespace
/// (those it does not own are ignored) and the cluster's `nodes`, `None`
/// when they are not known (not read yet, or not readable). A pod the
/// scheduler could not place fails the rollout only when it can never run:
/// no node could hold it, judged from the nodes or, without them, from the
/// scheduler's own reasons. Otherwise it waits for room (as every surge pod
/// of a rolling update on a full cluster does), and its reason is progress.
pub(super) fn classify(
    deployment: &Deployment,
    replica_sets: &[&ReplicaSet],
    pods: &[&Pod],
    nodes: Option<&[&Node]>,
) -> Rollout {
    let status = deployment.status.clone().unwrap_or_default();
    let counts = Counts {
        desired: deployment.spec.replicas.unwrap_or(1),
        ready: status.ready_replicas.unwrap_or(0),
        updated: status.updated_replicas.unwrap_or(0),
        available: status.available_replicas.unwrap_or(0),
    };
    let progressing = |detail: String| Rollout::Progressing { counts, detail };
    let failed = |failure: Failure| Rollout::Failed { counts, failure };

    let generation = deployment.metadata.generation.unwrap_or(0);
    if status.observed_generation.unwrap_or(0) < generation {
        return progressing("the deployment controller has not seen the change yet".into());
    }
    let replicas = status.replicas.unwrap_or(0);
    if counts.updated >= counts.desired
        && replicas <= counts.updated
        && counts.available >= counts.updated
    {
        return Rollout::RolledOut { counts };
    }

    let name = deployment.metadata.name.as_deref().unwrap_or_default();
    let namespace = deployment.metadata.namespace.as_deref().unwrap_or_default();
    let condition = |type_: &str| {
        status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_.as_deref() == Some(type_))
    };
    if let Some(c) = condition("Progressing")
        && c.status.as_deref() == Some("False")
        && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
    {
        return failed(Failure {
            pod: None,
            reason: "ProgressDeadlineExceeded".into(),
            message: c.message.clone().unwrap_or_default(),
            hint: format!(
                "the Deployment made no progress within its progress deadline; see `kubectl describe deployment {name} -n {namespace}` and the events of its pods"
            ),
        });
    }
    if let Some(c) = condition("ReplicaFailure")
        && c.status.as_deref() == Some("True")
    {
        return failed(Failure {
            pod: None,
            reason: c.reason.clone().unwrap_or_else(|| "ReplicaFailure".into()),
            message: c.message.clone().unwrap_or_default(),
            hint: format!(
                "its ReplicaSet cannot create pods (a quota, an admission policy, Pod Security?); see `kubectl get events -n {namespace} --field-selector reason=FailedCreate`"
            ),
        });
    }

    let uid = deployment.metadata.uid.as_deref().unwrap_or_default();
    let revision = annotation(&deployment.metadata, REVISION_ANNOTATION);
    let newest = replica_sets.iter().find(|rs| {
        owned_by(&rs.metadata, uid)
            && revision.is_some()
            && annotation(&rs.metadata, REVISION_ANNOTATION) == revision
    });
    let mut new_pods: Vec<&Pod> = match newest.and_then(|rs| rs.metadata.uid.as_deref()) {
        Some(rs_uid) => pods
            .iter()
            .copied()
            .filter(|p| owned_by(&p.metadata, rs_uid) && p.metadata.deletion_timestamp.is_none())
            .collect(),
        None => Vec::new(),
    };
    new_pods.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));

    let mut waiting_for_room: Vec<(String, String)> = Vec::new();
    for pod in &new_pods {
        let pod_name = pod.metadata.name.clone().unwrap_or_default();
        if let Some(failure) = container_failure(pod, &pod_name, namespace) {
            return failed(failure);
        }
        let Some(message) = unschedulable_message(pod) else {
            continue;
        };
        let never = match (nodes, &pod.spec) {
            (Some(nodes), Some(spec)) => fit::never_fits(spec, nodes),
            _ => fit::scheduler_says_never(&message)
                .then(|| "the scheduler left out every node for its labels or taints".to_string()),
        };
        if let Some(why) = never {
            return failed(Failure {
                pod: Some(pod_name.clone()),
                reason: "Unschedulable".into(),
                message,
                hint: format!(
                    "no node can run this pod ({why}): check the agent's resources, node_selector and workload_type (or its profile's) against the nodes (`kubectl describe pod {pod_name} -n {namespace}`), or add nodes that fit"
                ),
            });
        }
        waiting_for_room.push((pod_name, message));
    }

    let mut detail = if counts.updated < counts.desired {
        format!("{} of {} replicas updated", counts.updated, counts.desired)
    } else if replicas > counts.updated {
        let old = replicas - counts.updated;
        format!(
            "{old} old replica{} still to terminate",
            if old == 1 { "" } else { "s" }
        )
    } else {
        format!(
            "{} of {} updated replicas available",
            counts.available, counts.updated
        )
    };
    if let Some((pod, message)) = waiting_for_room.first() {
        // The scheduler's reasons, without what it tried for preemption.
        let reasons = message.split(" preemption:").next().unwrap_or(message);
        match waiting_for_room.len() {
            1 => detail.push_str(&format!("; pod {pod} waits for room: {reasons}")),
            n => detail.push_str(&format!("; {n} pods wait for room ({pod}: {reasons})")),
        }
    }
    progressing(detail)
}

fn annotation<'a>(
    metadata: &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    key: &str,
) -> Option<&'a str> {
    metadata.annotations.as_ref()?.get(key).map(String::as_str)
}

fn owned_by(
    metadata: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    uid: &str,
) -> bool {
    metadata
        .owner_references
        .iter()
        .flatten()
        .any(|owner| owner.uid == uid)
}

/// The scheduler's message when it found no node for the pod.
pub(super) fn unschedulable_message(pod: &Pod) -> Option<String> {
    let condition = pod
        .status
        .as_ref()?
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "PodScheduled")?;
    (condition.status == "False" && condition.reason.as_deref() == Some("Unschedulable"))
        .then(|| condition.message.clone().unwrap_or_default())
}

/// A container (or init container) waiting for a reason that does not pass.
fn container_failure(pod: &Pod, pod_name: &str, namespace: &str) -> Option<Failure> {
    let status = pod.status.as_ref()?;
    let containers = status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten());
    containers.into_iter().find_map(|container| {
        let waiting = container.state.as_ref()?.waiting.as_ref()?;
        let reason = waiting.reason.as_deref()?;
        STUCK_CONTAINER_REASONS.contains(&reason).then(|| Failure {
            pod: Some(pod_name.to_string()),
            reason: reason.to_string(),
            message: container_message(container, waiting.message.as_deref()),
            hint: container_hint(reason, container, pod_name, namespace),
        })
    })
}

fn container_message(container: &ContainerStatus, waiting: Option<&str>) -> String {
    let mut message = format!("container {}", container.name);
    if let Some(waiting) = waiting.filter(|m| !m.is_empty()) {
        message.push_str(&format!(": {waiting}"));
    }
    // A crash loop's own message only says it is backing off; the last exit
    // says why (OOMKilled, an exit code).
    if let Some(last) = container
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
    {
        message.push_str(&format!(
            "; last exit: {} (exit code {})",
            last.reason.as_deref().unwrap_or("terminated"),
            last.exit_code
        ));
    }
    message
}

fn container_hint(reason: &str, container: &ContainerStatus, pod: &str, namespace: &str) -> String {
    match reason {
        "ErrImagePull" | "ImagePullBackOff" | "InvalidImageName" => format!(
            "check the image `{}` (the agent's or the environment's `image`) exists, and that the cluster may pull from its registry",
            container.image
        ),
        "CrashLoopBackOff" => format!(
            "the container keeps exiting; see `kubectl logs {pod} -n {namespace} -c {} --previous`",
            container.name
        ),
        _ => format!(
            "the pod refers to something missing or wrong (a Secret or key in `env`, a ConfigMap?); see `kubectl describe pod {pod} -n {namespace}`"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fixture: what `kubectl get deployment,replicaset,pod -o json`
    /// printed (trimmed), split by kind.
    struct Objects {
        deployment: Deployment,
        replica_sets: Vec<ReplicaSet>,
        pods: Vec<Pod>,
    }

    fn fixture(text: &str) -> Objects {
        let list: serde_json::Value = serde_json::from_str(text).unwrap();
        let items = list["items"].as_array().unwrap();
        let of_kind = |kind: &'static str| {
            items
                .iter()
                .filter(move |item| item["kind"] == kind)
                .cloned()
        };
        Objects {
            deployment: serde_json::from_value(of_kind("Deployment").next().unwrap()).unwrap(),
            replica_sets: of_kind("ReplicaSet")
                .map(|rs| serde_json::from_value(rs).unwrap())
                .collect(),
            pods: of_kind("Pod")
                .map(|pod| serde_json::from_value(pod).unwrap())
                .collect(),
        }
    }

    /// Judged with the nodes of `nodes.json` (`kubectl get nodes -o json` on
    /// the local control plane: three with 32 cpu and room for 110 pods), or
    /// without any when `with_nodes` is false (not read, or not readable).
    fn judge(text: &str, with_nodes: bool) -> Rollout {
        let objects = fixture(text);
        let replica_sets: Vec<&ReplicaSet> = objects.replica_sets.iter().collect();
        let pods: Vec<&Pod> = objects.pods.iter().collect();
        let list: serde_json::Value = serde_json::from_str(NODES).unwrap();
        let nodes: Vec<Node> = serde_json::from_value(list["items"].clone()).unwrap();
        let nodes: Vec<&Node> = nodes.iter().collect();
        let nodes = with_nodes.then_some(nodes.as_slice());
        classify(&objects.deployment, &replica_sets, &pods, nodes)
    }

    fn failure(rollout: Rollout) -> Failure {
        match rollout {
            Rollout::Failed { failure, .. } => failure,
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    const NODES: &str = include_str!("fixtures/nodes.json");
    const WAITING_FOR_ROOM: &str = include_str!("fixtures/waiting-for-room.json");
    const ROLLED_OUT: &str = include_str!("fixtures/rolled-out.json");
    const UNSCHEDULABLE: &str = include_str!("fixtures/unschedulable.json");
    const INSUFFICIENT_CPU: &str = include_str!("fixtures/insufficient-cpu.json");
    const IMAGE_PULL: &str = include_str!("fixtures/image-pull-backoff.json");
    const CRASH_LOOP: &str = include_str!("fixtures/crash-loop.json");
    const OLD_PODS_CRASH: &str = include_str!("fixtures/fix-rolling-out-over-crashing-pods.json");
    const DEADLINE: &str = include_str!("fixtures/progress-deadline-exceeded.json");
    const QUOTA: &str = include_str!("fixtures/replica-failure-quota.json");
    const NOT_OBSERVED: &str = include_str!("fixtures/generation-not-observed.json");

    #[test]
    fn all_replicas_updated_and_available_is_rolled_out() {
        assert_eq!(
            judge(ROLLED_OUT, false),
            Rollout::RolledOut {
                counts: Counts {
                    desired: 2,
                    ready: 2,
                    updated: 2,
                    available: 2
                }
            }
        );
    }

    #[test]
    fn a_generation_the_controller_has_not_seen_is_progressing() {
        // The status still says "rolled out", but for the previous spec.
        let rollout = judge(NOT_OBSERVED, false);
        assert!(
            matches!(&rollout, Rollout::Progressing { detail, .. } if detail.contains("deployment controller")),
            "{rollout:?}"
        );
    }

    #[test]
    fn unschedulable_pod_fails_with_the_schedulers_message() {
        // From the nodes, and from the scheduler's reasons alone.
        for with_nodes in [true, false] {
            let failure = failure(judge(UNSCHEDULABLE, with_nodes));
            assert_eq!(failure.reason, "Unschedulable");
            assert_eq!(
                failure.pod.as_deref(),
                Some("agent-reviewer-6d8f7c9b5-x2x7q")
            );
            assert!(
                failure.message.starts_with(
                    "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector."
                ),
                "{}",
                failure.message
            );
            assert!(failure.hint.contains("node_selector"), "{}", failure.hint);
        }
    }

    #[test]
    fn a_request_no_node_allocates_fails_naming_the_resource() {
        let failure = failure(judge(INSUFFICIENT_CPU, true));
        assert_eq!(failure.reason, "Unschedulable");
        assert!(
            failure.message.contains("3 Insufficient cpu"),
            "{}",
            failure.message
        );
        assert!(
            failure.hint.contains(
                "3 nodes allocate less cpu than it requests (500 requested, the most any node allocates is 32)"
            ),
            "{}",
            failure.hint
        );
    }

    #[test]
    fn insufficient_cpu_without_the_nodes_waits() {
        // The scheduler says the same whether the request is too large for
        // any node or the nodes are only full: without the nodes, wait.
        let rollout = judge(INSUFFICIENT_CPU, false);
        assert!(
            matches!(&rollout, Rollout::Progressing { detail, .. } if detail.contains("waits for room: 0/3 nodes are available: 3 Insufficient cpu.")),
            "{rollout:?}"
        );
    }

    #[test]
    fn a_surge_pod_that_fits_a_node_waits_for_room_showing_the_schedulers_reason() {
        // A fleet-wide bump on a full cluster: every surge pod waits for
        // the room other rollouts free as they finish.
        let rollout = judge(WAITING_FOR_ROOM, true);
        assert_eq!(
            rollout,
            Rollout::Progressing {
                counts: Counts {
                    desired: 1,
                    ready: 1,
                    updated: 1,
                    available: 1
                },
                detail: "1 old replica still to terminate; pod agent-devops-84c7d9f6b-qq4tz waits for room: 0/3 nodes are available: 3 Too many pods.".into()
            }
        );
    }

    #[test]
    fn image_pull_backoff_names_the_image() {
        let failure = failure(judge(IMAGE_PULL, false));
        assert_eq!(failure.reason, "ImagePullBackOff");
        assert!(
            failure.message.contains("Back-off pulling image"),
            "{}",
            failure.message
        );
        assert!(
            failure
                .hint
                .contains("gcr.io/agent-ceo/agent-runtime:no-such-tag"),
            "{}",
            failure.hint
        );
    }

    #[test]
    fn crash_loop_says_how_the_container_last_exited() {
        let failure = failure(judge(CRASH_LOOP, false));
        assert_eq!(failure.reason, "CrashLoopBackOff");
        assert!(
            failure
                .message
                .contains("last exit: OOMKilled (exit code 137)"),
            "{}",
            failure.message
        );
        assert!(failure.hint.contains("--previous"), "{}", failure.hint);
    }

    #[test]
    fn old_pods_crashing_while_a_fix_rolls_out_are_not_a_failure() {
        let rollout = judge(OLD_PODS_CRASH, false);
        assert!(
            matches!(rollout, Rollout::Progressing { .. }),
            "{rollout:?}"
        );
    }

    #[test]
    fn progress_deadline_exceeded_fails_with_the_controllers_message() {
        let failure = failure(judge(DEADLINE, false));
        assert_eq!(failure.reason, "ProgressDeadlineExceeded");
        assert_eq!(failure.pod, None);
        assert!(
            failure.message.contains("has timed out progressing"),
            "{}",
            failure.message
        );
    }

    #[test]
    fn pods_the_replica_set_cannot_create_fail_with_the_reason() {
        let failure = failure(judge(QUOTA, false));
        assert_eq!(failure.reason, "FailedCreate");
        assert!(
            failure.message.contains("exceeded quota"),
            "{}",
            failure.message
        );
    }
}
