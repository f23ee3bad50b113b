//! The operation catalog: every operation a client can perform, declared once.
//!
//! One [`operations!`] entry per operation gives its Rust name, its dotted method, its
//! HTTP method, path and success status, the capability it needs, its idempotency, its
//! params and result types, its MCP tool (or none), its related links, a title and its
//! doc. From that one table come:
//!
//! - the [`Api`] trait, one `async fn` per operation taking its one params struct;
//! - the [`Request`] enum, [`Request::parse`] and [`dispatch`], which every transport
//!   uses to turn `(method, params JSON)` into a call on an `Api`;
//! - [`OPERATIONS`], the static metadata the daemon's HTTP routes, the MCP tools,
//!   `r1-client`'s methods, `--print-tools`, `docs/AGENTIC-API-CATALOG.md` and the
//!   OpenAPI document are generated from.
//!
//! The drift guarantee: an operation declared here without a handler in the daemon's
//! `impl Api for Hub` does not compile, so a declared operation can never be a silent
//! 404 on one surface (`r1-client` gets every method from [`Remote`]). This doctest is
//! the guarantee as a test: an `Api` that handles only the handshake is refused.
//!
//! ```compile_fail,E0046
//! struct HalfDaemon;
//!
//! #[async_trait::async_trait]
//! impl r1_proto::Api for HalfDaemon {
//!     async fn handshake(
//!         &self,
//!         _: r1_proto::EmptyParams,
//!     ) -> Result<r1_proto::Handshake, r1_proto::ApiError> {
//!         Err(r1_proto::ApiError::internal("only the handshake"))
//!     }
//! }
//! ```

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::{
    Ack, ApiError, ApproveParams, CompactResult, CortexNotesParams, CortexPublishParams,
    DaemonStatus, DeleteResult, Discovery, EmptyParams, EngineList, Handshake, Health, HookList,
    HookTestParams, HookTestResult, JournalPage, JournalParams, LaneList, LaneRef, LaneView,
    ListSessionsParams, LobeList, LobeRef, LogPage, LogsParams, MissionCreateParams, MissionList,
    MissionListParams, MissionRef, MissionView, NoteList, NoteView, PinLaneParams, ReindexResult,
    ReloadResult, RenameParams, RepairResult, RestartParams, RestartResult, ResumeAllResult,
    SearchParams, SearchResult, SendMessageParams, SendMessageResult, SessionDebugState,
    SessionList, SessionRef, SessionView, ShutdownParams, StartSessionParams, TailParams,
    TuiFocusLaneParams, TuiGetModelParams, TuiKeyParams, TuiModelView, TuiOpenParams, TuiOpened,
    TuiRef, TuiSnapshot, VerifyParams, VerifyResult, WebClickParams, WebFillParams,
    WebNavigateParams, WebPageView, WorkdirFile, WorkdirReadParams, WorktreeCleanParams,
    WorktreeDiff, WorktreeDiffParams, WorktreeList, WorktreeListParams, WorktreeMergeParams,
    WorktreeMergeResult, WorktreeView,
};

/// The HTTP method of an operation's route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpMethod {
    /// Reads; params come from the path and the query string.
    Get,
    /// Changes something; params come from the path and the JSON body.
    Post,
    /// Ends something; params come from the path and the query string.
    Delete,
}

impl HttpMethod {
    /// The method as HTTP spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Post => "POST",
            HttpMethod::Delete => "DELETE",
        }
    }

    /// True when the params other than the path's travel in a JSON body.
    pub fn has_body(self) -> bool {
        self == HttpMethod::Post
    }
}

/// What a caller must be allowed to do to call an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Capability {
    /// Changes nothing (MCP `--caps read` and up).
    Read,
    /// Changes state (MCP `--caps write`).
    Write,
    /// Introspection of the daemon's internals, read-only (MCP `--caps debug`).
    Debug,
}

impl Capability {
    /// The spelling in flags and docs: `read`, `write` or `debug`.
    pub fn as_str(self) -> &'static str {
        match self {
            Capability::Read => "read",
            Capability::Write => "write",
            Capability::Debug => "debug",
        }
    }
}

/// Whether calling an operation twice has more effect than calling it once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idempotency {
    /// Every call has its effect (a new session, another message).
    None,
    /// Idempotent on the target state: calling again changes nothing more.
    Natural,
    /// Idempotent when the named params field carries a key: the same key again
    /// returns the first answer (HTTP answers it 200 instead of the op's status).
    Keyed(&'static str),
}

/// An operation's MCP tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct McpTool {
    /// The wire name, e.g. `r1_session_start` (matches `^[a-zA-Z0-9_-]{1,64}$`).
    pub name: &'static str,
    /// The dotted name of the r1 catalog, e.g. `r1.session.start`, accepted on
    /// `tools/call` as an alias.
    pub alias: &'static str,
    /// `destructiveHint`: it may discard work or stop something that is running.
    pub destructive: bool,
}

/// The tool `name` (alias `alias`) that does not discard anything.
pub const fn mcp(name: &'static str, alias: &'static str) -> Option<McpTool> {
    Some(McpTool {
        name,
        alias,
        destructive: false,
    })
}

/// The tool `name` (alias `alias`) that may discard work or stop what runs.
pub const fn mcp_destructive(name: &'static str, alias: &'static str) -> Option<McpTool> {
    Some(McpTool {
        name,
        alias,
        destructive: true,
    })
}

/// Everything the catalog declares about one operation.
#[derive(Debug, Clone, Copy)]
pub struct OperationInfo {
    /// The dotted method, e.g. `session.send` (WebSocket method, `data-api` name).
    pub method: &'static str,
    /// The Rust name: the [`Api`] method, e.g. `session_send`.
    pub name: &'static str,
    /// The HTTP method.
    pub http_method: HttpMethod,
    /// The HTTP path template; each `{field}` is a params field.
    pub path: &'static str,
    /// The HTTP status of a success.
    pub status: u16,
    /// What the caller must be allowed.
    pub capability: Capability,
    /// Whether it can be retried.
    pub idempotency: Idempotency,
    /// Its MCP tool; `None` for the few operations not offered to agents.
    pub mcp: Option<McpTool>,
    /// Templates of related resources, filled from the params, then from the result's
    /// top-level fields (`{id}` of a created session).
    pub related: &'static [&'static str],
    /// For an operation that creates a resource: the template of its path, filled
    /// from the result (MCP's `links.self`).
    pub created: Option<&'static str>,
    /// A short title for people.
    pub title: &'static str,
    /// The doc, one line per entry: the first sentence is the one-line summary, the
    /// whole is the MCP description.
    pub docs: &'static [&'static str],
    /// The JSON Schema of the params (strict; see [`crate::schema`]).
    pub params_schema: fn() -> Value,
    /// The JSON Schema of the result (strict).
    pub result_schema: fn() -> Value,
    /// The Rust name of the params type (the OpenAPI component).
    pub params_type: &'static str,
    /// The Rust name of the result type (the OpenAPI component).
    pub result_type: &'static str,
}

impl OperationInfo {
    /// The whole doc as one paragraph.
    pub fn doc(&self) -> String {
        self.docs
            .iter()
            .map(|l| l.trim())
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The first sentence of the doc.
    pub fn summary(&self) -> String {
        let doc = self.doc();
        match doc.find(". ") {
            Some(i) => doc[..=i].to_string(),
            None => doc,
        }
    }

    /// The params fields the path carries, in order.
    pub fn path_fields(&self) -> impl Iterator<Item = &'static str> {
        self.path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
    }

    /// True when the operation changes nothing (read and debug operations).
    pub fn read_only(&self) -> bool {
        self.capability != Capability::Write
    }

    /// The path with its placeholders filled from `params` (each value
    /// percent-encoded); a missing or non-string field is a `validation` error.
    pub fn fill_path(&self, params: &Value) -> Result<String, ApiError> {
        fill(self.path, &[params]).ok_or_else(|| {
            ApiError::validation(format!(
                "{} needs {}",
                self.method,
                self.path_fields()
                    .map(|f| format!("`{f}`"))
                    .collect::<Vec<_>>()
                    .join(" and ")
            ))
        })
    }
}

