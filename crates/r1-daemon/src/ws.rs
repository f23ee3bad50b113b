//! `/v1/ws`: JSON-RPC 2.0 over WebSocket. Every catalog operation is a method by its
//! dotted name (`session.start`, `session.send`, …), parsed and dispatched by the
//! catalog, plus `subscribe`/`unsubscribe`; events arrive as `$/event` notifications.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::Response;
use axum::Extension;
use bytes::Bytes;
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, Stream, StreamExt};
use r1_proto::{ApiError, Request, PROTOCOL};
use serde_json::{json, Value};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::perimeter::Credential;
use crate::session_stream::{End, Frame, QueueLimits};
use crate::state::Limits;
use crate::Hub;

/// Close code for a client that asked only for protocols this daemon does not speak.
const CLOSE_PROTOCOL_ERROR: u16 = 1002;
/// Close code for a message over the size limits (RFC 6455 "message too big").
const CLOSE_TOO_BIG: u16 = 1009;
/// Close code for a client that fell behind or stopped answering pings (policy
/// violation).
const CLOSE_SLOW_CONSUMER: u16 = 1008;
/// Close code (from the range RFC 6455 leaves to applications) for a socket opened
/// with a token that `r1 ctl rotate-token` replaced: the client must sign in again.
pub const CLOSE_TOKEN_ROTATED: u16 = 4001;

/// The upgrade handler. Authentication happened in the perimeter (TCP) or on accept
/// (unix socket); here only the protocol version is negotiated. The answer is always
/// `r1.proto.v1`, never the offered token. The socket lives as long as the token it
/// was opened with ([`Credential`]).
pub async fn upgrade(
    State(hub): State<Hub>,
    credential: Option<Extension<Credential>>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    // Every route that reaches here passed a token check; without one (a router built
    // without the perimeter) the socket is not tied to a token.
    let revoked = credential.map(|c| c.0.revoked).unwrap_or_default();
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
        .on_upgrade(move |socket| serve_socket(socket, hub, revoked))
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
    out: Arc<Outbox>,
    /// Cancelled when this connection must close as too slow.
    slow: CancellationToken,
    subs: HashMap<String, JoinHandle<()>>,
    next_sub: u64,
    /// Cancelled when the token this socket was opened with is rotated away.
    revoked: CancellationToken,
}

/// What a queued message counts for against the outbox's byte budget.
fn cost(m: &Message) -> usize {
    let n = match m {
        Message::Text(t) => t.len(),
        Message::Binary(b) | Message::Ping(b) | Message::Pong(b) => b.len(),
        Message::Close(_) => 0,
    };
    n + 64
}

/// The connection's one outbox, shared by RPC replies and event frames and bounded in
/// bytes (`[limits] subscriber_queue_bytes`). Replies never wait (request handling
/// must not block on a slow reader); events wait for room, so a replay goes as fast as
/// the socket takes it. A peer that lets replies pile past twice the budget is closed.
struct Outbox {
    st: Mutex<OutState>,
    /// Wakes the writer.
    ready: Notify,
    /// Wakes pumps waiting for room.
    room: Notify,
    cap: usize,
}

struct OutState {
    msgs: VecDeque<Message>,
    bytes: usize,
    closed: bool,
}

impl Outbox {
    fn new(cap: usize) -> Arc<Outbox> {
        Arc::new(Outbox {
            st: Mutex::new(OutState {
                msgs: VecDeque::new(),
                bytes: 0,
                closed: false,
            }),
            ready: Notify::new(),
            room: Notify::new(),
            cap,
        })
    }

    fn lock(&self) -> MutexGuard<'_, OutState> {
        // A poisoned lock means a panic elsewhere already; the outbox is still usable.
        self.st.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a reply without waiting; false when the outbox is closed or the peer has
    /// left more than twice the budget unread.
    fn push_now(&self, m: Message) -> bool {
        let mut st = self.lock();
        let c = cost(&m);
        if st.closed || (st.bytes + c > 2 * self.cap && !st.msgs.is_empty()) {
            return false;
        }
        st.bytes += c;
        st.msgs.push_back(m);
        drop(st);
        self.ready.notify_one();
        true
    }

    /// Queues an event once there is room for it; false when the outbox closed.
    async fn push_paced(&self, m: Message) -> bool {
        let c = cost(&m);
        loop {
            let room = self.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            {
                let mut st = self.lock();
                if st.closed {
                    return false;
                }
                if st.bytes + c <= self.cap || st.msgs.is_empty() {
                    st.bytes += c;
                    st.msgs.push_back(m);
                    drop(st);
                    self.ready.notify_one();
                    return true;
                }
            }
            room.await;
        }
    }

