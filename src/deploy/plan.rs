//! The plan half of the sequence: load, render, connect, lock, read live
//! state, plan both systems, notes and provenance.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{Definition, Nats, PlanOptions, workflow};
use crate::client::jetstream::{Connection, JetStream};
use crate::client::kube::Cluster;
use crate::live::kube::{LiveState, MetadataSuffices};
use crate::lock::{self, DeployLock};
use crate::plan::{self, FORMAT_VERSION, Plan};
use crate::render::ObjectRef;
use crate::{ownership, provenance, render};

/// A plan with what it was made from, for `apply` to carry out.
pub(crate) struct Planned {
    pub plan: Plan,
    pub cluster: Cluster,
    pub live: LiveState,
    pub jetstream: Option<JetStream>,
    /// Objects whose dry run the API server refused this identity, with its
    /// reason: planned client-side, and apply would be refused too.
    pub refused: Vec<(ObjectRef, String)>,
    /// The deploy lock, when planning for apply.
    pub lock: Option<DeployLock>,
    /// The rendering the plan was made from: the largest thing a plan
    /// holds, handed back so that a command about to exit need not free it.
    #[allow(dead_code, reason = "held, not read")]
    pub rendered: Arc<render::Rendered>,
    /// `[rollout]`: the waves apply goes in, if any.
    pub rollout: Option<crate::model::Rollout>,
    /// `[nats_credentials]`: how apply mints the agents' users, if it does.
    pub nats_credentials: Option<crate::model::NatsCredentials>,
}

/// The pipeline up to the plan, for `fleet plan`: who holds the deploy lock
/// is only reported. `None` when the definition has errors (they are
/// printed).
pub(crate) async fn plan(
    definition: &Definition,
    options: &PlanOptions,
) -> anyhow::Result<Option<Planned>> {
    make_plan(definition, options, None).await
}

