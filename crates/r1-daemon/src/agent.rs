//! The agent side of a session that is not its state: the tools a session's model is
//! offered (built-in and MCP), running one tool call, the conversation context rebuilt
//! from records, and the approval and lane operations of the API (which the session's
//! actor carries out).

use std::sync::Arc;
use std::time::Duration;

use r1_engine::{ChatMessage, Policy, Role, ToolCall, ToolResult};
use r1_proto::events::SessionMessage;
use r1_proto::{
    ApiError, EventData, EventKind, EventRecord, LaneList, LaneStatus, LaneView, SessionView,
};

use crate::sessions::Session;
use crate::transition::Command;
use crate::Hub;

/// How long `lanes.kill` waits for the killed lane to report its end.
const LANE_KILL_WAIT: Duration = Duration::from_secs(1);
/// How long `session.debug_state` waits for the actor: it answers between commands, and
/// a command waits at most for one journal batch.
const DEBUG_WAIT: Duration = Duration::from_secs(5);

impl Session {
    /// The policy for `tool` in this session: a decision a client asked to remember,
    /// else the policy the session started with, else the tool's default.
    pub(crate) fn policy_for(&self, tool: &str) -> Policy {
        if let Some(p) = self.snapshot().remembered.get(tool) {
            return match p {
                r1_proto::ToolPolicy::Allow => Policy::Allow,
                r1_proto::ToolPolicy::Ask => Policy::Ask,
                r1_proto::ToolPolicy::Deny => Policy::Deny,
            };
        }
        self.policy
            .get(tool)
            .copied()
            .unwrap_or_else(|| r1_engine::default_policy(tool))
    }
}

/// The system prompt of a session's turns.
pub(crate) fn system_prompt(s: &Session) -> String {
    format!(
        "You are a coding agent working in the directory {}. Use the tools to read, search and change files there and to run commands. Paths are relative to that directory.",
        s.workdir
    )
}

