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

/// A copy of the `r1` binary at `dir/r1`, to run a daemon from and then replace.
fn copy_binary(dir: &std::path::Path) -> std::path::PathBuf {
    let exe = dir.join("r1");
    std::fs::copy(bin(), &exe).unwrap();
    exe
}

/// Replaces `exe` with `content` the way an installer does: a new file renamed over
/// the old path (the running daemon keeps its own image).
fn replace_file(exe: &std::path::Path, content: &[u8]) {
    let tmp = exe.with_extension("new");
    std::fs::write(&tmp, content).unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::rename(&tmp, exe).unwrap();
}

/// `r1 serve` run from `exe` (not the test's binary), registered.
fn serve_from(home: &Home, exe: &std::path::Path) -> Daemon {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(home._dir.path().join("serve.stderr"))
        .unwrap();
    // A file just written can be "busy" for a moment: another test thread's fork may
    // still hold its write descriptor until that child execs. Try again briefly.
    let mut tries = 0;
    let child = loop {
        let r = std::process::Command::new(exe)
            .args(["serve", "--log-level", "debug"])
            .env("R1_HOME", &home.path)
            .env_remove("R1_LOG")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(log.try_clone().unwrap())
            .spawn();
        match r {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && tries < 50 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            r => break r.unwrap(),
        }
    };
    let pid = child.id();
    let mut reg = Value::Null;
    wait_until(Duration::from_secs(20), "the daemon to register", || {
        reg = home.registration().unwrap_or(Value::Null);
        reg["pid"].as_u64() == Some(u64::from(pid))
    });
    Daemon {
        child: Some(child),
        home: home.path.clone(),
        reg,
    }
}

fn doctor_binary_check(home: &Home) -> Value {
    let out = home.run(&["doctor", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "binary")
        .cloned()
        .unwrap_or_else(|| panic!("no binary check: {v}"))
}

#[test]
fn a_restart_onto_a_rebuilt_binary_keeps_followers_sessions_and_the_port() {
    let home = Home::new();
    let bindir = tempfile::tempdir().unwrap();
    let exe = copy_binary(bindir.path());
    let old = serve_from(&home, &exe);
    let port = old.port();
    let work = tempfile::tempdir().unwrap();
    let id = start(&old, work.path());
    assert_eq!(doctor_binary_check(&home)["ok"], true);

    // A follower attached from the first record, as a child process.
    let mut follower = home
        .cmd(&["ctl", "sessions", "follow", &id, "--json"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let out = follower.stdout.take().unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Value>::new()));
    let reader = {
        let seen = seen.clone();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    seen.lock().unwrap().push(v);
                }
            }
        })
    };
    // A turn that streams for several seconds.
    let r = old.post(
        &format!("/v1/sessions/{id}/messages"),
        &json!({ "text": format!("/slow {}", "word ".repeat(60)) }).to_string(),
    );
    assert_eq!(r.status, 202, "{}", r.body);
    wait_until(
        Duration::from_secs(20),
        "the follower to see deltas",
        || {
            seen.lock()
                .unwrap()
                .iter()
                .filter(|r| r["kind"] == "session.delta")
                .count()
                >= 3
        },
    );

    // A rebuilt binary lands on disk: doctor says so.
    replace_file(&exe, &std::fs::read(bin()).unwrap());
    let check = doctor_binary_check(&home);
    assert_eq!(check["ok"], false, "{check}");
    assert!(
        check["detail"].as_str().unwrap().contains("r1 ctl restart"),
        "{check}"
    );

    let r = home.run_json(&["ctl", "restart"]);
    assert_ne!(r["pid"].as_u64().unwrap(), u64::from(old.pid()), "{r}");
    assert_eq!(r["url"], old.reg["url"], "{r}");
    assert_ne!(r["build_id"], r["from_build_id"], "{r}");
    assert_eq!(r["exe"], exe.display().to_string(), "{r}");
    let reg = home.registration().unwrap();
    assert_eq!(reg["pid"], r["pid"]);
    assert_eq!(reg["sock"], old.reg["sock"]);
    let new = Daemon {
        child: None,
        home: home.path.clone(),
        reg: reg.clone(),
    };
    assert_eq!(new.port(), port, "the port must not change");
    // The old process is gone.
    let mut old = old;
    assert!(old.wait_exit(Duration::from_secs(15)).is_some());
    assert_eq!(doctor_binary_check(&home)["ok"], true);

    // The session was paused for the upgrade and reloaded; the follower saw every
    // record, once, in order, through the new daemon's reload record.
    let view = new.get(&format!("/v1/sessions/{id}")).json();
    assert_eq!(view["state"], "paused", "{view}");
    let last = view["last_seq"].as_u64().unwrap();
    wait_until(Duration::from_secs(20), "the follower to catch up", || {
        seen.lock()
            .unwrap()
            .last()
            .and_then(|r| r["seq"].as_u64())
            .is_some_and(|s| s >= last)
    });
    let got = seen.lock().unwrap().clone();
    let seqs: Vec<u64> = got.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    let want: Vec<u64> = (1..=last).collect();
    assert_eq!(seqs, want, "the follower missed or repeated records");
    assert!(
        got.iter()
            .any(|r| r["kind"] == "session.paused" && r["data"]["reason"] == "upgrade"),
        "{got:?}"
    );
    assert!(
        got.iter()
            .any(|r| r["kind"] == "daemon.reloaded" && r["data"]["daemon_id"] == reg["id"]),
        "{got:?}"
    );

    // Resumable, and it answers again.
    let v = home.run_json(&["ctl", "sessions", "resume", &id]);
    assert_eq!(v["state"], "idle", "{v}");
    let r = new.post(
        &format!("/v1/sessions/{id}/messages"),
        &json!({ "text": "after the upgrade" }).to_string(),
    );
    assert_eq!(r.status, 202, "{}", r.body);
    wait_until(Duration::from_secs(20), "the answer", || {
        seen.lock().unwrap().iter().any(|r| {
            r["kind"] == "session.message"
                && r["data"]["role"] == "assistant"
                && r["data"]["text"]
                    .as_str()
                    .is_some_and(|t| t.contains("after the upgrade"))
        })
    });
    let _ = follower.kill();
    let _ = follower.wait();
    let _ = reader.join();
}

