//! The rules of a session, with no I/O: what a command is allowed to do in a given
//! state, which records it writes, and what the session looks like after them.
//!
//! The session actor (`actor.rs`) is the only caller. For every command it asks
//! [`transition`] for a [`Step`], journals the step's records, and only once they are
//! written folds them into its [`Core`] with [`Core::apply`] — journal first, so a failed
//! write changes nothing. The same [`Core::apply`] rebuilds a session from its journal
//! after a restart, so the state a client sees is always the fold of the records it can
//! read.

use std::collections::{BTreeMap, HashMap, VecDeque};

use r1_engine::ToolCall;
use r1_proto::events::{
    ApprovalRequested, ApprovalResolved, CortexLobe, CortexNote, LaneStatusChanged,
    SessionCancelled, SessionEnded, SessionError, SessionMessage, SessionPaused, SessionResumed,
    SessionStateChanged, ToolCompleted, UserMessage,
};
use r1_proto::{
    ApiError, Decision, ErrorCode, EventData, EventKind, EventRecord, LaneStatus, SessionState,
    SessionUsage, ToolPolicy,
};
use serde_json::Value;

/// How many accepted messages may wait for their turn in one session.
pub const MAX_QUEUED: usize = 256;
/// How many bytes of text may wait for their turn in one session.
pub const MAX_QUEUED_BYTES: usize = 16 * 1024 * 1024;

/// How many ended, unpinned lanes a session remembers; older ones stay in the journal
/// only, so a session with a million tool calls does not grow without bound.
pub const MAX_ENDED_LANES: usize = 512;
/// How many decided approvals a session remembers (pending ones are always kept).
pub const MAX_DECIDED_APPROVALS: usize = 512;

/// A record the step asks the actor to journal.
#[derive(Debug, Clone, PartialEq)]
pub struct Rec {
    /// What happened.
    pub kind: EventKind,
    /// Where: `main` or a tool lane.
    pub lane: String,
    /// The payload.
    pub data: Value,
    /// Whether it must be fdatasynced before anyone is told (messages, approvals,
    /// pause/resume, terminal records).
    pub durable: bool,
}

impl Rec {
    /// A record of `event` in `lane`.
    pub fn new(lane: &str, event: impl Into<EventData>, durable: bool) -> Rec {
        let event = event.into();
        Rec {
            kind: event.kind(),
            lane: lane.to_string(),
            data: event.to_value(),
            durable,
        }
    }

    fn main(event: impl Into<EventData>, durable: bool) -> Rec {
        Rec::new("main", event, durable)
    }

    fn state(state: SessionState) -> Rec {
        Rec::main(
            SessionStateChanged {
                state,
                message_id: None,
                queued: None,
            },
            false,
        )
    }
}

/// An approval as the session knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ApprovalEntry {
    /// `apr_…`.
    pub id: String,
    /// The tool call that waits.
    pub call: ToolCall,
    /// The user message whose turn asked.
    pub message_id: String,
    /// `pending`, `allow` or `deny`.
    pub status: String,
    /// An agent CLI's own tool asks (`approval.requested` `external`): the decision
    /// goes back to that process, so it lives only as long as the turn that asked.
    pub external: bool,
}

/// A tool lane as the session knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct LaneEntry {
    /// `tool_…`.
    pub lane: String,
    /// The tool it runs.
    pub tool: String,
    /// Where it is in its life.
    pub status: LaneStatus,
    /// Kept in views after it ends.
    pub pinned: bool,
    /// The seq of its `lane.created`.
    pub created_seq: u64,
}

/// A turn waiting to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Queued {
    /// The user message it answers.
    pub message_id: String,
    /// The user's text; `None` for the continuation after an approval was decided
    /// with no turn waiting for it.
    pub text: Option<String>,
    /// The decided call to run (or report denied) first, for a continuation.
    pub resume: Option<(ToolCall, bool)>,
}

/// What a session is: the fold of its journal.
#[derive(Debug, Clone, PartialEq)]
pub struct Core {
    /// The state clients see.
    pub state: SessionState,
    /// Paused by a daemon restart, with work to reattach to.
    pub reattachable: bool,
    /// Why the session is in `error`.
    pub error: Option<String>,
    /// The newest journaled seq.
    pub last_seq: u64,
    /// The message whose turn is running.
    pub turn: Option<String>,
    /// A pause or kill waits for the running turn to stop before its records go in,
    /// so no record of the turn follows them.
    pub stopping: Option<Stop>,
    /// Accepted messages waiting for their turn, in order.
    pub queue: VecDeque<Queued>,
    /// Every approval asked in this session.
    pub approvals: Vec<ApprovalEntry>,
    /// Every tool lane.
    pub lanes: Vec<LaneEntry>,
    /// `client_message_id` → (`message_id`, seq), for idempotent sends: the newest
    /// [`IDEM_KEYS`] keys.
    pub idem: IdemKeys,
    /// Why the session was last paused, while it is paused.
    pub paused_reason: Option<String>,
    /// Tool policies clients chose while the session ran (`session.approve` with
    /// `remember`), by tool name; they override the policy the session started with.
    /// Shared, so publishing a snapshot does not copy the map.
    pub remembered: std::sync::Arc<BTreeMap<String, ToolPolicy>>,
    /// The newest [`MAX_NOTES`] notes of the cortex board, oldest first (shared, so a
    /// snapshot does not copy them).
    pub notes: std::sync::Arc<VecDeque<r1_proto::NoteView>>,
    /// Critical notes published since the running (or last) turn started: the next
    /// turn shows them to the agent.
    pub pending_notes: Vec<String>,
    /// The critical notes the running (or last) turn was started with.
    pub turn_notes: Vec<String>,
    /// Lobes paused for this session, by name.
    pub lobes_paused: std::sync::Arc<std::collections::BTreeSet<String>>,
    /// The tokens and cost of every model call journaled: the `usage` of assistant
    /// messages and of compaction summaries. The budget counter starts from it when
    /// the session is loaded.
    pub usage: SessionUsage,
}