/// The pipeline up to the plan. `None` when the definition has errors (they
/// are printed). With `lock` (apply), the deploy lock is taken before the
/// live state is read; without (plan), who holds it is only reported.
pub(super) async fn make_plan(
    definition: &Definition,
    plan_options: &PlanOptions,
    lock: Option<lock::Options>,
) -> anyhow::Result<Option<Planned>> {
    workflow::announce_secrets(&plan_options.nats, None);
    let Some(fleet) = definition.load()? else {
        return Ok(None);
    };
    workflow::announce_secrets(&Nats::default(), fleet.endpoints.nats_url.as_deref());
    // Rendering runs beside connecting and reading: the reads need the
    // desired objects only once the first LIST pages are in.
    let fleet = Arc::new(fleet);
    let destroy = plan_options.destroy;
    let rendering = if destroy {
        // A tear-down wants nothing: of the rendering, only what is read by
        // name (the namespace and the ApplySet parent) is read, to be
        // destroyed when fleet's; the rest is found by its labels.
        let mut rendered = render::render(&fleet).stamped();
        rendered.kubernetes.retain(|o| {
            crate::live::kube::managed_kind(&o.id.api_version, &o.id.kind)
                .is_some_and(|k| k.found == crate::live::kube::Found::ByName)
        });
        rendered.jetstream.consumers.clear();
        render::Rendering::ready(Arc::new(rendered))
    } else {
        render::Rendering::start(Arc::clone(&fleet))
    };
    // NATS first: a server that is down or refuses us fails the plan before
    // anything else is read, let alone changed.
    let nats_url = plan_options
        .nats
        .url
        .clone()
        .or_else(|| fleet.endpoints.nats_url.clone());
    let jetstream = match &nats_url {
        Some(url) => Some(JetStream::connect(&nats_connection(&plan_options.nats, url)?).await?),
        None if fleet.uses_jetstream() => anyhow::bail!(
            "the fleet defines JetStream streams or consumers but no NATS URL is set: set `nats_url` under [environment], --nats-url or FLEET_NATS_URL"
        ),
        None => None,
    };
    let cluster = Cluster::connect(&fleet.endpoints).await?;
    let lock = match lock {
        Some(options) if destroy => Some(
            DeployLock::before_destroy(
                &cluster,
                &fleet.name,
                &fleet.namespace,
                options,
                Box::new(|event| anstream::eprintln!("{event}")),
            )
            .await?,
        ),
        Some(options) => Some(
            DeployLock::before_plan(
                &cluster,
                &fleet.name,
                &fleet.namespace,
                options,
                Box::new(|event| anstream::eprintln!("{event}")),
            )
            .await?,
        ),
        None => None,
    };
    workflow::group("fleet: reading the cluster and JetStream");
    let applyset_id = ownership::applyset_id(
        &ownership::applyset_parent_name(&fleet.name),
        &fleet.namespace,
    );
    let concurrency = plan_options.concurrency;
    let owner = ownership::jetstream_owner(&fleet.name, &fleet.namespace);
    let desired_streams: Vec<&str> = fleet.streams.iter().map(|s| s.name.as_str()).collect();
    // Both systems at once: the JetStream reads take as long as a LIST.
    let read_options = crate::live::kube::ReadOptions {
        namespace: &fleet.namespace,
        applyset_id: &applyset_id,
        concurrency,
        // Nothing is desired: nothing to prove unchanged, and what is
        // destroyed is shown whole.
        // The proof of no change: what it proves unchanged is planned
        // without a dry run, so only its metadata is needed.
        metadata_suffices: (!plan_options.dry_run_all && !destroy)
            .then_some(&plan::unchanged::proven_unchanged as &MetadataSuffices),
    };
    let read_kube = crate::live::kube::read(&cluster, &rendering, &read_options);
    let read_jetstream = async {
        match &jetstream {
            Some(js) => tokio::try_join!(
                crate::live::jetstream::read(js, &owner, &desired_streams),
                crate::live::jetstream::account(js),
            )
            .map(Some),
            None => Ok(None),
        }
    };
    // Who the cluster is and who holds the lock are read meanwhile too.
    let read_identity = crate::live::kube::identity(&cluster);
    let read_lock = async {
        match &lock {
            Some(_) => Ok(None),
            None => Ok(Some(
                lock::standing(&cluster, &fleet.name, &fleet.namespace).await,
            )),
        }
    };
    let (mut live, live_js, identity, standing) =
        tokio::try_join!(read_kube, read_jetstream, read_identity, read_lock)?;
    let rendered = rendering.done().await?;
    let role_label = format!("{}/role", fleet.label_domain);
    let parent_id = rendered
        .kubernetes
        .iter()
        .find(|o| o.is_applyset_parent())
        .map(|o| o.id.clone());
    let targeting = if plan_options.selection.is_everything() {
        None
    } else {
        Some(targeted_agents(
            &fleet,
            &live,
            &role_label,
            &plan_options.selection,
        )?)
    };
    // A targeted plan compares only its agents' objects (and the shared ones
    // they need): the others' are neither changed nor pruned.
    if let Some(targeting) = &targeting {
        live.owned.retain(|_, body| {
            body["metadata"]["labels"][&role_label]
                .as_str()
                .is_none_or(|role| targeting.agents.iter().any(|a| a == role))
        });
    }
    let targeted_desired = targeting.as_ref().map(|targeting| {
        let live_parent = parent_id.as_ref().and_then(|id| live.owned.get(id));
        plan::selection::desired(
            &rendered.kubernetes,
            &targeting.agents,
            &role_label,
            live_parent,
        )
    });
    let desired = targeted_desired.as_deref().unwrap_or(&rendered.kubernetes);
    if destroy {
        let kind = crate::client::kube::lease_kind();
        live.kinds.insert(
            (
                kind.resource.api_version.clone(),
                kind.resource.kind.clone(),
            ),
            kind,
        );
    }
    let imperative_managers = plan::kube::IMPERATIVE_MANAGERS
        .iter()
        .map(|m| m.to_string())
        .chain(fleet.imperative_managers.iter().cloned())
        .collect();
    let options = plan::kube::Options {
        concurrency,
        force_conflicts: plan_options.force_conflicts,
        adopt: plan_options.adopt,
        imperative_managers,
    };
    if destroy {
        anstream::eprintln!(
            "fleet: read {} live objects; planning the destruction of fleet's",
            live.owned.len() + live.unowned.len(),
        );
    } else {
        anstream::eprintln!(
            "fleet: read {} live objects; planning {} desired ones",
            live.owned.len() + live.unowned.len(),
            desired.len()
        );
    }
    // A tear-down takes nothing for drift: everything goes.
    let inventory_unchanged =
        !destroy && plan::kube::inventory_unchanged(&rendered.kubernetes, &live);
    let wiring = if destroy {
        crate::live::kube::WiringState::default()
    } else {
        crate::live::kube::read_wiring(&cluster, desired, &live.served_groups).await
    };
    let mut teardown_notes = Vec::new();
    let kube_plan = if destroy {
        let lease_exists = match (&lock, &standing) {
            (Some(lock), _) => lock.lease_existed(),
            (None, Some(Ok(standing))) => standing.exists(),
            (None, _) => false,
        };
        let lease = ObjectRef {
            api_version: "coordination.k8s.io/v1".into(),
            kind: "Lease".into(),
            namespace: Some(fleet.namespace.clone()),
            name: lock::lease_name(&fleet.name),
        };
        let namespace_is_fleets = live
            .owned
            .keys()
            .any(|id| id.kind == "Namespace" && id.name == fleet.namespace);
        let residents = if namespace_is_fleets {
            Some(crate::live::kube::residents(&cluster, &fleet.namespace, concurrency).await)
        } else {
            None
        };
        let teardown = plan::destroy::Teardown {
            namespace: &fleet.namespace,
            applyset_id: &applyset_id,
            manages_namespace: rendered.kubernetes.iter().any(|o| o.id.kind == "Namespace"),
            lease: lease_exists.then_some(lease),
            residents,
        };
        let (planned, notes) = plan::destroy::plan(&cluster, &live, &teardown, concurrency).await;
        teardown_notes = notes;
        planned
    } else {
        plan::kube::plan(&cluster, desired, &live, &options, inventory_unchanged).await?
    };
    if !destroy {
        anstream::eprintln!(
            "fleet: {} objects unchanged since fleet's last apply, {} dry-run on the API server",
            kube_plan.proven_unchanged,
            kube_plan.dry_runs
        );
    }
    // First among the notes: it qualifies the whole plan.
    let mut notes: Vec<String> = plan::kube::lower_fidelity_note(&kube_plan)
        .into_iter()
        .chain(plan::kube::before_namespace_note(
            &kube_plan,
            &fleet.namespace,
        ))
        .collect();
    let refused = kube_plan.refused;
    let mut changes = kube_plan.changes;
    if let (Some(js), Some((live_js, account))) = (&jetstream, &live_js) {
        let options = plan::jetstream::Options {
            owner: &owner,
            server: js.server_version,
            clustered: js.clustered,
            adopt: plan_options.adopt,
            inventory_unchanged,
            allow_destroy: plan_options.allow_destroy,
            account: Some(account),
            destroy,
        };
        let nothing = render::jetstream::DesiredJetStream {
            streams: Vec::new(),
            consumers: Vec::new(),
        };
        let desired = if destroy {
            &nothing
        } else {
            &rendered.jetstream
        };
        changes.extend(plan::jetstream::plan(desired, live_js, &options));
    }
    changes.extend(
        credentials_changes(
            &cluster,
            &fleet,
            &rendered,
            &live,
            &applyset_id,
            plan_options.adopt,
            destroy,
        )
        .await?,
    );
    workflow::end_group();
    if destroy {
        plan::destroy::sort(&mut changes);
    } else {
        changes.sort_by(|a, b| (a.wave, &a.target).cmp(&(b.wave, &b.target)));
    }
    notes.extend(teardown_notes);
    plan::attribute_agents(&mut changes, &agents_by_target(&fleet, &rendered, &live));
    if let (Some(targeting), Some(parent)) = (&targeting, &parent_id) {
        let streams = fleet
            .agents
            .iter()
            .filter(|agent| targeting.agents.contains(&agent.role))
            .flat_map(|agent| agent.all_consumers().map(|c| c.stream.clone()))
            .collect();
        changes = plan::selection::keep(changes, &targeting.agents, parent, &streams);
        notes.push(format!(
            "this plan is targeted ({}): it compares only the objects and consumers of agents {}, and of what they share only the namespace, the ApplySet parent and a missing stream they consume from, so the fleet as a whole may still differ from its definition; `fleet plan` without --agent, --exclude or --select shows all of it",
            targeting.selection.flags(),
            targeting.agents.join(", "),
        ));
    }
    notes.extend(
        live.missing_kinds
        .iter()
        .filter(|(_, kind)| rendered.kubernetes.iter().any(|o| &o.id.kind == kind))
        .map(|(api_version, kind)| {
            format!(
                "{kind} ({api_version}) is not installed in the cluster: its objects are skipped"
            )
        }),
    );
    notes.extend(live.unlistable_kinds.iter().map(|(api_version, kind)| {
        format!(
            "{kind} ({api_version}) is not listed: this identity may not list it, and the fleet renders and records none (`fleet rbac` prints the rights to read it)"
        )
    }));
    if !destroy {
        notes.extend(plan::wiring::notes(
            desired,
            &live.served_groups,
            &live.missing_kinds,
            &wiring,
        ));
        if let Some((live_js, _)) = &live_js {
            notes.extend(plan::wiring::triggers_without_their_consumer(
                desired, &changes, live_js,
            ));
        }
    }
    let writes = changes.iter().any(|c| c.action != plan::Action::NoOp);
    if let Some(rollout) = fleet.rollout.as_ref().filter(|_| !destroy && writes) {
        notes.push(plan::waves::note(rollout));
    }
    notes.extend(identity.note());
    let live_parent = rendered
        .kubernetes
        .iter()
        .find(|o| o.is_applyset_parent())
        .and_then(|parent| live.owned.get(&parent.id));
    let provenance = provenance::of_plan(&definition.file, live_parent, identity)?;
    let held_lock = match standing {
        None => None,
        Some(Ok(standing)) => standing.holder,
        Some(Err(err)) => {
            notes.push(format!("the deploy lock could not be read: {err:#}"));
            None
        }
    };
    let plan = Plan {
        format_version: FORMAT_VERSION,
        fleet: fleet.name.clone(),
        environment: fleet.environment.clone(),
        namespace: fleet.namespace.clone(),
        kube_context: cluster.context.clone(),
        // Without userinfo: the plan is printed, saved and uploaded.
        nats_url: jetstream.as_ref().map(|js| crate::redact::url(&js.url)),
        provenance,
        lock: held_lock,
        changes,
        drift_only: false,
        destroy,
        targeting,
        notes,
    };
    Ok(Some(Planned {
        plan,
        cluster,
        live,
        jetstream,
        refused,
        lock,
        rendered,
        rollout: fleet.rollout.clone(),
        nats_credentials: fleet.nats_credentials.clone(),
    }))
}

