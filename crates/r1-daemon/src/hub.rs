//! The hub: a cheap-to-clone handle over the daemon's shared state. It implements
//! [`Api`], so the HTTP routes, the WebSocket methods and the MCP catalog all call
//! the same code.

use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use r1_proto::{
    Ack, Api, ApiError, ApproveParams, CortexNotesParams, CortexPublishParams, DaemonStatus,
    DeleteResult, Discovery, EmptyParams, EngineList, Handshake, Health, HookList, HookTestParams,
    HookTestResult, JournalPage, JournalParams, LaneList, LaneRef, LaneView, ListSessionsParams,
    LobeList, LobeRef, LogPage, LogsParams, MissionCreateParams, MissionList, MissionListParams,
    MissionRef, MissionView, NoteList, NoteView, PinLaneParams, ReindexResult, ReloadResult,
    RenameParams, RepairResult, RestartParams, RestartResult, ResumeAllResult, ResumeFailure,
    SearchParams, SearchResult, SendMessageParams, SendMessageResult, SessionList, SessionRef,
    SessionView, ShutdownParams, StartSessionParams, TailParams, VerifyParams, VerifyResult,
    VerifyStep, WebClickParams, WebFillParams, WebNavigateParams, WebPageView, WorkdirFile,
    WorkdirReadParams, WorktreeCleanParams, WorktreeDiff, WorktreeDiffParams, WorktreeList,
    WorktreeListParams, WorktreeMergeParams, WorktreeMergeResult, WorktreeView, PROTOCOL,
};
use tokio_util::sync::CancellationToken;

use crate::bus::Bus;
use crate::metrics::Metrics;
use crate::sessions::Sessions;
use crate::state::{Config, StateDir};

/// What identifies this daemon run.
#[derive(Debug, Clone)]
pub struct DaemonInfo {
    /// Random run id, as written to `daemon.json`.
    pub id: String,
    /// Process id.
    pub pid: u32,
    /// Version string.
    pub version: String,
    /// RFC 3339 start time.
    pub started_at: String,
    /// The loopback HTTP base URL, as written to `daemon.json`.
    pub url: String,
    /// The unix socket's path, as written to `daemon.json`.
    pub sock: String,
    /// The binary this daemon runs, as it was at start.
    pub exe: Option<String>,
    /// That binary's build id (`<bytes>-<mtime ns>`), as it was at start.
    pub build_id: Option<String>,
    /// The r1 CLI binary `/mcp`'s `r1_cli_invoke` runs (`ServeOptions::cli`); not in
    /// the registration.
    pub cli: Option<std::path::PathBuf>,
}

impl DaemonInfo {
    /// The registration this run writes to `daemon.json`.
    pub fn registration(&self) -> r1_proto::Registration {
        r1_proto::Registration {
            id: self.id.clone(),
            pid: self.pid,
            version: self.version.clone(),
            protocol: PROTOCOL.to_string(),
            url: self.url.clone(),
            sock: self.sock.clone(),
            started_at: self.started_at.clone(),
            exe: self.exe.clone(),
            build_id: self.build_id.clone(),
        }
    }
}

/// The daemon's credential, swappable while running (`rotate-token`). Each token has
/// a lifetime, a [`CancellationToken`] cancelled when the token is replaced: a request
/// that passed the check holds it, so every connection and stream opened with a token
/// ends when that token is rotated away (`perimeter::Credential`).
#[derive(Debug)]
pub struct TokenCell(RwLock<(String, CancellationToken)>);

impl TokenCell {
    /// A cell holding `token`.
    pub fn new(token: String) -> Self {
        TokenCell(RwLock::new((token, CancellationToken::new())))
    }

    /// Compares `offered` with the current token in constant time.
    pub fn matches(&self, offered: &[u8]) -> bool {
        self.check(offered).is_some()
    }

    /// Compares `offered` with the current token in constant time; when it matches,
    /// the token's lifetime, read under the same lock, so a request checked just
    /// before a rotation holds the lifetime that rotation ends.
    pub fn check(&self, offered: &[u8]) -> Option<CancellationToken> {
        use subtle::ConstantTimeEq;
        let t = self.0.read().ok()?;
        bool::from(t.0.as_bytes().ct_eq(offered)).then(|| t.1.clone())
    }

