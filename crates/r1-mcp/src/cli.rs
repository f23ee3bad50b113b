//! `r1_cli_invoke`: r1's own CLI as a tool, for agents that would otherwise scrape it.
//!
//! It is not a shell. The program is always the r1 binary the server was given
//! ([`CliRunner::exe`]), the first argument must be one of [`ALLOWED_VERBS`] (and a
//! `ctl` verb one of [`ALLOWED_CTL_VERBS`]), and the child's state directory is the
//! server's own: `--home` is refused. The verbs left out would recurse (`mcp`), block
//! or serve (`serve`, `chat`, `open`, `daemon`), or do what MCP deliberately does not
//! offer (`ctl shutdown`, `restart`, `reload`, `rotate-token`, `logs`, `hooks`). Its
//! stdout and stderr are captured up to [`MAX_OUTPUT_BYTES`] each and the process is
//! killed at the timeout.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use r1_proto::ApiError;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

/// The tool's wire name.
pub(crate) const NAME: &str = "r1_cli_invoke";
/// Its dotted alias.
pub(crate) const ALIAS: &str = "r1.cli.invoke";

/// The first arguments `r1_cli_invoke` accepts.
pub const ALLOWED_VERBS: &[&str] = &["ctl", "doctor", "help", "--help", "-h", "--version", "-V"];

/// The `r1 ctl` verbs `r1_cli_invoke` accepts: those whose operations are MCP tools
/// anyway, plus the read-only `discover`, `health` and `status`.
pub const ALLOWED_CTL_VERBS: &[&str] = &[
    "discover",
    "health",
    "status",
    "engines",
    "search",
    "sessions",
    "worktrees",
    "missions",
    "verify",
    "help",
];

/// The most stdout, and separately stderr, a call returns; the rest is dropped and
/// a marker says so. One MiB keeps a result well inside an MCP message.
pub const MAX_OUTPUT_BYTES: usize = 1 << 20;
/// The most `stdin` a call may pass.
pub const MAX_STDIN_BYTES: usize = 1 << 20;
/// The timeout when the call gives none.
pub const DEFAULT_TIMEOUT_SEC: u64 = 120;
/// The longest timeout a call may ask for.
pub const MAX_TIMEOUT_SEC: u64 = 600;
/// How long the output pipes may stay open after the process exited or was killed
/// (a grandchild holding them); then what was read is returned.
const DRAIN_GRACE: Duration = Duration::from_secs(5);

/// What `r1_cli_invoke` runs: the r1 binary and the state directory it is given.
#[derive(Debug, Clone)]
pub struct CliRunner {
    /// The r1 binary (the MCP server's own, or the daemon's).
    pub exe: PathBuf,
    /// The state directory, passed to the child as `R1_HOME`.
    pub home: PathBuf,
}

/// The arguments of `r1_cli_invoke`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CliInvokeParams {
    /// The arguments after `r1`, e.g. `["ctl", "sessions", "list", "--json"]`. The first
    /// must be `ctl`, `doctor`, `help`, `--help` or `--version`; `ctl`'s verb one of
    /// `discover`, `health`, `status`, `engines`, `search`, `sessions`, `worktrees`,
    /// `missions`, `verify`; `--home` is refused.
    pub args: Vec<String>,
    /// The directory to run in: an absolute path to an existing directory.
    pub workdir: String,
    /// Text written to the command's stdin (at most 1 MiB); without it stdin is empty.
    #[serde(default)]
    pub stdin: Option<String>,
    /// Seconds before the command is killed: 1 to 600, default 120.
    #[serde(default)]
    pub timeout_sec: Option<u64>,
}

/// What one `r1_cli_invoke` did.
#[derive(Debug, Serialize, JsonSchema)]
pub struct CliInvokeResult {
    /// The argv that ran, `r1` first.
    pub argv: Vec<String>,
    /// The exit code; absent when the process was killed by a signal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// True when the process was killed at the timeout.
    pub timed_out: bool,
    /// Its stdout (UTF-8, invalid bytes replaced), cut at 1 MiB.
    pub stdout: String,
    /// Its stderr, cut at 1 MiB.
    pub stderr: String,
    /// True when stdout was cut (a marker line ends it).
    pub stdout_truncated: bool,
    /// True when stderr was cut.
    pub stderr_truncated: bool,
    /// How long it ran, in milliseconds.
    pub duration_ms: u64,
}

/// Checks that `args` asks for an allowed r1 verb; a `validation` error otherwise.
pub fn check_args(args: &[String]) -> Result<(), ApiError> {
    let verbs = ALLOWED_VERBS.join(", ");
    let Some(first) = args.first() else {
        return Err(ApiError::validation(format!(
            "`args` is empty; it must start with one of the r1 verbs {verbs}"
        )));
    };
    if !ALLOWED_VERBS.contains(&first.as_str()) {
        return Err(ApiError::validation(format!(
            "`{first}` is not an r1 verb this tool runs: r1_cli_invoke runs only r1 itself, \
             and `args[0]` must be one of {verbs}"
        )));
    }
    if let Some(a) = args
        .iter()
        .find(|a| *a == "--home" || a.starts_with("--home="))
    {
        return Err(ApiError::validation(format!(
            "`{a}` is refused: the command uses this server's state directory"
        )));
    }
    if first == "ctl" {
        if let Some(verb) = args[1..].iter().find(|a| !a.starts_with('-')) {
            if !ALLOWED_CTL_VERBS.contains(&verb.as_str()) {
                return Err(ApiError::validation(format!(
                    "`r1 ctl {verb}` is not offered over MCP; the ctl verbs r1_cli_invoke runs \
                     are {}",
                    ALLOWED_CTL_VERBS.join(", ")
                )));
            }
        }
    }
    Ok(())
}

