//! Hooks: the user's own executables in `$R1_HOME/hooks`, named by the event they
//! answer (`on-message`, `on-message.sh`, …), run when that event is journaled.
//!
//! A hook gets the event as one JSON object on stdin (the journal record plus the
//! session's summary) and may answer with one JSON object on stdout: `{"reply"}` sends
//! a follow-up message, `{"decision","reason"}` answers an approval
//! (`on-approval-request`), `{"action","text","reason"}` lets a message through,
//! blocks or rewrites it (`pre-send`). Hooks run outside the agent sandbox, with the
//! user's rights, like shell rc files; so a file is trusted only when it is a regular
//! file owned by the user, executable, and not writable by group or others.
//!
//! Every hook but `pre-send` runs after its record is journaled, in a task of its own,
//! through a bounded pool ([`HooksConfig::pool`] at once, at most [`MAX_WAITING`]
//! waiting), so a slow or crashing hook never stalls a session or the daemon.
//! `pre-send` is the one hook a message waits for, and only up to its timeout. Each
//! hook runs in its own process group (killed whole on timeout and once the hook
//! exits), with an empty environment but `PATH`, `HOME`, `R1_HOME`, `R1_SESSION_ID`
//! and `R1_EVENT`: the daemon's token never reaches it. Each run is journaled on its
//! session (`hook.ran`, `hook.failed`, `hook.blocked`) and counted.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use r1_proto::events::{HookBlocked, HookFailed, HookRan, SessionMessage};
use r1_proto::{
    ApiError, EventData, EventKind, EventRecord, HookInfo, HookList, HookTestParams,
    HookTestResult, SendMessageParams,
};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Semaphore;

use crate::sessions::Session;
use crate::transition::Rec;
use crate::Hub;

/// Every event a hook can be named after.
pub const EVENTS: [&str; 9] = [
    "on-startup",
    "on-session-start",
    "on-message",
    "on-turn-end",
    "on-approval-request",
    "on-session-end",
    "on-mission-finished",
    "on-error",
    "pre-send",
];

/// Hook runs that may wait for a place in the pool; beyond this a run is dropped with
/// a log line and counted as failed, so a burst of events cannot grow memory without
/// bound.
pub const MAX_WAITING: usize = 1024;
/// How much of a hook's stdout and stderr is kept; the rest is read and dropped (so
/// the hook never blocks on a full pipe).
const OUTPUT_BYTES: usize = 64 * 1024;
/// How much of a hook file is read to find its `# r1:timeout=` line.
const HEADER_BYTES: usize = 4096;
/// The longest timeout a hook may ask for: an hour.
const MAX_TIMEOUT_S: u64 = 3600;
/// The `client_message_id` prefix of the messages a hook's `reply` sends; a user
/// message with it fires no `on-message` hook, so a hook cannot feed itself.
const REPLY_KEY: &str = "hook:";

/// `[hooks]` in `daemon.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HooksConfig {
    /// Run hooks at all (default true).
    pub enabled: bool,
    /// How many hooks run at once (default 8, 1 to 64); the others wait.
    pub pool: usize,
    /// A hook's timeout in seconds unless it names its own (default 30, 1 to 3600).
    pub default_timeout_s: u64,
}

impl Default for HooksConfig {
    fn default() -> Self {
        HooksConfig {
            enabled: true,
            pool: 8,
            default_timeout_s: 30,
        }
    }
}

impl HooksConfig {
    /// Refuses a pool or timeout out of range.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=64).contains(&self.pool) {
            return Err(format!(
                "[hooks] pool must be between 1 and 64, not {}",
                self.pool
            ));
        }
        if !(1..=MAX_TIMEOUT_S).contains(&self.default_timeout_s) {
            return Err(format!(
                "[hooks] default_timeout_s must be between 1 and {MAX_TIMEOUT_S}, not {}",
                self.default_timeout_s
            ));
        }
        Ok(())
    }
}

/// One file of the hooks directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookFile {
    /// The file name.
    pub name: String,
    /// The event its name matches, if any.
    pub event: Option<&'static str>,
    /// Its path.
    pub path: PathBuf,
    /// Why it is not trusted; `None` when it is.
    pub refused: Option<String>,
    /// How long it may run.
    pub timeout: Duration,
}

impl HookFile {
    /// What `hooks.list` says of it.
    pub fn info(&self) -> HookInfo {
        HookInfo {
            name: self.name.clone(),
            event: self.event.map(str::to_string),
            path: self.path.display().to_string(),
            trusted: self.refused.is_none(),
            refused: self.refused.clone(),
            timeout_s: self.timeout.as_secs(),
        }
    }
}