    /// Puts `token` in force and ends the previous token's lifetime.
    fn set(&self, token: String) {
        let old = match self.0.write() {
            Ok(mut t) => std::mem::replace(&mut *t, (token, CancellationToken::new())),
            Err(_) => return,
        };
        old.1.cancel();
    }
}

/// The cheap-to-clone handle every route, task and transport shares.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<HubInner>,
}

struct HubInner {
    info: DaemonInfo,
    state: StateDir,
    /// The config in force and what is resolved from it, swapped whole by a reload:
    /// every reader takes the current `Arc` and never holds the lock.
    live: RwLock<Arc<LiveConfig>>,
    /// One config reload at a time, so two reloads never interleave their effects.
    reloading: tokio::sync::Mutex<()>,
    bus: Bus,
    metrics: Metrics,
    token: TokenCell,
    shutdown: CancellationToken,
    grace: Mutex<Duration>,
    sessions: Sessions,
    login_codes: Mutex<Vec<(String, std::time::Instant)>>,
    /// Live subscribers, bounded per session and in all (`[limits]`).
    subscribers: Arc<crate::subscribers::Subscribers>,
    /// The daemon's own files (state directory, token, `--token-file`), out of every
    /// tool's and sandboxed child's reach.
    protected: Arc<r1_engine::Protected>,
    /// The session worktrees and their registry (`$R1_HOME/worktrees`).
    worktrees: crate::worktree::Worktrees,
    /// The missions, their queue and worker pool (`$R1_HOME/missions`).
    missions: crate::missions::Missions,
    /// Where the daemon listens and how it confines children, for `daemon.status`.
    runtime: crate::status::Runtime,
    /// A restart onto the binary on disk, when one is asked for.
    restart: crate::restart::RestartCell,
    /// The hooks in `$R1_HOME/hooks`, their pool and counts.
    hooks: crate::hooks::Hooks,
    /// The user lobes in `$R1_HOME/lobes`.
    cortex: Arc<crate::cortex::Cortex>,
    /// The full-text index of every session's history (`$R1_HOME/index`).
    search: crate::search::SearchIndex,
    /// The agent CLIs' permission channels, one per running turn that has one.
    permits: crate::permission::Permits,
    /// The headless browser behind `web.*`, started on first use.
    web: crate::webdrive::WebDriver,
    /// The headless TUIs of `tui.*`.
    tui: crate::tui_host::TuiHost,
}

/// The operator config in force, with the engines resolved from it.
pub(crate) struct LiveConfig {
    pub(crate) config: Arc<Config>,
    /// The engines, resolved from the config and the environment.
    pub(crate) engines: Arc<[crate::engines::Engine]>,
    /// The default engine's name.
    pub(crate) default_engine: Arc<str>,
}

impl LiveConfig {
    /// Resolves `config`'s engines; `parse_config` already refused engines that do
    /// not resolve.
    pub(crate) fn new(config: Config) -> LiveConfig {
        let engines = crate::engines::engines(&config.engines).unwrap_or_default();
        let default_engine =
            crate::engines::default_engine(&engines, config.default_engine.as_deref());
        LiveConfig {
            config: Arc::new(config),
            engines: engines.into(),
            default_engine: default_engine.into(),
        }
    }
}

/// How long a browser login code from `r1 open` stays valid.
pub const LOGIN_CODE_TTL: Duration = Duration::from_secs(60);

/// How long in-flight requests get to finish after a shutdown starts, by default.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(5);

