//! Attacks on the real binary (issue "Hardening"): connection floods, lenient parsing,
//! oversized inputs, subscriber floods, untrusted token files, signals, the curl
//! examples of the deployment guide and colour codes in logs. Each test attacks the
//! way an attacker would (raw sockets, real files, real signals) and checks that
//! nothing was lost.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::{
    raw_tcp, read_some, wait_until, write_config, ws_call, ws_connect, Daemon, Home, Resp,
};

/// Lets this test process hold a thousand sockets (the soft limit is often 1024).
fn raise_nofile() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur = lim.rlim_max.min(65536);
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
    }
}

fn start_session(d: &Daemon, workdir: &str) -> String {
    let r = d.post("/v1/sessions", &json!({ "workdir": workdir }).to_string());
    assert_eq!(r.status, 201, "{}", r.body);
    r.json()["id"].as_str().unwrap().to_string()
}

fn journal_bytes(home: &Home, id: &str) -> Vec<u8> {
    std::fs::read(home.path.join("sessions").join(id).join("journal.ndjson")).unwrap()
}

/// An authenticated request with a body and content type of the caller's choosing.
fn request(d: &Daemon, method: &str, path: &str, content_type: Option<&str>, body: &str) -> Resp {
    let ct = content_type
        .map(|c| format!("Content-Type: {c}\r\n"))
        .unwrap_or_default();
    let len = if body.is_empty() && content_type.is_none() {
        String::new()
    } else {
        format!("Content-Length: {}\r\n", body.len())
    };
    raw_tcp(
        d.port(),
        &format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAuthorization: Bearer {}\r\n{ct}{len}Connection: close\r\n\r\n{body}",
            d.port(),
            d.token()
        ),
    )
}

// ---- 2. Unauthenticated peers cannot lock everyone out ----

#[test]
fn a_thousand_idle_and_half_open_connections_leave_the_cli_working() {
    raise_nofile();
    let home = Home::new();
    write_config(&home, "[limits]\nheader_read_timeout_ms = 1500\n");
    let d = home.serve(&[]);
    let port = d.port();
    let mut held = Vec::new();
    for i in 0..1000 {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
            continue;
        };
        if i % 2 == 1 {
            // Half-open: a request line and part of the headers, then silence.
            let _ = s.write_all(
                format!("GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Slow: ").as_bytes(),
            );
        }
        held.push(s);
    }
    assert!(
        held.len() >= 900,
        "could not open the flood: {}",
        held.len()
    );

    // The CLI talks over the unix socket, which has a budget of its own.
    let started = Instant::now();
    let out = home.run(&["ctl", "health", "--json"]);
    let took = started.elapsed();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], "ok", "{v}");
    assert!(took < Duration::from_secs(1), "health took {took:?}");

    // The flood is reaped: idle and half-open connections are closed by the server
    // once the header-read timeout passes (or at once when over the cap).
    let mut closed = 0;
    for s in held.iter_mut() {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 256];
        match s.read(&mut buf) {
            Ok(0) => closed += 1,
            // hyper answers a timed-out half-open request with 408 before closing.
            Ok(_) => {
                if s.read(&mut buf).map(|n| n == 0).unwrap_or(true) {
                    closed += 1;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => closed += 1,
            Err(_) => {}
        }
    }
    assert_eq!(closed, held.len(), "connections left open by the daemon");
    drop(held);

    // And the TCP port serves again.
    let r = d.get("/v1/health");
    assert_eq!(r.status, 200, "{}", r.body);
    let m = d.get("/v1/metrics");
    assert!(
        m.body
            .contains("r1_connections_rejected_total{listener=\"tcp\",reason=\"limit\"}"),
        "the cap never turned a connection away: {}",
        m.body
    );
}

#[test]
fn a_peer_that_never_sends_its_headers_is_dropped() {
    let home = Home::new();
    write_config(&home, "[limits]\nheader_read_timeout_ms = 500\n");
    let d = home.serve(&[]);
    let mut s = TcpStream::connect(("127.0.0.1", d.port())).unwrap();
    s.write_all(b"GET /v1/health HTTP/1.1\r\nHost: ").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let started = Instant::now();
    let got = read_some(&mut s);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the half-open connection lived {:?}",
        started.elapsed()
    );
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 408"),
        "unexpected answer: {text}"
    );
    // An idle keep-alive connection after a good request is reaped the same way.
    let mut s = TcpStream::connect(("127.0.0.1", d.port())).unwrap();
    s.write_all(
        format!(
            "GET /v1/handshake HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAuthorization: Bearer {}\r\n\r\n",
            d.port(),
            d.token()
        )
        .as_bytes(),
    )
    .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let started = Instant::now();
    let got = String::from_utf8_lossy(&read_some(&mut s)).to_string();
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the idle keep-alive connection lived {:?}",
        started.elapsed()
    );
}

