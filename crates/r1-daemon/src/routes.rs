//! The route table of `/v1`, shared by both listeners.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Path, Query, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::Stream;
use r1_proto::{
    Ack, Api, ApiError, ApprovalDecision, EngineList, Handshake, Health, JournalPage, LaneList,
    RepairResult, SendMessageParams, SendMessageResult, SessionList, SessionView, ShutdownParams,
    StartSessionParams,
};
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::error::{fallback, render_envelopes, HttpError, JsonBody};
use crate::perimeter::{self, Perimeter};
use crate::{metrics, ws, Hub};
use axum::http::{Method, Uri};

/// How often an idle event stream sends a heartbeat comment.
pub const HEARTBEAT: Duration = Duration::from_secs(15);
/// How many frames may wait for one slow event-stream reader before it is dropped.
pub const STREAM_QUEUE: usize = 256;

/// The routes with the middleware every listener shares.
fn base(hub: Hub) -> Router {
    Router::new()
        .route("/v1/handshake", get(handshake))
        .route("/v1/health", get(health))
        .route("/v1/metrics", get(metrics_text))
        .route("/v1/events", get(bus_events))
        .route("/v1/ws", get(ws::upgrade))
        .route("/v1/shutdown", post(shutdown))
        .route("/v1/auth/rotate", post(rotate_token))
        .route("/v1/auth/code", post(mint_code))
        .route("/v1/auth/exchange", post(exchange_code))
        .route("/v1/sessions", post(start_session).get(list_sessions))
        .route("/v1/sessions/{id}", get(get_session).delete(kill_session))
        .route("/v1/sessions/{id}/messages", post(send_message))
        .route("/v1/sessions/{id}/cancel", post(cancel_session))
        .route("/v1/sessions/{id}/pause", post(pause_session))
        .route("/v1/sessions/{id}/resume", post(resume_session))
        .route("/v1/sessions/{id}/journal", get(session_journal))
        .route("/v1/sessions/{id}/repair", post(repair_session))
        .route("/v1/sessions/{id}/events", get(session_events))
        .route("/v1/sessions/{id}/approvals/{approval_id}", post(approve))
        .route("/v1/sessions/{id}/lanes", get(list_lanes))
        .route("/v1/sessions/{id}/lanes/{lane}/kill", post(kill_lane))
        .route("/v1/sessions/{id}/lanes/{lane}/pin", post(pin_lane))
        .route("/v1/engines", get(list_engines))
        .nest_service(
            "/mcp",
            r1_mcp::http_service(std::sync::Arc::new(hub.clone()), hub.config().mcp.caps),
        )
        .route_layer(middleware::from_fn_with_state(hub.clone(), metrics::track))
        .fallback(fallback_or_asset)
        .layer(DefaultBodyLimit::max(hub.config().limits.max_request_bytes))
        .layer(middleware::from_fn_with_state(
            hub.clone(),
            perimeter::request_body_rules,
        ))
        .layer(middleware::from_fn(render_envelopes))
        .with_state(hub)
}

/// The router of the unix socket: the peer's uid was checked on accept, and every
/// `/v1` route but the login exchange needs the token here too (see
/// [`perimeter::unix_credential`]).
pub fn unix_router(hub: Hub) -> Router {
    base(hub.clone())
        .layer(middleware::from_fn_with_state(
            hub,
            perimeter::unix_credential,
        ))
        .layer(middleware::from_fn(perimeter::security_headers))
}

/// The router of the loopback TCP port: every request passes the perimeter first.
pub fn tcp_router(hub: Hub, port: u16) -> Router {
    let p = Perimeter::new(hub.clone(), port);
    base(hub)
        .layer(middleware::from_fn_with_state(p, perimeter::enforce))
        .layer(middleware::from_fn(perimeter::security_headers))
}

async fn handshake(State(hub): State<Hub>) -> Result<Json<Handshake>, HttpError> {
    Ok(Json(hub.handshake().await?))
}

async fn health(State(hub): State<Hub>) -> Result<Json<Health>, HttpError> {
    Ok(Json(hub.health().await?))
}

async fn metrics_text(State(hub): State<Hub>) -> Response {
    let mut body = hub.metrics().render(hub.live_sessions());
    body.push_str(&format!(
        "# HELP r1_subscribers Live event-stream subscribers.\n# TYPE r1_subscribers gauge\nr1_subscribers {}\n",
        hub.subscriber_count()
    ));
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        body,
    )
        .into_response()
}

async fn shutdown(
    State(hub): State<Hub>,
    JsonBody(params): JsonBody<ShutdownParams>,
) -> Result<Json<Ack>, HttpError> {
    Ok(Json(hub.shutdown(params).await?))
}

async fn rotate_token(State(hub): State<Hub>) -> Result<Json<Ack>, HttpError> {
    hub.rotate_token()?;
    Ok(Json(Ack::OK))
}

