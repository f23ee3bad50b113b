//! The built-in tools against real temporary directories and real processes: the happy
//! paths, confinement to the workdir, and that commands leave no process behind.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use r1_engine::{
    builtin_tools, default_policy, run_tool, Policy, ToolCall, ToolContext, ToolResult,
};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// A workdir inside a scratch directory, with a sibling `outside` directory holding a
/// file that no tool may read or change.
struct Fixture {
    _scratch: tempfile::TempDir,
    workdir: PathBuf,
    outside: PathBuf,
}

const SECRET: &str = "top secret outside content 42";

impl Fixture {
    fn new() -> Fixture {
        let scratch = tempfile::tempdir().unwrap();
        let base = scratch.path().canonicalize().unwrap();
        let workdir = base.join("work");
        let outside = base.join("outside");
        fs::create_dir(&workdir).unwrap();
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("secret.txt"), SECRET).unwrap();
        Fixture {
            _scratch: scratch,
            workdir,
            outside,
        }
    }

    fn ctx(&self) -> ToolContext {
        ToolContext {
            workdir: self.workdir.clone(),
            cancel: CancellationToken::new(),
            output: None,
            protected: Default::default(),
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.workdir.join(rel)
    }

    async fn call(&self, name: &str, arguments: Value) -> ToolResult {
        call_with(&self.ctx(), name, arguments).await
    }

    fn outside_unchanged(&self) {
        assert_eq!(
            fs::read_to_string(self.outside.join("secret.txt")).unwrap(),
            SECRET
        );
        let names: Vec<_> = fs::read_dir(&self.outside).unwrap().collect();
        assert_eq!(names.len(), 1, "nothing new appears outside the workdir");
    }
}

async fn call_with(ctx: &ToolContext, name: &str, arguments: Value) -> ToolResult {
    let call = ToolCall {
        id: "call-1".to_owned(),
        name: name.to_owned(),
        arguments,
    };
    let result = run_tool(ctx, &call).await;
    assert_eq!(result.call_id, "call-1");
    assert_eq!(result.name, name);
    result
}

fn ok(result: &ToolResult) -> &str {
    assert!(
        !result.is_error,
        "expected success, got: {}",
        result.content
    );
    &result.content
}

fn refused(result: &ToolResult) -> &str {
    assert!(
        result.is_error,
        "expected an error, got: {}",
        result.content
    );
    assert!(
        !result.content.contains(SECRET),
        "an error leaked outside content: {}",
        result.content
    );
    &result.content
}

#[test]
fn specs_and_policies() {
    let names: Vec<String> = builtin_tools().into_iter().map(|t| t.name).collect();
    assert_eq!(
        names,
        [
            "read_file",
            "write_file",
            "edit_file",
            "list_dir",
            "search",
            "run_command"
        ]
    );
    for tool in builtin_tools() {
        assert!(!tool.description.is_empty());
        assert_eq!(tool.input_schema["type"], "object");
        assert!(tool.input_schema["required"].is_array());
    }
    for allowed in ["read_file", "list_dir", "search"] {
        assert_eq!(default_policy(allowed), Policy::Allow);
    }
    for asked in ["write_file", "edit_file", "run_command", "no_such_tool"] {
        assert_eq!(default_policy(asked), Policy::Ask);
    }
    assert_eq!(serde_json::to_value(Policy::Deny).unwrap(), json!("deny"));
    assert_eq!(
        serde_json::from_value::<Policy>(json!("allow")).unwrap(),
        Policy::Allow
    );
}

