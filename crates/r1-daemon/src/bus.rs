//! The daemon bus: daemon-level events in order, kept in a bounded in-memory ring
//! for replay, appended to `bus/events.ndjson`, and broadcast to live subscribers.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Mutex;

use r1_proto::BusEvent;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::fsutil::now_rfc3339;

/// How many recent bus events are kept for replay by `Last-Event-ID`.
const RING: usize = 1024;
/// How far a live bus subscriber may fall behind before it is dropped.
const SUBSCRIBER_QUEUE: usize = 256;

/// The daemon bus.
#[derive(Debug)]
pub struct Bus {
    tx: broadcast::Sender<BusEvent>,
    inner: Mutex<BusInner>,
}

#[derive(Debug)]
struct BusInner {
    seq: u64,
    recent: VecDeque<BusEvent>,
    file: Option<File>,
}

impl Bus {
    /// A bus that appends to `path` (when it can be opened).
    pub fn open(path: &Path) -> Bus {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| tracing::warn!("bus log {} unavailable: {e}", path.display()))
            .ok();
        let (tx, _) = broadcast::channel(SUBSCRIBER_QUEUE);
        Bus {
            tx,
            inner: Mutex::new(BusInner {
                seq: 0,
                recent: VecDeque::with_capacity(RING),
                file,
            }),
        }
    }

    /// Publishes one event. Sequence numbering, the ring, the file and the broadcast
    /// happen under one lock so every subscriber sees the same order.
    pub fn publish(&self, kind: &str, data: serde_json::Value) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        inner.seq += 1;
        let ev = BusEvent {
            seq: inner.seq,
            at: now_rfc3339(),
            kind: kind.to_string(),
            data,
        };
        if let Some(f) = inner.file.as_mut() {
            if let Ok(mut line) = serde_json::to_vec(&ev) {
                line.push(b'\n');
                if let Err(e) = f.write_all(&line) {
                    tracing::warn!("bus log write failed: {e}");
                }
            }
        }
        if inner.recent.len() == RING {
            inner.recent.pop_front();
        }
        inner.recent.push_back(ev.clone());
        let _ = self.tx.send(ev);
    }

    /// The events with `seq >= since` still in the ring, and a receiver for every
    /// later one, taken together so there is no gap and no duplicate between them.
    fn subscribe_from(&self, since: u64) -> (Vec<BusEvent>, broadcast::Receiver<BusEvent>) {
        match self.inner.lock() {
            Ok(inner) => {
                let backlog = inner
                    .recent
                    .iter()
                    .filter(|e| e.seq >= since)
                    .cloned()
                    .collect();
                (backlog, self.tx.subscribe())
            }
            Err(_) => (Vec::new(), self.tx.subscribe()),
        }
    }

    /// Delivers every event from `since` on (the ring's backlog, then live ones) to
    /// `deliver` until it returns false, `stop` fires, or this subscriber falls so far
    /// behind that the broadcast dropped events for it; that last case returns true, so
    /// the caller can tell its client why it was cut off.
    pub async fn follow<F, Fut>(&self, since: u64, stop: CancellationToken, mut deliver: F) -> bool
    where
        F: FnMut(BusEvent) -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        // The backlog and the receiver are taken under one lock, so live events all come
        // after the backlog; `last` only guards against a repeat.
        let (backlog, mut live) = self.subscribe_from(since);
        let mut last = 0;
        for e in backlog {
            last = e.seq;
            if !deliver(e).await {
                return false;
            }
        }
        loop {
            let next = tokio::select! {
                _ = stop.cancelled() => return false,
                n = live.recv() => n,
            };
            match next {
                Ok(e) if e.seq <= last => continue,
                Ok(e) => {
                    last = e.seq;
                    if !deliver(e).await {
                        return false;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => return true,
                Err(broadcast::error::RecvError::Closed) => return false,
            }
        }
    }
}
