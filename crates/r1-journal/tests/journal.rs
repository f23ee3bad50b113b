//! Black-box tests of the journal: append, replay, group commit, fault handling and
//! repair on open.

// Test helpers outside `#[test]` functions may unwrap too: a failed set-up is a failed test.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use proptest::prelude::*;
use r1_journal::testing::{append_raw, sealed_line, tear_at, FaultyIo};
use r1_journal::{
    parse_records, repair, Ack, DamageKind, EventKind, EventRecord, Journal, JournalError,
    JournalOptions, NewRecord, ReadOnlyJournal,
};
use serde_json::json;

fn delta(i: usize) -> NewRecord {
    NewRecord::new(
        EventKind::SessionDelta,
        "main",
        json!({ "text": format!("piece {i}") }),
    )
}

fn user_message(i: usize) -> NewRecord {
    NewRecord::new(
        EventKind::SessionMessage,
        "main",
        json!({ "role": "user", "message_id": format!("m{i}"), "text": "hello" }),
    )
}

fn journal_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("journal.ndjson")
}

/// Writes `n` valid records straight to a new file, bypassing the journal (fast set-up
/// for large files).
fn write_records(path: &Path, n: u64, payload: usize) -> Vec<u8> {
    let mut bytes = Vec::new();
    for seq in 1..=n {
        let record = EventRecord {
            v: 1,
            seq,
            at: "2026-01-01T00:00:00.000Z".to_owned(),
            kind: EventKind::LaneDelta,
            lane: "main".to_owned(),
            data: json!({ "text": "x".repeat(payload) }),
        };
        serde_json::to_writer(&mut bytes, &record).unwrap();
        bytes.push(b'\n');
    }
    std::fs::write(path, &bytes).unwrap();
    bytes
}

fn bench_record(seq: u64, payload: usize) -> EventRecord {
    EventRecord {
        v: 1,
        seq,
        at: "2026-01-01T00:00:00.000Z".to_owned(),
        kind: EventKind::LaneDelta,
        lane: "main".to_owned(),
        data: json!({ "text": format!("{seq}:{}", "x".repeat(payload)) }),
    }
}

/// Writes `n` sealed records (with checksums, as the writer writes them) straight to a
/// new file.
fn write_sealed(path: &Path, n: u64, payload: usize) -> Vec<u8> {
    let mut bytes = Vec::new();
    for seq in 1..=n {
        bytes.extend(sealed_line(&bench_record(seq, payload)));
    }
    std::fs::write(path, &bytes).unwrap();
    bytes
}

/// The start offset of every line of `bytes`.
fn line_starts(bytes: &[u8]) -> Vec<usize> {
    let mut starts = vec![0];
    starts.extend(
        bytes
            .iter()
            .enumerate()
            .filter(|(i, &b)| b == b'\n' && i + 1 < bytes.len())
            .map(|(i, _)| i + 1),
    );
    starts
}

fn seqs(records: &[EventRecord]) -> Vec<u64> {
    records.iter().map(|r| r.seq).collect()
}

