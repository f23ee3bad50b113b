//! One catalog, every surface: each operation in `r1_proto::OPERATIONS` called over
//! HTTP, WebSocket, MCP (`/mcp`) and `r1-client` gives the same result shape (the
//! same top-level keys) or the same error code; the daemon serves the OpenAPI
//! document it was generated with; a declared route never 404s.

use std::time::Duration;

use r1_proto::{HttpMethod, OperationInfo, OPERATIONS};
use serde_json::{json, Value};

use crate::support::{raw_tcp_patient, write_config, ws_call, ws_connect, Daemon, Home};

/// What a call gave: the sorted top-level keys of its result, or its error code.
#[derive(Debug, PartialEq, Eq)]
enum Shape {
    Ok(Vec<String>),
    Err(String),
}

fn shape_of(result: Result<&Value, &str>) -> Shape {
    match result {
        Ok(v) => {
            let mut keys: Vec<String> = v
                .as_object()
                .unwrap_or_else(|| panic!("not an object: {v}"))
                .keys()
                .cloned()
                .collect();
            keys.sort();
            Shape::Ok(keys)
        }
        Err(code) => Shape::Err(code.to_string()),
    }
}

/// The params each operation is called with, on a daemon with `main` (a live
/// session) and `victim` (one the test may pause and end).
fn params_for(op: &OperationInfo, main: &str, victim: &str, workdir: &str) -> Option<Value> {
    Some(match op.method {
        // Stopping the daemon would leave the other surfaces nothing to call; shutdown
        // is covered over HTTP and the CLI in `foundation`.
        "daemon.shutdown" => return None,
        // Restart hands the daemon over to a new process; `restart.rs` covers it.
        "daemon.restart" => return None,
        "daemon.handshake" | "daemon.health" | "daemon.discover" | "daemon.status"
        | "daemon.reload" | "session.resume_all" | "engines.list" => json!({}),
        "daemon.logs" => json!({"session_id": main, "level": "info", "limit": 1}),
        "hooks.list" => json!({}),
        // No hook is installed here: every surface answers the same `not_found`
        // (`hooks.rs` runs real ones).
        "hooks.test" => json!({"name": "on-none"}),
        "session.start" => json!({"workdir": workdir, "title": "catalog"}),
        "session.send" => json!({"session_id": main, "text": "hello", "client_message_id": "k1"}),
        "session.journal" => json!({"session_id": main, "since_seq": 1, "limit": 2}),
        "session.tail" => json!({"session_id": main, "since_seq": 1, "limit": 1, "wait_ms": 0}),
        "session.approve" => {
            json!({"session_id": main, "approval_id": "apr_none", "decision": "allow"})
        }
        "session.pause" | "session.resume" | "session.kill" => json!({"session_id": victim}),
        "lanes.get" => json!({"session_id": main, "lane_id": "main"}),
        "lanes.kill" => json!({"session_id": main, "lane_id": "tool_none"}),
        "lanes.pin" => json!({"session_id": main, "lane": "tool_none", "pinned": false}),
        // No worktree exists here: every surface answers the same `not_found`
        // (`worktrees.rs` covers them on real repositories).
        "worktree.diff" => json!({"worktree_id": "wt_none", "full": false}),
        // A real file, so every surface answers the same result (`files.rs` covers
        // the refusals).
        "workdir.read" => {
            std::fs::write(std::path::Path::new(workdir).join("catalog.txt"), "hello\n").unwrap();
            json!({"session_id": main, "path": "catalog.txt", "max_bytes": 1024})
        }
        "worktree.merge" => json!({"worktree_id": "wt_none", "strategy": "ff-only"}),
        "worktree.clean" => json!({"worktree_id": "wt_none", "force": false}),
        // A mission in the plain workdir (no worktree); the others address none that
        // exists (`missions.rs` covers them on real repositories).
        "mission.create" => {
            json!({"spec": {"prompt": "hello", "workdir": workdir, "worktree": false}})
        }
        "mission.list" | "search.reindex" => json!({}),
        "search.query" => json!({"q": "hello", "limit": 5}),
        "mission.get" | "mission.cancel" | "mission.resume" => json!({"mission_id": "ms_none"}),
        "session.rename" => json!({"session_id": victim, "title": "renamed by the catalog test"}),
        "session.list" => json!({"include_archived": true}),
        // Deleting would leave later operations nothing to call on; `manage.rs` covers
        // it on every surface.
        "session.delete" => return None,
        "cortex.notes" => json!({"session_id": main, "since_seq": 1}),
        "cortex.publish" => {
            json!({"session_id": main, "note": {"text": "from the catalog test", "tags": ["catalog"]}})
        }
        "cortex.lobe_pause" | "cortex.lobe_resume" => json!({"session_id": main, "lobe": "loop"}),
        // Another origin: the same `validation` everywhere, with no browser started.
        "web.navigate" => json!({"url": "https://example.com/"}),
        // `[web] playwright_mcp` names nothing here: the same `conflict` naming what to
        // install, everywhere (`web.rs` and crates/r1/tests/mcp_node/web.test.mjs drive
        // a real browser).
        "web.click" => json!({"selector": "Send"}),
        "web.fill" => json!({"selector": "Message", "value": "hello"}),
        "web.snapshot" => json!({}),
        // Each surface opens a headless TUI of its own (well under the limit); the
        // others address none that is open (`tui.rs` drives real ones).
        "tui.open" => json!({"session_id": main, "width": 80, "height": 24}),
        "tui.close" | "tui.snapshot" => json!({"tui_session_id": "tui_none"}),
        "tui.press_key" => json!({"tui_session_id": "tui_none", "key": "enter"}),
        "tui.focus_lane" => json!({"tui_session_id": "tui_none", "lane_id": "tool_none"}),
        "tui.get_model" => json!({"tui_session_id": "tui_none", "jsonpath": "$.focus"}),
        // Nothing to build in an empty workdir: the same `validation` everywhere.
        _ => json!({"session_id": main}),
    })
}

