//! The definition as every verb takes it: loaded (`load`: files -> a
//! validated [`Fleet`]), then checked against what it renders. A patch must
//! name an object its agent has, and which objects an agent has is the
//! renderer's decision, so it is asked rather than repeated in the loader;
//! this module sits above both so that neither depends on the other.

use crate::env_vars::EnvVars;
use std::path::Path;

use crate::load::decode::ConfigFiles;
use crate::load::diagnostic::{self, Diagnostic, Severity};
use crate::load::{self, Loaded};
use crate::model::Fleet;

/// [`load::load`], checked against what it renders.
pub fn load(fleet_file: &Path, env: Option<&str>) -> anyhow::Result<Loaded> {
    Ok(checked(load::load(fleet_file, env)?))
}

/// [`load::load_str`], checked against what it renders.
pub fn load_str(
    fleet_path: &Path,
    fleet_text: &str,
    overlay: Option<(&Path, &str)>,
    env: Option<&str>,
    files: &dyn ConfigFiles,
) -> Loaded {
    checked(load::load_str(fleet_path, fleet_text, overlay, env, files))
}

/// [`load::load_bytes`], checked against what it renders.
pub fn load_bytes(
    fleet_path: &Path,
    fleet_text: &[u8],
    overlay: Option<(&Path, &[u8])>,
    env: Option<&str>,
    files: &dyn ConfigFiles,
) -> Loaded {
    checked(load::load_bytes(
        fleet_path, fleet_text, overlay, env, files,
    ))
}

/// Loads the definition, the first step of every verb: prints every
/// diagnostic to stderr (and, inside Actions, as GitHub annotations, also on
/// stderr: the runner reads workflow commands from both streams, and stdout
/// is the plan or the rendering a program may be parsing), and returns the
/// fleet only when there were no errors.
pub fn load_reported(file: &Path, env: Option<&str>) -> anyhow::Result<Option<Fleet>> {
    use std::io::Write as _;
    let loaded = load(file, env)?;
    if !loaded.diagnostics.is_empty() {
        let mut stderr = anstream::stderr();
        write!(
            stderr,
            "{}",
            diagnostic::render(&loaded.diagnostics, &loaded.sources, true)
        )?;
        if std::env::var(EnvVars::GITHUB_ACTIONS).is_ok_and(|v| v == "true") {
            write!(
                stderr,
                "{}",
                diagnostic::github_annotations(&loaded.diagnostics, &loaded.sources)
            )?;
        }
    }
    if let Some(summary) = load::problems(&loaded, file) {
        writeln!(anstream::stderr(), "error: {summary}")?;
        return Ok(None);
    }
    Ok(loaded.fleet)
}

/// `loaded`, with an error for each patch of an object its agent does not
/// have (then without its fleet).
fn checked(mut loaded: Loaded) -> Loaded {
    let Some(fleet) = &loaded.fleet else {
        return loaded;
    };
    let unmatched = unmatched_patches(fleet);
    if unmatched.iter().any(|d| d.severity == Severity::Error) {
        loaded.fleet = None;
    }
    loaded.diagnostics.extend(unmatched);
    loaded
}

/// An error for each patch naming a kind of object its agent has not. Only
/// the agents with patches are rendered.
fn unmatched_patches(fleet: &Fleet) -> Vec<Diagnostic> {
    let patched = Fleet {
        agents: (fleet.agents.iter())
            .filter(|a| !a.patches.is_empty())
            .cloned()
            .collect(),
        ..fleet.clone()
    };
    if patched.agents.is_empty() {
        return Vec::new();
    }
    let rendered = crate::render::kube::objects(&patched);
    let role_label = format!("{}/role", fleet.label_domain);
    let mut diagnostics = Vec::new();
    for agent in &patched.agents {
        for patch in &agent.patches {
            let has = rendered.iter().any(|o| {
                o.id.kind == patch.kind && o.body["metadata"]["labels"][&role_label] == agent.role
            });
            if !has {
                diagnostics.push(
                    Diagnostic::error(
                        &patch.kind_origin,
                        format!("agent `{}` has no {} to patch", agent.role, patch.kind),
                    )
                    .with_label("not rendered for this agent")
                    .with_help(match patch.kind.as_str() {
                        "HorizontalPodAutoscaler" => "an agent has one with `autoscaling`",
                        "Role" | "RoleBinding" => "an agent has these with `rbac`",
                        "ConfigMap" => "an agent has one with `config`",
                        "PodDisruptionBudget" => {
                            "an agent has one when it runs more than one replica"
                        }
                        "NetworkPolicy" => "an agent has one with `network`",
                        "Service" => "an agent has one unless `metrics = false`",
                        _ => "remove the patch",
                    }),
                );
            }
        }
    }
    diagnostics
}
