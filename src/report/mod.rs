//! report: turns what the pipeline produced into text for people and
//! programs. Writes to any `impl Write`; decides nothing.

use std::io::Write;

use anstyle::{AnsiColor, Style};

use crate::plan::{Action, Change, Plan};
use crate::render::Rendered;

/// Multi-document YAML: every Kubernetes object (ready for `kubectl apply -f`),
/// then each JetStream stream and consumer, introduced by a comment.
pub fn rendered_yaml(rendered: &Rendered, out: &mut dyn Write) -> anyhow::Result<()> {
    for object in &rendered.kubernetes {
        writeln!(out, "---")?;
        write!(out, "{}", serde_saphyr::to_string(&object.body)?)?;
    }
    for stream in &rendered.jetstream.streams {
        writeln!(
            out,
            "---\n# JetStream stream {} (not a Kubernetes object)",
            stream.name
        )?;
        write!(out, "{}", serde_saphyr::to_string(&stream.config)?)?;
    }
    for consumer in &rendered.jetstream.consumers {
        writeln!(
            out,
            "---\n# JetStream consumer {} on stream {} (not a Kubernetes object)",
            consumer.name, consumer.stream
        )?;
        write!(out, "{}", serde_saphyr::to_string(&consumer.config)?)?;
    }
    Ok(())
}

/// The rendering as one JSON document: `{"kubernetes": [...], "jetstream": {...}}`.
pub fn rendered_json(rendered: &Rendered, out: &mut dyn Write) -> anyhow::Result<()> {
    serde_json::to_writer_pretty(&mut *out, rendered).map_err(io_error)?;
    writeln!(out)?;
    Ok(())
}

/// serde_json wraps the writer's io::Error in its own, whose `source()`
/// skips it, so a closed pipe would not be recognised as one (`fleet render
/// --format json | head -1` failed with "Broken pipe"). Unwrapped, an io
/// error stays an io error; a serialisation error keeps its message.
fn io_error(err: serde_json::Error) -> std::io::Error {
    std::io::Error::from(err)
}

/// The plan for people, Terraform-style: one block per change with its
/// field-level diff, then the summary line. Always styled: the stream it is
/// written to (anstream) drops the colour when it is not a terminal or
/// `NO_COLOR` is set.
pub fn plan_text(plan: &Plan, out: &mut dyn Write) -> anyhow::Result<()> {
    if let Some(holder) = &plan.lock {
        writeln!(
            out,
            "{YELLOW}Deploy lock:{YELLOW:#} held by {holder}{}.\n",
            lock_consequence(holder)
        )?;
    }
    let changes = shown_changes(plan);
    let environment = plan
        .environment
        .as_deref()
        .map(|e| format!(", environment {e}"))
        .unwrap_or_default();
    if changes.is_empty() && plan.drift_only {
        writeln!(
            out,
            "{BOLD}No drift.{BOLD:#} Nothing moved in the cluster or in JetStream since fleet last applied (fleet {}{environment}, kube context `{}`).",
            plan.fleet, plan.kube_context
        )?;
        write_notes(plan, out)?;
        return Ok(());
    }
    if changes.is_empty() {
        writeln!(
            out,
            "{}No changes.{} Your cluster matches the configuration (fleet {}{environment}, kube context `{}`).",
            BOLD.render(),
            BOLD.render_reset(),
            plan.fleet,
            plan.kube_context
        )?;
        write_notes(plan, out)?;
        return Ok(());
    }
    writeln!(
        out,
        "fleet {}{environment} on kube context `{}` will perform the following actions:\n",
        plan.fleet, plan.kube_context
    )?;
    for change in changes {
        let style = action_style(change.action);
        writeln!(
            out,
            "  {BOLD}# {} {}{BOLD:#}",
            change.target,
            change.action.verb()
        )?;
        if let Some(reason) = &change.reason {
            writeln!(out, "  # ({reason})")?;
        }
        let drift = change
            .drift
            .as_ref()
            .map(|d| format!(" ({})", d.describe()))
            .unwrap_or_default();
        writeln!(
            out,
            "  {style}{}{style:#} {}{YELLOW}{drift}{YELLOW:#}",
            change.action.symbol(),
            change.target
        )?;
        if let Some(diff) = &change.diff {
            for line in diff.lines() {
                let line_style = match line.as_bytes().first() {
                    Some(b'+') => GREEN,
                    Some(b'-') => RED,
                    Some(b'@') => DIM,
                    _ => Style::new(),
                };
                writeln!(out, "      {line_style}{line}{line_style:#}")?;
            }
        }
        writeln!(out)?;
    }
    write_notes(plan, out)?;
    writeln!(out, "{BOLD}{}{BOLD:#}", summary_line(plan))?;
    Ok(())
}

