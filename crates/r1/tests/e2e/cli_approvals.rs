//! Issue 17: approvals for agent CLIs. A fake `claude` asks r1's permission endpoint
//! over real MCP HTTP, as Claude Code's `--permission-prompt-tool` does; r1's clients
//! decide through `session.approve`; the fake gets the bare JSON decision and acts on
//! it. The permit's secret opens nothing else. Codex, which cannot ask, gets the
//! sandbox the session's policy allows.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};

use crate::agent::wait_for;
use crate::sessions::records;
use crate::support::*;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../r1-engine/tests/fixtures")
        .join(name)
}

/// A daemon whose engine `agent` runs `fake` with `adapter`, and a session on it in a
/// fresh workdir, started with `policy`.
fn session(
    adapter: &str,
    fake: &str,
    extra: &str,
    policy: Value,
) -> (Home, Daemon, tempfile::TempDir, String) {
    let home = Home::new();
    std::fs::create_dir_all(&home.path).unwrap();
    std::fs::set_permissions(&home.path, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::write(
        home.path.join("daemon.toml"),
        format!(
            "[engines.agent]\nkind = \"exec\"\nadapter = \"{adapter}\"\ncommand = \"{}\"\n{extra}",
            fixture(fake).display()
        ),
    )
    .unwrap();
    let d = home.serve(&[]);
    let work = tempfile::tempdir().unwrap();
    let mut params = json!({"workdir": work.path(), "engine": "agent"});
    if !policy.is_null() {
        params["policy"] = policy;
    }
    let r = d.post("/v1/sessions", &params.to_string());
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.json()["id"].as_str().unwrap().to_string();
    (home, d, work, id)
}

fn send(d: &Daemon, id: &str, text: &str) {
    let r = d.post(
        &format!("/v1/sessions/{id}/messages"),
        &json!({"text": text}).to_string(),
    );
    assert_eq!(r.status, 202, "{}", r.body);
}

fn count(d: &Daemon, id: &str, kind: &str) -> usize {
    records(d, id).iter().filter(|r| r["kind"] == kind).count()
}

/// Waits for approval request number `n` (1-based) and returns its record.
fn nth_request(d: &Daemon, id: &str, n: usize) -> Value {
    wait_until(Duration::from_secs(30), "an approval request", || {
        count(d, id, "approval.requested") >= n
    });
    records(d, id)
        .into_iter()
        .filter(|r| r["kind"] == "approval.requested")
        .nth(n - 1)
        .unwrap()
}

/// Waits until the session is idle with `n` assistant answers, and returns the last.
fn answer(d: &Daemon, id: &str, n: usize) -> String {
    wait_until(Duration::from_secs(30), "the agent's answer", || {
        d.get(&format!("/v1/sessions/{id}")).json()["state"] == "idle" && answers(d, id).len() >= n
    });
    answers(d, id).pop().unwrap()
}

fn answers(d: &Daemon, id: &str) -> Vec<String> {
    records(d, id)
        .iter()
        .filter(|r| r["kind"] == "session.message" && r["data"]["role"] == "assistant")
        .filter_map(|r| r["data"]["text"].as_str().map(str::to_string))
        .filter(|t| !t.is_empty())
        .collect()
}

/// The decision JSON the fake agent received, from its answer `decision=<text>`.
fn decision_of(answer: &str) -> Value {
    let raw = answer
        .strip_prefix("decision=")
        .unwrap_or_else(|| panic!("not a decision: {answer}"));
    serde_json::from_str(raw).unwrap_or_else(|e| panic!("not bare JSON ({e}): {raw}"))
}

fn decide(d: &Daemon, id: &str, approval: &str, body: Value) {
    let r = d.post(
        &format!("/v1/sessions/{id}/approvals/{approval}"),
        &body.to_string(),
    );
    assert_eq!(r.status, 200, "{}", r.body);
}

fn resolution(d: &Daemon, id: &str, approval: &str) -> Value {
    let recs = wait_for(d, id, "the resolution", |r| {
        r["kind"] == "approval.resolved" && r["data"]["approval_id"] == approval
    });
    recs.into_iter()
        .find(|r| r["kind"] == "approval.resolved" && r["data"]["approval_id"] == approval)
        .unwrap()
}

/// The MCP server entry the fake agent was given: its URL's path and its bearer.
fn permit_of(work: &Path) -> (String, String) {
    let entry: Value =
        serde_json::from_slice(&std::fs::read(work.join(".fake-claude-permission.json")).unwrap())
            .unwrap();
    let url = entry["url"].as_str().unwrap();
    let path = format!(
        "/{}",
        url.split_once("://").unwrap().1.split_once('/').unwrap().1
    );
    let auth = entry["headers"]["Authorization"].as_str().unwrap();
    let secret = auth.strip_prefix("Bearer ").unwrap().to_string();
    (path, secret)
}

/// A request over TCP with `auth` as the whole `Authorization` value, if any.
fn request(d: &Daemon, method: &str, path: &str, auth: Option<&str>, body: &str) -> Resp {
    let auth = auth
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    raw_tcp_patient(
        d.port(),
        &format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            d.port(),
            body.len()
        ),
        Duration::from_secs(20),
    )
}

