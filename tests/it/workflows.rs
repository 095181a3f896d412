//! The example GitHub workflows (examples/github/), run by act on this
//! machine against the local control plane, as a repository that copied
//! them would run them: the pull-request plan comments each environment's
//! plan and fails on a blocked change, the deploy applies staging and then
//! production, and the next plan is empty, edited into the same comments.
//!
//! act runs the jobs' steps on the host (`-P ubuntu-latest=-self-hosted`).
//! Our action (`agent-ceo/fleet@v1`) is this repository's action.yml, and
//! every fleet step runs the binary this test was built with (on PATH, of
//! the action's version). The remote actions the workflows use are mapped
//! to the stand-ins in tests/stand-ins with act's `--local-repository`,
//! since GitHub cannot be reached from here; `actions/checkout` is act's own
//! copy of the repository. act is built by `scripts/controlplane act` if it
//! is missing: a test that cannot run it fails.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{ADMIN_CONTEXT, NatsServer, control_plane, repo_root};
use serde_json::{Value, json};

/// A whole act run may take this long before the test gives up on it.
const ACT_TIMEOUT: Duration = Duration::from_secs(300);

/// The repository a platform engineer would have: the example fleet with
/// two environments on the local control plane, and the example workflows
/// copied into .github/workflows.
struct Repository {
    root: tempfile::TempDir,
    namespaces: Vec<String>,
}

impl Repository {
    fn new(environments: &[(&str, &str, &str)]) -> Repository {
        let mut repository = Repository::bare();
        let repo = repository.repo();
        let copy = |from: &str, to: &str| {
            let to = repo.join(to);
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(repo_root().join(from), &to)
                .unwrap_or_else(|err| panic!("copying {from}: {err}"));
        };
        copy("fleet.toml", "fleet.toml");
        for file in std::fs::read_dir(repo_root().join("config")).unwrap() {
            let name = file.unwrap().file_name().into_string().unwrap();
            copy(&format!("config/{name}"), &format!("config/{name}"));
        }
        copy(
            "examples/github/plan.yml",
            ".github/workflows/fleet-plan.yml",
        );
        copy(
            "examples/github/deploy.yml",
            ".github/workflows/fleet-deploy.yml",
        );
        let mut namespaces = Vec::new();
        for (name, namespace, nats_url) in environments {
            let text = format!(
                "[environment]\nkube_context = \"{ADMIN_CONTEXT}\"\nnamespace = \"{namespace}\"\nnats_url = \"{nats_url}\"\n\n[defaults]\nimage = \"gcr.io/agent-ceo/agent-runtime:1.4.2\"\n"
            );
            std::fs::create_dir_all(repo.join("environments")).unwrap();
            std::fs::write(repo.join(format!("environments/{name}.toml")), text).unwrap();
            namespaces.push(namespace.to_string());
        }
        commit(&repo, "the example fleet and workflows");
        repository.namespaces = namespaces;
        repository
    }

    /// An empty repository (not yet committed), beside our action and the
    /// directories the stand-ins keep what they did in.
    fn bare() -> Repository {
        let root = tempfile::tempdir().unwrap();
        // Our action as `uses: agent-ceo/fleet@v1` finds it: action.yml, and
        // Cargo.toml for the version it wants.
        let action = root.path().join("action");
        std::fs::create_dir(&action).unwrap();
        for file in ["action.yml", "Cargo.toml"] {
            std::fs::copy(repo_root().join(file), action.join(file)).unwrap();
        }
        for dir in ["repo", "home", "act", "artifacts", "releases"] {
            std::fs::create_dir(root.path().join(dir)).unwrap();
        }
        Repository {
            root,
            namespaces: Vec::new(),
        }
    }

    fn repo(&self) -> PathBuf {
        self.root.path().join("repo")
    }

