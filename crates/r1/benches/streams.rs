//! Stream benchmarks (session core rebuilt: follow stream and flow control), against
//! the real daemon: replay throughput of a large session over SSE (unix socket) and
//! WebSocket (TCP), and how many live deltas one SSE stream carries per second. Run
//! with `cargo bench -p r1 --bench streams`; `R1_BENCH_RECORDS` sets the session's size
//! (default 100,000). Figures go to docs/BENCHMARKS.md ("Streams").

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::zombie_processes
)]

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use r1_proto::{EventKind, EventRecord};
use serde_json::{json, Value};

fn serve(home: &Path) -> (Child, Value) {
    let _ = std::fs::remove_file(home.join("daemon.json"));
    let child = Command::new(env!("CARGO_BIN_EXE_r1"))
        .args(["serve", "--log-level", "warn"])
        .env("R1_HOME", home)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    loop {
        if let Ok(b) = std::fs::read(home.join("daemon.json")) {
            if let Ok(v) = serde_json::from_slice::<Value>(&b) {
                if v["pid"].as_u64() == Some(u64::from(child.id())) {
                    return (child, v);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn token(home: &Path) -> String {
    std::fs::read_to_string(home.join("token"))
        .unwrap()
        .trim()
        .to_string()
}

/// One request over the unix socket, answer body as JSON (`Connection: close`).
fn post(sock: &str, tok: &str, path: &str, body: &Value) -> Value {
    let b = body.to_string();
    let mut s = UnixStream::connect(sock).unwrap();
    write!(s, "POST {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {tok}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{b}", b.len()).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let text = String::from_utf8_lossy(&out);
    let body = text.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("");
    serde_json::from_str(body).unwrap_or(Value::Null)
}

fn stop(mut child: Child, sock: &str, tok: &str) {
    post(sock, tok, "/v1/shutdown", &json!({}));
    child.wait().unwrap();
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// Appends `n` delta records of ~200 bytes of text after the journal's last record;
/// returns the new last seq.
fn grow_journal(path: &Path, n: u64) -> u64 {
    let text = std::fs::read_to_string(path).unwrap();
    let last: u64 = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["seq"].as_u64())
        .max()
        .unwrap();
    let mut f =
        std::io::BufWriter::new(std::fs::OpenOptions::new().append(true).open(path).unwrap());
    let words = "the quick brown fox jumps over the lazy dog ".repeat(4);
    for seq in last + 1..=last + n {
        let r = EventRecord {
            v: 1,
            seq,
            at: "2026-01-01T00:00:00.000Z".into(),
            kind: EventKind::SessionDelta,
            lane: "main".into(),
            data: json!({"message_id": "msg_bench", "text": words}),
        };
        f.write_all(&r1_journal::testing::sealed_line(&r)).unwrap();
    }
    f.flush().unwrap();
    last + n
}

/// Replays the whole session over SSE on the unix socket; returns (bytes, seconds,
/// last seq seen).
fn sse_replay(sock: &str, tok: &str, id: &str, last: u64) -> (u64, f64, u64) {
    let mut s = UnixStream::connect(sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let t = Instant::now();
    write!(s, "GET /v1/sessions/{id}/events?since_seq=1 HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {tok}\r\n\r\n").unwrap();
    let mut r = BufReader::with_capacity(1 << 16, s);
    let mut bytes = 0u64;
    let mut seen = 0u64;
    let mut line = String::new();
    let want = format!("id: {last}");
    loop {
        line.clear();
        match r.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(n) => bytes += n as u64,
        }
        if let Some(v) = line.strip_prefix("id: ") {
            seen = v.trim().parse().unwrap_or(seen);
        }
        if line.trim_end() == want {
            break;
        }
    }
    (bytes, t.elapsed().as_secs_f64(), seen)
}

/// Replays the whole session over a WebSocket subscription; returns (bytes, seconds,
/// last seq seen).
fn ws_replay(port: u16, tok: &str, id: &str, last: u64) -> (u64, f64, u64) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use futures_util::{SinkExt, StreamExt};
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        use tokio_tungstenite::tungstenite::Message;
        let mut req = format!("ws://127.0.0.1:{port}/v1/ws")
            .into_client_request()
            .unwrap();
        req.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            format!("r1.proto.v1, r1.bearer, {tok}").parse().unwrap(),
        );
        let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
        let t = Instant::now();
        ws.send(Message::Text(
            json!({"jsonrpc":"2.0","id":1,"method":"subscribe","params":{"session_id": id, "since_seq": 1}})
                .to_string()
                .into(),
        ))
        .await
        .unwrap();
        let mut bytes = 0u64;
        let mut seen = 0u64;
        while let Ok(Some(Ok(m))) = tokio::time::timeout(Duration::from_secs(5), ws.next()).await
        {
            let Message::Text(t) = m else {
                if matches!(m, Message::Close(_)) {
                    break;
                }
                continue;
            };
            bytes += t.len() as u64;
            let v: Value = serde_json::from_str(&t).unwrap();
            if let Some(s) = v["params"]["record"]["seq"].as_u64() {
                seen = s;
                if s == last {
                    break;
                }
            }
        }
        (bytes, t.elapsed().as_secs_f64(), seen)
    })
}

fn main() {
    let n: u64 = std::env::var("R1_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("h");
    let work = tempfile::tempdir().unwrap();

    // A session of `n` records, written straight into its journal while the daemon is
    // stopped.
    let (child, reg) = serve(&home);
    let sock = reg["sock"].as_str().unwrap().to_string();
    let tok = token(&home);
    let id = post(
        &sock,
        &tok,
        "/v1/sessions",
        &json!({"workdir": work.path()}),
    )["id"]
        .as_str()
        .unwrap()
        .to_string();
    stop(child, &sock, &tok);
    let journal = home.join("sessions").join(&id).join("journal.ndjson");
    let last = grow_journal(&journal, n);

    let (child, reg) = serve(&home);
    let port: u16 = reg["url"]
        .as_str()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let mut sse = Vec::new();
    let mut ws = Vec::new();
    for _ in 0..3 {
        let (b, s, seen) = sse_replay(&sock, &tok, &id, last);
        println!(
            "sse replay: {b} bytes in {s:.3} s, last seq {seen} of {last} ({:.1} MB/s)",
            b as f64 / s / 1e6
        );
        sse.push(if seen == last {
            b as f64 / s / 1e6
        } else {
            0.0
        });
        let (b, s, seen) = ws_replay(port, &tok, &id, last);
        println!(
            "ws replay: {b} bytes in {s:.3} s, last seq {seen} of {last} ({:.1} MB/s)",
            b as f64 / s / 1e6
        );
        ws.push(if seen == last {
            b as f64 / s / 1e6
        } else {
            0.0
        });
    }

    // Live deltas on one SSE stream: four senders keep the echo engine busy for five
    // seconds while one reader counts `session.delta` frames.
    let live = post(
        &sock,
        &tok,
        "/v1/sessions",
        &json!({"workdir": work.path()}),
    )["id"]
        .as_str()
        .unwrap()
        .to_string();
    let deltas = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (sock, tok, live, deltas, done) = (
            sock.clone(),
            tok.clone(),
            live.clone(),
            deltas.clone(),
            done.clone(),
        );
        std::thread::spawn(move || {
            let mut s = UnixStream::connect(&sock).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            write!(s, "GET /v1/sessions/{live}/events HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {tok}\r\n\r\n").unwrap();
            let mut r = BufReader::new(s);
            let mut line = String::new();
            while !done.load(Ordering::Relaxed) {
                line.clear();
                match r.read_line(&mut line) {
                    Ok(0) => break,
                    Ok(_) => {
                        if line.starts_with("event: session.delta") {
                            deltas.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Err(_) => {}
                }
            }
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let window = Duration::from_secs(5);
    let start = Instant::now();
    let d0 = deltas.load(Ordering::Relaxed);
    let senders: Vec<_> = (0..4)
        .map(|w| {
            let (sock, tok, live) = (sock.clone(), tok.clone(), live.clone());
            std::thread::spawn(move || {
                let mut i = 0;
                while start.elapsed() < window {
                    post(
                        &sock,
                        &tok,
                        &format!("/v1/sessions/{live}/messages"),
                        &json!({"text": format!("bench {w} {i} {}", "words to echo back ".repeat(8))}),
                    );
                    i += 1;
                }
            })
        })
        .collect();
    for s in senders {
        s.join().unwrap();
    }
    let rate = (deltas.load(Ordering::Relaxed) - d0) as f64 / start.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    let _ = reader.join();
    stop(child, &sock, &tok);

    println!();
    println!("records in the session: {last}");
    println!(
        "sse replay (unix socket), median of 3: {:.1} MB/s",
        median(sse)
    );
    println!("ws replay (tcp), median of 3: {:.1} MB/s", median(ws));
    println!("one sse stream, live: {rate:.0} deltas/s");
}