/// `?since_seq=` of the event-stream routes.
#[derive(Debug, Deserialize)]
pub struct StreamQuery {
    /// Replay from this seq (inclusive).
    pub since_seq: Option<u64>,
}

/// Where a reattaching stream starts: `?since_seq=N` (inclusive), else one after
/// `Last-Event-ID`, else `default`.
pub fn stream_start(q: &StreamQuery, headers: &HeaderMap, default: u64) -> u64 {
    if let Some(s) = q.since_seq {
        return s;
    }
    headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|n| n + 1)
        .unwrap_or(default)
}

/// An SSE response over frames produced by a task, ending on shutdown.
pub fn sse_from(rx: mpsc::Receiver<Event>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    use futures_util::StreamExt;
    Sse::new(ReceiverStream::new(rx).map(Ok)).keep_alive(KeepAlive::new().interval(HEARTBEAT))
}

async fn bus_events(
    State(hub): State<Hub>,
    headers: HeaderMap,
    Query(q): Query<StreamQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, HttpError> {
    let since = stream_start(&q, &headers, 1);
    let slot = hub.subscriber_slot(None)?;
    let (tx, rx) = mpsc::channel(STREAM_QUEUE);
    let stop = hub.shutdown_token().clone();
    let closed = tx.clone();
    tokio::spawn(async move {
        let _slot = slot;
        // The follower ends when the reader goes away, even if no record ever comes.
        tokio::select! {
            () = closed.closed() => {}
            () = forward_bus_sse(hub, since, stop, tx) => {}
        }
    });
    Ok(sse_from(rx))
}

/// Pushes the bus into an SSE reader's queue; a reader that falls behind gets a
/// `stream.dropped` frame.
async fn forward_bus_sse(
    hub: Hub,
    since: u64,
    stop: tokio_util::sync::CancellationToken,
    tx: mpsc::Sender<Event>,
) {
    let lagged = hub
        .bus()
        .follow(since, stop, |e| {
            let tx = tx.clone();
            async move {
                let frame = Event::default()
                    .id(e.seq.to_string())
                    .event(e.kind.clone())
                    .data(serde_json::to_string(&e).unwrap_or_default());
                tx.send(frame).await.is_ok()
            }
        })
        .await;
    if lagged {
        let _ = tx.try_send(
            Event::default()
                .event("stream.dropped")
                .data(r#"{"reason":"subscriber fell behind; reconnect with Last-Event-ID"}"#),
        );
    }
}

async fn start_session(
    State(hub): State<Hub>,
    JsonBody(params): JsonBody<StartSessionParams>,
) -> Result<(StatusCode, Json<SessionView>), HttpError> {
    Ok((StatusCode::CREATED, Json(hub.session_start(params).await?)))
}

async fn list_sessions(State(hub): State<Hub>) -> Result<Json<SessionList>, HttpError> {
    Ok(Json(hub.session_list().await?))
}

async fn get_session(
    State(hub): State<Hub>,
    Path(id): Path<String>,
) -> Result<Json<SessionView>, HttpError> {
    Ok(Json(hub.session_get(&id).await?))
}

async fn kill_session(
    State(hub): State<Hub>,
    Path(id): Path<String>,
) -> Result<Json<SessionView>, HttpError> {
    Ok(Json(hub.session_kill(&id).await?))
}

async fn cancel_session(
    State(hub): State<Hub>,
    Path(id): Path<String>,
) -> Result<Json<SessionView>, HttpError> {
    Ok(Json(hub.session_cancel(&id).await?))
}

async fn repair_session(
    State(hub): State<Hub>,
    Path(id): Path<String>,
) -> Result<Json<RepairResult>, HttpError> {
    Ok(Json(hub.session_repair(&id).await?))
}

async fn pause_session(
    State(hub): State<Hub>,
    Path(id): Path<String>,
) -> Result<Json<SessionView>, HttpError> {
    Ok(Json(hub.session_pause(&id).await?))
}

async fn resume_session(
    State(hub): State<Hub>,
    Path(id): Path<String>,
) -> Result<Json<SessionView>, HttpError> {
    Ok(Json(hub.session_resume(&id).await?))
}

/// `POST /v1/sessions/{id}/messages`: 202 for a new message, 200 for a repeat of an
/// earlier one with the same `client_message_id` (or `Idempotency-Key` header).
async fn send_message(
    State(hub): State<Hub>,
    Path(id): Path<String>,
    headers: HeaderMap,
    JsonBody(mut params): JsonBody<SendMessageParams>,
) -> Result<(StatusCode, Json<SendMessageResult>), HttpError> {
    if params.client_message_id.is_none() {
        if let Some(k) = headers.get("idempotency-key") {
            let k = k
                .to_str()
                .map_err(|_| ApiError::validation("Idempotency-Key must be ASCII"))?;
            params.client_message_id = Some(k.to_string());
        }
    }
    let r = hub.session_send(&id, params).await?;
    let status = if r.duplicate {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, Json(r)))
}

/// Parses `?name=<u64>` from a raw query string; absent is `None`.
fn query_u64(query: &Option<String>, name: &str) -> Result<Option<u64>, ApiError> {
    let Some(q) = query else { return Ok(None) };
    for kv in q.split('&') {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        if k == name {
            return v.parse().map(Some).map_err(|_| {
                ApiError::validation(format!("{name} must be a non-negative integer"))
            });
        }
    }
    Ok(None)
}

async fn session_journal(
    State(hub): State<Hub>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Json<JournalPage>, HttpError> {
    let since = query_u64(&q, "since_seq")?.unwrap_or(1);
    let limit = query_u64(&q, "limit")?.unwrap_or(1000);
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    Ok(Json(hub.session_journal(&id, since, limit).await?))
}

/// `GET /v1/sessions/{id}/events`: SSE replay from `?since_seq=N` (inclusive) or after
/// `Last-Event-ID`, then live. A reader whose queue fills up is dropped with a
/// `stream.dropped` frame and resumes from the journal by reconnecting.
async fn session_events(
    State(hub): State<Hub>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, HttpError> {
    let s = hub.session(&id)?;
    s.readable()?;
    let slot = hub.subscriber_slot(Some(&id))?;
    let since = match query_u64(&q, "since_seq")? {
        Some(n) => n,
        None => stream_start(&StreamQuery { since_seq: None }, &headers, 1),
    };
    let (tx, rx) = mpsc::channel(STREAM_QUEUE);
    let stop = hub.shutdown_token().clone();
    let closed = tx.clone();
    tokio::spawn(async move {
        let _slot = slot;
        // The follower ends when the reader goes away, even on an idle session.
        let follow = crate::session_stream::follow(s, since, stop, |item| {
            let r = item.into_record();
            let ev = Event::default()
                .id(r.seq.to_string())
                .event(r.kind.as_str())
                .data(serde_json::to_string(&r).unwrap_or_default());
            if tx.capacity() <= 1 {
                let _ = tx.try_send(
                    Event::default()
                        .event("stream.dropped")
                        .data(r#"{"reason":"this reader fell behind and was dropped; reconnect with Last-Event-ID to resume from the journal"}"#),
                );
                return false;
            }
            tx.try_send(ev).is_ok()
        });
        tokio::select! {
            () = closed.closed() => {}
            _ = follow => {}
        }
    });
    Ok(sse_from(rx))
}

async fn approve(
    State(hub): State<Hub>,
    Path((id, approval_id)): Path<(String, String)>,
    JsonBody(body): JsonBody<ApprovalDecision>,
) -> Result<Json<SessionView>, HttpError> {
    Ok(Json(
        hub.session_approve(&id, &approval_id, &body.decision)
            .await?,
    ))
}

async fn list_lanes(
    State(hub): State<Hub>,
    Path(id): Path<String>,
) -> Result<Json<LaneList>, HttpError> {
    Ok(Json(hub.lanes_list(&id).await?))
}

async fn kill_lane(
    State(hub): State<Hub>,
    Path((id, lane)): Path<(String, String)>,
) -> Result<Json<LaneList>, HttpError> {
    Ok(Json(hub.lane_kill(&id, &lane).await?))
}

async fn pin_lane(
    State(hub): State<Hub>,
    Path((id, lane)): Path<(String, String)>,
) -> Result<Json<LaneList>, HttpError> {
    Ok(Json(hub.lane_pin(&id, &lane).await?))
}

async fn list_engines(State(hub): State<Hub>) -> Result<Json<EngineList>, HttpError> {
    Ok(Json(hub.engines_list().await?))
}

/// Everything outside `/v1` and `/mcp` is a UI asset (GET) or a 404 envelope.
async fn fallback_or_asset(method: Method, uri: Uri) -> Response {
    if method == Method::GET && !uri.path().starts_with("/v1") {
        return crate::assets::serve(uri).await;
    }
    fallback().await.into_response()
}

/// `POST /v1/auth/code`: a single-use browser login code, valid for 60 s.
async fn mint_code(State(hub): State<Hub>) -> Result<Json<serde_json::Value>, HttpError> {
    let code = hub.mint_login_code()?;
    Ok(Json(
        serde_json::json!({"code": code, "expires_in_s": crate::hub::LOGIN_CODE_TTL.as_secs()}),
    ))
}

/// `POST /v1/auth/exchange`: trades a login code for the token (once).
async fn exchange_code(
    State(hub): State<Hub>,
    JsonBody(body): JsonBody<r1_proto::ExchangeParams>,
) -> Result<Json<serde_json::Value>, HttpError> {
    let token = hub.exchange_login_code(&body.code)?;
    Ok(Json(serde_json::json!({ "token": token })))
}
