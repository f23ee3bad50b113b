//! Session resources and the parameters of session operations.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::EventRecord;

/// A session id, `ses_` followed by random hex.
pub type SessionId = String;

/// Where a session is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SessionState {
    /// Waiting for a message.
    Idle,
    /// A turn is running.
    Busy,
    /// A tool call waits for a client's decision.
    WaitingOnApproval,
    /// Paused by a client or by a daemon shutdown; `resume` continues it.
    Paused,
    /// Ended; nothing more is accepted.
    Ended,
    /// The journal failed; the session is read-only.
    Error,
}

impl SessionState {
    /// The wire spelling, e.g. `waiting_on_approval`.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionState::Idle => "idle",
            SessionState::Busy => "busy",
            SessionState::WaitingOnApproval => "waiting_on_approval",
            SessionState::Paused => "paused",
            SessionState::Ended => "ended",
            SessionState::Error => "error",
        }
    }
}

/// A session as clients see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SessionView {
    /// The session id.
    pub id: SessionId,
    /// The absolute working directory the agent is confined to.
    pub workdir: String,
    /// The engine (provider) name.
    pub engine: String,
    /// The model, if the engine has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// A title for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The state.
    pub state: SessionState,
    /// True when the session came back from a daemon restart and can be resumed.
    pub reattachable: bool,
    /// RFC 3339 creation time.
    pub created_at: String,
    /// The seq of the last journal record.
    pub last_seq: u64,
    /// Approval ids waiting for a decision.
    pub pending_approvals: Vec<String>,
    /// Why the session is in `error`, when it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The worktree (`wt_…`) the session works in, when it was started with one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worktree_id: Option<String>,
    /// The tokens and cost of every model call the session made, over its whole
    /// journal (restarts included); zeros when it made none.
    #[serde(default)]
    pub usage: SessionUsage,
    /// Archived (`session.archive`): left out of the default list, still searchable
    /// and usable; `session.unarchive` brings it back.
    #[serde(default)]
    pub archived: bool,
}

/// The params of `session.list`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListSessionsParams {
    /// List archived sessions too (default: only sessions that are not archived).
    #[serde(default)]
    pub include_archived: bool,
}

/// The params of `session.rename`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RenameParams {
    /// The session id (`ses_…`).
    pub session_id: SessionId,
    /// The new title: 1 to 200 characters, no control characters.
    pub title: String,
}

/// The answer of `session.delete`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DeleteResult {
    /// The session that was deleted.
    pub session_id: SessionId,
    /// Always true: the session, its journal and its search entries are gone.
    pub deleted: bool,
    /// Whether it had to be ended first (it was live).
    pub ended: bool,
}

/// What a session's model calls used in all: the sum of the `usage` of its assistant
/// messages (and of its compaction summaries). Budgets apply to
/// `input_tokens + output_tokens`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SessionUsage {
    /// Tokens sent to the model, cached ones included.
    pub input_tokens: u64,
    /// Tokens the model produced.
    pub output_tokens: u64,
    /// Of `input_tokens`, those the provider said it read from its prompt cache.
    pub cached_input_tokens: u64,
    /// The cost in US dollars of the calls that had a price (`[prices]` in
    /// `daemon.toml`); absent when none had.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    /// Model calls that reported usage (one per step of a turn, and one per summary).
    pub model_calls: u64,
}

impl SessionUsage {
    /// Adds one call's usage.
    pub fn add(&mut self, u: &crate::events::TokenUsage) {
        self.input_tokens = self.input_tokens.saturating_add(u.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(u.output_tokens);
        self.cached_input_tokens = self
            .cached_input_tokens
            .saturating_add(u.cached_input_tokens.unwrap_or(0));
        if let Some(c) = u.cost_usd {
            self.cost_usd = Some(self.cost_usd.unwrap_or(0.0) + c);
        }
        self.model_calls += 1;
    }

    /// Adds another total (a daemon's sum over its sessions).
    pub fn merge(&mut self, o: &SessionUsage) {
        self.input_tokens = self.input_tokens.saturating_add(o.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(o.output_tokens);
        self.cached_input_tokens = self
            .cached_input_tokens
            .saturating_add(o.cached_input_tokens);
        if let Some(c) = o.cost_usd {
            self.cost_usd = Some(self.cost_usd.unwrap_or(0.0) + c);
        }
        self.model_calls = self.model_calls.saturating_add(o.model_calls);
    }

    /// The tokens a budget counts: input plus output.
    pub fn tokens(&self) -> u64 {
        self.input_tokens.saturating_add(self.output_tokens)
    }
}

/// The answer of `GET /v1/sessions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SessionList {
    /// Every loaded session, oldest first.
    pub sessions: Vec<SessionView>,
}

/// The body of `POST /v1/sessions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StartSessionParams {
    /// An absolute path to an existing directory outside the daemon's state directory.
    pub workdir: String,
    /// The engine; the daemon's default engine when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
    /// The model; the engine's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// A title for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Per-tool policy overrides: tool name → `allow`, `ask` or `deny`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<std::collections::BTreeMap<String, String>>,
    /// A token budget for the whole session; a turn that would exceed it stops with
    /// `budget_exceeded`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_budget: Option<u64>,
    /// Work in a new git worktree of the repository `workdir` is in: `true`, or
    /// `{branch?, base?}`. The worktree (branch `r1/<short session id>` from `HEAD` by
    /// default) is made under the daemon's state directory and becomes the session's
    /// workdir; see `r1_worktree_list`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worktree: Option<crate::WorktreeRequest>,
}

