//! The dispatcher and the HTTP service against an in-memory `Api`: envelopes,
//! capabilities, aliases, argument checks, the long-poll, and a JSON-RPC round trip
//! through the tower service mounted in an axum router.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use http::Request;
use http_body_util::BodyExt;
use r1_mcp::{call_tool, http_service, Caps};
use r1_proto::{
    Ack, Api, ApiError, ApproveParams, Discovery, EmptyParams, EngineList, EventKind, EventRecord,
    Handshake, Health, JournalPage, JournalParams, LaneList, LaneRef, LaneView, PinLaneParams,
    RepairResult, ResumeAllResult, SendMessageParams, SendMessageResult, SessionList, SessionRef,
    SessionState, SessionView, ShutdownParams, StartSessionParams, TailParams,
};
use serde_json::{json, Value};
use tower::ServiceExt;

/// One session, `ses_1`, whose journal the test appends to.
#[derive(Default)]
struct Fake {
    journal: Mutex<Vec<EventRecord>>,
    sent: Mutex<HashMap<String, SendMessageResult>>,
    /// Every `session.tail` call, as the fake received it.
    tails: Mutex<Vec<TailParams>>,
}

impl Fake {
    fn push(&self, kind: EventKind, data: Value) -> u64 {
        let mut j = self.journal.lock().unwrap();
        let seq = j.len() as u64 + 1;
        j.push(EventRecord {
            v: 1,
            seq,
            at: "2026-01-01T00:00:00.000Z".into(),
            kind,
            lane: "main".into(),
            data,
        });
        seq
    }

    fn view(&self) -> SessionView {
        SessionView {
            id: "ses_1".into(),
            workdir: "/w".into(),
            engine: "echo".into(),
            model: None,
            title: None,
            state: SessionState::Idle,
            reattachable: false,
            created_at: "2026-01-01T00:00:00Z".into(),
            last_seq: self.journal.lock().unwrap().len() as u64,
            pending_approvals: Vec::new(),
            error: None,
            worktree_id: None,
            usage: Default::default(),
            archived: false,
        }
    }

    fn page(&self, id: &str, since: u64, limit: Option<u64>) -> Result<JournalPage, ApiError> {
        self.session(id)?;
        let records: Vec<_> = self
            .journal
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.seq >= since)
            .take(limit.unwrap_or(1000) as usize)
            .cloned()
            .collect();
        let next_seq = records.last().map_or(since.max(1), |r| r.seq + 1);
        Ok(JournalPage { records, next_seq })
    }

    fn session(&self, id: &str) -> Result<SessionView, ApiError> {
        if id == "ses_1" {
            Ok(self.view())
        } else {
            Err(ApiError::not_found(format!("session {id} not found")))
        }
    }
}

fn unsupported<T>() -> Result<T, ApiError> {
    Err(ApiError::conflict("not supported by the fake"))
}

