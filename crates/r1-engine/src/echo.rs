//! `echo`: the built-in offline provider. It is not a model: it answers
//! `echo: <text>`, streamed in several deltas, so every part of r1 works and is
//! tested with no network and no keys.

use std::time::Duration;

use futures_util::stream::{self, BoxStream, StreamExt};

use crate::{Provider, ProviderError, ProviderEvent, ProviderRequest, Role};

/// The smallest number of characters in one streamed delta.
const DELTA_CHARS: usize = 8;
/// The most deltas one answer is split into, so a long message streams in a few
/// records rather than thousands.
const MAX_DELTAS: usize = 16;
/// The pause between deltas of a message that starts with `/slow ` — long enough for
/// tests and people to watch a turn stream and cancel it.
const SLOW_DELAY: Duration = Duration::from_millis(200);

/// The echo provider.
#[derive(Debug, Clone, Default)]
pub struct EchoProvider;

impl EchoProvider {
    /// The answer to `text`.
    pub fn answer(text: &str) -> String {
        format!("echo: {text}")
    }
}

#[async_trait::async_trait]
impl Provider for EchoProvider {
    fn name(&self) -> &str {
        "echo"
    }

    async fn stream(
        &self,
        req: ProviderRequest,
    ) -> Result<BoxStream<'static, Result<ProviderEvent, ProviderError>>, ProviderError> {
        let last = req
            .messages
            .iter()
            .rev()
            .find(|m| m.role == Role::User)
            .filter(|m| m.tool_result.is_none())
            .map(|m| m.text.clone())
            .unwrap_or_default();
        let (delay, text) = match last.strip_prefix("/slow ") {
            Some(rest) => (Some(SLOW_DELAY), rest.to_string()),
            None => (None, last),
        };
        let answer = EchoProvider::answer(&text);
        let chars: Vec<char> = answer.chars().collect();
        let size = DELTA_CHARS.max(chars.len().div_ceil(MAX_DELTAS));
        let mut events: Vec<ProviderEvent> = chars
            .chunks(size)
            .map(|c| ProviderEvent::TextDelta(c.iter().collect()))
            .collect();
        events.push(ProviderEvent::Usage {
            input_tokens: text.split_whitespace().count() as u64,
            output_tokens: answer.split_whitespace().count() as u64,
        });
        events.push(ProviderEvent::Finish {
            reason: "stop".into(),
        });
        let s = stream::iter(events).then(move |e| async move {
            match delay {
                Some(d) if matches!(e, ProviderEvent::TextDelta(_)) => tokio::time::sleep(d).await,
                _ => tokio::task::yield_now().await,
            }
            Ok(e)
        });
        Ok(s.boxed())
    }
}
