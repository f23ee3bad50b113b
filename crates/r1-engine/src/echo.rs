//! `echo`: the built-in offline provider. It is not a model: it answers
//! `echo: <text>`, streamed in several deltas, so every part of r1 works and is
//! tested with no network and no keys.
//!
//! Test hooks, for people and suites alike:
//! - `/slow <text>` streams the answer slowly (200 ms per delta), to watch or cancel;
//! - `/run <command>` calls the `run_command` tool (which asks for approval by default);
//! - `/tool <name> <json-args>` calls any tool with those arguments.
//!
//! After a tool result it answers `echo: <tool> returned:` (or `… failed:`) followed by
//! the content in a fenced code block, so clients that render markdown keep its
//! whitespace (the columns of `ls -la`, the indentation of code).

use std::time::Duration;

use futures_util::stream::{self, BoxStream, StreamExt};
use serde_json::json;

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

    /// The answer to a tool's result: `echo: <tool> returned:` (or `failed:`) and the
    /// content verbatim in a fenced code block. The fence is one backtick longer than
    /// the longest run of backticks in the content, so no content can close it early.
    pub fn tool_answer(tool: &str, is_error: bool, content: &str) -> String {
        let verb = if is_error { "failed" } else { "returned" };
        let longest = content.split(|c| c != '`').map(str::len).max().unwrap_or(0);
        let fence = "`".repeat(longest.max(2) + 1);
        let body = content.strip_suffix('\n').unwrap_or(content);
        format!("echo: {tool} {verb}:\n{fence}\n{body}\n{fence}")
    }
}

fn text_events(answer: &str, input_words: usize) -> Vec<ProviderEvent> {
    let chars: Vec<char> = answer.chars().collect();
    let size = DELTA_CHARS.max(chars.len().div_ceil(MAX_DELTAS));
    let mut events: Vec<ProviderEvent> = chars
        .chunks(size)
        .map(|c| ProviderEvent::TextDelta(c.iter().collect()))
        .collect();
    events.push(ProviderEvent::Usage {
        input_tokens: input_words as u64,
        output_tokens: answer.split_whitespace().count() as u64,
        cached_input_tokens: None,
    });
    events.push(ProviderEvent::Finish {
        reason: "stop".into(),
    });
    events
}

fn tool_events(name: &str, args: &serde_json::Value, n: usize) -> Vec<ProviderEvent> {
    let args = args.to_string();
    let mid = args.len() / 2;
    let split = (0..=mid)
        .rev()
        .find(|i| args.is_char_boundary(*i))
        .unwrap_or(0);
    vec![
        ProviderEvent::ToolCallStart {
            index: 0,
            id: format!("call_echo_{n}"),
            name: name.to_string(),
        },
        ProviderEvent::ToolCallDelta {
            index: 0,
            arguments: args[..split].to_string(),
        },
        ProviderEvent::ToolCallDelta {
            index: 0,
            arguments: args[split..].to_string(),
        },
        ProviderEvent::Finish {
            reason: "tool_calls".into(),
        },
    ]
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
        let last = req.messages.last();
        let mut delay = None;
        let events = match last.and_then(|m| m.tool_result.as_ref()) {
            Some(r) => text_events(
                &EchoProvider::tool_answer(&r.name, r.is_error, &r.content),
                0,
            ),
            None => {
                let text = last
                    .filter(|m| m.role == Role::User)
                    .map(|m| m.text.clone())
                    .unwrap_or_default();
                let n = req.messages.len();
                if let Some(cmd) = text.strip_prefix("/run ") {
                    tool_events("run_command", &json!({"command": cmd}), n)
                } else if let Some(rest) = text.strip_prefix("/tool ") {
                    let (name, args) = rest.trim().split_once(' ').unwrap_or((rest.trim(), "{}"));
                    match serde_json::from_str(args) {
                        Ok(v) => tool_events(name, &v, n),
                        Err(e) => {
                            text_events(&format!("echo: /tool needs <name> <json-args>: {e}"), 0)
                        }
                    }
                } else {
                    let (d, body) = match text.strip_prefix("/slow ") {
                        Some(rest) => (Some(SLOW_DELAY), rest.to_string()),
                        None => (None, text.clone()),
                    };
                    delay = d;
                    text_events(
                        &EchoProvider::answer(&body),
                        body.split_whitespace().count(),
                    )
                }
            }
        };
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

#[cfg(test)]
mod tests {
    use super::EchoProvider;

    #[test]
    fn tool_results_are_fenced_verbatim() {
        assert_eq!(
            EchoProvider::tool_answer("run_command", false, "a  b\n  c\n"),
            "echo: run_command returned:\n```\na  b\n  c\n```"
        );
        assert_eq!(
            EchoProvider::tool_answer("write_file", true, "denied"),
            "echo: write_file failed:\n```\ndenied\n```"
        );
        // Backticks in the content never close the fence.
        assert_eq!(
            EchoProvider::tool_answer("t", false, "x ```` y"),
            "echo: t returned:\n`````\nx ```` y\n`````"
        );
    }
}
