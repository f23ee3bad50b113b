//! The `run_command` tool: `sh -c` in the workdir, in a process group of its own, with
//! the daemon's secrets removed from its environment, its output streamed as it comes,
//! and the whole group killed on timeout, on cancellation and when the shell exits. On
//! Linux the shell is confined with Landlock before it starts (see `crate::sandbox`): it
//! cannot touch the state directory or the token and writes only in the workdir and the
//! temp directories.

use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::{ToolContext, ToolError};
use crate::process::{is_secret_name, kill_group};
use crate::sandbox::{confine_child, Confinement};

/// The timeout when the model gives none: long enough for a build or a test run.
const DEFAULT_TIMEOUT_S: f64 = 120.0;

/// The longest a model may ask for; anything longer is clamped to it.
const MAX_TIMEOUT_S: f64 = 600.0;

/// How much of the output is kept for the result: the end, where errors and summaries
/// are. The full output is still streamed to [`ToolContext::output`].
const KEEP_BYTES: usize = 64 * 1024;

/// The size of one read from a pipe, hence the largest streamed chunk.
const CHUNK_BYTES: usize = 8 * 1024;

/// Runs `command` and reports its exit code and output.
pub(crate) async fn run_command(
    ctx: &ToolContext,
    command: &str,
    timeout_s: Option<f64>,
) -> Result<String, ToolError> {
    let timeout_s = timeout_s.unwrap_or(DEFAULT_TIMEOUT_S);
    if !timeout_s.is_finite() || timeout_s <= 0.0 {
        return Err(ToolError::Args(format!(
            "timeout_s must be a positive number of seconds (at most {MAX_TIMEOUT_S}), not {timeout_s}"
        )));
    }
    let timeout_s = timeout_s.min(MAX_TIMEOUT_S);
    let timeout = Duration::from_secs_f64(timeout_s);
    let run = run_shell(ctx, command, timeout, KEEP_BYTES).await?;
    let output = run.output;

    match run.end {
        End::Exited => {
            let exit = run.status.unwrap_or_default();
            let head = describe(exit);
            let report = format!("{head}\n{output}");
            if exit.success() {
                Ok(report)
            } else {
                Err(ToolError::Failed(report))
            }
        }
        End::TimedOut => {
            let head = match run.status {
                Some(exit) => format!(
                    "{}, but its output stayed open until the timeout of {timeout_s} s \
                     (a process it started left its process group); killed",
                    describe(exit)
                ),
                None => format!(
                    "command timed out after {timeout_s} s; it and every process it started were killed"
                ),
            };
            Err(ToolError::Failed(format!("{head}\n{output}")))
        }
        End::Cancelled => Err(ToolError::Failed(format!(
            "command cancelled; it and every process it started were killed\n{output}"
        ))),
        End::WaitFailed(e) => Err(ToolError::io(
            format!("lost track of the command (its process group was killed)\n{output}"),
            e,
        )),
    }
}

/// Why a shell could not be started.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ShellError {
    /// Building the sandbox's rules failed unexpectedly.
    #[error("cannot prepare the sandbox: {0}")]
    Prepare(String),
    /// The sandbox refuses to run anything (for example, a protected file has a second
    /// name it cannot cover).
    #[error("{0}")]
    Refused(String),
    /// `sh` could not be started.
    #[error("cannot start `sh`: {0}")]
    Spawn(std::io::Error),
    /// The shell started but has no process id to make a group of.
    #[error("the command started but has no process id")]
    NoPid,
}

impl From<ShellError> for ToolError {
    fn from(err: ShellError) -> ToolError {
        match err {
            ShellError::Prepare(_) | ShellError::NoPid => ToolError::Failed(err.to_string()),
            ShellError::Refused(why) => ToolError::Refused(why),
            ShellError::Spawn(e) => ToolError::io("cannot start `sh`", e),
        }
    }
}

/// How a shell run went: how it ended, its exit status when it exited, and the end of
/// its output.
#[derive(Debug)]
pub(crate) struct ShellOutcome {
    /// How the wait ended.
    pub(crate) end: End,
    /// The shell's exit status, when it exited (it may have exited and still have hit
    /// the timeout, when a process it started held its output open).
    pub(crate) status: Option<ExitStatus>,
    /// The last `keep_bytes` of stdout and stderr interleaved, with a note of what was
    /// cut; `(no output)` when there was none.
    pub(crate) output: String,
}

