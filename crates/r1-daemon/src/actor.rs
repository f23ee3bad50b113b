//! The session actor: one tokio task owns a session's state and takes every command on
//! a channel, in order. For each command it asks the pure rules
//! ([`crate::transition::transition`]) what to write, journals that, and only then
//! folds the records into its state and publishes the new view (journal first: a failed
//! write changes nothing). Everyone else holds a [`Session`] handle, which sends
//! commands and reads the last published view; no lock guards session state.
//!
//! A turn runs as a task of its own (the provider stream, tools in lanes) and talks to
//! the actor like any client: every record it makes goes through the actor, a tool
//! call that needs approval asks the actor and waits for the decision, and its end is a
//! command ([`Msg::TurnEnded`]). A pause, kill or cancel cancels the turn and completes
//! when its end has been journaled, so no record of a turn follows the record that
//! stopped it.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use r1_engine::{
    Authorization, ChatMessage, Policy, ProviderRequest, Role, SinkError, ToolCall, ToolResult,
    TurnOutcome, TurnSink,
};
use r1_journal::{Ack, Journal, JournalError, NewRecord};
use r1_proto::events::{
    bus, LaneCreated, LaneDelta, LaneKilled, LaneStatusChanged, TokenUsage, ToolCompleted,
    ToolStarted,
};
use r1_proto::{
    ApiError, EventData, EventKind, EventRecord, LaneStatus, SendMessageResult, SessionState,
};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::fsutil::random_hex;
use crate::sessions::{journal_error, trim_history, Session};
use crate::transition::{
    denied_call, transition, Command, Core, LaneEntry, Queued, Rec, Stop, TurnEnd,
};
use crate::Hub;

/// Commands waiting for one session's actor. The API's callers wait for their answers,
/// so this bounds how many can pile up behind a slow journal write.
pub const INBOX: usize = 256;
/// How often an end of turn that could not be journaled (a full disk) is tried again.
const RETRY_END: Duration = Duration::from_secs(1);
/// How much of a tool's result is journaled in `tool.completed` (the model gets the
/// same bounded text).
const RESULT_JOURNAL_BYTES: usize = 64 * 1024;
/// Live output chunks of one tool waiting to be journaled as `lane.delta`.
const LANE_OUTPUT_QUEUE: usize = 256;

/// What clients see of a session, published by its actor after every change.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// The state.
    pub state: SessionState,
    /// Paused by a restart with work to reattach to.
    pub reattachable: bool,
    /// Why it is in `error`.
    pub error: Option<String>,
    /// The newest journaled seq.
    pub last_seq: u64,
    /// Approvals waiting for a decision.
    pub pending_approvals: Vec<String>,
    /// The tool lanes.
    pub lanes: Vec<LaneEntry>,
    /// Tool policies remembered from decisions (`session.approve` with `remember`).
    pub remembered: Arc<std::collections::BTreeMap<String, r1_proto::ToolPolicy>>,
    /// The newest notes of the cortex board.
    pub notes: Arc<std::collections::VecDeque<r1_proto::NoteView>>,
    /// Lobes paused for this session.
    pub lobes_paused: Arc<std::collections::BTreeSet<String>>,
    /// The tokens and cost of every model call journaled.
    pub usage: r1_proto::SessionUsage,
}

impl Snapshot {
    /// The view of `core`.
    pub fn of(core: &Core) -> Snapshot {
        Snapshot {
            state: core.state,
            reattachable: core.reattachable,
            error: core.error.clone(),
            last_seq: core.last_seq,
            pending_approvals: core.pending_approvals(),
            lanes: core.lanes.clone(),
            remembered: core.remembered.clone(),
            notes: core.notes.clone(),
            lobes_paused: core.lobes_paused.clone(),
            usage: core.usage,
        }
    }
}

/// The answer to an API command.
#[derive(Debug)]
pub enum Answer {
    /// Done; the caller reads the new view.
    Done,
    /// A send was recorded (or was a repeat).
    Sent(SendMessageResult),
}

/// What the actor takes.
pub enum Msg {
    /// A command of the API.
    Api {
        /// The command (boxed: every inbox allocates its slots at the size of the
        /// largest message, and there is an inbox per session).
        cmd: Box<Command>,
        /// Its answer, sent once the command's effect is visible.
        reply: oneshot::Sender<Result<Answer, ApiError>>,
    },
    /// The running turn asks for a decision on a tool call.
    Ask {
        /// The call.
        call: Box<ToolCall>,
        /// The turn's message.
        message_id: Box<str>,
        /// The agent CLI asks for a tool of its own (its permission prompt).
        external: bool,
        /// The receiver of the decision, once the request is journaled.
        reply: oneshot::Sender<Result<oneshot::Receiver<bool>, ApiError>>,
    },
    /// The running turn records an event.
    Emit {
        /// The record.
        rec: Box<Rec>,
        /// Its seq, once written.
        reply: oneshot::Sender<Result<u64, ApiError>>,
    },
    /// A tool lane started: its cancel token, for `lanes.kill`.
    LaneStarted {
        /// The lane.
        lane: Box<str>,
        /// Cancels the tool.
        cancel: CancellationToken,
    },
    /// A lane outside any turn (a verify command) ended: forget its cancel token.
    LaneEnded {
        /// The lane.
        lane: Box<str>,
    },
    /// `lanes.kill`.
    KillLane {
        /// The lane.
        lane: Box<str>,
        /// Answered once the kill is asked (the lane's status follows).
        reply: oneshot::Sender<Result<(), ApiError>>,
    },
    /// The running turn ended.
    TurnEnded {
        /// How it ended, the messages the turn added to the conversation, and the
        /// conversation it started from when a compaction replaced it.
        ended: Box<TurnResult>,
    },
    /// `session.compact`: summarize the conversation now (the session must be idle).
    Compact {
        /// Answered when the compaction is journaled (or found nothing to do).
        reply: oneshot::Sender<Result<r1_proto::CompactResult, ApiError>>,
    },
    /// A forced compaction ended: its conversation, if it made one.
    Compacted {
        /// The compacted conversation.
        history: Option<Vec<ChatMessage>>,
    },
    /// A user lobe publishes a note.
    LobeNote {
        /// The note.
        note: Box<r1_proto::NoteInput>,
        /// The lobe's name.
        lobe: Box<str>,
    },
    /// `session.debug_state`: the actor's view of itself, read between two commands.
    Debug {
        /// The answer.
        reply: oneshot::Sender<r1_proto::SessionDebugState>,
    },
    /// The daemon stops: pause (durably) and stop the session's child processes.
    Shutdown {
        /// Why, as journaled in `session.paused`: `daemon shutdown`, or `upgrade` when
        /// the daemon hands over to a new binary.
        reason: &'static str,
        /// Answered when done.
        reply: oneshot::Sender<()>,
    },
}

