//! The payload of every journal record and daemon bus event, one type per kind.
//!
//! An [`EventRecord`]'s `data` is the JSON of the struct its [`EventKind`] names
//! (`session.paused` carries a [`SessionPaused`]); [`EventData`] holds any of them, and
//! [`Event`] ties each struct to its kind, so a producer cannot write a payload under
//! the wrong kind. The JSON is the one journals have always held: fields that older
//! daemons did not write are `#[serde(default)]`, so old journals still load. Optional
//! fields written as `null` stay `null` (readers treat `null` and absent alike).
//!
//! The JSON Schema of all of them ([`events_schema`]) is committed as
//! `docs/events.schema.json` for the web UI and SDKs; a test fails when it drifts.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Decision, EventKind, EventRecord, SessionState};

/// A journal record payload: its type names its kind.
pub trait Event: Serialize + DeserializeOwned + JsonSchema + Into<EventData> {
    /// The kind a record of this payload has.
    const KIND: EventKind;
}

/// The JSON of a payload. Every payload is made of strings, numbers, booleans, JSON
/// values and string-keyed maps, which always serialize, so the `Null` fallback is
/// never taken; it exists because a long-running server does not panic.
fn to_json<T: Serialize + ?Sized>(t: &T) -> Value {
    serde_json::to_value(t).unwrap_or(Value::Null)
}

/// What a tool is allowed to do in a session, from its policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ToolPolicy {
    /// Run it without asking.
    Allow,
    /// Ask a client for approval first.
    Ask,
    /// Refuse it; the model is told so.
    Deny,
}

/// Where a tool lane is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LaneStatus {
    /// The tool runs.
    Running,
    /// The tool finished.
    Done,
    /// The tool finished with an error.
    Failed,
    /// A client killed the lane.
    Killed,
    /// The turn the lane belonged to was cancelled.
    Cancelled,
}

impl LaneStatus {
    /// The wire spelling, e.g. `running`.
    pub fn as_str(self) -> &'static str {
        match self {
            LaneStatus::Running => "running",
            LaneStatus::Done => "done",
            LaneStatus::Failed => "failed",
            LaneStatus::Killed => "killed",
            LaneStatus::Cancelled => "cancelled",
        }
    }
}

/// A tool call the model made, as an assistant message records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ToolCall {
    /// The provider's id for the call.
    pub id: String,
    /// The tool name, e.g. `read_file`.
    pub name: String,
    /// The arguments as JSON (an object).
    pub arguments: Value,
}

/// The tokens a provider reported for one model call, and what they cost.
///
/// `input_tokens` is the whole prompt, cached part included: OpenAI's
/// `prompt_tokens` already counts its cached tokens, and for Anthropic (and Claude
/// Code) r1 adds `cache_creation_input_tokens` and `cache_read_input_tokens` to
/// `input_tokens`. `cached_input_tokens` says how many of them were read from the
/// provider's prompt cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TokenUsage {
    /// Tokens sent to the model (the whole prompt, cached tokens included).
    pub input_tokens: u64,
    /// Tokens the model produced.
    pub output_tokens: u64,
    /// Of `input_tokens`, those read from the provider's prompt cache; absent when the
    /// provider did not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_input_tokens: Option<u64>,
    /// What the call cost in US dollars, from the daemon's `[prices]` table for the
    /// session's model when the call was recorded; absent when no price was configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
}

/// `session.created`: the first record of every journal, with what the session was
/// started with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SessionCreated {
    /// The session id, `ses_…`.
    pub id: String,
    /// The absolute working directory the agent is confined to.
    pub workdir: String,
    /// The engine (provider) name.
    pub engine: String,
    /// The model, `null` when the engine has none configured.
    #[serde(default)]
    pub model: Option<String>,
    /// The title, `null` when none was given.
    #[serde(default)]
    pub title: Option<String>,
    /// RFC 3339 creation time.
    pub created_at: String,
    /// The tool policies set for this session, by tool name.
    #[serde(default)]
    pub policy: BTreeMap<String, ToolPolicy>,
    /// The token budget, `null` for none.
    #[serde(default)]
    pub token_budget: Option<u64>,
    /// The worktree (`wt_…`) the session works in, when it was started with one;
    /// absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worktree_id: Option<String>,
}

