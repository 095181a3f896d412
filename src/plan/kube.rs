//! Planning the Kubernetes side: each desired object is dry-run applied with
//! fleet's field manager and the result compared with the live object, so API
//! defaulting never shows as a change; owned objects no longer desired are
//! destroyed. An object whose live state proves it unchanged
//! ([`super::unchanged`], checked while reading) needs no dry run.

use std::collections::BTreeSet;

use futures::{StreamExt, stream};
use kube::api::Patch;
use serde_json::Value;

use super::diff::{comparable, unified_diff};
use super::refusal::{DryRun, FieldConflict, refusal, refused_error, refused_right};
use super::{Action, Blocked, Change, Drift, Handover, Target, compare, handover, takeover};
use crate::client::kube::{Cluster, patch_text};
use crate::client::retry;
use crate::live::kube::{Access, LiveState, NamespaceState, may};
use crate::ownership;
use crate::redact::Body;
use crate::render::{DesiredObject, ObjectRef, Wave};

/// Field managers of hand edits: kubectl's imperative commands, and
/// `before-first-apply`, which a client-side-applied object carries after
/// migration. A field one of them took from fleet is drift, restored by the
/// next apply; a field another applier declares is a real conflict.
pub const IMPERATIVE_MANAGERS: &[&str] = &[
    "kubectl",
    "kubectl-edit",
    "kubectl-patch",
    "kubectl-client-side-apply",
    "kubectl-label",
    "kubectl-annotate",
    "kubectl-scale",
    "kubectl-set",
    "kubectl-rollout",
    "before-first-apply",
    // A wave rolled back by apply (`[rollout] on_failure = "rollback"`).
    ownership::ROLLBACK_MANAGER,
];

pub struct Options {
    pub concurrency: usize,
    /// Plan as `apply --force-conflicts` would apply: take fields over.
    pub force_conflicts: bool,
    /// Plan as `apply --adopt` would: take over same-named unowned objects.
    pub adopt: bool,
    /// [`IMPERATIVE_MANAGERS`] and those the fleet adds.
    pub imperative_managers: Vec<String>,
}

/// A dry run's answer: one planning classifies, or a 422 for another reason
/// than immutable fields, an error to report unless a hand addition causes
/// it (a Service port moved by hand makes fleet's port a second one of the
/// same name), which apply takes over first.
enum Answer {
    Planned(DryRun),
    Invalid(Box<kube::core::Status>),
}

/// The Kubernetes part of a plan.
#[derive(Debug, Default)]
pub struct Planned {
    pub changes: Vec<Change>,
    /// How many objects were dry-run, or would have been.
    pub dry_runs: usize,
    /// How many objects were proven unchanged without a dry run.
    pub proven_unchanged: usize,
    /// The objects whose dry run was refused, with the server's reason:
    /// planned client-side, at lower fidelity.
    pub refused: Vec<(ObjectRef, String)>,
    /// Objects in a namespace that does not exist yet, which could not be
    /// dry-run: planned as rendered.
    pub before_namespace: usize,
}

/// What planning needs to know besides the dry run.
pub struct Context<'a> {
    /// The live object, owned or not.
    pub before: Option<&'a Value>,
    /// The ApplySet inventory is what it was at the last apply, so a missing
    /// object was deleted outside fleet.
    pub inventory_unchanged: bool,
    /// Imperative managers whose fields a forced dry run took back.
    pub taken_from: Vec<String>,
}

