//! The append-only NDJSON journal of one r1 session (`sessions/<id>/journal.ndjson`).
//!
//! Each line is one [`EventRecord`]; seqs start at 1 and count up by one. One writer
//! thread owns the file: [`Journal`] handles send it records over a bounded channel and
//! await the [`Ack`] level they asked for. The writer takes every record waiting in the
//! channel, writes them with one `write`, and calls `fdatasync` once if any of them asked
//! for durability (group commit).
//!
//! Failure rules (DESIGN §6):
//! - a failed `fdatasync` fails the journal for good ([`JournalError::Failed`]); it is
//!   never retried;
//! - a short write or `ENOSPC` truncates the file back to the last good record and
//!   surfaces as [`JournalError::NoSpace`]; the journal stays usable;
//! - on open, a torn tail is truncated after keeping a `.broken` copy, and corruption in
//!   the middle is reported as [`JournalError::Corrupt`] for the caller to quarantine.
//!
//! Open reads only the tail of the file, never all of it.
//!
//! The async functions need a tokio runtime: file work that blocks runs on
//! `spawn_blocking`, and the writer is a plain thread of its own.

#![warn(missing_docs)]

mod io;
mod open;
mod parse;
mod read;
pub mod testing;
mod writer;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

pub use r1_proto::{EventKind, EventRecord};
use tokio::sync::{mpsc, oneshot};

pub use crate::io::{JournalFile, JournalIo, JournalReader, RealIo};
pub use crate::parse::parse_records;
use crate::writer::{Msg, Shared, Writer};

/// The acknowledgement level an appender waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ack {
    /// `write` returned: the record survives `kill -9` of the daemon (deltas, lane output).
    Appended,
    /// `fdatasync` returned: the record survives power loss (user messages, approvals,
    /// session creation, terminal records).
    Durable,
}

/// A record to append; the writer assigns its `seq` and `at`.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRecord {
    /// What happened.
    pub kind: EventKind,
    /// The lane it happened in; `main` for the conversation.
    pub lane: String,
    /// Kind-specific payload.
    pub data: serde_json::Value,
}

impl NewRecord {
    /// A record of `kind` in `lane` with payload `data`.
    pub fn new(kind: EventKind, lane: impl Into<String>, data: serde_json::Value) -> NewRecord {
        NewRecord {
            kind,
            lane: lane.into(),
            data,
        }
    }
}

/// What can go wrong with a journal.
#[derive(thiserror::Error, Debug)]
pub enum JournalError {
    /// A file operation failed; `what` says which.
    #[error("journal i/o failed while {what}: {source}")]
    Io {
        /// What the journal was doing.
        what: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A write ran out of space (or was short). The file was truncated back to the last
    /// good record and no seq was used up; later appends may succeed once space returns.
    #[error("journal out of space, the write was rolled back to the last good record: {source}")]
    NoSpace {
        /// The write error (`ENOSPC`, `EDQUOT` or a short write).
        source: std::io::Error,
    },
    /// An earlier `fdatasync` (or a rollback) failed: the journal is failed for good and
    /// every later append gets this error.
    #[error("journal failed: {reason}")]
    Failed {
        /// What failed first.
        reason: String,
    },
    /// The journal is corrupt before its tail; the caller quarantines the session.
    #[error("journal corrupt at line {line}: {reason}")]
    Corrupt {
        /// The 1-based line of the bad record, as implied by the seqs around it (record N
        /// is on line N); the byte offset is in `reason`.
        line: u64,
        /// What is wrong, with the byte offset.
        reason: String,
    },
    /// The journal was closed (its writer thread is gone).
    #[error("journal closed")]
    Closed,
}

/// What [`Journal::open`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenReport {
    /// The seq of the last valid record, 0 for an empty journal.
    pub last_seq: u64,
    /// The last valid record.
    pub last_record: Option<EventRecord>,
    /// Set when a torn tail was cut off.
    pub repaired: Option<RepairInfo>,
}

