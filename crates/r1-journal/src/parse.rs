//! Parsing NDJSON journal bytes into records.

use r1_proto::EventRecord;

/// The record format version this crate reads and writes.
pub(crate) const RECORD_VERSION: u32 = 1;

/// Parses one line (without its `'\n'`) as a journal record of the version this crate
/// knows, with a seq of at least 1.
pub(crate) fn parse_line(line: &[u8]) -> Option<EventRecord> {
    let record: EventRecord = serde_json::from_slice(line).ok()?;
    (record.v == RECORD_VERSION && record.seq >= 1).then_some(record)
}

/// Parses NDJSON journal bytes into records, stopping at the first line that is not valid.
///
/// A line is valid when it ends with `'\n'`, parses as an [`EventRecord`] of version 1 and,
/// after the first record, has the seq of the record before it plus one. Returns the
/// records and the length of the valid prefix: the byte just after the last valid line's
/// `'\n'`. A torn tail (a partial last line) is therefore never part of the prefix.
pub fn parse_records(bytes: &[u8]) -> (Vec<EventRecord>, usize) {
    let mut records = Vec::new();
    let valid = scan_records(bytes, None, |_, record| {
        records.push(record);
        true
    });
    (records, valid)
}

/// Walks the complete, valid lines of `bytes` from the start, calling `f(offset, record)`
/// for each; `prev_seq` is the seq the first record must follow, if known. Stops at the
/// first invalid or partial line, or when `f` returns false (that record counts as
/// valid). Returns the length of the valid prefix walked.
pub(crate) fn scan_records(
    bytes: &[u8],
    mut prev_seq: Option<u64>,
    mut f: impl FnMut(usize, EventRecord) -> bool,
) -> usize {
    let mut start = 0;
    while let Some(nl) = memchr_newline(&bytes[start..]) {
        let end = start + nl;
        let Some(record) = parse_line(&bytes[start..end]) else {
            break;
        };
        if prev_seq.is_some_and(|prev| prev.checked_add(1) != Some(record.seq)) {
            break;
        }
        prev_seq = Some(record.seq);
        let line_start = start;
        start = end + 1;
        if !f(line_start, record) {
            break;
        }
    }
    start
}

/// The position of the first `'\n'` in `bytes`.
pub(crate) fn memchr_newline(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|&b| b == b'\n')
}
