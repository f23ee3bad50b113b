//! `exec`: an external agent CLI (Claude Code, Codex, or any command) run as a
//! subprocess in the session's workdir, its output mapped to [`ProviderEvent`]s.
//!
//! The agent runs its own tools; r1 only records them as
//! [`ProviderEvent::ExternalToolCall`] / [`ProviderEvent::ExternalToolResult`] and never
//! asks the turn loop to run anything. The subprocess gets its own process group, and
//! the whole group is killed when the stream is dropped, so cancelling a turn also stops
//! whatever the agent started. On Linux the agent is confined with Landlock like
//! `run_command`: no access to the daemon's state directory or token, writes only in the
//! workdir, the temp directories and the agent's own home (`~/.claude`, `~/.codex`).

use std::collections::{HashSet, VecDeque};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::stream::{self, BoxStream, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStderr, ChildStdout, Command};
use tokio::task::JoinHandle;

use crate::sandbox::{confine_child, Confinement};
use crate::{
    AgentSandbox, PermissionChannel, Provider, ProviderError, ProviderEvent, ProviderRequest, Role,
    PERMISSION_SERVER, PERMISSION_TOOL,
};

/// How much of the agent's stderr is kept for error messages: enough for a stack trace
/// or a CLI's usage text, small enough to put in an event.
const STDERR_TAIL: usize = 8 * 1024;
/// The longest stdout line accepted. Claude Code puts whole tool results (file
/// contents) on one line, so this is generous; it only guards against a runaway
/// process filling memory with a line that never ends.
const MAX_LINE: u64 = 64 * 1024 * 1024;
/// How long, after its final result, the agent may take to exit on its own (to flush
/// its own session files) before `Finish` is emitted and the group is killed.
const EXIT_GRACE: Duration = Duration::from_secs(3);
/// How long to wait for the stderr reader after the agent exited; a background process
/// that inherited stderr may keep it open forever.
const STDERR_GRACE: Duration = Duration::from_millis(500);
/// How many characters of a malformed line are quoted in the error.
const QUOTE_CHARS: usize = 200;
/// How long Claude Code waits for one answer of r1's permission tool: a person may
/// take a while to decide, so a day; past it Claude Code gives the call up.
const PERMISSION_TIMEOUT_MS: u64 = 24 * 60 * 60 * 1000;

/// Which output format the external agent speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExecAdapter {
    /// Claude Code: `claude -p <prompt> --output-format stream-json --verbose`.
    #[serde(rename = "claude")]
    ClaudeCode,
    /// OpenAI Codex: `codex exec --json <prompt>`.
    #[serde(rename = "codex")]
    Codex,
    /// Any command: the prompt on stdin, every stdout line is answer text.
    #[serde(rename = "generic")]
    Generic,
}

/// How to run the external agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecConfig {
    /// The output format, which also decides the argv.
    pub adapter: ExecAdapter,
    /// The program: a path, or a name looked up in `PATH`.
    pub command: String,
    /// Extra arguments (after the adapter's own; for Codex before the prompt).
    #[serde(default)]
    pub args: Vec<String>,
    /// The session's workdir; the agent runs with it as its current directory.
    pub workdir: PathBuf,
    /// Environment variables to remove besides the ones always removed (names with
    /// `TOKEN`, `SECRET`, `PASSWORD`, or starting with `R1_`).
    #[serde(default)]
    pub env_remove: Vec<String>,
}

/// The `exec` provider: one subprocess per request.
#[derive(Debug, Clone)]
pub struct ExecProvider {
    cfg: ExecConfig,
}

impl ExecProvider {
    /// A provider that runs the agent described by `cfg`.
    pub fn new(cfg: ExecConfig) -> ExecProvider {
        ExecProvider { cfg }
    }

