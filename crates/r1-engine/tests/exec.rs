//! The `exec` provider against fake agent CLIs (scripts in `tests/fixtures/`) that speak
//! the real output formats of Claude Code and Codex; the real CLIs are never run.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Once;
use std::time::{Duration, Instant};

use futures_util::stream::{BoxStream, StreamExt};
use r1_engine::{
    ChatMessage, ExecAdapter, ExecConfig, ExecProvider, Provider, ProviderError, ProviderEvent,
    ProviderRequest, Role,
};
use serde_json::json;

type Item = Result<ProviderEvent, ProviderError>;

/// Sets the variables the env test looks for. Every test calls this before it spawns
/// anything, so the environment is never written while another test reads it.
fn init_env() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for (k, v) in [
            ("R1_HOME", "/secret/home"),
            ("FOO_TOKEN", "t"),
            ("my_secret_value", "s"),
            ("DB_PASSWORD", "p"),
            ("DROP_ME", "d"),
            ("ANTHROPIC_API_KEY", "needed-by-the-agent"),
        ] {
            std::env::set_var(k, v);
        }
    });
}

fn fixture(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
        .display()
        .to_string()
}

fn provider(adapter: ExecAdapter, script: &str, args: &[&str], workdir: PathBuf) -> ExecProvider {
    init_env();
    ExecProvider::new(ExecConfig {
        adapter,
        command: fixture(script),
        args: args.iter().map(|a| a.to_string()).collect(),
        workdir,
        env_remove: vec!["DROP_ME".into()],
    })
}

/// A conversation whose last user message is `prompt`, after some earlier context the
/// agent must not be sent.
fn request(prompt: &str) -> ProviderRequest {
    ProviderRequest {
        model: None,
        system: Some("system prompt".into()),
        messages: vec![
            ChatMessage::text(Role::User, "an older question"),
            ChatMessage::text(Role::Assistant, "an older answer"),
            ChatMessage::text(Role::User, prompt),
        ],
        tools: Vec::new(),
        protected: Default::default(),
        notes: Vec::new(),
        agent: Default::default(),
    }
}

async fn start(p: &ExecProvider, prompt: &str) -> BoxStream<'static, Item> {
    p.stream(request(prompt)).await.expect("agent starts")
}

/// The events of one run, without the agent's conversation id, which comes first and
/// is checked to look like the fake's (`sess-<pid>`, `thread-<pid>`).
async fn collect(p: &ExecProvider, prompt: &str) -> Vec<Item> {
    let mut items = collect_all(p, request(prompt)).await;
    if let Some(Ok(ProviderEvent::AgentSession(id))) = items.first() {
        assert!(id.starts_with("sess-") || id.starts_with("thread-"), "{id}");
        items = items.split_off(1);
    }
    items
}

async fn collect_all(p: &ExecProvider, req: ProviderRequest) -> Vec<Item> {
    let s = p.stream(req).await.expect("agent starts");
    tokio::time::timeout(Duration::from_secs(20), s.collect::<Vec<_>>())
        .await
        .expect("the stream ends")
}

fn workdir() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().canonicalize().unwrap().display().to_string();
    (dir, path)
}

fn text(s: &str) -> Item {
    Ok(ProviderEvent::TextDelta(s.into()))
}

fn finish() -> Item {
    Ok(ProviderEvent::Finish {
        reason: "stop".into(),
    })
}

fn error_of(items: &[Item]) -> String {
    match items.last() {
        Some(Err(e)) => {
            assert!(!e.retryable, "{e:?}");
            e.message.clone()
        }
        other => panic!("expected an error last, got {other:?}"),
    }
}

