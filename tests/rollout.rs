//! `fleet apply` waiting for rollouts on the local control plane (kwok nodes
//! with 32 cpu each, `kwok-node-a` the only `workload-type=cognitive`): a
//! rollout that cannot finish stops apply long before `--timeout`, naming
//! the Deployment, the pod and the scheduler's reason; one that may still
//! finish shows its progress until it does, or until a signal ends the
//! wait.

mod support;

use std::io::{BufRead as _, BufReader, Read as _};
use std::process::Stdio;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use serde_json::json;
use support::{FleetDir, TestEnv};

/// The seconds apply had waited when it printed `line_start`'s line, from
/// its `(12s)` or `(1m05s)` ending.
fn waited_at(stdout: &str, line_start: &str) -> Duration {
    let line = stdout
        .lines()
        .find(|l| l.starts_with(line_start))
        .unwrap_or_else(|| panic!("no line starting {line_start:?} in:\n{stdout}"));
    let waited = line
        .rsplit_once('(')
        .and_then(|(_, rest)| rest.strip_suffix("s)"))
        .unwrap_or_else(|| panic!("no (waited) at the end of {line:?}"));
    let secs = match waited.split_once('m') {
        Some((minutes, seconds)) => {
            minutes.parse::<u64>().unwrap() * 60 + seconds.parse::<u64>().unwrap()
        }
        None => waited.parse().unwrap(),
    };
    Duration::from_secs(secs)
}

/// Applies, expecting the rollout of `deployment` to fail fast with `reason`
/// and a message containing `message`; returns the run.
fn assert_fails_fast(fleet: &FleetDir, deployment: &str, message: &str) -> support::Run {
    let started = Instant::now();
    let run = fleet.apply(&[]); // --timeout 90s
    let took = started.elapsed();
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);

    let failed_line = format!(
        "Deployment {}/{deployment}: rollout failed: Unschedulable (pod {deployment}-",
        fleet.namespace
    );
    let waited = waited_at(&run.stdout, &failed_line);
    assert!(
        waited < Duration::from_secs(30),
        "failed only after {waited:?} of the 90s timeout:\n{}",
        run.stdout
    );
    // Coarse, for a loaded machine: well under the timeout all the same.
    assert!(took < Duration::from_secs(80), "apply took {took:?}");

    let error = format!(
        "Deployment {}/{deployment} did not roll out: pod {deployment}-",
        fleet.namespace
    );
    assert!(run.stderr.contains(&error), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("is Unschedulable: 0/3 nodes are available: "),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains(message), "{}", run.stderr);
    // What to do about it.
    assert!(
        run.stderr.contains("no node can run this pod"),
        "{}",
        run.stderr
    );
    assert!(
        run.stdout
            .contains("Apply stopped: every change was made, but"),
        "{}",
        run.stdout
    );
    assert!(
        !run.stderr.contains("has not rolled out after"),
        "{}",
        run.stderr
    );
    run
}

#[tokio::test]
async fn node_selector_no_node_matches_fails_fast_naming_the_scheduler_message() {
    let env = TestEnv::new("rollout-unschedulable").await;
    let fleet = FleetDir::for_test(&env);
    fleet.set_environment(
        "[agents.observer]\nplacement = { node_selector = { \"fleet.test/disk\" = \"ssd\" } }\n",
    );
    assert_fails_fast(
        &fleet,
        "agent-observer",
        "3 node(s) didn't match Pod's node affinity/selector",
    );
}

#[tokio::test]
async fn request_no_node_can_hold_fails_fast_with_insufficient_cpu() {
    let env = TestEnv::new("rollout-insufficient-cpu").await;
    let fleet = FleetDir::for_test(&env);
    fleet.set_environment(
        "[agents.devops]\nresources = { requests = { cpu = \"500\" }, limits = { cpu = \"500\" } }\n",
    );
    assert_fails_fast(&fleet, "agent-devops", "3 Insufficient cpu");
}

#[tokio::test]
async fn rollout_waiting_for_room_shows_progress_and_finishes_when_a_node_fits() {
    let env = TestEnv::new("rollout-progress").await;
    let fleet = FleetDir::for_test(&env);
    let first = fleet.apply(&[]);
    first.assert_ok("apply");
    for (deployment, replicas) in [
        ("agent-devops", 1),
        ("agent-reviewer", 1),
        ("agent-observer", 2),
    ] {
        let rolled_out = format!(
            "Deployment {}/{deployment}: rolled out, {replicas}/{replicas} ready (",
            fleet.namespace
        );
        waited_at(&first.stdout, &rolled_out);
    }

    let node_label = format!("fleet.test/{}", env.namespace);
    let _cleanup = hold_a_leaving_pod(&env, &fleet, &node_label).await;

    let (apply, reader) = apply_waiting_for_room(&fleet, &node_label);

    // A node now fits: the rollout finishes.
    let labelled = support::control_plane()
        .kubectl()
        .args(["label", "node", "kwok-node-b", &format!("{node_label}=yes")])
        .output()
        .unwrap();
    assert!(labelled.status.success(), "{labelled:?}");
    let (status, stdout, stderr) = finish_apply(apply, reader);
    assert!(status.success(), "{stdout}{stderr}");
    let rolled_out = format!(
        "Deployment {}/agent-observer: rolled out, 2/2 ready (",
        fleet.namespace
    );
    waited_at(&stdout, &rolled_out);
}

