//! Following a session (or the daemon bus) as a [`Stream`] of shared, pre-serialized
//! [`Frame`]s, and the per-subscriber queue that bounds it in bytes.
//!
//! A follower replays from the journal, then continues from its live queue, with no gap
//! and no duplicate at the switch-over: it subscribes before it reads, skips what it
//! already has, and goes back to the file whenever the live queue skipped a record.
//! Every transport (SSE on both listeners, WebSocket `subscribe`) is a small pump
//! from this stream into its socket, so replay is paced by the socket itself.
//!
//! Flow control: each subscriber's live queue holds at most `[limits]
//! subscriber_queue_bytes`. While the follower is replaying, a full queue only means
//! "read the file again"; once it is live, a queue that stays full longer than
//! `slow_subscriber_grace_ms` marks the subscriber too slow: its queue is freed, its
//! subscriber slot given back, and the transport says so and closes. A socket whose
//! writes stall is cut by the connection's write timeout (`conn`).

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::Stream;
use r1_journal::Journal;
use r1_proto::events::SessionResync;
use r1_proto::{ApiError, EventData, EventKind, EventRecord, SessionState};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::sessions::{journal_error, Session};
use crate::subscribers::{Slot, Subscribers};
use crate::Hub;

/// How many records one replay read takes from the journal: large enough that a long
/// replay is a few hundred reads, small enough that a page is a few hundred KB.
const REPLAY_PAGE: usize = 512;
/// What a queued frame costs beyond its bytes (the `Arc`, the queue slot), so a flood
/// of tiny frames is bounded too.
const FRAME_OVERHEAD: usize = 64;

/// One event as it goes on the wire, serialized once and shared by every subscriber:
/// the SSE text (`id:`, `event:`, `data:` and the blank line) in one buffer, with the
/// JSON record as a zero-copy slice of it for WebSocket notifications.
#[derive(Debug)]
pub struct Frame {
    /// The record's seq (or the bus event's).
    pub seq: u64,
    sse: Bytes,
    json: Range<usize>,
}

impl Frame {
    /// A frame of `event` with JSON `json`. The JSON comes from `serde_json`, which
    /// never writes a raw newline, so it is one `data:` line.
    pub fn new(seq: u64, event: &str, json: &str) -> Arc<Frame> {
        let head = format!("id: {seq}\nevent: {event}\ndata: ");
        let mut sse = String::with_capacity(head.len() + json.len() + 2);
        sse.push_str(&head);
        sse.push_str(json);
        sse.push_str("\n\n");
        Arc::new(Frame {
            seq,
            json: head.len()..head.len() + json.len(),
            sse: Bytes::from(sse),
        })
    }

    /// The frame of a journal record.
    pub fn record(r: &EventRecord) -> Arc<Frame> {
        let json = serde_json::to_string(r).unwrap_or_else(|e| {
            tracing::warn!(seq = r.seq, "could not encode a record: {e}");
            "null".into()
        });
        Frame::new(r.seq, r.kind.as_str(), &json)
    }

    /// The whole SSE event.
    pub fn sse(&self) -> Bytes {
        self.sse.clone()
    }

    /// The record's JSON, sharing the frame's buffer.
    pub fn json(&self) -> Bytes {
        self.sse.slice(self.json.clone())
    }

    /// What this frame counts for against a queue's byte budget.
    pub fn cost(&self) -> usize {
        self.sse.len() + FRAME_OVERHEAD
    }
}

/// Why a follow stream ended early; it is the stream's last item.
#[derive(Debug, Clone)]
pub enum End {
    /// The subscriber's live queue stayed full past the grace period.
    TooSlow,
    /// The journal could not be read.
    Failed(String),
}

/// The bounds of one subscriber's queue, from `[limits]`.
#[derive(Debug, Clone, Copy)]
pub struct QueueLimits {
    /// Bytes of frames the queue may hold.
    pub bytes: usize,
    /// How long a live queue may stay full before its subscriber is dropped.
    pub grace: Duration,
}

impl QueueLimits {
    /// The limits configured for this daemon.
    pub fn of(hub: &Hub) -> QueueLimits {
        let l = &hub.config().limits;
        QueueLimits {
            bytes: l.subscriber_queue_bytes,
            grace: Duration::from_millis(l.slow_subscriber_grace_ms),
        }
    }
}

