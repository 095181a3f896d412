//! `[rollout]`: the order apply rolls the agents out in, wave by wave, and
//! how long each wave must stay healthy before the next starts.

use std::collections::BTreeSet;

use super::super::diagnostic::Diagnostic;
use super::super::read::{At, Reader};
use super::super::source::{Table, Value};
use crate::model::{Agent, Rollout};

pub(in crate::load) const ROLLOUT_KEYS: &[&str] =
    &["waves", "by_tier", "one_at_a_time", "soak", "on_failure"];

/// The fleet's rollout, `None` without a `[rollout]` table. `declared` are
/// the roles of every agent the definition names, running or not: a wave
/// may name an agent an environment switches off.
pub(super) fn decode_rollout(
    r: &mut Reader,
    root: &Table,
    declared: &[&str],
    agents: &[Agent],
) -> Option<Rollout> {
    let table = r.get_table(root, "rollout")?.value;
    r.check_keys(table, "[rollout]", ROLLOUT_KEYS);
    let soak = r
        .seconds(table, "soak")
        .map_or(0, |s| u64::try_from(s.value).unwrap_or(0));
    let running = |role: &str| agents.iter().any(|a| a.role == role);
    let mut placed = BTreeSet::new();
    let mut waves: Vec<Vec<String>> = Vec::new();

    let wave_nodes = r.array(table, "waves").unwrap_or_default();
    for wave in wave_nodes {
        let Value::Array(roles) = &wave.value else {
            r.type_error(wave, "an array of agent roles");
            continue;
        };
        let mut members = Vec::new();
        let roles: Vec<At<String>> = roles
            .iter()
            .filter_map(|node| r.node_string(node))
            .collect();
        for role in roles {
            if !declared.contains(&role.value.as_str()) {
                unknown_agent(r, &role, declared);
            } else if !placed.insert(role.value.clone()) {
                r.report(
                    Diagnostic::error(
                        &role.origin,
                        format!("agent `{}` is in two waves", role.value),
                    )
                    .with_label("named again here")
                    .with_help("each agent rolls out in one wave"),
                );
            } else if running(&role.value) {
                members.push(role.value);
            }
        }
        if !members.is_empty() {
            waves.push(members);
        }
    }

    if let Some(tiers) = r.strings(table, "by_tier") {
        if let (Some(_), Some(by_tier)) = (table.get("waves"), table.get("by_tier")) {
            r.report(
                Diagnostic::error(
                    &by_tier.key_origin,
                    "[rollout] has both `waves` and `by_tier`",
                )
                .with_help("give the waves by roles (`waves`) or by tiers (`by_tier`), not both"),
            );
        }
        for tier in tiers {
            let members: Vec<String> = agents
                .iter()
                .filter(|a| a.tier.as_deref() == Some(tier.value.as_str()))
                .filter(|a| placed.insert(a.role.clone()))
                .map(|a| a.role.clone())
                .collect();
            if members.is_empty() {
                r.report(
                    Diagnostic::error(
                        &tier.origin,
                        format!("no running agent has tier `{}`", tier.value),
                    )
                    .with_label("an empty wave")
                    .with_help(tiers_help(agents)),
                );
            } else {
                waves.push(members);
            }
        }
    }

    // Agents no wave names go last, together.
    let rest: Vec<String> = agents
        .iter()
        .map(|a| a.role.clone())
        .filter(|role| !placed.contains(role))
        .collect();
    if !rest.is_empty() {
        waves.push(rest);
    }
    if r.boolean(table, "one_at_a_time") == Some(true) {
        waves = waves.into_iter().flatten().map(|role| vec![role]).collect();
    }
    let roll_back = match r.string(table, "on_failure") {
        None => false,
        Some(text) if text.value == "halt" => false,
        Some(text) if text.value == "rollback" => true,
        Some(text) => {
            r.report(
                Diagnostic::error(&text.origin, format!("`{}` is not an on_failure", text.value))
                    .with_label("not halt or rollback")
                    .with_help("`halt` (the default) stops at the failed wave; `rollback` also puts its Deployments back on their previous pod templates"),
            );
            false
        }
    };
    Some(Rollout {
        waves,
        soak: std::time::Duration::from_secs(soak),
        roll_back,
    })
}

fn unknown_agent(r: &mut Reader, role: &At<String>, declared: &[&str]) {
    r.report(
        Diagnostic::error(&role.origin, format!("there is no agent `{}`", role.value))
            .with_label("not an agent of this fleet")
            .with_help(format!("the agents are: {}", sorted(declared).join(", "))),
    );
}

