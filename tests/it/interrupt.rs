//! `fleet apply` interrupted for real: SIGINT or SIGTERM sent to the
//! process mid-apply, as Ctrl-C or a cancelled CI job does. Apply stops
//! after the writes in flight, says what was and was not done, exits 130 or
//! 143, and releases the deploy lock at once, so the next apply neither
//! waits for it nor misses anything. A second signal exits at once. The
//! action's script (`action.yml`) passes a cancelled job's signal on to
//! fleet.

use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::Duration;

use crate::support::{self, FleetDir, TestEnv, finish_reading, spawn_reading};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;

/// Agents beyond the example's, without pods (replicas 0), so that an apply
/// takes long enough to be interrupted in the middle of its writes.
const EXTRA_AGENTS: usize = 40;

fn large_fleet(env: &TestEnv) -> FleetDir {
    let fleet = FleetDir::for_test(env);
    let mut definition = std::fs::read_to_string(support::repo_root().join("fleet.toml")).unwrap();
    for n in 0..EXTRA_AGENTS {
        definition.push_str(&format!(
            "\n[agents.worker-{n:02}]\ntier = \"operations\"\nprofile = \"executor\"\nreplicas = 0\n"
        ));
    }
    fleet.set_definition(&definition);
    fleet
}

/// What it printed until a line ended with `end` (or it ended).
fn read_until(lines: &Receiver<String>, end: &str) -> String {
    let mut stdout = String::new();
    while let Ok(line) = lines.recv_timeout(Duration::from_secs(60)) {
        stdout.push_str(&line);
        stdout.push('\n');
        if line.ends_with(end) {
            break;
        }
    }
    stdout
}

fn send(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal}");
}

/// The deploy lock's holder; `None` once released.
async fn holder(env: &TestEnv, fleet: &FleetDir) -> Option<String> {
    let leases: Api<Lease> = Api::namespaced(env.kube.clone(), &fleet.namespace);
    leases
        .get_opt("fleet-agent-ceo")
        .await
        .unwrap()
        .and_then(|lease| lease.spec?.holder_identity)
        .filter(|holder| !holder.is_empty())
}

