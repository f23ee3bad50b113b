//! The MCP server over the catalog: an `rmcp` handler, served on stdio or as a
//! streamable HTTP tower service.

use std::borrow::Cow;
use std::sync::Arc;

use r1_proto::Api;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, Implementation, ListToolsResult,
    PaginatedRequestParams, ProtocolVersion, ServerCapabilities, ServerConfig, Tool,
    ToolAnnotations,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler, ServiceExt};

use r1_proto::{ApiError, ErrorCode, Links};

use std::path::PathBuf;

use crate::cli::{self, CliInvokeParams, CliRunner};
use crate::consent::Consent;
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
        }
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
        to_value(subscribe::run(self.api.as_ref(), params, &sink, &context.ct).await?)
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
        let mut capabilities = ServerCapabilities::builder().enable_tools().build();
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
            None => call_tool_result(self.api.as_ref(), self.caps, &request.name, args).await,
        };
        let result: CallToolResult = serde_json::from_value(result)
            .map_err(|e| ErrorData::internal_error(format!("tool result: {e}"), None))?;
        Ok(result.into())
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

/// The streamable HTTP MCP endpoint as a tower service.
pub type HttpService = StreamableHttpService<R1McpServer, NeverSessionManager>;

/// The catalog as a streamable HTTP endpoint, a tower service to mount with
/// `axum::Router::nest_service("/mcp", r1_mcp::http_service(api, caps))`.
///
/// It is stateless: every POST carries one JSON-RPC message and gets its answer as
/// `application/json`; no `Mcp-Session-Id` is issued and there is no GET stream, as no
/// tool sends notifications. The Host and Origin checks of rmcp are turned off because
/// the daemon's perimeter, in front of every route, owns them (with the token check);
/// mount this only behind that perimeter.
/// `caps` is asked on every request, so the daemon's `[mcp] caps` can change while it
/// runs (a config reload).
/// `opts` holds the daemon's state directory and binary.
pub fn http_service(
    api: Arc<dyn Api>,
    caps: Arc<dyn Fn() -> Caps + Send + Sync>,
    opts: ServerOptions,
) -> HttpService {
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_sse_keep_alive(None)
        .disable_allowed_hosts()
        .disable_allowed_origins();
    StreamableHttpService::new(
        move || Ok(R1McpServer::new(Arc::clone(&api), caps(), &opts, "http")),
        Arc::new(NeverSessionManager::default()),
        config,
    )
}
