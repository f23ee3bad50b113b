//! Following a session: replay from the journal, then live records, with no gap and
//! no duplicate at the switch-over. Shared by SSE and WebSocket subscribers.

use std::sync::Arc;

use axum::extract::ws::Message;
use r1_proto::{ApiError, EventKind, EventRecord};
use serde_json::json;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::sessions::{journal_error, Session};
use crate::Hub;

/// How many records one replay read takes from the journal.
const REPLAY_PAGE: usize = 512;

/// What a follower is handed.
pub enum Item {
    /// A journal record, in seq order.
    Record(EventRecord),
    /// The follower asked for records past the journal's head (the journal was
    /// repaired, or the client is confused): it must continue from `next_seq`.
    Resync {
        /// Where the follower continues.
        next_seq: u64,
        /// The head the journal has.
        last_seq: u64,
    },
}

impl Item {
    /// The record as it goes on the wire (a resync is a synthetic, unjournaled record).
    pub fn into_record(self) -> EventRecord {
        match self {
            Item::Record(r) => r,
            Item::Resync { next_seq, last_seq } => EventRecord {
                v: 1,
                seq: last_seq,
                at: crate::fsutil::now_rfc3339(),
                kind: EventKind::SessionResync,
                lane: "main".into(),
                data: json!({
                    "next_seq": next_seq,
                    "last_seq": last_seq,
                    "reason": "the journal's head is behind the position you asked for; records were recovered or repaired; continue from next_seq",
                }),
            },
        }
    }
}

/// Delivers every record of `s` from `since` on to `deliver`, live, until `deliver`
/// returns false, `stop` fires, or the session's journal closes (after its last
/// record). A follower that lags behind the live broadcast catches up from the file.
pub async fn follow(
    s: Arc<Session>,
    since: u64,
    stop: CancellationToken,
    mut deliver: impl FnMut(Item) -> bool,
) -> Result<(), ApiError> {
    if let (None, Some(readonly)) = (&s.journal, s.readonly.get()) {
        // A quarantined session: its good records, then the end of the stream (nothing
        // new can be written to it until it is repaired).
        let mut next = since.max(1);
        loop {
            let page = readonly
                .read_from(next, REPLAY_PAGE)
                .await
                .map_err(|e| journal_error(&e))?;
            let Some(last) = page.last().map(|r| r.seq) else {
                return Ok(());
            };
            for r in page {
                if !deliver(Item::Record(r)) {
                    return Ok(());
                }
            }
            next = last + 1;
        }
    }
    let journal = s.journal()?.clone();
    let head = journal.last_seq();
    let mut next = since.max(1);
    if next > head + 1 {
        if !deliver(Item::Resync {
            next_seq: head + 1,
            last_seq: head,
        }) {
            return Ok(());
        }
        next = head + 1;
    }
    loop {
        // Subscribe before reading, so every record is in the file or in `live`.
        let mut live = s.subscribe();
        loop {
            let page = journal
                .read_from(next, REPLAY_PAGE)
                .await
                .map_err(|e| journal_error(&e))?;
            let Some(last) = page.last().map(|r| r.seq) else {
                break;
            };
            for r in page {
                if r.seq < next {
                    continue;
                }
                next = r.seq + 1;
                if !deliver(Item::Record(r)) {
                    return Ok(());
                }
            }
            if last + 1 < next {
                break;
            }
        }
        loop {
            let got = tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                g = live.recv() => g,
            };
            match got {
                Ok(r) if r.seq < next => continue,
                Ok(r) if r.seq == next => {
                    next += 1;
                    if !deliver(Item::Record(r)) {
                        return Ok(());
                    }
                }
                // A gap or a lag: catch up from the file.
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => break,
                Err(broadcast::error::RecvError::Closed)
                    if s.state() == r1_proto::SessionState::Ended =>
                {
                    // The journal closed (session ended): deliver what is left, then end.
                    let rest = journal
                        .read_from(next, usize::MAX)
                        .await
                        .unwrap_or_default();
                    for r in rest {
                        if !deliver(Item::Record(r)) {
                            break;
                        }
                    }
                    return Ok(());
                }
                // The feed was freed while this follower resubscribes: start over.
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
    }
}

/// Starts forwarding a session's records from `since` to a WebSocket subscriber as
/// `$/event` notifications.
pub fn spawn_ws_forwarder(
    hub: Hub,
    session_id: String,
    since: u64,
    sub: String,
    out: mpsc::Sender<Message>,
    overflow: CancellationToken,
) -> Result<JoinHandle<()>, ApiError> {
    let s = hub.session(&session_id)?;
    s.readable()?;
    let slot = hub.subscriber_slot(Some(&session_id))?;
    let stop = hub.shutdown_token().clone();
    Ok(tokio::spawn(async move {
        // Aborting the task (unsubscribe, socket closed) drops the slot with it.
        let _slot = slot;
        let _ = follow(s, since, stop, |item| {
            crate::ws::notify(
                &out,
                &overflow,
                json!({"subscription": sub, "session_id": session_id, "record": item.into_record()}),
            )
        })
        .await;
    }))
}
