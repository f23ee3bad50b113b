//! Test support: temp state directories, the real binary, raw HTTP.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The `r1` binary under test.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_r1"))
}

/// A fresh state directory, removed with the value (after stopping its daemon).
pub struct Home {
    pub _dir: tempfile::TempDir,
    pub path: PathBuf,
}

impl Home {
    pub fn new() -> Home {
        let dir = tempfile::Builder::new().prefix("r1t").tempdir().unwrap();
        let path = dir.path().join("h");
        Home { _dir: dir, path }
    }

    /// `r1 <args>` with this home.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin());
        c.args(args).env("R1_HOME", &self.path).env_remove("R1_LOG");
        c
    }

    /// Runs `r1 <args>` to completion.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).stdin(Stdio::null()).output().unwrap()
    }

    /// Runs `r1 <args> --json` and parses stdout.
    pub fn run_json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.push("--json");
        let out = self.run(&a);
        assert!(
            out.status.success(),
            "r1 {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    pub fn registration(&self) -> Option<Value> {
        std::fs::read(self.path.join("daemon.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
    }

    pub fn token(&self) -> String {
        std::fs::read_to_string(self.path.join("token"))
            .unwrap()
            .trim()
            .to_string()
    }

    /// Starts `r1 serve` in the foreground of a child process and waits for it to
    /// register.
    pub fn serve(&self, extra: &[&str]) -> Daemon {
        self.serve_env(extra, &[])
    }

    /// [`Home::serve`] with extra environment variables for the daemon.
    pub fn serve_env(&self, extra: &[&str], env: &[(&str, &str)]) -> Daemon {
        let mut args = vec!["serve"];
        if !extra.contains(&"--log-level") {
            args.extend_from_slice(&["--log-level", "debug"]);
        }
        args.extend_from_slice(extra);
        // stderr goes to a file: a pipe nobody reads would fill up and block the daemon.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self._dir.path().join("serve.stderr"))
            .unwrap();
        let mut cmd = self.cmd(&args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let pid = child.id();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(reg) = self.registration() {
                if reg["pid"].as_u64() == Some(u64::from(pid)) {
                    return Daemon {
                        child: Some(child),
                        home: self.path.clone(),
                        reg,
                    };
                }
            }
            assert!(Instant::now() < deadline, "daemon did not register");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        if let Some(reg) = self.registration() {
            if let Some(pid) = reg["pid"].as_i64() {
                unsafe {
                    libc::kill(pid as i32, libc::SIGKILL);
                }
            }
        }
    }
}

/// A daemon started by the test.
pub struct Daemon {
    pub child: Option<Child>,
    pub home: PathBuf,
    pub reg: Value,
}

impl Daemon {
    pub fn pid(&self) -> u32 {
        self.reg["pid"].as_u64().unwrap() as u32
    }

    pub fn port(&self) -> u16 {
        let url = self.reg["url"].as_str().unwrap();
        url.rsplit(':').next().unwrap().parse().unwrap()
    }

    pub fn sock(&self) -> PathBuf {
        PathBuf::from(self.reg["sock"].as_str().unwrap())
    }

    pub fn token(&self) -> String {
        std::fs::read_to_string(self.home.join("token"))
            .unwrap()
            .trim()
            .to_string()
    }

    /// Waits for the daemon process to exit; returns its exit code and stderr.
    pub fn wait_exit(&mut self, within: Duration) -> Option<(i32, String)> {
        let mut child = self.child.take()?;
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                let err = std::fs::read_to_string(self.home.with_file_name("serve.stderr"))
                    .unwrap_or_default();
                return Some((status.code().unwrap_or(-1), err));
            }
            if Instant::now() > deadline {
                self.child = Some(child);
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// An authenticated request over TCP.
    pub fn get(&self, path: &str) -> Resp {
        let token = self.token();
        raw_tcp_patient(
            self.port(),
            &format!(
                "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n",
                self.port()
            ),
            Duration::from_secs(20),
        )
    }

    /// An authenticated JSON POST over TCP.
    pub fn post(&self, path: &str, body: &str) -> Resp {
        let token = self.token();
        raw_tcp_patient(
            self.port(),
            &format!(
                "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                self.port(),
                body.len()
            ),
            Duration::from_secs(20),
        )
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A parsed HTTP response.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<String> {
        let prefix = format!("{}:", name.to_ascii_lowercase());
        self.head.lines().find_map(|l| {
            l.to_ascii_lowercase()
                .starts_with(&prefix)
                .then(|| l[prefix.len()..].trim().to_string())
        })
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

pub fn parse(bytes: &[u8]) -> Resp {
    let text = String::from_utf8_lossy(bytes).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    Resp {
        status,
        head: head.to_string(),
        body,
    }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            out.push_str(&rest[..rest.len().min(n)]);
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Sends raw bytes to 127.0.0.1:port and reads until the server closes (or 2 s of
/// silence, for streams).
pub fn raw_tcp(port: u16, request: &str) -> Resp {
    raw_tcp_patient(port, request, Duration::from_secs(2))
}

/// [`raw_tcp`] with a longer silence allowed, for answers that take a while to start
/// (large journal pages on a busy machine).
pub fn raw_tcp_patient(port: u16, request: &str, silence: Duration) -> Resp {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(silence)).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    parse(&read_some(&mut s))
}

/// Reads until EOF or a read timeout.
pub fn read_some(s: &mut impl Read) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => break,
        }
    }
    buf
}

/// An HTTP request over the unix socket.
pub fn raw_unix(sock: &Path, request: &str) -> Resp {
    let mut s = UnixStream::connect(sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    parse(&read_some(&mut s))
}

/// Waits until `f` holds, or panics after `within`.
pub fn wait_until(within: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether a process is alive (and not a zombie).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s
            .rsplit_once(')')
            .is_some_and(|(_, r)| r.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Pids of `r1 serve` processes whose environment names `home` as `R1_HOME`.
pub fn serve_pids(home: &Path) -> Vec<u32> {
    let want = format!("R1_HOME={}", home.display());
    let mut pids = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmd.split(|b| *b == 0).collect();
        if args.len() < 2 || args[1] != b"serve" || !alive(pid) {
            continue;
        }
        let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        if env.split(|b| *b == 0).any(|kv| kv == want.as_bytes()) {
            pids.push(pid);
        }
    }
    pids
}

/// Writes `daemon.toml` into a home that does not exist yet (created 0700, as the daemon
/// wants it).
pub fn write_config(home: &Home, toml: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(&home.path).unwrap();
    std::fs::set_permissions(&home.path, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::write(home.path.join("daemon.toml"), toml).unwrap();
}

/// The resident set of a process, in kB.
pub fn rss_kb(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// A home on a 2 MB tmpfs of its own, for real full-disk tests (mounting needs root, as
/// CI has). The tmpfs is unmounted when the value is dropped.
pub struct TmpfsHome {
    pub home: Home,
    pub mnt: PathBuf,
    _base: tempfile::TempDir,
}

impl TmpfsHome {
    pub fn new() -> TmpfsHome {
        let base = tempfile::tempdir().unwrap();
        let mnt = base.path().join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs"])
            .arg(&mnt)
            .status()
            .expect("mount is needed for this test");
        assert!(
            ok.success(),
            "mounting a tmpfs failed; this test needs root (as CI has)"
        );
        let home = Home {
            _dir: tempfile::tempdir().unwrap(),
            path: mnt.join("h"),
        };
        TmpfsHome {
            home,
            mnt,
            _base: base,
        }
    }
}

impl Drop for TmpfsHome {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.mnt).status();
    }
}

/// An authenticated POST that declares a body of `len` bytes and sends none of it: the
/// daemon must refuse it (413) from the headers alone. Sending the body too would race
/// the daemon closing the connection after its early answer (a reset can eat the reply).
pub fn post_declaring(d: &Daemon, path: &str, len: usize) -> Resp {
    raw_tcp_patient(
        d.port(),
        &format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n",
            d.port(),
            d.token()
        ),
        Duration::from_secs(20),
    )
}

/// A WebSocket on the daemon's TCP port, authenticated by subprotocol.
pub async fn ws_connect(
    d: &Daemon,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = format!("ws://127.0.0.1:{}/v1/ws", d.port())
        .into_client_request()
        .unwrap();
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        format!("r1.proto.v1, r1.bearer, {}", d.token())
            .parse()
            .unwrap(),
    );
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(Some(64 << 20))
        .max_frame_size(Some(64 << 20));
    let (ws, _) = tokio_tungstenite::connect_async_with_config(req, Some(config), false)
        .await
        .unwrap();
    ws
}

/// One JSON-RPC call over `ws`: the reply whose id is `id`.
pub async fn ws_call(
    ws: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    id: u64,
    method: &str,
    params: Value,
) -> Value {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    ws.send(Message::Text(
        json!({"jsonrpc":"2.0","id":id,"method":method,"params":params})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    loop {
        let m = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if let Message::Text(t) = m {
            let v: Value = serde_json::from_str(&t).unwrap();
            if v["id"] == json!(id) {
                return v;
            }
        }
    }
}