    /// The pull request's comments, as the github-script stand-in keeps them.
    fn comments(&self) -> Vec<Value> {
        let path = self.root.path().join("comments.json");
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).unwrap(),
            Err(_) => vec![],
        }
    }

    fn comment(&self, environment: &str) -> Value {
        let marker = format!("<!-- fleet-plan:{environment} -->");
        let comments = self.comments();
        let ours: Vec<&Value> = comments
            .iter()
            .filter(|c| c["body"].as_str().unwrap().starts_with(&marker))
            .collect();
        assert_eq!(
            ours.len(),
            1,
            "one comment for {environment}: {comments:#?}"
        );
        ours[0].clone()
    }

    /// The JSON plan the upload-artifact stand-in kept for `environment`.
    fn plan_artifact(&self, environment: &str) -> Value {
        let path = self.root.path().join(format!(
            "artifacts/fleet-plan-{environment}/{environment}.plan.json"
        ));
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|err| panic!("reading the artifact {}: {err}", path.display()));
        serde_json::from_str(&text).unwrap()
    }

    /// Runs `workflow` for `event` (with `payload` as the event) under act,
    /// with the fleet under test on PATH.
    fn act(&self, event: &str, workflow: &str, payload: &Value) -> ActRun {
        self.act_with(event, workflow, payload, Runner::default())
    }

    /// [`Repository::act`] on a runner set up as `runner` says.
    fn act_with(&self, event: &str, workflow: &str, payload: &Value, runner: Runner) -> ActRun {
        let root = self.root.path();
        let event_file = root.join(format!("{event}.json"));
        std::fs::write(&event_file, payload.to_string()).unwrap();
        let stand_ins = repo_root().join("tests/stand-ins");
        let fleet = Path::new(env!("CARGO_BIN_EXE_fleet"));
        let path = std::env::join_paths(
            std::iter::once(fleet.parent().unwrap().to_path_buf())
                .filter(|_| !runner.without_fleet)
                .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap())),
        )
        .unwrap();
        let kubeconfig = std::fs::read_to_string(&control_plane().kubeconfig).unwrap();

        let mut command = Command::new(act());
        command
            .current_dir(self.repo())
            .arg(event)
            .args(["-W", &format!(".github/workflows/{workflow}")])
            .arg("-e")
            .arg(&event_file)
            .args(["-P", "ubuntu-latest=-self-hosted", "--json"])
            .args(["--no-cache-server", "--container-daemon-socket", "-"])
            .arg("--action-cache-path")
            .arg(root.join("act"))
            .arg("--local-repository")
            .arg(format!(
                "agent-ceo/fleet@v1={}",
                root.join("action").display()
            ));
        for (action, stand_in) in [
            ("actions/github-script@v7", "github-script"),
            ("actions/upload-artifact@v4", "upload-artifact"),
            ("actions/cache@v4", "cache"),
            ("actions/download-artifact@v4", "download-artifact"),
            ("softprops/action-gh-release@v2", "action-gh-release"),
        ] {
            command
                .arg("--local-repository")
                .arg(format!("{action}={}", stand_ins.join(stand_in).display()));
        }
        // The secret as GitHub would hold it: the kubeconfig's text.
        command.arg("-s").arg(format!("KUBECONFIG={kubeconfig}"));
        // act hands the host's environment to the steps: only what a runner
        // would have, and where the stand-ins keep what they did. A HOME of
        // its own keeps any ~/.actrc out.
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy().into_owned();
            if name == "KUBECONFIG"
                || name.starts_with("FLEET_")
                || name.starts_with("GITHUB_")
                || name.starts_with("RUNNER_")
                || name.starts_with("ACTIONS_")
                || name.starts_with("XDG_")
            {
                command.env_remove(name);
            }
        }
        command
            .env("PATH", path)
            .env("HOME", root.join("home"))
            .env("NO_COLOR", "1")
            .env("FLEET_TEST_COMMENTS", root.join("comments.json"))
            .env("FLEET_TEST_ARTIFACTS", root.join("artifacts"))
            .env("FLEET_TEST_RELEASES", root.join("releases"))
            .args(&runner.args)
            .envs(runner.env)
            .stdin(Stdio::null());
        let (code, stdout, stderr) =
            run_with_timeout(command, runner.timeout.unwrap_or(ACT_TIMEOUT));
        // act's whole log, for a failure's reader (the messages show a tail).
        static RUNS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let log =
            Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("workflows-{n}-{event}.jsonl"));
        std::fs::write(&log, format!("{stdout}{stderr}")).unwrap();
        eprintln!(
            "act {event} {workflow}: exit {code}, log in {}",
            log.display()
        );
        let entries = stdout
            .lines()
            .chain(stderr.lines())
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .collect();
        ActRun {
            code,
            entries,
            stderr,
        }
    }
}

