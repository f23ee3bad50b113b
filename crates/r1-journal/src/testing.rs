//! Fault injection for tests: a [`JournalIo`] over real files whose fsyncs can fail and
//! whose disk can fill up on demand, and helpers that simulate a crash mid-write.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use r1_proto::EventRecord;

use crate::io::{JournalFile, JournalIo, JournalReader, RealIo};
use crate::parse::seal;
use crate::JournalOptions;

/// A [`JournalIo`] over real files with switches for faults and counters of calls.
/// Clones share their switches and counters, so a test keeps one and hands another to
/// the journal (see [`FaultyIo::options`]).
#[derive(Debug, Clone, Default)]
pub struct FaultyIo {
    state: Arc<FaultState>,
}

#[derive(Debug, Default)]
struct FaultState {
    fail_next_fsync: AtomicBool,
    space_limited: AtomicBool,
    space_left: AtomicU64,
    fsyncs: AtomicU64,
    writes: AtomicU64,
    bytes_read: AtomicU64,
}

impl FaultyIo {
    /// Fault-free I/O with all counters at zero.
    pub fn new() -> FaultyIo {
        FaultyIo::default()
    }

    /// Journal options that use this I/O.
    pub fn options(&self) -> JournalOptions {
        JournalOptions {
            io: Arc::new(self.clone()),
            ..JournalOptions::default()
        }
    }

    /// Makes the next `sync_data` fail with `EIO` (without syncing).
    pub fn fail_next_fsync(&self) {
        self.state.fail_next_fsync.store(true, Ordering::SeqCst);
    }

    /// Lets only `n` more bytes be written: a write past that budget writes what fits,
    /// then fails with `ENOSPC`.
    pub fn enospc_after_bytes(&self, n: u64) {
        self.state.space_left.store(n, Ordering::SeqCst);
        self.state.space_limited.store(true, Ordering::SeqCst);
    }

    /// Lifts the byte budget of [`FaultyIo::enospc_after_bytes`].
    pub fn restore_space(&self) {
        self.state.space_limited.store(false, Ordering::SeqCst);
    }

    /// How many `sync_data` calls were made, failed ones included.
    pub fn fsync_count(&self) -> u64 {
        self.state.fsyncs.load(Ordering::SeqCst)
    }

    /// How many `write_all` calls were made, failed ones included.
    pub fn write_count(&self) -> u64 {
        self.state.writes.load(Ordering::SeqCst)
    }

    /// How many bytes were read through readers this I/O opened.
    pub fn bytes_read(&self) -> u64 {
        self.state.bytes_read.load(Ordering::SeqCst)
    }

    /// Sets every counter back to zero.
    pub fn reset_counters(&self) {
        self.state.fsyncs.store(0, Ordering::SeqCst);
        self.state.writes.store(0, Ordering::SeqCst);
        self.state.bytes_read.store(0, Ordering::SeqCst);
    }
}

impl JournalIo for FaultyIo {
    fn open_append(&self, path: &Path, create_new: bool) -> io::Result<Box<dyn JournalFile>> {
        let mut opts = OpenOptions::new();
        opts.append(true);
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        if create_new {
            opts.create_new(true);
        }
        Ok(Box::new(FaultyFile {
            file: opts.open(path)?,
            state: Arc::clone(&self.state),
        }))
    }

    fn open_read(&self, path: &Path) -> io::Result<Box<dyn JournalReader>> {
        Ok(Box::new(CountingReader {
            inner: RealIo.open_read(path)?,
            state: Arc::clone(&self.state),
        }))
    }
}

struct FaultyFile {
    file: File,
    state: Arc<FaultState>,
}

impl JournalFile for FaultyFile {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.state.writes.fetch_add(1, Ordering::SeqCst);
        if self.state.space_limited.load(Ordering::SeqCst) {
            let left = self.state.space_left.load(Ordering::SeqCst);
            if (buf.len() as u64) > left {
                self.state.space_left.store(0, Ordering::SeqCst);
                // `left` is smaller than `buf.len()`, so it fits in usize.
                let fits = usize::try_from(left).unwrap_or(0);
                self.file.write_all(&buf[..fits])?;
                return Err(io::Error::from_raw_os_error(libc::ENOSPC));
            }
            self.state
                .space_left
                .store(left - buf.len() as u64, Ordering::SeqCst);
        }
        self.file.write_all(buf)
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.state.fsyncs.fetch_add(1, Ordering::SeqCst);
        if self.state.fail_next_fsync.swap(false, Ordering::SeqCst) {
            return Err(io::Error::from_raw_os_error(libc::EIO));
        }
        self.file.sync_data()
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }

    fn len(&mut self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }
}

struct CountingReader {
    inner: Box<dyn JournalReader>,
    state: Arc<FaultState>,
}

impl JournalReader for CountingReader {
    fn len(&mut self) -> io::Result<u64> {
        self.inner.len()
    }

    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let n = self.inner.read_at(buf, offset)?;
        self.state.bytes_read.fetch_add(n as u64, Ordering::SeqCst);
        Ok(n)
    }
}

/// Simulates a crash in the middle of a write: cuts the file at `len` bytes, as if the
/// bytes after it never reached the disk.
pub fn tear_at(path: &Path, len: u64) -> io::Result<()> {
    OpenOptions::new().write(true).open(path)?.set_len(len)
}

/// Appends raw bytes to the file, e.g. a partial line or garbage, as a crash or a bad
/// disk would leave them.
pub fn append_raw(path: &Path, bytes: &[u8]) -> io::Result<()> {
    OpenOptions::new().append(true).open(path)?.write_all(bytes)
}

/// The line the writer would write for `record`, checksum and `'\n'` included, so tests
/// can build large journals without going through the writer.
pub fn sealed_line(record: &EventRecord) -> Vec<u8> {
    let mut line = Vec::new();
    // Serializing a record (strings, an enum, a `serde_json::Value`) cannot fail.
    if serde_json::to_writer(&mut line, record).is_ok() {
        seal(&mut line, 0);
        line.push(b'\n');
    }
    line
}