/// A rollout wait that only a signal ends: SIGTERM (a cancelled CI job)
/// ends it at once, says the changes were all made, exits 143 and releases
/// the deploy lock.
#[tokio::test]
async fn sigterm_while_waiting_for_a_rollout_ends_the_wait() {
    let env = TestEnv::new("rollout-sigterm").await;
    let fleet = FleetDir::for_test(&env);
    fleet.apply(&[]).assert_ok("apply");
    let node_label = format!("fleet.test/{}", env.namespace);
    let _cleanup = hold_a_leaving_pod(&env, &fleet, &node_label).await;
    let (apply, reader) = apply_waiting_for_room(&fleet, &node_label);

    let signalled = Instant::now();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &apply.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let (status, stdout, stderr) = finish_apply(apply, reader);
    let took = signalled.elapsed();
    assert_eq!(status.code(), Some(143), "{stdout}{stderr}");
    // Coarse, for a loaded machine: the wait had 90 s to go.
    assert!(
        took < Duration::from_secs(20),
        "exited {took:?} after SIGTERM"
    );
    assert!(
        stdout.contains(
            "Apply interrupted by SIGTERM: every change was made; rollouts were not waited for."
        ),
        "{stdout}"
    );
    assert!(stderr.contains("error: interrupted by SIGTERM"), "{stderr}");
    let leases: Api<Lease> = Api::namespaced(env.kube.clone(), &fleet.namespace);
    let holder = leases
        .get("fleet-agent-ceo")
        .await
        .unwrap()
        .spec
        .and_then(|spec| spec.holder_identity)
        .filter(|holder| !holder.is_empty());
    assert_eq!(holder, None, "the deploy lock is released");
}

/// A pod of the observer's going away nearby, held by a finalizer: the room
/// it frees might let an unschedulable pod fit, so that is not yet a
/// failure, and a rollout waiting for it goes on until room is made.
async fn hold_a_leaving_pod(env: &TestEnv, fleet: &FleetDir, node_label: &str) -> Cleanup {
    let cleanup = Cleanup {
        namespace: fleet.namespace.clone(),
        node_label: node_label.to_string(),
    };
    let pods: Api<Pod> = Api::namespaced(env.kube.clone(), &fleet.namespace);
    let leaving: Pod = serde_json::from_value(json!({
        "metadata": {
            "name": "leaving",
            "labels": { "app": "agent-observer" },
            "finalizers": ["fleet.test/hold"]
        },
        "spec": {
            "nodeSelector": { "fleet.test/no-such-node": "true" },
            // The namespace enforces the restricted Pod Security Standard.
            "securityContext": { "runAsNonRoot": true, "runAsUser": 1000, "seccompProfile": { "type": "RuntimeDefault" } },
            "containers": [{
                "name": "c", "image": "example.invalid/c:1",
                "securityContext": { "allowPrivilegeEscalation": false, "capabilities": { "drop": ["ALL"] } }
            }]
        }
    }))
    .unwrap();
    pods.create(&PostParams::default(), &leaving).await.unwrap();
    pods.delete("leaving", &DeleteParams::default())
        .await
        .unwrap();
    cleanup
}

/// Moves the observer to nodes labelled `node_label` (none is yet), starts
/// `fleet apply` and returns once it shows the observer waiting for room,
/// with the thread that gathers its stdout.
fn apply_waiting_for_room(
    fleet: &FleetDir,
    node_label: &str,
) -> (std::process::Child, std::thread::JoinHandle<String>) {
    fleet.set_environment(&format!(
        "[agents.observer]\nplacement = {{ node_selector = {{ \"{node_label}\" = \"yes\" }} }}\n"
    ));
    let (apply, seen, reader) = spawn_apply(fleet);
    wait_for_room_line(fleet, &seen);
    (apply, reader)
}

/// `fleet apply` started, its stdout's lines sent over a channel as they
/// come and gathered by the thread returned.
fn spawn_apply(
    fleet: &FleetDir,
) -> (
    std::process::Child,
    std::sync::mpsc::Receiver<String>,
    std::thread::JoinHandle<String>,
) {
    let mut apply = fleet
        .command(&["apply", "--auto-approve", "--timeout", "90s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = apply.stdout.take().unwrap();
    let (lines, seen) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            all.push_str(&line);
            all.push('\n');
            let _ = lines.send(line);
        }
        all
    });
    (apply, seen, reader)
}

/// Waits for an apply started by [`spawn_apply`] to end: how it exited,
/// its stdout and its stderr.
fn finish_apply(
    mut apply: std::process::Child,
    reader: std::thread::JoinHandle<String>,
) -> (std::process::ExitStatus, String, String) {
    let status = apply.wait().unwrap();
    let stdout = reader.join().unwrap();
    let mut stderr = String::new();
    apply
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    (status, stdout, stderr)
}

/// Waits for apply to show the observer waiting for room.
fn wait_for_room_line(fleet: &FleetDir, seen: &std::sync::mpsc::Receiver<String>) {
    let waiting = format!(
        "Deployment {}/agent-observer: rolling out, 2/2 ready: ",
        fleet.namespace
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let line = seen
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("apply to show the observer waiting for room");
        if line.starts_with(&waiting)
            && line.contains("1 pod unschedulable until terminating pods are gone")
        {
            break;
        }
    }
}

/// Lets the held pod go and takes the test's label off the node again.
struct Cleanup {
    namespace: String,
    node_label: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let control_plane = support::control_plane();
        let _ = control_plane
            .kubectl()
            .args([
                "-n",
                &self.namespace,
                "patch",
                "pod",
                "leaving",
                "--type=merge",
            ])
            .args(["-p", r#"{"metadata":{"finalizers":null}}"#])
            .output();
        let _ = control_plane
            .kubectl()
            .args([
                "label",
                "node",
                "kwok-node-b",
                &format!("{}-", self.node_label),
            ])
            .output();
    }
}
