//! `env` and `env_from`: literal variables and references to Secrets and
//! ConfigMaps.

use super::*;
use crate::load::diagnostic::Diagnostic;
use crate::load::read::Reader;
use crate::load::source::{Entry, Origin, Table, Value};
use crate::model::*;

pub(super) fn decode_env(r: &mut Reader, t: &Table, own: &Table) -> Vec<EnvVar> {
    let Some(table) = r.get_table(t, "env") else {
        return Vec::new();
    };
    let mut env = Vec::new();
    for entry in &table.value.entries {
        if ["NATS_URL", "AGENT_ID", "AGENT_NAMESPACE", "NATS_CONSUMERS"]
            .contains(&entry.key.as_str())
        {
            r.report(
                Diagnostic::error(&entry.key_origin, format!("`{}` is set by fleet and cannot be set in `env`", entry.key))
                    .with_label("reserved variable name")
                    .with_help("fleet sets NATS_URL from the agent's `nats_url`, NATS_CONSUMERS from its `consumers`, and AGENT_ID and AGENT_NAMESPACE from its pod; set `nats_url` to change the NATS server"),
            );
            continue;
        }
        if !valid_env_name(&entry.key) {
            r.report(
                Diagnostic::error(
                    &entry.key_origin,
                    format!("`{}` is not a valid environment variable name", entry.key),
                )
                .with_label("invalid variable name")
                .with_help("use letters, digits and '_', not starting with a digit"),
            );
            continue;
        }
        let value = match &entry.node.value {
            Value::String(s) => Some(EnvValue::Literal(s.clone())),
            Value::Table(reference) => {
                let what = format!("env `{}`", entry.key);
                r.check_keys(reference, &what, ENV_REF_KEYS);
                let own = own_table(own, &["env", &entry.key]);
                let source = object_ref(r, reference, own, &what, &entry.node.origin);
                let key = required_string(r, reference, "key", &what, &entry.node.origin);
                match (source, key) {
                    (Some(ObjectRef::Secret(name)), Some(key)) => Some(EnvValue::Secret {
                        name,
                        key: key.value,
                    }),
                    (Some(ObjectRef::ConfigMap(name)), Some(key)) => Some(EnvValue::ConfigMap {
                        name,
                        key: key.value,
                    }),
                    _ => None,
                }
            }
            _ => {
                r.report(
                    Diagnostic::error(&entry.node.origin, "expected a string, or { secret = \"name\", key = \"key\" } (or config_map)")
                        .with_label(format!("found {}", entry.node.value.type_name()))
                        .with_help("secret values never go in fleet's files: reference an existing Secret instead"),
                );
                None
            }
        };
        if let Some(value) = value {
            env.push(EnvVar {
                name: entry.key.clone(),
                value,
            });
        }
    }
    env
}

/// `secret = "name"` or `config_map = "name"`: exactly one, naming an
/// existing object. When an overlay switched the source (see
/// [`overriding`]), its choice wins.
pub(super) fn object_ref(
    r: &mut Reader,
    t: &Table,
    own: Option<&Table>,
    what: &str,
    origin: &Origin,
) -> Option<ObjectRef> {
    let (secret, config_map) = match (t.get("secret"), t.get("config_map")) {
        (Some(secret), Some(config_map)) => match overriding(secret, config_map, own) {
            Some(winner) if winner.key == "secret" => (r.string(t, "secret"), None),
            Some(_) => (None, r.string(t, "config_map")),
            None => {
                r.report(
                    Diagnostic::error(
                        &config_map.key_origin,
                        format!("{what} names both a Secret and a ConfigMap"),
                    )
                    .with_label("one source only")
                    .with_help("keep either `secret` or `config_map`"),
                );
                return None;
            }
        },
        _ => (r.string(t, "secret"), r.string(t, "config_map")),
    };
    match (secret, config_map) {
        (Some(secret), _) => dns_subdomain(r, &secret, "Secret name").map(ObjectRef::Secret),
        (None, Some(config_map)) => {
            dns_subdomain(r, &config_map, "ConfigMap name").map(ObjectRef::ConfigMap)
        }
        (None, None) => {
            if t.get("secret").is_none() && t.get("config_map").is_none() {
                r.report(
                    Diagnostic::error(origin, format!("{what} names no Secret or ConfigMap"))
                        .with_label("from where?")
                        .with_help("add `secret = \"name\"` or `config_map = \"name\"`, an object that exists in the namespace"),
                );
            }
            None
        }
    }
}

/// Of two settings that exclude each other but met when tables were laid
/// over each other, the one written by the overlay: the environment's over
/// the fleet file's, the agent's own table over [defaults]. `None` when one
/// place sets both.
pub(super) fn overriding<'e>(a: &'e Entry, b: &'e Entry, own: Option<&Table>) -> Option<&'e Entry> {
    // Files are numbered in load order: built-in, fleet file, environment.
    if a.key_origin.file != b.key_origin.file {
        return Some(if a.key_origin.file > b.key_origin.file {
            a
        } else {
            b
        });
    }
    let own = own?;
    match (own.get(&a.key).is_some(), own.get(&b.key).is_some()) {
        (true, false) => Some(a),
        (false, true) => Some(b),
        _ => None,
    }
}

/// The table at `path` in the agent's own table, if it has one there.
pub(super) fn own_table<'t>(own: &'t Table, path: &[&str]) -> Option<&'t Table> {
    let mut table = own;
    for key in path {
        match &table.get(key)?.node.value {
            Value::Table(inner) => table = inner,
            _ => return None,
        }
    }
    Some(table)
}

