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

#[cfg(test)]
mod tests {
    use super::super::testing::{Definition, agent};
    use crate::model::*;

    #[test]
    fn the_built_in_security_context_meets_restricted() {
        assert_eq!(agent("").unwrap().security, SecurityContext::default());
    }

    #[test]
    fn the_agents_settings_are_laid_over_the_built_in_ones() {
        let security = agent(
            "security = { run_as_user = 2000, fs_group = 3000, read_only_root_filesystem = false, add_capabilities = [\"NET_BIND_SERVICE\", \"NET_BIND_SERVICE\"], seccomp_profile = \"localhost/agent.json\" }",
        )
        .unwrap()
        .security;
        assert_eq!(
            security,
            SecurityContext {
                run_as_non_root: true,
                run_as_user: 2000,
                fs_group: 3000,
                read_only_root_filesystem: false,
                allow_privilege_escalation: false,
                add_capabilities: vec!["NET_BIND_SERVICE".into()],
                seccomp_profile: SeccompProfile::Localhost("agent.json".into()),
            }
        );
    }

    #[test]
    fn restricted_refuses_root_escalation_and_capabilities_but_net_bind_service() {
        assert_eq!(
            agent(
                "[agents.a.security]\nrun_as_non_root = false\nrun_as_user = 0\nallow_privilege_escalation = true\nadd_capabilities = [\"NET_BIND_SERVICE\", \"CHOWN\"]"
            )
            .unwrap_err(),
            [
                "3:19: agent `a` sets `run_as_non_root = false`, which Pod Security level `restricted` forbids",
                "4:15: agent `a` sets `run_as_user = 0` (root), which Pod Security level `restricted` forbids",
                "5:30: agent `a` sets `allow_privilege_escalation = true`, which Pod Security level `restricted` forbids",
                "6:41: agent `a` sets capability `CHOWN`, which Pod Security level `restricted` forbids",
            ]
        );
    }

    #[test]
    fn baseline_allows_its_capabilities_and_root_but_not_unconfined_seccomp() {
        let lines = "[agents.a.security]\nrun_as_non_root = false\nrun_as_user = 0\nadd_capabilities = [\"SYS_CHROOT\", \"SYS_ADMIN\"]\nseccomp_profile = \"Unconfined\"";
        let at = |level: &str| {
            Definition {
                agent: lines,
                fleet: &format!("pod_security = \"{level}\""),
                ..Definition::default()
            }
            .result()
        };
        assert_eq!(
            at("baseline").unwrap_err(),
            [
                "5:35: agent `a` sets capability `SYS_ADMIN`, which Pod Security level `baseline` forbids",
                "6:19: agent `a` sets `seccomp_profile = \"Unconfined\"`, which Pod Security level `baseline` forbids",
            ]
        );
        let security = at("privileged").unwrap().security;
        assert_eq!(security.add_capabilities, ["SYS_CHROOT", "SYS_ADMIN"]);
        assert_eq!(security.seccomp_profile, SeccompProfile::Unconfined);
        assert_eq!((security.run_as_non_root, security.run_as_user), (false, 0));
    }

    #[test]
    fn the_environments_level_and_settings_are_the_ones_checked() {
        // The environment raises the level: the fleet file's setting is refused.
        assert_eq!(
            Definition {
                agent: "security = { add_capabilities = [\"SYS_CHROOT\"] }",
                fleet: "pod_security = \"baseline\"",
                environment: Some("[fleet]\npod_security = \"restricted\"\n"),
                ..Definition::default()
            }
            .result()
            .unwrap_err(),
            [
                "2:34: agent `a` sets capability `SYS_CHROOT`, which Pod Security level `restricted` forbids"
            ]
        );
        // The environment opts out: its own setting is refused, in its file.
        assert_eq!(
            Definition {
                environment: Some("[agents.a]\nsecurity = { run_as_user = 0 }\n"),
                ..Definition::default()
            }
            .result()
            .unwrap_err(),
            [
                "environments/e.toml:2:28: agent `a` sets `run_as_user = 0` (root), which Pod Security level `restricted` forbids"
            ]
        );
    }

    #[test]
    fn capabilities_and_seccomp_profiles_are_named_as_kubernetes_names_them() {
        assert_eq!(
            Definition {
                agent: "[agents.a.security]\nadd_capabilities = [\"CAP_NET_ADMIN\", \"net_admin\", \"\"]\nseccomp_profile = \"runtime/default\"\nread_only_root_fs = true",
                fleet: "pod_security = \"privileged\"",
                ..Definition::default()
            }
            .result()
            .unwrap_err(),
            [
                "5:1: unknown key `read_only_root_fs` in security",
                "3:21: write capability `CAP_NET_ADMIN` as `NET_ADMIN`",
                "3:38: `net_admin` is not a capability name",
                "3:51: `` is not a capability name",
                "4:19: `runtime/default` is not a seccomp profile",
            ]
        );
        assert_eq!(
            agent("security = { seccomp_profile = \"localhost/\" }").unwrap_err(),
            ["2:32: `localhost/` is not a seccomp profile"]
        );
    }
}
