//! Fleet -> desired JetStream streams and consumers, as the JSON configuration
//! the JetStream API takes (durations in nanoseconds), marked as fleet's.

use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::model::{Consumer, Fleet, Stream};
use crate::ownership;

#[derive(Debug, Clone, Serialize)]
pub struct DesiredJetStream {
    pub streams: Vec<DesiredStream>,
    pub consumers: Vec<DesiredConsumer>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DesiredStream {
    pub name: String,
    pub config: Value,
}

#[derive(Debug, Clone, Serialize)]
pub struct DesiredConsumer {
    pub stream: String,
    pub name: String,
    pub config: Value,
}

pub fn desired(fleet: &Fleet) -> DesiredJetStream {
    let metadata = json!({ ownership::JETSTREAM_OWNER_KEY: ownership::jetstream_owner(&fleet.name, &fleet.namespace) });
    let mut consumers: Vec<DesiredConsumer> = fleet
        .agents
        .iter()
        .flat_map(|agent| agent.all_consumers())
        .map(|consumer| DesiredConsumer {
            stream: consumer.stream.clone(),
            name: consumer.name.clone(),
            config: consumer_config(consumer, &metadata),
        })
        .collect();
    consumers.sort_by(|a, b| (&a.stream, &a.name).cmp(&(&b.stream, &b.name)));
    DesiredJetStream {
        streams: fleet
            .streams
            .iter()
            .map(|stream| DesiredStream {
                name: stream.name.clone(),
                config: stream_config(stream, &metadata),
            })
            .collect(),
        consumers,
    }
}

fn nanos(duration: Duration) -> Value {
    Value::from(duration.as_nanos() as u64)
}

fn stream_config(stream: &Stream, metadata: &Value) -> Value {
    let mut config = Map::new();
    config.insert("name".into(), stream.name.clone().into());
    config.insert("subjects".into(), stream.subjects.clone().into());
    config.insert("retention".into(), stream.retention.clone().into());
    config.insert("storage".into(), stream.storage.clone().into());
    config.insert("num_replicas".into(), stream.replicas.into());
    config.insert("discard".into(), stream.discard.clone().into());
    config.insert(
        "max_age".into(),
        stream.max_age.map_or(Value::from(0), nanos),
    );
    config.insert("max_bytes".into(), stream.max_bytes.unwrap_or(-1).into());
    config.insert("max_msgs".into(), stream.max_msgs.unwrap_or(-1).into());
    config.insert(
        "max_msg_size".into(),
        stream.max_msg_size.unwrap_or(-1).into(),
    );
    if let Some(window) = stream.duplicate_window {
        config.insert("duplicate_window".into(), nanos(window));
    }
    if let Some(description) = &stream.description {
        config.insert("description".into(), description.clone().into());
    }
    // Sent only when set, so a fleet that does not use them renders as before.
    if let Some(max) = stream.max_msgs_per_subject {
        config.insert("max_msgs_per_subject".into(), max.into());
    }
    if let Some(allow_direct) = stream.allow_direct {
        config.insert("allow_direct".into(), allow_direct.into());
    }
    if let Some(compression) = &stream.compression {
        config.insert("compression".into(), compression.clone().into());
    }
    if let Some(sources) = &stream.sources {
        let sources: Vec<Value> = sources
            .iter()
            .map(|source| {
                let mut out = Map::new();
                out.insert("name".into(), source.name.clone().into());
                if let Some(filter) = &source.filter_subject {
                    out.insert("filter_subject".into(), filter.clone().into());
                }
                Value::Object(out)
            })
            .collect();
        config.insert("sources".into(), sources.into());
    }
    config.insert("metadata".into(), metadata.clone());
    Value::Object(config)
}

fn consumer_config(consumer: &Consumer, metadata: &Value) -> Value {
    let mut config = Map::new();
    config.insert("durable_name".into(), consumer.name.clone().into());
    if let [single] = consumer.filter_subjects.as_slice() {
        config.insert("filter_subject".into(), single.clone().into());
    } else {
        config.insert(
            "filter_subjects".into(),
            consumer.filter_subjects.clone().into(),
        );
    }
    config.insert(
        "deliver_policy".into(),
        consumer.deliver_policy.clone().into(),
    );
    // An omitted ack policy means `none`; task consumers must acknowledge.
    config.insert("ack_policy".into(), "explicit".into());
    config.insert("ack_wait".into(), nanos(consumer.ack_wait));
    config.insert("max_deliver".into(), consumer.max_deliver.into());
    config.insert("max_ack_pending".into(), consumer.max_ack_pending.into());
    if !consumer.backoff.is_empty() {
        config.insert(
            "backoff".into(),
            consumer
                .backoff
                .iter()
                .copied()
                .map(nanos)
                .collect::<Vec<_>>()
                .into(),
        );
    }
    if let Some(threshold) = consumer.inactive_threshold {
        config.insert("inactive_threshold".into(), nanos(threshold));
    }
    if let Some(description) = &consumer.description {
        config.insert("description".into(), description.clone().into());
    }
    config.insert("metadata".into(), metadata.clone());
    Value::Object(config)
}
