//! `openai`: any OpenAI-compatible chat-completions endpoint with streaming and tool
//! calls — OpenAI, OpenRouter, Ollama, llama.cpp server, vLLM, LM Studio.

use std::collections::BTreeMap;
use std::fmt;

use futures_util::stream::BoxStream;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::retry::{
    base_url, http_client, json_error_message, key_header, stream_with_retry, RetryPolicy,
};
use crate::sse::{broke, malformed_json, EventParser, SseEvent};
use crate::{ChatMessage, Provider, ProviderError, ProviderEvent, ProviderRequest, Role};

/// How to reach an OpenAI-compatible endpoint.
#[derive(Clone, PartialEq, Eq)]
pub struct OpenAiConfig {
    /// The API root, up to and including the version: `https://api.openai.com/v1`,
    /// `http://127.0.0.1:11434/v1` (Ollama), … `/chat/completions` is appended.
    pub base_url: String,
    /// The bearer token; `None` for local servers that need none.
    pub api_key: Option<String>,
    /// The model, used when the request does not name one.
    pub model: String,
    /// Retries of requests that fail before their first event.
    pub retry: RetryPolicy,
}

impl Default for OpenAiConfig {
    /// OpenAI itself, no key, no model.
    fn default() -> OpenAiConfig {
        OpenAiConfig {
            base_url: "https://api.openai.com/v1".into(),
            api_key: None,
            model: String::new(),
            retry: RetryPolicy::default(),
        }
    }
}

impl fmt::Debug for OpenAiConfig {
    /// Never prints the key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiConfig")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .field("model", &self.model)
            .field("retry", &self.retry)
            .finish()
    }
}

/// The OpenAI-compatible provider. Cheap to clone; clones share one HTTP client.
#[derive(Clone, Debug)]
pub struct OpenAiProvider {
    cfg: OpenAiConfig,
    /// `{base_url}/chat/completions`.
    url: String,
    client: reqwest::Client,
    /// The prepared (sensitive) value of the key header, when there is a key.
    auth: Option<reqwest::header::HeaderValue>,
}

impl OpenAiProvider {
    /// A provider for `cfg`; fails when the base URL is not an http(s) URL or the key
    /// cannot be sent in a header.
    pub fn new(cfg: OpenAiConfig) -> Result<OpenAiProvider, ProviderError> {
        let url = format!("{}/chat/completions", base_url(&cfg.base_url)?);
        Ok(OpenAiProvider {
            url,
            client: http_client()?,
            auth: key_header(cfg.api_key.as_deref(), |k| format!("Bearer {k}"))?,
            cfg,
        })
    }

    /// The JSON body of a chat-completions request for `req`.
    fn body(&self, req: &ProviderRequest) -> Result<Value, ProviderError> {
        let model = req.model.as_deref().unwrap_or(&self.cfg.model);
        if model.is_empty() {
            return Err(ProviderError::fatal(
                "no model is configured for the openai provider",
            ));
        }
        let mut messages = Vec::new();
        if let Some(system) = req.system_prompt() {
            messages.push(json!({"role": "system", "content": system}));
        }
        for m in &req.messages {
            push_message(&mut messages, m);
        }
        let mut body = json!({
            "model": model,
            "messages": messages,
            "stream": true,
            "stream_options": {"include_usage": true},
        });
        if !req.tools.is_empty() {
            let tools: Vec<Value> = req
                .tools
                .iter()
                .map(|t| {
                    json!({
                        "type": "function",
                        "function": {
                            "name": t.name,
                            "description": t.description,
                            "parameters": t.input_schema,
                        },
                    })
                })
                .collect();
            body["tools"] = Value::Array(tools);
        }
        Ok(body)
    }
}

/// Appends the wire form of `m` to `out`.
fn push_message(out: &mut Vec<Value>, m: &ChatMessage) {
    match m.role {
        Role::Assistant => {
            let mut msg = json!({"role": "assistant", "content": m.text});
            if !m.tool_calls.is_empty() {
                let calls: Vec<Value> = m
                    .tool_calls
                    .iter()
                    .map(|c| {
                        json!({
                            "id": c.id,
                            "type": "function",
                            "function": {"name": c.name, "arguments": c.arguments.to_string()},
                        })
                    })
                    .collect();
                msg["tool_calls"] = Value::Array(calls);
                if m.text.is_empty() {
                    // Some compatible servers reject an empty string next to tool calls.
                    msg["content"] = Value::Null;
                }
            }
            out.push(msg);
        }
        Role::User => {
            if let Some(r) = &m.tool_result {
                // The format has no error flag: the content says what went wrong.
                out.push(json!({"role": "tool", "tool_call_id": r.call_id, "content": r.content}));
                if m.text.is_empty() {
                    return;
                }
            }
            out.push(json!({"role": "user", "content": m.text}));
        }
    }
}