fn rpc(method: &str, params: Value) -> String {
    json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params}).to_string()
}

/// While the agent waits for a decision, its permit's secret is tried everywhere
/// else, and other credentials on its endpoint: every one is refused.
fn assert_permit_opens_nothing_else(d: &Daemon, path: &str, secret: &str) {
    let bearer = format!("Bearer {secret}");
    let init = rpc("initialize", json!({"protocolVersion": "2025-06-18"}));
    for (method, other, body) in [
        ("GET", "/v1/sessions", ""),
        ("GET", "/v1/health", ""),
        ("POST", "/v1/sessions", r#"{"workdir":"/tmp"}"#),
        ("GET", "/v1/events", ""),
        ("POST", "/mcp", init.as_str()),
    ] {
        let r = request(d, method, other, Some(&bearer), body);
        assert_eq!(
            r.status, 401,
            "{method} {other} with the permit: {}",
            r.body
        );
    }
    let r = raw_unix(
        &d.sock(),
        &format!("GET /v1/sessions HTTP/1.1\r\nHost: localhost\r\nAuthorization: {bearer}\r\nConnection: close\r\n\r\n"),
    );
    assert_eq!(r.status, 401, "the permit over the unix socket: {}", r.body);
    // The endpoint takes only its own secret: not a wrong one, not none, not the
    // daemon's token, and not on another permit id.
    let wrong = format!("Bearer {}", "0".repeat(secret.len()));
    let token = format!("Bearer {}", d.token());
    let list = rpc("tools/list", json!({}));
    for auth in [Some(wrong.as_str()), None, Some(token.as_str())] {
        let r = request(d, "POST", path, auth, &list);
        assert_eq!(r.status, 401, "{auth:?}: {}", r.body);
        assert_eq!(r.json()["error_code"], "permission_denied", "{}", r.body);
    }
    let r = request(
        d,
        "POST",
        "/v1/permission/prm_000000000000000000000000",
        Some(&bearer),
        &list,
    );
    assert_eq!(r.status, 401, "another permit id: {}", r.body);
    // The endpoint's way past the daemon's token leads nowhere else.
    for other in [
        "/v1/permission/../sessions",
        "/v1/permission/%2e%2e/sessions",
    ] {
        let r = request(d, "GET", other, None, "");
        assert!(
            r.status == 404 || r.status == 405,
            "{other}: {} {}",
            r.status,
            r.body
        );
        assert!(!r.body.contains("\"sessions\""), "{other}: {}", r.body);
    }
    // With its secret it offers one tool and nothing else.
    let r = request(d, "POST", path, Some(&bearer), &list);
    assert_eq!(r.status, 200, "{}", r.body);
    let tools = r.json()["result"]["tools"].clone();
    assert_eq!(tools.as_array().unwrap().len(), 1, "{tools}");
    assert_eq!(tools[0]["name"], "permission_prompt");
    let r = request(
        d,
        "POST",
        path,
        Some(&bearer),
        &rpc(
            "tools/call",
            json!({"name": "r1_session_list", "arguments": {}}),
        ),
    );
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown tool"),
        "{}",
        r.body
    );
    let r = request(
        d,
        "POST",
        path,
        Some(&bearer),
        &rpc("resources/list", json!({})),
    );
    assert_eq!(r.json()["error"]["code"], -32601, "{}", r.body);
}

