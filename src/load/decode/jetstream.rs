//! Streams, and each agent's consumer on one: names, subjects and limits.

use std::time::Duration;

use super::*;
use crate::load::diagnostic::Diagnostic;
use crate::load::read::{At, BadSize, Reader, parse_bytes, suggest};
use crate::load::source::{Origin, Table, Value};
use crate::model::*;
use crate::subject::{subject_covers, subjects_overlap, valid_subject};

/// A stream of the fleet, by its key under [streams]; `stream` is `None`
/// when an environment switches it off.
pub(super) struct StreamEntry {
    pub(super) key: String,
    pub(super) stream: Option<Stream>,
}

/// The agent's own consumer, `<role>-agent`.
pub(super) fn decode_consumer(
    r: &mut Reader,
    t: &Table,
    role: &str,
    cx: &AgentContext<'_>,
) -> Option<Consumer> {
    let table = r.get_table(t, "consumer")?;
    let c = table.value;
    r.check_keys(c, "consumer", CONSUMER_KEYS);
    if r.boolean(c, "enabled") == Some(false) {
        return None;
    }
    let stream_name = required_string(r, c, "stream", "consumer", &table.origin)?;
    let stream = defined_stream(r, &stream_name, cx.streams, "consumer")?;
    consumer_settings(r, c, &table.origin, format!("{role}-agent"), stream, role)
}

/// `consumers.<stream>`: the agent's consumers on further streams, each
/// `<role>-agent-<stream>`, in the order of their streams' names.
pub(super) fn decode_consumers(
    r: &mut Reader,
    t: &Table,
    role: &str,
    cx: &AgentContext<'_>,
    own: Option<&Consumer>,
) -> Vec<Consumer> {
    let Some(table) = r.get_table(t, "consumers") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in &table.value.entries {
        let Some(c) = r.table(&entry.node) else {
            continue;
        };
        r.check_keys(c, &format!("consumers.{}", entry.key), CONSUMERS_ENTRY_KEYS);
        if r.boolean(c, "enabled") == Some(false) {
            continue;
        }
        let key = At {
            value: entry.key.clone(),
            origin: entry.key_origin.clone(),
        };
        let Some(stream) = defined_stream(r, &key, cx.streams, "consumer") else {
            continue;
        };
        if let Some(own) = own.filter(|own| own.stream == stream.name) {
            r.report(
                Diagnostic::error(
                    &entry.key_origin,
                    format!("agent `{role}` already consumes from stream `{}` with its `consumer` ({})", entry.key, own.name),
                )
                .with_label("a second consumer on the same stream")
                .with_help("one consumer per stream: set `filter_subjects` on the one to cover both, or drop this entry"),
            );
            continue;
        }
        let name = format!("{role}-agent-{}", entry.key);
        out.extend(consumer_settings(
            r,
            c,
            &entry.key_origin,
            name,
            stream,
            role,
        ));
    }
    out.sort_by(|a, b| a.stream.cmp(&b.stream));
    out
}

/// `NATS_CONSUMERS`: every consumer of an agent that has more than one, as
/// `<stream>/<durable>` separated by spaces (neither name may hold `/` or a
/// space), its own consumer first.
pub(super) fn consumers_variable<'c>(consumers: impl Iterator<Item = &'c Consumer>) -> EnvVar {
    let value: Vec<String> = consumers
        .map(|c| format!("{}/{}", c.stream, c.name))
        .collect();
    EnvVar {
        name: "NATS_CONSUMERS".into(),
        value: EnvValue::Literal(value.join(" ")),
    }
}

/// The stream a consumer names by its key, when the fleet has it (and
/// runs it in this environment).
fn defined_stream<'s>(
    r: &mut Reader,
    key: &At<String>,
    streams: &'s [StreamEntry],
    user: &str,
) -> Option<&'s Stream> {
    let Some(entry) = streams.iter().find(|s| s.key == key.value) else {
        let known: Vec<&str> = streams.iter().map(|s| s.key.as_str()).collect();
        let mut d = Diagnostic::error(
            &key.origin,
            format!("stream `{}` is not defined", key.value),
        )
        .with_label("no such stream");
        d = match suggest(&key.value, &known) {
            Some(best) => d.with_help(format!("did you mean `{best}`?")),
            None => d.with_help(format!("define it under [streams.{}]", key.value)),
        };
        r.report(d);
        return None;
    };
    if entry.stream.is_none() {
        r.report(
            Diagnostic::error(
                &key.origin,
                format!("stream `{}` is switched off (`enabled = false`)", key.value),
            )
            .with_label("the stream is not there")
            .with_help(format!(
                "drop this {user} in that environment, or drop `enabled = false` from [streams.{}]",
                key.value
            )),
        );
    }
    entry.stream.as_ref()
}

