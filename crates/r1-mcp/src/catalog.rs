//! The tool catalog, generated from `r1_proto::OPERATIONS`: every operation with an
//! MCP tool is one tool, with its params schema as `inputSchema`, the envelope around
//! its result schema as `outputSchema`, its annotations from its capability and
//! idempotency, and its doc as the description. Nothing here is per tool.

use r1_proto::{Idempotency, OperationInfo, OPERATIONS};
use serde_json::{json, Map, Value};

use crate::Caps;

/// The hints a tool carries in `tools/list` as MCP annotations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ToolHints {
    /// `readOnlyHint`: the tool changes nothing.
    pub read_only: bool,
    /// `idempotentHint`: calling it again with the same arguments has no further effect.
    pub idempotent: bool,
    /// `destructiveHint`: it may discard work or stop something that is running.
    pub destructive: bool,
}

/// One tool of the catalog, as `tools/list` and `--print-tools` show it.
#[derive(Debug, Clone)]
pub struct ToolInfo {
    /// The wire name, e.g. `r1_session_start` (matches `^[a-zA-Z0-9_-]{1,64}$`).
    pub name: &'static str,
    /// The dotted name of the r1 catalog, e.g. `r1.session.start`, accepted on
    /// `tools/call` as an alias of [`ToolInfo::name`].
    pub alias: &'static str,
    /// A short title for people.
    pub title: &'static str,
    /// What the tool does and when to use it, written for an agent.
    pub description: String,
    /// The JSON Schema (draft 2020-12) of the tool's arguments.
    pub input_schema: Map<String, Value>,
    /// The JSON Schema of the tool's `structuredContent`: the envelope, whose `data`
    /// is the operation's result.
    pub output_schema: Map<String, Value>,
    /// The annotations.
    pub hints: ToolHints,
    /// True when the tool changes state; such tools need [`Caps::Write`].
    pub mutating: bool,
    /// True for an introspection tool, listed only under [`Caps::Debug`].
    pub debug: bool,
    /// The catalog operation the tool calls; `None` for the tools the MCP server runs
    /// itself (`r1_cli_invoke`).
    pub operation: Option<&'static OperationInfo>,
}

/// `schema` as the root of a tool schema: no `$schema`, no Rust type name or doc (the
/// tool's own title and description say it better), and `type: object`.
fn tool_schema(schema: Value) -> Map<String, Value> {
    let mut map = match schema {
        Value::Object(map) => map,
        // A struct always has an object schema; an empty one still says "an object".
        _ => Map::new(),
    };
    map.remove("$schema");
    map.remove("title");
    map.remove("description");
    map.insert("type".into(), Value::String("object".into()));
    map
}

