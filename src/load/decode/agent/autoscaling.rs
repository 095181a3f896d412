//! `autoscaling`: the engine (HPA or KEDA), its bounds and triggers, and the
//! scaling behaviour.

use super::*;
use crate::load::diagnostic::Diagnostic;
use crate::load::read::{At, Reader, suggest};
use crate::load::source::{Table, Value};
use crate::model::*;

pub(super) fn decode_autoscaling(
    r: &mut Reader,
    t: &Table,
    resources: &Resources,
    profile: Option<&Table>,
    nats_url: Option<&At<String>>,
    cx: &AgentContext<'_>,
) -> Option<Autoscaling> {
    let table = r.get_table(t, "autoscaling")?;
    let a = table.value;
    r.check_keys(a, "autoscaling", AUTOSCALING_KEYS);
    if r.boolean(a, "enabled") == Some(false) {
        return None;
    }
    let engine = decode_engine_name(r, a, cx.own, profile);
    let keda = engine.as_deref() == Some("keda");
    let min = r.integer(a, "min", 0, 10_000);
    let max = r.integer(a, "max", 1, 10_000);
    if max.is_none() && a.get("max").is_none() {
        r.report(
            Diagnostic::error(&table.origin, "autoscaling has no `max`")
                .with_label("here")
                .with_help("set `max = N`, the most replicas the autoscaler may run"),
        );
    }
    if let (Some(min), Some(max)) = (&min, &max)
        && min.value > max.value
    {
        r.report(
            Diagnostic::error(
                &min.origin,
                format!(
                    "autoscaling min ({}) is above max ({})",
                    min.value, max.value
                ),
            )
            .with_label("min above max")
            .with_help("min must be at most max"),
        );
    }
    let pending = r.integer(a, "pending_per_replica", 1, 1_000_000);
    if let Some(min) = &min
        && min.value == 0
    {
        if engine.is_some() && !keda {
            r.report(
                Diagnostic::error(&min.origin, "autoscaling min = 0 needs `engine = \"keda\"`")
                    .with_label("a HorizontalPodAutoscaler keeps at least 1 replica")
                    .with_help("set `engine = \"keda\"` (KEDA scales an idle agent to zero and wakes it on its first task), or `min = 1`; an HPA reaches zero only behind the alpha HPAScaleToZero feature gate"),
            );
        } else if keda && a.get("pending_per_replica").is_none() {
            r.report(
                Diagnostic::error(&min.origin, "scaling to zero needs `pending_per_replica`")
                    .with_label("nothing would wake the agent")
                    .with_help("memory and CPU are measured on running pods: at zero replicas only pending tasks can wake the agent"),
            );
        }
    }
    let memory = r.integer(a, "memory_utilization", 1, 1000);
    if let Some(memory) = &memory
        && resources.requests.memory.is_none()
    {
        r.report(
            Diagnostic::error(
                &memory.origin,
                "autoscaling on memory utilization needs a memory request",
            )
            .with_label("utilization of what?")
            .with_help("set resources.requests.memory (or pick a profile that does)"),
        );
    }
    let cpu = r.integer(a, "cpu_utilization", 1, 1000);
    if let Some(cpu) = &cpu
        && resources.requests.cpu.is_none()
    {
        r.report(
            Diagnostic::error(
                &cpu.origin,
                "autoscaling on CPU utilization needs a CPU request",
            )
            .with_label("utilization of what?")
            .with_help("set resources.requests.cpu (or pick a profile that does)"),
        );
    }
    if pending.is_none()
        && memory.is_none()
        && cpu.is_none()
        && a.get("pending_per_replica").is_none()
        && a.get("memory_utilization").is_none()
        && a.get("cpu_utilization").is_none()
    {
        r.report(
            Diagnostic::error(&table.origin, "autoscaling has no metric")
                .with_label("scale on what?")
                .with_help("set `pending_per_replica` (tasks waiting on the agent's consumer), `cpu_utilization` and/or `memory_utilization`"),
        );
    }
    let engine = match engine.as_deref() {
        Some("keda") => Engine::Keda(decode_keda(r, a, nats_url, cx)?),
        Some(_) => {
            for entry in a
                .entries
                .iter()
                .filter(|e| KEDA_ONLY_KEYS.contains(&e.key.as_str()))
            {
                r.report(
                    Diagnostic::error(
                        &entry.key_origin,
                        format!("`{}` is a KEDA setting", entry.key),
                    )
                    .with_label("the agent's engine is `hpa`")
                    .with_help("set `engine = \"keda\"` in its `autoscaling`, or remove the key"),
                );
            }
            Engine::Hpa
        }
        None => return None,
    };
    Some(Autoscaling {
        engine,
        min_replicas: min.map_or(1, |m| m.value as u32),
        max_replicas: max?.value as u32,
        pending_per_replica: pending.map(|p| p.value as u32),
        memory_utilization: memory.map(|m| m.value as u32),
        cpu_utilization: cpu.map(|c| c.value as u32),
        // Scaling up may more than double the replicas in a period; scaling
        // down can remove at most all of them.
        scale_up: decode_scaling(
            r,
            a,
            "scale_up",
            ScalingRules {
                stabilization_window_seconds: 60,
                pods: Some(2),
                percent: None,
                period_seconds: 120,
            },
            1000,
        ),
        scale_down: decode_scaling(
            r,
            a,
            "scale_down",
            ScalingRules {
                stabilization_window_seconds: 300,
                pods: Some(1),
                percent: None,
                period_seconds: 300,
            },
            100,
        ),
    })
}