/// Reads `r` to its end, keeping the first `cap` bytes; the flag says whether more
/// came. Reading on past the cap keeps the child from blocking on a full pipe.
async fn read_bounded<R: AsyncRead + Unpin>(mut r: R, cap: usize) -> (Vec<u8>, bool) {
    let mut kept = Vec::new();
    let mut truncated = false;
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        match r.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = cap.saturating_sub(kept.len());
                if n > room {
                    truncated = true;
                }
                kept.extend_from_slice(&chunk[..n.min(room)]);
            }
        }
    }
    (kept, truncated)
}

/// The captured bytes as text, with the truncation marker when they were cut.
fn text(bytes: Vec<u8>, truncated: bool) -> String {
    let mut s = String::from_utf8_lossy(&bytes).into_owned();
    if truncated {
        if !s.ends_with('\n') && !s.is_empty() {
            s.push('\n');
        }
        s.push_str(&format!(
            "[r1_cli_invoke: output truncated at {MAX_OUTPUT_BYTES} bytes]\n"
        ));
    }
    s
}

impl CliRunner {
    /// Runs `params` (checked first) and returns what the command did. An exit code
    /// other than 0 is a result, not an error; a bad argument is `validation`, a
    /// binary that cannot start `internal`.
    pub async fn invoke(&self, params: CliInvokeParams) -> Result<CliInvokeResult, ApiError> {
        check_args(&params.args)?;
        let timeout_sec = params.timeout_sec.unwrap_or(DEFAULT_TIMEOUT_SEC);
        if !(1..=MAX_TIMEOUT_SEC).contains(&timeout_sec) {
            return Err(ApiError::validation(format!(
                "`timeout_sec` must be 1 to {MAX_TIMEOUT_SEC}"
            )));
        }
        let workdir = Path::new(&params.workdir);
        if !workdir.is_absolute() || !workdir.is_dir() {
            return Err(ApiError::validation(format!(
                "`workdir` must be an absolute path to an existing directory, not `{}`",
                params.workdir
            )));
        }
        if params
            .stdin
            .as_ref()
            .is_some_and(|s| s.len() > MAX_STDIN_BYTES)
        {
            return Err(ApiError::validation(format!(
                "`stdin` is over {MAX_STDIN_BYTES} bytes"
            )));
        }
        let started = Instant::now();
        let mut child = tokio::process::Command::new(&self.exe)
            .args(&params.args)
            .current_dir(workdir)
            .env("R1_HOME", &self.home)
            .env("NO_COLOR", "1")
            .stdin(if params.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| ApiError::internal(format!("cannot run {}: {e}", self.exe.display())))?;
        if let (Some(input), Some(mut pipe)) = (params.stdin, child.stdin.take()) {
            // A child that does not read its stdin must not hold the call past its
            // timeout, so the write is a task of its own.
            tokio::spawn(async move {
                let _ = pipe.write_all(input.as_bytes()).await;
            });
        }
        let out = child
            .stdout
            .take()
            .map(|p| tokio::spawn(read_bounded(p, MAX_OUTPUT_BYTES)));
        let err = child
            .stderr
            .take()
            .map(|p| tokio::spawn(read_bounded(p, MAX_OUTPUT_BYTES)));
        let (status, timed_out) =
            match tokio::time::timeout(Duration::from_secs(timeout_sec), child.wait()).await {
                Ok(status) => (status.ok(), false),
                Err(_) => {
                    let _ = child.start_kill();
                    (child.wait().await.ok(), true)
                }
            };
        let collect = |h: Option<tokio::task::JoinHandle<(Vec<u8>, bool)>>| async move {
            match h {
                Some(h) => match tokio::time::timeout(DRAIN_GRACE, h).await {
                    Ok(Ok(r)) => r,
                    _ => (Vec::new(), false),
                },
                None => (Vec::new(), false),
            }
        };
        let ((stdout, stdout_truncated), (stderr, stderr_truncated)) =
            tokio::join!(collect(out), collect(err));
        let mut argv = vec!["r1".to_string()];
        argv.extend(params.args);
        Ok(CliInvokeResult {
            argv,
            exit_code: status.and_then(|s| s.code()),
            timed_out,
            stdout: text(stdout, stdout_truncated),
            stderr: text(stderr, stderr_truncated),
            stdout_truncated,
            stderr_truncated,
            duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn argv(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn only_allowed_r1_verbs_pass() {
        for ok in [
            &["ctl", "sessions", "list", "--json"][..],
            &["ctl", "--json", "status"],
            &["doctor"],
            &["--version"],
        ] {
            check_args(&argv(ok)).unwrap();
        }
        for bad in [
            &["sh", "-c", "id"][..],
            &["/bin/ls"],
            &[],
            &["serve"],
            &["mcp", "serve"],
            &["chat"],
            &["ctl", "shutdown"],
            &["ctl", "logs", "-f"],
            &["ctl", "hooks", "test", "x"],
            &["ctl", "sessions", "list", "--home", "/tmp"],
            &["ctl", "--home=/tmp", "sessions", "list"],
        ] {
            let e = check_args(&argv(bad)).unwrap_err();
            assert_eq!(e.code, r1_proto::ErrorCode::Validation, "{bad:?}");
        }
    }

    #[tokio::test]
    async fn output_is_cut_at_the_cap_and_marked() {
        let data = [b'x'; 100];
        let (kept, truncated) = read_bounded(&data[..], 10).await;
        assert_eq!((kept.len(), truncated), (10, true));
        assert!(text(kept, truncated).contains("truncated"));
        let (kept, truncated) = read_bounded(&data[..], 100).await;
        assert_eq!((kept.len(), truncated), (100, false));
    }
}
