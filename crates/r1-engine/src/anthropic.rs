//! `anthropic`: the Messages API with streaming and tool use.

use std::fmt;

use futures_util::stream::BoxStream;
use serde_json::{json, Value};

use crate::retry::{
    base_url, http_client, json_error_message, key_header, stream_with_retry, RetryPolicy,
};
use crate::sse::{broke, malformed, malformed_json, EventParser, SseEvent};
use crate::{ChatMessage, Provider, ProviderError, ProviderEvent, ProviderRequest, Role};

/// The API version r1 speaks; the event names and fields parsed here are this version's.
const API_VERSION: &str = "2023-06-01";

/// How to reach the Anthropic Messages API.
#[derive(Clone, PartialEq, Eq)]
pub struct AnthropicConfig {
    /// The API root without the version: `https://api.anthropic.com`. `/v1/messages` is
    /// appended.
    pub base_url: String,
    /// The `x-api-key`; `None` only makes sense for a proxy that adds it.
    pub api_key: Option<String>,
    /// The model, used when the request does not name one.
    pub model: String,
    /// The most tokens one answer may have (the API requires a limit).
    pub max_tokens: u32,
    /// Retries of requests that fail before their first event.
    pub retry: RetryPolicy,
}

impl AnthropicConfig {
    /// The `max_tokens` of [`AnthropicConfig::default`].
    pub const DEFAULT_MAX_TOKENS: u32 = 4096;
}

impl Default for AnthropicConfig {
    /// Anthropic itself, no key, no model, 4096 tokens.
    fn default() -> AnthropicConfig {
        AnthropicConfig {
            base_url: "https://api.anthropic.com".into(),
            api_key: None,
            model: String::new(),
            max_tokens: AnthropicConfig::DEFAULT_MAX_TOKENS,
            retry: RetryPolicy::default(),
        }
    }
}

impl fmt::Debug for AnthropicConfig {
    /// Never prints the key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AnthropicConfig")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .field("model", &self.model)
            .field("max_tokens", &self.max_tokens)
            .field("retry", &self.retry)
            .finish()
    }
}

/// The Anthropic provider. Cheap to clone; clones share one HTTP client.
#[derive(Clone, Debug)]
pub struct AnthropicProvider {
    cfg: AnthropicConfig,
    /// `{base_url}/v1/messages`.
    url: String,
    client: reqwest::Client,
    /// The prepared (sensitive) value of the key header, when there is a key.
    auth: Option<reqwest::header::HeaderValue>,
}

impl AnthropicProvider {
    /// A provider for `cfg`; fails when the base URL is not an http(s) URL or the key
    /// cannot be sent in a header.
    pub fn new(cfg: AnthropicConfig) -> Result<AnthropicProvider, ProviderError> {
        let url = format!("{}/v1/messages", base_url(&cfg.base_url)?);
        Ok(AnthropicProvider {
            url,
            client: http_client()?,
            auth: key_header(cfg.api_key.as_deref(), str::to_owned)?,
            cfg,
        })
    }

    /// The JSON body of a Messages request for `req`.
    fn body(&self, req: &ProviderRequest) -> Result<Value, ProviderError> {
        let model = req.model.as_deref().unwrap_or(&self.cfg.model);
        if model.is_empty() {
            return Err(ProviderError::fatal(
                "no model is configured for the anthropic provider",
            ));
        }
        let mut body = json!({
            "model": model,
            "max_tokens": self.cfg.max_tokens,
            "stream": true,
            "messages": messages(&req.messages),
        });
        if let Some(system) = req.system_prompt() {
            body["system"] = Value::String(system);
        }
        if !req.tools.is_empty() {
            let tools: Vec<Value> = req
                .tools
                .iter()
                .map(|t| json!({"name": t.name, "description": t.description, "input_schema": t.input_schema}))
                .collect();
            body["tools"] = Value::Array(tools);
        }
        Ok(body)
    }
}

