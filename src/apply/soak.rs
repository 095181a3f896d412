//! The health gate between rollout waves: once a wave has rolled out, its
//! pods must stay ready, without a restart, for the soak period. Reads only.
//!
//! The pods are those of the wave's Deployments when the soak starts; one
//! that goes away meanwhile (scaled down, evicted) is not judged, and one
//! that comes (scaled up) is not either: the gate is about the pods the new
//! definition made, not about the autoscaler. A pod that is not ready yet
//! when the soak starts (one its ReplicaSet just replaced, still being
//! scheduled or started) is judged on its restarts and failure at once, and
//! on its readiness once it has been ready.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::{Api, Client};

use super::rollout::{REVISION_ANNOTATION, Waited};
use crate::interrupt::Interrupt;

/// The label that ties a pod to its ReplicaSet.
const POD_TEMPLATE_HASH: &str = "pod-template-hash";
/// How often the pods are read while soaking.
const EVERY: Duration = Duration::from_secs(2);

/// Why a pod failed the gate, for the halt report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unhealthy {
    pub deployment: String,
    pub pod: String,
    /// What happened: restarted, turned unready, failed.
    pub what: String,
}

impl std::fmt::Display for Unhealthy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: pod {} {}", self.deployment, self.pod, self.what)
    }
}

/// What is known of one pod when the soak starts.
#[derive(Debug, Clone)]
struct Start {
    restarts: i32,
    /// It has been ready since the soak started: turning unready now fails.
    been_ready: bool,
}

/// Watches the pods of `deployments` for `period`: `Ok` when none restarted,
/// turned unready or failed; the first that did, otherwise. `progress` is
/// told how long is left, every few reads.
pub async fn soak(
    client: &Client,
    deployments: &[Waited],
    period: Duration,
    interrupt: &Interrupt,
    progress: &mut dyn FnMut(String),
) -> anyhow::Result<Result<(), Unhealthy>> {
    let started = tokio::time::Instant::now();
    let mut pods_at_start: BTreeMap<(usize, String), Start> = BTreeMap::new();
    for (n, waited) in deployments.iter().enumerate() {
        for pod in pods(client, waited).await? {
            let name = pod.metadata.name.clone().unwrap_or_default();
            let start = Start {
                restarts: restarts(&pod),
                been_ready: is_ready(&pod),
            };
            if let Some(unhealthy) = judge(waited, &pod, &start) {
                return Ok(Err(unhealthy));
            }
            pods_at_start.insert((n, name), start);
        }
    }
    progress(format!(
        "soaking {} pod{} for {}s: each must stay ready, without a restart",
        pods_at_start.len(),
        if pods_at_start.len() == 1 { "" } else { "s" },
        period.as_secs()
    ));
    let mut reads = 0u32;
    while started.elapsed() < period {
        tokio::select! {
            _ = tokio::time::sleep(EVERY.min(period.saturating_sub(started.elapsed()))) => {}
            _ = interrupt.wait() => return Ok(Ok(())),
        }
        for (n, waited) in deployments.iter().enumerate() {
            for pod in pods(client, waited).await? {
                let name = pod.metadata.name.clone().unwrap_or_default();
                let Some(start) = pods_at_start.get_mut(&(n, name)) else {
                    continue;
                };
                if let Some(unhealthy) = judge(waited, &pod, start) {
                    return Ok(Err(unhealthy));
                }
                start.been_ready |= is_ready(&pod);
            }
        }
        reads += 1;
        if reads.is_multiple_of(15) {
            progress(format!(
                "soaking: {}s left, no pod restarted or turned unready",
                period.saturating_sub(started.elapsed()).as_secs()
            ));
        }
    }
    Ok(Ok(()))
}

/// The pods of the Deployment's newest ReplicaSet (those of older ones are
/// going away, and may be the broken ones a fix replaces).
async fn pods(client: &Client, waited: &Waited) -> anyhow::Result<Vec<Pod>> {
    let namespace = waited.deployment.namespace.as_deref().unwrap_or_default();
    let reading = |what: &'static str| {
        let deployment = waited.deployment.clone();
        move |err: kube::Error| {
            anyhow::anyhow!("reading {what} of {deployment} to soak them: {err}")
        }
    };
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let deployment = crate::retry::kube(|| deployments.get(&waited.deployment.name))
        .await
        .map_err(reading("the Deployment"))?;
    let params = ListParams::default().labels(&waited.label_selector());
    let replica_sets: Api<ReplicaSet> = Api::namespaced(client.clone(), namespace);
    let replica_sets = crate::retry::kube(|| replica_sets.list(&params))
        .await
        .map_err(reading("the ReplicaSets"))?;
    let revision = |meta: &kube::api::ObjectMeta| {
        meta.annotations
            .as_ref()
            .and_then(|a| a.get(REVISION_ANNOTATION))
            .cloned()
    };
    let newest_hash = replica_sets
        .items
        .iter()
        .find(|rs| {
            revision(&rs.metadata).is_some()
                && revision(&rs.metadata) == revision(&deployment.metadata)
        })
        .and_then(|rs| rs.metadata.labels.as_ref()?.get(POD_TEMPLATE_HASH).cloned());
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let listed = crate::retry::kube(|| api.list(&params))
        .await
        .map_err(reading("the pods"))?;
    Ok(listed
        .items
        .into_iter()
        .filter(|pod| pod.metadata.deletion_timestamp.is_none())
        .filter(|pod| {
            let hash = pod
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(POD_TEMPLATE_HASH));
            newest_hash.is_none() || hash == newest_hash.as_ref()
        })
        .collect())
}

