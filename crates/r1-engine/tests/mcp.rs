//! MCP servers as session tools, against `tests/fixtures/fake-mcp-server`: a python
//! script that speaks raw JSON-RPC over stdio or streamable HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::{Duration, Instant};

use r1_engine::{
    validate_mcp_servers, McpPool, McpServerConfig, McpTransport, ToolCall, ToolResult,
};
use serde_json::{json, Value};

const TOKEN_VAR: &str = "R1_MCP_TEST_BEARER_TOKEN";

/// Sets the variables the tests look for, once, before any test spawns a process.
fn init_env() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        std::env::set_var("R1_HOME", "/secret/home");
        std::env::set_var("FOO_TOKEN", "leaked");
        std::env::set_var("R1_MCP_TEST_PLAIN", "plain");
        std::env::set_var("MCP_TEST_VISIBLE", "visible");
        std::env::set_var(TOKEN_VAR, "s3cret");
    });
}

fn fake_server() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/fake-mcp-server")
        .to_string_lossy()
        .into_owned()
}

fn stdio(name: &str, command: &str, args: &[&str], timeout_s: u64) -> McpServerConfig {
    McpServerConfig {
        name: name.to_owned(),
        transport: McpTransport::Stdio,
        command: Some(command.to_owned()),
        args: args.iter().map(|a| (*a).to_owned()).collect(),
        url: None,
        auth_env: None,
        timeout_s,
        max_concurrent: 4,
        trust: r1_engine::McpTrust::Trusted,
    }
}

fn http(name: &str, url: &str) -> McpServerConfig {
    McpServerConfig {
        name: name.to_owned(),
        transport: McpTransport::Http,
        command: None,
        args: Vec::new(),
        url: Some(url.to_owned()),
        auth_env: None,
        timeout_s: 5,
        max_concurrent: 4,
        trust: r1_engine::McpTrust::Trusted,
    }
}

/// A pool with the fake stdio server as `fake`, and the file it writes its pids to.
fn fake_pool(dir: &Path, timeout_s: u64) -> (McpPool, PathBuf) {
    init_env();
    let pidfile = dir.join("pids");
    let config = stdio(
        "fake",
        &fake_server(),
        &[pidfile.to_str().unwrap()],
        timeout_s,
    );
    (McpPool::new(vec![config], dir.to_path_buf()), pidfile)
}

fn tool_call(name: &str, arguments: Value) -> ToolCall {
    ToolCall {
        id: format!("call-{name}"),
        name: name.to_owned(),
        arguments,
    }
}

async fn call(pool: &McpPool, name: &str, arguments: Value) -> ToolResult {
    pool.call(&tool_call(name, arguments)).await
}

/// The server's pid and its grandchild's.
fn pids(pidfile: &Path) -> Vec<i32> {
    let text = std::fs::read_to_string(pidfile).unwrap();
    text.split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect()
}

/// Whether `pid` is a running process (a zombie is not).
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => false,
        Ok(stat) => {
            let state = stat.rsplit(')').next().unwrap_or("").trim_start();
            !state.starts_with('Z') && !state.starts_with('X')
        }
    }
}

