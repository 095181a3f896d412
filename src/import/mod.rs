//! import: a live namespace -> a definition that renders it. The pipeline
//! run backwards, and then forwards to check it:
//!
//! 1. read every object of the kinds fleet renders in the namespace (never
//!    a Secret: their names come from references only);
//! 2. recognise the agents (a Deployment `agent-<role>` and the objects fleet
//!    would name after it) and [`derive`] their keys;
//! 3. keep the fewest keys and the profile that render the same
//!    ([`minimal`], by fleet's own loader and renderer);
//! 4. render that, have the API server dry-run create each object (so its
//!    defaults are the server's, not a copy of them), and put what still
//!    differs from the live object in the agent's `patch` ([`residual`]);
//!    then again, until nothing differs or what differs no patch can say.
//!
//! The result is exact by construction where it says so: on the imported
//! namespace `fleet plan --adopt` changes no field but fleet's ownership
//! marks, and what could not be said is listed with why.

pub(crate) mod derive;
pub(crate) mod jetstream;
pub(crate) mod minimal;
pub(crate) mod read;
pub(crate) mod residual;
pub(crate) mod write;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::client::kube::Cluster;
use crate::live::jetstream::LiveJetStream;
use crate::load::decode::{AGENT_KEYS, PATCHABLE_KINDS};
use crate::render::ObjectRef;
use derive::LiveAgent;
use write::{AgentTable, Document, Table};

/// What import made: the definition's text, and what it could not say.
#[derive(Debug, Default)]
pub(crate) struct Imported {
    pub text: String,
    pub agents: Vec<String>,
    /// Objects of the namespace that belong to no agent, with why.
    pub unplaced: Vec<String>,
    /// Differences no key or patch can say: the plan will show them.
    pub unexpressed: Vec<String>,
}

pub(crate) struct Request<'a> {
    pub namespace: &'a str,
    /// Import as this environment's file over an existing fleet.toml.
    pub base: Option<write::Base>,
    /// The JetStream server's streams and their consumers, when import was
    /// given a NATS server to read.
    pub jetstream: Option<&'a LiveJetStream>,
    /// The fleet's name (its ownership marks).
    pub name: &'a str,
    /// Said in the file's first comment.
    pub source: String,
    /// The kube context and NATS server given, which an environment file
    /// records.
    pub kube_context: Option<String>,
    pub nats_url: Option<String>,
}

/// How many times the residual is rendered and checked again.
const ROUNDS: usize = 3;

pub(crate) async fn import(cluster: &Cluster, request: &Request<'_>) -> anyhow::Result<Imported> {
    let live = read::namespace(cluster, request.namespace).await?;
    let agents = derive::agents(&live.objects);
    let roles: Vec<String> = agents.iter().map(|a| a.role.clone()).collect();
    eprintln!(
        "import: {} objects in namespace {}; {} agents ({})",
        live.objects.len(),
        request.namespace,
        agents.len(),
        roles.join(", ")
    );
    let base_fleet = match &request.base {
        Some(base) => Some(base_fleet(base)?),
        None => None,
    };
    let (mut document, streams) = derived(request, &live, &agents, base_fleet.as_ref())?;
    let mut unexpressed = patch_until_exact(cluster, &live, &mut document).await?;
    if unexpressed.is_empty() {
        prune(cluster, &live, &mut document).await?;
        // Checked like the rest: kept only if nothing differs with it.
        let mut hoisted = document.clone();
        hoist_patches(&mut hoisted);
        if hoisted != document && differences(cluster, &live, &hoisted).await?.is_empty() {
            document = hoisted;
        }
    }
    note_unhardened(&mut document);
    let mut unplaced = Vec::new();
    if let Some(live_jetstream) = request.jetstream {
        let (differing, unused) = jetstream_left(&document, live_jetstream, &streams)?;
        unexpressed.extend(differing);
        unplaced.extend(unused);
    }
    unexpressed.sort();
    unexpressed.dedup();
    unplaced.extend(self::unplaced(&live, &claimed(&document, &live)));
    if let (Some(base), Some(fleet)) = (&request.base, &base_fleet) {
        for role in roles
            .iter()
            .filter(|r| !fleet.agents.iter().any(|a| &a.role == *r))
        {
            unplaced.push(format!(
                "agent {role}: not in {}; add it there (`fleet import` without --env writes its table)",
                base.fleet_path.display()
            ));
        }
    }
    Ok(Imported {
        text: document.to_toml(),
        agents: roles,
        unplaced,
        unexpressed,
    })
}

