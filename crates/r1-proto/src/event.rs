//! Journal records and daemon bus events.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The closed set of record kinds a session journal holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum EventKind {
    /// The session was created (durable).
    #[serde(rename = "session.created")]
    SessionCreated,
    /// A whole message: `data.role` is `user` or `assistant`.
    #[serde(rename = "session.message")]
    SessionMessage,
    /// A piece of assistant text as it streams.
    #[serde(rename = "session.delta")]
    SessionDelta,
    /// The session changed state: `data.state`.
    #[serde(rename = "session.state")]
    SessionState,
    /// A tool call started.
    #[serde(rename = "tool.started")]
    ToolStarted,
    /// A tool call finished.
    #[serde(rename = "tool.completed")]
    ToolCompleted,
    /// A tool call waits for a client's decision (durable).
    #[serde(rename = "approval.requested")]
    ApprovalRequested,
    /// A client decided an approval (durable).
    #[serde(rename = "approval.resolved")]
    ApprovalResolved,
    /// A lane was opened.
    #[serde(rename = "lane.created")]
    LaneCreated,
    /// Output of a lane.
    #[serde(rename = "lane.delta")]
    LaneDelta,
    /// A lane changed status.
    #[serde(rename = "lane.status")]
    LaneStatus,
    /// A lane was killed.
    #[serde(rename = "lane.killed")]
    LaneKilled,
    /// The session was paused (durable).
    #[serde(rename = "session.paused")]
    SessionPaused,
    /// The session was resumed.
    #[serde(rename = "session.resumed")]
    SessionResumed,
    /// The turn in progress was cancelled (durable).
    #[serde(rename = "session.cancelled")]
    SessionCancelled,
    /// The session ended (durable, terminal).
    #[serde(rename = "session.ended")]
    SessionEnded,
    /// The session or a turn failed (durable).
    #[serde(rename = "session.error")]
    SessionError,
    /// The daemon restarted and reloaded this session.
    #[serde(rename = "daemon.reloaded")]
    DaemonReloaded,
    /// Sent to a follower only, never journaled: the journal was repaired past the
    /// point the follower had seen, so it must refetch from `data.next_seq`.
    #[serde(rename = "session.resync")]
    SessionResync,
    /// A verify command (build, test, lint) finished, with what it found (durable).
    #[serde(rename = "verify.completed")]
    VerifyCompleted,
    /// A hook in `$R1_HOME/hooks` ran for an event of this session.
    #[serde(rename = "hook.ran")]
    HookRan,
    /// A hook could not run or did not finish (timeout, crash, untrusted file).
    #[serde(rename = "hook.failed")]
    HookFailed,
    /// The `pre-send` hook blocked a user message; it was never accepted.
    #[serde(rename = "hook.blocked")]
    HookBlocked,
    /// The oldest part of the conversation was replaced by a summary (or dropped) to
    /// fit the engine's context budget (durable).
    #[serde(rename = "session.compacted")]
    SessionCompacted,
    /// A note on the session's cortex board, from a client or a lobe (durable).
    #[serde(rename = "cortex.note")]
    CortexNote,
    /// A lobe was paused or resumed for this session (durable).
    #[serde(rename = "cortex.lobe")]
    CortexLobe,
}

impl EventKind {
    /// Every kind, in declaration order.
    pub const ALL: [EventKind; 26] = [
        EventKind::SessionCreated,
        EventKind::SessionMessage,
        EventKind::SessionDelta,
        EventKind::SessionState,
        EventKind::ToolStarted,
        EventKind::ToolCompleted,
        EventKind::ApprovalRequested,
        EventKind::ApprovalResolved,
        EventKind::LaneCreated,
        EventKind::LaneDelta,
        EventKind::LaneStatus,
        EventKind::LaneKilled,
        EventKind::SessionPaused,
        EventKind::SessionResumed,
        EventKind::SessionCancelled,
        EventKind::SessionEnded,
        EventKind::SessionError,
        EventKind::DaemonReloaded,
        EventKind::SessionResync,
        EventKind::VerifyCompleted,
        EventKind::HookRan,
        EventKind::HookFailed,
        EventKind::HookBlocked,
        EventKind::SessionCompacted,
        EventKind::CortexNote,
        EventKind::CortexLobe,
    ];