/// The wire messages of a conversation. Consecutive messages of one role are merged into
/// one message (the results of parallel tool calls must all follow the calls in a single
/// user turn), and empty text blocks are left out (the API rejects them).
fn messages(conversation: &[ChatMessage]) -> Vec<Value> {
    let mut out: Vec<(Role, Vec<Value>)> = Vec::new();
    for m in conversation {
        let mut blocks = Vec::new();
        if let Some(r) = &m.tool_result {
            blocks.push(json!({
                "type": "tool_result",
                "tool_use_id": r.call_id,
                "content": r.content,
                "is_error": r.is_error,
            }));
        }
        if !m.text.is_empty() {
            blocks.push(json!({"type": "text", "text": m.text}));
        }
        for c in &m.tool_calls {
            // The API wants an object; the engine already refuses calls whose
            // arguments are not one, so anything else here is a call without arguments.
            let input = if c.arguments.is_object() {
                c.arguments.clone()
            } else {
                json!({})
            };
            blocks.push(json!({"type": "tool_use", "id": c.id, "name": c.name, "input": input}));
        }
        if blocks.is_empty() {
            continue;
        }
        match out.last_mut() {
            Some((role, prev)) if *role == m.role => prev.extend(blocks),
            _ => out.push((m.role, blocks)),
        }
    }
    out.into_iter()
        .map(|(role, content)| json!({"role": role, "content": content}))
        .collect()
}

#[async_trait::async_trait]
impl Provider for AnthropicProvider {
    fn name(&self) -> &str {
        "anthropic"
    }

    async fn stream(
        &self,
        req: ProviderRequest,
    ) -> Result<BoxStream<'static, Result<ProviderEvent, ProviderError>>, ProviderError> {
        let body = self.body(&req)?;
        let key = self.cfg.api_key.as_deref().filter(|k| !k.is_empty());
        let build = || {
            let r = self
                .client
                .post(&self.url)
                .header("anthropic-version", API_VERSION)
                .header(reqwest::header::ACCEPT, "text/event-stream")
                .json(&body);
            match &self.auth {
                Some(v) => r.header("x-api-key", v.clone()),
                None => r,
            }
        };
        stream_with_retry(&self.cfg.retry, key, build, EventsParser::default).await
    }
}

/// Reads Messages stream events. Usage is sent once, at `message_delta`, combining the
/// prompt tokens of `message_start` with the final output count; the `Finish` is held
/// until `message_stop`. The API counts cached prompt tokens apart from
/// `input_tokens`; r1's input is the whole prompt (`input_tokens` +
/// `cache_creation_input_tokens` + `cache_read_input_tokens`), of which
/// `cache_read_input_tokens` are the cached ones.
#[derive(Debug, Default)]
struct EventsParser {
    input_tokens: u64,
    output_tokens: u64,
    cached_input_tokens: Option<u64>,
    stop_reason: Option<String>,
}

/// The whole prompt of a Messages `usage` object, given its `input_tokens`.
fn prompt_tokens(usage: &Value, input_tokens: u64) -> u64 {
    input_tokens
        + tokens(usage, "cache_creation_input_tokens")
        + tokens(usage, "cache_read_input_tokens")
}

/// A field of an event's data as a number (0 when absent).
fn tokens(v: &Value, field: &str) -> u64 {
    v.get(field).and_then(Value::as_u64).unwrap_or(0)
}

/// A field of an event's data as a string, or a malformed-chunk error naming it.
fn text_field<'a>(v: &'a Value, field: &str, kind: &str) -> Result<&'a str, ProviderError> {
    v.get(field)
        .and_then(Value::as_str)
        .ok_or_else(|| malformed(format!("{kind} without a `{field}`")))
}

/// The block index of a `content_block_*` event.
fn block_index(v: &Value, kind: &str) -> Result<usize, ProviderError> {
    v.get("index")
        .and_then(Value::as_u64)
        .and_then(|i| usize::try_from(i).ok())
        .ok_or_else(|| malformed(format!("{kind} without an `index`")))
}

