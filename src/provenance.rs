//! provenance: where a plan comes from, and what is live. The definition's
//! git repository (commit, branch or tag, remote, uncommitted changes), found
//! from the definition's directory; what the ApplySet parent records of the
//! last apply that changed something (the same, plus who applied and when);
//! and which cluster a plan was made for. [`of_plan`] is the only reading of
//! git (through git2); everything else here is pure.

use crate::env_vars::EnvVars;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::redact;

/// ApplySet parent annotations: the definition's commit, its branch or tag,
/// its remote (without userinfo), whether it had uncommitted changes, who
/// applied and when. Only on the parent, never on pod templates or other
/// objects, so a new commit does not roll every agent; written by the last
/// write of an apply that changes something, and no change of their own.
pub const COMMIT_ANNOTATION: &str = "fleet.agent.ceo/commit";
pub const REF_ANNOTATION: &str = "fleet.agent.ceo/ref";
pub const REMOTE_ANNOTATION: &str = "fleet.agent.ceo/remote";
pub const DIRTY_ANNOTATION: &str = "fleet.agent.ceo/dirty";
pub const APPLIED_BY_ANNOTATION: &str = "fleet.agent.ceo/applied-by";
pub const APPLIED_AT_ANNOTATION: &str = "fleet.agent.ceo/applied-at";
/// The targeting flags of the last apply, when it was targeted: only those
/// agents are at its commit.
pub const TARGETED_ANNOTATION: &str = "fleet.agent.ceo/targeted";
pub const ANNOTATIONS: &[&str] = &[
    TARGETED_ANNOTATION,
    COMMIT_ANNOTATION,
    REF_ANNOTATION,
    REMOTE_ANNOTATION,
    DIRTY_ANNOTATION,
    APPLIED_BY_ANNOTATION,
    APPLIED_AT_ANNOTATION,
];

/// Part of the plan (`provenance` in its JSON form).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    /// The definition's repository as the plan was made; `null` outside git.
    #[serde(default)]
    pub definition: Option<Git>,
    /// What the ApplySet parent records of the last apply; `null` before
    /// the first (or one by a fleet that did not record it).
    #[serde(default)]
    pub live: Option<Applied>,
    /// Commits the definition is ahead of the live commit, when the live
    /// commit is one of its ancestors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ahead: Option<usize>,
    /// Commits the definition is behind the live commit, when it is an
    /// ancestor of the live one (applying goes back).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub behind: Option<usize>,
    /// The cluster the plan was made for.
    #[serde(default)]
    pub cluster: Option<ClusterIdentity>,
    /// Why there is no definition commit, for the notice apply prints.
    #[serde(skip)]
    pub untracked: Option<String>,
}

/// The definition's git repository.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Git {
    /// HEAD's commit id, in full.
    pub commit: String,
    /// The branch checked out, or a tag pointing at HEAD when it is detached.
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// The URL of the branch's remote (else `origin`, else the only one),
    /// without userinfo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<String>,
    /// Files under the definition's directory differ from HEAD (tracked
    /// files changed, or untracked files).
    pub dirty: bool,
    /// What is uncommitted, for apply's refusal.
    #[serde(skip)]
    pub changed: Vec<Changed>,
    /// The repository's work tree (canonical), which `changed` is relative to.
    #[serde(skip)]
    pub workdir: PathBuf,
}

/// One uncommitted file: its path in the repository and how it differs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changed {
    pub path: String,
    pub how: &'static str,
}

/// What the ApplySet parent records of the last apply.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<String>,
    #[serde(default)]
    pub dirty: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_at: Option<String>,
    /// The last apply's targeting flags, when it was targeted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub targeted: Option<String>,
}

/// Which cluster a plan was made for: context names are only names, and two
/// clusters may share one (each CI runner's `kind`, a recreated cluster).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterIdentity {
    /// The UID of the namespace `kube-system`: fixed for the cluster's life,
    /// different on every other cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kube_system_uid: Option<String>,
    /// The API server's URL (without userinfo): what identifies the cluster
    /// when the UID cannot be read.
    pub server: String,
    /// Why the UID could not be read (the server's words).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unread: Option<String>,
}

impl ClusterIdentity {
    /// The same cluster: by UID when both have one, else by server URL.
    pub fn same_cluster(&self, other: &ClusterIdentity) -> bool {
        match (&self.kube_system_uid, &other.kube_system_uid) {
            (Some(a), Some(b)) => a == b,
            _ => self.server == other.server,
        }
    }

