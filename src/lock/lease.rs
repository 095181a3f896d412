//! The Lease through the API server: where it lives, reading it with the
//! server's clock, and giving it up if still held. Every write carries the
//! resourceVersion (or uid) it was read at.

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::jiff::Timestamp;
use kube::Resource as _;
use kube::api::{Api, PostParams};

use super::clock::ServerClock;
use super::decision::Observed;
use super::record::emptied;
use super::{MAX_CONFLICTS, lease_name};
use crate::client::kube::Cluster;
use crate::client::{explain, retry};
use crate::ownership;
use crate::render::ObjectRef;

/// Where the lock lives.
#[derive(Clone)]
pub(super) struct Place {
    pub(super) api: Api<Lease>,
    pub(super) client: kube::Client,
    pub(super) cluster: Cluster,
    pub(super) namespace: String,
    pub(super) name: String,
    pub(super) fleet: String,
}

impl Place {
    pub(super) fn new(cluster: &Cluster, fleet: &str, namespace: &str) -> Place {
        Place {
            api: Api::namespaced(cluster.client.clone(), namespace),
            client: cluster.client.clone(),
            cluster: cluster.clone(),
            namespace: namespace.to_string(),
            name: lease_name(fleet),
            fleet: fleet.to_string(),
        }
    }

    pub(super) fn id(&self) -> ObjectRef {
        ObjectRef {
            api_version: "coordination.k8s.io/v1".into(),
            kind: "Lease".into(),
            namespace: Some(self.namespace.clone()),
            name: self.name.clone(),
        }
    }

    pub(super) fn explained(
        &self,
        action: &'static str,
    ) -> impl Fn(kube::Error) -> anyhow::Error + '_ {
        move |err| {
            explain::client_error(err, action, &self.id(), &self.cluster)
                .context(format!("{action} the deploy lock of fleet {}", self.fleet))
        }
    }

    /// The Lease (`None` when there is none, or no namespace), and the
    /// server's clock as its answer showed it. A raw GET, for the `Date`
    /// header.
    pub(super) async fn read(&self) -> Result<(Option<Lease>, ServerClock), kube::Error> {
        retry::kube(|| async {
            let request = kube::core::Request::new(Lease::url_path(&(), Some(&self.namespace)))
                .get(&self.name, &kube::api::GetParams::default())
                .map_err(kube::Error::BuildRequest)?;
            let response = self
                .client
                .send(request.map(kube::client::Body::from))
                .await?;
            let clock = ServerClock::from_date_header(
                response.headers().get("date").and_then(|d| d.to_str().ok()),
                Timestamp::now(),
            );
            let status = response.status();
            let body = response.into_body().collect_bytes().await?;
            if status.is_success() {
                let lease = serde_json::from_slice(&body).map_err(kube::Error::SerdeError)?;
                return Ok((Some(lease), clock));
            }
            if status.as_u16() == 404 {
                return Ok((None, clock));
            }
            let failure =
                serde_json::from_slice::<kube::core::Status>(&body).unwrap_or_else(|_| {
                    kube::core::Status::failure(String::from_utf8_lossy(&body).trim(), "Unknown")
                        .with_code(status.as_u16())
                });
            Err(kube::Error::Api(failure.boxed()))
        })
        .await
    }

    /// Empties the Lease if `identity` still holds it.
    pub(super) async fn empty_if_held(&self, identity: &str) -> Result<(), kube::Error> {
        let params = write_params();
        for _ in 0..MAX_CONFLICTS {
            let Some(lease) = retry::kube(|| self.api.get_opt(&self.name)).await? else {
                return Ok(());
            };
            if Observed::of(&lease).identity.as_deref() != Some(identity) {
                // Not ours any more (taken over, or removed by hand).
                return Ok(());
            }
            let body = emptied(lease);
            match retry::kube(|| self.api.replace(&self.name, &params, &body)).await {
                Err(err) if status_code(&err) == Some(409) => continue,
                result => return result.map(|_| ()),
            }
        }
        Ok(())
    }

    /// Deletes the Lease if `identity` still holds it. Gone already (its
    /// namespace deleted) is what deleting wanted.
    pub(super) async fn delete_if_held(&self, identity: &str) -> Result<(), kube::Error> {
        for _ in 0..MAX_CONFLICTS {
            let Some(lease) = retry::kube(|| self.api.get_opt(&self.name)).await? else {
                return Ok(());
            };
            if Observed::of(&lease).identity.as_deref() != Some(identity) {
                return Ok(());
            }
            let params = kube::api::DeleteParams {
                preconditions: Some(kube::api::Preconditions {
                    uid: lease.metadata.uid.clone(),
                    resource_version: lease.metadata.resource_version.clone(),
                }),
                ..kube::api::DeleteParams::default()
            };
            match retry::kube(|| self.api.delete(&self.name, &params)).await {
                Err(err) if status_code(&err) == Some(409) => continue,
                Err(err) if status_code(&err) == Some(404) => return Ok(()),
                result => return result.map(|_| ()),
            }
        }
        Ok(())
    }
}

pub(super) fn write_params() -> PostParams {
    PostParams {
        dry_run: false,
        field_manager: Some(ownership::FIELD_MANAGER.into()),
    }
}

pub(super) fn status_code(err: &kube::Error) -> Option<u16> {
    match err {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}