/// Starts the actor of `session`, which owns `core` and `history` from now on.
pub fn spawn(
    hub: Hub,
    session: &Arc<Session>,
    rx: flume::Receiver<Msg>,
    view: watch::Sender<Arc<Snapshot>>,
    core: Core,
    history: Vec<ChatMessage>,
) {
    let Some(journal) = session.journal.clone() else {
        return;
    };
    let actor = Actor {
        hub,
        session: Arc::downgrade(session),
        tx: session.tx.downgrade(),
        core,
        journal,
        history,
        view,
        turn: None,
        waiters: HashMap::new(),
        lane_tokens: HashMap::new(),
        after_turn: Vec::new(),
        pending_end: None,
        shutdown_waiters: Vec::new(),
        last_written: None,
        compacting: false,
        deferred: None,
        lobes: None,
        lobe_outbox: Vec::new(),
    };
    tokio::spawn(actor.run(rx));
}

struct Actor {
    hub: Hub,
    session: Weak<Session>,
    tx: flume::WeakSender<Msg>,
    core: Core,
    journal: Journal,
    history: Vec<ChatMessage>,
    view: watch::Sender<Arc<Snapshot>>,
    /// Cancels the running turn's task.
    turn: Option<CancellationToken>,
    /// Decisions the running turn waits for, by approval id.
    waiters: HashMap<String, oneshot::Sender<bool>>,
    /// Cancel tokens of running tool lanes.
    lane_tokens: HashMap<String, CancellationToken>,
    /// Answers owed once the running turn has ended (cancel, pause, kill).
    after_turn: Vec<oneshot::Sender<Result<Answer, ApiError>>>,
    /// An end of turn the journal refused (full disk), tried again every second.
    pending_end: Option<TurnEnd>,
    /// Shutdown answers owed once the running turn has stopped.
    shutdown_waiters: Vec<oneshot::Sender<()>>,
    /// The newest record written, which the `on-turn-end` hook gets.
    last_written: Option<EventRecord>,
    /// A forced compaction (`session.compact`) is running: a turn that starts meanwhile
    /// waits for it, so it sees the compacted conversation and none of its messages
    /// are lost when the conversation is replaced.
    compacting: bool,
    /// The turn that waits for the compaction, with its cancel token.
    deferred: Option<(Queued, CancellationToken)>,
    /// The session's lobes, made on the first record written (`crate::cortex`).
    lobes: Option<Box<crate::cortex::LobeHost>>,
    /// Notes the built-in lobes published while a command was being journaled; they
    /// go in right after it.
    lobe_outbox: Vec<(r1_proto::NoteInput, &'static str)>,
}

impl Actor {
    /// What `session.debug_state` shows: the core and the task's bookkeeping, read
    /// only, with `inbox` commands waiting behind this one.
    fn debug_state(&self, inbox: usize) -> r1_proto::SessionDebugState {
        use r1_proto::{DebugApproval, DebugLane, DebugQueued};
        let core = &self.core;
        let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        let mut waiters: Vec<String> = self.waiters.keys().cloned().collect();
        waiters.sort();
        r1_proto::SessionDebugState {
            session_id: self
                .session
                .upgrade()
                .map(|s| s.id.clone())
                .unwrap_or_default(),
            state: core.state,
            last_seq: core.last_seq,
            reattachable: core.reattachable,
            error: core.error.clone(),
            paused_reason: core.paused_reason.clone(),
            turn_message_id: core.turn.clone(),
            turn_task: self.turn.is_some(),
            stopping: core.stopping.as_ref().map(|s| match s {
                Stop::Cancel => "cancel".to_string(),
                Stop::Pause(why) => format!("pause: {why}"),
                Stop::Kill => "kill".to_string(),
            }),
            queue: core
                .queue
                .iter()
                .map(|q| DebugQueued {
                    message_id: q.message_id.clone(),
                    text_bytes: count(q.text.as_ref().map_or(0, String::len)),
                    resume_tool: q.resume.as_ref().map(|(call, _)| call.name.clone()),
                })
                .collect(),
            approvals: core
                .approvals
                .iter()
                .map(|a| DebugApproval {
                    id: a.id.clone(),
                    tool: a.call.name.clone(),
                    message_id: a.message_id.clone(),
                    status: a.status.clone(),
                })
                .collect(),
            lanes: core
                .lanes
                .iter()
                .map(|l| DebugLane {
                    lane: l.lane.clone(),
                    tool: l.tool.clone(),
                    status: l.status.as_str().to_string(),
                    pinned: l.pinned,
                    created_seq: l.created_seq,
                    killable: self.lane_tokens.contains_key(&l.lane),
                })
                .collect(),
            idempotency_keys: count(core.idem.count()),
            history_messages: count(self.history.len()),
            approval_waiters: waiters,
            turn_end_waiters: count(self.after_turn.len()),
            pending_turn_end: self.pending_end.as_ref().map(|e| format!("{e:?}")),
            inbox: count(inbox),
        }
    }