/// How many notes a session keeps in memory for `cortex.notes`; every note stays in
/// the journal.
pub const MAX_NOTES: usize = 1000;
/// How many critical notes wait for the next turn at most (the newest are kept), so a
/// chatty lobe cannot grow the next prompt without bound.
pub const MAX_PENDING_NOTES: usize = 20;

/// How many idempotency keys a session remembers: a send repeated with one of its
/// newest this-many keys gets the first answer; an older key is a new message. Bounds a
/// session's memory however many keyed messages it takes.
pub const IDEM_KEYS: usize = 10_000;

/// The idempotency keys of a session's sends, the oldest forgotten past [`IDEM_KEYS`].
/// Keys go in journal order, so the live fold and a replay forget the same ones.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IdemKeys {
    map: HashMap<String, (String, u64)>,
    order: VecDeque<String>,
}

impl IdemKeys {
    /// How many keys are remembered.
    pub fn count(&self) -> usize {
        self.order.len()
    }

    /// The message and seq first sent with `key`, if it is remembered.
    pub fn get(&self, key: &str) -> Option<&(String, u64)> {
        self.map.get(key)
    }

    /// Remembers `key` for `message_id` at `seq`, unless it is remembered already.
    pub fn insert(&mut self, key: &str, message_id: &str, seq: u64) {
        if self.map.contains_key(key) {
            return;
        }
        self.map
            .insert(key.to_owned(), (message_id.to_owned(), seq));
        self.order.push_back(key.to_owned());
        while self.order.len() > IDEM_KEYS {
            if let Some(old) = self.order.pop_front() {
                self.map.remove(&old);
            }
        }
    }
}

/// Why the running turn is being stopped.
#[derive(Debug, Clone, PartialEq)]
pub enum Stop {
    /// Cancel: the turn ends, the session goes on.
    Cancel,
    /// Pause, with its reason.
    Pause(String),
    /// Kill: the session ends.
    Kill,
}

impl Default for Core {
    fn default() -> Self {
        Core {
            state: SessionState::Idle,
            reattachable: false,
            error: None,
            last_seq: 0,
            turn: None,
            stopping: None,
            queue: VecDeque::new(),
            approvals: Vec::new(),
            lanes: Vec::new(),
            idem: IdemKeys::default(),
            paused_reason: None,
            remembered: std::sync::Arc::default(),
            notes: std::sync::Arc::default(),
            pending_notes: Vec::new(),
            turn_notes: Vec::new(),
            lobes_paused: std::sync::Arc::default(),
            usage: SessionUsage::default(),
        }
    }
}

/// How a turn ended, as the rules need it.
#[derive(Debug, Clone, PartialEq)]
pub enum TurnEnd {
    /// The model answered.
    Completed,
    /// It was cancelled (cancel, pause, kill, shutdown).
    Cancelled,
    /// The provider or the host failed.
    Failed {
        /// For a person.
        message: String,
        /// The wire code.
        code: String,
    },
}

/// A command, as data.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// A user message; `message_id` is chosen by the caller.
    Send {
        /// `msg_…`.
        message_id: String,
        /// The text.
        text: String,
        /// The idempotency key.
        client_message_id: Option<String>,
    },
    /// Stop the running turn.
    Cancel,
    /// Pause (stops the running turn, holds the queue).
    Pause {
        /// Why.
        reason: String,
    },
    /// Resume a paused session.
    Resume,
    /// End the session.
    Kill,
    /// Decide an approval.
    Approve {
        /// `apr_…`.
        approval_id: String,
        /// `allow` or `deny`.
        decision: String,
        /// Whether a running turn still waits for this decision.
        waiter_alive: bool,
        /// Make the decision the session's policy for the approval's tool.
        remember: bool,
    },
    /// The running turn asks for a decision on `call`.
    AskApproval {
        /// `apr_…`, chosen by the caller.
        approval_id: String,
        /// The call.
        call: ToolCall,
        /// The user message of the turn.
        message_id: String,
        /// The agent CLI asks for a tool of its own (its permission prompt).
        external: bool,
    },
    /// The running turn records an event (text, tool, lane).
    Emit(Rec),
    /// Keep a lane in views after it ends (or, unpinned, let it go).
    PinLane {
        /// The lane.
        lane: String,
        /// Pin (true) or unpin (false).
        pinned: bool,
    },
    /// The running turn ended.
    TurnEnded(TurnEnd),
    /// Put a note on the cortex board.
    Publish(CortexNote),
    /// Pause (true) or resume (false) a lobe for this session.
    SetLobe {
        /// The lobe's name.
        lobe: String,
        /// The state it should be in.
        paused: bool,
    },
}

/// What a command does: the records to journal and what to do once they are written.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Step {
    /// Journaled in order, before anything else happens.
    pub records: Vec<Rec>,
    /// Start the turn of this queued message.
    pub start_turn: Option<Queued>,
    /// Cancel the running turn (its end comes back as [`Command::TurnEnded`]).
    pub cancel_turn: bool,
    /// Deliver this decision to the waiting turn.
    pub deliver: Option<(String, bool)>,
    /// The command is done only when the running turn has ended.
    pub wait_for_turn: bool,
    /// The send was a repeat of an earlier one: (`message_id`, seq).
    pub duplicate: Option<(String, u64)>,
    /// The session ended: close the journal.
    pub ended: bool,
}

fn crash(core: &Core) -> ApiError {
    ApiError::new(
        ErrorCode::CrashRecovery,
        format!(
            "the session is in error: {}",
            core.error.clone().unwrap_or_default()
        ),
    )
}

fn refuse_dead(core: &Core) -> Result<(), ApiError> {
    match core.state {
        SessionState::Ended => Err(ApiError::conflict("the session has ended")),
        SessionState::Error => Err(crash(core)),
        _ => Ok(()),
    }
}

