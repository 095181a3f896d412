//! The report: Markdown, ready to paste into BENCHMARKS.md.

use std::fmt::Write as _;
use std::time::Duration;

use crate::measure::{CpuUse, Stats};
use crate::{Machine, RenderResult, SizeResult};

/// "850 ms" below 10 s, "12.3 s" above.
pub(crate) fn duration(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 10_000.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{:.1} s", ms / 1000.0)
    }
}

fn minutes(d: Duration) -> String {
    if d < Duration::from_secs(120) {
        format!("{:.0} s", d.as_secs_f64())
    } else {
        format!("{:.0} min", d.as_secs_f64() / 60.0)
    }
}

fn thousands(n: usize) -> String {
    if n >= 1000 {
        format!("{},{:03}", n / 1000, n % 1000)
    } else {
        n.to_string()
    }
}

/// "median 1.2 s (min 1.1 s), 45.0 MB"; "-" when not measured.
fn stats(stats: Option<&Stats>) -> String {
    let Some(s) = stats else {
        return "-".into();
    };
    let mut text = if s.runs > 1 {
        format!("{} (min {})", duration(s.median), duration(s.min))
    } else {
        duration(s.median)
    };
    if s.max_rss_kib > 0 {
        let _ = write!(text, ", {:.1} MB", s.mb());
    }
    text
}

fn ratio(a: Option<&Stats>, b: Option<&Stats>) -> Option<f64> {
    let (a, b) = (a?, b?);
    (b.median > Duration::ZERO).then(|| a.median.as_secs_f64() / b.median.as_secs_f64())
}

fn times(ratio: Option<f64>) -> String {
    ratio.map_or("-".into(), |r| format!("{r:.2}x"))
}

pub(crate) fn markdown(
    machine: &Machine,
    options: &str,
    renders: &[RenderResult],
    sizes: &[SizeResult],
    warnings: &[String],
    fails: &[String],
    elapsed: Duration,
) -> String {
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(w, "## fleet benchmark, {}\n", machine.date);
    let _ = writeln!(w, "- Command: `{}`", machine.command);
    let _ = writeln!(
        w,
        "- {} (`{}`), kubectl {}, kube-apiserver {}, nats-server {}",
        machine.fleet, machine.commit, machine.kubectl, machine.apiserver, machine.nats
    );
    let _ = writeln!(
        w,
        "- Machine: {} cores ({}), {} memory, Linux {}",
        machine.cores, machine.cpu, machine.memory, machine.kernel
    );
    let _ = writeln!(
        w,
        "- Load average (1, 5, 15 min): {} at the start, {} at the end",
        machine.load_start, machine.load_end
    );
    let _ = writeln!(w, "- {options}");
    let _ = writeln!(
        w,
        "- The NATS server held {} streams at the start (fleet's plan lists them all)",
        machine.streams
    );
    let _ = writeln!(w, "- Whole run: {}", minutes(elapsed));

    if !renders.is_empty() {
        let _ = writeln!(w, "\n### `fleet render` (no cluster)\n");
        let _ = writeln!(
            w,
            "| agents | documents | median (min), peak RSS | per 100 agents |"
        );
        let _ = writeln!(w, "|---:|---:|---|---:|");
        for r in renders {
            // Below 100 agents this is mostly process start-up.
            let per_100 = match &r.stats {
                Some(s) if r.agents >= 100 => {
                    format!("{:.1} ms", s.median_ms() * 100.0 / r.agents as f64)
                }
                _ => "-".into(),
            };
            let _ = writeln!(
                w,
                "| {} | {} | {} | {per_100} |",
                thousands(r.agents),
                thousands(r.documents),
                stats(r.stats.as_ref())
            );
        }
    }

    for s in sizes {
        size_table(w, s);
    }
    if !sizes.is_empty() {
        goals(w, sizes);
    }

    if !warnings.is_empty() {
        let _ = writeln!(w, "\nWarnings:\n");
        for warning in warnings {
            let _ = writeln!(w, "- {warning}");
        }
    }
    if !fails.is_empty() {
        let _ = writeln!(w, "\n**FAIL**:\n");
        for fail in fails {
            let _ = writeln!(w, "- {fail}");
        }
    }
    out
}

