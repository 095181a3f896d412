//! plan: the centre of the program. A [`Plan`] is plain, serialisable data:
//! every change fleet would make, to which object, why, and the field-level
//! diff. Every output format and `apply` read the same Plan; nothing computes
//! a change anywhere else.

pub mod compare;
pub mod credentials;
pub mod destroy;
pub mod diff;
pub mod fit;
pub mod handover;
pub mod jetstream;
pub mod kube;
pub mod refusal;
pub mod selection;
pub mod takeover;
pub mod unchanged;
pub mod waves;
pub mod wiring;

use serde::{Deserialize, Serialize};

use crate::redact::Body;

use crate::render::{ObjectRef, Wave};

/// Version of the JSON form of a plan (`fleet plan --out`, `--format json`).
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    pub format_version: u32,
    pub fleet: String,
    pub environment: Option<String>,
    pub namespace: String,
    /// The kube context the plan was made against.
    pub kube_context: String,
    /// The NATS server the JetStream part was planned against, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nats_url: Option<String>,
    /// Where the plan comes from and what is live: the definition's commit,
    /// the live ApplySet parent's record, the cluster's identity.
    #[serde(default)]
    pub provenance: crate::provenance::Provenance,
    /// Who holds the deploy lock, when an apply does (`fleet plan` reads it;
    /// apply plans while holding it itself). See `lock`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock: Option<crate::lock::Holder>,
    pub changes: Vec<Change>,
    /// Made by `fleet plan --drift`: only changes made outside fleet.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub drift_only: bool,
    /// Made by `fleet plan --destroy` (or `fleet destroy`): the tear-down of
    /// everything fleet owns in the environment, not the definition's
    /// changes. A saved plan keeps it, so `fleet apply PLAN` destroys.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub destroy: bool,
    /// Made with `--agent`, `--exclude` or `--select`: only these agents'
    /// changes (see [`selection`]). A saved plan keeps it, so `fleet apply
    /// PLAN` applies the same agents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub targeting: Option<selection::Targeting>,
    /// Things the user should know that are not changes (a kind whose API is
    /// not installed, for example).
    pub notes: Vec<String>,
}

/// What happens to one object.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Change {
    pub target: Target,
    pub action: Action,
    pub wave: Wave,
    /// Why, when the action needs explaining: the immutable field that forces
    /// a replace, the manager that owns a conflicting field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Unified diff of the object's YAML, live -> planned (secrets masked).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
    /// The exact body apply sends (create, update, replace).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub desired: Option<Body>,
    /// Queued messages would be lost (a stream destroyed or replaced while it
    /// holds messages, a consumer destroyed with pending ones): apply refuses
    /// without `--allow-destroy`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub loses_data: bool,
    /// Apply would refuse this change as planned, and says why here, before
    /// anything is written: a flag it was not given (`--allow-destroy`,
    /// `--force-conflicts`, `--adopt`), or a refusal no flag lifts (subjects
    /// overlapping another stream, rights this identity cannot grant, a
    /// quota, a namespace being deleted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked: Option<Blocked>,
    /// The live object moved away from what fleet last applied: a hand edit
    /// (or a deletion) that this change restores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<Drift>,
    /// The agent (by role) the object, stream or consumer belongs to; `None`
    /// for what the whole fleet shares. Reports group changes by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// The change passes an agent's autoscaler between fleet and KEDA
    /// ([`handover`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handover: Option<Handover>,
    /// The public key of the agent's NATS user this change supersedes or
    /// removes, which apply revokes when it may (see [`credentials`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revokes: Option<String>,
}

/// A change's part in switching an agent's autoscaling engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Handover {
    /// An HPA KEDA made, which fleet applies its own over (forcing: KEDA's
    /// fields become fleet's).
    TakesBack,
    /// A ScaledObject deleted before the autoscalers are written, orphaning
    /// its HPA for fleet's to take back.
    Orphans,
}

impl Action {
    /// Whether apply writes the object (creates, updates, replaces or takes
    /// it over).
    pub fn writes(self) -> bool {
        matches!(
            self,
            Action::Create | Action::Update | Action::Replace | Action::Conflict | Action::Unowned
        )
    }

    /// Whether apply does anything for it: writes or deletes (not a kind
    /// that is not installed, nor what is unchanged).
    pub fn acts(self) -> bool {
        self.writes() || self == Action::Delete
    }
}

impl Change {
    /// A change with no reason, diff, body or drift yet.
    pub fn new(target: Target, action: Action, wave: Wave) -> Change {
        Change {
            target,
            action,
            wave,
            reason: None,
            diff: None,
            desired: None,
            loses_data: false,
            blocked: None,
            drift: None,
            agent: None,
            handover: None,
            revokes: None,
        }
    }

    /// Whether apply refuses this change as planned.
    pub fn is_blocked(&self) -> bool {
        self.blocked.is_some() || matches!(self.action, Action::Conflict | Action::Unowned)
    }

    /// The apply flag that would allow a blocked change, if one would (a
    /// plan saved before `blocked` was recorded still knows conflicts and
    /// unowned objects by their action).
    pub fn unblocked_by(&self) -> Option<&str> {
        match (&self.blocked, self.action) {
            (Some(blocked), _) => blocked.unless.as_deref(),
            (None, Action::Conflict) => Some("--force-conflicts"),
            (None, Action::Unowned) => Some("--adopt"),
            (None, _) => None,
        }
    }
}

/// Why apply would refuse a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Blocked {
    /// What refuses it, naming what it clashes with.
    pub reason: String,
    /// The apply flag that allows it; `None` when only a change of the
    /// definition, of the servers or of the identity's rights does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unless: Option<String>,
}