/// A consumer's settings, read from its table.
fn consumer_settings(
    r: &mut Reader,
    c: &Table,
    origin: &Origin,
    name: String,
    stream: &Stream,
    role: &str,
) -> Option<Consumer> {
    let filters: Vec<At<String>> = match r.strings(c, "filter_subjects") {
        Some(filters) => filters,
        None => {
            // The seed's convention: tasks for role R arrive on `<prefix>.R.>`.
            match stream.subjects.first().and_then(|s| s.strip_suffix(".>")) {
                Some(prefix) => vec![At {
                    value: format!("{prefix}.{role}.>"),
                    origin: origin.clone(),
                }],
                None => {
                    r.report(
                        Diagnostic::error(
                            origin,
                            format!(
                                "cannot derive the consumer's filter subject from stream `{}`",
                                stream.name
                            ),
                        )
                        .with_label("this consumer")
                        .with_help("set `filter_subjects = [\"...\"]`"),
                    );
                    return None;
                }
            }
        }
    };
    for filter in &filters {
        if !valid_subject(&filter.value) {
            r.report(
                Diagnostic::error(
                    &filter.origin,
                    format!("`{}` is not a valid NATS subject", filter.value),
                )
                .with_label("invalid subject"),
            );
        } else if stream.sources.as_ref().is_none_or(Vec::is_empty)
            && !stream
                .subjects
                .iter()
                .any(|s| subject_covers(s, &filter.value))
        {
            // A stream that sources others also holds their subjects.
            r.report(
                Diagnostic::error(
                    &filter.origin,
                    format!(
                        "filter subject `{}` is not covered by any subject of stream `{}` ({})",
                        filter.value,
                        stream.name,
                        stream.subjects.join(", ")
                    ),
                )
                .with_label("the consumer would never receive a message")
                .with_help("use a subject inside the stream's subjects, or add one to the stream"),
            );
        }
    }
    let backoff: Vec<At<Duration>> = match r.array(c, "backoff") {
        Some(items) => items.iter().filter_map(|n| r.node_duration_ns(n)).collect(),
        None => Vec::new(),
    };
    let max_deliver = r.integer(c, "max_deliver", -1, i64::from(i32::MAX));
    if let Some(max_deliver) = &max_deliver
        && !backoff.is_empty()
        && max_deliver.value != -1
        && (max_deliver.value as usize) <= backoff.len()
    {
        r.report(
            Diagnostic::error(
                &max_deliver.origin,
                "max_deliver must be greater than the number of backoff steps",
            )
            .with_label("too small for the backoff")
            .with_help("the server refuses max_deliver <= len(backoff)"),
        );
    }
    let ack_wait = r.duration_ns(c, "ack_wait");
    if let (Some(ack_wait), Some(first)) = (&ack_wait, backoff.first())
        && ack_wait.value != first.value
    {
        // The server replaces ack_wait with backoff[0] (nats-server's
        // setConsumerConfigDefaults); say so rather than plan it.
        r.report(
            Diagnostic::warning(
                &ack_wait.origin,
                "ack_wait differs from the first backoff step, which the server uses instead",
            )
            .with_label("ignored while `backoff` is set")
            .with_help("drop `ack_wait`, or make it the first backoff step"),
        );
    }
    let deliver_policy = deliver_policy(r, c);
    if deliver_policy != "all"
        && stream.retention == "workqueue"
        && let Some(policy) = c.get("deliver_policy")
    {
        r.report(
            Diagnostic::error(
                &policy.node.origin,
                format!(
                    "stream `{}` is a work queue: its consumers deliver all",
                    stream.name
                ),
            )
            .with_label("the server refuses this deliver_policy here (10101)")
            .with_help("drop `deliver_policy` on a work-queue stream's consumer"),
        );
    }
    Some(Consumer {
        name,
        stream: stream.name.clone(),
        filter_subjects: filters.into_iter().map(|f| f.value).collect(),
        deliver_policy,
        inactive_threshold: r.duration_ns(c, "inactive_threshold").map(|d| d.value),
        ack_wait: ack_wait.map_or(Duration::from_secs(30), |d| d.value),
        max_deliver: max_deliver.map_or(-1, |m| m.value),
        max_ack_pending: r
            .integer(c, "max_ack_pending", -1, i64::from(i32::MAX))
            .map_or(1000, |m| m.value),
        backoff: backoff.into_iter().map(|b| b.value).collect(),
        description: r.string(c, "description").map(|d| d.value),
    })
}

