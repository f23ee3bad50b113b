//! Test support for r1: [`FakeProvider`], a model server on loopback that answers each
//! request with the next [`Scripted`] response in the real OpenAI or Anthropic streaming
//! format and records every request it got, plus builders of those formats' chunks.
//!
//! ```no_run
//! # async fn demo() {
//! use r1_test_support::{openai_text_chunks, FakeKind, FakeProvider, Scripted};
//! let fake = FakeProvider::start(
//!     FakeKind::OpenAi,
//!     vec![Scripted::Sse(openai_text_chunks("hello there", 3))],
//! )
//! .await;
//! // point an OpenAI-compatible client at fake.base_url(), then:
//! let requests = fake.recorded();
//! # }
//! ```

// Test support: a failure here is a broken test setup, and panicking says so loudest.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::Response;
use axum::Router;
use futures_util::stream;
use serde_json::{json, Value};

/// The `prompt_tokens` / `input_tokens` the chunk builders report.
pub const FAKE_INPUT_TOKENS: u64 = 12;
/// The `completion_tokens` / `output_tokens` the chunk builders report.
pub const FAKE_OUTPUT_TOKENS: u64 = 34;
/// The model name the chunk builders put in their chunks.
pub const FAKE_MODEL: &str = "fake-model";

/// Which API the fake speaks, which decides the paths it serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FakeKind {
    /// `POST /v1/chat/completions` (and `/chat/completions`).
    OpenAi,
    /// `POST /v1/messages`.
    Anthropic,
    /// OpenAI's Responses API, `POST /v1/responses` (and `/responses`): what Codex
    /// speaks.
    OpenAiResponses,
}

/// Answers a request from what it asks, for a client that makes requests the test
/// cannot script in order (a real agent CLI's side requests). Every request goes to
/// it, whatever its path; it answers 404 for what it does not serve.
pub type Responder = Arc<dyn Fn(&RecordedRequest) -> Scripted + Send + Sync>;

/// The answer to one request.
///
/// A chunk string is sent as one write of the body. A string that starts with `data:`,
/// `event:` or `:` is a full SSE event block (a blank line is added when missing); any
/// other string is a data payload, sent as `data: <payload>\n\n`.
#[derive(Debug, Clone)]
pub enum Scripted {
    /// A `200 text/event-stream` response with these chunks; the body then ends.
    Sse(Vec<String>),
    /// Like [`Scripted::Sse`], with this pause before each chunk.
    SseDelayed(Vec<String>, Duration),
    /// A response with this status and body (`application/json` when the body parses
    /// as JSON, `text/plain` otherwise).
    Status(u16, String),
    /// Like [`Scripted::Status`], with extra headers (e.g. `retry-after`).
    StatusWithHeaders(u16, Vec<(String, String)>, String),
    /// A `200 text/event-stream` response that sends the first `n` chunks and then
    /// breaks the connection (the chunked body never terminates).
    DropAfter(Vec<String>, usize),
    /// A `200 text/event-stream` response that sends its headers and then nothing, ever.
    Hang,
    /// A `200 text/event-stream` response that sends these chunks and then nothing, ever.
    HangAfter(Vec<String>),
}

/// A request the fake received.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    /// The request path, e.g. `/v1/chat/completions`.
    pub path: String,
    /// The headers, names in lower case, in the order received.
    pub headers: Vec<(String, String)>,
    /// The body as JSON (`Value::String` of the raw text when it is not JSON).
    pub body: Value,
}

impl RecordedRequest {
    /// The value of header `name` (case-insensitive), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// State shared by the server and its handle.
struct Shared {
    kind: FakeKind,
    script: Mutex<VecDeque<Scripted>>,
    responder: Option<Responder>,
    recorded: Mutex<Vec<RecordedRequest>>,
    /// Streamed bodies dropped before they ended (the client went away).
    closed_early: AtomicUsize,
}

/// A fake model server on `127.0.0.1`. Stops serving when dropped.
pub struct FakeProvider {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl FakeProvider {
    /// Starts a fake of `kind` on an ephemeral port; request number `i` gets
    /// `script[i]`. Requests beyond the script get `418` with a message saying so.
    pub async fn start(kind: FakeKind, script: Vec<Scripted>) -> FakeProvider {
        FakeProvider::serve(kind, script, None).await
    }

