//! Issue 2: the perimeter table of DESIGN §4, on the real TCP listener.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use crate::support::*;

fn get_with_host(d: &Daemon, host: &str) -> Resp {
    let token = d.token();
    let host_line = if host.is_empty() {
        "Host:\r\n".to_string()
    } else {
        format!("Host: {host}\r\n")
    };
    raw_tcp(
        d.port(),
        &format!("GET /v1/health HTTP/1.1\r\n{host_line}Authorization: Bearer {token}\r\nConnection: close\r\n\r\n"),
    )
}

#[test]
fn host_pin() {
    let home = Home::new();
    let d = home.serve(&[]);
    let p = d.port();
    for ok in [
        format!("127.0.0.1:{p}"),
        format!("localhost:{p}"),
        format!("LocalHost:{p}"),
        format!("[::1]:{p}"),
    ] {
        assert_eq!(get_with_host(&d, &ok).status, 200, "{ok} should pass");
    }
    let other = p.wrapping_add(1);
    for bad in [
        String::new(),
        format!(":{p}"),
        format!("0.0.0.0:{p}"),
        format!("localhost6:{p}"),
        format!("localhost.:{p}"),
        format!("evil.com:{p}"),
        format!("127.1:{p}"),
        format!("[::ffff:127.0.0.1]:{p}"),
        format!("foo.localhost:{p}"),
        format!("127.0.0.1:{other}"),
        "127.0.0.1".to_string(),
        "localhost".to_string(),
    ] {
        let r = get_with_host(&d, &bad);
        assert_eq!(r.status, 403, "Host {bad:?} should be refused");
        assert_eq!(r.json()["error_code"], "permission_denied");
    }
    // No Host header at all.
    let r = raw_tcp(
        p,
        &format!(
            "GET /v1/health HTTP/1.0\r\nAuthorization: Bearer {}\r\n\r\n",
            d.token()
        ),
    );
    assert_eq!(r.status, 403);
}

fn get_with_origin(d: &Daemon, origin: &str, path: &str) -> Resp {
    let p = d.port();
    raw_tcp(
        p,
        &format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{p}\r\nOrigin: {origin}\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
            d.token()
        ),
    )
}