    async fn run(mut self, rx: flume::Receiver<Msg>) {
        loop {
            let retry = self.pending_end.is_some();
            let msg = tokio::select! {
                m = rx.recv_async() => m.ok(),
                () = tokio::time::sleep(RETRY_END), if retry => {
                    Box::pin(self.journal_turn_end()).await;
                    continue;
                }
            };
            let Some(msg) = msg else { return };
            match msg {
                // Each handler's future is boxed: the actor's own future (allocated for
                // every session, idle or not) stays the size of its idle loop.
                Msg::Api { cmd, reply } => Box::pin(self.api(*cmd, reply)).await,
                Msg::Ask {
                    call,
                    message_id,
                    external,
                    reply,
                } => {
                    let approval_id = format!("apr_{}", random_hex(6).unwrap_or_default());
                    let cmd = Command::AskApproval {
                        approval_id: approval_id.clone(),
                        call: *call,
                        message_id: message_id.into(),
                        external,
                    };
                    let answer = match Box::pin(self.step(&cmd)).await {
                        Ok(_) => {
                            let (tx, rx) = oneshot::channel();
                            self.waiters.insert(approval_id, tx);
                            Ok(rx)
                        }
                        Err(e) => Err(e),
                    };
                    let _ = reply.send(answer);
                }
                Msg::Emit { rec, reply } => {
                    let seq = Box::pin(self.step(&Command::Emit(*rec)))
                        .await
                        .map(|(_, seqs)| seqs.last().copied().unwrap_or(0));
                    let _ = reply.send(seq);
                }
                Msg::LaneStarted { lane, cancel } => {
                    self.lane_tokens.insert(lane.into(), cancel);
                }
                Msg::LaneEnded { lane } => {
                    self.lane_tokens.remove(&*lane);
                }
                Msg::KillLane { lane, reply } => {
                    let answer = if &*lane == "main" {
                        Err(ApiError::validation(
                            "the main lane cannot be killed; cancel the turn instead",
                        ))
                    } else if !self.core.lanes.iter().any(|l| *l.lane == *lane) {
                        Err(ApiError::not_found(format!("lane {lane} not found")))
                    } else {
                        if let Some(t) = self.lane_tokens.get(&*lane) {
                            t.cancel();
                        }
                        Ok(())
                    };
                    let _ = reply.send(answer);
                }
                Msg::TurnEnded { ended } => {
                    let (end, added, base) = *ended;
                    if let Some(base) = base {
                        self.history = base;
                    }
                    self.turn = None;
                    self.waiters.clear();
                    // The turn's tool lanes are over; a verify lane runs on its own.
                    self.lane_tokens
                        .retain(|lane, _| !lane.starts_with("tool_"));
                    self.history.extend(added);
                    trim_history(&mut self.history);
                    self.pending_end = Some(end);
                    Box::pin(self.journal_turn_end()).await;
                }
                Msg::Compact { reply } => self.compact(reply),
                Msg::Compacted { history } => {
                    if let Some(h) = history {
                        self.history = h;
                    }
                    self.compacting = false;
                    if let Some((q, cancel)) = self.deferred.take() {
                        self.launch_turn(q, cancel);
                    }
                }
                Msg::LobeNote { note, lobe } => {
                    let allowed = self.lobes.as_mut().is_some_and(|l| l.allow_note(&lobe));
                    if allowed {
                        Box::pin(self.publish_note(*note, &lobe)).await;
                    } else {
                        tracing::warn!(session = %self.id(), lobe = %lobe, "lobe publishes too many notes; one was dropped");
                    }
                }
                Msg::Debug { reply } => {
                    let _ = reply.send(self.debug_state(rx.len()));
                }
                Msg::Shutdown { reason, reply } => Box::pin(self.shutdown(reason, reply)).await,
            }
            // Notes the built-in lobes made meanwhile; bounded, as each lobe speaks
            // once per thing it saw.
            for _ in 0..16 {
                if self.lobe_outbox.is_empty() {
                    break;
                }
                for (note, lobe) in std::mem::take(&mut self.lobe_outbox) {
                    Box::pin(self.publish_note(note, lobe)).await;
                }
            }
            self.lobe_outbox.clear();
        }
    }