/// What the applies from empty cost the machine: CPU seconds of the control
/// plane and of the tool during each (medians), and the shortest time that
/// much work takes on this machine's cores. A tool near that floor is bound
/// by the server's cost per write, not by how it sends them.
fn apply_cpu(s: &SizeResult) -> Option<String> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let one = |tool: &str, cpu: Option<&CpuUse>, wall: Option<&Stats>| {
        let (cpu, wall) = (cpu?, wall?);
        let floor = cpu.total().as_secs_f64() / cores as f64;
        Some(format!(
            "{tool}: control plane {:.1} s + {tool} {:.1} s = {:.1} CPU-s, at least {:.1} s on {cores} cores; its median {} is {:.0}% of the machine",
            cpu.control_plane.as_secs_f64(),
            cpu.client.as_secs_f64(),
            cpu.total().as_secs_f64(),
            floor,
            duration(wall.median),
            100.0 * floor / wall.median.as_secs_f64()
        ))
    };
    let fleet = one("fleet", s.fleet_apply_cpu.as_ref(), s.fleet_apply.as_ref())?;
    let kubectl = one(
        "kubectl",
        s.kubectl_apply_cpu.as_ref(),
        s.kubectl_apply.as_ref(),
    );
    Some(format!(
        "CPU during apply from empty (medians of the runs): {fleet}{}.",
        kubectl.map(|k| format!("; {k}")).unwrap_or_default()
    ))
}

fn size_table(w: &mut String, s: &SizeResult) {
    let _ = writeln!(
        w,
        "\n### {} agents: {} Kubernetes objects, {} JetStream consumers\n",
        thousands(s.agents),
        thousands(s.kube_objects),
        thousands(s.consumers)
    );
    let _ = writeln!(
        w,
        "| step | fleet: median (min), peak RSS | kubectl: median (min), peak RSS | fleet / kubectl |"
    );
    let _ = writeln!(w, "|---|---|---|---:|");
    let rows = [
        (
            "apply from empty: `fleet apply --auto-approve --no-wait` (with JetStream) / `kubectl apply --server-side`".to_string(),
            s.fleet_apply.as_ref(),
            s.kubectl_apply.as_ref(),
        ),
        (
            "no-op plan: `fleet plan` / `kubectl diff --server-side`".to_string(),
            s.fleet_noop.as_ref(),
            s.kubectl_noop.as_ref(),
        ),
        (
            format!(
                "one agent changed ({} object{} differ{}): `fleet plan` / `kubectl diff --server-side`",
                s.changed_objects,
                if s.changed_objects == 1 { "" } else { "s" },
                if s.changed_objects == 1 { "s" } else { "" }
            ),
            s.fleet_change.as_ref(),
            s.kubectl_change.as_ref(),
        ),
    ];
    for (step, fleet, kubectl) in rows {
        let _ = writeln!(
            w,
            "| {step} | {} | {} | {} |",
            stats(fleet),
            stats(kubectl),
            times(ratio(fleet, kubectl))
        );
    }
    if let Some(line) = apply_cpu(s) {
        let _ = writeln!(w, "\n{line}");
    }
    if let Some(floor) = &s.floor {
        let _ = writeln!(
            w,
            "\nFloor (one LIST per kind for {} kinds, and the stream's info and consumer list, \
             from connecting; in this process): {}; the LISTs alone {}, the JetStream reads alone {}.",
            s.list_kinds,
            stats(Some(floor)),
            stats(s.floor_lists.as_ref()),
            stats(s.floor_jetstream.as_ref())
        );
    }
    if let Some(d) = &s.dry_runs {
        let _ = writeln!(
            w,
            "\nDry-run limit: {} server-side dry-run applies of the applied objects in {}: \
             **{:.0} per second**{}.",
            thousands(d.requests),
            duration(d.elapsed),
            d.per_second(),
            if d.errors > 0 {
                format!(" ({} failed)", d.errors)
            } else {
                String::new()
            }
        );
    }
    if !s.change_summary.is_empty() {
        let _ = writeln!(w, "\nThe one-agent plan said: `{}`", s.change_summary);
    }
}

