//! Missions and verify on real git repositories made by the test: the worker pool's
//! bound read from the journals' timestamps, a failing test parsed out of a verify,
//! cancel in every state (queued, running and verifying here; paused in the restart
//! test), a `kill -9` mid-mission, and the legacy `build_from_sow`.

use std::time::Duration;

use serde_json::{json, Value};

use crate::restart::{mcp_call, state_of};
use crate::support::*;
use crate::worktrees::{git, repo};

fn create(d: &Daemon, spec: Value) -> String {
    let r = d.post("/v1/missions", &json!({ "spec": spec }).to_string());
    assert_eq!(r.status, 201, "{}", r.body);
    let v = r.json();
    assert_eq!(v["state"], "queued", "{v}");
    assert_eq!(v["executor"], "local", "{v}");
    v["id"].as_str().unwrap().to_string()
}

fn mission(d: &Daemon, id: &str) -> Value {
    let r = d.get(&format!("/v1/missions/{id}"));
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

fn wait_state(d: &Daemon, id: &str, want: &str, within: Duration) -> Value {
    let mut last = Value::Null;
    wait_until(within, &format!("mission {id} to be {want}"), || {
        last = mission(d, id);
        last["state"] == want
    });
    last
}

/// A slow echo prompt: its turn streams for about `deltas` × 200 ms.
fn slow(tag: &str, deltas: usize) -> String {
    format!("/slow {tag} {}", "word ".repeat(deltas * 2))
}

/// Every record of a session's journal.
fn journal(d: &Daemon, session: &str) -> Vec<Value> {
    let r = d.get(&format!(
        "/v1/sessions/{session}/journal?since_seq=1&limit=1000"
    ));
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["records"].as_array().unwrap().clone()
}

/// A repo whose `.r1/verify.toml` runs `script` (a shell script written into the repo
/// as `check.sh`) for `step`, with `format`.
fn repo_with_check(
    step: &str,
    script: &str,
    format: &str,
) -> (tempfile::TempDir, std::path::PathBuf) {
    let (t, repo) = repo();
    std::fs::create_dir(repo.join(".r1")).unwrap();
    std::fs::write(
        repo.join(".r1/verify.toml"),
        format!("[{step}]\ncommand = \"sh check.sh\"\nformat = \"{format}\"\n"),
    )
    .unwrap();
    std::fs::write(repo.join("check.sh"), script).unwrap();
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-q", "-m", "verify config"]);
    (t, repo)
}

#[test]
fn five_missions_on_two_workers_never_run_more_than_two_at_once() {
    let (_t, repo) = repo();
    let home = Home::new();
    write_config(&home, "[missions]\nworkers = 2\n");
    let d = home.serve(&[]);
    let ids: Vec<String> = (0..5)
        .map(|i| {
            create(
                &d,
                json!({"prompt": slow(&format!("m{i}"), 6), "workdir": repo, "title": format!("mission {i}")}),
            )
        })
        .collect();
    // Right after the creates, at most two run and the rest wait.
    let l = d.get("/v1/missions").json();
    let running = l["missions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["state"] == "running")
        .count();
    assert!(running <= 2, "{l}");
    for id in &ids {
        wait_state(&d, id, "succeeded", Duration::from_secs(90));
    }
    // Each ran as its own session in its own worktree.
    let views: Vec<Value> = ids.iter().map(|id| mission(&d, id)).collect();
    let sessions: std::collections::BTreeSet<_> =
        views.iter().map(|v| v["session_id"].to_string()).collect();
    let worktrees: std::collections::BTreeSet<_> =
        views.iter().map(|v| v["worktree_id"].to_string()).collect();
    assert_eq!(sessions.len(), 5, "{views:?}");
    assert_eq!(worktrees.len(), 5, "{views:?}");
    for v in &views {
        assert!(v["worktree_id"].as_str().unwrap().starts_with("wt_"), "{v}");
        assert!(v["timings"]["finished_at"].is_string(), "{v}");
        assert!(!v["log_tail"].as_array().unwrap().is_empty(), "{v}");
    }
    // From the journals: each session's turn runs from its user message to its return
    // to idle. No instant has more than two turns running, and two did overlap.
    let mut edges: Vec<(String, i32)> = Vec::new();
    for v in &views {
        let recs = journal(&d, v["session_id"].as_str().unwrap());
        let start = recs
            .iter()
            .find(|r| r["kind"] == "session.message" && r["data"]["role"] == "user")
            .unwrap()["at"]
            .as_str()
            .unwrap()
            .to_string();
        let end = recs
            .iter()
            .rev()
            .find(|r| r["kind"] == "session.state" && r["data"]["state"] == "idle")
            .unwrap()["at"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(start < end, "{start} {end}");
        edges.push((start, 1));
        edges.push((end, -1));
    }
    // Ends before starts at the same instant: a worker freed is taken after.
    edges.sort();
    let (mut now, mut most) = (0, 0);
    for (_, step) in &edges {
        now += step;
        most = most.max(now);
    }
    assert_eq!(most, 2, "{edges:?}");

    // The CLI lists them, filters by state, and `watch` on a finished mission ends at
    // once with its state.
    let l = home.run_json(&["ctl", "missions", "list", "--state", "succeeded"]);
    assert_eq!(l["missions"].as_array().unwrap().len(), 5, "{l}");
    let l = home.run_json(&["ctl", "missions", "list", "--state", "queued"]);
    assert_eq!(l["missions"], json!([]), "{l}");
    let w = home.run_json(&["ctl", "missions", "watch", &ids[0]]);
    assert_eq!(w["state"], "succeeded", "{w}");
}

#[test]
fn a_mission_whose_tests_fail_is_failed_with_the_failing_test_parsed() {
    // The project's test command writes a junit report with one failing test.
    let script = r#"cat > report.xml <<'XML'
<?xml version="1.0" encoding="UTF-8"?>
<testsuites><testsuite name="calc" tests="2" failures="1">
<testcase classname="calc" name="adds" file="calc.py" line="3"/>
<testcase classname="calc" name="divides" file="calc.py" line="7"><failure message="ZeroDivisionError: division by zero">trace</failure></testcase>
</testsuite></testsuites>
XML
echo "1 failed, 1 passed"
exit 1
"#;
    let (_t, repo) = repo_with_check("test", script, "junit:report.xml");
    let home = Home::new();
    let d = home.serve(&[]);
    // Created from the CLI, following it with `watch` to its end.
    let created = home.run_json(&[
        "ctl",
        "missions",
        "create",
        "fix the calculator",
        "--workdir",
        repo.to_str().unwrap(),
        "--verify",
        "test",
    ]);
    let id = created["id"].as_str().unwrap().to_string();
    let out = home.run(&["ctl", "--json", "missions", "watch", &id]);
    assert!(out.status.success(), "{out:?}");
    let events: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"mission.verified"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"mission.finished"), "{kinds:?}");
    assert_eq!(events.last().unwrap()["data"]["state"], "failed");

    let m = mission(&d, &id);
    assert_eq!(m["state"], "failed", "{m}");
    assert!(
        m["reason"].as_str().unwrap().contains("verify test failed"),
        "{m}"
    );
    let v = &m["verify"][0];
    assert_eq!(v["step"], "test", "{m}");
    assert_eq!(v["ok"], false);
    assert_eq!(v["exit_code"], 1);
    assert_eq!(v["command"], "sh check.sh");
    let failures = v["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 1, "{v}");
    assert!(
        failures[0]["test"].as_str().unwrap().contains("divides"),
        "{v}"
    );
    assert!(
        failures[0]["message"]
            .as_str()
            .unwrap()
            .contains("ZeroDivisionError"),
        "{v}"
    );
    // The result is a durable record of the session, and its output streamed to the
    // verify lane.
    let sid = m["session_id"].as_str().unwrap();
    let recs = journal(&d, sid);
    let completed = recs
        .iter()
        .find(|r| r["kind"] == "verify.completed")
        .expect("a verify.completed record");
    assert_eq!(completed["data"]["failures"], v["failures"]);
    let lane = completed["lane"].as_str().unwrap();
    assert!(lane.starts_with("verify_"), "{lane}");
    assert!(recs.iter().any(|r| r["kind"] == "lane.delta"
        && r["lane"] == lane
        && r["data"]["text"].as_str().unwrap().contains("1 failed")));
    let lanes = d.get(&format!("/v1/sessions/{sid}/lanes")).json();
    assert!(
        lanes["lanes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["lane"] == lane && l["status"] == "failed"),
        "{lanes}"
    );

    // `r1 ctl verify test` on the same worktree: the same failure, exit code 1.
    let wt = m["worktree_id"].as_str().unwrap();
    let out = home.run(&["ctl", "--json", "verify", "test", "--worktree", wt]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["failures"], v["failures"], "{r}");
    // Neither or both of worktree and session: a usage error from the daemon too.
    let r = d.post("/v1/verify/test", "{}");
    assert_eq!(r.status, 400, "{}", r.body);
    let r = d.post(
        "/v1/verify/test",
        &json!({"worktree_id": wt, "session_id": sid}).to_string(),
    );
    assert_eq!(r.status, 400, "{}", r.body);
}

#[test]
fn verify_with_nothing_to_run_says_how_to_configure_it() {
    let (_t, repo) = repo();
    let home = Home::new();
    let d = home.serve(&[]);
    let r = d.post(
        "/v1/sessions",
        &json!({"workdir": repo, "worktree": true}).to_string(),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let sid = r.json()["id"].as_str().unwrap().to_string();
    let r = d.post(
        "/v1/verify/build",
        &json!({ "session_id": sid }).to_string(),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("verify.toml"), "{}", r.body);
    // A package name that would smuggle shell is refused before anything runs.
    let r = d.post(
        "/v1/verify/build",
        &json!({"session_id": sid, "packages": ["a; rm -rf /"]}).to_string(),
    );
    assert_eq!(r.status, 400, "{}", r.body);
}

#[test]
fn cancel_works_in_every_state_and_is_idempotent() {
    let (_t, repo) = repo_with_check("test", "echo started\nsleep 30\n", "text");
    let home = Home::new();
    write_config(&home, "[missions]\nworkers = 1\n");
    let d = home.serve(&[]);

    // Running (a long turn) and queued behind it.
    let running = create(
        &d,
        json!({"prompt": "/run sleep 30", "workdir": repo, "policy": {"run_command": "allow"}}),
    );
    let queued = create(&d, json!({"prompt": "short", "workdir": repo}));
    wait_state(&d, &running, "running", Duration::from_secs(20));
    let sid = mission(&d, &running)["session_id"]
        .as_str()
        .unwrap()
        .to_string();
    wait_until(Duration::from_secs(10), "the turn to run", || {
        state_of(&d, &sid) == "busy"
    });
    // Queued: cancelled before it ever gets a session.
    let r = d.post(&format!("/v1/missions/{queued}/cancel"), "{}");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["state"], "cancelled", "{}", r.body);
    assert!(r.json()["session_id"].is_null(), "{}", r.body);
    // Running: answered cancelled, and the session's turn is stopped.
    let r = d.post(&format!("/v1/missions/{running}/cancel"), "{}");
    assert_eq!(r.json()["state"], "cancelled", "{}", r.body);
    wait_until(Duration::from_secs(10), "the turn to stop", || {
        state_of(&d, &sid) == "idle"
    });
    // Again: unchanged, still 200.
    let again = d.post(&format!("/v1/missions/{running}/cancel"), "{}");
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.json()["state"], "cancelled");
    assert_eq!(
        again.json()["timings"]["finished_at"],
        r.json()["timings"]["finished_at"]
    );

    // Verifying: the verify command (sleep 30) is killed with its process group.
    let verifying = create(
        &d,
        json!({"prompt": "quick", "workdir": repo, "verify": ["test"]}),
    );
    wait_state(&d, &verifying, "verifying", Duration::from_secs(20));
    let vsid = mission(&d, &verifying)["session_id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut lane = String::new();
    wait_until(Duration::from_secs(10), "the verify output", || {
        journal(&d, &vsid).iter().any(|r| {
            let hit = r["kind"] == "lane.delta"
                && r["data"]["text"].as_str().unwrap_or("").contains("started");
            if hit {
                lane = r["lane"].as_str().unwrap().to_string();
            }
            hit
        })
    });
    let t0 = std::time::Instant::now();
    let r = d.post(&format!("/v1/missions/{verifying}/cancel"), "{}");
    assert_eq!(r.json()["state"], "cancelled", "{}", r.body);
    wait_until(Duration::from_secs(10), "the verify lane to end", || {
        let lanes = d.get(&format!("/v1/sessions/{vsid}/lanes")).json();
        lanes["lanes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["lane"] == lane.as_str() && l["status"] == "cancelled")
    });
    assert!(t0.elapsed() < Duration::from_secs(10));
    assert_eq!(mission(&d, &verifying)["state"], "cancelled");
    // An unknown mission is not_found on every verb.
    let r = d.post("/v1/missions/ms_nope/cancel", "{}");
    assert_eq!(r.status, 404, "{}", r.body);
}

#[test]
fn a_mission_killed_mid_turn_comes_back_paused_and_resumes_to_the_end() {
    let (_t, repo) = repo();
    let home = Home::new();
    write_config(&home, "[missions]\nworkers = 2\n[mcp]\ncaps = \"write\"\n");
    let d = home.serve(&[]);
    let id = create(
        &d,
        json!({"prompt": "/run sleep 30", "workdir": repo, "policy": {"run_command": "allow"}}),
    );
    let other = create(
        &d,
        json!({"prompt": "/run sleep 31", "workdir": repo, "policy": {"run_command": "allow"}}),
    );
    wait_state(&d, &id, "running", Duration::from_secs(20));
    wait_state(&d, &other, "running", Duration::from_secs(20));
    let sid = mission(&d, &id)["session_id"].as_str().unwrap().to_string();
    wait_until(Duration::from_secs(10), "the turn to run", || {
        state_of(&d, &sid) == "busy"
    });
    let queued = create(&d, json!({"prompt": "after the restart", "workdir": repo}));
    // kill -9.
    drop(d);

    let d = home.serve(&[]);
    let m = mission(&d, &id);
    assert_eq!(m["state"], "paused", "{m}");
    assert!(
        m["reason"].as_str().unwrap().contains("daemon stopped"),
        "{m}"
    );
    assert_eq!(state_of(&d, &sid), "paused");
    assert_eq!(mission(&d, &other)["state"], "paused");
    // Paused missions hold no worker: the queued one runs to its end.
    wait_state(&d, &queued, "succeeded", Duration::from_secs(30));
    assert_eq!(mission(&d, &id)["state"], "paused");
    // Cancel while paused: final at once, and resuming it afterwards changes nothing.
    let r = d.post(&format!("/v1/missions/{other}/cancel"), "{}");
    assert_eq!(r.json()["state"], "cancelled", "{}", r.body);
    let r = d.post(&format!("/v1/missions/{other}/resume"), "{}");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["state"], "cancelled", "{}", r.body);

    // Resume through MCP; it continues in the same session and finishes.
    let v = mcp_call(&d, "r1_mission_resume", json!({ "mission_id": id }));
    assert_eq!(v["ok"], true, "{v}");
    let m = wait_state(&d, &id, "succeeded", Duration::from_secs(60));
    assert_eq!(m["session_id"], sid.as_str(), "{m}");
    let recs = journal(&d, &sid);
    let users = recs
        .iter()
        .filter(|r| r["kind"] == "session.message" && r["data"]["role"] == "user")
        .count();
    assert_eq!(users, 2, "the prompt, then the continuation");
}

#[test]
fn legacy_build_from_sow_creates_a_mission_with_a_deprecation_link() {
    let (_t, repo) = repo();
    let home = Home::new();
    write_config(&home, "[mcp]\ncaps = \"write\"\n");
    let d = home.serve(&[]);
    for name in ["build_from_sow", "stoke_build_from_sow"] {
        let v = mcp_call(
            &d,
            name,
            json!({"repo_root": repo, "sow": "write the changelog"}),
        );
        assert_eq!(v["ok"], true, "{v}");
        let id = v["data"]["id"].as_str().unwrap();
        assert!(id.starts_with("ms_"), "{v}");
        assert_eq!(v["links"]["self"], format!("/v1/missions/{id}"));
        let dep = v["links"]["deprecations"][0].as_str().unwrap();
        assert!(dep.contains("r1.mission.create"), "{v}");
        let st = mcp_call(&d, "stoke_get_mission_status", json!({ "mission_id": id }));
        assert_eq!(st["data"]["id"], id, "{st}");
        assert!(st["links"]["deprecations"][0]
            .as_str()
            .unwrap()
            .contains("r1.mission.get"));
        wait_state(&d, id, "succeeded", Duration::from_secs(30));
        let logs = mcp_call(&d, "get_mission_logs", json!({ "mission_id": id }));
        assert!(
            logs["data"]["log_tail"]
                .as_array()
                .unwrap()
                .iter()
                .any(|l| l.as_str().unwrap().contains("write the changelog")),
            "{logs}"
        );
    }
    let l = mcp_call(&d, "list_missions", json!({}));
    assert_eq!(l["data"]["missions"].as_array().unwrap().len(), 2, "{l}");
    // Missing arguments: a validation error that names them.
    let v = mcp_call(&d, "build_from_sow", json!({"sow": "x"}));
    assert_eq!(v["error_code"], "validation", "{v}");
    assert!(v["error_message"].as_str().unwrap().contains("repo_root"));
}