fn ws_request(d: &Daemon, origin: Option<&str>, protocols: &str, auth: Option<&str>) -> Resp {
    let p = d.port();
    let mut req = format!(
        "GET /v1/ws HTTP/1.1\r\nHost: 127.0.0.1:{p}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    );
    if let Some(o) = origin {
        req.push_str(&format!("Origin: {o}\r\n"));
    }
    if !protocols.is_empty() {
        req.push_str(&format!("Sec-WebSocket-Protocol: {protocols}\r\n"));
    }
    if let Some(a) = auth {
        req.push_str(&format!("Authorization: Bearer {a}\r\n"));
    }
    req.push_str("\r\n");
    raw_tcp(p, &req)
}

#[test]
fn origin_checks_on_http_and_websocket() {
    let home = Home::new();
    std::fs::create_dir_all(&home.path).unwrap();
    std::fs::set_permissions(&home.path, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::write(
        home.path.join("daemon.toml"),
        "[perimeter]\nallowed_origins = [\"http://127.0.0.1:9\"]\n",
    )
    .unwrap();
    let d = home.serve(&[]);
    let p = d.port();
    let token = d.token();
    assert_eq!(
        get_with_origin(&d, &format!("http://127.0.0.1:{p}"), "/v1/health").status,
        200
    );
    assert_eq!(
        get_with_origin(&d, &format!("http://localhost:{p}"), "/v1/health").status,
        200
    );
    let allowed = get_with_origin(&d, "http://127.0.0.1:9", "/v1/health");
    assert_eq!(allowed.status, 200);
    assert_eq!(
        allowed.header("access-control-allow-origin").as_deref(),
        Some("http://127.0.0.1:9")
    );
    for bad in [
        "null",
        "http://evil.com",
        "http://127.0.0.1:9/",
        "https://127.0.0.1:9",
        &format!("http://127.0.0.1:{}", p + 1),
    ] {
        let r = get_with_origin(&d, bad, "/v1/health");
        assert_eq!(r.status, 403, "Origin {bad} should be refused");
        assert!(r.header("access-control-allow-origin").is_none());
        let ws = ws_request(
            &d,
            Some(bad),
            &format!("r1.proto.v1, r1.bearer, {token}"),
            None,
        );
        assert_eq!(
            ws.status, 403,
            "WebSocket from {bad} should be refused before the upgrade"
        );
    }
    // Own origin over WebSocket is fine.
    let ws = ws_request(
        &d,
        Some(&format!("http://127.0.0.1:{p}")),
        &format!("r1.proto.v1, r1.bearer, {token}"),
        None,
    );
    assert_eq!(ws.status, 101);

    // Preflight: allowlisted origin gets the CORS allow; a foreign one gets none.
    let pre = |origin: &str| {
        raw_tcp(
            p,
            &format!("OPTIONS /v1/shutdown HTTP/1.1\r\nHost: 127.0.0.1:{p}\r\nOrigin: {origin}\r\nAccess-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: authorization, content-type\r\nConnection: close\r\n\r\n"),
        )
    };
    let ok = pre("http://127.0.0.1:9");
    assert_eq!(ok.status, 204);
    assert_eq!(
        ok.header("access-control-allow-origin").as_deref(),
        Some("http://127.0.0.1:9")
    );
    assert!(ok
        .header("access-control-allow-headers")
        .unwrap()
        .contains("authorization"));
    let bad = pre("http://evil.com");
    assert_eq!(bad.status, 403);
    assert!(bad.header("access-control-allow-origin").is_none());
    assert!(bad.header("access-control-allow-methods").is_none());
}

#[test]
fn credentials_and_content_type() {
    let home = Home::new();
    let mut d = home.serve(&[]);
    let p = d.port();
    let token = d.token();
    let req = |auth: &str, path: &str| {
        raw_tcp(
            p,
            &format!(
                "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{p}\r\n{auth}Connection: close\r\n\r\n"
            ),
        )
    };
    // Missing, wrong, and malformed credentials: uniform 401 with the challenge.
    for auth in [
        String::new(),
        "Authorization: Bearer nope\r\n".to_string(),
        format!("Authorization: Bearer {}x\r\n", token),
        format!("Authorization: Basic {token}\r\n"),
        format!("Authorization: bearer{token}\r\n"),
    ] {
        let r = req(&auth, "/v1/health");
        assert_eq!(r.status, 401, "{auth:?}");
        assert_eq!(
            r.header("www-authenticate").as_deref(),
            Some("Bearer realm=\"r1\"")
        );
        let env = r.json();
        assert_eq!(env["ok"], false);
        assert_eq!(env["links"]["self"], "/v1/health");
    }
    // Every route is behind the credential, unknown ones included.
    assert_eq!(req("", "/v1/handshake").status, 401);
    assert_eq!(req("", "/v1/metrics").status, 401);
    assert_eq!(req("", "/v1/nothing").status, 401);
    assert_eq!(
        req(&format!("Authorization: Bearer {token}\r\n"), "/v1/nothing").status,
        404
    );

    // Query token: refused on non-stream routes, accepted on the event stream.
    assert_eq!(req("", &format!("/v1/health?token={token}")).status, 401);
    let ev = req("", &format!("/v1/events?token={token}"));
    assert_eq!(ev.status, 200);
    assert!(ev
        .header("content-type")
        .unwrap()
        .starts_with("text/event-stream"));
    assert!(ev.body.contains("event: daemon.started"), "{}", ev.body);
    // With an Authorization header present, the query token does not count.
    assert_eq!(
        req(
            "Authorization: Bearer wrong\r\n",
            &format!("/v1/events?token={token}")
        )
        .status,
        401
    );

    // A text/plain or multipart POST is refused with 415 and changes nothing. (curl's
    // default form type is accepted for a JSON body: see hardening.rs.)
    for ct in ["text/plain", "multipart/form-data; boundary=x"] {
        let r = raw_tcp(
            p,
            &format!("POST /v1/shutdown HTTP/1.1\r\nHost: 127.0.0.1:{p}\r\nAuthorization: Bearer {token}\r\nContent-Type: {ct}\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"),
        );
        assert_eq!(r.status, 415, "{ct}");
        assert_eq!(r.json()["error_code"], "validation");
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(alive(d.pid()), "a text/plain POST stopped the daemon");
    assert_eq!(d.get("/v1/health").status, 200);

    // Malformed JSON and oversized bodies get envelopes.
    let r = d.post("/v1/shutdown", "{not json");
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error_code"], "validation");
    let r = post_declaring(&d, "/v1/shutdown", 2 * 1024 * 1024 + 100);
    assert_eq!(r.status, 413);
    assert!(alive(d.pid()));

    // Security headers on every answer.
    let r = d.get("/v1/health");
    assert!(r
        .header("content-security-policy")
        .unwrap()
        .contains("frame-ancestors 'none'"));
    assert_eq!(r.header("referrer-policy").as_deref(), Some("no-referrer"));
    assert_eq!(
        r.header("x-content-type-options").as_deref(),
        Some("nosniff")
    );

    // Metrics count the requests by route and status.
    let m = d.get("/v1/metrics");
    assert_eq!(m.status, 200);
    assert!(
        m.body
            .contains("r1_requests_total{method=\"GET\",route=\"/v1/health\",status=\"200\"}"),
        "{}",
        m.body
    );
    assert!(m.body.contains("r1_request_duration_seconds_bucket"));
    assert!(m.body.contains("r1_live_sessions 0"));
    assert!(m
        .body
        .contains("r1_perimeter_rejections_total{reason=\"token\"}"));

    // And a JSON POST /v1/shutdown stops it cleanly.
    assert_eq!(d.post("/v1/shutdown", "{\"grace_s\": 1}").status, 200);
    assert_eq!(d.wait_exit(Duration::from_secs(10)).unwrap().0, 0);
    assert!(home.registration().is_none());
}

#[test]
fn websocket_subprotocol_auth() {
    let home = Home::new();
    let d = home.serve(&[]);
    let token = d.token();
    let ok = ws_request(&d, None, &format!("r1.proto.v1, r1.bearer, {token}"), None);
    assert_eq!(ok.status, 101);
    assert_eq!(
        ok.header("sec-websocket-protocol").as_deref(),
        Some("r1.proto.v1")
    );
    assert!(!ok.head.contains(&token), "the token was echoed");
    assert_eq!(
        ws_request(&d, None, "r1.proto.v1, r1.bearer, wrong", None).status,
        401
    );
    assert_eq!(ws_request(&d, None, "r1.proto.v1", None).status, 401);
    assert_eq!(
        ws_request(&d, None, "r1.proto.v1", Some(&token)).status,
        101
    );

    // A JSON-RPC round trip and a bus subscription over a real WebSocket client.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use futures_util::{SinkExt, StreamExt};
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        use tokio_tungstenite::tungstenite::Message;
        let mut req = format!("ws://127.0.0.1:{}/v1/ws", d.port())
            .into_client_request()
            .unwrap();
        req.headers_mut().insert(
            "sec-websocket-protocol",
            format!("r1.proto.v1, r1.bearer, {token}").parse().unwrap(),
        );
        let (mut ws, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
        assert_eq!(resp.headers()["sec-websocket-protocol"], "r1.proto.v1");
        ws.send(Message::text(
            r#"{"jsonrpc":"2.0","id":1,"method":"daemon.info"}"#,
        ))
        .await
        .unwrap();
        ws.send(Message::text(
            r#"{"jsonrpc":"2.0","id":2,"method":"subscribe","params":{}}"#,
        ))
        .await
        .unwrap();
        ws.send(Message::text(
            r#"{"jsonrpc":"2.0","id":3,"method":"no.such"}"#,
        ))
        .await
        .unwrap();
        let mut seen_info = false;
        let mut seen_started = false;
        let mut seen_unknown = false;
        while !(seen_info && seen_started && seen_unknown) {
            let m = tokio::time::timeout(Duration::from_secs(5), ws.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            let v: serde_json::Value = serde_json::from_str(m.to_text().unwrap()).unwrap();
            if v["id"] == 1 {
                assert_eq!(v["result"]["protocol"], "r1.proto.v1");
                seen_info = true;
            } else if v["id"] == 3 {
                assert_eq!(v["error"]["code"], -32601);
                seen_unknown = true;
            } else if v["method"] == "$/event" && v["params"]["record"]["kind"] == "daemon.started"
            {
                seen_started = true;
            }
        }
    });

    // A client asking only for an unknown protocol version is closed with 1002.
    rt.block_on(async {
        use futures_util::StreamExt;
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut req = format!("ws://127.0.0.1:{}/v1/ws", d.port())
            .into_client_request()
            .unwrap();
        req.headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        req.headers_mut()
            .insert("sec-websocket-protocol", "r1.proto.v2".parse().unwrap());
        // The handshake answers no subprotocol; tungstenite may reject that itself,
        // which is also a refusal. If it connects, the first frame must be a 1002 close.
        if let Ok((mut ws, _)) = tokio_tungstenite::connect_async(req).await {
            let m = tokio::time::timeout(Duration::from_secs(5), ws.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            match m {
                tokio_tungstenite::tungstenite::Message::Close(Some(f)) => {
                    assert_eq!(u16::from(f.code), 1002);
                    assert!(f.reason.contains("r1.proto.v1"));
                }
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    });
    // The raw handshake shows the refusal regardless of client library behaviour.
    let r = ws_request(&d, None, "r1.proto.v2", Some(&token));
    assert_eq!(r.status, 101);
    assert!(r.header("sec-websocket-protocol").is_none());
    assert!(
        r.body.contains("r1.proto.v1"),
        "no migration hint in the close frame"
    );
}

#[test]
fn unix_socket_refuses_other_uids() {
    let home = Home::new();
    let d = home.serve(&[]);
    let sock = d.sock();
    // The owner needs the token on the socket too: uid alone is not enough, since an
    // agent's sandboxed command runs as the owner but cannot read the token.
    // Only the handshake (the clients' probe) is served without it.
    let r = raw_unix(
        &sock,
        "GET /v1/sessions HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error_code"], "permission_denied");
    let r = raw_unix(
        &sock,
        "GET /v1/handshake HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    let with_token = format!(
        "GET /v1/sessions HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
        d.token()
    );
    let r = raw_unix(&sock, &with_token);
    assert_eq!(r.status, 200);
    // Open the path so another uid can reach the socket at all; the daemon's peer
    // credential check must still refuse it.
    std::fs::set_permissions(home._dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    std::fs::set_permissions(&home.path, std::fs::Permissions::from_mode(0o711)).unwrap();
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = std::process::Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "/usr/bin/curl",
            "-sS",
            "-m",
            "3",
            "--unix-socket",
        ])
        .arg(&sock)
        .arg("-H")
        .arg(format!("Authorization: Bearer {}", d.token()))
        .arg("http://localhost/v1/sessions")
        .output()
        .expect("setpriv and curl are needed for this test");
    assert!(
        !out.status.success(),
        "another uid was served: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("\"sessions\""));
    // The owner is still served.
    let r = raw_unix(&sock, &with_token);
    assert_eq!(r.status, 200);
}

fn mcp_post(d: &Daemon, extra_headers: &str, body: &str) -> Resp {
    let p = d.port();
    raw_tcp(
        p,
        &format!(
            "POST /mcp HTTP/1.1\r\n{extra_headers}Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
}

/// The JSON-RPC answer in an MCP HTTP response (plain JSON or one SSE `data:` line).
fn mcp_answer(r: &Resp) -> serde_json::Value {
    let text = r
        .body
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .unwrap_or(&r.body)
        .to_string();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON-RPC ({e}): {}", r.body))
}

#[test]
fn mcp_endpoint_sits_behind_the_perimeter() {
    let home = Home::new();
    let d = home.serve(&[]);
    let p = d.port();
    let token = d.token();
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"r1-test","version":"1"}}}"#;
    let host = format!("Host: 127.0.0.1:{p}\r\n");
    let auth = format!("Authorization: Bearer {token}\r\n");
    // No token, a foreign Host, a foreign Origin.
    assert_eq!(mcp_post(&d, &host, init).status, 401);
    assert_eq!(
        mcp_post(&d, &format!("Host: evil.com:{p}\r\n{auth}"), init).status,
        403
    );
    assert_eq!(
        mcp_post(
            &d,
            &format!("{host}{auth}Origin: http://evil.com\r\n"),
            init
        )
        .status,
        403
    );
    // With the token: initialize, list, call.
    let r = mcp_post(&d, &format!("{host}{auth}"), init);
    assert_eq!(r.status, 200, "{}", r.body);
    let v = mcp_answer(&r);
    assert_eq!(v["result"]["protocolVersion"], "2025-11-25", "{v}");
    let list = mcp_post(
        &d,
        &format!("{host}{auth}MCP-Protocol-Version: 2025-11-25\r\n"),
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{}}"#,
    );
    let names: Vec<String> = mcp_answer(&list)["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    assert!(names.contains(&"r1_session_list".to_string()));
    assert!(
        !names.contains(&"r1_session_start".to_string()),
        "default caps are read-only: {names:?}"
    );
    let call = mcp_post(
        &d,
        &format!("{host}{auth}MCP-Protocol-Version: 2025-11-25\r\n"),
        r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"r1_session_list","arguments":{}}}"#,
    );
    let v = mcp_answer(&call);
    assert_eq!(v["result"]["structuredContent"]["ok"], true, "{v}");
    assert!(v["result"]["structuredContent"]["data"]["sessions"].is_array());
    let denied = mcp_post(
        &d,
        &format!("{host}{auth}MCP-Protocol-Version: 2025-11-25\r\n"),
        r#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"r1_session_start","arguments":{"workdir":"/tmp"}}}"#,
    );
    assert_eq!(
        mcp_answer(&denied)["result"]["structuredContent"]["error_code"],
        "permission_denied"
    );
}

