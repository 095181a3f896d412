//! Every environment variable fleet reads, by name, in one place: the
//! `FLEET_*` ones its flags take their defaults from (`--help` names
//! them), and those of the machine and of GitHub Actions that it reads to
//! say who runs it and where to report.

/// The names of the environment variables fleet reads.
pub struct EnvVars;

impl EnvVars {
    // Flags (src/cli.rs).
    pub const FLEET_FILE: &'static str = "FLEET_FILE";
    pub const FLEET_ENV: &'static str = "FLEET_ENV";
    pub const FLEET_KUBE_CONTEXT: &'static str = "FLEET_KUBE_CONTEXT";
    pub const FLEET_NATS_URL: &'static str = "FLEET_NATS_URL";
    pub const FLEET_NATS_CREDS: &'static str = "FLEET_NATS_CREDS";
    pub const FLEET_NATS_NKEY: &'static str = "FLEET_NATS_NKEY";
    pub const FLEET_NATS_TOKEN: &'static str = "FLEET_NATS_TOKEN";
    pub const FLEET_NATS_USER: &'static str = "FLEET_NATS_USER";
    pub const FLEET_NATS_PASSWORD: &'static str = "FLEET_NATS_PASSWORD";
    pub const FLEET_NATS_TLS_CA: &'static str = "FLEET_NATS_TLS_CA";
    pub const FLEET_NATS_TLS_CERT: &'static str = "FLEET_NATS_TLS_CERT";
    pub const FLEET_NATS_TLS_KEY: &'static str = "FLEET_NATS_TLS_KEY";
    pub const FLEET_NATS_DOMAIN: &'static str = "FLEET_NATS_DOMAIN";
    pub const FLEET_NATS_API_PREFIX: &'static str = "FLEET_NATS_API_PREFIX";
    pub const FLEET_NATS_ACCOUNT_SIGNING_KEY: &'static str = "FLEET_NATS_ACCOUNT_SIGNING_KEY";
    pub const FLEET_NATS_OPERATOR_SIGNING_KEY: &'static str = "FLEET_NATS_OPERATOR_SIGNING_KEY";
    pub const FLEET_NATS_SYSTEM_CREDS: &'static str = "FLEET_NATS_SYSTEM_CREDS";

    // Who runs fleet, where (the lock's holder, the apply's record).
    pub const USER: &'static str = "USER";
    pub const LOGNAME: &'static str = "LOGNAME";
    pub const USERNAME: &'static str = "USERNAME";
    pub const HOSTNAME: &'static str = "HOSTNAME";
    pub const COMPUTERNAME: &'static str = "COMPUTERNAME";

    // GitHub Actions: the run, and the files a step writes to.
    pub const GITHUB_ACTIONS: &'static str = "GITHUB_ACTIONS";
    pub const GITHUB_ACTOR: &'static str = "GITHUB_ACTOR";
    pub const GITHUB_JOB: &'static str = "GITHUB_JOB";
    pub const GITHUB_SERVER_URL: &'static str = "GITHUB_SERVER_URL";
    pub const GITHUB_REPOSITORY: &'static str = "GITHUB_REPOSITORY";
    pub const GITHUB_RUN_ID: &'static str = "GITHUB_RUN_ID";
    pub const GITHUB_RUN_ATTEMPT: &'static str = "GITHUB_RUN_ATTEMPT";
    pub const GITHUB_STEP_SUMMARY: &'static str = "GITHUB_STEP_SUMMARY";
    pub const GITHUB_OUTPUT: &'static str = "GITHUB_OUTPUT";
}
