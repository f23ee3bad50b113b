//! Journal throughput on this machine, as a small table:
//! appended events/s with one appender and with 64, durable events/s with 64 concurrent
//! writers against the raw one-thread `write` + `fdatasync` rate, replay MB/s, and the
//! time `Journal::open` takes to verify every checksum of the big journal; then the cost
//! of many idle journals: 10,000 small journals open at once in this process, with the
//! process's thread count and resident memory before and after.
//!
//! Run with `cargo bench -p r1-journal`. The files go to `R1_BENCH_DIR` if set, else the
//! system temp directory: a tmpfs there makes the fsync numbers meaningless.
//! `R1_BENCH_ONLY=targets` runs the cases with targets only, `R1_BENCH_ONLY=idle` only
//! the many-journals case.

// A benchmark prints its table, and a failed set-up should stop it loudly.
#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use r1_journal::testing::sealed_line;
use r1_journal::{parse_records, Ack, EventKind, EventRecord, Journal, JournalOptions, NewRecord};
use serde_json::json;

/// Records of the appended cases; `R1_BENCH_RECORDS` overrides it.
const APPENDED: usize = 1_000_000;
const WRITERS: usize = 64;
const DURABLE_PER_WRITER: usize = 500;
const RAW_SYNCS: usize = 2_000;
/// Idle journals open at once in the many-journals case; `R1_BENCH_JOURNALS` overrides it.
const MANY_JOURNALS: usize = 10_000;

struct Row {
    what: &'static str,
    events: usize,
    bytes: u64,
    took: Duration,
}

fn delta(i: usize) -> NewRecord {
    NewRecord::new(
        EventKind::SessionDelta,
        "main",
        json!({ "text": format!("tok{i}") }),
    )
}

async fn appended_one(path: &Path, appended: usize) -> Row {
    let journal = Journal::create(path, JournalOptions::default())
        .await
        .unwrap();
    let start = Instant::now();
    for i in 0..appended {
        journal.append(delta(i), Ack::Appended).await.unwrap();
    }
    let took = start.elapsed();
    journal.close().await.unwrap();
    Row {
        what: "appended, 1 appender",
        events: appended,
        bytes: std::fs::metadata(path).unwrap().len(),
        took,
    }
}

async fn concurrent(path: &Path, ack: Ack, per_writer: usize, what: &'static str) -> Row {
    let journal = Journal::create(path, JournalOptions::default())
        .await
        .unwrap();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let journal = journal.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..per_writer {
                journal
                    .append(delta(w * per_writer + i), ack)
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let took = start.elapsed();
    journal.close().await.unwrap();
    Row {
        what,
        events: WRITERS * per_writer,
        bytes: std::fs::metadata(path).unwrap().len(),
        took,
    }
}

async fn durable_one(path: &Path) -> Row {
    let journal = Journal::create(path, JournalOptions::default())
        .await
        .unwrap();
    let start = Instant::now();
    for i in 0..RAW_SYNCS {
        journal.append(delta(i), Ack::Durable).await.unwrap();
    }
    let took = start.elapsed();
    journal.close().await.unwrap();
    Row {
        what: "durable, 1 appender",
        events: RAW_SYNCS,
        bytes: std::fs::metadata(path).unwrap().len(),
        took,
    }
}

fn raw_fdatasync(path: &Path) -> Row {
    let mut file = std::fs::OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(path)
        .unwrap();
    let line = [b'x'; 99];
    let start = Instant::now();
    for _ in 0..RAW_SYNCS {
        file.write_all(&line).unwrap();
        file.write_all(b"\n").unwrap();
        file.sync_data().unwrap();
    }
    Row {
        what: "raw write+fdatasync, 1 thread",
        events: RAW_SYNCS,
        bytes: (RAW_SYNCS * 100) as u64,
        took: start.elapsed(),
    }
}

fn replay_parse(path: &Path) -> Row {
    let start = Instant::now();
    let bytes = std::fs::read(path).unwrap();
    let (records, valid) = parse_records(&bytes);
    let took = start.elapsed();
    assert_eq!(valid, bytes.len());
    Row {
        what: "replay, read + parse_records",
        events: records.len(),
        bytes: bytes.len() as u64,
        took,
    }
}

async fn replay_read_from(path: &Path, expected: u64) -> (Row, Vec<Duration>) {
    // A few opens: the first may pay for cold caches.
    let mut opens = Vec::new();
    for _ in 0..3 {
        let start = Instant::now();
        let (journal, report) = Journal::open(path, JournalOptions::default())
            .await
            .unwrap();
        opens.push(start.elapsed());
        assert_eq!(report.last_seq, expected);
        journal.close().await.unwrap();
    }
    let (journal, _) = Journal::open(path, JournalOptions::default())
        .await
        .unwrap();
    let start = Instant::now();
    let records = journal.read_from(1, usize::MAX).await.unwrap();
    let took = start.elapsed();
    journal.close().await.unwrap();
    let row = Row {
        what: "replay, read_from(1, all)",
        events: records.len(),
        bytes: std::fs::metadata(path).unwrap().len(),
        took,
    };
    (row, opens)
}

/// What the many-journals case measured.
struct Idle {
    journals: usize,
    took: Duration,
    threads_before: u64,
    threads_after: u64,
    threads_idle: u64,
    rss_before_kb: u64,
    rss_after_kb: u64,
}

/// `Threads` and `VmRSS` (KiB) from `/proc/self/status`.
fn proc_status() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap()
    };
    (field("Threads:"), field("VmRSS:"))
}

