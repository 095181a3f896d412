//! Faults injected for real on the local control plane: `fleet apply`
//! killed at random points, kube-apiserver killed and restarted or stopped
//! (SIGSTOP) mid-apply, nats-server restarted mid-apply, JetStream leaders
//! forced to change while planning. After each: fleet never hangs, says
//! clearly what failed, and a rerun converges with nothing orphaned and no
//! message lost that it was not allowed to lose.
//!
//! These tests stop and restart the servers every other test shares, so
//! they are `#[ignore]`d in the ordinary run and run alone afterwards, one
//! at a time (scripts/test: `cargo test --test it -- --ignored
//! --test-threads=1`; SERIAL keeps them apart if threads are not limited).
//! `FLEET_FAULT_ROUNDS` sets how many kills (default 20), and
//! `FLEET_FAULT_SEED` replays a run's kill points.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{self, FleetDir, Run, TestEnv, control_plane};
use serde_json::Value;

/// The apply after a fault: the one the fault stopped may not have been able
/// to release the deploy lock (its server was down), so wait for it to expire.
const RERUN: [&str; 2] = ["--lock-timeout", "60s"];

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A second stream that no round changes: it must keep every message.
const AUDIT_STREAM: &str = "\n[streams.audit]\nsubjects = [\"audit.>\"]\nstorage = \"file\"\n";
const AUDIT_MESSAGES: u64 = 25;

/// `fleet ARGS --env test` started in the background, as a deploy job runs it.
fn spawn(fleet: &FleetDir, args: &[&str]) -> Child {
    fleet
        .command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting fleet")
}

/// Waits for a child, killing it (and failing) if it runs past `limit`:
/// fleet must never hang.
fn finish(mut child: Child, limit: Duration) -> Run {
    let started = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            panic!(
                "fleet hung: still running after {limit:?}\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().unwrap();
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Sends `signal` to a component of the control plane, by its pid file.
fn signal(component: &str, signal: &str) {
    let pid_file = control_plane()
        .kubeconfig
        .parent()
        .unwrap()
        .join("pids")
        .join(format!("{component}.pid"));
    let pid = std::fs::read_to_string(&pid_file)
        .unwrap_or_else(|e| panic!("reading {}: {e}", pid_file.display()));
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.trim())
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal} {component}");
}

/// Starts again whatever of the control plane is not running.
fn restart_stopped_components() {
    let status = Command::new("bash")
        .arg(support::repo_root().join("scripts/controlplane"))
        .arg("up")
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "scripts/controlplane up after a fault");
}

/// Everything in the namespace that carries fleet's ApplySet label, as
/// `Kind/name`, and what fleet renders, the same way.
fn owned_and_rendered(fleet: &FleetDir) -> (Vec<String>, Vec<String>) {
    let applyset = fleet::ownership::applyset_id("fleet-agent-ceo", &fleet.namespace);
    let output = control_plane()
        .kubectl()
        .args([
            "get",
            "serviceaccounts,roles,rolebindings,configmaps,deployments,services,horizontalpodautoscalers,poddisruptionbudgets,networkpolicies",
            "-n",
            &fleet.namespace,
            "-l",
            &format!("applyset.kubernetes.io/part-of={applyset}"),
            "-o",
            "json",
        ])
        .output()
        .unwrap();
    assert!(output.status.success());
    let list: Value = serde_json::from_slice(&output.stdout).unwrap();
    let mut owned: Vec<String> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(kind_and_name)
        .collect();
    owned.sort();
    let rendered = fleet.run(&["render", "--format", "json"]);
    rendered.assert_ok("render");
    let rendered: Value = serde_json::from_str(&rendered.stdout).unwrap();
    let mut desired: Vec<String> = rendered["kubernetes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| {
            !matches!(
                o["kind"].as_str(),
                Some("Namespace" | "Secret" | "ServiceMonitor")
            )
        })
        .map(kind_and_name)
        .collect();
    desired.sort();
    (owned, desired)
}

/// `Kind/name` of an object's JSON.
fn kind_and_name(object: &Value) -> String {
    format!(
        "{}/{}",
        object["kind"].as_str().unwrap(),
        object["metadata"]["name"].as_str().unwrap()
    )
}

