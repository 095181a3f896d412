//! Every environment variable fleet reads, by name, in one place: the
//! `FLEET_*` ones its flags take their defaults from (`--help` names
//! them), and those of the machine and of GitHub Actions that it reads to
//! say who runs it and where to report.

/// The names of the environment variables fleet reads.
pub(crate) struct EnvVars;

impl EnvVars {
    // Flags (src/cli.rs).
    pub(crate) const FLEET_FILE: &'static str = "FLEET_FILE";
    pub(crate) const FLEET_ENV: &'static str = "FLEET_ENV";
    pub(crate) const FLEET_KUBE_CONTEXT: &'static str = "FLEET_KUBE_CONTEXT";
    pub(crate) const FLEET_NATS_URL: &'static str = "FLEET_NATS_URL";
    pub(crate) const FLEET_NATS_CREDS: &'static str = "FLEET_NATS_CREDS";
    pub(crate) const FLEET_NATS_NKEY: &'static str = "FLEET_NATS_NKEY";
    pub(crate) const FLEET_NATS_TOKEN: &'static str = "FLEET_NATS_TOKEN";
    pub(crate) const FLEET_NATS_USER: &'static str = "FLEET_NATS_USER";
    pub(crate) const FLEET_NATS_PASSWORD: &'static str = "FLEET_NATS_PASSWORD";
    pub(crate) const FLEET_NATS_TLS_CA: &'static str = "FLEET_NATS_TLS_CA";
    pub(crate) const FLEET_NATS_TLS_CERT: &'static str = "FLEET_NATS_TLS_CERT";
    pub(crate) const FLEET_NATS_TLS_KEY: &'static str = "FLEET_NATS_TLS_KEY";
    pub(crate) const FLEET_NATS_DOMAIN: &'static str = "FLEET_NATS_DOMAIN";
    pub(crate) const FLEET_NATS_API_PREFIX: &'static str = "FLEET_NATS_API_PREFIX";
    pub(crate) const FLEET_NATS_ACCOUNT_SIGNING_KEY: &'static str =
        "FLEET_NATS_ACCOUNT_SIGNING_KEY";
    pub(crate) const FLEET_NATS_OPERATOR_SIGNING_KEY: &'static str =
        "FLEET_NATS_OPERATOR_SIGNING_KEY";
    pub(crate) const FLEET_NATS_SYSTEM_CREDS: &'static str = "FLEET_NATS_SYSTEM_CREDS";

    // Who runs fleet, where (the lock's holder, the apply's record).
    pub(crate) const USER: &'static str = "USER";
    pub(crate) const LOGNAME: &'static str = "LOGNAME";
    pub(crate) const USERNAME: &'static str = "USERNAME";
    pub(crate) const HOSTNAME: &'static str = "HOSTNAME";
    pub(crate) const COMPUTERNAME: &'static str = "COMPUTERNAME";

    // GitHub Actions: the run, and the files a step writes to.
    pub(crate) const GITHUB_ACTIONS: &'static str = "GITHUB_ACTIONS";
    pub(crate) const GITHUB_ACTOR: &'static str = "GITHUB_ACTOR";
    pub(crate) const GITHUB_JOB: &'static str = "GITHUB_JOB";
    pub(crate) const GITHUB_SERVER_URL: &'static str = "GITHUB_SERVER_URL";
    pub(crate) const GITHUB_REPOSITORY: &'static str = "GITHUB_REPOSITORY";
    pub(crate) const GITHUB_RUN_ID: &'static str = "GITHUB_RUN_ID";
    pub(crate) const GITHUB_RUN_ATTEMPT: &'static str = "GITHUB_RUN_ATTEMPT";
    pub(crate) const GITHUB_STEP_SUMMARY: &'static str = "GITHUB_STEP_SUMMARY";
    pub(crate) const GITHUB_OUTPUT: &'static str = "GITHUB_OUTPUT";
}
