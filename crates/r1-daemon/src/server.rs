//! `r1 serve`: bind the listeners, register, serve until shutdown, clean up.

use std::fs;
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::PathBuf;
use std::time::Duration;

use tokio::net::{TcpListener, UnixListener, UnixStream};

use crate::fsutil::{euid, now_rfc3339, random_hex};
use crate::hub::{DaemonInfo, Hub};
use crate::routes;
use crate::state::{io_ctx, socket_path, StartError, StateDir};

/// The file in the state directory holding the TCP port of the last daemon that
/// listened, so the next one can take the same port and an open browser tab (whose
/// page and WebSocket are tied to that origin) reconnects by itself after a restart.
const LAST_PORT_FILE: &str = "last_port";

/// How often the daemon re-reads `daemon.json` to see whether it still owns it.
const STAND_DOWN_POLL: Duration = Duration::from_secs(2);

/// What `r1 serve` was asked for.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The address to bind; must be loopback.
    pub bind: IpAddr,
    /// The TCP port; 0 for a random one.
    pub port: u16,
    /// Adopt the token in this file instead of the stored one.
    pub token_file: Option<PathBuf>,
    /// Write a fresh token before starting.
    pub rotate_token: bool,
    /// The daemon's version string.
    pub version: String,
    /// Told where the daemon listens once both listeners accept and `daemon.json` is
    /// written (`r1 serve --emit-port-stdout` prints it for a parent process).
    pub listening: Option<tokio::sync::mpsc::UnboundedSender<r1_proto::DaemonListening>>,
    /// The state directory's lock (`StateDir::lock`), held by the caller for the
    /// daemon's life. With it the daemon can hand over to a new binary (`r1 ctl
    /// restart`), which must take the lock; without it a restart is refused.
    pub lock: Option<std::sync::Arc<std::fs::File>>,
    /// The r1 binary that `/mcp`'s `r1_cli_invoke` runs (`r1 serve` passes its own);
    /// `None` for a daemon embedded in another program, whose own binary is not r1's
    /// CLI: the tool then answers `conflict`.
    pub cli: Option<PathBuf>,
}

/// The unix listener, accepting only peers running as this daemon's uid.
struct PeerChecked {
    inner: UnixListener,
    uid: u32,
}