    /// The argv after the program name for one turn, resuming the agent's own
    /// conversation `resume` when there is one. The prompt is never in the argv: it
    /// goes on stdin, so a message such as `--help` or `-rf /` reaches the model as
    /// it is and is never parsed as an option. `mcp_config` is the file naming r1's
    /// permission endpoint (Claude Code); `sandbox` is the sandbox r1 chose (Codex).
    /// Either is left out when the engine's own `args` already decide it.
    fn args(
        &self,
        resume: Option<&str>,
        mcp_config: Option<&Path>,
        sandbox: Option<AgentSandbox>,
    ) -> Vec<String> {
        let mut args: Vec<String> = Vec::new();
        match self.cfg.adapter {
            // `claude -p` reads the prompt from stdin when none is given.
            ExecAdapter::ClaudeCode => {
                args.extend(
                    ["-p", "--output-format", "stream-json", "--verbose"].map(String::from),
                );
                if let Some(id) = resume {
                    args.extend(["--resume".to_string(), id.to_string()]);
                }
                if let Some(path) = mcp_config {
                    args.extend([
                        "--mcp-config".to_string(),
                        path.display().to_string(),
                        "--permission-prompt-tool".to_string(),
                        format!("mcp__{PERMISSION_SERVER}__{PERMISSION_TOOL}"),
                    ]);
                }
                args.extend(self.cfg.args.iter().cloned());
            }
            // `codex exec [resume ID]` reads the prompt from stdin when none is given;
            // its options go before the subcommand.
            ExecAdapter::Codex => {
                args.extend(["exec", "--json"].map(String::from));
                let skip = "--skip-git-repo-check";
                if !in_git_repo(&self.cfg.workdir) && !self.cfg.args.iter().any(|a| a == skip) {
                    args.push(skip.to_string());
                }
                if let Some(mode) = sandbox.filter(|_| !self.codex_sandbox_configured()) {
                    let mode = match mode {
                        AgentSandbox::ReadOnly => "read-only",
                        AgentSandbox::WorkspaceWrite => "workspace-write",
                    };
                    args.extend(["--sandbox".to_string(), mode.to_string()]);
                }
                args.extend(self.cfg.args.iter().cloned());
                if let Some(id) = resume {
                    args.extend(["resume".to_string(), id.to_string()]);
                }
            }
            ExecAdapter::Generic => args.extend(self.cfg.args.iter().cloned()),
        }
        args
    }

    /// Claude Code's permission prompts go to r1 unless the engine's `args` name a
    /// prompt tool of their own.
    fn routes_permissions(&self) -> bool {
        self.cfg.adapter == ExecAdapter::ClaudeCode
            && !self
                .cfg
                .args
                .iter()
                .any(|a| a.starts_with("--permission-prompt-tool"))
    }

    /// Whether the engine's `args` already decide Codex's sandbox (or bypass it).
    fn codex_sandbox_configured(&self) -> bool {
        let args = &self.cfg.args;
        args.iter().enumerate().any(|(i, a)| {
            a == "-s"
                || a.starts_with("--sandbox")
                || a == "--full-auto"
                || a == "--approve-for-me"
                || a == "--dangerously-bypass-approvals-and-sandbox"
                || ((a == "-c" || a == "--config")
                    && args
                        .get(i + 1)
                        .is_some_and(|v| v.trim_start().starts_with("sandbox_mode")))
                || a.starts_with("--config=sandbox_mode")
        })
    }

    /// Where the agent keeps its own sessions and settings, which it must be able to
    /// write even when confined: `~/.claude` for Claude Code, `$CODEX_HOME` or
    /// `~/.codex` for Codex.
    fn own_dirs(&self) -> Vec<PathBuf> {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        match self.cfg.adapter {
            ExecAdapter::ClaudeCode => home.map(|h| h.join(".claude")).into_iter().collect(),
            ExecAdapter::Codex => std::env::var_os("CODEX_HOME")
                .map(PathBuf::from)
                .or_else(|| home.map(|h| h.join(".codex")))
                .into_iter()
                .collect(),
            ExecAdapter::Generic => Vec::new(),
        }
    }

    /// True when the variable `name` must not reach the agent: it may hold one of r1's
    /// credentials. API keys the agent needs itself (`ANTHROPIC_API_KEY`, …) are kept.
    fn is_removed(&self, name: &OsStr) -> bool {
        crate::process::is_secret_name(&name.to_string_lossy(), false)
            || self.cfg.env_remove.iter().any(|r| OsStr::new(r) == name)
    }
}

#[async_trait::async_trait]
impl Provider for ExecProvider {
    fn name(&self) -> &str {
        "exec"
    }

