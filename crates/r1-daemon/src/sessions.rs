//! Sessions: the table of every session the daemon owns, their journals, their turn
//! runners, idempotent sends, pause/resume/cancel/kill, and reload after a restart.
//!
//! The journal is the truth, and the `sessions/` directory is the index of sessions
//! (`crate::index`): on start the daemon lists `sessions/*/journal.ndjson`, so a
//! session created just before a crash is never lost, and creating one rewrites
//! nothing.

use std::collections::HashMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use r1_engine::{ChatMessage, Policy, Provider};
use r1_journal::{Ack, Journal, JournalError, JournalOptions, NewRecord};
use r1_proto::events::{
    bus, DaemonReloaded, SessionCreated, SessionError, SessionPaused, SessionStateChanged,
};
use r1_proto::{
    ApiError, ErrorCode, EventData, EventKind, EventRecord, JournalPage, RepairResult,
    SendMessageParams, SendMessageResult, SessionList, SessionState, SessionView,
    StartSessionParams,
};
use serde_json::Value;
use tokio::sync::{watch, OnceCell};
use tokio_util::sync::CancellationToken;

use crate::fsutil::{now_rfc3339, random_hex};
use crate::index::AddError;
use crate::transition::{Command, Core};
use crate::Hub;

/// How many bytes of recent conversation a session keeps in memory as the provider's
/// context; older context stays in the journal only.
const HISTORY_BYTES: usize = 256 * 1024;
/// How often ended sessions are checked against the retention limits.
const RETENTION_PERIOD: Duration = Duration::from_secs(600);
/// How many journals are opened at once on start.
const RELOAD_CONCURRENCY: usize = 64;
/// At most this many blocking threads check and fold journals at daemon start.
const RELOAD_WORKERS: usize = 4;
/// While a journal is folded at load, the conversation is trimmed whenever it reaches
/// this many messages.
const TRIM_EVERY: usize = 4096;

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
pub(crate) fn check_title(title: &str) -> Result<(), ApiError> {
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
    /// The worktree (`wt_…`) it works in, when started with one.
    worktree_id: Option<String>,
    /// `None` when the session is quarantined (its journal is corrupt or unreadable).
    pub(crate) journal: Option<Journal>,
    /// A quarantined session's journal, readable up to its last good record; nothing is
    /// ever written through it.
    pub(crate) readonly: OnceCell<r1_journal::ReadOnlyJournal>,
    /// The inbox of the session's actor (`crate::actor`), which owns its state.
    pub(crate) tx: flume::Sender<crate::actor::Msg>,
    /// What the actor last published: read without asking it.
    view: watch::Receiver<Arc<crate::actor::Snapshot>>,
    /// Per-tool policy overrides chosen at start.
    pub(crate) policy: HashMap<String, Policy>,
    /// The session's token budget, if any.
    pub(crate) token_budget: Option<u64>,
    /// Input plus output tokens of every model call: from the journal's usage when
    /// loaded, then counted as each call ends (before its usage is journaled).
    pub(crate) tokens_used: std::sync::atomic::AtomicU64,
    /// The session's provider, built on its first turn.
    pub(crate) provider: OnceCell<Arc<dyn Provider>>,
    /// The session's MCP servers, started on its first turn.
    pub(crate) mcp: OnceCell<Arc<r1_engine::McpPool>>,
    /// Its title (when renamed) and whether it is archived (`crate::labels`).
    labels: Mutex<crate::labels::Labels>,
    /// The live subscribers' queues (`session_stream`), created on first subscription;
    /// each is bounded in bytes, so an unwatched session holds nothing.
    live: Mutex<Option<crate::session_stream::Fanout>>,
}

/// The session table, part of the hub.
#[derive(Default)]
pub struct Sessions {
    pub(crate) map: Mutex<HashMap<String, Arc<Session>>>,
    /// Which sessions exist: adds them durably in O(1).
    index: Arc<crate::index::SessionIndex>,
    pub(crate) journal_opts: JournalOptions,
    /// Repairs run one at a time (each swaps a session in the table).
    repair: tokio::sync::Mutex<()>,
    /// Label changes and deletes run one at a time.
    pub(crate) label_lock: tokio::sync::Mutex<()>,
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
    /// What the session's actor last published.
    pub(crate) fn snapshot(&self) -> Arc<crate::actor::Snapshot> {
        self.view.borrow().clone()
    }

