//! Bad input, at scale: real fleet definitions (the repository's own and the
//! broken corpus) with random mutations (wrong types, missing and extra keys,
//! huge and negative numbers, odd Unicode, invalid UTF-8, deep nesting, empty
//! strings, duplicate keys) must never make the loader panic, and every
//! problem it reports must point at a line and column inside a file the user
//! wrote. A definition it accepts must render.
//!
//! CI runs proptest's default number of cases (256); a longer run is
//! `PROPTEST_CASES=20000 cargo test --test load_fuzz`.

use std::fmt;
use std::path::{Path, PathBuf};

use fleet::definition::load_bytes;
use fleet::load::diagnostic::{self, Severity};
use fleet::load::{DirectoryFiles, Loaded};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{Index, select};
use proptest::test_runner::Config;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A definition to start from: a fleet file and maybe an environment file.
#[derive(Clone)]
struct Seed {
    name: String,
    fleet: Vec<u8>,
    environment: Option<(String, Vec<u8>)>,
}

// The name is enough to find the seed; a failing case prints the mutated
// text itself.
impl fmt::Debug for Seed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

fn seeds() -> Vec<Seed> {
    let fleet = std::fs::read(repo().join("fleet.toml")).unwrap();
    let mut seeds = vec![Seed {
        name: "fleet.toml".into(),
        fleet: fleet.clone(),
        environment: None,
    }];
    let mut environments: Vec<PathBuf> = std::fs::read_dir(repo().join("environments"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    environments.sort();
    for path in environments {
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        seeds.push(Seed {
            name: format!("fleet.toml + environments/{name}.toml"),
            fleet: fleet.clone(),
            environment: Some((name, std::fs::read(&path).unwrap())),
        });
    }
    let mut broken: Vec<PathBuf> = std::fs::read_dir(repo().join("tests/broken"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    broken.sort();
    for path in broken {
        let bytes = std::fs::read(&path).unwrap();
        let marker = b"# === environments/";
        let (fleet, environment) = match find(&bytes, marker) {
            Some(at) => {
                let rest = &bytes[at + marker.len()..];
                let end = find(rest, b" ===\n").unwrap();
                let name = String::from_utf8_lossy(&rest[..end]);
                let name = name.trim_end_matches(".toml").to_string();
                (bytes[..at].to_vec(), Some((name, rest[end + 5..].to_vec())))
            }
            None => (bytes, None),
        };
        seeds.push(Seed {
            name: format!(
                "tests/broken/{}",
                path.file_name().unwrap().to_string_lossy()
            ),
            fleet,
            environment,
        });
    }
    seeds
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// One change to a file, at a place chosen by `Index`.
#[derive(Debug, Clone)]
enum Mutation {
    /// Replace what follows the first `=` on a line.
    ReplaceValue {
        line: Index,
        value: String,
    },
    /// Replace a value with another of its type, so the definition often
    /// stays valid and the odd values reach decoding and rendering.
    ReplaceLike {
        line: Index,
        integer: String,
        string: String,
    },
    /// Add `key = value` under a table header (an extra key, a wrong type,
    /// or a duplicate key).
    AddKey {
        header: Index,
        key: String,
        value: String,
    },
    /// Add a table header (a new agent, an array of tables, a header twice).
    AddHeader {
        line: Index,
        header: String,
    },
    /// Add a table with one key at the end: overrides of built-in
    /// profiles, new agents and streams, tables that already exist.
    AddTable {
        header: String,
        key: String,
        value: String,
    },
    DeleteLine {
        line: Index,
    },
    DuplicateLine {
        line: Index,
    },
    /// Wrap a value in `depth` arrays or inline tables.
    Nest {
        line: Index,
        depth: usize,
        tables: bool,
    },
    /// Odd Unicode anywhere, even inside a character.
    InsertText {
        at: Index,
        text: String,
    },
    /// A byte that is not UTF-8 on its own.
    InsertByte {
        at: Index,
        byte: u8,
    },
    Truncate {
        at: Index,
    },
}

/// Characters that have broken text handling elsewhere: combining marks,
/// bidi overrides, zero-width and byte-order marks, wide and astral
/// characters, line separators, controls.
const ODD: &[&str] = &[
    "\u{301}",
    "\u{202e}",
    "\u{200b}",
    "\u{feff}",
    "\u{2028}",
    "\u{85}",
    "\r",
    "\t",
    "\0",
    "\u{7f}",
    "\u{1b}[31m",
    "é",
    "ß",
    "İ",
    "日本",
    "🤖",
    "👩‍👩‍👧",
    "\u{10ffff}",
    "\\",
    "\"",
    "'",
    "\"\"\"",
    "#",
    "=",
    "[",
    "]",
    "{",
    "}",
    ",",
    ".",
    "\n",
];

const STRINGS: &[&str] = &[
    "",
    " ",
    "0s",
    "30s",
    "1500ms",
    "106751d",
    "106752d",
    "25000d",
    "99999999999999999999d",
    "99999999999999999999999999999999999999999s",
    "1h-5m",
    "ms",
    "7",
    "1Gi",
    "500m",
    "1.5Ki",
    "8Ei",
    "2Gi",
    "-1",
    "1e3",
    "1.0000000000000000000000000000000000000001Ki",
    "1000000000000000000000000000000000000000000000000000000000000000000000Ei",
    ".",
    "+",
    "tasks.>",
    "tasks.*.new",
    ">",
    "*",
    "tasks..x",
    "agent-tasks",
    "executor",
    "cognitive",
    "workqueue",
    "memory",
    "new",
    "devops",
    "DevOps",
    "a-",
    "config/devops.yaml",
    "../../../etc/passwd",
    "/dev/null",
    "no/such/file",
    "10.0.0.1/33",
    "::1/128",
    "53/udp",
    "70000",
    "example.com/agent:latest",
    "nats://nats:4222",
];

const KEYS: &[&str] = &[
    "fleet",
    "environment",
    "defaults",
    "profiles",
    "agents",
    "streams",
    "name",
    "namespace",
    "label_domain",
    "service_monitor",
    "kube_context",
    "nats_url",
    "enabled",
    "tier",
    "profile",
    "image",
    "args",
    "env",
    "config",
    "config_dir",
    "workspace_size",
    "replicas",
    "security",
    "ports",
    "liveness",
    "readiness",
    "resources",
    "requests",
    "limits",
    "cpu",
    "memory",
    "placement",
    "node_affinity",
    "autoscaling",
    "min",
    "max",
    "pending_per_replica",
    "memory_utilization",
    "scale_up",
    "scale_down",
    "stabilization",
    "pods",
    "period",
    "timeout",
    "initial_delay",
    "consumer",
    "stream",
    "filter_subjects",
    "ack_wait",
    "max_deliver",
    "max_ack_pending",
    "backoff",
    "network",
    "ingress",
    "egress",
    "from",
    "to",
    "cidr",
    "agent",
    "rbac",
    "verbs",
    "metrics",
    "labels",
    "subjects",
    "retention",
    "storage",
    "max_age",
    "max_bytes",
    "max_msgs",
    "max_msg_size",
    "discard",
    "duplicate_window",
    "file",
    "secret",
    "key",
    "NATS_URL",
    "command",
    "image_pull_secrets",
    "priority_class",
    "env_from",
    "volumes",
    "mount_path",
    "sub_path",
    "items",
    "config_map",
    "prefix",
    "disruption_budget",
    "min_available",
    "max_unavailable",
    "cpu_utilization",
    "percent",
    "tolerations",
    "operator",
    "effect",
    "toleration_seconds",
    "preferred_node_affinity",
    "weight",
    "match",
    "values",
    "node_spread",
    "namespace_labels",
    "namespace_annotations",
    "workload_type_label",
    "\"\"",
    "\"a b\"",
    "\"ünï\"",
    "replica",
    "a.b.c",
];

const HEADERS: &[&str] = &[
    "[fleet]",
    "[environment]",
    "[defaults]",
    "[defaults.consumer]",
    "[defaults.resources.limits]",
    "[profiles.executor]",
    "[profiles.custom]",
    "[agents]",
    "[agents.devops]",
    "[agents.new]",
    "[agents.\"\"]",
    "[agents.\"Dev Ops\"]",
    "[agents.devops.consumer]",
    "[agents.devops.autoscaling]",
    "[agents.devops.network]",
    "[agents.devops.env]",
    "[agents.devops.config]",
    "[[agents]]",
    "[[agents.devops.rbac]]",
    "[[defaults.network.ingress]]",
    "[streams]",
    "[streams.agent-tasks]",
    "[streams.other]",
    "[streams.\"a b\"]",
    "[[streams]]",
    "[fleet.service_monitor]",
];

/// A TOML basic string holding `s`, escaped so it stays one valid string.
fn quoted(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn integer() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|i| i.to_string()),
        (-3i64..70_000).prop_map(|i| i.to_string()),
        select(
            &[
                "0",
                "-1",
                "-0",
                "+1",
                "1_000",
                "2147483647",
                "2147483648",
                "-2147483649",
                "4294967296",
                "9223372036854775807",
                "-9223372036854775808",
                "9223372036854775808",
                "-9223372036854775809",
                "18446744073709551616",
                "99999999999999999999999999999999999999999",
                "0x7fffffffffffffff",
                "0xffffffffffffffffff",
                "0o777",
                "0b1",
            ][..]
        )
        .prop_map(str::to_string),
    ]
}

fn string() -> impl Strategy<Value = String> {
    prop_oneof![
        select(STRINGS).prop_map(quoted),
        vec(select(ODD), 0..4).prop_map(|parts| quoted(&parts.concat())),
        (select(STRINGS), select(ODD)).prop_map(|(s, odd)| quoted(&format!("{s}{odd}"))),
        vec(any::<char>(), 0..10).prop_map(|cs| quoted(&cs.into_iter().collect::<String>())),
        (1usize..400).prop_map(|n| quoted(&"a".repeat(n))),
    ]
}

fn value() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        4 => integer(),
        4 => string(),
        1 => select(&["true", "false", "1.5", "-0.0", "inf", "nan", "1e400", "1979-05-27T07:32:00Z", "07:32:00"][..])
            .prop_map(str::to_string),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(|items| format!("[{}]", items.join(", "))),
            vec((select(KEYS), inner), 0..4).prop_map(|entries| {
                let entries: Vec<String> =
                    entries.iter().map(|(k, v)| format!("{k} = {v}")).collect();
                format!("{{ {} }}", entries.join(", "))
            }),
        ]
    })
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<Index>(), value()).prop_map(|(line, value)| Mutation::ReplaceValue { line, value }),
        8 => (any::<Index>(), integer(), string())
            .prop_map(|(line, integer, string)| Mutation::ReplaceLike { line, integer, string }),
        6 => (any::<Index>(), select(KEYS), value())
            .prop_map(|(header, key, value)| Mutation::AddKey { header, key: key.to_string(), value }),
        2 => (any::<Index>(), prop_oneof![
                select(HEADERS).prop_map(str::to_string),
                vec(any::<char>(), 0..6).prop_map(|cs| format!("[agents.{}]", quoted(&cs.into_iter().collect::<String>()))),
            ])
            .prop_map(|(line, header)| Mutation::AddHeader { line, header }),
        3 => (select(HEADERS), select(KEYS), value()).prop_map(|(header, key, value)| Mutation::AddTable {
            header: header.to_string(),
            key: key.to_string(),
            value,
        }),
        2 => any::<Index>().prop_map(|line| Mutation::DeleteLine { line }),
        2 => any::<Index>().prop_map(|line| Mutation::DuplicateLine { line }),
        1 => (any::<Index>(), 1usize..120, any::<bool>())
            .prop_map(|(line, depth, tables)| Mutation::Nest { line, depth, tables }),
        1 => (any::<Index>(), select(ODD)).prop_map(|(at, text)| Mutation::InsertText { at, text: text.to_string() }),
        1 => (any::<Index>(), 0x80u8..=0xff).prop_map(|(at, byte)| Mutation::InsertByte { at, byte }),
        1 => any::<Index>().prop_map(|at| Mutation::Truncate { at }),
    ]
}