impl Hub {
    /// A hub for a daemon run; `token_file` is the operator's token file, if the token
    /// was adopted from one (it is protected like the stored token).
    pub fn new(
        info: DaemonInfo,
        state: StateDir,
        config: Config,
        token: String,
        token_file: Option<&std::path::Path>,
        journal_opts: r1_journal::JournalOptions,
    ) -> Hub {
        let extra: Vec<std::path::PathBuf> =
            token_file.map(|p| p.to_path_buf()).into_iter().collect();
        // Made before the protected set, which leaves it out by its canonical path.
        let worktrees = crate::worktree::Worktrees::load(state.path("worktrees"));
        let missions =
            crate::missions::Missions::load(state.path("missions"), config.missions.workers);
        let protected = Arc::new(r1_engine::Protected::for_state_dir(state.root(), &extra));
        let bus = Bus::open(&state.path("bus/events.ndjson"));
        let metrics = Metrics::default();
        let hooks = crate::hooks::Hooks::new(state.root(), config.hooks.clone());
        let cortex = Arc::new(crate::cortex::Cortex::new(state.root()));
        let journal_opts = metrics.timed_journal(journal_opts);
        let search = if config.search.enabled {
            crate::search::SearchIndex::new(state.path("index"), crate::search::QUEUE_BYTES)
        } else {
            crate::search::SearchIndex::disabled(state.path("index"))
        };
        let subscribers = crate::subscribers::Subscribers::new(
            config.limits.max_subscribers_per_session,
            config.limits.max_subscribers,
        );
        Hub {
            inner: Arc::new(HubInner {
                info,
                state,
                live: RwLock::new(Arc::new(LiveConfig::new(config))),
                reloading: tokio::sync::Mutex::new(()),
                bus,
                metrics,
                token: TokenCell::new(token),
                shutdown: CancellationToken::new(),
                grace: Mutex::new(DEFAULT_GRACE),
                sessions: Sessions::new(journal_opts),
                login_codes: Mutex::new(Vec::new()),
                subscribers,
                protected,
                worktrees,
                missions,
                runtime: crate::status::Runtime::default(),
                restart: crate::restart::RestartCell::default(),
                hooks,
                cortex,
                search,
                permits: crate::permission::Permits::default(),
                web: crate::webdrive::WebDriver::new(),
                tui: crate::tui_host::TuiHost::default(),
            }),
        }
    }

    /// This daemon run's identity.
    pub fn info(&self) -> &DaemonInfo {
        &self.inner.info
    }

    /// The state directory.
    pub fn state(&self) -> &StateDir {
        &self.inner.state
    }

    /// Takes a subscriber's place for `session` (the bus when `None`), or refuses with
    /// the limit that is reached. Hold the slot for as long as the subscriber lives.
    pub(crate) fn subscriber_slot(
        &self,
        session: Option<&str>,
    ) -> Result<crate::subscribers::Slot, ApiError> {
        self.inner.subscribers.acquire(session)
    }

    /// The headless TUIs.
    pub(crate) fn tui(&self) -> &crate::tui_host::TuiHost {
        &self.inner.tui
    }

    /// The open permission channels of agent CLI turns.
    pub(crate) fn permits(&self) -> &crate::permission::Permits {
        &self.inner.permits
    }

    /// The daemon's protected files, for tool contexts and sandboxes.
    pub(crate) fn protected(&self) -> Arc<r1_engine::Protected> {
        Arc::clone(&self.inner.protected)
    }

    /// The subscriber counts, whose bounds a reload changes.
    pub(crate) fn subscribers(&self) -> &crate::subscribers::Subscribers {
        &self.inner.subscribers
    }

    /// What the daemon learned about itself while starting.
    pub(crate) fn runtime(&self) -> &crate::status::Runtime {
        &self.inner.runtime
    }

    /// The operator config in force now. Take it per use (a reload swaps it); it is
    /// a cheap `Arc`.
    pub fn config(&self) -> Arc<Config> {
        Arc::clone(&self.live().config)
    }

    pub(crate) fn live(&self) -> Arc<LiveConfig> {
        match self.inner.live.read() {
            Ok(l) => Arc::clone(&l),
            Err(p) => Arc::clone(&p.into_inner()),
        }
    }

    /// Puts `live` in force, for every reader from now on.
    pub(crate) fn set_live(&self, live: LiveConfig) {
        let live = Arc::new(live);
        match self.inner.live.write() {
            Ok(mut l) => *l = live,
            Err(p) => *p.into_inner() = live,
        }
    }

    /// Held while a config reload runs.
    pub(crate) fn reload_lock(&self) -> &tokio::sync::Mutex<()> {
        &self.inner.reloading
    }

    /// What a `web.*` call needs: `[web]` in force, the state directory, the daemon's
    /// origin and, for a navigation, a fresh single-use login code (used only when the
    /// browser has not logged in yet; an unused one expires).
    fn web_context(&self, login: bool) -> Result<crate::webdrive::Context, ApiError> {
        Ok(crate::webdrive::Context {
            config: self.config().web.clone(),
            home: self.inner.state.root().to_path_buf(),
            origin: self.inner.info.url.clone(),
            login_code: if login {
                Some(self.mint_login_code()?)
            } else {
                None
            },
        })
    }

