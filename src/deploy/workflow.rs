//! Running inside GitHub Actions: the secrets announced to the runner before
//! anything is printed, and the plan (or what apply did) written to the step
//! summary and outputs, with annotations. The texts come from
//! `report::github`; this is only where they are written.

use std::io::Write as _;
use std::path::Path;

use super::Nats;
use crate::plan::{Change, Plan, Target};
use crate::redact;
use crate::report::{self, github};

/// `::add-mask::` for every credential fleet was given (flags, environment,
/// the files they name, the URL's userinfo), so the runner hides each one in
/// the rest of the job's log, whatever prints it.
pub(crate) fn announce_secrets(nats: &Nats, url: Option<&str>) {
    if github::Workflow::from_env().is_none() {
        return;
    }
    let mut secrets: Vec<String> = [&nats.options.password, &nats.options.token]
        .into_iter()
        .flatten()
        .map(|s| s.expose().to_string())
        .collect();
    // A seed file holds the seed; a creds file a JWT and a seed.
    for path in [&nats.options.nkey_file, &nats.options.creds_file]
        .into_iter()
        .flatten()
    {
        if let Ok(text) = std::fs::read_to_string(path) {
            secrets.extend(
                text.lines()
                    .filter(|line| !line.starts_with("---") && !line.trim().is_empty())
                    .map(str::to_string),
            );
        }
    }
    for url in [nats.url.as_deref(), url].into_iter().flatten() {
        secrets.extend(redact::url_secrets(url));
    }
    let masks = github::masks(secrets.iter().map(String::as_str));
    let _ = std::io::stderr().write_all(masks.as_bytes());
}

/// Writes `plan` to the step summary (after `headline`, e.g. what apply
/// did), its counts (and `extra_outputs`) to the step outputs, and
/// annotations for what is blocked to stderr. `definition` is fleet.toml,
/// to point the annotations at an agent's or stream's declaration.
pub(crate) fn report(
    plan: &Plan,
    definition: &Path,
    full_plan: Option<&Path>,
    headline: &str,
    extra_outputs: &str,
) -> anyhow::Result<()> {
    let Some(workflow) = github::Workflow::from_env() else {
        return Ok(());
    };
    if let Some(path) = &workflow.step_summary {
        let mut markdown = Vec::new();
        let place = match (full_plan, &workflow.run_url) {
            (Some(file), Some(run)) => {
                Some(format!("{} (kept with the run {run})", file.display()))
            }
            (Some(file), None) => Some(file.display().to_string()),
            (None, Some(run)) => Some(format!("the log of {run}")),
            (None, None) => None,
        };
        markdown.extend_from_slice(headline.as_bytes());
        report::plan_markdown(
            plan,
            github::STEP_SUMMARY_MAX_BYTES - headline.len(),
            place.as_deref(),
            &mut markdown,
        )?;
        github::append(path, &String::from_utf8_lossy(&markdown))?;
    }
    if let Some(path) = &workflow.output {
        github::append(path, &format!("{}{extra_outputs}", github::outputs(plan)))?;
    }
    let text = std::fs::read_to_string(definition).unwrap_or_default();
    let locate = |change: &Change| {
        let line = match (&change.target, &change.agent) {
            (_, Some(agent)) => github::declaration_line(&text, "agents", agent),
            (Target::Stream { name }, None) => github::declaration_line(&text, "streams", name),
            _ => None,
        }?;
        Some(github::Location {
            file: definition.to_path_buf(),
            line,
        })
    };
    let annotations = github::annotations(plan, &locate);
    std::io::stderr().write_all(annotations.as_bytes())?;
    Ok(())
}

/// Folds what follows in the log under `title`, when in a workflow.
pub(crate) fn group(title: &str) {
    if github::Workflow::from_env().is_some() {
        let _ = std::io::stderr().write_all(github::group(title).as_bytes());
    }
}

pub(crate) fn end_group() {
    if github::Workflow::from_env().is_some() {
        let _ = std::io::stderr().write_all(github::END_GROUP.as_bytes());
    }
}