/// HTTP, built from the operation's method and path as a plain client would.
/// `lane` is an alias of `lane_id` in params, but a path is named by the field.
fn over_http(d: &Daemon, op: &OperationInfo, params: &Value) -> (u16, Value) {
    let mut rest = params.as_object().unwrap().clone();
    if let Some(lane) = rest.remove("lane") {
        rest.insert("lane_id".into(), lane);
    }
    let path = op.fill_path(&Value::Object(rest.clone())).unwrap();
    for f in op.path_fields() {
        rest.remove(f);
    }
    let r = match op.http_method {
        HttpMethod::Post => d.post(&path, &Value::Object(rest).to_string()),
        m => {
            let query: Vec<String> = rest
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().map_or(v.to_string(), str::to_string)))
                .collect();
            let target = format!("{path}?{}", query.join("&"));
            raw_tcp_patient(
                d.port(),
                &format!(
                    "{} {target} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
                    m.as_str(),
                    d.port(),
                    d.token()
                ),
                Duration::from_secs(20),
            )
        }
    };
    (r.status, r.json())
}

/// MCP over the daemon's `/mcp` endpoint: the tool result.
fn over_mcp(d: &Daemon, tool: &str, params: &Value) -> Value {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                      "params": {"name": tool, "arguments": params}})
    .to_string();
    let p = d.port();
    let r = raw_tcp_patient(
        p,
        &format!(
            "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{p}\r\nAuthorization: Bearer {}\r\nMCP-Protocol-Version: 2025-11-25\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            d.token(),
            body.len()
        ),
        Duration::from_secs(20),
    );
    let v: Value = serde_json::from_str(&r.body).unwrap_or_else(|_| panic!("{}", r.body));
    v["result"].clone()
}

#[test]
fn every_operation_has_the_same_shape_on_every_surface() {
    let home = Home::new();
    write_config(
        &home,
        "[mcp]\ncaps = \"debug\"\n[web]\nplaywright_mcp = \"/nonexistent/playwright-mcp\"\n",
    );
    let d = home.serve(&[]);
    let work = tempfile::tempdir().unwrap();
    let workdir = work.path().to_str().unwrap();
    let start = |title: &str| {
        let r = d.post(
            "/v1/sessions",
            &json!({"workdir": workdir, "title": title}).to_string(),
        );
        assert_eq!(r.status, 201, "{}", r.body);
        r.json()["id"].as_str().unwrap().to_string()
    };
    let (main, victim) = (start("main"), start("victim"));

    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut opts = r1_client::ConnectOptions::new(&home.path);
    opts.spawn = false;
    let client = rt.block_on(r1_client::connect(&opts)).unwrap();
    let mut ws = rt.block_on(ws_connect(&d));

    let mut covered = 0;
    for (n, op) in OPERATIONS.iter().enumerate() {
        let Some(params) = params_for(op, &main, &victim, workdir) else {
            continue;
        };
        let what = format!("{} {params}", op.method);

        let (status, body) = over_http(&d, op, &params);
        assert!(
            status != 404 || body["error_message"] != "no such route",
            "{what}: the route is missing"
        );
        let http = if (200..300).contains(&status) {
            shape_of(Ok(&body))
        } else {
            shape_of(Err(body["error_code"].as_str().unwrap()))
        };

        let reply = rt.block_on(ws_call(&mut ws, n as u64 + 1, op.method, params.clone()));
        let ws_shape = match reply.get("result") {
            Some(v) => shape_of(Ok(v)),
            None => shape_of(Err(reply["error"]["data"]["error_code"].as_str().unwrap())),
        };

        let req = r1_proto::Request::parse(op.method, params.clone()).unwrap();
        let r = rt.block_on(r1_proto::dispatch(&client, req));
        let client_shape = match &r {
            Ok(v) => shape_of(Ok(v)),
            Err(e) => shape_of(Err(e.code.as_str())),
        };

        assert_eq!(ws_shape, http, "{what}: WebSocket vs HTTP");
        assert_eq!(client_shape, http, "{what}: r1-client vs HTTP");
        if let Shape::Ok(_) = &http {
            // HTTP goes first, so even a keyed send is new here: the declared status.
            assert_eq!(status, op.status, "{what}: status");
        }

        if let Some(tool) = op.mcp {
            let result = over_mcp(&d, tool.name, &params);
            let env = &result["structuredContent"];
            let text: Value =
                serde_json::from_str(result["content"][0]["text"].as_str().unwrap()).unwrap();
            assert_eq!(&text, env, "{what}: MCP text and structuredContent differ");
            let mcp = if env["ok"] == true {
                assert_eq!(result["isError"], false, "{what}");
                shape_of(Ok(&env["data"]))
            } else {
                assert_eq!(result["isError"], true, "{what}");
                shape_of(Err(env["error_code"].as_str().unwrap()))
            };
            assert_eq!(mcp, http, "{what}: MCP vs HTTP");
        }
        covered += 1;
    }
    assert_eq!(
        covered,
        OPERATIONS.len() - 3,
        "every operation but shutdown, restart and delete"
    );
}

#[test]
fn the_daemon_serves_the_openapi_document_it_was_built_with() {
    let home = Home::new();
    let d = home.serve(&[]);
    let r = d.get("/v1/openapi.json");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), r1_proto::openapi::document());
    let anonymous = crate::support::raw_tcp(
        d.port(),
        &format!(
            "GET /v1/openapi.json HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
            d.port()
        ),
    );
    assert_eq!(anonymous.status, 401, "authenticated like every route");
}
