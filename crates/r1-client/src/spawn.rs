//! Probe, protocol gate and connect-or-spawn.

use std::fs::{self, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use http::Method;
use r1_proto::{Handshake, Registration, PROTOCOL};

use crate::discovery::{check_home, discover};
use crate::http::{Client, Transport};
use crate::ClientError;

/// How a client connects.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// The state directory.
    pub home: PathBuf,
    /// Use loopback TCP with the token instead of the unix socket.
    pub tcp: bool,
    /// Start a daemon when none answers.
    pub spawn: bool,
    /// The `r1` executable to spawn; the current executable when `None`.
    pub exe: Option<PathBuf>,
    /// How long to wait for a spawned daemon to answer.
    pub spawn_timeout: Duration,
    /// How long one probe may take.
    pub probe_timeout: Duration,
    /// A daemon's unix socket given directly (`$R1_SOCK`, `--sock`): used instead of
    /// `daemon.json`, never spawned, never TCP. An SSH-forwarded socket reaches a
    /// daemon on another machine this way; the token comes from
    /// [`crate::token_path`].
    pub sock: Option<PathBuf>,
}

impl ConnectOptions {
    /// Defaults for `home`: unix socket, spawn allowed, 5 s spawn bound, 1 s probe,
    /// and the socket of `$R1_SOCK` when it is set.
    pub fn new(home: &Path) -> ConnectOptions {
        ConnectOptions {
            home: home.to_path_buf(),
            tcp: false,
            spawn: true,
            exe: None,
            spawn_timeout: Duration::from_secs(5),
            probe_timeout: Duration::from_secs(1),
            sock: crate::discovery::env_sock(),
        }
    }
}

/// Probes a registered daemon over its unix socket: a handshake within `timeout`, and
/// the protocol gate. A daemon speaking another protocol is [`ClientError::Incompatible`].
pub async fn probe(
    home: &Path,
    reg: &Registration,
    timeout: Duration,
) -> Result<Handshake, ClientError> {
    let client = Client::new(home, reg.clone(), Transport::Unix(PathBuf::from(&reg.sock)));
    let hs: Handshake = tokio::time::timeout(
        timeout,
        client.call(Method::GET, "/v1/handshake", None::<&()>),
    )
    .await
    .map_err(|_| {
        ClientError::Unreachable(format!("no handshake within {} ms", timeout.as_millis()))
    })??;
    if hs.protocol != PROTOCOL {
        return Err(ClientError::Incompatible {
            found: hs.protocol,
            expected: PROTOCOL.to_string(),
            version: hs.version,
            pid: hs.pid,
            sock: reg.sock.clone(),
        });
    }
    Ok(hs)
}

/// Connects to the running daemon without spawning one.
pub async fn connect(opts: &ConnectOptions) -> Result<Client, ClientError> {
    if let Some(sock) = &opts.sock {
        return connect_sock(opts, sock).await;
    }
    check_home(&opts.home)?;
    match try_registered(opts).await? {
        Some(c) => Ok(c),
        None => Err(ClientError::Unreachable(format!(
            "no r1 daemon is running for {}; start one with `r1 serve`",
            opts.home.display()
        ))),
    }
}

/// The daemon behind the socket `sock` given directly: its registration comes from
/// `GET /v1/discover` over the socket, then the protocol gate as for a registered one.
async fn connect_sock(opts: &ConnectOptions, sock: &Path) -> Result<Client, ClientError> {
    let shown = sock.display();
    let placeholder = Registration {
        id: String::new(),
        pid: 0,
        version: String::new(),
        protocol: PROTOCOL.to_string(),
        url: String::new(),
        sock: sock.to_string_lossy().into_owned(),
        started_at: String::new(),
        exe: None,
        build_id: None,
    };
    let client = Client::new(&opts.home, placeholder, Transport::Unix(sock.to_path_buf()));
    let found: r1_proto::Discovery = tokio::time::timeout(
        opts.probe_timeout.max(Duration::from_secs(5)),
        client.call(Method::GET, "/v1/discover", None::<&()>),
    )
    .await
    .map_err(|_| ClientError::Unreachable(format!("no answer on {shown} (R1_SOCK) in time")))?
    .map_err(|e| match e {
        ClientError::Unreachable(why) => ClientError::Unreachable(format!(
            "{why} (R1_SOCK={shown}: is the daemon running and the socket forwarded?)"
        )),
        e => e,
    })?;
    let reg = Registration {
        id: found.id,
        pid: found.pid,
        version: found.version,
        protocol: found.protocol,
        url: found.url,
        // Requests go to the socket given, not the daemon's own path on its machine.
        sock: sock.to_string_lossy().into_owned(),
        started_at: found.started_at,
        exe: found.exe,
        build_id: found.build_id,
    };
    probe(
        &opts.home,
        &reg,
        opts.probe_timeout.max(Duration::from_secs(5)),
    )
    .await?;
    Ok(Client::new(
        &opts.home,
        reg,
        Transport::Unix(sock.to_path_buf()),
    ))
}