    /// The next message to write; `None` once closed and empty.
    async fn pop(&self) -> Option<Message> {
        loop {
            {
                let mut st = self.lock();
                if let Some(m) = st.msgs.pop_front() {
                    st.bytes = st.bytes.saturating_sub(cost(&m));
                    drop(st);
                    self.room.notify_waiters();
                    return Some(m);
                }
                if st.closed {
                    return None;
                }
            }
            // `notify_one` keeps a permit when the writer is not waiting yet.
            self.ready.notified().await;
        }
    }

    /// Drops whatever waits, queues `last` (a close frame) alone, and closes.
    fn close_with(&self, last: Option<Message>) {
        let mut st = self.lock();
        if !st.closed {
            st.msgs.clear();
            st.bytes = 0;
            st.msgs.extend(last);
            st.closed = true;
        }
        drop(st);
        self.ready.notify_one();
        self.room.notify_waiters();
    }
}

/// The writer: the only owner of the socket's sending half. Every write is bounded by
/// `write_timeout_ms`; pings go out every `ws_ping_interval_ms`, and a peer silent for
/// `ws_pong_timeout_ms` after a ping is closed.
async fn write_loop(
    mut sink: SplitSink<WebSocket, Message>,
    out: Arc<Outbox>,
    limits: Limits,
    heard: Arc<AtomicU64>,
    started: Instant,
) {
    let write_timeout = Duration::from_millis(limits.write_timeout_ms);
    let every = Duration::from_millis(limits.ws_ping_interval_ms);
    let pong_timeout = Duration::from_millis(limits.ws_pong_timeout_ms);
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // When the last unanswered ping went out (ms since `started`), and by when an
    // answer must come.
    let mut pending: Option<(u64, tokio::time::Instant)> = None;
    loop {
        let deadline = pending.map(|p| p.1);
        let m = tokio::select! {
            m = out.pop() => match m {
                Some(m) => m,
                None => break,
            },
            _ = ping.tick() => {
                if pending.is_none() {
                    pending = Some((
                        started.elapsed().as_millis() as u64,
                        tokio::time::Instant::now() + pong_timeout,
                    ));
                }
                Message::Ping(Bytes::from_static(b"r1"))
            }
            () = sleep_until_opt(deadline) => {
                let answered = pending.is_some_and(|(sent, _)| heard.load(Ordering::Relaxed) >= sent);
                if answered {
                    pending = None;
                    continue;
                }
                tracing::info!("closing a WebSocket whose peer answered no ping within ws_pong_timeout_ms");
                let _ = tokio::time::timeout(write_timeout, sink.send(close(CLOSE_SLOW_CONSUMER, "no pong"))).await;
                break;
            }
        };
        let closing = matches!(m, Message::Close(_));
        match tokio::time::timeout(write_timeout, sink.send(m)).await {
            Ok(Ok(())) if !closing => {}
            Ok(Ok(())) => break,
            Ok(Err(_)) => break,
            Err(_) => {
                tracing::info!("closing a WebSocket whose writes stalled past write_timeout_ms");
                break;
            }
        }
    }
    out.close_with(None);
}