    /// Runs the agent once. The prompt is the text of the last user message only: these
    /// agents keep their own context (their own session files), so the earlier
    /// conversation is not sent again; the agent's conversation id from the last turn
    /// that reported one ([`crate::ChatMessage::agent_session`]) is resumed instead.
    async fn stream(
        &self,
        req: ProviderRequest,
    ) -> Result<BoxStream<'static, Result<ProviderEvent, ProviderError>>, ProviderError> {
        let prompt = req
            .messages
            .iter()
            .rev()
            .find(|m| m.role == Role::User && m.tool_result.is_none())
            .map(|m| match crate::notes_preamble(&req.notes) {
                Some(notes) => format!("{notes}\n\n{}", m.text),
                None => m.text.clone(),
            })
            .ok_or_else(|| ProviderError::fatal("no user message to send to the agent"))?;
        let resume = req
            .messages
            .iter()
            .rev()
            .find_map(|m| m.agent_session.as_deref());
        let label = self.cfg.command.clone();
        let channel = req
            .agent
            .permission
            .clone()
            .filter(|_| self.routes_permissions());
        let workdir = self.cfg.workdir.clone();
        let writable = self.own_dirs();
        let protected = req.protected.clone();
        let prepared = tokio::task::spawn_blocking(move || {
            let config = channel
                .as_ref()
                .map(mcp_config_file)
                .transpose()
                .map_err(|e| format!("cannot write its MCP config: {e}"))?;
            let confinement =
                Confinement::build(&workdir, &writable, &protected).map_err(|e| e.to_string())?;
            Ok::<_, String>((config, confinement))
        })
        .await
        .map_err(|e| ProviderError::fatal(format!("cannot prepare the sandbox: {e}")))?
        .map_err(|e| ProviderError::fatal(format!("cannot start {label}: {e}")))?;
        let (mcp_config, confinement) = prepared;

        let mut cmd = Command::new(&self.cfg.command);
        cmd.args(self.args(
            resume,
            mcp_config.as_ref().map(|f| f.path()),
            req.agent.sandbox,
        ))
        .current_dir(&self.cfg.workdir)
        .process_group(0)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
        for (name, _) in std::env::vars_os() {
            if self.is_removed(&name) {
                cmd.env_remove(&name);
            }
        }
        if let Some(confinement) = confinement {
            confine_child(&mut cmd, confinement);
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| ProviderError::fatal(format!("cannot start {label}: {e}")))?;
        // The child leads its own group (`process_group(0)`), so its pid is the pgid.
        let group = GroupGuard(child.id().and_then(|p| libc::pid_t::try_from(p).ok()));

        if let Some(mut stdin) = child.stdin.take() {
            let mut input = prompt.into_bytes();
            // A line-reading command wants its line ended; the agent CLIs get the
            // message exactly as it was sent.
            if self.cfg.adapter == ExecAdapter::Generic && input.last() != Some(&b'\n') {
                input.push(b'\n');
            }
            // A task, so an agent that writes a lot before reading its input cannot
            // deadlock against us. Errors (the agent closed stdin early) are its business.
            tokio::spawn(async move {
                let _ = stdin.write_all(&input).await;
                let _ = stdin.shutdown().await;
            });
        }
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| ProviderError::fatal(format!("cannot read output of {label}")))?;
        let stderr = StderrTail::start(child.stderr.take());

        let run = Run {
            _group: group,
            _mcp_config: mcp_config,
            child,
            stdout: BufReader::new(stdout),
            stderr,
            label,
            parser: Parser::new(self.cfg.adapter),
            pending: VecDeque::new(),
            phase: Phase::Reading,
        };
        Ok(stream::unfold(run, |mut run| async move {
            let item = run.next().await?;
            Some((item, run))
        })
        .boxed())
    }
}

/// Kills the agent's whole process group when dropped: on cancel (the stream is
/// dropped), and after the turn, so nothing the agent started outlives it.
#[derive(Debug)]
struct GroupGuard(Option<libc::pid_t>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.0 {
            crate::process::kill_group(pgid);
        }
    }
}

/// The last [`STDERR_TAIL`] bytes of the agent's stderr, collected by a task.
struct StderrTail {
    buf: Arc<Mutex<Vec<u8>>>,
    task: Option<JoinHandle<()>>,
}

impl StderrTail {
    fn start(stderr: Option<ChildStderr>) -> StderrTail {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let task = stderr.map(|mut err| {
            let buf = Arc::clone(&buf);
            tokio::spawn(async move {
                let mut chunk = [0u8; 4096];
                while let Ok(n) = err.read(&mut chunk).await {
                    if n == 0 {
                        break;
                    }
                    if let Ok(mut b) = buf.lock() {
                        b.extend_from_slice(&chunk[..n]);
                        let excess = b.len().saturating_sub(STDERR_TAIL);
                        b.drain(..excess);
                    }
                }
            })
        });
        StderrTail { buf, task }
    }

