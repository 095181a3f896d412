//! The agents' NATS credentials Secrets (`agent-<role>-nats`): minted when
//! missing, when the permissions they hold change, and when their user is
//! within `renew_before` of expiring; deleted when their agent goes. Only
//! their metadata is ever read (by name: a LIST of Secrets returns every
//! value), and a plan holds their permissions, never their creds: apply
//! mints the user. Pure but for [`read`].

use std::collections::BTreeMap;

use serde_json::Value;

use super::diff::unified_diff;
use super::{Action, Change, Target};
use crate::client::kube::Cluster;
use crate::credentials::{
    EXPIRES_ANNOTATION, PERMISSIONS_ANNOTATION as NATS_PERMISSIONS_ANNOTATION, Permissions,
    RECORDED_ANNOTATION, USER_ANNOTATION,
};
use crate::model::NatsCredentials;
use crate::redact::Body;
use crate::render::{DesiredObject, ObjectRef, Wave};
use crate::{ownership, render};

/// What a plan needs to know of the credentials.
pub struct Inputs<'a> {
    pub desired: &'a [DesiredObject],
    /// The live metadata of each Secret named (desired or recorded);
    /// `None` when there is none.
    pub live: &'a BTreeMap<String, Option<Value>>,
    /// Names the live ApplySet parent records.
    pub recorded: &'a [String],
    pub settings: Option<&'a NatsCredentials>,
    pub applyset_id: &'a str,
    pub adopt: bool,
    /// Unix seconds.
    pub now: u64,
    pub label_domain: &'a str,
}

