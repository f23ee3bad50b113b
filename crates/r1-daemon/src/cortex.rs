//! The cortex: a notes board per session, and the lobes that watch a session and
//! publish to it.
//!
//! A note is a durable `cortex.note` record; the session's fold keeps the newest
//! [`crate::transition::MAX_NOTES`] for `cortex.notes`, and the critical ones published
//! since the last turn started are given to the agent at the start of its next turn
//! (see [`crate::transition::Core::turn_notes`]).
//!
//! Lobes watch one session each. They live in the session's actor as a [`LobeHost`],
//! made on the first record the actor writes (an idle session has none), and see every
//! record it writes, in order:
//! - `loop` (built in): one tool call repeated with the same arguments
//!   [`LOOP_REPEATS`] times in a row;
//! - `budget` (built in): the session has used [`BUDGET_WARN_PERCENT`] % of its token
//!   budget;
//! - `verify` (built in): a turn that changed files in a worktree ended: the project's
//!   build and test steps run (`verify.build`, `verify.test`) and failures become
//!   critical notes;
//! - user lobes: each trusted executable in `$R1_HOME/lobes` (the same trust checks as
//!   hooks), started per session on its first record, fed the records as JSON lines on
//!   stdin and answering notes as JSON lines (`{text, tags[], critical}`) on stdout. It
//!   runs as hooks do: its own process group, the minimal environment without the
//!   token, cwd the session's workdir. It is stopped when the session goes quiet for
//!   [`LOBE_IDLE`], is paused, or ends, and started again on the next record.
//!
//! Built-in lobes publish through the actor's own inbox, and user lobes from their
//! reader task, as `cortex.publish` does: a note is a command like any other. A paused
//! lobe's notes are refused by the session's rules, so none lands after a pause.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use r1_proto::events::{CortexNote, SessionMessage};
use r1_proto::{
    ApiError, EventData, EventRecord, LobeList, LobeView, NoteInput, SessionState, VerifyParams,
    VerifyStep,
};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

use crate::fsutil::random_hex;
use crate::Hub;

/// The built-in lobes: name and what it watches for.
pub const BUILTIN: [(&str, &str); 3] = [
    (
        "verify",
        "after a turn that changed files in a worktree, runs the project's build and test steps and publishes failures as critical notes (not in a mission's session: the mission verifies itself)",
    ),
    (
        "budget",
        "warns (critically) when the session has used 80 % of its token budget",
    ),
    (
        "loop",
        "flags (critically) one tool call repeated with the same arguments three times in a row",
    ),
];
/// How many identical tool calls in a row the `loop` lobe flags.
pub const LOOP_REPEATS: usize = 3;
/// The share of the token budget at which the `budget` lobe warns.
pub const BUDGET_WARN_PERCENT: u64 = 80;
/// Bytes of records waiting for one user lobe; past it records are dropped (and
/// counted in the log), so a lobe that stops reading cannot grow the daemon.
pub const LOBE_QUEUE_BYTES: usize = 1 << 20;
/// A user lobe that was fed nothing for this long is stopped.
pub const LOBE_IDLE: Duration = Duration::from_secs(300);
/// The longest note text.
pub const MAX_NOTE_BYTES: usize = 8192;
/// The longest line a user lobe may print (a longer one is skipped).
const LOBE_LINE_BYTES: usize = 64 * 1024;
/// Notes one lobe may publish in one session per minute; more are dropped.
const NOTES_PER_MINUTE: usize = 30;
/// Tools that only read: a turn that ran nothing else changed no file.
const READ_ONLY_TOOLS: [&str; 3] = ["read_file", "list_dir", "search"];

/// Checks a note's shape: the text 1 to [`MAX_NOTE_BYTES`] bytes, at most 16 tags of
/// at most 64 bytes.
pub fn validate(note: &NoteInput) -> Result<(), ApiError> {
    if note.text.trim().is_empty() {
        return Err(ApiError::validation("the note's `text` is empty"));
    }
    if note.text.len() > MAX_NOTE_BYTES {
        return Err(ApiError::validation(format!(
            "the note's `text` is {} bytes; at most {MAX_NOTE_BYTES}",
            note.text.len()
        )));
    }
    if note.tags.len() > 16 || note.tags.iter().any(|t| t.is_empty() || t.len() > 64) {
        return Err(ApiError::validation(
            "at most 16 `tags`, each 1 to 64 bytes",
        ));
    }
    Ok(())
}