    /// Stops the browser behind `web.*` (its whole process group), at shutdown.
    pub(crate) async fn stop_web(&self) {
        self.inner.web.shutdown().await;
    }

    /// The cortex's user lobes.
    pub(crate) fn cortex(&self) -> &Arc<crate::cortex::Cortex> {
        &self.inner.cortex
    }

    /// The hooks.
    pub(crate) fn hooks(&self) -> &crate::hooks::Hooks {
        &self.inner.hooks
    }

    /// The daemon bus.
    pub fn bus(&self) -> &Bus {
        &self.inner.bus
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The credential.
    pub fn token(&self) -> &TokenCell {
        &self.inner.token
    }

    /// Cancelled when the daemon starts shutting down.
    pub fn shutdown_token(&self) -> &CancellationToken {
        &self.inner.shutdown
    }

    /// Starts a graceful shutdown with `grace` for in-flight requests.
    pub fn begin_shutdown(&self, grace: Duration) {
        if let Ok(mut g) = self.inner.grace.lock() {
            *g = grace;
        }
        self.inner.shutdown.cancel();
    }

    /// The grace period of the shutdown in progress.
    pub fn grace(&self) -> Duration {
        self.inner.grace.lock().map(|g| *g).unwrap_or(DEFAULT_GRACE)
    }

    /// Writes a fresh token and makes it the only one accepted, at once: every
    /// connection and stream opened with the old token ends (WebSockets close with
    /// 4001, event streams end), over TCP and the unix socket alike.
    pub fn rotate_token(&self) -> Result<(), ApiError> {
        let token = self.inner.state.rotate_token().map_err(|e| {
            tracing::error!("token rotation failed: {e}");
            ApiError::internal("could not write the new token")
        })?;
        self.inner.token.set(token);
        tracing::info!("token rotated");
        Ok(())
    }

    /// Mints a single-use login code for the browser, valid for [`LOGIN_CODE_TTL`].
    pub fn mint_login_code(&self) -> Result<String, ApiError> {
        let code =
            crate::fsutil::random_hex(16).map_err(|_| ApiError::internal("no randomness"))?;
        let mut codes = self
            .inner
            .login_codes
            .lock()
            .map_err(|_| ApiError::internal("login codes unavailable"))?;
        let now = std::time::Instant::now();
        codes.retain(|(_, exp)| *exp > now);
        codes.push((code.clone(), now + LOGIN_CODE_TTL));
        Ok(code)
    }

    /// Trades a login code for the token; a code works once, within its lifetime.
    pub fn exchange_login_code(&self, code: &str) -> Result<String, ApiError> {
        let refused = || {
            ApiError::new(
                r1_proto::ErrorCode::PermissionDenied,
                "this login code was already used or has expired; run `r1 open` again",
            )
            .with_status(401)
        };
        let mut codes = self
            .inner
            .login_codes
            .lock()
            .map_err(|_| ApiError::internal("login codes unavailable"))?;
        let now = std::time::Instant::now();
        codes.retain(|(_, exp)| *exp > now);
        let pos = codes
            .iter()
            .position(|(c, _)| {
                use subtle::ConstantTimeEq;
                bool::from(c.as_bytes().ct_eq(code.as_bytes()))
            })
            .ok_or_else(refused)?;
        codes.remove(pos);
        drop(codes);
        self.state()
            .read_token_file()
            .map_err(|_| ApiError::internal("the token cannot be read"))
    }

    /// The engines this daemon offers now.
    pub fn engine_list(&self) -> Arc<[crate::engines::Engine]> {
        Arc::clone(&self.live().engines)
    }

    /// The name of the default engine now.
    pub fn default_engine_name(&self) -> Arc<str> {
        Arc::clone(&self.live().default_engine)
    }

    pub(crate) fn worktrees(&self) -> &crate::worktree::Worktrees {
        &self.inner.worktrees
    }

    pub(crate) fn restart_cell(&self) -> &crate::restart::RestartCell {
        &self.inner.restart
    }

    pub(crate) fn missions(&self) -> &crate::missions::Missions {
        &self.inner.missions
    }

    /// The search index, fed by every session's journaled records.
    pub fn search_index(&self) -> &crate::search::SearchIndex {
        &self.inner.search
    }

    /// What the search indexer reads to catch up: every session's journal file and
    /// last seq.
    pub(crate) fn search_sources(&self) -> Vec<crate::search::Source> {
        let dir = self.state().path("sessions");
        self.sessions_table()
            .map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .map(|s| crate::search::Source {
                id: s.id.clone(),
                path: dir.join(&s.id).join("journal.ndjson"),
                last_seq: s.view().last_seq,
            })
            .collect()
    }

    pub(crate) fn sessions_table(&self) -> &Sessions {
        &self.inner.sessions
    }

    fn handshake_now(&self) -> Handshake {
        let i = &self.inner.info;
        Handshake {
            protocol: PROTOCOL.to_string(),
            version: i.version.clone(),
            daemon_id: i.id.clone(),
            pid: i.pid,
            started_at: i.started_at.clone(),
            build_id: i.build_id.clone(),
        }
    }
}

/// How many sessions `session.resume_all` resumes at once: each resume waits for two
/// durable records, so overlapping them keeps a restart with thousands of paused
/// sessions from taking one fsync round-trip per session, while the bound keeps the
/// burst of journal work small.
const RESUME_ALL_CONCURRENCY: usize = 32;

impl Hub {
    /// `session.resume_all`: every session `paused` now goes through `session.resume`
    /// exactly as a single resume would (same records, same checks); a session whose
    /// resume fails is reported with its error and the others go on. Ended and errored
    /// sessions are never touched.
    pub async fn resume_all(&self) -> ResumeAllResult {
        use futures_util::StreamExt;
        let paused: Vec<String> = self
            .list_sessions(true)
            .sessions
            .into_iter()
            .filter(|s| s.state == r1_proto::SessionState::Paused)
            .map(|s| s.id)
            .collect();
        let outcomes: Vec<_> = futures_util::stream::iter(paused)
            .map(|id| async move {
                let r = self.resume_session(&id).await;
                (id, r)
            })
            .buffered(RESUME_ALL_CONCURRENCY)
            .collect()
            .await;
        let mut result = ResumeAllResult {
            resumed: Vec::new(),
            failed: Vec::new(),
        };
        for (id, r) in outcomes {
            match r {
                Ok(view) => result.resumed.push(view),
                Err(e) => {
                    tracing::warn!(session = %id, "resume_all: could not resume: {}", e.message);
                    result.failed.push(ResumeFailure {
                        id,
                        error_code: e.code,
                        error_message: e.message,
                    });
                }
            }
        }
        result
    }
}

/// The daemon's handler of every catalog operation. A declared operation without a
/// method here does not compile: that is how the catalog cannot drift from the daemon.
#[async_trait::async_trait]
impl Api for Hub {
    async fn handshake(&self, _: EmptyParams) -> Result<Handshake, ApiError> {
        Ok(self.handshake_now())
    }