    /// The tail as text, after giving the reader a moment to see the end.
    async fn finish(&mut self) -> String {
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(STDERR_GRACE, task).await;
        }
        self.buf
            .lock()
            .map(|b| String::from_utf8_lossy(&b).trim().to_string())
            .unwrap_or_default()
    }
}

impl Drop for StderrTail {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// Where a run is.
enum Phase {
    /// Reading stdout lines.
    Reading,
    /// The final result was seen; wait briefly for the agent to exit, then emit this.
    Finishing(ProviderEvent),
    /// Nothing more to emit once `pending` is empty.
    Done,
}

/// One running agent. Field order matters: the group is killed first on drop, then
/// the MCP config file it was given is removed.
struct Run {
    _group: GroupGuard,
    _mcp_config: Option<tempfile::NamedTempFile>,
    child: Child,
    stdout: BufReader<ChildStdout>,
    stderr: StderrTail,
    label: String,
    parser: Parser,
    pending: VecDeque<Result<ProviderEvent, ProviderError>>,
    phase: Phase,
}

impl Run {
    async fn next(&mut self) -> Option<Result<ProviderEvent, ProviderError>> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                return Some(item);
            }
            match std::mem::replace(&mut self.phase, Phase::Done) {
                Phase::Done => return None,
                Phase::Finishing(finish) => {
                    let _ = tokio::time::timeout(EXIT_GRACE, self.child.wait()).await;
                    return Some(Ok(finish));
                }
                Phase::Reading => self.phase = self.read().await,
            }
        }
    }

    /// Reads and maps one line (or the end of output); returns the next phase.
    async fn read(&mut self) -> Phase {
        let mut line = Vec::new();
        let read = (&mut self.stdout)
            .take(MAX_LINE)
            .read_until(b'\n', &mut line)
            .await;
        match read {
            Err(e) => {
                self.fail(format!("cannot read output of {}: {e}", self.label));
                Phase::Done
            }
            Ok(0) => {
                self.end_of_output().await;
                Phase::Done
            }
            Ok(_) if line.last() != Some(&b'\n') && line.len() as u64 >= MAX_LINE => {
                self.fail(format!(
                    "{} wrote an output line longer than {MAX_LINE} bytes",
                    self.label
                ));
                Phase::Done
            }
            Ok(_) => {
                let text = String::from_utf8_lossy(&line);
                let text = text.strip_suffix('\n').unwrap_or(&text);
                let text = text.strip_suffix('\r').unwrap_or(text);
                match self.parser.line(text, &self.label, &mut self.pending) {
                    Flow::Continue => Phase::Reading,
                    Flow::Finished => Phase::Finishing(ProviderEvent::Finish {
                        reason: "stop".into(),
                    }),
                    Flow::Failed => Phase::Done,
                }
            }
        }
    }

    /// Stdout closed: wait for the exit status and say how the run ended.
    async fn end_of_output(&mut self) {
        let status = self.child.wait().await;
        let tail = self.stderr.finish().await;
        let status = match status {
            Ok(s) => s,
            Err(e) => {
                self.fail(format!("cannot wait for {}: {e}", self.label));
                return;
            }
        };
        if !status.success() {
            self.fail(with_tail(
                format!("{} {}", self.label, describe(status)),
                &tail,
            ));
        } else if self.parser.adapter == ExecAdapter::Generic {
            self.pending.push_back(Ok(ProviderEvent::Finish {
                reason: "stop".into(),
            }));
        } else {
            self.fail(with_tail(
                format!("{} exited without a final result", self.label),
                &tail,
            ));
        }
    }

    fn fail(&mut self, message: String) {
        self.pending.push_back(Err(ProviderError::fatal(message)));
    }
}

/// `exited with status 2` or `was killed by signal 9`.
fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(sig)) => format!("was killed by signal {sig}"),
        (None, None) => format!("exited ({status})"),
    }
}

fn with_tail(message: String, tail: &str) -> String {
    if tail.is_empty() {
        message
    } else {
        format!("{message}: {tail}")
    }
}

/// What a parsed line means for the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    /// More output follows.
    Continue,
    /// The agent reported its final result; `Finish` comes next.
    Finished,
    /// An error item was queued; the run is over.
    Failed,
}

/// Maps the agent's stdout lines to events.
struct Parser {
    adapter: ExecAdapter,
    /// Claude Code: the id of the message whose partial `stream_event`s are arriving.
    claude_current: Option<String>,
    /// Claude Code: messages (by id; `""` when the agent gave none) whose text already
    /// went out as partial deltas, so the complete message must not repeat it.
    claude_streamed: HashSet<String>,
    /// Codex: items whose `ExternalToolCall` was emitted.
    codex_started: HashSet<String>,
}