#[tokio::test]
async fn claude_stream_json_maps_to_events() {
    let (dir, cwd) = workdir();
    let p = provider(
        ExecAdapter::ClaudeCode,
        "fake-claude",
        &[],
        dir.path().into(),
    );
    assert_eq!(p.name(), "exec");
    let items = collect(&p, "hello there").await;
    assert_eq!(
        items,
        vec![
            text(&format!("prompt=hello there cwd={cwd}")),
            Ok(ProviderEvent::ExternalToolCall {
                id: "toolu_1".into(),
                name: "Bash".into(),
                arguments: json!({"command": "ls"}),
            }),
            Ok(ProviderEvent::ExternalToolResult {
                id: "toolu_1".into(),
                content: "a.txt\nb.txt".into(),
                is_error: false,
            }),
            text("done"),
            Ok(ProviderEvent::Usage {
                input_tokens: 15,
                output_tokens: 7,
                cached_input_tokens: Some(5),
            }),
            finish(),
        ]
    );
}

#[tokio::test]
async fn claude_partial_messages_are_not_repeated() {
    let (dir, cwd) = workdir();
    let p = provider(
        ExecAdapter::ClaudeCode,
        "fake-claude",
        &["--include-partial-messages"],
        dir.path().into(),
    );
    let items = collect(&p, "hi").await;
    let whole = format!("prompt=hi cwd={cwd}");
    assert_eq!(items[0], text(&whole[..5]));
    assert_eq!(items[1], text(&whole[5..]));
    assert!(matches!(
        &items[2],
        Ok(ProviderEvent::ExternalToolCall { id, .. }) if id == "toolu_1"
    ));
    assert!(matches!(
        &items[3],
        Ok(ProviderEvent::ExternalToolResult { .. })
    ));
    // The second message had no partial deltas, so its complete text is emitted.
    assert_eq!(items[4], text("done"));
    assert_eq!(items.len(), 7, "{items:?}");
}

#[tokio::test]
async fn claude_error_result_is_an_error_item() {
    let (dir, _) = workdir();
    let p = provider(
        ExecAdapter::ClaudeCode,
        "fake-claude",
        &["--fail"],
        dir.path().into(),
    );
    let items = collect(&p, "hi").await;
    assert_eq!(items.len(), 4, "{items:?}");
    assert!(error_of(&items).contains("the model is overloaded"));
}

#[tokio::test]
async fn claude_bad_exit_reports_status_and_stderr() {
    let (dir, _) = workdir();
    // The fake codex rejects claude's argv on stderr and exits with status 2.
    let p = provider(
        ExecAdapter::ClaudeCode,
        "fake-codex",
        &[],
        dir.path().into(),
    );
    let items = collect(&p, "hi").await;
    assert_eq!(items.len(), 1, "{items:?}");
    let msg = error_of(&items);
    assert!(
        msg.contains("fake-codex exited with status 2: bad argv"),
        "{msg}"
    );
}

#[tokio::test]
async fn malformed_json_line_is_an_error() {
    let (dir, _) = workdir();
    let p = provider(
        ExecAdapter::ClaudeCode,
        "fake-garbage",
        &[],
        dir.path().into(),
    );
    let items = collect(&p, "hi").await;
    assert_eq!(items.len(), 1, "{items:?}");
    let msg = error_of(&items);
    assert!(msg.contains("malformed output line from"), "{msg}");
    assert!(msg.contains("this is not json"), "{msg}");
}

#[tokio::test]
async fn codex_json_maps_to_events() {
    let (dir, cwd) = workdir();
    let p = provider(
        ExecAdapter::Codex,
        "fake-codex",
        &["--skip-git-repo-check"],
        dir.path().into(),
    );
    let items = collect(&p, "fix it").await;
    assert_eq!(
        items,
        vec![
            Ok(ProviderEvent::ExternalToolCall {
                id: "item_1".into(),
                name: "command_execution".into(),
                arguments: json!({"command": "bash -lc false"}),
            }),
            Ok(ProviderEvent::ExternalToolResult {
                id: "item_1".into(),
                content: "boom\n".into(),
                is_error: true,
            }),
            text(&format!(
                "prompt=fix it cwd={cwd} extra=--skip-git-repo-check"
            )),
            Ok(ProviderEvent::Usage {
                input_tokens: 12,
                output_tokens: 9,
                cached_input_tokens: Some(4),
            }),
            finish(),
        ]
    );
}