    async fn health(&self, _: EmptyParams) -> Result<Health, ApiError> {
        Ok(Health {
            status: if self.inner.shutdown.is_cancelled() {
                "stopping".into()
            } else {
                "ok".into()
            },
            version: self.inner.info.version.clone(),
            sessions: self.live_sessions(),
            uptime_s: self.inner.metrics.uptime().as_secs(),
        })
    }

    async fn discover(&self, _: EmptyParams) -> Result<Discovery, ApiError> {
        let token_file = self.inner.state.path("token");
        Ok(Discovery::new(
            &self.inner.info.registration(),
            &token_file.display().to_string(),
        ))
    }

    async fn daemon_status(&self, _: EmptyParams) -> Result<DaemonStatus, ApiError> {
        Ok(self.status_now())
    }

    async fn daemon_logs(&self, p: LogsParams) -> Result<LogPage, ApiError> {
        self.read_logs(p).await
    }

    async fn hooks_list(&self, _: EmptyParams) -> Result<HookList, ApiError> {
        Ok(self.hooks_list_now())
    }

    async fn hooks_test(&self, p: HookTestParams) -> Result<HookTestResult, ApiError> {
        self.hooks_test_now(p).await
    }

    async fn shutdown(&self, params: ShutdownParams) -> Result<Ack, ApiError> {
        let grace = Duration::from_secs(params.grace_s.unwrap_or(DEFAULT_GRACE.as_secs()).min(600));
        tracing::info!(grace_s = grace.as_secs(), "shutdown requested over the API");
        self.begin_shutdown(grace);
        Ok(Ack::OK)
    }