/// One subscriber's live queue: filled by the publisher (never blocking it), drained
/// by the subscriber's follow stream.
#[derive(Debug)]
pub struct LiveQueue {
    st: Mutex<QueueState>,
    wake: Notify,
    limits: QueueLimits,
    /// Cancelled when the subscriber is dropped as too slow, so a pump blocked on its
    /// socket learns it at once.
    dropped: CancellationToken,
    /// What the log calls this subscriber.
    what: String,
    /// The daemon's subscriber counts, which total the queued bytes and the drops.
    stats: Option<Arc<Subscribers>>,
}

impl Drop for LiveQueue {
    fn drop(&mut self) {
        let bytes = self.lock().bytes;
        if let Some(s) = &self.stats {
            s.queued(bytes, 0);
        }
    }
}

#[derive(Debug)]
struct QueueState {
    frames: VecDeque<Arc<Frame>>,
    bytes: usize,
    /// The follower reads the file; a full queue then is not slowness.
    replaying: bool,
    /// Frames were skipped because the queue was full; the follower must re-read.
    lagged: bool,
    /// Since when a live queue has been full.
    full_since: Option<Instant>,
    too_slow: bool,
    /// The publisher is gone (the session ended or its feed was reset).
    closed: bool,
    /// The subscriber's place in the counts, given back when it is dropped.
    slot: Option<Slot>,
}

impl LiveQueue {
    fn new(
        limits: QueueLimits,
        slot: Option<Slot>,
        dropped: CancellationToken,
        what: String,
        replaying: bool,
    ) -> Arc<LiveQueue> {
        let stats = slot.as_ref().map(Slot::owner);
        Arc::new(LiveQueue {
            st: Mutex::new(QueueState {
                frames: VecDeque::new(),
                bytes: 0,
                replaying,
                lagged: false,
                full_since: None,
                too_slow: false,
                closed: false,
                slot,
            }),
            wake: Notify::new(),
            limits,
            dropped,
            what,
            stats,
        })
    }

    /// Sets the queue's byte count, keeping the daemon's total in step.
    fn set_bytes(&self, st: &mut QueueState, bytes: usize) {
        if let Some(s) = &self.stats {
            s.queued(st.bytes, bytes);
        }
        st.bytes = bytes;
    }

    fn lock(&self) -> MutexGuard<'_, QueueState> {
        // A poisoned lock means a panic elsewhere already; the queue is still usable.
        self.st.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `f` for the subscriber; false when the subscriber is gone for good. A
    /// frame that does not fit is skipped (the follower re-reads it from the file), and
    /// a live queue that has been full for the grace period drops its subscriber.
    fn offer(&self, f: &Arc<Frame>, now: Instant) -> bool {
        let mut st = self.lock();
        if st.too_slow || st.closed {
            return false;
        }
        // One frame larger than the whole budget still goes through an empty queue, so
        // a big record never stalls a subscriber that keeps up.
        if st.bytes + f.cost() > self.limits.bytes && !st.frames.is_empty() {
            st.lagged = true;
            if st.replaying {
                return true;
            }
            let since = *st.full_since.get_or_insert(now);
            if now.saturating_duration_since(since) < self.limits.grace {
                return true;
            }
            st.too_slow = true;
            st.frames.clear();
            self.set_bytes(&mut st, 0);
            if let Some(s) = &self.stats {
                s.count_dropped();
            }
            let slot = st.slot.take();
            drop(st);
            drop(slot);
            tracing::info!(
                subscriber = %self.what,
                grace_ms = self.limits.grace.as_millis() as u64,
                "dropping a slow subscriber: its queue stayed full past the grace period"
            );
            self.dropped.cancel();
            self.wake.notify_one();
            return false;
        }
        let bytes = st.bytes + f.cost();
        self.set_bytes(&mut st, bytes);
        st.frames.push_back(Arc::clone(f));
        drop(st);
        self.wake.notify_one();
        true
    }

    fn close(&self) {
        self.lock().closed = true;
        self.wake.notify_one();
    }
}

/// The live subscribers of one session or of the bus.
#[derive(Debug, Default)]
pub struct Fanout {
    subs: Vec<Weak<LiveQueue>>,
}

impl Fanout {
    /// Registers a queue.
    pub fn add(&mut self, q: &Arc<LiveQueue>) {
        self.subs.push(Arc::downgrade(q));
    }

    /// Whether anyone listens.
    pub fn is_empty(&self) -> bool {
        self.subs.is_empty()
    }

    /// Offers `f` to every subscriber, forgetting those that went away or were dropped.
    pub fn publish(&mut self, f: &Arc<Frame>) {
        let now = Instant::now();
        self.subs
            .retain(|w| w.upgrade().is_some_and(|q| q.offer(f, now)));
    }