#[tokio::test]
async fn write_read_edit_list() {
    let fx = Fixture::new();
    let wrote = fx
        .call(
            "write_file",
            json!({"path": "src/deep/a.txt", "content": "one\ntwo\nthree\n"}),
        )
        .await;
    ok(&wrote);
    assert_eq!(
        fs::read_to_string(fx.path("src/deep/a.txt")).unwrap(),
        "one\ntwo\nthree\n"
    );

    let read = fx
        .call("read_file", json!({"path": "./src/deep/a.txt"}))
        .await;
    assert_eq!(ok(&read), "one\ntwo\nthree\n");

    let edited = fx
        .call(
            "edit_file",
            json!({"path": "src/deep/a.txt", "old": "two", "new": "2"}),
        )
        .await;
    assert!(ok(&edited).contains("line 2"), "{}", edited.content);
    assert_eq!(
        fs::read_to_string(fx.path("src/deep/a.txt")).unwrap(),
        "one\n2\nthree\n"
    );

    fs::write(fx.path("b.txt"), "b").unwrap();
    fs::create_dir(fx.path("adir")).unwrap();
    let listed = fx.call("list_dir", json!({"path": "."})).await;
    assert_eq!(ok(&listed), "adir/\nb.txt\nsrc/");

    // `..` that stays inside the workdir is fine.
    let inside = fx.call("read_file", json!({"path": "src/../b.txt"})).await;
    assert_eq!(ok(&inside), "b");

    let missing = fx.call("read_file", json!({"path": "nope.txt"})).await;
    assert!(refused(&missing).contains("nope.txt"));
    let bad_args = fx.call("read_file", json!({"file": "b.txt"})).await;
    assert!(refused(&bad_args).contains("path"));
    let unknown = fx.call("frobnicate", json!({})).await;
    assert!(refused(&unknown).contains("unknown tool"));
}

#[tokio::test]
async fn read_is_bounded() {
    let fx = Fixture::new();
    fs::write(fx.path("big.txt"), "x".repeat(300 * 1024)).unwrap();
    let read = fx.call("read_file", json!({"path": "big.txt"})).await;
    let text = ok(&read);
    assert!(text.contains("[truncated"), "no truncation note");
    assert!(text.len() < 270 * 1024);
}

#[tokio::test]
async fn edit_needs_exactly_one_match() {
    let fx = Fixture::new();
    let original = "alpha beta alpha\n";
    fs::write(fx.path("f.txt"), original).unwrap();

    let none = fx
        .call(
            "edit_file",
            json!({"path": "f.txt", "old": "gamma", "new": "x"}),
        )
        .await;
    assert!(refused(&none).contains("not found"), "{}", none.content);
    let two = fx
        .call(
            "edit_file",
            json!({"path": "f.txt", "old": "alpha", "new": "x"}),
        )
        .await;
    assert!(refused(&two).contains("2 times"), "{}", two.content);
    let empty = fx
        .call("edit_file", json!({"path": "f.txt", "old": "", "new": "x"}))
        .await;
    refused(&empty);
    assert_eq!(fs::read_to_string(fx.path("f.txt")).unwrap(), original);
}

#[tokio::test]
async fn search_finds_and_respects_gitignore() {
    let fx = Fixture::new();
    fs::write(fx.path(".gitignore"), "ignored/\n*.log\n").unwrap();
    fs::create_dir_all(fx.path("src/inner")).unwrap();
    fs::create_dir(fx.path("ignored")).unwrap();
    fs::write(fx.path("src/main.rs"), "fn main() {\n    needle();\n}\n").unwrap();
    fs::write(fx.path("src/inner/lib.rs"), "// needle here\n").unwrap();
    fs::write(fx.path("ignored/x.rs"), "needle\n").unwrap();
    fs::write(fx.path("src/debug.log"), "needle\n").unwrap();

    let all = fx.call("search", json!({"pattern": "need+le"})).await;
    let mut lines: Vec<&str> = ok(&all).lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            "src/inner/lib.rs:1: // needle here",
            "src/main.rs:2:     needle();"
        ]
    );

    // A subdirectory still obeys the workdir's .gitignore.
    let sub = fx
        .call("search", json!({"pattern": "needle", "path": "src/inner"}))
        .await;
    assert_eq!(ok(&sub), "src/inner/lib.rs:1: // needle here");

    let none = fx.call("search", json!({"pattern": "haystack"})).await;
    assert!(ok(&none).contains("no matches"));
    let bad = fx.call("search", json!({"pattern": "("})).await;
    assert!(refused(&bad).contains("regular expression"));
}