/// `session.message`: a whole message of the conversation, told apart by `role`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "role", rename_all = "lowercase")]
pub enum SessionMessage {
    /// A message a client sent (durable).
    User(UserMessage),
    /// One step of the model's answer: its text and the tool calls it makes.
    Assistant(AssistantMessage),
}

/// A user message, `"role": "user"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UserMessage {
    /// The text.
    pub text: String,
    /// The message id, `msg_…`; its turn's records name it in `reply_to` or
    /// `message_id`.
    pub message_id: String,
    /// The client's idempotency key, `null` when none was given.
    #[serde(default)]
    pub client_message_id: Option<String>,
}

/// An assistant message, `"role": "assistant"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AssistantMessage {
    /// The text of this step (the deltas before it, joined).
    pub text: String,
    /// The user message this answers.
    #[serde(default)]
    pub reply_to: String,
    /// The tokens the provider reported, `null` when it reported none.
    #[serde(default)]
    pub usage: Option<TokenUsage>,
    /// The tool calls the model makes in this step; empty for a final answer.
    #[serde(default)]
    pub tool_calls: Vec<ToolCall>,
    /// An external agent's own conversation id (`exec` engines: Claude Code's
    /// `session_id`, Codex's `thread_id`); the next turn resumes it, after a restart
    /// too. Absent for model engines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_session: Option<String>,
}

/// `session.delta`: a piece of assistant text as it streams.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SessionDelta {
    /// The text, to append to what came before.
    pub text: String,
    /// The user message this answers.
    #[serde(default)]
    pub reply_to: String,
}

/// `session.state`: the session changed state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SessionStateChanged {
    /// The new state.
    pub state: SessionState,
    /// With `busy`: the user message whose turn starts. Absent in journals written
    /// before turns named their message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// A decided approval's message whose continuation waits behind the running turn
    /// or the pause.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queued: Option<String>,
}

/// `tool.started`: a tool call started, in its lane, or in `main` for a tool the
/// provider runs itself (`external`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ToolStarted {
    /// The lane the tool runs in; absent for an external tool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lane: Option<String>,
    /// The provider's id for the call.
    pub call_id: String,
    /// The tool name.
    pub tool: String,
    /// The arguments as JSON.
    #[serde(default)]
    pub args: Value,
    /// The provider ran the tool itself (an exec agent); r1 only records it.
    #[serde(default, skip_serializing_if = "is_false")]
    pub external: bool,
}

/// `tool.completed`: a tool call finished, was denied, or an external tool reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ToolCompleted {
    /// The lane the tool ran in; absent for a denied or an external call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lane: Option<String>,
    /// The provider's id for the call.
    pub call_id: String,
    /// The tool name; absent for an external tool's result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// The result the model is given (truncated in the journal when very long).
    #[serde(default)]
    pub content: String,
    /// The tool failed (or was denied).
    #[serde(default)]
    pub is_error: bool,
    /// The call never ran: a policy or a client denied it.
    #[serde(default, skip_serializing_if = "is_false")]
    pub denied: bool,
    /// The provider ran the tool itself (an exec agent); r1 only records it.
    #[serde(default, skip_serializing_if = "is_false")]
    pub external: bool,
}

/// `approval.requested`: a tool call waits for a client's decision (durable).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ApprovalRequested {
    /// The approval id, `apr_…`, to decide with `session.approve`.
    pub approval_id: String,
    /// The tool that asks.
    pub tool: String,
    /// The tool's arguments.
    #[serde(default)]
    pub args: Value,
    /// The provider's id for the call.
    #[serde(default)]
    pub call_id: String,
    /// The user message whose turn asks.
    #[serde(default)]
    pub reply_to: String,
    /// An agent CLI asks before it runs a tool of its own (Claude Code's permission
    /// prompt): the decision goes back to that process, which runs or skips the tool
    /// itself. Such an approval lives only as long as the turn that asked; absent
    /// (false) for r1's own tools.
    #[serde(default, skip_serializing_if = "is_false")]
    pub external: bool,
}

/// `approval.resolved`: an approval was decided (durable).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ApprovalResolved {
    /// The approval id.
    pub approval_id: String,
    /// The decision.
    pub decision: Decision,
    /// Why r1 decided it itself (the turn was cancelled); absent when a client did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The client asked to remember the decision: from this record on, the session's
    /// policy for the approval's tool is the decision, and its calls no longer ask.
    /// Absent (false) for a decision of this call only.
    #[serde(default, skip_serializing_if = "is_false")]
    pub remember: bool,
}

