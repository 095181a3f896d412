//! Secrets never reach any output channel. One test plants a distinct value
//! for every kind of secret fleet can be given or can meet (NATS password,
//! also inside the URL, token, NKey seed, creds file, the kubeconfig's client
//! key, a Secret an agent references, a Secret's last-applied copy, NATS
//! account signing keys that apply refuses) and looks
//! for each in everything plan and apply print or write, on success and on
//! failure.

use std::path::Path;

use crate::support::{self, FleetDir, NatsServer, Run, TestEnv};
use base64::Engine as _;
use k8s_openapi::api::core::v1::Secret;
use kube::api::PostParams;
use serde_json::json;

/// Everything one run showed: its stdout and stderr, and files it wrote.
fn shown(run: &Run, files: &[&Path]) -> String {
    let mut text = format!("{}\n{}", run.stdout, run.stderr);
    for file in files {
        text.push_str(&std::fs::read_to_string(file).unwrap_or_default());
    }
    text
}

#[tokio::test]
async fn no_secret_reaches_any_output_channel() {
    let env = TestEnv::new("secrets").await;
    let fleet = FleetDir::for_test(&env);
    let dir = fleet.dir.path();

    // The secrets, each distinct so a leak names its source.
    let password = "pw-Q7xv93kZ";
    let wrong_password = "pw-wrong-J4tq";
    let token = "tok-Lm28vQ7p";
    let user_key = nkeys::KeyPair::new_user();
    let nkey_seed = user_key.seed().unwrap();
    let creds_seed = nkeys::KeyPair::new_user().seed().unwrap();
    let referenced_value = "sec-Vn47Rt2w";
    let last_applied_value = "sec-last-Pz81";

    // A server taking a user/password and an NKey, and one taking a token.
    let config = dir.join("nats.conf");
    std::fs::write(
        &config,
        format!(
            "authorization {{ users = [ {{ user: fleet, password: \"{password}\" }}, {{ nkey: {} }} ] }}\n",
            user_key.public_key()
        ),
    )
    .unwrap();
    let server = NatsServer::start(&["-c", config.to_str().unwrap()]).await;
    let token_server = NatsServer::start(&["--auth", token]).await;
    let seed_file = dir.join("fleet.nk");
    std::fs::write(&seed_file, &nkey_seed).unwrap();
    let creds_file = dir.join("fleet.creds");
    std::fs::write(
        &creds_file,
        format!(
            "-----BEGIN NATS USER JWT-----\neyJhbGciOiJlZDI1NTE5LW5rZXkiLCJ0eXAiOiJKV1QifQ.e30.c2ln\n------END NATS USER JWT------\n\n-----BEGIN USER NKEY SEED-----\n{creds_seed}\n------END USER NKEY SEED------\n"
        ),
    )
    .unwrap();
    let kubeconfig = std::fs::read_to_string(&env.control_plane.kubeconfig).unwrap();
    // The body of each client key the kubeconfig names (a line of its PEM).
    let client_keys: Vec<String> = kubeconfig
        .lines()
        .filter_map(|l| l.trim().strip_prefix("client-key:"))
        .filter_map(|path| std::fs::read_to_string(path.trim()).ok())
        .filter_map(|pem| pem.lines().nth(1).map(str::to_string))
        .collect();
    assert!(!client_keys.is_empty(), "the kubeconfig has client keys");

    // An agent reads a key of a Secret; someone client-side applied a
    // Secret carrying fleet's ApplySet label, which fleet will plan to
    // destroy, showing it (its value is in the last-applied annotation too).
    fleet.set_definition(
        &std::fs::read_to_string(support::repo_root().join("fleet.toml"))
            .unwrap()
            .replace(
                "[agents.observer]\n",
                "[agents.observer]\nenv = { API_KEY = { secret = \"agent-keys\", key = \"api-key\" } }\n",
            ),
    );
    let url_with_password = format!("nats://fleet:{password}@127.0.0.1:{}", server.port);
    fleet.set_environment_with_nats(&url_with_password, "");
    fleet
        .apply(&[])
        .assert_ok("apply with the password in the URL");
    let secrets: kube::Api<Secret> = kube::Api::namespaced(env.kube.clone(), &fleet.namespace);
    let secret = |name: &str, value: &str| -> Secret {
        serde_json::from_value(json!({
            "metadata": { "name": name },
            "stringData": { "api-key": value }
        }))
        .unwrap()
    };
    secrets
        .create(
            &PostParams::default(),
            &secret("agent-keys", referenced_value),
        )
        .await
        .unwrap();
    // fleet's ApplySet parent replaced by a Secret made by hand with
    // values, client-side, so they land in the last-applied annotation too:
    // fleet reads it by name, shows it as not its own, and with --adopt
    // plans to take it over, with a diff of its (masked) body.
    secrets
        .delete("fleet-agent-ceo", &Default::default())
        .await
        .unwrap();
    let manifest = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": { "name": "fleet-agent-ceo" },
        "stringData": { "api-key": last_applied_value }
    });
    support::eventually(
        "the parent to be gone",
        std::time::Duration::from_secs(30),
        || async {
            secrets
                .get_opt("fleet-agent-ceo")
                .await
                .unwrap()
                .is_none()
                .then_some(())
        },
    )
    .await;
    env.control_plane
        .kubectl_stdin(&["-n", &fleet.namespace, "apply"], &manifest.to_string());

    let plan_file = dir.join("plan.json");
    let plan_path = plan_file.to_str().unwrap();
    let mut outputs = Vec::new();
    // Successes: every format, a saved plan, apply, with each credential.
    fleet.set_environment_with_nats(
        &server.url,
        // The observer (which reads the Secret) changes too, so its body,
        // naming the Secret, is in the plans.
        "[agents.devops]\nreplicas = 2\nautoscaling = { enabled = false }\n[agents.observer]\nreplicas = 3\n",
    );
    let user = ["--nats-user", "fleet", "--nats-password", password];
    for format in ["text", "json", "markdown"] {
        let mut args = vec!["plan", "--adopt", "--format", format, "--out", plan_path];
        args.extend(user);
        let run = fleet.run(&args);
        run.assert_ok("plan");
        outputs.push(shown(&run, &[&plan_file]));
    }
    let seed_path = seed_file.to_str().unwrap();
    let applied = fleet.run(&[
        "apply",
        "--auto-approve",
        "--timeout",
        "90s",
        "--nats-nkey",
        seed_path,
        "--adopt",
    ]);
    applied.assert_ok("apply with an NKey");
    outputs.push(shown(&applied, &[]));
    fleet.set_environment_with_nats(&token_server.url, "");
    let with_token = fleet.run(&["plan", "--format", "json", "--nats-token", token]);
    with_token.assert_ok("plan with a token");
    outputs.push(shown(&with_token, &[]));

    // Failures: a wrong password (flag and URL), a creds file the server
    // cannot accept, a user without a password, a server that is down.
    fleet.set_environment_with_nats(&server.url, "");
    let creds_path = creds_file.to_str().unwrap();
    let failures = [
        vec![
            "plan",
            "--nats-user",
            "fleet",
            "--nats-password",
            wrong_password,
        ],
        vec!["apply", "--auto-approve", "--nats-creds", creds_path],
        vec!["plan", "--nats-password", password],
    ];
    for args in &failures {
        let run = fleet.run(args);
        assert_eq!(run.code, 1, "{args:?}: {}{}", run.stdout, run.stderr);
        outputs.push(shown(&run, &[]));
    }
    // An account signing key that is none, and one of another kind: apply
    // refuses them before writing, without showing them.
    let garbage_key = "SA-not-a-seed-Zx91";
    let user_seed_as_key = nkeys::KeyPair::new_user().seed().unwrap();
    fleet.set_environment_with_nats(
        &server.url,
        &format!(
            "[nats_credentials]\naccount = \"{}\"\n",
            nkeys::KeyPair::new_account().public_key()
        ),
    );
    for key in [garbage_key, user_seed_as_key.as_str()] {
        let output = fleet
            .command(&["apply", "--auto-approve"])
            .args(user)
            .env("FLEET_NATS_ACCOUNT_SIGNING_KEY", key)
            .output()
            .unwrap();
        let run = Run::from(output);
        assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
        assert!(run.stderr.contains("account signing key"), "{}", run.stderr);
        outputs.push(shown(&run, &[]));
    }
    fleet.set_environment_with_nats(
        &format!("nats://fleet:{wrong_password}@127.0.0.1:{}", server.port),
        "",
    );
    let refused = fleet.run(&["plan", "--format", "json"]);
    assert_eq!(refused.code, 1, "{}{}", refused.stdout, refused.stderr);
    assert!(
        refused.stderr.contains("nats://***@127.0.0.1"),
        "the URL is shown without its userinfo: {}",
        refused.stderr
    );
    outputs.push(shown(&refused, &[]));
    drop(token_server);
    fleet.set_environment_with_nats(&format!("nats://x:{token}@127.0.0.1:1"), "");
    let down = fleet.run(&["plan"]);
    assert_eq!(down.code, 1, "{}{}", down.stdout, down.stderr);
    outputs.push(shown(&down, &[]));

    // The plan names what it is about, so the search below searches
    // something real.
    assert!(
        outputs.iter().any(|o| o.contains("agent-keys")),
        "the Secret reference is shown by name"
    );
    assert!(
        outputs[0].contains(&format!("~ Secret {}/fleet-agent-ceo", fleet.namespace))
            && outputs[0].contains("(sensitive value)"),
        "the Secret made by hand is planned to be taken over, its values masked:\n{}",
        outputs[0]
    );
    let encoded = |v: &str| base64::engine::general_purpose::STANDARD.encode(v);
    let mut planted = vec![
        password.to_string(),
        wrong_password.to_string(),
        token.to_string(),
        nkey_seed.clone(),
        creds_seed.clone(),
        referenced_value.to_string(),
        encoded(referenced_value),
        last_applied_value.to_string(),
        encoded(last_applied_value),
        garbage_key.to_string(),
        user_seed_as_key.clone(),
    ];
    planted.extend(client_keys);
    for (i, output) in outputs.iter().enumerate() {
        for secret in &planted {
            assert!(
                !output.contains(secret.as_str()),
                "output {i} shows a secret ({}...):\n{output}",
                &secret[..6]
            );
        }
    }
}
