//! Reading JetStream: connection (with the credentials a CI job holds), the
//! server's version, and the raw JSON of every stream and consumer, so fields
//! a typed client would not know are never lost.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use async_nats::jetstream::context::{RequestError, RequestErrorKind};
use serde_json::{Value, json};

use crate::ownership;

/// How to reach and authenticate to the NATS server.
#[derive(Debug, Clone, Default)]
pub struct Connection {
    pub url: String,
    pub creds_file: Option<PathBuf>,
    pub nkey_seed: Option<String>,
    pub token: Option<String>,
    pub user: Option<String>,
    pub password: Option<String>,
    pub tls_ca: Option<PathBuf>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// JetStream domain, or an explicit API prefix (one or the other).
    pub domain: Option<String>,
    pub api_prefix: Option<String>,
}

/// A connected JetStream API, and what it is for messages.
pub struct JetStream {
    pub context: async_nats::jetstream::Context,
    pub url: String,
    pub server_version: (u64, u64, u64),
}

/// The oldest server line that keeps stream and consumer `metadata`, which
/// carries fleet's ownership.
pub const MIN_SERVER: (u64, u64, u64) = (2, 10, 0);

impl JetStream {
    pub async fn connect(connection: &Connection) -> anyhow::Result<JetStream> {
        let url = &connection.url;
        let mut options = async_nats::ConnectOptions::new()
            .name("fleet")
            .connection_timeout(Duration::from_secs(5));
        if let Some(path) = &connection.creds_file {
            options = options
                .credentials_file(path)
                .await
                .with_context(|| format!("reading NATS credentials {}", path.display()))?;
        }
        if let Some(seed) = &connection.nkey_seed {
            options = options.nkey(seed.clone());
        }
        if let Some(token) = &connection.token {
            options = options.token(token.clone());
        }
        if let (Some(user), Some(password)) = (&connection.user, &connection.password) {
            options = options.user_and_password(user.clone(), password.clone());
        }
        if let Some(ca) = &connection.tls_ca {
            options = options.add_root_certificates(ca.clone()).require_tls(true);
        }
        if let (Some(cert), Some(key)) = (&connection.tls_cert, &connection.tls_key) {
            options = options
                .add_client_certificate(cert.clone(), key.clone())
                .require_tls(true);
        }
        let client = options.connect(url.as_str()).await.map_err(|err| {
            anyhow::anyhow!(
                "cannot connect to NATS at {url}: {err}\n  Check the URL (--nats-url, FLEET_NATS_URL or the environment's nats_url), the credentials, and that the server is up. Nothing was changed."
            )
        })?;
        let info = client.server_info();
        let server_version = parse_version(&info.version).ok_or_else(|| {
            anyhow::anyhow!(
                "NATS at {url} reports version `{}`, which fleet cannot read",
                info.version
            )
        })?;
        if server_version < MIN_SERVER {
            bail!(
                "NATS at {url} runs nats-server {}; fleet needs 2.10 or newer (stream and consumer metadata carry fleet's ownership). Nothing was changed.",
                info.version
            );
        }
        if !info.jetstream {
            bail!(
                "NATS at {url} does not have JetStream enabled; start nats-server with -js. Nothing was changed."
            );
        }
        let context = match (&connection.domain, &connection.api_prefix) {
            (Some(domain), _) => async_nats::jetstream::with_domain(client, domain),
            (None, Some(prefix)) => async_nats::jetstream::with_prefix(client, prefix),
            (None, None) => async_nats::jetstream::new(client),
        };
        Ok(JetStream {
            context,
            url: url.clone(),
            server_version,
        })
    }

    /// One JetStream API request; an API error becomes a message with the
    /// server's code and description. Not retried: a write may have happened.
    pub async fn request(
        &self,
        subject: &str,
        payload: &Value,
        doing: &str,
    ) -> anyhow::Result<Value> {
        let response = self.context.request(subject.to_string(), payload).await;
        self.answer(response, doing)
    }

    /// A request that only reads, retried when the server does not answer or
    /// says JetStream is temporarily unavailable (a cluster electing a leader).
    pub async fn read(&self, subject: &str, payload: &Value, doing: &str) -> anyhow::Result<Value> {
        let attempt = || async {
            self.answer(
                self.context.request(subject.to_string(), payload).await,
                doing,
            )
        };
        crate::retry::with_backoff(|err: &anyhow::Error| transient(err), attempt).await
    }

