//! Agents' NATS permissions against a real nats-server in operator mode:
//! credentials minted by fleet for what the definition says let an agent
//! pull and acknowledge its own consumer, publish where it declared, send
//! the requests it declared and answer those it serves, and refuse it
//! everything else: another agent's consumer, undeclared subjects, another
//! agent's replies, administering JetStream.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::{self, OperatorNats};
use async_nats::jetstream::{self, consumer, stream};
use fleet::credentials::mint_user;
use fleet::definition::load_str;
use fleet::load::DirectoryFiles;
use fleet::model::Agent;
use fleet::render::permissions;
use futures::StreamExt as _;

const FLEET: &str = r#"
[fleet]
name = "f"
namespace = "ns"
[defaults]
image = "a:1"
nats_url = "nats://nats:4222"
[streams.tasks]
subjects = ["tasks.>"]
[agents.devops]
consumer = { stream = "tasks" }
publishes = ["tasks.reviewer.new"]
requests = ["agents.reviewer.query"]
[agents.reviewer]
consumer = { stream = "tasks" }
serves = ["agents.reviewer.query"]
"#;

fn agents() -> Vec<Agent> {
    let files = DirectoryFiles {
        base_dir: ".".into(),
    };
    let loaded = load_str(Path::new("fleet.toml"), FLEET, None, None, &files);
    assert_eq!(loaded.errors(), 0, "{:#?}", loaded.diagnostics);
    loaded.fleet.unwrap().agents
}

/// An agent connected with the credentials fleet mints for it, its own
/// reply inbox, and the server's errors (permission violations) recorded.
struct Connected {
    client: async_nats::Client,
    jetstream: jetstream::Context,
    errors: Arc<Mutex<Vec<String>>>,
}

impl Connected {
    /// Connected with `creds` (a creds file's text) as `role` would.
    async fn with_creds(nats: &OperatorNats, creds: &str, role: &str) -> Connected {
        let errors = Arc::new(Mutex::new(Vec::new()));
        let recorded = errors.clone();
        let client = async_nats::ConnectOptions::with_credentials(creds)
            .unwrap()
            .custom_inbox_prefix(permissions::inbox_prefix(role))
            .event_callback(move |event| {
                let recorded = recorded.clone();
                async move { recorded.lock().unwrap().push(event.to_string()) }
            })
            .connect(&nats.server.url)
            .await
            .unwrap();
        let jetstream = jetstream::ContextBuilder::new()
            .timeout(Duration::from_secs(1))
            .build(client.clone());
        Connected {
            client,
            jetstream,
            errors,
        }
    }

    async fn as_agent(nats: &OperatorNats, agent: &Agent) -> Connected {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let minted = mint_user(
            &nats.signing_key,
            &nats.account.public_key(),
            &format!("agent-{}", agent.role),
            &permissions::of_agent(agent),
            now,
            now + 3_600,
        );
        Connected::with_creds(nats, minted.creds.expose(), &agent.role).await
    }

    /// Waits for the server to report a permission violation naming `subject`.
    async fn refused(&self, subject: &str) {
        support::eventually(
            &format!("a permissions violation for {subject}"),
            Duration::from_secs(5),
            || async {
                self.errors
                    .lock()
                    .unwrap()
                    .iter()
                    .any(|e| {
                        e.to_lowercase().contains("permissions violation") && e.contains(subject)
                    })
                    .then_some(())
            },
        )
        .await;
    }
}

