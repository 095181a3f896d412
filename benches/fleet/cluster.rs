//! What the benchmark does in-process against the local control plane: the
//! floor (one LIST per kind plus the JetStream reads), the dry-run limit,
//! and setting up and tearing down namespaces and streams.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use async_nats::jetstream::ErrorCode;
use async_nats::jetstream::context::DeleteStreamErrorKind;
use futures::{StreamExt as _, TryStreamExt as _};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::ApiResource;
use kube::discovery::{Discovery, Scope};
use kube::{Client, Config};
use serde_json::Value;

pub(crate) const CONTEXT: &str = "fleet-local";

/// A fresh client of the `fleet-local` context, as each fleet process
/// makes its own.
pub(crate) async fn client(kubeconfig: &Path) -> anyhow::Result<Client> {
    let kubeconfig = Kubeconfig::read_from(kubeconfig)?;
    let options = KubeConfigOptions {
        context: Some(CONTEXT.into()),
        ..KubeConfigOptions::default()
    };
    let config = Config::from_custom_kubeconfig(kubeconfig, &options).await?;
    Ok(Client::try_from(config)?)
}

/// The kinds the cluster serves, by apiVersion and kind.
pub(crate) struct Kinds(BTreeMap<(String, String), (ApiResource, bool)>);

impl Kinds {
    pub(crate) async fn discover(client: &Client) -> anyhow::Result<Kinds> {
        let discovery = Discovery::new(client.clone()).run().await?;
        let mut kinds = BTreeMap::new();
        for group in discovery.groups() {
            for (resource, capabilities) in group.recommended_resources() {
                let namespaced = capabilities.scope == Scope::Namespaced;
                let key = (resource.api_version.clone(), resource.kind.clone());
                kinds.insert(key, (resource, namespaced));
            }
        }
        // Kinds served in a version other than the recommended one too.
        for group in discovery.groups() {
            for version in group.versions() {
                for (resource, capabilities) in group.versioned_resources(version) {
                    let namespaced = capabilities.scope == Scope::Namespaced;
                    let key = (resource.api_version.clone(), resource.kind.clone());
                    kinds.entry(key).or_insert((resource, namespaced));
                }
            }
        }
        Ok(Kinds(kinds))
    }

    pub(crate) fn of(&self, object: &Value) -> Option<&(ApiResource, bool)> {
        let api_version = object["apiVersion"].as_str()?;
        let kind = object["kind"].as_str()?;
        self.0.get(&(api_version.to_string(), kind.to_string()))
    }

    /// The API of an object's kind, in its namespace if it has one.
    pub(crate) fn api(&self, client: &Client, object: &Value) -> Option<Api<DynamicObject>> {
        let (resource, namespaced) = self.of(object)?;
        Some(match object["metadata"]["namespace"].as_str() {
            Some(namespace) if *namespaced => {
                Api::namespaced_with(client.clone(), namespace, resource)
            }
            _ => Api::all_with(client.clone(), resource),
        })
    }
}

fn name(object: &Value) -> &str {
    object["metadata"]["name"].as_str().unwrap_or_default()
}

/// The provenance annotations fleet apply put on the live ApplySet parent
/// (they are not in the rendering): kubectl diff needs them, or it would
/// show their removal.
pub(crate) async fn live_annotations(
    client: &Client,
    kinds: &Kinds,
    object: &Value,
) -> anyhow::Result<serde_json::Map<String, Value>> {
    let api = kinds.api(client, object).context("the parent's kind")?;
    let live = api.get(name(object)).await?;
    Ok(live
        .metadata
        .annotations
        .unwrap_or_default()
        .into_iter()
        .filter(|(key, _)| fleet::provenance::ANNOTATIONS.contains(&key.as_str()))
        .map(|(key, value)| (key, Value::from(value)))
        .collect())
}

/// The floor of a no-op plan: connecting to both servers, one LIST per
/// namespaced kind (by fleet's ownership label, `concurrency` at a time, as
/// fleet reads), and, meanwhile, the stream's info and its consumers. Times
/// `(total, lists, jetstream)`.
pub(crate) async fn floor(
    kubeconfig: &Path,
    nats_url: &str,
    kinds: &[ApiResource],
    namespace: &str,
    selector: &str,
    stream: &str,
    concurrency: usize,
) -> anyhow::Result<(Duration, Duration, Duration)> {
    let started = Instant::now();
    let lists = async {
        let client = client(kubeconfig).await?;
        let params = ListParams::default().labels(selector);
        futures::stream::iter(kinds)
            .map(|resource| {
                let api: Api<DynamicObject> =
                    Api::namespaced_with(client.clone(), namespace, resource);
                let params = params.clone();
                async move { api.list(&params).await.map(|list| list.items.len()) }
            })
            .buffer_unordered(concurrency)
            .try_collect::<Vec<usize>>()
            .await?;
        anyhow::Ok(started.elapsed())
    };
    let jetstream = async {
        let nats = async_nats::connect(nats_url).await?;
        let context = async_nats::jetstream::new(nats);
        let info = context.get_stream(stream).await?;
        let consumers: Vec<_> = info.consumers().try_collect().await?;
        anyhow::ensure!(!consumers.is_empty(), "stream {stream} has no consumers");
        anyhow::Ok(started.elapsed())
    };
    let (lists, jetstream) = tokio::try_join!(lists, jetstream)?;
    Ok((started.elapsed(), lists, jetstream))
}