    /// Tells every subscriber that nothing more comes this way.
    pub fn close(&mut self) {
        for q in self.subs.drain(..).filter_map(|w| w.upgrade()) {
            q.close();
        }
    }
}

/// A new live queue for a subscriber of a session (`replaying`: it reads the journal
/// first) or of the bus.
pub fn new_queue(
    limits: QueueLimits,
    slot: Option<Slot>,
    dropped: CancellationToken,
    what: String,
    replaying: bool,
) -> Arc<LiveQueue> {
    LiveQueue::new(limits, slot, dropped, what, replaying)
}

/// What the live queue gave a follower.
enum Pop {
    Frame(Arc<Frame>),
    /// Frames were skipped or the feed closed: read the file.
    Reread {
        closed: bool,
    },
    TooSlow,
    Empty,
}

fn pop(q: &LiveQueue) -> Pop {
    let mut st = q.lock();
    if st.too_slow {
        return Pop::TooSlow;
    }
    if let Some(f) = st.frames.pop_front() {
        let bytes = st.bytes.saturating_sub(f.cost());
        q.set_bytes(&mut st, bytes);
        if st.frames.is_empty() {
            st.full_since = None;
        }
        return Pop::Frame(f);
    }
    if st.lagged || st.closed {
        st.lagged = false;
        st.replaying = true;
        st.full_since = None;
        return Pop::Reread { closed: st.closed };
    }
    Pop::Empty
}

/// The synthetic record for a follower that asked for records past the journal's head
/// (the journal was repaired, or the client is confused): it continues from `next_seq`.
fn resync(next_seq: u64, last_seq: u64) -> Arc<Frame> {
    Frame::record(&EventRecord {
        v: 1,
        seq: last_seq,
        at: crate::fsutil::now_rfc3339(),
        kind: EventKind::SessionResync,
        lane: "main".into(),
        data: EventData::from(SessionResync {
            next_seq,
            last_seq,
            reason: "the journal's head is behind the position you asked for; records were recovered or repaired; continue from next_seq".into(),
        })
        .to_value(),
    })
}

enum Mode {
    /// A quarantined session: its valid prefix, then the end.
    ReadOnly,
    /// Reading the journal from `next`.
    Replay,
    /// Taking records from the live queue.
    Live,
}

struct Follower {
    s: Arc<Session>,
    journal: Option<Journal>,
    next: u64,
    mode: Mode,
    buffer: VecDeque<Arc<Frame>>,
    queue: Option<Arc<LiveQueue>>,
    /// The slot, until the first live queue takes it.
    slot: Option<Slot>,
    limits: QueueLimits,
    dropped: CancellationToken,
    stop: CancellationToken,
    finished: bool,
}

impl Follower {
    /// The next frame, the reason the stream ends early, or `None` at its end.
    async fn next_item(&mut self) -> Option<Result<Arc<Frame>, End>> {
        loop {
            if let Some(f) = self.buffer.pop_front() {
                return Some(Ok(f));
            }
            if self.finished || self.stop.is_cancelled() {
                return None;
            }
            match self.mode {
                Mode::ReadOnly => {
                    let Some(ro) = self.s.readonly.get() else {
                        self.finished = true;
                        continue;
                    };
                    match ro.read_from(self.next, REPLAY_PAGE).await {
                        Ok(page) if page.is_empty() => self.finished = true,
                        Ok(page) => self.take_page(&page),
                        Err(e) => return self.fail(&e),
                    }
                }
                Mode::Replay => {
                    let Some(journal) = self.journal.clone() else {
                        self.finished = true;
                        continue;
                    };
                    // Subscribe before reading, so every record is in the file or in
                    // the queue.
                    let q = match &self.queue {
                        Some(q) => Arc::clone(q),
                        None => {
                            let q = self.s.subscribe(
                                self.limits,
                                self.slot.take(),
                                self.dropped.clone(),
                            );
                            self.queue = Some(Arc::clone(&q));
                            q
                        }
                    };
                    match journal.read_from(self.next, REPLAY_PAGE).await {
                        Ok(page) if !page.is_empty() => {
                            self.take_page(&page);
                            continue;
                        }
                        Ok(_) => {}
                        Err(e) => return self.fail(&e),
                    }
                    // Caught up with the file: go live unless the queue skipped frames.
                    let mut st = q.lock();
                    if st.closed {
                        drop(st);
                        if self.s.state() == SessionState::Ended {
                            self.finished = true;
                        } else {
                            // The feed was reset while the session lives on: subscribe
                            // again (the slot moves to the new queue).
                            self.slot = q.lock().slot.take();
                            self.queue = None;
                        }
                        continue;
                    }
                    if st.lagged {
                        st.lagged = false;
                        st.frames.clear();
                        q.set_bytes(&mut st, 0);
                        continue;
                    }
                    st.replaying = false;
                    st.full_since = None;
                    drop(st);
                    self.mode = Mode::Live;
                }
                Mode::Live => {
                    let Some(q) = self.queue.clone() else {
                        self.mode = Mode::Replay;
                        continue;
                    };
                    match pop(&q) {
                        Pop::Frame(f) if f.seq < self.next => {}
                        Pop::Frame(f) if f.seq == self.next => {
                            self.next += 1;
                            return Some(Ok(f));
                        }
                        // A gap (appenders raced, or frames were skipped): the file has
                        // everything.
                        Pop::Frame(_) => {
                            q.lock().replaying = true;
                            self.mode = Mode::Replay;
                        }
                        Pop::Reread { .. } => self.mode = Mode::Replay,
                        Pop::TooSlow => {
                            self.finished = true;
                            return Some(Err(End::TooSlow));
                        }
                        Pop::Empty => {
                            tokio::select! {
                                () = self.stop.cancelled() => return None,
                                () = q.wake.notified() => {}
                            }
                        }
                    }
                }
            }
        }
    }

