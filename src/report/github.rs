//! GitHub Actions: what fleet gives a workflow run besides its log, when
//! `GITHUB_ACTIONS=true`. The plan in Markdown for the step summary
//! (`$GITHUB_STEP_SUMMARY`), the counts as step outputs (`$GITHUB_OUTPUT`),
//! annotations for blocked changes, log groups, and masks for every
//! credential. The texts are made here, purely; `commands` writes them.
//! Workflow commands go to stderr: the runner reads them there too, and
//! stdout stays the plan (JSON for `--format json`).

use crate::env_vars::EnvVars;
use std::path::{Path, PathBuf};

use crate::plan::{Action, Change, Plan, Target};
use crate::workflow_command::command;

/// GitHub cuts a step summary above 1 MiB; keep well under it.
pub const STEP_SUMMARY_MAX_BYTES: usize = 1_000_000;

/// Where a GitHub Actions step wants fleet's results.
#[derive(Debug, Clone, Default)]
pub struct Workflow {
    pub step_summary: Option<PathBuf>,
    pub output: Option<PathBuf>,
    /// The run's page, for "the full plan is in ...".
    pub run_url: Option<String>,
}

impl Workflow {
    /// The workflow this process runs in, if it runs in one.
    pub fn from_env() -> Option<Workflow> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        if var(EnvVars::GITHUB_ACTIONS).as_deref() != Some("true") {
            return None;
        }
        let run_url = match (
            var(EnvVars::GITHUB_SERVER_URL),
            var(EnvVars::GITHUB_REPOSITORY),
            var(EnvVars::GITHUB_RUN_ID),
        ) {
            (Some(server), Some(repository), Some(run)) => {
                Some(format!("{server}/{repository}/actions/runs/{run}"))
            }
            _ => None,
        };
        Some(Workflow {
            step_summary: var(EnvVars::GITHUB_STEP_SUMMARY).map(PathBuf::from),
            output: var(EnvVars::GITHUB_OUTPUT).map(PathBuf::from),
            run_url,
        })
    }
}

/// What a step's outputs say about a plan (or an apply: what it did).
pub fn outputs(plan: &Plan) -> String {
    let summary = plan.summary();
    format!(
        "has-changes={}\nadd={}\nchange={}\ndestroy={}\nblocked={}\n",
        plan.has_changes(),
        summary.add,
        summary.change,
        summary.destroy,
        summary.blocked
    )
}

/// `::add-mask::` for each secret, so the runner hides it in the rest of the
/// job's log. Each line of a multi-line secret is masked on its own, as the
/// runner matches line by line.
pub fn masks<'a>(secrets: impl IntoIterator<Item = &'a str>) -> String {
    secrets
        .into_iter()
        .flat_map(str::lines)
        .map(str::trim)
        .filter(|line| line.len() >= 4)
        .map(|line| command("add-mask", &[], line))
        .collect()
}

/// Opens a folded group in the log.
pub fn group(title: &str) -> String {
    command("group", &[], title)
}

pub const END_GROUP: &str = "::endgroup::\n";

/// Where in the definition an agent or stream is declared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: PathBuf,
    pub line: usize,
}

/// The line of `fleet.toml` that opens `[agents.<role>]` or
/// `[streams.<name>]` (or a sub-table of it), if there is one.
pub fn declaration_line(definition: &str, table: &str, name: &str) -> Option<usize> {
    let plain = format!("[{table}.{name}");
    let quoted = format!("[{table}.\"{name}\"");
    definition
        .lines()
        .position(|line| {
            let line = line.trim_start();
            [&plain, &quoted].iter().any(|header| {
                line.strip_prefix(header.as_str())
                    .is_some_and(|rest| rest.starts_with(']') || rest.starts_with('.'))
            })
        })
        .map(|index| index + 1)
}

