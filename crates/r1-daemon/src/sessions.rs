//! Sessions: the table of every session the daemon owns, their journals, their turn
//! runners, idempotent sends, pause/resume/cancel/kill, and reload after a restart.
//!
//! The journal is the truth. `sessions-index.json` is a cache for people and tools,
//! rewritten atomically (debounced) as sessions change; on start the daemon lists
//! `sessions/*/journal.ndjson` itself, so a session created just before a crash is
//! never lost to a stale index.

use std::collections::HashMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use r1_engine::{ChatMessage, Policy, Provider};
use r1_journal::{Ack, Journal, JournalError, JournalOptions, NewRecord};
use r1_proto::{
    ApiError, ErrorCode, EventKind, EventRecord, JournalPage, RepairResult, SendMessageParams,
    SendMessageResult, SessionList, SessionState, SessionView, StartSessionParams,
};
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc, watch, Notify, OnceCell};
use tokio_util::sync::CancellationToken;

use crate::fsutil::{now_rfc3339, random_hex, write_atomic};
use crate::Hub;

/// How many accepted messages may wait for their turn in one session.
const TURN_QUEUE: usize = 1024;
/// How often the index is rewritten at most.
const INDEX_DEBOUNCE: Duration = Duration::from_millis(250);
/// How many bytes of recent conversation a session keeps in memory as the provider's
/// context; older context stays in the journal only.
const HISTORY_BYTES: usize = 256 * 1024;
/// How many live records a session buffers for its followers; a follower further
/// behind reads the journal file instead.
const LIVE_BUFFER: usize = 256;
/// How often ended sessions are checked against the retention limits.
const RETENTION_PERIOD: Duration = Duration::from_secs(600);
/// How many journals are opened at once on start.
const RELOAD_CONCURRENCY: usize = 64;

/// The longest engine name a session may ask for.
const MAX_ENGINE_BYTES: usize = 64;
/// The longest model name a session may ask for; real ones are well under 100
/// (`meta-llama/Llama-3.1-70B-Instruct-Turbo`).
const MAX_MODEL_BYTES: usize = 200;
/// The longest session title.
const MAX_TITLE_BYTES: usize = 500;

/// Refuses an engine or model name that is empty, too long, or has characters no
/// provider uses in its names (letters, digits and `. _ - : / @ +` are allowed), so a
/// name is always safe to log, show and pass to a provider.
fn check_name(what: &str, name: &str, max: usize) -> Result<(), ApiError> {
    if name.is_empty() || name.len() > max {
        return Err(ApiError::validation(format!(
            "{what} must be 1 to {max} bytes, got {}",
            name.len()
        )));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "._-:/@+".contains(*c)))
    {
        return Err(ApiError::validation(format!(
            "{what} may hold only letters, digits and . _ - : / @ +, found {c:?}"
        )));
    }
    Ok(())
}

/// Refuses a title that is too long or holds control characters (which would garble
/// terminals and logs).
fn check_title(title: &str) -> Result<(), ApiError> {
    if title.len() > MAX_TITLE_BYTES {
        return Err(ApiError::validation(format!(
            "title must be at most {MAX_TITLE_BYTES} bytes, got {}",
            title.len()
        )));
    }
    if title.chars().any(char::is_control) {
        return Err(ApiError::validation(
            "title must not contain control characters (newlines, tabs, escapes)",
        ));
    }
    Ok(())
}

/// One session.
pub struct Session {
    /// `ses_…`.
    pub id: String,
    pub(crate) workdir: String,
    pub(crate) engine: String,
    pub(crate) model: Option<String>,
    title: Option<String>,
    created_at: String,
    /// `None` when the session is quarantined (its journal is corrupt or unreadable).
    pub(crate) journal: Option<Journal>,
    /// A quarantined session's journal, readable up to its last good record; nothing is
    /// ever written through it.
    pub(crate) readonly: OnceCell<r1_journal::ReadOnlyJournal>,
    pub(crate) meta: Mutex<Meta>,
    pub(crate) jobs: mpsc::Sender<Job>,
    pub(crate) wake: Notify,
    pub(crate) running: watch::Sender<bool>,
    /// Per-tool policy overrides chosen at start.
    pub(crate) policy: HashMap<String, Policy>,
    /// The session's token budget, if any.
    pub(crate) token_budget: Option<u64>,
    pub(crate) tokens_used: std::sync::atomic::AtomicU64,
    pub(crate) approvals: Mutex<Vec<crate::agent::Approval>>,
    pub(crate) lanes: Mutex<Vec<crate::agent::Lane>>,
    /// The session's provider, built on its first turn.
    pub(crate) provider: OnceCell<Arc<dyn Provider>>,
    /// The session's MCP servers, started on its first turn.
    pub(crate) mcp: OnceCell<Arc<r1_engine::McpPool>>,
    /// Whether the in-memory context was rebuilt from the journal (after a reload).
    pub(crate) history_loaded: std::sync::atomic::AtomicBool,
    idem: Mutex<HashMap<String, Arc<OnceCell<SendMessageResult>>>>,
    idem_loaded: OnceCell<()>,
    /// Live records for followers, created on first subscription so an unwatched
    /// session holds no broadcast buffer.
    live: Mutex<Option<broadcast::Sender<EventRecord>>>,
}

