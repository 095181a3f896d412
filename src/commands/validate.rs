//! `fleet validate`: load the definition and report on it.

use std::io::Write;

use super::{ExitStatus, load_definition};
use crate::cli::DefinitionArgs;

pub(super) fn run(args: &DefinitionArgs) -> anyhow::Result<ExitStatus> {
    let Some(fleet) = load_definition(args)? else {
        return Ok(ExitStatus::Failure);
    };
    let environment = fleet
        .environment
        .as_deref()
        .map(|e| format!(" (environment {e})"))
        .unwrap_or_default();
    // writeln!, not println!: a closed stdout is an error main can recognise,
    // not a panic.
    writeln!(
        std::io::stdout(),
        "{} is valid{environment}: {} agent{}, {} stream{}",
        args.file.display(),
        fleet.agents.len(),
        if fleet.agents.len() == 1 { "" } else { "s" },
        fleet.streams.len(),
        if fleet.streams.len() == 1 { "" } else { "s" },
    )?;
    Ok(ExitStatus::Success)
}
