//! Foundation benchmarks (issue 2): whole-process connect-or-spawn and warm health,
//! handshake latency over the unix socket and TCP, idle RSS. Run with
//! `cargo bench -p r1 --bench foundation`; figures go to docs/BENCHMARKS.md.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn r1(home: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_r1"))
        .args(args)
        .env("R1_HOME", home)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// Sends `n` keep-alive GETs on one connection; returns per-request microseconds.
fn keepalive<S: Read + Write>(mut s: S, req: &str, n: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(n);
    let mut reader_buf = Vec::new();
    for _ in 0..n {
        let t = Instant::now();
        s.write_all(req.as_bytes()).unwrap();
        read_response(&mut s, &mut reader_buf);
        out.push(t.elapsed().as_secs_f64() * 1e6);
    }
    out
}

fn read_response<S: Read>(s: &mut S, buf: &mut Vec<u8>) {
    buf.clear();
    let mut chunk = [0u8; 4096];
    loop {
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "connection closed");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..pos]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map(|v| v.trim().parse().unwrap())
                .unwrap_or(0);
            if buf.len() >= pos + 4 + len {
                return;
            }
        }
    }
}

fn main() {
    let runs = 20;
    // Cold: a fresh R1_HOME each time, whole `r1 ctl health` process.
    let mut cold = Vec::new();
    for _ in 0..runs {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("h");
        let t = Instant::now();
        let out = r1(&home, &["ctl", "health"]);
        cold.push(t.elapsed().as_secs_f64() * 1e3);
        assert!(out.status.success());
        r1(&home, &["ctl", "shutdown"]);
    }
    // Warm: the daemon is up.
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("h");
    assert!(r1(&home, &["ctl", "health"]).status.success());
    let mut warm = Vec::new();
    for _ in 0..runs * 5 {
        let t = Instant::now();
        assert!(r1(&home, &["ctl", "health"]).status.success());
        warm.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let reg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(home.join("daemon.json")).unwrap()).unwrap();
    let pid = reg["pid"].as_u64().unwrap();
    let sock = reg["sock"].as_str().unwrap().to_string();
    let port: u16 = reg["url"]
        .as_str()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let token = std::fs::read_to_string(home.join("token")).unwrap();

    let n = 5000;
    let ureq = format!(
        "GET /v1/handshake HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\n\r\n",
        token.trim()
    );
    let mut unix = keepalive(UnixStream::connect(&sock).unwrap(), &ureq, n);
    let treq = format!(
        "GET /v1/handshake HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {}\r\n\r\n",
        token.trim()
    );
    let t = TcpStream::connect(("127.0.0.1", port)).unwrap();
    t.set_nodelay(true).unwrap();
    let mut tcp = keepalive(t, &treq, n);

    std::thread::sleep(Duration::from_millis(500));
    let status = std::fs::File::open(format!("/proc/{pid}/status")).unwrap();
    let rss_kb: u64 = BufReader::new(status)
        .lines()
        .map_while(Result::ok)
        .find_map(|l| {
            l.strip_prefix("VmRSS:")
                .map(|v| v.trim().trim_end_matches("kB").trim().parse().unwrap())
        })
        .unwrap();
    r1(&home, &["ctl", "shutdown"]);

    println!("| measure | median | p99 | target |");
    println!("|---|---|---|---|");
    println!(
        "| cold `r1 ctl health` (spawn + first answer), ms | {:.1} | {:.1} | ≤ 100 |",
        pct(&mut cold, 0.5),
        pct(&mut cold, 0.99)
    );
    println!(
        "| warm `r1 ctl health` (unix socket), ms | {:.2} | {:.2} | ≤ 5 |",
        pct(&mut warm, 0.5),
        pct(&mut warm, 0.99)
    );
    println!(
        "| `GET /v1/handshake` over the unix socket, µs | {:.0} | {:.0} | p50 ≤ 100 |",
        pct(&mut unix, 0.5),
        pct(&mut unix, 0.99)
    );
    println!(
        "| `GET /v1/handshake` over TCP with the token, µs | {:.0} | {:.0} | — |",
        pct(&mut tcp, 0.5),
        pct(&mut tcp, 0.99)
    );
    println!(
        "| idle daemon RSS, MB | {:.1} | | ≤ 15 |",
        rss_kb as f64 / 1024.0
    );
}
