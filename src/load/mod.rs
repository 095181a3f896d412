//! load: `fleet.toml` (+ `environments/<env>.toml`) -> a validated [`Fleet`].
//!
//! Built-in defaults, then the fleet file, then the environment file are laid
//! over each other (tables merge key by key, arrays replace), then read into
//! the typed model in one pass that reports every problem with its file, line
//! and column. Reads files; never touches a cluster or a NATS server.

pub mod decode;
pub mod diagnostic;
mod merge;
pub mod read;
pub mod schema;
pub mod source;

use std::path::{Path, PathBuf};

use diagnostic::{Diagnostic, Severity};
use source::{Node, Origin, Sources, Value};

use crate::model::Fleet;

const BUILTIN: &str = include_str!("builtin.toml");

/// What a load produced: the fleet when there were no errors, and every
/// diagnostic (warnings included) with the sources they quote.
#[derive(Debug)]
pub struct Loaded {
    pub fleet: Option<Fleet>,
    pub diagnostics: Vec<Diagnostic>,
    pub sources: Sources,
}

impl Loaded {
    pub fn errors(&self) -> usize {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count()
    }
}

/// The environment file for `env` beside the fleet file.
pub fn environment_path(fleet_file: &Path, env: &str) -> PathBuf {
    fleet_file
        .parent()
        .unwrap_or(Path::new(""))
        .join("environments")
        .join(format!("{env}.toml"))
}

/// `environments/local.toml has 3 problems`, or `4 problems: 3 in
/// environments/local.toml, 1 in fleet.toml`, naming the files the errors
/// are in (a problem in no file counts for `fleet_file`); `None` without
/// errors. It says nothing of changes: validate and render never make any.
pub fn problems(loaded: &Loaded, fleet_file: &Path) -> Option<String> {
    let mut by_file: Vec<(PathBuf, usize)> = Vec::new();
    for diagnostic in &loaded.diagnostics {
        if diagnostic.severity != Severity::Error {
            continue;
        }
        let path = match &diagnostic.origin {
            Some(origin) => loaded.sources.file(origin.file).path.clone(),
            None => fleet_file.to_path_buf(),
        };
        match by_file.iter_mut().find(|(p, _)| *p == path) {
            Some((_, count)) => *count += 1,
            None => by_file.push((path, 1)),
        }
    }
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    match by_file.as_slice() {
        [] => None,
        [(path, count)] => Some(format!(
            "{} has {count} problem{}",
            path.display(),
            plural(*count)
        )),
        files => {
            let total: usize = files.iter().map(|(_, count)| count).sum();
            let each: Vec<String> = files
                .iter()
                .map(|(path, count)| format!("{count} in {}", path.display()))
                .collect();
            Some(format!(
                "{total} problem{}: {}",
                plural(total),
                each.join(", ")
            ))
        }
    }
}

/// Loads the fleet file and, when `env` is given, its environment overlay.
/// Only a file that cannot be read at all is an `Err`; everything wrong inside
/// the files is a diagnostic in [`Loaded`].
pub fn load(fleet_file: &Path, env: Option<&str>) -> anyhow::Result<Loaded> {
    // Bytes, not a String: text that is not UTF-8 is a diagnostic pointing at
    // the first bad byte, not an io error without a place.
    let text = std::fs::read(fleet_file)
        .map_err(|err| anyhow::anyhow!("cannot read {}: {err}", fleet_file.display()))?;
    let overlay = match env {
        Some(env) => {
            if !valid_env_name(env) {
                anyhow::bail!(
                    "`{env}` is not an environment name: use letters, digits, '-' and '_'"
                );
            }
            let path = environment_path(fleet_file, env);
            let text = std::fs::read(&path).map_err(|err| {
                anyhow::anyhow!(
                    "cannot read {} for environment `{env}`: {err}\n  {}",
                    path.display(),
                    environments_hint(fleet_file, env)
                )
            })?;
            Some((path, text))
        }
        None => None,
    };
    let base_dir = fleet_file.parent().unwrap_or(Path::new("")).to_path_buf();
    let files = DirectoryFiles { base_dir };
    Ok(load_bytes(
        fleet_file,
        &text,
        overlay.as_ref().map(|(p, t)| (p.as_path(), t.as_slice())),
        env,
        &files,
    ))
}

