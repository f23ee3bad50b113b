//! Sending a streaming request to an HTTP provider, with retries of the failures that
//! are worth retrying: 429, 5xx, a connection that fails, and a stream that breaks (or
//! reports an overload) before its first event. Once an event has been handed out, the
//! consumer has acted on part of the answer, and nothing is retried.

use std::time::Duration;

use futures_util::stream::BoxStream;
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{RequestBuilder, StatusCode};
use serde_json::Value;

use crate::sse::{error_chain, quote, redact, Driver, EventParser};
use crate::{ProviderError, ProviderEvent};

/// The longest wait a `retry-after` header can impose. A server asking for minutes is
/// better answered with an error the person sees than with a turn that looks hung.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

/// The longest wait between two attempts when the server gives no `retry-after`.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// How long connecting to a provider may take. Generous for a slow network, short enough
/// that an unreachable host fails the turn instead of hanging it.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Keep-alive probes on the connection, so a peer that vanished without closing it is
/// noticed while the model is silent (thinking) rather than never.
const TCP_KEEPALIVE: Duration = Duration::from_secs(30);

/// How many characters of an error body a message quotes.
const ERROR_BODY_CHARS: usize = 500;

/// How a provider retries a request that failed before its first event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// How many times the request is sent at most, the first included (0 counts as 1).
    pub max_attempts: u32,
    /// The wait before the second attempt; it doubles for each further attempt. A
    /// `retry-after` header from the server replaces it (capped at 30 s).
    pub base_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(500),
        }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt number `attempt` (1-based) when the server did not
    /// say how long to wait.
    fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.saturating_sub(1).min(16);
        self.base_delay.saturating_mul(factor).min(MAX_BACKOFF)
    }
}

/// The HTTP client one provider instance uses for all its requests.
pub(crate) fn http_client() -> Result<reqwest::Client, ProviderError> {
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_keepalive(TCP_KEEPALIVE)
        // Model APIs do not redirect their POSTs, and following one to another host
        // would hand it the `x-api-key` (only `authorization` is stripped on the way).
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| {
            ProviderError::fatal(format!(
                "cannot set up the HTTP client: {}",
                error_chain(&e)
            ))
        })
}

/// The header value carrying an API key, marked sensitive (so it is never logged), or
/// `None` when there is no key. A key that cannot be sent in a header (a pasted newline)
/// is refused up front, without quoting it.
pub(crate) fn key_header(
    key: Option<&str>,
    format: impl Fn(&str) -> String,
) -> Result<Option<HeaderValue>, ProviderError> {
    let Some(key) = key.filter(|k| !k.is_empty()) else {
        return Ok(None);
    };
    let mut value = HeaderValue::from_str(&format(key)).map_err(|_| {
        ProviderError::fatal("the API key contains characters that cannot be sent in a header")
    })?;
    value.set_sensitive(true);
    Ok(Some(value))
}

/// Checks a configured base URL and returns it without its trailing slash.
pub(crate) fn base_url(url: &str) -> Result<String, ProviderError> {
    let trimmed = url.trim().trim_end_matches('/');
    match reqwest::Url::parse(trimmed) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(trimmed.to_owned()),
        Ok(u) => Err(ProviderError::fatal(format!(
            "the provider URL {trimmed:?} must be http or https, not {}",
            u.scheme()
        ))),
        Err(e) => Err(ProviderError::fatal(format!(
            "the provider URL {trimmed:?} is not a URL: {e}"
        ))),
    }
}

/// Sends the request `build` makes until it streams, following `policy`, and returns the
/// stream of its events read with the parser `parser` makes. `secret` (the API key) is
/// scrubbed from every error message.
pub(crate) async fn stream_with_retry<P: EventParser>(
    policy: &RetryPolicy,
    secret: Option<&str>,
    build: impl Fn() -> RequestBuilder,
    parser: impl Fn() -> P,
) -> Result<BoxStream<'static, Result<ProviderEvent, ProviderError>>, ProviderError> {
    let max = policy.max_attempts.max(1);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let (err, wait) = match attempt_once(build(), secret, &parser).await {
            Ok(stream) => return Ok(stream),
            Err(failure) => failure,
        };
        let mut err = match secret {
            Some(key) => ProviderError {
                message: redact(&err.message, key),
                ..err
            },
            None => err,
        };
        if !err.retryable || attempt >= max {
            if err.retryable && attempt > 1 {
                err.message = format!("{} (gave up after {attempt} attempts)", err.message);
            }
            return Err(err);
        }
        tokio::time::sleep(wait.unwrap_or_else(|| policy.backoff(attempt))).await;
    }
}

/// A failed attempt: the error and the wait the server asked for, if any.
type Failure = (ProviderError, Option<Duration>);

