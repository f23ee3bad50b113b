//! Issue 15 (hooks): real scripts in `$R1_HOME/hooks` fired by real session events.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::agent::wait_for;
use crate::sessions::{records, start};
use crate::support::*;

/// A home whose hooks directory exists before the daemon starts (for `on-startup`).
fn home_with_hooks() -> (Home, PathBuf) {
    let home = Home::new();
    let hooks = home.path.join("hooks");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&hooks)
        .unwrap();
    (home, hooks)
}

fn hook(dir: &Path, name: &str, body: &str) {
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o700)).unwrap();
}

/// A hook that saves its stdin as `<out>/<event>.<pid>.json` (whole, by a rename).
fn recorder(out: &Path) -> String {
    let f = format!("{}/$R1_EVENT.$$", out.display());
    format!("cat > \"{f}.part\" && mv \"{f}.part\" \"{f}.json\"")
}

fn saved(out: &Path, event: &str) -> Vec<Value> {
    let mut v: Vec<Value> = std::fs::read_dir(out)
        .unwrap()
        .flatten()
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.starts_with(&format!("{event}.")) && name.ends_with(".json")
        })
        .map(|e| serde_json::from_slice(&std::fs::read(e.path()).unwrap()).unwrap())
        .collect();
    v.sort_by_key(|e| e["record"]["seq"].as_u64().unwrap_or(0));
    v
}

fn send(d: &Daemon, id: &str, text: &str) -> Resp {
    d.post(
        &format!("/v1/sessions/{id}/messages"),
        &json!({ "text": text }).to_string(),
    )
}

fn idle(d: &Daemon, id: &str) -> bool {
    d.get(&format!("/v1/sessions/{id}")).json()["state"] == "idle"
}

#[test]
fn each_event_fires_its_hook_once_with_the_record_and_the_session() {
    let (home, hooks) = home_with_hooks();
    let out = tempfile::tempdir().unwrap();
    for event in [
        "on-startup",
        "on-session-start",
        "on-message.sh",
        "on-turn-end",
        "on-session-end",
        "on-mission-finished",
    ] {
        hook(&hooks, event, &recorder(out.path()));
    }
    let d = home.serve(&[]);
    let work = tempfile::tempdir().unwrap();
    wait_until(Duration::from_secs(10), "on-startup", || {
        saved(out.path(), "on-startup").len() == 1
    });
    assert_eq!(saved(out.path(), "on-startup")[0]["event"], "on-startup");

    let id = start(&d, work.path());
    assert_eq!(send(&d, &id, "hello").status, 202);
    wait_until(Duration::from_secs(10), "a turn", || idle(&d, &id));
    wait_until(Duration::from_secs(10), "the hooks", || {
        saved(out.path(), "on-message").len() == 2 && saved(out.path(), "on-turn-end").len() == 1
    });
    let start_ev = saved(out.path(), "on-session-start");
    assert_eq!(start_ev.len(), 1);
    assert_eq!(start_ev[0]["record"]["kind"], "session.created");
    assert_eq!(start_ev[0]["session_id"], id.as_str());
    assert_eq!(start_ev[0]["session"]["id"], id.as_str());
    let msgs = saved(out.path(), "on-message");
    assert_eq!(msgs[0]["record"]["kind"], "session.message");
    assert_eq!(msgs[0]["record"]["data"]["role"], "user");
    assert_eq!(msgs[0]["record"]["data"]["text"], "hello");
    assert_eq!(msgs[1]["record"]["data"]["role"], "assistant");
    assert_eq!(msgs[1]["record"]["data"]["text"], "echo: hello");
    let end = saved(out.path(), "on-turn-end");
    assert_eq!(end[0]["record"]["data"]["state"], "idle");

    // The journal says which hook ran for which record.
    let recs = wait_for(&d, &id, "hook.ran", |r| {
        r["kind"] == "hook.ran" && r["data"]["event"] == "on-turn-end"
    });
    let ran: Vec<&Value> = recs.iter().filter(|r| r["kind"] == "hook.ran").collect();
    let user_seq = msgs[0]["record"]["seq"].as_u64().unwrap();
    assert!(ran.iter().any(|r| r["data"]["hook"] == "on-message.sh"
        && r["data"]["event_seq"] == user_seq
        && r["data"]["exit_code"] == 0));

    let killed = home.run(&["ctl", "sessions", "kill", &id]);
    assert!(killed.status.success(), "{killed:?}");
    wait_until(Duration::from_secs(10), "on-session-end", || {
        saved(out.path(), "on-session-end").len() == 1
    });
    assert_eq!(
        saved(out.path(), "on-session-end")[0]["record"]["kind"],
        "session.ended"
    );

    let m = d.post(
        "/v1/missions",
        &json!({"spec": {"prompt": "hi", "workdir": work.path(), "worktree": false}}).to_string(),
    );
    assert!(m.status < 300, "{}", m.body);
    let mid = m.json()["id"].as_str().unwrap().to_string();
    wait_until(Duration::from_secs(20), "on-mission-finished", || {
        saved(out.path(), "on-mission-finished").len() == 1
    });
    let fin = &saved(out.path(), "on-mission-finished")[0];
    assert_eq!(fin["mission"]["id"], mid.as_str());
    std::thread::sleep(Duration::from_millis(300));
    // Once each, no more.
    assert_eq!(saved(out.path(), "on-startup").len(), 1);
    assert_eq!(saved(out.path(), "on-session-start").len(), 2);
    assert_eq!(saved(out.path(), "on-mission-finished").len(), 1);
    let status = d.get("/v1/status").json();
    assert!(status["hooks_run"].as_u64().unwrap() >= 8, "{status}");
    let metrics = d.get("/v1/metrics").body;
    assert!(!metrics.contains("r1_hook_runs_total 0\n"), "{metrics}");
}