#[test]
fn browser_login_code_works_once_and_the_ui_is_served_without_a_token() {
    let home = Home::new();
    let d = home.serve(&[]);
    let p = d.port();
    let out = home.run(&["open", "--print-url"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let url = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        url.starts_with(&format!("http://127.0.0.1:{p}/#code=")),
        "{url}"
    );
    assert!(!url.contains(&d.token()), "the token is in the URL");
    let code = url.rsplit("#code=").next().unwrap().to_string();
    let exchange = |code: &str| {
        let body = format!("{{\"code\": \"{code}\"}}");
        raw_tcp(
            p,
            &format!("POST /v1/auth/exchange HTTP/1.1\r\nHost: 127.0.0.1:{p}\r\nOrigin: http://127.0.0.1:{p}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()),
        )
    };
    let r = exchange(&code);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["token"], d.token());
    let again = exchange(&code);
    assert_eq!(again.status, 401);
    assert!(again.json()["error_message"]
        .as_str()
        .unwrap()
        .contains("r1 open"));
    assert_eq!(exchange("0000").status, 401);
    // The UI itself needs no token, but still the Host pin, and carries the CSP.
    let page = raw_tcp(
        p,
        &format!("GET / HTTP/1.1\r\nHost: 127.0.0.1:{p}\r\nConnection: close\r\n\r\n"),
    );
    assert_eq!(page.status, 200);
    assert!(page
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    let csp = page.header("content-security-policy").unwrap();
    assert!(
        csp.contains("script-src 'self'")
            && !csp.contains("unsafe-inline")
            && csp.contains("frame-ancestors 'none'")
    );
    let rebound = raw_tcp(
        p,
        &format!("GET / HTTP/1.1\r\nHost: rebind.test:{p}\r\nConnection: close\r\n\r\n"),
    );
    assert_eq!(rebound.status, 403);
    let missing = raw_tcp(
        p,
        &format!("GET /nope.js HTTP/1.1\r\nHost: 127.0.0.1:{p}\r\nConnection: close\r\n\r\n"),
    );
    assert_eq!(missing.status, 404);
}