#[tokio::test]
async fn escapes_are_refused() {
    let fx = Fixture::new();
    std::os::unix::fs::symlink("/etc", fx.path("etc")).unwrap();
    std::os::unix::fs::symlink(fx.outside.join("secret.txt"), fx.path("link.txt")).unwrap();
    std::os::unix::fs::symlink(&fx.outside, fx.path("out")).unwrap();
    std::os::unix::fs::symlink(fx.outside.join("new.txt"), fx.path("dangling.txt")).unwrap();
    fs::create_dir(fx.path("a")).unwrap();

    let outside_rel = "../outside/secret.txt";
    for path in [
        "../x",
        outside_rel,
        "a/../../outside/secret.txt",
        "link.txt",
        "out/secret.txt",
    ] {
        let read = fx.call("read_file", json!({"path": path})).await;
        assert!(
            refused(&read).contains("escapes the workdir"),
            "{path}: {}",
            read.content
        );
    }
    let abs = fx.call("read_file", json!({"path": "/etc/passwd"})).await;
    assert!(refused(&abs).contains("absolute"));
    let etc = fx.call("read_file", json!({"path": "etc/passwd"})).await;
    assert!(refused(&etc).contains("escapes the workdir"));
    let list = fx.call("list_dir", json!({"path": "etc"})).await;
    assert!(refused(&list).contains("escapes the workdir"));
    let list_out = fx.call("list_dir", json!({"path": "out"})).await;
    refused(&list_out);

    for path in [
        "link.txt",
        "out/secret.txt",
        "out/new.txt",
        outside_rel,
        "dangling.txt",
        "etc/r1-test",
    ] {
        let write = fx
            .call("write_file", json!({"path": path, "content": "pwned"}))
            .await;
        refused(&write);
        let edit = fx
            .call(
                "edit_file",
                json!({"path": path, "old": "secret", "new": "pwned"}),
            )
            .await;
        refused(&edit);
    }
    let abs_write = fx
        .call(
            "write_file",
            json!({"path": fx.outside.join("x.txt").to_str().unwrap(), "content": "x"}),
        )
        .await;
    refused(&abs_write);

    for path in [".", "out", "link.txt"] {
        let search = fx
            .call("search", json!({"pattern": "secret", "path": path}))
            .await;
        assert!(
            !search.content.contains(SECRET),
            "{path}: {}",
            search.content
        );
    }
    let listed = fx.call("list_dir", json!({"path": "."})).await;
    assert!(!ok(&listed).contains("secret.txt"));

    fx.outside_unchanged();
    assert!(!Path::new("/etc/r1-test").exists());
}

/// Reads chunks from the output channel until `pred` holds for their concatenation.
async fn collect_until(rx: &mut mpsc::Receiver<String>, pred: impl Fn(&str) -> bool) -> String {
    let mut seen = String::new();
    while !pred(&seen) {
        match tokio::time::timeout(Duration::from_secs(10), rx.recv()).await {
            Ok(Some(chunk)) => seen.push_str(&chunk),
            other => panic!("output ended early ({other:?}); saw {seen:?}"),
        }
    }
    seen
}

#[tokio::test]
async fn command_streams_and_reports_exit_code() {
    let fx = Fixture::new();
    let (tx, mut rx) = mpsc::channel(16);
    let ctx = ToolContext {
        output: Some(tx),
        ..fx.ctx()
    };
    let task = tokio::spawn(async move {
        call_with(
            &ctx,
            "run_command",
            json!({"command": "echo first; sleep 0.5; echo second >&2; pwd; exit 3"}),
        )
        .await
    });
    // The first line arrives while the command is still sleeping.
    let first = collect_until(&mut rx, |s| s.contains("first")).await;
    assert!(!first.contains("second"));
    let result = task.await.unwrap();
    assert!(result.is_error, "a non-zero exit is an error");
    assert!(
        result.content.contains("exit code: 3"),
        "{}",
        result.content
    );
    assert!(result.content.contains("second"));
    assert!(
        result.content.contains(fx.workdir.to_str().unwrap()),
        "runs in the workdir"
    );

    let fine = fx.call("run_command", json!({"command": "true"})).await;
    assert!(ok(&fine).contains("exit code: 0"));
}

