//! `disruption_budget`: how many pods a voluntary disruption may take.

use super::*;
use crate::load::diagnostic::Diagnostic;
use crate::load::read::{At, Reader};
use crate::load::source::{Node, Table, Value};
use crate::model::*;

/// `disruption_budget`: how many pods a node drain may take at once. The
/// default, one at a time, is what fleet has always rendered.
pub(super) fn decode_disruption_budget(
    r: &mut Reader,
    t: &Table,
    own: &Table,
) -> Option<DisruptionBudget> {
    let default = DisruptionBudget::MaxUnavailable(PodCount::Count(1));
    let Some(table) = r.get_table(t, "disruption_budget") else {
        return Some(default);
    };
    let b = table.value;
    r.check_keys(b, "disruption_budget", DISRUPTION_BUDGET_KEYS);
    if r.boolean(b, "enabled") == Some(false) {
        return None;
    }
    let (min, max) = match (b.get("min_available"), b.get("max_unavailable")) {
        (Some(min), Some(max)) => {
            match overriding(min, max, own_table(own, &["disruption_budget"])) {
                Some(winner) if winner.key == "min_available" => (Some(min), None),
                Some(_) => (None, Some(max)),
                None => {
                    r.report(
                        Diagnostic::error(&max.key_origin, "a disruption budget takes `min_available` or `max_unavailable`, not both")
                            .with_label("one of the two")
                            .with_help("keep the one you mean: the API server refuses both"),
                    );
                    return Some(default);
                }
            }
        }
        both => both,
    };
    let budget = match (min, max) {
        (Some(min), _) => DisruptionBudget::MinAvailable(pod_count(r, &min.node)?.value),
        (None, Some(max)) => DisruptionBudget::MaxUnavailable(pod_count(r, &max.node)?.value),
        (None, None) => default,
    };
    // Valid, but then no pod may ever be evicted: a node drain waits forever.
    let blocks = match budget {
        DisruptionBudget::MaxUnavailable(count) => {
            matches!(count, PodCount::Count(0) | PodCount::Percent(0))
        }
        DisruptionBudget::MinAvailable(count) => count == PodCount::Percent(100),
    };
    if blocks {
        let at = min.or(max).map_or(&table.origin, |e| &e.node.origin);
        r.report(
            Diagnostic::warning(at, "this disruption budget lets no pod be evicted")
                .with_label("node drains will wait for ever")
                .with_help("allow at least one pod to go, e.g. `max_unavailable = 1`"),
        );
    }
    Some(budget)
}