#[test]
fn a_reply_posts_a_follow_up_message() {
    let (home, hooks) = home_with_hooks();
    hook(
        &hooks,
        "on-message",
        r#"grep -q '"text":"ping"' && echo '{"reply":"pong"}'; exit 0"#,
    );
    let d = home.serve(&[]);
    let work = tempfile::tempdir().unwrap();
    let id = start(&d, work.path());
    assert_eq!(send(&d, &id, "ping").status, 202);
    let recs = wait_for(&d, &id, "echo: pong", |r| {
        r["kind"] == "session.message" && r["data"]["text"] == "echo: pong"
    });
    assert!(recs.iter().any(|r| r["kind"] == "session.message"
        && r["data"]["role"] == "user"
        && r["data"]["text"] == "pong"));
    assert!(recs
        .iter()
        .any(|r| r["kind"] == "hook.ran" && r["data"]["action"] == "reply"));
}

#[test]
fn pre_send_blocks_rewrites_and_lets_through_on_timeout() {
    let (home, hooks) = home_with_hooks();
    hook(
        &hooks,
        "pre-send.sh",
        r#"in=$(cat)
case "$in" in
  *secret*) echo '{"action":"block","reason":"no secrets here"}' ;;
  *shout*) echo '{"action":"rewrite","text":"REWRITTEN"}' ;;
  *) echo '{"action":"allow"}' ;;
esac"#,
    );
    let d = home.serve(&[]);
    let work = tempfile::tempdir().unwrap();
    let id = start(&d, work.path());

    let r = send(&d, &id, "my secret");
    assert_eq!(r.status, 409, "{}", r.body);
    let msg = r.json()["error_message"].as_str().unwrap().to_string();
    assert!(
        msg.contains("pre-send.sh") && msg.contains("no secrets here"),
        "{msg}"
    );
    let recs = records(&d, &id);
    let blocked = recs.iter().find(|r| r["kind"] == "hook.blocked").unwrap();
    assert_eq!(blocked["data"]["hook"], "pre-send.sh");
    assert_eq!(blocked["data"]["reason"], "no secrets here");
    assert!(!recs
        .iter()
        .any(|r| r["kind"] == "session.message" && r["data"]["text"] == "my secret"));

    assert_eq!(send(&d, &id, "shout this").status, 202);
    let recs = wait_for(&d, &id, "the rewritten answer", |r| {
        r["data"]["text"] == "echo: REWRITTEN"
    });
    assert!(recs
        .iter()
        .any(|r| r["data"]["role"] == "user" && r["data"]["text"] == "REWRITTEN"));
    assert!(recs
        .iter()
        .any(|r| r["kind"] == "hook.ran" && r["data"]["action"] == "rewrite"));

    // A pre-send hook that hangs holds the message only up to its timeout.
    hook(
        &hooks,
        "pre-send.sh",
        "# r1:timeout=1s\nsleep 30\necho '{\"action\":\"block\"}'",
    );
    wait_until(Duration::from_secs(10), "idle", || idle(&d, &id));
    let t = Instant::now();
    assert_eq!(send(&d, &id, "slow gate").status, 202);
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    let recs = wait_for(&d, &id, "echo: slow gate", |r| {
        r["data"]["text"] == "echo: slow gate"
    });
    let failed = recs.iter().find(|r| r["kind"] == "hook.failed").unwrap();
    let reason = failed["data"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("timed out") && reason.contains("went through"),
        "{reason}"
    );
}

