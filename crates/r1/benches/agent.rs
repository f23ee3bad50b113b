//! Agent benchmarks (issue 4): the daemon's overhead per turn against a zero-latency
//! fake provider, compared with calling that provider directly; delta throughput from
//! the provider to an SSE client. Run with `cargo bench -p r1 --bench agent`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::zombie_processes
)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use r1_engine::{ChatMessage, OpenAiConfig, OpenAiProvider, Provider, ProviderRequest, Role};
use r1_test_support::{openai_text_chunks, FakeKind, FakeProvider, Scripted};
use serde_json::{json, Value};

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn serve(home: &Path, base: &str) -> (Child, u16, String) {
    std::fs::create_dir_all(home).unwrap();
    std::fs::set_permissions(home, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    std::fs::write(
        home.join("daemon.toml"),
        format!("default_engine = \"m\"\n[engines.m]\nkind = \"openai\"\nbase_url = \"{base}\"\nmodel = \"bench\"\n"),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_r1"))
        .args(["serve", "--log-level", "warn"])
        .env("R1_HOME", home)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("r1 serve exited: {status}");
        }
        if let Ok(b) = std::fs::read(home.join("daemon.json")) {
            if let Ok(v) = serde_json::from_slice::<Value>(&b) {
                let port = v["url"]
                    .as_str()
                    .unwrap()
                    .rsplit(':')
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap();
                let token = std::fs::read_to_string(home.join("token"))
                    .unwrap()
                    .trim()
                    .to_string();
                return (child, port, token);
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn request(port: u16, token: &str, method: &str, path: &str, body: &Value) -> Value {
    let b = body.to_string();
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_nodelay(true).unwrap();
    write!(s, "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{b}", b.len()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    serde_json::from_str(out.split("\r\n\r\n").nth(1).unwrap_or("null")).unwrap_or(Value::Null)
}

/// Reads SSE data records from `s` until `done` holds for one; returns when it did.
fn read_until(s: &mut TcpStream, buf: &mut String, mut done: impl FnMut(&Value) -> bool) {
    let mut chunk = [0u8; 65536];
    loop {
        while let Some(pos) = buf.find("\n\n") {
            let frame: String = buf.drain(..pos + 2).collect();
            for line in frame.lines() {
                if let Some(d) = line.strip_prefix("data: ") {
                    if let Ok(v) = serde_json::from_str::<Value>(d) {
                        if done(&v) {
                            return;
                        }
                    }
                }
            }
        }
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0);
        buf.push_str(&String::from_utf8_lossy(&chunk[..n]));
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let turns = 200;
    let answer = || Scripted::Sse(openai_text_chunks("a short answer", 2));
    let fake = rt.block_on(FakeProvider::start(
        FakeKind::OpenAi,
        (0..turns).map(|_| answer()).collect(),
    ));
    let base = format!("{}/v1", fake.base_url().trim_end_matches("/v1"));

    // Direct: the provider alone.
    let provider = OpenAiProvider::new(OpenAiConfig {
        base_url: base.clone(),
        api_key: None,
        model: "bench".into(),
        retry: Default::default(),
    })
    .unwrap();
    let mut direct = Vec::new();
    for _ in 0..turns {
        let req = ProviderRequest {
            model: None,
            system: None,
            messages: vec![ChatMessage::text(Role::User, "hi")],
            tools: Vec::new(),
            protected: Default::default(),
            notes: Vec::new(),
            agent: Default::default(),
        };
        let t = Instant::now();
        rt.block_on(async {
            let mut s = provider.stream(req).await.unwrap();
            while s.next().await.is_some() {}
        });
        direct.push(t.elapsed().as_secs_f64() * 1e3);
    }

    let mut rows = Vec::new();
    for (label, dir) in [
        ("disk", tempfile::tempdir().unwrap()),
        ("tmpfs", tempfile::tempdir_in("/dev/shm").unwrap()),
    ] {
        fake.push((0..turns).map(|_| answer()));
        let home = dir.path().join("h");
        let (mut child, port, token) = serve(&home, &base);
        let work = tempfile::tempdir().unwrap();
        let id = request(
            port,
            &token,
            "POST",
            "/v1/sessions",
            &json!({"workdir": work.path()}),
        )["id"]
            .as_str()
            .unwrap()
            .to_string();
        let mut sse = TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(sse, "GET /v1/sessions/{id}/events?since_seq=2 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n\r\n").unwrap();
        let mut buf = String::new();
        let mut through = Vec::new();
        for i in 0..turns {
            let t = Instant::now();
            let r = request(
                port,
                &token,
                "POST",
                &format!("/v1/sessions/{id}/messages"),
                &json!({"text": format!("t{i}")}),
            );
            let mid = r["message_id"].as_str().unwrap().to_string();
            read_until(&mut sse, &mut buf, |v| {
                v["kind"] == "session.state" && v["data"]["state"] == "idle"
            });
            let _ = mid;
            through.push(t.elapsed().as_secs_f64() * 1e3);
        }
        request(port, &token, "POST", "/v1/shutdown", &json!({}));
        child.wait().unwrap();
        rows.push((
            label,
            pct(&mut through.clone(), 0.5),
            pct(&mut through, 0.99),
        ));
    }

    // Delta throughput: one answer of 50,000 deltas, provider → journal → SSE client.
    let n = 50_000;
    let mut chunks = Vec::with_capacity(n + 2);
    let big = openai_text_chunks(&"x".repeat(n), n);
    chunks.extend(big);
    fake.push([Scripted::Sse(chunks)]);
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("h");
    let (mut child, port, token) = serve(&home, &base);
    let work = tempfile::tempdir().unwrap();
    let id = request(
        port,
        &token,
        "POST",
        "/v1/sessions",
        &json!({"workdir": work.path()}),
    )["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut sse = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(sse, "GET /v1/sessions/{id}/events?since_seq=2 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n\r\n").unwrap();
    let mut buf = String::new();
    request(
        port,
        &token,
        "POST",
        &format!("/v1/sessions/{id}/messages"),
        &json!({"text": "go"}),
    );
    let mut first: Option<Instant> = None;
    let mut count = 0;
    read_until(&mut sse, &mut buf, |v| {
        if v["kind"] == "session.delta" {
            first.get_or_insert_with(Instant::now);
            // Each provider delta is one character here; the daemon may join deltas
            // that arrive together into one record, so count what was delivered.
            count += v["data"]["text"].as_str().map_or(0, |t| t.chars().count());
        }
        v["kind"] == "session.message" && v["data"]["role"] == "assistant"
    });
    let secs = first.unwrap().elapsed().as_secs_f64();
    request(port, &token, "POST", "/v1/shutdown", &json!({}));
    child.wait().unwrap();

    let d50 = pct(&mut direct.clone(), 0.5);
    println!("| measure | p50 | p99 | target |");
    println!("|---|---|---|---|");
    println!(
        "| provider called directly, ms per turn | {:.2} | {:.2} | — |",
        d50,
        pct(&mut direct, 0.99)
    );
    for (label, p50, p99) in rows {
        println!("| through the daemon (HTTP send → idle on SSE), R1_HOME on {label}, ms | {p50:.2} | {p99:.2} | — |");
        println!(
            "| added by the daemon, R1_HOME on {label}, ms | {:.2} | | ≤ 1 |",
            p50 - d50
        );
    }
    println!("| delta throughput provider → SSE client, provider deltas/s ({count} deltas) | {:.0} | | ≥ 50,000 |", count as f64 / secs);
}