/// The environments that exist beside `fleet_file` (the stems of
/// `environments/*.toml`), sorted.
pub fn environments(fleet_file: &Path) -> Vec<String> {
    let dir = environment_path(fleet_file, "x");
    let Some(Ok(entries)) = dir.parent().map(std::fs::read_dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            (path.extension()? == "toml").then_some(())?;
            Some(path.file_stem()?.to_str()?.to_string())
        })
        .filter(|name| valid_env_name(name))
        .collect();
    names.sort();
    names
}

/// The environment a command that reaches a cluster (plan, apply, unlock)
/// runs in. When `environments/` beside the fleet file holds environments,
/// one must be named, as Terraform users expect the workspace to be
/// explicit: without it a plan went to the base namespace (the shared one)
/// and proposed destroying what another environment had deployed there.
/// `--env ''` names fleet.toml alone.
pub fn cluster_environment(fleet_file: &Path, env: Option<&str>) -> anyhow::Result<Option<String>> {
    match env {
        Some("") => Ok(None),
        Some(env) => Ok(Some(env.to_string())),
        None => {
            let names = environments(fleet_file);
            if names.is_empty() {
                return Ok(None);
            }
            let listed: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
            anyhow::bail!(
                "no environment given, and {} has environments beside it ({}): name one with --env (or FLEET_ENV), e.g. `--env {}`; `--env ''` uses {} alone. Nothing was changed",
                fleet_file.display(),
                listed.join(", "),
                names[0],
                fleet_file.display()
            )
        }
    }
}

/// What to say when environment `env` has no file: the ones there are,
/// the nearest first (`--env prod` when there is `production`).
fn environments_hint(fleet_file: &Path, env: &str) -> String {
    let names = environments(fleet_file);
    if names.is_empty() {
        return format!(
            "(environments are files in environments/ beside {}; there is none)",
            fleet_file.display()
        );
    }
    let likeness = |name: &str| {
        let prefix = name.starts_with(env) || env.starts_with(name);
        (prefix, strsim::jaro_winkler(env, name))
    };
    let nearest = names
        .iter()
        .max_by(|a, b| {
            likeness(a)
                .partial_cmp(&likeness(b))
                .unwrap_or(std::cmp::Ordering::Equal)
        })
        .expect("not empty");
    let listed: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    format!(
        "did you mean `--env {nearest}`? The environments beside {} are {}",
        fleet_file.display(),
        listed.join(", ")
    )
}

