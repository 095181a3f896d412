//! What fleet prints on stdout is for programs (`| head`, `| jq`, a CI step
//! parsing JSON): a reader that stops early is not an error, and nothing but
//! the rendering or the plan goes there. Runs the real binary; needs no
//! cluster.

use std::path::Path;
use std::process::{Command, Stdio};

fn fleet() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_fleet"));
    command.env_remove("GITHUB_ACTIONS").env("NO_COLOR", "1");
    command
}

fn example_fleet() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fleet.toml")
        .display()
        .to_string()
}

/// Runs `fleet args` with stdout a pipe whose reader has already gone, as
/// with `| head -1` once head has exited: every write fails with EPIPE.
fn run_into_closed_pipe(args: &[&str]) -> std::process::Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let child = fleet()
        .args(args)
        .stdout(writer)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn render_into_a_closed_pipe_ends_quietly() {
    let file = example_fleet();
    for format in ["yaml", "json"] {
        let output = run_into_closed_pipe(&["render", "-f", &file, "--format", format]);
        assert_eq!(
            output.status.code(),
            Some(0),
            "--format {format}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&output.stderr),
            "",
            "--format {format}"
        );
    }
}

#[test]
fn validate_into_a_closed_pipe_ends_quietly() {
    let output = run_into_closed_pipe(&["validate", "-f", &example_fleet()]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&output.stderr), "");
}
