//! `profile` and `resources`: requests and limits, a profile's laid under the
//! agent's own.

use super::*;
use crate::load::diagnostic::Diagnostic;
use crate::load::read::{Reader, suggest};
use crate::load::source::{Origin, Table, Value};
use crate::model::*;

/// The agent's profile table, or `None` (with a diagnostic when it names an
/// unknown profile).
pub(super) fn decode_profile<'a>(
    r: &mut Reader,
    t: &Table,
    cx: &AgentContext<'a>,
) -> Option<&'a Table> {
    let name = r.string(t, "profile")?;
    match cx.profiles.get(&name.value) {
        Some(entry) => match &entry.node.value {
            Value::Table(profile) => Some(profile),
            _ => None,
        },
        None => {
            let known: Vec<&str> = cx.profiles.entries.iter().map(|e| e.key.as_str()).collect();
            let mut d =
                Diagnostic::error(&name.origin, format!("unknown profile `{}`", name.value))
                    .with_label("no such profile");
            d = match suggest(&name.value, &known) {
                Some(best) => d.with_help(format!("did you mean `{best}`?")),
                None => d.with_help(format!(
                    "define [profiles.{}] or use one of: {}",
                    name.value,
                    known.join(", ")
                )),
            };
            r.report(d);
            None
        }
    }
}

pub(super) fn decode_resource_list(
    r: &mut Reader,
    t: &Table,
    key: &str,
) -> (ResourceList, Option<Origin>, Option<Origin>) {
    let Some(list) = r.get_table(t, key) else {
        return (ResourceList::default(), None, None);
    };
    r.check_keys(list.value, key, RESOURCE_KEYS);
    let cpu = r.quantity(list.value, "cpu");
    let memory = r.quantity(list.value, "memory");
    // What the API server would store otherwise (rounded, clamped) would
    // be a change in every plan: refused here, where it was written.
    for quantity in [&cpu, &memory].into_iter().flatten() {
        if let Err(why) = crate::quantity::resource_list_value(&quantity.value.text) {
            r.report(
                Diagnostic::error(&quantity.origin, format!("`{}` {why}", quantity.value.text))
                    .with_label("not stored as written")
                    .with_help(
                        "write e.g. \"500m\" or \"2\" for CPU, \"512Mi\" or \"4Gi\" for memory",
                    ),
            );
        }
    }
    let origins = (
        cpu.as_ref().map(|c| c.origin.clone()),
        memory.as_ref().map(|m| m.origin.clone()),
    );
    (
        ResourceList {
            cpu: cpu.map(|c| c.value),
            memory: memory.map(|m| m.value),
        },
        origins.0,
        origins.1,
    )
}

