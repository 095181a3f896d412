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
pub(crate) struct Unhealthy {
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
pub(crate) async fn soak(
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

/// Whether the pods of `deployments` have already proven themselves: each
/// ready, and neither started nor restarted within the last `period` (as
/// after a soak an earlier apply ran to its end). `Some(why)` when one has
/// not, and the wave must be soaked again.
pub(crate) async fn unproven(
    client: &Client,
    deployments: &[Waited],
    period: Duration,
) -> anyhow::Result<Option<String>> {
    let now = k8s_openapi::jiff::Timestamp::now();
    for waited in deployments {
        for pod in pods(client, waited).await? {
            if let Some(why) = unproven_pod(&pod, now, period) {
                let name = pod.metadata.name.unwrap_or_default();
                return Ok(Some(format!("pod {name} {why}")));
            }
        }
    }
    Ok(None)
}

/// Why `pod` has not run for `period` without trouble by `now`. Pure.
fn unproven_pod(pod: &Pod, now: k8s_openapi::jiff::Timestamp, period: Duration) -> Option<String> {
    let within = |time: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>| {
        time.is_some_and(|t| {
            now.duration_since(t.0)
                .try_into()
                .is_ok_and(|ago: Duration| ago < period)
                || t.0 > now
        })
    };
    if !is_ready(pod) {
        return Some("is not ready".into());
    }
    if within(pod.metadata.creation_timestamp.as_ref()) {
        return Some(format!("started less than {}s ago", period.as_secs()));
    }
    let restarted = pod
        .status
        .iter()
        .flat_map(|s| s.container_statuses.iter().flatten())
        .filter_map(|c| c.last_state.as_ref()?.terminated.as_ref())
        .any(|terminated| within(terminated.finished_at.as_ref()));
    restarted.then(|| format!("restarted less than {}s ago", period.as_secs()))
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
    let deployment = crate::client::retry::kube(|| deployments.get(&waited.deployment.name))
        .await
        .map_err(reading("the Deployment"))?;
    // The live selector: what its ReplicaSets and pods carry (a plan's
    // unchanged Deployment may come without its body).
    let selector = deployment
        .spec
        .selector
        .match_labels
        .as_ref()
        .map(|labels| Waited {
            deployment: waited.deployment.clone(),
            selector: labels.clone(),
        })
        .unwrap_or_else(|| waited.clone())
        .label_selector();
    if selector.is_empty() {
        anyhow::bail!(
            "{} has no matchLabels selector: fleet cannot tell its pods to soak them",
            waited.deployment
        );
    }
    let params = ListParams::default().labels(&selector);
    let replica_sets: Api<ReplicaSet> = Api::namespaced(client.clone(), namespace);
    let replica_sets = crate::client::retry::kube(|| replica_sets.list(&params))
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
    let listed = crate::client::retry::kube(|| api.list(&params))
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
    fn a_pod_is_proven_once_ready_for_the_period_without_a_restart() {
        let now: k8s_openapi::jiff::Timestamp = "2026-12-06T12:00:00Z".parse().unwrap();
        let period = Duration::from_secs(120);
        let aged = |created: &str, ready: bool, last_exit: Option<&str>| {
            let mut pod = pod(ready, 0, json!({ "running": {} }));
            pod.metadata.creation_timestamp = Some(
                k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(created.parse().unwrap()),
            );
            if let Some(finished) = last_exit {
                let status = &mut pod
                    .status
                    .as_mut()
                    .unwrap()
                    .container_statuses
                    .as_mut()
                    .unwrap()[0];
                status.last_state = serde_json::from_value(
                    json!({ "terminated": { "exitCode": 1, "finishedAt": finished } }),
                )
                .unwrap();
            }
            pod
        };
        assert_eq!(
            unproven_pod(&aged("2026-12-06T11:00:00Z", true, None), now, period),
            None
        );
        assert_eq!(
            unproven_pod(&aged("2026-12-06T11:59:00Z", true, None), now, period).as_deref(),
            Some("started less than 120s ago")
        );
        assert_eq!(
            unproven_pod(&aged("2026-12-06T11:00:00Z", false, None), now, period).as_deref(),
            Some("is not ready")
        );
        let restarted = aged("2026-12-06T11:00:00Z", true, Some("2026-12-06T11:59:30Z"));
        assert_eq!(
            unproven_pod(&restarted, now, period).as_deref(),
            Some("restarted less than 120s ago")
        );
        let long_ago = aged("2026-12-06T10:00:00Z", true, Some("2026-12-06T10:30:00Z"));
        assert_eq!(unproven_pod(&long_ago, now, period), None);
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
