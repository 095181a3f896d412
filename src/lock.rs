//! lock: the deploy lock. `fleet apply` holds a `coordination.k8s.io/v1`
//! Lease named `fleet-<fleet>` in the fleet's namespace from before it reads
//! what it plans from until it ends, so two deploy jobs applying to one
//! environment at once (a re-run beside a new push, two workflows) never
//! interleave. `plan` only reads it, to say in its header who holds it;
//! `fleet unlock` empties it by hand.
//!
//! - Taken with optimistic concurrency only: the Lease is created, or
//!   replaced carrying the resourceVersion just read, so of two applies that
//!   read the same Lease only one write succeeds; the other gets a 409, reads
//!   again and decides again ([`decide`], pure). Nothing is ever written on
//!   the strength of an older read.
//! - Renewed in the background every third of its TTL. A holder that dies
//!   (SIGKILL, a lost runner) stops renewing, and once `renewTime +
//!   leaseDurationSeconds` (+ [`SKEW_ALLOWANCE`]) has passed, the next apply
//!   takes it over. A holder that cannot renew for two thirds of the TTL (the
//!   API server unreachable) stops its own apply before anyone may take over,
//!   and so does one whose Lease was taken from it (`fleet unlock`).
//! - Released by emptying it (holderIdentity cleared, resourceVersion
//!   checked), not by deleting it, also when apply fails; the Lease then
//!   records that an apply has held it, which the first apply into a new
//!   namespace relies on ([`DeployLock::before_first_write`]).
//!
//! Clocks: a CI runner's clock may be off by seconds or worse, so the times
//! that matter are the API server's. Each read of the Lease also reads the
//! server's clock (the response's `Date` header, to within a second);
//! `acquireTime` and `renewTime` are written in server time as the writer
//! estimates it from that, and a Lease counts as expired only when its
//! `renewTime` plus its duration and [`SKEW_ALLOWANCE`] lies before the
//! reader's estimate of server time made the same way. What is left (the
//! header's one-second resolution, request latency, the API servers of a
//! highly available control plane disagreeing slightly) is what the
//! allowance covers. Without a `Date` header the local clock stands in.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Resource as _;
use kube::api::{Api, PostParams};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::client::kube::Cluster;
use crate::client::{explain, retry};
use crate::ownership;
use crate::render::ObjectRef;

/// How long a lock outlives a holder that stopped renewing it.
pub const DEFAULT_TTL: Duration = Duration::from_secs(30);
/// Added to a Lease's duration before it counts as expired: the error of
/// estimating the server's clock (see the module comment).
pub const SKEW_ALLOWANCE: Duration = Duration::from_secs(2);
/// Who holds the lock, for people: the CI run, or `user@host`.
pub const HOLDER_ANNOTATION: &str = "fleet.agent.ceo/lock-holder";
/// Where it runs: the CI job, the machine and the process.
pub const HOST_ANNOTATION: &str = "fleet.agent.ceo/lock-host";
/// The holding process, for machines: see [`crate::process`]. An apply on
/// the same machine takes over at once the lock of one that has ended.
pub const PROCESS_ANNOTATION: &str = "fleet.agent.ceo/lock-process";

/// How often a waiting apply reads the Lease again.
const POLL: Duration = Duration::from_secs(1);
/// 409s in a row while taking the lock before giving up: each means
/// another apply wrote the Lease between a read and a write.
const MAX_CONFLICTS: u32 = 10;

pub fn lease_name(fleet: &str) -> String {
    format!("fleet-{fleet}")
}

/// How apply takes the lock.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Lease duration: how long the lock outlives a holder that died.
    pub ttl: Duration,
    /// How long to wait for another holder; zero fails at once.
    pub wait: Duration,
}

/// Who takes the lock, as the Lease records it.
#[derive(Debug, Clone)]
pub struct Claimant {
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
    pub fn from_environment() -> Claimant {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let host = hostname();
        let pid = std::process::id();
        let who = who(&var, &host);
        let host = match var("GITHUB_JOB") {
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
        var("GITHUB_SERVER_URL"),
        var("GITHUB_REPOSITORY"),
        var("GITHUB_RUN_ID"),
    ) {
        let mut url = format!(
            "{}/{repository}/actions/runs/{run}",
            server.trim_end_matches('/')
        );
        if let Some(attempt) = var("GITHUB_RUN_ATTEMPT") {
            url.push_str(&format!("/attempts/{attempt}"));
        }
        return url;
    }
    let user = var("USER")
        .or_else(|| var("USERNAME"))
        .or_else(|| var("LOGNAME"))
        .unwrap_or_else(|| "unknown".into());
    format!("{user}@{host}")
}

fn hostname() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|path| std::fs::read_to_string(path).ok())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "unknown-host".into())
}

/// A held lock as others see it: who holds it, where, and since when. Part
/// of the plan (`lock` in its JSON) when an apply holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// The CI run or `user@host`.
    pub holder: String,
    /// The CI job, the machine and the process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The Lease's holderIdentity.
    pub identity: String,
    /// When it was taken (RFC 3339, the API server's time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// When it was last renewed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renewed: Option<String>,
    pub ttl_seconds: u64,
    /// The holder stopped renewing it: the next apply takes it over.
    pub expired: bool,
    /// How long it had been held when it was read (for messages only).
    #[serde(skip)]
    pub held_for: Option<Duration>,
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.holder)?;
        if let Some(host) = &self.host {
            write!(f, " ({host})")?;
        }
        if let Some(since) = &self.since {
            write!(f, " since {since}")?;
            if let Some(held_for) = self.held_for {
                write!(f, " ({} ago)", human(held_for))?;
            }
        }
        if self.expired {
            write!(
                f,
                ", not renewed since {}: that apply stopped without releasing it, and the next apply takes it over",
                self.renewed.as_deref().unwrap_or("it was taken")
            )?;
        }
        Ok(())
    }
}