/// Fills `{field}` placeholders of `template` from the first of `sources` that has the
/// field as a string or number; `None` when one cannot be filled.
pub fn fill(template: &str, sources: &[&Value]) -> Option<String> {
    let mut out = String::with_capacity(template.len() + 16);
    for (i, seg) in template.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        match seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(field) => {
                let v = sources.iter().find_map(|s| match s.get(field)? {
                    Value::String(s) => Some(s.clone()),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                })?;
                out.push_str(&percent_encode(&v));
            }
            None => out.push_str(seg),
        }
    }
    Some(out)
}

/// Percent-encodes everything but unreserved characters (RFC 3986), so a value is
/// always exactly one path segment.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The operation whose dotted method is `method`.
pub fn operation(method: &str) -> Option<&'static OperationInfo> {
    OPERATIONS.iter().find(|o| o.method == method)
}

/// The operation whose MCP tool is called `name` (wire name or dotted alias).
pub fn operation_for_tool(name: &str) -> Option<&'static OperationInfo> {
    OPERATIONS
        .iter()
        .find(|o| o.mcp.is_some_and(|t| t.name == name || t.alias == name))
}

/// Parses the params of `op` from JSON: `null` is `{}`; anything but an object, an
/// unknown field, a missing or mistyped one is a `validation` error whose message
/// names fields, never Rust types. Ids that travel in a path must be 1 to 128
/// letters, digits, `_` or `-`, so no caller can steer a request to another resource.
fn parse_params<P: DeserializeOwned>(op: &OperationInfo, params: Value) -> Result<P, ApiError> {
    let params = match params {
        Value::Null => Value::Object(serde_json::Map::new()),
        Value::Object(m) => Value::Object(m),
        _ => {
            return Err(ApiError::validation(format!(
                "the params of `{}` must be a JSON object",
                op.method
            )))
        }
    };
    for field in op.path_fields() {
        let v = params
            .get(field)
            .or_else(|| alias_of(field).and_then(|a| params.get(a)));
        if let Some(Value::String(id)) = v {
            check_id(field, id)?;
        }
    }
    serde_json::from_value(params)
        .map_err(|e| ApiError::validation(format!("invalid params for `{}`: {e}", op.method)))
}

/// The alias a path field is also accepted under.
fn alias_of(field: &str) -> Option<&'static str> {
    (field == "lane_id").then_some("lane")
}

/// Checks an id that becomes a path segment.
fn check_id(field: &str, value: &str) -> Result<(), ApiError> {
    let ok = !value.is_empty()
        && value.len() <= 128
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ApiError::validation(format!(
            "`{field}` must be 1 to 128 letters, digits, `_` or `-`"
        )))
    }
}

fn to_json<T: Serialize>(r: Result<T, ApiError>) -> Result<Value, ApiError> {
    r.and_then(|v| {
        serde_json::to_value(v).map_err(|_| ApiError::internal("could not encode the result"))
    })
}