fn lines(text: &[u8]) -> Vec<Vec<u8>> {
    text.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect()
}

fn join(lines: &[Vec<u8>]) -> Vec<u8> {
    lines.join(&b'\n')
}

/// The line at `index` among those that `keep` accepts, if any.
fn pick(lines: &[Vec<u8>], index: &Index, keep: impl Fn(&[u8]) -> bool) -> Option<usize> {
    let candidates: Vec<usize> = (0..lines.len()).filter(|&i| keep(&lines[i])).collect();
    (!candidates.is_empty()).then(|| candidates[index.index(candidates.len())])
}

fn is_assignment(line: &[u8]) -> bool {
    !line.starts_with(b"#") && !line.starts_with(b"[") && line.contains(&b'=')
}

fn apply(text: &mut Vec<u8>, mutation: &Mutation) {
    let mut ls = lines(text);
    match mutation {
        Mutation::ReplaceValue { line, value } => {
            if let Some(i) = pick(&ls, line, is_assignment) {
                let eq = ls[i].iter().position(|b| *b == b'=').unwrap();
                ls[i].truncate(eq + 1);
                ls[i].push(b' ');
                ls[i].extend_from_slice(value.as_bytes());
            }
        }
        Mutation::ReplaceLike {
            line,
            integer,
            string,
        } => {
            if let Some(i) = pick(&ls, line, is_assignment) {
                let eq = ls[i].iter().position(|b| *b == b'=').unwrap();
                let old = String::from_utf8_lossy(&ls[i][eq + 1..]).trim().to_string();
                let new = if old.starts_with('"') && old.ends_with('"') {
                    string
                } else if old.parse::<i64>().is_ok() {
                    integer
                } else {
                    return;
                };
                ls[i].truncate(eq + 1);
                ls[i].push(b' ');
                ls[i].extend_from_slice(new.as_bytes());
            }
        }
        Mutation::AddKey { header, key, value } => {
            // Under a header, or at the top when there is none.
            let at = pick(&ls, header, |l| l.starts_with(b"[")).map_or(0, |i| i + 1);
            ls.insert(at, format!("{key} = {value}").into_bytes());
        }
        Mutation::AddHeader { line, header } => {
            let at = line.index(ls.len() + 1);
            ls.insert(at, header.clone().into_bytes());
        }
        Mutation::AddTable { header, key, value } => {
            ls.push(header.clone().into_bytes());
            ls.push(format!("{key} = {value}").into_bytes());
        }
        Mutation::DeleteLine { line } => {
            ls.remove(line.index(ls.len()));
        }
        Mutation::DuplicateLine { line } => {
            let i = line.index(ls.len());
            let copy = ls[i].clone();
            ls.insert(i + 1, copy);
        }
        Mutation::Nest {
            line,
            depth,
            tables,
        } => {
            if let Some(i) = pick(&ls, line, is_assignment) {
                let eq = ls[i].iter().position(|b| *b == b'=').unwrap();
                let inner = ls[i].split_off(eq + 1);
                let (open, close) = if *tables {
                    ("{ a =", " }")
                } else {
                    (" [", "]")
                };
                ls[i].extend(open.repeat(*depth).into_bytes());
                ls[i].extend(inner);
                ls[i].extend(close.repeat(*depth).into_bytes());
            }
        }
        Mutation::InsertText { at, text: inserted } => {
            let at = at.index(text.len() + 1);
            text.splice(at..at, inserted.bytes());
            return;
        }
        Mutation::InsertByte { at, byte } => {
            let at = at.index(text.len() + 1);
            text.insert(at, *byte);
            return;
        }
        Mutation::Truncate { at } => {
            text.truncate(at.index(text.len() + 1));
            return;
        }
    }
    *text = join(&ls);
}

