//! Issue 16: remote use over a forwarded unix socket. A second state directory, with
//! no daemon of its own, reaches the first daemon through a socket relayed by `socat`
//! (what `ssh -L local.sock:remote.sock` gives): the CLI with `R1_SOCK` or `--sock`,
//! and the web UI through `r1 open --via-socket`, whose port is its own perimeter.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::support::*;

/// `socat` relaying `listen` to `target`, one connection per fork, as sshd would.
struct Forward {
    child: Child,
    path: PathBuf,
}

impl Forward {
    fn new(listen: &Path, target: &Path) -> Forward {
        let child = Command::new("socat")
            .arg(format!("UNIX-LISTEN:{},fork,mode=600", listen.display()))
            .arg(format!("UNIX-CONNECT:{}", target.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("socat is needed for the remote-socket test (Debian: apt-get install socat)");
        wait_until(Duration::from_secs(10), "socat to listen", || {
            listen.exists()
        });
        Forward {
            child,
            path: listen.to_path_buf(),
        }
    }
}

impl Drop for Forward {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A second state directory holding a copy of the first daemon's token, as a user
/// would copy it from the remote machine.
fn second_home(first: &Home) -> Home {
    let h = Home::new();
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&h.path)
        .unwrap();
    let mut f = std::fs::OpenOptions::new()
        .create_new(true)
        .write(true)
        .mode(0o600)
        .open(h.path.join("token"))
        .unwrap();
    std::io::Write::write_all(&mut f, first.token().as_bytes()).unwrap();
    h
}

#[test]
fn the_cli_reaches_a_daemon_through_a_forwarded_socket() {
    let remote = Home::new();
    let d = remote.serve(&[]);
    let local = second_home(&remote);
    let fwd = Forward::new(&local._dir.path().join("fwd.sock"), &d.sock());
    let work = tempfile::tempdir().unwrap();

    // R1_SOCK: a session started from the second home lands in the first daemon.
    let out = local
        .cmd(&[
            "ctl",
            "sessions",
            "start",
            "--workdir",
            work.path().to_str().unwrap(),
            "--json",
        ])
        .env("R1_SOCK", &fwd.path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let id = serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(d.get(&format!("/v1/sessions/{id}")).status, 200);

    // --sock: the same, and discover names the remote daemon.
    let out = local.run(&[
        "--sock",
        fwd.path.to_str().unwrap(),
        "ctl",
        "discover",
        "--json",
    ]);
    assert!(out.status.success(), "{out:?}");
    let disc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(disc["pid"], d.reg["pid"], "{disc}");
    assert_eq!(disc["token"], "<redacted>");
    let out = local.run(&[
        "--sock",
        fwd.path.to_str().unwrap(),
        "ctl",
        "sessions",
        "list",
        "--json",
    ]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&id),
        "{out:?}"
    );

    // Nothing was started in the second home.
    assert!(local.registration().is_none());
    assert!(!local.path.join("r1.sock").exists());

    // A socket that is not there: a clear error naming it, exit 4, no spawn.
    let out = local.run(&["--sock", "/nonexistent/r1.sock", "ctl", "health"]);
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/r1.sock"), "{err}");
    assert!(local.registration().is_none());

    // No token copied: says where to put it.
    let bare = Home::new();
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&bare.path)
        .unwrap();
    let out = bare.run(&["--sock", fwd.path.to_str().unwrap(), "ctl", "health"]);
    assert!(!out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("R1_TOKEN_FILE"), "{err}");
    // R1_TOKEN_FILE points at it instead; a token open to others is refused.
    let out = bare
        .cmd(&[
            "--sock",
            fwd.path.to_str().unwrap(),
            "ctl",
            "health",
            "--json",
        ])
        .env("R1_TOKEN_FILE", local.path.join("token"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let loose = bare.path.join("loose-token");
    std::fs::write(&loose, remote.token()).unwrap();
    std::fs::set_permissions(&loose, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let out = bare
        .cmd(&["--sock", fwd.path.to_str().unwrap(), "ctl", "health"])
        .env("R1_TOKEN_FILE", &loose)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5), "{out:?}");
}

/// `r1 open --via-socket --print-url`, its URL read from its first line of stdout.
fn open_via_socket(local: &Home, sock: &Path) -> (Child, String) {
    let mut child = local
        .cmd(&["open", "--via-socket", "--print-url"])
        .env("R1_SOCK", sock)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    (child, line.trim().to_string())
}

#[test]
fn open_via_socket_serves_the_ui_with_its_own_perimeter() {
    let remote = Home::new();
    let d = remote.serve(&[]);
    let local = second_home(&remote);
    let fwd = Forward::new(&local._dir.path().join("fwd.sock"), &d.sock());
    let (mut child, url) = open_via_socket(&local, &fwd.path);
    let guard = scopeguard(&mut child);
    assert!(url.contains("/#code="), "{url}");
    let port: u16 = url
        .strip_prefix("http://127.0.0.1:")
        .and_then(|r| r.split('/').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{url}"));
    assert_ne!(port, d.port());
    let token = remote.token();

    // The page and the API come through, keep-alive or not.
    let r = raw_tcp(
        port,
        &format!("GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: keep-alive\r\n\r\n"),
    );
    assert_eq!(r.status, 200, "{}", r.head);
    assert!(r.body.contains("<html"), "{}", r.body);
    let r = raw_tcp(
        port,
        &format!(
            "POST /v1/sessions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nOrigin: http://127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{}",
            json!({"workdir": local._dir.path()}).to_string().len(),
            json!({"workdir": local._dir.path()})
        ),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.json()["id"].as_str().unwrap().to_string();
    assert_eq!(d.get(&format!("/v1/sessions/{id}")).status, 200);

    // Another page's Origin and a rebound Host are refused before the socket.
    let n = d.get("/v1/sessions").json()["sessions"]
        .as_array()
        .unwrap()
        .len();
    let r = raw_tcp(
        port,
        &format!(
            "POST /v1/sessions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nOrigin: http://evil.test\r\nAuthorization: Bearer {token}\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\n{{}}"
        ),
    );
    assert_eq!(r.status, 403, "{}", r.head);
    let r = raw_tcp(
        port,
        &format!("GET /v1/health HTTP/1.1\r\nHost: rebind.test:{port}\r\nAuthorization: Bearer {token}\r\n\r\n"),
    );
    assert_eq!(r.status, 403, "{}", r.head);
    // A second request pipelined behind an allowed one never reaches the daemon.
    let body = json!({"workdir": local._dir.path()}).to_string();
    let r = raw_tcp(
        port,
        &format!(
            "GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n\r\nPOST /v1/sessions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nOrigin: http://evil.test\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    );
    assert_eq!(r.status, 200, "{}", r.head);
    assert!(
        !r.head.contains("201") && !r.body.contains("ses_"),
        "{}{}",
        r.head,
        r.body
    );
    assert_eq!(
        d.get("/v1/sessions").json()["sessions"]
            .as_array()
            .unwrap()
            .len(),
        n
    );
    drop(guard);
}

/// Kills the child when dropped.
struct Guard<'a>(&'a mut Child);

fn scopeguard(c: &mut Child) -> Guard<'_> {
    Guard(c)
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
