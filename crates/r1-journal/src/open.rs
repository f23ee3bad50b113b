//! Opening an existing journal: a tail scan that never reads the whole file, and the
//! repair of a torn tail.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use r1_proto::EventRecord;

use crate::io::{read_exact_at, JournalFile, JournalIo, JournalReader};
use crate::parse::parse_line;
use crate::JournalError;

/// The first read of the tail scan. Each further read doubles, up to
/// [`MAX_TAIL_READ`], so a long torn tail or a huge last line costs linear time.
pub(crate) const TAIL_CHUNK: u64 = 64 * 1024;
/// The largest single read of the tail scan; bounds the memory of one step.
const MAX_TAIL_READ: u64 = 8 * 1024 * 1024;
/// How many `.broken.N` names to try before giving up (a session that broke that often
/// has a problem no further copy helps with).
const MAX_BROKEN_COPIES: u32 = 1000;

/// What the tail scan found.
#[derive(Debug)]
pub(crate) struct TailScan {
    /// The length of the file when scanned.
    pub file_len: u64,
    /// The end of the last valid record's line: where the file must end.
    pub valid_len: u64,
    /// The last valid record, if any.
    pub last_record: Option<EventRecord>,
}

/// The result of one look at the window read so far.
enum Step {
    /// The window does not yet hold the last valid line and the line before it.
    NeedMore,
    /// The scan is complete.
    Done(TailScan),
}

/// Reads the file backwards from its end, in growing chunks, until the window holds the
/// last valid record and the line before it (or the start of the file); then checks every
/// complete line of the window (see [`look`]).
pub(crate) fn scan_tail(reader: &mut dyn JournalReader) -> Result<TailScan, JournalError> {
    let file_len = reader
        .len()
        .map_err(io_err("reading the journal's length"))?;
    let mut window: Vec<u8> = Vec::new();
    let mut window_start = file_len;
    let mut chunk = TAIL_CHUNK;
    while window_start > 0 {
        let take = chunk.min(window_start);
        let new_start = window_start - take;
        // `take` is at most MAX_TAIL_READ, so it fits in usize.
        let take = usize::try_from(take).map_err(|_| oversized())?;
        let mut grown = vec![0u8; take + window.len()];
        read_exact_at(reader, &mut grown[..take], new_start)
            .map_err(io_err("reading the journal's tail"))?;
        grown[take..].copy_from_slice(&window);
        window = grown;
        window_start = new_start;
        chunk = (chunk * 2).min(MAX_TAIL_READ);
        if let Step::Done(scan) = look(&window, window_start, file_len)? {
            return Ok(scan);
        }
    }
    // Only reached for an empty file, or one that holds no valid record at all.
    Ok(TailScan {
        file_len,
        valid_len: 0,
        last_record: None,
    })
}

