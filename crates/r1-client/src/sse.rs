//! A reader of `text/event-stream` bodies: the daemon's event streams.

use bytes::{Buf, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::ClientError;

/// One server-sent event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseFrame {
    /// `id:`, when given.
    pub id: Option<String>,
    /// `event:`, `message` when not given.
    pub event: String,
    /// `data:` lines joined with newlines.
    pub data: String,
}

/// Reads frames from a streaming body, skipping heartbeat comments.
pub struct SseReader {
    body: Incoming,
    buf: BytesMut,
}

impl SseReader {
    /// A reader over `body`.
    pub fn new(body: Incoming) -> SseReader {
        SseReader {
            body,
            buf: BytesMut::new(),
        }
    }

    /// The next frame; `None` when the stream ended.
    pub async fn next(&mut self) -> Option<Result<SseFrame, ClientError>> {
        loop {
            if let Some(frame) = self.take_frame() {
                if frame.data.is_empty() && frame.id.is_none() && frame.event.is_empty() {
                    continue;
                }
                return Some(Ok(frame));
            }
            match self.body.frame().await {
                None => return None,
                Some(Err(e)) => {
                    return Some(Err(ClientError::Unreachable(format!(
                        "event stream broke: {e}"
                    ))))
                }
                Some(Ok(f)) => {
                    if let Ok(data) = f.into_data() {
                        self.buf.extend_from_slice(&data);
                    }
                }
            }
        }
    }

    fn take_frame(&mut self) -> Option<SseFrame> {
        let end = self.buf.windows(2).position(|w| w == b"\n\n")?;
        let raw = self.buf[..end].to_vec();
        self.buf.advance(end + 2);
        let text = String::from_utf8_lossy(&raw);
        let mut frame = SseFrame::default();
        let mut data: Vec<&str> = Vec::new();
        for line in text.lines() {
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "id" => frame.id = Some(value.to_string()),
                "event" => frame.event = value.to_string(),
                "data" => data.push(value),
                _ => {}
            }
        }
        frame.data = data.join("\n");
        Some(frame)
    }
}