pub(super) const ENGINES: &[&str] = &["hpa", "keda"];

/// `autoscaling.engine`: the agent's own, else its profile's, else the
/// defaults' (`hpa`, the seed's, when none says). `None` when it is not a
/// known engine (reported).
pub(super) fn decode_engine_name(
    r: &mut Reader,
    merged: &Table,
    own: &Table,
    profile: Option<&Table>,
) -> Option<String> {
    let engine_in = |t: &Table| match t.get("autoscaling").map(|e| &e.node.value) {
        Some(Value::Table(a)) => a.get("engine").is_some(),
        _ => false,
    };
    let from = if engine_in(own) {
        merged
    } else {
        match profile {
            Some(profile) if engine_in(profile) => match &profile.get("autoscaling")?.node.value {
                Value::Table(a) => a,
                _ => return None,
            },
            _ => merged,
        }
    };
    let Some(engine) = r.string(from, "engine") else {
        // Not a string (reported), or not set: the seed's HPA.
        return from.get("engine").is_none().then(|| "hpa".into());
    };
    if ENGINES.contains(&engine.value.as_str()) {
        return Some(engine.value);
    }
    let mut d = Diagnostic::error(
        &engine.origin,
        format!("`{}` is not an autoscaling engine", engine.value),
    )
    .with_label("not an engine");
    d = match suggest(&engine.value.to_ascii_lowercase(), ENGINES) {
        Some(best) => d.with_help(format!("did you mean `{best}`?")),
        None => {
            d.with_help("use `hpa` (a HorizontalPodAutoscaler) or `keda` (a KEDA ScaledObject)")
        }
    };
    r.report(d);
    None
}

/// The ScaledObject's own settings, and where KEDA reads NATS: the
/// environment's `nats_monitoring`, else the agent's NATS host on the
/// monitoring port NATS and its Helm chart use (8222).
pub(super) fn decode_keda(
    r: &mut Reader,
    a: &Table,
    nats_url: Option<&At<String>>,
    cx: &AgentContext<'_>,
) -> Option<Keda> {
    let activation_pending = r
        .integer(a, "activation_pending", 0, 1_000_000)
        .map_or(0, |v| v.value as u32);
    let polling_interval = r.seconds(a, "polling_interval");
    if let Some(p) = &polling_interval
        && p.value < 1
    {
        r.report(
            Diagnostic::error(&p.origin, "`polling_interval` must be at least 1s")
                .with_label("KEDA would read NATS without pause"),
        );
    }
    let cooldown = r.seconds(a, "cooldown");
    let fallback = r.integer(a, "fallback", 0, 10_000);
    if let Some(fallback) = &fallback
        && a.get("pending_per_replica").is_none()
    {
        r.report(
            Diagnostic::error(&fallback.origin, "`fallback` needs `pending_per_replica`")
                .with_label("KEDA holds fallback replicas only for a scaler it cannot read")
                .with_help("memory and CPU are read by the HPA itself, not by KEDA: scale on pending tasks too, or remove `fallback`"),
        );
    }
    let (monitoring_endpoint, monitoring_https) = match cx.nats_monitoring {
        Some(monitoring) => monitoring_endpoint(r, monitoring)?,
        None => (default_monitoring_endpoint(&nats_url?.value)?, false),
    };
    Some(Keda {
        monitoring_endpoint,
        monitoring_https,
        account: cx.nats_account.map_or("$G".into(), |a| a.value.clone()),
        activation_pending,
        polling_interval_seconds: polling_interval.map_or(30, |p| p.value),
        cooldown_seconds: cooldown.map_or(300, |c| c.value),
        fallback_replicas: fallback.map(|f| f.value as u32),
    })
}

