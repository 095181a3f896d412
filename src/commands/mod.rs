//! One module per verb: each wires the pipeline stages together for that verb
//! and reports the outcome as an [`ExitStatus`].

mod apply;
mod docs;
mod import;
mod init;
mod plan;
mod rbac;
#[cfg(test)]
mod reference;
mod render;
mod schema;
mod show;
mod status;
mod unlock;
mod validate;

use std::process::ExitCode;

use crate::cli::{Command, DefinitionArgs};
use crate::model::Fleet;

/// How a verb ended, when it did not fail. One place decides exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// Done; nothing to report.
    Success,
    /// Done, and the plan has changes (only with `--detailed-exitcode`).
    Changes,
    /// The definition or the request was refused; the reasons are printed.
    Failure,
}

impl From<ExitStatus> for ExitCode {
    fn from(status: ExitStatus) -> Self {
        match status {
            ExitStatus::Success => ExitCode::SUCCESS,
            ExitStatus::Failure => ExitCode::from(1),
            ExitStatus::Changes => ExitCode::from(2),
        }
    }
}

/// The exit code of a run that failed: 128 + the signal's number when a
/// signal stopped it (as a shell reports a process the signal killed), 1
/// otherwise.
pub fn failure_code(err: &anyhow::Error) -> u8 {
    let signal = err.chain().find_map(|cause| {
        if let Some(stopped) = cause.downcast_ref::<crate::apply::Stopped>() {
            return stopped.interrupted;
        }
        cause
            .downcast_ref::<crate::interrupt::Interrupted>()
            .map(|interrupted| interrupted.0)
    });
    signal.map_or(1, |signal| signal.exit_code())
}

pub fn run(command: Command) -> anyhow::Result<ExitStatus> {
    match command {
        Command::Validate(args) => validate::run(&args),
        Command::Render(args) => render::run(&args),
        Command::Plan(args) => runtime()?.block_on(within(args.cluster.timeout, plan::run(&args))),
        Command::Apply(args) => {
            runtime()?.block_on(within(args.cluster.timeout, apply::run(&args, false)))
        }
        Command::Destroy(args) => {
            runtime()?.block_on(within(args.cluster.timeout, apply::run(&args, true)))
        }
        Command::Status(args) => {
            runtime()?.block_on(within(args.cluster.timeout, status::run(&args)))
        }
        Command::Show(args) => show::run(&args),
        Command::Rbac(args) => rbac::run(&args),
        Command::Unlock(args) => runtime()?.block_on(unlock::run(&args)),
        Command::Schema => schema::run(),
        Command::Completions(args) => docs::completions(&args),
        Command::Man(args) => docs::man(&args),
        Command::Init(args) => init::run(&args),
        Command::Import(args) => runtime()?.block_on(import::run(&args)),
    }
}

/// Bounds a whole run by `--timeout`: an unattended job never hangs, and
/// says what it was doing when it gave up.
async fn within(
    timeout: std::time::Duration,
    run: impl Future<Output = anyhow::Result<ExitStatus>>,
) -> anyhow::Result<ExitStatus> {
    tokio::time::timeout(timeout, run).await.unwrap_or_else(|_| {
        Err(anyhow::anyhow!(
            "gave up after --timeout {}s; what was done is listed above. Run again (with a longer --timeout if the servers are slow): fleet picks up where this left off",
            timeout.as_secs()
        ))
    })
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Loads the definition, printing its diagnostics; `None` when it has
/// errors.
pub fn load_definition(args: &DefinitionArgs) -> anyhow::Result<Option<Fleet>> {
    // `--env ''`: fleet.toml alone, said explicitly.
    let env = args.env.as_deref().filter(|env| !env.is_empty());
    crate::definition::load_reported(&args.file, env)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::Stopped;
    use crate::interrupt::{Interrupted, Signal};

    #[test]
    fn a_signal_sets_the_exit_code_as_a_shell_would() {
        let before_changes = anyhow::Error::new(Interrupted(Signal::Terminate));
        assert_eq!(failure_code(&before_changes), 143);
        let stopped = anyhow::Error::new(Stopped {
            errors: Vec::new(),
            not_started: Vec::new(),
            in_rollout: false,
            interrupted: Some(Signal::Interrupt),
        })
        .context("applying");
        assert_eq!(failure_code(&stopped), 130);
        let failed = anyhow::anyhow!("the API server refused");
        assert_eq!(failure_code(&failed), 1);
    }
}
