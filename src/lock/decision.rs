//! The decision, pure: given the Lease as read (or none) and the API
//! server's time, create it, take it, or wait for its holder. No I/O here;
//! [`super::take`] reads, asks, and writes.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::jiff::Timestamp;

use super::clock::plus;
use super::record::PROCESS_ANNOTATION;
use super::{DEFAULT_TTL, SKEW_ALLOWANCE};

/// What [`decide`] needs to know of a Lease.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Observed {
    /// `holderIdentity`; `None` (or empty) when nobody holds it.
    pub identity: Option<String>,
    /// `renewTime`, else `acquireTime`.
    pub renewed: Option<Timestamp>,
    pub duration: Duration,
    /// The holder's process has ended (see [`crate::process::has_ended`]).
    pub holder_ended: bool,
}

impl Observed {
    pub(crate) fn of(lease: &Lease) -> Observed {
        let spec = lease.spec.as_ref();
        Observed {
            identity: spec
                .and_then(|s| s.holder_identity.clone())
                .filter(|id| !id.is_empty()),
            renewed: spec
                .and_then(|s| s.renew_time.as_ref().or(s.acquire_time.as_ref()))
                .map(|t| t.0),
            duration: spec
                .and_then(|s| s.lease_duration_seconds)
                .and_then(|s| u64::try_from(s).ok())
                .map_or(DEFAULT_TTL, Duration::from_secs),
            holder_ended: lease
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(PROCESS_ANNOTATION))
                .is_some_and(|process| crate::process::has_ended(process)),
        }
    }

    /// Its holder stopped renewing it: `renewTime + duration`, with the
    /// allowance for clocks, lies before `now` (server time). A Lease held
    /// without any time was not written by a fleet that is alive.
    pub(crate) fn expired(&self, now: Timestamp) -> bool {
        match self.renewed {
            Some(renewed) => now > plus(plus(renewed, self.duration), SKEW_ALLOWANCE),
            None => true,
        }
    }
}

/// What to do about the Lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// There is none: create it.
    Create,
    /// Free (released), ours already, `expired`, or its holder's process
    /// has `ended`: replace it, with the resourceVersion it was read at.
    Take { expired: bool, ended: bool },
    /// Someone else holds it: wait, or fail naming them.
    Held,
}

/// May `me` take this Lease (as read at server time `now`)?
pub(crate) fn decide(lease: Option<&Observed>, me: &str, now: Timestamp) -> Decision {
    let Some(lease) = lease else {
        return Decision::Create;
    };
    let (expired, ended) = (lease.expired(now), lease.holder_ended);
    match lease.identity.as_deref() {
        None => Decision::Take {
            expired: false,
            ended: false,
        },
        Some(holder) if holder == me => Decision::Take {
            expired: false,
            ended: false,
        },
        Some(_) if expired || ended => Decision::Take { expired, ended },
        Some(_) => Decision::Held,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn held_by(identity: &str, renewed: &str) -> Observed {
        Observed {
            identity: Some(identity.into()),
            renewed: Some(at(renewed)),
            duration: Duration::from_secs(30),
            holder_ended: false,
        }
    }

    #[test]
    fn no_lease_is_created() {
        assert_eq!(
            decide(None, "me", at("2026-01-01T00:00:00Z")),
            Decision::Create
        );
    }

    #[test]
    fn a_released_lease_is_taken() {
        let free = Observed {
            identity: None,
            renewed: None,
            duration: Duration::from_secs(30),
            holder_ended: false,
        };
        assert_eq!(
            decide(Some(&free), "me", at("2026-01-01T00:00:00Z")),
            Decision::Take {
                expired: false,
                ended: false
            }
        );
    }

    #[test]
    fn a_live_holder_keeps_it_until_duration_and_allowance_have_passed() {
        let lease = held_by("other", "2026-01-01T00:00:00Z");
        // 30 s duration + 2 s allowance.
        for now in [
            "2026-01-01T00:00:00Z",
            "2026-01-01T00:00:31Z",
            "2026-01-01T00:00:32Z",
        ] {
            assert_eq!(decide(Some(&lease), "me", at(now)), Decision::Held, "{now}");
        }
        assert_eq!(
            decide(Some(&lease), "me", at("2026-01-01T00:00:32.001Z")),
            Decision::Take {
                expired: true,
                ended: false
            }
        );
    }

    #[test]
    fn a_renewal_in_the_future_is_still_held() {
        // The holder's estimate of server time ran ahead of ours.
        let lease = held_by("other", "2026-01-01T00:00:05Z");
        assert_eq!(
            decide(Some(&lease), "me", at("2026-01-01T00:00:00Z")),
            Decision::Held
        );
    }

    #[test]
    fn our_own_lease_is_taken_again() {
        let lease = held_by("me", "2026-01-01T00:00:00Z");
        assert_eq!(
            decide(Some(&lease), "me", at("2026-01-01T00:00:01Z")),
            Decision::Take {
                expired: false,
                ended: false
            }
        );
    }

    #[test]
    fn a_lease_held_without_times_is_expired() {
        let lease = Observed {
            identity: Some("someone by hand".into()),
            renewed: None,
            duration: Duration::from_secs(30),
            holder_ended: false,
        };
        assert_eq!(
            decide(Some(&lease), "me", at("2026-01-01T00:00:00Z")),
            Decision::Take {
                expired: true,
                ended: false
            }
        );
    }

    #[test]
    fn a_holder_whose_process_ended_is_taken_over_at_once() {
        let mut lease = held_by("other", "2026-01-01T00:00:00Z");
        lease.holder_ended = true;
        assert_eq!(
            decide(Some(&lease), "me", at("2026-01-01T00:00:01Z")),
            Decision::Take {
                expired: false,
                ended: true
            }
        );
    }

    fn lease(json: serde_json::Value) -> Lease {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn observed_reads_renew_time_else_acquire_time() {
        let renewed = lease(serde_json::json!({
            "metadata": { "name": "fleet-x" },
            "spec": {
                "holderIdentity": "a",
                "acquireTime": "2026-01-01T00:00:00.000000Z",
                "renewTime": "2026-01-01T00:00:20.000000Z",
                "leaseDurationSeconds": 9
            }
        }));
        let observed = Observed::of(&renewed);
        assert_eq!(observed.renewed, Some(at("2026-01-01T00:00:20Z")));
        assert_eq!(observed.duration, Duration::from_secs(9));
        let acquired = lease(serde_json::json!({
            "metadata": { "name": "fleet-x" },
            "spec": { "holderIdentity": "", "acquireTime": "2026-01-01T00:00:00.000000Z" }
        }));
        let observed = Observed::of(&acquired);
        assert_eq!(observed.identity, None);
        assert_eq!(observed.renewed, Some(at("2026-01-01T00:00:00Z")));
        assert_eq!(observed.duration, DEFAULT_TTL);
    }
}
