//! Hardening, finding 1: an agent cannot reach the daemon's secrets, even when its
//! workdir contains the state directory (workdir `~`, `R1_HOME=~/.r1`, the default
//! layout). The file tools refuse the state directory and the token by path, through
//! symlinks and through hard links; commands see no `R1_*` variable; and where the
//! kernel has Landlock, a command cannot read the token at all.

use std::time::Duration;

use serde_json::{json, Value};

use crate::sessions::records;
use crate::support::*;

/// Runs one built-in tool through the echo engine (`/tool <name> <json>`, or `/run` for
/// commands) and returns its `tool.completed` record's data.
pub fn tool(d: &Daemon, id: &str, message: &str) -> Value {
    let before = records(d, id)
        .iter()
        .filter(|r| r["kind"] == "tool.completed")
        .count();
    let r = d.post(
        &format!("/v1/sessions/{id}/messages"),
        &json!({"text": message}).to_string(),
    );
    assert_eq!(r.status, 202, "{}", r.body);
    let mut done = Vec::new();
    wait_until(Duration::from_secs(30), message, || {
        done = records(d, id)
            .into_iter()
            .filter(|r| r["kind"] == "tool.completed")
            .collect();
        done.len() > before
    });
    // Wait for the turn to finish, so the next message is not refused as busy.
    wait_until(Duration::from_secs(30), "the session to be idle", || {
        d.get(&format!("/v1/sessions/{id}")).json()["state"] == "idle"
    });
    done[before]["data"].clone()
}

fn refused(d: &Daemon, id: &str, message: &str, why: &str) {
    let data = tool(d, id, message);
    assert_eq!(data["is_error"], true, "{message} was allowed: {data}");
    let content = data["content"].as_str().unwrap();
    assert!(content.contains(why), "{message}: {content}");
}

