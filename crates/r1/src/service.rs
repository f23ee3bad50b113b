//! `r1 serve --install | --uninstall | --status`: r1 as a login service.
//!
//! On Linux the service is a systemd user unit ([`systemd`]), on macOS a launchd agent
//! ([`launchd`]). Each module has a pure function that writes the unit's text (compiled
//! and tested on every platform) and the calls to its service manager's command. What
//! is shared lives here: where this binary and the state directory are, finding and
//! running the manager's command with a time bound, writing the unit, and the status.

mod launchd;
mod systemd;

use std::ffi::OsStr;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{anyhow, Context};
use serde::Serialize;

use crate::output;

/// What `r1 serve` was asked to do with the service.
#[derive(Debug, Clone, Copy)]
pub enum Action {
    /// Write the unit and reload the manager; with `now`, enable and start it too.
    Install {
        /// Enable and start the service now.
        now: bool,
    },
    /// Stop the service and remove its unit.
    Uninstall,
    /// Report on the service.
    Status {
        /// As JSON, for scripts.
        json: bool,
    },
}

/// Runs `action` with the platform's service manager; returns the exit code.
pub fn run(home: &Path, action: Action) -> i32 {
    let result = Target::resolve(home).and_then(|target| {
        if cfg!(target_os = "macos") {
            launchd::run(&target, action)
        } else {
            systemd::run(&target, action)
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("r1: {e:#}");
            1
        }
    }
}

/// What a unit is written from.
#[derive(Debug)]
struct Target {
    /// This binary, absolute with symlinks resolved: what the unit runs.
    exe: PathBuf,
    /// The state directory, absolute.
    state_dir: PathBuf,
    /// The state directory when it is not the default `~/.r1`: the unit passes it to
    /// the daemon as `R1_HOME`, so the service serves the same sessions as this shell.
    r1_home_env: Option<PathBuf>,
    /// The user's home directory (`$HOME`).
    user_home: PathBuf,
}

impl Target {
    fn resolve(home: &Path) -> anyhow::Result<Target> {
        let user_home = std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from)
            .filter(|h| h.is_absolute())
            .ok_or_else(|| {
                anyhow!("$HOME is not set to an absolute path; the service unit lives under it")
            })?;
        let exe = std::env::current_exe()
            .and_then(|p| p.canonicalize())
            .context(
                "cannot tell where this r1 binary is (was it moved or replaced while running?)",
            )?;
        let state_dir = std::path::absolute(home)
            .with_context(|| format!("cannot make {} absolute", home.display()))?;
        let r1_home_env = (state_dir != user_home.join(".r1")).then(|| state_dir.clone());
        Ok(Target {
            exe,
            state_dir,
            r1_home_env,
            user_home,
        })
    }
}

/// What `--status` reports, on either platform.
#[derive(Debug, Serialize)]
struct ServiceStatus {
    /// `systemd` or `launchd`.
    manager: &'static str,
    /// The unit's name: `r1.service`, or the launchd label `dev.r1.daemon`.
    name: &'static str,
    /// Where the unit file is (or would be).
    unit: String,
    /// Whether the unit file exists.
    installed: bool,
    /// The binary the installed unit runs.
    exec: Option<String>,
    /// This binary.
    this_binary: String,
    /// Whether the installed unit runs this binary (`None` when not installed).
    points_at_this_binary: Option<bool>,
    /// Whether the service starts at login (`None` when the manager could not say).
    enabled: Option<bool>,
    /// Whether the service runs now (`None` when the manager could not say).
    running: Option<bool>,
    /// The service's process id while it runs.
    pid: Option<u32>,
    /// Why `enabled` and `running` are unknown.
    manager_error: Option<String>,
}

impl ServiceStatus {
    /// The status of a unit at `unit` whose text says it runs `exec`; what the manager
    /// knows is filled in by the caller.
    fn new(
        manager: &'static str,
        name: &'static str,
        unit: &Path,
        exec: Option<PathBuf>,
        target: &Target,
    ) -> ServiceStatus {
        let installed = unit.exists();
        let points = installed.then(|| {
            exec.as_deref()
                .is_some_and(|e| e == target.exe || e.canonicalize().is_ok_and(|c| c == target.exe))
        });
        ServiceStatus {
            manager,
            name,
            unit: unit.display().to_string(),
            installed,
            exec: exec.map(|e| e.display().to_string()),
            this_binary: target.exe.display().to_string(),
            points_at_this_binary: points,
            enabled: None,
            running: None,
            pid: None,
            manager_error: None,
        }
    }

