//! MCP servers as tools inside a session: the `[[mcp_servers]]` of `daemon.toml`, started
//! lazily on first use, their tools offered to the model as `<server>__<tool>`, shut down
//! with the session.
//!
//! Each server is reached with the client side of `rmcp`. A stdio server is a child
//! process this module spawns itself (rather than through rmcp's child-process transport)
//! so that it owns the process group: the server and everything it starts are killed
//! together on shutdown, on drop, and when the start times out. Nothing here waits past a
//! server's `timeout_s`: a server that does not start, does not answer or fails becomes a
//! tool error the model can read, never a stuck session.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::future::join_all;
use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig, ContentBlock,
    Implementation, ProtocolVersion, ResourceContents, Tool,
};
use rmcp::service::{ClientInitializeError, RunningService};
use rmcp::transport::streamable_http_client::{
    StreamableHttpClientTransportConfig, StreamableHttpError,
};
use rmcp::transport::{DynamicTransportError, StreamableHttpClientTransport};
use rmcp::{Peer, RoleClient, ServiceError, ServiceExt};

use crate::process::{is_secret_name, kill_group};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, Command};
use tokio::sync::{OnceCell, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::{ToolCall, ToolResult, ToolSpec};

/// Separates the server name from the tool name in the names the model sees.
const SEPARATOR: &str = "__";

/// The longest server name: short enough that `<server>__<tool>` leaves room for the
/// tool's own name within the 64 characters providers accept.
const MAX_SERVER_NAME: usize = 32;

/// The longest tool name OpenAI and Anthropic accept (`^[a-zA-Z0-9_-]{1,64}$`).
const MAX_TOOL_NAME: usize = 64;

/// How much of a result is handed to the model. A tool that returns more (a whole file,
/// a big JSON document) is cut here rather than filling the context window.
const MAX_RESULT_BYTES: usize = 100 * 1024;

/// How much of a stdio server's stderr is kept, to explain why it failed to start.
const STDERR_TAIL_BYTES: usize = 2 * 1024;

/// How long shutdown waits for a server to close its MCP session and for its process to
/// be reaped once killed. Both are normally instant; the bound keeps a wedged server from
/// delaying the end of a session.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// How long a failed start waits for the last of the server's stderr to be read, so the
/// error can quote it.
const STDERR_DRAIN: Duration = Duration::from_millis(200);
/// How long a failure report waits for a closing server's exit status.
const EXIT_STATUS_WAIT: Duration = Duration::from_millis(500);

fn default_timeout_s() -> u64 {
    30
}

fn default_max_concurrent() -> usize {
    4
}

/// How r1 talks to an MCP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum McpTransport {
    /// A local process speaking newline-delimited JSON-RPC on its stdin and stdout.
    Stdio,
    /// A remote (or local) server speaking MCP's streamable HTTP transport.
    Http,
}

/// Whether a session's policy may let an MCP server's tools run without asking.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum McpTrust {
    /// Its tools follow the session's policy like the built-in ones (default `ask`; a
    /// policy of `allow` runs them without asking).
    Trusted,
    /// Its tools always wait for an approval, whatever the session's policy says
    /// (`allow` is read as `ask`; `deny` still denies). The default: a server's tools
    /// and their descriptions come from outside r1.
    #[default]
    Untrusted,
}

