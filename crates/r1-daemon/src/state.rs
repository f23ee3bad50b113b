//! The state directory: its safety checks, the daemon lock, the token, the
//! registration and the operator config.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use r1_proto::Registration;
use serde::Deserialize;

use crate::fsutil::{euid, random_hex, write_atomic};

/// Why the daemon refused to start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The state directory is unsafe to use; the message says what to fix.
    #[error("{0}")]
    UnsafeStateDir(String),
    /// Another daemon holds the lock of this state directory.
    #[error("daemon already running, pid={pid}, sock={sock}\nhint: talk to it with `r1 ctl health` (or stop it with `r1 ctl shutdown`)")]
    AlreadyRunning {
        /// The running daemon's pid, `?` when it has not written it yet.
        pid: String,
        /// The running daemon's socket path.
        sock: String,
    },
    /// `daemon.toml` could not be read or parsed.
    #[error("invalid config {path}: {message}")]
    Config {
        /// The config path.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// An address that is not loopback was asked for.
    #[error("refusing to bind {0}: r1 listens on loopback only (127.0.0.1 or ::1); use SSH forwarding of the unix socket for remote access")]
    NotLoopback(String),
    /// Any other I/O failure, with what was being done.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The underlying error.
        source: io::Error,
    },
}

/// Attaches what was being done to an I/O error.
pub(crate) fn io_ctx(what: impl Into<String>) -> impl FnOnce(io::Error) -> StartError {
    let what = what.into();
    move |source| StartError::Io { what, source }
}

/// An opened, checked state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
    /// `root` with every symlink resolved, to tell whether a path lies inside it; found
    /// once here, not on every session create.
    canonical: PathBuf,
}