/// The envelope around `result`: `{ok, data, links}` on success, `{ok, error_code,
/// error_message, links}` on failure. `result`'s `$defs` move to the root, where its
/// `#/$defs/…` references point.
fn output_schema(result: Value) -> Map<String, Value> {
    let mut data = match result {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    let defs = data.remove("$defs");
    data.remove("$schema");
    let strings = json!({"type": "array", "items": {"type": "string"}});
    let mut out = tool_schema(json!({
        "properties": {
            "ok": {"type": "boolean", "description": "True on success."},
            "data": data,
            "error_code": {
                "type": "string",
                "description": "On failure: one of the ten wire codes.",
                "enum": ["validation", "not_found", "conflict", "append_only_violation",
                         "permission_denied", "budget_exceeded", "timeout", "crash_recovery",
                         "schema_version", "internal"],
            },
            "error_message": {"type": "string", "description": "On failure: what went wrong."},
            "links": {
                "type": "object",
                "properties": {"self": {"type": "string"}, "related": strings, "deprecations": strings},
                "required": ["self", "related", "deprecations"],
            },
        },
        "required": ["ok", "links"],
    }));
    if let Some(defs) = defs {
        out.insert("$defs".into(), defs);
    }
    out
}

/// The tools a server running with `caps` lists and allows: under [`Caps::Read`] only
/// the non-mutating ones, under [`Caps::Write`] all of them. The catalog's operations
/// come first, then the tools the server runs itself.
pub fn catalog(caps: Caps) -> Vec<ToolInfo> {
    OPERATIONS
        .iter()
        .filter(|op| caps.allows_op(op))
        .filter_map(info)
        .chain(
            local_tools()
                .into_iter()
                .filter(|t| caps.allows(t.mutating)),
        )
        .collect()
}

/// The tools the MCP server runs itself rather than through an operation: they act
/// where the server runs (its own binary), not in the daemon.
pub(crate) fn local_tools() -> Vec<ToolInfo> {
    use crate::{cli, subscribe};
    let subscribe = ToolInfo {
        name: subscribe::NAME,
        alias: subscribe::ALIAS,
        title: "Subscribe to a session's lanes",
        description: format!(
            "Stream a session's lane events (`lane.created`, `lane.delta`, `lane.status`, \
             `lane.killed`, and the main lane's `session.delta`) from `since_seq` as MCP \
             progress notifications: call it with `_meta.progressToken`. Events are \
             coalesced to at most {} notifications a second (consecutive deltas of a lane \
             merged); each notification's `message` is JSON `{{\"next_seq\", \"events\": \
             [{{lane, kind, seq, to_seq, text | data}}]}}`, at most {} bytes of events. The \
             call ends when the session's turn ends, when the session ends or after \
             `max_duration_ms` (default {}), and answers `next_seq` to continue from. A \
             client that takes no notification for {} s is dropped (`timeout`). Read-only.",
            subscribe::RATE_HZ,
            subscribe::MAX_BATCH_BYTES,
            subscribe::DEFAULT_MAX_DURATION_MS,
            subscribe::SEND_GRACE.as_secs(),
        ),
        input_schema: tool_schema(r1_proto::schema::strict_schema_for::<
            subscribe::LanesSubscribeParams,
        >()),
        output_schema: output_schema(r1_proto::schema::strict_output_schema_for::<
            subscribe::LanesSubscribeResult,
        >()),
        hints: ToolHints {
            read_only: true,
            idempotent: true,
            destructive: false,
        },
        mutating: false,
        debug: false,
        operation: None,
    };
    let cli = ToolInfo {
        name: cli::NAME,
        alias: cli::ALIAS,
        title: "Run the r1 CLI",
        description: format!(
            "Run r1's own command line, e.g. `args: [\"ctl\", \"sessions\", \"list\", \"--json\"]`, \
             in `workdir`, and return its exit code, stdout and stderr (each cut at {} bytes, \
             with a marker line). It is not a shell: the program is always r1, `args[0]` must \
             be one of {}, a `ctl` verb one of {}, and `--home` is refused. The command is \
             killed after `timeout_sec` (default {}, at most {}). NOT idempotent: every call \
             runs the command again.",
            cli::MAX_OUTPUT_BYTES,
            cli::ALLOWED_VERBS.join(", "),
            cli::ALLOWED_CTL_VERBS.join(", "),
            cli::DEFAULT_TIMEOUT_SEC,
            cli::MAX_TIMEOUT_SEC,
        ),
        input_schema: tool_schema(r1_proto::schema::strict_schema_for::<cli::CliInvokeParams>()),
        output_schema: output_schema(r1_proto::schema::strict_output_schema_for::<
            cli::CliInvokeResult,
        >()),
        hints: ToolHints {
            read_only: false,
            idempotent: false,
            destructive: false,
        },
        mutating: true,
        debug: false,
        operation: None,
    };
    vec![subscribe, cli]
}

/// The tool of `op`, if it has one.
pub(crate) fn info(op: &'static OperationInfo) -> Option<ToolInfo> {
    let tool = op.mcp?;
    Some(ToolInfo {
        name: tool.name,
        alias: tool.alias,
        title: op.title,
        description: op.doc(),
        input_schema: tool_schema((op.params_schema)()),
        output_schema: output_schema((op.result_schema)()),
        hints: ToolHints {
            read_only: op.read_only(),
            idempotent: op.idempotency == Idempotency::Natural,
            destructive: tool.destructive,
        },
        mutating: !op.read_only(),
        debug: op.capability == r1_proto::Capability::Debug,
        operation: Some(op),
    })
}

impl ToolInfo {
    /// This tool as an MCP `Tool` object (`name`, `title`, `description`,
    /// `inputSchema`, `annotations`).
    pub fn to_mcp_json(&self) -> Value {
        serde_json::json!({
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "inputSchema": self.input_schema,
            "outputSchema": self.output_schema,
            "annotations": {
                "title": self.title,
                "readOnlyHint": self.hints.read_only,
                "idempotentHint": self.hints.idempotent,
                "destructiveHint": self.hints.destructive,
                "openWorldHint": false,
            },
        })
    }
}

/// The catalog as text: a JSON document `{"tools": [...]}` in the shape of MCP's
/// `tools/list`, or, with `markdown`, the page `docs/AGENTIC-API-CATALOG.md` is
/// generated from.
pub fn print_tools(caps: Caps, markdown: bool) -> String {
    let tools = catalog(caps);
    if !markdown {
        let list: Vec<Value> = tools.iter().map(ToolInfo::to_mcp_json).collect();
        let doc = serde_json::json!({ "tools": list });
        return serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n";
    }
    let mut out = String::new();
    out.push_str("# r1 agentic API catalog\n\n");
    out.push_str(
        "<!-- Generated by `r1 mcp serve --caps debug --print-tools --markdown`; do not edit.\n     \
         Regenerate with `R1_BLESS=1 cargo test -p r1-mcp --test catalog`; the tools come from\n     the operation catalog in crates/r1-proto/src/catalog.rs. -->\n\n",
    );
    out.push_str(
        "The tools `r1 mcp serve` (stdio) and the daemon's `/mcp` endpoint (streamable HTTP) \
         offer to other agents. Every result is an envelope, sent both as `structuredContent` \
         and as one JSON text item:\n\n\
         ```json\n\
         {\"ok\": true, \"data\": {}, \"links\": {\"self\": \"/v1/...\", \"related\": [], \"deprecations\": []}}\n\
         {\"ok\": false, \"error_code\": \"not_found\", \"error_message\": \"...\", \"links\": {\"self\": \"/v1/...\", \"related\": [], \"deprecations\": []}}\n\
         ```\n\n\
         `error_code` is one of `validation`, `not_found`, `conflict`, `append_only_violation`, \
         `permission_denied`, `budget_exceeded`, `timeout`, `crash_recovery`, `schema_version`, \
         `internal`. Under `--caps read` (the default) only the read-only tools are listed, and \
         calling a mutating one answers `permission_denied`; `--caps write` enables them all \
         but the introspection tools, which `--caps debug` adds. \
         The dotted names (`r1.session.start`, …) are accepted as aliases on `tools/call`.\n\n",
    );
    out.push_str("| Tool | Alias | Read-only | Idempotent | Destructive |\n");
    out.push_str("| --- | --- | --- | --- | --- |\n");
    let yn = |b: bool| if b { "yes" } else { "no" };
    for t in &tools {
        out.push_str(&format!(
            "| [`{}`](#{}) | `{}` | {} | {} | {} |\n",
            t.name,
            t.name,
            t.alias,
            yn(t.hints.read_only),
            yn(t.hints.idempotent),
            yn(t.hints.destructive)
        ));
    }
    for t in &tools {
        out.push_str(&format!("\n## {}\n\n", t.name));
        out.push_str(&format!("**{}** (alias `{}`", t.title, t.alias));
        out.push_str(if t.debug {
            "; read-only introspection: needs `--caps debug`)\n\n"
        } else if t.mutating {
            "; mutating: needs `--caps write`)\n\n"
        } else {
            "; read-only)\n\n"
        });
        out.push_str(&t.description);
        out.push_str("\n\nInput schema:\n\n```json\n");
        out.push_str(&serde_json::to_string_pretty(&t.input_schema).unwrap_or_default());
        out.push_str("\n```\n\nResult (`data`) schema:\n\n```json\n");
        let data = &t.output_schema["properties"]["data"];
        out.push_str(&serde_json::to_string_pretty(data).unwrap_or_default());
        out.push_str("\n```\n");
    }
    out
}
