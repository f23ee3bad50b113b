//! The part of the Agent Client Protocol (version 1) that `r1 acp` speaks, as serde
//! types: JSON-RPC 2.0 framing, the requests an editor sends to an agent, and the
//! notifications and requests an agent sends back. Field names follow the protocol's
//! camelCase; optional fields are left out when empty, as the protocol's own schema
//! expects.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The protocol version r1 speaks.
pub const PROTOCOL_VERSION: u16 = 1;

/// JSON-RPC error codes the protocol names.
pub mod code {
    /// The line is not JSON.
    pub const PARSE_ERROR: i64 = -32700;
    /// The message is JSON but not a JSON-RPC request.
    pub const INVALID_REQUEST: i64 = -32600;
    /// r1 does not implement the method.
    pub const METHOD_NOT_FOUND: i64 = -32601;
    /// The params are missing, malformed or refused (a relative `cwd`, …).
    pub const INVALID_PARAMS: i64 = -32602;
    /// Anything else: the daemon failed or cannot be reached.
    pub const INTERNAL_ERROR: i64 = -32603;
    /// The session (or another named resource) does not exist.
    pub const RESOURCE_NOT_FOUND: i64 = -32002;
}

/// A JSON-RPC error object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RpcError {
    /// One of [`code`].
    pub code: i64,
    /// For people.
    pub message: String,
    /// r1's own error, when the daemon refused: `{error_code, error_message}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

impl RpcError {
    /// An error with `code` and `message`.
    pub fn new(code: i64, message: impl Into<String>) -> RpcError {
        RpcError {
            code,
            message: message.into(),
            data: None,
        }
    }

    /// `-32602`: the params are wrong.
    pub fn invalid_params(message: impl Into<String>) -> RpcError {
        RpcError::new(code::INVALID_PARAMS, message)
    }

    /// `-32603`: something failed inside.
    pub fn internal(message: impl Into<String>) -> RpcError {
        RpcError::new(code::INTERNAL_ERROR, message)
    }

    /// The one mapping of an r1 error to a protocol error: an unknown session is
    /// "resource not found", a refused input "invalid params", anything else
    /// "internal"; r1's code and message ride along in `data`.
    pub fn from_api(e: &r1_proto::ApiError) -> RpcError {
        use r1_proto::ErrorCode;
        let code = match e.code {
            ErrorCode::NotFound => code::RESOURCE_NOT_FOUND,
            ErrorCode::Validation => code::INVALID_PARAMS,
            _ => code::INTERNAL_ERROR,
        };
        RpcError {
            code,
            message: e.message.clone(),
            data: Some(serde_json::json!({
                "error_code": e.code.as_str(),
                "error_message": e.message,
            })),
        }
    }
}

/// One message read from the client: a request (`id` and `method`), a notification
/// (`method` only) or a response to a request r1 sent (`id` and `result` or `error`).
#[derive(Debug, Clone, Deserialize)]
pub struct Incoming {
    /// Absent for a notification.
    #[serde(default)]
    pub id: Option<Value>,
    /// Absent for a response.
    #[serde(default)]
    pub method: Option<String>,
    /// The params of a request or notification.
    #[serde(default)]
    pub params: Option<Value>,
    /// A response's result.
    #[serde(default)]
    pub result: Option<Value>,
    /// A response's error.
    #[serde(default)]
    pub error: Option<RpcError>,
}

/// The params of `initialize`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InitializeParams {
    /// The newest version the client speaks.
    pub protocol_version: u16,
}

/// What r1 answers to `initialize`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InitializeResult {
    /// Always [`PROTOCOL_VERSION`].
    pub protocol_version: u16,
    /// What r1 can do.
    pub agent_capabilities: AgentCapabilities,
    /// None: the daemon's own credential is read from the state directory.
    pub auth_methods: Vec<Value>,
    /// r1 and its version.
    pub agent_info: Implementation,
}

/// The agent's capabilities.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentCapabilities {
    /// `session/load` replays a session's journal.
    pub load_session: bool,
    /// Which content a prompt may carry besides text and resource links.
    pub prompt_capabilities: PromptCapabilities,
    /// Which MCP transports `mcpServers` may use besides stdio.
    pub mcp_capabilities: McpCapabilities,
}

/// The content types a prompt may carry.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PromptCapabilities {
    /// Images: no (r1's engines take text).
    pub image: bool,
    /// Audio: no.
    pub audio: bool,
    /// Embedded resources (a file's text inside the prompt): yes.
    pub embedded_context: bool,
}

/// The MCP transports of `mcpServers`.
#[derive(Debug, Clone, Serialize)]
pub struct McpCapabilities {
    /// Streamable HTTP servers.
    pub http: bool,
    /// SSE servers.
    pub sse: bool,
}

/// A program's name and version.
#[derive(Debug, Clone, Serialize)]
pub struct Implementation {
    /// `r1`.
    pub name: String,
    /// For people.
    pub title: String,
    /// The crate version.
    pub version: String,
}

/// The params of `session/new`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewSessionParams {
    /// The working directory; must be absolute.
    pub cwd: String,
    /// MCP servers the client wants the session to use.
    #[serde(default)]
    pub mcp_servers: Option<Vec<Value>>,
}

/// The answer of `session/new`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewSessionResult {
    /// The r1 session id (`ses_…`).
    pub session_id: String,
}

/// The params of `session/load`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadSessionParams {
    /// The r1 session id.
    pub session_id: String,
    /// The working directory; must be absolute.
    pub cwd: String,
    /// MCP servers the client wants the session to use.
    #[serde(default)]
    pub mcp_servers: Option<Vec<Value>>,
}

