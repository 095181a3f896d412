//! `placement`: node requirements and preferences, tolerations, spreading.

use std::collections::BTreeMap;

use super::*;
use crate::load::diagnostic::Diagnostic;
use crate::load::read::{At, Reader};
use crate::load::source::{Node, Origin, Table, Value};
use crate::model::*;

pub(super) fn decode_placement(
    r: &mut Reader,
    t: &Table,
    profile: Option<&Table>,
    workload_type_label: &str,
) -> Placement {
    let mut placement = Placement::default();
    // The profile's placement, then the agent's laid over it: node
    // requirements key by key, lists replaced whole (as arrays are in overlays).
    let mut apply = |r: &mut Reader, source: &Table| {
        if let Some(selector) = r.string_map(source, "node_selector") {
            placement.node_selector = selector;
        }
        if let Some(workload) = r.string(source, "workload_type") {
            placement.node_affinity.insert(
                workload_type_label.to_string(),
                NodeRequirement {
                    operator: NodeOperator::In,
                    values: vec![workload.value],
                },
            );
        }
        if let Some(affinity) = r.get_table(source, "node_affinity") {
            placement
                .node_affinity
                .extend(decode_node_requirements(r, affinity.value));
        }
        if let Some(terms) = r.array(source, "preferred_node_affinity") {
            placement.preferred_node_affinity = terms
                .iter()
                .filter_map(|term| decode_preferred_term(r, term))
                .collect();
        }
        if let Some(tolerations) = r.array(source, "tolerations") {
            placement.tolerations = tolerations
                .iter()
                .filter_map(|toleration| decode_toleration(r, toleration))
                .collect();
        }
        if let Some(spread) = r.boolean(source, "zone_spread") {
            placement.zone_spread = spread;
        }
        if let Some(spread) = r.string(source, "node_spread") {
            match one_of(
                r,
                &spread,
                &["required", "preferred", "none"],
                "node spread",
            ) {
                Some("required") => placement.node_spread = Some(Spread::Required),
                Some("preferred") => placement.node_spread = Some(Spread::Preferred),
                Some(_) => placement.node_spread = None,
                None => {}
            }
        }
    };
    if let Some(profile) = profile {
        apply(r, profile);
    }
    if let Some(own) = r.get_table(t, "placement") {
        r.check_keys(own.value, "placement", PLACEMENT_KEYS);
        apply(r, own.value);
    }
    placement
}

/// Node label -> requirement: an array of values (the label is one of
/// them), or `{ operator, values }` with any of Kubernetes' operators.
pub(super) fn decode_node_requirements(
    r: &mut Reader,
    table: &Table,
) -> BTreeMap<String, NodeRequirement> {
    let mut out = BTreeMap::new();
    for entry in &table.entries {
        let key = At {
            value: entry.key.clone(),
            origin: entry.key_origin.clone(),
        };
        let key_ok = label_key(r, &key, "node label").is_some();
        let requirement = match &entry.node.value {
            Value::Array(items) => {
                let values: Vec<At<String>> =
                    items.iter().filter_map(|n| r.node_string(n)).collect();
                node_requirement(r, NodeOperator::In, values, &entry.node.origin)
            }
            Value::Table(spec) => {
                r.check_keys(
                    spec,
                    &format!("node affinity on `{}`", entry.key),
                    NODE_REQUIREMENT_KEYS,
                );
                let operator = required_string(
                    r,
                    spec,
                    "operator",
                    &format!("node affinity on `{}`", entry.key),
                    &entry.node.origin,
                );
                let names: Vec<&str> = NodeOperator::ALL.iter().map(|o| o.as_str()).collect();
                let operator = operator.and_then(|o| {
                    one_of(r, &o, &names, "node affinity operator").and_then(|name| {
                        NodeOperator::ALL.into_iter().find(|op| op.as_str() == name)
                    })
                });
                let values = r.strings(spec, "values").unwrap_or_default();
                let at = spec
                    .get("values")
                    .map_or(&entry.node.origin, |v| &v.node.origin);
                operator.and_then(|operator| node_requirement(r, operator, values, at))
            }
            _ => {
                r.report(
                    Diagnostic::error(
                        &entry.node.origin,
                        "expected an array of label values, or { operator, values }",
                    )
                    .with_label(format!("found {}", entry.node.value.type_name()))
                    .with_help("e.g. `disktype = [\"ssd\"]`, or `gpu = { operator = \"Exists\" }`"),
                );
                None
            }
        };
        if let (true, Some(requirement)) = (key_ok, requirement) {
            out.insert(entry.key.clone(), requirement);
        }
    }
    out
}