fn sorted<'a>(roles: &[&'a str]) -> Vec<&'a str> {
    let mut roles = roles.to_vec();
    roles.sort();
    roles
}

fn tiers_help(agents: &[Agent]) -> String {
    let tiers: BTreeSet<&str> = agents.iter().filter_map(|a| a.tier.as_deref()).collect();
    if tiers.is_empty() {
        "no agent has a `tier`".into()
    } else {
        format!(
            "the tiers are: {}",
            tiers.into_iter().collect::<Vec<_>>().join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use crate::load::{MapFiles, load_str};
    use crate::model::Rollout;

    const FLEET: &str = r#"
[fleet]
name = "f"
namespace = "ns"

[defaults]
image = "agent:1"
nats_url = "nats://nats:4222"

[agents.watcher]
tier = "operations"
[agents.doer]
tier = "operations"
[agents.thinker]
tier = "engineering"
[agents.loner]
"#;

    fn load(rollout: &str, environment: Option<&str>) -> (Option<Rollout>, Vec<String>) {
        let text = format!("{FLEET}\n{rollout}");
        let overlay = environment.map(|text| (Path::new("environments/e.toml"), text));
        let loaded = load_str(
            Path::new("fleet.toml"),
            &text,
            overlay,
            environment.map(|_| "e"),
            &MapFiles(BTreeMap::new()),
        );
        let messages = loaded
            .diagnostics
            .iter()
            .map(|d| format!("{} ({})", d.message, d.help.clone().unwrap_or_default()))
            .collect();
        (loaded.fleet.and_then(|f| f.rollout), messages)
    }

    fn waves(rollout: &str) -> Vec<Vec<String>> {
        let (rollout, messages) = load(rollout, None);
        assert!(messages.is_empty(), "{messages:?}");
        rollout.unwrap().waves
    }

    #[test]
    fn waves_by_roles_by_tier_or_one_at_a_time_with_the_rest_last() {
        assert_eq!(load("", None).0, None);
        assert_eq!(
            waves("[rollout]\nwaves = [[\"watcher\"], [\"thinker\", \"doer\"]]\nsoak = \"2m\""),
            [vec!["watcher"], vec!["thinker", "doer"], vec!["loner"]]
        );
        assert_eq!(
            waves("[rollout]\nby_tier = [\"operations\", \"engineering\"]"),
            [vec!["doer", "watcher"], vec!["thinker"], vec!["loner"]]
        );
        assert_eq!(
            waves("[rollout]\nby_tier = [\"engineering\"]\none_at_a_time = true"),
            [
                vec!["thinker"],
                vec!["doer"],
                vec!["loner"],
                vec!["watcher"]
            ]
        );
        let (rollout, _) = load("[rollout]\nwaves = [[\"watcher\"]]\nsoak = \"2m\"", None);
        assert_eq!(rollout.unwrap().soak, std::time::Duration::from_secs(120));
    }

    #[test]
    fn an_agent_switched_off_drops_out_of_its_wave() {
        let (rollout, messages) = load(
            "[rollout]\nwaves = [[\"watcher\"], [\"doer\"]]",
            Some("[agents.watcher]\nenabled = false\n"),
        );
        assert!(messages.is_empty(), "{messages:?}");
        assert_eq!(
            rollout.unwrap().waves,
            [vec!["doer"], vec!["loner", "thinker"]]
        );
    }

    #[test]
    fn unknown_agents_repeated_agents_and_empty_tiers_are_errors() {
        let (_, messages) = load(
            "[rollout]\nwaves = [[\"watchr\"], [\"doer\", \"doer\"]]",
            None,
        );
        assert_eq!(
            messages,
            [
                "there is no agent `watchr` (the agents are: doer, loner, thinker, watcher)",
                "agent `doer` is in two waves (each agent rolls out in one wave)",
            ]
        );
        let (_, messages) = load("[rollout]\nby_tier = [\"ops\"]", None);
        assert_eq!(
            messages,
            ["no running agent has tier `ops` (the tiers are: engineering, operations)"]
        );
        let (_, messages) = load(
            "[rollout]\nwaves = [[\"doer\"]]\nby_tier = [\"engineering\"]",
            None,
        );
        assert_eq!(messages.len(), 1, "{messages:?}");
        assert!(
            messages[0].starts_with("[rollout] has both"),
            "{messages:?}"
        );
    }
}
