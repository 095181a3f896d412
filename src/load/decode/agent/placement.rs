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
