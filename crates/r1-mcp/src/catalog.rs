//! The tool catalog: names, titles, descriptions, input schemas and hints, declared
//! once. The dispatcher in `dispatch.rs` parses each tool's arguments into the same
//! parameter structs whose schemas are listed here, so the schema a client sees is the
//! shape the server accepts.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};

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
#[derive(Debug, Clone, PartialEq)]
pub struct ToolInfo {
    /// The wire name, e.g. `r1_session_start` (matches `^[a-zA-Z0-9_-]{1,64}$`).
    pub name: &'static str,
    /// The dotted name of the r1 catalog, e.g. `r1.session.start`, accepted on
    /// `tools/call` as an alias of [`ToolInfo::name`].
    pub alias: &'static str,
    /// A short title for people.
    pub title: &'static str,
    /// What the tool does and when to use it, written for an agent.
    pub description: &'static str,
    /// The JSON Schema (draft 2020-12) of the tool's arguments.
    pub input_schema: Map<String, Value>,
    /// The annotations.
    pub hints: ToolHints,
    /// True when the tool changes state; such tools need [`Caps::Write`].
    pub mutating: bool,
}

/// Arguments of `r1_session_start`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct StartArgs {
    /// An absolute path to an existing directory the agent will work in; it must be
    /// outside the daemon's state directory.
    pub workdir: String,
    /// The engine (provider) to use; the daemon's default engine when absent.
    #[serde(default)]
    pub engine: Option<String>,
    /// The model; the engine's default when absent.
    #[serde(default)]
    pub model: Option<String>,
    /// A title for people.
    #[serde(default)]
    pub title: Option<String>,
}

/// Arguments of `r1_session_send`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SendArgs {
    /// The session id (`ses_…`).
    pub session_id: String,
    /// The message text.
    pub text: String,
    /// An idempotency key of your choice: sending again with the same key returns the
    /// original `message_id` instead of posting the message twice.
    #[serde(default)]
    pub client_message_id: Option<String>,
}

/// Arguments of the tools that address one session.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SessionArgs {
    /// The session id (`ses_…`).
    pub session_id: String,
}

/// Arguments of tools that take none.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NoArgs {}

/// A decision on a pending approval.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Decision {
    /// Let the tool call run.
    Allow,
    /// Refuse the tool call; the model is told it was denied.
    Deny,
}

impl Decision {
    /// The wire spelling the `Api` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Deny => "deny",
        }
    }
}

/// Arguments of `r1_session_approve`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ApproveArgs {
    /// The session id (`ses_…`).
    pub session_id: String,
    /// The approval id (`apr_…`), from the session's `pending_approvals` or an
    /// `approval.requested` record.
    pub approval_id: String,
    /// `allow` or `deny`.
    pub decision: Decision,
}

/// Arguments of the tools that address one lane.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LaneArgs {
    /// The session id (`ses_…`).
    pub session_id: String,
    /// The lane id: `main` or a tool lane (`tool_…`) from `r1_lanes_list`.
    pub lane: String,
}

/// Arguments of `r1_bus_tail`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TailArgs {
    /// The session id (`ses_…`).
    pub session_id: String,
    /// The first journal seq to return (records are numbered from 1); pass the
    /// previous answer's `next_seq` to continue where it ended.
    pub since_seq: u64,
    /// How long to wait for a record when there is none yet, in milliseconds
    /// (default 0, at most 60000).
    #[serde(default)]
    pub wait_ms: Option<u64>,
    /// The most records to return (default 500, at most 10000).
    #[serde(default)]
    pub limit: Option<u64>,
}

/// Arguments of `r1_bus_replay`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReplayArgs {
    /// The session id (`ses_…`).
    pub session_id: String,
    /// The first journal seq to return (records are numbered from 1; 1 replays the
    /// whole session).
    pub since_seq: u64,
    /// The most records to return (default 500, at most 10000).
    #[serde(default)]
    pub limit: Option<u64>,
}

/// A catalog entry before its schema is generated.
pub(crate) struct Spec {
    pub name: &'static str,
    pub alias: &'static str,
    pub title: &'static str,
    pub description: &'static str,
    pub mutating: bool,
    pub idempotent: bool,
    pub destructive: bool,
    schema: fn() -> Map<String, Value>,
}

/// The JSON Schema of `T` as an MCP `inputSchema`: draft 2020-12, inline, with the
/// Rust type name, its doc comment and the meta-schema URI left out (the tool's own
/// title and description say it better).
fn schema<T: JsonSchema>() -> Map<String, Value> {
    let schema = schemars::generate::SchemaSettings::draft2020_12()
        .for_deserialize()
        .into_generator()
        .into_root_schema_for::<T>();
    let mut map = match schema.to_value() {
        Value::Object(map) => map,
        // A struct always has an object schema; an empty object schema still says
        // "an object", which is what MCP requires of an input schema.
        _ => Map::new(),
    };
    map.remove("$schema");
    map.remove("title");
    map.remove("description");
    map.insert("type".into(), Value::String("object".into()));
    map
}

