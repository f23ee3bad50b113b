//! `r1 ctl worktrees …`: list, diff, merge and clean session worktrees.

use clap::{Subcommand, ValueEnum};
use r1_client::{ClientError, ConnectOptions};
use r1_proto::{
    Api, MergeStrategy, WorktreeCleanParams, WorktreeDiffParams, WorktreeListParams,
    WorktreeMergeParams, WorktreeView,
};

use crate::output;

/// A worktree verb.
#[derive(Debug, Subcommand)]
pub enum WorktreesVerb {
    /// List worktrees (all, or one session's).
    List {
        /// Only this session's worktrees.
        #[arg(long)]
        session: Option<String>,
    },
    /// Show a worktree's diff against its base, uncommitted and untracked changes
    /// included.
    Diff {
        /// The worktree id (`wt_…`).
        id: String,
        /// The whole diff, not cut at 200 KiB.
        #[arg(long)]
        full: bool,
        /// Only the per-file stat.
        #[arg(long)]
        stat: bool,
    },
    /// Merge a worktree into its base branch (its pending changes are committed first).
    Merge {
        /// The worktree id (`wt_…`).
        id: String,
        /// How: `ff-only`, `squash` or `ours`.
        #[arg(long, value_enum, default_value_t = Strategy::FfOnly)]
        strategy: Strategy,
    },
    /// Remove a worktree (and its branch once merged).
    Clean {
        /// The worktree id (`wt_…`).
        id: String,
        /// Throw away uncommitted changes and an unmerged branch.
        #[arg(long)]
        force: bool,
    },
}

/// `worktree.merge`'s strategies, as flags spell them.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Strategy {
    /// Only if the base branch has not moved.
    FfOnly,
    /// One new commit on the base branch.
    Squash,
    /// A merge commit; conflicting hunks take the base branch's side.
    Ours,
}

impl From<Strategy> for MergeStrategy {
    fn from(s: Strategy) -> MergeStrategy {
        match s {
            Strategy::FfOnly => MergeStrategy::FfOnly,
            Strategy::Squash => MergeStrategy::Squash,
            Strategy::Ours => MergeStrategy::Ours,
        }
    }
}

/// Runs a worktree verb.
pub async fn run(
    opts: &ConnectOptions,
    verb: WorktreesVerb,
    json: bool,
) -> Result<(), ClientError> {
    let client = r1_client::connect_or_spawn(opts).await?;
    match verb {
        WorktreesVerb::List { session } => {
            let l = client
                .worktree_list(WorktreeListParams {
                    session_id: session,
                })
                .await?;
            if json {
                output::json(&l);
            } else if l.worktrees.is_empty() {
                output::line("no worktrees");
            } else {
                l.worktrees.iter().for_each(show);
            }
        }
        WorktreesVerb::Diff { id, full, stat } => {
            let d = client
                .worktree_diff(WorktreeDiffParams {
                    worktree_id: id,
                    full: full.then_some(true),
                })
                .await?;
            if json {
                output::json(&d);
            } else {
                for f in &d.files {
                    if f.binary {
                        output::line(&format!("  bin  {}", f.path));
                    } else {
                        output::line(&format!("+{:<5} -{:<5} {}", f.added, f.removed, f.path));
                    }
                }
                if !stat {
                    output::line("");
                    output::line(d.diff.trim_end());
                    if d.truncated {
                        output::line(&format!(
                            "… cut at 200 KiB of {} bytes; use --full for all of it",
                            d.total_bytes
                        ));
                    }
                }
            }
        }
        WorktreesVerb::Merge { id, strategy } => {
            let r = client
                .worktree_merge(WorktreeMergeParams {
                    worktree_id: id,
                    strategy: strategy.into(),
                })
                .await?;
            if json {
                output::json(&r);
            } else {
                output::line(&format!(
                    "merged {} into {} ({}): {}",
                    r.worktree.branch,
                    r.base_branch,
                    r.strategy.as_str(),
                    r.commit
                ));
            }
        }
        WorktreesVerb::Clean { id, force } => {
            let v = client
                .worktree_clean(WorktreeCleanParams {
                    worktree_id: id,
                    force: force.then_some(true),
                })
                .await?;
            if json {
                output::json(&v);
            } else {
                show(&v);
            }
        }
    }
    Ok(())
}

fn show(w: &WorktreeView) {
    let short = |c: &str| c.chars().take(10).collect::<String>();
    output::line(&format!(
        "{}  {:<8} {}  {} ← {}  +{} -{}{}  {}",
        w.id,
        w.state.as_str(),
        w.session_id,
        w.branch,
        w.base_branch.as_deref().unwrap_or(&short(&w.base_commit)),
        w.ahead,
        w.behind,
        if w.dirty { " dirty" } else { "" },
        w.path
    ));
}