    /// Journals a note a lobe published. A refused note (the lobe was paused, the
    /// session ended) is dropped: lobes are advisers, and nobody waits for them.
    async fn publish_note(&mut self, note: r1_proto::NoteInput, lobe: &str) {
        let rec = match crate::cortex::note_record(note, lobe) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(session = %self.id(), lobe, "lobe note refused: {}", e.message);
                return;
            }
        };
        if let Err(e) = self.step(&Command::Publish(rec)).await {
            tracing::debug!(session = %self.id(), lobe, "lobe note not journaled: {}", e.message);
        }
    }

    /// Shows a written record to the session's lobes (made on the first one).
    fn observe_lobes(&mut self, rec: &EventRecord) {
        let Some(s) = self.session.upgrade() else {
            return;
        };
        if self.lobes.is_none() {
            let warned = self.core.notes.iter().any(|n| n.source == "budget");
            self.lobes = Some(Box::new(crate::cortex::LobeHost::new(
                &s.id,
                &s.workdir,
                self.hub.state().root(),
                s.worktree_id().is_some(),
                s.token_budget,
                warned,
            )));
        }
        let Some(host) = self.lobes.as_mut() else {
            return;
        };
        let actions = host.observe(
            rec,
            s.tokens(),
            &self.core.lobes_paused,
            self.hub.cortex(),
            &self.tx,
        );
        for a in actions {
            match a {
                crate::cortex::LobeAction::Publish(note, lobe) => {
                    if host.allow_note(lobe) {
                        self.lobe_outbox.push((note, lobe));
                    }
                }
                crate::cortex::LobeAction::Verify => {
                    let done = host.verifying.clone();
                    tokio::spawn(crate::cortex::run_verify(
                        self.hub.clone(),
                        s.id.clone(),
                        done,
                    ));
                }
            }
        }
    }

    /// Runs the rules for `cmd` and journals what they say; the core changes only by
    /// the records that were written.
    async fn step(
        &mut self,
        cmd: &Command,
    ) -> Result<(crate::transition::Step, Vec<u64>), ApiError> {
        let step = transition(&self.core, cmd)?;
        let seqs = self.journal_records(&step.records).await?;
        Ok((step, seqs))
    }

    /// Journals `records` in order, folding each into the core once written, then
    /// publishes the view. A failed fsync puts the session in `error` for good.
    async fn journal_records(&mut self, records: &[Rec]) -> Result<Vec<u64>, ApiError> {
        let mut seqs = Vec::with_capacity(records.len());
        let mut result = Ok(());
        let mut last = None;
        for r in records {
            let ack = if r.durable {
                Ack::Durable
            } else {
                Ack::Appended
            };
            match self
                .journal
                .append(NewRecord::new(r.kind, r.lane.clone(), r.data.clone()), ack)
                .await
            {
                Ok(rec) => {
                    seqs.push(rec.seq);
                    self.core.apply(&rec);
                    self.announce(&rec);
                    self.observe_lobes(&rec);
                    last = Some(rec);
                }
                Err(e) => {
                    if let JournalError::Failed { reason } = &e {
                        tracing::error!(session = %self.id(), "journal failed: {reason}");
                        self.core.state = SessionState::Error;
                        self.core.error = Some("the journal failed to sync to disk".into());
                        if let Some(t) = &self.turn {
                            t.cancel();
                        }
                    }
                    result = Err(journal_error(&e));
                    break;
                }
            }
        }
        let _ = self.view.send(Arc::new(Snapshot::of(&self.core)));
        if last.is_some() {
            self.last_written = last;
        }
        result.map(|()| seqs)
    }

    /// The session's id, for log lines (`session` field, as everywhere).
    fn id(&self) -> String {
        self.session
            .upgrade()
            .map(|s| s.id.clone())
            .unwrap_or_default()
    }

    /// Tells live followers and the daemon bus about a written record.
    fn announce(&self, rec: &EventRecord) {
        let Some(s) = self.session.upgrade() else {
            return;
        };
        s.publish(rec);
        self.hub.search_index().offer(&s.id, rec);
        match rec.kind {
            EventKind::SessionState => {
                if let Ok(EventData::SessionState(d)) = rec.event() {
                    self.hub.bus().publish(&bus::SessionStateChanged {
                        session_id: s.id.clone(),
                        state: d.state,
                    });
                }
            }
            EventKind::SessionEnded => {
                self.hub.bus().publish(&bus::SessionEnded {
                    session_id: s.id.clone(),
                });
            }
            _ => {}
        }
        self.hub.fire_record(&s, rec);
    }

    async fn api(&mut self, cmd: Command, reply: oneshot::Sender<Result<Answer, ApiError>>) {
        let cmd = match cmd {
            Command::Approve {
                approval_id,
                decision,
                remember,
                ..
            } => Command::Approve {
                waiter_alive: self.waiters.contains_key(&approval_id),
                approval_id,
                decision,
                remember,
            },
            other => other,
        };
        let (step, seqs) = match self.step(&cmd).await {
            Ok(x) => x,
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        if let Some((message_id, seq)) = step.duplicate {
            let _ = reply.send(Ok(Answer::Sent(SendMessageResult {
                message_id,
                seq,
                duplicate: true,
            })));
            return;
        }
        if step.cancel_turn {
            self.core.stop_with(match &cmd {
                Command::Pause { reason } => Stop::Pause(reason.clone()),
                Command::Kill => Stop::Kill,
                _ => Stop::Cancel,
            });
            if let Some(t) = &self.turn {
                t.cancel();
            }
            let _ = self.view.send(Arc::new(Snapshot::of(&self.core)));
        }
        if let Some((id, allow)) = &step.deliver {
            if let Some(w) = self.waiters.remove(id) {
                let _ = w.send(*allow);
            }
        }
        if let Some(next) = step.start_turn.clone() {
            self.start_turn(next);
        }
        if step.ended {
            self.end().await;
        }
        let answer = match &cmd {
            Command::Send { message_id, .. } => Answer::Sent(SendMessageResult {
                message_id: message_id.clone(),
                seq: seqs.first().copied().unwrap_or(0),
                duplicate: false,
            }),
            _ => Answer::Done,
        };
        if step.wait_for_turn && self.turn.is_some() {
            self.after_turn.push(reply);
        } else {
            let _ = reply.send(Ok(answer));
        }
    }

    /// Journals the end of the turn that just stopped; on a full disk it stays pending
    /// (the session shows `busy`, truthfully: the end is not recorded) and is tried
    /// again every second, so the session works again once space returns.
    async fn journal_turn_end(&mut self) {
        let Some(end) = self.pending_end.clone() else {
            return;
        };
        let step = match self.step(&Command::TurnEnded(end)).await {
            Ok((step, _)) => step,
            Err(e) if self.core.state == SessionState::Error => {
                tracing::warn!(session = %self.id(), "turn end not journaled: {e}");
                self.pending_end = None;
                self.core.turn = None;
                self.answer_stoppers();
                self.answer_shutdown().await;
                return;
            }
            Err(e) => {
                tracing::warn!(session = %self.id(), "turn end not journaled yet, will retry: {e}");
                return;
            }
        };
        self.pending_end = None;
        if let (Some(s), Some(rec)) = (self.session.upgrade(), &self.last_written) {
            self.hub.fire_session("on-turn-end", &s, rec);
        }
        self.answer_stoppers();
        if let Some(next) = step.start_turn {
            self.start_turn(next);
        }
        if step.ended {
            self.end().await;
        }
        self.answer_shutdown().await;
    }

    fn answer_stoppers(&mut self) {
        for r in self.after_turn.drain(..) {
            let _ = r.send(Ok(Answer::Done));
        }
    }

    async fn answer_shutdown(&mut self) {
        if self.shutdown_waiters.is_empty() {
            return;
        }
        self.stop_children().await;
        for r in self.shutdown_waiters.drain(..) {
            let _ = r.send(());
        }
    }

    /// The session ended: its journal closes and its followers drain and stop.
    async fn end(&mut self) {
        // Dropping the lobes' feeds stops their processes.
        self.lobes = None;
        let _ = self.journal.close().await;
        if let Some(s) = self.session.upgrade() {
            s.close_live();
            if let Some(pool) = s.mcp.get() {
                pool.shutdown().await;
            }
        }
    }

    /// Daemon shutdown: a session with work in flight (a turn, a pending approval) is
    /// paused, durably (`session.paused {reason}`: `daemon shutdown`, or `upgrade` on a
    /// restart onto a new binary); once its turn has
    /// stopped, its MCP servers are stopped and the caller is answered. An idle session
    /// has nothing to pause and journals nothing: it comes back idle.
    async fn shutdown(&mut self, reason: &'static str, reply: oneshot::Sender<()>) {
        let live = matches!(
            self.core.state,
            SessionState::Busy | SessionState::WaitingOnApproval
        ) || self.core.turn.is_some();
        if live {
            let (tx, _answer) = oneshot::channel();
            self.api(
                Command::Pause {
                    reason: reason.into(),
                },
                tx,
            )
            .await;
        }
        if self.turn.is_some() {
            self.shutdown_waiters.push(reply);
        } else {
            self.stop_children().await;
            let _ = reply.send(());
        }
    }

    async fn stop_children(&mut self) {
        self.lobes = None;
        if let Some(s) = self.session.upgrade() {
            if let Some(pool) = s.mcp.get() {
                pool.shutdown().await;
            }
        }
    }

    /// Starts the turn answering `q` in a task of its own.
    fn start_turn(&mut self, q: Queued) {
        let (Some(s), Some(tx)) = (self.session.upgrade(), self.tx.upgrade()) else {
            return;
        };
        let cancel = CancellationToken::new();
        self.turn = Some(cancel.clone());
        if self.compacting {
            self.deferred = Some((q, cancel));
            return;
        }
        self.launch_turn(q, cancel);
        drop((s, tx));
    }

    /// Starts a forced compaction in a task of its own; refused while a turn runs.
    fn compact(&mut self, reply: oneshot::Sender<Result<r1_proto::CompactResult, ApiError>>) {
        let (Some(s), Some(tx)) = (self.session.upgrade(), self.tx.upgrade()) else {
            let _ = reply.send(Err(ApiError::conflict("the session has stopped")));
            return;
        };
        if self.turn.is_some() || self.core.state != SessionState::Idle {
            let _ = reply.send(Err(ApiError::conflict(format!(
                "session {} is {}; compact it when it is idle",
                s.id,
                self.core.state.as_str()
            ))));
            return;
        }
        if self.compacting {
            let _ = reply.send(Err(ApiError::conflict(format!(
                "session {} is being compacted already",
                s.id
            ))));
            return;
        }
        self.compacting = true;
        let history = self.history.clone();
        let hub = self.hub.clone();
        tokio::spawn(async move {
            let before = crate::compact::estimate(&history);
            let (answer, made) = match hub.provider_for(&s).await {
                Err(e) => (Err(e), None),
                Ok(provider) => {
                    match crate::compact::compact(&hub, &s, provider.as_ref(), &history, "forced")
                        .await
                    {
                        None => (
                            Ok(r1_proto::CompactResult {
                                session_id: s.id.clone(),
                                compacted: false,
                                method: None,
                                tokens_before: before,
                                tokens_after: before,
                                seq: None,
                            }),
                            None,
                        ),
                        Some(c) => {
                            let (method, after) = (c.record.method.clone(), c.record.tokens_after);
                            let (ack, rx) = oneshot::channel();
                            let rec = Box::new(Rec::new("main", EventData::from(c.record), true));
                            let sent = tx.send_async(Msg::Emit { rec, reply: ack }).await.is_ok();
                            match rx.await {
                                Ok(Ok(seq)) if sent => (
                                    Ok(r1_proto::CompactResult {
                                        session_id: s.id.clone(),
                                        compacted: true,
                                        method: Some(method),
                                        tokens_before: before,
                                        tokens_after: after,
                                        seq: Some(seq),
                                    }),
                                    Some(c.history),
                                ),
                                Ok(Err(e)) => (Err(e), None),
                                _ => (Err(ApiError::conflict("the session has stopped")), None),
                            }
                        }
                    }
                }
            };
            let _ = tx.send_async(Msg::Compacted { history: made }).await;
            let _ = reply.send(answer);
        });
    }

    /// Runs the turn answering `q` (its cancel token already installed).
    fn launch_turn(&mut self, q: Queued, cancel: CancellationToken) {
        let (Some(s), Some(tx)) = (self.session.upgrade(), self.tx.upgrade()) else {
            return;
        };
        if let Some(text) = &q.text {
            self.history
                .push(ChatMessage::text(Role::User, text.clone()));
            trim_history(&mut self.history);
        }
        let history = self.history.clone();
        let hub = self.hub.clone();
        let notes = self.core.turn_notes.clone();
        // Every line logged inside the turn (tools, providers) carries the session.
        let span = tracing::info_span!("turn", session = %s.id);
        let turn = async move {
            let (end, added, base) = run_turn(&hub, &s, &tx, q, history, notes, &cancel).await;
            let outcome = match &end {
                TurnEnd::Completed => "completed",
                TurnEnd::Cancelled => "cancelled",
                TurnEnd::Failed { message, .. } => {
                    tracing::warn!(engine = %s.engine, "turn failed: {message}");
                    "failed"
                }
            };
            hub.metrics().turn(&s.engine, outcome);
            let ended = Box::new((end, added, base));
            let _ = tx.send_async(Msg::TurnEnded { ended }).await;
        };
        tokio::spawn(tracing::Instrument::instrument(turn, span));
    }
}