/// Runs `command` with `sh -c` in the workdir: in a process group of its own, with the
/// daemon's secrets removed from its environment, confined by the sandbox, its output
/// streamed to [`ToolContext::output`] as it comes and its last `keep_bytes` kept. The
/// whole group is killed when the shell exits, on timeout, on cancellation and when
/// this future is dropped.
pub(crate) async fn run_shell(
    ctx: &ToolContext,
    command: &str,
    timeout: Duration,
    keep_bytes: usize,
) -> Result<ShellOutcome, ShellError> {
    let deadline = Instant::now() + timeout;

    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(command)
        .current_dir(&ctx.workdir)
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // A backstop only: the group guard below is what kills grandchildren too.
        .kill_on_drop(true);
    for (name, _) in std::env::vars_os() {
        if is_secret_name(&name.to_string_lossy(), true) {
            cmd.env_remove(&name);
        }
    }
    let workdir = ctx.workdir.clone();
    let protected = ctx.protected.clone();
    let confinement =
        tokio::task::spawn_blocking(move || Confinement::build(&workdir, &[], &protected))
            .await
            .map_err(|e| ShellError::Prepare(e.to_string()))?
            .map_err(|e| ShellError::Refused(e.to_string()))?;
    if let Some(confinement) = confinement {
        confine_child(&mut cmd, confinement);
    }
    let mut child = cmd.spawn().map_err(ShellError::Spawn)?;
    let pgid = child
        .id()
        .and_then(|pid| libc::pid_t::try_from(pid).ok())
        .ok_or(ShellError::NoPid)?;
    // From here on, however this function ends (even by its future being dropped), the
    // group is killed.
    let mut group = GroupGuard { pgid, armed: true };

    let (chunk_tx, mut chunks) = mpsc::channel::<String>(64);
    let mut pumps: Vec<JoinHandle<()>> = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        pumps.push(tokio::spawn(pump(stdout, chunk_tx.clone())));
    }
    if let Some(stderr) = child.stderr.take() {
        pumps.push(tokio::spawn(pump(stderr, chunk_tx.clone())));
    }
    drop(chunk_tx);

    let mut kept = Tail::new(keep_bytes);
    let mut watcher = ctx.output.clone();
    let mut status: Option<ExitStatus> = None;
    let mut streams_open = true;
    let end = loop {
        if status.is_some() && !streams_open {
            break End::Exited;
        }
        tokio::select! {
            biased;
            () = ctx.cancel.cancelled() => break End::Cancelled,
            () = tokio::time::sleep_until(deadline) => break End::TimedOut,
            waited = child.wait(), if status.is_none() => match waited {
                Ok(exit) => {
                    status = Some(exit);
                    // What the shell left running (`cmd &`) would hold the pipes open
                    // and outlive the tool; the group goes with its leader. The leader
                    // is reaped but its group id stays reserved while members remain.
                    group.kill_and_disarm();
                }
                Err(e) => break End::WaitFailed(e),
            },
            chunk = chunks.recv(), if streams_open => match chunk {
                Some(chunk) => {
                    kept.push(&chunk);
                    if let Some(out) = &watcher {
                        // A slow watcher slows the command down (backpressure) but does
                        // not delay a cancel or the timeout.
                        let sent = tokio::select! {
                            biased;
                            () = ctx.cancel.cancelled() => true,
                            () = tokio::time::sleep_until(deadline) => true,
                            sent = out.send(chunk) => sent.is_ok(),
                        };
                        if !sent {
                            watcher = None;
                        }
                    }
                }
                None => streams_open = false,
            },
        }
    };

    if !matches!(end, End::Exited) {
        // Killed while the leader is not yet reaped, so the group id cannot have been
        // reused; then the leader is reaped so it leaves no zombie.
        group.kill_and_disarm();
        if status.is_none() {
            let _ = child.wait().await;
        }
    }
    for pump in &pumps {
        pump.abort();
    }
    // Output already read but not yet taken belongs in the result.
    while let Ok(chunk) = chunks.try_recv() {
        kept.push(&chunk);
    }
    Ok(ShellOutcome {
        end,
        status,
        output: kept.render(),
    })
}

