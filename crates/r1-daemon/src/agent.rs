//! The agent side of a session: the turn runner, the host the engine's turn loop
//! calls back into (journaling, policy and approvals, tools in lanes, the token
//! budget), and the approval and lane operations of the API.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use r1_engine::{
    Authorization, ChatMessage, Policy, Provider, ProviderRequest, Role, SinkError, ToolCall,
    ToolResult, TurnOutcome, TurnSink,
};
use r1_proto::{ApiError, EventKind, EventRecord, LaneList, LaneView, SessionState, SessionView};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::fsutil::random_hex;
use crate::sessions::{journal_error, trim_history, Job, Session};
use crate::Hub;

/// How much of a tool's result is journaled in `tool.completed` (the model gets the
/// same bounded text).
const RESULT_JOURNAL_BYTES: usize = 64 * 1024;
/// Live output chunks waiting to be journaled as `lane.delta`.
const LANE_OUTPUT_QUEUE: usize = 256;

/// An approval a tool call waits for.
pub(crate) struct Approval {
    pub(crate) id: String,
    pub(crate) call: ToolCall,
    pub(crate) message_id: String,
    /// `pending`, `allow` or `deny`.
    pub(crate) status: String,
    /// Wakes the waiting turn; `None` after a restart (the decision then queues a
    /// continuation instead).
    pub(crate) waiter: Option<oneshot::Sender<bool>>,
}

/// A tool lane.
pub(crate) struct Lane {
    pub(crate) lane: String,
    pub(crate) tool: String,
    pub(crate) status: String,
    pub(crate) pinned: bool,
    pub(crate) created_seq: u64,
    pub(crate) cancel: Option<CancellationToken>,
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}\n[… {} more bytes not shown]", &s[..end], s.len() - end)
}

impl Session {
    /// Ids of the approvals still waiting for a decision.
    pub(crate) fn pending_approval_ids(&self) -> Vec<String> {
        lock(&self.approvals)
            .iter()
            .filter(|a| a.status == "pending")
            .map(|a| a.id.clone())
            .collect()
    }

    /// The policy for `tool` in this session.
    fn policy_for(&self, tool: &str) -> Policy {
        self.policy
            .get(tool)
            .copied()
            .unwrap_or_else(|| r1_engine::default_policy(tool))
    }
}

/// Rebuilds a reloaded session's context and lanes from its journal, once.
pub(crate) async fn ensure_loaded(s: &Session) -> Result<(), ApiError> {
    if s.history_loaded.load(Ordering::Acquire) {
        return Ok(());
    }
    let journal = s.journal()?;
    let mut history = Vec::new();
    let mut lanes: Vec<Lane> = Vec::new();
    let mut since = 1;
    loop {
        let page = journal
            .read_from(since, 4096)
            .await
            .map_err(|e| journal_error(&e))?;
        let Some(last) = page.last() else { break };
        since = last.seq + 1;
        for r in &page {
            apply_to_context(r, &mut history, &mut lanes);
        }
    }
    trim_history(&mut history);
    {
        let mut m = s.meta();
        let mut h = history;
        h.append(&mut m.history);
        m.history = h;
    }
    {
        let mut l = lock(&s.lanes);
        for lane in lanes {
            if !l.iter().any(|x| x.lane == lane.lane) {
                l.push(lane);
            }
        }
    }
    s.history_loaded.store(true, Ordering::Release);
    Ok(())
}

