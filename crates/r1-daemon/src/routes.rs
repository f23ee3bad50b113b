//! The route table of `/v1`, shared by both listeners.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, Query, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware;
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
use tokio_util::sync::CancellationToken;

use bytes::Bytes;

use crate::error::{fallback, render_envelopes, HttpError, JsonBody};
use crate::perimeter::{self, Perimeter};
use crate::session_stream::{End, Frame, QueueLimits};
use crate::{metrics, ws, Hub};
use axum::http::{Method, Uri};

/// How often an idle event stream sends a heartbeat comment.
pub const HEARTBEAT: Duration = Duration::from_secs(15);
/// The final word to an SSE subscriber dropped as too slow (its `event: error` data).
pub const TOO_SLOW: &str =
    r#"{"code":"stream.dropped","reason":"too slow; reconnect with Last-Event-ID"}"#;

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
        .route("/v1/sessions/resume", post(resume_all_sessions))
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
/// `Last-Event-ID`, else `default`. Saturating: `Last-Event-ID: 18446744073709551615`
/// means "after everything", never a wrap back to 0.
pub fn stream_start(q: &StreamQuery, headers: &HeaderMap, default: u64) -> u64 {
    if let Some(s) = q.since_seq {
        return s;
    }
    headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|n| n.saturating_add(1))
        .unwrap_or(default)
}

/// An SSE response that pumps `frames` into its body. hyper polls the body only when
/// the socket has taken what it had, so a replay goes exactly as fast as the reader
/// reads and costs one frame of memory; a stalled socket is cut by the connection's
/// write timeout. A subscriber dropped as too slow gets `event: error` and the end of
/// the stream; the stream also ends on shutdown.
pub fn sse_from<S>(frames: S) -> Response
where
    S: Stream<Item = Result<Arc<Frame>, End>> + Send + 'static,
{
    use futures_util::StreamExt;
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + HEARTBEAT, HEARTBEAT);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let body = futures_util::stream::unfold(
        (Box::pin(frames), tick, false),
        |(mut frames, mut tick, done)| async move {
            if done {
                return None;
            }
            let (chunk, last) = tokio::select! {
                biased;
                item = frames.next() => match item? {
                    Ok(f) => {
                        tick.reset();
                        (f.sse(), false)
                    }
                    Err(End::TooSlow) => (final_word(TOO_SLOW), true),
                    Err(End::Failed(reason)) => {
                        let data = serde_json::json!({"code": "journal_unreadable", "reason": reason});
                        (final_word(&data.to_string()), true)
                    }
                },
                _ = tick.tick() => (Bytes::from_static(b": keep-alive\n\n"), false),
            };
            Some((Ok::<_, Infallible>(chunk), (frames, tick, last)))
        },
    );
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        Body::from_stream(body),
    )
        .into_response()
}

/// The `event: error` frame that ends a stream.
fn final_word(data: &str) -> Bytes {
    Bytes::from(format!("event: error\ndata: {data}\n\n"))
}

/// `GET /v1/events`: the daemon bus over SSE, from `?since_seq=N` or after
/// `Last-Event-ID` while those events are still in the ring, then live.
async fn bus_events(
    State(hub): State<Hub>,
    headers: HeaderMap,
    Query(q): Query<StreamQuery>,
) -> Result<Response, HttpError> {
    let since = stream_start(&q, &headers, 1);
    let slot = hub.subscriber_slot(None)?;
    let frames = crate::bus::follow(
        hub.clone(),
        since,
        QueueLimits::of(&hub),
        slot,
        hub.shutdown_token().clone(),
        CancellationToken::new(),
    );
    Ok(sse_from(frames))
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

/// `POST /v1/sessions/resume`: `session.resume_all`. A static segment, so it never
/// shadows a session id (ids are `ses_…`).
async fn resume_all_sessions(
    State(hub): State<Hub>,
) -> Result<Json<r1_proto::ResumeAllResult>, HttpError> {
    Ok(Json(hub.session_resume_all().await?))
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
/// `Last-Event-ID`, then live. Replay is paced by the reader; a live reader whose
/// queue stays full past the grace period gets `event: error` ("too slow") and
/// resumes from the journal by reconnecting.
async fn session_events(
    State(hub): State<Hub>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Response, HttpError> {
    let s = hub.session(&id)?;
    s.readable()?;
    let slot = hub.subscriber_slot(Some(&id))?;
    let since = match query_u64(&q, "since_seq")? {
        Some(n) => n,
        None => stream_start(&StreamQuery { since_seq: None }, &headers, 1),
    };
    let frames = crate::session_stream::follow(
        s,
        since,
        QueueLimits::of(&hub),
        slot,
        hub.shutdown_token().clone(),
        CancellationToken::new(),
    )?;
    Ok(sse_from(frames))
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
