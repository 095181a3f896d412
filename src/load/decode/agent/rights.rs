//! What the agent may do: `rbac` (Kubernetes rules) and `publishes`,
//! `requests`, `serves` (NATS subjects).

use super::*;
use crate::load::diagnostic::Diagnostic;
use crate::load::read::{At, Reader};
use crate::load::source::Table;
use crate::model::*;

/// `publishes`, `requests` and `serves`: valid subjects; what an agent
/// publishes must be captured by a stream of the fleet (else the message is
/// lost, and the subject is surely a typo or a request, which `requests` says).
pub(super) fn decode_messaging(r: &mut Reader, t: &Table, streams: &[StreamEntry]) -> Messaging {
    let subjects = |r: &mut Reader, key: &str| -> Vec<At<String>> {
        let list = r.strings(t, key).unwrap_or_default();
        list.into_iter()
            .filter(|subject| {
                let valid = crate::subject::valid_subject(&subject.value);
                if !valid {
                    r.report(
                        Diagnostic::error(&subject.origin, format!("`{}` is not a NATS subject", subject.value))
                            .with_label("invalid subject")
                            .with_help("tokens separated by `.`, without spaces; `*` matches one token, `>` the rest"),
                    );
                }
                valid
            })
            .collect()
    };
    let publishes = subjects(r, "publishes");
    let requests = subjects(r, "requests");
    let serves = subjects(r, "serves");
    let captured: Vec<&str> = streams
        .iter()
        .filter_map(|entry| entry.stream.as_ref())
        .flat_map(|stream| stream.subjects.iter().map(String::as_str))
        .collect();
    for subject in &publishes {
        if !captured
            .iter()
            .any(|stream| crate::subject::subject_covers(stream, &subject.value))
        {
            let d = Diagnostic::error(
                &subject.origin,
                format!("no stream of the fleet captures `{}`", subject.value),
            )
            .with_label("a message published here would be lost")
            .with_help(format!(
                "the streams capture {}; a request/reply subject goes in `requests`",
                if captured.is_empty() {
                    "nothing".to_string()
                } else {
                    captured.join(", ")
                }
            ));
            r.report(d);
        }
    }
    let values = |list: Vec<At<String>>| list.into_iter().map(|s| s.value).collect();
    Messaging {
        publishes: values(publishes),
        requests: values(requests),
        serves: values(serves),
    }
}

pub(super) fn decode_rbac(r: &mut Reader, t: &Table) -> Vec<RbacRule> {
    let Some(items) = r.array(t, "rbac") else {
        return Vec::new();
    };
    let mut rules = Vec::new();
    for item in items {
        let Some(rule) = r.table(item) else { continue };
        r.check_keys(rule, "an rbac rule", RBAC_KEYS);
        let list = |r: &mut Reader, key: &str| {
            r.strings(rule, key)
                .map(|v| v.into_iter().map(|s| s.value).collect::<Vec<_>>())
        };
        let resources = list(r, "resources");
        let verbs = list(r, "verbs");
        if resources.as_ref().is_none_or(Vec::is_empty) || verbs.as_ref().is_none_or(Vec::is_empty)
        {
            r.report(
                Diagnostic::error(&item.origin, "an rbac rule needs `resources` and `verbs`")
                    .with_label("incomplete rule")
                    .with_help("e.g. { api_groups = [\"\"], resources = [\"pods\"], verbs = [\"get\", \"list\"] }"),
            );
            continue;
        }
        rules.push(RbacRule {
            api_groups: list(r, "api_groups").unwrap_or_else(|| vec![String::new()]),
            resources: resources.unwrap_or_default(),
            verbs: verbs.unwrap_or_default(),
            resource_names: list(r, "resource_names").unwrap_or_default(),
        });
    }
    rules
}

#[cfg(test)]
mod tests {
    use super::super::testing::{Definition, TASKS, agent};
    use crate::model::*;

    #[test]
    fn rbac_rules_default_to_the_core_api_group() {
        let a = agent(
            "rbac = [{ resources = [\"pods\"], verbs = [\"get\", \"list\"] }, { api_groups = [\"apps\"], resources = [\"deployments\"], verbs = [\"patch\"], resource_names = [\"web\"] }]",
        )
        .unwrap();
        assert_eq!(
            a.rbac,
            [
                RbacRule {
                    api_groups: vec![String::new()],
                    resources: vec!["pods".into()],
                    verbs: vec!["get".into(), "list".into()],
                    resource_names: vec![],
                },
                RbacRule {
                    api_groups: vec!["apps".into()],
                    resources: vec!["deployments".into()],
                    verbs: vec!["patch".into()],
                    resource_names: vec!["web".into()],
                },
            ]
        );
        assert_eq!(agent("").unwrap().rbac, []);
    }

    #[test]
    fn an_rbac_rule_needs_resources_and_verbs() {
        assert_eq!(
            agent("rbac = [{ resources = [\"pods\"] }, { resources = [], verbs = [\"get\"] }, { verb = [\"get\"] }]")
                .unwrap_err(),
            [
                "2:9: an rbac rule needs `resources` and `verbs`",
                "2:35: an rbac rule needs `resources` and `verbs`",
                "2:74: unknown key `verb` in an rbac rule",
                "2:72: an rbac rule needs `resources` and `verbs`",
            ]
        );
    }

    #[test]
    fn the_agents_subjects_are_kept_as_written() {
        let a = Definition {
            agent: "publishes = [\"tasks.review\"]\nrequests = [\"svc.lookup\"]\nserves = [\"a.ask.*\"]",
            defaults: TASKS,
            ..Definition::default()
        }
        .result()
        .unwrap();
        assert_eq!(
            a.messaging,
            Messaging {
                publishes: vec!["tasks.review".into()],
                requests: vec!["svc.lookup".into()],
                serves: vec!["a.ask.*".into()],
            }
        );
    }

    #[test]
    fn what_an_agent_publishes_must_be_captured_by_a_stream() {
        assert_eq!(
            agent("publishes = [\"events.done\"]").unwrap_err(),
            ["2:14: no stream of the fleet captures `events.done`"]
        );
        assert_eq!(
            Definition {
                agent: "publishes = [\"tasks.review\", \"events.done\"]",
                defaults: TASKS,
                ..Definition::default()
            }
            .result()
            .unwrap_err(),
            ["2:30: no stream of the fleet captures `events.done`"]
        );
    }

    #[test]
    fn an_invalid_subject_is_refused_once() {
        assert_eq!(
            agent("publishes = [\"tasks..x\"]\nrequests = [\"svc lookup\"]\nserves = [\"a.>.b\"]")
                .unwrap_err(),
            [
                "2:14: `tasks..x` is not a NATS subject",
                "3:13: `svc lookup` is not a NATS subject",
                "4:11: `a.>.b` is not a NATS subject",
            ]
        );
    }
}