fn apply_to_context(r: &EventRecord, history: &mut Vec<ChatMessage>, lanes: &mut Vec<Lane>) {
    let d = &r.data;
    let text = d["text"].as_str().unwrap_or_default().to_string();
    match r.kind {
        EventKind::SessionMessage if d["role"] == "user" => {
            history.push(ChatMessage::text(Role::User, text))
        }
        EventKind::SessionMessage if d["role"] == "assistant" => history.push(ChatMessage {
            role: Role::Assistant,
            text,
            tool_calls: serde_json::from_value(d["tool_calls"].clone()).unwrap_or_default(),
            tool_result: None,
        }),
        EventKind::ToolCompleted if d["external"] != true => history.push(ChatMessage {
            role: Role::User,
            text: String::new(),
            tool_calls: Vec::new(),
            tool_result: Some(ToolResult {
                call_id: d["call_id"].as_str().unwrap_or_default().to_string(),
                name: d["tool"].as_str().unwrap_or_default().to_string(),
                content: d["content"].as_str().unwrap_or_default().to_string(),
                is_error: d["is_error"].as_bool().unwrap_or(false),
            }),
        }),
        EventKind::LaneCreated => lanes.push(Lane {
            lane: d["lane"].as_str().unwrap_or_default().to_string(),
            tool: d["tool"].as_str().unwrap_or_default().to_string(),
            status: "running".into(),
            pinned: false,
            created_seq: r.seq,
            cancel: None,
        }),
        EventKind::LaneStatus | EventKind::LaneKilled => {
            if let Some(l) = lanes
                .iter_mut()
                .find(|l| l.lane == d["lane"].as_str().unwrap_or_default())
            {
                if r.kind == EventKind::LaneKilled {
                    l.status = "killed".into();
                } else if let Some(st) = d["status"].as_str() {
                    l.status = st.to_string();
                }
                if d["pinned"] == true {
                    l.pinned = true;
                }
            }
        }
        _ => {}
    }
}

/// Restores the approvals still pending at the journal's tail (after a restart).
pub(crate) async fn restore_pending_approvals(s: &Session) -> usize {
    let Ok(journal) = s.journal() else { return 0 };
    // Approvals are decided within a turn; a window of recent records holds every one
    // that can still be pending without reading the whole journal.
    let since = journal.last_seq().saturating_sub(1024).max(1);
    let Ok(recs) = journal.read_from(since, 2048).await else {
        return 0;
    };
    let mut pending: Vec<Approval> = Vec::new();
    for r in &recs {
        match r.kind {
            EventKind::ApprovalRequested => pending.push(Approval {
                id: r.data["approval_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                call: ToolCall {
                    id: r.data["call_id"].as_str().unwrap_or_default().to_string(),
                    name: r.data["tool"].as_str().unwrap_or_default().to_string(),
                    arguments: r.data["args"].clone(),
                },
                message_id: r.data["reply_to"].as_str().unwrap_or_default().to_string(),
                status: "pending".into(),
                waiter: None,
            }),
            EventKind::ApprovalResolved => {
                let id = r.data["approval_id"].as_str().unwrap_or_default();
                pending.retain(|a| a.id != id);
            }
            _ => {}
        }
    }
    let n = pending.len();
    lock(&s.approvals).extend(pending);
    n
}

/// The turn runner of one session: takes accepted messages in order and runs a turn
/// for each, waiting while the session is paused.
pub(crate) async fn run_turns(hub: Hub, s: Arc<Session>, mut jobs: mpsc::Receiver<Job>) {
    while let Some(job) = jobs.recv().await {
        loop {
            let woken = s.wake.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            match s.state() {
                SessionState::Paused => woken.await,
                _ => break,
            }
        }
        if matches!(s.state(), SessionState::Ended | SessionState::Error) {
            return;
        }
        let provider = match hub.provider_for(&s).await {
            Ok(p) => p,
            Err(e) => {
                let _ = hub
                    .record(&s, EventKind::SessionError, "main", json!({"message": e.message, "code": e.code.as_str(), "message_id": job.message_id}), true)
                    .await;
                continue;
            }
        };
        run_one(&hub, &s, provider.as_ref(), job).await;
    }
}

