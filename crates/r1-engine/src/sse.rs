//! Server-sent events for the HTTP providers: a small line decoder ([`SseDecoder`]) and
//! the driver that turns a streaming HTTP response into [`ProviderEvent`]s through a
//! provider-specific [`EventParser`].
//!
//! The decoder follows the `text/event-stream` rules the model APIs rely on: lines end
//! with `\n` or `\r\n`, a blank line dispatches the event, `data:` lines of one event are
//! joined with `\n`, `event:` names it, lines starting with `:` are comments (keep-alives)
//! and `id:`/`retry:` are ignored. A lone `\r` as a line ending is not supported: no model
//! API sends it, and supporting it would mean holding back every chunk that ends in `\r`.

use std::collections::VecDeque;

use futures_util::stream::{self, BoxStream, StreamExt};

use crate::{ProviderError, ProviderEvent};

/// The longest line the decoder buffers. A model's chunk is a few kilobytes at most; a
/// line longer than this means the server is not speaking SSE, and buffering it without
/// bound would let it eat the daemon's memory.
const MAX_LINE_BYTES: usize = 8 * 1024 * 1024;

/// How much of a bad chunk an error message quotes, so a person can see what came but a
/// huge chunk does not flood the journal.
const QUOTE_CHARS: usize = 200;

/// One dispatched server-sent event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SseEvent {
    /// The `event:` field, when the server named the event.
    pub event: Option<String>,
    /// The `data:` lines, joined with `\n`.
    pub data: String,
}

/// Splits a byte stream into [`SseEvent`]s; chunks may cut lines (and UTF-8 sequences)
/// anywhere.
#[derive(Debug, Default)]
pub(crate) struct SseDecoder {
    /// Bytes of the current, unfinished line.
    buf: Vec<u8>,
    /// How far `buf` has been searched for a newline, so a long line arriving in many
    /// small chunks is scanned once.
    scanned: usize,
    /// The `event:` field of the event being read.
    event: Option<String>,
    /// The `data:` lines of the event being read; `None` until the first one.
    data: Option<String>,
}

impl SseDecoder {
    /// Feeds the next bytes of the body and returns the events they complete.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Vec<SseEvent>, ProviderError> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        let mut start = 0;
        let mut from = self.scanned;
        while let Some(pos) = self.buf[from..].iter().position(|b| *b == b'\n') {
            let end = from + pos;
            let mut line = &self.buf[start..end];
            if let Some(stripped) = line.strip_suffix(b"\r") {
                line = stripped;
            }
            let line = std::str::from_utf8(line)
                .map_err(|_| malformed("a line of the stream is not UTF-8"))?
                .to_owned();
            if let Some(ev) = self.line(&line) {
                out.push(ev);
            }
            start = end + 1;
            from = start;
        }
        self.buf.drain(..start);
        self.scanned = self.buf.len();
        if self.buf.len() > MAX_LINE_BYTES {
            return Err(malformed(format!(
                "a line of the stream is longer than {MAX_LINE_BYTES} bytes"
            )));
        }
        Ok(out)
    }

    /// Ends the body: returns the event a server left without its closing blank line.
    /// (The SSE standard drops such an event; some local servers end their last event
    /// with a single newline, and dropping their `[DONE]` would turn a finished answer
    /// into an error.)
    pub fn finish(&mut self) -> Result<Option<SseEvent>, ProviderError> {
        let mut ev = None;
        if !self.buf.is_empty() {
            let rest = std::mem::take(&mut self.buf);
            let line = std::str::from_utf8(&rest)
                .map_err(|_| malformed("a line of the stream is not UTF-8"))?
                .trim_end_matches('\r')
                .to_owned();
            ev = self.line(&line);
        }
        Ok(ev.or_else(|| self.line("")))
    }

    /// Handles one complete line; returns the event a blank line dispatches.
    fn line(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            let event = self.event.take();
            return self.data.take().map(|data| SseEvent { event, data });
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "data" => match &mut self.data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => self.data = Some(value.to_owned()),
            },
            "event" => self.event = Some(value.to_owned()),
            _ => {}
        }
        None
    }
}

