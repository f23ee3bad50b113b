//! Worktrees: a git worktree per session, and merging its work back.
//!
//! `session.start` with `worktree` checks out a new branch of the repository the
//! workdir is in at `$R1_HOME/worktrees/<worktree_id>` (never inside the user's repo),
//! and that checkout becomes the session's workdir. The registry is one small JSON file
//! per worktree next to it (`$R1_HOME/worktrees/<id>.json`, written atomically), so it
//! survives restarts; it is the daemon's only record of which branch belongs to which
//! session. The `worktrees` directory is a hole in the protected state directory
//! (`r1_engine::Protected::for_state_dir`), so tools and sandboxed commands may work in
//! it.
//!
//! Every git call is `git -C <dir> <args>` with explicit arguments (no shell), no
//! terminal prompt, the C locale, no optional locks and a timeout. Nothing here ever
//! touches the user's index or working tree except the final step of a merge into a
//! checkout that has the base branch checked out, and that step is git's own
//! all-or-nothing update (`merge --ff-only` or `reset --keep`), after checking that the
//! checkout has no uncommitted changes to the files the merge changes.
//!
//! Operations on one repository run one at a time (a busy flag per repository, waited
//! for by polling, so no lock is held across an `.await`).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use r1_proto::{
    ApiError, DiffFileStat, MergeStrategy, WorktreeDiff, WorktreeMergeResult, WorktreeSpec,
    WorktreeState, WorktreeView,
};
use serde::{Deserialize, Serialize};

use crate::fsutil::{now_rfc3339, random_hex, write_atomic};

/// The longest a git command may run: generous for `worktree add` of a large
/// repository on a slow disk, short enough that a hung git (a credential helper, a
/// stuck filesystem) does not hold a repository forever.
const GIT_TIMEOUT: Duration = Duration::from_secs(300);
/// How much of a diff `worktree.diff` returns unless asked for all of it.
pub(crate) const DIFF_CAP_BYTES: usize = 200 * 1024;
/// How long an operation waits for another one on the same repository to finish.
const REPO_WAIT: Duration = Duration::from_secs(120);
/// How often a waiting operation looks whether the repository is free again.
const REPO_POLL: Duration = Duration::from_millis(20);

/// One worktree as the registry keeps it on disk.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct WorktreeRecord {
    /// `wt_…`.
    pub id: String,
    /// The session working in it.
    pub session_id: String,
    /// The top level of the checkout it was made from.
    pub repo: String,
    /// Where it is checked out.
    pub path: String,
    /// Its branch.
    pub branch: String,
    /// The base as asked.
    pub base_ref: String,
    /// The branch merges go into.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_branch: Option<String>,
    /// The commit it started from.
    pub base_commit: String,
    /// `active`, `merged` or `cleaned`.
    pub state: WorktreeState,
    /// RFC 3339 creation time.
    pub created_at: String,
    /// The session's title, the message of the commit of pending changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The base branch's tip the last merge produced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged_commit: Option<String>,
    /// The worktree's commit the last merge took.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged_head: Option<String>,
}

