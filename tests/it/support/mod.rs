//! Test support for integration tests: the running local control plane, and a
//! per-test environment (its own namespace and stream-name prefix) that is
//! removed again when the test ends, so tests run in parallel.
//!
//! If the control plane is not running it is started with
//! `scripts/controlplane up`; a test never passes by skipping.
#![allow(dead_code)] // each test binary uses a different part of this module

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{DeleteParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};

/// The admin context of the kubeconfig that `scripts/controlplane` writes.
pub(crate) const ADMIN_CONTEXT: &str = "fleet-local";
/// A user that may act only inside [`RESTRICTED_NAMESPACE`].
pub(crate) const RESTRICTED_CONTEXT: &str = "fleet-restricted";
pub(crate) const RESTRICTED_NAMESPACE: &str = "fleet-restricted";

/// Where the running control plane can be reached.
#[derive(Debug)]
pub(crate) struct ControlPlane {
    pub kubeconfig: PathBuf,
    pub nats_url: String,
    /// nats-server of the oldest supported line (2.10).
    pub nats_old_url: String,
    /// One node of a three-node JetStream cluster.
    pub nats_cluster_url: String,
    /// Directory holding kubectl and the other control-plane binaries.
    pub bin_dir: PathBuf,
    /// Directory holding the third-party CRDs (see [`service_monitor_crd_file`]).
    pub crds_dir: PathBuf,
}

/// The monitoring port of the control plane's nats-server, as KEDA reaches
/// it (`scripts/controlplane env` prints it).
pub(crate) fn nats_monitoring() -> String {
    std::env::var("FLEET_NATS_MONITOR").unwrap_or_else(|_| "127.0.0.1:18222".into())
}

/// The monitoring port of the NATS cluster's first server: every server of
/// the cluster serves it on the same port, at its own loopback address.
pub(crate) fn nats_cluster_monitoring() -> String {
    std::env::var("FLEET_NATS_CLUSTER_MONITOR").unwrap_or_else(|_| "127.0.0.2:18231".into())
}

pub(crate) fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn script() -> PathBuf {
    repo_root().join("scripts/controlplane")
}

/// The control plane, started once per test binary if it is not running.
pub(crate) fn control_plane() -> &'static ControlPlane {
    static CONTROL_PLANE: OnceLock<ControlPlane> = OnceLock::new();
    CONTROL_PLANE.get_or_init(|| {
        let running = Command::new("bash")
            .arg(script())
            .arg("status")
            .output()
            .expect("running scripts/controlplane status")
            .status
            .success();
        if !running {
            eprintln!("the local control plane is not running: starting it with scripts/controlplane up");
            let status = Command::new("bash")
                .arg(script())
                .arg("up")
                .status()
                .expect("running scripts/controlplane up");
            assert!(
                status.success(),
                "could not start the local control plane; run `scripts/controlplane up` and read target/controlplane/run/logs/"
            );
        }
        let output = Command::new("bash")
            .arg(script())
            .arg("env")
            .output()
            .expect("running scripts/controlplane env");
        let exports = String::from_utf8(output.stdout).expect("utf-8 from scripts/controlplane env");
        let var = |name: &str| {
            exports
                .lines()
                .find_map(|line| line.strip_prefix(&format!("export {name}=")))
                .unwrap_or_else(|| panic!("scripts/controlplane env did not print {name}"))
                .to_string()
        };
        ControlPlane {
            kubeconfig: var("KUBECONFIG").into(),
            nats_url: var("FLEET_NATS_URL"),
            nats_old_url: var("FLEET_NATS_OLD_URL"),
            nats_cluster_url: var("FLEET_NATS_CLUSTER_URL"),
            bin_dir: var("FLEET_CP_BIN").into(),
            crds_dir: var("FLEET_CP_CRDS").into(),
        }
    })
}

