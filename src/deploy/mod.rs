//! deploy: the sequence `plan` and `apply` share. Load and render the
//! definition, connect to NATS and the cluster, take the deploy lock (apply),
//! read live state, plan both systems and record provenance; then, for apply,
//! check the saved plan and the commit, confirm, apply with events under the
//! lock and report what was done.
//!
//! Takes plain options, never the command line's types: the verbs under
//! `commands/` translate their flags into these and map the outcome to an
//! exit status. The terminal prompt is theirs, passed in as a closure.

mod apply;
mod plan;
pub(crate) mod workflow;

use std::path::PathBuf;
use std::time::Duration;

pub(crate) use apply::{Applied, apply, read_saved_plan, saved_plan_environment};
pub(crate) use plan::nats_connection;
pub(crate) use plan::plan;

use crate::client::jetstream;
use crate::interrupt::Interrupt;
use crate::lock;
use crate::redact::Sensitive;

/// The definition to deploy, as the command line names it: the file, the
/// environment loaded over it, and a kube context to use instead of the
/// environment's. (Not [`crate::model::Endpoints`], the environment's cluster
/// and NATS server once loaded, nor [`crate::plan::Target`], what a change
/// acts on.)
#[derive(Debug, Clone)]
pub(crate) struct Definition {
    /// The fleet definition (fleet.toml).
    pub file: PathBuf,
    /// Environment to load from `environments/<ENV>.toml`.
    pub env: Option<String>,
    /// Kube context to use instead of the environment's.
    pub context: Option<String>,
}

impl Definition {
    /// Loads and validates it, the kube context given taking the place of
    /// the environment's; `None` when it has errors (they are printed).
    pub(crate) fn load(&self) -> anyhow::Result<Option<crate::model::Fleet>> {
        let Some(mut fleet) = crate::definition::load_reported(&self.file, self.env.as_deref())?
        else {
            return Ok(None);
        };
        if let Some(context) = &self.context {
            fleet.endpoints.kube_context = Some(context.clone());
        }
        Ok(Some(fleet))
    }
}

/// How fleet reaches the NATS server (not the URL agents are given).
#[derive(Debug, Default, Clone)]
pub(crate) struct Nats {
    /// Overrides the environment's `nats_url`.
    pub url: Option<String>,
    /// Credentials, TLS and which JetStream, whichever URL is used.
    pub options: jetstream::Options,
    /// Seed of the account signing key apply mints agents' users with.
    pub account_signing_key: Option<Sensitive>,
    /// Seed of the operator signing key and the system account's creds,
    /// with which apply revokes agents' users.
    pub operator_signing_key: Option<Sensitive>,
    pub system_creds: Option<PathBuf>,
}

/// How to plan (and, with apply, how to write).
#[derive(Debug, Clone)]
pub(crate) struct PlanOptions {
    /// Requests to the API server in flight at once.
    pub concurrency: usize,
    /// Take over fields that another field manager owns.
    pub force_conflicts: bool,
    /// Take over same-named objects, streams and consumers fleet does not own.
    pub adopt: bool,
    /// Allow changes that lose queued messages: they are not blocked.
    pub allow_destroy: bool,
    /// Dry-run every object, also those proven unchanged.
    pub dry_run_all: bool,
    /// Plan the tear-down of everything fleet owns in the environment
    /// instead of the definition's changes.
    pub destroy: bool,
    /// Which agents to plan (`--agent`, `--exclude`, `--select`).
    pub selection: crate::plan::selection::Selection,
    pub nats: Nats,
}

/// How to carry a plan out.
#[derive(Debug, Clone)]
pub(crate) struct ApplyOptions {
    /// A plan saved by `fleet plan --out`, applied only while still the plan.
    pub plan_file: Option<PathBuf>,
    /// Apply although the definition has uncommitted changes.
    pub allow_dirty: bool,
    /// How long to wait for rollouts; zero does not wait.
    pub rollout_timeout: Duration,
    /// How apply takes the deploy lock.
    pub lock: lock::Options,
    /// Asks apply to stop where it stands (SIGINT, SIGTERM).
    pub interrupt: Interrupt,
    /// How long a destroy waits for the namespace it deleted to be gone;
    /// `None` does not wait (`--no-wait`).
    pub namespace_deadline: Option<std::time::Instant>,
}