impl Drop for Repository {
    fn drop(&mut self) {
        for namespace in &self.namespaces {
            let _ = control_plane()
                .kubectl()
                .args(["delete", "namespace", namespace, "--wait=false"])
                .args(["--ignore-not-found"])
                .output();
        }
    }
}

/// Makes `repo` a git repository on `main` with one commit of what it
/// holds: act takes the commit, branch and repository name from git.
fn commit(repo: &Path, message: &str) {
    for args in [
        &["init", "-q", "-b", "main"][..],
        &[
            "remote",
            "add",
            "origin",
            "https://github.com/acme/agents.git",
        ],
        &["add", "-A"],
        &[
            "-c",
            "user.name=fleet test",
            "-c",
            "user.email=test@fleet.invalid",
            "commit",
            "-q",
            "-m",
            message,
        ],
    ] {
        let status = Command::new("git")
            .args(args)
            .current_dir(repo)
            .status()
            .expect("running git");
        assert!(status.success(), "git {args:?} in the test repository");
    }
}

/// act, built (once, cached under target/controlplane/bin) if missing.
fn act() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let status = Command::new("bash")
                .arg(repo_root().join("scripts/controlplane"))
                .arg("act")
                .status()
                .expect("running scripts/controlplane act");
            assert!(
                status.success(),
                "could not build act with `scripts/controlplane act` (it needs Go and the Go module proxy)"
            );
            control_plane().bin_dir.join("act")
        })
        .clone()
}

fn run_with_timeout(mut command: Command, timeout: Duration) -> (i32, String, String) {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting act");
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "act did not finish within {timeout:?}; its log so far:\n{}",
                out.join().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    (
        status.code().unwrap_or(-1),
        out.join().unwrap(),
        err.join().unwrap(),
    )
}

/// How a run's runner differs from the usual one.
#[derive(Default)]
struct Runner {
    /// The fleet under test is not on PATH: the action must find its own.
    without_fleet: bool,
    /// More arguments for act, e.g. `--matrix`.
    args: Vec<String>,
    /// More environment for the steps.
    env: Vec<(String, String)>,
    /// Instead of [`ACT_TIMEOUT`].
    timeout: Option<Duration>,
}

/// What act logged (`--json`: one object per line, with the job, matrix,
/// step, result, outputs and step summaries as fields).
struct ActRun {
    code: i32,
    entries: Vec<Value>,
    stderr: String,
}

/// A job of the run: its id, and its matrix environment if it has one.
#[derive(Clone, Copy)]
struct Job<'a>(&'a str, Option<&'a str>);