/// What a case is: a seed and the mutations laid on it, each on the fleet
/// file or (when there is one) the environment file.
fn case() -> impl Strategy<Value = (Seed, Vec<(bool, Mutation)>)> {
    // Half the cases start from a valid definition, so some survive the
    // mutations and reach decoding's later checks and rendering.
    let (valid, broken): (Vec<Seed>, Vec<Seed>) = seeds()
        .into_iter()
        .partition(|s| !s.name.starts_with("tests/"));
    (
        prop_oneof![select(valid), select(broken)],
        vec((any::<bool>(), mutation()), 1..4),
    )
}

fn check(loaded: &Loaded, shown: &str) -> Result<(), TestCaseError> {
    // Rendering the report must not panic either, whatever the spans are.
    let report = diagnostic::render(&loaded.diagnostics, &loaded.sources, false);
    diagnostic::github_annotations(&loaded.diagnostics, &loaded.sources);
    for d in &loaded.diagnostics {
        let Some(origin) = &d.origin else {
            return Err(TestCaseError::fail(format!(
                "`{}` has no location\n{shown}",
                d.message
            )));
        };
        let file = loaded.sources.file(origin.file);
        let path = file.path.display().to_string();
        prop_assert!(
            path == "fleet.toml" || path.starts_with("environments/"),
            "`{}` points at {path}, not at a file the user wrote\n{shown}",
            d.message
        );
        prop_assert!(
            origin.span.start <= origin.span.end && origin.span.end <= file.text.len(),
            "`{}` points at {:?}, outside {path} ({} bytes)\n{shown}",
            d.message,
            origin.span,
            file.text.len()
        );
        let (line, col) = loaded.sources.line_col(origin);
        let line_text = file.text.split('\n').nth(line - 1);
        prop_assert!(
            line_text.is_some_and(|l| col <= l.chars().count() + 1),
            "`{}` points at {path}:{line}:{col}, outside the file\n{shown}",
            d.message
        );
        prop_assert!(
            report.contains(&format!("{path}:{line}:")),
            "the report does not show {path}:{line} for `{}`:\n{report}\n{shown}",
            d.message
        );
    }
    let errors = loaded
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    match &loaded.fleet {
        Some(fleet) => {
            prop_assert_eq!(errors, 0);
            // What load accepts, render must take.
            let rendered = fleet::render::render(fleet);
            let mut out = Vec::new();
            fleet::report::rendered_json(&rendered, &mut out).unwrap();
            fleet::report::rendered_yaml(&rendered, &mut out).unwrap();
        }
        None => prop_assert!(errors > 0, "refused without an error\n{shown}"),
    }
    Ok(())
}