impl StateDir {
    /// Creates the directory (0700) when missing, then refuses it when it is a symlink,
    /// owned by another user, or open to group or others.
    pub fn open(root: &Path) -> Result<StateDir, StartError> {
        if fs::symlink_metadata(root).is_err() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(root)
                .map_err(io_ctx(format!(
                    "cannot create state dir {}",
                    root.display()
                )))?;
        }
        check_private_dir(root)?;
        let dir = StateDir {
            root: root.to_path_buf(),
            canonical: fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf()),
        };
        for sub in ["sessions", "bus", "logs", "hooks"] {
            let p = dir.root.join(sub);
            // Two daemons may start at once: the loser of this race is told about the
            // lock below, not about a directory the winner just made.
            match fs::DirBuilder::new().mode(0o700).create(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io_ctx(format!("cannot create {}", p.display()))(e)),
            }
        }
        Ok(dir)
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory with every symlink in its path resolved.
    pub fn canonical_root(&self) -> &Path {
        &self.canonical
    }

    /// A path inside the directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// Takes the daemon lock for the daemon's lifetime, or says who holds it.
    pub fn lock(&self) -> Result<File, StartError> {
        let path = self.path("daemon.lock");
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(io_ctx(format!("cannot open {}", path.display())))?;
        match file.try_lock() {
            Ok(()) => {
                file.set_len(0)
                    .and_then(|_| write!(file, "{}", std::process::id()))
                    .map_err(io_ctx("cannot write daemon.lock"))?;
                Ok(file)
            }
            Err(fs::TryLockError::WouldBlock) => Err(self.already_running()),
            Err(fs::TryLockError::Error(e)) => Err(io_ctx("cannot lock daemon.lock")(e)),
        }
    }

    /// Describes the daemon that holds the lock, waiting briefly for its registration
    /// when it is still starting.
    fn already_running(&self) -> StartError {
        for _ in 0..50 {
            if let Ok(Some(reg)) = self.read_registration() {
                return StartError::AlreadyRunning {
                    pid: reg.pid.to_string(),
                    sock: reg.sock,
                };
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let pid = fs::read_to_string(self.path("daemon.lock"))
            .ok()
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| "?".into());
        StartError::AlreadyRunning {
            pid: pid.trim().to_string(),
            sock: socket_path(&self.root).display().to_string(),
        }
    }

    /// Loads the token, creating it on first start or when `rotate` is set; with
    /// `token_file` the operator's token is adopted instead.
    ///
    /// Both the stored token and an operator's token file must be private: a regular
    /// file (not a symlink) owned by this user and closed to group and others. Anything
    /// else fails closed with the command that fixes it, because whoever can write or
    /// redirect the token file can choose the credential of every session.
    pub fn load_token(
        &self,
        rotate: bool,
        token_file: Option<&Path>,
    ) -> Result<String, StartError> {
        let path = self.path("token");
        if let Some(src) = token_file {
            let token = read_private_file(src, "token file")?.trim().to_string();
            if token.len() < 32 || !token.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(StartError::Config {
                    path: src.display().to_string(),
                    message: "a token must be at least 32 printable characters without spaces"
                        .into(),
                });
            }
            write_atomic(&path, token.as_bytes()).map_err(io_ctx("cannot write token"))?;
            return Ok(token);
        }
        if !rotate && fs::symlink_metadata(&path).is_ok() {
            let s = read_private_file(&path, "token file")?;
            let t = s.trim();
            if t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Ok(t.to_string());
            }
        }
        self.rotate_token()
    }

    /// The current token, as stored, with the same trust checks as at start.
    pub fn read_token_file(&self) -> io::Result<String> {
        read_private_file(&self.path("token"), "token file")
            .map(|s| s.trim().to_string())
            .map_err(|e| io::Error::new(io::ErrorKind::PermissionDenied, e.to_string()))
    }

    /// Removes the temp files that an atomic write interrupted by a crash left in the
    /// state directory (`.<name>.<12 hex>.tmp`, see `fsutil::write_atomic`). Runs at
    /// start, under the daemon lock, so no live writer owns them. Returns how many went.
    pub fn remove_stray_temp_files(&self) -> usize {
        let Ok(entries) = fs::read_dir(&self.root) else {
            return 0;
        };
        let mut removed = 0;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if !crate::fsutil::is_atomic_temp_name(name) {
                continue;
            }
            match entry.file_type() {
                Ok(t) if t.is_file() || t.is_symlink() => {}
                _ => continue,
            }
            match fs::remove_file(entry.path()) {
                Ok(()) => {
                    removed += 1;
                    tracing::info!(file = %name, "removed a temp file left by an interrupted write");
                }
                Err(e) => tracing::warn!(file = %name, "cannot remove a stray temp file: {e}"),
            }
        }
        removed
    }

    /// Writes a fresh 256-bit token and returns it.
    pub fn rotate_token(&self) -> Result<String, StartError> {
        let token = random_hex(32).map_err(io_ctx("cannot generate token"))?;
        write_atomic(&self.path("token"), token.as_bytes())
            .map_err(io_ctx("cannot write token"))?;
        Ok(token)
    }

    /// Reads `daemon.json`; `None` when absent or unreadable as a registration.
    pub fn read_registration(&self) -> io::Result<Option<Registration>> {
        match fs::read(self.path("daemon.json")) {
            Ok(bytes) => Ok(serde_json::from_slice(&bytes).ok()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes `daemon.json` atomically.
    pub fn write_registration(&self, reg: &Registration) -> io::Result<()> {
        let bytes = serde_json::to_vec_pretty(reg).map_err(io::Error::other)?;
        write_atomic(&self.path("daemon.json"), &bytes)
    }

    /// Deletes `daemon.json` only when it still names `id`.
    pub fn remove_registration_if_owned(&self, id: &str) {
        if let Ok(Some(reg)) = self.read_registration() {
            if reg.id == id {
                let _ = fs::remove_file(self.path("daemon.json"));
            }
        }
    }

    /// Reads `daemon.toml`, or the defaults when it does not exist.
    pub fn read_config(&self) -> Result<Config, StartError> {
        let path = self.path("daemon.toml");
        self.load_config().map_err(|e| match e {
            LoadConfigError::Io(e) => io_ctx(format!("cannot read {}", path.display()))(e),
            LoadConfigError::Invalid(e) => StartError::Config {
                path: path.display().to_string(),
                message: e.to_string(),
            },
        })
    }

    /// Reads and checks `daemon.toml` (the defaults when it does not exist), keeping
    /// where in the file an error is, for a live reload to report.
    pub fn load_config(&self) -> Result<Config, LoadConfigError> {
        match fs::read_to_string(self.path("daemon.toml")) {
            Ok(text) => parse_config(&text).map_err(LoadConfigError::Invalid),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Config::default()),
            Err(e) => Err(LoadConfigError::Io(e)),
        }
    }
}

/// Why `daemon.toml` could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadConfigError {
    /// The file exists but cannot be read.
    #[error("{0}")]
    Io(io::Error),
    /// The file is not a valid config.
    #[error("{0}")]
    Invalid(ConfigError),
}