async fn run_one(hub: &Hub, s: &Arc<Session>, provider: &dyn Provider, job: Job) {
    let cancel = CancellationToken::new();
    s.running.send_replace(true);
    s.meta().turn = Some(cancel.clone());
    let done = |hub: &Hub, s: &Arc<Session>| {
        s.meta().turn = None;
        let _ = (hub, s);
    };
    if let Err(e) = ensure_loaded(s).await {
        tracing::warn!(session = %s.id, "context not rebuilt: {e}");
    }
    if hub.set_state(s, SessionState::Busy).await.is_err() {
        done(hub, s);
        s.running.send_replace(false);
        return;
    }
    let sink = SessionSink {
        hub,
        session: s,
        message_id: job.message_id.clone(),
        cancel: cancel.clone(),
    };
    if let Some(text) = &job.text {
        let mut m = s.meta();
        m.history.push(ChatMessage::text(Role::User, text.clone()));
        trim_history(&mut m.history);
    }
    if let Some((call, auth)) = &job.resume {
        let result = match auth {
            Authorization::Allow => sink.execute(call).await,
            Authorization::Deny(reason) => ToolResult {
                call_id: call.id.clone(),
                name: call.name.clone(),
                content: reason.clone(),
                is_error: true,
            },
        };
        let mut m = s.meta();
        m.history.push(ChatMessage {
            role: Role::User,
            text: String::new(),
            tool_calls: Vec::new(),
            tool_result: Some(result),
        });
    }
    let tools = hub.tools_for(s).await;
    let req = ProviderRequest {
        model: s.model.clone(),
        system: Some(system_prompt(s)),
        messages: s.meta().history.clone(),
        tools,
        protected: protected(hub),
    };
    let outcome = r1_engine::run_turn(provider, req, &sink, &job.message_id, &cancel).await;
    match outcome {
        TurnOutcome::Completed { added, .. } => {
            let mut m = s.meta();
            m.history.extend(added);
            trim_history(&mut m.history);
        }
        TurnOutcome::Cancelled => {
            let pausing = matches!(s.state(), SessionState::Paused | SessionState::Ended);
            let waiting: Vec<String> = lock(&s.approvals)
                .iter()
                .filter(|a| a.status == "pending" && a.message_id == job.message_id)
                .map(|a| a.id.clone())
                .collect();
            if pausing && !waiting.is_empty() && s.state() == SessionState::Paused {
                // A pause (or a daemon shutdown) keeps the approval pending: it can be
                // answered later, and the turn continues then.
                lock(&s.approvals).iter_mut().for_each(|a| {
                    if waiting.contains(&a.id) {
                        a.waiter = None;
                    }
                });
            } else {
                for id in waiting {
                    resolve(s, &id, "deny");
                    let _ = hub
                        .record(s, EventKind::ApprovalResolved, "main", json!({"approval_id": id, "decision": "deny", "reason": "the turn was cancelled"}), true)
                        .await;
                }
                let _ = hub
                    .record(
                        s,
                        EventKind::SessionCancelled,
                        "main",
                        json!({"message_id": job.message_id}),
                        true,
                    )
                    .await;
            }
        }
        TurnOutcome::Failed { message, code } => {
            let _ = hub
                .record(
                    s,
                    EventKind::SessionError,
                    "main",
                    json!({"message": message, "code": code, "message_id": job.message_id}),
                    true,
                )
                .await;
        }
    }
    let back_to_idle = {
        let mut m = s.meta();
        m.turn = None;
        matches!(
            m.state,
            SessionState::Busy | SessionState::WaitingOnApproval
        )
    };
    if back_to_idle {
        let _ = hub.set_state(s, SessionState::Idle).await;
    }
    s.running.send_replace(false);
}

/// The daemon's own files, which no tool may touch and no sandboxed child may reach,
/// even when a session's workdir contains the state directory.
fn protected(hub: &Hub) -> Arc<r1_engine::Protected> {
    hub.protected()
}

fn system_prompt(s: &Session) -> String {
    format!(
        "You are a coding agent working in the directory {}. Use the tools to read, search and change files there and to run commands. Paths are relative to that directory.",
        s.workdir
    )
}

/// Marks an approval decided; returns its waiter, if a turn still waits.
fn resolve(s: &Session, id: &str, decision: &str) -> Option<oneshot::Sender<bool>> {
    let mut approvals = lock(&s.approvals);
    let a = approvals.iter_mut().find(|a| a.id == id)?;
    a.status = decision.to_string();
    a.waiter.take()
}

struct SessionSink<'a> {
    hub: &'a Hub,
    session: &'a Arc<Session>,
    message_id: String,
    cancel: CancellationToken,
}