fn restarts(pod: &Pod) -> i32 {
    pod.status
        .iter()
        .flat_map(|s| s.container_statuses.iter().flatten())
        .map(|c| c.restart_count)
        .sum()
}

fn is_ready(pod: &Pod) -> bool {
    pod.status
        .iter()
        .flat_map(|s| s.conditions.iter().flatten())
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

/// Whether `pod` fails the gate: failed, restarted since `start`, or not
/// ready although it has been. Pure.
fn judge(waited: &Waited, pod: &Pod, start: &Start) -> Option<Unhealthy> {
    let unhealthy = |what: String| Unhealthy {
        deployment: waited.deployment.name.clone(),
        pod: pod.metadata.name.clone().unwrap_or_default(),
        what,
    };
    let status = pod.status.as_ref()?;
    let why = container_state(pod);
    if status.phase.as_deref() == Some("Failed") {
        return Some(unhealthy(format!("failed{why}")));
    }
    if restarts(pod) > start.restarts {
        return Some(unhealthy(format!(
            "restarted ({} restarts since the wave rolled out){why}",
            restarts(pod) - start.restarts
        )));
    }
    (start.been_ready && !is_ready(pod)).then(|| unhealthy(format!("turned unready{why}")))
}

/// `: container agent terminated: Error: ...`, from the first container
/// that is not running (or last exited), for the report.
fn container_state(pod: &Pod) -> String {
    let containers = pod
        .status
        .iter()
        .flat_map(|s| s.container_statuses.iter().flatten());
    for container in containers {
        let state = container.state.as_ref();
        if let Some(terminated) = state.and_then(|s| s.terminated.as_ref()) {
            return format!(
                ": container {} terminated: {}{} (exit code {})",
                container.name,
                terminated.reason.as_deref().unwrap_or("terminated"),
                terminated
                    .message
                    .as_deref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default(),
                terminated.exit_code
            );
        }
        if let Some(waiting) = state.and_then(|s| s.waiting.as_ref()) {
            return format!(
                ": container {} waiting: {}{}",
                container.name,
                waiting.reason.as_deref().unwrap_or("waiting"),
                waiting
                    .message
                    .as_deref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            );
        }
        if let Some(last) = container
            .last_state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
        {
            return format!(
                ": container {} last exited: {} (exit code {})",
                container.name,
                last.reason.as_deref().unwrap_or("terminated"),
                last.exit_code
            );
        }
    }
    String::new()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::render::ObjectRef;

    fn waited() -> Waited {
        Waited {
            deployment: ObjectRef {
                api_version: "apps/v1".into(),
                kind: "Deployment".into(),
                namespace: Some("ns".into()),
                name: "agent-a".into(),
            },
            selector: BTreeMap::from([("app".to_string(), "agent-a".to_string())]),
        }
    }

    fn pod(ready: bool, restarts: i32, state: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": { "name": "agent-a-1" },
            "status": {
                "phase": "Running",
                "conditions": [{ "type": "Ready", "status": if ready { "True" } else { "False" } }],
                "containerStatuses": [{
                    "name": "agent", "image": "i", "imageID": "", "ready": ready,
                    "restartCount": restarts, "state": state,
                }],
            }
        }))
        .unwrap()
    }

    #[test]
    fn a_ready_pod_passes_an_unready_or_restarted_one_fails_with_why() {
        let running = json!({ "running": {} });
        let start = Start {
            restarts: 1,
            been_ready: true,
        };
        assert_eq!(
            judge(&waited(), &pod(true, 1, running.clone()), &start),
            None
        );
        let restarted = judge(&waited(), &pod(true, 2, running.clone()), &start).unwrap();
        assert_eq!(
            restarted.to_string(),
            "agent-a: pod agent-a-1 restarted (1 restarts since the wave rolled out)"
        );
        let crashed = json!({ "terminated": { "reason": "containerFailed", "message": "container failed", "exitCode": 1 } });
        let unready = judge(&waited(), &pod(false, 1, crashed), &start).unwrap();
        assert_eq!(
            unready.to_string(),
            "agent-a: pod agent-a-1 turned unready: container agent terminated: containerFailed: container failed (exit code 1)"
        );
    }

    #[test]
    fn a_pod_not_ready_yet_is_judged_on_readiness_only_once_it_has_been_ready() {
        let starting = Start {
            restarts: 0,
            been_ready: false,
        };
        let creating = json!({ "waiting": { "reason": "ContainerCreating" } });
        assert_eq!(judge(&waited(), &pod(false, 0, creating), &starting), None);
        let crashing = json!({ "waiting": { "reason": "CrashLoopBackOff" } });
        let restarted = judge(&waited(), &pod(false, 1, crashing), &starting).unwrap();
        assert!(restarted.what.starts_with("restarted"), "{restarted}");
    }
}