#[async_trait::async_trait]
impl Api for Fake {
    async fn handshake(&self, _: EmptyParams) -> Result<Handshake, ApiError> {
        unsupported()
    }
    async fn session_debug_state(
        &self,
        _: SessionRef,
    ) -> Result<r1_proto::SessionDebugState, ApiError> {
        unsupported()
    }
    async fn session_compact(&self, _: SessionRef) -> Result<r1_proto::CompactResult, ApiError> {
        unsupported()
    }
    async fn health(&self, _: EmptyParams) -> Result<Health, ApiError> {
        unsupported()
    }
    async fn discover(&self, _: EmptyParams) -> Result<Discovery, ApiError> {
        unsupported()
    }
    async fn shutdown(&self, _: ShutdownParams) -> Result<Ack, ApiError> {
        unsupported()
    }
    async fn daemon_status(&self, _: EmptyParams) -> Result<r1_proto::DaemonStatus, ApiError> {
        unsupported()
    }
    async fn daemon_logs(&self, _: r1_proto::LogsParams) -> Result<r1_proto::LogPage, ApiError> {
        unsupported()
    }
    async fn reload(&self, _: EmptyParams) -> Result<r1_proto::ReloadResult, ApiError> {
        unsupported()
    }
    async fn restart(
        &self,
        _: r1_proto::RestartParams,
    ) -> Result<r1_proto::RestartResult, ApiError> {
        unsupported()
    }
    async fn hooks_list(&self, _: EmptyParams) -> Result<r1_proto::HookList, ApiError> {
        unsupported()
    }
    async fn hooks_test(
        &self,
        _: r1_proto::HookTestParams,
    ) -> Result<r1_proto::HookTestResult, ApiError> {
        unsupported()
    }
    async fn session_start(&self, p: StartSessionParams) -> Result<SessionView, ApiError> {
        if !p.workdir.starts_with('/') {
            return Err(ApiError::validation("workdir must be absolute"));
        }
        Ok(self.view())
    }
    async fn session_rename(&self, _: r1_proto::RenameParams) -> Result<SessionView, ApiError> {
        unsupported()
    }
    async fn session_archive(&self, _: SessionRef) -> Result<SessionView, ApiError> {
        unsupported()
    }
    async fn session_unarchive(&self, _: SessionRef) -> Result<SessionView, ApiError> {
        unsupported()
    }
    async fn session_delete(&self, _: SessionRef) -> Result<r1_proto::DeleteResult, ApiError> {
        unsupported()
    }
    async fn session_list(&self, _: r1_proto::ListSessionsParams) -> Result<SessionList, ApiError> {
        Ok(SessionList {
            sessions: vec![self.view()],
        })
    }
    async fn session_get(&self, p: SessionRef) -> Result<SessionView, ApiError> {
        self.session(&p.session_id)
    }
    async fn session_send(&self, p: SendMessageParams) -> Result<SendMessageResult, ApiError> {
        self.session(&p.session_id)?;
        if let Some(key) = &p.client_message_id {
            if let Some(r) = self.sent.lock().unwrap().get(key) {
                return Ok(SendMessageResult {
                    duplicate: true,
                    ..r.clone()
                });
            }
        }
        let seq = self.push(
            EventKind::SessionMessage,
            json!({"role": "user", "text": p.text}),
        );
        let r = SendMessageResult {
            message_id: format!("msg_{seq}"),
            seq,
            duplicate: false,
        };
        if let Some(key) = p.client_message_id {
            self.sent.lock().unwrap().insert(key, r.clone());
        }
        Ok(r)
    }
    async fn session_cancel(&self, p: SessionRef) -> Result<SessionView, ApiError> {
        self.session(&p.session_id)
    }
    async fn session_pause(&self, _: SessionRef) -> Result<SessionView, ApiError> {
        unsupported()
    }
    async fn session_resume(&self, p: SessionRef) -> Result<SessionView, ApiError> {
        self.session(&p.session_id)
    }
    async fn session_resume_all(&self, _: EmptyParams) -> Result<ResumeAllResult, ApiError> {
        Ok(ResumeAllResult {
            resumed: vec![self.session("ses_1")?],
            failed: Vec::new(),
        })
    }
    async fn session_kill(&self, _: SessionRef) -> Result<SessionView, ApiError> {
        unsupported()
    }
    async fn session_repair(&self, _: SessionRef) -> Result<RepairResult, ApiError> {
        unsupported()
    }
    async fn session_journal(&self, p: JournalParams) -> Result<JournalPage, ApiError> {
        self.page(&p.session_id, p.since_seq.unwrap_or(1), p.limit)
    }
    async fn session_tail(&self, p: TailParams) -> Result<JournalPage, ApiError> {
        self.tails.lock().unwrap().push(p.clone());
        self.page(&p.session_id, p.since_seq, p.limit)
    }
    async fn session_approve(&self, _: ApproveParams) -> Result<SessionView, ApiError> {
        unsupported()
    }
    async fn lanes_list(&self, p: SessionRef) -> Result<LaneList, ApiError> {
        self.session(&p.session_id)?;
        Ok(LaneList {
            lanes: vec![LaneView {
                lane: "main".into(),
                tool: None,
                status: "running".into(),
                pinned: false,
                created_seq: 1,
            }],
        })
    }
    async fn lanes_get(&self, p: LaneRef) -> Result<LaneView, ApiError> {
        let lanes = self.lanes_list(SessionRef::new(p.session_id)).await?;
        lanes
            .lanes
            .into_iter()
            .find(|l| l.lane == p.lane_id)
            .ok_or_else(|| ApiError::not_found(format!("lane {} not found", p.lane_id)))
    }
    async fn lanes_kill(&self, _: LaneRef) -> Result<LaneList, ApiError> {
        unsupported()
    }
    async fn lanes_pin(&self, _: PinLaneParams) -> Result<LaneList, ApiError> {
        unsupported()
    }
    async fn engines_list(&self, _: EmptyParams) -> Result<EngineList, ApiError> {
        unsupported()
    }
    async fn worktree_list(
        &self,
        _: r1_proto::WorktreeListParams,
    ) -> Result<r1_proto::WorktreeList, ApiError> {
        unsupported()
    }
    async fn worktree_diff(
        &self,
        _: r1_proto::WorktreeDiffParams,
    ) -> Result<r1_proto::WorktreeDiff, ApiError> {
        unsupported()
    }
    async fn workdir_read(
        &self,
        _: r1_proto::WorkdirReadParams,
    ) -> Result<r1_proto::WorkdirFile, ApiError> {
        unsupported()
    }
    async fn worktree_merge(
        &self,
        _: r1_proto::WorktreeMergeParams,
    ) -> Result<r1_proto::WorktreeMergeResult, ApiError> {
        unsupported()
    }
    async fn worktree_clean(
        &self,
        _: r1_proto::WorktreeCleanParams,
    ) -> Result<r1_proto::WorktreeView, ApiError> {
        unsupported()
    }
    async fn mission_create(
        &self,
        _: r1_proto::MissionCreateParams,
    ) -> Result<r1_proto::MissionView, ApiError> {
        unsupported()
    }
    async fn mission_list(
        &self,
        _: r1_proto::MissionListParams,
    ) -> Result<r1_proto::MissionList, ApiError> {
        unsupported()
    }
    async fn mission_get(
        &self,
        _: r1_proto::MissionRef,
    ) -> Result<r1_proto::MissionView, ApiError> {
        unsupported()
    }
    async fn mission_cancel(
        &self,
        _: r1_proto::MissionRef,
    ) -> Result<r1_proto::MissionView, ApiError> {
        unsupported()
    }
    async fn mission_resume(
        &self,
        _: r1_proto::MissionRef,
    ) -> Result<r1_proto::MissionView, ApiError> {
        unsupported()
    }
    async fn verify_build(
        &self,
        _: r1_proto::VerifyParams,
    ) -> Result<r1_proto::VerifyResult, ApiError> {
        unsupported()
    }
    async fn verify_test(
        &self,
        _: r1_proto::VerifyParams,
    ) -> Result<r1_proto::VerifyResult, ApiError> {
        unsupported()
    }
    async fn verify_lint(
        &self,
        _: r1_proto::VerifyParams,
    ) -> Result<r1_proto::VerifyResult, ApiError> {
        unsupported()
    }
    async fn search(&self, _: r1_proto::SearchParams) -> Result<r1_proto::SearchResult, ApiError> {
        unsupported()
    }
    async fn search_reindex(&self, _: EmptyParams) -> Result<r1_proto::ReindexResult, ApiError> {
        unsupported()
    }
    async fn web_navigate(
        &self,
        _: r1_proto::WebNavigateParams,
    ) -> Result<r1_proto::WebPageView, ApiError> {
        unsupported()
    }
    async fn web_click(
        &self,
        _: r1_proto::WebClickParams,
    ) -> Result<r1_proto::WebPageView, ApiError> {
        unsupported()
    }
    async fn web_fill(
        &self,
        _: r1_proto::WebFillParams,
    ) -> Result<r1_proto::WebPageView, ApiError> {
        unsupported()
    }
    async fn web_snapshot(&self, _: EmptyParams) -> Result<r1_proto::WebPageView, ApiError> {
        unsupported()
    }
    async fn tui_open(&self, _: r1_proto::TuiOpenParams) -> Result<r1_proto::TuiOpened, ApiError> {
        unsupported()
    }
    async fn tui_close(&self, _: r1_proto::TuiRef) -> Result<r1_proto::Ack, ApiError> {
        unsupported()
    }
    async fn tui_press_key(
        &self,
        _: r1_proto::TuiKeyParams,
    ) -> Result<r1_proto::TuiSnapshot, ApiError> {
        unsupported()
    }
    async fn tui_snapshot(&self, _: r1_proto::TuiRef) -> Result<r1_proto::TuiSnapshot, ApiError> {
        unsupported()
    }
    async fn tui_focus_lane(
        &self,
        _: r1_proto::TuiFocusLaneParams,
    ) -> Result<r1_proto::TuiSnapshot, ApiError> {
        unsupported()
    }
    async fn tui_get_model(
        &self,
        _: r1_proto::TuiGetModelParams,
    ) -> Result<r1_proto::TuiModelView, ApiError> {
        unsupported()
    }
    async fn cortex_notes(
        &self,
        _: r1_proto::CortexNotesParams,
    ) -> Result<r1_proto::NoteList, ApiError> {
        unsupported()
    }
    async fn cortex_publish(
        &self,
        _: r1_proto::CortexPublishParams,
    ) -> Result<r1_proto::NoteView, ApiError> {
        unsupported()
    }
    async fn cortex_lobes_list(&self, _: SessionRef) -> Result<r1_proto::LobeList, ApiError> {
        unsupported()
    }
    async fn cortex_lobe_pause(
        &self,
        _: r1_proto::LobeRef,
    ) -> Result<r1_proto::LobeList, ApiError> {
        unsupported()
    }
    async fn cortex_lobe_resume(
        &self,
        _: r1_proto::LobeRef,
    ) -> Result<r1_proto::LobeList, ApiError> {
        unsupported()
    }
}