impl SessionSink<'_> {
    async fn emit_denial(&self, call: &ToolCall, reason: &str) -> Result<(), SinkError> {
        self.emit(
            EventKind::ToolCompleted,
            "main",
            json!({"call_id": call.id, "tool": call.name, "content": reason, "is_error": true, "denied": true}),
            false,
        )
        .await
        .map(|_| ())
    }
}

#[async_trait::async_trait]
impl TurnSink for SessionSink<'_> {
    async fn emit(
        &self,
        kind: EventKind,
        lane: &str,
        data: Value,
        durable: bool,
    ) -> Result<u64, SinkError> {
        self.hub
            .record(self.session, kind, lane, data, durable)
            .await
            .map(|r| r.seq)
            .map_err(|e| SinkError::storage(e.message))
    }

    async fn authorize(&self, call: &ToolCall) -> Result<Authorization, SinkError> {
        let s = self.session;
        match s.policy_for(&call.name) {
            Policy::Allow => Ok(Authorization::Allow),
            Policy::Deny => {
                let reason = format!("the session's policy denies the tool {}", call.name);
                self.emit_denial(call, &reason).await?;
                Ok(Authorization::Deny(reason))
            }
            Policy::Ask => {
                let id = format!("apr_{}", random_hex(6).unwrap_or_default());
                let (tx, rx) = oneshot::channel();
                lock(&s.approvals).push(Approval {
                    id: id.clone(),
                    call: call.clone(),
                    message_id: self.message_id.clone(),
                    status: "pending".into(),
                    waiter: Some(tx),
                });
                self.emit(
                    EventKind::ApprovalRequested,
                    "main",
                    json!({"approval_id": id, "tool": call.name, "args": call.arguments, "call_id": call.id, "reply_to": self.message_id}),
                    true,
                )
                .await?;
                self.hub
                    .set_state(s, SessionState::WaitingOnApproval)
                    .await
                    .map_err(|e| SinkError::storage(e.message))?;
                let allowed = rx.await.unwrap_or(false);
                if s.state() == SessionState::WaitingOnApproval {
                    self.hub
                        .set_state(s, SessionState::Busy)
                        .await
                        .map_err(|e| SinkError::storage(e.message))?;
                }
                if allowed {
                    Ok(Authorization::Allow)
                } else {
                    let reason = format!("the user denied the {} call", call.name);
                    self.emit_denial(call, &reason).await?;
                    Ok(Authorization::Deny(reason))
                }
            }
        }
    }

    async fn execute(&self, call: &ToolCall) -> ToolResult {
        let s = self.session;
        let lane = format!("tool_{}", random_hex(5).unwrap_or_default());
        let lane_cancel = self.cancel.child_token();
        let created = self
            .emit(
                EventKind::LaneCreated,
                &lane,
                json!({"lane": lane, "tool": call.name, "call_id": call.id}),
                false,
            )
            .await
            .unwrap_or(0);
        lock(&s.lanes).push(Lane {
            lane: lane.clone(),
            tool: call.name.clone(),
            status: "running".into(),
            pinned: false,
            created_seq: created,
            cancel: Some(lane_cancel.clone()),
        });
        let _ = self
            .emit(EventKind::ToolStarted, &lane, json!({"lane": lane, "call_id": call.id, "tool": call.name, "args": call.arguments}), false)
            .await;
        let (tx, mut rx) = mpsc::channel::<String>(LANE_OUTPUT_QUEUE);
        let ctx = r1_engine::ToolContext {
            workdir: std::path::PathBuf::from(&s.workdir),
            cancel: lane_cancel.clone(),
            output: Some(tx),
            protected: protected(self.hub),
        };
        // The context owns the output sender: it must drop when the tool finishes so
        // the forwarder below sees the end of the output.
        let run = async move {
            let result = self.hub.run_tool(s, &ctx, call).await;
            drop(ctx);
            result
        };
        let forward = async {
            while let Some(chunk) = rx.recv().await {
                let _ = self
                    .emit(
                        EventKind::LaneDelta,
                        &lane,
                        json!({"lane": lane, "text": chunk}),
                        false,
                    )
                    .await;
            }
        };
        let (result, ()) = tokio::join!(run, forward);
        let killed = lane_cancel.is_cancelled() && !self.cancel.is_cancelled();
        let status = if killed {
            "killed"
        } else if self.cancel.is_cancelled() {
            "cancelled"
        } else if result.is_error {
            "failed"
        } else {
            "done"
        };
        if killed {
            let _ = self
                .emit(EventKind::LaneKilled, &lane, json!({"lane": lane}), false)
                .await;
        }
        let _ = self
            .emit(
                EventKind::LaneStatus,
                &lane,
                json!({"lane": lane, "status": status}),
                false,
            )
            .await;
        if let Some(l) = lock(&s.lanes).iter_mut().find(|l| l.lane == lane) {
            l.status = status.to_string();
            l.cancel = None;
        }
        let content = truncate(&result.content, RESULT_JOURNAL_BYTES);
        let _ = self
            .emit(EventKind::ToolCompleted, &lane, json!({"lane": lane, "call_id": call.id, "tool": call.name, "content": content, "is_error": result.is_error}), false)
            .await;
        ToolResult { content, ..result }
    }

    fn usage(&self, input_tokens: u64, output_tokens: u64) -> Result<(), SinkError> {
        let s = self.session;
        let used = s
            .tokens_used
            .fetch_add(input_tokens + output_tokens, Ordering::AcqRel)
            + input_tokens
            + output_tokens;
        match s.token_budget {
            Some(b) if used > b => Err(SinkError {
                message: format!("the session's token budget of {b} is spent ({used} used); start a new session or raise the budget"),
                code: "budget_exceeded",
            }),
            _ => Ok(()),
        }
    }
}

