//! The append-only NDJSON journal of one r1 session (`sessions/<id>/journal.ndjson`).
//!
//! Each line is one [`EventRecord`]; seqs start at 1 and count up by one. One writer
//! owns the file: [`Journal`] handles send it records over a bounded channel and await
//! the [`Ack`] level they asked for. The writer takes every record waiting in the
//! channel, writes them with one `write`, and calls `fdatasync` once if any of them asked
//! for durability (group commit).
//!
//! # The writer holds no thread while idle
//!
//! The daemon keeps one journal open per session, and most sessions are idle most of the
//! time, so an idle journal must cost no OS thread and only a few KB (a thread per
//! journal was 1,006 threads and ~18 KB of RSS each for 1,000 sessions). The writer is a
//! tokio task: idle, it is a parked future holding the file and the channel's receiver
//! (a `flume` channel, which allocates nothing while empty; its messages are boxed, and
//! an idle writer keeps no batch buffer). When a record arrives it moves its state and the receiver into
//! one `spawn_blocking` job, which writes batch after batch while records keep arriving
//! (up to 64 batches, so one busy journal cannot keep a pool thread from the others),
//! then hands them back. On a hot journal (jobs back to back) a job whose channel ran
//! dry looks again for up to 50 µs, yielding the CPU, before it ends: the appenders it
//! just answered usually send their next record within that, and each job saved is two
//! thread wake-ups (without it the 64-appender rate halved). Blocking work thus runs on the runtime's shared blocking pool,
//! which grows only with the journals writing at the same moment (bounded by the
//! runtime's `max_blocking_threads`) and reaps its threads once idle.
//!
//! Why not a small fixed pool of writer threads serving many journals: that bounds the
//! threads harder, but one slow `fdatasync` would then stall every journal sharing its
//! thread, and the crate would own a scheduler (ready queues, fairness, shutdown) that
//! tokio's blocking pool already is. Under load the per-job hand-off is paid once per
//! 1–64 batches, not per record, so the 64-appender rate did not drop (see
//! `docs/BENCHMARKS.md`).
//!
//! The writer task lives on the runtime that created or opened the journal: appends
//! from another runtime work, but once that runtime shuts down the journal is gone
//! ([`JournalError::Failed`] or [`JournalError::Closed`]), as any task of it would be.
//!
//! Failure rules (DESIGN §6):
//! - a failed `fdatasync` fails the journal for good ([`JournalError::Failed`]); it is
//!   never retried;
//! - a short write or `ENOSPC` truncates the file back to the last good record and
//!   surfaces as [`JournalError::NoSpace`]; the journal stays usable;
//! - on open, a torn tail is truncated after keeping a `.broken` copy, and corruption
//!   anywhere before it is reported as [`JournalError::Corrupt`] for the caller to
//!   quarantine; [`ReadOnlyJournal`] still reads a quarantined journal's valid prefix and
//!   [`repair`] cuts it back to that prefix.
//!
//! # Line format and checksums
//!
//! Every record written is one line, a JSON object that stays valid JSON for `jq`:
//!
//! ```text
//! {"v":1,"seq":12,"at":"…","kind":"session.delta","lane":"main","data":{…},"crc":"1a2b3c4d"}
//! ```
//!
//! The line is the record as serde_json writes it, with its closing `}` replaced by the
//! fixed-width suffix `,"crc":"xxxxxxxx"}` (18 bytes): eight lowercase hex digits of the
//! CRC32C (Castagnoli) of every byte of the line before the suffix, i.e. from the opening
//! `{` through the end of the `data` value. The checksum is framing only: readers strip
//! it, and the records handed out are the plain [`EventRecord`]s of the wire schema.
//!
//! Journals written before checksums existed (lines with exactly the six record fields
//! and no `crc`) stay readable, and appending to one adds sealed lines after them. A
//! single damaged byte cannot pass for an unchecked line:
//! - a line that ends in the suffix must match its checksum (a 32-bit CRC catches every
//!   error burst of up to 32 bits, so every damaged byte or run of four bytes);
//! - a line without the suffix must decode with exactly the six record fields, so a flip
//!   in `,"crc":"`, in the digits' quotes or in the closing `}` makes a line that is
//!   neither;
//! - once a journal has a sealed line, a later line without a checksum is corruption (a
//!   downgrade), never an accepted legacy record.
//!
//! # Opening: every record is checked
//!
//! [`Journal::open`] reads the whole file once, front to back. A sealed line is checked
//! by its checksum and a cheap read of its seq (it starts `{"v":1,"seq":N,`); a legacy
//! line is decoded; only the last good record is decoded in full. Seqs must count up by
//! one from 1. The first line that breaks a rule ends the valid prefix. If no valid record
//! follows it, it is a torn tail (what a crash mid-write leaves) and is cut off after a
//! `.broken` copy; otherwise the journal is corrupt and open fails with
//! [`JournalError::Corrupt`], naming the last good seq and the bad record's byte offset.
//!
//! The async functions need a tokio runtime: file work that blocks runs on
//! `spawn_blocking`, and the writer is a task on it.
//!
//! The same pass decodes the first record (a session's `session.created`) and the last
//! one, and [`OpenReport`] (or [`Verification`]) hands both to the caller, so that loading
//! a session needs no second read of its journal for them.

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
use tokio::sync::oneshot;

