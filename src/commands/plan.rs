//! `fleet plan`: load, render, read live state, plan, report.

use std::io::Write;

use anyhow::Context as _;

use super::{ExitStatus, load_definition};
use crate::cli::{ClusterArgs, PlanArgs, PlanFormat};
use crate::live::kube::{Cluster, LiveState};
use crate::plan::{self, FORMAT_VERSION, Plan};
use crate::{ownership, render, report};

/// A plan with what it was made from, for `apply` to carry out.
pub struct Planned {
    pub plan: Plan,
    pub cluster: Cluster,
    pub live: LiveState,
}

/// The pipeline up to the plan. `None` when the definition has errors (they
/// are printed).
pub async fn make_plan(args: &ClusterArgs) -> anyhow::Result<Option<Planned>> {
    let Some(mut fleet) = load_definition(&args.definition)? else {
        return Ok(None);
    };
    if let Some(context) = &args.context {
        fleet.target.kube_context = Some(context.clone());
    }
    let rendered = render::render(&fleet);
    let cluster = Cluster::connect(&fleet.target).await?;
    let applyset_id = ownership::applyset_id(
        &ownership::applyset_parent_name(&fleet.name),
        &fleet.namespace,
    );
    let concurrency = usize::from(args.concurrency);
    let live = crate::live::kube::read(
        &cluster,
        &rendered.kubernetes,
        &fleet.namespace,
        &applyset_id,
        concurrency,
    )
    .await?;
    let options = plan::kube::Options {
        concurrency,
        force_conflicts: args.force_conflicts,
        adopt: args.adopt,
    };
    let mut changes = plan::kube::plan(&cluster, &rendered.kubernetes, &live, &options).await?;
    changes.sort_by(|a, b| (a.wave, &a.target).cmp(&(b.wave, &b.target)));
    let notes = live
        .missing_kinds
        .iter()
        .filter(|(_, kind)| rendered.kubernetes.iter().any(|o| &o.id.kind == kind))
        .map(|(api_version, kind)| {
            format!(
                "{kind} ({api_version}) is not installed in the cluster: its objects are skipped"
            )
        })
        .collect();
    let plan = Plan {
        format_version: FORMAT_VERSION,
        fleet: fleet.name.clone(),
        environment: fleet.environment.clone(),
        namespace: fleet.namespace.clone(),
        kube_context: cluster.context.clone(),
        changes,
        notes,
    };
    Ok(Some(Planned {
        plan,
        cluster,
        live,
    }))
}

pub async fn run(args: &PlanArgs) -> anyhow::Result<ExitStatus> {
    let Some(planned) = make_plan(&args.cluster).await? else {
        return Ok(ExitStatus::Failure);
    };
    let plan = &planned.plan;
    if let Some(path) = &args.out {
        let file = std::fs::File::create(path)
            .with_context(|| format!("writing the plan to {}", path.display()))?;
        report::plan_json(plan, &mut std::io::BufWriter::new(file))?;
    }
    let mut stdout = anstream::stdout().lock();
    match args.format {
        PlanFormat::Text => report::plan_text(plan, &mut stdout)?,
        PlanFormat::Json => report::plan_json(plan, &mut stdout)?,
        PlanFormat::Markdown => report::plan_markdown(plan, &mut stdout)?,
    }
    stdout.flush()?;
    Ok(if args.detailed_exitcode && plan.has_changes() {
        ExitStatus::Changes
    } else {
        ExitStatus::Success
    })
}
