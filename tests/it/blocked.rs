//! Whatever apply would refuse, the plan already says: each refusal a
//! server would give the write is in the plan as a blocked change, counted
//! in every format, and apply refuses it before writing anything. Against
//! the real servers, since the refusals are theirs.

use std::time::Duration;

use crate::support::{FleetDir, NatsServer, Run, TestEnv, control_plane, eventually};
use serde_json::Value;

/// The JSON plan (`--format json`) of a run that printed one.
fn json(run: &Run) -> Value {
    serde_json::from_str(&run.stdout)
        .unwrap_or_else(|err| panic!("{err}: {}{}", run.stdout, run.stderr))
}

/// The changes of a JSON plan that are blocked.
fn blocked(plan: &Value) -> Vec<&Value> {
    plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| !c["blocked"].is_null())
        .collect()
}

/// The plan blocks exactly one change, of the fleet's stream, with a reason
/// that says each of `says`; apply refuses it and writes nothing.
async fn only_the_stream_is_blocked(env: &TestEnv, fleet: &FleetDir, says: &[&str]) {
    let plan = json(&fleet.run(&["plan", "--format", "json"]));
    let blocked = blocked(&plan);
    assert_eq!(blocked.len(), 1, "{plan:#}");
    assert_eq!(blocked[0]["target"]["name"], fleet.stream().as_str());
    let reason = blocked[0]["blocked"]["reason"].as_str().unwrap();
    assert!(says.iter().all(|s| reason.contains(s)), "{reason}");
    let apply = fleet.apply(&[]);
    assert_eq!(apply.code, 1, "{}{}", apply.stdout, apply.stderr);
    env.assert_nothing_applied(fleet).await;
}

#[tokio::test]
async fn a_stream_overlapping_one_fleet_does_not_own_is_blocked_and_nothing_is_written() {
    let env = TestEnv::new("blocked-overlap").await;
    let fleet = FleetDir::for_test(&env);
    // Someone else's stream already takes the fleet's subjects.
    let legacy = format!("{}legacy", env.stream_prefix);
    env.jetstream
        .create_stream(async_nats::jetstream::stream::Config {
            name: legacy.clone(),
            subjects: vec![format!("{}.tasks.devops.*", fleet.namespace)],
            ..Default::default()
        })
        .await
        .unwrap();

    let plan = fleet.run(&["plan", "--format", "json"]);
    plan.assert_ok("plan");
    let plan = json(&plan);
    assert_eq!(plan["summary"]["blocked"], 1, "{plan:#}");
    let stream = blocked(&plan)[0];
    assert_eq!(stream["target"]["name"], fleet.stream().as_str());
    assert_eq!(stream["action"], "create");
    let reason = stream["blocked"]["reason"].as_str().unwrap();
    assert!(
        reason.contains(&format!("of stream {legacy}")) && reason.contains("(10065)"),
        "{reason}"
    );

    let text = fleet.run(&["plan"]);
    assert!(
        text.stdout.contains(&format!(
            "  # blocked: its subject `{}.tasks.>` overlaps",
            fleet.namespace
        )) && text
            .stdout
            .contains("1 change is blocked: 1 cannot be made as planned."),
        "{}",
        text.stdout
    );

    let refused = fleet.apply(&[]);
    assert_eq!(refused.code, 1, "{}{}", refused.stdout, refused.stderr);
    assert!(refused.stderr.contains(&legacy), "{}", refused.stderr);
    env.assert_nothing_applied(&fleet).await;
    assert!(
        env.jetstream.get_stream(fleet.stream()).await.is_err(),
        "the fleet's stream was not created"
    );
}