#[async_trait::async_trait]
impl Provider for OpenAiProvider {
    fn name(&self) -> &str {
        "openai"
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
                .header(reqwest::header::ACCEPT, "text/event-stream")
                .json(&body);
            match &self.auth {
                Some(v) => r.header(reqwest::header::AUTHORIZATION, v.clone()),
                None => r,
            }
        };
        stream_with_retry(&self.cfg.retry, key, build, ChunkParser::default).await
    }
}

/// One `chat.completion.chunk`, with only the fields r1 reads. Every field may be absent
/// or `null`: compatible servers differ in what they send.
#[derive(Debug, Deserialize)]
struct Chunk {
    choices: Option<Vec<Choice>>,
    usage: Option<Usage>,
    error: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct Choice {
    delta: Option<Delta>,
    finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Delta {
    content: Option<String>,
    tool_calls: Option<Vec<ToolCallFragment>>,
}

#[derive(Debug, Deserialize)]
struct ToolCallFragment {
    index: Option<usize>,
    id: Option<String>,
    function: Option<FunctionFragment>,
}

#[derive(Debug, Deserialize)]
struct FunctionFragment {
    name: Option<String>,
    arguments: Option<String>,
}

/// `usage`; `prompt_tokens` counts the cached tokens too, and
/// `prompt_tokens_details.cached_tokens` says how many of them were cached.
#[derive(Debug, Deserialize)]
struct Usage {
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    prompt_tokens_details: Option<PromptTokensDetails>,
}

#[derive(Debug, Deserialize)]
struct PromptTokensDetails {
    cached_tokens: Option<u64>,
}

/// What is known of one streamed tool call.
#[derive(Debug, Default)]
struct CallState {
    id: Option<String>,
    name: Option<String>,
    /// Whether its `ToolCallStart` went out.
    started: bool,
    /// Argument text that came before the name (held back until the start goes out).
    pending: String,
}

/// Reads chat-completion chunks. The `Finish` is held until `[DONE]` (or the end of the
/// body), because the usage chunk comes after the chunk with `finish_reason`.
#[derive(Debug, Default)]
struct ChunkParser {
    finish: Option<String>,
    calls: BTreeMap<usize, CallState>,
}

impl ChunkParser {
    fn tool_call(&mut self, position: usize, frag: ToolCallFragment, out: &mut Vec<ProviderEvent>) {
        let index = frag.index.unwrap_or(position);
        let st = self.calls.entry(index).or_default();
        if st.id.is_none() {
            st.id = frag.id.filter(|id| !id.is_empty());
        }
        if let Some(f) = frag.function {
            if st.name.is_none() {
                st.name = f.name.filter(|n| !n.is_empty());
            }
            if let Some(a) = f.arguments {
                st.pending.push_str(&a);
            }
        }
        if !st.started {
            let Some(name) = st.name.clone() else { return };
            st.started = true;
            // llama.cpp and some older servers omit the id; the engine still needs one
            // to pair the result with the call.
            let id = st.id.clone().unwrap_or_else(|| format!("call_{index}"));
            out.push(ProviderEvent::ToolCallStart { index, id, name });
        }
        if !st.pending.is_empty() {
            out.push(ProviderEvent::ToolCallDelta {
                index,
                arguments: std::mem::take(&mut st.pending),
            });
        }
    }
}

impl EventParser for ChunkParser {
    fn on_event(
        &mut self,
        ev: SseEvent,
        out: &mut Vec<ProviderEvent>,
    ) -> Result<bool, ProviderError> {
        let data = ev.data.trim();
        if data == "[DONE]" {
            let reason = self.finish.take().unwrap_or_else(|| "stop".into());
            out.push(ProviderEvent::Finish { reason });
            return Ok(true);
        }
        if data.is_empty() {
            return Ok(false);
        }
        let chunk: Chunk = serde_json::from_str(data).map_err(|e| malformed_json(&e, data))?;
        if let Some(err) = chunk.error.filter(|e| !e.is_null()) {
            return Err(stream_error(&err));
        }
        if let Some(choice) = chunk.choices.and_then(|c| c.into_iter().next()) {
            if let Some(delta) = choice.delta {
                if let Some(text) = delta.content.filter(|t| !t.is_empty()) {
                    out.push(ProviderEvent::TextDelta(text));
                }
                for (position, frag) in delta.tool_calls.into_iter().flatten().enumerate() {
                    self.tool_call(position, frag, out);
                }
            }
            if let Some(reason) = choice.finish_reason.filter(|r| !r.is_empty()) {
                self.finish = Some(reason);
            }
        }
        if let Some(u) = chunk.usage {
            out.push(ProviderEvent::Usage {
                input_tokens: u.prompt_tokens.unwrap_or(0),
                output_tokens: u.completion_tokens.unwrap_or(0),
                cached_input_tokens: u.prompt_tokens_details.and_then(|d| d.cached_tokens),
            });
        }
        Ok(false)
    }

    fn on_eof(&mut self, out: &mut Vec<ProviderEvent>) -> Result<(), ProviderError> {
        match self.finish.take() {
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

/// The error for an `{"error": …}` chunk (OpenRouter and vLLM report failures that
/// happen after the 200 this way). Overload and rate limits are retryable while nothing
/// has been streamed yet.
fn stream_error(err: &Value) -> ProviderError {
    let message = json_error_message(&json!({"error": err})).unwrap_or_else(|| err.to_string());
    let code = err.get("code").and_then(|c| match c {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    });
    ProviderError {
        message: format!("the provider reported an error: {message}"),
        retryable: matches!(code, Some(429 | 500..=599)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests

    use super::*;

    fn run(datas: &[&str]) -> (Vec<ProviderEvent>, Result<(), ProviderError>) {
        let mut p = ChunkParser::default();
        let mut out = Vec::new();
        for d in datas {
            let ev = SseEvent {
                event: None,
                data: (*d).into(),
            };
            match p.on_event(ev, &mut out) {
                Ok(true) => return (out, Ok(())),
                Ok(false) => {}
                Err(e) => return (out, Err(e)),
            }
        }
        let r = p.on_eof(&mut out);
        (out, r)
    }

    #[test]
    fn tool_call_without_id_and_with_late_name() {
        let (evs, r) = run(&[
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"a\""}}]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"name":"f","arguments":":1}"}}]}}]}"#,
            r#"{"choices":[{"delta":{},"finish_reason":"tool_calls"}]}"#,
        ]);
        r.unwrap();
        assert_eq!(
            evs,
            vec![
                ProviderEvent::ToolCallStart {
                    index: 0,
                    id: "call_0".into(),
                    name: "f".into()
                },
                ProviderEvent::ToolCallDelta {
                    index: 0,
                    arguments: "{\"a\":1}".into()
                },
                ProviderEvent::Finish {
                    reason: "tool_calls".into()
                },
            ]
        );
    }

    #[test]
    fn nulls_and_error_chunks() {
        let (evs, r) = run(&[
            r#"{"choices":[{"delta":{"role":"assistant","content":null},"finish_reason":null}],"usage":null}"#,
            r#"{"error":{"message":"upstream overloaded","code":502}}"#,
        ]);
        assert!(evs.is_empty());
        let e = r.unwrap_err();
        assert!(e.retryable);
        assert!(e.message.contains("upstream overloaded"), "{}", e.message);
    }

    #[test]
    fn usage_with_and_without_cached_tokens() {
        let (evs, r) = run(&[
            r#"{"choices":[{"delta":{"content":"hi"},"finish_reason":"stop"}]}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":1200,"completion_tokens":30,"prompt_tokens_details":{"cached_tokens":1024,"audio_tokens":0}}}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":6}}"#,
            "[DONE]",
        ]);
        r.unwrap();
        assert_eq!(
            evs[1..3],
            [
                ProviderEvent::Usage {
                    input_tokens: 1200,
                    output_tokens: 30,
                    cached_input_tokens: Some(1024),
                },
                ProviderEvent::Usage {
                    input_tokens: 5,
                    output_tokens: 6,
                    cached_input_tokens: None,
                },
            ]
        );
    }

    #[test]
    fn eof_without_finish_is_an_error() {
        let (evs, r) = run(&[r#"{"choices":[{"delta":{"content":"hi"}}]}"#]);
        assert_eq!(evs, vec![ProviderEvent::TextDelta("hi".into())]);
        assert!(r
            .unwrap_err()
            .message
            .starts_with("the provider's stream broke"));
    }
}