    /// A receiver of every view the actor publishes from now on.
    pub(crate) fn watch_view(&self) -> watch::Receiver<Arc<crate::actor::Snapshot>> {
        self.view.clone()
    }

    /// Its labels now.
    pub(crate) fn labels(&self) -> crate::labels::Labels {
        self.labels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Replaces its labels (once they are on disk).
    pub(crate) fn set_labels(&self, labels: crate::labels::Labels) {
        *self.labels.lock().unwrap_or_else(|p| p.into_inner()) = labels;
    }

    /// The worktree (`wt_…`) the session works in, when it was started with one.
    pub(crate) fn worktree_id(&self) -> Option<&str> {
        self.worktree_id.as_deref()
    }

    /// Journals a note from `lobe` through the session's actor.
    pub(crate) async fn lobe_note(
        &self,
        note: r1_proto::NoteInput,
        lobe: &str,
    ) -> Result<(), ApiError> {
        let rec = crate::cortex::note_record(note, lobe)?;
        self.command(crate::transition::Command::Publish(rec))
            .await
            .map(|_| ())
    }

    /// Tokens the session's turns have used.
    pub(crate) fn tokens(&self) -> u64 {
        self.tokens_used.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Journals `rec` through the session's actor (as a running turn does) and returns
    /// its seq.
    pub(crate) async fn emit(&self, rec: crate::transition::Rec) -> Result<u64, ApiError> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        let gone = || ApiError::conflict(format!("session {} has stopped", self.id));
        self.tx
            .send_async(crate::actor::Msg::Emit {
                rec: Box::new(rec),
                reply,
            })
            .await
            .map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }

    /// Tells the actor that a lane outside any turn (a verify command) can be killed
    /// with `cancel`.
    pub(crate) async fn lane_started(&self, lane: &str, cancel: CancellationToken) {
        let _ = self
            .tx
            .send_async(crate::actor::Msg::LaneStarted {
                lane: lane.into(),
                cancel,
            })
            .await;
    }

    /// Tells the actor that a lane outside any turn has ended.
    pub(crate) async fn lane_ended(&self, lane: &str) {
        let _ = self
            .tx
            .send_async(crate::actor::Msg::LaneEnded { lane: lane.into() })
            .await;
    }

    /// Sends an API command to the session's actor and waits for its answer, which
    /// comes once the command's effect is visible to every client.
    pub(crate) async fn command(
        &self,
        cmd: crate::transition::Command,
    ) -> Result<crate::actor::Answer, ApiError> {
        // A quarantined session has no actor: say why.
        self.journal()?;
        let (reply, rx) = tokio::sync::oneshot::channel();
        let gone = || ApiError::conflict(format!("session {} is not running", self.id));
        self.tx
            .send_async(crate::actor::Msg::Api {
                cmd: Box::new(cmd),
                reply,
            })
            .await
            .map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }

    /// A queue of every record appended from now on, bounded by `limits`, holding the
    /// subscriber's `slot` for as long as it lives. Records may arrive out of order
    /// when appenders race; followers detect the gap and read the file.
    pub fn subscribe(
        &self,
        limits: crate::session_stream::QueueLimits,
        slot: Option<crate::subscribers::Slot>,
        dropped: CancellationToken,
    ) -> Arc<crate::session_stream::LiveQueue> {
        let q = crate::session_stream::new_queue(limits, slot, dropped, self.id.clone(), true);
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert_with(Default::default)
            .add(&q);
        q
    }

    /// Hands a just-appended record to every live subscriber, serialized once and
    /// shared by all of them. Never blocks: a full queue skips the frame (see
    /// `session_stream`).
    pub(crate) fn publish(&self, r: &EventRecord) {
        let listening = {
            let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
            live.as_ref().is_some_and(|f| !f.is_empty())
        };
        if !listening {
            return;
        }
        // Serialized outside the lock, so a large record does not hold up subscribers.
        let frame = crate::session_stream::Frame::record(r);
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = live.as_mut() {
            f.publish(&frame);
            if f.is_empty() {
                // Nobody listens any more: free the list.
                *live = None;
            }
        }
    }

    /// Ends every follower's live feed (they drain the file and stop).
    pub(crate) fn close_live(&self) {
        let taken = self.live.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(mut f) = taken {
            f.close();
        }
    }

    /// The session's current state.
    pub fn state(&self) -> SessionState {
        self.view.borrow().state
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
                    self.snapshot().error.clone().unwrap_or_default()
                ),
            )
        })
    }

    /// The session as clients see it.
    pub fn view(&self) -> SessionView {
        let m = self.snapshot();
        let labels = self.labels();
        SessionView {
            id: self.id.clone(),
            workdir: self.workdir.clone(),
            engine: self.engine.clone(),
            model: self.model.clone(),
            title: labels.title.or_else(|| self.title.clone()),
            state: m.state,
            reattachable: m.reattachable,
            created_at: self.created_at.clone(),
            last_seq: match (&self.journal, self.readonly.get()) {
                (Some(_), _) => m.last_seq,
                (None, Some(r)) => r.last_seq(),
                (None, None) => 0,
            },
            pending_approvals: m.pending_approvals.clone(),
            error: m.error.clone(),
            worktree_id: self.worktree_id.clone(),
            usage: m.usage,
            archived: labels.archived,
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

impl Hub {
    pub(crate) fn sessions(&self) -> &Sessions {
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

    pub(crate) fn all_sessions(&self) -> Vec<Arc<Session>> {
        let map = self
            .sessions()
            .map
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<_> = map.values().cloned().collect();
        v.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        v
    }

    pub(crate) fn engine(&self, name: &str) -> Result<crate::engines::Engine, ApiError> {
        let all = self.engine_list();
        let names: Vec<&str> = all.iter().map(|e| e.name.as_str()).collect();
        all.iter().find(|e| e.name == name).cloned().ok_or_else(|| {
            ApiError::validation(format!(
                "unknown engine {name:?}; available engines: {}",
                names.join(", ")
            ))
        })
    }

    /// The context budget of `s`'s engine, in tokens.
    pub(crate) fn context_budget(&self, s: &Session) -> u64 {
        match self.engine(&s.engine) {
            Ok(e) => e.config.context_tokens.unwrap_or_else(|| {
                let model = s.model.as_deref().or(e.config.model.as_deref());
                crate::compact::default_context_tokens(&e.config.kind, model)
            }),
            Err(_) => u64::MAX,
        }
    }

    /// The model `s` talks to: the one it was started with, else its engine's
    /// `model` in the config in force; `None` when neither names one.
    pub(crate) fn model_of(&self, s: &Session) -> Option<String> {
        s.model.clone().or_else(|| {
            self.engine(&s.engine)
                .ok()
                .and_then(|e| e.config.model.clone())
        })
    }

    /// The provider for a session's turns, built on its first turn and kept (one HTTP
    /// client per session, not one per turn).
    pub(crate) async fn provider_for(&self, s: &Session) -> Result<Arc<dyn Provider>, ApiError> {
        s.provider
            .get_or_try_init(|| async {
                let e = self.engine(&s.engine)?;
                let p = crate::engines::provider(&e, s.model.as_deref(), Path::new(&s.workdir))?;
                Ok::<_, ApiError>(crate::metrics::timed_provider(self, &s.engine, p))
            })
            .await
            .cloned()
    }

    pub(crate) fn validate_workdir(&self, workdir: &str) -> Result<PathBuf, ApiError> {
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
        if canon.starts_with(self.state().canonical_root()) {
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
        crate::engines::check_start(&e, params.model.as_deref())?;
        let policy = parse_policy(params.policy.as_ref())?;
        let id = format!(
            "ses_{}",
            random_hex(8).map_err(|_| ApiError::internal("no randomness"))?
        );
        // A worktree asked for becomes the workdir; if the session cannot be created
        // after it, it is removed again, so nothing is left half-made.
        let Some(spec) = params.worktree.as_ref().and_then(|w| w.spec()) else {
            return self
                .create_session(id, workdir, engine, policy, &params, None)
                .await;
        };
        let wt = self
            .worktrees()
            .create(&workdir, &id, params.title.clone(), spec)
            .await?;
        let r = self
            .create_session(
                id,
                PathBuf::from(&wt.path),
                engine,
                policy,
                &params,
                Some(&wt.id),
            )
            .await;
        if r.is_err() {
            self.worktrees().discard(&wt.id).await;
        }
        r
    }

    /// Creates the session `id` in `workdir` (already checked), its journal and its
    /// actor.
    async fn create_session(
        &self,
        id: String,
        workdir: PathBuf,
        engine: String,
        policy: HashMap<String, Policy>,
        params: &StartSessionParams,
        worktree_id: Option<&str>,
    ) -> Result<SessionView, ApiError> {
        let created_at = now_rfc3339();
        let workdir = workdir.display().to_string();
        let data = EventData::from(SessionCreated {
            id: id.clone(),
            workdir: workdir.clone(),
            engine: engine.clone(),
            model: params.model.clone(),
            title: params.title.clone(),
            created_at,
            policy: policy.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            token_budget: params.token_budget,
            worktree_id: worktree_id.map(str::to_string),
        })
        .to_value();
        // The session exists once `session.created` is durable, and the directory
        // entries that lead to it too: one blocking job makes the directory, the
        // journal with its first record, and syncs all three (see `index`).
        let hub = self.clone();
        let (owned_id, first) = (id.clone(), data.clone());
        let job = tokio::task::spawn_blocking(move || {
            let sessions_dir = hub.state().path("sessions");
            let opts = hub.sessions().journal_opts.clone();
            hub.sessions()
                .index
                .add(&sessions_dir, &owned_id, |dir, entry| {
                    Journal::create_with(
                        &dir.join("journal.ndjson"),
                        opts,
                        NewRecord::new(EventKind::SessionCreated, "main", first),
                        move || entry.sync(),
                    )
                })
        });
        let (journal, created) = match job.await {
            Ok(Ok(made)) => made,
            Ok(Err(AddError::Fill(e))) => return Err(journal_error(&e)),
            Ok(Err(AddError::Index(e))) => {
                tracing::error!(session = %id, "cannot create the session directory: {e}");
                return Err(ApiError::internal("could not create the session directory"));
            }
            Err(e) => {
                tracing::error!(session = %id, "the create job failed: {e}");
                return Err(ApiError::internal("could not create the session"));
            }
        };
        self.search_index().offer(&id, &created);
        let mut core = crate::transition::Core::default();
        core.apply(&created);
        let session = self.insert_session(&id, &data, Some(journal), core, Vec::new(), None);
        self.fire_record(&session, &created);
        tracing::info!(session = %id, %engine, %workdir, worktree = worktree_id.unwrap_or("-"), "session started");
        self.bus().publish(&bus::SessionCreated {
            session_id: id,
            workdir,
            engine,
        });
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
        if let Some(key) = &params.client_message_id {
            if key.is_empty() || key.len() > 200 {
                return Err(ApiError::validation(
                    "client_message_id must be 1 to 200 bytes",
                ));
            }
        }
        let text = self
            .pre_send(&s, params.text, params.client_message_id.as_deref())
            .await?;
        let message_id = format!(
            "msg_{}",
            random_hex(8).map_err(|_| ApiError::internal("no randomness"))?
        );
        match s
            .command(Command::Send {
                message_id,
                text,
                client_message_id: params.client_message_id,
            })
            .await?
        {
            crate::actor::Answer::Sent(r) => Ok(r),
            crate::actor::Answer::Done => Err(ApiError::internal("the session gave no receipt")),
        }
    }

    /// Runs one API command on a session and answers with its view, as every client
    /// now sees it.
    async fn command_view(&self, id: &str, cmd: Command) -> Result<SessionView, ApiError> {
        let s = self.session(id)?;
        if s.journal.is_none() {
            // Quarantined: nothing can be written, and there is no actor.
            s.journal()?;
        }
        s.command(cmd).await?;
        Ok(s.view())
    }

    /// `session.cancel`: stops the running turn, answering once it has stopped.
    pub async fn cancel_session(&self, id: &str) -> Result<SessionView, ApiError> {
        self.command_view(id, Command::Cancel).await
    }

    /// `session.pause`: stops the running turn and holds queued messages.
    pub async fn pause_session(&self, id: &str, reason: &str) -> Result<SessionView, ApiError> {
        self.command_view(
            id,
            Command::Pause {
                reason: reason.to_string(),
            },
        )
        .await
    }

    /// `session.resume`; a mission a restart paused in this session is queued again.
    pub async fn resume_session(&self, id: &str) -> Result<SessionView, ApiError> {
        let view = self.command_view(id, Command::Resume).await?;
        self.missions().session_resumed(id).await;
        Ok(view)
    }

    /// `session.kill`: ends the session (idempotent).
    pub async fn kill_session(&self, id: &str) -> Result<SessionView, ApiError> {
        let s = self.session(id)?;
        if s.journal.is_none() || s.state() == SessionState::Ended {
            return Ok(s.view());
        }
        s.command(Command::Kill).await?;
        Ok(s.view())
    }

    /// `session.list`.
    pub fn list_sessions(&self, include_archived: bool) -> SessionList {
        SessionList {
            sessions: self
                .all_sessions()
                .iter()
                .map(|s| s.view())
                .filter(|v| include_archived || !v.archived)
                .collect(),
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
        // Seqs past the cut will be written again: the index reads the session anew.
        self.search_index().refresh(id);
        self.sessions()
            .map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&s.id);
        drop(s);
        let path = self
            .state()
            .path("sessions")
            .join(id)
            .join("journal.ndjson");
        let opts = self.sessions().journal_opts.clone();
        let owned = path.clone();
        let hub = self.clone();
        let key = id.to_string();
        let rest = tokio::task::spawn_blocking(move || hub.load_and_settle(&key, &owned, opts))
            .await
            .map_err(|_| ApiError::internal("the session could not be loaded again"))?;
        if let Some(rest) = rest {
            self.reload_one(id.to_string(), &path, rest).await;
        }
        let s = self.session(id)?;
        self.bus().publish(&bus::SessionRepaired {
            session_id: id.to_string(),
            last_seq: report.last_seq,
            dropped_bytes: report.dropped_bytes,
        });
        Ok(RepairResult {
            session: s.view(),
            repaired: !report.was_healthy(),
            last_seq: report.last_seq,
            dropped_bytes: report.dropped_bytes,
            broken_copy: report.broken_copy.map(|p| p.display().to_string()),
        })
    }

    /// Graceful shutdown: every session with work in flight journals `session.paused
    /// {reason: "daemon shutdown"}` (durable) once its turn has stopped; every session
    /// stops its MCP servers. Idle sessions journal nothing and come back idle.
    pub async fn pause_all_for_shutdown(&self, reason: &'static str) {
        let live: Vec<_> = self
            .all_sessions()
            .into_iter()
            .filter(|s| s.journal.is_some() && s.state() != SessionState::Ended)
            .collect();
        futures_util::stream::iter(live)
            .for_each_concurrent(RELOAD_CONCURRENCY, |s| async move {
                let (reply, rx) = tokio::sync::oneshot::channel();
                if s.tx
                    .send_async(crate::actor::Msg::Shutdown { reason, reply })
                    .await
                    .is_ok()
                {
                    let _ = rx.await;
                }
            })
            .await;
    }

    /// Reloads every session found under `sessions/`: ended ones stay ended; live ones
    /// come back `paused` and reattachable, a turn that was running is closed as an
    /// error (never re-run), and each gets a `daemon.reloaded` record.
    pub async fn reload_sessions(&self) {
        crate::index::SessionIndex::retire_legacy(self.state().root());
        let dir = self.state().path("sessions");
        let ids = crate::index::SessionIndex::list(&dir);
        let count = ids.len();
        // Checking and folding journals is file work: it runs on a few blocking threads,
        // each taking a share of the sessions, so that a restart costs one hand-off per
        // share rather than one per journal.
        let workers = std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .clamp(1, RELOAD_WORKERS);
        let share = count.div_ceil(workers).max(1);
        let mut jobs = Vec::new();
        for part in ids.chunks(share) {
            let part = part.to_vec();
            let dir = dir.clone();
            let opts = self.sessions().journal_opts.clone();
            let hub = self.clone();
            // Each job settles the sessions that need nothing more; the rest (quarantined
            // or interrupted) come back for the async work their restart needs.
            jobs.push(tokio::task::spawn_blocking(move || {
                part.into_iter()
                    .filter_map(|id| {
                        let path = dir.join(&id).join("journal.ndjson");
                        let rest = hub.load_and_settle(&id, &path, opts.clone())?;
                        Some((id, path, rest))
                    })
                    .collect::<Vec<_>>()
            }));
        }
        let mut loaded = Vec::new();
        for job in jobs {
            match job.await {
                Ok(part) => loaded.extend(part),
                Err(e) => tracing::error!("a session load job failed: {e}"),
            }
        }
        let hub = self.clone();
        futures_util::stream::iter(loaded)
            .for_each_concurrent(RELOAD_CONCURRENCY, |(id, path, l)| {
                let hub = hub.clone();
                async move { hub.reload_one(id, &path, l).await }
            })
            .await;
        if count > 0 {
            self.bus().publish(&bus::DaemonReloaded {
                daemon_id: self.info().id.clone(),
                sessions: count as u64,
                version: self.info().version.clone(),
                config: false,
                changed: Vec::new(),
                restart_required: Vec::new(),
            });
        }
        tracing::info!(sessions = count, "sessions reloaded");
    }

    /// Brings back a session [`Hub::settle`] did not take: quarantined when its journal
    /// could not be opened; otherwise paused, with the records of what the restart
    /// interrupted.
    async fn reload_one(&self, id: String, path: &Path, loaded: Result<Loaded, JournalError>) {
        let loaded = match loaded {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(session = %id, "quarantined: {e}");
                // Corruption before the tail: the records before it stay readable.
                let readonly = match &e {
                    JournalError::Corrupt { .. } => r1_journal::ReadOnlyJournal::open(
                        path,
                        self.sessions().journal_opts.clone(),
                    )
                    .await
                    .ok(),
                    _ => None,
                };
                // The verification pass already decoded the first record.
                let (readonly, first) = match readonly {
                    Some((r, v)) => (Some(r), v.first_record),
                    None => (None, None),
                };
                let meta = first
                    .or_else(|| read_first_record(path))
                    .filter(|r| r.kind == EventKind::SessionCreated)
                    .map(|r| r.data)
                    .unwrap_or(Value::Null);
                let s = self.insert_session(
                    &id,
                    &meta,
                    None,
                    Core::default(),
                    Vec::new(),
                    Some(format!("quarantined: {}", journal_error(&e).message)),
                );
                if let Some(r) = readonly {
                    let _ = s.readonly.set(r);
                }
                return;
            }
        };
        let Loaded {
            journal,
            mut core,
            history,
            meta,
            ..
        } = loaded;
        let (in_flight, pending, _) = interruption(&core);
        // An agent CLI's approval died with the process that asked (a crash, or
        // `kill -9`, left it pending): denied, like at the end of any turn.
        let mut records: Vec<EventData> = core
            .approvals
            .iter()
            .filter(|a| a.external && a.status == "pending")
            .map(|a| {
                r1_proto::events::ApprovalResolved {
                    approval_id: a.id.clone(),
                    decision: r1_proto::Decision::Deny,
                    reason: Some(crate::transition::AGENT_GONE.into()),
                    remember: false,
                }
                .into()
            })
            .collect();
        let pending = pending - records.len();
        if in_flight && pending == 0 {
            records.push(
                SessionError {
                    message: "interrupted by daemon restart".into(),
                    code: None,
                    message_id: core.turn.clone(),
                    interrupted: true,
                }
                .into(),
            );
        }
        if core.state != SessionState::Paused {
            records.push(
                SessionPaused {
                    reason: "daemon restart".into(),
                }
                .into(),
            );
            records.push(
                SessionStateChanged {
                    state: SessionState::Paused,
                    message_id: None,
                    queued: None,
                }
                .into(),
            );
        }
        records.push(
            DaemonReloaded {
                daemon_id: self.info().id.clone(),
                pending_approvals: pending as u64,
            }
            .into(),
        );
        for event in records {
            match journal
                .append(
                    NewRecord::new(event.kind(), "main", event.to_value()),
                    Ack::Durable,
                )
                .await
            {
                Ok(r) => {
                    self.search_index().offer(&id, &r);
                    core.apply(&r);
                }
                Err(e) => {
                    tracing::warn!(session = %id, "cannot journal the reload: {e}");
                    break;
                }
            }
        }
        core.reattachable = true;
        self.insert_session(&id, &meta, Some(journal), core, history, None);
    }

    /// Loads the session `id` from its journal at `path` and settles it (blocking);
    /// returns what [`Hub::reload_one`] must still do: a quarantine or an interrupted
    /// session.
    fn load_and_settle(
        &self,
        id: &str,
        path: &Path,
        opts: JournalOptions,
    ) -> Option<Result<Loaded, JournalError>> {
        match load_journal(path, opts) {
            Ok(l) => self.settle(id, l).map(Ok),
            Err(e) => Some(Err(e)),
        }
    }

    /// Puts a loaded session in the table when its restart needs no record (an idle or
    /// ended session, or one whose journal does not start right); returns it when it
    /// does (a turn or an approval the restart interrupted), for [`Hub::reload_one`].
    /// Synchronous, so the load jobs settle most sessions themselves.
    fn settle(&self, id: &str, loaded: Loaded) -> Option<Loaded> {
        if let Some(r) = &loaded.repaired {
            tracing::warn!(session = %id, truncated = r.truncated_bytes, copy = %r.broken_copy.display(), "torn journal tail repaired");
        }
        if loaded.meta.is_null() {
            self.insert_session(
                id,
                &Value::Null,
                None,
                Core::default(),
                Vec::new(),
                Some("quarantined: the journal does not start with session.created".into()),
            );
            return None;
        }
        if loaded.core.state == SessionState::Ended {
            // Nothing is written to an ended session: its writer stops (in the
            // background), and its journal stays readable.
            let journal = loaded.journal.clone();
            tokio::spawn(async move { journal.close().await });
            self.insert_session(
                id,
                &loaded.meta,
                Some(loaded.journal),
                loaded.core,
                Vec::new(),
                None,
            );
            return None;
        }
        let (in_flight, pending, paused_at_shutdown) = interruption(&loaded.core);
        if in_flight || pending > 0 || paused_at_shutdown {
            return Some(loaded);
        }
        self.insert_session(
            id,
            &loaded.meta,
            Some(loaded.journal),
            loaded.core,
            loaded.history,
            None,
        );
        None
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
            self.forget_session(&s.id);
            tracing::info!(session = %s.id, age_s = age.as_secs(), bytes = md.len(), "pruned ended session");
            pruned += 1;
        }
        pruned
    }

    /// Forgets a session whose directory is gone: out of the table and the index.
    pub(crate) fn forget_session(&self, id: &str) {
        self.sessions()
            .map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        self.search_index().forget(id);
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

    /// Puts a session in the table and starts its actor, which owns `core` and
    /// `history` from now on. With no journal (quarantined), or with `error` set, the
    /// session is shown in `error` and has no actor.
    fn insert_session(
        &self,
        id: &str,
        meta: &Value,
        journal: Option<Journal>,
        mut core: Core,
        history: Vec<ChatMessage>,
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
        if journal.is_none() || error.is_some() {
            core.state = SessionState::Error;
            core.error = error;
        }
        let runs = journal.is_some() && core.state != SessionState::Error;
        let (tx, rx) = flume::bounded(crate::actor::INBOX);
        let (view_tx, view) = watch::channel(Arc::new(crate::actor::Snapshot::of(&core)));
        let s = Arc::new(Session {
            id: id.to_string(),
            workdir: text("workdir").unwrap_or_default(),
            engine: text("engine").unwrap_or_else(|| "echo".into()),
            model: text("model"),
            title: text("title"),
            labels: Mutex::new(crate::labels::load(&self.state().path("sessions").join(id))),
            created_at: text("created_at").unwrap_or_default(),
            worktree_id: text("worktree_id"),
            journal,
            readonly: OnceCell::new(),
            tx,
            view,
            policy,
            token_budget: meta["token_budget"].as_u64(),
            // The budget applies to the session's whole journal, across restarts.
            tokens_used: std::sync::atomic::AtomicU64::new(core.usage.tokens()),
            mcp: OnceCell::new(),
            provider: OnceCell::new(),
            live: Mutex::new(None),
        });
        if runs {
            crate::actor::spawn(self.clone(), &s, rx, view_tx, core, history);
        }
        self.sessions()
            .map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_string(), s.clone());
        s
    }
}

/// The reason a daemon's shutdown journals in `session.paused`.
pub(crate) const PAUSED_FOR_SHUTDOWN: &str = "daemon shutdown";
/// The reason journaled when the daemon hands over to a new binary (`r1 ctl restart`).
pub(crate) const PAUSED_FOR_UPGRADE: &str = "upgrade";

/// What a restart interrupted in a session, from its state: a turn in flight, how many
/// approvals were pending, and whether the last daemon paused a turn on its way out.
/// An idle session (or one paused only by the shutdown) comes back as it was; a turn
/// cut off mid-way is closed as an error and never re-run; a pending approval keeps
/// the session paused, reattachable.
fn interruption(core: &Core) -> (bool, usize, bool) {
    let in_flight = core.turn.is_some()
        || matches!(
            core.state,
            SessionState::Busy | SessionState::WaitingOnApproval
        );
    let pending = core.pending_approvals().len();
    // A turn the last daemon paused on its way out: reattachable, like one cut off.
    let paused_at_shutdown = core.state == SessionState::Paused
        && matches!(
            core.paused_reason.as_deref(),
            Some(PAUSED_FOR_SHUTDOWN | PAUSED_FOR_UPGRADE)
        );
    (in_flight, pending, paused_at_shutdown)
}

/// A session's journal, opened, and the fold of its records.
struct Loaded {
    journal: Journal,
    /// The torn tail open cut off, if any.
    repaired: Option<r1_journal::RepairInfo>,
    core: Core,
    history: Vec<ChatMessage>,
    /// The data of its `session.created`; null when the journal does not start with it.
    meta: Value,
}

/// Opens a session's journal and folds its records into the session's state and its
/// conversation in the one pass that checks the file. Blocking.
fn load_journal(path: &Path, opts: JournalOptions) -> Result<Loaded, JournalError> {
    let mut core = Core::default();
    let mut history = Vec::new();
    let mut meta = Value::Null;
    let mut fold = |r: EventRecord| {
        if r.seq == 1 && r.kind == EventKind::SessionCreated {
            meta = r.data.clone();
        }
        core.apply(&r);
        crate::agent::apply_to_history(&r, &mut history);
        // Keep the conversation bounded while a long journal is read.
        if history.len() >= TRIM_EVERY {
            trim_history(&mut history);
        }
    };
    let (journal, report) = Journal::open_replaying(path, opts, &mut fold)?;
    trim_history(&mut history);
    Ok(Loaded {
        journal,
        repaired: report.repaired,
        core,
        history,
        meta,
    })
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

/// What one message of the context costs in memory, roughly: its text, a tool result's
/// content, and the fixed size of the message and its allocations. Counting the fixed
/// part matters: a long chat of short messages is mostly overhead.
fn context_cost(m: &ChatMessage) -> usize {
    const PER_MESSAGE: usize = 256;
    m.text.len()
        + m.tool_result.as_ref().map_or(0, |r| r.content.len())
        + m.tool_calls
            .iter()
            .map(|c| c.name.len() + c.id.len() + c.arguments.to_string().len())
            .sum::<usize>()
        + PER_MESSAGE
}

/// Drops the oldest whole turns until the context's memory fits [`HISTORY_BYTES`]:
/// never a tool result without its call (the last turn always stays). Compaction
/// ([`crate::compact`]) normally keeps the context well under this; this is the bound
/// on memory.
pub(crate) fn trim_history(history: &mut Vec<ChatMessage>) {
    crate::compact::drop_whole_turns(history, |h| {
        h.iter().map(context_cost).sum::<usize>() <= HISTORY_BYTES
    });
}