    async fn reload(&self, _: EmptyParams) -> Result<ReloadResult, ApiError> {
        self.reload_config().await
    }

    async fn restart(&self, p: RestartParams) -> Result<RestartResult, ApiError> {
        self.restart_onto_disk_binary(p).await
    }

    async fn session_start(&self, params: StartSessionParams) -> Result<SessionView, ApiError> {
        self.start_session(params).await
    }

    async fn session_list(&self, p: ListSessionsParams) -> Result<SessionList, ApiError> {
        Ok(self.list_sessions(p.include_archived))
    }

    async fn session_rename(&self, p: RenameParams) -> Result<SessionView, ApiError> {
        self.rename_session(&p.session_id, &p.title).await
    }

    async fn session_archive(&self, p: SessionRef) -> Result<SessionView, ApiError> {
        self.archive_session(&p.session_id, true).await
    }

    async fn session_unarchive(&self, p: SessionRef) -> Result<SessionView, ApiError> {
        self.archive_session(&p.session_id, false).await
    }

    async fn session_delete(&self, p: SessionRef) -> Result<DeleteResult, ApiError> {
        self.delete_session(&p.session_id).await
    }

    async fn session_get(&self, p: SessionRef) -> Result<SessionView, ApiError> {
        Ok(self.session(&p.session_id)?.view())
    }

    async fn session_send(&self, p: SendMessageParams) -> Result<SendMessageResult, ApiError> {
        let id = p.session_id.clone();
        self.send_message(&id, p).await
    }

    async fn session_cancel(&self, p: SessionRef) -> Result<SessionView, ApiError> {
        self.cancel_session(&p.session_id).await
    }

    async fn session_pause(&self, p: SessionRef) -> Result<SessionView, ApiError> {
        self.pause_session(&p.session_id, "client request").await
    }

    async fn session_resume(&self, p: SessionRef) -> Result<SessionView, ApiError> {
        self.resume_session(&p.session_id).await
    }

    async fn session_resume_all(&self, _: EmptyParams) -> Result<ResumeAllResult, ApiError> {
        Ok(self.resume_all().await)
    }

    async fn session_kill(&self, p: SessionRef) -> Result<SessionView, ApiError> {
        self.kill_session(&p.session_id).await
    }

    async fn session_journal(&self, p: JournalParams) -> Result<JournalPage, ApiError> {
        let limit = page_limit(p.limit);
        self.journal_page(&p.session_id, p.since_seq.unwrap_or(1), limit)
            .await
    }

    async fn session_tail(&self, p: TailParams) -> Result<JournalPage, ApiError> {
        let wait = Duration::from_millis(p.wait_ms.unwrap_or(0).min(TAIL_MAX_WAIT_MS));
        let deadline = tokio::time::Instant::now() + wait;
        let limit = page_limit(p.limit);
        loop {
            let page = self.journal_page(&p.session_id, p.since_seq, limit).await?;
            let now = tokio::time::Instant::now();
            if !page.records.is_empty() || now >= deadline {
                return Ok(page);
            }
            tokio::time::sleep(TAIL_POLL.min(deadline - now)).await;
        }
    }

    async fn session_repair(&self, p: SessionRef) -> Result<RepairResult, ApiError> {
        self.repair_session(&p.session_id).await
    }

    async fn session_approve(&self, p: ApproveParams) -> Result<SessionView, ApiError> {
        self.approve(
            &p.session_id,
            &p.approval_id,
            p.decision.as_str(),
            p.remember,
        )
        .await
    }

    async fn session_compact(&self, p: SessionRef) -> Result<r1_proto::CompactResult, ApiError> {
        self.compact_session(&p.session_id).await
    }

    async fn session_debug_state(
        &self,
        p: SessionRef,
    ) -> Result<r1_proto::SessionDebugState, ApiError> {
        self.debug_state(&p.session_id).await
    }

    async fn lanes_list(&self, p: SessionRef) -> Result<LaneList, ApiError> {
        self.lane_list(&p.session_id).await
    }

    async fn lanes_get(&self, p: LaneRef) -> Result<LaneView, ApiError> {
        self.lane_list(&p.session_id)
            .await?
            .lanes
            .into_iter()
            .find(|l| l.lane == p.lane_id)
            .ok_or_else(|| {
                ApiError::not_found(format!(
                    "lane {} not found in session {}",
                    p.lane_id, p.session_id
                ))
            })
    }

