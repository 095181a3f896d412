//! Revoking agents' NATS users ([nats_credentials] revoke = true): the
//! account JWT, read from the resolver through the system account, gets the
//! users' keys among its revocations, is re-signed with the operator's
//! signing key and pushed back, before apply writes the agent's new creds.
//! Every server then refuses those users and drops their connections.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use futures::StreamExt as _;

use crate::redact::Sensitive;

/// What revoking takes: the operator's signing key (never printed), a
/// system account user's creds, and where and which account.
#[derive(Debug, Clone)]
pub(crate) struct Revoking {
    pub operator_key: Sensitive,
    pub system_creds: PathBuf,
    pub url: String,
    pub account: String,
}

const ANSWER: Duration = Duration::from_secs(10);

pub(crate) async fn revoke(revoking: &Revoking, users: &[String]) -> anyhow::Result<()> {
    let operator = crate::credentials::operator_key(revoking.operator_key.expose())?;
    let shown = crate::redact::url(&revoking.url);
    let client = async_nats::ConnectOptions::with_credentials_file(&revoking.system_creds)
        .await
        .with_context(|| {
            format!(
                "reading the system account creds {}",
                revoking.system_creds.display()
            )
        })?
        .connect(&revoking.url)
        .await
        .with_context(|| format!("connecting to {shown} as the system account"))?;
    let account = &revoking.account;
    let lookup = tokio::time::timeout(
        ANSWER,
        client.request(
            format!("$SYS.REQ.ACCOUNT.{account}.CLAIMS.LOOKUP"),
            "".into(),
        ),
    )
    .await
    .map_err(|_| {
        anyhow::anyhow!("the resolver did not answer the lookup of account {account} in {ANSWER:?}")
    })?
    .with_context(|| format!("looking up account {account} on {shown}"))?;
    let current = String::from_utf8(lookup.payload.to_vec())
        .context("the account JWT the resolver returned is not text")?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let updated = crate::credentials::revoked(&current, users, now, &operator)
        .with_context(|| format!("revoking users of account {account}"))?;
    // Each server of a cluster answers; one refusal is enough to fail.
    let inbox = client.new_inbox();
    let mut answers = client.subscribe(inbox.clone()).await?;
    client
        .publish_with_reply("$SYS.REQ.CLAIMS.UPDATE", inbox, updated.into())
        .await?;
    client.flush().await?;
    let answer = tokio::time::timeout(ANSWER, answers.next())
        .await
        .map_err(|_| anyhow::anyhow!("no server answered the update of account {account} in {ANSWER:?}: is the resolver `full` (a memory resolver takes no updates)?"))?
        .ok_or_else(|| anyhow::anyhow!("the connection closed before the update of account {account} was answered"))?;
    let answer: serde_json::Value = serde_json::from_slice(&answer.payload).unwrap_or_default();
    if let Some(error) = answer.get("error") {
        anyhow::bail!(
            "the server refused the update of account {account} that revokes {}: {}",
            users.join(", "),
            error["description"].as_str().unwrap_or("no reason given")
        );
    }
    Ok(())
}
