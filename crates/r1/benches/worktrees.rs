//! Worktree and mission benchmarks against the real daemon: the time to start a session
//! with a worktree of a 10,000-file repository and to clean it, next to plain
//! `git worktree add`/`remove` of the same repository (the floor); and missions
//! throughput with the echo engine on 2 and 4 workers. Run with
//! `cargo bench -p r1 --bench worktrees`; figures go to docs/BENCHMARKS.md.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::zombie_processes
)]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Worktrees made and cleaned per row.
const ROUNDS: usize = 7;
/// Files in the large repository.
const FILES: usize = 10_000;
/// Missions per throughput row.
const MISSIONS: usize = 40;

fn serve(home: &Path, config: &str) -> (Child, String, String) {
    let _ = std::fs::remove_file(home.join("daemon.json"));
    std::fs::create_dir_all(home).unwrap();
    std::fs::set_permissions(home, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    std::fs::write(home.join("daemon.toml"), config).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_r1"))
        .args(["serve", "--log-level", "warn"])
        .env("R1_HOME", home)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    loop {
        if let Ok(b) = std::fs::read(home.join("daemon.json")) {
            if let Ok(v) = serde_json::from_slice::<Value>(&b) {
                if v["pid"].as_u64() == Some(u64::from(child.id())) {
                    let tok = std::fs::read_to_string(home.join("token")).unwrap();
                    return (
                        child,
                        v["sock"].as_str().unwrap().to_string(),
                        tok.trim().to_string(),
                    );
                }
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// One request over the unix socket; the answer body as JSON.
fn request(sock: &str, tok: &str, method: &str, path: &str, body: &Value) -> Value {
    let b = if method == "GET" {
        String::new()
    } else {
        body.to_string()
    };
    let mut s = UnixStream::connect(sock).unwrap();
    let req = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {tok}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{b}", b.len());
    let sent = s.write_all(req.as_bytes());
    let mut out = Vec::new();
    let read = s.read_to_end(&mut out);
    if let (Err(e), _) | (_, Err(e)) = (sent, read) {
        panic!(
            "{method} {path}: {e}; the daemon answered {:?}",
            String::from_utf8_lossy(&out)
        );
    }
    let text = String::from_utf8_lossy(&out);
    let body = text.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("");
    serde_json::from_str(body).unwrap_or(Value::Null)
}

fn stop(mut child: Child, sock: &str, tok: &str) {
    request(sock, tok, "POST", "/v1/shutdown", &json!({}));
    child.wait().unwrap();
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A repository with `files` small files in directories of 100, one commit.
fn make_repo(dir: &Path, files: usize) {
    std::fs::create_dir_all(dir).unwrap();
    git(dir, &["init", "-q", "-b", "main"]);
    git(dir, &["config", "user.name", "Bench"]);
    git(dir, &["config", "user.email", "bench@example.com"]);
    for i in 0..files {
        let sub = dir.join(format!("d{:03}", i / 100));
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(
            sub.join(format!("f{i:05}.txt")),
            format!("file {i}\n{}\n", "x".repeat(64)),
        )
        .unwrap();
    }
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", "files"]);
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    let repo = root.join("big");
    let t = Instant::now();
    make_repo(&repo, FILES);
    println!(
        "repository: {FILES} files, made in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    // The floor: git itself, the same repository, the same kind of path.
    let (mut add, mut remove) = (Vec::new(), Vec::new());
    for i in 0..ROUNDS {
        let path = root.join(format!("plain{i}"));
        let branch = format!("plain/{i}");
        let t = Instant::now();
        git(
            &repo,
            &[
                "worktree",
                "add",
                "-q",
                "-b",
                &branch,
                path.to_str().unwrap(),
                "HEAD",
            ],
        );
        add.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        git(&repo, &["worktree", "remove", path.to_str().unwrap()]);
        git(&repo, &["branch", "-q", "-D", &branch]);
        remove.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let (git_add, git_remove) = (median(add), median(remove));

    let home = root.join("home");
    let (child, sock, tok) = serve(&home, "");
    let (mut create, mut clean) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let t = Instant::now();
        let s = request(
            &sock,
            &tok,
            "POST",
            "/v1/sessions",
            &json!({"workdir": repo, "worktree": true}),
        );
        create.push(t.elapsed().as_secs_f64() * 1e3);
        let id = s["id"].as_str().unwrap_or_else(|| panic!("{s}"));
        let l = request(
            &sock,
            &tok,
            "GET",
            &format!("/v1/worktrees?session_id={id}"),
            &json!({}),
        );
        let wt = l["worktrees"][0]["id"].as_str().unwrap().to_string();
        let t = Instant::now();
        let c = request(
            &sock,
            &tok,
            "POST",
            &format!("/v1/worktrees/{wt}/clean"),
            &json!({}),
        );
        clean.push(t.elapsed().as_secs_f64() * 1e3);
        assert_eq!(c["state"], "cleaned", "{c}");
    }
    stop(child, &sock, &tok);
    let (r1_create, r1_clean) = (median(create), median(clean));
    println!("| step ({FILES} files, median of {ROUNDS}) | git alone | r1 | r1 / git |");
    println!("| --- | --- | --- | --- |");
    println!(
        "| create: `git worktree add` vs `session.start {{worktree: true}}` | {git_add:.0} ms | {r1_create:.0} ms | {:.2} |",
        r1_create / git_add
    );
    println!(
        "| clean: `git worktree remove` + `branch -D` vs `worktree.clean` | {git_remove:.0} ms | {r1_clean:.0} ms | {:.2} |",
        r1_clean / git_remove
    );

    // Missions throughput: MISSIONS echo missions on a small repository, each in its
    // own worktree (and, for the scheduler alone, without one).
    let small = root.join("small");
    make_repo(&small, 10);
    println!();
    println!("| missions ({MISSIONS}, echo engine) | workers | wall time | missions/s |");
    println!("| --- | --- | --- | --- |");
    for (workers, worktree) in [(2, true), (4, true), (2, false)] {
        let home = root.join(format!("m{workers}{worktree}"));
        let (child, sock, tok) = serve(&home, &format!("[missions]\nworkers = {workers}\n"));
        let t = Instant::now();
        for i in 0..MISSIONS {
            let m = request(
                &sock,
                &tok,
                "POST",
                "/v1/missions",
                &json!({"spec": {"prompt": format!("mission {i}"), "workdir": small, "worktree": worktree}}),
            );
            assert_eq!(m["state"], "queued", "{m}");
        }
        loop {
            let l = request(&sock, &tok, "GET", "/v1/missions", &json!({}));
            let missions = l["missions"].as_array().unwrap();
            if missions.iter().all(|m| m["state"] == "succeeded") {
                break;
            }
            assert!(
                !missions
                    .iter()
                    .any(|m| m["state"] == "failed" || m["state"] == "cancelled"),
                "{l}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let wall = t.elapsed().as_secs_f64();
        stop(child, &sock, &tok);
        println!(
            "| {} | {workers} | {wall:.2} s | {:.1} |",
            if worktree {
                "each in a new worktree"
            } else {
                "in the repository itself"
            },
            MISSIONS as f64 / wall
        );
    }
}
