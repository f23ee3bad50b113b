//! Restart onto the binary on disk (`daemon.restart`, `r1 ctl restart`).
//!
//! The handover, in order (ARCHITECTURE.md, "Restart onto a new binary"):
//!
//! 1. **Check** the binary now at the path this daemon was started from: `<exe>
//!    --version` must exit 0 within [`CHECK_TIMEOUT`]. A file that is not an r1 (a
//!    truncated copy, a script that fails) is refused here and nothing changes.
//! 2. **Step aside**: the daemon shuts down as for `daemon.shutdown` (bus
//!    `daemon.stopping {reason: "upgrade"}`, every session with work in flight journals
//!    `session.paused {reason: "upgrade"}` durably, event streams and WebSockets end so
//!    their clients reconnect), then closes both listeners and removes its socket file
//!    while the restart request itself stays open for its answer. It holds
//!    `spawn.lock` from here on, so no client starts a daemon of its own in the gap,
//!    and releases the daemon lock.
//! 3. **Start** `<exe> serve` with this daemon's arguments and `--port <the same
//!    port>`, in a process group of its own, inheriting stderr. It takes the lock, binds
//!    the same port and socket path, reloads every session from the journals and
//!    registers.
//! 4. **Health check**: the new daemon must write `daemon.json` with its own pid and
//!    answer the handshake on the socket within `timeout_s` (default 15 s). Then the
//!    request is answered and this process exits.
//! 5. **Fallback**: if it exits first (its start error is read from the file named by
//!    [`START_ERROR_ENV`]) or does not answer in time (it is killed, with its process
//!    group), the request is answered with why, and this process re-executes its own
//!    image (`/proc/self/exe`, which stays valid after the file on disk is replaced)
//!    with its original arguments: the old version starts again through the ordinary
//!    start path (same lock, same port, every session reloaded), with the reason in
//!    [`RESTART_FAILED_ENV`] for its log.

use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use r1_proto::{ApiError, ErrorCode, RestartParams, RestartResult};
use tokio::sync::oneshot;

use crate::hub::Hub;
use crate::state::StateDir;

/// How long `<exe> --version` may take: a healthy binary answers in milliseconds; the
/// margin covers a cold page cache on a loaded machine.
const CHECK_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the new daemon has to register and answer by default.
const DEFAULT_TIMEOUT_S: u64 = 15;
/// The longest health check a caller may ask for: it stays under the client's 30 s
/// request timeout, pause and start included.
const MAX_TIMEOUT_S: u64 = 20;
/// How long the old daemon waits for `spawn.lock` (held by a client starting a daemon)
/// before handing over without it.
const SPAWN_LOCK_WAIT: Duration = Duration::from_secs(5);

/// The environment variable naming a file where `r1 serve` writes why it could not
/// start, so the daemon handing over to it can say why.
pub const START_ERROR_ENV: &str = "R1_START_ERROR_FILE";
/// The environment variable a daemon brought back after a failed restart finds the
/// reason in.
pub const RESTART_FAILED_ENV: &str = "R1_RESTART_FAILED";

/// A restart under way: how long the new daemon gets, and where its outcome goes.
pub(crate) struct Handover {
    timeout: Duration,
    reply: oneshot::Sender<Result<RestartResult, ApiError>>,
}

/// The restart state of a daemon run.
#[derive(Default)]
pub(crate) struct RestartCell {
    /// The handover asked for, taken by the serve loop once the shutdown starts.
    pending: Mutex<Option<Handover>>,
    /// True from the request until the outcome: one restart at a time.
    busy: AtomicBool,
    /// The daemon lock, released for the new daemon; `None` when this run cannot hand
    /// over (it was started in-process, without `r1 serve`).
    lock: Mutex<Option<Arc<File>>>,
}

fn conflict(message: String) -> ApiError {
    ApiError::new(ErrorCode::Conflict, message)
}

impl RestartCell {
    /// Records the daemon lock, which makes a handover possible.
    pub(crate) fn set_lock(&self, lock: Arc<File>) {
        if let Ok(mut l) = self.lock.lock() {
            *l = Some(lock);
        }
    }

    fn lock_file(&self) -> Option<Arc<File>> {
        self.lock.lock().ok().and_then(|l| l.clone())
    }

    /// The handover asked for, if any (once).
    pub(crate) fn take(&self) -> Option<Handover> {
        self.pending.lock().ok().and_then(|mut p| p.take())
    }
}

impl Hub {
    /// Hands the daemon over to the binary now on disk (see the module doc); answers
    /// once the new daemon serves, or with why it does not (this daemon then comes
    /// back).
    pub async fn restart_onto_disk_binary(
        &self,
        p: RestartParams,
    ) -> Result<RestartResult, ApiError> {
        let cell = self.restart_cell();
        if cell.lock_file().is_none() {
            return Err(conflict(
                "this daemon cannot hand over: it does not hold its lock as `r1 serve` does".into(),
            ));
        }
        if self.shutdown_token().is_cancelled() {
            return Err(conflict("the daemon is already stopping".into()));
        }
        if cell.busy.swap(true, Ordering::SeqCst) {
            return Err(conflict("a restart is already under way".into()));
        }
        let result = self.start_handover(p).await;
        if result.is_err() && !self.shutdown_token().is_cancelled() {
            cell.busy.store(false, Ordering::SeqCst);
        }
        result
    }