#[tokio::test]
async fn command_env_has_no_secrets() {
    // SAFETY (edition 2021, so not `unsafe` here): other tests spawn commands
    // concurrently, and std serialises set_var with spawning through its env lock.
    std::env::set_var("R1_TEST_SECRET_TOKEN", "leaked-credential");
    std::env::set_var("R1_TEST_PLAIN", "plain");
    std::env::set_var("MY_API_KEY", "leaked-key");
    std::env::set_var("HARMLESS_R1_TOOLS_VAR", "visible");
    let fx = Fixture::new();
    let result = fx.call("run_command", json!({"command": "env"})).await;
    let env = ok(&result);
    assert!(!env.contains("leaked"), "{env}");
    assert!(!env.contains("R1_TEST_PLAIN"));
    assert!(env.contains("HARMLESS_R1_TOOLS_VAR=visible"));
}

/// The process group's id, printed first by the test commands as `pgid=N`.
fn parse_pgid(output: &str) -> libc::pid_t {
    let start = output.find("pgid=").unwrap() + 5;
    output[start..]
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// Live (not zombie) processes of a group, from /proc.
fn live_members(pgid: libc::pid_t) -> Vec<String> {
    let mut live = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // Fields after the `(comm)`: state, ppid, pgrp, …
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        if fields.get(2) == Some(&pgid.to_string().as_str()) && fields[0] != "Z" {
            live.push(stat);
        }
    }
    live
}

/// Asserts the group has no live member within moments (SIGKILL is delivered
/// asynchronously: a killed process can show as running until it is next scheduled,
/// which on a loaded machine takes a little while), and no member at all
/// (`kill(-pgid, 0)` fails with ESRCH) once the orphaned zombies have been reaped by init.
async fn assert_group_gone(pgid: libc::pid_t) {
    assert!(pgid > 1);
    let deadline = Instant::now() + Duration::from_secs(2);
    while !live_members(pgid).is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        live_members(pgid),
        Vec::<String>::new(),
        "live processes left"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // SAFETY: signal 0 only checks for existence; nothing is sent.
        let rc = unsafe { libc::kill(-pgid, 0) };
        if rc == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "process group {pgid} still has members"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

const SPAWNS_GRANDCHILDREN: &str = "echo pgid=$$; sleep 100 & sleep 100 & wait";

#[tokio::test]
async fn timeout_kills_the_group() {
    let fx = Fixture::new();
    let started = Instant::now();
    let result = fx
        .call(
            "run_command",
            json!({"command": SPAWNS_GRANDCHILDREN, "timeout_s": 1}),
        )
        .await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(refused(&result).contains("timed out"), "{}", result.content);
    assert_group_gone(parse_pgid(&result.content)).await;
}

#[tokio::test]
async fn cancel_kills_the_group_promptly() {
    let fx = Fixture::new();
    let (tx, mut rx) = mpsc::channel(16);
    let ctx = ToolContext {
        output: Some(tx),
        ..fx.ctx()
    };
    let cancel = ctx.cancel.clone();
    let task = tokio::spawn(async move {
        call_with(
            &ctx,
            "run_command",
            json!({"command": SPAWNS_GRANDCHILDREN}),
        )
        .await
    });
    let seen = collect_until(&mut rx, |s| s.contains('\n')).await;
    let pgid = parse_pgid(&seen);
    let cancelled_at = Instant::now();
    cancel.cancel();
    let result = tokio::time::timeout(Duration::from_secs(1), task)
        .await
        .expect("cancel took more than a second")
        .unwrap();
    assert!(cancelled_at.elapsed() < Duration::from_secs(1));
    assert!(refused(&result).contains("cancelled"), "{}", result.content);
    assert_group_gone(pgid).await;
}

#[tokio::test]
async fn background_processes_do_not_outlive_the_command() {
    let fx = Fixture::new();
    let started = Instant::now();
    let result = fx
        .call(
            "run_command",
            json!({"command": "echo pgid=$$; sleep 100 & echo done"}),
        )
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "waited for the background job"
    );
    assert!(ok(&result).contains("done"));
    assert_group_gone(parse_pgid(&result.content)).await;
}