type Queue = VecDeque<Result<ProviderEvent, ProviderError>>;

impl Parser {
    fn new(adapter: ExecAdapter) -> Parser {
        Parser {
            adapter,
            claude_current: None,
            claude_streamed: HashSet::new(),
            codex_started: HashSet::new(),
        }
    }

    fn line(&mut self, line: &str, label: &str, out: &mut Queue) -> Flow {
        if self.adapter == ExecAdapter::Generic {
            out.push_back(Ok(ProviderEvent::TextDelta(format!("{line}\n"))));
            return Flow::Continue;
        }
        if line.trim().is_empty() {
            return Flow::Continue;
        }
        let v: Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(e) => {
                let quoted: String = line.chars().take(QUOTE_CHARS).collect();
                out.push_back(Err(ProviderError::fatal(format!(
                    "malformed output line from {label}: {e}: {quoted}"
                ))));
                return Flow::Failed;
            }
        };
        match self.adapter {
            ExecAdapter::ClaudeCode => self.claude(&v, label, out),
            ExecAdapter::Codex => self.codex(&v, label, out),
            ExecAdapter::Generic => Flow::Continue,
        }
    }

    fn claude(&mut self, v: &Value, label: &str, out: &mut Queue) -> Flow {
        match str_at(v, "type") {
            "system" if str_at(v, "subtype") == "init" => {
                let id = str_at(v, "session_id");
                if !id.is_empty() {
                    out.push_back(Ok(ProviderEvent::AgentSession(id.to_string())));
                }
                Flow::Continue
            }
            "stream_event" => {
                let ev = &v["event"];
                match str_at(ev, "type") {
                    "message_start" => {
                        self.claude_current = ev["message"]["id"].as_str().map(String::from);
                    }
                    "content_block_delta" if str_at(&ev["delta"], "type") == "text_delta" => {
                        let text = str_at(&ev["delta"], "text");
                        if !text.is_empty() {
                            self.claude_streamed
                                .insert(self.claude_current.clone().unwrap_or_default());
                            out.push_back(Ok(ProviderEvent::TextDelta(text.to_string())));
                        }
                    }
                    _ => {}
                }
                Flow::Continue
            }
            "assistant" => {
                let msg = &v["message"];
                let id = str_at(msg, "id").to_string();
                // Claude Code repeats a message id across the lines of one message
                // (one per content block), so a known id stays known; an anonymous
                // message is matched only by the next complete message.
                let streamed = if id.is_empty() {
                    self.claude_streamed.remove("")
                } else {
                    self.claude_streamed.contains(&id)
                };
                for block in blocks(&msg["content"]) {
                    match str_at(block, "type") {
                        "text" if !streamed => {
                            let text = str_at(block, "text");
                            if !text.is_empty() {
                                out.push_back(Ok(ProviderEvent::TextDelta(text.to_string())));
                            }
                        }
                        "tool_use" => out.push_back(Ok(ProviderEvent::ExternalToolCall {
                            id: str_at(block, "id").to_string(),
                            name: str_at(block, "name").to_string(),
                            arguments: block.get("input").cloned().unwrap_or(Value::Null),
                        })),
                        _ => {}
                    }
                }
                Flow::Continue
            }
            "user" => {
                for block in blocks(&v["message"]["content"]) {
                    if str_at(block, "type") == "tool_result" {
                        out.push_back(Ok(ProviderEvent::ExternalToolResult {
                            id: str_at(block, "tool_use_id").to_string(),
                            content: content_text(&block["content"]),
                            is_error: block["is_error"].as_bool().unwrap_or(false),
                        }));
                    }
                }
                Flow::Continue
            }
            "result" => {
                let subtype = str_at(v, "subtype");
                if v["is_error"].as_bool().unwrap_or(false) || subtype.starts_with("error") {
                    let mut why = str_at(v, "result").to_string();
                    if why.is_empty() {
                        why = blocks(&v["errors"])
                            .iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join("; ");
                    }
                    if why.is_empty() {
                        why = if subtype.is_empty() { "error" } else { subtype }.to_string();
                    }
                    out.push_back(Err(ProviderError::fatal(format!("{label} failed: {why}"))));
                    return Flow::Failed;
                }
                let u = &v["usage"];
                // Claude counts cached prompt tokens apart; r1's input is the whole
                // prompt, of which `cache_read_input_tokens` were cached.
                let input = [
                    "input_tokens",
                    "cache_creation_input_tokens",
                    "cache_read_input_tokens",
                ]
                .iter()
                .map(|k| u[*k].as_u64().unwrap_or(0))
                .sum();
                out.push_back(Ok(ProviderEvent::Usage {
                    input_tokens: input,
                    output_tokens: u["output_tokens"].as_u64().unwrap_or(0),
                    cached_input_tokens: u["cache_read_input_tokens"].as_u64(),
                }));
                Flow::Finished
            }
            _ => Flow::Continue,
        }
    }

    fn codex(&mut self, v: &Value, label: &str, out: &mut Queue) -> Flow {
        match str_at(v, "type") {
            "thread.started" => {
                let id = str_at(v, "thread_id");
                if !id.is_empty() {
                    out.push_back(Ok(ProviderEvent::AgentSession(id.to_string())));
                }
                Flow::Continue
            }
            t @ ("item.started" | "item.completed") => {
                self.codex_item(&v["item"], t == "item.completed", out);
                Flow::Continue
            }
            "turn.completed" => {
                // Codex reports OpenAI's usage: `input_tokens` counts the cached ones.
                let u = &v["usage"];
                out.push_back(Ok(ProviderEvent::Usage {
                    input_tokens: u["input_tokens"].as_u64().unwrap_or(0),
                    output_tokens: u["output_tokens"].as_u64().unwrap_or(0),
                    cached_input_tokens: u["cached_input_tokens"].as_u64(),
                }));
                Flow::Finished
            }
            "turn.failed" | "error" => {
                let why = [&v["error"]["message"], &v["message"], &v["error"]]
                    .into_iter()
                    .find_map(Value::as_str)
                    .unwrap_or("unknown error");
                out.push_back(Err(ProviderError::fatal(format!("{label} failed: {why}"))));
                Flow::Failed
            }
            _ => Flow::Continue,
        }
    }

    fn codex_item(&mut self, item: &Value, completed: bool, out: &mut Queue) {
        let id = str_at(item, "id").to_string();
        match str_at(item, "type") {
            "agent_message" if completed => {
                let text = str_at(item, "text");
                if !text.is_empty() {
                    out.push_back(Ok(ProviderEvent::TextDelta(text.to_string())));
                }
            }
            "command_execution" => {
                if self.codex_started.insert(id.clone()) {
                    out.push_back(Ok(ProviderEvent::ExternalToolCall {
                        id: id.clone(),
                        name: "command_execution".into(),
                        arguments: serde_json::json!({ "command": item["command"] }),
                    }));
                }
                if completed {
                    let is_error = match item["exit_code"].as_i64() {
                        Some(code) => code != 0,
                        None => str_at(item, "status") == "failed",
                    };
                    out.push_back(Ok(ProviderEvent::ExternalToolResult {
                        id,
                        content: str_at(item, "aggregated_output").to_string(),
                        is_error,
                    }));
                }
            }
            _ => {}
        }
    }
}