/// One attempt: send, check the status, and read up to the first event.
async fn attempt_once<P: EventParser>(
    req: RequestBuilder,
    secret: Option<&str>,
    parser: &impl Fn() -> P,
) -> Result<BoxStream<'static, Result<ProviderEvent, ProviderError>>, Failure> {
    let resp = req.send().await.map_err(|e| {
        let message = format!("cannot reach the provider: {}", error_chain(&e));
        let retryable = e.is_connect() || e.is_timeout() || e.is_request();
        (ProviderError { message, retryable }, None)
    })?;
    let status = resp.status();
    if !status.is_success() {
        let wait = retry_after(resp.headers());
        let url = resp.url().clone();
        let body = resp.text().await.unwrap_or_default();
        let message = format!(
            "{url} answered HTTP {status}: {}",
            error_text(&body).unwrap_or_else(|| "(no error message)".into())
        );
        let retryable = status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error();
        return Err((ProviderError { message, retryable }, wait));
    }
    let is_json = resp
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("application/json"));
    if is_json {
        // The server ignored `stream: true`, or answered an error with a 200.
        let body = resp.text().await.unwrap_or_default();
        let message = format!(
            "the provider answered with JSON instead of an event stream: {}",
            error_text(&body).unwrap_or_else(|| "(empty body)".into())
        );
        return Err((ProviderError::fatal(message), None));
    }
    let mut driver = Driver::new(resp, parser(), secret.map(str::to_owned));
    match driver.next_item().await {
        Some(Err(e)) if e.retryable => Err((e, None)),
        first => Ok(driver.into_stream(first)),
    }
}

/// The wait a `retry-after: <seconds>` header asks for, capped. (The HTTP-date form is
/// not used by model APIs and is ignored.)
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let secs: f64 = headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    if !secs.is_finite() || secs < 0.0 {
        return None;
    }
    Some(Duration::from_secs_f64(
        secs.min(MAX_RETRY_AFTER.as_secs_f64()),
    ))
}

/// The message of an error body: `error.message` (OpenAI, Anthropic, most compatible
/// servers), `error` as a string (Ollama), `message`, or the body itself, shortened.
fn error_text(body: &str) -> Option<String> {
    let body = body.trim();
    if body.is_empty() {
        return None;
    }
    if let Ok(v) = serde_json::from_str::<Value>(body) {
        if let Some(m) = json_error_message(&v) {
            return Some(m);
        }
    }
    let mut text: String = body.chars().take(ERROR_BODY_CHARS).collect();
    if text.len() < body.len() {
        text.push('…');
    }
    Some(text)
}

/// The human part of a JSON error object, if it has one.
pub(crate) fn json_error_message(v: &Value) -> Option<String> {
    let err = v.get("error").unwrap_or(v);
    if let Some(s) = err.as_str() {
        return Some(s.to_owned());
    }
    let message = err.get("message").and_then(Value::as_str)?;
    match err.get("type").and_then(Value::as_str) {
        Some(kind) if !kind.is_empty() => Some(format!("{message} ({kind})")),
        _ => Some(message.to_owned()),
    }
    .map(|m| {
        if m.chars().count() > ERROR_BODY_CHARS {
            quote(&m)
        } else {
            m
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests

    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let p = RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(500),
        };
        assert_eq!(p.backoff(1), Duration::from_millis(500));
        assert_eq!(p.backoff(2), Duration::from_millis(1000));
        assert_eq!(p.backoff(3), Duration::from_millis(2000));
        assert_eq!(p.backoff(40), MAX_BACKOFF);
    }

    #[test]
    fn retry_after_forms() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(RETRY_AFTER, "2".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert(RETRY_AFTER, "0.5".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_millis(500)));
        h.insert(RETRY_AFTER, "9999".parse().unwrap());
        assert_eq!(retry_after(&h), Some(MAX_RETRY_AFTER));
        h.insert(
            RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn error_texts() {
        let openai = r#"{"error":{"message":"bad model","type":"invalid_request_error"}}"#;
        assert_eq!(
            error_text(openai).unwrap(),
            "bad model (invalid_request_error)"
        );
        let anthropic =
            r#"{"type":"error","error":{"type":"not_found_error","message":"model: x"}}"#;
        assert_eq!(error_text(anthropic).unwrap(), "model: x (not_found_error)");
        assert_eq!(
            error_text(r#"{"error":"no such model"}"#).unwrap(),
            "no such model"
        );
        assert_eq!(error_text("plain words").unwrap(), "plain words");
        assert_eq!(error_text("  "), None);
    }

    #[test]
    fn base_urls() {
        assert_eq!(base_url("http://x:1/v1/").unwrap(), "http://x:1/v1");
        assert!(base_url("ftp://x").is_err());
        assert!(base_url("not a url").is_err());
    }
}
