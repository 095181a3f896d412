//! Command-line interface: flags only. Each verb's flags become an options
//! struct that its module under `commands/` carries out.

use crate::env_vars::EnvVars;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::redact::Sensitive;

/// Requests to the API server in flight at once, by default. A large apply
/// is bound by the API server's CPU, yet more requests in flight still make
/// it faster (etcd commits more writes per sync); against a remote cluster,
/// where each request waits a round trip, it matters more. The API server
/// queues what exceeds a client's share (priority and fairness) rather than
/// failing it, and a 429 is retried. BENCHMARKS.md has the measurements.
pub const DEFAULT_CONCURRENCY: u16 = 32;
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
    Plan(PlanArgs),
    /// Carry out the plan.
    Apply(ApplyArgs),
    /// Show the live fleet per agent: replicas, autoscaler metrics against
    /// their targets, pending tasks per consumer, and what fleet last
    /// applied. Reads only.
    Status(StatusArgs),
    /// Destroy everything fleet owns in the environment (`fleet plan --destroy` shows what).
    ///
    /// Every agent's objects (found by fleet's ownership labels), the
    /// fleet's streams and consumers on NATS (a stream holding messages
    /// needs --allow-destroy), the ApplySet parent, the deploy lock's Lease
    /// and, when fleet made it and it holds nothing fleet does not own, the
    /// namespace, whose deletion it follows until it is gone (or --timeout).
    /// Plans it, prints the plan, asks as apply does (without a terminal it
    /// needs --auto-approve), takes the deploy lock and deletes. Given a
    /// plan saved by `fleet plan --destroy --out`, it carries that out.
    Destroy(ApplyArgs),
    /// Print a plan saved by `fleet plan --out` (no cluster needed).
    Show(ShowArgs),
    /// Print the least-privilege RBAC (Role, RoleBinding and, where needed,
    /// ClusterRole) an identity needs to plan or apply this fleet, as YAML for
    /// `kubectl apply -f -`.
    Rbac(RbacArgs),
    /// Remove the deploy lock by hand, when the apply that holds it is gone.
    Unlock(UnlockArgs),
    /// Print the JSON Schema of fleet.toml and environment files (for editors).
    Schema,
    /// Print the shell completion script for SHELL.
    ///
    /// bash: `fleet completions bash > ~/.local/share/bash-completion/completions/fleet`;
    /// zsh: into a directory on `$fpath` as `_fleet`; fish:
    /// `~/.config/fish/completions/fleet.fish`; PowerShell: dot-source it
    /// from `$PROFILE`.
    Completions(CompletionsArgs),
    /// Write the man pages (fleet(1) and one per command) into a directory.
    Man(ManArgs),
    /// Start a fleet in a directory: fleet.toml with two agents and their
    /// stream, environments/local.toml and production.toml, and the GitHub
    /// workflows that plan pull requests and apply main. Overwrites nothing.
    Init(InitArgs),
    /// Write a fleet.toml that renders what a live namespace holds: its
    /// agents (a Deployment `agent-<role>` and the objects named after it),
    /// by keys where fleet has them and by patch where not. Reads only;
    /// never reads a Secret. Check it with `fleet plan --adopt`.
    Import(ImportArgs),
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The namespace to import.
    #[arg(long)]
    pub namespace: String,
    /// The fleet's name, which its ownership marks carry (default: the
    /// namespace's).
    #[arg(long)]
    pub name: Option<String>,
    /// Kube context (default: the current one).
    #[arg(long, env = EnvVars::FLEET_KUBE_CONTEXT)]
    pub context: Option<String>,
    /// Where to write the definition (default: fleet.toml, or
    /// environments/<ENV>.toml with --env); `-` prints it. Never overwrites.
    #[arg(long, short = 'o')]
    pub out: Option<PathBuf>,
    /// Write the file of this environment, over the existing --file: only
    /// what the namespace has that fleet.toml does not say.
    #[arg(long)]
    pub env: Option<String>,
    /// The fleet.toml an environment (--env) is imported for.
    #[arg(long, short = 'f', default_value = "fleet.toml")]
    pub file: PathBuf,
    /// With a NATS server (--nats-url), the agents' consumers and the
    /// streams they read are imported too.
    #[command(flatten)]
    pub nats: NatsArgs,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The directory to start the fleet in (made if missing).
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// The fleet's name (default: the directory's, as a DNS label).
    #[arg(long)]
    pub name: Option<String>,
    /// The namespace it deploys to (default: its name).
    #[arg(long)]
    pub namespace: Option<String>,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete in.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// The directory to write `fleet.1` and `fleet-<command>.1` into
    /// (made if missing), e.g. /usr/local/share/man/man1.
    #[arg(long, default_value = "man")]
    pub out: PathBuf,
}

