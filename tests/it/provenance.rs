//! Git provenance against the local control plane: the definition's commit
//! recorded on the ApplySet parent and shown by the next plan, uncommitted
//! changes refused, a definition outside git, and saved plans tied to their
//! commit and cluster. Each test makes its FleetDir a git repository.

use crate::support::{self, FleetDir, Run, TestEnv};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;

/// A password in the remote URL, which must never be printed or recorded.
const REMOTE_PASSWORD: &str = "s3cret-remote-pass";

/// Makes the fleet's directory a repository with a remote, everything
/// committed; returns it.
fn init_repository(fleet: &FleetDir) -> git2::Repository {
    let repo = git2::Repository::init(fleet.dir.path()).unwrap();
    repo.remote(
        "origin",
        &format!("https://deployer:{REMOTE_PASSWORD}@git.example.com/org/fleet.git"),
    )
    .unwrap();
    commit_all(&repo, "the fleet");
    repo
}

fn commit_all(repo: &git2::Repository, message: &str) -> String {
    let mut index = repo.index().unwrap();
    index
        .add_all(["*"], git2::IndexAddOption::DEFAULT, None)
        .unwrap();
    index.write().unwrap();
    let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
    let signature = git2::Signature::now("fleet test", "test@example.com").unwrap();
    let parent = repo.head().ok().and_then(|h| h.peel_to_commit().ok());
    let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
    repo.commit(
        Some("HEAD"),
        &signature,
        &signature,
        message,
        &tree,
        &parents,
    )
    .unwrap()
    .to_string()
}

/// A commit that changes nothing fleet renders.
fn commit_notes(repo: &git2::Repository, text: &str) -> String {
    let dir = repo.workdir().unwrap().to_path_buf();
    std::fs::write(dir.join("NOTES.md"), text).unwrap();
    commit_all(repo, text)
}

