//! The Kubernetes API client every stage talks through: the connection
//! (kubeconfig context, timeouts), and requests whose answers are read as
//! the text the server wrote. `live` reads through it, `apply` writes
//! through it; neither knows the other.

use anyhow::Context as _;
use kube::api::{ApiResource, DynamicObject, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use serde_json::Value;

use crate::{model, redact};

/// A cluster connection and where it points, for messages.
#[derive(Clone)]
pub struct Cluster {
    pub client: Client,
    /// The kube context name (or "in-cluster").
    pub context: String,
    pub server: String,
}

impl Cluster {
    /// Connects as kubectl would: the named context of the kubeconfig
    /// (KUBECONFIG or ~/.kube/config), else the current context, else the
    /// in-cluster service account.
    pub async fn connect(endpoints: &model::Endpoints) -> anyhow::Result<Cluster> {
        let (config, context) = match &endpoints.kube_context {
            Some(context) => {
                let kubeconfig = Kubeconfig::read()
                    .context("reading the kubeconfig (KUBECONFIG or ~/.kube/config)")?;
                let options = KubeConfigOptions {
                    context: Some(context.clone()),
                    ..KubeConfigOptions::default()
                };
                let config = Config::from_custom_kubeconfig(kubeconfig, &options)
                    .await
                    .with_context(|| format!("loading kube context `{context}`"))?;
                (config, context.clone())
            }
            None => {
                let context = Kubeconfig::read()
                    .ok()
                    .and_then(|k| k.current_context)
                    .unwrap_or_else(|| "in-cluster".into());
                let config = Config::infer()
                    .await
                    .context("finding a kubeconfig or in-cluster configuration")?;
                (config, context)
            }
        };
        let mut config = config;
        // Every request has a deadline: a server that stops answering
        // (stopped, partitioned) fails the request, which is retried where
        // that is safe, instead of hanging the run.
        config.connect_timeout = Some(std::time::Duration::from_secs(10));
        config.read_timeout = Some(std::time::Duration::from_secs(30));
        config.write_timeout = Some(std::time::Duration::from_secs(30));
        let server = redact::url(&config.cluster_url.to_string());
        let client = Client::try_from(config)
            .with_context(|| format!("building a client for kube context `{context}`"))?;
        Ok(Cluster {
            client,
            context,
            server,
        })
    }

    /// Says which server and context a failed request was for.
    pub fn describe(&self) -> String {
        format!("kube context `{}` ({})", self.context, self.server)
    }
}

/// A GET whose answer is read as the server wrote it. Plain JSON, not a
/// typed object: the server's key order is kept, so a diff between a read
/// object and a dry run's answer shows only what changed, and no typed round
/// trip is paid. `None` when there is no such object.
pub async fn get_json(
    client: &Client,
    api: &Api<DynamicObject>,
    name: &str,
) -> Result<Option<Value>, kube::Error> {
    let request = kube::core::Request::new(api.resource_url())
        .get(name, &kube::api::GetParams::default())
        .map_err(kube::Error::BuildRequest)?;
    match client.request_text(request).await {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(kube::Error::SerdeError),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(None),
        Err(err) => Err(err),
    }
}

/// A page of a LIST, as the text the server wrote: `live` reads it item
/// by item.
pub async fn list_text(
    client: &Client,
    api: &Api<DynamicObject>,
    params: &ListParams,
) -> Result<String, kube::Error> {
    let request = kube::core::Request::new(api.resource_url())
        .list(params)
        .map_err(kube::Error::BuildRequest)?;
    client.request_text(request).await
}

/// A PATCH (a server-side apply, or its dry run), its answer as the text the
/// server wrote: parse it as JSON for the reason [`get_json`] gives, or
/// leave it unread when only the status matters.
pub async fn patch_text<P: serde::Serialize>(
    client: &Client,
    api: &Api<DynamicObject>,
    name: &str,
    params: &kube::api::PatchParams,
    patch: &kube::api::Patch<P>,
) -> Result<String, kube::Error> {
    let request = kube::core::Request::new(api.resource_url())
        .patch(name, params, patch)
        .map_err(kube::Error::BuildRequest)?;
    client.request_text(request).await
}

/// A kind's API as the cluster serves it.
#[derive(Clone, Debug)]
pub struct Kind {
    pub resource: ApiResource,
    pub namespaced: bool,
}

impl Kind {
    pub fn api(&self, client: &Client, namespace: Option<&str>) -> Api<DynamicObject> {
        match (self.namespaced, namespace) {
            (true, Some(ns)) => Api::namespaced_with(client.clone(), ns, &self.resource),
            _ => Api::all_with(client.clone(), &self.resource),
        }
    }
}

/// A kind by (apiVersion, kind).
pub type KindKey = (String, String);

/// The deploy lock's kind, which fleet does not render: a tear-down
/// deletes its Lease, and asks whether it may as for the rest.
pub fn lease_kind() -> Kind {
    Kind {
        resource: ApiResource::erase::<k8s_openapi::api::coordination::v1::Lease>(&()),
        namespaced: true,
    }
}
