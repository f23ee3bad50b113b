//! Issue 4: tools confined to the workdir, approvals over the API, lanes, turn control,
//! providers against fake servers on loopback.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::sessions::{records, start};
use crate::support::*;

fn start_with(d: &Daemon, body: Value) -> String {
    let r = d.post("/v1/sessions", &body.to_string());
    assert_eq!(r.status, 201, "{}", r.body);
    r.json()["id"].as_str().unwrap().to_string()
}

pub fn send(d: &Daemon, id: &str, text: &str) -> Value {
    let r = d.post(
        &format!("/v1/sessions/{id}/messages"),
        &json!({"text": text}).to_string(),
    );
    assert_eq!(r.status, 202, "{}", r.body);
    r.json()
}

/// Waits for a record matching `pred`; returns all records.
pub fn wait_for(d: &Daemon, id: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let recs = records(d, id);
        if recs.iter().any(&pred) {
            return recs;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; got {}",
            serde_json::to_string_pretty(&recs).unwrap()
        );
        std::thread::sleep(Duration::from_millis(30));
    }
}

fn state(d: &Daemon, id: &str) -> Value {
    d.get(&format!("/v1/sessions/{id}")).json()
}

fn decide(d: &Daemon, id: &str, approval: &str, decision: &str) -> Resp {
    d.post(
        &format!("/v1/sessions/{id}/approvals/{approval}"),
        &json!({"decision": decision}).to_string(),
    )
}

fn pending(d: &Daemon, id: &str) -> String {
    let mut out = String::new();
    wait_until(Duration::from_secs(10), "a pending approval", || {
        let v = state(d, id);
        if v["state"] == "waiting_on_approval"
            || !v["pending_approvals"].as_array().unwrap().is_empty()
        {
            if let Some(a) = v["pending_approvals"][0].as_str() {
                out = a.to_string();
                return true;
            }
        }
        false
    });
    out
}

#[test]
fn write_file_waits_for_approval_and_allow_or_deny_decide() {
    let home = Home::new();
    let work = tempfile::tempdir().unwrap();
    let d = home.serve(&[]);
    let id = start(&d, work.path());
    send(
        &d,
        &id,
        r#"/tool write_file {"path": "notes/a.txt", "content": "hello"}"#,
    );
    let apr = pending(&d, &id);
    let v = state(&d, &id);
    assert_eq!(v["state"], "waiting_on_approval");
    assert!(
        !work.path().join("notes/a.txt").exists(),
        "written before approval"
    );
    let recs = records(&d, &id);
    let req = recs
        .iter()
        .find(|r| r["kind"] == "approval.requested")
        .unwrap();
    assert_eq!(req["data"]["tool"], "write_file");
    assert_eq!(req["data"]["args"]["path"], "notes/a.txt");
    assert_eq!(decide(&d, &id, &apr, "allow").status, 200);
    wait_for(&d, &id, "the answer", |r| {
        r["kind"] == "session.message"
            && r["data"]["text"]
                .as_str()
                .is_some_and(|t| t.starts_with("echo: write_file returned"))
    });
    assert_eq!(
        std::fs::read_to_string(work.path().join("notes/a.txt")).unwrap(),
        "hello"
    );
    // Deciding again the same way is fine; the other way is a conflict.
    assert_eq!(decide(&d, &id, &apr, "allow").status, 200);
    assert_eq!(decide(&d, &id, &apr, "deny").status, 409);
    assert_eq!(decide(&d, &id, "apr_nope", "allow").status, 404);
    assert_eq!(decide(&d, &id, &apr, "maybe").status, 400);

    // Deny: nothing written, the model is told.
    send(
        &d,
        &id,
        r#"/tool write_file {"path": "b.txt", "content": "no"}"#,
    );
    let apr = pending(&d, &id);
    assert_eq!(decide(&d, &id, &apr, "deny").status, 200);
    let recs = wait_for(&d, &id, "the denial answer", |r| {
        r["kind"] == "session.message"
            && r["data"]["text"]
                .as_str()
                .is_some_and(|t| t.contains("write_file failed") && t.contains("denied"))
    });
    assert!(!work.path().join("b.txt").exists());
    assert!(recs
        .iter()
        .any(|r| r["kind"] == "approval.resolved" && r["data"]["decision"] == "deny"));
    wait_until(Duration::from_secs(5), "idle", || {
        state(&d, &id)["state"] == "idle"
    });

    // A session policy can allow a tool outright, or deny it.
    let id2 = start_with(
        &d,
        json!({"workdir": work.path(), "policy": {"write_file": "allow", "run_command": "deny"}}),
    );
    send(
        &d,
        &id2,
        r#"/tool write_file {"path": "c.txt", "content": "direct"}"#,
    );
    wait_for(&d, &id2, "written", |r| {
        r["kind"] == "tool.completed" && r["data"]["is_error"] == false
    });
    assert_eq!(
        std::fs::read_to_string(work.path().join("c.txt")).unwrap(),
        "direct"
    );
    send(&d, &id2, "/run touch should-not-exist");
    wait_for(&d, &id2, "policy denial", |r| {
        r["kind"] == "tool.completed" && r["data"]["denied"] == true
    });
    assert!(!work.path().join("should-not-exist").exists());
    let r = d.post(
        "/v1/sessions",
        &json!({"workdir": work.path(), "policy": {"run_command": "sometimes"}}).to_string(),
    );
    assert_eq!(r.status, 400);
}