#[test]
fn an_approval_hook_denies_rm_rf_and_the_model_sees_it() {
    let (home, hooks) = home_with_hooks();
    hook(
        &hooks,
        "on-approval-request.sh",
        r#"grep -q 'rm -rf' && echo '{"decision":"deny","reason":"rm -rf is not allowed"}'; exit 0"#,
    );
    let d = home.serve(&[]);
    let work = tempfile::tempdir().unwrap();
    std::fs::create_dir(work.path().join("scratch")).unwrap();
    let id = start(&d, work.path());
    assert_eq!(send(&d, &id, "/run rm -rf scratch").status, 202);
    let recs = wait_for(&d, &id, "the model's answer after the denial", |r| {
        r["kind"] == "session.message"
            && r["data"]["text"]
                .as_str()
                .is_some_and(|t| t.starts_with("echo: run_command failed"))
    });
    assert!(recs
        .iter()
        .any(|r| r["kind"] == "approval.resolved" && r["data"]["decision"] == "deny"));
    let ran = recs.iter().find(|r| r["kind"] == "hook.ran").unwrap();
    assert_eq!(ran["data"]["action"], "deny");
    assert_eq!(ran["data"]["reason"], "rm -rf is not allowed");
    assert!(work.path().join("scratch").exists());
}

#[test]
fn a_hook_past_its_timeout_is_killed_with_its_children() {
    let (home, hooks) = home_with_hooks();
    let out = tempfile::tempdir().unwrap();
    let pidfile = out.path().join("child.pid");
    hook(
        &hooks,
        "on-session-start",
        &format!(
            "# r1:timeout=1s\nsleep 300 &\necho $! > {}\nwait",
            pidfile.display()
        ),
    );
    let d = home.serve(&[]);
    let work = tempfile::tempdir().unwrap();
    let id = start(&d, work.path());
    let recs = wait_for(&d, &id, "hook.failed", |r| r["kind"] == "hook.failed");
    let failed = recs.iter().find(|r| r["kind"] == "hook.failed").unwrap();
    assert!(failed["data"]["reason"]
        .as_str()
        .unwrap()
        .contains("timed out"));
    let pid: u32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    wait_until(Duration::from_secs(5), "the child sleep to die", || {
        !alive(pid)
    });
}

/// Median time from a send to the session being idle again, over `n` echo turns.
fn turn_latency(d: &Daemon, id: &str, n: usize) -> Duration {
    let mut times = Vec::new();
    for i in 0..n {
        let t = Instant::now();
        assert_eq!(send(d, id, &format!("turn {i}")).status, 202);
        while !idle(d, id) {
            std::thread::sleep(Duration::from_millis(1));
        }
        times.push(t.elapsed());
    }
    times.sort();
    times[n / 2]
}

#[test]
fn a_slow_hook_never_delays_a_turn() {
    let (home, hooks) = home_with_hooks();
    let d = home.serve(&[]);
    let work = tempfile::tempdir().unwrap();
    let id = start(&d, work.path());
    let without = turn_latency(&d, &id, 20);
    // Two on-message events per turn: 100 events, each holding a hook for 1 s, while
    // the pool (8) runs them 8 at a time.
    hook(&hooks, "on-message", "sleep 1");
    let with = turn_latency(&d, &id, 50);
    assert!(
        with < without + Duration::from_millis(100),
        "median turn {with:?} with a slow hook, {without:?} without"
    );
    wait_until(Duration::from_secs(10), "the hooks to start", || {
        d.get("/v1/status").json()["hooks_run"].as_u64().unwrap() >= 8
    });
}