    async fn lanes_kill(&self, p: LaneRef) -> Result<LaneList, ApiError> {
        self.kill_lane(&p.session_id, &p.lane_id).await
    }

    async fn lanes_pin(&self, p: PinLaneParams) -> Result<LaneList, ApiError> {
        self.pin_lane(&p.session_id, &p.lane_id, p.pinned).await
    }

    async fn cortex_notes(&self, p: CortexNotesParams) -> Result<NoteList, ApiError> {
        let s = self.session(&p.session_id)?;
        let since = p.since_seq.unwrap_or(0);
        Ok(NoteList {
            notes: s
                .snapshot()
                .notes
                .iter()
                .filter(|n| n.seq >= since)
                .cloned()
                .collect(),
        })
    }

    async fn cortex_publish(&self, p: CortexPublishParams) -> Result<NoteView, ApiError> {
        let s = self.session(&p.session_id)?;
        let rec = crate::cortex::note_record(p.note, "client")?;
        let note_id = rec.note_id.clone();
        s.command(crate::transition::Command::Publish(rec)).await?;
        s.snapshot()
            .notes
            .iter()
            .rev()
            .find(|n| n.note_id == note_id)
            .cloned()
            .ok_or_else(|| ApiError::internal("the note was journaled but is not on the board"))
    }

    async fn cortex_lobes_list(&self, p: SessionRef) -> Result<LobeList, ApiError> {
        self.lobes_of(&p.session_id)
    }

    async fn cortex_lobe_pause(&self, p: LobeRef) -> Result<LobeList, ApiError> {
        self.set_lobe(&p, true).await
    }

    async fn cortex_lobe_resume(&self, p: LobeRef) -> Result<LobeList, ApiError> {
        self.set_lobe(&p, false).await
    }

    async fn engines_list(&self, _: EmptyParams) -> Result<EngineList, ApiError> {
        Ok(EngineList {
            engines: crate::engines::views(&self.engine_list(), &self.default_engine_name()),
        })
    }

    async fn worktree_list(&self, p: WorktreeListParams) -> Result<WorktreeList, ApiError> {
        Ok(WorktreeList {
            worktrees: self.worktrees().list(p.session_id.as_deref()).await,
        })
    }

    async fn worktree_diff(&self, p: WorktreeDiffParams) -> Result<WorktreeDiff, ApiError> {
        self.worktrees()
            .diff(&p.worktree_id, p.full.unwrap_or(false))
            .await
    }

    async fn workdir_read(&self, p: WorkdirReadParams) -> Result<WorkdirFile, ApiError> {
        // The session's workdir is where its tools run: its worktree when it has one.
        let workdir = std::path::PathBuf::from(&self.session(&p.session_id)?.workdir);
        let protected = self.protected();
        let max = p
            .max_bytes
            .unwrap_or(r1_proto::WORKDIR_READ_DEFAULT_BYTES)
            .min(r1_proto::WORKDIR_READ_MAX_BYTES);
        tokio::task::spawn_blocking(move || {
            crate::workdir::read(&workdir, &protected, &p.path, max)
        })
        .await
        .map_err(|_| ApiError::internal("the read of the workdir file did not finish"))?
    }

    async fn worktree_merge(
        &self,
        p: WorktreeMergeParams,
    ) -> Result<WorktreeMergeResult, ApiError> {
        self.worktrees().merge(&p.worktree_id, p.strategy).await
    }

    async fn worktree_clean(&self, p: WorktreeCleanParams) -> Result<WorktreeView, ApiError> {
        self.worktrees()
            .clean(&p.worktree_id, p.force.unwrap_or(false))
            .await
    }

    async fn mission_create(&self, p: MissionCreateParams) -> Result<MissionView, ApiError> {
        self.create_mission(p).await
    }

    async fn mission_list(&self, p: MissionListParams) -> Result<MissionList, ApiError> {
        Ok(self.list_missions(&p))
    }

    async fn mission_get(&self, p: MissionRef) -> Result<MissionView, ApiError> {
        self.get_mission(&p.mission_id).await
    }

    async fn mission_cancel(&self, p: MissionRef) -> Result<MissionView, ApiError> {
        self.cancel_mission(&p.mission_id).await
    }