/// The agents' NATS credentials Secrets: minted, renewed, or deleted with
/// their agent ([`plan::credentials`]), by their metadata read by name.
async fn credentials_changes(
    cluster: &Cluster,
    fleet: &crate::model::Fleet,
    rendered: &render::Rendered,
    live: &LiveState,
    applyset_id: &str,
    adopt: bool,
    destroy: bool,
) -> anyhow::Result<Vec<plan::Change>> {
    let live_parent = rendered
        .kubernetes
        .iter()
        .find(|o| o.is_applyset_parent())
        .and_then(|parent| live.owned.get(&parent.id));
    let recorded = plan::credentials::recorded(live_parent);
    let desired: &[render::DesiredObject] = if destroy { &[] } else { &rendered.credentials };
    if desired.is_empty() && recorded.is_empty() {
        return Ok(Vec::new());
    }
    let names = desired
        .iter()
        .map(|d| d.id.name.clone())
        .chain(recorded.iter().cloned());
    let live_secrets = plan::credentials::read(cluster, &fleet.namespace, names).await?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Ok(plan::credentials::plan(&plan::credentials::Inputs {
        desired,
        live: &live_secrets,
        recorded: &recorded,
        settings: fleet.nats_credentials.as_ref(),
        applyset_id,
        adopt,
        now,
        label_domain: &fleet.label_domain,
    }))
}

