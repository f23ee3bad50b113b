//! Worktrees: a git worktree per session on real repositories made by the test,
//! their diff, merge and clean, the errors that leave nothing behind, and the
//! registry across a restart.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use crate::confinement::tool;
use crate::support::*;

/// Runs git in `dir` and returns its stdout; the test fails if git does.
pub(crate) fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A repository with one commit on `main` (README.md), its own identity.
pub(crate) fn repo() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().canonicalize().unwrap().join("repo");
    std::fs::create_dir(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["config", "user.name", "Test"]);
    git(&repo, &["config", "user.email", "test@example.com"]);
    std::fs::write(repo.join("README.md"), "one\ntwo\nthree\n").unwrap();
    git(&repo, &["add", "README.md"]);
    git(&repo, &["commit", "-q", "-m", "first"]);
    (dir, repo)
}

/// Starts a session with a worktree over HTTP; returns (session id, its view).
fn start_wt(d: &Daemon, repo: &Path, worktree: Value) -> (String, Value) {
    let r = d.post(
        "/v1/sessions",
        &json!({"workdir": repo, "worktree": worktree, "title": "add a greeting"}).to_string(),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let v = r.json();
    (v["id"].as_str().unwrap().to_string(), v)
}

/// The one worktree of `session`.
fn worktree_of(d: &Daemon, session: &str) -> Value {
    let r = d.get(&format!("/v1/worktrees?session_id={session}"));
    assert_eq!(r.status, 200, "{}", r.body);
    let l = r.json()["worktrees"].as_array().unwrap().clone();
    assert_eq!(l.len(), 1, "{l:?}");
    l[0].clone()
}

fn error_code(r: &Resp) -> String {
    r.json()["error_code"].as_str().unwrap_or("").to_string()
}

#[test]
fn two_sessions_work_in_separate_worktrees_then_diff_merge_and_clean() {
    let (_t, repo) = repo();
    let home = Home::new();
    let d = home.serve(&[]);
    let main_head = git(&repo, &["rev-parse", "HEAD"]);

    let (s1, v1) = start_wt(&d, &repo, json!(true));
    // The second through the CLI, with a branch of its own choosing.
    let v2 = home.run_json(&[
        "ctl",
        "sessions",
        "start",
        "--workdir",
        repo.to_str().unwrap(),
        "--worktree",
        "--branch",
        "feature/two",
    ]);
    let s2 = v2["id"].as_str().unwrap().to_string();
    let w1 = worktree_of(&d, &s1);
    let w2 = worktree_of(&d, &s2);
    let p1 = PathBuf::from(w1["path"].as_str().unwrap());
    let p2 = PathBuf::from(w2["path"].as_str().unwrap());
    // The session works in its worktree, under the state directory, not in the repo,
    // and names it.
    assert_eq!(v1["worktree_id"], w1["id"]);
    assert_eq!(v2["worktree_id"], w2["id"]);
    assert_eq!(v1["workdir"], w1["path"]);
    assert_eq!(v2["workdir"], w2["path"]);
    let worktrees_dir = home.path.canonicalize().unwrap().join("worktrees");
    for (w, p) in [(&w1, &p1), (&w2, &p2)] {
        assert!(w["id"].as_str().unwrap().starts_with("wt_"), "{w}");
        assert!(p.starts_with(&worktrees_dir), "{}", p.display());
        assert!(!p.starts_with(&repo));
        assert_eq!(w["state"], "active");
        assert_eq!(w["base_commit"], main_head.as_str());
        assert_eq!(w["base_branch"], "main");
        assert_eq!(w["repo"], repo.to_str().unwrap());
        assert_eq!(w["dirty"], false);
        assert!(p.join("README.md").is_file());
    }
    assert_eq!(w1["branch"], format!("r1/{}", &s1[4..12]));
    assert_eq!(w2["branch"], "feature/two");
    let records = std::fs::read_dir(&worktrees_dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".json")
        })
        .count();
    assert_eq!(records, 2);

    // Each sees only its own files; the repo sees neither.
    std::fs::write(p1.join("README.md"), "one\ntwo\nthree\nfour\n").unwrap();
    std::fs::write(p1.join("new.txt"), "hello\n").unwrap();
    std::fs::write(p2.join("other.txt"), "second\n").unwrap();
    assert!(!p2.join("new.txt").exists());
    assert!(!p1.join("other.txt").exists());
    assert!(!repo.join("new.txt").exists() && !repo.join("other.txt").exists());
    assert_eq!(
        std::fs::read_to_string(p2.join("README.md")).unwrap(),
        "one\ntwo\nthree\n"
    );
    assert_eq!(worktree_of(&d, &s1)["dirty"], true);

    // The diff has the edit and the untracked file, and the user's index is untouched.
    let r = d.get(&format!(
        "/v1/worktrees/{}/diff",
        w1["id"].as_str().unwrap()
    ));
    assert_eq!(r.status, 200, "{}", r.body);
    let diff = r.json();
    let text = diff["diff"].as_str().unwrap();
    assert!(text.contains("+four"), "{text}");
    assert!(
        text.contains("new file mode") && text.contains("+hello"),
        "{text}"
    );
    assert_eq!(diff["truncated"], false);
    let files: Vec<&str> = diff["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(files, ["README.md", "new.txt"]);
    assert_eq!(diff["files"][0]["added"], 1);
    assert_eq!(
        git(&p1, &["status", "--porcelain"]),
        "M README.md\n?? new.txt".trim()
    );

    // ff-only merge through the CLI: pending work committed, main advanced, the main
    // checkout (clean, on main) updated.
    let id1 = w1["id"].as_str().unwrap();
    let m = home.run_json(&["ctl", "worktrees", "merge", id1, "--strategy", "ff-only"]);
    assert_eq!(m["worktree"]["state"], "merged", "{m}");
    assert!(m["pending_commit"].is_string(), "{m}");
    let new_main = git(&repo, &["rev-parse", "main"]);
    assert_eq!(m["commit"], new_main.as_str());
    assert_ne!(new_main, main_head);
    assert_eq!(
        git(&repo, &["log", "-1", "--format=%s", "main"]),
        "add a greeting"
    );
    assert_eq!(
        std::fs::read_to_string(repo.join("new.txt")).unwrap(),
        "hello\n"
    );
    assert_eq!(git(&repo, &["status", "--porcelain"]), "");

    // Clean: worktree and branch gone, state cleaned; again is ok.
    let branch1 = w1["branch"].as_str().unwrap();
    let c = home.run_json(&["ctl", "worktrees", "clean", id1]);
    assert_eq!(c["state"], "cleaned", "{c}");
    assert_eq!(c["branch_exists"], false, "{c}");
    assert!(!p1.exists());
    assert!(git(&repo, &["branch", "--list", branch1]).is_empty());
    assert!(!git(&repo, &["worktree", "list"]).contains(p1.to_str().unwrap()));
    let again = d.post(&format!("/v1/worktrees/{id1}/clean"), "{}");
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.json()["state"], "cleaned");

    // The other worktree is still there, behind main now, with its untracked file;
    // cleaning it without force is refused and keeps everything.
    let w2 = worktree_of(&d, &s2);
    assert_eq!(w2["behind"], 1, "{w2}");
    assert_eq!(w2["ahead"], 0, "{w2}");
    let id2 = w2["id"].as_str().unwrap();
    let r = d.post(&format!("/v1/worktrees/{id2}/clean"), "{}");
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(p2.join("other.txt").exists());

    // Ending a session leaves its worktree alone.
    let r = raw_tcp_patient(
        d.port(),
        &format!(
            "DELETE /v1/sessions/{s2} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
            d.port(),
            d.token()
        ),
        Duration::from_secs(20),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(p2.join("other.txt").exists());
    assert_eq!(worktree_of(&d, &s2)["state"], "active");

    let listed = home.run_json(&["ctl", "worktrees", "list"]);
    assert_eq!(listed["worktrees"].as_array().unwrap().len(), 2);
}