impl EventParser for EventsParser {
    fn on_event(
        &mut self,
        ev: SseEvent,
        out: &mut Vec<ProviderEvent>,
    ) -> Result<bool, ProviderError> {
        let data = ev.data.trim();
        if data.is_empty() {
            return Ok(false);
        }
        let v: Value = serde_json::from_str(data).map_err(|e| malformed_json(&e, data))?;
        // The `type` inside the data is authoritative; the `event:` line repeats it.
        let kind = v
            .get("type")
            .and_then(Value::as_str)
            .or(ev.event.as_deref())
            .unwrap_or_default();
        match kind {
            "message_start" => {
                let usage = v.pointer("/message/usage").unwrap_or(&Value::Null);
                self.input_tokens = prompt_tokens(usage, tokens(usage, "input_tokens"));
                self.cached_input_tokens =
                    usage.get("cache_read_input_tokens").and_then(Value::as_u64);
                self.output_tokens = tokens(usage, "output_tokens");
            }
            "content_block_start" => {
                let index = block_index(&v, kind)?;
                let block = v.get("content_block").unwrap_or(&Value::Null);
                match block.get("type").and_then(Value::as_str) {
                    Some("tool_use") => {
                        let id = text_field(block, "id", "a tool_use block")?.to_owned();
                        let name = text_field(block, "name", "a tool_use block")?.to_owned();
                        out.push(ProviderEvent::ToolCallStart { index, id, name });
                    }
                    Some("text") => {
                        if let Some(t) = block
                            .get("text")
                            .and_then(Value::as_str)
                            .filter(|t| !t.is_empty())
                        {
                            out.push(ProviderEvent::TextDelta(t.to_owned()));
                        }
                    }
                    // Thinking and server-tool blocks are not part of r1's answer.
                    _ => {}
                }
            }
            "content_block_delta" => {
                let index = block_index(&v, kind)?;
                let delta = v.get("delta").unwrap_or(&Value::Null);
                match delta.get("type").and_then(Value::as_str) {
                    Some("text_delta") => {
                        let t = text_field(delta, "text", "a text_delta")?;
                        if !t.is_empty() {
                            out.push(ProviderEvent::TextDelta(t.to_owned()));
                        }
                    }
                    Some("input_json_delta") => {
                        let j = text_field(delta, "partial_json", "an input_json_delta")?;
                        if !j.is_empty() {
                            out.push(ProviderEvent::ToolCallDelta {
                                index,
                                arguments: j.to_owned(),
                            });
                        }
                    }
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(r) = v.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    self.stop_reason = Some(r.to_owned());
                }
                if let Some(usage) = v.get("usage") {
                    if let Some(n) = usage.get("input_tokens").and_then(Value::as_u64) {
                        self.input_tokens = prompt_tokens(usage, n);
                        if let Some(c) =
                            usage.get("cache_read_input_tokens").and_then(Value::as_u64)
                        {
                            self.cached_input_tokens = Some(c);
                        }
                    }
                    self.output_tokens = usage
                        .get("output_tokens")
                        .and_then(Value::as_u64)
                        .unwrap_or(self.output_tokens);
                }
                out.push(ProviderEvent::Usage {
                    input_tokens: self.input_tokens,
                    output_tokens: self.output_tokens,
                    cached_input_tokens: self.cached_input_tokens,
                });
            }
            "message_stop" => {
                let reason = self.stop_reason.take().unwrap_or_else(|| "end_turn".into());
                out.push(ProviderEvent::Finish { reason });
                return Ok(true);
            }
            "error" => return Err(stream_error(&v)),
            // `ping`, `content_block_stop`, and event types newer than this parser.
            _ => {}
        }
        Ok(false)
    }