/// What is wrong in `daemon.toml`, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// What is wrong.
    pub message: String,
    /// The key, as `section.key` (`missions.workers`), when one is to blame.
    pub key: Option<String>,
    /// The 1-based line, when known.
    pub line: Option<usize>,
    /// The 1-based column, when known.
    pub column: Option<usize>,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.line, self.column) {
            (Some(l), Some(c)) => write!(f, "line {l}, column {c}: ")?,
            (Some(l), None) => write!(f, "line {l}: ")?,
            _ => {}
        }
        if let Some(k) = &self.key {
            // The message often names the key already; say it once.
            if !self.message.contains(k.rsplit('.').next().unwrap_or(k)) {
                write!(f, "{k}: ")?;
            }
        }
        f.write_str(&self.message)
    }
}

/// Parses and checks the text of `daemon.toml`: the syntax and types, then each
/// section's rules. An error names the key and its line.
pub fn parse_config(text: &str) -> Result<Config, ConfigError> {
    let config: Config = toml::from_str(text).map_err(|e| {
        let (line, column) = match e.span() {
            Some(span) => {
                let (l, c) = line_col(text, span.start);
                (Some(l), Some(c))
            }
            None => (None, None),
        };
        ConfigError {
            message: e.message().trim().to_string(),
            key: line.and_then(|l| key_at_line(text, l)),
            line,
            column,
        }
    })?;
    let checks: [Result<(), String>; 8] = [
        config.web.validate(),
        r1_engine::validate_mcp_servers(&config.mcp_servers),
        validate_prices(&config.prices),
        crate::engines::engines(&config.engines).map(|_| ()),
        config.logs.validate(),
        config.hooks.validate(),
        config.limits.validate(),
        if (1..=64).contains(&config.missions.workers) {
            Ok(())
        } else {
            Err(format!(
                "[missions] workers must be between 1 and 64, not {}",
                config.missions.workers
            ))
        },
    ];
    for check in checks {
        if let Err(message) = check {
            let key = key_named_in(&message);
            let line = key.as_deref().and_then(|k| line_of_key(text, k));
            return Err(ConfigError {
                message,
                key,
                line,
                column: None,
            });
        }
    }
    Ok(config)
}

/// The 1-based line and column of byte `offset` in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// The table header a line of `daemon.toml` opens (`[limits]` → `limits`,
/// `[[mcp_servers]]` → `mcp_servers`), if it is one.
fn header(line: &str) -> Option<&str> {
    let t = line.trim();
    let inner = t.strip_prefix("[[").and_then(|r| r.split("]]").next());
    inner
        .or_else(|| t.strip_prefix('[').and_then(|r| r.split(']').next()))
        .map(str::trim)
}

/// The key a line assigns (`workers = 3` → `workers`), if it does.
fn assigned_key(line: &str) -> Option<&str> {
    let t = line.trim();
    if t.starts_with('#') || t.starts_with('[') {
        return None;
    }
    let (k, _) = t.split_once('=')?;
    Some(k.trim().trim_matches('"'))
}

