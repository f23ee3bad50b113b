//! The MCP server over the catalog: an `rmcp` handler, served on stdio or as a
//! streamable HTTP tower service.

use std::borrow::Cow;
use std::sync::Arc;

use r1_proto::Api;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, CompleteRequestParams, CompleteResult,
    Implementation, ListResourceTemplatesResult, ListResourcesResult, ListToolsResult,
    PaginatedRequestParams, ProtocolVersion, ReadResourceRequestParams, ReadResourceResponse,
    ServerCapabilities, ServerConfig, SubscribeRequestParams, Tool, ToolAnnotations,
    UnsubscribeRequestParams,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler, ServiceExt};

use r1_proto::{ApiError, ErrorCode, Links};

use std::path::PathBuf;

use crate::cli::{self, CliInvokeParams, CliRunner};
use crate::consent::Consent;
use crate::logging::LogForward;
use crate::resources::{self, Watches};
use crate::subscribe;
use crate::{call_tool_result, catalog, Caps, McpError, ToolInfo};

/// The MCP protocol revision this server implements and advertises.
const PROTOCOL: ProtocolVersion = ProtocolVersion::V_2025_11_25;

/// What an agent reads on `initialize` before it looks at the tools.
const INSTRUCTIONS: &str = "r1 hosts AI agent sessions. Start one with r1_session_start \
(once: it is not idempotent), send it a message with r1_session_send (pass a \
client_message_id so a retry does not post twice), then call r1_bus_tail with \
since_seq = the send's seq + 1 and wait_ms to wait for the assistant's session.message \
record. Every result is an envelope: {ok: true, data, links} or {ok: false, error_code, \
error_message, links}.";

/// The r1 MCP server: the catalog over one [`Api`] with fixed capabilities. Cheap to
/// clone; the HTTP service makes one per request.
#[derive(Clone)]
pub struct R1McpServer {
    api: Arc<dyn Api>,
    caps: Caps,
    cli: Option<Arc<CliRunner>>,
    consent: Consent,
    watches: Watches,
    logs: LogForward,
    /// Shared by the clones of one connection's server; the last one to drop stops
    /// the connection's resource watchers.
    watches_alive: Arc<()>,
}

/// Where a server is and what it may run, beyond its [`Api`] and caps.
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    /// The state directory (`R1_HOME`): the consent line goes to `logs/consent.log`
    /// there, and `r1_cli_invoke`'s commands run on it.
    pub home: Option<PathBuf>,
    /// The r1 binary `r1_cli_invoke` runs; without it (or without `home`) the tool
    /// answers `conflict`.
    pub cli: Option<PathBuf>,
    /// Cancelled when the daemon stops: ends the HTTP endpoint's open streams.
    pub shutdown: tokio_util::sync::CancellationToken,
}

impl R1McpServer {
    /// A server for `api` that lists and allows what `caps` permits, for one
    /// connection over `transport` (`stdio` or `http`, as the consent line names it).
    pub fn new(
        api: Arc<dyn Api>,
        caps: Caps,
        opts: &ServerOptions,
        transport: &'static str,
    ) -> R1McpServer {
        let cli = match (&opts.cli, &opts.home) {
            (Some(exe), Some(home)) => Some(Arc::new(CliRunner {
                exe: exe.clone(),
                home: home.clone(),
            })),
            _ => None,
        };
        R1McpServer {
            api,
            caps,
            cli,
            consent: Consent::new(opts.home.clone(), transport),
            watches: Watches::default(),
            logs: LogForward::default(),
            watches_alive: Arc::new(()),
        }
    }

    /// This server sharing `consent`'s once-flag: the stateless HTTP requests, which
    /// have no connection of their own, count as one connection.
    fn with_consent(mut self, consent: Consent) -> R1McpServer {
        self.consent = consent;
        self
    }

