//! `fleet import`: a live namespace -> fleet.toml (see [`crate::import`]).

use std::io::Write as _;

use super::ExitStatus;
use crate::cli::ImportArgs;
use crate::client::jetstream::JetStream;
use crate::client::kube::Cluster;
use crate::import::{self, Request};
use crate::model;

pub(super) async fn run(args: &ImportArgs) -> anyhow::Result<ExitStatus> {
    let out = match (&args.out, &args.env) {
        (Some(out), _) => out.clone(),
        (None, Some(env)) => crate::load::environment_path(&args.file, env),
        (None, None) => std::path::PathBuf::from("fleet.toml"),
    };
    let to_stdout = out.as_os_str() == "-";
    if !to_stdout && out.exists() {
        anyhow::bail!(
            "not importing: {} exists, and import overwrites nothing (nothing was written). Give another --out, or `--out -` to print it",
            out.display()
        );
    }
    let base = match &args.env {
        Some(env) => Some(import::write::Base {
            fleet_path: args.file.clone(),
            fleet_text: std::fs::read_to_string(&args.file).map_err(|err| {
                anyhow::anyhow!(
                    "--env {env} imports an environment of an existing fleet.toml, and {} cannot be read: {err}. Import the fleet itself first (without --env)",
                    args.file.display()
                )
            })?,
            environment: env.clone(),
        }),
        None => None,
    };
    let target = model::Endpoints {
        kube_context: args.context.clone(),
        nats_url: None,
    };
    let cluster = Cluster::connect(&target).await?;
    let name = args.name.clone().unwrap_or_else(|| args.namespace.clone());
    let live_jetstream = match &args.nats.nats_url {
        Some(url) => {
            let nats = super::plan::nats(&args.nats);
            let connection = crate::deploy::nats_connection(&nats, url)?;
            let js = JetStream::connect(&connection).await?;
            Some(crate::live::jetstream::read_all(&js).await?)
        }
        None => None,
    };
    let request = Request {
        base,
        kube_context: args.context.clone(),
        nats_url: args.nats.nats_url.clone(),
        namespace: &args.namespace,
        jetstream: live_jetstream.as_ref(),
        name: &name,
        source: format!(
            "namespace {} on kube context `{}`",
            args.namespace, cluster.context
        ),
    };
    let imported = import::import(&cluster, &request).await?;
    if to_stdout {
        std::io::stdout()
            .lock()
            .write_all(imported.text.as_bytes())?;
    } else {
        if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|err| anyhow::anyhow!("making {}: {err}", parent.display()))?;
        }
        std::fs::write(&out, &imported.text)
            .map_err(|err| anyhow::anyhow!("writing {}: {err}", out.display()))?;
        eprintln!(
            "wrote {} ({} agents: {})",
            out.display(),
            imported.agents.len(),
            imported.agents.join(", ")
        );
    }
    if !imported.unplaced.is_empty() {
        eprintln!("Not imported (no agent of the definition renders them):");
        for line in &imported.unplaced {
            eprintln!("  {line}");
        }
    }
    if !imported.unexpressed.is_empty() {
        eprintln!(
            "Differences no key or patch can say (`fleet plan --adopt` will show them changing):"
        );
        for line in &imported.unexpressed {
            eprintln!("  {line}");
        }
    }
    eprintln!(
        "Next: `fleet plan --adopt` shows what fleet would change; only its ownership marks, where the import was exact."
    );
    Ok(ExitStatus::Success)
}
