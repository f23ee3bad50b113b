//! The turn loop: one user message in, events out.

use futures_util::StreamExt;
use r1_proto::EventKind;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::{Provider, ProviderEvent, ProviderRequest};

/// Why the sink refused an event (the journal failed or the disk is full).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct SinkError(pub String);

/// Where a turn's events go. The daemon's hub implements it by journaling.
#[async_trait::async_trait]
pub trait TurnSink: Send + Sync {
    /// Records one event in `lane`; `durable` asks for fdatasync before returning.
    async fn emit(
        &self,
        kind: EventKind,
        lane: &str,
        data: Value,
        durable: bool,
    ) -> Result<u64, SinkError>;
}

/// How a turn ended.
#[derive(Debug, Clone, PartialEq)]
pub enum TurnOutcome {
    /// The model answered `text`.
    Completed {
        /// The whole assistant answer.
        text: String,
    },
    /// A client cancelled the turn.
    Cancelled,
    /// The provider or the sink failed; the message says why.
    Failed(String),
}

/// Runs one turn: streams the provider's answer into `session.delta` records, then
/// records the whole answer as an assistant `session.message`. Cancellation aborts the
/// provider request at once (the stream is dropped).
pub async fn run_turn(
    provider: &dyn Provider,
    req: ProviderRequest,
    sink: &dyn TurnSink,
    message_id: &str,
    cancel: &CancellationToken,
) -> TurnOutcome {
    let mut stream = tokio::select! {
        _ = cancel.cancelled() => return TurnOutcome::Cancelled,
        s = provider.stream(req) => match s {
            Ok(s) => s,
            Err(e) => return TurnOutcome::Failed(format!("{} provider: {e}", provider.name())),
        },
    };
    let mut text = String::new();
    let mut usage = Value::Null;
    loop {
        let next = tokio::select! {
            _ = cancel.cancelled() => return TurnOutcome::Cancelled,
            n = stream.next() => n,
        };
        match next {
            None => break,
            Some(Err(e)) => {
                return TurnOutcome::Failed(format!("{} provider: {e}", provider.name()))
            }
            Some(Ok(ProviderEvent::TextDelta(d))) => {
                text.push_str(&d);
                if let Err(e) = sink
                    .emit(
                        EventKind::SessionDelta,
                        "main",
                        json!({"text": d, "reply_to": message_id}),
                        false,
                    )
                    .await
                {
                    return TurnOutcome::Failed(e.0);
                }
            }
            Some(Ok(ProviderEvent::Usage {
                input_tokens,
                output_tokens,
            })) => usage = json!({"input_tokens": input_tokens, "output_tokens": output_tokens}),
            Some(Ok(ProviderEvent::Finish { .. })) => break,
            Some(Ok(
                ProviderEvent::ToolCallStart { .. }
                | ProviderEvent::ToolCallDelta { .. }
                | ProviderEvent::ExternalToolCall { .. }
                | ProviderEvent::ExternalToolResult { .. },
            )) => {}
        }
    }
    if cancel.is_cancelled() {
        return TurnOutcome::Cancelled;
    }
    let data = json!({
        "role": "assistant",
        "text": text,
        "reply_to": message_id,
        "usage": usage,
    });
    match sink
        .emit(EventKind::SessionMessage, "main", data, false)
        .await
    {
        Ok(_) => TurnOutcome::Completed { text },
        Err(e) => TurnOutcome::Failed(e.0),
    }
}
