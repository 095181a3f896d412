//! `fleet import` round trips on the local control plane: objects made by
//! hand (kubectl, the NATS API) are imported, `fleet plan --adopt` on the
//! imported definition changes nothing but fleet's ownership marks, and
//! after `fleet apply --adopt` the next plan is empty.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::support::{self, ADMIN_CONTEXT, TestEnv, control_plane, repo_root};
use async_nats::jetstream::{consumer, stream};
use serde_json::Value;

/// `fleet ARGS` in `dir`, against the control plane and `nats_url` (no
/// environment: the imported fleet.toml names none).
fn fleet(dir: &Path, args: &[&str], nats_url: &str) -> support::Run {
    let output = Command::new(env!("CARGO_BIN_EXE_fleet"))
        .args(args)
        .current_dir(dir)
        .env("KUBECONFIG", &control_plane().kubeconfig)
        .env("FLEET_KUBE_CONTEXT", ADMIN_CONTEXT)
        .env("FLEET_NATS_URL", nats_url)
        .env("NO_COLOR", "1")
        .env_remove("FLEET_ENV")
        .env_remove("GITHUB_ACTIONS")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("running fleet");
    support::Run::from(output)
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
/// them, the annotation that keeps the ownership labels off KEDA's HPA, and
/// the owner in a stream's or consumer's metadata.
fn is_mark(line: &str, domain: &str) -> bool {
    let line = line[1..].trim();
    [
        "app.kubernetes.io/managed-by: fleet",
        "applyset.kubernetes.io/part-of: ",
        &format!("{domain}/role: "),
        "labels:",
        "metadata:",
        "fleet.owner: ",
        "scaledobject.keda.sh/hpa-excluded-labels: ",
    ]
    .iter()
    .any(|mark| line.starts_with(mark))
}

/// Imports `namespace` into a new directory, then checks the round trip:
/// the adopt plan changes only marks (the ApplySet parent is new), apply
/// adopts, and the next plan is empty. Returns the imported text.
fn round_trip(namespace: &str, name: &str, domain: &str) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let nats = &control_plane().nats_url;
    round_trip_in(dir.path(), namespace, name, domain, None, nats)
}

