//! Waiting for Deployments to roll out once their changes are written: all of
//! them at once, with progress as it happens, and stopping as soon as one
//! cannot finish (a pod no node can ever hold, an image that cannot be
//! pulled, a container that keeps crashing, the progress deadline passed).
//! A pod waiting for room on the nodes is progress, not a failure. Only reads.
//!
//! Each namespace is followed by three watches (Deployments, ReplicaSets,
//! pods) mirrored into kube-runtime reflector stores, however many agents it
//! holds, so the number of connections does not grow with the fleet; the
//! nodes by one more, started only once a pod waits for a node. After each
//! batch of changes every Deployment still waited on is judged again by
//! [`status::classify`]. Nothing outlives `--timeout`: the watches are asked
//! to end by then, and are dropped when it passes.

mod status;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{self, BoxStream};
use futures::{FutureExt as _, StreamExt as _};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Api, Client, Resource, ResourceExt as _};
use serde::de::DeserializeOwned;
use tokio::time::Instant;

pub(crate) use self::status::{Failure, REVISION_ANNOTATION, Rollout};
use crate::ownership;
use crate::render::ObjectRef;

/// A line of progress at least this often for each Deployment still rolling out.
const QUIET_AT_MOST: Duration = Duration::from_secs(10);
/// Changes to one Deployment are shown at most this often.
const CHANGES_AT_MOST_EVERY: Duration = Duration::from_secs(2);
/// Once one rollout fails, how long the others get to show how they end.
const SETTLE_AFTER_FAILURE: Duration = Duration::from_secs(3);
/// A watch request asks the server to end it after this long at most.
const WATCH_REQUEST_LIMIT: Duration = Duration::from_secs(290);

/// A Deployment to wait for.
#[derive(Debug, Clone)]
pub(crate) struct Waited {
    pub deployment: ObjectRef,
    /// Its pod selector's `matchLabels`, as applied.
    pub selector: BTreeMap<String, String>,
}

impl Waited {
    /// Its selector as a label selector (`app=agent-a,tier=x`), to list its
    /// ReplicaSets and pods.
    pub(crate) fn label_selector(&self) -> String {
        self.selector
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Where one Deployment's rollout stands, as reported while waiting.
#[derive(Debug, Clone)]
pub(crate) struct Progress {
    pub deployment: ObjectRef,
    /// `None` until the cluster has answered.
    pub rollout: Option<Rollout>,
    /// How long it has been waited for.
    pub waited: Duration,
}

impl fmt::Display for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let waited = seconds(self.waited);
        let Some(rollout) = &self.rollout else {
            return write!(f, "waiting to read its state from the cluster ({waited})");
        };
        let counts = rollout.counts();
        match rollout {
            Rollout::Progressing { detail, .. } => write!(
                f,
                "rolling out, {}/{} ready: {detail} ({waited})",
                counts.ready, counts.desired
            ),
            Rollout::RolledOut { .. } => write!(
                f,
                "rolled out, {}/{} ready ({waited})",
                counts.ready, counts.desired
            ),
            Rollout::Failed { failure, .. } => {
                write!(f, "rollout failed: {}", failure.reason)?;
                if let Some(pod) = &failure.pod {
                    write!(f, " (pod {pod})")?;
                }
                write!(f, " ({waited})")
            }
        }
    }
}

/// `95s` as `1m35s`.
fn seconds(duration: Duration) -> String {
    let secs = duration.as_secs();
    if secs < 60 {
        format!("{secs}s")
    } else {
        format!("{}m{:02}s", secs / 60, secs % 60)
    }
}

