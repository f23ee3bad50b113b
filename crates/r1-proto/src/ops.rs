//! Running the daemon: its logs (`daemon.logs`) and its status (`daemon.status`).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The params of `daemon.logs`: a page of the daemon's log lines, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogsParams {
    /// Only lines from this moment on: a duration back from now (`90s`, `10m`,
    /// `2h 30m`, `1d`) or an RFC 3339 time (`2026-05-02T18:30:00Z`), read by the
    /// daemon's clock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// Only lines of this level or more severe: `error`, `warn`, `info`, `debug` or
    /// `trace`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
    /// Only lines about this session (their `session` field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// The most lines to return (default 200, at most 10000). Without `after`, these
    /// are the newest matching lines; with it, the first ones after the cursor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    /// Continue after this cursor (`next` of a previous answer): only lines written
    /// after it, oldest first. This is how `r1 ctl logs -f` follows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// With `after`: when there is no new line yet, wait up to this many milliseconds
    /// for one (default 0, at most 60000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_ms: Option<u64>,
}

/// One line of the daemon's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LogLine {
    /// When it was written (RFC 3339, UTC, microseconds).
    pub at: String,
    /// `ERROR`, `WARN`, `INFO`, `DEBUG` or `TRACE`.
    pub level: String,
    /// The module that wrote it (`r1_daemon::sessions`).
    pub target: String,
    /// The message.
    pub message: String,
    /// The session the line is about, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// Its other fields, each as text.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, String>,
}

/// The answer of `daemon.logs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LogPage {
    /// The matching lines, oldest first.
    pub lines: Vec<LogLine>,
    /// The cursor to pass as `after` for the lines written after these.
    pub next: String,
}

/// The daemon's listeners.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ListenerStatus {
    /// The loopback HTTP base URL.
    pub url: String,
    /// The loopback TCP port.
    pub port: u16,
    /// The path of the unix socket.
    pub socket: String,
}

/// The answer of `daemon.status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DaemonStatus {
    /// `ok` while the daemon serves; `stopping` during a graceful shutdown.
    pub status: String,
    /// The daemon's version.
    pub version: String,
    /// The daemon run id.
    pub daemon_id: String,
    /// The daemon's process id.
    pub pid: u32,
    /// RFC 3339 start time.
    pub started_at: String,
    /// Whole seconds since the daemon started.
    pub uptime_s: u64,
    /// Where it listens (absent for a moment while it starts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<ListenerStatus>,
    /// The state directory.
    pub home: String,
    /// The confinement of commands and exec agents, in one line (Landlock ABI, or why
    /// there is none).
    pub sandbox: String,
    /// Whether that confinement is in force.
    pub sandbox_active: bool,
    /// Loaded sessions by state (`idle`, `busy`, `waiting_on_approval`, `paused`,
    /// `ended`, `error`); states with none are left out.
    pub sessions: BTreeMap<String, u64>,
    /// Missions by state (`queued`, `running`, `verifying`, `paused`, `succeeded`,
    /// `failed`, `cancelled`); states with none are left out.
    pub missions: BTreeMap<String, u64>,
    /// The tokens and cost of every loaded session, summed (each session's `usage`
    /// over its whole journal).
    #[serde(default)]
    pub usage: crate::SessionUsage,
    /// Live event-stream subscribers (SSE streams and WebSocket subscriptions).
    pub subscribers: u64,
    /// Hooks run since the start. Always 0: this daemon has no hooks yet.
    pub hooks_run: u64,
    /// The last ERROR line the daemon logged since it started, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<LogLine>,
}

/// One file in `$R1_HOME/hooks`, as `hooks.list` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct HookInfo {
    /// The file name, e.g. `on-message.sh`.
    pub name: String,
    /// The event it answers (`on-message`, `pre-send`, …); absent when the name
    /// matches no event, and the file is never run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// Its absolute path.
    pub path: String,
    /// Whether it passes the trust checks and would run.
    pub trusted: bool,
    /// Why it is refused, when it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
    /// Its timeout in seconds (`# r1:timeout=` or `[hooks] default_timeout_s`).
    pub timeout_s: u64,
}

/// The answer of `hooks.list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct HookList {
    /// `false` when `[hooks] enabled = false`: nothing runs.
    pub enabled: bool,
    /// The directory, `$R1_HOME/hooks`.
    pub dir: String,
    /// Every file in it, by name.
    pub hooks: Vec<HookInfo>,
}

/// The params of `hooks.test`: run one hook against a sample event, outside any
/// session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HookTestParams {
    /// The hook's file name (`on-message.sh`) or its event (`on-message`).
    pub name: String,
    /// The JSON object given on stdin; a sample event of the hook's kind by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<serde_json::Value>,
}

/// The answer of `hooks.test`: what the hook did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HookTestResult {
    /// The hook's file name.
    pub hook: String,
    /// The event it ran as.
    pub event: String,
    /// The exit code; `null` when a signal ended it or it did not run.
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// How long it ran, in milliseconds.
    pub duration_ms: u64,
    /// It ran past its timeout and its process group was killed.
    pub timed_out: bool,
    /// Its stdout (at most 64 KiB).
    pub stdout: String,
    /// Its stderr (at most 64 KiB).
    pub stderr: String,
    /// Its stdout read as a hook answer, when it is a JSON object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<serde_json::Value>,
    /// Why it failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
