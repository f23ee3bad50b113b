//! `/v1/ws`: JSON-RPC 2.0 over WebSocket. The same operations as the HTTP routes, as
//! methods (`session.start`, `session.send`, …), plus `subscribe`/`unsubscribe`;
//! events arrive as `$/event` notifications.

use std::collections::HashMap;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use r1_proto::{Api, ApiError, ErrorCode, PROTOCOL};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::Hub;

/// Frames that may wait for one slow WebSocket client before it is dropped.
const OUTBOX: usize = 512;
/// Close code for a client that asked only for protocols this daemon does not speak.
const CLOSE_PROTOCOL_ERROR: u16 = 1002;
/// Close code for a message over the size limits (RFC 6455 "message too big").
const CLOSE_TOO_BIG: u16 = 1009;
/// Close code for a client that fell behind (policy violation).
const CLOSE_SLOW_CONSUMER: u16 = 1008;

/// The upgrade handler. Authentication happened in the perimeter (TCP) or on accept
/// (unix socket); here only the protocol version is negotiated. The answer is always
/// `r1.proto.v1`, never the offered token.
pub async fn upgrade(State(hub): State<Hub>, headers: HeaderMap, ws: WebSocketUpgrade) -> Response {
    // The same bounds as HTTP bodies: a message over them closes the socket with 1009
    // (message too big) before it is buffered whole.
    let limits = &hub.config().limits;
    let ws = ws
        .max_message_size(limits.max_request_bytes)
        .max_frame_size(limits.max_request_bytes);
    let offered: Vec<String> = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|s| s.trim().to_string()))
        .collect();
    let speaks_ours = offered.iter().any(|p| p == PROTOCOL);
    let versions: Vec<String> = offered
        .iter()
        .filter(|p| p.starts_with("r1.proto."))
        .cloned()
        .collect();
    if !speaks_ours && !versions.is_empty() {
        let hint = format!(
            "this daemon speaks {PROTOCOL}, not {}; upgrade the client (or the daemon) so both speak one protocol",
            versions.join(", ")
        );
        return ws.on_upgrade(move |mut socket| async move {
            let _ = socket
                .send(Message::Close(Some(CloseFrame {
                    code: CLOSE_PROTOCOL_ERROR,
                    reason: truncate_reason(&hint).into(),
                })))
                .await;
        });
    }
    ws.protocols([PROTOCOL])
        .on_upgrade(move |socket| serve_socket(socket, hub))
}

fn truncate_reason(s: &str) -> String {
    // A close reason must fit the 125-byte control frame payload, minus the code.
    let mut out = String::new();
    for c in s.chars() {
        if out.len() + c.len_utf8() > 123 {
            break;
        }
        out.push(c);
    }
    out
}

struct Conn {
    hub: Hub,
    out: mpsc::Sender<Message>,
    overflow: CancellationToken,
    subs: HashMap<String, JoinHandle<()>>,
    next_sub: u64,
}

async fn serve_socket(socket: WebSocket, hub: Hub) {
    let (mut sink, mut stream) = socket.split();
    let (out, mut outbox) = mpsc::channel::<Message>(OUTBOX);
    let overflow = CancellationToken::new();
    let writer = tokio::spawn(async move {
        while let Some(m) = outbox.recv().await {
            let closing = matches!(m, Message::Close(_));
            if sink.send(m).await.is_err() || closing {
                break;
            }
        }
    });
    let stop = hub.shutdown_token().clone();
    let mut conn = Conn {
        hub,
        out: out.clone(),
        overflow: overflow.clone(),
        subs: HashMap::new(),
        next_sub: 0,
    };
    loop {
        let msg = tokio::select! {
            _ = stop.cancelled() => {
                let _ = out.send(close(1001, "daemon shutting down")).await;
                break;
            }
            _ = overflow.cancelled() => {
                let _ = out.send(close(CLOSE_SLOW_CONSUMER, "slow consumer: reconnect and subscribe again with since_seq")).await;
                break;
            }
            m = stream.next() => m,
        };
        let text = match msg {
            Some(Ok(Message::Text(t))) => t.to_string(),
            Some(Ok(Message::Binary(_))) => {
                let _ = out
                    .send(
                        rpc_error(Value::Null, -32600, "binary frames are not JSON-RPC", None)
                            .into(),
                    )
                    .await;
                continue;
            }
            Some(Err(e)) => {
                // tungstenite reports a message or frame over the configured limits as
                // a capacity error; say so with 1009 instead of dropping the socket.
                let text = e.to_string();
                if text.contains("Space limit exceeded") || text.contains("too long") {
                    let _ = out
                        .send(close(
                            CLOSE_TOO_BIG,
                            "message larger than the daemon's [limits] max_request_bytes",
                        ))
                        .await;
                }
                break;
            }
            Some(Ok(Message::Close(_))) | None => break,
            Some(Ok(_)) => continue,
        };
        let reply = conn.handle(&text).await;
        if let Some(reply) = reply {
            if out
                .send(Message::Text(reply.to_string().into()))
                .await
                .is_err()
            {
                break;
            }
        }
    }
    for (_, h) in conn.subs.drain() {
        h.abort();
    }
    drop(out);
    drop(conn);
    let _ = writer.await;
}