pub async fn plan(
    cluster: &Cluster,
    desired: &[DesiredObject],
    live: &LiveState,
    options: &Options,
    inventory_unchanged: bool,
) -> anyhow::Result<Planned> {
    let mut changes = Vec::new();
    let mut to_dry_run = Vec::new();
    let mut proven_unchanged = 0;
    let mut before_namespace = 0;
    let manages_namespace = desired.iter().any(|o| o.id.kind == "Namespace");
    if !manages_namespace && live.namespace == NamespaceState::Missing {
        return Err(unmanaged_namespace_missing(desired, cluster));
    }
    // In a namespace that does not exist yet everything is new, and a dry run
    // could only answer "namespace not found": skip thousands of requests.
    let namespace_missing = live.namespace == NamespaceState::Missing;
    for object in desired {
        if live.kind(&object.id).is_none() {
            let mut change = Change::new(
                Target::Kubernetes(object.id.clone()),
                Action::NotInstalled,
                object.wave(),
            );
            change.reason = Some(format!(
                "the cluster does not serve {} ({}); install its CRD, then plan again",
                object.id.kind, object.id.api_version
            ));
            changes.push(change);
        } else if live.unowned.contains_key(&object.id)
            && !options.adopt
            && handover::handed_back_by(live, desired, &object.id).is_none()
        {
            let mut change = Change::new(
                Target::Kubernetes(object.id.clone()),
                Action::Unowned,
                object.wave(),
            );
            change.reason = Some("an object of this name exists without fleet's labels; apply with --adopt to take it over".into());
            change.blocked = Some(Blocked::unless(
                "--adopt",
                "the object is not fleet's; apply refuses without --adopt",
            ));
            change.desired = Some(Body::new(object.body.clone()));
            changes.push(change);
        } else if object.id.namespace.is_some() && namespace_missing {
            let context = Context {
                before: None,
                inventory_unchanged,
                taken_from: Vec::new(),
            };
            changes.push(classify(object, &context, DryRun::NamespaceMissing));
            before_namespace += 1;
        } else if live.metadata_only.contains(&object.id) {
            // Proven while reading (plan::unchanged): a dry run would answer
            // the object as it is, so there is nothing to send. (The
            // parent's body records the inventory even when unchanged.)
            let mut change = Change::new(
                Target::Kubernetes(object.id.clone()),
                Action::NoOp,
                object.wave(),
            );
            if object.is_applyset_parent() {
                change.desired = Some(Body::new(object.body.clone()));
            }
            changes.push(change);
            proven_unchanged += 1;
        } else {
            to_dry_run.push(object);
        }
    }

    let dry_runs = to_dry_run.len();
    let planned: Vec<anyhow::Result<(Change, Option<String>)>> = stream::iter(to_dry_run)
        .map(|object| {
            let planning = Planning {
                cluster,
                live,
                desired,
                options,
                inventory_unchanged,
                manages_namespace,
            };
            async move { planning.object(object).await }
        })
        .buffer_unordered(options.concurrency.max(1))
        .collect()
        .await;
    let mut refused = Vec::new();
    for planned in planned {
        let (mut change, refusal) = planned?;
        if let Target::Kubernetes(id) = &change.target
            && let Some(scaled) = handover::handed_back_by(live, desired, id)
        {
            change.handover = Some(Handover::TakesBack);
            change.reason = Some(format!(
                "taken back from KEDA once ScaledObject {} is deleted",
                scaled.name
            ));
        }
        if let (Some(reason), Target::Kubernetes(id)) = (refusal, &change.target) {
            refused.push((id.clone(), reason));
        }
        changes.push(change);
    }
    refused.sort();

    // Owned, and no longer desired: destroy (unless handed over to KEDA).
    let desired_ids: BTreeSet<&ObjectRef> = desired.iter().map(|d| &d.id).collect();
    for (id, object) in &live.owned {
        if let Some(scaled) = handover::taken_over_by(desired, id) {
            if let Some(change) = changes
                .iter_mut()
                .find(|c| matches!(&c.target, Target::Kubernetes(t) if t == scaled))
            {
                change.reason = Some(format!(
                    "takes over HorizontalPodAutoscaler {} in place: KEDA updates it, it is not deleted",
                    id.name
                ));
            }
            continue;
        }
        if !desired_ids.contains(id) {
            let mut change = Change::new(
                Target::Kubernetes(id.clone()),
                Action::Delete,
                Wave::of_kind(&id.kind),
            );
            change.diff = Some(unified_diff(&id.kind, Some(object), None));
            // Made with fleet's labels outside fleet: the inventory says
            // fleet never applied it.
            change.drift = inventory_unchanged.then(Drift::default);
            if handover::hands_back(live, desired, id) {
                change.handover = Some(Handover::Orphans);
                change.reason = Some(format!(
                    "deleted first, leaving its HorizontalPodAutoscaler {} to fleet's",
                    handover::keda_hpa_name(object)
                ));
            }
            changes.push(change);
        }
    }
    block_writes_not_allowed(cluster, live, &mut changes, options.concurrency).await;
    if namespace_missing {
        block_roles_granting_more(cluster, desired, &mut changes, options.concurrency).await;
    }
    Ok(Planned {
        changes,
        dry_runs,
        proven_unchanged,
        refused,
        before_namespace,
    })
}

