//! `r1 mcp serve` driven by real MCP clients over stdio, as another agent would: rmcp's
//! client here, and the official Python SDK (`mcp` from PyPI) through
//! `tests/mcp_python.py`. Each test has its own `R1_HOME`; the MCP server starts the
//! daemon on demand and the test stops it at the end.

// Tests may unwrap (STYLE.md §4): a panic is how a test fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::RunningService;
use rmcp::transport::{ConfigureCommandExt, TokioChildProcess};
use rmcp::{RoleClient, ServiceExt};
use serde_json::{json, Value};

/// The `r1` binary under test.
fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_r1"))
}

/// A temp dir holding the state directory `h` (0700) and a work directory `w`; drop
/// stops the daemon the MCP server started there.
struct Home {
    dir: tempfile::TempDir,
    path: PathBuf,
}

impl Home {
    fn new() -> Home {
        let dir = tempfile::Builder::new().prefix("r1mcp").tempdir().unwrap();
        let path = dir.path().join("h");
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .unwrap();
        std::fs::create_dir(dir.path().join("w")).unwrap();
        Home { dir, path }
    }

    fn workdir(&self) -> PathBuf {
        self.dir.path().join("w")
    }

    /// `r1 ctl shutdown`, which waits until the daemon has exited.
    fn shutdown(&self) {
        if !self.path.join("daemon.json").exists() {
            return;
        }
        let out = Command::new(bin())
            .args(["ctl", "shutdown"])
            .env("R1_HOME", &self.path)
            .env_remove("R1_LOG")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "r1 ctl shutdown failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        if !self.path.join("daemon.json").exists() {
            return;
        }
        // A failed test still stops its daemon; its own assertion is the one to report.
        let _ = Command::new(bin())
            .args(["ctl", "shutdown"])
            .env("R1_HOME", &self.path)
            .stdin(Stdio::null())
            .output();
    }
}

/// Spawns `r1 mcp serve <extra>` for `home` and completes the MCP handshake.
async fn connect(home: &Home, extra: &[&str]) -> RunningService<RoleClient, ()> {
    let cmd = tokio::process::Command::new(bin()).configure(|c| {
        c.args(["mcp", "serve"])
            .args(extra)
            .env("R1_HOME", &home.path)
            .env_remove("R1_LOG");
    });
    let transport = TokioChildProcess::new(cmd).unwrap();
    ().serve(transport).await.unwrap()
}

fn args(v: Value) -> serde_json::Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => panic!("arguments must be an object: {other}"),
    }
}

/// Calls a tool and returns its envelope, checking that the text item carries the same
/// envelope as `structuredContent` and that `isError` agrees with `ok`.
async fn call(client: &rmcp::service::Peer<RoleClient>, name: &str, a: Value) -> Value {
    let result: CallToolResult = client
        .call_tool(CallToolRequestParams::new(name.to_string()).with_arguments(args(a)))
        .await
        .unwrap();
    let envelope = result
        .structured_content
        .clone()
        .expect("structuredContent");
    let text = result.content[0]
        .as_text()
        .expect("a text item")
        .text
        .clone();
    assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), envelope);
    assert_eq!(result.is_error, Some(envelope["ok"] != true), "{envelope}");
    envelope
}

async fn tool_names(client: &RunningService<RoleClient, ()>) -> Vec<String> {
    let tools = client.list_all_tools().await.unwrap();
    tools.iter().map(|t| t.name.to_string()).collect()
}

