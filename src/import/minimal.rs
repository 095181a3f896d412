//! The fewest keys that say the same: an agent's derived keys less every
//! key (down to the leaves of its tables) whose removal renders the same
//! objects, and the profile that leaves fewest. Pure: fleet's own loader
//! and renderer decide what "the same" is, so the defaults are never
//! copied here.

use std::path::Path;

use serde_json::Value;

use super::write::{AgentTable, Document, Table};
use crate::load::{self, decode::ConfigFiles};
use crate::quantity::{Amount, Place};
use crate::render;

/// The built-in profiles, tried in turn.
pub(crate) const PROFILES: &[&str] = &["cognitive", "executor", "observer"];

/// Config is written inline: no file is ever read (but those an existing
/// fleet.toml names, beside it).
struct NoFiles;

impl ConfigFiles for NoFiles {
    fn read(&self, path: &str) -> Result<String, String> {
        Err(format!("{path}: an imported definition names no files"))
    }
}

/// What `document` renders (Kubernetes objects and JetStream), or the
/// loader's diagnostics when it does not load.
pub(crate) fn rendered(document: &Document) -> anyhow::Result<render::Rendered> {
    let text = document.to_toml();
    let loaded = match &document.base {
        None => load::load_str(Path::new("fleet.toml"), &text, None, None, &NoFiles),
        Some(base) => {
            let overlay = load::environment_path(&base.fleet_path, &base.environment);
            let files = load::DirectoryFiles {
                base_dir: base
                    .fleet_path
                    .parent()
                    .unwrap_or(Path::new("."))
                    .to_path_buf(),
            };
            load::load_str(
                &base.fleet_path,
                &base.fleet_text,
                Some((&overlay, &text)),
                Some(&base.environment),
                &files,
            )
        }
    };
    let errors = loaded.errors();
    let Some(fleet) = loaded.fleet.filter(|_| errors == 0) else {
        let problems: Vec<String> = loaded
            .diagnostics
            .iter()
            .map(|d| d.message.clone())
            .collect();
        anyhow::bail!("{}", problems.join("; "));
    };
    Ok(render::render(&fleet))
}

/// What `document` renders, quantities by value, for comparing.
fn compared(document: &Document) -> anyhow::Result<Value> {
    let mut rendered =
        serde_json::to_value(rendered(document)?).expect("rendered objects serialise");
    canonical(&mut rendered, Place::default());
    Ok(rendered)
}

/// Quantities by their value: `1` and `1000m` render the same object once
/// the API server has them.
fn canonical(value: &mut Value, at: Place<'_>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                canonical(value, at.child(key));
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|item| canonical(item, at)),
        Value::String(text) if at.holds_quantity() => {
            if let Ok(amount) = Amount::parse(text) {
                *text = format!("{amount:?}");
            }
        }
        _ => {}
    }
}

/// `document` with only `agent` among the agents.
fn alone(document: &Document, agent: &AgentTable) -> Document {
    Document {
        agents: vec![agent.clone()],
        header: Vec::new(),
        ..document.clone()
    }
}

/// The agent with the fewest keys that render as its `keys` do, with the
/// profile (if any) that allowed it. `Err` when its keys do not load.
pub(crate) fn minimal(document: &Document, agent: &AgentTable) -> anyhow::Result<AgentTable> {
    let reference = compared(&alone(document, agent))?;
    let same = |candidate: &AgentTable| {
        compared(&alone(document, candidate)).is_ok_and(|r| r == reference)
    };
    let mut best = shrink(agent.clone(), &same);
    // An environment keeps the profile fleet.toml gives.
    let profiles = if document.base.is_some() {
        &[][..]
    } else {
        PROFILES
    };
    for profile in profiles {
        let mut candidate = agent.clone();
        candidate.keys = with_profile(&agent.keys, profile);
        if !same(&candidate) {
            continue;
        }
        let candidate = shrink(candidate, &same);
        if leaves(&candidate.keys).len() < leaves(&best.keys).len() {
            best = candidate;
        }
    }
    Ok(best)
}

/// The streams with the fewest keys that render the same.
pub(crate) fn minimal_streams(mut document: Document) -> anyhow::Result<Document> {
    let reference = compared(&document)?;
    for at in 0..document.streams.len() {
        for leaf in leaves(&document.streams[at].1) {
            let mut candidate = document.clone();
            remove(&mut candidate.streams[at].1, &leaf);
            if compared(&candidate).is_ok_and(|r| r == reference) {
                document = candidate;
            }
        }
    }
    Ok(document)
}

