//! The TCP perimeter (DESIGN §4), applied before routing to every request that
//! arrives on the loopback port: Host pin, Origin check, CORS preflight, credential.
//! CORS is decided here by hand rather than by a generic CORS layer because the same
//! origin decision also gates WebSocket upgrades and non-preflighted requests.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use r1_proto::{ApiError, ErrorCode, WS_BEARER_SUBPROTOCOL};
use tokio_util::sync::CancellationToken;

use crate::error::envelope_response;
use crate::Hub;

/// The perimeter's settings for one TCP listener.
#[derive(Clone)]
pub struct Perimeter {
    hub: Hub,
    hosts: Arc<[String; 3]>,
    own_origins: Arc<[String; 3]>,
}

impl Perimeter {
    /// The perimeter of a listener on `127.0.0.1:port`.
    pub fn new(hub: Hub, port: u16) -> Perimeter {
        Perimeter {
            hub,
            hosts: Arc::new([
                format!("127.0.0.1:{port}"),
                format!("localhost:{port}"),
                format!("[::1]:{port}"),
            ]),
            own_origins: Arc::new([
                format!("http://127.0.0.1:{port}"),
                format!("http://localhost:{port}"),
                format!("http://[::1]:{port}"),
            ]),
        }
    }

    fn host_ok(&self, headers: &HeaderMap) -> bool {
        let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
            return false;
        };
        self.hosts.iter().any(|h| h.eq_ignore_ascii_case(host))
    }

    fn is_own_origin(&self, origin: &str) -> bool {
        self.own_origins
            .iter()
            .any(|o| o.eq_ignore_ascii_case(origin))
    }

    /// Whether `origin` is in `[perimeter] allowed_origins` as the config is now: a
    /// reload that adds an origin lets its next request in.
    fn is_allowlisted(&self, origin: &str) -> bool {
        self.hub
            .config()
            .perimeter
            .allowed_origins
            .iter()
            .any(|o| o == origin)
    }
}

/// Routes whose GET may carry the credential as `?token=` (event streams, for
/// `EventSource`, which cannot set headers).
fn is_stream_route(path: &str) -> bool {
    path == "/v1/events" || (path.starts_with("/v1/sessions/") && path.ends_with("/events"))
}

/// Whether a path needs the credential: everything but the static UI assets.
fn needs_auth(path: &str) -> bool {
    // The login exchange is how a browser gets the token; its single-use code is the
    // credential there.
    if path == "/v1/auth/exchange" {
        return false;
    }
    // An agent CLI's permission endpoint takes its turn's permit secret, never the
    // daemon's token, which agents must not have (`permission.rs`).
    if path.starts_with(crate::permission::PREFIX) {
        return false;
    }
    path.starts_with("/v1/") || path == "/v1" || path.starts_with("/mcp")
}

fn deny(p: &Perimeter, reason: &'static str, err: ApiError, path: &str) -> Response {
    p.hub.metrics().reject(reason);
    tracing::debug!(reason, %path, "perimeter refused a request");
    envelope_response(&err, path)
}

/// The token offered by a WebSocket client as `r1.bearer, <token>` subprotocols.
pub fn ws_subprotocol_token(headers: &HeaderMap) -> Option<String> {
    let offered: Vec<String> = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|s| s.trim().to_string()))
        .collect();
    let i = offered.iter().position(|p| p == WS_BEARER_SUBPROTOCOL)?;
    offered.get(i + 1).cloned()
}

fn query_token(query: Option<&str>) -> Option<String> {
    query?
        .split('&')
        .find_map(|kv| kv.strip_prefix("token="))
        .map(str::to_string)
}

/// Why a request's framing is refused before any other check: the parts an attacker
/// controls must each appear once and agree with one another.
fn strict_framing(p: &Perimeter, req: &Request) -> Option<(&'static str, ApiError)> {
    let headers = req.headers();
    if headers.get_all(header::HOST).iter().count() > 1 {
        return Some(("host", ApiError::validation("more than one Host header")));
    }
    // An absolute-form request line (`GET http://evil.example/v1/health`) names its own
    // authority; it must be the daemon's, like the Host header.
    if let Some(authority) = req.uri().authority() {
        if !p
            .hosts
            .iter()
            .any(|h| h.eq_ignore_ascii_case(authority.as_str()))
        {
            return Some((
                "host",
                ApiError::validation("the request URI names another authority"),
            ));
        }
    }
    if headers.get_all(header::ORIGIN).iter().count() > 1 {
        return Some((
            "origin",
            ApiError::new(ErrorCode::PermissionDenied, "more than one Origin header"),
        ));
    }
    if headers.get_all(header::AUTHORIZATION).iter().count() > 1 {
        return Some((
            "token",
            ApiError::new(
                ErrorCode::PermissionDenied,
                "more than one Authorization header",
            )
            .with_status(401),
        ));
    }
    None
}