/// The record of a note `source` publishes.
pub fn note_record(note: NoteInput, source: &str) -> Result<CortexNote, ApiError> {
    validate(&note)?;
    Ok(CortexNote {
        note_id: format!(
            "note_{}",
            random_hex(6).map_err(|_| ApiError::internal("no randomness"))?
        ),
        text: note.text,
        tags: note.tags,
        critical: note.critical,
        source: source.to_string(),
    })
}

/// A file in `$R1_HOME/lobes`.
#[derive(Debug, Clone)]
pub struct LobeFile {
    /// The file name, which is the lobe's name.
    pub name: String,
    /// Its path.
    pub path: PathBuf,
    /// Why it may not run, when it may not (the hooks' trust rules).
    pub refused: Option<String>,
}

/// Every file of `dir`, by name, with whether it may run. A missing directory holds no
/// lobes; names of built-in lobes are refused (they would be ambiguous).
pub fn discover(dir: &Path) -> Vec<LobeFile> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<LobeFile> = entries
        .flatten()
        .map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            let refused = if BUILTIN.iter().any(|(b, _)| *b == name) || name == "client" {
                Some(format!("`{name}` is a reserved lobe name; rename the file"))
            } else {
                // Not followed: a symlink is refused, as for hooks.
                match std::fs::symlink_metadata(&path) {
                    Ok(meta) => crate::hooks::refusal(&meta),
                    Err(e) => Some(format!("cannot read it: {e}")),
                }
            };
            LobeFile {
                name,
                path,
                refused,
            }
        })
        .filter(|f| !f.name.starts_with('.'))
        .collect();
    files.sort_by(|a, b| a.name.cmp(&b.name));
    files
}

/// The daemon's lobes: the user's files (read at start and on reload) and what went
/// wrong with them per session.
pub struct Cortex {
    dir: PathBuf,
    files: Mutex<Arc<Vec<LobeFile>>>,
    /// (session, lobe) → why the lobe stopped (it crashed): it is not started again
    /// for that session until it is resumed or the daemon restarts.
    failed: Mutex<HashMap<(String, String), String>>,
}

impl Cortex {
    /// The lobes in `home/lobes`.
    pub fn new(home: &Path) -> Cortex {
        let dir = home.join("lobes");
        let files = discover(&dir);
        for f in &files {
            if let Some(why) = &f.refused {
                tracing::warn!(lobe = %f.name, "lobe refused: {why}");
            }
        }
        Cortex {
            dir,
            files: Mutex::new(Arc::new(files)),
            failed: Mutex::default(),
        }
    }

    /// Reads `$R1_HOME/lobes` again (on reload).
    pub fn rediscover(&self) {
        let files = Arc::new(discover(&self.dir));
        *self.files.lock().unwrap_or_else(|e| e.into_inner()) = files;
    }

    /// The user lobes as last read.
    pub fn files(&self) -> Arc<Vec<LobeFile>> {
        self.files.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn failure(&self, session: &str, lobe: &str) -> Option<String> {
        self.failed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(session.to_string(), lobe.to_string()))
            .cloned()
    }

    fn set_failed(&self, session: &str, lobe: &str, why: String) {
        let mut failed = self.failed.lock().unwrap_or_else(|e| e.into_inner());
        // Bounded: one entry per session and lobe that crashed, forgotten on resume.
        if failed.len() < 10_000 {
            failed.insert((session.to_string(), lobe.to_string()), why);
        }
    }

    /// Forgets that `lobe` crashed in `session`, so it starts again.
    pub fn clear_failed(&self, session: &str, lobe: &str) {
        self.failed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(session.to_string(), lobe.to_string()));
    }

    /// Whether `name` is a lobe: built in, or a file in `$R1_HOME/lobes`.
    pub fn exists(&self, name: &str) -> bool {
        BUILTIN.iter().any(|(b, _)| *b == name) || self.files().iter().any(|f| f.name == name)
    }
}

