//! The proof of no change (`src/plan/unchanged.rs`) never lies: after every
//! kind of change to the live objects and to the definition, the plan made
//! with it equals the plan made with a dry run of every object
//! (`--dry-run-all`), field for field.
//!
//! A fixed list of targeted changes runs first, then random ones. More with
//! one command: `FLEET_PROOF_CASES=500 cargo test --test no_change_proof`
//! (`FLEET_PROOF_SEED` repeats a run; the seed is printed).

use crate::support::{self, FleetDir, Run, TestEnv};
use serde_json::{Value, json};

/// The plan with the proof and the plan without it must be the same; the
/// number of objects the proof settled is returned, read from stderr.
fn plans_agree(fleet: &FleetDir, case: &str) -> usize {
    let proven = fleet.run(&["plan", "--format", "json"]);
    let dry_run = fleet.run(&["plan", "--format", "json", "--dry-run-all"]);
    assert_eq!(
        proven.code, dry_run.code,
        "{case}: exit codes differ\nwith the proof:\n{}{}\nwith dry runs:\n{}{}",
        proven.stdout, proven.stderr, dry_run.stdout, dry_run.stderr
    );
    if proven.code == 1 {
        // Both failed: for the same reason.
        assert_eq!(proven.stderr, dry_run.stderr, "{case}");
        return 0;
    }
    let (with_proof, with_dry_runs) = (plan_json(&proven, case), plan_json(&dry_run, case));
    if with_proof != with_dry_runs {
        panic!(
            "{case}: the proof changed the plan\n{}",
            differences(&with_proof, &with_dry_runs)
        );
    }
    assert_eq!(
        proven_count(&dry_run),
        0,
        "{case}: --dry-run-all dry-runs all"
    );
    proven_count(&proven)
}

/// The entries of two plans that differ, side by side (a whole plan of the
/// example is too long for a CI log).
fn differences(with_proof: &Value, with_dry_runs: &Value) -> String {
    let entries = |plan: &Value| plan["changes"].as_array().cloned().unwrap_or_default();
    let (proven, dry_run) = (entries(with_proof), entries(with_dry_runs));
    let mut out = String::new();
    for n in 0..proven.len().max(dry_run.len()) {
        let (a, b) = (proven.get(n), dry_run.get(n));
        if a != b {
            let show = |entry: Option<&Value>| {
                entry.map_or("(none)".to_string(), |e| {
                    serde_json::to_string_pretty(e).unwrap()
                })
            };
            out.push_str(&format!(
                "entry {n} with the proof:\n{}\nentry {n} with dry runs:\n{}\n",
                show(a),
                show(b)
            ));
        }
    }
    let (mut a, mut b) = (with_proof.clone(), with_dry_runs.clone());
    a["changes"] = Value::Null;
    b["changes"] = Value::Null;
    if a != b {
        out.push_str(&format!(
            "the rest with the proof:\n{a:#}\nwith dry runs:\n{b:#}\n"
        ));
    }
    out
}

fn plan_json(run: &Run, case: &str) -> Value {
    serde_json::from_str(&run.stdout).unwrap_or_else(|err| {
        panic!(
            "{case}: the plan is not JSON ({err}):\n{}{}",
            run.stdout, run.stderr
        )
    })
}

/// From `fleet: N objects unchanged since fleet's last apply, ...`.
fn proven_count(run: &Run) -> usize {
    run.stderr
        .lines()
        .find_map(|line| {
            let (count, _) = line
                .strip_prefix("fleet: ")?
                .split_once(" objects unchanged")?;
            count.parse().ok()
        })
        .unwrap_or_else(|| panic!("no count of unchanged objects in:\n{}", run.stderr))
}

/// `kubectl apply --server-side` of `body` as `manager`, taking fields over.
fn apply_as(fleet: &FleetDir, manager: &str, body: &Value) {
    support::control_plane().kubectl_stdin(
        &[
            "-n",
            &fleet.namespace,
            "apply",
            "--server-side",
            "--force-conflicts",
            &format!("--field-manager={manager}"),
        ],
        &body.to_string(),
    );
}