/// What the dry-run limit measurement saw.
pub struct DryRuns {
    pub requests: usize,
    pub errors: usize,
    pub first_error: Option<String>,
    pub elapsed: Duration,
}

impl DryRuns {
    pub fn per_second(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }
}

/// Sends `count` server-side dry-run applies (field manager `fleet`) of
/// `objects`, round robin, `concurrency` in flight: the most a plan that
/// dry-runs objects could get from this API server.
pub(crate) async fn dry_runs(
    client: &Client,
    kinds: &Kinds,
    objects: &[Value],
    count: usize,
    concurrency: usize,
) -> anyhow::Result<DryRuns> {
    let params = PatchParams::apply(fleet::ownership::FIELD_MANAGER).dry_run();
    let started = Instant::now();
    let results: Vec<Result<(), String>> =
        futures::stream::iter(objects.iter().cycle().take(count))
            .map(|object| {
                let api = kinds.api(client, object);
                let params = &params;
                async move {
                    let api = api.ok_or_else(|| format!("{} is not served", object["kind"]))?;
                    api.patch(name(object), params, &Patch::Apply(object))
                        .await
                        .map(drop)
                        .map_err(|err| format!("{} {}: {err}", object["kind"], name(object)))
                }
            })
            .buffer_unordered(concurrency)
            .collect()
            .await;
    let elapsed = started.elapsed();
    let mut errors = results.into_iter().filter_map(Result::err);
    let first_error = errors.next();
    Ok(DryRuns {
        requests: count,
        errors: first_error.iter().count() + errors.count(),
        first_error,
        elapsed,
    })
}

/// Waits (up to `timeout`) until the controllers have made a Pod for every
/// replica of every Deployment in `namespace`, so that their work after an
/// apply does not overlap the next measurement. Pods may stay Pending (the
/// kwok nodes hold 330): what matters is that the creating is done.
pub(crate) async fn settle(
    client: &Client,
    namespace: &str,
    timeout: Duration,
) -> anyhow::Result<bool> {
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(client.clone(), namespace);
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client.clone(), namespace);
    let started = Instant::now();
    loop {
        let wanted: i64 = deployments
            .list(&ListParams::default())
            .await?
            .items
            .iter()
            .map(|d| i64::from(d.spec.replicas.unwrap_or(1)))
            .sum();
        let made = pods
            .list_metadata(&ListParams::default())
            .await?
            .items
            .len() as i64;
        if made >= wanted {
            return Ok(true);
        }
        if started.elapsed() > timeout {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Deletes a namespace (not waiting); gone already is fine.
pub(crate) async fn delete_namespace(client: &Client, namespace: &str) -> anyhow::Result<()> {
    let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    match api.delete(namespace, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(err) => Err(err.into()),
    }
}

/// Waits until a namespace is gone; false when `timeout` passed first.
pub(crate) async fn wait_gone(
    client: &Client,
    namespace: &str,
    timeout: Duration,
) -> anyhow::Result<bool> {
    let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let started = Instant::now();
    while api.get_opt(namespace).await?.is_some() {
        if started.elapsed() > timeout {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(true)
}

/// Deletes a JetStream stream (and so its consumers); missing is fine.
pub(crate) async fn delete_stream(nats_url: &str, stream: &str) -> anyhow::Result<()> {
    let nats = async_nats::connect(nats_url).await?;
    let context = async_nats::jetstream::new(nats);
    match context.delete_stream(stream).await {
        Ok(_) => Ok(()),
        Err(err) => match err.kind() {
            DeleteStreamErrorKind::JetStream(error)
                if error.error_code() == ErrorCode::STREAM_NOT_FOUND =>
            {
                Ok(())
            }
            _ => Err(err.into()),
        },
    }
}

/// The nats-server version, from the INFO it greets a client with.
pub(crate) async fn nats_version(nats_url: &str) -> anyhow::Result<String> {
    let nats = async_nats::connect(nats_url).await?;
    Ok(nats.server_info().version)
}

/// How many streams the NATS server holds.
pub(crate) async fn stream_count(nats_url: &str) -> anyhow::Result<usize> {
    let nats = async_nats::connect(nats_url).await?;
    let names: Vec<String> = async_nats::jetstream::new(nats)
        .stream_names()
        .try_collect()
        .await?;
    Ok(names.len())
}
