//! The catalog's shape: wire names, capabilities, and the committed catalog page.
//! Regenerate the page with `R1_BLESS=1 cargo test -p r1-mcp --test catalog` after a
//! deliberate change to a tool.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use r1_mcp::{catalog, print_tools, Caps};

/// `^[a-zA-Z0-9_-]{1,64}$`, the names Claude Code, Codex and Copilot accept.
fn is_wire_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[test]
fn every_tool_name_is_a_valid_wire_name_with_a_dotted_alias() {
    let tools = catalog(Caps::Write);
    assert_eq!(tools.len(), 53);
    for t in &tools {
        assert!(is_wire_name(t.name), "{} is not a valid tool name", t.name);
        assert_eq!(t.alias.replace('.', "_"), t.name, "alias of {}", t.name);
        assert_eq!(t.output_schema["type"], "object", "{}", t.name);
        assert!(
            t.output_schema["properties"]["data"].is_object(),
            "{}",
            t.name
        );
        assert!(
            !t.title.is_empty() && t.description.len() > 40,
            "{}",
            t.name
        );
        assert_eq!(t.input_schema["type"], "object", "{}", t.name);
        assert_eq!(t.hints.read_only, !t.mutating, "{}", t.name);
    }
    let mut names: Vec<_> = tools.iter().map(|t| t.name).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), tools.len(), "duplicate tool names");
}

#[test]
fn read_caps_hide_the_mutating_tools() {
    let read: Vec<_> = catalog(Caps::Read).into_iter().map(|t| t.name).collect();
    assert_eq!(
        read,
        [
            "r1_session_list",
            "r1_session_get",
            "r1_lanes_list",
            "r1_lanes_get",
            "r1_cortex_notes",
            "r1_cortex_lobes_list",
            "r1_bus_tail",
            "r1_bus_replay",
            "r1_engines_list",
            "r1_worktree_list",
            "r1_worktree_diff",
            "r1_workdir_read",
            "r1_mission_list",
            "r1_mission_get",
            "r1_search",
            "r1_tui_snapshot",
            "r1_lanes_subscribe"
        ]
    );
    assert_eq!(Caps::default(), Caps::Read);
    for t in catalog(Caps::Write) {
        assert_eq!(read.contains(&t.name), !t.mutating, "{}", t.name);
    }
}

#[test]
fn debug_caps_add_the_introspection_tools() {
    let debug: Vec<_> = catalog(Caps::Debug).into_iter().map(|t| t.name).collect();
    let write: Vec<_> = catalog(Caps::Write).into_iter().map(|t| t.name).collect();
    assert_eq!(debug.len(), write.len() + 2, "{debug:?}");
    assert!(debug.contains(&"r1_session_debug_state"), "{debug:?}");
    assert!(debug.contains(&"r1_tui_get_model"), "{debug:?}");
    assert!(!write.contains(&"r1_tui_get_model"), "{write:?}");
    assert!(!write.contains(&"r1_session_debug_state"), "{write:?}");
    assert!(write.iter().all(|n| debug.contains(n)));
    let t = catalog(Caps::Debug)
        .into_iter()
        .find(|t| t.name == "r1_session_debug_state")
        .unwrap();
    assert!(t.debug && t.hints.read_only && !t.mutating);
    assert_eq!(t.alias, "r1.session.debug_state");
    assert_eq!("debug".parse::<Caps>(), Ok(Caps::Debug));
}

#[test]
fn non_idempotent_tools_say_so() {
    for t in catalog(Caps::Write) {
        if t.mutating && !t.hints.idempotent {
            assert!(
                t.description.contains("NOT idempotent")
                    || t.description.contains("Idempotent only"),
                "{} must say it is not idempotent",
                t.name
            );
        }
    }
}

#[test]
fn input_schemas_describe_required_fields() {
    let tools = catalog(Caps::Write);
    let start = tools.iter().find(|t| t.name == "r1_session_start").unwrap();
    assert_eq!(
        start.input_schema["required"],
        serde_json::json!(["workdir"])
    );
    assert_eq!(start.input_schema["additionalProperties"], false);
    let approve = tools
        .iter()
        .find(|t| t.name == "r1_session_approve")
        .unwrap();
    let decision = &approve.input_schema["properties"]["decision"];
    assert!(decision.to_string().contains("allow") && decision.to_string().contains("deny"));
    let plain: serde_json::Value = serde_json::from_str(&print_tools(Caps::Read, false)).unwrap();
    assert_eq!(plain["tools"].as_array().unwrap().len(), 17);
    let pin = tools.iter().find(|t| t.name == "r1_lanes_pin").unwrap();
    assert_eq!(pin.input_schema["properties"]["pinned"]["type"], "boolean");
    assert!(pin.input_schema["properties"].get("lane_id").is_some());
    assert_eq!(plain["tools"][0]["annotations"]["readOnlyHint"], true);
}

#[test]
fn committed_catalog_page_matches_the_tools() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/AGENTIC-API-CATALOG.md");
    let generated = print_tools(Caps::Debug, true);
    if std::env::var_os("R1_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/AGENTIC-API-CATALOG.md is out of date with the r1-mcp catalog; run \
         `R1_BLESS=1 cargo test -p r1-mcp --test catalog` and commit it"
    );
}

/// The names in the web UI's `data-api` attributes (`data-api="x"` in HTML,
/// `"data-api": "x"` in the scripts): every `.html` and `.js` file of `web/`.
fn ui_operations() -> Vec<String> {
    let web = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../web");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&web)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| matches!(p.extension().and_then(|x| x.to_str()), Some("html" | "js")))
        .collect();
    files.sort();
    assert!(files.iter().any(|p| p.ends_with("app.js")), "{files:?}");
    let mut names = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for marker in ["data-api=\"", "\"data-api\": \""] {
            for (i, _) in text.match_indices(marker) {
                let rest = &text[i + marker.len()..];
                let name = &rest[..rest.find('"').unwrap()];
                // The comment that explains the attribute names no operation.
                if !name.starts_with('<') {
                    names.push(name.to_string());
                }
            }
        }
    }
    names.sort();
    names.dedup();
    names
}

/// UI parity: every action the web UI offers is a catalog operation with an MCP tool
/// (`subscribe` is the WebSocket's own method: agents read events with
/// `r1_bus_tail`).
#[test]
fn every_ui_action_is_an_operation_and_a_tool() {
    let names = ui_operations();
    assert!(names.len() >= 10, "{names:?}");
    let tools = catalog(Caps::Write);
    for name in &names {
        if name == "subscribe" {
            continue;
        }
        let op = r1_proto::operation(name)
            .unwrap_or_else(|| panic!("data-api={name:?} is not in r1_proto::OPERATIONS"));
        assert!(
            tools
                .iter()
                .any(|t| t.operation.is_some_and(|o| o.method == op.method)),
            "data-api={name:?} has no MCP tool"
        );
    }
}