impl Hub {
    /// The tools a session's model is offered: the built-in ones, and those of the
    /// configured MCP servers (started here, on the session's first turn).
    pub(crate) async fn tools_for(&self, s: &Session) -> Vec<r1_engine::ToolSpec> {
        let mut tools = r1_engine::builtin_tools();
        if let Some(pool) = self.mcp_pool(s).await {
            let (more, errors) = pool.tools().await;
            for e in errors {
                tracing::warn!(session = %s.id, "MCP server unavailable: {e}");
            }
            tools.extend(more);
        }
        tools
    }

    async fn mcp_pool(&self, s: &Session) -> Option<Arc<r1_engine::McpPool>> {
        if self.config().mcp_servers.is_empty() {
            return None;
        }
        let pool = s
            .mcp
            .get_or_init(|| async {
                Arc::new(r1_engine::McpPool::new(
                    self.config().mcp_servers.clone(),
                    std::path::PathBuf::from(&s.workdir),
                ))
            })
            .await;
        Some(pool.clone())
    }

    /// Runs one tool call for a session: an MCP server's tool (`<server>__<tool>`) or
    /// a built-in one.
    pub(crate) async fn run_tool(
        &self,
        s: &Session,
        ctx: &r1_engine::ToolContext,
        call: &ToolCall,
    ) -> ToolResult {
        if let Some(pool) = self.mcp_pool(s).await {
            if pool.owns(&call.name) {
                return tokio::select! {
                    r = pool.call(call) => r,
                    _ = ctx.cancel.cancelled() => ToolResult {
                        call_id: call.id.clone(),
                        name: call.name.clone(),
                        content: "cancelled".into(),
                        is_error: true,
                    },
                };
            }
        }
        r1_engine::run_tool(ctx, call).await
    }

