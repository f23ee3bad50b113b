//! The `openai` and `anthropic` providers against fake servers on loopback that speak
//! the real streaming formats: text, streamed tool calls, retries, mid-stream failures
//! and cancellation.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests

use std::time::{Duration, Instant};

use futures_util::stream::{BoxStream, StreamExt};
use r1_engine::{
    AnthropicConfig, AnthropicProvider, ChatMessage, OpenAiConfig, OpenAiProvider, Provider,
    ProviderError, ProviderEvent, ProviderRequest, RetryPolicy, Role, ToolCall, ToolResult,
    ToolSpec,
};
use r1_test_support::{
    anthropic_event, anthropic_text_events, anthropic_tool_use_events, openai_text_chunks,
    openai_tool_call_chunks, FakeKind, FakeProvider, Scripted, FAKE_INPUT_TOKENS,
    FAKE_OUTPUT_TOKENS,
};
use serde_json::json;

type Events = BoxStream<'static, Result<ProviderEvent, ProviderError>>;

/// Retries quick enough for tests.
fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(10),
    }
}

fn openai(fake: &FakeProvider) -> OpenAiProvider {
    OpenAiProvider::new(OpenAiConfig {
        base_url: fake.base_url(),
        api_key: Some("sk-test".into()),
        model: "gpt-test".into(),
        retry: fast_retry(),
    })
    .unwrap()
}

fn anthropic(fake: &FakeProvider) -> AnthropicProvider {
    AnthropicProvider::new(AnthropicConfig {
        base_url: fake.base_url(),
        api_key: Some("sk-ant-test".into()),
        model: "claude-test".into(),
        max_tokens: 1000,
        retry: fast_retry(),
    })
    .unwrap()
}

/// A conversation with a finished tool round before the new question.
fn request() -> ProviderRequest {
    ProviderRequest {
        model: None,
        system: Some("be brief".into()),
        messages: vec![
            ChatMessage::text(Role::User, "what is in a.txt?"),
            ChatMessage {
                role: Role::Assistant,
                text: String::new(),
                tool_calls: vec![ToolCall {
                    id: "call_1".into(),
                    name: "read_file".into(),
                    arguments: json!({"path": "a.txt"}),
                }],
                tool_result: None,
                agent_session: None,
            },
            ChatMessage {
                role: Role::User,
                text: String::new(),
                tool_calls: Vec::new(),
                agent_session: None,
                tool_result: Some(ToolResult {
                    call_id: "call_1".into(),
                    name: "read_file".into(),
                    content: "hello".into(),
                    is_error: false,
                }),
            },
            ChatMessage::text(Role::Assistant, "It says hello."),
            ChatMessage::text(Role::User, "thanks"),
        ],
        tools: vec![ToolSpec {
            name: "read_file".into(),
            description: "Reads a file.".into(),
            input_schema: json!({"type": "object", "properties": {"path": {"type": "string"}}}),
        }],
        protected: Default::default(),
        notes: Vec::new(),
        agent: Default::default(),
    }
}

async fn collect(stream: Events) -> Vec<Result<ProviderEvent, ProviderError>> {
    tokio::time::timeout(Duration::from_secs(10), stream.collect())
        .await
        .expect("the stream ended")
}

async fn events(provider: &dyn Provider) -> Vec<ProviderEvent> {
    let stream = provider.stream(request()).await.unwrap();
    collect(stream)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect()
}

/// The concatenated text deltas.
fn text_of(events: &[ProviderEvent]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            ProviderEvent::TextDelta(t) => Some(t.as_str()),
            _ => None,
        })
        .collect()
}

fn usage_and_finish(reason: &str) -> [ProviderEvent; 2] {
    [
        ProviderEvent::Usage {
            input_tokens: FAKE_INPUT_TOKENS,
            output_tokens: FAKE_OUTPUT_TOKENS,
            cached_input_tokens: None,
        },
        ProviderEvent::Finish {
            reason: reason.into(),
        },
    ]
}

