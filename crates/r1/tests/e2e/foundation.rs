//! Issue 2: lifecycle, discovery, connect-or-spawn, stand-down, state dir, token.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::support::*;

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p).unwrap().mode() & 0o777
}

#[test]
fn health_from_fresh_home_spawns_a_private_daemon() {
    let home = Home::new();
    let h = home.run_json(&["ctl", "health"]);
    assert_eq!(h["status"], "ok");
    assert_eq!(h["sessions"], 0);
    assert_eq!(mode(&home.path), 0o700);
    assert_eq!(mode(&home.path.join("daemon.json")), 0o600);
    assert_eq!(mode(&home.path.join("token")), 0o600);
    assert_eq!(mode(&home.path.join("r1.sock")), 0o600);
    let reg = home.registration().unwrap();
    for key in [
        "id",
        "pid",
        "version",
        "protocol",
        "url",
        "sock",
        "started_at",
    ] {
        assert!(reg.get(key).is_some(), "daemon.json lacks {key}: {reg}");
    }
    assert_eq!(reg["protocol"], "r1.proto.v1");
    let token = home.token();
    assert_eq!(token.len(), 64);
    let raw = std::fs::read_to_string(home.path.join("daemon.json")).unwrap();
    assert!(!raw.contains(&token), "daemon.json holds the token");
    // discover redacts the token.
    let d = home.run(&["ctl", "discover"]);
    assert!(d.status.success());
    let text = String::from_utf8_lossy(&d.stdout);
    assert!(text.contains("<redacted>") && !text.contains(&token));
    // The spawned daemon got no token on argv or in its environment.
    let pid = reg["pid"].as_u64().unwrap();
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    assert!(!String::from_utf8_lossy(&cmdline).contains(&token));
    assert!(!String::from_utf8_lossy(&environ).contains(&token));
    let out = home.run_json(&["ctl", "shutdown"]);
    assert_eq!(out["stopped"], true);
    assert!(home.registration().is_none(), "registration left behind");
    assert!(!home.path.join("r1.sock").exists(), "socket left behind");
}

