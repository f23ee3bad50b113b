//! The `Api` trait: every operation a client can perform.

use crate::{
    Ack, ApiError, EngineList, Handshake, Health, JournalPage, LaneList, RepairResult,
    ResumeAllResult, SendMessageParams, SendMessageResult, SessionList, SessionView,
    ShutdownParams, StartSessionParams,
};

/// Every operation a client can perform on a daemon. The daemon's hub implements it
/// directly; `r1-client` implements it over the unix socket or loopback TCP; the MCP
/// catalog is written once against `dyn Api`. An operation the web UI offers must have
/// its method here.
#[async_trait::async_trait]
pub trait Api: Send + Sync {
    /// `daemon.handshake`: the probe.
    async fn handshake(&self) -> Result<Handshake, ApiError>;
    /// `daemon.health`.
    async fn health(&self) -> Result<Health, ApiError>;
    /// `daemon.shutdown`: stop gracefully.
    async fn shutdown(&self, params: ShutdownParams) -> Result<Ack, ApiError>;
    /// `session.start`.
    async fn session_start(&self, params: StartSessionParams) -> Result<SessionView, ApiError>;
    /// `session.list`.
    async fn session_list(&self) -> Result<SessionList, ApiError>;
    /// `session.get`.
    async fn session_get(&self, id: &str) -> Result<SessionView, ApiError>;
    /// `session.send`.
    async fn session_send(
        &self,
        id: &str,
        params: SendMessageParams,
    ) -> Result<SendMessageResult, ApiError>;
    /// `session.cancel`: cancel the turn in progress (ok when there is none).
    async fn session_cancel(&self, id: &str) -> Result<SessionView, ApiError>;
    /// `session.pause`.
    async fn session_pause(&self, id: &str) -> Result<SessionView, ApiError>;
    /// `session.resume`.
    async fn session_resume(&self, id: &str) -> Result<SessionView, ApiError>;
    /// `session.resume_all`: resume every `paused` session (ended and errored ones are
    /// left alone), so one call brings everything back after a daemon restart. Each is
    /// resumed as `session.resume` would; one that fails is reported, not fatal.
    async fn session_resume_all(&self) -> Result<ResumeAllResult, ApiError>;
    /// `session.kill`: end the session (idempotent).
    async fn session_kill(&self, id: &str) -> Result<SessionView, ApiError>;
    /// `session.journal`: a page of records from `since_seq`.
    async fn session_journal(
        &self,
        id: &str,
        since_seq: u64,
        limit: usize,
    ) -> Result<JournalPage, ApiError>;
    /// `session.repair`: cut a quarantined session's corrupt journal back to its last
    /// good record (after keeping a `.broken` copy) and bring the session back; a
    /// healthy session is left as it is.
    async fn session_repair(&self, id: &str) -> Result<RepairResult, ApiError>;
    /// `session.approve`: decide a pending approval (`allow` or `deny`); deciding it
    /// again the same way is ok, the other way is a conflict.
    async fn session_approve(
        &self,
        id: &str,
        approval_id: &str,
        decision: &str,
    ) -> Result<SessionView, ApiError>;
    /// `lanes.list`.
    async fn lanes_list(&self, id: &str) -> Result<LaneList, ApiError>;
    /// `lanes.kill`: kill the lane's process group (idempotent).
    async fn lane_kill(&self, id: &str, lane: &str) -> Result<LaneList, ApiError>;
    /// `lanes.pin`.
    async fn lane_pin(&self, id: &str, lane: &str) -> Result<LaneList, ApiError>;
    /// `engines.list`.
    async fn engines_list(&self) -> Result<EngineList, ApiError>;
}

/// The dotted names of every [`Api`] operation, as the WebSocket methods and the web
/// UI's `data-api` attributes spell them.
pub const OPERATIONS: &[&str] = &[
    "daemon.handshake",
    "daemon.health",
    "daemon.shutdown",
    "session.start",
    "session.list",
    "session.get",
    "session.send",
    "session.cancel",
    "session.pause",
    "session.resume",
    "session.resume_all",
    "session.kill",
    "session.journal",
    "session.repair",
    "session.approve",
    "lanes.list",
    "lanes.kill",
    "lanes.pin",
    "engines.list",
    "auth.exchange",
    "subscribe",
];
