//! report: turns what the pipeline produced into text for people and
//! programs. Writes to any `impl Write`; decides nothing.

pub mod github;
pub mod status;

use std::io::Write;

use anstyle::{AnsiColor, Style};

use crate::plan::{Action, Change, Plan};
use crate::provenance;
use crate::render::Rendered;

/// Multi-document YAML: every Kubernetes object (ready for `kubectl apply -f`),
/// then each JetStream stream and consumer, introduced by a comment.
pub fn rendered_yaml(rendered: &Rendered, out: &mut dyn Write) -> anyhow::Result<()> {
    for object in &rendered.kubernetes {
        writeln!(out, "---")?;
        write!(out, "{}", serde_saphyr::to_string(&object.body)?)?;
    }
    for secret in &rendered.credentials {
        writeln!(
            out,
            "---\n# The agent's NATS credentials: apply mints its user with these permissions and writes the creds file"
        )?;
        write!(out, "{}", serde_saphyr::to_string(&secret.body)?)?;
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

/// `fleet rbac --nats`: the permissions as a user JWT's `nats` claim
/// holds them, with the `nsc` command that sets them.
pub fn nats_rights_yaml(
    rights: &crate::credentials::Permissions,
    fleet: &str,
    purpose: crate::access::Purpose,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    writeln!(
        out,
        "# The NATS permissions of the user that runs `fleet {}` for fleet {fleet}:\n# nothing else is needed. With nsc:\n#   nsc edit user --name <user> --allow-pub '{}' --allow-sub '{}'",
        match purpose {
            crate::access::Purpose::Apply => "apply",
            _ => "plan",
        },
        rights.publish.join(","),
        rights.subscribe.join(",")
    )?;
    let document = serde_json::json!({
        "pub": { "allow": rights.publish },
        "sub": { "allow": rights.subscribe },
    });
    write!(out, "{}", serde_saphyr::to_string(&document)?)?;
    Ok(())
}

/// Multi-document YAML, each document after its comment (`fleet rbac`).
pub fn documents_yaml(
    documents: &[crate::access::Document],
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    for document in documents {
        writeln!(out, "---")?;
        for line in document.comment.lines() {
            writeln!(out, "# {line}")?;
        }
        write!(out, "{}", serde_saphyr::to_string(&document.body)?)?;
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
pub fn io_error(err: serde_json::Error) -> std::io::Error {
    std::io::Error::from(err)
}

/// Writes what a report rendered, styles included, to stdout at once: as it
/// is on a terminal, without the styles where anstream would drop them (not
/// a terminal, `NO_COLOR`). Writing through anstream instead cost one or
/// more write calls per line (227,849 for the 117,142-line first plan of 500
/// agents); this is one large write.
pub fn to_stdout(styled: &[u8]) -> std::io::Result<()> {
    let plain;
    let bytes = match anstream::stdout().current_choice() {
        anstream::ColorChoice::Never => {
            plain = anstream::adapter::strip_bytes(styled).into_vec();
            &plain
        }
        _ => styled,
    };
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(bytes)?;
    stdout.flush()
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
    writeln!(out, "{DIM}{}{DIM:#}", target_line(plan))?;
    if let Some(line) = targeting_line(plan) {
        writeln!(out, "{BOLD}{line}{BOLD:#}")?;
    }
    write_provenance(plan, out)?;
    if changes.is_empty() && plan.drift_only {
        writeln!(
            out,
            "{BOLD}No drift.{BOLD:#} Nothing moved in the cluster or in JetStream since fleet last applied (fleet {}{environment}, kube context `{}`).",
            plan.fleet, plan.kube_context
        )?;
        write_notes(plan, out)?;
        return Ok(());
    }
    if changes.is_empty() && plan.destroy {
        writeln!(
            out,
            "{BOLD}Nothing to destroy.{BOLD:#} fleet {}{environment} owns nothing on kube context `{}` or its NATS server.",
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
    if plan.destroy {
        writeln!(
            out,
            "{BOLD}Destroy:{BOLD:#} fleet {}{environment} on kube context `{}` will destroy everything it owns, in this order:\n",
            plan.fleet, plan.kube_context
        )?;
    } else {
        writeln!(
            out,
            "fleet {}{environment} on kube context `{}` will perform the following actions:\n",
            plan.fleet, plan.kube_context
        )?;
    }
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
        if let Some(blocked) = &change.blocked {
            writeln!(out, "  {RED}# blocked:{RED:#} {}", blocked.reason)?;
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

/// Where the plan was made, first in every report: a plan without
/// `--env` goes to the base namespace, and `FLEET_NATS_URL` overrides the
/// environment's `nats_url`, so both are named (the URL without userinfo).
fn target_line(plan: &Plan) -> String {
    let environment = match &plan.environment {
        Some(env) => format!("environment `{env}`"),
        None => "no environment (fleet.toml alone)".into(),
    };
    let nats = match &plan.nats_url {
        Some(url) => format!("NATS server {}", crate::redact::url(url)),
        None => "no NATS server".into(),
    };
    format!(
        "Target: {environment}, namespace `{}` on kube context `{}`, {nats}",
        plan.namespace, plan.kube_context
    )
}

/// Which agents a targeted plan covers, and which it leaves out.
fn targeting_line(plan: &Plan) -> Option<String> {
    plan.targeting.as_ref().map(targeted)
}

/// `Targeted (--agent devops): agents devops; left out: observer, reviewer`.
pub fn targeted(targeting: &crate::plan::selection::Targeting) -> String {
    let left_out = match &targeting.left_out[..] {
        [] => "none".to_string(),
        roles => roles.join(", "),
    };
    format!(
        "Targeted ({}): agents {}; left out: {left_out}",
        targeting.selection.flags(),
        targeting.agents.join(", "),
    )
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

/// Where the plan comes from and what is live, above everything else.
fn write_provenance(plan: &Plan, out: &mut dyn Write) -> anyhow::Result<()> {
    let lines = provenance::lines(&plan.provenance);
    for line in &lines {
        writeln!(out, "{DIM}{line}{DIM:#}")?;
    }
    if !lines.is_empty() {
        writeln!(out)?;
    }
    Ok(())
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
        line.push_str(&format!(" {}", blocked_line(plan, s.blocked)));
    }
    line
}

/// `2 changes are blocked: 1 needs --allow-destroy, 1 cannot be made as
/// planned.`: what apply refuses, and what would lift it.
fn blocked_line(plan: &Plan, blocked: usize) -> String {
    let mut by_flag: std::collections::BTreeMap<Option<&str>, usize> = Default::default();
    for change in plan.changes.iter().filter(|c| c.is_blocked()) {
        *by_flag.entry(change.unblocked_by()).or_default() += 1;
    }
    // Those a flag lifts first.
    let parts: Vec<String> = by_flag
        .iter()
        .filter(|(flag, _)| flag.is_some())
        .chain(by_flag.iter().filter(|(flag, _)| flag.is_none()))
        .map(|(flag, n)| match flag {
            Some(flag) => format!("{n} {} {flag}", if *n == 1 { "needs" } else { "need" }),
            None => format!("{n} cannot be made as planned"),
        })
        .collect();
    format!(
        "{blocked} {} blocked: {}.",
        if blocked == 1 {
            "change is"
        } else {
            "changes are"
        },
        parts.join(", ")
    )
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

/// The plan for a pull-request comment or the GitHub step summary: the
/// summary, then each change as a collapsed `<details>` with its diff,
/// grouped by agent (fleet-wide objects first). At most `max_bytes` long: when
/// the changes do not all fit, those that do not are counted, and `full_plan`
/// (e.g. "the plan-json artifact") says where the rest is. GitHub cuts a step
/// summary above 1 MiB and a comment above 65,536 characters.
pub fn plan_markdown(
    plan: &Plan,
    max_bytes: usize,
    full_plan: Option<&str>,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let environment = plan
        .environment
        .as_deref()
        .map(|e| format!(" ({e})"))
        .unwrap_or_default();
    let verb = if plan.destroy {
        "plan --destroy"
    } else {
        "plan"
    };
    let mut text = format!("### fleet {verb}: {}{environment}\n\n", plan.fleet);
    // Names and a URL, whose backticks are meant as code.
    text.push_str(&format!("- {}\n", target_line(plan)));
    if let Some(line) = targeting_line(plan) {
        text.push_str(&format!("- **{}**\n", markdown_text(&line)));
    }
    for line in provenance::lines(&plan.provenance) {
        text.push_str(&format!("- {}\n", markdown_text(&line)));
    }
    text.push('\n');
    if let Some(holder) = &plan.lock {
        text.push_str(&format!(
            "> **Deploy lock:** held by {holder}{}.\n\n",
            lock_consequence(holder)
        ));
    }
    let changes = shown_changes(plan);
    if changes.is_empty() {
        text.push_str(if plan.drift_only {
            "**No drift.** Nothing moved outside fleet since it last applied.\n"
        } else if plan.destroy {
            "**Nothing to destroy.** fleet owns nothing here.\n"
        } else {
            "**No changes.** The cluster matches the configuration.\n"
        });
    } else {
        text.push_str(&format!("**{}**\n\n", summary_line(plan)));
    }
    let notes: String = plan
        .notes
        .iter()
        .map(|note| format!("> **Note:** {note}\n\n"))
        .collect();
    let mut groups: Vec<(Option<&str>, Vec<&Change>)> = Vec::new();
    for change in changes {
        let agent = change.agent.as_deref();
        match groups.iter_mut().find(|(a, _)| *a == agent) {
            Some((_, members)) => members.push(change),
            None => groups.push((agent, vec![change])),
        }
    }
    groups.sort_by_key(|(agent, _)| *agent);

    // What is always shown must fit; changes fill what is left.
    let cut_note_room = 300;
    let mut budget = max_bytes.saturating_sub(text.len() + notes.len() + cut_note_room);
    let mut body = String::new();
    let mut left_out = 0usize;
    for (agent, members) in groups {
        let heading = match agent {
            Some(agent) => format!("#### agent `{agent}`\n\n"),
            None => "#### fleet-wide\n\n".to_string(),
        };
        let mut section = String::new();
        for change in members {
            let block = markdown_change(change);
            if heading.len() + section.len() + block.len() <= budget {
                section.push_str(&block);
            } else {
                left_out += 1;
            }
        }
        if !section.is_empty() {
            budget -= heading.len() + section.len();
            body.push_str(&heading);
            body.push_str(&section);
        }
    }
    text.push_str(&body);
    text.push_str(&notes);
    if left_out > 0 {
        text.push_str(&format!(
            "**{left_out} more change{} not shown** (this summary is limited to {max_bytes} bytes){}.\n",
            if left_out == 1 { " is" } else { "s are" },
            full_plan
                .map(|place| format!("; the full plan is in {place}"))
                .unwrap_or_default()
        ));
    }
    out.write_all(text.as_bytes())?;
    Ok(())
}

/// One change: a collapsed block whose summary line says what happens, and
/// whose body holds the reason and the diff.
fn markdown_change(change: &Change) -> String {
    let drift = change
        .drift
        .as_ref()
        .map(|d| format!(" ({})", d.describe()))
        .unwrap_or_default();
    let mut block = format!(
        "<details><summary><code>{}</code> {} {}{drift}</summary>\n\n",
        change.action.symbol(),
        change.target,
        change.action.verb()
    );
    if let Some(reason) = &change.reason {
        block.push_str(&format!("{reason}\n\n"));
    }
    if let Some(blocked) = &change.blocked {
        block.push_str(&format!("**Blocked:** {}\n\n", blocked.reason));
    }
    if let Some(diff) = &change.diff {
        // A fence longer than any run of backticks in the diff.
        let fence = "`".repeat(longest_backtick_run(diff).max(2) + 1);
        block.push_str(&format!("{fence}diff\n{diff}"));
        if !diff.ends_with('\n') {
            block.push('\n');
        }
        block.push_str(&format!("{fence}\n"));
    }
    block.push_str("</details>\n\n");
    block
}

fn longest_backtick_run(text: &str) -> usize {
    text.split(|c| c != '`').map(str::len).max().unwrap_or(0)
}

/// Text with Markdown's inline syntax escaped (a redacted URL's `***`,
/// underscores in a branch name).
fn markdown_text(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(
            c,
            '\\' | '*' | '_' | '`' | '[' | ']' | '<' | '>' | '|' | '#'
        ) {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Blocked, Target};
    use crate::render::Wave;

    fn target_plan(environment: Option<&str>, nats_url: Option<&str>) -> Plan {
        Plan {
            format_version: crate::plan::FORMAT_VERSION,
            fleet: "agent-ceo".into(),
            environment: environment.map(str::to_string),
            namespace: "agents-local".into(),
            kube_context: "fleet-local".into(),
            nats_url: nats_url.map(str::to_string),
            provenance: Default::default(),
            lock: None,
            changes: Vec::new(),
            drift_only: false,
            destroy: false,
            targeting: None,
            notes: Vec::new(),
        }
    }

    #[test]
    fn every_plan_names_its_namespace_and_nats_server_without_credentials() {
        let plan = target_plan(Some("local"), Some("nats://ci:hunter2@nats.example:4222"));
        let line = "Target: environment `local`, namespace `agents-local` on kube context `fleet-local`, NATS server nats://***@nats.example:4222";
        let mut text = Vec::new();
        plan_text(&plan, &mut text).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(text.contains(line), "{text}");
        let mut markdown = Vec::new();
        plan_markdown(&plan, 60_000, None, &mut markdown).unwrap();
        let markdown = String::from_utf8(markdown).unwrap();
        assert!(
            markdown.contains("- Target: environment `local`"),
            "{markdown}"
        );
        assert!(!markdown.contains("hunter2") && !text.contains("hunter2"));

        let base = target_plan(None, None);
        let mut text = Vec::new();
        plan_text(&base, &mut text).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(
            text.contains("Target: no environment (fleet.toml alone), namespace `agents-local` on kube context `fleet-local`, no NATS server"),
            "{text}"
        );
    }

    fn plan(changes: Vec<Change>) -> Plan {
        Plan {
            changes,
            ..target_plan(None, None)
        }
    }

    fn stream(name: &str, action: Action, blocked: Option<Blocked>) -> Change {
        let mut change = Change::new(
            Target::Stream { name: name.into() },
            action,
            Wave::JetStream,
        );
        change.blocked = blocked;
        change
    }

    #[test]
    fn blocked_changes_are_counted_said_and_shown_with_their_reason() {
        let plan = plan(vec![
            stream(
                "old",
                Action::Delete,
                Some(Blocked::unless("--allow-destroy", "messages would be lost")),
            ),
            stream(
                "new",
                Action::Create,
                Some(Blocked::refused("its subjects overlap stream x")),
            ),
            stream("theirs", Action::Unowned, None),
            stream("fine", Action::Create, None),
        ]);
        let summary = plan.summary();
        assert_eq!((summary.add, summary.destroy, summary.blocked), (2, 1, 3));
        assert_eq!(
            summary_line(&plan),
            "Plan: 2 to add, 0 to change, 1 to destroy. 3 changes are blocked: 1 needs --adopt, 1 needs --allow-destroy, 1 cannot be made as planned."
        );
        let mut text = Vec::new();
        plan_text(&plan, &mut text).unwrap();
        let text = String::from_utf8(anstream::adapter::strip_bytes(&text).into_vec()).unwrap();
        assert!(
            text.contains(
                "  # jetstream stream new will be created\n  # blocked: its subjects overlap stream x\n  + jetstream stream new\n"
            ),
            "{text}"
        );
        let mut markdown = Vec::new();
        plan_markdown(&plan, 60_000, None, &mut markdown).unwrap();
        let markdown = String::from_utf8(markdown).unwrap();
        assert!(
            markdown.contains("**Blocked:** messages would be lost")
                && markdown.contains("3 changes are blocked: "),
            "{markdown}"
        );
    }
}