/// The goal table of issue 10, one column per size.
fn goals(w: &mut String, sizes: &[SizeResult]) {
    let _ = writeln!(w, "\n### Against the goals\n");
    let header: Vec<String> = sizes
        .iter()
        .map(|s| format!("{} agents", thousands(s.agents)))
        .collect();
    let _ = writeln!(w, "| measure | goal | {} |", header.join(" | "));
    let _ = writeln!(w, "|---|---|{}", "---:|".repeat(sizes.len()));
    let row = |w: &mut String, measure: &str, goal: &str, cells: Vec<String>| {
        let _ = writeln!(w, "| {measure} | {goal} | {} |", cells.join(" | "));
    };
    row(
        w,
        "no-op plan / `kubectl diff --server-side`",
        "at most 0.1x at 1,000",
        sizes
            .iter()
            .map(|s| times(ratio(s.fleet_noop.as_ref(), s.kubectl_noop.as_ref())))
            .collect(),
    );
    row(
        w,
        "no-op plan / floor (LIST per kind + JetStream reads)",
        "at most 2x at 1,000",
        sizes
            .iter()
            .map(|s| times(ratio(s.fleet_noop.as_ref(), s.floor.as_ref())))
            .collect(),
    );
    row(
        w,
        "peak memory, no-op plan",
        "at most 120 MB at 1,000",
        sizes
            .iter()
            .map(|s| {
                s.fleet_noop
                    .as_ref()
                    .map_or("-".into(), |n| format!("{:.1} MB", n.mb()))
            })
            .collect(),
    );
    row(
        w,
        "its growth from the previous size, for the agents' growth",
        "no faster than the fleet",
        sizes
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let Some(previous) = i.checked_sub(1).map(|i| &sizes[i]) else {
                    return "-".into();
                };
                match (&s.fleet_noop, &previous.fleet_noop) {
                    (Some(now), Some(before)) if before.max_rss_kib > 0 => format!(
                        "{:.2}x for {:.2}x",
                        now.max_rss_kib as f64 / before.max_rss_kib as f64,
                        s.agents as f64 / previous.agents as f64
                    ),
                    _ => "-".into(),
                }
            })
            .collect(),
    );
    row(
        w,
        "one-agent plan − no-op plan (medians); the changed objects' dry runs at the measured limit",
        "about that agent's dry runs",
        sizes
            .iter()
            .map(|s| {
                let (Some(change), Some(noop)) = (&s.fleet_change, &s.fleet_noop) else {
                    return "-".into();
                };
                let extra = change.median_ms() - noop.median_ms();
                let dry_runs = s.dry_runs.as_ref().map_or("-".into(), |d| {
                    format!(
                        "{:.0} ms",
                        s.changed_objects as f64 * 1000.0 / d.per_second()
                    )
                });
                format!("{extra:+.0} ms; {dry_runs}")
            })
            .collect(),
    );
    row(
        w,
        "apply from empty / `kubectl apply --server-side`",
        "at most 0.4x at 500",
        sizes
            .iter()
            .map(|s| times(ratio(s.fleet_apply.as_ref(), s.kubectl_apply.as_ref())))
            .collect(),
    );
    row(
        w,
        "no-op plan / the dry runs of every object at the measured limit",
        "(how far from dry-running everything)",
        sizes
            .iter()
            .map(|s| match (&s.fleet_noop, &s.dry_runs) {
                (Some(noop), Some(d)) => {
                    let all = s.kube_objects as f64 * 1000.0 / d.per_second();
                    format!("{:.2}x of {all:.0} ms", noop.median_ms() / all)
                }
                _ => "-".into(),
            })
            .collect(),
    );
}