    fn print(&self, json: bool) {
        if json {
            output::json(self);
            return;
        }
        let yes_no = |b: Option<bool>, unknown: &str| match b {
            Some(true) => "yes".to_string(),
            Some(false) => "no".to_string(),
            None => unknown.to_string(),
        };
        let unknown = match &self.manager_error {
            Some(e) => format!("unknown ({e})"),
            None => "unknown".to_string(),
        };
        output::line(&format!("service    {} {}", self.manager, self.name));
        if !self.installed {
            output::line(&format!(
                "installed  no (no {}); `r1 serve --install` installs it",
                self.unit
            ));
            return;
        }
        output::line(&format!("installed  yes ({})", self.unit));
        match (self.points_at_this_binary, &self.exec) {
            (Some(true), Some(exec)) => output::line(&format!("binary     {exec} (this binary)")),
            (_, exec) => output::line(&format!(
                "binary     {} (not this binary, {}; `r1 serve --install` points it here)",
                exec.as_deref().unwrap_or("unreadable"),
                self.this_binary
            )),
        }
        output::line(&format!("enabled    {}", yes_no(self.enabled, &unknown)));
        let running = match (self.running, self.pid) {
            (Some(true), Some(pid)) => format!("yes (pid {pid})"),
            (r, _) => yes_no(r, &unknown),
        };
        output::line(&format!("running    {running}"));
    }
}

/// The first executable file called `name` in a directory of `$PATH`.
fn find_on_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// What a service manager's command did.
#[derive(Debug)]
struct ToolOutput {
    success: bool,
    stdout: String,
    stderr: String,
}

impl ToolOutput {
    /// Its stderr (or stdout when stderr is empty), trimmed, for an error message.
    fn message(&self) -> String {
        let text = if self.stderr.trim().is_empty() {
            &self.stdout
        } else {
            &self.stderr
        };
        text.trim().to_string()
    }
}

/// How long a service manager's command may take. `systemctl --user` waits on D-Bus
/// and a unit's start; longer than this means something is stuck, and the user is
/// better served by an error than by a hang.
const TOOL_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `tool args…` with null stdin, collecting its output, killed after
/// [`TOOL_TIMEOUT`].
fn run_tool<S: AsRef<OsStr>>(tool: &Path, args: &[S]) -> anyhow::Result<ToolOutput> {
    let shown = || {
        let mut s = tool.display().to_string();
        for a in args {
            s.push(' ');
            s.push_str(&a.as_ref().to_string_lossy());
        }
        s
    };
    let mut child = Command::new(tool)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {}", shown()))?;
    // Both pipes are drained on threads, so a chatty command never blocks on a full
    // pipe while this thread waits for it.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_string(&mut text);
            }
            text
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = std::time::Instant::now() + TOOL_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(anyhow!(
                "{} did not finish within {}s",
                shown(),
                TOOL_TIMEOUT.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Ok(ToolOutput {
        success: status.success(),
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

/// What writing a unit file did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Written {
    Created,
    Updated,
    Unchanged,
}

/// Writes `text` to `path` (mode 0644, atomically: a temp file renamed over it),
/// creating its directory; a file that already holds `text` is left alone.
fn write_unit(path: &Path, text: &str) -> anyhow::Result<Written> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let existing = std::fs::read_to_string(path).ok();
    if existing.as_deref() == Some(text) {
        return Ok(Written::Unchanged);
    }
    let dir = path
        .parent()
        .ok_or_else(|| anyhow!("{} has no directory", path.display()))?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(&tmp)
        .and_then(|mut f| {
            // The mode asked for at creation is cut by the umask; a unit is meant to
            // be readable (it holds no secret).
            f.set_permissions(std::fs::Permissions::from_mode(0o644))?;
            f.write_all(text.as_bytes())?;
            f.sync_all()
        })
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("cannot write {}", path.display()));
    }
    Ok(if existing.is_some() {
        Written::Updated
    } else {
        Written::Created
    })
}

/// Removes the unit file; false when there was none.
fn remove_unit(path: &Path) -> anyhow::Result<bool> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).with_context(|| format!("cannot remove {}", path.display())),
    }
}

/// The pid of a daemon already serving this state directory, from its registration,
/// when that process is alive.
fn running_daemon(state_dir: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(state_dir.join("daemon.json")).ok()?;
    let reg: r1_proto::Registration = serde_json::from_str(&text).ok()?;
    // SAFETY: kill with signal 0 only checks that the process exists.
    let alive = unsafe { libc::kill(reg.pid as libc::pid_t, 0) } == 0;
    alive.then_some(reg.pid)
}