#[tokio::test]
async fn a_destroy_that_loses_messages_is_blocked_until_allow_destroy() {
    let env = TestEnv::new("blocked-destroy").await;
    let fleet = FleetDir::for_test(&env);
    fleet.apply(&[]).assert_ok("apply");
    // Two tasks wait for the observer, whose consumer is then removed.
    for _ in 0..2 {
        env.jetstream
            .publish(fleet.task_subject("observer"), "task".into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    fleet.set_environment("[agents.observer.consumer]\nenabled = false\n");

    let text = fleet.run(&["plan"]);
    text.assert_ok("plan");
    assert!(
        text.stdout.contains(
            "Plan: 0 to add, 0 to change, 1 to destroy. 1 change is blocked: 1 needs --allow-destroy."
        ),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout
            .contains("  # blocked: queued messages would be lost"),
        "{}",
        text.stdout
    );
    let plan = json(&fleet.run(&["plan", "--format", "json"]));
    assert_eq!(plan["summary"]["blocked"], 1, "{plan:#}");
    assert_eq!(blocked(&plan)[0]["blocked"]["unless"], "--allow-destroy");
    let markdown = fleet.run(&["plan", "--format", "markdown"]);
    assert!(
        markdown
            .stdout
            .contains("1 change is blocked: 1 needs --allow-destroy.")
            && markdown.stdout.contains("**Blocked:** queued messages"),
        "{}",
        markdown.stdout
    );

    // In GitHub Actions: the outputs and the step summary say it too.
    let dir = tempfile::tempdir().unwrap();
    let (outputs, summary) = (dir.path().join("outputs"), dir.path().join("summary"));
    let output = fleet
        .command(&["plan"])
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_OUTPUT", &outputs)
        .env("GITHUB_STEP_SUMMARY", &summary)
        .output()
        .unwrap();
    assert!(output.status.success());
    let outputs = std::fs::read_to_string(&outputs).unwrap();
    assert!(outputs.contains("blocked=1\n"), "{outputs}");
    let summary = std::fs::read_to_string(&summary).unwrap();
    assert!(
        summary.contains("1 change is blocked: 1 needs --allow-destroy."),
        "{summary}"
    );

    // Planned as apply --allow-destroy would apply it: not blocked.
    let allowed = json(&fleet.run(&["plan", "--format", "json", "--allow-destroy"]));
    assert_eq!(allowed["summary"]["blocked"], 0, "{allowed:#}");
    assert_eq!(allowed["summary"]["destroy"], 1, "{allowed:#}");

    let refused = fleet.apply(&[]);
    assert_eq!(refused.code, 1, "{}{}", refused.stdout, refused.stderr);
    assert!(
        refused.stderr.contains("--allow-destroy"),
        "{}",
        refused.stderr
    );
    // A plan saved without the flag is applied with it: the flag lifts
    // the block, the plan is the same.
    fleet
        .run(&["plan", "--out", "plan.json"])
        .assert_ok("plan --out");
    // `fleet show` prints the saved plan as plan printed it.
    let show = |format: &str| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_fleet"))
            .args(["show", "plan.json", "--format", format])
            .current_dir(fleet.dir.path())
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        String::from_utf8(output.stdout).unwrap()
    };
    assert!(
        show("text").contains(
            "Plan: 0 to add, 0 to change, 1 to destroy. 1 change is blocked: 1 needs --allow-destroy."
        ),
        "{}",
        show("text")
    );
    let shown: Value = serde_json::from_str(&show("json")).unwrap();
    assert_eq!(shown["summary"]["blocked"], 1, "{shown:#}");
    assert!(show("markdown").contains("**Blocked:** queued messages"));
    fleet
        .apply(&["--allow-destroy", "--allow-dirty", "plan.json"])
        .assert_ok("apply --allow-destroy plan.json");
    fleet.assert_plan_empty();
}

#[tokio::test]
async fn objects_a_resource_quota_refuses_are_blocked_and_nothing_is_written() {
    let env = TestEnv::new("blocked-quota").await;
    // The fleet in the test's namespace, which has a quota: no more
    // ConfigMaps than the one the cluster puts there (kube-root-ca.crt).
    let fleet = FleetDir::example(&env.namespace);
    fleet.set_environment("[fleet]\nmanage_namespace = false\n");
    control_plane().kubectl_stdin(
        &["apply", "-n", &env.namespace],
        "apiVersion: v1\nkind: ResourceQuota\nmetadata:\n  name: few-configmaps\nspec:\n  hard:\n    configmaps: \"1\"\n",
    );
    // Admission enforces a quota once its controller has counted the usage.
    eventually("the quota's usage", Duration::from_secs(30), || async {
        let used = control_plane()
            .kubectl()
            .args([
                "get",
                "resourcequota",
                "few-configmaps",
                "-n",
                &env.namespace,
            ])
            .args(["-o", "jsonpath={.status.used.configmaps}"])
            .output()
            .unwrap();
        (!used.stdout.is_empty()).then_some(())
    })
    .await;

    let plan = json(&fleet.run(&["plan", "--format", "json"]));
    let blocked = blocked(&plan);
    assert!(!blocked.is_empty(), "{plan:#}");
    for change in &blocked {
        assert_eq!(change["target"]["kind"], "ConfigMap", "{change:#}");
        let reason = change["blocked"]["reason"].as_str().unwrap();
        assert!(
            reason.contains("ResourceQuota") && reason.contains("few-configmaps"),
            "{reason}"
        );
    }
    assert_eq!(plan["summary"]["blocked"], blocked.len(), "{plan:#}");

    let refused = fleet.apply(&[]);
    assert_eq!(refused.code, 1, "{}{}", refused.stdout, refused.stderr);
    assert!(
        refused.stderr.contains("ResourceQuota"),
        "{}",
        refused.stderr
    );
    let deployments = fleet.kubectl(&[
        "get",
        "deployments,serviceaccounts",
        "-l",
        "app.kubernetes.io/managed-by=fleet",
        "-o",
        "name",
    ]);
    assert_eq!(deployments.trim(), "", "nothing was written");
}

#[tokio::test]
async fn replicas_on_a_server_outside_a_cluster_are_blocked() {
    let env = TestEnv::new("blocked-replicas").await;
    let fleet = FleetDir::for_test(&env);
    // The 2.10 server runs alone.
    let old = &control_plane().nats_old_url;
    fleet.set_environment_with_nats(
        old,
        &format!("[streams.{}]\nreplicas = 3\n", fleet.stream()),
    );
    // The refusal the plan predicts is the server's own.
    let nats = async_nats::connect(old.as_str()).await.unwrap();
    let refused = async_nats::jetstream::new(nats)
        .create_stream(async_nats::jetstream::stream::Config {
            name: format!("{}replicas", env.stream_prefix),
            subjects: vec![format!("{}.replicas", env.stream_prefix)],
            num_replicas: 3,
            ..Default::default()
        })
        .await;
    assert!(
        refused
            .as_ref()
            .is_err_and(|err| err.to_string().contains("10074")),
        "{refused:?}"
    );

    only_the_stream_is_blocked(&env, &fleet, &["3 replicas", "10074"]).await;
}

#[tokio::test]
async fn a_stream_beyond_the_accounts_limit_is_blocked() {
    let env = TestEnv::new("blocked-account").await;
    let fleet = FleetDir::for_test(&env);
    // An account that may hold one stream, and holds one already.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("nats.conf");
    std::fs::write(
        &config,
        "accounts { FLEET: { jetstream: { max_mem: 1G, max_file: 1G, max_streams: 1, max_consumers: -1 }, users: [ { user: fleet, password: s3cret } ] } }\n",
    )
    .unwrap();
    let server = NatsServer::start(&["-c", config.to_str().unwrap()]).await;
    let url = format!("nats://fleet:s3cret@127.0.0.1:{}", server.port);
    // async-nats takes no credentials from the URL (fleet does).
    let nats = async_nats::ConnectOptions::with_user_and_password("fleet".into(), "s3cret".into())
        .connect(server.url.as_str())
        .await
        .unwrap();
    let jetstream = async_nats::jetstream::new(nats);
    let stream = |name: &str| async_nats::jetstream::stream::Config {
        name: name.into(),
        subjects: vec![format!("{name}.>")],
        ..Default::default()
    };
    jetstream.create_stream(stream("theirs")).await.unwrap();
    // The refusal the plan predicts is the server's own.
    let refused = jetstream.create_stream(stream("second")).await;
    assert!(
        refused
            .as_ref()
            .is_err_and(|err| err.to_string().contains("10027")),
        "{refused:?}"
    );

    fleet.set_environment_with_nats(&url, "");
    only_the_stream_is_blocked(&env, &fleet, &["holds 1 streams and may hold 1", "10027"]).await;
}
