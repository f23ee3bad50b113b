//! `tools/call`: from a tool name and its JSON arguments to an envelope, through the
//! [`Api`] trait. This is the one place that turns an [`ApiError`] into the MCP
//! envelope; the wire codes are the same as HTTP's because the errors come from the
//! same `Api`.

use std::time::Duration;

use r1_proto::{
    Api, ApiError, ErrorCode, JournalPage, Links, SendMessageParams, StartSessionParams,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::catalog::{
    self, ApproveArgs, LaneArgs, NoArgs, ReplayArgs, SendArgs, SessionArgs, StartArgs, TailArgs,
};
use crate::Caps;

/// How often `r1_bus_tail` looks at the journal again while it waits. The `Api` has
/// no per-session subscription to wait on, and 50 ms is below what an agent notices
/// while costing the daemon one small read per tick.
const TAIL_POLL: Duration = Duration::from_millis(50);
/// The longest `r1_bus_tail` waits: a minute keeps one call under the request
/// timeouts MCP clients commonly use.
const TAIL_MAX_WAIT_MS: u64 = 60_000;
/// Journal page size when the caller gives none.
const DEFAULT_LIMIT: u64 = 500;
/// The largest page the daemon serves.
const MAX_LIMIT: u64 = 10_000;

/// What one call produced, before it is wrapped in the envelope.
struct Outcome {
    links: Links,
    result: Result<Value, ApiError>,
}

/// Calls the tool `name` (a wire name or its dotted alias) with `args` against `api`,
/// as a server running with `caps`, and returns the envelope:
/// `{ok: true, data, links}` or `{ok: false, error_code, error_message, links}`.
/// It never fails: an unknown tool is `not_found`, bad arguments are `validation`, a
/// mutating tool under [`Caps::Read`] is `permission_denied`.
pub async fn call_tool(api: &dyn Api, caps: Caps, name: &str, args: Value) -> Value {
    let fallback = links(format!("/mcp/tools/{name}"), Vec::new());
    let outcome = match catalog::find(name) {
        None => Outcome {
            links: fallback,
            result: Err(ApiError::not_found(format!(
                "there is no tool named `{name}`; tools/list shows the tools this server offers"
            ))),
        },
        Some(spec) if !caps.allows(spec.mutating) => Outcome {
            links: fallback,
            result: Err(ApiError::new(
                ErrorCode::PermissionDenied,
                format!(
                    "`{}` changes state, and this server runs with read-only capabilities; \
                     start it with `r1 mcp serve --caps write` to allow it",
                    spec.name
                ),
            )),
        },
        Some(spec) => {
            let args = if args.is_null() { json!({}) } else { args };
            match run(api, spec.name, args).await {
                Ok(outcome) => outcome,
                Err(e) => Outcome {
                    links: fallback,
                    result: Err(e),
                },
            }
        }
    };
    envelope(outcome)
}

/// The envelope of an outcome.
fn envelope(outcome: Outcome) -> Value {
    match outcome.result {
        Ok(data) => json!({ "ok": true, "data": data, "links": outcome.links }),
        Err(e) => json!({
            "ok": false,
            "error_code": e.code.as_str(),
            "error_message": e.message,
            "links": outcome.links,
        }),
    }
}

fn links(self_link: String, related: Vec<String>) -> Links {
    Links {
        self_link,
        related,
        deprecations: Vec::new(),
    }
}

/// The resources of a session an agent may want next, other than `self_link`.
fn session_links(id: &str, self_link: String) -> Links {
    let related = [
        format!("/v1/sessions/{id}"),
        format!("/v1/sessions/{id}/journal"),
        format!("/v1/sessions/{id}/lanes"),
    ]
    .into_iter()
    .filter(|l| *l != self_link)
    .collect();
    links(self_link, related)
}

/// Parses the arguments of `tool`; a mismatch is a `validation` error that names the
/// tool and the offending field (serde's message, which names fields, not Rust types).
fn parse<T: DeserializeOwned>(tool: &str, args: Value) -> Result<T, ApiError> {
    if !args.is_object() {
        return Err(ApiError::validation(format!(
            "the arguments of `{tool}` must be a JSON object"
        )));
    }
    serde_json::from_value(args)
        .map_err(|e| ApiError::validation(format!("invalid arguments for `{tool}`: {e}")))
}

/// Checks an id that becomes a path segment: letters, digits, `_` and `-` only, so a
/// caller cannot steer the request to another resource.
fn check_id(field: &str, value: &str) -> Result<(), ApiError> {
    let ok = !value.is_empty()
        && value.len() <= 128
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ApiError::validation(format!(
            "`{field}` must be 1 to 128 letters, digits, `_` or `-`"
        )))
    }
}

fn data<T: Serialize>(value: Result<T, ApiError>) -> Result<Value, ApiError> {
    value.and_then(|v| {
        serde_json::to_value(v)
            .map_err(|_| ApiError::internal("the daemon's answer could not be encoded"))
    })
}

fn page_limit(limit: Option<u64>) -> usize {
    let limit = limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    usize::try_from(limit).unwrap_or(usize::MAX)
}