fn is_wire_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Under `--caps write`, a connection's first mutating call writes one consent line,
/// naming the client from its `initialize` and the tool, to stderr and to
/// `$R1_HOME/logs/consent.log`; read calls and later mutations write none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_mutating_call_writes_one_consent_line() {
    use rmcp::model::{ClientCapabilities, ClientConfig, Implementation};
    use tokio::io::AsyncReadExt;

    let home = Home::new();
    let log = home.path.join("logs/consent.log");
    let cmd = tokio::process::Command::new(bin()).configure(|c| {
        c.args(["mcp", "serve", "--caps", "write"])
            .env("R1_HOME", &home.path)
            .env_remove("R1_LOG");
    });
    let (transport, stderr) = TokioChildProcess::builder(cmd)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = stderr.unwrap();
    let info = ClientConfig::new(
        ClientCapabilities::default(),
        Implementation::new("consent-probe", "7.1.2"),
    );
    let client = info.serve(transport).await.unwrap();

    let listed = call(&client, "r1_session_list", json!({})).await;
    assert_eq!(listed["ok"], true, "{listed}");
    assert!(!log.exists(), "a read call wrote a consent line");
    let workdir = home.workdir();
    let started = call(&client, "r1_session_start", json!({"workdir": workdir})).await;
    assert_eq!(started["ok"], true, "{started}");
    let id = started["data"]["id"].as_str().unwrap().to_string();
    let again = call(&client, "r1_session_cancel", json!({"session_id": id})).await;
    assert_eq!(again["ok"], true, "{again}");

    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "{text}");
    for needle in [
        "\"consent-probe\"",
        "\"7.1.2\"",
        "r1_session_start",
        "stdio",
    ] {
        assert!(lines[0].contains(needle), "{needle} not in {text}");
    }
    client.cancel().await.unwrap();
    let mut err = String::new();
    stderr.read_to_string(&mut err).await.unwrap();
    assert_eq!(err.matches("consent: MCP client").count(), 1, "{err}");
    assert!(
        err.contains("\"consent-probe\"") && err.contains("r1_session_start"),
        "{err}"
    );

    // A new connection consents anew.
    let second = connect(&home, &["--caps", "write"]).await;
    let cancelled = call(&second, "r1_session_cancel", json!({"session_id": id})).await;
    assert_eq!(cancelled["ok"], true, "{cancelled}");
    second.cancel().await.unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(
        text.lines().nth(1).unwrap().contains("r1_session_cancel"),
        "{text}"
    );
    home.shutdown();
}

