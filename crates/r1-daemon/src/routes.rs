//! The route table of `/v1`, shared by both listeners: every catalog operation at the
//! path `r1_proto::OPERATIONS` declares, through one generic handler, and the
//! transport routes (event streams, WebSocket, MCP, metrics, auth, OpenAPI) by hand.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use std::collections::HashMap;
use std::sync::OnceLock;

use axum::body::Body;

use axum::extract::{DefaultBodyLimit, FromRequest, Path, Query, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use futures_util::Stream;
use r1_proto::{Ack, ApiError, HttpMethod, Idempotency, OperationInfo, Request, OPERATIONS};
use serde::Deserialize;
use serde_json::{Map, Value};
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
    let mut router = Router::new()
        .route("/v1/metrics", get(metrics_text))
        .route("/v1/openapi.json", get(openapi))
        .route("/v1/events", get(bus_events))
        .route("/v1/ws", get(ws::upgrade))
        .route("/v1/auth/rotate", post(rotate_token))
        .route("/v1/auth/code", post(mint_code))
        .route("/v1/auth/exchange", post(exchange_code))
        .route(crate::permission::ROUTE, post(crate::permission::endpoint))
        .route("/v1/sessions/{session_id}/events", get(session_events));
    for op in OPERATIONS {
        let handler =
            move |state, path, headers, query, req| call(op, state, path, headers, query, req);
        router = router.route(
            op.path,
            match op.http_method {
                HttpMethod::Get => get(handler),
                HttpMethod::Post => post(handler),
                HttpMethod::Delete => delete(handler),
            },
        );
    }
    router
        .nest_service(
            "/mcp",
            r1_mcp::http_service(
                std::sync::Arc::new(hub.clone()),
                {
                    let hub = hub.clone();
                    std::sync::Arc::new(move || hub.config().mcp.caps)
                },
                r1_mcp::ServerOptions {
                    home: Some(hub.state().root().to_path_buf()),
                    cli: hub.info().cli.clone(),
                    shutdown: hub.shutdown_token().clone(),
                },
            ),
        )
        .route_layer(middleware::from_fn_with_state(hub.clone(), metrics::track))
        .fallback(fallback_or_asset)
        // `request_body_rules` caps every body at `[limits] max_request_bytes` as the
        // config is now; a fixed limit here would not follow a reload.
        .layer(DefaultBodyLimit::disable())
        .layer(middleware::from_fn_with_state(
            hub.clone(),
            perimeter::request_body_rules,
        ))
        .layer(middleware::from_fn(render_envelopes))
        .with_state(hub)
}

/// The one handler of every catalog operation: the path's fields and the query string
/// (GET, DELETE) or the JSON body (POST) become one params object, which is parsed
/// and dispatched exactly as a WebSocket or MCP call is. A keyed-idempotent operation
/// also takes its key from an `Idempotency-Key` header, and answers a repeat 200.
async fn call(
    op: &'static OperationInfo,
    State(hub): State<Hub>,
    Path(path): Path<HashMap<String, String>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    req: axum::extract::Request,
) -> Result<Response, HttpError> {
    let mut params = if op.http_method.has_body() {
        match JsonBody::<Value>::from_request(req, &()).await?.0 {
            Value::Object(m) => m,
            Value::Null => Map::new(),
            _ => return Err(ApiError::validation("the JSON body must be an object").into()),
        }
    } else {
        query_params(op, query.as_deref())?
    };
    for (k, v) in path {
        if params.contains_key(&k) {
            return Err(ApiError::validation(format!("`{k}` is given by the path")).into());
        }
        params.insert(k, Value::String(v));
    }
    if let Idempotency::Keyed(field) = op.idempotency {
        if let (false, Some(k)) = (params.contains_key(field), headers.get("idempotency-key")) {
            let k = k
                .to_str()
                .map_err(|_| ApiError::validation("Idempotency-Key must be ASCII"))?;
            params.insert(field.into(), Value::String(k.into()));
        }
    }
    let req = Request::parse(op.method, Value::Object(params))?;
    let result = r1_proto::dispatch(&hub, req).await?;
    let repeat = matches!(op.idempotency, Idempotency::Keyed(_)) && result["duplicate"] == true;
    let status = if repeat { 200 } else { op.status };
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    Ok((status, Json(result)).into_response())
}

/// The query string as params: each value typed as the params schema declares the
/// field (integer, boolean), so `?since_seq=5` is the number 5; an array field takes
/// a comma-separated list (`?kind=message,tool`); a value that is not what the schema
/// says stays a string and fails the params check.
fn query_params(op: &OperationInfo, query: Option<&str>) -> Result<Map<String, Value>, HttpError> {
    let mut out = Map::new();
    let Some(query) = query.filter(|q| !q.is_empty()) else {
        return Ok(out);
    };
    let Query(pairs) = Query::<Vec<(String, String)>>::try_from_uri(
        &format!("/?{query}")
            .parse()
            .map_err(|_| ApiError::validation("the query string is malformed"))?,
    )
    .map_err(|_| ApiError::validation("the query string is malformed"))?;
    let types = query_types(op);
    for (k, v) in pairs {
        let typed = match types.get(k.as_str()).map(String::as_str) {
            Some("integer") => v.parse::<u64>().map(Value::from).ok(),
            Some("boolean") => v.parse::<bool>().map(Value::from).ok(),
            Some("array") => Some(Value::Array(
                v.split(',')
                    .filter(|s| !s.is_empty())
                    .map(|s| Value::String(s.to_string()))
                    .collect(),
            )),
            _ => None,
        };
        out.insert(k, typed.unwrap_or(Value::String(v)));
    }
    Ok(out)
}

/// The JSON type of each params field of `op`, computed once per operation.
fn query_types(op: &OperationInfo) -> &'static HashMap<String, String> {
    static TYPES: OnceLock<HashMap<&'static str, HashMap<String, String>>> = OnceLock::new();
    static NONE: OnceLock<HashMap<String, String>> = OnceLock::new();
    TYPES
        .get_or_init(|| {
            OPERATIONS
                .iter()
                .map(|op| {
                    let schema = (op.params_schema)();
                    let types = schema["properties"]
                        .as_object()
                        .map(|props| {
                            props
                                .iter()
                                .filter_map(|(k, v)| {
                                    Some((k.clone(), v["type"].as_str()?.to_string()))
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    (op.method, types)
                })
                .collect()
        })
        .get(op.method)
        .unwrap_or_else(|| NONE.get_or_init(HashMap::new))
}

/// `GET /v1/openapi.json`: the OpenAPI 3.1 document of the catalog, generated once.
async fn openapi() -> Json<Value> {
    static DOC: OnceLock<Value> = OnceLock::new();
    Json(DOC.get_or_init(r1_proto::openapi::document).clone())
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

async fn metrics_text(State(hub): State<Hub>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        hub.metrics_text(),
    )
        .into_response()
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
                        let e = ApiError::new(
                            r1_proto::ErrorCode::CrashRecovery,
                            format!("the journal cannot be read: {reason}"),
                        );
                        (final_word(&e.sse_error_data("")), true)
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