/// What a git command gave.
struct GitOut {
    ok: bool,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl GitOut {
    /// The first line of stdout, trimmed.
    fn line(&self) -> String {
        self.stdout.lines().next().unwrap_or("").trim().to_string()
    }

    /// The first line of stderr, for messages.
    fn why(&self) -> String {
        let s = self.stderr.trim();
        let s = s.strip_prefix("fatal: ").unwrap_or(s);
        s.lines().next().unwrap_or("").to_string()
    }
}

/// Runs `git -C dir args…` with `env`, waiting for it at most [`GIT_TIMEOUT`].
async fn git_env(dir: &str, args: &[&str], env: &[(&str, &str)]) -> Result<GitOut, ApiError> {
    let mut cmd = tokio::process::Command::new("git");
    cmd.arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("LC_ALL", "C")
        // `status` and `diff` would otherwise refresh the user's index behind their back.
        .env("GIT_OPTIONAL_LOCKS", "0")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = match tokio::time::timeout(GIT_TIMEOUT, cmd.output()).await {
        Err(_) => {
            return Err(ApiError::new(
                r1_proto::ErrorCode::Timeout,
                format!("git {} took longer than {GIT_TIMEOUT:?}", args.join(" ")),
            ))
        }
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ApiError::validation(
                "git is not installed (no `git` on the daemon's PATH); worktrees need git",
            ))
        }
        Ok(Err(e)) => return Err(ApiError::internal(format!("cannot run git: {e}"))),
        Ok(Ok(out)) => out,
    };
    Ok(GitOut {
        ok: out.status.success(),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

async fn git(dir: &str, args: &[&str]) -> Result<GitOut, ApiError> {
    git_env(dir, args, &[]).await
}

/// Runs git and wants success; a failure is an `internal` error saying what failed.
async fn git_ok(dir: &str, args: &[&str]) -> Result<GitOut, ApiError> {
    let out = git(dir, args).await?;
    if out.ok {
        Ok(out)
    } else {
        Err(ApiError::internal(format!(
            "git {} failed in {dir}: {}",
            args.join(" "),
            out.why()
        )))
    }
}

/// The commit `rev` names in `dir`, if any.
async fn rev(dir: &str, rev: &str) -> Option<String> {
    let spec = format!("{rev}^{{commit}}");
    match git(dir, &["rev-parse", "--verify", "-q", &spec]).await {
        Ok(o) if o.ok => Some(o.line()),
        _ => None,
    }
}

/// True when `a` is an ancestor of (or equal to) `b`.
async fn is_ancestor(dir: &str, a: &str, b: &str) -> Result<bool, ApiError> {
    let o = git(dir, &["merge-base", "--is-ancestor", a, b]).await?;
    match o.code {
        Some(0) => Ok(true),
        Some(1) => Ok(false),
        _ => Err(ApiError::internal(format!(
            "git merge-base failed: {}",
            o.why()
        ))),
    }
}

/// The files that differ between two commits.
async fn changed_files(dir: &str, a: &str, b: &str) -> Result<BTreeSet<String>, ApiError> {
    let o = git_ok(dir, &["diff", "--name-only", "--no-renames", "-z", a, b]).await?;
    Ok(split_z(&o.stdout).map(str::to_string).collect())
}

/// The paths with uncommitted or untracked changes in the checkout at `dir`.
async fn dirty_files(dir: &str) -> Result<BTreeSet<String>, ApiError> {
    let o = git_ok(
        dir,
        &["status", "--porcelain", "-z", "--untracked-files=all"],
    )
    .await?;
    let mut out = BTreeSet::new();
    let mut entries = split_z(&o.stdout);
    while let Some(e) = entries.next() {
        if e.len() < 4 {
            continue;
        }
        out.insert(e[3..].to_string());
        // A rename or copy is followed by the path it came from, which changes too.
        if e.starts_with('R') || e.starts_with('C') {
            if let Some(from) = entries.next() {
                out.insert(from.to_string());
            }
        }
    }
    Ok(out)
}

fn split_z(s: &str) -> impl Iterator<Item = &str> {
    s.split('\0').filter(|p| !p.is_empty())
}

/// The author and committer to use in `dir` when the repository has none configured,
/// so that committing pending work never fails for want of a name.
async fn identity_env(dir: &str) -> Vec<(&'static str, &'static str)> {
    let has = |o: Result<GitOut, ApiError>| o.is_ok_and(|o| o.ok && !o.line().is_empty());
    let name = has(git(dir, &["config", "user.name"]).await);
    let email = has(git(dir, &["config", "user.email"]).await);
    if name && email {
        Vec::new()
    } else {
        vec![
            ("GIT_AUTHOR_NAME", "r1"),
            ("GIT_AUTHOR_EMAIL", "r1@localhost"),
            ("GIT_COMMITTER_NAME", "r1"),
            ("GIT_COMMITTER_EMAIL", "r1@localhost"),
        ]
    }
}

/// Refuses a ref name or revision that git could read as an option.
fn check_arg(what: &str, v: &str) -> Result<(), ApiError> {
    if v.is_empty() || v.starts_with('-') || v.len() > 250 || v.chars().any(char::is_control) {
        return Err(ApiError::validation(format!(
            "{what} must be 1 to 250 bytes, not start with `-` and have no control characters"
        )));
    }
    Ok(())
}

fn path_str(p: &Path) -> Result<&str, ApiError> {
    p.to_str()
        .ok_or_else(|| ApiError::validation(format!("{} is not valid UTF-8", p.display())))
}

fn list(files: &BTreeSet<String>) -> String {
    const SHOWN: usize = 20;
    let mut s: Vec<&str> = files.iter().take(SHOWN).map(String::as_str).collect();
    let more;
    if files.len() > SHOWN {
        more = format!("and {} more", files.len() - SHOWN);
        s.push(&more);
    }
    s.join(", ")
}

/// The registry of worktrees and the operations on them.
pub(crate) struct Worktrees {
    /// `$R1_HOME/worktrees`: the checkouts and the records.
    dir: PathBuf,
    records: Mutex<BTreeMap<String, WorktreeRecord>>,
    /// Repositories an operation is working on now.
    busy: Mutex<HashSet<String>>,
}

/// A repository held by one operation; freed when dropped.
struct RepoHold<'a> {
    owner: &'a Worktrees,
    repo: String,
}

impl Drop for RepoHold<'_> {
    fn drop(&mut self) {
        if let Ok(mut b) = self.owner.busy.lock() {
            b.remove(&self.repo);
        }
    }
}