impl ControlPlane {
    /// A kube client acting as the user of `context`.
    pub(crate) async fn kube_client(&self, context: &str) -> Client {
        let kubeconfig = Kubeconfig::read_from(&self.kubeconfig)
            .expect("reading the control plane's kubeconfig");
        let options = KubeConfigOptions {
            context: Some(context.to_string()),
            ..KubeConfigOptions::default()
        };
        let config = Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .expect("loading the control plane's kubeconfig");
        Client::try_from(config).expect("building a kube client")
    }

    pub(crate) async fn nats(&self) -> async_nats::Client {
        async_nats::connect(&self.nats_url)
            .await
            .unwrap_or_else(|err| {
                panic!(
                    "connecting to nats-server at {}: {err}; run scripts/controlplane up",
                    self.nats_url
                )
            })
    }

    /// `kubectl ARGS -f -` as the admin, with `manifest` on stdin; panics
    /// with what kubectl said if it fails.
    pub(crate) fn kubectl_stdin(&self, args: &[&str], manifest: &str) {
        let mut child = self
            .kubectl()
            .args(args)
            .args(["-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(manifest.as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// kubectl for this control plane, as the admin.
    pub(crate) fn kubectl(&self) -> Command {
        let mut command = Command::new(self.bin_dir.join("kubectl"));
        command
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--context")
            .arg(ADMIN_CONTEXT);
        command
    }
}

/// One test's slice of the control plane: a namespace and a stream-name
/// prefix of its own. Both are removed when it is dropped.
pub(crate) struct TestEnv {
    pub control_plane: &'static ControlPlane,
    pub kube: Client,
    pub nats: async_nats::Client,
    pub jetstream: async_nats::jetstream::Context,
    /// The test's namespace, created empty.
    pub namespace: String,
    /// Prefix for every stream (and subject) the test creates, e.g. `T1234_5_`.
    pub stream_prefix: String,
}

impl TestEnv {
    pub(crate) async fn new(test: &str) -> TestEnv {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let control_plane = control_plane();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let unique = format!("{}-{n}", std::process::id());
        let mut short: String = test
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect();
        short.truncate(40);
        let namespace = format!("t-{}-{unique}", short.trim_end_matches('-'));

        let kube = control_plane.kube_client(ADMIN_CONTEXT).await;
        let namespaces: Api<Namespace> = Api::all(kube.clone());
        let object: Namespace = serde_json::from_value(serde_json::json!({
            "metadata": { "name": namespace, "labels": { "fleet.test/namespace": "true" } }
        }))
        .unwrap();
        namespaces
            .create(&PostParams::default(), &object)
            .await
            .unwrap_or_else(|err| panic!("creating namespace {namespace}: {err}"));

        let nats = control_plane.nats().await;
        let jetstream = async_nats::jetstream::new(nats.clone());
        TestEnv {
            control_plane,
            kube,
            nats,
            jetstream,
            namespace,
            stream_prefix: format!("T{}_", unique.replace('-', "_")),
        }
    }

    /// Nothing was applied for `fleet`: its namespace was never created.
    pub(crate) async fn assert_nothing_applied(&self, fleet: &FleetDir) {
        let namespaces: Api<Namespace> = Api::all(self.kube.clone());
        assert!(
            namespaces
                .get_opt(&fleet.namespace)
                .await
                .unwrap()
                .is_none(),
            "nothing was applied"
        );
    }

    pub(crate) fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.kube.clone(), &self.namespace)
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        // Drop runs inside the test's runtime, which must not block on its own
        // clients: clean up from a thread with a runtime and clients of its own.
        let namespace = self.namespace.clone();
        let prefix = self.stream_prefix.clone();
        let control_plane = self.control_plane;
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let kube = control_plane.kube_client(ADMIN_CONTEXT).await;
                let _ = Api::<Namespace>::all(kube)
                    .delete(&namespace, &DeleteParams::background())
                    .await;
                if let Ok(nats) = async_nats::connect(&control_plane.nats_url).await {
                    delete_streams_with_prefix(&async_nats::jetstream::new(nats), &prefix).await;
                }
            });
        });
        let _ = cleanup.join();
    }
}