/// `lane.created`: a tool lane was opened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LaneCreated {
    /// The lane id, `tool_…`.
    pub lane: String,
    /// The tool it runs.
    pub tool: String,
    /// The provider's id for the call.
    #[serde(default)]
    pub call_id: String,
}

/// `lane.delta`: output of a lane's tool as it runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LaneDelta {
    /// The lane id.
    pub lane: String,
    /// The output, to append to what came before.
    pub text: String,
}

/// `lane.status`: a lane ended, or was pinned or unpinned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LaneStatusChanged {
    /// The lane id.
    pub lane: String,
    /// The lane's status.
    pub status: LaneStatus,
    /// Set when a client pinned (`true`) or unpinned (`false`) the lane.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned: Option<bool>,
}

/// `lane.killed`: a client killed a lane.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LaneKilled {
    /// The lane id.
    pub lane: String,
}

/// `session.paused`: the session was paused (durable).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SessionPaused {
    /// Why: a client's reason, `shutdown`, or `daemon restart`.
    #[serde(default)]
    pub reason: String,
}

/// `session.resumed`: the session was resumed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SessionResumed {}

/// `session.cancelled`: the turn in progress was cancelled (durable).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SessionCancelled {
    /// The user message whose turn was cancelled.
    #[serde(default)]
    pub message_id: String,
}

/// `session.ended`: the session ended (durable, terminal).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SessionEnded {}

/// `session.error`: a turn failed, or a daemon restart interrupted it (durable).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SessionError {
    /// For a person.
    pub message: String,
    /// The wire error code (`internal`, `budget_exceeded`, …); absent for an
    /// interruption.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// The user message whose turn failed; `null` when no turn was known, absent in
    /// journals written before interruptions named it.
    #[serde(default)]
    pub message_id: Option<String>,
    /// A daemon restart interrupted the turn (it is not re-run).
    #[serde(default, skip_serializing_if = "is_false")]
    pub interrupted: bool,
}

/// `daemon.reloaded`: a daemon started and reloaded this session (paused).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DaemonReloaded {
    /// The id of the daemon run that reloaded it.
    pub daemon_id: String,
    /// How many approvals still wait for a decision.
    #[serde(default)]
    pub pending_approvals: u64,
}

/// `session.resync`: sent to a follower only, never journaled. The journal was
/// repaired past the point the follower had seen, so it must refetch from `next_seq`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SessionResync {
    /// The seq to continue from.
    pub next_seq: u64,
    /// The journal's newest seq.
    pub last_seq: u64,
    /// For a person.
    pub reason: String,
}

/// `verify.completed`: a verify command (build, test, lint) ran in a lane of this
/// session; the record is its whole result, so a restart does not lose it.
pub type VerifyCompleted = crate::VerifyResult;

/// `session.compacted`: the conversation the model is given was made to fit the
/// engine's context budget. Every message up to `upto_seq` is replaced by `summary`
/// (written by the same model), and the last `kept` messages of the conversation, whole
/// turns from the newest back, stay as they are. When the summary could not be made,
/// `summary` is empty and those oldest turns were dropped whole (`method` says which).
/// A replay or a restart rebuilds the same conversation from this record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SessionCompacted {
    /// The last record the summary stands for.
    pub upto_seq: u64,
    /// `summary` or `dropped`.
    pub method: String,
    /// The summary; empty when `method` is `dropped`.
    pub summary: String,
    /// The estimated tokens of the conversation before.
    pub tokens_before: u64,
    /// ... and after.
    pub tokens_after: u64,
    /// How many messages at the end of the conversation were kept verbatim.
    pub kept: usize,
    /// Why: `budget` (the next request would not fit), `overflow` (the provider said
    /// the context was too long) or `forced` (`session.compact`).
    pub reason: String,
    /// The tokens (and cost) of the call that wrote the summary; they count towards the
    /// session's totals and budget. Absent when no call reported any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<TokenUsage>,
}

/// `cortex.note`: a note on the session's cortex board. A critical note is put in
/// front of the agent at the start of its next turn (once).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CortexNote {
    /// `note_…`.
    pub note_id: String,
    /// The text.
    pub text: String,
    /// Its labels.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Whether the agent is shown it at the start of its next turn.
    #[serde(default)]
    pub critical: bool,
    /// Who published it: `client`, or the lobe's name.
    pub source: String,
}