    fn on_eof(&mut self, out: &mut Vec<ProviderEvent>) -> Result<(), ProviderError> {
        // A body that ends after `message_delta` lost only the stop marker: the answer
        // and its stop reason are complete.
        match self.stop_reason.take() {
            Some(reason) => {
                out.push(ProviderEvent::Finish { reason });
                Ok(())
            }
            None => Err(broke(
                "the connection closed before the answer was complete",
            )),
        }
    }
}

/// The error for an `error` event, which the API sends when something fails after the
/// 200. Overload, rate limits and internal errors are retryable while nothing has been
/// streamed yet.
fn stream_error(v: &Value) -> ProviderError {
    let message = json_error_message(v).unwrap_or_else(|| v.to_string());
    let kind = v
        .pointer("/error/type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    ProviderError {
        message: format!("the provider reported an error: {message}"),
        retryable: matches!(kind, "overloaded_error" | "rate_limit_error" | "api_error"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests

    use super::*;
    use crate::{ToolCall, ToolResult};

    #[test]
    fn consecutive_roles_merge_and_empty_text_is_dropped() {
        let call = |id: &str| ToolCall {
            id: id.into(),
            name: "f".into(),
            arguments: json!({"a": 1}),
        };
        let result = |id: &str| ChatMessage {
            role: Role::User,
            text: String::new(),
            tool_calls: Vec::new(),
            agent_session: None,
            tool_result: Some(ToolResult {
                call_id: id.into(),
                name: "f".into(),
                content: "ok".into(),
                is_error: false,
            }),
        };
        let conv = vec![
            ChatMessage::text(Role::User, "go"),
            ChatMessage {
                role: Role::Assistant,
                text: String::new(),
                tool_calls: vec![call("a"), call("b")],
                tool_result: None,
                agent_session: None,
            },
            result("a"),
            result("b"),
        ];
        let wire = messages(&conv);
        assert_eq!(wire.len(), 3);
        assert_eq!(wire[1]["content"].as_array().unwrap().len(), 2);
        assert_eq!(wire[1]["content"][0]["type"], "tool_use");
        assert_eq!(wire[2]["role"], "user");
        assert_eq!(wire[2]["content"][1]["tool_use_id"], "b");
    }

    #[test]
    fn usage_counts_cached_tokens_in_the_prompt() {
        let mut p = EventsParser::default();
        let mut out = Vec::new();
        for data in [
            r#"{"type":"message_start","message":{"usage":{"input_tokens":10,"cache_creation_input_tokens":200,"cache_read_input_tokens":1000,"output_tokens":1}}}"#,
            r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":42}}"#,
            r#"{"type":"message_stop"}"#,
        ] {
            let ev = SseEvent {
                event: None,
                data: data.into(),
            };
            p.on_event(ev, &mut out).unwrap();
        }
        assert_eq!(
            out,
            vec![
                ProviderEvent::Usage {
                    input_tokens: 1210,
                    output_tokens: 42,
                    cached_input_tokens: Some(1000),
                },
                ProviderEvent::Finish {
                    reason: "end_turn".into()
                },
            ]
        );
        // No cache fields: the provider did not say.
        let mut p = EventsParser::default();
        let mut out = Vec::new();
        for data in [
            r#"{"type":"message_start","message":{"usage":{"input_tokens":7,"output_tokens":1}}}"#,
            r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":3}}"#,
        ] {
            let ev = SseEvent {
                event: None,
                data: data.into(),
            };
            p.on_event(ev, &mut out).unwrap();
        }
        assert_eq!(
            out[0],
            ProviderEvent::Usage {
                input_tokens: 7,
                output_tokens: 3,
                cached_input_tokens: None,
            }
        );
    }

    #[test]
    fn error_event() {
        let mut p = EventsParser::default();
        let ev = SseEvent {
            event: Some("error".into()),
            data: r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#
                .into(),
        };
        let e = p.on_event(ev, &mut Vec::new()).unwrap_err();
        assert!(e.retryable);
        assert_eq!(
            e.message,
            "the provider reported an error: Overloaded (overloaded_error)"
        );
    }
}