async fn wait_dead(pids: &[i32]) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while pids.iter().any(|&p| alive(p)) {
        assert!(Instant::now() < deadline, "still alive: {pids:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn lists_and_calls_the_tools_of_a_stdio_server() {
    let dir = tempfile::tempdir().unwrap();
    let (pool, pidfile) = fake_pool(dir.path(), 10);

    assert!(pool.owns("fake__add"));
    assert!(!pool.owns("other__add"));
    assert!(!pool.owns("fake__"));
    assert!(!pool.owns("read_file"));

    let (tools, errors) = pool.tools().await;
    assert!(errors.is_empty(), "{errors:?}");
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_str()).collect();
    assert!(names.contains(&"fake__add"), "{names:?}");
    assert!(names.contains(&"fake__slow"), "{names:?}");
    let add = tools.iter().find(|t| t.name == "fake__add").unwrap();
    assert_eq!(add.description, "Adds two numbers.");
    assert_eq!(add.input_schema["required"], json!(["a", "b"]));

    let result = call(&pool, "fake__add", json!({"a": 2, "b": 3})).await;
    assert_eq!(result.content, "5");
    assert!(!result.is_error);
    assert_eq!(result.call_id, "call-fake__add");
    assert_eq!(result.name, "fake__add");

    // The server runs in the workdir, without r1's credentials.
    let info = call(&pool, "fake__info", json!({})).await;
    assert!(!info.is_error, "{}", info.content);
    let info: Value = serde_json::from_str(&info.content).unwrap();
    assert_eq!(
        Path::new(info["cwd"].as_str().unwrap())
            .canonicalize()
            .unwrap(),
        dir.path().canonicalize().unwrap()
    );
    let env: Vec<&str> = info["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for hidden in ["R1_HOME", "FOO_TOKEN", "R1_MCP_TEST_PLAIN", TOKEN_VAR] {
        assert!(!env.contains(&hidden), "{hidden} leaked: {env:?}");
    }
    assert!(env.contains(&"MCP_TEST_VISIBLE"), "{env:?}");

    let structured = call(&pool, "fake__structured", json!({})).await;
    assert_eq!(structured.content, r#"{"sum":5}"#);
    assert!(!structured.is_error);

    let failed = call(&pool, "fake__fail", json!({})).await;
    assert!(failed.is_error);
    assert_eq!(failed.content, "it went wrong");

    let unknown = call(&pool, "fake__nope", json!({})).await;
    assert!(unknown.is_error);
    assert!(
        unknown.content.contains("has no tool `nope`"),
        "{}",
        unknown.content
    );

    let bad_args = call(&pool, "fake__add", json!([2, 3])).await;
    assert!(bad_args.is_error);
    assert!(
        bad_args.content.contains("JSON object"),
        "{}",
        bad_args.content
    );

    // Shutdown kills the server and the process it started (its whole group).
    let pids = pids(&pidfile);
    assert_eq!(pids.len(), 2);
    assert!(pids.iter().all(|&p| alive(p)));
    pool.shutdown().await;
    wait_dead(&pids).await;

    let after = call(&pool, "fake__add", json!({"a": 1, "b": 1})).await;
    assert!(after.is_error);
    assert!(after.content.contains("shut down"), "{}", after.content);
}

#[tokio::test]
async fn a_slow_call_times_out_and_the_server_stays_usable() {
    let dir = tempfile::tempdir().unwrap();
    let (pool, _pidfile) = fake_pool(dir.path(), 1);
    let (_, errors) = pool.tools().await;
    assert!(errors.is_empty(), "{errors:?}");

    let started = Instant::now();
    let slow = call(&pool, "fake__slow", json!({})).await;
    let took = started.elapsed();
    assert!(slow.is_error);
    assert!(slow.content.contains("timeout"), "{}", slow.content);
    assert!(slow.content.contains("within 1 s"), "{}", slow.content);
    assert!(took < Duration::from_secs(2), "took {took:?}");

    let add = call(&pool, "fake__add", json!({"a": 2, "b": 3})).await;
    assert!(!add.is_error, "{}", add.content);
    assert_eq!(add.content, "5");
    pool.shutdown().await;
}

#[tokio::test]
async fn at_most_max_concurrent_calls_run_at_once() {
    init_env();
    let dir = tempfile::tempdir().unwrap();
    for (max_concurrent, serial) in [(1, true), (2, false)] {
        let mut config = stdio("fake", &fake_server(), &[], 5);
        config.max_concurrent = max_concurrent;
        let pool = McpPool::new(vec![config], dir.path().to_path_buf());
        let (_, errors) = pool.tools().await;
        assert!(errors.is_empty(), "{errors:?}");

        let started = Instant::now();
        let (first, second) = tokio::join!(
            call(&pool, "fake__wait", json!({"seconds": 0.6})),
            call(&pool, "fake__wait", json!({"seconds": 0.6})),
        );
        let took = started.elapsed();
        assert_eq!(first.content, "waited");
        assert_eq!(second.content, "waited");
        // Two 0.6 s calls take 1.2 s one after the other, 0.6 s side by side.
        assert_eq!(took >= Duration::from_millis(1150), serial, "took {took:?}");
        pool.shutdown().await;
    }
}

#[tokio::test]
async fn a_server_that_cannot_start_gives_clear_errors() {
    init_env();
    let dir = tempfile::tempdir().unwrap();
    let missing = stdio("gone", "/nonexistent/r1-no-such-mcp-server", &[], 30);
    let pool = McpPool::new(vec![missing], dir.path().to_path_buf());
    let started = Instant::now();
    let (tools, errors) = pool.tools().await;
    assert!(tools.is_empty());
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("`gone` failed to start"), "{errors:?}");
    assert!(
        errors[0].contains("/nonexistent/r1-no-such-mcp-server"),
        "{errors:?}"
    );

    assert!(pool.owns("gone__anything"));
    let result = call(&pool, "gone__anything", json!({})).await;
    assert!(result.is_error);
    assert!(
        result.content.contains("failed to start"),
        "{}",
        result.content
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn a_server_that_exits_at_once_is_explained() {
    init_env();
    let dir = tempfile::tempdir().unwrap();
    let crash = stdio(
        "crash",
        "sh",
        &["-c", "echo 'boom: no config' >&2; exit 3"],
        5,
    );
    let pool = McpPool::new(vec![crash], dir.path().to_path_buf());
    let (_, errors) = pool.tools().await;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("`crash` failed to start"), "{errors:?}");
    assert!(errors[0].contains("exit status: 3"), "{errors:?}");
    assert!(errors[0].contains("boom: no config"), "{errors:?}");
}

#[tokio::test]
async fn a_server_that_never_answers_is_timed_out_and_killed() {
    init_env();
    let dir = tempfile::tempdir().unwrap();
    // `sh` leads the group and `sleep` is its child: both must go.
    let pidfile = dir.path().join("pid");
    let script = format!("echo $$ > {}; sleep 30; :", pidfile.display());
    let hang = stdio("hang", "sh", &["-c", &script], 1);
    let pool = McpPool::new(vec![hang], dir.path().to_path_buf());
    let started = Instant::now();
    let (tools, errors) = pool.tools().await;
    assert!(tools.is_empty());
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("did not start within 1 s"), "{errors:?}");
    assert!(started.elapsed() < Duration::from_secs(3));

    let result = call(&pool, "hang__x", json!({})).await;
    assert!(result.is_error);
    assert!(
        result.content.contains("did not start"),
        "{}",
        result.content
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the failure is remembered"
    );

    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    wait_dead(&[pid]).await;
}

