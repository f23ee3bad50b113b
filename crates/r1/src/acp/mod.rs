//! `r1 acp`: r1 as an Agent Client Protocol agent over stdio, for editors (Zed,
//! JetBrains, Neovim plugins). It is one more thin client of the daemon: it connects
//! (or starts the daemon) like every verb, and each ACP session *is* an r1 session,
//! with the same id (`ses_…`), visible to the CLI and the web UI.
//!
//! One task reads newline-delimited JSON-RPC from stdin and hands every request to a
//! task of its own (so `session/cancel` and permission answers get through while a
//! prompt runs); one task owns stdout and writes the messages queued to it in order,
//! so a turn's `session/update`s always precede its answer. A prompt follows the
//! session's event stream from the seq before its message and maps records with
//! [`updates::Mapper`]; an `approval.requested` becomes `session/request_permission`,
//! answered with `session.approve` (`remember` for "always allow").

mod protocol;
mod updates;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Args;
use r1_client::{Client, ConnectOptions, SseReader};
use r1_proto::events::{ApprovalRequested, SessionMessage};
use r1_proto::{
    Api, ApproveParams, Decision, ErrorCode, EventData, EventKind, EventRecord, JournalParams,
    SendMessageParams, SessionRef, StartSessionParams,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, oneshot, OnceCell};
use tracing_subscriber::EnvFilter;

use protocol::{
    code, InitializeResult, PermissionOutcome, PromptResult, RequestPermissionParams,
    RequestPermissionResult, RpcError, SessionNotification, SessionUpdate, StopReason,
};
use updates::Mapper;

/// Serve r1 to an editor over the Agent Client Protocol (stdio).
#[derive(Debug, Args)]
pub struct AcpArgs {
    /// The engine of the sessions it starts (default: the daemon's default engine).
    #[arg(long)]
    engine: Option<String>,
    /// The model of the sessions it starts (default: the engine's).
    #[arg(long)]
    model: Option<String>,
}

/// How many messages may wait for stdout; a client that stops reading holds r1 there.
const OUTBOX: usize = 256;
/// How many journal records `session/load` asks for at a time.
const LOAD_PAGE: u64 = 1000;

/// Runs `r1 acp`; returns the exit code.
pub fn run(home: &Path, args: AcpArgs) -> i32 {
    // stdout carries the protocol, so every log line goes to stderr.
    let filter = EnvFilter::try_from_env("R1_LOG").unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
    let rt = match crate::output::runtime(2) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let code = rt.block_on(serve(home, args));
    // A turn still followed when the editor hangs up keeps running in the daemon;
    // nothing here waits for it.
    rt.shutdown_timeout(Duration::from_millis(100));
    code
}

/// One ACP connection: the daemon client, the outbox to stdout, and the requests r1
/// sent the editor that wait for an answer.
struct Conn {
    home: PathBuf,
    engine: Option<String>,
    model: Option<String>,
    client: OnceCell<Arc<Client>>,
    out: mpsc::Sender<String>,
    next_id: AtomicU64,
    waiting: Mutex<HashMap<u64, oneshot::Sender<Result<Value, RpcError>>>>,
    /// Sessions whose running prompt the editor cancelled, by session id.
    cancelled: Mutex<HashMap<String, Arc<AtomicBool>>>,
}