/// The event a file name answers: the name without its extension (`on-message.sh`),
/// when that is one of [`EVENTS`]. Hidden files and editor backups answer nothing.
pub fn event_of(name: &str) -> Option<&'static str> {
    if name.starts_with('.') || name.ends_with('~') {
        return None;
    }
    let stem = name.split_once('.').map_or(name, |(stem, _)| stem);
    EVENTS.iter().copied().find(|e| *e == stem)
}

/// Why a file with metadata `meta` must not run as a hook, or `None` when it may: a
/// regular file (not a symlink), owned by the user, executable by its owner, and not
/// writable by group or others.
pub fn refusal(meta: &std::fs::Metadata) -> Option<String> {
    if !meta.file_type().is_file() {
        return Some("not a regular file".into());
    }
    // SAFETY: geteuid(2) takes nothing and cannot fail.
    let uid = unsafe { libc::geteuid() };
    if meta.uid() != uid {
        return Some(format!("owned by uid {}, not the user ({uid})", meta.uid()));
    }
    let mode = meta.permissions().mode();
    if mode & 0o022 != 0 {
        return Some(format!(
            "writable by group or others (mode {:o}); chmod go-w it",
            mode & 0o7777
        ));
    }
    if mode & 0o100 == 0 {
        return Some(format!(
            "not executable (mode {:o}); chmod u+x it",
            mode & 0o7777
        ));
    }
    None
}

/// The timeout a hook names in a `# r1:timeout=120s` line near its top (`120`, `120s`,
/// `2m`), if any, within the allowed range.
pub fn timeout_line(header: &str) -> Option<Duration> {
    header.lines().find_map(|line| {
        let v = line.trim().strip_prefix('#')?.trim();
        let v = v.strip_prefix("r1:timeout=")?.trim();
        let (num, unit) = match v.strip_suffix('s') {
            Some(n) => (n, 1),
            None => match v.strip_suffix('m') {
                Some(n) => (n, 60),
                None => (v, 1),
            },
        };
        let secs = num.trim().parse::<u64>().ok()?.checked_mul(unit)?;
        (1..=MAX_TIMEOUT_S)
            .contains(&secs)
            .then(|| Duration::from_secs(secs))
    })
}

/// Every file of `dir`, sorted by name, with its event, trust and timeout. A missing
/// directory holds no hooks.
pub fn discover(dir: &Path, default_timeout_s: u64) -> Vec<HookFile> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<HookFile> = entries
        .flatten()
        .map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            // Not followed: a symlink is refused, since its target may be anyone's.
            let refused = match std::fs::symlink_metadata(&path) {
                Ok(meta) => refusal(&meta),
                Err(e) => Some(format!("cannot read it: {e}")),
            };
            let named = refused.is_none().then(|| header(&path)).flatten();
            let timeout = named
                .as_deref()
                .and_then(timeout_line)
                .unwrap_or(Duration::from_secs(default_timeout_s));
            HookFile {
                event: event_of(&name),
                name,
                path,
                refused,
                timeout,
            }
        })
        .collect();
    files.sort_by(|a, b| a.name.cmp(&b.name));
    files
}

fn header(path: &Path) -> Option<String> {
    use std::io::Read;
    let mut buf = Vec::with_capacity(HEADER_BYTES);
    std::fs::File::open(path)
        .ok()?
        .take(HEADER_BYTES as u64)
        .read_to_end(&mut buf)
        .ok()?;
    Some(String::from_utf8_lossy(&buf).into_owned())
}

/// What one run of a hook did.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// The exit code; `None` when a signal ended it or it never started.
    pub exit_code: Option<i32>,
    /// How long it ran.
    pub duration: Duration,
    /// It ran past its timeout and its process group was killed.
    pub timed_out: bool,
    /// Its stdout (bounded).
    pub stdout: String,
    /// Its stderr (bounded).
    pub stderr: String,
    /// It could not be started.
    pub spawn_error: Option<String>,
}

impl Outcome {
    /// Why the run failed, or `None` when it exited 0.
    pub fn failure(&self) -> Option<String> {
        if let Some(e) = &self.spawn_error {
            return Some(format!("could not start: {e}"));
        }
        if self.timed_out {
            return Some(format!(
                "timed out after {} s; its process group was killed",
                self.duration.as_secs()
            ));
        }
        let last = self.stderr.trim().lines().last().unwrap_or_default();
        let said = if last.is_empty() {
            String::new()
        } else {
            format!(": {last}")
        };
        match self.exit_code {
            Some(0) => None,
            Some(code) => Some(format!("exited with code {code}{said}")),
            None => Some(format!("killed by a signal{said}")),
        }
    }

