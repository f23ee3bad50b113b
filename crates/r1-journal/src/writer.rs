//! The writer: the only owner of the journal file, a task that holds a thread only while
//! it writes (see [`run`]).

use std::collections::BTreeMap;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use r1_proto::EventRecord;
use tokio::sync::oneshot;

use crate::io::{copy_io_error, is_no_space, JournalFile};
use crate::parse::{seal, RECORD_VERSION};
use crate::{Ack, JournalError, NewRecord};

/// Distance in bytes between two entries of the sparse seq → offset index.
pub(crate) const INDEX_STRIDE: u64 = 64 * 1024;
/// A batch stops growing at this many bytes, so one write stays bounded in memory and
/// in the latency it adds to the first waiter.
const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;

/// State shared by the writer and every handle.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// The seq of the last record written and acknowledged.
    pub last_seq: AtomicU64,
    /// The file length through the last acknowledged record: readers never look past it,
    /// so they never see a batch that is being written or rolled back.
    pub committed_len: AtomicU64,
    /// Set once, when an fsync (or a rollback) failed; the journal is then failed forever.
    pub failed: OnceLock<String>,
    /// Set when the writer stopped after [`Msg::Close`] or after every handle was dropped.
    pub closed: AtomicBool,
    /// Sparse index: the seq of a record → the offset where its line starts. One entry
    /// per [`INDEX_STRIDE`] bytes or so; filled by the writer for new records and by
    /// readers for the part of the file written before the journal was opened.
    pub index: Mutex<BTreeMap<u64, u64>>,
}

impl Shared {
    /// A start state for a file of `len` bytes whose last record has seq `last_seq`.
    pub(crate) fn new(last_seq: u64, len: u64) -> Shared {
        let mut index = BTreeMap::new();
        index.insert(1, 0);
        index.insert(last_seq + 1, len);
        Shared {
            last_seq: AtomicU64::new(last_seq),
            committed_len: AtomicU64::new(len),
            index: Mutex::new(index),
            ..Shared::default()
        }
    }

    /// The reason the journal failed, as the error every append now gets.
    pub(crate) fn failed_error(&self) -> Option<JournalError> {
        self.failed.get().map(|reason| JournalError::Failed {
            reason: reason.clone(),
        })
    }

