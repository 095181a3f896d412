//! `fleet completions` and `fleet man`: shell completions and man pages,
//! generated from the same clap definitions as the CLI itself, so they
//! cannot drift from it.

use clap::CommandFactory;

use super::ExitStatus;
use crate::cli::{Cli, CompletionsArgs, ManArgs};

pub(super) fn completions(args: &CompletionsArgs) -> anyhow::Result<ExitStatus> {
    let mut command = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "fleet", &mut script);
    crate::report::to_stdout(&script)?;
    Ok(ExitStatus::Success)
}

pub(super) fn man(args: &ManArgs) -> anyhow::Result<ExitStatus> {
    std::fs::create_dir_all(&args.out)
        .map_err(|err| anyhow::anyhow!("making {}: {err}", args.out.display()))?;
    clap_mangen::generate_to(Cli::command(), &args.out)
        .map_err(|err| anyhow::anyhow!("writing man pages into {}: {err}", args.out.display()))?;
    println!("man pages written to {}", args.out.display());
    Ok(ExitStatus::Success)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// The man pages in the repository's `man/` are the CLI's own: a flag
    /// added without regenerating them fails here.
    #[test]
    fn the_committed_man_pages_are_those_the_cli_generates() {
        let fresh = tempfile::tempdir().unwrap();
        clap_mangen::generate_to(Cli::command(), fresh.path()).unwrap();
        let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("man");
        let names = |dir: &Path| {
            let mut names: Vec<String> = std::fs::read_dir(dir)
                .unwrap_or_else(|err| panic!("{}: {err}", dir.display()))
                .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        };
        let regenerate = "regenerate them with `cargo run -- man --out man`";
        assert_eq!(names(fresh.path()), names(&committed), "{regenerate}");
        for name in names(fresh.path()) {
            let want = std::fs::read_to_string(fresh.path().join(&name)).unwrap();
            let have = std::fs::read_to_string(committed.join(&name)).unwrap();
            assert!(have == want, "man/{name} is out of date: {regenerate}");
        }
    }

    /// Every command and every long flag is offered in every shell.
    #[test]
    fn completions_offer_every_command_and_flag() {
        let cli = Cli::command();
        let mut words = Vec::new();
        for command in cli.get_subcommands() {
            words.push(command.get_name().to_string());
            for arg in command.get_arguments() {
                if let Some(long) = arg.get_long() {
                    words.push(format!("--{long}"));
                }
            }
        }
        assert!(words.contains(&"--nats-creds".to_string()), "{words:?}");
        for shell in [
            clap_complete::Shell::Bash,
            clap_complete::Shell::Zsh,
            clap_complete::Shell::Fish,
            clap_complete::Shell::PowerShell,
        ] {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "fleet", &mut script);
            let script = String::from_utf8(script).unwrap();
            for word in &words {
                // fish names long flags without their dashes (`-l env`).
                let bare = word.trim_start_matches("--");
                assert!(
                    script.contains(word.as_str()) || script.contains(&format!("-l {bare}")),
                    "{shell} completions lack {word}"
                );
            }
        }
    }
}
