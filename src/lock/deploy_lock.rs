//! The deploy lock as `apply` uses it: taken before planning (or, in a
//! namespace that does not exist yet, before the first write), guarding
//! the writes, and released at the end.

use std::collections::BTreeMap;
use std::future::Future;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::Api;

use super::Options;
use super::identity::Claimant;
use super::lease::{Place, status_code, write_params};
use super::renewal::Held;
use super::take::{Busy, Event, Taken, take};
use crate::client::kube::Cluster;
use crate::client::{explain, retry};
use crate::ownership;
use crate::render::ObjectRef;

/// The deploy lock of one fleet in one namespace, as `apply` uses it.
pub(crate) struct DeployLock {
    place: Place,
    claimant: Claimant,
    options: Options,
    state: State,
    report: Box<dyn FnMut(Event<'_>) + Send>,
    /// The Lease existed before this apply took it.
    lease_existed: bool,
    /// Taken by a destroy: a namespace that is missing (or being deleted)
    /// is never created to hold the lock.
    destroying: bool,
}

enum State {
    Held(Box<Held>),
    /// The namespace did not exist when apply planned: the lock is taken
    /// before the first write ([`DeployLock::before_first_write`]).
    Deferred,
    Released,
}

impl DeployLock {
    /// Takes the lock before apply reads the live state it plans from, so
    /// that the plan it carries out was made under the lock: another apply
    /// that ran meanwhile could have made it stale. When the namespace does
    /// not exist yet there is nowhere to put the Lease: taking it waits
    /// until just before the first write.
    pub(crate) async fn before_plan(
        cluster: &Cluster,
        fleet: &str,
        namespace: &str,
        options: Options,
        mut report: Box<dyn FnMut(Event<'_>) + Send>,
    ) -> anyhow::Result<DeployLock> {
        let place = Place::new(cluster, fleet, namespace);
        let claimant = Claimant::from_environment();
        let (state, lease_existed) = match take(&place, &claimant, options, &mut *report).await? {
            Some((held, taken)) => (State::Held(Box::new(held)), taken == Taken::Existing),
            None => (State::Deferred, false),
        };
        Ok(DeployLock {
            place,
            claimant,
            options,
            state,
            report,
            lease_existed,
            destroying: false,
        })
    }

    /// The lock for a destroy: taken as [`before_plan`] takes it, but in a
    /// namespace that is missing or being deleted (where no Lease can be
    /// created) it is not taken at all, and never later either: a destroy
    /// creates nothing, and nothing is left there for it to guard but what
    /// the namespace's deletion removes.
    ///
    /// [`before_plan`]: DeployLock::before_plan
    pub(crate) async fn before_destroy(
        cluster: &Cluster,
        fleet: &str,
        namespace: &str,
        options: Options,
        report: Box<dyn FnMut(Event<'_>) + Send>,
    ) -> anyhow::Result<DeployLock> {
        let namespaces: Api<Namespace> = Api::all(cluster.client.clone());
        // Unreadable (an identity confined to the namespace): taking the
        // lock tells.
        let usable = match retry::kube(|| namespaces.get_opt(namespace)).await {
            Ok(live) => live.is_some_and(|n| n.metadata.deletion_timestamp.is_none()),
            Err(_) => true,
        };
        let mut report = report;
        if !usable {
            report(Event::NoNamespace(namespace));
        }
        let mut lock = if usable {
            Self::before_plan(cluster, fleet, namespace, options, report).await?
        } else {
            DeployLock {
                place: Place::new(cluster, fleet, namespace),
                claimant: Claimant::from_environment(),
                options,
                state: State::Deferred,
                report,
                lease_existed: false,
                destroying: true,
            }
        };
        lock.destroying = true;
        Ok(lock)
    }

    /// Whether the Lease existed before this apply took the lock: an
    /// apply has held it here before.
    pub(crate) fn lease_existed(&self) -> bool {
        self.lease_existed
    }

    /// The Lease, for plans and messages.
    pub(crate) fn lease(&self) -> ObjectRef {
        self.place.id()
    }

    /// Before apply's first write: takes the lock if [`before_plan`]
    /// could not.
    ///
    /// The namespace did not exist when apply planned (a first apply), so
    /// the plan creates everything. The Lease needs the namespace, so it is
    /// created first, *create-only* and empty but for fleet's ownership
    /// labels: a create cannot overwrite anything, and it cannot land inside
    /// another apply's locked run either, because that apply's Lease lives
    /// in this namespace, so the namespace exists and the create fails
    /// (409, harmless). The Namespace wave then applies the rest of it.
    /// (Taking the lock after the Namespace wave instead would let the
    /// loser of two first applies write the Namespace, labels included, in
    /// the middle of the winner's run.)
    ///
    /// Then the Lease: if this apply creates it, no apply has held the lock
    /// in this namespace since this one planned (a release empties the Lease
    /// and keeps it), so the plan still stands. If it exists, another apply
    /// has run or is running since: the plan may be stale, so this one stops
    /// with nothing changed beyond, perhaps, the empty namespace (which that
    /// apply uses).
    ///
    /// [`before_plan`]: DeployLock::before_plan
    pub(crate) async fn before_first_write(&mut self) -> anyhow::Result<()> {
        if !matches!(self.state, State::Deferred) || self.destroying {
            return Ok(());
        }
        let place = &self.place;
        let namespaces: Api<Namespace> = Api::all(place.client.clone());
        let params = write_params();
        let applyset_id = ownership::applyset_id(
            &ownership::applyset_parent_name(&place.fleet),
            &place.namespace,
        );
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: Some(place.namespace.clone()),
                labels: Some(BTreeMap::from([
                    (
                        ownership::MANAGED_BY_LABEL.to_string(),
                        ownership::MANAGED_BY.to_string(),
                    ),
                    (ownership::PART_OF_LABEL.to_string(), applyset_id),
                ])),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        let created_namespace = match retry::kube(|| namespaces.create(&params, &namespace)).await {
            Ok(_) => true,
            Err(err) if status_code(&err) == Some(409) => false,
            Err(err) => {
                let id = ObjectRef {
                    api_version: "v1".into(),
                    kind: "Namespace".into(),
                    namespace: None,
                    name: place.namespace.clone(),
                };
                return Err(explain::client_error(
                    err,
                    "creating (to hold the deploy lock)",
                    &id,
                    &place.cluster,
                ));
            }
        };
        let created = created_namespace.then(|| place.namespace.clone());
        let changed = match &created {
            Some(namespace) => format!(
                "nothing was changed but the empty namespace {namespace}, created for the lock"
            ),
            None => "nothing was changed".into(),
        };
        let taken = take(place, &self.claimant, self.options, &mut *self.report)
            .await
            .map_err(|err| match err.downcast::<Busy>() {
                Ok(mut busy) => {
                    busy.created_namespace = created.clone();
                    busy.into()
                }
                Err(err) => err,
            })?;
        match taken {
            None => anyhow::bail!(
                "namespace {} disappeared while taking the deploy lock; {changed}. Run apply again",
                place.namespace
            ),
            Some((held, Taken::Created)) => {
                self.state = State::Held(Box::new(held));
                Ok(())
            }
            Some((held, Taken::Existing)) => {
                held.release().await?;
                self.state = State::Released;
                anyhow::bail!(
                    "namespace {} did not exist when this apply planned, and another apply has taken the deploy lock in it since, so this plan may be out of date; {changed}. Run apply again to plan against what that apply did",
                    place.namespace
                )
            }
        }
    }

    /// Runs `work` (apply's writes and rollout wait) while the lock is
    /// held. If the lock is lost first, `work` is stopped where it stands,
    /// so it never writes alongside another apply.
    pub(crate) async fn guard<T>(
        &mut self,
        work: impl Future<Output = anyhow::Result<T>>,
    ) -> anyhow::Result<T> {
        let State::Held(held) = &self.state else {
            return work.await;
        };
        // Biased, the loss first: a lock lost before the writes begin (during
        // the confirmation) stops them before the first one is sent.
        tokio::select! {
            biased;
            reason = held.lost() => Err(anyhow::anyhow!(
                "the deploy lock (Lease {}/{}) was lost while applying: {reason}. Apply stopped where it stood; a change in flight may or may not have been made. Once no other apply is running, run apply again: it picks up where this left off",
                self.place.namespace,
                self.place.name
            )),
            result = work => result,
        }
    }

    /// Gives the lock up (when apply ends, also on error).
    pub(crate) async fn release(mut self) -> anyhow::Result<()> {
        match std::mem::replace(&mut self.state, State::Released) {
            State::Held(held) => held.release().await,
            State::Deferred | State::Released => Ok(()),
        }
    }

    /// Gives the lock up by deleting its Lease: a destroy, done with it.
    /// Whether it held the Lease (and so deleted it).
    pub(crate) async fn release_by_deleting(&mut self) -> anyhow::Result<bool> {
        match std::mem::replace(&mut self.state, State::Released) {
            State::Held(held) => held.delete().await.map(|()| true),
            State::Deferred | State::Released => Ok(false),
        }
    }
}