/// Waits until every Deployment in `deployments` has rolled out, one has
/// failed (the others then get a moment to show how they end), or `timeout`
/// has passed. `report` hears of each one's progress; the answer holds one
/// error per Deployment that did not roll out, naming the cause and what to do.
pub(crate) async fn wait(
    client: &Client,
    deployments: &[Waited],
    timeout: Duration,
    report: &mut dyn FnMut(&Progress),
) -> Vec<anyhow::Error> {
    let start = Instant::now();
    let mut deadline = start + timeout;
    let mut waiting: Vec<Waiting> = deployments
        .iter()
        .map(|d| Waiting::new(d.deployment.clone()))
        .collect();

    let mut by_namespace: BTreeMap<&str, Vec<&Waited>> = BTreeMap::new();
    for waited in deployments {
        let namespace = waited.deployment.namespace.as_deref().unwrap_or_default();
        by_namespace.entry(namespace).or_default().push(waited);
    }
    let mut watched: Vec<Watched> = Vec::new();
    let mut signals = Vec::new();
    for (index, (namespace, waited)) in by_namespace.into_iter().enumerate() {
        let (namespace_watch, namespace_signals) =
            Watched::start(client, namespace, &waited, timeout, index);
        watched.push(namespace_watch);
        signals.extend(namespace_signals);
    }
    let mut signals = stream::select_all(signals);
    let request_limit = watch_request_limit(timeout);
    let mut nodes: Option<Nodes> = None;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut errors = Vec::new();

    loop {
        let mut changed = Vec::new();
        {
            let mut sleep = pin!(tokio::time::sleep_until(deadline));
            tokio::select! {
                _ = &mut sleep => break,
                _ = tick.tick() => {}
                signal = signals.next() => match signal {
                    Some(signal) => changed.push(signal),
                    // Watches do not end on their own; if they all did,
                    // nothing more will be learned.
                    None => break,
                },
            }
        }
        // Take everything already there, and judge once for the batch.
        while let Some(Some(signal)) = signals.next().now_or_never() {
            changed.push(signal);
        }
        for signal in changed {
            match (&mut nodes, signal.kind) {
                (Some(nodes), Kind::Nodes) => nodes.take(signal),
                _ => watched[signal.namespace].take(signal),
            }
        }
        // Whether a pod the scheduler could not place can ever run depends
        // on the nodes: read them once one is seen (a LIST of every node is
        // large on a large cluster, and rarely needed).
        if nodes.is_none() && watched.iter().any(Watched::waits_for_a_node) {
            let (store, node_signals) = watch::<Node>(
                Api::all(client.clone()),
                watcher::Config::default().timeout(request_limit),
                0,
                Kind::Nodes,
                // A node lists every image it holds: the bulk of it, unread.
                |node| {
                    if let Some(status) = node.status.as_mut() {
                        status.images = None;
                    }
                },
            );
            signals.push(node_signals);
            nodes = Some(Nodes {
                store,
                listed: false,
            });
        }
        let known_nodes = nodes.as_ref().and_then(Nodes::known);
        let known_nodes: Option<Vec<&Node>> = known_nodes
            .as_ref()
            .map(|nodes| nodes.iter().map(Arc::as_ref).collect());
        for namespace in &watched {
            if let Some(err) = namespace.refused() {
                // Without reads there is nothing to wait on: say why, and stop.
                let waited_here = waiting.iter_mut().filter(|w| {
                    !w.finished
                        && w.deployment.namespace.as_deref() == Some(namespace.name.as_str())
                });
                for w in waited_here {
                    w.finished = true;
                    errors.push(anyhow::anyhow!(
                        "{}: cannot follow its rollout: {err}. Watching Deployments, ReplicaSets and pods in namespace {} needs `list` and `watch` on them; apply with --no-wait to skip waiting",
                        w.deployment,
                        namespace.name
                    ));
                }
            }
        }

        let now = Instant::now();
        let mut failed_now = false;
        for w in waiting.iter_mut().filter(|w| !w.finished) {
            let rollout = watched
                .iter()
                .find(|n| Some(n.name.as_str()) == w.deployment.namespace.as_deref())
                .and_then(|namespace| namespace.judge(&w.deployment.name, known_nodes.as_deref()));
            let progress = Progress {
                deployment: w.deployment.clone(),
                rollout,
                waited: now - start,
            };
            match &progress.rollout {
                Some(Rollout::RolledOut { .. }) => {
                    w.finished = true;
                    report(&progress);
                }
                Some(Rollout::Failed { failure, .. }) => {
                    w.finished = true;
                    failed_now = true;
                    report(&progress);
                    errors.push(failed(&w.deployment, failure));
                }
                // Shown at once when known, and not silent for long before.
                None if now - start < QUIET_AT_MOST => {}
                _ => {
                    if w.due(&progress.rollout, now) {
                        w.shown = Some((progress.rollout.clone(), now));
                        report(&progress);
                    }
                }
            }
            w.last = Some(progress);
        }
        if waiting.iter().all(|w| w.finished) {
            return errors;
        }
        if failed_now {
            deadline = deadline.min(Instant::now() + SETTLE_AFTER_FAILURE);
        }
    }

    // Out of time, or stopped because another rollout failed.
    let stopped_early = !errors.is_empty();
    for w in waiting.iter().filter(|w| !w.finished) {
        let namespace = watched
            .iter()
            .find(|n| Some(n.name.as_str()) == w.deployment.namespace.as_deref());
        let state = match &w.last {
            Some(Progress {
                rollout: Some(Rollout::Progressing { counts, detail }),
                ..
            }) => format!("{}/{} ready: {detail}", counts.ready, counts.desired),
            _ => match namespace.and_then(Watched::last_error) {
                Some(err) => format!("its state could not be read ({err})"),
                None => "its state could not be read in time".to_string(),
            },
        };
        let namespace_name = w.deployment.namespace.as_deref().unwrap_or_default();
        errors.push(if stopped_early {
            anyhow::anyhow!(
                "{}: still rolling out when apply stopped ({state}); see `kubectl rollout status deployment/{} -n {namespace_name}`",
                w.deployment,
                w.deployment.name,
            )
        } else {
            anyhow::anyhow!(
                "{}: has not rolled out after {} ({state}); see `kubectl rollout status deployment/{} -n {namespace_name}`, or give it longer with --timeout",
                w.deployment,
                seconds(timeout),
                w.deployment.name,
            )
        });
    }
    errors
}