/// How a torn tail was repaired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepairInfo {
    /// How many bytes were cut off the end.
    pub truncated_bytes: u64,
    /// Where the untouched copy of the file was kept (`<path>.broken` or `.broken.N`).
    pub broken_copy: PathBuf,
    /// The seq of the last record left, 0 if none.
    pub recovered_last_seq: u64,
}

/// How to open a journal.
#[derive(Clone)]
pub struct JournalOptions {
    /// The file operations; [`RealIo`] by default, a [`testing::FaultyIo`] in tests.
    pub io: Arc<dyn JournalIo>,
    /// The capacity of the channel to the writer; appenders wait when it is full.
    pub channel_capacity: usize,
}

impl Default for JournalOptions {
    fn default() -> JournalOptions {
        JournalOptions {
            io: Arc::new(RealIo),
            // Deep enough that a burst of deltas never waits for the writer, small enough
            // that a stuck disk pushes back on the producers quickly.
            channel_capacity: 1024,
        }
    }
}

impl fmt::Debug for JournalOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JournalOptions")
            .field("channel_capacity", &self.channel_capacity)
            .finish_non_exhaustive()
    }
}

/// A cheap-to-clone handle to one journal; one writer thread owns the file.
#[derive(Clone)]
pub struct Journal {
    inner: Arc<Inner>,
}

struct Inner {
    tx: mpsc::Sender<Msg>,
    shared: Arc<Shared>,
    io: Arc<dyn JournalIo>,
    path: PathBuf,
}

impl fmt::Debug for Journal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Journal")
            .field("path", &self.inner.path)
            .field("last_seq", &self.last_seq())
            .field("failed", &self.is_failed())
            .finish()
    }
}

impl Journal {
    /// Creates a new, empty journal file (mode 0600; fails if it exists), makes its
    /// directory entry durable, and starts its writer thread.
    pub async fn create(path: &Path, opts: JournalOptions) -> Result<Journal, JournalError> {
        let io = Arc::clone(&opts.io);
        let owned = path.to_owned();
        let file = blocking(move || {
            let file = io
                .open_append(&owned, true)
                .map_err(open::io_err("creating the journal"))?;
            open::sync_parent_dir(&owned)
                .map_err(open::io_err("syncing the journal's directory"))?;
            Ok(file)
        })
        .await?;
        Journal::start(path, opts, file, 0, 0)
    }

    /// Opens an existing journal, reading only its tail.
    ///
    /// A torn tail (a last line without `'\n'`, or last lines that are not valid
    /// records) is cut off after the whole file is copied to `<path>.broken` (or
    /// `.broken.N`); the report says so. The complete lines of the scanned tail window
    /// (64 KiB at least) before the last valid record must be valid records whose seqs
    /// count up to it; otherwise the journal is corrupt in the middle and this returns
    /// [`JournalError::Corrupt`] without touching the file. An empty file is a valid
    /// journal with `last_seq` 0.
    pub async fn open(
        path: &Path,
        opts: JournalOptions,
    ) -> Result<(Journal, OpenReport), JournalError> {
        let io = Arc::clone(&opts.io);
        let owned = path.to_owned();
        let (file, scan, repaired) = blocking(move || {
            let mut reader = io
                .open_read(&owned)
                .map_err(open::io_err("opening the journal"))?;
            let scan = open::scan_tail(reader.as_mut())?;
            drop(reader);
            let last_seq = scan.last_record.as_ref().map_or(0, |r| r.seq);
            if scan.valid_len < scan.file_len {
                let (file, broken_copy) = open::repair(io.as_ref(), &owned, scan.valid_len)?;
                let info = RepairInfo {
                    truncated_bytes: scan.file_len - scan.valid_len,
                    broken_copy,
                    recovered_last_seq: last_seq,
                };
                Ok((file, scan, Some(info)))
            } else {
                let file = io
                    .open_append(&owned, false)
                    .map_err(open::io_err("opening the journal to append"))?;
                Ok((file, scan, None))
            }
        })
        .await?;
        let last_seq = scan.last_record.as_ref().map_or(0, |r| r.seq);
        let journal = Journal::start(path, opts, file, last_seq, scan.valid_len)?;
        let report = OpenReport {
            last_seq,
            last_record: scan.last_record,
            repaired,
        };
        Ok((journal, report))
    }