/// The credential a request offers. An `Authorization` header that is present decides
/// alone: when it is not `Bearer <token>` in plain ASCII, the answer is no credential,
/// whatever `?token=` or the WebSocket subprotocols say.
fn offered_token(req: &Request, path: &str) -> Option<String> {
    let headers = req.headers();
    if let Some(h) = headers.get(header::AUTHORIZATION) {
        let value = h.to_str().ok()?;
        let (scheme, token) = value.split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        return Some(token.trim().to_string());
    }
    if path == "/v1/ws" {
        return ws_subprotocol_token(headers);
    }
    if req.method() == Method::GET && is_stream_route(path) {
        return query_token(req.uri().query());
    }
    None
}

/// The lifetime of the daemon's current token when the request offers it (compared in
/// constant time); `None` when it offers no credential or another one.
fn credential(hub: &Hub, req: &Request, path: &str) -> Option<CancellationToken> {
    offered_token(req, path)
        .filter(|t| !t.is_empty())
        .and_then(|t| hub.token().check(t.as_bytes()))
}

/// What a request that passed the token check carries (a request extension): the
/// lifetime of the token it offered, cancelled when `r1 ctl rotate-token` replaces
/// that token. Whatever the request keeps open ends with it: the WebSocket closes
/// with 4001 (`ws.rs`), an event stream's body ends ([`held_by_token`]).
#[derive(Debug, Clone)]
pub struct Credential {
    /// Cancelled when the token this request offered is rotated away.
    pub revoked: CancellationToken,
}

fn token_rotated() -> ApiError {
    ApiError::new(
        ErrorCode::PermissionDenied,
        "the daemon's token was rotated: reconnect with the new token (see $R1_HOME/token)",
    )
    .with_status(401)
}

/// Runs a request that passed the token check for as long as its token is in force.
/// A rotation ends what the request still holds open: a read (GET) still waiting
/// for its answer (a long poll) is answered 401, and an event stream (SSE, on `/v1`
/// and `/mcp`) ends, after an `event: error` frame on r1's own streams. A request
/// that changes something runs to its end: it was authorized when it started. The
/// WebSocket upgrade reads [`Credential`] and closes the socket itself.
async fn held_by_token(
    revoked: CancellationToken,
    mut req: Request,
    next: Next,
    path: &str,
) -> Response {
    req.extensions_mut().insert(Credential {
        revoked: revoked.clone(),
    });
    let resp = if req.method() == Method::GET {
        tokio::select! {
            biased;
            resp = next.run(req) => resp,
            () = revoked.cancelled() => {
                let mut resp = envelope_response(&token_rotated(), path);
                resp.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
                return resp;
            }
        }
    } else {
        next.run(req).await
    };
    let streaming = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if !streaming {
        return resp;
    }
    use futures_util::StreamExt;
    // MCP clients read only MCP messages on their streams; r1's own streams say why
    // they end, as they do for a reader dropped as too slow.
    let last = (!path.starts_with("/mcp")).then(|| {
        bytes::Bytes::from(format!(
            "event: error\ndata: {}\n\n",
            token_rotated().sse_error_data("")
        ))
    });
    let (parts, body) = resp.into_parts();
    let gone = revoked.clone();
    let data = body
        .into_data_stream()
        .take_until(revoked.cancelled_owned());
    let end = futures_util::stream::once(async move {
        last.filter(|_| gone.is_cancelled())
            .map(Ok::<_, axum::Error>)
    })
    .filter_map(std::future::ready);
    Response::from_parts(parts, axum::body::Body::from_stream(data.chain(end)))
}

fn missing_credential() -> ApiError {
    ApiError::new(
        ErrorCode::PermissionDenied,
        "missing or invalid credential: send Authorization: Bearer <token> (see $R1_HOME/token)",
    )
    .with_status(401)
}

/// The credential check of the unix socket. The peer's uid was checked on accept, but
/// uid alone is not enough: an agent's command runs as the user too, and under the
/// Landlock sandbox it cannot read the token, so it must not be able to drive the
/// daemon through the socket either. The CLI reads the token file like any client.
///
/// The handshake is the one exception: it is the clients' protocol probe, and says
/// nothing a local process could abuse (protocol, version, daemon id, pid).
pub async fn unix_credential(State(hub): State<Hub>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    if path == "/v1/handshake" || !needs_auth(&path) {
        return next.run(req).await;
    }
    let Some(revoked) = credential(&hub, &req, &path) else {
        hub.metrics().reject("token");
        let mut resp = envelope_response(&missing_credential(), &path);
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return resp;
    };
    held_by_token(revoked, req, next, &path).await
}