/// `section.key` for line `line` (1-based): the key it assigns under the table it is in.
fn key_at_line(text: &str, line: usize) -> Option<String> {
    let mut section: Option<&str> = None;
    for (i, l) in text.lines().enumerate() {
        if i + 1 == line {
            if let Some(h) = header(l) {
                return Some(h.to_string());
            }
            let key = assigned_key(l)?;
            return Some(match section {
                Some(s) => format!("{s}.{key}"),
                None => key.to_string(),
            });
        }
        if let Some(h) = header(l) {
            section = Some(h);
        }
    }
    None
}

/// The line (1-based) where `key` (`section.key`, or a table name) is set or opened.
fn line_of_key(text: &str, key: &str) -> Option<usize> {
    let mut section: Option<&str> = None;
    for (i, l) in text.lines().enumerate() {
        if let Some(h) = header(l) {
            if h == key {
                return Some(i + 1);
            }
            section = Some(h);
            continue;
        }
        if let Some(k) = assigned_key(l) {
            let full = match section {
                Some(s) => format!("{s}.{k}"),
                None => k.to_string(),
            };
            if full == key {
                return Some(i + 1);
            }
        }
    }
    None
}

/// The key a check's message is about: `[limits] max_message_bytes must …` →
/// `limits.max_message_bytes`, `[engines.x]: …` → `engines.x`.
fn key_named_in(message: &str) -> Option<String> {
    let rest = message.strip_prefix('[')?;
    let (section, after) = rest.split_once(']')?;
    let section = section.trim_matches(|c| c == '[' || c == ']');
    let word: String = after
        .trim_start_matches(']')
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    if word.is_empty() || after.starts_with(':') {
        Some(section.to_string())
    } else {
        Some(format!("{section}.{word}"))
    }
}

/// Reads a file that holds a secret, refusing it unless it is a regular file (never
/// followed through a symlink: `O_NOFOLLOW`), owned by this user, with no group or
/// other permission bits. The checks are made on the opened descriptor, so the file
/// cannot be swapped between the check and the read.
pub fn read_private_file(path: &Path, what: &str) -> Result<String, StartError> {
    let shown = path.display();
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                StartError::UnsafeStateDir(format!(
                    "{what} {shown} is a symlink; r1 does not follow links to its credential. Remove it (`rm {shown}`) and start again (a fresh token is written), or point --token-file at the real file"
                ))
            } else {
                io_ctx(format!("cannot read {what} {shown}"))(e)
            }
        })?;
    let md = file
        .metadata()
        .map_err(io_ctx(format!("cannot stat {what} {shown}")))?;
    if !md.file_type().is_file() {
        return Err(StartError::UnsafeStateDir(format!(
            "{what} {shown} is not a regular file; remove it and start again"
        )));
    }
    if md.uid() != euid() {
        return Err(StartError::UnsafeStateDir(format!(
            "{what} {shown} is owned by uid {}, not you (uid {}); remove it (`rm {shown}`) and start again, r1 writes a fresh one",
            md.uid(),
            euid()
        )));
    }
    if md.mode() & 0o077 != 0 {
        return Err(StartError::UnsafeStateDir(format!(
            "{what} {shown} has mode {:o}, readable or writable by others; fix it with `chmod 600 {shown}` (and consider `r1 ctl rotate-token`)",
            md.mode() & 0o777
        )));
    }
    let mut s = String::new();
    (&file)
        .take(64 * 1024)
        .read_to_string(&mut s)
        .map_err(io_ctx(format!("cannot read {what} {shown}")))?;
    Ok(s)
}

