//! The state directory: its safety checks, the daemon lock, the token, the
//! registration and the operator config.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
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
    pub fn load_token(
        &self,
        rotate: bool,
        token_file: Option<&Path>,
    ) -> Result<String, StartError> {
        let path = self.path("token");
        if let Some(src) = token_file {
            let mut s = String::new();
            File::open(src)
                .and_then(|mut f| f.read_to_string(&mut s))
                .map_err(io_ctx(format!("cannot read token file {}", src.display())))?;
            let token = s.trim().to_string();
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
        if !rotate {
            if let Ok(s) = fs::read_to_string(&path) {
                let t = s.trim();
                if t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
                    fs::set_permissions(&path, fs::Permissions::from_mode(0o600))
                        .map_err(io_ctx("cannot chmod token"))?;
                    return Ok(t.to_string());
                }
            }
        }
        self.rotate_token()
    }

    /// The current token, as stored.
    pub fn read_token_file(&self) -> io::Result<String> {
        Ok(fs::read_to_string(self.path("token"))?.trim().to_string())
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
        match fs::read_to_string(&path) {
            Ok(text) => {
                let config: Config = toml::from_str(&text).map_err(|e| StartError::Config {
                    path: path.display().to_string(),
                    message: e.message().to_string(),
                })?;
                r1_engine::validate_mcp_servers(&config.mcp_servers).map_err(|message| {
                    StartError::Config {
                        path: path.display().to_string(),
                        message,
                    }
                })?;
                crate::engines::engines(&config.engines).map_err(|message| StartError::Config {
                    path: path.display().to_string(),
                    message,
                })?;
                Ok(config)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Config::default()),
            Err(e) => Err(io_ctx(format!("cannot read {}", path.display()))(e)),
        }
    }
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
