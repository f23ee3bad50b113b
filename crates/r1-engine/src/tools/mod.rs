//! The built-in tools a model may call, every one confined to the session's workdir.
//!
//! Paths are resolved by the `path` module before anything is opened, so a tool never reads or
//! writes outside the workdir, whether through `..`, an absolute path or a symlink, nor
//! inside the daemon's state directory or its token (see [`Protected`]), even when the
//! workdir contains them.
//! Commands run in their own process group with a scrubbed environment and are killed
//! with their whole group on timeout or cancellation. The daemon never changes its own
//! current directory: every path is made absolute against [`ToolContext::workdir`].

pub(crate) mod command;
mod fs;
pub(crate) mod path;
mod search;

use std::path::PathBuf;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::sandbox::Protected;
use crate::{ToolCall, ToolResult, ToolSpec};

/// What happens when the model calls a tool; `session.created` records it per tool.
pub use r1_proto::ToolPolicy as Policy;

/// The policy a tool gets when nothing is configured: reading is allowed, anything that
/// changes the workdir or runs a program asks first. Unknown tools ask, because a tool we
/// know nothing about may do anything.
pub fn default_policy(tool: &str) -> Policy {
    match tool {
        "read_file" | "list_dir" | "search" => Policy::Allow,
        _ => Policy::Ask,
    }
}

/// Where and how a tool call runs.
#[derive(Debug, Clone)]
pub struct ToolContext {
    /// The session's workdir: absolute and canonical. Every path a tool takes is resolved
    /// inside it, and commands run in it.
    pub workdir: PathBuf,
    /// Cancelling it stops the tool; a running command is killed with its whole process
    /// group.
    pub cancel: CancellationToken,
    /// Where `run_command` (and a verify run) streams its output (stdout and stderr, interleaved as the
    /// chunks arrive) while it runs. `None` when nobody watches.
    pub output: Option<mpsc::Sender<String>>,
    /// The daemon's own files (state directory, token): the file tools refuse them even
    /// when the workdir contains them, and commands are confined away from them.
    pub protected: Arc<Protected>,
}

/// Why a tool call failed; rendered once, into the content of an error [`ToolResult`].
#[derive(Debug, thiserror::Error)]
pub(crate) enum ToolError {
    /// The arguments do not fit the tool's schema.
    #[error("invalid arguments: {0}")]
    Args(String),
    /// The tool refused to do it (path outside the workdir, ambiguous edit, …).
    #[error("{0}")]
    Refused(String),
    /// The operating system said no.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, naming the path as the model gave it.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The tool ran and failed; the message is the whole report.
    #[error("{0}")]
    Failed(String),
}

impl ToolError {
    /// An I/O error with what was being done when it happened.
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> ToolError {
        ToolError::Io {
            context: context.into(),
            source,
        }
    }
}

/// The names of the built-in tools, in the order they are offered.
const TOOL_NAMES: [&str; 6] = [
    "read_file",
    "write_file",
    "edit_file",
    "list_dir",
    "search",
    "run_command",
];

/// The built-in tools, as offered to the model: names, descriptions written for the
/// model, and JSON Schemas of their arguments.
pub fn builtin_tools() -> Vec<ToolSpec> {
    let spec = |name: &str, description: &str, input_schema: Value| ToolSpec {
        name: name.to_owned(),
        description: description.to_owned(),
        input_schema,
    };
    let path_prop = |what: &str| {
        json!({
            "type": "string",
            "description": format!("{what}, relative to the workdir (absolute paths and paths leaving the workdir are refused).")
        })
    };
    vec![
        spec(
            "read_file",
            "Read a text file in the workdir. Returns its content as UTF-8 (invalid bytes \
             replaced); files over 256 KiB are cut and the result says so.",
            json!({
                "type": "object",
                "properties": { "path": path_prop("The file to read") },
                "required": ["path"],
                "additionalProperties": false
            }),
        ),
        spec(
            "write_file",
            "Create or overwrite a file in the workdir with the given content. Missing parent \
             directories are created. The file is replaced whole, so give its full content; \
             to change part of a file prefer edit_file.",
            json!({
                "type": "object",
                "properties": {
                    "path": path_prop("The file to write"),
                    "content": { "type": "string", "description": "The complete new content of the file." }
                },
                "required": ["path", "content"],
                "additionalProperties": false
            }),
        ),
        spec(
            "edit_file",
            "Replace one exact piece of text in a file of the workdir. `old` must occur exactly \
             once in the file, character for character including whitespace and indentation; \
             if it occurs zero or several times nothing is changed and the result says why \
             (add surrounding lines to `old` to make it unique).",
            json!({
                "type": "object",
                "properties": {
                    "path": path_prop("The file to edit"),
                    "old": { "type": "string", "description": "The exact text to replace; must occur exactly once." },
                    "new": { "type": "string", "description": "The text to put in its place." }
                },
                "required": ["path", "old", "new"],
                "additionalProperties": false
            }),
        ),
        spec(
            "list_dir",
            "List a directory of the workdir, sorted by name; directories end with `/`. Use \".\" \
             for the workdir itself.",
            json!({
                "type": "object",
                "properties": { "path": path_prop("The directory to list") },
                "required": ["path"],
                "additionalProperties": false
            }),
        ),
        spec(
            "search",
            "Search file contents under a path of the workdir with a regular expression (Rust \
             regex syntax, matched per line). Skips files ignored by .gitignore, hidden files \
             and binary files. Returns up to 200 matches as `path:line: text`.",
            json!({
                "type": "object",
                "properties": {
                    "pattern": { "type": "string", "description": "The regular expression, e.g. `fn\\s+main`." },
                    "path": path_prop("The directory or file to search; default \".\"")
                },
                "required": ["pattern"],
                "additionalProperties": false
            }),
        ),
        spec(
            "run_command",
            "Run a shell command (`sh -c`) in the workdir, with no input. Returns the exit code \
             and the combined stdout and stderr (the last 64 KiB when longer). The command and \
             every process it starts are killed when it times out (default 120 s, at most \
             600 s) or is cancelled, and when it exits, so background processes do not \
             survive it.",
            json!({
                "type": "object",
                "properties": {
                    "command": { "type": "string", "description": "The shell command line." },
                    "timeout_s": { "type": "number", "minimum": 1, "maximum": 600, "description": "Seconds before the command is killed; default 120." }
                },
                "required": ["command"],
                "additionalProperties": false
            }),
        ),
    ]
}

