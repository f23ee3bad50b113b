//! Issue 3: storage faults that a test cannot cause on a real disk (a failing fsync),
//! injected into the journals of a real daemon run in this process: real listeners,
//! real routes, only the journal file I/O replaced.

use std::time::Duration;

use serde_json::json;

use crate::sessions::{records, start};
use crate::support::*;

#[test]
fn a_failed_fsync_puts_the_session_in_error_and_is_never_acknowledged() {
    let home = Home::new();
    let work = tempfile::tempdir().unwrap();
    let io = r1_journal::testing::FaultyIo::new();
    let opts = io.options();
    let state = r1_daemon::StateDir::open(&home.path).unwrap();
    let lock = state.lock().unwrap();
    let serve_opts = r1_daemon::ServeOptions {
        bind: "127.0.0.1".parse().unwrap(),
        port: 0,
        token_file: None,
        rotate_token: false,
        version: "test".into(),
        listening: None,
        lock: None,
        cli: None,
    };
    let server = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let r = rt.block_on(r1_daemon::serve_with(state, serve_opts, opts));
        drop(lock);
        r.map_err(|e| e.to_string())
    });
    wait_until(Duration::from_secs(10), "in-process daemon", || {
        home.registration().is_some()
    });
    let d = Daemon {
        child: None,
        home: home.path.clone(),
        reg: home.registration().unwrap(),
    };
    let id = start(&d, work.path());
    let other = start(&d, work.path());
    let r = d.post(
        &format!("/v1/sessions/{id}/messages"),
        &json!({"text": "fine"}).to_string(),
    );
    assert_eq!(r.status, 202);
    wait_until(Duration::from_secs(5), "reply", || {
        records(&d, &id)
            .iter()
            .any(|r| r["data"]["text"] == "echo: fine")
    });
    wait_until(Duration::from_secs(5), "idle", || {
        d.get(&format!("/v1/sessions/{id}")).json()["state"] == "idle"
    });
    let before = records(&d, &id).len();

    io.fail_next_fsync();
    let r = d.post(
        &format!("/v1/sessions/{id}/messages"),
        &json!({"text": "lost", "client_message_id": "k"}).to_string(),
    );
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.json()["error_code"], "crash_recovery");
    let v = d.get(&format!("/v1/sessions/{id}")).json();
    assert_eq!(v["state"], "error", "{v}");
    assert!(v["error"].as_str().unwrap().contains("sync"));
    // Never acknowledged: not readable, and the journal is never retried.
    assert_eq!(records(&d, &id).len(), before);
    let r = d.post(
        &format!("/v1/sessions/{id}/messages"),
        &json!({"text": "again"}).to_string(),
    );
    assert_eq!(r.status, 503);
    // Another session is unaffected.
    let r = d.post(
        &format!("/v1/sessions/{other}/messages"),
        &json!({"text": "ok"}).to_string(),
    );
    assert_eq!(r.status, 202, "{}", r.body);

    // Injected ENOSPC through the same seam: a clear 507, nothing recorded, recovers.
    let n = records(&d, &other).len();
    wait_until(Duration::from_secs(5), "other idle", || {
        d.get(&format!("/v1/sessions/{other}")).json()["state"] == "idle"
    });
    let n2 = records(&d, &other).len();
    assert!(n2 >= n);
    io.enospc_after_bytes(10);
    let r = d.post(
        &format!("/v1/sessions/{other}/messages"),
        &json!({"text": "full"}).to_string(),
    );
    assert_eq!(r.status, 507, "{}", r.body);
    assert_eq!(records(&d, &other).len(), n2);
    io.restore_space();
    let r = d.post(
        &format!("/v1/sessions/{other}/messages"),
        &json!({"text": "room"}).to_string(),
    );
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.json()["seq"].as_u64().unwrap(), n2 as u64 + 1);

    assert_eq!(d.post("/v1/shutdown", "{}").status, 200);
    server.join().unwrap().unwrap();
}
