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