    /// Writes the consent line if `name` is this connection's first mutating call.
    fn note_consent(&self, name: &str, context: &RequestContext<RoleServer>) {
        if name == subscribe::NAME || name == subscribe::ALIAS {
            return;
        }
        let mutating = if name == cli::NAME || name == cli::ALIAS {
            self.caps.allows(true)
        } else {
            crate::dispatch::allowed_mutation(self.caps, name)
        };
        if !mutating {
            return;
        }
        let (client, version) = match context.peer.peer_info() {
            Some(info) => (
                info.client_info.name.clone(),
                info.client_info.version.clone(),
            ),
            None => ("unknown".to_string(), "unknown".to_string()),
        };
        self.consent.first_mutation(&client, &version, name);
    }

    /// Calls a tool the server runs itself; `None` when `name` is not one.
    async fn call_local(
        &self,
        name: &str,
        args: serde_json::Value,
        context: &RequestContext<RoleServer>,
    ) -> Option<serde_json::Value> {
        let wire = if name == cli::NAME || name == cli::ALIAS {
            cli::NAME
        } else if name == subscribe::NAME || name == subscribe::ALIAS {
            subscribe::NAME
        } else {
            return None;
        };
        let links = Links {
            self_link: format!("/mcp/tools/{wire}"),
            related: Vec::new(),
            deprecations: Vec::new(),
        };
        let args = match args {
            serde_json::Value::Null => serde_json::json!({}),
            a => a,
        };
        let invalid = |e: serde_json::Error| {
            ApiError::validation(format!("invalid arguments for `{name}`: {e}"))
        };
        let result = if wire == cli::NAME {
            self.cli_invoke(name, args, invalid).await
        } else {
            self.lanes_subscribe(name, args, invalid, context).await
        };
        Some(match result {
            Ok(data) => {
                let env = serde_json::json!({"ok": true, "links": links, "data": data});
                serde_json::json!({
                    "content": [{"type": "text", "text": env.to_string()}],
                    "structuredContent": env,
                    "isError": false,
                })
            }
            Err(e) => e.mcp_tool_result(links),
        })
    }

    async fn cli_invoke(
        &self,
        name: &str,
        args: serde_json::Value,
        invalid: impl Fn(serde_json::Error) -> ApiError,
    ) -> Result<serde_json::Value, ApiError> {
        if !self.caps.allows(true) {
            return Err(ApiError::new(
                ErrorCode::PermissionDenied,
                format!(
                    "`{name}` runs commands, and this server runs with read-only \
                     capabilities; start it with `r1 mcp serve --caps write` to allow it"
                ),
            ));
        }
        let params: CliInvokeParams = serde_json::from_value(args).map_err(invalid)?;
        let runner = self.cli.as_ref().ok_or_else(|| {
            ApiError::conflict(
                "this MCP server has no r1 binary to run (an embedded daemon); \
                 use `r1 mcp serve` or the `/mcp` endpoint of `r1 serve`",
            )
        })?;
        to_value(runner.invoke(params).await?)
    }

    async fn lanes_subscribe(
        &self,
        name: &str,
        args: serde_json::Value,
        invalid: impl Fn(serde_json::Error) -> ApiError,
        context: &RequestContext<RoleServer>,
    ) -> Result<serde_json::Value, ApiError> {
        let params: subscribe::LanesSubscribeParams =
            serde_json::from_value(args).map_err(invalid)?;
        let Some(token) = context.meta.get_progress_token() else {
            return Err(ApiError::validation(format!(
                "`{name}` streams lane events as progress notifications: call it with \
                 `_meta.progressToken` (MCP SDKs set it when you pass a progress handler)"
            )));
        };
        let sink = Progress {
            peer: context.peer.clone(),
            token,
        };
        let result = subscribe::run(self.api.as_ref(), params, &sink, &context.ct).await?;
        // The notifications are queued to the peer; the service writes them and the
        // call's result from separate queues, and a client drops a progress
        // notification that arrives after its call's result (the handler is gone). A
        // moment for the queue to drain keeps the last notification ahead of the result.
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        to_value(result)
    }
}

