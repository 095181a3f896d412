//! Which stream and consumer fields a real nats-server changes in place, and
//! which it refuses: fleet's planner (plan/jetstream.rs) must plan an update
//! exactly where the server allows one and a replace where it refuses, on the
//! pinned latest and on 2.10. Each field is tried on a fresh stream or
//! consumer with a raw JetStream API UPDATE request.

use std::collections::BTreeMap;

use crate::support::{TestEnv, control_plane};
use fleet::live::jetstream::{LiveConsumer, LiveStream};
use fleet::plan::Action;
use fleet::plan::jetstream::{Options, plan};
use fleet::render::jetstream::{DesiredConsumer, DesiredJetStream, DesiredStream};
use serde_json::{Value, json};

const SECOND: u64 = 1_000_000_000;

async fn request(js: &async_nats::jetstream::Context, subject: String, body: &Value) -> Value {
    js.request(subject, body)
        .await
        .expect("a JetStream API answer")
}

fn stream_config(name: &str, prefix: &str) -> Value {
    json!({
        "name": name, "subjects": [format!("{prefix}.>")], "retention": "limits", "storage": "file",
        "num_replicas": 1, "discard": "old", "max_age": 3600 * SECOND, "max_bytes": -1, "max_msgs": -1,
        "max_msg_size": -1, "duplicate_window": 60 * SECOND, "metadata": { "fleet.owner": "test" }
    })
}

/// (field, new value) for every stream field fleet manages.
fn stream_changes() -> Vec<(&'static str, Value)> {
    vec![
        ("subjects", Value::Null), // filled in per stream
        ("retention", json!("interest")),
        ("retention", json!("workqueue")),
        ("storage", json!("memory")),
        ("discard", json!("new")),
        ("max_age", json!(7200 * SECOND)),
        ("max_bytes", json!(1_048_576)),
        ("max_msgs", json!(1000)),
        ("max_msg_size", json!(4096)),
        ("duplicate_window", json!(30 * SECOND)),
        ("description", json!("changed")),
        ("max_msgs_per_subject", json!(10)),
        ("allow_direct", json!(true)),
        ("compression", json!("s2")),
        ("sources", Value::Null), // filled in per stream
        ("metadata", json!({ "fleet.owner": "test", "extra": "x" })),
    ]
}

fn consumer_config(name: &str, prefix: &str) -> Value {
    json!({
        "durable_name": name, "filter_subject": format!("{prefix}.a.>"), "deliver_policy": "all",
        "ack_policy": "explicit", "ack_wait": 30 * SECOND, "max_deliver": 5, "max_ack_pending": 1000,
        "metadata": { "fleet.owner": "test" }
    })
}

/// (field, new value) for every consumer field fleet manages.
fn consumer_changes(prefix: &str) -> Vec<(&'static str, Value)> {
    vec![
        ("filter_subject", json!(format!("{prefix}.b.>"))),
        ("ack_wait", json!(60 * SECOND)),
        ("max_deliver", json!(9)),
        ("max_ack_pending", json!(50)),
        ("backoff", json!([SECOND, 5 * SECOND])),
        ("description", json!("changed")),
        ("metadata", json!({ "fleet.owner": "test", "extra": "x" })),
        ("inactive_threshold", json!(3600 * SECOND)),
        ("deliver_policy", json!("new")),
        ("deliver_policy", json!("last_per_subject")),
        ("ack_policy", json!("all")),
    ]
}

/// Whether fleet's planner takes `live` -> `desired` as an in-place update
/// (the first change it plans: the stream's, or the only consumer's).
fn planned_in_place(desired: DesiredJetStream, live: LiveStream, version: (u64, u64, u64)) -> bool {
    let name = desired
        .streams
        .first()
        .map_or_else(|| desired.consumers[0].stream.clone(), |s| s.name.clone());
    let options = Options {
        owner: "test",
        server: version,
        clustered: false,
        adopt: false,
        inventory_unchanged: false,
        allow_destroy: false,
        account: None,
        destroy: false,
    };
    let changes = plan(&desired, &BTreeMap::from([(name, live)]), &options);
    let change = changes
        .iter()
        .find(|c| c.action != Action::NoOp)
        .expect("a change");
    match change.action {
        Action::Update => true,
        Action::Replace => false,
        other => panic!("unexpected {other:?}"),
    }
}

fn live_stream(config: &Value, consumers: BTreeMap<String, LiveConsumer>) -> LiveStream {
    LiveStream {
        config: config.clone(),
        messages: Some(0),
        bytes: 0,
        consumers,
    }
}