/// Blocks the deletions (and a replacement's create) this identity may not
/// make. A dry run is authorised as the write itself, so what plan dry-ran
/// apply may write; but plan does not dry-run a deletion, nor the create
/// after a replacement's delete: asked by SelfSubjectAccessReview instead.
/// An answer the server would not give blocks nothing.
pub(super) async fn block_writes_not_allowed(
    cluster: &Cluster,
    live: &LiveState,
    changes: &mut [Change],
    concurrency: usize,
) {
    let asked: Vec<(usize, &ObjectRef, &[&str])> = changes
        .iter()
        .enumerate()
        .filter_map(|(n, change)| {
            let Target::Kubernetes(id) = &change.target else {
                return None;
            };
            match change.action {
                Action::Delete => Some((n, id, &["delete"][..])),
                Action::Replace => Some((n, id, &["delete", "create"][..])),
                _ => None,
            }
        })
        .collect();
    // Allowed for every name of a kind, it is allowed for each: one review
    // per kind and verb in the usual case, not one per object.
    let mut every_name: Vec<(&str, &str, Option<&str>, &str)> = asked
        .iter()
        .filter_map(|(_, id, verbs)| {
            let kind = live.kind(id)?;
            Some(verbs.iter().map(move |verb| {
                let resource = &kind.resource;
                (
                    resource.group.as_str(),
                    resource.plural.as_str(),
                    id.namespace.as_deref(),
                    *verb,
                )
            }))
        })
        .flatten()
        .collect();
    every_name.sort();
    every_name.dedup();
    let allowed: BTreeSet<(&str, &str, Option<&str>, &str)> = stream::iter(every_name)
        .map(|(group, resource, namespace, verb)| async move {
            let access = Access {
                verb,
                group,
                resource,
                namespace,
                name: None,
            };
            (may(cluster, &access).await == Some(true))
                .then_some((group, resource, namespace, verb))
        })
        .buffer_unordered(concurrency.max(1))
        .filter_map(std::future::ready)
        .collect()
        .await;
    let allowed = &allowed;
    let answers: Vec<(usize, Vec<&str>)> = stream::iter(asked)
        .map(|(n, id, verbs)| async move {
            let mut denied = Vec::new();
            if let Some(kind) = live.kind(id) {
                for verb in verbs {
                    let every = (
                        kind.resource.group.as_str(),
                        kind.resource.plural.as_str(),
                        id.namespace.as_deref(),
                        *verb,
                    );
                    if allowed.contains(&every) {
                        continue;
                    }
                    let access = Access {
                        verb,
                        group: &kind.resource.group,
                        resource: &kind.resource.plural,
                        namespace: id.namespace.as_deref(),
                        name: Some(&id.name),
                    };
                    if may(cluster, &access).await == Some(false) {
                        denied.push(*verb);
                    }
                }
            }
            (n, denied)
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    for (n, denied) in answers {
        let Target::Kubernetes(id) = &changes[n].target else {
            continue;
        };
        if denied.is_empty() {
            continue;
        }
        let resource = live
            .kind(id)
            .map(|kind| kind.resource.plural.clone())
            .unwrap_or_else(|| id.kind.clone());
        // The namespace, the ApplySet parent and the deploy lock's Lease
        // are deleted only by a tear-down, which `--for apply` does not grant.
        let grant = if matches!(id.kind.as_str(), "Namespace" | "Secret" | "Lease") {
            "`fleet rbac --for apply` does not grant it: only `fleet destroy` deletes it"
        } else {
            "`fleet rbac --for apply` prints the rights"
        };
        let place = match id.namespace.as_deref() {
            Some(namespace) => format!(" in namespace {namespace}"),
            None => format!(" named {}", id.name),
        };
        changes[n].blocked = Some(Blocked::refused(format!(
            "this identity may not {} {resource}{place} (RBAC, as `kubectl auth can-i` says), which apply would; plan does not dry-run that write. Grant it ({grant}), or apply as an identity that holds it",
            denied.join(" or "),
        )));
    }
}

/// Blocks the new Roles that grant rights this identity does not hold, in a
/// namespace that does not exist yet: the API server would refuse them
/// (RBAC escalation), but nothing can be dry-run there, so each right is
/// asked by SelfSubjectAccessReview. An identity that may `escalate` roles
/// may grant anything.
async fn block_roles_granting_more(
    cluster: &Cluster,
    desired: &[DesiredObject],
    changes: &mut [Change],
    concurrency: usize,
) {
    let roles: Vec<(usize, &DesiredObject)> = changes
        .iter()
        .enumerate()
        .filter(|(_, c)| c.action == Action::Create)
        .filter_map(|(n, change)| {
            let Target::Kubernetes(id) = &change.target else {
                return None;
            };
            let object = desired.iter().find(|o| &o.id == id)?;
            (id.kind == "Role" && id.group() == "rbac.authorization.k8s.io").then_some((n, object))
        })
        .collect();
    let Some(namespace) = roles.first().and_then(|(_, o)| o.id.namespace.as_deref()) else {
        return;
    };
    let escalate = Access {
        verb: "escalate",
        group: "rbac.authorization.k8s.io",
        resource: "roles",
        namespace: Some(namespace),
        name: None,
    };
    if may(cluster, &escalate).await != Some(false) {
        return;
    }
    for (n, role) in roles {
        // (group, resource, name, verb) for each right the Role grants.
        let mut rights: Vec<(String, String, Option<String>, String)> = Vec::new();
        for rule in role.body["rules"].as_array().into_iter().flatten() {
            let list = |key: &str| -> Vec<String> {
                rule[key]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            };
            let names = list("resourceNames");
            let names: Vec<Option<String>> = if names.is_empty() {
                vec![None]
            } else {
                names.into_iter().map(Some).collect()
            };
            for group in list("apiGroups") {
                for resource in list("resources") {
                    for name in &names {
                        for verb in list("verbs") {
                            rights.push((group.clone(), resource.clone(), name.clone(), verb));
                        }
                    }
                }
            }
        }
        let denied: Vec<(String, String, Option<String>, String)> = stream::iter(rights)
            .map(|right| async move {
                let (group, resource, name, verb) = &right;
                let access = Access {
                    verb,
                    group,
                    resource,
                    namespace: Some(namespace),
                    name: name.as_deref(),
                };
                (may(cluster, &access).await == Some(false)).then_some(right)
            })
            .buffered(concurrency.max(1))
            .filter_map(std::future::ready)
            .collect()
            .await;
        if denied.is_empty() {
            continue;
        }
        // `get, list pods` for each resource (and name) whose verbs are missing.
        let mut missing: Vec<(String, Vec<String>)> = Vec::new();
        for (group, resource, name, verb) in denied {
            let group = if group.is_empty() {
                String::new()
            } else {
                format!(".{group}")
            };
            let named = name.map(|n| format!(" named {n}")).unwrap_or_default();
            let what = format!("{resource}{group}{named}");
            match missing.iter_mut().find(|(w, _)| *w == what) {
                Some((_, verbs)) => verbs.push(verb),
                None => missing.push((what, vec![verb])),
            }
        }
        let missing: Vec<String> = missing
            .into_iter()
            .map(|(what, verbs)| format!("{} {what}", verbs.join(", ")))
            .collect();
        changes[n].blocked = Some(Blocked::refused(format!(
            "this identity may not grant rights it does not hold (the API server refuses RBAC escalation; asked by SelfSubjectAccessReview, as the namespace does not exist yet to dry-run in), and lacks: {}. Grant them (`fleet rbac --for apply` prints them), or plan and apply as an identity that holds them",
            missing.join("; ")
        )));
    }
}

/// Whether the live ApplySet parent carries the inventory hash of what is
/// desired now: then the set of objects is the one fleet last applied, and
/// one that is missing was deleted outside fleet.
pub fn inventory_unchanged(desired: &[DesiredObject], live: &LiveState) -> bool {
    let inventory = |body: &Value| {
        body["metadata"]["annotations"][ownership::INVENTORY_HASH_ANNOTATION]
            .as_str()
            .map(str::to_string)
    };
    desired
        .iter()
        .find(|o| o.is_applyset_parent())
        .and_then(|parent| {
            let live = live.owned.get(&parent.id)?;
            Some(inventory(live).is_some() && inventory(live) == inventory(&parent.body))
        })
        .unwrap_or(false)
}

/// What planning one object needs besides the object.
#[derive(Clone, Copy)]
struct Planning<'a> {
    cluster: &'a Cluster,
    live: &'a LiveState,
    desired: &'a [DesiredObject],
    options: &'a Options,
    inventory_unchanged: bool,
    /// Fleet renders the namespace, so a missing one is created.
    manages_namespace: bool,
}

impl Planning<'_> {
    /// Dry-runs one object and classifies the result against its live
    /// state; with the server's reason when it refused the dry run.
    async fn object(self, object: &DesiredObject) -> anyhow::Result<(Change, Option<String>)> {
        let Planning {
            cluster,
            live,
            options,
            ..
        } = self;
        let handed_back = handover::handed_back_by(live, self.desired, &object.id);
        let adopting =
            (options.adopt && live.unowned.contains_key(&object.id)) || handed_back.is_some();
        let before = live
            .owned
            .get(&object.id)
            .or_else(|| live.unowned.get(&object.id));
        let mut context = Context {
            before,
            inventory_unchanged: self.inventory_unchanged,
            taken_from: Vec::new(),
        };
        // Plan as apply will apply: adopting takes the object's fields over.
        let result =
            match dry_run(cluster, live, object, options.force_conflicts || adopting).await? {
                Answer::Planned(result) => result,
                Answer::Invalid(status) => {
                    return self
                        .refused_beside_hand_additions(object, context, &status)
                        .map(|change| (change, None));
                }
            };
        let conflicts = match result {
            // A namespace fleet does not create, which it could not read (an
            // identity confined to it), and which the dry run says is missing.
            DryRun::NamespaceMissing if !self.manages_namespace => {
                return Err(unmanaged_namespace_missing(
                    std::slice::from_ref(object),
                    cluster,
                ));
            }
            DryRun::Conflict(conflicts) => conflicts,
            DryRun::Forbidden(reason) => {
                let change = classify(object, &context, DryRun::Forbidden(reason.clone()));
                return Ok((change, Some(reason)));
            }
            result => {
                let result = without_hand_additions(result, &mut context, options);
                return Ok((classify(object, &context, result), None));
            }
        };
        let imperative = imperative_only(&conflicts, before, &options.imperative_managers);
        // What taking the fields over would change: the update that restores a
        // hand edit, or the diff shown with a real conflict.
        let forced = match dry_run(cluster, live, object, true).await? {
            Answer::Planned(forced) => forced,
            Answer::Invalid(status) => return Err(refused_error(cluster, object, &status)),
        };
        if let Some(managers) = imperative {
            context.taken_from = managers;
            let forced = without_hand_additions(forced, &mut context, options);
            return Ok((classify(object, &context, forced), None));
        }
        let mut change = classify(object, &context, DryRun::Conflict(conflicts));
        if let (DryRun::Accepted(after), Some(before)) = (forced, before) {
            change.diff = Some(unified_diff(&object.id.kind, Some(before), Some(&after)));
        }
        Ok((change, None))
    }

    /// A dry run the server refused (422) because of a hand addition, such
    /// as a Service port moved by hand (fleet's port would be a second one
    /// named `metrics`): apply takes the addition over first, so planned
    /// client-side from the live object without it. Any other refusal is
    /// the error it was.
    fn refused_beside_hand_additions(
        self,
        object: &DesiredObject,
        mut context: Context<'_>,
        status: &kube::core::Status,
    ) -> anyhow::Result<Change> {
        let refused = || refused_error(self.cluster, object, status);
        let Some(before) = context.before else {
            return Err(refused());
        };
        // LIST items carry no apiVersion and kind.
        let mut live = before.clone();
        live["apiVersion"] = object.body["apiVersion"].clone();
        live["kind"] = object.body["kind"].clone();
        let Some((managers, fields)) =
            takeover::hand_added(&live, &self.options.imperative_managers)
        else {
            return Err(refused());
        };
        context.taken_from = managers;
        let after = compare::expected(&takeover::without(before, &fields), &object.body);
        let mut change = classify(object, &context, DryRun::Accepted(after));
        change.reason = Some(format!(
            "beside the hand edit's fields the API server refuses fleet's {}: {}. Apply takes those fields over first. Compared client-side: defaults the server adds do not show",
            object.id.kind, status.message
        ));
        Ok(change)
    }
}