    /// `session.approve`.
    pub async fn approve(
        &self,
        id: &str,
        approval_id: &str,
        decision: &str,
    ) -> Result<SessionView, ApiError> {
        let s = self.session(id)?;
        if decision != "allow" && decision != "deny" {
            return Err(ApiError::validation(
                "decision must be \"allow\" or \"deny\"",
            ));
        }
        let (status, call, message_id) = {
            let approvals = lock(&s.approvals);
            let a = approvals
                .iter()
                .find(|a| a.id == approval_id)
                .ok_or_else(|| {
                    ApiError::not_found(format!("approval {approval_id} not found in session {id}"))
                })?;
            (a.status.clone(), a.call.clone(), a.message_id.clone())
        };
        if status != "pending" {
            return if status == decision {
                Ok(s.view())
            } else {
                Err(ApiError::conflict(format!(
                    "approval {approval_id} was already decided: {status}"
                )))
            };
        }
        if s.state() == SessionState::Ended {
            return Err(ApiError::conflict(format!("session {id} has ended")));
        }
        self.record(
            &s,
            EventKind::ApprovalResolved,
            "main",
            json!({"approval_id": approval_id, "decision": decision}),
            true,
        )
        .await?;
        let waiter = resolve(&s, approval_id, decision);
        let delivered = waiter.is_some_and(|w| w.send(decision == "allow").is_ok());
        if !delivered {
            // No turn waits any more (a restart or a pause ended it): continue the
            // conversation from the decision in a new turn.
            let auth = if decision == "allow" {
                Authorization::Allow
            } else {
                let reason = format!("the user denied the {} call", call.name);
                let _ = self
                    .record(&s, EventKind::ToolCompleted, "main", json!({"call_id": call.id, "tool": call.name, "content": reason, "is_error": true, "denied": true}), false)
                    .await;
                Authorization::Deny(reason)
            };
            let job = Job {
                message_id,
                text: None,
                resume: Some((call, auth)),
            };
            if s.jobs.try_send(job).is_err() {
                return Err(ApiError::new(
                    r1_proto::ErrorCode::BudgetExceeded,
                    "too many queued turns in this session",
                ));
            }
        }
        Ok(s.view())
    }

    /// `lanes.list`.
    pub async fn lane_list(&self, id: &str) -> Result<LaneList, ApiError> {
        let s = self.session(id)?;
        ensure_loaded(&s).await?;
        let mut lanes = vec![LaneView {
            lane: "main".into(),
            tool: None,
            status: s.state().as_str().to_string(),
            pinned: true,
            created_seq: 1,
        }];
        lanes.extend(lock(&s.lanes).iter().map(|l| LaneView {
            lane: l.lane.clone(),
            tool: Some(l.tool.clone()),
            status: l.status.clone(),
            pinned: l.pinned,
            created_seq: l.created_seq,
        }));
        Ok(LaneList { lanes })
    }

    /// `lanes.kill`: kills the lane's process group; killing a finished lane is ok.
    pub async fn kill_lane(&self, id: &str, lane: &str) -> Result<LaneList, ApiError> {
        let s = self.session(id)?;
        ensure_loaded(&s).await?;
        if lane == "main" {
            return Err(ApiError::validation(
                "the main lane cannot be killed; cancel the turn instead",
            ));
        }
        let cancel = {
            let lanes = lock(&s.lanes);
            let l = lanes.iter().find(|l| l.lane == lane).ok_or_else(|| {
                ApiError::not_found(format!("lane {lane} not found in session {id}"))
            })?;
            l.cancel.clone()
        };
        if let Some(c) = cancel {
            c.cancel();
            // The lane's tool reports back within moments; wait so the answer shows it.
            for _ in 0..100 {
                if lock(&s.lanes)
                    .iter()
                    .any(|l| l.lane == lane && l.cancel.is_none())
                {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
        self.lane_list(id).await
    }

    /// `lanes.pin`.
    pub async fn pin_lane(&self, id: &str, lane: &str) -> Result<LaneList, ApiError> {
        let s = self.session(id)?;
        ensure_loaded(&s).await?;
        let status = {
            let mut lanes = lock(&s.lanes);
            let l = lanes.iter_mut().find(|l| l.lane == lane).ok_or_else(|| {
                ApiError::not_found(format!("lane {lane} not found in session {id}"))
            })?;
            if l.pinned {
                None
            } else {
                l.pinned = true;
                Some(l.status.clone())
            }
        };
        if let Some(status) = status {
            self.record(
                &s,
                EventKind::LaneStatus,
                lane,
                json!({"lane": lane, "status": status, "pinned": true}),
                false,
            )
            .await?;
        }
        self.lane_list(id).await
    }
}
