//! Checking an existing journal: a full scan that verifies every record without decoding
//! it, and the repair that cuts a journal back to its valid prefix.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use r1_proto::EventRecord;

use crate::io::{read_exact_at, JournalFile, JournalIo, JournalReader};
use crate::parse::{check_line, decode_line, memchr_newline, Check, Order};
use crate::writer::INDEX_STRIDE;
use crate::JournalError;

/// How much of the file one read of the scan takes: large enough that the per-read cost
/// vanishes, small enough to stay in cache.
const SCAN_CHUNK: usize = 1024 * 1024;
/// How many `.broken.N` names to try before giving up (a session that broke that often
/// has a problem no further copy helps with).
const MAX_BROKEN_COPIES: u32 = 1000;

/// What a full scan of a journal found. Nothing is modified by a scan.
#[derive(Debug, Clone, PartialEq)]
pub struct Verification {
    /// The length of the file when scanned.
    pub file_len: u64,
    /// The length of the valid prefix: the end of the last good record's line. The file
    /// is healthy when this equals `file_len`.
    pub valid_len: u64,
    /// The seq of the last good record, 0 if there is none.
    pub last_seq: u64,
    /// The last good record.
    pub last_record: Option<EventRecord>,
    /// The first record (seq 1), decoded while the scan had it in hand, so that a caller
    /// loading a session (whose first record is `session.created`) need not read the
    /// file again; `None` when the valid prefix is empty.
    pub first_record: Option<EventRecord>,
    /// What is wrong after the valid prefix, if anything.
    pub damage: Option<Damage>,
}

/// The first bad spot of a journal, right after its valid prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// Whether it is a torn tail or corruption before valid records.
    pub kind: DamageKind,
    /// The byte offset of the first bad line (equal to the valid prefix's length).
    pub offset: u64,
    /// What is wrong there, in words.
    pub reason: String,
}

/// The two kinds of damage, which open treats differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DamageKind {
    /// Nothing valid follows the first bad line: what a crash mid-write leaves. Open cuts
    /// it off (after a `.broken` copy) and goes on.
    TornTail,
    /// A valid record follows the first bad line (or the bad line is a valid record out
    /// of order): data written and acknowledged was damaged. Open refuses the journal.
    Corrupt,
}

impl Verification {
    /// The error open reports for a corrupt journal, if this is one.
    pub(crate) fn corrupt_error(&self) -> Option<JournalError> {
        let damage = self.damage.as_ref()?;
        (damage.kind == DamageKind::Corrupt).then(|| JournalError::Corrupt {
            line: self.last_seq + 1,
            last_good_seq: self.last_seq,
            offset: damage.offset,
            reason: damage.reason.clone(),
        })
    }
}

/// The result of a scan: the verification, and sparse index entries (seq → line start)
/// for the valid prefix, one per [`INDEX_STRIDE`] bytes.
pub(crate) struct Scan {
    pub verification: Verification,
    pub index: Vec<(u64, u64)>,
}