impl ActRun {
    fn of<'a>(&'a self, job: Job<'a>) -> impl Iterator<Item = (usize, &'a Value)> + 'a {
        self.entries.iter().enumerate().filter(move |(_, e)| {
            e["jobID"] == job.0
                && job
                    .1
                    .is_none_or(|environment| e["matrix"]["environment"] == environment)
        })
    }

    /// The job's log as act prints it, for failure messages.
    fn log(&self, job: Job) -> String {
        let lines: Vec<&str> = self
            .of(job)
            .filter_map(|(_, e)| e["msg"].as_str().map(str::trim_end))
            .collect();
        let skip = lines.len().saturating_sub(150);
        lines[skip..].join("\n")
    }

    /// Whether a line of the job's log contains `text`.
    fn says(&self, job: Job, text: &str) -> bool {
        self.of(job)
            .any(|(_, e)| e["msg"].as_str().is_some_and(|m| m.contains(text)))
    }

    fn all_logs(&self) -> String {
        let lines: Vec<&str> = self
            .entries
            .iter()
            .filter_map(|e| e["msg"].as_str().map(str::trim_end))
            .collect();
        let skip = lines.len().saturating_sub(300);
        format!("{}\nstderr:\n{}", lines[skip..].join("\n"), self.stderr)
    }

    /// How the job ended. act keeps one result for all of a matrix's jobs
    /// (a failed one makes the others' `failure` too), so a matrix job's
    /// own result is whether any of its steps failed.
    fn result(&self, job: Job) -> String {
        let ended = self
            .of(job)
            .filter_map(|(_, e)| e["jobResult"].as_str())
            .last()
            .unwrap_or_else(|| {
                panic!(
                    "job {} {:?} did not run:\n{}",
                    job.0,
                    job.1,
                    self.all_logs()
                )
            });
        if job.1.is_none() {
            return ended.to_string();
        }
        let failed = self.of(job).any(|(_, e)| e["stepResult"] == "failure");
        if failed { "failure" } else { "success" }.to_string()
    }

    fn assert_result(&self, job: Job, expected: &str) {
        let result = self.result(job);
        assert_eq!(
            result,
            expected,
            "job {} {:?}:\n{}",
            job.0,
            job.1,
            self.log(job)
        );
    }

    /// The last value the job's steps gave the output `name` (the action's
    /// own outputs are set after those of its inner steps).
    fn output(&self, job: Job, name: &str) -> String {
        self.of(job)
            .filter(|(_, e)| e["command"] == "set-output" && e["name"] == name)
            .filter_map(|(_, e)| e["arg"].as_str())
            .last()
            .unwrap_or_else(|| panic!("no output {name}:\n{}", self.log(job)))
            .to_string()
    }

    /// The step summaries the job's steps wrote.
    fn summaries(&self, job: Job) -> Vec<String> {
        self.of(job)
            .filter(|(_, e)| e["command"] == "summary")
            .filter_map(|(_, e)| e["content"].as_str().map(str::to_string))
            .collect()
    }

    fn first(&self, job: Job) -> usize {
        self.of(job).next().expect("the job ran").0
    }

    fn last(&self, job: Job) -> usize {
        self.of(job).last().expect("the job ran").0
    }
}

fn pull_request() -> Value {
    json!({
        "action": "synchronize",
        "number": 7,
        "pull_request": {
            "number": 7,
            "head": { "ref": "more-agents", "sha": "5e1f0c0ffee0000000000000000000000000cafe",
                      "repo": { "full_name": "acme/agents" } },
            "base": { "ref": "main", "repo": { "full_name": "acme/agents" } }
        },
        "repository": { "full_name": "acme/agents", "name": "agents", "owner": { "login": "acme" } }
    })
}

fn push_to_main() -> Value {
    json!({
        "ref": "refs/heads/main",
        "before": "0000000000000000000000000000000000000000",
        "after": "5e1f0c0ffee0000000000000000000000000cafe",
        "repository": { "full_name": "acme/agents", "name": "agents", "owner": { "login": "acme" },
                        "default_branch": "main" }
    })
}

fn count(summary: &Value, what: &str) -> u64 {
    summary[what]
        .as_u64()
        .unwrap_or_else(|| panic!("{what} in {summary}"))
}