/// A dry run's answer without the fields apply takes over from hand edits
/// and removes ([`takeover`]), whose managers join those the change takes
/// fields from. A field the server defaults (a container's
/// `imagePullPolicy`) comes back with its default after the apply; the plan
/// shows it removed.
fn without_hand_additions(result: DryRun, context: &mut Context<'_>, options: &Options) -> DryRun {
    let DryRun::Accepted(after) = result else {
        return result;
    };
    let Some((managers, fields)) = takeover::hand_added(&after, &options.imperative_managers)
    else {
        return DryRun::Accepted(after);
    };
    context.taken_from.extend(managers);
    context.taken_from.sort();
    context.taken_from.dedup();
    DryRun::Accepted(takeover::without(&after, &fields))
}

/// The fleet's namespace does not exist and fleet does not create it.
fn unmanaged_namespace_missing(desired: &[DesiredObject], cluster: &Cluster) -> anyhow::Error {
    let namespace = desired
        .iter()
        .find_map(|o| o.id.namespace.as_deref())
        .unwrap_or_default();
    anyhow::anyhow!(
        "namespace {namespace} does not exist on {}, and fleet does not create it ([fleet] manage_namespace = false). Nothing was changed.\n  Have an administrator create it (`kubectl create namespace {namespace}`), or set `manage_namespace = true` to let fleet create and label it.",
        cluster.describe()
    )
}

