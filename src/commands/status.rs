//! `fleet status`: reads the live fleet (one LIST per kind, one JetStream
//! consumer info per consumer), never writes, takes no lock.

use std::collections::BTreeMap;

use futures::StreamExt as _;
use kube::Api;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams};
use serde_json::Value;

use super::ExitStatus;
use crate::cli::{PlanFormat, StatusArgs};
use crate::client::jetstream::JetStream;
use crate::client::kube::Cluster;
use crate::ownership;
use crate::plan::selection;
use crate::report::status::{self, Header, Read};

pub(super) async fn run(args: &StatusArgs) -> anyhow::Result<ExitStatus> {
    let Some(mut fleet) = super::plan::definition(&args.cluster)?.load()? else {
        return Ok(ExitStatus::Failure);
    };
    let selection = super::plan::selection(&args.cluster.targeting);
    let mut targeted = None;
    if !selection.is_everything() {
        let defined = fleet
            .agents
            .iter()
            .map(|agent| (agent.role.clone(), selection::agent_labels(agent)))
            .collect();
        let targeting = selection::resolve(&selection, &defined, &Default::default())?;
        fleet
            .agents
            .retain(|agent| targeting.agents.contains(&agent.role));
        targeted = Some(targeting);
    }
    let nats = super::plan::nats(&args.cluster.nats);
    let nats_url = nats
        .url
        .clone()
        .or_else(|| fleet.endpoints.nats_url.clone());
    let cluster = Cluster::connect(&fleet.endpoints).await?;
    let namespace = fleet.namespace.as_str();
    let parent = ownership::applyset_parent_name(&fleet.name);
    let selector = format!(
        "{}={}",
        ownership::PART_OF_LABEL,
        ownership::applyset_id(&parent, namespace)
    );
    let consumers: Vec<(String, String)> = fleet
        .agents
        .iter()
        .flat_map(|a| a.all_consumers())
        .map(|c| (c.stream.clone(), c.name.clone()))
        .collect();
    let read_consumers = async {
        match &nats_url {
            Some(url) => {
                read_consumers(
                    &nats,
                    url,
                    &consumers,
                    usize::from(args.cluster.concurrency),
                )
                .await
            }
            None => consumers
                .iter()
                .map(|c| (c.clone(), Err("no NATS URL is set".to_string())))
                .collect(),
        }
    };
    let client = &cluster.client;
    let (deployments, hpas, scaled_objects, parent_secret, consumers) = tokio::join!(
        list(
            client,
            namespace,
            ("apps", "v1", "Deployment", "deployments"),
            Some(&selector)
        ),
        // KEDA's HPAs carry no fleet label: every HPA of the namespace.
        list(
            client,
            namespace,
            (
                "autoscaling",
                "v2",
                "HorizontalPodAutoscaler",
                "horizontalpodautoscalers"
            ),
            None
        ),
        list(
            client,
            namespace,
            ("keda.sh", "v1alpha1", "ScaledObject", "scaledobjects"),
            Some(&selector)
        ),
        get_parent(client, namespace, &parent),
        read_consumers,
    );
    // Nothing of the cluster could be read: that is a failure, not a status.
    if let (Err(deployments), Err(_), Err(_), Err(_)) =
        (&deployments, &hpas, &scaled_objects, &parent_secret)
    {
        anyhow::bail!("reading the fleet on {}: {deployments}", cluster.describe());
    }
    let read = Read {
        deployments,
        hpas,
        scaled_objects,
        parent: parent_secret,
        consumers,
    };
    let header = Header {
        fleet: fleet.name.clone(),
        environment: fleet.environment.clone(),
        namespace: fleet.namespace.clone(),
        kube_context: cluster.context.clone(),
        nats_url: nats_url.as_deref().map(crate::redact::url),
        targeting: targeted,
    };
    let report = status::build(&fleet, header, &read);
    let mut stdout = Vec::new();
    match args.format {
        PlanFormat::Text => status::text(&report, &mut stdout)?,
        PlanFormat::Json => status::json(&report, &mut stdout)?,
        PlanFormat::Markdown => status::markdown(&report, &mut stdout)?,
    }
    crate::report::to_stdout(&stdout)?;
    Ok(ExitStatus::Success)
}

/// Why a kind could not be read, in words.
fn reason(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(status) if status.code == 403 => {
            format!(
                "forbidden to this identity (`fleet rbac --for read-only` prints the rights): {}",
                status.message
            )
        }
        kube::Error::Api(status) if status.code == 404 => {
            "not installed in the cluster".to_string()
        }
        other => other.to_string(),
    }
}

async fn list(
    client: &kube::Client,
    namespace: &str,
    (group, version, kind, plural): (&str, &str, &str, &str),
    selector: Option<&str>,
) -> Result<Vec<Value>, String> {
    let resource =
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
    let mut params = ListParams::default();
    if let Some(selector) = selector {
        params = params.labels(selector);
    }
    let mut items = Vec::new();
    loop {
        let page = api
            .list(&params)
            .await
            .map_err(|e| format!("listing {kind}s: {}", reason(&e)))?;
        for item in page.items {
            items.push(serde_json::to_value(item).map_err(|e| e.to_string())?);
        }
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => return Ok(items),
        }
    }
}

async fn get_parent(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<Option<Value>, String> {
    let resource =
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("", "v1", "Secret"), "secrets");
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
    crate::client::kube::get_json(client, &api, name)
        .await
        .map_err(|e| format!("reading Secret {namespace}/{name}: {}", reason(&e)))
}

/// Consumer info of each consumer, `concurrency` requests at once; when
/// NATS cannot be reached, each holds why (their counts are unknown, never 0).
async fn read_consumers(
    nats: &crate::deploy::Nats,
    url: &str,
    consumers: &[(String, String)],
    concurrency: usize,
) -> BTreeMap<(String, String), Result<Value, String>> {
    let all_failed = |reason: String| {
        consumers
            .iter()
            .map(|c| (c.clone(), Err(reason.clone())))
            .collect()
    };
    let connection = match crate::deploy::nats_connection(nats, url) {
        Ok(connection) => connection,
        Err(err) => return all_failed(format!("{err:#}")),
    };
    let js = match JetStream::connect(&connection).await {
        Ok(js) => js,
        Err(err) => return all_failed(format!("{err:#}")),
    };
    let js = &js;
    futures::stream::iter(consumers)
        .map(|(stream, name)| async move {
            let info = js
                .read(
                    &format!("CONSUMER.INFO.{stream}.{name}"),
                    &serde_json::json!({}),
                    &format!("reading consumer {stream}/{name}"),
                )
                .await
                .map_err(|err| format!("{err:#}"));
            ((stream.clone(), name.clone()), info)
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await
}
