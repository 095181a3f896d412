//! Planning the JetStream side, field by field: desired configs are filled in
//! with the defaults the server would apply, so a stream just created plans
//! as unchanged; what cannot change in place is a replace; anything that
//! would drop queued messages is marked so apply can refuse it.
//! Pure: takes what `live::jetstream` read, returns changes.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::{Action, Blocked, Change, Drift, Target};
use crate::live::jetstream::{Account, LiveConsumer, LiveJetStream, LiveStream, is_owned};
use crate::ownership;
use crate::redact::Body;
use crate::render::Wave;
use crate::render::jetstream::DesiredJetStream;

/// Fields fleet manages on a stream; the others are the server's or the
/// operator's, and an update keeps them.
const STREAM_FIELDS: &[&str] = &[
    "subjects",
    "retention",
    "storage",
    "num_replicas",
    "discard",
    "max_age",
    "max_bytes",
    "max_msgs",
    "max_msg_size",
    "duplicate_window",
    "description",
    "max_msgs_per_subject",
    "allow_direct",
    "compression",
    "sources",
    "metadata",
];

const CONSUMER_FIELDS: &[&str] = &[
    "filter_subjects",
    "deliver_policy",
    "ack_policy",
    "ack_wait",
    "max_deliver",
    "max_ack_pending",
    "backoff",
    "inactive_threshold",
    "description",
    "metadata",
];

/// Fields fleet manages only when the definition sets them: left out, the
/// server's (or an operator's) value stays, so fleets that do not use them
/// plan as before.
const MANAGED_WHEN_SET: &[&str] = &[
    "max_msgs_per_subject",
    "allow_direct",
    "compression",
    "sources",
    "inactive_threshold",
];

/// Durations the API takes in nanoseconds; shown as `7d`, `30s`.
const DURATION_FIELDS: &[&str] = &[
    "max_age",
    "duplicate_window",
    "ack_wait",
    "backoff",
    "inactive_threshold",
];

const TWO_MINUTES: u64 = 120_000_000_000;

/// What planning JetStream needs besides the desired and live configs.
pub struct Options<'a> {
    /// `fleet.owner` of this fleet's streams and consumers.
    pub owner: &'a str,
    pub server: (u64, u64, u64),
    /// The server may keep more than one replica of a stream (it is in a
    /// cluster); a single server refuses them.
    pub clustered: bool,
    pub adopt: bool,
    /// The inventory is the one fleet last applied (see
    /// `plan::kube::inventory_unchanged`): a missing stream or consumer was
    /// deleted outside fleet.
    pub inventory_unchanged: bool,
    /// Plan as `apply --allow-destroy` would apply: changes that lose
    /// queued messages are not blocked.
    pub allow_destroy: bool,
    /// The account's usage and limits, when read: creates beyond them are
    /// blocked.
    pub account: Option<&'a Account>,
    /// A tear-down (`fleet destroy`): a destroyed stream's own consumers are
    /// listed as destroyed too, and the others it takes with it named.
    pub destroy: bool,
}