fn valid_env_name(env: &str) -> bool {
    !env.is_empty()
        && env
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// [`load`] on text already read; `files` resolves config files named by path.
pub fn load_str(
    fleet_path: &Path,
    fleet_text: &str,
    overlay: Option<(&Path, &str)>,
    env: Option<&str>,
    files: &dyn decode::ConfigFiles,
) -> Loaded {
    load_bytes(
        fleet_path,
        fleet_text.as_bytes(),
        overlay.map(|(path, text)| (path, text.as_bytes())),
        env,
        files,
    )
}

/// [`load`] on files already read, which may not be UTF-8.
pub fn load_bytes(
    fleet_path: &Path,
    fleet_text: &[u8],
    overlay: Option<(&Path, &[u8])>,
    env: Option<&str>,
    files: &dyn decode::ConfigFiles,
) -> Loaded {
    let mut sources = Sources::default();
    let mut diagnostics = Vec::new();

    let builtin_id = sources.add(Path::new("<built-in defaults>"), BUILTIN.to_string());
    let mut root = source::parse(builtin_id, BUILTIN).expect("the built-in defaults parse");

    let mut parse = |sources: &mut Sources, path: &Path, bytes: &[u8]| {
        let text = match std::str::from_utf8(bytes) {
            Ok(text) => text,
            Err(err) => {
                diagnostics.push(not_utf8(sources, path, bytes, &err));
                return None;
            }
        };
        let id = sources.add(path, text.to_string());
        match source::parse(id, text) {
            Ok(node) => Some(node),
            Err(errors) => {
                diagnostics.extend(errors.into_iter().map(|e| {
                    Diagnostic::error(&e.origin, format!("invalid TOML: {}", e.message))
                        .with_label("here")
                }));
                None
            }
        }
    };
    let fleet_root = parse(&mut sources, fleet_path, fleet_text);
    let overlay_root = overlay.and_then(|(path, text)| parse(&mut sources, path, text));
    let (Some(fleet_root), true) = (fleet_root, overlay.is_none() || overlay_root.is_some()) else {
        return Loaded {
            fleet: None,
            diagnostics,
            sources,
        };
    };

    merge::overlay(&mut root, &fleet_root);
    if let Some(overlay_root) = &overlay_root {
        diagnostics.extend(unknown_agents(&fleet_root, overlay_root, env.unwrap_or("")));
        merge::overlay(&mut root, overlay_root);
    }
    // Problems with the definition as a whole point at the fleet file, not
    // at the built-in defaults it was laid over.
    root.origin = Origin {
        file: fleet_root.origin.file,
        span: 0..0,
    };
    let mut decoded = decode::decode(&root, env, files);
    diagnostics.extend(decoded.diagnostics);
    if let Some(fleet) = &mut decoded.fleet {
        locate_patch_fields(fleet, &sources);
    }
    let has_errors = diagnostics.iter().any(|d| d.severity == Severity::Error);
    Loaded {
        fleet: if has_errors { None } else { decoded.fleet },
        diagnostics,
        sources,
    }
}

/// Each patch names where its fields were written, for the API server's
/// complaints about them, which come long after loading. (Whether the agent
/// has the object a patch names is the renderer's to say: see
/// [`crate::definition`].)
fn locate_patch_fields(fleet: &mut Fleet, sources: &Sources) {
    for agent in &mut fleet.agents {
        for patch in &mut agent.patches {
            for field in &mut patch.fields {
                field.at = sources.location(&field.origin);
            }
        }
    }
}

/// A file that is not UTF-8 (TOML must be), pointing at its first bad byte.
fn not_utf8(
    sources: &mut Sources,
    path: &Path,
    bytes: &[u8],
    err: &std::str::Utf8Error,
) -> Diagnostic {
    let at = err.valid_up_to();
    let bad = &bytes[at..at + err.error_len().unwrap_or(bytes.len() - at)];
    let shown: Vec<String> = bad.iter().map(|b| format!("0x{b:02x}")).collect();
    // The lossy text is the same up to the bad byte, which it shows as U+FFFD;
    // line and column are counted in it like in any other file.
    let id = sources.add(path, String::from_utf8_lossy(bytes).into_owned());
    let origin = Origin {
        file: id,
        span: at..at + char::REPLACEMENT_CHARACTER.len_utf8(),
    };
    Diagnostic::error(&origin, format!("{} is not UTF-8 text", path.display()))
        .with_label(format!("invalid byte {}", shown.join(" ")))
        .with_help(
            "TOML files must be UTF-8: save the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8`)",
        )
}

/// An environment may only tune agents the fleet defines.
fn unknown_agents(fleet: &Node, overlay: &Node, env: &str) -> Vec<Diagnostic> {
    let agents = |node: &Node| match &node.value {
        Value::Table(t) => t.get("agents").and_then(|e| match &e.node.value {
            Value::Table(agents) => Some(agents.clone()),
            _ => None,
        }),
        _ => None,
    };
    let known = agents(fleet).unwrap_or_default();
    let known_names: Vec<&str> = known.entries.iter().map(|e| e.key.as_str()).collect();
    let mut out = Vec::new();
    for entry in agents(overlay).map(|a| a.entries).unwrap_or_default() {
        if known.get(&entry.key).is_none() {
            let mut d = Diagnostic::error(
                &entry.key_origin,
                format!(
                    "environment `{env}` configures agent `{}`, which the fleet does not define",
                    entry.key
                ),
            )
            .with_label("not an agent of this fleet");
            d = match read::suggest(&entry.key, &known_names) {
                Some(best) => d.with_help(format!("did you mean `{best}`?")),
                None => d.with_help(
                    "define the agent in fleet.toml first; an environment only adjusts agents",
                ),
            };
            out.push(d);
        }
    }
    out
}

/// Config files named by path, relative to the fleet file's directory.
pub struct DirectoryFiles {
    pub base_dir: PathBuf,
}

impl decode::ConfigFiles for DirectoryFiles {
    fn read(&self, path: &str) -> Result<String, String> {
        let bytes = std::fs::read(self.base_dir.join(path)).map_err(|err| err.to_string())?;
        String::from_utf8(bytes).map_err(|err| {
            let valid = &err.as_bytes()[..err.utf8_error().valid_up_to()];
            let line = valid.iter().filter(|b| **b == b'\n').count() + 1;
            let line_start = valid.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
            // The prefix is valid UTF-8, so columns count characters.
            let col = String::from_utf8_lossy(&valid[line_start..])
                .chars()
                .count()
                + 1;
            format!("it is not UTF-8 text (first invalid byte at line {line}, column {col})")
        })
    }
}

/// Config files for tests: a fixed map of paths to texts.
#[cfg(test)]
pub struct MapFiles(pub std::collections::BTreeMap<String, String>);

#[cfg(test)]
impl decode::ConfigFiles for MapFiles {
    fn read(&self, path: &str) -> Result<String, String> {
        self.0
            .get(path)
            .cloned()
            .ok_or_else(|| "No such file or directory (os error 2)".into())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    const FLEET: &str = r#"
[fleet]
name = "demo"
namespace = "agents"

[defaults]
image = "example.com/agent:1"
nats_url = "nats://nats:4222"

[agents.devops]
replicas = 2

[agents.observer]
profile = "observer"
"#;

    fn load_with(overlay: Option<&str>) -> Loaded {
        let files = MapFiles(BTreeMap::new());
        load_str(
            Path::new("fleet.toml"),
            FLEET,
            overlay.map(|text| (Path::new("environments/prod.toml"), text)),
            overlay.map(|_| "prod"),
            &files,
        )
    }

    #[test]
    fn an_environment_without_a_file_is_offered_the_ones_there_are() {
        let dir = tempfile::tempdir().unwrap();
        let fleet = dir.path().join("fleet.toml");
        std::fs::write(&fleet, FLEET).unwrap();
        std::fs::create_dir(dir.path().join("environments")).unwrap();
        for name in ["staging", "production", "local"] {
            std::fs::write(dir.path().join(format!("environments/{name}.toml")), "").unwrap();
        }
        let err = load(&fleet, Some("prod")).err().unwrap().to_string();
        assert!(
            err.contains("did you mean `--env production`? The environments beside")
                && err.ends_with("are `local`, `production`, `staging`"),
            "{err}"
        );
        assert_eq!(environments(&fleet), ["local", "production", "staging"]);
    }

    #[test]
    fn a_cluster_command_names_its_environment_when_there_are_some() {
        let dir = tempfile::tempdir().unwrap();
        let fleet = dir.path().join("fleet.toml");
        std::fs::write(&fleet, FLEET).unwrap();
        assert_eq!(
            cluster_environment(&fleet, None).unwrap(),
            None,
            "none there"
        );
        std::fs::create_dir(dir.path().join("environments")).unwrap();
        std::fs::write(dir.path().join("environments/local.toml"), "").unwrap();
        let err = cluster_environment(&fleet, None).unwrap_err().to_string();
        assert!(
            err.contains("has environments beside it (`local`): name one with --env (or FLEET_ENV), e.g. `--env local`"),
            "{err}"
        );
        assert_eq!(cluster_environment(&fleet, Some("")).unwrap(), None);
        assert_eq!(
            cluster_environment(&fleet, Some("local"))
                .unwrap()
                .as_deref(),
            Some("local")
        );
    }

    #[test]
    fn rules_and_nats_url_naming_the_namespace_the_fleet_moved_from_warn() {
        let fleet = "[fleet]\nname = \"a\"\nnamespace = \"agent-system\"\n\n[defaults]\nimage = \"example.com/agent:1\"\nnats_url = \"nats://nats.agent-system.svc:4222\"\nnetwork.ingress.nats = { from = [{ namespaces = { name = \"agent-system\" } }], ports = [4222] }\nnetwork.ingress.metrics = { from = [{ namespaces = { name = \"monitoring\" } }] }\n\n[agents.devops]\n";
        let load = |overlay: &str| {
            load_str(
                Path::new("fleet.toml"),
                fleet,
                Some((Path::new("environments/local.toml"), overlay)),
                Some("local"),
                &MapFiles(BTreeMap::new()),
            )
        };
        let warnings = |loaded: &Loaded| -> Vec<String> {
            loaded
                .diagnostics
                .iter()
                .filter(|d| d.severity == Severity::Warning)
                .map(|d| d.message.clone())
                .collect()
        };
        let moved = load("[environment]\nnamespace = \"agents-local\"\n");
        assert_eq!(
            warnings(&moved),
            [
                "`nats_url` names namespace `agent-system`, the fleet's namespace in fleet.toml, but this environment deploys the fleet to `agents-local`",
                "this peer selects namespace `agent-system`, the fleet's namespace in fleet.toml, but this environment deploys the fleet to `agents-local`",
            ]
        );
        // Renamed in the environment: nothing to say.
        let renamed = load(
            "[environment]\nnamespace = \"agents-local\"\n[defaults]\nnats_url = \"nats://nats.agents-local.svc:4222\"\nnetwork.ingress.nats = { from = [{ namespaces = { name = \"agents-local\" } }], ports = [4222] }\n",
        );
        assert_eq!(warnings(&renamed), Vec::<String>::new());
        // Not moved: nothing to say either.
        assert_eq!(warnings(&load("")), Vec::<String>::new());
    }

    #[test]
    fn the_summary_names_the_files_the_problems_are_in() {
        // Every problem in the environment: the summary named fleet.toml.
        let loaded = load_with(Some(
            "[agents.observer]\nreplicas = \"two\"\n[agents.devops]\nreplicas = -1\n",
        ));
        assert_eq!(
            problems(&loaded, Path::new("fleet.toml")).as_deref(),
            Some("environments/prod.toml has 2 problems")
        );
        let both = load_str(
            Path::new("fleet.toml"),
            &FLEET.replace("replicas = 2", "replicas = \"x\""),
            Some((
                Path::new("environments/prod.toml"),
                "[agents.observer]\nreplicas = \"two\"\n",
            )),
            Some("prod"),
            &MapFiles(BTreeMap::new()),
        );
        assert_eq!(
            problems(&both, Path::new("fleet.toml")).as_deref(),
            Some("2 problems: 1 in fleet.toml, 1 in environments/prod.toml")
        );
        assert_eq!(problems(&load_with(None), Path::new("fleet.toml")), None);
    }

    #[test]
    fn environment_overlays_the_fleet() {
        let loaded = load_with(Some(
            "[environment]\nnamespace = \"agents-prod\"\n[defaults]\nimage = \"example.com/agent:2\"\n[agents.observer]\nenabled = false\n",
        ));
        assert_eq!(loaded.errors(), 0, "{:?}", loaded.diagnostics);
        let fleet = loaded.fleet.unwrap();
        assert_eq!(fleet.namespace, "agents-prod");
        assert_eq!(fleet.environment.as_deref(), Some("prod"));
        let roles: Vec<_> = fleet.agents.iter().map(|a| a.role.as_str()).collect();
        assert_eq!(roles, ["devops"]);
        assert_eq!(fleet.agents[0].image, "example.com/agent:2");
        assert_eq!(fleet.agents[0].replicas, 2);
    }

    #[test]
    fn environment_may_not_invent_agents() {
        let loaded = load_with(Some("[agents.devopz]\nreplicas = 3\n"));
        assert_eq!(loaded.errors(), 1);
        let d = &loaded.diagnostics[0];
        assert_eq!(
            d.message,
            "environment `prod` configures agent `devopz`, which the fleet does not define"
        );
        assert_eq!(d.help.as_deref(), Some("did you mean `devops`?"));
        assert_eq!(loaded.sources.line_col(d.origin.as_ref().unwrap()), (1, 9));
    }

    #[test]
    fn files_that_are_not_utf8_point_at_the_first_bad_byte() {
        let dir = tempfile::tempdir().unwrap();
        let fleet = dir.path().join("fleet.toml");
        let mut text = FLEET.as_bytes().to_vec();
        text.extend_from_slice(b"[agents.devops.config]\n\"a.yaml\" = { file = \"a.yaml\" }\n");
        std::fs::write(&fleet, &text).unwrap();
        std::fs::write(dir.path().join("a.yaml"), b"ok: 1\nname: caf\xe9\n").unwrap();
        std::fs::create_dir(dir.path().join("environments")).unwrap();
        std::fs::write(
            dir.path().join("environments/prod.toml"),
            b"[environment]\n# \xff\xfe\nnamespace = \"p\"\n",
        )
        .unwrap();

        let loaded = load(&fleet, Some("prod")).unwrap();
        let found: Vec<_> = loaded
            .diagnostics
            .iter()
            .map(|d| {
                let origin = d.origin.as_ref().unwrap();
                let path = loaded.sources.file(origin.file).path.clone();
                (path, loaded.sources.line_col(origin), d.label.clone())
            })
            .collect();
        assert_eq!(
            found,
            [(
                dir.path().join("environments/prod.toml"),
                (2, 3),
                "invalid byte 0xff".to_string()
            )]
        );

        // Without the environment, the config file is read and refused.
        let loaded = load(&fleet, None).unwrap();
        assert_eq!(loaded.errors(), 1);
        assert_eq!(
            loaded.diagnostics[0].message,
            "cannot read config file `a.yaml`: it is not UTF-8 text (first invalid byte at line 2, column 10)"
        );
    }

    #[test]
    fn profiles_fill_in_resources() {
        let fleet = load_with(None).fleet.unwrap();
        let observer = fleet.agents.iter().find(|a| a.role == "observer").unwrap();
        assert_eq!(
            observer.resources.requests.memory.as_ref().unwrap().text,
            "256Mi"
        );
        assert_eq!(observer.resources.limits.cpu.as_ref().unwrap().text, "500m");
    }

    #[test]
    fn a_namespace_fleet_does_not_label_is_not_selected_by_name() {
        let text = |manage: bool| {
            format!(
                "[fleet]\nname = \"demo\"\nnamespace = \"agents\"\nmanage_namespace = {manage}\n[defaults]\nimage = \"example.com/agent:1\"\nnats_url = \"nats://nats:4222\"\nnetwork = {{ ingress = [{{ from = [{{ namespaces = {{ name = \"agents\" }} }}] }}] }}\n[agents.a]\n[agents.b]\n"
            )
        };
        let load = |text: &str| {
            load_str(
                Path::new("fleet.toml"),
                text,
                None,
                None,
                &MapFiles(BTreeMap::new()),
            )
        };
        assert!(load(&text(true)).diagnostics.is_empty());
        let loaded = load(&text(false));
        // Once, though both agents take the rule from [defaults].
        let messages: Vec<&str> = loaded
            .diagnostics
            .iter()
            .map(|d| d.message.as_str())
            .collect();
        assert_eq!(
            messages,
            ["this peer selects namespace `agents` by a `name` label that fleet does not set"]
        );
        assert_eq!(loaded.errors(), 0);
        assert!(!loaded.fleet.unwrap().manage_namespace);
        // Not a boolean: an error where it is written.
        let loaded =
            load(&text(true).replace("manage_namespace = true", "manage_namespace = \"no\""));
        assert_eq!(loaded.errors(), 1, "{:?}", loaded.diagnostics);
    }

    /// Errors of `security` under each `[fleet] pod_security` level.
    fn security_errors(level: &str, security: &str) -> Vec<String> {
        let text = format!(
            "[fleet]\nname = \"demo\"\nnamespace = \"agents\"\npod_security = \"{level}\"\n[defaults]\nimage = \"example.com/agent:1\"\nnats_url = \"nats://nats:4222\"\n[agents.devops]\nsecurity = {security}\n"
        );
        let loaded = load_str(
            Path::new("fleet.toml"),
            &text,
            None,
            None,
            &MapFiles(BTreeMap::new()),
        );
        loaded.diagnostics.into_iter().map(|d| d.message).collect()
    }

    #[test]
    fn each_pod_security_level_allows_what_the_standard_allows() {
        // restricted: only NET_BIND_SERVICE may be added; a local seccomp
        // profile and a writable root filesystem are fine.
        let restricted_ok = r#"{ add_capabilities = ["NET_BIND_SERVICE"], seccomp_profile = "localhost/a.json", read_only_root_filesystem = false }"#;
        assert_eq!(
            security_errors("restricted", restricted_ok),
            Vec::<String>::new()
        );
        assert_eq!(
            security_errors("restricted", "{ run_as_non_root = false }"),
            [
                "agent `devops` sets `run_as_non_root = false`, which Pod Security level `restricted` forbids"
            ]
        );
        // baseline: escalation, root and baseline's capabilities are fine,
        // other capabilities and Unconfined are not.
        let baseline_ok = r#"{ allow_privilege_escalation = true, run_as_non_root = false, run_as_user = 0, add_capabilities = ["CHOWN", "SYS_CHROOT"] }"#;
        assert_eq!(
            security_errors("baseline", baseline_ok),
            Vec::<String>::new()
        );
        assert_eq!(
            security_errors(
                "baseline",
                r#"{ add_capabilities = ["NET_ADMIN"], seccomp_profile = "Unconfined" }"#
            ),
            [
                "agent `devops` sets capability `NET_ADMIN`, which Pod Security level `baseline` forbids",
                "agent `devops` sets `seccomp_profile = \"Unconfined\"`, which Pod Security level `baseline` forbids",
            ]
        );
        // privileged: anything fleet renders.
        assert_eq!(
            security_errors(
                "privileged",
                r#"{ add_capabilities = ["NET_ADMIN"], seccomp_profile = "Unconfined", allow_privilege_escalation = true }"#
            ),
            Vec::<String>::new()
        );
    }
}
