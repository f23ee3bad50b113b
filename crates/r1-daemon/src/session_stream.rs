//! Session event streams for WebSocket subscribers.

use axum::extract::ws::Message;
use r1_proto::ApiError;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::Hub;

/// Starts forwarding a session's records from `since` to a WebSocket subscriber.
pub fn spawn_ws_forwarder(
    _hub: Hub,
    session_id: String,
    _since: u64,
    _sub: String,
    _out: mpsc::Sender<Message>,
    _overflow: CancellationToken,
) -> Result<JoinHandle<()>, ApiError> {
    Err(ApiError::not_found(format!(
        "session {session_id} not found"
    )))
}
