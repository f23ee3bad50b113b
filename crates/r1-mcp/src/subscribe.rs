//! `r1_lanes_subscribe`: a session's lane events as MCP progress notifications, coalesced
//! to at most [`RATE_HZ`] a second, on one long tool call.
//!
//! The journal is the queue: the call reads it with `session.tail` from `since_seq`,
//! sends what it read as one `notifications/progress` (consecutive deltas of a lane
//! merged into one event, at most [`MAX_BATCH_BYTES`] per notification), waits out the
//! interval, and reads on from where it stopped. Nothing piles up in memory for a
//! client that reads slowly: the next batch is read only once the last one was written.
//! A client that does not take a notification within [`SEND_GRACE`] is dropped (the
//! call ends with `timeout`), so it holds no daemon resources for longer. The call ends
//! when the session's turn ends, when the session ends, or after `max_duration_ms`.

use std::time::Duration;

use r1_proto::{Api, ApiError, ErrorCode, EventKind, EventRecord, TailParams};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::time::Instant;

/// The tool's wire name.
pub(crate) const NAME: &str = "r1_lanes_subscribe";
/// Its dotted alias.
pub(crate) const ALIAS: &str = "r1.lanes.subscribe";

/// The most notifications a second one subscription sends (one per 125 ms).
pub const RATE_HZ: u64 = 8;
/// The most event bytes (texts and payloads) in one notification; the rest waits for
/// the next one.
pub const MAX_BATCH_BYTES: usize = 256 * 1024;
/// How long one notification may take to be written to the client before the
/// subscriber is dropped as too slow.
pub const SEND_GRACE: Duration = Duration::from_secs(10);
/// The default and the longest `max_duration_ms`.
pub const DEFAULT_MAX_DURATION_MS: u64 = 300_000;
/// The longest `max_duration_ms`.
pub const MAX_MAX_DURATION_MS: u64 = 3_600_000;
/// Records asked for per `session.tail` page.
const PAGE: u64 = 500;
/// The longest one `session.tail` waits, so the deadline and a cancellation are seen.
const POLL_WAIT_MS: u64 = 1_000;

/// The arguments of `r1_lanes_subscribe`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LanesSubscribeParams {
    /// The session id (`ses_…`).
    pub session_id: String,
    /// The first journal seq to stream (0 or 1: from the start; a previous answer's
    /// `next_seq` to continue).
    pub since_seq: u64,
    /// Only this lane's events (`main`, `tool_…`); all lanes without it.
    #[serde(default)]
    pub lane_id: Option<String>,
    /// End the call after this many milliseconds even if the turn goes on (default
    /// 300000, at most 3600000).
    #[serde(default)]
    pub max_duration_ms: Option<u64>,
}

/// How a subscription ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionEnd {
    /// The session's turn ended (it is idle, paused, waiting on nothing, or failed).
    TurnEnded,
    /// The session ended.
    SessionEnded,
    /// `max_duration_ms` elapsed.
    MaxDuration,
    /// The client cancelled the call.
    Cancelled,
}

/// What `r1_lanes_subscribe` answers when it ends.
#[derive(Debug, Serialize, JsonSchema)]
pub struct LanesSubscribeResult {
    /// The session.
    pub session_id: String,
    /// Why the call ended.
    pub ended: SubscriptionEnd,
    /// The seq to pass as `since_seq` to continue.
    pub next_seq: u64,
    /// Progress notifications sent.
    pub notifications: u64,
    /// Journal records delivered (before coalescing).
    pub records: u64,
}

/// One coalesced event of a notification.
#[derive(Debug, Serialize)]
struct LaneEvent {
    lane: String,
    kind: &'static str,
    /// The seq of its first record.
    seq: u64,
    /// The seq of its last record (deltas merged into it).
    to_seq: u64,
    /// For deltas: the text, all merged deltas appended.
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<String>,
    /// For other records: their payload.
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<Value>,
}

/// Whether `r` is a lane event: `lane.*` records and the main lane's `session.delta`.
fn is_lane_event(r: &EventRecord) -> bool {
    matches!(
        r.kind,
        EventKind::LaneCreated
            | EventKind::LaneDelta
            | EventKind::LaneStatus
            | EventKind::LaneKilled
            | EventKind::SessionDelta
    )
}