impl axum::serve::Listener for PeerChecked {
    type Io = UnixStream;
    type Addr = tokio::net::unix::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.inner.accept().await {
                Ok((stream, addr)) => match stream.peer_cred() {
                    Ok(cred) if cred.uid() == self.uid => return (stream, addr),
                    Ok(cred) => {
                        tracing::warn!(
                            peer_uid = cred.uid(),
                            "refused a unix socket peer running as another user"
                        );
                    }
                    Err(e) => tracing::warn!("refused a unix socket peer without credentials: {e}"),
                },
                Err(e) => {
                    // Out of file descriptors and similar: back off instead of spinning.
                    tracing::warn!("unix accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// Binds the unix socket in a private directory, 0600, replacing a stale file.
fn bind_unix(state: &StateDir) -> Result<(UnixListener, PathBuf, (u64, u64)), StartError> {
    let path = socket_path(state.root());
    if let Some(dir) = path.parent() {
        if dir != state.root() {
            if !dir.exists() {
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)
                    .map_err(io_ctx(format!(
                        "cannot create socket dir {}",
                        dir.display()
                    )))?;
            }
            crate::state::check_private_dir(dir)?;
        }
    }
    // We hold the lock, so a socket file left here is a dead daemon's.
    let _ = fs::remove_file(&path);
    let listener = UnixListener::bind(&path).map_err(io_ctx(format!(
        "cannot bind unix socket {}",
        path.display()
    )))?;
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600))
        .map_err(io_ctx("cannot chmod the unix socket"))?;
    let md = fs::metadata(&path).map_err(io_ctx("cannot stat the unix socket"))?;
    Ok((listener, path, (md.dev(), md.ino())))
}

/// Runs the daemon until it is asked to stop, then cleans up. The caller holds the
/// state directory's lock for as long as this runs.
pub async fn serve(state: StateDir, opts: ServeOptions) -> Result<(), StartError> {
    serve_with(state, opts, r1_journal::JournalOptions::default()).await
}

/// [`serve`] with the journals' file I/O chosen by the caller (tests inject faults).
pub async fn serve_with(
    state: StateDir,
    opts: ServeOptions,
    journal_opts: r1_journal::JournalOptions,
) -> Result<(), StartError> {
    if !opts.bind.is_loopback() {
        return Err(StartError::NotLoopback(opts.bind.to_string()));
    }
    let config = state.read_config()?;
    let token = state.load_token(opts.rotate_token, opts.token_file.as_deref())?;
    state.remove_stray_temp_files();
    raise_fd_limit();
    let signals = Signals::install()?;

    let tcp = bind_tcp(&state, opts.bind, opts.port).await?;
    let port = tcp.local_addr().map_err(io_ctx("no local address"))?.port();
    let (unix, sock_path, sock_id) = bind_unix(&state)?;

    // The binary as it is now: a later `r1 ctl restart` starts whatever is at this
    // path then, and `r1 doctor` compares the two builds.
    let exe = std::env::current_exe().ok().map(|p| {
        // A daemon brought back after a failed restart runs an image whose file was
        // replaced: Linux names it "<path> (deleted)"; the path is what a restart starts.
        match p.to_str().and_then(|s| s.strip_suffix(" (deleted)")) {
            Some(path) => PathBuf::from(path),
            None => p,
        }
    });
    // The build that runs, which is not the file at `exe` once that was replaced.
    let running_image = if cfg!(target_os = "linux") {
        Some(PathBuf::from("/proc/self/exe"))
    } else {
        exe.clone()
    };
    let url = match opts.bind {
        IpAddr::V6(_) => format!("http://[::1]:{port}"),
        IpAddr::V4(_) => format!("http://127.0.0.1:{port}"),
    };
    let info = DaemonInfo {
        id: format!("d_{}", random_hex(8).map_err(io_ctx("no randomness"))?),
        pid: std::process::id(),
        version: opts.version.clone(),
        started_at: now_rfc3339(),
        url: url.clone(),
        sock: sock_path.display().to_string(),
        exe: exe.as_ref().map(|p| p.display().to_string()),
        build_id: running_image.as_deref().and_then(crate::restart::build_id),
        cli: opts.cli.clone(),
    };
    let hub = Hub::new(
        info.clone(),
        state.clone(),
        config,
        token,
        opts.token_file.as_deref(),
        journal_opts,
    );
    if let Some(lock) = &opts.lock {
        hub.restart_cell().set_lock(std::sync::Arc::clone(lock));
    }
    if let Some(why) = std::env::var_os(crate::restart::RESTART_FAILED_ENV) {
        tracing::warn!(
            "this daemon was brought back after a failed restart: {}",
            why.to_string_lossy()
        );
    }
    hub.reload_sessions().await;
    hub.missions().settle_after_restart(&hub).await;
    let sources = hub.clone();
    tokio::spawn(hub.search_index().clone().run(
        move || sources.search_sources(),
        hub.shutdown_token().clone(),
    ));
    tokio::spawn(hub.clone().retention_task());
    tokio::spawn(hub.clone().mission_scheduler());

    let stop = hub.shutdown_token().clone();
    let limits = hub.config().limits.clone();
    let (tcp_closed_tx, tcp_closed) = tokio::sync::oneshot::channel();
    let (unix_closed_tx, unix_closed) = tokio::sync::oneshot::channel();
    let tcp_task = tokio::spawn(crate::conn::serve(
        tcp,
        routes::tcp_router(hub.clone(), port),
        crate::conn::ConnLimits {
            max: limits.max_connections_tcp,
        },
        stop.clone(),
        hub.clone(),
        "tcp",
        tcp_closed_tx,
    ));
    let unix_task = tokio::spawn(crate::conn::serve(
        PeerChecked {
            inner: unix,
            uid: euid(),
        },
        routes::unix_router(hub.clone()),
        crate::conn::ConnLimits {
            max: limits.max_connections_unix,
        },
        stop.clone(),
        hub.clone(),
        "unix",
        unix_closed_tx,
    ));

    // Both listeners are bound and listening: connections queue from here on, so the
    // registration can be published.
    let reg = info.registration();
    state
        .write_registration(&reg)
        .map_err(io_ctx("cannot write daemon.json"))?;
    remember_port(&state, port);
    if let Some(tx) = &opts.listening {
        // The receiver may be gone (nobody waits for the line); serving goes on.
        let _ = tx.send(r1_proto::DaemonListening::new(&reg, port));
    }
    hub.runtime()
        .set_listening(url.clone(), port, sock_path.display().to_string());
    tracing::info!(pid = info.pid, %url, sock = %sock_path.display(), "r1 daemon listening");
    // One line saying whether commands and exec agents are confined (Landlock), found by
    // trying it in a throwaway thread; off the runtime because it touches the disk.
    match tokio::task::spawn_blocking(r1_engine::probe_sandbox).await {
        Ok(sandbox) => {
            hub.runtime()
                .set_sandbox(sandbox.detail.clone(), sandbox.active());
            if sandbox.active() {
                tracing::info!(abi = ?sandbox.abi, "{}", sandbox.detail);
            } else {
                tracing::warn!("{}", sandbox.detail);
            }
        }
        Err(e) => tracing::warn!("cannot probe the sandbox: {e}"),
    }
    hub.bus().publish(&r1_proto::events::bus::DaemonStarted {
        daemon_id: info.id.clone(),
        pid: info.pid,
        version: info.version.clone(),
    });
    hub.fire_startup();

    tokio::spawn(watch_registration(hub.clone()));
    tokio::spawn(watch_signals(hub.clone(), signals));

    stop.cancelled().await;
    // A restart onto the binary on disk is this shutdown, then a handover.
    let handover = hub.restart_cell().take();
    hub.bus().publish(&r1_proto::events::bus::DaemonStopping {
        daemon_id: info.id.clone(),
        reason: Some(
            if handover.is_some() {
                "upgrade"
            } else {
                "shutdown"
            }
            .into(),
        ),
    });
    let grace = hub.grace();
    // Every live session journals `session.paused` (durable) and stops its children
    // before the listeners drain, so a restart knows exactly where each one was.
    let reason = if handover.is_some() {
        crate::sessions::PAUSED_FOR_UPGRADE
    } else {
        crate::sessions::PAUSED_FOR_SHUTDOWN
    };
    if tokio::time::timeout(grace, hub.pause_all_for_shutdown(reason))
        .await
        .is_err()
    {
        tracing::warn!(
            "sessions still pausing after {}s grace; exiting anyway",
            grace.as_secs()
        );
    }
    // The browser behind `web.*` (node and Chromium, one process group) goes with
    // the daemon.
    hub.stop_web().await;
    // The handover: the listeners are closed (the restart request, in flight, stays
    // open for its answer), the socket file goes, and the new daemon starts.
    let mut bring_back: Option<String> = None;
    let mut _spawn_lock = None;
    if let Some(handover) = handover {
        let _ = tcp_closed.await;
        let _ = unix_closed.await;
        remove_socket_if_ours(&sock_path, sock_id);
        let at = crate::restart::Listening {
            state: &state,
            port,
        };
        let (outcome, spawn_lock) = crate::restart::hand_over(&hub, &at, handover).await;
        _spawn_lock = spawn_lock;
        bring_back = outcome.err();
    }
    let drained = tokio::time::timeout(grace, async {
        let _ = tcp_task.await;
        let _ = unix_task.await;
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            "connections still open after {}s grace; exiting anyway",
            grace.as_secs()
        );
    }

    state.remove_registration_if_owned(&info.id);
    remove_socket_if_ours(&sock_path, sock_id);
    if let Some(why) = bring_back {
        tracing::info!("r1 daemon starting again after a failed restart");
        let e = crate::restart::bring_back(&why);
        tracing::error!("cannot start this daemon again: {e}");
        return Err(io_ctx(
            "cannot start the daemon again after a failed restart",
        )(e));
    }
    tracing::info!("r1 daemon stopped");
    Ok(())
}

/// Removes the unix socket file if it is still the one this daemon bound (a new daemon
/// may already have bound its own at the same path).
fn remove_socket_if_ours(path: &std::path::Path, id: (u64, u64)) {
    if let Ok(md) = fs::metadata(path) {
        if (md.dev(), md.ino()) == id {
            let _ = fs::remove_file(path);
        }
    }
}

/// Binds loopback TCP. An explicit `port` is bound or fails. Port 0 (the default) first
/// tries the port the previous daemon recorded in [`LAST_PORT_FILE`], and takes a random
/// port when that one is taken (by anything: the file is only a hint).
async fn bind_tcp(state: &StateDir, bind: IpAddr, port: u16) -> Result<TcpListener, StartError> {
    if port == 0 {
        if let Some(last) = last_port(state) {
            match TcpListener::bind(SocketAddr::new(bind, last)).await {
                Ok(listener) => {
                    tracing::debug!(port = last, "reusing the previous daemon's port");
                    return Ok(listener);
                }
                Err(e) => {
                    tracing::info!(
                        port = last,
                        "the previous daemon's port is not free ({e}); taking a random port"
                    );
                }
            }
        }
    }
    TcpListener::bind(SocketAddr::new(bind, port))
        .await
        .map_err(io_ctx(format!("cannot bind {bind}:{port}")))
}

/// The port recorded by the previous daemon, if the file holds one. Anything else (no
/// file, a symlink, garbage, 0) means no hint.
fn last_port(state: &StateDir) -> Option<u16> {
    use std::io::Read as _;
    use std::os::unix::fs::OpenOptionsExt;
    let mut text = String::new();
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(state.path(LAST_PORT_FILE))
        .ok()?
        .take(16)
        .read_to_string(&mut text)
        .ok()?;
    text.trim().parse::<u16>().ok().filter(|p| *p != 0)
}

/// Records `port` for the next daemon (0600, never through a symlink). Not synced: it
/// is only a hint, and a lost or torn file just means a random port next time.
fn remember_port(state: &StateDir, port: u16) {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt;
    let written = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(state.path(LAST_PORT_FILE))
        .and_then(|mut f| writeln!(f, "{port}"));
    if let Err(e) = written {
        tracing::warn!("cannot record the port in {LAST_PORT_FILE}: {e}");
    }
}

/// Stands the daemon down when `daemon.json` is gone or names another daemon.
async fn watch_registration(hub: Hub) {
    let stop = hub.shutdown_token().clone();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(STAND_DOWN_POLL) => {}
        }
        let owned = match hub.state().read_registration() {
            Ok(Some(reg)) => reg.id == hub.info().id,
            Ok(None) => false,
            // A transient read error is not a reason to stop serving.
            Err(_) => true,
        };
        if !owned {
            tracing::warn!("daemon.json is gone or names another daemon; standing down");
            hub.begin_shutdown(Duration::from_secs(2));
            return;
        }
    }
}

