//! Feeds arbitrary bytes to `parse_records`, to the checks and repair of `Journal::open`,
//! and to the read-only view of a corrupt journal.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use r1_journal::{parse_records, Journal, JournalError, JournalOptions, ReadOnlyJournal};

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    let (records, valid) = parse_records(data);
    assert!(valid <= data.len());
    assert!(valid == 0 || data[valid - 1] == b'\n');
    assert!(records.windows(2).all(|w| w[0].seq + 1 == w[1].seq));
    assert_eq!(parse_records(&data[..valid]), (records, valid));

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.ndjson");
    std::fs::write(&path, data).unwrap();
    match runtime().block_on(Journal::open(&path, JournalOptions::default())) {
        Ok((journal, report)) => {
            let after = std::fs::read(&path).unwrap();
            assert!(data.starts_with(&after));
            assert!(after.is_empty() || after.ends_with(b"\n"));
            match &report.repaired {
                Some(info) => {
                    assert_eq!(std::fs::read(&info.broken_copy).unwrap(), data);
                    assert_eq!(info.truncated_bytes as usize, data.len() - after.len());
                }
                None => assert_eq!(after.len(), data.len()),
            }
            // Open checks the whole file, so what it kept is all valid.
            let (kept, kept_len) = parse_records(&after);
            assert_eq!(kept_len, after.len());
            assert_eq!(kept.len() as u64, report.last_seq);
            assert_eq!(kept.first().map_or(1, |r| r.seq), 1);
            assert_eq!(kept.last(), report.last_record.as_ref());
            runtime().block_on(journal.close()).unwrap();
        }
        Err(JournalError::Corrupt {
            last_good_seq,
            offset,
            ..
        }) => {
            assert_eq!(std::fs::read(&path).unwrap(), data, "corrupt files are left alone");
            let (prefix, prefix_len) = parse_records(&data[..offset as usize]);
            assert_eq!(prefix_len as u64, offset);
            assert_eq!(prefix.len() as u64, last_good_seq);
            let (view, found) = runtime()
                .block_on(ReadOnlyJournal::open(&path, JournalOptions::default()))
                .unwrap();
            assert_eq!((found.last_seq, found.valid_len), (last_good_seq, offset));
            let read = runtime().block_on(view.read_from(1, usize::MAX)).unwrap();
            assert_eq!(read, prefix);
        }
        Err(other) => panic!("open failed: {other}"),
    }
});