/// Where a new consumer starts in its stream. The start-at policies need a
/// sequence or time that fleet does not take: refused with a reason.
fn deliver_policy(r: &mut Reader, c: &Table) -> String {
    const POLICIES: [&str; 4] = ["all", "last", "new", "last_per_subject"];
    let Some(policy) = r.string(c, "deliver_policy") else {
        return "all".into();
    };
    if POLICIES.contains(&policy.value.as_str()) {
        return policy.value;
    }
    let mut d = Diagnostic::error(
        &policy.origin,
        format!("`{}` is not a deliver_policy fleet supports", policy.value),
    )
    .with_label(format!("expected one of: {}", POLICIES.join(", ")));
    d = if matches!(policy.value.as_str(), "by_start_sequence" | "by_start_time") {
        d.with_help("a start sequence or time only means something once, when the consumer is made: create such a consumer by hand, or use `new` to start from the messages that arrive after it")
    } else if let Some(best) = suggest(&policy.value, &POLICIES) {
        d.with_help(format!("did you mean `{best}`?"))
    } else {
        d
    };
    r.report(d);
    "all".into()
}

pub(super) fn decode_streams(r: &mut Reader, root: &Table) -> Vec<StreamEntry> {
    let Some(streams) = r.get_table(root, "streams") else {
        return Vec::new();
    };
    let mut out: Vec<StreamEntry> = Vec::new();
    // Sources name other streams by key: resolved once all are read.
    let mut sources: Vec<(usize, Vec<SourceAt>)> = Vec::new();
    for entry in &streams.value.entries {
        let Some(s) = r.table(&entry.node) else {
            continue;
        };
        let what = format!("stream `{}`", entry.key);
        r.check_keys(s, &what, STREAM_KEYS);
        if !valid_stream_name(&entry.key) {
            r.report(
                Diagnostic::error(&entry.key_origin, format!("`{}` is not a valid stream name", entry.key))
                    .with_label("not a JetStream name")
                    .with_help("use letters, digits, '-' and '_' (no spaces, '.', '*', '>', '/' or '\\'), at most 255 characters"),
            );
            // Read on, so its subjects are checked and consumers naming it
            // are not told it is undefined.
        }
        if r.boolean(s, "enabled") == Some(false) {
            out.push(StreamEntry {
                key: entry.key.clone(),
                stream: None,
            });
            continue;
        }
        let name = match r.string(s, "name") {
            Some(name) if valid_stream_name(&name.value) => name.value,
            Some(name) => {
                r.report(
                    Diagnostic::error(&name.origin, format!("`{}` is not a valid stream name", name.value))
                        .with_label("not a JetStream name")
                        .with_help("use letters, digits, '-' and '_' (no spaces, '.', '*', '>', '/' or '\\'), at most 255 characters"),
                );
                entry.key.clone()
            }
            None => entry.key.clone(),
        };
        if let Some(other) = out
            .iter()
            .find(|o| o.stream.as_ref().is_some_and(|o| o.name == name))
        {
            r.report(
                Diagnostic::error(
                    &entry.key_origin,
                    format!(
                        "stream `{}` has the same server name `{name}` as stream `{}`",
                        entry.key, other.key
                    ),
                )
                .with_label("two streams, one name")
                .with_help("give each stream its own `name`"),
            );
        }
        let stream_sources = decode_sources(r, s);
        // A stream that only gathers others' messages needs no subjects.
        let subjects = if stream_sources.as_ref().is_some_and(|s| !s.is_empty()) {
            r.strings(s, "subjects").unwrap_or_default()
        } else {
            required_strings(r, s, "subjects", &what, &entry.key_origin)
        };
        for subject in &subjects {
            if !valid_subject(&subject.value) {
                r.report(
                    Diagnostic::error(
                        &subject.origin,
                        format!("`{}` is not a valid NATS subject", subject.value),
                    )
                    .with_label("invalid subject")
                    .with_help(
                        "tokens separated by '.', with '*' for one token and '>' only at the end",
                    ),
                );
            }
            for (other_key, other) in out
                .iter()
                .filter_map(|o| o.stream.as_ref().map(|s| (&o.key, s)))
            {
                if let Some(clash) = other
                    .subjects
                    .iter()
                    .find(|o| subjects_overlap(o, &subject.value))
                {
                    r.report(
                        Diagnostic::error(
                            &subject.origin,
                            format!(
                                "subject `{}` overlaps `{clash}` of stream `{other_key}`",
                                subject.value
                            ),
                        )
                        .with_label("overlapping subjects")
                        .with_help("JetStream refuses streams whose subjects overlap"),
                    );
                }
            }
        }
        let retention = choice(
            r,
            s,
            "retention",
            &["limits", "interest", "workqueue"],
            "limits",
        );
        let storage = choice(r, s, "storage", &["file", "memory"], "file");
        let discard = choice(r, s, "discard", &["old", "new"], "old");
        let compression = s
            .get("compression")
            .map(|_| choice(r, s, "compression", &["none", "s2"], "none"));
        if let Some(list) = stream_sources {
            sources.push((out.len(), list));
        }
        out.push(StreamEntry {
            key: entry.key.clone(),
            stream: Some(Stream {
                name,
                subjects: subjects.into_iter().map(|s| s.value).collect(),
                retention,
                storage,
                replicas: r.integer(s, "replicas", 1, 5).map_or(1, |v| v.value as u32),
                max_age: r.duration_ns(s, "max_age").map(|d| d.value),
                max_bytes: size(r, s, "max_bytes", i64::MAX, "a signed 64-bit integer"),
                max_msgs: r.integer(s, "max_msgs", -1, i64::MAX).map(|v| v.value),
                // JetStream's max_msg_size is an int32; `size` keeps to it.
                max_msg_size: size(
                    r,
                    s,
                    "max_msg_size",
                    i32::MAX.into(),
                    "a signed 32-bit integer",
                )
                .and_then(|v| i32::try_from(v).ok()),
                discard,
                duplicate_window: r.duration_ns(s, "duplicate_window").map(|d| d.value),
                description: r.string(s, "description").map(|d| d.value),
                max_msgs_per_subject: r
                    .integer(s, "max_msgs_per_subject", -1, i64::MAX)
                    .map(|v| v.value),
                allow_direct: r.boolean(s, "allow_direct"),
                compression,
                sources: None,
            }),
        });
    }
    for (index, list) in sources {
        let resolved = resolve_sources(r, &out, index, list);
        if let Some(stream) = &mut out[index].stream {
            stream.sources = Some(resolved);
        }
    }
    out
}

