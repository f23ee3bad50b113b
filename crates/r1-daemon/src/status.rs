//! Running the daemon: `daemon.status`, `daemon.logs` and the gauges of `/v1/metrics`.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;

use r1_proto::{
    ApiError, DaemonStatus, ListenerStatus, LogPage, LogsParams, MissionState, SessionState,
    SessionUsage,
};

use crate::logs::LogQuery;
use crate::metrics::Gauges;
use crate::Hub;

/// Every session state, so the metrics show zeros too.
const SESSION_STATES: [SessionState; 6] = [
    SessionState::Idle,
    SessionState::Busy,
    SessionState::WaitingOnApproval,
    SessionState::Paused,
    SessionState::Ended,
    SessionState::Error,
];

/// Every mission state, so the metrics show zeros too.
const MISSION_STATES: [MissionState; 7] = [
    MissionState::Queued,
    MissionState::Running,
    MissionState::Verifying,
    MissionState::Paused,
    MissionState::Succeeded,
    MissionState::Failed,
    MissionState::Cancelled,
];

/// How often a waiting `daemon.logs` looks at the files again.
const LOGS_POLL: Duration = Duration::from_millis(100);
/// The longest a `daemon.logs` call waits: as `session.tail`.
const LOGS_MAX_WAIT_MS: u64 = 60_000;

/// What the daemon learns about itself while it starts: where it listens and how
/// its children are confined.
#[derive(Debug, Default)]
pub struct Runtime {
    listen: OnceLock<ListenerStatus>,
    sandbox: OnceLock<(String, bool)>,
}

impl Runtime {
    /// Records the listeners, once both accept.
    pub fn set_listening(&self, url: String, port: u16, socket: String) {
        let _ = self.listen.set(ListenerStatus { url, port, socket });
    }

    /// Records the sandbox probe's one-line answer.
    pub fn set_sandbox(&self, detail: String, active: bool) {
        let _ = self.sandbox.set((detail, active));
    }
}

impl Hub {
    /// Every session state with how many loaded sessions are in it.
    fn sessions_by_state(&self) -> BTreeMap<&'static str, u64> {
        let mut by: BTreeMap<&'static str, u64> =
            SESSION_STATES.iter().map(|s| (s.as_str(), 0)).collect();
        for s in self.list_sessions(true).sessions {
            *by.entry(s.state.as_str()).or_default() += 1;
        }
        by
    }

    /// Every mission state with how many missions are in it.
    fn missions_by_state(&self) -> BTreeMap<&'static str, u64> {
        let mut by: BTreeMap<&'static str, u64> =
            MISSION_STATES.iter().map(|s| (s.as_str(), 0)).collect();
        for (state, n) in self.missions().count_by_state() {
            *by.entry(state.as_str()).or_default() += n;
        }
        by
    }

    /// The usage of every loaded session, summed.
    fn usage_total(&self) -> SessionUsage {
        let mut total = SessionUsage::default();
        for s in self.all_sessions() {
            total.merge(&s.snapshot().usage);
        }
        total
    }

    /// The Prometheus text of `/v1/metrics`.
    pub(crate) fn metrics_text(&self) -> String {
        let subs = self.subscribers();
        self.metrics().render(&Gauges {
            live_sessions: self.live_sessions(),
            sessions: self.sessions_by_state(),
            missions: self.missions_by_state(),
            subscribers: subs.total() as u64,
            queued_bytes: subs.queued_bytes(),
            dropped_subscribers: subs.dropped(),
            hook_runs: self.hooks().runs(),
            hook_failures: self.hooks().failures(),
        })
    }

    /// `daemon.status`.
    pub(crate) fn status_now(&self) -> DaemonStatus {
        let info = self.info();
        let nonzero = |m: BTreeMap<&'static str, u64>| -> BTreeMap<String, u64> {
            m.into_iter()
                .filter(|(_, n)| *n > 0)
                .map(|(k, n)| (k.to_string(), n))
                .collect()
        };
        let (sandbox, sandbox_active) = self
            .runtime()
            .sandbox
            .get()
            .cloned()
            .unwrap_or_else(|| ("not probed yet".into(), false));
        DaemonStatus {
            status: if self.shutdown_token().is_cancelled() {
                "stopping".into()
            } else {
                "ok".into()
            },
            version: info.version.clone(),
            daemon_id: info.id.clone(),
            pid: info.pid,
            started_at: info.started_at.clone(),
            uptime_s: self.metrics().uptime().as_secs(),
            listen: self.runtime().listen.get().cloned(),
            home: self.state().root().display().to_string(),
            sandbox,
            sandbox_active,
            sessions: nonzero(self.sessions_by_state()),
            missions: nonzero(self.missions_by_state()),
            usage: self.usage_total(),
            subscribers: self.subscribers().total() as u64,
            hooks_run: self.hooks().runs(),
            last_error: crate::logs::last_error(),
        }
    }

    /// `daemon.logs`: a page of the log files, waiting up to `wait_ms` for a first
    /// line when following from a cursor.
    pub(crate) async fn read_logs(&self, p: LogsParams) -> Result<LogPage, ApiError> {
        let mut q = LogQuery::parse(&p)?;
        let wait = Duration::from_millis(p.wait_ms.unwrap_or(0).min(LOGS_MAX_WAIT_MS));
        let deadline = tokio::time::Instant::now() + wait;
        let dir = self.state().path("logs");
        loop {
            let (d, query) = (dir.clone(), q.clone());
            let page = tokio::task::spawn_blocking(move || crate::logs::read(&d, &query))
                .await
                .map_err(|_| ApiError::internal("the log reader failed"))?
                .map_err(|e| ApiError::internal(format!("cannot read the logs: {e}")))?;
            let now = tokio::time::Instant::now();
            if !page.lines.is_empty() || !q.follows() || now >= deadline {
                return Ok(page);
            }
            // Nothing new yet: go on from where this read stopped.
            q.continue_from(&page.next);
            tokio::time::sleep(LOGS_POLL.min(deadline - now)).await;
        }
    }
}