/// One approval of a session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ApprovalView {
    /// The approval id.
    pub approval_id: String,
    /// The tool that asks.
    pub tool: String,
    /// The tool's arguments.
    pub args: serde_json::Value,
    /// `pending`, `allow` or `deny`.
    pub status: String,
}

/// A lane: the conversation (`main`) or one tool call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LaneView {
    /// The lane id.
    pub lane: String,
    /// The tool running in it (absent for `main`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// `running`, `done`, `failed`, `killed` or `waiting`.
    pub status: String,
    /// Pinned lanes stay listed and expanded in clients.
    pub pinned: bool,
    /// The seq of the `lane.created` record.
    pub created_seq: u64,
}

/// The answer of `GET /v1/sessions/{id}/lanes`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LaneList {
    /// Lanes in creation order.
    pub lanes: Vec<LaneView>,
}

/// An engine the daemon can run sessions with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EngineView {
    /// The name sessions choose it by.
    pub name: String,
    /// `echo`, `openai`, `anthropic` or `exec`.
    pub kind: String,
    /// The default model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Whether it can be used now (e.g. its key variable is set).
    pub available: bool,
    /// Why it is (not) available, and where it came from.
    pub reason: String,
    /// True for the daemon's default engine.
    pub default: bool,
}

/// The answer of `GET /v1/engines`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EngineList {
    /// Every engine.
    pub engines: Vec<EngineView>,
}

/// The answer of a send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SendMessageResult {
    /// The message id.
    pub message_id: String,
    /// The seq of the user's `session.message` record.
    pub seq: u64,
    /// True when this send repeated an earlier one with the same key.
    pub duplicate: bool,
}

/// What `session.compact` did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CompactResult {
    /// The session id.
    pub session_id: String,
    /// False when there was nothing before the kept turns to compact.
    pub compacted: bool,
    /// `summary` (written by the session's model) or `dropped` (the summary failed and
    /// the oldest turns were dropped whole); absent when nothing was compacted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// The estimated tokens of the conversation before.
    pub tokens_before: u64,
    /// ... and after.
    pub tokens_after: u64,
    /// The seq of the `session.compacted` record; absent when nothing was compacted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
}

/// What `session.repair` did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RepairResult {
    /// The session after the repair.
    pub session: SessionView,
    /// False when the journal was healthy and nothing changed.
    pub repaired: bool,
    /// The seq of the last record kept.
    pub last_seq: u64,
    /// How many bytes were cut from the end of the journal.
    pub dropped_bytes: u64,
    /// Where the whole damaged journal was copied before it was cut.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broken_copy: Option<String>,
}

/// What `session.resume_all` did: every session that was `paused` when it ran is in
/// exactly one of the two lists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ResumeAllResult {
    /// The sessions resumed, as they are now.
    pub resumed: Vec<SessionView>,
    /// The paused sessions that could not be resumed, each with why.
    pub failed: Vec<ResumeFailure>,
}

/// A paused session `session.resume_all` could not resume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ResumeFailure {
    /// The session's id.
    pub id: String,
    /// The error its own `session.resume` gave.
    pub error_code: crate::ErrorCode,
    /// What went wrong, for people.
    pub error_message: String,
}

/// A page of journal records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct JournalPage {
    /// Records in seq order.
    pub records: Vec<EventRecord>,
    /// The seq to ask for next.
    pub next_seq: u64,
}

/// The params of an operation that takes none: `{}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EmptyParams {}

/// The params of an operation on one session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionRef {
    /// The session id (`ses_…`).
    pub session_id: SessionId,
}

impl SessionRef {
    /// A reference to the session `id`.
    pub fn new(id: impl Into<String>) -> SessionRef {
        SessionRef {
            session_id: id.into(),
        }
    }
}

/// The params of `session.send` (`POST /v1/sessions/{session_id}/messages`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SendMessageParams {
    /// The session id (`ses_…`).
    pub session_id: SessionId,
    /// The message text.
    pub text: String,
    /// An idempotency key of your choice: sending again with the same key returns the
    /// original `message_id` (with `duplicate: true`) instead of posting the message
    /// twice. Over HTTP the `Idempotency-Key` header may carry it instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_message_id: Option<String>,
}

/// The params of `session.journal`: a page of records without waiting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JournalParams {
    /// The session id (`ses_…`).
    pub session_id: SessionId,
    /// The first journal seq to return (records are numbered from 1; the default, 1,
    /// replays the whole session). Pass the previous page's `next_seq` to go on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_seq: Option<u64>,
    /// The most records to return (default 1000, at most 10000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
}