/// The plan's note when some dry runs were refused: which, why, and what
/// the client-side comparison cannot see.
pub fn lower_fidelity_note(planned: &Planned) -> Option<String> {
    let first = planned.refused.first()?;
    let mut reasons: Vec<String> = planned
        .refused
        .iter()
        .map(|(_, message)| refused_right(message))
        .collect();
    reasons.sort();
    reasons.dedup();
    let count = planned.refused.len();
    Some(format!(
        "lower fidelity: this identity may not dry-run {count} of {} objects ({}), so {} compared client-side with the live {}, on the fields fleet sets: defaults the API server would add, conflicts with other field managers, immutable fields (replacements) and invalid values do not show. Apply would be refused ({}). `fleet rbac --for plan` prints the rights for a full plan.",
        planned.dry_runs,
        reasons.join(", "),
        if count == 1 { "it was" } else { "they were" },
        if count == 1 { "object" } else { "objects" },
        first.1,
    ))
}

/// The plan's note when the namespace does not exist yet: the objects in
/// it could not be dry-run, so the API server has not checked them.
pub fn before_namespace_note(planned: &Planned, namespace: &str) -> Option<String> {
    let count = planned.before_namespace;
    (count > 0).then(|| {
        format!(
            "namespace {namespace} does not exist yet, so the {count} {} in it could not be dry-run and {} shown as rendered: the API server checks {} (its defaults, validation, admission) only when apply creates {}",
            if count == 1 { "object" } else { "objects" },
            if count == 1 { "is" } else { "are" },
            if count == 1 { "it" } else { "them" },
            if count == 1 { "it" } else { "them" },
        )
    })
}