    /// Its stdout read as a hook answer: `Ok(None)` when empty, an error when it is not
    /// a JSON object.
    pub fn answer(&self) -> Result<Option<serde_json::Map<String, Value>>, String> {
        let out = self.stdout.trim();
        if out.is_empty() {
            return Ok(None);
        }
        match serde_json::from_str::<Value>(out) {
            Ok(Value::Object(m)) => Ok(Some(m)),
            Ok(_) => Err("its stdout is JSON but not an object".into()),
            Err(e) => Err(format!("its stdout is not JSON: {e}")),
        }
    }
}

/// Where and as whom a hook runs.
pub struct RunContext<'a> {
    /// The event it answers (`R1_EVENT`).
    pub event: &'a str,
    /// The session (`R1_SESSION_ID`), for session events.
    pub session_id: Option<&'a str>,
    /// Its working directory: the session's workdir, or `$R1_HOME`.
    pub cwd: &'a Path,
    /// `$R1_HOME`.
    pub r1_home: &'a Path,
}

/// Runs `hook` once with `stdin`, in its own process group, with the minimal
/// environment, until it exits or its timeout passes (then the whole group is killed).
/// The group is killed after a normal exit too, so nothing it started outlives it.
pub async fn run(hook: &HookFile, ctx: &RunContext<'_>, stdin: &[u8]) -> Outcome {
    let started = Instant::now();
    let mut cmd = tokio::process::Command::new(&hook.path);
    cmd.env_clear()
        .env(
            "PATH",
            std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into()),
        )
        .env("R1_HOME", ctx.r1_home)
        .env("R1_EVENT", ctx.event)
        .current_dir(ctx.cwd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if let Some(home) = std::env::var_os("HOME") {
        cmd.env("HOME", home);
    }
    if let Some(id) = ctx.session_id {
        cmd.env("R1_SESSION_ID", id);
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return Outcome {
                duration: started.elapsed(),
                spawn_error: Some(e.to_string()),
                ..Outcome::default()
            }
        }
    };
    let pgid = child.id().map_or(0, |p| p as libc::pid_t);
    let input = child.stdin.take();
    let out = child.stdout.take();
    let err = child.stderr.take();
    let work = async {
        let write = async {
            if let Some(mut pipe) = input {
                // A hook that does not read its stdin closes the pipe: not an error.
                let _ = pipe.write_all(stdin).await;
            }
        };
        let waited = async {
            let status = child.wait().await;
            // Whatever the hook left running (holding its pipes or not) goes with it.
            kill_group(pgid);
            status
        };
        let ((), o, e, status) = tokio::join!(write, read_bounded(out), read_bounded(err), waited);
        (o, e, status)
    };
    match tokio::time::timeout(hook.timeout, work).await {
        Ok((stdout, stderr, status)) => Outcome {
            exit_code: status.ok().and_then(|s| s.code()),
            duration: started.elapsed(),
            timed_out: false,
            stdout,
            stderr,
            spawn_error: None,
        },
        Err(_) => {
            kill_group(pgid);
            let _ = child.wait().await;
            Outcome {
                duration: started.elapsed(),
                timed_out: true,
                ..Outcome::default()
            }
        }
    }
}

/// Kills the process group a hook runs in (SIGKILL).
pub(crate) fn kill_group(pgid: libc::pid_t) {
    // kill(-1) would signal every process of the user and kill(0) the daemon's own
    // group; a child's pid is never either, but this is the one place to be sure.
    if pgid <= 1 {
        return;
    }
    // SAFETY: kill(2) takes two integers and touches no memory of ours; the negative pid
    // addresses the group created for the hook (`process_group(0)`). ESRCH (the group
    // is gone) is the usual outcome after a clean exit and is ignored.
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
}

async fn read_bounded<R: tokio::io::AsyncRead + Unpin>(pipe: Option<R>) -> String {
    let Some(mut pipe) = pipe else {
        return String::new();
    };
    let mut kept = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = OUTPUT_BYTES.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
    String::from_utf8_lossy(&kept).into_owned()
}

/// The hooks of a daemon run: where they live, the pool, and the counts.
pub struct Hooks {
    dir: PathBuf,
    home: PathBuf,
    /// `[hooks]`, swapped by a config reload.
    config: std::sync::RwLock<HooksConfig>,
    pool: Arc<Semaphore>,
    waiting: AtomicUsize,
    runs: AtomicU64,
    failed: AtomicU64,
}

impl Hooks {
    /// The hooks of `$R1_HOME` (`home`), configured by `config`.
    pub fn new(home: &Path, config: HooksConfig) -> Hooks {
        Hooks {
            dir: home.join("hooks"),
            home: home.to_path_buf(),
            pool: Arc::new(Semaphore::new(config.pool.max(1))),
            config: std::sync::RwLock::new(config),
            waiting: AtomicUsize::new(0),
            runs: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        }
    }

