//! Live config reload: SIGHUP, `r1 ctl reload` and `daemon.reload` re-read
//! `daemon.toml` and apply it without a restart; an invalid file changes nothing.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::*;
use crate::worktrees::repo;

fn get_with_origin(d: &Daemon, origin: &str) -> Resp {
    let p = d.port();
    raw_tcp(
        p,
        &format!(
            "GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1:{p}\r\nOrigin: {origin}\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
            d.token()
        ),
    )
}

fn sighup(d: &Daemon) {
    // SAFETY: signalling the test's own child.
    assert_eq!(unsafe { libc::kill(d.pid() as i32, libc::SIGHUP) }, 0);
}

/// The bus events of kind `daemon.reloaded` published so far.
fn config_reloads(d: &Daemon) -> Vec<Value> {
    let text = std::fs::read_to_string(d.home.join("bus/events.ndjson")).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["kind"] == "daemon.reloaded" && e["data"]["config"] == true)
        .collect()
}

#[test]
fn sighup_after_adding_an_origin_lets_it_in_without_a_restart() {
    let home = Home::new();
    write_config(&home, "[perimeter]\nallowed_origins = []\n");
    let d = home.serve(&[]);
    let origin = "http://app.r1.test:5173";
    let r = get_with_origin(&d, origin);
    assert_eq!(r.status, 403, "{}", r.body);

    // A session and a follower stay through the reload.
    let work = tempfile::tempdir().unwrap();
    let s = home.run_json(&[
        "ctl",
        "sessions",
        "start",
        "--workdir",
        work.path().to_str().unwrap(),
    ]);
    let id = s["id"].as_str().unwrap().to_string();

    std::fs::write(
        home.path.join("daemon.toml"),
        format!("[perimeter]\nallowed_origins = [\"{origin}\"]\n"),
    )
    .unwrap();
    sighup(&d);
    wait_until(Duration::from_secs(10), "the origin to be allowed", || {
        get_with_origin(&d, origin).status == 200
    });
    let r = get_with_origin(&d, origin);
    assert_eq!(
        r.header("access-control-allow-origin").as_deref(),
        Some(origin),
        "{}",
        r.head
    );
    // Same daemon, same session.
    assert_eq!(home.registration().unwrap()["pid"], d.reg["pid"]);
    let got = home.run_json(&["ctl", "sessions", "get", &id]);
    assert_eq!(got["state"], "idle", "{got}");
    wait_until(Duration::from_secs(5), "daemon.reloaded on the bus", || {
        !config_reloads(&d).is_empty()
    });
    let ev = &config_reloads(&d)[0];
    assert_eq!(
        ev["data"]["changed"],
        json!(["perimeter.allowed_origins"]),
        "{ev}"
    );
    assert_eq!(ev["data"]["version"], d.reg["version"], "{ev}");

    // Removing it again refuses it again.
    std::fs::write(home.path.join("daemon.toml"), "").unwrap();
    let out = home.run_json(&["ctl", "reload"]);
    assert_eq!(
        out["changed"],
        json!(["perimeter.allowed_origins"]),
        "{out}"
    );
    assert_eq!(get_with_origin(&d, origin).status, 403);
}

