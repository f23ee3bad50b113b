//! The ten wire error codes and the error envelope every failure is sent as.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The closed set of error codes a client can receive, each with its HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request is malformed or names something invalid (400).
    Validation,
    /// The addressed resource does not exist (404).
    NotFound,
    /// The request conflicts with the resource's state (409).
    Conflict,
    /// The request would rewrite history that is append-only (409). Reserved: no
    /// operation can address a journal record to rewrite it, so nothing produces it.
    AppendOnlyViolation,
    /// The caller is not allowed to do this (403).
    PermissionDenied,
    /// A configured budget was exhausted (429).
    BudgetExceeded,
    /// The operation did not finish in time (504): the browser behind `web.*` did not
    /// answer within `[web] timeout_s`. (A long-poll that runs out answers an empty
    /// page, and a client's own time-out is its transport error, not this code.)
    Timeout,
    /// The resource is unavailable while it recovers from a crash or storage fault (503).
    CrashRecovery,
    /// The client speaks a protocol version this daemon does not (426).
    SchemaVersion,
    /// An unexpected fault inside the daemon (500).
    Internal,
}

impl ErrorCode {
    /// The HTTP status this code is sent with.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::Validation => 400,
            ErrorCode::NotFound => 404,
            ErrorCode::Conflict | ErrorCode::AppendOnlyViolation => 409,
            ErrorCode::PermissionDenied => 403,
            ErrorCode::BudgetExceeded => 429,
            ErrorCode::Timeout => 504,
            ErrorCode::CrashRecovery => 503,
            ErrorCode::SchemaVersion => 426,
            ErrorCode::Internal => 500,
        }
    }

    /// The wire spelling, e.g. `not_found`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Validation => "validation",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Conflict => "conflict",
            ErrorCode::AppendOnlyViolation => "append_only_violation",
            ErrorCode::PermissionDenied => "permission_denied",
            ErrorCode::BudgetExceeded => "budget_exceeded",
            ErrorCode::Timeout => "timeout",
            ErrorCode::CrashRecovery => "crash_recovery",
            ErrorCode::SchemaVersion => "schema_version",
            ErrorCode::Internal => "internal",
        }
    }
}

/// An error as a client sees it: a code and a message written for a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The wire code.
    pub code: ErrorCode,
    /// A clear message; never a raw internal error string.
    pub message: String,
    /// The HTTP status to send instead of the code's own, for the few perimeter and
    /// transport answers that have a more precise status (401, 413, 415, 507).
    pub status: Option<u16>,
}

impl ApiError {
    /// An error with the code's own HTTP status.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            status: None,
        }
    }

    /// The same error sent with a more precise HTTP status.
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    /// The HTTP status this error is sent with.
    pub fn http_status(&self) -> u16 {
        self.status.unwrap_or_else(|| self.code.http_status())
    }

    /// A `validation` error.
    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Validation, message)
    }

    /// A `not_found` error.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    /// A `conflict` error.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Conflict, message)
    }

    /// An `internal` error.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Internal, message)
    }

    /// This error as the wire envelope, with `self_link` as `links.self`.
    pub fn envelope(&self, self_link: &str) -> ErrorEnvelope {
        ErrorEnvelope {
            ok: false,
            error_code: self.code,
            error_message: self.message.clone(),
            links: Links {
                self_link: self_link.to_string(),
                related: Vec::new(),
                deprecations: Vec::new(),
            },
        }
    }
}

/// The JSON-RPC error code of every [`ApiError`] (the implementation-defined server
/// error range); the wire code is in `data.error_code`.
pub const JSONRPC_API_ERROR: i64 = -32000;

/// The mappings from an [`ApiError`] to each transport's wire form. Every transport
/// calls these; none builds its own error JSON.
impl ApiError {
    /// The JSON-RPC 2.0 `error` object: code [`JSONRPC_API_ERROR`], the message, and
    /// the envelope as `data`.
    pub fn jsonrpc_error(&self, self_link: &str) -> serde_json::Value {
        serde_json::json!({
            "code": JSONRPC_API_ERROR,
            "message": self.message,
            "data": self.envelope(self_link),
        })
    }

    /// The MCP tool result: `isError: true`, the envelope as `structuredContent` and
    /// as one JSON text item.
    pub fn mcp_tool_result(&self, links: Links) -> serde_json::Value {
        let env = ErrorEnvelope {
            links,
            ..self.envelope("")
        };
        let env = serde_json::to_value(env).unwrap_or_default();
        serde_json::json!({
            "content": [{"type": "text", "text": env.to_string()}],
            "structuredContent": env,
            "isError": true,
        })
    }

    /// The `data` of an SSE `event: error` frame that ends a stream: the envelope.
    pub fn sse_error_data(&self, self_link: &str) -> String {
        serde_json::to_string(&self.envelope(self_link)).unwrap_or_default()
    }

    /// The exit code of a CLI command that failed with this error. An error the
    /// daemon answered (it carries the HTTP status it came with) is 1, whatever its
    /// code. One the client raised itself, before any answer, tells scripts why: 3
    /// for an incompatible daemon (`schema_version`), 4 for an unreachable one
    /// (`crash_recovery`), 5 for a file or listener that is not the user's
    /// (`permission_denied`).
    pub fn cli_exit_code(&self) -> i32 {
        match (self.status, self.code) {
            (Some(_), _) => 1,
            (None, ErrorCode::SchemaVersion) => 3,
            (None, ErrorCode::CrashRecovery) => 4,
            (None, ErrorCode::PermissionDenied) => 5,
            (None, _) => 1,
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for ApiError {}

impl From<ErrorEnvelope> for ApiError {
    fn from(e: ErrorEnvelope) -> Self {
        ApiError::new(e.error_code, e.error_message)
    }
}

/// The body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ErrorEnvelope {
    /// Always false.
    pub ok: bool,
    /// One of the ten codes.
    pub error_code: ErrorCode,
    /// What went wrong, for a person.
    pub error_message: String,
    /// Where the error happened and what to look at next.
    pub links: Links,
}

/// Links that go with every envelope.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Links {
    /// The request path (without its query string).
    #[serde(rename = "self")]
    pub self_link: String,
    /// Related resources.
    #[serde(default)]
    pub related: Vec<String>,
    /// Deprecation notices for what the request used.
    #[serde(default)]
    pub deprecations: Vec<String>,
}