/// Opens `n` journals of one record each (written straight to disk, so the set-up costs
/// no fsyncs), appends one record to each, and reports the process's threads and RSS
/// while they are all open and idle. The handles are dropped unclosed: closing would
/// measure 10,000 fsyncs, not the idle cost.
async fn many_journals(dir: &Path, n: usize) -> Idle {
    let created = EventRecord {
        v: 1,
        seq: 1,
        at: "2026-01-01T00:00:00.000Z".to_owned(),
        kind: EventKind::SessionCreated,
        lane: "main".to_owned(),
        data: json!({ "model": "echo" }),
    };
    let line = sealed_line(&created);
    let paths: Vec<PathBuf> = (0..n)
        .map(|i| dir.join(format!("idle-{i}.ndjson")))
        .collect();
    for path in &paths {
        std::fs::write(path, &line).unwrap();
    }
    let (threads_before, rss_before_kb) = proc_status();
    let start = Instant::now();
    let mut journals = Vec::with_capacity(n);
    for (i, path) in paths.iter().enumerate() {
        let (journal, report) = Journal::open(path, JournalOptions::default())
            .await
            .unwrap();
        assert_eq!(report.last_seq, 1);
        journal.append(delta(i), Ack::Appended).await.unwrap();
        journals.push(journal);
    }
    let took = start.elapsed();
    // Let the blocking pool's threads go idle; they stay until its keep-alive ends.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (threads_after, rss_after_kb) = proc_status();
    // tokio reaps a blocking thread after 10 s idle: what is left then is what idle
    // journals hold.
    tokio::time::sleep(Duration::from_secs(11)).await;
    let (threads_idle, _) = proc_status();
    assert!(journals.iter().all(|j| j.last_seq() == 2));
    drop(journals);
    Idle {
        journals: n,
        took,
        threads_before,
        threads_after,
        threads_idle,
        rss_before_kb,
        rss_after_kb,
    }
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

fn main() {
    let base: PathBuf = std::env::var_os("R1_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::tempdir_in(&base).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let appended = std::env::var("R1_BENCH_RECORDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(APPENDED);
    let big = dir.path().join("appended.ndjson");
    let mut rows = Vec::new();
    let mut opens = Vec::new();
    // `R1_BENCH_ONLY=targets` runs only the cases with targets (64 appenders, replay,
    // open), building the replayed journal with the 64 appenders: quick enough to repeat.
    let only_targets = std::env::var("R1_BENCH_ONLY").is_ok_and(|v| v == "targets");
    let only_idle = std::env::var("R1_BENCH_ONLY").is_ok_and(|v| v == "idle");
    let many = std::env::var("R1_BENCH_JOURNALS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(MANY_JOURNALS);
    if only_idle {
        print_idle(&base, &runtime.block_on(idle_case(dir.path(), many)));
        runtime.shutdown_background();
        return;
    }
    runtime.block_on(async {
        if only_targets {
            rows.push(
                concurrent(
                    &big,
                    Ack::Appended,
                    appended / WRITERS,
                    "appended, 64 appenders",
                )
                .await,
            );
            return;
        }
        rows.push(appended_one(&big, appended).await);
        rows.push(
            concurrent(
                &dir.path().join("appended64.ndjson"),
                Ack::Appended,
                appended / WRITERS,
                "appended, 64 appenders",
            )
            .await,
        );
        rows.push(
            concurrent(
                &dir.path().join("durable64.ndjson"),
                Ack::Durable,
                DURABLE_PER_WRITER,
                "durable, 64 appenders",
            )
            .await,
        );
        rows.push(durable_one(&dir.path().join("durable1.ndjson")).await);
    });
    if !only_targets {
        rows.push(raw_fdatasync(&dir.path().join("raw.ndjson")));
    }
    rows.push(replay_parse(&big));
    runtime.block_on(async {
        let expected = (appended / WRITERS * if only_targets { WRITERS } else { 1 }) as u64;
        let expected = if only_targets {
            expected
        } else {
            appended as u64
        };
        let (row, took) = replay_read_from(&big, expected).await;
        rows.push(row);
        opens = took;
    });

    println!("r1-journal bench in {}", base.display());
    println!(
        "{:<32} {:>9} {:>9} {:>12} {:>9}",
        "case", "events", "seconds", "events/s", "MB/s"
    );
    for row in &rows {
        let secs = row.took.as_secs_f64();
        println!(
            "{:<32} {:>9} {:>9.3} {:>12.0} {:>9.1}",
            row.what,
            row.events,
            secs,
            row.events as f64 / secs,
            row.bytes as f64 / 1e6 / secs
        );
    }
    let mb = std::fs::metadata(&big).unwrap().len() as f64 / 1e6;
    let rates: Vec<String> = opens
        .iter()
        .map(|d| format!("{:.0} MB/s", mb / d.as_secs_f64()))
        .collect();
    println!("open (full checksum scan) of the {mb:.0} MB journal, 3 times: {opens:?} = {rates:?}");
    let idle = runtime.block_on(idle_case(dir.path(), many));
    print_idle(&base, &idle);
    // The dropped journals' last syncs need not finish before the process exits.
    runtime.shutdown_background();
}

/// The many-journals case, in a directory of its own.
async fn idle_case(dir: &Path, n: usize) -> Idle {
    // One descriptor per open journal, plus the reads of open.
    raise_fd_limit(n as u64 + 1024);
    let idle_dir = dir.join("idle");
    std::fs::create_dir(&idle_dir).unwrap();
    many_journals(&idle_dir, n).await
}

fn print_idle(base: &Path, idle: &Idle) {
    println!(
        "{} idle journals in {} (open + 1 append each, {:.2} s): threads {} -> {} \
         ({} after 11 s idle), RSS {:.1} -> {:.1} MB ({:.1} KB per journal)",
        idle.journals,
        base.display(),
        idle.took.as_secs_f64(),
        idle.threads_before,
        idle.threads_after,
        idle.threads_idle,
        idle.rss_before_kb as f64 / 1024.0,
        idle.rss_after_kb as f64 / 1024.0,
        idle.rss_after_kb.saturating_sub(idle.rss_before_kb) as f64 / idle.journals as f64,
    );
}