fn to_value(v: impl serde::Serialize) -> Result<serde_json::Value, ApiError> {
    serde_json::to_value(v)
        .map_err(|e| ApiError::internal(format!("cannot encode the result: {e}")))
}

/// The progress notifications of one `r1_lanes_subscribe` call.
struct Progress {
    peer: rmcp::Peer<RoleServer>,
    token: rmcp::model::ProgressToken,
}

impl subscribe::ProgressSink for Progress {
    async fn send(&self, n: u64, message: String) -> Result<(), String> {
        #[allow(clippy::cast_precision_loss)]
        // `n` counts notifications: far below 2^53, so exact as f64.
        let mut param = rmcp::model::ProgressNotificationParam::new(self.token.clone(), n as f64);
        param.message = Some(message);
        self.peer
            .notify_progress(param)
            .await
            .map_err(|e| e.to_string())
    }
}

fn to_rmcp_tool(info: ToolInfo) -> Tool {
    let annotations = ToolAnnotations::with_title(info.title)
        .read_only(info.hints.read_only)
        .idempotent(info.hints.idempotent)
        .destructive(info.hints.destructive)
        .open_world(false);
    Tool::new(info.name, info.description, Arc::new(info.input_schema))
        .with_raw_output_schema(Arc::new(info.output_schema))
        .with_title(info.title)
        .with_annotations(annotations)
}

impl ServerHandler for R1McpServer {
    fn get_info(&self) -> ServerConfig {
        let mut implementation = Implementation::new("r1", env!("CARGO_PKG_VERSION"));
        implementation.title = Some("r1 agent sessions".into());
        // Logging is part of revision 2025-11-25; rmcp marks it deprecated for a later one.
        #[allow(deprecated)]
        let mut capabilities = ServerCapabilities::builder()
            .enable_tools()
            .enable_resources()
            .enable_resources_subscribe()
            .enable_logging()
            .enable_completions()
            .build();
        // The caps this connection has, for clients that read capabilities rather
        // than instructions: `{"r1/caps": {"level": "read" | "write" | "debug"}}`.
        let mut level = serde_json::Map::new();
        level.insert("level".into(), self.caps.as_str().into());
        capabilities.experimental = Some([("r1/caps".to_string(), level)].into_iter().collect());
        ServerConfig::new(capabilities)
            .with_server_info(implementation)
            .with_protocol_version(PROTOCOL)
            .with_instructions(format!(
                "{INSTRUCTIONS} This server runs with --caps {}: {}",
                self.caps.as_str(),
                match self.caps {
                    Caps::Read => "only the tools that change nothing are listed.",
                    Caps::Write => "every tool but the introspection ones is listed.",
                    Caps::Debug => {
                        "every tool is listed, including the introspection tools \
                         (r1_session_debug_state)."
                    }
                }
            ))
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        // The revisions with an `initialize` handshake, up to the one implemented here;
        // later ones (per-request metadata instead of a handshake) are not.
        Cow::Borrowed(ProtocolVersion::known_up_to(&PROTOCOL))
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let tools = catalog(self.caps).into_iter().map(to_rmcp_tool).collect();
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        self.note_consent(&request.name, &context);
        let args = request
            .arguments
            .map(serde_json::Value::Object)
            .unwrap_or(serde_json::Value::Null);
        // A failed call is still a tool result (`isError`), not a protocol error, so the
        // agent reads the envelope and its error code.
        let result = match self.call_local(&request.name, args.clone(), &context).await {
            Some(result) => result,
            None => {
                call_tool_result(self.api.as_ref(), self.caps, &request.name, args.clone()).await
            }
        };
        if result["isError"] != true {
            for id in crate::logging::sessions_of(&args, &result) {
                self.logs.note_session(&id);
            }
        }
        let result: CallToolResult = serde_json::from_value(result)
            .map_err(|e| ErrorData::internal_error(format!("tool result: {e}"), None))?;
        Ok(result.into())
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        resources::list()
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        resources::templates()
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        Ok(resources::read(self.api.as_ref(), &request.uri)
            .await?
            .into())
    }

    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.watches
            .subscribe(Arc::clone(&self.api), context.peer.clone(), request.uri)
            .await
    }

    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.watches.unsubscribe(&request.uri);
        Ok(())
    }

    #[allow(deprecated)]
    async fn set_level(
        &self,
        request: rmcp::model::SetLevelRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.logs
            .set_level(Arc::clone(&self.api), context.peer.clone(), request.level);
        Ok(())
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, ErrorData> {
        resources::complete(self.api.as_ref(), request).await
    }
}

