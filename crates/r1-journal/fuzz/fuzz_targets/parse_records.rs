//! Feeds arbitrary bytes to `parse_records` and to the repair of `Journal::open`.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use r1_journal::{parse_records, Journal, JournalError, JournalOptions};

/// Open's tail window: a file this small is validated whole.
const TAIL_CHUNK: usize = 64 * 1024;

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
            if after.len() <= TAIL_CHUNK {
                let (kept, kept_len) = parse_records(&after);
                assert_eq!(kept_len, after.len());
                assert_eq!(kept.len() as u64, report.last_seq);
                assert_eq!(kept.first().map_or(1, |r| r.seq), 1);
            }
            runtime().block_on(journal.close()).unwrap();
        }
        Err(JournalError::Corrupt { .. }) => {
            assert_eq!(std::fs::read(&path).unwrap(), data, "corrupt files are left alone");
        }
        Err(other) => panic!("open failed: {other}"),
    }
});
