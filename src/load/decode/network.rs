//! An agent's network rules, read into a [`NetworkPolicy`].

use super::*;
use crate::load::diagnostic::Diagnostic;
use crate::load::read::{Reader, suggest};
use crate::load::source::{Table, Value};
use crate::model::*;

/// `unlabelled`: the fleet's namespace when fleet does not manage it, so
/// does not give it the `name` label the seed's rules select it by.
pub(super) fn decode_network(
    r: &mut Reader,
    t: &Table,
    running: &[&str],
    unlabelled: Option<&str>,
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
            unlabelled,
        ),
        egress: decode_rules(r, n, "egress", "to", EGRESS_RULE_KEYS, running, unlabelled),
    })
}

pub(super) fn decode_rules(
    r: &mut Reader,
    n: &Table,
    key: &str,
    peers_key: &str,
    keys: &[&str],
    running: &[&str],
    unlabelled: Option<&str>,
) -> Vec<NetworkRule> {
    let Some(items) = r.array(n, key) else {
        return Vec::new();
    };
    let mut rules = Vec::new();
    for item in items {
        let Some(rule) = r.table(item) else { continue };
        r.check_keys(rule, &format!("a network {key} rule"), keys);
        let mut peers = Vec::new();
        for peer in r.array(rule, peers_key).unwrap_or_default() {
            let Some(p) = r.table(peer) else { continue };
            r.check_keys(p, "a network peer", PEER_KEYS);
            if p.entries.len() != 1 {
                r.report(
                    Diagnostic::error(
                        &peer.origin,
                        "a peer names exactly one of pods, namespaces, agent or cidr",
                    )
                    .with_label("one kind of peer per entry")
                    .with_help(
                        "write each peer as its own entry, e.g. { pods = { app = \"nats\" } }",
                    ),
                );
                continue;
            }
            if let Some(labels) = r.string_map(p, "pods") {
                peers.push(NetworkPeer::Pods(labels));
            } else if let Some(labels) = r.string_map(p, "namespaces") {
                if let Some(namespace) = unlabelled
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
                peers.push(NetworkPeer::Namespaces(labels));
            } else if let Some(role) = r.string(p, "agent") {
                if running.contains(&role.value.as_str()) {
                    peers.push(NetworkPeer::Agent(role.value));
                } else {
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
                }
            } else if let Some(cidr) = r.string(p, "cidr") {
                if valid_cidr(&cidr.value) {
                    peers.push(NetworkPeer::Cidr(cidr.value));
                } else {
                    r.report(
                        Diagnostic::error(&cidr.origin, format!("`{}` is not a CIDR", cidr.value))
                            .with_label("not a CIDR")
                            .with_help("write an address and prefix length, e.g. \"10.0.0.1/32\""),
                    );
                }
            }
        }
        let mut ports = Vec::new();
        for port in r.array(rule, "ports").unwrap_or_default() {
            match &port.value {
                Value::Integer(_) => {
                    if let Some(p) = r.node_integer(port, 1, 65535) {
                        ports.push(NetworkPort {
                            protocol: "TCP".into(),
                            port: p.value as u16,
                        });
                    }
                }
                Value::String(s) => match parse_port(s) {
                    Some(p) => ports.push(p),
                    None => r.report(
                        Diagnostic::error(&port.origin, format!("`{s}` is not a port"))
                            .with_label("not a port")
                            .with_help(
                                "write a number from 1 to 65535 (TCP), or \"53/udp\", \"443/tcp\", \"9000/sctp\"",
                            ),
                    ),
                },
                _ => r.report(
                    Diagnostic::error(&port.origin, "expected a port number or \"port/protocol\"")
                        .with_label("not a port"),
                ),
            }
        }
        rules.push(NetworkRule { peers, ports });
    }
    rules
}

pub(super) fn parse_port(s: &str) -> Option<NetworkPort> {
    let (port, protocol) = s.split_once('/').unwrap_or((s, "tcp"));
    let port: u16 = port.parse().ok().filter(|p| *p > 0)?;
    let protocol = match protocol.to_ascii_lowercase().as_str() {
        "tcp" => "TCP",
        "udp" => "UDP",
        "sctp" => "SCTP",
        _ => return None,
    };
    Some(NetworkPort {
        protocol: protocol.into(),
        port,
    })
}

pub(super) fn valid_cidr(s: &str) -> bool {
    let Some((address, prefix)) = s.split_once('/') else {
        return false;
    };
    let Ok(address) = address.parse::<std::net::IpAddr>() else {
        return false;
    };
    let max = if address.is_ipv4() { 32 } else { 128 };
    prefix.parse::<u8>().is_ok_and(|p| p <= max)
}