#[test]
fn an_invalid_config_changes_nothing_and_the_error_names_key_and_line() {
    let home = Home::new();
    write_config(&home, "[limits]\nmax_message_bytes = 100\n");
    let d = home.serve(&[]);
    let work = tempfile::tempdir().unwrap();
    let s = home.run_json(&[
        "ctl",
        "sessions",
        "start",
        "--workdir",
        work.path().to_str().unwrap(),
    ]);
    let id = s["id"].as_str().unwrap().to_string();
    let send = |text: &str| {
        d.post(
            &format!("/v1/sessions/{id}/messages"),
            &json!({ "text": text }).to_string(),
        )
    };
    assert_eq!(send(&"x".repeat(200)).status, 400);

    // A bad value: refused, with the key and its line; the old limit stays.
    std::fs::write(
        home.path.join("daemon.toml"),
        "# limits\n[limits]\nmax_message_bytes = 1000\n\n[missions]\nworkers = 0\n",
    )
    .unwrap();
    let out = home.run(&["ctl", "reload", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err: Value = serde_json::from_slice(&out.stdout).unwrap();
    let msg = err["error_message"].as_str().unwrap();
    assert_eq!(err["error_code"], "validation", "{err}");
    assert!(msg.contains("line 6") && msg.contains("workers"), "{msg}");
    assert!(msg.contains("nothing was changed"), "{msg}");
    assert_eq!(
        send(&"x".repeat(200)).status,
        400,
        "the old limit must stay"
    );

    // A syntax error: the line and column.
    std::fs::write(
        home.path.join("daemon.toml"),
        "[limits]\nmax_message_bytes = 1000\nmax_subscribers = \"lots\"\n",
    )
    .unwrap();
    let r = d.post("/v1/reload", "");
    assert_eq!(r.status, 400, "{}", r.body);
    let msg = r.json()["error_message"].as_str().unwrap().to_string();
    assert!(msg.contains("line 3, column 19"), "{msg}");
    assert!(msg.contains("max_subscribers"), "{msg}");
    // SIGHUP with the bad file: logged, nothing changes, the daemon serves on.
    sighup(&d);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(send(&"x".repeat(200)).status, 400);
    assert!(config_reloads(&d).is_empty());

    // Fixed: in force at once. A connection cap changed too: reported, not applied.
    std::fs::write(
        home.path.join("daemon.toml"),
        "[limits]\nmax_message_bytes = 1000\nmax_connections_unix = 7\n",
    )
    .unwrap();
    let out = home.run_json(&["ctl", "reload"]);
    assert_eq!(out["changed"], json!(["limits.max_message_bytes"]), "{out}");
    assert_eq!(
        out["restart_required"],
        json!(["limits.max_connections_unix"]),
        "{out}"
    );
    assert_eq!(out["version"], d.reg["version"], "{out}");
    assert_eq!(send(&"x".repeat(200)).status, 202);
    // Text output names both lists.
    std::fs::write(
        home.path.join("daemon.toml"),
        "[limits]\nmax_message_bytes = 2000\nmax_connections_unix = 7\n",
    )
    .unwrap();
    let out = home.run(&["ctl", "reload"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(text.contains("limits.max_message_bytes"), "{text}");
    assert!(text.contains("limits.max_connections_unix"), "{text}");
}

#[test]
fn mission_workers_change_live() {
    let (_t, repo) = repo();
    let home = Home::new();
    write_config(&home, "[missions]\nworkers = 1\n");
    let d = home.serve(&[]);
    let create = |i: usize| {
        let r = d.post(
            "/v1/missions",
            &json!({"spec": {
                "prompt": format!("/slow w{i} {}", "word ".repeat(40)),
                "workdir": repo,
                "worktree": false,
                "title": format!("mission {i}")
            }})
            .to_string(),
        );
        assert_eq!(r.status, 201, "{}", r.body);
        r.json()["id"].as_str().unwrap().to_string()
    };
    let ids: Vec<String> = (0..3).map(create).collect();
    let running = || {
        let l = d.get("/v1/missions").json();
        l["missions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| ids.contains(&m["id"].as_str().unwrap().to_string()))
            .filter(|m| m["state"] == "running")
            .count()
    };
    wait_until(Duration::from_secs(20), "one mission to run", || {
        running() == 1
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(running(), 1, "one worker runs one mission");

    std::fs::write(home.path.join("daemon.toml"), "[missions]\nworkers = 3\n").unwrap();
    let out = home.run_json(&["ctl", "reload"]);
    assert_eq!(out["changed"], json!(["missions.workers"]), "{out}");
    // All three run at once now, while the first is still running.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut most = 0;
    while Instant::now() < deadline && most < 3 {
        most = most.max(running());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        most, 3,
        "three slow missions must run at once after the reload"
    );
}