/// `1m12s`, `3h5m`, `40s`.
fn human(duration: Duration) -> String {
    let secs = duration.as_secs();
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m{}s", secs / 60, secs % 60),
        _ => format!("{}h{}m", secs / 3600, secs % 3600 / 60),
    }
}

/// What [`decide`] needs to know of a Lease.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    /// `holderIdentity`; `None` (or empty) when nobody holds it.
    pub identity: Option<String>,
    /// `renewTime`, else `acquireTime`.
    pub renewed: Option<Timestamp>,
    pub duration: Duration,
    /// The holder's process has ended (see [`crate::process::has_ended`]).
    pub holder_ended: bool,
}

impl Observed {
    pub fn of(lease: &Lease) -> Observed {
        let spec = lease.spec.as_ref();
        Observed {
            identity: spec
                .and_then(|s| s.holder_identity.clone())
                .filter(|id| !id.is_empty()),
            renewed: spec
                .and_then(|s| s.renew_time.as_ref().or(s.acquire_time.as_ref()))
                .map(|t| t.0),
            duration: spec
                .and_then(|s| s.lease_duration_seconds)
                .and_then(|s| u64::try_from(s).ok())
                .map_or(DEFAULT_TTL, Duration::from_secs),
            holder_ended: lease
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(PROCESS_ANNOTATION))
                .is_some_and(|process| crate::process::has_ended(process)),
        }
    }

    /// Its holder stopped renewing it: `renewTime + duration`, with the
    /// allowance for clocks, lies before `now` (server time). A Lease held
    /// without any time was not written by a fleet that is alive.
    pub fn expired(&self, now: Timestamp) -> bool {
        match self.renewed {
            Some(renewed) => now > plus(plus(renewed, self.duration), SKEW_ALLOWANCE),
            None => true,
        }
    }
}

/// What to do about the Lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// There is none: create it.
    Create,
    /// Free (released), ours already, `expired`, or its holder's process
    /// has `ended`: replace it, with the resourceVersion it was read at.
    Take { expired: bool, ended: bool },
    /// Someone else holds it: wait, or fail naming them.
    Held,
}

/// May `me` take this Lease (as read at server time `now`)?
pub fn decide(lease: Option<&Observed>, me: &str, now: Timestamp) -> Decision {
    let Some(lease) = lease else {
        return Decision::Create;
    };
    let (expired, ended) = (lease.expired(now), lease.holder_ended);
    match lease.identity.as_deref() {
        None => Decision::Take {
            expired: false,
            ended: false,
        },
        Some(holder) if holder == me => Decision::Take {
            expired: false,
            ended: false,
        },
        Some(_) if expired || ended => Decision::Take { expired, ended },
        Some(_) => Decision::Held,
    }
}

/// Who holds the Lease, if anyone, as read at server time `now`.
pub fn holder_of(lease: &Lease, now: Timestamp) -> Option<Holder> {
    let observed = Observed::of(lease);
    let identity = observed.identity.clone()?;
    let spec = lease.spec.as_ref()?;
    let annotations = lease.metadata.annotations.as_ref();
    let annotation = |key: &str| annotations.and_then(|a| a.get(key)).cloned();
    let seconds = |t: &MicroTime| Timestamp::from_second(t.0.as_second()).unwrap_or(t.0);
    Some(Holder {
        holder: annotation(HOLDER_ANNOTATION).unwrap_or_else(|| identity.clone()),
        host: annotation(HOST_ANNOTATION),
        since: spec.acquire_time.as_ref().map(|t| seconds(t).to_string()),
        renewed: spec.renew_time.as_ref().map(|t| seconds(t).to_string()),
        ttl_seconds: observed.duration.as_secs(),
        expired: observed.expired(now),
        held_for: spec
            .acquire_time
            .as_ref()
            .and_then(|t| Duration::try_from(now.duration_since(t.0)).ok()),
        identity,
    })
}

/// `lease` claimed by `claimant` at server time `now`: holder, times,
/// duration and the annotations people read.
fn claimed(mut lease: Lease, claimant: &Claimant, ttl: Duration, now: Timestamp) -> Lease {
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    if spec.holder_identity.as_deref() != Some(claimant.identity.as_str()) {
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        spec.acquire_time = Some(MicroTime(now));
    }
    spec.holder_identity = Some(claimant.identity.clone());
    spec.renew_time = Some(MicroTime(now));
    spec.lease_duration_seconds = Some(i32::try_from(ttl.as_secs()).unwrap_or(i32::MAX));
    let annotations = lease.metadata.annotations.get_or_insert_with(BTreeMap::new);
    annotations.insert(HOLDER_ANNOTATION.into(), claimant.who.clone());
    annotations.insert(HOST_ANNOTATION.into(), claimant.host.clone());
    match &claimant.process {
        Some(process) => annotations.insert(PROCESS_ANNOTATION.into(), process.clone()),
        None => annotations.remove(PROCESS_ANNOTATION),
    };
    lease
        .metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(
            ownership::MANAGED_BY_LABEL.into(),
            ownership::MANAGED_BY.into(),
        );
    lease
}

/// `lease` given up: nobody holds it. The object stays (see the module
/// comment), with its transitions count.
fn emptied(mut lease: Lease) -> Lease {
    if let Some(spec) = lease.spec.as_mut() {
        spec.holder_identity = None;
        spec.acquire_time = None;
        spec.renew_time = None;
    }
    if let Some(annotations) = lease.metadata.annotations.as_mut() {
        annotations.remove(HOLDER_ANNOTATION);
        annotations.remove(HOST_ANNOTATION);
        annotations.remove(PROCESS_ANNOTATION);
    }
    lease
}