/// Reads the whole file once, front to back, in [`SCAN_CHUNK`] reads, and checks every
/// line: sealed lines by their checksum and a cheap read of their seq, legacy lines by
/// decoding them; seqs must count up by one from 1, and no legacy line may follow a
/// sealed one. Only the first and the last good records are fully decoded (for the
/// report); the first one must decode, like the last.
///
/// The valid prefix ends at the first line that breaks a rule. If any line after it is
/// a valid record on its own (or the breaking line is one, out of order), the damage is
/// [`DamageKind::Corrupt`]; otherwise it is a [`DamageKind::TornTail`].
///
/// With `each`, every record of the valid prefix is decoded and handed to it in seq
/// order as the scan passes it (a record that passes its checksum but does not decode
/// is then corruption, as the first one always is). When the scan ends in corruption,
/// `each` has seen records the caller must not trust.
pub(crate) fn scan(
    reader: &mut dyn JournalReader,
    mut each: Option<&mut dyn FnMut(EventRecord)>,
) -> Result<Scan, JournalError> {
    let file_len = reader
        .len()
        .map_err(io_err("reading the journal's length"))?;
    let mut order = Order::default();
    let mut index = Vec::new();
    let mut last_indexed: Option<u64> = None;
    // The last good line, as (start, end without the '\n').
    let mut last_line: Option<(u64, u64)> = None;
    // The first record, decoded from the chunk in hand (no read of its own).
    let mut first_record: Option<EventRecord> = None;
    // The first bad line's offset and why; then whether anything valid follows it.
    let mut bad: Option<(u64, String)> = None;
    let mut valid_after_bad = false;
    // Bytes read but not yet judged, starting at file offset `pos`; `searched` of them
    // are known to hold no '\n'.
    let mut buf: Vec<u8> = Vec::new();
    let mut pos: u64 = 0;
    let mut searched = 0usize;
    let mut read_at: u64 = 0;
    while read_at < file_len && !valid_after_bad {
        let take = usize::try_from((file_len - read_at).min(SCAN_CHUNK as u64))
            .map_err(|_| oversized())?;
        let old = buf.len();
        buf.resize(old + take, 0);
        read_exact_at(reader, &mut buf[old..], read_at).map_err(io_err("reading the journal"))?;
        read_at += take as u64;
        let mut start = 0usize;
        let mut from = searched;
        while let Some(nl) = memchr_newline(&buf[from..]) {
            let end = from + nl;
            let line = &buf[start..end];
            let at = pos + start as u64;
            let check = check_line(line);
            match &bad {
                None => {
                    let sealed = matches!(check, Check::Sealed { .. });
                    let verdict = match check {
                        Check::Bad(reason) => Err((reason.to_owned(), false)),
                        Check::Sealed { seq } | Check::Legacy { seq } => {
                            let first = order.prev_seq.is_none();
                            if first && seq != 1 {
                                Err((format!("the first record has seq {seq}, not 1"), true))
                            } else if first || each.is_some() {
                                // A sealed line whose checksum matches but which does not
                                // decode is not something this crate writes: corruption.
                                match decode_line(line) {
                                    Ok((record, _)) => order
                                        .accept(seq, sealed)
                                        .map(|()| Some(record))
                                        .map_err(|r| (r, true)),
                                    Err(reason) => Err((reason.to_owned(), true)),
                                }
                            } else {
                                order
                                    .accept(seq, sealed)
                                    .map(|()| None)
                                    .map_err(|r| (r, true))
                            }
                        }
                    };
                    match verdict {
                        Ok(record) => {
                            match (record, first_record.is_none(), each.as_deref_mut()) {
                                (Some(r), true, Some(f)) => {
                                    first_record = Some(r.clone());
                                    f(r);
                                }
                                (Some(r), true, None) => first_record = Some(r),
                                (Some(r), false, Some(f)) => f(r),
                                _ => {}
                            }
                            let seq = order.prev_seq.unwrap_or(0);
                            if last_indexed.is_none_or(|i| at >= i + INDEX_STRIDE) {
                                index.push((seq, at));
                                last_indexed = Some(at);
                            }
                            last_line = Some((at, pos + end as u64));
                        }
                        Err((reason, is_record)) => {
                            bad = Some((at, format!("byte {at}: {reason}")));
                            valid_after_bad = is_record;
                        }
                    }
                }
                Some(_) => {
                    if check.seq().is_some() {
                        valid_after_bad = true;
                        break;
                    }
                }
            }
            start = end + 1;
            from = start;
        }
        buf.drain(..start);
        pos += start as u64;
        searched = buf.len();
    }
    if bad.is_none() && !buf.is_empty() {
        // A last line without its '\n'.
        bad = Some((pos, format!("byte {pos}: the last line is incomplete")));
    }
    let mut valid_len = last_line.map_or(0, |(_, end)| end + 1);
    let mut last_seq = order.prev_seq.unwrap_or(0);
    let mut last_record = None;
    if let (Some((0, _)), Some(first)) = (last_line, &first_record) {
        // A journal of one record: its last record is its first, decoded already.
        last_record = Some(first.clone());
    } else if let Some((start, end)) = last_line {
        let len = usize::try_from(end - start).map_err(|_| oversized())?;
        let mut line = vec![0u8; len];
        read_exact_at(reader, &mut line, start)
            .map_err(io_err("reading the journal's last record"))?;
        match decode_line(&line) {
            Ok((record, _)) => last_record = Some(record),
            Err(reason) => {
                // A sealed line whose checksum matches but which does not decode: not
                // something this crate writes, so it is corruption, not a torn tail.
                // The records before it are good but the last of them is not decoded.
                valid_len = start;
                last_seq = last_seq.saturating_sub(1);
                bad = Some((start, format!("byte {start}: {reason}")));
                valid_after_bad = true;
            }
        }
    }
    let damage = bad.map(|(offset, reason)| Damage {
        kind: if valid_after_bad {
            DamageKind::Corrupt
        } else {
            DamageKind::TornTail
        },
        offset,
        reason,
    });
    Ok(Scan {
        verification: Verification {
            file_len,
            valid_len,
            last_seq,
            last_record,
            first_record: first_record.filter(|_| last_seq > 0),
            damage,
        },
        index,
    })
}

/// Keeps a copy of the whole journal at `<path>.broken` (or `.broken.N` when taken), then
/// truncates the journal to `valid_len` and syncs it and its directory. Returns the file,
/// ready to append, and the path of the copy.
pub(crate) fn cut_back(
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
        .map_err(io_err("truncating the journal to its last good record"))?;
    file.sync_data()
        .map_err(io_err("syncing the repaired journal"))?;
    sync_parent_dir(path).map_err(io_err("syncing the journal's directory"))?;
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

/// The error for a read that does not fit in memory's address space.
fn oversized() -> JournalError {
    JournalError::Io {
        what: "reading the journal".to_owned(),
        source: io::Error::other("a read larger than memory can address"),
    }
}