/// How a turn ended, the messages it added, and the conversation it started from
/// when a compaction replaced the one it was given.
type TurnResult = (TurnEnd, Vec<ChatMessage>, Option<Vec<ChatMessage>>);

/// One turn: the provider, the tool calls it makes, until the model answers. The
/// conversation is compacted first when it would not fit the engine's budget, and once
/// more, with one retry, when the provider says the context is too long.
async fn run_turn(
    hub: &Hub,
    s: &Arc<Session>,
    tx: &flume::Sender<Msg>,
    q: Queued,
    mut history: Vec<ChatMessage>,
    notes: Vec<String>,
    cancel: &CancellationToken,
) -> TurnResult {
    // A budget spent by earlier turns (before a restart too) stops the turn before it
    // costs anything more.
    if let Err(e) = budget_left(s) {
        let end = TurnEnd::Failed {
            message: e.message,
            code: e.code.to_string(),
        };
        return (end, Vec::new(), None);
    }
    let provider = match hub.provider_for(s).await {
        Ok(p) => p,
        Err(e) => {
            return (
                TurnEnd::Failed {
                    message: e.message,
                    code: e.code.as_str().to_string(),
                },
                Vec::new(),
                None,
            )
        }
    };
    let mut base = None;
    if crate::compact::estimate(&history) > hub.context_budget(s) {
        if let Some(h) = compact_now(hub, s, tx, provider.as_ref(), &history, "budget").await {
            history = h.clone();
            base = Some(h);
        }
    }
    let turn = TurnInput {
        q: &q,
        notes: &notes,
    };
    let (end, added) = run_turn_once(hub, s, tx, &turn, history.clone(), cancel, &provider).await;
    let overflow = matches!(&end, TurnEnd::Failed { message, .. } if crate::compact::is_context_overflow(message));
    if overflow && added.is_empty() && q.resume.is_none() && !cancel.is_cancelled() {
        if let Some(h) = compact_now(hub, s, tx, provider.as_ref(), &history, "overflow").await {
            tracing::info!(session = %s.id, "the provider said the context is too long: compacted, trying once more");
            let (end, added) = run_turn_once(hub, s, tx, &turn, h.clone(), cancel, &provider).await;
            return (end, added, Some(h));
        }
    }
    (end, added, base)
}

