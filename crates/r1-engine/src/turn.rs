//! The turn loop: one user message in, events out, with tool calls in between.

use futures_util::{FutureExt, StreamExt};
use r1_proto::events::{
    AssistantMessage, SessionDelta, SessionMessage, TokenUsage, ToolCompleted, ToolStarted,
};
use r1_proto::EventData;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::{
    ChatMessage, Provider, ProviderError, ProviderEvent, ProviderRequest, Role, ToolCall,
    ToolResult,
};

/// Deltas already waiting in the provider's stream are joined into one `session.delta`
/// up to this many bytes.
const DELTA_COALESCE_BYTES: usize = 4096;

/// How many provider round trips (tool steps) one turn may take.
pub const MAX_STEPS: usize = 32;

/// Why the host refused an event (the journal failed, the disk is full, the budget
/// is spent).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct SinkError {
    /// For a person.
    pub message: String,
    /// The wire error code to report, e.g. `budget_exceeded`.
    pub code: &'static str,
}

impl SinkError {
    /// A storage failure.
    pub fn storage(message: impl Into<String>) -> SinkError {
        SinkError {
            message: message.into(),
            code: "crash_recovery",
        }
    }
}

/// Whether a tool call may run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authorization {
    /// Run it.
    Allow,
    /// Do not run it; the model is told `reason`.
    Deny(String),
}

/// What a turn needs from the daemon: somewhere to record events, a decision for each
/// tool call (policy, or a client's approval), and a place to run tools (a lane).
#[async_trait::async_trait]
pub trait TurnSink: Send + Sync {
    /// Records one event in `lane`; `durable` asks for fdatasync before returning.
    async fn emit(&self, lane: &str, event: EventData, durable: bool) -> Result<u64, SinkError>;

    /// Decides whether `call` may run, waiting for a client when the policy says ask.
    async fn authorize(&self, call: &ToolCall) -> Result<Authorization, SinkError>;

    /// Runs `call` (the host owns lanes and their records).
    async fn execute(&self, call: &ToolCall) -> ToolResult;

    /// Counts the tokens of one model call (a step of the turn) and sets its
    /// `cost_usd` when the host has a price for them, before the step's assistant
    /// message records `usage`. An error (the budget is spent) stops the turn after
    /// that message is recorded, without its tool calls.
    fn usage(&self, usage: &mut TokenUsage) -> Result<(), SinkError>;
}

/// How a turn ended.
#[derive(Debug, Clone, PartialEq)]
pub enum TurnOutcome {
    /// The model answered `text`.
    Completed {
        /// The final assistant answer.
        text: String,
        /// Every message the turn added to the conversation (assistant steps and tool
        /// results), in order.
        added: Vec<ChatMessage>,
    },
    /// A client cancelled the turn.
    Cancelled,
    /// The provider or the host failed; `code` is the wire error code.
    Failed {
        /// For a person.
        message: String,
        /// The wire code (`internal`, `budget_exceeded`, …).
        code: &'static str,
    },
}

fn failed(message: impl Into<String>, code: &'static str) -> TurnOutcome {
    TurnOutcome::Failed {
        message: message.into(),
        code,
    }
}

/// A tool call being assembled from a stream.
#[derive(Default)]
struct PendingCall {
    id: String,
    name: String,
    args: String,
}