fn close(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.to_string().into(),
    }))
}

struct RpcReply(Value);

impl From<RpcReply> for Message {
    fn from(r: RpcReply) -> Self {
        Message::Text(r.0.to_string().into())
    }
}

fn rpc_error(id: Value, code: i64, message: &str, error_code: Option<ErrorCode>) -> RpcReply {
    let mut err = json!({"code": code, "message": message});
    if let Some(c) = error_code {
        err["data"] = json!({"error_code": c.as_str()});
    }
    RpcReply(json!({"jsonrpc": "2.0", "id": id, "error": err}))
}

fn api_error(id: Value, e: &ApiError) -> Value {
    rpc_error(id, -32000, &e.message, Some(e.code)).0
}

fn params<T: serde::de::DeserializeOwned>(v: &Value) -> Result<T, ApiError> {
    let v = if v.is_null() { json!({}) } else { v.clone() };
    serde_json::from_value(v).map_err(|e| ApiError::validation(format!("invalid params: {e}")))
}

fn str_param(v: &Value, key: &str) -> Result<String, ApiError> {
    v.get(key)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| ApiError::validation(format!("params.{key} is required")))
}

impl Conn {
    /// Handles one incoming frame; returns the reply, if the frame was a request.
    async fn handle(&mut self, text: &str) -> Option<Value> {
        let req: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(_) => return Some(rpc_error(Value::Null, -32700, "parse error: not JSON", None).0),
        };
        let id = req.get("id").cloned();
        let Some(method) = req.get("method").and_then(Value::as_str) else {
            return Some(
                rpc_error(
                    id.unwrap_or(Value::Null),
                    -32600,
                    "invalid request: no method",
                    None,
                )
                .0,
            );
        };
        let p = req.get("params").cloned().unwrap_or(Value::Null);
        let result = self.call(method, &p).await;
        let id = id?;
        Some(match result {
            Ok(v) => json!({"jsonrpc": "2.0", "id": id, "result": v}),
            Err(Some(e)) => api_error(id, &e),
            Err(None) => rpc_error(id, -32601, &format!("method not found: {method}"), None).0,
        })
    }

    /// Runs one method; `Err(None)` means no such method.
    async fn call(&mut self, method: &str, p: &Value) -> Result<Value, Option<ApiError>> {
        let hub = self.hub.clone();
        let v = match method {
            "daemon.info" | "daemon.handshake" => to_value(hub.handshake().await),
            "daemon.health" => to_value(hub.health().await),
            "daemon.shutdown" => match params(p) {
                Ok(sp) => to_value(hub.shutdown(sp).await),
                Err(e) => Err(e),
            },
            "session.start" => match params(p) {
                Ok(sp) => to_value(hub.session_start(sp).await),
                Err(e) => Err(e),
            },
            "session.list" => to_value(hub.session_list().await),
            "session.get" => {
                self.with_id(p, |h, id| async move { to_value(h.session_get(&id).await) })
                    .await
            }
            "session.send" => {
                let id = str_param(p, "session_id");
                let sp = params::<SendParams>(p);
                match (id, sp) {
                    (Ok(id), Ok(sp)) => to_value(
                        hub.session_send(
                            &id,
                            r1_proto::SendMessageParams {
                                text: sp.text,
                                client_message_id: sp.client_message_id,
                            },
                        )
                        .await,
                    ),
                    (Err(e), _) | (_, Err(e)) => Err(e),
                }
            }
            "session.cancel" => {
                self.with_id(
                    p,
                    |h, id| async move { to_value(h.session_cancel(&id).await) },
                )
                .await
            }
            "session.pause" => {
                self.with_id(
                    p,
                    |h, id| async move { to_value(h.session_pause(&id).await) },
                )
                .await
            }
            "session.resume" => {
                self.with_id(
                    p,
                    |h, id| async move { to_value(h.session_resume(&id).await) },
                )
                .await
            }
            "session.repair" => {
                self.with_id(
                    p,
                    |h, id| async move { to_value(h.session_repair(&id).await) },
                )
                .await
            }
            "session.kill" => {
                self.with_id(
                    p,
                    |h, id| async move { to_value(h.session_kill(&id).await) },
                )
                .await
            }
            "session.journal" => {
                let id = str_param(p, "session_id");
                let since = p.get("since_seq").and_then(Value::as_u64).unwrap_or(1);
                let limit = p.get("limit").and_then(Value::as_u64).unwrap_or(1000) as usize;
                match id {
                    Ok(id) => to_value(hub.session_journal(&id, since, limit).await),
                    Err(e) => Err(e),
                }
            }
            "session.approve" => {
                match (
                    str_param(p, "session_id"),
                    str_param(p, "approval_id"),
                    str_param(p, "decision"),
                ) {
                    (Ok(id), Ok(a), Ok(d)) => to_value(hub.session_approve(&id, &a, &d).await),
                    (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => Err(e),
                }
            }
            "lanes.list" => {
                self.with_id(p, |h, id| async move { to_value(h.lanes_list(&id).await) })
                    .await
            }
            "lanes.kill" | "lanes.pin" => {
                match (str_param(p, "session_id"), str_param(p, "lane")) {
                    (Ok(id), Ok(lane)) if method == "lanes.kill" => {
                        to_value(hub.lane_kill(&id, &lane).await)
                    }
                    (Ok(id), Ok(lane)) => to_value(hub.lane_pin(&id, &lane).await),
                    (Err(e), _) | (_, Err(e)) => Err(e),
                }
            }
            "engines.list" => to_value(hub.engines_list().await),
            "subscribe" => self.subscribe(p),
            "unsubscribe" => {
                let sub = str_param(p, "subscription");
                match sub {
                    Ok(s) => match self.subs.remove(&s) {
                        Some(h) => {
                            h.abort();
                            Ok(json!({"ok": true}))
                        }
                        None => Err(ApiError::not_found(format!("no subscription {s}"))),
                    },
                    Err(e) => Err(e),
                }
            }
            _ => return Err(None),
        };
        v.map_err(Some)
    }

    async fn with_id<F, Fut>(&self, p: &Value, f: F) -> Result<Value, ApiError>
    where
        F: FnOnce(Hub, String) -> Fut,
        Fut: std::future::Future<Output = Result<Value, ApiError>>,
    {
        let id = str_param(p, "session_id")?;
        f(self.hub.clone(), id).await
    }

    /// `subscribe {session_id?, since_seq?}`: a session's records, or the daemon bus
    /// when no session is named.
    fn subscribe(&mut self, p: &Value) -> Result<Value, ApiError> {
        let since = p.get("since_seq").and_then(Value::as_u64).unwrap_or(1);
        self.next_sub += 1;
        let sub_id = format!("sub_{}", self.next_sub);
        let out = self.out.clone();
        let overflow = self.overflow.clone();
        let handle = match p.get("session_id").and_then(Value::as_str) {
            Some(session_id) => crate::session_stream::spawn_ws_forwarder(
                self.hub.clone(),
                session_id.to_string(),
                since,
                sub_id.clone(),
                out,
                overflow,
            )?,
            None => {
                let sub = sub_id.clone();
                let slot = self.hub.subscriber_slot(None)?;
                let hub = self.hub.clone();
                tokio::spawn(async move {
                    let _slot = slot;
                    forward_bus(hub, since, sub, out, overflow).await;
                })
            }
        };
        self.subs.insert(sub_id.clone(), handle);
        Ok(json!({"subscription": sub_id}))
    }
}