#[tokio::test]
async fn openai_streams_text_and_sends_the_conversation() {
    let fake = FakeProvider::start(
        FakeKind::OpenAi,
        vec![Scripted::Sse(openai_text_chunks("Hello there, friend!", 4))],
    )
    .await;
    let evs = events(&openai(&fake)).await;
    let deltas: Vec<_> = evs
        .iter()
        .filter(|e| matches!(e, ProviderEvent::TextDelta(_)))
        .collect();
    assert_eq!(deltas.len(), 4);
    assert_eq!(text_of(&evs), "Hello there, friend!");
    assert_eq!(evs[4..], usage_and_finish("stop"));

    let rec = fake.recorded();
    assert_eq!(rec.len(), 1);
    let r = &rec[0];
    assert_eq!(r.path, "/v1/chat/completions");
    assert_eq!(r.header("authorization"), Some("Bearer sk-test"));
    let b = &r.body;
    assert_eq!(b["model"], "gpt-test");
    assert_eq!(b["stream"], true);
    assert_eq!(b["stream_options"], json!({"include_usage": true}));
    assert_eq!(
        b["tools"],
        json!([{"type": "function", "function": {
            "name": "read_file",
            "description": "Reads a file.",
            "parameters": {"type": "object", "properties": {"path": {"type": "string"}}},
        }}])
    );
    assert_eq!(
        b["messages"],
        json!([
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "what is in a.txt?"},
            {"role": "assistant", "content": null, "tool_calls": [{
                "id": "call_1",
                "type": "function",
                "function": {"name": "read_file", "arguments": "{\"path\":\"a.txt\"}"},
            }]},
            {"role": "tool", "tool_call_id": "call_1", "content": "hello"},
            {"role": "assistant", "content": "It says hello."},
            {"role": "user", "content": "thanks"},
        ])
    );
}

#[tokio::test]
async fn openai_request_model_overrides_and_no_key_sends_no_auth() {
    let fake = FakeProvider::start(
        FakeKind::OpenAi,
        vec![Scripted::Sse(openai_text_chunks("ok", 1))],
    )
    .await;
    let p = OpenAiProvider::new(OpenAiConfig {
        base_url: fake.base_url(),
        api_key: None,
        model: "configured".into(),
        retry: fast_retry(),
    })
    .unwrap();
    let mut req = request();
    req.model = Some("chosen".into());
    req.tools.clear();
    collect(p.stream(req).await.unwrap()).await;
    let r = &fake.recorded()[0];
    assert_eq!(r.body["model"], "chosen");
    assert!(r.body.get("tools").is_none());
    assert_eq!(r.header("authorization"), None);
}

#[tokio::test]
async fn openai_tool_call_arguments_stream_in_fragments() {
    let args = r#"{"path":"src/main.rs","limit":20}"#;
    let fake = FakeProvider::start(
        FakeKind::OpenAi,
        vec![Scripted::Sse(openai_tool_call_chunks(
            "call_9",
            "read_file",
            args,
            4,
        ))],
    )
    .await;
    let evs = events(&openai(&fake)).await;
    assert_eq!(
        evs[0],
        ProviderEvent::ToolCallStart {
            index: 0,
            id: "call_9".into(),
            name: "read_file".into()
        }
    );
    let fragments: Vec<&str> = evs
        .iter()
        .filter_map(|e| match e {
            ProviderEvent::ToolCallDelta {
                index: 0,
                arguments,
            } => Some(arguments.as_str()),
            _ => None,
        })
        .collect();
    assert!(fragments.len() >= 3, "{fragments:?}");
    assert_eq!(fragments.concat(), args);
    assert_eq!(evs[evs.len() - 2..], usage_and_finish("tool_calls"));
}

#[tokio::test]
async fn anthropic_streams_text_and_sends_the_conversation() {
    let fake = FakeProvider::start(
        FakeKind::Anthropic,
        vec![Scripted::Sse(anthropic_text_events(
            "Hello there, friend!",
            5,
        ))],
    )
    .await;
    let evs = events(&anthropic(&fake)).await;
    assert_eq!(evs.len(), 7);
    assert_eq!(text_of(&evs), "Hello there, friend!");
    assert_eq!(evs[5..], usage_and_finish("end_turn"));

    let rec = fake.recorded();
    assert_eq!(rec.len(), 1);
    let r = &rec[0];
    assert_eq!(r.path, "/v1/messages");
    assert_eq!(r.header("x-api-key"), Some("sk-ant-test"));
    assert_eq!(r.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(r.header("authorization"), None);
    let b = &r.body;
    assert_eq!(b["model"], "claude-test");
    assert_eq!(b["max_tokens"], 1000);
    assert_eq!(b["stream"], true);
    assert_eq!(b["system"], "be brief");
    assert_eq!(
        b["tools"],
        json!([{
            "name": "read_file",
            "description": "Reads a file.",
            "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}},
        }])
    );
    assert_eq!(
        b["messages"],
        json!([
            {"role": "user", "content": [{"type": "text", "text": "what is in a.txt?"}]},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": "call_1", "name": "read_file", "input": {"path": "a.txt"}},
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": "hello", "is_error": false},
            ]},
            {"role": "assistant", "content": [{"type": "text", "text": "It says hello."}]},
            {"role": "user", "content": [{"type": "text", "text": "thanks"}]},
        ])
    );
}

