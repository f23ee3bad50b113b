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