    fn describe(&self) -> String {
        match &self.kube_system_uid {
            Some(uid) => format!("cluster {uid} at {}", self.server),
            None => format!("the cluster at {}", self.server),
        }
    }

    /// A plan note when the UID could not be read.
    pub fn note(&self) -> Option<String> {
        let reason = self.unread.as_deref()?;
        Some(format!(
            "the cluster's identity (the UID of namespace kube-system) could not be read ({reason}): a saved plan is tied to the server URL {} instead, which another cluster could share",
            self.server
        ))
    }
}

/// The provenance of a plan: git read from the definition's directory
/// (`definition_file`'s, walking up to the repository), the live parent's
/// record (if the parent exists), and the cluster's identity.
pub fn of_plan(
    definition_file: &Path,
    live_parent: Option<&Value>,
    cluster: ClusterIdentity,
) -> anyhow::Result<Provenance> {
    let mut provenance = Provenance {
        live: live_parent.and_then(applied),
        cluster: Some(cluster),
        ..Provenance::default()
    };
    let dir = definition_dir(definition_file)?;
    let repo = match git2::Repository::discover(&dir) {
        Ok(repo) if !repo.is_bare() => repo,
        Ok(_) => {
            provenance.untracked =
                Some(format!("{} is inside a bare git repository", dir.display()));
            return Ok(provenance);
        }
        Err(err) if err.code() == git2::ErrorCode::NotFound => {
            provenance.untracked = Some(format!("{} is not in a git repository", dir.display()));
            return Ok(provenance);
        }
        Err(err) => {
            return Err(anyhow::Error::new(err).context(format!(
                "reading the git repository of the definition ({})",
                dir.display()
            )));
        }
    };
    let Some(git) = read_git(&repo, &dir)
        .with_context(|| format!("reading the git repository of {}", dir.display()))?
    else {
        provenance.untracked = Some(format!(
            "the git repository of {} has no commit yet",
            dir.display()
        ));
        return Ok(provenance);
    };
    if let Some(live) = provenance.live.as_ref().and_then(|l| l.commit.as_deref()) {
        (provenance.ahead, provenance.behind) = relation(&repo, &git.commit, live);
    }
    provenance.definition = Some(git);
    Ok(provenance)
}

/// The directory the definition is in, canonical (`fleet.toml` -> the
/// current directory).
fn definition_dir(definition_file: &Path) -> anyhow::Result<PathBuf> {
    let dir = match definition_file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    std::fs::canonicalize(dir).with_context(|| format!("finding the directory {}", dir.display()))
}

/// HEAD, its ref and remote, and what is uncommitted under `dir`; `None`
/// when there is no commit yet.
fn read_git(repo: &git2::Repository, dir: &Path) -> Result<Option<Git>, git2::Error> {
    let head = match repo.head() {
        Ok(head) => head,
        Err(err) if err.code() == git2::ErrorCode::UnbornBranch => return Ok(None),
        Err(err) => return Err(err),
    };
    let commit = head.peel_to_commit()?.id();
    let reference = if head.is_branch() {
        head.shorthand().ok().map(str::to_string)
    } else {
        tag_at(repo, commit)
    };
    let remote = remote_url(repo, &head).map(|url| redact::url(&url));
    let workdir = repo
        .workdir()
        .and_then(|w| std::fs::canonicalize(w).ok())
        .unwrap_or_else(|| dir.to_path_buf());
    let changed = uncommitted(repo, &workdir, dir)?;
    Ok(Some(Git {
        commit: commit.to_string(),
        reference,
        remote,
        dirty: !changed.is_empty(),
        changed,
        workdir,
    }))
}

/// A tag pointing at `commit` (the first by name), for a detached HEAD.
fn tag_at(repo: &git2::Repository, commit: git2::Oid) -> Option<String> {
    let names = repo.tag_names(None).ok()?;
    let mut names: Vec<&str> = names.iter().filter_map(|n| n.ok().flatten()).collect();
    names.sort_unstable();
    names
        .into_iter()
        .find(|name| {
            repo.revparse_single(&format!("refs/tags/{name}"))
                .and_then(|object| object.peel_to_commit())
                .is_ok_and(|c| c.id() == commit)
        })
        .map(str::to_string)
}

