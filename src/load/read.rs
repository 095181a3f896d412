//! Typed reads from the source tree. Every read that fails records a
//! [`Diagnostic`] and returns `None`, so one pass finds every problem.

use std::collections::BTreeMap;
use std::time::Duration;

use super::diagnostic::Diagnostic;
use super::source::{Entry, Node, Origin, Table, Value};
use crate::model::Quantity;

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

    fn type_error(&mut self, node: &Node, expected: &str) {
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

    /// A duration such as `30s`, `2m`, `1h30m` or `7d`.
    pub fn duration(&mut self, table: &Table, key: &str) -> Option<At<Duration>> {
        let text = self.string(table, key)?;
        match parse_duration(&text.value) {
            Some(value) => Some(At {
                value,
                origin: text.origin,
            }),
            None => {
                self.report(
                    Diagnostic::error(&text.origin, format!("`{}` is not a duration", text.value))
                        .with_label("not a duration")
                        .with_help("write a number with a unit: ms, s, m, h or d, e.g. \"30s\", \"2m\", \"7d\""),
                );
                None
            }
        }
    }

    /// A duration in whole seconds, as Kubernetes fields take them.
    pub fn seconds(&mut self, table: &Table, key: &str) -> Option<At<i32>> {
        let duration = self.duration(table, key)?;
        let problem = if duration.value.subsec_nanos() != 0 {
            Some("must be a whole number of seconds")
        } else if duration.value.as_secs() > i32::MAX as u64 {
            Some("is too long")
        } else {
            None
        };
        if let Some(problem) = problem {
            self.report(
                Diagnostic::error(&duration.origin, format!("`{key}` {problem}"))
                    .with_label("Kubernetes takes whole seconds here"),
            );
            return None;
        }
        Some(At {
            value: duration.value.as_secs() as i32,
            origin: duration.origin,
        })
    }

    /// A Kubernetes quantity (`500m`, `2`, `1Gi`, `10G`).
    pub fn quantity(&mut self, table: &Table, key: &str) -> Option<At<Quantity>> {
        let text = self.string(table, key)?;
        match parse_quantity(&text.value) {
            Some(value) => Some(At {
                value: Quantity {
                    text: text.value,
                    value,
                },
                origin: text.origin,
            }),
            None => {
                self.report(
                    Diagnostic::error(&text.origin, format!("`{}` is not a Kubernetes quantity", text.value))
                        .with_label("not a quantity")
                        .with_help("write e.g. \"500m\" or \"2\" for CPU, \"512Mi\" or \"4Gi\" for memory and storage"),
                );
                None
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

pub fn parse_duration(text: &str) -> Option<Duration> {
    let mut total = Duration::ZERO;
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let number: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => Duration::from_millis(1),
            "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            "d" => Duration::from_secs(86_400),
            _ => return None,
        };
        total = total.checked_add(unit.checked_mul(u32::try_from(number).ok()?)?)?;
        rest = &rest[unit_len..];
    }
    Some(total)
}

/// The value of a Kubernetes quantity in base units, or `None` when it is
/// not one (the API server would refuse it).
pub fn parse_quantity(text: &str) -> Option<f64> {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    if number.is_empty() || number.starts_with('.') && number.len() == 1 {
        return None;
    }
    let number: f64 = number.parse().ok()?;
    if number < 0.0 {
        return None;
    }
    let multiplier = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        _ => return None,
    };
    Some(number * multiplier)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("7d"), Some(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("30"), None);
        assert_eq!(parse_duration("3 weeks"), None);
        assert_eq!(parse_duration(""), None);
    }

    #[test]
    fn quantities() {
        assert_eq!(parse_quantity("500m"), Some(0.5));
        assert_eq!(parse_quantity("2000m"), Some(2.0));
        assert_eq!(parse_quantity("1Gi"), Some(1024f64.powi(3)));
        assert_eq!(parse_quantity("10G"), Some(1e10));
        assert_eq!(parse_quantity("1.5"), Some(1.5));
        assert_eq!(parse_quantity("1GB"), None);
        assert_eq!(parse_quantity("lots"), None);
        assert_eq!(parse_quantity("-1"), None);
    }

    #[test]
    fn suggestions_catch_typos_only() {
        let known = ["replicas", "resources", "readiness"];
        assert_eq!(suggest("replica", &known), Some("replicas"));
        assert_eq!(suggest("resorces", &known), Some("resources"));
        assert_eq!(suggest("colour", &known), None);
    }
}