// ---- 3. Strict request parsing ----

#[test]
fn duplicate_and_foreign_framing_is_refused() {
    let home = Home::new();
    let d = home.serve(&[]);
    let p = d.port();
    let token = d.token();
    let auth = format!("Authorization: Bearer {token}\r\n");

    // Duplicate Host: 400, even when both name the daemon.
    let r = raw_tcp(
        p,
        &format!("GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1:{p}\r\nHost: 127.0.0.1:{p}\r\n{auth}Connection: close\r\n\r\n"),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.json()["error_code"], "validation");
    let r = raw_tcp(
        p,
        &format!("GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1:{p}\r\nHost: evil.example\r\n{auth}Connection: close\r\n\r\n"),
    );
    assert_eq!(r.status, 400);

    // Absolute-form URI naming another authority: 400; naming ours: fine.
    let r = raw_tcp(
        p,
        &format!("GET http://evil.example/v1/health HTTP/1.1\r\nHost: 127.0.0.1:{p}\r\n{auth}Connection: close\r\n\r\n"),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    let r = raw_tcp(
        p,
        &format!("GET http://127.0.0.1:{p}/v1/health HTTP/1.1\r\nHost: 127.0.0.1:{p}\r\n{auth}Connection: close\r\n\r\n"),
    );
    assert_eq!(r.status, 200, "{}", r.body);

    // Duplicate Origin: 403, even when both are the daemon's own.
    let r = raw_tcp(
        p,
        &format!("GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1:{p}\r\nOrigin: http://127.0.0.1:{p}\r\nOrigin: http://127.0.0.1:{p}\r\n{auth}Connection: close\r\n\r\n"),
    );
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.json()["error_code"], "permission_denied");

    // An Authorization header that is present but undecodable decides alone: 401,
    // whatever ?token= says. Raw bytes, as an attacker would send them.
    let mut s = TcpStream::connect(("127.0.0.1", p)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut req =
        format!("GET /v1/events?token={token} HTTP/1.1\r\nHost: 127.0.0.1:{p}\r\nAuthorization: ")
            .into_bytes();
    req.extend_from_slice(b"Bearer \xff\xfe\x80");
    req.extend_from_slice(b"\r\nConnection: close\r\n\r\n");
    s.write_all(&req).unwrap();
    let text = String::from_utf8_lossy(&read_some(&mut s)).to_string();
    assert!(text.starts_with("HTTP/1.1 401"), "{text}");
    for bad in ["Basic dXNlcjpwYXNz", "Bearer", "token-without-scheme"] {
        let r = raw_tcp(
            p,
            &format!("GET /v1/events?token={token} HTTP/1.1\r\nHost: 127.0.0.1:{p}\r\nAuthorization: {bad}\r\nConnection: close\r\n\r\n"),
        );
        assert_eq!(r.status, 401, "Authorization: {bad} was accepted");
    }
    // The query token alone still works on an event stream (EventSource), and a
    // refused request closes its connection.
    let mut s = TcpStream::connect(("127.0.0.1", p)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    s.write_all(
        format!("GET /v1/events?token={token} HTTP/1.1\r\nHost: 127.0.0.1:{p}\r\n\r\n").as_bytes(),
    )
    .unwrap();
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let r = raw_tcp(
        p,
        &format!("GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1:{p}\r\n\r\n"),
    );
    assert_eq!(r.status, 401);
    assert_eq!(r.header("connection").as_deref(), Some("close"));
}

// ---- 4. Limits on every input, the same on every transport ----

#[test]
fn oversized_messages_are_refused_on_http_websocket_and_mcp_and_nothing_is_lost() {
    let home = Home::new();
    write_config(&home, "[mcp]\ncaps = \"write\"\n");
    let d = home.serve(&[]);
    let work = tempfile::tempdir().unwrap();
    let id = start_session(&d, work.path().to_str().unwrap());
    let before = journal_bytes(&home, &id);

    // HTTP: one byte over the 1 MiB text limit.
    let text = "a".repeat(1024 * 1024 + 1);
    let r = d.post(
        &format!("/v1/sessions/{id}/messages"),
        &json!({ "text": text }).to_string(),
    );
    assert_eq!(r.status, 400, "{}", &r.body[..r.body.len().min(300)]);
    assert_eq!(r.json()["error_code"], "validation");
    assert!(r.json()["error_message"]
        .as_str()
        .unwrap()
        .contains("max_message_bytes"));
    // A body over the request limit is 413 before it is read.
    let r =
        crate::support::post_declaring(&d, &format!("/v1/sessions/{id}/messages"), 3 * 1024 * 1024);
    assert_eq!(r.status, 413);

    // MCP: the same limit, the same code.
    let p = d.port();
    let body = json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"r1_session_send","arguments":{"session_id": id, "text": text}}}).to_string();
    let r = raw_tcp(
        p,
        &format!(
            "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{p}\r\nAuthorization: Bearer {}\r\nMCP-Protocol-Version: 2025-11-25\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            d.token(),
            body.len()
        ),
    );
    let answer = r
        .body
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .unwrap_or(&r.body)
        .to_string();
    let v: Value = serde_json::from_str(&answer).unwrap_or_else(|_| panic!("{}", r.body));
    assert_eq!(
        v["result"]["structuredContent"]["error_code"], "validation",
        "{v}"
    );

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        use futures_util::{SinkExt, StreamExt};
        use tokio_tungstenite::tungstenite::Message;
        // WS: the text limit gives the same validation error.
        let mut ws = ws_connect(&d).await;
        let v = ws_call(
            &mut ws,
            1,
            "session.send",
            json!({"session_id": id, "text": text}),
        )
        .await;
        assert_eq!(v["error"]["data"]["error_code"], "validation", "{v}");
        // An 8 MB message closes the socket with 1009 (message too big).
        let huge = json!({"jsonrpc":"2.0","id":2,"method":"session.send","params":{"session_id": id, "text": "c".repeat(8 << 20)}}).to_string();
        let _ = ws.send(Message::Text(huge.into())).await;
        let mut code = None;
        while let Ok(Some(m)) = tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
            match m {
                Ok(Message::Close(Some(f))) => {
                    code = Some(u16::from(f.code));
                    break;
                }
                Ok(_) => continue,
                Err(_) => break,
            }
        }
        assert_eq!(code, Some(1009), "the oversized message was not refused");
    });

    // Nothing reached the journal, and the session still works.
    assert_eq!(journal_bytes(&home, &id), before, "the journal changed");
    let r = d.post(
        &format!("/v1/sessions/{id}/messages"),
        &json!({ "text": "still here" }).to_string(),
    );
    assert_eq!(r.status, 202, "{}", r.body);
}