/// `env_from`: every key of existing ConfigMaps and Secrets as variables.
pub(super) fn decode_env_from(r: &mut Reader, t: &Table) -> Vec<EnvFrom> {
    let Some(items) = r.array(t, "env_from") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in items {
        let Some(table) = r.table(item) else { continue };
        r.check_keys(table, "an env_from source", ENV_FROM_KEYS);
        let source = object_ref(r, table, None, "an env_from source", &item.origin);
        let prefix = r.string(table, "prefix");
        if let Some(prefix) = &prefix
            && !valid_env_name(&prefix.value)
        {
            r.report(
                Diagnostic::error(
                    &prefix.origin,
                    format!("`{}` is not a valid variable name prefix", prefix.value),
                )
                .with_label("invalid prefix")
                .with_help("use letters, digits and '_', not starting with a digit, e.g. \"DB_\""),
            );
            continue;
        }
        if let Some(source) = source {
            out.push(EnvFrom {
                source,
                prefix: prefix.map(|p| p.value),
            });
        }
    }
    out
}

pub(super) fn valid_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::super::testing::{Definition, agent};
    use crate::model::*;

    fn var(name: &str, value: EnvValue) -> EnvVar {
        EnvVar {
            name: name.into(),
            value,
        }
    }

    #[test]
    fn env_takes_literals_and_keys_of_secrets_and_config_maps_in_order() {
        let a = agent(
            "env = { LOG = \"debug\", TOKEN = { secret = \"api\", key = \"token\" }, DB_HOST = { config_map = \"db\", key = \"host\" } }",
        )
        .unwrap();
        assert_eq!(
            a.env,
            [
                var("LOG", EnvValue::Literal("debug".into())),
                var(
                    "TOKEN",
                    EnvValue::Secret {
                        name: "api".into(),
                        key: "token".into()
                    }
                ),
                var(
                    "DB_HOST",
                    EnvValue::ConfigMap {
                        name: "db".into(),
                        key: "host".into()
                    }
                ),
            ]
        );
        assert_eq!(agent("").unwrap().env, []);
    }

    #[test]
    fn an_env_secret_reference_needs_a_key_and_a_source() {
        assert_eq!(
            agent("env = { API_TOKEN = { secret = \"api\" } }").unwrap_err(),
            ["2:21: env `API_TOKEN` has no `key`"]
        );
        assert_eq!(
            agent("env = { API_TOKEN = { key = \"token\" } }").unwrap_err(),
            ["2:21: env `API_TOKEN` names no Secret or ConfigMap"]
        );
        assert_eq!(
            agent("env = { API_TOKEN = { secret = \"Api_Secret\", key = \"token\" } }")
                .unwrap_err(),
            ["2:32: `Api_Secret` is not a valid Secret name"]
        );
    }

    #[test]
    fn names_fleet_sets_and_invalid_names_and_values_are_refused() {
        assert_eq!(
            agent("env = { NATS_URL = \"nats://other:4222\", 1PASSWORD = \"x\", PORT = 8080 }")
                .unwrap_err(),
            [
                "2:9: `NATS_URL` is set by fleet and cannot be set in `env`",
                "2:41: `1PASSWORD` is not a valid environment variable name",
                "2:65: expected a string, or { secret = \"name\", key = \"key\" } (or config_map)",
            ]
        );
    }

    #[test]
    fn a_secret_and_a_config_map_meet_only_when_an_overlay_switches_source() {
        assert_eq!(
            agent("env = { DB = { secret = \"db\", config_map = \"db\", key = \"host\" } }")
                .unwrap_err(),
            ["2:31: env `DB` names both a Secret and a ConfigMap"]
        );
        let config_map = Some(var(
            "DB",
            EnvValue::ConfigMap {
                name: "db".into(),
                key: "host".into(),
            },
        ));
        // The environment's over fleet.toml.
        let a = Definition {
            agent: "env = { DB = { secret = \"db\", key = \"host\" } }",
            environment: Some("[agents.a]\nenv = { DB = { config_map = \"db\" } }\n"),
            ..Definition::default()
        }
        .result()
        .unwrap();
        assert_eq!(a.env.into_iter().next(), config_map);
        // The agent's own over [defaults].
        let a = Definition {
            agent: "env = { DB = { config_map = \"db\" } }",
            defaults: "env = { DB = { secret = \"db\", key = \"host\" } }",
            ..Definition::default()
        }
        .result()
        .unwrap();
        assert_eq!(a.env.into_iter().next(), config_map);
    }

    #[test]
    fn env_from_takes_whole_objects_with_an_optional_prefix() {
        let a = agent(
            "env_from = [{ config_map = \"settings\" }, { secret = \"db\", prefix = \"DB_\" }]",
        )
        .unwrap();
        assert_eq!(
            a.env_from,
            [
                EnvFrom {
                    source: ObjectRef::ConfigMap("settings".into()),
                    prefix: None,
                },
                EnvFrom {
                    source: ObjectRef::Secret("db".into()),
                    prefix: Some("DB_".into()),
                },
            ]
        );
        assert_eq!(
            agent("env_from = [{ prefix = \"DB_\" }, { secret = \"db\", prefix = \"db-\" }]")
                .unwrap_err(),
            [
                "2:13: an env_from source names no Secret or ConfigMap",
                "2:59: `db-` is not a valid variable name prefix",
            ]
        );
    }
}