/// [`round_trip`] in `dir`; with `env`, as that environment's file over the
/// fleet.toml in `dir`. Returns the file and what import said.
fn round_trip_in(
    dir: &Path,
    namespace: &str,
    name: &str,
    domain: &str,
    env: Option<&str>,
    nats_url: &str,
) -> (String, String) {
    let fleet = |args: &[&str]| {
        let mut args = args.to_vec();
        if let Some(env) = env {
            args.extend(["--env", env]);
        }
        fleet(dir, &args, nats_url)
    };
    let imported = fleet(&["import", "--namespace", namespace, "--name", name]);
    imported.assert_ok("fleet import");
    let file = match env {
        Some(env) => dir.join("environments").join(format!("{env}.toml")),
        None => dir.join("fleet.toml"),
    };
    let text = std::fs::read_to_string(file).unwrap();
    assert!(
        !imported
            .stderr
            .contains("Differences no key or patch can say"),
        "{}\n{text}",
        imported.stderr
    );

    let plan = fleet(&["plan", "--adopt", "--format", "json"]);
    plan.assert_ok("fleet plan --adopt");
    let plan: Value = serde_json::from_str(&plan.stdout).unwrap();
    for change in plan["changes"].as_array().unwrap() {
        let target = &change["target"];
        let action = change["action"].as_str().unwrap();
        if target["kind"] == "Secret" && action == "create" {
            continue; // the ApplySet parent
        }
        // A kind whose API the control plane does not serve (the
        // ServiceMonitor, without the Prometheus operator's CRD) is skipped.
        assert!(
            matches!(action, "update" | "no-op" | "not-installed"),
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

    let applied = fleet(&["apply", "--adopt", "--auto-approve", "--no-wait"]);
    applied.assert_ok("fleet apply --adopt");
    let again = fleet(&["plan", "--detailed-exitcode"]);
    assert_eq!(
        again.code, 0,
        "the plan after the adopting apply is not empty:\n{}{}\n{text}",
        again.stdout, again.stderr
    );
    (text, imported.stderr)
}

async fn work_queue(env: &TestEnv, name: &str, subjects: &str) {
    make_stream(env, name, subjects, stream::RetentionPolicy::WorkQueue).await;
}

async fn make_stream(
    env: &TestEnv,
    name: &str,
    subjects: &str,
    retention: stream::RetentionPolicy,
) {
    env.jetstream
        .create_stream(stream::Config {
            name: name.into(),
            subjects: vec![subjects.into()],
            retention,
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
    let stream = seed_as_printed(&env).await;

    let (text, _) = round_trip(&env.namespace, "seed", "agent.ceo");
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

/// The seed as the article prints it, in the test's namespace and with a
/// stream of its own, whose name it returns.
async fn seed_as_printed(env: &TestEnv) -> String {
    let stream = format!("{}agent-tasks", env.stream_prefix);
    let (namespace, prefix) = (&env.namespace, &env.stream_prefix);
    seed(
        namespace,
        &stream,
        &env.jetstream,
        prefix,
        |m| m.to_string(),
        5,
    )
    .await;
    stream
}

/// The seed's manifests in `namespace` (`edit`ed first), with its stream and
/// consumer (redelivered at most `max_deliver` times) on `jetstream`.
async fn seed(
    namespace: &str,
    stream: &str,
    jetstream: &async_nats::jetstream::Context,
    prefix: &str,
    edit: impl Fn(&str) -> String,
    max_deliver: i64,
) {
    let subjects = format!("{prefix}.tasks");
    let mut manifests = String::new();
    for file in ["deployment.yaml", "hpa.yaml", "networkpolicy.yaml"] {
        let text =
            std::fs::read_to_string(repo_root().join("tests/fixtures/seed").join(file)).unwrap();
        manifests.push_str(&text.replace("agent-tasks", stream));
        manifests.push_str("\n---\n");
    }
    manifests.push_str(
        "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: agent-devops\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: agent-devops-config\ndata:\n  config.yaml: |\n    role: devops\n    tools: [kubectl, helm]\n",
    );
    let manifests = edit(&manifests.replace(
        "namespace: agent-system",
        &format!("namespace: {namespace}"),
    ));
    control_plane().kubectl_stdin(&["apply", "-n", namespace], &manifests);
    jetstream
        .create_stream(stream::Config {
            name: stream.into(),
            subjects: vec![format!("{subjects}.>")],
            retention: stream::RetentionPolicy::WorkQueue,
            max_age: Duration::from_secs(7 * 86_400),
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        })
        .await
        .unwrap()
        .create_consumer(consumer::pull::Config {
            durable_name: Some("devops-agent".into()),
            filter_subject: format!("{subjects}.devops.>"),
            ack_wait: Duration::from_secs(300),
            max_deliver,
            ..Default::default()
        })
        .await
        .unwrap();
}

/// A second environment of the seed's fleet, in another namespace and on
/// another NATS server, with a newer image, a higher maximum and another
/// redelivery limit: imported with `--env staging` over the fleet.toml the
/// first was imported into, the environment file says only those, and
/// round trips.
#[tokio::test]
async fn an_environment_imports_as_what_differs_from_fleet_toml() {
    let production = TestEnv::new("import env production").await;
    let staging = TestEnv::new("import env staging").await;
    let staging_nats = support::NatsServer::start(&[]).await;
    let staging_js =
        async_nats::jetstream::new(async_nats::connect(&staging_nats.url).await.unwrap());
    let stream = format!("{}agent-tasks", production.stream_prefix);
    let prefix = &production.stream_prefix;
    let same = |m: &str| m.to_string();
    seed(
        &production.namespace,
        &stream,
        &production.jetstream,
        prefix,
        same,
        5,
    )
    .await;
    let newer = |m: &str| {
        m.replace("agent-runtime:latest", "agent-runtime:1.5.0")
            .replace("maxReplicas: 5", "maxReplicas: 8")
    };
    seed(&staging.namespace, &stream, &staging_js, prefix, newer, 7).await;

    let dir = tempfile::tempdir().unwrap();
    let nats = &control_plane().nats_url;
    round_trip_in(
        dir.path(),
        &production.namespace,
        "seed",
        "agent.ceo",
        None,
        nats,
    );
    let (text, _) = round_trip_in(
        dir.path(),
        &staging.namespace,
        "seed",
        "agent.ceo",
        Some("staging"),
        &staging_nats.url,
    );
    let mut lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect();
    lines.sort();
    let mut expected = vec![
        "[environment]".to_string(),
        format!("namespace = \"{}\"", staging.namespace),
        format!("kube_context = \"{ADMIN_CONTEXT}\""),
        format!("nats_url = \"{}\"", staging_nats.url),
        "[agents.devops]".into(),
        "image = \"gcr.io/agent-ceo/agent-runtime:1.5.0\"".into(),
        "autoscaling = { max = 8 }".into(),
        "consumer = { max_deliver = 7 }".into(),
    ];
    expected.sort();
    assert_eq!(lines, expected, "{text}");
}

/// One hand-made agent of the varied fleet: its objects as kubectl would be
/// given them. `i` picks the variations, so the fleet covers them all.
fn hand_made_agent(i: usize, role: &str, stream: &str) -> Vec<Value> {
    use serde_json::json;
    let name = format!("agent-{role}");
    let tier = ["operations", "engineering", "research"][i % 3];
    let (requests, limits) = match i % 5 {
        0 => (
            json!({ "memory": "2Gi", "cpu": "1" }),
            json!({ "memory": "8Gi", "cpu": "4" }),
        ),
        1 => (
            json!({ "memory": "512Mi", "cpu": "250m" }),
            json!({ "memory": "2Gi", "cpu": "1" }),
        ),
        2 => (
            json!({ "memory": "256Mi", "cpu": "100m" }),
            json!({ "memory": "1Gi", "cpu": "500m" }),
        ),
        3 => (
            json!({ "memory": "768Mi", "cpu": "300m" }),
            json!({ "memory": "3Gi", "cpu": "1500m" }),
        ),
        _ => (
            json!({ "memory": "512Mi", "cpu": "250m" }),
            json!({ "memory": "4Gi", "cpu": "1" }),
        ),
    };
    let mut env = vec![
        json!({ "name": "NATS_URL", "value": "nats://nats.messaging.svc:4222" }),
        json!({ "name": "AGENT_ID", "valueFrom": { "fieldRef": { "fieldPath": "metadata.name" } } }),
        json!({ "name": "AGENT_NAMESPACE", "valueFrom": { "fieldRef": { "fieldPath": "metadata.namespace" } } }),
    ];
    if i.is_multiple_of(2) {
        env.push(
            json!({ "name": "LOG_LEVEL", "value": if i.is_multiple_of(4) { "debug" } else { "info" } }),
        );
    }
    if i % 3 == 1 {
        env.push(json!({ "name": "API_TOKEN", "valueFrom": { "secretKeyRef": { "name": "agent-tokens", "key": role } } }));
    }
    if i % 4 == 3 {
        env.push(json!({ "name": "MODEL", "valueFrom": { "configMapKeyRef": { "name": "models", "key": "default" } } }));
    }
    if i == 7 {
        // Before fleet's own variables: the order is kept.
        env.insert(0, json!({ "name": "FIRST", "value": "1" }));
    }
    let mut container = json!({
        "name": "agent",
        "image": format!("registry.example/agents/{role}:1.{i}.0"),
        "args": [format!("--role={role}"), "--config=/etc/agent/config.yaml"],
        "ports": [{ "name": "metrics", "containerPort": 9090 }, { "name": "health", "containerPort": 8080 }],
        "env": env,
        "resources": { "requests": requests, "limits": limits },
        "livenessProbe": { "httpGet": { "path": "/healthz", "port": "health" }, "initialDelaySeconds": 30, "periodSeconds": 60, "timeoutSeconds": 10 },
        "readinessProbe": { "httpGet": { "path": "/readyz", "port": "health" }, "initialDelaySeconds": 5 + i, "periodSeconds": 30 },
        "volumeMounts": [
            { "name": "agent-config", "mountPath": "/etc/agent" },
            { "name": "workspace", "mountPath": "/workspace" },
        ],
    });
    let mut volumes = vec![
        json!({ "name": "agent-config", "configMap": { "name": format!("{name}-config") } }),
        json!({ "name": "workspace", "emptyDir": { "sizeLimit": if i.is_multiple_of(2) { "10Gi" } else { "20Gi" } } }),
    ];
    if i % 2 == 1 {
        container["securityContext"] = json!({
            "allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true, "capabilities": { "drop": ["ALL"] }
        });
        container["volumeMounts"]
            .as_array_mut()
            .unwrap()
            .push(json!({ "name": "tmp", "mountPath": "/tmp" }));
        volumes.push(json!({ "name": "tmp", "emptyDir": {} }));
    }
    if i == 4 {
        container["command"] = json!(["/bin/agent", "serve"]);
        container["args"] = json!(["--verbose"]);
    }
    if i == 5 {
        container["imagePullPolicy"] = json!("Always");
        volumes.push(
            json!({ "name": "credentials", "secret": { "secretName": "agent-credentials" } }),
        );
        container["volumeMounts"].as_array_mut().unwrap().push(
            json!({ "name": "credentials", "mountPath": "/var/run/credentials", "readOnly": true }),
        );
    }
    let mut containers = vec![container];
    if i == 6 {
        containers.push(json!({ "name": "log-shipper", "image": "registry.example/shipper:2", "args": ["--from=/workspace/logs"] }));
    }
    let mut pod = json!({
        "serviceAccountName": name,
        "securityContext": { "runAsNonRoot": true, "runAsUser": 1000 + i as i64, "fsGroup": 1000 },
        "containers": containers,
        "volumes": volumes,
    });
    if i.is_multiple_of(5) {
        pod["affinity"] = json!({ "nodeAffinity": { "requiredDuringSchedulingIgnoredDuringExecution": { "nodeSelectorTerms": [
            { "matchExpressions": [{ "key": "agent.ceo/workload-type", "operator": "In", "values": ["cognitive"] }] }
        ] } } });
        pod["topologySpreadConstraints"] = json!([{ "maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
            "whenUnsatisfiable": "DoNotSchedule", "labelSelector": { "matchLabels": { "agent.ceo/tier": tier } } }]);
    }
    if i == 8 {
        pod["nodeSelector"] = json!({ "disk": "ssd" });
        pod["tolerations"] = json!([{ "key": "dedicated", "operator": "Equal", "value": "agents", "effect": "NoSchedule" }]);
        pod["terminationGracePeriodSeconds"] = json!(120);
    }
    if i == 9 {
        pod["priorityClassName"] = json!("system-cluster-critical");
    }
    let replicas = 1 + (i % 3) as i64;
    let mut pod_labels = json!({ "app": name, "agent.ceo/role": role });
    if i.is_multiple_of(5) {
        pod_labels["agent.ceo/tier"] = json!(tier);
    }
    let mut labels = json!({ "agent.ceo/role": role, "agent.ceo/tier": tier });
    if i % 4 == 2 {
        labels["team"] = json!("platform");
    }
    let mut deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": { "name": name, "labels": labels },
        "spec": {
            "selector": { "matchLabels": { "app": name } },
            "template": {
                "metadata": { "labels": pod_labels, "annotations": { "prometheus.io/scrape": "true", "prometheus.io/port": "9090" } },
                "spec": pod,
            },
        },
    });
    if !i.is_multiple_of(3) {
        deployment["spec"]["replicas"] = json!(replicas);
    }
    if i == 10 {
        deployment["spec"]["minReadySeconds"] = json!(15);
        deployment["spec"]["revisionHistoryLimit"] = json!(3);
    }
    let mut objects = vec![
        json!({ "apiVersion": "v1", "kind": "ServiceAccount", "metadata": { "name": name, "labels": { "agent.ceo/role": role } } }),
        json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": format!("{name}-config") },
                "data": { "config.yaml": format!("role: {role}\nmodel: {}\n", if i.is_multiple_of(2) { "large" } else { "small" }) } }),
        deployment,
    ];
    if i == 15 {
        // Scaled by KEDA, as a ScaledObject is usually written by hand:
        // KEDA names its HPA itself, and the target's kind is implied.
        objects.push(json!({
            "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": { "name": name },
            "spec": {
                "scaleTargetRef": { "name": name },
                "minReplicaCount": 0, "maxReplicaCount": 6, "pollingInterval": 10, "cooldownPeriod": 120,
                "triggers": [{ "type": "nats-jetstream", "metadata": {
                    "natsServerMonitoringEndpoint": support::nats_monitoring(), "account": "$G",
                    "stream": stream, "consumer": format!("{role}-agent"),
                    "lagThreshold": "5", "useHttps": "false",
                } }],
            },
        }));
    } else if i.is_multiple_of(3) {
        objects.push(json!({
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": { "name": format!("{name}-hpa") },
            "spec": {
                "scaleTargetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": name },
                "minReplicas": 1, "maxReplicas": 3 + i as i64,
                "metrics": [
                    { "type": "External", "external": {
                        "metric": { "name": "nats_consumer_pending_messages",
                                    "selector": { "matchLabels": { "consumer": format!("{role}-agent"), "stream": stream } } },
                        "target": { "type": "AverageValue", "averageValue": (2 + i % 4).to_string() } } },
                    { "type": "Resource", "resource": { "name": "cpu", "target": { "type": "Utilization", "averageUtilization": 70 } } },
                ],
                "behavior": {
                    "scaleUp": { "stabilizationWindowSeconds": 30, "policies": [{ "type": "Percent", "value": 100, "periodSeconds": 60 }] },
                    "scaleDown": { "stabilizationWindowSeconds": 300, "policies": [{ "type": "Pods", "value": 1, "periodSeconds": 300 }] },
                },
            },
        }));
    } else if replicas > 1 {
        objects.push(json!({
            "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": { "name": name, "labels": { "agent.ceo/role": role } },
            "spec": { "selector": { "matchLabels": { "app": name } },
                      "maxUnavailable": if i.is_multiple_of(2) { json!(1) } else { json!("50%") } },
        }));
    }
    if i.is_multiple_of(2) {
        objects.push(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": { "name": name, "labels": { "agent.ceo/role": role, "agent.ceo/monitored": "true", "app": name } },
            "spec": { "selector": { "app": name }, "ports": [{ "name": "metrics", "port": 9090, "targetPort": "metrics" }] },
        }));
    }
    if i % 4 != 3 {
        objects.push(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": { "name": name },
            "rules": [{ "apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "watch"] }],
        }));
        objects.push(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": { "name": name },
            "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name },
            "subjects": [{ "kind": "ServiceAccount", "name": name }],
        }));
    }
    if i % 3 == 2 {
        objects.push(json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": { "name": format!("{name}-network") },
            "spec": {
                "podSelector": { "matchLabels": { "agent.ceo/role": role } },
                "policyTypes": ["Ingress", "Egress"],
                "ingress": [{ "from": [{ "podSelector": { "matchLabels": { "agent.ceo/role": "planner" } } }], "ports": [{ "port": 8080 }] }],
                "egress": [{ "to": [{ "ipBlock": { "cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"] } }], "ports": [{ "port": 4222, "protocol": "TCP" }, { "port": 53, "protocol": "UDP" }] }],
            },
        }));
    }
    objects
}

