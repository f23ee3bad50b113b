//! The committed JSON Schema must match the wire types. Regenerate with
//! `R1_BLESS=1 cargo test -p r1-proto --test schema` after a deliberate change.

use std::path::PathBuf;

#[test]
fn committed_schema_matches_the_wire_types() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schema/r1.proto.v1.json");
    let generated = serde_json::to_string_pretty(&r1_proto::wire_schema()).unwrap() + "\n";
    if std::env::var_os("R1_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is out of date with r1-proto; run `R1_BLESS=1 cargo test -p r1-proto --test schema` and commit it",
        path.display()
    );
}

#[test]
fn error_codes_map_to_their_statuses() {
    use r1_proto::ErrorCode::*;
    let table = [
        (Validation, 400, "validation"),
        (NotFound, 404, "not_found"),
        (Conflict, 409, "conflict"),
        (AppendOnlyViolation, 409, "append_only_violation"),
        (PermissionDenied, 403, "permission_denied"),
        (BudgetExceeded, 429, "budget_exceeded"),
        (Timeout, 504, "timeout"),
        (CrashRecovery, 503, "crash_recovery"),
        (SchemaVersion, 426, "schema_version"),
        (Internal, 500, "internal"),
    ];
    for (code, status, name) in table {
        assert_eq!(code.http_status(), status);
        assert_eq!(code.as_str(), name);
        assert_eq!(serde_json::to_value(code).unwrap(), name);
    }
}

#[test]
fn event_kinds_round_trip_with_their_wire_names() {
    let rec: r1_proto::EventRecord = serde_json::from_str(
        r#"{"v":1,"seq":12,"at":"2026-11-22T10:00:00.123Z","kind":"session.delta","lane":"main","data":{"text":"hi"}}"#,
    )
    .unwrap();
    assert_eq!(rec.kind, r1_proto::EventKind::SessionDelta);
    assert_eq!(rec.kind.as_str(), "session.delta");
    let back = serde_json::to_value(&rec).unwrap();
    assert_eq!(back["kind"], "session.delta");
    assert!(serde_json::from_str::<r1_proto::EventRecord>(
        r#"{"v":1,"seq":1,"at":"x","kind":"session.bogus","lane":"main","data":{}}"#
    )
    .is_err());
}

/// The committed OpenAPI document must match the catalog. Regenerate with
/// `R1_BLESS=1 cargo test -p r1-proto --test schema` (the daemon serves the same
/// document at `GET /v1/openapi.json`).
#[test]
fn committed_openapi_matches_the_catalog() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
    let generated = serde_json::to_string_pretty(&r1_proto::openapi::document()).unwrap() + "\n";
    if std::env::var_os("R1_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/openapi.json is out of date with the r1-proto catalog; run \
         `R1_BLESS=1 cargo test -p r1-proto --test schema` and commit it"
    );
}

#[test]
fn openapi_has_every_operation_once() {
    let doc = r1_proto::openapi::document();
    let mut ids = Vec::new();
    for (_, methods) in doc["paths"].as_object().unwrap() {
        for (_, op) in methods.as_object().unwrap() {
            ids.push(op["operationId"].as_str().unwrap().to_string());
        }
    }
    ids.sort();
    let mut want: Vec<String> = r1_proto::OPERATIONS
        .iter()
        .map(|o| o.method.to_string())
        .collect();
    want.sort();
    assert_eq!(ids, want);
    let text = doc.to_string();
    assert!(
        !text.contains("uint64") && !text.contains("\"null\""),
        "not strict"
    );
}