    /// The wire spelling, e.g. `session.delta`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::SessionCreated => "session.created",
            EventKind::SessionMessage => "session.message",
            EventKind::SessionDelta => "session.delta",
            EventKind::SessionState => "session.state",
            EventKind::ToolStarted => "tool.started",
            EventKind::ToolCompleted => "tool.completed",
            EventKind::ApprovalRequested => "approval.requested",
            EventKind::ApprovalResolved => "approval.resolved",
            EventKind::LaneCreated => "lane.created",
            EventKind::LaneDelta => "lane.delta",
            EventKind::LaneStatus => "lane.status",
            EventKind::LaneKilled => "lane.killed",
            EventKind::SessionPaused => "session.paused",
            EventKind::SessionResumed => "session.resumed",
            EventKind::SessionCancelled => "session.cancelled",
            EventKind::SessionEnded => "session.ended",
            EventKind::SessionError => "session.error",
            EventKind::DaemonReloaded => "daemon.reloaded",
            EventKind::SessionResync => "session.resync",
            EventKind::VerifyCompleted => "verify.completed",
            EventKind::HookRan => "hook.ran",
            EventKind::HookFailed => "hook.failed",
            EventKind::HookBlocked => "hook.blocked",
            EventKind::SessionCompacted => "session.compacted",
            EventKind::CortexNote => "cortex.note",
            EventKind::CortexLobe => "cortex.lobe",
        }
    }

    /// Whether a record of this kind must be durable (fdatasync returned) before it is
    /// acknowledged. User messages are durable too; that depends on `data.role`, so the
    /// hub asks for it explicitly.
    pub fn is_durable(self) -> bool {
        matches!(
            self,
            EventKind::SessionCreated
                | EventKind::ApprovalRequested
                | EventKind::ApprovalResolved
                | EventKind::SessionPaused
                | EventKind::SessionEnded
                | EventKind::SessionCancelled
                | EventKind::SessionError
                | EventKind::VerifyCompleted
                | EventKind::SessionCompacted
                | EventKind::CortexNote
                | EventKind::CortexLobe
        )
    }
}

/// One journal record, one line of `journal.ndjson`:
/// `{"v":1,"seq":12,"at":"…","kind":"session.delta","lane":"main","data":{…}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EventRecord {
    /// Record format version, 1.
    pub v: u32,
    /// Sequence number: 1 for the first record, +1 for each next one.
    pub seq: u64,
    /// RFC 3339 time with milliseconds, UTC.
    pub at: String,
    /// What happened.
    pub kind: EventKind,
    /// The lane it happened in; `main` for the conversation.
    pub lane: String,
    /// Kind-specific payload: one type per kind, in `docs/events.schema.json`
    /// (`session.paused` carries a `SessionPaused`).
    pub data: serde_json::Value,
}

/// One event of the daemon bus (`GET /v1/events`, `bus/events.ndjson`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BusEvent {
    /// Position in the daemon's bus, from 1; it goes on counting across daemon
    /// restarts (the bus file is its record), so `Last-Event-ID` stays meaningful.
    pub seq: u64,
    /// RFC 3339 time with milliseconds, UTC.
    pub at: String,
    /// `daemon.started`, `daemon.reloaded`, `daemon.stopping`, `session.created`,
    /// `session.state`, `session.ended`, `session.repaired` or a `mission.*` kind.
    pub kind: String,
    /// Kind-specific payload: one type per kind, in `docs/events.schema.json`.
    pub data: serde_json::Value,
}