pub use crate::io::{JournalFile, JournalIo, JournalReader, RealIo};
pub use crate::open::{Damage, DamageKind, Verification};
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
    /// The journal is corrupt before its tail (a checksum mismatch, a line that is not a
    /// record, a seq gap, a record without checksum after checksummed ones). Nothing was
    /// modified: the caller quarantines the session, can still read records
    /// `1..=last_good_seq` with [`ReadOnlyJournal`], and can cut the rest off with
    /// [`repair`].
    #[error(
        "journal corrupt at line {line} (byte {offset}; records up to seq {last_good_seq} \
         are intact): {reason}"
    )]
    Corrupt {
        /// The 1-based line of the bad record, as implied by the seqs before it (record N
        /// is on line N): `last_good_seq + 1`.
        line: u64,
        /// The seq of the last good record before the damage, 0 if there is none.
        last_good_seq: u64,
        /// The byte offset where the bad record's line starts (the length of the valid
        /// prefix).
        offset: u64,
        /// What is wrong, with the byte offset.
        reason: String,
    },
    /// The journal was closed (its writer task is gone).
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
    /// The first record (seq 1, a session's `session.created`), decoded by the same pass
    /// that verified the file, so that loading a session reads its journal once; `None`
    /// for an empty journal.
    pub first_record: Option<EventRecord>,
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

/// A cheap-to-clone handle to one journal; one writer task owns the file.
#[derive(Clone)]
pub struct Journal {
    inner: Arc<Inner>,
}