/// `cortex.lobe`: a lobe was paused or resumed for this session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CortexLobe {
    /// The lobe's name.
    pub lobe: String,
    /// Paused (true) or running (false) from now on.
    pub paused: bool,
}

/// `hook.ran`: a hook in `$R1_HOME/hooks` ran for an event of this session and exited.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HookRan {
    /// The hook's file name, e.g. `on-message.sh`.
    pub hook: String,
    /// The event it ran for, e.g. `on-message`.
    pub event: String,
    /// The seq of the record that fired it; absent for `pre-send` (the message is not
    /// journaled yet) and daemon events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_seq: Option<u64>,
    /// The exit code; `null` when a signal ended it.
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// How long it ran, in milliseconds.
    pub duration_ms: u64,
    /// What its answer did: `reply`, `allow`, `deny`, `block`, `rewrite`; absent when it
    /// answered nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// The reason it gave with its answer, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `hook.failed`: a hook could not run or did not finish: timed out (its process group
/// was killed), exited non-zero, answered something that is not JSON, or was refused
/// as untrusted. It is never retried.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HookFailed {
    /// The hook's file name.
    pub hook: String,
    /// The event it ran for.
    pub event: String,
    /// Why, for a person.
    pub reason: String,
    /// The seq of the record that fired it, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_seq: Option<u64>,
}

/// `hook.blocked`: the `pre-send` hook blocked a user message, which was never
/// accepted; the client that sent it got a `conflict` error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HookBlocked {
    /// The hook's file name.
    pub hook: String,
    /// The reason the hook gave.
    pub reason: String,
    /// The text that was blocked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Declares the payload type of every record kind once: the [`Event`] impls, the
/// [`EventData`] enum, and its parsing, all from one list. A kind missing from the
/// list does not compile (the match in [`EventData::parse`] is exhaustive).
macro_rules! events {
    ($($kind:ident => $ty:ident),* $(,)?) => {
        $(
            impl Event for $ty {
                const KIND: EventKind = EventKind::$kind;
            }
            impl From<$ty> for EventData {
                fn from(e: $ty) -> EventData {
                    EventData::$kind(e)
                }
            }
        )*

        /// The payload of a record, typed by its kind.
        #[derive(Debug, Clone, PartialEq)]
        pub enum EventData {
            $(
                #[doc = concat!("A [`", stringify!($ty), "`].")]
                $kind($ty),
            )*
        }

        impl EventData {
            /// The kind of record this payload belongs to.
            pub fn kind(&self) -> EventKind {
                match self {
                    $(EventData::$kind(_) => EventKind::$kind,)*
                }
            }

            /// The JSON written as a record's `data`.
            pub fn to_value(&self) -> Value {
                match self {
                    $(EventData::$kind(e) => to_json(e),)*
                }
            }

            /// Reads the `data` of a record of `kind`.
            pub fn parse(kind: EventKind, data: &Value) -> Result<EventData, serde_json::Error> {
                Ok(match kind {
                    $(EventKind::$kind => EventData::$kind(<$ty>::deserialize(data)?),)*
                })
            }
        }

        /// The JSON Schema of each kind's payload, by kind name, with their subschemas
        /// added to `gen`'s definitions.
        fn record_schemas(gen: &mut schemars::SchemaGenerator) -> Vec<(EventKind, &'static str, Value)> {
            vec![$(
                (EventKind::$kind, stringify!($ty), gen.subschema_for::<$ty>().to_value()),
            )*]
        }
    };
}

events! {
    SessionCreated => SessionCreated,
    SessionMessage => SessionMessage,
    SessionDelta => SessionDelta,
    SessionState => SessionStateChanged,
    ToolStarted => ToolStarted,
    ToolCompleted => ToolCompleted,
    ApprovalRequested => ApprovalRequested,
    ApprovalResolved => ApprovalResolved,
    LaneCreated => LaneCreated,
    LaneDelta => LaneDelta,
    LaneStatus => LaneStatusChanged,
    LaneKilled => LaneKilled,
    SessionPaused => SessionPaused,
    SessionResumed => SessionResumed,
    SessionCancelled => SessionCancelled,
    SessionEnded => SessionEnded,
    SessionError => SessionError,
    DaemonReloaded => DaemonReloaded,
    SessionResync => SessionResync,
    VerifyCompleted => VerifyCompleted,
    HookRan => HookRan,
    HookFailed => HookFailed,
    HookBlocked => HookBlocked,
    SessionCompacted => SessionCompacted,
    CortexNote => CortexNote,
    CortexLobe => CortexLobe,
}