/// One entry of a stream's `sources`, as written.
struct SourceAt {
    stream: At<String>,
    filter_subject: Option<At<String>>,
}

/// `sources = ["other", { stream = "other", filter_subject = "a.>" }]`.
fn decode_sources(r: &mut Reader, s: &Table) -> Option<Vec<SourceAt>> {
    let items = r.array(s, "sources")?;
    let mut out = Vec::new();
    for item in items {
        match &item.value {
            Value::String(_) => out.extend(r.node_string(item).map(|stream| SourceAt {
                stream,
                filter_subject: None,
            })),
            Value::Table(t) => {
                r.check_keys(t, "a stream source", SOURCE_KEYS);
                let Some(stream) = required_string(r, t, "stream", "a stream source", &item.origin)
                else {
                    continue;
                };
                out.push(SourceAt {
                    stream,
                    filter_subject: r.string(t, "filter_subject"),
                });
            }
            _ => r.report(
                Diagnostic::error(
                    &item.origin,
                    "expected a stream name or { stream = \"...\", filter_subject = \"...\" }",
                )
                .with_label("not a stream source"),
            ),
        }
    }
    Some(out)
}

/// Sources by their streams' server names, checked against the fleet's
/// streams: defined, running here, not the stream itself, and a filter
/// inside the source's subjects.
fn resolve_sources(
    r: &mut Reader,
    streams: &[StreamEntry],
    index: usize,
    list: Vec<SourceAt>,
) -> Vec<StreamSource> {
    let mut out = Vec::new();
    for source in list {
        if source.stream.value == streams[index].key {
            r.report(
                Diagnostic::error(&source.stream.origin, "a stream cannot source from itself")
                    .with_label("this stream"),
            );
            continue;
        }
        let Some(stream) = defined_stream(r, &source.stream, streams, "source") else {
            continue;
        };
        if let Some(filter) = &source.filter_subject {
            if !valid_subject(&filter.value) {
                r.report(
                    Diagnostic::error(
                        &filter.origin,
                        format!("`{}` is not a valid NATS subject", filter.value),
                    )
                    .with_label("invalid subject"),
                );
                continue;
            }
            if !stream
                .subjects
                .iter()
                .any(|s| subjects_overlap(s, &filter.value))
            {
                r.report(
                    Diagnostic::error(
                        &filter.origin,
                        format!(
                            "filter subject `{}` matches no subject of stream `{}` ({})",
                            filter.value,
                            source.stream.value,
                            stream.subjects.join(", ")
                        ),
                    )
                    .with_label("nothing would be sourced")
                    .with_help("use a subject inside the source stream's subjects"),
                );
            }
        }
        out.push(StreamSource {
            name: stream.name.clone(),
            filter_subject: source.filter_subject.map(|f| f.value),
        });
    }
    out
}

