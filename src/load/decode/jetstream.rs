//! Streams, and each agent's consumer on one: names, subjects and limits.

use std::time::Duration;

use super::*;
use crate::load::diagnostic::Diagnostic;
use crate::load::read::{At, BadSize, Reader, parse_bytes, suggest};
use crate::load::source::{Origin, Table, Value};
use crate::model::*;

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
    let Some(stream) = cx
        .streams
        .iter()
        .find(|s| s.value.name == stream_name.value)
    else {
        let known: Vec<&str> = cx.streams.iter().map(|s| s.value.name.as_str()).collect();
        let mut d = Diagnostic::error(
            &stream_name.origin,
            format!("stream `{}` is not defined", stream_name.value),
        )
        .with_label("no such stream");
        d = match suggest(&stream_name.value, &known) {
            Some(best) => d.with_help(format!("did you mean `{best}`?")),
            None => d.with_help(format!("define it under [streams.{}]", stream_name.value)),
        };
        r.report(d);
        return None;
    };
    let filters: Vec<At<String>> = match r.strings(c, "filter_subjects") {
        Some(filters) => filters,
        None => {
            // The seed's convention: tasks for role R arrive on `<prefix>.R.>`.
            match stream
                .value
                .subjects
                .first()
                .and_then(|s| s.strip_suffix(".>"))
            {
                Some(prefix) => vec![At {
                    value: format!("{prefix}.{role}.>"),
                    origin: table.origin.clone(),
                }],
                None => {
                    r.report(
                        Diagnostic::error(
                            &table.origin,
                            format!(
                                "cannot derive the consumer's filter subject from stream `{}`",
                                stream.value.name
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
        } else if !stream
            .value
            .subjects
            .iter()
            .any(|s| subject_covers(s, &filter.value))
        {
            r.report(
                Diagnostic::error(
                    &filter.origin,
                    format!(
                        "filter subject `{}` is not covered by any subject of stream `{}` ({})",
                        filter.value,
                        stream.value.name,
                        stream.value.subjects.join(", ")
                    ),
                )
                .with_label("the consumer would never receive a message")
                .with_help("use a subject inside the stream's subjects, or add one to the stream"),
            );
        }
    }
    let backoff: Vec<Duration> = match r.array(c, "backoff") {
        Some(items) => items
            .iter()
            .filter_map(|n| r.node_duration_ns(n).map(|d| d.value))
            .collect(),
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
    Some(Consumer {
        name: format!("{role}-agent"),
        stream: stream.value.name.clone(),
        filter_subjects: filters.into_iter().map(|f| f.value).collect(),
        ack_wait: r
            .duration_ns(c, "ack_wait")
            .map_or(Duration::from_secs(30), |d| d.value),
        max_deliver: max_deliver.map_or(-1, |m| m.value),
        max_ack_pending: r
            .integer(c, "max_ack_pending", -1, i64::from(i32::MAX))
            .map_or(1000, |m| m.value),
        backoff,
        description: r.string(c, "description").map(|d| d.value),
    })
}

pub(super) fn decode_streams(r: &mut Reader, root: &Table) -> Vec<At<Stream>> {
    let Some(streams) = r.get_table(root, "streams") else {
        return Vec::new();
    };
    let mut out: Vec<At<Stream>> = Vec::new();
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
        let subjects = required_strings(r, s, "subjects", &what, &entry.key_origin);
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
            for other in &out {
                if let Some(clash) = other
                    .value
                    .subjects
                    .iter()
                    .find(|o| subjects_overlap(o, &subject.value))
                {
                    r.report(
                        Diagnostic::error(
                            &subject.origin,
                            format!(
                                "subject `{}` overlaps `{clash}` of stream `{}`",
                                subject.value, other.value.name
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
        out.push(At {
            value: Stream {
                name: entry.key.clone(),
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
            },
            origin: entry.key_origin.clone(),
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

pub(super) fn valid_subject(subject: &str) -> bool {
    let tokens: Vec<&str> = subject.split('.').collect();
    !subject.is_empty()
        && tokens.iter().enumerate().all(|(i, token)| {
            !token.is_empty()
                && !token.chars().any(char::is_whitespace)
                && (*token != ">" || i == tokens.len() - 1)
                && (!token.contains(['*', '>']) || token.len() == 1)
        })
}

/// Whether every subject that matches `filter` also matches `subject`.
pub fn subject_covers(subject: &str, filter: &str) -> bool {
    let s: Vec<&str> = subject.split('.').collect();
    let f: Vec<&str> = filter.split('.').collect();
    for (i, token) in s.iter().enumerate() {
        match *token {
            ">" => return f.len() > i,
            _ if i >= f.len() => return false,
            "*" => {
                if f[i] == ">" {
                    return false;
                }
            }
            literal => {
                if f[i] != literal {
                    return false;
                }
            }
        }
    }
    s.len() == f.len()
}

/// Whether some subject matches both patterns.
pub(super) fn subjects_overlap(a: &str, b: &str) -> bool {
    let a: Vec<&str> = a.split('.').collect();
    let b: Vec<&str> = b.split('.').collect();
    for i in 0..a.len().max(b.len()) {
        match (a.get(i), b.get(i)) {
            (Some(&">"), Some(_)) | (Some(_), Some(&">")) => return true,
            (Some(x), Some(y)) if *x == "*" || *y == "*" || x == y => continue,
            _ => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_coverage() {
        assert!(subject_covers("tasks.>", "tasks.devops.>"));
        assert!(subject_covers("tasks.>", "tasks.devops"));
        assert!(!subject_covers("tasks.>", "tasks"));
        assert!(subject_covers("tasks.*.new", "tasks.devops.new"));
        assert!(!subject_covers("tasks.*.new", "tasks.devops.>"));
        assert!(!subject_covers("jobs.>", "tasks.devops.>"));
        assert!(subject_covers("tasks.*", "tasks.*"));
    }

    #[test]
    fn subject_overlap() {
        assert!(subjects_overlap("tasks.>", "tasks.devops.new"));
        assert!(subjects_overlap("tasks.*.new", "tasks.devops.*"));
        assert!(!subjects_overlap("tasks.>", "events.>"));
        assert!(!subjects_overlap("a.b", "a.b.c"));
    }

    #[test]
    fn subjects_are_checked() {
        assert!(valid_subject("tasks.>"));
        assert!(valid_subject("tasks.*.new"));
        assert!(!valid_subject("tasks.>.new"));
        assert!(!valid_subject("tasks..new"));
        assert!(!valid_subject("tasks.de vops"));
    }
}
