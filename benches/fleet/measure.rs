//! Timing a child process: wall time and peak RSS, and the statistics of
//! several runs.

use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;

/// One run of a command.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub wall: Duration,
    /// Peak resident set size of the child, in KiB (Linux reports
    /// `ru_maxrss` in KiB).
    pub max_rss_kib: u64,
    /// The exit code; 128 + the signal when a signal ended it.
    pub code: i32,
    /// CPU time of the child (user + system).
    pub cpu: Duration,
}

/// The argument that makes the bench binary a runner (see [`run`]).
pub(crate) const RUNNER: &str = "--run-child";

/// Runs `command` with stdin from /dev/null and stdout and stderr to files,
/// through a runner: this binary started afresh with [`RUNNER`], which
/// starts the command and reaps it with `wait4` ([`runner_main`]).
///
/// Why a runner: Linux counts in a child's peak RSS the pages of the
/// process that forked it (a forked copy maps them all until its exec), and
/// this process holds whole fleets by then. The runner is small when it
/// forks, so the figure is the command's own (give or take the runner's
/// few MB). Starting the runner is not timed: it times the command itself.
pub(crate) fn run(command: &Command, stdout: &Path, stderr: &Path) -> anyhow::Result<Sample> {
    let runner = std::env::current_exe().context("finding the bench binary")?;
    let mut wrapped = Command::new(runner);
    wrapped
        .arg(RUNNER)
        .arg(stdout)
        .arg(stderr)
        .arg(command.get_program())
        .args(command.get_args());
    if let Some(dir) = command.get_current_dir() {
        wrapped.current_dir(dir);
    }
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => wrapped.env(key, value),
            None => wrapped.env_remove(key),
        };
    }
    let output = wrapped.stdin(Stdio::null()).output()?;
    let report = String::from_utf8_lossy(&output.stdout);
    let fields: Vec<u64> = report
        .split_whitespace()
        .filter_map(|field| field.parse().ok())
        .collect();
    match fields[..] {
        [nanos, max_rss_kib, code, cpu_micros] => Ok(Sample {
            wall: Duration::from_nanos(nanos),
            max_rss_kib,
            code: code as i32,
            cpu: Duration::from_micros(cpu_micros),
        }),
        _ => anyhow::bail!(
            "the runner of {:?} failed: {}",
            command.get_program(),
            String::from_utf8_lossy(&output.stderr)
        ),
    }
}

/// The runner: `ARGS` are stdout file, stderr file, program, its arguments.
/// Prints "wall-nanoseconds peak-RSS-KiB exit-code CPU-microseconds".
pub(crate) fn runner_main(args: &[String]) -> anyhow::Result<()> {
    let [stdout, stderr, program, args @ ..] = args else {
        anyhow::bail!("{RUNNER} needs: STDOUT STDERR PROGRAM [ARGS...]");
    };
    let out = File::create(stdout).with_context(|| format!("creating {stdout}"))?;
    let err = File::create(stderr).with_context(|| format!("creating {stderr}"))?;
    let started = Instant::now();
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .spawn()
        .with_context(|| format!("starting {program}"))?;
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain data, all zeroes is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: valid pointers to locals; `pid` is our own child, which
        // nothing else waits for (`child` is never waited on: it is dropped
        // below, which neither waits nor kills).
        let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if reaped == pid {
            break;
        }
        let error = std::io::Error::last_os_error();
        if error.kind() != std::io::ErrorKind::Interrupted {
            return Err(error).context("waiting for the child process");
        }
    }
    let wall = started.elapsed();
    drop(child);
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    };
    let micros = |t: libc::timeval| t.tv_sec.max(0) as u64 * 1_000_000 + t.tv_usec.max(0) as u64;
    let cpu = micros(usage.ru_utime) + micros(usage.ru_stime);
    // Linux reports ru_maxrss in KiB.
    println!(
        "{} {} {code} {cpu}",
        wall.as_nanos(),
        usage.ru_maxrss.max(0)
    );
    Ok(())
}

/// CPU time used so far by the local control plane's processes (every
/// server `scripts/controlplane` started, whose pids it keeps in
/// `<run>/pids`), read from `/proc/<pid>/stat`; `None` if unreadable.
pub(crate) fn control_plane_cpu(run: &Path) -> Option<Duration> {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks <= 0 {
        return None;
    }
    let mut total = 0u64;
    for entry in std::fs::read_dir(run.join("pids")).ok()? {
        let pid = std::fs::read_to_string(entry.ok()?.path()).ok()?;
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())) else {
            continue; // not running
        };
        // After the command name in parentheses: state is field 3, utime
        // and stime fields 14 and 15.
        let after_name = stat.rsplit_once(')')?.1;
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        let utime: u64 = fields.get(11)?.parse().ok()?;
        let stime: u64 = fields.get(12)?.parse().ok()?;
        total += utime + stime;
    }
    Some(Duration::from_micros(total * 1_000_000 / ticks as u64))
}

/// The CPU one step used, as the medians of its runs: the control plane's
/// (API server, etcd, controllers, NATS) and the command's own.
#[derive(Debug, Clone, Copy)]
pub struct CpuUse {
    pub control_plane: Duration,
    pub client: Duration,
}

impl CpuUse {
    /// Medians of the runs; `None` without a control plane reading.
    pub fn of(runs: &[(Sample, Option<Duration>)]) -> Option<CpuUse> {
        let server: Vec<Duration> = runs.iter().map(|(_, s)| *s).collect::<Option<_>>()?;
        let client: Vec<Duration> = runs.iter().map(|(s, _)| s.cpu).collect();
        Some(CpuUse {
            control_plane: Stats::of_durations(&server)?.median,
            client: Stats::of_durations(&client)?.median,
        })
    }

    pub fn total(&self) -> Duration {
        self.control_plane + self.client
    }
}

/// Min and median wall time and peak RSS of several runs.
#[derive(Debug, Clone, Copy)]
pub struct Stats {
    pub runs: usize,
    pub min: Duration,
    pub median: Duration,
    /// The highest peak RSS of the runs, in KiB (0: not measured).
    pub max_rss_kib: u64,
}

impl Stats {
    pub fn of(samples: &[Sample]) -> Option<Stats> {
        let walls: Vec<Duration> = samples.iter().map(|s| s.wall).collect();
        let mut stats = Stats::of_durations(&walls)?;
        stats.max_rss_kib = samples.iter().map(|s| s.max_rss_kib).max().unwrap_or(0);
        Some(stats)
    }

    /// For what is timed in this process (no RSS of its own).
    pub fn of_durations(walls: &[Duration]) -> Option<Stats> {
        let mut sorted = walls.to_vec();
        sorted.sort();
        let middle = sorted.len() / 2;
        let median = match sorted.len() {
            0 => return None,
            n if n % 2 == 1 => sorted[middle],
            _ => (sorted[middle - 1] + sorted[middle]) / 2,
        };
        Some(Stats {
            runs: sorted.len(),
            min: sorted[0],
            median,
            max_rss_kib: 0,
        })
    }

    pub fn median_ms(&self) -> f64 {
        self.median.as_secs_f64() * 1000.0
    }

    pub fn mb(&self) -> f64 {
        self.max_rss_kib as f64 / 1024.0
    }
}
