//! `logging/setLevel`: the daemon's log lines about this client's sessions, as
//! `notifications/message`.
//!
//! A connection's sessions are those its tool calls named (`session_id`) or created
//! (`r1_session_start`). After the first `logging/setLevel`, one task follows the
//! daemon's log (`daemon.logs` with its cursor, long-polling) and sends each line about
//! one of those sessions at or above the level. Lines about other sessions, or about
//! none, are never sent: the daemon's log holds every session's paths and prompts,
//! which is why `daemon.logs` is no tool. A line about a session not yet known (its
//! start is logged before the call that started it answers) waits up to
//! [`PENDING_FOR`], at most [`MAX_PENDING`] lines, for the session to become this
//! connection's.

// MCP revision 2025-11-25, the one r1 implements, defines logging; rmcp marks its
// types deprecated for a later revision that drops it.
#![allow(deprecated)]

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use r1_proto::{Api, LogLine, LogsParams};
use rmcp::model::{LoggingLevel, LoggingMessageNotificationParam};
use rmcp::{Peer, RoleServer};

/// How long a line about a session not (yet) this connection's is kept.
pub const PENDING_FOR: Duration = Duration::from_secs(5);
/// The most such lines kept.
pub const MAX_PENDING: usize = 256;
/// The most sessions a connection is followed for; older ones are forgotten first.
pub const MAX_SESSIONS: usize = 1024;
/// How long one `daemon.logs` waits for a line.
const WAIT_MS: u64 = 1_000;

/// The log forwarding of one connection.
#[derive(Debug, Clone, Default)]
pub(crate) struct LogForward {
    /// The level as an index into [`LEVELS`], plus one; 0 before any setLevel.
    level: Arc<AtomicU8>,
    started: Arc<AtomicBool>,
    sessions: Arc<Mutex<VecDeque<String>>>,
}

/// MCP's levels, least severe first.
const LEVELS: [LoggingLevel; 8] = [
    LoggingLevel::Debug,
    LoggingLevel::Info,
    LoggingLevel::Notice,
    LoggingLevel::Warning,
    LoggingLevel::Error,
    LoggingLevel::Critical,
    LoggingLevel::Alert,
    LoggingLevel::Emergency,
];

/// The MCP level of a daemon line (`ERROR`, `WARN`, `INFO`, `DEBUG`, `TRACE`).
fn level_of(line: &LogLine) -> LoggingLevel {
    match line.level.as_str() {
        "ERROR" => LoggingLevel::Error,
        "WARN" => LoggingLevel::Warning,
        "INFO" => LoggingLevel::Info,
        _ => LoggingLevel::Debug,
    }
}

fn rank(l: LoggingLevel) -> u8 {
    LEVELS
        .iter()
        .position(|x| *x == l)
        .and_then(|p| u8::try_from(p).ok())
        .unwrap_or(0)
}

impl LogForward {
    /// Notes that this connection uses session `id`.
    pub(crate) fn note_session(&self, id: &str) {
        let Ok(mut s) = self.sessions.lock() else {
            return;
        };
        if s.iter().any(|x| x == id) {
            return;
        }
        s.push_back(id.to_string());
        while s.len() > MAX_SESSIONS {
            s.pop_front();
        }
    }

    fn knows(&self, id: &str) -> bool {
        self.sessions
            .lock()
            .map(|s| s.iter().any(|x| x == id))
            .unwrap_or(false)
    }

    /// `logging/setLevel`: sets the level and starts following the log (once).
    pub(crate) fn set_level(&self, api: Arc<dyn Api>, peer: Peer<RoleServer>, level: LoggingLevel) {
        self.level.store(rank(level) + 1, Ordering::SeqCst);
        if self.started.swap(true, Ordering::SeqCst) {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move { this.follow(api.as_ref(), &peer).await });
    }

    async fn follow(&self, api: &dyn Api, peer: &Peer<RoleServer>) {
        // Start at the end of the log: what was written before is not this client's news.
        let mut cursor = match api
            .daemon_logs(LogsParams {
                limit: Some(1),
                ..LogsParams::default()
            })
            .await
        {
            Ok(page) => page.next,
            Err(e) => {
                tracing::warn!("MCP logging: cannot read the daemon's log: {}", e.message);
                return;
            }
        };
        let mut pending: VecDeque<(Instant, LogLine)> = VecDeque::new();
        loop {
            if peer.is_transport_closed() {
                return;
            }
            let page = api
                .daemon_logs(LogsParams {
                    after: Some(cursor.clone()),
                    wait_ms: Some(WAIT_MS),
                    limit: Some(200),
                    ..LogsParams::default()
                })
                .await;
            let page = match page {
                Ok(p) => p,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(WAIT_MS)).await;
                    continue;
                }
            };
            cursor = page.next;
            let now = Instant::now();
            pending.extend(
                page.lines
                    .into_iter()
                    .filter(|l| l.session.is_some())
                    .map(|l| (now, l)),
            );
            let floor = self.level.load(Ordering::SeqCst).saturating_sub(1);
            let mut keep = VecDeque::new();
            for (at, line) in pending.drain(..) {
                let ours = line.session.as_deref().is_some_and(|s| self.knows(s));
                if ours {
                    if rank(level_of(&line)) < floor {
                        continue;
                    }
                    let data = serde_json::to_value(&line).unwrap_or_default();
                    let param = LoggingMessageNotificationParam::new(level_of(&line), data)
                        .with_logger(line.target.clone());
                    let sent = peer.notify_logging_message(param).await;
                    if sent.is_err() {
                        return;
                    }
                } else if now.duration_since(at) < PENDING_FOR {
                    keep.push_back((at, line));
                }
            }
            while keep.len() > MAX_PENDING {
                keep.pop_front();
            }
            pending = keep;
        }
    }
}

/// The sessions a tool call names or creates: its `session_id` argument, and for a
/// start, the `id` of its result.
pub(crate) fn sessions_of(args: &serde_json::Value, result: &serde_json::Value) -> Vec<String> {
    let mut out: HashSet<String> = HashSet::new();
    if let Some(id) = args.get("session_id").and_then(|v| v.as_str()) {
        out.insert(id.to_string());
    }
    let data = &result["structuredContent"]["data"];
    if let Some(id) = data.get("id").and_then(|v| v.as_str()) {
        if id.starts_with("ses_") {
            out.insert(id.to_string());
        }
    }
    out.into_iter().collect()
}