    fn answer(&self, response: Result<Value, RequestError>, doing: &str) -> anyhow::Result<Value> {
        let response = response
            .with_context(|| format!("{doing}: no answer from JetStream at {}", self.url))?;
        if let Some(error) = response.get("error") {
            bail!(
                "{doing}: JetStream error {} ({}): {}",
                error["err_code"],
                error["code"],
                error["description"].as_str().unwrap_or("no description")
            );
        }
        Ok(response)
    }
}

/// No answer yet, or 503 "JetStream system temporarily unavailable".
fn transient(err: &anyhow::Error) -> bool {
    let no_answer = err.downcast_ref::<RequestError>().is_some_and(|e| {
        matches!(
            e.kind(),
            RequestErrorKind::TimedOut | RequestErrorKind::NoResponders
        )
    });
    no_answer
        || err
            .downcast_ref::<ApiError>()
            .is_some_and(|e| e.code == 503)
}

/// An error answer of the JetStream API.
#[derive(Debug, thiserror::Error)]
#[error("JetStream error {err_code} ({code}): {description}")]
pub struct ApiError {
    pub code: u64,
    pub err_code: u64,
    pub description: String,
}

fn parse_version(version: &str) -> Option<(u64, u64, u64)> {
    let core = version.trim_start_matches('v').split(['-', '+']).next()?;
    let mut parts = core.split('.').map(|p| p.parse::<u64>().ok());
    Some((
        parts.next()??,
        parts.next()??,
        parts.next().flatten().unwrap_or(0),
    ))
}

/// A stream as the server reports it.
#[derive(Debug, Clone)]
pub struct LiveStream {
    pub config: Value,
    pub messages: u64,
    pub bytes: u64,
    pub consumers: BTreeMap<String, LiveConsumer>,
}

#[derive(Debug, Clone)]
pub struct LiveConsumer {
    pub config: Value,
    /// Messages not yet delivered plus delivered and not acknowledged.
    pub pending: u64,
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
    let mut streams = LiveJetStream::new();
    let mut offset = 0u64;
    loop {
        let page = js
            .read(
                "STREAM.LIST",
                &json!({ "offset": offset }),
                "listing JetStream streams",
            )
            .await?;
        let items = page["streams"].as_array().cloned().unwrap_or_default();
        for info in &items {
            let name = info["config"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            streams.insert(
                name,
                LiveStream {
                    config: info["config"].clone(),
                    messages: info["state"]["messages"].as_u64().unwrap_or(0),
                    bytes: info["state"]["bytes"].as_u64().unwrap_or(0),
                    consumers: BTreeMap::new(),
                },
            );
        }
        offset += items.len() as u64;
        if items.is_empty() || offset >= page["total"].as_u64().unwrap_or(0) {
            break;
        }
    }
    for (name, stream) in streams.iter_mut() {
        if !is_owned(&stream.config, owner) && !desired_streams.contains(&name.as_str()) {
            continue;
        }
        let mut offset = 0u64;
        loop {
            let page = js
                .read(
                    &format!("CONSUMER.LIST.{name}"),
                    &json!({ "offset": offset }),
                    &format!("listing the consumers of stream {name}"),
                )
                .await?;
            let items = page["consumers"].as_array().cloned().unwrap_or_default();
            for info in &items {
                let consumer = info["name"].as_str().unwrap_or_default().to_string();
                let pending = info["num_pending"].as_u64().unwrap_or(0)
                    + info["num_ack_pending"].as_u64().unwrap_or(0);
                stream.consumers.insert(
                    consumer,
                    LiveConsumer {
                        config: info["config"].clone(),
                        pending,
                    },
                );
            }
            offset += items.len() as u64;
            if items.is_empty() || offset >= page["total"].as_u64().unwrap_or(0) {
                break;
            }
        }
    }
    Ok(streams)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(parse_version("2.10.27"), Some((2, 10, 27)));
        assert_eq!(parse_version("v2.12.0-beta.1"), Some((2, 12, 0)));
        assert_eq!(parse_version("2.9"), Some((2, 9, 0)));
        assert_eq!(parse_version("dev"), None);
    }
}