#[test]
fn a_pending_approval_survives_a_restart_and_can_be_answered_after_it() {
    let home = Home::new();
    let work = tempfile::tempdir().unwrap();
    for graceful in [true, false] {
        let mut d = home.serve(&[]);
        let id = start(&d, work.path());
        let file = format!("after-restart-{graceful}.txt");
        send(
            &d,
            &id,
            &format!(r#"/tool write_file {{"path": "{file}", "content": "later"}}"#),
        );
        let apr = pending(&d, &id);
        if graceful {
            assert_eq!(d.post("/v1/shutdown", "{}").status, 200);
            d.wait_exit(Duration::from_secs(10)).unwrap();
        } else {
            unsafe { libc::kill(d.pid() as i32, libc::SIGKILL) };
            d.wait_exit(Duration::from_secs(10)).unwrap();
        }
        let d = home.serve(&[]);
        let v = state(&d, &id);
        assert_eq!(v["state"], "paused");
        assert_eq!(v["pending_approvals"], json!([apr]), "{v}");
        let recs = records(&d, &id);
        assert!(
            !recs.iter().any(|r| r["kind"] == "session.error"),
            "the waiting turn was closed as an error"
        );
        assert_eq!(decide(&d, &id, &apr, "allow").status, 200);
        assert_eq!(
            d.post(&format!("/v1/sessions/{id}/resume"), "{}").status,
            200
        );
        wait_for(&d, &id, "the continued turn", |r| {
            r["kind"] == "session.message"
                && r["data"]["text"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("echo: write_file returned"))
        });
        assert_eq!(
            std::fs::read_to_string(work.path().join(&file)).unwrap(),
            "later"
        );
        assert!(state(&d, &id)["pending_approvals"]
            .as_array()
            .unwrap()
            .is_empty());
    }
}

#[test]
fn escapes_from_the_workdir_are_refused() {
    let home = Home::new();
    let outer = tempfile::tempdir().unwrap();
    let work = outer.path().join("work");
    std::fs::create_dir(&work).unwrap();
    std::fs::write(outer.path().join("secret.txt"), "TOP-SECRET").unwrap();
    std::os::unix::fs::symlink(outer.path().join("secret.txt"), work.join("link-to-secret"))
        .unwrap();
    std::os::unix::fs::symlink("/etc", work.join("etc-link")).unwrap();
    let d = home.serve(&[]);
    let id = start_with(
        &d,
        json!({"workdir": work, "policy": {"write_file": "allow", "edit_file": "allow"}}),
    );
    let attempts = [
        r#"/tool read_file {"path": "../secret.txt"}"#,
        r#"/tool read_file {"path": "/etc/passwd"}"#,
        r#"/tool read_file {"path": "link-to-secret"}"#,
        r#"/tool read_file {"path": "etc-link/passwd"}"#,
        r#"/tool list_dir {"path": ".."}"#,
        r#"/tool write_file {"path": "../escaped.txt", "content": "x"}"#,
        r#"/tool write_file {"path": "link-to-secret", "content": "overwritten"}"#,
        r#"/tool edit_file {"path": "link-to-secret", "old": "TOP", "new": "NOT"}"#,
    ];
    for (n, a) in attempts.iter().enumerate() {
        send(&d, &id, a);
        let recs = wait_for(&d, &id, a, |r| {
            r["kind"] == "tool.completed" && records_count_kind(r, n)
        });
        let done: Vec<&Value> = recs
            .iter()
            .filter(|r| r["kind"] == "tool.completed")
            .collect();
        let last = done.last().unwrap();
        assert_eq!(
            last["data"]["is_error"], true,
            "{a} was not refused: {last}"
        );
        let all = serde_json::to_string(&recs).unwrap();
        assert!(!all.contains("TOP-SECRET"), "{a} read outside the workdir");
        assert!(!all.contains("root:x:0"), "{a} read /etc/passwd");
        wait_until(Duration::from_secs(5), "idle", || {
            state(&d, &id)["state"] == "idle"
        });
    }
    assert_eq!(
        std::fs::read_to_string(outer.path().join("secret.txt")).unwrap(),
        "TOP-SECRET"
    );
    assert!(!outer.path().join("escaped.txt").exists());
}

/// True for every tool.completed record (the caller counts them by position).
fn records_count_kind(_r: &Value, _n: usize) -> bool {
    true
}

/// True when no live process is left in process group `pgid` (zombies waiting for
/// init to reap them are dead already and do not count).
fn pgid_gone(pgid: i32) -> bool {
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f.len() > 3 && f[2].parse::<i32>().ok() == Some(pgid) && f[0] != "Z" {
            return false;
        }
    }
    true
}

