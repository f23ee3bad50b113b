//! The line format: sealing a record with its checksum, checking a line, and parsing
//! NDJSON journal bytes into records. The format itself is described in the crate docs.

use r1_proto::{EventKind, EventRecord};
use serde::de::IgnoredAny;
use serde::Deserialize;

/// The record format version this crate reads and writes.
pub(crate) const RECORD_VERSION: u32 = 1;

/// The key that starts the checksum suffix, `,"crc":"`.
const CRC_KEY: &[u8] = b",\"crc\":\"";
/// The length of the suffix `,"crc":"xxxxxxxx"}`: the key, eight hex digits, `"}`.
pub(crate) const SUFFIX_LEN: usize = CRC_KEY.len() + 8 + 2;
/// How every record this crate writes starts; lets a sealed line's seq be read without
/// decoding the rest.
const SEQ_PREFIX: &[u8] = b"{\"v\":1,\"seq\":";

/// Turns the JSON object in `buf[start..]` (one record, as serde_json wrote it) into a
/// sealed line body: the closing `}` is replaced by `,"crc":"xxxxxxxx"}`, where the hex
/// digits are the CRC32C of every byte before the suffix. Adds no `'\n'`.
pub(crate) fn seal(buf: &mut Vec<u8>, start: usize) {
    // serde_json ends an object with '}' and adds no whitespace, so this always pops.
    if buf.last() == Some(&b'}') {
        buf.pop();
    }
    let crc = crc32c::crc32c(buf.get(start..).unwrap_or_default());
    buf.extend_from_slice(CRC_KEY);
    let mut hex = [0u8; 8];
    for (i, digit) in hex.iter_mut().enumerate() {
        let nibble = (crc >> (28 - 4 * i)) & 0xf;
        *digit = b"0123456789abcdef"[nibble as usize];
    }
    buf.extend_from_slice(&hex);
    buf.extend_from_slice(b"\"}");
}

/// What one line (without its `'\n'`) is, judged on its own.
#[derive(Debug)]
pub(crate) enum Check {
    /// A line with a checksum that matches; its seq was read from the line's start
    /// without decoding the rest.
    Sealed {
        /// The record's seq.
        seq: u64,
    },
    /// A line written before checksums: it has exactly the six record fields and decodes.
    Legacy {
        /// The record's seq.
        seq: u64,
    },
    /// Not a valid record.
    Bad(&'static str),
}

impl Check {
    /// The seq of a valid line.
    pub(crate) fn seq(&self) -> Option<u64> {
        match self {
            Check::Sealed { seq } | Check::Legacy { seq } => Some(*seq),
            Check::Bad(_) => None,
        }
    }
}

/// A journal line as stored: the record's fields plus the optional checksum. Unknown
/// fields are refused, so a flipped byte in the `"crc"` key cannot turn a sealed line
/// into an accepted legacy one.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Stored {
    v: u32,
    seq: u64,
    at: String,
    kind: EventKind,
    lane: String,
    data: serde_json::Value,
    // Verified on the raw bytes before decoding; only its presence matters here.
    #[serde(default)]
    crc: Option<IgnoredAny>,
}

/// Splits a sealed line into its body (the bytes the checksum covers) and the checksum,
/// or returns `None` when the line does not end with a checksum suffix at all.
fn split_suffix(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let body_len = line.len().checked_sub(SUFFIX_LEN)?;
    let (body, suffix) = line.split_at(body_len);
    let hex = suffix.strip_prefix(CRC_KEY)?.strip_suffix(b"\"}")?;
    Some((body, hex))
}

/// Parses eight lowercase hex digits.
fn parse_hex(hex: &[u8]) -> Option<u32> {
    if hex.len() != 8 {
        return None;
    }
    hex.iter().try_fold(0u32, |acc, &b| {
        let digit = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            _ => return None,
        };
        Some(acc << 4 | u32::from(digit))
    })
}