#[test]
fn a_failing_new_binary_leaves_the_old_daemon_serving() {
    let home = Home::new();
    let bindir = tempfile::tempdir().unwrap();
    let exe = copy_binary(bindir.path());
    let d = serve_from(&home, &exe);
    let work = tempfile::tempdir().unwrap();
    let id = start(&d, work.path());

    // Not an r1 at all: refused before anything stops (`r1 serve restart` is
    // `r1 ctl restart`).
    replace_file(&exe, b"#!/bin/sh\necho 'not r1' >&2\nexit 1\n");
    let out = home.run(&["serve", "restart"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--version") && err.contains("not r1"), "{err}");
    assert!(err.contains("keeps serving"), "{err}");
    let reg = home.registration().unwrap();
    assert_eq!(reg["id"], d.reg["id"], "nothing may change");
    health_ok(&d);

    // Answers `--version` but cannot serve: the handover starts, the new daemon exits,
    // and the old one is brought back (same process, same port) and says why.
    replace_file(
        &exe,
        b"#!/bin/sh\nif [ \"$1\" = --version ]; then echo 'r1 9.9.9'; exit 0; fi\necho 'r1: cannot start: broken on purpose' >&2\nexit 1\n",
    );
    let out = home.run(&["ctl", "restart", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let msg = v["error_message"].as_str().unwrap();
    assert!(msg.contains("exited"), "{msg}");
    assert!(msg.contains("brought back"), "{msg}");
    let reg = home.registration().unwrap();
    assert_ne!(reg["id"], d.reg["id"], "the old daemon starts again");
    assert_eq!(reg["pid"], d.reg["pid"], "in the same process");
    assert_eq!(reg["url"], d.reg["url"], "on the same port");
    health_ok(&d);
    let s = home.run_json(&["ctl", "sessions", "get", &id]);
    assert_eq!(s["id"], id.as_str(), "{s}");
    // It can still hand over once a good binary is on disk.
    replace_file(&exe, &std::fs::read(bin()).unwrap());
    let r = home.run_json(&["ctl", "restart"]);
    assert_eq!(r["url"], d.reg["url"], "{r}");
}