pub fn plan(
    desired: &DesiredJetStream,
    live: &LiveJetStream,
    options: &Options<'_>,
) -> Vec<Change> {
    let Options {
        owner,
        server,
        clustered,
        adopt,
        inventory_unchanged,
        allow_destroy,
        account,
        destroy,
    } = *options;
    let mut changes = Vec::new();
    // Streams created now, or deleted and created again: their consumers
    // are created with them.
    let mut recreated_streams = BTreeSet::new();

    for stream in &desired.streams {
        let target = Target::Stream {
            name: stream.name.clone(),
        };
        let existing = live.get(&stream.name).map(|s| Existing {
            config: &s.config,
            at_risk: s.messages,
            holds: holds(s),
        });
        let immutable =
            |before: &Fields, after: &Fields| immutable_stream_changes(before, after, server);
        let mut change = plan_one(
            target,
            &stream.config,
            existing,
            normalized_stream,
            immutable,
            owner,
            adopt,
        );
        if change.action == Action::Replace
            && let Some(live_stream) = live.get(&stream.name)
        {
            // Consumers nobody declared here (agents' own) go with the
            // stream and are not made again: say so.
            let lost: Vec<&str> = live_stream
                .consumers
                .keys()
                .filter(|c| {
                    !desired
                        .consumers
                        .iter()
                        .any(|d| d.stream == stream.name && &d.name == *c)
                })
                .map(String::as_str)
                .collect();
            if !lost.is_empty()
                && let Some(reason) = &mut change.reason
            {
                reason.push_str(&format!(
                    "; its other consumers go with it and are not made again: {}",
                    lost.join(", ")
                ));
            }
        }
        if matches!(change.action, Action::Create | Action::Replace) {
            recreated_streams.insert(stream.name.clone());
        }
        mark_drift(
            &mut change,
            live.get(&stream.name).map(|s| &s.config),
            &stream.config,
            inventory_unchanged,
        );
        if matches!(
            change.action,
            Action::Create | Action::Update | Action::Replace
        ) {
            let replicas = stream.config["num_replicas"].as_u64().unwrap_or(1);
            if replicas > 1 && !clustered {
                change.blocked = Some(Blocked::refused(format!(
                    "it asks for {replicas} replicas, and the nats-server is not in a cluster: JetStream keeps more than one replica only in a cluster (10074). Set `replicas = 1` for this environment"
                )));
            } else if let Some(blocked) =
                overlapping_stream(&stream.name, &stream.config, live, desired, owner)
            {
                change.blocked = Some(blocked);
            }
        }
        changes.push(change);
    }

    for consumer in &desired.consumers {
        let target = Target::Consumer {
            stream: consumer.stream.clone(),
            name: consumer.name.clone(),
        };
        let live_consumer = live
            .get(&consumer.stream)
            .and_then(|s| s.consumers.get(&consumer.name));
        if recreated_streams.contains(&consumer.stream) {
            // The stream is created, or deleted and created again: a
            // consumer it had goes with it and is made again.
            let mut change = new_change(
                target,
                Action::Create,
                Some(describe_all(&desired_fields(
                    normalized_consumer,
                    &consumer.config,
                ))),
                Some(consumer.config.clone()),
            );
            if let Some(existing) = live_consumer {
                change.action = Action::Replace;
                change.reason = Some(format!(
                    "its stream {} is replaced; {}",
                    consumer.stream,
                    pending(existing.pending)
                ));
                change.loses_data = existing.pending != Some(0);
            }
            mark_drift(&mut change, None, &consumer.config, inventory_unchanged);
            changes.push(change);
            continue;
        }
        let existing = live_consumer.map(|c| Existing {
            config: &c.config,
            at_risk: c.pending,
            holds: pending(c.pending),
        });
        let mut change = plan_one(
            target,
            &consumer.config,
            existing,
            normalized_consumer,
            immutable_consumer_changes,
            owner,
            adopt,
        );
        mark_drift(
            &mut change,
            live_consumer.map(|c| &c.config),
            &consumer.config,
            inventory_unchanged,
        );
        changes.push(change);
    }

    // Owned, and no longer desired. Consumers of a destroyed stream go with it.
    let desired_streams: BTreeSet<&str> = desired.streams.iter().map(|s| s.name.as_str()).collect();
    let desired_consumers: BTreeSet<(&str, &str)> = desired
        .consumers
        .iter()
        .map(|c| (c.stream.as_str(), c.name.as_str()))
        .collect();
    for (name, stream) in live {
        let owned_stream = is_owned(&stream.config, owner);
        if owned_stream && !desired_streams.contains(name.as_str()) {
            let mut change = new_change(
                Target::Stream { name: name.clone() },
                Action::Delete,
                None,
                None,
            );
            change.reason = Some(holds(stream));
            change.loses_data = stream.messages != Some(0);
            change.drift = inventory_unchanged.then(Drift::default);
            if destroy {
                let (own, others): (Vec<_>, Vec<_>) = stream
                    .consumers
                    .iter()
                    .partition(|(_, c)| is_owned(&c.config, owner));
                if !others.is_empty()
                    && let Some(reason) = &mut change.reason
                {
                    let names: Vec<&str> = others.iter().map(|(n, _)| n.as_str()).collect();
                    reason.push_str(&format!(
                        "; consumers fleet did not make go with it: {}",
                        names.join(", ")
                    ));
                }
                changes.push(change);
                for (consumer_name, consumer) in own {
                    changes.push(consumer_delete(name, consumer_name, consumer));
                }
                continue;
            }
            changes.push(change);
            continue;
        }
        for (consumer_name, consumer) in &stream.consumers {
            // Consumers agents create for themselves carry no mark: never touched.
            if is_owned(&consumer.config, owner)
                && !desired_consumers.contains(&(name.as_str(), consumer_name.as_str()))
            {
                let mut change = consumer_delete(name, consumer_name, consumer);
                change.drift = inventory_unchanged.then(Drift::default);
                changes.push(change);
            }
        }
    }
    if let Some(account) = account {
        block_beyond_limits(&mut changes, account);
    }
    if !allow_destroy {
        for change in changes.iter_mut().filter(|c| c.loses_data) {
            change.blocked.get_or_insert_with(|| {
                Blocked::unless(
                    "--allow-destroy",
                    "queued messages would be lost; apply refuses without --allow-destroy",
                )
            });
        }
    }
    changes
}

/// Blocks the creates that would take the account past its limit of
/// streams or consumers (JetStream's 10027 and 10026, "maximum ... exceeded").
/// Apply creates before it destroys, so what this plan destroys frees no
/// room for them.
fn block_beyond_limits(changes: &mut [Change], account: &Account) {
    for (what, is_this, held, max, code) in [
        (
            "streams",
            (|t: &Target| matches!(t, Target::Stream { .. })) as fn(&Target) -> bool,
            account.streams,
            account.max_streams,
            10027,
        ),
        (
            "consumers",
            |t: &Target| matches!(t, Target::Consumer { .. }),
            account.consumers,
            account.max_consumers,
            10026,
        ),
    ] {
        let Some(max) = max else {
            continue;
        };
        let created = changes
            .iter()
            .filter(|c| c.action == Action::Create && is_this(&c.target))
            .count() as u64;
        if held + created <= max {
            continue;
        }
        for change in changes
            .iter_mut()
            .filter(|c| c.action == Action::Create && is_this(&c.target))
        {
            change.blocked.get_or_insert_with(|| {
                Blocked::refused(format!(
                    "the NATS account holds {held} {what} and may hold {max}, so the {created} this plan creates would exceed it ({code}): raise the account's limit, or remove {what} first"
                ))
            });
        }
    }
}

