//! The agents' consumers and the streams they read, from the live JetStream
//! server: the inverse of `render::jetstream`. Pure: the streams as
//! [`crate::live::jetstream::read`] returned them.

use serde_json::{Map, Value};

use super::write::Table;
use crate::live::jetstream::LiveJetStream;

/// A JetStream duration (nanoseconds) as fleet writes one: the largest unit
/// that divides it (`7d`, `2m`, `250ms`); `None` for zero or less than a
/// millisecond's precision.
pub(crate) fn duration(nanos: &Value) -> Option<Value> {
    let nanos = nanos.as_u64().filter(|n| *n > 0)?;
    if nanos % 1_000_000 != 0 {
        return None;
    }
    let millis = nanos / 1_000_000;
    let units = [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
    ];
    Some(Value::from(
        units
            .iter()
            .find(|(_, size)| millis % size == 0)
            .map_or(format!("{millis}ms"), |(unit, size)| {
                format!("{}{unit}", millis / size)
            }),
    ))
}

/// The stream that holds the agent's own consumer `<role>-agent`: the one
/// its autoscaler names, else the only one.
pub(crate) fn own_consumer_stream(
    live: &LiveJetStream,
    role: &str,
    named: Option<&str>,
) -> Option<String> {
    let consumer = format!("{role}-agent");
    let holding: Vec<&String> = live
        .iter()
        .filter(|(_, stream)| stream.consumers.contains_key(&consumer))
        .map(|(name, _)| name)
        .collect();
    match named {
        Some(name) if holding.iter().any(|h| *h == name) => Some(name.to_string()),
        _ => match holding.as_slice() {
            [only] => Some((*only).clone()),
            _ => None,
        },
    }
}

/// The agent's `consumer` table: its stream and every setting fleet has
/// a key for (the minimal pass drops the defaults).
pub(crate) fn consumer_keys(config: &Value, stream: &str) -> Value {
    let mut table = Map::new();
    table.insert("stream".into(), Value::from(stream));
    let filters: Vec<Value> = match (&config["filter_subject"], &config["filter_subjects"]) {
        (Value::String(one), _) if !one.is_empty() => vec![Value::from(one.as_str())],
        (_, Value::Array(many)) => many.clone(),
        _ => Vec::new(),
    };
    if !filters.is_empty() {
        table.insert("filter_subjects".into(), Value::Array(filters));
    }
    if let Some(policy) = config["deliver_policy"].as_str() {
        table.insert(
            "deliver_policy".into(),
            Value::from(policy.replace("by_start_", "")),
        );
    }
    if let Some(wait) = duration(&config["ack_wait"]) {
        table.insert("ack_wait".into(), wait);
    }
    for key in ["max_deliver", "max_ack_pending"] {
        if let Some(value) = config[key].as_i64() {
            table.insert(key.into(), Value::from(value));
        }
    }
    if let Some(backoff) = config["backoff"].as_array() {
        let steps: Option<Vec<Value>> = backoff.iter().map(duration).collect();
        if let Some(steps) = steps.filter(|s| !s.is_empty()) {
            table.insert("backoff".into(), Value::Array(steps));
        }
    }
    if let Some(threshold) = duration(&config["inactive_threshold"]) {
        table.insert("inactive_threshold".into(), threshold);
    }
    if let Some(description) = config["description"].as_str() {
        table.insert("description".into(), Value::from(description));
    }
    Value::Object(table)
}

/// A stream's keys: the settings fleet sends on every apply (those it
/// leaves to the server when unset are not written, so they stay as they are).
pub(crate) fn stream_keys(config: &Value) -> Table {
    let mut table = Table::default();
    if let Some(subjects) = config["subjects"].as_array() {
        table.set("subjects", Value::Array(subjects.clone()));
    }
    for key in ["retention", "storage", "discard"] {
        if let Some(value) = config[key].as_str() {
            table.set(key, Value::from(value));
        }
    }
    if let Some(replicas) = config["num_replicas"].as_i64() {
        table.set("replicas", Value::from(replicas));
    }
    for key in ["max_age", "duplicate_window"] {
        if let Some(value) = duration(&config[key]) {
            table.set(key, value);
        }
    }
    for key in ["max_bytes", "max_msgs", "max_msg_size"] {
        if let Some(value) = config[key].as_i64() {
            table.set(key, Value::from(value));
        }
    }
    if let Some(description) = config["description"].as_str() {
        table.set("description", Value::from(description));
    }
    table
}

/// The fields of a rendered stream or consumer config that differ from the
/// live one (fleet's ownership mark aside), as `field: live -> fleet`.
pub(crate) fn differences(rendered: &Value, live: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for (key, value) in rendered.as_object().into_iter().flatten() {
        if key == "metadata" {
            continue;
        }
        if &live[key] != value {
            out.push(format!("{key}: {} -> {value}", live[key]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn durations_are_written_in_their_largest_whole_unit() {
        let cases = [
            (604_800_000_000_000u64, Some("7d")),
            (120_000_000_000, Some("2m")),
            (90_000_000_000, Some("90s")),
            (250_000_000, Some("250ms")),
            (1, None),
            (0, None),
        ];
        for (nanos, written) in cases {
            assert_eq!(duration(&json!(nanos)), written.map(Value::from), "{nanos}");
        }
    }

    #[test]
    fn a_consumer_config_says_its_keys() {
        let config = json!({
            "durable_name": "devops-agent", "filter_subject": "tasks.devops.>",
            "deliver_policy": "all", "ack_policy": "explicit", "ack_wait": 300_000_000_000u64,
            "max_deliver": 5, "max_ack_pending": 1000, "backoff": [1_000_000_000u64, 60_000_000_000u64]
        });
        assert_eq!(
            consumer_keys(&config, "agent-tasks"),
            json!({ "stream": "agent-tasks", "filter_subjects": ["tasks.devops.>"], "deliver_policy": "all",
                    "ack_wait": "5m", "max_deliver": 5, "max_ack_pending": 1000, "backoff": ["1s", "1m"] })
        );
    }
}
