//! The r1 agent: the [`Provider`] trait with its one streaming primitive, the built-in
//! providers, the tools, and the turn loop that turns a user message into events. The
//! engine never touches files of the state directory: it hands every event to a
//! [`TurnSink`], and the daemon's hub journals it.

mod anthropic;
mod echo;
mod exec;
mod mcp;
mod openai;
mod process;
mod retry;
mod sandbox;
mod sse;
mod tools;
mod turn;
pub mod verify;

pub use anthropic::{AnthropicConfig, AnthropicProvider};
pub use echo::EchoProvider;
pub use exec::{ExecAdapter, ExecConfig, ExecProvider};
pub use mcp::{validate_mcp_servers, McpPool, McpServerConfig, McpTransport, McpTrust};
pub use openai::{OpenAiConfig, OpenAiProvider};
pub use retry::RetryPolicy;
pub use sandbox::{probe_sandbox, sandbox_enabled, Protected, SandboxEnforcement, SandboxStatus};
pub use tools::{builtin_tools, default_policy, run_tool, Policy, ToolContext};
pub use turn::{run_turn, Authorization, SinkError, TurnOutcome, TurnSink, MAX_STEPS};

use futures_util::stream::BoxStream;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Who said a message in the conversation a provider sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The person (or client) driving the session.
    User,
    /// The model.
    Assistant,
}

/// A tool call the model made, with its arguments parsed; the same type an assistant
/// message records.
pub use r1_proto::events::ToolCall;

/// One message of the conversation context.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Who said it. A tool result is sent by the user side (`Role::User`).
    pub role: Role,
    /// What was said (may be empty for an assistant message that only calls tools).
    pub text: String,
    /// The tool calls of an assistant message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// When set, this message is the result of the tool call with this id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_result: Option<ToolResult>,
    /// An assistant message of an external agent (the `exec` engine): the agent's own
    /// conversation id at the end of that turn (Claude Code's `session_id`, Codex's
    /// `thread_id`), which the next turn resumes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_session: Option<String>,
}

impl ChatMessage {
    /// A plain text message.
    pub fn text(role: Role, text: impl Into<String>) -> ChatMessage {
        ChatMessage {
            role,
            text: text.into(),
            tool_calls: Vec::new(),
            tool_result: None,
            agent_session: None,
        }
    }
}

/// The result of a tool call, as the model is told it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolResult {
    /// The id of the call this answers.
    pub call_id: String,
    /// The tool's name.
    pub name: String,
    /// What the tool returned (or why it failed / was denied).
    pub content: String,
    /// True when the tool failed or was denied.
    pub is_error: bool,
}

/// A tool as offered to the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    /// The name the model calls it by.
    pub name: String,
    /// What it does, for the model.
    pub description: String,
    /// JSON Schema of its arguments.
    pub input_schema: Value,
}

/// What a provider is asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderRequest {
    /// The model, when the engine has a choice.
    pub model: Option<String>,
    /// A system prompt.
    pub system: Option<String>,
    /// The conversation, newest message last.
    pub messages: Vec<ChatMessage>,
    /// The tools the model may call.
    pub tools: Vec<ToolSpec>,
    /// The daemon's own files: a provider that starts a process (`exec`) confines it
    /// away from them. Empty when there is no daemon (tests, benches).
    pub protected: std::sync::Arc<Protected>,
    /// What an agent CLI (`exec`) may do on its own this turn, and where it asks r1
    /// otherwise. The default (no channel, no sandbox choice) leaves the CLI to its own
    /// settings; the other providers ignore it.
    pub agent: AgentAccess,
    /// Critical notes from the session's cortex, put in front of the agent for this
    /// turn: model engines read them at the end of the system prompt, agent CLIs
    /// (`exec`) before the message.
    pub notes: Vec<String>,
}

impl ProviderRequest {
    /// The system prompt with the turn's critical notes after it; `None` when both
    /// are empty.
    pub fn system_prompt(&self) -> Option<String> {
        let system = self.system.as_deref().unwrap_or("");
        match notes_preamble(&self.notes) {
            None if system.is_empty() => None,
            None => Some(system.to_owned()),
            Some(n) if system.is_empty() => Some(n),
            Some(n) => Some(format!("{system}\n\n{n}")),
        }
    }
}

/// The block of text that puts critical notes in front of an agent; `None` for none.
pub fn notes_preamble(notes: &[String]) -> Option<String> {
    if notes.is_empty() {
        return None;
    }
    let mut out = String::from("Critical notes from r1's cortex (watchers of this session); take them into account before you continue:");
    for n in notes {
        out.push_str("\n- ");
        out.push_str(n);
    }
    Some(out)
}

