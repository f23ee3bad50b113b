//! The r1 wire contract and nothing else.
//!
//! Every type a client and the daemon exchange is declared here once: the registration
//! file, the probe, the journal record and its closed enum of kinds, the session
//! resources, the error envelope with its ten codes, and the [`Api`] trait that lists
//! every operation a client can perform. This crate does no I/O; the JSON Schema of the
//! wire types is generated from it (see [`wire_schema`]) and committed.

pub mod catalog;
mod cortex;
mod error;
mod event;
pub mod events;
mod mission;
pub mod openapi;
mod ops;
pub mod schema;
mod search;
mod session;
mod tui;
mod verify;
mod web;
mod workdir;
mod worktree;

pub use catalog::{
    dispatch, operation, operation_for_tool, Api, Capability, HttpMethod, Idempotency, McpTool,
    OperationInfo, Remote, Request, OPERATIONS,
};
pub use cortex::{
    CortexNotesParams, CortexPublishParams, LobeList, LobeRef, LobeView, NoteInput, NoteList,
    NoteView,
};
pub use error::{ApiError, ErrorCode, ErrorEnvelope, Links, JSONRPC_API_ERROR};
pub use event::{BusEvent, EventKind, EventRecord};
pub use events::{Event, EventData, LaneStatus, ToolPolicy};
pub use mission::{
    MissionCreateParams, MissionList, MissionListParams, MissionRef, MissionSpec, MissionState,
    MissionTimings, MissionView,
};
pub use ops::{
    DaemonStatus, HookInfo, HookList, HookTestParams, HookTestResult, ListenerStatus, LogLine,
    LogPage, LogsParams,
};
pub use search::{ReindexResult, SearchHit, SearchKind, SearchParams, SearchResult, SnippetPart};
pub use session::{
    ApprovalView, ApproveParams, CompactResult, DebugApproval, DebugLane, DebugQueued, Decision,
    DeleteResult, EmptyParams, EngineList, EngineView, JournalPage, JournalParams, LaneList,
    LaneRef, LaneView, ListSessionsParams, PinLaneParams, RenameParams, RepairResult,
    ResumeAllResult, ResumeFailure, SendMessageParams, SendMessageResult, SessionDebugState,
    SessionId, SessionList, SessionRef, SessionState, SessionUsage, SessionView,
    StartSessionParams, TailParams,
};
pub use tui::{
    TuiElement, TuiFocusLaneParams, TuiGetModelParams, TuiKeyParams, TuiModelView, TuiOpenParams,
    TuiOpened, TuiPoint, TuiRect, TuiRef, TuiSnapshot,
};
pub use verify::{VerifyFailure, VerifyParams, VerifyResult, VerifyStep};
pub use web::{WebClickParams, WebFillParams, WebNavigateParams, WebPageView};
pub use workdir::{
    WorkdirFile, WorkdirReadParams, WORKDIR_READ_DEFAULT_BYTES, WORKDIR_READ_MAX_BYTES,
};
pub use worktree::{
    DiffFileStat, MergeStrategy, WorktreeCleanParams, WorktreeDiff, WorktreeDiffParams,
    WorktreeList, WorktreeListParams, WorktreeMergeParams, WorktreeMergeResult, WorktreeRequest,
    WorktreeSpec, WorktreeState, WorktreeView,
};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The protocol id every r1 daemon and client speak; a daemon answering anything else
/// in its handshake is refused by clients with a distinguishable error.
pub const PROTOCOL: &str = "r1.proto.v1";

/// The WebSocket subprotocol a client offers, next to [`PROTOCOL`], to say that the
/// following offered subprotocol is its bearer token.
pub const WS_BEARER_SUBPROTOCOL: &str = "r1.bearer";

/// The registration the daemon writes to `$R1_HOME/daemon.json` once every listener
/// accepts. It never holds the token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Registration {
    /// A random id for this daemon run; a daemon whose id is no longer in the file
    /// stands down.
    pub id: String,
    /// The daemon's process id.
    pub pid: u32,
    /// The daemon's version (the `r1` crate version).
    pub version: String,
    /// The protocol id, [`PROTOCOL`] for this crate.
    pub protocol: String,
    /// The loopback HTTP base URL, `http://127.0.0.1:PORT`.
    pub url: String,
    /// The path of the unix socket.
    pub sock: String,
    /// RFC 3339 start time.
    pub started_at: String,
    /// The binary the daemon runs, as an absolute path (absent from older daemons).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exe: Option<String>,
    /// What identifies that binary's build: its size and modification time as
    /// `<bytes>-<mtime ns>` when the daemon started (absent from older daemons). `r1
    /// doctor` compares it with the file on disk to tell that `r1 ctl restart` would
    /// run a different binary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_id: Option<String>,
}