/// Where the definition lives and which environment to load.
#[derive(Debug, Args)]
pub struct DefinitionArgs {
    /// Environment to load from `environments/<ENV>.toml`.
    #[arg(long, short, env = EnvVars::FLEET_ENV)]
    pub env: Option<String>,
    /// The fleet definition.
    #[arg(long, short = 'f', default_value = "fleet.toml", env = EnvVars::FLEET_FILE)]
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

/// What plan and apply share: how to reach the cluster and how to plan.
#[derive(Debug, Args)]
pub struct ClusterArgs {
    #[command(flatten)]
    pub definition: DefinitionArgs,
    /// Kube context to use instead of the environment's.
    #[arg(long, env = EnvVars::FLEET_KUBE_CONTEXT)]
    pub context: Option<String>,
    /// Requests to the API server in flight at once.
    #[arg(long, default_value_t = DEFAULT_CONCURRENCY, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: u16,
    /// Take over fields that another field manager owns.
    #[arg(long)]
    pub force_conflicts: bool,
    /// Take over same-named objects, streams and consumers that fleet does not own.
    #[arg(long)]
    pub adopt: bool,
    /// Allow changes that lose queued messages (destroying or replacing a
    /// stream that holds messages, a consumer with pending ones); without
    /// it, plan shows them blocked and apply refuses them.
    #[arg(long)]
    pub allow_destroy: bool,
    /// Dry-run every object, also those the live object proves unchanged
    /// (fleet's last apply, still wholly in place). Slower; the plan is the same.
    #[arg(long)]
    pub dry_run_all: bool,
    /// Give up after this long: the whole run, from reading live state to
    /// the last rollout (e.g. 90s, 5m). Each request also has its own deadline.
    #[arg(long, default_value = "5m", value_parser = parse_timeout)]
    pub timeout: std::time::Duration,
    #[command(flatten)]
    pub targeting: TargetingArgs,
    #[command(flatten)]
    pub nats: NatsArgs,
}

/// Which agents to plan, apply or show; by default the whole fleet.
#[derive(Debug, Default, Args)]
#[command(next_help_heading = "Targeting")]
pub struct TargetingArgs {
    /// Only this agent, by role (repeatable); a removed agent's role
    /// prunes what it left.
    #[arg(long = "agent", value_name = "ROLE")]
    pub agents: Vec<String>,
    /// Every agent but this one (repeatable).
    #[arg(long, value_name = "ROLE")]
    pub exclude: Vec<String>,
    /// Only agents with this label (repeatable, all must match): role,
    /// tier, the agent's `labels`, or a node label its placement requires
    /// (e.g. tier=operations, agent.ceo/workload-type=cognitive).
    #[arg(long, value_name = "KEY=VALUE", value_parser = crate::plan::selection::parse_select)]
    pub select: Vec<String>,
}

/// Help headings of the flags that follow a flattened group with its own
/// heading (clap keeps the last heading for the flags after it).
const OUTPUT: &str = "Output";
const SAFETY: &str = "Safety";
const LOCK: &str = "Deploy lock";

/// How fleet reaches the NATS server (not the URL agents are given).
#[derive(Debug, Default, Args)]
#[command(next_help_heading = "NATS connection")]
pub struct NatsArgs {
    /// NATS URL; overrides the environment's `nats_url`.
    #[arg(long, env = EnvVars::FLEET_NATS_URL)]
    pub nats_url: Option<String>,
    /// Credentials file (JWT and NKey seed), as `nats --creds`.
    #[arg(long, env = EnvVars::FLEET_NATS_CREDS)]
    pub nats_creds: Option<PathBuf>,
    /// File holding an NKey seed.
    #[arg(long, env = EnvVars::FLEET_NATS_NKEY)]
    pub nats_nkey: Option<PathBuf>,
    /// Authentication token.
    #[arg(long, env = EnvVars::FLEET_NATS_TOKEN, hide_env_values = true)]
    pub nats_token: Option<Sensitive>,
    /// User name (with --nats-password).
    #[arg(long, env = EnvVars::FLEET_NATS_USER)]
    pub nats_user: Option<String>,
    /// Password (with --nats-user).
    #[arg(long, env = EnvVars::FLEET_NATS_PASSWORD, hide_env_values = true)]
    pub nats_password: Option<Sensitive>,
    /// CA certificate to verify the server with.
    #[arg(long, env = EnvVars::FLEET_NATS_TLS_CA)]
    pub nats_tls_ca: Option<PathBuf>,
    /// Client certificate (with --nats-tls-key).
    #[arg(long, env = EnvVars::FLEET_NATS_TLS_CERT)]
    pub nats_tls_cert: Option<PathBuf>,
    /// Private key of the client certificate (with --nats-tls-cert).
    #[arg(long, env = EnvVars::FLEET_NATS_TLS_KEY)]
    pub nats_tls_key: Option<PathBuf>,
    /// JetStream domain.
    #[arg(long, env = EnvVars::FLEET_NATS_DOMAIN, conflicts_with = "nats_api_prefix")]
    pub nats_domain: Option<String>,
    /// JetStream API prefix (instead of a domain).
    #[arg(long, env = EnvVars::FLEET_NATS_API_PREFIX)]
    pub nats_api_prefix: Option<String>,
    /// Seed of the NATS account signing key (SA...) that apply mints the
    /// agents' users with, when the definition has [nats_credentials]. A CI
    /// secret: give it in the environment, never printed.
    #[arg(long, env = EnvVars::FLEET_NATS_ACCOUNT_SIGNING_KEY, hide_env_values = true)]
    pub nats_account_signing_key: Option<Sensitive>,
    /// Seed of the operator's signing key (SO...) that apply re-signs the
    /// account JWT with to revoke agents' users ([nats_credentials] revoke
    /// = true). A CI secret: give it in the environment, never printed.
    #[arg(long, env = EnvVars::FLEET_NATS_OPERATOR_SIGNING_KEY, hide_env_values = true)]
    pub nats_operator_signing_key: Option<Sensitive>,
    /// Creds of a system account user, to read and update the account JWT
    /// when revoking.
    #[arg(long, env = EnvVars::FLEET_NATS_SYSTEM_CREDS)]
    pub nats_system_creds: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Output format.
    #[arg(help_heading = OUTPUT, long, value_enum, default_value_t = PlanFormat::Text)]
    pub format: PlanFormat,
    /// Also write the plan as JSON to this file.
    #[arg(help_heading = OUTPUT, long)]
    pub out: Option<PathBuf>,
    /// Keep `--format markdown` under this many bytes (a pull-request
    /// comment holds 65,536 characters): changes that do not fit are counted
    /// and the full plan is pointed at (`--out`).
    #[arg(help_heading = OUTPUT, long, default_value_t = 60_000)]
    pub max_bytes: usize,
    /// Exit 2 when the plan has changes (0: none, 1: error).
    #[arg(help_heading = OUTPUT, long)]
    pub detailed_exitcode: bool,
    /// Plan only what moved in the cluster and in JetStream since the last
    /// apply (hand edits, deletions), leaving out changes of the definition.
    /// Exits 2 when drift is found.
    #[arg(help_heading = OUTPUT, long)]
    pub drift: bool,
    /// Plan the tear-down of everything fleet owns in the environment (what
    /// `fleet destroy` deletes) instead of the definition's changes.
    #[arg(help_heading = OUTPUT, long, conflicts_with = "drift")]
    pub destroy: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Output format.
    #[arg(help_heading = OUTPUT, long, value_enum, default_value_t = PlanFormat::Text)]
    pub format: PlanFormat,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// A plan saved by `fleet plan --out`.
    pub plan_file: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
    pub format: PlanFormat,
    /// Keep `--format markdown` under this many bytes, as `fleet plan`.
    #[arg(long, default_value_t = 60_000)]
    pub max_bytes: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlanFormat {
    Text,
    Json,
    Markdown,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// A plan saved by `fleet plan --out`: apply refuses unless the cluster,
    /// the NATS server and the definition still give exactly that plan.
    pub plan_file: Option<PathBuf>,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Apply without asking for confirmation (required without a terminal).
    #[arg(help_heading = SAFETY, long)]
    pub auto_approve: bool,
    /// Do not wait for rollouts.
    #[arg(help_heading = SAFETY, long)]
    pub no_wait: bool,
    /// Apply although files under the definition's directory have
    /// uncommitted changes (the commit recorded then says so).
    #[arg(help_heading = SAFETY, long)]
    pub allow_dirty: bool,
    /// Wait up to this long for the deploy lock when another apply holds it
    /// (e.g. 10m); by default fail at once, naming the holder.
    #[arg(help_heading = LOCK, long, default_value = "0s", value_parser = parse_timeout)]
    pub lock_timeout: std::time::Duration,
    /// How long the deploy lock outlives this apply if it dies without
    /// releasing it (killed, its machine lost); renewed every third of it.
    #[arg(help_heading = LOCK, long, default_value = "30s", value_parser = parse_lock_ttl)]
    pub lock_ttl: std::time::Duration,
}

#[derive(Debug, Args)]
pub struct UnlockArgs {
    #[command(flatten)]
    pub definition: DefinitionArgs,
    /// Kube context to use instead of the environment's.
    #[arg(long, env = EnvVars::FLEET_KUBE_CONTEXT)]
    pub context: Option<String>,
    /// Remove the lock without asking (required without a terminal).
    #[arg(long)]
    pub yes: bool,
}

/// A Lease's duration is whole seconds; below 3 the renewals (every third)
/// would outrun the requests.
fn parse_lock_ttl(text: &str) -> Result<std::time::Duration, String> {
    let ttl = parse_timeout(text)?;
    if ttl.subsec_nanos() != 0 || ttl.as_secs() < 3 || ttl.as_secs() > i32::MAX as u64 {
        return Err(format!(
            "`{text}` is not a lock TTL: whole seconds, at least 3s"
        ));
    }
    Ok(ttl)
}

#[derive(Debug, Args)]
pub struct RbacArgs {
    #[command(flatten)]
    pub definition: DefinitionArgs,
    /// What the identity runs: `plan` (with server-side dry runs), `apply`
    /// (plan, apply and rollout waits), or `read-only` (plan without dry
    /// runs, at lower fidelity; no write verb at all).
    #[arg(long = "for", value_enum)]
    pub purpose: RbacPurpose,
    /// Print the NATS permissions of the user that runs fleet (for its
    /// user JWT, or `nsc edit user`) instead of Kubernetes RBAC.
    #[arg(long)]
    pub nats: bool,
    #[command(flatten)]
    pub grantee: GranteeArgs,
}

/// Who the bindings grant the rights to: exactly one (none with --nats).
#[derive(Debug, Args)]
#[group(required = false, multiple = false)]
pub struct GranteeArgs {
    /// A user (for x509 client certificates, the certificate's CN).
    #[arg(long)]
    pub user: Option<String>,
    /// A group (for x509 client certificates, an O of the certificate).
    #[arg(long)]
    pub group: Option<String>,
    /// A service account, as NAMESPACE/NAME.
    #[arg(long, value_name = "NAMESPACE/NAME")]
    pub service_account: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RbacPurpose {
    Plan,
    Apply,
    ReadOnly,
}

fn parse_timeout(text: &str) -> Result<std::time::Duration, String> {
    crate::load::read::parse_duration(text)
        .map_err(|_| format!("`{text}` is not a duration (e.g. 90s, 5m)"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn every_flag_has_help_and_only_nats_flags_are_under_nats_connection() {
        let cli = Cli::command();
        for verb in ["plan", "apply", "destroy"] {
            let command = cli.find_subcommand(verb).unwrap();
            for arg in command.get_arguments() {
                let name = arg.get_id().as_str();
                if name == "help" {
                    continue;
                }
                assert!(arg.get_help().is_some(), "{verb} --{name} has no help");
                let under_nats = arg.get_help_heading() == Some("NATS connection");
                assert_eq!(
                    under_nats,
                    name.starts_with("nats_"),
                    "{verb} --{name} is under {:?}",
                    arg.get_help_heading()
                );
            }
        }
    }
}
