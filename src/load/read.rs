//! Typed reads from the source tree. Every read that fails records a
//! [`Diagnostic`] and returns `None`, so one pass finds every problem.

use std::collections::BTreeMap;
use std::time::Duration;

use super::diagnostic::Diagnostic;
use super::source::{Entry, Node, Origin, Table, Value};
use crate::model::Quantity;
use crate::quantity::{Amount, NotAmount, NotWhole};

/// Collects problems while the tree is read.
#[derive(Debug, Default)]
pub struct Reader {
    pub diagnostics: Vec<Diagnostic>,
}

/// A value that was read, with where it was written.
#[derive(Debug, Clone)]
pub struct At<T> {
    pub value: T,
    pub origin: Origin,
}

impl Reader {
    pub fn report(&mut self, diagnostic: Diagnostic) {
        // Defaults and profiles are read once per agent: report each problem
        // once, though its message may name the agent it was first found in.
        let duplicate = self.diagnostics.iter().any(|d| {
            d.origin == diagnostic.origin
                && d.severity == diagnostic.severity
                && d.label == diagnostic.label
        });
        if !duplicate {
            self.diagnostics.push(diagnostic);
        }
    }

    /// Reports every key of `table` that is not in `known`, suggesting the
    /// closest known key.
    pub fn check_keys(&mut self, table: &Table, what: &str, known: &[&str]) {
        for entry in &table.entries {
            if known.contains(&entry.key.as_str()) {
                continue;
            }
            let mut diagnostic = Diagnostic::error(
                &entry.key_origin,
                format!("unknown key `{}` in {what}", entry.key),
            )
            .with_label("unknown key");
            diagnostic = match suggest(&entry.key, known) {
                Some(best) => diagnostic.with_help(format!("did you mean `{best}`?")),
                None => diagnostic.with_help(format!("known keys: {}", known.join(", "))),
            };
            self.report(diagnostic);
        }
    }

    pub fn type_error(&mut self, node: &Node, expected: &str) {
        self.report(
            Diagnostic::error(
                &node.origin,
                format!("expected {expected}, found {}", node.value.type_name()),
            )
            .with_label(format!("expected {expected}")),
        );
    }