impl Drop for R1McpServer {
    fn drop(&mut self) {
        // The last handle of a connection's server: its watchers have no one to tell.
        if Arc::strong_count(&self.watches_alive) == 1 {
            self.watches.stop_all();
        }
    }
}

/// Serves the catalog over stdin/stdout until the client closes stdin. Nothing but
/// MCP messages is written to stdout; diagnostics go through `tracing`.
pub async fn serve_stdio(server: R1McpServer) -> Result<(), McpError> {
    let running = server
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| McpError::Initialize(e.to_string()))?;
    running
        .waiting()
        .await
        .map_err(|e| McpError::Transport(e.to_string()))?;
    Ok(())
}

/// The most sessions (`initialize` over HTTP) the endpoint holds at once; an idle one
/// is closed after [`SESSION_IDLE`], so a client that vanished frees its slot.
pub const MAX_HTTP_SESSIONS: usize = 64;
/// How long an HTTP MCP session may go without a request or an open stream.
pub const SESSION_IDLE: std::time::Duration = std::time::Duration::from_secs(300);
/// The largest POST body the endpoint reads (the daemon's perimeter may allow less).
pub const MAX_HTTP_BODY: usize = 4 * 1024 * 1024;

type HttpResponse =
    http::Response<http_body_util::combinators::BoxBody<bytes::Bytes, std::convert::Infallible>>;

/// The streamable HTTP MCP endpoint as a tower service: sessions for the clients that
/// `initialize` (with the GET stream of server-initiated notifications), stateless
/// answers for those that just POST a call.
#[derive(Clone)]
pub struct HttpService {
    stateful: StreamableHttpService<R1McpServer, LocalSessionManager>,
    stateless: StreamableHttpService<R1McpServer, NeverSessionManager>,
    sessions: Arc<LocalSessionManager>,
}

/// The streamable HTTP endpoint, a tower service to mount with
/// `axum::Router::nest_service("/mcp", r1_mcp::http_service(api, caps, opts))`.
///
/// A POST of `initialize` opens a session (`Mcp-Session-Id`, at most
/// [`MAX_HTTP_SESSIONS`], each closed after [`SESSION_IDLE`] idle): its requests carry
/// the id, a GET with it opens the stream of server-initiated notifications (resource
/// updates, log messages), and DELETE ends it. A POST without a session id that is not
/// `initialize` is answered statelessly (`application/json`, or an SSE stream when the
/// call sends progress notifications first), as before sessions existed. The Host and
/// Origin checks of rmcp are off because the daemon's perimeter, in front of every
/// route, owns them (with the token check); mount this only behind that perimeter.
/// `caps` is asked when a session starts and on every stateless request, so the
/// daemon's `[mcp] caps` can change while it runs (a config reload); `opts` holds the
/// daemon's state directory, binary and shutdown token (which ends every stream).
pub fn http_service(
    api: Arc<dyn Api>,
    caps: Arc<dyn Fn() -> Caps + Send + Sync>,
    opts: ServerOptions,
) -> HttpService {
    let base = StreamableHttpServerConfig::default()
        .with_max_request_body_bytes(MAX_HTTP_BODY)
        .with_cancellation_token(opts.shutdown.child_token())
        .disable_allowed_hosts()
        .disable_allowed_origins();
    let stateless_config = base
        .clone()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_sse_keep_alive(None);
    // No retry/priming events: streams are not resumable (no event store), and a
    // client should see the answer as the first `data:` line.
    let stateful_config = base
        .with_sse_retry(None)
        .with_legacy_session_mode(true)
        .with_sse_keep_alive(Some(std::time::Duration::from_secs(15)));
    let mut manager = LocalSessionManager::default();
    manager.session_config.keep_alive = Some(SESSION_IDLE);
    manager.session_config.sse_retry = None;
    let sessions = Arc::new(manager);
    // Stateless requests have no connection: together they count as one for consent.
    let stateless_consent = Consent::new(opts.home.clone(), "http");
    let (api2, caps2, opts2) = (Arc::clone(&api), Arc::clone(&caps), opts.clone());
    HttpService {
        stateful: StreamableHttpService::new(
            move || Ok(R1McpServer::new(Arc::clone(&api), caps(), &opts, "http")),
            Arc::clone(&sessions),
            stateful_config,
        ),
        stateless: StreamableHttpService::new(
            move || {
                Ok(R1McpServer::new(Arc::clone(&api2), caps2(), &opts2, "http")
                    .with_consent(stateless_consent.clone()))
            },
            Arc::new(NeverSessionManager::default()),
            stateless_config,
        ),
        sessions,
    }
}

