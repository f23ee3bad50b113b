//! Running the daemon: `r1 ctl logs` (following, filtering), `r1 ctl status`, and the
//! Prometheus exposition checked by `promtool`.

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::*;

fn start(d: &Daemon, workdir: &std::path::Path) -> String {
    let r = d.post(
        "/v1/sessions",
        &json!({ "workdir": workdir.to_str().unwrap() }).to_string(),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    r.json()["id"].as_str().unwrap().to_string()
}

/// `r1 ctl logs --json <args>`, one parsed line per log line.
fn logs(home: &Home, args: &[&str]) -> Vec<Value> {
    let mut a = vec!["ctl", "logs", "--json", "--no-spawn"];
    a.extend_from_slice(args);
    let out = home.run(&a);
    assert!(
        out.status.success(),
        "r1 {a:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn ctl_logs_follow_sees_a_new_sessions_line() {
    let home = Home::new();
    let d = home.serve(&[]);
    let mut child = home
        .cmd(&["ctl", "logs", "-f", "--json", "--no-spawn"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // The follower is up once it printed the tail of what is there already.
    rx.recv_timeout(Duration::from_secs(10))
        .expect("r1 ctl logs -f printed nothing");
    let work = tempfile::tempdir().unwrap();
    let id = start(&d, work.path());
    let deadline = Instant::now() + Duration::from_secs(15);
    let found = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                let v: Value = serde_json::from_str(&line).unwrap();
                if v["session"] == id.as_str() {
                    break v;
                }
            }
            Err(_) => panic!("no log line about {id} reached `r1 ctl logs -f` within 15 s"),
        }
    };
    assert_eq!(found["message"], "session started", "{found}");
    assert_eq!(found["level"], "INFO", "{found}");
    assert_eq!(found["fields"]["engine"], "echo", "{found}");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn ctl_logs_filters_by_since_level_and_session() {
    let home = Home::new();
    let d = home.serve(&[]);
    let work = tempfile::tempdir().unwrap();
    let a = start(&d, work.path());
    let b = start(&d, work.path());
    // The files are JSON lines, written off the runtime: wait for the second session.
    wait_until(
        Duration::from_secs(10),
        "session b's line in the log",
        || !logs(&home, &["--session", &b]).is_empty(),
    );

    let only_a = logs(&home, &["--session", &a]);
    assert!(!only_a.is_empty());
    assert!(
        only_a.iter().all(|l| l["session"] == a.as_str()),
        "{only_a:?}"
    );
    assert!(only_a.iter().any(|l| l["message"] == "session started"));

    // The daemon logs at debug here, so unfiltered there are DEBUG lines (requests);
    // `--level info` keeps INFO and worse, `--level warn` WARN and ERROR.
    let all = logs(&home, &["-n", "1000"]);
    assert!(all.iter().any(|l| l["level"] == "DEBUG"), "{all:?}");
    let info = logs(&home, &["--level", "info", "-n", "1000"]);
    assert!(info
        .iter()
        .all(|l| l["level"] != "DEBUG" && l["level"] != "TRACE"));
    assert!(info.iter().any(|l| l["session"] == b.as_str()));
    let warn = logs(&home, &["--level", "warn", "-n", "1000"]);
    assert!(warn
        .iter()
        .all(|l| l["level"] == "WARN" || l["level"] == "ERROR"));

    // `-n` keeps the newest lines, oldest first (session a's lines are all written).
    let all_a = logs(&home, &["--session", &a, "-n", "1000"]);
    let last = logs(&home, &["--session", &a, "-n", "1"]);
    assert_eq!(last[..], all_a[all_a.len() - 1..]);
    let three = logs(&home, &["-n", "3"]);
    assert_eq!(three.len(), 3);
    assert!(three[0]["at"].as_str() <= three[2]["at"].as_str());

    let recent = logs(&home, &["--since", "10m", "--session", &a]);
    assert_eq!(recent, only_a);
    assert!(logs(&home, &["--since", "2099-01-01T00:00:00Z"]).is_empty());

    // Bad filters are refused with a message naming the flag's field.
    let out = home.run(&["ctl", "logs", "--no-spawn", "--level", "loud"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("level must be"));

    // The same read is the `daemon.logs` operation on every transport.
    let r = d.get(&format!("/v1/logs?session_id={a}&limit=1"));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["lines"].as_array().unwrap().len(), 1);
}

#[test]
fn log_settings_are_checked_at_start() {
    let home = Home::new();
    write_config(&home, "[logs]\nmax_mb = 0\n");
    let out = home.run(&["serve"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("[logs] max_mb"), "{err}");
}

#[test]
fn ctl_status_json_shows_sessions_and_missions_by_state() {
    let home = Home::new();
    let d = home.serve(&[]);
    let work = tempfile::tempdir().unwrap();
    let keep = start(&d, work.path());
    let gone = start(&d, work.path());
    let r = raw_tcp(
        d.port(),
        &format!(
            "DELETE /v1/sessions/{gone} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
            d.port(),
            d.token()
        ),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    // One mission that succeeds, one cancelled.
    let mission = |prompt: &str| {
        let spec =
            json!({"prompt": prompt, "workdir": work.path().to_str().unwrap(), "worktree": false});
        let r = d.post("/v1/missions", &json!({ "spec": spec }).to_string());
        assert_eq!(r.status, 201, "{}", r.body);
        r.json()["id"].as_str().unwrap().to_string()
    };
    let done = mission("hello");
    wait_until(Duration::from_secs(20), "the mission to succeed", || {
        d.get(&format!("/v1/missions/{done}")).json()["state"] == "succeeded"
    });
    let stopped = mission(&format!("/slow x {}", "word ".repeat(40)));
    let r = d.post(&format!("/v1/missions/{stopped}/cancel"), "{}");
    assert_eq!(r.status, 200, "{}", r.body);

    // The cancelled mission's turn (if it started) stops a moment later.
    wait_until(Duration::from_secs(10), "no session busy", || {
        let l = d.get("/v1/sessions").json();
        l["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v["state"] != "busy")
    });
    let s = home.run_json(&["ctl", "status"]);
    assert_eq!(s["status"], "ok", "{s}");
    assert_eq!(s["pid"], d.pid(), "{s}");
    assert_eq!(s["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(s["listen"]["port"], d.port(), "{s}");
    assert_eq!(s["listen"]["socket"], d.sock().to_str().unwrap(), "{s}");
    assert_eq!(s["hooks_run"], 0);
    assert!(s["sandbox"].as_str().is_some_and(|t| !t.is_empty()), "{s}");
    assert_eq!(
        s["missions"],
        json!({"succeeded": 1, "cancelled": 1}),
        "{s}"
    );
    // Sessions by state are what `session.list` shows: the two started here (one
    // idle, one ended) and those the missions ran in.
    let mut want = serde_json::Map::new();
    for v in d.get("/v1/sessions").json()["sessions"].as_array().unwrap() {
        let state = v["state"].as_str().unwrap().to_string();
        let n = want.get(&state).and_then(Value::as_u64).unwrap_or(0);
        want.insert(state, json!(n + 1));
    }
    assert_eq!(s["sessions"], Value::Object(want), "{s}");
    assert!(s["sessions"]["ended"].as_u64() >= Some(1), "{s}");
    assert!(s["sessions"]["idle"].as_u64() >= Some(1), "{s}");
    let _ = keep;

    // The text form says the same for people.
    let out = home.run(&["ctl", "status", "--no-spawn"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("1 succeeded"), "{text}");
    assert!(text.contains(&format!("pid {}", d.pid())), "{text}");
}

/// The value of the sample `name` (with its labels, as exposed).
fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no sample {name} in:\n{text}"))
        .parse()
        .unwrap()
}

#[test]
fn metrics_pass_promtool_and_count_a_turn() {
    let home = Home::new();
    let d = home.serve(&[]);
    let work = tempfile::tempdir().unwrap();
    let id = start(&d, work.path());
    let r = d.post(
        &format!("/v1/sessions/{id}/messages"),
        &json!({"text": "hello metrics"}).to_string(),
    );
    assert_eq!(r.status, 202, "{}", r.body);
    let done = "r1_turns_total{engine=\"echo\",outcome=\"completed\"}";
    let mut text = String::new();
    // The turn is counted as it ends, and the session shows idle a moment after: a
    // scrape in between sees both the count and a busy session, so wait for both.
    wait_until(
        Duration::from_secs(10),
        "the turn to be counted and the session idle",
        || {
            text = d.get("/v1/metrics").body;
            text.contains(done) && text.contains("r1_sessions{state=\"idle\"} 1")
        },
    );
    assert_eq!(sample(&text, done), 1.0);

    // The exposition is what Prometheus accepts, lint included.
    let promtool = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("promtool is missing ({e}): install the Debian package prometheus (apt-get install prometheus)")
        });
    promtool
        .stdin
        .as_ref()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics refused the exposition:\n{}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // The families operators use, with plausible values after one echo turn.
    assert!(
        sample(
            &text,
            "r1_tokens_total{engine=\"echo\",direction=\"output\"}"
        ) > 0.0
    );
    assert!(
        sample(
            &text,
            "r1_tokens_total{engine=\"echo\",direction=\"input\"}"
        ) > 0.0
    );
    assert_eq!(
        sample(&text, "r1_provider_latency_seconds_count{engine=\"echo\"}"),
        1.0
    );
    assert_eq!(sample(&text, "r1_sessions{state=\"idle\"}"), 1.0);
    assert_eq!(sample(&text, "r1_sessions{state=\"busy\"}"), 0.0);
    assert_eq!(sample(&text, "r1_missions{state=\"queued\"}"), 0.0);
    assert!(sample(&text, "r1_journal_append_duration_seconds_count") >= 3.0);
    assert!(sample(&text, "r1_journal_fsync_duration_seconds_count") >= 2.0);
    assert_eq!(sample(&text, "r1_subscribers"), 0.0);
    assert_eq!(sample(&text, "r1_subscriber_queued_bytes"), 0.0);
    assert_eq!(sample(&text, "r1_subscribers_dropped_total"), 0.0);
    assert_eq!(sample(&text, "r1_hook_runs_total"), 0.0);
    for family in [
        "r1_connections_rejected_total counter",
        "r1_request_duration_seconds histogram",
        "r1_journal_fsync_duration_seconds histogram",
    ] {
        assert!(text.contains(&format!("# TYPE {family}\n")), "{family}");
    }
}