/// Folds one record into the conversation a provider is given.
pub(crate) fn apply_to_history(r: &EventRecord, history: &mut Vec<ChatMessage>) {
    if !matches!(
        r.kind,
        EventKind::SessionMessage | EventKind::ToolCompleted | EventKind::SessionCompacted
    ) {
        return;
    }
    match r.event() {
        Ok(EventData::SessionCompacted(c)) => crate::compact::apply(history, &c),
        Ok(EventData::SessionMessage(SessionMessage::User(m))) => {
            history.push(ChatMessage::text(Role::User, m.text))
        }
        Ok(EventData::SessionMessage(SessionMessage::Assistant(m))) => history.push(ChatMessage {
            role: Role::Assistant,
            text: m.text,
            tool_calls: m.tool_calls,
            tool_result: None,
            agent_session: m.agent_session,
        }),
        Ok(EventData::ToolCompleted(d)) if !d.external => history.push(ChatMessage {
            role: Role::User,
            text: String::new(),
            tool_calls: Vec::new(),
            agent_session: None,
            tool_result: Some(ToolResult {
                call_id: d.call_id,
                name: d.tool.unwrap_or_default(),
                content: d.content,
                is_error: d.is_error,
            }),
        }),
        _ => {}
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

    /// Whether `tool` belongs to an untrusted MCP server of the session, so that it
    /// waits for an approval even when the policy allows it.
    /// The server's trust is read from the session's pool (the tables it started
    /// with) and from the config in force: untrusted in either asks.
    pub(crate) async fn mcp_tool_always_asks(&self, s: &Session, tool: &str) -> bool {
        let configured = tool.split_once("__").is_some_and(|(server, _)| {
            self.config()
                .mcp_servers
                .iter()
                .any(|c| c.name == server && c.trust == r1_engine::McpTrust::Untrusted)
        });
        configured
            || match self.mcp_pool(s).await {
                Some(pool) => pool.always_asks(tool),
                None => false,
            }
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

    /// `session.approve`; with `remember`, the decision also becomes the session's
    /// policy for the approval's tool.
    pub async fn approve(
        &self,
        id: &str,
        approval_id: &str,
        decision: &str,
        remember: bool,
    ) -> Result<SessionView, ApiError> {
        let s = self.session(id)?;
        s.journal()?;
        s.command(Command::Approve {
            approval_id: approval_id.to_string(),
            decision: decision.to_string(),
            waiter_alive: false,
            remember,
        })
        .await
        .map_err(|e| match e.code {
            r1_proto::ErrorCode::NotFound => {
                ApiError::not_found(format!("approval {approval_id} not found in session {id}"))
            }
            _ => e,
        })?;
        Ok(s.view())
    }

    /// `lanes.list`: `main` (the conversation), then every tool lane in order.
    pub async fn lane_list(&self, id: &str) -> Result<LaneList, ApiError> {
        let s = self.session(id)?;
        Ok(lanes_of(&s))
    }

    /// `session.compact`: the session's actor summarizes its conversation now.
    pub async fn compact_session(&self, id: &str) -> Result<r1_proto::CompactResult, ApiError> {
        let s = self.session(id)?;
        s.journal()?;
        let (reply, rx) = tokio::sync::oneshot::channel();
        let gone = || ApiError::conflict(format!("session {id} is not running"));
        s.tx.send_async(crate::actor::Msg::Compact { reply })
            .await
            .map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }

    /// `session.debug_state`: asks the session's actor for its view of itself; it
    /// answers between two commands, so a wait longer than [`DEBUG_WAIT`] (a journal
    /// write stuck on a slow disk) is a `timeout`.
    pub async fn debug_state(&self, id: &str) -> Result<r1_proto::SessionDebugState, ApiError> {
        let s = self.session(id)?;
        s.journal()?;
        let (reply, rx) = tokio::sync::oneshot::channel();
        let gone = || ApiError::conflict(format!("session {id} is not running"));
        let ask = async {
            s.tx.send_async(crate::actor::Msg::Debug { reply })
                .await
                .map_err(|_| gone())?;
            rx.await.map_err(|_| gone())
        };
        tokio::time::timeout(DEBUG_WAIT, ask).await.map_err(|_| {
            ApiError::new(
                r1_proto::ErrorCode::Timeout,
                format!(
                    "the actor of session {id} did not answer within {} s",
                    DEBUG_WAIT.as_secs()
                ),
            )
        })?
    }

    /// `lanes.kill`: kills the lane's process group; killing a finished lane is ok. It
    /// answers once the lane has reported its end (or after a second).
    pub async fn kill_lane(&self, id: &str, lane: &str) -> Result<LaneList, ApiError> {
        let s = self.session(id)?;
        s.journal()?;
        let (reply, rx) = tokio::sync::oneshot::channel();
        let gone = || ApiError::conflict(format!("session {id} is not running"));
        s.tx.send_async(crate::actor::Msg::KillLane {
            lane: lane.into(),
            reply,
        })
        .await
        .map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?.map_err(|e| match e.code {
            r1_proto::ErrorCode::NotFound => {
                ApiError::not_found(format!("lane {lane} not found in session {id}"))
            }
            _ => e,
        })?;
        let running = |s: &Session| {
            s.snapshot()
                .lanes
                .iter()
                .any(|l| l.lane == lane && l.status == LaneStatus::Running)
        };
        let deadline = tokio::time::Instant::now() + LANE_KILL_WAIT;
        while running(&s) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(lanes_of(&s))
    }

    /// `lanes.pin`: pins (or, with `pinned` false, unpins) a lane.
    pub async fn pin_lane(&self, id: &str, lane: &str, pinned: bool) -> Result<LaneList, ApiError> {
        let s = self.session(id)?;
        s.journal()?;
        s.command(Command::PinLane {
            lane: lane.to_string(),
            pinned,
        })
        .await
        .map_err(|e| match e.code {
            r1_proto::ErrorCode::NotFound => {
                ApiError::not_found(format!("lane {lane} not found in session {id}"))
            }
            _ => e,
        })?;
        Ok(lanes_of(&s))
    }
}

/// The lanes of a session as clients see them.
fn lanes_of(s: &Session) -> LaneList {
    let snap = s.snapshot();
    let mut lanes = vec![LaneView {
        lane: "main".into(),
        tool: None,
        status: snap.state.as_str().to_string(),
        pinned: true,
        created_seq: 1,
    }];
    lanes.extend(snap.lanes.iter().map(|l| LaneView {
        lane: l.lane.clone(),
        tool: Some(l.tool.clone()),
        status: l.status.as_str().to_string(),
        pinned: l.pinned,
        created_seq: l.created_seq,
    }));
    LaneList { lanes }
}