/// Reads the seq of a line that starts the way this crate writes records.
fn cheap_seq(line: &[u8]) -> Option<u64> {
    let rest = line.strip_prefix(SEQ_PREFIX)?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    // u64::MAX has 20 digits; a leading zero is not JSON.
    if digits == 0 || digits > 20 || (digits > 1 && rest[0] == b'0') {
        return None;
    }
    if rest.get(digits) != Some(&b',') {
        return None;
    }
    rest[..digits].iter().try_fold(0u64, |acc, &b| {
        acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

/// Decodes a line into its stored form, checking version and seq.
fn decode(line: &[u8]) -> Result<Stored, &'static str> {
    let stored: Stored =
        serde_json::from_slice(line).map_err(|_| "the line is not a valid record")?;
    if stored.v != RECORD_VERSION {
        return Err("the record has an unknown version");
    }
    if stored.seq == 0 {
        return Err("the record has seq 0");
    }
    Ok(stored)
}

/// Checks a sealed line's checksum; `Ok(None)` when the line has no suffix at all.
fn verify_sealed(line: &[u8]) -> Result<Option<()>, &'static str> {
    let Some((body, hex)) = split_suffix(line) else {
        return Ok(None);
    };
    let want = parse_hex(hex).ok_or("the checksum is not eight lowercase hex digits")?;
    if crc32c::crc32c(body) != want {
        return Err("checksum mismatch");
    }
    Ok(Some(()))
}

/// Judges one line (without its `'\n'`) on its own: a sealed line is valid when its
/// checksum matches (its seq is then read cheaply, the rest is not decoded), a line
/// without a suffix when it decodes as a legacy record with exactly the record fields.
pub(crate) fn check_line(line: &[u8]) -> Check {
    match verify_sealed(line) {
        Err(reason) => Check::Bad(reason),
        Ok(Some(())) => match cheap_seq(line) {
            Some(seq) if seq >= 1 => Check::Sealed { seq },
            // A sealed line this crate did not write in its usual shape: decode it.
            _ => match decode(line) {
                Ok(stored) => Check::Sealed { seq: stored.seq },
                Err(reason) => Check::Bad(reason),
            },
        },
        Ok(None) => match decode(line) {
            Ok(stored) if stored.crc.is_none() => Check::Legacy { seq: stored.seq },
            Ok(_) => Check::Bad("the checksum suffix is malformed"),
            Err(reason) => Check::Bad(reason),
        },
    }
}

/// Takes `prefix`, then a JSON string without escapes, returning it and the rest.
fn plain_str<'a>(bytes: &'a [u8], prefix: &[u8]) -> Option<(&'a str, &'a [u8])> {
    let rest = bytes.strip_prefix(prefix)?;
    let end = rest.iter().position(|&b| b == b'"' || b == b'\\')?;
    if rest[end] != b'"' {
        return None;
    }
    let text = std::str::from_utf8(&rest[..end]).ok()?;
    Some((text, &rest[end + 1..]))
}

/// Decodes the body of a sealed line whose checksum matched, in the exact shape the
/// writer produces (`{"v":1,"seq":N,"at":"…","kind":"…","lane":"…","data":…`), reading
/// the fixed fields by position and handing only `data` to serde_json. Returns `None`
/// for any other shape (an escape in `at`, `kind` or `lane`, say): the caller then
/// decodes the line the general way. This is what makes replay fast: the fixed fields
/// cost no serde machinery.
fn decode_sealed_body(body: &[u8]) -> Option<EventRecord> {
    let seq = cheap_seq(body)?;
    let rest = body.strip_prefix(SEQ_PREFIX)?;
    let rest = &rest[rest.iter().position(|&b| b == b',')?..];
    let (at, rest) = plain_str(rest, b",\"at\":\"")?;
    let (kind, rest) = plain_str(rest, b",\"kind\":\"")?;
    let (lane, rest) = plain_str(rest, b",\"lane\":\"")?;
    let data = rest.strip_prefix(b",\"data\":")?;
    let kind = EventKind::deserialize(
        serde::de::value::StrDeserializer::<serde::de::value::Error>::new(kind),
    )
    .ok()?;
    let data: serde_json::Value = serde_json::from_slice(data).ok()?;
    (seq >= 1).then(|| EventRecord {
        v: RECORD_VERSION,
        seq,
        at: at.to_owned(),
        kind,
        lane: lane.to_owned(),
        data,
    })
}