/// Runs one tool call and returns what the model is told. Never panics: a bad argument,
/// a refused path, an I/O error, a failing command, an unknown tool all come back as a
/// result with `is_error` set and a message saying what went wrong.
pub async fn run_tool(ctx: &ToolContext, call: &ToolCall) -> ToolResult {
    let (content, is_error) = match dispatch(ctx, call).await {
        Ok(content) => (content, false),
        Err(err) => (err.to_string(), true),
    };
    ToolResult {
        call_id: call.id.clone(),
        name: call.name.clone(),
        content,
        is_error,
    }
}

#[derive(Deserialize)]
struct PathArgs {
    path: String,
}

#[derive(Deserialize)]
struct WriteArgs {
    path: String,
    content: String,
}

#[derive(Deserialize)]
struct EditArgs {
    path: String,
    old: String,
    new: String,
}

#[derive(Deserialize)]
struct SearchArgs {
    pattern: String,
    path: Option<String>,
}

#[derive(Deserialize)]
struct CommandArgs {
    command: String,
    timeout_s: Option<f64>,
}

async fn dispatch(ctx: &ToolContext, call: &ToolCall) -> Result<String, ToolError> {
    if ctx.cancel.is_cancelled() {
        return Err(ToolError::Failed("cancelled before it started".to_owned()));
    }
    let workdir = ctx.workdir.clone();
    let protected = ctx.protected.clone();
    match call.name.as_str() {
        "read_file" => {
            let a: PathArgs = args(call)?;
            blocking(move || fs::read_file(&workdir, &a.path, &protected)).await
        }
        "write_file" => {
            let a: WriteArgs = args(call)?;
            blocking(move || fs::write_file(&workdir, &a.path, &a.content, &protected)).await
        }
        "edit_file" => {
            let a: EditArgs = args(call)?;
            blocking(move || fs::edit_file(&workdir, &a.path, &a.old, &a.new, &protected)).await
        }
        "list_dir" => {
            let a: PathArgs = args(call)?;
            blocking(move || fs::list_dir(&workdir, &a.path, &protected)).await
        }
        "search" => {
            let a: SearchArgs = args(call)?;
            let cancel = ctx.cancel.clone();
            let path = a.path.unwrap_or_else(|| ".".to_owned());
            blocking(move || search::search(&workdir, &path, &a.pattern, &protected, &cancel)).await
        }
        "run_command" => {
            let a: CommandArgs = args(call)?;
            command::run_command(ctx, &a.command, a.timeout_s).await
        }
        other => Err(ToolError::Refused(format!(
            "unknown tool `{other}`; the tools are: {}",
            TOOL_NAMES.join(", ")
        ))),
    }
}

/// Parses the call's arguments into the tool's argument struct; serde's message names
/// the missing or mistyped field, which is what the model needs to fix its call.
fn args<T: DeserializeOwned>(call: &ToolCall) -> Result<T, ToolError> {
    serde_json::from_value(call.arguments.clone()).map_err(|e| ToolError::Args(e.to_string()))
}

/// Runs blocking file-system work off the async runtime, so a large read or search does
/// not stall the daemon's other sessions.
async fn blocking<F>(work: F) -> Result<String, ToolError>
where
    F: FnOnce() -> Result<String, ToolError> + Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ToolError::Failed(format!("the tool stopped unexpectedly: {e}")))?
}