/// Refuses a directory that is a symlink, owned by someone else, or open to others.
pub fn check_private_dir(root: &Path) -> Result<(), StartError> {
    let shown = root.display();
    let md = fs::symlink_metadata(root).map_err(io_ctx(format!("cannot stat {shown}")))?;
    if md.file_type().is_symlink() {
        return Err(StartError::UnsafeStateDir(format!(
            "state dir {shown} is a symlink; point R1_HOME at the real directory (or remove the link) and start again"
        )));
    }
    if !md.is_dir() {
        return Err(StartError::UnsafeStateDir(format!(
            "state dir {shown} is not a directory; remove it or set R1_HOME to a directory"
        )));
    }
    if md.uid() != euid() {
        return Err(StartError::UnsafeStateDir(format!(
            "state dir {shown} is owned by uid {} but r1 runs as uid {}; use a directory you own (chown it or set R1_HOME)",
            md.uid(),
            euid()
        )));
    }
    if md.mode() & 0o077 != 0 {
        return Err(StartError::UnsafeStateDir(format!(
            "state dir {shown} has mode {:o}, open to group or others; fix it with `chmod 700 {shown}`",
            md.mode() & 0o777
        )));
    }
    Ok(())
}

/// Where the unix socket lives: `$R1_HOME/r1.sock`, or a private directory under
/// `$XDG_RUNTIME_DIR` (else `/tmp`) when that path does not fit `sun_path`.
pub fn socket_path(root: &Path) -> PathBuf {
    // sun_path holds 108 bytes on Linux, including the terminating NUL.
    const SUN_PATH_MAX: usize = 107;
    let direct = root.join("r1.sock");
    if direct.as_os_str().len() <= SUN_PATH_MAX {
        return direct;
    }
    let base = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in root.as_os_str().as_encoded_bytes() {
        h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
    }
    base.join(format!("r1-{}-{h:016x}", euid())).join("r1.sock")
}

/// Operator config from `daemon.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The perimeter section.
    #[serde(default)]
    pub perimeter: PerimeterConfig,
    /// Engines by name; read by the session hub.
    #[serde(default)]
    pub engines: toml::Table,
    /// The default engine name.
    #[serde(default)]
    pub default_engine: Option<String>,
    /// Retention of ended sessions.
    #[serde(default)]
    pub retention: RetentionConfig,
    /// The daemon's own MCP endpoint (`/mcp`).
    #[serde(default)]
    pub mcp: McpEndpointConfig,
    /// MCP servers whose tools sessions may use (`[[mcp_servers]]`).
    #[serde(default)]
    pub mcp_servers: Vec<r1_engine::McpServerConfig>,
    /// Input, connection and subscriber limits (`[limits]`).
    #[serde(default)]
    pub limits: Limits,
    /// The mission worker pool (`[missions]`).
    #[serde(default)]
    pub missions: MissionsConfig,
    /// The daemon's log files (`[logs]`).
    #[serde(default)]
    pub logs: crate::logs::LogsConfig,
    /// The hooks in `$R1_HOME/hooks` (`[hooks]`).
    #[serde(default)]
    pub hooks: crate::hooks::HooksConfig,
    /// The full-text index in `$R1_HOME/index` (`[search]`).
    #[serde(default)]
    pub search: SearchConfig,
    /// The browser behind `web.*` (`[web]`).
    #[serde(default)]
    pub web: crate::webdrive::WebConfig,
    /// Prices by model name (`[prices."gpt-4o"]`), to put a cost on each model call.
    #[serde(default)]
    pub prices: BTreeMap<String, Price>,
}

/// `[prices."MODEL"]` in `daemon.toml`: what a model's tokens cost, in US dollars per
/// million tokens. It applies to the sessions whose model is exactly `MODEL`: the
/// model the session was started with, else its engine's `model`. A session with no
/// model, or another spelling of it, gets no cost.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// Per million input (prompt) tokens that were not read from the cache.
    pub input: f64,
    /// Per million output tokens.
    pub output: f64,
    /// Per million input tokens read from the provider's prompt cache; `input` when
    /// absent.
    #[serde(default)]
    pub cached_input: Option<f64>,
}