/// Decodes one line (without its `'\n'`) fully: verifies the checksum of a sealed line,
/// then decodes it. Returns the record and whether it was sealed.
pub(crate) fn decode_line(line: &[u8]) -> Result<(EventRecord, bool), &'static str> {
    let sealed = verify_sealed(line)?.is_some();
    if sealed {
        if let Some(record) = decode_sealed_body(&line[..line.len() - SUFFIX_LEN]) {
            return Ok((record, true));
        }
    }
    let stored = decode(line)?;
    if stored.crc.is_some() != sealed {
        return Err("the checksum suffix is malformed");
    }
    let record = EventRecord {
        v: stored.v,
        seq: stored.seq,
        at: stored.at,
        kind: stored.kind,
        lane: stored.lane,
        data: stored.data,
    };
    Ok((record, sealed))
}

/// The order rules that hold between lines: seqs count up by one, and once a sealed
/// record was seen a line without a checksum is a downgrade, that is corruption.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Order {
    /// The seq of the last accepted record; `None` before the first.
    pub prev_seq: Option<u64>,
    /// Whether a sealed record was accepted.
    pub sealed_seen: bool,
}

impl Order {
    /// Checks a valid line's place after the records accepted so far, and accepts it.
    pub(crate) fn accept(&mut self, seq: u64, sealed: bool) -> Result<(), String> {
        if !sealed && self.sealed_seen {
            return Err(format!(
                "record {seq} has no checksum although earlier records have one"
            ));
        }
        if let Some(prev) = self.prev_seq {
            if prev.checked_add(1) != Some(seq) {
                return Err(format!("seq {prev} is followed by seq {seq}"));
            }
        }
        self.prev_seq = Some(seq);
        self.sealed_seen |= sealed;
        Ok(())
    }
}

/// Parses NDJSON journal bytes into records, stopping at the first line that is not valid.
///
/// A line is valid when it ends with `'\n'`, is a version-1 record with a seq of at least
/// 1 (sealed lines: the checksum matches; legacy lines: exactly the record fields), and,
/// after the first record, has the seq of the record before it plus one, and carries a
/// checksum if any record before it did. Returns the records and the length of the valid
/// prefix: the byte just after the last valid line's `'\n'`. A torn tail (a partial last
/// line) is therefore never part of the prefix. The checksum is framing: the records
/// returned are the plain [`EventRecord`]s.
pub fn parse_records(bytes: &[u8]) -> (Vec<EventRecord>, usize) {
    let mut records = Vec::new();
    let (valid, _) = scan_records(bytes, Order::default(), |_, record, _| {
        records.push(record);
        true
    });
    (records, valid)
}

/// Walks the complete, valid lines of `bytes` from the start, decoding each and calling
/// `f(offset, record, sealed)`; `order` holds what the records before `bytes` imply. Stops at the
/// first invalid or partial line, or when `f` returns false (that record counts as
/// valid). Returns the length of the valid prefix walked and, when it stopped at a
/// complete line that is not valid, why.
pub(crate) fn scan_records(
    bytes: &[u8],
    mut order: Order,
    mut f: impl FnMut(usize, EventRecord, bool) -> bool,
) -> (usize, Option<String>) {
    let mut start = 0;
    while let Some(nl) = memchr_newline(&bytes[start..]) {
        let end = start + nl;
        let (record, sealed) = match decode_line(&bytes[start..end]) {
            Ok(x) => x,
            Err(reason) => return (start, Some(reason.to_owned())),
        };
        if let Err(reason) = order.accept(record.seq, sealed) {
            return (start, Some(reason));
        }
        let line_start = start;
        start = end + 1;
        if !f(line_start, record, sealed) {
            break;
        }
    }
    (start, None)
}