const ROLES: [&str; 20] = [
    "planner",
    "coder",
    "reviewer",
    "tester",
    "deployer",
    "observer",
    "triage",
    "writer",
    "researcher",
    "summarizer",
    "translator",
    "scheduler",
    "auditor",
    "notifier",
    "indexer",
    "crawler",
    "analyst",
    "support",
    "billing",
    "security",
];

/// Twenty agents made by hand in every variation the seed's platform could
/// have left: profiles met exactly or not, autoscalers and budgets,
/// variables from Secrets and ConfigMaps, sidecars, hardened pods and not,
/// consumers on two streams; with a Deployment and a ConfigMap that belong
/// to no agent.
#[tokio::test]
async fn a_fleet_of_twenty_varied_agents_imports_exactly() {
    let env = TestEnv::new("import twenty").await;
    let streams = [
        format!("{}tasks", env.stream_prefix),
        format!("{}reviews", env.stream_prefix),
    ];
    let mut items = Vec::new();
    for (i, role) in ROLES.iter().enumerate() {
        items.extend(hand_made_agent(i, role, &streams[i % 2]));
    }
    items.push(serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": { "name": "redis" },
        "spec": { "selector": { "matchLabels": { "app": "redis" } },
                  "template": { "metadata": { "labels": { "app": "redis" } },
                                "spec": { "containers": [{ "name": "redis", "image": "redis:7" }] } } },
    }));
    items.push(serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "models" }, "data": { "default": "large" },
    }));
    let list = serde_json::json!({ "apiVersion": "v1", "kind": "List", "items": items });
    control_plane().kubectl_stdin(&["apply", "-n", &env.namespace], &list.to_string());

    work_queue(&env, &streams[0], &format!("{}.tasks.>", env.stream_prefix)).await;
    make_stream(
        &env,
        &streams[1],
        &format!("{}.reviews.>", env.stream_prefix),
        stream::RetentionPolicy::Limits,
    )
    .await;
    for (i, role) in ROLES.iter().enumerate() {
        let stream = &streams[i % 2];
        let prefix = format!("{}.{}", env.stream_prefix, ["tasks", "reviews"][i % 2]);
        pull_consumer(
            &env,
            stream,
            consumer::pull::Config {
                durable_name: Some(format!("{role}-agent")),
                filter_subject: if i == 11 {
                    format!("{prefix}.shared.>")
                } else {
                    format!("{prefix}.{role}.>")
                },
                ack_wait: Duration::from_secs(30 * (1 + i as u64 % 4)),
                max_deliver: [5, -1, 3][i % 3],
                max_ack_pending: if i % 5 == 4 { 10 } else { 1000 },
                backoff: if i == 12 {
                    vec![Duration::from_secs(1), Duration::from_secs(30)]
                } else {
                    Vec::new()
                },
                description: (i == 13).then(|| "notifications, made by hand".to_string()),
                ..Default::default()
            },
        )
        .await;
    }
    pull_consumer(
        &env,
        &streams[1],
        consumer::pull::Config {
            durable_name: Some("debugging".into()),
            filter_subject: format!("{}.reviews.>", env.stream_prefix),
            ..Default::default()
        },
    )
    .await;

    let (text, said) = round_trip(&env.namespace, "twenty", "agent.ceo");
    let namespace = &env.namespace;
    for unplaced in [
        format!("Deployment {namespace}/redis: its name is not agent-<role>"),
        format!("ConfigMap {namespace}/models: no agent has it"),
        format!(
            "HorizontalPodAutoscaler {namespace}/keda-hpa-agent-crawler: made by ScaledObject agent-crawler"
        ),
        format!(
            "jetstream consumer {}/debugging: fleet names an agent's consumer",
            streams[1]
        ),
    ] {
        assert!(
            said.contains(&unplaced),
            "import did not say `{unplaced}`:\n{said}"
        );
    }
    for role in ROLES {
        assert!(
            text.contains(&format!("[agents.{role}]")),
            "{role} not imported:\n{text}"
        );
    }
    for guessed in [
        "profile = \"cognitive\"",
        "profile = \"executor\"",
        "profile = \"observer\"",
    ] {
        assert!(text.contains(guessed), "no `{guessed}` in\n{text}");
    }
    println!("{text}");
}

