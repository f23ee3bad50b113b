//! Issue 18: sessions can be renamed, archived (reversibly) and deleted, on every
//! surface; labels survive a restart, archived sessions stay searchable, and a delete
//! removes the journal and the search entries.

use std::time::Duration;

use serde_json::{json, Value};

use crate::restart::mcp_call;
use crate::support::*;

fn start(d: &Daemon, work: &std::path::Path, title: &str) -> String {
    let r = d.post(
        "/v1/sessions",
        &json!({"workdir": work, "title": title}).to_string(),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    r.json()["id"].as_str().unwrap().to_string()
}

fn listed(d: &Daemon, query: &str) -> Vec<String> {
    let r = d.get(&format!("/v1/sessions{query}"));
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

fn search_titles(d: &Daemon, word: &str) -> Vec<(String, Value)> {
    let r = d.get(&format!("/v1/search?q={word}"));
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["session_id"].as_str().unwrap().to_string(),
                h["session_title"].clone(),
            )
        })
        .collect()
}

#[test]
fn rename_archive_and_delete_on_every_surface() {
    let home = Home::new();
    write_config(&home, "[mcp]\ncaps = \"write\"\n");
    let mut d = home.serve(&[]);
    let work = tempfile::tempdir().unwrap();
    let a = start(&d, work.path(), "first");
    let b = start(&d, work.path(), "second");
    let r = d.post(
        &format!("/v1/sessions/{a}/messages"),
        &json!({"text": "zebrafinch migration"}).to_string(),
    );
    assert_eq!(r.status, 202, "{}", r.body);

    // Rename: HTTP, then the CLI; bad titles are refused and change nothing.
    let r = d.post(
        &format!("/v1/sessions/{a}/rename"),
        &json!({"title": "fix the OOM"}).to_string(),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["title"], "fix the OOM");
    for bad in ["", "   ", "two\nlines", &"x".repeat(201)] {
        let r = d.post(
            &format!("/v1/sessions/{a}/rename"),
            &json!({ "title": bad }).to_string(),
        );
        assert_eq!(r.status, 400, "{bad:?}: {}", r.body);
    }
    let v = home.run_json(&["ctl", "sessions", "rename", &b, "-- dashes ok"]);
    assert_eq!(v["title"], "-- dashes ok");
    assert_eq!(
        d.get(&format!("/v1/sessions/{a}")).json()["title"],
        "fix the OOM"
    );

    // Archive over MCP: out of the default list, in the full one, idempotent.
    for _ in 0..2 {
        let v = mcp_call(&d, "r1_session_archive", json!({ "session_id": a }));
        assert_eq!(v["ok"], true, "{v}");
        assert_eq!(v["data"]["archived"], true, "{v}");
    }
    assert_eq!(listed(&d, ""), vec![b.clone()]);
    assert_eq!(listed(&d, "?include_archived=true"), [a.clone(), b.clone()]);
    assert_eq!(d.get(&format!("/v1/sessions/{a}")).json()["archived"], true);
    let l = home.run_json(&["ctl", "sessions", "list"]);
    assert_eq!(l["sessions"].as_array().unwrap().len(), 1, "{l}");
    let l = home.run_json(&["ctl", "sessions", "list", "--all"]);
    assert_eq!(l["sessions"].as_array().unwrap().len(), 2, "{l}");
    // Archived sessions stay searchable, under their new title.
    wait_until(
        Duration::from_secs(20),
        "the archived session in search",
        || {
            search_titles(&d, "zebrafinch")
                .iter()
                .any(|(s, t)| s == &a && t == "fix the OOM")
        },
    );

    // Labels survive a restart.
    if let Some(mut c) = d.child.take() {
        c.kill().unwrap();
        c.wait().unwrap();
    }
    d = home.serve(&[]);
    let v = d.get(&format!("/v1/sessions/{a}")).json();
    assert_eq!(
        (v["title"].clone(), v["archived"].clone()),
        (json!("fix the OOM"), json!(true)),
        "{v}"
    );
    let r = d.post(&format!("/v1/sessions/{a}/unarchive"), "{}");
    assert_eq!(r.json()["archived"], false, "{}", r.body);
    assert_eq!(listed(&d, ""), [a.clone(), b.clone()]);

    // Delete: the CLI asks, and without a terminal it refuses unless --yes.
    let out = home.run(&["ctl", "sessions", "delete", &b]);
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--yes"));
    assert_eq!(d.get(&format!("/v1/sessions/{b}")).status, 200);
    let v = home.run_json(&["ctl", "sessions", "delete", &b, "--yes"]);
    assert_eq!(v["deleted"], true, "{v}");
    assert_eq!(d.get(&format!("/v1/sessions/{b}")).status, 404);

    // A live session, mid-turn, deleted over MCP: ended first, then gone everywhere.
    let r = d.post(
        &format!("/v1/sessions/{a}/messages"),
        &json!({"text": "/slow zebrafinch again and again"}).to_string(),
    );
    assert_eq!(r.status, 202, "{}", r.body);
    let v = mcp_call(&d, "r1_session_delete", json!({ "session_id": a }));
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["data"]["ended"], true, "{v}");
    assert_eq!(d.get(&format!("/v1/sessions/{a}")).status, 404);
    assert!(!home.path.join("sessions").join(&a).exists());
    assert!(listed(&d, "?include_archived=true").is_empty());
    assert!(search_titles(&d, "zebrafinch").is_empty());
    let r = d.post(&format!("/v1/sessions/{a}/delete"), "{}");
    assert_eq!(r.status, 404, "{}", r.body);
    // And it does not come back after a restart.
    if let Some(mut c) = d.child.take() {
        c.kill().unwrap();
        c.wait().unwrap();
    }
    let d = home.serve(&[]);
    assert!(listed(&d, "?include_archived=true").is_empty());
}