impl Worktrees {
    /// The registry in `dir` (created 0700 if missing), with every record found there.
    /// A record that cannot be read is logged and left alone.
    pub(crate) fn load(dir: PathBuf) -> Worktrees {
        let records = crate::fsutil::load_records::<WorktreeRecord>(&dir, "wt_", "worktree")
            .into_iter()
            .map(|r| (r.id.clone(), r))
            .collect();
        Worktrees {
            dir,
            records: Mutex::new(records),
            busy: Mutex::new(HashSet::new()),
        }
    }

    pub(crate) fn get(&self, id: &str) -> Result<WorktreeRecord, ApiError> {
        self.records
            .lock()
            .map_err(|_| ApiError::internal("worktree registry unavailable"))?
            .get(id)
            .cloned()
            .ok_or_else(|| ApiError::not_found(format!("worktree {id} not found")))
    }

    /// Writes `rec` durably, then makes it the registry's.
    async fn save(&self, rec: &WorktreeRecord) -> Result<(), ApiError> {
        let path = self.dir.join(format!("{}.json", rec.id));
        let bytes = serde_json::to_vec_pretty(rec)
            .map_err(|_| ApiError::internal("cannot encode a worktree record"))?;
        tokio::task::spawn_blocking(move || write_atomic(&path, &bytes))
            .await
            .map_err(|_| ApiError::internal("worktree record writer failed"))?
            .map_err(|e| {
                tracing::error!("cannot write worktree record: {e}");
                ApiError::internal("could not write the worktree record")
            })?;
        self.records
            .lock()
            .map_err(|_| ApiError::internal("worktree registry unavailable"))?
            .insert(rec.id.clone(), rec.clone());
        Ok(())
    }