fn plus(time: Timestamp, duration: Duration) -> Timestamp {
    time.checked_add(duration).unwrap_or(Timestamp::MAX)
}

/// The API server's clock, as this process estimates it: the local clock
/// plus the offset measured from a response's `Date` header.
#[derive(Debug, Clone, Copy)]
struct ServerClock {
    offset: SignedDuration,
}

impl ServerClock {
    /// From a `Date` header (`Sun, 29 Nov 2026 11:03:08 GMT`) received at
    /// local time `local`. The header is truncated to the second, so the
    /// server's time lies in the second after it: take its middle.
    fn from_date_header(date: Option<&str>, local: Timestamp) -> ServerClock {
        static PARSER: k8s_openapi::jiff::fmt::rfc2822::DateTimeParser =
            k8s_openapi::jiff::fmt::rfc2822::DateTimeParser::new();
        let offset = date
            .and_then(|d| PARSER.parse_timestamp(d).ok())
            .map(|server| plus(server, Duration::from_millis(500)).duration_since(local))
            .unwrap_or(SignedDuration::ZERO);
        ServerClock { offset }
    }

    fn now(self) -> Timestamp {
        let local = Timestamp::now();
        local.checked_add(self.offset).unwrap_or(local)
    }
}

/// Where the lock lives.
#[derive(Clone)]
struct Place {
    api: Api<Lease>,
    client: kube::Client,
    cluster: Cluster,
    namespace: String,
    name: String,
    fleet: String,
}

impl Place {
    fn new(cluster: &Cluster, fleet: &str, namespace: &str) -> Place {
        Place {
            api: Api::namespaced(cluster.client.clone(), namespace),
            client: cluster.client.clone(),
            cluster: cluster.clone(),
            namespace: namespace.to_string(),
            name: lease_name(fleet),
            fleet: fleet.to_string(),
        }
    }

    fn id(&self) -> ObjectRef {
        ObjectRef {
            api_version: "coordination.k8s.io/v1".into(),
            kind: "Lease".into(),
            namespace: Some(self.namespace.clone()),
            name: self.name.clone(),
        }
    }

    fn explained(&self, action: &'static str) -> impl Fn(kube::Error) -> anyhow::Error + '_ {
        move |err| {
            explain::client_error(err, action, &self.id(), &self.cluster)
                .context(format!("{action} the deploy lock of fleet {}", self.fleet))
        }
    }

    /// The Lease (`None` when there is none, or no namespace), and the
    /// server's clock as its answer showed it. A raw GET, for the `Date`
    /// header.
    async fn read(&self) -> Result<(Option<Lease>, ServerClock), kube::Error> {
        retry::kube(|| async {
            let request = kube::core::Request::new(Lease::url_path(&(), Some(&self.namespace)))
                .get(&self.name, &kube::api::GetParams::default())
                .map_err(kube::Error::BuildRequest)?;
            let response = self
                .client
                .send(request.map(kube::client::Body::from))
                .await?;
            let clock = ServerClock::from_date_header(
                response.headers().get("date").and_then(|d| d.to_str().ok()),
                Timestamp::now(),
            );
            let status = response.status();
            let body = response.into_body().collect_bytes().await?;
            if status.is_success() {
                let lease = serde_json::from_slice(&body).map_err(kube::Error::SerdeError)?;
                return Ok((Some(lease), clock));
            }
            if status.as_u16() == 404 {
                return Ok((None, clock));
            }
            let failure =
                serde_json::from_slice::<kube::core::Status>(&body).unwrap_or_else(|_| {
                    kube::core::Status::failure(String::from_utf8_lossy(&body).trim(), "Unknown")
                        .with_code(status.as_u16())
                });
            Err(kube::Error::Api(failure.boxed()))
        })
        .await
    }
}

fn write_params() -> PostParams {
    PostParams {
        dry_run: false,
        field_manager: Some(ownership::FIELD_MANAGER.into()),
    }
}

fn status_code(err: &kube::Error) -> Option<u16> {
    match err {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

/// The lock could not be taken: another apply holds it.
#[derive(Debug)]
pub struct Busy {
    pub lease: String,
    pub holder: Holder,
    /// How long this apply waited (`--lock-timeout`).
    pub waited: Duration,
    /// The namespace this apply created for the lock (a first apply), which
    /// the holder now uses.
    pub created_namespace: Option<String>,
}

impl fmt::Display for Busy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let waited = if self.waited.is_zero() {
            String::new()
        } else {
            format!(" (waited {}, --lock-timeout)", human(self.waited))
        };
        let changed = match &self.created_namespace {
            Some(namespace) => format!(
                "nothing was changed but the empty namespace {namespace}, created for the lock (that apply uses it)"
            ),
            None => "nothing was changed".into(),
        };
        write!(
            f,
            "the deploy lock (Lease {}) is held by {}{waited}; {changed}.\n  Another apply to this environment is running: run again once it is done, or wait for it with --lock-timeout (e.g. --lock-timeout 10m). If that apply is gone, its lock expires {}s after its last renewal, or remove it now with `fleet unlock`.",
            self.lease, self.holder, self.holder.ttl_seconds
        )
    }
}

impl std::error::Error for Busy {}

/// What happened while taking the lock, for the caller to report.
pub enum Event<'a> {
    /// Another apply holds it; waiting (up to `--lock-timeout`).
    Waiting(&'a Holder, Duration),
    /// Taken over from a holder that stopped renewing it.
    TookOver(&'a Holder),
    /// Taken over at once from a holder whose process, on this machine, has
    /// ended (killed, or crashed) without releasing it.
    TookOverEnded(&'a Holder),
    /// A destroy found no namespace to hold the lock in (missing, or being
    /// deleted): it goes on without one, and makes none.
    NoNamespace(&'a str),
}

impl fmt::Display for Event<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Waiting(holder, wait) => write!(
                f,
                "Waiting up to {} (--lock-timeout) for the deploy lock, held by {holder}",
                human(*wait)
            ),
            Event::TookOver(holder) => write!(
                f,
                "Took over the deploy lock from {}: it was not renewed since {} (that apply stopped without releasing it)",
                holder.holder,
                holder.renewed.as_deref().unwrap_or("it was taken")
            ),
            Event::TookOverEnded(holder) => write!(
                f,
                "Took over the deploy lock from {} at once: its process{} has ended on this machine without releasing it",
                holder.holder,
                holder
                    .host
                    .as_deref()
                    .map(|host| format!(" ({host})"))
                    .unwrap_or_default()
            ),
            Event::NoNamespace(namespace) => write!(
                f,
                "fleet: namespace {namespace} does not exist or is being deleted, so there is no deploy lock to take in it; none is made"
            ),
        }
    }
}

/// How the lock was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Taken {
    /// The Lease did not exist: no apply has held it in this namespace.
    Created,
    /// The Lease existed (free, expired, or ours).
    Existing,
}