#[tokio::test]
async fn envelopes_caps_aliases_and_argument_checks() {
    let fake = Fake::default();
    let api: &dyn Api = &fake;

    let denied = call_tool(
        api,
        Caps::Read,
        "r1_session_start",
        json!({"workdir": "/w"}),
    )
    .await;
    assert_eq!(denied["ok"], false);
    assert_eq!(denied["error_code"], "permission_denied");
    assert!(denied["error_message"]
        .as_str()
        .unwrap()
        .contains("--caps write"));
    assert!(denied["links"]["related"].is_array());

    let started = call_tool(
        api,
        Caps::Write,
        "r1_session_start",
        json!({"workdir": "/w"}),
    )
    .await;
    assert_eq!(started["ok"], true, "{started}");
    assert_eq!(started["data"]["id"], "ses_1");
    assert_eq!(started["links"]["self"], "/v1/sessions/ses_1");
    assert_eq!(started["links"]["deprecations"], json!([]));

    let got = call_tool(
        api,
        Caps::Read,
        "r1.session.get",
        json!({"session_id": "ses_1"}),
    )
    .await;
    assert_eq!(got["ok"], true, "{got}");
    assert_eq!(got["data"]["engine"], "echo");

    let missing = call_tool(
        api,
        Caps::Read,
        "r1_session_get",
        json!({"session_id": "ses_9"}),
    )
    .await;
    assert_eq!(missing["error_code"], "not_found");
    assert_eq!(missing["error_message"], "session ses_9 not found");

    let unknown = call_tool(api, Caps::Write, "r1_nope", json!({})).await;
    assert_eq!(unknown["error_code"], "not_found");

    for bad in [
        json!({}),
        json!({"session_id": "../ses_1"}),
        json!({"session_id": "ses_1", "extra": 1}),
        json!("ses_1"),
    ] {
        let r = call_tool(api, Caps::Read, "r1_session_get", bad.clone()).await;
        assert_eq!(r["error_code"], "validation", "{bad} -> {r}");
        assert!(
            !r["error_message"].as_str().unwrap().contains("SessionArgs"),
            "{r}"
        );
    }

    let listed = call_tool(api, Caps::Read, "r1_session_list", Value::Null).await;
    assert_eq!(listed["data"]["sessions"][0]["id"], "ses_1");

    let lane = call_tool(
        api,
        Caps::Read,
        "r1_lanes_get",
        json!({"session_id": "ses_1", "lane": "main"}),
    )
    .await;
    assert_eq!(lane["data"]["status"], "running", "{lane}");
    let no_lane = call_tool(
        api,
        Caps::Read,
        "r1_lanes_get",
        json!({"session_id": "ses_1", "lane": "tool_x"}),
    )
    .await;
    assert_eq!(no_lane["error_code"], "not_found");

    let send = json!({"session_id": "ses_1", "text": "hi", "client_message_id": "k1"});
    let a = call_tool(api, Caps::Write, "r1_session_send", send.clone()).await;
    let b = call_tool(api, Caps::Write, "r1_session_send", send).await;
    assert_eq!(a["data"]["message_id"], b["data"]["message_id"]);
    assert_eq!(b["data"]["duplicate"], true);
}