#[test]
fn a_conflicting_merge_changes_nothing() {
    let (_t, repo) = repo();
    let home = Home::new();
    let d = home.serve(&[]);
    let (s, _) = start_wt(&d, &repo, json!({"branch": "agent/edit"}));
    let w = worktree_of(&d, &s);
    let id = w["id"].as_str().unwrap().to_string();
    let p = PathBuf::from(w["path"].as_str().unwrap());
    std::fs::write(p.join("README.md"), "one\nTWO from the agent\nthree\n").unwrap();
    // Meanwhile main changes the same line.
    std::fs::write(repo.join("README.md"), "one\ntwo from main\nthree\n").unwrap();
    git(&repo, &["commit", "-q", "-am", "main edit"]);
    let head = git(&repo, &["rev-parse", "HEAD"]);
    let readme = std::fs::read_to_string(repo.join("README.md")).unwrap();

    for strategy in ["ff-only", "squash"] {
        let r = d.post(
            &format!("/v1/worktrees/{id}/merge"),
            &json!({"strategy": strategy}).to_string(),
        );
        assert_eq!(r.status, 409, "{strategy}: {}", r.body);
        assert_eq!(error_code(&r), "conflict");
        let msg = r.json()["error_message"].as_str().unwrap().to_string();
        assert!(msg.contains("README.md"), "{strategy}: {msg}");
        assert_eq!(git(&repo, &["rev-parse", "HEAD"]), head);
        assert_eq!(git(&repo, &["rev-parse", "main"]), head);
        assert_eq!(
            std::fs::read_to_string(repo.join("README.md")).unwrap(),
            readme
        );
        assert_eq!(git(&repo, &["status", "--porcelain"]), "");
    }
    assert_eq!(worktree_of(&d, &s)["state"], "active");

    // `ours` resolves the conflicting hunk to main's side in a merge commit.
    let r = d.post(
        &format!("/v1/worktrees/{id}/merge"),
        &json!({"strategy": "ours"}).to_string(),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let merged = git(&repo, &["rev-parse", "HEAD"]);
    assert_eq!(r.json()["commit"], merged.as_str());
    assert_eq!(git(&repo, &["rev-parse", "HEAD^1"]), head);
    assert_eq!(
        std::fs::read_to_string(repo.join("README.md")).unwrap(),
        readme
    );
    assert_eq!(worktree_of(&d, &s)["state"], "merged");
}

#[test]
fn a_dirty_main_checkout_refuses_a_merge_touching_the_same_files() {
    let (_t, repo) = repo();
    let home = Home::new();
    let d = home.serve(&[]);
    let (s, _) = start_wt(&d, &repo, json!(true));
    let w = worktree_of(&d, &s);
    let p = PathBuf::from(w["path"].as_str().unwrap());
    std::fs::write(p.join("README.md"), "changed by the agent\n").unwrap();
    std::fs::write(repo.join("README.md"), "uncommitted user edit\n").unwrap();
    let head = git(&repo, &["rev-parse", "HEAD"]);
    let r = d.post(
        &format!("/v1/worktrees/{}/merge", w["id"].as_str().unwrap()),
        &json!({"strategy": "squash"}).to_string(),
    );
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(r.json()["error_message"]
        .as_str()
        .unwrap()
        .contains("README.md"));
    assert_eq!(git(&repo, &["rev-parse", "HEAD"]), head);
    assert_eq!(
        std::fs::read_to_string(repo.join("README.md")).unwrap(),
        "uncommitted user edit\n"
    );
}

#[test]
fn worktree_errors_are_clear_and_leave_nothing_behind() {
    let (_t, repo) = repo();
    let home = Home::new();
    let d = home.serve(&[]);
    let sessions_before = d.get("/v1/sessions").json()["sessions"]
        .as_array()
        .unwrap()
        .len();

    // Not a git repository.
    let plain = tempfile::tempdir().unwrap();
    let r = d.post(
        "/v1/sessions",
        &json!({"workdir": plain.path(), "worktree": true}).to_string(),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(error_code(&r), "validation");
    assert!(r.body.contains("not in a git repository"), "{}", r.body);

    // An unborn HEAD.
    let empty = plain.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    git(&empty, &["init", "-q"]);
    let r = d.post(
        "/v1/sessions",
        &json!({"workdir": empty, "worktree": true}).to_string(),
    );
    assert_eq!(error_code(&r), "validation", "{}", r.body);
    assert!(r.body.contains("unborn"), "{}", r.body);

    // An existing branch.
    git(&repo, &["branch", "taken"]);
    let r = d.post(
        "/v1/sessions",
        &json!({"workdir": repo, "worktree": {"branch": "taken"}}).to_string(),
    );
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(error_code(&r), "conflict");
    assert!(r.body.contains("taken"), "{}", r.body);

    // A base that is not a commit, and a branch that is not a name.
    for wt in [
        json!({"base": "no-such-ref"}),
        json!({"branch": "bad..name"}),
        json!({"branch": "-x"}),
    ] {
        let r = d.post(
            "/v1/sessions",
            &json!({"workdir": repo, "worktree": wt}).to_string(),
        );
        assert_eq!(error_code(&r), "validation", "{wt}: {}", r.body);
    }

    // A session that fails after its worktree was made takes the worktree with it.
    let r = d.post(
        "/v1/sessions",
        &json!({"workdir": repo, "worktree": true, "engine": "no-such-engine"}).to_string(),
    );
    assert_ne!(r.status, 201, "{}", r.body);

    // Nothing was left: no session, no checkout, no record, no branch, no worktree.
    let sessions_after = d.get("/v1/sessions").json()["sessions"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(sessions_after, sessions_before);
    let left: Vec<_> = std::fs::read_dir(home.path.join("worktrees"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(
        git(&repo, &["branch", "--format=%(refname:short)"]),
        "main\ntaken"
    );
    assert_eq!(
        git(&repo, &["worktree", "list", "--porcelain"])
            .matches("worktree ")
            .count(),
        1
    );
    assert_eq!(d.get("/v1/worktrees").json()["worktrees"], json!([]));
    let r = d.get("/v1/worktrees/wt_nope/diff");
    assert_eq!(r.status, 404, "{}", r.body);
}

#[test]
fn the_registry_survives_a_restart() {
    let (_t, repo) = repo();
    let home = Home::new();
    let mut d = home.serve(&[]);
    let (s, _) = start_wt(&d, &repo, json!({"branch": "keep/me", "base": "main"}));
    let before = worktree_of(&d, &s);
    let p = PathBuf::from(before["path"].as_str().unwrap());
    std::fs::write(p.join("later.txt"), "still here\n").unwrap();
    let out = home.run_json(&["ctl", "shutdown"]);
    assert_eq!(out["ok"], true, "{out}");
    d.wait_exit(Duration::from_secs(20))
        .expect("the daemon did not exit");

    let d = home.serve(&[]);
    let after = worktree_of(&d, &s);
    for k in [
        "id",
        "path",
        "branch",
        "base_commit",
        "base_branch",
        "repo",
        "created_at",
    ] {
        assert_eq!(after[k], before[k], "{k}");
    }
    assert_eq!(after["state"], "active");
    assert_eq!(after["dirty"], true);
    let diff = d.get(&format!(
        "/v1/worktrees/{}/diff",
        after["id"].as_str().unwrap()
    ));
    assert!(diff.json()["diff"]
        .as_str()
        .unwrap()
        .contains("+still here"));
    assert_eq!(
        d.get(&format!("/v1/sessions/{s}")).json()["workdir"],
        before["path"]
    );

    // A long diff is cut at 200 KiB unless `full`, on every surface.
    let big: String = (0..30_000).map(|i| format!("line {i}\n")).collect();
    std::fs::write(p.join("big.txt"), &big).unwrap();
    let id = after["id"].as_str().unwrap();
    let cut = d.get(&format!("/v1/worktrees/{id}/diff")).json();
    assert_eq!(cut["truncated"], true);
    assert_eq!(cut["diff"].as_str().unwrap().len(), 200 * 1024);
    let total = cut["total_bytes"].as_u64().unwrap();
    assert!(total > 200 * 1024);
    let full = home.run_json(&["ctl", "worktrees", "diff", id, "--full"]);
    assert_eq!(full["truncated"], false);
    assert_eq!(full["diff"].as_str().unwrap().len() as u64, total);
}

#[test]
fn the_agent_s_tools_work_in_its_worktree() {
    let (_t, repo) = repo();
    let home = Home::new();
    let d = home.serve(&[]);
    let r = d.post(
        "/v1/sessions",
        &json!({"workdir": repo, "worktree": true,
                "policy": {"write_file": "allow", "run_command": "allow", "read_file": "allow"}})
        .to_string(),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let s = r.json()["id"].as_str().unwrap().to_string();
    let p = PathBuf::from(worktree_of(&d, &s)["path"].as_str().unwrap());
    let w = tool(
        &d,
        &s,
        r#"/tool write_file {"path": "agent.txt", "content": "written by the agent\n"}"#,
    );
    assert_eq!(w["is_error"], false, "{w}");
    assert_eq!(
        std::fs::read_to_string(p.join("agent.txt")).unwrap(),
        "written by the agent\n"
    );
    let c = tool(
        &d,
        &s,
        "/run echo from-a-command > cmd.txt && cat README.md",
    );
    assert_eq!(c["is_error"], false, "{c}");
    assert!(p.join("cmd.txt").is_file());
    // The rest of the state directory stays out of reach.
    let t = tool(&d, &s, r#"/tool read_file {"path": "../../token"}"#);
    assert_eq!(t["is_error"], true, "{t}");
    assert!(!repo.join("agent.txt").exists());
}
