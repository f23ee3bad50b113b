//! The route table of `/v1`, shared by both listeners.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::middleware;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::Stream;
use r1_proto::{Ack, Api, Handshake, Health, ShutdownParams};
use serde::Deserialize;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;

use crate::error::{fallback, render_envelopes, HttpError, JsonBody, MAX_BODY_BYTES};
use crate::perimeter::{self, Perimeter};
use crate::{metrics, ws, Hub};

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
        .route_layer(middleware::from_fn_with_state(hub.clone(), metrics::track))
        .fallback(fallback)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn(perimeter::require_json))
        .layer(middleware::from_fn(render_envelopes))
        .with_state(hub)
}

/// The router of the unix socket: the peer's uid was checked on accept.
pub fn unix_router(hub: Hub) -> Router {
    base(hub).layer(middleware::from_fn(perimeter::security_headers))
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
    let body = hub.metrics().render(hub.live_sessions());
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
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let since = stream_start(&q, &headers, 1);
    let (backlog, mut live) = hub.bus().subscribe_from(since);
    let (tx, rx) = mpsc::channel(STREAM_QUEUE);
    let stop = hub.shutdown_token().clone();
    tokio::spawn(async move {
        let frame = |e: &r1_proto::BusEvent| {
            Event::default()
                .id(e.seq.to_string())
                .event(e.kind.clone())
                .data(serde_json::to_string(e).unwrap_or_default())
        };
        let mut last = since.saturating_sub(1);
        for e in &backlog {
            last = e.seq;
            if tx.send(frame(e)).await.is_err() {
                return;
            }
        }
        loop {
            let next = tokio::select! {
                _ = stop.cancelled() => return,
                n = live.recv() => n,
            };
            match next {
                Ok(e) if e.seq <= last => continue,
                Ok(e) => {
                    last = e.seq;
                    if tx.try_send(frame(&e)).is_err() {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    let _ = tx.try_send(Event::default().event("stream.dropped").data(
                        r#"{"reason":"subscriber fell behind; reconnect with Last-Event-ID"}"#,
                    ));
                    return;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    sse_from(rx)
}
