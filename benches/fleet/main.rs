//! The benchmark of fleet against kubectl on the local control plane
//! (`benches/README.md` explains it). Run it with
//!
//!     cargo bench --locked --bench fleet -- [--sizes 100,500,1000] [--runs 3] [--keep]
//!
//! It prints figures and ratios as Markdown and never asserts a time. It
//! exits 1 (after a loud FAIL) only when a command fails or a plan's exit
//! code is not what the step expects (0 for the no-op plan, 2 for the
//! one-agent change).

mod cluster;
mod measure;
mod report;
mod synthetic;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use kube::Client;
use kube::core::ApiResource;
use serde_json::Value;

use cluster::Kinds;
use measure::{Sample, Stats};

const USAGE: &str = "\
cargo bench --locked --bench fleet -- [options]

  --sizes LIST          fleet sizes for the cluster steps (default 100,500,1000)
  --render-sizes LIST   fleet sizes to time `fleet render` for (default 1 and --sizes)
  --runs K              runs of each plan, diff and render, interleaved (default 3)
  --apply-runs K        runs of each apply from empty (default 1)
  --dry-runs N          dry-run applies per size for the server's limit
                        (default: one per Kubernetes object of the fleet)
  --concurrency C       requests in flight for the floor and the dry-run limit (default fleet's, 32)
  --keep                keep the temp dir, the namespaces and the streams
  -h, --help            this text
";

struct Options {
    sizes: Vec<usize>,
    render_sizes: Vec<usize>,
    runs: usize,
    apply_runs: usize,
    dry_runs: Option<usize>,
    concurrency: usize,
    keep: bool,
}

impl Options {
    fn parse(args: &[String]) -> anyhow::Result<Option<Options>> {
        let mut options = Options {
            sizes: vec![100, 500, 1000],
            render_sizes: Vec::new(),
            runs: 3,
            apply_runs: 1,
            dry_runs: None,
            concurrency: fleet::cli::DEFAULT_CONCURRENCY.into(),
            keep: false,
        };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((flag, value)) => (flag, Some(value.to_string())),
                None => (arg.as_str(), None),
            };
            let mut value = || {
                inline
                    .clone()
                    .or_else(|| args.next().cloned())
                    .with_context(|| format!("{flag} needs a value"))
            };
            match flag {
                "--bench" => {}
                "-h" | "--help" => return Ok(None),
                "--keep" => options.keep = true,
                "--sizes" => options.sizes = sizes(&value()?)?,
                "--render-sizes" => options.render_sizes = sizes(&value()?)?,
                "--runs" => options.runs = positive(flag, &value()?)?,
                "--apply-runs" => options.apply_runs = positive(flag, &value()?)?,
                "--dry-runs" => options.dry_runs = Some(positive(flag, &value()?)?),
                "--concurrency" => options.concurrency = positive(flag, &value()?)?,
                _ => anyhow::bail!("unknown option {arg}\n\n{USAGE}"),
            }
        }
        if options.render_sizes.is_empty() {
            options.render_sizes = [1].into_iter().chain(options.sizes.clone()).collect();
        }
        options.sizes.sort_unstable();
        options.sizes.dedup();
        options.render_sizes.sort_unstable();
        options.render_sizes.dedup();
        Ok(Some(options))
    }
}

fn positive(flag: &str, text: &str) -> anyhow::Result<usize> {
    match text.trim().parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => anyhow::bail!("{flag} needs a positive number, not `{text}`"),
    }
}

fn sizes(list: &str) -> anyhow::Result<Vec<usize>> {
    list.split(',')
        .filter(|item| !item.trim().is_empty())
        .map(|item| positive("a fleet size", item))
        .collect()
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(measure::RUNNER) {
        return match measure::runner_main(&args[1..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("bench runner: {err:#}");
                ExitCode::from(2)
            }
        };
    }
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this
    // target without it, and a test run must not load the shared servers.
    if !args.iter().any(|arg| arg == "--bench") {
        println!("benches/fleet: not run without --bench (run `cargo bench --bench fleet`)");
        return ExitCode::SUCCESS;
    }
    let options = match Options::parse(&args) {
        Ok(Some(options)) => options,
        Ok(None) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(err) => {
            eprintln!("bench: error: {err:#}");
            return ExitCode::from(2);
        }
    };
    let mut bench = match Bench::new(options) {
        Ok(bench) => bench,
        Err(err) => {
            eprintln!("bench: error: {err:#}");
            return ExitCode::from(2);
        }
    };
    let result = bench.run();
    bench.clean_up();
    match result {
        Err(err) => {
            eprintln!("bench: error: {err:#}");
            ExitCode::from(2)
        }
        Ok(()) if !bench.fails.is_empty() => {
            for fail in &bench.fails {
                eprintln!("\x1b[1;31mFAIL\x1b[0m: {fail}");
            }
            ExitCode::FAILURE
        }
        Ok(()) => ExitCode::SUCCESS,
    }
}

