//! An agent's network rules, read into a [`NetworkPolicy`].

use super::*;
use crate::load::diagnostic::Diagnostic;
use crate::load::read::{Reader, suggest};
use crate::load::source::{Node, Table, Value};
use crate::model::*;

/// What namespace peers are checked against.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct FleetNamespace<'a> {
    /// The fleet's namespace when fleet does not manage it, so does not give
    /// it the `name` label the seed's rules select it by.
    pub(super) unlabelled: Option<&'a str>,
    /// fleet.toml's namespace and the one the environment moves the fleet
    /// to: a rule still naming the first most likely meant the fleet's own.
    pub(super) moved: Option<(&'a str, &'a str)>,
}

pub(super) fn decode_network(
    r: &mut Reader,
    t: &Table,
    running: &[&str],
    fleet_ns: FleetNamespace<'_>,
) -> Option<NetworkPolicy> {
    let table = r.get_table(t, "network")?;
    let n = table.value;
    r.check_keys(n, "network", NETWORK_KEYS);
    if r.boolean(n, "enabled") == Some(false) {
        return None;
    }
    Some(NetworkPolicy {
        ingress: decode_rules(
            r,
            n,
            "ingress",
            "from",
            INGRESS_RULE_KEYS,
            running,
            fleet_ns,
        ),
        egress: decode_rules(r, n, "egress", "to", EGRESS_RULE_KEYS, running, fleet_ns),
    })
}

/// `ingress` / `egress`: an array of rules, or a table of named rules that
/// an environment can change one by one (tables merge, arrays replace).
pub(super) fn decode_rules(
    r: &mut Reader,
    n: &Table,
    key: &str,
    peers_key: &str,
    keys: &[&str],
    running: &[&str],
    fleet_ns: FleetNamespace<'_>,
) -> Vec<NetworkRule> {
    let items: Vec<(&Node, String)> = match n.get(key).map(|e| &e.node.value) {
        Some(Value::Table(named)) => {
            let keyed: Vec<&str> = keys.iter().copied().chain(["enabled"]).collect();
            named
                .entries
                .iter()
                .filter_map(|entry| {
                    let rule = r.table(&entry.node)?;
                    r.check_keys(rule, &format!("network {key} rule `{}`", entry.key), &keyed);
                    (r.boolean(rule, "enabled") != Some(false))
                        .then_some((&entry.node, String::new()))
                })
                .collect()
        }
        _ => match r.array(n, key) {
            Some(items) => items
                .iter()
                .map(|item| (item, format!("a network {key} rule")))
                .collect(),
            None => return Vec::new(),
        },
    };
    let mut rules = Vec::new();
    for (item, what) in items {
        let Some(rule) = r.table(item) else { continue };
        if !what.is_empty() {
            r.check_keys(rule, &what, keys);
        }
        let mut peers = Vec::new();
        for peer in r.array(rule, peers_key).unwrap_or_default() {
            if let Some(p) = decode_peer(r, peer, running, fleet_ns) {
                peers.push(p);
            }
        }
        let mut ports = Vec::new();
        for port in r.array(rule, "ports").unwrap_or_default() {
            ports.extend(decode_port(r, port));
        }
        rules.push(NetworkRule { peers, ports });
    }
    rules
}