/// One `[[mcp_servers]]` table of `daemon.toml`: an MCP server whose tools the sessions
/// may call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpServerConfig {
    /// The server's name, the prefix of its tools' names (`<name>__<tool>`); matches
    /// `^[a-zA-Z0-9_-]{1,32}$`, without `__` and not ending in `_`.
    pub name: String,
    /// How the server is reached.
    pub transport: McpTransport,
    /// For stdio: the program to run, found on `PATH` when it has no `/`.
    #[serde(default)]
    pub command: Option<String>,
    /// For stdio: the program's arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// For http: the endpoint; `https://` unless the host is loopback.
    #[serde(default)]
    pub url: Option<String>,
    /// For http: the name of an environment variable of the daemon holding a bearer
    /// token, sent as `Authorization: Bearer <token>`.
    #[serde(default)]
    pub auth_env: Option<String>,
    /// Seconds the server may take to start, and then to answer each call.
    #[serde(default = "default_timeout_s", alias = "timeout")]
    pub timeout_s: u64,
    /// How many calls one session may have running on this server at once; more wait
    /// (within the timeout) for one to finish.
    #[serde(default = "default_max_concurrent")]
    pub max_concurrent: usize,
    /// `untrusted` (default): every call of its tools waits for an approval, even
    /// under a policy that allows them; `trusted`: the session's policy decides.
    #[serde(default)]
    pub trust: McpTrust,
}