/// The URL of the checked-out branch's remote, else `origin`, else the
/// repository's only remote.
fn remote_url(repo: &git2::Repository, head: &git2::Reference<'_>) -> Option<String> {
    let upstream = head
        .name()
        .ok()
        .and_then(|name| repo.branch_upstream_remote(name).ok())
        .and_then(|buf| buf.as_str().ok().map(str::to_string));
    let remotes = repo.remotes().ok()?;
    let names: Vec<&str> = remotes.iter().filter_map(|n| n.ok().flatten()).collect();
    let name = upstream
        .or_else(|| names.contains(&"origin").then(|| "origin".to_string()))
        .or_else(|| (names.len() == 1).then(|| names[0].to_string()))?;
    repo.find_remote(&name).ok()?.url().ok().map(str::to_string)
}

/// Files under `dir` that differ from HEAD: changed in the index or the work
/// tree, and untracked ones (not ignored ones).
fn uncommitted(
    repo: &git2::Repository,
    workdir: &Path,
    dir: &Path,
) -> Result<Vec<Changed>, git2::Error> {
    let mut options = git2::StatusOptions::new();
    options
        .include_untracked(true)
        .recurse_untracked_dirs(true)
        .include_ignored(false)
        .exclude_submodules(true);
    let relative = dir
        .strip_prefix(workdir)
        .ok()
        .and_then(Path::to_str)
        .map(|p| p.replace(std::path::MAIN_SEPARATOR, "/"))
        .unwrap_or_default();
    if !relative.is_empty() {
        options.pathspec(format!("{relative}/"));
    }
    let statuses = repo.statuses(Some(&mut options))?;
    Ok(statuses
        .iter()
        .filter_map(|entry| {
            let how = describe_status(entry.status())?;
            let path = entry.path().ok()?.to_string();
            // `fleet plan --out plan.json` then `fleet apply` in the same
            // checkout (a CI job) must not find its own plan uncommitted.
            if how == "untracked" && is_saved_plan(&workdir.join(&path)) {
                return None;
            }
            Some(Changed { path, how })
        })
        .collect())
}

