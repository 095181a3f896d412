//! A definition as TOML text: tables in the order of the definition
//! reference, values inline, multi-line text as TOML's multi-line strings,
//! patches as dotted keys down to the field they set, and comments where
//! the import guessed. Pure.

use std::fmt::Write as _;

use serde_json::Value;

use crate::render::patch::DIRECTIVE;

/// One table's keys in order, each with an optional comment written above it.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Table {
    pub keys: Vec<Key>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Key {
    pub name: String,
    pub value: Value,
    pub comment: Option<String>,
}

impl Table {
    pub(crate) fn set(&mut self, name: &str, value: Value) {
        match self.keys.iter_mut().find(|k| k.name == name) {
            Some(key) => key.value = value,
            None => self.keys.push(Key {
                name: name.to_string(),
                value,
                comment: None,
            }),
        }
    }

    pub(crate) fn get(&self, name: &str) -> Option<&Value> {
        self.keys.iter().find(|k| k.name == name).map(|k| &k.value)
    }

    pub(crate) fn comment(&mut self, name: &str, comment: String) {
        if let Some(key) = self.keys.iter_mut().find(|k| k.name == name) {
            key.comment = Some(comment);
        }
    }
}

/// An agent: its keys and its patches by kind.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AgentTable {
    pub role: String,
    /// Comment lines written above the agent's table.
    pub notes: Vec<String>,
    pub keys: Table,
    pub patches: Vec<(String, Value)>,
}

/// The fleet.toml an environment file is written for (`fleet import
/// --env`): the document is then that environment's file, laid over it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Base {
    pub fleet_path: std::path::PathBuf,
    pub fleet_text: String,
    pub environment: String,
}

/// The whole definition.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Document {
    /// Comment lines at the top.
    pub header: Vec<String>,
    /// Set when this is an environment file over an existing fleet.toml.
    pub base: Option<Base>,
    /// `[environment]` (an environment file's).
    pub environment: Table,
    pub fleet: Table,
    pub service_monitor: Option<Table>,
    pub defaults: Table,
    /// `[defaults.patch.<Kind>]`: what every agent's patch of a kind says.
    pub default_patches: Vec<(String, Value)>,
    pub streams: Vec<(String, Table)>,
    pub agents: Vec<AgentTable>,
}

impl Document {
    pub(crate) fn to_toml(&self) -> String {
        let mut out = String::new();
        for line in &self.header {
            comment_line(&mut out, line);
        }
        if !self.header.is_empty() {
            out.push('\n');
        }
        if !self.environment.keys.is_empty() {
            table(&mut out, "environment", &self.environment);
        }
        if !self.fleet.keys.is_empty() {
            table(&mut out, "fleet", &self.fleet);
        }
        if let Some(monitor) = &self.service_monitor {
            table(&mut out, "fleet.service_monitor", monitor);
        }
        if !self.defaults.keys.is_empty() {
            table(&mut out, "defaults", &self.defaults);
        }
        for (kind, patch) in &self.default_patches {
            let _ = writeln!(out, "[defaults.patch.{kind}]");
            dotted(&mut out, "", patch);
            out.push('\n');
        }
        // An environment's file says only what differs: a table with
        // nothing in it is left out.
        for (name, stream) in self.streams.iter().filter(|(_, s)| !s.keys.is_empty()) {
            table(&mut out, &format!("streams.{}", key(name)), stream);
        }
        for agent in &self.agents {
            if self.base.is_some() && agent.keys.keys.is_empty() && agent.patches.is_empty() {
                continue;
            }
            for line in &agent.notes {
                comment_line(&mut out, line);
            }
            table(
                &mut out,
                &format!("agents.{}", key(&agent.role)),
                &agent.keys,
            );
            for (kind, patch) in &agent.patches {
                let _ = writeln!(out, "[agents.{}.patch.{kind}]", key(&agent.role));
                dotted(&mut out, "", patch);
                out.push('\n');
            }
        }
        out.truncate(out.trim_end().len());
        out.push('\n');
        out
    }
}

fn comment_line(out: &mut String, line: &str) {
    for line in line.lines() {
        let _ = writeln!(out, "# {line}").map(|()| ());
    }
}

fn table(out: &mut String, name: &str, table: &Table) {
    let _ = writeln!(out, "[{name}]");
    for k in &table.keys {
        if let Some(comment) = &k.comment {
            comment_line(out, comment);
        }
        let _ = writeln!(out, "{} = {}", key(&k.name), inline(&k.value));
    }
    out.push('\n');
}

