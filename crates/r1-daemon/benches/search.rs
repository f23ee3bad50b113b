//! The search index's figures (docs/BENCHMARKS.md): the time to index 1,000,000
//! journal records, the query latency on that index, and the journal append rate with
//! the indexer fed (and running) versus without it.
//!
//! `cargo bench -p r1-daemon --bench search`; `R1_BENCH_RECORDS` changes the number
//! of records indexed (default 1,000,000).

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use r1_daemon::search::{self, Entry, SearchIndex, Source, Store};
use r1_journal::{Ack, Journal, JournalOptions, NewRecord};
use r1_proto::{EventKind, EventRecord, SearchParams};
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// Words the generated text is made of: a vocabulary where some words are common
/// and most are rare, like real text.
const VOCABULARY: usize = 50_000;
const SESSIONS: usize = 1_000;

/// A small deterministic generator (xorshift), so every run indexes the same text.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A word, skewed to the start of the vocabulary (about Zipf-like).
    fn word(&mut self) -> String {
        let r = (self.next() % 1_000_000) as f64 / 1_000_000.0;
        let i = ((VOCABULARY as f64).powf(r)) as usize;
        format!("w{i}")
    }

    fn text(&mut self, words: usize) -> String {
        (0..words)
            .map(|_| self.word())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// The `i`th record of a session: a mix of messages, tool calls and results, and
/// lane output, about as a coding session has them.
fn record(rng: &mut Rng, seq: u64) -> EventRecord {
    let (kind, data) = match seq % 10 {
        0 | 1 => (
            EventKind::SessionMessage,
            json!({"role": "user", "text": rng.text(12), "message_id": "msg_1"}),
        ),
        2..=4 => (
            EventKind::SessionMessage,
            json!({"role": "assistant", "text": rng.text(40), "reply_to": "msg_1"}),
        ),
        5 => (
            EventKind::ToolStarted,
            json!({"lane": format!("tool_{seq}"), "call_id": "c", "tool": "run_command", "args": {"command": rng.text(6)}}),
        ),
        6 | 7 => (
            EventKind::LaneDelta,
            json!({"lane": format!("tool_{}", seq - seq % 10 + 5), "text": rng.text(20)}),
        ),
        8 => (
            EventKind::ToolCompleted,
            json!({"lane": format!("tool_{}", seq - 3), "call_id": "c", "tool": "run_command", "content": rng.text(30)}),
        ),
        _ => (
            EventKind::SessionDelta,
            json!({"text": rng.text(3), "reply_to": "msg_1"}),
        ),
    };
    EventRecord {
        v: 1,
        seq,
        at: format!("2025-06-01T12:{:02}:{:02}.000Z", seq / 60 % 60, seq % 60),
        kind,
        lane: "main".into(),
        data,
    }
}

fn index_records(dir: &std::path::Path, records: usize) -> Duration {
    let (mut store, _) = Store::open(dir).unwrap();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let per_session = records / SESSIONS;
    let started = Instant::now();
    let mut batch = Vec::with_capacity(10_000);
    for s in 0..SESSIONS {
        let id: Arc<str> = Arc::from(format!("ses_{s:016x}"));
        for seq in 1..=per_session as u64 {
            batch.push(Entry::of(id.clone(), &record(&mut rng, seq)));
            if batch.len() == 10_000 {
                store.apply(&batch).unwrap();
                batch.clear();
            }
        }
    }
    store.apply(&batch).unwrap();
    started.elapsed()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p) as usize]
}

fn queries(dir: &std::path::Path) {
    let conn = search::reader(dir).unwrap();
    let mut rng = Rng(42);
    let mut times = Vec::new();
    let mut hits = 0;
    for i in 0..300 {
        // Words of every frequency, a two-word AND, a phrase and a prefix.
        let q = match i % 4 {
            0 => rng.word(),
            1 => format!("{} {}", rng.word(), rng.word()),
            2 => format!("\"{} {}\"", rng.word(), rng.word()),
            _ => format!("{}*", rng.word()),
        };
        let started = Instant::now();
        let r = search::query(
            &conn,
            &SearchParams {
                q,
                ..Default::default()
            },
        )
        .unwrap();
        times.push(started.elapsed());
        hits += r.hits.len();
    }
    times.sort();
    println!(
        "query (300 mixed: word, AND, phrase, prefix; 20 hits a page): p50 {:.2} ms, p95 {:.2} ms, max {:.2} ms ({} hits)",
        percentile(&times, 0.5).as_secs_f64() * 1e3,
        percentile(&times, 0.95).as_secs_f64() * 1e3,
        percentile(&times, 1.0).as_secs_f64() * 1e3,
        hits
    );
}

/// Appends `n` records to a fresh journal, one at a time as a session's actor does,
/// each offered to `index` when there is one; returns records per second.
async fn append_rate(dir: &std::path::Path, n: usize, index: Option<&SearchIndex>) -> f64 {
    static RUN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let run = RUN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = dir.join(format!("journal-{run}.ndjson"));
    let journal = Journal::create(&path, JournalOptions::default())
        .await
        .unwrap();
    let mut rng = Rng(7);
    let started = Instant::now();
    for seq in 1..=n as u64 {
        let r = record(&mut rng, seq);
        let rec = journal
            .append(NewRecord::new(r.kind, "main", r.data), Ack::Appended)
            .await
            .unwrap();
        if let Some(index) = index {
            index.offer("ses_bench", &rec);
        }
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    journal.close().await.unwrap();
    rate
}

fn main() {
    let records: usize = std::env::var("R1_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("index");
    let took = index_records(&dir, records);
    let size: u64 = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    println!(
        "index {records} records ({SESSIONS} sessions): {:.1} s, {:.0} records/s, {} MB on disk",
        took.as_secs_f64(),
        records as f64 / took.as_secs_f64(),
        size / 1_000_000
    );
    queries(&dir);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let n = 100_000;
        let index = SearchIndex::new(tmp.path().join("live"), search::QUEUE_BYTES);
        let stop = CancellationToken::new();
        tokio::spawn(index.clone().run(Vec::<Source>::new, stop.clone()));
        // Alternate the runs so that both see the same machine.
        let (mut off, mut on) = (Vec::new(), Vec::new());
        for _ in 0..3 {
            off.push(append_rate(tmp.path(), n, None).await);
            on.push(append_rate(tmp.path(), n, Some(&index)).await);
        }
        stop.cancel();
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let (off, on) = (median(&mut off), median(&mut on));
        println!(
            "journal append ({n} records, one appender, median of 3): indexing off {off:.0}/s, on {on:.0}/s ({:+.1} %), {} offers dropped to the catch-up",
            (on / off - 1.0) * 100.0,
            index.dropped()
        );
    });
}
