//! Reading records back from the file, through a read-only descriptor of its own.

use std::path::Path;
use std::sync::atomic::Ordering;

use r1_proto::EventRecord;

use crate::io::{read_exact_at, JournalIo};
use crate::open::io_err;
use crate::parse::{memchr_newline, scan_records, Order};
use crate::writer::{Shared, INDEX_STRIDE};
use crate::JournalError;

/// How much of the file one read takes.
const READ_CHUNK: u64 = 256 * 1024;

/// Reads the records with `seq >= since`, at most `limit`, up to the committed length.
/// Starts at the nearest sparse index entry at or before `since`, and adds index entries
/// for the stretch it had to walk.
pub(crate) fn read_from(
    io: &dyn JournalIo,
    path: &Path,
    shared: &Shared,
    since: u64,
    limit: usize,
) -> Result<Vec<EventRecord>, JournalError> {
    let since = since.max(1);
    // last_seq is stored after committed_len, so the length loaded second covers it.
    let last = shared.last_seq.load(Ordering::Acquire);
    let end = shared.committed_len.load(Ordering::Acquire);
    if limit == 0 || since > last {
        return Ok(Vec::new());
    }
    let (start_seq, mut offset) = shared
        .index()
        .range(..=since)
        .next_back()
        .map(|(&seq, &offset)| (seq, offset))
        .unwrap_or((1, 0));
    let mut reader = io
        .open_read(path)
        .map_err(io_err("opening the journal to read"))?;
    let mut out = Vec::new();
    let mut new_entries = Vec::new();
    let mut last_indexed = offset;
    let mut prev = start_seq - 1;
    // Whether the walk has met a sealed record: the walk may start mid-file, so only the
    // records it saw count for the downgrade rule (open checked the rest).
    let mut sealed_seen = false;
    // Bytes from `offset` on that are read but not yet parsed (a partial line).
    let mut carry: Vec<u8> = Vec::new();
    while out.len() < limit {
        let read_at = offset + carry.len() as u64;
        let take = READ_CHUNK.min(end.saturating_sub(read_at));
        if take == 0 {
            break;
        }
        let old = carry.len();
        // `take` is at most READ_CHUNK, so it fits in usize.
        carry.resize(old + take as usize, 0);
        read_exact_at(reader.as_mut(), &mut carry[old..], read_at)
            .map_err(io_err("reading the journal"))?;
        let order = Order {
            prev_seq: Some(prev),
            sealed_seen,
        };
        let (consumed, why) = scan_records(&carry, order, |pos, record, sealed| {
            let at = offset + pos as u64;
            if at >= last_indexed + INDEX_STRIDE {
                new_entries.push((record.seq, at));
                last_indexed = at;
            }
            prev = record.seq;
            sealed_seen |= sealed;
            if record.seq >= since {
                out.push(record);
            }
            out.len() < limit
        });
        if let Some(reason) = why.filter(|_| out.len() < limit) {
            let at = offset + consumed as u64;
            let bad_end = memchr_newline(&carry[consumed..]).map_or(carry.len(), |i| consumed + i);
            let snippet = String::from_utf8_lossy(&carry[consumed..bad_end.min(consumed + 80)]);
            return Err(JournalError::Corrupt {
                line: prev + 1,
                last_good_seq: prev,
                offset: at,
                reason: format!(
                    "byte {at}: not the record with seq {} that should follow ({reason}): \
                     {snippet:?}",
                    prev + 1
                ),
            });
        }
        carry.drain(..consumed);
        offset += consumed as u64;
    }
    if !carry.is_empty() && out.len() < limit {
        return Err(JournalError::Corrupt {
            line: prev + 1,
            last_good_seq: prev,
            offset,
            reason: format!("byte {offset}: the committed part of the journal ends mid-line"),
        });
    }
    if !new_entries.is_empty() {
        shared.index().extend(new_entries);
    }
    Ok(out)
}