/// Looks at the window `[window_start, file_len)` of the file.
///
/// The last valid line ends the valid prefix; everything after it is a torn tail (a
/// partial line or lines that do not parse). Every complete line of the window before it
/// must be a valid record and the seqs must count up by one to it, or the journal is
/// corrupt in the middle: that is not repaired but reported.
fn look(window: &[u8], window_start: u64, file_len: u64) -> Result<Step, JournalError> {
    let at_file_start = window_start == 0;
    // Complete lines of the window as (start, end) with `end` at the '\n'. The bytes
    // before the first '\n' belong to a line that starts before the window unless the
    // window starts the file.
    let mut lines = Vec::new();
    let mut start = 0;
    let mut first = true;
    for (i, &b) in window.iter().enumerate() {
        if b == b'\n' {
            if !first || at_file_start {
                lines.push((start, i));
            }
            first = false;
            start = i + 1;
        }
    }
    let mut last = None;
    for (idx, &(s, e)) in lines.iter().enumerate().rev() {
        if let Some(record) = parse_line(&window[s..e]) {
            last = Some((idx, record));
            break;
        }
    }
    let Some((last_idx, last_record)) = last else {
        return Ok(if at_file_start {
            Step::Done(TailScan {
                file_len,
                valid_len: 0,
                last_record: None,
            })
        } else {
            Step::NeedMore
        });
    };
    if last_idx == 0 && !at_file_start {
        // The line before the last valid one is not in the window yet.
        return Ok(Step::NeedMore);
    }
    // Walk back from the last valid record, so the first problem found is the one
    // nearest the tail.
    for idx in (0..last_idx).rev() {
        let (s, e) = lines[idx];
        let back = (last_idx - idx) as u64;
        // Seqs are at least 1, so an `expected` of 0 (saturated) never matches.
        let expected = last_record.seq.saturating_sub(back);
        let at = window_start + s as u64;
        match parse_line(&window[s..e]) {
            None => {
                // Name the line by the record before it when that one is valid, since
                // the records after a garbage line may be shifted or missing.
                let line = match idx.checked_sub(1).and_then(|i| {
                    let (ps, pe) = lines[i];
                    parse_line(&window[ps..pe])
                }) {
                    Some(prev) => prev.seq + 1,
                    None if at_file_start => idx as u64 + 1,
                    None => expected,
                };
                return Err(JournalError::Corrupt {
                    line,
                    reason: format!(
                        "byte {at}: a line that is not a valid record precedes valid records \
                         (the last valid record has seq {})",
                        last_record.seq
                    ),
                });
            }
            Some(record) if record.seq != expected => {
                return Err(JournalError::Corrupt {
                    line: record.seq + 1,
                    reason: format!(
                        "byte {at}: seq {} is followed by seq {} (the records after it imply \
                         {expected})",
                        record.seq,
                        expected + 1
                    ),
                });
            }
            Some(_) => {}
        }
    }
    if at_file_start && last_record.seq != last_idx as u64 + 1 {
        return Err(JournalError::Corrupt {
            line: 1,
            reason: format!(
                "the file's first record should have seq 1, but record {} is on line {}",
                last_record.seq,
                last_idx + 1
            ),
        });
    }
    let (_, end) = lines[last_idx];
    Ok(Step::Done(TailScan {
        file_len,
        valid_len: window_start + end as u64 + 1,
        last_record: Some(last_record),
    }))
}

/// Keeps a copy of the whole journal at `<path>.broken` (or `.broken.N` when taken), then
/// truncates the journal to `valid_len` and syncs it. Returns the file, ready to append,
/// and the path of the copy.
pub(crate) fn repair(
    io: &dyn JournalIo,
    path: &Path,
    valid_len: u64,
) -> Result<(Box<dyn JournalFile>, PathBuf), JournalError> {
    // The copy goes through std::fs, not JournalIo: it is a plain file next to the
    // journal that nothing appends to, and it must be durable before the truncation.
    let broken = copy_broken(path).map_err(io_err("keeping a .broken copy of the journal"))?;
    let mut file = io
        .open_append(path, false)
        .map_err(io_err("opening the journal to repair it"))?;
    file.set_len(valid_len)
        .map_err(io_err("truncating the journal's torn tail"))?;
    file.sync_data()
        .map_err(io_err("syncing the repaired journal"))?;
    Ok((file, broken))
}

/// Copies `path` to the first free name of `<path>.broken`, `<path>.broken.1`, …, syncs
/// the copy and its directory, and returns the copy's path.
fn copy_broken(path: &Path) -> io::Result<PathBuf> {
    let mut src = File::open(path)?;
    for n in 0..MAX_BROKEN_COPIES {
        let mut name = path.as_os_str().to_owned();
        name.push(".broken");
        if n > 0 {
            name.push(format!(".{n}"));
        }
        let candidate = PathBuf::from(name);
        let mut dst = match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&candidate)
        {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        };
        io::copy(&mut src, &mut dst)?;
        dst.sync_all()?;
        sync_parent_dir(path)?;
        return Ok(candidate);
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!("{MAX_BROKEN_COPIES} .broken copies of this journal exist already"),
    ))
}

/// Makes a new directory entry next to `path` durable.
pub(crate) fn sync_parent_dir(path: &Path) -> io::Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(parent)?.sync_all()
}

/// Wraps an `io::Error` with what the journal was doing.
pub(crate) fn io_err(what: &'static str) -> impl Fn(io::Error) -> JournalError {
    move |source| JournalError::Io {
        what: what.to_owned(),
        source,
    }
}

fn oversized() -> JournalError {
    JournalError::Io {
        what: "reading the journal's tail".to_owned(),
        source: io::Error::other("tail read larger than memory can address"),
    }
}