/// What r1 lets an agent CLI do this turn, decided by the host from the session's
/// policy.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AgentAccess {
    /// Where the agent asks r1 before it uses a tool that needs permission (Claude
    /// Code's `--permission-prompt-tool`); `None`: it acts under its own settings.
    pub permission: Option<PermissionChannel>,
    /// The sandbox Codex runs with (`--sandbox`), unless its engine's `args` choose
    /// one; `None`: Codex's own default.
    pub sandbox: Option<AgentSandbox>,
}

/// The sandbox of an agent CLI that cannot ask anyone mid-run (`codex exec`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentSandbox {
    /// It may read, and change nothing (`--sandbox read-only`).
    ReadOnly,
    /// It may change files in the workdir and run commands (`--sandbox workspace-write`).
    WorkspaceWrite,
}

/// A per-turn capability to ask r1 for a decision on one of the agent's tool calls: an
/// MCP endpoint on the daemon's loopback port that takes only this secret and offers
/// only the permission tool. Its `Debug` hides the secret.
#[derive(Clone, PartialEq)]
pub struct PermissionChannel {
    /// The endpoint (`http://127.0.0.1:PORT/v1/permission/ID`).
    pub url: String,
    /// The bearer the endpoint takes; it authenticates nothing else.
    pub secret: String,
}

impl std::fmt::Debug for PermissionChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PermissionChannel")
            .field("url", &self.url)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// The MCP server name of r1's permission endpoint in the agent's MCP config.
pub const PERMISSION_SERVER: &str = "r1_approvals";
/// The name of the permission tool on that server.
pub const PERMISSION_TOOL: &str = "permission_prompt";

/// One item of a provider's stream.
#[derive(Debug, Clone, PartialEq)]
pub enum ProviderEvent {
    /// A piece of assistant text.
    TextDelta(String),
    /// The model starts tool call number `index` of this response.
    ToolCallStart {
        /// Position of the call in the response (0, 1, …).
        index: usize,
        /// The provider's call id.
        id: String,
        /// The tool name.
        name: String,
    },
    /// A fragment of the JSON arguments of call `index`; fragments concatenate.
    ToolCallDelta {
        /// Which call.
        index: usize,
        /// The next piece of the arguments' JSON text.
        arguments: String,
    },
    /// Token usage of the request.
    Usage {
        /// Prompt tokens: the whole prompt, cached tokens included (see
        /// [`r1_proto::events::TokenUsage`]).
        input_tokens: u64,
        /// Completion tokens.
        output_tokens: u64,
        /// Of `input_tokens`, those read from the provider's prompt cache; `None` when
        /// the provider does not say.
        cached_input_tokens: Option<u64>,
    },
    /// An external agent (the `exec` engine) ran a tool of its own; r1 records it but
    /// does not run anything.
    ExternalToolCall {
        /// The agent's id for the call.
        id: String,
        /// The tool name as the agent calls it.
        name: String,
        /// Its input.
        arguments: Value,
    },
    /// The result of an [`ProviderEvent::ExternalToolCall`].
    ExternalToolResult {
        /// The id of the call.
        id: String,
        /// What the tool returned.
        content: String,
        /// True when it failed.
        is_error: bool,
    },
    /// An external agent (the `exec` engine) named its own conversation, to be resumed
    /// on the next turn (see [`ChatMessage::agent_session`]).
    AgentSession(String),
    /// The model finished; `reason` as the provider says it (`stop`, `tool_calls`, …).
    Finish {
        /// Why the model stopped.
        reason: String,
    },
}

/// Why a provider failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct ProviderError {
    /// What went wrong, for a person; never contains the API key.
    pub message: String,
    /// True when the request may be retried (429, 5xx, before the first token).
    pub retryable: bool,
}

impl ProviderError {
    /// A failure that is not worth retrying.
    pub fn fatal(message: impl Into<String>) -> ProviderError {
        ProviderError {
            message: message.into(),
            retryable: false,
        }
    }

    /// A failure that may be retried.
    pub fn retryable(message: impl Into<String>) -> ProviderError {
        ProviderError {
            message: message.into(),
            retryable: true,
        }
    }
}

/// A model provider. One streaming primitive; everything else is derived from it.
#[async_trait::async_trait]
pub trait Provider: Send + Sync {
    /// The engine kind (`echo`, `openai`, `anthropic`, `exec`).
    fn name(&self) -> &str;

    /// Starts one model request and returns its stream of events.
    async fn stream(
        &self,
        req: ProviderRequest,
    ) -> Result<BoxStream<'static, Result<ProviderEvent, ProviderError>>, ProviderError>;
}