/// The perimeter middleware for the TCP listener. Every refusal also asks hyper to
/// close the connection, so a peer that fails the perimeter holds no keep-alive slot.
pub async fn enforce(State(p): State<Perimeter>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let mut resp = check(&p, req, next, &path).await;
    if resp.extensions().get::<Refused>().is_some() {
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

/// Marks a response as the perimeter's own refusal (not a handler's 403).
#[derive(Clone, Copy)]
struct Refused;

fn refuse(p: &Perimeter, reason: &'static str, err: ApiError, path: &str) -> Response {
    let mut resp = deny(p, reason, err, path);
    resp.extensions_mut().insert(Refused);
    resp
}

async fn check(p: &Perimeter, req: Request, next: Next, path: &str) -> Response {
    if let Some((reason, err)) = strict_framing(p, &req) {
        return refuse(p, reason, err, path);
    }
    let headers = req.headers();
    if !p.host_ok(headers) {
        return refuse(
            p,
            "host",
            ApiError::new(
                ErrorCode::PermissionDenied,
                "Host header not allowed: use 127.0.0.1, localhost or [::1] with the daemon's port",
            ),
            path,
        );
    }
    let origin = headers
        .get(header::ORIGIN)
        .map(|o| o.to_str().unwrap_or("").to_string());
    let mut cors_origin = None;
    if let Some(o) = &origin {
        if p.is_allowlisted(o) {
            cors_origin = Some(o.clone());
        } else if !p.is_own_origin(o) {
            return refuse(
                p,
                "origin",
                ApiError::new(ErrorCode::PermissionDenied, "Origin not allowed"),
                path,
            );
        }
    }
    if req.method() == Method::OPTIONS {
        return preflight(p, cors_origin.as_deref(), path);
    }
    let mut resp = if needs_auth(path) {
        let Some(revoked) = credential(&p.hub, &req, path) else {
            return refuse(p, "token", missing_credential(), path);
        };
        held_by_token(revoked, req, next, path).await
    } else {
        next.run(req).await
    };
    if let Some(o) = cors_origin {
        if let Ok(v) = HeaderValue::from_str(&o) {
            let h = resp.headers_mut();
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
            h.append(header::VARY, HeaderValue::from_static("Origin"));
        }
    }
    resp
}

/// Answers a CORS preflight: allow headers only for an allowlisted origin.
fn preflight(p: &Perimeter, origin: Option<&str>, path: &str) -> Response {
    let Some(origin) = origin else {
        return refuse(
            p,
            "preflight",
            ApiError::new(
                ErrorCode::PermissionDenied,
                "CORS preflight from an origin that is not allowlisted",
            ),
            path,
        );
    };
    let mut resp = StatusCode::NO_CONTENT.into_response();
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(origin) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
    }
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, PUT, PATCH, DELETE"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("authorization, content-type, last-event-id, idempotency-key"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    h.insert(header::VARY, HeaderValue::from_static("Origin"));
    resp
}

/// Whether a request carries no body at all: no `Transfer-Encoding` and a
/// `Content-Length` that is absent or zero.
fn is_bodiless(req: &Request) -> bool {
    let h = req.headers();
    if h.contains_key(header::TRANSFER_ENCODING) {
        return false;
    }
    match h.get(header::CONTENT_LENGTH) {
        None => true,
        Some(v) => v.to_str().ok().and_then(|v| v.trim().parse::<u64>().ok()) == Some(0),
    }
}

/// Middleware on every listener: what a state-changing request may look like.
///
/// - A POST, PUT, PATCH or DELETE without a body is accepted (`curl -X DELETE`,
///   `curl -X POST …/pause`): on TCP it still needs the bearer header, which no
///   cross-site page can send without a preflight that only allowlisted origins pass.
/// - A body must be JSON. It may be labelled `application/json`, or curl's default
///   `application/x-www-form-urlencoded` (`curl -d '{…}'`): the label is not what
///   protects r1, the bearer is. The one exception is `/v1/auth/exchange`, the only
///   route without a bearer, which takes `application/json` alone, so that no HTML form
///   anywhere can post to it. Anything else is 415. SECURITY.md has the reasoning.
/// - Bodies are capped at `[limits] max_request_bytes` on every route, `/mcp` included:
///   a declared length over it is 413 before anything is read, and a chunked body is
///   cut off at the limit.
pub async fn request_body_rules(State(hub): State<Hub>, req: Request, next: Next) -> Response {
    let limit = hub.config().limits.max_request_bytes;
    let path = req.uri().path().to_string();
    let mutating = matches!(
        *req.method(),
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    );
    if mutating && !is_bodiless(&req) {
        let ct = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let essence = ct.split(';').next().unwrap_or("").trim();
        let json = essence.eq_ignore_ascii_case("application/json");
        let curl_form = essence.eq_ignore_ascii_case("application/x-www-form-urlencoded")
            && path != "/v1/auth/exchange";
        if !json && !curl_form {
            let err = ApiError::validation(
                "a request body must be JSON, sent with Content-Type: application/json",
            )
            .with_status(415);
            return envelope_response(&err, &path);
        }
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        let err = ApiError::validation(format!(
            "request body is larger than the limit of {limit} bytes ([limits] max_request_bytes)"
        ))
        .with_status(413);
        return envelope_response(&err, &path);
    }
    let (parts, body) = req.into_parts();
    let body = axum::body::Body::new(http_body_util::Limited::new(body, limit));
    next.run(Request::from_parts(parts, body)).await
}

/// Middleware on every listener: the security headers on every response.
pub async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}
