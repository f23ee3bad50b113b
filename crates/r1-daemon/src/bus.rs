//! The daemon bus: daemon-level events in order, kept in a bounded in-memory ring
//! for replay, appended to `bus/events.ndjson`, and fanned out to live subscribers as
//! shared frames (`session_stream::Frame`), each through its own queue bounded in bytes.
//!
//! The seq continues across restarts: on open the last seq is read from the tail of
//! the file (a bounded read, never the whole file), and so are the most recent events,
//! so `Last-Event-ID` still means something after a restart. The file is rotated to
//! `events.ndjson.1` above [`ROTATE_BYTES`], so it never grows without bound.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use futures_util::Stream;
use r1_proto::events::bus::BusPayload;
use r1_proto::BusEvent;
use tokio_util::sync::CancellationToken;

use crate::fsutil::now_rfc3339;
use crate::session_stream::QueueLimits;
use crate::session_stream::{new_queue, pop_live, End, Fanout, Frame, LiveQueue, PopLive};
use crate::subscribers::Slot;
use crate::Hub;

/// How many recent bus events are kept for replay by `Last-Event-ID`.
const RING: usize = 1024;
/// Above this size the bus file is rotated to `events.ndjson.1` (the previous `.1` is
/// replaced): the bus is a recent history, not an archive.
pub const ROTATE_BYTES: u64 = 4 * 1024 * 1024;
/// How much of a file's tail is read on open to find the last seq and the recent
/// events: a ring's worth of ordinary events, and never the whole file.
const TAIL_BYTES: u64 = 256 * 1024;

/// The daemon bus.
#[derive(Debug)]
pub struct Bus {
    path: PathBuf,
    inner: Mutex<BusInner>,
}

#[derive(Debug)]
struct BusInner {
    seq: u64,
    recent: VecDeque<Arc<Frame>>,
    file: Option<File>,
    size: u64,
    fanout: Fanout,
}

/// The complete events in the last [`TAIL_BYTES`] of `path`, oldest first.
fn read_tail(path: &Path) -> Vec<BusEvent> {
    let Ok(mut f) = File::open(path) else {
        return Vec::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(TAIL_BYTES);
    if f.seek(SeekFrom::Start(start)).is_err() {
        return Vec::new();
    }
    let mut buf = Vec::new();
    if f.take(TAIL_BYTES).read_to_end(&mut buf).is_err() {
        return Vec::new();
    }
    let mut lines = buf.split(|b| *b == b'\n');
    if start > 0 {
        // The first line is cut by the seek.
        lines.next();
    }
    lines
        .filter_map(|l| serde_json::from_slice::<BusEvent>(l).ok())
        .collect()
}

fn rotated(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".1");
    PathBuf::from(p)
}

fn frame_of(ev: &BusEvent) -> Arc<Frame> {
    let json = serde_json::to_string(ev).unwrap_or_else(|_| "null".into());
    Frame::new(ev.seq, &ev.kind, &json)
}

impl Bus {
    /// A bus that appends to `path` (when it can be opened), continuing the seq and
    /// the recent history found in its tail (or in the rotated file's).
    pub fn open(path: &Path) -> Bus {
        let mut seq = 0;
        let mut recent = VecDeque::with_capacity(RING);
        for ev in read_tail(&rotated(path)).into_iter().chain(read_tail(path)) {
            if ev.seq <= seq {
                continue;
            }
            seq = ev.seq;
            if recent.len() == RING {
                recent.pop_front();
            }
            recent.push_back(frame_of(&ev));
        }
        let file = Self::open_file(path);
        let size = file
            .as_ref()
            .and_then(|f| f.metadata().ok())
            .map_or(0, |m| m.len());
        Bus {
            path: path.to_path_buf(),
            inner: Mutex::new(BusInner {
                seq,
                recent,
                file,
                size,
                fanout: Fanout::default(),
            }),
        }
    }

