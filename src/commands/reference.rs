//! The reference pages under `docs/reference/`, generated from the code: the
//! CLI from clap's definitions, `fleet.toml` from the JSON Schema that
//! `fleet schema` prints, the exit codes from [`ExitStatus`] and the signals,
//! and the plan's JSON form from an example plan. The test below fails when a
//! committed page differs from what the code generates, and rewrites the
//! pages when `FLEET_REGENERATE_DOCS=1` is set. Only the explanations are
//! written by hand here, and the tests check that they cover what the code
//! has.

use std::fmt::Write as _;
use std::path::Path;

use clap::CommandFactory as _;
use serde_json::Value;

use super::ExitStatus;
use crate::cli::Cli;

const REGENERATE: &str = "FLEET_REGENERATE_DOCS=1 cargo test --lib reference";

/// The first lines of every page: what it is generated from, and how.
fn header(title: &str, from: &str) -> String {
    format!(
        "# {title}\n\n> Generated from {from} by `src/commands/reference.rs`: do not edit.\n> Regenerate with `{REGENERATE}`.\n\n"
    )
}

/// Text for one cell of a Markdown table: one line, pipes escaped.
fn cell(text: &str) -> String {
    escape(&text.split_whitespace().collect::<Vec<_>>().join(" ")).replace('|', "\\|")
}

/// `<` and `>` outside code spans, which Markdown would take for HTML tags
/// (`<role>` in a description would vanish).
fn escape(text: &str) -> String {
    let mut out = String::new();
    let mut in_code = false;
    for c in text.chars() {
        match c {
            '`' => {
                in_code = !in_code;
                out.push(c);
            }
            '<' if !in_code => out.push_str("&lt;"),
            '>' if !in_code => out.push_str("&gt;"),
            _ => out.push(c),
        }
    }
    out
}

/// A sentence: clap drops the final period of a help text.
fn sentence(text: &str) -> String {
    let text = text.trim();
    if text.is_empty() || text.ends_with('.') {
        text.to_string()
    } else {
        format!("{text}.")
    }
}

// ---------------------------------------------------------------- the CLI

fn cli() -> String {
    let mut fleet = Cli::command();
    fleet.build();
    let mut out = header("CLI reference", "clap's definitions in `src/cli.rs`");
    let _ = writeln!(
        out,
        "{}\n\n```\n{}\n```\n\n| command | |\n|---|---|",
        fleet.get_about().map(|a| a.to_string()).unwrap_or_default(),
        fleet
            .render_usage()
            .to_string()
            .trim_start_matches("Usage: ")
    );
    let commands: Vec<&clap::Command> = fleet
        .get_subcommands()
        .filter(|c| c.get_name() != "help")
        .collect();
    for command in &commands {
        let name = command.get_name();
        let _ = writeln!(
            out,
            "| [`fleet {name}`](#fleet-{name}) | {} |",
            cell(
                &command
                    .get_about()
                    .map(|a| a.to_string())
                    .unwrap_or_default()
            )
        );
    }
    out.push('\n');
    let _ = writeln!(
        out,
        "Every command also takes `-h` (summary) and `--help` (in full); `fleet --version` prints the version. A flag with an environment variable takes its value from it when the flag is not given.\n"
    );
    for command in commands {
        command_section(&mut out, command);
    }
    out
}

fn command_section(out: &mut String, command: &clap::Command) {
    let name = command.get_name();
    let _ = writeln!(out, "## fleet {name}\n");
    let about = command
        .get_long_about()
        .or(command.get_about())
        .map(|a| a.to_string())
        .unwrap_or_default();
    let _ = writeln!(out, "{}\n", escape(&sentence(&about)));
    let usage = command.clone().render_usage().to_string();
    let _ = writeln!(
        out,
        "```\n{}\n```\n",
        usage.trim_start_matches("Usage: ").trim()
    );
    let arguments: Vec<&clap::Arg> = command
        .get_arguments()
        .filter(|a| !a.is_hide_set() && !matches!(a.get_id().as_str(), "help" | "version"))
        .collect();
    let positionals: Vec<&&clap::Arg> = arguments.iter().filter(|a| a.is_positional()).collect();
    if !positionals.is_empty() {
        let _ = writeln!(out, "Arguments:\n\n| argument | |\n|---|---|");
        for arg in positionals {
            let _ = writeln!(out, "| `{}` | {} |", value_names(arg), cell(&describe(arg)));
        }
        out.push('\n');
    }
    // Options under their help headings, in the order clap shows them.
    let mut headings: Vec<Option<&str>> = Vec::new();
    for arg in arguments.iter().filter(|a| !a.is_positional()) {
        if !headings.contains(&arg.get_help_heading()) {
            headings.push(arg.get_help_heading());
        }
    }
    for heading in headings {
        let _ = writeln!(
            out,
            "{}:\n\n| flag | |\n|---|---|",
            heading.unwrap_or("Options")
        );
        for arg in arguments
            .iter()
            .filter(|a| !a.is_positional() && a.get_help_heading() == heading)
        {
            let _ = writeln!(out, "| {} | {} |", flag(arg), cell(&describe(arg)));
        }
        out.push('\n');
    }
}