#[derive(serde::Deserialize)]
struct SendParams {
    #[allow(dead_code)]
    session_id: String,
    text: String,
    #[serde(default)]
    client_message_id: Option<String>,
}

fn to_value<T: serde::Serialize>(r: Result<T, ApiError>) -> Result<Value, ApiError> {
    r.and_then(|v| {
        serde_json::to_value(v).map_err(|_| ApiError::internal("could not encode the result"))
    })
}

/// Pushes a `$/event` notification; on a full outbox the connection is marked
/// overflowing and the caller stops.
pub fn notify(out: &mpsc::Sender<Message>, overflow: &CancellationToken, params: Value) -> bool {
    let m = json!({"jsonrpc": "2.0", "method": "$/event", "params": params});
    match out.try_send(Message::Text(m.to_string().into())) {
        Ok(()) => true,
        Err(mpsc::error::TrySendError::Full(_)) => {
            overflow.cancel();
            false
        }
        Err(mpsc::error::TrySendError::Closed(_)) => false,
    }
}

async fn forward_bus(
    hub: Hub,
    since: u64,
    sub: String,
    out: mpsc::Sender<Message>,
    overflow: CancellationToken,
) {
    let stop = hub.shutdown_token().clone();
    let lagged = hub
        .bus()
        .follow(since, stop, |e| {
            let ok = notify(
                &out,
                &overflow,
                json!({"subscription": sub, "session_id": null, "record": e}),
            );
            async move { ok }
        })
        .await;
    if lagged {
        overflow.cancel();
    }
}
