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