/// The managers of `conflicts` when every one of them is an imperative
/// manager that wrote with Update operations only (a hand edit); `None` when
/// any of them is an applier, which makes it a real conflict.
pub fn imperative_only(
    conflicts: &[FieldConflict],
    live: Option<&Value>,
    imperative_managers: &[String],
) -> Option<Vec<String>> {
    let mut managers: Vec<String> = conflicts.iter().map(|c| c.manager.clone()).collect();
    managers.sort();
    managers.dedup();
    let entries = live
        .and_then(|l| l["metadata"]["managedFields"].as_array())
        .map(Vec::as_slice)
        .unwrap_or_default();
    let hand_edit = |manager: &String| {
        imperative_managers.contains(manager)
            && entries
                .iter()
                .filter(|e| e["manager"] == manager.as_str())
                .all(|e| e["operation"] == "Update")
    };
    (!managers.is_empty() && managers.iter().all(hand_edit)).then_some(managers)
}

/// Pure: the change a dry run's answer means for one object.
pub fn classify(object: &DesiredObject, context: &Context<'_>, dry_run: DryRun) -> Change {
    let mut change = Change::new(
        Target::Kubernetes(object.id.clone()),
        Action::NoOp,
        object.wave(),
    );
    change.desired = Some(Body::new(object.body.clone()));
    let kind = &object.id.kind;
    let before = context.before;
    match dry_run {
        // Without the server, the live object with fleet's fields laid over
        // it; a new object as rendered.
        DryRun::Forbidden(_) | DryRun::RoleMissing => {
            let after = match before {
                Some(before) => compare::expected(before, &object.body),
                None => object.body.clone(),
            };
            return classify(object, context, DryRun::Accepted(after));
        }
        DryRun::Refused(reason) => {
            let mut change = classify(object, context, DryRun::RoleMissing);
            // Unchanged, it is not sent, so nothing refuses it.
            if change.action != Action::NoOp {
                change.blocked = Some(Blocked::refused(reason));
            }
            return change;
        }
        DryRun::NamespaceMissing => {
            change.action = Action::Create;
            change.diff = Some(unified_diff(kind, None, Some(&object.body)));
            change.drift = context.inventory_unchanged.then(Drift::default);
        }
        DryRun::Conflict(conflicts) => {
            change.action = Action::Conflict;
            let fields: Vec<String> = conflicts
                .iter()
                .map(|c| format!("{} ({})", c.field, c.message))
                .collect();
            change.reason = Some(format!(
                "{}; apply with --force-conflicts to take these fields over",
                fields.join("; ")
            ));
            change.blocked = Some(Blocked::unless(
                "--force-conflicts",
                "another field manager owns fields fleet sets; apply refuses without --force-conflicts",
            ));
        }
        DryRun::Immutable(reason) => {
            change.action = Action::Replace;
            change.reason = Some(match kind.as_str() {
                "Deployment" => format!(
                    "{reason}; the agent's pods go away until the new Deployment's are ready"
                ),
                _ => reason,
            });
            change.diff = Some(unified_diff(kind, before, Some(&object.body)));
        }
        DryRun::Accepted(after) => match before {
            None => {
                change.action = Action::Create;
                change.diff = Some(unified_diff(kind, None, Some(&after)));
                change.drift = context.inventory_unchanged.then(Drift::default);
            }
            Some(before) => {
                let same = comparable(before) == comparable(&after);
                if same && context.taken_from.is_empty() && !object.is_applyset_parent() {
                    // Nothing to send: a large fleet's no-op plan does not
                    // keep a second copy of every object. (The parent's
                    // body records the inventory even when unchanged.)
                    change.desired = None;
                }
                if !same || !context.taken_from.is_empty() {
                    change.action = Action::Update;
                    change.diff = Some(unified_diff(kind, Some(before), Some(&after)));
                    // Fleet would send what it sent last time, so the
                    // difference was made in the cluster.
                    let unchanged_definition = ownership::applied_hash(before).is_some()
                        && ownership::applied_hash(before) == ownership::applied_hash(&object.body);
                    if !context.taken_from.is_empty() || unchanged_definition {
                        change.drift = Some(Drift {
                            managers: context.taken_from.clone(),
                            with_definition_change: !unchanged_definition,
                        });
                    }
                    if same {
                        change.reason = Some(format!(
                            "the values are fleet's, but {} owns them; apply takes them back",
                            context.taken_from.join(", ")
                        ));
                    }
                }
            }
        },
    }
    change
}

