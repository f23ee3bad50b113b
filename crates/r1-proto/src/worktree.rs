//! Worktree resources: a git worktree per session, and the params of the worktree
//! operations.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `session.start`'s `worktree`: `true` for a worktree with the default branch and
/// base, or an object choosing them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum WorktreeRequest {
    /// `true`: a worktree on `r1/<short session id>` from the repository's `HEAD`;
    /// `false`: none.
    Enabled(bool),
    /// A worktree with a chosen branch and/or base.
    Spec(WorktreeSpec),
}

impl WorktreeRequest {
    /// The spec asked for, or `None` when no worktree is wanted.
    pub fn spec(&self) -> Option<WorktreeSpec> {
        match self {
            WorktreeRequest::Enabled(false) => None,
            WorktreeRequest::Enabled(true) => Some(WorktreeSpec::default()),
            WorktreeRequest::Spec(s) => Some(s.clone()),
        }
    }
}

/// The branch and base of a session's worktree.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorktreeSpec {
    /// The new branch; `r1/<short session id>` when absent. It must not exist yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// The commit-ish the branch starts from (and, when it names a local branch, the
    /// branch merges go into); the repository's `HEAD` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
}

/// Where a worktree is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WorktreeState {
    /// Checked out; the session works in it.
    Active,
    /// Merged into its base branch; still checked out until cleaned.
    Merged,
    /// Removed from disk (its branch too, once merged or when forced).
    Cleaned,
}

impl WorktreeState {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            WorktreeState::Active => "active",
            WorktreeState::Merged => "merged",
            WorktreeState::Cleaned => "cleaned",
        }
    }
}

/// A worktree as clients see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct WorktreeView {
    /// The worktree id (`wt_…`).
    pub id: String,
    /// The session working in it.
    pub session_id: String,
    /// The top level of the repository's checkout it was made from.
    pub repo: String,
    /// Where the worktree is checked out (the session's workdir).
    pub path: String,
    /// Its branch.
    pub branch: String,
    /// Whether the branch still exists.
    pub branch_exists: bool,
    /// The base as asked (`HEAD` by default).
    pub base_ref: String,
    /// The branch merges go into: the base when it is a local branch, or the branch
    /// `HEAD` was on; absent when the base was a detached commit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_branch: Option<String>,
    /// The commit the worktree started from.
    pub base_commit: String,
    /// The worktree's (or, once cleaned, its branch's) current commit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_commit: Option<String>,
    /// True when the worktree has uncommitted or untracked changes.
    pub dirty: bool,
    /// Commits on the worktree's branch that the base branch's current tip lacks.
    pub ahead: u64,
    /// Commits on the base branch's current tip that the worktree's branch lacks.
    pub behind: u64,
    /// `active`, `merged` or `cleaned`.
    pub state: WorktreeState,
    /// RFC 3339 creation time.
    pub created_at: String,
    /// The base branch's commit the last merge produced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged_commit: Option<String>,
}

/// The answer of `worktree.list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct WorktreeList {
    /// Worktrees, oldest first.
    pub worktrees: Vec<WorktreeView>,
}

/// The params of `worktree.list`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorktreeListParams {
    /// Only the worktrees of this session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
}

/// The params of `worktree.diff`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorktreeDiffParams {
    /// The worktree id (`wt_…`).
    pub worktree_id: String,
    /// The whole diff, however long; otherwise it is cut at 200 KiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full: Option<bool>,
}

/// One file of a diff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DiffFileStat {
    /// The path, relative to the worktree.
    pub path: String,
    /// Lines added (0 for a binary file).
    pub added: u64,
    /// Lines removed (0 for a binary file).
    pub removed: u64,
    /// True for a binary file.
    pub binary: bool,
}

/// The answer of `worktree.diff`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct WorktreeDiff {
    /// The worktree id.
    pub worktree_id: String,
    /// The commit the diff is against (the worktree's base).
    pub base_commit: String,
    /// The unified diff, committed, uncommitted and untracked changes together.
    pub diff: String,
    /// One entry per changed file.
    pub files: Vec<DiffFileStat>,
    /// True when `diff` was cut at 200 KiB (ask again with `full`).
    pub truncated: bool,
    /// The length of the whole diff in bytes.
    pub total_bytes: u64,
}

/// How `worktree.merge` brings a worktree's branch into its base branch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum MergeStrategy {
    /// Only when the base branch has not moved: it is advanced to the branch.
    #[serde(rename = "ff-only")]
    FfOnly,
    /// One new commit on the base branch with the branch's changes.
    #[serde(rename = "squash")]
    Squash,
    /// A merge commit whose conflicting hunks take the base branch's side.
    #[serde(rename = "ours")]
    Ours,
}

impl MergeStrategy {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            MergeStrategy::FfOnly => "ff-only",
            MergeStrategy::Squash => "squash",
            MergeStrategy::Ours => "ours",
        }
    }
}

/// The params of `worktree.merge`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorktreeMergeParams {
    /// The worktree id (`wt_…`).
    pub worktree_id: String,
    /// `ff-only`, `squash` or `ours`.
    pub strategy: MergeStrategy,
}

/// The answer of `worktree.merge`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct WorktreeMergeResult {
    /// The worktree after the merge (state `merged`).
    pub worktree: WorktreeView,
    /// The strategy used.
    pub strategy: MergeStrategy,
    /// The base branch merged into.
    pub base_branch: String,
    /// The base branch's new tip.
    pub commit: String,
    /// The commit made of the worktree's pending changes first, if there were any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_commit: Option<String>,
}

/// The params of `worktree.clean`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorktreeCleanParams {
    /// The worktree id (`wt_…`).
    pub worktree_id: String,
    /// Remove a worktree with uncommitted changes, and delete its branch even when it
    /// was never merged: that work is lost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force: Option<bool>,
}