/// The values an operator takes, as the API server checks them: some for
/// In and NotIn, none for Exists and DoesNotExist, one integer for Gt and Lt.
pub(super) fn node_requirement(
    r: &mut Reader,
    operator: NodeOperator,
    values: Vec<At<String>>,
    at: &Origin,
) -> Option<NodeRequirement> {
    let op = operator.as_str();
    let problem = match operator {
        NodeOperator::In | NodeOperator::NotIn if values.is_empty() => Some((
            format!("operator `{op}` needs at least one value"),
            "add the label values, e.g. `values = [\"ssd\"]`",
        )),
        NodeOperator::Exists | NodeOperator::DoesNotExist if !values.is_empty() => Some((
            format!("operator `{op}` takes no values"),
            "remove `values`: the operator only asks whether the node has the label",
        )),
        NodeOperator::Gt | NodeOperator::Lt
            if values.len() != 1 || values[0].value.parse::<i64>().is_err() =>
        {
            Some((
                format!("operator `{op}` takes exactly one integer value"),
                "e.g. `values = [\"4\"]`: the node label's value is compared as an integer",
            ))
        }
        _ => None,
    };
    if let Some((message, help)) = problem {
        r.report(
            Diagnostic::error(at, message)
                .with_label("the API server refuses this")
                .with_help(help),
        );
        return None;
    }
    for value in &values {
        if !valid_label_value(&value.value) {
            r.report(
                Diagnostic::error(&value.origin, format!("`{}` is not a valid label value", value.value))
                    .with_label("no node label can have this value")
                    .with_help("use at most 63 letters, digits, '-', '_' and '.', starting and ending with a letter or digit"),
            );
            return None;
        }
    }
    Some(NodeRequirement {
        operator,
        values: values.into_iter().map(|v| v.value).collect(),
    })
}

/// `{ weight = 1..100, match = { label = requirement, ... } }`.
pub(super) fn decode_preferred_term(r: &mut Reader, node: &Node) -> Option<PreferredNodeTerm> {
    let term = r.table(node)?;
    r.check_keys(term, "a preferred node affinity term", PREFERRED_TERM_KEYS);
    let weight = r.integer(term, "weight", 1, 100);
    if term.get("weight").is_none() {
        r.report(
            Diagnostic::error(
                &node.origin,
                "a preferred node affinity term has no `weight`",
            )
            .with_label("`weight` is required here")
            .with_help("add `weight = 1..100`: how much the scheduler favours nodes that match"),
        );
    }
    let requirements = match r.get_table(term, "match") {
        Some(m) if m.value.entries.is_empty() => {
            r.report(
                Diagnostic::error(&m.origin, "a preferred node affinity term matches nothing")
                    .with_label("empty")
                    .with_help(
                        "name at least one node label, e.g. `match = { disktype = [\"ssd\"] }`",
                    ),
            );
            None
        }
        Some(m) => Some(decode_node_requirements(r, m.value)),
        None => {
            if term.get("match").is_none() {
                r.report(
                    Diagnostic::error(
                        &node.origin,
                        "a preferred node affinity term has no `match`",
                    )
                    .with_label("`match` is required here")
                    .with_help("add `match = { label = [\"value\"] }`, the node labels to favour"),
                );
            }
            None
        }
    };
    Some(PreferredNodeTerm {
        weight: weight?.value as i32,
        requirements: requirements.filter(|r| !r.is_empty())?,
    })
}