async fn dry_run(
    cluster: &Cluster,
    live: &LiveState,
    object: &DesiredObject,
    force: bool,
) -> anyhow::Result<Answer> {
    let kind = live
        .kind(&object.id)
        .expect("planned only for installed kinds");
    let api = kind.api(&cluster.client, object.id.namespace.as_deref());
    let mut params = ownership::apply_params().dry_run();
    params.force = force;
    let patch = Patch::Apply(&object.body);
    let dry_run = || patch_text(&cluster.client, &api, &object.id.name, &params, &patch);
    match retry::kube(dry_run).await {
        Ok(answer) => Ok(Answer::Planned(DryRun::Accepted(serde_json::from_str(
            &answer,
        )?))),
        Err(kube::Error::Api(status)) => match refusal(&status, &object.id) {
            Some(dry_run) => Ok(Answer::Planned(dry_run)),
            None if status.code == 422 => Ok(Answer::Invalid(status)),
            None => Err(refused_error(cluster, object, &status)),
        },
        Err(err) => Err(anyhow::Error::new(err).context(format!(
            "planning {} on {}",
            object.id,
            cluster.describe()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::plan::refusal::conflicting_manager;
    use crate::plan::refusal::tests::{deployment, status};

    fn live_with(object: &DesiredObject, replicas: u32, managers: Value) -> Value {
        let mut live = object.body.clone();
        live["spec"]["replicas"] = json!(replicas);
        live["metadata"]["managedFields"] = managers;
        live
    }

    fn imperative() -> Vec<String> {
        IMPERATIVE_MANAGERS.iter().map(|m| m.to_string()).collect()
    }

    #[test]
    fn a_hand_edit_is_drift_restored_by_an_update() {
        let object = deployment(2);
        let managers = json!([
            { "manager": "fleet", "operation": "Apply" },
            { "manager": "kubectl-scale", "operation": "Update", "subresource": "scale" },
        ]);
        let live = live_with(&object, 4, managers);
        let conflicts = vec![FieldConflict {
            manager: conflicting_manager(
                r#"conflict with "kubectl-scale" with subresource "scale" using apps/v1"#,
            ),
            field: ".spec.replicas".into(),
            message: String::new(),
        }];
        let taken_from = imperative_only(&conflicts, Some(&live), &imperative()).unwrap();
        assert_eq!(taken_from, ["kubectl-scale"]);
        let context = Context {
            before: Some(&live),
            inventory_unchanged: true,
            taken_from,
        };
        let change = classify(&object, &context, DryRun::Accepted(object.body.clone()));
        assert_eq!(change.action, Action::Update);
        assert_eq!(
            change.drift.as_ref().unwrap().describe(),
            "changed outside fleet by kubectl-scale"
        );
        let diff = change.diff.unwrap();
        assert!(
            diff.contains("-  replicas: 4") && diff.contains("+  replicas: 2"),
            "{diff}"
        );
    }

    #[test]
    fn another_applier_is_a_conflict() {
        let object = deployment(2);
        let live = live_with(
            &object,
            4,
            json!([{ "manager": "kubectl-edit", "operation": "Apply" }]),
        );
        let conflict = |manager: &str| FieldConflict {
            manager: manager.into(),
            field: ".spec.replicas".into(),
            message: String::new(),
        };
        // Applied (not updated), even under an imperative name: an applier.
        assert_eq!(
            imperative_only(&[conflict("kubectl-edit")], Some(&live), &imperative()),
            None
        );
        assert_eq!(
            imperative_only(&[conflict("argocd")], Some(&live), &imperative()),
            None
        );
        let mut extended = imperative();
        extended.push("argocd".into());
        let live = live_with(
            &object,
            4,
            json!([{ "manager": "argocd", "operation": "Update" }]),
        );
        assert!(imperative_only(&[conflict("argocd")], Some(&live), &extended).is_some());
    }

    #[test]
    fn a_changed_definition_is_not_drift() {
        let live = live_with(&deployment(2), 2, json!([]));
        let object = deployment(3);
        let context = Context {
            before: Some(&live),
            inventory_unchanged: true,
            taken_from: Vec::new(),
        };
        let change = classify(&object, &context, DryRun::Accepted(object.body.clone()));
        assert_eq!(change.action, Action::Update);
        assert_eq!(change.drift, None);
        // The same definition, but the live object lost a field: drift.
        let mut edited = live.clone();
        edited["spec"].as_object_mut().unwrap().remove("replicas");
        let object = deployment(2);
        let context = Context {
            before: Some(&edited),
            ..context
        };
        let change = classify(&object, &context, DryRun::Accepted(object.body.clone()));
        assert_eq!(change.drift, Some(Drift::default()));
    }

    #[test]
    fn plan_drift_leaves_out_a_definition_change_on_a_hand_edited_object() {
        // Scaled by hand, and its definition changed since the last apply:
        // the diff holds both, so `plan --drift` shows the drift without it.
        let managers = json!([
            { "manager": "fleet", "operation": "Apply" },
            { "manager": "kubectl", "operation": "Update", "subresource": "scale" },
        ]);
        let live = live_with(&deployment(2), 4, managers);
        let object = deployment(3);
        let context = Context {
            before: Some(&live),
            inventory_unchanged: true,
            taken_from: vec!["kubectl".into()],
        };
        let change = classify(&object, &context, DryRun::Accepted(object.body.clone()));
        assert!(change.diff.as_deref().unwrap().contains("+  replicas: 3"));
        let plan = crate::plan::Plan {
            format_version: crate::plan::FORMAT_VERSION,
            fleet: "f".into(),
            environment: None,
            namespace: "ns".into(),
            kube_context: "c".into(),
            nats_url: None,
            provenance: Default::default(),
            lock: None,
            changes: vec![change],
            drift_only: false,
            destroy: false,
            targeting: None,
            notes: Vec::new(),
        }
        .drift_only();
        let [change] = plan.changes.as_slice() else {
            panic!("{:?}", plan.changes);
        };
        assert_eq!(
            change.drift.as_ref().unwrap().describe(),
            "changed outside fleet by kubectl"
        );
        assert_eq!(
            change.diff, None,
            "the definition's new replicas are not drift"
        );
        assert!(
            change
                .reason
                .as_deref()
                .unwrap()
                .contains("the definition changed this object too"),
            "{:?}",
            change.reason
        );
    }

    #[test]
    fn conflicts_read_the_same_in_whatever_order_the_server_lists_them() {
        let id = deployment(1).id;
        let cause = |field: &str, manager: &str| {
            json!({ "reason": "FieldManagerConflict", "field": field,
                    "message": format!("conflict with \"{manager}\" using v1") })
        };
        let one = cause(".metadata.labels.tier", "other-tool");
        let two = cause(".metadata.annotations.hash", "kubectl-annotate");
        let reasons: Vec<_> = [json!([one, two]), json!([two, one])]
            .into_iter()
            .map(|causes| {
                let Some(conflicts @ DryRun::Conflict(_)) = refusal(&status(409, causes), &id)
                else {
                    panic!("a conflict");
                };
                let context = Context {
                    before: None,
                    inventory_unchanged: true,
                    taken_from: Vec::new(),
                };
                classify(&deployment(1), &context, conflicts)
                    .reason
                    .unwrap()
            })
            .collect();
        assert_eq!(reasons[0], reasons[1]);
        assert!(
            reasons[0].starts_with(".metadata.annotations.hash"),
            "{}",
            reasons[0]
        );
    }

    #[test]
    fn a_refused_dry_run_is_planned_client_side() {
        let mut forbidden = status(403, json!([]));
        forbidden.message = r#"deployments.apps "agent-a" is forbidden: User "ci" cannot patch resource "deployments" in API group "apps" in the namespace "ns""#.into();
        let Some(DryRun::Forbidden(reason)) = refusal(&forbidden, &deployment(1).id) else {
            panic!("a 403 is a refused dry run");
        };
        // What fleet applied, read back: no change.
        let applied = deployment(2);
        let mut live = applied.body.clone();
        live["metadata"]["uid"] = json!("u1");
        live["status"] = json!({ "replicas": 2 });
        let context = Context {
            before: Some(&live),
            inventory_unchanged: true,
            taken_from: Vec::new(),
        };
        let change = classify(&applied, &context, DryRun::Forbidden(reason.clone()));
        assert_eq!(change.action, Action::NoOp);
        // A changed definition shows, with its diff.
        let change = classify(&deployment(3), &context, DryRun::Forbidden(reason.clone()));
        assert_eq!(change.action, Action::Update);
        assert!(change.diff.unwrap().contains("+  replicas: 3"));
        // A new object is created as rendered.
        let new = Context {
            before: None,
            ..context
        };
        let change = classify(&deployment(3), &new, DryRun::Forbidden(reason));
        assert_eq!(change.action, Action::Create);
    }

    #[test]
    fn a_binding_of_a_role_not_made_yet_is_planned_client_side() {
        let binding = DesiredObject::from_json(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": { "name": "agent-a", "namespace": "ns" },
            "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "agent-a" },
        }));
        let not_found = status(404, json!([]));
        assert!(matches!(
            refusal(&not_found, &binding.id),
            Some(DryRun::RoleMissing)
        ));
        let context = Context {
            before: None,
            inventory_unchanged: false,
            taken_from: Vec::new(),
        };
        let change = classify(&binding, &context, DryRun::RoleMissing);
        assert_eq!(change.action, Action::Create);
        // Any other kind's 404 is an error to report.
        assert!(refusal(&not_found, &deployment(1).id).is_none());
    }

    #[test]
    fn refused_dry_runs_make_one_note_naming_the_rights() {
        assert_eq!(lower_fidelity_note(&Planned::default()), None);
        let id = deployment(1).id;
        let patch = r#"deployments.apps "agent-a" is forbidden: User "ci" cannot patch resource "deployments" in API group "apps" in the namespace "ns""#;
        let create = r#"configmaps "c" is forbidden: User "ci" cannot create resource "configmaps" in API group "" in the namespace "ns""#;
        let escalate = r#"roles.rbac.authorization.k8s.io "r" is forbidden: user "ci" (groups=["system:authenticated"]) is attempting to grant RBAC permissions not currently held:"#;
        let planned = Planned {
            dry_runs: 5,
            refused: vec![
                (id.clone(), patch.into()),
                (id.clone(), patch.into()),
                (id.clone(), create.into()),
                (id, escalate.into()),
            ],
            ..Planned::default()
        };
        let note = lower_fidelity_note(&planned).unwrap();
        assert!(note.starts_with("lower fidelity: "), "{note}");
        assert!(
            note.contains("may not dry-run 4 of 5 objects (create configmaps, grant rules it does not hold, patch deployments)"),
            "{note}"
        );
        assert!(note.contains(patch), "{note}");
    }
}