/// Compacts `history` and journals `session.compacted` (durably) through the actor;
/// the new conversation, or `None` when there was nothing to compact or the record
/// could not be written.
async fn compact_now(
    hub: &Hub,
    s: &Arc<Session>,
    tx: &flume::Sender<Msg>,
    provider: &dyn r1_engine::Provider,
    history: &[ChatMessage],
    reason: &str,
) -> Option<Vec<ChatMessage>> {
    let c = crate::compact::compact(hub, s, provider, history, reason).await?;
    let (reply, rx) = oneshot::channel();
    let rec = Box::new(Rec::new("main", EventData::from(c.record), true));
    tx.send_async(Msg::Emit { rec, reply }).await.ok()?;
    match rx.await {
        Ok(Ok(_)) => Some(c.history),
        _ => None,
    }
}

/// What a turn answers: the queued message, and the critical notes it starts with.
struct TurnInput<'a> {
    q: &'a Queued,
    notes: &'a [String],
}

/// One attempt at a turn with `history`.
async fn run_turn_once(
    hub: &Hub,
    s: &Arc<Session>,
    tx: &flume::Sender<Msg>,
    turn: &TurnInput<'_>,
    mut history: Vec<ChatMessage>,
    cancel: &CancellationToken,
    provider: &Arc<dyn r1_engine::Provider>,
) -> (TurnEnd, Vec<ChatMessage>) {
    let q = turn.q;
    let mut added = Vec::new();
    let sink = Sink {
        hub,
        session: s,
        tx,
        message_id: q.message_id.clone(),
        cancel: cancel.clone(),
    };
    if let Some((call, allow)) = &q.resume {
        let result = if *allow {
            sink.execute(call).await
        } else {
            ToolResult {
                call_id: call.id.clone(),
                name: call.name.clone(),
                content: crate::transition::denial(&call.name),
                is_error: true,
            }
        };
        let m = ChatMessage {
            role: Role::User,
            text: String::new(),
            tool_calls: Vec::new(),
            tool_result: Some(result),
            agent_session: None,
        };
        history.push(m.clone());
        added.push(m);
    }
    // An agent CLI's permission channel (or sandbox) for this turn; the guard closes
    // the channel when the turn is over.
    let (agent, _permit) = crate::permission::agent_access(hub, s, tx, &q.message_id, cancel);
    let req = ProviderRequest {
        model: s.model.clone(),
        system: Some(crate::agent::system_prompt(s)),
        messages: history,
        tools: hub.tools_for(s).await,
        protected: hub.protected(),
        notes: turn.notes.to_vec(),
        agent,
    };
    match r1_engine::run_turn(provider.as_ref(), req, &sink, &q.message_id, cancel).await {
        TurnOutcome::Completed { added: more, .. } => {
            added.extend(more);
            (TurnEnd::Completed, added)
        }
        TurnOutcome::Cancelled => (TurnEnd::Cancelled, added),
        TurnOutcome::Failed { message, code } => (
            TurnEnd::Failed {
                message,
                code: code.to_string(),
            },
            added,
        ),
    }
}

