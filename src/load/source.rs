//! TOML text -> a tree of values that remember which file and byte range they
//! came from, so every later error can point at the exact spot.

use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::de::{DeTable, DeValue};

pub use crate::model::{FileId, Origin};

#[derive(Debug)]
pub struct SourceFile {
    /// The path as the user would write it (relative to the working directory
    /// when it was given that way), used in messages.
    pub path: PathBuf,
    pub text: String,
}

/// Every file read for one load, so diagnostics can quote them.
#[derive(Debug, Default)]
pub struct Sources {
    files: Vec<SourceFile>,
}

impl Sources {
    pub fn add(&mut self, path: &Path, text: String) -> FileId {
        self.files.push(SourceFile {
            path: path.to_path_buf(),
            text,
        });
        self.files.len() - 1
    }

    pub fn file(&self, id: FileId) -> &SourceFile {
        &self.files[id]
    }

    /// `path:line:col`, as an error names a place.
    pub fn location(&self, origin: &Origin) -> String {
        let (line, col) = self.line_col(origin);
        format!("{}:{line}:{col}", self.files[origin.file].path.display())
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, origin: &Origin) -> (usize, usize) {
        let text = &self.files[origin.file].text;
        let mut offset = origin.span.start.min(text.len());
        // The end of the file, after its last newline, is shown (by
        // annotate-snippets) at the end of the last line: say the same, so
        // the report and the GitHub annotation name one place, in the file.
        if offset == text.len() && text.ends_with('\n') {
            offset -= 1;
            if text[..offset].ends_with('\r') {
                offset -= 1;
            }
        }
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = text[line_start..offset].chars().count() + 1;
        (line, col)
    }
}

#[derive(Debug, Clone)]
pub struct Node {
    pub value: Value,
    pub origin: Origin,
}

#[derive(Debug, Clone)]
pub enum Value {
    String(String),
    Integer(i64),
    // No setting takes a float or a datetime: only their type matters, for messages.
    Float,
    Boolean(bool),
    Datetime,
    Array(Vec<Node>),
    Table(Table),
}

impl Value {
    /// The TOML type name, for "expected X, found Y" messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::String(_) => "a string",
            Value::Integer(_) => "an integer",
            Value::Float => "a float",
            Value::Boolean(_) => "a boolean",
            Value::Datetime => "a datetime",
            Value::Array(_) => "an array",
            Value::Table(_) => "a table",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub key: String,
    pub key_origin: Origin,
    pub node: Node,
}

/// A TOML table in source order.
#[derive(Debug, Clone, Default)]
pub struct Table {
    pub entries: Vec<Entry>,
}

impl Table {
    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.entries.iter().find(|entry| entry.key == key)
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut Entry> {
        self.entries.iter_mut().find(|entry| entry.key == key)
    }
}

/// A TOML syntax error, with where it is.
#[derive(Debug)]
pub struct SyntaxError {
    pub message: String,
    pub origin: Origin,
}

/// Parses one file. Syntax errors are all returned (the parser recovers), and
/// the tree is only returned when there are none.
pub fn parse(file: FileId, text: &str) -> Result<Node, Vec<SyntaxError>> {
    let (document, errors) = DeTable::parse_recoverable(text);
    if !errors.is_empty() {
        return Err(errors
            .into_iter()
            .map(|error| {
                let span = error.span().unwrap_or(0..0);
                let mut message = error.message().trim().to_string();
                // The parser does not say which key; the span holds it.
                if message == "duplicate key"
                    && let Some(key) = text.get(span.clone()).filter(|k| !k.is_empty())
                {
                    message = format!("duplicate key `{key}`");
                }
                SyntaxError {
                    message,
                    origin: Origin { file, span },
                }
            })
            .collect());
    }
    let span = document.span();
    let mut errors = Vec::new();
    let value = Value::Table(convert_table(file, document.into_inner(), &mut errors));
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Node {
        value,
        origin: Origin { file, span },
    })
}