pub(crate) struct Meta {
    pub(crate) state: SessionState,
    pub(crate) reattachable: bool,
    pub(crate) error: Option<String>,
    pub(crate) turn: Option<CancellationToken>,
    pub(crate) history: Vec<ChatMessage>,
}

/// Work for a session's turn runner.
pub(crate) struct Job {
    /// The user message this turn answers.
    pub(crate) message_id: String,
    /// The user's text; `None` for a continuation after a restart.
    pub(crate) text: Option<String>,
    /// A tool call decided after a restart, to run (or report as denied) before the
    /// model is asked again.
    pub(crate) resume: Option<(r1_engine::ToolCall, r1_engine::Authorization)>,
}

/// The session table, part of the hub.
#[derive(Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Arc<Session>>>,
    index_dirty: Notify,
    pub(crate) journal_opts: JournalOptions,
    /// Repairs run one at a time (each swaps a session in the table).
    repair: tokio::sync::Mutex<()>,
}

impl Sessions {
    /// An empty table whose journals use `journal_opts`.
    pub fn new(journal_opts: JournalOptions) -> Sessions {
        Sessions {
            journal_opts,
            ..Sessions::default()
        }
    }
}

impl Session {
    pub(crate) fn meta(&self) -> std::sync::MutexGuard<'_, Meta> {
        // A poisoned lock means a panic elsewhere already; the data is still usable.
        self.meta.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A receiver of every record appended from now on. Records may arrive out of
    /// order when appenders race; followers detect the gap and read the file.
    pub fn subscribe(&self) -> broadcast::Receiver<EventRecord> {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        match live.as_ref() {
            Some(tx) => tx.subscribe(),
            None => {
                let (tx, rx) = broadcast::channel(LIVE_BUFFER);
                *live = Some(tx);
                rx
            }
        }
    }

    fn publish(&self, r: &EventRecord) {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = live.as_ref() {
            if tx.send(r.clone()).is_err() {
                // Nobody listens any more: free the buffer.
                *live = None;
            }
        }
    }

    /// Ends every follower's live feed (they drain the file and stop).
    fn close_live(&self) {
        *self.live.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// The session's current state.
    pub fn state(&self) -> SessionState {
        self.meta().state
    }

    /// Ok when the session's records can be read: a live journal, or a quarantined
    /// one's valid prefix.
    pub fn readable(&self) -> Result<(), ApiError> {
        if self.journal.is_none() && self.readonly.get().is_some() {
            return Ok(());
        }
        self.journal().map(|_| ())
    }

    /// The journal, or the quarantine error.
    pub fn journal(&self) -> Result<&Journal, ApiError> {
        self.journal.as_ref().ok_or_else(|| {
            ApiError::new(
                ErrorCode::CrashRecovery,
                format!(
                    "session {} is quarantined: {}",
                    self.id,
                    self.meta().error.clone().unwrap_or_default()
                ),
            )
        })
    }

    /// The session as clients see it.
    pub fn view(&self) -> SessionView {
        let m = self.meta();
        SessionView {
            id: self.id.clone(),
            workdir: self.workdir.clone(),
            engine: self.engine.clone(),
            model: self.model.clone(),
            title: self.title.clone(),
            state: m.state,
            reattachable: m.reattachable,
            created_at: self.created_at.clone(),
            last_seq: match (&self.journal, self.readonly.get()) {
                (Some(j), _) => j.last_seq(),
                (None, Some(r)) => r.last_seq(),
                (None, None) => 0,
            },
            pending_approvals: self.pending_approval_ids(),
            error: m.error.clone(),
        }
    }
}

/// Maps a journal failure to the wire: a full disk is 507, a failed journal 503.
pub fn journal_error(e: &JournalError) -> ApiError {
    match e {
        JournalError::NoSpace { .. } => ApiError::new(
            ErrorCode::CrashRecovery,
            "the disk is full: nothing was recorded; free some space and send again",
        )
        .with_status(507),
        JournalError::Failed { .. } => ApiError::new(
            ErrorCode::CrashRecovery,
            "the session's journal failed to sync to disk; the session is read-only (state error)",
        ),
        JournalError::Corrupt {
            last_good_seq,
            offset,
            ..
        } => ApiError::new(
            ErrorCode::CrashRecovery,
            format!(
                "the session's journal is corrupt after seq {last_good_seq} (byte {offset}); the session is quarantined: its records up to seq {last_good_seq} stay readable, writes are refused; `r1 ctl sessions repair ID` keeps a .broken copy and cuts the journal back to seq {last_good_seq}"
            ),
        ),
        JournalError::Closed => ApiError::conflict("the session has ended"),
        JournalError::Io { what, .. } => {
            tracing::error!("journal i/o failed: {e}");
            ApiError::internal(format!("journal i/o failed while {what}"))
        }
    }
}

fn state_data(state: SessionState) -> Value {
    json!({"state": state.as_str()})
}

impl Hub {
    fn sessions(&self) -> &Sessions {
        self.sessions_table()
    }