/// The params of `session.tail`: a page of records, waiting for the first one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TailParams {
    /// The session id (`ses_…`).
    pub session_id: SessionId,
    /// The first journal seq to return (records are numbered from 1); pass the
    /// previous answer's `next_seq` to continue where it ended.
    pub since_seq: u64,
    /// How long to wait for a record when there is none yet, in milliseconds
    /// (default 0, at most 60000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_ms: Option<u64>,
    /// The most records to return (default 1000, at most 10000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
}

/// A decision on a pending approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// Let the tool call run.
    Allow,
    /// Refuse the tool call; the model is told it was denied.
    Deny,
}

impl Decision {
    /// The wire spelling: `allow` or `deny`.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Deny => "deny",
        }
    }
}

/// The params of `session.approve`
/// (`POST /v1/sessions/{session_id}/approvals/{approval_id}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApproveParams {
    /// The session id (`ses_…`).
    pub session_id: SessionId,
    /// The approval id (`apr_…`), from the session's `pending_approvals` or an
    /// `approval.requested` record.
    pub approval_id: String,
    /// `allow` or `deny`.
    pub decision: Decision,
    /// Remember the decision for the rest of the session: the session's policy for this
    /// tool becomes the decision (`allow` or `deny`), so later calls of the tool no
    /// longer ask. Default false: only this call is decided.
    #[serde(default, skip_serializing_if = "is_false")]
    pub remember: bool,
}

/// The params of an operation on one lane.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LaneRef {
    /// The session id (`ses_…`).
    pub session_id: SessionId,
    /// The lane id: `main` or a tool lane (`tool_…`) from `lanes.list` (`lane` is
    /// accepted as an alias).
    #[serde(alias = "lane")]
    pub lane_id: String,
}

/// The params of `lanes.pin`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PinLaneParams {
    /// The session id (`ses_…`).
    pub session_id: SessionId,
    /// The lane id: a tool lane (`tool_…`) from `lanes.list` (`lane` is accepted as an
    /// alias).
    #[serde(alias = "lane")]
    pub lane_id: String,
    /// True (the default) to pin the lane, false to unpin it.
    #[serde(default = "yes")]
    pub pinned: bool,
}

fn yes() -> bool {
    true
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A session actor's own view of itself (`session.debug_state`, `--caps debug`): the
/// fold of its journal and the bookkeeping of its task, for people and agents
/// debugging r1. Its shape may change between versions; nothing should depend on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SessionDebugState {
    /// The session id.
    pub session_id: String,
    /// The state clients see.
    pub state: SessionState,
    /// The newest journaled seq, as the actor folded it.
    pub last_seq: u64,
    /// Paused by a daemon restart with work to reattach to.
    pub reattachable: bool,
    /// Why the session is in `error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Why it was last paused, while it is paused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused_reason: Option<String>,
    /// The user message whose turn is running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turn_message_id: Option<String>,
    /// True while a turn task runs (it can outlive `turn_message_id` while it stops).
    pub turn_task: bool,
    /// What the running turn is being stopped for: `cancel`, `pause: <reason>`, `kill`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopping: Option<String>,
    /// Turns waiting to run, in order.
    pub queue: Vec<DebugQueued>,
    /// The approvals the actor remembers (pending ones always).
    pub approvals: Vec<DebugApproval>,
    /// The tool lanes the actor remembers.
    pub lanes: Vec<DebugLane>,
    /// Idempotency keys remembered for sends.
    pub idempotency_keys: u64,
    /// Messages in the conversation the next turn is given.
    pub history_messages: u64,
    /// Approval ids a running turn waits on.
    pub approval_waiters: Vec<String>,
    /// Callers waiting for the running turn to end (cancel, pause, kill).
    pub turn_end_waiters: u64,
    /// An end of turn the journal refused, being retried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_turn_end: Option<String>,
    /// Commands waiting in the actor's inbox when it answered.
    pub inbox: u64,
}

/// A turn waiting in a session's queue (`SessionDebugState`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DebugQueued {
    /// The user message it answers.
    pub message_id: String,
    /// Bytes of its text (0 for a continuation after an approval).
    pub text_bytes: u64,
    /// The decided tool call it runs first, for a continuation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_tool: Option<String>,
}

/// An approval as a session actor remembers it (`SessionDebugState`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DebugApproval {
    /// `apr_…`.
    pub id: String,
    /// The tool that waits.
    pub tool: String,
    /// The turn's user message.
    pub message_id: String,
    /// `pending`, `allow` or `deny`.
    pub status: String,
}

/// A lane as a session actor remembers it (`SessionDebugState`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DebugLane {
    /// `tool_…`.
    pub lane: String,
    /// The tool it runs.
    pub tool: String,
    /// Its status, as `lane.status` spells it.
    pub status: String,
    /// Kept in views after it ends.
    pub pinned: bool,
    /// The seq of its `lane.created`.
    pub created_seq: u64,
    /// True while the actor holds its cancel token (it can be killed).
    pub killable: bool,
}