    /// Waits until no other operation works on `repo`, then holds it.
    async fn hold(&self, repo: &str) -> Result<RepoHold<'_>, ApiError> {
        let deadline = tokio::time::Instant::now() + REPO_WAIT;
        loop {
            let free = self
                .busy
                .lock()
                .map_err(|_| ApiError::internal("worktree registry unavailable"))?
                .insert(repo.to_string());
            if free {
                return Ok(RepoHold {
                    owner: self,
                    repo: repo.to_string(),
                });
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ApiError::conflict(format!(
                    "another worktree operation on {repo} has been running for {REPO_WAIT:?}; retry later"
                )));
            }
            tokio::time::sleep(REPO_POLL).await;
        }
    }

    /// Creates the worktree of session `session_id` from the repository `workdir` is
    /// in. On any failure nothing is left: no directory, no branch, no record.
    pub(crate) async fn create(
        &self,
        workdir: &Path,
        session_id: &str,
        title: Option<String>,
        spec: WorktreeSpec,
    ) -> Result<WorktreeRecord, ApiError> {
        let workdir = path_str(workdir)?;
        let top = git(workdir, &["rev-parse", "--show-toplevel"]).await?;
        if !top.ok || top.line().is_empty() {
            return Err(ApiError::validation(format!(
                "workdir {workdir} is not in a git repository (with a working tree); a worktree needs one"
            )));
        }
        let repo = top.line();
        let _hold = self.hold(&repo).await?;
        let base_ref = spec.base.clone().unwrap_or_else(|| "HEAD".to_string());
        check_arg("base", &base_ref)?;
        let Some(base_commit) = rev(&repo, &base_ref).await else {
            return Err(ApiError::validation(if spec.base.is_none() {
                format!(
                    "the repository {repo} has no commit yet (unborn HEAD); commit something first"
                )
            } else {
                format!("base {base_ref:?} is not a commit of {repo}")
            }));
        };
        let base_branch = if spec.base.is_none() {
            let o = git(&repo, &["symbolic-ref", "-q", "--short", "HEAD"]).await?;
            o.ok.then(|| o.line())
        } else {
            let full = format!("refs/heads/{base_ref}");
            let o = git(&repo, &["show-ref", "--verify", "-q", &full]).await?;
            o.ok.then(|| base_ref.clone())
        };
        let short: String = session_id
            .trim_start_matches("ses_")
            .chars()
            .take(8)
            .collect();
        let branch = spec.branch.clone().unwrap_or_else(|| format!("r1/{short}"));
        check_arg("branch", &branch)?;
        let valid = git(&repo, &["check-ref-format", "--branch", &branch]).await?;
        if !valid.ok {
            return Err(ApiError::validation(format!(
                "branch {branch:?} is not a valid branch name"
            )));
        }
        let full = format!("refs/heads/{branch}");
        if git(&repo, &["show-ref", "--verify", "-q", &full]).await?.ok {
            return Err(ApiError::conflict(format!(
                "branch {branch} already exists in {repo}; choose another `branch`"
            )));
        }
        let id = format!(
            "wt_{}",
            random_hex(8).map_err(|_| ApiError::internal("no randomness"))?
        );
        let path = self.dir.join(&id);
        let path_s = path_str(&path)?.to_string();
        let add = git(
            &repo,
            &[
                "worktree",
                "add",
                "-q",
                "-b",
                &branch,
                &path_s,
                &base_commit,
            ],
        )
        .await;
        let failed = match add {
            Ok(o) if o.ok => None,
            Ok(o) if o.stderr.contains("already exists") => Some(ApiError::conflict(format!(
                "cannot create the worktree: {}",
                o.why()
            ))),
            Ok(o) => Some(ApiError::internal(format!(
                "git worktree add failed: {}",
                o.why()
            ))),
            Err(e) => Some(e),
        };
        if let Some(e) = failed {
            undo(&repo, &path_s, &branch).await;
            return Err(e);
        }
        let rec = WorktreeRecord {
            id,
            session_id: session_id.to_string(),
            repo: repo.clone(),
            path: path_s.clone(),
            branch: branch.clone(),
            base_ref,
            base_branch,
            base_commit,
            state: WorktreeState::Active,
            created_at: now_rfc3339(),
            title,
            merged_commit: None,
            merged_head: None,
        };
        if let Err(e) = self.save(&rec).await {
            undo(&repo, &path_s, &branch).await;
            return Err(e);
        }
        tracing::info!(worktree = %rec.id, session = %session_id, %repo, %branch, "worktree created");
        Ok(rec)
    }

    /// Undoes [`Worktrees::create`] when the session it was made for could not be
    /// created: checkout, branch (it has no work yet) and record go.
    pub(crate) async fn discard(&self, id: &str) {
        let Ok(rec) = self.get(id) else { return };
        if let Ok(_hold) = self.hold(&rec.repo).await {
            undo(&rec.repo, &rec.path, &rec.branch).await;
        }
        let _ = std::fs::remove_file(self.dir.join(format!("{id}.json")));
        if let Ok(mut r) = self.records.lock() {
            r.remove(id);
        }
    }

    /// `worktree.list`.
    pub(crate) async fn list(&self, session_id: Option<&str>) -> Vec<WorktreeView> {
        let mut recs: Vec<WorktreeRecord> = match self.records.lock() {
            Ok(r) => r
                .values()
                .filter(|r| session_id.is_none_or(|s| r.session_id == s))
                .cloned()
                .collect(),
            Err(_) => Vec::new(),
        };
        recs.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        let mut out = Vec::with_capacity(recs.len());
        for r in &recs {
            out.push(view(r).await);
        }
        out
    }

    /// `worktree.diff`.
    pub(crate) async fn diff(&self, id: &str, full: bool) -> Result<WorktreeDiff, ApiError> {
        let rec = self.get(id)?;
        let path = self.checkout(&rec)?;
        let tmp = self.dir.join(format!(
            ".{id}.{}.index.tmp",
            random_hex(6).map_err(|_| ApiError::internal("no randomness"))?
        ));
        let tmp_s = path_str(&tmp)?.to_string();
        let result = async {
            // A throwaway index: the worktree's own index and the user's are never
            // touched, and untracked files show up as added.
            let env = [("GIT_INDEX_FILE", tmp_s.as_str())];
            for args in [&["read-tree", "HEAD"][..], &["add", "-A"][..]] {
                let o = git_env(&path, args, &env).await?;
                if !o.ok {
                    return Err(ApiError::internal(format!(
                        "git {} failed: {}",
                        args.join(" "),
                        o.why()
                    )));
                }
            }
            let base = rec.base_commit.as_str();
            let patch = git_env(
                &path,
                &[
                    "diff",
                    "--cached",
                    "--no-color",
                    "--no-ext-diff",
                    "--no-renames",
                    base,
                ],
                &env,
            )
            .await?;
            let stat = git_env(
                &path,
                &["diff", "--cached", "--numstat", "-z", "--no-renames", base],
                &env,
            )
            .await?;
            if !patch.ok || !stat.ok {
                return Err(ApiError::internal(format!(
                    "git diff failed: {}",
                    if patch.ok { stat.why() } else { patch.why() }
                )));
            }
            Ok((patch.stdout, stat.stdout))
        }
        .await;
        let _ = std::fs::remove_file(&tmp);
        let _ = std::fs::remove_file(format!("{tmp_s}.lock"));
        let (mut diff, stat) = result?;
        let total = diff.len();
        let truncated = !full && total > DIFF_CAP_BYTES;
        if truncated {
            let mut cut = DIFF_CAP_BYTES;
            while !diff.is_char_boundary(cut) {
                cut -= 1;
            }
            diff.truncate(cut);
        }
        Ok(WorktreeDiff {
            worktree_id: rec.id,
            base_commit: rec.base_commit,
            diff,
            files: parse_numstat(&stat),
            truncated,
            total_bytes: total as u64,
        })
    }

    /// The checkout of an active or merged worktree, or why there is none.
    fn checkout(&self, rec: &WorktreeRecord) -> Result<String, ApiError> {
        if rec.state == WorktreeState::Cleaned {
            return Err(ApiError::conflict(format!(
                "worktree {} was cleaned; its checkout is gone",
                rec.id
            )));
        }
        if !Path::new(&rec.path).is_dir() {
            return Err(ApiError::conflict(format!(
                "the checkout of worktree {} ({}) is gone; clean it",
                rec.id, rec.path
            )));
        }
        Ok(rec.path.clone())
    }

    /// `worktree.merge`.
    pub(crate) async fn merge(
        &self,
        id: &str,
        strategy: MergeStrategy,
    ) -> Result<WorktreeMergeResult, ApiError> {
        let rec = self.get(id)?;
        let _hold = self.hold(&rec.repo).await?;
        let mut rec = self.get(id)?;
        let path = self.checkout(&rec)?;
        let Some(base_branch) = rec.base_branch.clone() else {
            return Err(ApiError::validation(format!(
                "worktree {id} was made from {} ({}), not from a branch; there is no branch to merge into",
                rec.base_ref, rec.base_commit
            )));
        };
        let repo = rec.repo.clone();
        let base_full = format!("refs/heads/{base_branch}");
        let Some(base_tip) = rev(&repo, &base_full).await else {
            return Err(ApiError::conflict(format!(
                "the base branch {base_branch} no longer exists in {repo}"
            )));
        };
        // The worktree's pending work becomes a commit on its own branch first.
        let mut pending_commit = None;
        if !dirty_files(&path).await?.is_empty() {
            let who = identity_env(&path).await;
            git_ok(&path, &["add", "-A"]).await?;
            let msg = rec
                .title
                .clone()
                .unwrap_or_else(|| format!("r1: work of session {}", rec.session_id));
            let o = git_env(&path, &["commit", "-q", "--no-verify", "-m", &msg], &who).await?;
            if !o.ok {
                return Err(ApiError::internal(format!(
                    "could not commit the worktree's pending changes: {}",
                    o.why()
                )));
            }
            pending_commit = rev(&path, "HEAD").await;
        }
        let head = rev(&path, "HEAD")
            .await
            .ok_or_else(|| ApiError::internal("the worktree has no HEAD"))?;

        let new = if is_ancestor(&repo, &head, &base_tip).await? {
            // Everything on the branch is in the base branch already.
            base_tip.clone()
        } else {
            match strategy {
                MergeStrategy::FfOnly => {
                    if !is_ancestor(&repo, &base_tip, &head).await? {
                        let mb = git_ok(&repo, &["merge-base", &base_tip, &head])
                            .await?
                            .line();
                        let theirs = changed_files(&repo, &mb, &base_tip).await?;
                        let ours = changed_files(&repo, &mb, &head).await?;
                        let both: BTreeSet<String> = theirs.intersection(&ours).cloned().collect();
                        let named = if both.is_empty() { &theirs } else { &both };
                        return Err(ApiError::conflict(format!(
                            "not a fast-forward: {base_branch} has moved on since the worktree was made \
                             (files involved: {}); nothing was changed; merge with `squash` or `ours`, \
                             or rebase the worktree",
                            list(named)
                        )));
                    }
                    head.clone()
                }
                MergeStrategy::Squash | MergeStrategy::Ours => {
                    let mut args =
                        vec!["merge-tree", "--write-tree", "--name-only", "--no-messages"];
                    if strategy == MergeStrategy::Ours {
                        args.extend(["-X", "ours"]);
                    }
                    args.extend([base_tip.as_str(), head.as_str()]);
                    let o = git(&repo, &args).await?;
                    let mut lines = o.stdout.lines();
                    let tree = lines.next().unwrap_or("").trim().to_string();
                    match o.code {
                        Some(0) => {}
                        Some(1) => {
                            let files: BTreeSet<String> = lines
                                .map(str::trim)
                                .filter(|l| !l.is_empty())
                                .map(str::to_string)
                                .collect();
                            return Err(ApiError::conflict(format!(
                                "merge conflict in {}; nothing was changed",
                                list(&files)
                            )));
                        }
                        _ => {
                            return Err(ApiError::internal(format!(
                                "git merge-tree failed: {}",
                                o.why()
                            )))
                        }
                    }
                    let who = identity_env(&repo).await;
                    let title = rec
                        .title
                        .clone()
                        .unwrap_or_else(|| format!("work of session {}", rec.session_id));
                    let base_tree = format!("{base_tip}^{{tree}}");
                    let o = if strategy == MergeStrategy::Squash {
                        if git_ok(&repo, &["rev-parse", &base_tree]).await?.line() == tree {
                            None
                        } else {
                            let msg = format!("{title}\n\nSquashed from {} by r1.", rec.branch);
                            Some(
                                git_env(
                                    &repo,
                                    &["commit-tree", &tree, "-p", &base_tip, "-m", &msg],
                                    &who,
                                )
                                .await?,
                            )
                        }
                    } else {
                        let msg = format!(
                            "Merge branch '{}' into {base_branch}\n\n{title}",
                            rec.branch
                        );
                        Some(
                            git_env(
                                &repo,
                                &[
                                    "commit-tree",
                                    &tree,
                                    "-p",
                                    &base_tip,
                                    "-p",
                                    &head,
                                    "-m",
                                    &msg,
                                ],
                                &who,
                            )
                            .await?,
                        )
                    };
                    match o {
                        None => base_tip.clone(),
                        Some(o) if o.ok => o.line(),
                        Some(o) => {
                            return Err(ApiError::internal(format!(
                                "git commit-tree failed: {}",
                                o.why()
                            )))
                        }
                    }
                }
            }
        };

        if new != base_tip {
            advance(&repo, &path, &base_branch, &base_tip, &new, strategy).await?;
        }
        rec.state = WorktreeState::Merged;
        rec.merged_commit = Some(new.clone());
        rec.merged_head = Some(head);
        self.save(&rec).await?;
        tracing::info!(worktree = %id, branch = %base_branch, commit = %new, strategy = strategy.as_str(), "worktree merged");
        Ok(WorktreeMergeResult {
            worktree: view(&rec).await,
            strategy,
            base_branch,
            commit: new,
            pending_commit,
        })
    }

    /// `worktree.clean`.
    pub(crate) async fn clean(&self, id: &str, force: bool) -> Result<WorktreeView, ApiError> {
        let rec = self.get(id)?;
        let _hold = self.hold(&rec.repo).await?;
        let mut rec = self.get(id)?;
        if rec.state == WorktreeState::Cleaned {
            return Ok(view(&rec).await);
        }
        let repo = rec.repo.clone();
        if Path::new(&rec.path).exists() {
            let mut args = vec!["worktree", "remove"];
            if force {
                args.push("--force");
            }
            args.push(&rec.path);
            let o = git(&repo, &args).await?;
            if !o.ok {
                return Err(if force {
                    ApiError::internal(format!("git worktree remove failed: {}", o.why()))
                } else {
                    ApiError::conflict(format!(
                        "worktree {id} has uncommitted or untracked changes ({}); merge it first, \
                         or clean with `force` to throw them away",
                        o.why()
                    ))
                });
            }
        }
        if Path::new(&rec.path).exists() {
            let _ = std::fs::remove_dir_all(&rec.path);
        }
        let _ = git(&repo, &["worktree", "prune"]).await;
        let branch_full = format!("refs/heads/{}", rec.branch);
        if let Some(tip) = rev(&repo, &branch_full).await {
            let merged = rec.merged_head.as_deref() == Some(tip.as_str());
            let in_base = match &rec.base_branch {
                Some(b) => match rev(&repo, &format!("refs/heads/{b}")).await {
                    Some(base_tip) => is_ancestor(&repo, &tip, &base_tip).await.unwrap_or(false),
                    None => false,
                },
                None => false,
            };
            let nothing_new = tip == rec.base_commit;
            if force || merged || in_base || nothing_new {
                let o = git(&repo, &["branch", "-D", "-q", &rec.branch]).await?;
                if !o.ok {
                    tracing::warn!(worktree = %id, "could not delete branch {}: {}", rec.branch, o.why());
                }
            }
        }
        rec.state = WorktreeState::Cleaned;
        self.save(&rec).await?;
        tracing::info!(worktree = %id, "worktree cleaned");
        Ok(view(&rec).await)
    }
}