    async fn start_handover(&self, p: RestartParams) -> Result<RestartResult, ApiError> {
        let exe = self
            .info()
            .exe
            .clone()
            .map(PathBuf::from)
            .ok_or_else(|| conflict("the daemon does not know which binary it runs".into()))?;
        let version = check_binary(&exe).await.map_err(|why| {
            tracing::warn!(exe = %exe.display(), "restart refused: {why}");
            conflict(format!(
                "the binary on disk cannot take over: {why}; this daemon (pid {}) keeps serving",
                self.info().pid
            ))
        })?;
        let timeout = Duration::from_secs(
            p.timeout_s
                .unwrap_or(DEFAULT_TIMEOUT_S)
                .clamp(1, MAX_TIMEOUT_S),
        );
        tracing::info!(exe = %exe.display(), new_version = %version, "restart: handing over to the binary on disk");
        let (reply, outcome) = oneshot::channel();
        if let Ok(mut pending) = self.restart_cell().pending.lock() {
            *pending = Some(Handover { timeout, reply });
        }
        self.begin_shutdown(crate::hub::DEFAULT_GRACE);
        outcome
            .await
            .unwrap_or_else(|_| Err(ApiError::internal("the handover ended without an answer")))
    }
}

/// Runs `<exe> --version`; its first line of output, or why it is not fit.
async fn check_binary(exe: &Path) -> Result<String, String> {
    let run = tokio::process::Command::new(exe)
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(CHECK_TIMEOUT, run)
        .await
        .map_err(|_| {
            format!(
                "`{} --version` did not answer within {}s",
                exe.display(),
                CHECK_TIMEOUT.as_secs()
            )
        })?
        .map_err(|e| format!("cannot run {}: {e}", exe.display()))?;
    if !out.status.success() {
        return Err(format!(
            "`{} --version` failed ({}){}",
            exe.display(),
            out.status,
            tail(&out.stderr)
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text.lines().next().unwrap_or("").trim().to_string())
}

/// The last line of a process's output, as `: <line>`, or nothing.
fn tail(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    match text.lines().rev().find(|l| !l.trim().is_empty()) {
        Some(l) => format!(": {}", l.trim().chars().take(300).collect::<String>()),
        None => String::new(),
    }
}

/// What the serve loop knows that a handover needs.
pub(crate) struct Listening<'a> {
    pub(crate) state: &'a StateDir,
    pub(crate) port: u16,
}

/// Steps 3 to 5 of the handover, once this daemon has paused its sessions and closed
/// its listeners: start the new daemon, wait for it, and answer the restart request.
/// `Ok` means the new daemon serves; `Err` says why it does not. The `spawn.lock`
/// taken is handed back, to hold until this process exits or starts again.
pub(crate) async fn hand_over(
    hub: &Hub,
    at: &Listening<'_>,
    handover: Handover,
) -> (Result<(), String>, Option<File>) {
    let spawn_lock = take_spawn_lock(at.state).await;
    let outcome = start_and_check(hub, at, handover.timeout).await;
    let result = match &outcome {
        Ok(r) => {
            tracing::info!(pid = r.pid, version = %r.version, "restart: the new daemon serves; this one exits");
            Ok(())
        }
        Err(e) => {
            tracing::error!("restart failed: {}", e.message);
            Err(e.message.clone())
        }
    };
    let _ = handover.reply.send(outcome);
    (result, spawn_lock)
}

async fn start_and_check(
    hub: &Hub,
    at: &Listening<'_>,
    timeout: Duration,
) -> Result<RestartResult, ApiError> {
    let info = hub.info();
    let exe = PathBuf::from(info.exe.clone().unwrap_or_default());
    let failed = |why: String| {
        conflict(format!(
            "the new daemon ({}) did not take over: {why}; the old daemon (version {}) is brought back on the same port",
            exe.display(),
            info.version
        ))
    };
    // The new daemon takes the lock; it was this run's since it started.
    if let Some(lock) = hub.restart_cell().lock_file() {
        if let Err(e) = lock.unlock() {
            return Err(failed(format!("cannot release the daemon lock: {e}")));
        }
    }
    let report = at.state.path("restart.err");
    let _ = std::fs::remove_file(&report);
    let mut cmd = std::process::Command::new(&exe);
    cmd.args(child_args(at.port))
        .env(START_ERROR_ENV, &report)
        .env_remove(RESTART_FAILED_ENV)
        .stdin(std::process::Stdio::null());
    {
        use std::os::unix::process::CommandExt;
        // Its own process group: a terminal's Ctrl-C aimed at the old daemon does not
        // reach it, and a failed one is killed with its children.
        cmd.process_group(0);
    }
    // A binary an installer has just written can be "busy" for a moment (a process
    // forked while its write descriptor was open has not exec'd yet): try again briefly.
    let mut busy = 0;
    let mut child = loop {
        match cmd.spawn() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && busy < 50 => {
                busy += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            r => break r.map_err(|e| failed(format!("cannot start it: {e}")))?,
        }
    };
    let pid = child.id();
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                let why = std::fs::read_to_string(&report)
                    .ok()
                    .map(|t| t.trim().to_string())
                    .filter(|t| !t.is_empty());
                let _ = std::fs::remove_file(&report);
                return Err(failed(match why {
                    Some(why) => format!("it exited ({status}): {why}"),
                    None => format!("it exited ({status}) before registering"),
                }));
            }
            Ok(None) => {}
            Err(e) => return Err(failed(format!("cannot watch it: {e}"))),
        }
        if let Ok(Some(reg)) = at.state.read_registration() {
            if reg.pid == pid && handshake_ok(Path::new(&reg.sock)).await {
                // The new daemon outlives this one; reap it if this one lingers.
                std::thread::spawn(move || child.wait());
                return Ok(RestartResult {
                    exe: exe.display().to_string(),
                    from_version: info.version.clone(),
                    version: reg.version,
                    from_build_id: info.build_id.clone().unwrap_or_default(),
                    build_id: reg.build_id.unwrap_or_default(),
                    pid,
                    daemon_id: reg.id,
                    url: reg.url,
                });
            }
        }
        if tokio::time::Instant::now() >= deadline {
            // SAFETY: kill only signals; the group is the child's own (process_group(0)).
            unsafe {
                libc::kill(-(pid as i32), libc::SIGKILL);
            }
            let _ = child.wait();
            let _ = std::fs::remove_file(&report);
            return Err(failed(format!(
                "it did not register and answer within {}s, and was stopped",
                timeout.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The new daemon's arguments: this one's `serve` arguments with the same port pinned,
/// without a one-time `--rotate-token` or the sidecar's stdout line (its parent reads
/// the old daemon's).
fn child_args(port: u16) -> Vec<OsString> {
    let mut out = Vec::new();
    let mut args = std::env::args_os().skip(1);
    while let Some(a) = args.next() {
        let s = a.to_string_lossy();
        if s == "--port" {
            args.next();
            continue;
        }
        if s.starts_with("--port=") || s == "--rotate-token" || s == "--emit-port-stdout" {
            continue;
        }
        out.push(a);
    }
    if out.is_empty() {
        out.push("serve".into());
    }
    out.push("--port".into());
    out.push(port.to_string().into());
    out
}

/// Whether a daemon answers the handshake (the probe, no token needed) on `sock`.
async fn handshake_ok(sock: &Path) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let probe = async {
        let mut s = tokio::net::UnixStream::connect(sock).await.ok()?;
        s.write_all(b"GET /v1/handshake HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await
            .ok()?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.ok()?;
        Some(buf.starts_with(b"HTTP/1.1 200"))
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), probe).await,
        Ok(Some(true))
    )
}

/// Takes `spawn.lock` (the lock clients hold while they start a daemon), waiting up to
/// [`SPAWN_LOCK_WAIT`]; without it the handover goes on (a client's daemon would lose
/// the race for the daemon lock or win it, and either way one daemon serves).
async fn take_spawn_lock(state: &StateDir) -> Option<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(state.path("spawn.lock"))
        .ok()?;
    let deadline = tokio::time::Instant::now() + SPAWN_LOCK_WAIT;
    loop {
        match file.try_lock() {
            Ok(()) => return Some(file),
            Err(std::fs::TryLockError::WouldBlock) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(_) => {
                tracing::warn!("restart: spawn.lock is busy; handing over without it");
                return None;
            }
        }
    }
}

/// Replaces this process with a fresh start of its own image and arguments: the
/// fallback of a failed handover. `/proc/self/exe` is the binary this process runs,
/// even when the file at its path has been replaced. Returns only on failure.
pub(crate) fn bring_back(reason: &str) -> std::io::Error {
    use std::os::unix::process::CommandExt;
    let image = if cfg!(target_os = "linux") {
        PathBuf::from("/proc/self/exe")
    } else {
        std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/proc/self/exe"))
    };
    let mut args = std::env::args_os();
    let mut cmd = std::process::Command::new(image);
    if let Some(argv0) = args.next() {
        cmd.arg0(argv0);
    }
    cmd.args(args.filter(|a| a != "--rotate-token"))
        .env(RESTART_FAILED_ENV, reason);
    cmd.exec()
}

/// The build id of the binary at `path`: its size and modification time
/// (`<bytes>-<mtime ns>`). Replacing the file (a rebuild, an upgrade, a copy) changes
/// it; it is cheap to compute and needs no hash of a large file.
pub fn build_id(path: &std::path::Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let md = std::fs::metadata(path).ok()?;
    let ns = i128::from(md.mtime()) * 1_000_000_000 + i128::from(md.mtime_nsec());
    Some(format!("{}-{ns}", md.len()))
}
