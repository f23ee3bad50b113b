//! `workdir.read`: a file of a session's workdir, read-only, over HTTP, the CLI and
//! MCP; its cut on a character boundary, binary files, and every way out of the
//! workdir refused (symlinks, a symlinked directory, `..`, absolute paths, r1's own
//! state directory), with fifos, directories and missing files answered at once.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use r1_proto::catalog::percent_encode;
use serde_json::{json, Value};

use crate::confinement::tool;
use crate::restart::mcp_call;
use crate::support::*;
use crate::worktrees::{git, repo};

fn start(d: &Daemon, body: Value) -> String {
    let r = d.post("/v1/sessions", &body.to_string());
    assert_eq!(r.status, 201, "{}", r.body);
    r.json()["id"].as_str().unwrap().to_string()
}

/// `GET /v1/sessions/{id}/files?path=…` with `extra` query params.
fn read(d: &Daemon, id: &str, path: &str, extra: &str) -> Resp {
    d.get(&format!(
        "/v1/sessions/{id}/files?path={}{extra}",
        percent_encode(path)
    ))
}

/// Reads `path` and expects HTTP `status` with `code`, whose message contains `why`.
fn refused(d: &Daemon, id: &str, path: &str, status: u16, code: &str, why: &str) {
    let r = read(d, id, path, "");
    assert_eq!(r.status, status, "{path}: {}", r.body);
    let v = r.json();
    assert_eq!(v["error_code"], code, "{path}: {v}");
    let msg = v["error_message"].as_str().unwrap();
    assert!(msg.contains(why), "{path}: {msg}");
}

fn symlink(target: &Path, link: &Path) {
    std::os::unix::fs::symlink(target, link).unwrap();
}