impl Hub {
    /// Pauses or resumes the lobe `p` names in its session; idempotent.
    pub(crate) async fn set_lobe(
        &self,
        p: &r1_proto::LobeRef,
        paused: bool,
    ) -> Result<LobeList, ApiError> {
        let s = self.session(&p.session_id)?;
        if !self.cortex().exists(&p.lobe) {
            return Err(ApiError::not_found(format!(
                "there is no lobe `{}`: see `cortex.lobes_list` for session {}",
                p.lobe, s.id
            )));
        }
        s.command(crate::transition::Command::SetLobe {
            lobe: p.lobe.clone(),
            paused,
        })
        .await?;
        if !paused {
            self.cortex().clear_failed(&s.id, &p.lobe);
        }
        self.lobes_of(&s.id)
    }

    /// `cortex.lobes_list` for the session `id`.
    pub(crate) fn lobes_of(&self, id: &str) -> Result<LobeList, ApiError> {
        let s = self.session(id)?;
        let snap = s.snapshot();
        let count = |name: &str| snap.notes.iter().filter(|n| n.source == name).count() as u64;
        let mut lobes: Vec<LobeView> = BUILTIN
            .iter()
            .map(|(name, description)| LobeView {
                name: (*name).to_string(),
                kind: "builtin".into(),
                description: (*description).to_string(),
                paused: snap.lobes_paused.contains(*name),
                notes: count(name),
                error: None,
            })
            .collect();
        let cortex = self.cortex();
        lobes.extend(cortex.files().iter().map(|f| LobeView {
            name: f.name.clone(),
            kind: "user".into(),
            description: format!("{}", f.path.display()),
            paused: snap.lobes_paused.contains(&f.name),
            notes: count(&f.name),
            error: f.refused.clone().or_else(|| cortex.failure(&s.id, &f.name)),
        }));
        Ok(LobeList {
            session_id: s.id.clone(),
            lobes,
        })
    }
}

/// What the actor does for its lobes after a record.
pub enum LobeAction {
    /// Publish this note, from this lobe.
    Publish(NoteInput, &'static str),
    /// Run the verify steps (the `verify` lobe).
    Verify,
}

/// The lobes of one session, owned by its actor.
pub struct LobeHost {
    session_id: String,
    workdir: PathBuf,
    home: PathBuf,
    worktree: bool,
    token_budget: Option<u64>,
    /// `loop`: the last tool call (name and arguments) and how often it came in a row.
    last_call: Option<String>,
    repeats: usize,
    /// `budget`: whether the warning was given.
    budget_warned: bool,
    /// `verify`: a tool that may change files completed in this turn.
    changed: bool,
    /// A verify run of this session is in flight.
    pub verifying: Arc<AtomicBool>,
    user: HashMap<String, UserLobe>,
    /// Notes each lobe published in the current minute, to cap a chatty one.
    rate: HashMap<String, (Instant, usize)>,
}

impl LobeHost {
    /// The lobes of a session; `warned` when the budget lobe has spoken already (its
    /// note is on the board).
    pub fn new(
        session_id: &str,
        workdir: &str,
        home: &Path,
        worktree: bool,
        token_budget: Option<u64>,
        warned: bool,
    ) -> LobeHost {
        LobeHost {
            session_id: session_id.to_string(),
            workdir: PathBuf::from(workdir),
            home: home.to_path_buf(),
            worktree,
            token_budget,
            last_call: None,
            repeats: 0,
            budget_warned: warned,
            changed: false,
            verifying: Arc::default(),
            user: HashMap::new(),
            rate: HashMap::new(),
        }
    }

