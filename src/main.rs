//! `fleet`: parse the command line, run one verb, turn its outcome into an
//! exit code. Nothing else lives here.

use std::process::ExitCode;

use clap::Parser;
use fleet::{cli, commands};

// Planning a large fleet is mostly building and dropping small JSON values
// (about a third of a no-op plan's CPU went to glibc's malloc and free);
// mimalloc does that work in a fraction of the time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match commands::run(cli.command) {
        Ok(status) => status.into(),
        // A reader that stops early (`fleet render | head`) is not an error.
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            anstream::eprintln!("error: {err:#}");
            ExitCode::from(1)
        }
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain()
        .filter_map(|cause| cause.downcast_ref::<std::io::Error>())
        .any(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
}