/// Import needs to read the kinds fleet renders and to dry-run their
/// creation, nothing else: an identity with no right on Secrets (a LIST of
/// them returns their values) imports the seed all the same.
#[tokio::test]
async fn import_reads_no_secret() {
    let env = TestEnv::new("import no secret").await;
    seed_as_printed(&env).await;
    let user = support::X509User::new(&format!("importer-{}", env.namespace));
    let namespace = &env.namespace;
    let name = &user.name;
    support::kubectl_apply(&format!(
        r#"apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{ name: importer, namespace: {namespace} }}
rules:
- apiGroups: ["", "apps", "autoscaling", "policy", "networking.k8s.io", "rbac.authorization.k8s.io", "keda.sh", "monitoring.coreos.com"]
  resources: [serviceaccounts, configmaps, services, deployments, horizontalpodautoscalers, poddisruptionbudgets, networkpolicies, roles, rolebindings, scaledobjects, servicemonitors]
  verbs: [get, list, create]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{ name: importer, namespace: {namespace} }}
roleRef: {{ apiGroup: rbac.authorization.k8s.io, kind: Role, name: importer }}
subjects: [{{ kind: User, name: {name}, apiGroup: rbac.authorization.k8s.io }}]
"#
    ));
    assert!(!user.can("list", "secrets", namespace));
    assert!(!user.can("get", "secrets", namespace));
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_fleet"))
        .args(["import", "--namespace", namespace, "--context", name])
        .current_dir(dir.path())
        .env("KUBECONFIG", &user.kubeconfig)
        .env("FLEET_NATS_URL", &control_plane().nats_url)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let text = std::fs::read_to_string(dir.path().join("fleet.toml")).unwrap();
    assert!(text.contains("[agents.devops]"), "{text}");
    assert!(
        !stderr.contains("Differences no key or patch can say"),
        "{stderr}"
    );
}
