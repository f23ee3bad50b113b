//! Session benchmarks (issue 3), against the real daemon: SSE fan-out latency to 100
//! subscribers, restart time with 1,000 sessions, RSS per idle session; and (session
//! core rebuilt) the cost of creating 1,000 sessions, and RSS, thread count and restart
//! time with 10,000 idle sessions. Run with
//! `cargo bench -p r1 --bench sessions`; journal throughput is in
//! `cargo bench -p r1-journal`. Figures go to docs/BENCHMARKS.md.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::zombie_processes
)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

fn serve(home: &Path) -> (Child, Value) {
    let _ = std::fs::remove_file(home.join("daemon.json"));
    // The fan-out below opens 100 subscribers of one session, above the default cap.
    std::fs::create_dir_all(home).unwrap();
    std::fs::set_permissions(home, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    std::fs::write(
        home.join("daemon.toml"),
        "[limits]\nmax_subscribers_per_session = 128\n",
    )
    .unwrap();
    // `R1_BIN` runs another build of the daemon (e.g. the previous commit's, for a
    // before/after table) under the same bench.
    let bin = std::env::var_os("R1_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_r1").into());
    let child = Command::new(bin)
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

/// One keep-alive HTTP/1.1 connection over the unix socket, with the token (the socket
/// asks for it too).
struct Conn(UnixStream, Vec<u8>, String);

impl Conn {
    fn new(sock: &str) -> Conn {
        // The token sits beside the socket in the bench's `R1_HOME`.
        let home = Path::new(sock).parent().unwrap();
        let token = std::fs::read_to_string(home.join("token")).unwrap();
        Conn(
            UnixStream::connect(sock).unwrap(),
            Vec::new(),
            token.trim().to_string(),
        )
    }

    fn post(&mut self, path: &str, body: &Value) -> Value {
        let b = body.to_string();
        let req = format!("POST {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{b}", self.2, b.len());
        self.0.write_all(req.as_bytes()).unwrap();
        self.read()
    }

    fn read(&mut self) -> Value {
        let mut chunk = [0u8; 65536];
        loop {
            if let Some(pos) = self.1.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.1[..pos]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map(|v| v.trim().parse().unwrap())
                    .unwrap_or(0);
                if self.1.len() >= pos + 4 + len {
                    let body: Vec<u8> = self.1.drain(..pos + 4 + len).skip(pos + 4).collect();
                    return serde_json::from_slice(&body).unwrap_or(Value::Null);
                }
            }
            let n = self.0.read(&mut chunk).unwrap();
            assert!(n > 0);
            self.1.extend_from_slice(&chunk[..n]);
        }
    }
}

fn rss_kb(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .map(|v| v.trim().trim_end_matches("kB").trim().parse().unwrap())
        .unwrap()
}

/// The daemon's thread count, to check it does not grow with the number of sessions.
fn threads(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .map(|v| v.trim().parse().unwrap())
        .unwrap()
}