/// The keys with `profile = "<name>"` after the tier.
fn with_profile(keys: &Table, profile: &str) -> Table {
    let mut out = Table::default();
    let mut placed = false;
    for key in &keys.keys {
        if !placed && !matches!(key.name.as_str(), "enabled" | "tier") {
            out.set("profile", Value::from(profile));
            placed = true;
        }
        out.keys.push(key.clone());
    }
    if !placed {
        out.set("profile", Value::from(profile));
    }
    out
}

/// Removes each leaf in turn (but the profile being tried), keeping the
/// removal when `same` holds.
fn shrink(mut agent: AgentTable, same: &dyn Fn(&AgentTable) -> bool) -> AgentTable {
    for leaf in leaves(&agent.keys)
        .into_iter()
        .filter(|l| l[0] != "profile")
    {
        let mut candidate = agent.clone();
        remove(&mut candidate.keys, &leaf);
        if same(&candidate) {
            agent = candidate;
        }
    }
    agent
}

/// Paths to every value that is not a non-empty table.
fn leaves(table: &Table) -> Vec<Vec<String>> {
    fn walk(path: Vec<String>, value: &Value, out: &mut Vec<Vec<String>>) {
        match value {
            Value::Object(map) if !map.is_empty() => {
                for (key, value) in map {
                    let mut path = path.clone();
                    path.push(key.clone());
                    walk(path, value, out);
                }
            }
            _ => out.push(path),
        }
    }
    let mut out = Vec::new();
    for key in &table.keys {
        walk(vec![key.name.clone()], &key.value, &mut out);
    }
    out
}

/// Removes the value at `path`, and the tables it leaves empty.
fn remove(table: &mut Table, path: &[String]) {
    fn remove_in(value: &mut Value, path: &[String]) {
        let Some(map) = value.as_object_mut() else {
            return;
        };
        match path {
            [] => {}
            [last] => {
                map.shift_remove(last);
            }
            [first, rest @ ..] => {
                if let Some(inner) = map.get_mut(first) {
                    remove_in(inner, rest);
                    if inner.as_object().is_some_and(|m| m.is_empty()) {
                        map.shift_remove(first);
                    }
                }
            }
        }
    }
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    let Some(at) = table.keys.iter().position(|k| &k.name == first) else {
        return;
    };
    if rest.is_empty() {
        table.keys.remove(at);
        return;
    }
    remove_in(&mut table.keys[at].value, rest);
    if table.keys[at]
        .value
        .as_object()
        .is_some_and(|m| m.is_empty())
    {
        table.keys.remove(at);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn document() -> Document {
        let mut fleet = Table::default();
        fleet.set("name", json!("f"));
        fleet.set("namespace", json!("ns"));
        Document {
            fleet,
            ..Document::default()
        }
    }

    #[test]
    fn keys_equal_to_their_defaults_go_and_the_profile_that_leaves_fewest_is_taken() {
        let mut keys = Table::default();
        keys.set("tier", json!("operations"));
        keys.set("image", json!("agent:1"));
        keys.set("nats_url", json!("nats://nats:4222"));
        keys.set("args", json!(["--role=devops"]));
        keys.set("replicas", json!(1));
        keys.set(
            "resources",
            json!({ "requests": { "memory": "512Mi", "cpu": "250m" }, "limits": { "memory": "2Gi", "cpu": "1" } }),
        );
        keys.set(
            "liveness",
            json!({ "path": "/healthz", "initial_delay": "30s", "period": "60s", "timeout": "5s" }),
        );
        let agent = AgentTable {
            role: "devops".into(),
            notes: Vec::new(),
            keys,
            patches: Vec::new(),
        };
        let minimal = minimal(&document(), &agent).unwrap();
        assert_eq!(
            minimal
                .keys
                .keys
                .iter()
                .map(|k| (k.name.as_str(), k.value.clone()))
                .collect::<Vec<_>>(),
            vec![
                ("tier", json!("operations")),
                ("profile", json!("executor")),
                ("image", json!("agent:1")),
                ("nats_url", json!("nats://nats:4222")),
                ("liveness", json!({ "timeout": "5s" })),
            ]
        );
    }
}