/// Every tool, in the order `tools/list` shows them.
pub(crate) const SPECS: &[Spec] = &[
    Spec {
        name: "r1_session_start",
        alias: "r1.session.start",
        title: "Start a session",
        description: "Start a new r1 agent session working in `workdir` (an absolute path to an existing directory). Returns the session (`data.id`, `data.state`, `data.last_seq`). NOT idempotent: every call creates another session, so call it once and keep the id. Next: `r1_session_send` a message, then `r1_bus_tail` from `data.last_seq + 1` to read the reply.",
        mutating: true,
        idempotent: false,
        destructive: false,
        schema: schema::<StartArgs>,
    },
    Spec {
        name: "r1_session_send",
        alias: "r1.session.send",
        title: "Send a message",
        description: "Send a user message to a session; the agent answers in the session's journal. Returns `data.message_id` and `data.seq` (the seq of your message): call `r1_bus_tail` with `since_seq = data.seq + 1` and `wait_ms` to wait for the reply (a `session.message` record with `data.role = \"assistant\"`). Idempotent only with `client_message_id`: the same key again returns the same `message_id` with `data.duplicate = true` and posts nothing; without a key every call posts another message.",
        mutating: true,
        idempotent: false,
        destructive: false,
        schema: schema::<SendArgs>,
    },
    Spec {
        name: "r1_session_cancel",
        alias: "r1.session.cancel",
        title: "Cancel the running turn",
        description: "Cancel the turn the session is running (the agent stops and its partial answer is discarded); the session stays open for the next message. Idempotent: cancelling when nothing runs is ok. Returns the session.",
        mutating: true,
        idempotent: true,
        destructive: true,
        schema: schema::<SessionArgs>,
    },
    Spec {
        name: "r1_session_list",
        alias: "r1.session.list",
        title: "List sessions",
        description: "List every session the daemon has loaded, oldest first, with its state (`idle`, `busy`, `waiting_on_approval`, `paused`, `ended`, `error`), `last_seq` and pending approvals. Read-only.",
        mutating: false,
        idempotent: true,
        destructive: false,
        schema: schema::<NoArgs>,
    },
    Spec {
        name: "r1_session_get",
        alias: "r1.session.get",
        title: "Get a session",
        description: "Get one session: its state, `last_seq` (the seq of its newest journal record) and `pending_approvals`. Read-only.",
        mutating: false,
        idempotent: true,
        destructive: false,
        schema: schema::<SessionArgs>,
    },
    Spec {
        name: "r1_session_resume",
        alias: "r1.session.resume",
        title: "Resume a session",
        description: "Resume a paused session (paused by a client or by a daemon restart) so it accepts messages again. Idempotent: resuming a session that is not paused returns it unchanged; an ended session is a `conflict`. Returns the session.",
        mutating: true,
        idempotent: true,
        destructive: false,
        schema: schema::<SessionArgs>,
    },
    Spec {
        name: "r1_session_resume_all",
        alias: "r1.session.resume.all",
        title: "Resume every paused session",
        description: "Resume every `paused` session at once (for example after a daemon restart, which brings live sessions back paused), each exactly as `r1_session_resume` would; ended and errored sessions are left alone. Idempotent: with nothing paused it resumes nothing. Returns `{resumed: [session…], failed: [{id, error_code, error_message}…]}`; a session that cannot be resumed is listed in `failed` and the others still resume.",
        mutating: true,
        idempotent: true,
        destructive: false,
        schema: schema::<NoArgs>,
    },
    Spec {
        name: "r1_session_repair",
        alias: "r1.session.repair",
        title: "Repair a quarantined session",
        description: "Repair a session quarantined because its journal is corrupt (state `error`, `crash_recovery` on writes): keep a `.broken` copy of the whole journal, cut it back to its last good record and bring the session back `paused`. Records after the damage are lost from the session (they stay in the copy). Idempotent: a healthy session is returned unchanged with `repaired: false`. Returns `{session, repaired, last_seq, dropped_bytes, broken_copy}`.",
        mutating: true,
        idempotent: true,
        destructive: true,
        schema: schema::<SessionArgs>,
    },
    Spec {
        name: "r1_session_approve",
        alias: "r1.session.approve",
        title: "Decide an approval",
        description: "Allow or deny a tool call the agent is waiting on (`approval_id` from the session's `pending_approvals` or an `approval.requested` record). `allow` lets the tool run, with whatever effect it has. Idempotent on the target state: the same decision again is ok; the opposite decision afterwards is a `conflict`. Returns the session.",
        mutating: true,
        idempotent: true,
        destructive: true,
        schema: schema::<ApproveArgs>,
    },
    Spec {
        name: "r1_lanes_list",
        alias: "r1.lanes.list",
        title: "List lanes",
        description: "List a session's lanes in creation order: `main` (the conversation) and one lane per tool call, each with its tool, status (`running`, `done`, `failed`, `killed`, `waiting`) and whether it is pinned. Read-only.",
        mutating: false,
        idempotent: true,
        destructive: false,
        schema: schema::<SessionArgs>,
    },
    Spec {
        name: "r1_lanes_get",
        alias: "r1.lanes.get",
        title: "Get a lane",
        description: "Get one lane of a session: its tool, status and whether it is pinned; `not_found` when the session has no such lane. Read its output with `r1_bus_replay` (records whose `lane` is this lane). Read-only.",
        mutating: false,
        idempotent: true,
        destructive: false,
        schema: schema::<LaneArgs>,
    },
    Spec {
        name: "r1_lanes_kill",
        alias: "r1.lanes.kill",
        title: "Kill a lane",
        description: "Kill the process group of a running tool lane; the tool call fails and the agent is told. Idempotent: killing a lane that already ended is ok. Returns the session's lanes.",
        mutating: true,
        idempotent: true,
        destructive: true,
        schema: schema::<LaneArgs>,
    },
    Spec {
        name: "r1_lanes_pin",
        alias: "r1.lanes.pin",
        title: "Pin a lane",
        description: "Pin a lane so clients keep it listed and expanded. Idempotent: pinning a pinned lane is ok. Returns the session's lanes.",
        mutating: true,
        idempotent: true,
        destructive: false,
        schema: schema::<LaneArgs>,
    },
    Spec {
        name: "r1_bus_tail",
        alias: "r1.bus.tail",
        title: "Tail a session's journal",
        description: "Long-poll a session's journal: returns the records with seq >= `since_seq` (`data.records`) and the seq to ask for next (`data.next_seq`). When there are none yet it waits up to `wait_ms` (default 0, at most 60000) for the first one, then answers, possibly with no records. Loop on `next_seq` to follow a session; the agent's reply is a `session.message` record with `data.role = \"assistant\"`. Read-only.",
        mutating: false,
        idempotent: true,
        destructive: false,
        schema: schema::<TailArgs>,
    },
    Spec {
        name: "r1_bus_replay",
        alias: "r1.bus.replay",
        title: "Replay a session's journal",
        description: "Read a session's journal from `since_seq` without waiting: `data.records` in seq order and `data.next_seq` to read the next page. `since_seq = 1` replays the whole session. Read-only.",
        mutating: false,
        idempotent: true,
        destructive: false,
        schema: schema::<ReplayArgs>,
    },
];