#[tokio::test]
async fn command_output_is_bounded() {
    let fx = Fixture::new();
    let result = fx
        .call(
            "run_command",
            json!({"command": "head -c 300000 /dev/zero | tr '\\0' 'y'; echo; echo tail-marker"}),
        )
        .await;
    let text = ok(&result);
    assert!(text.contains("[output cut"), "no cut note");
    assert!(text.contains("tail-marker"));
    assert!(text.len() < 70 * 1024);
}

/// The default layout that leaked the token: the workdir is the parent of the state
/// directory (`~` and `~/.r1`), and the token is inside it.
struct StateFixture {
    _scratch: tempfile::TempDir,
    workdir: PathBuf,
    state: PathBuf,
    token: PathBuf,
    protected: std::sync::Arc<r1_engine::Protected>,
}

const TOKEN: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90tokentokentoken";

impl StateFixture {
    fn new() -> StateFixture {
        let scratch = tempfile::tempdir().unwrap();
        let workdir = scratch.path().canonicalize().unwrap().join("home");
        let state = workdir.join(".r1");
        fs::create_dir_all(state.join("sessions")).unwrap();
        let token = state.join("token");
        fs::write(&token, format!("{TOKEN}\n")).unwrap();
        fs::write(state.join("daemon.json"), "{}").unwrap();
        fs::write(workdir.join("notes.txt"), "plain notes\n").unwrap();
        let protected = std::sync::Arc::new(r1_engine::Protected::for_state_dir(&state, &[]));
        StateFixture {
            _scratch: scratch,
            workdir,
            state,
            token,
            protected,
        }
    }

    fn ctx(&self) -> ToolContext {
        ToolContext {
            workdir: self.workdir.clone(),
            cancel: CancellationToken::new(),
            output: None,
            protected: self.protected.clone(),
        }
    }

    async fn call(&self, name: &str, arguments: Value) -> ToolResult {
        let result = call_with(&self.ctx(), name, arguments).await;
        assert!(
            !result.content.contains(TOKEN),
            "the token leaked: {}",
            result.content
        );
        result
    }

    async fn refused(&self, name: &str, arguments: Value, why: &str) {
        let result = self.call(name, arguments.clone()).await;
        assert!(
            result.is_error,
            "{name} {arguments} was allowed: {}",
            result.content
        );
        assert!(
            result.content.contains(why),
            "{name} {arguments}: {}",
            result.content
        );
    }
}

#[tokio::test]
async fn file_tools_refuse_the_state_directory_inside_the_workdir() {
    let fx = StateFixture::new();
    let state_dir = "inside r1's state directory";
    fx.refused("read_file", json!({"path": ".r1/token"}), "r1's token file")
        .await;
    fx.refused("read_file", json!({"path": "./x/../.r1/token"}), "token")
        .await;
    fx.refused("read_file", json!({"path": ".r1/daemon.json"}), state_dir)
        .await;
    fx.refused("list_dir", json!({"path": ".r1"}), state_dir)
        .await;
    fx.refused("list_dir", json!({"path": ".r1/sessions"}), state_dir)
        .await;
    fx.refused(
        "write_file",
        json!({"path": ".r1/token", "content": "mine"}),
        "token",
    )
    .await;
    fx.refused(
        "write_file",
        json!({"path": ".r1/new/file", "content": "x"}),
        state_dir,
    )
    .await;
    fx.refused(
        "edit_file",
        json!({"path": ".r1/token", "old": "a1", "new": "zz"}),
        "token",
    )
    .await;
    fx.refused(
        "search",
        json!({"pattern": "a1b2", "path": ".r1"}),
        state_dir,
    )
    .await;
    fx.refused(
        "search",
        json!({"pattern": "a1b2", "path": ".r1/token"}),
        "token",
    )
    .await;
    assert_eq!(fs::read_to_string(&fx.token).unwrap(), format!("{TOKEN}\n"));
    assert!(!fx.state.join("new").exists());

    // The workdir itself still works, and its listing may name the state directory.
    let listing = fx.call("list_dir", json!({"path": "."})).await;
    assert!(ok(&listing).contains(".r1/"), "{}", listing.content);
    let read = fx.call("read_file", json!({"path": "notes.txt"})).await;
    assert_eq!(ok(&read), "plain notes\n");
}