/// The error for a rollout that cannot finish: what, where, why, what to do.
fn failed(deployment: &ObjectRef, failure: &Failure) -> anyhow::Error {
    let pod = failure
        .pod
        .as_deref()
        .map(|pod| format!("pod {pod} is "))
        .unwrap_or_default();
    anyhow::anyhow!(
        "{deployment} did not roll out: {pod}{}: {}\n  {}",
        failure.reason,
        failure.message,
        failure.hint
    )
}

/// One Deployment waited on.
struct Waiting {
    deployment: ObjectRef,
    finished: bool,
    /// The last state reported, and when.
    shown: Option<(Option<Rollout>, Instant)>,
    last: Option<Progress>,
}

impl Waiting {
    fn new(deployment: ObjectRef) -> Waiting {
        Waiting {
            deployment,
            finished: false,
            shown: None,
            last: None,
        }
    }

    /// Shown on a change (not too often), and now and then without one.
    fn due(&self, rollout: &Option<Rollout>, now: Instant) -> bool {
        match &self.shown {
            None => true,
            Some((shown, at)) => {
                let since = now - *at;
                since >= QUIET_AT_MOST || (shown != rollout && since >= CHANGES_AT_MOST_EVERY)
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Deployments,
    ReplicaSets,
    Pods,
    /// The cluster's nodes, not a namespace's.
    Nodes,
}

/// The watch of the cluster's nodes.
struct Nodes {
    store: Store<Node>,
    listed: bool,
}

impl Nodes {
    fn take(&mut self, signal: Signal) {
        // An identity that may not read nodes (a namespace-confined one)
        // never lists them: pods are then judged from the scheduler's
        // reasons alone.
        if matches!(signal.event, Ok(Listed::Yes)) {
            self.listed = true;
        }
    }

    /// The nodes, once listed.
    fn known(&self) -> Option<Vec<Arc<Node>>> {
        self.listed.then(|| self.store.state())
    }
}

fn watch_request_limit(timeout: Duration) -> u32 {
    timeout.min(WATCH_REQUEST_LIMIT).as_secs().max(1) as u32
}

/// Something one of a namespace's watches saw.
struct Signal {
    namespace: usize,
    kind: Kind,
    event: Result<Listed, watcher::Error>,
}

/// Whether a watch's first complete listing is in its store.
enum Listed {
    Yes,
    NotYet,
}

/// The three watches of one namespace, and what they have seen.
struct Watched {
    name: String,
    deployments: Store<Deployment>,
    replica_sets: Store<ReplicaSet>,
    pods: Store<Pod>,
    listed: HashSet<Kind>,
    /// The last error of each watch, cleared when it recovers.
    errors: HashMap<Kind, watcher::Error>,
}

impl Watched {
    fn start(
        client: &Client,
        namespace: &str,
        waited: &[&Waited],
        timeout: Duration,
        index: usize,
    ) -> (Watched, Vec<BoxStream<'static, Signal>>) {
        let pods_selector = pods_selector(waited);
        let deployments_selector =
            format!("{}={}", ownership::MANAGED_BY_LABEL, ownership::MANAGED_BY);
        let request_limit = watch_request_limit(timeout);
        let config = |selector: &str| {
            let config = watcher::Config::default().timeout(request_limit);
            if selector.is_empty() {
                config
            } else {
                config.labels(selector)
            }
        };
        let (deployments, deployment_signals) = watch::<Deployment>(
            Api::namespaced(client.clone(), namespace),
            config(&deployments_selector),
            index,
            Kind::Deployments,
            |_| {},
        );
        let (replica_sets, replica_set_signals) = watch::<ReplicaSet>(
            Api::namespaced(client.clone(), namespace),
            config(&pods_selector),
            index,
            Kind::ReplicaSets,
            |_| {},
        );
        let (pods, pod_signals) = watch::<Pod>(
            Api::namespaced(client.clone(), namespace),
            config(&pods_selector),
            index,
            Kind::Pods,
            |_| {},
        );
        (
            Watched {
                name: namespace.to_string(),
                deployments,
                replica_sets,
                pods,
                listed: HashSet::new(),
                errors: HashMap::new(),
            },
            vec![deployment_signals, replica_set_signals, pod_signals],
        )
    }

    fn take(&mut self, signal: Signal) {
        match signal.event {
            Ok(listed) => {
                self.errors.remove(&signal.kind);
                if matches!(listed, Listed::Yes) {
                    self.listed.insert(signal.kind);
                }
            }
            Err(err) => {
                self.errors.insert(signal.kind, err);
            }
        }
    }

    /// A refusal that waiting will not change: the user may not read these.
    fn refused(&self) -> Option<String> {
        self.errors.values().find_map(|err| match err {
            watcher::Error::InitialListFailed(kube::Error::Api(status))
            | watcher::Error::WatchStartFailed(kube::Error::Api(status))
                if status.code == 401 || status.code == 403 =>
            {
                Some(status.message.clone())
            }
            _ => None,
        })
    }

    fn last_error(&self) -> Option<String> {
        self.errors.values().next().map(ToString::to_string)
    }

    /// Whether one of the pods watched here waits for a node.
    fn waits_for_a_node(&self) -> bool {
        self.pods
            .state()
            .iter()
            .any(|pod| status::unschedulable_message(pod).is_some())
    }

    /// Where the named Deployment stands, once all three watches have listed.
    fn judge(&self, name: &str, nodes: Option<&[&Node]>) -> Option<Rollout> {
        if self.listed.len() < 3 {
            return None;
        }
        let deployment = self
            .deployments
            .find(|d| d.metadata.name.as_deref() == Some(name))?;
        let uid = deployment.metadata.uid.as_deref()?;
        let replica_sets: Vec<Arc<ReplicaSet>> =
            self.replica_sets.state_filter(|rs| owned_by(rs, uid));
        let owners: HashSet<&str> = replica_sets
            .iter()
            .filter_map(|rs| rs.metadata.uid.as_deref())
            .collect();
        let pods = self.pods.state();
        let own: Vec<&Pod> = pods
            .iter()
            .map(Arc::as_ref)
            .filter(|pod| {
                pod.owner_references()
                    .iter()
                    .any(|owner| owners.contains(owner.uid.as_str()))
            })
            .collect();
        let replica_sets: Vec<&ReplicaSet> = replica_sets.iter().map(Arc::as_ref).collect();
        Some(status::classify(&deployment, &replica_sets, &own, nodes))
    }
}

/// A label selector for the pods (and ReplicaSets, which carry the pod
/// template's labels) of all the `waited` Deployments. Fleet's select theirs
/// by one label (`app=<name>`), which makes `app in (a,b,...)`; otherwise
/// every pod of the namespace is watched and sorted out by owner.
fn pods_selector(waited: &[&Waited]) -> String {
    let mut key = None;
    let mut values = Vec::new();
    for w in waited {
        let mut labels = w.selector.iter();
        match (labels.next(), labels.next()) {
            (Some((k, v)), None) if key.is_none_or(|key| key == k) => {
                key = Some(k);
                values.push(v.as_str());
            }
            _ => return String::new(),
        }
    }
    match key {
        Some(key) => format!("{key} in ({})", values.join(",")),
        None => String::new(),
    }
}

fn owned_by<K: Resource>(object: &K, uid: &str) -> bool {
    object
        .meta()
        .owner_references
        .iter()
        .flatten()
        .any(|owner| owner.uid == uid)
}

/// A watch of one kind mirrored into a store, as a stream of signals;
/// `trim` drops from each object what judging it never reads.
fn watch<K>(
    api: Api<K>,
    config: watcher::Config,
    namespace: usize,
    kind: Kind,
    trim: fn(&mut K),
) -> (Store<K>, BoxStream<'static, Signal>)
where
    K: Resource + Clone + DeserializeOwned + fmt::Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    let (reader, writer) = reflector::store();
    let signals = watcher(api, config)
        // Retries after errors with backoff; the errors still come through.
        .default_backoff()
        .modify(move |object| {
            object.meta_mut().managed_fields = None;
            trim(object);
        })
        .reflect(writer)
        .map(move |event| Signal {
            namespace,
            kind,
            event: event.map(|event| match event {
                watcher::Event::InitDone => Listed::Yes,
                _ => Listed::NotYet,
            }),
        })
        .boxed();
    (reader, signals)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::rollout::status::Counts;

    fn progressing(detail: &str) -> Option<Rollout> {
        Some(Rollout::Progressing {
            counts: Counts::default(),
            detail: detail.into(),
        })
    }

    #[test]
    fn progress_is_shown_on_change_not_too_often_and_never_silent_long() {
        let start = Instant::now();
        let mut waiting = Waiting::new(ObjectRef {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            namespace: Some("ns".into()),
            name: "agent-devops".into(),
        });
        assert!(waiting.due(&progressing("a"), start), "the first state");
        waiting.shown = Some((progressing("a"), start));
        let at = |secs| start + Duration::from_secs(secs);
        assert!(!waiting.due(&progressing("a"), at(5)), "unchanged");
        assert!(!waiting.due(&progressing("b"), at(1)), "changed, too soon");
        assert!(waiting.due(&progressing("b"), at(2)), "changed");
        assert!(waiting.due(&progressing("a"), at(10)), "quiet for 10s");
    }

    #[test]
    fn pods_are_watched_by_the_one_label_fleets_deployments_select_on() {
        let waited = |selector: &[(&str, &str)]| Waited {
            deployment: ObjectRef {
                api_version: "apps/v1".into(),
                kind: "Deployment".into(),
                namespace: Some("ns".into()),
                name: "x".into(),
            },
            selector: selector
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        let devops = waited(&[("app", "agent-devops")]);
        let observer = waited(&[("app", "agent-observer")]);
        assert_eq!(
            pods_selector(&[&devops, &observer]),
            "app in (agent-devops,agent-observer)"
        );
        // Anything else: every pod of the namespace, sorted out by owner.
        let other = waited(&[("app", "a"), ("tier", "b")]);
        assert_eq!(pods_selector(&[&devops, &other]), "");
        let other_key = waited(&[("name", "a")]);
        assert_eq!(pods_selector(&[&devops, &other_key]), "");
    }
}
