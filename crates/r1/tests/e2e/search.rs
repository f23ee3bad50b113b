//! Issue 15: full-text search over every session's history.

use std::os::unix::fs::PermissionsExt as _;
use std::time::Duration;

use serde_json::{json, Value};

use crate::agent::{send, wait_for};
use crate::sessions::start;
use crate::support::*;

/// Starts a session whose `run_command` calls run without asking.
fn start_allowed(d: &Daemon, workdir: &std::path::Path) -> String {
    let r = d.post(
        "/v1/sessions",
        &json!({"workdir": workdir, "policy": {"run_command": "allow"}}).to_string(),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    r.json()["id"].as_str().unwrap().to_string()
}

/// `GET /v1/search?{query}`, answered 200.
fn search(d: &Daemon, query: &str) -> Value {
    let r = d.get(&format!("/v1/search?{query}"));
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

type Hit = (String, u64, String);

/// The hits of `query`, as (session, seq, record kind), once `done` says they are
/// what is expected (the index follows the journal shortly after).
fn wait_until_hits(d: &Daemon, query: &str, done: impl Fn(&[Hit]) -> bool) -> Vec<Hit> {
    let mut hits = Vec::new();
    wait_until(Duration::from_secs(20), query, || {
        let r = search(d, query);
        hits = r["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                (
                    h["session_id"].as_str().unwrap().to_string(),
                    h["seq"].as_u64().unwrap(),
                    h["record_kind"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        done(&hits) && r["catching_up"] == false
    });
    hits
}

/// The hits of `query` once there are `n` of them.
fn wait_hits(d: &Daemon, query: &str, n: usize) -> Vec<Hit> {
    wait_until_hits(d, query, |h| h.len() == n)
}

#[test]
fn messages_and_tool_output_are_found_and_a_rebuilt_index_finds_the_same() {
    let home = Home::new();
    let work = tempfile::tempdir().unwrap();
    let mut d = home.serve(&[]);
    let id = start_allowed(&d, work.path());
    let other = start(&d, work.path());
    send(&d, &id, "tell me about zebracorn");
    let recs = wait_for(&d, &id, "reply", |r| {
        r["kind"] == "session.message" && r["data"]["text"] == "echo: tell me about zebracorn"
    });
    let reply_seq = recs
        .iter()
        .find(|r| r["data"]["role"] == "assistant")
        .unwrap()["seq"]
        .as_u64()
        .unwrap();
    // The output says a word the command line does not: only the output can match.
    send(&d, &id, "/run printf 'qua%s\\n' sarflux");
    let recs = wait_for(&d, &id, "tool result", |r| r["kind"] == "tool.completed");
    let done = recs.iter().find(|r| r["kind"] == "tool.completed").unwrap();
    assert!(
        done["data"]["content"]
            .as_str()
            .unwrap()
            .contains("quasarflux"),
        "{done}"
    );
    let done_seq = done["seq"].as_u64().unwrap();
    send(&d, &other, "nothing to see");

    let expected_reply: Hit = (id.clone(), reply_seq, "session.message".into());
    let reply = wait_until_hits(&d, "q=zebracorn&kind=message", |h| {
        h.len() == 2 && h.contains(&expected_reply)
    });
    assert!(reply.iter().all(|h| h.0 == id));
    // Once the tool is done its output is one hit: its result.
    let expected_output: Vec<Hit> = vec![(id.clone(), done_seq, "tool.completed".into())];
    let output = wait_until_hits(&d, "q=quasarflux&kind=tool", |h| h == expected_output);
    // The snippet marks the match; the session filter and the title come along.
    let r = search(&d, &format!("q=quasarflux&session_id={id}"));
    let hit = &r["hits"][0];
    assert!(
        hit["snippet"].as_str().unwrap().contains("[quasarflux]"),
        "{hit}"
    );
    assert!(hit["parts"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["hit"] == true && p["text"] == "quasarflux"));
    assert!(
        search(&d, &format!("q=quasarflux&session_id={other}"))["hits"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    // Prefixes and boolean operators are the engine's.
    assert_eq!(wait_hits(&d, "q=zebrac*%20NOT%20tell", 0).len(), 0);
    wait_until_hits(&d, "q=zebrac*%20OR%20quasarflux&kind=message,tool", |h| {
        h.contains(&expected_reply) && h.contains(&expected_output[0])
    });

    // A malformed query is the client's mistake, with the engine's message.
    let bad = d.get("/v1/search?q=%22unclosed");
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert_eq!(bad.json()["error_code"], "validation");
    assert!(
        bad.json()["error_message"]
            .as_str()
            .unwrap()
            .contains("unterminated string"),
        "{}",
        bad.body
    );

    // The CLI shows the same hits.
    let cli = home.run_json(&["ctl", "search", "quasarflux"]);
    assert_eq!(cli["hits"][0]["seq"], done_seq);
    let text = home.run(&["ctl", "search", "zebracorn", "--kind", "message"]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("[zebracorn]"));

    // The index is a cache of the journals: deleted, it is rebuilt at start.
    let index = home.path.join("index");
    assert_eq!(
        std::fs::metadata(&index).unwrap().permissions().mode() & 0o777,
        0o700
    );
    d.post("/v1/shutdown", "{}");
    d.wait_exit(Duration::from_secs(10)).unwrap();
    std::fs::remove_dir_all(&index).unwrap();
    let mut d = home.serve(&[]);
    assert_eq!(wait_hits(&d, "q=zebracorn&kind=message", 2), reply);
    assert_eq!(wait_hits(&d, "q=quasarflux&kind=tool", 1), output);

    // So is a rebuild asked for.
    let r = home.run_json(&["ctl", "search", "--reindex"]);
    assert_eq!(r["sessions"], 2, "{r}");
    assert_eq!(wait_hits(&d, "q=quasarflux&kind=tool", 1), output);
    d.post("/v1/shutdown", "{}");
    d.wait_exit(Duration::from_secs(10)).unwrap();
}

#[test]
fn a_session_deleted_by_retention_leaves_the_results() {
    let home = Home::new();
    let work = tempfile::tempdir().unwrap();
    let mut d = home.serve(&[]);
    let ended = start(&d, work.path());
    let live = start(&d, work.path());
    send(&d, &ended, "marmalade gone soon");
    send(&d, &live, "marmalade stays");
    assert_eq!(wait_hits(&d, "q=marmalade&kind=message", 4).len(), 4);
    let r = d.get(&format!("/v1/sessions/{ended}"));
    assert_eq!(r.status, 200);
    assert_eq!(crate::sessions::raw_delete(&d, &ended).status, 200);
    d.post("/v1/shutdown", "{}");
    d.wait_exit(Duration::from_secs(10)).unwrap();
    std::fs::write(
        home.path.join("daemon.toml"),
        "[retention]\nmax_age_hours = 0\n",
    )
    .unwrap();
    let d = home.serve(&[]);
    wait_until(Duration::from_secs(5), "prune", || {
        d.get(&format!("/v1/sessions/{ended}")).status == 404
    });
    let hits = wait_hits(&d, "q=marmalade&kind=message", 2);
    assert!(hits.iter().all(|h| h.0 == live), "{hits:?}");
}

#[test]
fn search_can_be_turned_off_and_says_so() {
    let home = Home::new();
    write_config(&home, "[search]\nenabled = false\n");
    let d = home.serve(&[]);
    let work = tempfile::tempdir().unwrap();
    let id = start(&d, work.path());
    send(&d, &id, "an unsearchable quokkafish");
    wait_for(&d, &id, "reply", |r| {
        r["data"]["text"] == "echo: an unsearchable quokkafish"
    });

    // Every surface says why, as a conflict, never a 500.
    let r = d.get("/v1/search?q=quokkafish");
    assert_eq!(r.status, 409, "{}", r.body);
    let msg = r.json()["error_message"].as_str().unwrap().to_string();
    assert!(msg.contains("[search] enabled"), "{msg}");
    assert_eq!(
        d.post("/v1/search/reindex", "{}").status,
        409,
        "reindex while off"
    );
    let out = home.run(&["ctl", "search", "quokkafish", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains("turned off") && said.contains("conflict"),
        "{said}"
    );
    // Nothing was indexed: no index directory was made.
    assert!(!home.path.join("index").exists());

    // Turning it on by reload waits for a restart, and says so.
    write_config(&home, "[search]\nenabled = true\n");
    let out = home.run_json(&["ctl", "reload"]);
    assert_eq!(out["restart_required"], json!(["search.enabled"]), "{out}");
    assert_eq!(d.get("/v1/search?q=quokkafish").status, 409);

    // After a restart the index catches up from the journals: the old message is found.
    drop(d);
    let d = home.serve(&[]);
    let hits = wait_hits(&d, "q=quokkafish", 2);
    assert!(hits.iter().all(|(s, _, _)| s == &id), "{hits:?}");
}