/// `fleet ARGS` as the GitHub Actions actor `octo-deployer`.
fn run_as_actor(fleet: &FleetDir, args: &[&str]) -> Run {
    let output = fleet
        .command(args)
        .env("GITHUB_ACTOR", "octo-deployer")
        .output()
        .unwrap();
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn apply_args(extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = ["apply", "--auto-approve", "--timeout", "90s"]
        .map(String::from)
        .to_vec();
    args.extend(extra.iter().map(|a| a.to_string()));
    args
}

async fn parent_annotations(
    env: &TestEnv,
    fleet: &FleetDir,
) -> std::collections::BTreeMap<String, String> {
    let secrets: Api<Secret> = Api::namespaced(env.kube.clone(), &fleet.namespace);
    secrets
        .get("fleet-agent-ceo")
        .await
        .unwrap()
        .metadata
        .annotations
        .unwrap_or_default()
}

fn short(commit: &str) -> &str {
    &commit[..12]
}

#[tokio::test]
async fn apply_records_the_commit_on_the_parent_and_the_next_plan_shows_it() {
    let env = TestEnv::new("provenance-recorded").await;
    let fleet = FleetDir::for_test(&env);
    let repo = init_repository(&fleet);
    let head = repo
        .head()
        .unwrap()
        .peel_to_commit()
        .unwrap()
        .id()
        .to_string();
    let branch = repo.head().unwrap().shorthand().unwrap().to_string();

    let args = apply_args(&[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let applied = run_as_actor(&fleet, &args);
    applied.assert_ok("apply from a clean repository");
    assert!(
        !applied.stderr.contains("git repository"),
        "{}",
        applied.stderr
    );

    let annotations = parent_annotations(&env, &fleet).await;
    assert_eq!(annotations["fleet.agent.ceo/commit"], head);
    assert_eq!(annotations["fleet.agent.ceo/ref"], branch);
    assert_eq!(
        annotations["fleet.agent.ceo/remote"],
        "https://***@git.example.com/org/fleet.git"
    );
    assert_eq!(annotations["fleet.agent.ceo/dirty"], "false");
    assert_eq!(annotations["fleet.agent.ceo/applied-by"], "octo-deployer");
    let applied_at = &annotations["fleet.agent.ceo/applied-at"];
    assert!(
        applied_at.len() == 20 && applied_at.ends_with('Z'),
        "{applied_at}"
    );

    // On the parent only: never on a Deployment or its pod template, so a
    // commit does not roll the agents.
    let deployments: Api<Deployment> = Api::namespaced(env.kube.clone(), &fleet.namespace);
    for deployment in deployments.list(&Default::default()).await.unwrap() {
        let text = serde_json::to_string(&deployment).unwrap();
        assert!(!text.contains(&head), "{text}");
        assert!(!text.contains("fleet.agent.ceo/commit"), "{text}");
    }

    // The record is no change: the next plan is empty, and shows it.
    let plan = run_as_actor(&fleet, &["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "{}{}", plan.stdout, plan.stderr);
    assert!(plan.stdout.contains("No changes."), "{}", plan.stdout);
    let live = format!(
        "live: {} ({branch}, https://***@git.example.com/org/fleet.git) applied by octo-deployer at {applied_at}",
        short(&head)
    );
    assert!(plan.stdout.contains(&live), "{live}\n{}", plan.stdout);

    // Two commits later (nothing fleet renders changed): still no change,
    // and the definition is two commits ahead of what is live.
    commit_notes(&repo, "one");
    let later = commit_notes(&repo, "two");
    let plan = run_as_actor(&fleet, &["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "{}{}", plan.stdout, plan.stderr);
    let ahead = format!(
        "definition at {}, live at {}: 2 commits ahead",
        short(&later),
        short(&head)
    );
    assert!(plan.stdout.contains(&ahead), "{ahead}\n{}", plan.stdout);
    let json = run_as_actor(&fleet, &["plan", "--format", "json"]);
    json.assert_ok("plan --format json");
    let json: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let provenance = &json["provenance"];
    assert_eq!(provenance["definition"]["commit"], later.as_str());
    assert_eq!(provenance["definition"]["dirty"], false);
    assert_eq!(provenance["live"]["commit"], head.as_str());
    assert_eq!(provenance["live"]["applied_by"], "octo-deployer");
    assert_eq!(provenance["ahead"], 2);
    assert!(
        provenance["cluster"]["kube_system_uid"].is_string(),
        "{provenance}"
    );
    let markdown = run_as_actor(&fleet, &["plan", "--format", "markdown"]);
    assert!(
        markdown.stdout.contains("2 commits ahead"),
        "{}",
        markdown.stdout
    );

    for run in [&applied, &plan, &markdown] {
        assert!(!run.stdout.contains(REMOTE_PASSWORD), "{}", run.stdout);
        assert!(!run.stderr.contains(REMOTE_PASSWORD), "{}", run.stderr);
    }
    assert!(!provenance.to_string().contains(REMOTE_PASSWORD));
}

#[tokio::test]
async fn uncommitted_changes_are_refused_unless_allow_dirty() {
    let env = TestEnv::new("provenance-dirty").await;
    let fleet = FleetDir::for_test(&env);
    init_repository(&fleet);
    // A changed environment and an untracked file.
    fleet.set_environment("[agents.reviewer]\nenabled = false\n");
    std::fs::write(fleet.dir.path().join("scratch.toml"), "x = 1\n").unwrap();

    let refused = fleet.apply(&[]);
    assert_eq!(refused.code, 1, "{}{}", refused.stdout, refused.stderr);
    for expected in [
        "2 files in the definition's directory have uncommitted changes",
        "environments/test.toml (modified)",
        "scratch.toml (untracked)",
        "--allow-dirty",
        "nothing was changed",
    ] {
        assert!(
            refused.stderr.contains(expected),
            "{expected}:\n{}",
            refused.stderr
        );
    }
    env.assert_nothing_applied(&fleet).await;

    // A plan shows it, and does not refuse.
    let plan = fleet.run(&["plan"]);
    plan.assert_ok("plan of a dirty definition");
    assert!(
        plan.stdout.contains("with uncommitted changes"),
        "{}",
        plan.stdout
    );

    fleet
        .apply(&["--allow-dirty"])
        .assert_ok("apply --allow-dirty");
    let annotations = parent_annotations(&env, &fleet).await;
    assert_eq!(annotations["fleet.agent.ceo/dirty"], "true");
}

#[tokio::test]
async fn outside_git_apply_goes_on_with_one_notice() {
    let env = TestEnv::new("provenance-no-git").await;
    let fleet = FleetDir::for_test(&env);

    let applied = fleet.apply(&[]);
    applied.assert_ok("apply outside git");
    assert_eq!(
        applied.stderr.matches("is not in a git repository").count(),
        1,
        "{}",
        applied.stderr
    );
    let annotations = parent_annotations(&env, &fleet).await;
    assert!(!annotations.contains_key("fleet.agent.ceo/commit"));
    assert!(!annotations["fleet.agent.ceo/applied-by"].is_empty());

    let plan = fleet.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "{}{}", plan.stdout, plan.stderr);
    assert!(
        plan.stdout.contains("live: no commit recorded, applied by"),
        "{}",
        plan.stdout
    );
    assert!(!plan.stderr.contains("git repository"), "{}", plan.stderr);
}

#[tokio::test]
async fn a_saved_plan_is_refused_for_another_cluster_or_another_commit() {
    let env = TestEnv::new("provenance-saved").await;
    let fleet = FleetDir::for_test(&env);
    let repo = init_repository(&fleet);
    let plan_file = fleet.dir.path().join("plan.json");
    let plan_path = plan_file.to_str().unwrap();
    fleet
        .run(&["plan", "--out", plan_path])
        .assert_ok("plan --out");
    let saved = std::fs::read_to_string(&plan_file).unwrap();
    let mut json: serde_json::Value = serde_json::from_str(&saved).unwrap();
    let uid = json["provenance"]["cluster"]["kube_system_uid"]
        .as_str()
        .expect("the saved plan records the cluster's identity")
        .to_string();

    // Another cluster behind the same context name.
    json["provenance"]["cluster"]["kube_system_uid"] = "0000-another-cluster".into();
    std::fs::write(&plan_file, serde_json::to_string(&json).unwrap()).unwrap();
    let refused = fleet.apply(&[plan_path]);
    assert_eq!(refused.code, 1, "{}{}", refused.stdout, refused.stderr);
    assert!(
        refused.stderr.contains("0000-another-cluster") && refused.stderr.contains(&uid),
        "{}",
        refused.stderr
    );

    // The same plan, after another commit (which changes nothing rendered).
    std::fs::write(&plan_file, &saved).unwrap();
    // The saved plan is not part of the definition: commit around it.
    std::fs::write(fleet.dir.path().join(".gitignore"), "plan.json\n").unwrap();
    let head = commit_notes(&repo, "after the plan");
    let refused = fleet.apply(&[plan_path]);
    assert_eq!(refused.code, 1, "{}{}", refused.stdout, refused.stderr);
    assert!(
        refused
            .stderr
            .contains(&format!("the definition is at commit {} now", short(&head))),
        "{}",
        refused.stderr
    );
    env.assert_nothing_applied(&fleet).await;

    // Planned again, it applies; the plan file is left untracked in the
    // directory, and is not an uncommitted change of the definition.
    std::fs::remove_file(fleet.dir.path().join(".gitignore")).unwrap();
    std::fs::remove_file(&plan_file).unwrap();
    commit_all(&repo, "without .gitignore");
    for _ in 0..2 {
        fleet
            .run(&["plan", "--out", plan_path])
            .assert_ok("plan --out again");
    }
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&plan_file).unwrap()).unwrap();
    assert_eq!(saved["provenance"]["definition"]["dirty"], false, "{saved}");
    fleet
        .apply(&[plan_path])
        .assert_ok("apply of the saved plan, made at this commit");
}

#[tokio::test]
async fn a_user_who_cannot_read_kube_system_is_identified_by_the_server_url() {
    let control_plane = support::control_plane();
    let cluster = |client: kube::Client, context: &str| fleet::client::kube::Cluster {
        client,
        context: context.to_string(),
        server: "https://127.0.0.1:16443/".to_string(),
    };
    let admin = cluster(
        control_plane.kube_client(support::ADMIN_CONTEXT).await,
        support::ADMIN_CONTEXT,
    );
    let identity = fleet::live::kube::identity(&admin).await.unwrap();
    assert!(identity.kube_system_uid.is_some(), "{identity:?}");
    assert_eq!(identity.note(), None);

    let restricted = cluster(
        control_plane.kube_client(support::RESTRICTED_CONTEXT).await,
        support::RESTRICTED_CONTEXT,
    );
    let identity = fleet::live::kube::identity(&restricted).await.unwrap();
    assert_eq!(identity.kube_system_uid, None);
    let note = identity.note().unwrap();
    assert!(
        note.contains("Forbidden") && note.contains("https://127.0.0.1:16443/"),
        "{note}"
    );
}

/// A CI job that saves a plan and applies in the same checkout: the saved
/// plan, left untracked, is not an uncommitted change for a later plan or a
/// plain apply (both called it one). And the saved plan carries its
/// environment: `fleet apply plan.json` applies it without `--env` and
/// without asking again (it planned everything, then refused the plan as
/// made for another environment).
#[tokio::test]
async fn a_saved_plan_is_not_uncommitted_and_carries_its_environment() {
    let env = TestEnv::new("provenance-saved-plan").await;
    let fleet = FleetDir::for_test(&env);
    init_repository(&fleet);
    fleet
        .run(&["plan", "--out", "plan.json"])
        .assert_ok("plan --out");
    let plan = fleet.run(&["plan"]);
    plan.assert_ok("plan");
    assert!(
        !plan.stdout.contains("uncommitted"),
        "the saved plan is not an uncommitted change:\n{}",
        plan.stdout
    );

    // `fleet apply plan.json`: no --env, no --auto-approve, no terminal.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_fleet"))
        .args(["apply", "plan.json", "--timeout", "90s"])
        .current_dir(fleet.dir.path())
        .env("KUBECONFIG", &support::control_plane().kubeconfig)
        .env("NO_COLOR", "1")
        .env_remove("FLEET_ENV")
        .env_remove("FLEET_NATS_URL")
        .env_remove("GITHUB_ACTIONS")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!(
            "Target: environment `test`, namespace `{}`",
            fleet.namespace
        )),
        "{stdout}"
    );

    // A plain apply in the same checkout, the plan file still there.
    let args = apply_args(&[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    fleet.run(&args).assert_ok("apply beside the saved plan");
    fleet.assert_plan_empty();
}