/// Runs one tool whose name is known and allowed.
async fn run(api: &dyn Api, tool: &str, args: Value) -> Result<Outcome, ApiError> {
    let outcome = match tool {
        "r1_session_start" => {
            let a: StartArgs = parse(tool, args)?;
            let result = api
                .session_start(StartSessionParams {
                    workdir: a.workdir,
                    engine: a.engine,
                    model: a.model,
                    title: a.title,
                    policy: None,
                    token_budget: None,
                })
                .await;
            let links = match &result {
                Ok(view) => session_links(&view.id, format!("/v1/sessions/{}", view.id)),
                Err(_) => links("/v1/sessions".into(), Vec::new()),
            };
            Outcome {
                links,
                result: data(result),
            }
        }
        "r1_session_send" => {
            let a: SendArgs = parse(tool, args)?;
            check_id("session_id", &a.session_id)?;
            let params = SendMessageParams {
                text: a.text,
                client_message_id: a.client_message_id,
            };
            Outcome {
                links: session_links(
                    &a.session_id,
                    format!("/v1/sessions/{}/messages", a.session_id),
                ),
                result: data(api.session_send(&a.session_id, params).await),
            }
        }
        "r1_session_repair" => {
            let a: SessionArgs = parse(tool, args)?;
            let id = a.session_id.as_str();
            check_id("session_id", id)?;
            Outcome {
                links: session_links(id, format!("/v1/sessions/{id}/repair")),
                result: data(api.session_repair(id).await),
            }
        }
        "r1_session_cancel" | "r1_session_get" | "r1_session_resume" | "r1_lanes_list" => {
            let a: SessionArgs = parse(tool, args)?;
            let id = a.session_id.as_str();
            check_id("session_id", id)?;
            let (path, result) = match tool {
                "r1_session_cancel" => ("/cancel", data(api.session_cancel(id).await)),
                "r1_session_resume" => ("/resume", data(api.session_resume(id).await)),
                "r1_lanes_list" => ("/lanes", data(api.lanes_list(id).await)),
                _ => ("", data(api.session_get(id).await)),
            };
            Outcome {
                links: session_links(id, format!("/v1/sessions/{id}{path}")),
                result,
            }
        }
        "r1_session_resume_all" => {
            let _: NoArgs = parse(tool, args)?;
            Outcome {
                links: links(
                    "/v1/sessions/resume".into(),
                    vec!["/v1/sessions".to_string()],
                ),
                result: data(api.session_resume_all().await),
            }
        }
        "r1_session_list" => {
            let _: NoArgs = parse(tool, args)?;
            Outcome {
                links: links("/v1/sessions".into(), Vec::new()),
                result: data(api.session_list().await),
            }
        }
        "r1_session_approve" => {
            let a: ApproveArgs = parse(tool, args)?;
            check_id("session_id", &a.session_id)?;
            check_id("approval_id", &a.approval_id)?;
            let result = api
                .session_approve(&a.session_id, &a.approval_id, a.decision.as_str())
                .await;
            Outcome {
                links: session_links(
                    &a.session_id,
                    format!("/v1/sessions/{}/approvals/{}", a.session_id, a.approval_id),
                ),
                result: data(result),
            }
        }
        "r1_lanes_get" | "r1_lanes_kill" | "r1_lanes_pin" => {
            let a: LaneArgs = parse(tool, args)?;
            let (id, lane) = (a.session_id.as_str(), a.lane.as_str());
            check_id("session_id", id)?;
            check_id("lane", lane)?;
            let (path, result) = match tool {
                "r1_lanes_kill" => ("/kill", data(api.lane_kill(id, lane).await)),
                "r1_lanes_pin" => ("/pin", data(api.lane_pin(id, lane).await)),
                _ => ("", lane_get(api, id, lane).await),
            };
            Outcome {
                links: session_links(id, format!("/v1/sessions/{id}/lanes/{lane}{path}")),
                result,
            }
        }
        "r1_bus_tail" => {
            let a: TailArgs = parse(tool, args)?;
            check_id("session_id", &a.session_id)?;
            let wait = Duration::from_millis(a.wait_ms.unwrap_or(0).min(TAIL_MAX_WAIT_MS));
            let result = tail(api, &a.session_id, a.since_seq, page_limit(a.limit), wait).await;
            Outcome {
                links: session_links(
                    &a.session_id,
                    format!("/v1/sessions/{}/journal", a.session_id),
                ),
                result: data(result),
            }
        }
        "r1_bus_replay" => {
            let a: ReplayArgs = parse(tool, args)?;
            check_id("session_id", &a.session_id)?;
            let result = api
                .session_journal(&a.session_id, a.since_seq, page_limit(a.limit))
                .await;
            Outcome {
                links: session_links(
                    &a.session_id,
                    format!("/v1/sessions/{}/journal", a.session_id),
                ),
                result: data(result),
            }
        }
        other => {
            // Every name in the catalog has an arm above; reaching this is a bug in
            // this crate, reported as such rather than as the caller's mistake.
            tracing::error!(tool = other, "catalog tool without a dispatcher arm");
            return Err(ApiError::internal(format!(
                "`{other}` is listed but not implemented"
            )));
        }
    };
    Ok(outcome)
}

/// `r1_lanes_get`: the `Api` lists lanes; one lane is picked from the list.
async fn lane_get(api: &dyn Api, id: &str, lane: &str) -> Result<Value, ApiError> {
    let list = api.lanes_list(id).await?;
    let found = list
        .lanes
        .into_iter()
        .find(|l| l.lane == lane)
        .ok_or_else(|| ApiError::not_found(format!("lane {lane} not found in session {id}")))?;
    data(Ok(found))
}

/// `r1_bus_tail`: a journal page from `since`, waiting up to `wait` for the first
/// record when there is none yet.
async fn tail(
    api: &dyn Api,
    id: &str,
    since: u64,
    limit: usize,
    wait: Duration,
) -> Result<JournalPage, ApiError> {
    let deadline = Instant::now() + wait;
    loop {
        let page = api.session_journal(id, since, limit).await?;
        let now = Instant::now();
        if !page.records.is_empty() || now >= deadline {
            return Ok(page);
        }
        tokio::time::sleep(TAIL_POLL.min(deadline - now)).await;
    }
}