/// Sleeps until `at`, or for ever when there is nothing to wait for.
async fn sleep_until_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn serve_socket(socket: WebSocket, hub: Hub, revoked: CancellationToken) {
    let (sink, mut stream) = socket.split();
    let limits = hub.config().limits.clone();
    let out = Outbox::new(limits.subscriber_queue_bytes);
    let started = Instant::now();
    let heard = Arc::new(AtomicU64::new(0));
    let mut writer = tokio::spawn(write_loop(
        sink,
        out.clone(),
        limits.clone(),
        heard.clone(),
        started,
    ));
    let mut writer_done = false;
    let stop = hub.shutdown_token().clone();
    let slow = CancellationToken::new();
    let mut conn = Conn {
        hub,
        out: out.clone(),
        slow: slow.clone(),
        subs: HashMap::new(),
        next_sub: 0,
        revoked: revoked.clone(),
    };
    loop {
        let msg = tokio::select! {
            _ = stop.cancelled() => {
                out.close_with(Some(close(1001, "daemon shutting down")));
                break;
            }
            _ = revoked.cancelled() => {
                tracing::info!("closing a WebSocket opened with a rotated token ({CLOSE_TOKEN_ROTATED})");
                out.close_with(Some(close(CLOSE_TOKEN_ROTATED, "token rotated")));
                break;
            }
            _ = slow.cancelled() => {
                tracing::info!("closing a WebSocket that is too slow (1008)");
                out.close_with(Some(close(CLOSE_SLOW_CONSUMER, "too slow")));
                break;
            }
            _ = &mut writer => {
                // The writer ended (write timeout, no pong, socket gone).
                writer_done = true;
                break;
            }
            m = stream.next() => m,
        };
        heard.store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
        let text = match msg {
            Some(Ok(Message::Text(t))) => t.to_string(),
            Some(Ok(Message::Binary(_))) => {
                if !out.push_now(
                    rpc_error(Value::Null, -32600, "binary frames are not JSON-RPC").into(),
                ) {
                    slow.cancel();
                }
                continue;
            }
            Some(Err(e)) => {
                // tungstenite reports a message or frame over the configured limits as
                // a capacity error; say so with 1009 instead of dropping the socket.
                let text = e.to_string();
                if text.contains("Space limit exceeded") || text.contains("too long") {
                    out.close_with(Some(close(
                        CLOSE_TOO_BIG,
                        "message larger than the daemon's [limits] max_request_bytes",
                    )));
                }
                break;
            }
            Some(Ok(Message::Close(_))) | None => break,
            Some(Ok(_)) => continue,
        };
        // A rotation while a call runs closes the socket at once; a call that changes
        // something still runs to its end (it was authorized when it came), a read
        // stops waiting (`Conn::call`).
        let handling = conn.handle(&text);
        tokio::pin!(handling);
        let reply = tokio::select! {
            reply = &mut handling => reply,
            () = revoked.cancelled() => {
                out.close_with(Some(close(CLOSE_TOKEN_ROTATED, "token rotated")));
                handling.await;
                break;
            }
        };
        if let Some(reply) = reply {
            if !out.push_now(Message::Text(reply.to_string().into())) {
                // The peer does not read its replies: the same end as a slow reader.
                slow.cancel();
            }
        }
    }
    for (_, h) in conn.subs.drain() {
        h.abort();
    }
    drop(conn);
    out.close_with(None);
    // The writer ends once it wrote the close frame, or its write timed out.
    let grace = Duration::from_millis(limits.write_timeout_ms.saturating_add(1000));
    if !writer_done {
        let abort = writer.abort_handle();
        if tokio::time::timeout(grace, writer).await.is_err() {
            abort.abort();
        }
    }
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

/// A JSON-RPC protocol error (parse error, invalid request, unknown method).
fn rpc_error(id: Value, code: i64, message: &str) -> RpcReply {
    RpcReply(json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}}))
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
            Err(_) => return Some(rpc_error(Value::Null, -32700, "parse error: not JSON").0),
        };
        let id = req.get("id").cloned();
        let Some(method) = req.get("method").and_then(Value::as_str) else {
            return Some(
                rpc_error(
                    id.unwrap_or(Value::Null),
                    -32600,
                    "invalid request: no method",
                )
                .0,
            );
        };
        let p = req.get("params").cloned().unwrap_or(Value::Null);
        let result = self.call(method, p).await;
        let id = id?;
        Some(match result {
            Ok(v) => json!({"jsonrpc": "2.0", "id": id, "result": v}),
            Err(Some(e)) => json!({"jsonrpc": "2.0", "id": id, "error": e.jsonrpc_error(method)}),
            Err(None) => rpc_error(id, -32601, &format!("method not found: {method}")).0,
        })
    }

    /// Runs one method: a catalog operation, or a subscription method of this
    /// connection; `Err(None)` means no such method.
    async fn call(&mut self, method: &str, p: Value) -> Result<Value, Option<ApiError>> {
        match method {
            "subscribe" => return self.subscribe(&p).map_err(Some),
            "unsubscribe" => return self.unsubscribe(&p).map_err(Some),
            _ => {}
        }
        // `daemon.info` is the name older clients probe with.
        let method = if method == "daemon.info" {
            "daemon.handshake"
        } else {
            method
        };
        if r1_proto::operation(method).is_none() {
            return Err(None);
        }
        let read_only = r1_proto::operation(method)
            .is_some_and(|op| op.http_method == r1_proto::HttpMethod::Get);
        let req = Request::parse(method, p).map_err(Some)?;
        let call = r1_proto::dispatch(&self.hub, req);
        if !read_only {
            return call.await.map_err(Some);
        }
        // A read (a `session.tail` long poll) stops waiting when the token is rotated.
        tokio::select! {
            r = call => r.map_err(Some),
            () = self.revoked.cancelled() => Err(Some(ApiError::new(
                r1_proto::ErrorCode::PermissionDenied,
                "the daemon's token was rotated",
            ).with_status(401))),
        }
    }

    /// `unsubscribe {subscription}`: stops one subscription of this connection.
    fn unsubscribe(&mut self, p: &Value) -> Result<Value, ApiError> {
        let s = str_param(p, "subscription")?;
        match self.subs.remove(&s) {
            Some(h) => {
                h.abort();
                Ok(json!({"ok": true}))
            }
            None => Err(ApiError::not_found(format!("no subscription {s}"))),
        }
    }

    /// `subscribe {session_id?, since_seq?}`: a session's records, or the daemon bus
    /// when no session is named. Each subscription is one pump task from its follow
    /// stream into the outbox; dropping the task (unsubscribe, socket closed) drops the
    /// stream and with it the subscriber's slot.
    fn subscribe(&mut self, p: &Value) -> Result<Value, ApiError> {
        let since = p.get("since_seq").and_then(Value::as_u64).unwrap_or(1);
        let sub_id = format!("sub_{}", self.next_sub + 1);
        let hub = &self.hub;
        let limits = QueueLimits::of(hub);
        let stop = hub.shutdown_token().clone();
        let dropped = CancellationToken::new();
        let handle = match p.get("session_id").and_then(Value::as_str) {
            Some(session_id) => {
                let s = hub.session(session_id)?;
                s.readable()?;
                let slot = hub.subscriber_slot(Some(session_id))?;
                let frames =
                    crate::session_stream::follow(s, since, limits, slot, stop, dropped.clone())?;
                self.pump(frames, &sub_id, session_id, dropped)
            }
            None => {
                let slot = hub.subscriber_slot(None)?;
                let frames =
                    crate::bus::follow(hub.clone(), since, limits, slot, stop, dropped.clone());
                self.pump(frames, &sub_id, Value::Null, dropped)
            }
        };
        self.next_sub += 1;
        self.subs.insert(sub_id.clone(), handle);
        Ok(json!({"subscription": sub_id}))
    }

    /// Spawns the pump of one subscription: each frame becomes a `$/event`
    /// notification whose `record` is the frame's shared JSON, queued once the outbox
    /// has room. A subscriber dropped as too slow closes the socket with 1008.
    fn pump<S>(
        &self,
        frames: S,
        sub_id: &str,
        session_id: impl Into<Value>,
        dropped: CancellationToken,
    ) -> JoinHandle<()>
    where
        S: Stream<Item = Result<Arc<Frame>, End>> + Send + 'static,
    {
        let prefix = format!(
            r#"{{"jsonrpc":"2.0","method":"$/event","params":{{"subscription":{},"session_id":{},"record":"#,
            Value::from(sub_id),
            session_id.into()
        );
        let (out, slow) = (self.out.clone(), self.slow.clone());
        tokio::spawn(async move {
            tokio::pin!(frames);
            loop {
                let item = tokio::select! {
                    biased;
                    () = dropped.cancelled() => Some(Err(End::TooSlow)),
                    item = frames.next() => item,
                };
                let f = match item {
                    Some(Ok(f)) => f,
                    Some(Err(End::TooSlow)) => {
                        slow.cancel();
                        return;
                    }
                    Some(Err(End::Failed(_))) | None => return,
                };
                let m = event_message(&prefix, &f);
                let pushed = tokio::select! {
                    biased;
                    () = dropped.cancelled() => {
                        slow.cancel();
                        return;
                    }
                    ok = out.push_paced(m) => ok,
                };
                if !pushed {
                    return;
                }
            }
        })
    }
}

/// A `$/event` notification: the subscription's prefix, the frame's JSON, the close.
fn event_message(prefix: &str, f: &Frame) -> Message {
    let json = f.json();
    let record = std::str::from_utf8(&json).unwrap_or("null");
    let mut m = String::with_capacity(prefix.len() + record.len() + 2);
    m.push_str(prefix);
    m.push_str(record);
    m.push_str("}}");
    Message::Text(m.into())
}