#[tokio::test]
async fn codex_turn_failed_is_an_error_item() {
    let (dir, _) = workdir();
    let p = provider(
        ExecAdapter::Codex,
        "fake-codex",
        &["--fail"],
        dir.path().into(),
    );
    let items = collect(&p, "fix it").await;
    assert_eq!(items.len(), 4, "{items:?}");
    assert!(error_of(&items).contains("stream disconnected"));
}

#[tokio::test]
async fn generic_gets_the_prompt_on_stdin() {
    let (dir, _) = workdir();
    let p = provider(ExecAdapter::Generic, "fake-cat", &[], dir.path().into());
    let items = collect(&p, "line one\nline two").await;
    assert_eq!(
        items,
        vec![text("got: line one\n"), text("got: line two\n"), finish()]
    );
}

#[tokio::test]
async fn nonzero_exit_is_an_error_with_the_stderr_tail() {
    let (dir, _) = workdir();
    let p = provider(ExecAdapter::Generic, "fake-fail", &[], dir.path().into());
    let items = collect(&p, "hi").await;
    assert_eq!(items[0], text("partial answer\n"));
    assert_eq!(items.len(), 2, "{items:?}");
    let msg = error_of(&items);
    assert!(
        msg.ends_with("fake-fail exited with status 2: fatal: no credentials configured"),
        "{msg}"
    );
}

#[tokio::test]
async fn a_missing_command_fails_to_start() {
    let (dir, _) = workdir();
    init_env();
    let p = ExecProvider::new(ExecConfig {
        adapter: ExecAdapter::ClaudeCode,
        command: "/nonexistent/r1-test-agent".into(),
        args: Vec::new(),
        workdir: dir.path().into(),
        env_remove: Vec::new(),
    });
    let err = match p.stream(request("hi")).await {
        Ok(_) => panic!("a missing command started"),
        Err(e) => e,
    };
    assert!(!err.retryable);
    assert!(
        err.message
            .starts_with("cannot start /nonexistent/r1-test-agent: "),
        "{err}"
    );
}