#[tokio::test]
async fn anthropic_tool_use_streams_partial_json() {
    let input = r#"{"path":"docs/README.md","limit":5}"#;
    let fake = FakeProvider::start(
        FakeKind::Anthropic,
        vec![Scripted::Sse(anthropic_tool_use_events(
            Some("Let me look."),
            "toolu_1",
            "read_file",
            input,
            3,
        ))],
    )
    .await;
    let evs = events(&anthropic(&fake)).await;
    assert_eq!(evs[0], ProviderEvent::TextDelta("Let me look.".into()));
    assert_eq!(
        evs[1],
        ProviderEvent::ToolCallStart {
            index: 1,
            id: "toolu_1".into(),
            name: "read_file".into()
        }
    );
    let fragments: Vec<&str> = evs
        .iter()
        .filter_map(|e| match e {
            ProviderEvent::ToolCallDelta {
                index: 1,
                arguments,
            } => Some(arguments.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(fragments.len(), 3);
    assert_eq!(fragments.concat(), input);
    assert_eq!(evs[evs.len() - 2..], usage_and_finish("tool_use"));
}

/// An OpenAI-style error body.
fn error_body(message: &str) -> String {
    json!({"error": {"message": message, "type": "invalid_request_error"}}).to_string()
}

#[tokio::test]
async fn a_500_is_retried_into_one_stream() {
    let fake = FakeProvider::start(
        FakeKind::OpenAi,
        vec![
            Scripted::Status(500, error_body("boom")),
            Scripted::Sse(openai_text_chunks("fine now", 2)),
        ],
    )
    .await;
    let evs = events(&openai(&fake)).await;
    assert_eq!(text_of(&evs), "fine now");
    assert_eq!(fake.recorded().len(), 2);
}

#[tokio::test]
async fn a_429_honours_retry_after() {
    let fake = FakeProvider::start(
        FakeKind::Anthropic,
        vec![
            Scripted::StatusWithHeaders(
                429,
                vec![("retry-after".into(), "0".into())],
                error_body("slow down"),
            ),
            Scripted::Sse(anthropic_text_events("ok", 1)),
        ],
    )
    .await;
    // A backoff this long would time the test out: only `retry-after: 0` lets it pass.
    let p = AnthropicProvider::new(AnthropicConfig {
        base_url: fake.base_url(),
        api_key: Some("k".into()),
        model: "m".into(),
        max_tokens: 10,
        retry: RetryPolicy {
            max_attempts: 2,
            base_delay: Duration::from_secs(60),
        },
    })
    .unwrap();
    let evs = tokio::time::timeout(Duration::from_secs(5), events(&p))
        .await
        .unwrap();
    assert_eq!(text_of(&evs), "ok");
    assert_eq!(fake.recorded().len(), 2);
}

#[tokio::test]
async fn a_400_is_fatal_and_not_retried() {
    let fake = FakeProvider::start(
        FakeKind::OpenAi,
        vec![
            Scripted::Status(400, error_body("model 'gpt-test' does not exist")),
            Scripted::Sse(openai_text_chunks("never", 1)),
        ],
    )
    .await;
    let err = openai(&fake).stream(request()).await.err().unwrap();
    assert!(!err.retryable);
    assert!(err.message.contains("400"), "{}", err.message);
    assert!(
        err.message.contains("model 'gpt-test' does not exist"),
        "{}",
        err.message
    );
    assert_eq!(fake.recorded().len(), 1);
}

#[tokio::test]
async fn an_error_never_carries_the_key() {
    let fake = FakeProvider::start(
        FakeKind::OpenAi,
        vec![Scripted::Status(
            401,
            error_body("Incorrect API key provided: sk-test"),
        )],
    )
    .await;
    let err = openai(&fake).stream(request()).await.err().unwrap();
    assert!(err.message.contains("401"), "{}", err.message);
    assert!(!err.message.contains("sk-test"), "{}", err.message);
}

#[tokio::test]
async fn repeated_500s_fail_after_max_attempts() {
    let fake = FakeProvider::start(
        FakeKind::Anthropic,
        vec![Scripted::Status(500, error_body("down")); 4],
    )
    .await;
    let err = anthropic(&fake).stream(request()).await.err().unwrap();
    assert!(err.retryable);
    assert!(err.message.contains("500"), "{}", err.message);
    assert!(err.message.contains("3 attempts"), "{}", err.message);
    assert_eq!(fake.recorded().len(), 3);
    assert_eq!(fake.remaining(), 1);
}

#[tokio::test]
async fn an_unreachable_server_is_a_retryable_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let p = OpenAiProvider::new(OpenAiConfig {
        base_url: format!("http://{addr}/v1"),
        api_key: Some("sk-test".into()),
        model: "m".into(),
        retry: fast_retry(),
    })
    .unwrap();
    let err = p.stream(request()).await.err().unwrap();
    assert!(err.retryable);
    assert!(
        err.message.contains("cannot reach the provider"),
        "{}",
        err.message
    );
}

/// The items of a stream that fails: `Ok`s, then exactly one `Err` as the last item.
async fn failing(stream: Events) -> (Vec<ProviderEvent>, ProviderError) {
    let mut items = collect(stream).await;
    let last = items.pop().unwrap().unwrap_err();
    let oks = items.into_iter().map(Result::unwrap).collect();
    (oks, last)
}

#[tokio::test]
async fn a_malformed_chunk_mid_stream_is_an_error_item() {
    let mut chunks = openai_text_chunks("one two three", 3);
    chunks.insert(2, "{\"choices\": [".into());
    let fake = FakeProvider::start(
        FakeKind::OpenAi,
        vec![
            Scripted::Sse(chunks),
            Scripted::Sse(openai_text_chunks("x", 1)),
        ],
    )
    .await;
    let stream = openai(&fake).stream(request()).await.unwrap();
    let (oks, err) = failing(stream).await;
    assert_eq!(text_of(&oks), "one t");
    assert!(
        err.message
            .starts_with("malformed chunk from the provider: "),
        "{}",
        err.message
    );
    assert!(!err.retryable);
    assert_eq!(fake.recorded().len(), 1);
}

#[tokio::test]
async fn a_dropped_connection_mid_stream_is_an_error_item() {
    let fake = FakeProvider::start(
        FakeKind::Anthropic,
        vec![
            Scripted::DropAfter(anthropic_text_events("abcdef", 3), 4),
            Scripted::Sse(anthropic_text_events("x", 1)),
        ],
    )
    .await;
    let stream = anthropic(&fake).stream(request()).await.unwrap();
    let (oks, err) = failing(stream).await;
    // message_start, ping, content_block_start, one delta.
    assert_eq!(oks, vec![ProviderEvent::TextDelta("ab".into())]);
    assert!(
        err.message.starts_with("the provider's stream broke: "),
        "{}",
        err.message
    );
    assert!(!err.retryable);
    assert_eq!(fake.recorded().len(), 1);
}

#[tokio::test]
async fn a_stream_ending_without_its_end_marker_is_an_error_item() {
    let mut chunks = openai_text_chunks("cut short", 2);
    chunks.truncate(3); // role chunk and the two deltas: no finish, no [DONE]
    let fake = FakeProvider::start(FakeKind::OpenAi, vec![Scripted::Sse(chunks)]).await;
    let stream = openai(&fake).stream(request()).await.unwrap();
    let (oks, err) = failing(stream).await;
    assert_eq!(text_of(&oks), "cut short");
    assert!(
        err.message.starts_with("the provider's stream broke: "),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn a_break_before_the_first_event_is_retried() {
    let fake = FakeProvider::start(
        FakeKind::OpenAi,
        vec![
            // The role chunk carries no event: nothing was handed out when it broke.
            Scripted::DropAfter(openai_text_chunks("lost", 2), 1),
            Scripted::Sse(openai_text_chunks("kept", 2)),
        ],
    )
    .await;
    let evs = events(&openai(&fake)).await;
    assert_eq!(text_of(&evs), "kept");
    assert_eq!(fake.recorded().len(), 2);
}

#[tokio::test]
async fn an_overload_event_before_the_first_event_is_retried_and_after_it_is_not() {
    let overloaded = anthropic_event(
        "error",
        json!({"error": {"type": "overloaded_error", "message": "Overloaded"}}),
    );
    let mut late = anthropic_text_events("partial answer", 2);
    late.truncate(4); // through the first text delta
    late.push(overloaded.clone());
    let fake = FakeProvider::start(
        FakeKind::Anthropic,
        vec![
            Scripted::Sse(vec![overloaded]),
            Scripted::Sse(late),
            Scripted::Sse(anthropic_text_events("never", 1)),
        ],
    )
    .await;
    let stream = anthropic(&fake).stream(request()).await.unwrap();
    let (oks, err) = failing(stream).await;
    assert_eq!(text_of(&oks), "partial");
    assert!(err.message.contains("Overloaded"), "{}", err.message);
    assert!(!err.retryable);
    assert_eq!(fake.recorded().len(), 2);
}

/// Waits until the fake saw its response body dropped by the client.
async fn wait_closed(fake: &FakeProvider) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while fake.closed_early() == 0 {
        assert!(Instant::now() < deadline, "the request was not aborted");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn dropping_a_hanging_request_aborts_it() {
    let fake = FakeProvider::start(FakeKind::OpenAi, vec![Scripted::Hang]).await;
    let p = openai(&fake);
    // `stream` reads up to the first event (so a failure before it can be retried):
    // against a server that never sends one it waits, and dropping it cancels.
    let started = Instant::now();
    let r = tokio::time::timeout(Duration::from_millis(200), p.stream(request())).await;
    assert!(r.is_err(), "the hanging server produced a stream");
    assert!(started.elapsed() < Duration::from_secs(2));
    wait_closed(&fake).await;
    assert_eq!(fake.recorded().len(), 1);
}

#[tokio::test]
async fn dropping_a_stalled_stream_aborts_the_request() {
    let mut chunks = openai_text_chunks("first words", 2);
    chunks.truncate(2);
    let fake = FakeProvider::start(FakeKind::OpenAi, vec![Scripted::HangAfter(chunks)]).await;
    let mut stream = openai(&fake).stream(request()).await.unwrap();
    let first = stream.next().await.unwrap().unwrap();
    assert_eq!(first, ProviderEvent::TextDelta("first ".into()));
    let stalled = tokio::time::timeout(Duration::from_millis(100), stream.next()).await;
    assert!(stalled.is_err());
    let started = Instant::now();
    drop(stream);
    assert!(started.elapsed() < Duration::from_millis(100));
    wait_closed(&fake).await;
}

#[tokio::test]
async fn a_json_answer_to_a_stream_request_is_explained() {
    let fake = FakeProvider::start(
        FakeKind::OpenAi,
        vec![Scripted::Status(
            200,
            error_body("streaming is not supported"),
        )],
    )
    .await;
    let err = openai(&fake).stream(request()).await.err().unwrap();
    assert!(
        err.message.contains("streaming is not supported"),
        "{}",
        err.message
    );
    assert!(!err.retryable);
}

#[tokio::test]
async fn configs_never_print_the_key() {
    let cfg = OpenAiConfig {
        api_key: Some("sk-secret".into()),
        ..OpenAiConfig::default()
    };
    assert!(!format!("{cfg:?}").contains("sk-secret"));
    let cfg = AnthropicConfig {
        api_key: Some("sk-ant-secret".into()),
        ..AnthropicConfig::default()
    };
    assert!(!format!("{cfg:?}").contains("sk-ant-secret"));
    let p = AnthropicProvider::new(cfg).unwrap();
    assert!(!format!("{p:?}").contains("sk-ant-secret"));
    let err = AnthropicProvider::new(AnthropicConfig {
        api_key: Some("sk-ant-secret\n".into()),
        ..AnthropicConfig::default()
    })
    .unwrap_err();
    assert!(!err.message.contains("sk-ant-secret"), "{}", err.message);
    assert!(OpenAiProvider::new(OpenAiConfig {
        base_url: "localhost:8080".into(),
        ..OpenAiConfig::default()
    })
    .is_err());
}