    fn take_page(&mut self, page: &[EventRecord]) {
        for r in page {
            if r.seq >= self.next {
                self.next = r.seq.saturating_add(1);
                self.buffer.push_back(Frame::record(r));
            }
        }
    }

    fn fail(&mut self, e: &r1_journal::JournalError) -> Option<Result<Arc<Frame>, End>> {
        self.finished = true;
        Some(Err(End::Failed(journal_error(e).message)))
    }
}

/// Every record of `s` from `since` on (`since` past the head gets one
/// `session.resync` first), then live records until the session ends, `stop` fires, or
/// the subscriber is dropped as too slow (the last item is then `Err(TooSlow)`, and
/// `dropped` is cancelled). `slot` is held as long as the subscriber lives. A
/// quarantined session yields its valid prefix, then ends.
pub fn follow(
    s: Arc<Session>,
    since: u64,
    limits: QueueLimits,
    slot: Slot,
    stop: CancellationToken,
    dropped: CancellationToken,
) -> Result<impl Stream<Item = Result<Arc<Frame>, End>> + Send + 'static, ApiError> {
    s.readable()?;
    let mut next = since.max(1);
    let mut buffer = VecDeque::new();
    let (journal, mode) = match s.journal() {
        Ok(j) => {
            let head = j.last_seq();
            let after = head.saturating_add(1);
            if next > after {
                buffer.push_back(resync(after, head));
                next = after;
            }
            (Some(j.clone()), Mode::Replay)
        }
        Err(_) => (None, Mode::ReadOnly),
    };
    let f = Follower {
        s,
        journal,
        next,
        mode,
        buffer,
        queue: None,
        slot: Some(slot),
        limits,
        dropped,
        stop,
        finished: false,
    };
    Ok(futures_util::stream::unfold(f, |mut f| async move {
        let item = f.next_item().await?;
        Some((item, f))
    }))
}

/// What a pump drains the live queue with, for the bus (`bus.rs`), which keeps its own
/// backlog instead of a journal.
pub(crate) fn pop_live(q: &LiveQueue) -> PopLive {
    match pop(q) {
        Pop::Frame(f) => PopLive::Frame(f),
        Pop::Reread { closed } => PopLive::Lagged { closed },
        Pop::TooSlow => PopLive::TooSlow,
        Pop::Empty => PopLive::Empty,
    }
}

/// [`pop_live`]'s answer.
pub(crate) enum PopLive {
    Frame(Arc<Frame>),
    Lagged { closed: bool },
    TooSlow,
    Empty,
}

impl LiveQueue {
    /// Waits until the publisher queued something (or closed / dropped the queue).
    pub(crate) async fn notified(&self) {
        self.wake.notified().await;
    }

    /// Clears the queue after the follower caught up by other means; live again.
    pub(crate) fn reset_live(&self) {
        let mut st = self.lock();
        st.frames.clear();
        self.set_bytes(&mut st, 0);
        st.lagged = false;
        st.replaying = false;
        st.full_since = None;
    }
}