impl Price {
    /// What a call with `u`'s tokens costs, in US dollars.
    pub fn cost(&self, u: &r1_proto::events::TokenUsage) -> f64 {
        let cached = u.cached_input_tokens.unwrap_or(0).min(u.input_tokens);
        let fresh = u.input_tokens - cached;
        // Token counts are far below 2^53, so the conversion is exact.
        (fresh as f64 * self.input
            + cached as f64 * self.cached_input.unwrap_or(self.input)
            + u.output_tokens as f64 * self.output)
            / 1_000_000.0
    }

    /// Refuses a negative or non-finite price.
    fn validate(&self, model: &str) -> Result<(), String> {
        let fields = [
            ("input", Some(self.input)),
            ("output", Some(self.output)),
            ("cached_input", self.cached_input),
        ];
        for (name, v) in fields {
            if let Some(v) = v.filter(|v| !v.is_finite() || *v < 0.0) {
                return Err(format!(
                    "[prices.{model:?}] {name} must be a number of US dollars per million tokens, 0 or more, not {v}"
                ));
            }
        }
        Ok(())
    }
}

/// Checks every `[prices."MODEL"]` table.
fn validate_prices(prices: &BTreeMap<String, Price>) -> Result<(), String> {
    prices.iter().try_for_each(|(m, p)| p.validate(m))
}

/// `[search]` in `daemon.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SearchConfig {
    /// Index every session's history (default true). Off, nothing is indexed and
    /// `search.query` / `search.reindex` answer `conflict`; the index directory is left
    /// as it is and caught up from the journals when search is turned on again.
    /// Takes effect at the next start.
    pub enabled: bool,
}

impl Default for SearchConfig {
    fn default() -> Self {
        SearchConfig { enabled: true }
    }
}

/// `[missions]` in `daemon.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MissionsConfig {
    /// How many missions run at once (default 2, 1 to 64); the others wait queued.
    #[serde(default = "default_workers")]
    pub workers: usize,
}

impl Default for MissionsConfig {
    fn default() -> Self {
        MissionsConfig {
            workers: default_workers(),
        }
    }
}

fn default_workers() -> usize {
    2
}

/// `[limits]` in `daemon.toml`: every input, connection and subscriber bound, the same
/// on every transport. The defaults suit one developer with many agents; each limit
/// answers with a clear error naming it when crossed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// The longest user message text, in bytes, on HTTP, WebSocket and MCP alike
    /// (default 1 MiB).
    pub max_message_bytes: usize,
    /// The largest HTTP request body, WebSocket message and WebSocket frame, in bytes
    /// (default 2 MiB: a maximal message text plus its JSON framing). Frames share the
    /// message limit because browsers send each message as one frame.
    pub max_request_bytes: usize,
    /// Concurrent live subscribers (SSE streams and WebSocket subscriptions) on one
    /// session (default 64).
    pub max_subscribers_per_session: usize,
    /// Concurrent live subscribers over the whole daemon, bus streams included
    /// (default 1024).
    pub max_subscribers: usize,
    /// Concurrent connections on the TCP port (default 256). Connections past it are
    /// closed at once.
    pub max_connections_tcp: usize,
    /// Concurrent connections on the unix socket (default 128): a budget of its own, so
    /// a flood on the TCP port never locks out the CLI.
    pub max_connections_unix: usize,
    /// How long a connection may take to send a request's headers, in milliseconds
    /// (default 5000). It also bounds how long an idle keep-alive connection is kept.
    pub header_read_timeout_ms: u64,
    /// Bytes of events that may wait for one live subscriber (SSE stream, WebSocket
    /// subscription or outbox) before it counts as slow (default 4 MiB). Replay never
    /// fills it: it is paced by the subscriber's socket.
    pub subscriber_queue_bytes: usize,
    /// How long a live subscriber's queue may stay full before the subscriber is
    /// dropped with "too slow; reconnect with Last-Event-ID", in milliseconds
    /// (default 5000).
    pub slow_subscriber_grace_ms: u64,
    /// How long one write to a connection may make no progress before the connection
    /// is closed, in milliseconds (default 30000): a peer that stops reading cannot
    /// hold a response, an event stream or a WebSocket open for ever.
    pub write_timeout_ms: u64,
    /// How often a WebSocket is pinged, in milliseconds (default 20000).
    pub ws_ping_interval_ms: u64,
    /// How long a WebSocket peer may stay silent (no pong, no message) before it is
    /// closed, in milliseconds (default 20000 after a ping).
    pub ws_pong_timeout_ms: u64,
    /// Headless TUIs (`tui.open`) open at once (default 16): each holds a whole
    /// client model, transcripts included.
    pub max_tui_sessions: usize,
    /// How long a headless TUI may go without a call before it is closed, in
    /// milliseconds (default 600000, ten minutes).
    pub tui_idle_timeout_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_bytes: 1024 * 1024,
            max_request_bytes: 2 * 1024 * 1024,
            max_subscribers_per_session: 64,
            max_subscribers: 1024,
            max_connections_tcp: 256,
            max_connections_unix: 128,
            header_read_timeout_ms: 5000,
            subscriber_queue_bytes: 4 * 1024 * 1024,
            slow_subscriber_grace_ms: 5000,
            write_timeout_ms: 30_000,
            ws_ping_interval_ms: 20_000,
            ws_pong_timeout_ms: 20_000,
            max_tui_sessions: 16,
            tui_idle_timeout_ms: 600_000,
        }
    }
}

