//! lock: the deploy lock. `fleet apply` holds a `coordination.k8s.io/v1`
//! Lease named `fleet-<fleet>` in the fleet's namespace from before it reads
//! what it plans from until it ends, so two deploy jobs applying to one
//! environment at once (a re-run beside a new push, two workflows) never
//! interleave. `plan` only reads it, to say in its header who holds it;
//! `fleet unlock` empties it by hand.
//!
//! - Taken with optimistic concurrency only: the Lease is created, or
//!   replaced carrying the resourceVersion just read, so of two applies that
//!   read the same Lease only one write succeeds; the other gets a 409, reads
//!   again and decides again ([`decide`], pure). Nothing is ever written on
//!   the strength of an older read.
//! - Renewed in the background every third of its TTL. A holder that dies
//!   (SIGKILL, a lost runner) stops renewing, and once `renewTime +
//!   leaseDurationSeconds` (+ [`SKEW_ALLOWANCE`]) has passed, the next apply
//!   takes it over. A holder that cannot renew for two thirds of the TTL (the
//!   API server unreachable) stops its own apply before anyone may take over,
//!   and so does one whose Lease was taken from it (`fleet unlock`).
//! - Released by emptying it (holderIdentity cleared, resourceVersion
//!   checked), not by deleting it, also when apply fails; the Lease then
//!   records that an apply has held it, which the first apply into a new
//!   namespace relies on ([`DeployLock::before_first_write`]).
//!
//! Clocks: a CI runner's clock may be off by seconds or worse, so the times
//! that matter are the API server's. Each read of the Lease also reads the
//! server's clock (the response's `Date` header, to within a second);
//! `acquireTime` and `renewTime` are written in server time as the writer
//! estimates it from that, and a Lease counts as expired only when its
//! `renewTime` plus its duration and [`SKEW_ALLOWANCE`] lies before the
//! reader's estimate of server time made the same way. What is left (the
//! header's one-second resolution, request latency, the API servers of a
//! highly available control plane disagreeing slightly) is what the
//! allowance covers. Without a `Date` header the local clock stands in.
//!
//! The rooms, pure first:
//! - `identity`: who takes the lock ([`Claimant`]), from the environment.
//! - `clock`: the API server's clock as estimated from a `Date` header.
//! - `decision`: given a Lease as read and the server's time, create, take
//!   or wait ([`decide`]).
//! - `record`: what a claim and a release write into the Lease.
//! - `holder`: who holds it, as people read it ([`Holder`], [`holder_of`]).
//! - `lease`: the Lease's reads and writes through the API server.
//! - `take`: the loop of read, decide and write, waiting while it is held.
//! - `renewal`: the held lock, renewed in the background until released.
//! - `deploy_lock`: the lock as `apply` uses it ([`DeployLock`]).
//! - `unlock`: the lock as `plan` and `fleet unlock` read and empty it.

mod clock;
mod decision;
mod deploy_lock;
mod holder;
mod identity;
mod lease;
mod record;
mod renewal;
mod take;
mod unlock;

use std::time::Duration;

pub(crate) use deploy_lock::DeployLock;
pub(crate) use holder::Holder;
pub(crate) use unlock::{remove, standing};

/// How long a lock outlives a holder that stopped renewing it.
pub(crate) const DEFAULT_TTL: Duration = Duration::from_secs(30);
/// Added to a Lease's duration before it counts as expired: the error of
/// estimating the server's clock (see the module comment).
pub(crate) const SKEW_ALLOWANCE: Duration = Duration::from_secs(2);

/// 409s in a row while writing the Lease before giving up: each means
/// another apply wrote the Lease between a read and a write.
const MAX_CONFLICTS: u32 = 10;

pub(crate) fn lease_name(fleet: &str) -> String {
    format!("fleet-{fleet}")
}

/// How apply takes the lock.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Options {
    /// Lease duration: how long the lock outlives a holder that died.
    pub ttl: Duration,
    /// How long to wait for another holder; zero fails at once.
    pub wait: Duration,
}
