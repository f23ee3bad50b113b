//! Missions: a prompt run as a session of its own, in a worktree of its own, by a
//! bounded pool of workers, then checked by the project's verify commands.
//!
//! The registry is one JSON file per mission in `$R1_HOME/missions` (written
//! atomically on every change), so missions survive restarts: queued ones stay queued,
//! ones that were running come back `paused` and hold no worker until
//! `mission.resume` (or resuming their session) queues them again.
//!
//! One scheduler task hands queued missions to at most `[missions] workers` runners,
//! oldest first. A runner drives one mission through an *executor*; `local` (the only
//! one today) runs it as a session of this daemon: start the session (with its
//! worktree), send the prompt, wait for the turn to end, run the verify steps in lanes
//! of the session. The mission record does not depend on where it runs: it names its
//! executor and keeps the executor's ids (`session_id`, `remote_id`), and its log is
//! read from the session's journal, which a remote executor would mirror.
//!
//! Every change goes through [`Missions::update`], which refuses to move a mission out
//! of a final state, so a cancel that races a runner's last step always wins.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Mutex;

use r1_proto::events::{bus, SessionMessage};
use r1_proto::{
    ApiError, EventData, MissionCreateParams, MissionList, MissionListParams, MissionState,
    MissionTimings, MissionView, SendMessageParams, SessionState, StartSessionParams, VerifyParams,
    WorktreeRequest,
};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::fsutil::{now_rfc3339, random_hex, write_atomic};
use crate::Hub;

/// The longest prompt a mission takes (the session's message limit applies too).
const MAX_PROMPT_BYTES: usize = 256 * 1024;
/// How many lines of its session's log `mission.get` returns.
const LOG_TAIL_LINES: u64 = 20;
/// The most characters of one log line.
const LOG_LINE_CHARS: usize = 200;
/// The executor that runs missions as sessions of this daemon.
const LOCAL: &str = "local";

/// One mission as the registry keeps it on disk.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct MissionRecord {
    #[serde(flatten)]
    view: MissionView,
    /// Creation order, for "oldest first" (ids are random).
    order: u64,
    /// The session's turn ended well; a resumed mission goes straight to verify.
    #[serde(default)]
    turn_done: bool,
}

/// The registry of missions, the queue and the worker pool.
pub(crate) struct Missions {
    /// `$R1_HOME/missions`.
    dir: PathBuf,
    /// The pool's size (`[missions] workers`), changed live by a config reload: a
    /// larger pool starts waiting missions at once, a smaller one lets running
    /// missions finish and starts no more until the count is under it.
    workers: std::sync::atomic::AtomicUsize,
    inner: Mutex<Inner>,
    /// Wakes the scheduler: a mission was queued or a worker freed.
    wake: Notify,
    /// Writes of records happen one at a time, each writing the newest state, so an
    /// older state can never overwrite a newer one on disk.
    save_lock: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct Inner {
    records: BTreeMap<String, MissionRecord>,
    /// Missions holding a worker now, with the token that stops their runner.
    running: HashMap<String, CancellationToken>,
    next_order: u64,
}

/// How a mission's turn ended.
enum TurnOutcome {
    Done,
    Failed(String),
    Paused(String),
    Stopped,
}

impl Missions {
    /// The registry in `dir` (created 0700 if missing) with every mission found there;
    /// missions that were running when the daemon stopped are marked `paused`.
    pub(crate) fn load(dir: PathBuf, workers: usize) -> Missions {
        let mut inner = Inner::default();
        for r in crate::fsutil::load_records::<MissionRecord>(&dir, "ms_", "mission") {
            inner.next_order = inner.next_order.max(r.order + 1);
            inner.records.insert(r.view.id.clone(), r);
        }
        Missions {
            dir,
            workers: std::sync::atomic::AtomicUsize::new(workers),
            inner: Mutex::new(inner),
            wake: Notify::new(),
            save_lock: tokio::sync::Mutex::new(()),
        }
    }

    /// How many missions are in each state (states with none are left out).
    pub(crate) fn count_by_state(&self) -> HashMap<MissionState, u64> {
        let mut by = HashMap::new();
        for r in self.lock().records.values() {
            *by.entry(r.view.state).or_default() += 1;
        }
        by
    }

