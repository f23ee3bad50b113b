//! Issue 3: sessions, journal, streams, idempotency, restart and resume.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::*;

/// Starts a session over TCP; returns its id.
pub fn start(d: &Daemon, workdir: &std::path::Path) -> String {
    let r = d.post("/v1/sessions", &json!({"workdir": workdir}).to_string());
    assert_eq!(r.status, 201, "{}", r.body);
    r.json()["id"].as_str().unwrap().to_string()
}

/// Every record of a session, read through the journal route.
pub fn records(d: &Daemon, id: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut since = 1;
    loop {
        let r = d.get(&format!(
            "/v1/sessions/{id}/journal?since_seq={since}&limit=1000"
        ));
        assert_eq!(r.status, 200, "{}", r.body);
        let page = r.json();
        let recs = page["records"].as_array().unwrap().clone();
        if recs.is_empty() {
            return out;
        }
        since = page["next_seq"].as_u64().unwrap();
        out.extend(recs);
    }
}

fn assert_contiguous(recs: &[Value]) {
    for (i, r) in recs.iter().enumerate() {
        assert_eq!(
            r["seq"].as_u64().unwrap(),
            i as u64 + 1,
            "seq gap at index {i}"
        );
        assert_eq!(r["v"], 1);
    }
}

fn count(recs: &[Value], kind: &str, role: Option<&str>) -> usize {
    recs.iter()
        .filter(|r| r["kind"] == kind && role.is_none_or(|ro| r["data"]["role"] == ro))
        .count()
}

/// Waits until the session has `n` assistant replies.
fn wait_replies(d: &Daemon, id: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let recs = records(d, id);
        if count(&recs, "session.message", Some("assistant")) >= n {
            return recs;
        }
        assert!(Instant::now() < deadline, "replies did not arrive in {id}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn send_status(d: &Daemon, id: &str, body: &Value) -> Resp {
    d.post(&format!("/v1/sessions/{id}/messages"), &body.to_string())
}

/// Reads SSE records from a raw stream until `done` says so; returns them.
fn read_sse(
    stream: &mut std::net::TcpStream,
    mut done: impl FnMut(&[Value]) -> bool,
    within: Duration,
) -> Vec<Value> {
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let deadline = Instant::now() + within;
    let mut buf = String::new();
    let mut out = Vec::new();
    let mut chunk = [0u8; 65536];
    while !done(&out) {
        assert!(
            Instant::now() < deadline,
            "stream did not deliver in time; got {} records",
            out.len()
        );
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.push_str(&String::from_utf8_lossy(&chunk[..n])),
            Err(_) => continue,
        }
        while let Some(pos) = buf.find("\n\n") {
            let frame: String = buf.drain(..pos + 2).collect();
            for line in frame.lines() {
                // Chunked transfer framing lines are not SSE fields; only data lines count.
                if let Some(data) = line.strip_prefix("data: ") {
                    if let Ok(v) = serde_json::from_str::<Value>(data) {
                        out.push(v);
                    }
                }
            }
        }
    }
    out
}

fn open_sse(d: &Daemon, path: &str, extra: &str) -> std::net::TcpStream {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", d.port())).unwrap();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAuthorization: Bearer {}\r\n{extra}\r\n",
        d.port(),
        d.token()
    );
    s.write_all(req.as_bytes()).unwrap();
    s
}

#[test]
fn fifty_sessions_hundred_messages_and_twenty_followers() {
    let home = Home::new();
    // `r1-client` opens a connection per call, and a closed one counts against the
    // socket's connection cap until the daemon has reaped it: with 64 calls in flight on
    // a loaded machine the default cap (128) was reached once and a send was refused.
    // This test is about throughput and fan-out, not the cap (`hardening` tests that).
    write_config(&home, "[limits]\nmax_connections_unix = 512\n");
    let d = home.serve(&["--log-level", "warn"]);
    let work = tempfile::tempdir().unwrap();
    let ids: Vec<String> = (0..50).map(|_| start(&d, work.path())).collect();
    // 20 followers of the first session, attached before the burst.
    let followers: Vec<_> = (0..20)
        .map(|_| {
            let mut s = open_sse(
                &d,
                &format!("/v1/sessions/{}/events?since_seq=1", ids[0]),
                "",
            );
            std::thread::spawn(move || {
                read_sse(
                    &mut s,
                    |recs| {
                        count(recs, "session.message", Some("assistant")) >= 100
                            && recs.last().is_some_and(|r| {
                                r["kind"] == "session.state" && r["data"]["state"] == "idle"
                            })
                    },
                    Duration::from_secs(120),
                )
            })
        })
        .collect();
    // 5,000 sends, 64 in flight at a time over the unix socket.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut opts = r1_client::ConnectOptions::new(&home.path);
    opts.spawn = false;
    let client = std::sync::Arc::new(rt.block_on(r1_client::connect(&opts)).unwrap());
    let jobs: Vec<(String, usize)> = (0..100)
        .flat_map(|n| ids.iter().map(move |id| (id.clone(), n)))
        .collect();
    let results = rt.block_on(async {
        use futures_util::StreamExt;
        futures_util::stream::iter(jobs)
            .map(|(id, n)| {
                let c = client.clone();
                async move {
                    use r1_proto::Api;
                    c.session_send(r1_proto::SendMessageParams {
                        session_id: id,
                        text: format!("m{n}"),
                        client_message_id: None,
                    })
                    .await
                }
            })
            .buffer_unordered(64)
            .collect::<Vec<_>>()
            .await
    });
    assert!(
        results.iter().all(|r| r.is_ok()),
        "a send failed: {:?}",
        results.iter().find(|r| r.is_err())
    );
    for id in &ids {
        let recs = wait_replies(&d, id, 100);
        assert_contiguous(&recs);
        assert_eq!(count(&recs, "session.message", Some("user")), 100);
        assert_eq!(count(&recs, "session.message", Some("assistant")), 100);
        let texts: Vec<&str> = recs
            .iter()
            .filter(|r| r["data"]["role"] == "assistant")
            .map(|r| r["data"]["text"].as_str().unwrap())
            .collect();
        for n in 0..100 {
            assert!(
                texts.contains(&format!("echo: m{n}").as_str()),
                "reply to m{n} missing in {id}"
            );
        }
    }
    let journal = records(&d, &ids[0]);
    for f in followers {
        let got = f.join().unwrap();
        assert_contiguous(&got);
        assert_eq!(
            got,
            journal[..got.len()].to_vec(),
            "a follower saw something else than the journal"
        );
        assert!(got.len() + 1 >= journal.len());
    }
}

