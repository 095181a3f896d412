//! `fleet apply` waiting for rollouts on the local control plane (kwok nodes
//! with 32 cpu each, `kwok-node-a` the only `workload-type=cognitive`): a
//! rollout that can never finish (no node could ever hold its pod) stops
//! apply long before `--timeout`, naming the Deployment, the pod and the
//! scheduler's reason; one whose pods wait for room shows the scheduler's
//! reason as progress until room is made, or until a signal ends the wait.
//! Room is an extended resource of each test's own, advertised on the nodes,
//! so crowding it crowds no other test.

use std::io::{BufRead as _, BufReader, Read as _};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::{self, FleetDir, TestEnv};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use serde_json::json;

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
    eprintln!("{deployment} failed after {waited:?} of waiting (apply took {took:?})");
    assert!(
        waited < Duration::from_secs(10),
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
        run.stdout.contains("Apply stopped: ")
            && run
                .stdout
                .contains(", but 1 Deployment did not roll out (see below)"),
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
    let run = assert_fails_fast(&fleet, "agent-devops", "3 Insufficient cpu");
    // Told from the nodes: the scheduler says the same of nodes only full.
    assert!(
        run.stderr.contains(
            "3 nodes allocate less cpu than it requests (500 requested, the most any node allocates is 32)"
        ),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn rollout_waiting_for_room_shows_progress_and_finishes_when_room_is_made() {
    let env = TestEnv::new("rollout-progress").await;
    let fleet = FleetDir::for_test(&env);
    let slots = Slots::advertise(&env, 1);
    fleet.set_environment(&slots.taken_by_observer(""));
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

    let placeholder = slots.hold_the_last(&env, &fleet).await;
    let (apply, reader) = apply_waiting_for_room(&fleet, &slots);

    // Room is made: the rollout finishes.
    let pods: Api<Pod> = Api::namespaced(env.kube.clone(), &fleet.namespace);
    pods.delete(&placeholder, &DeleteParams::default())
        .await
        .unwrap();
    let (status, stdout, stderr) = finish_apply(apply, reader);
    assert!(status.success(), "{stdout}{stderr}");
    let rolled_out = format!(
        "Deployment {}/agent-observer: rolled out, 2/2 ready (",
        fleet.namespace
    );
    waited_at(&stdout, &rolled_out);
}

/// A fleet-wide image bump on a cluster with room for few more pods: each
/// surge pod waits for the room that other agents' old pods free as their
/// rollouts finish, and the bump completes (it stopped after 59 s with
/// `rollout failed: Unschedulable` when every pod that did not fit at once
/// was a failure). The room is the test's own resource, so the crowding
/// crowds no other test: four slots a node, twelve in all, for eight agents.
#[tokio::test]
async fn crowded_fleet_wide_bump_waits_for_room_and_completes() {
    let env = TestEnv::new("rollout-crowded-bump").await;
    let namespace = format!("{}-f", env.namespace);
    let slots = Slots::advertise(&env, 4);
    let mut definition = format!(
        "[fleet]\nname = \"crowded\"\nnamespace = \"{namespace}\"\n\n[defaults]\nimage = \"gcr.io/agent-ceo/agent-runtime:1.4.2\"\nnats_url = \"nats://nats.agent-system.svc:4222\"\n\n{}",
        slots.patch("defaults")
    );
    for n in 1..=8 {
        definition.push_str(&format!("\n[agents.a{n}]\ntier = \"operations\"\n"));
    }
    let fleet = FleetDir::with_definition(&namespace, &definition);
    fleet.apply(&[]).assert_ok("first apply");

    fleet.set_environment("[defaults]\nimage = \"gcr.io/agent-ceo/agent-runtime:1.4.3\"\n");
    let started = Instant::now();
    let bump = fleet.apply(&[]);
    let took = started.elapsed();
    eprintln!("the crowded bump took {took:?}");
    bump.assert_ok("the crowded bump");
    let waiting = bump
        .stdout
        .lines()
        .filter(|line| {
            line.contains("waits for room: 0/3 nodes are available: 3 Insufficient fleet.test/")
        })
        .count();
    assert!(
        waiting > 0,
        "no surge pod waited for room:\n{}",
        bump.stdout
    );
    for n in 1..=8 {
        let rolled_out = format!("Deployment {namespace}/agent-a{n}: rolled out, 1/1 ready (");
        waited_at(&bump.stdout, &rolled_out);
    }
}

/// A rollout wait that only a signal ends: SIGTERM (a cancelled CI job)
/// ends it at once, says the changes were all made, exits 143 and releases
/// the deploy lock.
#[tokio::test]
async fn sigterm_while_waiting_for_a_rollout_ends_the_wait() {
    let env = TestEnv::new("rollout-sigterm").await;
    let fleet = FleetDir::for_test(&env);
    let slots = Slots::advertise(&env, 1);
    fleet.set_environment(&slots.taken_by_observer(""));
    fleet.apply(&[]).assert_ok("apply");
    slots.hold_the_last(&env, &fleet).await;
    let (apply, reader) = apply_waiting_for_room(&fleet, &slots);

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

/// Room on the nodes that only one test's pods take: an extended resource
/// `fleet.test/<namespace>` every node advertises, removed again on drop.
struct Slots {
    resource: String,
}

const NODES: [&str; 3] = ["kwok-node-a", "kwok-node-b", "kwok-node-c"];

impl Slots {
    fn advertise(env: &TestEnv, per_node: u32) -> Slots {
        let slots = Slots {
            resource: format!("fleet.test/{}", env.namespace),
        };
        let path = slots.resource.replace('/', "~1");
        for node in NODES {
            let patch = format!(
                r#"[{{"op":"add","path":"/status/capacity/{path}","value":"{per_node}"}},{{"op":"add","path":"/status/allocatable/{path}","value":"{per_node}"}}]"#
            );
            assert!(
                slots.patch_node(node, &patch),
                "advertising {path} on {node}"
            );
        }
        slots
    }

    fn patch_node(&self, node: &str, patch: &str) -> bool {
        support::control_plane()
            .kubectl()
            .args([
                "patch",
                "node",
                node,
                "--subresource=status",
                "--type=json",
                "-p",
                patch,
            ])
            .output()
            .unwrap()
            .status
            .success()
    }

    /// The patch under `table` (`defaults`, `agents.observer`) that makes
    /// the agent's pods take one slot each.
    fn patch(&self, table: &str) -> String {
        let resource = &self.resource;
        format!(
            "[{table}.patch.Deployment.spec]\n# Old pods stay a few seconds after new ones are ready, as agents\n# that finish their work do: the room they hold is not free at once.\nminReadySeconds = 3\n\n[{table}.patch.Deployment.spec.template.spec]\ncontainers = [{{ name = \"agent\", resources = {{ requests = {{ \"{resource}\" = \"1\" }}, limits = {{ \"{resource}\" = \"1\" }} }} }}]\n"
        )
    }

    /// An environment where the observer takes a slot a pod, after `extra`.
    fn taken_by_observer(&self, extra: &str) -> String {
        format!("{extra}\n{}", self.patch("agents.observer"))
    }

    /// A pod of the test's own takes the one slot the observer's two
    /// replicas leave (one a node); returns its name.
    async fn hold_the_last(&self, env: &TestEnv, fleet: &FleetDir) -> String {
        let pods: Api<Pod> = Api::namespaced(env.kube.clone(), &fleet.namespace);
        let holder: Pod = serde_json::from_value(json!({
            "metadata": { "name": "holds-a-slot" },
            "spec": {
                // The namespace enforces the restricted Pod Security Standard.
                "securityContext": { "runAsNonRoot": true, "runAsUser": 1000, "seccompProfile": { "type": "RuntimeDefault" } },
                "containers": [{
                    "name": "c", "image": "example.invalid/c:1",
                    "resources": { "requests": { &self.resource: "1" }, "limits": { &self.resource: "1" } },
                    "securityContext": { "allowPrivilegeEscalation": false, "capabilities": { "drop": ["ALL"] } }
                }]
            }
        }))
        .unwrap();
        pods.create(&PostParams::default(), &holder).await.unwrap();
        support::eventually(
            "the slot holder to be scheduled",
            Duration::from_secs(30),
            || {
                let pods = pods.clone();
                async move {
                    let pod = pods.get("holds-a-slot").await.ok()?;
                    pod.spec?.node_name.map(|_| ())
                }
            },
        )
        .await;
        "holds-a-slot".into()
    }
}

impl Drop for Slots {
    fn drop(&mut self) {
        let path = self.resource.replace('/', "~1");
        for node in NODES {
            let patch = format!(
                r#"[{{"op":"remove","path":"/status/capacity/{path}"}},{{"op":"remove","path":"/status/allocatable/{path}"}}]"#
            );
            self.patch_node(node, &patch);
        }
    }
}

/// Bumps the observer's image, starts `fleet apply` and returns once it
/// shows the observer's surge pod waiting for room, with the thread that
/// gathers its stdout.
fn apply_waiting_for_room(
    fleet: &FleetDir,
    slots: &Slots,
) -> (std::process::Child, std::thread::JoinHandle<String>) {
    fleet.set_environment(&slots.taken_by_observer(
        "[agents.observer]\nimage = \"gcr.io/agent-ceo/agent-runtime:1.4.3\"\n",
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
            && line.contains("waits for room: 0/3 nodes are available: 3 Insufficient fleet.test/")
        {
            break;
        }
    }
}

/// The example fleet in three waves, each soaked 8 s, every agent on image
/// `tag`; `crashing` makes the devops agent's pods fail 4 s after they
/// start (kwok's chaos stage), as a broken image would.
fn in_waves(tag: &str, crashing: bool) -> String {
    let mut environment =
        "[rollout]\nwaves = [[\"observer\"], [\"devops\"], [\"reviewer\"]]\nsoak = \"8s\"\n"
            .to_string();
    for agent in ["observer", "devops", "reviewer"] {
        environment.push_str(&format!(
            "\n[agents.{agent}]\nimage = \"gcr.io/agent-ceo/agent-runtime:{tag}\"\n"
        ));
        if agent == "devops" && crashing {
            environment.push_str(
                "labels = { \"pod-container-running-failed.stage.kwok.x-k8s.io\" = \"true\" }\n\
                 annotations = { \"pod-container-running-failed.stage.kwok.x-k8s.io/delay\" = \"4000\" }\n",
            );
        }
    }
    environment
}

async fn image_of(env: &TestEnv, fleet: &FleetDir, deployment: &str) -> String {
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(env.kube.clone(), &fleet.namespace);
    let deployment = serde_json::to_value(deployments.get(deployment).await.unwrap()).unwrap();
    deployment["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn a_wave_whose_pods_crash_halts_the_rollout_and_the_rerun_after_the_fix_finishes() {
    let env = TestEnv::new("waves").await;
    let fleet = FleetDir::for_test(&env);
    fleet.set_environment(&in_waves("1.4.2", false));
    let first = fleet.apply(&[]);
    first.assert_ok("first apply, in waves");
    for wave in [
        "wave 1 of 3 (observer)",
        "wave 2 of 3 (devops)",
        "wave 3 of 3 (reviewer)",
    ] {
        assert!(first.stdout.contains(wave), "{wave}:\n{}", first.stdout);
    }
    assert!(
        first.stdout.contains("soaking 1 pod for 8s"),
        "{}",
        first.stdout
    );

    // The devops agent's new pods crash: wave 2 halts, wave 3 never starts.
    fleet.set_environment(&in_waves("1.5.0", true));
    let dir = tempfile::tempdir().unwrap();
    let summary = dir.path().join("summary");
    let output = fleet
        .command(&["apply", "--auto-approve", "--timeout", "90s"])
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_STEP_SUMMARY", &summary)
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert_eq!(output.status.code(), Some(1), "{stdout}{stderr}");
    for expected in [
        "the rollout halted in wave 2 of 3 (devops): agent-devops: pod agent-devops-",
        // kwok's chaos stage fails the pod, as a kubelet does a pod that
        // may not restart.
        " failed: container agent terminated: containerFailed: container failed (exit code 1)",
        "wave 1 (observer): runs the new definition",
        "wave 2 (devops): failed",
        "wave 3 (reviewer): not started: runs the previous definition",
    ] {
        assert!(stderr.contains(expected), "{expected}:\n{stdout}{stderr}");
    }
    assert!(
        image_of(&env, &fleet, "agent-observer")
            .await
            .ends_with(":1.5.0")
    );
    assert!(
        image_of(&env, &fleet, "agent-reviewer")
            .await
            .ends_with(":1.4.2")
    );
    let summary = std::fs::read_to_string(&summary).unwrap();
    assert!(summary.contains("| wave | agents | result |"), "{summary}");
    assert!(
        summary.contains("| 2 | devops | halted: agent-devops: pod agent-devops-"),
        "{summary}"
    );
    assert!(
        summary.contains("| 3 | reviewer | not started: runs the previous definition |"),
        "{summary}"
    );

    // Rerun unfixed: the devops wave has nothing to change, but its pods
    // still crash, so the reviewer's wave does not start.
    let unfixed = fleet.apply(&[]);
    assert_eq!(unfixed.code, 1, "{}{}", unfixed.stdout, unfixed.stderr);
    assert!(
        unfixed
            .stderr
            .contains("the rollout halted in wave 2 of 3 (devops): "),
        "{}",
        unfixed.stderr
    );
    assert!(
        unfixed
            .stderr
            .contains("wave 3 (reviewer): not started: runs the previous definition"),
        "{}",
        unfixed.stderr
    );
    assert!(
        image_of(&env, &fleet, "agent-reviewer")
            .await
            .ends_with(":1.4.2")
    );

    // Fixed: the rerun rolls out what differs, from where the fleet stands;
    // the observer, already on the new definition, is not rolled or soaked again.
    let mut fixed = in_waves("1.5.0", false);
    fixed = fixed.replace(
        "[agents.devops]\nimage = \"gcr.io/agent-ceo/agent-runtime:1.5.0\"",
        "[agents.devops]\nimage = \"gcr.io/agent-ceo/agent-runtime:1.5.1\"",
    );
    fleet.set_environment(&fixed);
    let rerun = fleet.apply(&[]);
    rerun.assert_ok("the rerun after the fix");
    // The observer's wave is only checked: its pods soaked in the halted
    // apply, and have run longer than a soak since.
    assert!(
        rerun
            .stdout
            .contains("wave 1 of 3 (observer): nothing to change; its rollouts must be done"),
        "{}",
        rerun.stdout
    );
    assert!(
        !rerun.stdout.contains("wave 1 of 3 (observer): applying")
            && !rerun.stdout.contains("soaking wave 1 again"),
        "{}",
        rerun.stdout
    );
    assert!(
        rerun.stdout.contains("wave 2 of 3 (devops)"),
        "{}",
        rerun.stdout
    );
    assert!(
        rerun.stdout.contains("wave 3 of 3 (reviewer)"),
        "{}",
        rerun.stdout
    );
    assert!(
        image_of(&env, &fleet, "agent-reviewer")
            .await
            .ends_with(":1.5.0")
    );
    fleet.assert_plan_empty();
}

#[tokio::test]
async fn an_apply_killed_between_waves_converges_on_the_rerun() {
    let env = TestEnv::new("waves-killed").await;
    let fleet = FleetDir::for_test(&env);
    fleet.set_environment(&in_waves("1.4.2", false));
    fleet.apply(&[]).assert_ok("first apply");

    // Killed while the first wave soaks: it is written, the others are not.
    fleet.set_environment(&in_waves("1.5.0", false));
    let (mut apply, seen, reader) = spawn_apply(&fleet);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !seen
        .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        .expect("apply to soak the first wave")
        .starts_with("soaking 2 pods for 8s")
    {}
    apply.kill().unwrap();
    let (status, _, _) = finish_apply(apply, reader);
    assert!(!status.success());
    assert!(
        image_of(&env, &fleet, "agent-observer")
            .await
            .ends_with(":1.5.0")
    );
    assert!(
        image_of(&env, &fleet, "agent-devops")
            .await
            .ends_with(":1.4.2")
    );

    // The rerun takes the dead apply's lock over and goes on from there.
    let rerun = fleet.apply(&[]);
    rerun.assert_ok("the rerun");
    assert!(
        rerun.stderr.contains("Took over the deploy lock"),
        "{}",
        rerun.stderr
    );
    // The observer's wave was written, but its soak never ended: it is
    // soaked again before the devops wave starts, not written again.
    assert!(
        rerun.stdout.contains(": soaking wave 1 again for 8s")
            && !rerun.stdout.contains("wave 1 of 3 (observer): applying"),
        "{}",
        rerun.stdout
    );
    assert!(
        rerun.stdout.contains("wave 2 of 3 (devops)"),
        "{}",
        rerun.stdout
    );
    fleet.assert_plan_empty();
}

#[tokio::test]
async fn a_failed_wave_is_rolled_back_with_on_failure_rollback() {
    let env = TestEnv::new("waves-rollback").await;
    let fleet = FleetDir::for_test(&env);
    let rolling_back = |environment: String| {
        environment.replace(
            "soak = \"8s\"\n",
            "soak = \"8s\"\non_failure = \"rollback\"\n",
        )
    };
    fleet.set_environment(&rolling_back(in_waves("1.4.2", false)));
    fleet.apply(&[]).assert_ok("first apply");

    fleet.set_environment(&rolling_back(in_waves("1.5.0", true)));
    let halted = fleet.apply(&[]);
    assert_eq!(halted.code, 1, "{}{}", halted.stdout, halted.stderr);
    assert!(
        halted
            .stderr
            .contains("wave 2 (devops): failed: its new definition is written, its pods are not healthy; rolled back: agent-devops back on revision 1"),
        "{}",
        halted.stderr
    );
    // The devops agent runs its previous pod template again, and its pods
    // are healthy; the definition's template is drift the next apply restores.
    assert!(
        image_of(&env, &fleet, "agent-devops")
            .await
            .ends_with(":1.4.2")
    );
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(env.kube.clone(), &fleet.namespace);
    support::eventually(
        "the rolled-back devops agent ready",
        Duration::from_secs(60),
        || async {
            let deployment =
                serde_json::to_value(deployments.get("agent-devops").await.unwrap()).unwrap();
            let status = &deployment["status"];
            (status["readyReplicas"] == 1
                && status["updatedReplicas"] == 1
                && status["replicas"] == 1)
                .then_some(())
        },
    )
    .await;
    let plan = fleet.run(&["plan"]);
    assert!(
        plan.stdout
            .contains("(changed outside fleet by fleet-rollback)"),
        "{}",
        plan.stdout
    );

    fleet.set_environment(&rolling_back(in_waves("1.5.0", false)));
    fleet.apply(&[]).assert_ok("the rerun after the fix");
    fleet.assert_plan_empty();
}