    /// Shows `rec` to every lobe not `paused`; the built-in lobes answer with what to
    /// do, user lobes are fed it (and publish through `publish` themselves). `used` is
    /// the session's token count now (its budget counter).
    pub fn observe(
        &mut self,
        rec: &EventRecord,
        used: u64,
        paused: &BTreeSet<String>,
        cortex: &Arc<Cortex>,
        publish: &flume::WeakSender<crate::actor::Msg>,
    ) -> Vec<LobeAction> {
        let mut out = Vec::new();
        let event = rec.event().ok();
        let on = |name: &str| !paused.contains(name);
        match &event {
            Some(EventData::SessionMessage(SessionMessage::Assistant(m))) => {
                if on("loop") {
                    for call in &m.tool_calls {
                        let key = format!("{}\u{0}{}", call.name, call.arguments);
                        if self.last_call.as_deref() == Some(key.as_str()) {
                            self.repeats += 1;
                        } else {
                            self.last_call = Some(key);
                            self.repeats = 1;
                        }
                        if self.repeats == LOOP_REPEATS {
                            out.push(LobeAction::Publish(
                                NoteInput {
                                    text: format!(
                                        "The agent called `{}` with the same arguments {LOOP_REPEATS} times in a row ({}). Its result will not change: stop repeating the call and try something else, or ask the user.",
                                        call.name,
                                        truncate(&call.arguments.to_string(), 200)
                                    ),
                                    tags: vec!["loop".into()],
                                    critical: true,
                                },
                                "loop",
                            ));
                        }
                    }
                }
                if let (Some(_), Some(budget)) = (&m.usage, self.token_budget) {
                    let reached =
                        used.saturating_mul(100) >= budget.saturating_mul(BUDGET_WARN_PERCENT);
                    if reached && !self.budget_warned && on("budget") {
                        self.budget_warned = true;
                        out.push(LobeAction::Publish(
                            NoteInput {
                                text: format!(
                                    "This session has used {} of its {budget}-token budget ({} %). Finish the task or wrap up soon: at the budget the turn stops.",
                                    used,
                                    used.saturating_mul(100) / budget.max(1)
                                ),
                                tags: vec!["budget".into()],
                                critical: true,
                            },
                            "budget",
                        ));
                    }
                }
            }
            Some(EventData::SessionMessage(SessionMessage::User(_))) => {
                self.last_call = None;
                self.repeats = 0;
            }
            Some(EventData::ToolCompleted(t)) => {
                let reads = t
                    .tool
                    .as_deref()
                    .is_some_and(|n| READ_ONLY_TOOLS.contains(&n));
                if !t.is_error && !t.denied && !reads {
                    self.changed = true;
                }
            }
            Some(EventData::SessionState(d))
                if d.state == SessionState::Idle
                    && self.changed
                    && self.worktree
                    && on("verify") =>
            {
                self.changed = false;
                if !self.verifying.swap(true, Ordering::AcqRel) {
                    out.push(LobeAction::Verify);
                }
            }
            _ => {}
        }
        self.feed_user(rec, &event, paused, cortex, publish);
        out
    }

    /// Whether `lobe` may publish one more note now (at most [`NOTES_PER_MINUTE`]).
    pub fn allow_note(&mut self, lobe: &str) -> bool {
        let now = Instant::now();
        let (start, n) = self.rate.entry(lobe.to_string()).or_insert((now, 0));
        if now.duration_since(*start) >= Duration::from_secs(60) {
            *start = now;
            *n = 0;
        }
        *n += 1;
        *n <= NOTES_PER_MINUTE
    }

