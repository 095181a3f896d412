//! A process's identity on its machine, as the deploy lock records its
//! holder, and whether a recorded process has provably ended: then its lock
//! need not be waited out.
//!
//! The identity is `BOOT/PIDNS/PID/START`: the kernel's boot id, the PID
//! namespace, the pid, and the process's start time in clock ticks since
//! boot (a pid used again starts later). Linux only: elsewhere there is
//! none, and no holder is ever known to have ended.
//!
//! Also who runs it where, for people: `user@host` ([`user_at_host`]), as
//! the deploy lock's holder and the apply record name a run outside CI.

use crate::env_vars::EnvVars;
use std::fs;

/// This process's identity, where `/proc` tells it.
pub(crate) fn current() -> Option<String> {
    let (boot, namespace) = machine()?;
    let pid = std::process::id();
    let (start, _) = stat(pid)?;
    Some(format!("{boot}/{namespace}/{pid}/{start}"))
}

/// Whether the process `recorded` by [`current`] has ended: it ran under
/// this boot of this kernel, in this PID namespace, and no live process has
/// its pid and start time. Another machine, container or boot cannot be
/// told, and is never taken for ended.
pub(crate) fn has_ended(recorded: &str) -> bool {
    let parts: Vec<&str> = recorded.split('/').collect();
    let [boot, namespace, pid, start] = parts[..] else {
        return false;
    };
    let Some((my_boot, my_namespace)) = machine() else {
        return false;
    };
    let Ok(pid) = pid.parse::<u32>() else {
        return false;
    };
    if boot != my_boot || namespace != my_namespace {
        return false;
    }
    match stat(pid) {
        None => true,
        Some((started, state)) => started.to_string() != start || state == 'Z',
    }
}

/// Who runs this process where, for people: `user@host`.
pub(crate) fn user_at_host() -> String {
    user_at(&|name| std::env::var(name).ok(), &hostname())
}

/// `user@host` for the environment `var` reads: the user is `USER`, else
/// `LOGNAME`, else `USERNAME` (Windows), else `unknown`.
pub(crate) fn user_at(var: &dyn Fn(&str) -> Option<String>, host: &str) -> String {
    let user = [EnvVars::USER, EnvVars::LOGNAME, EnvVars::USERNAME]
        .into_iter()
        .filter_map(var)
        .map(|user| user.trim().to_string())
        .find(|user| !user.is_empty())
        .unwrap_or_else(|| "unknown".into());
    format!("{user}@{host}")
}

/// This machine's name: the kernel's, else `HOSTNAME` or (Windows)
/// `COMPUTERNAME`, else `unknown-host`.
pub(crate) fn hostname() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|path| fs::read_to_string(path).ok())
        .or_else(|| std::env::var(EnvVars::HOSTNAME).ok())
        .or_else(|| std::env::var(EnvVars::COMPUTERNAME).ok())
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "unknown-host".into())
}

/// The boot id and the PID namespace of this process.
fn machine() -> Option<(String, String)> {
    let boot = fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    // `pid:[4026531836]`
    let namespace = fs::read_link("/proc/self/ns/pid").ok()?;
    let namespace = namespace.to_str()?.trim_start_matches("pid:[");
    Some((
        boot.trim().to_string(),
        namespace.trim_end_matches(']').to_string(),
    ))
}

/// A process's start time and state (`Z` for a zombie), from
/// `/proc/PID/stat`; `None` when no such process exists.
fn stat(pid: u32) -> Option<(u64, char)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command (field 2) is in parentheses and may hold anything, so the
    // fields are counted from its closing one: state is field 3, start 22.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let start = fields.nth(18)?.parse().ok()?;
    Some((start, state))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_at_host_names_the_first_user_variable_set() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(user_at(&env(&[("USER", "ana")]), "laptop"), "ana@laptop");
        assert_eq!(
            user_at(
                &env(&[("USER", " "), ("LOGNAME", "bo"), ("USERNAME", "cy")]),
                "h"
            ),
            "bo@h"
        );
        assert_eq!(user_at(&env(&[("USERNAME", "cy")]), "pc"), "cy@pc");
        assert_eq!(user_at(&env(&[]), "h"), "unknown@h");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_has_not_ended() {
        let me = current().expect("an identity on Linux");
        assert_eq!(me.split('/').count(), 4, "{me}");
        assert!(!has_ended(&me));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_process_that_was_killed_has_ended() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let (boot, namespace) = machine().unwrap();
        let (start, _) = stat(child.id()).unwrap();
        let recorded = format!("{boot}/{namespace}/{}/{start}", child.id());
        assert!(!has_ended(&recorded), "{recorded}");
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(has_ended(&recorded), "{recorded}");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_pid_used_again_is_another_process() {
        let me = current().unwrap();
        let parts: Vec<&str> = me.split('/').collect();
        let earlier = format!("{}/{}/{}/1", parts[0], parts[1], parts[2]);
        assert!(has_ended(&earlier));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn another_machine_or_namespace_cannot_be_told() {
        let me = current().unwrap();
        let parts: Vec<&str> = me.split('/').collect();
        let other_boot = format!("another-boot/{}/999999999/1", parts[1]);
        let other_namespace = format!("{}/1/999999999/1", parts[0]);
        assert!(!has_ended(&other_boot));
        assert!(!has_ended(&other_namespace));
        assert!(!has_ended("garbage"));
    }
}
