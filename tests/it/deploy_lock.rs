//! The deploy lock against the local control plane: two applies to one
//! environment never interleave; a holder killed on this machine is taken
//! over at once, one that dies elsewhere blocks only until its lease expires; `--lock-timeout` waits for a holder that finishes;
//! `fleet unlock` frees a lock by hand; `plan` says who holds it.
//!
//! To hold a lock for as long as a test needs, a real `fleet apply` is
//! stopped (SIGSTOP) as soon as its Lease names it: from then on it holds
//! the lock without moving, like a deploy job in the middle of its work.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{FleetDir, Run, TestEnv, control_plane, eventually};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;

const LEASE: &str = "fleet-agent-ceo";

/// A `fleet apply` started in the background, its output going to files
/// (a pipe could fill up and stall it while the test waits).
struct Background {
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Background {
    fn start(fleet: &FleetDir, name: &str, args: &[&str], envs: &[(&str, &str)]) -> Background {
        let stdout = fleet.dir.path().join(format!("{name}.stdout"));
        let stderr = fleet.dir.path().join(format!("{name}.stderr"));
        let child = fleet
            .command(args)
            .envs(envs.iter().copied())
            .stdout(Stdio::from(std::fs::File::create(&stdout).unwrap()))
            .stderr(Stdio::from(std::fs::File::create(&stderr).unwrap()))
            .spawn()
            .expect("starting fleet");
        Background {
            child,
            stdout,
            stderr,
        }
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} fleet");
    }