    pub fn table<'n>(&mut self, node: &'n Node) -> Option<&'n Table> {
        match &node.value {
            Value::Table(table) => Some(table),
            _ => {
                self.type_error(node, "a table");
                None
            }
        }
    }

    pub fn get_table<'t>(&mut self, table: &'t Table, key: &str) -> Option<At<&'t Table>> {
        let entry = table.get(key)?;
        let value = self.table(&entry.node)?;
        Some(At {
            value,
            origin: entry.key_origin.clone(),
        })
    }

    pub fn node_string(&mut self, node: &Node) -> Option<At<String>> {
        match &node.value {
            Value::String(s) => Some(At {
                value: s.clone(),
                origin: node.origin.clone(),
            }),
            _ => {
                self.type_error(node, "a string");
                None
            }
        }
    }

    pub fn string(&mut self, table: &Table, key: &str) -> Option<At<String>> {
        let entry = table.get(key)?;
        self.node_string(&entry.node)
    }

    pub fn boolean(&mut self, table: &Table, key: &str) -> Option<bool> {
        let entry = table.get(key)?;
        match entry.node.value {
            Value::Boolean(b) => Some(b),
            _ => {
                self.type_error(&entry.node, "a boolean (true or false)");
                None
            }
        }
    }

    /// An integer within `min..=max`.
    pub fn integer(&mut self, table: &Table, key: &str, min: i64, max: i64) -> Option<At<i64>> {
        let entry = table.get(key)?;
        self.node_integer(&entry.node, min, max)
    }

    pub fn node_integer(&mut self, node: &Node, min: i64, max: i64) -> Option<At<i64>> {
        match node.value {
            Value::Integer(i) if (min..=max).contains(&i) => Some(At {
                value: i,
                origin: node.origin.clone(),
            }),
            Value::Integer(i) => {
                self.report(
                    Diagnostic::error(&node.origin, format!("{i} is out of range"))
                        .with_label(format!("must be between {min} and {max}")),
                );
                None
            }
            _ => {
                self.type_error(node, "an integer");
                None
            }
        }
    }

    pub fn array<'t>(&mut self, table: &'t Table, key: &str) -> Option<&'t [Node]> {
        let entry = table.get(key)?;
        match &entry.node.value {
            Value::Array(items) => Some(items),
            _ => {
                self.type_error(&entry.node, "an array");
                None
            }
        }
    }

    pub fn strings(&mut self, table: &Table, key: &str) -> Option<Vec<At<String>>> {
        let items = self.array(table, key)?;
        Some(
            items
                .iter()
                .filter_map(|node| self.node_string(node))
                .collect(),
        )
    }

    /// A table of string values, such as labels.
    pub fn string_map(&mut self, table: &Table, key: &str) -> Option<BTreeMap<String, String>> {
        let entry = table.get(key)?;
        let inner = self.table(&entry.node)?;
        Some(
            self.string_entries(inner)
                .map(|(entry, value)| (entry.key.clone(), value.value))
                .collect(),
        )
    }

    pub fn string_entries<'t>(
        &mut self,
        table: &'t Table,
    ) -> impl Iterator<Item = (&'t Entry, At<String>)> + use<'t> {
        let mut values = Vec::new();
        for entry in &table.entries {
            if let Some(value) = self.node_string(&entry.node) {
                values.push((entry, value));
            }
        }
        values.into_iter()
    }

    /// A duration that JetStream takes in nanoseconds (`ack_wait`, `max_age`).
    pub fn duration_ns(&mut self, table: &Table, key: &str) -> Option<At<Duration>> {
        let entry = table.get(key)?;
        self.node_duration_ns(&entry.node)
    }

    pub fn node_duration_ns(&mut self, node: &Node) -> Option<At<Duration>> {
        // JetStream's Go server reads durations as time.Duration: nanoseconds
        // in an int64, so anything longer would wrap when sent.
        self.node_duration(
            node,
            JETSTREAM_MAX_DURATION,
            "JetStream takes at most 106751d here",
            "JetStream counts durations in nanoseconds as a signed 64-bit integer (about 292 years)",
        )
    }

    /// A duration in whole seconds, as Kubernetes fields take them.
    pub fn seconds(&mut self, table: &Table, key: &str) -> Option<At<i32>> {
        let entry = table.get(key)?;
        let duration = self.node_duration(
            &entry.node,
            Duration::from_secs(i32::MAX as u64),
            "Kubernetes takes at most 2147483647s here",
            "Kubernetes counts these seconds in a 32-bit integer (about 68 years)",
        )?;
        if duration.value.subsec_nanos() != 0 {
            self.report(
                Diagnostic::error(
                    &duration.origin,
                    format!("`{key}` must be a whole number of seconds"),
                )
                .with_label("Kubernetes takes whole seconds here"),
            );
            return None;
        }
        // Within i32 by the limit checked above.
        let seconds = i32::try_from(duration.value.as_secs()).ok()?;
        Some(At {
            value: seconds,
            origin: duration.origin,
        })
    }

    /// A duration such as `30s`, `2m`, `1h30m` or `7d`, at most `max`;
    /// `label` and `help` say whose limit that is.
    fn node_duration(
        &mut self,
        node: &Node,
        max: Duration,
        label: &str,
        help: &str,
    ) -> Option<At<Duration>> {
        let text = self.node_string(node)?;
        match parse_duration(&text.value) {
            Ok(value) if value <= max => Some(At {
                value,
                origin: text.origin,
            }),
            Ok(_) | Err(BadDuration::TooLong) => {
                self.report(
                    Diagnostic::error(&text.origin, format!("`{}` is too long", text.value))
                        .with_label(label)
                        .with_help(format!("use a shorter duration: {help}")),
                );
                None
            }
            Err(BadDuration::Syntax) => {
                self.report(
                    Diagnostic::error(&text.origin, format!("`{}` is not a duration", text.value))
                        .with_label("not a duration")
                        .with_help("write a number with a unit: ms, s, m, h or d, e.g. \"30s\", \"2m\", \"7d\""),
                );
                None
            }
        }
    }

    /// A Kubernetes quantity (`500m`, `2`, `1Gi`, `10G`).
    pub fn quantity(&mut self, table: &Table, key: &str) -> Option<At<Quantity>> {
        let text = self.string(table, key)?;
        let refused = |r: &mut Self, what: &str, label: &str| {
            r.report(
                Diagnostic::error(&text.origin, format!("`{}` {what}", text.value))
                    .with_label(label)
                    .with_help("write e.g. \"500m\" or \"2\" for CPU, \"512Mi\" or \"4Gi\" for memory and storage"),
            );
            None
        };
        match Amount::parse(&text.value) {
            Ok(amount) if amount.is_negative() => {
                refused(self, "is negative", "a resource cannot be negative")
            }
            // Hundreds of digits: no resource comes near, and comparing
            // infinities would let a request above its limit through.
            Ok(amount) if !amount.to_f64().is_finite() => {
                refused(self, "is too large", "too large to be a quantity")
            }
            Ok(amount) => Some(At {
                value: Quantity {
                    text: text.value.clone(),
                    amount,
                },
                origin: text.origin.clone(),
            }),
            Err(NotAmount::TooManyDigits) => {
                refused(self, "is too large", "too large to be a quantity")
            }
            Err(NotAmount::Syntax) => {
                refused(self, "is not a Kubernetes quantity", "not a quantity")
            }
        }
    }
}

/// The known key closest to `key`, when it is close enough to be a typo.
pub fn suggest<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|candidate| (strsim::jaro_winkler(key, candidate), *candidate))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, candidate)| candidate)
}

/// The longest duration JetStream can take: `i64::MAX` nanoseconds.
pub const JETSTREAM_MAX_DURATION: Duration = Duration::from_nanos(i64::MAX as u64);

/// Why a duration was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BadDuration {
    /// Not a number with a unit.
    #[error("not a duration (a number with a unit: 30s, 5m, 1h30m, 7d)")]
    Syntax,
    /// Longer than a [`Duration`] holds.
    #[error("longer than any duration can be")]
    TooLong,
}