/// Removes a worktree checkout and its branch made by a failed create.
async fn undo(repo: &str, path: &str, branch: &str) {
    let _ = git(repo, &["worktree", "remove", "--force", path]).await;
    if Path::new(path).exists() {
        let _ = std::fs::remove_dir_all(path);
    }
    let _ = git(repo, &["worktree", "prune"]).await;
    let _ = git(repo, &["branch", "-D", "-q", branch]).await;
}

/// Moves `branch` from `old` to `new`. When a checkout has it checked out, that
/// checkout is updated with it by git's own all-or-nothing step, and only if it has no
/// uncommitted changes to the files the merge changes; otherwise the ref alone moves,
/// and only if it still is `old`.
async fn advance(
    repo: &str,
    worktree: &str,
    branch: &str,
    old: &str,
    new: &str,
    strategy: MergeStrategy,
) -> Result<(), ApiError> {
    let full = format!("refs/heads/{branch}");
    let holder = checkout_of(repo, &full)
        .await?
        .filter(|p| Path::new(p) != Path::new(worktree));
    let Some(co) = holder else {
        let o = git(
            repo,
            &["update-ref", "-m", "r1: worktree merge", &full, new, old],
        )
        .await?;
        if !o.ok {
            return Err(ApiError::conflict(format!(
                "{branch} moved while merging ({}); nothing was changed; retry",
                o.why()
            )));
        }
        return Ok(());
    };
    let changed = changed_files(repo, old, new).await?;
    let dirty = dirty_files(&co).await?;
    let both: BTreeSet<String> = dirty.intersection(&changed).cloned().collect();
    if !both.is_empty() {
        return Err(ApiError::conflict(format!(
            "the checkout {co} has uncommitted changes to files the merge changes: {}; \
             nothing was changed; commit or stash them first",
            list(&both)
        )));
    }
    if rev(&co, "HEAD").await.as_deref() != Some(old) {
        return Err(ApiError::conflict(format!(
            "{branch} moved while merging; nothing was changed; retry"
        )));
    }
    let o = if strategy == MergeStrategy::FfOnly {
        git(&co, &["merge", "--ff-only", "-q", new]).await?
    } else {
        git(&co, &["reset", "--keep", "-q", new]).await?
    };
    if !o.ok {
        return Err(ApiError::conflict(format!(
            "the checkout {co} could not take the merge ({}); nothing was changed",
            o.why()
        )));
    }
    Ok(())
}