/// Creates `n` sessions over `conns` keep-alive connections at once; returns the wall
/// time in seconds.
fn create_sessions(sock: &str, work: &Path, n: usize, conns: usize) -> f64 {
    let t = Instant::now();
    let workers: Vec<_> = (0..conns)
        .map(|k| {
            let (sock, work) = (sock.to_string(), work.to_path_buf());
            let share = n / conns + usize::from(k < n % conns);
            std::thread::spawn(move || {
                let mut c = Conn::new(&sock);
                for _ in 0..share {
                    let v = c.post("/v1/sessions", &json!({"workdir": work}));
                    assert!(v["id"].is_string(), "create failed: {v}");
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    t.elapsed().as_secs_f64()
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn stop(mut child: Child, sock: &str) {
    let mut c = Conn::new(sock);
    c.post("/v1/shutdown", &json!({}));
    child.wait().unwrap();
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("h");
    let work = tempfile::tempdir().unwrap();
    // `R1_BENCH_ONLY=10k` runs only the create / 10,000-session part; `create`, only
    // the create rows (a quick before/after of the create path).
    match std::env::var("R1_BENCH_ONLY").as_deref() {
        Ok("10k") => return ten_thousand(dir.path(), work.path()),
        Ok("create") => {
            let home = dir.path().join("h2");
            let (child, reg) = serve(&home);
            let sock = reg["sock"].as_str().unwrap().to_string();
            creates(&sock, dir.path(), work.path());
            return stop(child, &sock);
        }
        _ => {}
    }

    // SSE fan-out: 100 subscribers of one session; latency from the start of a send to
    // each subscriber's receipt of that user message.
    let (child, reg) = serve(&home);
    let sock = reg["sock"].as_str().unwrap().to_string();
    let port: u16 = reg["url"]
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
    let mut c = Conn::new(&sock);
    let id = c.post("/v1/sessions", &json!({"workdir": work.path()}))["id"]
        .as_str()
        .unwrap()
        .to_string();
    let messages = 50;
    let seen: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
    let subs: Vec<_> = (0..100)
        .map(|_| {
            let seen = seen.clone();
            let (id, token) = (id.clone(), token.clone());
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.write_all(format!("GET /v1/sessions/{id}/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n\r\n").as_bytes()).unwrap();
            std::thread::spawn(move || {
                let mut buf = String::new();
                let mut chunk = [0u8; 65536];
                let mut got = 0;
                while got < messages {
                    let n = s.read(&mut chunk).unwrap();
                    assert!(n > 0, "the daemon closed a subscriber's stream");
                    let now = Instant::now();
                    buf.push_str(&String::from_utf8_lossy(&chunk[..n]));
                    while let Some(pos) = buf.find("\n\n") {
                        let frame: String = buf.drain(..pos + 2).collect();
                        for line in frame.lines() {
                            if let Some(d) = line.strip_prefix("data: ") {
                                let v: Value = serde_json::from_str(d).unwrap_or(Value::Null);
                                if v["kind"] == "session.message" && v["data"]["role"] == "user" {
                                    seen.lock().unwrap().push((v["data"]["message_id"].as_str().unwrap().to_string(), now));
                                    got += 1;
                                }
                            }
                        }
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let mut sent: HashMap<String, Instant> = HashMap::new();
    for i in 0..messages {
        let t = Instant::now();
        let r = c.post(
            &format!("/v1/sessions/{id}/messages"),
            &json!({"text": format!("fan {i}")}),
        );
        sent.insert(r["message_id"].as_str().unwrap().to_string(), t);
        std::thread::sleep(Duration::from_millis(20));
    }
    for s in subs {
        s.join().unwrap();
    }
    let mut lat: Vec<f64> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|(m, t)| t.duration_since(sent[m]).as_secs_f64() * 1e3)
        .collect();
    let fan = (pct(&mut lat, 0.5), pct(&mut lat, 0.99), lat.len());
    stop(child, &sock);

    // Idle RSS, then 1,000 sessions, then restart with them.
    let (child, reg) = serve(&home);
    let pid = reg["pid"].as_u64().unwrap() as u32;
    std::thread::sleep(Duration::from_millis(300));
    let rss_base = rss_kb(pid);
    let mut c = Conn::new(&sock);
    for _ in 0..999 {
        c.post("/v1/sessions", &json!({"workdir": work.path()}));
    }
    std::thread::sleep(Duration::from_millis(500));
    let rss_1000_live = rss_kb(pid);
    stop(child, &sock);
    let mut restarts = Vec::new();
    let mut rss_after = 0;
    for _ in 0..5 {
        let t = Instant::now();
        let (child, reg) = serve(&home);
        restarts.push(t.elapsed().as_secs_f64() * 1e3);
        std::thread::sleep(Duration::from_millis(300));
        rss_after = rss_kb(reg["pid"].as_u64().unwrap() as u32);
        stop(child, &sock);
    }

    println!("| measure | median | p99 | target |");
    println!("|---|---|---|---|");
    println!("| SSE fan-out, 1 session × 100 subscribers, send → receipt, ms ({} samples) | {:.2} | {:.2} | — |", fan.2, fan.0, fan.1);
    println!("| restart with 1,000 sessions (spawn → registered, sessions reloaded), ms | {:.0} | | ≤ 500 |", pct(&mut restarts, 0.5));
    println!(
        "| RSS, idle daemon with 1 session, MB | {:.1} | | — |",
        rss_base as f64 / 1024.0
    );
    println!(
        "| RSS with 1,000 idle sessions (created live), MB | {:.1} | | ≤ 80 |",
        rss_1000_live as f64 / 1024.0
    );
    println!(
        "| RSS with 1,000 idle sessions (after restart), MB | {:.1} | | ≤ 80 |",
        rss_after as f64 / 1024.0
    );
    println!(
        "| RSS per idle session, KB | {:.0} | | ≤ 50 |",
        (rss_1000_live.saturating_sub(rss_base)) as f64 / 999.0
    );
    ten_thousand(dir.path(), work.path());
}

/// Creating sessions (1,000 on one connection, then 1,000 over 8 at once), then RSS,
/// threads, shutdown and restart with 10,000 idle sessions.
fn ten_thousand(dir: &Path, work: &Path) {
    // The create rows, then the same daemon filled up to 10,000 idle sessions.
    let fresh = dir.join("h2");
    let (child, reg) = serve(&fresh);
    let sock2 = reg["sock"].as_str().unwrap().to_string();
    creates(&sock2, dir, work);
    // Fill up to 10,000 idle sessions.
    create_sessions(&sock2, work, 8000, 8);
    std::thread::sleep(Duration::from_millis(500));
    let pid = reg["pid"].as_u64().unwrap() as u32;
    let (rss_10k_live, threads_10k_live) = (rss_kb(pid), threads(pid));
    let t = Instant::now();
    stop(child, &sock2);
    let shutdown_10k = t.elapsed().as_secs_f64() * 1e3;
    let mut restarts_10k = Vec::new();
    let (mut rss_10k_after, mut threads_10k_after) = (0, 0);
    for _ in 0..3 {
        let t = Instant::now();
        let (child, reg) = serve(&fresh);
        restarts_10k.push(t.elapsed().as_secs_f64() * 1e3);
        std::thread::sleep(Duration::from_millis(300));
        let pid = reg["pid"].as_u64().unwrap() as u32;
        (rss_10k_after, threads_10k_after) = (rss_kb(pid), threads(pid));
        stop(child, &sock2);
    }

    println!(
        "| RSS with 10,000 idle sessions (created live), MB | {:.1} | | ≤ 80 |",
        rss_10k_live as f64 / 1024.0
    );
    println!(
        "| daemon threads with 10,000 idle sessions (created live) | {threads_10k_live} | | independent of sessions |"
    );
    println!("| graceful shutdown with 10,000 sessions, ms | {shutdown_10k:.0} | | — |");
    println!(
        "| restart with 10,000 sessions (spawn → registered, all reloaded), ms | {:.0} | | ≤ 500 |",
        pct(&mut restarts_10k, 0.5)
    );
    println!(
        "| RSS with 10,000 idle sessions (after restart), MB | {:.1} | | ≤ 80 |",
        rss_10k_after as f64 / 1024.0
    );
    println!(
        "| daemon threads with 10,000 idle sessions (after restart) | {threads_10k_after} | | independent of sessions |"
    );
}

/// The create rows: 1,000 sessions one after another on one connection, then 1,000 over
/// 8 connections at once (the durable syncs of concurrent creates are shared), the
/// disk's floor, and the one-connection create with the state on tmpfs.
fn creates(sock: &str, dir: &Path, work: &Path) {
    let create_seq = create_sessions(sock, work, 1000, 1);
    let create_par = create_sessions(sock, work, 1000, 8);
    // The disk's floor: one small write + fdatasync, as a durable create needs at least
    // one, in the same directory as the state.
    let sync_ms = {
        let f = std::fs::File::create(dir.join("sync-probe")).unwrap();
        let t = Instant::now();
        for _ in 0..200 {
            (&f).write_all(&[b'x'; 200]).unwrap();
            f.sync_data().unwrap();
        }
        t.elapsed().as_secs_f64() * 1e3 / 200.0
    };
    // The same one-connection create with the state directory on tmpfs, where a sync
    // costs nothing: the daemon's own cost per create, apart from the disk's.
    let create_tmpfs = Path::new("/dev/shm").is_dir().then(|| {
        let shm = tempfile::tempdir_in("/dev/shm").unwrap();
        let home = shm.path().join("h");
        let (child, reg) = serve(&home);
        let sock = reg["sock"].as_str().unwrap().to_string();
        let t = create_sessions(&sock, work, 1000, 1);
        stop(child, &sock);
        t
    });
    println!("| create 1,000 sessions, one connection, s total | {create_seq:.2} | | ≤ 0.3 |");
    println!(
        "| create 1,000 sessions, 8 connections at once, s total | {create_par:.2} | | ≤ 0.3 |"
    );
    println!("| one write + fdatasync on this disk, ms | {sync_ms:.2} | | — |");
    if let Some(t) = create_tmpfs {
        println!("| create 1,000 sessions, one connection, state on tmpfs (no sync cost), s total | {t:.2} | | — |");
    }
}