/// SIGTERM and SIGINT start a graceful shutdown. SIGHUP reloads `daemon.toml`
/// ([`Hub::reload_config`]); an invalid file is logged and changes nothing.
async fn watch_signals(hub: Hub, mut signals: Signals) {
    loop {
        tokio::select! {
            _ = signals.term.recv() => {
                tracing::info!("SIGTERM: shutting down");
                break;
            }
            _ = signals.int.recv() => {
                tracing::info!("SIGINT: shutting down");
                break;
            }
            _ = signals.hup.recv() => {
                tracing::info!("SIGHUP: reloading daemon.toml");
                // The reload logs what changed, or why nothing did.
                let _ = hub.reload_config().await;
            }
        }
    }
    hub.begin_shutdown(crate::hub::DEFAULT_GRACE);
}

/// The signals the daemon handles, installed before `daemon.json` is published: a
/// client that sees the registration may signal the daemon at once, and must never
/// meet the default action (which kills without cleanup).
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Result<Signals, StartError> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            term: signal(SignalKind::terminate()).map_err(io_ctx("cannot handle SIGTERM"))?,
            int: signal(SignalKind::interrupt()).map_err(io_ctx("cannot handle SIGINT"))?,
            hup: signal(SignalKind::hangup()).map_err(io_ctx("cannot handle SIGHUP"))?,
        })
    }
}

/// Raises the soft limit on open files to the hard limit, so the connection caps (not
/// the descriptor table) are what turns a flood away, and journals keep opening.
fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own and has no other effect.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return;
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit reads the struct we own; raising the soft limit up to the
        // hard limit needs no privilege.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            tracing::debug!("cannot raise the open-file limit");
        }
    }
}