    fn open_file(path: &Path) -> Option<File> {
        OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| tracing::warn!("bus log {} unavailable: {e}", path.display()))
            .ok()
    }

    fn lock(&self) -> MutexGuard<'_, BusInner> {
        // A poisoned lock means a panic elsewhere already; the bus is still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The seq of the last event published.
    pub fn head(&self) -> u64 {
        self.lock().seq
    }

    /// Publishes one event. Sequence numbering, the ring, the file and the fan-out
    /// happen under one lock so every subscriber sees the same order; no subscriber
    /// can block it (a full queue skips, see `session_stream`).
    pub fn publish<E: BusPayload>(&self, event: &E) {
        self.publish_raw(E::KIND, event.to_value());
    }

    /// Publishes one event of any kind and payload (tests, and kinds with no type).
    fn publish_raw(&self, kind: &str, data: serde_json::Value) {
        let mut inner = self.lock();
        inner.seq = inner.seq.saturating_add(1);
        let ev = BusEvent {
            seq: inner.seq,
            at: now_rfc3339(),
            kind: kind.to_string(),
            data,
        };
        let frame = frame_of(&ev);
        let mut line = frame.json().to_vec();
        line.push(b'\n');
        if let Some(f) = inner.file.as_mut() {
            match f.write_all(&line) {
                Ok(()) => inner.size += line.len() as u64,
                Err(e) => tracing::warn!("bus log write failed: {e}"),
            }
        }
        if inner.size > ROTATE_BYTES {
            // The seq lives on in memory and in the rotated file's tail.
            let to = rotated(&self.path);
            inner.file = None;
            if let Err(e) = std::fs::rename(&self.path, &to) {
                tracing::warn!("bus log rotation failed: {e}");
            }
            inner.file = Self::open_file(&self.path);
            inner.size = 0;
        }
        if inner.recent.len() == RING {
            inner.recent.pop_front();
        }
        inner.recent.push_back(Arc::clone(&frame));
        inner.fanout.publish(&frame);
    }

    /// The events with `seq >= since` still in the ring, the head, and a live queue for
    /// every later event, taken under one lock so there is no gap and no duplicate.
    fn subscribe_from(
        &self,
        since: u64,
        limits: QueueLimits,
        slot: Slot,
        dropped: CancellationToken,
    ) -> (VecDeque<Arc<Frame>>, u64, Arc<LiveQueue>) {
        let mut inner = self.lock();
        let backlog = inner
            .recent
            .iter()
            .filter(|f| f.seq >= since)
            .cloned()
            .collect();
        let q = new_queue(limits, Some(slot), dropped, "bus".into(), false);
        inner.fanout.add(&q);
        (backlog, inner.seq, q)
    }

    /// After a live queue skipped events: the ring's events after `last`, with the
    /// queue emptied under the same lock; `None` when the ring no longer has them.
    fn catch_up(&self, q: &LiveQueue, last: u64) -> Option<VecDeque<Arc<Frame>>> {
        let inner = self.lock();
        q.reset_live();
        let missed: VecDeque<_> = inner
            .recent
            .iter()
            .filter(|f| f.seq > last)
            .cloned()
            .collect();
        match missed.front() {
            Some(f) if f.seq > last.saturating_add(1) => None,
            _ => Some(missed),
        }
    }
}

/// Every bus event from `since` on still in the ring (nothing when `since` is past the
/// head), then live events, until `stop` fires or the subscriber is dropped as too
/// slow (the last item is then `Err(TooSlow)` and `dropped` is cancelled).
pub fn follow(
    hub: Hub,
    since: u64,
    limits: QueueLimits,
    slot: Slot,
    stop: CancellationToken,
    dropped: CancellationToken,
) -> impl Stream<Item = Result<Arc<Frame>, End>> + Send + 'static {
    let (buffer, head, q) = hub.bus().subscribe_from(since, limits, slot, dropped);
    let last = buffer.back().map_or(head, |f| f.seq);
    let st = BusFollower {
        hub,
        buffer,
        last,
        q,
        stop,
        finished: false,
    };
    futures_util::stream::unfold(st, |mut st| async move {
        let item = st.next_item().await?;
        Some((item, st))
    })
}

struct BusFollower {
    hub: Hub,
    buffer: VecDeque<Arc<Frame>>,
    /// The last seq delivered (or the head when subscribing past it).
    last: u64,
    q: Arc<LiveQueue>,
    stop: CancellationToken,
    finished: bool,
}

impl BusFollower {
    async fn next_item(&mut self) -> Option<Result<Arc<Frame>, End>> {
        loop {
            if let Some(f) = self.buffer.pop_front() {
                return Some(Ok(f));
            }
            if self.finished || self.stop.is_cancelled() {
                return None;
            }
            match pop_live(&self.q) {
                PopLive::Frame(f) if f.seq <= self.last => {}
                PopLive::Frame(f) => {
                    self.last = f.seq;
                    return Some(Ok(f));
                }
                PopLive::Lagged { closed: true } => self.finished = true,
                PopLive::Lagged { closed: false } => {
                    match self.hub.bus().catch_up(&self.q, self.last) {
                        Some(missed) => {
                            self.last = missed.back().map_or(self.last, |f| f.seq);
                            self.buffer = missed;
                        }
                        None => {
                            self.finished = true;
                            return Some(Err(End::TooSlow));
                        }
                    }
                }
                PopLive::TooSlow => {
                    self.finished = true;
                    return Some(Err(End::TooSlow));
                }
                PopLive::Empty => {
                    tokio::select! {
                        () = self.stop.cancelled() => return None,
                        () = self.q.notified() => {}
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seq_continues_across_open_and_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.ndjson");
        let bus = Bus::open(&path);
        let big = "x".repeat(64 * 1024);
        // Publish until the file has just been rotated: the live file is then empty
        // and the seq must come from the rotated file's tail.
        let mut k = 0;
        loop {
            bus.publish_raw("test", serde_json::json!({ "pad": big }));
            k += 1;
            if std::fs::metadata(&path).unwrap().len() == 0 {
                break;
            }
            assert!(k < 1000, "the bus file was never rotated");
        }
        assert!(std::fs::metadata(rotated(&path)).unwrap().len() > ROTATE_BYTES);
        drop(bus);
        let again = Bus::open(&path);
        assert_eq!(again.head(), k, "the seq continues from the rotated file");
        for _ in 0..3 {
            again.publish_raw("test", serde_json::json!({}));
        }
        drop(again);
        assert_eq!(Bus::open(&path).head(), k + 3, "and from the live file");
    }
}