pub(super) fn required_strings(
    r: &mut Reader,
    t: &Table,
    key: &str,
    what: &str,
    origin: &Origin,
) -> Vec<At<String>> {
    match r.strings(t, key) {
        Some(values) if !values.is_empty() => values,
        _ => {
            if t.get(key).is_none()
                || matches!(t.get(key).map(|e| &e.node.value), Some(Value::Array(a)) if a.is_empty())
            {
                r.report(
                    Diagnostic::error(origin, format!("{what} has no `{key}`"))
                        .with_label(format!("`{key}` is required here"))
                        .with_help(format!("add `{key} = [\"...\"]`")),
                );
            }
            Vec::new()
        }
    }
}

/// One of `options`, or `default` when the key is absent.
pub(super) fn choice(
    r: &mut Reader,
    t: &Table,
    key: &str,
    options: &[&str],
    default: &str,
) -> String {
    let Some(value) = r.string(t, key) else {
        return default.into();
    };
    if options.contains(&value.value.as_str()) {
        return value.value;
    }
    let mut d = Diagnostic::error(
        &value.origin,
        format!("`{}` is not a valid {key}", value.value),
    )
    .with_label(format!("expected one of: {}", options.join(", ")));
    if let Some(best) = suggest(&value.value, options) {
        d = d.with_help(format!("did you mean `{best}`?"));
    }
    r.report(d);
    default.into()
}

/// A byte size: an integer, or a quantity string such as "1Gi"; -1 (no
/// limit) up to `max`, the largest value JetStream's `integer` type holds.
pub(super) fn size(r: &mut Reader, t: &Table, key: &str, max: i64, integer: &str) -> Option<i64> {
    let entry = t.get(key)?;
    let node = &entry.node;
    let (shown, value) = match &node.value {
        Value::Integer(i) => (i.to_string(), Ok(i128::from(*i))),
        Value::String(text) => (
            format!("`{text}`"),
            // Saturating is safe: anything that large is out of range.
            parse_bytes(text).map(|v| i128::try_from(v).unwrap_or(i128::MAX)),
        ),
        _ => {
            r.report(
                Diagnostic::error(
                    &node.origin,
                    "expected a size: an integer or a string such as \"1Gi\"",
                )
                .with_label("not a size"),
            );
            return None;
        }
    };
    let problem = match value {
        Ok(v) if (-1..=i128::from(max)).contains(&v) => return i64::try_from(v).ok(),
        Ok(_) | Err(BadSize::TooLarge) => {
            Diagnostic::error(&node.origin, format!("{shown} is out of range for `{key}`"))
                .with_label(format!("JetStream takes -1 (no limit) up to {max} here"))
                .with_help(format!(
                    "JetStream keeps `{key}` in {integer}: use at most {max} bytes, or leave `{key}` out for no limit"
                ))
        }
        Err(BadSize::NotWhole) => Diagnostic::error(
            &node.origin,
            format!("{shown} is not a whole number of bytes"),
        )
        .with_label("a fraction of a byte")
        .with_help("write a whole number of bytes, e.g. \"512Ki\", \"1.5Gi\" or 1048576"),
        Err(BadSize::Syntax) => Diagnostic::error(&node.origin, format!("{shown} is not a size"))
            .with_label("not a size")
            .with_help("write a number of bytes, or a quantity such as \"512Mi\" or \"10G\""),
    };
    r.report(problem);
    None
}

pub(super) fn valid_stream_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name
            .chars()
            .any(|c| c.is_whitespace() || ".*>/\\".contains(c))
}