/// A duration such as `30s`, `2m`, `1h30m`, `250ms` or `7d`.
pub fn parse_duration(text: &str) -> Result<Duration, BadDuration> {
    const NANOS: u128 = 1_000_000_000;
    let mut total: u128 = 0;
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(BadDuration::Syntax);
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(BadDuration::Syntax);
        }
        let number = &rest[..digits];
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit: u128 = match &rest[..unit_len] {
            "ms" => NANOS / 1000,
            "s" => NANOS,
            "m" => 60 * NANOS,
            "h" => 3600 * NANOS,
            "d" => 86_400 * NANOS,
            _ => return Err(BadDuration::Syntax),
        };
        rest = &rest[unit_len..];
        // Only ASCII digits are left, so a failed parse is an overflow.
        total = number
            .parse::<u128>()
            .ok()
            .and_then(|n| n.checked_mul(unit))
            .and_then(|n| n.checked_add(total))
            .ok_or(BadDuration::TooLong)?;
    }
    let seconds = u64::try_from(total / NANOS).map_err(|_| BadDuration::TooLong)?;
    // Less than NANOS, so it fits.
    let nanos = (total % NANOS) as u32;
    Ok(Duration::new(seconds, nanos))
}

/// Why a byte size was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BadSize {
    /// Not a quantity (or negative).
    #[error("not a size (a whole number of bytes, such as 512Mi or 1G)")]
    Syntax,
    /// A fraction of a byte, such as `500m` or `1.3`.
    #[error("a fraction of a byte")]
    NotWhole,
    /// More than 128 bits hold.
    #[error("larger than any size can be")]
    TooLarge,
}

/// A quantity of bytes (`1Gi`, `1.5Ki`, `500M`), computed exactly: no float
/// rounding decides whether a size fits the field it is for.
pub fn parse_bytes(text: &str) -> Result<u128, BadSize> {
    match Amount::parse(text) {
        Ok(amount) => amount.whole().map_err(|why| match why {
            NotWhole::Negative => BadSize::Syntax,
            NotWhole::Fraction => BadSize::NotWhole,
            NotWhole::TooLarge => BadSize::TooLarge,
        }),
        // Dozens of significant digits after a point is no whole number of
        // bytes anyone meant; before it, too many bytes.
        Err(NotAmount::TooManyDigits) if text.contains('.') => Err(BadSize::NotWhole),
        Err(NotAmount::TooManyDigits) => Err(BadSize::TooLarge),
        Err(NotAmount::Syntax) => Err(BadSize::Syntax),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("30"), Err(BadDuration::Syntax));
        assert_eq!(parse_duration("3 weeks"), Err(BadDuration::Syntax));
        assert_eq!(parse_duration(""), Err(BadDuration::Syntax));
        assert_eq!(
            parse_duration("99999999999999999999999999999999999999999d"),
            Err(BadDuration::TooLong)
        );
        assert_eq!(
            parse_duration("213503982334602d"),
            Err(BadDuration::TooLong)
        );
        assert_eq!(
            parse_duration("99999999999999999999999999999999999999999x"),
            Err(BadDuration::Syntax)
        );
        assert_eq!(
            parse_duration("106751d"),
            Ok(Duration::from_secs(106_751 * 86_400))
        );
        assert!(parse_duration("106751d").unwrap() <= JETSTREAM_MAX_DURATION);
        assert!(parse_duration("106752d").unwrap() > JETSTREAM_MAX_DURATION);
    }

    #[test]
    fn byte_sizes_are_exact() {
        assert_eq!(parse_bytes("1Gi"), Ok(1 << 30));
        assert_eq!(parse_bytes("1.5Ki"), Ok(1536));
        assert_eq!(parse_bytes("+2k"), Ok(2000));
        assert_eq!(parse_bytes("8000m"), Ok(8));
        assert_eq!(parse_bytes("0.0"), Ok(0));
        assert_eq!(
            parse_bytes("1.000000000000000000000000000000000000000000001"),
            Err(BadSize::NotWhole)
        );
        assert_eq!(parse_bytes("500m"), Err(BadSize::NotWhole));
        assert_eq!(parse_bytes("1.3"), Err(BadSize::NotWhole));
        assert_eq!(parse_bytes("2147483647"), Ok(2_147_483_647));
        assert_eq!(parse_bytes("9223372036854775807"), Ok(i64::MAX as u128));
        assert_eq!(parse_bytes("8Ei"), Ok(1 << 63));
        assert_eq!(
            parse_bytes("999999999999999999999999999999999999999999Ei"),
            Err(BadSize::TooLarge)
        );
        assert_eq!(parse_bytes("-1"), Err(BadSize::Syntax));
        assert_eq!(parse_bytes("1GB"), Err(BadSize::Syntax));
    }

    #[test]
    fn suggestions_catch_typos_only() {
        let known = ["replicas", "resources", "readiness"];
        assert_eq!(suggest("replica", &known), Some("replicas"));
        assert_eq!(suggest("resorces", &known), Some("resources"));
        assert_eq!(suggest("colour", &known), None);
    }
}
