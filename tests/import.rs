//! `fleet import` round trips on the local control plane: objects made by
//! hand (kubectl, the NATS API) are imported, `fleet plan --adopt` on the
//! imported definition changes nothing but fleet's ownership marks, and
//! after `fleet apply --adopt` the next plan is empty.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use async_nats::jetstream::{consumer, stream};
use serde_json::Value;
use support::{ADMIN_CONTEXT, TestEnv, control_plane, repo_root};

/// `fleet ARGS` in `dir`, against the control plane (no environment: the
/// imported file names none).
fn fleet(dir: &Path, args: &[&str]) -> support::Run {
    let output = Command::new(env!("CARGO_BIN_EXE_fleet"))
        .args(args)
        .current_dir(dir)
        .env("KUBECONFIG", &control_plane().kubeconfig)
        .env("FLEET_KUBE_CONTEXT", ADMIN_CONTEXT)
        .env("FLEET_NATS_URL", &control_plane().nats_url)
        .env("NO_COLOR", "1")
        .env_remove("FLEET_ENV")
        .env_remove("GITHUB_ACTIONS")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("running fleet");
    support::Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// The lines a diff adds or removes.
fn changed_lines(diff: &str) -> Vec<&str> {
    diff.lines()
        .filter(|l| {
            (l.starts_with('+') || l.starts_with('-'))
                && !l.starts_with("+++")
                && !l.starts_with("---")
        })
        .collect()
}

/// Whether a changed line is one of fleet's marks: its ownership labels,
/// the role label by which it knows an agent's objects, the maps that hold
/// them, and the owner in a stream's or consumer's metadata.
fn is_mark(line: &str, domain: &str) -> bool {
    let line = line[1..].trim();
    [
        "app.kubernetes.io/managed-by: fleet",
        "applyset.kubernetes.io/part-of: ",
        &format!("{domain}/role: "),
        "labels:",
        "metadata:",
        "fleet.owner: ",
    ]
    .iter()
    .any(|mark| line.starts_with(mark))
}

/// Imports `namespace` into a new directory, then checks the round trip:
/// the adopt plan changes only marks (the ApplySet parent is new), apply
/// adopts, and the next plan is empty. Returns the imported text.
fn round_trip(namespace: &str, name: &str, domain: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let imported = fleet(
        dir.path(),
        &["import", "--namespace", namespace, "--name", name],
    );
    imported.assert_ok("fleet import");
    let text = std::fs::read_to_string(dir.path().join("fleet.toml")).unwrap();
    assert!(
        !imported
            .stderr
            .contains("Differences no key or patch can say"),
        "{}\n{text}",
        imported.stderr
    );

    let plan = fleet(dir.path(), &["plan", "--adopt", "--format", "json"]);
    plan.assert_ok("fleet plan --adopt");
    let plan: Value = serde_json::from_str(&plan.stdout).unwrap();
    for change in plan["changes"].as_array().unwrap() {
        let target = &change["target"];
        let action = change["action"].as_str().unwrap();
        if target["kind"] == "Secret" && action == "create" {
            continue; // the ApplySet parent
        }
        assert!(
            matches!(action, "update" | "no-op"),
            "{target}: {action}\n{}\n{text}",
            change["diff"]
        );
        let diff = change["diff"].as_str().unwrap_or_default();
        let not_marks: Vec<&str> = changed_lines(diff)
            .into_iter()
            .filter(|l| !is_mark(l, domain))
            .collect();
        assert!(
            not_marks.is_empty(),
            "{target} changes more than fleet's marks: {not_marks:#?}\n{diff}\n{text}"
        );
    }

    let applied = fleet(
        dir.path(),
        &["apply", "--adopt", "--auto-approve", "--no-wait"],
    );
    applied.assert_ok("fleet apply --adopt");
    let again = fleet(dir.path(), &["plan", "--detailed-exitcode"]);
    assert_eq!(
        again.code, 0,
        "the plan after the adopting apply is not empty:\n{}{}\n{text}",
        again.stdout, again.stderr
    );
    text
}

async fn work_queue(env: &TestEnv, name: &str, subjects: &str) {
    env.jetstream
        .create_stream(stream::Config {
            name: name.into(),
            subjects: vec![subjects.into()],
            retention: stream::RetentionPolicy::WorkQueue,
            max_age: Duration::from_secs(7 * 86_400),
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        })
        .await
        .unwrap();
}

async fn pull_consumer(env: &TestEnv, stream: &str, config: consumer::pull::Config) {
    env.jetstream
        .get_stream(stream)
        .await
        .unwrap()
        .create_consumer(config)
        .await
        .unwrap();
}

/// The seed's own manifests, applied with `kubectl apply` as a team that
/// followed the article would have, and its consumer made with the NATS API.
#[tokio::test]
async fn the_seeds_manifests_import_exactly() {
    let env = TestEnv::new("import seed").await;
    let stream = format!("{}agent-tasks", env.stream_prefix);
    let subjects = format!("{}.tasks", env.stream_prefix);
    let mut manifests = String::new();
    for file in ["deployment.yaml", "hpa.yaml", "networkpolicy.yaml"] {
        let text =
            std::fs::read_to_string(repo_root().join("tests/fixtures/seed").join(file)).unwrap();
        manifests.push_str(&text.replace("agent-tasks", &stream));
        manifests.push_str("\n---\n");
    }
    manifests.push_str(
        "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: agent-devops\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: agent-devops-config\ndata:\n  config.yaml: |\n    role: devops\n    tools: [kubectl, helm]\n",
    );
    let manifests = manifests.replace(
        "namespace: agent-system",
        &format!("namespace: {}", env.namespace),
    );
    control_plane().kubectl_stdin(&["apply", "-n", &env.namespace], &manifests);
    work_queue(&env, &stream, &format!("{subjects}.>")).await;
    pull_consumer(
        &env,
        &stream,
        consumer::pull::Config {
            durable_name: Some("devops-agent".into()),
            filter_subject: format!("{subjects}.devops.>"),
            ack_wait: Duration::from_secs(300),
            max_deliver: 5,
            ..Default::default()
        },
    )
    .await;

    let text = round_trip(&env.namespace, "seed", "agent.ceo");
    for line in [
        "[agents.devops]",
        "tier = \"operations\"",
        "autoscaling = { max = 5, pending_per_replica = 3, memory_utilization = 75 }",
        &format!("[streams.{stream}]"),
        "retention = \"workqueue\"",
        "ack_wait = \"5m\"",
    ] {
        assert!(text.contains(line), "no `{line}` in\n{text}");
    }
    println!("{text}");
}