/// `r1_bus_tail` and `r1_bus_replay` are the `session.tail` and `session.journal`
/// operations; the wait itself is the daemon's (tested end to end in `crates/r1`).
#[tokio::test]
async fn bus_tools_are_the_journal_operations() {
    let fake = Arc::new(Fake::default());
    fake.push(EventKind::SessionCreated, json!({}));
    fake.push(
        EventKind::SessionMessage,
        json!({"role": "assistant", "text": "echo: hi"}),
    );

    let page = call_tool(
        fake.as_ref(),
        Caps::Read,
        "r1_bus_tail",
        json!({"session_id": "ses_1", "since_seq": 2, "wait_ms": 5000}),
    )
    .await;
    assert_eq!(
        page["data"]["records"][0]["data"]["text"], "echo: hi",
        "{page}"
    );
    assert_eq!(page["data"]["next_seq"], 3);
    assert_eq!(page["links"]["self"], "/v1/sessions/ses_1/journal/tail");
    assert_eq!(fake.tails.lock().unwrap()[0].wait_ms, Some(5000));

    let missing = call_tool(
        fake.as_ref(),
        Caps::Read,
        "r1.bus.tail",
        json!({"session_id": "ses_1"}),
    )
    .await;
    assert_eq!(missing["error_code"], "validation", "{missing}");

    let replay = call_tool(
        fake.as_ref(),
        Caps::Read,
        "r1_bus_replay",
        json!({"session_id": "ses_1", "since_seq": 1, "limit": 1}),
    )
    .await;
    assert_eq!(replay["data"]["records"].as_array().unwrap().len(), 1);
    assert_eq!(replay["data"]["next_seq"], 2);
}