/// The position of the first `'\n'` in `bytes`.
pub(crate) fn memchr_newline(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|&b| b == b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(seq: u64) -> EventRecord {
        EventRecord {
            v: 1,
            seq,
            at: "2026-01-01T00:00:00.000Z".to_owned(),
            kind: EventKind::SessionDelta,
            lane: "main".to_owned(),
            data: serde_json::json!({ "text": "hi \"there\"" }),
        }
    }

    fn sealed(seq: u64) -> Vec<u8> {
        let mut buf = Vec::new();
        serde_json::to_writer(&mut buf, &record(seq)).unwrap();
        seal(&mut buf, 0);
        buf
    }

    #[test]
    fn a_sealed_line_is_json_with_a_fixed_width_suffix() {
        let line = sealed(7);
        let text = std::str::from_utf8(&line).unwrap();
        let value: serde_json::Value = serde_json::from_str(text).unwrap();
        let crc = value["crc"].as_str().unwrap();
        assert_eq!(crc.len(), 8);
        let body = &line[..line.len() - SUFFIX_LEN];
        assert_eq!(crc, format!("{:08x}", crc32c::crc32c(body)));
        assert!(text.ends_with(&format!(r#","crc":"{crc}"}}"#)), "{text}");
        assert!(matches!(check_line(&line), Check::Sealed { seq: 7 }));
        assert_eq!(decode_line(&line).unwrap(), (record(7), true));
    }

    #[test]
    fn the_fast_decoder_agrees_with_serde() {
        let lanes = ["main", "lane \"quoted\"", "back\\slash", "é😀", ""];
        let datas = [
            serde_json::json!(null),
            serde_json::json!({ "a": [1, 2.5, "x\ny"], "b": { "c": true } }),
            serde_json::json!("text"),
        ];
        for lane in lanes {
            for data in &datas {
                let mut rec = record(5);
                rec.lane = lane.to_owned();
                rec.data = data.clone();
                let mut buf = Vec::new();
                serde_json::to_writer(&mut buf, &rec).unwrap();
                seal(&mut buf, 0);
                assert_eq!(decode_line(&buf).unwrap(), (rec.clone(), true));
                let stored = decode(&buf).unwrap();
                assert_eq!((stored.lane, stored.data), (rec.lane, rec.data));
            }
        }
    }

    #[test]
    fn legacy_lines_are_accepted_without_a_checksum() {
        let line = serde_json::to_vec(&record(3)).unwrap();
        assert!(matches!(check_line(&line), Check::Legacy { seq: 3 }));
        assert_eq!(decode_line(&line).unwrap(), (record(3), false));
    }

    #[test]
    fn every_single_byte_flip_of_a_sealed_line_is_refused_or_harmless() {
        let line = sealed(12);
        for i in 0..line.len() {
            for bit in 0..8 {
                let mut bad = line.clone();
                bad[i] ^= 1 << bit;
                if bad.contains(&b'\n') {
                    continue;
                }
                // CRC32C finds every single-bit error in the body; a flip in the suffix
                // either breaks the suffix (and the line is no legacy record either) or
                // the checksum no longer matches.
                assert!(
                    matches!(check_line(&bad), Check::Bad(_)),
                    "flip of bit {bit} at {i} accepted: {}",
                    String::from_utf8_lossy(&bad)
                );
                assert!(decode_line(&bad).is_err());
            }
        }
    }

    #[test]
    fn a_legacy_line_after_a_sealed_one_is_a_downgrade() {
        let mut order = Order::default();
        order.accept(1, false).unwrap();
        order.accept(2, true).unwrap();
        assert!(order.accept(3, false).unwrap_err().contains("no checksum"));
        assert!(order.accept(4, true).unwrap_err().contains("followed by"));
    }

    #[test]
    fn cheap_seq_reads_only_well_formed_numbers() {
        assert_eq!(cheap_seq(br#"{"v":1,"seq":42,"at":"#), Some(42));
        assert_eq!(cheap_seq(br#"{"v":1,"seq":042,"at":"#), None);
        assert_eq!(cheap_seq(br#"{"v":1,"seq":,"#), None);
        assert_eq!(cheap_seq(br#"{"v":2,"seq":4,"#), None);
        assert_eq!(cheap_seq(br#"{"v":1,"seq":99999999999999999999,"#), None);
        assert_eq!(parse_hex(b"0123abcd"), Some(0x0123_abcd));
        assert_eq!(parse_hex(b"0123ABCD"), None);
    }
}
