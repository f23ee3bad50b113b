//! [`Api`] over HTTP: every operation maps to its route.

use http::Method;
use r1_proto::{
    Ack, Api, ApiError, ApprovalDecision, EngineList, Handshake, Health, JournalPage, LaneList,
    RepairResult, ResumeAllResult, SendMessageParams, SendMessageResult, SessionList, SessionView,
    ShutdownParams, StartSessionParams,
};

use crate::{Client, ClientError};

/// Maps a client failure to the wire's codes: an unreachable or incompatible daemon is
/// `crash_recovery` / `schema_version`, an untrusted file `permission_denied`.
fn api_err(e: ClientError) -> ApiError {
    use r1_proto::ErrorCode;
    match e {
        ClientError::Api(e) => e,
        ClientError::Unreachable(_) => ApiError::new(
            ErrorCode::CrashRecovery,
            "the r1 daemon cannot be reached; it may be restarting, try again",
        ),
        ClientError::Incompatible { .. } => ApiError::new(ErrorCode::SchemaVersion, e.to_string()),
        ClientError::Untrusted(m) => ApiError::new(ErrorCode::PermissionDenied, m),
        ClientError::Protocol(_) => ApiError::new(
            ErrorCode::Internal,
            "the daemon sent an answer this client cannot read",
        ),
    }
}

const NO_BODY: Option<&()> = None;
const EMPTY: Option<&serde_json::Value> = Some(&serde_json::Value::Null);

#[async_trait::async_trait]
impl Api for Client {
    async fn handshake(&self) -> Result<Handshake, ApiError> {
        self.call(Method::GET, "/v1/handshake", NO_BODY)
            .await
            .map_err(api_err)
    }

    async fn health(&self) -> Result<Health, ApiError> {
        self.call(Method::GET, "/v1/health", NO_BODY)
            .await
            .map_err(api_err)
    }

    async fn shutdown(&self, params: ShutdownParams) -> Result<Ack, ApiError> {
        self.call(Method::POST, "/v1/shutdown", Some(&params))
            .await
            .map_err(api_err)
    }

    async fn session_start(&self, params: StartSessionParams) -> Result<SessionView, ApiError> {
        self.call(Method::POST, "/v1/sessions", Some(&params))
            .await
            .map_err(api_err)
    }

    async fn session_list(&self) -> Result<SessionList, ApiError> {
        self.call(Method::GET, "/v1/sessions", NO_BODY)
            .await
            .map_err(api_err)
    }

    async fn session_get(&self, id: &str) -> Result<SessionView, ApiError> {
        self.call(Method::GET, &format!("/v1/sessions/{id}"), NO_BODY)
            .await
            .map_err(api_err)
    }

    async fn session_send(
        &self,
        id: &str,
        params: SendMessageParams,
    ) -> Result<SendMessageResult, ApiError> {
        self.call(
            Method::POST,
            &format!("/v1/sessions/{id}/messages"),
            Some(&params),
        )
        .await
        .map_err(api_err)
    }

    async fn session_cancel(&self, id: &str) -> Result<SessionView, ApiError> {
        self.call(Method::POST, &format!("/v1/sessions/{id}/cancel"), EMPTY)
            .await
            .map_err(api_err)
    }

    async fn session_pause(&self, id: &str) -> Result<SessionView, ApiError> {
        self.call(Method::POST, &format!("/v1/sessions/{id}/pause"), EMPTY)
            .await
            .map_err(api_err)
    }

    async fn session_resume(&self, id: &str) -> Result<SessionView, ApiError> {
        self.call(Method::POST, &format!("/v1/sessions/{id}/resume"), EMPTY)
            .await
            .map_err(api_err)
    }

    async fn session_resume_all(&self) -> Result<ResumeAllResult, ApiError> {
        self.call(Method::POST, "/v1/sessions/resume", EMPTY)
            .await
            .map_err(api_err)
    }

    async fn session_kill(&self, id: &str) -> Result<SessionView, ApiError> {
        self.call(Method::DELETE, &format!("/v1/sessions/{id}"), EMPTY)
            .await
            .map_err(api_err)
    }

    async fn session_repair(&self, id: &str) -> Result<RepairResult, ApiError> {
        self.call(Method::POST, &format!("/v1/sessions/{id}/repair"), EMPTY)
            .await
            .map_err(api_err)
    }

    async fn session_journal(
        &self,
        id: &str,
        since_seq: u64,
        limit: usize,
    ) -> Result<JournalPage, ApiError> {
        self.call(
            Method::GET,
            &format!("/v1/sessions/{id}/journal?since_seq={since_seq}&limit={limit}"),
            NO_BODY,
        )
        .await
        .map_err(api_err)
    }

    async fn session_approve(
        &self,
        id: &str,
        approval_id: &str,
        decision: &str,
    ) -> Result<SessionView, ApiError> {
        let body = ApprovalDecision {
            decision: decision.to_string(),
        };
        self.call(
            Method::POST,
            &format!("/v1/sessions/{id}/approvals/{approval_id}"),
            Some(&body),
        )
        .await
        .map_err(api_err)
    }

    async fn lanes_list(&self, id: &str) -> Result<LaneList, ApiError> {
        self.call(Method::GET, &format!("/v1/sessions/{id}/lanes"), NO_BODY)
            .await
            .map_err(api_err)
    }

    async fn lane_kill(&self, id: &str, lane: &str) -> Result<LaneList, ApiError> {
        self.call(
            Method::POST,
            &format!("/v1/sessions/{id}/lanes/{lane}/kill"),
            EMPTY,
        )
        .await
        .map_err(api_err)
    }

    async fn lane_pin(&self, id: &str, lane: &str) -> Result<LaneList, ApiError> {
        self.call(
            Method::POST,
            &format!("/v1/sessions/{id}/lanes/{lane}/pin"),
            EMPTY,
        )
        .await
        .map_err(api_err)
    }

    async fn engines_list(&self) -> Result<EngineList, ApiError> {
        self.call(Method::GET, "/v1/engines", NO_BODY)
            .await
            .map_err(api_err)
    }
}