#[tokio::test]
async fn plan_comments_each_environment_deploy_applies_staging_then_production() {
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.is_ok_and(|o| o.status.success()),
        "node is needed to run the github-script stand-in"
    );
    act();
    // Each environment its own NATS server (the stream names are the
    // fleet's, the same in both) and its own namespace, created by fleet.
    let staging_nats = NatsServer::start(&[]).await;
    let production_nats = NatsServer::start(&[]).await;
    let unique = std::process::id();
    let staging_ns = format!("t-workflows-{unique}-staging");
    let production_ns = format!("t-workflows-{unique}-production");
    let repository = Repository::new(&[
        ("staging", &staging_ns, &staging_nats.url),
        ("production", &production_ns, &production_nats.url),
    ]);
    let staging = Job("plan", Some("staging"));
    let production = Job("plan", Some("production"));

    // Someone made a stream of the fleet's name by hand in production: a
    // blocked change, which fails production's plan check.
    let nats = async_nats::connect(&production_nats.url).await.unwrap();
    let jetstream = async_nats::jetstream::new(nats);
    jetstream
        .create_stream(async_nats::jetstream::stream::Config {
            name: "agent-tasks".into(),
            subjects: vec!["tasks.>".into()],
            ..Default::default()
        })
        .await
        .unwrap();

    let plan = repository.act("pull_request", "fleet-plan.yml", &pull_request());
    assert_ne!(plan.code, 0, "a blocked plan fails the workflow");
    plan.assert_result(Job("validate", None), "success");
    plan.assert_result(staging, "success");
    plan.assert_result(production, "failure");

    // Staging: the plan, with its counts, in the comment, the summary and
    // the outputs, all agreeing with the JSON artifact.
    let artifact = repository.plan_artifact("staging");
    let add = count(&artifact["summary"], "add");
    assert!(add >= 20, "the first plan creates the fleet: {artifact}");
    assert_eq!(plan.output(staging, "add"), add.to_string());
    assert_eq!(plan.output(staging, "has-changes"), "true");
    assert_eq!(plan.output(staging, "blocked"), "0");
    assert_eq!(
        plan.output(staging, "exitcode"),
        "2",
        "changes: exit code 2"
    );
    let comment = repository.comment("staging");
    let body = comment["body"].as_str().unwrap();
    let headline = format!("**Plan: {add} to add, 0 to change, 0 to destroy.**");
    assert!(
        body.contains("### fleet plan: agent-ceo (staging)") && body.contains(&headline),
        "{body}"
    );
    assert!(body.contains("#### agent `devops`"), "{body}");
    assert!(
        body.contains("Plan of 5e1f0c0 for environment `staging`"),
        "{body}"
    );
    assert!(body.len() < 65_536, "a comment holds 65,536 characters");
    let summaries = plan.summaries(staging);
    assert!(
        summaries
            .iter()
            .any(|s| s.starts_with("### fleet plan: agent-ceo (staging)") && s.contains(&headline)),
        "the step summary: {summaries:#?}"
    );

    // Production: blocked, said in the comment, the outputs and the log.
    let comment = repository.comment("production");
    let body = comment["body"].as_str().unwrap();
    let blocked = plan.output(production, "blocked");
    assert_ne!(blocked, "0");
    assert!(
        body.contains(&format!("**{blocked} blocked change(s)"))
            && body.contains("jetstream stream agent-tasks"),
        "{body}"
    );
    // The plan itself worked (exit code 2: changes); the blocked change is
    // what failed the step. (Its annotations are not checked here: act runs
    // host steps on a pty and drops what a failing step printed last;
    // tests/github_actions.rs checks them.)
    assert_eq!(plan.output(production, "exitcode"), "2");
    assert!(
        plan.of(production)
            .any(|(_, e)| e["stepID"] == json!(["plan", "run"]) && e["stepResult"] == "failure"),
        "the action's fleet step failed:\n{}",
        plan.log(production)
    );
    repository.plan_artifact("production");

    // The stream goes; the deploy applies staging, then production.
    jetstream.delete_stream("agent-tasks").await.unwrap();
    let deploy = repository.act("push", "fleet-deploy.yml", &push_to_main());
    let (staging_job, production_job) = (Job("staging", None), Job("production", None));
    assert_eq!(deploy.code, 0, "{}", deploy.all_logs());
    deploy.assert_result(staging_job, "success");
    deploy.assert_result(production_job, "success");
    assert!(
        deploy.last(staging_job) < deploy.first(production_job),
        "production starts once staging is done"
    );
    for (job, environment) in [(staging_job, "staging"), (production_job, "production")] {
        let summaries = deploy.summaries(job);
        assert!(
            summaries.iter().any(|s| s.starts_with(&format!(
                "### fleet apply: Apply complete! Resources: {add} added, 0 changed, 0 destroyed.\n\n\
                 | wave | agents | result |\n|---|---|---|\n\
                 | 1 | observer | runs the new definition |\n\
                 | 2 | devops | runs the new definition |\n\
                 | 3 | reviewer | runs the new definition |\n\n\
                 ### fleet plan: agent-ceo ({environment})"
            ))),
            "{environment}'s step summary: {summaries:#?}"
        );
        assert_eq!(deploy.output(job, "failed"), "0");
        assert!(
            deploy.says(job, "No NATS_CREDS secret: connecting without credentials"),
            "{}",
            deploy.log(job)
        );
    }
    for namespace in [&staging_ns, &production_ns] {
        let deployments = control_plane()
            .kubectl()
            .args(["get", "deployments", "-n", namespace, "-o", "name"])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&deployments.stdout)
                .lines()
                .collect::<Vec<_>>(),
            [
                "deployment.apps/agent-devops",
                "deployment.apps/agent-observer",
                "deployment.apps/agent-reviewer"
            ],
            "in {namespace}"
        );
    }

    // The next push's plan is empty, edited into the same two comments.
    let plan = repository.act("pull_request", "fleet-plan.yml", &pull_request());
    assert_eq!(plan.code, 0, "{}", plan.all_logs());
    for (job, environment) in [(staging, "staging"), (production, "production")] {
        assert_eq!(plan.output(job, "has-changes"), "false");
        assert_eq!(plan.output(job, "exitcode"), "0");
        let comment = repository.comment(environment);
        assert_eq!(comment["updates"], 1, "edited, not added: {comment}");
        let body = comment["body"].as_str().unwrap();
        assert!(body.contains("**No changes.**"), "{body}");
        assert_eq!(
            count(&repository.plan_artifact(environment)["summary"], "add"),
            0
        );
    }
    assert_eq!(repository.comments().len(), 2);
}