/// Takes the Lease: `None` when its namespace does not exist.
async fn take(
    place: &Place,
    claimant: &Claimant,
    options: Options,
    report: &mut (dyn FnMut(Event<'_>) + Send),
) -> anyhow::Result<Option<(Held, Taken)>> {
    let started = Instant::now();
    let mut conflicts = 0;
    let params = write_params();
    let mut announced: Option<String> = None;
    loop {
        let (lease, clock) = place.read().await.map_err(place.explained("reading"))?;
        let now = clock.now();
        let observed = lease.as_ref().map(Observed::of);
        let decision = decide(observed.as_ref(), &claimant.identity, now);
        let written = match (decision, lease) {
            (Decision::Held, Some(lease)) => {
                let holder = holder_of(&lease, now).expect("held");
                let waited = started.elapsed();
                if waited >= options.wait {
                    return Err(Busy {
                        lease: format!("{}/{}", place.namespace, place.name),
                        holder,
                        waited: if options.wait.is_zero() {
                            Duration::ZERO
                        } else {
                            waited
                        },
                        created_namespace: None,
                    }
                    .into());
                }
                if announced.as_deref() != Some(holder.identity.as_str()) {
                    report(Event::Waiting(&holder, options.wait));
                    announced = Some(holder.identity.clone());
                }
                tokio::time::sleep(POLL.min(options.wait - waited)).await;
                continue;
            }
            (Decision::Create, _) | (_, None) => {
                let body = Lease {
                    metadata: ObjectMeta {
                        name: Some(place.name.clone()),
                        namespace: Some(place.namespace.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: None,
                };
                let body = claimed(body, claimant, options.ttl, now);
                let at = Instant::now();
                match retry::kube(|| place.api.create(&params, &body)).await {
                    // The namespace is missing (a namespace being deleted
                    // answers 403 instead, explained as such).
                    Err(err) if status_code(&err) == Some(404) => return Ok(None),
                    written => written.map(|lease| (lease, at, Taken::Created)),
                }
            }
            (Decision::Take { expired, ended }, Some(lease)) => {
                if let Some(previous) = holder_of(&lease, now) {
                    if ended {
                        report(Event::TookOverEnded(&previous));
                    } else if expired {
                        report(Event::TookOver(&previous));
                    }
                }
                let body = claimed(lease, claimant, options.ttl, now);
                let at = Instant::now();
                retry::kube(|| place.api.replace(&place.name, &params, &body))
                    .await
                    .map(|lease| (lease, at, Taken::Existing))
            }
        };
        match written {
            Ok((lease, at, taken)) => {
                return Ok(Some((
                    Held::start(place, claimant, lease, clock, at, options.ttl),
                    taken,
                )));
            }
            // Another apply wrote the Lease since it was read (or created
            // it first): read it again.
            Err(err) if status_code(&err) == Some(409) && conflicts < MAX_CONFLICTS => {
                conflicts += 1;
            }
            Err(err) => return Err(place.explained("taking")(err)),
        }
    }
}

/// The lock, held: renewed in the background until released.
pub struct Held {
    place: Place,
    identity: String,
    /// Set, with the reason, when the lock was lost.
    lost: watch::Receiver<Option<String>>,
    renewer: tokio::task::JoinHandle<()>,
    released: bool,
}

impl Held {
    fn start(
        place: &Place,
        claimant: &Claimant,
        lease: Lease,
        clock: ServerClock,
        renewed_at: Instant,
        ttl: Duration,
    ) -> Held {
        let (lost_tx, lost) = watch::channel(None);
        let renewer = tokio::spawn(renew(
            place.clone(),
            claimant.identity.clone(),
            lease,
            clock,
            renewed_at,
            ttl,
            lost_tx,
        ));
        Held {
            place: place.clone(),
            identity: claimant.identity.clone(),
            lost,
            renewer,
            released: false,
        }
    }

    /// Why the lock was lost, once it is.
    async fn lost(&self) -> String {
        let mut lost = self.lost.clone();
        match lost.wait_for(Option::is_some).await {
            Ok(reason) => reason.clone().unwrap_or_default(),
            // The renewer ended without losing it (never before release).
            Err(_) => std::future::pending().await,
        }
    }

    async fn release(mut self) -> anyhow::Result<()> {
        self.renewer.abort();
        let result = release(&self.place, &self.identity).await;
        // Only now: dropped half-way (the run's --timeout), Drop releases.
        self.released = true;
        result.map_err(self.place.explained("releasing"))
    }

    /// Releases the lock by deleting its Lease (a destroy, done with it),
    /// if this holder still holds it: the delete carries the
    /// resourceVersion read, so a Lease another apply took meanwhile stays.
    async fn delete(mut self) -> anyhow::Result<()> {
        self.renewer.abort();
        let result = delete_lease(&self.place, &self.identity).await;
        self.released = true;
        result.map_err(self.place.explained("deleting"))
    }
}

/// Deletes the Lease if `identity` still holds it. Gone already (its
/// namespace deleted) is what deleting wanted.
async fn delete_lease(place: &Place, identity: &str) -> Result<(), kube::Error> {
    for _ in 0..MAX_CONFLICTS {
        let Some(lease) = retry::kube(|| place.api.get_opt(&place.name)).await? else {
            return Ok(());
        };
        if Observed::of(&lease).identity.as_deref() != Some(identity) {
            return Ok(());
        }
        let params = kube::api::DeleteParams {
            preconditions: Some(kube::api::Preconditions {
                uid: lease.metadata.uid.clone(),
                resource_version: lease.metadata.resource_version.clone(),
            }),
            ..kube::api::DeleteParams::default()
        };
        match retry::kube(|| place.api.delete(&place.name, &params)).await {
            Err(err) if status_code(&err) == Some(409) => continue,
            Err(err) if status_code(&err) == Some(404) => return Ok(()),
            result => return result.map(|_| ()),
        }
    }
    Ok(())
}

impl Drop for Held {
    /// Dropped without [`Held::release`]: an error after the lock was taken,
    /// or the run's `--timeout`. Drop cannot await, so a helper thread
    /// drives the release on the runtime (whose workers keep running) for a
    /// few seconds; failing that, the Lease expires after its TTL.
    fn drop(&mut self) {
        self.renewer.abort();
        if self.released {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (place, identity) = (self.place.clone(), self.identity.clone());
        let releasing = std::thread::spawn(move || {
            runtime.block_on(async {
                let _ =
                    tokio::time::timeout(Duration::from_secs(5), release(&place, &identity)).await;
            })
        });
        let _ = releasing.join();
    }
}

/// Empties the Lease if `identity` still holds it.
async fn release(place: &Place, identity: &str) -> Result<(), kube::Error> {
    let params = write_params();
    for _ in 0..MAX_CONFLICTS {
        let Some(lease) = retry::kube(|| place.api.get_opt(&place.name)).await? else {
            return Ok(());
        };
        if Observed::of(&lease).identity.as_deref() != Some(identity) {
            // Not ours any more (taken over, or removed by hand).
            return Ok(());
        }
        let body = emptied(lease);
        match retry::kube(|| place.api.replace(&place.name, &params, &body)).await {
            Err(err) if status_code(&err) == Some(409) => continue,
            result => return result.map(|_| ()),
        }
    }
    Ok(())
}

/// Renews the Lease every third of `ttl` until aborted. Reports the lock
/// lost when the Lease was taken from it, or when it could not renew for
/// two thirds of `ttl`: by then another apply may soon take it over.
async fn renew(
    place: Place,
    identity: String,
    mut lease: Lease,
    clock: ServerClock,
    mut renewed_at: Instant,
    ttl: Duration,
    lost: watch::Sender<Option<String>>,
) {
    let every = ttl / 3;
    let params = write_params();
    let give_up_after = ttl * 2 / 3;
    let retry_after = Duration::from_secs(1).min(every);
    let mut next = renewed_at + every;
    let mut last_error = String::new();
    loop {
        tokio::time::sleep_until(next.into()).await;
        let left = give_up_after.saturating_sub(renewed_at.elapsed());
        if left.is_zero() {
            let _ = lost.send(Some(format!(
                "it could not be renewed for {}s{last_error}, so another apply may take it over",
                give_up_after.as_secs()
            )));
            return;
        }
        let started = Instant::now();
        let mut body = lease.clone();
        if let Some(spec) = body.spec.as_mut() {
            spec.renew_time = Some(MicroTime(clock.now()));
        }
        let renewal = place.api.replace(&place.name, &params, &body);
        match tokio::time::timeout(left, renewal).await {
            Ok(Ok(renewed)) => {
                lease = renewed;
                renewed_at = started;
                next = started + every;
            }
            Ok(Err(err)) if matches!(status_code(&err), Some(404 | 409)) => {
                // Someone else wrote it: is it still ours?
                match tokio::time::timeout(left, place.api.get_opt(&place.name)).await {
                    Ok(Ok(Some(current)))
                        if Observed::of(&current).identity.as_deref() == Some(&identity) =>
                    {
                        lease = current;
                        next = Instant::now();
                    }
                    Ok(Ok(current)) => {
                        let reason = match current.as_ref().and_then(|c| holder_of(c, clock.now()))
                        {
                            Some(other) => format!("{} took it over", other.holder),
                            None => "it was removed (`fleet unlock`?)".into(),
                        };
                        let _ = lost.send(Some(reason));
                        return;
                    }
                    Ok(Err(err)) => {
                        last_error = format!(" ({err})");
                        next = Instant::now() + retry_after;
                    }
                    Err(_) => next = Instant::now(),
                }
            }
            Ok(Err(err)) => {
                last_error = format!(" ({err})");
                next = Instant::now() + retry_after;
            }
            // Out of time: the next turn says so.
            Err(_) => next = Instant::now(),
        }
    }
}

/// The deploy lock of one fleet in one namespace, as `apply` uses it.
pub struct DeployLock {
    place: Place,
    claimant: Claimant,
    options: Options,
    state: State,
    report: Box<dyn FnMut(Event<'_>) + Send>,
    /// The Lease existed before this apply took it.
    lease_existed: bool,
    /// Taken by a destroy: a namespace that is missing (or being deleted)
    /// is never created to hold the lock.
    destroying: bool,
}

enum State {
    Held(Box<Held>),
    /// The namespace did not exist when apply planned: the lock is taken
    /// before the first write ([`DeployLock::before_first_write`]).
    Deferred,
    Released,
}

impl DeployLock {
    /// Takes the lock before apply reads the live state it plans from, so
    /// that the plan it carries out was made under the lock: another apply
    /// that ran meanwhile could have made it stale. When the namespace does
    /// not exist yet there is nowhere to put the Lease: taking it waits
    /// until just before the first write.
    pub async fn before_plan(
        cluster: &Cluster,
        fleet: &str,
        namespace: &str,
        options: Options,
        mut report: Box<dyn FnMut(Event<'_>) + Send>,
    ) -> anyhow::Result<DeployLock> {
        let place = Place::new(cluster, fleet, namespace);
        let claimant = Claimant::from_environment();
        let (state, lease_existed) = match take(&place, &claimant, options, &mut *report).await? {
            Some((held, taken)) => (State::Held(Box::new(held)), taken == Taken::Existing),
            None => (State::Deferred, false),
        };
        Ok(DeployLock {
            place,
            claimant,
            options,
            state,
            report,
            lease_existed,
            destroying: false,
        })
    }

    /// The lock for a destroy: taken as [`before_plan`] takes it, but in a
    /// namespace that is missing or being deleted (where no Lease can be
    /// created) it is not taken at all, and never later either: a destroy
    /// creates nothing, and nothing is left there for it to guard but what
    /// the namespace's deletion removes.
    ///
    /// [`before_plan`]: DeployLock::before_plan
    pub async fn before_destroy(
        cluster: &Cluster,
        fleet: &str,
        namespace: &str,
        options: Options,
        report: Box<dyn FnMut(Event<'_>) + Send>,
    ) -> anyhow::Result<DeployLock> {
        let namespaces: Api<Namespace> = Api::all(cluster.client.clone());
        // Unreadable (an identity confined to the namespace): taking the
        // lock tells.
        let usable = match retry::kube(|| namespaces.get_opt(namespace)).await {
            Ok(live) => live.is_some_and(|n| n.metadata.deletion_timestamp.is_none()),
            Err(_) => true,
        };
        let mut report = report;
        if !usable {
            report(Event::NoNamespace(namespace));
        }
        let mut lock = if usable {
            Self::before_plan(cluster, fleet, namespace, options, report).await?
        } else {
            DeployLock {
                place: Place::new(cluster, fleet, namespace),
                claimant: Claimant::from_environment(),
                options,
                state: State::Deferred,
                report,
                lease_existed: false,
                destroying: true,
            }
        };
        lock.destroying = true;
        Ok(lock)
    }

    /// Whether the Lease existed before this apply took the lock: an
    /// apply has held it here before.
    pub fn lease_existed(&self) -> bool {
        self.lease_existed
    }

    /// The Lease, for plans and messages.
    pub fn lease(&self) -> ObjectRef {
        self.place.id()
    }

    /// Before apply's first write: takes the lock if [`before_plan`]
    /// could not.
    ///
    /// The namespace did not exist when apply planned (a first apply), so
    /// the plan creates everything. The Lease needs the namespace, so it is
    /// created first, *create-only* and empty but for fleet's ownership
    /// labels: a create cannot overwrite anything, and it cannot land inside
    /// another apply's locked run either, because that apply's Lease lives
    /// in this namespace, so the namespace exists and the create fails
    /// (409, harmless). The Namespace wave then applies the rest of it.
    /// (Taking the lock after the Namespace wave instead would let the
    /// loser of two first applies write the Namespace, labels included, in
    /// the middle of the winner's run.)
    ///
    /// Then the Lease: if this apply creates it, no apply has held the lock
    /// in this namespace since this one planned (a release empties the Lease
    /// and keeps it), so the plan still stands. If it exists, another apply
    /// has run or is running since: the plan may be stale, so this one stops
    /// with nothing changed beyond, perhaps, the empty namespace (which that
    /// apply uses).
    ///
    /// [`before_plan`]: DeployLock::before_plan
    pub async fn before_first_write(&mut self) -> anyhow::Result<()> {
        if !matches!(self.state, State::Deferred) || self.destroying {
            return Ok(());
        }
        let place = &self.place;
        let namespaces: Api<Namespace> = Api::all(place.client.clone());
        let params = write_params();
        let applyset_id = ownership::applyset_id(
            &ownership::applyset_parent_name(&place.fleet),
            &place.namespace,
        );
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: Some(place.namespace.clone()),
                labels: Some(BTreeMap::from([
                    (
                        ownership::MANAGED_BY_LABEL.to_string(),
                        ownership::MANAGED_BY.to_string(),
                    ),
                    (ownership::PART_OF_LABEL.to_string(), applyset_id),
                ])),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        let created_namespace = match retry::kube(|| namespaces.create(&params, &namespace)).await {
            Ok(_) => true,
            Err(err) if status_code(&err) == Some(409) => false,
            Err(err) => {
                let id = ObjectRef {
                    api_version: "v1".into(),
                    kind: "Namespace".into(),
                    namespace: None,
                    name: place.namespace.clone(),
                };
                return Err(explain::client_error(
                    err,
                    "creating (to hold the deploy lock)",
                    &id,
                    &place.cluster,
                ));
            }
        };
        let created = created_namespace.then(|| place.namespace.clone());
        let changed = match &created {
            Some(namespace) => format!(
                "nothing was changed but the empty namespace {namespace}, created for the lock"
            ),
            None => "nothing was changed".into(),
        };
        let taken = take(place, &self.claimant, self.options, &mut *self.report)
            .await
            .map_err(|err| match err.downcast::<Busy>() {
                Ok(mut busy) => {
                    busy.created_namespace = created.clone();
                    busy.into()
                }
                Err(err) => err,
            })?;
        match taken {
            None => anyhow::bail!(
                "namespace {} disappeared while taking the deploy lock; {changed}. Run apply again",
                place.namespace
            ),
            Some((held, Taken::Created)) => {
                self.state = State::Held(Box::new(held));
                Ok(())
            }
            Some((held, Taken::Existing)) => {
                held.release().await?;
                self.state = State::Released;
                anyhow::bail!(
                    "namespace {} did not exist when this apply planned, and another apply has taken the deploy lock in it since, so this plan may be out of date; {changed}. Run apply again to plan against what that apply did",
                    place.namespace
                )
            }
        }
    }

    /// Runs `work` (apply's writes and rollout wait) while the lock is
    /// held. If the lock is lost first, `work` is stopped where it stands,
    /// so it never writes alongside another apply.
    pub async fn guard<T>(
        &mut self,
        work: impl Future<Output = anyhow::Result<T>>,
    ) -> anyhow::Result<T> {
        let State::Held(held) = &self.state else {
            return work.await;
        };
        // Biased, the loss first: a lock lost before the writes begin (during
        // the confirmation) stops them before the first one is sent.
        tokio::select! {
            biased;
            reason = held.lost() => Err(anyhow::anyhow!(
                "the deploy lock (Lease {}/{}) was lost while applying: {reason}. Apply stopped where it stood; a change in flight may or may not have been made. Once no other apply is running, run apply again: it picks up where this left off",
                self.place.namespace,
                self.place.name
            )),
            result = work => result,
        }
    }

    /// Gives the lock up (when apply ends, also on error).
    pub async fn release(mut self) -> anyhow::Result<()> {
        match std::mem::replace(&mut self.state, State::Released) {
            State::Held(held) => held.release().await,
            State::Deferred | State::Released => Ok(()),
        }
    }

    /// Gives the lock up by deleting its Lease: a destroy, done with it.
    /// Whether it held the Lease (and so deleted it).
    pub async fn release_by_deleting(&mut self) -> anyhow::Result<bool> {
        match std::mem::replace(&mut self.state, State::Released) {
            State::Held(held) => held.delete().await.map(|()| true),
            State::Deferred | State::Released => Ok(false),
        }
    }
}

/// The lock as it stands, for `plan` and `unlock`.
pub struct Standing {
    /// Who holds it; `None` when nobody does (or there is no Lease yet).
    pub holder: Option<Holder>,
    pub lease: String,
    read: Option<Lease>,
    place: Place,
}

impl Standing {
    /// Whether the Lease exists (held or not).
    pub fn exists(&self) -> bool {
        self.read.is_some()
    }
}

/// Reads the lock without taking it.
pub async fn standing(cluster: &Cluster, fleet: &str, namespace: &str) -> anyhow::Result<Standing> {
    let place = Place::new(cluster, fleet, namespace);
    let (lease, clock) = place.read().await.map_err(place.explained("reading"))?;
    Ok(Standing {
        holder: lease.as_ref().and_then(|l| holder_of(l, clock.now())),
        lease: format!("{}/{}", place.namespace, place.name),
        read: lease,
        place,
    })
}

/// Empties the Lease as it was read in `standing`: if it changed since (a
/// renewal, another holder), nothing is changed.
pub async fn remove(standing: Standing) -> anyhow::Result<()> {
    let Standing { read, place, .. } = standing;
    let params = write_params();
    let Some(lease) = read else {
        return Ok(());
    };
    match place
        .api
        .replace(&place.name, &params, &emptied(lease))
        .await
    {
        Ok(_) => Ok(()),
        Err(err) if status_code(&err) == Some(409) => anyhow::bail!(
            "the deploy lock (Lease {}/{}) changed since it was read (renewed, or taken by another apply): nothing was changed. Run `fleet unlock` again to see who holds it now",
            place.namespace,
            place.name
        ),
        Err(err) => Err(place.explained("removing")(err)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn held_by(identity: &str, renewed: &str) -> Observed {
        Observed {
            identity: Some(identity.into()),
            renewed: Some(at(renewed)),
            duration: Duration::from_secs(30),
            holder_ended: false,
        }
    }

    #[test]
    fn no_lease_is_created() {
        assert_eq!(
            decide(None, "me", at("2026-01-01T00:00:00Z")),
            Decision::Create
        );
    }

    #[test]
    fn a_released_lease_is_taken() {
        let free = Observed {
            identity: None,
            renewed: None,
            duration: Duration::from_secs(30),
            holder_ended: false,
        };
        assert_eq!(
            decide(Some(&free), "me", at("2026-01-01T00:00:00Z")),
            Decision::Take {
                expired: false,
                ended: false
            }
        );
    }

    #[test]
    fn a_live_holder_keeps_it_until_duration_and_allowance_have_passed() {
        let lease = held_by("other", "2026-01-01T00:00:00Z");
        // 30 s duration + 2 s allowance.
        for now in [
            "2026-01-01T00:00:00Z",
            "2026-01-01T00:00:31Z",
            "2026-01-01T00:00:32Z",
        ] {
            assert_eq!(decide(Some(&lease), "me", at(now)), Decision::Held, "{now}");
        }
        assert_eq!(
            decide(Some(&lease), "me", at("2026-01-01T00:00:32.001Z")),
            Decision::Take {
                expired: true,
                ended: false
            }
        );
    }

    #[test]
    fn a_renewal_in_the_future_is_still_held() {
        // The holder's estimate of server time ran ahead of ours.
        let lease = held_by("other", "2026-01-01T00:00:05Z");
        assert_eq!(
            decide(Some(&lease), "me", at("2026-01-01T00:00:00Z")),
            Decision::Held
        );
    }

    #[test]
    fn our_own_lease_is_taken_again() {
        let lease = held_by("me", "2026-01-01T00:00:00Z");
        assert_eq!(
            decide(Some(&lease), "me", at("2026-01-01T00:00:01Z")),
            Decision::Take {
                expired: false,
                ended: false
            }
        );
    }

    #[test]
    fn a_lease_held_without_times_is_expired() {
        let lease = Observed {
            identity: Some("someone by hand".into()),
            renewed: None,
            duration: Duration::from_secs(30),
            holder_ended: false,
        };
        assert_eq!(
            decide(Some(&lease), "me", at("2026-01-01T00:00:00Z")),
            Decision::Take {
                expired: true,
                ended: false
            }
        );
    }

    #[test]
    fn a_holder_whose_process_ended_is_taken_over_at_once() {
        let mut lease = held_by("other", "2026-01-01T00:00:00Z");
        lease.holder_ended = true;
        assert_eq!(
            decide(Some(&lease), "me", at("2026-01-01T00:00:01Z")),
            Decision::Take {
                expired: false,
                ended: true
            }
        );
    }

    fn lease(json: serde_json::Value) -> Lease {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn observed_reads_renew_time_else_acquire_time() {
        let renewed = lease(serde_json::json!({
            "metadata": { "name": "fleet-x" },
            "spec": {
                "holderIdentity": "a",
                "acquireTime": "2026-01-01T00:00:00.000000Z",
                "renewTime": "2026-01-01T00:00:20.000000Z",
                "leaseDurationSeconds": 9
            }
        }));
        let observed = Observed::of(&renewed);
        assert_eq!(observed.renewed, Some(at("2026-01-01T00:00:20Z")));
        assert_eq!(observed.duration, Duration::from_secs(9));
        let acquired = lease(serde_json::json!({
            "metadata": { "name": "fleet-x" },
            "spec": { "holderIdentity": "", "acquireTime": "2026-01-01T00:00:00.000000Z" }
        }));
        let observed = Observed::of(&acquired);
        assert_eq!(observed.identity, None);
        assert_eq!(observed.renewed, Some(at("2026-01-01T00:00:00Z")));
        assert_eq!(observed.duration, DEFAULT_TTL);
    }

    #[test]
    fn claiming_and_emptying_round_trip() {
        let claimant = Claimant {
            who: "https://github.com/o/r/actions/runs/1/attempts/1".into(),
            host: "job deploy on runner pid 7".into(),
            identity: "id-1".into(),
            process: Some("boot/1/7/100".into()),
        };
        let now = at("2026-01-01T00:00:00Z");
        let taken = claimed(
            lease(serde_json::json!({ "metadata": { "name": "fleet-x", "resourceVersion": "7" } })),
            &claimant,
            Duration::from_secs(30),
            now,
        );
        assert_eq!(taken.metadata.resource_version.as_deref(), Some("7"));
        let spec = taken.spec.as_ref().unwrap();
        assert_eq!(spec.holder_identity.as_deref(), Some("id-1"));
        assert_eq!(spec.lease_duration_seconds, Some(30));
        assert_eq!(spec.lease_transitions, Some(1));
        let annotations = taken.metadata.annotations.as_ref().unwrap();
        assert_eq!(
            annotations.get(PROCESS_ANNOTATION).map(String::as_str),
            Some("boot/1/7/100")
        );
        let holder = holder_of(&taken, plus(now, Duration::from_secs(75))).unwrap();
        assert_eq!(holder.holder, claimant.who);
        assert_eq!(holder.since.as_deref(), Some("2026-01-01T00:00:00Z"));
        assert!(holder.expired);
        assert_eq!(
            holder.to_string(),
            "https://github.com/o/r/actions/runs/1/attempts/1 (job deploy on runner pid 7) since 2026-01-01T00:00:00Z (1m15s ago), not renewed since 2026-01-01T00:00:00Z: that apply stopped without releasing it, and the next apply takes it over"
        );

        // A renewal by the same holder keeps acquireTime and transitions.
        let renewed = claimed(
            taken.clone(),
            &claimant,
            Duration::from_secs(30),
            plus(now, Duration::from_secs(10)),
        );
        let spec = renewed.spec.as_ref().unwrap();
        assert_eq!(spec.acquire_time, Some(MicroTime(now)));
        assert_eq!(spec.lease_transitions, Some(1));

        let free = emptied(renewed);
        assert!(holder_of(&free, now).is_none());
        assert_eq!(free.spec.as_ref().unwrap().lease_transitions, Some(1));
        assert!(
            !free.metadata.annotations.unwrap().keys().any(|key| [
                HOLDER_ANNOTATION,
                PROCESS_ANNOTATION
            ]
            .contains(&key.as_str()))
        );
    }

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

    #[test]
    fn server_clock_from_the_date_header() {
        let local = at("2026-11-29T11:03:00Z");
        let clock = ServerClock::from_date_header(Some("Sun, 29 Nov 2026 11:03:08 GMT"), local);
        assert_eq!(clock.offset, SignedDuration::from_millis(8_500));
        let missing = ServerClock::from_date_header(None, local);
        assert_eq!(missing.offset, SignedDuration::ZERO);
        let garbage = ServerClock::from_date_header(Some("yesterday"), local);
        assert_eq!(garbage.offset, SignedDuration::ZERO);
    }

    #[test]
    fn durations_read_like_people_write_them() {
        assert_eq!(human(Duration::from_secs(40)), "40s");
        assert_eq!(human(Duration::from_secs(72)), "1m12s");
        assert_eq!(human(Duration::from_secs(3 * 3600 + 300)), "3h5m");
    }
}
