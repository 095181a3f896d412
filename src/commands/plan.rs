//! `fleet plan`: load, render, read live state, plan, report.

use anyhow::Context as _;

use super::ExitStatus;
use crate::cli::{ClusterArgs, NatsArgs, PlanArgs, PlanFormat, TargetingArgs};
use crate::client::jetstream::Options as JetStreamOptions;
use crate::plan::selection::Selection;
use crate::{deploy, report};

/// The definition to deploy, from the flags plan and apply share; the
/// environment must be named when there are some.
pub(super) fn definition(args: &ClusterArgs) -> anyhow::Result<deploy::Definition> {
    Ok(deploy::Definition {
        file: args.definition.file.clone(),
        env: crate::load::cluster_environment(
            &args.definition.file,
            args.definition.env.as_deref(),
        )?,
        context: args.context.clone(),
    })
}

/// How to plan, from the flags plan and apply share.
pub(super) fn plan_options(args: &ClusterArgs) -> deploy::PlanOptions {
    deploy::PlanOptions {
        concurrency: usize::from(args.concurrency),
        force_conflicts: args.force_conflicts,
        adopt: args.adopt,
        allow_destroy: args.allow_destroy,
        dry_run_all: args.dry_run_all,
        destroy: false,
        selection: selection(&args.targeting),
        nats: nats(&args.nats),
    }
}

pub(super) fn selection(args: &TargetingArgs) -> Selection {
    Selection {
        agents: args.agents.clone(),
        exclude: args.exclude.clone(),
        select: args.select.clone(),
    }
}

/// A tear-down is of everything fleet owns: remove agents from the
/// definition (or `enabled = false`) to remove only some.
pub(super) fn refuse_targeted_destroy(options: &deploy::PlanOptions) -> anyhow::Result<()> {
    if options.destroy && !options.selection.is_everything() {
        anyhow::bail!(
            "a destroy is of the whole fleet and cannot be targeted ({}); to remove some agents, remove them from the definition (or set `enabled = false`) and apply, with --agent ROLE to apply only that; nothing was changed",
            options.selection.flags()
        );
    }
    Ok(())
}

pub(super) fn nats(args: &NatsArgs) -> deploy::Nats {
    deploy::Nats {
        url: args.nats_url.clone(),
        options: JetStreamOptions {
            creds_file: args.nats_creds.clone(),
            nkey_file: args.nats_nkey.clone(),
            token: args.nats_token.clone(),
            user: args.nats_user.clone(),
            password: args.nats_password.clone(),
            tls_ca: args.nats_tls_ca.clone(),
            tls_cert: args.nats_tls_cert.clone(),
            tls_key: args.nats_tls_key.clone(),
            domain: args.nats_domain.clone(),
            api_prefix: args.nats_api_prefix.clone(),
        },
        account_signing_key: args.nats_account_signing_key.clone(),
        operator_signing_key: args.nats_operator_signing_key.clone(),
        system_creds: args.nats_system_creds.clone(),
    }
}

pub(super) async fn run(args: &PlanArgs) -> anyhow::Result<ExitStatus> {
    let options = deploy::PlanOptions {
        destroy: args.destroy,
        ..plan_options(&args.cluster)
    };
    refuse_targeted_destroy(&options)?;
    let Some(mut planned) = deploy::plan(&definition(&args.cluster)?, &options).await? else {
        return Ok(ExitStatus::Failure);
    };
    if args.drift {
        planned.plan = planned.plan.drift_only();
    }
    if let Some(path) = &args.out {
        // The plan file is not part of the definition.
        planned.plan.provenance.leave_out(path);
    }
    let plan = &planned.plan;
    if let Some(path) = &args.out {
        let file = std::fs::File::create(path)
            .with_context(|| format!("writing the plan to {}", path.display()))?;
        report::plan_json(plan, &mut std::io::BufWriter::new(file))?;
    }
    let place = args.out.as_ref().map(|p| p.display().to_string());
    print(plan, args.format, args.max_bytes, place.as_deref())?;
    deploy::workflow::report(
        plan,
        &args.cluster.definition.file,
        args.out.as_deref(),
        "",
        "",
    )?;
    let status = if (args.detailed_exitcode || args.drift) && plan.has_changes() {
        ExitStatus::Changes
    } else {
        ExitStatus::Success
    };
    // The process exits next, and the OS takes back its memory at once:
    // freeing a large fleet's objects one by one would only cost CPU.
    std::mem::forget(planned);
    Ok(status)
}

/// Prints `plan` on stdout in `format`; `full_plan` says where the whole
/// plan is when the Markdown has to leave changes out.
pub(super) fn print(
    plan: &crate::plan::Plan,
    format: PlanFormat,
    max_bytes: usize,
    full_plan: Option<&str>,
) -> anyhow::Result<()> {
    let mut stdout = Vec::new();
    match format {
        PlanFormat::Text => report::plan_text(plan, &mut stdout)?,
        PlanFormat::Json => report::plan_json(plan, &mut stdout)?,
        PlanFormat::Markdown => report::plan_markdown(plan, max_bytes, full_plan, &mut stdout)?,
    }
    report::to_stdout(&stdout)?;
    Ok(())
}