    /// The session `id`, or `not_found`.
    pub fn session(&self, id: &str) -> Result<Arc<Session>, ApiError> {
        let map = self
            .sessions()
            .map
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        map.get(id)
            .cloned()
            .ok_or_else(|| ApiError::not_found(format!("session {id} not found")))
    }

    /// How many sessions are loaded and not ended.
    pub fn live_sessions(&self) -> u64 {
        let map = self
            .sessions()
            .map
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        map.values()
            .filter(|s| s.state() != SessionState::Ended)
            .count() as u64
    }

    fn all_sessions(&self) -> Vec<Arc<Session>> {
        let map = self
            .sessions()
            .map
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<_> = map.values().cloned().collect();
        v.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        v
    }

    /// Appends one record to a session's journal. A failed journal turns the session
    /// to `error`.
    pub(crate) async fn record(
        &self,
        s: &Session,
        kind: EventKind,
        lane: &str,
        data: Value,
        durable: bool,
    ) -> Result<EventRecord, ApiError> {
        let journal = s.journal()?;
        let ack = if durable { Ack::Durable } else { Ack::Appended };
        match journal.append(NewRecord::new(kind, lane, data), ack).await {
            Ok(r) => {
                s.publish(&r);
                Ok(r)
            }
            Err(e) => {
                if let JournalError::Failed { reason } = &e {
                    let mut m = s.meta();
                    if m.state != SessionState::Error {
                        tracing::error!(session = %s.id, "journal failed: {reason}");
                        m.state = SessionState::Error;
                        m.error = Some("the journal failed to sync to disk".into());
                        if let Some(t) = m.turn.take() {
                            t.cancel();
                        }
                    }
                    drop(m);
                    self.mark_index_dirty();
                }
                Err(journal_error(&e))
            }
        }
    }

    /// Journals a `session.state` record for a state already set, and tells the bus.
    async fn announce_state(&self, s: &Session, state: SessionState) -> Result<(), ApiError> {
        self.record(s, EventKind::SessionState, "main", state_data(state), false)
            .await?;
        self.bus().publish(
            "session.state",
            json!({"session_id": s.id, "state": state.as_str()}),
        );
        self.mark_index_dirty();
        Ok(())
    }

    /// Sets the state and journals a `session.state` record for it.
    pub(crate) async fn set_state(&self, s: &Session, state: SessionState) -> Result<(), ApiError> {
        s.meta().state = state;
        self.announce_state(s, state).await
    }

    fn engine(&self, name: &str) -> Result<&crate::engines::Engine, ApiError> {
        let all = self.engine_list();
        let names: Vec<&str> = all.iter().map(|e| e.name.as_str()).collect();
        all.iter().find(|e| e.name == name).ok_or_else(|| {
            ApiError::validation(format!(
                "unknown engine {name:?}; available engines: {}",
                names.join(", ")
            ))
        })
    }

    /// The provider for a session's turns, built on its first turn and kept (one HTTP
    /// client per session, not one per turn).
    pub(crate) async fn provider_for(&self, s: &Session) -> Result<Arc<dyn Provider>, ApiError> {
        s.provider
            .get_or_try_init(|| async {
                let e = self.engine(&s.engine)?;
                crate::engines::provider(e, s.model.as_deref(), Path::new(&s.workdir))
            })
            .await
            .cloned()
    }

    fn validate_workdir(&self, workdir: &str) -> Result<PathBuf, ApiError> {
        let p = Path::new(workdir);
        if !p.is_absolute() {
            return Err(ApiError::validation(format!(
                "workdir must be an absolute path, got {workdir:?}"
            )));
        }
        let canon = std::fs::canonicalize(p)
            .map_err(|_| ApiError::validation(format!("workdir {workdir} does not exist")))?;
        if !canon.is_dir() {
            return Err(ApiError::validation(format!(
                "workdir {workdir} is not a directory"
            )));
        }
        let home = std::fs::canonicalize(self.state().root())
            .unwrap_or_else(|_| self.state().root().to_path_buf());
        if canon.starts_with(&home) {
            return Err(ApiError::validation(format!(
                "workdir {workdir} is inside the daemon's state directory; choose a project directory"
            )));
        }
        Ok(canon)
    }