/// The agents a targeted plan covers: of the definition, by their labels,
/// and removed ones (their objects still live) by role.
fn targeted_agents(
    fleet: &crate::model::Fleet,
    live: &LiveState,
    role_label: &str,
    selection: &plan::selection::Selection,
) -> anyhow::Result<plan::selection::Targeting> {
    let defined: BTreeMap<String, BTreeMap<String, String>> = fleet
        .agents
        .iter()
        .map(|agent| (agent.role.clone(), plan::selection::agent_labels(agent)))
        .collect();
    let removed = live
        .owned
        .values()
        .filter_map(|body| body["metadata"]["labels"][role_label].as_str())
        .filter(|role| !defined.contains_key(*role))
        .map(str::to_string)
        .collect();
    plan::selection::resolve(selection, &defined, &removed)
        .map_err(|why| anyhow::anyhow!("{why:#}; nothing was changed"))
}

/// The agent each object, stream or consumer belongs to, by the role label
/// fleet puts on an agent's objects (desired, or live for what is destroyed)
/// and by the agents' consumers.
fn agents_by_target(
    fleet: &crate::model::Fleet,
    rendered: &render::Rendered,
    live: &LiveState,
) -> BTreeMap<plan::Target, String> {
    let role_label = format!("{}/role", fleet.label_domain);
    let role = |body: &serde_json::Value| {
        body["metadata"]["labels"][&role_label]
            .as_str()
            .map(str::to_string)
    };
    let desired = rendered
        .kubernetes
        .iter()
        .filter_map(|o| Some((plan::Target::Kubernetes(o.id.clone()), role(&o.body)?)));
    let destroyed = live
        .owned
        .iter()
        .filter_map(|(id, body)| Some((plan::Target::Kubernetes(id.clone()), role(body)?)));
    let consumers = fleet.agents.iter().flat_map(|agent| {
        agent.all_consumers().map(|consumer| {
            let target = plan::Target::Consumer {
                stream: consumer.stream.clone(),
                name: consumer.name.clone(),
            };
            (target, agent.role.clone())
        })
    });
    destroyed.chain(desired).chain(consumers).collect()
}

pub(crate) fn nats_connection(nats: &Nats, url: &str) -> anyhow::Result<Connection> {
    let given = &nats.options;
    // Half a pair would be silently ignored by the client: refuse it.
    let pairs = [
        (
            "--nats-user (FLEET_NATS_USER)",
            given.user.is_some(),
            "--nats-password (FLEET_NATS_PASSWORD)",
            given.password.is_some(),
        ),
        (
            "--nats-tls-cert (FLEET_NATS_TLS_CERT)",
            given.tls_cert.is_some(),
            "--nats-tls-key (FLEET_NATS_TLS_KEY)",
            given.tls_key.is_some(),
        ),
    ];
    for (one, has_one, other, has_other) in pairs {
        if has_one != has_other {
            let (given, missing) = if has_one { (one, other) } else { (other, one) };
            anyhow::bail!(
                "{given} is set but {missing} is not: give both or neither. Nothing was changed."
            );
        }
    }
    Ok(Connection {
        url: url.to_string(),
        options: given.clone(),
    })
}
