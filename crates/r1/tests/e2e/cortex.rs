//! Issue 17: the cortex. Notes published by clients and lobes are journaled, critical
//! ones reach the next request the provider is sent (once), and lobes — the built-in
//! `loop`, `budget` and `verify`, and user executables in `$R1_HOME/lobes` — watch a
//! session and can be paused and resumed per session.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use r1_test_support::{
    openai_text_chunks, openai_tool_call_chunks, FakeKind, Scripted, FAKE_INPUT_TOKENS,
    FAKE_OUTPUT_TOKENS,
};
use serde_json::{json, Value};

use crate::providers::{setup_with, system_of, turn, KEY};
use crate::sessions::records;
use crate::support::*;

fn publish(d: &Daemon, id: &str, note: Value) -> Resp {
    d.post(
        &format!("/v1/sessions/{id}/cortex/notes"),
        &json!({ "note": note }).to_string(),
    )
}

fn notes(d: &Daemon, id: &str) -> Vec<Value> {
    let r = d.get(&format!("/v1/sessions/{id}/cortex/notes"));
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["notes"].as_array().unwrap().clone()
}

fn lobes(d: &Daemon, id: &str) -> Vec<Value> {
    let r = d.get(&format!("/v1/sessions/{id}/cortex/lobes"));
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["lobes"].as_array().unwrap().clone()
}

fn lobe<'a>(list: &'a [Value], name: &str) -> &'a Value {
    list.iter()
        .find(|l| l["name"] == name)
        .unwrap_or_else(|| panic!("no lobe {name} in {list:?}"))
}

fn set_lobe(d: &Daemon, id: &str, name: &str, action: &str) -> Resp {
    d.post(
        &format!("/v1/sessions/{id}/cortex/lobes/{name}/{action}"),
        "{}",
    )
}

fn wait_note(d: &Daemon, id: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(n) = notes(d, id).into_iter().find(|n| pred(n)) {
            return n;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; notes: {:?}",
            notes(d, id)
        );
        std::thread::sleep(Duration::from_millis(30));
    }
}

fn start_with(d: &Daemon, body: Value) -> String {
    let r = d.post("/v1/sessions", &body.to_string());
    assert_eq!(r.status, 201, "{}", r.body);
    r.json()["id"].as_str().unwrap().to_string()
}

fn read_call(i: usize) -> Scripted {
    Scripted::Sse(openai_tool_call_chunks(
        &format!("call_{i}"),
        "read_file",
        r#"{"path": "hello.txt"}"#,
        1,
    ))
}