#[tokio::test]
async fn dropping_the_pool_kills_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let (pool, pidfile) = fake_pool(dir.path(), 10);
    let (_, errors) = pool.tools().await;
    assert!(errors.is_empty(), "{errors:?}");
    let pids = pids(&pidfile);
    drop(pool);
    wait_dead(&pids).await;
}

#[tokio::test]
async fn an_http_server_gets_the_bearer_token() {
    init_env();
    let dir = tempfile::tempdir().unwrap();
    let portfile = dir.path().join("port");
    let mut server = std::process::Command::new(fake_server())
        .arg("--http")
        .arg(&portfile)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let port = loop {
        if let Ok(port) = std::fs::read_to_string(&portfile) {
            break port;
        }
        assert!(
            Instant::now() < deadline,
            "the fake http server did not start"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };

    let mut config = http("remote", &format!("http://127.0.0.1:{port}/mcp"));
    config.auth_env = Some(TOKEN_VAR.to_owned());
    let pool = McpPool::new(vec![config], dir.path().to_path_buf());
    let (tools, errors) = pool.tools().await;
    assert!(errors.is_empty(), "{errors:?}");
    assert!(tools.iter().any(|t| t.name == "remote__add"));

    let add = call(&pool, "remote__add", json!({"a": 2, "b": 3})).await;
    assert_eq!(add.content, "5");
    let info = call(&pool, "remote__info", json!({})).await;
    let info: Value = serde_json::from_str(&info.content).unwrap();
    assert_eq!(info["authorization"], "Bearer s3cret");

    pool.shutdown().await;
    server.kill().unwrap();
    server.wait().unwrap();
}

#[tokio::test]
async fn an_unreachable_or_unauthenticated_http_server_gives_clear_errors() {
    init_env();
    let dir = tempfile::tempdir().unwrap();
    // Port 9 (discard) on loopback: nothing listens there.
    let unreachable = http("down", "http://127.0.0.1:9/mcp");
    let mut no_token = http("notoken", "https://example.invalid/mcp");
    no_token.auth_env = Some("R1_MCP_TEST_UNSET_VARIABLE".to_owned());
    let pool = McpPool::new(vec![unreachable, no_token], dir.path().to_path_buf());
    let started = Instant::now();
    let (tools, errors) = pool.tools().await;
    assert!(tools.is_empty());
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors[0].contains("`down` failed to start"), "{errors:?}");
    assert!(errors[0].contains("refused"), "{errors:?}");
    assert!(
        errors[1].contains("R1_MCP_TEST_UNSET_VARIABLE"),
        "{errors:?}"
    );
    assert!(errors[1].contains("is not set"), "{errors:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    let result = call(&pool, "down__add", json!({})).await;
    assert!(result.is_error);
}

#[test]
fn validate_checks_urls_names_and_fields() {
    assert!(http("a", "https://example.com/mcp").validate().is_ok());
    assert!(http("a", "http://127.0.0.1:9/mcp").validate().is_ok());
    assert!(http("a", "http://localhost:8080/mcp").validate().is_ok());
    assert!(http("a", "http://[::1]:8080/mcp").validate().is_ok());
    let refused = http("a", "http://example.com").validate().unwrap_err();
    assert!(refused.contains("https://"), "{refused}");
    assert!(http("a", "http://10.0.0.1/mcp").validate().is_err());
    assert!(http("a", "ftp://example.com/mcp").validate().is_err());
    assert!(http("a", "not a url").validate().is_err());

    let ok = stdio("my-server_2", "npx", &["-y", "server"], 30);
    assert!(ok.validate().is_ok());
    for name in ["", "a__b", "a_", "has space", "dot.ted", &"x".repeat(33)] {
        let err = stdio(name, "x", &[], 30).validate();
        assert!(err.is_err(), "{name:?} was accepted");
    }
    assert!(stdio("a", "x", &[], 0).validate().is_err());
    let mut no_command = stdio("a", "x", &[], 30);
    no_command.command = None;
    assert!(no_command.validate().is_err());
    let mut stdio_with_url = stdio("a", "x", &[], 30);
    stdio_with_url.url = Some("https://example.com".to_owned());
    assert!(stdio_with_url.validate().is_err());
    let mut http_with_command = http("a", "https://example.com/mcp");
    http_with_command.command = Some("x".to_owned());
    assert!(http_with_command.validate().is_err());

    let twice = [stdio("a", "x", &[], 30), stdio("a", "y", &[], 30)];
    assert!(validate_mcp_servers(&twice[..1]).is_ok());
    assert!(validate_mcp_servers(&twice).unwrap_err().contains("`a`"));
}

#[test]
fn config_defaults_and_the_timeout_alias() {
    let config: McpServerConfig = serde_json::from_value(json!({
        "name": "fs", "transport": "stdio", "command": "mcp-fs",
    }))
    .unwrap();
    assert_eq!(config.timeout_s, 30);
    assert_eq!(config.max_concurrent, 4);
    assert!(config.args.is_empty());
    // Untrusted unless the table says otherwise: its tools always ask.
    assert_eq!(config.trust, r1_engine::McpTrust::Untrusted);
    let pool = r1_engine::McpPool::new(
        vec![config.clone(), {
            let mut t = config.clone();
            t.name = "mine".into();
            t.trust = r1_engine::McpTrust::Trusted;
            t
        }],
        std::env::temp_dir(),
    );
    assert!(pool.always_asks("fs__read"));
    assert!(!pool.always_asks("mine__read"));
    assert!(!pool.always_asks("read_file"));
    let trusted: McpServerConfig = serde_json::from_value(json!({
        "name": "fs", "transport": "stdio", "command": "mcp-fs", "trust": "trusted",
    }))
    .unwrap();
    assert_eq!(trusted.trust, r1_engine::McpTrust::Trusted);
    assert!(serde_json::from_value::<McpServerConfig>(json!({
        "name": "fs", "transport": "stdio", "command": "mcp-fs", "trust": "maybe",
    }))
    .is_err());

    let config: McpServerConfig = serde_json::from_value(json!({
        "name": "gh", "transport": "http", "url": "https://example.com/mcp",
        "auth_env": "GH_TOKEN", "timeout": 5,
    }))
    .unwrap();
    assert_eq!(config.transport, McpTransport::Http);
    assert_eq!(config.timeout_s, 5);

    let unknown = serde_json::from_value::<McpServerConfig>(json!({
        "name": "x", "transport": "stdio", "command": "y", "typo": 1,
    }));
    assert!(unknown.is_err());
}
