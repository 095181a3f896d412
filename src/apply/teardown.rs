//! The end of a tear-down, after the deploy lock's last use: the namespace
//! is deleted (while the lock is still held, so no apply can start in it
//! meanwhile), the lock's Lease deleted, and the namespace followed until
//! it is gone. A namespace goes Terminating at once and is removed by the
//! namespace controller once everything in it is: that takes seconds, or
//! forever when a finalizer's controller is down, so its progress is
//! printed and a wait that runs out says so.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::{DeleteParams, Preconditions};

use crate::client::kube::Cluster;
use crate::client::{explain, retry};
use crate::interrupt::{Interrupt, Interrupted};
use crate::live::kube::LiveState;
use crate::plan::{Action, Change, Plan, Target};
use crate::render::ObjectRef;

/// How often the namespace is read while it terminates, and at least how
/// often its progress is printed.
const POLL: Duration = Duration::from_secs(1);
const SAY_AT_LEAST_EVERY: Duration = Duration::from_secs(10);

/// Whether `change` is made after the lock's last use, not in the waves:
/// the deletion of the namespace or of the lock's Lease.
pub(crate) fn is_last(change: &Change) -> bool {
    change.action == Action::Delete
        && matches!(&change.target, Target::Kubernetes(id) if id.kind == "Namespace" || id.kind == "Lease")
}

/// The namespace the plan deletes, if it does.
pub(crate) fn namespace(plan: &Plan) -> Option<&ObjectRef> {
    plan.changes.iter().find_map(|change| match &change.target {
        Target::Kubernetes(id) if is_last(change) && id.kind == "Namespace" => Some(id),
        _ => None,
    })
}

/// The deploy lock's Lease, if the plan deletes it.
pub(crate) fn lease(plan: &Plan) -> Option<&ObjectRef> {
    plan.changes.iter().find_map(|change| match &change.target {
        Target::Kubernetes(id) if is_last(change) && id.kind == "Lease" => Some(id),
        _ => None,
    })
}

/// Deletes the namespace that was planned (its uid as a precondition: one
/// made again since is not this one).
pub(crate) async fn delete_namespace(
    cluster: &Cluster,
    live: &LiveState,
    id: &ObjectRef,
) -> anyhow::Result<()> {
    let api: Api<Namespace> = Api::all(cluster.client.clone());
    let uid = live
        .owned
        .get(id)
        .and_then(|n| n["metadata"]["uid"].as_str())
        .map(str::to_string);
    let params = DeleteParams {
        preconditions: uid.map(|uid| Preconditions {
            uid: Some(uid),
            resource_version: None,
        }),
        ..DeleteParams::background()
    };
    match retry::kube(|| api.delete(&id.name, &params)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(err) => Err(explain::client_error(err, "deleting", id, cluster)),
    }
}

/// How waiting for the namespace ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Gone {
    Gone,
    /// Still there when the wait ran out, with what holds it.
    StillTerminating(String),
}

/// Follows the deleted namespace until it is gone or `deadline`, saying
/// where it stands (`report`) when that changes and at least every 10 s.
pub(crate) async fn wait_until_gone(
    cluster: &Cluster,
    name: &str,
    deadline: Instant,
    interrupt: &Interrupt,
    report: &mut dyn FnMut(String),
) -> anyhow::Result<Gone> {
    let api: Api<Namespace> = Api::all(cluster.client.clone());
    let started = Instant::now();
    let mut said: Option<(String, Instant)> = None;
    loop {
        let namespace = tokio::select! {
            signal = interrupt.wait() => return Err(Interrupted(signal).into()),
            read = retry::kube(|| api.get_opt(name)) => read,
        };
        let standing = match namespace {
            Ok(None) => {
                report(format!("gone ({}s)", started.elapsed().as_secs()));
                return Ok(Gone::Gone);
            }
            Ok(Some(namespace)) => what_holds_it(&namespace),
            Err(err) => format!("could not be read ({err})"),
        };
        let due = said
            .as_ref()
            .is_none_or(|(text, at)| *text != standing || at.elapsed() >= SAY_AT_LEAST_EVERY);
        if due {
            report(format!(
                "terminating ({}s): {standing}",
                started.elapsed().as_secs()
            ));
            said = Some((standing.clone(), Instant::now()));
        }
        if Instant::now() + POLL > deadline {
            return Ok(Gone::StillTerminating(standing));
        }
        tokio::select! {
            signal = interrupt.wait() => return Err(Interrupted(signal).into()),
            () = tokio::time::sleep(POLL) => {}
        }
    }
}

/// What the namespace controller says it is waiting for: its conditions
/// that hold (content remaining, finalizers remaining, an API group it
/// could not discover), or that it is removing what the namespace holds.
pub(crate) fn what_holds_it(namespace: &Namespace) -> String {
    let conditions: Vec<String> = namespace
        .status
        .iter()
        .flat_map(|s| s.conditions.iter().flatten())
        .filter(|c| c.status == "True")
        .map(|c| match &c.message {
            Some(message) => format!("{}: {message}", c.type_),
            None => c.type_.clone(),
        })
        .collect();
    if conditions.is_empty() {
        "the namespace controller is removing what it holds".into()
    } else {
        conditions.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_terminating_namespace_says_what_holds_it() {
        let namespace: Namespace = serde_json::from_value(serde_json::json!({
            "metadata": { "name": "agents" },
            "status": { "phase": "Terminating", "conditions": [
                { "type": "NamespaceDeletionDiscoveryFailure", "status": "False", "reason": "ResourcesDiscovered" },
                { "type": "NamespaceContentRemaining", "status": "True", "reason": "SomeResourcesRemain",
                  "message": "Some resources are remaining: pods. has 2 resource instances" },
                { "type": "NamespaceFinalizersRemaining", "status": "True", "reason": "SomeFinalizersRemain",
                  "message": "Some content in the namespace has finalizers remaining: keda.sh/finalizer in 1 resource instances" },
            ] }
        }))
        .unwrap();
        assert_eq!(
            what_holds_it(&namespace),
            "NamespaceContentRemaining: Some resources are remaining: pods. has 2 resource instances; NamespaceFinalizersRemaining: Some content in the namespace has finalizers remaining: keda.sh/finalizer in 1 resource instances"
        );
        let fresh: Namespace =
            serde_json::from_value(serde_json::json!({ "metadata": { "name": "agents" } }))
                .unwrap();
        assert_eq!(
            what_holds_it(&fresh),
            "the namespace controller is removing what it holds"
        );
    }
}