/// One toleration, checked as the API server checks it.
pub(super) fn decode_toleration(r: &mut Reader, node: &Node) -> Option<Toleration> {
    let t = r.table(node)?;
    r.check_keys(t, "a toleration", TOLERATION_KEYS);
    let key = r.string(t, "key");
    let key_ok = match &key {
        Some(key) => label_key(r, key, "taint").is_some(),
        None => true,
    };
    let operator = match r.string(t, "operator") {
        Some(op) => {
            one_of(r, &op, &["Equal", "Exists"], "toleration operator").map(|o| (o, Some(op)))
        }
        None => Some(("Equal", None)),
    };
    let value = r.string(t, "value");
    let effect = r.string(t, "effect").and_then(|e| {
        one_of(
            r,
            &e,
            &["NoSchedule", "PreferNoSchedule", "NoExecute"],
            "taint effect",
        )
        .map(|name| At {
            value: name.to_string(),
            origin: e.origin,
        })
    });
    let seconds = r.integer(t, "toleration_seconds", 0, i64::MAX);
    let (operator, operator_at) = operator?;
    let mut ok = key_ok;
    if key.is_none() && operator != "Exists" {
        ok = false;
        r.report(
            Diagnostic::error(
                operator_at.as_ref().map_or(&node.origin, |o| &o.origin),
                "a toleration without `key` must use operator `Exists`",
            )
            .with_label("only `Exists` can match every taint")
            .with_help(
                "add the taint's `key`, or set `operator = \"Exists\"` to tolerate every taint",
            ),
        );
    }
    if let (Some(value), "Exists") = (&value, operator) {
        ok = false;
        r.report(
            Diagnostic::error(
                &value.origin,
                "a toleration with operator `Exists` takes no `value`",
            )
            .with_label("the API server refuses this")
            .with_help("remove `value`, or use `operator = \"Equal\"` to match this value only"),
        );
    }
    if let Some(seconds) = &seconds
        && effect.as_ref().is_none_or(|e| e.value != "NoExecute")
    {
        ok = false;
        r.report(
            Diagnostic::error(
                &seconds.origin,
                "`toleration_seconds` needs `effect = \"NoExecute\"`",
            )
            .with_label("only a NoExecute taint evicts running pods")
            .with_help("set `effect = \"NoExecute\"`, or remove `toleration_seconds`"),
        );
    }
    if !ok
        || t.get("effect").is_some() && effect.is_none()
        || t.get("toleration_seconds").is_some() && seconds.is_none()
    {
        return None;
    }
    Some(Toleration {
        key: key.map(|k| k.value),
        operator: operator.to_string(),
        value: value.map(|v| v.value),
        effect: effect.map(|e| e.value),
        toleration_seconds: seconds.map(|s| s.value),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::testing::agent;
    use crate::model::*;

    fn requirement(operator: NodeOperator, values: &[&str]) -> NodeRequirement {
        NodeRequirement {
            operator,
            values: values.iter().map(|v| v.to_string()).collect(),
        }
    }

    #[test]
    fn an_agent_without_placement_is_placed_anywhere() {
        assert_eq!(agent("").unwrap().placement, Placement::default());
    }

    #[test]
    fn the_agents_placement_is_laid_over_its_profiles_label_by_label() {
        let cognitive = agent("profile = \"cognitive\"").unwrap().placement;
        assert_eq!(
            cognitive,
            Placement {
                node_affinity: BTreeMap::from([(
                    "agent.ceo/workload-type".to_string(),
                    requirement(NodeOperator::In, &["cognitive"]),
                )]),
                zone_spread: true,
                ..Placement::default()
            }
        );
        let own = agent(
            "profile = \"cognitive\"\nplacement = { node_selector = { pool = \"agents\" }, node_affinity = { disktype = [\"ssd\", \"nvme\"] }, zone_spread = false, node_spread = \"required\" }",
        )
        .unwrap()
        .placement;
        assert_eq!(
            own,
            Placement {
                node_selector: BTreeMap::from([("pool".to_string(), "agents".to_string())]),
                node_affinity: BTreeMap::from([
                    (
                        "agent.ceo/workload-type".to_string(),
                        requirement(NodeOperator::In, &["cognitive"]),
                    ),
                    (
                        "disktype".to_string(),
                        requirement(NodeOperator::In, &["ssd", "nvme"]),
                    ),
                ]),
                zone_spread: false,
                node_spread: Some(Spread::Required),
                ..Placement::default()
            }
        );
    }

    #[test]
    fn node_affinity_takes_each_operator_with_the_values_it_needs() {
        let placement = agent(
            "[agents.a.placement.node_affinity]\ngpu = { operator = \"Exists\" }\ncores = { operator = \"Gt\", values = [\"4\"] }\nzone = { operator = \"NotIn\", values = [\"z1\"] }\nspot = { operator = \"DoesNotExist\" }",
        )
        .unwrap()
        .placement;
        assert_eq!(
            placement.node_affinity,
            BTreeMap::from([
                ("gpu".to_string(), requirement(NodeOperator::Exists, &[])),
                ("cores".to_string(), requirement(NodeOperator::Gt, &["4"])),
                (
                    "zone".to_string(),
                    requirement(NodeOperator::NotIn, &["z1"])
                ),
                (
                    "spot".to_string(),
                    requirement(NodeOperator::DoesNotExist, &[])
                ),
            ])
        );
    }

    #[test]
    fn node_affinity_is_refused_as_the_api_server_would() {
        assert_eq!(
            agent(
                "[agents.a.placement.node_affinity]\ngpu = { operator = \"Exists\", values = [\"a100\"] }\ndisktype = { operator = \"In\" }\ncores = { operator = \"Lt\", values = [\"four\"] }\nzone = { operator = \"NotEqual\", values = [\"z1\"] }\n\"disk type\" = [\"ssd\"]\npool = [\"-agents\"]\ntier = \"gold\""
            )
            .unwrap_err(),
            [
                "3:39: operator `Exists` takes no values",
                "4:12: operator `In` needs at least one value",
                "5:37: operator `Lt` takes exactly one integer value",
                "6:21: `NotEqual` is not a node affinity operator",
                "7:1: `disk type` is not a valid node label key",
                "8:9: `-agents` is not a valid label value",
                "9:8: expected an array of label values, or { operator, values }",
            ]
        );
    }

    #[test]
    fn a_preferred_term_needs_a_weight_and_something_to_match() {
        let placement = agent(
            "placement = { preferred_node_affinity = [{ weight = 50, match = { disktype = [\"ssd\"] } }] }",
        )
        .unwrap()
        .placement;
        assert_eq!(
            placement.preferred_node_affinity,
            [PreferredNodeTerm {
                weight: 50,
                requirements: BTreeMap::from([(
                    "disktype".to_string(),
                    requirement(NodeOperator::In, &["ssd"])
                )]),
            }]
        );
        assert_eq!(
            agent(
                "[[agents.a.placement.preferred_node_affinity]]\nmatch = { disktype = [\"ssd\"] }\n[[agents.a.placement.preferred_node_affinity]]\nweight = 0\nmatch = {}\n[[agents.a.placement.preferred_node_affinity]]\nweight = 1"
            )
            .unwrap_err(),
            [
                "2:1: a preferred node affinity term has no `weight`",
                "5:10: 0 is out of range",
                "6:1: a preferred node affinity term matches nothing",
                "7:1: a preferred node affinity term has no `match`",
            ]
        );
    }

    #[test]
    fn tolerations_default_to_equal_and_every_effect() {
        let placement = agent(
            "[[agents.a.placement.tolerations]]\nkey = \"dedicated\"\nvalue = \"agents\"\n[[agents.a.placement.tolerations]]\noperator = \"Exists\"\n[[agents.a.placement.tolerations]]\nkey = \"node.kubernetes.io/unreachable\"\noperator = \"Exists\"\neffect = \"NoExecute\"\ntoleration_seconds = 30",
        )
        .unwrap()
        .placement;
        assert_eq!(
            placement.tolerations,
            [
                Toleration {
                    key: Some("dedicated".into()),
                    operator: "Equal".into(),
                    value: Some("agents".into()),
                    effect: None,
                    toleration_seconds: None,
                },
                Toleration {
                    key: None,
                    operator: "Exists".into(),
                    value: None,
                    effect: None,
                    toleration_seconds: None,
                },
                Toleration {
                    key: Some("node.kubernetes.io/unreachable".into()),
                    operator: "Exists".into(),
                    value: None,
                    effect: Some("NoExecute".into()),
                    toleration_seconds: Some(30),
                },
            ]
        );
    }

    #[test]
    fn a_toleration_is_refused_as_the_api_server_would() {
        assert_eq!(
            agent(
                "[agents.a.placement]\ntolerations = [\n  { key = \"dedicated\", operator = \"Exists\", value = \"agents\" },\n  { value = \"agents\" },\n  { key = \"dedicated\", operator = \"exists\" },\n  { key = \"dedicated\", effect = \"NoScheduled\" },\n  { key = \"dedicated\", effect = \"NoSchedule\", toleration_seconds = 30 },\n]\nnode_spread = \"always\""
            )
            .unwrap_err(),
            [
                "4:53: a toleration with operator `Exists` takes no `value`",
                "5:3: a toleration without `key` must use operator `Exists`",
                "6:35: `exists` is not a toleration operator",
                "7:33: `NoScheduled` is not a taint effect",
                "8:68: `toleration_seconds` needs `effect = \"NoExecute\"`",
                "10:15: `always` is not a node spread",
            ]
        );
    }
}