/// What a held deploy lock means for the next apply.
fn lock_consequence(holder: &crate::lock::Holder) -> &'static str {
    if holder.expired {
        ""
    } else {
        "; `fleet apply` fails until it is released (or waits for it, with --lock-timeout)"
    }
}

/// Changes worth a block of their own; kinds that are not installed are
/// reported once, in the notes.
fn shown_changes(plan: &Plan) -> Vec<&Change> {
    plan.changes
        .iter()
        .filter(|c| !matches!(c.action, Action::NoOp | Action::NotInstalled))
        .collect()
}

fn write_notes(plan: &Plan, out: &mut dyn Write) -> anyhow::Result<()> {
    for note in &plan.notes {
        writeln!(out, "{YELLOW}Note:{YELLOW:#} {note}")?;
    }
    if !plan.notes.is_empty() {
        writeln!(out)?;
    }
    Ok(())
}

/// `Plan: 3 to add, 2 to change, 0 to destroy.` (plus what apply will refuse).
pub fn summary_line(plan: &Plan) -> String {
    let s = plan.summary();
    let mut line = format!(
        "Plan: {} to add, {} to change, {} to destroy.",
        s.add, s.change, s.destroy
    );
    if s.blocked > 0 {
        line.push_str(&format!(
            " {} {} --force-conflicts or --adopt.",
            s.blocked,
            if s.blocked == 1 {
                "change needs"
            } else {
                "changes need"
            }
        ));
    }
    line
}

/// The plan as JSON (schema: `plan::Plan`, `format_version` 1), with its summary.
pub fn plan_json(plan: &Plan, out: &mut dyn Write) -> anyhow::Result<()> {
    #[derive(serde::Serialize)]
    struct WithSummary<'a> {
        #[serde(flatten)]
        plan: &'a Plan,
        summary: crate::plan::Summary,
    }
    serde_json::to_writer_pretty(
        &mut *out,
        &WithSummary {
            plan,
            summary: plan.summary(),
        },
    )
    .map_err(io_error)?;
    writeln!(out)?;
    Ok(())
}

/// The plan for a pull-request comment or the GitHub step summary.
pub fn plan_markdown(plan: &Plan, out: &mut dyn Write) -> anyhow::Result<()> {
    let environment = plan
        .environment
        .as_deref()
        .map(|e| format!(" ({e})"))
        .unwrap_or_default();
    writeln!(out, "### fleet plan: {}{environment}\n", plan.fleet)?;
    if let Some(holder) = &plan.lock {
        writeln!(
            out,
            "> **Deploy lock:** held by {holder}{}.\n",
            lock_consequence(holder)
        )?;
    }
    let changes = shown_changes(plan);
    if changes.is_empty() {
        writeln!(
            out,
            "**No changes.** The cluster matches the configuration."
        )?;
        return Ok(());
    }
    writeln!(out, "**{}**\n", summary_line(plan))?;
    writeln!(out, "| | object | action |\n|---|---|---|")?;
    for change in &changes {
        let drift = change
            .drift
            .as_ref()
            .map(|d| format!(" ({})", d.describe()))
            .unwrap_or_default();
        writeln!(
            out,
            "| `{}` | {} | {}{drift} |",
            change.action.symbol(),
            change.target,
            change.action.verb()
        )?;
    }
    writeln!(out)?;
    for change in changes {
        let Some(diff) = &change.diff else { continue };
        writeln!(
            out,
            "<details><summary><code>{}</code> {}</summary>\n\n```diff\n{}```\n</details>\n",
            change.action.symbol(),
            change.target,
            diff
        )?;
    }
    for note in &plan.notes {
        writeln!(out, "> **Note:** {note}\n")?;
    }
    Ok(())
}

const BOLD: Style = Style::new().bold();
const DIM: Style = Style::new().dimmed();
const GREEN: Style = AnsiColor::Green.on_default();
const RED: Style = AnsiColor::Red.on_default();
const YELLOW: Style = AnsiColor::Yellow.on_default();

fn action_style(action: Action) -> Style {
    match action {
        Action::Create => GREEN,
        Action::Update | Action::Conflict | Action::Unowned | Action::NotInstalled => YELLOW,
        Action::Delete | Action::Replace => RED,
        Action::NoOp => Style::new(),
    }
}
