//! `config`, `config_dir` and `volumes`: what is mounted into the pod.

use std::collections::BTreeMap;

use super::*;
use crate::load::diagnostic::Diagnostic;
use crate::load::read::{At, Reader};
use crate::load::source::{Table, Value};
use crate::model::*;

pub(super) fn decode_config(
    r: &mut Reader,
    t: &Table,
    files: &dyn ConfigFiles,
) -> BTreeMap<String, String> {
    let mut config = BTreeMap::new();
    let Some(table) = r.get_table(t, "config") else {
        return config;
    };
    for entry in &table.value.entries {
        if !valid_config_key(&entry.key) {
            r.report(
                Diagnostic::error(
                    &entry.key_origin,
                    format!("`{}` is not a valid config file name", entry.key),
                )
                .with_label("not a ConfigMap key")
                .with_help("use letters, digits, '-', '_' and '.'"),
            );
            continue;
        }
        let text = match &entry.node.value {
            Value::String(text) => Some(text.clone()),
            Value::Table(file) => {
                r.check_keys(file, "a config file", CONFIG_FILE_KEYS);
                r.string(file, "file")
                    .and_then(|path| match files.read(&path.value) {
                        Ok(text) => Some(text),
                        Err(why) => {
                            r.report(
                                Diagnostic::error(
                                    &path.origin,
                                    format!("cannot read config file `{}`: {why}", path.value),
                                )
                                .with_label("this file")
                                .with_help("paths are relative to the directory of fleet.toml"),
                            );
                            None
                        }
                    })
            }
            _ => {
                r.report(
                    Diagnostic::error(
                        &entry.node.origin,
                        "expected the file's text, or { file = \"path\" }",
                    )
                    .with_label(format!("found {}", entry.node.value.type_name())),
                );
                None
            }
        };
        if let Some(text) = text {
            config.insert(entry.key.clone(), text);
        }
    }
    config
}

pub(super) fn valid_config_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 253
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// Names of the volumes fleet mounts itself.
pub(super) const FLEET_VOLUMES: [&str; 3] = ["agent-config", "workspace", "tmp"];