proptest! {
    // Default case count (256, or PROPTEST_CASES); failures are kept as
    // regression cases in tests/broken and unit tests, not in files
    // proptest writes.
    #![proptest_config(Config { failure_persistence: None, ..Config::default() })]

    #[test]
    fn mutated_definitions_never_panic_and_every_problem_has_a_place(
        (seed, mutations) in case()
    ) {
        let mut fleet = seed.fleet.clone();
        let mut environment = seed.environment.clone();
        for (on_environment, mutation) in &mutations {
            match (&mut environment, on_environment) {
                (Some((_, text)), true) => apply(text, mutation),
                _ => apply(&mut fleet, mutation),
            }
        }
        let shown = format!(
            "--- fleet.toml\n{}\n--- environment\n{}",
            String::from_utf8_lossy(&fleet),
            environment
                .as_ref()
                .map(|(_, t)| String::from_utf8_lossy(t).into_owned())
                .unwrap_or_default()
        );
        let env_path = environment.as_ref().map(|(name, _)| format!("environments/{name}.toml"));
        let files = DirectoryFiles { base_dir: repo().to_path_buf() };
        let loaded = load_bytes(
            Path::new("fleet.toml"),
            &fleet,
            environment
                .as_ref()
                .map(|(_, text)| (Path::new(env_path.as_deref().unwrap()), text.as_slice())),
            environment.as_ref().map(|(name, _)| name.as_str()),
            &files,
        );
        check(&loaded, &shown)?;
    }
}