#[tokio::test]
async fn dropping_the_stream_kills_the_process_group() {
    let (dir, _) = workdir();
    let p = provider(ExecAdapter::Generic, "fake-hang", &[], dir.path().into());
    let mut s = start(&p, "hi").await;
    let first = tokio::time::timeout(Duration::from_secs(10), s.next())
        .await
        .unwrap();
    let pgid: libc::pid_t = match first {
        Some(Ok(ProviderEvent::TextDelta(t))) => t.trim().parse().unwrap(),
        other => panic!("expected the pid, got {other:?}"),
    };
    assert!(group_alive(pgid), "the group runs while the stream is held");
    drop(s);
    let since = Instant::now();
    while group_alive(pgid) {
        assert!(
            since.elapsed() < Duration::from_secs(1),
            "process group {pgid} still alive after the stream was dropped"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// True while process group `pgid` has a member that is not a zombie. A killed member
/// stays a zombie until its parent reaps it, and `kill(-pgid, 0)` still counts it; the
/// orphaned grandchild's new parent (PID 1, or a container's init) may reap late, which
/// is not the provider's doing. So a group of zombies only counts as gone.
fn group_alive(pgid: libc::pid_t) -> bool {
    // SAFETY: probing with signal 0 sends nothing.
    if unsafe { libc::kill(-pgid, 0) } != 0 {
        assert_eq!(
            std::io::Error::last_os_error().raw_os_error(),
            Some(libc::ESRCH)
        );
        return false;
    }
    std::fs::read_dir("/proc").unwrap().flatten().any(|entry| {
        // `pid (comm) state ppid pgrp …`; comm may hold spaces and parentheses.
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            return false;
        };
        let Some((_, rest)) = stat.rsplit_once(") ") else {
            return false;
        };
        let fields: Vec<&str> = rest.split(' ').collect();
        fields.get(2) == Some(&pgid.to_string().as_str()) && fields.first() != Some(&"Z")
    })
}

#[tokio::test]
async fn credentials_do_not_reach_the_agent() {
    let (dir, _) = workdir();
    let p = provider(ExecAdapter::Generic, "fake-env", &[], dir.path().into());
    let items = collect(&p, "hi").await;
    assert_eq!(items.last(), Some(&finish()));
    let names: Vec<String> = items
        .iter()
        .filter_map(|i| match i {
            Ok(ProviderEvent::TextDelta(t)) => Some(t.trim().to_string()),
            _ => None,
        })
        .collect();
    for gone in [
        "R1_HOME",
        "FOO_TOKEN",
        "my_secret_value",
        "DB_PASSWORD",
        "DROP_ME",
    ] {
        assert!(!names.iter().any(|n| n == gone), "{gone} leaked: {names:?}");
    }
    assert!(names.iter().any(|n| n == "ANTHROPIC_API_KEY"), "{names:?}");
    assert!(names.iter().any(|n| n == "PATH"), "{names:?}");
}

/// A second turn: the first turn's answer carried the agent's conversation `id`.
fn second_turn(id: &str, prompt: &str) -> ProviderRequest {
    let mut req = request("first question");
    let mut answer = ChatMessage::text(Role::Assistant, "first answer");
    answer.agent_session = Some(id.to_string());
    req.messages.push(answer);
    req.messages.push(ChatMessage::text(Role::User, prompt));
    req
}

fn session_of(items: &[Item]) -> String {
    match items.first() {
        Some(Ok(ProviderEvent::AgentSession(id))) => id.clone(),
        other => panic!("expected the agent's session first, got {other:?}"),
    }
}

fn texts(items: &[Item]) -> String {
    items
        .iter()
        .filter_map(|i| match i {
            Ok(ProviderEvent::TextDelta(t)) => Some(t.as_str()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn claude_resumes_its_conversation_and_gets_option_like_messages_verbatim() {
    let (dir, _) = workdir();
    let p = provider(
        ExecAdapter::ClaudeCode,
        "fake-claude",
        &[],
        dir.path().into(),
    );
    // First turn: no --resume (the fake refuses anything unexpected), a new id.
    let first = collect_all(&p, request("hello")).await;
    let id = session_of(&first);
    assert!(!texts(&first).contains("resumed="), "{first:?}");
    // Second turn: --resume with that id, and a message that looks like options.
    let second = collect_all(&p, second_turn(&id, "-rf /")).await;
    assert_eq!(session_of(&second), id);
    let t = texts(&second);
    assert!(t.starts_with("prompt=-rf / cwd="), "{t}");
    assert!(t.contains(&format!("resumed={id}")), "{t}");
    let help = collect_all(&p, second_turn(&id, "--help")).await;
    assert!(texts(&help).starts_with("prompt=--help cwd="), "{help:?}");
}

#[tokio::test]
async fn codex_resumes_its_thread_and_skips_the_repo_check_only_outside_a_repo() {
    let (dir, _) = workdir();
    let p = provider(ExecAdapter::Codex, "fake-codex", &[], dir.path().into());
    // Not a repository: r1 adds --skip-git-repo-check (the fake refuses to run without).
    let first = collect_all(&p, request("-v")).await;
    let id = session_of(&first);
    let t = texts(&first);
    assert!(t.starts_with("prompt=-v cwd="), "{t}");
    assert!(t.contains("extra=--skip-git-repo-check"), "{t}");
    let second = collect_all(&p, second_turn(&id, "and then?")).await;
    assert_eq!(session_of(&second), id);
    assert!(
        texts(&second).contains(&format!("resumed={id}")),
        "{second:?}"
    );

    // In a repository (a subdirectory of one): no flag.
    let (repo, _) = workdir();
    std::fs::create_dir(repo.path().join(".git")).unwrap();
    std::fs::create_dir(repo.path().join("src")).unwrap();
    let p = provider(
        ExecAdapter::Codex,
        "fake-codex",
        &[],
        repo.path().join("src"),
    );
    let t = texts(&collect_all(&p, request("hi")).await);
    assert!(t.contains("extra= ") || t.ends_with("extra="), "{t}");
}

/// A Claude Code turn with a permission channel: the agent gets `--mcp-config FILE
/// --permission-prompt-tool mcp__r1_approvals__permission_prompt`; the secret is in the
/// file (private to the user, removed after the run), never in the argv.
#[tokio::test]
async fn claude_gets_the_permission_channel_in_a_private_file() {
    init_env();
    let (dir, _) = workdir();
    // A `claude` that reports its argv, and the mode and content of the file after
    // --mcp-config, in its answer.
    let script = dir.path().join("claude-argv");
    std::fs::write(
        &script,
        r#"#!/usr/bin/python3
import json, os, sys
args = sys.argv[1:]
seen = {"argv": args}
if "--mcp-config" in args:
    path = args[args.index("--mcp-config") + 1]
    seen.update(mode=oct(os.stat(path).st_mode & 0o777), config=json.load(open(path)))
print(json.dumps({"type": "assistant", "message": {"id": "m", "content": [{"type": "text", "text": json.dumps(seen)}]}}))
print(json.dumps({"type": "result", "subtype": "success", "is_error": False, "usage": {}}))
"#,
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o700)).unwrap();
    let p = ExecProvider::new(p_config(&script, dir.path()));
    let mut req = request("hi");
    req.agent.permission = Some(r1_engine::PermissionChannel {
        url: "http://127.0.0.1:9/v1/permission/prm_x".into(),
        secret: "s3cr3t-permit".into(),
    });
    let seen: serde_json::Value =
        serde_json::from_str(&texts(&collect_all(&p, req).await)).unwrap();
    let argv: Vec<String> = serde_json::from_value(seen["argv"].clone()).unwrap();
    assert!(!argv.iter().any(|a| a.contains("s3cr3t")), "{argv:?}");
    let tool = argv
        .iter()
        .position(|a| a == "--permission-prompt-tool")
        .unwrap();
    assert_eq!(argv[tool + 1], "mcp__r1_approvals__permission_prompt");
    assert_eq!(seen["mode"], "0o600", "{seen}");
    let server = &seen["config"]["mcpServers"]["r1_approvals"];
    assert_eq!(server["type"], "http", "{seen}");
    assert_eq!(server["url"], "http://127.0.0.1:9/v1/permission/prm_x");
    assert_eq!(server["headers"]["Authorization"], "Bearer s3cr3t-permit");
    let file = &argv[argv.iter().position(|a| a == "--mcp-config").unwrap() + 1];
    assert!(
        !std::path::Path::new(file).exists(),
        "{file} outlived the run"
    );
    // The engine's own prompt tool wins: r1 adds no channel then.
    let p = ExecProvider::new(ExecConfig {
        args: vec!["--permission-prompt-tool".into(), "mcp__mine__ask".into()],
        ..p_config(&script, dir.path())
    });
    let mut req = request("hi");
    req.agent.permission = Some(r1_engine::PermissionChannel {
        url: "http://127.0.0.1:9/x".into(),
        secret: "s".into(),
    });
    let seen: serde_json::Value =
        serde_json::from_str(&texts(&collect_all(&p, req).await)).unwrap();
    let argv: Vec<String> = serde_json::from_value(seen["argv"].clone()).unwrap();
    assert!(!argv.iter().any(|a| a == "--mcp-config"), "{argv:?}");
    assert_eq!(
        argv[argv.len() - 2..],
        ["--permission-prompt-tool", "mcp__mine__ask"]
    );
}

fn p_config(command: &std::path::Path, workdir: &std::path::Path) -> ExecConfig {
    ExecConfig {
        adapter: ExecAdapter::ClaudeCode,
        command: command.display().to_string(),
        args: Vec::new(),
        workdir: workdir.into(),
        env_remove: Vec::new(),
    }
}