    async fn mission_resume(&self, p: MissionRef) -> Result<MissionView, ApiError> {
        self.resume_mission(&p.mission_id).await
    }

    async fn search(&self, p: SearchParams) -> Result<SearchResult, ApiError> {
        let mut r = self.search_index().search(p).await?;
        // A deleted session's entries may still be on their way out of the index: it
        // is gone from the moment its delete was answered.
        r.hits.retain(|h| self.session(&h.session_id).is_ok());
        // The index knows the title a session started with; a rename shows at once.
        for h in &mut r.hits {
            if let Ok(s) = self.session(&h.session_id) {
                if let Some(t) = s.labels().title {
                    h.session_title = Some(t);
                }
            }
        }
        Ok(r)
    }

    async fn search_reindex(&self, _: EmptyParams) -> Result<ReindexResult, ApiError> {
        self.search_index().reindex().await
    }

    async fn verify_build(&self, p: VerifyParams) -> Result<VerifyResult, ApiError> {
        self.verify(VerifyStep::Build, p, self.shutdown_token().child_token())
            .await
    }

    async fn verify_test(&self, p: VerifyParams) -> Result<VerifyResult, ApiError> {
        self.verify(VerifyStep::Test, p, self.shutdown_token().child_token())
            .await
    }

    async fn verify_lint(&self, p: VerifyParams) -> Result<VerifyResult, ApiError> {
        self.verify(VerifyStep::Lint, p, self.shutdown_token().child_token())
            .await
    }

    async fn web_navigate(&self, p: WebNavigateParams) -> Result<WebPageView, ApiError> {
        let url = crate::webdrive::same_origin_url(&p.url, &self.inner.info.url)?;
        let cx = self.web_context(true)?;
        self.inner
            .web
            .call(crate::webdrive::Op::Navigate(url), cx)
            .await
    }

    async fn web_click(&self, p: WebClickParams) -> Result<WebPageView, ApiError> {
        let cx = self.web_context(false)?;
        self.inner
            .web
            .call(crate::webdrive::Op::Click(p.selector), cx)
            .await
    }

    async fn web_fill(&self, p: WebFillParams) -> Result<WebPageView, ApiError> {
        let cx = self.web_context(false)?;
        self.inner
            .web
            .call(crate::webdrive::Op::Fill(p.selector, p.value), cx)
            .await
    }

    async fn web_snapshot(&self, _: EmptyParams) -> Result<WebPageView, ApiError> {
        let cx = self.web_context(false)?;
        self.inner.web.call(crate::webdrive::Op::Snapshot, cx).await
    }

    async fn tui_open(&self, p: r1_proto::TuiOpenParams) -> Result<r1_proto::TuiOpened, ApiError> {
        crate::tui_host::open(self, p).await
    }

    async fn tui_close(&self, p: r1_proto::TuiRef) -> Result<Ack, ApiError> {
        crate::tui_host::close(self, p)
    }

    async fn tui_press_key(
        &self,
        p: r1_proto::TuiKeyParams,
    ) -> Result<r1_proto::TuiSnapshot, ApiError> {
        crate::tui_host::press_key(self, p).await
    }

    async fn tui_snapshot(&self, p: r1_proto::TuiRef) -> Result<r1_proto::TuiSnapshot, ApiError> {
        crate::tui_host::read(self, p).await
    }

    async fn tui_focus_lane(
        &self,
        p: r1_proto::TuiFocusLaneParams,
    ) -> Result<r1_proto::TuiSnapshot, ApiError> {
        crate::tui_host::focus_lane(self, p).await
    }

    async fn tui_get_model(
        &self,
        p: r1_proto::TuiGetModelParams,
    ) -> Result<r1_proto::TuiModelView, ApiError> {
        crate::tui_host::get_model(self, p).await
    }
}

/// How often `session.tail` looks at the journal again while it waits: below what an
/// agent notices, and one small read per tick for the daemon.
const TAIL_POLL: Duration = Duration::from_millis(50);
/// The longest `session.tail` waits: a minute keeps one call under the request
/// timeouts MCP clients commonly use.
const TAIL_MAX_WAIT_MS: u64 = 60_000;

/// A journal page's size: 1000 records unless asked, clamped to what the journal
/// serves at once.
fn page_limit(limit: Option<u64>) -> usize {
    usize::try_from(limit.unwrap_or(1000)).unwrap_or(usize::MAX)
}