    /// `session.start`.
    pub async fn start_session(&self, params: StartSessionParams) -> Result<SessionView, ApiError> {
        let workdir = self.validate_workdir(&params.workdir)?;
        let engine = match params.engine.clone() {
            Some(e) => e,
            None => self.default_engine_name().to_string(),
        };
        check_name("engine", &engine, MAX_ENGINE_BYTES)?;
        if let Some(model) = &params.model {
            check_name("model", model, MAX_MODEL_BYTES)?;
        }
        if let Some(title) = &params.title {
            check_title(title)?;
        }
        let e = self.engine(&engine)?;
        crate::engines::check_start(e, params.model.as_deref())?;
        let policy = parse_policy(params.policy.as_ref())?;
        let id = format!(
            "ses_{}",
            random_hex(8).map_err(|_| ApiError::internal("no randomness"))?
        );
        let dir = self.state().path("sessions").join(&id);
        std::fs::create_dir(&dir).map_err(|e| {
            tracing::error!("cannot create {}: {e}", dir.display());
            ApiError::internal("could not create the session directory")
        })?;
        let journal = Journal::create(
            &dir.join("journal.ndjson"),
            self.sessions().journal_opts.clone(),
        )
        .await
        .map_err(|e| journal_error(&e))?;
        let created_at = now_rfc3339();
        let workdir = workdir.display().to_string();
        let data = json!({
            "id": id, "workdir": workdir, "engine": engine, "model": params.model,
            "title": params.title, "created_at": created_at,
            "policy": policy.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<serde_json::Map<_, _>>(),
            "token_budget": params.token_budget,
        });
        let session =
            self.insert_from_meta(&id, &data, Some(journal), SessionState::Idle, false, None);
        // A new session has no history to rebuild from its journal.
        session
            .history_loaded
            .store(true, std::sync::atomic::Ordering::Release);
        if let Err(e) = self
            .record(&session, EventKind::SessionCreated, "main", data, true)
            .await
        {
            self.sessions()
                .map
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
        self.bus().publish(
            "session.created",
            json!({"session_id": id, "workdir": workdir, "engine": engine}),
        );
        self.mark_index_dirty();
        Ok(session.view())
    }

    /// `session.send`.
    pub async fn send_message(
        &self,
        id: &str,
        params: SendMessageParams,
    ) -> Result<SendMessageResult, ApiError> {
        let s = self.session(id)?;
        if params.text.trim().is_empty() {
            return Err(ApiError::validation("text must not be empty"));
        }
        let max = self.config().limits.max_message_bytes;
        if params.text.len() > max {
            return Err(ApiError::validation(format!(
                "text is {} bytes; the limit is {max} ([limits] max_message_bytes)",
                params.text.len()
            )));
        }
        check_accepts(&s)?;
        let Some(key) = params.client_message_id.clone() else {
            return self.append_user_message(&s, params).await;
        };
        if key.is_empty() || key.len() > 200 {
            return Err(ApiError::validation(
                "client_message_id must be 1 to 200 bytes",
            ));
        }
        self.load_idempotency(&s).await?;
        let cell = {
            let mut idem = s.idem.lock().unwrap_or_else(|p| p.into_inner());
            idem.entry(key.clone()).or_default().clone()
        };
        let mut first = false;
        let result = cell
            .get_or_try_init(|| {
                first = true;
                self.append_user_message(&s, params)
            })
            .await;
        match result {
            Ok(r) if first => Ok(r.clone()),
            Ok(r) => Ok(SendMessageResult {
                duplicate: true,
                ..r.clone()
            }),
            Err(e) => {
                // Nothing was recorded: forget the key so a retry can succeed.
                let mut idem = s.idem.lock().unwrap_or_else(|p| p.into_inner());
                if idem.get(&key).is_some_and(|c| c.get().is_none()) {
                    idem.remove(&key);
                }
                Err(e)
            }
        }
    }

    /// Rebuilds the idempotency keys of a reloaded session from its journal, once.
    async fn load_idempotency(&self, s: &Arc<Session>) -> Result<(), ApiError> {
        s.idem_loaded
            .get_or_try_init(|| async {
                let journal = s.journal()?;
                let mut since = 1;
                loop {
                    let page = journal
                        .read_from(since, 4096)
                        .await
                        .map_err(|e| journal_error(&e))?;
                    let Some(last) = page.last() else { break };
                    since = last.seq + 1;
                    let mut idem = s.idem.lock().unwrap_or_else(|p| p.into_inner());
                    for r in &page {
                        if r.kind != EventKind::SessionMessage || r.data["role"] != "user" {
                            continue;
                        }
                        if let (Some(key), Some(mid)) = (
                            r.data["client_message_id"].as_str(),
                            r.data["message_id"].as_str(),
                        ) {
                            let done = SendMessageResult {
                                message_id: mid.to_string(),
                                seq: r.seq,
                                duplicate: false,
                            };
                            idem.entry(key.to_string())
                                .or_insert_with(|| Arc::new(OnceCell::new_with(Some(done))));
                        }
                    }
                }
                Ok::<(), ApiError>(())
            })
            .await
            .map(|_| ())
    }

    async fn append_user_message(
        &self,
        s: &Arc<Session>,
        params: SendMessageParams,
    ) -> Result<SendMessageResult, ApiError> {
        let message_id = format!(
            "msg_{}",
            random_hex(8).map_err(|_| ApiError::internal("no randomness"))?
        );
        let data = json!({
            "role": "user",
            "text": params.text,
            "message_id": message_id,
            "client_message_id": params.client_message_id,
        });
        let rec = self
            .record(s, EventKind::SessionMessage, "main", data, true)
            .await?;
        let job = Job {
            message_id: message_id.clone(),
            text: Some(params.text),
            resume: None,
        };
        if s.jobs.try_send(job).is_err() {
            // Recorded but not queued: the turn never runs, and the journal says why.
            let _ = self
                .record(s, EventKind::SessionError, "main", json!({"message": "too many queued messages; this one was recorded but will not be answered", "message_id": message_id}), true)
                .await;
        }
        Ok(SendMessageResult {
            message_id,
            seq: rec.seq,
            duplicate: false,
        })
    }

    /// Cancels the running turn, if any, and waits until it has stopped.
    async fn stop_turn(&self, s: &Session) {
        let token = s.meta().turn.clone();
        if let Some(t) = token {
            t.cancel();
        }
        let mut rx = s.running.subscribe();
        let _ = rx.wait_for(|running| !running).await;
    }

    /// `session.cancel`.
    pub async fn cancel_session(&self, id: &str) -> Result<SessionView, ApiError> {
        let s = self.session(id)?;
        self.stop_turn(&s).await;
        Ok(s.view())
    }

    /// `session.pause`: stops the running turn and holds queued messages.
    pub async fn pause_session(&self, id: &str, reason: &str) -> Result<SessionView, ApiError> {
        let s = self.session(id)?;
        {
            let mut m = s.meta();
            match m.state {
                SessionState::Paused => {
                    drop(m);
                    return Ok(s.view());
                }
                SessionState::Ended => {
                    return Err(ApiError::conflict(format!("session {id} has ended")))
                }
                SessionState::Error => {
                    return Err(ApiError::new(
                        ErrorCode::CrashRecovery,
                        format!(
                            "session {id} is in error: {}",
                            m.error.clone().unwrap_or_default()
                        ),
                    ))
                }
                _ => m.state = SessionState::Paused,
            }
        }
        self.stop_turn(&s).await;
        self.record(
            &s,
            EventKind::SessionPaused,
            "main",
            json!({"reason": reason}),
            true,
        )
        .await?;
        self.announce_state(&s, SessionState::Paused).await?;
        Ok(s.view())
    }

    /// `session.resume`.
    pub async fn resume_session(&self, id: &str) -> Result<SessionView, ApiError> {
        let s = self.session(id)?;
        {
            let mut m = s.meta();
            match m.state {
                SessionState::Paused => {
                    m.state = SessionState::Idle;
                    m.reattachable = false;
                }
                SessionState::Ended => {
                    return Err(ApiError::conflict(format!("session {id} has ended")))
                }
                SessionState::Error => {
                    return Err(ApiError::new(
                        ErrorCode::CrashRecovery,
                        format!(
                            "session {id} is in error: {}",
                            m.error.clone().unwrap_or_default()
                        ),
                    ))
                }
                _ => {
                    drop(m);
                    return Ok(s.view());
                }
            }
        }
        self.record(&s, EventKind::SessionResumed, "main", json!({}), true)
            .await?;
        self.announce_state(&s, SessionState::Idle).await?;
        s.wake.notify_waiters();
        Ok(s.view())
    }

    /// `session.kill`: ends the session (idempotent).
    pub async fn kill_session(&self, id: &str) -> Result<SessionView, ApiError> {
        let s = self.session(id)?;
        let was = {
            let mut m = s.meta();
            let was = m.state;
            if was != SessionState::Ended {
                m.state = SessionState::Ended;
            }
            was
        };
        if was == SessionState::Ended {
            return Ok(s.view());
        }
        self.stop_turn(&s).await;
        s.wake.notify_waiters();
        if s.journal.is_some() && was != SessionState::Error {
            self.record(&s, EventKind::SessionEnded, "main", json!({}), true)
                .await?;
            if let Ok(j) = s.journal() {
                let _ = j.close().await;
            }
        }
        s.close_live();
        self.bus()
            .publish("session.ended", json!({"session_id": s.id}));
        self.mark_index_dirty();
        Ok(s.view())
    }

    /// `session.list`.
    pub fn list_sessions(&self) -> SessionList {
        SessionList {
            sessions: self.all_sessions().iter().map(|s| s.view()).collect(),
        }
    }

    /// `session.journal`.
    pub async fn journal_page(
        &self,
        id: &str,
        since: u64,
        limit: usize,
    ) -> Result<JournalPage, ApiError> {
        let s = self.session(id)?;
        let limit = limit.clamp(1, 10_000);
        let records = match (&s.journal, s.readonly.get()) {
            (None, Some(readonly)) => readonly.read_from(since.max(1), limit).await,
            _ => s.journal()?.read_from(since.max(1), limit).await,
        }
        .map_err(|e| journal_error(&e))?;
        let next_seq = records.last().map_or(since.max(1), |r| r.seq + 1);
        Ok(JournalPage { records, next_seq })
    }

    /// `session.repair`: cuts a quarantined session's journal back to its last good
    /// record (`r1_journal::repair` keeps a `.broken` copy first) and loads it again, as
    /// a reload would: `paused` and reattachable. A session whose journal is open is
    /// healthy by construction and is left alone (repair never runs under a writer).
    pub async fn repair_session(&self, id: &str) -> Result<RepairResult, ApiError> {
        let _one_at_a_time = self.sessions().repair.lock().await;
        let s = self.session(id)?;
        if let Some(j) = &s.journal {
            return Ok(RepairResult {
                last_seq: j.last_seq(),
                session: s.view(),
                repaired: false,
                dropped_bytes: 0,
                broken_copy: None,
            });
        }
        let path = self
            .state()
            .path("sessions")
            .join(&s.id)
            .join("journal.ndjson");
        let report = r1_journal::repair(&path, self.sessions().journal_opts.clone())
            .await
            .map_err(|e| {
                tracing::error!(session = %id, "repair failed: {e}");
                journal_error(&e)
            })?;
        tracing::warn!(
            session = %id,
            last_seq = report.last_seq,
            dropped_bytes = report.dropped_bytes,
            copy = ?report.broken_copy,
            "journal repaired"
        );
        self.sessions()
            .map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&s.id);
        drop(s);
        self.reload_one(id.to_string()).await;
        let s = self.session(id)?;
        self.bus().publish(
            "session.repaired",
            json!({"session_id": id, "last_seq": report.last_seq, "dropped_bytes": report.dropped_bytes}),
        );
        self.mark_index_dirty();
        Ok(RepairResult {
            session: s.view(),
            repaired: !report.was_healthy(),
            last_seq: report.last_seq,
            dropped_bytes: report.dropped_bytes,
            broken_copy: report.broken_copy.map(|p| p.display().to_string()),
        })
    }