/// The session's decision on an agent CLI's own tool call, asked through its turn's
/// permit: the policy, or an `approval.requested` (`external`) that a client decides.
pub(crate) async fn ask_for_agent(
    hub: &Hub,
    permit: &crate::permission::Permit,
    call: &ToolCall,
) -> Result<Authorization, SinkError> {
    let sink = Sink {
        hub,
        session: &permit.session,
        tx: &permit.tx,
        message_id: permit.message_id.clone(),
        cancel: permit.cancel.clone(),
    };
    sink.decide(call, true).await
}

fn truncate(s: &str, max: usize) -> String {
    let head = crate::fsutil::head(s, max);
    if head.len() == s.len() {
        return s.to_string();
    }
    format!("{head}\n[… {} more bytes not shown]", s.len() - head.len())
}

/// What the engine's turn loop calls back into: every record goes through the actor.
struct Sink<'a> {
    hub: &'a Hub,
    session: &'a Arc<Session>,
    tx: &'a flume::Sender<Msg>,
    message_id: String,
    cancel: CancellationToken,
}

impl Sink<'_> {
    async fn record(&self, lane: &str, event: EventData, durable: bool) -> Result<u64, ApiError> {
        let (reply, rx) = oneshot::channel();
        let rec = Box::new(Rec::new(lane, event, durable));
        self.tx
            .send_async(Msg::Emit { rec, reply })
            .await
            .map_err(|_| ApiError::conflict("the session has stopped"))?;
        rx.await
            .map_err(|_| ApiError::conflict("the session has stopped"))?
    }

    async fn emit_denial(&self, call: &ToolCall, reason: &str) -> Result<(), SinkError> {
        self.emit("main", denied_call(call, reason.to_string()).into(), false)
            .await
            .map(|_| ())
    }

    /// The session's decision on `call`: its policy, or a client's answer to an
    /// approval. `external` is an agent CLI's own tool, which r1 does not run: its
    /// denial is not recorded as a `tool.completed` (the agent reports its own result).
    async fn decide(&self, call: &ToolCall, external: bool) -> Result<Authorization, SinkError> {
        let mut policy = self.session.policy_for(&call.name);
        // An untrusted MCP server's tools ask whatever the policy allows.
        if policy == Policy::Allow
            && self
                .hub
                .mcp_tool_always_asks(self.session, &call.name)
                .await
        {
            policy = Policy::Ask;
        }
        match policy {
            Policy::Allow => Ok(Authorization::Allow),
            Policy::Deny => {
                let reason = format!("the session's policy denies the tool {}", call.name);
                if !external {
                    self.emit_denial(call, &reason).await?;
                }
                Ok(Authorization::Deny(reason))
            }
            Policy::Ask => {
                let (reply, rx) = oneshot::channel();
                self.tx
                    .send_async(Msg::Ask {
                        call: Box::new(call.clone()),
                        message_id: self.message_id.as_str().into(),
                        external,
                        reply,
                    })
                    .await
                    .map_err(|_| SinkError::storage("the session has stopped"))?;
                let decision = rx
                    .await
                    .map_err(|_| SinkError::storage("the session has stopped"))?
                    .map_err(|e| SinkError::storage(e.message))?;
                let allowed = tokio::select! {
                    d = decision => d.unwrap_or(false),
                    () = self.cancel.cancelled() => false,
                };
                if allowed {
                    Ok(Authorization::Allow)
                } else {
                    let reason = crate::transition::denial(&call.name);
                    if !self.cancel.is_cancelled() && !external {
                        self.emit_denial(call, &reason).await?;
                    }
                    Ok(Authorization::Deny(reason))
                }
            }
        }
    }
}

