//! Approvals for agent CLIs: the per-turn capability an `exec` agent uses to ask r1
//! before it runs a tool of its own, and the small MCP endpoint that takes it.
//!
//! Claude Code's `--permission-prompt-tool` names an MCP tool that it calls before a
//! tool whose use its own settings would ask about, with `{tool_name, input,
//! tool_use_id}`; it reads the tool's text result as `{"behavior":"allow",
//! "updatedInput":…}` or `{"behavior":"deny","message":…}`. For a turn of such an
//! engine the actor opens a [`Permit`]: a random id and secret, good for that turn
//! only. The agent gets them in an MCP config file (`type: http`, the daemon's
//! loopback URL `/v1/permission/<id>`, `Authorization: Bearer <secret>`), never in its
//! argv or environment. The endpoint takes that bearer and nothing else (not the
//! daemon's token), and offers one tool, [`r1_engine::PERMISSION_TOOL`]: a call goes
//! through the session's policy and, when it says ask, becomes an `approval.requested`
//! (`external`) that every client sees and decides with `session.approve`; the answer
//! is the bare JSON Claude Code reads. The secret grants nothing else: every `/v1` and
//! `/mcp` route still wants the daemon's token, and the permit is gone when the turn
//! ends.
//!
//! The endpoint is stateless streamable HTTP (MCP 2025-03-26 and later): every POST is
//! one JSON-RPC message answered with `application/json` (a notification or a
//! response with 202), no session id, no GET stream (405).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use r1_engine::{Authorization, PermissionChannel, ToolCall, PERMISSION_TOOL};
use r1_proto::{ApiError, ErrorCode};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::actor::Msg;
use crate::error::envelope_response;
use crate::fsutil::random_hex;
use crate::sessions::Session;
use crate::Hub;

/// The route of the endpoint; `{permit_id}` is the permit's public id.
pub(crate) const ROUTE: &str = "/v1/permission/{permit_id}";
/// The path prefix the perimeter lets through without the daemon's token: the
/// endpoint checks its own credential, the permit's secret.
pub(crate) const PREFIX: &str = "/v1/permission/";
/// The longest tool name the endpoint takes (Claude Code's are short; an MCP tool's
/// `mcp__server__tool` stays well under it).
const MAX_TOOL_NAME: usize = 256;
/// The MCP protocol revisions the endpoint answers in; a client asking for another
/// gets the newest.
const PROTOCOLS: [&str; 4] = ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];

/// One turn's capability: who may ask, for which session and turn.
pub(crate) struct Permit {
    /// The bearer the agent must send, compared in constant time.
    secret: String,
    /// The session the turn belongs to.
    pub(crate) session: Arc<Session>,
    /// The session actor's inbox, where the approval is asked.
    pub(crate) tx: flume::Sender<Msg>,
    /// The user message whose turn this is.
    pub(crate) message_id: String,
    /// The turn's cancel token: a cancelled turn answers every waiting call `deny`.
    pub(crate) cancel: CancellationToken,
}

/// The open permits by id. There is at most one per running agent CLI turn, so the
/// table is bounded by the running turns.
#[derive(Default)]
pub(crate) struct Permits {
    open: Mutex<HashMap<String, Arc<Permit>>>,
}

impl Permits {
    /// The permit `id` when `offered` is its secret; `None` for an unknown id, a
    /// closed permit or a wrong secret alike.
    fn check(&self, id: &str, offered: Option<&str>) -> Option<Arc<Permit>> {
        use subtle::ConstantTimeEq;
        let permit = self.open.lock().ok()?.get(id).cloned()?;
        let offered = offered?;
        bool::from(permit.secret.as_bytes().ct_eq(offered.as_bytes())).then_some(permit)
    }

    fn remove(&self, id: &str) {
        if let Ok(mut open) = self.open.lock() {
            open.remove(id);
        }
    }
}

/// An open permit; dropping it closes the permit (at the end of the turn).
pub(crate) struct PermitGuard {
    hub: Hub,
    id: String,
}