    /// Starts the writer thread for `file`, which ends at `len` with record `last_seq`.
    fn start(
        path: &Path,
        opts: JournalOptions,
        file: Box<dyn JournalFile>,
        last_seq: u64,
        len: u64,
    ) -> Result<Journal, JournalError> {
        let (tx, rx) = mpsc::channel(opts.channel_capacity.max(1));
        let shared = Arc::new(Shared::new(last_seq, len));
        let writer = Writer::new(file, rx, Arc::clone(&shared), last_seq, len);
        std::thread::Builder::new()
            .name("r1-journal".to_owned())
            .spawn(move || writer.run())
            .map_err(open::io_err("starting the journal's writer thread"))?;
        Ok(Journal {
            inner: Arc::new(Inner {
                tx,
                shared,
                io: opts.io,
                path: path.to_owned(),
            }),
        })
    }

    /// Appends one record and returns it, with its `seq` and `at`, once `ack` is reached.
    ///
    /// A kind whose [`EventKind::is_durable`] is true is always appended durably, whatever
    /// `ack` says. Concurrent appenders get contiguous seqs in the order the writer
    /// receives them. On [`JournalError::NoSpace`] the record was not written and its seq
    /// is given to the next record. Dropping the future after the record reached the
    /// writer does not take the record back.
    pub async fn append(&self, rec: NewRecord, ack: Ack) -> Result<EventRecord, JournalError> {
        if let Some(err) = self.inner.shared.failed_error() {
            return Err(err);
        }
        let ack = if rec.kind.is_durable() {
            Ack::Durable
        } else {
            ack
        };
        let (reply, answer) = oneshot::channel();
        let msg = Msg::Append {
            record: rec,
            ack,
            reply,
        };
        if self.inner.tx.send(msg).await.is_err() {
            return Err(self.gone());
        }
        answer.await.unwrap_or_else(|_| Err(self.gone()))
    }

    /// The seq of the last record written and acknowledged; 0 when there is none.
    pub fn last_seq(&self) -> u64 {
        self.inner.shared.last_seq.load(Ordering::Acquire)
    }

    /// Why the journal failed for good, if it did.
    pub fn is_failed(&self) -> Option<String> {
        self.inner.shared.failed.get().cloned()
    }

    /// The path of the journal file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Reads the acknowledged records with `seq >= since`, at most `limit`, in seq order,
    /// from a read-only descriptor of its own. A sparse seq → offset index, kept by the
    /// writer and filled in by earlier reads, lets it start near `since`.
    pub async fn read_from(
        &self,
        since: u64,
        limit: usize,
    ) -> Result<Vec<EventRecord>, JournalError> {
        let inner = Arc::clone(&self.inner);
        blocking(move || {
            read::read_from(inner.io.as_ref(), &inner.path, &inner.shared, since, limit)
        })
        .await
    }

    /// Syncs everything written and stops the writer. Later appends get
    /// [`JournalError::Closed`]; closing again returns `Ok`.
    pub async fn close(&self) -> Result<(), JournalError> {
        let (reply, answer) = oneshot::channel();
        if self.inner.tx.send(Msg::Close { reply }).await.is_err() {
            return self.closed_result();
        }
        match answer.await {
            Ok(result) => result,
            Err(_) => self.closed_result(),
        }
    }

    /// What a close reports when the writer has already stopped.
    fn closed_result(&self) -> Result<(), JournalError> {
        match self.inner.shared.failed_error() {
            Some(err) => Err(err),
            None if self.inner.shared.closed.load(Ordering::Acquire) => Ok(()),
            None => Err(JournalError::Closed),
        }
    }

    /// The error for an append that found the writer gone.
    fn gone(&self) -> JournalError {
        self.inner
            .shared
            .failed_error()
            .unwrap_or(JournalError::Closed)
    }
}

/// Runs blocking file work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, JournalError> + Send + 'static,
) -> Result<T, JournalError> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(JournalError::Io {
            what: "running blocking journal work".to_owned(),
            source: std::io::Error::other(e),
        })
    })
}
