//! What fleet writes into the Lease, pure: a claim (holder, times,
//! duration, and annotations for people and for [`crate::process`]) and a
//! release (nobody holds it; the object and its transitions count stay).

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;

use super::identity::Claimant;
use crate::ownership;

/// Who holds the lock, for people: the CI run, or `user@host`.
pub(crate) const HOLDER_ANNOTATION: &str = "fleet.agent.ceo/lock-holder";
/// Where it runs: the CI job, the machine and the process.
pub(crate) const HOST_ANNOTATION: &str = "fleet.agent.ceo/lock-host";
/// The holding process, for machines: see [`crate::process`]. An apply on
/// the same machine takes over at once the lock of one that has ended.
pub(crate) const PROCESS_ANNOTATION: &str = "fleet.agent.ceo/lock-process";

/// `lease` claimed by `claimant` at server time `now`: holder, times,
/// duration and the annotations people read.
pub(super) fn claimed(
    mut lease: Lease,
    claimant: &Claimant,
    ttl: Duration,
    now: Timestamp,
) -> Lease {
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    if spec.holder_identity.as_deref() != Some(claimant.identity.as_str()) {
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        spec.acquire_time = Some(MicroTime(now));
    }
    spec.holder_identity = Some(claimant.identity.clone());
    spec.renew_time = Some(MicroTime(now));
    spec.lease_duration_seconds = Some(i32::try_from(ttl.as_secs()).unwrap_or(i32::MAX));
    let annotations = lease.metadata.annotations.get_or_insert_with(BTreeMap::new);
    annotations.insert(HOLDER_ANNOTATION.into(), claimant.who.clone());
    annotations.insert(HOST_ANNOTATION.into(), claimant.host.clone());
    match &claimant.process {
        Some(process) => annotations.insert(PROCESS_ANNOTATION.into(), process.clone()),
        None => annotations.remove(PROCESS_ANNOTATION),
    };
    lease
        .metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(
            ownership::MANAGED_BY_LABEL.into(),
            ownership::MANAGED_BY.into(),
        );
    lease
}

/// `lease` given up: nobody holds it. The object stays (see the module
/// comment), with its transitions count.
pub(super) fn emptied(mut lease: Lease) -> Lease {
    if let Some(spec) = lease.spec.as_mut() {
        spec.holder_identity = None;
        spec.acquire_time = None;
        spec.renew_time = None;
    }
    if let Some(annotations) = lease.metadata.annotations.as_mut() {
        annotations.remove(HOLDER_ANNOTATION);
        annotations.remove(HOST_ANNOTATION);
        annotations.remove(PROCESS_ANNOTATION);
    }
    lease
}

#[cfg(test)]
mod tests {
    use super::super::clock::plus;
    use super::super::holder::holder_of;
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn lease(json: serde_json::Value) -> Lease {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn claiming_and_emptying_round_trip() {
        let claimant = Claimant {
            who: "https://github.com/o/r/actions/runs/1/attempts/1".into(),
            host: "job deploy on runner pid 7".into(),
            identity: "id-1".into(),
            process: Some("boot/1/7/100".into()),
        };
        let now = at("2026-01-01T00:00:00Z");
        let taken = claimed(
            lease(serde_json::json!({ "metadata": { "name": "fleet-x", "resourceVersion": "7" } })),
            &claimant,
            Duration::from_secs(30),
            now,
        );
        assert_eq!(taken.metadata.resource_version.as_deref(), Some("7"));
        let spec = taken.spec.as_ref().unwrap();
        assert_eq!(spec.holder_identity.as_deref(), Some("id-1"));
        assert_eq!(spec.lease_duration_seconds, Some(30));
        assert_eq!(spec.lease_transitions, Some(1));
        let annotations = taken.metadata.annotations.as_ref().unwrap();
        assert_eq!(
            annotations.get(PROCESS_ANNOTATION).map(String::as_str),
            Some("boot/1/7/100")
        );
        let holder = holder_of(&taken, plus(now, Duration::from_secs(75))).unwrap();
        assert_eq!(holder.holder, claimant.who);
        assert_eq!(holder.since.as_deref(), Some("2026-01-01T00:00:00Z"));
        assert!(holder.expired);
        assert_eq!(
            holder.to_string(),
            "https://github.com/o/r/actions/runs/1/attempts/1 (job deploy on runner pid 7) since 2026-01-01T00:00:00Z (1m15s ago), not renewed since 2026-01-01T00:00:00Z: that apply stopped without releasing it, and the next apply takes it over"
        );

        // A renewal by the same holder keeps acquireTime and transitions.
        let renewed = claimed(
            taken.clone(),
            &claimant,
            Duration::from_secs(30),
            plus(now, Duration::from_secs(10)),
        );
        let spec = renewed.spec.as_ref().unwrap();
        assert_eq!(spec.acquire_time, Some(MicroTime(now)));
        assert_eq!(spec.lease_transitions, Some(1));

        let free = emptied(renewed);
        assert!(holder_of(&free, now).is_none());
        assert_eq!(free.spec.as_ref().unwrap().lease_transitions, Some(1));
        assert!(
            !free.metadata.annotations.unwrap().keys().any(|key| [
                HOLDER_ANNOTATION,
                PROCESS_ANNOTATION
            ]
            .contains(&key.as_str()))
        );
    }
}