/// Another stream on the server whose subjects overlap those `config`
/// gives stream `name`: JetStream refuses the create or update (10065,
/// "subjects overlap with an existing stream"), so the change is blocked,
/// naming that stream.
fn overlapping_stream(
    name: &str,
    config: &Value,
    live: &LiveJetStream,
    desired: &DesiredJetStream,
    owner: &str,
) -> Option<Blocked> {
    let subjects = |config: &Value| -> Vec<String> {
        config["subjects"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect()
    };
    let ours = subjects(config);
    live.iter()
        .filter(|(other, _)| other.as_str() != name)
        .find_map(|(other, stream)| {
            let theirs = subjects(&stream.config);
            let (a, b) = ours.iter().find_map(|a| {
                theirs
                    .iter()
                    .find(|b| crate::subject::subjects_overlap(a, b))
                    .map(|b| (a, b))
            })?;
            let (whose, what_to_do) = if !is_owned(&stream.config, owner) {
                let whose = match stream.config["metadata"][ownership::JETSTREAM_OWNER_KEY].as_str()
                {
                    Some(fleet) => format!("another fleet's: {fleet}"),
                    None => "not this fleet's".to_string(),
                };
                (
                    whose,
                    format!("change the subjects, or have stream {other} removed first"),
                )
            } else if desired.streams.iter().any(|d| d.name == *other) {
                // Both change in the same step, in no fixed order.
                (
                    "this fleet's, whose subjects this plan changes too".to_string(),
                    "change the two streams' subjects in two applies".to_string(),
                )
            } else {
                // Apply creates and updates streams before it destroys any.
                (
                    "this fleet's, which this plan destroys, but only after it writes the others"
                        .to_string(),
                    format!(
                        "remove stream {other} in one apply (`enabled = false`), then add this one"
                    ),
                )
            };
            Some(Blocked::refused(format!(
                "its subject `{a}` overlaps `{b}` of stream {other} on the server ({whose}), and JetStream refuses streams whose subjects overlap (10065): {what_to_do}"
            )))
        })
}

type Fields = Map<String, Value>;

/// Marks a change as drift when the live config carries the hash of what
/// fleet would send now (the definition is unchanged, so the server's copy
/// moved), or, for a create, when the inventory is unchanged (it was deleted
/// outside fleet).
fn mark_drift(
    change: &mut Change,
    live: Option<&Value>,
    desired: &Value,
    inventory_unchanged: bool,
) {
    change.drift = match (change.action, live) {
        (Action::Create, _) => inventory_unchanged.then(Drift::default),
        (Action::Update | Action::Replace, Some(live)) => {
            let applied = ownership::applied_hash(live);
            (applied.is_some() && applied == ownership::applied_hash(desired)).then(Drift::default)
        }
        _ => None,
    };
}

/// A live stream or consumer, as far as planning one change needs it.
struct Existing<'a> {
    config: &'a Value,
    /// Messages a destroy would lose; `None` when the server did not say,
    /// which counts as some (fail closed).
    at_risk: Option<u64>,
    /// Those messages, in words.
    holds: String,
}

/// Plans one stream or consumer: create, leave alone, update in place, or
/// replace when `immutable` names a field the server cannot change.
fn plan_one(
    target: Target,
    desired: &Value,
    existing: Option<Existing<'_>>,
    normalize: fn(&Value) -> Fields,
    immutable: impl Fn(&Fields, &Fields) -> Vec<String>,
    owner: &str,
    adopt: bool,
) -> Change {
    let Some(existing) = existing else {
        return new_change(
            target,
            Action::Create,
            Some(describe_all(&desired_fields(normalize, desired))),
            Some(desired.clone()),
        );
    };
    if !is_owned(existing.config, owner) && !adopt {
        return unowned(target);
    }
    let (before, after) = (
        normalize(existing.config),
        desired_fields(normalize, desired),
    );
    let diff = field_diff(&before, &after);
    let immutable = immutable(&before, &after);
    if diff.is_empty() {
        new_change(target, Action::NoOp, None, None)
    } else if !immutable.is_empty() {
        let mut change = new_change(target, Action::Replace, Some(diff), Some(desired.clone()));
        change.reason = Some(format!(
            "{} cannot change in place; {}",
            immutable.join(", "),
            existing.holds
        ));
        change.loses_data = existing.at_risk != Some(0);
        change
    } else {
        new_change(
            target,
            Action::Update,
            Some(diff),
            Some(merged(existing.config, desired)),
        )
    }
}

/// The fields fleet manages on a desired config, normalised: those of
/// [`MANAGED_WHEN_SET`] only when the config has them.
fn desired_fields(normalize: fn(&Value) -> Fields, desired: &Value) -> Fields {
    normalize(desired)
        .into_iter()
        .filter(|(field, _)| {
            !MANAGED_WHEN_SET.contains(&field.as_str()) || !desired[field].is_null()
        })
        .collect()
}

fn new_change(
    target: Target,
    action: Action,
    diff: Option<String>,
    desired: Option<Value>,
) -> Change {
    Change {
        diff,
        desired: desired.map(Body::new),
        ..Change::new(target, action, Wave::JetStream)
    }
}

/// Deleting a consumer: it loses the messages it has pending, or may, when
/// the server did not say how many.
fn consumer_delete(stream: &str, name: &str, consumer: &LiveConsumer) -> Change {
    let mut change = new_change(
        Target::Consumer {
            stream: stream.to_string(),
            name: name.to_string(),
        },
        Action::Delete,
        None,
        None,
    );
    change.reason = Some(pending(consumer.pending));
    change.loses_data = consumer.pending != Some(0);
    change
}