#[tokio::test]
async fn links_to_the_token_are_refused() {
    let fx = StateFixture::new();
    std::os::unix::fs::symlink(&fx.token, fx.workdir.join("sym-token")).unwrap();
    std::os::unix::fs::symlink(&fx.state, fx.workdir.join("sym-state")).unwrap();
    fs::hard_link(&fx.token, fx.workdir.join("hard-token")).unwrap();
    fs::create_dir(fx.workdir.join("deep")).unwrap();
    fs::hard_link(&fx.token, fx.workdir.join("deep/again")).unwrap();

    fx.refused("read_file", json!({"path": "sym-token"}), "r1's token file")
        .await;
    fx.refused("read_file", json!({"path": "sym-state/token"}), "token")
        .await;
    fx.refused("list_dir", json!({"path": "sym-state"}), "state directory")
        .await;
    fx.refused("read_file", json!({"path": "hard-token"}), "hard link")
        .await;
    fx.refused("read_file", json!({"path": "deep/again"}), "hard link")
        .await;
    fx.refused(
        "edit_file",
        json!({"path": "hard-token", "old": "a1b2", "new": "x"}),
        "hard link",
    )
    .await;
    fx.refused(
        "write_file",
        json!({"path": "hard-token", "content": "x"}),
        "hard link",
    )
    .await;
    fx.refused(
        "search",
        json!({"pattern": "a1b2", "path": "hard-token"}),
        "hard link",
    )
    .await;
    // The walker passes the links by: no match anywhere, not even through them.
    let found = fx.call("search", json!({"pattern": "a1b2c3"})).await;
    assert!(ok(&found).starts_with("no matches"), "{}", found.content);
    let found = fx.call("search", json!({"pattern": "notes"})).await;
    assert!(ok(&found).contains("notes.txt:1"), "{}", found.content);
    assert_eq!(fs::read_to_string(&fx.token).unwrap(), format!("{TOKEN}\n"));
}

#[tokio::test]
async fn search_never_enters_the_state_directory() {
    let fx = StateFixture::new();
    // Hidden directories are skipped anyway; make the state directory look like any
    // other by searching hidden paths explicitly too.
    let found = fx
        .call("search", json!({"pattern": "a1b2c3", "path": "."}))
        .await;
    assert!(ok(&found).starts_with("no matches"), "{}", found.content);
    fs::write(
        fx.workdir.join(".hidden-notes"),
        "a1b2c3 is not the token\n",
    )
    .unwrap();
    let found = fx
        .call(
            "search",
            json!({"pattern": "a1b2c3", "path": ".hidden-notes"}),
        )
        .await;
    assert!(ok(&found).contains(".hidden-notes:1"), "{}", found.content);
}