/// `--caps debug` is reported in `initialize` and adds `r1_session_debug_state`, the
/// session actor's own view; without it the tool is neither listed nor callable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_caps_unlock_the_actor_state() {
    let home = Home::new();
    let writer = connect(&home, &["--caps", "write"]).await;
    let info = writer.peer_info().unwrap();
    assert_eq!(
        info.capabilities.experimental.as_ref().unwrap()["r1/caps"]["level"],
        "write"
    );
    assert!(!tool_names(&writer)
        .await
        .contains(&"r1_session_debug_state".to_string()));
    let started = call(
        &writer,
        "r1_session_start",
        json!({"workdir": home.workdir(), "engine": "echo"}),
    )
    .await;
    let id = started["data"]["id"].as_str().unwrap().to_string();
    let denied = call(&writer, "r1_session_debug_state", json!({"session_id": id})).await;
    assert_eq!(denied["error_code"], "permission_denied", "{denied}");
    assert!(
        denied["error_message"]
            .as_str()
            .unwrap()
            .contains("--caps debug"),
        "{denied}"
    );
    // A headless TUI opens at write caps; its model is for debug caps only.
    let opened = call(&writer, "r1_tui_open", json!({"session_id": id})).await;
    assert_eq!(opened["ok"], true, "{opened}");
    let tui = opened["data"]["tui_session_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!tool_names(&writer)
        .await
        .contains(&"r1_tui_get_model".to_string()));
    let denied = call(&writer, "r1_tui_get_model", json!({"tui_session_id": tui})).await;
    assert_eq!(denied["error_code"], "permission_denied", "{denied}");
    writer.cancel().await.unwrap();

    let debug = connect(&home, &["--caps", "debug"]).await;
    let info = debug.peer_info().unwrap();
    assert_eq!(
        info.capabilities.experimental.as_ref().unwrap()["r1/caps"]["level"],
        "debug"
    );
    assert!(
        info.instructions.as_ref().unwrap().contains("--caps debug"),
        "{:?}",
        info.instructions
    );
    let names = tool_names(&debug).await;
    assert_eq!(names.len(), 55, "{names:?}");
    assert!(names.contains(&"r1_session_debug_state".to_string()));
    let model = call(
        &debug,
        "r1.tui.get_model",
        json!({"tui_session_id": tui, "jsonpath": "$.selected"}),
    )
    .await;
    assert_eq!(model["data"]["value"], json!(id), "{model}");
    let bad = call(
        &debug,
        "r1_tui_get_model",
        json!({"tui_session_id": tui, "jsonpath": "$.no.such"}),
    )
    .await;
    assert_eq!(bad["error_code"], "validation", "{bad}");
    let state = call(&debug, "r1.session.debug_state", json!({"session_id": id})).await;
    assert_eq!(state["ok"], true, "{state}");
    assert_eq!(state["data"]["session_id"], id, "{state}");
    assert_eq!(state["data"]["state"], "idle", "{state}");
    assert_eq!(state["data"]["turn_task"], false, "{state}");
    assert!(state["data"]["last_seq"].as_u64().unwrap() >= 1, "{state}");
    assert_eq!(state["data"]["queue"], json!([]), "{state}");
    let missing = call(
        &debug,
        "r1_session_debug_state",
        json!({"session_id": "ses_nope"}),
    )
    .await;
    assert_eq!(missing["error_code"], "not_found", "{missing}");
    debug.cancel().await.unwrap();
    home.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rmcp_client_drives_sessions_over_stdio() {
    let home = Home::new();
    let client = connect(&home, &["--caps", "write"]).await;

    let server = client.peer_info().unwrap();
    assert_eq!(server.protocol_version.as_str(), "2025-11-25");
    assert_eq!(server.server_info.as_ref().unwrap().name, "r1");

    let names = tool_names(&client).await;
    assert_eq!(names.len(), 53, "{names:?}");
    assert!(names.iter().all(|n| is_wire_name(n)), "{names:?}");
    assert!(names.iter().any(|n| n == "r1_session_start"));

    let workdir = home.workdir();
    let started = call(
        &client,
        "r1_session_start",
        json!({"workdir": workdir, "engine": "echo", "title": "mcp test"}),
    )
    .await;
    assert_eq!(started["ok"], true, "{started}");
    let id = started["data"]["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("ses_"), "{id}");
    assert_eq!(started["links"]["self"], format!("/v1/sessions/{id}"));

    let send = json!({"session_id": id, "text": "hello mcp", "client_message_id": "k-1"});
    let first = call(&client, "r1_session_send", send.clone()).await;
    let again = call(&client, "r1_session_send", send).await;
    assert_eq!(first["ok"], true, "{first}");
    assert_eq!(first["data"]["message_id"], again["data"]["message_id"]);
    assert_eq!(again["data"]["duplicate"], true);

    // Long-poll from the message's seq until the echo engine's answer is journaled.
    let mut since = first["data"]["seq"].as_u64().unwrap() + 1;
    let deadline = Instant::now() + Duration::from_secs(20);
    let reply = loop {
        assert!(Instant::now() < deadline, "no assistant reply in time");
        let page = call(
            &client,
            "r1_bus_tail",
            json!({"session_id": id, "since_seq": since, "wait_ms": 2000}),
        )
        .await;
        assert_eq!(page["ok"], true, "{page}");
        let records = page["data"]["records"].as_array().unwrap().clone();
        since = page["data"]["next_seq"].as_u64().unwrap();
        if let Some(r) = records
            .iter()
            .find(|r| r["kind"] == "session.message" && r["data"]["role"] == "assistant")
        {
            break r["data"]["text"].as_str().unwrap().to_string();
        }
    };
    assert_eq!(reply, "echo: hello mcp");

    // r1's own CLI, as a tool: it sees the session this server started.
    let listed = call(
        &client,
        "r1_cli_invoke",
        json!({"args": ["ctl", "sessions", "list", "--json"], "workdir": workdir}),
    )
    .await;
    assert_eq!(listed["ok"], true, "{listed}");
    assert_eq!(listed["data"]["exit_code"], 0, "{listed}");
    assert_eq!(listed["data"]["timed_out"], false);
    let out: Value = serde_json::from_str(listed["data"]["stdout"].as_str().unwrap()).unwrap();
    assert!(out.to_string().contains(&id), "{out}");
    // Never a shell: anything but an allowed r1 verb is refused before anything runs.
    for argv in [
        json!(["sh", "-c", "id"]),
        json!(["/bin/ls"]),
        json!(["serve"]),
    ] {
        let refused = call(
            &client,
            "r1.cli.invoke",
            json!({"args": argv, "workdir": workdir}),
        )
        .await;
        assert_eq!(refused["error_code"], "validation", "{refused}");
    }
    // A command that outlives its timeout is killed.
    let slow = call(
        &client,
        "r1_cli_invoke",
        json!({"args": ["ctl", "sessions", "follow", &id], "workdir": workdir, "timeout_sec": 1}),
    )
    .await;
    assert_eq!(slow["ok"], true, "{slow}");
    assert_eq!(slow["data"]["timed_out"], true, "{slow}");
    assert!(slow["data"].get("exit_code").is_none(), "{slow}");

    let cancelled = call(&client, "r1_session_cancel", json!({"session_id": id})).await;
    assert_eq!(cancelled["ok"], true, "{cancelled}");
    let cancelled_again = call(&client, "r1_session_cancel", json!({"session_id": id})).await;
    assert_eq!(cancelled_again["ok"], true, "cancel is idempotent");

    let got = call(&client, "r1.session.get", json!({"session_id": id})).await;
    assert_eq!(got["ok"], true, "{got}");
    assert_eq!(got["data"]["id"], id);
    assert_eq!(got["data"]["title"], "mcp test");

    let replay = call(
        &client,
        "r1_bus_replay",
        json!({"session_id": id, "since_seq": 1}),
    )
    .await;
    assert_eq!(replay["data"]["records"][0]["kind"], "session.created");

    let missing = call(&client, "r1_session_get", json!({"session_id": "ses_nope"})).await;
    assert_eq!(missing["error_code"], "not_found", "{missing}");
    client.cancel().await.unwrap();

    // Default caps: read-only tools only, and a mutating call is refused in an envelope.
    let reader = connect(&home, &[]).await;
    let names = tool_names(&reader).await;
    assert_eq!(names.len(), 17, "{names:?}");
    for mutating in [
        "r1_session_start",
        "r1_session_send",
        "r1_session_cancel",
        "r1_session_resume",
        "r1_session_approve",
        "r1_lanes_kill",
        "r1_lanes_pin",
    ] {
        assert!(!names.iter().any(|n| n == mutating), "{mutating} listed");
    }
    let denied = call(&reader, "r1_session_start", json!({"workdir": workdir})).await;
    assert_eq!(denied["ok"], false);
    assert_eq!(denied["error_code"], "permission_denied", "{denied}");
    let denied = call(
        &reader,
        "r1_cli_invoke",
        json!({"args": ["doctor"], "workdir": workdir}),
    )
    .await;
    assert_eq!(denied["error_code"], "permission_denied", "{denied}");
    let listed = call(&reader, "r1_session_list", json!({})).await;
    assert_eq!(listed["data"]["sessions"].as_array().unwrap().len(), 1);
    reader.cancel().await.unwrap();

    home.shutdown();
}

#[test]
fn print_tools_prints_the_catalog_without_a_daemon() {
    let home = Home::new();
    let out = Command::new(bin())
        .args([
            "mcp",
            "serve",
            "--caps",
            "debug",
            "--print-tools",
            "--markdown",
        ])
        .env("R1_HOME", &home.path)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        r1_mcp_catalog_page()
    );
    assert!(
        !home.path.join("daemon.json").exists(),
        "no daemon was started"
    );

    let out = Command::new(bin())
        .args(["mcp", "serve", "--print-tools"])
        .env("R1_HOME", &home.path)
        .output()
        .unwrap();
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["tools"].as_array().unwrap().len(), 17);
}

/// The committed catalog page, which `--print-tools --markdown` must reproduce.
fn r1_mcp_catalog_page() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/AGENTIC-API-CATALOG.md");
    std::fs::read_to_string(path).unwrap()
}

#[test]
fn python_sdk_drives_sessions_over_stdio() {
    let probe = Command::new("python3")
        .args(["-c", "import mcp"])
        .output()
        .expect("python3 must be on PATH");
    assert!(
        probe.status.success(),
        "the official MCP Python SDK is missing: run `python3 -m pip install mcp` ({})",
        String::from_utf8_lossy(&probe.stderr).trim()
    );
    let home = Home::new();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mcp_python.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(bin())
        .arg(home.workdir())
        .env("R1_HOME", &home.path)
        .env_remove("R1_LOG")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "mcp_python.py failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    assert!(
        stdout.contains("reply: echo: hello from python"),
        "{stdout}"
    );
    home.shutdown();
}