/// Finds a tool by its wire name or its dotted alias.
pub(crate) fn find(name: &str) -> Option<&'static Spec> {
    SPECS.iter().find(|s| s.name == name || s.alias == name)
}

impl Spec {
    fn info(&self) -> ToolInfo {
        ToolInfo {
            name: self.name,
            alias: self.alias,
            title: self.title,
            description: self.description,
            input_schema: (self.schema)(),
            hints: ToolHints {
                read_only: !self.mutating,
                idempotent: self.idempotent,
                destructive: self.destructive,
            },
            mutating: self.mutating,
        }
    }
}

/// The tools a server running with `caps` lists and allows: under [`Caps::Read`] only
/// the non-mutating ones, under [`Caps::Write`] all of them.
pub fn catalog(caps: Caps) -> Vec<ToolInfo> {
    SPECS
        .iter()
        .filter(|s| caps.allows(s.mutating))
        .map(Spec::info)
        .collect()
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
        "<!-- Generated by `r1 mcp serve --caps write --print-tools --markdown`; do not edit.\n     \
         Regenerate with `R1_BLESS=1 cargo test -p r1-mcp --test catalog`. -->\n\n",
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
         calling a mutating one answers `permission_denied`; `--caps write` enables them all. \
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
        out.push_str(if t.mutating {
            "; mutating: needs `--caps write`)\n\n"
        } else {
            "; read-only)\n\n"
        });
        out.push_str(t.description);
        out.push_str("\n\nInput schema:\n\n```json\n");
        out.push_str(&serde_json::to_string_pretty(&t.input_schema).unwrap_or_default());
        out.push_str("\n```\n");
    }
    out
}