/// POSTs one JSON-RPC message (in the MCP session `session`, if any) and returns the
/// answer, read from a JSON body or the JSON-RPC `data:` line of an SSE one, and the
/// session id the answer carried.
async fn post_in(
    router: &axum::Router,
    session: Option<&str>,
    body: Value,
) -> (Value, Option<String>) {
    let mut req = Request::post("/mcp")
        .header("host", "127.0.0.1:7777")
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-11-25");
    if let Some(id) = session {
        req = req.header("mcp-session-id", id);
    }
    let req = req.body(Body::from(body.to_string())).unwrap();
    let resp = router.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let id = resp
        .headers()
        .get("mcp-session-id")
        .map(|v| v.to_str().unwrap().to_string());
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&bytes).to_string();
    assert_eq!(status, 200, "{text}");
    let json = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: ").or(Some(l)))
        .find_map(|l| {
            serde_json::from_str::<Value>(l)
                .ok()
                .filter(|v| v.get("jsonrpc").is_some())
        })
        .unwrap_or_else(|| panic!("no JSON-RPC answer in: {text}"));
    (json, id)
}

async fn post(router: &axum::Router, body: Value) -> Value {
    post_in(router, None, body).await.0
}

/// `initialize` opens a session: its id comes back, requests in it are answered, a
/// GET with it opens the notification stream, DELETE ends it; without a session a
/// call is answered statelessly.
#[tokio::test]
async fn http_sessions_have_a_get_stream_and_stateless_calls_still_work() {
    let api: Arc<dyn Api> = Arc::new(Fake::default());
    let router = axum::Router::new().nest_service(
        "/mcp",
        http_service(api, Arc::new(|| Caps::Read), Default::default()),
    );
    let (init, id) = post_in(
        &router,
        None,
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "test", "version": "1"}}}),
    )
    .await;
    let id = id.expect("initialize opens a session");
    let caps = &init["result"]["capabilities"];
    assert!(caps["resources"]["subscribe"] == true, "{init}");
    assert!(
        caps["logging"].is_object() && caps["completions"].is_object(),
        "{init}"
    );
    let req = Request::post("/mcp")
        .header("host", "127.0.0.1:7777")
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-11-25")
        .header("mcp-session-id", &id)
        .body(Body::from(
            json!({"jsonrpc": "2.0", "method": "notifications/initialized"}).to_string(),
        ))
        .unwrap();
    assert_eq!(router.clone().oneshot(req).await.unwrap().status(), 202);
    let (listed, _) = post_in(
        &router,
        Some(&id),
        json!({"jsonrpc": "2.0", "id": 2, "method": "resources/read", "params": {"uri": "r1://sessions"}}),
    )
    .await;
    let text = listed["result"]["contents"][0]["text"].as_str().unwrap();
    assert!(text.contains("ses_1"), "{listed}");

    let get = Request::get("/mcp")
        .header("host", "127.0.0.1:7777")
        .header("accept", "text/event-stream")
        .header("mcp-protocol-version", "2025-11-25")
        .header("mcp-session-id", &id)
        .body(Body::empty())
        .unwrap();
    let resp = router.clone().oneshot(get).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    drop(resp);
    let unknown = Request::get("/mcp")
        .header("host", "127.0.0.1:7777")
        .header("accept", "text/event-stream")
        .header("mcp-protocol-version", "2025-11-25")
        .header("mcp-session-id", "nope")
        .body(Body::empty())
        .unwrap();
    assert_eq!(router.clone().oneshot(unknown).await.unwrap().status(), 404);

    // Without a session id, a call is still answered, as plain JSON.
    let listed = post(
        &router,
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
               "params": {"name": "r1_session_list", "arguments": {}}}),
    )
    .await;
    assert_eq!(
        listed["result"]["structuredContent"]["ok"], true,
        "{listed}"
    );
    let end = Request::delete("/mcp")
        .header("host", "127.0.0.1:7777")
        .header("mcp-protocol-version", "2025-11-25")
        .header("mcp-session-id", &id)
        .body(Body::empty())
        .unwrap();
    assert!(router
        .clone()
        .oneshot(end)
        .await
        .unwrap()
        .status()
        .is_success());
}