fn convert_table(file: FileId, table: DeTable<'_>, errors: &mut Vec<SyntaxError>) -> Table {
    let mut entries: Vec<Entry> = table
        .into_iter()
        .map(|(key, value)| {
            let key_origin = Origin {
                file,
                span: key.span(),
            };
            Entry {
                key: key.into_inner().into_owned(),
                key_origin,
                node: convert(file, value.span(), value.into_inner(), errors),
            }
        })
        .collect();
    // Source order reads best in messages and keeps rendering stable.
    entries.sort_by_key(|entry| entry.key_origin.span.start);
    Table { entries }
}

fn convert(
    file: FileId,
    span: Range<usize>,
    value: DeValue<'_>,
    errors: &mut Vec<SyntaxError>,
) -> Node {
    let value = match value {
        DeValue::String(s) => Value::String(s.into_owned()),
        DeValue::Integer(i) => {
            let digits = i.as_str().replace('_', "");
            // The parser has checked the syntax; only overflow is left, and
            // TOML says an integer that does not fit in 64 bits is an error
            // (never a saturated or wrapped value).
            match i64::from_str_radix(&digits, i.radix()) {
                Ok(n) => Value::Integer(n),
                Err(_) => {
                    errors.push(SyntaxError {
                        message: format!(
                            "integer out of range (TOML integers are 64-bit: {} to {})",
                            i64::MIN,
                            i64::MAX
                        ),
                        origin: Origin {
                            file,
                            span: span.clone(),
                        },
                    });
                    Value::Integer(0)
                }
            }
        }
        DeValue::Float(_) => Value::Float,
        DeValue::Boolean(b) => Value::Boolean(b),
        DeValue::Datetime(_) => Value::Datetime,
        DeValue::Array(items) => Value::Array(
            items
                .into_iter()
                .map(|item| {
                    let span = item.span();
                    convert(file, span, item.into_inner(), errors)
                })
                .collect(),
        ),
        DeValue::Table(table) => Value::Table(convert_table(file, table, errors)),
    };
    Node {
        value,
        origin: Origin { file, span },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_keep_their_position() {
        let text = "name = \"a\"\n[agents.devops]\nreplicas = 2\n";
        let mut sources = Sources::default();
        let file = sources.add(Path::new("fleet.toml"), text.to_string());
        let root = parse(file, text).unwrap();
        let Value::Table(root_table) = &root.value else {
            panic!()
        };
        let agents = &root_table.get("agents").unwrap().node;
        let Value::Table(agents) = &agents.value else {
            panic!()
        };
        let Value::Table(devops) = &agents.get("devops").unwrap().node.value else {
            panic!()
        };
        let replicas = devops.get("replicas").unwrap();
        assert!(matches!(replicas.node.value, Value::Integer(2)));
        assert_eq!(sources.line_col(&replicas.node.origin), (3, 12));
        assert_eq!(sources.line_col(&replicas.key_origin), (3, 1));
    }

    #[test]
    fn the_end_of_the_file_is_on_its_last_line() {
        // Found by tests/it/load_fuzz.rs: an unclosed inline table is reported
        // at the end of the file, which the report showed as 2:6 and the
        // GitHub annotation as 3:1, a line the file does not have.
        let mut sources = Sources::default();
        for text in ["a = 1\nb = {\n", "a = 1\r\nb = {\r\n", "a = 1\nb = {"] {
            let file = sources.add(Path::new("fleet.toml"), text.into());
            let end = Origin {
                file,
                span: text.len()..text.len(),
            };
            assert_eq!(sources.line_col(&end), (2, 6), "{text:?}");
        }
        // An offset inside a character counts from its start.
        let file = sources.add(Path::new("fleet.toml"), "é = 1".into());
        assert_eq!(sources.line_col(&Origin { file, span: 1..1 }), (1, 1));
    }

    #[test]
    fn syntax_errors_are_all_reported() {
        let errors = parse(0, "a = \nb = [1,\n").unwrap_err();
        assert!(!errors.is_empty());
    }
}