#[async_trait::async_trait]
impl TurnSink for Sink<'_> {
    async fn emit(&self, lane: &str, event: EventData, durable: bool) -> Result<u64, SinkError> {
        self.record(lane, event, durable)
            .await
            .map_err(|e| SinkError::storage(e.message))
    }

    async fn authorize(&self, call: &ToolCall) -> Result<Authorization, SinkError> {
        self.decide(call, false).await
    }

    async fn execute(&self, call: &ToolCall) -> ToolResult {
        let s = self.session;
        let lane = format!("tool_{}", random_hex(5).unwrap_or_default());
        let lane_cancel = self.cancel.child_token();
        let _ = self
            .emit(
                &lane,
                LaneCreated {
                    lane: lane.clone(),
                    tool: call.name.clone(),
                    call_id: call.id.clone(),
                }
                .into(),
                false,
            )
            .await;
        let _ = self
            .tx
            .send_async(Msg::LaneStarted {
                lane: lane.as_str().into(),
                cancel: lane_cancel.clone(),
            })
            .await;
        let _ = self
            .emit(
                &lane,
                ToolStarted {
                    lane: Some(lane.clone()),
                    call_id: call.id.clone(),
                    tool: call.name.clone(),
                    args: call.arguments.clone(),
                    external: false,
                }
                .into(),
                false,
            )
            .await;
        let (out_tx, mut out_rx) = mpsc::channel::<String>(LANE_OUTPUT_QUEUE);
        let ctx = r1_engine::ToolContext {
            workdir: std::path::PathBuf::from(&s.workdir),
            cancel: lane_cancel.clone(),
            output: Some(out_tx),
            protected: self.hub.protected(),
        };
        // The context owns the output sender: it must drop when the tool finishes so
        // the forwarder below sees the end of the output.
        let run = async move {
            let result = self.hub.run_tool(s, &ctx, call).await;
            drop(ctx);
            result
        };
        let forward = async {
            while let Some(chunk) = out_rx.recv().await {
                let _ = self
                    .emit(
                        &lane,
                        LaneDelta {
                            lane: lane.clone(),
                            text: chunk,
                        }
                        .into(),
                        false,
                    )
                    .await;
            }
        };
        let (result, ()) = tokio::join!(run, forward);
        let killed = lane_cancel.is_cancelled() && !self.cancel.is_cancelled();
        let status = if killed {
            LaneStatus::Killed
        } else if self.cancel.is_cancelled() {
            LaneStatus::Cancelled
        } else if result.is_error {
            LaneStatus::Failed
        } else {
            LaneStatus::Done
        };
        if killed {
            let _ = self
                .emit(&lane, LaneKilled { lane: lane.clone() }.into(), false)
                .await;
        }
        let _ = self
            .emit(
                &lane,
                LaneStatusChanged {
                    lane: lane.clone(),
                    status,
                    pinned: None,
                }
                .into(),
                false,
            )
            .await;
        let content = truncate(&result.content, RESULT_JOURNAL_BYTES);
        let _ = self
            .emit(
                &lane,
                ToolCompleted {
                    lane: Some(lane.clone()),
                    call_id: call.id.clone(),
                    tool: Some(call.name.clone()),
                    content: content.clone(),
                    is_error: result.is_error,
                    denied: false,
                    external: false,
                }
                .into(),
                false,
            )
            .await;
        ToolResult { content, ..result }
    }

    fn usage(&self, usage: &mut TokenUsage) -> Result<(), SinkError> {
        self.hub.count_usage(self.session, usage);
        budget_left(self.session)
    }
}

/// `Ok` while `s` is within its token budget (input plus output over its whole
/// journal), `budget_exceeded` once it has spent more.
pub(crate) fn budget_left(s: &Session) -> Result<(), SinkError> {
    let used = s.tokens();
    match s.token_budget {
        Some(b) if used > b => Err(SinkError {
            message: format!("the session's token budget of {b} is spent ({used} used); start a new session or raise the budget"),
            code: "budget_exceeded",
        }),
        _ => Ok(()),
    }
}

impl Hub {
    /// Prices one model call of `s` from the `[prices]` in force (exact match on the
    /// session's model, else its engine's), counts its tokens in the session's budget
    /// counter and the metrics.
    pub(crate) fn count_usage(&self, s: &Session, usage: &mut TokenUsage) {
        usage.cost_usd = self
            .model_of(s)
            .and_then(|m| self.config().prices.get(&m).map(|p| p.cost(usage)));
        self.metrics()
            .tokens(&s.engine, usage.input_tokens, usage.output_tokens);
        s.tokens_used.fetch_add(
            usage.input_tokens.saturating_add(usage.output_tokens),
            Ordering::AcqRel,
        );
    }
}