fn value_names(arg: &clap::Arg) -> String {
    match arg.get_value_names() {
        Some(names) => names
            .iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(" "),
        None => arg.get_id().as_str().to_uppercase(),
    }
}

/// `-e, --env <ENV>`.
fn flag(arg: &clap::Arg) -> String {
    let mut names = Vec::new();
    if let Some(short) = arg.get_short() {
        names.push(format!("`-{short}`"));
    }
    if let Some(long) = arg.get_long() {
        let value = if arg.get_action().takes_values() {
            format!(" <{}>", value_names(arg))
        } else {
            String::new()
        };
        names.push(format!("`--{long}{value}`"));
    }
    names.join(", ")
}

/// The help, then the possible values, the default and the environment
/// variable.
fn describe(arg: &clap::Arg) -> String {
    let mut text = sentence(
        &arg.get_long_help()
            .or(arg.get_help())
            .map(|h| h.to_string())
            .unwrap_or_default(),
    );
    let possible: Vec<String> = arg
        .get_possible_values()
        .iter()
        .filter(|v| !v.is_hide_set())
        .map(|v| format!("`{}`", v.get_name()))
        .collect();
    if !possible.is_empty() && arg.get_action().takes_values() {
        let _ = write!(text, " One of {}.", possible.join(", "));
    }
    let defaults: Vec<String> = arg
        .get_default_values()
        .iter()
        .map(|v| format!("`{}`", v.to_string_lossy()))
        .collect();
    if !defaults.is_empty() && arg.get_action().takes_values() {
        let _ = write!(text, " Default: {}.", defaults.join(", "));
    }
    if let Some(env) = arg.get_env() {
        let _ = write!(text, " Environment: `{}`.", env.to_string_lossy());
    }
    text.trim().to_string()
}

// ----------------------------------------------------------- fleet.toml

/// The built-in defaults, which every fleet starts from.
const BUILTIN: &str = include_str!("../load/builtin.toml");

fn fleet_toml() -> String {
    let schema = crate::load::schema::schema();
    let builtin: toml::Table = toml::from_str(BUILTIN).expect("the built-in defaults parse");
    let mut out = header(
        "fleet.toml reference",
        "the JSON Schema in `src/load/schema.rs` (what `fleet schema` prints) and the built-in defaults in `src/load/builtin.toml`",
    );
    out.push_str(
        "Every key of `fleet.toml`. An environment file (`environments/<env>.toml`) takes the same keys and is laid over it: tables merge key by key, arrays replace ([Environments and patches](../environments.md)). A default in the third column is a built-in one (`src/load/builtin.toml`); other defaults are given in the descriptions, or in the guide that explains the key. `<role>`, `<name>` and the like stand for a key of your choice. The guides explain how the keys work together: [The fleet definition](../definition.md).\n\n",
    );
    let properties = schema["properties"].as_object().expect("the schema's root");
    let agent = &schema["properties"]["agents"]["additionalProperties"];
    out.push_str("Tables: ");
    let tables: Vec<String> = properties
        .keys()
        .map(|key| {
            let section = section_name(key);
            format!("[`{section}`](#{})", anchor(&section))
        })
        .collect();
    out.push_str(&tables.join(", "));
    out.push_str(".\n\n");
    for (key, node) in properties {
        let section = section_name(key);
        let _ = writeln!(out, "## `{section}`\n");
        if let Some(description) = node["description"].as_str()
            && key != "defaults"
        {
            let _ = writeln!(out, "{}.\n", escape(&capitalised(description)));
        }
        let (table, defaults) = match key.as_str() {
            "defaults" if node == agent => {
                let _ = writeln!(
                    out,
                    "Every agent starts from these: the same keys as [`[agents.<role>]`](#{}), each agent's own laid over them.\n",
                    anchor("[agents.<role>]")
                );
                continue;
            }
            "agents" => (agent, builtin.get("defaults")),
            "profiles" => {
                let _ = writeln!(
                    out,
                    "A resource profile an agent picks with `profile`. The built-in ones:\n\n```toml\n{}```\n",
                    builtin_profiles(BUILTIN)
                );
                (&node["additionalProperties"], None)
            }
            "streams" => (&node["additionalProperties"], None),
            _ => (node, builtin.get(key.as_str())),
        };
        let _ = writeln!(
            out,
            "| key | type | built-in default | |\n|---|---|---|---|"
        );
        let mut rows = Vec::new();
        keys(table, "", defaults, &mut rows);
        for row in rows {
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} |",
                row.key,
                cell(&row.kind),
                row.default
                    .map(|d| format!("`{}`", cell(&d)))
                    .unwrap_or_default(),
                cell(&row.description)
            );
        }
        out.push('\n');
    }
    out
}