/// The objects fleet renders that the cluster serves, as rendered.
fn rendered(fleet: &FleetDir) -> Vec<Value> {
    let render = fleet.run(&["render", "--format", "json"]);
    render.assert_ok("render");
    let all: Value = serde_json::from_str(&render.stdout).unwrap();
    all["kubernetes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| !["Namespace", "ServiceMonitor"].contains(&o["kind"].as_str().unwrap()))
        .cloned()
        .collect()
}

/// `deployment/agent-devops`, as kubectl names an object.
fn kubectl_name(object: &Value) -> String {
    let kind = object["kind"].as_str().unwrap().to_lowercase();
    let group = object["apiVersion"]
        .as_str()
        .unwrap()
        .rsplit_once('/')
        .map(|(group, _)| format!(".{group}"))
        .unwrap_or_default();
    format!(
        "{kind}{group}/{}",
        object["metadata"]["name"].as_str().unwrap()
    )
}

/// Only the identity of `object`, to build a partial body on.
fn identity(object: &Value) -> Value {
    json!({
        "apiVersion": object["apiVersion"], "kind": object["kind"],
        "metadata": { "name": object["metadata"]["name"], "namespace": object["metadata"]["namespace"] }
    })
}

/// One change made outside fleet's plan, to one object.
#[derive(Debug, Clone, Copy)]
enum Change {
    /// kubectl label: a label fleet does not set.
    ForeignLabel,
    /// kubectl label --overwrite of a label fleet sets.
    OverwriteLabel,
    /// kubectl annotate --overwrite of fleet's applied-hash.
    OverwriteHash,
    /// kubectl patch (JSON) removing a label fleet sets.
    RemoveLabel,
    /// Another applier declaring fleet's label with fleet's value: shared.
    ShareLabel,
    /// Another applier taking fleet's label with force.
    TakeLabel,
    /// Another applier adding an annotation of its own.
    ForeignAnnotation,
    /// Every managedFields entry reset.
    ResetManagedFields,
    /// Deleted.
    Delete,
    /// Applied under fleet's own manager name with another value of one of
    /// its labels, and fleet's hash kept: the same fields, and only the
    /// values tell.
    ImpersonateKeepingHash,
    /// Applied under fleet's name as an older fleet would have: one label
    /// fewer and another hash.
    OlderFleetVersion,
}

const CHANGES: &[Change] = &[
    Change::ForeignLabel,
    Change::OverwriteLabel,
    Change::OverwriteHash,
    Change::RemoveLabel,
    Change::ShareLabel,
    Change::TakeLabel,
    Change::ForeignAnnotation,
    Change::ResetManagedFields,
    Change::Delete,
    Change::ImpersonateKeepingHash,
    Change::OlderFleetVersion,
];

fn make(fleet: &FleetDir, change: Change, object: &Value, salt: u64) {
    let name = kubectl_name(object);
    let tier = "agent.ceo/tier";
    let has_tier = object["metadata"]["labels"][tier].is_string();
    // The label fleet sets on every object.
    let fleets_label = if has_tier {
        tier
    } else {
        "app.kubernetes.io/managed-by"
    };
    let kubectl = |args: &[&str]| {
        fleet.kubectl(args);
    };
    match change {
        Change::ForeignLabel => kubectl(&["label", &name, &format!("extra-{salt}=x")]),
        Change::OverwriteLabel if has_tier => kubectl(&["label", "--overwrite", &name, &format!("{tier}=t{salt}")],
        ),
        Change::OverwriteLabel => kubectl(&["label", &name, "--overwrite", "extra=y"]),
        Change::OverwriteHash => kubectl(&[
                "annotate",
                "--overwrite",
                &name,
                &format!("fleet.agent.ceo/applied-hash=h{salt}"),
            ],
        ),
        Change::RemoveLabel => kubectl(&[
                "patch",
                &name,
                "--type=json",
                "-p",
                &json!([{ "op": "remove", "path": format!("/metadata/labels/{}", fleets_label.replace('/', "~1")) }]).to_string(),
            ],
        ),
        Change::ShareLabel | Change::TakeLabel => {
            let mut body = identity(object);
            let value = match change {
                Change::ShareLabel => object["metadata"]["labels"][fleets_label].clone(),
                _ => json!(format!("taken-{salt}")),
            };
            body["metadata"]["labels"] = json!({ fleets_label: value });
            apply_as(fleet, "other-tool", &body);
        }
        Change::ForeignAnnotation => {
            let mut body = identity(object);
            body["metadata"]["annotations"] = json!({ "other.example/note": format!("n{salt}") });
            apply_as(fleet, "other-tool", &body);
        }
        Change::ResetManagedFields => kubectl(&[
                "patch",
                &name,
                "--type=merge",
                "-p",
                r#"{"metadata":{"managedFields":[{}]}}"#,
            ],
        ),
        Change::Delete => kubectl(&["delete", &name, "--wait=false"]),
        Change::ImpersonateKeepingHash => {
            let mut body = object.clone();
            body["metadata"]["labels"][fleets_label] = json!(format!("i{salt}"));
            body["metadata"]["annotations"]["fleet.agent.ceo/applied-hash"] =
                live_hash(fleet, &name);
            apply_as(fleet, "fleet", &body);
        }
        Change::OlderFleetVersion => {
            let mut body = object.clone();
            let labels = body["metadata"]["labels"].as_object_mut().unwrap();
            labels.shift_remove(fleets_label);
            body["metadata"]["annotations"]["fleet.agent.ceo/applied-hash"] =
                json!(format!("old{salt}"));
            apply_as(fleet, "fleet", &body);
        }
    }
}

/// The applied-hash annotation of the live object (`null` if none).
fn live_hash(fleet: &FleetDir, name: &str) -> Value {
    let live: Value = serde_json::from_str(&fleet.kubectl(&["get", name, "-o", "json"])).unwrap();
    live["metadata"]["annotations"]["fleet.agent.ceo/applied-hash"].clone()
}

/// Puts the fleet back as defined, whatever was done to it.
fn restore(fleet: &FleetDir, case: &str) {
    fleet
        .apply(&["--force-conflicts", "--adopt", "--no-wait"])
        .assert_ok(&format!("{case}: apply restoring"));
}

#[tokio::test]
async fn the_proof_never_changes_a_plan() {
    let env = TestEnv::new("proof").await;
    let fleet = FleetDir::for_test(&env);
    fleet.apply(&["--no-wait"]).assert_ok("apply");
    let objects = rendered(&fleet);
    let proven = plans_agree(&fleet, "right after apply");
    assert!(
        proven >= objects.len(),
        "everything is proven unchanged right after an apply: {proven} of {}",
        objects.len()
    );

    // Targeted: every change to a Deployment, a ConfigMap and a
    // NetworkPolicy; then kind-specific hand edits.
    let by_kind = |kind: &str| {
        objects
            .iter()
            .find(|o| o["kind"] == kind)
            .unwrap_or_else(|| panic!("the example renders a {kind}"))
    };
    let mut salt = 0;
    for kind in ["Deployment", "ConfigMap", "NetworkPolicy"] {
        for change in CHANGES {
            salt += 1;
            let case = format!("{change:?} on {kind}");
            make(&fleet, *change, by_kind(kind), salt);
            plans_agree(&fleet, &case);
            restore(&fleet, &case);
            plans_agree(&fleet, &format!("{case}, restored"));
        }
    }
    let hand_edits: &[(&str, &[&str])] = &[
        (
            "kubectl set env (an addition)",
            &["set", "env", "deployment/agent-observer", "EXTRA=1"],
        ),
        (
            "kubectl rollout restart",
            &["rollout", "restart", "deployment/agent-observer"],
        ),
        (
            "kubectl scale",
            &["scale", "deployment/agent-observer", "--replicas=3"],
        ),
        (
            "kubectl set image",
            &[
                "set",
                "image",
                "deployment/agent-observer",
                "agent=agent:hand",
            ],
        ),
        (
            "kubectl patch of a container's env",
            &[
                "patch",
                "deployment/agent-devops",
                "--type=strategic",
                "-p",
                r#"{"spec":{"template":{"spec":{"containers":[{"name":"agent","env":[{"name":"NATS_URL","value":"nats://elsewhere:4222"}]}]}}}}"#,
            ],
        ),
        (
            "kubectl patch of a field fleet does not send",
            &[
                "patch",
                "deployment/agent-devops",
                "--type=strategic",
                "-p",
                r#"{"spec":{"template":{"spec":{"containers":[{"name":"agent","imagePullPolicy":"Always"}]}}}}"#,
            ],
        ),
        (
            "kubectl patch of a ConfigMap's data",
            &[
                "patch",
                "configmap/agent-devops-config",
                "--type=merge",
                "-p",
                r#"{"data":{"extra.yaml":"x: 1\n"}}"#,
            ],
        ),
        (
            "kubectl patch of a Service's target port",
            &[
                "patch",
                "service/agent-devops",
                "--type=json",
                "-p",
                r#"[{"op":"replace","path":"/spec/ports/0/targetPort","value":9999}]"#,
            ],
        ),
        (
            "kubectl patch of a NetworkPolicy's rules",
            &[
                "patch",
                "networkpolicy/agent-devops-network",
                "--type=merge",
                "-p",
                r#"{"spec":{"ingress":[]}}"#,
            ],
        ),
    ];
    for (case, args) in hand_edits {
        fleet.kubectl(args);
        plans_agree(&fleet, case);
        restore(&fleet, case);
    }

    // Fleet itself with another definition, then the original one again:
    // fleet owns what the other definition added.
    let original = std::fs::read_to_string(fleet.dir.path().join("fleet.toml")).unwrap();
    let other = original.replace(
        "[agents.observer]\n",
        "[agents.observer]\nenv = { EXTRA = \"1\" }\nimage = \"agent:other\"\n",
    );
    assert_ne!(other, original);
    std::fs::write(fleet.dir.path().join("fleet.toml"), &other).unwrap();
    plans_agree(&fleet, "another definition, not applied");
    restore(&fleet, "another definition");
    std::fs::write(fleet.dir.path().join("fleet.toml"), &original).unwrap();
    plans_agree(&fleet, "the original definition after another was applied");
    restore(&fleet, "the original definition");

    // Random: changes to random objects, several at once, and random edits
    // of the definition.
    let cases: usize = std::env::var("FLEET_PROOF_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(12);
    let (mut random, seed) = support::Random::from_env("FLEET_PROOF_SEED");
    eprintln!("no_change_proof: {cases} random cases, FLEET_PROOF_SEED={seed}");
    let definition_edits = [
        ("observer replicas", "replicas = 2", "replicas = 4"),
        (
            "devops memory limit",
            "memory = \"4Gi\"",
            "memory = \"4096Mi\"",
        ),
        ("reviewer maximum", "min = 1, max = 3", "min = 1, max = 4"),
        ("stream max_age", "max_age = \"7d\"", "max_age = \"6d\""),
    ];
    for n in 0..cases {
        let mut done = Vec::new();
        for _ in 0..=random.below(3) {
            let object = random.pick(&objects);
            let change = *random.pick(CHANGES);
            salt += 1;
            // A deleted object cannot be changed again in the same case, nor
            // a label removed that is gone already.
            let gone = |c: &Change| {
                matches!(c, Change::Delete)
                    || (matches!(change, Change::RemoveLabel)
                        && matches!(c, Change::RemoveLabel | Change::OlderFleetVersion))
            };
            if done
                .iter()
                .any(|(o, c): &(&Value, Change)| o == &object && gone(c))
            {
                continue;
            }
            make(&fleet, change, object, salt);
            done.push((object, change));
        }
        let mut case = format!(
            "random case {n} (seed {seed}): {done:?}",
            done = done
                .iter()
                .map(|(o, c)| format!("{c:?} on {}", kubectl_name(o)))
                .collect::<Vec<_>>()
        );
        if random.below(3) == 0 {
            let (what, from, to) = *random.pick(&definition_edits);
            assert!(original.contains(from), "the example has `{from}`");
            std::fs::write(
                fleet.dir.path().join("fleet.toml"),
                original.replacen(from, to, 1),
            )
            .unwrap();
            case.push_str(&format!(" and the definition's {what} changed"));
        }
        plans_agree(&fleet, &case);
        std::fs::write(fleet.dir.path().join("fleet.toml"), &original).unwrap();
        restore(&fleet, &case);
    }
    // Not everything is proven again: where the values are fleet's but its
    // record is not (the hash annotated over, managedFields reset), the plan
    // is empty, apply writes nothing, and the object keeps being dry-run.
    plans_agree(&fleet, "at the end");
}