#[test]
fn run_command_streams_into_a_lane_and_kills_whole_process_groups() {
    let home = Home::new();
    let work = tempfile::tempdir().unwrap();
    let d = home.serve(&[]);
    let id = start_with(
        &d,
        json!({"workdir": work.path(), "policy": {"run_command": "allow"}}),
    );
    send(&d, &id, "/run echo first; sleep 0.3; echo second; pwd");
    let recs = wait_for(&d, &id, "command done", |r| r["kind"] == "tool.completed");
    let deltas: String = recs
        .iter()
        .filter(|r| r["kind"] == "lane.delta")
        .map(|r| r["data"]["text"].as_str().unwrap())
        .collect();
    assert!(
        deltas.contains("first") && deltas.contains("second"),
        "{deltas}"
    );
    let canon = std::fs::canonicalize(work.path()).unwrap();
    assert!(
        deltas.contains(canon.to_str().unwrap()),
        "not run in the workdir: {deltas}"
    );
    let lane = recs.iter().find(|r| r["kind"] == "lane.created").unwrap()["data"]["lane"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(recs
        .iter()
        .filter(|r| r["kind"] == "lane.delta")
        .all(|r| r["lane"] == lane.as_str()));
    assert!(recs
        .iter()
        .any(|r| r["kind"] == "lane.status" && r["data"]["status"] == "done"));
    let lanes = d.get(&format!("/v1/sessions/{id}/lanes")).json();
    assert!(lanes["lanes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l["lane"] == lane.as_str() && l["status"] == "done"));
    assert_eq!(
        d.post(&format!("/v1/sessions/{id}/lanes/{lane}/pin"), "{}")
            .json()["lanes"][1]["pinned"],
        true
    );
    // `pinned: false` unpins, and the lane says so.
    let unpinned = d.post(
        &format!("/v1/sessions/{id}/lanes/{lane}/pin"),
        r#"{"pinned": false}"#,
    );
    assert_eq!(
        unpinned.json()["lanes"][1]["pinned"],
        false,
        "{}",
        unpinned.body
    );
    let got = d.get(&format!("/v1/sessions/{id}/lanes/{lane}")).json();
    assert_eq!(got["pinned"], false, "{got}");
    wait_until(Duration::from_secs(5), "idle", || {
        state(&d, &id)["state"] == "idle"
    });

    // Killing a lane kills its whole process group, grandchildren included.
    send(&d, &id, "/run echo pgid=$$; sleep 300 & sleep 300 & wait");
    let recs = wait_for(&d, &id, "the pgid", |r| {
        r["kind"] == "lane.delta"
            && r["data"]["text"]
                .as_str()
                .is_some_and(|t| t.contains("pgid="))
    });
    let text = recs
        .iter()
        .find(|r| {
            r["kind"] == "lane.delta" && r["data"]["text"].as_str().unwrap().contains("pgid=")
        })
        .unwrap()["data"]["text"]
        .as_str()
        .unwrap()
        .to_string();
    let pgid: i32 = text
        .split("pgid=")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let lane = recs
        .iter()
        .rev()
        .find(|r| r["kind"] == "lane.created")
        .unwrap()["data"]["lane"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!pgid_gone(pgid));
    let r = d.post(&format!("/v1/sessions/{id}/lanes/{lane}/kill"), "{}");
    assert_eq!(r.status, 200);
    wait_until(Duration::from_secs(3), "the process group to die", || {
        pgid_gone(pgid)
    });
    let recs = wait_for(&d, &id, "lane.killed", |r| r["kind"] == "lane.killed");
    assert!(recs
        .iter()
        .any(|r| r["kind"] == "lane.status" && r["data"]["status"] == "killed"));
    assert_eq!(
        d.post(&format!("/v1/sessions/{id}/lanes/{lane}/kill"), "{}")
            .status,
        200,
        "kill is idempotent"
    );
    assert_eq!(
        d.post(&format!("/v1/sessions/{id}/lanes/nope/kill"), "{}")
            .status,
        404
    );

    // A timeout kills the group too.
    send(
        &d,
        &id,
        r#"/tool run_command {"command": "echo pgid=$$; sleep 300 & sleep 300 & wait", "timeout_s": 1}"#,
    );
    let recs = wait_for(&d, &id, "timeout", |r| {
        r["kind"] == "tool.completed"
            && r["data"]["content"]
                .as_str()
                .is_some_and(|c| c.contains("timed out") || c.contains("timeout"))
    });
    let text: String = recs
        .iter()
        .filter(|r| r["kind"] == "lane.delta")
        .map(|r| r["data"]["text"].as_str().unwrap())
        .collect::<Vec<_>>()
        .join("");
    let pgid: i32 = text
        .rsplit("pgid=")
        .next()
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    wait_until(Duration::from_secs(3), "the timed-out group to die", || {
        pgid_gone(pgid)
    });

    // Cancelling the turn kills the running command within a second.
    wait_until(Duration::from_secs(5), "idle", || {
        state(&d, &id)["state"] == "idle"
    });
    send(&d, &id, "/run echo pgid=$$; sleep 300");
    let recs = wait_for(&d, &id, "the pgid", |r| {
        r["kind"] == "lane.delta"
            && r["data"]["text"]
                .as_str()
                .is_some_and(|t| t.contains("pgid="))
    });
    let text: String = recs
        .iter()
        .filter(|r| r["kind"] == "lane.delta")
        .map(|r| r["data"]["text"].as_str().unwrap())
        .collect::<Vec<_>>()
        .join("");
    let pgid: i32 = text
        .rsplit("pgid=")
        .next()
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let t = Instant::now();
    let r = d.post(&format!("/v1/sessions/{id}/cancel"), "{}");
    assert_eq!(r.json()["state"], "idle");
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "cancel took {:?}",
        t.elapsed()
    );
    wait_until(Duration::from_secs(1), "the cancelled group to die", || {
        pgid_gone(pgid)
    });
    assert!(records(&d, &id)
        .iter()
        .any(|r| r["kind"] == "session.cancelled"));
}

#[test]
fn r1_chat_asks_for_approval_in_the_terminal() {
    let home = Home::new();
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("marker-file.txt"), "x").unwrap();
    let name = format!("r1chat{}", std::process::id());
    let cmd = format!(
        "R1_HOME={} {} chat --workdir {}",
        home.path.display(),
        bin().display(),
        work.path().display()
    );
    let tmux = |args: &[&str]| {
        std::process::Command::new("tmux")
            .args(args)
            .output()
            .expect("tmux is needed for this test")
    };
    let out = tmux(&[
        "new-session",
        "-d",
        "-s",
        &name,
        "-x",
        "200",
        "-y",
        "50",
        &cmd,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    struct Kill(String);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = std::process::Command::new("tmux")
                .args(["kill-session", "-t", &self.0])
                .output();
        }
    }
    let _kill = Kill(name.clone());
    let screen =
        || String::from_utf8_lossy(&tmux(&["capture-pane", "-p", "-t", &name]).stdout).to_string();
    wait_until(Duration::from_secs(10), "the chat banner", || {
        screen().contains("r1 chat: session")
    });
    tmux(&["send-keys", "-t", &name, "hello there", "Enter"]);
    wait_until(Duration::from_secs(10), "the echo", || {
        screen().contains("echo: hello there")
    });
    tmux(&["send-keys", "-t", &name, "/run ls", "Enter"]);
    wait_until(Duration::from_secs(10), "the approval prompt", || {
        screen().contains("allow? [y/N]")
    });
    assert!(screen().contains("run_command"));
    tmux(&["send-keys", "-t", &name, "y", "Enter"]);
    wait_until(Duration::from_secs(10), "the command output", || {
        screen().contains("marker-file.txt")
    });
    wait_until(Duration::from_secs(10), "the answer", || {
        screen().contains("echo: run_command returned")
    });
}

#[test]
fn mcp_server_tools_reach_sessions_through_policy_and_approvals() {
    let home = Home::new();
    std::fs::create_dir_all(&home.path).unwrap();
    std::fs::set_permissions(
        &home.path,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let fake = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../r1-engine/tests/fixtures/fake-mcp-server");
    std::fs::write(
        home.path.join("daemon.toml"),
        format!(
            "[[mcp_servers]]\nname = \"fake\"\ntransport = \"stdio\"\ncommand = \"{0}\"\ntimeout_s = 5\n\n[[mcp_servers]]\nname = \"mine\"\ntransport = \"stdio\"\ncommand = \"{0}\"\ntimeout_s = 5\ntrust = \"trusted\"\n\n[[mcp_servers]]\nname = \"broken\"\ntransport = \"stdio\"\ncommand = \"/nonexistent/mcp-server\"\ntimeout_s = 2\ntrust = \"trusted\"\n",
            fake.display()
        ),
    )
    .unwrap();
    let work = tempfile::tempdir().unwrap();
    let d = home.serve(&[]);
    let id = start(&d, work.path());
    send(&d, &id, r#"/tool fake__add {"a": 2, "b": 3}"#);
    // MCP tools ask by default.
    let apr = pending(&d, &id);
    let recs = records(&d, &id);
    assert!(recs
        .iter()
        .any(|r| r["kind"] == "approval.requested" && r["data"]["tool"] == "fake__add"));
    assert_eq!(decide(&d, &id, &apr, "allow").status, 200);
    let recs = wait_for(&d, &id, "the MCP result", |r| {
        r["kind"] == "session.message"
            && r["data"]["text"]
                .as_str()
                .is_some_and(|t| t.starts_with("echo: fake__add"))
    });
    let done = recs
        .iter()
        .rev()
        .find(|r| r["kind"] == "tool.completed")
        .unwrap();
    assert_eq!(done["data"]["is_error"], false, "{done}");
    assert!(done["data"]["content"].as_str().unwrap().contains('5'));
    // An untrusted server (the default) asks even when the policy allows its tool; a
    // trusted one follows the policy.
    let id3 = start_with(
        &d,
        json!({"workdir": work.path(), "policy": {"fake__add": "allow", "mine__add": "allow"}}),
    );
    send(&d, &id3, r#"/tool fake__add {"a": 1, "b": 1}"#);
    let apr = pending(&d, &id3);
    let recs = records(&d, &id3);
    assert!(recs
        .iter()
        .any(|r| r["kind"] == "approval.requested" && r["data"]["tool"] == "fake__add"));
    assert_eq!(decide(&d, &id3, &apr, "allow").status, 200);
    wait_for(&d, &id3, "the untrusted result", |r| {
        r["kind"] == "session.message"
            && r["data"]["text"]
                .as_str()
                .is_some_and(|t| t.starts_with("echo: fake__add"))
    });
    wait_until(Duration::from_secs(10), "idle", || {
        state(&d, &id3)["state"] == "idle"
    });
    send(&d, &id3, r#"/tool mine__add {"a": 20, "b": 22}"#);
    let recs = wait_for(&d, &id3, "the trusted result", |r| {
        r["kind"] == "session.message"
            && r["data"]["text"]
                .as_str()
                .is_some_and(|t| t.starts_with("echo: mine__add"))
    });
    let asked: Vec<_> = recs
        .iter()
        .filter(|r| r["kind"] == "approval.requested")
        .map(|r| r["data"]["tool"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(asked, ["fake__add"], "the trusted tool asked");
    let done = recs
        .iter()
        .rev()
        .find(|r| r["kind"] == "tool.completed")
        .unwrap();
    assert!(
        done["data"]["content"].as_str().unwrap().contains("42"),
        "{done}"
    );
    // A server that cannot start gives a clear tool error and never blocks the session.
    let id2 = start_with(
        &d,
        json!({"workdir": work.path(), "policy": {"broken__anything": "allow"}}),
    );
    send(&d, &id2, r#"/tool broken__anything {}"#);
    let recs = wait_for(&d, &id2, "the error", |r| r["kind"] == "tool.completed");
    let done = recs.iter().find(|r| r["kind"] == "tool.completed").unwrap();
    assert_eq!(done["data"]["is_error"], true);
    wait_until(Duration::from_secs(10), "idle", || {
        state(&d, &id2)["state"] == "idle"
    });
    send(&d, &id2, "still here?");
    wait_for(&d, &id2, "an answer", |r| {
        r["data"]["text"] == "echo: still here?"
    });
    // Ending the session stops its MCP server.
    assert_eq!(crate::sessions::raw_delete(&d, &id).status, 200);
}

#[test]
fn cli_approves_denies_and_lists_lanes_and_engines() {
    let home = Home::new();
    let work = tempfile::tempdir().unwrap();
    let d = home.serve(&[]);
    let id = start(&d, work.path());
    send(&d, &id, "/run echo from-cli > cli.txt");
    let apr = pending(&d, &id);
    let v = home.run_json(&["ctl", "sessions", "approve", &id, &apr]);
    assert_eq!(v["id"], id.as_str());
    wait_for(&d, &id, "the command", |r| r["kind"] == "tool.completed");
    assert_eq!(
        std::fs::read_to_string(work.path().join("cli.txt"))
            .unwrap()
            .trim(),
        "from-cli"
    );
    wait_until(Duration::from_secs(5), "idle", || {
        state(&d, &id)["state"] == "idle"
    });
    send(&d, &id, "/run touch denied.txt");
    let apr = pending(&d, &id);
    home.run_json(&["ctl", "sessions", "deny", &id, &apr]);
    wait_for(&d, &id, "the denial", |r| {
        r["kind"] == "approval.resolved" && r["data"]["decision"] == "deny"
    });
    assert!(!work.path().join("denied.txt").exists());
    let lanes = home.run_json(&["ctl", "sessions", "lanes", &id]);
    assert_eq!(lanes["lanes"][0]["lane"], "main");
    assert!(lanes["lanes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l["tool"] == "run_command" && l["status"] == "done"));
    let engines = home.run_json(&["ctl", "engines"]);
    let echo = engines["engines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "echo")
        .unwrap()
        .clone();
    assert_eq!(echo["available"], true);
    assert_eq!(echo["default"], true);
    let out = home.run(&["ctl", "sessions", "approve", &id, "apr_missing"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not_found"));
}

/// How many records of `kind` the session has.
fn count(d: &Daemon, id: &str, kind: &str) -> usize {
    records(d, id).iter().filter(|r| r["kind"] == kind).count()
}

/// Waits for the `n`th answer that starts with `prefix`.
fn wait_answers(d: &Daemon, id: &str, prefix: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = records(d, id)
            .iter()
            .filter(|r| {
                r["kind"] == "session.message"
                    && r["data"]["text"]
                        .as_str()
                        .is_some_and(|t| t.starts_with(prefix))
            })
            .count();
        if got >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for answer {n} starting {prefix:?}; got {got}"
        );
        std::thread::sleep(Duration::from_millis(30));
    }
}

#[test]
fn a_remembered_decision_becomes_the_sessions_policy_for_the_tool() {
    let home = Home::new();
    let work = tempfile::tempdir().unwrap();
    let mut d = home.serve(&[]);
    let id = start(&d, work.path());
    let write = |d: &Daemon, id: &str, file: &str| {
        send(
            d,
            id,
            &format!(r#"/tool write_file {{"path": "{file}", "content": "{file}"}}"#),
        )
    };
    write(&d, &id, "one.txt");
    let apr = pending(&d, &id);
    let r = d.post(
        &format!("/v1/sessions/{id}/approvals/{apr}"),
        &json!({"decision": "allow", "remember": true}).to_string(),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    wait_answers(&d, &id, "echo: write_file returned", 1);
    let recs = records(&d, &id);
    let resolved: Vec<&Value> = recs
        .iter()
        .filter(|r| r["kind"] == "approval.resolved")
        .collect();
    assert_eq!(resolved.len(), 1);
    assert_eq!(resolved[0]["data"]["remember"], true);
    wait_until(Duration::from_secs(5), "idle", || {
        state(&d, &id)["state"] == "idle"
    });

    // The next call of the tool runs without asking.
    write(&d, &id, "two.txt");
    wait_answers(&d, &id, "echo: write_file returned", 2);
    assert_eq!(
        std::fs::read_to_string(work.path().join("two.txt")).unwrap(),
        "two.txt"
    );
    assert_eq!(count(&d, &id, "approval.requested"), 1, "asked again");
    // Other tools still ask.
    send(&d, &id, "/run echo still-asks");
    let apr = pending(&d, &id);
    assert_eq!(decide(&d, &id, &apr, "deny").status, 200);
    wait_until(Duration::from_secs(10), "idle", || {
        state(&d, &id)["state"] == "idle"
    });

    // The policy is the fold of the journal: a restarted daemon keeps it.
    assert_eq!(d.post("/v1/shutdown", "{}").status, 200);
    d.wait_exit(Duration::from_secs(10)).unwrap();
    d = home.serve(&[]);
    write(&d, &id, "three.txt");
    wait_answers(&d, &id, "echo: write_file returned", 3);
    assert!(work.path().join("three.txt").exists());
    assert_eq!(count(&d, &id, "approval.requested"), 2);

    // Another session still asks; a remembered denial (from the CLI) refuses the tool
    // from then on without asking.
    let id2 = start(&d, work.path());
    write(&d, &id2, "four.txt");
    let apr = pending(&d, &id2);
    let v = home.run_json(&["ctl", "sessions", "deny", &id2, &apr, "--always"]);
    assert_eq!(v["id"], id2.as_str(), "{v}");
    wait_answers(&d, &id2, "echo: write_file failed", 1);
    wait_until(Duration::from_secs(5), "idle", || {
        state(&d, &id2)["state"] == "idle"
    });
    write(&d, &id2, "five.txt");
    wait_answers(&d, &id2, "echo: write_file failed", 2);
    assert_eq!(count(&d, &id2, "approval.requested"), 1, "asked again");
    assert!(!work.path().join("four.txt").exists());
    assert!(!work.path().join("five.txt").exists());
    // An approval without `remember` is the same as before.
    let plain = json!({"session_id": "x", "approval_id": "y", "decision": "allow"});
    let p: r1_proto::ApproveParams = serde_json::from_value(plain).unwrap();
    assert!(!p.remember);
}
