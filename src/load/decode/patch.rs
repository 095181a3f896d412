//! An agent's `patch`: fields set on its rendered objects after rendering,
//! for what fleet has no key for. Any field may be set; the API server's dry
//! run checks them (strictly: an unknown field is an error, not dropped), and
//! its complaints point back at the line of the patch that set the field.

use serde_json::{Map, Value as Json};

use crate::load::diagnostic::Diagnostic;
use crate::load::read::{Reader, suggest};
use crate::load::source::{Node, Table, Value};
use crate::model::{PATCH_DELETE as DELETE, PATCH_DIRECTIVE as DIRECTIVE};
use crate::model::{Patch, PatchedField};

/// The kinds an agent's objects have.
pub const PATCHABLE_KINDS: &[&str] = &[
    "ServiceAccount",
    "Role",
    "RoleBinding",
    "ConfigMap",
    "Deployment",
    "Service",
    "HorizontalPodAutoscaler",
    "ScaledObject",
    "PodDisruptionBudget",
    "NetworkPolicy",
];

/// Fields that say which object it is and who owns it: a patch changing
/// them would make another object, or one fleet no longer recognises.
const FIXED: &[&str] = &[
    "apiVersion",
    "kind",
    "status",
    "metadata.name",
    "metadata.namespace",
    "metadata.labels.app.kubernetes.io/managed-by",
    "metadata.labels.applyset.kubernetes.io/part-of",
    "metadata.annotations.fleet.agent.ceo/applied-hash",
];

/// `[agents.<role>.patch.<Kind>]` tables, in the order written.
pub(super) fn decode_patches(r: &mut Reader, agent: &Table, what: &str) -> Vec<Patch> {
    let Some(patches) = r.get_table(agent, "patch") else {
        return Vec::new();
    };
    let mut decoded = Vec::new();
    for entry in &patches.value.entries {
        if !PATCHABLE_KINDS.contains(&entry.key.as_str()) {
            let diagnostic = Diagnostic::error(
                &entry.key_origin,
                format!("{what} has no object of kind `{}` to patch", entry.key),
            )
            .with_label("not a kind of the agent's objects");
            r.report(match suggest(&entry.key, PATCHABLE_KINDS) {
                Some(kind) => diagnostic.with_help(format!("did you mean `{kind}`?")),
                None => diagnostic.with_help(format!(
                    "an agent's objects are of kinds {}",
                    PATCHABLE_KINDS.join(", ")
                )),
            });
            continue;
        }
        let Some(table) = r.table(&entry.node) else {
            continue;
        };
        let mut fields = Vec::new();
        let body = object(r, table, "", &mut fields);
        decoded.push(Patch {
            kind: entry.key.clone(),
            kind_origin: entry.key_origin.clone(),
            body: Json::Object(body),
            fields,
        });
    }
    decoded
}

/// A TOML table as JSON; each field set (a value that is not a table, or an
/// empty table) is recorded in `fields` with where it was written.
fn object(
    r: &mut Reader,
    table: &Table,
    path: &str,
    fields: &mut Vec<PatchedField>,
) -> Map<String, Json> {
    let mut map = Map::new();
    for entry in &table.entries {
        let path = if path.is_empty() {
            entry.key.clone()
        } else {
            format!("{path}.{}", entry.key)
        };
        if FIXED.contains(&path.as_str()) {
            r.report(
                Diagnostic::error(&entry.key_origin, format!("a patch cannot set `{path}`"))
                    .with_label("fleet sets this")
                    .with_help(
                        "it says which object this is and that fleet owns it; patch other fields",
                    ),
            );
            continue;
        }
        if entry.key == DIRECTIVE {
            if directive(r, &entry.node) {
                // The field deleted is the table's own.
                fields.push(PatchedField {
                    path: path
                        .rsplit_once('.')
                        .map_or("", |(parent, _)| parent)
                        .into(),
                    origin: entry.key_origin.clone(),
                    at: String::new(),
                });
                map.insert(entry.key.clone(), Json::from(DELETE));
            }
            continue;
        }
        let value = match &entry.node.value {
            Value::Table(inner) if !inner.entries.is_empty() => {
                Some(Json::Object(object(r, inner, &path, fields)))
            }
            _ => {
                let value = json(r, &entry.node);
                fields.push(PatchedField {
                    path: path.clone(),
                    origin: entry.key_origin.clone(),
                    at: String::new(),
                });
                value
            }
        };
        if let Some(value) = value {
            map.insert(entry.key.clone(), value);
        }
    }
    map
}

/// Whether a `$patch` key says `delete`, its only use; reported otherwise.
fn directive(r: &mut Reader, node: &Node) -> bool {
    if matches!(&node.value, Value::String(s) if s == DELETE) {
        return true;
    }
    r.report(
        Diagnostic::error(&node.origin, format!("`{DIRECTIVE}` can only be \"{DELETE}\""))
            .with_label("not a directive fleet knows")
            .with_help(format!(
                "`{{ \"{DIRECTIVE}\" = \"{DELETE}\" }}` removes a field fleet renders; a list item with it and a `name` removes that item"
            )),
    );
    false
}

/// One TOML value as JSON; `None` (reported) for floats and datetimes.
fn json(r: &mut Reader, node: &Node) -> Option<Json> {
    Some(match &node.value {
        Value::String(s) => Json::from(s.as_str()),
        Value::Integer(i) => Json::from(*i),
        Value::Boolean(b) => Json::from(*b),
        Value::Array(items) => Json::Array(items.iter().filter_map(|n| json(r, n)).collect()),
        // An item of a list: set as a whole with the list.
        Value::Table(table) => Json::Object(
            table
                .entries
                .iter()
                .filter_map(|entry| {
                    if entry.key == DIRECTIVE && !directive(r, &entry.node) {
                        return None;
                    }
                    Some((entry.key.clone(), json(r, &entry.node)?))
                })
                .collect(),
        ),
        Value::Float | Value::Datetime => {
            r.report(
                Diagnostic::error(
                    &node.origin,
                    format!("a patch value cannot be {}", node.value.type_name()),
                )
                .with_label("not a Kubernetes field value")
                .with_help("write it as a string (Kubernetes quantities and times are strings)"),
            );
            return None;
        }
    })
}