/// The definition the live objects say, with the fewest keys: `[fleet]`
/// (or an environment's `[environment]`), the agents (those of `base` only,
/// when it is given; its others switched off), the streams their consumers
/// read. Returns it with the names of those streams.
fn derived(
    request: &Request<'_>,
    live: &read::LiveNamespace,
    agents: &[LiveAgent<'_>],
    base: Option<&crate::model::Fleet>,
) -> anyhow::Result<(Document, BTreeSet<String>)> {
    let domain = derive::label_domain(agents).unwrap_or_else(|| "agent.ceo".into());
    let mut document = skeleton(request, &domain, live, agents);
    let mut streams = BTreeSet::new();
    for agent in agents {
        if base.is_some_and(|base| !base.agents.iter().any(|a| a.role == agent.role)) {
            continue;
        }
        let table = agent_table(agent, &domain, request.jetstream, &mut streams);
        document.agents.push(table);
    }
    for role in base
        .iter()
        .flat_map(|base| base.agents.iter().map(|a| &a.role))
    {
        if !agents.iter().any(|a| &a.role == role) {
            let mut keys = Table::default();
            keys.set("enabled", Value::from(false));
            document.agents.push(AgentTable {
                role: role.clone(),
                notes: vec![format!(
                    "Not in namespace {}: switched off in this environment",
                    request.namespace
                )],
                keys,
                patches: Vec::new(),
            });
        }
    }
    if let Some(jetstream) = request.jetstream {
        for name in &streams {
            if base.is_some_and(|base| !base.streams.iter().any(|s| &s.name == name)) {
                continue;
            }
            let keys = jetstream::stream_keys(&jetstream[name].config);
            document.streams.push((name.clone(), keys));
        }
        document = minimal::minimal_streams(document).map_err(|problems| {
            anyhow::anyhow!(
                "the streams import derived do not load ({problems}); this is a bug in fleet import"
            )
        })?;
    }
    if base.is_none() {
        hoist_shared(&mut document);
    }
    let mut minimal_agents = Vec::new();
    for agent in &document.agents {
        let minimal = minimal::minimal(&document, agent).map_err(|problems| {
            anyhow::anyhow!(
                "agent {}: the keys import derived do not load ({problems}); this is a bug in fleet import",
                agent.role
            )
        })?;
        minimal_agents.push(explain_profile(minimal));
    }
    document.agents = minimal_agents;
    Ok((document, streams))
}

/// Renders the document, compares each object as the API server makes it
/// with the live one, and puts the difference in the agent's patch; again,
/// up to [`ROUNDS`] times. Returns what no patch could say.
async fn patch_until_exact(
    cluster: &Cluster,
    live: &read::LiveNamespace,
    document: &mut Document,
) -> anyhow::Result<Vec<String>> {
    let mut unexpressed = Vec::new();
    for round in 1..=ROUNDS {
        let differences = differences(cluster, live, document).await?;
        eprintln!(
            "import: round {round}: {} object{} differ{} from fleet's rendering",
            differences.len(),
            if differences.len() == 1 { "" } else { "s" },
            if differences.len() == 1 { "s" } else { "" }
        );
        let mut patched_any = false;
        for (role, id, patch) in differences {
            let patchable = PATCHABLE_KINDS.contains(&id.kind.as_str());
            let agent = role
                .as_ref()
                .and_then(|role| document.agents.iter_mut().find(|a| &a.role == role));
            match agent {
                Some(agent) if patchable && round < ROUNDS => {
                    add_patch(agent, &id.kind, &patch);
                    patched_any = true;
                }
                _ if round == ROUNDS || !patchable => {
                    unexpressed.push(format!("{id}: {}", write::inline(&patch)));
                }
                _ => {}
            }
        }
        if !patched_any {
            break;
        }
    }
    Ok(unexpressed)
}

/// What of JetStream the definition does not say: stream and consumer
/// fields that differ from the live ones, and the streams and consumers no
/// imported agent has.
fn jetstream_left(
    document: &Document,
    live: &LiveJetStream,
    streams: &BTreeSet<String>,
) -> anyhow::Result<(Vec<String>, Vec<String>)> {
    let rendered = minimal::rendered(document).map_err(|problems| {
        anyhow::anyhow!(
            "the imported definition does not load ({problems}); this is a bug in fleet import"
        )
    })?;
    let mut differing = Vec::new();
    for stream in &rendered.jetstream.streams {
        for difference in jetstream::differences(&stream.config, &live[&stream.name].config) {
            differing.push(format!("jetstream stream {}: {difference}", stream.name));
        }
    }
    for consumer in &rendered.jetstream.consumers {
        let live_config = &live[&consumer.stream].consumers[&consumer.name].config;
        for difference in jetstream::differences(&consumer.config, live_config) {
            differing.push(format!(
                "jetstream consumer {}/{}: {difference}",
                consumer.stream, consumer.name
            ));
        }
    }
    let imported: BTreeSet<(&str, &str)> = rendered
        .jetstream
        .consumers
        .iter()
        .map(|c| (c.stream.as_str(), c.name.as_str()))
        .collect();
    let mut unused = Vec::new();
    for (name, stream) in live {
        if !streams.contains(name) {
            unused.push(format!(
                "jetstream stream {name}: no imported agent has a consumer on it"
            ));
            continue;
        }
        for consumer in stream.consumers.keys() {
            if !imported.contains(&(name.as_str(), consumer.as_str())) {
                unused.push(format!(
                    "jetstream consumer {name}/{consumer}: fleet names an agent's consumer <role>-agent, and no imported agent has this one"
                ));
            }
        }
    }
    Ok((differing, unused))
}

/// The fleet.toml an environment is imported for, loaded without it.
fn base_fleet(base: &write::Base) -> anyhow::Result<crate::model::Fleet> {
    let files = crate::load::DirectoryFiles {
        base_dir: base
            .fleet_path
            .parent()
            .unwrap_or(std::path::Path::new("."))
            .to_path_buf(),
    };
    let loaded = crate::load::load_str(&base.fleet_path, &base.fleet_text, None, None, &files);
    match loaded.fleet {
        Some(fleet) if loaded.errors() == 0 => Ok(fleet),
        _ => anyhow::bail!(
            "{} does not load; `fleet validate` says why. Nothing was written.",
            base.fleet_path.display()
        ),
    }
}

/// `[environment]` for an environment file: where it lives.
fn environment_skeleton(request: &Request<'_>, base: &write::Base) -> Document {
    let mut environment = Table::default();
    environment.set("namespace", Value::from(request.namespace));
    if let Some(context) = &request.kube_context {
        environment.set("kube_context", Value::from(context.as_str()));
    }
    // Without its userinfo: credentials are given to fleet, never written.
    if let Some(url) = &request.nats_url {
        environment.set("nats_url", Value::from(without_userinfo(url)));
    }
    Document {
        header: vec![format!(
            "Environment `{}`, imported by `fleet import --env` from {}. Check it with\n`fleet plan --env {0} --adopt`: it should change nothing but fleet's ownership marks.",
            base.environment, request.source
        )],
        base: Some(base.clone()),
        environment,
        ..Document::default()
    }
}

/// `nats://user:pass@host:4222` -> `nats://host:4222` (each of a list).
fn without_userinfo(urls: &str) -> String {
    urls.split(',')
        .map(|url| {
            let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
            let authority_end = rest.find('/').unwrap_or(rest.len());
            let host = match rest[..authority_end].rfind('@') {
                Some(at) => &rest[at + 1..],
                None => rest,
            };
            if scheme.is_empty() {
                host.to_string()
            } else {
                format!("{scheme}://{host}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// `[fleet]` and `[fleet.service_monitor]`, before the agents.
fn skeleton(
    request: &Request<'_>,
    domain: &str,
    live: &read::LiveNamespace,
    agents: &[LiveAgent<'_>],
) -> Document {
    if let Some(base) = &request.base {
        return environment_skeleton(request, base);
    }
    let mut fleet = Table::default();
    fleet.set("name", Value::from(request.name));
    fleet.set("namespace", Value::from(request.namespace));
    if domain != "agent.ceo" {
        fleet.set("label_domain", Value::from(domain));
    }
    fleet.set("manage_namespace", Value::from(false));
    fleet.comment(
        "manage_namespace",
        "The namespace was there before fleet: it stays as its owners made it. Set true to let fleet label it (Pod Security)".into(),
    );
    fleet.set("pod_security", Value::from(live.pod_security.as_str()));
    fleet.comment(
        "pod_security",
        "The level the namespace enforces (none: privileged): the agents are checked against it"
            .into(),
    );
    let monitored = format!("{domain}/monitored");
    let monitor = live.objects.iter().find(|(id, object)| {
        id.kind == "ServiceMonitor"
            && object["spec"]["selector"]["matchLabels"][&monitored] == "true"
    });
    let service_monitor = match monitor {
        Some((id, object)) => {
            let endpoint = &object["spec"]["endpoints"][0];
            let mut table = Table::default();
            table.set("name", Value::from(id.name.as_str()));
            if let Some(interval) = endpoint["interval"].as_str() {
                table.set("interval", Value::from(interval));
            }
            if let Some(path) = endpoint["path"].as_str() {
                table.set("path", Value::from(path));
            }
            Some(table)
        }
        None if live.installed("ServiceMonitor")
            && agents.iter().any(|a| a.objects.contains_key("Service")) =>
        {
            let mut table = Table::default();
            table.set("enabled", Value::from(false));
            Some(table)
        }
        None => None,
    };
    // Where KEDA reads NATS, for the agents it scales.
    let mut environment = Table::default();
    for (key, value) in derive::keda_environment(agents) {
        environment.set(key, value);
    }
    Document {
        header: vec![format!(
            "Imported by `fleet import` from {}. Check it with `fleet plan --adopt`:\nit should change nothing but fleet's ownership marks.",
            request.source
        )],
        environment,
        fleet,
        service_monitor,
        ..Document::default()
    }
}

/// The agent's derived keys as its table; its consumer's settings from
/// JetStream, and its stream added to `streams`.
fn agent_table(
    agent: &LiveAgent<'_>,
    domain: &str,
    live_jetstream: Option<&LiveJetStream>,
    streams: &mut BTreeSet<String>,
) -> AgentTable {
    let mut keys = Table::default();
    for (name, value) in derive::keys(agent, domain) {
        keys.set(&name, value);
    }
    let named = keys
        .get("consumer")
        .and_then(|c| c["stream"].as_str())
        .map(str::to_string);
    let consumer = live_jetstream.and_then(|live| {
        let stream = jetstream::own_consumer_stream(live, &agent.role, named.as_deref())?;
        let config = &live[&stream].consumers[&format!("{}-agent", agent.role)].config;
        Some((stream, config))
    });
    if let Some((stream, config)) = consumer {
        keys.set("consumer", jetstream::consumer_keys(config, &stream));
        order_keys(&mut keys);
        streams.insert(stream);
    } else if keys.get("consumer").is_some() {
        // Without its stream (no NATS server read) fleet cannot render it.
        keys.keys.retain(|k| k.name != "consumer");
        if let Some(Value::Object(autoscaling)) = keys
            .keys
            .iter_mut()
            .find(|k| k.name == "autoscaling")
            .map(|k| &mut k.value)
        {
            autoscaling.shift_remove("pending_per_replica");
        }
    }
    AgentTable {
        role: agent.role.clone(),
        notes: Vec::new(),
        keys,
        patches: Vec::new(),
    }
}

/// An agent's keys in the order of the definition reference (`fleet
/// schema`), so an imported file reads like a hand-written one.
fn order_keys(keys: &mut Table) {
    keys.keys.sort_by_key(|k| {
        AGENT_KEYS
            .iter()
            .position(|name| *name == k.name)
            .unwrap_or(AGENT_KEYS.len())
    });
}

/// Keys every agent gives the same value move to `[defaults]` (with two
/// agents or more): the image, the NATS URL.
fn hoist_shared(document: &mut Document) {
    if document.agents.len() < 2 {
        return;
    }
    for name in ["image", "nats_url"] {
        let values: BTreeSet<String> = document
            .agents
            .iter()
            .map(|a| a.keys.get(name).map(write::inline).unwrap_or_default())
            .collect();
        if values.len() != 1 || values.contains("") {
            continue;
        }
        let value = document.agents[0]
            .keys
            .get(name)
            .cloned()
            .unwrap_or_default();
        document.defaults.set(name, value);
        for agent in &mut document.agents {
            agent.keys.keys.retain(|k| k.name != name);
        }
    }
}

/// Fields every agent's patch of a kind sets alike (removing the tier
/// label that hand-made objects lacked, say) move to `[defaults.patch]`,
/// written once: for a kind every agent renders, each is set by every
/// agent's patch, or changes nothing on its object.
fn hoist_patches(document: &mut Document) {
    if document.agents.len() < 2 {
        return;
    }
    let Ok(rendered) = minimal::rendered(document) else {
        return;
    };
    let role_label = role_label(document);
    for kind in PATCHABLE_KINDS {
        let objects: Vec<(usize, &Value)> = document
            .agents
            .iter()
            .enumerate()
            .filter_map(|(at, agent)| {
                let object = rendered.kubernetes.iter().find(|o| {
                    o.id.kind == *kind
                        && o.body["metadata"]["labels"][&role_label] == agent.role.as_str()
                })?;
                Some((at, &object.body))
            })
            .collect();
        // A patch in [defaults] is every agent's: each must render the kind.
        if objects.len() < document.agents.len() {
            continue;
        }
        let patch_of = |agent: &AgentTable| {
            agent
                .patches
                .iter()
                .find(|(k, _)| k == kind)
                .map(|(_, patch)| patch.clone())
        };
        let Some(first) = objects
            .iter()
            .find_map(|(at, _)| patch_of(&document.agents[*at]))
        else {
            continue;
        };
        let mut shared = serde_json::Map::new();
        for (path, value) in map_leaves(&first) {
            let single = nested(&path, value.clone());
            let mut setting = 0;
            let everywhere = objects.iter().all(|(at, object)| {
                let sets = patch_of(&document.agents[*at])
                    .is_some_and(|patch| value_at(&patch, &path) == Some(&value));
                setting += usize::from(sets);
                sets || {
                    let mut changed = (*object).clone();
                    crate::render::patch::merge(&mut changed, &single);
                    &changed == *object
                }
            });
            if everywhere && setting >= 2 {
                insert_path(&mut shared, &path, value);
                for agent in &mut document.agents {
                    if let Some((_, patch)) = agent.patches.iter_mut().find(|(k, _)| k == kind) {
                        remove_path(patch, &path);
                    }
                    agent
                        .patches
                        .retain(|(_, patch)| patch.as_object().is_some_and(|m| !m.is_empty()));
                }
            }
        }
        if !shared.is_empty() {
            document
                .default_patches
                .push((kind.to_string(), Value::Object(shared)));
        }
    }
}

/// Paths through maps down to a value that is not one (or is empty, or a
/// deletion), with that value.
fn map_leaves(patch: &Value) -> Vec<(Vec<String>, Value)> {
    fn walk(value: &Value, path: &mut Vec<String>, out: &mut Vec<(Vec<String>, Value)>) {
        match value.as_object() {
            Some(map) if !map.is_empty() && !crate::render::patch::deletes(value) => {
                for (key, value) in map {
                    path.push(key.clone());
                    walk(value, path, out);
                    path.pop();
                }
            }
            _ => out.push((path.clone(), value.clone())),
        }
    }
    let mut out = Vec::new();
    walk(patch, &mut Vec::new(), &mut out);
    out
}

/// Sets `value` at `path`, making the maps on the way.
fn insert_path(map: &mut serde_json::Map<String, Value>, path: &[String], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut target = map;
    for key in parents {
        let entry = target
            .entry(key.clone())
            .or_insert_with(|| Value::Object(serde_json::Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(serde_json::Map::new());
        }
        target = entry.as_object_mut().expect("made a map above");
    }
    target.insert(last.clone(), value);
}

fn nested(path: &[String], value: Value) -> Value {
    path.iter().rev().fold(value, |inner, key| {
        Value::Object(serde_json::Map::from_iter([(key.clone(), inner)]))
    })
}

fn value_at<'a>(value: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter()
        .try_fold(value, |at, key| at.as_object()?.get(key))
}

/// Removes the value at `path` and the maps it leaves empty.
fn remove_path(value: &mut Value, path: &[String]) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    let Some(map) = value.as_object_mut() else {
        return;
    };
    if rest.is_empty() {
        map.shift_remove(first);
        return;
    }
    if let Some(inner) = map.get_mut(first) {
        remove_path(inner, rest);
        if inner.as_object().is_some_and(|m| m.is_empty()) {
            map.shift_remove(first);
        }
    }
}

/// Says where a patch undoes fleet's hardening (the `restricted` Pod
/// Security Standard's settings, which hand-made pods often lack), so a
/// reader knows what deleting those lines would do.
fn note_unhardened(document: &mut Document) {
    let removes = |patch: &Value| {
        let pod = &patch["spec"]["template"]["spec"];
        let seccomp = crate::render::patch::deletes(&pod["securityContext"]["seccompProfile"]);
        let container = pod["containers"].as_array().is_some_and(|containers| {
            containers.iter().any(|c| {
                c["name"] == "agent" && crate::render::patch::deletes(&c["securityContext"])
            })
        });
        seccomp || container
    };
    let by_default = document
        .default_patches
        .iter()
        .any(|(kind, patch)| kind == "Deployment" && removes(patch));
    for agent in &mut document.agents {
        let own = agent
            .patches
            .iter()
            .any(|(kind, patch)| kind == "Deployment" && removes(patch));
        if !(own || by_default) {
            continue;
        }
        let note = "Its pods are not hardened as fleet's are by default (the restricted Pod Security Standard): the Deployment's patch removes the seccomp profile or the container's securityContext, as the live pods have them. Remove those lines to harden it".to_string();
        if agent.keys.get("security").is_some() {
            agent.keys.comment("security", note);
        } else {
            agent.notes.push(note);
        }
    }
}

/// Says how the profile was picked: nothing in the live objects names one.
fn explain_profile(mut minimal: AgentTable) -> AgentTable {
    let Some(profile) = minimal.keys.get("profile").and_then(Value::as_str) else {
        return minimal;
    };
    let comment = if minimal.keys.get("resources").is_some() {
        format!(
            "Guessed: the profile nearest its requests and limits ({profile}); `resources` says what differs"
        )
    } else {
        format!("Guessed from its requests and limits, which are the {profile} profile's")
    };
    minimal.keys.comment("profile", comment);
    minimal
}

/// Lays `patch` into the agent's patch of `kind`.
fn add_patch(agent: &mut AgentTable, kind: &str, patch: &Value) {
    match agent.patches.iter_mut().find(|(k, _)| k == kind) {
        Some((_, existing)) => crate::render::patch::merge(existing, patch),
        None => agent.patches.push((kind.to_string(), patch.clone())),
    }
    // In the order fleet renders the kinds.
    agent
        .patches
        .sort_by_key(|(kind, _)| PATCHABLE_KINDS.iter().position(|k| k == kind));
}

/// Each rendered object that exists live and differs from it once the
/// server has made it: its agent's role, its identity and the residual.
async fn differences(
    cluster: &Cluster,
    live: &read::LiveNamespace,
    document: &Document,
) -> anyhow::Result<Vec<(Option<String>, ObjectRef, Value)>> {
    let rendered = minimal::rendered(document).map_err(|problems| {
        anyhow::anyhow!(
            "the imported definition does not load ({problems}); this is a bug in fleet import"
        )
    })?;
    let mut out = Vec::new();
    let role_label = role_label(document);
    for object in &rendered.kubernetes {
        let Some((_, live_object)) = derive::find(&live.objects, &object.id.kind, &object.id.name)
        else {
            continue;
        };
        let Some(server) = read::as_created(cluster, live, object).await? else {
            continue;
        };
        let kind = &object.id.kind;
        let live_form = read::importable(kind, live_object, &role_label, &object.body);
        let server_form = read::importable(kind, &server, &role_label, &object.body);
        if let Some(patch) = residual::residual(&live_form, &server_form) {
            let role = object.body["metadata"]["labels"][&role_label]
                .as_str()
                .map(str::to_string);
            out.push((role, object.id.clone(), patch));
        }
    }
    Ok(out)
}

/// Drops each field of the agents' patches that the API server would
/// default to the same value anyway (a sidecar's `terminationMessagePath`,
/// a variable's `fieldRef.apiVersion`): one dry run per field, kept only
/// when the object still comes out as the live one.
async fn prune(
    cluster: &Cluster,
    live: &read::LiveNamespace,
    document: &mut Document,
) -> anyhow::Result<()> {
    let role_label = role_label(document);
    for a in 0..document.agents.len() {
        for p in 0..document.agents[a].patches.len() {
            let kind = document.agents[a].patches[p].0.clone();
            for leaf in patch_leaves(&document.agents[a].patches[p].1) {
                let mut candidate = document.clone();
                remove_leaf(&mut candidate.agents[a].patches[p].1, &leaf);
                let role = &candidate.agents[a].role;
                let Ok(rendered) = minimal::rendered(&candidate) else {
                    continue;
                };
                let Some(object) = rendered.kubernetes.iter().find(|o| {
                    o.id.kind == kind && o.body["metadata"]["labels"][&role_label] == role.as_str()
                }) else {
                    continue;
                };
                let Some((_, live_object)) =
                    derive::find(&live.objects, &object.id.kind, &object.id.name)
                else {
                    continue;
                };
                // Refused (the field was required after all), or not read:
                // the field stays, which is always exact.
                let Ok(Some(server)) = read::as_created(cluster, live, object).await else {
                    continue;
                };
                let same = residual::residual(
                    &read::importable(&kind, live_object, &role_label, &object.body),
                    &read::importable(&kind, &server, &role_label, &object.body),
                )
                .is_none();
                if same {
                    *document = candidate;
                }
            }
        }
    }
    Ok(())
}

/// A step into a patch: a map's key or a list's item.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Key(String),
    Item(usize),
}

/// The fields a patch sets that a dry run may show to be defaults: values
/// that are neither maps nor lists, nor an item's `name`, nor a deletion.
fn patch_leaves(patch: &Value) -> Vec<Vec<Step>> {
    fn walk(value: &Value, path: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
        match value {
            Value::Object(_) if crate::render::patch::deletes(value) => {}
            Value::Object(map) if map.is_empty() => out.push(path.clone()),
            Value::Object(map) => {
                for (key, value) in map {
                    if key == "name" && matches!(path.last(), Some(Step::Item(_))) {
                        continue;
                    }
                    path.push(Step::Key(key.clone()));
                    walk(value, path, out);
                    path.pop();
                }
            }
            Value::Array(items) => {
                for (at, item) in items.iter().enumerate() {
                    path.push(Step::Item(at));
                    walk(item, path, out);
                    path.pop();
                }
            }
            _ => out.push(path.clone()),
        }
    }
    let mut out = Vec::new();
    walk(patch, &mut Vec::new(), &mut out);
    // Later fields first: removing one leaves earlier paths as they were.
    out.reverse();
    out
}

/// Removes the field at `path`, and the maps it leaves empty (but a list
/// item, which keeps its name).
fn remove_leaf(value: &mut Value, path: &[Step]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut target = &mut *value;
    for step in parents {
        target = match step {
            Step::Key(key) => &mut target[key.as_str()],
            Step::Item(at) => &mut target[*at],
        };
    }
    if let (Step::Key(key), Some(map)) = (last, target.as_object_mut()) {
        map.shift_remove(key);
    }
    // Empty maps left behind go too, up to the first non-empty one.
    for depth in (1..path.len()).rev() {
        let (last, parents) = path[..depth].split_last().expect("depth >= 1");
        let mut parent = &mut *value;
        for step in parents {
            parent = match step {
                Step::Key(key) => &mut parent[key.as_str()],
                Step::Item(at) => &mut parent[*at],
            };
        }
        if let Step::Key(key) = last
            && parent[key.as_str()]
                .as_object()
                .is_some_and(|m| m.is_empty())
            && let Some(map) = parent.as_object_mut()
        {
            map.shift_remove(key);
        }
    }
}

/// `<label_domain>/role`.
fn role_label(document: &Document) -> String {
    document
        .fleet
        .get("label_domain")
        .and_then(Value::as_str)
        .unwrap_or("agent.ceo")
        .to_string()
        + "/role"
}

/// The live objects the definition renders.
fn claimed(document: &Document, live: &read::LiveNamespace) -> BTreeSet<ObjectRef> {
    let Ok(rendered) = minimal::rendered(document) else {
        return BTreeSet::new();
    };
    rendered
        .kubernetes
        .iter()
        .filter_map(|object| {
            derive::find(&live.objects, &object.id.kind, &object.id.name).map(|(id, _)| id.clone())
        })
        .collect()
}

/// The objects no agent claims, each with why.
fn unplaced(live: &read::LiveNamespace, claimed: &BTreeSet<ObjectRef>) -> Vec<String> {
    let mut out = Vec::new();
    let mut by_kind: BTreeMap<&str, Vec<&ObjectRef>> = BTreeMap::new();
    for id in live.objects.keys().filter(|id| !claimed.contains(*id)) {
        by_kind.entry(id.kind.as_str()).or_default().push(id);
    }
    for (kind, ids) in by_kind {
        for id in ids {
            let object = &live.objects[id];
            let why = if let Some(owner) = object["metadata"]["ownerReferences"][0].as_object() {
                format!(
                    "made by {} {} (its controller keeps it)",
                    owner["kind"].as_str().unwrap_or("?"),
                    owner["name"].as_str().unwrap_or("?")
                )
            } else if derive::agents(&live.objects).iter().any(|agent| {
                derive::agent_object_names(&agent.role)
                    .iter()
                    .any(|(k, n)| *k == kind && *n == id.name)
            }) {
                "an agent's name, but nothing in the agent's keys renders it (its Deployment's definition does not use it)".into()
            } else if kind == "Deployment" {
                "its name is not agent-<role>: fleet names an agent's Deployment so; rename it (a new Deployment) or leave it outside fleet".into()
            } else {
                let names: Vec<String> = derive::agent_object_names("<role>")
                    .into_iter()
                    .filter(|(k, _)| *k == kind)
                    .map(|(_, name)| name)
                    .collect();
                if names.is_empty() {
                    "fleet renders no object of this kind for an agent".into()
                } else {
                    format!(
                        "no agent has it: fleet names an agent's {kind} {}",
                        names.join(" or ")
                    )
                }
            };
            out.push(format!("{id}: {why}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recorded_nats_url_keeps_no_credentials() {
        assert_eq!(
            without_userinfo("nats://fleet:s3cret@a:4222,tls://token@b:4222/x,c:4222"),
            "nats://a:4222,tls://b:4222/x,c:4222"
        );
    }
}
