//! The lock as it stands, read without taking it (for `plan`'s header and
//! `fleet unlock`), and emptied by hand (`fleet unlock`) only if it has not
//! changed since it was read.

use k8s_openapi::api::coordination::v1::Lease;

use super::holder::{Holder, holder_of};
use super::lease::{Place, status_code, write_params};
use super::record::emptied;
use crate::client::kube::Cluster;

/// The lock as it stands, for `plan` and `unlock`.
pub(crate) struct Standing {
    /// Who holds it; `None` when nobody does (or there is no Lease yet).
    pub holder: Option<Holder>,
    pub lease: String,
    read: Option<Lease>,
    place: Place,
}

impl Standing {
    /// Whether the Lease exists (held or not).
    pub(crate) fn exists(&self) -> bool {
        self.read.is_some()
    }
}

/// Reads the lock without taking it.
pub(crate) async fn standing(
    cluster: &Cluster,
    fleet: &str,
    namespace: &str,
) -> anyhow::Result<Standing> {
    let place = Place::new(cluster, fleet, namespace);
    let (lease, clock) = place.read().await.map_err(place.explained("reading"))?;
    Ok(Standing {
        holder: lease.as_ref().and_then(|l| holder_of(l, clock.now())),
        lease: format!("{}/{}", place.namespace, place.name),
        read: lease,
        place,
    })
}

/// Empties the Lease as it was read in `standing`: if it changed since (a
/// renewal, another holder), nothing is changed.
pub(crate) async fn remove(standing: Standing) -> anyhow::Result<()> {
    let Standing { read, place, .. } = standing;
    let params = write_params();
    let Some(lease) = read else {
        return Ok(());
    };
    match place
        .api
        .replace(&place.name, &params, &emptied(lease))
        .await
    {
        Ok(_) => Ok(()),
        Err(err) if status_code(&err) == Some(409) => anyhow::bail!(
            "the deploy lock (Lease {}/{}) changed since it was read (renewed, or taken by another apply): nothing was changed. Run `fleet unlock` again to see who holds it now",
            place.namespace,
            place.name
        ),
        Err(err) => Err(place.explained("removing")(err)),
    }
}
