//! An open, idle journal holds no OS thread: the process's thread count does not grow
//! with the number of open journals.
//!
//! A test binary of its own, with one test: the thread count it reads from
//! `/proc/self/status` is the whole process's, so no other test may run beside it.

// A failed set-up is a failed test.
#![allow(clippy::unwrap_used)]

use r1_journal::testing::sealed_line;
use r1_journal::{Ack, EventKind, EventRecord, Journal, JournalOptions, NewRecord};
use serde_json::json;

/// Journals opened at once; each holds one descriptor, well under the usual limit of
/// 20,000 here but above the 1,024 of a stingy shell, which the test raises if it can.
const JOURNALS: usize = 2_000;
/// The runtime's cap on blocking threads: with it, the thread count is bounded whatever
/// the number of journals (2 workers + this cap + the test's own threads).
const MAX_BLOCKING: usize = 4;

fn threads() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap()
}

fn raise_fd_limit(wanted: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read and write the struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < wanted {
            lim.rlim_cur = wanted.min(lim.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

#[test]
fn open_idle_journals_hold_no_thread() {
    raise_fd_limit(JOURNALS as u64 + 512);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(MAX_BLOCKING)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let created = EventRecord {
        v: 1,
        seq: 1,
        at: "2026-01-01T00:00:00.000Z".to_owned(),
        kind: EventKind::SessionCreated,
        lane: "main".to_owned(),
        data: json!({ "model": "echo" }),
    };
    // Written straight to disk: opening them costs no fsync, so the test stays quick.
    let line = sealed_line(&created);
    let paths: Vec<_> = (0..JOURNALS)
        .map(|i| dir.path().join(format!("j{i}.ndjson")))
        .collect();
    for path in &paths {
        std::fs::write(path, &line).unwrap();
    }
    let before = threads();
    let (journals, peak) = runtime.block_on(async {
        let mut journals = Vec::new();
        let mut peak = 0;
        for (i, path) in paths.iter().enumerate() {
            let (journal, report) = Journal::open(path, JournalOptions::default())
                .await
                .unwrap();
            assert_eq!(report.first_record.unwrap().kind, EventKind::SessionCreated);
            let delta = NewRecord::new(EventKind::SessionDelta, "main", json!({ "i": i }));
            assert_eq!(journal.append(delta, Ack::Appended).await.unwrap().seq, 2);
            journals.push(journal);
            if i % 100 == 0 {
                peak = peak.max(threads());
            }
        }
        (journals, peak.max(threads()))
    });
    // The runtime's 2 workers were started before `before`; its blocking threads may
    // all be alive at once, and 2 more covers tokio's and the harness's own.
    let slack = MAX_BLOCKING as u64 + 2;
    eprintln!("{JOURNALS} open journals: {peak} threads at most, {before} before");
    assert!(
        peak <= before + slack,
        "{JOURNALS} open journals: {peak} threads, {before} before (slack {slack})"
    );
    // Every journal still works after sitting idle.
    runtime.block_on(async {
        for journal in journals.iter().step_by(97) {
            let delta = NewRecord::new(EventKind::SessionDelta, "main", json!({}));
            assert_eq!(journal.append(delta, Ack::Durable).await.unwrap().seq, 3);
            journal.close().await.unwrap();
        }
    });
    assert!(threads() <= before + slack);
    drop(journals);
    runtime.shutdown_background();
}
