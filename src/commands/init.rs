//! `fleet init`: a starting point in a directory: a fleet of two agents and
//! their stream, a local and a production environment, and the example
//! GitHub workflows wired to them. `fleet validate` passes on it as
//! written; nothing that exists is overwritten.

use std::path::{Path, PathBuf};

use super::ExitStatus;
use crate::cli::InitArgs;

const FLEET: &str = include_str!("init/fleet.toml");
const LOCAL: &str = include_str!("init/local.toml");
const PRODUCTION: &str = include_str!("init/production.toml");
const PLAN_WORKFLOW: &str = include_str!("../../examples/github/plan.yml");
const DEPLOY_WORKFLOW: &str = include_str!("../../examples/github/deploy.yml");

/// The files `fleet init` writes, by path under its directory.
pub(super) fn files(name: &str, namespace: &str) -> Vec<(PathBuf, String)> {
    let fill = |template: &str| {
        template
            .replace("{name}", name)
            .replace("{namespace}", namespace)
    };
    vec![
        (PathBuf::from("fleet.toml"), fill(FLEET)),
        (PathBuf::from("environments/local.toml"), fill(LOCAL)),
        (
            PathBuf::from("environments/production.toml"),
            fill(PRODUCTION),
        ),
        (
            PathBuf::from(".github/workflows/fleet-plan.yml"),
            PLAN_WORKFLOW.to_string(),
        ),
        (
            PathBuf::from(".github/workflows/fleet-deploy.yml"),
            production_deploy(DEPLOY_WORKFLOW),
        ),
    ]
}

/// The example deploy workflow (staging, then production) with its one
/// commented job applying production alone: init makes no staging.
fn production_deploy(example: &str) -> String {
    let start = example.find("name: fleet deploy").unwrap_or(0);
    let (head, jobs) = example[start..]
        .split_once("jobs:\n")
        .unwrap_or((&example[start..], ""));
    let first_job = jobs.split("\n  production:\n").next().unwrap_or_default();
    format!(
        "# fleet apply on every push to main, to production (add an environment\n\
         # and a job like this one before it to deploy there first).\n\
         #\n\
         # It needs the GitHub environment `production` holding the secrets\n\
         # KUBECONFIG and (if the server wants credentials) NATS_CREDS; give it\n\
         # required reviewers and restrict it to the branch main. See fleet's\n\
         # README, \"Deploying from GitHub Actions\".\n\
         {head}jobs:\n{}\n",
        first_job.trim_end().replace("staging", "production")
    )
}

/// A name Kubernetes takes for a namespace: the directory's, lowercased,
/// with anything else made a dash.
fn dns_label(text: &str) -> String {
    let label: String = text
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let label = label.trim_matches('-');
    match label.get(..label.len().min(63)) {
        Some(label) if !label.is_empty() => label.trim_end_matches('-').to_string(),
        _ => "agents".to_string(),
    }
}

pub(super) fn run(args: &InitArgs) -> anyhow::Result<ExitStatus> {
    let dir = &args.dir;
    // `.` names no directory until resolved; a new one is not there to be.
    let directory_name = std::fs::canonicalize(dir)
        .unwrap_or_else(|_| dir.clone())
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| dns_label(&directory_name));
    let namespace = args.namespace.clone().unwrap_or_else(|| name.clone());
    let files = files(&name, &namespace);
    let existing: Vec<String> = files
        .iter()
        .map(|(path, _)| dir.join(path))
        .filter(|path| path.exists())
        .map(|path| path.display().to_string())
        .collect();
    if !existing.is_empty() {
        anyhow::bail!(
            "not initialising {}: {} already exist{}; init writes only files that do not (nothing was written)",
            dir.display(),
            existing.join(", "),
            if existing.len() == 1 { "s" } else { "" }
        );
    }
    for (path, text) in &files {
        write(&dir.join(path), text)?;
        println!("wrote {}", dir.join(path).display());
    }
    println!(
        "\nThe fleet `{name}` (namespace `{namespace}`) is ready to edit. Next:\n  \
         fleet validate --env local     # every problem, at its line\n  \
         fleet plan --env local         # what apply would change on the local cluster\n\
         The workflows in .github/workflows plan each pull request and apply production on main."
    );
    Ok(ExitStatus::Success)
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|err| anyhow::anyhow!("making {}: {err}", parent.display()))?;
    }
    std::fs::write(path, text).map_err(|err| anyhow::anyhow!("writing {}: {err}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_init_writes_validates_in_every_environment_without_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in files("my-agents", "my-agents") {
            write(&dir.path().join(path), &text).unwrap();
        }
        let fleet_file = dir.path().join("fleet.toml");
        for env in [None, Some("local"), Some("production")] {
            let loaded = crate::definition::load(&fleet_file, env).unwrap();
            assert!(
                loaded.diagnostics.is_empty(),
                "{env:?}: {:#?}",
                loaded.diagnostics
            );
            let fleet = loaded.fleet.unwrap();
            let roles: Vec<&str> = fleet.agents.iter().map(|a| a.role.as_str()).collect();
            assert_eq!(roles.len(), 2, "{roles:?}");
        }
    }

    #[test]
    fn the_deploy_workflow_applies_production_alone() {
        let deploy = production_deploy(DEPLOY_WORKFLOW);
        assert!(!deploy.contains("staging"), "{deploy}");
        assert_eq!(deploy.matches("\n  production:\n").count(), 1, "{deploy}");
        assert!(deploy.contains("environment: production"), "{deploy}");
        assert!(!deploy.contains("needs:"), "{deploy}");
        let yaml: serde_json::Value = serde_saphyr::from_str(&deploy).unwrap();
        let jobs = yaml["jobs"].as_object().unwrap();
        assert_eq!(jobs.len(), 1);
    }

    #[test]
    fn init_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("fleet.toml"), "# mine\n").unwrap();
        let args = InitArgs {
            dir: dir.path().to_path_buf(),
            name: None,
            namespace: None,
        };
        let err = run(&args).unwrap_err().to_string();
        assert!(err.contains("fleet.toml already exists"), "{err}");
        assert!(!dir.path().join("environments").exists());
        assert_eq!(
            std::fs::read_to_string(dir.path().join("fleet.toml")).unwrap(),
            "# mine\n"
        );
    }

    #[test]
    fn a_directory_name_becomes_a_namespace_name() {
        assert_eq!(dns_label("My_Agents.v2"), "my-agents-v2");
        assert_eq!(dns_label("__"), "agents");
    }
}