fn log(message: impl std::fmt::Display) {
    eprintln!("bench: {message}");
}

/// The figures of one fleet size against the cluster.
#[derive(Default)]
pub struct SizeResult {
    pub agents: usize,
    pub kube_objects: usize,
    pub consumers: usize,
    pub fleet_apply: Option<Stats>,
    pub kubectl_apply: Option<Stats>,
    /// CPU used during the applies from empty, by the control plane and by
    /// the tool: what they cost the machine, whatever the wall time.
    pub fleet_apply_cpu: Option<measure::CpuUse>,
    pub kubectl_apply_cpu: Option<measure::CpuUse>,
    pub fleet_noop: Option<Stats>,
    pub kubectl_noop: Option<Stats>,
    pub floor: Option<Stats>,
    pub floor_lists: Option<Stats>,
    pub floor_jetstream: Option<Stats>,
    pub list_kinds: usize,
    pub dry_runs: Option<cluster::DryRuns>,
    pub fleet_change: Option<Stats>,
    pub kubectl_change: Option<Stats>,
    /// Kubernetes objects the one-agent change alters.
    pub changed_objects: usize,
    pub change_summary: String,
}

/// `fleet render` of one size.
pub struct RenderResult {
    pub agents: usize,
    pub documents: usize,
    pub stats: Option<Stats>,
}

/// The header of the report.
pub struct Machine {
    pub date: String,
    pub command: String,
    pub fleet: String,
    pub commit: String,
    pub kubectl: String,
    pub apiserver: String,
    pub nats: String,
    /// Streams on the NATS server (others' too).
    pub streams: String,
    pub cpu: String,
    pub cores: usize,
    pub memory: String,
    pub kernel: String,
    pub load_start: String,
    pub load_end: String,
}

struct Bench {
    options: Options,
    root: PathBuf,
    fleet: PathBuf,
    kubectl: PathBuf,
    kubeconfig: PathBuf,
    nats_url: String,
    tmp: Option<tempfile::TempDir>,
    tag: u32,
    runtime: tokio::runtime::Runtime,
    client: Client,
    kinds: Kinds,
    /// Namespaces and streams made and not deleted yet.
    namespaces: Vec<String>,
    streams: Vec<String>,
    /// Namespaces deleted and perhaps not gone yet.
    deleting: Vec<String>,
    outputs: usize,
    fails: Vec<String>,
    warnings: Vec<String>,
}

impl Bench {
    fn new(options: Options) -> anyhow::Result<Bench> {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        // Built by cargo for this target with the bench profile, which is
        // the release profile.
        let fleet = PathBuf::from(env!("CARGO_BIN_EXE_fleet"));
        let env = controlplane_env(&root)?;
        let get = |key: &str| {
            env.get(key)
                .cloned()
                .with_context(|| format!("`scripts/controlplane env` printed no {key}"))
        };
        let kubeconfig = PathBuf::from(get("KUBECONFIG")?);
        let nats_url = get("FLEET_NATS_URL")?;
        let kubectl = PathBuf::from(get("FLEET_CP_BIN")?).join("kubectl");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        if runtime
            .block_on(async {
                cluster::client(&kubeconfig)
                    .await?
                    .apiserver_version()
                    .await
                    .map_err(anyhow::Error::from)
            })
            .is_err()
        {
            // Only when it does not answer: `up` on servers that run can
            // wait on their lock for as long as they run.
            log("the control plane does not answer: scripts/controlplane up");
            let status = Command::new(root.join("scripts/controlplane"))
                .arg("up")
                .current_dir(&root)
                .status()?;
            anyhow::ensure!(status.success(), "scripts/controlplane up failed");
        }
        let client = runtime.block_on(cluster::client(&kubeconfig))?;
        let kinds = runtime.block_on(Kinds::discover(&client))?;
        let tmp = tempfile::Builder::new().prefix("fleet-bench.").tempdir()?;
        Ok(Bench {
            options,
            root,
            fleet,
            kubectl,
            kubeconfig,
            nats_url,
            tmp: Some(tmp),
            tag: std::process::id(),
            runtime,
            client,
            kinds,
            namespaces: Vec::new(),
            streams: Vec::new(),
            deleting: Vec::new(),
            outputs: 0,
            fails: Vec::new(),
            warnings: Vec::new(),
        })
    }

