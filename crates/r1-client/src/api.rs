//! [`Api`](r1_proto::Api) over HTTP: `Client` is a [`Remote`], so every catalog
//! operation is one generic call that fills the operation's path template from its
//! params and sends the rest as the query string (GET, DELETE) or the JSON body
//! (POST). No operation has code of its own here.

use http::Method;
use r1_proto::{ApiError, HttpMethod, OperationInfo, Remote};
use serde_json::{Map, Value};

use crate::{Client, ClientError, EventStream};

/// Maps a client failure to the wire's codes: an unreachable or incompatible daemon is
/// `crash_recovery` / `schema_version`, an untrusted file `permission_denied`.
pub(crate) fn api_err(e: ClientError) -> ApiError {
    use r1_proto::ErrorCode;
    match e {
        ClientError::Api(e) => e,
        ClientError::Unreachable(why) => ApiError::new(
            ErrorCode::CrashRecovery,
            format!("the r1 daemon cannot be reached ({why}); it may be restarting, try again"),
        ),
        ClientError::Incompatible { .. } => ApiError::new(ErrorCode::SchemaVersion, e.to_string()),
        ClientError::Untrusted(m) => ApiError::new(ErrorCode::PermissionDenied, m),
        ClientError::Protocol(_) => ApiError::new(
            ErrorCode::Internal,
            "the daemon sent an answer this client cannot read",
        ),
    }
}

#[async_trait::async_trait]
impl Remote for Client {
    async fn call_op(&self, op: &'static OperationInfo, params: Value) -> Result<Value, ApiError> {
        self.call_operation(op, params).await.map_err(api_err)
    }
}

/// The catalog operation a caller names as its dotted method (`session.send`), its
/// MCP tool (`r1_session_send`) or the tool's dotted alias (`r1.session.send`); an
/// operation without a tool is also found as `r1.` + its method.
pub fn resolve_operation(name: &str) -> Option<&'static OperationInfo> {
    r1_proto::catalog::operation(name)
        .or_else(|| r1_proto::catalog::operation_for_tool(name))
        .or_else(|| {
            name.strip_prefix("r1.")
                .and_then(r1_proto::catalog::operation)
        })
}

impl Client {
    /// Calls the catalog operation named `name` (see [`resolve_operation`]) with
    /// `params` (a JSON object): one generic path for every operation, for callers
    /// that hold a method name rather than a typed params struct. An unknown name is a
    /// `not_found` error.
    pub async fn call_method(&self, name: &str, params: Value) -> Result<Value, ClientError> {
        let op = resolve_operation(name).ok_or_else(|| {
            ClientError::Api(ApiError::not_found(format!(
                "no operation `{name}` in the catalog"
            )))
        })?;
        self.call_operation(op, params).await
    }

    /// Calls the catalog operation `op` with `params` (a JSON object), keeping the
    /// client's own error (for the CLI's exit codes).
    pub async fn call_operation(
        &self,
        op: &'static OperationInfo,
        params: Value,
    ) -> Result<Value, ClientError> {
        let mut fields = match params {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        let path = op
            .fill_path(&Value::Object(fields.clone()))
            .map_err(ClientError::Api)?;
        for f in op.path_fields() {
            fields.remove(f);
        }
        match op.http_method {
            HttpMethod::Post => {
                self.call(Method::POST, &path, Some(&Value::Object(fields)))
                    .await
            }
            HttpMethod::Get => {
                self.call(Method::GET, &with_query(path, &fields), NO_BODY)
                    .await
            }
            HttpMethod::Delete => {
                self.call(Method::DELETE, &with_query(path, &fields), NO_BODY)
                    .await
            }
        }
    }

    /// Opens a session's event stream (SSE) from `since_seq`: a transport route, not
    /// a catalog operation.
    pub async fn session_events(
        &self,
        session_id: &str,
        since_seq: u64,
    ) -> Result<EventStream, ClientError> {
        let id = r1_proto::catalog::percent_encode(session_id);
        self.stream(
            &format!("/v1/sessions/{id}/events?since_seq={since_seq}"),
            &[],
        )
        .await
    }

    /// Swaps the daemon's token for a fresh one (`POST /v1/auth/rotate`).
    pub async fn rotate_token(&self) -> Result<r1_proto::Ack, ClientError> {
        self.call(Method::POST, "/v1/auth/rotate", NO_BODY).await
    }

    /// Mints a single-use browser login code (`POST /v1/auth/code`): the code and its
    /// lifetime in seconds.
    pub async fn mint_login_code(&self) -> Result<(String, u64), ClientError> {
        let v: Value = self
            .call(
                Method::POST,
                "/v1/auth/code",
                Some(&Value::Object(Map::new())),
            )
            .await?;
        let code = v["code"]
            .as_str()
            .ok_or_else(|| ClientError::Protocol("no login code in the answer".into()))?;
        Ok((code.to_string(), v["expires_in_s"].as_u64().unwrap_or(60)))
    }
}

const NO_BODY: Option<&()> = None;

/// `path` with `fields` as its query string (strings as they are, arrays of strings
/// comma-separated, other values as JSON), each part percent-encoded.
fn with_query(path: String, fields: &Map<String, Value>) -> String {
    if fields.is_empty() {
        return path;
    }
    let enc = r1_proto::catalog::percent_encode;
    let query: Vec<String> = fields
        .iter()
        .map(|(k, v)| {
            let v = match v {
                Value::String(s) => s.clone(),
                Value::Array(a) if a.iter().all(Value::is_string) => a
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(","),
                other => other.to_string(),
            };
            format!("{}={}", enc(k), enc(&v))
        })
        .collect();
    format!("{path}?{}", query.join("&"))
}

#[cfg(test)]
mod tests {
    use super::resolve_operation;

    #[test]
    fn an_operation_is_found_by_method_tool_or_dotted_alias() {
        for name in ["session.send", "r1_session_send", "r1.session.send"] {
            assert_eq!(
                resolve_operation(name).map(|o| o.method),
                Some("session.send"),
                "{name}"
            );
        }
        // No MCP tool, still reachable under the r1. prefix.
        assert_eq!(
            resolve_operation("r1.daemon.health").map(|o| o.method),
            Some("daemon.health")
        );
        assert!(resolve_operation("session.nope").is_none());
        assert!(resolve_operation("r1.").is_none());
    }
}