/// fleet's own release workflow, run on a tag of fleet's source, builds and
/// packages fleet for this machine's target with SHA256SUMS; the action,
/// with no fleet on PATH, downloads that release, checks it against
/// SHA256SUMS and runs it; an archive whose checksum is not the listed one
/// fails the step and is never run.
#[test]
fn the_release_is_built_and_the_action_runs_it_only_when_its_checksum_holds() {
    act();
    let version = env!("CARGO_PKG_VERSION");
    let target = "x86_64-unknown-linux-gnu";
    let asset = format!("fleet-v{version}-{target}.tar.gz");

    // fleet's source as it stands, committed and tagged as a release would be.
    let source = Repository::bare();
    let listed = Command::new("git")
        // Tracked and new files alike: the working tree under test.
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ])
        .current_dir(repo_root())
        .output()
        .unwrap();
    for file in listed.stdout.split(|b| *b == 0).filter(|f| !f.is_empty()) {
        let file = Path::new(std::str::from_utf8(file).unwrap());
        let to = source.repo().join(file);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        // A file deleted but not yet committed is not part of the source.
        let _ = std::fs::copy(repo_root().join(file), &to);
    }
    commit(&source.repo(), "fleet");
    let tag = format!("v{version}");
    let tagged = Command::new("git")
        .args(["tag", &tag])
        .current_dir(source.repo())
        .status()
        .unwrap();
    assert!(tagged.success());
    let home = std::env::var("HOME").unwrap();
    let cargo_home = std::env::var("CARGO_HOME").unwrap_or(format!("{home}/.cargo"));
    let rustup_home = std::env::var("RUSTUP_HOME").unwrap_or(format!("{home}/.rustup"));
    let released = source.act_with(
        "push",
        "release.yml",
        &json!({ "ref": format!("refs/tags/{tag}"), "repository": { "full_name": "agent-ceo/fleet", "name": "fleet", "owner": { "login": "agent-ceo" } } }),
        Runner {
            without_fleet: true,
            // The one target this machine builds; the others need their runners.
            args: vec!["--matrix".into(), format!("target:{target}")],
            env: vec![
                ("CARGO_HOME".into(), cargo_home),
                ("RUSTUP_HOME".into(), rustup_home),
                // Kept between runs: a cold release build takes minutes.
                (
                    "CARGO_TARGET_DIR".into(),
                    repo_root().join("target/release-under-act").display().to_string(),
                ),
            ],
            timeout: Some(Duration::from_secs(1800)),
        },
    );
    assert_eq!(released.code, 0, "{}", released.all_logs());
    let release = source.root.path().join("releases").join(&tag);
    for file in [asset.as_str(), "SHA256SUMS"] {
        assert!(release.join(file).is_file(), "the release has no {file}");
    }
    let sums = std::fs::read_to_string(release.join("SHA256SUMS")).unwrap();
    assert!(sums.trim_end().ends_with(&format!("  {asset}")), "{sums}");

    // The release served as GitHub would, and a workflow that uses the
    // action on a runner without fleet.
    let server = ReleaseServer::start(source.root.path().join("releases"));
    let user = Repository::new(&[]);
    let workflow = format!(
        "name: check\non: push\njobs:\n  check:\n    runs-on: ubuntu-latest\n    steps:\n      - uses: actions/checkout@v4\n      - uses: agent-ceo/fleet@v1\n        with:\n          command: validate\n          release-url: {}\n",
        server.url
    );
    std::fs::write(user.repo().join(".github/workflows/check.yml"), workflow).unwrap();
    let without_fleet = || Runner {
        without_fleet: true,
        ..Runner::default()
    };
    let checked = user.act_with("push", "check.yml", &push_to_main(), without_fleet());
    assert_eq!(checked.code, 0, "{}", checked.all_logs());
    let job = Job("check", None);
    assert!(
        checked.says(job, &format!("Using the released fleet {version}")),
        "{}",
        checked.log(job)
    );
    assert!(
        checked.says(job, "fleet.toml is valid"),
        "{}",
        checked.log(job)
    );

    // The archive is not the one the release lists: the step fails, and
    // fleet is neither run nor built.
    let mut tampered = std::fs::read(release.join(&asset)).unwrap();
    tampered.extend_from_slice(b"\0");
    std::fs::write(release.join(&asset), tampered).unwrap();
    let refused = user.act_with("push", "check.yml", &push_to_main(), without_fleet());
    assert_ne!(refused.code, 0, "{}", refused.all_logs());
    assert!(
        refused.says(job, "but its release's SHA256SUMS lists"),
        "{}",
        refused.log(job)
    );
    assert!(
        !refused.says(job, "fleet.toml is valid"),
        "{}",
        refused.log(job)
    );
    assert!(!refused.says(job, "building it from the action's source"));
}