    fn mark_index_dirty(&self) {
        self.sessions().index_dirty.notify_one();
    }

    /// Rewrites `sessions-index.json` now.
    pub fn write_index(&self) {
        let mut index = serde_json::Map::new();
        for s in self.all_sessions() {
            let v = s.view();
            index.insert(
                v.id.clone(),
                json!({"workdir": v.workdir, "engine": v.engine, "created_at": v.created_at,
                       "state": v.state.as_str(), "last_seq": v.last_seq}),
            );
        }
        let bytes = serde_json::to_vec_pretty(&Value::Object(index)).unwrap_or_default();
        if let Err(e) = write_atomic(&self.state().path("sessions-index.json"), &bytes) {
            tracing::warn!("cannot write sessions-index.json: {e}");
        }
    }

    /// Rewrites the index whenever it is marked dirty, at most every 250 ms.
    pub async fn index_writer(self) {
        let stop = self.shutdown_token().clone();
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = self.sessions().index_dirty.notified() => {}
            }
            tokio::time::sleep(INDEX_DEBOUNCE).await;
            let hub = self.clone();
            let _ = tokio::task::spawn_blocking(move || hub.write_index()).await;
        }
    }

    /// Graceful shutdown: every live session is paused (`session.paused`, durable) and
    /// its journal closed, then the index is written.
    pub async fn pause_all_for_shutdown(&self) {
        let live: Vec<_> = self
            .all_sessions()
            .into_iter()
            .filter(|s| {
                s.journal.is_some()
                    && !matches!(s.state(), SessionState::Ended | SessionState::Error)
            })
            .collect();
        let hub = self.clone();
        futures_util::stream::iter(live)
            .for_each_concurrent(RELOAD_CONCURRENCY, |s| {
                let hub = hub.clone();
                async move {
                    if s.state() != SessionState::Paused {
                        if let Err(e) = hub.pause_session(&s.id, "daemon shutdown").await {
                            tracing::warn!(session = %s.id, "could not pause for shutdown: {e}");
                        }
                    }
                    if let Some(pool) = s.mcp.get() {
                        pool.shutdown().await;
                    }
                    if let Ok(j) = s.journal() {
                        let _ = j.close().await;
                    }
                }
            })
            .await;
        self.write_index();
    }

    /// Reloads every session found under `sessions/`: ended ones stay ended; live ones
    /// come back `paused` and reattachable, a turn that was running is closed as an
    /// error (never re-run), and each gets a `daemon.reloaded` record.
    pub async fn reload_sessions(&self) {
        let dir = self.state().path("sessions");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return;
        };
        let ids: Vec<String> = entries
            .flatten()
            .filter(|e| e.path().join("journal.ndjson").exists())
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .filter(|n| n.starts_with("ses_"))
            .collect();
        let count = ids.len();
        let hub = self.clone();
        futures_util::stream::iter(ids)
            .for_each_concurrent(RELOAD_CONCURRENCY, |id| {
                let hub = hub.clone();
                async move { hub.reload_one(id).await }
            })
            .await;
        if count > 0 {
            self.bus().publish(
                "daemon.reloaded",
                json!({"daemon_id": self.info().id, "sessions": count}),
            );
            self.write_index();
        }
        tracing::info!(sessions = count, "sessions reloaded");
    }

    async fn reload_one(&self, id: String) {
        let path = self
            .state()
            .path("sessions")
            .join(&id)
            .join("journal.ndjson");
        let opened = Journal::open(&path, self.sessions().journal_opts.clone()).await;
        let (journal, report) = match opened {
            Ok(x) => x,
            Err(e) => {
                tracing::error!(session = %id, "quarantined: {e}");
                // Corruption before the tail: the records before it stay readable.
                let readonly = match &e {
                    JournalError::Corrupt { .. } => r1_journal::ReadOnlyJournal::open(
                        &path,
                        self.sessions().journal_opts.clone(),
                    )
                    .await
                    .ok()
                    .map(|(r, _)| r),
                    _ => None,
                };
                let first = match &readonly {
                    Some(r) => r
                        .read_from(1, 1)
                        .await
                        .ok()
                        .and_then(|v| v.into_iter().next()),
                    None => None,
                };
                let meta = first
                    .or_else(|| read_first_record(&path))
                    .filter(|r| r.kind == EventKind::SessionCreated)
                    .map(|r| r.data)
                    .unwrap_or(Value::Null);
                let s = self.insert_from_meta(
                    &id,
                    &meta,
                    None,
                    SessionState::Error,
                    false,
                    Some(format!("quarantined: {}", journal_error(&e).message)),
                );
                if let Some(r) = readonly {
                    let _ = s.readonly.set(r);
                }
                return;
            }
        };
        if let Some(r) = &report.repaired {
            tracing::warn!(session = %id, truncated = r.truncated_bytes, copy = %r.broken_copy.display(), "torn journal tail repaired");
        }
        let meta = match journal.read_from(1, 1).await {
            Ok(v)
                if v.first()
                    .is_some_and(|r| r.kind == EventKind::SessionCreated) =>
            {
                v[0].data.clone()
            }
            _ => {
                self.insert_from_meta(
                    &id,
                    &Value::Null,
                    None,
                    SessionState::Error,
                    false,
                    Some("quarantined: the journal does not start with session.created".into()),
                );
                return;
            }
        };
        let last = report.last_record.as_ref();
        if last.is_some_and(|r| r.kind == EventKind::SessionEnded) {
            let _ = journal.close().await;
            self.insert_from_meta(&id, &meta, Some(journal), SessionState::Ended, false, None);
            return;
        }
        let s = self.insert_from_meta(&id, &meta, Some(journal), SessionState::Paused, true, None);
        let pending = crate::agent::restore_pending_approvals(&s).await;
        let in_flight = pending == 0
            && last.is_some_and(|r| match r.kind {
                EventKind::SessionDelta
                | EventKind::ToolStarted
                | EventKind::LaneDelta
                | EventKind::LaneCreated => true,
                EventKind::SessionState => r.data["state"] == "busy",
                EventKind::SessionMessage => true,
                EventKind::ToolCompleted | EventKind::LaneStatus | EventKind::ApprovalResolved => {
                    true
                }
                _ => false,
            });
        if in_flight {
            let _ = self
                .record(
                    &s,
                    EventKind::SessionError,
                    "main",
                    json!({"message": "interrupted by daemon restart", "interrupted": true}),
                    true,
                )
                .await;
        }
        if !last.is_some_and(|r| r.kind == EventKind::SessionPaused) {
            let _ = self
                .record(
                    &s,
                    EventKind::SessionPaused,
                    "main",
                    json!({"reason": "daemon restart"}),
                    true,
                )
                .await;
        }
        let _ = self
            .record(
                &s,
                EventKind::DaemonReloaded,
                "main",
                json!({"daemon_id": self.info().id, "pending_approvals": pending}),
                false,
            )
            .await;
    }

    /// Retention: removes ended sessions whose journal was last written longer ago than
    /// `retention.max_age_hours`, or whose journal is larger than
    /// `retention.max_session_mb`. Live sessions are never pruned.
    pub fn prune_ended(&self) -> usize {
        let r = &self.config().retention;
        let max_age = Duration::from_secs(r.max_age_hours.saturating_mul(3600));
        let max_bytes = r.max_session_mb.saturating_mul(1024 * 1024);
        let mut pruned = 0;
        for s in self.all_sessions() {
            if s.state() != SessionState::Ended {
                continue;
            }
            let dir = self.state().path("sessions").join(&s.id);
            let Ok(md) = std::fs::metadata(dir.join("journal.ndjson")) else {
                continue;
            };
            let age = md
                .modified()
                .ok()
                .and_then(|m| m.elapsed().ok())
                .unwrap_or_default();
            if age < max_age && md.len() <= max_bytes {
                continue;
            }
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                tracing::warn!(session = %s.id, "cannot prune {}: {e}", dir.display());
                continue;
            }
            self.sessions()
                .map
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&s.id);
            tracing::info!(session = %s.id, age_s = age.as_secs(), bytes = md.len(), "pruned ended session");
            pruned += 1;
        }
        if pruned > 0 {
            self.mark_index_dirty();
        }
        pruned
    }

    /// Prunes ended sessions now and then every ten minutes.
    pub async fn retention_task(self) {
        let stop = self.shutdown_token().clone();
        loop {
            let hub = self.clone();
            let _ = tokio::task::spawn_blocking(move || hub.prune_ended()).await;
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(RETENTION_PERIOD) => {}
            }
        }
    }

    fn insert_from_meta(
        &self,
        id: &str,
        meta: &Value,
        journal: Option<Journal>,
        state: SessionState,
        reattachable: bool,
        error: Option<String>,
    ) -> Arc<Session> {
        let text = |k: &str| meta[k].as_str().map(str::to_string);
        let policy: HashMap<String, Policy> = meta["policy"]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| {
                        serde_json::from_value(v.clone())
                            .ok()
                            .map(|p| (k.clone(), p))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let (jobs, rx) = mpsc::channel(TURN_QUEUE);
        let (running, _) = watch::channel(false);
        let runs = journal.is_some() && state != SessionState::Ended;
        let s = Arc::new(Session {
            id: id.to_string(),
            workdir: text("workdir").unwrap_or_default(),
            engine: text("engine").unwrap_or_else(|| "echo".into()),
            model: text("model"),
            title: text("title"),
            created_at: text("created_at").unwrap_or_default(),
            journal,
            readonly: OnceCell::new(),
            meta: Mutex::new(Meta {
                state,
                reattachable,
                error,
                turn: None,
                history: Vec::new(),
            }),
            jobs,
            wake: Notify::new(),
            running,
            policy,
            token_budget: meta["token_budget"].as_u64(),
            tokens_used: std::sync::atomic::AtomicU64::new(0),
            approvals: Mutex::new(Vec::new()),
            lanes: Mutex::new(Vec::new()),
            history_loaded: std::sync::atomic::AtomicBool::new(false),
            mcp: OnceCell::new(),
            provider: OnceCell::new(),
            idem: Mutex::new(HashMap::new()),
            idem_loaded: OnceCell::new(),
            live: Mutex::new(None),
        });
        self.sessions()
            .map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_string(), s.clone());
        if runs {
            tokio::spawn(crate::agent::run_turns(self.clone(), s.clone(), rx));
        }
        s
    }
}

