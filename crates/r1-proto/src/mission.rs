//! Missions: a prompt run as a session of its own, in a worktree of its own, by a
//! bounded pool of workers, then checked by the project's verify commands.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{VerifyResult, VerifyStep};

/// What a mission does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MissionSpec {
    /// A title for people (also the title of its session and of its worktree's
    /// commit); the prompt's first line when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The message the mission's session is sent.
    pub prompt: String,
    /// An absolute path: the repository (or directory) to work in.
    pub workdir: String,
    /// The engine; the daemon's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
    /// The model; the engine's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Work in a new git worktree of `workdir`'s repository (default `true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worktree: Option<bool>,
    /// The verify steps to run once the session's turn ends, in order; the mission
    /// succeeds only if every one passes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<Vec<VerifyStep>>,
    /// Per-tool policy overrides of the mission's session: tool name → `allow`, `ask`
    /// or `deny`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<BTreeMap<String, String>>,
}

/// The params of `mission.create`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MissionCreateParams {
    /// What to do.
    pub spec: MissionSpec,
    /// The session that asks for the mission (an agent delegating work), so
    /// `mission.list {session_id}` finds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
}

/// Where a mission is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MissionState {
    /// Waiting for a worker.
    Queued,
    /// Its session's turn runs.
    Running,
    /// Its verify steps run.
    Verifying,
    /// Stopped by a daemon restart; `mission.resume` (or resuming its session) queues
    /// it again.
    Paused,
    /// The turn ended and every verify step passed.
    Succeeded,
    /// The turn failed or a verify step did not pass.
    Failed,
    /// Cancelled by a client.
    Cancelled,
}

impl MissionState {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            MissionState::Queued => "queued",
            MissionState::Running => "running",
            MissionState::Verifying => "verifying",
            MissionState::Paused => "paused",
            MissionState::Succeeded => "succeeded",
            MissionState::Failed => "failed",
            MissionState::Cancelled => "cancelled",
        }
    }

    /// True once the mission can change no more.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            MissionState::Succeeded | MissionState::Failed | MissionState::Cancelled
        )
    }
}

/// When a mission moved.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct MissionTimings {
    /// RFC 3339: queued.
    pub created_at: String,
    /// RFC 3339: a worker first took it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// RFC 3339: its verify steps began.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_started_at: Option<String>,
    /// RFC 3339: it reached a final state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
}

/// A mission as clients see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct MissionView {
    /// The mission id (`ms_…`).
    pub id: String,
    /// Its state.
    pub state: MissionState,
    /// The title.
    pub title: String,
    /// What it was asked to do.
    pub spec: MissionSpec,
    /// Where it runs: `local` (a session of this daemon).
    pub executor: String,
    /// The executor's own id for it, when it runs elsewhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_id: Option<String>,
    /// The session that asked for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_session_id: Option<String>,
    /// Its session, once started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// Its worktree, once started with one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worktree_id: Option<String>,
    /// The verify results so far, in the order run.
    pub verify: Vec<VerifyResult>,
    /// When it moved.
    pub timings: MissionTimings,
    /// Tokens its session used.
    pub tokens_used: u64,
    /// Why it failed, was cancelled or paused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The end of its session's log, one line per record (`mission.get` only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub log_tail: Vec<String>,
}

/// The answer of `mission.list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct MissionList {
    /// Missions, oldest first.
    pub missions: Vec<MissionView>,
}

/// The params of `mission.list`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MissionListParams {
    /// Only the missions this session asked for or runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// Only missions in this state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<MissionState>,
}

/// A mission, by id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MissionRef {
    /// The mission id (`ms_…`).
    pub mission_id: String,
}
