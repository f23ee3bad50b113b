//! The session core (issue "Session core, rebuilt"): one actor per session, journal
//! first, read-your-writes. These tests race the API against turns the way a script
//! or a second client would.

use std::io::Write as _;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::sessions::{records, start};
use crate::support::*;

/// Sends a message; a 429 (too many messages already wait for their turn) is the
/// session's backpressure, and a well-behaved client waits and sends again.
fn send(d: &Daemon, id: &str, text: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = d.post(
            &format!("/v1/sessions/{id}/messages"),
            &json!({ "text": text }).to_string(),
        );
        if r.status == 429 && Instant::now() < deadline {
            assert_eq!(r.json()["error_code"], "budget_exceeded");
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        assert_eq!(r.status, 202, "{}", r.body);
        return r.json();
    }
}

fn state(d: &Daemon, id: &str) -> String {
    d.get(&format!("/v1/sessions/{id}")).json()["state"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Whether the journal from `seq` holds the assistant's answer to `message_id`.
fn replied(d: &Daemon, id: &str, seq: u64, message_id: &str) -> bool {
    let page = d
        .get(&format!(
            "/v1/sessions/{id}/journal?since_seq={seq}&limit=200"
        ))
        .json();
    page["records"].as_array().unwrap().iter().any(|r| {
        r["kind"] == "session.message"
            && r["data"]["role"] == "assistant"
            && r["data"]["reply_to"] == message_id
    })
}

#[test]
fn a_send_answered_202_never_reads_idle_before_its_reply_is_journaled() {
    let home = Home::new();
    let work = tempfile::tempdir().unwrap();
    let d = home.serve(&["--log-level", "warn"]);
    let id = start(&d, work.path());
    let mut idle_reads = 0;
    for n in 0..1000 {
        let sent = send(&d, &id, &format!("m{n}"));
        let seq = sent["seq"].as_u64().unwrap();
        let mid = sent["message_id"].as_str().unwrap();
        if state(&d, &id) == "idle" {
            idle_reads += 1;
            assert!(
                replied(&d, &id, seq, mid),
                "send {n} read idle before its reply was journaled; the journal from seq {seq}: {}",
                d.get(&format!(
                    "/v1/sessions/{id}/journal?since_seq={seq}&limit=20"
                ))
                .body
            );
        }
    }
    // The last turn ends, and the session is idle with every reply in the journal.
    wait_until(Duration::from_secs(30), "the last turn", || {
        state(&d, &id) == "idle"
    });
    let recs = records(&d, &id);
    let replies = recs
        .iter()
        .filter(|r| r["kind"] == "session.message" && r["data"]["role"] == "assistant")
        .count();
    assert_eq!(replies, 1000, "({idle_reads} sends read idle at once)");
}

#[test]
fn pause_racing_the_end_of_a_turn_is_never_lost() {
    let home = Home::new();
    let work = tempfile::tempdir().unwrap();
    let d = home.serve(&["--log-level", "warn"]);
    let id = start(&d, work.path());
    for n in 0..100 {
        send(&d, &id, &format!("race {n}"));
        // Pause at once: the turn is starting, streaming or just ending.
        let r = d.post(&format!("/v1/sessions/{id}/pause"), "{}");
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.json()["state"], "paused", "round {n}: {}", r.body);
        // The pause stays: nothing that ends afterwards flips it back.
        assert_eq!(state(&d, &id), "paused", "round {n}");
        let recs = records(&d, &id);
        let last_state = recs
            .iter()
            .rev()
            .find(|r| r["kind"] == "session.state")
            .unwrap();
        assert_eq!(last_state["data"]["state"], "paused", "round {n}");
        let paused_at = recs
            .iter()
            .rposition(|r| r["kind"] == "session.paused")
            .unwrap();
        assert!(
            recs[paused_at..].iter().all(|r| !matches!(
                r["kind"].as_str(),
                Some("session.delta" | "session.message")
            )),
            "round {n}: a record of the turn came after the pause"
        );
        let r = d.post(&format!("/v1/sessions/{id}/resume"), "{}");
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["state"], "idle", "round {n}");
    }
}