#[test]
fn claude_codes_permission_prompts_are_r1_approvals() {
    let (_home, d, work, id) = session("claude", "fake-claude", "", Value::Null);

    // 1. Allow: the session waits on the approval, every client sees it, the agent
    // gets {"behavior":"allow","updatedInput":…} and writes the file.
    send(&d, &id, "write a.txt hello there");
    let asked = nth_request(&d, &id, 1);
    assert_eq!(asked["data"]["tool"], "Write", "{asked}");
    assert_eq!(asked["data"]["external"], true, "{asked}");
    assert_eq!(asked["data"]["call_id"], "toolu_w", "{asked}");
    let args = json!({"file_path": "a.txt", "content": "hello there"});
    assert_eq!(asked["data"]["args"], args);
    let approval = asked["data"]["approval_id"].as_str().unwrap().to_string();
    let view = d.get(&format!("/v1/sessions/{id}")).json();
    assert_eq!(view["state"], "waiting_on_approval", "{view}");
    assert_eq!(view["pending_approvals"], json!([approval]), "{view}");
    let (path, secret) = permit_of(work.path());
    assert!(path.starts_with("/v1/permission/prm_"), "{path}");
    assert_permit_opens_nothing_else(&d, &path, &secret);
    assert!(
        !work.path().join("a.txt").exists(),
        "written before the decision"
    );
    decide(&d, &id, &approval, json!({"decision": "allow"}));
    let got = decision_of(&answer(&d, &id, 1));
    assert_eq!(got, json!({"behavior": "allow", "updatedInput": args}));
    assert_eq!(
        std::fs::read_to_string(work.path().join("a.txt")).unwrap(),
        "hello there"
    );
    assert_eq!(resolution(&d, &id, &approval)["data"]["decision"], "allow");
    // The turn is over: its permit is closed.
    let r = request(
        &d,
        "POST",
        &path,
        Some(&format!("Bearer {secret}")),
        &rpc("tools/list", json!({})),
    );
    assert_eq!(r.status, 401, "a closed permit: {}", r.body);

    // 2. Deny: {"behavior":"deny","message":…}, and nothing is written.
    send(&d, &id, "write b.txt nope");
    let asked = nth_request(&d, &id, 2);
    let approval = asked["data"]["approval_id"].as_str().unwrap().to_string();
    let (path2, _) = permit_of(work.path());
    assert_ne!(path2, path, "each turn gets its own permit");
    decide(&d, &id, &approval, json!({"decision": "deny"}));
    let got = decision_of(&answer(&d, &id, 2));
    assert_eq!(got["behavior"], "deny", "{got}");
    assert_eq!(got["message"], "the user denied the Write call", "{got}");
    assert_eq!(got.as_object().unwrap().len(), 2, "{got}");
    assert!(!work.path().join("b.txt").exists());
    assert_eq!(resolution(&d, &id, &approval)["data"]["decision"], "deny");

    // 3. A pause stops the agent: its approval is denied by r1 and nothing continues.
    send(&d, &id, "write c.txt later");
    let asked = nth_request(&d, &id, 3);
    let approval = asked["data"]["approval_id"].as_str().unwrap().to_string();
    let r = d.post(&format!("/v1/sessions/{id}/pause"), "{}");
    assert_eq!(r.status, 200, "{}", r.body);
    let resolved = resolution(&d, &id, &approval);
    assert_eq!(resolved["data"]["decision"], "deny", "{resolved}");
    assert_eq!(
        resolved["data"]["reason"],
        "the agent that asked has stopped"
    );
    let view = d.get(&format!("/v1/sessions/{id}")).json();
    assert_eq!(view["state"], "paused", "{view}");
    assert_eq!(view["pending_approvals"], json!([]), "{view}");
    let r = d.post(&format!("/v1/sessions/{id}/resume"), "{}");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(d.get(&format!("/v1/sessions/{id}")).json()["state"], "idle");
    assert!(!work.path().join("c.txt").exists());

    // 4. Allow and remember: the next Write is allowed by the session's policy
    // without asking anyone.
    send(&d, &id, "write d.txt one");
    let asked = nth_request(&d, &id, 4);
    let approval = asked["data"]["approval_id"].as_str().unwrap().to_string();
    decide(
        &d,
        &id,
        &approval,
        json!({"decision": "allow", "remember": true}),
    );
    assert_eq!(decision_of(&answer(&d, &id, 3))["behavior"], "allow");
    send(&d, &id, "write e.txt two");
    assert_eq!(decision_of(&answer(&d, &id, 4))["behavior"], "allow");
    assert_eq!(
        count(&d, &id, "approval.requested"),
        4,
        "the remembered allow asked"
    );
    assert_eq!(
        std::fs::read_to_string(work.path().join("e.txt")).unwrap(),
        "two"
    );
}

/// A session whose policy denies the tool answers the agent at once, without asking.
#[test]
fn a_denying_policy_answers_claude_code_without_asking() {
    let (_home, d, work, id) = session("claude", "fake-claude", "", json!({"Write": "deny"}));
    send(&d, &id, "write a.txt no");
    let got = decision_of(&answer(&d, &id, 1));
    assert_eq!(
        got,
        json!({"behavior": "deny", "message": "the session's policy denies the tool Write"})
    );
    assert_eq!(count(&d, &id, "approval.requested"), 0);
    assert!(!work.path().join("a.txt").exists());
}

/// Codex cannot ask in `exec` mode: it gets the sandbox the session's policy allows,
/// and none from r1 when its engine's args choose one.
#[test]
fn codex_runs_in_the_sandbox_the_sessions_policy_allows() {
    let may_write = json!({"write_file": "allow", "run_command": "allow"});
    for (policy, extra, expect) in [
        (Value::Null, "", "sandbox=read-only"),
        (json!({"write_file": "allow"}), "", "sandbox=read-only"),
        (may_write.clone(), "", "sandbox=workspace-write"),
        (
            may_write,
            "args = [\"--sandbox\", \"danger-full-access\"]\n",
            "sandbox=danger-full-access",
        ),
    ] {
        let (_home, d, _work, id) = session("codex", "fake-codex", extra, policy.clone());
        send(&d, &id, "hi");
        let text = answer(&d, &id, 1);
        assert!(text.contains(expect), "{policy} {extra}: {text}");
        assert_eq!(text.matches("sandbox=").count(), 1, "{text}");
    }
}