fn decode_peer(
    r: &mut Reader,
    peer: &Node,
    running: &[&str],
    fleet_ns: FleetNamespace<'_>,
) -> Option<NetworkPeer> {
    let p = r.table(peer)?;
    r.check_keys(p, "a network peer", PEER_KEYS);
    let has = |key: &str| p.get(key).is_some();
    // Pods and namespaces together are one peer (both must match), and
    // `except` belongs to a cidr; anything else is one kind per entry.
    let kinds = ["pods", "namespaces", "agent", "cidr"]
        .into_iter()
        .filter(|k| has(k))
        .count();
    let combined = has("pods") && has("namespaces");
    if kinds == 0 || (kinds > 1 && !(kinds == 2 && combined)) {
        r.report(
            Diagnostic::error(
                &peer.origin,
                "a peer names one of pods, namespaces, agent or cidr (or pods and namespaces together)",
            )
            .with_label("one kind of peer per entry")
            .with_help(
                "write each peer as its own entry, e.g. { pods = { app = \"nats\" } }; { pods = ..., namespaces = ... } selects those pods in those namespaces",
            ),
        );
        return None;
    }
    if let Some(except) = p.get("except")
        && !has("cidr")
    {
        r.report(
            Diagnostic::error(&except.key_origin, "`except` belongs to a `cidr` peer")
                .with_label("no cidr to take these out of")
                .with_help("write { cidr = \"10.0.0.0/8\", except = [\"10.1.0.0/16\"] }"),
        );
        return None;
    }
    if combined {
        let pods = r.string_map(p, "pods")?;
        let namespaces = r.string_map(p, "namespaces")?;
        moved_namespace(r, peer, &namespaces, fleet_ns);
        return Some(NetworkPeer::PodsInNamespaces { pods, namespaces });
    }
    if let Some(labels) = r.string_map(p, "pods") {
        return Some(NetworkPeer::Pods(labels));
    }
    if let Some(labels) = r.string_map(p, "namespaces") {
        moved_namespace(r, peer, &labels, fleet_ns);
        if let Some(namespace) = fleet_ns.unlabelled
            && labels.get("name").is_some_and(|n| n == namespace)
        {
            r.report(
                Diagnostic::warning(
                    &peer.origin,
                    format!("this peer selects namespace `{namespace}` by a `name` label that fleet does not set"),
                )
                .with_label("fleet labels only a namespace it manages ([fleet] manage_namespace = false)")
                .with_help(format!(
                    "select it by `kubernetes.io/metadata.name = \"{namespace}\"`, which every namespace carries, or have its administrators label it `name={namespace}`"
                )),
            );
        }
        return Some(NetworkPeer::Namespaces(labels));
    }
    if let Some(role) = r.string(p, "agent") {
        if running.contains(&role.value.as_str()) {
            return Some(NetworkPeer::Agent(role.value));
        }
        let mut d = Diagnostic::error(
            &role.origin,
            format!(
                "network rule names agent `{}`, which the fleet does not run",
                role.value
            ),
        )
        .with_label("no such agent");
        if let Some(best) = suggest(&role.value, running) {
            d = d.with_help(format!("did you mean `{best}`?"));
        }
        r.report(d);
        return None;
    }
    let cidr = r.string(p, "cidr")?;
    let Some(block) = parse_cidr(&cidr.value) else {
        r.report(
            Diagnostic::error(&cidr.origin, format!("`{}` is not a CIDR", cidr.value))
                .with_label("not a CIDR")
                .with_help("write an address and prefix length, e.g. \"10.0.0.1/32\""),
        );
        return None;
    };
    let mut except = Vec::new();
    for hole in r.strings(p, "except").unwrap_or_default() {
        match parse_cidr(&hole.value) {
            Some(inner) if block.strictly_contains(&inner) => except.push(hole.value),
            Some(_) => r.report(
                Diagnostic::error(
                    &hole.origin,
                    format!("`{}` is not inside `{}`", hole.value, cidr.value),
                )
                .with_label("outside the cidr, or all of it")
                .with_help("each `except` must be a smaller block inside the peer's cidr"),
            ),
            None => r.report(
                Diagnostic::error(&hole.origin, format!("`{}` is not a CIDR", hole.value))
                    .with_label("not a CIDR")
                    .with_help("write an address and prefix length, e.g. \"10.1.0.0/16\""),
            ),
        }
    }
    Some(NetworkPeer::Cidr {
        cidr: cidr.value,
        except,
    })
}

/// `443`, `"53/udp"`, `"8000-8100"`, `"8000-8100/udp"`, or
/// `{ port = 8000, end_port = 8100, protocol = "UDP" }`.
fn decode_port(r: &mut Reader, port: &Node) -> Option<NetworkPort> {
    match &port.value {
        Value::Integer(_) => r.node_integer(port, 1, 65535).map(|p| NetworkPort {
            protocol: "TCP".into(),
            port: p.value as u16,
            end_port: None,
        }),
        Value::String(s) => {
            let parsed = parse_port(s);
            if parsed.is_none() {
                r.report(
                    Diagnostic::error(&port.origin, format!("`{s}` is not a port"))
                        .with_label("not a port")
                        .with_help(
                            "write a number from 1 to 65535 (TCP), \"53/udp\", \"443/tcp\", \"9000/sctp\", or a range \"8000-8100\"",
                        ),
                );
            }
            parsed
        }
        Value::Table(t) => {
            r.check_keys(t, "a network port", PORT_KEYS);
            let number = r.integer(t, "port", 1, 65535);
            if number.is_none() && t.get("port").is_none() {
                r.report(
                    Diagnostic::error(&port.origin, "a port has no `port`")
                        .with_label("`port` is required here")
                        .with_help("add `port = 8000`"),
                );
            }
            let protocol = match r.string(t, "protocol") {
                Some(p) => match ["TCP", "UDP", "SCTP"]
                    .iter()
                    .find(|known| p.value.eq_ignore_ascii_case(known))
                {
                    Some(known) => known.to_string(),
                    None => {
                        r.report(
                            Diagnostic::error(
                                &p.origin,
                                format!("`{}` is not a protocol", p.value),
                            )
                            .with_label("expected one of: TCP, UDP, SCTP"),
                        );
                        return None;
                    }
                },
                None => "TCP".into(),
            };
            let end = r.integer(t, "end_port", 1, 65535);
            let number = number?;
            if let Some(end) = &end
                && end.value < number.value
            {
                r.report(
                    Diagnostic::error(
                        &end.origin,
                        format!("end_port {} is below port {}", end.value, number.value),
                    )
                    .with_label("an empty range")
                    .with_help("end_port is the last port of the range: at least `port`"),
                );
                return None;
            }
            Some(NetworkPort {
                protocol,
                port: number.value as u16,
                end_port: end.map(|e| e.value as u16),
            })
        }
        _ => {
            r.report(
                Diagnostic::error(
                    &port.origin,
                    "expected a port number, \"port/protocol\" or { port = ..., protocol = ... }",
                )
                .with_label("not a port"),
            );
            None
        }
    }
}