#[test]
fn names_and_titles_are_bounded() {
    let home = Home::new();
    let d = home.serve(&[]);
    let work = tempfile::tempdir().unwrap();
    let w = work.path().to_str().unwrap();
    let cases = [
        json!({"workdir": w, "model": "m".repeat(900 * 1024)}),
        json!({"workdir": w, "model": "gpt-4o\nX-Injected: 1"}),
        json!({"workdir": w, "model": ""}),
        json!({"workdir": w, "engine": "e".repeat(65)}),
        json!({"workdir": w, "engine": "echo; rm -rf /"}),
        json!({"workdir": w, "title": "t".repeat(501)}),
        json!({"workdir": w, "title": "a\u{1b}[31mred"}),
    ];
    for c in cases {
        let r = d.post("/v1/sessions", &c.to_string());
        assert_eq!(
            r.status,
            400,
            "accepted: {}",
            &c.to_string()[..80.min(c.to_string().len())]
        );
        assert_eq!(r.json()["error_code"], "validation");
    }
    let list = d.get("/v1/sessions").json();
    assert_eq!(list["sessions"].as_array().unwrap().len(), 0, "{list}");
    // Real names pass.
    let r = d.post(
        "/v1/sessions",
        &json!({"workdir": w, "model": "meta-llama/Llama-3.1-8B-Instruct:free", "title": "fix the OOM — ünïcode ok"}).to_string(),
    );
    assert_eq!(r.status, 201, "{}", r.body);
}

