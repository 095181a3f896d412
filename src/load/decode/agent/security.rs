//! The `security` table: the pod and container security context, checked
//! against the Pod Security level the namespace enforces.

use super::*;
use crate::load::diagnostic::Diagnostic;
use crate::load::read::Reader;
use crate::load::source::{Origin, Table};
use crate::model::*;

/// Capabilities the `baseline` Pod Security Standard lets a container add.
/// https://kubernetes.io/docs/concepts/security/pod-security-standards/
pub(super) const BASELINE_CAPABILITIES: &[&str] = &[
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

/// The agent's `security` table. Each setting that the namespace's Pod
/// Security level forbids is an error where it is written: the API server
/// would reject every pod of the agent, and the rollout would never finish.
pub(super) fn decode_security(
    r: &mut Reader,
    t: &Table,
    role: &str,
    cx: &AgentContext<'_>,
) -> SecurityContext {
    let mut security = SecurityContext::default();
    let Some(table) = r.get_table(t, "security") else {
        return security;
    };
    let s = table.value;
    r.check_keys(s, "security", SECURITY_KEYS);
    let origin = |key: &str| s.get(key).map(|e| e.node.origin.clone());
    // (where, the setting as written, the most restrictive level it meets)
    let mut settings: Vec<(Origin, String, PodSecurityLevel)> = Vec::new();

    if let Some(value) = r.boolean(s, "run_as_non_root") {
        security.run_as_non_root = value;
        if !value {
            settings.extend(origin("run_as_non_root").map(|o| {
                (
                    o,
                    "`run_as_non_root = false`".into(),
                    PodSecurityLevel::Baseline,
                )
            }));
        }
    }
    if let Some(user) = r.integer(s, "run_as_user", 0, i32::MAX.into()) {
        security.run_as_user = user.value;
        if user.value == 0 {
            settings.push((
                user.origin,
                "`run_as_user = 0` (root)".into(),
                PodSecurityLevel::Baseline,
            ));
        }
    }
    if let Some(group) = r.integer(s, "fs_group", 0, i32::MAX.into()) {
        security.fs_group = group.value;
    }
    if let Some(value) = r.boolean(s, "read_only_root_filesystem") {
        security.read_only_root_filesystem = value;
    }
    if let Some(value) = r.boolean(s, "allow_privilege_escalation") {
        security.allow_privilege_escalation = value;
        if value {
            settings.extend(origin("allow_privilege_escalation").map(|o| {
                (
                    o,
                    "`allow_privilege_escalation = true`".into(),
                    PodSecurityLevel::Baseline,
                )
            }));
        }
    }
    for capability in r.strings(s, "add_capabilities").unwrap_or_default() {
        let name = &capability.value;
        if let Some(bare) = name.strip_prefix("CAP_") {
            r.report(
                Diagnostic::error(&capability.origin, format!("write capability `{name}` as `{bare}`"))
                    .with_label("Kubernetes names capabilities without `CAP_`")
                    .with_help("Pod Security admission compares the names as written, so `CAP_` names are refused even where the capability is allowed"),
            );
            continue;
        }
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        {
            r.report(
                Diagnostic::error(
                    &capability.origin,
                    format!("`{name}` is not a capability name"),
                )
                .with_label("not a capability")
                .with_help(
                    "write capabilities in upper case without `CAP_`, e.g. \"NET_BIND_SERVICE\"",
                ),
            );
            continue;
        }
        let meets = if name == "NET_BIND_SERVICE" {
            PodSecurityLevel::Restricted
        } else if BASELINE_CAPABILITIES.contains(&name.as_str()) {
            PodSecurityLevel::Baseline
        } else {
            PodSecurityLevel::Privileged
        };
        settings.push((
            capability.origin.clone(),
            format!("capability `{name}`"),
            meets,
        ));
        if !security.add_capabilities.contains(name) {
            security.add_capabilities.push(name.clone());
        }
    }
    if let Some(profile) = r.string(s, "seccomp_profile") {
        let parsed = match profile.value.as_str() {
            "RuntimeDefault" => Some(SeccompProfile::RuntimeDefault),
            "Unconfined" => Some(SeccompProfile::Unconfined),
            other => other
                .strip_prefix("localhost/")
                .filter(|path| !path.is_empty())
                .map(|path| SeccompProfile::Localhost(path.to_string())),
        };
        match parsed {
            Some(parsed) => {
                if parsed == SeccompProfile::Unconfined {
                    settings.push((
                        profile.origin,
                        "`seccomp_profile = \"Unconfined\"`".into(),
                        PodSecurityLevel::Privileged,
                    ));
                }
                security.seccomp_profile = parsed;
            }
            None => r.report(
                Diagnostic::error(&profile.origin, format!("`{}` is not a seccomp profile", profile.value))
                    .with_label("not a seccomp profile")
                    .with_help("use \"RuntimeDefault\", \"Unconfined\", or \"localhost/<path>\" for a profile file in the kubelet's seccomp directory"),
            ),
        }
    }

    if let Some(enforced) = cx.pod_security {
        let namespace = cx.namespace.unwrap_or("the fleet's namespace");
        for (at, setting, meets) in settings {
            if meets >= enforced.value {
                continue;
            }
            let level = enforced.value.as_str();
            r.report(
                Diagnostic::error(
                    &at,
                    format!("agent `{role}` sets {setting}, which Pod Security level `{level}` forbids"),
                )
                .with_label(format!("namespace `{namespace}` enforces `{level}`: every pod of this agent would be rejected"))
                .with_help(format!(
                    "remove the setting, or set `pod_security = \"{}\"` under [fleet] (for the whole namespace)",
                    meets.as_str()
                )),
            );
        }
    }
    security
}