#[test]
fn a_full_disk_mid_turn_leaves_the_session_usable_once_space_returns() {
    let tmpfs = TmpfsHome::new();
    let (home, mnt) = (&tmpfs.home, &tmpfs.mnt);
    let work = tempfile::tempdir().unwrap();
    let d = home.serve(&["--log-level", "warn"]);
    let id = start(&d, work.path());
    // A slow turn streams; the disk fills under it.
    send(
        &d,
        &id,
        "/slow one two three four five six seven eight nine ten",
    );
    wait_until(Duration::from_secs(10), "the first delta", || {
        records(&d, &id)
            .iter()
            .any(|r| r["kind"] == "session.delta")
    });
    let filler = mnt.join("filler");
    {
        let mut f = std::fs::File::create(&filler).unwrap();
        let block = vec![0u8; 4096];
        while f.write_all(&block).is_ok() {}
    }
    // The turn fails to write; whatever state it shows, it is never idle with its end
    // unrecorded, and sends are refused with a clear storage error meanwhile.
    std::thread::sleep(Duration::from_millis(2500));
    let r = d.post(
        &format!("/v1/sessions/{id}/messages"),
        &json!({"text": "x".repeat(4000)}).to_string(),
    );
    assert_eq!(r.status, 507, "{}", r.body);
    // Space returns: the session settles and works again.
    std::fs::remove_file(&filler).unwrap();
    let t = Instant::now();
    wait_until(Duration::from_secs(15), "the session to settle", || {
        state(&d, &id) == "idle"
    });
    let recs = records(&d, &id);
    assert!(
        recs.iter().any(|r| r["kind"] == "session.error"
            || r["kind"] == "session.message" && r["data"]["role"] == "assistant"),
        "the turn's end was never journaled"
    );
    send(&d, &id, "after");
    wait_until(Duration::from_secs(10), "the reply after", || {
        records(&d, &id)
            .iter()
            .any(|r| r["data"]["text"] == "echo: after")
    });
    let seqs: Vec<u64> = records(&d, &id)
        .iter()
        .map(|r| r["seq"].as_u64().unwrap())
        .collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "seqs not contiguous"
    );
    let _ = t;
}

#[test]
fn shutdown_pauses_busy_sessions_durably_and_idle_ones_come_back_idle() {
    let home = Home::new();
    let work = tempfile::tempdir().unwrap();
    let mut d = home.serve(&[]);
    let busy: Vec<String> = (0..3).map(|_| start(&d, work.path())).collect();
    let idle: Vec<String> = (0..3).map(|_| start(&d, work.path())).collect();
    for id in &idle {
        send(&d, id, "done soon");
    }
    for id in &idle {
        wait_until(Duration::from_secs(10), "idle", || state(&d, id) == "idle");
    }
    for id in &busy {
        send(&d, id, "/slow a b c d e f g h i j k l m n o p q r s t");
    }
    for id in &busy {
        wait_until(Duration::from_secs(10), "streaming", || {
            records(&d, id).iter().any(|r| r["kind"] == "session.delta")
        });
    }
    let idle_len: Vec<usize> = idle.iter().map(|id| records(&d, id).len()).collect();
    let out = home.run(&["ctl", "shutdown"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    d.wait_exit(Duration::from_secs(15)).expect("no exit");
    // Read the journals as files: the pause is there, durably, before the restart.
    for id in &busy {
        let raw =
            std::fs::read_to_string(home.path.join("sessions").join(id).join("journal.ndjson"))
                .unwrap();
        assert!(
            raw.lines()
                .any(|l| l.contains("\"session.paused\"") && l.contains("daemon shutdown")),
            "{id}: no session.paused at shutdown"
        );
    }
    let d = home.serve(&[]);
    for id in &busy {
        let v = d.get(&format!("/v1/sessions/{id}")).json();
        assert_eq!(v["state"], "paused", "{v}");
        assert_eq!(v["reattachable"], true, "{v}");
    }
    for (id, len) in idle.iter().zip(idle_len) {
        assert_eq!(state(&d, id), "idle");
        assert_eq!(records(&d, id).len(), len, "{id}: records were added");
        send(&d, id, "still works");
    }
}