/// How the wait for the command ended.
#[derive(Debug)]
pub(crate) enum End {
    /// The shell exited and its output closed.
    Exited,
    /// The timeout passed first; the group was killed.
    TimedOut,
    /// The context was cancelled first; the group was killed.
    Cancelled,
    /// Waiting for the shell failed; the group was killed.
    WaitFailed(std::io::Error),
}

fn describe(exit: ExitStatus) -> String {
    match (exit.code(), exit.signal()) {
        (Some(code), _) => format!("exit code: {code}"),
        (None, Some(signal)) => format!("killed by signal {signal} (no exit code)"),
        (None, None) => "exit status unknown".to_owned(),
    }
}

/// Kills the command's process group when dropped while armed.
struct GroupGuard {
    pgid: libc::pid_t,
    armed: bool,
}

impl GroupGuard {
    fn kill_and_disarm(&mut self) {
        if self.armed {
            kill_group(self.pgid);
            self.armed = false;
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill_and_disarm();
    }
}

/// Reads a pipe to its end, sending its text in chunks as it arrives.
async fn pump<R: AsyncRead + Unpin>(mut pipe: R, tx: mpsc::Sender<String>) {
    let mut buf = vec![0u8; CHUNK_BYTES];
    let mut text = Utf8Chunks::default();
    loop {
        let n = match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let chunk = text.push(&buf[..n]);
        if !chunk.is_empty() && tx.send(chunk).await.is_err() {
            return;
        }
    }
    let rest = text.finish();
    if !rest.is_empty() {
        let _ = tx.send(rest).await;
    }
}

/// Decodes a byte stream as UTF-8 chunk by chunk, holding back a character split
/// between two reads instead of turning each half into a replacement character.
#[derive(Default)]
struct Utf8Chunks {
    pending: Vec<u8>,
}

impl Utf8Chunks {
    fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let data = std::mem::take(&mut self.pending);
        let mut out = String::with_capacity(data.len());
        let mut rest: &[u8] = &data;
        loop {
            match std::str::from_utf8(rest) {
                Ok(valid) => {
                    out.push_str(valid);
                    rest = &[];
                    break;
                }
                Err(e) => {
                    let (valid, after) = rest.split_at(e.valid_up_to());
                    out.push_str(&String::from_utf8_lossy(valid));
                    match e.error_len() {
                        Some(bad) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            rest = &after[bad..];
                        }
                        // An incomplete character at the end: wait for the next read.
                        None => {
                            rest = after;
                            break;
                        }
                    }
                }
            }
        }
        self.pending = rest.to_vec();
        out
    }

    fn finish(self) -> String {
        String::from_utf8_lossy(&self.pending).into_owned()
    }
}

/// The last `keep` bytes of the output, and how much was dropped before them.
struct Tail {
    text: String,
    dropped: usize,
    keep: usize,
}

impl Tail {
    fn new(keep: usize) -> Tail {
        Tail {
            text: String::new(),
            dropped: 0,
            keep,
        }
    }

    fn push(&mut self, chunk: &str) {
        self.text.push_str(chunk);
        // Trimming only past twice the limit keeps the copying amortised.
        if self.text.len() > 2 * self.keep {
            self.trim();
        }
    }

    fn trim(&mut self) {
        if self.text.len() <= self.keep {
            return;
        }
        let mut cut = self.text.len() - self.keep;
        while !self.text.is_char_boundary(cut) {
            cut += 1;
        }
        self.text.drain(..cut);
        self.dropped += cut;
    }

    fn render(mut self) -> String {
        self.trim();
        if self.text.is_empty() {
            return "(no output)".to_owned();
        }
        if self.dropped > 0 {
            format!(
                "[output cut: the first {} bytes were dropped; the last {} follow]\n{}",
                self.dropped,
                self.text.len(),
                self.text
            )
        } else {
            self.text
        }
    }
}