/// A transport that can call any catalog operation given its metadata and its params
/// as JSON (the HTTP client). Implementing it makes the type an [`Api`].
#[async_trait::async_trait]
pub trait Remote: Send + Sync {
    /// Calls `op` with `params` (its params struct as a JSON object) and returns the
    /// result JSON, or the error the other side answered.
    async fn call_op(&self, op: &'static OperationInfo, params: Value) -> Result<Value, ApiError>;
}

/// One [`Api`] method of a [`Remote`]: params to JSON, the call, JSON to the result.
async fn call_remote<T: Remote + ?Sized, P: Serialize + Sync, R: DeserializeOwned>(
    remote: &T,
    method: &str,
    params: &P,
) -> Result<R, ApiError> {
    let op = operation(method)
        .ok_or_else(|| ApiError::internal(format!("`{method}` is not in the catalog")))?;
    let params = serde_json::to_value(params)
        .map_err(|e| ApiError::internal(format!("cannot encode the params of {method}: {e}")))?;
    let result = remote.call_op(op, params).await?;
    serde_json::from_value(result)
        .map_err(|e| ApiError::internal(format!("the answer to {method} cannot be read: {e}")))
}

macro_rules! opt {
    () => {
        None
    };
    ($e:expr) => {
        Some($e)
    };
}

/// Declares every operation. See the module doc for what comes out of it, and
/// `ARCHITECTURE.md` ("Adding an operation") for the recipe.
macro_rules! operations {
    ($(
        $(#[doc = $doc:literal])*
        $variant:ident $fn_name:ident {
            method: $method:literal,
            http: $verb:ident $path:literal => $status:literal,
            cap: $cap:ident,
            idempotency: $idem:expr,
            params: $params:ident,
            result: $result:ident,
            mcp: $mcp:expr,
            related: [$($rel:literal),* $(,)?],
            $(created: $created:literal,)?
            title: $title:literal $(,)?
        }
    )*) => {
        /// Every operation a client can perform on a daemon, one method per catalog
        /// entry, each taking its one params struct. The daemon's hub implements it;
        /// `r1-client` implements it over the unix socket or loopback TCP; HTTP,
        /// WebSocket and MCP reach it through [`dispatch`].
        #[async_trait::async_trait]
        pub trait Api: Send + Sync {
            $(
                $(#[doc = $doc])*
                async fn $fn_name(&self, params: $params) -> Result<$result, ApiError>;
            )*
        }

        /// Every [`Remote`] is an [`Api`]: each method serializes its params, calls
        /// its operation through [`Remote::call_op`] and decodes the result. This is
        /// how `r1-client` implements `Api` with no code per operation.
        #[async_trait::async_trait]
        impl<T: Remote> Api for T {
            $(
                async fn $fn_name(&self, params: $params) -> Result<$result, ApiError> {
                    call_remote(self, $method, &params).await
                }
            )*
        }

        /// One parsed call: an operation with its params.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Request {
            $(
                #[doc = concat!("`", $method, "`.")]
                $variant($params),
            )*
        }

        impl Request {
            /// Parses a call of the dotted `method` with `params` (a JSON object, or
            /// null for none). An unknown method is `not_found`; bad params are
            /// `validation`.
            pub fn parse(method: &str, params: Value) -> Result<Request, ApiError> {
                let op = operation(method).ok_or_else(|| {
                    ApiError::not_found(format!("there is no operation `{method}`"))
                })?;
                match op.method {
                    $($method => Ok(Request::$variant(parse_params(op, params)?)),)*
                    _ => Err(ApiError::internal("catalog entry without a variant")),
                }
            }

            /// The operation this call is for.
            pub fn operation(&self) -> &'static OperationInfo {
                let method = match self {
                    $(Request::$variant(_) => $method,)*
                };
                // Every variant's method is in OPERATIONS: both come from one entry.
                OPERATIONS.iter().find(|o| o.method == method).unwrap_or(&OPERATIONS[0])
            }
        }

        /// Calls `req` on `api` and returns its result as JSON.
        pub async fn dispatch(api: &dyn Api, req: Request) -> Result<Value, ApiError> {
            match req {
                $(Request::$variant(p) => to_json(api.$fn_name(p).await),)*
            }
        }

        /// Every operation, in catalog order.
        pub static OPERATIONS: &[OperationInfo] = &[
            $(OperationInfo {
                method: $method,
                name: stringify!($fn_name),
                http_method: HttpMethod::$verb,
                path: $path,
                status: $status,
                capability: Capability::$cap,
                idempotency: $idem,
                mcp: $mcp,
                related: &[$($rel),*],
                created: opt!($($created)?),
                title: $title,
                docs: &[$($doc),*],
                params_schema: crate::schema::strict_schema_for::<$params>,
                result_schema: crate::schema::strict_output_schema_for::<$result>,
                params_type: stringify!($params),
                result_type: stringify!($result),
            },)*
        ];

        /// Adds every params type to `params` and every result type to `results`
        /// (the OpenAPI components).
        pub(crate) fn add_operation_types(
            params: &mut schemars::SchemaGenerator,
            results: &mut schemars::SchemaGenerator,
        ) {
            $(
                let _ = params.subschema_for::<$params>();
                let _ = results.subschema_for::<$result>();
            )*
        }
    };
}

use Idempotency::{Keyed, Natural};

operations! {
    /// The probe: the protocol the daemon speaks, its version, id, pid and start time.
    /// Served without a token on the unix socket.
    DaemonHandshake handshake {
        method: "daemon.handshake",
        http: Get "/v1/handshake" => 200,
        cap: Read,
        idempotency: Natural,
        params: EmptyParams,
        result: Handshake,
        mcp: None,
        related: [],
        title: "Handshake",
    }

    /// The daemon's status (`ok` or `stopping`), version, live sessions and uptime.
    DaemonHealth health {
        method: "daemon.health",
        http: Get "/v1/health" => 200,
        cap: Read,
        idempotency: Natural,
        params: EmptyParams,
        result: Health,
        mcp: None,
        related: [],
        title: "Health",
    }

    /// Where the daemon listens: its registration (what `daemon.json` holds: id, pid,
    /// version, protocol, url, socket, start time), with the token redacted and the
    /// file that holds it named. Not offered over MCP.
    DaemonDiscover discover {
        method: "daemon.discover",
        http: Get "/v1/discover" => 200,
        cap: Read,
        idempotency: Natural,
        params: EmptyParams,
        result: Discovery,
        mcp: None,
        related: [],
        title: "Discover",
    }

    /// The daemon at a glance: version, pid, uptime, listeners, sandbox, sessions and
    /// missions by state, live subscribers, hooks run and the last error it logged.
    /// Read-only.
    DaemonStatus daemon_status {
        method: "daemon.status",
        http: Get "/v1/status" => 200,
        cap: Read,
        idempotency: Natural,
        params: EmptyParams,
        result: DaemonStatus,
        mcp: None,
        related: ["/v1/sessions", "/v1/missions", "/v1/metrics"],
        title: "Daemon status",
    }

    /// The daemon's own log lines, oldest first, filtered by time (`since`), level
    /// and session. Without `after`, the newest `limit` matching lines; with the
    /// `next` cursor of a previous answer as `after`, the lines written since, waiting
    /// up to `wait_ms` for the first one (how `r1 ctl logs -f` follows). Not offered
    /// over MCP: logs hold paths and prompts of every session. Read-only.
    DaemonLogs daemon_logs {
        method: "daemon.logs",
        http: Get "/v1/logs" => 200,
        cap: Read,
        idempotency: Natural,
        params: LogsParams,
        result: LogPage,
        mcp: None,
        related: ["/v1/status"],
        title: "Read the daemon's logs",
    }

    /// The hooks installed in `$R1_HOME/hooks`: each file with the event it answers,
    /// whether it is trusted (a regular file owned by the user, executable, not
    /// writable by group or others) or why it is refused, and its timeout. Not offered
    /// over MCP: hooks run outside the agent's sandbox. Read-only.
    HooksList hooks_list {
        method: "hooks.list",
        http: Get "/v1/hooks" => 200,
        cap: Read,
        idempotency: Natural,
        params: EmptyParams,
        result: HookList,
        mcp: None,
        related: ["/v1/status"],
        title: "List the hooks",
    }

    /// Run one hook (by file name or event) against a sample event, or the JSON object
    /// given as `event`, outside any session: nothing is journaled and its answer has
    /// no effect. Returns its exit code, output, and its answer read as JSON. Not
    /// offered over MCP: hooks run outside the agent's sandbox. NOT idempotent: every
    /// call runs the hook again.
    HooksTest hooks_test {
        method: "hooks.test",
        http: Post "/v1/hooks/test" => 200,
        cap: Write,
        idempotency: Idempotency::None,
        params: HookTestParams,
        result: HookTestResult,
        mcp: None,
        related: ["/v1/hooks"],
        title: "Test a hook",
    }

    /// Stop the daemon gracefully: in-flight requests get `grace_s` seconds, sessions
    /// with work in flight are paused. Not offered over MCP.
    DaemonShutdown shutdown {
        method: "daemon.shutdown",
        http: Post "/v1/shutdown" => 200,
        cap: Write,
        idempotency: Natural,
        params: ShutdownParams,
        result: Ack,
        mcp: None,
        related: [],
        title: "Shut the daemon down",
    }

    /// Re-read `daemon.toml` and apply it without a restart: allowed origins, retention,
    /// limits, engines, MCP servers, the MCP endpoint's caps and mission workers take
    /// effect at once; sessions and connections stay. An invalid file changes nothing
    /// and the error names the key and the line. Keys that need a restart are listed
    /// in `restart_required` and keep their old values. Same as SIGHUP. Not offered
    /// over MCP.
    DaemonReload reload {
        method: "daemon.reload",
        http: Post "/v1/reload" => 200,
        cap: Write,
        idempotency: Natural,
        params: EmptyParams,
        result: ReloadResult,
        mcp: None,
        related: [],
        title: "Reload the config",
    }

    /// Restart onto the binary now on disk: the new daemon is checked, sessions with
    /// work in flight are paused (reason `upgrade`), the listeners are handed over and
    /// the new daemon takes the same port and socket and reloads every session. If it
    /// does not register and answer within `timeout_s` (default 15), this daemon serves
    /// again and the error says why. Not offered over MCP.
    DaemonRestart restart {
        method: "daemon.restart",
        http: Post "/v1/restart" => 200,
        cap: Write,
        idempotency: Idempotency::None,
        params: RestartParams,
        result: RestartResult,
        mcp: None,
        related: [],
        title: "Restart onto the binary on disk",
    }

    /// Start a new r1 agent session working in `workdir` (an absolute path to an
    /// existing directory). Returns the session (`data.id`, `data.state`,
    /// `data.last_seq`). NOT idempotent: every call creates another session, so call
    /// it once and keep the id. Next: `r1_session_send` a message, then `r1_bus_tail`
    /// from `data.last_seq + 1` to read the reply.
    SessionStart session_start {
        method: "session.start",
        http: Post "/v1/sessions" => 201,
        cap: Write,
        idempotency: Idempotency::None,
        params: StartSessionParams,
        result: SessionView,
        mcp: mcp("r1_session_start", "r1.session.start"),
        related: ["/v1/sessions/{id}", "/v1/sessions/{id}/journal", "/v1/sessions/{id}/lanes"],
        created: "/v1/sessions/{id}",
        title: "Start a session",
    }

    /// List every session the daemon has loaded, oldest first, with its state
    /// (`idle`, `busy`, `waiting_on_approval`, `paused`, `ended`, `error`), `last_seq`
    /// and pending approvals. Archived sessions are left out unless `include_archived`.
    /// Read-only.
    SessionList session_list {
        method: "session.list",
        http: Get "/v1/sessions" => 200,
        cap: Read,
        idempotency: Natural,
        params: ListSessionsParams,
        result: SessionList,
        mcp: mcp("r1_session_list", "r1.session.list"),
        related: [],
        title: "List sessions",
    }

    /// Get one session: its state, `last_seq` (the seq of its newest journal record)
    /// and `pending_approvals`. Read-only.
    SessionGet session_get {
        method: "session.get",
        http: Get "/v1/sessions/{session_id}" => 200,
        cap: Read,
        idempotency: Natural,
        params: SessionRef,
        result: SessionView,
        mcp: mcp("r1_session_get", "r1.session.get"),
        related: ["/v1/sessions/{session_id}/journal", "/v1/sessions/{session_id}/lanes"],
        title: "Get a session",
    }

    /// Send a user message to a session; the agent answers in the session's journal.
    /// Returns `data.message_id` and `data.seq` (the seq of your message): call
    /// `r1_bus_tail` with `since_seq = data.seq + 1` and `wait_ms` to wait for the
    /// reply (a `session.message` record with `data.role = "assistant"`). Idempotent
    /// only with `client_message_id`: the same key again returns the same `message_id`
    /// with `data.duplicate = true` and posts nothing; without a key every call posts
    /// another message.
    SessionSend session_send {
        method: "session.send",
        http: Post "/v1/sessions/{session_id}/messages" => 202,
        cap: Write,
        idempotency: Keyed("client_message_id"),
        params: SendMessageParams,
        result: SendMessageResult,
        mcp: mcp("r1_session_send", "r1.session.send"),
        related: ["/v1/sessions/{session_id}", "/v1/sessions/{session_id}/journal", "/v1/sessions/{session_id}/lanes"],
        title: "Send a message",
    }

    /// Cancel the turn the session is running (the agent stops and its partial answer
    /// is discarded); the session stays open for the next message. Idempotent:
    /// cancelling when nothing runs is ok. Returns the session.
    SessionCancel session_cancel {
        method: "session.cancel",
        http: Post "/v1/sessions/{session_id}/cancel" => 200,
        cap: Write,
        idempotency: Natural,
        params: SessionRef,
        result: SessionView,
        mcp: mcp_destructive("r1_session_cancel", "r1.session.cancel"),
        related: ["/v1/sessions/{session_id}", "/v1/sessions/{session_id}/journal", "/v1/sessions/{session_id}/lanes"],
        title: "Cancel the running turn",
    }

    /// Pause a session: its running turn is stopped and it accepts no message until
    /// `r1_session_resume`. Idempotent: pausing a paused session is ok. Returns the
    /// session.
    SessionPause session_pause {
        method: "session.pause",
        http: Post "/v1/sessions/{session_id}/pause" => 200,
        cap: Write,
        idempotency: Natural,
        params: SessionRef,
        result: SessionView,
        mcp: mcp_destructive("r1_session_pause", "r1.session.pause"),
        related: ["/v1/sessions/{session_id}", "/v1/sessions/{session_id}/journal", "/v1/sessions/{session_id}/lanes"],
        title: "Pause a session",
    }

    /// Resume a paused session (paused by a client or by a daemon restart) so it
    /// accepts messages again. Idempotent: resuming a session that is not paused
    /// returns it unchanged; an ended session is a `conflict`. Returns the session.
    SessionResume session_resume {
        method: "session.resume",
        http: Post "/v1/sessions/{session_id}/resume" => 200,
        cap: Write,
        idempotency: Natural,
        params: SessionRef,
        result: SessionView,
        mcp: mcp("r1_session_resume", "r1.session.resume"),
        related: ["/v1/sessions/{session_id}", "/v1/sessions/{session_id}/journal", "/v1/sessions/{session_id}/lanes"],
        title: "Resume a session",
    }

    /// Resume every `paused` session at once (for example after a daemon restart,
    /// which brings live sessions back paused), each exactly as `r1_session_resume`
    /// would; ended and errored sessions are left alone. Idempotent: with nothing
    /// paused it resumes nothing. Returns `{resumed: [session…], failed: [{id,
    /// error_code, error_message}…]}`; a session that cannot be resumed is listed in
    /// `failed` and the others still resume.
    SessionResumeAll session_resume_all {
        method: "session.resume_all",
        http: Post "/v1/sessions/resume" => 200,
        cap: Write,
        idempotency: Natural,
        params: EmptyParams,
        result: ResumeAllResult,
        mcp: mcp("r1_session_resume_all", "r1.session.resume.all"),
        related: ["/v1/sessions"],
        title: "Resume every paused session",
    }

    /// End a session: its running turn and lanes are stopped and it accepts nothing
    /// more; its journal stays readable. Idempotent: killing an ended session is ok.
    /// Returns the session.
    SessionKill session_kill {
        method: "session.kill",
        http: Delete "/v1/sessions/{session_id}" => 200,
        cap: Write,
        idempotency: Natural,
        params: SessionRef,
        result: SessionView,
        mcp: mcp_destructive("r1_session_kill", "r1.session.kill"),
        related: ["/v1/sessions/{session_id}/journal"],
        title: "End a session",
    }

    /// Give a session a new title (1 to 200 characters). Works in every state, ended
    /// sessions too. Idempotent: the same title again changes nothing. Returns the
    /// session.
    SessionRename session_rename {
        method: "session.rename",
        http: Post "/v1/sessions/{session_id}/rename" => 200,
        cap: Write,
        idempotency: Natural,
        params: RenameParams,
        result: SessionView,
        mcp: mcp("r1_session_rename", "r1.session.rename"),
        related: ["/v1/sessions/{session_id}"],
        title: "Rename a session",
    }

    /// Archive a session: it leaves the default `session.list` (and the UI's list) but
    /// stays readable, searchable and usable; `archived: true` in its view. Reversible
    /// with `r1_session_unarchive`. Idempotent. Returns the session.
    SessionArchive session_archive {
        method: "session.archive",
        http: Post "/v1/sessions/{session_id}/archive" => 200,
        cap: Write,
        idempotency: Natural,
        params: SessionRef,
        result: SessionView,
        mcp: mcp("r1_session_archive", "r1.session.archive"),
        related: ["/v1/sessions/{session_id}", "/v1/sessions/{session_id}/unarchive"],
        title: "Archive a session",
    }

    /// Bring an archived session back into the default list. Idempotent. Returns the
    /// session.
    SessionUnarchive session_unarchive {
        method: "session.unarchive",
        http: Post "/v1/sessions/{session_id}/unarchive" => 200,
        cap: Write,
        idempotency: Natural,
        params: SessionRef,
        result: SessionView,
        mcp: mcp("r1_session_unarchive", "r1.session.unarchive"),
        related: ["/v1/sessions/{session_id}"],
        title: "Unarchive a session",
    }

    /// Delete a session for good: a live one is ended first, then its journal and
    /// search entries are removed. Cannot be undone; `not_found` afterwards. Its
    /// worktree, if any, is left for `r1_worktree_clean`. NOT idempotent in its answer:
    /// a second call is `not_found`.
    SessionDelete session_delete {
        method: "session.delete",
        http: Post "/v1/sessions/{session_id}/delete" => 200,
        cap: Write,
        idempotency: Idempotency::None,
        params: SessionRef,
        result: DeleteResult,
        mcp: mcp_destructive("r1_session_delete", "r1.session.delete"),
        related: ["/v1/sessions"],
        title: "Delete a session",
    }

    /// Repair a session quarantined because its journal is corrupt (state `error`,
    /// `crash_recovery` on writes): keep a `.broken` copy of the whole journal, cut it
    /// back to its last good record and bring the session back `paused`. Records after
    /// the damage are lost from the session (they stay in the copy). Idempotent: a
    /// healthy session is returned unchanged with `repaired: false`. Returns
    /// `{session, repaired, last_seq, dropped_bytes, broken_copy}`.
    SessionRepair session_repair {
        method: "session.repair",
        http: Post "/v1/sessions/{session_id}/repair" => 200,
        cap: Write,
        idempotency: Natural,
        params: SessionRef,
        result: RepairResult,
        mcp: mcp_destructive("r1_session_repair", "r1.session.repair"),
        related: ["/v1/sessions/{session_id}", "/v1/sessions/{session_id}/journal", "/v1/sessions/{session_id}/lanes"],
        title: "Repair a quarantined session",
    }

    /// Compact the session's conversation now: the turns before the last two are
    /// summarized by the session's own model (or dropped whole when that fails), as
    /// happens by itself when the next request would not fit the engine's context
    /// budget; `session.compacted` is journaled and the model sees the summary from the
    /// next turn on. The session must be idle (`conflict` while a turn runs). NOT
    /// idempotent: every call summarizes again when there is something before the kept
    /// turns. Returns
    /// `{compacted, method, tokens_before, tokens_after, seq}`.
    SessionCompact session_compact {
        method: "session.compact",
        http: Post "/v1/sessions/{session_id}/compact" => 200,
        cap: Write,
        idempotency: Idempotency::None,
        params: SessionRef,
        result: CompactResult,
        mcp: mcp("r1_session_compact", "r1.session.compact"),
        related: ["/v1/sessions/{session_id}", "/v1/sessions/{session_id}/journal"],
        title: "Compact a session's conversation",
    }

    /// Allow or deny a tool call the agent is waiting on (`approval_id` from the
    /// session's `pending_approvals` or an `approval.requested` record). `allow` lets
    /// the tool run, with whatever effect it has. With `remember: true` the decision
    /// also becomes the session's policy for that tool, so its later calls run (or are
    /// refused) without asking. Idempotent on the target state: the same decision again
    /// is ok; the opposite decision afterwards is a `conflict`. Returns the session.
    SessionApprove session_approve {
        method: "session.approve",
        http: Post "/v1/sessions/{session_id}/approvals/{approval_id}" => 200,
        cap: Write,
        idempotency: Natural,
        params: ApproveParams,
        result: SessionView,
        mcp: mcp_destructive("r1_session_approve", "r1.session.approve"),
        related: ["/v1/sessions/{session_id}", "/v1/sessions/{session_id}/journal", "/v1/sessions/{session_id}/lanes"],
        title: "Decide an approval",
    }

    /// A session actor's own view of itself, for debugging r1: the fold of its journal
    /// (state, running turn, queue, approvals, lanes) and its task's bookkeeping
    /// (waiters, killable lanes, inbox), answered by the actor between two commands.
    /// Its shape may change between versions. Only under MCP `--caps debug`.
    /// Read-only.
    SessionDebugState session_debug_state {
        method: "session.debug_state",
        http: Get "/v1/sessions/{session_id}/debug" => 200,
        cap: Debug,
        idempotency: Natural,
        params: SessionRef,
        result: SessionDebugState,
        mcp: mcp("r1_session_debug_state", "r1.session.debug_state"),
        related: ["/v1/sessions/{session_id}", "/v1/sessions/{session_id}/lanes"],
        title: "Debug a session's actor",
    }

    /// List a session's lanes in creation order: `main` (the conversation) and one
    /// lane per tool call, each with its tool, status (`running`, `done`, `failed`,
    /// `killed`, `waiting`) and whether it is pinned. Read-only.
    LanesList lanes_list {
        method: "lanes.list",
        http: Get "/v1/sessions/{session_id}/lanes" => 200,
        cap: Read,
        idempotency: Natural,
        params: SessionRef,
        result: LaneList,
        mcp: mcp("r1_lanes_list", "r1.lanes.list"),
        related: ["/v1/sessions/{session_id}", "/v1/sessions/{session_id}/journal"],
        title: "List lanes",
    }

    /// Get one lane of a session: its tool, status and whether it is pinned;
    /// `not_found` when the session has no such lane. Read its output with
    /// `r1_bus_replay` (records whose `lane` is this lane). Read-only.
    LanesGet lanes_get {
        method: "lanes.get",
        http: Get "/v1/sessions/{session_id}/lanes/{lane_id}" => 200,
        cap: Read,
        idempotency: Natural,
        params: LaneRef,
        result: LaneView,
        mcp: mcp("r1_lanes_get", "r1.lanes.get"),
        related: ["/v1/sessions/{session_id}", "/v1/sessions/{session_id}/journal", "/v1/sessions/{session_id}/lanes"],
        title: "Get a lane",
    }

    /// Kill the process group of a running tool lane; the tool call fails and the
    /// agent is told. Idempotent: killing a lane that already ended is ok. Returns the
    /// session's lanes.
    LanesKill lanes_kill {
        method: "lanes.kill",
        http: Post "/v1/sessions/{session_id}/lanes/{lane_id}/kill" => 200,
        cap: Write,
        idempotency: Natural,
        params: LaneRef,
        result: LaneList,
        mcp: mcp_destructive("r1_lanes_kill", "r1.lanes.kill"),
        related: ["/v1/sessions/{session_id}", "/v1/sessions/{session_id}/journal", "/v1/sessions/{session_id}/lanes"],
        title: "Kill a lane",
    }

    /// Pin a lane so clients keep it listed and expanded (`pinned: false` unpins it).
    /// Idempotent: pinning a pinned lane is ok. Returns the session's lanes.
    LanesPin lanes_pin {
        method: "lanes.pin",
        http: Post "/v1/sessions/{session_id}/lanes/{lane_id}/pin" => 200,
        cap: Write,
        idempotency: Natural,
        params: PinLaneParams,
        result: LaneList,
        mcp: mcp("r1_lanes_pin", "r1.lanes.pin"),
        related: ["/v1/sessions/{session_id}", "/v1/sessions/{session_id}/journal", "/v1/sessions/{session_id}/lanes"],
        title: "Pin or unpin a lane",
    }

    /// The notes on a session's cortex board, oldest first: each with its `seq`,
    /// `text`, `tags`, whether it is `critical` (put in front of the agent at the start
    /// of its next turn) and its `source` (`client` or the lobe that wrote it). With
    /// `since_seq`, only notes from that seq on. Read-only.
    CortexNotes cortex_notes {
        method: "cortex.notes",
        http: Get "/v1/sessions/{session_id}/cortex/notes" => 200,
        cap: Read,
        idempotency: Natural,
        params: CortexNotesParams,
        result: NoteList,
        mcp: mcp("r1_cortex_notes", "r1.cortex.notes"),
        related: ["/v1/sessions/{session_id}", "/v1/sessions/{session_id}/cortex/lobes"],
        title: "Read a session's notes",
    }

    /// Publish a note on a session's cortex board: `{text, tags[], critical}`. It is
    /// journaled (`cortex.note`), shown in every client's timeline, and when
    /// `critical` the agent is shown it at the start of its next turn. NOT idempotent:
    /// every call adds a note.
    CortexPublish cortex_publish {
        method: "cortex.publish",
        http: Post "/v1/sessions/{session_id}/cortex/notes" => 201,
        cap: Write,
        idempotency: Idempotency::None,
        params: CortexPublishParams,
        result: NoteView,
        mcp: mcp("r1_cortex_publish", "r1.cortex.publish"),
        related: ["/v1/sessions/{session_id}/cortex/notes"],
        title: "Publish a note",
    }

    /// The lobes attached to a session: the built-in `verify` (runs the project's
    /// verify steps after the agent changes files in a worktree), `budget` (warns at
    /// 80 % of the token budget) and `loop` (flags one tool call repeated with the same
    /// arguments), then the user's executables in `$R1_HOME/lobes`; each with whether
    /// it is paused for this session and how many notes it published. Read-only.
    CortexLobesList cortex_lobes_list {
        method: "cortex.lobes_list",
        http: Get "/v1/sessions/{session_id}/cortex/lobes" => 200,
        cap: Read,
        idempotency: Natural,
        params: SessionRef,
        result: LobeList,
        mcp: mcp("r1_cortex_lobes_list", "r1.cortex.lobes_list"),
        related: ["/v1/sessions/{session_id}/cortex/notes"],
        title: "List a session's lobes",
    }

    /// Pause a lobe for one session: it is fed nothing and publishes nothing until
    /// resumed (journaled, so it stays paused across restarts). Idempotent: pausing a
    /// paused lobe is ok. Returns the session's lobes.
    CortexLobePause cortex_lobe_pause {
        method: "cortex.lobe_pause",
        http: Post "/v1/sessions/{session_id}/cortex/lobes/{lobe}/pause" => 200,
        cap: Write,
        idempotency: Natural,
        params: LobeRef,
        result: LobeList,
        mcp: mcp("r1_cortex_lobe_pause", "r1.cortex.lobe_pause"),
        related: ["/v1/sessions/{session_id}/cortex/lobes"],
        title: "Pause a lobe",
    }

    /// Resume a paused lobe for one session. Idempotent: resuming a running lobe is
    /// ok. Returns the session's lobes.
    CortexLobeResume cortex_lobe_resume {
        method: "cortex.lobe_resume",
        http: Post "/v1/sessions/{session_id}/cortex/lobes/{lobe}/resume" => 200,
        cap: Write,
        idempotency: Natural,
        params: LobeRef,
        result: LobeList,
        mcp: mcp("r1_cortex_lobe_resume", "r1.cortex.lobe_resume"),
        related: ["/v1/sessions/{session_id}/cortex/lobes"],
        title: "Resume a lobe",
    }

    /// Long-poll a session's journal: returns the records with seq >= `since_seq`
    /// (`data.records`) and the seq to ask for next (`data.next_seq`). When there are
    /// none yet it waits up to `wait_ms` (default 0, at most 60000) for the first one,
    /// then answers, possibly with no records. Loop on `next_seq` to follow a session;
    /// the agent's reply is a `session.message` record with `data.role =
    /// "assistant"`. Read-only.
    SessionTail session_tail {
        method: "session.tail",
        http: Get "/v1/sessions/{session_id}/journal/tail" => 200,
        cap: Read,
        idempotency: Natural,
        params: TailParams,
        result: JournalPage,
        mcp: mcp("r1_bus_tail", "r1.bus.tail"),
        related: ["/v1/sessions/{session_id}", "/v1/sessions/{session_id}/journal"],
        title: "Tail a session's journal",
    }

    /// Read a session's journal from `since_seq` without waiting: `data.records` in
    /// seq order and `data.next_seq` to read the next page. `since_seq = 1` replays
    /// the whole session. Read-only.
    SessionJournal session_journal {
        method: "session.journal",
        http: Get "/v1/sessions/{session_id}/journal" => 200,
        cap: Read,
        idempotency: Natural,
        params: JournalParams,
        result: JournalPage,
        mcp: mcp("r1_bus_replay", "r1.bus.replay"),
        related: ["/v1/sessions/{session_id}", "/v1/sessions/{session_id}/lanes"],
        title: "Replay a session's journal",
    }

    /// List the engines sessions can run with: name, kind, default model, whether it
    /// is available now and why, and which one is the default. Read-only.
    EnginesList engines_list {
        method: "engines.list",
        http: Get "/v1/engines" => 200,
        cap: Read,
        idempotency: Natural,
        params: EmptyParams,
        result: EngineList,
        mcp: mcp("r1_engines_list", "r1.engines.list"),
        related: [],
        title: "List engines",
    }

    /// List the git worktrees of sessions started with `worktree` (all of them, or one
    /// session's): id, session, repo, path, branch, base commit, head commit, whether it
    /// has uncommitted changes (`dirty`), `ahead`/`behind` (commits relative to the base
    /// branch's current tip) and state (`active`, `merged`, `cleaned`). Read-only.
    WorktreeList worktree_list {
        method: "worktree.list",
        http: Get "/v1/worktrees" => 200,
        cap: Read,
        idempotency: Natural,
        params: WorktreeListParams,
        result: WorktreeList,
        mcp: mcp("r1_worktree_list", "r1.worktree.list"),
        related: [],
        title: "List worktrees",
    }

    /// The unified diff of a worktree against its base commit: its commits, its
    /// uncommitted and its untracked changes together (`data.diff`), with one stat per
    /// file (`data.files`). Cut at 200 KiB unless `full` (`data.truncated`). Read-only.
    WorktreeDiff worktree_diff {
        method: "worktree.diff",
        http: Get "/v1/worktrees/{worktree_id}/diff" => 200,
        cap: Read,
        idempotency: Natural,
        params: WorktreeDiffParams,
        result: WorktreeDiff,
        mcp: mcp("r1_worktree_diff", "r1.worktree.diff"),
        related: ["/v1/worktrees"],
        title: "Diff a worktree",
    }

    /// Merge a worktree's branch into its base branch in the repository's checkout,
    /// after committing its pending changes on its branch (message: the session's
    /// title). `strategy`: `ff-only` (only if the base branch has not moved), `squash`
    /// (one new commit) or `ours` (a merge commit; conflicting hunks take the base
    /// branch's side). On a conflict, a non-fast-forward, or uncommitted changes in the
    /// checkout to the same files, nothing changes and the error is `conflict` naming
    /// the files. Returns the worktree (state `merged`) and the base branch's new commit.
    /// NOT idempotent: a second call merges whatever the branch has gained since.
    WorktreeMerge worktree_merge {
        method: "worktree.merge",
        http: Post "/v1/worktrees/{worktree_id}/merge" => 200,
        cap: Write,
        idempotency: Idempotency::None,
        params: WorktreeMergeParams,
        result: WorktreeMergeResult,
        mcp: mcp("r1_worktree_merge", "r1.worktree.merge"),
        related: ["/v1/worktrees", "/v1/worktrees/{worktree_id}/diff"],
        title: "Merge a worktree",
    }

    /// Remove a worktree from disk, and its branch once merged. A worktree with
    /// uncommitted changes is refused (`conflict`) unless `force`; an unmerged branch is
    /// kept unless `force`, which deletes it and its work. Idempotent: cleaning a
    /// cleaned worktree is ok. Returns the worktree (state `cleaned`).
    WorktreeClean worktree_clean {
        method: "worktree.clean",
        http: Post "/v1/worktrees/{worktree_id}/clean" => 200,
        cap: Write,
        idempotency: Natural,
        params: WorktreeCleanParams,
        result: WorktreeView,
        mcp: mcp_destructive("r1_worktree_clean", "r1.worktree.clean"),
        related: ["/v1/worktrees"],
        title: "Clean a worktree",
    }

    /// Read one file of a session's workdir (its worktree when it has one), read-only:
    /// `path` is relative to the workdir; absolute paths and `..` are refused
    /// (`validation`), a path that resolves outside the workdir through a symlink or into
    /// r1's state directory is `permission_denied`, anything but a regular file
    /// (directory, fifo, device) is `validation`, a missing file is `not_found`. Returns
    /// its size, modification time and text, cut at `max_bytes` (default 256 KiB, at most
    /// 1 MiB; `data.truncated`); a binary file (a NUL byte in its first 8 KiB, or not
    /// UTF-8) has `data.binary` and no text. Read-only.
    WorkdirRead workdir_read {
        method: "workdir.read",
        http: Get "/v1/sessions/{session_id}/files" => 200,
        cap: Read,
        idempotency: Natural,
        params: WorkdirReadParams,
        result: WorkdirFile,
        mcp: mcp("r1_workdir_read", "r1.workdir.read"),
        related: ["/v1/sessions/{session_id}"],
        title: "Read a workdir file",
    }

    /// Queue a mission: `spec.prompt` is sent to a new session of its own in `spec.workdir`
    /// (in a new git worktree unless `spec.worktree` is false) once one of the daemon's
    /// workers is free (`[missions] workers`, default 2); when the session's turn ends,
    /// the `spec.verify` steps (`build`, `test`, `lint`) run in its worktree. State:
    /// `queued`, `running`, `verifying`, then `succeeded`, `failed` or `cancelled`.
    /// NOT idempotent: every call queues another mission. Returns the mission; follow
    /// it with `r1_mission_get` or the `mission.*` events of `/v1/events`.
    MissionCreate mission_create {
        method: "mission.create",
        http: Post "/v1/missions" => 201,
        cap: Write,
        idempotency: Idempotency::None,
        params: MissionCreateParams,
        result: MissionView,
        mcp: mcp("r1_mission_create", "r1.mission.create"),
        related: ["/v1/missions"],
        created: "/v1/missions/{id}",
        title: "Queue a mission",
    }

    /// List missions, oldest first: all of them, those a session asked for or runs
    /// (`session_id`), or those in one `state`. Read-only.
    MissionList mission_list {
        method: "mission.list",
        http: Get "/v1/missions" => 200,
        cap: Read,
        idempotency: Natural,
        params: MissionListParams,
        result: MissionList,
        mcp: mcp("r1_mission_list", "r1.mission.list"),
        related: [],
        title: "List missions",
    }

    /// Get a mission: its state, session, worktree, verify results, timings, tokens
    /// used and the tail of its session's log. Read-only.
    MissionGet mission_get {
        method: "mission.get",
        http: Get "/v1/missions/{mission_id}" => 200,
        cap: Read,
        idempotency: Natural,
        params: MissionRef,
        result: MissionView,
        mcp: mcp("r1_mission_get", "r1.mission.get"),
        related: ["/v1/missions"],
        title: "Get a mission",
    }

    /// Cancel a mission: a queued one never starts; a running one's turn is cancelled
    /// and its lanes (verify commands too) are killed; its worktree is kept. Idempotent:
    /// cancelling a finished mission returns it unchanged. Returns the mission.
    MissionCancel mission_cancel {
        method: "mission.cancel",
        http: Post "/v1/missions/{mission_id}/cancel" => 200,
        cap: Write,
        idempotency: Natural,
        params: MissionRef,
        result: MissionView,
        mcp: mcp_destructive("r1_mission_cancel", "r1.mission.cancel"),
        related: ["/v1/missions", "/v1/missions/{mission_id}"],
        title: "Cancel a mission",
    }

    /// Resume a mission a daemon restart paused: it is queued again and continues in
    /// its session (resuming that session) when a worker is free. Idempotent: a
    /// mission that is not paused is returned unchanged. Returns the mission.
    MissionResume mission_resume {
        method: "mission.resume",
        http: Post "/v1/missions/{mission_id}/resume" => 200,
        cap: Write,
        idempotency: Natural,
        params: MissionRef,
        result: MissionView,
        mcp: mcp("r1_mission_resume", "r1.mission.resume"),
        related: ["/v1/missions", "/v1/missions/{mission_id}"],
        title: "Resume a paused mission",
    }

    /// Build the project in a worktree (`worktree_id`) or a session's workdir
    /// (`session_id`) with its own command: `[build]` of `.r1/verify.toml`, else
    /// detected (`cargo build`, `go build ./...`, `npm run build`, `make build`). The
    /// output streams to a new lane of the session (`lane.delta`); the result is
    /// journaled (`verify.completed`). NOT idempotent: every call runs the command
    /// again. Returns `{ok, exit_code, duration_ms, command, summary, failures}`.
    VerifyBuild verify_build {
        method: "verify.build",
        http: Post "/v1/verify/build" => 200,
        cap: Write,
        idempotency: Idempotency::None,
        params: VerifyParams,
        result: VerifyResult,
        mcp: mcp("r1_verify_build", "r1.verify.build"),
        related: ["/v1/sessions/{session_id}/lanes"],
        title: "Build a worktree",
    }

    /// Run the project's tests in a worktree (`worktree_id`) or a session's workdir
    /// (`session_id`): `[test]` of `.r1/verify.toml`, else detected (`cargo test`,
    /// `pytest`, `go test ./...`, `npm test`, `make test`). The output streams to a new
    /// lane of the session; failing tests are parsed from the tool's machine output
    /// into `failures`. NOT idempotent: every call runs the tests again. Returns `{ok,
    /// exit_code, duration_ms, command, summary, failures}`.
    VerifyTest verify_test {
        method: "verify.test",
        http: Post "/v1/verify/test" => 200,
        cap: Write,
        idempotency: Idempotency::None,
        params: VerifyParams,
        result: VerifyResult,
        mcp: mcp("r1_verify_test", "r1.verify.test"),
        related: ["/v1/sessions/{session_id}/lanes"],
        title: "Test a worktree",
    }

    /// Lint the project in a worktree (`worktree_id`) or a session's workdir
    /// (`session_id`): `[lint]` of `.r1/verify.toml`, else detected (`cargo clippy`,
    /// `ruff check`, `go vet ./...`, `npm run lint`, `make lint`). The output streams to
    /// a new lane of the session. NOT idempotent: every call runs the linter again.
    /// Returns `{ok, exit_code, duration_ms, command, summary, failures}`.
    VerifyLint verify_lint {
        method: "verify.lint",
        http: Post "/v1/verify/lint" => 200,
        cap: Write,
        idempotency: Idempotency::None,
        params: VerifyParams,
        result: VerifyResult,
        mcp: mcp("r1_verify_lint", "r1.verify.lint"),
        related: ["/v1/sessions/{session_id}/lanes"],
        title: "Lint a worktree",
    }
    /// Full-text search over every session's messages, tool calls and output, and
    /// approval requests, most relevant first. `q` is SQLite FTS5 syntax: words (all
    /// must match), `"a phrase"`, `prefix*`, `AND`/`OR`/`NOT`, parentheses; a malformed
    /// query is a `validation` error with the engine's message. Filter with
    /// `session_id`, `kind` (`message`, `tool`, `approval`) and `since` (RFC 3339).
    /// Each hit has `session_id`, `session_title`, `seq` (read it with
    /// `r1_session_journal` from that seq), `kind`, `at` and a `snippet` with matches
    /// in `[` `]`. Page with `next_cursor`. Read-only.
    SearchQuery search {
        method: "search.query",
        http: Get "/v1/search" => 200,
        cap: Read,
        idempotency: Natural,
        params: SearchParams,
        result: SearchResult,
        mcp: mcp("r1_search", "r1.search"),
        related: [],
        title: "Search every session",
    }

    /// Rebuild the search index from the session journals, which are its source of
    /// truth: drops every document and reads every journal again. Returns how many
    /// sessions and records it read and how long it took. Not offered over MCP.
    SearchReindex search_reindex {
        method: "search.reindex",
        http: Post "/v1/search/reindex" => 200,
        cap: Write,
        idempotency: Natural,
        params: EmptyParams,
        result: ReindexResult,
        mcp: None,
        related: [],
        title: "Rebuild the search index",
    }

    /// Open a page of the daemon's own web UI in the daemon's headless browser
    /// (Playwright MCP with the system's Chromium, started on first use and stopped
    /// when idle). `url` must be on the daemon's origin (or a path such as `/`); any
    /// other is a `validation` error naming the origin. The first navigation of a
    /// browser logs it in with a single-use code, never the token. When Node.js, the
    /// npm package `@playwright/mcp` or Chromium is missing, the error (`conflict`)
    /// says what to install. Returns the page: url, title and accessibility snapshot.
    WebNavigate web_navigate {
        method: "web.navigate",
        http: Post "/v1/web/navigate" => 200,
        cap: Write,
        idempotency: Natural,
        params: WebNavigateParams,
        result: WebPageView,
        mcp: mcp("r1_web_navigate", "r1.web.navigate"),
        related: ["/v1/web/snapshot"],
        title: "Open a web UI page",
    }

    /// Click an element of the page the browser shows: `selector` is its accessibility
    /// name (`Send`, matched exactly, then ignoring case), a ref from a snapshot
    /// (`e12`), a CSS selector or a Playwright locator. An element that matches nothing
    /// is `not_found`; a name several elements share is `validation`, listing them.
    /// NOT idempotent. Returns the page after the click.
    WebClick web_click {
        method: "web.click",
        http: Post "/v1/web/click" => 200,
        cap: Write,
        idempotency: Idempotency::None,
        params: WebClickParams,
        result: WebPageView,
        mcp: mcp("r1_web_click", "r1.web.click"),
        related: ["/v1/web/snapshot"],
        title: "Click in the web UI",
    }

    /// Set a field of the page the browser shows to `value` (what it held is
    /// replaced); `selector` as for `web.click` (a field's accessibility name is
    /// usually its label, e.g. `Message`). Idempotent. Returns the page after.
    WebFill web_fill {
        method: "web.fill",
        http: Post "/v1/web/fill" => 200,
        cap: Write,
        idempotency: Natural,
        params: WebFillParams,
        result: WebPageView,
        mcp: mcp("r1_web_fill", "r1.web.fill"),
        related: ["/v1/web/snapshot"],
        title: "Fill a field in the web UI",
    }

    /// The accessibility snapshot of the page the browser shows (`about:blank` before
    /// any `web.navigate`): one line per node, `- role "name" [ref=eN]`. Changes
    /// nothing on the page, but drives the browser logged in as the daemon's user, so
    /// it needs the write capability like the other `web.*` operations.
    WebSnapshot web_snapshot {
        method: "web.snapshot",
        http: Post "/v1/web/snapshot" => 200,
        cap: Write,
        idempotency: Natural,
        params: EmptyParams,
        result: WebPageView,
        mcp: mcp("r1_web_snapshot", "r1.web.snapshot"),
        related: [],
        title: "Snapshot the web UI",
    }

    /// Open a headless `r1 tui` inside the daemon: the same model, keys and screen as
    /// the terminal client, driven by `r1_tui_press_key` and read by `r1_tui_snapshot`.
    /// `session_id` attaches it to a session (else the newest live one); `width` and
    /// `height` size its screen (default 100x30). Returns `data.tui_session_id`. At most
    /// 16 are open at once (`budget_exceeded` past it); one idle for
    /// `idle_timeout_s` (10 minutes) is closed. NOT idempotent: every call opens another.
    TuiOpen tui_open {
        method: "tui.open",
        http: Post "/v1/tui" => 201,
        cap: Write,
        idempotency: Idempotency::None,
        params: TuiOpenParams,
        result: TuiOpened,
        mcp: mcp("r1_tui_open", "r1.tui.open"),
        related: ["/v1/tui/{tui_session_id}/snapshot"],
        title: "Open a headless TUI",
    }

    /// Close a headless TUI. Idempotent: closing one that is already closed (or was
    /// reaped) is ok.
    TuiClose tui_close {
        method: "tui.close",
        http: Post "/v1/tui/{tui_session_id}/close" => 200,
        cap: Write,
        idempotency: Natural,
        params: TuiRef,
        result: Ack,
        mcp: mcp("r1_tui_close", "r1.tui.close"),
        related: [],
        title: "Close a headless TUI",
    }

    /// Press one key in a headless TUI, by name (`a`, `enter`, `esc`, `ctrl+c`,
    /// `shift+tab`, `space`…), exactly as in the terminal: typing goes into the
    /// message box, `enter` sends, `y`/`n`/`a` decide an approval card, `ctrl+q`
    /// closes it. The catalog calls the key triggers run before it answers. Returns
    /// the screen afterwards, as `r1_tui_snapshot` does. NOT idempotent: every press
    /// acts.
    TuiPressKey tui_press_key {
        method: "tui.press_key",
        http: Post "/v1/tui/{tui_session_id}/keys" => 200,
        cap: Write,
        idempotency: Idempotency::None,
        params: TuiKeyParams,
        result: TuiSnapshot,
        mcp: mcp("r1_tui_press_key", "r1.tui.press_key"),
        related: ["/v1/tui/{tui_session_id}/snapshot"],
        title: "Press a key in a headless TUI",
    }

    /// The screen of a headless TUI, brought up to date with its session's journal:
    /// `data.lines` (the rows as text, as a terminal of that size shows them), the
    /// cursor, and `data.elements`, every actionable element with a stable `id`, its
    /// `label`, the `key` that triggers it and the catalog `method` it calls.
    /// Streaming text shows once its message is journaled. Read-only.
    TuiSnapshot tui_snapshot {
        method: "tui.snapshot",
        http: Get "/v1/tui/{tui_session_id}/snapshot" => 200,
        cap: Read,
        idempotency: Natural,
        params: TuiRef,
        result: TuiSnapshot,
        mcp: mcp("r1_tui_snapshot", "r1.tui.snapshot"),
        related: [],
        title: "Read a headless TUI's screen",
    }

    /// Focus a lane of the shown session in a headless TUI's lanes pane, so its output
    /// shows (and `k` would kill it); `not_found` when the session has no such lane.
    /// Idempotent. Returns the screen.
    TuiFocusLane tui_focus_lane {
        method: "tui.focus_lane",
        http: Post "/v1/tui/{tui_session_id}/focus_lane" => 200,
        cap: Write,
        idempotency: Natural,
        params: TuiFocusLaneParams,
        result: TuiSnapshot,
        mcp: mcp("r1_tui_focus_lane", "r1.tui.focus_lane"),
        related: ["/v1/tui/{tui_session_id}/snapshot"],
        title: "Focus a lane in a headless TUI",
    }

    /// A headless TUI's model as JSON, for debugging r1, at `jsonpath`: `$` for all of
    /// it, else keys and array indexes joined by `.` (`$.focus`,
    /// `$.transcripts.ses_1.entries.0.text`); a path that leads nowhere is a
    /// `validation` error. Its shape may change between versions. Only under MCP
    /// `--caps debug`. Read-only.
    TuiGetModel tui_get_model {
        method: "tui.get_model",
        http: Get "/v1/tui/{tui_session_id}/model" => 200,
        cap: Debug,
        idempotency: Natural,
        params: TuiGetModelParams,
        result: TuiModelView,
        mcp: mcp("r1_tui_get_model", "r1.tui.get_model"),
        related: ["/v1/tui/{tui_session_id}/snapshot"],
        title: "Debug a headless TUI's model",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn methods_names_and_tools_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for op in OPERATIONS {
            assert!(seen.insert(op.method), "{}", op.method);
            assert!(seen.insert(op.name), "{}", op.name);
            if let Some(t) = op.mcp {
                assert!(seen.insert(t.name), "{}", t.name);
                assert!(seen.insert(t.alias), "{}", t.alias);
            }
        }
    }

    #[test]
    fn path_fields_are_params_fields() {
        for op in OPERATIONS {
            let schema = (op.params_schema)();
            for f in op.path_fields() {
                assert!(
                    schema["properties"].get(f).is_some(),
                    "{}: path field {f} is not a params field",
                    op.method
                );
                assert!(
                    schema["required"]
                        .as_array()
                        .is_some_and(|r| r.contains(&Value::from(f))),
                    "{}: path field {f} must be required",
                    op.method
                );
            }
            if let Idempotency::Keyed(k) = op.idempotency {
                assert!(schema["properties"].get(k).is_some(), "{}", op.method);
            }
        }
    }

    #[test]
    fn parse_checks_ids_aliases_and_shapes() {
        let r = Request::parse(
            "lanes.kill",
            serde_json::json!({"session_id": "ses_1", "lane": "tool_1"}),
        )
        .unwrap();
        assert_eq!(
            r,
            Request::LanesKill(LaneRef {
                session_id: "ses_1".into(),
                lane_id: "tool_1".into()
            })
        );
        assert_eq!(r.operation().method, "lanes.kill");
        for bad in [
            serde_json::json!({"session_id": "../x"}),
            serde_json::json!({"session_id": "ses_1", "extra": 1}),
            serde_json::json!("ses_1"),
            serde_json::json!({}),
        ] {
            let e = Request::parse("session.get", bad).unwrap_err();
            assert_eq!(e.code, crate::ErrorCode::Validation);
            assert!(!e.message.contains("SessionRef"), "{}", e.message);
        }
        let e = Request::parse("session.nope", Value::Null).unwrap_err();
        assert_eq!(e.code, crate::ErrorCode::NotFound);
        let pin = Request::parse(
            "lanes.pin",
            serde_json::json!({"session_id": "s", "lane_id": "l"}),
        )
        .unwrap();
        assert!(matches!(pin, Request::LanesPin(p) if p.pinned));
    }

    #[test]
    fn fill_encodes_each_value_as_one_segment() {
        let p = serde_json::json!({"session_id": "a/b c", "lane_id": "x"});
        assert_eq!(
            operation("lanes.kill").unwrap().fill_path(&p).unwrap(),
            "/v1/sessions/a%2Fb%20c/lanes/x/kill"
        );
        assert!(operation("session.get")
            .unwrap()
            .fill_path(&serde_json::json!({}))
            .is_err());
    }
}