/// The rules: what `cmd` does to a session in `core`. Pure; an `Err` changes nothing.
pub fn transition(core: &Core, cmd: &Command) -> Result<Step, ApiError> {
    let mut step = Step::default();
    match cmd {
        Command::Send {
            message_id,
            text,
            client_message_id,
        } => {
            if let Some(done) = client_message_id.as_ref().and_then(|k| core.idem.get(k)) {
                step.duplicate = Some(done.clone());
                return Ok(step);
            }
            refuse_dead(core)?;
            if core.state == SessionState::Paused || matches!(core.stopping, Some(Stop::Pause(_))) {
                return Err(ApiError::conflict("the session is paused; resume it first"));
            }
            if matches!(core.stopping, Some(Stop::Kill)) {
                return Err(ApiError::conflict("the session is ending"));
            }
            let waiting_bytes: usize = core
                .queue
                .iter()
                .map(|q| q.text.as_ref().map_or(0, String::len))
                .sum();
            if core.queue.len() >= MAX_QUEUED || waiting_bytes + text.len() > MAX_QUEUED_BYTES {
                return Err(ApiError::new(
                    ErrorCode::BudgetExceeded,
                    format!(
                        "{} messages ({waiting_bytes} bytes) already wait for their turn in this session; send again when it has caught up",
                        core.queue.len()
                    ),
                ));
            }
            step.records.push(Rec::main(
                SessionMessage::User(UserMessage {
                    text: text.clone(),
                    message_id: message_id.clone(),
                    client_message_id: client_message_id.clone(),
                }),
                true,
            ));
            let queued = Queued {
                message_id: message_id.clone(),
                text: Some(text.clone()),
                resume: None,
            };
            if core.turn.is_none() {
                // Nothing runs: start the oldest waiting message, which is this one
                // unless an earlier one was recorded but never started (its start could
                // not be journaled).
                let next = core.queue.front().cloned().unwrap_or(queued);
                step.records.push(busy(&next.message_id));
                step.start_turn = Some(next);
            }
        }
        Command::Cancel => {
            if core.turn.is_some() {
                step.cancel_turn = true;
                step.wait_for_turn = true;
            }
        }
        Command::Pause { reason } => {
            refuse_dead(core)?;
            if core.state == SessionState::Paused
                || matches!(core.stopping, Some(Stop::Pause(_) | Stop::Kill))
            {
                step.wait_for_turn = core.turn.is_some();
                return Ok(step);
            }
            if core.turn.is_some() {
                step.cancel_turn = true;
                step.wait_for_turn = true;
            } else {
                step.records = pause_records(reason);
            }
        }
        Command::Resume => {
            refuse_dead(core)?;
            if core.state != SessionState::Paused {
                return Ok(step);
            }
            step.records.push(Rec::main(SessionResumed {}, true));
            match core.queue.front() {
                Some(next) => {
                    step.records.push(busy(&next.message_id));
                    step.start_turn = Some(next.clone());
                }
                None => step.records.push(Rec::state(SessionState::Idle)),
            }
        }
        Command::Kill => {
            if core.state == SessionState::Ended || matches!(core.stopping, Some(Stop::Kill)) {
                step.wait_for_turn = core.turn.is_some();
                return Ok(step);
            }
            if core.turn.is_some() {
                step.cancel_turn = true;
                step.wait_for_turn = true;
            } else {
                step.records = kill_records(core);
                step.ended = true;
            }
        }
        Command::Approve {
            approval_id,
            decision,
            waiter_alive,
            remember,
        } => {
            if decision != "allow" && decision != "deny" {
                return Err(ApiError::validation(
                    "decision must be \"allow\" or \"deny\"",
                ));
            }
            let a = core
                .approvals
                .iter()
                .find(|a| &a.id == approval_id)
                .ok_or_else(|| ApiError::not_found(format!("approval {approval_id} not found")))?;
            if a.status != "pending" {
                return if &a.status == decision {
                    Ok(step)
                } else {
                    Err(ApiError::conflict(format!(
                        "approval {approval_id} was already decided: {}",
                        a.status
                    )))
                };
            }
            if core.state == SessionState::Ended {
                return Err(ApiError::conflict("the session has ended"));
            }
            refuse_dead(core)?;
            step.records.push(Rec::main(
                ApprovalResolved {
                    approval_id: approval_id.clone(),
                    decision: if decision == "allow" {
                        Decision::Allow
                    } else {
                        Decision::Deny
                    },
                    reason: None,
                    remember: *remember,
                },
                true,
            ));
            let allow = decision == "allow";
            if *waiter_alive && core.turn.as_deref() == Some(a.message_id.as_str()) {
                step.deliver = Some((approval_id.clone(), allow));
                if core.state == SessionState::WaitingOnApproval {
                    step.records.push(Rec::state(SessionState::Busy));
                }
            } else if a.external {
                // The agent process that asked is gone (its turn is ending): the
                // decision is recorded, and there is nothing to continue; r1 cannot
                // run another program's tool.
            } else {
                // No turn waits any more (a restart or a pause ended it): the decision
                // continues the conversation in a new turn.
                if !allow {
                    step.records
                        .push(Rec::main(denied_call(&a.call, denial(&a.call.name)), false));
                }
                let queued = Queued {
                    message_id: a.message_id.clone(),
                    text: None,
                    resume: Some((a.call.clone(), allow)),
                };
                let runnable = core.turn.is_none()
                    && core.queue.is_empty()
                    && matches!(
                        core.state,
                        SessionState::Idle | SessionState::WaitingOnApproval
                    );
                if runnable {
                    step.records.push(busy(&a.message_id));
                    step.start_turn = Some(queued);
                } else {
                    step.records.push(Rec::main(
                        SessionStateChanged {
                            state: core.state,
                            message_id: None,
                            queued: Some(a.message_id.clone()),
                        },
                        false,
                    ));
                }
            }
        }
        Command::AskApproval {
            approval_id,
            call,
            message_id,
            external,
        } => {
            refuse_dead(core)?;
            // Only the running turn asks. An agent CLI's permission call can arrive
            // just after its turn ended; it must not leave a pending approval behind.
            if core.turn.as_deref() != Some(message_id.as_str()) {
                return Err(ApiError::conflict("the turn that asked has ended"));
            }
            step.records.push(Rec::main(
                ApprovalRequested {
                    approval_id: approval_id.clone(),
                    tool: call.name.clone(),
                    args: call.arguments.clone(),
                    call_id: call.id.clone(),
                    reply_to: message_id.clone(),
                    external: *external,
                },
                true,
            ));
            if core.stopping.is_none() {
                step.records
                    .push(Rec::state(SessionState::WaitingOnApproval));
            }
        }
        Command::Emit(rec) => {
            if core.state == SessionState::Ended {
                return Err(ApiError::conflict("the session has ended"));
            }
            step.records.push(rec.clone());
        }
        Command::PinLane { lane, pinned } => {
            let l = core
                .lanes
                .iter()
                .find(|l| &l.lane == lane)
                .ok_or_else(|| ApiError::not_found(format!("lane {lane} not found")))?;
            if l.pinned != *pinned {
                step.records.push(Rec::new(
                    lane,
                    LaneStatusChanged {
                        lane: lane.clone(),
                        status: l.status,
                        pinned: Some(*pinned),
                    },
                    false,
                ));
            }
        }
        Command::Publish(note) => {
            refuse_dead(core)?;
            if core.lobes_paused.contains(&note.source) {
                return Err(ApiError::conflict(format!(
                    "lobe {} is paused in this session",
                    note.source
                )));
            }
            step.records.push(Rec::main(note.clone(), true));
        }
        Command::SetLobe { lobe, paused } => {
            if core.lobes_paused.contains(lobe) != *paused {
                refuse_dead(core)?;
                step.records.push(Rec::main(
                    CortexLobe {
                        lobe: lobe.clone(),
                        paused: *paused,
                    },
                    true,
                ));
            }
        }
        Command::TurnEnded(end) => {
            let Some(message_id) = core.turn.clone() else {
                return Ok(step);
            };
            let stop = core.stopping.clone();
            // An agent CLI's own approvals die with the process that asked, whatever
            // ended the turn: no later decision could reach it.
            for a in core
                .approvals
                .iter()
                .filter(|a| a.external && a.status == "pending" && a.message_id == message_id)
            {
                step.records.push(Rec::main(
                    ApprovalResolved {
                        approval_id: a.id.clone(),
                        decision: Decision::Deny,
                        reason: Some(AGENT_GONE.into()),
                        remember: false,
                    },
                    true,
                ));
            }
            // A pause keeps the turn's pending approvals of r1's own tools: they can be
            // answered later, and the conversation continues from the decision then.
            let keep_approvals = matches!(stop, Some(Stop::Pause(_)))
                && core
                    .approvals
                    .iter()
                    .any(|a| !a.external && a.status == "pending" && a.message_id == message_id);
            match end {
                TurnEnd::Completed => {}
                TurnEnd::Cancelled => {
                    if !keep_approvals {
                        for a in core.approvals.iter().filter(|a| {
                            !a.external && a.status == "pending" && a.message_id == message_id
                        }) {
                            step.records.push(Rec::main(
                                ApprovalResolved {
                                    approval_id: a.id.clone(),
                                    decision: Decision::Deny,
                                    reason: Some("the turn was cancelled".into()),
                                    remember: false,
                                },
                                true,
                            ));
                        }
                        step.records.push(Rec::main(
                            SessionCancelled {
                                message_id: message_id.clone(),
                            },
                            true,
                        ));
                    }
                }
                TurnEnd::Failed { message, code } => step.records.push(Rec::main(
                    SessionError {
                        message: message.clone(),
                        code: Some(code.clone()),
                        message_id: Some(message_id.clone()),
                        interrupted: false,
                    },
                    true,
                )),
            }
            match stop {
                Some(Stop::Pause(reason)) => step.records.extend(pause_records(&reason)),
                Some(Stop::Kill) => {
                    let mut after = core.clone();
                    after.turn = None;
                    step.records.extend(kill_records(&after));
                    step.ended = true;
                }
                Some(Stop::Cancel) | None => match core.queue.front() {
                    Some(next) => {
                        step.records.push(busy(&next.message_id));
                        step.start_turn = Some(next.clone());
                    }
                    None => step.records.push(Rec::state(SessionState::Idle)),
                },
            }
        }
    }
    Ok(step)
}