/// A number of pods (`2`) or a percentage (`"25%"`, at most 100%).
pub(super) fn pod_count(r: &mut Reader, node: &Node) -> Option<At<PodCount>> {
    let count = match &node.value {
        Value::Integer(_) => {
            let n = r.node_integer(node, 0, i32::MAX.into())?;
            PodCount::Count(n.value as u32)
        }
        Value::String(text) => {
            let percent = text
                .strip_suffix('%')
                .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|n| n.parse::<u32>().ok());
            match percent {
                Some(p) if p <= 100 => PodCount::Percent(p),
                Some(_) => {
                    r.report(
                        Diagnostic::error(&node.origin, format!("`{text}` is more than 100%"))
                            .with_label("a percentage of the agent's pods")
                            .with_help("use a percentage from \"0%\" to \"100%\""),
                    );
                    return None;
                }
                None => {
                    r.report(
                        Diagnostic::error(
                            &node.origin,
                            format!("`{text}` is not a pod count or percentage"),
                        )
                        .with_label("not a count or percentage")
                        .with_help("write a number of pods (`1`) or a percentage (`\"25%\"`)"),
                    );
                    return None;
                }
            }
        }
        _ => {
            r.report(
                Diagnostic::error(
                    &node.origin,
                    format!(
                        "expected a number of pods or a percentage, found {}",
                        node.value.type_name()
                    ),
                )
                .with_label("expected e.g. 1 or \"25%\""),
            );
            return None;
        }
    };
    Some(At {
        value: count,
        origin: node.origin.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::super::testing::{Definition, agent};
    use crate::model::{DisruptionBudget, PodCount};

    fn budget(lines: &str) -> Option<DisruptionBudget> {
        agent(lines).unwrap().disruption_budget
    }

    #[test]
    fn the_default_budget_lets_one_pod_go_at_a_time() {
        let one = Some(DisruptionBudget::MaxUnavailable(PodCount::Count(1)));
        assert_eq!(budget(""), one);
        assert_eq!(budget("disruption_budget = {}"), one);
        assert_eq!(budget("disruption_budget = { enabled = false }"), None);
    }

    #[test]
    fn a_budget_is_a_count_or_a_percentage_of_pods() {
        assert_eq!(
            budget("disruption_budget = { max_unavailable = \"25%\" }"),
            Some(DisruptionBudget::MaxUnavailable(PodCount::Percent(25)))
        );
        assert_eq!(
            budget("disruption_budget = { min_available = 2 }"),
            Some(DisruptionBudget::MinAvailable(PodCount::Count(2)))
        );
    }

    #[test]
    fn the_overlays_min_or_max_replaces_the_one_beneath() {
        // The agent's own over [defaults].
        let a = Definition {
            agent: "disruption_budget = { min_available = 1 }",
            defaults: "disruption_budget = { max_unavailable = 2 }",
            ..Definition::default()
        }
        .result()
        .unwrap();
        assert_eq!(
            a.disruption_budget,
            Some(DisruptionBudget::MinAvailable(PodCount::Count(1)))
        );
        // The environment's over fleet.toml.
        let a = Definition {
            agent: "disruption_budget = { min_available = 1 }",
            environment: Some("[agents.a]\ndisruption_budget = { max_unavailable = \"50%\" }\n"),
            ..Definition::default()
        }
        .result()
        .unwrap();
        assert_eq!(
            a.disruption_budget,
            Some(DisruptionBudget::MaxUnavailable(PodCount::Percent(50)))
        );
    }

    #[test]
    fn min_and_max_in_one_place_are_refused() {
        assert_eq!(
            agent("disruption_budget = { min_available = 1, max_unavailable = 1 }").unwrap_err(),
            ["2:42: a disruption budget takes `min_available` or `max_unavailable`, not both"]
        );
    }

    #[test]
    fn a_budget_that_lets_no_pod_go_is_a_warning() {
        for (lines, col, kept) in [
            (
                "disruption_budget = { max_unavailable = 0 }",
                41,
                DisruptionBudget::MaxUnavailable(PodCount::Count(0)),
            ),
            (
                "disruption_budget = { max_unavailable = \"0%\" }",
                41,
                DisruptionBudget::MaxUnavailable(PodCount::Percent(0)),
            ),
            (
                "disruption_budget = { min_available = \"100%\" }",
                39,
                DisruptionBudget::MinAvailable(PodCount::Percent(100)),
            ),
        ] {
            let (a, diagnostics) = Definition {
                agent: lines,
                ..Definition::default()
            }
            .load();
            assert_eq!(
                diagnostics,
                [format!(
                    "2:{col}: warning: this disruption budget lets no pod be evicted"
                )],
                "{lines}"
            );
            assert_eq!(a.unwrap().disruption_budget, Some(kept), "{lines}");
        }
    }

    #[test]
    fn a_pod_count_is_a_whole_number_or_a_percentage_up_to_100() {
        assert_eq!(
            agent("disruption_budget = { max_unavailable = \"150%\" }").unwrap_err(),
            ["2:41: `150%` is more than 100%"]
        );
        assert_eq!(
            agent("disruption_budget = { min_available = \"two\" }").unwrap_err(),
            ["2:39: `two` is not a pod count or percentage"]
        );
        assert_eq!(
            agent("disruption_budget = { min_available = \"%\" }").unwrap_err(),
            ["2:39: `%` is not a pod count or percentage"]
        );
        assert_eq!(
            agent("disruption_budget = { max_unavailable = 1.5 }").unwrap_err(),
            ["2:41: expected a number of pods or a percentage, found a float"]
        );
        assert_eq!(
            agent("disruption_budget = { max_unavailable = -1 }").unwrap_err(),
            ["2:41: -1 is out of range"]
        );
        assert_eq!(
            agent("disruption_budget = { max_unavailabe = 1 }").unwrap_err(),
            ["2:23: unknown key `max_unavailabe` in disruption_budget"]
        );
    }
}