/// Reads a policy map from the wire (`allow`, `ask`, `deny` per tool).
fn parse_policy(
    p: Option<&std::collections::BTreeMap<String, String>>,
) -> Result<HashMap<String, Policy>, ApiError> {
    let mut out = HashMap::new();
    for (tool, v) in p.into_iter().flatten() {
        let policy = match v.as_str() {
            "allow" => Policy::Allow,
            "ask" => Policy::Ask,
            "deny" => Policy::Deny,
            other => {
                return Err(ApiError::validation(format!(
                    "policy for {tool} must be allow, ask or deny, not {other:?}"
                )))
            }
        };
        out.insert(tool.clone(), policy);
    }
    Ok(out)
}

/// Refuses a send to a session that cannot take one.
fn check_accepts(s: &Session) -> Result<(), ApiError> {
    let m = s.meta();
    match m.state {
        SessionState::Ended => Err(ApiError::conflict(format!("session {} has ended", s.id))),
        SessionState::Paused => Err(ApiError::conflict(format!(
            "session {} is paused; resume it first",
            s.id
        ))),
        SessionState::Error => Err(ApiError::new(
            ErrorCode::CrashRecovery,
            format!(
                "session {} is in error: {}",
                s.id,
                m.error.clone().unwrap_or_default()
            ),
        )),
        _ => Ok(()),
    }
}

/// The first record of a journal file, read without the journal machinery (for the
/// metadata of a quarantined session).
fn read_first_record(path: &Path) -> Option<EventRecord> {
    use std::io::BufRead;
    let f = std::fs::File::open(path).ok()?;
    let mut line = String::new();
    std::io::BufReader::new(f)
        .take(1 << 20)
        .read_line(&mut line)
        .ok()?;
    serde_json::from_str(&line).ok()
}

/// Drops the oldest messages until the context fits [`HISTORY_BYTES`] (the newest
/// message always stays).
pub(crate) fn trim_history(history: &mut Vec<ChatMessage>) {
    let mut total: usize = history.iter().map(|m| m.text.len()).sum();
    let mut drop = 0;
    while total > HISTORY_BYTES && drop + 1 < history.len() {
        total -= history[drop].text.len();
        drop += 1;
    }
    history.drain(..drop);
}