/// Whether `file` is a plan fleet saved (`fleet plan --out`): JSON whose
/// first key is the plan's `format_version`, then `fleet`. Only its start is
/// read.
fn is_saved_plan(file: &Path) -> bool {
    use std::io::Read as _;
    let mut start = Vec::with_capacity(256);
    let read = std::fs::File::open(file).and_then(|f| f.take(256).read_to_end(&mut start));
    if read.is_err() {
        return false;
    }
    let compact: Vec<u8> = start
        .into_iter()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    compact.starts_with(br#"{"format_version":"#)
        && compact
            .windows(br#","fleet":"#.len())
            .any(|w| w == br#","fleet":"#)
}

fn describe_status(status: git2::Status) -> Option<&'static str> {
    use git2::Status as S;
    if status.intersects(S::WT_NEW) {
        Some("untracked")
    } else if status.intersects(S::INDEX_NEW) {
        Some("added")
    } else if status.intersects(S::WT_DELETED | S::INDEX_DELETED) {
        Some("deleted")
    } else if status.intersects(S::WT_RENAMED | S::INDEX_RENAMED) {
        Some("renamed")
    } else if status
        .intersects(S::WT_MODIFIED | S::INDEX_MODIFIED | S::WT_TYPECHANGE | S::INDEX_TYPECHANGE)
    {
        Some("modified")
    } else if status.intersects(S::CONFLICTED) {
        Some("conflicted")
    } else {
        None
    }
}

/// How the definition's commit stands to the live one: (ahead, behind),
/// each only when one is an ancestor of the other, and neither when git
/// cannot tell (the live commit is not in this clone: a shallow checkout).
fn relation(
    repo: &git2::Repository,
    definition: &str,
    live: &str,
) -> (Option<usize>, Option<usize>) {
    let (Ok(definition), Ok(live)) = (git2::Oid::from_str(definition), git2::Oid::from_str(live))
    else {
        return (None, None);
    };
    if definition == live || repo.find_commit(live).is_err() {
        return (None, None);
    }
    match repo.graph_ahead_behind(definition, live) {
        Ok((ahead, 0)) if ahead > 0 => (Some(ahead), None),
        Ok((0, behind)) if behind > 0 => (None, Some(behind)),
        _ => (None, None),
    }
}

impl Provenance {
    /// Leaves a file out of what counts as uncommitted: the saved plan apply
    /// was given, or the one `plan --out` writes, is not part of the definition.
    pub fn leave_out(&mut self, file: &Path) {
        let Some(git) = &mut self.definition else {
            return;
        };
        let canonical = match (file.parent(), file.file_name()) {
            (Some(parent), Some(name)) => {
                let parent = if parent.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    parent
                };
                std::fs::canonicalize(parent).map(|p| p.join(name)).ok()
            }
            _ => None,
        };
        let Some(relative) = canonical
            .as_deref()
            .and_then(|c| c.strip_prefix(&git.workdir).ok())
            .and_then(Path::to_str)
            .map(|p| p.replace(std::path::MAIN_SEPARATOR, "/"))
        else {
            return;
        };
        git.changed.retain(|c| c.path != relative);
        git.dirty = !git.changed.is_empty();
    }
}

/// Apply's check, before anything is changed, in the manner of `cargo
/// publish`: uncommitted changes under the definition's directory are
/// refused unless `allow_dirty`, since the commit recorded would not be
/// what was applied. Outside git, says so once on `notices` and goes on.
pub fn check_committed(
    provenance: &Provenance,
    allow_dirty: bool,
    notices: &mut dyn std::io::Write,
) -> anyhow::Result<()> {
    if let Some(why) = &provenance.untracked {
        writeln!(
            notices,
            "note: {why}: this apply records no commit, and uncommitted changes cannot be checked for"
        )?;
    }
    match &provenance.definition {
        Some(git) if git.dirty && !allow_dirty => anyhow::bail!("{}", dirty_refusal(git)),
        _ => Ok(()),
    }
}

/// The refusal listing what is uncommitted (at most 20 files).
fn dirty_refusal(git: &Git) -> String {
    const SHOWN: usize = 20;
    let count = git.changed.len();
    let mut text = format!(
        "{count} file{} in the definition's directory {} uncommitted changes:\n",
        if count == 1 { "" } else { "s" },
        if count == 1 { "has" } else { "have" },
    );
    for changed in git.changed.iter().take(SHOWN) {
        text.push_str(&format!("\n  {} ({})", changed.path, changed.how));
    }
    if count > SHOWN {
        text.push_str(&format!("\n  ... and {} more", count - SHOWN));
    }
    text.push_str(
        "\n\napply records the commit it applies, and these changes are not in it. Commit (or stash) them, or apply with --allow-dirty; nothing was changed",
    );
    text
}

/// What the live parent records, if it records anything.
pub fn applied(parent: &Value) -> Option<Applied> {
    let annotations = &parent["metadata"]["annotations"];
    let text = |key: &str| annotations[key].as_str().map(str::to_string);
    let applied = Applied {
        commit: text(COMMIT_ANNOTATION),
        reference: text(REF_ANNOTATION),
        remote: text(REMOTE_ANNOTATION),
        dirty: annotations[DIRTY_ANNOTATION] == "true",
        applied_by: text(APPLIED_BY_ANNOTATION),
        applied_at: text(APPLIED_AT_ANNOTATION),
        targeted: text(TARGETED_ANNOTATION),
    };
    (applied != Applied::default()).then_some(applied)
}

/// The provenance annotations a live object carries, as they are.
pub fn recorded(live: &Value) -> Map<String, Value> {
    live["metadata"]["annotations"]
        .as_object()
        .map(|annotations| {
            annotations
                .iter()
                .filter(|(key, _)| ANNOTATIONS.contains(&key.as_str()))
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// The annotations an apply records on the parent: the definition's
/// commit, ref, remote and dirty flag (none outside git), who and when.
pub fn annotations(
    definition: Option<&Git>,
    applied_by: &str,
    applied_at: &str,
    targeted: Option<&str>,
) -> Map<String, Value> {
    let mut annotations = Map::new();
    if let Some(git) = definition {
        annotations.insert(COMMIT_ANNOTATION.into(), git.commit.clone().into());
        if let Some(reference) = &git.reference {
            annotations.insert(REF_ANNOTATION.into(), reference.clone().into());
        }
        if let Some(remote) = &git.remote {
            annotations.insert(REMOTE_ANNOTATION.into(), remote.clone().into());
        }
        annotations.insert(DIRTY_ANNOTATION.into(), git.dirty.to_string().into());
    }
    annotations.insert(APPLIED_BY_ANNOTATION.into(), applied_by.into());
    annotations.insert(APPLIED_AT_ANNOTATION.into(), applied_at.into());
    if let Some(flags) = targeted {
        annotations.insert(TARGETED_ANNOTATION.into(), flags.into());
    }
    annotations
}

/// What an apply records on the ApplySet parent. The time is taken when
/// the record is written, at the end of the apply's writes.
#[derive(Debug, Clone, Default)]
pub struct Record {
    pub definition: Option<Git>,
    pub applied_by: String,
    /// The targeting flags, when the apply is targeted.
    pub targeted: Option<String>,
}

impl Record {
    /// The annotations, applied now.
    pub fn annotations(&self) -> Map<String, Value> {
        annotations(
            self.definition.as_ref(),
            &self.applied_by,
            &now(),
            self.targeted.as_deref(),
        )
    }
}

/// Who applies: the GitHub Actions actor, else `user@host`.
pub fn applier() -> String {
    applier_from(
        std::env::var(EnvVars::GITHUB_ACTOR).ok().as_deref(),
        crate::process::user_at_host,
    )
}

fn applier_from(github_actor: Option<&str>, user_at_host: impl FnOnce() -> String) -> String {
    match github_actor
        .map(str::trim)
        .filter(|actor| !actor.is_empty())
    {
        Some(actor) => actor.to_string(),
        None => user_at_host(),
    }
}

/// Now, in UTC to the second (RFC 3339).
pub fn now() -> String {
    let now = k8s_openapi::jiff::Timestamp::now();
    k8s_openapi::jiff::Timestamp::from_second(now.as_second())
        .unwrap_or(now)
        .to_string()
}

/// A saved plan is applied only where and from what it was made: the same
/// cluster (not only the same context name) and the same commit.
pub fn check_saved(saved: &Provenance, fresh: &Provenance) -> anyhow::Result<()> {
    match (&saved.cluster, &fresh.cluster) {
        (Some(saved), Some(fresh)) if !saved.same_cluster(fresh) => {
            anyhow::bail!(
                "was made for {}, but the kube context now reaches {}",
                saved.describe(),
                fresh.describe()
            );
        }
        (None, _) => {
            anyhow::bail!("records no cluster identity (it was made by an older fleet)");
        }
        _ => {}
    }
    let commit = |p: &Provenance| p.definition.as_ref().map(|g| g.commit.clone());
    if commit(saved) != commit(fresh) {
        let describe = |c: Option<String>| match c {
            Some(c) => format!("commit {}", short(&c)),
            None => "outside git".to_string(),
        };
        anyhow::bail!(
            "was made from the definition at {}, and the definition is at {} now",
            describe(commit(saved)),
            describe(commit(fresh))
        );
    }
    Ok(())
}

/// A commit id as people read it.
pub fn short(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}

/// The provenance as lines for the plan's header: the definition's commit,
/// what is live, and how they stand to each other.
pub fn lines(provenance: &Provenance) -> Vec<String> {
    let mut lines = Vec::new();
    let describe =
        |commit: &str, reference: &Option<String>, remote: &Option<String>, dirty: bool| {
            let mut text = short(commit).to_string();
            let place: Vec<&str> = [reference.as_deref(), remote.as_deref()]
                .into_iter()
                .flatten()
                .collect();
            if !place.is_empty() {
                text.push_str(&format!(" ({})", place.join(", ")));
            }
            if dirty {
                text.push_str(" with uncommitted changes");
            }
            text
        };
    if let Some(git) = &provenance.definition {
        lines.push(format!(
            "definition: {}",
            describe(&git.commit, &git.reference, &git.remote, git.dirty)
        ));
    }
    if let Some(live) = &provenance.live {
        let what = match &live.commit {
            Some(commit) => describe(commit, &live.reference, &live.remote, live.dirty),
            None => "no commit recorded,".to_string(),
        };
        lines.push(format!(
            "live: {what} applied by {} at {}{}",
            live.applied_by.as_deref().unwrap_or("unknown"),
            live.applied_at.as_deref().unwrap_or("an unknown time"),
            live.targeted
                .as_deref()
                .map(|flags| format!(", to some agents only ({flags})"))
                .unwrap_or_default()
        ));
    }
    if let (Some(git), Some(live)) = (
        &provenance.definition,
        provenance.live.as_ref().and_then(|l| l.commit.as_deref()),
    ) && git.commit != live
    {
        let plural = |n: usize| if n == 1 { "" } else { "s" };
        let relation = match (provenance.ahead, provenance.behind) {
            (Some(n), _) => format!(": {n} commit{} ahead", plural(n)),
            (_, Some(n)) => format!(": {n} commit{} behind (applying goes back)", plural(n)),
            _ => String::new(),
        };
        lines.push(format!(
            "definition at {}, live at {}{relation}",
            short(&git.commit),
            short(live)
        ));
    }
    lines
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn git(commit: &str) -> Git {
        Git {
            commit: commit.into(),
            reference: Some("main".into()),
            remote: Some("https://***@example.com/org/fleet.git".into()),
            ..Git::default()
        }
    }

    #[test]
    fn annotations_round_trip_through_the_parent() {
        let mut definition = git("0123456789abcdef0123456789abcdef01234567");
        definition.dirty = true;
        let annotations = annotations(
            Some(&definition),
            "octocat",
            "2026-01-02T03:04:05Z",
            Some("--agent devops"),
        );
        let parent = json!({ "metadata": { "annotations": annotations } });
        assert_eq!(
            applied(&parent),
            Some(Applied {
                commit: Some(definition.commit.clone()),
                reference: Some("main".into()),
                remote: Some("https://***@example.com/org/fleet.git".into()),
                dirty: true,
                applied_by: Some("octocat".into()),
                applied_at: Some("2026-01-02T03:04:05Z".into()),
                targeted: Some("--agent devops".into()),
            })
        );
        let lines = lines(&Provenance {
            live: applied(&parent),
            ..Provenance::default()
        });
        assert!(
            lines[0].ends_with(", to some agents only (--agent devops)"),
            "{lines:?}"
        );
        // Outside git: who and when only.
        let bare = annotations_without_git();
        assert_eq!(bare.len(), 2);
        assert_eq!(applied(&json!({ "metadata": {} })), None);
    }

    fn annotations_without_git() -> Map<String, Value> {
        annotations(None, "me@host", "2026-01-02T03:04:05Z", None)
    }

    #[test]
    fn recorded_keeps_only_provenance() {
        let live = json!({ "metadata": { "annotations": {
            COMMIT_ANNOTATION: "abc", "other": "x", APPLIED_BY_ANNOTATION: "me"
        } } });
        let kept = recorded(&live);
        assert_eq!(kept.len(), 2);
        assert!(!kept.contains_key("other"));
    }

    #[test]
    fn applier_is_the_actions_actor_else_user_at_host() {
        let user_at_host = || "ana@laptop".to_string();
        assert_eq!(applier_from(Some("octocat"), user_at_host), "octocat");
        assert_eq!(applier_from(Some(" "), user_at_host), "ana@laptop");
        assert_eq!(applier_from(None, user_at_host), "ana@laptop");
    }

    #[test]
    fn now_is_rfc3339_to_the_second() {
        let now = now();
        assert_eq!(now.len(), "2026-01-02T03:04:05Z".len(), "{now}");
        assert!(now.ends_with('Z'), "{now}");
    }

    #[test]
    fn lines_show_definition_live_and_how_far_ahead() {
        let definition = "1111111111112222222222222222222222222222";
        let live = "3333333333334444444444444444444444444444";
        let provenance = Provenance {
            definition: Some(git(definition)),
            live: Some(Applied {
                commit: Some(live.into()),
                applied_by: Some("octocat".into()),
                applied_at: Some("2026-01-02T03:04:05Z".into()),
                ..Applied::default()
            }),
            ahead: Some(2),
            ..Provenance::default()
        };
        assert_eq!(
            lines(&provenance),
            [
                "definition: 111111111111 (main, https://***@example.com/org/fleet.git)",
                "live: 333333333333 applied by octocat at 2026-01-02T03:04:05Z",
                "definition at 111111111111, live at 333333333333: 2 commits ahead",
            ]
        );
        // The same commit: no comparison line.
        let mut same = provenance.clone();
        same.live.as_mut().unwrap().commit = Some(definition.into());
        assert_eq!(lines(&same).len(), 2);
        // Nothing known: nothing said.
        assert!(lines(&Provenance::default()).is_empty());
        // Live without a commit.
        let outside = Provenance {
            live: applied(&json!({ "metadata": { "annotations": annotations_without_git() } })),
            ..Provenance::default()
        };
        assert_eq!(
            lines(&outside),
            ["live: no commit recorded, applied by me@host at 2026-01-02T03:04:05Z"]
        );
    }

    #[test]
    fn saved_plans_must_match_cluster_and_commit() {
        let cluster = |uid: Option<&str>, server: &str| ClusterIdentity {
            kube_system_uid: uid.map(str::to_string),
            server: server.into(),
            unread: None,
        };
        let plan = |commit: &str, identity: ClusterIdentity| Provenance {
            definition: Some(git(commit)),
            cluster: Some(identity),
            ..Provenance::default()
        };
        let a = plan("aaaa", cluster(Some("uid-1"), "https://x"));
        assert!(check_saved(&a, &a.clone()).is_ok());
        // Same context and server, another cluster.
        let other = plan("aaaa", cluster(Some("uid-2"), "https://x"));
        assert!(
            check_saved(&a, &other)
                .unwrap_err()
                .to_string()
                .contains("uid-1")
        );
        // The UID unreadable on one side: the server decides.
        let unread = plan("aaaa", cluster(None, "https://x"));
        assert!(check_saved(&a, &unread).is_ok());
        let elsewhere = plan("aaaa", cluster(None, "https://y"));
        assert!(check_saved(&a, &elsewhere).is_err());
        // Another commit.
        let later = plan("bbbb", cluster(Some("uid-1"), "https://x"));
        let err = check_saved(&a, &later).unwrap_err().to_string();
        assert!(
            err.contains("commit aaaa") && err.contains("commit bbbb"),
            "{err}"
        );
        // No identity recorded: refused.
        assert!(check_saved(&Provenance::default(), &a).is_err());
    }

    #[test]
    fn a_note_says_when_the_identity_is_the_server_url() {
        let identity = ClusterIdentity {
            kube_system_uid: None,
            server: "https://127.0.0.1:16443".into(),
            unread: Some("forbidden".into()),
        };
        let note = identity.note().unwrap();
        assert!(note.contains("forbidden") && note.contains("https://127.0.0.1:16443"));
    }

    #[test]
    fn dirty_refusal_lists_files_and_the_way_out() {
        let mut definition = git("aaaa");
        definition.dirty = true;
        definition.changed = vec![
            Changed {
                path: "fleet.toml".into(),
                how: "modified",
            },
            Changed {
                path: "notes.txt".into(),
                how: "untracked",
            },
        ];
        let provenance = Provenance {
            definition: Some(definition),
            ..Provenance::default()
        };
        let mut notices = Vec::new();
        let err = check_committed(&provenance, false, &mut notices)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("2 files") && err.contains("fleet.toml (modified)"),
            "{err}"
        );
        assert!(err.contains("--allow-dirty"), "{err}");
        assert!(check_committed(&provenance, true, &mut notices).is_ok());
        assert!(notices.is_empty());

        let outside = Provenance {
            untracked: Some("/tmp/x is not in a git repository".into()),
            ..Provenance::default()
        };
        check_committed(&outside, false, &mut notices).unwrap();
        let notices = String::from_utf8(notices).unwrap();
        assert_eq!(notices.lines().count(), 1, "{notices}");
    }

    /// A repository made with git2: commit, ref, redacted remote, dirty
    /// files under the definition's directory only, ahead of an older commit.
    #[test]
    fn reads_a_real_repository() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let repo = git2::Repository::init(root).unwrap();
        let definition = root.join("deploy");
        std::fs::create_dir_all(definition.join("environments")).unwrap();
        std::fs::write(definition.join("fleet.toml"), "[fleet]\n").unwrap();
        std::fs::write(root.join("README.md"), "readme\n").unwrap();
        let first = commit_all(&repo, "first");
        std::fs::write(definition.join("fleet.toml"), "[fleet]\nname = \"a\"\n").unwrap();
        let second = commit_all(&repo, "second");
        repo.remote("origin", "https://user:hunter2@example.com/org/fleet.git")
            .unwrap();

        let live =
            json!({ "metadata": { "annotations": { COMMIT_ANNOTATION: first.to_string() } } });
        let file = definition.join("fleet.toml");
        let provenance = of_plan(&file, Some(&live), ClusterIdentity::default()).unwrap();
        let git = provenance.definition.as_ref().unwrap();
        assert_eq!(git.commit, second.to_string());
        assert!(git.reference.is_some());
        assert_eq!(
            git.remote.as_deref(),
            Some("https://***@example.com/org/fleet.git")
        );
        assert!(!git.dirty, "{:?}", git.changed);
        assert_eq!(provenance.ahead, Some(1));

        // Outside the definition's directory: not the definition's change.
        std::fs::write(root.join("README.md"), "changed\n").unwrap();
        std::fs::write(root.join("deployment-notes.txt"), "x\n").unwrap();
        let clean = of_plan(&file, None, ClusterIdentity::default()).unwrap();
        assert!(!clean.definition.unwrap().dirty);
        // Inside it: modified and untracked files.
        std::fs::write(definition.join("environments/prod.toml"), "x\n").unwrap();
        std::fs::write(definition.join("fleet.toml"), "[fleet]\nname = \"b\"\n").unwrap();
        let dirty = of_plan(&file, None, ClusterIdentity::default()).unwrap();
        let mut changed: Vec<(String, &str)> = dirty
            .definition
            .as_ref()
            .unwrap()
            .changed
            .iter()
            .map(|c| (c.path.clone(), c.how))
            .collect();
        changed.sort();
        assert_eq!(
            changed,
            [
                ("deploy/environments/prod.toml".to_string(), "untracked"),
                ("deploy/fleet.toml".to_string(), "modified"),
            ]
        );
        // A plan saved in the directory (`fleet plan --out`) is not part of
        // the definition, whoever looks; another JSON file is.
        std::fs::write(
            definition.join("plan.json"),
            "{\n  \"format_version\": 1,\n  \"fleet\": \"agent-ceo\",\n  \"changes\": []\n}\n",
        )
        .unwrap();
        std::fs::write(definition.join("config.json"), "{\"fleet\": 1}\n").unwrap();
        let with_plan = of_plan(&file, None, ClusterIdentity::default()).unwrap();
        let paths: Vec<&str> = with_plan
            .definition
            .as_ref()
            .unwrap()
            .changed
            .iter()
            .map(|c| c.path.as_str())
            .collect();
        assert!(!paths.contains(&"deploy/plan.json"), "{paths:?}");
        assert!(paths.contains(&"deploy/config.json"), "{paths:?}");
        std::fs::remove_file(definition.join("plan.json")).unwrap();
        std::fs::remove_file(definition.join("config.json")).unwrap();
        // The file a saved plan was given is left out.
        let mut leave = dirty.clone();
        leave.leave_out(&definition.join("environments/prod.toml"));
        assert_eq!(leave.definition.as_ref().unwrap().changed.len(), 1);

        // Behind: the live commit is newer.
        let live =
            json!({ "metadata": { "annotations": { COMMIT_ANNOTATION: second.to_string() } } });
        repo.set_head_detached(first).unwrap();
        repo.tag_lightweight("v1", &repo.find_object(first, None).unwrap(), false)
            .unwrap();
        let behind = of_plan(&file, Some(&live), ClusterIdentity::default()).unwrap();
        assert_eq!(behind.behind, Some(1));
        assert_eq!(
            behind.definition.unwrap().reference.as_deref(),
            Some("v1"),
            "a detached HEAD is named by its tag"
        );
    }

    #[test]
    fn outside_git_there_is_no_commit_and_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("fleet.toml"), "").unwrap();
        let provenance = of_plan(
            &dir.path().join("fleet.toml"),
            None,
            ClusterIdentity::default(),
        )
        .unwrap();
        assert!(provenance.definition.is_none());
        assert!(
            provenance
                .untracked
                .unwrap()
                .contains("not in a git repository"),
        );
    }

    fn commit_all(repo: &git2::Repository, message: &str) -> git2::Oid {
        let mut index = repo.index().unwrap();
        index
            .add_all(["*"], git2::IndexAddOption::DEFAULT, None)
            .unwrap();
        index.write().unwrap();
        let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
        let signature = git2::Signature::now("test", "test@example.com").unwrap();
        let parent = repo.head().ok().and_then(|h| h.peel_to_commit().ok());
        let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
        repo.commit(
            Some("HEAD"),
            &signature,
            &signature,
            message,
            &tree,
            &parents,
        )
        .unwrap()
    }
}