    /// `[hooks]` as now in force.
    pub(crate) fn settings(&self) -> HooksConfig {
        self.config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Puts a reloaded `[hooks]` in force: the switch and timeout at once, the pool
    /// grown at once or shrunk as running hooks finish.
    pub(crate) fn reconfigure(&self, new: HooksConfig) {
        let mut cur = self.config.write().unwrap_or_else(|p| p.into_inner());
        let (old, want) = (cur.pool.max(1), new.pool.max(1));
        if want > old {
            self.pool.add_permits(want - old);
        } else if want < old {
            let pool = Arc::clone(&self.pool);
            let fewer = u32::try_from(old - want).unwrap_or(u32::MAX);
            tokio::spawn(async move {
                if let Ok(p) = pool.acquire_many_owned(fewer).await {
                    p.forget();
                }
            });
        }
        *cur = new;
    }

    /// Hook runs started since the daemon started.
    pub fn runs(&self) -> u64 {
        self.runs.load(Ordering::Relaxed)
    }

    /// Hook runs that failed (non-zero exit, timeout, bad answer, no room to wait).
    pub fn failures(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    /// The trusted hooks for `event`, read from the directory now (so a hook added or
    /// fixed takes effect at its next event). Refused ones are logged.
    fn for_event(&self, event: &str) -> Vec<HookFile> {
        if !self.settings().enabled {
            return Vec::new();
        }
        discover(&self.dir, self.settings().default_timeout_s)
            .into_iter()
            .filter(|h| h.event == Some(event))
            .filter(|h| match &h.refused {
                None => true,
                Some(why) => {
                    tracing::warn!(hook = %h.name, "hook refused: {why}");
                    false
                }
            })
            .collect()
    }

    /// Runs `hook` with `stdin`, counting it and its failure.
    async fn run_counted(&self, hook: &HookFile, ctx: &RunContext<'_>, stdin: &[u8]) -> Outcome {
        self.runs.fetch_add(1, Ordering::Relaxed);
        let out = run(hook, ctx, stdin).await;
        if let Some(why) = out.failure() {
            self.failed.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(hook = %hook.name, event = ctx.event, session = ctx.session_id.unwrap_or("-"), "hook failed: {why}");
        } else {
            tracing::debug!(hook = %hook.name, event = ctx.event, "hook ran");
        }
        out
    }
}

/// What fired a hook run in the background.
struct Fired {
    event: &'static str,
    session: Option<Arc<Session>>,
    seq: Option<u64>,
    /// For `on-approval-request`: the approval its `decision` answers.
    approval_id: Option<String>,
    payload: Value,
}

impl Hub {
    /// Fires the hooks of a record the session's actor just journaled, if it is one of
    /// a hook event; the hooks run later, in the pool, never on the journal path.
    pub(crate) fn fire_record(&self, s: &Arc<Session>, rec: &EventRecord) {
        let event = match rec.kind {
            EventKind::SessionCreated => "on-session-start",
            EventKind::SessionMessage => "on-message",
            EventKind::ApprovalRequested => "on-approval-request",
            EventKind::SessionEnded => "on-session-end",
            EventKind::SessionError => "on-error",
            _ => return,
        };
        self.fire_session(event, s, rec);
    }

    /// Fires `event`'s hooks for `rec` of session `s`.
    pub(crate) fn fire_session(&self, event: &'static str, s: &Arc<Session>, rec: &EventRecord) {
        if !self.hooks().settings().enabled {
            return;
        }
        let mut approval_id = None;
        match rec.event() {
            Ok(EventData::SessionMessage(SessionMessage::User(m)))
                if m.client_message_id
                    .as_deref()
                    .is_some_and(|k| k.starts_with(REPLY_KEY)) =>
            {
                return;
            }
            Ok(EventData::ApprovalRequested(a)) => approval_id = Some(a.approval_id),
            _ => {}
        }
        self.fire(Fired {
            event,
            session: Some(Arc::clone(s)),
            seq: Some(rec.seq),
            approval_id,
            payload: json!({
                "event": event,
                "session_id": s.id,
                "record": rec,
            }),
        });
    }

    /// Fires `on-startup`.
    pub(crate) fn fire_startup(&self) {
        let info = self.info();
        self.fire(Fired {
            event: "on-startup",
            session: None,
            seq: None,
            approval_id: None,
            payload: json!({
                "event": "on-startup",
                "daemon": {
                    "id": info.id,
                    "pid": info.pid,
                    "version": info.version,
                    "started_at": info.started_at,
                },
            }),
        });
    }

    /// Fires `on-mission-finished` for mission `id` (journaled on its session, if any).
    pub(crate) fn fire_mission_finished(&self, mission: &r1_proto::MissionView) {
        let session = mission
            .session_id
            .as_deref()
            .and_then(|id| self.session(id).ok());
        self.fire(Fired {
            event: "on-mission-finished",
            session,
            seq: None,
            approval_id: None,
            payload: json!({ "event": "on-mission-finished", "mission": mission }),
        });
    }

    /// Runs the hooks of `f` in a task of its own, through the pool.
    fn fire(&self, mut f: Fired) {
        let hub = self.clone();
        tokio::spawn(async move {
            let hooks = hub.hooks();
            let found = hooks.for_event(f.event);
            if found.is_empty() {
                return;
            }
            let mut payload = std::mem::take(&mut f.payload);
            if let (Some(s), Value::Object(m)) = (&f.session, &mut payload) {
                // Read now, after the record's actor published its view.
                m.insert("session".into(), json!(s.view()));
            }
            let stdin = serde_json::to_vec(&payload).unwrap_or_default();
            let cwd = f
                .session
                .as_ref()
                .map_or_else(|| hooks.home.clone(), |s| PathBuf::from(&s.workdir));
            for hook in found {
                if hooks.waiting.fetch_add(1, Ordering::AcqRel) >= MAX_WAITING {
                    hooks.waiting.fetch_sub(1, Ordering::AcqRel);
                    hooks.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(hook = %hook.name, event = f.event, "hook dropped: {MAX_WAITING} runs already wait for the pool");
                    continue;
                }
                let permit = Arc::clone(&hooks.pool).acquire_owned().await;
                hooks.waiting.fetch_sub(1, Ordering::AcqRel);
                let Ok(_permit) = permit else { return };
                let ctx = RunContext {
                    event: f.event,
                    session_id: f.session.as_ref().map(|s| s.id.as_str()),
                    cwd: &cwd,
                    r1_home: &hooks.home,
                };
                let out = hooks.run_counted(&hook, &ctx, &stdin).await;
                let Some(s) = &f.session else { continue };
                hub.after_run(s, &hook, &f, &out).await;
            }
        });
    }

    /// Journals a background run on its session and carries out its answer.
    async fn after_run(&self, s: &Arc<Session>, hook: &HookFile, f: &Fired, out: &Outcome) {
        let failed = |reason: String| HookFailed {
            hook: hook.name.clone(),
            event: f.event.to_string(),
            reason,
            event_seq: f.seq,
        };
        if let Some(why) = out.failure() {
            self.journal_hook(s, failed(why)).await;
            return;
        }
        let answer = match out.answer() {
            Ok(a) => a.unwrap_or_default(),
            Err(why) => {
                self.hooks().failed.fetch_add(1, Ordering::Relaxed);
                self.journal_hook(s, failed(why)).await;
                return;
            }
        };
        let text = |k: &str| answer.get(k).and_then(Value::as_str).map(str::to_string);
        let reason = text("reason");
        let mut action = None;
        let mut effect = Ok(());
        if let (Some(approval_id), Some(decision)) = (&f.approval_id, text("decision")) {
            if decision == "allow" || decision == "deny" {
                action = Some(decision.clone());
                effect = self
                    .approve(&s.id, approval_id, &decision, false)
                    .await
                    .map(|_| ());
            } else {
                effect = Err(ApiError::validation(format!(
                    "decision must be allow or deny, not {decision}"
                )));
            }
        } else if let Some(reply) = text("reply").filter(|r| !r.trim().is_empty()) {
            action = Some("reply".to_string());
            let key = format!("{REPLY_KEY}{}:{}", hook.name, f.seq.unwrap_or(0));
            effect = self
                .send_message(
                    &s.id,
                    SendMessageParams {
                        session_id: s.id.clone(),
                        text: reply,
                        client_message_id: Some(key.chars().take(200).collect()),
                    },
                )
                .await
                .map(|_| ());
        }
        self.journal_hook(
            s,
            HookRan {
                hook: hook.name.clone(),
                event: f.event.to_string(),
                event_seq: f.seq,
                exit_code: out.exit_code,
                duration_ms: out.duration.as_millis() as u64,
                action,
                reason,
            },
        )
        .await;
        if let Err(e) = effect {
            tracing::warn!(hook = %hook.name, session = %s.id, "hook answer not applied: {}", e.message);
            self.journal_hook(
                s,
                failed(format!("its answer was not applied: {}", e.message)),
            )
            .await;
        }
    }

    /// Journals a hook record on `s`; an ended session takes no more records, which is
    /// only logged.
    async fn journal_hook(&self, s: &Session, event: impl Into<EventData>) {
        if let Err(e) = s.emit(Rec::new("main", event, false)).await {
            tracing::debug!(session = %s.id, "hook record not journaled: {}", e.message);
        }
    }

    /// The `pre-send` gate: runs the `pre-send` hooks on a message before it is
    /// accepted, and answers the text to send (rewritten or not), or the `conflict`
    /// a blocking hook asks for. A hook that fails or times out lets the message
    /// through, with a `hook.failed` record. It runs outside the pool: a send waits
    /// only for its own hook, never behind other sessions' slow hooks.
    pub(crate) async fn pre_send(
        &self,
        s: &Arc<Session>,
        mut text: String,
        client_message_id: Option<&str>,
    ) -> Result<String, ApiError> {
        let hooks = self.hooks();
        if !hooks.settings().enabled {
            return Ok(text);
        }
        let found = hooks.for_event("pre-send");
        for hook in found {
            let payload = json!({
                "event": "pre-send",
                "session_id": s.id,
                "message": { "text": text, "client_message_id": client_message_id },
                "session": s.view(),
            });
            let stdin = serde_json::to_vec(&payload).unwrap_or_default();
            let cwd = PathBuf::from(&s.workdir);
            let ctx = RunContext {
                event: "pre-send",
                session_id: Some(&s.id),
                cwd: &cwd,
                r1_home: &hooks.home,
            };
            let out = hooks.run_counted(&hook, &ctx, &stdin).await;
            let failed = |reason: String| HookFailed {
                hook: hook.name.clone(),
                event: "pre-send".into(),
                reason: format!("{reason}; the message went through"),
                event_seq: None,
            };
            if let Some(why) = out.failure() {
                self.journal_hook(s, failed(why)).await;
                continue;
            }
            let answer = match out.answer() {
                Ok(a) => a.unwrap_or_default(),
                Err(why) => {
                    hooks.failed.fetch_add(1, Ordering::Relaxed);
                    self.journal_hook(s, failed(why)).await;
                    continue;
                }
            };
            let field = |k: &str| answer.get(k).and_then(Value::as_str).map(str::to_string);
            let reason = field("reason");
            let action = field("action").unwrap_or_else(|| "allow".into());
            match action.as_str() {
                "block" => {
                    let why = reason.unwrap_or_else(|| "no reason given".into());
                    self.journal_hook(
                        s,
                        HookBlocked {
                            hook: hook.name.clone(),
                            reason: why.clone(),
                            text: Some(text),
                        },
                    )
                    .await;
                    return Err(ApiError::conflict(format!(
                        "the pre-send hook {} blocked the message: {why}",
                        hook.name
                    )));
                }
                "rewrite" => match field("text").filter(|t| !t.trim().is_empty()) {
                    Some(t) if t.len() <= self.config().limits.max_message_bytes => text = t,
                    _ => {
                        hooks.failed.fetch_add(1, Ordering::Relaxed);
                        self.journal_hook(
                            s,
                            failed("it asked for a rewrite without a usable text".into()),
                        )
                        .await;
                        continue;
                    }
                },
                "allow" => {}
                other => {
                    hooks.failed.fetch_add(1, Ordering::Relaxed);
                    self.journal_hook(
                        s,
                        failed(format!(
                            "action must be allow, block or rewrite, not {other}"
                        )),
                    )
                    .await;
                    continue;
                }
            }
            self.journal_hook(
                s,
                HookRan {
                    hook: hook.name.clone(),
                    event: "pre-send".into(),
                    event_seq: None,
                    exit_code: out.exit_code,
                    duration_ms: out.duration.as_millis() as u64,
                    action: Some(action),
                    reason,
                },
            )
            .await;
        }
        Ok(text)
    }

    /// `hooks.list`.
    pub(crate) fn hooks_list_now(&self) -> HookList {
        let hooks = self.hooks();
        HookList {
            enabled: hooks.settings().enabled,
            dir: hooks.dir.display().to_string(),
            hooks: discover(&hooks.dir, hooks.settings().default_timeout_s)
                .iter()
                .map(HookFile::info)
                .collect(),
        }
    }

    /// `hooks.test`: runs one hook against a sample event (or the one given), in
    /// `$R1_HOME`, with no session and no effect.
    pub(crate) async fn hooks_test_now(
        &self,
        p: HookTestParams,
    ) -> Result<HookTestResult, ApiError> {
        let hooks = self.hooks();
        let all = discover(&hooks.dir, hooks.settings().default_timeout_s);
        let hook = all
            .iter()
            .find(|h| h.name == p.name)
            .or_else(|| all.iter().find(|h| h.event == Some(p.name.as_str())))
            .ok_or_else(|| {
                ApiError::not_found(format!("no hook {} in {}", p.name, hooks.dir.display()))
            })?;
        if let Some(why) = &hook.refused {
            return Err(ApiError::conflict(format!(
                "hook {} is refused: {why}",
                hook.name
            )));
        }
        let event = hook.event.ok_or_else(|| {
            ApiError::validation(format!(
                "{} is named after no event ({})",
                hook.name,
                EVENTS.join(", ")
            ))
        })?;
        let payload = match p.event {
            Some(Value::Object(m)) => Value::Object(m),
            Some(_) => return Err(ApiError::validation("event must be a JSON object")),
            None => sample(event),
        };
        let stdin = serde_json::to_vec(&payload).unwrap_or_default();
        let ctx = RunContext {
            event,
            session_id: None,
            cwd: &hooks.home,
            r1_home: &hooks.home,
        };
        let out = run(hook, &ctx, &stdin).await;
        let answer = out.answer();
        let error = out.failure().or_else(|| answer.as_ref().err().cloned());
        Ok(HookTestResult {
            hook: hook.name.clone(),
            event: event.to_string(),
            exit_code: out.exit_code,
            duration_ms: out.duration.as_millis() as u64,
            timed_out: out.timed_out,
            answer: answer.ok().flatten().map(Value::Object),
            stdout: out.stdout,
            stderr: out.stderr,
            error,
        })
    }
}

/// A sample event of `event`, shaped like the real ones, for `hooks.test`.
pub fn sample(event: &str) -> Value {
    let session = json!({
        "id": "ses_sample", "workdir": "/tmp", "engine": "echo", "model": null,
        "title": "sample", "state": "idle", "reattachable": false,
        "created_at": "2026-01-01T00:00:00.000Z", "last_seq": 3,
        "pending_approvals": [], "error": null,
    });
    let record = |kind: &str, data: Value| json!({"v": 1, "seq": 3, "at": "2026-01-01T00:00:00.000Z", "kind": kind, "lane": "main", "data": data});
    let mut v = match event {
        "on-startup" => {
            return json!({"event": event, "daemon": {"id": "sample", "pid": 1, "version": "0", "started_at": "2026-01-01T00:00:00.000Z"}})
        }
        "on-mission-finished" => {
            return json!({"event": event, "mission": {"id": "mis_sample", "state": "succeeded", "session_id": null}})
        }
        "pre-send" => {
            json!({"message": {"text": "hello", "client_message_id": null}})
        }
        "on-session-start" => json!({"record": record("session.created", json!({
            "id": "ses_sample", "workdir": "/tmp", "engine": "echo", "created_at": "2026-01-01T00:00:00.000Z"}))}),
        "on-turn-end" => json!({"record": record("session.state", json!({"state": "idle"}))}),
        "on-approval-request" => json!({"record": record("approval.requested", json!({
            "approval_id": "apr_sample", "tool": "run_command", "args": {"cmd": "rm -rf /"},
            "call_id": "c1", "reply_to": "msg_sample"}))}),
        "on-session-end" => json!({"record": record("session.ended", json!({}))}),
        "on-error" => {
            json!({"record": record("session.error", json!({"message": "sample failure", "code": "internal"}))})
        }
        _ => json!({"record": record("session.message", json!({
            "role": "user", "text": "hello", "message_id": "msg_sample", "client_message_id": null}))}),
    };
    if let Value::Object(m) = &mut v {
        m.insert("event".into(), json!(event));
        m.insert("session_id".into(), json!("ses_sample"));
        m.insert("session".into(), session);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_events_without_extension() {
        assert_eq!(event_of("on-message"), Some("on-message"));
        assert_eq!(event_of("on-message.sh"), Some("on-message"));
        assert_eq!(event_of("pre-send.py"), Some("pre-send"));
        assert_eq!(event_of("on-message.sh~"), None);
        assert_eq!(event_of(".on-message"), None);
        assert_eq!(event_of("on-messages"), None);
    }

    #[test]
    fn timeout_lines() {
        assert_eq!(
            timeout_line("#!/bin/sh\n# r1:timeout=120s\n"),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            timeout_line("#r1:timeout=2m"),
            Some(Duration::from_secs(120))
        );
        assert_eq!(timeout_line("# r1:timeout=5"), Some(Duration::from_secs(5)));
        assert_eq!(timeout_line("# r1:timeout=0s"), None);
        assert_eq!(timeout_line("# r1:timeout=99999s"), None);
        assert_eq!(timeout_line("echo r1:timeout=5"), None);
    }

    #[test]
    fn config_is_validated() {
        assert!(HooksConfig::default().validate().is_ok());
        let bad = HooksConfig {
            pool: 0,
            ..HooksConfig::default()
        };
        assert!(bad.validate().is_err());
        let bad = HooksConfig {
            default_timeout_s: 0,
            ..HooksConfig::default()
        };
        assert!(bad.validate().is_err());
    }

    fn script(dir: &Path, name: &str, body: &str, mode: u32) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, body).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    #[test]
    fn trust_checks() {
        let dir = tempfile::tempdir().unwrap();
        script(dir.path(), "on-message.sh", "#!/bin/sh\n", 0o700);
        script(dir.path(), "on-error", "#!/bin/sh\n", 0o770);
        script(dir.path(), "on-turn-end", "#!/bin/sh\n", 0o600);
        std::fs::create_dir(dir.path().join("pre-send")).unwrap();
        std::os::unix::fs::symlink(
            dir.path().join("on-message.sh"),
            dir.path().join("on-startup"),
        )
        .unwrap();
        let found = discover(dir.path(), 30);
        let by = |n: &str| found.iter().find(|h| h.name == n).unwrap();
        assert_eq!(by("on-message.sh").refused, None);
        assert!(by("on-error")
            .refused
            .as_deref()
            .unwrap()
            .contains("writable"));
        assert!(by("on-turn-end")
            .refused
            .as_deref()
            .unwrap()
            .contains("executable"));
        assert!(by("pre-send")
            .refused
            .as_deref()
            .unwrap()
            .contains("regular"));
        assert!(by("on-startup")
            .refused
            .as_deref()
            .unwrap()
            .contains("regular"));
    }

    fn ctx(dir: &Path) -> RunContext<'_> {
        RunContext {
            event: "on-message",
            session_id: Some("ses_1"),
            cwd: dir,
            r1_home: dir,
        }
    }

    #[tokio::test]
    async fn runs_with_stdin_and_a_minimal_environment() {
        let dir = tempfile::tempdir().unwrap();
        script(
            dir.path(),
            "on-message",
            "#!/bin/sh\ncat > stdin.json\nenv > env.txt\npwd > cwd.txt\necho '{\"reply\":\"hi\"}'\n",
            0o700,
        );
        let hook = discover(dir.path(), 30).remove(0);
        let out = run(&hook, &ctx(dir.path()), b"{\"a\":1}").await;
        assert_eq!(out.failure(), None);
        assert_eq!(out.answer().unwrap().unwrap()["reply"], "hi");
        let stdin = std::fs::read_to_string(dir.path().join("stdin.json")).unwrap();
        assert_eq!(stdin, "{\"a\":1}");
        let env = std::fs::read_to_string(dir.path().join("env.txt")).unwrap();
        let mut names: Vec<&str> = env
            .lines()
            .filter_map(|l| l.split_once('=').map(|(k, _)| k))
            .filter(|k| !["PWD", "SHLVL", "_", "OLDPWD"].contains(k))
            .collect();
        names.sort_unstable();
        let mut want = vec!["PATH", "R1_HOME", "R1_EVENT", "R1_SESSION_ID"];
        if std::env::var_os("HOME").is_some() {
            want.push("HOME");
        }
        want.sort_unstable();
        assert_eq!(names, want);
    }

    #[tokio::test]
    async fn a_timeout_kills_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        script(
            dir.path(),
            "on-message",
            "#!/bin/sh\n# r1:timeout=1s\nsleep 300 &\necho $! > child.pid\nwait\n",
            0o700,
        );
        let hook = discover(dir.path(), 30).remove(0);
        assert_eq!(hook.timeout, Duration::from_secs(1));
        let out = run(&hook, &ctx(dir.path()), b"{}").await;
        assert!(out.timed_out);
        assert!(out.failure().unwrap().contains("timed out"));
        let pid: i32 = std::fs::read_to_string(dir.path().join("child.pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // Reaped by init once killed: give it a moment.
        let mut gone = false;
        for _ in 0..50 {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            if stat.is_empty() || stat.contains(") Z ") {
                gone = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(gone, "the hook's child sleep still runs");
    }

    #[tokio::test]
    async fn a_failure_says_why() {
        let dir = tempfile::tempdir().unwrap();
        script(
            dir.path(),
            "on-error",
            "#!/bin/sh\necho boom >&2\nexit 3\n",
            0o700,
        );
        let hook = discover(dir.path(), 30).remove(0);
        let out = run(&hook, &ctx(dir.path()), b"{}").await;
        assert_eq!(out.exit_code, Some(3));
        assert_eq!(out.failure().unwrap(), "exited with code 3: boom");
        script(dir.path(), "on-error", "#!/bin/sh\necho nope\n", 0o700);
        let hook = discover(dir.path(), 30).remove(0);
        let out = run(&hook, &ctx(dir.path()), b"{}").await;
        assert!(out.answer().is_err());
    }
}