fn busy(message_id: &str) -> Rec {
    Rec::main(
        SessionStateChanged {
            state: SessionState::Busy,
            message_id: Some(message_id.to_string()),
            queued: None,
        },
        false,
    )
}

fn pause_records(reason: &str) -> Vec<Rec> {
    vec![
        Rec::main(
            SessionPaused {
                reason: reason.to_string(),
            },
            true,
        ),
        Rec::state(SessionState::Paused),
    ]
}

fn kill_records(core: &Core) -> Vec<Rec> {
    if core.state == SessionState::Error {
        return Vec::new();
    }
    vec![Rec::main(SessionEnded {}, true)]
}

/// Why an agent CLI's pending approval was denied by r1 when its turn ended.
pub const AGENT_GONE: &str = "the agent that asked has stopped";

/// The tool result a denied call reports to the model.
pub fn denial(tool: &str) -> String {
    format!("the user denied the {tool} call")
}

/// The `tool.completed` of a call that never ran, with the reason the model is told.
pub fn denied_call(call: &ToolCall, reason: String) -> ToolCompleted {
    ToolCompleted {
        lane: None,
        call_id: call.id.clone(),
        tool: Some(call.name.clone()),
        content: reason,
        is_error: true,
        denied: true,
        external: false,
    }
}