/// The answer of `GET /v1/discover` (`daemon.discover`, `r1 ctl discover`): what
/// `daemon.json` holds, with the token redacted and the file that holds it named.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Discovery {
    /// The daemon run id, as in [`Registration::id`].
    pub id: String,
    /// The daemon's process id.
    pub pid: u32,
    /// The daemon's version.
    pub version: String,
    /// The protocol id the daemon speaks.
    pub protocol: String,
    /// The loopback HTTP base URL, `http://127.0.0.1:PORT`.
    pub url: String,
    /// The path of the unix socket.
    pub sock: String,
    /// RFC 3339 start time.
    pub started_at: String,
    /// Always [`Discovery::REDACTED`]: the token is never sent back; it is in
    /// `token_file`.
    pub token: String,
    /// The file holding the token (mode 0600, readable only by the user).
    pub token_file: String,
    /// The binary the daemon runs, as an absolute path (absent from older daemons).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exe: Option<String>,
    /// What identifies that binary's build: its size and modification time as
    /// `<bytes>-<mtime ns>` when the daemon started (absent from older daemons). `r1
    /// doctor` compares it with the file on disk to tell that `r1 ctl restart` would
    /// run a different binary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_id: Option<String>,
}

impl Discovery {
    /// What stands in the `token` field.
    pub const REDACTED: &'static str = "<redacted>";

    /// The discovery answer for `reg`, whose token is in `token_file`.
    pub fn new(reg: &Registration, token_file: &str) -> Discovery {
        Discovery {
            id: reg.id.clone(),
            pid: reg.pid,
            version: reg.version.clone(),
            protocol: reg.protocol.clone(),
            url: reg.url.clone(),
            sock: reg.sock.clone(),
            started_at: reg.started_at.clone(),
            token: Discovery::REDACTED.to_string(),
            token_file: token_file.to_string(),
            exe: reg.exe.clone(),
            build_id: reg.build_id.clone(),
        }
    }
}

/// The one line `r1 serve --emit-port-stdout` prints on stdout once every listener
/// accepts and `daemon.json` is written, for a parent process (a desktop shell) that
/// started the daemon and needs to find it; `docs/EMBEDDING.md` is the contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DaemonListening {
    /// Always [`DaemonListening::EVENT`].
    pub event: String,
    /// The loopback HTTP base URL, `http://127.0.0.1:PORT`.
    pub url: String,
    /// The loopback TCP port of `url`.
    pub port: u16,
    /// The path of the unix socket.
    pub sock: String,
    /// The daemon's process id.
    pub pid: u32,
    /// The daemon's version.
    pub version: String,
    /// The protocol id the daemon speaks, [`PROTOCOL`].
    pub protocol: String,
}

impl DaemonListening {
    /// The `event` of the line.
    pub const EVENT: &'static str = "daemon.listening";

    /// The line for a daemon registered as `reg`, listening on TCP `port`.
    pub fn new(reg: &Registration, port: u16) -> DaemonListening {
        DaemonListening {
            event: DaemonListening::EVENT.to_string(),
            url: reg.url.clone(),
            port,
            sock: reg.sock.clone(),
            pid: reg.pid,
            version: reg.version.clone(),
            protocol: reg.protocol.clone(),
        }
    }
}

/// The probe answer of `GET /v1/handshake`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Handshake {
    /// The protocol id the daemon speaks.
    pub protocol: String,
    /// The daemon's version.
    pub version: String,
    /// The daemon run id, as in [`Registration::id`].
    pub daemon_id: String,
    /// The daemon's process id.
    pub pid: u32,
    /// RFC 3339 start time.
    pub started_at: String,
    /// The daemon binary's build id, as in [`Registration::build_id`] (absent from
    /// older daemons).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_id: Option<String>,
}