#[tokio::test]
async fn each_agent_may_read_its_own_consumer_and_say_only_what_it_declares() {
    let nats = OperatorNats::start().await;
    let admin = jetstream::new(nats.admin().await);
    let tasks = admin
        .create_stream(stream::Config {
            name: "tasks".into(),
            subjects: vec!["tasks.>".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    for role in ["devops", "reviewer"] {
        tasks
            .create_consumer(consumer::pull::Config {
                durable_name: Some(format!("{role}-agent")),
                filter_subject: format!("tasks.{role}.>"),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    admin
        .publish("tasks.devops.new", "deploy".into())
        .await
        .unwrap()
        .await
        .unwrap();
    admin
        .publish("tasks.reviewer.new", "review".into())
        .await
        .unwrap()
        .await
        .unwrap();

    let agents = agents();
    let devops = Connected::as_agent(&nats, &agents[0]).await;
    let reviewer = Connected::as_agent(&nats, &agents[1]).await;

    // Its own consumer: looked up, pulled from, acknowledged.
    let own: consumer::PullConsumer = devops
        .jetstream
        .get_consumer_from_stream("devops-agent", "tasks")
        .await
        .expect("devops may look up its own consumer");
    let mut batch = own.fetch().max_messages(1).messages().await.unwrap();
    let task = batch
        .next()
        .await
        .expect("a task")
        .expect("devops may pull its own task");
    assert_eq!(&task.payload[..], b"deploy");
    task.double_ack()
        .await
        .expect("devops may acknowledge its own task");

    // Publishes where it declared, with JetStream's acknowledgement.
    devops
        .jetstream
        .publish("tasks.reviewer.new", "please review".into())
        .await
        .unwrap()
        .await
        .expect("devops may publish to tasks.reviewer.new");

    // Requests the reviewer serves, which answers.
    let mut serving = reviewer
        .client
        .subscribe("agents.reviewer.query")
        .await
        .unwrap();
    reviewer.client.flush().await.unwrap();
    let answering = tokio::spawn({
        let client = reviewer.client.clone();
        async move {
            let request = serving.next().await.unwrap();
            client
                .publish(request.reply.unwrap(), "lgtm".into())
                .await
                .unwrap();
            client.flush().await.unwrap();
        }
    });
    // Asked again until the server has the reviewer's subscription: the
    // flush above sends it, but the server may read devops's request first.
    let reply = support::eventually("the reviewer's answer", Duration::from_secs(5), || async {
        match devops
            .client
            .request("agents.reviewer.query", "status?".into())
            .await
        {
            Ok(reply) => Some(reply),
            Err(err) if err.kind() == async_nats::RequestErrorKind::NoResponders => None,
            Err(err) => panic!("devops may ask the reviewer: {err}"),
        }
    })
    .await;
    assert_eq!(&reply.payload[..], b"lgtm");
    answering.await.unwrap();

    // Another agent's consumer: refused.
    let theirs = devops
        .jetstream
        .get_consumer_from_stream::<consumer::pull::Config, _, _>("reviewer-agent", "tasks")
        .await;
    assert!(theirs.is_err(), "devops looked up the reviewer's consumer");
    devops
        .refused("$JS.API.CONSUMER.INFO.tasks.reviewer-agent")
        .await;
    devops
        .client
        .publish("$JS.API.CONSUMER.MSG.NEXT.tasks.reviewer-agent", "1".into())
        .await
        .unwrap();
    devops
        .refused("$JS.API.CONSUMER.MSG.NEXT.tasks.reviewer-agent")
        .await;

    // A subject it did not declare, and administering JetStream: refused.
    devops
        .client
        .publish("tasks.devops.new", "self-assigned".into())
        .await
        .unwrap();
    devops.refused("tasks.devops.new").await;
    assert!(devops.jetstream.delete_stream("tasks").await.is_err());
    devops.refused("$JS.API.STREAM.DELETE.tasks").await;

    // Another agent's replies: refused.
    let _ = devops.client.subscribe("_INBOX_reviewer.>").await.unwrap();
    devops.refused("_INBOX_reviewer.>").await;
    let _ = devops.client.subscribe("_INBOX.>").await.unwrap();
    devops.refused("_INBOX.>").await;

    // The reviewer may not publish tasks (it declared none).
    reviewer
        .client
        .publish("tasks.devops.new", "x".into())
        .await
        .unwrap();
    reviewer.refused("tasks.devops.new").await;

    // Nothing refused reached the stream: the reviewer's task and devops's
    // request for review are all it holds besides the acknowledged one.
    let info = admin
        .get_stream("tasks")
        .await
        .unwrap()
        .get_info()
        .await
        .unwrap();
    assert_eq!(info.state.messages, 3, "{:?}", info.state);
}

/// The whole loop through fleet: apply mints each agent's user into its
/// Secret (the plan shows permissions, never creds), the creds work for
/// what the agent declared and nothing else, narrowing a permission shows
/// in the plan as what the agent may no longer do and takes effect after
/// apply, and a removed agent's Secret is deleted.
#[tokio::test]
async fn apply_mints_each_agents_user_and_a_narrowed_permission_takes_effect() {
    use k8s_openapi::api::core::v1::Secret;

    let nats = OperatorNats::start().await;
    let env = support::TestEnv::new("nats credentials").await;
    // A namespace fleet makes and owns.
    let namespace = format!("{}-f", env.namespace);
    let definition = |devops_publishes: &str, with_reviewer: bool| {
        let mut text = format!(
            r#"[fleet]
name = "creds"
namespace = "{ns}"
[nats_credentials]
account = "{account}"
[defaults]
image = "a:1"
nats_url = "nats://nats:4222"
[streams.work]
subjects = ["work.>"]
[agents.devops]
consumer = {{ stream = "work" }}
publishes = [{devops_publishes}]
"#,
            ns = namespace,
            account = nats.account.public_key(),
        );
        if with_reviewer {
            text.push_str("[agents.reviewer]\nconsumer = { stream = \"work\" }\n");
        }
        text
    };
    let fleet =
        support::FleetDir::with_definition(&namespace, &definition("\"work.reviewer.new\"", true));
    fleet.set_environment_with_nats(&nats.server.url, "");
    let signing_seed = nats.signing_key.seed().unwrap();
    // The deploy job's own NATS user holds exactly what `fleet rbac --for
    // apply --nats` prints for the first definition (it covers the later).
    let loaded = load_str(
        Path::new("fleet.toml"),
        &definition("\"work.reviewer.new\"", true),
        None,
        None,
        &DirectoryFiles {
            base_dir: ".".into(),
        },
    );
    let deploy_rights =
        fleet::access::nats_rights(&loaded.fleet.unwrap(), fleet::access::Purpose::Apply);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let deployer = mint_user(
        &nats.signing_key,
        &nats.account.public_key(),
        "fleet-deploy",
        &deploy_rights,
        now,
        now + 3_600,
    );
    let deployer_creds = nats.creds_file("deployer", deployer.creds.expose());
    let run = |args: &[&str]| {
        let output = fleet
            .command(args)
            .args(["--nats-creds", deployer_creds.to_str().unwrap()])
            .env("FLEET_NATS_ACCOUNT_SIGNING_KEY", &signing_seed)
            .output()
            .unwrap();
        let run = support::Run::from(output);
        for secret in ["-----BEGIN", "SUA", &signing_seed, "eyJ0eXAi"] {
            assert!(
                !run.stdout.contains(secret) && !run.stderr.contains(secret),
                "`fleet {args:?}` printed secret material ({secret}):\n{}{}",
                run.stdout,
                run.stderr
            );
        }
        run
    };

    let plan = run(&["plan"]);
    plan.assert_ok("the first plan");
    assert!(
        plan.stdout.contains("mints the agent's NATS user, allowed to publish to $JS.API.CONSUMER.MSG.NEXT.work.devops-agent"),
        "{}",
        plan.stdout
    );
    run(&["apply", "--auto-approve", "--timeout", "90s"]).assert_ok("the first apply");
    let secrets: kube::Api<Secret> = kube::Api::namespaced(env.kube.clone(), &namespace);
    let creds_of = |secret: Secret| {
        let data = secret.data.unwrap_or_default();
        String::from_utf8(data["agent.creds"].0.clone()).unwrap()
    };
    let devops_creds = creds_of(secrets.get("agent-devops-nats").await.unwrap());
    let devops = async_nats::ConnectOptions::with_credentials(&devops_creds)
        .unwrap()
        .custom_inbox_prefix("_INBOX_devops")
        .connect(&nats.server.url)
        .await
        .expect("the minted creds connect");
    let admin = jetstream::new(nats.admin().await);
    admin
        .publish("work.devops.x", "task".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let js = jetstream::ContextBuilder::new()
        .timeout(Duration::from_secs(1))
        .build(devops.clone());
    let own: consumer::PullConsumer = js
        .get_consumer_from_stream("devops-agent", "work")
        .await
        .expect("the minted user may look up its own consumer");
    let mut batch = own.fetch().max_messages(1).messages().await.unwrap();
    batch
        .next()
        .await
        .unwrap()
        .unwrap()
        .double_ack()
        .await
        .unwrap();
    js.publish("work.reviewer.new", "review".into())
        .await
        .unwrap()
        .await
        .expect("devops may publish to work.reviewer.new");
    let nothing_more = run(&["plan", "--detailed-exitcode"]);
    assert_eq!(
        nothing_more.code, 0,
        "{}{}",
        nothing_more.stdout, nothing_more.stderr
    );

    // Narrowed: the plan says what the agent may no longer do.
    fleet.set_definition(&definition("", true));
    let narrowed = run(&["plan"]);
    narrowed.assert_ok("the narrowing plan");
    assert!(
        narrowed.stdout.contains(
            "re-mints the agent's NATS user: it may no longer publish to work.reviewer.new"
        ),
        "{}",
        narrowed.stdout
    );
    // In every format, and in a saved plan, permissions only.
    for format in ["json", "markdown"] {
        let shown = run(&["plan", "--format", format]);
        assert!(
            shown.stdout.contains("work.reviewer.new"),
            "{}",
            shown.stdout
        );
    }
    run(&["plan", "--out", "narrowed.json"]).assert_ok("saving the plan");
    let saved = std::fs::read_to_string(fleet.dir.path().join("narrowed.json")).unwrap();
    for secret in ["-----BEGIN", "SUA", signing_seed.as_str(), "eyJ0eXAi"] {
        assert!(!saved.contains(secret), "the saved plan holds {secret}");
    }
    run(&["apply", "--auto-approve", "--timeout", "90s"]).assert_ok("the narrowing apply");
    let narrowed_creds = creds_of(secrets.get("agent-devops-nats").await.unwrap());
    assert_ne!(narrowed_creds, devops_creds);
    let narrowed_agent = Connected::with_creds(&nats, &narrowed_creds, "devops").await;
    narrowed_agent
        .client
        .publish("work.reviewer.new", "again".into())
        .await
        .unwrap();
    narrowed_agent.refused("work.reviewer.new").await;

    // Removed: its Secret goes with it.
    fleet.set_definition(&definition("", false));
    let removed = run(&["plan"]);
    assert!(removed.stdout.contains("Secret"), "{}", removed.stdout);
    assert!(
        removed.stdout.contains("agent-reviewer-nats"),
        "{}",
        removed.stdout
    );
    // (Its consumer still holds devops's request for review.)
    run(&[
        "apply",
        "--auto-approve",
        "--allow-destroy",
        "--timeout",
        "90s",
    ])
    .assert_ok("the removing apply");
    assert!(
        secrets
            .get_opt("agent-reviewer-nats")
            .await
            .unwrap()
            .is_none()
    );
    let empty = run(&["plan", "--detailed-exitcode"]);
    assert_eq!(empty.code, 0, "{}{}", empty.stdout, empty.stderr);
}

/// With `revoke = true`, apply revokes a user its agent no longer holds:
/// superseded by a change of permissions, or removed with the agent. A
/// renewal does not: the agent's connection with the old creds carries on
/// while its pods pick the new ones up.
#[tokio::test]
async fn revoked_users_are_refused_and_a_renewal_keeps_the_agent_connected() {
    use k8s_openapi::api::core::v1::Secret;

    let nats = OperatorNats::start().await;
    let env = support::TestEnv::new("nats revocation").await;
    let namespace = format!("{}-f", env.namespace);
    let definition = |devops_publishes: &str, with_reviewer: bool| {
        let mut text = format!(
            r#"[fleet]
name = "revoking"
namespace = "{namespace}"
[nats_credentials]
account = "{account}"
revoke = true
# Every plan more than a second after the last mint renews.
validity = "1h"
renew_before = "59m59s"
[defaults]
image = "a:1"
nats_url = "nats://nats:4222"
[streams.work]
subjects = ["work.>"]
[agents.devops]
consumer = {{ stream = "work" }}
publishes = [{devops_publishes}]
"#,
            account = nats.account.public_key(),
        );
        if with_reviewer {
            text.push_str("[agents.reviewer]\nconsumer = { stream = \"work\" }\n");
        }
        text
    };
    let fleet =
        support::FleetDir::with_definition(&namespace, &definition("\"work.reviewer.new\"", true));
    fleet.set_environment_with_nats(&nats.server.url, "");
    let run = |args: &[&str]| {
        let output = fleet
            .command(args)
            .args(["--nats-creds", nats.admin_creds.to_str().unwrap()])
            .env(
                "FLEET_NATS_ACCOUNT_SIGNING_KEY",
                nats.signing_key.seed().unwrap(),
            )
            .env(
                "FLEET_NATS_OPERATOR_SIGNING_KEY",
                nats.operator.seed().unwrap(),
            )
            .env("FLEET_NATS_SYSTEM_CREDS", &nats.system_creds)
            .output()
            .unwrap();
        let run = support::Run::from(output);
        let operator_seed = nats.operator.seed().unwrap();
        assert!(
            !run.stdout.contains(&operator_seed) && !run.stderr.contains(&operator_seed),
            "the operator's key was printed"
        );
        run
    };
    let apply = |what: &str| {
        run(&["apply", "--auto-approve", "--allow-destroy", "--no-wait"]).assert_ok(what);
    };
    let secrets: kube::Api<Secret> = kube::Api::namespaced(env.kube.clone(), &namespace);
    let creds = |name: &'static str| {
        let secrets = secrets.clone();
        async move {
            let secret = secrets.get(name).await.unwrap();
            String::from_utf8(secret.data.unwrap()["agent.creds"].0.clone()).unwrap()
        }
    };
    // As the devops agent connects: its own inbox prefix.
    let connect = |creds: String| {
        let url = nats.server.url.clone();
        async move {
            async_nats::ConnectOptions::with_credentials(&creds)
                .unwrap()
                .custom_inbox_prefix(permissions::inbox_prefix("devops"))
                .connect(url)
                .await
        }
    };

    apply("the first apply");
    let first = creds("agent-devops-nats").await;
    let agent = connect(first.clone())
        .await
        .expect("the first creds connect");
    let looks_up = |client: &async_nats::Client| {
        let js = jetstream::ContextBuilder::new()
            .timeout(Duration::from_secs(2))
            .build(client.clone());
        async move {
            js.get_consumer_from_stream::<consumer::pull::Config, _, _>("devops-agent", "work")
                .await
                .is_ok()
        }
    };
    assert!(looks_up(&agent).await);

    // Renewed: not revoked, and the agent's connection carries on.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let renewing = run(&["plan"]);
    assert!(
        renewing
            .stdout
            .contains("re-mints the agent's NATS user: it expires in"),
        "{}",
        renewing.stdout
    );
    assert!(!renewing.stdout.contains("revokes"), "{}", renewing.stdout);
    apply("the renewing apply");
    let renewed = creds("agent-devops-nats").await;
    assert_ne!(renewed, first);
    assert!(looks_up(&agent).await, "the renewal cut the agent off");
    connect(first.clone())
        .await
        .expect("renewed creds stay valid until they expire");

    // Narrowed: the superseded user is revoked.
    fleet.set_definition(&definition("", true));
    let narrowing = run(&["plan"]);
    assert!(
        narrowing.stdout.contains(
            "it may no longer publish to work.reviewer.new, and revokes the previous user"
        ),
        "{}",
        narrowing.stdout
    );
    apply("the narrowing apply");
    let refused = connect(renewed).await;
    assert!(refused.is_err(), "the superseded user still connects");
    connect(creds("agent-devops-nats").await)
        .await
        .expect("the new creds connect");

    // Removed: the reviewer's user (its latest, renewed since) is revoked
    // with its Secret.
    let reviewer = creds("agent-reviewer-nats").await;
    connect(reviewer.clone())
        .await
        .expect("the reviewer's creds connect");
    fleet.set_definition(&definition("", false));
    apply("the removing apply");
    assert!(
        secrets
            .get_opt("agent-reviewer-nats")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        connect(reviewer).await.is_err(),
        "the removed agent's user still connects"
    );
}

/// The example fleet in operator mode: each of its agents gets a user that
/// reads its own consumer and says what fleet.toml declares (devops asks
/// the reviewer for reviews and answers, the reviewer hands fixes back and
/// answers), and nothing else.
#[tokio::test]
async fn the_example_fleet_runs_in_operator_mode_each_agent_on_its_own_subjects() {
    use k8s_openapi::api::core::v1::Secret;

    let nats = OperatorNats::start().await;
    let env = support::TestEnv::new("nats example").await;
    let fleet = support::FleetDir::for_test(&env);
    fleet.set_environment_with_nats(
        &nats.server.url,
        &format!(
            "[nats_credentials]\naccount = \"{}\"\n",
            nats.account.public_key()
        ),
    );
    let output = fleet
        .command(&["apply", "--auto-approve", "--timeout", "120s"])
        .args(["--nats-creds", nats.admin_creds.to_str().unwrap()])
        .env(
            "FLEET_NATS_ACCOUNT_SIGNING_KEY",
            nats.signing_key.seed().unwrap(),
        )
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let secrets: kube::Api<Secret> = kube::Api::namespaced(env.kube.clone(), &fleet.namespace);
    let stream = fleet.stream();
    let mut agents = std::collections::BTreeMap::new();
    for role in ["devops", "observer", "reviewer"] {
        let secret = secrets.get(&format!("agent-{role}-nats")).await.unwrap();
        let creds = String::from_utf8(secret.data.unwrap()["agent.creds"].0.clone()).unwrap();
        agents.insert(role, Connected::with_creds(&nats, &creds, role).await);
    }
    for (role, agent) in &agents {
        agent
            .jetstream
            .get_consumer_from_stream::<consumer::pull::Config, _, _>(
                format!("{role}-agent"),
                stream.clone(),
            )
            .await
            .unwrap_or_else(|err| panic!("{role} may not look up its own consumer: {err}"));
        for other in agents.keys().filter(|other| *other != role) {
            let theirs = agent
                .jetstream
                .get_consumer_from_stream::<consumer::pull::Config, _, _>(
                    format!("{other}-agent"),
                    stream.clone(),
                )
                .await;
            assert!(theirs.is_err(), "{role} looked up {other}'s consumer");
            agent
                .refused(&format!("$JS.API.CONSUMER.INFO.{stream}.{other}-agent"))
                .await;
        }
    }
    // What fleet.toml declares, and only that.
    agents["devops"]
        .jetstream
        .publish(fleet.task_subject("reviewer"), "review this".into())
        .await
        .unwrap()
        .await
        .expect("devops may ask the reviewer for a review");
    agents["reviewer"]
        .jetstream
        .publish(fleet.task_subject("devops"), "fixed".into())
        .await
        .unwrap()
        .await
        .expect("the reviewer may hand a fix back to devops");
    for (role, subject) in [
        ("observer", fleet.task_subject("devops")),
        ("devops", fleet.task_subject("observer")),
        ("reviewer", fleet.task_subject("reviewer")),
    ] {
        agents[role]
            .client
            .publish(subject.clone(), "x".into())
            .await
            .unwrap();
        agents[role].refused(&subject).await;
    }
}