    fn tmp(&self) -> &Path {
        self.tmp
            .as_ref()
            .expect("the temp dir lives until clean_up")
            .path()
    }

    fn run(&mut self) -> anyhow::Result<()> {
        let started = Instant::now();
        let mut machine = self.machine()?;
        log(format!(
            "{}, {}, {} cores, load average {}",
            machine.fleet, machine.kubectl, machine.cores, machine.load_start
        ));
        let renders = self.render_sizes()?;
        let mut results = Vec::new();
        for agents in self.options.sizes.clone() {
            results.push(self.size(agents)?);
        }
        self.delete_all();
        machine.load_end = load_average();
        let report = report::markdown(
            &machine,
            &self.options_text(),
            &renders,
            &results,
            &self.warnings,
            &self.fails,
            started.elapsed(),
        );
        println!("{report}");
        Ok(())
    }

    fn options_text(&self) -> String {
        let o = &self.options;
        format!(
            "plans, diffs and renders: {} runs each, interleaved (fleet, kubectl, floor, fleet, ...); \
             apply from empty: {} run{} each; dry-run limit and floor at concurrency {}",
            o.runs,
            o.apply_runs,
            if o.apply_runs == 1 { "" } else { "s" },
            o.concurrency
        )
    }

    fn machine(&self) -> anyhow::Result<Machine> {
        let text = |command: &mut Command| -> String {
            command
                .output()
                .ok()
                .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
                .unwrap_or_default()
        };
        let kubectl_json = text(
            Command::new(&self.kubectl)
                .args(["version", "--client", "-o", "json"])
                .env("KUBECONFIG", &self.kubeconfig),
        );
        let kubectl = serde_json::from_str::<Value>(&kubectl_json)
            .ok()
            .and_then(|v| {
                v["clientVersion"]["gitVersion"]
                    .as_str()
                    .map(str::to_string)
            })
            .unwrap_or_else(|| "?".into());
        let apiserver = self
            .runtime
            .block_on(self.client.apiserver_version())
            .map(|info| info.git_version)
            .unwrap_or_else(|_| "?".into());
        let nats = self
            .runtime
            .block_on(cluster::nats_version(&self.nats_url))
            .unwrap_or_else(|_| "?".into());
        let streams = self
            .runtime
            .block_on(cluster::stream_count(&self.nats_url))
            .map_or_else(|_| "?".into(), |n| n.to_string());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory = meminfo
            .lines()
            .find_map(|line| line.strip_prefix("MemTotal:"))
            .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map(|kb| format!("{:.1} GiB", kb / 1024.0 / 1024.0))
            .unwrap_or_else(|| "?".into());
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|line| line.strip_prefix("model name"))
            .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_string())
            .unwrap_or_else(|| "?".into());
        let commit = text(Command::new("git").args(["-C"]).arg(&self.root).args([
            "describe",
            "--always",
            "--dirty",
            "--abbrev=12",
        ]));
        let args: Vec<String> = std::env::args()
            .skip(1)
            .filter(|arg| arg != "--bench")
            .collect();
        Ok(Machine {
            date: text(Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"])),
            command: format!(
                "cargo bench --locked --bench fleet{}{}",
                if args.is_empty() { "" } else { " -- " },
                args.join(" ")
            ),
            fleet: text(Command::new(&self.fleet).arg("--version")),
            commit,
            kubectl,
            apiserver,
            nats,
            streams,
            cpu,
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            memory,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_string(),
            load_start: load_average(),
            load_end: String::new(),
        })
    }

    // ------------------------------------------------------------ commands

    /// A command as CI would run it: no colour, stdin from /dev/null, the
    /// control plane's kubeconfig, and none of the caller's FLEET_*
    /// settings (they would override the fleet's environment).
    fn command(&self, program: &Path, dir: &Path, args: &[&str]) -> Command {
        let mut command = Command::new(program);
        command
            .args(args)
            .current_dir(dir)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("NO_COLOR", "1")
            .env_remove("KUBECTL_EXTERNAL_DIFF");
        for (key, _) in std::env::vars() {
            if key.starts_with("FLEET_") {
                command.env_remove(key);
            }
        }
        command
    }

    fn fleet(&self, dir: &Path, args: &[&str]) -> Command {
        self.command(&self.fleet, dir, args)
    }

    /// `fleet apply` from empty, as the bench times it.
    fn fleet_apply(&self, dir: &Path) -> Command {
        self.fleet(
            dir,
            &[
                "apply",
                "--env",
                synthetic::ENV,
                "--auto-approve",
                "--no-wait",
            ],
        )
    }

    fn kubectl(&self, dir: &Path, args: &[&str]) -> Command {
        let mut all = vec!["--context", cluster::CONTEXT];
        all.extend_from_slice(args);
        self.command(&self.kubectl, dir, &all)
    }

    /// Runs a command once, timed. An exit code other than `expected` is a
    /// FAIL (with what the command printed) when `must` holds, else a
    /// WARNING; the sample is returned either way.
    fn timed(
        &mut self,
        what: &str,
        command: Command,
        expected: i32,
        must: bool,
    ) -> anyhow::Result<Sample> {
        self.outputs += 1;
        let stem = self.tmp().join(format!("{:03}", self.outputs));
        let (out, err) = (stem.with_extension("out"), stem.with_extension("err"));
        let sample = measure::run(&command, &out, &err)?;
        if sample.code != expected {
            let message = format!(
                "{what}: exit {} (expected {expected}) after {}",
                sample.code,
                report::duration(sample.wall)
            );
            let printed = excerpt(&err) + &excerpt(&out);
            if must {
                eprintln!("\n\x1b[1;31m########## FAIL: {message} ##########\x1b[0m\n{printed}");
                self.fails.push(message);
            } else {
                eprintln!("\n\x1b[1;33mWARNING: {message}\x1b[0m\n{printed}");
                self.warnings.push(message);
            }
        }
        Ok(sample)
    }

    fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    // ------------------------------------------------------------ render

    fn render_sizes(&mut self) -> anyhow::Result<Vec<RenderResult>> {
        let mut results = Vec::new();
        for agents in self.options.render_sizes.clone() {
            let dir = self.tmp().join(format!("render-{agents}"));
            let namespace = format!("bench-{}-render-{agents}", self.tag);
            synthetic::write_fleet(&dir, agents, &namespace, &self.nats_url, false)?;
            // Untimed: checks the fleet renders, counts the documents, warms
            // the page cache.
            let output = self
                .fleet(&dir, &["render", "--env", synthetic::ENV])
                .output()?;
            if !output.status.success() {
                let message = format!("fleet render of {agents} agents failed");
                eprintln!("{message}\n{}", String::from_utf8_lossy(&output.stderr));
                self.fails.push(message);
                results.push(RenderResult {
                    agents,
                    documents: 0,
                    stats: None,
                });
                continue;
            }
            let documents = String::from_utf8_lossy(&output.stdout)
                .lines()
                .filter(|line| line.starts_with("---"))
                .count();
            let mut samples = Vec::new();
            for _ in 0..self.options.runs {
                let command = self.fleet(&dir, &["render", "--env", synthetic::ENV]);
                samples.push(self.timed("fleet render", command, 0, true)?);
            }
            let stats = Stats::of(&samples);
            if let Some(stats) = &stats {
                log(format!(
                    "render {agents} agents ({documents} documents): median {}, {:.1} MB",
                    report::duration(stats.median),
                    stats.mb()
                ));
            }
            results.push(RenderResult {
                agents,
                documents,
                stats,
            });
        }
        Ok(results)
    }

    // ------------------------------------------------------------ one size

    /// Everything against the cluster for one fleet size.
    fn size(&mut self, agents: usize) -> anyhow::Result<SizeResult> {
        self.wait_for_deleted_namespaces();
        let mut result = SizeResult {
            agents,
            ..SizeResult::default()
        };
        let namespace = format!("bench-{}-{agents}", self.tag);
        let kubectl_namespace = format!("{namespace}-kubectl");
        let stream = synthetic::stream_name(&namespace);
        let dir = self.tmp().join(format!("fleet-{agents}"));
        let file = synthetic::write_fleet(&dir, agents, &namespace, &self.nats_url, false)?;
        let rendered = self.render_objects(&file)?;
        result.kube_objects = rendered.objects.len();
        result.consumers = rendered.consumers;
        log(format!(
            "{agents} agents: {} Kubernetes objects, {} consumers, namespace {namespace}",
            result.kube_objects, result.consumers
        ));
        let bodies: Vec<Value> = rendered.objects.iter().map(|o| o.body.clone()).collect();
        let kubectl_file = dir.join("kubectl-apply.yaml");
        synthetic::write_manifests(
            &kubectl_file,
            &synthetic::in_namespace(&bodies, &kubectl_namespace),
        )?;

        // a. Apply from empty, fleet and kubectl in turns (alternating who
        // goes first), each followed by an untimed wait for the
        // controllers' Pods, so their work does not load the next step.
        // Each starts on an empty cluster: the other copy's Pods (more than
        // kwok's nodes hold, at 500 agents) would keep the scheduler busy
        // during it.
        let (mut fleet_applies, mut kubectl_applies) = (Vec::new(), Vec::new());
        let (mut fleet_cpu, mut kubectl_cpu) = (Vec::new(), Vec::new());
        let mut fleet_copy = false;
        for run in 0..self.options.apply_runs {
            for fleet_turn in [run % 2 == 0, run % 2 == 1] {
                self.teardown(&[&namespace, &kubectl_namespace], &stream);
                self.track(&[&namespace, &kubectl_namespace], &stream);
                fleet_copy = fleet_turn;
                if fleet_turn {
                    let command = self.fleet_apply(&dir);
                    let before = self.control_plane_cpu();
                    let sample = self.timed("fleet apply from empty", command, 0, true)?;
                    let server = self.control_plane_cpu_since(before);
                    log(format!(
                        "{agents} agents: fleet apply {}",
                        sample_text(&sample)
                    ));
                    fleet_applies.push(sample);
                    fleet_cpu.push((sample, server));
                    self.settle(&namespace);
                } else {
                    let file = kubectl_file.to_string_lossy().into_owned();
                    let command = self.kubectl(
                        &dir,
                        &[
                            "apply",
                            "--server-side",
                            "--field-manager=kubectl-bench",
                            "-f",
                            &file,
                        ],
                    );
                    let before = self.control_plane_cpu();
                    let sample = self.timed("kubectl apply --server-side", command, 0, true)?;
                    let server = self.control_plane_cpu_since(before);
                    log(format!(
                        "{agents} agents: kubectl apply {}",
                        sample_text(&sample)
                    ));
                    kubectl_applies.push(sample);
                    kubectl_cpu.push((sample, server));
                    self.settle(&kubectl_namespace);
                }
            }
        }
        result.fleet_apply = Stats::of(&fleet_applies);
        result.kubectl_apply = Stats::of(&kubectl_applies);
        result.fleet_apply_cpu = measure::CpuUse::of(&fleet_cpu);
        result.kubectl_apply_cpu = measure::CpuUse::of(&kubectl_cpu);
        if fleet_applies.iter().any(|s| s.code != 0) {
            // Plans of a failed apply would measure something else.
            self.teardown_later(&[&namespace, &kubectl_namespace], &stream);
            return Ok(result);
        }
        // kubectl's copy has done its part: gone before the plans, which
        // need fleet's.
        self.teardown(&[&kubectl_namespace], "");
        if !fleet_copy {
            let command = self.fleet_apply(&dir);
            self.timed("fleet apply (for the plans, not timed)", command, 0, true)?;
            self.settle(&namespace);
        }

        // b. No-op plan, kubectl diff of the same objects, and the floor.
        let parent = rendered
            .objects
            .iter()
            .find(|o| o.is_applyset_parent())
            .context("the rendering has no ApplySet parent")?;
        let provenance = self.block_on(cluster::live_annotations(
            &self.client,
            &self.kinds,
            &parent.body,
        ))?;
        let as_applied = with_parent_annotations(&rendered.objects, &provenance);
        let noop_file = dir.join("kubectl-diff-noop.yaml");
        synthetic::write_manifests(&noop_file, &as_applied)?;
        let selector = rendered.selector.clone();
        let list_kinds = self.list_kinds(&as_applied);
        result.list_kinds = list_kinds.len();
        let (mut fleet_plans, mut kubectl_diffs) = (Vec::new(), Vec::new());
        let (mut floors, mut lists, mut reads) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..self.options.runs {
            let command = self.fleet(
                &dir,
                &["plan", "--env", synthetic::ENV, "--detailed-exitcode"],
            );
            let sample = self.timed("fleet plan right after apply (no-op)", command, 0, true)?;
            log(format!(
                "{agents} agents: no-op fleet plan {}",
                sample_text(&sample)
            ));
            fleet_plans.push(sample);
            let sample = self.kubectl_diff(&dir, &noop_file, 0, "kubectl diff of the no-op")?;
            log(format!(
                "{agents} agents: no-op kubectl diff {}",
                sample_text(&sample)
            ));
            kubectl_diffs.push(sample);
            let (total, list, read) = self.block_on(cluster::floor(
                &self.kubeconfig,
                &self.nats_url,
                &list_kinds,
                &namespace,
                &selector,
                &stream,
                self.options.concurrency,
            ))?;
            log(format!(
                "{agents} agents: floor {} (lists {}, JetStream {})",
                report::duration(total),
                report::duration(list),
                report::duration(read)
            ));
            floors.push(total);
            lists.push(list);
            reads.push(read);
        }
        result.fleet_noop = Stats::of(&fleet_plans);
        result.kubectl_noop = Stats::of(&kubectl_diffs);
        result.floor = Stats::of_durations(&floors);
        result.floor_lists = Stats::of_durations(&lists);
        result.floor_jetstream = Stats::of_durations(&reads);

        // d. The server's dry-run limit, on the objects as applied.
        let count = self.options.dry_runs.unwrap_or(as_applied.len());
        log(format!(
            "{agents} agents: {count} dry-run applies at concurrency {}",
            self.options.concurrency
        ));
        let dry_runs = self.block_on(cluster::dry_runs(
            &self.client,
            &self.kinds,
            &as_applied,
            count,
            self.options.concurrency,
        ))?;
        log(format!(
            "{agents} agents: {:.0} dry runs/s ({} errors)",
            dry_runs.per_second(),
            dry_runs.errors
        ));
        if let Some(error) = &dry_runs.first_error {
            let message = format!(
                "{agents} agents: {} of {} dry runs failed, the first: {error}",
                dry_runs.errors, dry_runs.requests
            );
            eprintln!("\x1b[1;33mWARNING: {message}\x1b[0m");
            self.warnings.push(message);
        }
        result.dry_runs = Some(dry_runs);

        // c. One agent changed: one value of its config.
        synthetic::write_fleet(&dir, agents, &namespace, &self.nats_url, true)?;
        let changed = self.render_objects(&file)?;
        let changed = with_parent_annotations(&changed.objects, &provenance);
        result.changed_objects = changed
            .iter()
            .zip(&as_applied)
            .filter(|(a, b)| a != b)
            .count();
        let change_file = dir.join("kubectl-diff-change.yaml");
        synthetic::write_manifests(&change_file, &changed)?;
        let (mut fleet_plans, mut kubectl_diffs) = (Vec::new(), Vec::new());
        for _ in 0..self.options.runs {
            let command = self.fleet(
                &dir,
                &["plan", "--env", synthetic::ENV, "--detailed-exitcode"],
            );
            let sample = self.timed("fleet plan of a one-agent change", command, 2, true)?;
            result.change_summary = plan_summary(&self.last_output("out"));
            log(format!(
                "{agents} agents: one-agent fleet plan {}: {}",
                sample_text(&sample),
                result.change_summary
            ));
            fleet_plans.push(sample);
            let sample = self.kubectl_diff(
                &dir,
                &change_file,
                1,
                "kubectl diff of the one-agent change",
            )?;
            log(format!(
                "{agents} agents: one-agent kubectl diff {}",
                sample_text(&sample)
            ));
            kubectl_diffs.push(sample);
        }
        result.fleet_change = Stats::of(&fleet_plans);
        result.kubectl_change = Stats::of(&kubectl_diffs);

        self.teardown_later(&[&namespace], &stream);
        Ok(result)
    }

    fn kubectl_diff(
        &mut self,
        dir: &Path,
        file: &Path,
        expected: i32,
        what: &str,
    ) -> anyhow::Result<Sample> {
        let file = file.to_string_lossy().into_owned();
        let command = self.kubectl(
            dir,
            &[
                "diff",
                "--server-side",
                "--field-manager",
                fleet::ownership::FIELD_MANAGER,
                "-f",
                &file,
            ],
        );
        // A diff where none was expected (or none where one was) means the
        // objects kubectl got are not what fleet applied: worth a warning,
        // but kubectl made the same requests.
        self.timed(what, command, expected, false)
    }

    /// What the last timed command printed (`out` or `err`).
    fn last_output(&self, extension: &str) -> String {
        let path = self
            .tmp()
            .join(format!("{:03}", self.outputs))
            .with_extension(extension);
        std::fs::read_to_string(path).unwrap_or_default()
    }

    /// The Kubernetes objects `fleet apply` would send for this fleet file:
    /// the rendering, stamped, less the kinds the cluster does not serve
    /// (fleet skips those too).
    fn render_objects(&mut self, file: &Path) -> anyhow::Result<Rendered> {
        let loaded = fleet::definition::load(file, Some(synthetic::ENV))?;
        anyhow::ensure!(
            loaded.errors() == 0,
            "the synthetic fleet has {} errors",
            loaded.errors()
        );
        let fleet = loaded.fleet.context("the synthetic fleet did not load")?;
        let rendered = fleet::render::render(&fleet).stamped();
        let consumers = rendered.jetstream.consumers.len();
        let (objects, skipped): (Vec<_>, Vec<_>) = rendered
            .kubernetes
            .into_iter()
            .partition(|o| self.kinds.of(&o.body).is_some());
        let skipped: BTreeSet<String> = skipped.iter().map(|o| o.id.kind.clone()).collect();
        for kind in skipped {
            let message = format!("the cluster does not serve {kind}: its objects are left out");
            if !self.warnings.contains(&message) {
                log(&message);
                self.warnings.push(message);
            }
        }
        let selector = objects
            .iter()
            .find_map(|o| o.body["metadata"]["labels"][fleet::ownership::PART_OF_LABEL].as_str())
            .map(|id| format!("{}={id}", fleet::ownership::PART_OF_LABEL))
            .context("no rendered object carries the ApplySet label")?;
        Ok(Rendered {
            objects,
            consumers,
            selector,
        })
    }

    /// The namespaced kinds among `objects`, one LIST each for the floor.
    fn list_kinds(&self, objects: &[Value]) -> Vec<ApiResource> {
        let mut kinds = BTreeMap::new();
        for object in objects {
            if let Some((resource, true)) = self.kinds.of(object) {
                kinds.insert(
                    (resource.api_version.clone(), resource.kind.clone()),
                    resource.clone(),
                );
            }
        }
        kinds.into_values().collect()
    }

    // ------------------------------------------------------------ cleaning up

    fn settle(&mut self, namespace: &str) {
        let started = Instant::now();
        let timeout = Duration::from_secs(300);
        match self.block_on(cluster::settle(&self.client, namespace, timeout)) {
            Ok(true) => log(format!(
                "{namespace}: the controllers made every Pod in {} (not timed)",
                report::duration(started.elapsed())
            )),
            Ok(false) => {
                let message =
                    format!("{namespace}: the controllers had not made every Pod after 300 s");
                log(&message);
                self.warnings.push(message);
            }
            Err(err) => log(format!("{namespace}: could not count Pods: {err:#}")),
        }
    }

    /// The control plane's CPU time so far (its run directory holds the
    /// kubeconfig the bench uses).
    fn control_plane_cpu(&self) -> Option<Duration> {
        measure::control_plane_cpu(self.kubeconfig.parent()?)
    }

    /// The control plane's CPU time since `before`.
    fn control_plane_cpu_since(&self, before: Option<Duration>) -> Option<Duration> {
        Some(self.control_plane_cpu()?.saturating_sub(before?))
    }

    /// Namespaces and a stream about to be made, deleted when the bench ends.
    fn track(&mut self, namespaces: &[&str], stream: &str) {
        for namespace in namespaces {
            if !self.namespaces.iter().any(|n| n == namespace) {
                self.namespaces.push(namespace.to_string());
            }
        }
        if !self.streams.iter().any(|s| s == stream) {
            self.streams.push(stream.to_string());
        }
    }

    /// Deletes namespaces and a stream and waits for the namespaces to go
    /// (not timed), so the teardown does not load what is measured next.
    fn teardown(&mut self, namespaces: &[&str], stream: &str) {
        self.teardown_later(namespaces, stream);
        self.wait_for_deleted_namespaces();
    }

    /// Deletes namespaces and a stream without waiting.
    fn teardown_later(&mut self, namespaces: &[&str], stream: &str) {
        if self.options.keep {
            return;
        }
        for namespace in namespaces {
            match self.block_on(cluster::delete_namespace(&self.client, namespace)) {
                Ok(()) => {
                    self.namespaces.retain(|n| n != namespace);
                    self.deleting.push(namespace.to_string());
                }
                Err(err) => log(format!("could not delete namespace {namespace}: {err:#}")),
            }
        }
        if !stream.is_empty() {
            match self.block_on(cluster::delete_stream(&self.nats_url, stream)) {
                Ok(()) => self.streams.retain(|s| s != stream),
                Err(err) => log(format!(
                    "could not delete JetStream stream {stream}: {err:#}"
                )),
            }
        }
    }

    /// Waits for every namespace deleted so far to be gone.
    fn wait_for_deleted_namespaces(&mut self) {
        for namespace in std::mem::take(&mut self.deleting) {
            let started = Instant::now();
            let timeout = Duration::from_secs(600);
            match self.block_on(cluster::wait_gone(&self.client, &namespace, timeout)) {
                Ok(true) => {
                    let waited = started.elapsed();
                    if waited > Duration::from_secs(1) {
                        log(format!(
                            "waited {} for namespace {namespace} to be deleted (not timed)",
                            report::duration(waited)
                        ));
                    }
                }
                Ok(false) => log(format!("namespace {namespace} still there after 600 s")),
                Err(err) => log(format!("namespace {namespace}: {err:#}")),
            }
        }
    }

    /// Deletes what is left and waits for the namespaces to go.
    fn delete_all(&mut self) {
        let namespaces = self.namespaces.clone();
        let namespaces: Vec<&str> = namespaces.iter().map(String::as_str).collect();
        self.teardown_later(&namespaces, "");
        for stream in self.streams.clone() {
            self.teardown_later(&[], &stream);
        }
        self.wait_for_deleted_namespaces();
    }

    /// At the end, after an error too: nothing of the run stays unless
    /// --keep.
    fn clean_up(&mut self) {
        if self.options.keep {
            let dir = self.tmp.take().map(tempfile::TempDir::keep);
            log(format!(
                "kept {}; namespaces {}; streams {}",
                dir.map(|d| d.display().to_string()).unwrap_or_default(),
                self.namespaces.join(", "),
                self.streams.join(", ")
            ));
            return;
        }
        self.delete_all();
    }
}