/// The answer of `GET /v1/health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Health {
    /// `ok` while the daemon serves; `stopping` during a graceful shutdown.
    pub status: String,
    /// The daemon's version.
    pub version: String,
    /// How many sessions are loaded (any state but ended).
    pub sessions: u64,
    /// Whole seconds since the daemon started.
    pub uptime_s: u64,
}

/// The body of `POST /v1/shutdown`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShutdownParams {
    /// Seconds to let in-flight requests finish before the daemon exits (default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_s: Option<u64>,
}

/// The answer of `POST /v1/reload` (`daemon.reload`, `r1 ctl reload`, SIGHUP): what
/// changed in `daemon.toml` and took effect, and what changed but waits for a restart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ReloadResult {
    /// The daemon's version.
    pub version: String,
    /// The keys whose new values are in force now (`perimeter.allowed_origins`,
    /// `limits.max_message_bytes`, `missions.workers`, …), in file order of sections.
    pub changed: Vec<String>,
    /// The keys that changed but only take effect when the daemon restarts
    /// (`r1 ctl restart`); the running daemon keeps their old values.
    pub restart_required: Vec<String>,
}

/// The body of `POST /v1/restart`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RestartParams {
    /// Seconds the new daemon has to register and answer before the old one takes
    /// over again (default 15, at most 120).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_s: Option<u64>,
}

/// The answer of `POST /v1/restart` (`daemon.restart`, `r1 ctl restart`): the new
/// daemon serves, on the same port and socket, with every session reloaded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RestartResult {
    /// The binary that was started.
    pub exe: String,
    /// The old daemon's version.
    pub from_version: String,
    /// The new daemon's version.
    pub version: String,
    /// The old daemon's build id.
    pub from_build_id: String,
    /// The new daemon's build id.
    pub build_id: String,
    /// The new daemon's process id.
    pub pid: u32,
    /// The new daemon's run id.
    pub daemon_id: String,
    /// The loopback HTTP base URL, unchanged.
    pub url: String,
}

/// A plain acknowledgement: `{"ok": true}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Ack {
    /// Always true.
    pub ok: bool,
}

impl Ack {
    /// The acknowledgement value.
    pub const OK: Ack = Ack { ok: true };
}

/// The body of `POST /v1/auth/exchange`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExchangeParams {
    /// The single-use login code minted by `r1 open`.
    pub code: String,
}

/// Every wire type, by name, as one JSON Schema document. The committed copy lives at
/// `crates/r1-proto/schema/r1.proto.v1.json`; a test fails when it drifts.
pub fn wire_schema() -> serde_json::Value {
    let mut gen = schemars::SchemaGenerator::default();
    let mut defs = serde_json::Map::new();
    macro_rules! add {
        ($($t:ty),* $(,)?) => {$(
            defs.insert(
                stringify!($t).to_string(),
                serde_json::to_value(gen.subschema_for::<$t>()).unwrap_or_default(),
            );
        )*};
    }
    add!(
        Registration,
        Discovery,
        DaemonListening,
        Handshake,
        Health,
        ShutdownParams,
        ReloadResult,
        RestartParams,
        RestartResult,
        Ack,
        ExchangeParams,
        ErrorEnvelope,
        ErrorCode,
        EventRecord,
        EventKind,
        BusEvent,
        SessionView,
        SessionList,
        SessionState,
        StartSessionParams,
        SendMessageParams,
        SendMessageResult,
        EmptyParams,
        SessionRef,
        JournalParams,
        TailParams,
        ApproveParams,
        Decision,
        LaneRef,
        PinLaneParams,
        JournalPage,
        RepairResult,
        CompactResult,
        ResumeAllResult,
        ResumeFailure,
        ApprovalView,
        LaneView,
        LaneList,
        EngineView,
        EngineList,
        LogsParams,
        LogPage,
        LogLine,
        DaemonStatus,
        TuiOpenParams,
        TuiRef,
        TuiKeyParams,
        TuiFocusLaneParams,
        TuiGetModelParams,
        TuiOpened,
        TuiSnapshot,
        TuiModelView,
    );
    let all_defs = gen.take_definitions(true);
    serde_json::json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": PROTOCOL,
        "types": defs,
        "$defs": all_defs,
    })
}