fn section_name(key: &str) -> String {
    match key {
        "agents" => "[agents.<role>]".into(),
        "profiles" => "[profiles.<name>]".into(),
        "streams" => "[streams.<key>]".into(),
        _ => format!("[{key}]"),
    }
}

/// GitHub's anchor for a heading that is `text` in backticks.
fn anchor(text: &str) -> String {
    text.chars()
        .filter_map(|c| match c {
            'a'..='z' | '0'..='9' | '-' | '_' => Some(c),
            'A'..='Z' => Some(c.to_ascii_lowercase()),
            ' ' => Some('-'),
            _ => None,
        })
        .collect()
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The `[profiles.*]` tables of the built-in defaults, as written there.
fn builtin_profiles(builtin: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for line in builtin.lines() {
        if line.starts_with('[') {
            inside = line.starts_with("[profiles.");
        }
        if inside && !line.starts_with('#') && !line.is_empty() {
            if line.starts_with('[') && !out.is_empty() {
                out.push('\n');
            }
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

struct Row {
    key: String,
    kind: String,
    default: Option<String>,
    description: String,
}

/// A row per key of the table `node` (a schema object), and the rows of its
/// tables under their dotted paths.
fn keys(node: &Value, prefix: &str, defaults: Option<&toml::Value>, rows: &mut Vec<Row>) {
    let Some(properties) = node["properties"].as_object() else {
        return;
    };
    for (key, property) in properties {
        let path = format!("{prefix}{key}");
        let default = defaults.and_then(|d| d.get(key.as_str()));
        rows.push(Row {
            key: path.clone(),
            kind: kind(property),
            default: default.filter(|d| !d.is_table()).map(inline),
            description: description(property),
        });
        nested(property, &path, default, rows);
    }
}

/// The rows inside a key's value: a table's keys, a map's or a list's items'.
fn nested(property: &Value, path: &str, default: Option<&toml::Value>, rows: &mut Vec<Row>) {
    if property.get("properties").is_some() {
        keys(property, &format!("{path}."), default, rows);
    } else if let Some(items) = property["additionalProperties"].as_object()
        && items.contains_key("properties")
    {
        keys(
            &property["additionalProperties"],
            &format!("{path}.<name>."),
            None,
            rows,
        );
    } else if property["items"].get("properties").is_some() {
        keys(&property["items"], &format!("{path}[]."), None, rows);
    } else if let Some(choices) = property["oneOf"].as_array() {
        // Only the first choice that holds keys: the others say the same
        // in another form (a list of rules, or a table of named ones).
        if let Some(choice) = choices.iter().find(|c| {
            c.get("properties").is_some()
                || c["items"].get("properties").is_some()
                || c["additionalProperties"].get("properties").is_some()
        }) {
            nested(choice, path, None, rows);
        }
    }
}

fn description(property: &Value) -> String {
    let mut parts: Vec<String> = property["description"]
        .as_str()
        .map(str::to_string)
        .into_iter()
        .collect();
    if let Some(choices) = property["oneOf"].as_array() {
        for choice in choices {
            if let Some(d) = choice["description"].as_str()
                && !parts.iter().any(|p| p.contains(d))
            {
                parts.push(d.to_string());
            }
        }
    }
    let mut text = parts.join("; ");
    if let Some(names) = property["propertyNames"]["enum"].as_array() {
        let names: Vec<String> = names
            .iter()
            .filter_map(Value::as_str)
            .map(|n| format!("`{n}`"))
            .collect();
        let _ = write!(text, ". Kinds: {}", names.join(", "));
    }
    text
}

/// The type of a schema node, in words.
fn kind(node: &Value) -> String {
    if let Some(values) = node["enum"].as_array() {
        let values: Vec<String> = values.iter().map(|v| format!("`{v}`")).collect();
        return format!("one of {}", values.join(", "));
    }
    if let Some(choices) = node["oneOf"].as_array() {
        let kinds: Vec<String> = choices.iter().map(kind).collect();
        return kinds.join(" or ");
    }
    match &node["type"] {
        Value::Array(types) => types
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" or "),
        Value::String(t) => match t.as_str() {
            "string" => match node["pattern"].as_str() {
                Some("^([0-9]+(ms|s|m|h|d))+$") => "duration (e.g. `90s`, `5m`)".into(),
                Some(p) if p.ends_with("Ki|Mi|Gi|Ti|Pi|Ei)?$") => {
                    "quantity (e.g. `500m`, `4Gi`)".into()
                }
                Some(p) if p.ends_with('%') || p.ends_with("%$") => "percentage".into(),
                Some(p) => format!("string matching `{p}`"),
                None => "string".into(),
            },
            "integer" => {
                let mut text = "integer".to_string();
                match (node["minimum"].as_i64(), node["maximum"].as_i64()) {
                    (Some(min), Some(max)) => {
                        let _ = write!(text, " {min} to {max}");
                    }
                    (Some(min), None) => {
                        let _ = write!(text, " ≥ {min}");
                    }
                    _ => {}
                }
                text
            }
            "array" => format!("array of {}", plural(&kind(&node["items"]))),
            "object" => {
                if node.get("properties").is_some() {
                    "table".into()
                } else if node["additionalProperties"].get("properties").is_some() {
                    "table of tables".into()
                } else if node["additionalProperties"].is_object() {
                    format!("table of {}", plural(&kind(&node["additionalProperties"])))
                } else {
                    "table".into()
                }
            }
            other => other.into(),
        },
        _ => "any".into(),
    }
}

fn plural(kind: &str) -> String {
    match kind {
        "string" => "strings".into(),
        "table" => "tables".into(),
        other => other.into(),
    }
}

/// A built-in default as it would be written in TOML, on one line.
fn inline(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => format!("{s:?}"),
        toml::Value::Array(items) => {
            format!(
                "[{}]",
                items.iter().map(inline).collect::<Vec<_>>().join(", ")
            )
        }
        toml::Value::Table(table) => format!(
            "{{ {} }}",
            table
                .iter()
                .map(|(k, v)| format!("{k} = {}", inline(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => other.to_string(),
    }
}

// ------------------------------------------------------------ exit codes

/// What each status means; the match makes a new status fail to compile
/// until it is explained here.
fn explain_status(status: ExitStatus) -> &'static str {
    match status {
        ExitStatus::Success => {
            "Success. `plan` without `--detailed-exitcode` or `--drift`: whether or not there are changes. `status`: whenever it could connect (what it could not read is a note)."
        }
        ExitStatus::Failure => {
            "Failure: an error (the cause is printed on stderr), problems in the definition (`validate` and every command that loads it), a plan apply refuses (a blocked change, a stale saved plan), a rollout or wave that failed, or `--timeout` reached."
        }
        ExitStatus::Changes => {
            "`plan --detailed-exitcode`: success, and the plan has changes (or blocked changes); with `--destroy`, something to destroy. `plan --drift` (with or without `--detailed-exitcode`): drift was found."
        }
    }
}

fn explain_signal(signal: crate::interrupt::Signal) -> &'static str {
    use crate::interrupt::Signal;
    match signal {
        Signal::Interrupt => {
            "Stopped by SIGINT (Ctrl-C, or a cancelled CI job). An apply finishes the writes in flight, starts no other, and releases the deploy lock ([Interrupts](../design.md#interrupts))."
        }
        Signal::Terminate => "Stopped by SIGTERM, as by SIGINT.",
    }
}

/// The number `main` exits with for `status`.
fn code(status: ExitStatus) -> u8 {
    let exit = std::process::ExitCode::from(status);
    (0..=u8::MAX)
        .find(|n| std::process::ExitCode::from(*n) == exit)
        .expect("an exit code is a byte")
}

fn exit_codes() -> String {
    use crate::interrupt::{Interrupted, Signal};
    let mut out = header(
        "Exit codes",
        "`ExitStatus` and `failure_code` in `src/commands/mod.rs`",
    );
    out.push_str("| code | meaning |\n|---|---|\n");
    let mut rows: Vec<(u8, &str)> = [
        ExitStatus::Success,
        ExitStatus::Failure,
        ExitStatus::Changes,
    ]
    .into_iter()
    .map(|status| (code(status), explain_status(status)))
    .collect();
    for signal in [Signal::Interrupt, Signal::Terminate] {
        let code = super::failure_code(&anyhow::Error::new(Interrupted(signal)));
        rows.push((code, explain_signal(signal)));
    }
    rows.sort_by_key(|(code, _)| *code);
    for (code, meaning) in rows {
        let _ = writeln!(out, "| {code} | {meaning} |");
    }
    out.push_str(
        "\nA signal's code is 128 + its number, as a shell reports a process the signal killed. A second signal exits at once. A reader that stops early (`fleet render | head`) is not an error: fleet exits 0. See [Using fleet](../usage.md#exit-codes-and-timeouts).\n",
    );
    out
}

// ------------------------------------------------------------- plan JSON

/// An example plan in which every field is set. The struct literals name
/// every field, so a field added to the plan fails to compile here until the
/// example sets it (and [`PLAN_FIELDS`] explains it).
fn example_plan() -> crate::plan::Plan {
    use crate::lock::Holder;
    use crate::plan::selection::{Selection, Targeting};
    use crate::plan::{Action, Blocked, Change, Drift, Handover, Plan, Target};
    use crate::provenance::{Applied, ClusterIdentity, Git, Provenance};
    use crate::render::{ObjectRef, Wave};

    let deployment = Target::Kubernetes(ObjectRef {
        api_version: "apps/v1".into(),
        kind: "Deployment".into(),
        namespace: Some("agent-system".into()),
        name: "agent-devops".into(),
    });
    let update = Change {
        target: deployment,
        action: Action::Update,
        wave: Wave::Workloads,
        reason: Some("the definition changed this object too".into()),
        diff: Some(
            "@@ -32,7 +32,7 @@\n       containers:\n       - name: agent\n-        image: gcr.io/agent-ceo/agent-runtime:1.4.2\n+        image: gcr.io/agent-ceo/agent-runtime:1.4.3\n".into(),
        ),
        desired: Some(crate::redact::Body::new(serde_json::json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": { "name": "agent-devops", "namespace": "agent-system" },
            "spec": { "...": "..." },
        }))),
        loses_data: false,
        blocked: None,
        drift: Some(Drift {
            managers: vec!["kubectl-edit".into()],
            with_definition_change: true,
        }),
        agent: Some("devops".into()),
        handover: None,
        revokes: None,
    };
    let stream = Change {
        target: Target::Stream {
            name: "agent-tasks".into(),
        },
        action: Action::Replace,
        wave: Wave::JetStream,
        reason: Some("storage cannot change in place".into()),
        diff: Some("~ storage: file -> memory\n".into()),
        desired: None,
        loses_data: true,
        blocked: Some(Blocked {
            reason: "the stream holds 12 messages, which replacing it loses".into(),
            unless: Some("--allow-destroy".into()),
        }),
        drift: None,
        agent: None,
        handover: None,
        revokes: None,
    };
    let consumer = Change {
        target: Target::Consumer {
            stream: "agent-tasks".into(),
            name: "observer-agent".into(),
        },
        action: Action::Delete,
        wave: Wave::JetStream,
        reason: None,
        diff: None,
        desired: None,
        loses_data: false,
        blocked: None,
        drift: None,
        agent: Some("observer".into()),
        handover: None,
        revokes: Some("UABC...".into()),
    };
    let hpa = Change {
        target: Target::Kubernetes(ObjectRef {
            api_version: "autoscaling/v2".into(),
            kind: "HorizontalPodAutoscaler".into(),
            namespace: Some("agent-system".into()),
            name: "agent-reviewer-hpa".into(),
        }),
        action: Action::Update,
        wave: Wave::Policy,
        reason: None,
        diff: None,
        desired: None,
        loses_data: false,
        blocked: None,
        drift: None,
        agent: Some("reviewer".into()),
        handover: Some(Handover::TakesBack),
        revokes: None,
    };
    Plan {
        format_version: crate::plan::FORMAT_VERSION,
        fleet: "agent-ceo".into(),
        environment: Some("production".into()),
        namespace: "agent-system".into(),
        kube_context: "production".into(),
        nats_url: Some("tls://nats.prod.internal:4222".into()),
        provenance: Provenance {
            definition: Some(Git {
                commit: "5e1f0c0a...".into(),
                reference: Some("main".into()),
                remote: Some("https://github.com/o/r".into()),
                dirty: false,
                changed: Vec::new(),
                workdir: std::path::PathBuf::new(),
            }),
            live: Some(Applied {
                commit: Some("0123456789ab...".into()),
                reference: Some("main".into()),
                remote: Some("https://github.com/o/r".into()),
                dirty: false,
                applied_by: Some("ci@runner".into()),
                applied_at: Some("2026-12-05T09:00:00Z".into()),
                targeted: Some("--agent devops".into()),
            }),
            ahead: Some(3),
            behind: Some(0),
            cluster: Some(ClusterIdentity {
                kube_system_uid: Some("6f1c...".into()),
                server: "https://prod.example:6443".into(),
                unread: Some("only when the UID could not be read: why".into()),
            }),
            untracked: None,
        },
        lock: Some(Holder {
            holder: "https://github.com/o/r/actions/runs/123/attempts/1".into(),
            host: Some("runner-1, pid 4242".into()),
            identity: "...".into(),
            since: Some("2026-12-05T10:00:00Z".into()),
            renewed: Some("2026-12-05T10:00:20Z".into()),
            ttl_seconds: 30,
            expired: false,
            held_for: None,
        }),
        changes: vec![stream, consumer, update, hpa],
        drift_only: true,
        destroy: true,
        targeting: Some(Targeting {
            selection: Selection {
                agents: vec!["devops".into()],
                exclude: vec!["observer".into()],
                select: vec!["tier=operations".into()],
            },
            agents: vec!["devops".into()],
            left_out: vec!["observer".into(), "reviewer".into()],
        }),
        notes: vec![
            "ServiceMonitor is not installed in the cluster: its objects are left out".into(),
        ],
    }
}

/// Every field of the plan's JSON form, by path (`[]` is any item of a
/// list), and what it means.
const PLAN_FIELDS: &[(&str, &str)] = &[
    ("format_version", "Version of this format (see below)."),
    ("fleet", "The fleet's `[fleet] name`."),
    (
        "environment",
        "The environment (`--env`), or `null` for fleet.toml alone.",
    ),
    ("namespace", "The fleet's namespace."),
    (
        "kube_context",
        "The kube context the plan was made against.",
    ),
    (
        "nats_url",
        "The NATS server the JetStream part was planned against, without userinfo. Absent without one.",
    ),
    ("provenance", "Where the plan comes from and what is live."),
    (
        "provenance.definition",
        "The definition's git repository as the plan was made; `null` outside git.",
    ),
    ("provenance.definition.commit", "HEAD's commit id, in full."),
    (
        "provenance.definition.ref",
        "The branch checked out, or a tag pointing at HEAD when it is detached.",
    ),
    (
        "provenance.definition.remote",
        "The URL of the branch's remote (else `origin`, else the only one), without userinfo.",
    ),
    (
        "provenance.definition.dirty",
        "Files under the definition's directory differ from HEAD (changed or untracked; a saved plan file does not count).",
    ),
    (
        "provenance.live",
        "What the ApplySet parent records of the last apply; `null` before the first.",
    ),
    ("provenance.live.commit", "The commit last applied."),
    ("provenance.live.ref", "Its branch or tag."),
    ("provenance.live.remote", "Its remote."),
    (
        "provenance.live.dirty",
        "Whether it was applied with uncommitted changes (`--allow-dirty`).",
    ),
    (
        "provenance.live.applied_by",
        "Who applied it: the GitHub Actions actor or `user@host`.",
    ),
    ("provenance.live.applied_at", "When (RFC 3339)."),
    (
        "provenance.live.targeted",
        "The last apply's targeting flags, when it was targeted.",
    ),
    (
        "provenance.ahead",
        "Commits the definition is ahead of the live commit, when git can tell.",
    ),
    (
        "provenance.behind",
        "Commits the definition is behind the live commit (applying goes back), when git can tell.",
    ),
    (
        "provenance.cluster",
        "The cluster the plan was made for; a saved plan is refused on another.",
    ),
    (
        "provenance.cluster.kube_system_uid",
        "The UID of the namespace `kube-system`, when it could be read.",
    ),
    (
        "provenance.cluster.server",
        "The API server's URL, without userinfo: what identifies the cluster when the UID cannot be read.",
    ),
    (
        "provenance.cluster.unread",
        "Why the UID could not be read (the server's words).",
    ),
    (
        "lock",
        "Who holds the deploy lock, when an apply does. Absent when nobody does.",
    ),
    ("lock.holder", "The CI run or `user@host`."),
    ("lock.host", "The CI job, the machine and the process."),
    ("lock.identity", "The Lease's `holderIdentity`."),
    (
        "lock.since",
        "When it was taken (RFC 3339, the API server's time).",
    ),
    ("lock.renewed", "When it was last renewed."),
    (
        "lock.ttl_seconds",
        "How long the lock outlives a holder that stops renewing it.",
    ),
    (
        "lock.expired",
        "The holder stopped renewing it: the next apply takes it over.",
    ),
    ("changes", "Every change, in the order of apply's stages."),
    ("changes[].target", "What the change is to."),
    (
        "changes[].target.system",
        "`kubernetes`, `jetstream-stream` or `jetstream-consumer`; the other fields of `target` depend on it.",
    ),
    (
        "changes[].target.api_version",
        "Kubernetes: the object's `apiVersion`.",
    ),
    ("changes[].target.kind", "Kubernetes: its kind."),
    (
        "changes[].target.namespace",
        "Kubernetes: its namespace (`null` for cluster-scoped objects).",
    ),
    (
        "changes[].target.name",
        "The object's, stream's or consumer's name.",
    ),
    (
        "changes[].target.stream",
        "Consumer: the stream it belongs to.",
    ),
    ("changes[].action", "What happens (values below)."),
    (
        "changes[].wave",
        "The apply stage the change belongs to (values below).",
    ),
    (
        "changes[].reason",
        "Why, when the action needs explaining: the immutable field that forces a replace, the manager that owns a conflicting field.",
    ),
    (
        "changes[].diff",
        "Unified diff of the object's YAML (or a stream's or consumer's fields), live -> planned, secrets masked.",
    ),
    (
        "changes[].desired",
        "The exact body apply sends (create, update, replace), secrets masked.",
    ),
    (
        "changes[].loses_data",
        "Queued messages would be lost (a stream destroyed or replaced while it holds messages, a consumer destroyed with pending ones).",
    ),
    (
        "changes[].blocked",
        "Apply would refuse this change as planned. Absent when it would not.",
    ),
    (
        "changes[].blocked.reason",
        "What refuses it, naming what it clashes with.",
    ),
    (
        "changes[].blocked.unless",
        "The apply flag that allows it; absent when only a change of the definition, of the servers or of the identity's rights does.",
    ),
    (
        "changes[].drift",
        "The live object moved away from what fleet last applied (a hand edit or a deletion), which this change restores.",
    ),
    (
        "changes[].drift.managers",
        "The imperative field managers that took fields fleet manages.",
    ),
    (
        "changes[].drift.with_definition_change",
        "The definition changed the object too, so the diff holds both; `plan --drift` leaves the diff out.",
    ),
    (
        "changes[].agent",
        "The agent (by role) the change belongs to; absent for what the whole fleet shares.",
    ),
    (
        "changes[].handover",
        "The change passes an agent's autoscaler between fleet and KEDA: `takes-back` (an HPA KEDA made, which fleet applies its own over) or `orphans` (a ScaledObject deleted with its HPA left for fleet's to take back).",
    ),
    (
        "changes[].revokes",
        "The public key of the agent's NATS user this change supersedes or removes, which apply revokes when `[nats_credentials] revoke = true`.",
    ),
    (
        "drift_only",
        "Made by `plan --drift`: only changes made outside fleet. Absent otherwise.",
    ),
    (
        "destroy",
        "Made by `plan --destroy`: the tear-down of everything fleet owns; `fleet apply` of a saved one destroys. Absent otherwise.",
    ),
    (
        "targeting",
        "Made with `--agent`, `--exclude` or `--select`: only these agents' changes; `fleet apply` of a saved one applies the same agents. Absent otherwise.",
    ),
    ("targeting.selection", "The flags it was made with."),
    ("targeting.selection.agents", "`--agent` roles."),
    ("targeting.selection.exclude", "`--exclude` roles."),
    ("targeting.selection.select", "`--select KEY=VALUE` labels."),
    ("targeting.agents", "The agents planned."),
    (
        "targeting.left_out",
        "The agents left out: of the definition, and removed ones still live.",
    ),
    (
        "notes",
        "What the reader should know that is not a change (a kind not installed, an autoscaler that cannot read its metric, lower fidelity).",
    ),
    (
        "summary",
        "The counts of the summary line (not read back from a saved plan).",
    ),
    (
        "summary.add",
        "Objects, streams and consumers to create (a replace counts here and in `destroy`).",
    ),
    ("summary.change", "To update in place."),
    ("summary.destroy", "To delete."),
    (
        "summary.blocked",
        "Changes apply refuses as planned; conflicts and unowned objects count only here.",
    ),
];

/// Every path in a JSON value (`[]` for the items of a list), with the
/// JSON type at it.
fn paths(value: &Value, prefix: &str, out: &mut Vec<(String, &'static str)>) {
    fn visit(path: String, child: &Value, out: &mut Vec<(String, &'static str)>) {
        let kind = match child {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        };
        // A list's items are described with the list, their fields each.
        if !path.ends_with("[]") && !out.iter().any(|(p, _)| *p == path) {
            out.push((path.clone(), kind));
        }
        // A Kubernetes body is the object as Kubernetes defines it.
        if path != "changes[].desired" {
            paths(child, &path, out);
        }
    }
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                visit(path, child, out);
            }
        }
        Value::Array(items) => {
            for item in items {
                visit(format!("{prefix}[]"), item, out);
            }
        }
        _ => {}
    }
}

fn example_json() -> Value {
    let mut json = Vec::new();
    crate::report::plan_json(&example_plan(), &mut json).expect("the example plan serialises");
    serde_json::from_slice(&json).expect("plan JSON is JSON")
}

/// The JSON values of every variant; the matches make a new variant fail to
/// compile until it is listed.
fn actions() -> Vec<(String, &'static str)> {
    use crate::plan::Action;
    [
        Action::Create,
        Action::Update,
        Action::Replace,
        Action::Delete,
        Action::Conflict,
        Action::Unowned,
        Action::NotInstalled,
        Action::NoOp,
    ]
    .into_iter()
    .map(|action| {
        match action {
            Action::Create
            | Action::Update
            | Action::Replace
            | Action::Delete
            | Action::Conflict
            | Action::Unowned
            | Action::NotInstalled
            | Action::NoOp => {}
        }
        (
            serde_json::to_value(action)
                .unwrap()
                .as_str()
                .unwrap()
                .to_string(),
            action.verb(),
        )
    })
    .collect()
}

fn waves() -> Vec<String> {
    use crate::render::Wave;
    [
        Wave::Namespace,
        Wave::Configuration,
        Wave::JetStream,
        Wave::Network,
        Wave::Workloads,
        Wave::Policy,
    ]
    .into_iter()
    .map(|wave| {
        match wave {
            Wave::Namespace
            | Wave::Configuration
            | Wave::JetStream
            | Wave::Network
            | Wave::Workloads
            | Wave::Policy => {}
        }
        format!(
            "`{}`",
            serde_json::to_value(wave).unwrap().as_str().unwrap()
        )
    })
    .collect()
}

fn plan_json() -> String {
    let example = example_json();
    let mut found = Vec::new();
    paths(&example, "", &mut found);
    let mut out = header(
        "Plan JSON reference",
        "the plan's types in `src/plan/` (an example plan serialised by `src/report/`)",
    );
    let _ = writeln!(
        out,
        "`fleet plan --format json` prints the plan as one JSON object, and `fleet plan --out plan.json` saves the same object (which `fleet show` and `fleet apply plan.json` read). This page describes `format_version` {}. Fields marked \"absent\" below are left out when they do not apply. Secret values never appear: Secret `data`, `stringData` and the `last-applied-configuration` copy are masked, and URLs lose their userinfo.\n",
        crate::plan::FORMAT_VERSION
    );
    out.push_str("| field | JSON type | |\n|---|---|---|\n");
    for (path, kind) in &found {
        let explained = PLAN_FIELDS
            .iter()
            .find(|(p, _)| p == path)
            .map_or("", |(_, e)| e);
        let _ = writeln!(out, "| `{path}` | {kind} | {} |", cell(explained));
    }
    out.push_str("\n`changes[].action`:\n\n| value | the plan says |\n|---|---|\n");
    for (value, verb) in actions() {
        let _ = writeln!(out, "| `{value}` | {verb} |");
    }
    let _ = writeln!(
        out,
        "\n`create`, `update`, `replace` and `delete` count in the summary; `conflict` (needs `--force-conflicts`) and `unowned` (needs `--adopt`) are blocked; `not-installed` (the kind's API is not served: skipped) and `no-op` are never applied.\n\n`changes[].wave`, in apply's order: {}.\n",
        waves().join(", ")
    );
    let _ = writeln!(
        out,
        "An example, with every field set (a real plan sets only those that apply):\n\n```json\n{}\n```",
        serde_json::to_string_pretty(&example).unwrap()
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed reference is the code's: a flag, a key, a status or a
    /// plan field added without regenerating it fails here.
    #[test]
    fn the_committed_reference_is_the_one_the_code_generates() {
        let pages = [
            ("cli.md", cli()),
            ("fleet-toml.md", fleet_toml()),
            ("exit-codes.md", exit_codes()),
            ("plan-json.md", plan_json()),
        ];
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/reference");
        let regenerate = std::env::var_os("FLEET_REGENERATE_DOCS").is_some_and(|v| v == "1");
        let mut stale = Vec::new();
        for (name, text) in &pages {
            let path = dir.join(name);
            if std::fs::read_to_string(&path).ok().as_deref() == Some(text.as_str()) {
                continue;
            }
            if regenerate {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(&path, text)
                    .unwrap_or_else(|err| panic!("writing {}: {err}", path.display()));
            } else {
                stale.push(format!("docs/reference/{name}"));
            }
        }
        assert!(
            stale.is_empty(),
            "{} out of date: regenerate with: {REGENERATE}",
            stale.join(", ")
        );
        let mut committed: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        committed.sort();
        let mut generated: Vec<String> = pages.iter().map(|(name, _)| name.to_string()).collect();
        generated.sort();
        assert_eq!(
            committed, generated,
            "docs/reference/ holds only generated pages; remove the others"
        );
    }

    /// Every field of the plan's JSON is explained, and every explanation is
    /// of a field there is.
    #[test]
    fn the_plan_reference_explains_every_field() {
        let mut found = Vec::new();
        paths(&example_json(), "", &mut found);
        for (path, _) in &found {
            assert!(
                PLAN_FIELDS.iter().any(|(p, _)| p == path),
                "`{path}` of the plan's JSON is not explained in PLAN_FIELDS"
            );
        }
        for (path, _) in PLAN_FIELDS {
            assert!(
                found.iter().any(|(p, _)| p == path),
                "PLAN_FIELDS explains `{path}`, which the example plan does not have: set it in example_plan, or remove it"
            );
        }
    }

    /// Every command, every long flag and every key of the schema's agent
    /// table is in the reference.
    #[test]
    fn the_reference_names_every_command_flag_and_key() {
        let text = cli();
        for command in Cli::command().get_subcommands() {
            assert!(text.contains(&format!("## fleet {}", command.get_name())));
            for arg in command.get_arguments() {
                if let Some(long) = arg.get_long() {
                    assert!(text.contains(&format!("--{long}")), "--{long}");
                }
            }
        }
        let toml = fleet_toml();
        for key in crate::load::decode::AGENT_KEYS {
            assert!(toml.contains(&format!("| `{key}` |")), "agent key {key}");
        }
    }
}