impl Limits {
    /// Refuses limits that would make the daemon unusable (zero connections, a
    /// message limit larger than the request limit, …).
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("max_message_bytes", self.max_message_bytes),
            ("max_request_bytes", self.max_request_bytes),
            (
                "max_subscribers_per_session",
                self.max_subscribers_per_session,
            ),
            ("max_subscribers", self.max_subscribers),
            ("max_connections_tcp", self.max_connections_tcp),
            ("max_connections_unix", self.max_connections_unix),
            ("max_tui_sessions", self.max_tui_sessions),
        ];
        for (name, v) in positive {
            if v == 0 {
                return Err(format!("[limits] {name} must be at least 1"));
            }
        }
        if self.max_request_bytes < self.max_message_bytes {
            return Err(
                "[limits] max_request_bytes must be at least max_message_bytes, or a maximal message could never be sent"
                    .into(),
            );
        }
        if self.header_read_timeout_ms < 100 {
            return Err("[limits] header_read_timeout_ms must be at least 100".into());
        }
        // A queue smaller than this could not hold one ordinary record.
        if self.subscriber_queue_bytes < 4096 {
            return Err("[limits] subscriber_queue_bytes must be at least 4096".into());
        }
        // Shorter timers would drop healthy peers on a busy machine.
        let timers = [
            ("slow_subscriber_grace_ms", self.slow_subscriber_grace_ms),
            ("write_timeout_ms", self.write_timeout_ms),
            ("ws_ping_interval_ms", self.ws_ping_interval_ms),
            ("ws_pong_timeout_ms", self.ws_pong_timeout_ms),
        ];
        for (name, v) in timers {
            if v < 50 {
                return Err(format!("[limits] {name} must be at least 50"));
            }
        }
        Ok(())
    }
}

/// `[mcp]` in `daemon.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpEndpointConfig {
    /// `read` (default: only non-mutating tools) or `write`.
    #[serde(default)]
    pub caps: r1_mcp::Caps,
}

/// `[perimeter]` in `daemon.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerimeterConfig {
    /// Browser origins allowed besides the daemon's own, matched exactly.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
}

/// `[retention]` in `daemon.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// Ended sessions older than this many hours are pruned (default 24).
    #[serde(default = "default_max_age_h")]
    pub max_age_hours: u64,
    /// Ended sessions whose journal exceeds this many MB are pruned (default 100).
    #[serde(default = "default_max_mb")]
    pub max_session_mb: u64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            max_age_hours: default_max_age_h(),
            max_session_mb: default_max_mb(),
        }
    }
}

fn default_max_age_h() -> u64 {
    24
}

fn default_max_mb() -> u64 {
    100
}