async fn delete_streams_with_prefix(jetstream: &async_nats::jetstream::Context, prefix: &str) {
    use futures::TryStreamExt;
    let names: Vec<String> = match jetstream.stream_names().try_collect().await {
        Ok(names) => names,
        Err(_) => return,
    };
    for name in names.into_iter().filter(|name| name.starts_with(prefix)) {
        let _ = jetstream.delete_stream(&name).await;
    }
}

/// Polls `check` until it returns `Some`, or panics after `timeout` with `what`.
pub(crate) async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A fleet definition in a directory of its own, and the `fleet` binary run
/// on it against the local control plane, as a user would.
pub(crate) struct FleetDir {
    pub dir: tempfile::TempDir,
    pub namespace: String,
}

/// What one run of `fleet` printed and how it exited.
#[derive(Debug)]
pub(crate) struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<std::process::Output> for Run {
    fn from(output: std::process::Output) -> Run {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl FleetDir {
    /// The repository's example fleet, deployed into `namespace` on the
    /// local control plane through `environments/test.toml`.
    pub(crate) fn example(namespace: &str) -> FleetDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("config")).unwrap();
        for file in std::fs::read_dir(repo_root().join("config")).unwrap() {
            let file = file.unwrap();
            std::fs::copy(
                file.path(),
                dir.path().join("config").join(file.file_name()),
            )
            .unwrap();
        }
        let fleet = FleetDir {
            dir,
            namespace: namespace.to_string(),
        };
        fleet.set_definition(&std::fs::read_to_string(repo_root().join("fleet.toml")).unwrap());
        fleet.set_environment("");
        fleet
    }

    /// A fleet from the given fleet.toml text (its `agent-tasks` stream
    /// renamed as in [`FleetDir::example`]).
    pub(crate) fn with_definition(namespace: &str, fleet_toml: &str) -> FleetDir {
        let fleet = Self::example(namespace);
        fleet.set_definition(fleet_toml);
        fleet
    }

    pub(crate) fn set_definition(&self, fleet_toml: &str) {
        std::fs::write(
            self.dir.path().join("fleet.toml"),
            Self::private_streams(&self.namespace, fleet_toml),
        )
        .unwrap();
    }

    fn private_streams(namespace: &str, fleet_toml: &str) -> String {
        fleet_toml
            .replace("agent-tasks", &format!("{namespace}-agent-tasks"))
            // The stream's subjects, and those agents publish to in it.
            .replace("\"tasks.", &format!("\"{namespace}.tasks."))
    }

    /// The name the example's `agent-tasks` stream has in this fleet.
    pub(crate) fn stream(&self) -> String {
        format!("{}-agent-tasks", self.namespace)
    }

    /// The subject prefix of this fleet's tasks, e.g. `<namespace>.tasks`.
    pub(crate) fn task_subject(&self, role: &str) -> String {
        format!("{}.tasks.{role}.new", self.namespace)
    }

    /// Writes `environments/test.toml`: the test's namespace and context,
    /// then `extra`.
    pub(crate) fn set_environment(&self, extra: &str) {
        self.set_environment_with_nats(&control_plane().nats_url, extra);
    }

    /// [`FleetDir::set_environment`] with another NATS server.
    pub(crate) fn set_environment_with_nats(&self, nats_url: &str, extra: &str) {
        let environments = self.dir.path().join("environments");
        std::fs::create_dir_all(&environments).unwrap();
        let text = format!(
            "[environment]\nkube_context = \"{ADMIN_CONTEXT}\"\nnamespace = \"{}\"\nnats_url = \"{nats_url}\"\n\n{extra}\n",
            self.namespace,
        );
        std::fs::write(environments.join("test.toml"), text).unwrap();
    }

    /// Runs `fleet ARGS --env test` in the fleet's directory.
    pub(crate) fn run(&self, args: &[&str]) -> Run {
        let output = self.command(args).output().expect("running fleet");
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl FleetDir {
    /// `fleet ARGS --env test` in the fleet's directory, to run or spawn.
    pub(crate) fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_fleet"));
        command
            .args(args)
            .args(["--env", "test"])
            .current_dir(self.dir.path())
            .env("KUBECONFIG", &control_plane().kubeconfig)
            .env("NO_COLOR", "1")
            .env_remove("FLEET_ENV")
            .env_remove("FLEET_NATS_URL")
            .env_remove("GITHUB_ACTIONS")
            .stdin(std::process::Stdio::null());
        command
    }

    /// The example fleet for `env`, deployed into `<env namespace>-f` so that
    /// fleet creates (and owns) its namespace.
    pub(crate) fn for_test(env: &TestEnv) -> FleetDir {
        FleetDir::example(&format!("{}-f", env.namespace))
    }

    /// `fleet apply --auto-approve` with `extra` flags.
    pub(crate) fn apply(&self, extra: &[&str]) -> Run {
        let mut args = vec!["apply", "--auto-approve", "--timeout", "90s"];
        args.extend_from_slice(extra);
        self.run(&args)
    }

    /// The plan is empty: what an apply leaves behind.
    pub(crate) fn assert_plan_empty(&self) {
        let plan = self.run(&["plan", "--detailed-exitcode"]);
        assert_eq!(
            plan.code, 0,
            "the plan is not empty:\n{}{}",
            plan.stdout, plan.stderr
        );
        assert!(plan.stdout.contains("No changes."), "{}", plan.stdout);
    }
}

impl Run {
    pub(crate) fn assert_ok(&self, what: &str) {
        assert_eq!(
            self.code, 0,
            "{what} failed:\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
    }
}

impl Drop for FleetDir {
    fn drop(&mut self) {
        let _ = control_plane()
            .kubectl()
            .args([
                "delete",
                "namespace",
                &self.namespace,
                "--wait=false",
                "--ignore-not-found",
            ])
            .output();
    }
}

/// Makes `name` an older rendering with another selector, as fleet itself
/// applied it: the next plan must replace it (the selector is immutable).
pub(crate) async fn with_old_selector(
    deployments: &Api<k8s_openapi::api::apps::v1::Deployment>,
    name: &str,
) {
    let mut old = serde_json::to_value(deployments.get(name).await.unwrap()).unwrap();
    deployments.delete(name, &Default::default()).await.unwrap();
    eventually(
        "the old Deployment to go",
        Duration::from_secs(30),
        || async {
            deployments
                .get_opt(name)
                .await
                .unwrap()
                .is_none()
                .then_some(())
        },
    )
    .await;
    let object = old.as_object_mut().unwrap();
    object.remove("status");
    let metadata = object["metadata"].as_object_mut().unwrap();
    for key in [
        "resourceVersion",
        "uid",
        "creationTimestamp",
        "generation",
        "managedFields",
        "annotations",
    ] {
        metadata.remove(key);
    }
    old["spec"]["selector"]["matchLabels"] =
        serde_json::json!({ "app": name, "generation": "old" });
    old["spec"]["template"]["metadata"]["labels"]["generation"] = serde_json::json!("old");
    deployments
        .patch(
            name,
            &kube::api::PatchParams::apply("fleet"),
            &kube::api::Patch::Apply(&old),
        )
        .await
        .unwrap();
}

/// A user of its own for a test: an x509 client certificate with CN = the
/// user's name, signed by the control plane's CA (the API server trusts
/// every certificate it signs), and a kubeconfig with one context for it.
/// The user holds no rights until a test binds some.
pub(crate) struct X509User {
    pub name: String,
    /// A kubeconfig holding only this user's context, named as the user.
    pub kubeconfig: PathBuf,
    _dir: tempfile::TempDir,
}

impl X509User {
    pub(crate) fn new(name: &str) -> X509User {
        let admin = Kubeconfig::read_from(&control_plane().kubeconfig)
            .expect("reading the control plane's kubeconfig");
        let cluster = admin.clusters[0]
            .cluster
            .as_ref()
            .expect("the control plane's kubeconfig names its cluster");
        let server = cluster.server.clone().expect("a server URL");
        let ca_cert = PathBuf::from(
            cluster
                .certificate_authority
                .clone()
                .expect("the control plane's CA certificate file"),
        );
        // The certs helper keeps the CA key beside the certificate.
        let ca_key = ca_cert.with_file_name("ca.key");
        let dir = tempfile::tempdir().unwrap();
        let (key, csr, cert) = (
            dir.path().join("user.key"),
            dir.path().join("user.csr"),
            dir.path().join("user.crt"),
        );
        let extensions = dir.path().join("client.ext");
        std::fs::write(
            &extensions,
            "extendedKeyUsage = clientAuth\nkeyUsage = digitalSignature, keyEncipherment\n",
        )
        .unwrap();
        let openssl = |args: &[&std::ffi::OsStr]| {
            let output = Command::new("openssl")
                .args(args)
                .output()
                .expect("running openssl (needed to make test users)");
            assert!(
                output.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        };
        let os = |s: &str| std::ffi::OsString::from(s);
        let subject = format!("/CN={name}");
        openssl(&[
            &os("ecparam"),
            &os("-name"),
            &os("prime256v1"),
            &os("-genkey"),
            &os("-noout"),
            &os("-out"),
            key.as_os_str(),
        ]);
        openssl(&[
            &os("req"),
            &os("-new"),
            &os("-key"),
            key.as_os_str(),
            &os("-subj"),
            &os(&subject),
            &os("-out"),
            csr.as_os_str(),
        ]);
        // A serial of its own: -CAcreateserial would write beside the
        // shared CA.
        let serial = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
            .to_string();
        openssl(&[
            &os("x509"),
            &os("-req"),
            &os("-in"),
            csr.as_os_str(),
            &os("-CA"),
            ca_cert.as_os_str(),
            &os("-CAkey"),
            ca_key.as_os_str(),
            &os("-set_serial"),
            &os(&serial),
            &os("-days"),
            &os("1"),
            &os("-extfile"),
            extensions.as_os_str(),
            &os("-out"),
            cert.as_os_str(),
        ]);
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: local\n  cluster:\n    server: {server}\n    certificate-authority: {}\nusers:\n- name: {name}\n  user:\n    client-certificate: {}\n    client-key: {}\ncontexts:\n- name: {name}\n  context:\n    cluster: local\n    user: {name}\ncurrent-context: {name}\n",
                ca_cert.display(),
                cert.display(),
                key.display(),
            ),
        )
        .unwrap();
        X509User {
            name: name.to_string(),
            kubeconfig,
            _dir: dir,
        }
    }

    /// Whether the API server lets this user do `verb` on `resource` in
    /// `namespace` (asked by the admin, impersonating the user).
    pub(crate) fn can(&self, verb: &str, resource: &str, namespace: &str) -> bool {
        let output = control_plane()
            .kubectl()
            .args([
                "auth", "can-i", verb, resource, "-n", namespace, "--as", &self.name,
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).trim() == "yes"
    }
}

/// `kubectl apply -f -` of `yaml`, as the admin.
pub(crate) fn kubectl_apply(yaml: &str) {
    let mut kubectl = control_plane().kubectl();
    kubectl
        .args(["apply", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = kubectl.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(yaml.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "kubectl apply:\n{}\n{yaml}",
        String::from_utf8_lossy(&output.stderr)
    );
}

impl FleetDir {
    /// `fleet ARGS --env test` as `user`: its kubeconfig and context.
    pub(crate) fn run_as(&self, user: &X509User, args: &[&str]) -> Run {
        let output = self
            .command(args)
            .args(["--context", &user.name])
            .env("KUBECONFIG", &user.kubeconfig)
            .output()
            .expect("running fleet");
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

/// A nats-server of the pinned version that a test starts with options of
/// its own (authentication, for one) on a free port; stopped when dropped.
pub(crate) struct NatsServer {
    child: std::process::Child,
    pub url: String,
    pub port: u16,
    _store: tempfile::TempDir,
}

impl NatsServer {
    pub(crate) async fn start(args: &[&str]) -> NatsServer {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let store = tempfile::tempdir().unwrap();
        let child = Command::new(control_plane().bin_dir.join("nats-server"))
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js"])
            .args(args)
            .arg("-sd")
            .arg(store.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        eventually(
            "a test's nats-server to listen",
            Duration::from_secs(20),
            || async {
                std::net::TcpStream::connect(("127.0.0.1", port))
                    .ok()
                    .map(|_| ())
            },
        )
        .await;
        NatsServer {
            child,
            url: format!("nats://127.0.0.1:{port}"),
            port,
            _store: store,
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Prometheus operator's ServiceMonitor CRD, as its pinned release ships
/// it: `scripts/controlplane crds` fetches it from the operator's Go module
/// (once; later calls reuse the copy in `target/controlplane/crds`).
pub(crate) fn service_monitor_crd_file(control_plane: &ControlPlane) -> PathBuf {
    static FETCHED: OnceLock<()> = OnceLock::new();
    FETCHED.get_or_init(|| {
        let status = Command::new("bash")
            .arg(script())
            .arg("crds")
            .status()
            .expect("running scripts/controlplane crds");
        assert!(
            status.success(),
            "could not fetch the Prometheus operator's CRDs with scripts/controlplane crds"
        );
    });
    let file = control_plane
        .crds_dir
        .join("monitoring.coreos.com_servicemonitors.yaml");
    assert!(file.is_file(), "{} is missing", file.display());
    file
}

/// Installs the Prometheus operator's real ServiceMonitor CRD (of the version
/// `scripts/controlplane` pins) and waits until it is established. Server-side
/// apply: the CRD is too large for kubectl's last-applied annotation.
pub(crate) fn install_service_monitor_crd(control_plane: &ControlPlane) {
    let file = service_monitor_crd_file(control_plane);
    let output = control_plane
        .kubectl()
        .args(["apply", "--server-side", "--force-conflicts", "-f"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "installing the ServiceMonitor CRD from {}: {}",
        file.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let mut wait = control_plane.kubectl();
    wait.args([
        "wait",
        "--for=condition=Established",
        "crd/servicemonitors.monitoring.coreos.com",
        "--timeout=60s",
    ]);
    assert!(
        wait.stdout(std::process::Stdio::null())
            .status()
            .unwrap()
            .success(),
        "the ServiceMonitor CRD did not become established"
    );
}

/// Every field of `sent` that `stored` lacks, as paths such as
/// `.spec.endpoints[0].interval`: what the API server pruned (a structural
/// schema drops unknown fields silently; for built-in types unknown fields
/// are dropped with a warning). Scalar values may differ (the server
/// normalises quantities); a `null` sent may be absent.
pub(crate) fn pruned_fields(sent: &serde_json::Value, stored: &serde_json::Value) -> Vec<String> {
    fn walk(
        path: &str,
        sent: &serde_json::Value,
        stored: &serde_json::Value,
        out: &mut Vec<String>,
    ) {
        use serde_json::Value;
        match (sent, stored) {
            (Value::Object(sent), Value::Object(stored)) => {
                for (key, value) in sent {
                    let path = format!("{path}.{key}");
                    match stored.get(key) {
                        Some(stored) => walk(&path, value, stored, out),
                        None if value.is_null() => {}
                        None => out.push(path),
                    }
                }
            }
            (Value::Array(sent), Value::Array(stored)) => {
                for (i, value) in sent.iter().enumerate() {
                    let path = format!("{path}[{i}]");
                    match stored.get(i) {
                        Some(stored) => walk(&path, value, stored, out),
                        None => out.push(path),
                    }
                }
            }
            (Value::Object(_) | Value::Array(_), _) => out.push(path.to_string()),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk("", sent, stored, &mut out);
    out
}

/// Removes the ServiceMonitor CRD, as a cluster without the Prometheus operator.
pub(crate) fn remove_service_monitor_crd(control_plane: &ControlPlane) {
    let status = control_plane
        .kubectl()
        .args([
            "delete",
            "crd",
            "servicemonitors.monitoring.coreos.com",
            "--ignore-not-found",
            "--wait=true",
        ])
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "removing the ServiceMonitor CRD");
}

/// The PriorityClass that tests/fixtures/every-pod-key.toml names: cluster
/// wide, so it is applied (idempotently) and left for the next test.
pub(crate) const TEST_PRIORITY_CLASS: &str = "fleet-test-agents";

/// The default priority, and never preempting: a test's pods must not push
/// out the pods of other tests sharing the control plane.
pub(crate) fn apply_test_priority_class() {
    kubectl_apply(&format!(
        "apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata:\n  name: {TEST_PRIORITY_CLASS}\n  labels: {{ fleet.test/priority-class: \"true\" }}\nvalue: 0\npreemptionPolicy: Never\ndescription: for fleet's tests\n"
    ));
}

/// tests/fixtures/every-pod-key.toml, the fleet that uses every pod,
/// placement, availability, scaling and namespace key.
pub(crate) fn every_pod_key_fleet() -> String {
    std::fs::read_to_string(repo_root().join("tests/fixtures/every-pod-key.toml")).unwrap()
}

/// A small, seeded random number generator (xorshift), so a failing run can
/// be replayed: the seed comes from the environment variable `var`, or the
/// clock (print it).
pub(crate) struct Random(u64);

impl Random {
    pub(crate) fn from_env(var: &str) -> (Random, u64) {
        let seed = std::env::var(var)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
                    | 1
            });
        (Random(seed), seed)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in [0, max).
    pub(crate) fn below(&mut self, max: u64) -> u64 {
        self.next() % max.max(1)
    }

    /// One of `items`.
    pub(crate) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

impl FleetDir {
    /// `kubectl -n <the fleet's namespace> ARGS` as the admin; its stdout,
    /// or a panic with what kubectl said.
    pub(crate) fn kubectl(&self, args: &[&str]) -> String {
        let output = control_plane()
            .kubectl()
            .args(["-n", &self.namespace])
            .args(args)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

/// Starts `command` with stdout and stderr piped, stdout's lines sent over
/// the channel returned as they come: a test can act at a given line.
pub(crate) fn spawn_reading(
    mut command: Command,
) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    use std::io::BufRead as _;
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("starting the command");
    let stdout = child.stdout.take().unwrap();
    let (send, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if send.send(line).is_err() {
                break;
            }
        }
    });
    (child, lines)
}

/// Waits for a child started by [`spawn_reading`] to end (within `limit`:
/// fleet never hangs) and returns all it printed, after `stdout`, what was
/// read of it already.
pub(crate) fn finish_reading(
    mut child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    mut stdout: String,
    limit: Duration,
) -> Run {
    use std::io::Read as _;
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(started.elapsed() < limit, "fleet hung:\n{stdout}");
        std::thread::sleep(Duration::from_millis(20));
    }
    stdout.extend(lines.iter().map(|line| line + "\n"));
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    Run {
        code: child.wait().unwrap().code().unwrap_or(-1),
        stdout,
        stderr,
    }
}

/// A nats-server in operator mode (NATS's decentralised JWT
/// authentication): an operator, its system account, and an account
/// `agents` with a signing key, preloaded into a full resolver. Every JWT
/// is made by fleet's own `credentials::encode`, and every user by
/// `credentials::mint_user`.
pub(crate) struct OperatorNats {
    pub server: NatsServer,
    pub operator: nkeys::KeyPair,
    pub system: nkeys::KeyPair,
    pub account: nkeys::KeyPair,
    pub signing_key: nkeys::KeyPair,
    /// A user of `agents` with every right (what fleet's deploy job uses
    /// in these tests), and one of the system account.
    pub admin_creds: PathBuf,
    pub system_creds: PathBuf,
    dir: tempfile::TempDir,
}

impl OperatorNats {
    pub(crate) async fn start() -> OperatorNats {
        use fleet::credentials::{Permissions, encode, mint_user};
        use serde_json::json;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let operator = nkeys::KeyPair::new_operator();
        let system = nkeys::KeyPair::new_account();
        let account = nkeys::KeyPair::new_account();
        let signing_key = nkeys::KeyPair::new_account();
        let operator_jwt = encode(
            &operator,
            json!({ "name": "fleet-test", "sub": operator.public_key(),
                    "nats": { "type": "operator", "version": 2, "system_account": system.public_key() } }),
            now,
        );
        let unlimited = json!({ "subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
                                "wildcards": true, "conn": -1, "leaf": -1 });
        let system_jwt = encode(
            &operator,
            json!({ "name": "SYS", "sub": system.public_key(),
                    "nats": { "limits": unlimited, "type": "account", "version": 2 } }),
            now,
        );
        let mut limits = unlimited.clone();
        for key in ["mem_storage", "disk_storage", "streams", "consumer"] {
            limits[key] = json!(-1);
        }
        let account_jwt = encode(
            &operator,
            json!({ "name": "agents", "sub": account.public_key(),
                    "nats": { "limits": limits, "signing_keys": [signing_key.public_key()],
                              "type": "account", "version": 2 } }),
            now,
        );
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("nats.conf");
        std::fs::write(
            &config,
            format!(
                "operator: \"{operator_jwt}\"\nsystem_account: \"{}\"\nresolver: {{ type: full, dir: \"{}\", allow_delete: false, interval: \"2m\" }}\nresolver_preload: {{\n  {}: \"{system_jwt}\"\n  {}: \"{account_jwt}\"\n}}\n",
                system.public_key(),
                dir.path().join("jwt").display(),
                system.public_key(),
                account.public_key(),
            ),
        )
        .unwrap();
        let everything = Permissions {
            publish: vec![">".into()],
            subscribe: vec![">".into()],
            respond: false,
        };
        let admin = mint_user(
            &signing_key,
            &account.public_key(),
            "fleet",
            &everything,
            now,
            now + 86_400,
        );
        let admin_creds = dir.path().join("admin.creds");
        std::fs::write(&admin_creds, admin.creds.expose()).unwrap();
        let sys = mint_user(
            &system,
            &system.public_key(),
            "sys",
            &everything,
            now,
            now + 86_400,
        );
        let system_creds = dir.path().join("system.creds");
        std::fs::write(&system_creds, sys.creds.expose()).unwrap();
        let server = NatsServer::start(&["-c", config.to_str().unwrap()]).await;
        OperatorNats {
            server,
            operator,
            system,
            account,
            signing_key,
            admin_creds,
            system_creds,
            dir,
        }
    }

    /// A client of `agents` with every right.
    pub(crate) async fn admin(&self) -> async_nats::Client {
        async_nats::ConnectOptions::with_credentials_file(&self.admin_creds)
            .await
            .unwrap()
            .connect(&self.server.url)
            .await
            .unwrap()
    }

    /// Writes `creds` (a creds file's text) beside the server's files.
    pub(crate) fn creds_file(&self, name: &str, creds: &str) -> PathBuf {
        let path = self.dir.path().join(format!("{name}.creds"));
        std::fs::write(&path, creds).unwrap();
        path
    }
}