    fn feed_user(
        &mut self,
        rec: &EventRecord,
        event: &Option<EventData>,
        paused: &BTreeSet<String>,
        cortex: &Arc<Cortex>,
        publish: &flume::WeakSender<crate::actor::Msg>,
    ) {
        let files = cortex.files();
        // Paused, removed or refused lobes stop now: dropping the feed ends the process.
        self.user.retain(|name, lobe| {
            !paused.contains(name)
                && !lobe.tx.is_closed()
                && files.iter().any(|f| &f.name == name && f.refused.is_none())
        });
        if files.is_empty() {
            return;
        }
        let line: Arc<str> = match serde_json::to_string(rec) {
            Ok(mut s) => {
                s.push('\n');
                s.into()
            }
            Err(_) => return,
        };
        // A lobe is not shown its own notes, so it cannot feed itself.
        let own = match event {
            Some(EventData::CortexNote(n)) => Some(n.source.as_str()),
            _ => None,
        };
        for f in files.iter() {
            if f.refused.is_some()
                || paused.contains(&f.name)
                || own == Some(f.name.as_str())
                || cortex.failure(&self.session_id, &f.name).is_some()
            {
                continue;
            }
            let lobe = match self.user.get(&f.name) {
                Some(l) => l,
                None => {
                    let l = UserLobe::start(
                        f,
                        &self.session_id,
                        &self.workdir,
                        &self.home,
                        cortex,
                        publish,
                    );
                    self.user.entry(f.name.clone()).or_insert(l)
                }
            };
            lobe.feed(&line);
        }
    }
}

/// A user lobe running for one session: the feed of its stdin.
struct UserLobe {
    name: String,
    tx: mpsc::UnboundedSender<Arc<str>>,
    /// Bytes fed and not yet written to its stdin.
    queued: Arc<AtomicUsize>,
}

impl UserLobe {
    fn start(
        file: &LobeFile,
        session_id: &str,
        workdir: &Path,
        home: &Path,
        cortex: &Arc<Cortex>,
        publish: &flume::WeakSender<crate::actor::Msg>,
    ) -> UserLobe {
        let (tx, rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let run = LobeRun {
            file: file.clone(),
            session_id: session_id.to_string(),
            workdir: workdir.to_path_buf(),
            home: home.to_path_buf(),
            queued: queued.clone(),
            cortex: cortex.clone(),
            publish: publish.clone(),
        };
        tokio::spawn(run.run(rx));
        UserLobe {
            name: file.name.clone(),
            tx,
            queued,
        }
    }

    /// Queues `line` unless the lobe is [`LOBE_QUEUE_BYTES`] behind.
    fn feed(&self, line: &Arc<str>) {
        let before = self.queued.fetch_add(line.len(), Ordering::AcqRel);
        if before + line.len() > LOBE_QUEUE_BYTES {
            self.queued.fetch_sub(line.len(), Ordering::AcqRel);
            tracing::warn!(lobe = %self.name, "lobe is {before} bytes behind; a record was not fed to it");
            return;
        }
        if self.tx.send(line.clone()).is_err() {
            self.queued.fetch_sub(line.len(), Ordering::AcqRel);
        }
    }
}

struct LobeRun {
    file: LobeFile,
    session_id: String,
    workdir: PathBuf,
    home: PathBuf,
    queued: Arc<AtomicUsize>,
    cortex: Arc<Cortex>,
    publish: flume::WeakSender<crate::actor::Msg>,
}

impl LobeRun {
    async fn run(self, mut rx: mpsc::UnboundedReceiver<Arc<str>>) {
        let mut cmd = tokio::process::Command::new(&self.file.path);
        cmd.env_clear()
            .env(
                "PATH",
                std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into()),
            )
            .env("R1_HOME", &self.home)
            .env("R1_EVENT", "lobe")
            .env("R1_LOBE", &self.file.name)
            .env("R1_SESSION_ID", &self.session_id)
            .current_dir(&self.workdir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        if let Some(h) = std::env::var_os("HOME") {
            cmd.env("HOME", h);
        }
        let lobe = self.file.name.as_str();
        let session = self.session_id.as_str();
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(lobe, session, "cannot start the lobe: {e}");
                self.fail(format!("cannot start it: {e}"));
                return;
            }
        };
        let pgid = child.id().map_or(0, |p| p as libc::pid_t);
        tracing::info!(lobe, session, pid = pgid, "lobe started");
        let mut stdin = child.stdin.take();
        let mut stdout = child.stdout.take().map(|o| BufReader::new(o).lines());
        if let Some(err) = child.stderr.take() {
            let (lobe, session) = (lobe.to_string(), session.to_string());
            tokio::spawn(async move {
                let mut lines = BufReader::new(err).lines();
                while let Ok(Some(l)) = lines.next_line().await {
                    tracing::info!(lobe = %lobe, session = %session, "lobe stderr: {}", truncate(&l, 2000));
                }
            });
        }
        let status = loop {
            tokio::select! {
                line = rx.recv() => match line {
                    Some(line) => {
                        self.queued.fetch_sub(line.len(), Ordering::AcqRel);
                        if let Some(pipe) = stdin.as_mut() {
                            if pipe.write_all(line.as_bytes()).await.is_err() {
                                // It closed its stdin: it still may print notes.
                                stdin = None;
                            }
                        }
                    }
                    // Paused, the session ended, or the daemon stops.
                    None => break None,
                },
                out = async {
                    match stdout.as_mut() {
                        Some(o) => o.next_line().await,
                        None => std::future::pending().await,
                    }
                } => match out {
                    Ok(Some(line)) => self.answer(&line).await,
                    _ => stdout = None,
                },
                s = child.wait() => break Some(s),
                () = tokio::time::sleep(LOBE_IDLE) => break None,
            }
        };
        crate::hooks::kill_group(pgid);
        let status = match status {
            Some(s) => s.ok(),
            None => {
                let _ = child.wait().await;
                None
            }
        };
        match status {
            Some(s) if !s.success() => {
                let why = format!("it exited with {s}; resume the lobe to start it again");
                tracing::warn!(lobe, session, "lobe stopped: {why}");
                self.fail(why);
            }
            _ => tracing::info!(lobe, session, "lobe stopped"),
        }
    }