/// `nats_monitoring`: `host:port`, optionally after `http://` or `https://`.
pub(super) fn monitoring_endpoint(r: &mut Reader, at: &At<String>) -> Option<(String, bool)> {
    let (https, rest) = match at.value.split_once("://") {
        Some(("http", rest)) => (false, Some(rest)),
        Some(("https", rest)) => (true, Some(rest)),
        Some(_) => (false, None),
        None => (false, Some(at.value.as_str())),
    };
    let rest = rest.map(|r| r.trim_end_matches('/'));
    let valid = rest
        .and_then(|r| r.rsplit_once(':'))
        .is_some_and(|(host, port)| {
            !host.is_empty()
                && !host.contains(['/', '@', ' '])
                && port.parse::<u16>().is_ok_and(|p| p > 0)
        });
    match rest {
        Some(rest) if valid => Some((rest.to_string(), https)),
        _ => {
            r.report(
                Diagnostic::error(&at.origin, format!("`{}` is not a NATS monitoring endpoint", at.value))
                    .with_label("expected host:port")
                    .with_help("give the address KEDA reaches NATS's monitoring port at from inside the cluster, e.g. \"nats.nats.svc:8222\" (\"https://...\" when it serves TLS)"),
            );
            None
        }
    }
}

/// The NATS server's host from the agent's `nats_url` (its first URL,
/// without scheme, credentials or port), on port 8222.
pub(super) fn default_monitoring_endpoint(nats_url: &str) -> Option<String> {
    let first = nats_url.split(',').next()?.trim();
    let without_scheme = first.split_once("://").map_or(first, |(_, rest)| rest);
    let host_port = without_scheme
        .rsplit_once('@')
        .map_or(without_scheme, |(_, h)| h);
    let host_port = host_port.split('/').next()?;
    let host = match host_port.strip_prefix('[') {
        Some(v6) => format!("[{}]", v6.split(']').next()?),
        None => host_port.split(':').next()?.to_string(),
    };
    (!host.is_empty()).then(|| format!("{host}:8222"))
}