impl McpServerConfig {
    /// Checks the table on its own: the name, the fields its transport needs (and none of
    /// the other's), a URL that is `https://` unless loopback, and positive limits.
    pub fn validate(&self) -> Result<(), String> {
        let name = &self.name;
        let name_ok = !name.is_empty()
            && name.len() <= MAX_SERVER_NAME
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !name_ok {
            return Err(format!(
                "MCP server name `{name}` must be 1 to {MAX_SERVER_NAME} letters, digits, `_` or `-`"
            ));
        }
        // `<server>__<tool>` is split at the first `__`: a name with `__` in it, or ending
        // in `_`, would make that split ambiguous.
        if name.contains(SEPARATOR) || name.ends_with('_') {
            return Err(format!(
                "MCP server name `{name}` must not contain `__` nor end in `_` \
                 (its tools are named `{name}__<tool>`)"
            ));
        }
        if self.timeout_s == 0 {
            return Err(format!("MCP server `{name}`: timeout_s must be at least 1"));
        }
        if self.max_concurrent == 0 {
            return Err(format!(
                "MCP server `{name}`: max_concurrent must be at least 1"
            ));
        }
        match self.transport {
            McpTransport::Stdio => {
                match self.command.as_deref() {
                    Some(command) if !command.trim().is_empty() => {}
                    _ => {
                        return Err(format!(
                            "MCP server `{name}`: a stdio server needs a `command`"
                        ))
                    }
                }
                if self.url.is_some() || self.auth_env.is_some() {
                    return Err(format!(
                        "MCP server `{name}`: `url` and `auth_env` are for http servers, \
                         not stdio ones"
                    ));
                }
            }
            McpTransport::Http => {
                let Some(url) = self.url.as_deref() else {
                    return Err(format!("MCP server `{name}`: an http server needs a `url`"));
                };
                check_url(url).map_err(|why| format!("MCP server `{name}`: {why}"))?;
                if self.command.is_some() || !self.args.is_empty() {
                    return Err(format!(
                        "MCP server `{name}`: `command` and `args` are for stdio servers, \
                         not http ones"
                    ));
                }
                if let Some(var) = self.auth_env.as_deref() {
                    if var.is_empty() || var.contains(['=', '\0']) {
                        return Err(format!(
                            "MCP server `{name}`: auth_env `{var}` is not an environment \
                             variable name"
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_s)
    }
}

/// Checks every table and that no two servers share a name: what the daemon runs on
/// `daemon.toml` before accepting it.
pub fn validate_mcp_servers(configs: &[McpServerConfig]) -> Result<(), String> {
    let mut seen = HashSet::new();
    for config in configs {
        config.validate()?;
        if !seen.insert(config.name.as_str()) {
            return Err(format!("two MCP servers are named `{}`", config.name));
        }
    }
    Ok(())
}

/// `https://` anywhere; `http://` only to a loopback host, where nothing crosses the
/// network and a bearer token cannot be read on the way.
fn check_url(url: &str) -> Result<(), String> {
    let parsed =
        reqwest::Url::parse(url).map_err(|e| format!("url `{url}` is not a valid URL: {e}"))?;
    match parsed.scheme() {
        "https" => Ok(()),
        "http" => {
            // An IPv6 host comes bracketed (`[::1]`).
            let host = parsed.host_str().unwrap_or_default();
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let loopback = host.eq_ignore_ascii_case("localhost")
                || host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            if loopback {
                Ok(())
            } else {
                Err(format!(
                    "url `{url}` must use https:// (plain http is allowed only to a loopback host)"
                ))
            }
        }
        other => Err(format!(
            "url `{url}` must be https:// (or http:// to loopback), not {other}://"
        )),
    }
}

/// The MCP servers of one session: each started on first use, shut down with the session
/// ([`McpPool::shutdown`], or at the latest when the pool is dropped).
pub struct McpPool {
    servers: Vec<Server>,
    /// Tables refused by [`McpServerConfig::validate`] or repeating a name; reported by
    /// [`McpPool::tools`].
    config_errors: Vec<String>,
    workdir: PathBuf,
    /// Cancelled by shutdown: stops starts and calls in flight and refuses new ones.
    closed: CancellationToken,
}

impl std::fmt::Debug for McpPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpPool")
            .field(
                "servers",
                &self
                    .servers
                    .iter()
                    .map(|s| s.config.name.as_str())
                    .collect::<Vec<_>>(),
            )
            .field("workdir", &self.workdir)
            .finish_non_exhaustive()
    }
}

/// One configured server and, once started, its connection.
struct Server {
    config: McpServerConfig,
    /// At most `max_concurrent` calls at once.
    permits: Semaphore,
    /// Set by the first start, success or failure: a server that failed to start is not
    /// retried in this session, so each later call fails at once with the same reason
    /// instead of waiting out another timeout.
    connection: OnceCell<Result<Arc<Connection>, String>>,
}

impl McpPool {
    /// A pool for one session whose workdir is `workdir` (the current directory of the
    /// stdio servers). Nothing starts yet. Invalid or duplicate tables are left out and
    /// reported by [`McpPool::tools`].
    pub fn new(configs: Vec<McpServerConfig>, workdir: PathBuf) -> McpPool {
        let mut servers: Vec<Server> = Vec::new();
        let mut config_errors = Vec::new();
        for config in configs {
            if let Err(why) = config.validate() {
                config_errors.push(why);
            } else if servers.iter().any(|s| s.config.name == config.name) {
                config_errors.push(format!(
                    "MCP server `{}` is configured twice; the first one is used",
                    config.name
                ));
            } else {
                servers.push(Server {
                    permits: Semaphore::new(config.max_concurrent),
                    config,
                    connection: OnceCell::new(),
                });
            }
        }
        McpPool {
            servers,
            config_errors,
            workdir,
            closed: CancellationToken::new(),
        }
    }

    /// The tools of every server that starts within its timeout, named `<server>__<tool>`,
    /// and one message per server that did not (or per tool left out), for the caller to
    /// log. Servers start concurrently, on the first call only; later calls answer from
    /// the list each server gave when it started.
    pub async fn tools(&self) -> (Vec<ToolSpec>, Vec<String>) {
        let mut errors = self.config_errors.clone();
        let mut specs = Vec::new();
        let connections = join_all(self.servers.iter().map(|s| self.connect(s))).await;
        for connection in connections {
            match connection {
                Ok(connection) => {
                    specs.extend(connection.tools.iter().map(|t| t.spec.clone()));
                    errors.extend(connection.skipped.iter().cloned());
                }
                Err(why) => errors.push(why),
            }
        }
        (specs, errors)
    }

    /// Whether `name` is the name of an MCP tool of this pool: `<server>__<tool>` with a
    /// configured server.
    pub fn owns(&self, name: &str) -> bool {
        self.route(name).is_some()
    }

    /// Whether `name` is a tool of an untrusted server of this pool, whose calls wait
    /// for an approval whatever the session's policy.
    pub fn always_asks(&self, name: &str) -> bool {
        self.route(name)
            .is_some_and(|(server, _)| server.config.trust == McpTrust::Untrusted)
    }

    /// Calls the MCP tool `<server>__<tool>`, starting its server if need be. Never
    /// panics and never waits past the server's timeout (once to start, once for the
    /// call): a server that fails to start, times out or reports an error gives a result
    /// with `is_error` and a message that says which.
    pub async fn call(&self, call: &ToolCall) -> ToolResult {
        let (content, is_error) = match self.try_call(call).await {
            Ok((content, is_error)) => (content, is_error),
            Err(why) => (why, true),
        };
        ToolResult {
            call_id: call.id.clone(),
            name: call.name.clone(),
            content,
            is_error,
        }
    }

    /// Ends every server of the session: closes its MCP session, kills its process group
    /// (stdio) and reaps it. Starts and calls still running fail; later ones are refused.
    pub async fn shutdown(&self) {
        self.closed.cancel();
        let started = self
            .servers
            .iter()
            .filter_map(|s| s.connection.get())
            .filter_map(|c| c.as_ref().ok());
        join_all(started.map(|c| c.close())).await;
    }

    /// The server of an MCP tool name and the tool's name as the model sees it after the
    /// prefix.
    fn route<'a>(&self, name: &'a str) -> Option<(&Server, &'a str)> {
        let (server, tool) = name.split_once(SEPARATOR)?;
        if tool.is_empty() {
            return None;
        }
        let server = self.servers.iter().find(|s| s.config.name == server)?;
        Some((server, tool))
    }

    /// Like [`McpPool::call`], but tells r1's own failures apart from the server's
    /// answer: `Err` when the server could not be started or reached, timed out or was
    /// shut down; `Ok((content, is_error))` when it answered, `is_error` being the
    /// tool's own error flag.
    pub async fn try_call(&self, call: &ToolCall) -> Result<(String, bool), String> {
        let Some((server, tool)) = self.route(&call.name) else {
            return Err(format!(
                "`{}` is not a tool of a configured MCP server",
                call.name
            ));
        };
        let name = &server.config.name;
        let connection = self.connect(server).await?;
        let Some(original) = connection.original_name(&call.name) else {
            return Err(format!("MCP server `{name}` has no tool `{tool}`"));
        };
        let arguments = match &call.arguments {
            Value::Object(map) => Some(map.clone()),
            Value::Null => None,
            other => {
                return Err(format!(
                    "the arguments of `{}` must be a JSON object, not {other}",
                    call.name
                ))
            }
        };
        let mut params = CallToolRequestParams::new(original.to_owned());
        if let Some(arguments) = arguments {
            params = params.with_arguments(arguments);
        }

        let timeout_s = server.config.timeout_s;
        let deadline = Instant::now() + server.config.timeout();
        let permit = tokio::select! {
            () = self.closed.cancelled() => return Err(shut_down(name)),
            permit = tokio::time::timeout_at(deadline, server.permits.acquire()) => permit,
        };
        let _permit = match permit {
            Ok(Ok(permit)) => permit,
            Ok(Err(_)) => return Err(shut_down(name)),
            Err(_) => {
                return Err(format!(
                    "MCP server `{name}` timed out: it already runs its maximum of {} \
                     concurrent calls and none finished within {timeout_s} s (timeout_s); \
                     `{tool}` was not called",
                    server.config.max_concurrent
                ))
            }
        };
        // Dropping the request on timeout makes rmcp send `notifications/cancelled`.
        let answer = tokio::select! {
            () = self.closed.cancelled() => return Err(shut_down(name)),
            answer = tokio::time::timeout_at(deadline, connection.peer.call_tool(params)) => answer,
        };
        match answer {
            Err(_) => Err(format!(
                "MCP server `{name}` timed out: no answer to `{tool}` within {timeout_s} s \
                 (timeout_s); the call was abandoned"
            )),
            Ok(Err(e)) => Err(format!(
                "MCP server `{name}` failed to run `{tool}`: {}",
                describe_service_error(&e)
            )),
            Ok(Ok(result)) => Ok(render_result(result)),
        }
    }

    /// The server's connection, started by the first caller (the others wait for that
    /// start rather than starting their own).
    async fn connect(&self, server: &Server) -> Result<Arc<Connection>, String> {
        let name = &server.config.name;
        if self.closed.is_cancelled() {
            return Err(shut_down(name));
        }
        let started = server
            .connection
            .get_or_init(|| async {
                let timeout_s = server.config.timeout_s;
                let start = tokio::time::timeout(
                    server.config.timeout(),
                    Connection::start(&server.config, &self.workdir),
                );
                // A start cut short (timeout, shutdown) drops the half-started server,
                // which kills its process group.
                tokio::select! {
                    () = self.closed.cancelled() => Err(shut_down(name)),
                    started = start => match started {
                        Ok(Ok(connection)) => Ok(Arc::new(connection)),
                        Ok(Err(why)) => Err(format!("MCP server `{name}` failed to start: {why}")),
                        Err(_) => Err(format!(
                            "MCP server `{name}` did not start within {timeout_s} s (timeout_s)"
                        )),
                    },
                }
            })
            .await;
        let connection = started.clone()?;
        if self.closed.is_cancelled() {
            // Shutdown ran while this start was finishing and did not see it.
            connection.close().await;
            return Err(shut_down(name));
        }
        Ok(connection)
    }
}

impl Drop for McpPool {
    /// A pool dropped without [`McpPool::shutdown`] still kills its stdio servers, now.
    fn drop(&mut self) {
        self.closed.cancel();
        for server in &self.servers {
            if let Some(Ok(connection)) = server.connection.get() {
                connection.kill_now();
            }
        }
    }
}

fn shut_down(name: &str) -> String {
    format!("MCP server `{name}` is not available: the session's MCP servers were shut down")
}

/// A started server: its MCP session, its tools and (stdio) its process.
struct Connection {
    peer: Peer<RoleClient>,
    /// Taken by [`Connection::close`].
    service: Mutex<Option<RunningService<RoleClient, ClientConfig>>>,
    /// Taken by [`Connection::close`]; `None` for http servers.
    process: Mutex<Option<ServerProcess>>,
    tools: Vec<McpTool>,
    /// Why tools of the server were left out.
    skipped: Vec<String>,
}

/// A tool of a server, under the name the model sees.
struct McpTool {
    spec: ToolSpec,
    /// The name the server knows it by.
    original: String,
}

impl Connection {
    async fn start(config: &McpServerConfig, workdir: &std::path::Path) -> Result<Self, String> {
        match config.transport {
            McpTransport::Stdio => Self::start_stdio(config, workdir).await,
            McpTransport::Http => Self::start_http(config).await,
        }
    }

    async fn start_stdio(
        config: &McpServerConfig,
        workdir: &std::path::Path,
    ) -> Result<Self, String> {
        let program = config.command.as_deref().unwrap_or_default();
        let mut command = Command::new(program);
        command
            .args(&config.args)
            .current_dir(workdir)
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // A backstop only: `ServerProcess` kills the whole group.
            .kill_on_drop(true);
        for (var, _) in std::env::vars_os() {
            if is_secret_name(&var.to_string_lossy(), true) {
                command.env_remove(&var);
            }
        }
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot run `{program}`: {e}"))?;
        let pgid = child.id().and_then(|pid| libc::pid_t::try_from(pid).ok());
        let (Some(stdout), Some(stdin)) = (child.stdout.take(), child.stdin.take()) else {
            return Err("its stdin and stdout could not be connected".to_owned());
        };
        let stderr_tail = Arc::new(Mutex::new(String::new()));
        let stderr_task = child
            .stderr
            .take()
            .map(|stderr| tokio::spawn(keep_tail(stderr, stderr_tail.clone())));
        let mut process = ServerProcess {
            child,
            pgid,
            stderr_tail,
            stderr_task,
        };
        let service = match client_info().serve((stdout, stdin)).await {
            Ok(service) => service,
            Err(e) => return Err(process.explain_failure(&describe_init_error(&e)).await),
        };
        let peer = service.peer().clone();
        let tools = match peer.list_all_tools().await {
            Ok(tools) => tools,
            Err(e) => {
                let why = format!("tools/list failed: {}", describe_service_error(&e));
                return Err(process.explain_failure(&why).await);
            }
        };
        Ok(Self::assemble(config, service, Some(process), tools))
    }

    async fn start_http(config: &McpServerConfig) -> Result<Self, String> {
        let url = config.url.as_deref().unwrap_or_default();
        let mut transport_config = StreamableHttpClientTransportConfig::with_uri(url);
        if let Some(var) = config.auth_env.as_deref() {
            let token = std::env::var(var)
                .map_err(|_| format!("auth_env `{var}` is not set in the daemon's environment"))?;
            transport_config = transport_config.auth_header(token);
        }
        let transport =
            StreamableHttpClientTransport::with_client(http_client()?, transport_config);
        let service = client_info()
            .serve(transport)
            .await
            .map_err(|e| format!("cannot connect to {url}: {}", describe_init_error(&e)))?;
        let tools = service
            .peer()
            .list_all_tools()
            .await
            .map_err(|e| format!("tools/list failed: {}", describe_service_error(&e)))?;
        Ok(Self::assemble(config, service, None, tools))
    }

    fn assemble(
        config: &McpServerConfig,
        service: RunningService<RoleClient, ClientConfig>,
        process: Option<ServerProcess>,
        listed: Vec<Tool>,
    ) -> Self {
        let server = &config.name;
        let mut tools: Vec<McpTool> = Vec::new();
        let mut skipped = Vec::new();
        for tool in listed {
            let exposed = format!("{server}{SEPARATOR}{}", model_safe(&tool.name));
            if exposed.len() > MAX_TOOL_NAME {
                skipped.push(format!(
                    "tool `{}` of MCP server `{server}` is left out: `{exposed}` is longer \
                     than the {MAX_TOOL_NAME} characters models accept",
                    tool.name
                ));
                continue;
            }
            if tools.iter().any(|t| t.spec.name == exposed) {
                skipped.push(format!(
                    "tool `{}` of MCP server `{server}` is left out: another of its tools \
                     is also offered as `{exposed}`",
                    tool.name
                ));
                continue;
            }
            let description = match (&tool.description, &tool.title) {
                (Some(description), _) => description.to_string(),
                (None, Some(title)) => title.clone(),
                (None, None) => format!("The `{}` tool of the MCP server `{server}`.", tool.name),
            };
            tools.push(McpTool {
                spec: ToolSpec {
                    name: exposed,
                    description,
                    input_schema: Value::Object((*tool.input_schema).clone()),
                },
                original: tool.name.to_string(),
            });
        }
        Connection {
            peer: service.peer().clone(),
            service: Mutex::new(Some(service)),
            process: Mutex::new(process),
            tools,
            skipped,
        }
    }

    fn original_name(&self, exposed: &str) -> Option<&str> {
        self.tools
            .iter()
            .find(|t| t.spec.name == exposed)
            .map(|t| t.original.as_str())
    }

    /// Closes the MCP session, then kills and reaps the process group (stdio).
    async fn close(&self) {
        let service = lock(&self.service).take();
        if let Some(mut service) = service {
            // Ends the session (and, for http, deletes it on the server); a server that
            // does not cooperate is killed below anyway.
            let _ = service.close_with_timeout(SHUTDOWN_GRACE).await;
        }
        let process = lock(&self.process).take();
        if let Some(mut process) = process {
            process.kill_group();
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, process.child.wait()).await;
        }
    }

    /// Kills the process group without waiting (for `Drop`).
    fn kill_now(&self) {
        if let Some(service) = lock(&self.service).take() {
            service.cancellation_token().cancel();
        }
        if let Some(mut process) = lock(&self.process).take() {
            process.kill_group();
        }
    }
}

/// Locks a mutex that is never held across an await nor while panicking code runs; a
/// poisoned one is used as is.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A stdio server's process; dropping it kills the server's process group.
struct ServerProcess {
    child: Child,
    /// The process group (the server leads it); `None` if the pid could not be read.
    pgid: Option<libc::pid_t>,
    stderr_tail: Arc<Mutex<String>>,
    stderr_task: Option<JoinHandle<()>>,
}

impl ServerProcess {
    /// Kills the group. The leader is not reaped before (only by `close`, after), so its
    /// pid, hence the group id, cannot have been reused by another process.
    fn kill_group(&mut self) {
        if let Some(pgid) = self.pgid.take() {
            kill_group(pgid);
        }
    }

