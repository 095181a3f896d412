//! Command-line interface: flags only. Each verb's flags become an options
//! struct that its module under `commands/` carries out.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "fleet",
    version,
    about = "Deploy fleets of AI agents to Kubernetes and NATS JetStream, safely",
    long_about = None,
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the fleet definition and print every problem found.
    Validate(DefinitionArgs),
    /// Print the desired Kubernetes objects and JetStream configuration (no cluster needed).
    Render(RenderArgs),
    /// Show what `apply` would change in the cluster and on the NATS server.
    Plan(DefinitionArgs),
    /// Carry out the plan.
    Apply(DefinitionArgs),
}

/// Where the definition lives and which environment to load.
#[derive(Debug, Args)]
pub struct DefinitionArgs {
    /// Environment to load from `environments/<ENV>.toml`.
    #[arg(long, short, env = "FLEET_ENV")]
    pub env: Option<String>,
    /// The fleet definition.
    #[arg(long, short = 'f', default_value = "fleet.toml", env = "FLEET_FILE")]
    pub file: PathBuf,
}

#[derive(Debug, Args)]
pub struct RenderArgs {
    #[command(flatten)]
    pub definition: DefinitionArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = RenderFormat::Yaml)]
    pub format: RenderFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RenderFormat {
    Yaml,
    Json,
}
