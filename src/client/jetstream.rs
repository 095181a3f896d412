//! The JetStream client every stage talks through: the connection (with
//! the credentials a CI job holds, never shown), the server's version, and
//! API requests answered as raw JSON, so fields a typed client would not
//! know are never lost. `live` reads through it, `apply` writes through it.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use async_nats::jetstream::context::{RequestError, RequestErrorKind};
use serde_json::Value;

use crate::redact::{self, Sensitive};

/// How to reach and authenticate to the NATS server: its URL and the
/// [`Options`]. `Debug` shows no secret: the URL's userinfo, the token and
/// password are masked.
#[derive(Clone, Default)]
pub struct Connection {
    pub url: String,
    pub options: Options,
}

/// Everything of a connection but the URL, as fleet is given it (the
/// flags and their environment variables): credentials, TLS, and which
/// JetStream.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Credentials file (JWT and NKey seed), as `nats --creds`.
    pub creds_file: Option<PathBuf>,
    /// A file holding an NKey seed.
    pub nkey_file: Option<PathBuf>,
    pub token: Option<Sensitive>,
    pub user: Option<String>,
    pub password: Option<Sensitive>,
    pub tls_ca: Option<PathBuf>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// JetStream domain, or an explicit API prefix (one or the other).
    pub domain: Option<String>,
    pub api_prefix: Option<String>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("url", &redact::url(&self.url))
            .field("options", &self.options)
            .finish()
    }
}

impl Connection {
    /// A message from the NATS client with anything secret of this
    /// connection (and the NKey `seed` read for it) taken out.
    fn scrub(&self, seed: Option<&Sensitive>, text: &str) -> String {
        let mut text = text.replace(&self.url, &redact::url(&self.url));
        for secret in [
            self.options.password.as_ref(),
            self.options.token.as_ref(),
            seed,
        ]
        .into_iter()
        .flatten()
        {
            if !secret.expose().is_empty() {
                text = text.replace(secret.expose(), redact::MASK);
            }
        }
        text
    }
}

/// A connected JetStream API, and what it is for messages.
pub struct JetStream {
    pub context: async_nats::jetstream::Context,
    /// The server's URL without userinfo: safe to print.
    pub url: String,
    pub server_version: (u64, u64, u64),
    /// The JetStream fleet talks to may keep several replicas of a stream:
    /// the server is in a cluster, or is reached through a domain or API
    /// prefix (which may lead to another server's cluster).
    pub clustered: bool,
}

/// The oldest server line that keeps stream and consumer `metadata`, which
/// carries fleet's ownership.
pub const MIN_SERVER: (u64, u64, u64) = (2, 10, 0);