    /// `why` with the server's exit status and the end of its stderr, when there are.
    async fn explain_failure(&mut self, why: &str) -> String {
        if let Some(task) = self.stderr_task.take() {
            let _ = tokio::time::timeout(STDERR_DRAIN, task).await;
        }
        let mut message = why.to_owned();
        // The pipe can close a moment before the exit status is there: wait briefly.
        let status = match self.child.try_wait() {
            Ok(Some(s)) => Some(s),
            _ => tokio::time::timeout(EXIT_STATUS_WAIT, self.child.wait())
                .await
                .ok()
                .and_then(Result::ok),
        };
        if let Some(status) = status {
            let _ = write!(message, "; the server exited ({status})");
        }
        let tail = lock(&self.stderr_tail).trim().to_owned();
        if !tail.is_empty() {
            let _ = write!(message, "; its stderr ends with: {tail}");
        }
        message
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill_group();
        if let Some(task) = &self.stderr_task {
            task.abort();
        }
    }
}

/// Keeps the last [`STDERR_TAIL_BYTES`] of a server's stderr. Reading it also keeps a
/// chatty server from blocking on a full pipe.
async fn keep_tail<R: AsyncRead + Unpin>(mut pipe: R, tail: Arc<Mutex<String>>) {
    let mut buf = vec![0u8; 4096];
    loop {
        let n = match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let mut kept = lock(&tail);
        kept.push_str(&String::from_utf8_lossy(&buf[..n]));
        if kept.len() > STDERR_TAIL_BYTES {
            let mut cut = kept.len() - STDERR_TAIL_BYTES;
            while !kept.is_char_boundary(cut) {
                cut += 1;
            }
            kept.drain(..cut);
        }
    }
}

/// The tool name with every character models refuse in a tool name (MCP also allows
/// `.`, for one) replaced by `_`.
fn model_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// How r1 introduces itself in `initialize`. It asks for the last protocol version that
/// has the `initialize` handshake, which servers of every age answer.
fn client_info() -> ClientConfig {
    ClientConfig::new(
        ClientCapabilities::default(),
        Implementation::new("r1", env!("CARGO_PKG_VERSION")),
    )
    .with_protocol_version(ProtocolVersion::LATEST_WITH_INITIALIZE)
}

/// The HTTP client of streamable-HTTP servers: rustls with the ring provider and the
/// webpki root certificates, no redirects (a redirect could carry the bearer token
/// elsewhere; an MCP endpoint has no reason to redirect).
fn http_client() -> Result<reqwest_mcp::Client, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot set up TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest_mcp::Client::builder()
        .tls_backend_preconfigured(tls)
        .redirect(reqwest_mcp::redirect::Policy::none())
        .build()
        .map_err(|e| format!("cannot set up the HTTP client: {e}"))
}

