//! `r1 serve`.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use clap::Args;
use r1_daemon::logs::{JsonLayer, RotatingFile};
use r1_daemon::{ServeOptions, StartError, StateDir};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, EnvFilter, Layer};

/// Run the r1 daemon in the foreground.
///
/// The daemon keeps its state in the state directory (`--home`, `$R1_HOME`, default
/// `~/.r1`), listens on a unix socket there and on a loopback TCP port (the previous
/// daemon's when it is free, so open browser tabs reconnect; else a random one), and
/// writes `daemon.json` for clients to find it. Stop it with Ctrl-C, SIGTERM or
/// `r1 ctl shutdown`.
///
/// `--install`, `--uninstall` and `--status` manage r1 as a login service instead of
/// running it: a systemd user unit (`~/.config/systemd/user/r1.service`) on Linux, a
/// launchd agent (`~/Library/LaunchAgents/dev.r1.daemon.plist`) on macOS.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// `restart`: hand the running daemon over to the binary now on disk (the same as
    /// `r1 ctl restart`; `r1 ctl restart --json` prints the result as JSON).
    #[arg(value_enum, conflicts_with_all = ["service", "port", "token_file", "rotate_token", "emit_port_stdout"])]
    action: Option<ServeAction>,
    /// TCP port on the loopback address (default: the previous daemon's port when it is
    /// free, else a random free port).
    #[arg(long, default_value_t = 0, conflicts_with = "service")]
    port: u16,
    /// Loopback address to bind; anything but 127.0.0.1 or ::1 is refused.
    #[arg(long, default_value = "127.0.0.1", conflicts_with = "service")]
    bind: IpAddr,
    /// Adopt the token stored in this file (the token never goes on the command line).
    /// The file must be a regular file you own with mode 0600, not a symlink.
    #[arg(long, value_name = "PATH", conflicts_with = "service")]
    token_file: Option<PathBuf>,
    /// Replace the stored token with a fresh one before starting.
    #[arg(long, conflicts_with = "service")]
    rotate_token: bool,
    /// Log level: error, warn, info, debug or trace (or a tracing filter).
    #[arg(long, default_value = "info", env = "R1_LOG")]
    log_level: String,
    /// Sidecar mode, for a parent process that started the daemon: once every listener
    /// accepts, print exactly one JSON line on stdout,
    /// {"event":"daemon.listening","url","port","sock","pid","version","protocol"},
    /// and nothing else on stdout, ever (logs stay on stderr). See docs/EMBEDDING.md.
    #[arg(long, conflicts_with = "service")]
    emit_port_stdout: bool,
    /// Install r1 as a login service running this binary's `serve` (a systemd user
    /// unit on Linux, a launchd agent on macOS), then reload the service manager.
    /// Installing again is safe: an unchanged unit is left alone. The service runs
    /// `serve` with the defaults and this state directory (--home / R1_HOME).
    #[arg(long, group = "service")]
    install: bool,
    /// With --install: also enable the service and start it now.
    #[arg(long, requires = "install")]
    now: bool,
    /// Stop the login service and remove its unit (nothing to do if not installed).
    #[arg(long, group = "service")]
    uninstall: bool,
    /// Say whether the login service is installed and where, whether it is enabled and
    /// running (with its pid), and whether its unit runs this binary.
    #[arg(long, group = "service")]
    status: bool,
    /// With --status: print the status as JSON, for scripts.
    #[arg(long, requires = "status")]
    json: bool,
}

/// What `r1 serve` does besides serving.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ServeAction {
    /// Restart the running daemon onto the binary on disk.
    Restart,
}

/// Runs the daemon, or manages its login service; returns the exit code.
pub fn run(home: &Path, args: ServeArgs) -> i32 {
    if let Some(ServeAction::Restart) = args.action {
        return crate::ctl::run(home, crate::ctl::CtlArgs::restart(false));
    }
    if args.install {
        return crate::service::run(home, crate::service::Action::Install { now: args.now });
    }
    if args.uninstall {
        return crate::service::run(home, crate::service::Action::Uninstall);
    }
    if args.status {
        return crate::service::run(home, crate::service::Action::Status { json: args.json });
    }
    // Sidecar mode takes stdout before anything can write to it (and before any thread
    // exists, since it swaps file descriptors).
    let sidecar = if args.emit_port_stdout {
        match Sidecar::take_stdout() {
            Ok(s) => Some(s),
            Err(e) => {
                eprintln!("r1: cannot set up --emit-port-stdout: {e}");
                return 1;
            }
        }
    } else {
        None
    };
    // Every file the daemon creates is private to the user. Set once, before any thread
    // exists, since the umask is process-wide.
    // SAFETY: umask has no preconditions; no other thread runs yet.
    unsafe {
        libc::umask(0o077);
    }
    let state = match StateDir::open(home) {
        Ok(s) => s,
        Err(e) => return refuse(&e),
    };
    let lock = match state.lock() {
        Ok(l) => std::sync::Arc::new(l),
        Err(e) => return refuse(&e),
    };
    let _guard = init_logging(&state, &args.log_level);
    let mut opts = ServeOptions {
        bind: args.bind,
        port: args.port,
        token_file: args.token_file,
        rotate_token: args.rotate_token,
        version: env!("CARGO_PKG_VERSION").to_string(),
        listening: None,
        lock: Some(std::sync::Arc::clone(&lock)),
        // `/mcp`'s `r1_cli_invoke` runs this very binary.
        cli: std::env::current_exe().ok(),
    };
    // Blocking work (journal batches, file reads) runs on a pool capped well below
    // tokio's default of 512, so thousands of sessions loading at once never mean
    // hundreds of threads; they queue for the pool instead.
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(32)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("r1: cannot start the runtime: {e}");
            return 1;
        }
    };
    if let Some(sidecar) = &sidecar {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        opts.listening = Some(tx);
        let sidecar = sidecar.clone();
        rt.spawn(async move {
            if let Some(line) = rx.recv().await {
                sidecar.announce(&line);
            }
        });
    }
    let result = rt.block_on(r1_daemon::serve(state, opts));
    drop(lock);
    match result {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!("{e}");
            refuse(&e)
        }
    }
}

