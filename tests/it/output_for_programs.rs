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

#[test]
fn schema_into_a_closed_pipe_ends_quietly() {
    // `fleet schema | head -c 10` printed "error: Broken pipe" and exited 1.
    let output = run_into_closed_pipe(&["schema"]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&output.stderr), "");
}

/// A fleet whose production environment uses a `latest` image: valid, with
/// one warning.
fn fleet_with_a_warning() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("fleet.toml"),
        "[fleet]\nname = \"demo\"\nnamespace = \"agents\"\n\n[defaults]\nimage = \"example.com/agent:1\"\nnats_url = \"nats://nats:4222\"\n\n[agents.devops]\nprofile = \"executor\"\n",
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("environments")).unwrap();
    std::fs::write(
        dir.path().join("environments/production.toml"),
        "[defaults]\nimage = \"example.com/agent:latest\"\n",
    )
    .unwrap();
    dir
}

#[test]
fn github_annotations_leave_rendered_json_parseable() {
    let dir = fleet_with_a_warning();
    let file = dir.path().join("fleet.toml");
    let output = fleet()
        .args(["render", "--env", "production", "--format", "json", "-f"])
        .arg(&file)
        .env("GITHUB_ACTIONS", "true")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let rendered: serde_json::Value =
        serde_json::from_slice(&output.stdout).unwrap_or_else(|err| {
            panic!(
                "stdout is not JSON ({err}):\n{}",
                String::from_utf8_lossy(&output.stdout)
            )
        });
    assert!(rendered["kubernetes"].is_array());
    let annotation = stderr
        .lines()
        .find(|l| l.starts_with("::warning file="))
        .unwrap_or_else(|| panic!("no warning annotation on stderr:\n{stderr}"));
    assert!(
        annotation.ends_with("production.toml,line=2,col=9::image `example.com/agent:latest` uses tag `latest` in environment `production`. help: pin a version (or a digest) so a rollout is repeatable"),
        "{annotation}"
    );
}

#[test]
fn github_annotations_of_errors_go_to_stderr() {
    let dir = fleet_with_a_warning();
    std::fs::write(
        dir.path().join("environments/production.toml"),
        "replicas = \"2\"\n",
    )
    .unwrap();
    for args in [&["render", "--format", "json"][..], &["render"][..]] {
        let output = fleet()
            .args(args)
            .args(["--env", "production", "-f"])
            .arg(dir.path().join("fleet.toml"))
            .env("GITHUB_ACTIONS", "true")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        // Nothing is rendered, so nothing at all is printed on stdout.
        assert_eq!(String::from_utf8_lossy(&output.stdout), "", "{args:?}");
        assert!(
            stderr.contains("::error file="),
            "no error annotation on stderr:\n{stderr}"
        );
    }
}
