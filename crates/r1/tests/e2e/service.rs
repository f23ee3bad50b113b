//! r1 as a service, on the real binary: `r1 serve --install | --uninstall | --status`
//! against a fake `systemctl` (it records its argv; no running systemd is needed) with
//! the real `systemd-analyze verify` on the unit it wrote; sidecar mode
//! (`--emit-port-stdout`) read by this test as the parent; and the deprecated aliases.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::support::{bin, wait_until, Home};

/// A temporary `$HOME` with a fake `systemctl` first on `PATH`.
struct ServiceHome {
    dir: tempfile::TempDir,
}

/// How the fake `systemctl` behaves.
#[derive(Clone, Copy)]
enum Manager {
    /// A user manager that answers: it keeps enabled/active in a state file.
    Answers,
    /// No user manager: every call fails as `systemctl --user` does without D-Bus.
    NoBus,
    /// No `systemctl` on PATH at all.
    Absent,
}

impl ServiceHome {
    fn new(manager: Manager) -> ServiceHome {
        let dir = tempfile::Builder::new().prefix("r1svc").tempdir().unwrap();
        let fake = dir.path().join("bin");
        std::fs::create_dir_all(&fake).unwrap();
        std::fs::create_dir_all(dir.path().join("home")).unwrap();
        let log = dir.path().join("systemctl.log");
        let state = dir.path().join("systemctl.state");
        let script = match manager {
            Manager::Absent => None,
            Manager::NoBus => Some(format!(
                "#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{}'\necho 'Failed to connect to bus: No medium found' >&2\nexit 1\n",
                log.display()
            )),
            Manager::Answers => Some(format!(
                r#"#!/bin/sh
# r1 runs with only this directory on PATH; the script's own tools are elsewhere.
PATH=/usr/bin:/bin
printf '%s\n' "$*" >> '{log}'
case "$*" in
  *"disable --now r1.service"*) rm -f '{state}' ;;
  *"enable --now r1.service"*) echo active > '{state}' ;;
  *"show r1.service"*)
    if [ -f '{state}' ]; then
      printf 'LoadState=loaded\nUnitFileState=enabled\nActiveState=active\nMainPID=4242\n'
    else
      printf 'LoadState=loaded\nUnitFileState=disabled\nActiveState=inactive\nMainPID=0\n'
    fi ;;
esac
exit 0
"#,
                log = log.display(),
                state = state.display()
            )),
        };
        if let Some(script) = script {
            let path = fake.join("systemctl");
            std::fs::write(&path, script).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        ServiceHome { dir }
    }

    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    fn unit(&self) -> PathBuf {
        self.home().join(".config/systemd/user/r1.service")
    }

    /// What the fake `systemctl` was called with, one call a line.
    fn calls(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("systemctl.log")).unwrap_or_default()
    }

    /// `r1 serve <args>` with this `$HOME`, `XDG_CONFIG_HOME` under it, the default
    /// state directory, and only the fake `systemctl` on `PATH`.
    fn serve(&self, args: &[&str]) -> Output {
        Command::new(bin())
            .arg("serve")
            .args(args)
            .env_clear()
            .env("HOME", self.home())
            .env("XDG_CONFIG_HOME", self.home().join(".config"))
            .env("PATH", self.dir.path().join("bin"))
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn status(&self) -> Value {
        let out = self.serve(&["--status", "--json"]);
        assert!(out.status.success(), "{}", text(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `systemd-analyze verify` on `unit`; `.ci/test` installs it (Debian's `systemd`).
fn systemd_analyze_verify(unit: &Path) {
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(unit)
        .output()
        .expect("systemd-analyze runs (Debian package systemd; .ci/test installs it)");
    assert!(
        out.status.success(),
        "systemd-analyze verify refused the unit: {}\n{}",
        text(&out),
        std::fs::read_to_string(unit).unwrap()
    );
    // An unknown key or a bad value is only a warning to it, naming the unit.
    let said = text(&out);
    assert!(
        !said.contains("r1.service"),
        "systemd-analyze verify warned about the unit: {said}"
    );
}

#[test]
fn install_verify_status_and_uninstall_a_systemd_user_unit() {
    let h = ServiceHome::new(Manager::Answers);
    let exe = bin().canonicalize().unwrap();

    let out = h.serve(&["--install", "--now"]);
    assert!(out.status.success(), "{}", text(&out));
    let said = text(&out);
    assert!(said.contains("installed"), "{said}");
    assert!(said.contains("loginctl enable-linger"), "{said}");
    assert!(said.contains("running (pid 4242)"), "{said}");
    let unit = std::fs::read_to_string(h.unit()).unwrap();
    assert!(
        unit.contains(&format!("\nExecStart={} serve\n", exe.display())),
        "{unit}"
    );
    for line in ["Restart=on-failure", "RestartSec=5s", "NoNewPrivileges=yes"] {
        assert!(unit.lines().any(|l| l == line), "no {line} in {unit}");
    }
    assert!(!unit.contains("ProtectHome="), "{unit}");
    assert!(!unit.contains("R1_HOME"), "the default state dir: {unit}");
    let calls = h.calls();
    assert!(calls.contains("--user daemon-reload\n"), "{calls}");
    assert!(
        calls.contains("--user enable --now r1.service\n"),
        "{calls}"
    );
    systemd_analyze_verify(&h.unit());

    // Installing again changes nothing.
    let before = std::fs::metadata(h.unit()).unwrap().modified().unwrap();
    let again = h.serve(&["--install"]);
    assert!(again.status.success(), "{}", text(&again));
    assert!(text(&again).contains("unchanged"), "{}", text(&again));
    assert_eq!(std::fs::read_to_string(h.unit()).unwrap(), unit);
    assert_eq!(
        std::fs::metadata(h.unit()).unwrap().modified().unwrap(),
        before
    );

    let s = h.status();
    assert_eq!(s["installed"], true, "{s}");
    assert_eq!(s["unit"], h.unit().display().to_string());
    assert_eq!(s["exec"], exe.display().to_string());
    assert_eq!(s["points_at_this_binary"], true);
    assert_eq!(s["enabled"], true);
    assert_eq!(s["running"], true);
    assert_eq!(s["pid"], 4242);
    let human = h.serve(&["--status"]);
    let said = text(&human);
    assert!(said.contains("(this binary)"), "{said}");
    assert!(said.contains("yes (pid 4242)"), "{said}");

    // A unit left by another binary is called out.
    std::fs::write(
        h.unit(),
        unit.replace(&exe.display().to_string(), "/opt/old/r1"),
    )
    .unwrap();
    let s = h.status();
    assert_eq!(s["points_at_this_binary"], false, "{s}");
    assert_eq!(s["exec"], "/opt/old/r1");
    assert!(text(&h.serve(&["--status"])).contains("not this binary"));

    let out = h.serve(&["--uninstall"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!h.unit().exists());
    assert!(h.calls().contains("--user disable --now r1.service\n"));
    let s = h.status();
    assert_eq!(s["installed"], false, "{s}");
    assert_eq!(s["running"], false);
    // Uninstalling again is fine.
    let out = h.serve(&["--uninstall"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("not installed"), "{}", text(&out));
}

#[test]
fn a_state_dir_other_than_the_default_goes_in_the_unit() {
    let h = ServiceHome::new(Manager::Answers);
    let state = h.dir.path().join("elsewhere");
    let out = Command::new(bin())
        .args(["serve", "--install"])
        .env_clear()
        .env("HOME", h.home())
        .env("PATH", h.dir.path().join("bin"))
        .env("R1_HOME", &state)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    // Without XDG_CONFIG_HOME the unit goes in ~/.config.
    let unit = std::fs::read_to_string(h.unit()).unwrap();
    assert!(
        unit.contains(&format!("\nEnvironment=R1_HOME={}\n", state.display())),
        "{unit}"
    );
    assert!(
        text(&out).contains("r1 serve --install --now"),
        "{}",
        text(&out)
    );
    assert!(!h.calls().contains("enable"), "{}", h.calls());
    systemd_analyze_verify(&h.unit());
}

#[test]
fn without_a_user_manager_the_unit_is_written_and_the_message_says_how_to_enable_it() {
    let h = ServiceHome::new(Manager::NoBus);
    let out = h.serve(&["--install"]);
    assert!(out.status.success(), "{}", text(&out));
    let said = text(&out);
    assert!(h.unit().exists());
    assert!(said.contains("no systemd user manager answered"), "{said}");
    let linger = said.find("loginctl enable-linger").expect(&said);
    let enable = said.find("systemctl --user enable --now r1").expect(&said);
    assert!(linger < enable, "linger first: {said}");
    assert!(h.calls().contains("--user daemon-reload"));

    // --now asked for a start that could not happen: the unit stays, the exit says so.
    let out = h.serve(&["--install", "--now"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("loginctl enable-linger"));
    assert!(h.unit().exists());

    let s = h.status();
    assert_eq!(s["installed"], true, "{s}");
    assert_eq!(s["enabled"], Value::Null);
    assert!(
        s["manager_error"]
            .as_str()
            .unwrap()
            .contains("Failed to connect to bus"),
        "{s}"
    );

    // Uninstall still removes the unit.
    let out = h.serve(&["--uninstall"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!h.unit().exists());
}

#[test]
fn without_systemctl_install_fails_and_writes_nothing() {
    let h = ServiceHome::new(Manager::Absent);
    for args in [&["--install"][..], &["--install", "--now"][..]] {
        let out = h.serve(args);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("systemctl is not on PATH"), "{err}");
        assert!(err.contains("nothing was written"), "{err}");
        assert!(!h.home().join(".config").exists(), "something was written");
    }
    let s = h.status();
    assert_eq!(s["installed"], false, "{s}");
}

#[test]
fn service_flags_need_their_partners() {
    let h = ServiceHome::new(Manager::Answers);
    for args in [
        &["--now"][..],
        &["--json"][..],
        &["--install", "--uninstall"][..],
        &["--status", "--install"][..],
        &["--install", "--port", "7777"][..],
        &["--install", "--emit-port-stdout"][..],
    ] {
        let out = h.serve(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
    }
    assert!(!h.unit().exists());
}

/// Reads lines from a child's stdout on a thread, so the test can wait with a bound.
fn lines_of(stdout: impl Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

#[test]
fn emit_port_stdout_gives_a_parent_exactly_one_line() {
    let home = Home::new();
    let stderr = std::fs::File::create(home._dir.path().join("serve.stderr")).unwrap();
    let mut child = home
        .cmd(&["serve", "--emit-port-stdout", "--log-level", "debug"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let lines = lines_of(child.stdout.take().unwrap());
    let first = lines
        .recv_timeout(Duration::from_secs(20))
        .expect("the daemon.listening line");
    let ev: Value = serde_json::from_str(&first).unwrap();
    let keys: Vec<&str> = ev.as_object().unwrap().keys().map(String::as_str).collect();
    let mut sorted = keys.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        ["event", "pid", "port", "protocol", "sock", "url", "version"],
        "{first}"
    );
    assert_eq!(ev["event"], "daemon.listening");
    assert_eq!(ev["pid"], child.id());
    assert_eq!(ev["protocol"], r1_proto::PROTOCOL);
    assert_eq!(ev["version"], env!("CARGO_PKG_VERSION"));
    let port = ev["port"].as_u64().unwrap();
    assert_eq!(ev["url"], format!("http://127.0.0.1:{port}"));
    // The line comes after the registration: the two agree.
    let reg = home.registration().expect("daemon.json is written first");
    assert_eq!(reg["url"], ev["url"]);
    assert_eq!(reg["sock"], ev["sock"]);
    assert!(Path::new(ev["sock"].as_str().unwrap()).exists());

    // The URL answers.
    let token = home.token();
    let health = crate::support::raw_tcp_patient(
        port as u16,
        &format!(
            "GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
        ),
        Duration::from_secs(20),
    );
    assert_eq!(health.status, 200, "{}", health.body);
    assert_eq!(health.json()["status"], "ok");

    // Some activity, a command run by an agent's tool included (its output is the
    // session's, never the daemon's stdout).
    let work = tempfile::tempdir().unwrap();
    let s = home.run_json(&[
        "ctl",
        "sessions",
        "start",
        "--workdir",
        work.path().to_str().unwrap(),
        "--policy",
        "run_command=allow",
    ]);
    let id = s["id"].as_str().unwrap();
    for msg in ["hello", "/run echo to-stdout; echo to-stderr >&2"] {
        let out = home.run(&["ctl", "sessions", "send", id, msg, "--wait"]);
        assert!(out.status.success(), "{}", text(&out));
    }
    let out = home.run(&["ctl", "shutdown"]);
    assert!(out.status.success(), "{}", text(&out));
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    // End of file after the daemon exits, with nothing after the one line.
    let rest: Vec<String> = lines.iter().collect();
    assert!(rest.is_empty(), "more on stdout: {rest:?}");
    let log = std::fs::read_to_string(home._dir.path().join("serve.stderr")).unwrap();
    assert!(
        log.contains("r1 daemon listening"),
        "logs go to stderr: {log}"
    );
}

#[test]
fn emit_port_stdout_prints_nothing_when_the_daemon_cannot_start() {
    let home = Home::new();
    let _running = home.serve(&[]);
    let out = home
        .cmd(&["serve", "--emit-port-stdout"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(out.stdout.is_empty(), "{}", text(&out));
    assert!(!out.stderr.is_empty());
}

#[test]
fn the_documented_parent_finds_and_drives_the_daemon() {
    let home = Home::new();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/embedding/parent.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(bin())
        .env("R1_HOME", &home.path)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("stdout held exactly one line"), "{said}");
}

#[test]
fn discover_over_http_never_holds_the_token() {
    let home = Home::new();
    let d = home.serve(&[]);
    let r = d.get("/v1/discover");
    assert_eq!(r.status, 200, "{}", r.body);
    let token = d.token();
    assert!(!r.body.contains(&token), "{}", r.body);
    let v = r.json();
    assert_eq!(v["token"], "<redacted>");
    assert_eq!(
        v["token_file"],
        home.path.join("token").display().to_string()
    );
    for k in [
        "id",
        "pid",
        "version",
        "protocol",
        "url",
        "sock",
        "started_at",
    ] {
        assert_eq!(v[k], d.reg[k], "{k}");
    }
    // Like every route but the handshake, it wants the token.
    let anon = crate::support::raw_tcp(
        d.port(),
        &format!(
            "GET /v1/discover HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
            d.port()
        ),
    );
    assert_eq!(anon.status, 401, "{}", anon.body);
    // `ctl info` is `ctl discover`.
    let info = home.run_json(&["ctl", "info"]);
    let discover = home.run_json(&["ctl", "discover"]);
    assert_eq!(info, discover);
    assert_eq!(info, v);
}

#[test]
fn deprecated_verbs_still_work_and_name_their_replacement() {
    let home = Home::new();
    // `r1 daemon start` is `r1 serve`.
    let log = home._dir.path().join("start.stderr");
    let mut child = home
        .cmd(&["daemon", "start", "--emit-port-stdout"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let lines = lines_of(child.stdout.take().unwrap());
    let ev: Value =
        serde_json::from_str(&lines.recv_timeout(Duration::from_secs(20)).unwrap()).unwrap();
    assert_eq!(ev["pid"], child.id());
    let first = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        first.lines().next(),
        Some("r1: `r1 daemon start` is deprecated; use `r1 serve`"),
        "{first}"
    );

    // `r1 daemon status` is `r1 ctl status`.
    let out = home.run(&["daemon", "status", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "r1: `r1 daemon status` is deprecated; use `r1 ctl status`"
    );
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    let direct = home.run_json(&["ctl", "status"]);
    assert_eq!(status["pid"], direct["pid"], "{status}");
    assert!(status["sessions"].is_object(), "{status}");
    assert_eq!(
        status.as_object().unwrap().keys().collect::<Vec<_>>(),
        direct.as_object().unwrap().keys().collect::<Vec<_>>()
    );

    // `r1 daemon stop` is `r1 ctl shutdown`.
    let out = home.run(&["daemon", "stop"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "r1: `r1 daemon stop` is deprecated; use `r1 ctl shutdown`"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("stopped"));
    wait_until(Duration::from_secs(10), "the daemon exits", || {
        child.try_wait().unwrap().is_some()
    });

    // `r1 mcp-serve` is `r1 mcp serve`.
    let old = home.run(&["mcp-serve", "--print-tools"]);
    let new = home.run(&["mcp", "serve", "--print-tools"]);
    assert!(old.status.success(), "{}", text(&old));
    assert_eq!(old.stdout, new.stdout);
    assert_eq!(
        String::from_utf8_lossy(&old.stderr).trim(),
        "r1: `r1 mcp-serve` is deprecated; use `r1 mcp serve`"
    );
    assert!(new.stderr.is_empty());
}