/// A patch's fields as dotted keys, down to a value that is not a table
/// (or is empty, or is the delete directive).
fn dotted(out: &mut String, prefix: &str, value: &Value) {
    match value {
        Value::Object(map) if !map.is_empty() && !map.contains_key(DIRECTIVE) => {
            for (name, value) in map {
                let path = if prefix.is_empty() {
                    key(name)
                } else {
                    format!("{prefix}.{}", key(name))
                };
                dotted(out, &path, value);
            }
        }
        _ => {
            let _ = writeln!(out, "{prefix} = {}", inline(value));
        }
    }
}

/// A bare key when TOML allows one, else a quoted one.
pub(crate) fn key(name: &str) -> String {
    let bare = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if bare { name.to_string() } else { string(name) }
}

/// A value as TOML writes it on one line (multi-line strings aside).
pub(crate) fn inline(value: &Value) -> String {
    match value {
        Value::Null => "{}".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) if s.contains('\n') => multi_line(s),
        Value::String(s) => string(s),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(inline).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Object(map) if map.is_empty() => "{}".into(),
        Value::Object(map) => {
            let fields: Vec<String> = map
                .iter()
                .map(|(name, value)| format!("{} = {}", key(name), inline(value)))
                .collect();
            format!("{{ {} }}", fields.join(", "))
        }
    }
}

/// A basic string, escaped as TOML requires.
fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        escape(&mut out, c, false);
    }
    out.push('"');
    out
}

/// A multi-line basic string: the text as it reads, after a first newline
/// (which TOML drops).
fn multi_line(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::from("\"\"\"\n");
    for (i, &c) in chars.iter().enumerate() {
        let rest = &chars[i + 1..];
        // Three quotes in a row would end the string, and so would quotes
        // running into the closing ones.
        let ends = c == '"' && (rest.starts_with(&['"', '"']) || rest.iter().all(|&r| r == '"'));
        if ends {
            out.push_str("\\\"");
        } else {
            escape(&mut out, c, true);
        }
    }
    out.push_str("\"\"\"");
    out
}

fn escape(out: &mut String, c: char, multi_line: bool) {
    match c {
        '\\' => out.push_str("\\\\"),
        '"' if !multi_line => out.push_str("\\\""),
        '\n' if multi_line => out.push('\n'),
        '\n' => out.push_str("\\n"),
        '\t' => out.push_str("\\t"),
        '\r' => out.push_str("\\r"),
        c if c.is_control() => {
            let _ = write!(out, "\\u{:04X}", c as u32);
        }
        c => out.push(c),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// Every value written reads back as itself.
    #[test]
    fn values_read_back_as_written() {
        let values = [
            json!("plain"),
            json!("with \"quotes\" and \\ and \t"),
            json!("role: reviewer\nmodel: \"large\"\n"),
            json!("ends with a quote\n\""),
            json!("three \"\"\" quotes\n"),
            json!("\r\n windows\n"),
            json!([1, "two", { "three": 3 }]),
            json!({ "agent.ceo/role": "x", "$patch": "delete", "plain_key": true }),
            json!({}),
        ];
        for value in values {
            let text = format!("v = {}\n", inline(&value));
            let read: toml::Table = toml::from_str(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
            let back = serde_json::to_value(&read["v"]).unwrap();
            assert_eq!(back, value, "{text}");
        }
    }

    #[test]
    fn a_patch_is_written_as_dotted_keys_down_to_its_fields() {
        let document = Document {
            fleet: Table {
                keys: vec![Key {
                    name: "name".into(),
                    value: json!("f"),
                    comment: Some("why".into()),
                }],
            },
            agents: vec![AgentTable {
                role: "devops".into(),
                notes: vec!["nearest profile".into()],
                keys: Table::default(),
                patches: vec![(
                    "Deployment".into(),
                    json!({ "spec": { "template": { "spec": {
                        "securityContext": { "seccompProfile": { "$patch": "delete" } },
                        "containers": [{ "name": "agent", "stdin": true }]
                    } } } }),
                )],
            }],
            ..Document::default()
        };
        let text = document.to_toml();
        assert_eq!(
            text,
            "[fleet]\n# why\nname = \"f\"\n\n# nearest profile\n[agents.devops]\n\n[agents.devops.patch.Deployment]\nspec.template.spec.securityContext.seccompProfile = { \"$patch\" = \"delete\" }\nspec.template.spec.containers = [{ name = \"agent\", stdin = true }]\n"
        );
        let read: toml::Table = toml::from_str(&text).unwrap();
        assert_eq!(
            serde_json::to_value(&read["agents"]["devops"]["patch"]["Deployment"]).unwrap(),
            document.agents[0].patches[0].1
        );
    }
}
