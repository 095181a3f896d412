//! The lock, held: renewed in the background every third of its TTL, and
//! lost (for [`super::DeployLock::guard`] to stop apply) when it was taken
//! from this holder or could not be renewed for two thirds of it. Given up
//! when released, or, dropped without that, from a helper thread.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use tokio::sync::watch;

use super::clock::ServerClock;
use super::decision::Observed;
use super::holder::holder_of;
use super::identity::Claimant;
use super::lease::{Place, status_code, write_params};

/// The lock, held: renewed in the background until released.
pub(crate) struct Held {
    place: Place,
    identity: String,
    /// Set, with the reason, when the lock was lost.
    lost: watch::Receiver<Option<String>>,
    renewer: tokio::task::JoinHandle<()>,
    released: bool,
}

impl Held {
    pub(super) fn start(
        place: &Place,
        claimant: &Claimant,
        lease: Lease,
        clock: ServerClock,
        renewed_at: Instant,
        ttl: Duration,
    ) -> Held {
        let (lost_tx, lost) = watch::channel(None);
        let renewer = tokio::spawn(renew(
            place.clone(),
            claimant.identity.clone(),
            lease,
            clock,
            renewed_at,
            ttl,
            lost_tx,
        ));
        Held {
            place: place.clone(),
            identity: claimant.identity.clone(),
            lost,
            renewer,
            released: false,
        }
    }

    /// Why the lock was lost, once it is.
    pub(super) async fn lost(&self) -> String {
        let mut lost = self.lost.clone();
        match lost.wait_for(Option::is_some).await {
            Ok(reason) => reason.clone().unwrap_or_default(),
            // The renewer ended without losing it (never before release).
            Err(_) => std::future::pending().await,
        }
    }

    pub(super) async fn release(mut self) -> anyhow::Result<()> {
        self.renewer.abort();
        let result = self.place.empty_if_held(&self.identity).await;
        // Only now: dropped half-way (the run's --timeout), Drop releases.
        self.released = true;
        result.map_err(self.place.explained("releasing"))
    }

    /// Releases the lock by deleting its Lease (a destroy, done with it),
    /// if this holder still holds it: the delete carries the
    /// resourceVersion read, so a Lease another apply took meanwhile stays.
    pub(super) async fn delete(mut self) -> anyhow::Result<()> {
        self.renewer.abort();
        let result = self.place.delete_if_held(&self.identity).await;
        self.released = true;
        result.map_err(self.place.explained("deleting"))
    }
}

impl Drop for Held {
    /// Dropped without [`Held::release`]: an error after the lock was taken,
    /// or the run's `--timeout`. Drop cannot await, so a helper thread
    /// drives the release on the runtime (whose workers keep running) for a
    /// few seconds; failing that, the Lease expires after its TTL.
    fn drop(&mut self) {
        self.renewer.abort();
        if self.released {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (place, identity) = (self.place.clone(), self.identity.clone());
        let releasing = std::thread::spawn(move || {
            runtime.block_on(async {
                let _ =
                    tokio::time::timeout(Duration::from_secs(5), place.empty_if_held(&identity))
                        .await;
            })
        });
        let _ = releasing.join();
    }
}

/// Renews the Lease every third of `ttl` until aborted. Reports the lock
/// lost when the Lease was taken from it, or when it could not renew for
/// two thirds of `ttl`: by then another apply may soon take it over.
async fn renew(
    place: Place,
    identity: String,
    mut lease: Lease,
    clock: ServerClock,
    mut renewed_at: Instant,
    ttl: Duration,
    lost: watch::Sender<Option<String>>,
) {
    let every = ttl / 3;
    let params = write_params();
    let give_up_after = ttl * 2 / 3;
    let retry_after = Duration::from_secs(1).min(every);
    let mut next = renewed_at + every;
    let mut last_error = String::new();
    loop {
        tokio::time::sleep_until(next.into()).await;
        let left = give_up_after.saturating_sub(renewed_at.elapsed());
        if left.is_zero() {
            let _ = lost.send(Some(format!(
                "it could not be renewed for {}s{last_error}, so another apply may take it over",
                give_up_after.as_secs()
            )));
            return;
        }
        let started = Instant::now();
        let mut body = lease.clone();
        if let Some(spec) = body.spec.as_mut() {
            spec.renew_time = Some(MicroTime(clock.now()));
        }
        let renewal = place.api.replace(&place.name, &params, &body);
        match tokio::time::timeout(left, renewal).await {
            Ok(Ok(renewed)) => {
                lease = renewed;
                renewed_at = started;
                next = started + every;
            }
            Ok(Err(err)) if matches!(status_code(&err), Some(404 | 409)) => {
                // Someone else wrote it: is it still ours?
                match tokio::time::timeout(left, place.api.get_opt(&place.name)).await {
                    Ok(Ok(Some(current)))
                        if Observed::of(&current).identity.as_deref() == Some(&identity) =>
                    {
                        lease = current;
                        next = Instant::now();
                    }
                    Ok(Ok(current)) => {
                        let reason = match current.as_ref().and_then(|c| holder_of(c, clock.now()))
                        {
                            Some(other) => format!("{} took it over", other.holder),
                            None => "it was removed (`fleet unlock`?)".into(),
                        };
                        let _ = lost.send(Some(reason));
                        return;
                    }
                    Ok(Err(err)) => {
                        last_error = format!(" ({err})");
                        next = Instant::now() + retry_after;
                    }
                    Err(_) => next = Instant::now(),
                }
            }
            Ok(Err(err)) => {
                last_error = format!(" ({err})");
                next = Instant::now() + retry_after;
            }
            // Out of time: the next turn says so.
            Err(_) => next = Instant::now(),
        }
    }
}