/// The Landlock sandbox, checked against what the kernel really does: when the probe
/// says it is active, a command cannot read the token or write outside the workdir and
/// temp directories, while it can write in the workdir; when it is not, the commands
/// run as before and the probe says why.
#[tokio::test]
async fn commands_are_confined_when_landlock_is_active() {
    let status = r1_engine::probe_sandbox();
    let fx = StateFixture::new();
    // Not under /tmp: the temp directories are writable on purpose.
    let outside = outside_the_sandbox("tools");
    let outside_file = outside.join("x");
    let token = fx.token.display().to_string();
    let cat = fx
        .call("run_command", json!({"command": format!("cat '{token}'")}))
        .await;
    fs::create_dir(fx.workdir.join("src")).unwrap();
    let write_in = fx
        .call(
            "run_command",
            json!({"command": "echo hi > src/made-here && echo more >> notes.txt && cat src/made-here"}),
        )
        .await;
    let new_top_level = fx
        .call("run_command", json!({"command": "echo hi > made-at-top"}))
        .await;
    let write_out = fx
        .call(
            "run_command",
            json!({"command": format!("echo hi > '{}'", outside_file.display())}),
        )
        .await;
    let list_state = fx.call("run_command", json!({"command": "ls .r1"})).await;
    assert_eq!(ok(&write_in).lines().last(), Some("hi"));
    if status.active() {
        assert!(cat.is_error, "cat of the token worked: {}", cat.content);
        assert!(cat.content.contains("Permission denied"), "{}", cat.content);
        assert!(list_state.is_error, "{}", list_state.content);
        assert!(write_out.is_error, "{}", write_out.content);
        assert!(!outside_file.exists());
        assert!(status.abi.is_some(), "{status:?}");
        // The price of an allowlist when the workdir contains the state directory: a
        // grant on the workdir itself would cover the state directory, so only its
        // entries are granted and a new entry at its top cannot be created.
        assert!(new_top_level.is_error, "{}", new_top_level.content);
    } else {
        // Unconfined: the command can read the token (only the approval gate stands in
        // its way), and the probe says so plainly.
        assert!(!cat.is_error || !status.verified, "{status:?}");
        assert!(!new_top_level.is_error, "{}", new_top_level.content);
        assert!(
            status.detail.contains("inactive") || status.detail.contains("off"),
            "{status:?}"
        );
    }
    let _ = fs::remove_dir_all(&outside);
}

#[tokio::test]
async fn a_second_name_for_the_token_stops_commands() {
    let fx = StateFixture::new();
    fs::hard_link(&fx.token, fx.workdir.join("hard-token")).unwrap();
    let result = fx.call("run_command", json!({"command": "echo hi"})).await;
    assert!(result.is_error, "{}", result.content);
    assert!(result.content.contains("hard links"), "{}", result.content);
    fs::remove_file(fx.workdir.join("hard-token")).unwrap();
    let result = fx.call("run_command", json!({"command": "echo hi"})).await;
    assert_eq!(ok(&result).trim(), "exit code: 0\nhi");
}

/// A directory outside every place the sandbox lets commands write (the workdir and the
/// temp directories): under `$HOME`, else `/var/lib` (as root). The build may live under
/// `/tmp` (CI clones into `mktemp -d`), so the target dir cannot serve.
fn outside_the_sandbox(tag: &str) -> PathBuf {
    let granted = |p: &std::path::Path| {
        let mut roots = vec![
            PathBuf::from("/tmp"),
            PathBuf::from("/var/tmp"),
            PathBuf::from("/dev/shm"),
        ];
        if let Some(t) = std::env::var_os("TMPDIR") {
            roots.push(PathBuf::from(t));
        }
        roots.iter().any(|r| p.starts_with(r))
    };
    let candidates = std::env::var_os("HOME")
        .map(PathBuf::from)
        .into_iter()
        .chain(std::iter::once(PathBuf::from("/var/lib")));
    for base in candidates {
        let Ok(base) = base.canonicalize() else {
            continue;
        };
        if granted(&base) {
            continue;
        }
        let dir = base.join(format!(".r1-test-outside-{tag}-{}", std::process::id()));
        if std::fs::create_dir_all(&dir).is_ok() {
            return dir;
        }
    }
    panic!("no writable directory outside /tmp for the sandbox test: set HOME to one");
}
