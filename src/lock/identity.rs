//! Who takes the lock: the CI run or `user@host` for people, the job,
//! machine and process for finding it, and an identity unique to this
//! process for the Lease's `holderIdentity`. Reads the environment only.

use crate::env_vars::EnvVars;

/// Who takes the lock, as the Lease records it.
#[derive(Debug, Clone)]
pub(crate) struct Claimant {
    /// The CI run (its URL, with the attempt), else `user@host`.
    pub who: String,
    /// The CI job, the machine and the process: `job deploy on runner-3 pid 4242`.
    pub host: String,
    /// `holderIdentity`: unique to this process, so that two applies by one
    /// user on one machine, or two jobs of one run, are told apart.
    pub identity: String,
    /// This process as [`crate::process::current`] identifies it.
    pub process: Option<String>,
}

impl Claimant {
    /// This process, from its environment.
    pub(crate) fn from_environment() -> Claimant {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let host = crate::process::hostname();
        let pid = std::process::id();
        let who = who(&var, &host);
        let host = match var(EnvVars::GITHUB_JOB) {
            Some(job) => format!("job {job} on {host} pid {pid}"),
            None => format!("{host} pid {pid}"),
        };
        // RandomState is seeded afresh per process: a cheap unique tag.
        let nonce =
            std::hash::BuildHasher::hash_one(&std::collections::hash_map::RandomState::new(), pid)
                as u32;
        Claimant {
            identity: format!("{who} ({host}, {nonce:08x})"),
            who,
            host,
            process: crate::process::current(),
        }
    }
}

/// The CI run when GitHub Actions names it
/// (`https://github.com/o/r/actions/runs/123/attempts/2`), else `user@host`.
fn who(var: &dyn Fn(&str) -> Option<String>, host: &str) -> String {
    if let (Some(server), Some(repository), Some(run)) = (
        var(EnvVars::GITHUB_SERVER_URL),
        var(EnvVars::GITHUB_REPOSITORY),
        var(EnvVars::GITHUB_RUN_ID),
    ) {
        let mut url = format!(
            "{}/{repository}/actions/runs/{run}",
            server.trim_end_matches('/')
        );
        if let Some(attempt) = var(EnvVars::GITHUB_RUN_ATTEMPT) {
            url.push_str(&format!("/attempts/{attempt}"));
        }
        return url;
    }
    crate::process::user_at(var, host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn who_is_the_ci_run_with_its_attempt_else_user_at_host() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        let ci = env(&[
            ("GITHUB_SERVER_URL", "https://github.com/"),
            ("GITHUB_REPOSITORY", "o/r"),
            ("GITHUB_RUN_ID", "123"),
            ("GITHUB_RUN_ATTEMPT", "2"),
            ("USER", "runner"),
        ]);
        assert_eq!(
            who(&ci, "host"),
            "https://github.com/o/r/actions/runs/123/attempts/2"
        );
        let no_attempt = env(&[
            ("GITHUB_SERVER_URL", "https://ghe.example.com"),
            ("GITHUB_REPOSITORY", "o/r"),
            ("GITHUB_RUN_ID", "9"),
        ]);
        assert_eq!(
            who(&no_attempt, "host"),
            "https://ghe.example.com/o/r/actions/runs/9"
        );
        let laptop = env(&[("USER", "alice"), ("GITHUB_REPOSITORY", "o/r")]);
        assert_eq!(who(&laptop, "laptop"), "alice@laptop");
    }
}