pub(super) fn parse_port(s: &str) -> Option<NetworkPort> {
    let (port, protocol) = s.split_once('/').unwrap_or((s, "tcp"));
    let (port, end_port) = match port.split_once('-') {
        Some((first, last)) => (first, Some(last)),
        None => (port, None),
    };
    let port: u16 = port.parse().ok().filter(|p| *p > 0)?;
    let end_port = match end_port {
        Some(last) => Some(last.parse::<u16>().ok().filter(|last| *last >= port)?),
        None => None,
    };
    let protocol = match protocol.to_ascii_lowercase().as_str() {
        "tcp" => "TCP",
        "udp" => "UDP",
        "sctp" => "SCTP",
        _ => return None,
    };
    Some(NetworkPort {
        protocol: protocol.into(),
        port,
        end_port,
    })
}

/// An address block: its address as bits, and its prefix length.
pub(super) struct Block {
    bits: u128,
    prefix: u8,
    v4: bool,
}

impl Block {
    /// Whether `inner` is a smaller block inside this one (the API server
    /// refuses an `except` that is not).
    fn strictly_contains(&self, inner: &Block) -> bool {
        let width = if self.v4 { 32 } else { 128 };
        let mask = |prefix: u8| match u32::from(width - prefix) {
            128 => 0,
            shift => u128::MAX << shift,
        };
        self.v4 == inner.v4
            && inner.prefix > self.prefix
            && inner.bits & mask(self.prefix) == self.bits & mask(self.prefix)
    }
}

pub(super) fn parse_cidr(s: &str) -> Option<Block> {
    let (address, prefix) = s.split_once('/')?;
    let (bits, v4) = match address.parse::<std::net::IpAddr>().ok()? {
        std::net::IpAddr::V4(a) => (u128::from(u32::from(a)), true),
        std::net::IpAddr::V6(a) => (u128::from(a), false),
    };
    let prefix: u8 = prefix
        .parse()
        .ok()
        .filter(|p| *p <= if v4 { 32 } else { 128 })?;
    Some(Block { bits, prefix, v4 })
}

/// Warns when a peer selects, by name, the namespace fleet.toml puts the
/// fleet in while the environment moves it elsewhere: the example's NATS
/// rule ("from the fleet's namespace") kept naming `agent-system` after
/// the fleet moved, and nothing said so.
fn moved_namespace(
    r: &mut Reader,
    peer: &Node,
    labels: &BTreeMap<String, String>,
    fleet_ns: FleetNamespace<'_>,
) {
    let Some((from, to)) = fleet_ns.moved else {
        return;
    };
    let names_it = ["name", "kubernetes.io/metadata.name"]
        .iter()
        .any(|key| labels.get(*key).is_some_and(|value| value == from));
    if names_it {
        r.report(
            Diagnostic::warning(
                &peer.origin,
                format!("this peer selects namespace `{from}`, the fleet's namespace in fleet.toml, but this environment deploys the fleet to `{to}`"),
            )
            .with_label("not the fleet's namespace here")
            .with_help(format!(
                "if it means the fleet's own namespace, name `{to}` in the environment (a named rule can be changed there alone); if it means `{from}` itself, ignore this"
            )),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn except_must_be_inside_the_block() {
        let block = parse_cidr("10.0.0.0/8").unwrap();
        assert!(block.strictly_contains(&parse_cidr("10.1.0.0/16").unwrap()));
        assert!(!block.strictly_contains(&parse_cidr("11.0.0.0/16").unwrap()));
        assert!(!block.strictly_contains(&parse_cidr("10.0.0.0/8").unwrap()));
        assert!(!block.strictly_contains(&parse_cidr("fd00::/16").unwrap()));
        let any = parse_cidr("0.0.0.0/0").unwrap();
        assert!(any.strictly_contains(&parse_cidr("169.254.169.254/32").unwrap()));
        let v6 = parse_cidr("fd00::/8").unwrap();
        assert!(v6.strictly_contains(&parse_cidr("fd12::/16").unwrap()));
    }

    #[test]
    fn port_ranges() {
        let range = parse_port("8000-8100/udp").unwrap();
        assert_eq!(
            (range.port, range.end_port, range.protocol.as_str()),
            (8000, Some(8100), "UDP")
        );
        assert!(parse_port("8100-8000").is_none());
        assert_eq!(parse_port("443").unwrap().end_port, None);
    }
}
