//! MCP beyond tools: sessions as resources, their updates, and argument completion.
//!
//! - `r1://sessions` — the session list (`session.list`);
//! - `r1://sessions/{id}` — one session's view (`session.get`);
//! - `r1://sessions/{id}/journal` — its journal from the start, up to
//!   [`JOURNAL_PAGE`] records (`session.journal`; `?since_seq=N` for the next page);
//! - `r1://sessions/{id}/lanes/{lane}` — one lane (`lanes.get`);
//! - `r1://engines/{name}` — one engine of `engines.list`.
//!
//! `resources/subscribe` on any of them starts a watcher that sends
//! `notifications/resources/updated` when it changes, at most every [`UPDATE_GAP`]:
//! a session's resources change with its journal (followed with `session.tail`), the
//! list when a session comes, goes or changes state or seq (polled every
//! [`LIST_POLL`]). `completion/complete` offers session ids, lane ids and engine
//! names for the templates' arguments.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use r1_proto::{
    Api, ApiError, EmptyParams, ErrorCode, JournalParams, LaneRef, SessionRef, TailParams,
};
use rmcp::model::{
    CompleteRequestParams, CompleteResult, ListResourceTemplatesResult, ListResourcesResult,
    ReadResourceResult,
};
use rmcp::{ErrorData, Peer, RoleServer};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

/// The most records `r1://sessions/{id}/journal` answers at once.
pub const JOURNAL_PAGE: u64 = 1000;
/// The most resources one connection may watch at once.
pub const MAX_SUBSCRIPTIONS: usize = 32;
/// The least time between two updates of one resource.
pub const UPDATE_GAP: Duration = Duration::from_millis(250);
/// How often a watcher of `r1://sessions` looks at the list.
pub const LIST_POLL: Duration = Duration::from_secs(1);
/// How long one `session.tail` of a watcher waits, so it sees an unsubscribe.
const WATCH_WAIT_MS: u64 = 1_000;
/// The most values one completion answers (MCP's own limit).
const MAX_COMPLETIONS: usize = 100;

/// What a `r1://` URI names.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Sessions,
    Session(String),
    Journal(String, u64),
    Lane(String, String),
    Engine(String),
}

fn bad_uri(uri: &str) -> ErrorData {
    ErrorData::resource_not_found(
        format!(
            "no resource `{uri}`: r1 serves r1://sessions, r1://sessions/{{id}}, \
             r1://sessions/{{id}}/journal, r1://sessions/{{id}}/lanes/{{lane}} and \
             r1://engines/{{name}}"
        ),
        None,
    )
}

fn parse(uri: &str) -> Result<Target, ErrorData> {
    let rest = uri.strip_prefix("r1://").ok_or_else(|| bad_uri(uri))?;
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let parts: Vec<&str> = path.split('/').collect();
    let since = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("since_seq="))
        .map(|v| v.parse::<u64>().map_err(|_| bad_uri(uri)))
        .transpose()?
        .unwrap_or(1);
    let id = |s: &str| {
        if !s.is_empty()
            && s.len() <= 128
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            Ok(s.to_string())
        } else {
            Err(bad_uri(uri))
        }
    };
    match parts.as_slice() {
        ["sessions"] => Ok(Target::Sessions),
        ["sessions", s] => Ok(Target::Session(id(s)?)),
        ["sessions", s, "journal"] => Ok(Target::Journal(id(s)?, since)),
        ["sessions", s, "lanes", l] => Ok(Target::Lane(id(s)?, id(l)?)),
        ["engines", e] => Ok(Target::Engine(id(e)?)),
        _ => Err(bad_uri(uri)),
    }
}

/// An API error as a JSON-RPC error of a resource request.
fn rpc_error(e: ApiError) -> ErrorData {
    match e.code {
        ErrorCode::NotFound => ErrorData::resource_not_found(e.message, None),
        ErrorCode::Validation => ErrorData::invalid_params(e.message, None),
        _ => ErrorData::internal_error(e.message, None),
    }
}

fn json_of(v: impl serde::Serialize) -> Result<Value, ErrorData> {
    serde_json::to_value(v).map_err(|e| ErrorData::internal_error(e.to_string(), None))
}

fn decode<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, ErrorData> {
    serde_json::from_value(v).map_err(|e| ErrorData::internal_error(e.to_string(), None))
}

/// `resources/list`: the session list, the one fixed resource.
pub(crate) fn list() -> Result<ListResourcesResult, ErrorData> {
    decode(json!({"resources": [{
        "uri": "r1://sessions",
        "name": "sessions",
        "title": "r1 sessions",
        "description": "Every session the daemon has loaded, oldest first, with its state and last_seq.",
        "mimeType": "application/json",
    }]}))
}

