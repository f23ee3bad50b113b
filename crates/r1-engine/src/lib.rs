//! The r1 agent: the [`Provider`] trait with its one streaming primitive, the built-in
//! providers, and the turn loop that turns a user message into events. The engine
//! never touches files of the state directory: it hands every event to a
//! [`TurnSink`], and the daemon's hub journals it.

mod echo;
mod turn;

pub use echo::EchoProvider;
pub use turn::{run_turn, SinkError, TurnOutcome, TurnSink};

use futures_util::stream::BoxStream;
use serde::{Deserialize, Serialize};

/// Who said a message in the conversation a provider sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The person (or client) driving the session.
    User,
    /// The model.
    Assistant,
}

/// One message of the conversation context.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Who said it.
    pub role: Role,
    /// What was said.
    pub text: String,
}

/// What a provider is asked for: the model and the conversation so far, newest last.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderRequest {
    /// The model, when the engine has a choice.
    pub model: Option<String>,
    /// The conversation, newest message last.
    pub messages: Vec<ChatMessage>,
}

/// One item of a provider's stream.
#[derive(Debug, Clone, PartialEq)]
pub enum ProviderEvent {
    /// A piece of assistant text.
    TextDelta(String),
    /// Token usage of the request.
    Usage {
        /// Prompt tokens.
        input_tokens: u64,
        /// Completion tokens.
        output_tokens: u64,
    },
    /// The model finished; `reason` as the provider says it (`stop`, `length`, …).
    Finish {
        /// Why the model stopped.
        reason: String,
    },
}

/// Why a provider failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct ProviderError(pub String);

/// A model provider. One streaming primitive; everything else is derived from it.
#[async_trait::async_trait]
pub trait Provider: Send + Sync {
    /// The engine name (`echo`, `openai`, …).
    fn name(&self) -> &str;

    /// Starts one model request and returns its stream of events.
    async fn stream(
        &self,
        req: ProviderRequest,
    ) -> Result<BoxStream<'static, Result<ProviderEvent, ProviderError>>, ProviderError>;
}