/// A directory served over HTTP on loopback, as a releases page serves its
/// assets: `GET /<tag>/<file>`.
struct ReleaseServer {
    url: String,
}

impl ReleaseServer {
    fn start(dir: PathBuf) -> ReleaseServer {
        use std::io::{BufRead as _, BufReader, Write as _};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                // The request line, then its headers up to the blank line
                // (all read, so that closing sends no reset).
                let mut reader = BufReader::new(&stream);
                let mut request = String::new();
                let _ = reader.read_line(&mut request);
                let mut header = String::from("-");
                while !header.trim().is_empty() {
                    header.clear();
                    if reader.read_line(&mut header).unwrap_or(0) == 0 {
                        break;
                    }
                }
                let path = request
                    .split(' ')
                    .nth(1)
                    .unwrap_or("/")
                    .trim_start_matches('/');
                let file = (!path.contains(".."))
                    .then(|| std::fs::read(dir.join(path)).ok())
                    .flatten();
                let _ = match file {
                    Some(body) => stream
                        .write_all(
                            format!(
                                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                                body.len()
                            )
                            .as_bytes(),
                        )
                        .and_then(|()| stream.write_all(&body)),
                    None => stream.write_all(
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    ),
                };
            }
        });
        ReleaseServer { url }
    }
}