impl Drop for PermitGuard {
    fn drop(&mut self) {
        self.hub.permits().remove(&self.id);
    }
}

/// What the agent CLI of session `s` may do this turn: a permission channel for Claude
/// Code, the sandbox for Codex (from the session's policy: it cannot ask anyone, so it
/// may write only when the session lets r1's own `write_file` and `run_command` run
/// without asking). The guard keeps the channel open; hold it for the turn.
pub(crate) fn agent_access(
    hub: &Hub,
    s: &Arc<Session>,
    tx: &flume::Sender<Msg>,
    message_id: &str,
    cancel: &CancellationToken,
) -> (r1_engine::AgentAccess, Option<PermitGuard>) {
    let mut access = r1_engine::AgentAccess::default();
    let Ok(engine) = hub.engine(&s.engine) else {
        return (access, None);
    };
    if engine.config.kind != "exec" {
        return (access, None);
    }
    match engine.config.adapter.as_deref() {
        Some("claude") => match open(hub, s, tx, message_id, cancel) {
            Ok((channel, guard)) => {
                access.permission = Some(channel);
                return (access, Some(guard));
            }
            // Without randomness there is no secret: the agent acts under its own
            // settings, as it did before r1 could answer it.
            Err(e) => tracing::warn!(session = %s.id, "no permission channel: {e}"),
        },
        Some("codex") => {
            let allowed = |tool: &str| s.policy_for(tool) == r1_engine::Policy::Allow;
            access.sandbox = Some(if allowed("write_file") && allowed("run_command") {
                r1_engine::AgentSandbox::WorkspaceWrite
            } else {
                r1_engine::AgentSandbox::ReadOnly
            });
        }
        _ => {}
    }
    (access, None)
}

/// Opens a permit for the running turn of `s`.
fn open(
    hub: &Hub,
    s: &Arc<Session>,
    tx: &flume::Sender<Msg>,
    message_id: &str,
    cancel: &CancellationToken,
) -> std::io::Result<(PermissionChannel, PermitGuard)> {
    let id = format!("prm_{}", random_hex(12)?);
    let secret = random_hex(32)?;
    let permit = Arc::new(Permit {
        secret: secret.clone(),
        session: Arc::clone(s),
        tx: tx.clone(),
        message_id: message_id.to_string(),
        cancel: cancel.clone(),
    });
    if let Ok(mut open) = hub.permits().open.lock() {
        open.insert(id.clone(), permit);
    }
    let channel = PermissionChannel {
        url: format!("{}{PREFIX}{id}", hub.info().url),
        secret,
    };
    Ok((
        channel,
        PermitGuard {
            hub: hub.clone(),
            id,
        },
    ))
}

/// The bearer of an `Authorization` header, if it is one.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// `POST /v1/permission/{permit_id}`: one MCP message from an agent CLI, authenticated
/// by its turn's permit.
pub(crate) async fn endpoint(
    State(hub): State<Hub>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(permit) = hub.permits().check(&id, bearer(&headers)) else {
        hub.metrics().reject("permit");
        let err = ApiError::new(
            ErrorCode::PermissionDenied,
            "missing or invalid permission credential: this endpoint takes only the secret of a running agent turn",
        )
        .with_status(401);
        return envelope_response(&err, &format!("{PREFIX}{id}"));
    };
    let msg: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return rpc(
                StatusCode::BAD_REQUEST,
                error(&Value::Null, -32700, &format!("parse error: {e}")),
            )
        }
    };
    if !msg.is_object() {
        return rpc(
            StatusCode::BAD_REQUEST,
            error(&Value::Null, -32600, "one JSON-RPC message per request"),
        );
    }
    // A notification (`notifications/initialized`, a cancellation) or a response:
    // nothing to answer.
    let Some(rpc_id) = msg.get("id").filter(|_| msg.get("method").is_some()) else {
        return StatusCode::ACCEPTED.into_response();
    };
    let params = msg.get("params").cloned().unwrap_or(Value::Null);
    let answer = match msg["method"].as_str().unwrap_or("") {
        "initialize" => result(rpc_id, initialize(&params)),
        "ping" => result(rpc_id, json!({})),
        "tools/list" => result(rpc_id, json!({ "tools": [tool()] })),
        "tools/call" => match call(&hub, &permit, &params).await {
            Ok(text) => result(
                rpc_id,
                json!({ "content": [{ "type": "text", "text": text }] }),
            ),
            Err(message) => error(rpc_id, -32602, &message),
        },
        other => error(rpc_id, -32601, &format!("method not found: {other}")),
    };
    rpc(StatusCode::OK, answer)
}