#[test]
fn a_group_writable_hook_is_refused_and_listed_as_such() {
    let (home, hooks) = home_with_hooks();
    let out = tempfile::tempdir().unwrap();
    hook(&hooks, "on-message", &recorder(out.path()));
    std::fs::set_permissions(
        hooks.join("on-message"),
        std::fs::Permissions::from_mode(0o770),
    )
    .unwrap();
    let d = home.serve(&[]);
    let work = tempfile::tempdir().unwrap();
    let id = start(&d, work.path());
    assert_eq!(send(&d, &id, "hello").status, 202);
    wait_for(&d, &id, "echo", |r| r["data"]["text"] == "echo: hello");
    std::thread::sleep(Duration::from_millis(300));
    assert!(saved(out.path(), "on-message").is_empty());

    let list = home.run_json(&["ctl", "hooks", "list"]);
    let h = &list["hooks"][0];
    assert_eq!(h["name"], "on-message");
    assert_eq!(h["trusted"], false);
    assert!(h["refused"].as_str().unwrap().contains("writable"), "{h}");
    let doctor = home.run(&["doctor"]);
    let text = String::from_utf8_lossy(&doctor.stdout).to_string()
        + &String::from_utf8_lossy(&doctor.stderr);
    assert!(
        text.contains("on-message") && text.contains("refused"),
        "{text}"
    );
    drop(d);
}

#[test]
fn no_hook_sees_the_token() {
    let (home, hooks) = home_with_hooks();
    let out = tempfile::tempdir().unwrap();
    for event in ["on-startup", "on-message", "pre-send"] {
        hook(
            &hooks,
            event,
            &format!(
                "f=\"{}/$R1_EVENT\"; env > \"$f.part\" && mv \"$f.part\" \"$f.env\"",
                out.path().display()
            ),
        );
    }
    let d = home.serve_env(&[], &[("R1_TOKEN_PROBE", "x"), ("MY_SECRET", "y")]);
    let token = d.token();
    let work = tempfile::tempdir().unwrap();
    let id = start(&d, work.path());
    assert_eq!(send(&d, &id, "hello").status, 202);
    wait_until(Duration::from_secs(10), "three env dumps", || {
        ["on-startup", "on-message", "pre-send"]
            .iter()
            .all(|e| out.path().join(format!("{e}.env")).exists())
    });
    for e in ["on-startup", "on-message", "pre-send"] {
        let env = std::fs::read_to_string(out.path().join(format!("{e}.env"))).unwrap();
        assert!(!env.contains(&token), "{e} saw the token");
        assert!(
            !env.contains("MY_SECRET") && !env.contains("R1_TOKEN_PROBE"),
            "{env}"
        );
        assert!(env.contains(&format!("R1_EVENT={e}")), "{env}");
    }
    let msg = std::fs::read_to_string(out.path().join("on-message.env")).unwrap();
    assert!(msg.contains(&format!("R1_SESSION_ID={id}")), "{msg}");
}

#[test]
fn hooks_test_runs_one_hook_against_a_sample_event() {
    let (home, hooks) = home_with_hooks();
    hook(
        &hooks,
        "on-approval-request.py",
        r#"grep -q 'rm -rf' && echo '{"decision":"deny","reason":"sample"}'; exit 0"#,
    );
    let _d = home.serve(&[]);
    let v = home.run_json(&["ctl", "hooks", "test", "on-approval-request"]);
    assert_eq!(v["hook"], "on-approval-request.py");
    assert_eq!(v["exit_code"], 0);
    assert_eq!(v["answer"]["decision"], "deny");
    let v = home.run_json(&[
        "ctl",
        "hooks",
        "test",
        "on-approval-request.py",
        "--event",
        r#"{"record":{"data":{"args":{"cmd":"ls"}}}}"#,
    ]);
    assert!(v.get("answer").is_none(), "{v}");
    let out = home.run(&["ctl", "hooks", "test", "on-nothing"]);
    assert!(!out.status.success());
}

#[test]
fn a_failed_turn_fires_on_error_with_its_record() {
    let (home, hooks) = home_with_hooks();
    let out = tempfile::tempdir().unwrap();
    hook(&hooks, "on-error", &recorder(out.path()));
    let d = home.serve(&[]);
    let work = tempfile::tempdir().unwrap();
    // A budget of one token is spent by the first answer: the turn fails.
    let r = d.post(
        "/v1/sessions",
        &json!({"workdir": work.path(), "token_budget": 1}).to_string(),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.json()["id"].as_str().unwrap().to_string();
    assert_eq!(send(&d, &id, "hello").status, 202);
    wait_until(Duration::from_secs(10), "on-error", || {
        saved(out.path(), "on-error").len() == 1
    });
    let e = &saved(out.path(), "on-error")[0];
    assert_eq!(e["record"]["kind"], "session.error");
    assert_eq!(e["record"]["data"]["code"], "budget_exceeded");
    assert_eq!(e["session"]["id"], id.as_str());
}