/// A daemon run under `kill -9` loses nothing it acknowledged.
#[test]
fn kill_nine_during_bursts_loses_no_acknowledged_message() {
    let home = Home::new();
    let work = tempfile::tempdir().unwrap();
    let mut ids = Vec::new();
    let mut acked: HashMap<String, Vec<(String, u64)>> = HashMap::new();
    for iteration in 0..20 {
        let mut d = home.serve(&["--log-level", "warn"]);
        if ids.is_empty() {
            ids = (0..3).map(|_| start(&d, work.path())).collect();
        }
        for id in &ids {
            let v = d.get(&format!("/v1/sessions/{id}")).json();
            if iteration > 0 {
                // Cut off mid-turn: paused and reattachable; caught idle: idle again.
                let back =
                    (v["state"] == "paused" && v["reattachable"] == true) || v["state"] == "idle";
                assert!(back, "{v}");
            }
            let r = d.post(&format!("/v1/sessions/{id}/resume"), "{}");
            assert_eq!(r.status, 200, "{}", r.body);
        }
        // A burst of sends from several threads; kill -9 while it runs.
        let port = d.port();
        let token = d.token();
        let senders: Vec<_> = ids
            .iter()
            .map(|id| {
                let (id, token) = (id.clone(), token.clone());
                std::thread::spawn(move || {
                    let mut ok = Vec::new();
                    for n in 0..200 {
                        let body = json!({"text": format!("i{iteration} n{n}")}).to_string();
                        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else { break };
                        let req = format!("POST /v1/sessions/{id}/messages HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
                        if s.write_all(req.as_bytes()).is_err() { break }
                        let mut resp = Vec::new();
                        let _ = s.read_to_end(&mut resp);
                        let text = String::from_utf8_lossy(&resp);
                        if text.starts_with("HTTP/1.1 202") {
                            let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
                            let v: Value = serde_json::from_str(body).unwrap();
                            ok.push((v["message_id"].as_str().unwrap().to_string(), v["seq"].as_u64().unwrap()));
                        } else {
                            break;
                        }
                    }
                    (id, ok)
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(30 + (iteration as u64 * 17) % 90));
        unsafe { libc::kill(d.pid() as i32, libc::SIGKILL) };
        let _ = d.wait_exit(Duration::from_secs(5));
        for s in senders {
            let (id, ok) = s.join().unwrap();
            acked.entry(id).or_default().extend(ok);
        }
    }
    // After the last crash: everything acknowledged is there, in a valid journal.
    let d = home.serve(&[]);
    let total: usize = acked.values().map(Vec::len).sum();
    assert!(total > 0, "no send was ever acknowledged");
    for id in &ids {
        let raw =
            std::fs::read_to_string(home.path.join("sessions").join(id).join("journal.ndjson"))
                .unwrap();
        assert!(raw.ends_with('\n'));
        for line in raw.lines() {
            serde_json::from_str::<Value>(line)
                .unwrap_or_else(|e| panic!("invalid journal line ({e}): {line}"));
        }
        let recs = records(&d, id);
        assert_contiguous(&recs);
        let by_seq: HashMap<u64, &Value> = recs
            .iter()
            .map(|r| (r["seq"].as_u64().unwrap(), r))
            .collect();
        for (mid, seq) in &acked[id] {
            let r = by_seq
                .get(seq)
                .unwrap_or_else(|| panic!("acknowledged seq {seq} missing in {id}"));
            assert_eq!(
                r["data"]["message_id"],
                mid.as_str(),
                "seq {seq} holds other content"
            );
        }
        // Turns running at a crash were closed as errors, never re-run; a session
        // caught idle comes back idle.
        let v = d.get(&format!("/v1/sessions/{id}")).json();
        if v["state"] == "paused" {
            assert!(recs.iter().any(|r| r["kind"] == "daemon.reloaded"));
            assert_eq!(v["reattachable"], true);
        } else {
            assert_eq!(v["state"], "idle", "{v}");
        }
        assert_eq!(
            d.post(&format!("/v1/sessions/{id}/resume"), "{}").status,
            200
        );
        let r = send_status(&d, id, &json!({"text": "after"}));
        assert_eq!(r.status, 202);
    }
    for id in &ids {
        let recs = wait_replies_text(&d, id, "echo: after");
        assert!(!recs.is_empty());
    }
}

fn wait_replies_text(d: &Daemon, id: &str, text: &str) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let recs = records(d, id);
        if recs
            .iter()
            .any(|r| r["kind"] == "session.message" && r["data"]["text"] == text)
        {
            return recs;
        }
        assert!(Instant::now() < deadline, "no {text:?} in {id}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn graceful_restart_with_a_follower_has_no_gap_and_no_duplicate() {
    let home = Home::new();
    let work = tempfile::tempdir().unwrap();
    let mut d = home.serve(&[]);
    let id = start(&d, work.path());
    assert_eq!(send_status(&d, &id, &json!({"text": "one"})).status, 202);
    wait_replies(&d, &id, 1);
    let mut s = open_sse(&d, &format!("/v1/sessions/{id}/events"), "");
    let first = read_sse(
        &mut s,
        |r| {
            r.iter().any(|x| x["data"]["role"] == "assistant")
                && r.last().is_some_and(|x| x["data"]["state"] == "idle")
        },
        Duration::from_secs(10),
    );
    // An idle session beside it, which must come back idle with nothing journaled.
    let idle = start(&d, work.path());
    let idle_before = records(&d, &idle).len();
    // A slow turn is running when the shutdown comes: it must be paused, durably.
    assert_eq!(
        send_status(
            &d,
            &id,
            &json!({"text": "/slow a b c d e f g h i j k l m n o p"})
        )
        .status,
        202
    );
    let busy = read_sse(
        &mut s,
        |r| r.iter().any(|x| x["kind"] == "session.delta"),
        Duration::from_secs(10),
    );
    let first: Vec<Value> = first.into_iter().chain(busy).collect();
    let last_id = first.last().unwrap()["seq"].as_u64().unwrap();
    // Graceful shutdown: the stream ends.
    assert_eq!(d.post("/v1/shutdown", "{}").status, 200);
    assert_eq!(d.wait_exit(Duration::from_secs(10)).unwrap().0, 0);
    let rest = read_sse(&mut s, |_| false, Duration::from_secs(10));
    assert!(rest.is_empty() || rest.iter().all(|r| r["seq"].as_u64().unwrap() > last_id));
    let seen: Vec<Value> = first.into_iter().chain(rest).collect();
    let last_id = seen.last().unwrap()["seq"].as_u64().unwrap();
    // Restart and reconnect with Last-Event-ID.
    let d = home.serve(&[]);
    let mut s = open_sse(
        &d,
        &format!("/v1/sessions/{id}/events"),
        &format!("Last-Event-ID: {last_id}\r\n"),
    );
    let after = read_sse(
        &mut s,
        |r| r.iter().any(|x| x["kind"] == "daemon.reloaded"),
        Duration::from_secs(10),
    );
    let all: Vec<Value> = seen.into_iter().chain(after.clone()).collect();
    assert_contiguous(&all);
    let paused = all
        .iter()
        .find(|r| r["kind"] == "session.paused")
        .expect("no session.paused journaled at shutdown");
    assert_eq!(paused["data"]["reason"], "daemon shutdown");
    assert!(
        !all.iter().any(|r| r["kind"] == "session.error"),
        "a turn paused at shutdown was closed as an error"
    );
    assert_eq!(all.last().unwrap()["kind"], "daemon.reloaded");
    let v = d.get(&format!("/v1/sessions/{id}")).json();
    assert_eq!(v["state"], "paused");
    assert_eq!(v["reattachable"], true);
    // The idle session is idle again, and nothing was written to it.
    assert_eq!(
        d.get(&format!("/v1/sessions/{idle}")).json()["state"],
        "idle"
    );
    assert_eq!(records(&d, &idle).len(), idle_before);
    // Resume and it answers again; the same follower sees it live.
    assert_eq!(
        d.post(&format!("/v1/sessions/{id}/resume"), "{}").status,
        200
    );
    assert_eq!(send_status(&d, &id, &json!({"text": "two"})).status, 202);
    let live = read_sse(
        &mut s,
        |r| r.iter().any(|x| x["data"]["text"] == "echo: two"),
        Duration::from_secs(10),
    );
    let all: Vec<Value> = all.into_iter().chain(live).collect();
    assert_contiguous(&all);
    // The daemon bus said so too.
    // An event stream never ends: read what arrives within the short silence window.
    let bus = raw_tcp(
        d.port(),
        &format!(
            "GET /v1/events HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAuthorization: Bearer {}\r\n\r\n",
            d.port(),
            d.token()
        ),
    );
    assert!(bus.body.contains("event: daemon.reloaded"), "{}", bus.body);
}

#[test]
fn torn_tail_is_repaired_and_corrupt_middle_is_quarantined() {
    let home = Home::new();
    let work = tempfile::tempdir().unwrap();
    let mut d = home.serve(&[]);
    let torn = start(&d, work.path());
    let bad = start(&d, work.path());
    let good = start(&d, work.path());
    for id in [&torn, &bad, &good] {
        for n in 0..3 {
            assert_eq!(
                send_status(&d, id, &json!({"text": format!("t{n}")})).status,
                202
            );
        }
        wait_replies(&d, id, 3);
    }
    let torn_before = records(&d, &torn).len();
    assert_eq!(d.post("/v1/shutdown", "{}").status, 200);
    d.wait_exit(Duration::from_secs(10)).unwrap();
    let jpath = |id: &str| home.path.join("sessions").join(id).join("journal.ndjson");
    // A torn tail: half a record with no newline.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(jpath(&torn))
        .unwrap();
    f.write_all(br#"{"v":1,"seq":999,"at":"2026-11-22T10:00:00.000Z","kind":"session.de"#)
        .unwrap();
    drop(f);
    let torn_bytes = std::fs::read(jpath(&torn)).unwrap();
    // Corruption in the middle: one line replaced by garbage.
    let text = std::fs::read_to_string(jpath(&bad)).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines[3] = "#### not json ####".into();
    std::fs::write(jpath(&bad), lines.join("\n") + "\n").unwrap();

    let d = home.serve(&[]);
    // Torn: repaired, the broken copy kept byte for byte, the session usable.
    let broken = home
        .path
        .join("sessions")
        .join(&torn)
        .join("journal.ndjson.broken");
    assert_eq!(std::fs::read(&broken).unwrap(), torn_bytes);
    let recs = records(&d, &torn);
    assert_contiguous(&recs);
    assert!(recs.len() >= torn_before, "records lost");
    assert!(recs.iter().all(|r| r["seq"].as_u64().unwrap() < 999));
    assert_eq!(
        d.post(&format!("/v1/sessions/{torn}/resume"), "{}").status,
        200
    );
    assert_eq!(send_status(&d, &torn, &json!({"text": "x"})).status, 202);
    // Corrupt: quarantined with a clear error; nothing else affected.
    let v = d.get(&format!("/v1/sessions/{bad}")).json();
    assert_eq!(v["state"], "error");
    assert!(v["error"].as_str().unwrap().contains("quarantined"), "{v}");
    // Its records before the damage stay readable (seqs 1..=3; line 4 is garbage).
    let r = d.get(&format!("/v1/sessions/{bad}/journal"));
    assert_eq!(r.status, 200, "{}", r.body);
    let seqs: Vec<u64> = r.json()["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [1, 2, 3]);
    let r = send_status(&d, &bad, &json!({"text": "x"}));
    assert_eq!(r.status, 503);
    // It was idle at the shutdown (or just finishing its turn): idle, or paused.
    let state = d.get(&format!("/v1/sessions/{good}")).json()["state"].clone();
    assert!(state == "idle" || state == "paused", "{state}");
    assert_eq!(
        d.post(&format!("/v1/sessions/{good}/resume"), "{}").status,
        200
    );
    assert_eq!(send_status(&d, &good, &json!({"text": "fine"})).status, 202);
    wait_replies_text(&d, &good, "echo: fine");
}

#[test]
fn a_full_disk_is_a_clear_error_and_recovers_when_space_returns() {
    // A real full disk: R1_HOME on a small tmpfs.
    let tmpfs = TmpfsHome::new();
    let (home, mnt) = (&tmpfs.home, &tmpfs.mnt);
    let work = tempfile::tempdir().unwrap();
    let d = home.serve(&["--log-level", "warn"]);
    let id = start(&d, work.path());
    assert_eq!(send_status(&d, &id, &json!({"text": "before"})).status, 202);
    wait_replies(&d, &id, 1);
    // Fill the disk.
    let filler = mnt.join("filler");
    {
        let mut f = std::fs::File::create(&filler).unwrap();
        let block = vec![0u8; 4096];
        while f.write_all(&block).is_ok() {}
    }
    let before = records(&d, &id).len();
    let r = send_status(&d, &id, &json!({"text": "x".repeat(8000)}));
    assert_eq!(r.status, 507, "{}", r.body);
    assert_eq!(r.json()["error_code"], "crash_recovery");
    assert!(r.json()["error_message"]
        .as_str()
        .unwrap()
        .contains("disk is full"));
    // The journal still ends on a valid record and holds nothing unacknowledged.
    let raw = std::fs::read_to_string(home.path.join("sessions").join(&id).join("journal.ndjson"))
        .unwrap();
    assert!(raw.ends_with('\n'));
    for line in raw.lines() {
        serde_json::from_str::<Value>(line).unwrap();
    }
    assert_eq!(records(&d, &id).len(), before);
    // Space returns: the next send succeeds with the next seq.
    std::fs::remove_file(&filler).unwrap();
    let r = send_status(&d, &id, &json!({"text": "after"}));
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.json()["seq"].as_u64().unwrap(), before as u64 + 1);
    wait_replies_text(&d, &id, "echo: after");
    assert_contiguous(&records(&d, &id));
}

#[test]
fn idempotent_sends_race_and_survive_restart() {
    let home = Home::new();
    let work = tempfile::tempdir().unwrap();
    let mut d = home.serve(&[]);
    let id = start(&d, work.path());
    let port = d.port();
    let token = d.token();
    let racers: Vec<_> = (0..8)
        .map(|i| {
            let (id, token) = (id.clone(), token.clone());
            std::thread::spawn(move || {
                let body = if i % 2 == 0 {
                    json!({"text": "once", "client_message_id": "key-1"}).to_string()
                } else {
                    json!({"text": "once"}).to_string()
                };
                let hdr = if i % 2 == 0 { String::new() } else { "Idempotency-Key: key-1\r\n".to_string() };
                raw_tcp(port, &format!("POST /v1/sessions/{id}/messages HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\n{hdr}Content-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()))
            })
        })
        .collect();
    let resps: Vec<Resp> = racers.into_iter().map(|t| t.join().unwrap()).collect();
    let firsts = resps.iter().filter(|r| r.status == 202).count();
    assert_eq!(
        firsts,
        1,
        "exactly one send is new: {:?}",
        resps.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    let mids: std::collections::HashSet<String> = resps
        .iter()
        .map(|r| r.json()["message_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(mids.len(), 1);
    assert!(resps
        .iter()
        .filter(|r| r.status == 200)
        .all(|r| r.json()["duplicate"] == true));
    let original = resps.iter().find(|r| r.status == 202).unwrap().json();
    wait_replies(&d, &id, 1);
    assert_eq!(count(&records(&d, &id), "session.message", Some("user")), 1);
    // After a restart (graceful here; kill -9 is covered above) it is still a duplicate.
    d.post("/v1/shutdown", "{}");
    d.wait_exit(Duration::from_secs(10)).unwrap();
    let d = home.serve(&[]);
    assert_eq!(
        d.post(&format!("/v1/sessions/{id}/resume"), "{}").status,
        200
    );
    let r = send_status(
        &d,
        &id,
        &json!({"text": "once", "client_message_id": "key-1"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["message_id"], original["message_id"]);
    assert_eq!(r.json()["seq"], original["seq"]);
    assert_eq!(r.json()["duplicate"], true);
    assert_eq!(count(&records(&d, &id), "session.message", Some("user")), 1);
}

#[test]
fn a_stalled_subscriber_is_dropped_and_others_keep_pace() {
    let home = Home::new();
    let work = tempfile::tempdir().unwrap();
    // A short grace, so the stalled reader is dropped while the burst still runs, however
    // fast or slow the machine is (the default is 5 s).
    write_config(&home, "[limits]\nslow_subscriber_grace_ms = 200\n");
    let d = home.serve(&["--log-level", "warn"]);
    let id = start(&d, work.path());
    // The stalled reader: a small receive buffer, and it never reads.
    let stalled = {
        let sock = socket2_small_buffer(d.port());
        let mut s = sock;
        let req = format!("GET /v1/sessions/{id}/events HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAuthorization: Bearer {}\r\n\r\n", d.port(), d.token());
        s.write_all(req.as_bytes()).unwrap();
        s
    };
    let mut reader = open_sse(&d, &format!("/v1/sessions/{id}/events"), "");
    let rss_before = rss_kb(d.pid());
    let big = "y".repeat(16 * 1024);
    let n = 400;
    let follower = std::thread::spawn(move || {
        read_sse(
            &mut reader,
            |r| count(r, "session.message", Some("assistant")) >= n,
            Duration::from_secs(120),
        )
    });
    let mut rss_mid = 0;
    for i in 0..n {
        let r = send_status(&d, &id, &json!({"text": format!("{i} {big}")}));
        assert_eq!(r.status, 202);
        if i == n / 2 {
            wait_replies(&d, &id, i + 1);
            rss_mid = rss_kb(d.pid());
        }
    }
    let got = follower.join().unwrap();
    assert_contiguous(&got);
    assert_eq!(count(&got, "session.message", Some("assistant")), n);
    let rss_after = rss_kb(d.pid());
    // ~13 MB of records went out in each half. Memory must not follow the data: the
    // second half may not grow the daemon by more than a few MB, and the whole run
    // stays bounded by the queues (256 records of 16 KB each, per queue).
    assert!(
        rss_after < rss_mid + 4 * 1024 && rss_after < rss_before + 64 * 1024,
        "daemon RSS grew from {rss_before} kB to {rss_mid} kB at half, {rss_after} kB at the end"
    );
    // The stalled reader was cut off with a reason.
    let mut stalled = stalled;
    stalled
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut all = Vec::new();
    // Dropped means closed: the read ends (EOF) instead of timing out on a live stream.
    // The final word is there when the socket had room for it; on a loaded machine the
    // burst outlasts the write timeout, which closes the stalled socket without one.
    let closed = stalled.read_to_end(&mut all).is_ok();
    let text = String::from_utf8_lossy(&all);
    assert!(
        closed || text.contains("stream.dropped"),
        "the stalled reader was neither closed nor told it was dropped"
    );
}

/// A TCP connection with a small receive buffer (set before connecting).
fn socket2_small_buffer(port: u16) -> std::net::TcpStream {
    use std::os::fd::FromRawFd;
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(fd >= 0);
        let size: libc::c_int = 4096;
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            &size as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as u32,
        );
        let addr = libc::sockaddr_in {
            sin_family: libc::AF_INET as u16,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from_ne_bytes([127, 0, 0, 1]),
            },
            sin_zero: [0; 8],
        };
        let rc = libc::connect(
            fd,
            &addr as *const _ as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as u32,
        );
        assert_eq!(rc, 0);
        std::net::TcpStream::from_raw_fd(fd)
    }
}

#[test]
fn bad_inputs_get_envelopes_and_change_nothing() {
    let home = Home::new();
    let work = tempfile::tempdir().unwrap();
    let d = home.serve(&[]);
    let id = start(&d, work.path());
    wait_until(Duration::from_secs(5), "created", || {
        records(&d, &id).len() == 1
    });
    let file = work.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let expect = |r: Resp, status: u16, code: &str| {
        assert_eq!(r.status, status, "{}", r.body);
        let env = r.json();
        assert_eq!(env["ok"], false);
        assert_eq!(env["error_code"], code, "{env}");
        assert!(env["links"]["self"].as_str().unwrap().starts_with("/v1/"));
    };
    for body in [
        json!({"workdir": "relative/path"}),
        json!({"workdir": "/does/not/exist"}),
        json!({"workdir": file}),
        json!({"workdir": home.path.join("sessions")}),
        json!({"workdir": work.path(), "engine": "no-such-engine"}),
        json!({"workdir": work.path(), "surprise": 1}),
        json!({}),
    ] {
        expect(d.post("/v1/sessions", &body.to_string()), 400, "validation");
    }
    expect(d.post("/v1/sessions", "{\"workdir\": "), 400, "validation");
    expect(
        d.post(
            "/v1/sessions",
            &format!(
                "{{\"workdir\": \"{}\", \"title\": \"{}\"}}",
                work.path().display(),
                "t".repeat(2 << 20)
            ),
        ),
        413,
        "validation",
    );
    expect(d.get("/v1/sessions/ses_nope"), 404, "not_found");
    expect(d.get("/v1/sessions/ses_nope/journal"), 404, "not_found");
    expect(d.get("/v1/sessions/ses_nope/events"), 404, "not_found");
    expect(
        send_status(&d, "ses_nope", &json!({"text": "x"})),
        404,
        "not_found",
    );
    expect(
        send_status(&d, &id, &json!({"text": ""})),
        400,
        "validation",
    );
    expect(
        send_status(&d, &id, &json!({"txt": "x"})),
        400,
        "validation",
    );
    expect(
        d.post(&format!("/v1/sessions/{id}/messages"), "[1,2"),
        400,
        "validation",
    );
    expect(
        d.get(&format!("/v1/sessions/{id}/journal?since_seq=abc")),
        400,
        "validation",
    );
    // Nothing changed.
    assert_eq!(
        d.get("/v1/sessions").json()["sessions"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(records(&d, &id).len(), 1);
    // Ended sessions refuse messages with 409; ending again is fine.
    assert_eq!(raw_delete(&d, &id).status, 200);
    assert_eq!(raw_delete(&d, &id).status, 200);
    expect(
        send_status(&d, &id, &json!({"text": "late"})),
        409,
        "conflict",
    );
    expect(
        d.post(&format!("/v1/sessions/{id}/resume"), "{}"),
        409,
        "conflict",
    );
    let recs = records(&d, &id);
    assert_eq!(recs.last().unwrap()["kind"], "session.ended");
    assert_eq!(count(&recs, "session.ended", None), 1);
}

pub fn raw_delete(d: &Daemon, id: &str) -> Resp {
    raw_tcp(
        d.port(),
        &format!(
            "DELETE /v1/sessions/{id} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            d.port(),
            d.token()
        ),
    )
}

#[test]
fn cancel_pause_resume_and_replay_from_since_seq() {
    let home = Home::new();
    let work = tempfile::tempdir().unwrap();
    let d = home.serve(&[]);
    let id = start(&d, work.path());
    // A slow echo turn, cancelled mid-stream.
    assert_eq!(
        send_status(
            &d,
            &id,
            &json!({"text": "/slow a long answer that streams slowly"})
        )
        .status,
        202
    );
    wait_until(Duration::from_secs(5), "first delta", || {
        records(&d, &id)
            .iter()
            .any(|r| r["kind"] == "session.delta")
    });
    let t = Instant::now();
    let r = d.post(&format!("/v1/sessions/{id}/cancel"), "{}");
    assert_eq!(r.status, 200);
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "cancel took {:?}",
        t.elapsed()
    );
    assert_eq!(r.json()["state"], "idle");
    let recs = records(&d, &id);
    assert!(recs.iter().any(|r| r["kind"] == "session.cancelled"));
    assert_eq!(count(&recs, "session.message", Some("assistant")), 0);
    // Cancel with nothing running is fine.
    assert_eq!(
        d.post(&format!("/v1/sessions/{id}/cancel"), "{}").status,
        200
    );
    // Pause refuses sends; resume accepts them again.
    assert_eq!(
        d.post(&format!("/v1/sessions/{id}/pause"), "{}").json()["state"],
        "paused"
    );
    assert_eq!(send_status(&d, &id, &json!({"text": "x"})).status, 409);
    assert_eq!(
        d.post(&format!("/v1/sessions/{id}/resume"), "{}").json()["state"],
        "idle"
    );
    assert_eq!(send_status(&d, &id, &json!({"text": "back"})).status, 202);
    let recs = wait_replies_text(&d, &id, "echo: back");
    // SSE replay from since_seq=N starts exactly at N.
    let n = 3;
    let mut s = open_sse(&d, &format!("/v1/sessions/{id}/events?since_seq={n}"), "");
    let got = read_sse(
        &mut s,
        |r| r.len() >= recs.len() - (n as usize - 1),
        Duration::from_secs(10),
    );
    assert_eq!(got[0]["seq"], n);
    // (The turn's closing state record may land between the two reads.)
    let want = recs[n as usize - 1..].to_vec();
    assert_eq!(got[..want.len()], want[..]);
    // Asking past the head gets an explicit resync, not silence. The head is read once
    // the turn's closing state record is in (it may land after the reply was seen).
    wait_until(Duration::from_secs(10), "idle after the reply", || {
        d.get(&format!("/v1/sessions/{id}")).json()["state"] == "idle"
    });
    let head = d.get(&format!("/v1/sessions/{id}")).json()["last_seq"]
        .as_u64()
        .unwrap();
    let mut s = open_sse(
        &d,
        &format!("/v1/sessions/{id}/events?since_seq={}", head + 50),
        "",
    );
    let got = read_sse(&mut s, |r| !r.is_empty(), Duration::from_secs(10));
    assert_eq!(got[0]["kind"], "session.resync");
    assert_eq!(got[0]["data"]["next_seq"], head + 1);
}

#[test]
fn websocket_drives_sessions() {
    let home = Home::new();
    let work = tempfile::tempdir().unwrap();
    let d = home.serve(&[]);
    let token = d.token();
    let port = d.port();
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
            "sec-websocket-protocol",
            format!("r1.proto.v1, r1.bearer, {token}").parse().unwrap(),
        );
        let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
        let mut next_id = 0;
        let mut call = |method: &str, params: Value| {
            next_id += 1;
            (
                next_id,
                Message::text(
                    json!({"jsonrpc": "2.0", "id": next_id, "method": method, "params": params})
                        .to_string(),
                ),
            )
        };
        let (sid, m) = call("session.start", json!({"workdir": work.path()}));
        ws.send(m).await.unwrap();
        let mut session_id = String::new();
        let reply: Option<String>;
        let mut seqs = Vec::new();
        loop {
            let m = tokio::time::timeout(Duration::from_secs(10), ws.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            let v: Value = serde_json::from_str(m.to_text().unwrap()).unwrap();
            if v["id"] == sid {
                session_id = v["result"]["id"].as_str().unwrap().to_string();
                let (_, m) = call(
                    "subscribe",
                    json!({"session_id": session_id, "since_seq": 1}),
                );
                ws.send(m).await.unwrap();
                let (_, m) = call(
                    "session.send",
                    json!({"session_id": session_id, "text": "over ws", "client_message_id": "w1"}),
                );
                ws.send(m).await.unwrap();
            } else if v["method"] == "$/event" && v["params"]["session_id"] == session_id.as_str() {
                let rec = &v["params"]["record"];
                seqs.push(rec["seq"].as_u64().unwrap());
                if rec["kind"] == "session.message" && rec["data"]["role"] == "assistant" {
                    reply = rec["data"]["text"].as_str().map(str::to_string);
                    break;
                }
            } else if v.get("error").is_some() {
                panic!("rpc error: {v}");
            }
        }
        assert_eq!(reply.as_deref(), Some("echo: over ws"));
        assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
        // Errors come back as JSON-RPC errors carrying the wire code.
        let (eid, m) = call("session.get", json!({"session_id": "ses_nope"}));
        ws.send(m).await.unwrap();
        loop {
            let m = tokio::time::timeout(Duration::from_secs(10), ws.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            let v: Value = serde_json::from_str(m.to_text().unwrap()).unwrap();
            if v["id"] == eid {
                assert_eq!(v["error"]["data"]["error_code"], "not_found");
                break;
            }
        }
    });
}

#[test]
fn cli_sessions_and_chat() {
    let home = Home::new();
    let work = tempfile::tempdir().unwrap();
    let w = work.path().to_str().unwrap();
    let v = home.run_json(&["ctl", "sessions", "start", "--workdir", w]);
    let id = v["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("ses_"));
    let r = home.run_json(&["ctl", "sessions", "send", &id, "hi there", "--wait"]);
    assert_eq!(r["reply"], "echo: hi there");
    let r1 = home.run_json(&[
        "ctl",
        "sessions",
        "send",
        &id,
        "k",
        "--client-message-id",
        "c1",
    ]);
    let r2 = home.run_json(&[
        "ctl",
        "sessions",
        "send",
        &id,
        "k",
        "--client-message-id",
        "c1",
    ]);
    assert_eq!(r1["message_id"], r2["message_id"]);
    assert_eq!(r2["duplicate"], true);
    let list = home.run_json(&["ctl", "sessions", "list"]);
    assert_eq!(list["sessions"][0]["id"], id.as_str());
    let out = home.run(&[
        "ctl",
        "sessions",
        "follow",
        &id,
        "--until",
        "session.created",
        "--json",
    ]);
    assert!(out.status.success());
    let first: Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().next().unwrap()).unwrap();
    assert_eq!(first["kind"], "session.created");
    assert_eq!(
        home.run_json(&["ctl", "sessions", "pause", &id])["state"],
        "paused"
    );
    assert_eq!(
        home.run_json(&["ctl", "sessions", "resume", &id])["state"],
        "idle"
    );
    assert_eq!(
        home.run_json(&["ctl", "sessions", "kill", &id])["state"],
        "ended"
    );
    let out = home.run(&["ctl", "sessions", "send", &id, "late"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("conflict"));
    let out = home.run(&["ctl", "sessions", "get", "ses_missing"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not_found"));

    // r1 chat: two lines in, two streamed answers out, then it leaves on end of input.
    let mut child = home
        .cmd(&["chat", "--workdir", w])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"hello\nsecond line\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("echo: hello\n") && text.contains("echo: second line\n"),
        "{text}"
    );
    // `follow` keeps going across a daemon restart.
    let v = home.run_json(&["ctl", "sessions", "start", "--workdir", w]);
    let id = v["id"].as_str().unwrap().to_string();
    let follower = home
        .cmd(&[
            "ctl",
            "sessions",
            "follow",
            &id,
            "--json",
            "--until",
            "session.resumed",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // Paused, so that it is still paused after the restart and the resume is a record
    // (an idle session would come back idle, and its resume would change nothing).
    home.run_json(&["ctl", "sessions", "pause", &id]);
    home.run_json(&["ctl", "shutdown"]);
    home.run_json(&["ctl", "sessions", "resume", &id]);
    let out = follower.wait_with_output().unwrap();
    assert!(out.status.success());
    let recs: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_contiguous(&recs);
    // It saw the pause before the restart and the resume after it, with no gap.
    let kinds: Vec<&str> = recs.iter().map(|r| r["kind"].as_str().unwrap()).collect();
    let paused = kinds.iter().position(|k| *k == "session.paused").unwrap();
    assert_eq!(kinds.last(), Some(&"session.resumed"), "{kinds:?}");
    assert!(paused < kinds.len() - 1);
}

#[test]
fn retention_prunes_ended_sessions_only() {
    let home = Home::new();
    let work = tempfile::tempdir().unwrap();
    let mut d = home.serve(&[]);
    let ended = start(&d, work.path());
    let live = start(&d, work.path());
    assert_eq!(raw_delete(&d, &ended).status, 200);
    d.post("/v1/shutdown", "{}");
    d.wait_exit(Duration::from_secs(10)).unwrap();
    // Defaults (24 h): the ended session survives a restart.
    let mut d = home.serve(&[]);
    assert_eq!(
        d.get(&format!("/v1/sessions/{ended}")).json()["state"],
        "ended"
    );
    d.post("/v1/shutdown", "{}");
    d.wait_exit(Duration::from_secs(10)).unwrap();
    // With a zero age limit it is pruned at start; the live one is untouched.
    std::fs::write(
        home.path.join("daemon.toml"),
        "[retention]\nmax_age_hours = 0\n",
    )
    .unwrap();
    let d = home.serve(&[]);
    wait_until(Duration::from_secs(5), "prune", || {
        d.get(&format!("/v1/sessions/{ended}")).status == 404
    });
    assert!(!home.path.join("sessions").join(&ended).exists());
    assert_eq!(
        d.get(&format!("/v1/sessions/{live}")).json()["state"],
        "idle"
    );
}