impl EventData {
    /// Reads the payload of `r`.
    pub fn from_record(r: &EventRecord) -> Result<EventData, serde_json::Error> {
        EventData::parse(r.kind, &r.data)
    }
}

impl EventRecord {
    /// This record's payload, typed by its kind.
    pub fn event(&self) -> Result<EventData, serde_json::Error> {
        EventData::from_record(self)
    }
}

/// The payloads of the daemon bus (`GET /v1/events`), one type per kind.
pub mod bus {
    use schemars::JsonSchema;
    use serde::{Deserialize, Serialize};

    use crate::SessionState;

    /// A bus event payload: its type names its kind.
    pub trait BusPayload: Serialize + JsonSchema {
        /// The bus event kind, e.g. `session.created`.
        const KIND: &'static str;

        /// The JSON published as the event's `data`.
        fn to_value(&self) -> serde_json::Value {
            super::to_json(self)
        }
    }

    /// `daemon.started`: a daemon started and accepts connections.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
    pub struct DaemonStarted {
        /// The daemon run id.
        pub daemon_id: String,
        /// The daemon's process id.
        pub pid: u32,
        /// The daemon's version.
        pub version: String,
    }

    /// `daemon.stopping`: the daemon begins a graceful shutdown.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
    pub struct DaemonStopping {
        /// The daemon run id.
        pub daemon_id: String,
        /// Why: `shutdown`, or `upgrade` when it hands over to a new binary
        /// (`r1 ctl restart`). Absent from older daemons.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub reason: Option<String>,
    }

    /// `daemon.reloaded`: the daemon reloaded the sessions it found at start, or its
    /// config (`daemon.toml`: SIGHUP, `r1 ctl reload`, `daemon.reload`).
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
    pub struct DaemonReloaded {
        /// The daemon run id.
        pub daemon_id: String,
        /// How many sessions were reloaded at start (0 for a config reload).
        #[serde(default)]
        pub sessions: u64,
        /// The daemon's version.
        #[serde(default)]
        pub version: String,
        /// True for a reload of `daemon.toml`, false for the sessions at start.
        #[serde(default)]
        pub config: bool,
        /// The config keys whose new values took effect (config reloads).
        #[serde(default)]
        pub changed: Vec<String>,
        /// The config keys that changed but wait for a restart (config reloads).
        #[serde(default)]
        pub restart_required: Vec<String>,
    }

    /// `session.created`: a session was started.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
    pub struct SessionCreated {
        /// The session id.
        pub session_id: String,
        /// Its working directory.
        pub workdir: String,
        /// Its engine.
        pub engine: String,
    }

    /// `session.state`: a session changed state.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
    pub struct SessionStateChanged {
        /// The session id.
        pub session_id: String,
        /// The new state.
        pub state: SessionState,
    }

    /// `session.ended`: a session ended.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
    pub struct SessionEnded {
        /// The session id.
        pub session_id: String,
    }

    /// `session.updated`: a session was renamed, archived or unarchived.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
    pub struct SessionUpdated {
        /// The session id.
        pub session_id: String,
        /// Its title now.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub title: Option<String>,
        /// Whether it is archived now.
        pub archived: bool,
    }

    /// `session.deleted`: a session and its journal were deleted.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
    pub struct SessionDeleted {
        /// The session id.
        pub session_id: String,
    }

    /// `session.repaired`: a session's journal was repaired and the session reloaded.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
    pub struct SessionRepaired {
        /// The session id.
        pub session_id: String,
        /// The newest seq kept.
        pub last_seq: u64,
        /// How many bytes of a torn or corrupt tail were dropped.
        pub dropped_bytes: u64,
    }