#[test]
fn a_critical_note_reaches_the_next_request_once_and_notes_survive_a_restart() {
    let mut s = setup_with(
        FakeKind::OpenAi,
        vec![
            Scripted::Sse(openai_text_chunks("first answer", 1)),
            Scripted::Sse(openai_text_chunks("second answer", 1)),
            Scripted::Sse(openai_text_chunks("third answer", 1)),
        ],
        "",
    );
    let id = start_with(&s.d, json!({"workdir": s.work.path()}));
    turn(&s, &id, "first question");

    let r = publish(
        &s.d,
        &id,
        json!({"text": "CRITICAL-42: the tests in tests/io.rs fail", "tags": ["verify"], "critical": true}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let n = r.json();
    assert!(n["note_id"].as_str().unwrap().starts_with("note_"), "{n}");
    assert_eq!(n["source"], "client");
    assert_eq!(n["critical"], true);
    let r = publish(&s.d, &id, json!({"text": "PLAIN-7: just so you know"}));
    assert_eq!(r.status, 201, "{}", r.body);
    // Read-your-writes: both are on the board and in the journal at once.
    let board = notes(&s.d, &id);
    assert_eq!(board.len(), 2, "{board:?}");
    assert_eq!(board[1]["critical"], false);
    assert_eq!(
        records(&s.d, &id)
            .iter()
            .filter(|r| r["kind"] == "cortex.note")
            .count(),
        2
    );

    turn(&s, &id, "second question");
    turn(&s, &id, "third question");
    let sent = s.fake.recorded();
    assert_eq!(sent.len(), 3, "{sent:#?}");
    assert!(!system_of(&sent[0].body).contains("CRITICAL-42"));
    let second = system_of(&sent[1].body);
    assert!(second.contains("CRITICAL-42: the tests"), "{second}");
    assert!(!second.contains("PLAIN-7"), "{second}");
    // Shown once: the turn after does not repeat it.
    assert!(!system_of(&sent[2].body).contains("CRITICAL-42"));

    // `since_seq` filters; the board comes back after a restart.
    let since = board[1]["seq"].as_u64().unwrap();
    let r =
        s.d.get(&format!("/v1/sessions/{id}/cortex/notes?since_seq={since}"));
    assert_eq!(r.json()["notes"].as_array().unwrap().len(), 1, "{}", r.body);
    if let Some(mut c) = s.d.child.take() {
        c.kill().unwrap();
        c.wait().unwrap();
    }
    s.d = s.home.serve_env(&[], &[("R1T_MODEL_KEY", KEY)]);
    assert_eq!(notes(&s.d, &id), board);

    // Bad input is refused with a clear error and changes nothing.
    for (bad, want) in [
        (json!({"text": "  "}), "empty"),
        (json!({"text": "x".repeat(9000)}), "at most 8192"),
        (json!({"text": "x", "tags": [""]}), "tags"),
        (json!({"text": "x", "colour": "red"}), "colour"),
    ] {
        let r = publish(&s.d, &id, bad);
        assert_eq!(r.status, 400, "{}", r.body);
        assert!(r.body.contains(want), "{want}: {}", r.body);
    }
    let r = publish(&s.d, "ses_nope", json!({"text": "x"}));
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(notes(&s.d, &id).len(), 2);
}

#[test]
fn the_loop_lobe_fires_on_three_identical_tool_calls_and_pausing_it_stops_it() {
    let s = setup_with(
        FakeKind::OpenAi,
        vec![
            read_call(1),
            read_call(2),
            read_call(3),
            Scripted::Sse(openai_text_chunks("done reading", 1)),
            Scripted::Sse(openai_text_chunks("next answer", 1)),
            // With the lobe paused: the same three calls again.
            read_call(4),
            read_call(5),
            read_call(6),
            Scripted::Sse(openai_text_chunks("done again", 1)),
        ],
        "",
    );
    std::fs::write(s.work.path().join("hello.txt"), "hi").unwrap();
    let id = start_with(
        &s.d,
        json!({"workdir": s.work.path(), "policy": {"read_file": "allow"}}),
    );
    turn(&s, &id, "read hello.txt");
    let n = wait_note(&s.d, &id, "the loop note", |n| n["source"] == "loop");
    assert_eq!(n["critical"], true, "{n}");
    assert!(n["text"].as_str().unwrap().contains("`read_file`"), "{n}");
    assert_eq!(
        notes(&s.d, &id)
            .iter()
            .filter(|n| n["source"] == "loop")
            .count(),
        1
    );
    // The agent is told at the start of its next turn.
    turn(&s, &id, "go on");
    let sent = s.fake.recorded();
    assert!(
        system_of(&sent[4].body).contains("same arguments 3 times"),
        "{}",
        system_of(&sent[4].body)
    );
    assert_eq!(lobe(&lobes(&s.d, &id), "loop")["notes"], 1);

    // Pause, twice: both answer 200 and one record is journaled.
    for _ in 0..2 {
        let r = set_lobe(&s.d, &id, "loop", "pause");
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(
            lobe(r.json()["lobes"].as_array().unwrap(), "loop")["paused"],
            true
        );
    }
    let toggles = |d: &Daemon| {
        records(d, &id)
            .iter()
            .filter(|r| r["kind"] == "cortex.lobe")
            .count()
    };
    assert_eq!(toggles(&s.d), 1);
    turn(&s, &id, "read it again");
    assert_eq!(
        notes(&s.d, &id)
            .iter()
            .filter(|n| n["source"] == "loop")
            .count(),
        1,
        "a paused lobe published"
    );
    for _ in 0..2 {
        let r = set_lobe(&s.d, &id, "loop", "resume");
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(
            lobe(r.json()["lobes"].as_array().unwrap(), "loop")["paused"],
            false
        );
    }
    assert_eq!(toggles(&s.d), 2);
    let r = set_lobe(&s.d, &id, "nope", "pause");
    assert_eq!(r.status, 404, "{}", r.body);
}

#[test]
fn the_budget_lobe_warns_at_80_percent_and_the_agent_is_told() {
    let per_call = FAKE_INPUT_TOKENS + FAKE_OUTPUT_TOKENS;
    let s = setup_with(
        FakeKind::OpenAi,
        vec![
            Scripted::Sse(openai_text_chunks("first answer", 1)),
            Scripted::Sse(openai_text_chunks("second answer", 1)),
        ],
        "",
    );
    // One call uses 1/1.2 of the budget: past 80 %, not past the budget.
    let budget = per_call * 6 / 5;
    let id = start_with(
        &s.d,
        json!({"workdir": s.work.path(), "token_budget": budget}),
    );
    turn(&s, &id, "first question");
    let n = wait_note(&s.d, &id, "the budget note", |n| n["source"] == "budget");
    assert_eq!(n["critical"], true, "{n}");
    assert!(
        n["text"]
            .as_str()
            .unwrap()
            .contains(&format!("{budget}-token budget")),
        "{n}"
    );
    turn(&s, &id, "second question");
    let sent = s.fake.recorded();
    assert!(system_of(&sent[1].body).contains("token budget"));
}

#[test]
fn the_verify_lobe_publishes_a_failing_test_after_a_turn_that_changed_files() {
    let (_t, repo) = crate::worktrees::repo();
    std::fs::create_dir(repo.join(".r1")).unwrap();
    std::fs::write(
        repo.join(".r1/verify.toml"),
        "[test]\ncommand = \"sh check.sh\"\nformat = \"text\"\n",
    )
    .unwrap();
    std::fs::write(
        repo.join("check.sh"),
        "echo 'test io::reads_back ... FAILED'\nexit 1\n",
    )
    .unwrap();
    crate::worktrees::git(&repo, &["add", "."]);
    crate::worktrees::git(&repo, &["commit", "-q", "-m", "verify config"]);
    let s = setup_with(
        FakeKind::OpenAi,
        vec![
            Scripted::Sse(openai_tool_call_chunks(
                "call_w",
                "write_file",
                r#"{"path": "a.txt", "content": "x"}"#,
                1,
            )),
            Scripted::Sse(openai_text_chunks("wrote it", 1)),
        ],
        "",
    );
    let id = start_with(
        &s.d,
        json!({"workdir": repo, "worktree": true, "policy": {"write_file": "allow"}}),
    );
    turn(&s, &id, "write a.txt");
    let n = wait_note(&s.d, &id, "the verify note", |n| n["source"] == "verify");
    assert_eq!(n["critical"], true, "{n}");
    assert_eq!(n["tags"], json!(["verify", "test"]), "{n}");
    assert!(n["text"].as_str().unwrap().contains("verify test"), "{n}");
    // It ran as a verify lane of the session, with its durable record.
    assert!(records(&s.d, &id)
        .iter()
        .any(|r| r["kind"] == "verify.completed" && r["data"]["ok"] == false));
}

#[test]
fn user_lobes_are_fed_the_session_and_publish_notes_and_untrusted_ones_are_refused() {
    let home = Home::new();
    let dir = home.path.join("lobes");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&home.path, std::fs::Permissions::from_mode(0o700)).unwrap();
    let script = dir.join("watcher");
    std::fs::write(
        &script,
        "#!/usr/bin/env python3\nimport json, os, sys\nassert 'R1_TOKEN' not in os.environ\nfor line in sys.stdin:\n    r = json.loads(line)\n    d = r.get('data', {})\n    if r['kind'] == 'session.message' and d.get('role') == 'user':\n        print(json.dumps({'text': 'lobe saw: ' + d['text'], 'tags': ['seen']}), flush=True)\n    if r['kind'] == 'cortex.note' and d.get('source') == 'watcher':\n        print(json.dumps({'text': 'fed its own note'}), flush=True)\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o700)).unwrap();
    let bad = dir.join("sloppy");
    std::fs::write(&bad, "#!/bin/sh\necho '{\"text\": \"should never run\"}'\n").unwrap();
    std::fs::set_permissions(&bad, std::fs::Permissions::from_mode(0o777)).unwrap();
    let d = home.serve(&[]);
    let work = tempfile::tempdir().unwrap();
    let id = start_with(&d, json!({"workdir": work.path()}));

    let list = lobes(&d, &id);
    assert_eq!(
        list.iter()
            .map(|l| l["name"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["verify", "budget", "loop", "sloppy", "watcher"]
    );
    assert_eq!(lobe(&list, "watcher")["kind"], "user");
    assert!(lobe(&list, "watcher").get("error").is_none());
    assert!(
        lobe(&list, "sloppy")["error"]
            .as_str()
            .unwrap()
            .contains("writable by group or others"),
        "{list:?}"
    );

    let send = |text: &str| {
        let r = d.post(
            &format!("/v1/sessions/{id}/messages"),
            &json!({ "text": text }).to_string(),
        );
        assert_eq!(r.status, 202, "{}", r.body);
    };
    send("first");
    let n = wait_note(&d, &id, "the watcher's note", |n| {
        n["text"] == "lobe saw: first"
    });
    assert_eq!(n["source"], "watcher");
    assert_eq!(n["critical"], false);

    let r = set_lobe(&d, &id, "watcher", "pause");
    assert_eq!(r.status, 200, "{}", r.body);
    send("second");
    crate::agent::wait_for(&d, &id, "the second turn", |r| {
        r["kind"] == "session.message"
            && r["data"]["role"] == "assistant"
            && r["data"]["text"].as_str().unwrap_or("").contains("second")
    });
    let r = set_lobe(&d, &id, "watcher", "resume");
    assert_eq!(r.status, 200, "{}", r.body);
    send("third");
    wait_note(&d, &id, "the note after resume", |n| {
        n["text"] == "lobe saw: third"
    });
    let texts: Vec<String> = notes(&d, &id)
        .iter()
        .map(|n| n["text"].as_str().unwrap().to_string())
        .collect();
    assert!(!texts.iter().any(|t| t == "lobe saw: second"), "{texts:?}");
    assert!(
        !texts.iter().any(|t| t.contains("should never run")),
        "{texts:?}"
    );
    assert!(!texts.iter().any(|t| t == "fed its own note"), "{texts:?}");

    // The same board and lobes through the CLI.
    let n = home.run_json(&[
        "ctl",
        "cortex",
        "publish",
        &id,
        "--tag",
        "cli",
        "--critical",
        "-rf / from the CLI",
    ]);
    assert_eq!(n["text"], "-rf / from the CLI");
    assert_eq!(n["critical"], true);
    assert_eq!(n["tags"], json!(["cli"]));
    let listed = home.run_json(&["ctl", "cortex", "notes", &id]);
    assert_eq!(listed["notes"].as_array().unwrap().last().unwrap(), &n);
    let out = home.run(&["ctl", "cortex", "lobes", &id]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        text.contains("watcher") && text.contains("REFUSED"),
        "{text}"
    );
    let paused = home.run_json(&["ctl", "cortex", "pause", &id, "budget"]);
    assert_eq!(
        lobe(paused["lobes"].as_array().unwrap(), "budget")["paused"],
        true
    );
    let out = home.run(&["ctl", "cortex", "pause", &id, "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no lobe `nope`"));
}
