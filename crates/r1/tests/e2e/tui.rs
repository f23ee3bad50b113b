//! `r1 tui` on the real binary in a real terminal: tmux runs it, `send-keys` types and
//! `capture-pane` reads the screen. Each test has its own tmux server (`-L`), so tests
//! run side by side and leave nothing behind.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::support::{bin, Home};

/// How long a step may take on a loaded two-core machine.
const STEP: Duration = Duration::from_secs(20);

/// A tmux server with one window running `r1 tui`.
struct Tmux {
    socket: String,
    /// The server's socket file: tmux leaves it behind when the server exits.
    path: Option<String>,
}

impl Tmux {
    /// Starts `r1 <args>` with `home` in a `width`×`height` window.
    fn start(home: &Home, args: &str, width: u16, height: u16) -> Tmux {
        let socket = format!("r1tui{}-{}", std::process::id(), next_id());
        let mut t = Tmux { socket, path: None };
        let cmd = format!("R1_HOME={} {} {args}", home.path.display(), bin().display());
        let out = t.run(&[
            "new-session",
            "-d",
            "-s",
            "tui",
            "-x",
            &width.to_string(),
            "-y",
            &height.to_string(),
            &cmd,
        ]);
        assert!(
            out.status.success(),
            "tmux: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let path = t.run(&["display-message", "-p", "#{socket_path}"]).stdout;
        let path = String::from_utf8_lossy(&path).trim().to_string();
        t.path = Some(path).filter(|p| !p.is_empty());
        t
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .env_remove("TMUX")
            .output()
            .expect("tmux is needed for this test")
    }

    /// Presses keys by tmux name (`Enter`, `C-t`, `Escape`).
    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "tui"];
        args.extend_from_slice(keys);
        assert!(self.run(&args).status.success());
    }

    /// Types `text` as it is.
    fn type_text(&self, text: &str) {
        assert!(self
            .run(&["send-keys", "-t", "tui", "-l", text])
            .status
            .success());
    }

    /// Types a line and presses Enter.
    fn line(&self, text: &str) {
        self.type_text(text);
        self.keys(&["Enter"]);
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.run(&["capture-pane", "-p", "-t", "tui"]).stdout).to_string()
    }

    /// Waits until the screen satisfies `f`, and returns it.
    fn wait(&self, what: &str, f: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + STEP;
        loop {
            let s = self.screen();
            if f(&s) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; the screen:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether the window (and so `r1 tui`) is still there.
    fn alive(&self) -> bool {
        self.run(&["has-session", "-t", "tui"]).status.success()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
        if let Some(p) = &self.path {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// A number no other test of this process has: tmux server names must differ.
fn next_id() -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

#[test]
fn tui_drives_sessions_approvals_and_lanes_in_tmux() {
    let home = Home::new();
    let work = tempfile::tempdir().unwrap();
    let work2 = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("marker-file.txt"), "x").unwrap();
    let t = Tmux::start(
        &home,
        &format!("tui --workdir {}", work.path().display()),
        100,
        30,
    );
    t.wait("the session", |s| {
        s.contains("session started in") && s.contains("connected")
    });

    // Send, and the echo streams back.
    t.line("hello there");
    t.wait("the echo", |s| s.contains("echo: hello there"));

    // A command asks for approval on a card; y runs it and its lane shows the output.
    t.line("/run ls");
    let s = t.wait("the approval card", |s| s.contains("approval needed"));
    assert!(s.contains("run_command wants to run:"), "{s}");
    assert!(
        s.contains("[y] allow") && s.contains("[a] always allow"),
        "{s}"
    );
    t.keys(&["y"]);
    let s = t.wait("the lane output", |s| {
        s.contains("done") && s.contains("marker-file.txt")
    });
    assert!(!s.contains("approval needed"), "{s}");
    t.wait("the answer and the session idle", |s| {
        s.contains("echo: run_command returned") && s.contains("● idle") && !s.contains("busy")
    });

    // Ctrl-C cancels a running turn; Esc with nothing running says so; neither quits.
    // (Each key is sent alone: a terminal reads Esc and a key right after it as Alt.)
    t.line("/slow one two three four five six seven eight nine ten");
    t.wait("the slow answer", |s| s.contains("echo: on"));
    t.keys(&["C-c"]);
    t.wait("the cancel", |s| {
        s.contains("· cancelled") && !s.contains("busy")
    });
    t.keys(&["Escape"]);
    t.wait("the cancel hint", |s| s.contains("nothing to cancel"));
    assert!(t.alive());

    // k in the lanes pane kills the focused lane.
    t.line("/run sleep 30");
    t.wait("the second card", |s| s.contains("approval needed"));
    t.keys(&["y"]);
    t.wait("the running lane", |s| {
        s.contains("running") && s.contains("sleep 30")
    });
    t.keys(&["Tab"]);
    t.wait("the lanes pane to have the focus", |s| s.contains("k kill"));
    t.keys(&["k"]);
    t.wait("the killed lane", |s| {
        s.contains("killed") && s.contains("echo: run_command failed")
    });

    // Ctrl-T starts a second session; Ctrl-P and Ctrl-N switch between them.
    t.keys(&["C-t"]);
    t.wait("the workdir prompt", |s| s.contains("new session"));
    t.keys(&["C-u"]);
    t.line(&work2.path().display().to_string());
    t.wait("the second session", |s| {
        s.contains(&format!("session started in {}", work2.path().display()))
    });
    t.line("second one");
    t.wait("the second echo", |s| s.contains("echo: second one"));
    t.keys(&["C-p"]);
    t.wait("the first session again", |s| {
        s.contains("echo: run_command failed") && !s.contains("echo: second one")
    });
    t.keys(&["C-n"]);
    t.wait("the second session again", |s| {
        s.contains("echo: second one")
    });

    // A 40×12 terminal still renders, and so does the full size after it.
    assert!(t
        .run(&["resize-window", "-t", "tui", "-x", "40", "-y", "12"])
        .status
        .success());
    let s = t.wait("the small screen", |s| {
        let lines: Vec<&str> = s.lines().collect();
        lines.len() == 12 && lines[11].contains("connected") && s.contains("echo: second one")
    });
    assert!(s.lines().all(|l| l.chars().count() <= 40), "{s}");
    assert!(t
        .run(&["resize-window", "-t", "tui", "-x", "100", "-y", "30"])
        .status
        .success());
    t.wait("the full screen", |s| {
        s.contains("sessions") && s.lines().count() == 30
    });

    // Ctrl-Q quits; the sessions stay in the daemon.
    t.keys(&["C-q"]);
    crate::support::wait_until(STEP, "r1 tui to quit", || !t.alive());
    let list = home.run_json(&["ctl", "sessions", "list"]);
    assert_eq!(list["sessions"].as_array().map(Vec::len), Some(2), "{list}");
}

#[test]
fn tui_rides_a_daemon_restart_without_repeating_text() {
    let home = Home::new();
    let work = tempfile::tempdir().unwrap();
    let t = Tmux::start(
        &home,
        &format!("tui --workdir {}", work.path().display()),
        100,
        30,
    );
    t.wait("the session", |s| {
        s.contains("session started in") && s.contains("connected")
    });
    // A slow answer (16 deltas, 200 ms apart) is still streaming when the daemon goes.
    t.line("/slow alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa quebec romeo sierra tango");
    t.wait("the answer to start", |s| s.contains("echo: alph"));
    let out = home.run(&["ctl", "restart"]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let s = t.wait("the client to come back", |s| {
        s.contains("the daemon restarted") && s.contains("● connected")
    });
    assert_eq!(
        s.matches("echo: alph").count(),
        1,
        "the partial answer twice:\n{s}"
    );
    // A new message works (the restart left the session paused: sending resumes it).
    t.line("after the restart");
    let s = t.wait("the new answer", |s| s.contains("echo: after the restart"));
    assert_eq!(s.matches("echo: alph").count(), 1, "{s}");
    assert_eq!(s.matches("› after the restart").count(), 1, "{s}");
    assert_eq!(s.matches("echo: after the restart").count(), 1, "{s}");
    assert_eq!(s.matches("session started in").count(), 1, "{s}");
}

/// A headless TUI's screen (`tui.snapshot`) over HTTP, waiting until it satisfies `f`.
fn headless_wait(
    d: &crate::support::Daemon,
    tui: &str,
    what: &str,
    f: impl Fn(&str) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + STEP;
    loop {
        let r = d.get(&format!("/v1/tui/{tui}/snapshot"));
        assert_eq!(r.status, 200, "{}", r.body);
        let snap = r.json();
        let text = screen_text(&snap);
        if f(&text) {
            return snap;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; the headless screen:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn screen_text(snap: &serde_json::Value) -> String {
    let lines: Vec<&str> = snap["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    lines.join("\n")
}

/// Rows without what neither side draws: trailing blanks and trailing empty rows.
fn rows(text: &str) -> Vec<String> {
    let mut rows: Vec<String> = text.lines().map(|l| l.trim_end().to_string()).collect();
    while rows.last().is_some_and(String::is_empty) {
        rows.pop();
    }
    rows
}

/// The same state drawn by `r1 tui` in tmux and by a headless TUI in the daemon, at
/// the same size, is the same text; keys pressed through `tui.press_key` drive a
/// conversation, the approval card and a lane like the terminal does.
#[test]
fn headless_tui_shows_what_tmux_shows() {
    let home = Home::new();
    let d = home.serve(&[]);
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("marker-file.txt"), "x").unwrap();
    let r = d.post(
        "/v1/sessions",
        &serde_json::json!({"workdir": work.path(), "title": "compare"}).to_string(),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.json()["id"].as_str().unwrap().to_string();

    let r = d.post(
        "/v1/tui",
        &serde_json::json!({"session_id": id, "width": 100, "height": 30}).to_string(),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let opened = r.json();
    assert_eq!(opened["width"], 100, "{opened}");
    let tui = opened["tui_session_id"].as_str().unwrap().to_string();

    // Type a message key by key, send it, and the echo shows.
    for c in "hello there".chars() {
        let key = if c == ' ' {
            "space".to_string()
        } else {
            c.to_string()
        };
        let r = d.post(
            &format!("/v1/tui/{tui}/keys"),
            &serde_json::json!({ "key": key }).to_string(),
        );
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let r = d.post(
        &format!("/v1/tui/{tui}/keys"),
        &serde_json::json!({"key": "enter"}).to_string(),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let snap = headless_wait(&d, &tui, "the echo", |s| {
        s.contains("echo: hello there") && s.contains("● idle")
    });
    let ids: Vec<&str> = snap["elements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"input.send"), "{ids:?}");
    assert!(
        ids.contains(&format!("sessions.item.{id}").as_str()),
        "{ids:?}"
    );

    // The same state in a real terminal of the same size.
    let t = Tmux::start(&home, &format!("tui --session {id}"), 100, 30);
    let tmux = t.wait("the echo in tmux", |s| {
        s.contains("echo: hello there") && s.contains("● idle") && s.contains("● connected")
    });
    let headless = headless_wait(&d, &tui, "the same screen", |s| rows(s) == rows(&tmux));
    assert_eq!(rows(&screen_text(&headless)), rows(&tmux));

    // `/run ls` asks on a card; `y` runs it and the lane shows the output.
    for c in "/run ls".chars() {
        let key = if c == ' ' {
            "space".to_string()
        } else {
            c.to_string()
        };
        d.post(
            &format!("/v1/tui/{tui}/keys"),
            &serde_json::json!({ "key": key }).to_string(),
        );
    }
    d.post(
        &format!("/v1/tui/{tui}/keys"),
        &serde_json::json!({"key": "enter"}).to_string(),
    );
    let snap = headless_wait(&d, &tui, "the approval card", |s| {
        s.contains("approval needed")
    });
    let allow = snap["elements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == "approval.allow")
        .unwrap_or_else(|| panic!("no approval.allow: {snap}"));
    assert_eq!(allow["method"], "session.approve", "{allow}");
    assert_eq!(allow["key"], "y", "{allow}");
    let r = d.post(
        &format!("/v1/tui/{tui}/keys"),
        &serde_json::json!({"key": "y"}).to_string(),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let snap = headless_wait(&d, &tui, "the lane output", |s| {
        s.contains("marker-file.txt") && s.contains("echo: run_command returned")
    });
    let lane = snap["elements"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|e| e["id"].as_str()?.strip_prefix("lanes.item."))
        .unwrap_or_else(|| panic!("no lane element: {snap}"))
        .to_string();
    let r = d.post(
        &format!("/v1/tui/{tui}/focus_lane"),
        &serde_json::json!({ "lane_id": lane }).to_string(),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(screen_text(&r.json()).contains("k kill"), "{}", r.body);
    let r = d.post(
        &format!("/v1/tui/{tui}/focus_lane"),
        &serde_json::json!({"lane_id": "tool_none"}).to_string(),
    );
    assert_eq!(r.json()["error_code"], "not_found", "{}", r.body);

    // tmux shows that state too.
    let tmux = t.wait("the lane in tmux", |s| {
        s.contains("marker-file.txt") && s.contains("echo: run_command returned")
    });
    assert!(!tmux.contains("approval needed"), "{tmux}");

    // ctrl+q ends the headless TUI as it ends the terminal one.
    let r = d.post(
        &format!("/v1/tui/{tui}/keys"),
        &serde_json::json!({"key": "ctrl+q"}).to_string(),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = d.get(&format!("/v1/tui/{tui}/snapshot"));
    assert_eq!(r.json()["error_code"], "not_found", "{}", r.body);
}

/// Headless TUIs are bounded, reaped when idle, and refuse what they do not know.
#[test]
fn headless_tuis_are_bounded_and_reaped() {
    let home = Home::new();
    crate::support::write_config(
        &home,
        "[limits]\nmax_tui_sessions = 2\ntui_idle_timeout_ms = 1500\n",
    );
    let d = home.serve(&[]);
    let open = || d.post("/v1/tui", "{}");
    let a = open();
    assert_eq!(a.status, 201, "{}", a.body);
    let a = a.json()["tui_session_id"].as_str().unwrap().to_string();
    let b = open();
    assert_eq!(b.status, 201, "{}", b.body);
    let third = open();
    assert_eq!(third.status, 429, "{}", third.body);
    assert_eq!(third.json()["error_code"], "budget_exceeded");
    assert!(third.body.contains("max_tui_sessions"), "{}", third.body);

    // No session yet: the workdir prompt shows, as in the terminal.
    let snap = d.get(&format!("/v1/tui/{a}/snapshot"));
    assert_eq!(snap.status, 200, "{}", snap.body);
    assert!(
        screen_text(&snap.json()).contains("new session"),
        "{}",
        snap.body
    );

    let bad = d.post(
        &format!("/v1/tui/{a}/keys"),
        &serde_json::json!({"key": "hyper+x"}).to_string(),
    );
    assert_eq!(bad.json()["error_code"], "validation", "{}", bad.body);
    let unknown = d.get("/v1/tui/tui_nope/snapshot");
    assert_eq!(
        unknown.json()["error_code"],
        "not_found",
        "{}",
        unknown.body
    );
    let small = d.post("/v1/tui", &serde_json::json!({"width": 5}).to_string());
    assert_eq!(small.json()["error_code"], "validation", "{}", small.body);
    let ghost = d.post(
        "/v1/tui",
        &serde_json::json!({"session_id": "ses_nope"}).to_string(),
    );
    assert_eq!(ghost.json()["error_code"], "not_found", "{}", ghost.body);

    // Closing frees a place; closing again is fine.
    assert_eq!(d.post(&format!("/v1/tui/{a}/close"), "{}").status, 200);
    assert_eq!(d.post(&format!("/v1/tui/{a}/close"), "{}").status, 200);
    let c = open();
    assert_eq!(c.status, 201, "{}", c.body);

    // Idle ones are closed after the timeout, which frees their places.
    std::thread::sleep(Duration::from_millis(1800));
    let r = d.get(&format!(
        "/v1/tui/{}/snapshot",
        b.json()["tui_session_id"].as_str().unwrap()
    ));
    assert_eq!(r.json()["error_code"], "not_found", "{}", r.body);
    assert_eq!(open().status, 201);
    assert_eq!(open().status, 201);
}