/// Runs one turn: streams the provider's answer into `session.delta` records; when the
/// model calls tools, records its step as an assistant `session.message` with
/// `tool_calls`, asks the host to authorize and run each call, and sends the results
/// back to the model; ends with the final assistant `session.message`. Cancellation
/// drops the provider stream at once.
pub async fn run_turn(
    provider: &dyn Provider,
    mut req: ProviderRequest,
    sink: &dyn TurnSink,
    message_id: &str,
    cancel: &CancellationToken,
) -> TurnOutcome {
    let mut added = Vec::new();
    for _step in 0..MAX_STEPS {
        let mut stream = tokio::select! {
            _ = cancel.cancelled() => return TurnOutcome::Cancelled,
            s = provider.stream(req.clone()) => match s {
                Ok(s) => s,
                Err(e) => return failed(format!("{} provider: {e}", provider.name()), "internal"),
            },
        };
        let mut text = String::new();
        let mut calls: Vec<PendingCall> = Vec::new();
        let mut usage = None;
        let mut agent_session = None;
        // An item read ahead while coalescing deltas, handled on the next pass.
        let mut held: Option<Option<Result<ProviderEvent, ProviderError>>> = None;
        loop {
            let next = match held.take() {
                Some(n) => n,
                None => tokio::select! {
                    _ = cancel.cancelled() => return TurnOutcome::Cancelled,
                    n = stream.next() => n,
                },
            };
            let ev = match next {
                None => break,
                Some(Err(e)) => {
                    return failed(format!("{} provider: {e}", provider.name()), "internal")
                }
                Some(Ok(ev)) => ev,
            };
            match ev {
                ProviderEvent::TextDelta(mut d) => {
                    // Deltas that are already waiting go out as one record: a fast
                    // provider then costs one journal append per batch, not per token.
                    while d.len() < DELTA_COALESCE_BYTES {
                        match stream.next().now_or_never() {
                            Some(Some(Ok(ProviderEvent::TextDelta(more)))) => d.push_str(&more),
                            Some(other) => {
                                held = Some(other);
                                break;
                            }
                            None => break,
                        }
                    }
                    text.push_str(&d);
                    let data = SessionDelta {
                        text: d,
                        reply_to: message_id.to_string(),
                    };
                    if let Err(e) = sink.emit("main", data.into(), false).await {
                        return failed(e.message, e.code);
                    }
                }
                ProviderEvent::ToolCallStart { index, id, name } => {
                    if calls.len() <= index {
                        calls.resize_with(index + 1, PendingCall::default);
                    }
                    calls[index].id = id;
                    calls[index].name = name;
                }
                ProviderEvent::ToolCallDelta { index, arguments } => {
                    if calls.len() <= index {
                        calls.resize_with(index + 1, PendingCall::default);
                    }
                    calls[index].args.push_str(&arguments);
                }
                // A provider may report usage more than once; the last report counts.
                ProviderEvent::Usage {
                    input_tokens,
                    output_tokens,
                    cached_input_tokens,
                } => {
                    usage = Some(TokenUsage {
                        input_tokens,
                        output_tokens,
                        cached_input_tokens,
                        cost_usd: None,
                    });
                }
                ProviderEvent::ExternalToolCall {
                    id,
                    name,
                    arguments,
                } => {
                    let data = ToolStarted {
                        lane: None,
                        call_id: id,
                        tool: name,
                        args: arguments,
                        external: true,
                    };
                    if let Err(e) = sink.emit("main", data.into(), false).await {
                        return failed(e.message, e.code);
                    }
                }
                ProviderEvent::ExternalToolResult {
                    id,
                    content,
                    is_error,
                } => {
                    let data = ToolCompleted {
                        lane: None,
                        call_id: id,
                        tool: None,
                        content,
                        is_error,
                        denied: false,
                        external: true,
                    };
                    if let Err(e) = sink.emit("main", data.into(), false).await {
                        return failed(e.message, e.code);
                    }
                }
                ProviderEvent::AgentSession(id) => agent_session = Some(id),
                ProviderEvent::Finish { .. } => {}
            }
        }
        if cancel.is_cancelled() {
            return TurnOutcome::Cancelled;
        }
        // Counted once the call is over, so the journaled usage is what the budget
        // counted. A step that spends the budget is still recorded (its text and
        // usage), but its tool calls are not: they will not run, and a call without
        // its result would make the conversation invalid for the provider.
        let mut over_budget = None;
        if let Some(u) = usage.as_mut() {
            if let Err(e) = sink.usage(u) {
                over_budget = Some(e);
                calls.clear();
            }
        }
        let calls: Vec<ToolCall> = calls
            .into_iter()
            .filter(|c| !c.name.is_empty())
            .map(|c| ToolCall {
                arguments: if c.args.trim().is_empty() {
                    json!({})
                } else {
                    serde_json::from_str(&c.args).unwrap_or(Value::String(c.args))
                },
                id: c.id,
                name: c.name,
            })
            .collect();
        let data = SessionMessage::Assistant(AssistantMessage {
            text: text.clone(),
            reply_to: message_id.to_string(),
            usage,
            tool_calls: calls.clone(),
            agent_session: agent_session.clone(),
        });
        if let Err(e) = sink.emit("main", data.into(), false).await {
            return failed(e.message, e.code);
        }
        if let Some(e) = over_budget {
            return failed(e.message, e.code);
        }
        let step = ChatMessage {
            role: Role::Assistant,
            text: text.clone(),
            tool_calls: calls.clone(),
            tool_result: None,
            agent_session,
        };
        req.messages.push(step.clone());
        added.push(step);
        if calls.is_empty() {
            return TurnOutcome::Completed { text, added };
        }
        for call in &calls {
            let result = if !call.arguments.is_object() {
                ToolResult {
                    call_id: call.id.clone(),
                    name: call.name.clone(),
                    content: "the tool arguments are not a JSON object".into(),
                    is_error: true,
                }
            } else {
                let auth = tokio::select! {
                    _ = cancel.cancelled() => return TurnOutcome::Cancelled,
                    a = sink.authorize(call) => a,
                };
                match auth {
                    Err(e) => return failed(e.message, e.code),
                    Ok(Authorization::Deny(reason)) => ToolResult {
                        call_id: call.id.clone(),
                        name: call.name.clone(),
                        content: reason,
                        is_error: true,
                    },
                    Ok(Authorization::Allow) => sink.execute(call).await,
                }
            };
            if cancel.is_cancelled() {
                return TurnOutcome::Cancelled;
            }
            let msg = ChatMessage {
                role: Role::User,
                text: String::new(),
                tool_calls: Vec::new(),
                tool_result: Some(result),
                agent_session: None,
            };
            req.messages.push(msg.clone());
            added.push(msg);
        }
    }
    failed(
        format!("the model took more than {MAX_STEPS} tool steps in one turn; stopped"),
        "internal",
    )
}
