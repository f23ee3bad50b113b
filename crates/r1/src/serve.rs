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
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TCP port on the loopback address (default: the previous daemon's port when it is
    /// free, else a random free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Loopback address to bind; anything but 127.0.0.1 or ::1 is refused.
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,
    /// Adopt the token stored in this file (the token never goes on the command line).
    /// The file must be a regular file you own with mode 0600, not a symlink.
    #[arg(long, value_name = "PATH")]
    token_file: Option<PathBuf>,
    /// Replace the stored token with a fresh one before starting.
    #[arg(long)]
    rotate_token: bool,
    /// Log level: error, warn, info, debug or trace (or a tracing filter).
    #[arg(long, default_value = "info", env = "R1_LOG")]
    log_level: String,
}

/// Runs the daemon; returns the exit code.
pub fn run(home: &Path, args: ServeArgs) -> i32 {
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
        Ok(l) => l,
        Err(e) => return refuse(&e),
    };
    let _guard = init_logging(&state, &args.log_level);
    let opts = ServeOptions {
        bind: args.bind,
        port: args.port,
        token_file: args.token_file,
        rotate_token: args.rotate_token,
        version: env!("CARGO_PKG_VERSION").to_string(),
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

fn refuse(e: &StartError) -> i32 {
    eprintln!("r1: {e}");
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