/// What went wrong in the handshake, without the transport's Rust type names.
fn describe_init_error(error: &ClientInitializeError) -> String {
    match error {
        ClientInitializeError::TransportError { error, context } => {
            format!("{} ({context})", describe_transport_error(error))
        }
        ClientInitializeError::ConnectionClosed(during) => {
            format!("the server closed the connection during the handshake ({during})")
        }
        other => error_chain(other),
    }
}

/// A transport's error. rmcp's HTTP error keeps reqwest's error without its causes (the
/// refused connection, the failed TLS handshake); they are dug out here.
fn describe_transport_error(error: &DynamicTransportError) -> String {
    let inner: &(dyn std::error::Error + 'static) = &*error.error;
    match inner.downcast_ref::<StreamableHttpError<reqwest_mcp::Error>>() {
        Some(StreamableHttpError::Client(e)) => error_chain(e),
        _ => error_chain(inner),
    }
}

/// An error's message followed by those of its sources (a connection refused is the
/// source's source of the HTTP error), each said once.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

fn describe_service_error(error: &ServiceError) -> String {
    match error {
        ServiceError::McpError(e) => format!("error {}: {}", e.code.0, e.message),
        ServiceError::TransportSend(e) => describe_transport_error(e),
        ServiceError::TransportClosed => {
            "the connection to the server is closed (the server may have exited)".to_owned()
        }
        other => error_chain(other),
    }
}

/// What the model is told of a result: the text items, in order, with a short note in
/// place of images, audio and binary resources; the structured content as JSON when there
/// is no text. Cut at [`MAX_RESULT_BYTES`].
fn render_result(result: CallToolResult) -> (String, bool) {
    let mut parts: Vec<String> = Vec::new();
    let mut has_text = false;
    for block in &result.content {
        let part = match block {
            ContentBlock::Text(text) => {
                has_text = true;
                text.text.clone()
            }
            ContentBlock::Image(image) => format!(
                "[an image ({}, {} bytes of base64) that r1 does not show]",
                image.mime_type,
                image.data.len()
            ),
            ContentBlock::Audio(audio) => format!(
                "[audio ({}, {} bytes of base64) that r1 does not show]",
                audio.mime_type,
                audio.data.len()
            ),
            ContentBlock::Resource(embedded) => match &embedded.resource {
                ResourceContents::TextResourceContents { text, .. } => {
                    has_text = true;
                    text.clone()
                }
                ResourceContents::BlobResourceContents { uri, .. } => {
                    format!("[binary resource {uri} that r1 does not show]")
                }
                _ => "[a resource of a kind r1 does not show]".to_owned(),
            },
            ContentBlock::ResourceLink(link) => {
                format!("[resource {} at {}]", link.name, link.uri)
            }
            _ => "[content of a kind r1 does not show]".to_owned(),
        };
        parts.push(part);
    }
    let mut content = match (&result.structured_content, has_text) {
        (Some(structured), false) => structured.to_string(),
        _ if parts.is_empty() => "(the tool returned no content)".to_owned(),
        _ => parts.join("\n"),
    };
    if content.len() > MAX_RESULT_BYTES {
        let mut cut = MAX_RESULT_BYTES;
        while !content.is_char_boundary(cut) {
            cut -= 1;
        }
        let dropped = content.len() - cut;
        content.truncate(cut);
        let _ = write!(content, "\n[… {dropped} more bytes cut]");
    }
    (content, result.is_error.unwrap_or(false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_safe_names() {
        assert_eq!(model_safe("files.read"), "files_read");
        assert_eq!(model_safe("add-2_x"), "add-2_x");
    }

    #[test]
    fn structured_content_when_no_text() {
        let mut result = CallToolResult::structured(serde_json::json!({"sum": 5}));
        result.content.clear();
        assert_eq!(render_result(result), (r#"{"sum":5}"#.to_owned(), false));
    }
}