/// Annotations for what the plan cannot do without a flag or a fix:
/// blocked changes (`::error`, they fail apply) and kinds that are not
/// installed (`::warning`), at the agent's or stream's declaration when
/// `locate` finds it. GitHub shows a limited number per step, so kinds not
/// installed are one annotation each, not one per object.
pub fn annotations(plan: &Plan, locate: &dyn Fn(&Change) -> Option<Location>) -> String {
    let mut out = String::new();
    let mut not_installed = std::collections::BTreeSet::new();
    for change in &plan.changes {
        let level = match change.action {
            _ if change.is_blocked() => "error",
            Action::NotInstalled => {
                if let Target::Kubernetes(id) = &change.target
                    && !not_installed.insert(id.kind.clone())
                {
                    continue;
                }
                "warning"
            }
            _ => continue,
        };
        let title = format!("{} {}", change.target, change.action.verb());
        let mut message = match &change.reason {
            Some(reason) => format!("{title}: {reason}"),
            None => title.clone(),
        };
        if let Some(blocked) = &change.blocked {
            message.push_str(&format!("; blocked: {}", blocked.reason));
        }
        out.push_str(&match locate(change) {
            Some(location) => command(
                level,
                &[
                    ("file", &location.file.display()),
                    ("line", &location.line),
                    ("title", &title),
                ],
                &message,
            ),
            None => command(level, &[("title", &title)], &message),
        });
    }
    out
}

/// Appends `text` to a file the runner gave (summary, outputs).
pub fn append(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?
        .write_all(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Change;
    use crate::render::{ObjectRef, Wave};

    fn plan(changes: Vec<Change>) -> Plan {
        Plan {
            format_version: crate::plan::FORMAT_VERSION,
            fleet: "f".into(),
            environment: Some("prod".into()),
            namespace: "ns".into(),
            kube_context: "ctx".into(),
            nats_url: None,
            changes,
            drift_only: false,
            destroy: false,
            targeting: None,
            notes: vec![],
            provenance: Default::default(),
            lock: None,
        }
    }

    fn deployment(name: &str, action: Action) -> Change {
        let mut change = Change::new(
            Target::Kubernetes(ObjectRef {
                api_version: "apps/v1".into(),
                kind: "Deployment".into(),
                namespace: Some("ns".into()),
                name: name.into(),
            }),
            action,
            Wave::Workloads,
        );
        change.agent = Some(name.trim_start_matches("agent-").into());
        change
    }

    #[test]
    fn outputs_count_the_plan() {
        let plan = plan(vec![
            deployment("agent-a", Action::Create),
            deployment("agent-b", Action::Conflict),
        ]);
        assert_eq!(
            outputs(&plan),
            "has-changes=true\nadd=1\nchange=0\ndestroy=0\nblocked=1\n"
        );
    }

    #[test]
    fn blocked_changes_are_errors_at_the_agents_declaration() {
        let mut conflict = deployment("agent-a", Action::Conflict);
        conflict.reason = Some(".spec.replicas (conflict with \"argo\"), take it over".into());
        let plan = plan(vec![conflict, deployment("agent-b", Action::Update)]);
        let locate = |change: &Change| {
            Some(Location {
                file: "fleet.toml".into(),
                line: declaration_line(
                    "[fleet]\nname = \"f\"\n\n[agents.a]\nimage = \"x\"\n",
                    "agents",
                    change.agent.as_deref()?,
                )?,
            })
        };
        let text = annotations(&plan, &locate);
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(
            text.starts_with(
                "::error file=fleet.toml,line=4,title=Deployment ns/agent-a conflicts"
            ),
            "{text}"
        );
        assert!(
            text.ends_with("(conflict with \"argo\"), take it over\n"),
            "{text}"
        );
    }

    #[test]
    fn declarations_are_found_by_their_table_header() {
        let toml = "[agents.devops]\n[agents.devops-2]\n[agents.\"x\".network]\n[streams.tasks]\n";
        assert_eq!(declaration_line(toml, "agents", "devops"), Some(1));
        assert_eq!(declaration_line(toml, "agents", "devops-2"), Some(2));
        assert_eq!(declaration_line(toml, "agents", "x"), Some(3));
        assert_eq!(declaration_line(toml, "streams", "tasks"), Some(4));
        assert_eq!(declaration_line(toml, "agents", "dev"), None);
    }

    #[test]
    fn secrets_are_masked_line_by_line_and_escaped() {
        assert_eq!(
            masks(["pw%1\n", "SUAXYZ1234\nsecond-line"]),
            "::add-mask::pw%251\n::add-mask::SUAXYZ1234\n::add-mask::second-line\n"
        );
    }
}
