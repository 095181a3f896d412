//! Who holds the lock, as people read it: in the plan's header and JSON,
//! in `fleet unlock`, and in the messages of an apply that waits or takes
//! it over.

use std::fmt;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::decision::Observed;
use super::record::{HOLDER_ANNOTATION, HOST_ANNOTATION};

/// A held lock as others see it: who holds it, where, and since when. Part
/// of the plan (`lock` in its JSON) when an apply holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// The CI run or `user@host`.
    pub holder: String,
    /// The CI job, the machine and the process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The Lease's holderIdentity.
    pub identity: String,
    /// When it was taken (RFC 3339, the API server's time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// When it was last renewed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renewed: Option<String>,
    pub ttl_seconds: u64,
    /// The holder stopped renewing it: the next apply takes it over.
    pub expired: bool,
    /// How long it had been held when it was read (for messages only).
    #[serde(skip)]
    pub held_for: Option<Duration>,
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.holder)?;
        if let Some(host) = &self.host {
            write!(f, " ({host})")?;
        }
        if let Some(since) = &self.since {
            write!(f, " since {since}")?;
            if let Some(held_for) = self.held_for {
                write!(f, " ({} ago)", human(held_for))?;
            }
        }
        if self.expired {
            write!(
                f,
                ", not renewed since {}: that apply stopped without releasing it, and the next apply takes it over",
                self.renewed.as_deref().unwrap_or("it was taken")
            )?;
        }
        Ok(())
    }
}

/// `1m12s`, `3h5m`, `40s`.
pub(super) fn human(duration: Duration) -> String {
    let secs = duration.as_secs();
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m{}s", secs / 60, secs % 60),
        _ => format!("{}h{}m", secs / 3600, secs % 3600 / 60),
    }
}

/// Who holds the Lease, if anyone, as read at server time `now`.
pub(crate) fn holder_of(lease: &Lease, now: Timestamp) -> Option<Holder> {
    let observed = Observed::of(lease);
    let identity = observed.identity.clone()?;
    let spec = lease.spec.as_ref()?;
    let annotations = lease.metadata.annotations.as_ref();
    let annotation = |key: &str| annotations.and_then(|a| a.get(key)).cloned();
    let seconds = |t: &MicroTime| Timestamp::from_second(t.0.as_second()).unwrap_or(t.0);
    Some(Holder {
        holder: annotation(HOLDER_ANNOTATION).unwrap_or_else(|| identity.clone()),
        host: annotation(HOST_ANNOTATION),
        since: spec.acquire_time.as_ref().map(|t| seconds(t).to_string()),
        renewed: spec.renew_time.as_ref().map(|t| seconds(t).to_string()),
        ttl_seconds: observed.duration.as_secs(),
        expired: observed.expired(now),
        held_for: spec
            .acquire_time
            .as_ref()
            .and_then(|t| Duration::try_from(now.duration_since(t.0)).ok()),
        identity,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_people_write_them() {
        assert_eq!(human(Duration::from_secs(40)), "40s");
        assert_eq!(human(Duration::from_secs(72)), "1m12s");
        assert_eq!(human(Duration::from_secs(3 * 3600 + 300)), "3h5m");
    }
}