#[test]
fn an_agent_in_the_parent_of_the_state_directory_cannot_reach_the_token() {
    let home = Home::new();
    // The workdir is the parent of R1_HOME, as `~` is the parent of `~/.r1`.
    let work = home.path.parent().unwrap().canonicalize().unwrap();
    let d = home.serve(&[]);
    let token = home.token();
    let state_name = home.path.file_name().unwrap().to_str().unwrap().to_string();
    let token_rel = format!("{state_name}/token");
    let id = {
        let r = d.post(
            "/v1/sessions",
            &json!({"workdir": work, "policy": {"write_file": "allow", "run_command": "allow", "edit_file": "allow"}})
                .to_string(),
        );
        assert_eq!(r.status, 201, "{}", r.body);
        r.json()["id"].as_str().unwrap().to_string()
    };

    // Commands first: a second name for the token stops them (tested below).
    let env = tool(&d, &id, "/run env");
    assert_eq!(env["is_error"], false, "{env}");
    let env_text = env["content"].as_str().unwrap();
    assert!(env_text.contains("PATH="), "{env_text}");
    assert!(
        !env_text.lines().any(|l| l.starts_with("R1_")),
        "r1's variables reached the command: {env_text}"
    );

    // What the kernel really does decides what the command may do: `r1 doctor` probes
    // Landlock the same way the daemon does.
    let doctor = home.run(&["doctor", "--json"]);
    let report: Value = serde_json::from_slice(&doctor.stdout).unwrap();
    let sandbox = &report["sandbox"];
    let check = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "sandbox")
        .unwrap_or_else(|| panic!("no sandbox check: {report}"));
    assert_eq!(check["detail"], sandbox["detail"]);
    let active = sandbox["verified"] == true
        && (sandbox["enforcement"] == "full" || sandbox["enforcement"] == "partial");
    let token_path = home.path.join("token");
    let cat = tool(&d, &id, &format!("/run cat '{}'", token_path.display()));
    if active {
        assert!(sandbox["abi"].as_i64().unwrap() >= 1, "{sandbox}");
        assert!(
            sandbox["detail"].as_str().unwrap().contains("active"),
            "{sandbox}"
        );
        assert_eq!(cat["is_error"], true, "cat of the token worked: {cat}");
        assert!(
            cat["content"]
                .as_str()
                .unwrap()
                .contains("Permission denied"),
            "{cat}"
        );
        // Writes: inside the workdir yes (in an existing directory: the workdir
        // contains the state directory, so only its entries are granted), outside no.
        std::fs::create_dir_all(work.join("src")).unwrap();
        let write_in = tool(&d, &id, "/run echo hi > src/x && cat src/x");
        assert_eq!(write_in["is_error"], false, "{write_in}");
        let outside = outside_the_sandbox("e2e");
        let write_out = tool(
            &d,
            &id,
            &format!("/run echo hi > '{}'", outside.join("x").display()),
        );
        assert_eq!(write_out["is_error"], true, "{write_out}");
        assert!(!outside.join("x").exists());
        let _ = std::fs::remove_dir_all(&outside);
        // The unix socket is no way around it: it wants the token, which the command
        // cannot read, so a confined command cannot drive the daemon.
        let sock = d.sock();
        let before = d.get("/v1/sessions").json()["sessions"]
            .as_array()
            .unwrap()
            .len();
        let via_socket = tool(
            &d,
            &id,
            &format!(
                "/run curl -sS -o - -w ' %{{http_code}}' --unix-socket '{}' -X POST -H 'Content-Type: application/json' -d '{{\"workdir\":\"/tmp\"}}' http://localhost/v1/sessions",
                sock.display()
            ),
        );
        let out = via_socket["content"].as_str().unwrap();
        assert!(
            out.contains(" 401"),
            "the socket served a confined command: {out}"
        );
        assert_eq!(
            d.get("/v1/sessions").json()["sessions"]
                .as_array()
                .unwrap()
                .len(),
            before
        );
    } else {
        assert!(
            sandbox["detail"].as_str().unwrap().contains("inactive")
                || sandbox["enforcement"] == "disabled",
            "{sandbox}"
        );
    }

    // The file tools, whatever the kernel.
    let state_dir = "inside r1's state directory";
    refused(
        &d,
        &id,
        &format!(r#"/tool read_file {{"path": "{token_rel}"}}"#),
        "r1's token file",
    );
    refused(
        &d,
        &id,
        &format!(r#"/tool read_file {{"path": "{state_name}/daemon.json"}}"#),
        state_dir,
    );
    refused(
        &d,
        &id,
        &format!(r#"/tool list_dir {{"path": "{state_name}"}}"#),
        state_dir,
    );
    refused(
        &d,
        &id,
        &format!(r#"/tool write_file {{"path": "{state_name}/planted", "content": "x"}}"#),
        state_dir,
    );
    assert!(!home.path.join("planted").exists());
    let listing = tool(&d, &id, r#"/tool list_dir {"path": "."}"#);
    assert_eq!(listing["is_error"], false, "{listing}");
    assert!(
        listing["content"]
            .as_str()
            .unwrap()
            .contains(&format!("{state_name}/")),
        "{listing}"
    );

    std::os::unix::fs::symlink(&token_path, work.join("sym-token")).unwrap();
    refused(
        &d,
        &id,
        r#"/tool read_file {"path": "sym-token"}"#,
        "r1's token file",
    );
    std::fs::hard_link(&token_path, work.join("hard-token")).unwrap();
    refused(
        &d,
        &id,
        r#"/tool read_file {"path": "hard-token"}"#,
        "hard link",
    );
    refused(
        &d,
        &id,
        r#"/tool edit_file {"path": "hard-token", "old": "a", "new": "b"}"#,
        "hard link",
    );
    let needle = &token[4..20];
    let search = tool(
        &d,
        &id,
        &format!(r#"/tool search {{"pattern": "{needle}"}}"#),
    );
    assert_eq!(search["is_error"], false, "{search}");
    assert!(
        search["content"]
            .as_str()
            .unwrap()
            .starts_with("no matches"),
        "{search}"
    );
    // While the token has a second name, no command runs: a confined command could
    // read the token through it.
    let blocked = tool(&d, &id, "/run echo hi");
    assert_eq!(blocked["is_error"], true, "{blocked}");
    assert!(
        blocked["content"].as_str().unwrap().contains("hard links"),
        "{blocked}"
    );
    std::fs::remove_file(work.join("hard-token")).unwrap();

    // The token is in no record and no event of the session.
    let journal = serde_json::to_string(&records(&d, &id)).unwrap();
    // (The search pattern, a piece of the token, is in the user message that asked
    // for it; the whole token is nowhere.)
    assert!(!journal.contains(&token), "the token reached the journal");
    let bus = std::fs::read_to_string(home.path.join("bus/events.ndjson")).unwrap_or_default();
    assert!(!bus.contains(&token), "the token reached the bus");
}

/// A directory outside every place the sandbox lets commands write (the workdir and the
/// temp directories): under `$HOME`, else `/var/lib` (as root). The build may live under
/// `/tmp` (CI clones into `mktemp -d`), so the target dir cannot serve.
fn outside_the_sandbox(tag: &str) -> std::path::PathBuf {
    let granted = |p: &std::path::Path| {
        let mut roots = vec![
            std::path::PathBuf::from("/tmp"),
            std::path::PathBuf::from("/var/tmp"),
            std::path::PathBuf::from("/dev/shm"),
        ];
        if let Some(t) = std::env::var_os("TMPDIR") {
            roots.push(std::path::PathBuf::from(t));
        }
        roots.iter().any(|r| p.starts_with(r))
    };
    let candidates = std::env::var_os("HOME")
        .map(std::path::PathBuf::from)
        .into_iter()
        .chain(std::iter::once(std::path::PathBuf::from("/var/lib")));
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