/// The rendering of a fleet as the bench uses it.
struct Rendered {
    objects: Vec<fleet::render::DesiredObject>,
    consumers: usize,
    /// fleet's ownership label selector, for the floor's LISTs.
    selector: String,
}

/// The objects' bodies, the ApplySet parent with the provenance annotations
/// apply added to the live one.
fn with_parent_annotations(
    objects: &[fleet::render::DesiredObject],
    annotations: &serde_json::Map<String, Value>,
) -> Vec<Value> {
    objects
        .iter()
        .map(|object| {
            let mut body = object.body.clone();
            if object.is_applyset_parent()
                && let Some(existing) = body["metadata"]["annotations"].as_object_mut()
            {
                existing.extend(annotations.clone());
            }
            body
        })
        .collect()
}

/// The environment `scripts/controlplane env` prints (`export KEY=VALUE`).
fn controlplane_env(root: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let output = Command::new(root.join("scripts/controlplane"))
        .arg("env")
        .current_dir(root)
        .output()
        .context("running scripts/controlplane env")?;
    anyhow::ensure!(
        output.status.success(),
        "scripts/controlplane env failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.strip_prefix("export ")?.split_once('='))
        .map(|(key, value)| (key.to_string(), value.trim_matches(['"', '\'']).to_string()))
        .collect())
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The plan's summary line ("Plan: ..." or "No changes ...").
fn plan_summary(plan: &str) -> String {
    plan.lines()
        .rfind(|line| line.starts_with("Plan:") || line.starts_with("No changes"))
        .unwrap_or("")
        .to_string()
}

fn sample_text(sample: &Sample) -> String {
    format!(
        "{}, {:.1} MB, exit {}",
        report::duration(sample.wall),
        sample.max_rss_kib as f64 / 1024.0,
        sample.code
    )
}

/// The first lines a failed command printed to `path`, indented.
fn excerpt(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let mut shown: String = lines
        .iter()
        .take(30)
        .map(|line| format!("    | {line}\n"))
        .collect();
    if lines.len() > 30 {
        shown.push_str(&format!("    | ... ({} lines in all)\n", lines.len()));
    }
    shown
}
