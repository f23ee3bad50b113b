//! Session core, rebuilt: the daemon reuses its last TCP port, the `sessions/`
//! directory is the index, and `session.resume_all` on every surface.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use serde_json::{json, Value};

use crate::sessions::start;
use crate::support::*;

fn shutdown_with_ctl(home: &Home, d: &mut Daemon) {
    let out = home.run_json(&["ctl", "shutdown"]);
    assert_eq!(out["ok"], true, "{out}");
    d.wait_exit(Duration::from_secs(20))
        .expect("the daemon did not exit after ctl shutdown");
}

fn health_ok(d: &Daemon) {
    let r = d.get("/v1/health");
    assert_eq!(r.status, 200, "{}", r.body);
}

#[test]
fn a_restarted_daemon_takes_its_last_port_unless_it_is_taken() {
    let home = Home::new();
    let mut d = home.serve(&[]);
    let first = d.port();
    health_ok(&d);
    shutdown_with_ctl(&home, &mut d);

    // The port is free: the next daemon takes it again, so an open tab reconnects.
    let mut d = home.serve(&[]);
    assert_eq!(d.port(), first, "the daemon did not reuse its last port");
    health_ok(&d);
    shutdown_with_ctl(&home, &mut d);

    // The port is taken by someone else: a random port, and everything still works.
    let squatter = std::net::TcpListener::bind(("127.0.0.1", first)).unwrap();
    let d = home.serve(&[]);
    assert_ne!(d.port(), first, "the daemon bound a port that is in use");
    health_ok(&d);
    let listed = home.run_json(&["ctl", "sessions", "list"]);
    assert!(listed["sessions"].is_array(), "{listed}");
    drop(squatter);
    // The new port is the one remembered now.
    let remembered = std::fs::read_to_string(home.path.join("last_port")).unwrap();
    assert_eq!(remembered.trim(), d.port().to_string());
    let mode = std::fs::metadata(home.path.join("last_port"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn the_sessions_directory_is_the_index() {
    let home = Home::new();
    let work = tempfile::tempdir().unwrap();
    let mut d = home.serve(&[]);
    // An index file left by an older daemon is retired on start.
    std::fs::write(home.path.join("sessions-index.json"), b"{}").unwrap();
    let ids: BTreeSet<String> = (0..3).map(|_| start(&d, work.path())).collect();
    // Creating a session writes its directory and journal, and nothing else.
    assert!(!home.path.join("sessions-index.json.tmp").exists());
    shutdown_with_ctl(&home, &mut d);
    let d = home.serve(&[]);
    assert!(!home.path.join("sessions-index.json").exists());
    let listed: BTreeSet<String> = d.get("/v1/sessions").json()["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(listed, ids);
}

fn ids_of(list: &Value) -> BTreeSet<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

pub(crate) fn state_of(d: &Daemon, id: &str) -> String {
    d.get(&format!("/v1/sessions/{id}")).json()["state"]
        .as_str()
        .unwrap()
        .to_string()
}

fn pause(d: &Daemon, id: &str) {
    let r = d.post(&format!("/v1/sessions/{id}/pause"), "{}");
    assert_eq!(r.json()["state"], "paused", "{}", r.body);
}

/// An MCP `tools/call` over the daemon's `/mcp`; returns the structured envelope.
pub(crate) fn mcp_call(d: &Daemon, tool: &str, args: Value) -> Value {
    let p = d.port();
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                      "params": {"name": tool, "arguments": args}})
    .to_string();
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
    v["result"]["structuredContent"].clone()
}

#[test]
fn resume_all_resumes_every_paused_session_on_every_surface() {
    let home = Home::new();
    std::fs::create_dir_all(&home.path).unwrap();
    std::fs::set_permissions(&home.path, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::write(home.path.join("daemon.toml"), "[mcp]\ncaps = \"write\"\n").unwrap();
    let work = tempfile::tempdir().unwrap();
    let mut d = home.serve(&[]);
    let (a, b, c, ended) = (
        start(&d, work.path()),
        start(&d, work.path()),
        start(&d, work.path()),
        start(&d, work.path()),
    );
    // Two paused by a client, one busy (the restart interrupts it, so it comes back
    // paused), one ended.
    pause(&d, &a);
    pause(&d, &b);
    let slow = d.post(
        &format!("/v1/sessions/{c}/messages"),
        &json!({"text": format!("/slow {}", "words ".repeat(200))}).to_string(),
    );
    assert_eq!(slow.status, 202, "{}", slow.body);
    wait_until(Duration::from_secs(10), "the slow turn to start", || {
        state_of(&d, &c) == "busy"
    });
    home.run_json(&["ctl", "sessions", "kill", &ended]);
    shutdown_with_ctl(&home, &mut d);

    let d = home.serve(&[]);
    for id in [&a, &b, &c] {
        assert_eq!(state_of(&d, id), "paused", "{id} did not come back paused");
    }
    assert_eq!(state_of(&d, &ended), "ended");

    // The CLI: neither an id nor --all, or both, is a clear usage error.
    let out = home.run(&["ctl", "sessions", "resume"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--all") || err.contains("<ID>"), "{err}");
    let out = home.run(&["ctl", "sessions", "resume", &a, "--all"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot be used with"), "{err}");

    // `r1 ctl sessions resume --all --json` resumes the three, and only them.
    let r = home.run_json(&["ctl", "sessions", "resume", "--all"]);
    assert_eq!(
        ids_of(&r["resumed"]),
        BTreeSet::from([a.clone(), b.clone(), c.clone()]),
        "{r}"
    );
    assert_eq!(r["failed"], json!([]), "{r}");
    for s in r["resumed"].as_array().unwrap() {
        assert_eq!(s["state"], "idle", "{s}");
    }
    for id in [&a, &b, &c] {
        assert_eq!(state_of(&d, id), "idle");
    }
    assert_eq!(state_of(&d, &ended), "ended");
    // The resumed sessions take messages again.
    let sent = d.post(
        &format!("/v1/sessions/{a}/messages"),
        &json!({"text": "back"}).to_string(),
    );
    assert_eq!(sent.status, 202, "{}", sent.body);

    // Nothing paused: nothing resumed, and that is fine.
    let none = home.run_json(&["ctl", "sessions", "resume", "--all"]);
    assert_eq!(none["resumed"], json!([]), "{none}");

    // HTTP.
    pause(&d, &b);
    let r = d.post("/v1/sessions/resume", "{}");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(ids_of(&r.json()["resumed"]), BTreeSet::from([b.clone()]));
    assert_eq!(state_of(&d, &b), "idle");
    // A bodiless POST works too (curl -X POST).
    let r = d.post("/v1/sessions/resume", "");
    assert_eq!(r.status, 200, "{}", r.body);

    // MCP.
    pause(&d, &c);
    let v = mcp_call(&d, "r1_session_resume_all", json!({}));
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(ids_of(&v["data"]["resumed"]), BTreeSet::from([c.clone()]));
    assert_eq!(v["data"]["failed"], json!([]), "{v}");
    assert_eq!(state_of(&d, &c), "idle");
    // The dotted alias reaches the same tool; unknown arguments are a validation error.
    let v = mcp_call(&d, "r1.session.resume.all", json!({}));
    assert_eq!(v["ok"], true, "{v}");
    let v = mcp_call(&d, "r1_session_resume_all", json!({"session_id": a}));
    assert_eq!(v["error_code"], "validation", "{v}");
}
