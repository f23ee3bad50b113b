//! Issue 4: real provider wire formats against fake servers on loopback, through the
//! real daemon: tool calls, what the provider was sent, errors, cancel, exec agents.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use r1_test_support::{
    anthropic_text_events, anthropic_tool_use_events, openai_text_chunks, openai_tool_call_chunks,
    FakeKind, FakeProvider, Scripted, FAKE_INPUT_TOKENS, FAKE_OUTPUT_TOKENS,
};
use serde_json::{json, Value};

use crate::agent::wait_for;
use crate::sessions::records;
use crate::support::*;

pub(crate) const KEY: &str = "sk-test-secret-key-r1";

pub(crate) struct Setup {
    _rt: tokio::runtime::Runtime,
    pub(crate) fake: FakeProvider,
    pub(crate) home: Home,
    pub(crate) work: tempfile::TempDir,
    pub(crate) d: Daemon,
}

fn setup(kind: FakeKind, script: Vec<Scripted>) -> Setup {
    setup_with(kind, script, "")
}

/// [`setup`] with `extra` lines in the engine's table of `daemon.toml`.
pub(crate) fn setup_with(kind: FakeKind, script: Vec<Scripted>, extra: &str) -> Setup {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let fake = rt.block_on(FakeProvider::start(kind, script));
    let home = Home::new();
    std::fs::create_dir_all(&home.path).unwrap();
    std::fs::set_permissions(&home.path, std::fs::Permissions::from_mode(0o700)).unwrap();
    let (engine_kind, base) = match kind {
        FakeKind::OpenAi => (
            "openai",
            format!("{}/v1", fake.base_url().trim_end_matches("/v1")),
        ),
        FakeKind::Anthropic => ("anthropic", fake.base_url()),
        FakeKind::OpenAiResponses => unreachable!("no r1 engine speaks the Responses API"),
    };
    std::fs::write(
        home.path.join("daemon.toml"),
        format!(
            "default_engine = \"model\"\n[engines.model]\nkind = \"{engine_kind}\"\nbase_url = \"{base}\"\nmodel = \"test-model-1\"\napi_key_env = \"R1T_MODEL_KEY\"\n{extra}"
        ),
    )
    .unwrap();
    let d = home.serve_env(&[], &[("R1T_MODEL_KEY", KEY)]);
    let work = tempfile::tempdir().unwrap();
    Setup {
        _rt: rt,
        fake,
        home,
        work,
        d,
    }
}

fn start(s: &Setup) -> String {
    let r = s.d.post(
        "/v1/sessions",
        &json!({"workdir": s.work.path()}).to_string(),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.json()["engine"], "model");
    r.json()["id"].as_str().unwrap().to_string()
}

fn send(d: &Daemon, id: &str, text: &str) {
    let r = d.post(
        &format!("/v1/sessions/{id}/messages"),
        &json!({"text": text}).to_string(),
    );
    assert_eq!(r.status, 202, "{}", r.body);
}

pub(crate) fn final_text(recs: &[Value]) -> Option<String> {
    recs.iter()
        .rev()
        .find(|r| {
            r["kind"] == "session.message"
                && r["data"]["role"] == "assistant"
                && r["data"]["tool_calls"]
                    .as_array()
                    .is_none_or(|c| c.is_empty())
        })
        .and_then(|r| r["data"]["text"].as_str().map(str::to_string))
}