fn unowned(target: Target) -> Change {
    let what = match target {
        Target::Stream { .. } => "stream",
        _ => "consumer",
    };
    let mut change = new_change(target, Action::Unowned, None, None);
    change.reason = Some(format!(
        "a {what} of this name exists without fleet's metadata; apply with --adopt to take it over"
    ));
    change.blocked = Some(Blocked::unless(
        "--adopt",
        format!("the {what} is not fleet's; apply refuses without --adopt"),
    ));
    change
}

fn holds(stream: &LiveStream) -> String {
    match stream.messages {
        Some(messages) => format!("holds {messages} messages ({} bytes)", stream.bytes),
        None => {
            "holds an unknown number of messages (the server did not report them), counted as some"
                .into()
        }
    }
}

fn pending(count: Option<u64>) -> String {
    match count {
        Some(count) => format!("{count} messages pending or unacknowledged"),
        None => "an unknown number of messages pending (the server did not report them), counted as some".into(),
    }
}

/// The live config with fleet's fields laid over it: settings made outside
/// fleet survive an update, and so does the server's own `_nats.*` metadata.
fn merged(live: &Value, desired: &Value) -> Value {
    let mut out = live.clone();
    if let (Some(out_map), Some(desired_map)) = (out.as_object_mut(), desired.as_object()) {
        for (key, value) in desired_map {
            if key == "metadata" {
                let mut metadata = server_metadata(&live["metadata"]);
                if let Some(values) = value.as_object() {
                    metadata.extend(values.clone());
                }
                out_map.insert(key.clone(), Value::Object(metadata));
            } else {
                out_map.insert(key.clone(), value.clone());
            }
        }
        // Both forms cannot be sent at once.
        if desired_map.contains_key("filter_subject") {
            out_map.remove("filter_subjects");
        } else if desired_map.contains_key("filter_subjects") {
            out_map.remove("filter_subject");
        }
    }
    out
}