/// The params of `session/prompt`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PromptParams {
    /// The r1 session id.
    pub session_id: String,
    /// The user's message, as content blocks.
    pub prompt: Vec<Value>,
}

/// The answer of `session/prompt`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PromptResult {
    /// Why the turn ended.
    pub stop_reason: StopReason,
}

/// Why a prompt turn ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The model finished its answer.
    EndTurn,
    /// The session's token budget ran out.
    MaxTokens,
    /// The client cancelled the turn (or another client of the daemon did).
    Cancelled,
}

/// The params of `session/cancel`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CancelParams {
    /// The r1 session id.
    pub session_id: String,
}

/// The params of a `session/update` notification.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionNotification {
    /// The r1 session id.
    pub session_id: String,
    /// What changed.
    pub update: SessionUpdate,
}

/// One change in a session, as the client shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "sessionUpdate", rename_all = "snake_case")]
pub enum SessionUpdate {
    /// Text the user sent (replayed by `session/load`).
    UserMessageChunk {
        /// The text.
        content: ContentBlock,
    },
    /// A piece of the agent's answer.
    AgentMessageChunk {
        /// The text.
        content: ContentBlock,
    },
    /// A tool call the model made.
    ToolCall(ToolCallUpdate),
    /// A change to a tool call announced before.
    ToolCallUpdate(ToolCallUpdate),
    /// The agent's plan, whole each time.
    Plan {
        /// Every step.
        entries: Vec<PlanEntry>,
    },
}

/// A content block (r1 sends text only).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentBlock {
    /// Plain text.
    Text {
        /// The text.
        text: String,
    },
}

impl ContentBlock {
    /// A text block.
    pub fn text(t: impl Into<String>) -> ContentBlock {
        ContentBlock::Text { text: t.into() }
    }
}

/// A tool call or a change to one: `tool_call` sends every field it knows (title
/// included), `tool_call_update` only those that changed.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolCallUpdate {
    /// The model's id for the call.
    pub tool_call_id: String,
    /// For people, e.g. `run_command: ls -la`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// What sort of tool it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<ToolKind>,
    /// Where the call is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ToolCallStatus>,
    /// Its output so far, or its result (replaces what was sent before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Vec<ToolCallContent>>,
    /// The files it touches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locations: Option<Vec<ToolCallLocation>>,
    /// The arguments as the model gave them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_input: Option<Value>,
}

/// Sorts of tools, for the client's icons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolKind {
    /// Reads files or directories.
    Read,
    /// Changes files.
    Edit,
    /// Searches.
    Search,
    /// Runs a command.
    Execute,
    /// Anything else.
    Other,
}

/// Where a tool call is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolCallStatus {
    /// Announced, not running yet (possibly waiting for permission).
    Pending,
    /// Running.
    InProgress,
    /// Finished.
    Completed,
    /// Failed or was denied.
    Failed,
}

/// Content of a tool call (r1 sends text).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToolCallContent {
    /// A content block.
    Content {
        /// The block.
        content: ContentBlock,
    },
}

impl ToolCallContent {
    /// A text block as tool call content.
    pub fn text(t: impl Into<String>) -> ToolCallContent {
        ToolCallContent::Content {
            content: ContentBlock::text(t),
        }
    }
}

/// A file a tool call touches.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolCallLocation {
    /// The absolute path.
    pub path: String,
}

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanEntry {
    /// What the step is.
    pub content: String,
    /// r1's engines give none; always `medium`.
    pub priority: &'static str,
    /// `pending`, `in_progress` or `completed`.
    pub status: &'static str,
}

/// The params of `session/request_permission`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestPermissionParams {
    /// The r1 session id.
    pub session_id: String,
    /// The call that asks.
    pub tool_call: ToolCallUpdate,
    /// The choices.
    pub options: Vec<PermissionOption>,
}

/// One choice of a permission request.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PermissionOption {
    /// What the client answers with.
    pub option_id: &'static str,
    /// For people.
    pub name: &'static str,
    /// `allow_once`, `allow_always`, `reject_once`.
    pub kind: &'static str,
}

/// The option ids r1 offers, which are also their kinds.
pub const ALLOW_ONCE: &str = "allow_once";
/// See [`ALLOW_ONCE`].
pub const ALLOW_ALWAYS: &str = "allow_always";
/// See [`ALLOW_ONCE`].
pub const REJECT_ONCE: &str = "reject_once";

/// The three choices every r1 approval offers.
pub fn permission_options() -> Vec<PermissionOption> {
    vec![
        PermissionOption {
            option_id: ALLOW_ONCE,
            name: "Allow",
            kind: ALLOW_ONCE,
        },
        PermissionOption {
            option_id: ALLOW_ALWAYS,
            name: "Always allow this tool in this session",
            kind: ALLOW_ALWAYS,
        },
        PermissionOption {
            option_id: REJECT_ONCE,
            name: "Reject",
            kind: REJECT_ONCE,
        },
    ]
}

/// The client's answer to `session/request_permission`.
#[derive(Debug, Clone, Deserialize)]
pub struct RequestPermissionResult {
    /// What it chose.
    pub outcome: PermissionOutcome,
}

/// The outcome of a permission request.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum PermissionOutcome {
    /// The prompt turn was cancelled before the user chose.
    Cancelled,
    /// The user chose an option.
    Selected {
        /// One of the ids r1 offered.
        #[serde(rename = "optionId")]
        option_id: String,
    },
}