impl Blocked {
    /// Refused by a server, whatever the flags.
    pub fn refused(reason: impl Into<String>) -> Blocked {
        Blocked {
            reason: reason.into(),
            unless: None,
        }
    }

    /// Refused unless apply is given `flag`.
    pub fn unless(flag: &str, reason: impl Into<String>) -> Blocked {
        Blocked {
            reason: reason.into(),
            unless: Some(flag.to_string()),
        }
    }
}

/// How the live state moved away from what fleet applied.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drift {
    /// Imperative field managers (`kubectl-edit`, `kubectl-scale`, ...) that
    /// took fields fleet manages. Apply removes their claim on the object,
    /// then applies, so fleet's values come back and the next plan is empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub managers: Vec<String>,
    /// The definition changed the object too (or may have: it carries no
    /// record of fleet's last apply), so the diff holds fleet's new values
    /// beside the restored ones: `plan --drift` leaves the diff out.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub with_definition_change: bool,
}

impl Drift {
    /// `changed outside fleet by kubectl-patch`, for reports.
    pub fn describe(&self) -> String {
        if self.managers.is_empty() {
            "changed outside fleet".into()
        } else {
            format!("changed outside fleet by {}", self.managers.join(", "))
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "system", rename_all = "lowercase")]
pub enum Target {
    Kubernetes(ObjectRef),
    #[serde(rename = "jetstream-stream")]
    Stream {
        name: String,
    },
    #[serde(rename = "jetstream-consumer")]
    Consumer {
        stream: String,
        name: String,
    },
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Kubernetes(object) => write!(f, "{object}"),
            Target::Stream { name } => write!(f, "jetstream stream {name}"),
            Target::Consumer { stream, name } => write!(f, "jetstream consumer {stream}/{name}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    Create,
    Update,
    /// Delete and create again: an immutable field changes.
    Replace,
    /// Owned by fleet, no longer in the definition.
    Delete,
    /// Another field manager owns a field fleet wants to set; apply needs
    /// `--force-conflicts`.
    Conflict,
    /// A same-named object exists that fleet does not own; apply needs `--adopt`.
    Unowned,
    /// The kind's API is not installed in the cluster; skipped.
    NotInstalled,
    NoOp,
}

impl Action {
    /// Terraform's symbols.
    pub fn symbol(self) -> &'static str {
        match self {
            Action::Create => "+",
            Action::Update => "~",
            Action::Replace => "-/+",
            Action::Delete => "-",
            Action::Conflict | Action::Unowned => "!",
            Action::NotInstalled => "?",
            Action::NoOp => " ",
        }
    }

    pub fn verb(self) -> &'static str {
        match self {
            Action::Create => "will be created",
            Action::Update => "will be updated in place",
            Action::Replace => "must be replaced",
            Action::Delete => "will be destroyed",
            Action::Conflict => "conflicts with another field manager",
            Action::Unowned => "exists and is not managed by fleet",
            Action::NotInstalled => "cannot be planned: its API is not installed",
            Action::NoOp => "is up to date",
        }
    }
}

/// Counts for the summary line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub add: usize,
    pub change: usize,
    pub destroy: usize,
    /// Changes apply refuses as planned ([`Change::is_blocked`]): without a
    /// flag (conflicts, unowned objects, lost messages), or at all. They
    /// count in add, change or destroy too, but conflicts and unowned
    /// objects, which count only here.
    pub blocked: usize,
}

/// Says which agent each change belongs to: `agents` maps a target to the
/// role of its agent (from the rendered objects' role label, the live ones'
/// for what is destroyed, and the agents' consumers).
pub fn attribute_agents(
    changes: &mut [Change],
    agents: &std::collections::BTreeMap<Target, String>,
) {
    for change in changes {
        // Some changes know their agent already (a credentials Secret's).
        if let Some(role) = agents.get(&change.target) {
            change.agent = Some(role.clone());
        }
    }
}

impl Plan {
    pub fn summary(&self) -> Summary {
        let mut summary = Summary::default();
        for change in &self.changes {
            match change.action {
                Action::Create => summary.add += 1,
                Action::Update => summary.change += 1,
                Action::Delete => summary.destroy += 1,
                Action::Replace => {
                    summary.add += 1;
                    summary.destroy += 1;
                }
                Action::Conflict | Action::Unowned | Action::NotInstalled | Action::NoOp => {}
            }
            if change.is_blocked() {
                summary.blocked += 1;
            }
        }
        summary
    }

    pub fn has_changes(&self) -> bool {
        let s = self.summary();
        s.add + s.change + s.destroy + s.blocked > 0
    }

    /// Only what moved in the cluster and in JetStream since the last apply
    /// (`fleet plan --drift`): changes of the definition are left out, and
    /// said to be left out in a note.
    pub fn drift_only(mut self) -> Plan {
        let before = self.changes.len();
        self.changes.retain(|c| match c.action {
            Action::NoOp | Action::NotInstalled => true,
            _ => c.drift.is_some(),
        });
        let definition_changes = before - self.changes.len();
        if definition_changes > 0 {
            self.notes.push(format!(
                "{definition_changes} change{} of the definition since the last apply {} not shown (--drift shows only what moved outside fleet); `fleet plan` shows {}",
                if definition_changes == 1 { "" } else { "s" },
                if definition_changes == 1 { "is" } else { "are" },
                if definition_changes == 1 { "it" } else { "them" },
            ));
        }
        // Drift on an object whose definition changed too: the diff cannot
        // be told apart, so it is not shown as drift.
        for change in &mut self.changes {
            if change
                .drift
                .as_ref()
                .is_some_and(|d| d.with_definition_change)
            {
                change.diff = None;
                change.reason = Some(
                    "the definition changed this object too; its diff, which holds both, is left out (`fleet plan` shows it)".into(),
                );
            }
        }
        self.drift_only = true;
        self
    }
}
