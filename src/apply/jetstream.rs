//! Writes to JetStream through its JSON API: streams and consumers created,
//! updated (with the server's own JSON, so nothing is erased), replaced or
//! deleted.

use serde_json::{Value, json};

use crate::client::jetstream::{JetStream, api_error};
use crate::plan::{Action, Change, Target};

/// Carries out one change to one stream or consumer.
pub(super) async fn apply_change(js: &JetStream, change: &Change) -> anyhow::Result<&'static str> {
    let body = || {
        change
            .desired
            .as_ref()
            .map(|b| b.sent().clone())
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "{}: the plan has no configuration to apply (was it edited?)",
                    change.target
                )
            })
    };
    let doing = |what: &str| format!("{what} {}", change.target);
    match (&change.target, change.action) {
        (Target::Stream { name }, Action::Delete) => {
            delete(js, &format!("STREAM.DELETE.{name}"), &doing("destroying")).await?;
            Ok("destroyed")
        }
        (Target::Stream { name }, Action::Replace) => {
            delete(
                js,
                &format!("STREAM.DELETE.{name}"),
                &doing("destroying (to replace)"),
            )
            .await?;
            js.request(
                &format!("STREAM.CREATE.{name}"),
                &body()?,
                &doing("creating (to replace)"),
            )
            .await?;
            Ok("replaced (destroyed, then created)")
        }
        (Target::Stream { name }, Action::Create) => {
            js.request(
                &format!("STREAM.CREATE.{name}"),
                &body()?,
                &doing("creating"),
            )
            .await?;
            Ok("created")
        }
        (Target::Stream { name }, _) => {
            js.request(
                &format!("STREAM.UPDATE.{name}"),
                &body()?,
                &doing("updating"),
            )
            .await?;
            Ok("updated")
        }
        (Target::Consumer { stream, name }, Action::Delete) => {
            delete(
                js,
                &format!("CONSUMER.DELETE.{stream}.{name}"),
                &doing("destroying"),
            )
            .await?;
            Ok("destroyed")
        }
        (Target::Consumer { stream, name }, action) => {
            if action == Action::Replace {
                // Gone already when its stream was just replaced.
                delete(
                    js,
                    &format!("CONSUMER.DELETE.{stream}.{name}"),
                    &doing("destroying (to replace)"),
                )
                .await?;
            }
            // The action makes the server refuse instead of silently creating
            // (or changing) the wrong thing; honoured from 2.10.
            let verb = if matches!(action, Action::Update | Action::Unowned | Action::Conflict) {
                "update"
            } else {
                "create"
            };
            let request = consumer_request(stream, body()?, verb);
            js.request(
                &format!("CONSUMER.CREATE.{stream}.{name}"),
                &request,
                &doing("applying"),
            )
            .await?;
            Ok(match action {
                Action::Create => "created",
                Action::Replace => "replaced (destroyed, then created)",
                _ => "updated",
            })
        }
        (Target::Kubernetes(_), _) => unreachable!("Kubernetes changes are applied by apply::kube"),
    }
}

/// Deletes a stream or consumer; one that is not there (a consumer that went
/// with its replaced stream, or a delete whose answer was lost) is what
/// deleting wanted.
async fn delete(js: &JetStream, subject: &str, doing: &str) -> anyhow::Result<()> {
    match js.request(subject, &json!({}), doing).await {
        Err(err) if api_error(&err).is_some_and(|e| e.is_not_found()) => Ok(()),
        result => result.map(|_| ()),
    }
}

fn consumer_request(stream: &str, config: Value, action: &str) -> Value {
    json!({ "stream_name": stream, "config": config, "action": action })
}
