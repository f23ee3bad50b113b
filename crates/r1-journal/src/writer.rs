//! The writer thread: the only owner of the journal file.

use std::collections::BTreeMap;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::SystemTime;

use r1_proto::EventRecord;
use tokio::sync::{mpsc, oneshot};

use crate::io::{copy_io_error, is_no_space, JournalFile};
use crate::parse::{seal, RECORD_VERSION};
use crate::{Ack, JournalError, NewRecord};

/// Distance in bytes between two entries of the sparse seq → offset index.
pub(crate) const INDEX_STRIDE: u64 = 64 * 1024;
/// A batch stops growing at this many bytes, so one write stays bounded in memory and
/// in the latency it adds to the first waiter.
const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;

/// State shared by the writer thread and every handle.
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
        record: NewRecord,
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

/// The writer thread's state.
pub(crate) struct Writer {
    file: Box<dyn JournalFile>,
    rx: mpsc::Receiver<Msg>,
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
}

impl Writer {
    /// A writer for `file`, whose last record has seq `last_seq` and ends at `len`.
    pub(crate) fn new(
        file: Box<dyn JournalFile>,
        rx: mpsc::Receiver<Msg>,
        shared: Arc<Shared>,
        last_seq: u64,
        len: u64,
    ) -> Writer {
        Writer {
            file,
            rx,
            shared,
            next_seq: last_seq + 1,
            len,
            last_indexed: len,
            buf: Vec::with_capacity(64 * 1024),
            staged: Vec::new(),
            durable: false,
        }
    }

    /// Runs until closed or until every handle is gone: takes every message waiting in
    /// the channel, writes them with one write, syncs once if any asked for durability,
    /// then answers them all (group commit).
    pub(crate) fn run(mut self) {
        loop {
            let Some(first) = self.rx.blocking_recv() else {
                // Every handle is gone without a close: sync what was appended. No one
                // is left to hear of a failure, but it is recorded all the same.
                if self.shared.failed.get().is_none() {
                    if let Err(e) = self.file.sync_data() {
                        let _ = self.shared.failed.set(format!("fdatasync failed: {e}"));
                    }
                }
                break;
            };
            let mut close = self.stage(first);
            while close.is_none() && self.buf.len() < MAX_BATCH_BYTES {
                match self.rx.try_recv() {
                    Ok(msg) => close = self.stage(msg),
                    Err(_) => break,
                }
            }
            self.commit();
            if let Some(reply) = close {
                let result = self.finish();
                self.shared.closed.store(true, Ordering::Release);
                let _ = reply.send(result);
                return;
            }
        }
        self.shared.closed.store(true, Ordering::Release);
    }

    /// Adds one message to the batch; returns the reply channel of a close.
    fn stage(&mut self, msg: Msg) -> Option<oneshot::Sender<Result<(), JournalError>>> {
        let (new, ack, reply) = match msg {
            Msg::Close { reply } => return Some(reply),
            Msg::Append { record, ack, reply } => (record, ack, reply),
        };
        if let Some(err) = self.shared.failed_error() {
            let _ = reply.send(Err(err));
            return None;
        }
        let record = EventRecord {
            v: RECORD_VERSION,
            seq: self.next_seq + self.staged.len() as u64,
            at: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            kind: new.kind,
            lane: new.lane,
            data: new.data,
        };
        let offset = self.buf.len();
        if let Err(e) = serde_json::to_writer(&mut self.buf, &record) {
            // Not expected for a `serde_json::Value` payload; answered on its own so the
            // rest of the batch goes on.
            self.buf.truncate(offset);
            let _ = reply.send(Err(JournalError::Io {
                what: "serializing a record".to_owned(),
                source: io::Error::other(e),
            }));
            return None;
        }
        seal(&mut self.buf, offset);
        self.buf.push(b'\n');
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
