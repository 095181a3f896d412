//! `fleet`: parse the command line, run one verb, turn its outcome into an
//! exit code. Nothing else lives here.

use std::process::ExitCode;

use clap::Parser;
use fleet::{cli, commands};

// Planning a large fleet is mostly building and dropping small JSON values,
// where glibc's malloc and free cost much of a no-op plan's CPU; mimalloc
// does that work faster (BENCHMARKS.md has the measurements).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    without_huge_pages();
    let cli = cli::Cli::parse();
    match commands::run(cli.command) {
        Ok(status) => status.into(),
        // A reader that stops early (`fleet render | head`) is not an error.
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            anstream::eprintln!("error: {err:#}");
            ExitCode::from(commands::failure_code(&err))
        }
    }
}

/// mimalloc asks the kernel for transparent huge pages for its arenas. For
/// a process that lives well under a second they cost more than they save:
/// each one is zeroed whole (2 MiB) on first touch, however little of it is
/// used, which adds kernel time and resident memory (BENCHMARKS.md).
fn without_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE takes plain integers and only sets a flag
    // on this process; failure (an old kernel) leaves things as they were.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain()
        .filter_map(|cause| cause.downcast_ref::<std::io::Error>())
        .any(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
}