struct Inner {
    tx: flume::Sender<Msg>,
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
    /// directory entry durable, and starts its writer task.
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
        Journal::start(path, opts, file, 0, 0, Vec::new())
    }

    /// Creates a new journal file (mode 0600; fails if it exists) holding `first` as
    /// record 1, and returns once the record and the file's directory entry are durable,
    /// and `beside` (the caller's own sync, e.g. of the directory's entry in its parent)
    /// has returned, with the record as written. The three syncs (`fdatasync` of the
    /// file, fsync of its directory, `beside`) start at the same time, once the record
    /// is written: on a journaling file system they then share one commit, where one
    /// after the other each later one would flush the disk's cache again. The writer task
    /// is started only once all three succeeded; on any error the file is removed again
    /// and nothing was started.
    ///
    /// This is [`Journal::create`], a durable append of `first` and the caller's sync in
    /// one go: the file work runs on the calling thread, the two other syncs on the
    /// runtime's blocking pool, and there is no hand-off from one step to the next.
    ///
    /// Blocking: call it on a blocking thread of a tokio runtime (the writer task is
    /// started on that runtime).
    pub fn create_with(
        path: &Path,
        opts: JournalOptions,
        first: NewRecord,
        beside: impl FnOnce() -> std::io::Result<()> + Send + 'static,
    ) -> Result<(Journal, EventRecord), JournalError> {
        let runtime = runtime_for("starting the journal's writer task")?;
        let mut file = opts
            .io
            .open_append(path, true)
            .map_err(open::io_err("creating the journal"))?;
        let mut line = Vec::new();
        let durable = writer::encode(&mut line, 1, first).and_then(|record| {
            file.write_all(&line)
                .map_err(open::io_err("writing the journal's first record"))?;
            let owned = path.to_owned();
            let entry = runtime.spawn_blocking(move || {
                open::sync_parent_dir(&owned)
                    .map_err(open::io_err("syncing the journal's directory"))
            });
            let beside = runtime.spawn_blocking(move || {
                beside().map_err(open::io_err("syncing beside the new journal"))
            });
            let data = file
                .sync_data()
                .map_err(open::io_err("syncing the journal's first record"));
            // All three are waited for, so none is still running once this returns.
            let entry = runtime.block_on(entry).unwrap_or_else(|e| Err(lost(e)));
            let beside = runtime.block_on(beside).unwrap_or_else(|e| Err(lost(e)));
            data.and(entry).and(beside).map(|()| record)
        });
        let record = match durable {
            Ok(record) => record,
            Err(e) => {
                drop(file);
                let _ = std::fs::remove_file(path);
                return Err(e);
            }
        };
        let len = line.len() as u64;
        match Journal::start(path, opts, file, 1, len, Vec::new()) {
            Ok(journal) => Ok((journal, record)),
            Err(e) => {
                let _ = std::fs::remove_file(path);
                Err(e)
            }
        }
    }

    /// Opens an existing journal, checking every record in it (see the crate docs).
    ///
    /// A torn tail (a last line without `'\n'`, or last lines none of which is a valid
    /// record) is cut off after the whole file is copied to `<path>.broken` (or
    /// `.broken.N`); the report says so. A bad record anywhere before a valid one (a
    /// checksum mismatch, a line that is not a record, a seq gap, a record without
    /// checksum after checksummed ones) is [`JournalError::Corrupt`], returned without
    /// touching the file. An empty file is a valid journal with `last_seq` 0.
    pub async fn open(
        path: &Path,
        opts: JournalOptions,
    ) -> Result<(Journal, OpenReport), JournalError> {
        let io = Arc::clone(&opts.io);
        let owned = path.to_owned();
        let opened = blocking(move || check_and_open(io.as_ref(), &owned, None)).await?;
        Journal::started(path, opts, opened)
    }

    /// Opens an existing journal like [`Journal::open`], handing every record of it to
    /// `each`, in seq order, during the one pass that checks the file: loading a
    /// session reads its journal once. `each` may have seen records of a journal that
    /// then fails to open as corrupt; the caller drops what it built from them.
    ///
    /// Blocking: call it on a blocking thread of a tokio runtime (the writer task is
    /// started on that runtime).
    pub fn open_replaying(
        path: &Path,
        opts: JournalOptions,
        each: &mut dyn FnMut(EventRecord),
    ) -> Result<(Journal, OpenReport), JournalError> {
        let opened = check_and_open(opts.io.as_ref(), path, Some(each))?;
        Journal::started(path, opts, opened)
    }

    /// Starts the writer of a journal [`check_and_open`] opened, and reports.
    fn started(
        path: &Path,
        opts: JournalOptions,
        (file, scan, repaired): Opened,
    ) -> Result<(Journal, OpenReport), JournalError> {
        let v = scan.verification;
        let journal = Journal::start(path, opts, file, v.last_seq, v.valid_len, scan.index)?;
        let report = OpenReport {
            last_seq: v.last_seq,
            last_record: v.last_record,
            first_record: v.first_record,
            repaired,
        };
        Ok((journal, report))
    }

    /// Starts the writer task for `file`, which ends at `len` with record `last_seq`;
    /// `index` holds sparse seq → offset entries found by the open scan. The task runs on
    /// the current tokio runtime and holds no thread while the journal is idle.
    fn start(
        path: &Path,
        opts: JournalOptions,
        file: Box<dyn JournalFile>,
        last_seq: u64,
        len: u64,
        index: Vec<(u64, u64)>,
    ) -> Result<Journal, JournalError> {
        let runtime = runtime_for("starting the journal's writer task")?;
        let (tx, rx) = flume::bounded(opts.channel_capacity.max(1));
        let shared = Arc::new(Shared::new(last_seq, len));
        shared.index().extend(index);
        let writer = Writer::new(file, Arc::clone(&shared), last_seq, len);
        // Detached: the task ends on its own after a close or once every handle is gone.
        drop(runtime.spawn(writer::run(writer, rx)));
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
            record: Box::new(rec),
            ack,
            reply,
        };
        if self.inner.tx.send_async(msg).await.is_err() {
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
        if self
            .inner
            .tx
            .send_async(Msg::Close { reply })
            .await
            .is_err()
        {
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

/// A read-only view of a journal's valid prefix, for a session whose journal is corrupt
/// (quarantined) and must stay readable up to its last good record. Opening it checks the
/// whole file like [`Journal::open`] but never modifies it, copies it or starts a writer;
/// reads never go past the last good record, even if the file is healthy and a writer
/// appends to it later.
#[derive(Clone)]
pub struct ReadOnlyJournal {
    shared: Arc<Shared>,
    io: Arc<dyn JournalIo>,
    path: PathBuf,
}

impl fmt::Debug for ReadOnlyJournal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadOnlyJournal")
            .field("path", &self.path)
            .field("last_seq", &self.last_seq())
            .finish()
    }
}