/// Turns a provider's SSE events into [`ProviderEvent`]s.
pub(crate) trait EventParser: Send + 'static {
    /// Handles one event, pushing what it means onto `out`. Returns `true` when the
    /// response is complete (the provider's end marker), after which nothing more is read.
    fn on_event(
        &mut self,
        ev: SseEvent,
        out: &mut Vec<ProviderEvent>,
    ) -> Result<bool, ProviderError>;

    /// The body ended before the end marker. A parser that has seen enough to call the
    /// answer finished pushes its last events and returns `Ok`; otherwise the connection
    /// dropped.
    fn on_eof(&mut self, out: &mut Vec<ProviderEvent>) -> Result<(), ProviderError>;
}

/// The error for a stream that stopped before the provider said it was done.
pub(crate) fn broke(why: impl std::fmt::Display) -> ProviderError {
    ProviderError::retryable(format!("the provider's stream broke: {why}"))
}

/// The error for bytes that are not what the provider's format promises.
pub(crate) fn malformed(why: impl std::fmt::Display) -> ProviderError {
    ProviderError::fatal(format!("malformed chunk from the provider: {why}"))
}

/// The error for a data line that is not the JSON it should be.
pub(crate) fn malformed_json(err: &serde_json::Error, data: &str) -> ProviderError {
    malformed(format!("{err} in {}", quote(data)))
}

/// The start of `text`, quoted, for an error message.
pub(crate) fn quote(text: &str) -> String {
    let mut q: String = text.chars().take(QUOTE_CHARS).collect();
    if q.len() < text.len() {
        q.push('…');
    }
    format!("{q:?}")
}

/// Reads one streaming response through its parser. The driver owns the response, so
/// dropping the driver (or the stream made of it) closes the connection.
pub(crate) struct Driver<P> {
    /// The body being read; `None` once the answer is complete or failed.
    resp: Option<reqwest::Response>,
    decoder: SseDecoder,
    parser: P,
    /// Items decoded but not yet handed out.
    queue: VecDeque<Result<ProviderEvent, ProviderError>>,
    /// Whether an event has been handed out; from then on nothing is retryable, since the
    /// consumer has already acted on part of the answer.
    emitted: bool,
    /// The API key, scrubbed from every error message.
    secret: Option<String>,
}

impl<P: EventParser> Driver<P> {
    /// A driver reading `resp` with `parser`.
    pub fn new(resp: reqwest::Response, parser: P, secret: Option<String>) -> Driver<P> {
        Driver {
            resp: Some(resp),
            decoder: SseDecoder::default(),
            parser,
            queue: VecDeque::new(),
            emitted: false,
            secret,
        }
    }

    /// The next item of the stream; `None` at its end. After an error the stream ends.
    pub async fn next_item(&mut self) -> Option<Result<ProviderEvent, ProviderError>> {
        loop {
            if let Some(item) = self.queue.pop_front() {
                match item {
                    Ok(ev) => {
                        self.emitted = true;
                        return Some(Ok(ev));
                    }
                    Err(mut e) => {
                        e.retryable &= !self.emitted;
                        if let Some(key) = &self.secret {
                            e.message = redact(&e.message, key);
                        }
                        return Some(Err(e));
                    }
                }
            }
            let resp = self.resp.as_mut()?;
            let mut out = Vec::new();
            let result = match resp.chunk().await {
                Ok(Some(bytes)) => self.absorb(&bytes, &mut out),
                Ok(None) => self.eof(&mut out),
                Err(e) => Err(broke(error_chain(&e))),
            };
            self.queue.extend(out.into_iter().map(Ok));
            match result {
                Ok(false) => {}
                Ok(true) => self.resp = None,
                Err(e) => {
                    self.queue.push_back(Err(e));
                    self.resp = None;
                }
            }
        }
    }