async fn check_server(url: &str, env: &TestEnv) -> Vec<String> {
    let nats = async_nats::connect(url).await.unwrap();
    let version = {
        let v: Vec<u64> = nats
            .server_info()
            .version
            .split('.')
            .map(|p| p.parse().unwrap_or(0))
            .collect();
        (v[0], v[1], v[2])
    };
    let js = async_nats::jetstream::new(nats);
    let mut mismatches = Vec::new();
    let prefix = format!("{}rules", env.stream_prefix);

    for (i, (field, value)) in stream_changes().into_iter().enumerate() {
        let name = format!("{prefix}_s{i}");
        let subjects_prefix = format!("{prefix}.s{i}");
        let config = stream_config(&name, &subjects_prefix);
        let created = request(&js, format!("STREAM.CREATE.{name}"), &config).await;
        assert!(
            created.get("error").is_none(),
            "{url}: creating {name}: {created}"
        );
        let mut changed = config.clone();
        changed[field] = match field {
            "subjects" => json!([
                format!("{subjects_prefix}.>"),
                format!("{subjects_prefix}-more.>")
            ]),
            // Another stream of this test's; it need not exist yet.
            "sources" => {
                json!([{ "name": format!("{prefix}_c"), "filter_subject": format!("{prefix}.c.a.>") }])
            }
            _ => value,
        };
        let desired = DesiredJetStream {
            streams: vec![DesiredStream {
                name: name.clone(),
                config: changed.clone(),
            }],
            consumers: vec![],
        };
        let in_place = planned_in_place(desired, live_stream(&config, BTreeMap::new()), version);
        let answer = request(&js, format!("STREAM.UPDATE.{name}"), &changed).await;
        let accepted = answer.get("error").is_none();
        if accepted != in_place {
            mismatches.push(format!(
                "{url}: stream {field}: server {} it, fleet plans {}",
                verdict(accepted),
                plan_word(in_place)
            ));
        }
        let _ = request(&js, format!("STREAM.DELETE.{name}"), &json!({})).await;
    }

    let stream = format!("{prefix}_c");
    let created = request(
        &js,
        format!("STREAM.CREATE.{stream}"),
        &stream_config(&stream, &format!("{prefix}.c")),
    )
    .await;
    assert!(created.get("error").is_none(), "{url}: {created}");
    for (i, (field, value)) in consumer_changes(&format!("{prefix}.c"))
        .into_iter()
        .enumerate()
    {
        let name = format!("c{i}");
        let config = consumer_config(&name, &format!("{prefix}.c"));
        let body = json!({ "stream_name": stream, "config": config, "action": "create" });
        let made = request(&js, format!("CONSUMER.CREATE.{stream}.{name}"), &body).await;
        assert!(
            made.get("error").is_none(),
            "{url}: creating consumer {name}: {made}"
        );
        let mut changed = config.clone();
        changed[field] = value;
        if field == "backoff" {
            changed["ack_wait"] = json!(SECOND);
        }
        let desired = DesiredJetStream {
            streams: vec![],
            consumers: vec![DesiredConsumer {
                stream: stream.clone(),
                name: name.clone(),
                config: changed.clone(),
            }],
        };
        let live_consumer = LiveConsumer {
            config: config.clone(),
            pending: Some(0),
        };
        let live = live_stream(&json!({}), BTreeMap::from([(name.clone(), live_consumer)]));
        let in_place = planned_in_place(desired, live, version);
        let body = json!({ "stream_name": stream, "config": changed, "action": "update" });
        let answer = request(&js, format!("CONSUMER.CREATE.{stream}.{name}"), &body).await;
        let accepted = answer.get("error").is_none();
        if accepted != in_place {
            mismatches.push(format!(
                "{url}: consumer {field}: server {} it ({answer}), fleet plans {}",
                verdict(accepted),
                plan_word(in_place)
            ));
        }
    }
    let _ = request(&js, format!("STREAM.DELETE.{stream}"), &json!({})).await;
    mismatches
}

fn verdict(accepted: bool) -> &'static str {
    if accepted { "changes" } else { "refuses" }
}

fn plan_word(in_place: bool) -> &'static str {
    if in_place {
        "an update in place"
    } else {
        "a replace"
    }
}

#[tokio::test]
async fn fleets_update_rules_are_the_servers() {
    let env = TestEnv::new("js-rules").await;
    let mut mismatches = check_server(&control_plane().nats_url, &env).await;
    mismatches.extend(check_server(&control_plane().nats_old_url, &env).await);
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}