#[test]
fn subscribers_are_capped_per_session_with_a_clear_error() {
    let home = Home::new();
    write_config(
        &home,
        "[limits]\nmax_subscribers_per_session = 4\nmax_subscribers = 6\n",
    );
    let d = home.serve(&[]);
    let work = tempfile::tempdir().unwrap();
    let id = start_session(&d, work.path().to_str().unwrap());
    let p = d.port();
    let token = d.token();
    let open = |path: &str| {
        let mut s = TcpStream::connect(("127.0.0.1", p)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{p}\r\nAuthorization: Bearer {token}\r\n\r\n")
                .as_bytes(),
        )
        .unwrap();
        let mut buf = [0u8; 2048];
        let n = s.read(&mut buf).unwrap();
        (s, String::from_utf8_lossy(&buf[..n]).to_string())
    };
    let events = format!("/v1/sessions/{id}/events");
    let mut streams = Vec::new();
    for _ in 0..4 {
        let (s, head) = open(&events);
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        streams.push(s);
    }
    let refused = |path: &str| {
        let r = d.get(path);
        assert_eq!(r.status, 429, "{}", r.body);
        assert_eq!(r.json()["error_code"], "budget_exceeded");
        r.json()["error_message"].as_str().unwrap().to_string()
    };
    assert!(refused(&events).contains("max_subscribers_per_session"));
    // The WebSocket counts against the same limit.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut ws = ws_connect(&d).await;
        let v = ws_call(&mut ws, 1, "subscribe", json!({"session_id": id})).await;
        assert_eq!(v["error"]["data"]["error_code"], "budget_exceeded", "{v}");
    });
    // The daemon-wide cap: two bus streams fill it.
    let (b1, h1) = open("/v1/events");
    let (_b2, h2) = open("/v1/events");
    assert!(h1.starts_with("HTTP/1.1 200") && h2.starts_with("HTTP/1.1 200"));
    assert!(refused("/v1/events").contains("max_subscribers)"));
    drop(b1);
    // A reader that leaves gives its place back, even on an idle session.
    drop(streams.pop());
    wait_until(Duration::from_secs(5), "a freed subscriber place", || {
        let (_s, head) = open(&events);
        head.starts_with("HTTP/1.1 200")
    });
}

// ---- 6. Local file trust ----