    /// Waits for it to end; fleet must never hang.
    fn finish(mut self, limit: Duration) -> Run {
        let started = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if started.elapsed() > limit {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "fleet still running after {limit:?}\nstdout:\n{}\nstderr:\n{}",
                    std::fs::read_to_string(&self.stdout).unwrap_or_default(),
                    std::fs::read_to_string(&self.stderr).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        Run {
            code: status.code().unwrap_or(-1),
            stdout: std::fs::read_to_string(&self.stdout).unwrap(),
            stderr: std::fs::read_to_string(&self.stderr).unwrap(),
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        // A test that failed half-way leaves no process behind (stopped
        // ones included: SIGKILL ends those too).
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a GitHub Actions run would set: the holder is then the run's URL.
fn ci_run(run_id: &str) -> [(&'static str, String); 4] {
    [
        ("GITHUB_SERVER_URL", "https://github.com".to_string()),
        ("GITHUB_REPOSITORY", "o/r".to_string()),
        ("GITHUB_RUN_ID", run_id.to_string()),
        ("GITHUB_RUN_ATTEMPT", "3".to_string()),
    ]
}

fn run_url(run_id: &str) -> String {
    format!("https://github.com/o/r/actions/runs/{run_id}/attempts/3")
}

/// A run id of this test's own, so holders of parallel tests differ.
fn run_id(env: &TestEnv) -> String {
    env.stream_prefix
        .trim_matches(|c: char| !c.is_ascii_digit())
        .replace('_', "")
}

async fn holder(env: &TestEnv, fleet: &FleetDir) -> Option<String> {
    let leases: Api<Lease> = Api::namespaced(env.kube.clone(), &fleet.namespace);
    leases
        .get_opt(LEASE)
        .await
        .unwrap()
        .and_then(|lease| lease.spec?.holder_identity)
        .filter(|holder| !holder.is_empty())
}

/// Starts `fleet apply` and stops it (SIGSTOP) as soon as its Lease names
/// it: it then holds the lock, mid-apply, until it is continued or killed.
async fn stopped_holder(
    env: &TestEnv,
    fleet: &FleetDir,
    run_id: &str,
    extra: &[&str],
) -> Background {
    let mut args = vec!["apply", "--auto-approve"];
    if !extra.contains(&"--timeout") {
        args.extend(["--timeout", "90s"]);
    }
    args.extend_from_slice(extra);
    let ci = ci_run(run_id);
    let envs: Vec<(&str, &str)> = ci.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let holder_apply = Background::start(fleet, "holder", &args, &envs);
    let url = run_url(run_id);
    eventually(
        "the first apply to take the deploy lock",
        Duration::from_secs(60),
        || async {
            holder(env, fleet)
                .await
                .filter(|h| h.starts_with(&url))
                .map(|_| ())
        },
    )
    .await;
    holder_apply.signal("STOP");
    assert!(
        holder(env, fleet)
            .await
            .is_some_and(|h| h.starts_with(&url)),
        "the apply released the lock before it could be stopped: it finished too fast for this test"
    );
    holder_apply
}

/// A change for the next apply to make: a new image for every agent.
fn change_images(fleet: &FleetDir, tag: &str) {
    let mut extra = String::new();
    for agent in ["devops", "reviewer", "observer"] {
        extra.push_str(&format!(
            "[agents.{agent}]\nimage = \"gcr.io/agent-ceo/agent-runtime:{tag}\"\n\n"
        ));
    }
    fleet.set_environment(&extra);
}

/// Lines an apply prints for what it wrote.
fn writes(run: &Run) -> Vec<&str> {
    run.stdout
        .lines()
        .filter(|l| {
            [": created", ": updated", ": destroyed", ": replaced"]
                .iter()
                .any(|w| l.contains(w))
        })
        .collect()
}

/// Every object fleet owns in the namespace, with what fleet last applied
/// to it (its applied-hash) and its generation: changes when fleet writes,
/// not when controllers update status.
fn owned_objects(fleet: &FleetDir) -> BTreeMap<String, String> {
    let output = control_plane()
        .kubectl()
        .args([
            "get",
            "namespace,serviceaccounts,configmaps,secrets,deployments,services,horizontalpodautoscalers,poddisruptionbudgets,networkpolicies",
            "-n",
            &fleet.namespace,
            "-l",
            "app.kubernetes.io/managed-by=fleet",
            "-o",
            "json",
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let list: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        // Namespaces are cluster-scoped: `-n` does not narrow them to the
        // fleet's own, and other tests make theirs meanwhile.
        .filter(|item| {
            item["kind"] != "Namespace" || item["metadata"]["name"] == fleet.namespace.as_str()
        })
        .map(|item| {
            let meta = &item["metadata"];
            (
                format!("{}/{}", item["kind"], meta["name"]),
                format!(
                    "{} {}",
                    meta["annotations"]["fleet.agent.ceo/applied-hash"], meta["generation"]
                ),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_second_apply_fails_naming_the_holder_and_changes_nothing() {
    let env = TestEnv::new("lock-second-apply").await;
    let fleet = FleetDir::for_test(&env);
    fleet.apply(&[]).assert_ok("first apply");
    change_images(&fleet, "1.5.0");
    let run_id = run_id(&env);
    let first = stopped_holder(&env, &fleet, &run_id, &[]).await;

    let before = owned_objects(&fleet);
    let second = fleet.apply(&[]);
    assert_eq!(second.code, 1, "{}{}", second.stdout, second.stderr);
    assert!(
        second
            .stderr
            .contains(&format!("is held by {}", run_url(&run_id)))
            && second.stderr.contains(" since "),
        "{}",
        second.stderr
    );
    assert!(
        second.stderr.contains("nothing was changed"),
        "{}",
        second.stderr
    );
    assert!(writes(&second).is_empty(), "{}", second.stdout);
    assert_eq!(owned_objects(&fleet), before, "the second apply wrote");

    first.signal("CONT");
    let first = first.finish(Duration::from_secs(90));
    first.assert_ok("the apply holding the lock");
    assert!(!writes(&first).is_empty(), "{}", first.stdout);
    fleet.assert_plan_empty();
    assert_eq!(
        holder(&env, &fleet).await,
        None,
        "the lock was not released"
    );
}

#[tokio::test]
async fn two_first_applies_at_once_only_one_writes() {
    let env = TestEnv::new("lock-race").await;
    let fleet = FleetDir::for_test(&env);
    let args = ["apply", "--auto-approve", "--timeout", "90s"];
    let one = Background::start(&fleet, "one", &args, &[]);
    let two = Background::start(&fleet, "two", &args, &[]);
    let runs = [
        one.finish(Duration::from_secs(120)),
        two.finish(Duration::from_secs(120)),
    ];
    let writers: Vec<&Run> = runs.iter().filter(|r| !writes(r).is_empty()).collect();
    assert_eq!(writers.len(), 1, "exactly one apply writes:\n{:#?}", runs);
    writers[0].assert_ok("the apply that wrote");
    for run in runs.iter().filter(|r| writes(r).is_empty()) {
        // Either it ran into the lock, or it came after the other had
        // finished (then under the lock it found nothing to do).
        let refused = run.code == 1
            && run.stderr.contains("deploy lock")
            && run.stderr.contains("nothing was changed");
        let after = run.code == 0 && run.stdout.contains("No changes.");
        assert!(refused || after, "{run:#?}");
    }
    fleet.assert_plan_empty();
    assert_eq!(
        holder(&env, &fleet).await,
        None,
        "the lock was not released"
    );
}

#[tokio::test]
async fn a_killed_holder_on_this_machine_is_taken_over_at_once() {
    let env = TestEnv::new("lock-killed-here").await;
    let fleet = FleetDir::for_test(&env);
    fleet.apply(&[]).assert_ok("first apply");
    change_images(&fleet, "1.5.1");
    let run_id = run_id(&env);
    // A TTL no test waits out: the takeover cannot be the lock expiring.
    let ttl = ["--lock-ttl", "10m"];
    let dead = stopped_holder(&env, &fleet, &run_id, &ttl).await;
    dead.signal("KILL");
    let _ = dead.finish(Duration::from_secs(10));
    change_images(&fleet, "1.5.2");

    let next = fleet.apply(&ttl);
    next.assert_ok("apply right after the holder was killed");
    assert!(
        next.stderr.contains(&format!(
            "Took over the deploy lock from {} at once: its process (",
            run_url(&run_id)
        )) && next
            .stderr
            .contains(") has ended on this machine without releasing it"),
        "{}",
        next.stderr
    );
    assert!(!writes(&next).is_empty(), "{}", next.stdout);
    fleet.assert_plan_empty();
    assert_eq!(
        holder(&env, &fleet).await,
        None,
        "the lock was not released"
    );
}

#[tokio::test]
async fn a_killed_holder_elsewhere_blocks_until_its_lock_expires() {
    let env = TestEnv::new("lock-killed-holder").await;
    let fleet = FleetDir::for_test(&env);
    fleet.apply(&[]).assert_ok("first apply");
    change_images(&fleet, "1.5.1");
    let run_id = run_id(&env);
    let ttl = ["--lock-ttl", "3s"];
    let dead = stopped_holder(&env, &fleet, &run_id, &ttl).await;
    dead.signal("KILL");
    let killed_at = Instant::now();
    let _ = dead.finish(Duration::from_secs(10));
    // As if it had run on another machine: whether it lives cannot be told.
    let leases: Api<Lease> = Api::namespaced(env.kube.clone(), &fleet.namespace);
    let elsewhere = serde_json::json!({ "metadata": { "annotations": {
        "fleet.agent.ceo/lock-process": "another-machines-boot/4026531836/4242/100"
    } } });
    leases
        .patch(
            LEASE,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&elsewhere),
        )
        .await
        .unwrap();
    // It may have written before it was stopped: give the next apply a
    // change of its own.
    change_images(&fleet, "1.5.2");

    let blocked = fleet.apply(&ttl);
    assert_eq!(blocked.code, 1, "{}{}", blocked.stdout, blocked.stderr);
    assert!(
        blocked
            .stderr
            .contains(&format!("is held by {}", run_url(&run_id))),
        "{}",
        blocked.stderr
    );
    assert!(writes(&blocked).is_empty(), "{}", blocked.stdout);

    // The TTL and the allowance for clocks (2s), and the second the
    // server's clock is read to.
    let expired = Duration::from_secs(3 + 2 + 1);
    tokio::time::sleep(expired.saturating_sub(killed_at.elapsed())).await;
    let next = fleet.apply(&ttl);
    next.assert_ok("apply after the dead holder's lock expired");
    assert!(
        next.stderr.contains(&format!(
            "Took over the deploy lock from {}",
            run_url(&run_id)
        )),
        "{}",
        next.stderr
    );
    assert!(!writes(&next).is_empty(), "{}", next.stdout);
    fleet.assert_plan_empty();
    assert_eq!(
        holder(&env, &fleet).await,
        None,
        "the lock was not released"
    );
}

#[tokio::test]
async fn lock_timeout_waits_for_a_holder_that_finishes() {
    let env = TestEnv::new("lock-timeout-waits").await;
    let fleet = FleetDir::for_test(&env);
    fleet.apply(&[]).assert_ok("first apply");
    change_images(&fleet, "1.6.0");
    let run_id = run_id(&env);
    let first = stopped_holder(&env, &fleet, &run_id, &[]).await;

    let waiting = Background::start(
        &fleet,
        "waiting",
        &[
            "apply",
            "--auto-approve",
            "--timeout",
            "90s",
            "--lock-timeout",
            "60s",
        ],
        &[],
    );
    // Long enough for it to find the lock held and start waiting.
    tokio::time::sleep(Duration::from_secs(3)).await;
    first.signal("CONT");
    first
        .finish(Duration::from_secs(90))
        .assert_ok("the apply holding the lock");

    let waited = waiting.finish(Duration::from_secs(90));
    waited.assert_ok("the apply waiting for the lock");
    assert!(
        waited.stderr.contains(&format!(
            "Waiting up to 1m0s (--lock-timeout) for the deploy lock, held by {}",
            run_url(&run_id)
        )),
        "{}",
        waited.stderr
    );
    // It planned once it held the lock, so after the first apply's writes.
    assert!(waited.stdout.contains("No changes."), "{}", waited.stdout);
    assert_eq!(
        holder(&env, &fleet).await,
        None,
        "the lock was not released"
    );
}

#[tokio::test]
async fn plan_shows_a_held_lock_and_unlock_frees_it() {
    let env = TestEnv::new("lock-plan-unlock").await;
    let fleet = FleetDir::for_test(&env);
    fleet.apply(&[]).assert_ok("first apply");
    change_images(&fleet, "1.7.0");
    let run_id = run_id(&env);
    let url = run_url(&run_id);
    let dead = stopped_holder(&env, &fleet, &run_id, &[]).await;
    dead.signal("KILL");
    let _ = dead.finish(Duration::from_secs(10));

    let plan = fleet.run(&["plan"]);
    plan.assert_ok("plan");
    assert!(
        plan.stdout
            .starts_with(&format!("Deploy lock: held by {url} (")),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout.contains(" since ") && plan.stdout.contains("`fleet apply` fails"),
        "{}",
        plan.stdout
    );
    let json = fleet.run(&["plan", "--format", "json"]);
    json.assert_ok("plan --format json");
    let json: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(json["lock"]["holder"], url.as_str(), "{json:#}");
    assert_eq!(json["lock"]["expired"], false, "{json:#}");
    assert_eq!(json["lock"]["ttl_seconds"], 30, "{json:#}");
    assert!(json["lock"]["since"].is_string(), "{json:#}");
    let markdown = fleet.run(&["plan", "--format", "markdown"]);
    markdown.assert_ok("plan --format markdown");
    assert!(
        markdown
            .stdout
            .contains(&format!("> **Deploy lock:** held by {url} (")),
        "{}",
        markdown.stdout
    );

    let refused = fleet.run(&["unlock"]);
    assert_eq!(refused.code, 1, "{}{}", refused.stdout, refused.stderr);
    assert!(refused.stdout.contains(&url), "{}", refused.stdout);
    assert!(refused.stderr.contains("--yes"), "{}", refused.stderr);
    assert!(holder(&env, &fleet).await.is_some(), "unlock without --yes");

    let unlocked = fleet.run(&["unlock", "--yes"]);
    unlocked.assert_ok("unlock --yes");
    assert!(
        unlocked.stdout.contains("Deploy lock removed."),
        "{}",
        unlocked.stdout
    );
    assert_eq!(holder(&env, &fleet).await, None);
    let plan = fleet.run(&["plan", "--format", "json"]);
    let plan: serde_json::Value = serde_json::from_str(&plan.stdout).unwrap();
    assert!(plan.get("lock").is_none(), "{plan:#}");
    let again = fleet.run(&["unlock", "--yes"]);
    again.assert_ok("unlock with no lock held");
    assert!(
        again.stdout.contains("No deploy lock is held"),
        "{}",
        again.stdout
    );

    // An apply that is refused after planning (no terminal to confirm on)
    // releases the lock too.
    change_images(&fleet, "1.7.1");
    let unconfirmed = fleet.run(&["apply"]);
    assert_eq!(unconfirmed.code, 1, "{}", unconfirmed.stderr);
    assert!(
        unconfirmed.stderr.contains("--auto-approve"),
        "{}",
        unconfirmed.stderr
    );
    assert_eq!(
        holder(&env, &fleet).await,
        None,
        "a refused apply kept the lock"
    );

    // Nothing waits for the dead holder's TTL any more.
    fleet.apply(&[]).assert_ok("apply after unlock");
    fleet.assert_plan_empty();
}

#[tokio::test]
async fn an_apply_that_gives_up_releases_the_lock() {
    let env = TestEnv::new("lock-timeout-releases").await;
    let fleet = FleetDir::for_test(&env);
    fleet.apply(&[]).assert_ok("first apply");
    change_images(&fleet, "1.8.0");
    let run_id = run_id(&env);
    // Stopped past its --timeout: once continued, it gives up at once,
    // dropping its work with the lock held.
    let stuck = stopped_holder(&env, &fleet, &run_id, &["--timeout", "3s"]).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    stuck.signal("CONT");
    let gave_up = stuck.finish(Duration::from_secs(30));
    assert_eq!(gave_up.code, 1, "{}{}", gave_up.stdout, gave_up.stderr);
    assert!(
        gave_up.stderr.contains("gave up after --timeout 3s"),
        "{}",
        gave_up.stderr
    );
    assert_eq!(
        holder(&env, &fleet).await,
        None,
        "the lock was not released:\n{}{}",
        gave_up.stdout,
        gave_up.stderr
    );
    fleet.apply(&[]).assert_ok("the next apply");
    fleet.assert_plan_empty();
}