    /// Starts a fake of `kind` that answers every request with `responder`.
    pub async fn start_responding(kind: FakeKind, responder: Responder) -> FakeProvider {
        FakeProvider::serve(kind, Vec::new(), Some(responder)).await
    }

    async fn serve(
        kind: FakeKind,
        script: Vec<Scripted>,
        responder: Option<Responder>,
    ) -> FakeProvider {
        let shared = Arc::new(Shared {
            kind,
            script: Mutex::new(script.into()),
            responder,
            recorded: Mutex::new(Vec::new()),
            closed_early: AtomicUsize::new(0),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        FakeProvider {
            addr,
            shared,
            server,
        }
    }

    /// The base URL a provider is configured with: `http://127.0.0.1:PORT/v1` for
    /// OpenAI (the client appends `/chat/completions`), `http://127.0.0.1:PORT` for
    /// Anthropic (the client appends `/v1/messages`).
    pub fn base_url(&self) -> String {
        match self.shared.kind {
            FakeKind::OpenAi | FakeKind::OpenAiResponses => format!("http://{}/v1", self.addr),
            FakeKind::Anthropic => format!("http://{}", self.addr),
        }
    }

    /// The address the fake listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request received so far, oldest first.
    pub fn recorded(&self) -> Vec<RecordedRequest> {
        self.shared.recorded.lock().unwrap().clone()
    }

    /// How many scripted answers are left.
    pub fn remaining(&self) -> usize {
        self.shared.script.lock().unwrap().len()
    }

    /// Adds answers at the end of the script.
    pub fn push(&self, answers: impl IntoIterator<Item = Scripted>) {
        self.shared.script.lock().unwrap().extend(answers);
    }

    /// How many streamed response bodies the server dropped before they ended because
    /// the client went away (a cancelled request).
    pub fn closed_early(&self) -> usize {
        self.shared.closed_early.load(Ordering::SeqCst)
    }
}

impl Drop for FakeProvider {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Whether `path` is the endpoint of `kind`.
fn serves(kind: FakeKind, path: &str) -> bool {
    match kind {
        FakeKind::OpenAi => path == "/v1/chat/completions" || path == "/chat/completions",
        FakeKind::Anthropic => path == "/v1/messages",
        FakeKind::OpenAiResponses => path == "/v1/responses" || path == "/responses",
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let body = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    let headers = headers
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let request = RecordedRequest {
        path: path.clone(),
        headers,
        body,
    };
    shared.recorded.lock().unwrap().push(request.clone());
    if let Some(responder) = &shared.responder {
        let answer = responder(&request);
        return answer_with(&shared, answer);
    }
    if !serves(shared.kind, &path) {
        return status(
            404,
            Vec::new(),
            format!("the fake provider does not serve {path}"),
        );
    }
    let next = shared.script.lock().unwrap().pop_front();
    let Some(answer) = next else {
        return status(
            418,
            Vec::new(),
            "the fake provider's script is exhausted".into(),
        );
    };
    answer_with(&shared, answer)
}

/// The response that sends `answer`.
fn answer_with(shared: &Arc<Shared>, answer: Scripted) -> Response {
    match answer {
        Scripted::Sse(chunks) => sse(shared, chunks, None, End::Close),
        Scripted::SseDelayed(chunks, d) => sse(shared, chunks, Some(d), End::Close),
        Scripted::Status(code, body) => status(code, Vec::new(), body),
        Scripted::StatusWithHeaders(code, headers, body) => status(code, headers, body),
        Scripted::DropAfter(mut chunks, n) => {
            chunks.truncate(n);
            sse(shared, chunks, None, End::Break)
        }
        Scripted::Hang => sse(shared, Vec::new(), None, End::Hang),
        Scripted::HangAfter(chunks) => sse(shared, chunks, None, End::Hang),
    }
}

/// A plain response.
fn status(code: u16, headers: Vec<(String, String)>, body: String) -> Response {
    let is_json = serde_json::from_str::<Value>(&body).is_ok();
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = StatusCode::from_u16(code).unwrap();
    let content_type = if is_json {
        "application/json"
    } else {
        "text/plain"
    };
    resp.headers_mut()
        .insert("content-type", HeaderValue::from_static(content_type));
    for (n, v) in headers {
        resp.headers_mut().insert(
            axum::http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
            HeaderValue::from_str(&v).unwrap(),
        );
    }
    resp
}

/// The pause before a scripted connection break, long enough for the server to have
/// written the chunks before it on a loaded two-core machine.
const FLUSH_PAUSE: Duration = Duration::from_millis(50);

/// How a streamed body ends after its chunks.
#[derive(Debug, Clone, Copy)]
enum End {
    /// Properly.
    Close,
    /// With an error, which makes the server abort the connection mid-body.
    Break,
    /// Never.
    Hang,
}

/// Counts a streamed body dropped before its end.
struct EarlyCloseGuard {
    /// `None` once the body ended as scripted.
    shared: Option<Arc<Shared>>,
}

impl EarlyCloseGuard {
    /// The body ended as scripted: nothing to count.
    fn disarm(&mut self) {
        self.shared.take();
    }
}

impl Drop for EarlyCloseGuard {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.take() {
            shared.closed_early.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// A `text/event-stream` response sending `chunks` then ending as `end` says.
fn sse(shared: &Arc<Shared>, chunks: Vec<String>, delay: Option<Duration>, end: End) -> Response {
    let guard = EarlyCloseGuard {
        shared: Some(shared.clone()),
    };
    let queue: VecDeque<String> = chunks.iter().map(|c| frame(c)).collect();
    let body = stream::unfold(
        (queue, guard, Some(end)),
        move |(mut queue, mut guard, end)| async move {
            if let Some(chunk) = queue.pop_front() {
                if let Some(d) = delay {
                    tokio::time::sleep(d).await;
                }
                return Some((Ok(Bytes::from(chunk)), (queue, guard, end)));
            }
            match end? {
                End::Close => {
                    guard.disarm();
                    None
                }
                End::Break => {
                    // Let the server flush what was sent before it breaks the
                    // connection: an error discards its unsent buffer.
                    tokio::time::sleep(FLUSH_PAUSE).await;
                    guard.disarm();
                    let err = io::Error::other("the fake provider breaks the connection");
                    Some((Err(err), (queue, guard, None)))
                }
                End::Hang => {
                    std::future::pending::<()>().await;
                    None
                }
            }
        },
    );
    let mut resp = Response::new(Body::from_stream(body));
    let h = resp.headers_mut();
    h.insert(
        "content-type",
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert("cache-control", HeaderValue::from_static("no-cache"));
    resp
}

/// One chunk as sent on the wire (see [`Scripted`]).
fn frame(chunk: &str) -> String {
    let is_block =
        chunk.starts_with("data:") || chunk.starts_with("event:") || chunk.starts_with(':');
    let mut s = if is_block {
        chunk.to_owned()
    } else {
        format!("data: {chunk}\n\n")
    };
    while !s.ends_with("\n\n") {
        s.push('\n');
    }
    s
}

/// Splits `text` into `n` pieces of about equal length (by characters); fewer when
/// the text is shorter than `n`, and one empty piece for empty text.
pub fn split_pieces(text: &str, n: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    if chars.is_empty() {
        return vec![String::new()];
    }
    let size = chars.len().div_ceil(n.max(1));
    chars.chunks(size).map(|c| c.iter().collect()).collect()
}

/// One `chat.completion.chunk` data payload with this choice (`None`: no choices, as
/// in the final usage chunk) and usage.
pub fn openai_chunk(choice: Option<Value>, usage: Value) -> String {
    let choices: Vec<Value> = choice.into_iter().collect();
    json!({
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": FAKE_MODEL,
        "choices": choices,
        "usage": usage,
    })
    .to_string()
}

/// An OpenAI choice object with this delta and finish reason.
fn openai_choice(delta: Value, finish_reason: Option<&str>) -> Option<Value> {
    Some(json!({"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish_reason}))
}

/// The last chunks of an OpenAI stream: the finish reason, the usage, `[DONE]`.
fn openai_tail(out: &mut Vec<String>, finish_reason: &str) {
    out.push(openai_chunk(
        openai_choice(json!({}), Some(finish_reason)),
        Value::Null,
    ));
    out.push(openai_chunk(
        None,
        json!({
            "prompt_tokens": FAKE_INPUT_TOKENS,
            "completion_tokens": FAKE_OUTPUT_TOKENS,
            "total_tokens": FAKE_INPUT_TOKENS + FAKE_OUTPUT_TOKENS,
        }),
    ));
    out.push("[DONE]".into());
}

/// A complete OpenAI chat-completions stream (with `stream_options.include_usage`)
/// answering `text` in `n_pieces` content deltas: a role chunk, the deltas, the finish
/// chunk (`stop`), the usage chunk ([`FAKE_INPUT_TOKENS`], [`FAKE_OUTPUT_TOKENS`]) and
/// `[DONE]`.
pub fn openai_text_chunks(text: &str, n_pieces: usize) -> Vec<String> {
    let mut out = vec![openai_chunk(
        openai_choice(
            json!({"role": "assistant", "content": "", "refusal": null}),
            None,
        ),
        Value::Null,
    )];
    for piece in split_pieces(text, n_pieces) {
        out.push(openai_chunk(
            openai_choice(json!({"content": piece}), None),
            Value::Null,
        ));
    }
    openai_tail(&mut out, "stop");
    out
}

/// [`openai_text_chunks`] with this `usage` object in the usage chunk instead of the
/// fixed counts (e.g. with `prompt_tokens_details.cached_tokens`).
pub fn openai_text_chunks_with_usage(text: &str, n_pieces: usize, usage: Value) -> Vec<String> {
    let mut out = openai_text_chunks(text, n_pieces);
    // The tail is the finish chunk, the usage chunk and `[DONE]`.
    let at = out.len() - 2;
    out[at] = openai_chunk(None, usage);
    out
}

/// A complete OpenAI stream calling tool `name` (call `id`, index 0) with the JSON text
/// `args_json` split over `n_pieces` argument fragments; finish reason `tool_calls`.
pub fn openai_tool_call_chunks(
    id: &str,
    name: &str,
    args_json: &str,
    n_pieces: usize,
) -> Vec<String> {
    let mut out = vec![openai_chunk(
        openai_choice(json!({"role": "assistant", "content": null}), None),
        Value::Null,
    )];
    out.push(openai_chunk(
        openai_choice(
            json!({"tool_calls": [{
                "index": 0,
                "id": id,
                "type": "function",
                "function": {"name": name, "arguments": ""},
            }]}),
            None,
        ),
        Value::Null,
    ));
    for piece in split_pieces(args_json, n_pieces) {
        out.push(openai_chunk(
            openai_choice(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}),
                None,
            ),
            Value::Null,
        ));
    }
    openai_tail(&mut out, "tool_calls");
    out
}

/// One Anthropic SSE event block: `event: <kind>` and its data (whose `type` is set to
/// `kind`).
pub fn anthropic_event(kind: &str, mut data: Value) -> String {
    data["type"] = Value::String(kind.to_owned());
    format!("event: {kind}\ndata: {data}\n\n")
}

/// The `message_start` event ([`FAKE_INPUT_TOKENS`] prompt tokens).
fn anthropic_start() -> String {
    anthropic_event(
        "message_start",
        json!({"message": {
            "id": "msg_fake",
            "type": "message",
            "role": "assistant",
            "content": [],
            "model": FAKE_MODEL,
            "stop_reason": null,
            "stop_sequence": null,
            "usage": {"input_tokens": FAKE_INPUT_TOKENS, "output_tokens": 1},
        }}),
    )
}

/// A text content block at `index`, its text in `n_pieces` deltas.
fn anthropic_text_block(out: &mut Vec<String>, index: usize, text: &str, n_pieces: usize) {
    out.push(anthropic_event(
        "content_block_start",
        json!({"index": index, "content_block": {"type": "text", "text": ""}}),
    ));
    for piece in split_pieces(text, n_pieces) {
        out.push(anthropic_event(
            "content_block_delta",
            json!({"index": index, "delta": {"type": "text_delta", "text": piece}}),
        ));
    }
    out.push(anthropic_event(
        "content_block_stop",
        json!({"index": index}),
    ));
}

/// The closing `message_delta` ([`FAKE_OUTPUT_TOKENS`]) and `message_stop` events.
fn anthropic_tail(out: &mut Vec<String>, stop_reason: &str) {
    out.push(anthropic_event(
        "message_delta",
        json!({
            "delta": {"stop_reason": stop_reason, "stop_sequence": null},
            "usage": {"output_tokens": FAKE_OUTPUT_TOKENS},
        }),
    ));
    out.push(anthropic_event("message_stop", json!({})));
}

/// A complete Anthropic Messages stream answering `text` in `n_pieces` text deltas,
/// with a `ping`; stop reason `end_turn`.
pub fn anthropic_text_events(text: &str, n_pieces: usize) -> Vec<String> {
    let mut out = vec![anthropic_start(), anthropic_event("ping", json!({}))];
    anthropic_text_block(&mut out, 0, text, n_pieces);
    anthropic_tail(&mut out, "end_turn");
    out
}

/// A complete Anthropic stream calling tool `name` (id `id`) with the JSON text
/// `input_json` split over `n_pieces` `input_json_delta`s; stop reason `tool_use`.
/// With `text_before`, a text block comes first (index 0) and the `tool_use` block is
/// index 1, as when the model says something before calling.
pub fn anthropic_tool_use_events(
    text_before: Option<&str>,
    id: &str,
    name: &str,
    input_json: &str,
    n_pieces: usize,
) -> Vec<String> {
    let mut out = vec![anthropic_start()];
    let mut index = 0;
    if let Some(text) = text_before {
        anthropic_text_block(&mut out, 0, text, 1);
        index = 1;
    }
    out.push(anthropic_event(
        "content_block_start",
        json!({"index": index, "content_block": {"type": "tool_use", "id": id, "name": name, "input": {}}}),
    ));
    for piece in split_pieces(input_json, n_pieces) {
        out.push(anthropic_event(
            "content_block_delta",
            json!({"index": index, "delta": {"type": "input_json_delta", "partial_json": piece}}),
        ));
    }
    out.push(anthropic_event(
        "content_block_stop",
        json!({"index": index}),
    ));
    anthropic_tail(&mut out, "tool_use");
    out
}

/// One Responses API SSE event block: `event: <kind>` and its data (whose `type` is
/// set to `kind`).
pub fn responses_event(kind: &str, mut data: Value) -> String {
    data["type"] = Value::String(kind.to_owned());
    format!("event: {kind}\ndata: {data}\n\n")
}

/// A complete OpenAI Responses API stream answering `text` in `n_pieces` deltas, as
/// one assistant message item, ending with `response.completed` and its usage
/// ([`FAKE_INPUT_TOKENS`], [`FAKE_OUTPUT_TOKENS`]).
pub fn responses_text_events(text: &str, n_pieces: usize) -> Vec<String> {
    let item = json!({
        "type": "message",
        "id": "msg_fake",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    });
    let mut out = vec![
        responses_event(
            "response.created",
            json!({"response": {"id": "resp_fake", "object": "response", "status": "in_progress", "output": []}}),
        ),
        responses_event(
            "response.output_item.added",
            json!({"output_index": 0, "item": {"type": "message", "id": "msg_fake", "role": "assistant", "status": "in_progress", "content": []}}),
        ),
    ];
    for piece in split_pieces(text, n_pieces) {
        out.push(responses_event(
            "response.output_text.delta",
            json!({"item_id": "msg_fake", "output_index": 0, "content_index": 0, "delta": piece}),
        ));
    }
    out.push(responses_event(
        "response.output_item.done",
        json!({"output_index": 0, "item": item}),
    ));
    out.push(responses_event(
        "response.completed",
        json!({"response": {
            "id": "resp_fake",
            "object": "response",
            "status": "completed",
            "output": [item],
            "usage": {
                "input_tokens": FAKE_INPUT_TOKENS,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": FAKE_OUTPUT_TOKENS,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": FAKE_INPUT_TOKENS + FAKE_OUTPUT_TOKENS,
            },
        }}),
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces() {
        assert_eq!(split_pieces("abcdef", 3), vec!["ab", "cd", "ef"]);
        assert_eq!(split_pieces("abc", 10), vec!["a", "b", "c"]);
        assert_eq!(split_pieces("", 3), vec![""]);
        assert_eq!(split_pieces("héllo", 2).concat(), "héllo");
    }

    #[test]
    fn framing() {
        assert_eq!(frame("[DONE]"), "data: [DONE]\n\n");
        assert_eq!(frame("event: ping\ndata: {}"), "event: ping\ndata: {}\n\n");
        assert_eq!(frame(": keep-alive\n\n"), ": keep-alive\n\n");
    }
}