/// How a record ends the subscription, if it does.
fn end_of(r: &EventRecord) -> Option<SubscriptionEnd> {
    match r.kind {
        EventKind::SessionEnded => Some(SubscriptionEnd::SessionEnded),
        EventKind::SessionState => match r.data.get("state").and_then(Value::as_str) {
            Some("idle" | "paused" | "error") => Some(SubscriptionEnd::TurnEnded),
            Some("ended") => Some(SubscriptionEnd::SessionEnded),
            _ => None,
        },
        _ => None,
    }
}

/// The batch of one notification.
#[derive(Default)]
struct Batch {
    events: Vec<LaneEvent>,
    bytes: usize,
}

impl Batch {
    /// Adds `r`, merging a delta into the previous event when it continues the same
    /// lane's text.
    fn push(&mut self, r: EventRecord) {
        let delta = matches!(r.kind, EventKind::LaneDelta | EventKind::SessionDelta);
        if delta {
            let text = r.data.get("text").and_then(Value::as_str).unwrap_or("");
            self.bytes += text.len();
            if let Some(last) = self.events.last_mut() {
                if last.kind == r.kind.as_str() && last.lane == r.lane {
                    if let Some(t) = last.text.as_mut() {
                        t.push_str(text);
                        last.to_seq = r.seq;
                        return;
                    }
                }
            }
            let text = text.to_string();
            self.events.push(LaneEvent {
                lane: r.lane,
                kind: r.kind.as_str(),
                seq: r.seq,
                to_seq: r.seq,
                text: Some(text),
                data: None,
            });
        } else {
            self.bytes += r.data.to_string().len();
            self.events.push(LaneEvent {
                lane: r.lane,
                kind: r.kind.as_str(),
                seq: r.seq,
                to_seq: r.seq,
                text: None,
                data: Some(r.data),
            });
        }
    }
}

/// Where notifications go: the progress notifications of one call.
pub(crate) trait ProgressSink: Send + Sync {
    /// Sends one notification numbered `n` (1, 2, …) with `message`; an error when
    /// the client is gone.
    fn send(
        &self,
        n: u64,
        message: String,
    ) -> impl std::future::Future<Output = Result<(), String>> + Send;
}