/// The names recorded on a live ApplySet parent.
pub fn recorded(parent: Option<&Value>) -> Vec<String> {
    parent
        .and_then(|p| p["metadata"]["annotations"][RECORDED_ANNOTATION].as_str())
        .map(|names| {
            names
                .split(',')
                .filter(|n| !n.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Reads the metadata of each named Secret in `namespace`.
pub async fn read(
    cluster: &Cluster,
    namespace: &str,
    names: impl IntoIterator<Item = String>,
) -> anyhow::Result<BTreeMap<String, Option<Value>>> {
    let api: kube::Api<k8s_openapi::api::core::v1::Secret> =
        kube::Api::namespaced(cluster.client.clone(), namespace);
    let mut out = BTreeMap::new();
    for name in names {
        let metadata = crate::client::retry::kube(|| api.get_metadata_opt(&name))
            .await
            .map_err(|err| {
                anyhow::anyhow!(
                    "reading the metadata of Secret {namespace}/{name} on {}: {err}",
                    cluster.describe()
                )
            })?;
        out.insert(
            name,
            metadata.map(|m| serde_json::json!({ "metadata": m.metadata })),
        );
    }
    Ok(out)
}

fn permissions_of(object: &Value) -> Option<Permissions> {
    object["metadata"]["annotations"][NATS_PERMISSIONS_ANNOTATION]
        .as_str()
        .and_then(|text| serde_json::from_str(text).ok())
}

/// Each credentials Secret's change.
pub fn plan(inputs: &Inputs<'_>) -> Vec<Change> {
    let role_label = format!("{}/role", inputs.label_domain);
    let mut changes = Vec::new();
    for desired in inputs.desired {
        let live = inputs.live.get(&desired.id.name).cloned().flatten();
        let mut change = Change::new(
            Target::Kubernetes(desired.id.clone()),
            Action::NoOp,
            Wave::Configuration,
        );
        change.agent = desired.body["metadata"]["labels"][&role_label]
            .as_str()
            .map(str::to_string);
        let permissions = permissions_of(&desired.body).unwrap_or_default();
        let why = match &live {
            None => Some(format!(
                "mints the agent's NATS user, allowed to publish to {} and subscribe to {}",
                list(&permissions.publish),
                list(&permissions.subscribe)
            )),
            Some(live) if !ownership_matches(live, inputs.applyset_id) && !inputs.adopt => {
                change.action = Action::Unowned;
                change.reason = Some("a Secret of this name exists that fleet did not make; apply with --adopt to replace its contents with a minted user".into());
                changes.push(change);
                continue;
            }
            Some(live) => why_mint(live, desired, &permissions, inputs),
        };
        if let Some(why) = why {
            change.action = if live.is_some() {
                Action::Update
            } else {
                Action::Create
            };
            // A user whose permissions change is superseded at once; one
            // renewed before its expiry only expires (its pods keep it
            // until they read the new creds).
            let superseded = live
                .as_ref()
                .filter(|live| permissions_of(live).as_ref() != Some(&permissions))
                .and_then(user_of);
            change.reason = Some(match (&superseded, inputs.settings) {
                (Some(_), Some(settings)) if settings.revoke => {
                    format!("{why}, and revokes the previous user")
                }
                (Some(_), _) => format!(
                    "{why}; the previous user stays valid until it expires ([nats_credentials] revoke = false)"
                ),
                (None, _) => why,
            });
            change.revokes = superseded.filter(|_| inputs.settings.is_some_and(|s| s.revoke));
            change.diff = Some(unified_diff(
                "Secret",
                live.as_ref().map(reviewed).as_ref(),
                Some(&reviewed(&desired.body)),
            ));
            change.desired = Some(Body::new(desired.body.clone()));
        }
        changes.push(change);
    }
    // Those of agents that are gone, found from the parent's record.
    for name in inputs.recorded {
        if inputs.desired.iter().any(|d| &d.id.name == name) {
            continue;
        }
        let Some(Some(live)) = inputs.live.get(name) else {
            continue;
        };
        if !ownership_matches(live, inputs.applyset_id) {
            continue;
        }
        let id = ObjectRef {
            api_version: "v1".into(),
            kind: "Secret".into(),
            namespace: live["metadata"]["namespace"].as_str().map(str::to_string),
            name: name.clone(),
        };
        let mut change = Change::new(Target::Kubernetes(id), Action::Delete, Wave::Configuration);
        change.agent = live["metadata"]["labels"][&role_label]
            .as_str()
            .map(str::to_string);
        let expires = live["metadata"]["annotations"][EXPIRES_ANNOTATION]
            .as_str()
            .and_then(|e| e.parse::<u64>().ok());
        let revoke = inputs.settings.is_some_and(|s| s.revoke);
        change.reason = Some(match (revoke, expires) {
            (true, _) => "its agent is gone, and its user is revoked".into(),
            (false, Some(expires)) => format!(
                "its agent is gone; a copy of its creds stays valid until it expires, in {} ([nats_credentials] revoke = false)",
                days(expires.saturating_sub(inputs.now))
            ),
            (false, None) => "its agent is gone".into(),
        });
        change.revokes = user_of(live).filter(|_| revoke);
        change.diff = Some(unified_diff("Secret", Some(&reviewed(live)), None));
        changes.push(change);
    }
    changes
}

/// Why an existing, fleet-made Secret's user is minted again; `None` when
/// it stands.
fn why_mint(
    live: &Value,
    desired: &DesiredObject,
    permissions: &Permissions,
    inputs: &Inputs<'_>,
) -> Option<String> {
    let held = permissions_of(live);
    let expires = live["metadata"]["annotations"][EXPIRES_ANNOTATION]
        .as_str()
        .and_then(|e| e.parse::<u64>().ok());
    if held.as_ref() != Some(permissions) {
        let changes = match &held {
            Some(held) => render::permissions::changes(held, permissions).join("; "),
            None => "its permissions were not recorded".into(),
        };
        return Some(format!("re-mints the agent's NATS user: it {changes}"));
    }
    let Some(expires) = expires else {
        return Some("re-mints the agent's NATS user: its expiry was not recorded".into());
    };
    let renew_before = inputs.settings.map_or(0, |s| s.renew_before.as_secs());
    if expires <= inputs.now + renew_before {
        let left = expires.saturating_sub(inputs.now);
        return Some(format!(
            "re-mints the agent's NATS user: it expires in {} (renewed {} before)",
            days(left),
            days(renew_before)
        ));
    }
    // Labels and annotations fleet sets, besides what apply records.
    let marks = |object: &Value| {
        let metadata = &object["metadata"];
        let mut annotations = metadata["annotations"].clone();
        if let Some(map) = annotations.as_object_mut() {
            for key in [
                USER_ANNOTATION,
                EXPIRES_ANNOTATION,
                ownership::APPLIED_HASH_ANNOTATION,
            ] {
                map.remove(key);
            }
        }
        (metadata["labels"].clone(), annotations)
    };
    (marks(live) != marks(&desired.body))
        .then(|| "re-mints the agent's NATS user: its labels or annotations change".into())
}

/// A credentials Secret as its diff shows it: its name, labels and
/// annotations, and the permissions its user holds as lists a reviewer
/// reads line by line (not the one-line JSON of the annotation); without
/// what apply records of the user it mints, which changes with every mint.
fn reviewed(object: &Value) -> Value {
    let metadata = &object["metadata"];
    let mut annotations = metadata["annotations"].clone();
    if let Some(map) = annotations.as_object_mut() {
        for key in [
            NATS_PERMISSIONS_ANNOTATION,
            USER_ANNOTATION,
            EXPIRES_ANNOTATION,
        ] {
            map.remove(key);
        }
    }
    let mut shown = serde_json::json!({
        "metadata": {
            "name": metadata["name"],
            "namespace": metadata["namespace"],
            "labels": metadata["labels"],
        },
    });
    if annotations.as_object().is_some_and(|a| !a.is_empty()) {
        shown["metadata"]["annotations"] = annotations;
    }
    if let Some(permissions) = permissions_of(object) {
        shown["nats permissions"] = serde_json::to_value(permissions).unwrap_or_default();
    }
    shown
}

/// The public key of the user a live Secret holds.
fn user_of(live: &Value) -> Option<String> {
    live["metadata"]["annotations"][USER_ANNOTATION]
        .as_str()
        .map(str::to_string)
}

fn ownership_matches(live: &Value, applyset_id: &str) -> bool {
    live["metadata"]["labels"][ownership::PART_OF_LABEL] == applyset_id
}

fn list(subjects: &[String]) -> String {
    if subjects.is_empty() {
        "nothing".into()
    } else {
        subjects.join(", ")
    }
}

fn days(seconds: u64) -> String {
    match seconds / 86_400 {
        0 => format!("{}h", seconds / 3_600),
        days => format!("{days}d"),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;

    const ID: &str = "applyset-x";
    const NOW: u64 = 1_000_000;

    fn desired(publish: &[&str]) -> DesiredObject {
        let permissions = Permissions {
            publish: publish.iter().map(|s| s.to_string()).collect(),
            subscribe: vec!["_INBOX_devops.>".into()],
            respond: false,
        };
        DesiredObject::from_json(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": { "name": "agent-devops-nats", "namespace": "ns",
                          "labels": { "agent.ceo/role": "devops", ownership::PART_OF_LABEL: ID },
                          "annotations": { NATS_PERMISSIONS_ANNOTATION: serde_json::to_string(&permissions).unwrap() } },
            "type": "Opaque",
        }))
    }

    fn minted(desired: &DesiredObject, expires: u64) -> Value {
        let mut live = json!({ "metadata": desired.body["metadata"].clone() });
        live["metadata"]["annotations"][USER_ANNOTATION] = json!("UABC");
        live["metadata"]["annotations"][EXPIRES_ANNOTATION] = json!(expires.to_string());
        live
    }

    fn settings() -> NatsCredentials {
        NatsCredentials {
            account: "A".into(),
            validity: Duration::from_secs(30 * 86_400),
            renew_before: Duration::from_secs(10 * 86_400),
            revoke: false,
        }
    }

    fn planned(
        desired: &[DesiredObject],
        live: BTreeMap<String, Option<Value>>,
        recorded: &[String],
    ) -> Vec<Change> {
        planned_with(&settings(), desired, live, recorded)
    }

    fn planned_with(
        settings: &NatsCredentials,
        desired: &[DesiredObject],
        live: BTreeMap<String, Option<Value>>,
        recorded: &[String],
    ) -> Vec<Change> {
        plan(&Inputs {
            desired,
            live: &live,
            recorded,
            settings: Some(settings),
            applyset_id: ID,
            adopt: false,
            now: NOW,
            label_domain: "agent.ceo",
        })
    }

    #[test]
    fn a_missing_secret_is_minted_a_current_one_stands_and_the_plan_never_holds_creds() {
        let wanted = desired(&["tasks.reviewer.new"]);
        let created = planned(
            std::slice::from_ref(&wanted),
            BTreeMap::from([("agent-devops-nats".into(), None)]),
            &[],
        );
        assert_eq!(created[0].action, Action::Create);
        assert!(
            created[0]
                .reason
                .as_deref()
                .unwrap()
                .contains("publish to tasks.reviewer.new")
        );
        assert_eq!(created[0].agent.as_deref(), Some("devops"));
        assert!(
            created[0]
                .desired
                .as_ref()
                .unwrap()
                .sent()
                .get("data")
                .is_none()
        );

        let live = minted(&wanted, NOW + 20 * 86_400);
        let standing = planned(
            &[wanted],
            BTreeMap::from([("agent-devops-nats".into(), Some(live))]),
            &[],
        );
        assert_eq!(standing[0].action, Action::NoOp);
    }

    #[test]
    fn changed_permissions_and_a_near_expiry_mint_again_and_say_why() {
        let before = desired(&["tasks.reviewer.new"]);
        let live = minted(&before, NOW + 20 * 86_400);
        let after = desired(&["tasks.reviewer.new", "tasks.tester.new"]);
        let widened = planned(
            &[after],
            BTreeMap::from([("agent-devops-nats".into(), Some(live))]),
            &[],
        );
        assert_eq!(widened[0].action, Action::Update);
        assert_eq!(
            widened[0].reason.as_deref(),
            Some(
                "re-mints the agent's NATS user: it may now publish to tasks.tester.new; the previous user stays valid until it expires ([nats_credentials] revoke = false)"
            )
        );

        let expiring = minted(&before, NOW + 5 * 86_400);
        let renewed = planned(
            &[before],
            BTreeMap::from([("agent-devops-nats".into(), Some(expiring))]),
            &[],
        );
        assert_eq!(renewed[0].action, Action::Update);
        assert_eq!(
            renewed[0].reason.as_deref(),
            Some("re-mints the agent's NATS user: it expires in 5d (renewed 10d before)")
        );
    }

    #[test]
    fn a_gone_agents_secret_is_deleted_from_the_parents_record_and_a_foreign_one_is_left() {
        let gone = minted(&desired(&[]), NOW + 3 * 86_400);
        let mut foreign = gone.clone();
        foreign["metadata"]["labels"][ownership::PART_OF_LABEL] = json!("someone-else");
        let changes = planned(
            &[],
            BTreeMap::from([
                ("agent-devops-nats".into(), Some(gone)),
                ("agent-other-nats".into(), Some(foreign)),
            ]),
            &["agent-devops-nats".into(), "agent-other-nats".into()],
        );
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].action, Action::Delete);
        assert!(
            changes[0]
                .reason
                .as_deref()
                .unwrap()
                .contains("valid until it expires, in 3d")
        );
    }

    #[test]
    fn a_secret_fleet_did_not_make_is_not_taken_without_adopt() {
        let wanted = desired(&[]);
        let theirs = json!({ "metadata": { "name": "agent-devops-nats", "labels": {} } });
        let changes = planned(
            &[wanted],
            BTreeMap::from([("agent-devops-nats".into(), Some(theirs))]),
            &[],
        );
        assert_eq!(changes[0].action, Action::Unowned);
    }

    #[test]
    fn with_revoke_a_superseded_or_removed_user_is_revoked_and_a_renewed_one_is_not() {
        let mut settings = settings();
        settings.revoke = true;
        let before = desired(&["tasks.reviewer.new"]);
        let after = desired(&[]);
        let live = BTreeMap::from([
            (
                "agent-devops-nats".into(),
                Some(minted(&before, NOW + 20 * 86_400)),
            ),
            (
                "agent-gone-nats".into(),
                Some(minted(&before, NOW + 20 * 86_400)),
            ),
        ]);
        let narrowed = planned_with(
            &settings,
            std::slice::from_ref(&after),
            live,
            &["agent-gone-nats".into()],
        );
        assert_eq!(narrowed[0].revokes.as_deref(), Some("UABC"));
        assert!(
            narrowed[0]
                .reason
                .as_deref()
                .unwrap()
                .ends_with(", and revokes the previous user")
        );
        assert_eq!(narrowed[1].action, Action::Delete);
        assert_eq!(narrowed[1].revokes.as_deref(), Some("UABC"));

        let expiring = BTreeMap::from([(
            "agent-devops-nats".into(),
            Some(minted(&before, NOW + 86_400)),
        )]);
        let renewed = planned_with(&settings, std::slice::from_ref(&before), expiring, &[]);
        assert_eq!(renewed[0].action, Action::Update);
        assert_eq!(renewed[0].revokes, None);
    }

    #[test]
    fn the_diff_lists_the_permissions_a_reviewer_reads_and_no_mint_records() {
        let before = desired(&["tasks.reviewer.new", "tasks.tester.new"]);
        let live = minted(&before, NOW + 20 * 86_400);
        let after = desired(&["tasks.tester.new"]);
        let changes = planned(
            &[after],
            BTreeMap::from([("agent-devops-nats".into(), Some(live))]),
            &[],
        );
        let diff = changes[0].diff.as_deref().unwrap();
        let changed: Vec<&str> = diff
            .lines()
            .filter(|l| {
                (l.starts_with('+') || l.starts_with('-'))
                    && !l.starts_with("+++")
                    && !l.starts_with("---")
            })
            .collect();
        assert_eq!(changed, ["-  - tasks.reviewer.new"], "{diff}");
    }
}
