//! fleet inside a GitHub Actions step (`GITHUB_ACTIONS=true`): the plan in
//! the step summary, the counts in the step outputs, annotations for what is
//! blocked, log groups, every credential masked, and no secret in any of it.

use std::path::PathBuf;
use std::process::Command;

use crate::support::{FleetDir, NatsServer, Run, TestEnv};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::PostParams;
use serde_json::json;

/// The files a runner gives a step, and a command set up as one of its steps.
struct Step {
    summary: PathBuf,
    output: PathBuf,
}

impl Step {
    fn new(fleet: &FleetDir) -> Step {
        Step {
            summary: fleet.dir.path().join("step_summary.md"),
            output: fleet.dir.path().join("github_output"),
        }
    }

    fn run(&self, fleet: &FleetDir, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut command: Command = fleet.command(args);
        command
            .env("GITHUB_ACTIONS", "true")
            .env("GITHUB_STEP_SUMMARY", &self.summary)
            .env("GITHUB_OUTPUT", &self.output)
            .env("GITHUB_SERVER_URL", "https://github.example")
            .env("GITHUB_REPOSITORY", "acme/agents")
            .env("GITHUB_RUN_ID", "4242");
        for (name, value) in env {
            command.env(name, value);
        }
        let output = command.output().unwrap();
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    fn summary(&self) -> String {
        std::fs::read_to_string(&self.summary).unwrap_or_default()
    }

    fn outputs(&self) -> String {
        std::fs::read_to_string(&self.output).unwrap_or_default()
    }

    fn clear(&self) {
        let _ = std::fs::remove_file(&self.summary);
        let _ = std::fs::remove_file(&self.output);
    }
}

#[tokio::test]
async fn plan_and_apply_report_to_the_workflow_without_secrets() {
    let env = TestEnv::new("gha-report").await;
    let password = "gha-pw-Rk27Qz";
    let server = NatsServer::start(&["--user", "fleet", "--pass", password]).await;
    let fleet = FleetDir::for_test(&env);
    fleet.set_environment_with_nats(&server.url, "");
    let step = Step::new(&fleet);
    let credentials = [
        ("FLEET_NATS_USER", "fleet"),
        ("FLEET_NATS_PASSWORD", password),
    ];

    let plan_file = fleet.dir.path().join("plan.json");
    let plan = step.run(
        &fleet,
        &[
            "plan",
            "--format",
            "json",
            "--out",
            plan_file.to_str().unwrap(),
        ],
        &credentials,
    );
    plan.assert_ok("plan in a workflow");
    serde_json::from_str::<serde_json::Value>(&plan.stdout).expect("stdout stays the JSON plan");
    assert!(
        plan.stderr.contains(&format!("::add-mask::{password}")),
        "the password is announced to the runner: {}",
        plan.stderr
    );
    assert!(
        plan.stderr
            .contains("::group::fleet: reading the cluster and JetStream")
            && plan.stderr.contains("::endgroup::"),
        "{}",
        plan.stderr
    );
    let summary = step.summary();
    assert!(
        summary.starts_with("### fleet plan: agent-ceo (test)"),
        "{summary}"
    );
    assert!(
        summary.contains("#### agent `devops`"),
        "grouped by agent:\n{summary}"
    );
    assert!(
        summary.contains("<details><summary><code>+</code> Deployment"),
        "{summary}"
    );
    let outputs = step.outputs();
    assert!(outputs.contains("has-changes=true\n"), "{outputs}");
    assert!(outputs.contains("blocked=0\n"), "{outputs}");
    let added: usize = outputs
        .lines()
        .find_map(|l| l.strip_prefix("add="))
        .unwrap()
        .parse()
        .unwrap();
    assert!(added >= 22, "{outputs}");

    // Apply reports what it did.
    step.clear();
    let applied = step.run(
        &fleet,
        &["apply", "--auto-approve", "--timeout", "90s"],
        &credentials,
    );
    applied.assert_ok("apply in a workflow");
    assert!(
        applied
            .stderr
            .contains("::group::fleet: wave 1 of 3 (observer): applying workloads"),
        "{}",
        applied.stderr
    );
    assert!(
        applied
            .stderr
            .contains("::group::fleet: wave 3 of 3 (reviewer): waiting for"),
        "{}",
        applied.stderr
    );
    assert!(
        step.summary()
            .starts_with("### fleet apply: Apply complete! Resources:"),
        "{}",
        step.summary()
    );
    assert!(
        step.summary()
            .contains("| 2 | devops | runs the new definition |"),
        "{}",
        step.summary()
    );
    assert!(step.outputs().contains("failed=0\n"), "{}", step.outputs());

    // A blocked change: an error annotation at the agent's declaration, and
    // the blocked count in the outputs.
    step.clear();
    fleet.set_environment_with_nats(&server.url, "[agents.observer]\nenabled = false\n");
    step.run(
        &fleet,
        &["apply", "--auto-approve", "--timeout", "90s"],
        &credentials,
    )
    .assert_ok("apply without the observer");
    let configmaps: kube::Api<ConfigMap> =
        kube::Api::namespaced(env.kube.clone(), &fleet.namespace);
    let theirs: ConfigMap = serde_json::from_value(json!({
        "metadata": { "name": "agent-observer-config" }, "data": { "theirs": "yes" }
    }))
    .unwrap();
    configmaps
        .create(&PostParams::default(), &theirs)
        .await
        .unwrap();
    fleet.set_environment_with_nats(&server.url, "");
    step.clear();
    let blocked = step.run(&fleet, &["plan"], &credentials);
    blocked.assert_ok("plan with a blocked change");
    let line = std::fs::read_to_string(fleet.dir.path().join("fleet.toml"))
        .unwrap()
        .lines()
        .position(|l| l.trim() == "[agents.observer]")
        .unwrap()
        + 1;
    let annotation = format!(
        "::error file=fleet.toml,line={line},title=ConfigMap {}/agent-observer-config exists and is not managed by fleet::",
        fleet.namespace
    );
    assert!(
        blocked.stderr.contains(&annotation),
        "{annotation}\n{}",
        blocked.stderr
    );
    assert!(step.outputs().contains("blocked=1\n"), "{}", step.outputs());

    // No channel shows the password.
    for (what, text) in [
        ("plan stdout", plan.stdout.as_str()),
        ("apply stdout", applied.stdout.as_str()),
        (
            "blocked stderr without the masks",
            &blocked
                .stderr
                .replace(&format!("::add-mask::{password}"), ""),
        ),
        ("summary", &step.summary()),
        ("outputs", &step.outputs()),
        ("saved plan", &std::fs::read_to_string(&plan_file).unwrap()),
    ] {
        assert!(
            !text.contains(password),
            "{what} shows the password:\n{text}"
        );
    }
}

#[tokio::test]
async fn markdown_stays_under_its_size_and_says_what_it_left_out() {
    let env = TestEnv::new("gha-size").await;
    let fleet = FleetDir::for_test(&env);
    let full = fleet.run(&["plan", "--format", "markdown"]);
    full.assert_ok("plan");
    assert!(
        full.stdout.len() > 4000,
        "the example's first plan is large"
    );

    let cut = fleet.run(&[
        "plan",
        "--format",
        "markdown",
        "--max-bytes",
        "4000",
        "--out",
        "plan.json",
    ]);
    cut.assert_ok("plan --max-bytes");
    assert!(cut.stdout.len() <= 4000, "{} bytes", cut.stdout.len());
    assert!(
        cut.stdout.contains("more changes are not shown") && cut.stdout.contains("plan.json"),
        "{}",
        cut.stdout
    );
    assert!(cut.stdout.contains("**Plan: "), "the summary line is kept");
}