    fn fail(&self, why: String) {
        self.cortex
            .set_failed(&self.session_id, &self.file.name, why);
    }

    /// Publishes the note in `line`, one JSON object `{text, tags[], critical}`.
    async fn answer(&self, line: &str) {
        let line = line.trim();
        if line.is_empty() {
            return;
        }
        let lobe = self.file.name.as_str();
        if line.len() > LOBE_LINE_BYTES {
            tracing::warn!(lobe, "lobe printed a line of {} bytes; skipped", line.len());
            return;
        }
        let note: NoteInput = match serde_json::from_str::<Value>(line)
            .map_err(|e| e.to_string())
            .and_then(|v| serde_json::from_value(v).map_err(|e| e.to_string()))
        {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(
                    lobe,
                    "lobe printed a line that is not a note ({e}); skipped"
                );
                return;
            }
        };
        let Some(tx) = self.publish.upgrade() else {
            return;
        };
        let _ = tx
            .send_async(crate::actor::Msg::LobeNote {
                note: Box::new(note),
                lobe: lobe.into(),
            })
            .await;
    }
}

/// Runs the `verify` lobe for session `id`: build, then test, each only when the
/// project has one; failures become critical notes.
pub(crate) async fn run_verify(hub: Hub, id: String, done: Arc<AtomicBool>) {
    // A mission's session runs the mission's own verify steps after its turn.
    if hub.missions().owns_session(&id) {
        done.store(false, Ordering::Release);
        return;
    }
    let mut notes = Vec::new();
    for step in [VerifyStep::Build, VerifyStep::Test] {
        let p = VerifyParams {
            worktree_id: None,
            session_id: Some(id.clone()),
            packages: Vec::new(),
        };
        match hub
            .verify(step, p, hub.shutdown_token().child_token())
            .await
        {
            Ok(r) if r.ok => {}
            Ok(r) => {
                let mut text = format!("verify {}: {} (`{}`)", step.as_str(), r.summary, r.command);
                for f in r.failures.iter().take(5) {
                    text.push_str("\n- ");
                    if let Some(file) = &f.file {
                        text.push_str(file);
                        if let Some(line) = f.line {
                            text.push_str(&format!(":{line}"));
                        }
                        text.push_str(": ");
                    }
                    text.push_str(&truncate(&f.message, 300));
                }
                notes.push(NoteInput {
                    text: truncate(&text, MAX_NOTE_BYTES),
                    tags: vec!["verify".into(), step.as_str().into()],
                    critical: true,
                });
                break;
            }
            // Nothing to run for this step (no project detected) or the session ended.
            Err(e) => {
                tracing::debug!(session = %id, "verify lobe: {} skipped: {}", step.as_str(), e.message)
            }
        }
    }
    for note in notes {
        if let Ok(s) = hub.session(&id) {
            let _ = s.lobe_note(note, "verify").await;
        }
    }
    done.store(false, Ordering::Release);
}

fn truncate(s: &str, max: usize) -> String {
    let head = crate::fsutil::head(s, max);
    if head.len() == s.len() {
        return s.to_string();
    }
    format!("{head}…")
}