fn server_metadata(metadata: &Value) -> Map<String, Value> {
    metadata
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| k.starts_with("_nats."))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// Metadata without the server's own `_nats.*` keys and fleet's record of
/// what it applied: neither is a change.
fn user_metadata(metadata: &Value) -> Value {
    Value::Object(
        metadata
            .as_object()
            .map(|m| {
                m.iter()
                    .filter(|(k, _)| {
                        !k.starts_with("_nats.") && *k != ownership::JETSTREAM_APPLIED_HASH_KEY
                    })
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default(),
    )
}

/// The managed fields of a stream config, with the server's defaults filled in.
pub fn normalized_stream(config: &Value) -> Fields {
    let mut out = Map::new();
    for field in STREAM_FIELDS {
        let value = &config[*field];
        let value = match (*field, value) {
            ("metadata", v) => user_metadata(v),
            ("duplicate_window", v) if v.as_u64().unwrap_or(0) == 0 => {
                // The server's default: 2m, or max_age when that is shorter.
                let max_age = config["max_age"].as_u64().unwrap_or(0);
                json!(if max_age > 0 && max_age < TWO_MINUTES {
                    max_age
                } else {
                    TWO_MINUTES
                })
            }
            (_, Value::Null) => match *field {
                "subjects" => json!([]),
                "retention" => json!("limits"),
                "storage" => json!("file"),
                "num_replicas" => json!(1),
                "discard" => json!("old"),
                "max_age" => json!(0),
                "max_bytes" | "max_msgs" | "max_msg_size" | "max_msgs_per_subject" => json!(-1),
                "description" => json!(""),
                "allow_direct" => json!(false),
                "compression" => json!("none"),
                "sources" => json!([]),
                _ => Value::Null,
            },
            ("sources", v) => normalized_sources(v),
            (_, v) => v.clone(),
        };
        out.insert(field.to_string(), value);
    }
    out
}

/// Sources as fleet writes them (name and filter), in name order: the
/// server adds settings of its own to each.
fn normalized_sources(sources: &Value) -> Value {
    let mut out: Vec<Value> = sources
        .as_array()
        .map(|list| {
            list.iter()
                .map(|source| {
                    let mut fields = Map::new();
                    fields.insert("name".into(), source["name"].clone());
                    if let Some(filter) =
                        source["filter_subject"].as_str().filter(|f| !f.is_empty())
                    {
                        fields.insert("filter_subject".into(), filter.into());
                    }
                    Value::Object(fields)
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    Value::Array(out)
}

/// The managed fields of a consumer config, with the server's defaults.
pub fn normalized_consumer(config: &Value) -> Fields {
    let mut out = Map::new();
    for field in CONSUMER_FIELDS {
        let value = match *field {
            // One filter or several: the same thing, compared as a sorted set.
            "filter_subjects" => {
                let mut filters: Vec<String> = config["filter_subjects"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                if let Some(single) = config["filter_subject"].as_str().filter(|s| !s.is_empty()) {
                    filters.push(single.to_string());
                }
                filters.sort();
                filters.dedup();
                json!(filters)
            }
            // The server sets ack_wait to the first backoff step when there is one.
            "ack_wait" => match config["backoff"].as_array().and_then(|b| b.first()) {
                Some(first) => first.clone(),
                None => config["ack_wait"]
                    .as_u64()
                    .map_or(json!(30_000_000_000u64), |v| json!(v)),
            },
            "metadata" => user_metadata(&config["metadata"]),
            field => match (field, &config[field]) {
                ("deliver_policy", Value::Null) => json!("all"),
                ("ack_policy", Value::Null) => json!("none"),
                ("max_deliver", Value::Null) => json!(-1),
                ("max_ack_pending", Value::Null) => json!(1000),
                ("backoff", Value::Null) => json!([]),
                ("inactive_threshold", Value::Null) => json!(0),
                ("description", Value::Null) => json!(""),
                (_, v) => v.clone(),
            },
        };
        out.insert(field.to_string(), value);
    }
    out
}

fn immutable_stream_changes(
    before: &Fields,
    after: &Fields,
    server: (u64, u64, u64),
) -> Vec<String> {
    let mut fields = Vec::new();
    if before["storage"] != after["storage"] {
        fields.push("storage".to_string());
    }
    let workqueue = |m: &Map<String, Value>| m["retention"] == "workqueue";
    if before["retention"] != after["retention"]
        && (workqueue(before) || workqueue(after) || server < (2, 10, 0))
    {
        fields.push("retention (to or from workqueue)".to_string());
    }
    fields
}

fn immutable_consumer_changes(before: &Fields, after: &Fields) -> Vec<String> {
    ["deliver_policy", "ack_policy"]
        .into_iter()
        .filter(|field| before[*field] != after[*field])
        .map(str::to_string)
        .collect()
}

/// `field: before -> after`, one line per changed field.
fn field_diff(before: &Fields, after: &Map<String, Value>) -> String {
    let mut out = String::new();
    for (field, new) in after {
        let old = &before[field];
        if old != new {
            out.push_str(&format!(
                "~ {field}: {} -> {}\n",
                show(field, old),
                show(field, new)
            ));
        }
    }
    out
}

fn describe_all(config: &Fields) -> String {
    config
        .iter()
        .map(|(field, value)| format!("+ {field}: {}\n", show(field, value)))
        .collect()
}

fn show(field: &str, value: &Value) -> String {
    if DURATION_FIELDS.contains(&field) {
        return match value {
            Value::Number(n) => format_nanos(n.as_u64().unwrap_or(0)),
            Value::Array(items) => format!(
                "[{}]",
                items
                    .iter()
                    .map(|v| format_nanos(v.as_u64().unwrap_or(0)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            other => other.to_string(),
        };
    }
    match value {
        Value::String(s) if s.is_empty() => "\"\"".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn format_nanos(nanos: u64) -> String {
    if nanos == 0 {
        return "0s (unlimited)".into();
    }
    let duration = Duration::from_nanos(nanos);
    let mut millis = duration.as_millis();
    let mut out = String::new();
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
        ("ms", 1),
    ] {
        if millis >= size {
            out.push_str(&format!("{}{unit}", millis / size));
            millis %= size;
        }
    }
    if out.is_empty() {
        format!("{nanos}ns")
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::live::jetstream::LiveConsumer;
    use crate::render::jetstream::{DesiredConsumer, DesiredStream};

    const DAY: u64 = 86_400_000_000_000;
    const OPTIONS: Options<'static> = Options {
        owner: "demo",
        server: (2, 12, 0),
        clustered: false,
        adopt: false,
        inventory_unchanged: false,
        allow_destroy: false,
        account: None,
        destroy: false,
    };

    fn desired(max_age_days: u64, storage: &str) -> DesiredJetStream {
        DesiredJetStream {
            streams: vec![DesiredStream {
                name: "agent-tasks".into(),
                config: json!({
                    "name": "agent-tasks", "subjects": ["tasks.>"], "retention": "workqueue", "storage": storage,
                    "num_replicas": 1, "discard": "old", "max_age": max_age_days * DAY, "max_bytes": -1, "max_msgs": -1,
                    "max_msg_size": -1, "metadata": { "fleet.owner": "demo" }
                }),
            }],
            consumers: vec![DesiredConsumer {
                stream: "agent-tasks".into(),
                name: "devops-agent".into(),
                config: json!({
                    "durable_name": "devops-agent", "filter_subject": "tasks.devops.>", "deliver_policy": "all",
                    "ack_policy": "explicit", "ack_wait": 30_000_000_000u64, "max_deliver": 5, "max_ack_pending": 1000,
                    "metadata": { "fleet.owner": "demo" }
                }),
            }],
        }
    }

    /// What a 2.12 server reports for the desired config above.
    fn live(max_age_days: u64, messages: u64) -> LiveJetStream {
        let stream = LiveStream {
            config: json!({
                "name": "agent-tasks", "subjects": ["tasks.>"], "retention": "workqueue", "storage": "file",
                "num_replicas": 1, "discard": "old", "max_age": max_age_days * DAY, "max_bytes": -1, "max_msgs": -1,
                "max_msg_size": -1, "duplicate_window": TWO_MINUTES, "max_msgs_per_subject": -1, "allow_direct": true,
                "metadata": { "fleet.owner": "demo", "_nats.req.level": "0", "_nats.ver": "2.12.0" }
            }),
            messages: Some(messages),
            bytes: messages * 100,
            consumers: BTreeMap::from([(
                "devops-agent".to_string(),
                LiveConsumer {
                    config: json!({
                        "durable_name": "devops-agent", "name": "devops-agent", "filter_subject": "tasks.devops.>",
                        "deliver_policy": "all", "ack_policy": "explicit", "ack_wait": 30_000_000_000u64, "max_deliver": 5,
                        "max_ack_pending": 1000, "max_waiting": 512, "replay_policy": "instant", "num_replicas": 0,
                        "metadata": { "fleet.owner": "demo", "_nats.ver": "2.12.0" }
                    }),
                    pending: Some(0),
                },
            )]),
        };
        BTreeMap::from([("agent-tasks".to_string(), stream)])
    }

    fn actions(changes: &[Change]) -> Vec<(String, Action)> {
        changes
            .iter()
            .map(|c| (c.target.to_string(), c.action))
            .collect()
    }

    #[test]
    fn a_destroy_lists_the_streams_own_consumers_and_names_the_others() {
        let mut live = live(7, 2);
        let stream = live.get_mut("agent-tasks").unwrap();
        stream.consumers.insert(
            "made-by-an-agent".into(),
            LiveConsumer {
                config: json!({ "durable_name": "made-by-an-agent" }),
                pending: Some(0),
            },
        );
        live.insert(
            "theirs".into(),
            LiveStream {
                config: json!({ "name": "theirs", "metadata": { "fleet.owner": "other" } }),
                messages: Some(0),
                bytes: 0,
                consumers: BTreeMap::new(),
            },
        );
        let nothing = DesiredJetStream {
            streams: Vec::new(),
            consumers: Vec::new(),
        };
        let destroy = Options {
            destroy: true,
            ..OPTIONS
        };
        let changes = plan(&nothing, &live, &destroy);
        assert_eq!(
            actions(&changes),
            [
                ("jetstream stream agent-tasks".to_string(), Action::Delete),
                (
                    "jetstream consumer agent-tasks/devops-agent".to_string(),
                    Action::Delete
                ),
            ],
            "another fleet's stream is not touched"
        );
        assert_eq!(
            changes[0].reason.as_deref(),
            Some(
                "holds 2 messages (200 bytes); consumers fleet did not make go with it: made-by-an-agent"
            )
        );
        assert!(changes[0].blocked.is_some(), "it holds messages");
        assert!(changes[1].blocked.is_none(), "nothing pending");
        // A prune (the stream dropped from the definition) lists the stream alone.
        assert_eq!(plan(&nothing, &live, &OPTIONS).len(), 1);
    }

    #[test]
    fn server_defaults_are_not_changes() {
        let changes = plan(&desired(7, "file"), &live(7, 0), &OPTIONS);
        assert!(
            changes.iter().all(|c| c.action == Action::NoOp),
            "{changes:#?}"
        );
    }

    #[test]
    fn max_age_is_updated_in_place_keeping_other_settings() {
        let changes = plan(&desired(14, "file"), &live(7, 3), &OPTIONS);
        let stream = &changes[0];
        assert_eq!(stream.action, Action::Update);
        assert_eq!(stream.diff.as_deref(), Some("~ max_age: 7d -> 14d\n"));
        let body = stream.desired.as_ref().unwrap().sent();
        assert_eq!(
            body["allow_direct"], true,
            "a setting made outside fleet survives"
        );
        assert_eq!(body["metadata"]["_nats.ver"], "2.12.0");
        assert_eq!(body["max_age"], 14 * DAY);
    }

    #[test]
    fn storage_change_is_a_replace_that_loses_messages() {
        let changes = plan(&desired(7, "memory"), &live(7, 12), &OPTIONS);
        assert_eq!(
            actions(&changes),
            [
                ("jetstream stream agent-tasks".to_string(), Action::Replace),
                (
                    "jetstream consumer agent-tasks/devops-agent".to_string(),
                    Action::Replace
                ),
            ]
        );
        assert!(changes[0].loses_data);
        assert!(
            changes[0]
                .reason
                .as_deref()
                .unwrap()
                .contains("holds 12 messages"),
            "{:?}",
            changes[0].reason
        );
    }

    #[test]
    fn a_replaced_stream_takes_its_consumers_with_it() {
        let mut live = live(7, 12);
        let stream = live.get_mut("agent-tasks").unwrap();
        stream.consumers.get_mut("devops-agent").unwrap().pending = Some(5);
        stream.consumers.insert(
            "adhoc".into(),
            LiveConsumer {
                config: json!({ "durable_name": "adhoc" }),
                pending: Some(0),
            },
        );
        let changes = plan(&desired(7, "memory"), &live, &OPTIONS);
        let consumer = &changes[1];
        assert_eq!(consumer.action, Action::Replace);
        assert!(consumer.loses_data);
        let reason = consumer.reason.as_deref().unwrap();
        assert!(reason.contains("5 messages pending"), "{reason}");
        let stream_reason = changes[0].reason.as_deref().unwrap();
        assert!(stream_reason.contains("adhoc"), "{stream_reason}");
    }

    #[test]
    fn counts_the_server_did_not_report_are_not_zero() {
        let mut live = live(7, 0);
        let stream = live.get_mut("agent-tasks").unwrap();
        stream.messages = None;
        stream.consumers.get_mut("devops-agent").unwrap().pending = None;
        let changes = plan(&desired(7, "memory"), &live, &OPTIONS);
        assert!(changes[0].loses_data, "{:?}", changes[0]);
        assert!(changes[1].loses_data, "{:?}", changes[1]);
        let mut desired = desired(7, "file");
        desired.consumers.clear();
        let changes = plan(&desired, &live, &OPTIONS);
        assert_eq!(changes[1].action, Action::Delete);
        assert!(changes[1].loses_data);
        // And so blocked, as a count of some would be.
        let blocked = changes[1].blocked.as_ref().expect("blocked");
        assert_eq!(blocked.unless.as_deref(), Some("--allow-destroy"));
    }

    #[test]
    fn a_change_made_on_the_server_is_drift() {
        let mut desired = desired(7, "file");
        crate::ownership::stamp_jetstream(&mut desired.streams[0].config);
        let mut live = live(7, 0);
        let stream = live.get_mut("agent-tasks").unwrap();
        stream.config["metadata"] = desired.streams[0].config["metadata"].clone();
        // Someone set max_age by hand; the definition says 7d as before.
        stream.config["max_age"] = json!(DAY);
        let changes = plan(&desired, &live, &OPTIONS);
        assert_eq!(changes[0].action, Action::Update);
        assert!(changes[0].drift.is_some());
        // The definition changed as well: not drift, a deploy.
        let mut newer = desired.clone();
        newer.streams[0].config["max_age"] = json!(14 * DAY);
        crate::ownership::stamp_jetstream(&mut newer.streams[0].config);
        let changes = plan(&newer, &live, &OPTIONS);
        assert_eq!(changes[0].action, Action::Update);
        assert!(changes[0].drift.is_none());
    }

    #[test]
    fn unowned_consumers_are_never_touched() {
        let mut live = live(7, 0);
        let stream = live.get_mut("agent-tasks").unwrap();
        stream.consumers.insert(
            "adhoc".into(),
            LiveConsumer {
                config: json!({ "durable_name": "adhoc" }),
                pending: Some(4),
            },
        );
        let mut desired = desired(7, "file");
        desired.consumers.clear();
        let changes = plan(&desired, &live, &OPTIONS);
        assert_eq!(
            actions(&changes),
            [
                ("jetstream stream agent-tasks".to_string(), Action::NoOp),
                (
                    "jetstream consumer agent-tasks/devops-agent".to_string(),
                    Action::Delete
                ),
            ]
        );
    }

    #[test]
    fn keys_managed_when_set_are_compared_only_then() {
        // The live stream has allow_direct (an operator's): left out, kept.
        let changes = plan(&desired(7, "file"), &live(7, 0), &OPTIONS);
        assert_eq!(changes[0].action, Action::NoOp);
        let mut set = desired(7, "file");
        set.streams[0].config["allow_direct"] = json!(false);
        let changes = plan(&set, &live(7, 0), &OPTIONS);
        assert_eq!(changes[0].action, Action::Update);
        assert_eq!(
            changes[0].diff.as_deref(),
            Some("~ allow_direct: true -> false\n")
        );
        // Sources: in any order, with the server's own settings, the same.
        let mut live = live(7, 0);
        live.get_mut("agent-tasks").unwrap().config["sources"] = json!([
            { "name": "b", "filter_subject": "", "opt_start_seq": 0 },
            { "name": "a", "filter_subject": "a.x.>" },
        ]);
        let mut sourced = desired(7, "file");
        sourced.streams[0].config["sources"] =
            json!([{ "name": "a", "filter_subject": "a.x.>" }, { "name": "b" }]);
        let changes = plan(&sourced, &live, &OPTIONS);
        assert_eq!(changes[0].action, Action::NoOp, "{changes:#?}");
    }

    #[test]
    fn ack_wait_beside_backoff_is_no_change() {
        let mut desired = desired(7, "file");
        desired.consumers[0].config["ack_wait"] = json!(60_000_000_000u64);
        desired.consumers[0].config["backoff"] = json!([10_000_000_000u64, 60_000_000_000u64]);
        let mut live = live(7, 0);
        let consumer = live
            .get_mut("agent-tasks")
            .unwrap()
            .consumers
            .get_mut("devops-agent")
            .unwrap();
        // The server took backoff[0] as ack_wait.
        consumer.config["ack_wait"] = json!(10_000_000_000u64);
        consumer.config["backoff"] = json!([10_000_000_000u64, 60_000_000_000u64]);
        let changes = plan(&desired, &live, &OPTIONS);
        assert_eq!(changes[1].action, Action::NoOp, "{changes:#?}");
    }

    #[test]
    fn deliver_policy_replaces_and_inactive_threshold_updates() {
        let mut live = live(7, 0);
        live.get_mut("agent-tasks")
            .unwrap()
            .consumers
            .get_mut("devops-agent")
            .unwrap()
            .pending = Some(2);
        let mut threshold = desired(7, "file");
        threshold.consumers[0].config["inactive_threshold"] = json!(3_600_000_000_000u64);
        let changes = plan(&threshold, &live, &OPTIONS);
        assert_eq!(changes[1].action, Action::Update);
        assert_eq!(
            changes[1].diff.as_deref(),
            Some("~ inactive_threshold: 0s (unlimited) -> 1h\n")
        );
        let mut policy = desired(7, "file");
        policy.consumers[0].config["deliver_policy"] = json!("new");
        let changes = plan(&policy, &live, &OPTIONS);
        assert_eq!(changes[1].action, Action::Replace);
        assert!(changes[1].loses_data);
        assert_eq!(
            changes[1].reason.as_deref(),
            Some("deliver_policy cannot change in place; 2 messages pending or unacknowledged")
        );
    }

    #[test]
    fn a_stream_overlapping_one_on_the_server_is_blocked_naming_it() {
        // Fleet's stream renamed, its subjects kept.
        let mut renamed = desired(7, "file");
        renamed.streams[0].name = "tasks-2".into();
        renamed.streams[0].config["name"] = json!("tasks-2");
        renamed.consumers.clear();
        let blocked = |live: &LiveJetStream, desired: &DesiredJetStream| {
            let changes = plan(desired, live, &OPTIONS);
            let stream = changes
                .iter()
                .find(|c| c.target.to_string() == "jetstream stream tasks-2")
                .unwrap();
            assert_eq!(stream.action, Action::Create);
            stream.blocked.clone()
        };
        // The old stream is fleet's: apply would destroy it only after
        // creating the new one, which the server refuses.
        let live = live(7, 0);
        let reason = blocked(&live, &renamed).expect("blocked").reason;
        assert!(
            reason.contains("`tasks.>` overlaps `tasks.>` of stream agent-tasks")
                && reason.contains("which this plan destroys"),
            "{reason}"
        );
        // A stream of someone else's.
        let mut theirs = live["agent-tasks"].clone();
        theirs.config["name"] = json!("legacy");
        theirs.config["subjects"] = json!(["tasks.devops.*"]);
        theirs.config["metadata"] = json!({});
        let foreign = LiveJetStream::from([("legacy".to_string(), theirs)]);
        let refused = blocked(&foreign, &renamed).expect("blocked");
        assert_eq!(refused.unless, None, "no flag allows it");
        assert!(
            refused
                .reason
                .contains("`tasks.>` overlaps `tasks.devops.*` of stream legacy")
                && refused.reason.contains("not this fleet's"),
            "{refused:?}"
        );
        // Another fleet's (or this one's in another namespace) is named so.
        let mut other_fleet = foreign.clone();
        other_fleet.get_mut("legacy").unwrap().config["metadata"] =
            json!({ "fleet.owner": "demo/staging" });
        let reason = blocked(&other_fleet, &renamed).expect("blocked").reason;
        assert!(
            reason.contains("(another fleet's: demo/staging)"),
            "{reason}"
        );
        // Apart, nothing is blocked.
        renamed.streams[0].config["subjects"] = json!(["jobs.>"]);
        assert_eq!(blocked(&foreign, &renamed), None);
        assert_eq!(blocked(&live, &renamed), None);
    }

    #[test]
    fn replicas_on_a_server_outside_a_cluster_are_blocked() {
        let mut desired = desired(7, "file");
        desired.streams[0].config["num_replicas"] = json!(3);
        let changes = plan(&desired, &live(7, 0), &OPTIONS);
        assert_eq!(changes[0].action, Action::Update);
        let reason = &changes[0].blocked.as_ref().expect("blocked").reason;
        assert!(
            reason.contains("3 replicas") && reason.contains("10074"),
            "{reason}"
        );
        let clustered = Options {
            clustered: true,
            ..OPTIONS
        };
        assert!(plan(&desired, &live(7, 0), &clustered)[0].blocked.is_none());
    }

    #[test]
    fn creates_beyond_the_accounts_limits_are_blocked() {
        let mut desired = desired(7, "file");
        desired.streams[0].name = "new".into();
        desired.streams[0].config["subjects"] = json!(["jobs.>"]);
        desired.consumers[0].stream = "new".into();
        let account = |max_streams| Account {
            streams: 1,
            consumers: 1,
            max_streams,
            max_consumers: None,
        };
        let full = account(Some(1));
        let options = Options {
            account: Some(&full),
            ..OPTIONS
        };
        let changes = plan(&desired, &live(7, 0), &options);
        let stream = changes
            .iter()
            .find(|c| c.target.to_string() == "jetstream stream new")
            .unwrap();
        let reason = &stream.blocked.as_ref().expect("blocked").reason;
        assert!(
            reason.contains("holds 1 streams and may hold 1") && reason.contains("10027"),
            "{reason}"
        );
        let consumer = changes
            .iter()
            .find(|c| matches!(&c.target, Target::Consumer { stream, .. } if stream == "new"))
            .unwrap();
        assert!(consumer.blocked.is_none(), "{consumer:?}");
        let room = account(Some(2));
        let options = Options {
            account: Some(&room),
            ..OPTIONS
        };
        let changes = plan(&desired, &live(7, 0), &options);
        assert!(
            changes
                .iter()
                .all(|c| c.action == Action::Delete || c.blocked.is_none()),
            "{changes:#?}"
        );
    }

    #[test]
    fn lost_messages_block_the_change_unless_destroying_is_allowed() {
        let mut desired = desired(7, "file");
        desired.consumers.clear();
        let mut live = live(7, 0);
        live.get_mut("agent-tasks")
            .unwrap()
            .consumers
            .get_mut("devops-agent")
            .unwrap()
            .pending = Some(2);
        let changes = plan(&desired, &live, &OPTIONS);
        let blocked = changes[1].blocked.as_ref().expect("blocked");
        assert_eq!(blocked.unless.as_deref(), Some("--allow-destroy"));
        let allowed = Options {
            allow_destroy: true,
            ..OPTIONS
        };
        let changes = plan(&desired, &live, &allowed);
        assert_eq!(changes[1].action, Action::Delete);
        assert!(changes[1].loses_data && changes[1].blocked.is_none());
        // Nothing pending: nothing lost, nothing blocked.
        let changes = plan(&desired, &self::live(7, 0), &OPTIONS);
        assert!(!changes[1].loses_data && changes[1].blocked.is_none());
    }

    #[test]
    fn a_stream_fleet_does_not_own_is_left_alone() {
        let mut live = live(7, 0);
        live.get_mut("agent-tasks").unwrap().config["metadata"] = json!({});
        let changes = plan(&desired(14, "file"), &live, &OPTIONS);
        assert_eq!(changes[0].action, Action::Unowned);
    }
}