#[tokio::test]
async fn append_and_replay_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = journal_path(&dir);
    let journal = Journal::create(&path, JournalOptions::default())
        .await
        .unwrap();
    assert_eq!(journal.last_seq(), 0);
    let mut written = Vec::new();
    let created = NewRecord::new(EventKind::SessionCreated, "main", json!({ "model": "m" }));
    written.push(journal.append(created, Ack::Durable).await.unwrap());
    for i in 0..9 {
        let ack = if i % 3 == 0 {
            Ack::Durable
        } else {
            Ack::Appended
        };
        written.push(journal.append(delta(i), ack).await.unwrap());
    }
    assert_eq!(seqs(&written), (1..=10).collect::<Vec<_>>());
    assert_eq!(journal.last_seq(), 10);
    assert!(
        written[0].at.ends_with('Z') && written[0].at.len() == 24,
        "{}",
        written[0].at
    );
    assert_eq!(written[3].data, json!({ "text": "piece 2" }));

    assert_eq!(journal.read_from(1, usize::MAX).await.unwrap(), written);
    assert_eq!(journal.read_from(0, 3).await.unwrap(), written[..3]);
    assert_eq!(journal.read_from(5, 3).await.unwrap(), written[4..7]);
    assert!(journal.read_from(11, 10).await.unwrap().is_empty());
    assert!(journal.read_from(1, 0).await.unwrap().is_empty());
    journal.close().await.unwrap();

    let bytes = std::fs::read(&path).unwrap();
    let (parsed, valid) = parse_records(&bytes);
    assert_eq!(parsed, written);
    assert_eq!(valid, bytes.len());
    let first_line = bytes.split(|&b| b == b'\n').next().unwrap();
    let line = std::str::from_utf8(first_line).unwrap();
    assert!(line.starts_with(r#"{"v":1,"seq":1,"at":""#), "{line}");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    let (reopened, report) = Journal::open(&path, JournalOptions::default())
        .await
        .unwrap();
    assert_eq!(report.last_seq, 10);
    assert_eq!(report.last_record.as_ref(), written.last());
    assert!(report.repaired.is_none());
    assert_eq!(reopened.read_from(1, usize::MAX).await.unwrap(), written);
    let next = reopened.append(delta(10), Ack::Appended).await.unwrap();
    assert_eq!(next.seq, 11);
    reopened.close().await.unwrap();
}

#[tokio::test]
async fn create_fails_when_the_file_exists() {
    let dir = tempfile::tempdir().unwrap();
    let path = journal_path(&dir);
    std::fs::write(&path, b"").unwrap();
    let err = Journal::create(&path, JournalOptions::default())
        .await
        .unwrap_err();
    match err {
        JournalError::Io { source, .. } => {
            assert_eq!(source.kind(), std::io::ErrorKind::AlreadyExists)
        }
        other => panic!("unexpected {other:?}"),
    }
}

/// Runs `Journal::create_with` as its callers do: on a blocking thread of the runtime.
async fn create_with(
    path: &Path,
    opts: JournalOptions,
    beside: impl FnOnce() -> std::io::Result<()> + Send + 'static,
) -> Result<(Journal, EventRecord), JournalError> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || Journal::create_with(&path, opts, user_message(0), beside))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_with_makes_the_first_record_durable_in_one_go() {
    let dir = tempfile::tempdir().unwrap();
    let path = journal_path(&dir);
    let io = FaultyIo::new();
    let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = Arc::clone(&ran);
    let (journal, first) = create_with(&path, io.options(), move || {
        seen.store(true, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(first.seq, 1);
    assert!(
        ran.load(std::sync::atomic::Ordering::SeqCst),
        "`beside` ran"
    );
    assert_eq!((io.write_count(), io.fsync_count()), (1, 1));
    assert_eq!(journal.last_seq(), 1);
    // The writer goes on after it, and the file reads back as one journal.
    let next = journal.append(delta(1), Ack::Appended).await.unwrap();
    assert_eq!(next.seq, 2);
    assert_eq!(seqs(&journal.read_from(1, 10).await.unwrap()), vec![1, 2]);
    journal.close().await.unwrap();
    let (reopened, report) = Journal::open(&path, JournalOptions::default())
        .await
        .unwrap();
    assert_eq!(report.first_record.unwrap(), first);
    assert_eq!(report.last_seq, 2);
    reopened.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_with_leaves_no_file_when_a_sync_fails() {
    let dir = tempfile::tempdir().unwrap();
    let path = journal_path(&dir);
    // The first record's fdatasync fails.
    let io = FaultyIo::new();
    io.fail_next_fsync();
    let err = create_with(&path, io.options(), || Ok(()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("first record"), "{err}");
    assert!(!path.exists());
    // The caller's sync beside it fails.
    let err = create_with(&path, JournalOptions::default(), || {
        Err(std::io::Error::from_raw_os_error(libc::EIO))
    })
    .await
    .unwrap_err();
    assert!(err.to_string().contains("beside"), "{err}");
    assert!(!path.exists());
    // A file already there is an error, and is left alone.
    std::fs::write(&path, b"mine").unwrap();
    let err = create_with(&path, JournalOptions::default(), || Ok(()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, JournalError::Io { ref source, .. } if source.kind() == std::io::ErrorKind::AlreadyExists),
        "{err:?}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), b"mine");
}

#[tokio::test]
async fn open_of_a_missing_file_fails() {
    let dir = tempfile::tempdir().unwrap();
    let err = Journal::open(&journal_path(&dir), JournalOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, JournalError::Io { ref source, .. } if source.kind() == std::io::ErrorKind::NotFound),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appenders_get_contiguous_seqs() {
    let dir = tempfile::tempdir().unwrap();
    let path = journal_path(&dir);
    let journal = Journal::create(&path, JournalOptions::default())
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for t in 0..64 {
        let journal = journal.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            for i in 0..50 {
                let rec = journal
                    .append(delta(t * 1000 + i), Ack::Appended)
                    .await
                    .unwrap();
                mine.push(rec.seq);
            }
            mine
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        let mine = task.await.unwrap();
        assert!(
            mine.windows(2).all(|w| w[0] < w[1]),
            "one appender's seqs go up"
        );
        all.extend(mine);
    }
    all.sort_unstable();
    assert_eq!(all, (1..=3200).collect::<Vec<_>>());
    assert_eq!(journal.last_seq(), 3200);
    journal.close().await.unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let (records, valid) = parse_records(&bytes);
    assert_eq!(valid, bytes.len());
    assert_eq!(seqs(&records), (1..=3200).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_appends_are_group_committed() {
    let dir = tempfile::tempdir().unwrap();
    let io = FaultyIo::new();
    let journal = Journal::create(&journal_path(&dir), io.options())
        .await
        .unwrap();
    let barrier = Arc::new(tokio::sync::Barrier::new(64));
    let mut tasks = Vec::new();
    for i in 0..64 {
        let journal = journal.clone();
        let barrier = Arc::clone(&barrier);
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            journal.append(user_message(i), Ack::Durable).await
        }));
    }
    let mut got = Vec::new();
    for task in tasks {
        got.push(task.await.unwrap().unwrap().seq);
    }
    got.sort_unstable();
    assert_eq!(got, (1..=64).collect::<Vec<_>>());
    let fsyncs = io.fsync_count();
    println!("64 concurrent durable appends: {fsyncs} fsyncs");
    assert!(
        (1..=16).contains(&fsyncs),
        "64 durable appends took {fsyncs} fsyncs"
    );
    assert_eq!(io.write_count(), fsyncs, "one write per durable batch");
    journal.close().await.unwrap();
}

#[tokio::test]
async fn appended_records_do_not_sync_but_durable_kinds_always_do() {
    let dir = tempfile::tempdir().unwrap();
    let io = FaultyIo::new();
    let journal = Journal::create(&journal_path(&dir), io.options())
        .await
        .unwrap();
    for i in 0..20 {
        journal.append(delta(i), Ack::Appended).await.unwrap();
    }
    assert_eq!(io.fsync_count(), 0);
    journal.append(user_message(0), Ack::Durable).await.unwrap();
    assert_eq!(io.fsync_count(), 1);
    // session.ended is a durable kind: asking for less still syncs.
    let ended = NewRecord::new(EventKind::SessionEnded, "main", json!({}));
    journal.append(ended, Ack::Appended).await.unwrap();
    assert_eq!(io.fsync_count(), 2);
    journal.close().await.unwrap();
    assert_eq!(io.fsync_count(), 3, "close syncs");
}

#[tokio::test]
async fn a_failed_fsync_fails_the_journal_for_good() {
    let dir = tempfile::tempdir().unwrap();
    let path = journal_path(&dir);
    let io = FaultyIo::new();
    let journal = Journal::create(&path, io.options()).await.unwrap();
    journal.append(delta(0), Ack::Appended).await.unwrap();
    assert!(journal.is_failed().is_none());

    io.fail_next_fsync();
    let err = journal
        .append(user_message(1), Ack::Durable)
        .await
        .unwrap_err();
    assert!(matches!(err, JournalError::Failed { .. }), "{err:?}");
    let reason = journal.is_failed().unwrap();
    assert!(reason.contains("fdatasync"), "{reason}");
    assert_eq!(
        journal.last_seq(),
        1,
        "the failed record is not acknowledged"
    );
    assert_eq!(seqs(&journal.read_from(1, 10).await.unwrap()), vec![1]);

    // Never retried: every later append fails, whatever its level, and no fsync is tried.
    let fsyncs = io.fsync_count();
    for ack in [Ack::Appended, Ack::Durable, Ack::Appended] {
        let err = journal.append(delta(2), ack).await.unwrap_err();
        assert!(matches!(err, JournalError::Failed { .. }), "{err:?}");
    }
    assert_eq!(io.fsync_count(), fsyncs);
    assert!(matches!(
        journal.close().await,
        Err(JournalError::Failed { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_fsync_fails_every_waiter_of_its_batch() {
    let dir = tempfile::tempdir().unwrap();
    let io = FaultyIo::new();
    let journal = Journal::create(&journal_path(&dir), io.options())
        .await
        .unwrap();
    io.fail_next_fsync();
    let mut tasks = Vec::new();
    for i in 0..32 {
        let journal = journal.clone();
        let ack = if i % 2 == 0 {
            Ack::Durable
        } else {
            Ack::Appended
        };
        tasks.push(tokio::spawn(
            async move { journal.append(delta(i), ack).await },
        ));
    }
    let mut ok = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Ok(record) => ok.push(record.seq),
            Err(JournalError::Failed { .. }) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    // Whatever was acknowledged was acknowledged before the failing batch; nothing after.
    assert!(journal.is_failed().is_some());
    assert_eq!(ok.len() as u64, journal.last_seq());
    ok.sort_unstable();
    assert_eq!(ok, (1..=journal.last_seq()).collect::<Vec<_>>());
}

#[tokio::test]
async fn running_out_of_space_rolls_back_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let path = journal_path(&dir);
    let io = FaultyIo::new();
    let journal = Journal::create(&path, io.options()).await.unwrap();
    for i in 0..3 {
        journal.append(delta(i), Ack::Appended).await.unwrap();
    }
    let good_len = std::fs::metadata(&path).unwrap().len();

    io.enospc_after_bytes(10);
    let err = journal
        .append(user_message(3), Ack::Durable)
        .await
        .unwrap_err();
    assert!(matches!(err, JournalError::NoSpace { .. }), "{err:?}");
    assert!(err.to_string().contains("out of space"), "{err}");
    assert!(
        journal.is_failed().is_none(),
        "ENOSPC does not fail the journal"
    );
    assert_eq!(journal.last_seq(), 3);
    // The partial write was cut off: the file still ends on a valid record.
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(bytes.len() as u64, good_len);
    let (records, valid) = parse_records(&bytes);
    assert_eq!((records.len(), valid), (3, bytes.len()));

    // Still no space: still a clean error.
    let err = journal.append(delta(4), Ack::Appended).await.unwrap_err();
    assert!(matches!(err, JournalError::NoSpace { .. }), "{err:?}");

    io.restore_space();
    let next = journal.append(user_message(5), Ack::Durable).await.unwrap();
    assert_eq!(
        next.seq, 4,
        "the seqs of the rolled-back records were never given out"
    );
    assert_eq!(next.data["message_id"], "m5");
    journal.close().await.unwrap();
    let (_, report) = Journal::open(&path, JournalOptions::default())
        .await
        .unwrap();
    assert_eq!(report.last_seq, 4);
    assert!(report.repaired.is_none());
}

#[tokio::test]
async fn a_torn_tail_is_cut_off_after_a_broken_copy() {
    let dir = tempfile::tempdir().unwrap();
    let path = journal_path(&dir);
    let journal = Journal::create(&path, JournalOptions::default())
        .await
        .unwrap();
    for i in 0..5 {
        journal.append(delta(i), Ack::Appended).await.unwrap();
    }
    journal.close().await.unwrap();
    let good = std::fs::read(&path).unwrap();
    let torn = br#"{"v":1,"seq":6,"at":"2026-"#;
    append_raw(&path, torn).unwrap();
    let original = std::fs::read(&path).unwrap();

    let (journal, report) = Journal::open(&path, JournalOptions::default())
        .await
        .unwrap();
    assert_eq!(report.last_seq, 5);
    assert_eq!(report.last_record.as_ref().map(|r| r.seq), Some(5));
    let repair = report.repaired.unwrap();
    assert_eq!(repair.truncated_bytes, torn.len() as u64);
    assert_eq!(repair.recovered_last_seq, 5);
    assert_eq!(repair.broken_copy, dir.path().join("journal.ndjson.broken"));
    assert_eq!(std::fs::read(&repair.broken_copy).unwrap(), original);
    assert_eq!(std::fs::read(&path).unwrap(), good);
    assert_eq!(
        journal.append(delta(5), Ack::Appended).await.unwrap().seq,
        6
    );
    journal.close().await.unwrap();

    // A second repair keeps the first copy and takes the next name.
    append_raw(&path, b"not json at all\n").unwrap();
    let (journal, report) = Journal::open(&path, JournalOptions::default())
        .await
        .unwrap();
    let repair = report.repaired.unwrap();
    assert_eq!(
        repair.broken_copy,
        dir.path().join("journal.ndjson.broken.1")
    );
    assert_eq!(repair.truncated_bytes, 16);
    assert_eq!(report.last_seq, 6);
    assert_eq!(
        std::fs::read(dir.path().join("journal.ndjson.broken")).unwrap(),
        original
    );
    journal.close().await.unwrap();
}

#[tokio::test]
async fn open_hands_over_the_first_and_last_records() {
    let dir = tempfile::tempdir().unwrap();
    let path = journal_path(&dir);
    let journal = Journal::create(&path, JournalOptions::default())
        .await
        .unwrap();
    let created = NewRecord::new(EventKind::SessionCreated, "main", json!({ "model": "m" }));
    let first = journal.append(created, Ack::Durable).await.unwrap();
    journal.close().await.unwrap();

    // One record: it is both the first and the last.
    let io = FaultyIo::new();
    let (journal, report) = Journal::open(&path, io.options()).await.unwrap();
    assert_eq!(report.first_record.as_ref(), Some(&first));
    assert_eq!(report.last_record.as_ref(), Some(&first));
    assert_eq!(
        io.bytes_read(),
        std::fs::metadata(&path).unwrap().len(),
        "the one record is read once"
    );
    for i in 0..300 {
        journal.append(delta(i), Ack::Appended).await.unwrap();
    }
    journal.close().await.unwrap();

    let (journal, report) = Journal::open(&path, JournalOptions::default())
        .await
        .unwrap();
    assert_eq!(report.first_record.as_ref(), Some(&first));
    assert_eq!(report.last_record.as_ref().map(|r| r.seq), Some(301));
    journal.close().await.unwrap();

    // A torn tail: the report still has both, from what is left.
    append_raw(&path, b"{\"v\":1,\"se").unwrap();
    let (journal, report) = Journal::open(&path, JournalOptions::default())
        .await
        .unwrap();
    assert!(report.repaired.is_some());
    assert_eq!(report.first_record.as_ref(), Some(&first));
    assert_eq!(report.last_record.as_ref().map(|r| r.seq), Some(301));
    journal.close().await.unwrap();

    // A corrupt journal's read-only view reports its first record too.
    let bytes = std::fs::read(&path).unwrap();
    let mut damaged = bytes.clone();
    let mid = line_starts(&bytes)[150] + 20;
    damaged[mid] ^= 0x01;
    std::fs::write(&path, &damaged).unwrap();
    let (_, v) = ReadOnlyJournal::open(&path, JournalOptions::default())
        .await
        .unwrap();
    assert_eq!(v.damage.unwrap().kind, DamageKind::Corrupt);
    assert_eq!(v.first_record.as_ref(), Some(&first));

    // An empty journal has neither.
    let empty = dir.path().join("empty.ndjson");
    std::fs::write(&empty, b"").unwrap();
    let (journal, report) = Journal::open(&empty, JournalOptions::default())
        .await
        .unwrap();
    assert!(report.first_record.is_none() && report.last_record.is_none());
    journal.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_journal_syncs_and_an_idle_one_keeps_working() {
    let dir = tempfile::tempdir().unwrap();
    let path = journal_path(&dir);
    let io = FaultyIo::new();
    let journal = Journal::create(&path, io.options()).await.unwrap();
    // Idle between appends: the writer goes back to waiting each time and comes back.
    for i in 0..5 {
        journal.append(delta(i), Ack::Appended).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(io.fsync_count(), 0);
    // Every handle dropped without a close: the writer syncs what was appended.
    drop(journal);
    for _ in 0..200 {
        if io.fsync_count() == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(io.fsync_count(), 1);
    let (journal, report) = Journal::open(&path, JournalOptions::default())
        .await
        .unwrap();
    assert_eq!(report.last_seq, 5);
    journal.close().await.unwrap();
}

#[tokio::test]
async fn a_file_with_only_a_partial_first_line_opens_empty() {
    let dir = tempfile::tempdir().unwrap();
    let path = journal_path(&dir);
    std::fs::write(&path, br#"{"v":1,"seq":1,"#).unwrap();
    let (journal, report) = Journal::open(&path, JournalOptions::default())
        .await
        .unwrap();
    assert_eq!(report.last_seq, 0);
    assert_eq!(report.repaired.unwrap().truncated_bytes, 15);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
    assert_eq!(
        journal.append(delta(0), Ack::Appended).await.unwrap().seq,
        1
    );
    journal.close().await.unwrap();
}

#[tokio::test]
async fn garbage_in_the_middle_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let path = journal_path(&dir);
    let bytes = write_records(&path, 6, 10);
    let lines: Vec<&[u8]> = bytes.split_inclusive(|&b| b == b'\n').collect();

    let mut corrupt = Vec::new();
    corrupt.extend(lines[..3].concat());
    corrupt.extend(b"\0\0\0 garbage\n");
    corrupt.extend(lines[3..].concat());
    std::fs::write(&path, &corrupt).unwrap();
    let err = Journal::open(&path, JournalOptions::default())
        .await
        .unwrap_err();
    match &err {
        JournalError::Corrupt {
            line,
            last_good_seq,
            offset,
            reason,
        } => {
            assert_eq!(*line, 4, "{reason}");
            assert_eq!(*last_good_seq, 3, "{reason}");
            assert_eq!(*offset, lines[..3].concat().len() as u64);
            assert!(reason.contains("byte "), "{reason}");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(
        std::fs::read(&path).unwrap(),
        corrupt,
        "a corrupt journal is left alone"
    );
    assert!(!dir.path().join("journal.ndjson.broken").exists());

    // A missing record (a seq gap) is corruption too.
    let mut gap = lines[..2].concat();
    gap.extend(lines[3..].concat());
    std::fs::write(&path, &gap).unwrap();
    let err = Journal::open(&path, JournalOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, JournalError::Corrupt { .. }), "{err:?}");

    // Records that do not start at seq 1.
    std::fs::write(&path, lines[1..].concat()).unwrap();
    let err = Journal::open(&path, JournalOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, JournalError::Corrupt { line: 1, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn an_empty_file_is_a_valid_journal() {
    let dir = tempfile::tempdir().unwrap();
    let path = journal_path(&dir);
    std::fs::write(&path, b"").unwrap();
    let (journal, report) = Journal::open(&path, JournalOptions::default())
        .await
        .unwrap();
    assert_eq!(report.last_seq, 0);
    assert!(report.last_record.is_none() && report.repaired.is_none());
    assert!(journal.read_from(1, 10).await.unwrap().is_empty());
    assert_eq!(journal.append(delta(0), Ack::Durable).await.unwrap().seq, 1);
    journal.close().await.unwrap();
}

#[tokio::test]
async fn open_reads_the_file_once_and_indexes_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = journal_path(&dir);
    let bytes = write_sealed(&path, 40_000, 100); // about 6 MB
    assert!(bytes.len() > 5_000_000);
    let last_line = bytes.len()
        - bytes[..bytes.len() - 1]
            .iter()
            .rposition(|&b| b == b'\n')
            .unwrap();
    let io = FaultyIo::new();
    let (journal, report) = Journal::open(&path, io.options()).await.unwrap();
    assert_eq!(report.last_seq, 40_000);
    assert!(
        io.bytes_read() <= (bytes.len() + last_line) as u64,
        "open read {} bytes of {}",
        io.bytes_read(),
        bytes.len()
    );

    // A torn tail is read once too, then cut off.
    journal.close().await.unwrap();
    append_raw(&path, &[b'x'; 70_000]).unwrap();
    io.reset_counters();
    let (journal, report) = Journal::open(&path, io.options()).await.unwrap();
    assert_eq!(report.last_seq, 40_000);
    assert_eq!(report.repaired.unwrap().truncated_bytes, 70_000);
    assert!(
        io.bytes_read() <= (bytes.len() + 70_000 + last_line) as u64,
        "open read {} bytes",
        io.bytes_read()
    );

    // Reads near the end start from the sparse index the open scan built.
    io.reset_counters();
    let tail = journal.read_from(39_990, 100).await.unwrap();
    assert_eq!(seqs(&tail), (39_990..=40_000).collect::<Vec<_>>());
    assert!(
        io.bytes_read() <= 512 * 1024,
        "read_from read {} bytes",
        io.bytes_read()
    );
    // Records appended after open are indexed by the writer.
    for i in 0..2_000 {
        journal.append(delta(i), Ack::Appended).await.unwrap();
    }
    io.reset_counters();
    let tail = journal.read_from(41_999, 10).await.unwrap();
    assert_eq!(seqs(&tail), vec![41_999, 42_000]);
    assert!(
        io.bytes_read() <= 512 * 1024,
        "read_from read {} bytes",
        io.bytes_read()
    );
    journal.close().await.unwrap();
}

#[tokio::test]
async fn close_is_idempotent_and_stops_appends() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::create(&journal_path(&dir), JournalOptions::default())
        .await
        .unwrap();
    journal.append(delta(0), Ack::Appended).await.unwrap();
    journal.close().await.unwrap();
    journal.close().await.unwrap();
    let err = journal.append(delta(1), Ack::Appended).await.unwrap_err();
    assert!(matches!(err, JournalError::Closed), "{err:?}");
    assert_eq!(seqs(&journal.read_from(1, 10).await.unwrap()), vec![1]);
}

#[test]
fn parse_records_stops_at_the_first_invalid_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = journal_path(&dir);
    let bytes = write_records(&path, 4, 3);
    let lines: Vec<&[u8]> = bytes.split_inclusive(|&b| b == b'\n').collect();
    assert_eq!(parse_records(b""), (vec![], 0));

    let (records, valid) = parse_records(&bytes);
    assert_eq!((seqs(&records), valid), (vec![1, 2, 3, 4], bytes.len()));

    // A partial last line.
    let cut = &bytes[..bytes.len() - 1];
    let (records, valid) = parse_records(cut);
    assert_eq!((records.len(), valid), (3, lines[..3].concat().len()));

    // A garbage line in the middle.
    let mut bad = lines[..2].concat();
    bad.extend(b"{}\n");
    bad.extend(lines[2..].concat());
    let (records, valid) = parse_records(&bad);
    assert_eq!((records.len(), valid), (2, lines[..2].concat().len()));

    // A seq gap.
    let mut gap = lines[..1].concat();
    gap.extend(lines[2..].concat());
    assert_eq!(parse_records(&gap).0.len(), 1);

    // A slice may start at any record.
    assert_eq!(seqs(&parse_records(&lines[2..].concat()).0), vec![3, 4]);

    // Another version is not a record this crate knows.
    let other = String::from_utf8(lines[0].to_vec())
        .unwrap()
        .replace(r#""v":1"#, r#""v":2"#);
    assert_eq!(parse_records(other.as_bytes()).1, 0);
}

/// Payloads with the characters that need escaping in JSON.
fn payload() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just('\n'),
            Just('"'),
            Just('\\'),
            Just('é'),
            Just('😀'),
            any::<char>()
        ],
        0..200,
    )
    .prop_map(|chars| chars.into_iter().collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// Any cut of a journal, with or without a little garbage after it, opens to exactly
    /// the records that were complete before the cut.
    #[test]
    fn any_cut_is_repaired_to_the_complete_records(
        payloads in prop::collection::vec(payload(), 0..40),
        cut_at in 0.0f64..=1.0,
        garbage in prop::collection::vec(any::<u8>().prop_filter("no newline", |b| *b != b'\n'), 0..3),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let path = journal_path(&dir);
            let journal = Journal::create(&path, JournalOptions::default()).await.unwrap();
            let mut written = Vec::new();
            for text in &payloads {
                let rec = NewRecord::new(EventKind::LaneDelta, "lane-1", json!({ "text": text }));
                written.push(journal.append(rec, Ack::Appended).await.unwrap());
            }
            journal.close().await.unwrap();
            let bytes = std::fs::read(&path).unwrap();
            let cut = ((bytes.len() as f64) * cut_at) as usize;
            tear_at(&path, cut as u64).unwrap();
            append_raw(&path, &garbage).unwrap();

            let complete = bytes[..cut].iter().filter(|&&b| b == b'\n').count();
            let valid_len = bytes[..cut].iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            let (journal, report) = Journal::open(&path, JournalOptions::default()).await.unwrap();
            prop_assert_eq!(report.last_seq, complete as u64);
            prop_assert_eq!(journal.last_seq(), complete as u64);
            prop_assert_eq!(report.repaired.is_some(), valid_len != cut + garbage.len());
            prop_assert_eq!(std::fs::read(&path).unwrap(), bytes[..valid_len].to_vec());
            let replayed = journal.read_from(1, usize::MAX).await.unwrap();
            prop_assert_eq!(&replayed[..], &written[..complete]);
            let next = journal.append(NewRecord::new(EventKind::SessionEnded, "main", json!({})), Ack::Durable).await.unwrap();
            prop_assert_eq!(next.seq, complete as u64 + 1);
            journal.close().await.unwrap();
            Ok(())
        })?;
    }
}

/// Checks that a journal damaged in its line `bad` (0-based) is refused by open with the
/// right last good seq and offset, stays readable up to it, and repairs to it.
async fn assert_corrupt_at(path: &Path, damaged: &[u8], bad: usize, broken_name: &str) {
    let starts = line_starts(damaged);
    let want_seq = bad as u64;
    let err = Journal::open(path, JournalOptions::default())
        .await
        .unwrap_err();
    match &err {
        JournalError::Corrupt {
            line,
            last_good_seq,
            offset,
            reason,
        } => {
            assert_eq!(*last_good_seq, want_seq, "{err}");
            assert_eq!(*line, want_seq + 1, "{err}");
            assert_eq!(*offset, starts[bad] as u64, "{err}");
            assert!(reason.contains(&format!("byte {offset}")), "{reason}");
        }
        other => panic!("line {bad}: expected Corrupt, got {other:?}"),
    }
    assert_eq!(
        std::fs::read(path).unwrap(),
        damaged,
        "open left the file alone"
    );

    // Quarantined but readable up to the last good record, without modifying anything.
    let (view, found) = ReadOnlyJournal::open(path, JournalOptions::default())
        .await
        .unwrap();
    assert_eq!(view.last_seq(), want_seq);
    assert_eq!(found.last_seq, want_seq);
    assert_eq!(found.valid_len, starts[bad] as u64);
    assert_eq!(found.damage.as_ref().unwrap().kind, DamageKind::Corrupt);
    let good = view.read_from(1, usize::MAX).await.unwrap();
    assert_eq!(seqs(&good), (1..=want_seq).collect::<Vec<_>>());
    if want_seq > 0 {
        assert_eq!(good.last().unwrap(), &bench_record(want_seq, 60));
        assert_eq!(found.last_record.as_ref(), good.last());
    }
    let tail = view
        .read_from(want_seq.saturating_sub(2), 10)
        .await
        .unwrap();
    assert_eq!(tail.last().map_or(0, |r| r.seq), want_seq);
    assert_eq!(
        std::fs::read(path).unwrap(),
        damaged,
        "reads left the file alone"
    );

    // Repair keeps a copy of the whole file and cuts the journal back.
    let report = repair(path, JournalOptions::default()).await.unwrap();
    assert!(!report.was_healthy());
    assert_eq!(report.last_seq, want_seq);
    assert_eq!(report.dropped_bytes, (damaged.len() - starts[bad]) as u64);
    let copy = report.broken_copy.unwrap();
    assert_eq!(copy.file_name().unwrap(), broken_name);
    assert_eq!(std::fs::read(&copy).unwrap(), damaged);
    assert_eq!(std::fs::read(path).unwrap(), &damaged[..starts[bad]]);

    let (journal, opened) = Journal::open(path, JournalOptions::default())
        .await
        .unwrap();
    assert_eq!(opened.last_seq, want_seq);
    assert!(opened.repaired.is_none());
    let next = journal.append(delta(0), Ack::Durable).await.unwrap();
    assert_eq!(next.seq, want_seq + 1);
    journal.close().await.unwrap();
    let healthy = repair(path, JournalOptions::default()).await.unwrap();
    assert!(healthy.was_healthy() && healthy.broken_copy.is_none());
    assert_eq!((healthy.last_seq, healthy.dropped_bytes), (want_seq + 1, 0));
}

#[tokio::test]
async fn a_flipped_byte_anywhere_is_found_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = journal_path(&dir);
    let bytes = write_sealed(&path, 7_000, 60);
    assert!(bytes.len() > 1_000_000, "{}", bytes.len());
    let starts = line_starts(&bytes);
    let line_of = |at: usize| starts.partition_point(|&s| s <= at) - 1;
    let line_text = |i: usize| {
        let end = starts.get(i + 1).copied().unwrap_or(bytes.len());
        std::str::from_utf8(&bytes[starts[i]..end]).unwrap()
    };
    let far_from_end = bytes.len() - 100 * 1024;
    let suffix_of_3000 = starts[3001] - 6; // a hex digit of record 3000's checksum
    let key_of_5000 = starts[4999] + line_text(4999).find("\"lane\"").unwrap() + 2;
    let cases = [
        ("start", 3),
        ("middle", bytes.len() / 2),
        ("more than 64 KiB before the end", far_from_end),
        ("inside a crc suffix", suffix_of_3000),
        (
            "the crc key",
            starts[2000] + line_text(2000).find("\"crc\"").unwrap() + 2,
        ),
        ("inside a key", key_of_5000),
        ("a seq digit", starts[100] + 13),
    ];
    for (n, (what, at)) in cases.into_iter().enumerate() {
        std::fs::write(&path, &bytes).unwrap();
        let mut damaged = bytes.clone();
        damaged[at] ^= 0x04;
        assert_ne!(damaged[at], b'\n');
        std::fs::write(&path, &damaged).unwrap();
        let broken = if n == 0 {
            "journal.ndjson.broken".to_owned()
        } else {
            format!("journal.ndjson.broken.{n}")
        };
        println!("{what}: byte {at}, line {}", line_of(at));
        assert_corrupt_at(&path, &damaged, line_of(at), &broken).await;
    }
}

#[tokio::test]
async fn a_flipped_byte_in_the_last_record_is_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let path = journal_path(&dir);
    let bytes = write_sealed(&path, 50, 10);
    let mut damaged = bytes.clone();
    damaged[bytes.len() - 30] ^= 0x01;
    std::fs::write(&path, &damaged).unwrap();
    let (journal, report) = Journal::open(&path, JournalOptions::default())
        .await
        .unwrap();
    assert_eq!(report.last_seq, 49);
    let repaired = report.repaired.unwrap();
    assert_eq!(std::fs::read(&repaired.broken_copy).unwrap(), damaged);
    assert_eq!(
        journal.append(delta(0), Ack::Appended).await.unwrap().seq,
        50
    );
    journal.close().await.unwrap();
}

#[tokio::test]
async fn a_legacy_journal_opens_and_new_records_get_checksums() {
    let dir = tempfile::tempdir().unwrap();
    let path = journal_path(&dir);
    let legacy = write_records(&path, 30, 20);
    assert!(!String::from_utf8_lossy(&legacy).contains("crc"));
    let (journal, report) = Journal::open(&path, JournalOptions::default())
        .await
        .unwrap();
    assert_eq!(report.last_seq, 30);
    assert!(report.repaired.is_none());
    for i in 0..5 {
        journal.append(delta(i), Ack::Appended).await.unwrap();
    }
    let all = journal.read_from(1, usize::MAX).await.unwrap();
    assert_eq!(seqs(&all), (1..=35).collect::<Vec<_>>());
    assert_eq!(all[31].data, json!({ "text": "piece 1" }));
    journal.close().await.unwrap();

    let bytes = std::fs::read(&path).unwrap();
    assert!(bytes.starts_with(&legacy));
    for line in bytes[legacy.len()..]
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
    {
        let value: serde_json::Value = serde_json::from_slice(line).unwrap();
        assert_eq!(value["crc"].as_str().unwrap().len(), 8, "{value}");
    }
    let (records, valid) = parse_records(&bytes);
    assert_eq!((records.len(), valid), (35, bytes.len()));
    assert!(
        records.iter().all(|r| r.v == 1),
        "the checksum is not part of records"
    );

    // Mixed legacy-then-checksummed reopens cleanly and keeps going.
    let (journal, report) = Journal::open(&path, JournalOptions::default())
        .await
        .unwrap();
    assert_eq!(report.last_seq, 35);
    assert_eq!(report.last_record.unwrap().seq, 35);
    assert_eq!(
        journal.append(delta(9), Ack::Durable).await.unwrap().seq,
        36
    );
    journal.close().await.unwrap();

    // A flip in a legacy record's seq is still caught (as a seq gap).
    let mut damaged = std::fs::read(&path).unwrap();
    let starts = line_starts(&damaged);
    damaged[starts[9] + 13] ^= 0x02; // seq 10 becomes seq 30
    std::fs::write(&path, &damaged).unwrap();
    let err = Journal::open(&path, JournalOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            JournalError::Corrupt {
                last_good_seq: 9,
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_record_without_checksum_after_checksummed_ones_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let path = journal_path(&dir);
    let mut bytes = Vec::new();
    for seq in 1..=3 {
        bytes.extend(sealed_line(&bench_record(seq, 5)));
    }
    let downgraded = bytes.len();
    for seq in 4..=5 {
        serde_json::to_writer(&mut bytes, &bench_record(seq, 5)).unwrap();
        bytes.push(b'\n');
    }
    bytes.extend(sealed_line(&bench_record(6, 5)));
    std::fs::write(&path, &bytes).unwrap();
    let err = Journal::open(&path, JournalOptions::default())
        .await
        .unwrap_err();
    match err {
        JournalError::Corrupt {
            last_good_seq,
            offset,
            ref reason,
            ..
        } => {
            assert_eq!((last_good_seq, offset), (3, downgraded as u64));
            assert!(reason.contains("no checksum"), "{reason}");
        }
        other => panic!("unexpected {other:?}"),
    }
    // parse_records applies the same rule.
    assert_eq!(parse_records(&bytes).1, downgraded);
}

#[tokio::test]
async fn repair_of_a_healthy_journal_is_a_no_op_and_torn_tails_are_repaired() {
    let dir = tempfile::tempdir().unwrap();
    let path = journal_path(&dir);
    let bytes = write_sealed(&path, 10, 10);
    let report = repair(&path, JournalOptions::default()).await.unwrap();
    assert!(report.was_healthy());
    assert_eq!((report.last_seq, report.dropped_bytes), (10, 0));
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
    assert!(!dir.path().join("journal.ndjson.broken").exists());

    append_raw(&path, b"{\"v\":1,\"seq\":11,").unwrap();
    let report = repair(&path, JournalOptions::default()).await.unwrap();
    assert_eq!(report.damage.unwrap().kind, DamageKind::TornTail);
    assert_eq!((report.last_seq, report.dropped_bytes), (10, 16));
    assert_eq!(
        report.broken_copy.unwrap(),
        dir.path().join("journal.ndjson.broken")
    );
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// A single flipped byte anywhere in a journal is never silently accepted: open
    /// either reports Corrupt (leaving the file alone), or cuts a torn tail and keeps
    /// exactly the records before the damaged one, or (a flip that leaves the bytes
    /// meaning the same, which the format does not allow) returns the same records.
    #[test]
    fn a_flipped_byte_is_never_silently_accepted(
        payloads in prop::collection::vec(payload(), 1..12),
        at in 0.0f64..1.0,
        mask in 1u8..=255,
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let path = journal_path(&dir);
            let journal = Journal::create(&path, JournalOptions::default()).await.unwrap();
            let mut written = Vec::new();
            for text in &payloads {
                let rec = NewRecord::new(EventKind::LaneDelta, "lane-1", json!({ "text": text }));
                written.push(journal.append(rec, Ack::Appended).await.unwrap());
            }
            journal.close().await.unwrap();
            let bytes = std::fs::read(&path).unwrap();
            let at = ((bytes.len() as f64) * at) as usize;
            let mut damaged = bytes.clone();
            damaged[at] ^= mask;
            std::fs::write(&path, &damaged).unwrap();
            let starts = line_starts(&bytes);
            let hit = starts.partition_point(|&s| s <= at) - 1;

            match Journal::open(&path, JournalOptions::default()).await {
                Ok((journal, report)) => {
                    let got = journal.read_from(1, usize::MAX).await.unwrap();
                    journal.close().await.unwrap();
                    // Only a torn tail may be cut, and only from the damaged line on.
                    prop_assert!(report.repaired.is_some(), "a flip at {} went unnoticed", at);
                    prop_assert!(got.len() <= hit, "kept the damaged line {}", hit);
                    prop_assert_eq!(&got[..], &written[..got.len()]);
                }
                Err(JournalError::Corrupt { last_good_seq, offset, .. }) => {
                    prop_assert!(last_good_seq as usize <= hit);
                    prop_assert!(offset as usize <= at);
                    prop_assert_eq!(std::fs::read(&path).unwrap(), damaged);
                    let (view, _) = ReadOnlyJournal::open(&path, JournalOptions::default()).await.unwrap();
                    let got = view.read_from(1, usize::MAX).await.unwrap();
                    prop_assert_eq!(&got[..], &written[..last_good_seq as usize]);
                }
                Err(other) => prop_assert!(false, "open failed: {}", other),
            }
            Ok(())
        })?;
    }
}
