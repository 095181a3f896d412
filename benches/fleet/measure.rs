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
}

/// Runs `command` with stdin from /dev/null, stdout and stderr to files, and
/// reaps it with `wait4`, which also returns the child's peak RSS.
pub fn run(command: &mut Command, stdout: &Path, stderr: &Path) -> anyhow::Result<Sample> {
    let out = File::create(stdout).with_context(|| format!("creating {}", stdout.display()))?;
    let err = File::create(stderr).with_context(|| format!("creating {}", stderr.display()))?;
    command
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err));
    let started = Instant::now();
    let child = command
        .spawn()
        .with_context(|| format!("starting {:?}", command.get_program()))?;
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
            return Err(error).context("waiting for a child process");
        }
    }
    let wall = started.elapsed();
    drop(child);
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    };
    Ok(Sample {
        wall,
        max_rss_kib: usage.ru_maxrss.max(0) as u64,
        code,
    })
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