async fn audit_messages(env: &TestEnv, fleet: &FleetDir) -> u64 {
    let mut stream = env
        .jetstream
        .get_stream(format!("{}-audit", fleet.namespace))
        .await
        .expect("the audit stream exists");
    stream.info().await.unwrap().state.messages
}

/// The fleet the kill rounds deploy: the example plus an audit stream, its
/// streams renamed for this test.
fn fault_fleet(env: &TestEnv) -> FleetDir {
    let fleet = FleetDir::for_test(env);
    let definition = std::fs::read_to_string(support::repo_root().join("fleet.toml")).unwrap()
        + &AUDIT_STREAM.replace("audit", &format!("{}-audit", fleet.namespace));
    fleet.set_definition(&definition);
    fleet
}

/// Round `i`'s environment: the rounds cycle through definitions that
/// differ in an image (update), an agent (create/destroy), a stream's
/// max_age (update) and its storage (replace, which may lose the task
/// stream's messages: allowed with --allow-destroy). Rounds 3, 7, ... also
/// start from a Deployment fleet must replace (see `with_old_selector`).
fn round_environment(fleet: &FleetDir, i: u64) -> String {
    let stream = fleet.stream();
    match i % 4 {
        0 => String::new(),
        1 => format!(
            "[agents.devops]\nimage = \"gcr.io/agent-ceo/agent-runtime:1.5.{i}\"\n[agents.observer]\nenabled = false\n[streams.{stream}]\nmax_age = \"3d\"\n"
        ),
        2 => format!("[streams.{stream}]\nstorage = \"memory\"\n"),
        _ => format!(
            "[agents.reviewer]\nimage = \"gcr.io/agent-ceo/agent-runtime:1.6.{i}\"\n[streams.{stream}]\nstorage = \"memory\"\nmax_age = \"1d\"\n"
        ),
    }
}