/// Writes the MCP config that points Claude Code at r1's permission endpoint: a private
/// file (0600, in the temp directory, removed when the run ends), because the secret
/// must not be in the argv, which every user of the machine can read. The timeout is
/// Claude Code's limit on one call of the tool, and so on how long a decision may take
/// (its default for an HTTP server is five minutes without a byte).
fn mcp_config_file(channel: &PermissionChannel) -> std::io::Result<tempfile::NamedTempFile> {
    use std::io::Write;
    let config = serde_json::json!({
        "mcpServers": {
            PERMISSION_SERVER: {
                "type": "http",
                "url": channel.url,
                "headers": { "Authorization": format!("Bearer {}", channel.secret) },
                "timeout": PERMISSION_TIMEOUT_MS,
                "alwaysLoad": true,
            }
        }
    });
    let mut file = tempfile::Builder::new()
        .prefix("r1-permission-")
        .suffix(".json")
        .tempfile()?;
    file.write_all(config.to_string().as_bytes())?;
    file.flush()?;
    Ok(file)
}

/// True when `dir` or a directory above it holds `.git` (a repository or a worktree),
/// where Codex runs without `--skip-git-repo-check`.
fn in_git_repo(dir: &std::path::Path) -> bool {
    dir.ancestors().any(|d| d.join(".git").exists())
}

/// The string at `key`, or `""`.
fn str_at<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// The elements of an array, or none.
fn blocks(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or(&[])
}

/// A tool result's content: a string, or the text of its content blocks.
fn content_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}
