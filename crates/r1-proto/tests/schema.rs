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