/// A plain-text HTTP answer.
fn plain(status: http::StatusCode, text: &'static str) -> HttpResponse {
    use http_body_util::BodyExt;
    let body = http_body_util::Full::new(bytes::Bytes::from_static(text.as_bytes()))
        .map_err(|never| match never {})
        .boxed();
    let mut r = http::Response::new(body);
    *r.status_mut() = status;
    r
}

impl HttpService {
    async fn route<B>(self, req: http::Request<B>) -> HttpResponse
    where
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: std::fmt::Display,
    {
        use bytes::{Buf, BufMut};
        use http_body_util::BodyExt;
        if req.method() != http::Method::POST {
            return self.stateful.handle(req).await;
        }
        let has_session = req.headers().contains_key("mcp-session-id");
        let (parts, body) = req.into_parts();
        let mut body = std::pin::pin!(body);
        let mut buf = bytes::BytesMut::new();
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else {
                return plain(
                    http::StatusCode::BAD_REQUEST,
                    "Bad Request: the body could not be read",
                );
            };
            if let Ok(data) = frame.into_data() {
                if buf.len() + data.remaining() > MAX_HTTP_BODY {
                    return plain(http::StatusCode::PAYLOAD_TOO_LARGE, "Payload Too Large");
                }
                buf.put(data);
            }
        }
        let bytes = buf.freeze();
        let req = http::Request::from_parts(parts, http_body_util::Full::new(bytes.clone()));
        if has_session {
            return self.stateful.handle(req).await;
        }
        #[derive(serde::Deserialize)]
        struct Probe {
            method: Option<String>,
        }
        let initialize = serde_json::from_slice::<Probe>(&bytes)
            .ok()
            .and_then(|p| p.method)
            .is_some_and(|m| m == "initialize");
        if !initialize {
            return self.stateless.handle(req).await;
        }
        if self.sessions.sessions.read().await.len() >= MAX_HTTP_SESSIONS {
            return plain(
                http::StatusCode::SERVICE_UNAVAILABLE,
                "Service Unavailable: too many MCP sessions; end one (DELETE /mcp) or wait for an idle one to close",
            );
        }
        self.stateful.handle(req).await
    }
}

impl<B> tower::Service<http::Request<B>> for HttpService
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: std::fmt::Display,
{
    type Response = HttpResponse;
    type Error = std::convert::Infallible;
    type Future = std::pin::Pin<
        Box<
            dyn std::future::Future<Output = Result<HttpResponse, std::convert::Infallible>> + Send,
        >,
    >;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { Ok(this.route(req).await) })
    }
}