#[test]
fn registration_readers_never_see_a_partial_file() {
    let home = Home::new();
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicUsize::new(0));
    let path = home.path.join("daemon.json");
    let reader = {
        let (stop, reads) = (stop.clone(), reads.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if let Ok(bytes) = std::fs::read(&path) {
                    let v: serde_json::Value = serde_json::from_slice(&bytes)
                        .unwrap_or_else(|e| panic!("partial daemon.json ({e}): {bytes:?}"));
                    assert!(v["pid"].is_u64());
                    reads.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    for _ in 0..5 {
        let mut d = home.serve(&[]);
        assert!(d.post("/v1/shutdown", "{}").status == 200);
        assert_eq!(d.wait_exit(Duration::from_secs(10)).unwrap().0, 0);
    }
    stop.store(true, Ordering::Relaxed);
    reader.join().unwrap();
    assert!(
        reads.load(Ordering::Relaxed) > 0,
        "the reader never saw the file"
    );
}

#[test]
fn eight_racing_clients_end_on_one_daemon() {
    let home = Home::new();
    let children: Vec<_> = (0..8)
        .map(|_| {
            home.cmd(&["ctl", "health", "--json"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut pids = Vec::new();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let _: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    }
    let reg = home.registration().unwrap();
    pids.push(reg["pid"].as_u64().unwrap() as u32);
    wait_until(Duration::from_secs(5), "one serve process", || {
        serve_pids(&home.path).len() == 1
    });
    assert_eq!(serve_pids(&home.path), pids);
}

#[test]
fn second_serve_refuses_with_the_running_pid() {
    let home = Home::new();
    let spawn = || {
        home.cmd(&["serve"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut a = spawn();
    let mut b = spawn();
    // Exactly one exits with status 1 and the message; the other keeps serving.
    let (mut loser, winner) = loop {
        if let Some(s) = a.try_wait().unwrap() {
            assert_eq!(s.code(), Some(1));
            break (a, b);
        }
        if let Some(s) = b.try_wait().unwrap() {
            assert_eq!(s.code(), Some(1));
            break (b, a);
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(loser.stderr.as_mut().unwrap(), &mut err).unwrap();
    wait_until(Duration::from_secs(10), "the winner's registration", || {
        home.registration().is_some()
    });
    let reg = home.registration().unwrap();
    assert!(
        err.contains(&format!(
            "daemon already running, pid={}, sock=",
            winner.id()
        )),
        "{err}"
    );
    assert!(err.contains("r1 ctl"), "no hint: {err}");
    assert_eq!(reg["pid"].as_u64(), Some(u64::from(winner.id())));
    let mut winner = winner;
    unsafe { libc::kill(winner.id() as i32, libc::SIGTERM) };
    assert_eq!(winner.wait().unwrap().code(), Some(0));
    assert!(home.registration().is_none());
}

#[test]
fn stale_registration_is_replaced_by_a_new_daemon() {
    let home = Home::new();
    std::fs::create_dir_all(&home.path).unwrap();
    std::fs::set_permissions(&home.path, std::fs::Permissions::from_mode(0o700)).unwrap();
    // A port nobody listens on, a socket that does not exist.
    let dead_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let stale = serde_json::json!({
        "id": "d_dead", "pid": 999999, "version": "0.0.0", "protocol": "r1.proto.v1",
        "url": format!("http://127.0.0.1:{dead_port}"),
        "sock": home.path.join("gone.sock"), "started_at": "2026-01-01T00:00:00.000Z"
    });
    write_private(&home.path.join("daemon.json"), &stale.to_string());
    let h = home.run_json(&["ctl", "health"]);
    assert_eq!(h["status"], "ok");
    let reg = home.registration().unwrap();
    assert_ne!(reg["id"], "d_dead");
    assert!(alive(reg["pid"].as_u64().unwrap() as u32));
}

fn write_private(path: &std::path::Path, text: &str) {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .unwrap();
    std::io::Write::write_all(&mut f, text.as_bytes()).unwrap();
}

/// A listener run as another user (uid 65534) that records whatever it receives.
struct Foreign {
    child: std::process::Child,
    port: u16,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Foreign {
    fn start() -> Foreign {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let log = dir.path().join("got.bin");
        let port_file = dir.path().join("port");
        let script = format!(
            "import socket\ns=socket.socket()\ns.bind(('127.0.0.1',0))\ns.listen(8)\nopen('{pf}','w').write(str(s.getsockname()[1]))\nwhile True:\n  c,_=s.accept()\n  c.settimeout(1)\n  try:\n    d=c.recv(65536)\n  except Exception:\n    d=b''\n  open('{log}','ab').write(d)\n  c.sendall(b'HTTP/1.1 200 OK\\r\\ncontent-type: application/json\\r\\ncontent-length: 2\\r\\n\\r\\n{{}}')\n  c.close()\n",
            pf = port_file.display(),
            log = log.display()
        );
        let child = std::process::Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "/usr/bin/python3",
                "-c",
                &script,
            ])
            .spawn()
            .expect("setpriv and /usr/bin/python3 are needed for this test");
        let mut port = 0;
        wait_until(Duration::from_secs(5), "foreign listener", || {
            port = std::fs::read_to_string(&port_file)
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            port != 0
        });
        Foreign {
            child,
            port,
            log,
            _dir: dir,
        }
    }

    fn received(&self) -> Vec<u8> {
        std::fs::read(&self.log).unwrap_or_default()
    }
}

impl Drop for Foreign {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_foreign_listener_on_the_recorded_port_never_gets_the_token() {
    let home = Home::new();
    let _d = home.serve(&[]);
    let token = home.token();
    let foreign = Foreign::start();
    // The registration keeps the real socket (the probe passes) but names the foreign
    // port: a TCP client must refuse to send it the token.
    let mut reg = home.registration().unwrap();
    reg["url"] = serde_json::json!(format!("http://127.0.0.1:{}", foreign.port));
    write_private(&home.path.join("daemon.json"), &reg.to_string());
    let out = home.run(&["ctl", "--tcp", "health"]);
    assert_eq!(
        out.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not belong to you"));
    assert!(
        foreign.received().is_empty(),
        "the foreign listener was contacted"
    );

    // With a stale socket too, the client spawns a daemon of its own instead.
    reg["sock"] = serde_json::json!(home.path.join("gone.sock"));
    reg["id"] = serde_json::json!("d_other");
    drop(_d);
    write_private(&home.path.join("daemon.json"), &reg.to_string());
    let out = home.run(&["ctl", "--tcp", "health", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = foreign.received();
    assert!(
        !String::from_utf8_lossy(&got).contains(&token),
        "token leaked to the foreign port"
    );
    assert!(got.is_empty());
}

#[test]
fn a_daemon_speaking_another_protocol_is_refused_distinctly() {
    let home = Home::new();
    std::fs::create_dir_all(&home.path).unwrap();
    std::fs::set_permissions(&home.path, std::fs::Permissions::from_mode(0o700)).unwrap();
    let sock = home.path.join("v2.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    std::thread::spawn(move || {
        for s in listener.incoming() {
            let mut s = s.unwrap();
            let mut buf = [0u8; 4096];
            let _ = std::io::Read::read(&mut s, &mut buf);
            let body = r#"{"protocol":"r1.proto.v2","version":"9.0.0","daemon_id":"d_v2","pid":4242,"started_at":"2026-01-01T00:00:00.000Z"}"#;
            let resp = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            let _ = std::io::Write::write_all(&mut s, resp.as_bytes());
        }
    });
    let reg = serde_json::json!({
        "id": "d_v2", "pid": 4242, "version": "9.0.0", "protocol": "r1.proto.v2",
        "url": "http://127.0.0.1:1", "sock": sock, "started_at": "2026-01-01T00:00:00.000Z"
    });
    write_private(&home.path.join("daemon.json"), &reg.to_string());
    let out = home.run(&["ctl", "health"]);
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("r1.proto.v2") && err.contains("r1.proto.v1"),
        "{err}"
    );
    assert!(
        serve_pids(&home.path).is_empty(),
        "a daemon was spawned anyway"
    );
}

#[test]
fn daemon_stands_down_when_its_registration_goes() {
    let home = Home::new();
    let mut d = home.serve(&[]);
    std::fs::remove_file(home.path.join("daemon.json")).unwrap();
    let (code, _) = d
        .wait_exit(Duration::from_secs(5))
        .expect("did not stand down within 5 s");
    assert_eq!(code, 0);

    let mut d = home.serve(&[]);
    let mut reg = home.registration().unwrap();
    reg["id"] = serde_json::json!("d_someone_else");
    write_private(&home.path.join("daemon.json"), &reg.to_string());
    let (code, _) = d
        .wait_exit(Duration::from_secs(5))
        .expect("did not stand down within 5 s");
    assert_eq!(code, 0);
    // It did not delete a registration it does not own.
    assert_eq!(home.registration().unwrap()["id"], "d_someone_else");
}

#[test]
fn unsafe_state_dirs_are_refused() {
    // Group/other bits.
    let home = Home::new();
    std::fs::create_dir_all(&home.path).unwrap();
    std::fs::set_permissions(&home.path, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = home.run(&["serve"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("chmod 700"), "{err}");

    // A symlink.
    let home = Home::new();
    let real = home._dir.path().join("real");
    std::fs::create_dir(&real).unwrap();
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::symlink(&real, &home.path).unwrap();
    let out = home.run(&["serve"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("symlink"));

    // Another owner.
    let home = Home::new();
    std::fs::create_dir_all(&home.path).unwrap();
    std::fs::set_permissions(&home.path, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::chown(&home.path, Some(65534), Some(65534)).unwrap();
    let out = home.run(&["serve"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("owned by uid 65534"));
    // Clients refuse it as well, without spawning.
    let out = home.run(&["ctl", "health"]);
    assert_eq!(out.status.code(), Some(5));
}

#[test]
fn non_loopback_bind_is_refused() {
    let home = Home::new();
    let out = home.run(&["serve", "--bind", "0.0.0.0"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("loopback"));
}

#[test]
fn rotate_token_is_live_and_clients_follow_it() {
    let home = Home::new();
    let d = home.serve(&[]);
    let old = d.token();
    assert_eq!(d.get("/v1/health").status, 200);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut opts = r1_client::ConnectOptions::new(&home.path);
    opts.tcp = true;
    opts.spawn = false;
    let client = rt.block_on(r1_client::connect(&opts)).unwrap();
    use r1_proto::Api;
    rt.block_on(client.health(r1_proto::EmptyParams {}))
        .unwrap();

    let out = home.run_json(&["ctl", "rotate-token"]);
    assert_eq!(out["ok"], true);
    let new = d.token();
    assert_ne!(old, new);
    let port = d.port();
    let with = |t: &str| {
        raw_tcp(
            port,
            &format!("GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {t}\r\nConnection: close\r\n\r\n"),
        )
        .status
    };
    assert_eq!(with(&old), 401);
    assert_eq!(with(&new), 200);
    // The long-lived client re-reads the token on 401 without being told.
    rt.block_on(client.health(r1_proto::EmptyParams {}))
        .unwrap();
    // And `serve --rotate-token` replaces it at start.
    drop(d);
    let d = home.serve(&["--rotate-token"]);
    assert_ne!(d.token(), new);
}

/// An HTTP request held open on `stream` (an event stream, a long poll): sends it,
/// reads its head, then reads on in a thread until the server ends it. The thread
/// answers with everything read after the head.
fn held_open<S: std::io::Read + std::io::Write + Send + 'static>(
    mut stream: S,
    request: &str,
) -> (String, std::thread::JoinHandle<String>) {
    stream.write_all(request.as_bytes()).unwrap();
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !got.ends_with(b"\r\n\r\n") {
        assert_eq!(stream.read(&mut byte).unwrap(), 1, "the head was cut short");
        got.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&got).to_string();
    let rest =
        std::thread::spawn(move || String::from_utf8_lossy(&read_some(&mut stream)).to_string());
    (head, rest)
}

#[test]
fn rotating_the_token_ends_every_connection_opened_with_the_old_one() {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let home = Home::new();
    let d = home.serve(&[]);
    let old = d.token();
    let port = d.port();
    let wd = tempfile::tempdir().unwrap();
    let sid = crate::sessions::start(&d, wd.path());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    // Opened with the old token: a WebSocket with a live bus subscription, the bus over
    // SSE on TCP, a session's stream over the unix socket (which asks for the token
    // too), and a long poll.
    let mut ws = rt.block_on(ws_connect(&d));
    let sub = rt.block_on(ws_call(&mut ws, 1, "subscribe", serde_json::json!({})));
    assert!(sub["result"]["subscription"].is_string(), "{sub}");
    let tcp = |t: &str, path: &str| {
        let s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        held_open(
            s,
            &format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {t}\r\nConnection: close\r\n\r\n"),
        )
    };
    let unix = |t: &str, path: &str| {
        let s = std::os::unix::net::UnixStream::connect(d.sock()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        held_open(
            s,
            &format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {t}\r\nConnection: close\r\n\r\n"),
        )
    };
    let (head, bus) = tcp(&old, "/v1/events");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let (head, session) = unix(&old, &format!("/v1/sessions/{sid}/events"));
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    // An MCP session's GET stream of notifications.
    let mcp_post = |session: Option<&str>, body: serde_json::Value| {
        let body = body.to_string();
        let session = session
            .map(|s| format!("Mcp-Session-Id: {s}\r\n"))
            .unwrap_or_default();
        raw_tcp(port, &format!(
            "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {old}\r\nMCP-Protocol-Version: 2025-11-25\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\n{session}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ))
    };
    let init = mcp_post(
        None,
        serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "e2e", "version": "1"}}}),
    );
    assert_eq!(init.status, 200, "{}", init.body);
    let mcp_session = init.header("mcp-session-id").expect("an MCP session id");
    let ack = mcp_post(
        Some(&mcp_session),
        serde_json::json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    );
    assert_eq!(ack.status, 202, "{}", ack.body);
    let s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let (head, mcp) = held_open(
        s,
        &format!("GET /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {old}\r\nAccept: text/event-stream\r\nMCP-Protocol-Version: 2025-11-25\r\nMcp-Session-Id: {mcp_session}\r\nConnection: close\r\n\r\n"),
    );
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let tail_path = format!("/v1/sessions/{sid}/journal/tail?since_seq=1000000&wait_ms=60000");
    let mut poll = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    poll.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    std::io::Write::write_all(
        &mut poll,
        format!("GET {tail_path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {old}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .unwrap();
    let poll = std::thread::spawn(move || parse(&read_some(&mut poll)));
    // The long poll waits 60 s for a record that never comes; nothing outside shows
    // that it is waiting, so it is given a moment to be read and checked before the
    // rotation (a request checked after it would be refused the plain way, without
    // "rotated").
    std::thread::sleep(Duration::from_millis(1000));

    // The CLI follows a session over the unix socket, reading the token file like any
    // client: its stream ends at the rotation, and it follows on with the new token
    // (a 401 makes it read the file again), missing nothing.
    let mut follower = home
        .cmd(&["ctl", "sessions", "follow", &sid, "--json"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let followed = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    {
        let followed = followed.clone();
        let out = follower.stdout.take().unwrap();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                followed.lock().unwrap().push_str(&line);
            }
        });
    }
    wait_until(Duration::from_secs(10), "the follower to attach", || {
        followed.lock().unwrap().contains("session.created")
    });

    let rotated_at = std::time::Instant::now();
    assert_eq!(home.run_json(&["ctl", "rotate-token"])["ok"], true);
    let new = d.token();
    assert_ne!(old, new);

    // The WebSocket is closed with 4001 "token rotated".
    let close = rt.block_on(async {
        loop {
            match tokio::time::timeout(Duration::from_secs(3), ws.next()).await {
                Ok(Some(Ok(Message::Close(f)))) => return f,
                Ok(Some(Ok(_))) => continue,
                other => panic!("no close frame after the rotation: {other:?}"),
            }
        }
    });
    let close = close.expect("a close frame with a code");
    assert_eq!(u16::from(close.code), 4001);
    assert_eq!(close.reason.as_str(), "token rotated");
    // Both event streams end, saying why; the long poll is answered 401.
    for (what, stream) in [("bus", bus), ("session", session)] {
        let rest = stream.join().unwrap();
        assert!(
            rest.contains("event: error") && rest.contains("token was rotated"),
            "the {what} stream did not end with the reason: {rest}"
        );
    }
    // The MCP stream ends too (without r1's `event: error`, which MCP clients do not
    // read); its read timeout is 10 s, so ending within the bound below is the proof.
    let _ = mcp.join().unwrap();
    let poll = poll.join().unwrap();
    assert_eq!(poll.status, 401, "{}", poll.body);
    assert!(poll.body.contains("rotated"), "{}", poll.body);
    let took = rotated_at.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "the old connections took {took:?} to end"
    );

    // The old token opens nothing again; the new one does, on both listeners.
    let refused = rt.block_on(async {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut req = format!("ws://127.0.0.1:{port}/v1/ws")
            .into_client_request()
            .unwrap();
        req.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            format!("r1.proto.v1, r1.bearer, {old}").parse().unwrap(),
        );
        tokio_tungstenite::connect_async(req).await
    });
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), 401)
        }
        other => panic!("a WebSocket with the old token was not refused: {other:?}"),
    }
    assert_eq!(
        raw_tcp(port, &format!("GET /v1/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {old}\r\nConnection: close\r\n\r\n")).status,
        401
    );
    let mut ws = rt.block_on(ws_connect(&d));
    let h = rt.block_on(ws_call(
        &mut ws,
        1,
        "session.get",
        serde_json::json!({"session_id": sid}),
    ));
    assert_eq!(h["result"]["id"], sid.as_str(), "{h}");
    let (head, _session) = unix(&new, &format!("/v1/sessions/{sid}/events?since_seq=1"));
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    rt.block_on(ws.close(None)).ok();
    let sent = d.post(
        &format!("/v1/sessions/{sid}/messages"),
        &serde_json::json!({"text": "after the rotation"}).to_string(),
    );
    assert_eq!(sent.status, 202, "{}", sent.body);
    wait_until(Duration::from_secs(20), "the follower to go on", || {
        followed
            .lock()
            .unwrap()
            .contains("echo: after the rotation")
    });
    let _ = follower.kill();
    let _ = follower.wait();
}

#[test]
fn token_file_is_adopted_and_never_on_argv() {
    let home = Home::new();
    let tf = home._dir.path().join("my.token");
    std::fs::write(&tf, "f".repeat(64)).unwrap();
    // A token file open to others is refused; private, it is adopted.
    std::fs::set_permissions(&tf, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = home.run(&["serve", "--token-file", tf.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("chmod 600"));
    std::fs::set_permissions(&tf, std::fs::Permissions::from_mode(0o600)).unwrap();
    let d = home.serve(&["--token-file", tf.to_str().unwrap()]);
    assert_eq!(d.token(), "f".repeat(64));
    assert_eq!(d.get("/v1/health").status, 200);
}

#[test]
fn the_token_appears_in_no_log_argv_or_environment() {
    let home = Home::new();
    let h = home.run_json(&["ctl", "health"]);
    assert_eq!(h["status"], "ok");
    let reg = home.registration().unwrap();
    let pid = reg["pid"].as_u64().unwrap();
    let port: u16 = reg["url"]
        .as_str()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let token = home.token();
    // Requests that carry the token in every allowed way, and a wrong one in the query.
    let r = raw_tcp(port, &format!("GET /v1/events?token={token} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"));
    assert_eq!(r.status, 200);
    let r = raw_tcp(port, &format!("GET /v1/health?token={token} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"));
    assert_eq!(r.status, 401);
    home.run_json(&["ctl", "--tcp", "health"]);
    home.run_json(&["ctl", "rotate-token"]);
    let token2 = home.token();
    home.run_json(&["ctl", "shutdown"]);
    let mut logs = String::new();
    for e in std::fs::read_dir(home.path.join("logs")).unwrap() {
        logs.push_str(&std::fs::read_to_string(e.unwrap().path()).unwrap());
    }
    assert!(
        logs.contains("r1 daemon listening"),
        "the log is empty: {logs}"
    );
    assert!(
        !logs.contains(&token) && !logs.contains(&token2),
        "token in logs"
    );
    assert!(!logs.contains("token="), "query string in logs");
    let _ = pid;
}

#[test]
fn doctor_says_what_is_wrong_and_never_spawns() {
    let home = Home::new();
    let out = home.run(&["doctor", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert!(serve_pids(&home.path).is_empty(), "doctor started a daemon");
    let _d = home.serve(&[]);
    let v = home.run_json(&["doctor"]);
    assert_eq!(v["ok"], true, "{v}");
    assert!(v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["name"] == "daemon" && c["ok"] == true));
    std::fs::set_permissions(
        home.path.join("token"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let out = home.run(&["doctor"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("chmod 600"));
}