/// A scaling direction's rules. Setting `pods` or `percent` replaces the
/// default policy; setting both keeps both (the autoscaler then takes the
/// one that allows the larger change).
pub(super) fn decode_scaling(
    r: &mut Reader,
    a: &Table,
    key: &str,
    defaults: ScalingRules,
    max_percent: i64,
) -> ScalingRules {
    let Some(rules) = r.get_table(a, key) else {
        return defaults;
    };
    let s = rules.value;
    r.check_keys(s, key, SCALING_KEYS);
    let pods = r.integer(s, "pods", 1, 10_000).map(|v| v.value as i32);
    let percent = r
        .integer(s, "percent", 1, max_percent)
        .map(|v| v.value as i32);
    let own_policy = s.get("pods").is_some() || s.get("percent").is_some();
    ScalingRules {
        stabilization_window_seconds: r
            .seconds(s, "stabilization")
            .map_or(defaults.stabilization_window_seconds, |v| v.value),
        pods: if own_policy { pods } else { defaults.pods },
        percent: if own_policy {
            percent
        } else {
            defaults.percent
        },
        period_seconds: r
            .seconds(s, "period")
            .map_or(defaults.period_seconds, |v| v.value),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{Definition, TASKS, agent, consuming};
    use crate::model::*;

    const SCALE_UP: ScalingRules = ScalingRules {
        stabilization_window_seconds: 60,
        pods: Some(2),
        percent: None,
        period_seconds: 120,
    };
    const SCALE_DOWN: ScalingRules = ScalingRules {
        stabilization_window_seconds: 300,
        pods: Some(1),
        percent: None,
        period_seconds: 300,
    };

    #[test]
    fn an_hpa_by_default_with_the_seeds_scaling_rules() {
        let a = agent(
            "resources = { requests = { cpu = \"1\" } }\nautoscaling = { max = 4, cpu_utilization = 80 }",
        )
        .unwrap();
        assert_eq!(
            a.autoscaling,
            Some(Autoscaling {
                engine: Engine::Hpa,
                min_replicas: 1,
                max_replicas: 4,
                pending_per_replica: None,
                memory_utilization: None,
                cpu_utilization: Some(80),
                scale_up: SCALE_UP,
                scale_down: SCALE_DOWN,
            })
        );
        let off = agent("autoscaling = { enabled = false, max = 4 }").unwrap();
        assert_eq!(off.autoscaling, None);
    }

    #[test]
    fn keda_reads_nats_beside_the_agents_server_unless_the_environment_says() {
        let a = consuming(
            "autoscaling = { engine = \"keda\", min = 0, max = 3, pending_per_replica = 2 }",
        )
        .unwrap()
        .autoscaling
        .unwrap();
        assert_eq!((a.min_replicas, a.max_replicas), (0, 3));
        assert_eq!(
            a.engine,
            Engine::Keda(Keda {
                monitoring_endpoint: "nats:8222".into(),
                monitoring_https: false,
                account: "$G".into(),
                activation_pending: 0,
                polling_interval_seconds: 30,
                cooldown_seconds: 300,
                fallback_replicas: None,
            })
        );
        let a = Definition {
            agent: "autoscaling = { engine = \"keda\", max = 3, pending_per_replica = 2, activation_pending = 5, polling_interval = \"10s\", cooldown = \"1m\", fallback = 2 }",
            defaults: &format!(
                "consumer = {{ stream = \"tasks\" }}\n{TASKS}[environment]\nnats_monitoring = \"https://mon.nats:8222/\"\nnats_account = \"A\""
            ),
            ..Definition::default()
        }
        .result()
        .unwrap();
        assert_eq!(
            a.autoscaling.unwrap().engine,
            Engine::Keda(Keda {
                monitoring_endpoint: "mon.nats:8222".into(),
                monitoring_https: true,
                account: "A".into(),
                activation_pending: 5,
                polling_interval_seconds: 10,
                cooldown_seconds: 60,
                fallback_replicas: Some(2),
            })
        );
    }

    #[test]
    fn keda_reads_the_first_nats_servers_host_on_port_8222() {
        let endpoint = |url: &str| {
            let a = consuming(&format!(
                "nats_url = \"{url}\"\nautoscaling = {{ engine = \"keda\", max = 3, pending_per_replica = 2 }}"
            ))
            .unwrap();
            match a.autoscaling.unwrap().engine {
                Engine::Keda(keda) => keda.monitoring_endpoint,
                Engine::Hpa => panic!("an HPA for {url}"),
            }
        };
        assert_eq!(
            endpoint("nats://agent:s3cret@nats.messaging.svc:4222,nats://backup:4222"),
            "nats.messaging.svc:8222"
        );
        assert_eq!(endpoint("tls://[fd00::1]:4222"), "[fd00::1]:8222");
        assert_eq!(
            Definition {
                agent: "autoscaling = { engine = \"keda\", max = 3, pending_per_replica = 2 }",
                defaults: &format!(
                    "consumer = {{ stream = \"tasks\" }}\n{TASKS}[environment]\nnats_monitoring = \"nats:8222/varz\""
                ),
                ..Definition::default()
            }
            .result()
            .unwrap_err(),
            ["15:19: `nats:8222/varz` is not a NATS monitoring endpoint"]
        );
    }

    #[test]
    fn the_agents_own_engine_wins_then_its_profiles_then_the_defaults() {
        let engine = |agent: &str| {
            let a = Definition {
                agent,
                defaults: &format!(
                    "consumer = {{ stream = \"tasks\" }}\nautoscaling = {{ engine = \"keda\" }}\n{TASKS}[profiles.steady]\nautoscaling = {{ engine = \"hpa\" }}"
                ),
                ..Definition::default()
            }
            .result()
            .unwrap();
            match a.autoscaling.unwrap().engine {
                Engine::Hpa => "hpa",
                Engine::Keda(_) => "keda",
            }
        };
        let scaled = "autoscaling = { max = 3, pending_per_replica = 2";
        assert_eq!(engine(&format!("{scaled} }}")), "keda");
        assert_eq!(engine(&format!("profile = \"steady\"\n{scaled} }}")), "hpa");
        assert_eq!(
            engine(&format!(
                "profile = \"steady\"\n{scaled}, engine = \"keda\" }}"
            )),
            "keda"
        );
    }

    #[test]
    fn min_zero_needs_the_keda_engine_and_pending_tasks_to_wake_on() {
        assert_eq!(
            consuming("autoscaling = { min = 0, max = 3, pending_per_replica = 2 }").unwrap_err(),
            ["2:23: autoscaling min = 0 needs `engine = \"keda\"`"]
        );
        assert_eq!(
            agent(
                "resources = { requests = { cpu = \"1\" } }\nautoscaling = { engine = \"keda\", min = 0, max = 3, cpu_utilization = 80 }"
            )
            .unwrap_err(),
            ["3:40: scaling to zero needs `pending_per_replica`"]
        );
    }

    #[test]
    fn autoscaling_needs_a_max_a_metric_and_min_at_most_max() {
        assert_eq!(
            agent("autoscaling = { min = 2 }").unwrap_err(),
            [
                "2:1: autoscaling has no `max`",
                "2:1: autoscaling has no metric"
            ]
        );
        assert_eq!(
            consuming("autoscaling = { min = 5, max = 3, pending_per_replica = 2 }").unwrap_err(),
            ["2:23: autoscaling min (5) is above max (3)"]
        );
    }

    #[test]
    fn utilization_needs_a_request_of_that_resource() {
        assert_eq!(
            agent("autoscaling = { max = 3, memory_utilization = 80, cpu_utilization = 70 }")
                .unwrap_err(),
            [
                "2:47: autoscaling on memory utilization needs a memory request",
                "2:69: autoscaling on CPU utilization needs a CPU request",
            ]
        );
        let a = agent("profile = \"observer\"\nautoscaling = { max = 3, memory_utilization = 80, cpu_utilization = 70 }")
            .unwrap();
        let a = a.autoscaling.unwrap();
        assert_eq!(
            (a.memory_utilization, a.cpu_utilization),
            (Some(80), Some(70))
        );
    }

    #[test]
    fn keda_settings_are_refused_with_the_hpa_and_checked_with_keda() {
        assert_eq!(
            agent("profile = \"observer\"\nautoscaling = { max = 3, cpu_utilization = 80, cooldown = \"1m\", fallback = 1 }")
                .unwrap_err(),
            [
                "3:48: `cooldown` is a KEDA setting",
                "3:65: `fallback` is a KEDA setting",
            ]
        );
        assert_eq!(
            agent("profile = \"observer\"\nautoscaling = { engine = \"Keda\", max = 3, cpu_utilization = 80 }")
                .unwrap_err(),
            ["3:26: `Keda` is not an autoscaling engine"]
        );
        assert_eq!(
            agent("profile = \"observer\"\nautoscaling = { engine = \"keda\", max = 3, cpu_utilization = 80, polling_interval = \"0s\", fallback = 1 }")
                .unwrap_err(),
            [
                "3:84: `polling_interval` must be at least 1s",
                "3:101: `fallback` needs `pending_per_replica`",
            ]
        );
    }

    #[test]
    fn a_scaling_policy_of_the_agents_replaces_the_default_one() {
        let a = agent(
            "profile = \"observer\"\nautoscaling = { max = 3, cpu_utilization = 80, scale_up = { percent = 100 }, scale_down = { stabilization = \"1m\", pods = 2, percent = 50, period = \"30s\" } }",
        )
        .unwrap()
        .autoscaling
        .unwrap();
        assert_eq!(
            a.scale_up,
            ScalingRules {
                percent: Some(100),
                pods: None,
                ..SCALE_UP
            }
        );
        assert_eq!(
            a.scale_down,
            ScalingRules {
                stabilization_window_seconds: 60,
                pods: Some(2),
                percent: Some(50),
                period_seconds: 30,
            }
        );
        assert_eq!(
            agent("profile = \"observer\"\nautoscaling = { max = 3, cpu_utilization = 80, scale_down = { percent = 150 } }")
                .unwrap_err(),
            ["3:73: 150 is out of range"]
        );
    }
}