/// The profile's requests and limits with the agent's `resources` laid over
/// them, field by field; requests must not exceed limits.
pub(super) fn decode_resources(
    r: &mut Reader,
    t: &Table,
    profile: Option<&Table>,
    role: &str,
) -> Resources {
    let empty = Table::default();
    let profile = profile.unwrap_or(&empty);
    let own = r
        .get_table(t, "resources")
        .map(|o| o.value)
        .unwrap_or(&empty);
    r.check_keys(own, "resources", RESOURCES_KEYS);

    let (p_req, p_req_cpu, p_req_mem) = decode_resource_list(r, profile, "requests");
    let (p_lim, p_lim_cpu, p_lim_mem) = decode_resource_list(r, profile, "limits");
    let (o_req, o_req_cpu, o_req_mem) = decode_resource_list(r, own, "requests");
    let (o_lim, o_lim_cpu, o_lim_mem) = decode_resource_list(r, own, "limits");

    // The value, where it was written, and whether the agent's own
    // `resources` set it (rather than its profile).
    let pick = |own: Option<Quantity>,
                own_at: Option<Origin>,
                base: Option<Quantity>,
                base_at: Option<Origin>| {
        if own.is_some() {
            (own, own_at, true)
        } else {
            (base, base_at, false)
        }
    };
    let req_cpu = pick(o_req.cpu, o_req_cpu, p_req.cpu, p_req_cpu);
    let req_mem = pick(o_req.memory, o_req_mem, p_req.memory, p_req_mem);
    let lim_cpu = pick(o_lim.cpu, o_lim_cpu, p_lim.cpu, p_lim_cpu);
    let lim_mem = pick(o_lim.memory, o_lim_mem, p_lim.memory, p_lim_mem);

    for (resource, request, limit) in [("cpu", &req_cpu, &lim_cpu), ("memory", &req_mem, &lim_mem)]
    {
        let ((Some(request), request_at, request_own), (Some(limit), limit_at, limit_own)) =
            (request, limit)
        else {
            continue;
        };
        // Point at what the agent itself set: the request, unless only the
        // limit is its own. When the profile set both, point at the one
        // written last: files are numbered in load order (built-in defaults,
        // fleet file, environment), so that is the override that made them
        // clash, never the built-in half.
        let limit_later = match (request_at, limit_at) {
            (Some(request_at), Some(limit_at)) => limit_at.file > request_at.file,
            _ => false,
        };
        let at = if (*limit_own && !request_own) || (limit_own == request_own && limit_later) {
            limit_at
        } else {
            request_at
        };
        if let Some(at) = at
            && request.value() > limit.value()
        {
            r.report(
                Diagnostic::error(at, format!("agent `{role}` requests more {resource} ({}) than its limit ({})", request.text, limit.text))
                    .with_label("request above limit")
                    .with_help(format!("lower the {resource} request or raise the limit; Kubernetes refuses requests above limits")),
            );
        }
    }
    Resources {
        requests: ResourceList {
            cpu: req_cpu.0,
            memory: req_mem.0,
        },
        limits: ResourceList {
            cpu: lim_cpu.0,
            memory: lim_mem.0,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{Definition, agent};
    use crate::model::ResourceList;

    /// cpu and memory as written.
    fn texts(list: &ResourceList) -> (Option<&str>, Option<&str>) {
        (
            list.cpu.as_ref().map(|q| q.text.as_str()),
            list.memory.as_ref().map(|q| q.text.as_str()),
        )
    }

    #[test]
    fn an_agent_without_profile_or_resources_sets_none() {
        let a = agent("").unwrap();
        assert_eq!(texts(&a.resources.requests), (None, None));
        assert_eq!(texts(&a.resources.limits), (None, None));
    }

    #[test]
    fn a_profile_is_laid_under_the_agents_own_requests_field_by_field() {
        let a = agent(
            "profile = \"executor\"\nresources = { requests = { cpu = \"500m\" }, limits = { memory = \"3Gi\" } }",
        )
        .unwrap();
        assert_eq!(texts(&a.resources.requests), (Some("500m"), Some("512Mi")));
        assert_eq!(texts(&a.resources.limits), (Some("1000m"), Some("3Gi")));
    }

    #[test]
    fn a_profile_of_the_fleets_own_is_read_like_a_built_in_one() {
        let a = Definition {
            agent: "profile = \"small\"",
            defaults: "[profiles.small]\nrequests = { cpu = \"50m\" }",
            ..Definition::default()
        }
        .result()
        .unwrap();
        assert_eq!(texts(&a.resources.requests), (Some("50m"), None));
        assert_eq!(texts(&a.resources.limits), (None, None));
    }

    #[test]
    fn an_unknown_profile_is_refused_where_it_is_named() {
        assert_eq!(
            agent("profile = \"executer\"").unwrap_err(),
            ["2:11: unknown profile `executer`"]
        );
    }

    #[test]
    fn a_request_above_its_limit_is_refused_at_the_agents_own_setting() {
        // Both the agent's: at the request.
        assert_eq!(
            agent("resources = { requests = { cpu = \"2\" }, limits = { cpu = \"1\" } }")
                .unwrap_err(),
            ["2:34: agent `a` requests more cpu (2) than its limit (1)"]
        );
        // Only the limit is the agent's (the request is its profile's): at the limit.
        assert_eq!(
            agent("profile = \"observer\"\nresources = { limits = { memory = \"128Mi\" } }")
                .unwrap_err(),
            ["3:35: agent `a` requests more memory (256Mi) than its limit (128Mi)"]
        );
        // Both the profile's, the limit written over a built-in request: at
        // the limit (line 11: after the agent's line, [fleet]'s and
        // [defaults]' three and the profile's header).
        assert_eq!(
            Definition {
                agent: "profile = \"executor\"",
                defaults: "[profiles.executor]\nlimits = { cpu = \"100m\" }",
                ..Definition::default()
            }
            .result()
            .unwrap_err(),
            ["11:18: agent `a` requests more cpu (250m) than its limit (100m)"]
        );
    }

    #[test]
    fn resources_take_requests_and_limits_of_cpu_and_memory_only() {
        assert_eq!(
            agent("resources = { request = { cpu = \"1\" }, limits = { gpu = \"1\" } }")
                .unwrap_err(),
            [
                "2:15: unknown key `request` in resources",
                "2:51: unknown key `gpu` in limits",
            ]
        );
    }
}