#[tokio::test]
#[ignore = "stops the shared servers: run alone, as scripts/test does"]
async fn apply_killed_at_random_points_converges_on_the_next_run() {
    let _serial = SERIAL.lock().await;
    let rounds: u64 = std::env::var("FLEET_FAULT_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(20);
    let (mut random, seed) = support::Random::from_env("FLEET_FAULT_SEED");
    eprintln!("fault seed {seed} (FLEET_FAULT_SEED={seed} replays it)");
    let env = TestEnv::new("fault-kill").await;
    let fleet = fault_fleet(&env);
    // A killed apply cannot release the deploy lock: the next apply on this
    // machine takes it over at once, its process having ended (elsewhere
    // it would wait out the TTL, short here, with --lock-timeout).
    let apply_args = [
        "apply",
        "--auto-approve",
        "--allow-destroy",
        "--timeout",
        "120s",
        "--lock-ttl",
        "3s",
        "--lock-timeout",
        "60s",
    ];

    finish(spawn(&fleet, &apply_args), Duration::from_secs(180)).assert_ok("first apply");
    for i in 0..AUDIT_MESSAGES {
        env.jetstream
            .publish(
                format!("{}-audit.entry", fleet.namespace),
                format!("{i}").into(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
    }

    let deployments: kube::Api<k8s_openapi::api::apps::v1::Deployment> =
        kube::Api::namespaced(env.kube.clone(), &fleet.namespace);
    let mut killed_during = Vec::new();
    let mut mid_apply = 0;
    for round in 1..=rounds {
        fleet.set_environment(&round_environment(&fleet, round));
        if round % 4 == 3 {
            support::with_old_selector(&deployments, "agent-observer").await;
        }
        // Kill after a random number of lines of output (each a change made
        // or a rollout's progress; none: while planning), plus a jitter.
        let lines_before_kill = random.below(14) as usize;
        let jitter = Duration::from_millis(random.below(40));
        let (mut child, output) = support::spawn_reading(fleet.command(&apply_args));
        let mut seen = Vec::new();
        while seen.len() < lines_before_kill {
            match output.recv_timeout(Duration::from_secs(60)) {
                Ok(line) if !line.trim().is_empty() => seen.push(line),
                Ok(_) => {}
                Err(_) => break, // the apply ended first
            }
        }
        std::thread::sleep(jitter);
        let finished_first = child.try_wait().unwrap().is_some();
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        std::thread::sleep(Duration::from_millis(20));
        seen.extend(output.try_iter().filter(|l| !l.trim().is_empty()));
        if !finished_first && !seen.iter().any(|l| l.starts_with("Apply complete!")) {
            mid_apply += 1;
        }
        let delay = format!("{} lines (+{jitter:?})", seen.len());
        killed_during.push(format!(
            "round {round}: killed after {delay}, last: {}",
            seen.last().map_or("(nothing printed yet)", String::as_str)
        ));

        let rerun = finish(spawn(&fleet, &apply_args), Duration::from_secs(180));
        rerun.assert_ok(&format!(
            "apply after the kill in round {round} ({delay:?})"
        ));
        fleet.assert_plan_empty();
        let (owned, rendered) = owned_and_rendered(&fleet);
        assert_eq!(
            owned, rendered,
            "round {round}: owned objects are exactly the rendered ones"
        );
        assert_eq!(
            audit_messages(&env, &fleet).await,
            AUDIT_MESSAGES,
            "round {round}: the audit stream lost messages"
        );
    }
    eprintln!("{}", killed_during.join("\n"));
    eprintln!("{rounds} kills, {mid_apply} before apply had finished; every one converged");
    assert!(
        mid_apply * 2 >= rounds as usize,
        "most kills should land inside an apply; only {mid_apply} of {rounds} did"
    );
}

#[tokio::test]
#[ignore = "stops the shared servers: run alone, as scripts/test does"]
async fn api_server_killed_and_restarted_mid_apply() {
    let _serial = SERIAL.lock().await;
    let env = TestEnv::new("fault-apiserver").await;
    let fleet = fault_fleet(&env);

    let interrupted = kill_mid_apply(&fleet, "kube-apiserver");
    assert_failed_clearly(&interrupted);
    if interrupted.code != 0 {
        assert!(
            interrupted.stderr.contains("cannot reach") || interrupted.stderr.contains("gave up"),
            "a clear error:\n{}",
            interrupted.stderr
        );
    }
    fleet
        .apply(&RERUN)
        .assert_ok("apply after the API server came back");
    fleet.assert_plan_empty();
}

/// Starts an apply of `fleet` and SIGKILLs `component` of the control plane
/// as soon as the apply has made its first change; waits for the apply to
/// end (it must not hang), starts the component again, and returns how the
/// apply ended.
fn kill_mid_apply(fleet: &FleetDir, component: &str) -> Run {
    let (child, lines, stdout) = at_first_change(
        fleet,
        &[
            "apply",
            "--auto-approve",
            "--timeout",
            "60s",
            "--lock-ttl",
            "3s",
        ],
    );
    signal(component, "KILL");
    let run = support::finish_reading(child, lines, stdout, Duration::from_secs(90));
    restart_stopped_components();
    eprintln!(
        "{component} killed mid-apply: the apply exited {}: {}",
        run.code,
        run.stderr
            .lines()
            .find(|l| l.starts_with("error"))
            .unwrap_or("(no error)")
    );
    run
}

/// Starts `fleet ARGS` and returns once it has printed that it made its
/// first change (or has ended), with what it printed so far.
fn at_first_change(
    fleet: &FleetDir,
    args: &[&str],
) -> (Child, std::sync::mpsc::Receiver<String>, String) {
    let (child, lines) = support::spawn_reading(fleet.command(args));
    let mut stdout = String::new();
    for line in lines.iter() {
        stdout.push_str(&line);
        stdout.push('\n');
        if line.ends_with(": created") {
            break;
        }
    }
    (child, lines, stdout)
}

/// An apply that a fault stopped ended with exit 1 and an error, not a panic.
fn assert_failed_clearly(run: &Run) {
    if run.code != 0 {
        assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
        assert!(run.stderr.contains("error:"), "{}", run.stderr);
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    }
}

#[tokio::test]
#[ignore = "stops the shared servers: run alone, as scripts/test does"]
async fn api_server_stopped_for_30s_mid_apply() {
    let _serial = SERIAL.lock().await;
    let env = TestEnv::new("fault-sigstop").await;
    let fleet = fault_fleet(&env);

    let (child, lines, stdout) = at_first_change(
        &fleet,
        &[
            "apply",
            "--auto-approve",
            "--timeout",
            "20s",
            "--lock-ttl",
            "3s",
        ],
    );
    signal("kube-apiserver", "STOP");
    let stopped_at = Instant::now();
    // --timeout bounds the whole run, whatever the server does.
    let stopped = support::finish_reading(child, lines, stdout, Duration::from_secs(45));
    let gave_up_after = stopped_at.elapsed();
    std::thread::sleep(Duration::from_secs(30).saturating_sub(stopped_at.elapsed()));
    signal("kube-apiserver", "CONT");
    eprintln!(
        "kube-apiserver stopped mid-apply: the apply exited {} after {:?}: {}",
        stopped.code,
        gave_up_after,
        stopped
            .stderr
            .lines()
            .find(|l| l.starts_with("error"))
            .unwrap_or("")
    );
    assert_eq!(stopped.code, 1, "{}{}", stopped.stdout, stopped.stderr);
    assert!(
        stopped.stderr.contains("gave up after --timeout 20s")
            || stopped.stderr.contains("cannot reach"),
        "{}",
        stopped.stderr
    );
    support::eventually(
        "the API server to answer again",
        Duration::from_secs(60),
        || async {
            control_plane()
                .kubectl()
                .args(["get", "--raw", "/readyz"])
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|_| ())
        },
    )
    .await;
    fleet
        .apply(&RERUN)
        .assert_ok("apply after the API server resumed");
    fleet.assert_plan_empty();
}

#[tokio::test]
#[ignore = "stops the shared servers: run alone, as scripts/test does"]
async fn nats_server_restarted_mid_apply() {
    let _serial = SERIAL.lock().await;
    let env = TestEnv::new("fault-nats").await;
    let fleet = fault_fleet(&env);

    let interrupted = kill_mid_apply(&fleet, "nats-server");
    assert_failed_clearly(&interrupted);
    // The test's own client reconnects by itself; wait until JetStream answers.
    support::eventually(
        "JetStream to answer again",
        Duration::from_secs(30),
        || async { env.jetstream.query_account().await.ok().map(|_| ()) },
    )
    .await;
    fleet
        .apply(&RERUN)
        .assert_ok("apply after nats-server came back");
    fleet.assert_plan_empty();
}

#[tokio::test]
#[ignore = "stops the shared servers: run alone, as scripts/test does"]
async fn leader_changes_while_planning_never_plan_a_stream_as_absent() {
    let _serial = SERIAL.lock().await;
    let env = TestEnv::new("fault-leader").await;
    let fleet = FleetDir::for_test(&env);
    let cluster = &control_plane().nats_cluster_url;
    fleet.set_environment_with_nats(
        cluster,
        &format!("[streams.{}]\nreplicas = 3\n", fleet.stream()),
    );
    fleet
        .apply(&[])
        .assert_ok("apply on the three-node cluster");
    let nats = async_nats::connect(cluster.as_str()).await.unwrap();

    let mut outcomes = Vec::new();
    for round in 0..10 {
        // Alternately the stream's leader and the meta leader step down.
        let subject = if round % 2 == 0 {
            format!("$JS.API.STREAM.LEADER.STEPDOWN.{}", fleet.stream())
        } else {
            "$JS.API.META.LEADER.STEPDOWN".to_string()
        };
        let _ = nats.request(subject, "".into()).await;
        let plan = finish(
            spawn(&fleet, &["plan", "--detailed-exitcode", "--timeout", "60s"]),
            Duration::from_secs(90),
        );
        assert!(
            !plan.stdout.contains("+ jetstream") && !plan.stdout.contains("- jetstream"),
            "round {round}: a stream or consumer planned as absent during a leader change:\n{}",
            plan.stdout
        );
        assert!(
            plan.code == 0 || plan.code == 1,
            "round {round}: {}{}",
            plan.stdout,
            plan.stderr
        );
        outcomes.push(plan.code);
    }
    eprintln!("plans during leader changes exited {outcomes:?}");
    fleet.assert_plan_empty();
}