impl ReadOnlyJournal {
    /// Checks the whole journal at `path` and returns a view of its valid prefix, with
    /// what the check found. Succeeds for a corrupt or torn journal too (that is what it
    /// is for); fails only when the file cannot be read.
    pub async fn open(
        path: &Path,
        opts: JournalOptions,
    ) -> Result<(ReadOnlyJournal, Verification), JournalError> {
        let io = Arc::clone(&opts.io);
        let owned = path.to_owned();
        let scan = blocking(move || scan_file(io.as_ref(), &owned, None)).await?;
        let v = scan.verification;
        let shared = Arc::new(Shared::new(v.last_seq, v.valid_len));
        shared.index().extend(scan.index);
        let view = ReadOnlyJournal {
            shared,
            io: opts.io,
            path: path.to_owned(),
        };
        Ok((view, v))
    }

    /// The seq of the last good record, 0 when there is none.
    pub fn last_seq(&self) -> u64 {
        self.shared.last_seq.load(Ordering::Acquire)
    }

    /// The path of the journal file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the good records with `seq >= since`, at most `limit`, in seq order; like
    /// [`Journal::read_from`], but bounded by the valid prefix found at open.
    pub async fn read_from(
        &self,
        since: u64,
        limit: usize,
    ) -> Result<Vec<EventRecord>, JournalError> {
        let shared = Arc::clone(&self.shared);
        let io = Arc::clone(&self.io);
        let path = self.path.clone();
        blocking(move || read::read_from(io.as_ref(), &path, &shared, since, limit)).await
    }
}

/// What [`repair`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct RepairReport {
    /// The seq of the last record kept, 0 if none.
    pub last_seq: u64,
    /// How many bytes were cut off the end; 0 for a healthy journal.
    pub dropped_bytes: u64,
    /// Where the untouched copy of the whole file was kept (`<path>.broken`, or
    /// `.broken.N` when earlier copies exist); `None` when nothing was wrong.
    pub broken_copy: Option<PathBuf>,
    /// What was wrong; `None` when the journal was healthy and left alone.
    pub damage: Option<Damage>,
}

