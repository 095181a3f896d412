//! Taking the lock: read the Lease with the server's clock, [`decide`],
//! write (create, or replace at the resourceVersion read), and on a 409
//! read and decide again; while another apply holds it, wait up to
//! `--lock-timeout`, then fail naming it ([`Busy`]).

use std::fmt;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::decision::{Decision, Observed, decide};
use super::holder::{Holder, holder_of, human};
use super::identity::Claimant;
use super::lease::{Place, status_code, write_params};
use super::record::claimed;
use super::renewal::Held;
use super::{MAX_CONFLICTS, Options};
use crate::client::retry;

/// How often a waiting apply reads the Lease again.
const POLL: Duration = Duration::from_secs(1);

/// The lock could not be taken: another apply holds it.
#[derive(Debug, thiserror::Error)]
pub(crate) struct Busy {
    pub lease: String,
    pub holder: Holder,
    /// How long this apply waited (`--lock-timeout`).
    pub waited: Duration,
    /// The namespace this apply created for the lock (a first apply), which
    /// the holder now uses.
    pub created_namespace: Option<String>,
}

impl fmt::Display for Busy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let waited = if self.waited.is_zero() {
            String::new()
        } else {
            format!(" (waited {}, --lock-timeout)", human(self.waited))
        };
        let changed = match &self.created_namespace {
            Some(namespace) => format!(
                "nothing was changed but the empty namespace {namespace}, created for the lock (that apply uses it)"
            ),
            None => "nothing was changed".into(),
        };
        write!(
            f,
            "the deploy lock (Lease {}) is held by {}{waited}; {changed}.\n  Another apply to this environment is running: run again once it is done, or wait for it with --lock-timeout (e.g. --lock-timeout 10m). If that apply is gone, its lock expires {}s after its last renewal, or remove it now with `fleet unlock`.",
            self.lease, self.holder, self.holder.ttl_seconds
        )
    }
}

/// What happened while taking the lock, for the caller to report.
pub(crate) enum Event<'a> {
    /// Another apply holds it; waiting (up to `--lock-timeout`).
    Waiting(&'a Holder, Duration),
    /// Taken over from a holder that stopped renewing it.
    TookOver(&'a Holder),
    /// Taken over at once from a holder whose process, on this machine, has
    /// ended (killed, or crashed) without releasing it.
    TookOverEnded(&'a Holder),
    /// A destroy found no namespace to hold the lock in (missing, or being
    /// deleted): it goes on without one, and makes none.
    NoNamespace(&'a str),
}

impl fmt::Display for Event<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Waiting(holder, wait) => write!(
                f,
                "Waiting up to {} (--lock-timeout) for the deploy lock, held by {holder}",
                human(*wait)
            ),
            Event::TookOver(holder) => write!(
                f,
                "Took over the deploy lock from {}: it was not renewed since {} (that apply stopped without releasing it)",
                holder.holder,
                holder.renewed.as_deref().unwrap_or("it was taken")
            ),
            Event::TookOverEnded(holder) => write!(
                f,
                "Took over the deploy lock from {} at once: its process{} has ended on this machine without releasing it",
                holder.holder,
                holder
                    .host
                    .as_deref()
                    .map(|host| format!(" ({host})"))
                    .unwrap_or_default()
            ),
            Event::NoNamespace(namespace) => write!(
                f,
                "fleet: namespace {namespace} does not exist or is being deleted, so there is no deploy lock to take in it; none is made"
            ),
        }
    }
}

/// How the lock was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Taken {
    /// The Lease did not exist: no apply has held it in this namespace.
    Created,
    /// The Lease existed (free, expired, or ours).
    Existing,
}

/// Takes the Lease: `None` when its namespace does not exist.
pub(super) async fn take(
    place: &Place,
    claimant: &Claimant,
    options: Options,
    report: &mut (dyn FnMut(Event<'_>) + Send),
) -> anyhow::Result<Option<(Held, Taken)>> {
    let started = Instant::now();
    let mut conflicts = 0;
    let params = write_params();
    let mut announced: Option<String> = None;
    loop {
        let (lease, clock) = place.read().await.map_err(place.explained("reading"))?;
        let now = clock.now();
        let observed = lease.as_ref().map(Observed::of);
        let decision = decide(observed.as_ref(), &claimant.identity, now);
        let written = match (decision, lease) {
            (Decision::Held, Some(lease)) => {
                let holder = holder_of(&lease, now).expect("held");
                let waited = started.elapsed();
                if waited >= options.wait {
                    return Err(Busy {
                        lease: format!("{}/{}", place.namespace, place.name),
                        holder,
                        waited: if options.wait.is_zero() {
                            Duration::ZERO
                        } else {
                            waited
                        },
                        created_namespace: None,
                    }
                    .into());
                }
                if announced.as_deref() != Some(holder.identity.as_str()) {
                    report(Event::Waiting(&holder, options.wait));
                    announced = Some(holder.identity.clone());
                }
                tokio::time::sleep(POLL.min(options.wait - waited)).await;
                continue;
            }
            (Decision::Create, _) | (_, None) => {
                let body = Lease {
                    metadata: ObjectMeta {
                        name: Some(place.name.clone()),
                        namespace: Some(place.namespace.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: None,
                };
                let body = claimed(body, claimant, options.ttl, now);
                let at = Instant::now();
                match retry::kube(|| place.api.create(&params, &body)).await {
                    // The namespace is missing (a namespace being deleted
                    // answers 403 instead, explained as such).
                    Err(err) if status_code(&err) == Some(404) => return Ok(None),
                    written => written.map(|lease| (lease, at, Taken::Created)),
                }
            }
            (Decision::Take { expired, ended }, Some(lease)) => {
                if let Some(previous) = holder_of(&lease, now) {
                    if ended {
                        report(Event::TookOverEnded(&previous));
                    } else if expired {
                        report(Event::TookOver(&previous));
                    }
                }
                let body = claimed(lease, claimant, options.ttl, now);
                let at = Instant::now();
                retry::kube(|| place.api.replace(&place.name, &params, &body))
                    .await
                    .map(|lease| (lease, at, Taken::Existing))
            }
        };
        match written {
            Ok((lease, at, taken)) => {
                return Ok(Some((
                    Held::start(place, claimant, lease, clock, at, options.ttl),
                    taken,
                )));
            }
            // Another apply wrote the Lease since it was read (or created
            // it first): read it again.
            Err(err) if status_code(&err) == Some(409) && conflicts < MAX_CONFLICTS => {
                conflicts += 1;
            }
            Err(err) => return Err(place.explained("taking")(err)),
        }
    }
}
