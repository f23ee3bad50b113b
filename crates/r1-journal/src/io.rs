//! The file operations the journal needs, behind a trait so tests can inject faults.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

/// Opens journal files. [`RealIo`] uses the file system; tests use
/// [`crate::testing::FaultyIo`] to fail an fsync or run out of space on purpose.
pub trait JournalIo: Send + Sync + 'static {
    /// Opens `path` for appending (`O_APPEND`, mode 0600). With `create_new` the file must
    /// not exist yet; without it, it must.
    fn open_append(&self, path: &Path, create_new: bool) -> io::Result<Box<dyn JournalFile>>;

    /// Opens `path` read-only for positioned reads: the tail scan of [`crate::Journal::open`]
    /// and [`crate::Journal::read_from`] go through it. The default reads the real file.
    fn open_read(&self, path: &Path) -> io::Result<Box<dyn JournalReader>> {
        Ok(Box::new(StdFile(File::open(path)?)))
    }
}

/// A journal file opened for appending; owned by the journal's writer alone.
#[allow(
    clippy::len_without_is_empty,
    reason = "`len` is a file length that can fail, not a collection's size"
)]
pub trait JournalFile: Send {
    /// Writes the whole buffer at the end of the file. On error, part of it may have been
    /// written; the caller truncates back with [`JournalFile::set_len`].
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()>;
    /// `fdatasync`: returns once the written data survives power loss.
    fn sync_data(&mut self) -> io::Result<()>;
    /// Truncates (or extends) the file to `len` bytes.
    fn set_len(&mut self, len: u64) -> io::Result<()>;
    /// The current length of the file in bytes.
    fn len(&mut self) -> io::Result<u64>;
}

/// A journal file opened for positioned reads.
#[allow(
    clippy::len_without_is_empty,
    reason = "`len` is a file length that can fail, not a collection's size"
)]
pub trait JournalReader: Send {
    /// The current length of the file in bytes.
    fn len(&mut self) -> io::Result<u64>;
    /// Reads up to `buf.len()` bytes at `offset`; returns how many were read, 0 at the end.
    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
}

/// Real file I/O with `std::fs`; files are created with mode 0600.
#[derive(Debug, Clone, Copy, Default)]
pub struct RealIo;

impl JournalIo for RealIo {
    fn open_append(&self, path: &Path, create_new: bool) -> io::Result<Box<dyn JournalFile>> {
        let mut opts = OpenOptions::new();
        opts.append(true).mode(0o600);
        if create_new {
            opts.create_new(true);
        }
        Ok(Box::new(StdFile(opts.open(path)?)))
    }
}

/// A `std::fs::File` as a journal file. A private wrapper, so that the journal traits
/// do not compete with `std::io::Write` methods on every `File` of a user's code.
struct StdFile(File);

impl JournalFile for StdFile {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.0.write_all(buf)
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.0.sync_data()
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }

    fn len(&mut self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }
}

impl JournalReader for StdFile {
    fn len(&mut self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }

    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        loop {
            match self.0.read_at(buf, offset) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => return other,
            }
        }
    }
}

/// Reads exactly `buf.len()` bytes at `offset`, or fails with `UnexpectedEof`.
pub(crate) fn read_exact_at(
    reader: &mut dyn JournalReader,
    mut buf: &mut [u8],
    mut offset: u64,
) -> io::Result<()> {
    while !buf.is_empty() {
        let n = reader.read_at(buf, offset)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf = &mut buf[n..];
        offset += n as u64;
    }
    Ok(())
}

/// A copy of an `io::Error` good enough to hand to every waiter of a batch
/// (`io::Error` is not `Clone`).
pub(crate) fn copy_io_error(e: &io::Error) -> io::Error {
    match e.raw_os_error() {
        Some(code) => io::Error::from_raw_os_error(code),
        None => io::Error::new(e.kind(), e.to_string()),
    }
}

/// Whether a write error means "out of space" (retryable once space returns) rather than
/// a broken device.
pub(crate) fn is_no_space(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
        || matches!(
            e.kind(),
            io::ErrorKind::StorageFull | io::ErrorKind::WriteZero | io::ErrorKind::QuotaExceeded
        )
}