    macro_rules! bus_events {
        ($($name:literal => $ty:ident),* $(,)?) => {
            $(impl BusPayload for $ty {
                const KIND: &'static str = $name;
            })*

            /// Every bus event kind, in the order the schema lists them.
            pub const KINDS: &[&str] = &[$($name),*];

            /// The JSON Schema of each bus kind's payload, by kind name.
            pub(super) fn schemas(gen: &mut schemars::SchemaGenerator) -> Vec<(&'static str, &'static str, serde_json::Value)> {
                vec![$(($name, stringify!($ty), gen.subschema_for::<$ty>().to_value()),)*]
            }
        };
    }

    /// `mission.queued`: a mission was created and waits for a worker.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
    pub struct MissionQueued {
        /// The mission id.
        pub mission_id: String,
        /// Its title.
        pub title: String,
    }

    /// `mission.started`: a worker took a mission and its session runs.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
    pub struct MissionStarted {
        /// The mission id.
        pub mission_id: String,
        /// Its session.
        pub session_id: String,
        /// Its worktree, when it has one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub worktree_id: Option<String>,
    }

    /// `mission.verified`: one verify step of a mission finished.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
    pub struct MissionVerified {
        /// The mission id.
        pub mission_id: String,
        /// `build`, `test` or `lint`.
        pub step: crate::VerifyStep,
        /// Whether it passed.
        pub ok: bool,
        /// Its one-line summary.
        pub summary: String,
    }

    /// `mission.paused`: a daemon restart stopped a running mission; it waits for
    /// `mission.resume`.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
    pub struct MissionPaused {
        /// The mission id.
        pub mission_id: String,
        /// Why.
        pub reason: String,
    }

    /// `mission.finished`: a mission reached `succeeded`, `failed` or `cancelled`.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
    pub struct MissionFinished {
        /// The mission id.
        pub mission_id: String,
        /// The final state.
        pub state: crate::MissionState,
        /// Why it failed or was cancelled.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub reason: Option<String>,
    }

    bus_events! {
        "daemon.started" => DaemonStarted,
        "daemon.stopping" => DaemonStopping,
        "daemon.reloaded" => DaemonReloaded,
        "session.created" => SessionCreated,
        "session.state" => SessionStateChanged,
        "session.ended" => SessionEnded,
        "session.repaired" => SessionRepaired,
        "session.updated" => SessionUpdated,
        "session.deleted" => SessionDeleted,
        "mission.queued" => MissionQueued,
        "mission.started" => MissionStarted,
        "mission.verified" => MissionVerified,
        "mission.paused" => MissionPaused,
        "mission.finished" => MissionFinished,
    }
}

/// The JSON Schema of the events, committed as `docs/events.schema.json`.
///
/// The document validates one journal record (a line of `journal.ndjson`, or a record
/// of `GET /v1/sessions/{id}/events`): `oneOf` a branch per kind, each the
/// [`EventRecord`] envelope with its `kind` fixed and its `data` the kind's payload.
/// `records` and `bus` map each kind name to its payload's schema, for code
/// generators; bus events (`GET /v1/events`) are [`crate::BusEvent`]s.
pub fn events_schema() -> Value {
    let mut gen = schemars::generate::SchemaSettings::draft2020_12()
        .for_serialize()
        .into_generator();
    let envelope = gen.subschema_for::<EventRecord>().to_value();
    let bus_envelope = gen.subschema_for::<crate::BusEvent>().to_value();
    let mut records = serde_json::Map::new();
    let mut branches = Vec::new();
    for (kind, name, schema) in record_schemas(&mut gen) {
        records.insert(kind.as_str().to_string(), schema.clone());
        branches.push(serde_json::json!({
            "title": name,
            "allOf": [envelope],
            "properties": {"kind": {"const": kind.as_str()}, "data": schema},
        }));
    }
    let mut bus_kinds = serde_json::Map::new();
    for (kind, _, schema) in bus::schemas(&mut gen) {
        bus_kinds.insert(kind.to_string(), schema);
    }
    let defs = gen.take_definitions(true);
    serde_json::json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "r1 events",
        "description": "One r1 journal record (a line of journal.ndjson, or a record a session follower receives). `records` maps each record kind to its payload, `bus` each daemon bus event kind (GET /v1/events, an envelope BusEvent) to its payload.",
        "oneOf": branches,
        "records": records,
        "bus": bus_kinds,
        "envelope": {"EventRecord": envelope, "BusEvent": bus_envelope},
        "$defs": defs,
    })
}
