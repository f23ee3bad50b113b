//! `tools/call`: from a tool name and its JSON arguments to a tool result, through the
//! catalog's [`Request::parse`] and [`dispatch`], exactly as HTTP and WebSocket calls
//! go. Errors become results by [`ApiError::mcp_tool_result`], the one MCP mapping.

use r1_proto::{dispatch, ApiError, ErrorCode, Links, OperationInfo, Request};
use serde_json::{json, Value};

use crate::Caps;

/// Calls the tool `name` (a wire name or its dotted alias) with `args` against `api`,
/// as a server running with `caps`, and returns the envelope:
/// `{ok: true, data, links}` or `{ok: false, error_code, error_message, links}`.
/// It never fails: an unknown tool is `not_found`, bad arguments are `validation`, a
/// mutating tool under [`Caps::Read`] is `permission_denied`.
pub async fn call_tool(api: &dyn r1_proto::Api, caps: Caps, name: &str, args: Value) -> Value {
    call_tool_result(api, caps, name, args)
        .await
        .get_mut("structuredContent")
        .map(Value::take)
        .unwrap_or(Value::Null)
}

/// [`call_tool`] as the whole MCP tool result: the envelope as `structuredContent` and
/// as one JSON text item, with `isError` on failure.
pub async fn call_tool_result(
    api: &dyn r1_proto::Api,
    caps: Caps,
    name: &str,
    args: Value,
) -> Value {
    let (op, args, deprecation) = match crate::legacy::resolve(name, &args) {
        Some(Ok(l)) => (r1_proto::operation(l.method), l.params, Some(l.deprecation)),
        Some(Err(e)) => {
            let mut l = links(format!("/mcp/tools/{name}"), Vec::new());
            l.deprecations.push(crate::legacy::note(name));
            return e.mcp_tool_result(l);
        }
        None => (r1_proto::operation_for_tool(name), args, None),
    };
    let fallback = || {
        let mut l = links(format!("/mcp/tools/{name}"), Vec::new());
        l.deprecations.extend(deprecation.clone());
        l
    };
    let Some(op) = op else {
        let e = ApiError::not_found(format!(
            "there is no tool named `{name}`; tools/list shows the tools this server offers"
        ));
        return e.mcp_tool_result(fallback());
    };
    if !caps.allows_op(op) {
        let message = if op.capability == r1_proto::Capability::Debug {
            format!(
                "`{name}` is an introspection tool, and this server runs with --caps {}; \
                 start it with `r1 mcp serve --caps debug` to allow it",
                caps.as_str()
            )
        } else {
            format!(
                "`{name}` changes state, and this server runs with read-only capabilities; \
                 start it with `r1 mcp serve --caps write` to allow it"
            )
        };
        let e = ApiError::new(ErrorCode::PermissionDenied, message);
        return e.mcp_tool_result(fallback());
    }
    let req = match Request::parse(op.method, args.clone()) {
        Ok(req) => req,
        Err(e) => return e.mcp_tool_result(fallback()),
    };
    let with_note = |mut l: Links| {
        l.deprecations.extend(deprecation.clone());
        l
    };
    match dispatch(api, req).await {
        Ok(data) => {
            let links = with_note(links_of(op, &args, &data));
            let env = json!({"ok": true, "links": links, "data": data});
            json!({
                "content": [{"type": "text", "text": env.to_string()}],
                "structuredContent": env,
                "isError": false,
            })
        }
        Err(e) => e.mcp_tool_result(with_note(links_of(op, &args, &Value::Null))),
    }
}

/// Whether calling the catalog tool `name` (wire name, alias or legacy name) under
/// `caps` would run a mutating operation: it exists, changes state and `caps` allows
/// it. The consent line is written for exactly these calls.
pub(crate) fn allowed_mutation(caps: Caps, name: &str) -> bool {
    let op = match crate::legacy::method_of(name) {
        Some(method) => r1_proto::operation(method),
        None => r1_proto::operation_for_tool(name),
    };
    op.is_some_and(|op| !op.read_only() && caps.allows_op(op))
}

fn links(self_link: String, related: Vec<String>) -> Links {
    Links {
        self_link,
        related,
        deprecations: Vec::new(),
    }
}

/// `links.self` is the resource the call addressed (the one it created, for a
/// create); `links.related` the operation's related resources that the arguments and
/// the result fill in.
fn links_of(op: &OperationInfo, args: &Value, result: &Value) -> Links {
    let sources = [args, result];
    let self_link = op
        .created
        .and_then(|t| r1_proto::catalog::fill(t, &[result]))
        .or_else(|| op.fill_path(args).ok())
        .unwrap_or_else(|| op.path.to_string());
    let related = op
        .related
        .iter()
        .filter_map(|t| r1_proto::catalog::fill(t, &sources))
        .filter(|l| *l != self_link)
        .collect();
    links(self_link, related)
}