fn rpc(status: StatusCode, body: Value) -> Response {
    let mut resp = (status, body.to_string()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

fn result(id: &Value, result: Value) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "result": result })
}

fn error(id: &Value, code: i64, message: &str) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "error": { "code": code, "message": message } })
}

/// The `initialize` result: tools only, in the client's protocol revision when the
/// endpoint knows it.
fn initialize(params: &Value) -> Value {
    let asked = params["protocolVersion"].as_str().unwrap_or("");
    let version = PROTOCOLS
        .iter()
        .find(|v| **v == asked)
        .unwrap_or(&PROTOCOLS[0]);
    json!({
        "protocolVersion": version,
        "capabilities": { "tools": {} },
        "serverInfo": { "name": "r1-approvals", "version": env!("CARGO_PKG_VERSION") },
        "instructions": "r1 uses this server to ask its user for permission before the agent uses a tool; the agent itself has no use for it.",
    })
}

/// The one tool: the shape Claude Code calls a permission prompt tool with.
fn tool() -> Value {
    json!({
        "name": PERMISSION_TOOL,
        "description": "Asks the r1 session's user (web UI, CLI, editor, hooks) whether the agent may use a tool. For the agent's permission prompts only; calling it yourself does nothing useful.",
        "inputSchema": {
            "type": "object",
            "properties": {
                "tool_name": { "type": "string", "description": "The tool the agent wants to use." },
                "input": { "type": "object", "description": "Its input." },
                "tool_use_id": { "type": "string", "description": "The agent's id for the call." }
            },
            "required": ["tool_name", "input"]
        }
    })
}

/// A `tools/call` of the permission tool: the session's decision, as the bare JSON
/// Claude Code reads. An error is a malformed call; a decision r1 could not reach
/// (the session stopped, its journal failed) is a denial, never an allow.
async fn call(hub: &Hub, permit: &Permit, params: &Value) -> Result<String, String> {
    let name = params["name"].as_str().unwrap_or("");
    if name != PERMISSION_TOOL {
        return Err(format!(
            "unknown tool {name:?}: this server has only {PERMISSION_TOOL}"
        ));
    }
    let args = &params["arguments"];
    let tool = args["tool_name"].as_str().unwrap_or("");
    if tool.is_empty() || tool.len() > MAX_TOOL_NAME {
        return Err(format!(
            "tool_name must be a tool's name (1 to {MAX_TOOL_NAME} bytes)"
        ));
    }
    let input = match &args["input"] {
        Value::Null => json!({}),
        v @ Value::Object(_) => v.clone(),
        _ => return Err("input must be an object".into()),
    };
    let id = match args["tool_use_id"].as_str() {
        Some(id) if !id.is_empty() => id.to_string(),
        _ => format!("perm_{}", random_hex(6).unwrap_or_default()),
    };
    let call = ToolCall {
        id,
        name: tool.to_string(),
        arguments: input.clone(),
    };
    let decision = match crate::actor::ask_for_agent(hub, permit, &call).await {
        Ok(Authorization::Allow) => json!({ "behavior": "allow", "updatedInput": input }),
        Ok(Authorization::Deny(reason)) => json!({ "behavior": "deny", "message": reason }),
        Err(e) => json!({
            "behavior": "deny",
            "message": format!("r1 could not ask for a decision: {}", e.message),
        }),
    };
    Ok(decision.to_string())
}
