//! Reading JetStream: the raw JSON of every stream and consumer (so fields a
//! typed client would not know are never lost), through
//! [`crate::client::jetstream`].

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::client::jetstream::{JetStream, READ_ATTEMPTS};
use crate::ownership;

/// A stream as the server reports it.
#[derive(Debug, Clone)]
pub struct LiveStream {
    pub config: Value,
    /// `None` when the server did not report it: never read as zero.
    pub messages: Option<u64>,
    pub bytes: u64,
    pub consumers: BTreeMap<String, LiveConsumer>,
}

#[derive(Debug, Clone)]
pub struct LiveConsumer {
    pub config: Value,
    /// Messages not yet delivered plus delivered and not acknowledged;
    /// `None` when the server did not report them.
    pub pending: Option<u64>,
}

/// Every stream on the server, by name, with its consumers.
pub type LiveJetStream = BTreeMap<String, LiveStream>;

/// Whether a stream or consumer config carries this owner's mark
/// ([`ownership::jetstream_owner`]).
pub fn is_owned(config: &Value, owner: &str) -> bool {
    config["metadata"][ownership::JETSTREAM_OWNER_KEY] == owner
}

/// Reads every stream (STREAM.LIST, a page at a time) and the consumers of
/// the streams fleet cares about: those it owns or wants.
pub async fn read(
    js: &JetStream,
    owner: &str,
    desired_streams: &[&str],
) -> anyhow::Result<LiveJetStream> {
    read_consumers_of(js, |name, config| {
        is_owned(config, owner) || desired_streams.contains(&name)
    })
    .await
}

/// Every stream with every consumer (for `fleet import`).
pub async fn read_all(js: &JetStream) -> anyhow::Result<LiveJetStream> {
    read_consumers_of(js, |_, _| true).await
}

/// Every stream, and the consumers of those `wanted` says.
async fn read_consumers_of(
    js: &JetStream,
    wanted: impl Fn(&str, &Value) -> bool,
) -> anyhow::Result<LiveJetStream> {
    let mut streams = LiveJetStream::new();
    let infos = list_all(js, "STREAM.LIST", "streams", "listing JetStream streams").await?;
    for info in &infos {
        let name = info["config"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        streams.insert(
            name,
            LiveStream {
                config: info["config"].clone(),
                messages: info["state"]["messages"].as_u64(),
                bytes: info["state"]["bytes"].as_u64().unwrap_or(0),
                consumers: BTreeMap::new(),
            },
        );
    }
    for (name, stream) in streams.iter_mut() {
        if !wanted(name, &stream.config) {
            continue;
        }
        let infos = list_all(
            js,
            &format!("CONSUMER.LIST.{name}"),
            "consumers",
            &format!("listing the consumers of stream {name}"),
        )
        .await?;
        for info in &infos {
            let consumer = info["name"].as_str().unwrap_or_default().to_string();
            let pending = info["num_pending"]
                .as_u64()
                .zip(info["num_ack_pending"].as_u64())
                .map(|(waiting, unacknowledged)| waiting + unacknowledged);
            stream.consumers.insert(
                consumer,
                LiveConsumer {
                    config: info["config"].clone(),
                    pending,
                },
            );
        }
    }
    Ok(streams)
}

/// What the NATS account holds and may hold (`$JS.API.INFO`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Account {
    pub streams: u64,
    pub consumers: u64,
    /// `None` when unlimited, or not said at the top level (an account
    /// with limits per replica tier).
    pub max_streams: Option<u64>,
    pub max_consumers: Option<u64>,
}

/// The account's usage and limits.
pub async fn account(js: &JetStream) -> anyhow::Result<Account> {
    let info = js
        .read("INFO", &json!({}), "reading the JetStream account's limits")
        .await?;
    // -1 is unlimited; 0 at the top level means the limits are per tier.
    let limit = |key: &str| {
        info["limits"][key]
            .as_i64()
            .filter(|m| *m > 0)
            .map(|m| m as u64)
    };
    Ok(Account {
        streams: info["streams"].as_u64().unwrap_or(0),
        consumers: info["consumers"].as_u64().unwrap_or(0),
        max_streams: limit("max_streams"),
        max_consumers: limit("max_consumers"),
    })
}

/// Every item of a paged JetStream list. A page that names `missing` items
/// (in a cluster, streams whose leader is being elected) is read again, and
/// in the end refused: what the server could not report is not absent, and
/// planning it as absent would create or destroy what exists.
async fn list_all(
    js: &JetStream,
    subject: &str,
    key: &str,
    doing: &str,
) -> anyhow::Result<Vec<Value>> {
    let attempt = || async {
        let mut items = Vec::new();
        loop {
            let mut page = js
                .read(subject, &json!({ "offset": items.len() }), doing)
                .await?;
            let missing: Vec<String> = page["missing"]
                .as_array()
                .map(|names| {
                    names
                        .iter()
                        .filter_map(|n| n.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            if !missing.is_empty() {
                return Err(anyhow::Error::new(Missing(missing)).context(doing.to_string()));
            }
            let total = page["total"].as_u64().unwrap_or(0);
            let page_items = match page[key].take() {
                Value::Array(page_items) => page_items,
                _ => Vec::new(),
            };
            let done = page_items.is_empty();
            items.extend(page_items);
            if done || items.len() as u64 >= total {
                return Ok(items);
            }
        }
    };
    crate::client::retry::with_backoff(
        READ_ATTEMPTS,
        |err: &anyhow::Error| err.downcast_ref::<Missing>().is_some(),
        attempt,
    )
    .await
}

/// Items a JetStream list could not report this time.
#[derive(Debug, thiserror::Error)]
#[error(
    "the server could not report {} right now (a JetStream cluster electing a leader?); nothing is planned from an incomplete list, try again",
    .0.join(", ")
)]
pub struct Missing(pub Vec<String>);