impl JetStream {
    pub async fn connect(connection: &Connection) -> anyhow::Result<JetStream> {
        let given = &connection.options;
        let nkey_seed = match &given.nkey_file {
            Some(path) => Some(Sensitive::new(
                std::fs::read_to_string(path)
                    .with_context(|| format!("reading the NKey seed {}", path.display()))?
                    .trim(),
            )),
            None => None,
        };
        // Only the request itself gets the URL with its userinfo; every
        // message gets the redacted one.
        let url = &redact::url(&connection.url);
        let mut options = async_nats::ConnectOptions::new()
            .name("fleet")
            .connection_timeout(Duration::from_secs(5));
        if let Some(path) = &given.creds_file {
            options = options
                .credentials_file(path)
                .await
                .with_context(|| format!("reading NATS credentials {}", path.display()))?;
        }
        // async-nats ignores userinfo in the URL; `nats` and the other
        // clients take it as user and password (or a token), so fleet does.
        if given.user.is_none() && given.token.is_none() {
            match url_credentials(&connection.url) {
                Some((user, Some(password))) => {
                    options = options.user_and_password(user, password.expose().to_string());
                }
                Some((token, None)) => options = options.token(token),
                None => {}
            }
        }
        if let Some(seed) = &nkey_seed {
            options = options.nkey(seed.expose().to_string());
        }
        if let Some(token) = &given.token {
            options = options.token(token.expose().to_string());
        }
        if let (Some(user), Some(password)) = (&given.user, &given.password) {
            options = options.user_and_password(user.clone(), password.expose().to_string());
        }
        if let Some(ca) = &given.tls_ca {
            options = options.add_root_certificates(ca.clone()).require_tls(true);
        }
        if let (Some(cert), Some(key)) = (&given.tls_cert, &given.tls_key) {
            options = options
                .add_client_certificate(cert.clone(), key.clone())
                .require_tls(true);
        }
        let client = options.connect(connection.url.as_str()).await.map_err(|err| {
            anyhow::anyhow!(
                "cannot connect to NATS at {url}: {}\n  Check the URL (--nats-url, FLEET_NATS_URL or the environment's nats_url), the credentials, and that the server is up. Nothing was changed.",
                connection.scrub(nkey_seed.as_ref(), &err.to_string())
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
        let clustered =
            info.cluster.is_some() || given.domain.is_some() || given.api_prefix.is_some();
        let context = match (&given.domain, &given.api_prefix) {
            (Some(domain), _) => async_nats::jetstream::with_domain(client, domain),
            (None, Some(prefix)) => async_nats::jetstream::with_prefix(client, prefix),
            (None, None) => async_nats::jetstream::new(client),
        };
        Ok(JetStream {
            context,
            url: url.clone(),
            server_version,
            clustered,
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
        crate::client::retry::with_backoff(
            READ_ATTEMPTS,
            |err: &anyhow::Error| transient(err),
            attempt,
        )
        .await
    }

    fn answer(&self, response: Result<Value, RequestError>, doing: &str) -> anyhow::Result<Value> {
        let response = response
            .with_context(|| format!("{doing}: no answer from JetStream at {}", self.url))?;
        if let Some(error) = response.get("error") {
            // Typed, so callers can branch on it (a 503 is retried, a
            // "not found" on delete is what deleting wanted).
            let error = ApiError {
                code: error["code"].as_u64().unwrap_or(0),
                err_code: error["err_code"].as_u64().unwrap_or(0),
                description: error["description"]
                    .as_str()
                    .unwrap_or("no description")
                    .to_string(),
            };
            return Err(anyhow::Error::new(error).context(doing.to_string()));
        }
        Ok(response)
    }
}

/// A JetStream cluster takes seconds to elect a leader: reads try for
/// about 8 s (0.25 s, doubling) before giving up.
pub const READ_ATTEMPTS: u32 = 6;

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

impl ApiError {
    /// The stream or consumer is not there (10059 stream, 10014 consumer).
    pub fn is_not_found(&self) -> bool {
        self.code == 404 || matches!(self.err_code, 10059 | 10014)
    }
}

/// The [`ApiError`] behind an error, if it is one.
pub fn api_error(err: &anyhow::Error) -> Option<&ApiError> {
    err.downcast_ref::<ApiError>()
}

/// The userinfo of the first URL (of a comma-separated list) that has one:
/// `(user, Some(password))`, or `(token, None)`, percent-decoded.
fn url_credentials(urls: &str) -> Option<(String, Option<Sensitive>)> {
    urls.split(',').find_map(|url| {
        let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
        let authority = rest.split('/').next()?;
        let (userinfo, _) = authority.rsplit_once('@')?;
        Some(match userinfo.split_once(':') {
            Some((user, password)) => (
                percent_decoded(user),
                Some(Sensitive::new(percent_decoded(password))),
            ),
            None => (percent_decoded(userinfo), None),
        })
    })
}

fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_the_url() {
        let (user, password) = url_credentials("nats://fleet:p%40ss@n:4222").unwrap();
        assert_eq!(user, "fleet");
        assert_eq!(password.unwrap().expose(), "p@ss");
        let (token, password) = url_credentials("nats://n1:4222,nats://t0k@n2:4222").unwrap();
        assert_eq!((token.as_str(), password), ("t0k", None));
        assert!(url_credentials("nats://n:4222").is_none());
    }

    #[test]
    fn versions() {
        assert_eq!(parse_version("2.10.27"), Some((2, 10, 27)));
        assert_eq!(parse_version("v2.12.0-beta.1"), Some((2, 12, 0)));
        assert_eq!(parse_version("2.9"), Some((2, 9, 0)));
        assert_eq!(parse_version("dev"), None);
    }
}