/// How many changes the summary line says were not started.
fn not_started(stdout: &str) -> usize {
    let summary = stdout
        .lines()
        .find(|line| line.starts_with("Apply interrupted by SIGINT: "))
        .unwrap_or_else(|| panic!("no summary of the interrupted apply:\n{stdout}"));
    summary
        .trim_end_matches(" not started.")
        .rsplit(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {summary:?}"))
}

#[tokio::test]
async fn sigint_mid_apply_stops_after_the_writes_in_flight_and_releases_the_lock() {
    let env = TestEnv::new("interrupt-sigint").await;
    let fleet = large_fleet(&env);

    let (child, lines) = spawn_reading(fleet.command(&["apply", "--auto-approve", "--no-wait"]));
    // The namespace is the first change; everything else is still to come.
    let stdout = read_until(&lines, ": created");
    send(&child, "INT");
    let run = finish_reading(child, lines, stdout, Duration::from_secs(30));

    assert_eq!(run.code, 130, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains(
            "error: interrupted by SIGINT: apply stopped once the changes in flight were done"
        ),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    assert!(
        not_started(&run.stdout) > 0,
        "the signal came with most of the plan to do:\n{}",
        run.stdout
    );
    assert!(run.stdout.contains("\nNot started:\n"), "{}", run.stdout);
    // Released by the interrupted apply itself, not left to expire.
    assert_eq!(holder(&env, &fleet).await, None);

    // Not waiting for the lock at all: it is free.
    fleet
        .apply(&["--lock-timeout", "0s", "--no-wait"])
        .assert_ok("apply after the interrupted one");
    fleet.assert_plan_empty();
}

#[tokio::test]
async fn a_second_signal_exits_at_once() {
    let env = TestEnv::new("interrupt-twice").await;
    let fleet = large_fleet(&env);

    let (child, lines) = spawn_reading(fleet.command(&["apply", "--auto-approve", "--no-wait"]));
    let stdout = read_until(&lines, ": created");
    send(&child, "INT");
    send(&child, "TERM");
    let run = finish_reading(child, lines, stdout, Duration::from_secs(30));

    // Sent back to back, the two may be seen in either order: the second
    // one seen ends fleet, with its own exit code.
    let second = [("SIGTERM", 143), ("SIGINT", 130)]
        .into_iter()
        .find(|(name, _)| {
            run.stderr
                .contains(&format!("fleet: {name} after an interrupt: exiting now."))
        });
    let Some((_, code)) = second else {
        panic!("no second signal seen:\n{}", run.stderr);
    };
    assert_eq!(run.code, code, "{}{}", run.stdout, run.stderr);
    // The lock may be left held: the next apply takes it over, its holder's
    // process having ended, and converges.
    fleet
        .apply(&["--lock-timeout", "60s", "--no-wait"])
        .assert_ok("apply after the one that exited at once");
    fleet.assert_plan_empty();
}

/// The shell script of `action.yml`'s step `run`, which runs fleet.
fn action_run_script() -> String {
    let action = std::fs::read_to_string(support::repo_root().join("action.yml")).unwrap();
    let step = action
        .split_once("      id: run\n")
        .expect("action.yml has a step with id run")
        .1;
    let script = step
        .split_once("      run: |\n")
        .expect("the step runs a script")
        .1;
    script
        .lines()
        .take_while(|line| line.is_empty() || line.starts_with("        "))
        .map(|line| line.strip_prefix("        ").unwrap_or(line))
        .collect::<Vec<_>>()
        .join("\n")
}

/// GitHub Actions cancels a job by signalling the step's shell, not fleet:
/// the action's script passes the signal on, so fleet stops cleanly there
/// too instead of dying with the shell and leaving the lock to expire.
#[tokio::test]
async fn the_actions_apply_step_passes_a_cancel_on_to_fleet() {
    let env = TestEnv::new("interrupt-action").await;
    let fleet = large_fleet(&env);
    let outputs = tempfile::tempdir().unwrap();
    let fleet_binary = std::path::Path::new(env!("CARGO_BIN_EXE_fleet"));
    // As the runner starts a `shell: bash` step.
    let mut step = Command::new("bash");
    step.args(["--noprofile", "--norc", "-eo", "pipefail", "-c"])
        .arg(action_run_script())
        .current_dir(fleet.dir.path())
        .env("KUBECONFIG", &support::control_plane().kubeconfig)
        .env("NO_COLOR", "1")
        .env("FLEET_DIR", fleet_binary.parent().unwrap())
        .env("COMMAND", "apply")
        .env("ENVIRONMENT", "test")
        .env("ARGS", "--no-wait")
        .env("MAX_BYTES", "60000")
        .env("GITHUB_OUTPUT", outputs.path().join("output"))
        .env("GITHUB_PATH", outputs.path().join("path"))
        .env_remove("FLEET_ENV")
        .env_remove("FLEET_NATS_URL")
        .env_remove("GITHUB_ACTIONS")
        .stdin(Stdio::null());
    // A runner's step shell starts with SIGINT handled as usual; a test run
    // in the background of a non-interactive shell inherits it ignored, and
    // bash cannot trap a signal ignored on entry. Start the step as the
    // runner would.
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        use std::os::unix::process::CommandExt as _;
        step.pre_exec(|| {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            libc::signal(libc::SIGTERM, libc::SIG_DFL);
            Ok(())
        });
    }
    let (child, lines) = spawn_reading(step);
    let stdout = read_until(&lines, ": created");
    send(&child, "INT");
    let run = finish_reading(child, lines, stdout, Duration::from_secs(30));

    assert_eq!(run.code, 130, "{}{}", run.stdout, run.stderr);
    assert!(not_started(&run.stdout) > 0, "{}", run.stdout);
    assert_eq!(holder(&env, &fleet).await, None);
    let outputs = std::fs::read_to_string(outputs.path().join("output")).unwrap();
    assert!(outputs.contains("exitcode=130\n"), "{outputs}");
}