/// Sidecar mode's stdout. At start, fd 1 is moved to a private descriptor (close-on-exec,
/// so no child inherits it) and fd 1 becomes a copy of stderr: whatever else might write
/// to stdout (a stray print, a child process) lands on stderr, and the parent's pipe
/// carries the one line. The private descriptor stays open until the daemon exits, so the
/// parent sees end-of-file only when the daemon is gone.
#[derive(Clone)]
struct Sidecar(std::sync::Arc<std::fs::File>);

impl Sidecar {
    fn take_stdout() -> std::io::Result<Sidecar> {
        use std::os::fd::FromRawFd;
        // SAFETY: fcntl(F_DUPFD_CLOEXEC) only creates a new descriptor (>= 3) for fd 1.
        let fd = unsafe { libc::fcntl(libc::STDOUT_FILENO, libc::F_DUPFD_CLOEXEC, 3) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `fd` was just created above and nothing else owns it.
        let file = unsafe { std::fs::File::from_raw_fd(fd) };
        // SAFETY: dup2 replaces fd 1 with a copy of fd 2; no other thread runs yet, and
        // Rust's stdout handle writes to fd 1 by number, so it follows.
        if unsafe { libc::dup2(libc::STDERR_FILENO, libc::STDOUT_FILENO) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Sidecar(std::sync::Arc::new(file)))
    }

    /// Writes the `daemon.listening` line. A parent that stopped reading is not a
    /// reason to stop serving, so a failed write is only logged.
    fn announce(&self, line: &r1_proto::DaemonListening) {
        use std::io::Write;
        let mut text = match serde_json::to_string(line) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!("cannot encode the daemon.listening line: {e}");
                return;
            }
        };
        text.push('\n');
        let mut out = &*self.0;
        if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
            tracing::warn!("cannot write the daemon.listening line to stdout: {e}");
        }
    }
}

/// Says why the daemon cannot start, on stderr and, for a daemon handing over to this
/// one (`r1 ctl restart`), in the file it named, so that it can say why too.
fn refuse(e: &StartError) -> i32 {
    eprintln!("r1: {e}");
    if let Some(path) = std::env::var_os(r1_daemon::START_ERROR_ENV) {
        let _ = std::fs::write(path, e.to_string());
    }
    1
}

/// Logs to stderr as text (coloured on a terminal) and to `logs/r1-NNNNNN.log` as JSON
/// lines, rotated by size and age (`[logs]` in `daemon.toml`; see `r1_daemon::logs`).
/// Requests are logged by path only, so tokens in query strings never reach a log.
fn init_logging(
    state: &StateDir,
    level: &str,
) -> Option<tracing_appender::non_blocking::WorkerGuard> {
    let filter = || EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour only on a terminal: a log redirected to a file or a pipe (systemd, `2>log`)
    // gets plain text. NO_COLOR turns it off on a terminal too.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let stderr = fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(false)
        .with_filter(filter());
    // An invalid daemon.toml is reported by the daemon itself a moment later; the logs
    // then use the defaults.
    let rotation = state.read_config().unwrap_or_default().logs.rotation();
    let file = match RotatingFile::open(&state.path("logs"), rotation) {
        Ok(f) => Some(f),
        Err(e) => {
            eprintln!("r1: cannot open the log files: {e}; logging to stderr only");
            None
        }
    };
    // The non-blocking writer moves file writes off the runtime's threads. The JSON
    // layer is there even without a file: it keeps the last error for `ctl status`.
    let (writer, guard) = match file.map(tracing_appender::non_blocking) {
        Some((w, g)) => (Some(w), Some(g)),
        None => (None, None),
    };
    let json = JsonLayer::new(writer).with_filter(filter());
    let _ = tracing_subscriber::registry()
        .with(stderr)
        .with(json)
        .try_init();
    guard
}