    /// Resizes the worker pool (a config reload) and lets the scheduler act on it.
    pub(crate) fn set_workers(&self, workers: usize) {
        let old = self
            .workers
            .swap(workers, std::sync::atomic::Ordering::Relaxed);
        if old != workers {
            self.wake.notify_one();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn view(&self, id: &str) -> Result<MissionView, ApiError> {
        self.lock()
            .records
            .get(id)
            .map(|r| r.view.clone())
            .ok_or_else(|| ApiError::not_found(format!("mission {id} not found")))
    }

    /// Writes mission `id` as it is now, durably.
    async fn save(&self, id: &str) -> Result<(), ApiError> {
        let _order = self.save_lock.lock().await;
        let Some(rec) = self.lock().records.get(id).cloned() else {
            return Ok(());
        };
        let path = self.dir.join(format!("{id}.json"));
        let bytes = serde_json::to_vec_pretty(&rec)
            .map_err(|_| ApiError::internal("cannot encode a mission record"))?;
        tokio::task::spawn_blocking(move || write_atomic(&path, &bytes))
            .await
            .map_err(|_| ApiError::internal("mission record writer failed"))?
            .map_err(|e| {
                tracing::error!(mission = %id, "cannot write the mission record: {e}");
                ApiError::internal("could not write the mission record")
            })
    }

    /// Changes mission `id` with `f` unless it is final (then nothing changes and
    /// `false` is returned), and writes it.
    async fn update(&self, id: &str, f: impl FnOnce(&mut MissionRecord)) -> Result<bool, ApiError> {
        {
            let mut inner = self.lock();
            let Some(rec) = inner.records.get_mut(id) else {
                return Err(ApiError::not_found(format!("mission {id} not found")));
            };
            if rec.view.state.is_final() {
                return Ok(false);
            }
            f(rec);
        }
        self.save(id).await?;
        Ok(true)
    }

    /// Marks missions that were running when the daemon stopped `paused` (and says so
    /// on the bus); called once at start, before the daemon registers (so no client
    /// reads a mission as `running` that nothing runs) and before the scheduler runs.
    pub(crate) async fn settle_after_restart(&self, hub: &Hub) {
        let interrupted: Vec<String> = self
            .lock()
            .records
            .values()
            .filter(|r| {
                matches!(
                    r.view.state,
                    MissionState::Running | MissionState::Verifying
                )
            })
            .map(|r| r.view.id.clone())
            .collect();
        let reason = "the daemon stopped while the mission ran".to_string();
        for id in interrupted {
            let done = self
                .update(&id, |r| {
                    r.view.state = MissionState::Paused;
                    r.view.reason = Some(reason.clone());
                })
                .await;
            if matches!(done, Ok(true)) {
                hub.bus().publish(&bus::MissionPaused {
                    mission_id: id,
                    reason: reason.clone(),
                });
            }
        }
    }

    /// Whether a mission runs in session `session_id` (it runs its own verify steps).
    pub(crate) fn owns_session(&self, session_id: &str) -> bool {
        self.lock()
            .records
            .values()
            .any(|r| r.view.session_id.as_deref() == Some(session_id))
    }

    /// Queues a paused mission again when its session was resumed.
    pub(crate) async fn session_resumed(&self, session_id: &str) {
        let paused: Vec<String> = self
            .lock()
            .records
            .values()
            .filter(|r| {
                r.view.state == MissionState::Paused
                    && r.view.session_id.as_deref() == Some(session_id)
            })
            .map(|r| r.view.id.clone())
            .collect();
        for id in paused {
            let _ = self.requeue(&id).await;
        }
    }

    async fn requeue(&self, id: &str) -> Result<(), ApiError> {
        let queued = self
            .update(id, |r| {
                if r.view.state == MissionState::Paused {
                    r.view.state = MissionState::Queued;
                    r.view.reason = None;
                }
            })
            .await?;
        if queued {
            self.wake.notify_one();
        }
        Ok(())
    }
}

impl Hub {
    /// `mission.create`.
    pub async fn create_mission(&self, p: MissionCreateParams) -> Result<MissionView, ApiError> {
        let spec = p.spec;
        if spec.prompt.trim().is_empty() {
            return Err(ApiError::validation("spec.prompt must not be empty"));
        }
        if spec.prompt.len() > MAX_PROMPT_BYTES.min(self.config().limits.max_message_bytes) {
            return Err(ApiError::validation(format!(
                "spec.prompt is {} bytes; the limit is {} bytes",
                spec.prompt.len(),
                MAX_PROMPT_BYTES.min(self.config().limits.max_message_bytes)
            )));
        }
        // The checks a session start would make, now rather than when a worker is free.
        self.validate_workdir(&spec.workdir)?;
        if let Some(engine) = &spec.engine {
            if !self.engine_list().iter().any(|e| &e.name == engine) {
                return Err(ApiError::validation(format!("unknown engine {engine:?}")));
            }
        }
        if let Some(parent) = &p.session_id {
            self.session(parent)?;
        }
        let title = spec.title.clone().unwrap_or_else(|| title_of(&spec.prompt));
        let id = format!(
            "ms_{}",
            random_hex(8).map_err(|_| ApiError::internal("no randomness"))?
        );
        let missions = self.missions();
        let view = MissionView {
            id: id.clone(),
            state: MissionState::Queued,
            title: title.clone(),
            spec,
            executor: LOCAL.to_string(),
            remote_id: None,
            parent_session_id: p.session_id,
            session_id: None,
            worktree_id: None,
            verify: Vec::new(),
            timings: MissionTimings {
                created_at: now_rfc3339(),
                ..MissionTimings::default()
            },
            tokens_used: 0,
            reason: None,
            log_tail: Vec::new(),
        };
        {
            let mut inner = missions.lock();
            let order = inner.next_order;
            inner.next_order += 1;
            inner.records.insert(
                id.clone(),
                MissionRecord {
                    view: view.clone(),
                    order,
                    turn_done: false,
                },
            );
        }
        if let Err(e) = missions.save(&id).await {
            missions.lock().records.remove(&id);
            return Err(e);
        }
        // The answer is the mission as created (queued), whatever a worker (woken by
        // an earlier create) did with it meanwhile.
        self.bus().publish(&bus::MissionQueued {
            mission_id: id.clone(),
            title,
        });
        missions.wake.notify_one();
        Ok(view)
    }

    /// `mission.list`.
    pub fn list_missions(&self, p: &MissionListParams) -> MissionList {
        let inner = self.missions().lock();
        let mut records: Vec<&MissionRecord> = inner
            .records
            .values()
            .filter(|r| p.state.is_none_or(|s| r.view.state == s))
            .filter(|r| {
                p.session_id.as_deref().is_none_or(|s| {
                    r.view.session_id.as_deref() == Some(s)
                        || r.view.parent_session_id.as_deref() == Some(s)
                })
            })
            .collect();
        records.sort_by_key(|r| r.order);
        MissionList {
            missions: records
                .into_iter()
                .map(|r| self.with_usage(r.view.clone()))
                .collect(),
        }
    }

    /// `mission.get`: the mission with the tail of its session's log.
    pub async fn get_mission(&self, id: &str) -> Result<MissionView, ApiError> {
        let mut view = self.with_usage(self.missions().view(id)?);
        if let Some(sid) = view.session_id.clone() {
            view.log_tail = self.log_tail(&sid).await;
        }
        Ok(view)
    }

    /// `mission.cancel`: final at once; the runner (if any) is stopped, the session's
    /// turn cancelled and its verify lane killed.
    pub async fn cancel_mission(&self, id: &str) -> Result<MissionView, ApiError> {
        let missions = self.missions();
        let before = missions.view(id)?;
        let cancelled = missions
            .update(id, |r| {
                r.view.state = MissionState::Cancelled;
                r.view.reason = Some("cancelled by a client".into());
                r.view.timings.finished_at = Some(now_rfc3339());
            })
            .await?;
        if !cancelled {
            return missions.view(id);
        }
        let token = missions.lock().running.get(id).cloned();
        if let Some(t) = token {
            t.cancel();
        }
        if matches!(
            before.state,
            MissionState::Running | MissionState::Verifying
        ) {
            if let Some(sid) = &before.session_id {
                if let Err(e) = self.cancel_session(sid).await {
                    tracing::warn!(mission = %id, "cannot cancel the mission's turn: {}", e.message);
                }
            }
        }
        self.bus().publish(&bus::MissionFinished {
            mission_id: id.to_string(),
            state: MissionState::Cancelled,
            reason: Some("cancelled by a client".into()),
        });
        let view = missions.view(id)?;
        self.fire_mission_finished(&view);
        Ok(view)
    }

    /// `mission.resume`.
    pub async fn resume_mission(&self, id: &str) -> Result<MissionView, ApiError> {
        let missions = self.missions();
        missions.view(id)?;
        missions.requeue(id).await?;
        missions.view(id)
    }

    fn with_usage(&self, mut view: MissionView) -> MissionView {
        if let Some(s) = view
            .session_id
            .as_deref()
            .and_then(|s| self.session(s).ok())
        {
            view.tokens_used = s.tokens();
        }
        view
    }

    /// The last lines of session `sid`'s log, one per record.
    async fn log_tail(&self, sid: &str) -> Vec<String> {
        let Ok(s) = self.session(sid) else {
            return Vec::new();
        };
        let last = s.view().last_seq;
        let since = last.saturating_sub(LOG_TAIL_LINES * 4).max(1);
        let Ok(page) = self
            .journal_page(sid, since, (LOG_TAIL_LINES * 4) as usize)
            .await
        else {
            return Vec::new();
        };
        let mut lines: Vec<String> = page.records.iter().filter_map(log_line).collect();
        let keep = lines.len().saturating_sub(LOG_TAIL_LINES as usize);
        lines.drain(..keep);
        lines
    }

    /// The scheduler: hands queued missions to free workers, oldest first, until the
    /// daemon stops.
    pub(crate) async fn mission_scheduler(self) {
        let missions = self.missions();
        loop {
            loop {
                let next = {
                    let mut inner = missions.lock();
                    if inner.running.len()
                        >= missions.workers.load(std::sync::atomic::Ordering::Relaxed)
                    {
                        break;
                    }
                    let next = inner
                        .records
                        .values()
                        .filter(|r| {
                            r.view.state == MissionState::Queued
                                && !inner.running.contains_key(&r.view.id)
                        })
                        .min_by_key(|r| r.order)
                        .map(|r| r.view.id.clone());
                    let Some(id) = next else { break };
                    let token = self.shutdown_token().child_token();
                    inner.running.insert(id.clone(), token.clone());
                    (id, token)
                };
                let hub = self.clone();
                tokio::spawn(async move {
                    let (id, token) = next;
                    hub.run_mission(&id, &token).await;
                    hub.missions().lock().running.remove(&id);
                    hub.missions().wake.notify_one();
                });
            }
            tokio::select! {
                () = missions.wake.notified() => {}
                () = self.shutdown_token().cancelled() => return,
            }
        }
    }

    /// Runs mission `id` on this daemon (the `local` executor) until it is final or
    /// paused; `stop` is cancelled by `mission.cancel` and by shutdown.
    async fn run_mission(&self, id: &str, stop: &CancellationToken) {
        let missions = self.missions();
        let Ok(view) = missions.view(id) else { return };
        let turn_done = missions.lock().records.get(id).is_some_and(|r| r.turn_done);
        let outcome = if turn_done {
            TurnOutcome::Done
        } else {
            match self.mission_turn(&view, stop).await {
                Ok(o) => o,
                Err(e) => TurnOutcome::Failed(e.message),
            }
        };
        match outcome {
            TurnOutcome::Done => {}
            TurnOutcome::Failed(reason) => {
                return self.finish_mission(id, MissionState::Failed, reason).await;
            }
            TurnOutcome::Paused(reason) => {
                let paused = missions
                    .update(id, |r| {
                        r.view.state = MissionState::Paused;
                        r.view.reason = Some(reason.clone());
                    })
                    .await;
                if matches!(paused, Ok(true)) {
                    self.bus().publish(&bus::MissionPaused {
                        mission_id: id.to_string(),
                        reason,
                    });
                }
                return;
            }
            TurnOutcome::Stopped => return,
        }
        let _ = missions.update(id, |r| r.turn_done = true).await;
        let Ok(view) = missions.view(id) else { return };
        let steps = view.spec.verify.clone().unwrap_or_default();
        let Some(sid) = view.session_id.clone() else {
            return;
        };
        if !steps.is_empty() {
            let verifying = missions
                .update(id, |r| {
                    r.view.state = MissionState::Verifying;
                    r.view.timings.verify_started_at = Some(now_rfc3339());
                })
                .await;
            if !matches!(verifying, Ok(true)) {
                return;
            }
        }
        for step in steps {
            let params = VerifyParams {
                worktree_id: None,
                session_id: Some(sid.clone()),
                packages: Vec::new(),
            };
            let result = self.verify(step, params, stop.clone()).await;
            if stop.is_cancelled() {
                // Cancelled (the cancel already made it final) or shutting down (the
                // next start pauses it).
                return;
            }
            let result = match result {
                Ok(r) => r,
                Err(e) => {
                    let reason = format!("verify {} could not run: {}", step.as_str(), e.message);
                    return self.finish_mission(id, MissionState::Failed, reason).await;
                }
            };
            let ok = result.ok;
            let summary = result.summary.clone();
            let _ = missions
                .update(id, |r| r.view.verify.push(result.clone()))
                .await;
            self.bus().publish(&bus::MissionVerified {
                mission_id: id.to_string(),
                step,
                ok,
                summary: summary.clone(),
            });
            if !ok {
                let reason = format!("verify {} failed: {summary}", step.as_str());
                return self.finish_mission(id, MissionState::Failed, reason).await;
            }
        }
        self.finish_mission(id, MissionState::Succeeded, String::new())
            .await;
    }

    /// Starts (or continues) the mission's session and waits for its turn to end.
    async fn mission_turn(
        &self,
        view: &MissionView,
        stop: &CancellationToken,
    ) -> Result<TurnOutcome, ApiError> {
        let missions = self.missions();
        let id = view.id.as_str();
        let (sid, text, key) = match &view.session_id {
            None => {
                let spec = &view.spec;
                let session = self
                    .start_session(StartSessionParams {
                        workdir: spec.workdir.clone(),
                        engine: spec.engine.clone(),
                        model: spec.model.clone(),
                        title: Some(view.title.clone()),
                        policy: spec.policy.clone(),
                        token_budget: None,
                        worktree: spec
                            .worktree
                            .unwrap_or(true)
                            .then_some(WorktreeRequest::Enabled(true)),
                    })
                    .await?;
                let worktree_id = self
                    .worktrees()
                    .list(Some(&session.id))
                    .await
                    .first()
                    .map(|w| w.id.clone());
                let started = missions
                    .update(id, |r| {
                        r.view.state = MissionState::Running;
                        r.view.session_id = Some(session.id.clone());
                        r.view.worktree_id = worktree_id.clone();
                        r.view.timings.started_at = Some(now_rfc3339());
                    })
                    .await?;
                if !started {
                    // Cancelled while its session was being made.
                    return Ok(TurnOutcome::Stopped);
                }
                self.bus().publish(&bus::MissionStarted {
                    mission_id: id.to_string(),
                    session_id: session.id.clone(),
                    worktree_id,
                });
                (session.id, spec.prompt.clone(), id.to_string())
            }
            Some(sid) => {
                // A resumed mission: its session continues where the restart stopped it.
                if !missions
                    .update(id, |r| r.view.state = MissionState::Running)
                    .await?
                {
                    return Ok(TurnOutcome::Stopped);
                }
                self.bus().publish(&bus::MissionStarted {
                    mission_id: id.to_string(),
                    session_id: sid.clone(),
                    worktree_id: view.worktree_id.clone(),
                });
                if self.session(sid)?.state() == SessionState::Paused {
                    self.resume_session(sid).await?;
                }
                let text = format!(
                    "The daemon restarted while you were working on this mission. Continue it where you left off:\n\n{}",
                    view.spec.prompt
                );
                let key = format!(
                    "{id}-resume-{}",
                    random_hex(4).map_err(|_| ApiError::internal("no randomness"))?
                );
                (sid.clone(), text, key)
            }
        };
        let session = self.session(&sid)?;
        let mut watch = session.watch_view();
        if stop.is_cancelled() {
            // Cancelled while its session was being made: send nothing.
            return Ok(TurnOutcome::Stopped);
        }
        let sent = self
            .send_message(
                &sid,
                SendMessageParams {
                    session_id: sid.clone(),
                    text,
                    client_message_id: Some(key),
                },
            )
            .await?;
        // The send was answered, so the session shows the turn (busy) or its end.
        let state = loop {
            let state = watch.borrow_and_update().state;
            if !matches!(state, SessionState::Busy | SessionState::WaitingOnApproval) {
                break state;
            }
            tokio::select! {
                changed = watch.changed() => {
                    if changed.is_err() {
                        return Ok(TurnOutcome::Failed("its session stopped".into()));
                    }
                }
                () = stop.cancelled() => break state,
            }
        };
        if stop.is_cancelled() {
            // A cancel that raced the send may have found no turn to stop yet: the
            // turn this runner started is stopped here (a shutdown pauses it anyway).
            if missions
                .view(id)
                .is_ok_and(|v| v.state == MissionState::Cancelled)
            {
                let _ = self.cancel_session(&sid).await;
            }
            return Ok(TurnOutcome::Stopped);
        }
        Ok(match state {
            SessionState::Paused => TurnOutcome::Paused(
                "its session was paused; resume it (or the mission) to go on".into(),
            ),
            SessionState::Ended => TurnOutcome::Failed("its session was ended".into()),
            SessionState::Error => TurnOutcome::Failed(
                session
                    .view()
                    .error
                    .unwrap_or_else(|| "its session failed".into()),
            ),
            _ => match self.turn_failure(&sid, sent.seq, &sent.message_id).await {
                Some(reason) => TurnOutcome::Failed(reason),
                None => TurnOutcome::Done,
            },
        })
    }

    /// Why the turn of `message_id` (sent at `seq`) failed or was cancelled, from the
    /// journal; `None` when it completed.
    async fn turn_failure(&self, sid: &str, seq: u64, message_id: &str) -> Option<String> {
        let mut since = seq;
        loop {
            let page = self.journal_page(sid, since, 1000).await.ok()?;
            for r in &page.records {
                match r.event() {
                    Ok(EventData::SessionError(e))
                        if e.message_id.as_deref() == Some(message_id) =>
                    {
                        return Some(format!("the turn failed: {}", e.message));
                    }
                    Ok(EventData::SessionCancelled(c)) if c.message_id == message_id => {
                        return Some("the turn was cancelled".into());
                    }
                    _ => {}
                }
            }
            if page.records.is_empty() || page.next_seq <= since {
                return None;
            }
            since = page.next_seq;
        }
    }

    async fn finish_mission(&self, id: &str, state: MissionState, reason: String) {
        let reason = (!reason.is_empty()).then_some(reason);
        let finished = self
            .missions()
            .update(id, |r| {
                r.view.state = state;
                r.view.reason = reason.clone();
                r.view.timings.finished_at = Some(now_rfc3339());
            })
            .await;
        if matches!(finished, Ok(true)) {
            self.bus().publish(&bus::MissionFinished {
                mission_id: id.to_string(),
                state,
                reason,
            });
            if let Ok(view) = self.missions().view(id) {
                self.fire_mission_finished(&view);
            }
        }
    }
}

/// A mission's default title: its prompt's first line, cut to 80 characters.
fn title_of(prompt: &str) -> String {
    let first = prompt.trim().lines().next().unwrap_or_default();
    let mut t: String = first.chars().take(80).collect();
    if first.chars().count() > 80 {
        t.push('…');
    }
    t
}

/// One line of a mission's log for a record, or `None` for records not worth a line
/// (deltas of a message that is journaled whole).
fn log_line(r: &r1_proto::EventRecord) -> Option<String> {
    let text = match r.event().ok()? {
        EventData::SessionMessage(SessionMessage::User(m)) => format!("user: {}", m.text),
        EventData::SessionMessage(SessionMessage::Assistant(m)) => {
            format!("assistant: {}", m.text)
        }
        EventData::LaneDelta(d) => format!("[{}] {}", d.lane, d.text.trim_end()),
        EventData::LaneStatus(s) => format!("[{}] {}", s.lane, s.status.as_str()),
        EventData::ToolStarted(t) => format!("tool {} started", t.tool),
        EventData::ToolCompleted(t) => format!(
            "tool {} {}",
            t.tool.unwrap_or_default(),
            if t.is_error { "failed" } else { "done" }
        ),
        EventData::SessionError(e) => format!("error: {}", e.message),
        EventData::VerifyCompleted(v) => format!("verify {}: {}", v.step.as_str(), v.summary),
        EventData::SessionPaused(p) => format!("paused: {}", p.reason),
        EventData::SessionCancelled(_) => "cancelled".to_string(),
        EventData::ApprovalRequested(a) => format!("approval asked for {}", a.tool),
        _ => return None,
    };
    let one: String = text.replace('\n', " ⏎ ");
    let mut line = format!("{} {one}", r.seq);
    if line.chars().count() > LOG_LINE_CHARS {
        line = line.chars().take(LOG_LINE_CHARS).collect::<String>() + "…";
    }
    Some(line)
}