/// `resources/templates/list`.
pub(crate) fn templates() -> Result<ListResourceTemplatesResult, ErrorData> {
    let t = |uri: &str, name: &str, description: &str| json!({"uriTemplate": uri, "name": name, "description": description, "mimeType": "application/json"});
    decode(json!({"resourceTemplates": [
        t("r1://sessions/{id}", "session", "One session: state, last_seq, pending approvals."),
        t("r1://sessions/{id}/journal", "journal", "A session's journal records, from the start (up to 1000; add ?since_seq=N for more)."),
        t("r1://sessions/{id}/lanes/{lane}", "lane", "One lane of a session: its tool, status and whether it is pinned."),
        t("r1://engines/{name}", "engine", "One engine the daemon can run sessions on."),
    ]}))
}

/// `resources/read` of `uri`.
pub(crate) async fn read(api: &dyn Api, uri: &str) -> Result<ReadResourceResult, ErrorData> {
    let body = match parse(uri)? {
        Target::Sessions => json_of(
            api.session_list(r1_proto::ListSessionsParams::default())
                .await
                .map_err(rpc_error)?,
        )?,
        Target::Session(id) => json_of(
            api.session_get(SessionRef::new(id))
                .await
                .map_err(rpc_error)?,
        )?,
        Target::Journal(id, since_seq) => json_of(
            api.session_journal(JournalParams {
                session_id: id,
                since_seq: Some(since_seq),
                limit: Some(JOURNAL_PAGE),
            })
            .await
            .map_err(rpc_error)?,
        )?,
        Target::Lane(session_id, lane_id) => json_of(
            api.lanes_get(LaneRef {
                session_id,
                lane_id,
            })
            .await
            .map_err(rpc_error)?,
        )?,
        Target::Engine(name) => {
            let engines = api.engines_list(EmptyParams {}).await.map_err(rpc_error)?;
            let engine = engines
                .engines
                .into_iter()
                .find(|e| e.name == name)
                .ok_or_else(|| {
                    ErrorData::resource_not_found(format!("no engine `{name}`"), None)
                })?;
            json_of(engine)?
        }
    };
    decode(
        json!({"contents": [{"uri": uri, "mimeType": "application/json", "text": body.to_string()}]}),
    )
}

