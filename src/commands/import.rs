//! `fleet import`: a live namespace -> fleet.toml (see [`crate::import`]).

use std::io::Write as _;

use super::ExitStatus;
use crate::cli::ImportArgs;
use crate::import::{self, Request};
use crate::live::jetstream::JetStream;
use crate::live::kube::Cluster;
use crate::model;

pub async fn run(args: &ImportArgs) -> anyhow::Result<ExitStatus> {
    let to_stdout = args.out.as_os_str() == "-";
    if !to_stdout && args.out.exists() {
        anyhow::bail!(
            "not importing: {} exists, and import overwrites nothing (nothing was written). Give another --out, or `--out -` to print it",
            args.out.display()
        );
    }
    let target = model::Target {
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
        std::fs::write(&args.out, &imported.text)
            .map_err(|err| anyhow::anyhow!("writing {}: {err}", args.out.display()))?;
        eprintln!(
            "wrote {} ({} agents: {})",
            args.out.display(),
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