async fn serve(home: &Path, args: AcpArgs) -> i32 {
    let (out, mut outbox) = mpsc::channel::<String>(OUTBOX);
    let writer = tokio::spawn(async move {
        let mut stdout = tokio::io::stdout();
        while let Some(mut line) = outbox.recv().await {
            line.push('\n');
            if stdout.write_all(line.as_bytes()).await.is_err() || stdout.flush().await.is_err() {
                break;
            }
        }
    });
    let conn = Arc::new(Conn {
        home: home.to_path_buf(),
        engine: args.engine,
        model: args.model,
        client: OnceCell::new(),
        out,
        next_id: AtomicU64::new(1),
        waiting: Mutex::new(HashMap::new()),
        cancelled: Mutex::new(HashMap::new()),
    });
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    loop {
        let line = match lines.next_line().await {
            Ok(Some(l)) => l,
            Ok(None) => break,
            Err(e) => {
                tracing::warn!("reading stdin failed: {e}");
                break;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        let msg: protocol::Incoming = match serde_json::from_str(&line) {
            Ok(m) => m,
            Err(e) => {
                let err = RpcError::new(code::PARSE_ERROR, format!("not JSON-RPC: {e}"));
                conn.reply(Value::Null, Err(err)).await;
                continue;
            }
        };
        match (msg.id, msg.method) {
            (Some(id), Some(method)) => {
                let conn = conn.clone();
                tokio::spawn(async move {
                    let answer = conn
                        .request(&method, msg.params.unwrap_or(Value::Null))
                        .await;
                    conn.reply(id, answer).await;
                });
            }
            (None, Some(method)) => {
                let conn = conn.clone();
                tokio::spawn(async move {
                    conn.notification(&method, msg.params.unwrap_or(Value::Null))
                        .await
                });
            }
            (Some(id), None) => {
                let answer = match msg.error {
                    Some(e) => Err(e),
                    None => Ok(msg.result.unwrap_or(Value::Null)),
                };
                let waiter = id
                    .as_u64()
                    .and_then(|n| conn.waiting.lock().ok().and_then(|mut w| w.remove(&n)));
                match waiter {
                    Some(w) => {
                        let _ = w.send(answer);
                    }
                    None => tracing::debug!("an answer to no request of ours: {id}"),
                }
            }
            (None, None) => {
                let err = RpcError::new(code::INVALID_REQUEST, "neither a request nor a response");
                conn.reply(Value::Null, Err(err)).await;
            }
        }
    }
    // The editor hung up. Answers already queued get two seconds to reach a pipe that
    // may still be read; turns in flight keep running in the daemon.
    drop(conn);
    let _ = tokio::time::timeout(Duration::from_secs(2), writer).await;
    0
}

/// Reads a request's params as `T`, or says what is wrong with them.
fn params<T: DeserializeOwned>(v: Value) -> Result<T, RpcError> {
    serde_json::from_value(v).map_err(|e| RpcError::invalid_params(format!("bad params: {e}")))
}

fn to_value<T: Serialize>(t: &T) -> Result<Value, RpcError> {
    serde_json::to_value(t).map_err(|e| RpcError::internal(format!("cannot encode: {e}")))
}

/// `cwd` as the protocol wants it: an absolute path to an existing directory.
fn check_cwd(cwd: &str) -> Result<(), RpcError> {
    let p = Path::new(cwd);
    if !p.is_absolute() {
        return Err(RpcError::invalid_params(format!(
            "cwd must be an absolute path, not {cwd:?}"
        )));
    }
    if !p.is_dir() {
        return Err(RpcError::invalid_params(format!(
            "cwd {cwd} is not an existing directory"
        )));
    }
    Ok(())
}

/// The text r1 sends for a prompt's content blocks: text as it is, a resource link as
/// its URI, an embedded text resource as its URI and a fenced copy of its text. Images,
/// audio and binary resources are refused (r1's engines take text).
fn prompt_text(blocks: &[Value]) -> Result<String, RpcError> {
    let mut text = String::new();
    for b in blocks {
        let s = |k: &str| b.get(k).and_then(Value::as_str);
        match s("type") {
            Some("text") => text.push_str(s("text").unwrap_or_default()),
            Some("resource_link") => text.push_str(s("uri").unwrap_or_default()),
            Some("resource") => {
                let r = b.get("resource").cloned().unwrap_or(Value::Null);
                let uri = r.get("uri").and_then(Value::as_str).unwrap_or_default();
                let Some(body) = r.get("text").and_then(Value::as_str) else {
                    return Err(RpcError::invalid_params(format!(
                        "the resource {uri} is binary; r1 takes text"
                    )));
                };
                text.push_str(&format!("\n{uri}:\n```\n{body}\n```\n"));
            }
            Some(other) => {
                return Err(RpcError::invalid_params(format!(
                    "r1 takes text prompts; {other} content is not supported"
                )))
            }
            None => return Err(RpcError::invalid_params("a content block without a type")),
        }
    }
    if text.trim().is_empty() {
        return Err(RpcError::invalid_params("the prompt has no text"));
    }
    Ok(text)
}

impl Conn {
    /// The daemon client, connecting (or starting the daemon) on first use.
    async fn client(&self) -> Result<Arc<Client>, RpcError> {
        self.client
            .get_or_try_init(|| async {
                r1_client::connect_or_spawn(&ConnectOptions::new(&self.home))
                    .await
                    // A daemon restarting onto a new binary is waited for, not failed.
                    .map(|c| Arc::new(c.with_reconnect(Duration::from_secs(30))))
                    .map_err(|e| RpcError::internal(format!("cannot reach the r1 daemon: {e}")))
            })
            .await
            .cloned()
    }

    async fn write(&self, msg: Value) {
        match serde_json::to_string(&msg) {
            Ok(line) => {
                let _ = self.out.send(line).await;
            }
            Err(e) => tracing::warn!("cannot encode a message: {e}"),
        }
    }

    async fn reply(&self, id: Value, answer: Result<Value, RpcError>) {
        let msg = match answer {
            Ok(result) => json!({"jsonrpc": "2.0", "id": id, "result": result}),
            Err(error) => json!({"jsonrpc": "2.0", "id": id, "error": error}),
        };
        self.write(msg).await;
    }

    async fn update(&self, session_id: &str, update: SessionUpdate) {
        let n = SessionNotification {
            session_id: session_id.to_string(),
            update,
        };
        match serde_json::to_value(&n) {
            Ok(params) => {
                self.write(json!({"jsonrpc": "2.0", "method": "session/update", "params": params}))
                    .await
            }
            Err(e) => tracing::warn!("cannot encode an update: {e}"),
        }
    }

    /// Sends the editor a request and waits for its answer.
    async fn ask<T: Serialize>(&self, method: &str, params: &T) -> Result<Value, RpcError> {
        let params = to_value(params)?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        if let Ok(mut w) = self.waiting.lock() {
            w.insert(id, tx);
        }
        self.write(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await;
        rx.await
            .map_err(|_| RpcError::internal("the client went away"))?
    }

    async fn request(self: &Arc<Conn>, method: &str, p: Value) -> Result<Value, RpcError> {
        match method {
            "initialize" => self.initialize(params(p)?),
            // r1 needs no login: the daemon's credential is the user's own file.
            "authenticate" => Ok(json!({})),
            "session/new" => self.new_session(params(p)?).await,
            "session/load" => self.load_session(params(p)?).await,
            "session/prompt" => self.prompt(params(p)?).await,
            other => Err(RpcError::new(
                code::METHOD_NOT_FOUND,
                format!("r1 does not implement {other}"),
            )),
        }
    }

    async fn notification(&self, method: &str, p: Value) {
        if method != "session/cancel" {
            tracing::debug!("ignored notification {method}");
            return;
        }
        let Ok(p) = params::<protocol::CancelParams>(p) else {
            tracing::warn!("session/cancel without a sessionId");
            return;
        };
        if let Some(flag) = self
            .cancelled
            .lock()
            .ok()
            .and_then(|c| c.get(&p.session_id).cloned())
        {
            flag.store(true, Ordering::Release);
        }
        if let Ok(client) = self.client().await {
            if let Err(e) = client.session_cancel(SessionRef::new(&p.session_id)).await {
                // Nothing running (the turn just ended) is not a failure.
                tracing::debug!("session.cancel: {}", e.message);
            }
        }
    }

    fn initialize(&self, p: protocol::InitializeParams) -> Result<Value, RpcError> {
        tracing::info!(client_version = p.protocol_version, "initialize");
        to_value(&InitializeResult {
            protocol_version: protocol::PROTOCOL_VERSION,
            agent_capabilities: protocol::AgentCapabilities {
                load_session: true,
                prompt_capabilities: protocol::PromptCapabilities {
                    image: false,
                    audio: false,
                    embedded_context: true,
                },
                mcp_capabilities: protocol::McpCapabilities {
                    http: false,
                    sse: false,
                },
            },
            auth_methods: Vec::new(),
            agent_info: protocol::Implementation {
                name: "r1".into(),
                title: "r1".into(),
                version: env!("CARGO_PKG_VERSION").into(),
            },
        })
    }

    async fn new_session(&self, p: protocol::NewSessionParams) -> Result<Value, RpcError> {
        check_cwd(&p.cwd)?;
        warn_mcp_servers(p.mcp_servers.as_deref());
        let client = self.client().await?;
        let view = client
            .session_start(StartSessionParams {
                workdir: p.cwd,
                engine: self.engine.clone(),
                model: self.model.clone(),
                title: Some("r1 acp".into()),
                policy: None,
                token_budget: None,
                worktree: None,
            })
            .await
            .map_err(|e| RpcError::from_api(&e))?;
        to_value(&protocol::NewSessionResult {
            session_id: view.id,
        })
    }

    /// Replays the session's journal, up to where it was when asked, as updates.
    async fn load_session(&self, p: protocol::LoadSessionParams) -> Result<Value, RpcError> {
        check_cwd(&p.cwd)?;
        warn_mcp_servers(p.mcp_servers.as_deref());
        let client = self.client().await?;
        let view = client
            .session_get(SessionRef::new(&p.session_id))
            .await
            .map_err(|e| RpcError::from_api(&e))?;
        if view.workdir != p.cwd {
            tracing::warn!(
                "session {} works in {}, not {}; its workdir does not change",
                view.id,
                view.workdir,
                p.cwd
            );
        }
        let mut mapper = Mapper::new(&view.workdir, true);
        let mut since = 1;
        while since <= view.last_seq {
            let page = client
                .session_journal(JournalParams {
                    session_id: view.id.clone(),
                    since_seq: Some(since),
                    limit: Some(LOAD_PAGE),
                })
                .await
                .map_err(|e| RpcError::from_api(&e))?;
            if page.records.is_empty() {
                break;
            }
            for r in page.records.iter().filter(|r| r.seq <= view.last_seq) {
                for u in mapper.map(r) {
                    self.update(&view.id, u).await;
                }
            }
            since = page.next_seq.max(since + 1);
        }
        Ok(json!({}))
    }

    /// Sends the prompt and streams its turn until it ends.
    async fn prompt(self: &Arc<Conn>, p: protocol::PromptParams) -> Result<Value, RpcError> {
        let text = prompt_text(&p.prompt)?;
        let client = self.client().await?;
        let view = client
            .session_get(SessionRef::new(&p.session_id))
            .await
            .map_err(|e| RpcError::from_api(&e))?;
        let sid = view.id.clone();
        let flag = Arc::new(AtomicBool::new(false));
        if let Ok(mut c) = self.cancelled.lock() {
            c.insert(sid.clone(), flag.clone());
        }
        let result = self.turn(&client, &view, text, &flag).await;
        if let Ok(mut c) = self.cancelled.lock() {
            if c.get(&sid).is_some_and(|f| Arc::ptr_eq(f, &flag)) {
                c.remove(&sid);
            }
        }
        let stop_reason = result?;
        to_value(&PromptResult { stop_reason })
    }

    async fn turn(
        self: &Arc<Conn>,
        client: &Arc<Client>,
        view: &r1_proto::SessionView,
        text: String,
        cancelled: &AtomicBool,
    ) -> Result<StopReason, RpcError> {
        let sid = view.id.as_str();
        // Follow from the seq before the send, so no record of the turn is missed.
        let mut next = view.last_seq + 1;
        let body = client
            .session_events(sid, next)
            .await
            .map_err(|e| RpcError::from_api(&api_error(e)))?;
        let mut events = SseReader::new(body);
        let sent = client
            .session_send(SendMessageParams {
                session_id: sid.to_string(),
                text,
                client_message_id: None,
            })
            .await
            .map_err(|e| RpcError::from_api(&e))?;
        if cancelled.load(Ordering::Acquire) {
            // The cancel came while the message was on its way.
            let _ = client.session_cancel(SessionRef::new(sid)).await;
        }
        let ours = sent.message_id;
        let mut mapper = Mapper::new(&view.workdir, false);
        let mut in_turn = false;
        loop {
            let frame = match events.next().await {
                Some(Ok(f)) => f,
                _ => {
                    // The daemon went away (a restart onto a new binary): follow again
                    // from the next record.
                    let opts = ConnectOptions::new(&self.home);
                    let (_, body) = crate::chat::reconnect(&opts, sid, next)
                        .await
                        .map_err(|e| RpcError::from_api(&api_error(e)))?;
                    events = SseReader::new(body);
                    continue;
                }
            };
            let Ok(r) = serde_json::from_str::<EventRecord>(&frame.data) else {
                continue;
            };
            if r.kind == EventKind::SessionResync {
                next = r.data["next_seq"].as_u64().unwrap_or(next);
                continue;
            }
            if r.seq < next {
                continue;
            }
            next = r.seq + 1;
            let Ok(event) = r.event() else { continue };
            if !in_turn {
                // Records before our turn starts belong to an earlier one.
                in_turn = match &event {
                    EventData::SessionState(d) => d.message_id.as_deref() == Some(&ours),
                    EventData::SessionCancelled(d) => d.message_id == ours,
                    EventData::SessionError(d) => d.message_id.as_deref() == Some(&ours),
                    _ => false,
                };
                if !in_turn {
                    continue;
                }
            }
            for u in mapper.map(&r) {
                self.update(sid, u).await;
            }
            let stopped = || {
                if cancelled.load(Ordering::Acquire) {
                    StopReason::Cancelled
                } else {
                    StopReason::EndTurn
                }
            };
            match event {
                EventData::ApprovalRequested(d) => {
                    let (announce, call) = mapper.permission_call(&d.call_id, &d.tool, &d.args);
                    if let Some(u) = announce {
                        self.update(sid, u).await;
                    }
                    self.spawn_permission(client.clone(), sid.to_string(), d, call);
                }
                EventData::SessionMessage(SessionMessage::Assistant(m))
                    if m.reply_to == ours && m.tool_calls.is_empty() =>
                {
                    return Ok(stopped());
                }
                EventData::SessionCancelled(d) if d.message_id == ours => {
                    return Ok(StopReason::Cancelled)
                }
                EventData::SessionError(d) => {
                    if cancelled.load(Ordering::Acquire) {
                        return Ok(StopReason::Cancelled);
                    }
                    if d.code.as_deref() == Some(ErrorCode::BudgetExceeded.as_str()) {
                        return Ok(StopReason::MaxTokens);
                    }
                    return Err(RpcError::internal(format!(
                        "the turn failed: {}",
                        d.message
                    )));
                }
                // Paused or ended by another client: this turn does not go on here.
                EventData::SessionPaused(_) | EventData::SessionEnded(_) => {
                    return Ok(StopReason::Cancelled)
                }
                EventData::SessionState(d) if d.state == r1_proto::SessionState::Idle => {
                    return Ok(stopped());
                }
                _ => {}
            }
        }
    }

    /// Asks the editor about an approval, then decides it in the daemon; the turn goes
    /// on (or is told of the denial) through the event stream.
    fn spawn_permission(
        self: &Arc<Conn>,
        client: Arc<Client>,
        sid: String,
        d: ApprovalRequested,
        call: protocol::ToolCallUpdate,
    ) {
        let conn = self.clone();
        tokio::spawn(async move {
            let request = RequestPermissionParams {
                session_id: sid.clone(),
                tool_call: call,
                options: protocol::permission_options(),
            };
            let answer = conn.ask("session/request_permission", &request).await;
            let (decision, remember) = match answer
                .ok()
                .and_then(|v| serde_json::from_value::<RequestPermissionResult>(v).ok())
                .map(|r| r.outcome)
            {
                Some(PermissionOutcome::Selected { option_id }) => match option_id.as_str() {
                    protocol::ALLOW_ONCE => (Decision::Allow, false),
                    protocol::ALLOW_ALWAYS => (Decision::Allow, true),
                    _ => (Decision::Deny, false),
                },
                // Cancelled, an error, or an answer r1 cannot read: the call does not run.
                _ => (Decision::Deny, false),
            };
            let p = ApproveParams {
                session_id: sid,
                approval_id: d.approval_id,
                decision,
                remember,
            };
            if let Err(e) = client.session_approve(p).await {
                // A cancelled turn has denied it already.
                tracing::debug!("session.approve: {}", e.message);
            }
        });
    }
}

/// The client-side failure as r1's wire error.
fn api_error(e: r1_client::ClientError) -> r1_proto::ApiError {
    match e {
        r1_client::ClientError::Api(a) => a,
        other => r1_proto::ApiError::new(ErrorCode::CrashRecovery, other.to_string()),
    }
}

/// r1 sessions use the daemon's `[[mcp_servers]]`; servers an editor offers are not
/// passed on (the session start has no per-session MCP servers), and the log says so.
fn warn_mcp_servers(servers: Option<&[Value]>) {
    let n = servers.map_or(0, <[Value]>::len);
    if n > 0 {
        tracing::warn!(
            "the client offered {n} MCP server(s); r1 sessions use the daemon's [[mcp_servers]] in daemon.toml, so they are not used"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_blocks_become_text_and_non_text_is_refused() {
        let blocks = vec![
            json!({"type": "text", "text": "look at "}),
            json!({"type": "resource_link", "uri": "file:///w/a.rs", "name": "a.rs"}),
            json!({"type": "resource", "resource": {"uri": "file:///w/b.rs", "text": "fn b() {}"}}),
        ];
        let t = prompt_text(&blocks).unwrap();
        assert!(t.starts_with("look at file:///w/a.rs"), "{t}");
        assert!(t.contains("file:///w/b.rs:\n```\nfn b() {}\n```"), "{t}");
        let image = vec![json!({"type": "image", "data": "", "mimeType": "image/png"})];
        assert_eq!(prompt_text(&image).unwrap_err().code, code::INVALID_PARAMS);
        assert!(prompt_text(&[json!({"type": "text", "text": "  "})]).is_err());
    }

    #[test]
    fn cwd_must_be_an_absolute_existing_directory() {
        assert_eq!(check_cwd("rel/dir").unwrap_err().code, code::INVALID_PARAMS);
        assert!(check_cwd("/nonexistent/r1-acp")
            .unwrap_err()
            .message
            .contains("not an existing directory"));
        assert!(check_cwd("/").is_ok());
    }

    #[test]
    fn daemon_errors_map_to_protocol_codes() {
        let nf = r1_proto::ApiError::not_found("session ses_x not found");
        let e = RpcError::from_api(&nf);
        assert_eq!(e.code, code::RESOURCE_NOT_FOUND);
        assert_eq!(e.data.unwrap()["error_code"], "not_found");
        let v = r1_proto::ApiError::validation("bad");
        assert_eq!(RpcError::from_api(&v).code, code::INVALID_PARAMS);
    }
}