#[test]
fn one_error_maps_to_every_transport() {
    let e = r1_proto::ApiError::not_found("session ses_9 not found");
    assert_eq!(e.http_status(), 404);
    let rpc = e.jsonrpc_error("session.get");
    assert_eq!(rpc["code"], r1_proto::JSONRPC_API_ERROR);
    assert_eq!(rpc["data"]["error_code"], "not_found");
    assert_eq!(rpc["data"]["links"]["self"], "session.get");
    let mcp = e.mcp_tool_result(r1_proto::Links::default());
    assert_eq!(mcp["isError"], true);
    assert_eq!(mcp["structuredContent"]["ok"], false);
    let text: serde_json::Value =
        serde_json::from_str(mcp["content"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(text, mcp["structuredContent"]);
    let sse: serde_json::Value = serde_json::from_str(&e.sse_error_data("/v1/x")).unwrap();
    assert_eq!(sse["error_code"], "not_found");
    assert_eq!(e.clone().with_status(404).cli_exit_code(), 1);
    let unreachable = r1_proto::ApiError::new(r1_proto::ErrorCode::CrashRecovery, "gone");
    assert_eq!(unreachable.cli_exit_code(), 4);
    assert_eq!(unreachable.with_status(503).cli_exit_code(), 1);
}

/// The committed event schema must match the payload types. Regenerate with
/// `R1_BLESS=1 cargo test -p r1-proto --test schema`.
#[test]
fn committed_events_schema_matches_the_types() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/events.schema.json");
    let generated =
        serde_json::to_string_pretty(&r1_proto::events::events_schema()).unwrap() + "\n";
    if std::env::var_os("R1_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/events.schema.json is out of date with r1-proto's event types; run \
         `R1_BLESS=1 cargo test -p r1-proto --test schema` and commit it"
    );
}

/// Journal lines as daemons have written them: copied from real journals, and one for
/// each producer's shape (external tools, denials, lanes, restarts), including fields
/// older daemons left out. Every one must still parse, and write back the same JSON.
const OLD_RECORDS: &[&str] = &[
    r#"{"v":1,"seq":1,"at":"2026-12-03T13:31:05.778Z","kind":"session.created","lane":"main","data":{"created_at":"2026-12-03T13:31:05.778Z","engine":"echo","id":"ses_ae74ec966f699422","model":null,"policy":{},"title":null,"token_budget":null,"workdir":"/tmp/.tmpnlzFLc"},"crc":"e1b1d788"}"#,
    r#"{"v":1,"seq":1,"at":"2026-12-03T13:31:05.778Z","kind":"session.created","lane":"main","data":{"created_at":"2026-12-03T13:31:05.778Z","engine":"openai","id":"ses_1","model":"gpt-5","policy":{"run_command":"allow","write_file":"deny","x":"ask"},"title":"t","token_budget":1000,"workdir":"/w"}}"#,
    r#"{"v":1,"seq":2,"at":"2026-12-03T13:31:06.309Z","kind":"session.message","lane":"main","data":{"client_message_id":null,"message_id":"msg_724f1b2df2239e09","role":"user","text":"fan 0"},"crc":"c779a2cb"}"#,
    r#"{"v":1,"seq":2,"at":"2026-12-03T13:31:06.309Z","kind":"session.message","lane":"main","data":{"client_message_id":"k1","message_id":"msg_1","role":"user","text":"hi"}}"#,
    r#"{"v":1,"seq":3,"at":"2026-12-03T13:31:06.311Z","kind":"session.state","lane":"main","data":{"message_id":"msg_724f1b2df2239e09","state":"busy"},"crc":"7e7ebfdf"}"#,
    r#"{"v":1,"seq":4,"at":"2026-12-03T13:31:06.316Z","kind":"session.delta","lane":"main","data":{"reply_to":"msg_724f1b2df2239e09","text":"echo: fa"},"crc":"1c0bc2a9"}"#,
    r#"{"v":1,"seq":6,"at":"2026-12-03T13:31:06.318Z","kind":"session.message","lane":"main","data":{"reply_to":"msg_724f1b2df2239e09","role":"assistant","text":"echo: fan 0","tool_calls":[],"usage":{"input_tokens":2,"output_tokens":3}},"crc":"6a4bea42"}"#,
    r#"{"v":1,"seq":6,"at":"2026-12-03T13:31:06.318Z","kind":"session.message","lane":"main","data":{"reply_to":"msg_1","role":"assistant","text":"","tool_calls":[{"arguments":{"command":"ls"},"id":"c1","name":"run_command"}],"usage":null}}"#,
    r#"{"v":1,"seq":7,"at":"2026-12-03T13:31:06.324Z","kind":"session.state","lane":"main","data":{"state":"idle"},"crc":"5499bfb6"}"#,
    r#"{"v":1,"seq":7,"at":"x","kind":"session.state","lane":"main","data":{"queued":"msg_1","state":"paused"}}"#,
    r#"{"v":1,"seq":7,"at":"x","kind":"session.state","lane":"main","data":{"state":"waiting_on_approval"}}"#,
    r#"{"v":1,"seq":8,"at":"x","kind":"approval.requested","lane":"main","data":{"approval_id":"apr_1","args":{"command":"ls"},"call_id":"c1","reply_to":"msg_1","tool":"run_command"}}"#,
    r#"{"v":1,"seq":9,"at":"x","kind":"approval.resolved","lane":"main","data":{"approval_id":"apr_1","decision":"allow"}}"#,
    r#"{"v":1,"seq":9,"at":"x","kind":"approval.resolved","lane":"main","data":{"approval_id":"apr_1","decision":"deny","reason":"the turn was cancelled"}}"#,
    r#"{"v":1,"seq":10,"at":"x","kind":"lane.created","lane":"tool_ab12c","data":{"call_id":"c1","lane":"tool_ab12c","tool":"run_command"}}"#,
    r#"{"v":1,"seq":11,"at":"x","kind":"tool.started","lane":"tool_ab12c","data":{"args":{"command":"ls"},"call_id":"c1","lane":"tool_ab12c","tool":"run_command"}}"#,
    r#"{"v":1,"seq":12,"at":"x","kind":"lane.delta","lane":"tool_ab12c","data":{"lane":"tool_ab12c","text":"a.txt\n"}}"#,
    r#"{"v":1,"seq":13,"at":"x","kind":"lane.killed","lane":"tool_ab12c","data":{"lane":"tool_ab12c"}}"#,
    r#"{"v":1,"seq":14,"at":"x","kind":"lane.status","lane":"tool_ab12c","data":{"lane":"tool_ab12c","status":"done"}}"#,
    r#"{"v":1,"seq":15,"at":"x","kind":"lane.status","lane":"tool_ab12c","data":{"lane":"tool_ab12c","pinned":true,"status":"running"}}"#,
    r#"{"v":1,"seq":16,"at":"x","kind":"tool.completed","lane":"tool_ab12c","data":{"call_id":"c1","content":"a.txt\n","is_error":false,"lane":"tool_ab12c","tool":"run_command"}}"#,
    r#"{"v":1,"seq":17,"at":"x","kind":"tool.completed","lane":"main","data":{"call_id":"c1","content":"the user denied the run_command call","denied":true,"is_error":true,"tool":"run_command"}}"#,
    r#"{"v":1,"seq":18,"at":"x","kind":"tool.started","lane":"main","data":{"args":{"cmd":"ls"},"call_id":"x1","external":true,"tool":"shell"}}"#,
    r#"{"v":1,"seq":19,"at":"x","kind":"tool.completed","lane":"main","data":{"call_id":"x1","content":"ok","external":true,"is_error":false}}"#,
    r#"{"v":1,"seq":85673,"at":"2026-12-03T14:05:36.503Z","kind":"session.cancelled","lane":"main","data":{"message_id":"msg_9afb78b603cfae97"},"crc":"0e2afa24"}"#,
    r#"{"v":1,"seq":86066,"at":"2026-12-03T14:05:36.525Z","kind":"session.paused","lane":"main","data":{"reason":"daemon shutdown"},"crc":"3e615f9e"}"#,
    r#"{"v":1,"seq":15,"at":"2026-12-03T13:02:49.228Z","kind":"session.resumed","lane":"main","data":{},"crc":"299aa5e6"}"#,
    r#"{"v":1,"seq":17,"at":"2026-12-03T13:02:49.239Z","kind":"session.ended","lane":"main","data":{},"crc":"5313de0e"}"#,
    r#"{"v":1,"seq":20,"at":"x","kind":"session.error","lane":"main","data":{"code":"budget_exceeded","message":"spent","message_id":"msg_1"}}"#,
    r#"{"v":1,"seq":21,"at":"x","kind":"session.error","lane":"main","data":{"interrupted":true,"message":"interrupted by daemon restart","message_id":null}}"#,
    r#"{"v":1,"seq":22,"at":"x","kind":"daemon.reloaded","lane":"main","data":{"daemon_id":"d1","pending_approvals":1}}"#,
    r#"{"v":1,"seq":22,"at":"x","kind":"session.resync","lane":"main","data":{"last_seq":3,"next_seq":4,"reason":"repaired"}}"#,
    r#"{"v":1,"seq":23,"at":"x","kind":"verify.completed","lane":"verify_ab12c","data":{"step":"test","ok":false,"exit_code":101,"duration_ms":1200,"command":"cargo test","summary":"1 test failed: t::a","failures":[{"file":"src/lib.rs","line":3,"test":"t::a","message":"assertion failed"}],"session_id":"ses_1","lane":"verify_ab12c"}}"#,
    r#"{"v":1,"seq":24,"at":"x","kind":"hook.ran","lane":"main","data":{"hook":"on-approval-request.sh","event":"on-approval-request","event_seq":9,"exit_code":0,"duration_ms":12,"action":"deny","reason":"rm -rf"}}"#,
    r#"{"v":1,"seq":25,"at":"x","kind":"hook.failed","lane":"main","data":{"hook":"on-message","event":"on-message","reason":"timed out after 30 s; its process group was killed","event_seq":7}}"#,
    r#"{"v":1,"seq":26,"at":"x","kind":"hook.blocked","lane":"main","data":{"hook":"pre-send","reason":"no secrets","text":"my password is x"}}"#,
    r#"{"v":1,"seq":27,"at":"x","kind":"session.compacted","lane":"main","data":{"upto_seq":20,"method":"summary","summary":"they read a file","tokens_before":40000,"tokens_after":900,"kept":6,"reason":"budget"}}"#,
    r#"{"v":1,"seq":28,"at":"x","kind":"cortex.note","lane":"main","data":{"note_id":"note_1","text":"tests fail","tags":["verify"],"critical":true,"source":"verify"}}"#,
    r#"{"v":1,"seq":29,"at":"x","kind":"cortex.lobe","lane":"main","data":{"lobe":"loop","paused":true}}"#,
    r#"{"v":1,"seq":30,"at":"x","kind":"session.message","lane":"main","data":{"reply_to":"msg_1","role":"assistant","text":"done","tool_calls":[],"usage":{"input_tokens":1200,"output_tokens":30,"cached_input_tokens":1024,"cost_usd":0.00123}}}"#,
    r#"{"v":1,"seq":31,"at":"x","kind":"session.compacted","lane":"main","data":{"upto_seq":20,"method":"summary","summary":"s","tokens_before":40000,"tokens_after":900,"kept":6,"reason":"forced","usage":{"input_tokens":9000,"output_tokens":200}}}"#,
];

/// Lines older daemons wrote with fields left out: they parse, with defaults.
const OLDER_RECORDS: &[&str] = &[
    r#"{"v":1,"seq":1,"at":"x","kind":"session.delta","lane":"main","data":{"text":"piece 0"}}"#,
    r#"{"v":1,"seq":2,"at":"x","kind":"session.state","lane":"main","data":{"state":"busy"}}"#,
    r#"{"v":1,"seq":3,"at":"x","kind":"session.error","lane":"main","data":{"interrupted":true,"message":"interrupted by daemon restart"}}"#,
    r#"{"v":1,"seq":4,"at":"x","kind":"approval.requested","lane":"main","data":{"approval_id":"a","reply_to":"m","tool":"t"}}"#,
    r#"{"v":1,"seq":5,"at":"x","kind":"lane.created","lane":"l","data":{"lane":"l","tool":"t"}}"#,
];

#[test]
fn every_record_kind_has_a_type_and_old_journals_still_parse() {
    use r1_proto::{EventData, EventKind, EventRecord};
    let mut seen = std::collections::HashSet::new();
    for line in OLD_RECORDS {
        let rec: EventRecord = serde_json::from_str(line).unwrap();
        let data = rec
            .event()
            .unwrap_or_else(|e| panic!("{} does not parse: {e}\n{line}", rec.kind.as_str()));
        assert_eq!(data.kind(), rec.kind);
        // Written back, the payload is the JSON the journal holds (null stays null,
        // absent stays absent).
        assert_eq!(data.to_value(), rec.data, "{line}");
        seen.insert(rec.kind);
    }
    for line in OLDER_RECORDS {
        let rec: EventRecord = serde_json::from_str(line).unwrap();
        rec.event()
            .unwrap_or_else(|e| panic!("{} does not parse: {e}\n{line}", rec.kind.as_str()));
    }
    // A sample of every kind, so a new kind needs a sample here.
    for kind in EventKind::ALL {
        assert!(seen.contains(&kind), "no sample of {}", kind.as_str());
    }
    // A payload under the wrong kind does not parse.
    assert!(EventData::parse(EventKind::LaneStatus, &serde_json::json!({"reason": "x"})).is_err());
    assert!(EventData::parse(
        EventKind::SessionState,
        &serde_json::json!({"state": "sleeping"})
    )
    .is_err());
}

/// Every record and bus kind is in the schema, and every payload and each of its
/// fields is documented there (schemars carries doc comments as `description`).
#[test]
fn every_event_kind_is_in_the_schema_and_documented() {
    let schema = r1_proto::events::events_schema();
    let defs = schema["$defs"].as_object().unwrap();
    let resolve = |s: &serde_json::Value| -> serde_json::Value {
        match s["$ref"].as_str() {
            Some(r) => defs[r.trim_start_matches("#/$defs/")].clone(),
            None => s.clone(),
        }
    };
    fn check(
        name: &str,
        s: &serde_json::Value,
        resolve: &dyn Fn(&serde_json::Value) -> serde_json::Value,
    ) {
        assert!(
            s["description"].as_str().is_some_and(|d| !d.is_empty()),
            "{name} has no doc comment"
        );
        if let Some(props) = s["properties"].as_object() {
            for (field, p) in props {
                if field == "role" {
                    continue; // the tag of `session.message`, documented on its variants
                }
                assert!(
                    p["description"].as_str().is_some_and(|d| !d.is_empty()),
                    "{name}.{field} has no doc comment"
                );
            }
        }
        for variant in s["oneOf"].as_array().into_iter().flatten() {
            check(name, &resolve(variant), resolve);
        }
    }
    let records = schema["records"].as_object().unwrap();
    for kind in r1_proto::EventKind::ALL {
        let s = records
            .get(kind.as_str())
            .unwrap_or_else(|| panic!("{} is not in the schema", kind.as_str()));
        check(kind.as_str(), &resolve(s), &resolve);
    }
    let bus = schema["bus"].as_object().unwrap();
    for kind in r1_proto::events::bus::KINDS {
        check(kind, &resolve(&bus[*kind]), &resolve);
    }
    assert_eq!(
        schema["oneOf"].as_array().unwrap().len(),
        r1_proto::EventKind::ALL.len()
    );
}