/// The checkout (main or linked worktree) that has `full_ref` checked out, if any.
async fn checkout_of(repo: &str, full_ref: &str) -> Result<Option<String>, ApiError> {
    let o = git_ok(repo, &["worktree", "list", "--porcelain"]).await?;
    let mut current: Option<&str> = None;
    for line in o.stdout.lines() {
        if let Some(p) = line.strip_prefix("worktree ") {
            current = Some(p);
        } else if line.strip_prefix("branch ") == Some(full_ref) {
            return Ok(current.map(str::to_string));
        }
    }
    Ok(None)
}

/// Parses `git diff --numstat -z`: `added\tremoved\tpath\0`, `-` for binary files.
fn parse_numstat(s: &str) -> Vec<DiffFileStat> {
    split_z(s)
        .filter_map(|entry| {
            let mut parts = entry.trim_start_matches('\n').splitn(3, '\t');
            let added = parts.next()?;
            let removed = parts.next()?;
            let path = parts.next()?.to_string();
            let binary = added == "-" || removed == "-";
            Some(DiffFileStat {
                path,
                added: added.parse().unwrap_or(0),
                removed: removed.parse().unwrap_or(0),
                binary,
            })
        })
        .collect()
}

/// A record as clients see it, with its live facts read from git (best effort: a
/// repository that is gone shows what the record knows).
async fn view(r: &WorktreeRecord) -> WorktreeView {
    let repo = r.repo.as_str();
    let branch_tip = rev(repo, &format!("refs/heads/{}", r.branch)).await;
    let checked_out = r.state != WorktreeState::Cleaned && Path::new(&r.path).is_dir();
    let head = if checked_out {
        rev(&r.path, "HEAD").await
    } else {
        branch_tip.clone().or_else(|| r.merged_head.clone())
    };
    let dirty = checked_out && dirty_files(&r.path).await.is_ok_and(|d| !d.is_empty());
    let base_tip = match &r.base_branch {
        Some(b) => rev(repo, &format!("refs/heads/{b}")).await,
        None => Some(r.base_commit.clone()),
    };
    let (mut ahead, mut behind) = (0, 0);
    if let (Some(h), Some(b)) = (&head, &base_tip) {
        let range = format!("{b}...{h}");
        if let Ok(o) = git(repo, &["rev-list", "--left-right", "--count", &range]).await {
            let mut n = o
                .line()
                .split_whitespace()
                .map(|x| x.parse::<u64>().unwrap_or(0))
                .collect::<Vec<_>>()
                .into_iter();
            behind = n.next().unwrap_or(0);
            ahead = n.next().unwrap_or(0);
        }
    }
    WorktreeView {
        id: r.id.clone(),
        session_id: r.session_id.clone(),
        repo: r.repo.clone(),
        path: r.path.clone(),
        branch: r.branch.clone(),
        branch_exists: branch_tip.is_some(),
        base_ref: r.base_ref.clone(),
        base_branch: r.base_branch.clone(),
        base_commit: r.base_commit.clone(),
        head_commit: head,
        dirty,
        ahead,
        behind,
        state: r.state,
        created_at: r.created_at.clone(),
        merged_commit: r.merged_commit.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numstat_parses_text_and_binary() {
        let s = "1\t2\ta.txt\0-\t-\timg.png\0";
        let v = parse_numstat(s);
        assert_eq!(v.len(), 2);
        assert_eq!((v[0].added, v[0].removed, v[0].binary), (1, 2, false));
        assert_eq!(v[1].path, "img.png");
        assert!(v[1].binary);
    }

    #[test]
    fn args_that_look_like_options_are_refused() {
        assert!(check_arg("branch", "--force").is_err());
        assert!(check_arg("branch", "").is_err());
        assert!(check_arg("branch", "a\nb").is_err());
        assert!(check_arg("branch", "r1/abc").is_ok());
    }
}