/// `volumes`: existing Secrets and ConfigMaps mounted into the container,
/// by volume name, read-only unless said otherwise.
pub(super) fn decode_volumes(
    r: &mut Reader,
    t: &Table,
    own: &Table,
    config_files: &BTreeMap<String, String>,
    security: &SecurityContext,
) -> Vec<MountedVolume> {
    let Some(table) = r.get_table(t, "volumes") else {
        return Vec::new();
    };
    // Where fleet mounts its own volumes: the API server refuses two mounts
    // at one path.
    let config_dir = r
        .string(t, "config_dir")
        .map_or("/etc/agent".into(), |d| d.value);
    let mut taken: Vec<(String, String)> =
        vec![("/workspace".into(), "the agent's workspace".into())];
    if !config_files.is_empty() {
        taken.push((
            config_dir.trim_end_matches('/').into(),
            "the agent's config files".into(),
        ));
    }
    if security.read_only_root_filesystem {
        taken.push(("/tmp".into(), "the agent's temp directory".into()));
    }
    let mut out = Vec::new();
    for entry in &table.value.entries {
        let name = At {
            value: entry.key.clone(),
            origin: entry.key_origin.clone(),
        };
        let Some(name) = dns_label(r, &name, "volume name", 63) else {
            continue;
        };
        if FLEET_VOLUMES.contains(&name.as_str()) {
            r.report(
                Diagnostic::error(
                    &entry.key_origin,
                    format!("volume name `{name}` is fleet's own"),
                )
                .with_label("fleet names a volume of the pod this")
                .with_help(format!(
                    "use another name; fleet's volumes are {}",
                    FLEET_VOLUMES.join(", ")
                )),
            );
            continue;
        }
        let Some(v) = r.table(&entry.node) else {
            continue;
        };
        let what = format!("volume `{name}`");
        r.check_keys(v, &what, VOLUME_KEYS);
        let own = own_table(own, &["volumes", &entry.key]);
        let source = object_ref(r, v, own, &what, &entry.node.origin);
        let mount_path = required_string(r, v, "mount_path", &what, &entry.node.origin);
        let read_only = r.boolean(v, "read_only").unwrap_or(true);
        let mut ok = source.is_some() && mount_path.is_some();
        if let Some(path) = &mount_path {
            let normal = path.value.trim_end_matches('/');
            if !path.value.starts_with('/') {
                ok = false;
                r.report(
                    Diagnostic::error(
                        &path.origin,
                        format!("`{}` is not an absolute path", path.value),
                    )
                    .with_label("mount paths start with '/'")
                    .with_help("e.g. \"/etc/agent/tls\""),
                );
            } else if let Some((_, whose)) = taken.iter().find(|(p, _)| p == normal) {
                ok = false;
                r.report(
                    Diagnostic::error(
                        &path.origin,
                        format!("`{}` is where fleet mounts {whose}", path.value),
                    )
                    .with_label("already mounted")
                    .with_help("mount the volume elsewhere"),
                );
            } else {
                taken.push((normal.to_string(), format!("volume `{name}`")));
            }
        }
        let relative = |r: &mut Reader, path: &At<String>, what: &str| {
            let ok = !path.value.is_empty()
                && !path.value.starts_with('/')
                && !path.value.split('/').any(|part| part == "..");
            if !ok {
                r.report(
                    Diagnostic::error(
                        &path.origin,
                        format!("`{}` is not a relative path inside the volume", path.value),
                    )
                    .with_label(format!("{what} must be relative, without '..'"))
                    .with_help("e.g. \"tls.crt\" or \"certs/tls.crt\""),
                );
            }
            ok
        };
        let mut items = BTreeMap::new();
        if let Some(listed) = r.get_table(v, "items") {
            for (entry, path) in r.string_entries(listed.value) {
                if !valid_config_key(&entry.key) {
                    ok = false;
                    r.report(
                        Diagnostic::error(
                            &entry.key_origin,
                            format!("`{}` is not a valid key", entry.key),
                        )
                        .with_label("not a Secret or ConfigMap key")
                        .with_help("use letters, digits, '-', '_' and '.'"),
                    );
                    continue;
                }
                ok &= relative(r, &path, "an item's path");
                items.insert(entry.key.clone(), path.value);
            }
        }
        let sub_path = r.string(v, "sub_path");
        if let Some(sub_path) = &sub_path {
            ok &= relative(r, sub_path, "`sub_path`");
        }
        if let (true, Some(source), Some(mount_path)) = (ok, source, mount_path) {
            out.push(MountedVolume {
                name,
                source,
                mount_path: mount_path.value,
                read_only,
                items,
                sub_path: sub_path.map(|s| s.value),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::testing::{Definition, agent};
    use crate::model::*;

    #[test]
    fn config_files_are_texts_or_files_read_by_path() {
        let a = Definition {
            agent: "config = { \"config.yaml\" = \"x: 1\", \"agents.yaml\" = { file = \"conf/agents.yaml\" } }",
            files: &[("conf/agents.yaml", "agents: []\n")],
            ..Definition::default()
        }
        .result()
        .unwrap();
        assert_eq!(
            a.config_files,
            BTreeMap::from([
                ("agents.yaml".to_string(), "agents: []\n".to_string()),
                ("config.yaml".to_string(), "x: 1".to_string()),
            ])
        );
        assert_eq!(agent("").unwrap().config_files, BTreeMap::new());
    }

    #[test]
    fn a_config_file_needs_a_valid_name_and_a_readable_file() {
        assert_eq!(
            agent("[agents.a.config]\n\"con fig.yaml\" = \"x: 1\"\n\"a.yaml\" = { file = \"conf/a.yaml\" }\n\"b.yaml\" = 1")
                .unwrap_err(),
            [
                "3:1: `con fig.yaml` is not a valid config file name",
                "4:21: cannot read config file `conf/a.yaml`: No such file or directory (os error 2)",
                "5:12: expected the file's text, or { file = \"path\" }",
            ]
        );
    }

    #[test]
    fn volumes_mount_existing_objects_read_only_unless_said() {
        let a = agent(
            "[agents.a.volumes]\ntls = { secret = \"agent-tls\", mount_path = \"/etc/tls\" }\nprompts = { config_map = \"prompts\", mount_path = \"/prompts/\", read_only = false, items = { \"system.md\" = \"sys/system.md\" }, sub_path = \"sys\" }",
        )
        .unwrap();
        assert_eq!(
            a.volumes,
            [
                MountedVolume {
                    name: "tls".into(),
                    source: ObjectRef::Secret("agent-tls".into()),
                    mount_path: "/etc/tls".into(),
                    read_only: true,
                    items: BTreeMap::new(),
                    sub_path: None,
                },
                MountedVolume {
                    name: "prompts".into(),
                    source: ObjectRef::ConfigMap("prompts".into()),
                    mount_path: "/prompts/".into(),
                    read_only: false,
                    items: BTreeMap::from([("system.md".into(), "sys/system.md".into())]),
                    sub_path: Some("sys".into()),
                },
            ]
        );
    }

    #[test]
    fn a_volume_needs_a_name_of_its_own_a_source_and_a_mount_path() {
        assert_eq!(
            agent("[agents.a.volumes]\ntmp = { secret = \"s\", mount_path = \"/s\" }\nTLS = { secret = \"s\", mount_path = \"/s\" }\ntls = { read_only = true }\ncerts = { secret = \"s\", mountpath = \"/certs\" }")
                .unwrap_err(),
            [
                "3:1: volume name `tmp` is fleet's own",
                "4:1: `TLS` is not a valid volume name",
                "5:7: volume `tls` names no Secret or ConfigMap",
                "5:7: volume `tls` has no `mount_path`",
                "6:25: unknown key `mountpath` in volume `certs`",
                "6:9: volume `certs` has no `mount_path`",
            ]
        );
    }

    #[test]
    fn a_volume_cannot_be_mounted_where_something_else_is() {
        assert_eq!(
            agent("config = { \"config.yaml\" = \"x: 1\" }\n[agents.a.volumes]\none = { secret = \"s\", mount_path = \"etc/one\" }\ntwo = { secret = \"s\", mount_path = \"/workspace/\" }\nthree = { secret = \"s\", mount_path = \"/tmp\" }\nfour = { secret = \"s\", mount_path = \"/etc/agent\" }\nfive = { secret = \"s\", mount_path = \"/x\" }\nsix = { secret = \"s\", mount_path = \"/x/\" }")
                .unwrap_err(),
            [
                "4:36: `etc/one` is not an absolute path",
                "5:36: `/workspace/` is where fleet mounts the agent's workspace",
                "6:38: `/tmp` is where fleet mounts the agent's temp directory",
                "7:37: `/etc/agent` is where fleet mounts the agent's config files",
                "9:36: `/x/` is where fleet mounts volume `five`",
            ]
        );
        // Without config files or a read-only root filesystem, fleet mounts
        // nothing at the config directory or /tmp.
        let a = agent("security = { read_only_root_filesystem = false }\n[agents.a.volumes]\ntmpfs = { secret = \"s\", mount_path = \"/tmp\" }\nconf = { secret = \"s\", mount_path = \"/etc/agent\" }")
            .unwrap();
        let paths: Vec<&str> = a.volumes.iter().map(|v| v.mount_path.as_str()).collect();
        assert_eq!(paths, ["/tmp", "/etc/agent"]);
    }

    #[test]
    fn items_and_sub_path_are_relative_paths_inside_the_volume() {
        assert_eq!(
            agent("[agents.a.volumes.tls]\nsecret = \"s\"\nmount_path = \"/tls\"\nitems = { \"tls.crt\" = \"../cert.pem\", \"tls key\" = \"key.pem\", \"ca.crt\" = \"/ca.pem\" }\nsub_path = \"\"")
                .unwrap_err(),
            [
                "5:23: `../cert.pem` is not a relative path inside the volume",
                "5:38: `tls key` is not a valid key",
                "5:72: `/ca.pem` is not a relative path inside the volume",
                "6:12: `` is not a relative path inside the volume",
            ]
        );
    }

    #[test]
    fn the_environment_may_switch_a_volumes_source() {
        let a = Definition {
            agent: "volumes = { tls = { secret = \"agent-tls\", mount_path = \"/tls\" } }",
            environment: Some("[agents.a.volumes.tls]\nconfig_map = \"agent-tls\"\n"),
            ..Definition::default()
        }
        .result()
        .unwrap();
        assert_eq!(
            a.volumes.iter().map(|v| &v.source).collect::<Vec<_>>(),
            [&ObjectRef::ConfigMap("agent-tls".into())]
        );
    }
}