/// The registered daemon, if it answers the probe; `None` when there is no
/// registration or it is stale. An incompatible daemon is an error.
async fn try_registered(opts: &ConnectOptions) -> Result<Option<Client>, ClientError> {
    let Some(reg) = discover(&opts.home)? else {
        return Ok(None);
    };
    match probe(&opts.home, &reg, opts.probe_timeout).await {
        Ok(_) => {}
        Err(e @ ClientError::Incompatible { .. }) => return Err(e),
        Err(_) => return Ok(None),
    }
    let transport = if opts.tcp {
        let addr = reg
            .url
            .strip_prefix("http://")
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| ClientError::Protocol(format!("bad url in daemon.json: {}", reg.url)))?;
        Transport::Tcp(addr)
    } else {
        Transport::Unix(PathBuf::from(&reg.sock))
    };
    Ok(Some(Client::new(&opts.home, reg, transport)))
}

/// Connects to the daemon of `opts.home`, starting one when none answers. Racing
/// callers serialise on `spawn.lock`, so N clients on a cold state directory spawn one
/// daemon and all end on it.
pub async fn connect_or_spawn(opts: &ConnectOptions) -> Result<Client, ClientError> {
    if let Some(sock) = &opts.sock {
        return connect_sock(opts, sock).await;
    }
    check_home(&opts.home)?;
    if let Some(c) = try_registered(opts).await? {
        return Ok(c);
    }
    if !opts.spawn {
        return connect(opts).await;
    }
    if !opts.home.exists() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&opts.home)
            .map_err(|e| {
                ClientError::Unreachable(format!("cannot create {}: {e}", opts.home.display()))
            })?;
    }
    let deadline = Instant::now() + opts.spawn_timeout;
    let lock = take_spawn_lock(&opts.home, deadline).await?;
    // Another client may have started the daemon while this one waited for the lock.
    if let Some(c) = try_registered(opts).await? {
        return Ok(c);
    }
    let mut child = spawn_daemon(opts)?;
    let result = loop {
        if let Some(c) = try_registered(opts).await? {
            break Ok(c);
        }
        if Instant::now() >= deadline {
            let status = match child.try_wait() {
                Ok(Some(s)) => format!("it exited with {s}"),
                _ => "it is still starting".to_string(),
            };
            break Err(ClientError::Unreachable(format!(
                "started `r1 serve` but it did not answer within {} ms ({status}); see {}",
                opts.spawn_timeout.as_millis(),
                opts.home.join("logs").display()
            )));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    drop(lock);
    // Reap the child when it exits so a long-lived client leaves no zombie.
    std::thread::spawn(move || child.wait());
    result
}

async fn take_spawn_lock(home: &Path, deadline: Instant) -> Result<fs::File, ClientError> {
    let path = home.join("spawn.lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| ClientError::Unreachable(format!("cannot open {}: {e}", path.display())))?;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err(fs::TryLockError::WouldBlock) => {
                return Err(ClientError::Unreachable(
                    "another client is starting the daemon and did not finish in time".into(),
                ))
            }
            Err(fs::TryLockError::Error(e)) => {
                return Err(ClientError::Unreachable(format!(
                    "cannot lock {}: {e}",
                    path.display()
                )))
            }
        }
    }
}

/// Starts `r1 serve` detached: its own session, null stdio, the state directory passed
/// through `R1_HOME` (never a token).
fn spawn_daemon(opts: &ConnectOptions) -> Result<std::process::Child, ClientError> {
    let exe = match &opts.exe {
        Some(e) => e.clone(),
        None => std::env::var_os("R1_BIN")
            .map(PathBuf::from)
            .map(Ok)
            .unwrap_or_else(std::env::current_exe)
            .map_err(|e| ClientError::Unreachable(format!("cannot find the r1 executable: {e}")))?,
    };
    let mut cmd = Command::new(&exe);
    cmd.arg("serve")
        .env("R1_HOME", &opts.home)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: setsid is async-signal-safe and touches no memory of the parent; it puts
    // the daemon in its own session so it outlives the client's terminal.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    cmd.spawn()
        .map_err(|e| ClientError::Unreachable(format!("cannot start {} serve: {e}", exe.display())))
}