#[test]
fn workdir_read_shows_text_cut_on_a_character_and_spots_binary_files() {
    let home = Home::new();
    let d = home.serve(&[]);
    let work = tempfile::tempdir().unwrap();
    let root = work.path().canonicalize().unwrap();
    let id = start(
        &d,
        json!({"workdir": root, "policy": {"write_file": "allow"}}),
    );

    // A file the agent wrote, read back over HTTP.
    let w = tool(
        &d,
        &id,
        r#"/tool write_file {"path": "src/main.rs", "content": "fn main() {\n    println!(\"hi\");\n}\n"}"#,
    );
    assert_eq!(w["is_error"], false, "{w}");
    let r = read(&d, &id, "./src/main.rs", "");
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["path"], "src/main.rs", "{v}");
    assert_eq!(v["text"], "fn main() {\n    println!(\"hi\");\n}\n");
    assert_eq!(v["size"], 34);
    assert_eq!(
        (v["truncated"].clone(), v["binary"].clone()),
        (json!(false), json!(false))
    );
    let modified = v["modified_at"].as_str().unwrap();
    assert!(
        modified.len() >= 20 && modified.as_bytes()[10] == b'T' && modified.ends_with('Z'),
        "not RFC 3339: {modified}"
    );

    // Cut at 5 bytes, inside the two-byte `é`: the text stops before it.
    std::fs::write(root.join("accents.txt"), "abcdé and more").unwrap();
    let v = read(&d, &id, "accents.txt", "&max_bytes=5").json();
    assert_eq!(v["text"], "abcd", "{v}");
    assert_eq!(v["truncated"], true, "{v}");
    assert_eq!(v["binary"], false, "{v}");
    assert_eq!(v["size"], 15, "{v}");
    // A 3-byte character cut after its first byte, then whole.
    std::fs::write(root.join("euro.txt"), "x€").unwrap();
    assert_eq!(
        read(&d, &id, "euro.txt", "&max_bytes=2").json()["text"],
        "x"
    );
    let v = read(&d, &id, "euro.txt", "&max_bytes=4").json();
    assert_eq!(
        (v["text"].clone(), v["truncated"].clone()),
        (json!("x€"), json!(false))
    );

    // The default cut is 256 KiB, and no more than 1 MiB is ever returned.
    std::fs::write(root.join("big.txt"), "x".repeat(2 * 1024 * 1024)).unwrap();
    let v = read(&d, &id, "big.txt", "").json();
    assert_eq!(v["text"].as_str().unwrap().len(), 256 * 1024);
    assert_eq!(v["truncated"], true);
    let v = read(&d, &id, "big.txt", "&max_bytes=5000000").json();
    assert_eq!(v["text"].as_str().unwrap().len(), 1024 * 1024);
    assert_eq!(v["size"], 2 * 1024 * 1024);

    // Binary: a NUL byte, or bytes that are not UTF-8; no text either way.
    std::fs::write(root.join("logo.png"), b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR").unwrap();
    std::fs::write(root.join("latin1.txt"), b"caf\xe9\n").unwrap();
    for name in ["logo.png", "latin1.txt"] {
        let v = read(&d, &id, name, "").json();
        assert_eq!(v["binary"], true, "{name}: {v}");
        assert_eq!(v["text"], "", "{name}: {v}");
    }
    // A symlink that stays inside the workdir is read like its target.
    symlink(Path::new("src/main.rs"), &root.join("main-link.rs"));
    let v = read(&d, &id, "main-link.rs", "").json();
    assert_eq!(v["size"], 34, "{v}");

    // The CLI prints the text; with --json the whole answer.
    let out = home.run(&["ctl", "sessions", "read", &id, "src/main.rs"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "fn main() {\n    println!(\"hi\");\n}\n"
    );
    let v = home.run_json(&[
        "ctl",
        "sessions",
        "read",
        &id,
        "accents.txt",
        "--max-bytes",
        "5",
    ]);
    assert_eq!(
        (v["text"].clone(), v["truncated"].clone()),
        (json!("abcd"), json!(true))
    );
    let out = home.run(&["ctl", "sessions", "read", &id, "logo.png"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("binary file (16 bytes), not shown"),
        "{out:?}"
    );

    // MCP, read capability.
    let v = mcp_call(
        &d,
        "r1_workdir_read",
        json!({"session_id": id, "path": "accents.txt", "max_bytes": 5}),
    );
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["data"]["text"], "abcd", "{v}");
}

#[test]
fn workdir_read_refuses_every_way_out_and_answers_fifos_at_once() {
    let home = Home::new();
    let d = home.serve(&[]);
    let work = tempfile::tempdir().unwrap();
    let root = work.path().canonicalize().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let out = outside.path().canonicalize().unwrap();
    std::fs::write(out.join("secret.txt"), "the secret").unwrap();
    std::fs::write(root.join("ok.txt"), "fine").unwrap();
    std::fs::create_dir(root.join("sub")).unwrap();
    let id = start(&d, json!({"workdir": root}));

    // Symlinks out: to a file, relative through `..`, through a symlinked directory.
    symlink(&out.join("secret.txt"), &root.join("leak.txt"));
    let out_name = out.file_name().unwrap().to_str().unwrap();
    symlink(
        Path::new(&format!("../../{out_name}/secret.txt")),
        &root.join("sub/rel-leak.txt"),
    );
    symlink(&out, &root.join("elsewhere"));
    for path in ["leak.txt", "sub/rel-leak.txt", "elsewhere/secret.txt"] {
        let r = read(&d, &id, path, "");
        assert_eq!(r.status, 403, "{path}: {}", r.body);
        let v = r.json();
        assert_eq!(v["error_code"], "permission_denied", "{path}: {v}");
        assert!(
            v["error_message"].as_str().unwrap().contains("outside"),
            "{path}: {v}"
        );
        assert!(!r.body.contains("the secret"), "{path}: {}", r.body);
    }
    std::fs::write(out.join("ok.txt"), "outside ok").unwrap();
    symlink(&out, &root.join("sub/out"));
    refused(
        &d,
        &id,
        "sub/out/ok.txt",
        403,
        "permission_denied",
        "outside",
    );

    // `..` and absolute paths never reach the file system.
    for path in ["../secret.txt", "sub/../ok.txt", ".."] {
        refused(&d, &id, path, 400, "validation", "`..` is refused");
    }
    let abs = root.join("ok.txt");
    refused(
        &d,
        &id,
        abs.to_str().unwrap(),
        400,
        "validation",
        "absolute",
    );
    refused(&d, &id, "", 400, "validation", "empty");

    // Not regular files: a directory and a fifo nobody writes to, answered at once.
    refused(&d, &id, "sub", 400, "validation", "is a directory");
    refused(&d, &id, ".", 400, "validation", "is a directory");
    let st = Command::new("mkfifo")
        .arg(root.join("pipe"))
        .status()
        .unwrap();
    assert!(st.success());
    let t = Instant::now();
    refused(&d, &id, "pipe", 400, "validation", "fifo");
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "the fifo read took {:?}",
        t.elapsed()
    );
    // The daemon still answers after it.
    assert_eq!(read(&d, &id, "ok.txt", "").json()["text"], "fine");

    // Missing files, unknown and deleted sessions.
    refused(&d, &id, "missing.txt", 404, "not_found", "missing.txt");
    refused(&d, &id, "ok.txt/inner", 404, "not_found", "ok.txt/inner");
    refused(
        &d,
        "ses_0000000000000000",
        "ok.txt",
        404,
        "not_found",
        "session",
    );
    let gone = start(&d, json!({"workdir": root}));
    let r = d.post(&format!("/v1/sessions/{gone}/delete"), "{}");
    assert_eq!(r.status, 200, "{}", r.body);
    refused(&d, &gone, "ok.txt", 404, "not_found", "session");

    // The CLI says the same, with a failing exit code.
    let o = home.run(&["ctl", "sessions", "read", &id, "leak.txt"]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("outside"),
        "{o:?}"
    );
    assert!(!String::from_utf8_lossy(&o.stdout).contains("the secret"));
    let o = home.run(&["ctl", "sessions", "read", &id, "../x", "--json"]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["error_code"], "validation", "{v}");
}