#[test]
fn an_untrusted_token_file_fails_closed() {
    // A symlink, even to a private file of ours.
    let home = Home::new();
    drop(home.serve(&[]));
    let real = home._dir.path().join("elsewhere");
    std::fs::copy(home.path.join("token"), &real).unwrap();
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::remove_file(home.path.join("token")).unwrap();
    std::os::unix::fs::symlink(&real, home.path.join("token")).unwrap();
    let out = home.run(&["serve"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("symlink") && err.contains("rm "), "{err}");
    assert!(crate::support::serve_pids(&home.path).is_empty());

    // Readable by others.
    std::fs::remove_file(home.path.join("token")).unwrap();
    std::fs::write(home.path.join("token"), "a".repeat(64)).unwrap();
    std::fs::set_permissions(
        home.path.join("token"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let out = home.run(&["serve"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("chmod 600"));

    // Owned by another user (needs root to arrange).
    if unsafe { libc::geteuid() } == 0 {
        std::fs::set_permissions(
            home.path.join("token"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        std::os::unix::fs::chown(home.path.join("token"), Some(65534), Some(65534)).unwrap();
        let out = home.run(&["serve"]);
        assert_eq!(out.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&out.stderr).contains("owned by uid 65534"));
        std::os::unix::fs::chown(home.path.join("token"), Some(0), Some(0)).unwrap();
    }

    // --token-file through a symlink.
    let src = home._dir.path().join("operator-token");
    std::fs::write(&src, "b".repeat(40)).unwrap();
    std::fs::set_permissions(&src, std::fs::Permissions::from_mode(0o600)).unwrap();
    let link = home._dir.path().join("operator-link");
    std::os::unix::fs::symlink(&src, &link).unwrap();
    let out = home.run(&["serve", "--token-file", link.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("symlink"));

    // The fix the message names works, and the token is kept.
    std::fs::set_permissions(
        home.path.join("token"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let d = home.serve(&[]);
    assert_eq!(d.token(), "a".repeat(64));
}

#[test]
fn temp_files_of_interrupted_writes_are_removed_at_start() {
    let home = Home::new();
    drop(home.serve(&[]));
    let stray = [
        ".token.0123456789ab.tmp",
        ".daemon.json.abcdef012345.tmp",
        ".sessions-index.json.00aa11bb22cc.tmp",
    ];
    for name in stray {
        std::fs::write(home.path.join(name), "partial").unwrap();
    }
    std::fs::write(home.path.join("notes.tmp"), "mine").unwrap();
    let _d = home.serve(&[]);
    for name in stray {
        assert!(!home.path.join(name).exists(), "{name} is still there");
    }
    assert!(
        home.path.join("notes.tmp").exists(),
        "a file r1 did not make was removed"
    );
}

// ---- 7. A model engine without a model ----

#[test]
fn a_model_engine_without_a_model_is_refused_at_start() {
    let home = Home::new();
    write_config(
        &home,
        "[engines.oa]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\napi_key_env = \"R1_TEST_NO_KEY\"\n",
    );
    let d = home.serve_env(&[], &[("OPENAI_MODEL", "")]);
    let work = tempfile::tempdir().unwrap();
    let w = work.path().to_str().unwrap();
    let r = d.post(
        "/v1/sessions",
        &json!({"workdir": w, "engine": "oa"}).to_string(),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    let msg = r.json()["error_message"].as_str().unwrap().to_string();
    assert!(
        msg.contains("needs a model") && msg.contains("[engines.oa]"),
        "{msg}"
    );
    assert_eq!(d.get("/v1/sessions").json()["sessions"], json!([]));
    let r = d.post(
        "/v1/sessions",
        &json!({"workdir": w, "engine": "oa", "model": "gpt-4o-mini"}).to_string(),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    // The CLI says the same.
    let out = home.run(&["ctl", "sessions", "start", "--workdir", w, "--engine", "oa"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs a model"));
}

// ---- 8. SIGHUP ----

#[test]
fn sighup_is_logged_and_ignored() {
    let home = Home::new();
    let mut d = home.serve(&[]);
    let work = tempfile::tempdir().unwrap();
    let id = start_session(&d, work.path().to_str().unwrap());
    unsafe {
        libc::kill(d.pid() as i32, libc::SIGHUP);
    }
    let log = home._dir.path().join("serve.stderr");
    wait_until(Duration::from_secs(5), "the SIGHUP log line", || {
        std::fs::read_to_string(&log).is_ok_and(|s| s.contains("SIGHUP"))
    });
    assert!(crate::support::alive(d.pid()));
    assert_eq!(d.get(&format!("/v1/sessions/{id}")).status, 200);
    assert!(home.registration().is_some());
    // A second one too, then a clean stop.
    unsafe {
        libc::kill(d.pid() as i32, libc::SIGHUP);
        libc::kill(d.pid() as i32, libc::SIGTERM);
    }
    let (code, _) = d.wait_exit(Duration::from_secs(10)).expect("no exit");
    assert_eq!(code, 0);
    assert!(home.registration().is_none(), "stale daemon.json");
}

// ---- 9. The curl examples of the deployment guide ----

fn curl(d: &Daemon, args: &[&str]) -> (u16, Value) {
    let out = Command::new("curl")
        .args(["-sS", "-o", "-", "-w", "\n%{http_code}", "-H"])
        .arg(format!("Authorization: Bearer {}", d.token()))
        .args(args)
        .output()
        .expect("curl is needed by the test suite");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (
        code.trim().parse().unwrap(),
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

#[test]
fn the_curl_examples_of_the_deployment_guide_work() {
    let home = Home::new();
    let d = home.serve(&[]);
    let base = format!("http://127.0.0.1:{}", d.port());
    let work = tempfile::tempdir().unwrap();
    let w = work.path().to_str().unwrap();
    // `curl -d` sends application/x-www-form-urlencoded.
    let (code, v) = curl(
        &d,
        &[
            &format!("{base}/v1/sessions"),
            "-d",
            &json!({"workdir": w}).to_string(),
        ],
    );
    assert_eq!(code, 201, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    let (code, v) = curl(&d, &[&format!("{base}/v1/sessions")]);
    assert_eq!(code, 200);
    assert_eq!(v["sessions"][0]["id"], id.as_str());
    let (code, v) = curl(
        &d,
        &["-X", "POST", &format!("{base}/v1/sessions/{id}/pause")],
    );
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["state"], "paused");
    let (code, v) = curl(
        &d,
        &["-X", "POST", &format!("{base}/v1/sessions/{id}/resume")],
    );
    assert_eq!(code, 200, "{v}");
    let (code, v) = curl(&d, &["-X", "DELETE", &format!("{base}/v1/sessions/{id}")]);
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["state"], "ended");
    // Read-your-writes: every client sees it ended.
    assert_eq!(
        d.get(&format!("/v1/sessions/{id}")).json()["state"],
        "ended"
    );

    // What stays refused: a body that is not JSON, under any label; text/plain (what
    // a cross-site form may send); and a form post to the one route without a bearer.
    let r = request(
        &d,
        "POST",
        "/v1/sessions",
        Some("text/plain"),
        &json!({"workdir": w}).to_string(),
    );
    assert_eq!(r.status, 415);
    let r = request(
        &d,
        "POST",
        "/v1/sessions",
        Some("application/x-www-form-urlencoded"),
        "workdir=%2Ftmp",
    );
    assert_eq!(r.status, 400);
    let r = raw_tcp(
        d.port(),
        &format!(
            "POST /v1/auth/exchange HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 13\r\nConnection: close\r\n\r\n{{\"code\":\"x\"}}",
            d.port()
        ),
    );
    assert_eq!(r.status, 415);
    // A bodiless mutation without the bearer is still 401 on TCP.
    let r = raw_tcp(
        d.port(),
        &format!(
            "DELETE /v1/sessions/{id} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
            d.port()
        ),
    );
    assert_eq!(r.status, 401);
    assert_eq!(
        d.get("/v1/sessions").json()["sessions"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

// ---- 10. No colour codes in logs that are not a terminal ----

#[test]
fn logs_to_a_file_or_a_pipe_have_no_colour_codes() {
    let home = Home::new();
    let d = home.serve(&[]);
    let work = tempfile::tempdir().unwrap();
    start_session(&d, work.path().to_str().unwrap());
    drop(d);
    let stderr = std::fs::read(home._dir.path().join("serve.stderr")).unwrap();
    assert!(!stderr.is_empty());
    assert!(!stderr.contains(&0x1b), "ANSI escape in the stderr log");
    let mut files = 0;
    for e in std::fs::read_dir(home.path.join("logs")).unwrap().flatten() {
        let bytes = std::fs::read(e.path()).unwrap();
        assert!(
            !bytes.contains(&0x1b),
            "ANSI escape in {}",
            e.path().display()
        );
        files += 1;
    }
    assert!(files > 0);
}

// ---- 5. Corruption in the middle of a journal ----

/// Sends `n` messages one after another, each waiting for its turn to end.
fn converse(d: &Daemon, id: &str, n: usize) {
    for i in 0..n {
        let r = d.post(
            &format!("/v1/sessions/{id}/messages"),
            &json!({ "text": format!("message {i}: {}", "x".repeat(2000)) }).to_string(),
        );
        assert_eq!(r.status, 202, "{}", r.body);
        wait_until(Duration::from_secs(20), "the turn to end", || {
            d.get(&format!("/v1/sessions/{id}")).json()["state"] == "idle"
        });
    }
}

#[test]
fn a_byte_changed_mid_journal_quarantines_the_session_until_it_is_repaired() {
    let home = Home::new();
    let mut d = home.serve(&[]);
    let work = tempfile::tempdir().unwrap();
    let w = work.path().to_str().unwrap();
    let id = start_session(&d, w);
    let other = start_session(&d, w);
    converse(&d, &id, 40);
    converse(&d, &other, 2);
    unsafe { libc::kill(d.pid() as i32, libc::SIGTERM) };
    d.wait_exit(Duration::from_secs(10)).expect("no exit");

    // Change one byte inside a record's text, far from the end: still valid JSON, so
    // only the record's checksum can tell.
    let path = home.path.join("sessions").join(&id).join("journal.ndjson");
    let mut bytes = std::fs::read(&path).unwrap();
    let lines: Vec<usize> = std::iter::once(0)
        .chain(
            bytes
                .iter()
                .enumerate()
                .filter(|(_, b)| **b == b'\n')
                .map(|(i, _)| i + 1),
        )
        .collect();
    let total = lines.len() - 1;
    let victim = total / 3; // 0-based line index: record seq victim+1
    let line = &bytes[lines[victim]..lines[victim + 1]];
    let seq_of_victim: Value = serde_json::from_slice(line).unwrap();
    let victim_seq = seq_of_victim["seq"].as_u64().unwrap();
    let at = lines[victim]
        + line
            .windows(3)
            .position(|w| w == b"xxx")
            .expect("a message record");
    assert!(
        bytes.len() - at > 64 * 1024,
        "the change must be far from the tail"
    );
    bytes[at] = b'y';
    std::fs::write(&path, &bytes).unwrap();
    let corrupt = bytes.clone();

    let d = home.serve(&[]);
    // Quarantined, with a message that says what to do.
    let v = d.get(&format!("/v1/sessions/{id}")).json();
    assert_eq!(v["state"], "error", "{v}");
    let err = v["error"].as_str().unwrap();
    assert!(
        err.contains("quarantined") && err.contains("repair"),
        "{err}"
    );
    assert_eq!(v["last_seq"], victim_seq - 1);
    // Readable up to the last good record, over the journal route and a stream.
    let recs = crate::sessions::records(&d, &id);
    assert_eq!(recs.len() as u64, victim_seq - 1);
    assert!(recs
        .iter()
        .enumerate()
        .all(|(i, r)| r["seq"] == i as u64 + 1));
    let sse = raw_tcp(
        d.port(),
        &format!(
            "GET /v1/sessions/{id}/events?since_seq={} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
            victim_seq - 5,
            d.port(),
            d.token()
        ),
    );
    assert_eq!(sse.status, 200);
    assert!(sse.body.contains(&format!("id: {}\n", victim_seq - 1)));
    assert!(!sse.body.contains(&format!("id: {victim_seq}\n")));
    // Writes are refused with crash_recovery, and the file is untouched.
    let r = d.post(
        &format!("/v1/sessions/{id}/messages"),
        &json!({"text": "hello?"}).to_string(),
    );
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.json()["error_code"], "crash_recovery");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        corrupt,
        "the corrupt journal changed"
    );
    // Other sessions are unaffected.
    // (It was idle at the shutdown: idle again.)
    let v = d.get(&format!("/v1/sessions/{other}")).json();
    assert_eq!(v["state"], "idle", "{v}");
    assert_eq!(
        d.post(&format!("/v1/sessions/{other}/resume"), "{}").status,
        200
    );
    converse(&d, &other, 1);

    // Repair through the CLI: a .broken copy of the whole file, the journal cut back.
    let r = home.run_json(&["ctl", "sessions", "repair", &id]);
    assert_eq!(r["repaired"], true, "{r}");
    assert_eq!(r["last_seq"], victim_seq - 1);
    assert!(r["dropped_bytes"].as_u64().unwrap() > 0);
    let copy = r["broken_copy"].as_str().unwrap();
    assert_eq!(
        std::fs::read(copy).unwrap(),
        corrupt,
        "the copy is not the damaged file"
    );
    // Cut back mid-turn it comes back paused (the turn closed as interrupted); cut
    // back between turns, idle.
    let state = r["session"]["state"].clone();
    assert!(state == "paused" || state == "idle", "{r}");
    // The session works again, its seqs continuing from the last good record.
    assert_eq!(
        d.post(&format!("/v1/sessions/{id}/resume"), "{}").status,
        200
    );
    converse(&d, &id, 1);
    let recs = crate::sessions::records(&d, &id);
    assert!(recs
        .iter()
        .enumerate()
        .all(|(i, r)| r["seq"] == i as u64 + 1));
    assert!(recs.len() as u64 > victim_seq);
    // Repairing a healthy session changes nothing; an unknown one is not_found.
    let again = home.run_json(&["ctl", "sessions", "repair", &id]);
    assert_eq!(again["repaired"], false, "{again}");
    let r = d.post("/v1/sessions/ses_0000000000000000/repair", "");
    assert_eq!(r.status, 404);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut ws = ws_connect(&d).await;
        let v = ws_call(&mut ws, 1, "session.repair", json!({"session_id": id})).await;
        assert_eq!(v["result"]["repaired"], false, "{v}");
        assert_eq!(v["result"]["session"]["id"], id.as_str());
    });
    // And it survives a restart clean.
    drop(d);
    let d = home.serve(&[]);
    assert_eq!(d.get(&format!("/v1/sessions/{id}")).json()["state"], "idle");
}
