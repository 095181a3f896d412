//! Writes to JetStream through its JSON API: streams and consumers created,
//! updated (with the server's own JSON, so nothing is erased), replaced or
//! deleted.

use serde_json::{Value, json};

use crate::live::jetstream::JetStream;
use crate::plan::{Action, Change, Target};

/// Carries out one change to one stream or consumer.
pub async fn apply_change(js: &JetStream, change: &Change) -> anyhow::Result<&'static str> {
    let body = || {
        change.desired.clone().ok_or_else(|| {
            anyhow::anyhow!(
                "{}: the plan has no configuration to apply (was it edited?)",
                change.target
            )
        })
    };
    let doing = |what: &str| format!("{what} {}", change.target);
    match (&change.target, change.action) {
        (Target::Stream { name }, Action::Delete) => {
            js.request(
                &format!("STREAM.DELETE.{name}"),
                &json!({}),
                &doing("destroying"),
            )
            .await?;
            Ok("destroyed")
        }
        (Target::Stream { name }, Action::Replace) => {
            js.request(
                &format!("STREAM.DELETE.{name}"),
                &json!({}),
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
            js.request(
                &format!("CONSUMER.DELETE.{stream}.{name}"),
                &json!({}),
                &doing("destroying"),
            )
            .await?;
            Ok("destroyed")
        }
        (Target::Consumer { stream, name }, action) => {
            if action == Action::Replace {
                js.request(
                    &format!("CONSUMER.DELETE.{stream}.{name}"),
                    &json!({}),
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

fn consumer_request(stream: &str, config: Value, action: &str) -> Value {
    json!({ "stream_name": stream, "config": config, "action": action })
}