#[test]
fn workdir_read_reads_the_worktree_and_never_the_state_directory() {
    // A session with a worktree reads its worktree, not the repository's checkout.
    let (_t, repo) = repo();
    let home = Home::new();
    let d = home.serve(&[]);
    std::fs::write(repo.join("only-in-checkout.txt"), "checkout").unwrap();
    let id = start(
        &d,
        json!({"workdir": repo, "worktree": true, "policy": {"write_file": "allow"}}),
    );
    let w = tool(
        &d,
        &id,
        r#"/tool write_file {"path": "greeting.txt", "content": "hello from the worktree\n"}"#,
    );
    assert_eq!(w["is_error"], false, "{w}");
    assert_eq!(
        read(&d, &id, "greeting.txt", "").json()["text"],
        "hello from the worktree\n"
    );
    assert_eq!(
        read(&d, &id, "README.md", "").json()["text"],
        "one\ntwo\nthree\n"
    );
    refused(&d, &id, "only-in-checkout.txt", 404, "not_found", "only-in");
    assert!(!repo.join("greeting.txt").exists());
    git(&repo, &["status", "--short"]);

    // A workdir that holds r1's state directory (workdir `~`, state `~/.r1`): the
    // token and the rest of the state directory stay out of reach.
    let parent = home.path.parent().unwrap().canonicalize().unwrap();
    let state = home.path.file_name().unwrap().to_str().unwrap().to_string();
    let id = start(&d, json!({"workdir": parent}));
    refused(
        &d,
        &id,
        &format!("{state}/token"),
        403,
        "permission_denied",
        "token",
    );
    refused(
        &d,
        &id,
        &format!("{state}/daemon.json"),
        403,
        "permission_denied",
        "state directory",
    );
    // Nor through a symlink to it.
    symlink(&home.path.join("token"), &parent.join("tok"));
    let r = read(&d, &id, "tok", "");
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(!r.body.contains(&home.token()), "{}", r.body);
}