    /// Decodes one chunk of the body; `Ok(true)` when the answer is complete.
    fn absorb(
        &mut self,
        bytes: &[u8],
        out: &mut Vec<ProviderEvent>,
    ) -> Result<bool, ProviderError> {
        for ev in self.decoder.feed(bytes)? {
            if self.parser.on_event(ev, out)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Handles the end of the body.
    fn eof(&mut self, out: &mut Vec<ProviderEvent>) -> Result<bool, ProviderError> {
        if let Some(ev) = self.decoder.finish()? {
            if self.parser.on_event(ev, out)? {
                return Ok(true);
            }
        }
        self.parser.on_eof(out)?;
        Ok(true)
    }

    /// The stream of the remaining items, after `first` (an item already taken with
    /// [`Driver::next_item`]).
    pub fn into_stream(
        self,
        first: Option<Result<ProviderEvent, ProviderError>>,
    ) -> BoxStream<'static, Result<ProviderEvent, ProviderError>> {
        let rest = stream::unfold(self, |mut d| async move {
            let item = d.next_item().await?;
            Some((item, d))
        });
        stream::iter(first).chain(rest).boxed()
    }
}

/// `message` with every occurrence of `secret` replaced, so an error that quotes the
/// request back never carries the API key into the journal.
pub(crate) fn redact(message: &str, secret: &str) -> String {
    if secret.is_empty() {
        return message.to_owned();
    }
    message.replace(secret, "[redacted]")
}

/// An HTTP client error with its causes ("error sending request: connection refused").
pub(crate) fn error_chain(err: &reqwest::Error) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        let piece = s.to_string();
        if !text.contains(&piece) {
            text.push_str(": ");
            text.push_str(&piece);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests

    use super::*;

    fn feed_all(parts: &[&[u8]]) -> Vec<SseEvent> {
        let mut d = SseDecoder::default();
        let mut out = Vec::new();
        for p in parts {
            out.extend(d.feed(p).unwrap());
        }
        out.extend(d.finish().unwrap());
        out
    }

    #[test]
    fn events_survive_any_split() {
        let body = "event: a\ndata: {\"x\": \"é\"}\r\n\r\n: keep-alive\n\ndata: 1\ndata: 2\n\n";
        let expected = vec![
            SseEvent {
                event: Some("a".into()),
                data: "{\"x\": \"é\"}".into(),
            },
            SseEvent {
                event: None,
                data: "1\n2".into(),
            },
        ];
        let bytes = body.as_bytes();
        assert_eq!(feed_all(&[bytes]), expected);
        let singles: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(feed_all(&singles), expected);
        for cut in 0..bytes.len() {
            assert_eq!(
                feed_all(&[&bytes[..cut], &bytes[cut..]]),
                expected,
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn field_forms() {
        let evs = feed_all(&[b"data:no-space\nid: 7\nretry: 10\nevent\ndata\n\n"]);
        assert_eq!(
            evs,
            vec![SseEvent {
                event: Some(String::new()),
                data: "no-space\n".into(),
            }]
        );
        // An event without data lines is not dispatched.
        assert!(feed_all(&[b"event: ping\n\n"]).is_empty());
    }

    #[test]
    fn unterminated_last_event_is_kept() {
        assert_eq!(
            feed_all(&[b"data: [DONE]"]),
            vec![SseEvent {
                event: None,
                data: "[DONE]".into()
            }]
        );
        assert_eq!(
            feed_all(&[b"data: [DONE]\n"]),
            vec![SseEvent {
                event: None,
                data: "[DONE]".into()
            }]
        );
    }

    #[test]
    fn bad_utf8_is_malformed() {
        let mut d = SseDecoder::default();
        let e = d.feed(b"data: \xff\n\n").unwrap_err();
        assert!(e.message.starts_with("malformed chunk from the provider"));
        assert!(!e.retryable);
    }

    #[test]
    fn redaction() {
        assert_eq!(
            redact("bad key sk-1 here", "sk-1"),
            "bad key [redacted] here"
        );
        assert_eq!(redact("x", ""), "x");
        assert_eq!(quote("ab"), "\"ab\"");
    }
}