/// Runs one subscription until it ends; see the module doc.
pub(crate) async fn run(
    api: &dyn Api,
    p: LanesSubscribeParams,
    sink: &impl ProgressSink,
    cancel: &tokio_util::sync::CancellationToken,
) -> Result<LanesSubscribeResult, ApiError> {
    let max_ms = p.max_duration_ms.unwrap_or(DEFAULT_MAX_DURATION_MS);
    if !(1..=MAX_MAX_DURATION_MS).contains(&max_ms) {
        return Err(ApiError::validation(format!(
            "`max_duration_ms` must be 1 to {MAX_MAX_DURATION_MS}"
        )));
    }
    // The session's newest seq now: a turn end after it ends the call, one replayed
    // from before only if a turn started in the stream first.
    let start = api
        .session_get(r1_proto::SessionRef::new(p.session_id.clone()))
        .await?;
    let deadline = Instant::now() + Duration::from_millis(max_ms);
    let interval = Duration::from_millis(1000 / RATE_HZ);
    let mut since = p.since_seq.max(1);
    let mut next_send = Instant::now();
    let mut sent = 0u64;
    let mut records = 0u64;
    let mut saw_busy = false;
    let ended = 'outer: loop {
        tokio::select! {
            () = tokio::time::sleep_until(next_send.min(deadline)) => {}
            () = cancel.cancelled() => break SubscriptionEnd::Cancelled,
        }
        let mut batch = Batch::default();
        let mut end = None;
        // Read until caught up, the batch is full, or (with nothing yet) a record comes.
        loop {
            let now = Instant::now();
            if now >= deadline {
                end = end.or(Some(SubscriptionEnd::MaxDuration));
                break;
            }
            let wait_ms = if batch.events.is_empty() {
                let left = deadline.saturating_duration_since(now).as_millis();
                u64::try_from(left).unwrap_or(u64::MAX).min(POLL_WAIT_MS)
            } else {
                0
            };
            let tail = api.session_tail(TailParams {
                session_id: p.session_id.clone(),
                since_seq: since,
                wait_ms: Some(wait_ms),
                limit: Some(PAGE),
            });
            let page = tokio::select! {
                page = tail => page?,
                () = cancel.cancelled() => break 'outer SubscriptionEnd::Cancelled,
            };
            let full = page.records.len() as u64 >= PAGE;
            let mut stopped_early = false;
            for r in page.records {
                if batch.bytes >= MAX_BATCH_BYTES {
                    // The rest is read again for the next notification.
                    stopped_early = true;
                    break;
                }
                since = r.seq + 1;
                records += 1;
                if r.kind == EventKind::SessionState
                    && r.data.get("state").and_then(Value::as_str) == Some("busy")
                {
                    saw_busy = true;
                }
                let ends = end_of(&r).filter(|_| saw_busy || r.seq > start.last_seq);
                let wanted = is_lane_event(&r) && p.lane_id.as_ref().is_none_or(|l| *l == r.lane);
                if wanted {
                    batch.push(r);
                }
                if let Some(e) = ends {
                    end = Some(e);
                    break;
                }
            }
            if end.is_some() || stopped_early {
                break;
            }
            since = since.max(page.next_seq);
            if !full && !batch.events.is_empty() {
                break;
            }
        }
        if !batch.events.is_empty() {
            let message = json!({"next_seq": since, "events": batch.events}).to_string();
            sent += 1;
            match tokio::time::timeout(SEND_GRACE, sink.send(sent, message)).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => break SubscriptionEnd::Cancelled,
                Err(_) => {
                    return Err(ApiError::new(
                        ErrorCode::Timeout,
                        format!(
                            "the client took no notification for {} s; this subscriber was \
                             dropped as too slow; subscribe again from since_seq {since}",
                            SEND_GRACE.as_secs()
                        ),
                    ))
                }
            }
            next_send = Instant::now() + interval;
        }
        if let Some(e) = end {
            break e;
        }
    };
    Ok(LanesSubscribeResult {
        session_id: p.session_id,
        ended,
        next_seq: since,
        notifications: sent,
        records,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(seq: u64, kind: EventKind, lane: &str, data: Value) -> EventRecord {
        EventRecord {
            v: 1,
            seq,
            at: String::new(),
            kind,
            lane: lane.into(),
            data,
        }
    }

    #[test]
    fn deltas_of_a_lane_merge_and_others_stay_apart() {
        let mut b = Batch::default();
        b.push(rec(
            1,
            EventKind::LaneCreated,
            "tool_a",
            json!({"lane": "tool_a"}),
        ));
        for (seq, t) in [(2, "a"), (3, "b"), (4, "c")] {
            b.push(rec(seq, EventKind::LaneDelta, "tool_a", json!({"text": t})));
        }
        b.push(rec(5, EventKind::LaneDelta, "tool_b", json!({"text": "x"})));
        b.push(rec(6, EventKind::LaneDelta, "tool_a", json!({"text": "d"})));
        let got: Vec<_> = b
            .events
            .iter()
            .map(|e| (e.lane.as_str(), e.seq, e.to_seq, e.text.clone()))
            .collect();
        assert_eq!(
            got,
            [
                ("tool_a", 1, 1, None),
                ("tool_a", 2, 4, Some("abc".to_string())),
                ("tool_b", 5, 5, Some("x".to_string())),
                ("tool_a", 6, 6, Some("d".to_string())),
            ]
        );
        assert!(b.bytes >= 5);
    }

    #[test]
    fn turn_and_session_ends_are_recognised() {
        let state = |s: &str| rec(1, EventKind::SessionState, "main", json!({"state": s}));
        assert_eq!(end_of(&state("idle")), Some(SubscriptionEnd::TurnEnded));
        assert_eq!(end_of(&state("busy")), None);
        assert_eq!(end_of(&state("waiting_on_approval")), None);
        assert_eq!(
            end_of(&rec(2, EventKind::SessionEnded, "main", json!({}))),
            Some(SubscriptionEnd::SessionEnded)
        );
        assert!(!is_lane_event(&state("idle")));
    }
}
