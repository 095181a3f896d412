//! `fleet`: parse the command line, run one verb, turn its outcome into an
//! exit code. Nothing else lives here.

mod cli;
mod commands;
mod fleet;
mod load;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match commands::run(cli.command) {
        Ok(status) => status.into(),
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(1)
        }
    }
}