impl RepairReport {
    /// Whether the journal was healthy, so repair changed nothing.
    pub fn was_healthy(&self) -> bool {
        self.damage.is_none()
    }
}

/// Cuts a damaged journal back to its last good record, so that [`Journal::open`]
/// accepts it again and appends go on at the next seq: the records after the first bad
/// one are given up (they stay in the `.broken` copy for a human to look at).
///
/// Keeps a copy of the whole file first (never overwriting an earlier copy), then
/// truncates the journal and syncs it and its directory. A healthy journal is left
/// untouched and the report says so. The journal must not be open for writing while
/// this runs (one writer per journal); a [`ReadOnlyJournal`] on it stays valid.
pub async fn repair(path: &Path, opts: JournalOptions) -> Result<RepairReport, JournalError> {
    let io = opts.io;
    let owned = path.to_owned();
    blocking(move || {
        let v = scan_file(io.as_ref(), &owned, None)?.verification;
        if v.damage.is_none() && v.valid_len == v.file_len {
            return Ok(RepairReport {
                last_seq: v.last_seq,
                dropped_bytes: 0,
                broken_copy: None,
                damage: None,
            });
        }
        let (file, broken_copy) = open::cut_back(io.as_ref(), &owned, v.valid_len)?;
        drop(file);
        Ok(RepairReport {
            last_seq: v.last_seq,
            dropped_bytes: v.file_len - v.valid_len,
            broken_copy: Some(broken_copy),
            damage: v.damage,
        })
    })
    .await
}

/// Opens `path` read-only and scans it whole.
fn scan_file(
    io: &dyn JournalIo,
    path: &Path,
    each: Option<&mut dyn FnMut(EventRecord)>,
) -> Result<open::Scan, JournalError> {
    let mut reader = io
        .open_read(path)
        .map_err(open::io_err("opening the journal"))?;
    open::scan(reader.as_mut(), each)
}

/// A journal file opened to append, the scan that checked it, and the repair of its
/// torn tail, if any.
type Opened = (Box<dyn JournalFile>, open::Scan, Option<RepairInfo>);

/// Checks the whole journal (handing its records to `each`), refuses a corrupt one,
/// cuts a torn tail back (after a `.broken` copy), and opens the file to append.
fn check_and_open(
    io: &dyn JournalIo,
    path: &Path,
    each: Option<&mut dyn FnMut(EventRecord)>,
) -> Result<Opened, JournalError> {
    let scan = scan_file(io, path, each)?;
    let v = &scan.verification;
    if let Some(err) = v.corrupt_error() {
        return Err(err);
    }
    if v.damage.is_some() || v.valid_len < v.file_len {
        let (file, broken_copy) = open::cut_back(io, path, v.valid_len)?;
        let info = RepairInfo {
            truncated_bytes: v.file_len - v.valid_len,
            broken_copy,
            recovered_last_seq: v.last_seq,
        };
        Ok((file, scan, Some(info)))
    } else {
        let file = io
            .open_append(path, false)
            .map_err(open::io_err("opening the journal to append"))?;
        Ok((file, scan, None))
    }
}

/// The tokio runtime the caller runs on, needed for `what`.
fn runtime_for(what: &str) -> Result<tokio::runtime::Handle, JournalError> {
    tokio::runtime::Handle::try_current().map_err(|e| JournalError::Io {
        what: what.to_owned(),
        source: std::io::Error::other(e),
    })
}

/// The error of blocking work that never returned (it panicked, or the runtime is
/// shutting down).
fn lost(e: tokio::task::JoinError) -> JournalError {
    JournalError::Io {
        what: "running blocking journal work".to_owned(),
        source: std::io::Error::other(e),
    }
}

/// Runs blocking file work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, JournalError> + Send + 'static,
) -> Result<T, JournalError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(lost(e)))
}