    /// Locks the sparse index. A poisoned lock still holds a usable map: entries are
    /// inserted one at a time, each valid on its own.
    pub(crate) fn index(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, u64>> {
        self.index.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A reply channel for one append.
pub(crate) type AppendReply = oneshot::Sender<Result<EventRecord, JournalError>>;

/// What handles send the writer.
pub(crate) enum Msg {
    /// Append one record and answer once `ack` is reached.
    Append {
        /// Boxed: every journal's channel allocates its first block of slots at the
        /// size of the largest message, idle or not.
        record: Box<NewRecord>,
        ack: Ack,
        reply: AppendReply,
    },
    /// Sync and stop.
    Close {
        reply: oneshot::Sender<Result<(), JournalError>>,
    },
}

/// One staged record of a batch.
struct Staged {
    record: EventRecord,
    /// Offset of its line inside the batch buffer.
    offset: usize,
    reply: AppendReply,
}

/// How many batches one blocking job writes, at most, before it hands its pool thread
/// back: a journal under sustained load keeps its thread for a while (no hand-off per
/// batch), but other journals waiting for a blocking thread get a turn.
const BATCHES_PER_JOB: usize = 64;
/// How long a job keeps its pool thread after the channel ran dry, yielding the CPU and
/// looking again: appenders just answered usually send their next record within a few
/// microseconds, and catching it here saves the two thread wake-ups of handing the
/// writer back to its task and starting a new job (which halved the 64-appender rate
/// without it). Short enough that an idle journal's last burst costs nothing to notice.
const LINGER: Duration = Duration::from_micros(50);
/// A job lingers only on a hot journal: one whose previous job ended less than this ago,
/// or that wrote more than one batch in this job. A journal appended to once in a while
/// (most sessions) never lingers, so a burst across thousands of such journals does not
/// keep a pool thread per journal busy.
const HOT: Duration = Duration::from_millis(1);

/// Whether the writer goes on after a blocking job.
enum Flow {
    /// The channel ran dry (or the job did its share): wait for the next message.
    Idle,
    /// Closed: the task ends.
    Stop,
}

/// The writer task of one journal: the only owner of its file.
///
/// It holds no thread while the journal is idle: it awaits the channel on the runtime,
/// and only when a message arrives does it move the [`Writer`] (file, buffers) and the
/// receiver into one `spawn_blocking` job. That job stages every waiting message, writes
/// the batch with one `write`, syncs it once if any record asked for durability, answers
/// the batch, and goes on with the next batch while messages keep arriving (up to
/// [`BATCHES_PER_JOB`]); then it hands both back and the task waits again. Order and
/// contiguous seqs follow from there being one writer per file and one job at a time.
pub(crate) async fn run(mut writer: Writer, mut rx: flume::Receiver<Msg>) {
    loop {
        let Ok(first) = rx.recv_async().await else {
            // Every handle is gone without a close: sync what was appended. No one is
            // left to hear of a failure, but it is recorded all the same.
            let shared = Arc::clone(&writer.shared);
            if tokio::task::spawn_blocking(move || writer.sync_abandoned())
                .await
                .is_err()
            {
                let _ = shared
                    .failed
                    .set("the journal's last fdatasync did not run".to_owned());
            }
            shared.closed.store(true, Ordering::Release);
            return;
        };
        let shared = Arc::clone(&writer.shared);
        let job = tokio::task::spawn_blocking(move || {
            let flow = writer.work(first, &mut rx);
            (writer, rx, flow)
        });
        match job.await {
            Ok((back, back_rx, Flow::Idle)) => {
                writer = back;
                rx = back_rx;
            }
            Ok((back, back_rx, Flow::Stop)) => {
                drop(back);
                answer_after_stop(&back_rx, &shared).await;
                return;
            }
            Err(e) => {
                // The job panicked or the runtime is shutting down: the file went with
                // it, so the journal cannot go on. Waiters of the lost batch see their
                // reply channel dropped and get this reason.
                let _ = shared
                    .failed
                    .set(format!("the journal's writer stopped: {e}"));
                shared.closed.store(true, Ordering::Release);
                return;
            }
        }
    }
}

/// Answers whatever handles send after the writer stopped (the file is closed), until
/// the last handle is gone: a channel keeps the messages queued in it while a sender
/// lives, so a message that raced the stop would otherwise wait forever.
async fn answer_after_stop(rx: &flume::Receiver<Msg>, shared: &Shared) {
    while let Ok(msg) = rx.recv_async().await {
        let failed = shared.failed_error();
        match msg {
            Msg::Append { reply, .. } => {
                let _ = reply.send(Err(failed.unwrap_or(JournalError::Closed)));
            }
            Msg::Close { reply } => {
                let _ = reply.send(failed.map_or(Ok(()), Err));
            }
        }
    }
}

/// Waits up to [`LINGER`] for a message, yielding the CPU between looks.
fn linger(rx: &mut flume::Receiver<Msg>) -> Option<Msg> {
    let start = Instant::now();
    loop {
        std::thread::yield_now();
        if let Ok(msg) = rx.try_recv() {
            return Some(msg);
        }
        if start.elapsed() >= LINGER {
            return None;
        }
    }
}

/// Gives `new` its `seq` and `at` and appends it to `buf` as one sealed line, `'\n'`
/// included; on error `buf` is left as it was.
pub(crate) fn encode(
    buf: &mut Vec<u8>,
    seq: u64,
    new: NewRecord,
) -> Result<EventRecord, JournalError> {
    let record = EventRecord {
        v: RECORD_VERSION,
        seq,
        at: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
        kind: new.kind,
        lane: new.lane,
        data: new.data,
    };
    let offset = buf.len();
    if let Err(e) = serde_json::to_writer(&mut *buf, &record) {
        // Not expected for a `serde_json::Value` payload.
        buf.truncate(offset);
        return Err(JournalError::Io {
            what: "serializing a record".to_owned(),
            source: io::Error::other(e),
        });
    }
    seal(buf, offset);
    buf.push(b'\n');
    Ok(record)
}

/// The writer's state; lives in the writer task and moves into each blocking job.
pub(crate) struct Writer {
    file: Box<dyn JournalFile>,
    shared: Arc<Shared>,
    /// The seq the next record gets.
    next_seq: u64,
    /// The file's length through the last acknowledged record.
    len: u64,
    /// Offset of the last index entry the writer made.
    last_indexed: u64,
    buf: Vec<u8>,
    staged: Vec<Staged>,
    durable: bool,
    /// When the last job ended, to tell a hot journal (see [`HOT`]).
    last_job_end: Option<Instant>,
}

impl Writer {
    /// A writer for `file`, whose last record has seq `last_seq` and ends at `len`.
    pub(crate) fn new(
        file: Box<dyn JournalFile>,
        shared: Arc<Shared>,
        last_seq: u64,
        len: u64,
    ) -> Writer {
        Writer {
            file,
            shared,
            next_seq: last_seq + 1,
            len,
            last_indexed: len,
            buf: Vec::new(),
            staged: Vec::new(),
            durable: false,
            last_job_end: None,
        }
    }

    /// One blocking job, starting with `first`: takes every message waiting in the
    /// channel, writes them with one write, syncs once if any asked for durability, then
    /// answers them all (group commit); repeats while messages keep arriving, up to
    /// [`BATCHES_PER_JOB`] batches, waiting up to [`LINGER`] for them on a hot journal
    /// ([`HOT`]). A close ends the job with a sync and [`Flow::Stop`].
    fn work(&mut self, first: Msg, rx: &mut flume::Receiver<Msg>) -> Flow {
        let mut next = Some(first);
        let hot = self.last_job_end.is_some_and(|end| end.elapsed() < HOT);
        for batch in 0..BATCHES_PER_JOB {
            let Some(msg) = next
                .take()
                .or_else(|| rx.try_recv().ok())
                .or_else(|| (hot || batch > 1).then(|| linger(rx)).flatten())
            else {
                break;
            };
            let mut close = self.stage(msg);
            while close.is_none() && self.buf.len() < MAX_BATCH_BYTES {
                match rx.try_recv() {
                    Ok(msg) => close = self.stage(msg),
                    Err(_) => break,
                }
            }
            self.commit();
            if let Some(reply) = close {
                let result = self.finish();
                self.shared.closed.store(true, Ordering::Release);
                let _ = reply.send(result);
                return Flow::Stop;
            }
        }
        // An idle journal keeps no buffers: there is one per session, and allocating
        // them again costs nothing next to the job's write.
        self.buf = Vec::new();
        self.staged = Vec::new();
        self.last_job_end = Some(Instant::now());
        Flow::Idle
    }

    /// The last step when every handle was dropped without a close.
    fn sync_abandoned(&mut self) {
        if self.shared.failed.get().is_none() {
            if let Err(e) = self.file.sync_data() {
                let _ = self.shared.failed.set(format!("fdatasync failed: {e}"));
            }
        }
    }

    /// Adds one message to the batch; returns the reply channel of a close.
    fn stage(&mut self, msg: Msg) -> Option<oneshot::Sender<Result<(), JournalError>>> {
        let (new, ack, reply) = match msg {
            Msg::Close { reply } => return Some(reply),
            Msg::Append { record, ack, reply } => (*record, ack, reply),
        };
        if let Some(err) = self.shared.failed_error() {
            let _ = reply.send(Err(err));
            return None;
        }
        let offset = self.buf.len();
        let record = match encode(&mut self.buf, self.next_seq + self.staged.len() as u64, new) {
            Ok(record) => record,
            Err(e) => {
                // Answered on its own so the rest of the batch goes on.
                let _ = reply.send(Err(e));
                return None;
            }
        };
        self.durable |= ack == Ack::Durable;
        self.staged.push(Staged {
            record,
            offset,
            reply,
        });
        None
    }

    /// Writes the staged batch, syncs it if asked, and answers its waiters.
    fn commit(&mut self) {
        let staged = std::mem::take(&mut self.staged);
        let durable = std::mem::replace(&mut self.durable, false);
        if staged.is_empty() {
            self.buf.clear();
            return;
        }
        let batch_len = self.buf.len() as u64;
        let outcome = self.write_batch(durable);
        self.buf.clear();
        match outcome {
            Ok(()) => {
                let base = self.len;
                self.index_batch(base, &staged);
                self.len = base + batch_len;
                self.next_seq += staged.len() as u64;
                self.shared.committed_len.store(self.len, Ordering::Release);
                self.shared
                    .last_seq
                    .store(self.next_seq - 1, Ordering::Release);
                for s in staged {
                    let _ = s.reply.send(Ok(s.record));
                }
            }
            Err(err) => {
                for s in staged {
                    let _ = s.reply.send(Err(err.duplicate()));
                }
            }
        }
    }

    /// One write of the batch buffer, then one fdatasync if `durable`. On a write error
    /// the file is truncated back to the last acknowledged record; on an fsync error, or
    /// a failed truncation, the journal fails for good.
    fn write_batch(&mut self, durable: bool) -> Result<(), JournalError> {
        if let Err(write_err) = self.file.write_all(&self.buf) {
            if let Err(trunc_err) = self.file.set_len(self.len) {
                return Err(self.fail(format!(
                    "a write failed ({write_err}) and truncating back to {} bytes failed: \
                     {trunc_err}",
                    self.len
                )));
            }
            // The truncation is not synced: a later fdatasync makes the length durable,
            // and a power loss before that leaves a torn tail that open repairs.
            return Err(if is_no_space(&write_err) {
                JournalError::NoSpace { source: write_err }
            } else {
                JournalError::Io {
                    what: "appending to the journal".to_owned(),
                    source: write_err,
                }
            });
        }
        if durable {
            if let Err(e) = self.file.sync_data() {
                // Never retried: after a failed fsync the kernel may have dropped the
                // dirty pages, so a later success would not mean this data is on disk.
                return Err(self.fail(format!("fdatasync failed: {e}")));
            }
        }
        Ok(())
    }

    /// Adds sparse index entries for the records of a batch written at `base`.
    fn index_batch(&mut self, base: u64, staged: &[Staged]) {
        let mut entries = Vec::new();
        for s in staged {
            let at = base + s.offset as u64;
            if at >= self.last_indexed + INDEX_STRIDE {
                entries.push((s.record.seq, at));
                self.last_indexed = at;
            }
        }
        if !entries.is_empty() {
            self.shared.index().extend(entries);
        }
    }

    /// Marks the journal failed (first reason wins) and returns the error for it.
    fn fail(&self, reason: String) -> JournalError {
        let _ = self.shared.failed.set(reason);
        self.shared
            .failed_error()
            .unwrap_or_else(|| JournalError::Failed {
                reason: "failed".to_owned(),
            })
    }

    /// The last step of a close: sync everything written.
    fn finish(&mut self) -> Result<(), JournalError> {
        if let Some(err) = self.shared.failed_error() {
            return Err(err);
        }
        self.file
            .sync_data()
            .map_err(|e| self.fail(format!("fdatasync on close failed: {e}")))
    }
}

impl JournalError {
    /// A copy of this error for another waiter of the same batch.
    pub(crate) fn duplicate(&self) -> JournalError {
        match self {
            JournalError::Io { what, source } => JournalError::Io {
                what: what.clone(),
                source: copy_io_error(source),
            },
            JournalError::NoSpace { source } => JournalError::NoSpace {
                source: copy_io_error(source),
            },
            JournalError::Failed { reason } => JournalError::Failed {
                reason: reason.clone(),
            },
            JournalError::Corrupt {
                line,
                last_good_seq,
                offset,
                reason,
            } => JournalError::Corrupt {
                line: *line,
                last_good_seq: *last_good_seq,
                offset: *offset,
                reason: reason.clone(),
            },
            JournalError::Closed => JournalError::Closed,
        }
    }
}