/// `completion/complete`: session ids for `id`, lane ids (of the session in the
/// context's `id`) for `lane`, engine names for `name`; each filtered by prefix.
pub(crate) async fn complete(
    api: &dyn Api,
    p: CompleteRequestParams,
) -> Result<CompleteResult, ErrorData> {
    let prefix = p.argument.value.as_str();
    let template = serde_json::to_value(&p.r#ref)
        .ok()
        .and_then(|r| r.get("uri").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_default();
    let mut values: Vec<String> = match (template.as_str(), p.argument.name.as_str()) {
        (t, "id") if t.starts_with("r1://sessions/") => api
            .session_list(r1_proto::ListSessionsParams::default())
            .await
            .map_err(rpc_error)?
            .sessions
            .into_iter()
            .map(|s| s.id)
            .collect(),
        ("r1://sessions/{id}/lanes/{lane}", "lane") => {
            let id = p
                .context
                .as_ref()
                .and_then(|c| c.arguments.as_ref())
                .and_then(|a| a.get("id"))
                .cloned();
            match id {
                Some(id) => match api.lanes_list(SessionRef::new(id)).await {
                    Ok(l) => l.lanes.into_iter().map(|l| l.lane).collect(),
                    Err(_) => Vec::new(),
                },
                None => Vec::new(),
            }
        }
        ("r1://engines/{name}", "name") => api
            .engines_list(EmptyParams {})
            .await
            .map_err(rpc_error)?
            .engines
            .into_iter()
            .map(|e| e.name)
            .collect(),
        _ => Vec::new(),
    };
    values.retain(|v| v.starts_with(prefix));
    let total = values.len();
    values.truncate(MAX_COMPLETIONS);
    decode(
        json!({"completion": {"values": values, "total": total, "hasMore": total > MAX_COMPLETIONS}}),
    )
}

/// The resources one connection watches, each with the token that stops its watcher.
#[derive(Debug, Clone, Default)]
pub(crate) struct Watches(Arc<Mutex<HashMap<String, CancellationToken>>>);

impl Watches {
    /// Starts watching `uri` for `peer` (once: subscribing again changes nothing).
    pub(crate) async fn subscribe(
        &self,
        api: Arc<dyn Api>,
        peer: Peer<RoleServer>,
        uri: String,
    ) -> Result<(), ErrorData> {
        let target = parse(&uri)?;
        // Refuse a resource that does not exist now, as reading it would.
        read(api.as_ref(), &uri).await?;
        let stop = {
            let Ok(mut map) = self.0.lock() else {
                return Err(ErrorData::internal_error(
                    "the watch table is poisoned",
                    None,
                ));
            };
            if map.contains_key(&uri) {
                return Ok(());
            }
            if map.len() >= MAX_SUBSCRIPTIONS {
                return Err(ErrorData::invalid_request(
                    format!("this connection already watches {MAX_SUBSCRIPTIONS} resources; unsubscribe from one first"),
                    None,
                ));
            }
            let stop = CancellationToken::new();
            map.insert(uri.clone(), stop.clone());
            stop
        };
        let watches = self.clone();
        tokio::spawn(async move {
            watch(api.as_ref(), &peer, &uri, target, &stop).await;
            if let Ok(mut map) = watches.0.lock() {
                map.remove(&uri);
            }
        });
        Ok(())
    }

    /// Stops watching `uri`.
    pub(crate) fn unsubscribe(&self, uri: &str) {
        if let Some(stop) = self.0.lock().ok().and_then(|mut m| m.remove(uri)) {
            stop.cancel();
        }
    }

    /// Stops every watcher (the connection closed).
    pub(crate) fn stop_all(&self) {
        if let Ok(mut map) = self.0.lock() {
            for (_, stop) in map.drain() {
                stop.cancel();
            }
        }
    }
}

/// A fingerprint of the session list: ids, states and seqs.
async fn list_print(api: &dyn Api) -> Option<String> {
    let list = api
        .session_list(r1_proto::ListSessionsParams::default())
        .await
        .ok()?;
    Some(
        list.sessions
            .iter()
            .map(|s| format!("{}:{}:{}", s.id, s.state.as_str(), s.last_seq))
            .collect::<Vec<_>>()
            .join(","),
    )
}

/// Sends `notifications/resources/updated` for `uri` whenever it changes, until
/// `stop`, the client going away, or the session's end.
async fn watch(
    api: &dyn Api,
    peer: &Peer<RoleServer>,
    uri: &str,
    target: Target,
    stop: &CancellationToken,
) {
    let session = match &target {
        Target::Session(id) | Target::Journal(id, _) | Target::Lane(id, _) => Some(id.clone()),
        Target::Sessions => None,
        // An engine does not change while the daemon runs.
        Target::Engine(_) => return,
    };
    let mut since = match &session {
        Some(id) => match api.session_get(SessionRef::new(id.clone())).await {
            Ok(v) => v.last_seq + 1,
            Err(_) => return,
        },
        None => 0,
    };
    let mut print = list_print(api).await;
    loop {
        if peer.is_transport_closed() {
            return;
        }
        let changed = match &session {
            Some(id) => {
                let tail = api.session_tail(TailParams {
                    session_id: id.clone(),
                    since_seq: since,
                    wait_ms: Some(WATCH_WAIT_MS),
                    limit: Some(JOURNAL_PAGE),
                });
                let page = tokio::select! {
                    p = tail => p,
                    () = stop.cancelled() => return,
                };
                match page {
                    Ok(page) => {
                        let changed = !page.records.is_empty();
                        since = page.next_seq.max(since);
                        changed
                    }
                    Err(_) => return,
                }
            }
            None => {
                tokio::select! {
                    () = tokio::time::sleep(LIST_POLL) => {}
                    () = stop.cancelled() => return,
                }
                let now = list_print(api).await;
                let changed = now != print;
                print = now;
                changed
            }
        };
        if changed {
            let param = rmcp::model::ResourceUpdatedNotificationParam::new(uri.to_string());
            if peer.notify_resource_updated(param).await.is_err() {
                return;
            }
            tokio::select! {
                () = tokio::time::sleep(UPDATE_GAP) => {}
                () = stop.cancelled() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn uris_parse_and_bad_ones_are_refused() {
        assert_eq!(parse("r1://sessions").unwrap(), Target::Sessions);
        assert_eq!(
            parse("r1://sessions/ses_1").unwrap(),
            Target::Session("ses_1".into())
        );
        assert_eq!(
            parse("r1://sessions/ses_1/journal?since_seq=5").unwrap(),
            Target::Journal("ses_1".into(), 5)
        );
        assert_eq!(
            parse("r1://sessions/ses_1/lanes/tool_a").unwrap(),
            Target::Lane("ses_1".into(), "tool_a".into())
        );
        assert_eq!(
            parse("r1://engines/echo").unwrap(),
            Target::Engine("echo".into())
        );
        for bad in [
            "file:///etc/passwd",
            "r1://sessions/../x",
            "r1://nope",
            "r1://sessions/a/b",
            "r1://sessions/a/journal?since_seq=x",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