#[tokio::test]
async fn http_service_mounts_in_axum_and_answers_json_rpc() {
    let api: Arc<dyn Api> = Arc::new(Fake::default());
    let router = axum::Router::new().nest_service(
        "/mcp",
        http_service(api, Arc::new(|| Caps::Read), Default::default()),
    );

    let init = post(
        &router,
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "test", "version": "1"}}}),
    )
    .await;
    assert_eq!(init["result"]["protocolVersion"], "2025-11-25", "{init}");
    assert_eq!(init["result"]["serverInfo"]["name"], "r1");

    let tools = post(
        &router,
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
    )
    .await;
    let names: Vec<_> = tools["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names.len(), 17, "{names:?}");
    for t in tools["result"]["tools"].as_array().unwrap() {
        assert_eq!(t["outputSchema"]["type"], "object", "{}", t["name"]);
        assert!(
            !t["inputSchema"].to_string().contains("\"null\""),
            "{}",
            t["name"]
        );
    }
    assert!(!names.iter().any(|n| n == "r1_session_start"));

    let listed = post(
        &router,
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
               "params": {"name": "r1_session_list", "arguments": {}}}),
    )
    .await;
    assert_eq!(
        listed["result"]["structuredContent"]["ok"], true,
        "{listed}"
    );
    assert_eq!(listed["result"]["isError"], false);
    let text: Value =
        serde_json::from_str(listed["result"]["content"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(text, listed["result"]["structuredContent"]);

    let denied = post(
        &router,
        json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call",
               "params": {"name": "r1_session_start", "arguments": {"workdir": "/w"}}}),
    )
    .await;
    assert_eq!(denied["result"]["isError"], true, "{denied}");
    assert_eq!(
        denied["result"]["structuredContent"]["error_code"],
        "permission_denied"
    );
}