/// The key must not be in the journal, the index, the bus or the logs.
fn assert_key_nowhere(home: &Home) {
    for dir in ["sessions", "logs", "bus"] {
        for e in walk(&home.path.join(dir)) {
            let text = String::from_utf8_lossy(&std::fs::read(&e).unwrap()).to_string();
            assert!(!text.contains(KEY), "the API key is in {}", e.display());
        }
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn openai_turn_with_a_streamed_tool_call() {
    let s = setup(
        FakeKind::OpenAi,
        vec![
            Scripted::Sse(openai_tool_call_chunks(
                "call_7",
                "read_file",
                r#"{"path": "hello.txt"}"#,
                4,
            )),
            Scripted::Sse(openai_text_chunks("The file says hi there.", 3)),
        ],
    );
    std::fs::write(s.work.path().join("hello.txt"), "hi there from the file").unwrap();
    let id = start(&s);
    send(&s.d, &id, "what is in hello.txt?");
    let recs = wait_for(&s.d, &id, "the final answer", |r| {
        r["kind"] == "session.state" && r["data"]["state"] == "idle" && r["seq"].as_u64() > Some(3)
    });
    assert_eq!(
        final_text(&recs).as_deref(),
        Some("The file says hi there.")
    );
    let streamed: String = recs
        .iter()
        .filter(|r| r["kind"] == "session.delta")
        .map(|r| r["data"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        streamed, "The file says hi there.",
        "the deltas do not add up to the answer"
    );
    let done = recs.iter().find(|r| r["kind"] == "tool.completed").unwrap();
    assert_eq!(done["data"]["tool"], "read_file");
    assert!(done["data"]["content"]
        .as_str()
        .unwrap()
        .contains("hi there from the file"));
    assert!(
        recs.iter()
            .any(|r| r["data"]["usage"]["input_tokens"].is_u64()),
        "usage not journaled"
    );
    let sent = s.fake.recorded();
    assert_eq!(sent.len(), 2);
    assert_eq!(
        sent[0].header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(sent[0].body["model"], "test-model-1");
    assert_eq!(sent[0].body["stream"], true);
    assert!(sent[0].body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["function"]["name"] == "read_file"));
    // The second request carries the tool call and its result.
    let msgs = sent[1].body["messages"].as_array().unwrap();
    let call = msgs
        .iter()
        .find(|m| m["role"] == "assistant" && m["tool_calls"].is_array())
        .unwrap();
    assert_eq!(call["tool_calls"][0]["id"], "call_7");
    let result = msgs.iter().find(|m| m["role"] == "tool").unwrap();
    assert_eq!(result["tool_call_id"], "call_7");
    assert!(result["content"]
        .as_str()
        .unwrap()
        .contains("hi there from the file"));
    assert_key_nowhere(&s.home);
}

#[test]
fn anthropic_turn_with_partial_json_tool_input() {
    let s = setup(
        FakeKind::Anthropic,
        vec![
            Scripted::Sse(anthropic_tool_use_events(
                Some("Let me look."),
                "toolu_9",
                "read_file",
                r#"{"path": "hello.txt"}"#,
                4,
            )),
            Scripted::Sse(anthropic_text_events("It says hello.", 3)),
        ],
    );
    std::fs::write(s.work.path().join("hello.txt"), "hello from anthropic land").unwrap();
    let id = start(&s);
    send(&s.d, &id, "read it");
    let recs = wait_for(&s.d, &id, "the final answer", |r| {
        r["kind"] == "session.message" && r["data"]["text"] == "It says hello."
    });
    assert_eq!(final_text(&recs).as_deref(), Some("It says hello."));
    let done = recs.iter().find(|r| r["kind"] == "tool.completed").unwrap();
    assert!(done["data"]["content"]
        .as_str()
        .unwrap()
        .contains("hello from anthropic land"));
    let sent = s.fake.recorded();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0].header("x-api-key"), Some(KEY));
    assert!(sent[0].header("anthropic-version").is_some());
    assert_eq!(sent[0].body["model"], "test-model-1");
    let msgs = sent[1].body["messages"].as_array().unwrap();
    let blocks: Vec<Value> = msgs
        .iter()
        .flat_map(|m| m["content"].as_array().cloned().unwrap_or_default())
        .collect();
    assert!(blocks.iter().any(|b| b["type"] == "tool_use"
        && b["id"] == "toolu_9"
        && b["input"]["path"] == "hello.txt"));
    assert!(blocks
        .iter()
        .any(|b| b["type"] == "tool_result" && b["tool_use_id"] == "toolu_9"));
    assert_key_nowhere(&s.home);
}

#[test]
fn provider_failures_become_session_errors_and_the_session_stays_usable() {
    let mut malformed = openai_text_chunks("partial answ", 2);
    malformed.insert(1, "{this is not json".to_string());
    let s = setup(
        FakeKind::OpenAi,
        vec![
            Scripted::Status(500, r#"{"error":{"message":"boom"}}"#.into()),
            Scripted::Status(500, r#"{"error":{"message":"boom"}}"#.into()),
            Scripted::Status(500, r#"{"error":{"message":"boom"}}"#.into()),
            Scripted::Sse(openai_text_chunks("after 500s", 2)),
            Scripted::Sse(malformed),
            Scripted::Sse(openai_text_chunks("after malformed", 2)),
            Scripted::DropAfter(openai_text_chunks("cut off in the middle", 4), 2),
            Scripted::Sse(openai_text_chunks("after drop", 2)),
            Scripted::Status(
                400,
                r#"{"error":{"message":"bad request: model unknown"}}"#.into(),
            ),
        ],
    );
    let id = start(&s);
    let errors = |recs: &[Value]| recs.iter().filter(|r| r["kind"] == "session.error").count();
    // Three 500s: retried with backoff, then an error.
    send(&s.d, &id, "one");
    let recs = wait_for(&s.d, &id, "the 500 error", |r| r["kind"] == "session.error");
    let e = recs.iter().find(|r| r["kind"] == "session.error").unwrap();
    assert!(
        e["data"]["message"].as_str().unwrap().contains("500"),
        "{e}"
    );
    wait_for(&s.d, &id, "idle", |r| {
        r["kind"] == "session.state"
            && r["data"]["state"] == "idle"
            && r["seq"].as_u64() > e["seq"].as_u64()
    });
    send(&s.d, &id, "two");
    let recs = wait_for(&s.d, &id, "answer after 500s", |r| {
        r["data"]["text"] == "after 500s"
    });
    assert_eq!(errors(&recs), 1);
    // A malformed chunk mid-stream.
    send(&s.d, &id, "three");
    let recs = wait_for(&s.d, &id, "malformed error", |r| {
        r["kind"] == "session.error"
            && r["data"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("malformed"))
    });
    assert_eq!(errors(&recs), 2);
    wait_until(Duration::from_secs(5), "idle", || {
        s.d.get(&format!("/v1/sessions/{id}")).json()["state"] == "idle"
    });
    send(&s.d, &id, "four");
    wait_for(&s.d, &id, "answer after malformed", |r| {
        r["data"]["text"] == "after malformed"
    });
    // The connection dropped mid-stream.
    send(&s.d, &id, "five");
    let recs = wait_for(&s.d, &id, "drop error", |r| {
        r["kind"] == "session.error"
            && r["seq"].as_u64() > e["seq"].as_u64()
            && !r["data"]["message"]
                .as_str()
                .unwrap_or("")
                .contains("malformed")
    });
    assert_eq!(errors(&recs), 3);
    wait_until(Duration::from_secs(5), "idle", || {
        s.d.get(&format!("/v1/sessions/{id}")).json()["state"] == "idle"
    });
    send(&s.d, &id, "six");
    wait_for(&s.d, &id, "answer after drop", |r| {
        r["data"]["text"] == "after drop"
    });
    // A 400 is not retried.
    let before = s.fake.recorded().len();
    send(&s.d, &id, "seven");
    let recs = wait_for(&s.d, &id, "the 400", |r| {
        r["kind"] == "session.error"
            && r["data"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("400"))
    });
    assert_eq!(s.fake.recorded().len(), before + 1);
    let last = recs
        .iter()
        .rev()
        .find(|r| r["kind"] == "session.error")
        .unwrap();
    assert!(last["data"]["message"]
        .as_str()
        .unwrap()
        .contains("model unknown"));
    assert_key_nowhere(&s.home);
}

#[test]
fn cancel_during_a_hanging_stream_is_prompt() {
    let s = setup(
        FakeKind::OpenAi,
        vec![
            Scripted::HangAfter(openai_text_chunks("first words", 1)[..2].to_vec()),
            Scripted::Sse(openai_text_chunks("next one", 2)),
        ],
    );
    let id = start(&s);
    send(&s.d, &id, "hang please");
    wait_for(&s.d, &id, "the first delta", |r| {
        r["kind"] == "session.delta"
    });
    let t = Instant::now();
    let r = s.d.post(&format!("/v1/sessions/{id}/cancel"), "{}");
    assert_eq!(r.json()["state"], "idle");
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "cancel took {:?}",
        t.elapsed()
    );
    assert!(records(&s.d, &id)
        .iter()
        .any(|r| r["kind"] == "session.cancelled"));
    send(&s.d, &id, "again");
    wait_for(&s.d, &id, "the next answer", |r| {
        r["data"]["text"] == "next one"
    });
}

#[test]
fn a_token_budget_stops_the_turn() {
    let s = setup(
        FakeKind::OpenAi,
        vec![Scripted::Sse(openai_text_chunks("costly", 2))],
    );
    let r = s.d.post(
        "/v1/sessions",
        &json!({"workdir": s.work.path(), "token_budget": 5}).to_string(),
    );
    let id = r.json()["id"].as_str().unwrap().to_string();
    send(&s.d, &id, "spend");
    let recs = wait_for(&s.d, &id, "budget error", |r| r["kind"] == "session.error");
    let e = recs.iter().find(|r| r["kind"] == "session.error").unwrap();
    assert_eq!(e["data"]["code"], "budget_exceeded", "{e}");
}

#[test]
fn exec_engine_maps_a_claude_stream_to_the_same_events() {
    let home = Home::new();
    std::fs::create_dir_all(&home.path).unwrap();
    std::fs::set_permissions(&home.path, std::fs::Permissions::from_mode(0o700)).unwrap();
    let fake = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../r1-engine/tests/fixtures/fake-claude");
    std::fs::write(
        home.path.join("daemon.toml"),
        format!(
            "[engines.claude]\nkind = \"exec\"\nadapter = \"claude\"\ncommand = \"{}\"\n",
            fake.display()
        ),
    )
    .unwrap();
    let d = home.serve(&[]);
    let work = tempfile::tempdir().unwrap();
    let r = d.post(
        "/v1/sessions",
        &json!({"workdir": work.path(), "engine": "claude"}).to_string(),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.json()["id"].as_str().unwrap().to_string();
    send(&d, &id, "list the files");
    let recs = wait_for(&d, &id, "the answer", |r| {
        r["kind"] == "session.state" && r["data"]["state"] == "idle" && r["seq"].as_u64() > Some(3)
    });
    assert!(recs.iter().any(|r| r["kind"] == "session.delta"));
    let text = final_text(&recs).unwrap();
    assert!(text.contains("prompt=list the files"), "{text}");
    let canon = std::fs::canonicalize(work.path()).unwrap();
    assert!(text.contains(&format!("cwd={}", canon.display())), "{text}");
    let started = recs.iter().find(|r| r["kind"] == "tool.started").unwrap();
    assert_eq!(started["data"]["tool"], "Bash");
    assert_eq!(started["data"]["external"], true);
    let done = recs.iter().find(|r| r["kind"] == "tool.completed").unwrap();
    assert!(done["data"]["content"].as_str().unwrap().contains("a.txt"));
    let engines = d.get("/v1/engines").json();
    assert!(engines["engines"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["name"] == "claude" && e["kind"] == "exec"));
}

/// The assistant answers of session `id` so far, in order.
fn answers(d: &Daemon, id: &str) -> Vec<String> {
    records(d, id)
        .iter()
        .filter(|r| r["kind"] == "session.message" && r["data"]["role"] == "assistant")
        .filter(|r| {
            r["data"]["tool_calls"]
                .as_array()
                .is_none_or(|c| c.is_empty())
        })
        .filter_map(|r| r["data"]["text"].as_str().map(str::to_string))
        .collect()
}

/// Issue 17: an exec engine (fake `claude` and `codex` that check their argv) keeps its
/// conversation across turns and across a daemon restart, and gets a message that
/// looks like an option verbatim.
#[test]
fn exec_engines_resume_their_conversation_across_turns_and_restarts() {
    for (engine, adapter, fake) in [
        ("claude", "claude", "fake-claude"),
        ("codex", "codex", "fake-codex"),
    ] {
        let home = Home::new();
        std::fs::create_dir_all(&home.path).unwrap();
        std::fs::set_permissions(&home.path, std::fs::Permissions::from_mode(0o700)).unwrap();
        let fake = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../r1-engine/tests/fixtures")
            .join(fake);
        std::fs::write(
            home.path.join("daemon.toml"),
            format!(
                "[engines.{engine}]\nkind = \"exec\"\nadapter = \"{adapter}\"\ncommand = \"{}\"\n",
                fake.display()
            ),
        )
        .unwrap();
        let d = home.serve(&[]);
        // Not a git repository: codex gets --skip-git-repo-check from r1.
        let work = tempfile::tempdir().unwrap();
        let r = d.post(
            "/v1/sessions",
            &json!({"workdir": work.path(), "engine": engine}).to_string(),
        );
        assert_eq!(r.status, 201, "{}", r.body);
        let id = r.json()["id"].as_str().unwrap().to_string();
        send(&d, &id, "-rf /");
        wait_for(&d, &id, "the first answer", |r| {
            r["kind"] == "session.state"
                && r["data"]["state"] == "idle"
                && r["seq"].as_u64() > Some(3)
        });
        let first = answers(&d, &id);
        let first = first.last().unwrap();
        assert!(first.starts_with("prompt=-rf / cwd="), "{engine}: {first}");
        assert!(!first.contains("resumed="), "{engine}: {first}");
        let agent_session = records(&d, &id)
            .iter()
            .rev()
            .find_map(|r| r["data"]["agent_session"].as_str().map(str::to_string))
            .unwrap_or_else(|| panic!("{engine}: no agent_session journaled"));

        // A restart between the turns: the id comes back from the journal.
        drop(d);
        let d = home.serve(&[]);
        let n = answers(&d, &id).len();
        send(&d, &id, "and the second?");
        wait_until(Duration::from_secs(20), "the second answer", || {
            answers(&d, &id).len() > n
        });
        let second = answers(&d, &id);
        let second = second.last().unwrap();
        assert!(
            second.starts_with("prompt=and the second? cwd="),
            "{engine}: {second}"
        );
        assert!(
            second.contains(&format!("resumed={agent_session}")),
            "{engine}: {second}"
        );
    }
}

/// Every `tool` message of an OpenAI request follows an assistant message that made
/// that call: no orphaned tool result.
pub(crate) fn assert_no_orphans(req: &Value) {
    let msgs = req["messages"].as_array().unwrap();
    for (i, m) in msgs.iter().enumerate() {
        if m["role"] != "tool" {
            continue;
        }
        let id = &m["tool_call_id"];
        let called = msgs[..i].iter().rev().any(|p| {
            p["role"] == "assistant"
                && p["tool_calls"]
                    .as_array()
                    .is_some_and(|c| c.iter().any(|c| &c["id"] == id))
        });
        assert!(called, "orphaned tool result {id} in {req}");
    }
}

/// The system prompt of a request.
pub(crate) fn system_of(req: &Value) -> String {
    req["messages"][0]["content"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

/// Sends `text` and waits until the turn is over (idle after it).
pub(crate) fn turn(s: &Setup, id: &str, text: &str) -> Vec<Value> {
    let before = records(&s.d, id).len();
    send(&s.d, id, text);
    wait_for(&s.d, id, "the turn to end", |r| {
        r["kind"] == "session.state"
            && r["data"]["state"] == "idle"
            && r["seq"].as_u64() > Some(before as u64)
    })
}

/// Issue 17: a session pushed past a small context budget is compacted with a summary
/// by the same model; every request after it is valid (no orphaned tool result); the
/// summary is journaled and a restart gives the model the same conversation.
#[test]
fn a_long_session_compacts_and_every_request_stays_valid() {
    let long = "word ".repeat(80);
    let mut s = setup_with(
        FakeKind::OpenAi,
        vec![
            // Turn 1: a tool call, then the answer.
            Scripted::Sse(openai_tool_call_chunks(
                "call_1",
                "read_file",
                r#"{"path": "hello.txt"}"#,
                2,
            )),
            Scripted::Sse(openai_text_chunks(&format!("first answer {long}"), 2)),
            // Turn 2: fits two kept turns, no compaction yet.
            Scripted::Sse(openai_text_chunks(&format!("second answer {long}"), 2)),
            // Turn 3: over budget: the summary request, then the turn.
            Scripted::Sse(openai_text_chunks("SUMMARY: read hello.txt, said hi", 2)),
            Scripted::Sse(openai_text_chunks("third answer", 2)),
        ],
        "context_tokens = 150\n",
    );
    std::fs::write(s.work.path().join("hello.txt"), "hi there").unwrap();
    let r = s.d.post(
        "/v1/sessions",
        &json!({"workdir": s.work.path(), "policy": {"read_file": "allow"}}).to_string(),
    );
    let id = r.json()["id"].as_str().unwrap().to_string();
    turn(&s, &id, &format!("first question {long}"));
    turn(&s, &id, &format!("second question {long}"));
    assert!(!records(&s.d, &id)
        .iter()
        .any(|r| r["kind"] == "session.compacted"));
    let recs = turn(&s, &id, "third question");
    assert_eq!(final_text(&recs).as_deref(), Some("third answer"));

    let c = recs
        .iter()
        .find(|r| r["kind"] == "session.compacted")
        .expect("a session.compacted record");
    assert_eq!(c["data"]["method"], "summary", "{c}");
    assert_eq!(c["data"]["reason"], "budget", "{c}");
    assert_eq!(c["data"]["summary"], "SUMMARY: read hello.txt, said hi");
    assert!(
        c["data"]["tokens_after"].as_u64() < c["data"]["tokens_before"].as_u64(),
        "{c}"
    );
    // upto_seq: just before the first kept user message (the second question).
    let second = recs
        .iter()
        .find(|r| {
            r["kind"] == "session.message"
                && r["data"]["role"] == "user"
                && r["data"]["text"]
                    .as_str()
                    .unwrap()
                    .starts_with("second question")
        })
        .unwrap();
    assert_eq!(
        c["data"]["upto_seq"].as_u64(),
        Some(second["seq"].as_u64().unwrap() - 1)
    );

    let sent = s.fake.recorded();
    assert_eq!(sent.len(), 5, "{sent:#?}");
    for r in &sent {
        assert_no_orphans(&r.body);
    }
    // The summary request: the old turns, no tools; the turn after: the summary, then
    // the kept turns, and the first turn's tool call is gone.
    assert!(system_of(&sent[3].body).starts_with("You compress"));
    assert!(sent[3].body.get("tools").is_none());
    let after = sent[4].body.to_string();
    assert!(after.contains("SUMMARY: read hello.txt"), "{after}");
    assert!(!after.contains("call_1"), "{after}");
    assert!(after.contains("second question") && after.contains("third question"));

    // After a restart the conversation is rebuilt from the journal: still over this
    // tiny budget, the next turn summarizes again, and what it summarizes is the
    // summary and the kept turns, never the first question.
    s.fake.push([
        Scripted::Sse(openai_text_chunks("SUMMARY 2", 2)),
        Scripted::Sse(openai_text_chunks("fourth answer", 2)),
    ]);
    if let Some(mut c) = s.d.child.take() {
        c.kill().unwrap();
        c.wait().unwrap();
    }
    s.d = s.home.serve_env(&[], &[("R1T_MODEL_KEY", KEY)]);
    let recs = turn(&s, &id, "fourth question");
    assert_eq!(final_text(&recs).as_deref(), Some("fourth answer"));
    let sent = s.fake.recorded();
    assert_eq!(sent.len(), 7, "{sent:#?}");
    let summarized = sent[5].body.to_string();
    assert!(system_of(&sent[5].body).starts_with("You compress"));
    assert!(
        summarized.contains("SUMMARY: read hello.txt"),
        "{summarized}"
    );
    assert!(!summarized.contains("first question"), "{summarized}");
    let last = sent[6].body.to_string();
    assert!(
        last.contains("SUMMARY 2") && last.contains("fourth question"),
        "{last}"
    );
    for r in &sent {
        assert_no_orphans(&r.body);
    }
}

/// Issue 17: the provider's own context-length error gets one compaction and one
/// retry; a second overflow fails the turn instead of looping.
#[test]
fn a_context_length_error_gets_one_compaction_and_one_retry() {
    let overflow = || {
        Scripted::Status(
            400,
            json!({"error": {"message": "This model's maximum context length is 20 tokens.",
                "type": "invalid_request_error", "code": "context_length_exceeded"}})
            .to_string(),
        )
    };
    let s = setup(
        FakeKind::OpenAi,
        vec![
            Scripted::Sse(openai_text_chunks("one", 1)),
            Scripted::Sse(openai_text_chunks("two", 1)),
            overflow(),
            Scripted::Sse(openai_text_chunks("SUMMARY of one and two", 1)),
            Scripted::Sse(openai_text_chunks("three", 1)),
            // The next turn overflows even after compacting: it fails, once.
            overflow(),
            Scripted::Sse(openai_text_chunks("SUMMARY again", 1)),
            overflow(),
        ],
    );
    let id = start(&s);
    turn(&s, &id, "q1");
    turn(&s, &id, "q2");
    let recs = turn(&s, &id, "q3");
    assert_eq!(final_text(&recs).as_deref(), Some("three"));
    let c = recs
        .iter()
        .find(|r| r["kind"] == "session.compacted")
        .expect("compacted after the overflow");
    assert_eq!(c["data"]["reason"], "overflow", "{c}");
    assert_eq!(s.fake.recorded().len(), 5);

    let recs = turn(&s, &id, "q4");
    let err = recs
        .iter()
        .rev()
        .find(|r| r["kind"] == "session.error")
        .expect("the second overflow fails the turn");
    assert!(
        err["data"]["message"]
            .as_str()
            .unwrap()
            .contains("maximum context length"),
        "{err}"
    );
    assert_eq!(s.fake.recorded().len(), 8, "one retry, not a loop");
    assert_eq!(s.fake.remaining(), 0);
}

/// Issue 17: `session.compact` (and `r1 ctl sessions compact`) forces a compaction of
/// an idle session; a busy one is refused; nothing to compact is said plainly.
#[test]
fn a_forced_compaction_summarizes_an_idle_session() {
    let s = setup(
        FakeKind::OpenAi,
        vec![
            Scripted::Sse(openai_text_chunks("a1", 1)),
            Scripted::Sse(openai_text_chunks("a2", 1)),
            Scripted::Sse(openai_text_chunks("a3", 1)),
            Scripted::Sse(openai_text_chunks("FORCED SUMMARY", 1)),
            Scripted::SseDelayed(openai_text_chunks("a4", 4), Duration::from_millis(300)),
        ],
    );
    let id = start(&s);
    // One turn: nothing before the last two to compact.
    turn(&s, &id, "q1");
    let r = s.d.post(&format!("/v1/sessions/{id}/compact"), "{}");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["compacted"], false, "{}", r.body);
    turn(&s, &id, "q2");
    turn(&s, &id, "q3");

    let out = s.home.run_json(&["ctl", "sessions", "compact", &id]);
    assert_eq!(out["compacted"], true, "{out}");
    assert_eq!(out["method"], "summary", "{out}");
    let seq = out["seq"].as_u64().unwrap();
    let recs = records(&s.d, &id);
    let c = recs
        .iter()
        .find(|r| r["seq"].as_u64() == Some(seq))
        .unwrap();
    assert_eq!(c["kind"], "session.compacted");
    assert_eq!(c["data"]["reason"], "forced");
    assert_eq!(c["data"]["summary"], "FORCED SUMMARY");
    // The summary's call counts in the session's usage, like the three turns' calls.
    assert_eq!(
        c["data"]["usage"],
        json!({"input_tokens": FAKE_INPUT_TOKENS, "output_tokens": FAKE_OUTPUT_TOKENS})
    );
    let v = s.d.get(&format!("/v1/sessions/{id}")).json();
    assert_eq!(v["state"], "idle");
    assert_eq!(v["usage"]["model_calls"], 4, "{v}");
    assert_eq!(v["usage"]["input_tokens"], 4 * FAKE_INPUT_TOKENS, "{v}");

    // The next turn sees the summary, not q1; while it runs, compact is refused.
    send(&s.d, &id, "q4");
    let r = s.d.post(&format!("/v1/sessions/{id}/compact"), "{}");
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(r.body.contains("busy"), "{}", r.body);
    wait_until(Duration::from_secs(20), "the fourth answer", || {
        final_text(&records(&s.d, &id)).as_deref() == Some("a4")
    });
    let last = s.fake.recorded().last().unwrap().body.to_string();
    assert!(
        last.contains("FORCED SUMMARY") && !last.contains("\"q1\""),
        "{last}"
    );
    assert_eq!(s.d.post("/v1/sessions/ses_nope/compact", "{}").status, 404);
}

/// Every `daemon.toml` block of `docs/ENGINES.md` loads: the daemon starts with it and
/// lists each engine it names.
#[test]
fn every_engines_md_config_loads() {
    let doc = std::fs::read_to_string(
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/ENGINES.md"),
    )
    .unwrap();
    let blocks: Vec<&str> = doc
        .split("```toml\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap())
        .collect();
    assert!(blocks.len() >= 8, "{} blocks", blocks.len());
    for block in blocks {
        let home = Home::new();
        std::fs::create_dir_all(&home.path).unwrap();
        std::fs::set_permissions(&home.path, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::write(home.path.join("daemon.toml"), block).unwrap();
        let d = home.serve(&[]);
        let listed = d.get("/v1/engines").json();
        let names: Vec<&str> = listed["engines"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["name"].as_str())
            .collect();
        for line in block.lines() {
            if let Some(name) = line
                .strip_prefix("[engines.")
                .and_then(|l| l.strip_suffix(']'))
            {
                assert!(
                    names.contains(&name),
                    "{name} not listed: {listed}\n{block}"
                );
            }
        }
    }
}