impl Core {
    /// Folds one journaled record into the session. Used live, after each write, and on
    /// load, over the whole journal. A record whose payload does not parse (no daemon
    /// wrote one) only moves `last_seq`, as unknown fields did before payloads were typed.
    pub fn apply(&mut self, r: &EventRecord) {
        self.last_seq = self.last_seq.max(r.seq);
        let event = match r.event() {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(
                    seq = r.seq,
                    kind = r.kind.as_str(),
                    "unreadable record: {e}"
                );
                return;
            }
        };
        match event {
            EventData::SessionCreated(_) => self.state = SessionState::Idle,
            EventData::SessionMessage(SessionMessage::User(m)) => {
                if let Some(key) = m.client_message_id {
                    self.idem.insert(&key, &m.message_id, r.seq);
                }
                self.queue.push_back(Queued {
                    message_id: m.message_id,
                    text: Some(m.text),
                    resume: None,
                });
            }
            EventData::SessionMessage(SessionMessage::Assistant(m)) => {
                if let Some(u) = &m.usage {
                    self.usage.add(u);
                }
            }
            EventData::SessionCompacted(c) => {
                if let Some(u) = &c.usage {
                    self.usage.add(u);
                }
            }
            EventData::SessionState(d) => {
                match d.state {
                    SessionState::Busy => {
                        match d.message_id {
                            // A turn starts: its message leaves the queue.
                            Some(mid) if self.turn.as_deref() != Some(mid.as_str()) => {
                                self.queue.retain(|q| q.message_id != mid);
                                self.turn = Some(mid);
                                self.turn_notes = std::mem::take(&mut self.pending_notes);
                            }
                            // Journals written before turns named their message: the
                            // oldest waiting message is the one that started.
                            None if self.turn.is_none() => {
                                self.turn = self.queue.pop_front().map(|q| q.message_id);
                                self.turn_notes = std::mem::take(&mut self.pending_notes);
                            }
                            _ => {}
                        }
                        self.state = SessionState::Busy;
                        self.reattachable = false;
                    }
                    SessionState::Idle => {
                        // Idle is written only once nothing waits.
                        self.queue.clear();
                        self.turn = None;
                        self.stopping = None;
                        self.state = SessionState::Idle;
                        self.reattachable = false;
                    }
                    SessionState::WaitingOnApproval => self.state = SessionState::WaitingOnApproval,
                    SessionState::Paused => {
                        self.turn = None;
                        self.stopping = None;
                        self.state = SessionState::Paused;
                    }
                    // Never journaled as a state: `session.ended` ends a session, and
                    // `error` is what a failed journal shows.
                    SessionState::Ended | SessionState::Error => {}
                }
                if let Some(q) = d.queued {
                    // A decided approval waits behind the running turn or the pause.
                    if let Some(a) = self.approvals.iter().find(|a| a.message_id == q) {
                        let allow = a.status == "allow";
                        self.queue.push_back(Queued {
                            message_id: q,
                            text: None,
                            resume: Some((a.call.clone(), allow)),
                        });
                    }
                }
            }
            EventData::SessionPaused(d) => self.paused_reason = Some(d.reason),
            EventData::SessionResumed(_) => {
                self.reattachable = false;
                self.paused_reason = None;
            }
            EventData::SessionEnded(_) => {
                self.state = SessionState::Ended;
                self.turn = None;
                self.stopping = None;
                self.queue.clear();
            }
            EventData::SessionError(d) if d.interrupted => self.turn = None,
            EventData::ApprovalRequested(d) => self.approvals.push(ApprovalEntry {
                id: d.approval_id,
                call: ToolCall {
                    id: d.call_id,
                    name: d.tool,
                    arguments: d.args,
                },
                message_id: d.reply_to,
                status: "pending".into(),
                external: d.external,
            }),
            EventData::ApprovalResolved(d) => {
                if let Some(a) = self.approvals.iter_mut().find(|a| a.id == d.approval_id) {
                    a.status = d.decision.as_str().to_string();
                    if d.remember {
                        let policy = match d.decision {
                            Decision::Allow => ToolPolicy::Allow,
                            Decision::Deny => ToolPolicy::Deny,
                        };
                        std::sync::Arc::make_mut(&mut self.remembered)
                            .insert(a.call.name.clone(), policy);
                    }
                }
                let decided = |a: &ApprovalEntry| a.status != "pending";
                if self.approvals.iter().filter(|a| decided(a)).count() > MAX_DECIDED_APPROVALS {
                    if let Some(i) = self.approvals.iter().position(decided) {
                        self.approvals.remove(i);
                    }
                }
            }
            EventData::LaneCreated(d) => {
                self.lanes.push(LaneEntry {
                    lane: d.lane,
                    tool: d.tool,
                    status: LaneStatus::Running,
                    pinned: false,
                    created_seq: r.seq,
                });
                let ended = |l: &LaneEntry| l.status != LaneStatus::Running && !l.pinned;
                if self.lanes.iter().filter(|l| ended(l)).count() > MAX_ENDED_LANES {
                    if let Some(i) = self.lanes.iter().position(ended) {
                        self.lanes.remove(i);
                    }
                }
            }
            EventData::CortexNote(n) => {
                if n.critical {
                    self.pending_notes.push(n.text.clone());
                    if self.pending_notes.len() > MAX_PENDING_NOTES {
                        self.pending_notes.remove(0);
                    }
                }
                let notes = std::sync::Arc::make_mut(&mut self.notes);
                notes.push_back(r1_proto::NoteView {
                    seq: r.seq,
                    note_id: n.note_id,
                    at: r.at.clone(),
                    text: n.text,
                    tags: n.tags,
                    critical: n.critical,
                    source: n.source,
                });
                if notes.len() > MAX_NOTES {
                    notes.pop_front();
                }
            }
            EventData::CortexLobe(d) => {
                let paused = std::sync::Arc::make_mut(&mut self.lobes_paused);
                if d.paused {
                    paused.insert(d.lobe);
                } else {
                    paused.remove(&d.lobe);
                }
            }
            EventData::LaneKilled(d) => {
                if let Some(l) = self.lanes.iter_mut().find(|l| l.lane == d.lane) {
                    l.status = LaneStatus::Killed;
                }
            }
            EventData::LaneStatus(d) => {
                if let Some(l) = self.lanes.iter_mut().find(|l| l.lane == d.lane) {
                    l.status = d.status;
                    if let Some(pinned) = d.pinned {
                        l.pinned = pinned;
                    }
                }
            }
            _ => {}
        }
    }

    /// Remembers why the running turn is being stopped. A kill outranks a pause, and a
    /// pause a cancel: a weaker stop never replaces a stronger one.
    pub fn stop_with(&mut self, stop: Stop) {
        let rank = |s: &Stop| match s {
            Stop::Cancel => 0,
            Stop::Pause(_) => 1,
            Stop::Kill => 2,
        };
        if self
            .stopping
            .as_ref()
            .is_none_or(|cur| rank(&stop) > rank(cur))
        {
            self.stopping = Some(stop);
        }
    }

    /// Ids of the approvals still waiting for a decision.
    pub fn pending_approvals(&self) -> Vec<String> {
        self.approvals
            .iter()
            .filter(|a| a.status == "pending")
            .map(|a| a.id.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn idempotency_keys_are_bounded_and_forget_the_oldest_first() {
        let mut keys = IdemKeys::default();
        for i in 0..IDEM_KEYS + 5 {
            keys.insert(&format!("k{i}"), &format!("msg_{i}"), i as u64 + 1);
        }
        assert_eq!((keys.map.len(), keys.order.len()), (IDEM_KEYS, IDEM_KEYS));
        assert!(keys.get("k0").is_none() && keys.get("k4").is_none());
        assert_eq!(keys.get("k5"), Some(&("msg_5".to_string(), 6)));
        // A key seen again keeps its first answer and does not move.
        keys.insert("k5", "msg_other", 99);
        assert_eq!(keys.get("k5"), Some(&("msg_5".to_string(), 6)));
        keys.insert("new", "msg_new", 100);
        assert!(keys.get("k5").is_none(), "k5 was the oldest");
    }

    /// Runs `cmd` as the actor does when every write succeeds: the records are
    /// "journaled" with the next seqs and folded in; a stop that waits for the turn is
    /// remembered; a started turn is the running one.
    fn run(core: &mut Core, cmd: Command) -> Result<Step, ApiError> {
        let step = transition(core, &cmd)?;
        for r in &step.records {
            let rec = EventRecord {
                v: 1,
                seq: core.last_seq + 1,
                at: String::new(),
                kind: r.kind,
                lane: r.lane.clone(),
                data: r.data.clone(),
            };
            core.apply(&rec);
        }
        if step.cancel_turn {
            core.stop_with(match cmd {
                Command::Pause { reason } => Stop::Pause(reason),
                Command::Kill => Stop::Kill,
                _ => Stop::Cancel,
            });
        }
        Ok(step)
    }

    fn send(id: &str) -> Command {
        Command::Send {
            message_id: id.into(),
            text: format!("text of {id}"),
            client_message_id: Some(format!("k-{id}")),
        }
    }

    fn created() -> Core {
        let mut c = Core::default();
        c.apply(&EventRecord {
            v: 1,
            seq: 1,
            at: String::new(),
            kind: EventKind::SessionCreated,
            lane: "main".into(),
            data: json!({}),
        });
        c
    }

    #[test]
    fn usage_is_the_sum_of_the_journaled_calls() {
        let mut c = created();
        let mut fold = |kind, data| {
            let seq = c.last_seq + 1;
            c.apply(&EventRecord {
                v: 1,
                seq,
                at: String::new(),
                kind,
                lane: "main".into(),
                data,
            })
        };
        let msg = EventKind::SessionMessage;
        fold(
            msg,
            json!({"role": "assistant", "text": "a", "usage": {"input_tokens": 100, "output_tokens": 10, "cached_input_tokens": 60, "cost_usd": 0.5}}),
        );
        // Journals written before usage was priced, and steps with no usage.
        fold(
            msg,
            json!({"role": "assistant", "text": "b", "usage": {"input_tokens": 7, "output_tokens": 3}}),
        );
        fold(
            msg,
            json!({"role": "assistant", "text": "c", "usage": null}),
        );
        fold(msg, json!({"role": "user", "text": "d", "message_id": "m"}));
        fold(
            EventKind::SessionCompacted,
            json!({"upto_seq": 1, "method": "summary", "summary": "s", "tokens_before": 9, "tokens_after": 1, "kept": 0, "reason": "forced", "usage": {"input_tokens": 1000, "output_tokens": 20, "cost_usd": 0.25}}),
        );
        assert_eq!(
            c.usage,
            SessionUsage {
                input_tokens: 1107,
                output_tokens: 33,
                cached_input_tokens: 60,
                cost_usd: Some(0.75),
                model_calls: 3,
            }
        );
        assert_eq!(c.usage.tokens(), 1140);
        assert_eq!(created().usage, SessionUsage::default());
    }

    #[test]
    fn a_send_is_busy_before_it_is_answered_and_idle_after_its_turn() {
        let mut c = created();
        let step = run(&mut c, send("m1")).unwrap();
        assert_eq!(c.state, SessionState::Busy);
        assert_eq!(step.start_turn.unwrap().message_id, "m1");
        assert_eq!(c.turn.as_deref(), Some("m1"));
        // A second send while busy is queued, the state stays busy.
        let step = run(&mut c, send("m2")).unwrap();
        assert!(step.start_turn.is_none());
        assert_eq!(c.state, SessionState::Busy);
        // The first turn ends: the second starts at once, still busy.
        let step = run(&mut c, Command::TurnEnded(TurnEnd::Completed)).unwrap();
        assert_eq!(step.start_turn.unwrap().message_id, "m2");
        assert_eq!(c.state, SessionState::Busy);
        run(&mut c, Command::TurnEnded(TurnEnd::Completed)).unwrap();
        assert_eq!(c.state, SessionState::Idle);
        assert!(c.turn.is_none() && c.queue.is_empty());
        // The same key again is a duplicate with the original ids, no records.
        let step = run(&mut c, send("m1")).unwrap();
        assert_eq!(step.duplicate.as_ref().unwrap().0, "m1");
        assert!(step.records.is_empty());
    }

    #[test]
    fn pause_waits_for_the_turn_and_no_turn_record_follows_it() {
        let mut c = created();
        run(&mut c, send("m1")).unwrap();
        let step = run(
            &mut c,
            Command::Pause {
                reason: "user".into(),
            },
        )
        .unwrap();
        assert!(step.cancel_turn && step.wait_for_turn && step.records.is_empty());
        // Sends are refused while the pause waits.
        assert_eq!(
            transition(&c, &send("m2")).unwrap_err().code,
            ErrorCode::Conflict
        );
        let step = run(&mut c, Command::TurnEnded(TurnEnd::Cancelled)).unwrap();
        assert_eq!(step.records.last().unwrap().data["state"], "paused");
        assert_eq!(c.state, SessionState::Paused);
        let step = run(&mut c, Command::Resume).unwrap();
        assert!(step.start_turn.is_none());
        assert_eq!(c.state, SessionState::Idle);
    }

    #[test]
    fn a_remembered_decision_is_folded_into_the_policy_and_replays() {
        let mut c = created();
        let mut journal = Vec::new();
        let mut record = |c: &mut Core, cmd: Command| {
            let step = transition(c, &cmd).unwrap();
            for r in &step.records {
                let rec = EventRecord {
                    v: 1,
                    seq: c.last_seq + 1,
                    at: String::new(),
                    kind: r.kind,
                    lane: r.lane.clone(),
                    data: r.data.clone(),
                };
                c.apply(&rec);
                journal.push(rec);
            }
        };
        record(&mut c, send("m1"));
        let ask = |id: &str, tool: &str| Command::AskApproval {
            approval_id: id.into(),
            call: ToolCall {
                id: format!("call-{id}"),
                name: tool.into(),
                arguments: json!({}),
            },
            message_id: "m1".into(),
            external: false,
        };
        let decide = |id: &str, decision: &str, remember: bool| Command::Approve {
            approval_id: id.into(),
            decision: decision.into(),
            waiter_alive: true,
            remember,
        };
        record(&mut c, ask("a1", "write_file"));
        record(&mut c, decide("a1", "allow", false));
        assert!(
            c.remembered.is_empty(),
            "a one-off decision is not remembered"
        );
        record(&mut c, ask("a2", "write_file"));
        record(&mut c, decide("a2", "allow", true));
        record(&mut c, ask("a3", "run_command"));
        record(&mut c, decide("a3", "deny", true));
        assert_eq!(c.remembered.get("write_file"), Some(&ToolPolicy::Allow));
        assert_eq!(c.remembered.get("run_command"), Some(&ToolPolicy::Deny));
        let resolved: Vec<&EventRecord> = journal
            .iter()
            .filter(|r| r.kind == EventKind::ApprovalResolved)
            .collect();
        assert_eq!(resolved[0].data.get("remember"), None, "absent when false");
        assert_eq!(resolved[1].data["remember"], true);
        // The fold of the journal gives the same policy.
        let mut replayed = Core::default();
        for r in &journal {
            replayed.apply(r);
        }
        assert_eq!(replayed.remembered, c.remembered);
    }

    #[test]
    fn an_approval_decided_after_its_turn_is_gone_continues_in_a_new_turn() {
        let mut c = created();
        run(&mut c, send("m1")).unwrap();
        let call = ToolCall {
            id: "c1".into(),
            name: "run_command".into(),
            arguments: json!({"command": "ls"}),
        };
        run(
            &mut c,
            Command::AskApproval {
                approval_id: "a1".into(),
                call,
                message_id: "m1".into(),
                external: false,
            },
        )
        .unwrap();
        assert_eq!(c.state, SessionState::WaitingOnApproval);
        run(&mut c, Command::Pause { reason: "x".into() }).unwrap();
        run(&mut c, Command::TurnEnded(TurnEnd::Cancelled)).unwrap();
        assert_eq!(c.pending_approvals(), ["a1"]);
        run(&mut c, Command::Resume).unwrap();
        let step = run(
            &mut c,
            Command::Approve {
                approval_id: "a1".into(),
                decision: "allow".into(),
                waiter_alive: false,
                remember: false,
            },
        )
        .unwrap();
        let next = step.start_turn.unwrap();
        assert!(next.resume.unwrap().1);
        assert_eq!(c.state, SessionState::Busy);
        // Deciding again the same way is ok; the other way is a conflict.
        assert!(transition(
            &c,
            &Command::Approve {
                approval_id: "a1".into(),
                decision: "allow".into(),
                waiter_alive: false,
                remember: false,
            }
        )
        .unwrap()
        .records
        .is_empty());
        assert_eq!(
            transition(
                &c,
                &Command::Approve {
                    approval_id: "a1".into(),
                    decision: "deny".into(),
                    waiter_alive: false,
                    remember: false,
                }
            )
            .unwrap_err()
            .code,
            ErrorCode::Conflict
        );
    }

    #[test]
    fn an_agent_clis_approval_ends_with_its_turn_and_never_continues_one() {
        let ask = |id: &str| Command::AskApproval {
            approval_id: id.into(),
            call: ToolCall {
                id: format!("toolu_{id}"),
                name: "Write".into(),
                arguments: json!({"file_path": "a.txt"}),
            },
            message_id: "m1".into(),
            external: true,
        };
        // A pause stops the agent: its pending approval is denied by r1, not kept.
        let mut c = created();
        run(&mut c, send("m1")).unwrap();
        run(&mut c, ask("a1")).unwrap();
        assert_eq!(c.state, SessionState::WaitingOnApproval);
        run(&mut c, Command::Pause { reason: "x".into() }).unwrap();
        let step = run(&mut c, Command::TurnEnded(TurnEnd::Cancelled)).unwrap();
        let resolved = step
            .records
            .iter()
            .find(|r| r.kind == EventKind::ApprovalResolved)
            .expect("resolved");
        assert_eq!(resolved.data["decision"], "deny");
        assert_eq!(resolved.data["reason"], AGENT_GONE);
        assert!(c.pending_approvals().is_empty());
        assert_eq!(c.state, SessionState::Paused);
        // A turn that completes with one still pending (the agent gave the call up)
        // resolves it too.
        let mut c = created();
        run(&mut c, send("m1")).unwrap();
        run(&mut c, ask("a1")).unwrap();
        run(&mut c, Command::TurnEnded(TurnEnd::Completed)).unwrap();
        assert!(c.pending_approvals().is_empty());
        assert_eq!(c.state, SessionState::Idle);
        // Decided while no waiter is left (the turn is ending): recorded, and no turn
        // starts to run another program's tool.
        let mut c = created();
        run(&mut c, send("m1")).unwrap();
        run(&mut c, ask("a1")).unwrap();
        let step = run(
            &mut c,
            Command::Approve {
                approval_id: "a1".into(),
                decision: "allow".into(),
                waiter_alive: false,
                remember: false,
            },
        )
        .unwrap();
        assert!(step.start_turn.is_none());
        assert_eq!(step.records.len(), 1, "{:?}", step.records);
        assert!(c.queue.is_empty());
    }

    #[test]
    fn the_waiting_queue_is_bounded() {
        let mut c = created();
        run(&mut c, send("running")).unwrap();
        for i in 0..MAX_QUEUED {
            run(&mut c, send(&format!("q{i}"))).unwrap();
        }
        let e = transition(&c, &send("one-too-many")).unwrap_err();
        assert_eq!(e.code, ErrorCode::BudgetExceeded);
        assert_eq!(c.queue.len(), MAX_QUEUED);
        // The turn ends, the next starts: there is room again.
        run(&mut c, Command::TurnEnded(TurnEnd::Completed)).unwrap();
        assert!(transition(&c, &send("fits")).is_ok());
    }

    #[test]
    fn lanes_and_approvals_are_bounded() {
        let mut c = created();
        let rec = |seq: u64, kind: EventKind, data: Value| EventRecord {
            v: 1,
            seq,
            at: String::new(),
            kind,
            lane: "main".into(),
            data,
        };
        let mut seq = 1;
        for i in 0..(MAX_ENDED_LANES + 100) {
            seq += 1;
            c.apply(&rec(
                seq,
                EventKind::LaneCreated,
                json!({"lane": format!("l{i}"), "tool": "t"}),
            ));
            seq += 1;
            c.apply(&rec(
                seq,
                EventKind::LaneStatus,
                json!({"lane": format!("l{i}"), "status": "done"}),
            ));
            seq += 1;
            c.apply(&rec(
                seq,
                EventKind::ApprovalRequested,
                json!({"approval_id": format!("a{i}"), "tool": "t", "reply_to": "m"}),
            ));
            seq += 1;
            c.apply(&rec(
                seq,
                EventKind::ApprovalResolved,
                json!({"approval_id": format!("a{i}"), "decision": "allow"}),
            ));
        }
        assert!(c.lanes.len() <= MAX_ENDED_LANES + 1, "{}", c.lanes.len());
        assert!(c.approvals.len() <= MAX_DECIDED_APPROVALS + 1);
        // The newest are the ones kept.
        assert_eq!(
            c.lanes.last().unwrap().lane,
            format!("l{}", MAX_ENDED_LANES + 99)
        );
    }

    #[test]
    fn kill_ends_once_and_refuses_everything_after() {
        let mut c = created();
        run(&mut c, send("m1")).unwrap();
        run(&mut c, Command::Kill).unwrap();
        let step = run(&mut c, Command::TurnEnded(TurnEnd::Cancelled)).unwrap();
        assert!(step.ended);
        assert_eq!(c.state, SessionState::Ended);
        assert!(run(&mut c, Command::Kill).unwrap().records.is_empty());
        assert_eq!(
            transition(&c, &send("m9")).unwrap_err().code,
            ErrorCode::Conflict
        );
        assert_eq!(
            transition(&c, &Command::Resume).unwrap_err().code,
            ErrorCode::Conflict
        );
    }

    fn command() -> impl Strategy<Value = Command> {
        prop_oneof![
            (0u8..6).prop_map(|i| send(&format!("m{i}"))),
            Just(Command::Cancel),
            Just(Command::Pause { reason: "p".into() }),
            Just(Command::Resume),
            Just(Command::Kill),
            Just(Command::TurnEnded(TurnEnd::Completed)),
            Just(Command::TurnEnded(TurnEnd::Cancelled)),
            Just(Command::TurnEnded(TurnEnd::Failed {
                message: "boom".into(),
                code: "internal".into()
            })),
        ]
    }

    proptest! {
        /// Whatever order commands (and turn ends racing them) arrive in: the state is
        /// the fold of the records, a running turn means busy or waiting, an idle or
        /// paused session runs no turn, nothing happens after the end, and a pause is
        /// never lost: once asked, the session ends up paused or ended.
        #[test]
        fn no_transition_is_lost(cmds in proptest::collection::vec(command(), 1..60)) {
            let mut c = created();
            let mut journal: Vec<EventRecord> = Vec::new();
            let mut paused_asked = false;
            for cmd in cmds {
                // A turn end only comes from a running turn.
                if matches!(cmd, Command::TurnEnded(_)) && c.turn.is_none() {
                    continue;
                }
                let before = c.clone();
                let is_pause = matches!(cmd, Command::Pause { .. });
                let is_resume = matches!(cmd, Command::Resume);
                match run(&mut c, cmd) {
                    Ok(step) => {
                        for (i, r) in step.records.iter().enumerate() {
                            journal.push(EventRecord { v: 1, seq: before.last_seq + 1 + i as u64, at: String::new(), kind: r.kind, lane: r.lane.clone(), data: r.data.clone() });
                        }
                        if is_pause && before.state != SessionState::Ended && before.state != SessionState::Error {
                            paused_asked = true;
                        }
                        if is_resume && c.state != SessionState::Paused {
                            paused_asked = false;
                        }
                    }
                    Err(_) => prop_assert_eq!(&c, &before, "a refused command changed the state"),
                }
                if before.state == SessionState::Ended {
                    prop_assert_eq!(c.state, SessionState::Ended);
                }
                match c.state {
                    SessionState::Idle | SessionState::Paused | SessionState::Ended => {
                        prop_assert!(c.turn.is_none(), "{:?} with a running turn", c.state)
                    }
                    SessionState::Busy | SessionState::WaitingOnApproval => {
                        prop_assert!(c.turn.is_some() || c.stopping.is_some(), "{:?} with no turn", c.state)
                    }
                    SessionState::Error => {}
                }
                if c.turn.is_none() && c.stopping.is_none() && paused_asked {
                    prop_assert!(matches!(c.state, SessionState::Paused | SessionState::Ended), "a pause was lost: {:?}", c.state);
                }
            }
            // Replaying the journal gives the same session (what a restart sees),
            // except what only lives while the daemon runs: the stop being waited on.
            let mut replayed = created();
            for r in &journal {
                replayed.apply(r);
            }
            let mut live = c.clone();
            live.stopping = None;
            replayed.stopping = None;
            prop_assert_eq!(replayed.state, live.state);
            prop_assert_eq!(replayed.turn, live.turn);
            prop_assert_eq!(replayed.idem, live.idem);
        }
    }
}
